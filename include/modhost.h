/*
 * modhost.h -- the public API of libmodhost, a module loader and plugin host.
 *
 * An application creates a host (mh_host_new), which keeps a registry of
 * loaded modules and a search path of entries, each handled by a finder.
 * mh_import() returns a loaded module by dotted name, finding and loading it
 * on first use; mh_module_symbol() looks up what it exports.
 *
 * Conventions, everywhere in this header:
 *   - Every function that can fail returns an mh_status (MH_OK is 0).
 *   - Functions that can fail take an optional `mh_error **err`.  On failure
 *     *err receives a new error object with the status and a message naming
 *     what failed and where; free it with mh_error_free().  Pass NULL when
 *     the code alone is enough.  On success *err is left untouched.  (With
 *     no memory left even for the error, *err is a static one with the
 *     same status, whose message says only that.)
 *   - On failure, other output parameters are set to NULL/0.
 *   - Strings returned by the library are owned by the object they come
 *     from and live as long as it does, unless a function says otherwise.
 *   - All functions are safe to call from several threads on one host,
 *     except mh_host_free(), which must be the last call on that host.
 *     In a child of fork(), what another thread had under way is not
 *     waited for: an import in flight there fails with MH_EDEADLOCK.
 *     (A lock that thread held at the moment of the fork still is, as in
 *     any library: fork at a quiet moment, or exec; docs/architecture.md.)
 *   - free-like functions accept NULL and do nothing.
 *
 * Plugins do not include this header; see <modhost/plugin.h>.
 */
#ifndef MODHOST_H
#define MODHOST_H

#include <stddef.h>
#include <stdint.h>

#include "modhost/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MODHOST_BUILDING) && defined(__GNUC__)
#define MH_API __attribute__((visibility("default")))
#else
#define MH_API
#endif

/* ---------------------------------------------------------------------- */
/* Versions                                                               */
/* ---------------------------------------------------------------------- */

#define MH_VERSION_MAJOR 0
#define MH_VERSION_MINOR 1
#define MH_VERSION_PATCH 0
#define MH_VERSION_STRING "0.1.0"
/* One number that grows with every release: major*10000 + minor*100 + patch. */
#define MH_VERSION_NUMBER \
    (MH_VERSION_MAJOR * 10000 + MH_VERSION_MINOR * 100 + MH_VERSION_PATCH)

/* The library's version number (MH_VERSION_NUMBER of the build that made
 * it).  Never fails. */
MH_API int mh_version(void);

/* The library's version string, e.g. "0.1.0"; static storage. */
MH_API const char *mh_version_string(void);

/* ---------------------------------------------------------------------- */
/* Status codes and errors                                                */
/* ---------------------------------------------------------------------- */

/* Stable numbers: never renumbered, retired codes keep their slot. */
typedef enum mh_status {
    MH_OK = 0,
    MH_ENOMEM = 1,        /* an allocation failed */
    MH_EINVAL = 2,        /* a bad argument (NULL handle, bad flag, ...) */
    MH_EBADNAME = 3,      /* a module name breaks the name grammar */
    MH_ENOTFOUND = 4,     /* no path entry has the module */
    MH_EABI = 5,          /* plugin built for another ABI version */
    MH_ENODESC = 6,       /* shared object without a modhost descriptor */
    MH_EINIT = 7,         /* the module's init refused or failed (one
                             failing for a nested import's cycle,
                             deadlock, memory or MH_EAGAIN has that
                             status) */
    MH_ELOAD = 8,         /* the loader could not load it (dlopen error) */
    MH_ECYCLE = 9,        /* circular import, or imports nested over
                             200 deep (each importing the next) or with
                             too little of the thread's stack left */
    MH_EIO = 10,          /* a file or directory could not be read */
    MH_ENOSYM = 11,       /* the module has no such export */
    MH_EPATH = 12,        /* a search path entry is unusable */
    MH_EFORMAT = 13,      /* data in a bad or foreign format */
    MH_EDEADLOCK = 14,    /* waiting would deadlock (cross-thread cycle) */
    MH_EVERSION = 15,     /* header/library or type-size mismatch (a
                             struct's size field unset), or a version
                             constraint not met (a manifest's "modhost"
                             or a requirement's version) */
    MH_EAGAIN = 16,       /* temporarily unavailable (a locked database,
                             no file descriptor free: EMFILE, ENFILE);
                             the same call may work later */
    MH_ECALL = 17,        /* the called function raised an error */
    MH_ECANCELED = 18,    /* the caller cancelled it (mh_fetch's progress
                             callback returned non-zero) */
    MH_STATUS_COUNT_      /* not a code: one past the last */
} mh_status;

/* A static, one-line description of a code ("module not found").  Unknown
 * codes give "unknown status".  Never NULL. */
MH_API const char *mh_strerror(int code);

/* The symbolic name of a code ("MH_ENOTFOUND"); "MH_E?" when unknown. */
MH_API const char *mh_status_name(int code);

typedef struct mh_error mh_error;

/* The error's status code (never MH_OK for a real error; MH_EINVAL for a
 * NULL err). */
MH_API mh_status mh_error_code(const mh_error *err);

/* The full message, naming what failed and where, e.g.
 * "module 'codecs.rot14' not found; searched 1 path entry:\n  /opt/m:
 * no codecs/rot14.so, codecs/rot14.lua or codecs/rot14.luac".
 * Owned by err.  "" for a NULL err. */
MH_API const char *mh_error_message(const mh_error *err);

/* Free an error object.  NULL is a no-op. */
MH_API void mh_error_free(mh_error *err);

/* ---------------------------------------------------------------------- */
/* Host configuration                                                     */
/* ---------------------------------------------------------------------- */

typedef enum mh_log_level {
    MH_LOG_ERROR = MH_PLUGIN_LOG_ERROR,
    MH_LOG_WARN = MH_PLUGIN_LOG_WARN,
    MH_LOG_INFO = MH_PLUGIN_LOG_INFO,
    MH_LOG_TRACE = MH_PLUGIN_LOG_TRACE
} mh_log_level;

/*
 * Allocator hook, with Lua's lua_Alloc contract:
 *   nsize == 0: free ptr (of size osize), return NULL;
 *   ptr == NULL: allocate nsize bytes;
 *   otherwise: resize ptr from osize to nsize bytes.
 * Blocks must be aligned for any object type, as malloc's are.
 * Returning NULL for nsize > 0 is an out-of-memory error that the library
 * reports as MH_ENOMEM; it never aborts.
 */
typedef void *(*mh_alloc_fn)(void *ud, void *ptr, size_t osize, size_t nsize);

/* Log hook.  msg is one line without a trailing newline, valid only during
 * the call.  Called from whatever thread logs; must be thread-safe.
 * It may run while the host holds its own locks, so from inside the hook
 * the calls that would wait for them are refused with MH_EINVAL rather
 * than hang: importing a module not loaded yet, mh_find, mh_list,
 * mh_metadata, mh_discover, mh_host_entry_points, mh_entry_point_load,
 * mh_module_call, mh_fetch, mh_host_failures, mh_host_clear_failures,
 * mh_host_prune_cache, mh_host_add_path, mh_host_add_path_hook and
 * mh_host_add_meta_finder; mh_invalidate_caches and
 * mh_host_free do nothing.  Reading (mh_host_path_entry, a loaded module's
 * accessors, mh_intern) works; an entry no walk has opened yet is not
 * opened from the hook (mh_host_path_entry gives no finder for it then).
 * The same calls into another host are the application's own business (a
 * thread knows only the innermost hook it is in: host A's hook calling
 * host B, whose hook calls A, is not caught). */
typedef void (*mh_log_fn)(void *ud, mh_log_level level, const char *msg);

/*
 * Fault hook, for tests (as SQLite's and curl's fault loops): called
 * before each system or library call the host makes that can fail, with
 * the call's site -- "open", "opendir", "read", "write", "fsync",
 * "rename", "memfd", "dlopen", "sqlite", "curl" -- and, when it returns
 * non-zero, the call fails as the real one would (EIO, or the library's
 * error).
 * Memory faults come from the allocator hook.  Thread-safe if the host is
 * used from several threads.  It may be called with the host's locks held:
 * it must not call into the host.
 */
typedef int (*mh_fault_fn)(void *ud, const char *site);

/* Config flags. */
#define MH_CONFIG_ISOLATED        0x0001u /* ignore all MODHOST_* variables
                                             and the path variable (-E) */
#define MH_CONFIG_VERBOSE         0x0002u /* trace every decision (-v) */
#define MH_CONFIG_NO_DEFAULT_PATH 0x0004u /* no built-in default entries */
#define MH_CONFIG_NO_MEMFD        0x0008u /* load native code held in memory
                                             (database blobs) through the
                                             private cache-directory file
                                             fallback, never memfd_create */
#define MH_CONFIG_ALLOW_HTTP      0x0010u /* allow plain http:// entries on
                                             non-loopback hosts even when
                                             their index is not signed */
#define MH_CONFIG_NO_BYTECODE_WRITE 0x0020u /* never write Lua bytecode
                                             caches (also
                                             MODHOST_DONTWRITEBYTECODE=1) */
#define MH_CONFIG_BYTECODE_BESIDE 0x0040u /* cache bytecode of Lua files in
                                             a __mhcache__ folder beside the
                                             source, not in the cache dir */
#define MH_CONFIG_TRUST_LUAC      0x0080u /* accept precompiled .luac modules
                                             from every entry (Lua does not
                                             verify bytecode: only for
                                             sources you control); without
                                             it, only from signed HTTP
                                             indexes */
#define MH_CONFIG_NO_INDEX        0x0100u /* discovery reads every module's
                                             metadata afresh: no discovery
                                             index is read or written */
#define MH_CONFIG_PROBE           0x0200u /* check each new native plugin in
                                             a child process first (load and
                                             init there, under a time
                                             limit); a crash or hang is
                                             recorded with its reason and
                                             the plugin refused */
#define MH_CONFIG_INSECURE_FILES  0x0400u /* load modules from files and
                                             directories that others may
                                             write (see docs/reliability.md)
                                             */
#define MH_CONFIG_NO_COPY_WRITE   0x0800u /* never keep copies of module
                                             database rows in the blob
                                             cache (copies there are still
                                             mapped); for caches that do
                                             not last (also
                                             MODHOST_DONTWRITECOPIES=1) */
/* Every flag above; mh_host_new refuses others with MH_EINVAL. */
#define MH_CONFIG_KNOWN_          0x0fffu

/*
 * Limits of the HTTP finder.  Crosses the ABI: set `size`; zero fields
 * take the defaults shown.
 */
typedef struct mh_http_limits {
    size_t size;                  /* sizeof(mh_http_limits) */
    long connect_timeout_ms;      /* 10000 */
    long timeout_ms;              /* 60000: a whole transfer */
    long low_speed_bytes;         /* 1024: slower than this ... */
    long low_speed_seconds;       /* 10: ... for this long fails */
    size_t max_index_size;        /* 8 MiB: index.json, decoded */
    int max_redirects;            /* 5, same origin only */
    long index_fresh_s;           /* 300: how long a host uses an index
                                     whose server sent no freshness
                                     (no max-age, no no-cache) before
                                     asking again; Cache-Control wins */
    void *reserved[3];
} mh_http_limits;

/*
 * Host configuration.  Crosses the ABI: initialise it with mh_config_init()
 * so `size` is right, then set the fields you need.  Fields are only ever
 * added at the end.  Every pointer is copied by mh_host_new(); the config
 * may be freed afterwards.
 */
typedef struct mh_config {
    size_t size;            /* sizeof(mh_config), set by mh_config_init */
    unsigned flags;         /* MH_CONFIG_* */
    const char *path;       /* entries searched first, ';'-separated; NULL
                               for none (the CLI's -p goes here) */
    const char *path_env;   /* variable holding the search path; NULL means
                               "MODHOST_PATH" */
    const char *cache_dir;  /* NULL: $XDG_CACHE_HOME/modhost; else an
                               absolute path (a relative one: MH_EPATH) */
    mh_alloc_fn alloc;      /* NULL: the C library's allocator */
    void *alloc_ud;
    mh_log_fn log;          /* NULL: warnings and errors to stderr, and
                               traces too when verbose */
    void *log_ud;
    size_t max_module_size; /* largest module read into memory (database
                               blobs, downloads), in bytes, decoded;
                               0: MH_DEFAULT_MAX_MODULE */
    const char *trust;      /* ';'-separated files of trusted Ed25519
                               public keys (PEM), by absolute paths; when
                               any are given, an HTTP index must carry a
                               valid signature by one of them.  NULL:
                               $MODHOST_TRUST */
    const mh_http_limits *http; /* NULL: defaults; its size unset:
                                   MH_EVERSION */
    mh_fault_fn fault;      /* fault injection for tests, or NULL */
    void *fault_ud;
    unsigned probe_timeout_ms; /* how long a probe's child process
                                  (MH_CONFIG_PROBE) may take: 1 to
                                  3,600,000 ms, more is MH_EINVAL; 0:
                                  $MODHOST_PROBE_TIMEOUT_MS (not read by
                                  an isolated host), else 10 s */
    void *reserved[2];      /* zero */
} mh_config;

#define MH_DEFAULT_MAX_MODULE ((size_t)256 * 1024 * 1024)

/* Fill cfg with defaults (all NULL/0, size set).  Never fails. */
MH_API void mh_config_init(mh_config *cfg);

typedef struct mh_host mh_host;

/*
 * Create a host.  cfg may be NULL for all defaults.  The search path is
 * built here from cfg->path, the path variable (unless isolated or in a
 * privileged process, where the environment is ignored) and the default
 * entries; rejected entries are reported through the log hook as warnings.
 * Returns MH_OK and *out, or an error with *out = NULL.  Free with
 * mh_host_free().
 */
MH_API mh_status mh_host_new(const mh_config *cfg, mh_host **out,
                             mh_error **err);

/* Check at run time that the header the caller was compiled with matches
 * the library (version and the sizes of the public structs).  Use it as
 * MH_CHECK_VERSION(&err). */
MH_API mh_status mh_check_version_(int version, size_t config_size,
                                   size_t host_api_size,
                                   size_t plugin_desc_size, mh_error **err);
#define MH_CHECK_VERSION(err)                                             \
    mh_check_version_(MH_VERSION_NUMBER, sizeof(mh_config),               \
                      sizeof(mh_host_api), sizeof(mh_plugin_desc), (err))

/*
 * Free a host: call each loaded module's fini in reverse order of
 * initialisation, close the modules, free every interned name, finder and
 * cache.  Pointers obtained from the host are invalid afterwards.  NULL is
 * a no-op, as is a call from the host's log hook, and from a plugin's fini
 * (the host is being freed already).  A call from inside another call
 * into the same host, on the same thread -- a module's init, a finder's
 * callback, the callback of mh_list, mh_discover, mh_host_failures or
 * mh_fetch -- frees nothing and logs an error: that call still uses the
 * host; free it once the call has returned.  While it runs (a plugin's
 * fini), calls that import, find, list or fetch are refused with
 * MH_EINVAL: the host is being freed.
 */
MH_API void mh_host_free(mh_host *host);

/* ---------------------------------------------------------------------- */
/* Interned names                                                         */
/* ---------------------------------------------------------------------- */

/*
 * Return the host's canonical copy of str: equal strings give the same
 * pointer for the host's lifetime, so interned strings compare with ==.
 * Any NUL-terminated string may be interned.  Returns NULL on out of memory
 * or a NULL argument.  Lock-free for strings already interned.
 */
MH_API const char *mh_intern(mh_host *host, const char *str);

/* Like mh_intern, for len bytes of str (which need not be NUL-terminated
 * and must not contain NUL: NULL then).  str may be NULL when len is 0:
 * the empty string, as for any zero-length span. */
MH_API const char *mh_intern_len(mh_host *host, const char *str, size_t len);

/* The interned copy of str if there is one, else NULL.  Never allocates. */
MH_API const char *mh_intern_lookup(mh_host *host, const char *str);

/* Number of distinct strings interned in the host. */
MH_API size_t mh_intern_count(mh_host *host);

/*
 * Check a module name against the grammar: dot-separated identifiers
 * [A-Za-z_][A-Za-z0-9_]*, 1 to 255 bytes.  Returns MH_OK or MH_EBADNAME
 * with a message saying what is wrong (MH_EINVAL for a NULL name).
 */
MH_API mh_status mh_name_check(const char *name, mh_error **err);

#define MH_NAME_MAX 255

/* ---------------------------------------------------------------------- */
/* Search path                                                            */
/* ---------------------------------------------------------------------- */

typedef enum mh_path_source {
    MH_SOURCE_CONFIG = 0,   /* cfg->path, the CLI's -p */
    MH_SOURCE_ENV = 1,      /* the path variable */
    MH_SOURCE_DEFAULT = 2,  /* built-in default */
    MH_SOURCE_API = 3       /* mh_host_add_path() */
} mh_path_source;

/* "config", "environment", "default" or "api"; "unknown" for any other
 * value. */
MH_API const char *mh_path_source_name(mh_path_source src);

/*
 * Add one entry to the search path at position pos (0 is first; a pos
 * past the end, or (size_t)-1, appends).  The entry must be an absolute
 * directory path or a URI (scheme:rest); relative and empty entries, and
 * entries holding a control character (C0, DEL, or C1 in UTF-8), are
 * refused with MH_EPATH.
 * An entry already in the path (in its canonical spelling) is moved to
 * pos, with its finder.
 * Modules already loaded are not affected.  It may be called from a
 * finder's callback or a module's init: a walk goes over a copy of the
 * path, which the change leaves alone (the next walk sees it).
 * MH_EINVAL, and nothing changed, from the log hook, and from the
 * callbacks of a walk made when the host had no memory for that copy
 * (which walks the path under its lock, and the change would wait for).
 */
MH_API mh_status mh_host_add_path(mh_host *host, const char *entry,
                                  size_t pos, mh_error **err);

/* Number of entries in the search path. */
MH_API size_t mh_host_path_count(mh_host *host);

/*
 * Describe entry i: its text (with a URI's password shown as "***"; the
 * real one is only ever given to the finder), where it came from, and which finder claims
 * it (e.g. "fs"; NULL when none can: the reason is logged as a warning).
 * The entry's finder is opened here if it was not yet, without reading any
 * module.  Returns MH_EINVAL if i is out of range (outputs NULL and
 * MH_SOURCE_CONFIG).  The strings live until the host is freed.  Entries
 * are kept in a canonical spelling: "//" collapsed, no trailing "/".
 */
MH_API mh_status mh_host_path_entry(mh_host *host, size_t i,
                                    const char **entry,
                                    mh_path_source *source,
                                    const char **finder);

/* Forget every cached directory listing and finder state, so the next
 * import sees the file system as it is now (importlib.invalidate_caches).
 * Does nothing from the log hook (see mh_log_fn), or while the host is
 * being freed.  A finder's callback may call it (that finder's own
 * invalidate then runs inside the callback). */
MH_API void mh_invalidate_caches(mh_host *host);

/* The cache directory in effect: mh_config.cache_dir, else
 * $XDG_CACHE_HOME/modhost, else $HOME/.cache/modhost (absolute values
 * only, read with secure_getenv: not in a setuid process).  With none of
 * them, a path under /nonexistent, which every use of the cache refuses:
 * such a host keeps nothing on disk (mh_fetch and mh_host_prune_cache
 * fail with MH_EPATH). */
MH_API const char *mh_host_cache_dir(mh_host *host);

/* ---------------------------------------------------------------------- */
/* Modules                                                                */
/* ---------------------------------------------------------------------- */

typedef struct mh_module mh_module;

typedef enum mh_module_kind {
    MH_KIND_NATIVE = 0,     /* shared object with a modhost descriptor */
    MH_KIND_PLAIN = 1,      /* shared object without one (MH_IMPORT_PLAIN) */
    MH_KIND_NAMESPACE = 2,  /* a directory only: no code, no exports */
    MH_KIND_LUA = 3         /* Lua 5.4 source (a/b.lua), run once; its
                               returned table holds the exports */
} mh_module_kind;

/* "native", "plain", "namespace", "lua"; "unknown" for any other value. */
MH_API const char *mh_module_kind_name(mh_module_kind kind);

/* Import flags. */
#define MH_IMPORT_PLAIN 0x0001u  /* accept a shared object that has no
                                    descriptor, as a plain symbol module */

/*
 * Import a module by dotted name, as Python's import statement:
 *   1. check and intern the name (MH_EBADNAME before any file is touched);
 *   2. if already loaded, return it (no allocation, no system call);
 *   3. otherwise walk the search path; the first entry that has the module
 *      wins; a directory alone is a namespace package across all entries;
 *   4. load it, check its ABI, run its init, and register it.
 * Equal names give the same mh_module for the host's lifetime; init runs
 * once even when several threads import at once.  A failed import leaves
 * no module behind: a later import tries again from step 3.  Its name
 * stays interned (step 1; about 50 bytes), as every name a host is asked
 * for does until the host is freed: a long-lived host fed names from
 * outside input grows with each distinct one (mh_find and mh_metadata
 * intern theirs too), so check such names against a list of your own
 * first.
 * *out is owned by the host.
 */
MH_API mh_status mh_import(mh_host *host, const char *name, mh_module **out,
                           mh_error **err);

/* mh_import with MH_IMPORT_* flags. */
MH_API mh_status mh_import_ex(mh_host *host, const char *name,
                              unsigned flags, mh_module **out,
                              mh_error **err);

/* The module if it is loaded and ready, else NULL.  Never loads. */
MH_API mh_module *mh_host_module(mh_host *host, const char *name);

/* Number of modules loaded and ready. */
MH_API size_t mh_host_module_count(mh_host *host);

/*
 * Address of an export of mod: for a native module, from its descriptor's
 * export list; for a plain module, dlsym().  NULL if there is none (or for
 * a namespace).  Cast it to the function's real type.
 */
MH_API void *mh_module_symbol(mh_module *mod, const char *symbol);

/* Like mh_module_symbol, with MH_ENOSYM and a message naming the module
 * when the export does not exist. */
MH_API mh_status mh_module_symbol_ex(mh_module *mod, const char *symbol,
                                     void **out, mh_error **err);

/* The module's interned name. */
MH_API const char *mh_module_name(const mh_module *mod);

/* Where the module came from: a file path, or for namespaces the first
 * directory.  Valid while the module is loaded.  Built on the first call
 * (a loaded module keeps only the part its search path entry shares):
 * NULL if that runs out of memory, and a later call tries again. */
MH_API const char *mh_module_origin(const mh_module *mod);

/* Name of the finder that found it ("fs", ...). */
MH_API const char *mh_module_finder(const mh_module *mod);

MH_API mh_module_kind mh_module_kind_of(const mh_module *mod);

/* The version from its manifest, else from its descriptor, or NULL. */
MH_API const char *mh_module_version(const mh_module *mod);

/* Number of exports in the descriptor's list (0 for plain and namespace);
 * mh_module_export_name(mod, i) gives the i-th name or NULL. */
MH_API size_t mh_module_export_count(const mh_module *mod);
MH_API const char *mh_module_export_name(const mh_module *mod, size_t i);

/*
 * Call function `fn` of a module with JSON values (cJSON): the elements of
 * the array `args` (NULL for none) are its arguments; *result receives its
 * result (the first value a Lua function returns, JSON null for none), to
 * be freed with cJSON_Delete.  Works for Lua modules (functions of the
 * table the chunk returned) and native modules (functions their
 * descriptor declares with MH_CALL); other kinds give MH_ENOSYM.  A Lua
 * error comes back as MH_ECALL with the Lua message and traceback, a
 * native call's refusal as MH_ECALL with its message; never a crash.
 * Memory, a cycle, a deadlock or a passing shortage (MH_ENOMEM,
 * MH_ECYCLE, MH_EDEADLOCK, MH_EAGAIN) met by an import or a native call
 * the Lua function made, and raised on as it came, stays that status.
 * Values that have no JSON form give MH_EFORMAT.  Arguments holding a
 * number item that is not finite (NaN, an infinity: JSON has none;
 * looked for as deep as cJSON parses, not in cJSON_Raw text) give
 * MH_EINVAL before anything is called.  A Lua table's members come out
 * in the byte order of their keys, so a result always prints the same.
 */
struct cJSON;
MH_API mh_status mh_module_call(mh_module *mod, const char *fn,
                                const struct cJSON *args,
                                struct cJSON **result, mh_error **err);

/* ---------------------------------------------------------------------- */
/* Finding without loading                                                */
/* ---------------------------------------------------------------------- */

/* Where a module would come from. */
typedef struct mh_spec_info {
    size_t size;              /* sizeof(mh_spec_info), set by the caller */
    const char *name;         /* interned */
    const char *origin;       /* file path or URI */
    const char *finder;       /* "fs", ... */
    mh_module_kind kind;
    const char *loader;       /* "native", "namespace" */
    size_t entry_index;       /* search path entry that had it (its index
                                 when the search began: an entry added
                                 meanwhile moves those after it) */
    void *reserved[4];
} mh_spec_info;

/*
 * Find where name would be imported from, without loading anything.
 * info->size must be set by the caller (MH_EVERSION otherwise).  The
 * strings in *info are owned by the host and stay valid until the host is
 * freed.  Fails with MH_ENOTFOUND (message lists every entry tried),
 * MH_EBADNAME, MH_EINVAL (a NULL argument, or a call from a log hook:
 * see mh_log_fn), MH_EAGAIN (an entry could not be asked now: a locked
 * database, no descriptor free), MH_ENOMEM, or a status a finder gave
 * (MH_EFORMAT for a finder's malformed answer, a plugin finder's own).
 */
MH_API mh_status mh_find(mh_host *host, const char *name, mh_spec_info *info,
                         mh_error **err);

/*
 * Call fn once for every module visible on the search path, in name order;
 * a name found in several entries is reported for the first only, as
 * import would pick it.  Return non-zero from fn to stop early.  Entries
 * that cannot be listed are skipped with a warning.
 */
typedef int (*mh_list_fn)(void *ud, const mh_spec_info *info);
MH_API mh_status mh_list(mh_host *host, mh_list_fn fn, void *ud,
                         mh_error **err);

/* ---------------------------------------------------------------------- */
/* Metadata without loading code                                          */
/* ---------------------------------------------------------------------- */

/*
 * A module's manifest: JSON (docs/formats.md, "Manifests") with name,
 * version, description, abi, modhost (a constraint on the host version),
 * requires (an array of "name constraint" strings, imported first, in
 * order) and provides (an object: entry point group -> export name).
 * Read without running any code of the module, from, in order:
 *   1. an ELF note inside a native plugin (MH_PLUGIN_MANIFEST writes it;
 *      read by a bounds-checked reader of the file, never dlopen);
 *   2. a sidecar NAME.json beside the module (a file, a database row, an
 *      archive member), which also serves stripped plugins and Lua modules.
 * Version constraints: comma-separated comparisons, all of which must
 * hold: ">=1.2, <2", "==1.4.0", "!=1.3", "~=1.4" (1.4 <= v < 2); bare
 * "1.2" means ">=1.2".  Versions compare as dotted numbers ("1.10" >
 * "1.9"); any text after the numbers ("1.0rc1") sorts before the plain
 * release.
 */
typedef struct mh_manifest mh_manifest;

/* Which module, and where its metadata came from. */
MH_API const char *mh_manifest_name(const mh_manifest *m);
MH_API const char *mh_manifest_version(const mh_manifest *m);     /* or NULL */
MH_API const char *mh_manifest_description(const mh_manifest *m); /* or NULL */
/* The plugin ABI it declares (0: none declared). */
MH_API int mh_manifest_abi(const mh_manifest *m);
/* "elf-note", "sidecar" or "none" (no manifest: name and kind only). */
MH_API const char *mh_manifest_source(const mh_manifest *m);
/* The manifest as compact JSON text ("{}" when it has none), owned by m.
 * A module's manifest may be printed only when first asked for; NULL
 * then means out of memory (ask again later).  Safe from any thread. */
MH_API const char *mh_manifest_json(const mh_manifest *m);
/* requires, in order: module name and constraint ("" for any version).
 * mh_manifest_require gives MH_EINVAL (outputs NULL) when i is out of
 * range; the strings live as long as m. */
MH_API size_t mh_manifest_requires_count(const mh_manifest *m);
MH_API mh_status mh_manifest_require(const mh_manifest *m, size_t i,
                                     const char **name,
                                     const char **constraint);
/* provides: entry point group and the export that implements it; as for
 * requires, MH_EINVAL when i is out of range. */
MH_API size_t mh_manifest_provides_count(const mh_manifest *m);
MH_API mh_status mh_manifest_provide(const mh_manifest *m, size_t i,
                                     const char **group,
                                     const char **export_name);
/* The export providing group, or NULL. */
MH_API const char *mh_manifest_provider(const mh_manifest *m,
                                        const char *group);
/* Free a manifest from mh_metadata (not one owned by a module or lent to
 * a callback), before its host is freed.  NULL is a no-op.  The accessors
 * above return NULL or 0 for a NULL manifest. */
MH_API void mh_manifest_free(mh_manifest *m);

/*
 * Read the metadata of module `name` as import would find it, without
 * loading it or running any of its code.  *out is new (free it with
 * mh_manifest_free); a module without a manifest gets one with source
 * "none".  A manifest that cannot be read or parsed is MH_EFORMAT naming
 * the file and the fault.
 */
MH_API mh_status mh_metadata(mh_host *host, const char *name,
                             mh_manifest **out, mh_error **err);

/* The manifest a loaded module was checked against (owned by the module),
 * or NULL when it has none.  A manifest from the module's ELF note is
 * parsed from its mapping on the first call (and kept): NULL then also
 * when out of memory, or when the file was rewritten in place since it
 * was loaded (logged as a warning; the check a manifest passed no longer
 * holds for what is mapped). */
MH_API const mh_manifest *mh_module_manifest(const mh_module *mod);

/* Does version satisfy constraint?  MH_OK yes, MH_ENOTFOUND no, MH_EINVAL
 * for a malformed constraint (message says which part) or a NULL version
 * or constraint.  The empty constraint holds for every version. */
MH_API mh_status mh_version_satisfies(const char *version,
                                      const char *constraint, mh_error **err);

/* ---------------------------------------------------------------------- */
/* Discovery                                                              */
/* ---------------------------------------------------------------------- */

/* One module of the search path and its metadata, as discovery sees it.
 * The strings live until the host is freed; `manifest` only during the
 * callback (copy what you keep with mh_manifest_json). */
typedef struct mh_module_meta {
    size_t size;               /* sizeof(mh_module_meta), set by the host */
    const char *name;          /* interned */
    const char *origin;
    const char *finder;
    mh_module_kind kind;
    size_t entry_index;
    const mh_manifest *manifest; /* valid during the callback only */
    mh_status status;          /* MH_OK, or why the module is skipped */
    const char *reason;        /* the recorded failure, or NULL */
    void *reserved[4];
} mh_module_meta;

typedef int (*mh_meta_fn)(void *ud, const mh_module_meta *meta);

/*
 * Call fn for every module visible on the search path (as mh_list), with
 * its metadata, in name order, running no module code.  Metadata comes
 * from the discovery index (a SQLite file in the cache directory) where
 * the module's identity -- path, size, nanosecond mtime, inode, or a
 * finder's content identity -- is unchanged, so unchanged files are never
 * read again; the index is updated atomically.  A module whose metadata
 * failed to read, or whose load or init failed, is reported with status
 * and reason until its file changes, it is cleared, or a host that
 * recorded or listed the failure imports it successfully (an init that
 * failed for a passing reason) (mh_host_failures, `modhost doctor`).
 */
MH_API mh_status mh_discover(mh_host *host, mh_meta_fn fn, void *ud,
                             mh_error **err);

/* An entry point: a module providing `group` through one of its exports.
 * The strings live until the host is freed, so an application may keep
 * entry points and load one later; `manifest` lives only during the
 * callback. */
typedef struct mh_entry_point {
    size_t size;               /* sizeof(mh_entry_point) */
    const char *group;
    const char *module;        /* interned module name */
    const char *export_name;   /* e.g. "call:encode" */
    const char *origin;
    const mh_manifest *manifest; /* valid during the callback only */
    void *reserved[4];
} mh_entry_point;

typedef int (*mh_entry_point_fn)(void *ud, const mh_entry_point *ep);

/*
 * Call fn for every module on the search path whose manifest provides
 * `group`, in name order, without loading any.  Modules with a recorded
 * failure are skipped (see mh_host_failures).  Load one with
 * mh_entry_point_load.
 */
MH_API mh_status mh_host_entry_points(mh_host *host, const char *group,
                                      mh_entry_point_fn fn, void *ud,
                                      mh_error **err);

/* Import ep->module and look up ep->export_name: *mod and, if symbol is
 * not NULL, *symbol.  The import is by name, as Python's
 * EntryPoint.load() does: should the search path find the name elsewhere
 * by now (a file added to an entry in front since the listing), that is
 * the module loaded -- compare mh_module_origin(*mod) with ep->origin to
 * tell.  *symbol (NULL for a Lua module, whose function is looked up
 * all the same, as mh_module_call would: through its table's metatable,
 * under the host's Lua lock, so MH_ECALL if that raises; call it by name
 * with mh_module_call).  With symbol not NULL, MH_ENOSYM when the module
 * has no such export or function. */
MH_API mh_status mh_entry_point_load(mh_host *host, const mh_entry_point *ep,
                                     mh_module **mod, void **symbol,
                                     mh_error **err);

/* A recorded failure: a module that discovery skips until it changes.
 * The strings live until the host is freed. */
typedef struct mh_failure {
    size_t size;
    const char *name;
    const char *origin;
    const char *reason;
    mh_status status;
    int64_t when;              /* Unix time it was recorded */
    void *reserved[4];
} mh_failure;

typedef int (*mh_failure_fn)(void *ud, const mh_failure *f);

/* List the failures recorded in the discovery index, and the modules
 * whose stored manifest this host's ABI or version rules out (MH_EABI,
 * MH_EVERSION: judged at each call, never recorded, so not cleared), in
 * name order, until fn returns non-zero.  This reads the index only: a
 * failure stays listed until a listing (mh_discover, mh_host_entry_points)
 * sees its module changed, it is cleared, or a host that recorded or
 * listed it loads the module (mh_import); one whose file is gone is
 * dropped here (`modhost doctor` lists the modules first).  fn runs once the index is
 * closed, so it may clear failures or import.  No index yet, or none by
 * MH_CONFIG_NO_INDEX: MH_OK and no call.  MH_EPATH when the cache
 * directory cannot be used (not private, not creatable, none at all) and
 * MH_EIO when the index file is there but cannot be opened: never a false
 * "nothing recorded".  MH_EAGAIN when the index cannot be read now
 * (locked by another process past the 5 s busy timeout, at its open or
 * while its rows are read); it is left as it is. */
MH_API mh_status mh_host_failures(mh_host *host, mh_failure_fn fn, void *ud,
                                  mh_error **err);

/* Forget recorded failures: all (name NULL) or those of one module.
 * *cleared, if not NULL, receives how many were removed.  MH_EBADNAME for
 * a name no module can have; MH_EAGAIN, MH_EPATH and MH_EIO as for
 * mh_host_failures. */
MH_API mh_status mh_host_clear_failures(mh_host *host, const char *name,
                                        size_t *cleared, mh_error **err);

/* ---------------------------------------------------------------------- */
/* The cache directory                                                    */
/* ---------------------------------------------------------------------- */

/* The parts of a cache directory (docs/formats.md). */
typedef enum mh_cache_part {
    MH_CACHE_BYTECODE,  /* lua/: compiled Lua chunks */
    MH_CACHE_BLOBS,     /* blobs/: downloaded modules, copies of database
                           modules, and which copy each origin has */
    MH_CACHE_STAMPS,    /* verified/: which copies were hashed already */
    MH_CACHE_PROBES,    /* probe/: modules the probe passed */
    MH_CACHE_SCRATCH,   /* native/: images a process that died while
                           loading them from memory left behind */
    MH_CACHE_HTTP,      /* http/: each site's index, signature and serial
                           floor (never pruned: the floor keeps older
                           signed indexes out) */
    MH_CACHE_INDEX,     /* discovery.db: the discovery index and recorded
                           failures (never pruned: see
                           mh_host_clear_failures) */
    MH_CACHE_NPARTS
} mh_cache_part;

typedef struct mh_cache_count {
    uint64_t files;           /* what is there after the call */
    uint64_t bytes;           /* (the files' sizes) */
    uint64_t removed_files;   /* what the call removed */
    uint64_t removed_bytes;
} mh_cache_count;

/* Crosses the ABI: parts a later library adds go at the end of part[],
 * and are filled only where the caller's size has room for them. */
typedef struct mh_cache_usage {
    size_t size;                          /* sizeof(mh_cache_usage), set by
                                             the caller */
    mh_cache_count part[MH_CACHE_NPARTS]; /* by mh_cache_part */
} mh_cache_usage;

/* The part's name: "bytecode", "blobs", "stamps", "probes", "scratch",
 * "http", "index"; NULL when out of range. */
MH_API const char *mh_cache_part_name(mh_cache_part part);

/*
 * Count what the host's cache directory holds, and remove the files not
 * used for unused_s seconds or more (unused_s < 0: remove nothing), but
 * never one written or used in the last ten minutes, which a host may be
 * writing or about to load.  A file's last use is the later of its
 * modification time and its access time, which reading or mapping it
 * sets: at most once a day with Linux's default `relatime` mount option,
 * so the access time counts for a day more than it says.  (A filesystem
 * mounted `noatime` keeps the time a file was written, so files in use
 * age too, and are made again when needed.)
 *
 * Everything removed is made again when a host needs it (compiled,
 * fetched, copied from its database row, hashed), and hosts running
 * meanwhile lose nothing: a file mapped stays mapped.  Removed with what
 * is unused: a copy's stamp; and, whatever their age, the records of
 * origins whose copy is gone.  Kept however long unused: a download that
 * a site's cached index lists (what mh_fetch keeps for offline use).
 * http/ and discovery.db are only counted (but for the temporary files a
 * writer killed mid-way left, removed from every part once ten minutes
 * old).  Only regular files are
 * counted or removed; nothing outside the cache directory is reached,
 * whatever links it holds.
 *
 * usage->size must be set (MH_EINVAL otherwise); the rest receives the
 * counts by part (all zero when there is no cache directory yet: none is
 * made).  MH_EPATH when the cache directory cannot be used (not private,
 * or there is none: see mh_host_cache_dir), or does not exist yet and
 * could not be made private where it would be (a directory on its way
 * that others may write); MH_EIO naming the first file
 * or directory that could not be read or removed (the rest is still
 * done, and counted).
 */
MH_API mh_status mh_host_prune_cache(mh_host *host, int64_t unused_s,
                                     mh_cache_usage *usage, mh_error **err);

/* ---------------------------------------------------------------------- */
/* Module databases                                                       */
/* ---------------------------------------------------------------------- */

/*
 * Write modules into a module database: a SQLite Archive (the `sqlar`
 * table of `sqlite3 -A`), created if absent.  Each input is a file, stored
 * under its path as given (which must then be relative, without "..";
 * leading "./" dropped) or, for an absolute path, under its base name; or
 * a directory, whose files are stored under their paths relative to it,
 * so packing a search path directory gives a database with the same
 * modules (a dangling link in it is passed over; a file the walk cannot
 * read, such as a link loop, fails the pack, naming it).  Native code (files
 * ending in ".so") is stored as is, so importing it needs no inflating
 * (as Android stores the native libraries of an APK); every other file is
 * zlib-compressed where that makes it smaller.  Existing entries of the
 * same name are replaced.  The SHA-256 of every native module in the
 * database is recorded too (table mh_sha256, kept true by triggers), so
 * that hosts map a copy of a module kept in their blob cache instead of
 * reading its row (docs/formats.md).  Everything is written in one
 * transaction: readers see all of it or none of it, and on failure
 * nothing changes (a database file created by this call is removed).
 * db may be a link to a database, not a dangling one (MH_EINVAL: a new
 * database is built aside and linked into place, which a link there
 * prevents).  *count, if not NULL, receives the number of files written.
 * Same as mh_pack_ex with flags 0.
 */
MH_API mh_status mh_pack(const char *db, const char *const *inputs,
                         size_t n_inputs, size_t *count, mh_error **err);

/* mh_pack flags */
#define MH_PACK_COMPRESS_CODE 0x0001u /* compress native code too: a smaller
                                         database, slower imports (each is
                                         inflated; see docs/performance.md) */

/* mh_pack with MH_PACK_* flags; any other bit is MH_EINVAL. */
MH_API mh_status mh_pack_ex(const char *db, const char *const *inputs,
                            size_t n_inputs, unsigned flags, size_t *count,
                            mh_error **err);

/* ---------------------------------------------------------------------- */
/* Serving modules over HTTP                                              */
/* ---------------------------------------------------------------------- */

/*
 * Write DIR/index.json describing every module under DIR (format 1: see
 * docs/http.md): name, kind, relative path, size and SHA-256 of each.
 * With sign_key (a PEM Ed25519 private key file, as mh_keygen writes),
 * also write DIR/index.json.sig, the detached signature of index.json's
 * exact bytes.  A signing key group or others may read or write, or one
 * inside DIR (by its name or by what it names: it would be served with
 * the index), is refused (MH_EINVAL, naming it and the way out) before
 * anything is written.  Both files are written atomically (temporary
 * file, fsync, rename).  *count, if not NULL, receives the number of
 * modules.
 */
MH_API mh_status mh_index_dir(const char *dir, const char *sign_key,
                              size_t *count, mh_error **err);

/*
 * Make an Ed25519 key pair: BASE.key (private, PEM PKCS#8, mode 0600) and
 * BASE.pub (public, PEM).  A BASE that names a directory (its last
 * component empty, "." or "..") is MH_EINVAL: it would make the hidden
 * DIR/.key.  Refuses to overwrite existing files (MH_EINVAL,
 * naming the file; a BASE.key without its BASE.pub, as a run killed
 * between the two leaves, is refused saying how to mend it).  Each file
 * is written under a temporary name beside it (BASE.key.tmp-*) and linked
 * into place, so a failure or a kill never leaves a partial key under the
 * real name; a failure removes what the call made, and temporary files
 * a killed run left are removed by the next run once they are older than
 * ten minutes.
 */
MH_API mh_status mh_keygen(const char *base, mh_error **err);

/* Progress of mh_fetch: bytes so far and expected (0 when unknown) of the
 * module being downloaded, plus its position in the whole job.  Return
 * non-zero to cancel the whole job: that download stops, no other is
 * begun, and mh_fetch returns MH_ECANCELED (what was cached before stays,
 * counted in *fetched). */
typedef int (*mh_fetch_progress_fn)(void *ud, const char *module,
                                    size_t index, size_t count,
                                    uint64_t now, uint64_t total);

/*
 * Download modules from the host's HTTP(S) search path entries into the
 * cache, ahead of time, so they import later without the network.  With
 * n == 0, every module of every HTTP entry; else the named modules (each
 * from the first HTTP entry that has it).  *fetched, if not NULL,
 * receives the number of modules now in the cache.  progress may be NULL.
 * Every module and entry is tried; the first failure is returned (the
 * others are logged as warnings), unless progress cancels the job
 * (MH_ECANCELED, whatever failed before): MH_EPATH when nothing can be cached
 * (the cache directory's blobs/ cannot be made private -- a directory on
 * its way others may write, not a root-owned sticky one -- or there is no
 * cache directory: checked first, whatever the path holds) or an HTTP
 * entry cannot be used (not a usable
 * URL); MH_EIO, MH_EFORMAT when a module cannot be downloaded, does not
 * match its index, or cannot be written into the cache; MH_ENOTFOUND
 * when a named module is in no HTTP entry's index.
 */
MH_API mh_status mh_fetch(mh_host *host, const char *const *names, size_t n,
                          mh_fetch_progress_fn progress, void *ud,
                          size_t *fetched, mh_error **err);

#ifdef __cplusplus
}
#endif
#endif /* MODHOST_H */
