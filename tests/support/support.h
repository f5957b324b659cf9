/*
 * support.h -- helpers linked into every test program: a per-case temp
 * directory, fixture copies, file and environment helpers, isolated hosts,
 * a log-capturing hook and a tracking, fault-injecting allocator.
 *
 * Everything a helper allocates (strings it returns, the temp directory,
 * environment changes) is undone by support_cleanup(), which the runner
 * calls when a case ends, passes or fails.  Helpers that cannot do their
 * job fail the case (test_fail) instead of returning an error.
 */
#ifndef MODHOST_TEST_SUPPORT_H
#define MODHOST_TEST_SUPPORT_H

#include <pthread.h>
#include <stddef.h>

#include <modhost.h>

/* Undo everything below; called by the runner only. */
void support_cleanup(void);

/* ------------------------------------------------------------- strings */

/* printf into a string that lives until the case ends. */
const char *str_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Number of non-overlapping occurrences of needle in hay (0 for NULL). */
size_t str_count(const char *hay, const char *needle);

/* ------------------------------------------------------- temp directory */

/* The case's temp directory (created on first use under $TMPDIR or /tmp,
 * canonical, removed recursively when the case ends; set MH_TEST_KEEP=1
 * to keep it). */
const char *tmp_dir(void);

/* tmp_dir() + "/" + the formatted relative path.  Creates nothing. */
const char *tmp_path(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Create tmp_dir()/REL and its parents; return the absolute path. */
const char *tmp_mkdir(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------- fixtures */

/* $MH_TEST_FIXTURE_DIR/NAME.so */
const char *fixture_path(const char *name);

/* Copy fixture NAME.so to tmp_dir()/REL (e.g. "E1/pkg/sub/mod.so"),
 * creating parents; return the absolute path.  Every copy is a new inode,
 * so the dynamic loader treats it as a distinct object. */
const char *fixture_copy(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- files */

void mkdir_p(const char *path);
void file_write(const char *path, const char *content);
/* Contents (until the case ends), or NULL when the file does not exist. */
const char *file_read(const char *path);
int file_exists(const char *path);
/* Set a file's (or directory's) atime and mtime to sec (Unix time). */
void file_set_mtime(const char *path, long long sec);

/* ---------------------------------------------------------- environment */

/* setenv/unsetenv, restored to the original value when the case ends. */
void env_set(const char *name, const char *value);
void env_unset(const char *name);

/* ---------------------------------------------------------------- hosts */

/* A host that sees only the given entries (MH_CONFIG_ISOLATED |
 * MH_CONFIG_NO_DEFAULT_PATH), so the user's environment never leaks in:
 *   mh_host *h = host_new_isolated(e1, e2);   or host_new_isolated(NULL)
 * Fails the case if mh_host_new fails.  Free with mh_host_free. */
#define host_new_isolated(...) \
    host_new_isolated_((const char *const[]){__VA_ARGS__, NULL})
mh_host *host_new_isolated_(const char *const *entries);

/* The ';'-joined form of a NULL-terminated entry list. */
const char *path_join(const char *const *entries);

/* mh_host_new(cfg) that fails the case on error. */
mh_host *host_new_cfg(const mh_config *cfg);

/* mh_import that fails the case (printing the message) on error. */
mh_module *import_ok(mh_host *host, const char *name);

/* The export SYMBOL of mod, failing the case when it is missing. */
void *symbol_ok(mh_module *mod, const char *symbol);

/* Call an `int f(void)` export. */
int call_int(mh_module *mod, const char *symbol);

/* Index of the first path entry whose text equals entry, or -1. */
long path_index(mh_host *host, const char *entry);

/* ------------------------------------------------------------- log hook */

typedef struct log_capture {
    pthread_mutex_t mu;
    size_t n, cap;
    mh_log_level *levels;
    char **msgs;
} log_capture;

void log_capture_init(log_capture *lc);
void log_capture_free(log_capture *lc);
/* An mh_log_fn; ud is the log_capture. */
void log_capture_fn(void *ud, mh_log_level level, const char *msg);
/* Number of messages of the given level (or any level when level < 0)
 * that contain needle. */
size_t log_capture_count(log_capture *lc, int level, const char *needle);
/* All messages, one a line, for failure output. */
const char *log_capture_dump(log_capture *lc);

/* ------------------------------------------------------------ allocator */

/*
 * A tracking allocator for mh_config.alloc (ud = the tracker).  It checks
 * the lua_Alloc contract as it goes -- a free or resize whose osize differs
 * from the size allocated fails the case at once -- and counts calls and
 * outstanding bytes.  fail_at >= 1 injects a fault: the fail_at-th
 * allocation request (and, unless fail_once, every later one) returns NULL.
 */
typedef struct alloc_tracker {
    pthread_mutex_t mu;
    size_t calls;        /* every call of the hook */
    size_t requests;     /* calls asking for memory (nsize > 0) */
    size_t outstanding;  /* bytes allocated and not yet freed */
    size_t blocks;       /* blocks allocated and not yet freed */
    size_t injected;     /* faults injected so far */
    long fail_at;        /* 0: never fail */
    int fail_once;
} alloc_tracker;

void alloc_tracker_init(alloc_tracker *at);
void alloc_tracker_destroy(alloc_tracker *at);
void *alloc_tracker_fn(void *ud, void *ptr, size_t osize, size_t nsize);

#endif /* MODHOST_TEST_SUPPORT_H */
