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

/* ----------------------------------------------------- module databases */
/* (tests/support/db.c) */

/* mh_pack(db, inputs...) that fails the case, with the library's message,
 * on error; returns the number of files written:
 *   db_pack(db, dir);   db_pack(db, "pkg/mod.so", "/abs/x.so"); */
#define db_pack(db, ...) db_pack_((db), (const char *const[]){__VA_ARGS__, NULL})
size_t db_pack_(const char *db, const char *const *inputs);

/* Build (or add to) database db from fixtures: each spec is "FIXTURE:REL",
 * e.g. db_make(db, "counter:mod.so", "answer7:pkg/b.so"); the copies are
 * staged in a fresh directory under tmp_dir() and packed with db_pack.
 * Returns db. */
#define db_make(db, ...) db_make_((db), (const char *const[]){__VA_ARGS__, NULL})
const char *db_make_(const char *db, const char *const *specs);

/* s as one single-quoted shell word. */
const char *sh_quote(const char *s);

/* Run a shell command and return its stdout; *status (if not NULL) gets
 * its exit status, -1 when it did not exit normally. */
const char *sh_run(const char *cmd, int *status);

/* Run the stock `sqlite3` CLI (with -batch, no ~/.sqliterc) on the given
 * arguments, which the caller quotes (sh_quote); returns stdout without
 * its trailing newlines.  A non-zero exit fails the case, printing the
 * CLI's stderr. */
const char *sqlite3_cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One SQL script run on db by the sqlite3 CLI; its output in list mode
 * ("a|b" a row, rows joined by newlines, no trailing newline). */
const char *db_exec(const char *db, const char *sql);

/* Whole file as bytes, *len its size: malloc'd, the caller frees it. */
unsigned char *file_bytes(const char *path, size_t *len);
void file_write_bytes(const char *path, const void *data, size_t len);
void file_copy(const char *src, const char *dst);
/* True when both files hold the same bytes. */
int files_equal(const char *a, const char *b);
long long file_size(const char *path);
void file_truncate_to(const char *path, size_t len);
/* Overwrite path from offset to its end with deterministic garbage. */
void file_scribble(const char *path, size_t offset, unsigned seed);
/* The page size recorded in a SQLite database's header. */
size_t db_page_size(const char *db);
/* Number of entries of a directory (without . and ..), -1 if unreadable. */
long dir_count(const char *path);

/* A host with options: always isolated with no default path, and its cache
 * directory in the case's temp dir unless set.
 *   host_opts o = {.flags = MH_CONFIG_NO_MEMFD, .log = &lc};
 *   mh_host *h = host_new_opts(&o, entry1, entry2); */
typedef struct host_opts {
    unsigned flags;          /* added to ISOLATED | NO_DEFAULT_PATH */
    const char *cache_dir;   /* NULL: tmp_path("cache") */
    size_t max_module_size;  /* 0: the library's default */
    log_capture *log;        /* NULL: the library's default logging */
} host_opts;
#define host_new_opts(opts, ...) \
    host_new_opts_((opts), (const char *const[]){__VA_ARGS__, NULL})
mh_host *host_new_opts_(const host_opts *opts, const char *const *entries);

/* Open fds of this process that are memfds whose name contains needle
 * ("" for every memfd). */
size_t memfd_fd_count(const char *needle);
/* Lines of /proc/self/maps that contain both a and b. */
size_t maps_count(const char *a, const char *b);

#endif /* MODHOST_TEST_SUPPORT_H */
