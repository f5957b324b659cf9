/*
 * host/internal.h -- private declarations shared by every layer of the
 * library: the host structure, memory through the host's allocator, error
 * objects, bounded string buffers and logging.
 *
 * Nothing here is visible to applications (everything is hidden by the
 * default visibility); the public contract is include/modhost.h.
 */
#ifndef MH_INTERNAL_H
#define MH_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "modhost.h"
#include "host/control.h"
#include "cache/intern.h"
#include "cache/registry.h"
#include "host/path.h"
#include "host/trust.h"
#include "finders/finder.h"

#define MH_UNUSED(x) ((void)(x))
#define MH_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct mh_host {
    /* Services, fixed at creation. */
    mh_alloc_fn alloc;
    void *alloc_ud;
    mh_log_fn log;
    void *log_ud;
    mh_fault_fn fault;     /* tests' fault hook, or NULL */
    void *fault_ud;
    unsigned flags;        /* MH_CONFIG_* */
    bool verbose;          /* -v or MODHOST_VERBOSE=1 */
    char *cache_dir;       /* owned */
    size_t max_module_size; /* largest blob read into memory */
    unsigned probe_timeout_ms; /* mh_config's; 0: the environment's */
    mh_trust trust;        /* keys an HTTP index must be signed by */
    mh_http_limits http;   /* limits of the HTTP finder, defaults filled */

    mh_itable intern;      /* every name the host keeps */
    mh_registry registry;  /* loaded modules (sys.modules) */
    mh_path path;          /* search path entries and their finders */
    mh_chain chain;        /* path hooks and meta finders */
    struct {               /* directories found safe for code (secure.c) */
        pthread_mutex_t lock;
        struct mh_sec_dir *code; /* directories walks passed (dense) */
        size_t ncode, capcode;
        uint32_t *slot;          /* index into code + 1, by interned path
                                    pointer; nslot a power of 2 */
        size_t nslot;
        uid_t code_euid;         /* whom code[] was checked for */
    } sec;
    atomic_int stamps;     /* copy stamps' directory (cache/stamp.c): 0
                              not looked at yet, 1 private, -1 unusable */
    atomic_int blobs;      /* the blob cache's (cache/blobs.c): the same */
    _Atomic(struct mh_notify *) notify; /* listing change events
                                           (finders/notify.c) */
    struct {               /* entries that lack a package (host/tops.c) */
        pthread_mutex_t lock;
        struct mh_top *b[64];
        size_t count;
        _Atomic uint64_t gen;
    } tops;

    /* The import lock: guards module states, owners and waits.  Held only
     * for short bookkeeping, never while plugin code runs. */
    pthread_mutex_t lock;

    mh_host_api api;       /* table handed to plugins' init and fini */
    atomic_bool closing;   /* mh_host_free has begun: no more imports */
    atomic_bool dx_failures; /* dx_failed is not empty: a load looks its
                              module's origin up there (discover.c) */
    const char **dx_failed;  /* interned origins whose failure this host
                              recorded in the discovery index, or met
                              there: a load of one forgets it (under
                              lock) */
    size_t ndx_failed, capdx_failed;
    struct mh_dx_unclear {
        const char *origin;  /* interned */
        int64_t loaded_at;   /* Unix time */
    } *dx_unclear;           /* origins loaded after a failure was recorded
                              for them, whose row another process's lock
                              kept the load from deleting: the next
                              listing or mh_host_failures does, if it was
                              recorded before the load (under lock) */
    size_t ndx_unclear, capdx_unclear;
#define MH_ATW_SWEPT 8
    _Atomic(const char *) swept[MH_ATW_SWEPT]; /* interned: directories
                              cache/atomic.c has swept of leftovers */
    struct mh_lua *lua;    /* the host's Lua state (loaders/lua.c), lazy */
};

/* ---- memory (host/mem.c): all through host->alloc ------------------- */

void *mh_mem_alloc(mh_host *h, size_t n);                 /* NULL on OOM */
void *mh_mem_calloc(mh_host *h, size_t count, size_t size); /* checked */
void *mh_mem_realloc(mh_host *h, void *p, size_t on, size_t nn);
void mh_mem_free(mh_host *h, void *p, size_t n);
char *mh_mem_strdup(mh_host *h, const char *s);           /* NULL on OOM */
char *mh_mem_strndup(mh_host *h, const char *s, size_t n);
void mh_mem_strfree(mh_host *h, char *s);                 /* strdup'd */
bool mh_mul_overflows(size_t a, size_t b, size_t *out);
/* Room for element n in array *v of *cap elements of size bytes: doubled
 * (first elements at first) when full.  0, or -1 out of memory (*v and
 * *cap as they were). */
int mh_mem_grow(mh_host *h, void **v, size_t *cap, size_t n, size_t size,
                size_t first);

/* The C library allocator in mh_alloc_fn form (the default hook). */
void *mh_mem_default_alloc(void *ud, void *p, size_t on, size_t nn);
/* Set on this thread when the default hook, or a Lua state's allocator
 * (loaders/lua.c), could not give memory: whoever asks clears it first. */
extern _Thread_local bool mh_mem_refused;

/* ---- bounded string buffers (host/mem.c) ----------------------------- */

/* A growable string with a maximum.  Errors (OOM, over the limit) are
 * sticky: later appends do nothing and `failed` stays set, so callers
 * check once at the end.  `data` is always NUL-terminated once any append
 * succeeded. */
typedef struct mh_buf {
    mh_host *host;
    char *data;
    size_t len, cap, max;
    bool failed;
} mh_buf;

#define MH_BUF_MAX_DEFAULT (64u * 1024u)
void mh_buf_init(mh_buf *b, mh_host *h, size_t max);
/* Room for `extra` more bytes (and the NUL); false once the buffer
 * failed (out of memory, or over its max). */
bool mh_buf_reserve(mh_buf *b, size_t extra);
void mh_buf_add_slow_(mh_buf *b, const char *s, size_t n);
/* Inline when it fits: the find walk appends a reason per search path
 * entry per import. */
static inline void mh_buf_add(mh_buf *b, const char *s, size_t n)
{
    if (__builtin_expect(!b->failed && b->cap - b->len > n, 1)) {
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len] = '\0';
        return;
    }
    mh_buf_add_slow_(b, s, n);
}
static inline void mh_buf_puts(mh_buf *b, const char *s)
{
    mh_buf_add(b, s, strlen(s));
}
void mh_buf_printf(mh_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mh_buf_vprintf(mh_buf *b, const char *fmt, va_list ap);
const char *mh_buf_str(const mh_buf *b);   /* "" when empty */
void mh_buf_free(mh_buf *b);

/* ---- errors (host/error.c) ------------------------------------------- */

/* Make *err a new error (if err is non-NULL) and return code.  The message
 * is formatted only when somebody will read it.  h may be NULL (the C
 * allocator is used then). */
mh_status mh_err(mh_host *h, mh_error **err, mh_status code,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
mh_status mh_verr(mh_host *h, mh_error **err, mh_status code,
                  const char *fmt, va_list ap);
/* strerror(e); for EMFILE also what to do about it: the process's limit,
 * and that every loaded native module holds a descriptor (its file, or
 * its memory image).  The text lives until this thread's next call;
 * errno is kept. */
const char *mh_errno_text(int e);
/* The status of a system call that failed with e: MH_EAGAIN for a full
 * descriptor table (EMFILE, ENFILE), which passes -- a search path entry
 * that could not be opened then is tried again, never given up on --
 * else code. */
mh_status mh_errno_status(int e, mh_status code);
/* raw is a dynamic loader's message (dlerror()), why the text made of it.
 * When raw says the descriptor table is full, mh_errno_text's advice is
 * appended to why (where it fits) and the status is MH_EAGAIN; else
 * code. */
mh_status mh_dl_status(const char *raw, char *why, size_t size,
                       mh_status code);
/* dlerror()'s text into out, with path -- the name the dynamic loader was
 * given, a /proc/self/fd/N or a memfd's -- replaced by shown, the name
 * users know, or dropped where the text starts with it (the caller's
 * message names the file); the status as mh_dl_status (code MH_ELOAD). */
mh_status mh_dl_message(char *out, size_t size, const char *path,
                        const char *shown);
/* A copy of src for another caller (never NULL: a static error when
 * there is no memory for the copy). */
mh_error *mh_err_dup(mh_host *h, const mh_error *src);
/* Did memory run out describing e (MH_ENOMEM's, or a static error
 * standing for another status's, whose message says only that)? */
bool mh_err_oom(const mh_error *e);
/* The name of the first NULL pointer among n (pointer, name) pairs, for
 * "fn: NAME is NULL"; "an argument" when none is. */
const char *mh_null_name(int n, ...);
/* Hand a finished error to the caller's slot, or free it. */
mh_status mh_err_give(mh_error *e, mh_error **err);

/* ---- logging (host/log.c) -------------------------------------------- */

void mh_log(mh_host *h, mh_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void mh_vlog(mh_host *h, mh_log_level level, const char *fmt, va_list ap);
void mh_log_default(void *ud, mh_log_level level, const char *msg);

/* Public calls that would wait for a lock this thread may hold are
 * refused instead of hanging: MH_OK, or MH_EINVAL naming fn when h is
 * being freed (a plugin's fini called), when this thread is inside h's
 * log hook (which may run while h holds its locks), or, with
 * MH_ENTRY_PATH, when this thread walks h's search path (a finder's
 * callback): a change to the path or the caches waits for every walk. */
#define MH_ENTRY_PATH 1u
mh_status mh_entry_check(mh_host *h, const char *fn, unsigned what,
                         mh_error **err);
/* Is this thread inside h's log hook? */
bool mh_in_log_hook(const mh_host *h);

/* Which hosts this thread is inside a call of, through which user code may
 * run (a module's init, a finder's callback, a list's callback...): there,
 * mh_host_free would free what the call still uses, and is refused.
 * MH_BUSY(h) at the top of such a call counts it until the call returns,
 * by whatever path (h may be NULL).  Up to 8 hosts nested are counted.
 * Each count keeps the outermost call's frame: a call left without
 * returning (a longjmp out of a callback) is seen as gone once the stack
 * is back above that frame.  mh_busy(h, here): here is the asker's own
 * frame. */
const mh_host *mh_busy_enter(const mh_host *h, const void *frame);
void mh_busy_leave(const mh_host *const *h);
bool mh_busy(const mh_host *h, const void *here);
#define MH_BUSY(h)                                                        \
    const mh_host *const mh_busy_                                         \
        __attribute__((cleanup(mh_busy_leave), unused)) =                 \
            mh_busy_enter((h), __builtin_frame_address(0))

/* Trace only when verbose; the arguments are not evaluated otherwise. */
#define MH_TRACE(h, ...)                                                  \
    do {                                                                  \
        if ((h)->verbose) mh_log((h), MH_LOG_TRACE, __VA_ARGS__);         \
    } while (0)

/* ---- fault injection (host/host.c) ---------------------------------- */

/* Should the call at `site` fail now?  (The fault hook of mh_config.)  A
 * caller that gets true fails exactly as if the call had: errno EIO. */
bool mh_fault(mh_host *h, const char *site);

/* ---- file descriptors (host/fileio.c) -------------------------------- */

/* Write all of data: 0, or -1 with errno. */
int mh_io_write_all(int fd, const void *data, size_t len);
/* flock(fd, LOCK_EX), waiting through signals (an application's handler
 * without SA_RESTART): 0, or -1 with errno. */
int mh_io_lock(int fd);
/* Read up to len bytes, stopping only at end of file or an error; returns
 * how many were read (len when the file had them all). */
size_t mh_io_read_all(int fd, void *buf, size_t len);
/* A small file (a key) open on fd read whole into buf (cap bytes), its
 * fstat into *st: 0 and *len, or an errno -- EINVAL for what is not a
 * regular file (a FIFO, opened O_NONBLOCK, is never waited on), EFBIG
 * when it is over cap.  fd stays open. */
struct stat;
int mh_io_read_small_fd(int fd, void *buf, size_t cap, size_t *len,
                        struct stat *st);
/* Remove a SQLite database that is not in use, with what a connection
 * that failed may have left beside it (-journal, -wal, -shm). */
void mh_io_unlink_db(const char *path);
/* What mh_io_read_small_fd's errno e means, for a message about a key. */
const char *mh_io_small_why(int e);
/* The same at offset off (pread); the file position is not moved. */
size_t mh_io_pread_all(int fd, void *buf, size_t len, off_t off);
/* SHA-256 of the `size` bytes of fd from offset 0 (pread, in chunks,
 * never whole in memory), which must then be at its end: NULL, or a
 * static reason ("it changed size while being read", "out of memory",
 * "it cannot be read", "it cannot be hashed") with errno set to the
 * system's error, or 0 when there was none. */
const char *mh_io_sha256(int fd, uint64_t size, unsigned char out[32]);
/* The SHA-256 of n bytes at d; false only if OpenSSL fails (host/fileio.c
 * says why this, not EVP_Digest, is every plain SHA-256 of the library). */
bool mh_sha256(const void *d, size_t n, unsigned char out[32]);
/* The unsure window: a file changed less than this long before it was
 * checked may change again within the same timestamp tick and keep its
 * mtime and ctime, so stat cannot vouch for it yet (the bytecode cache and
 * the copy stamps hash such a file instead). */
#define MH_UNSURE_NS 2000000000LL
/* Is time (rsec, rnsec) less than MH_UNSURE_NS after (sec, nsec)?  Times
 * whose difference overflows are unsure too. */
bool mh_io_age_unsure(int64_t rsec, int64_t rnsec, int64_t sec,
                      int64_t nsec);
/* Are the n bytes at t a SHA-256 as this library writes one: 64
 * lowercase hex digits (a cache file's name, a recorded hash)? */
bool mh_hex64_ok(const void *t, size_t n);
/* n bytes as 2n lowercase hex digits and a NUL. */
void mh_hex(const unsigned char *d, size_t n, char *out);
/* The 2n hex digits at s (either case) as n bytes into out; false (out
 * partly written) at a character that is no hex digit. */
bool mh_unhex(const char *s, size_t n, unsigned char *out);
/* The first `bytes` (<= 32) bytes of the SHA-256 of n bytes at d, as
 * 2 * bytes hex digits and a NUL: a cache file's or directory's name, a
 * key.  False (out untouched) only if OpenSSL fails. */
bool mh_sha256_hex(const void *d, size_t n, size_t bytes, char *out);
/* The status of an import whose init (or Lua chunk) failed with the words
 * of a nested import's failure, dep: a cycle or a deadlock in the chain,
 * memory, or a passing shortage (MH_EAGAIN) stays what it is -- the
 * import graph's or the machine's doing, which the application must be
 * able to tell, and may retry -- and anything else is the init's
 * failure, MH_EINIT. */
static inline mh_status mh_init_status_of_dep(mh_status dep)
{
    return dep == MH_ECYCLE || dep == MH_EDEADLOCK || dep == MH_ENOMEM ||
                   dep == MH_EAGAIN
               ? dep : MH_EINIT;
}

/* Milliseconds on the monotonic clock: for timeouts and durations. */
static inline long long mh_mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* How many times this process is a child of fork() since the first host
 * was made (counted by a pthread_atfork handler in the child).  What
 * belongs to the parent's other threads or its descriptors -- an import
 * in flight, an opening lock, an inotify queue -- remembers the count it
 * was made under, and is not waited for, nor used, under another. */
unsigned mh_fork_count(void);

/* t, at most n bytes of it (SIZE_MAX: to its NUL), into out (size >= 1
 * bytes, NUL-terminated) with each control character (mh_control_len)
 * as \xNN -- newlines and tabs kept when keep_lines -- cut between
 * characters to fit.  Returns the bytes written; *rest (if not NULL) is
 * where t stopped: at its NUL or its n-th byte when all of it fit.  For
 * every message that quotes text others chose. */
size_t mh_escape(char *out, size_t size, const char *t, size_t n,
                 bool keep_lines, const char **rest);

/* v in decimal at p, at least `width` (1..20) digits, no NUL; returns
 * the end.  For paths and keys built on a hot path: snprintf's code is
 * large, and a cold import pays for every line of code it runs
 * (docs/performance.md). */
char *mh_put_dec(char *p, unsigned long long v, int width);
/* v in decimal, with a '-' when negative, as %lld writes it. */
char *mh_put_sdec(char *p, long long v);
/* "/proc/self/fd/N" of fd (>= 0) in buf, NUL-terminated: the name a
 * descriptor is loaded or reopened by. */
#define MH_FD_PATH_SIZE 40
void mh_fd_path(char buf[MH_FD_PATH_SIZE], int fd);
/* A new file at path (in directory dir, which holds it) with len bytes of
 * data, mode 0600: an O_TMPFILE filled, then linked in by its
 * /proc/self/fd name, so a writer killed mid-way leaves nothing and
 * readers see a whole file or none.  A file already at path is replaced
 * when `replace`, else left alone (EEXIST).  Not fsynced: where that
 * matters, the reader must be able to tell (a hash, a size).  0, or an
 * errno; *never is set when it can never work here (no O_TMPFILE on that
 * filesystem, no /proc), else cleared.  Fault sites "open" and "write". */
int mh_io_put_new(mh_host *h, const char *dir, const char *path,
                  const void *data, size_t len, bool replace,
                  bool *never);

/* ---- environment (host/host.c) --------------------------------------- */

/* getenv that returns NULL in privileged processes (secure_getenv) and,
 * for MODHOST_* variables, in isolated mode. */
const char *mh_host_getenv(const mh_host *h, const char *name);

/* ---- plugin API table (host/api.c) ----------------------------------- */

void mh_api_fill(mh_host_api *api);
/* Log a failed nested import's message, which m's init went on from or
 * replaced with its own, as a warning naming m. */
void mh_api_log_dep_failure(mh_module *m, const char *message);

/* The result slot of a JSON call to a native module (MH_CALL). */
struct mh_call_out {
    mh_host *host;
    char *json;            /* host memory */
    char *error;           /* host memory */
    bool oom;
};

#endif /* MH_INTERNAL_H */
