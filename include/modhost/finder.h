/*
 * modhost/finder.h -- the finder API: teach a host a new place to find
 * modules (Python's sys.path_hooks and sys.meta_path).
 *
 * A finder is a table of functions, mh_finder_class, plus a per-instance
 * state of the finder's own.  The built-in finders -- "fs" (directories),
 * "sqlite" (module databases) and "http" (HTTP(S) indexes) -- are tables
 * of exactly this type, registered the same way a third party's are.
 *
 * Two kinds of registration, one table type:
 *
 *   Path hook (mh_host_add_path_hook): claims search path entries, by a
 *   scheme ("tar:/srv/plugins.tar") or by a predicate (claims()).  The
 *   host opens one instance per entry it claims, on first use, and keeps
 *   it.  Hooks are asked in chain order; the first that claims an entry
 *   gets it, and any later hook that would also have claimed it is named
 *   as shadowed (in the log, by mh_host_path_entry_info and `modhost
 *   path`), so two hooks never shadow each other silently.
 *
 *   Meta-path finder (mh_host_add_meta_finder): asked for every module,
 *   before or after the search path walk (which is itself the link named
 *   "path" of the meta chain).  One instance, opened with entry NULL at
 *   registration.
 *
 * A finder can also be a plugin: a search path entry whose scheme no hook
 * claims (say "tar:/srv/a.tar") makes the host import the module
 * "finders.<scheme>" (finders/tar.so in a directory of the search path),
 * whose descriptor exports MH_FINDER_EXPORT ("mh_finder") pointing to its
 * mh_finder_class, with `scheme` set to that scheme.  The host registers
 * it as a path hook and keeps the module loaded until the host is freed.
 *
 * Contract of the functions (all return an mh_status):
 *   - claims: may the hook have this entry?  No I/O beyond a cheap check.
 *     NULL: the hook claims exactly the entries "scheme:...".
 *   - open: make the instance for `entry` (NULL for a meta finder, whose
 *     open runs once, when it is added, and fails mh_host_add_meta_finder if it
 *     fails).  For an entry, a failure makes the entry unusable (logged
 *     once, retried at its first use a second later, or after
 *     mh_invalidate_caches; the same failure again is not logged again),
 *     but MH_EAGAIN and MH_ENOMEM are passing: they fail the import that
 *     met them, as find's errors do -- the entry may hold the module, so
 *     a later entry's of the same name must not load in its place -- and
 *     the open is tried again at the next import.  Use MH_EAGAIN only for
 *     what passes by itself (busy, no descriptor free); trouble that may
 *     pass but may as well not (a backend that does not answer) is better
 *     an MH_OK open whose finds say MH_ENOTFOUND with the reason.
 *     The host puts "finder 'NAME': " before the message of a failed open
 *     unless it starts with "NAME:" already.
 *   - find: look for module `name` (checked against the name grammar, so
 *     it never holds '/' or "..": mh_finder_relpath() maps it safely).
 *     MH_OK and *spec filled: the module is here (kind NATIVE or LUA), or
 *     only a package directory is (kind NAMESPACE: the walk goes on).
 *     MH_ENOTFOUND after cx->svc->miss(): not here, with a one-line reason
 *     that the host lists in its "not found" message.  Any other status,
 *     after cx->svc->error(): an error for this module in this entry.
 *   - list (optional): call fn once per module; stop when it returns
 *     non-zero.
 *   - read (optional if every spec has a `file`): the bytes of the item
 *     `key` named in a spec, in memory from cx->svc->alloc.  On failure
 *     *out stays empty.  The host checks native images as ELF and loads
 *     them from a sealed memfd; Lua text is compiled by the host.
 *   - invalidate (optional): forget cached state (mh_invalidate_caches).
 *   - close: free the instance.
 * Strings: those passed to list's fn need only live during that call of
 * fn.  Those find puts in *spec are read after find returns, so they
 * must not live in find's own stack frame: return strings held by the
 * instance, or copies from cx->svc->intern(), which live as long as the
 * host.  The host keeps interned copies of everything either way.
 *
 * Threads: the host may call find, list and read on one instance from
 * several threads at once; a finder serialises itself where it must.
 *
 * Compatibility: mh_finder_class begins with `version` and `size` and only
 * grows at its end; MH_FINDER_VERSION changes only if a field changes
 * meaning.  Finders that are plugins include only this header and
 * <modhost/plugin.h> and never link against libmodhost: everything they
 * need from the host is in cx->svc.
 */
#ifndef MODHOST_FINDER_H
#define MODHOST_FINDER_H

#include <stddef.h>
#include <stdint.h>

#include "modhost.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MH_FINDER_VERSION 1

/* The export a finder plugin declares: MH_EXPORT(MH_FINDER_EXPORT, &cls). */
#define MH_FINDER_EXPORT "mh_finder"

/* spec flags */
#define MH_SPEC_BYTECODE 0x1u  /* Lua: a precompiled chunk, not source */
#define MH_SPEC_TRUSTED  0x2u  /* the bytes are covered by a signature the
                                  finder verified (lets .luac load) */
#define MH_SPEC_META_WHOLE 0x4u /* meta_key gives the module's whole
                                  manifest, the note's included (an index
                                  made from the modules): discovery may use
                                  it without reading the module's bytes */

/* Where a module is, as a finder answers.  The host zeroes it before
 * find; list's fn gets one the finder zeroed.  It grows only into
 * `reserved`, so its size never changes. */
typedef struct mh_finder_spec {
    mh_module_kind kind;    /* NATIVE, LUA or NAMESPACE */
    unsigned flags;         /* MH_SPEC_* */
    const char *origin;     /* what users see: a path, a URI,
                               "archive!/member"; required */
    const char *file;       /* a regular file the loader may open directly,
                               or NULL: then the host calls read(key) */
    const char *key;        /* the finder's own name of the item for read() */
    const char *meta_file;  /* a sidecar manifest file (NAME.json), or NULL */
    const char *meta_key;   /* ... or its item for read(), or NULL */
    const char *identity;   /* for items without a `file`: text that changes
                               whenever the bytes may have (size, mtime,
                               a content hash); NULL if unknown.  The
                               discovery index re-reads an item whose
                               identity changed, and always one with none */
    const char *copy;       /* with key and no file, for a NATIVE module:
                               an absolute path to a local file that may
                               hold a copy of key's bytes (a download
                               cache), or NULL.  The host maps the module
                               from it, with no read(key) and no copy in
                               memory, when it is a regular file of this
                               user or root (its last component not a
                               link), writable by no one else, at most
                               max_module_size bytes, not on a network
                               filesystem, unchanged while hashed, whose
                               SHA-256 as read through the descriptor
                               mapped is copy_sha256 (or, unless the spec
                               is MH_SPEC_TRUSTED, the very file the host
                               hashed so before, unchanged since: its
                               stamp in the cache directory matches its
                               device, inode, size, mtime and ctime);
                               otherwise it calls read(key).  It stays mapped while the module
                               is loaded: replace it only by rename, never
                               rewrite it in place */
    const char *copy_sha256; /* 64 lowercase hex digits; required with
                               copy (other text makes the answer bad) */
    void *reserved[2];
} mh_finder_spec;

/* Bytes handed from a finder to the host: data from cx->svc->alloc(size).
 * The host checks len <= size and len <= max_module_size.  Host-owned,
 * fixed forever (a new need gets a new service). */
typedef struct mh_finder_blob {
    unsigned char *data;
    size_t len;             /* bytes of content */
    size_t size;            /* bytes allocated: what free() is given */
} mh_finder_blob;

typedef struct mh_finder_ctx mh_finder_ctx;

/* What the host offers a finder, through every call's context.  Grows
 * only at its end (check `size`). */
typedef struct mh_finder_services {
    uint32_t size;          /* sizeof(mh_finder_services) in the host */
    uint32_t reserved_;
    /* Record the error of this call, printf-style; returns code, so a
     * finder writes: return cx->svc->error(cx, MH_EIO, "...", ...). */
    mh_status (*error)(mh_finder_ctx *cx, mh_status code, const char *fmt,
                       ...) __attribute__((format(printf, 3, 4)));
    /* From find: why the module is not in this entry, a line of the "not
     * found" message.  Line breaks become spaces, a reason is cut past
     * 511 bytes, and a second call's is added after "; ". */
    void (*miss)(mh_finder_ctx *cx, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
    /* Through the host's log hook, tagged with the finder's name. */
    void (*log)(mh_finder_ctx *cx, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
    /* The host's allocator: NULL when out of memory. */
    void *(*alloc)(mh_finder_ctx *cx, size_t size);
    void (*free)(mh_finder_ctx *cx, void *ptr, size_t size);
    /* The largest module the host accepts in memory, in bytes. */
    size_t (*max_module_size)(mh_finder_ctx *cx);
    /* Is the host tracing (-v)?  Then log(MH_LOG_TRACE) is worth calling. */
    int (*verbose)(mh_finder_ctx *cx);
    /* The host's canonical copy of s, valid until the host is freed (NULL
     * when out of memory): for strings find returns in *spec. */
    const char *(*intern)(mh_finder_ctx *cx, const char *s);
    /* Open path read-only as the host opens a file of code: the file and
     * each directory of its real path owned by root or this user and
     * writable by no one else (a root-owned sticky directory aside),
     * unless the application set MH_CONFIG_INSECURE_FILES; the file
     * regular (a FIFO is refused without waiting for a writer).  For a
     * finder that serves code out of a file of its own (an archive, a
     * database): others must not be able to write what it serves.  MH_OK
     * with *fd (the caller closes it); else *fd is -1, the reason --
     * naming the file or directory, its owner and mode, and the way out
     * -- is written into why (why_size bytes, cut to fit), and the code
     * returned: MH_ENOTFOUND for a file that is not there, MH_EPATH for
     * one that is not safe or not regular, MH_EAGAIN when no descriptor
     * was free, MH_EIO for another failure, MH_EINVAL for a NULL path.
     * Nothing is recorded: the finder says what it makes of it.  New in this
     * version of the services: check MH_SVC_HAS(svc, open_code) first. */
    mh_status (*open_code)(mh_finder_ctx *cx, const char *path, int *fd,
                           char *why, size_t why_size);
} mh_finder_services;

/* True when the host's services have member `field`. */
#define MH_SVC_HAS(svc, field) \
    ((svc)->size >= offsetof(mh_finder_services, field) + sizeof((svc)->field))

/* The context of one call: services, and the `ud` given at registration.
 * Made by the host; finders only read it (svc->size says what svc has). */
struct mh_finder_ctx {
    const mh_finder_services *svc;
    void *ud;
};

typedef int (*mh_finder_list_fn)(void *ud, const char *name,
                                 const mh_finder_spec *spec);

typedef struct mh_finder_class {
    uint32_t version;       /* MH_FINDER_VERSION */
    uint32_t size;          /* sizeof(mh_finder_class) */
    const char *name;       /* unique in the host's chain: "tar" */
    const char *scheme;     /* entries "scheme:..." it claims, or NULL */
    const char *description;/* one line for `modhost path`, or NULL */
    int (*claims)(mh_finder_ctx *cx, const char *entry);
    mh_status (*open)(mh_finder_ctx *cx, const char *entry, void **state);
    mh_status (*find)(mh_finder_ctx *cx, void *state, const char *name,
                      mh_finder_spec *spec);
    mh_status (*list)(mh_finder_ctx *cx, void *state, mh_finder_list_fn fn,
                      void *ud);
    mh_status (*read)(mh_finder_ctx *cx, void *state, const char *key,
                      mh_finder_blob *out);
    void (*invalidate)(mh_finder_ctx *cx, void *state);
    void (*close)(mh_finder_ctx *cx, void *state);
    void *reserved[6];      /* zero */
} mh_finder_class;

/* The finder table initialiser: MH_FINDER_CLASS_INIT fills version and
 * size, so a finder writes
 *   static const mh_finder_class cls = { MH_FINDER_CLASS_INIT,
 *       .name = "tar", .scheme = "tar", .open = ..., ... }; */
#define MH_FINDER_CLASS_INIT \
    .version = MH_FINDER_VERSION, .size = (uint32_t)sizeof(mh_finder_class)

/*
 * The shared resolution rule, for finders over a tree of files: module
 * "a.b.c" with suffix ".so" is "a/b/c.so".  Writes it into buf (size
 * bytes) and returns its length, or 0 (and "" in buf) if it does not fit.
 * Header-only, so plugins can use it.
 */
static inline size_t mh_finder_relpath(const char *name, const char *suffix,
                                       char *buf, size_t size)
{
    size_t n = 0;
    if (size > 0)
        buf[0] = '\0'; /* "" when it does not fit */
    for (; name[n]; n++) {
        if (n + 1 >= size) {
            if (size > 0)
                buf[0] = '\0';
            return 0;
        }
        buf[n] = name[n] == '.' ? '/' : name[n];
    }
    for (size_t i = 0; suffix && suffix[i]; i++, n++) {
        if (n + 1 >= size) {
            buf[0] = '\0';
            return 0;
        }
        buf[n] = suffix[i];
    }
    buf[n] = '\0';
    return n;
}

/* ---- registration (these link against libmodhost) -------------------- */

/* Where a finder goes in a chain. */
typedef enum mh_chain_pos {
    MH_CHAIN_FIRST = 0,
    MH_CHAIN_LAST = 1,
    MH_CHAIN_BEFORE = 2,    /* just before the finder named `anchor` */
    MH_CHAIN_AFTER = 3      /* just after it */
} mh_chain_pos;

/*
 * Add a path hook.  cls (and everything it points to) must outlive the
 * host; ud is handed to every call in cx->ud.  The built-in chain is
 * http, sqlite, fs; "sqlite" claims sqlite: entries and files with the
 * SQLite header, "fs" every absolute path that is a directory or does not
 * exist, so a hook for directories goes before "fs".  Finder plugins
 * loaded by scheme go just before "fs" and get as cx->ud the userdata
 * their init set (mh_host_api.set_userdata; NULL if none): that host's,
 * as one loaded object serves every host of the process.
 * Fails with MH_EINVAL when the name is already in the chain, the scheme
 * is already claimed by another hook, the anchor does not exist, or cls
 * is malformed (no name, no open/find/close, neither scheme nor claims);
 * MH_EVERSION when cls->version or size is not one this library knows.  Entries no hook could claim so
 * far are tried again with the new chain; entries already claimed keep
 * their finder.  MH_EINVAL, and nothing added, from the host's log hook
 * and from a finder's claims() (which run while the chain is asked, over
 * a copy of it, with no lock held).
 */
MH_API mh_status mh_host_add_path_hook(mh_host *host,
                                       const mh_finder_class *cls, void *ud,
                                       mh_chain_pos pos, const char *anchor,
                                       mh_error **err);

/*
 * Add a meta-path finder, opened at once (open with entry NULL).  The
 * meta chain starts as just "path" (the search path walk): MH_CHAIN_FIRST
 * or MH_CHAIN_BEFORE "path" puts a finder ahead of every entry, LAST or
 * AFTER "path" makes it a fallback.  Same rules as for path hooks (also
 * MH_EINVAL from the log hook and from claims()); the result of open is
 * returned.
 */
MH_API mh_status mh_host_add_meta_finder(mh_host *host,
                                         const mh_finder_class *cls, void *ud,
                                         mh_chain_pos pos, const char *anchor,
                                         mh_error **err);

/* One link of the finder chains, in the order they are asked. */
typedef struct mh_finder_info {
    size_t size;            /* sizeof(mh_finder_info), set by the caller */
    const char *name;
    const char *role;       /* "meta" or "hook" */
    const char *scheme;     /* or NULL */
    const char *description;/* or NULL */
    const char *module;     /* the plugin module that brought it, or NULL */
    void *reserved[4];
} mh_finder_info;

/* Number of links: meta chain (with "path") first, then the path hooks. */
MH_API size_t mh_host_finder_count(mh_host *host);

/* Describe link i; MH_EINVAL when out of range. */
MH_API mh_status mh_host_finder_info(mh_host *host, size_t i,
                                     mh_finder_info *info);

/* One search path entry, and who claimed it. */
typedef struct mh_path_entry_info {
    size_t size;            /* sizeof(mh_path_entry_info), set by caller */
    const char *entry;      /* as in mh_host_path_entry */
    mh_path_source source;
    const char *finder;     /* the hook that claimed it (even when its
                               open failed: see error), or NULL */
    const char *shadowed;   /* other hooks that would have claimed it,
                               ", "-separated, or NULL */
    const char *error;      /* why no finder could open it, or NULL */
    size_t asked;           /* times this host's finds asked its finder
                               for a module; an entry skipped for lacking
                               the module's top-level package (its root
                               listing, watched, has no such directory)
                               is not asked */
    void *reserved[3];
} mh_path_entry_info;

/* Describe entry i (opening its finder if needed); MH_EINVAL when out of
 * range.  The strings live until the host is freed. */
MH_API mh_status mh_host_path_entry_info(mh_host *host, size_t i,
                                         mh_path_entry_info *info);

#ifdef __cplusplus
}
#endif
#endif /* MODHOST_FINDER_H */
