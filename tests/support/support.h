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
/* Wait until path exists (another thread's or process's sign that it got
 * somewhere); fails the case after `seconds`, naming `what`. */
void wait_for_file(const char *path, const char *what, double seconds);
/* fork(), and in the child (which has only this thread) _exit(fn(ud))
 * within 10 s (SIGALRM), flushing nothing; in the parent, wait for it and
 * fail the case unless it exited with 0, naming `codes` (what fn's other
 * exit statuses mean). */
void in_child_of_fork(int (*fn)(void *ud), void *ud, const char *codes);
/* What a child of fork() checks (for in_child_of_fork's fn, with ud a
 * child_imports): importing `bad` fails with `status` and a message that
 * contains `says` (else 2, the import said on stderr), then `good`
 * imports (else 3); 0 when both hold. */
typedef struct child_imports {
    mh_host *host;
    const char *bad;
    mh_status status;
    const char *says;
    const char *good;
} child_imports;
int child_imports_fn(void *ud);
/* CLOCK_MONOTONIC in seconds. */
double mono_s(void);
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
 * With only_size set, requests of other sizes are neither counted in
 * `requests` nor failed: to see, or fail, the allocation of one buffer.
 */
typedef struct alloc_tracker {
    pthread_mutex_t mu;
    size_t calls;        /* every call of the hook */
    size_t requests;     /* calls asking for memory (nsize > 0) */
    size_t outstanding;  /* bytes allocated and not yet freed */
    size_t blocks;       /* blocks allocated and not yet freed */
    size_t injected;     /* faults injected so far */
    long fail_at;        /* 0: never fail */
    int fail_once;       /* only the fail_at-th; else it and every later */
    long fail_until;     /* not 0: fail_at-th to this one, no later */
    size_t only_size;    /* 0: every request counts */
} alloc_tracker;

void alloc_tracker_init(alloc_tracker *at);
void alloc_tracker_destroy(alloc_tracker *at);
void *alloc_tracker_fn(void *ud, void *ptr, size_t osize, size_t nsize);
/* An isolated host's config searching `path`, its memory through at. */
mh_config tracked_config(alloc_tracker *at, const char *path);

/* ----------------------------------------------------- module databases */
/* (tests/support/db.c) */

/* mh_pack(db, inputs...) that fails the case, with the library's message,
 * on error; returns the number of files written:
 *   db_pack(db, dir);   db_pack(db, "pkg/mod.so", "/abs/x.so"); */
#define db_pack(db, ...) db_pack_((db), 0, (const char *const[]){__VA_ARGS__, NULL})
/* The same with MH_PACK_COMPRESS_CODE: native code zlib-compressed too. */
#define db_pack_z(db, ...)                                                \
    db_pack_((db), MH_PACK_COMPRESS_CODE, (const char *const[]){__VA_ARGS__, NULL})
size_t db_pack_(const char *db, unsigned flags, const char *const *inputs);

/* Build (or add to) database db from fixtures: each spec is "FIXTURE:REL",
 * e.g. db_make(db, "counter:mod.so", "answer7:pkg/b.so"); the copies are
 * staged in a fresh directory under tmp_dir() and packed with db_pack.
 * Returns db. */
#define db_make(db, ...) db_make_((db), 0, (const char *const[]){__VA_ARGS__, NULL})
#define db_make_z(db, ...)                                                \
    db_make_((db), MH_PACK_COMPRESS_CODE, (const char *const[]){__VA_ARGS__, NULL})
const char *db_make_(const char *db, unsigned flags, const char *const *specs);

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
/* Drop db's recorded hashes (the mh_sha256 table and its triggers), as
 * `sqlite3 -A` or an older modhost leaves a database: its native code is
 * then always read and loaded from memory, never from a kept copy.
 * Returns db. */
const char *db_without_hashes(const char *db);

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
    mh_fault_fn fault;       /* NULL: none */
    void *fault_ud;
} host_opts;
#define host_new_opts(opts, ...) \
    host_new_opts_((opts), (const char *const[]){__VA_ARGS__, NULL})
mh_host *host_new_opts_(const host_opts *opts, const char *const *entries);

/* Open fds of this process that are memfds whose name contains needle
 * ("" for every memfd). */
size_t memfd_fd_count(const char *needle);
/* Lines of /proc/self/maps that contain both a and b. */
size_t maps_count(const char *a, const char *b);

/* ------------------------------------------------- loopback HTTP server */
/* (tests/support/http.c) */

/*
 * tests/http/server.py (its header lists the fault modes, chosen by the
 * first path segment: /ok/, /404/, /hang/, /trunc-mod/, ...) serving root
 * on 127.0.0.1 and a port of its own.  Stopped by http_stop(), and killed
 * in any case when the case's process ends, however it ends; start it
 * from the case's main thread.
 */
#include <sys/types.h>

typedef struct http_server {
    pid_t pid;              /* 0 once stopped */
    int port;
    const char *root;       /* the directory served */
    const char *log;        /* "METHOD PATH STATUS HOST FLAGS" a line */
    const char *mode_file;  /* what /switch/ does (http_set_mode) */
} http_server;

/* Start a server; opts are more of server.py's options, space-separated,
 * or NULL ("--max-age 0").  Fails the case if it does not come up. */
http_server *http_start(const char *root, const char *opts);
/* Kill it and reap it: its port refuses connections afterwards.  Stopping
 * twice is harmless. */
void http_stop(http_server *s);
/* "http://127.0.0.1:PORT/" + the formatted path ("ok/counter.so"). */
const char *http_url(const http_server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Number of logged requests whose line contains needle, e.g.
 * http_requests(s, "GET /ok/index.json 304"). */
size_t http_requests(const http_server *s, const char *needle);
/* The whole request log, for failure output. */
const char *http_log_text(const http_server *s);
/* Make /switch/ behave as mode ("ok", "500", "hang", ...) from the next
 * request on. */
void http_set_mode(const http_server *s, const char *mode);

/* Number of files (not directories) under root whose name contains needle
 * ("" for all); 0 when root does not exist.  *names, if not NULL, gets
 * their paths, one an indented line, for failure output. */
size_t tree_count(const char *root, const char *needle, const char **names);

/* ------------------------------------------------ HTTP sites and hosts */
/* (tests/support/http.c) */

/* Clear the proxy variables and MODHOST_TRUST for the case, so nothing
 * configured around the test run diverts loopback traffic. */
void http_no_proxy_env(void);
/* mh_index_dir(dir, key) that fails the case on error. */
void http_index_dir(const char *dir, const char *key);
/* mh_keygen of tmp_dir()/keys/NAME; returns that base (BASE.key,
 * BASE.pub). */
const char *http_keygen(const char *name);
/* The directory tests serve, tmp_dir()/www: counter.so (fixture counter,
 * value() 42), answer7.so (value() 7) and pkg/mod.so (counter again, so
 * "pkg" is a namespace), indexed, signed with key (a .key file) unless it
 * is NULL.  Calls http_no_proxy_env(). */
const char *http_site(const char *key);
/* mh_http_limits with size set and every limit at its default. */
mh_http_limits http_limits(void);
/* An isolated config (no default path) with entry as its path, the cache
 * at tmp_path("cache") and the log captured by lc. */
mh_config http_cfg(const char *entry, log_capture *lc);
/* host_new_cfg(http_cfg(entry, lc)). */
mh_host *http_host(const char *entry, log_capture *lc);
/* The same with the host's memory through at (alloc_tracker_fn): to see
 * what a long-running host keeps. */
mh_host *http_host_tracked(const char *entry, log_capture *lc,
                           alloc_tracker *at);
/* mh_import that must fail, leaving nothing registered; returns the
 * status, the message is in ERR. */
mh_status import_fails(mh_host *host, const char *name);
/* Number of files in tmp_path("cache/blobs"). */
size_t http_blob_count(void);
/* Fail the case if the cache holds a temporary or partial file. */
void http_assert_cache_clean(void);
/* CLOCK_MONOTONIC in milliseconds. */
long long clock_ms(void);

/* Assertions (for files that include test.h). */
#define ASSERT_CONTAINS_CI(haystack, needle)                              \
    do {                                                                  \
        const char *h_ = (haystack), *n_ = (needle);                      \
        if (h_ == NULL || strcasestr(h_, n_) == NULL)                     \
            FAIL("%s does not contain \"%s\" (any case): \"%s\"",         \
                 #haystack, n_, h_ ? h_ : "(null)");                      \
    } while (0)

/* Some message of the level (any level when < 0) mentions needle. */
#define ASSERT_LOG(lc, level, needle)                                     \
    do {                                                                  \
        if (log_capture_count((lc), (level), (needle)) == 0)              \
            FAIL("no log message at level %d mentions \"%s\"; log:%s",    \
                 (int)(level), (needle), log_capture_dump(lc));           \
    } while (0)

/* Exactly want logged requests of srv contain needle. */
#define ASSERT_REQUESTS(srv, needle, want)                                \
    do {                                                                  \
        size_t got_ = http_requests((srv), (needle));                     \
        if (got_ != (size_t)(want))                                       \
            FAIL("%zu requests \"%s\", expected %zu; server log:\n%s",    \
                 got_, (needle), (size_t)(want), http_log_text(srv));     \
    } while (0)

/* ---------------------------------------------------------------- Lua */

/* Write tmp_dir()/REL (creating parents) and return its absolute path. */
const char *lua_write(const char *rel, const char *src);
/* mh_module_call with args as JSON text (NULL: none) that must work;
 * returns the result printed unformatted. */
const char *call_ok(mh_module *mod, const char *fn, const char *args);
/* mh_module_call that must fail; returns the status (message in ERR). */
mh_status call_fails(mh_module *mod, const char *fn, const char *args);

/* ------------------------------------------------ metadata and deps */
/* (tests/support/meta.c) */

/* Set $MH_FIXTURE_MARKER to tmp_path("marker") and return it: the meta_*
 * fixtures append a line there from their ELF constructor and their init,
 * so the file's absence proves none of their code ran. */
const char *meta_marker(void);
/* Write tmp_dir()/REL.lua with src and, unless json is NULL, its sidecar
 * manifest tmp_dir()/REL.json; returns the .lua path. */
const char *meta_lua_module(const char *rel, const char *src,
                            const char *json);
/* Run `tool args` (args already quoted); fails the case, saying so, when
 * the tool is not installed or exits non-zero. */
void meta_tool(const char *tool, const char *args);
/* Offset of the modhost manifest note (its namesz field) in an ELF
 * object's bytes, or -1 when it has none; two notes fail the case. */
long meta_note_offset(const unsigned char *data, size_t len);
/* A manifest whose objects and arrays nest `levels` deep (2 or more), the
 * manifest itself counting 1: {"description": "deep", "x": [{"k": [...
 * []]}]}, arrays and objects alternating, the innermost an empty array. */
const char *meta_nested_manifest(int levels);

/* ------------------------------------------------------------ discovery */
/* (tests/support/disc.c) */

/* Set a file's atime and mtime to secs_ago seconds before now (whole
 * seconds): discovery trusts a file only once it is 2 s old, so tests age
 * what they create, and "touch" a file by giving it another age. */
void disc_set_age(const char *path, long secs_ago);
/* disc_set_age on every regular file under dir. */
void disc_age_tree(const char *dir, long secs_ago);
/* Lua source of a module whose encode(s) returns "WORD:" .. s. */
const char *disc_lua_source(const char *word);
/* tmp_dir()/REL with n plugins p000.so, p001.so, ...: even ones copies of
 * fixture disc_codec (version 3.1.4, provides codec and answer), odd ones
 * of disc_plain (1.0.0, provides nothing); plus Lua modules lua_a
 * (sidecar: 1.0.0, provides codec=encode), lua_b (sidecar: 2.0.0, no
 * provides) and lua_c (no sidecar).  Every file 60 s old.  So n + 3
 * modules. */
const char *disc_plugin_dir(const char *rel, size_t n);
/* Make the manifest note of the plugin at path claim more data than its
 * segment holds (fails the case when it has no note). */
void disc_damage_note(const char *path);

#define DISC_MAX 512

/* One module as mh_discover reported it (strings copied). */
typedef struct disc_mod {
    const char *name, *origin, *finder;
    const char *interned;      /* the name pointer the host passed */
    mh_module_kind kind;
    size_t entry_index;
    mh_status status;
    const char *reason;        /* NULL when the host gave none */
    int has_manifest;
    /* From the manifest (NULL / 0 without one). */
    const char *manifest_name, *source, *version, *description, *json;
    int abi;
    const char *provides;      /* "group=export,..." in manifest order */
    const char *requires;      /* "name constraint,..." */
    const char *line;          /* all of the above but abi on one line */
} disc_mod;

/* One mh_discover call. */
typedef struct disc_run {
    mh_status status;          /* what mh_discover returned */
    const char *error;         /* its message, or NULL */
    size_t n;
    disc_mod mods[DISC_MAX];   /* in the order reported */
    const char *unordered;     /* NULL when reported in name order */
    const char *text;          /* every line, '\n'-terminated: equal texts,
                                  equal results */
    /* From the log (with a verbose host and a log_capture only): */
    size_t reads;              /* "reading the metadata of" traces */
    const char *read_names;    /* their names, ' '-separated */
    long sum_modules, sum_read, sum_index; /* the summary trace, or -1 */
    size_t warnings;           /* messages at WARN or ERROR */
    const char *log;           /* every message of the call, for output */
} disc_run;

/* Run mh_discover on host into *r; lc, if not NULL, is the host's log
 * capture (counted from where it stands now). */
void disc_discover(mh_host *host, log_capture *lc, disc_run *r);
/* The module named name in r: NULL / failing the case when absent. */
const disc_mod *disc_find(const disc_run *r, const char *name);
const disc_mod *disc_get(const disc_run *r, const char *name);
/* Number of modules in r with that status. */
size_t disc_count_status(const disc_run *r, mh_status status);

/* One entry point (strings copied). */
typedef struct disc_ep {
    const char *group, *module, *export_name, *origin;
    const char *version;       /* of its manifest, or NULL */
    const char *provider;      /* mh_manifest_provider(manifest, group) */
} disc_ep;

typedef struct disc_eps {
    mh_status status;
    const char *error;
    size_t n;
    disc_ep v[DISC_MAX];
    const char *text;          /* "module=export (origin)" a line */
} disc_eps;

/* Called for each entry point during the walk, with the live one. */
typedef void (*disc_ep_load_fn)(void *ud, mh_host *host,
                                const mh_entry_point *ep);
/* mh_host_entry_points(host, group) into *out; load may be NULL. */
void disc_entry_points(mh_host *host, const char *group, disc_eps *out,
                       disc_ep_load_fn load, void *load_ud);

#define DISC_FAILS_MAX 64

typedef struct disc_fail {
    const char *name, *origin, *reason;
    mh_status status;
    int64_t when;
} disc_fail;

typedef struct disc_fails {
    mh_status status;
    const char *error;
    size_t n;
    disc_fail v[DISC_FAILS_MAX];
    const char *text;          /* "name (origin): STATUS: reason" a line */
} disc_fails;

/* mh_host_failures(host) into *out. */
void disc_failures(mh_host *host, disc_fails *out);
/* The failure of module name in f, or NULL. */
const disc_fail *disc_fail_find(const disc_fails *f, const char *name);


/* ------------------------------------------------------ fault injection */
/* (tests/support/fault.c) */

/* The site name the plan gives allocation requests. */
#define FAULT_ALLOC "alloc"
#define FAULT_SITES_MAX 24

/*
 * One fault plan for a host's two fault sources: mh_config.fault (system
 * and library calls, by site: "open", "dlopen", "sqlite", ...) and
 * mh_config.alloc (requests for memory, site FAULT_ALLOC).  Each call
 * either hook sees is counted, in one sequence; fault_plan_arm starts
 * the count afresh and makes the plan fail the fail_at-th counted call
 * (once), or it and every later one (persistent).  With `only` set, only
 * calls of that site are counted and failed.  Memory goes through the tracking allocator `mem`,
 * whose outstanding/blocks tell a run's leaks.  Set it up with
 *   fault_plan p;  fault_plan_init(&p);  fault_config(&cfg, &p);
 * and free the host before fault_plan_destroy.
 */
typedef struct fault_plan {
    pthread_mutex_t mu;
    long fail_at;        /* counted call to fail; 0: never */
    int once;
    const char *only;    /* NULL: every site */
    int record;          /* keep the site of every counted call (trace) */
    size_t calls;        /* counted calls since the arming */
    size_t injected;     /* faults injected since the arming */
    char fired_site[32]; /* site of the first fault injected */
    size_t nsites;
    struct {
        char site[32];
        size_t calls, injected;
    } sites[FAULT_SITES_MAX];
    unsigned char *trace; /* with record: site slot of each counted call */
    size_t trace_n, trace_cap;
    alloc_tracker mem;
} fault_plan;

void fault_plan_init(fault_plan *p);
void fault_plan_destroy(fault_plan *p);

/* No descriptor free: the soft RLIMIT_NOFILE lowered to the lowest free
 * descriptor number, so every open fails with EMFILE.  *old receives the
 * limit fds_none_end gives back. */
struct rlimit;
void fds_none_begin(struct rlimit *old);
void fds_none_end(const struct rlimit *old);
/* Start counting afresh (calls, injected, fired_site, trace) and fail
 * the fail_at-th counted call (0: none), once or persistently, counting
 * only site `only` (NULL: all). */
void fault_plan_arm(fault_plan *p, long fail_at, int once, const char *only);
void fault_plan_disarm(fault_plan *p);
/* The hooks (ud = the plan). */
int fault_site_fn(void *ud, const char *site);
void *fault_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize);
/* Point cfg's alloc and fault hooks at the plan. */
void fault_config(mh_config *cfg, fault_plan *p);
/* Calls seen of one site (counted or not). */
size_t fault_site_calls(const fault_plan *p, const char *site);
/* "alloc 120, opendir 1, open 2" -- every site seen, for messages. */
const char *fault_sites_text(const fault_plan *p);
/* With record: the site of the i-th counted call (0-based), or NULL. */
const char *fault_trace_site(const fault_plan *p, size_t i);

/* Open descriptors of this process, and their targets (for messages). */
size_t fault_fd_count(void);
const char *fault_fd_list(void);
/* memfds open or mapped in this process. */
size_t fault_memfd_count(void);
/* Files in a cache directory that no finished run may leave (temporary
 * or journal files, files in the private native/ directory), one an
 * indented line; NULL when there are none or the directory is absent. */
const char *fault_cache_leftovers(const char *cache_dir);
/* rm -rf dir (absent is fine), and cp -a from to (to must not exist). */
void fault_rm_tree(const char *dir);
void fault_copy_tree(const char *from, const char *to);

#endif /* MODHOST_TEST_SUPPORT_H */
