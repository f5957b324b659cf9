/*
 * finders/finder.h -- the host's side of the finder API
 * (include/modhost/finder.h): the chains of registered finders, the call
 * context, and a finder's answer as the host keeps it (mh_found).
 *
 * Every finder, built-in or not, is an mh_finder_class; the path hooks
 * (finders/hooks.c) pick the class that claims an entry; the host opens
 * one instance per entry, once, and keeps it (sys.path_importer_cache).
 * The built-in finders are tables of the public type, called the same
 * way; being part of the library, they also use its internals directly
 * (the host pointer in their state, mh_err, mh_int_*), and reach the
 * call's error slot and miss buffer through MH_FCX(cx).
 */
#ifndef MH_FINDERS_FINDER_H
#define MH_FINDERS_FINDER_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "modhost.h"
#include "modhost/finder.h"

struct mh_host;
struct mh_buf;

/* A link of the finder chains (host->chain): a registered class, its ud,
 * and for a meta finder its one instance.  Records live until the host is
 * freed, so entries may point at them. */
typedef struct mh_hook {
    const mh_finder_class *cls;
    void *ud;
    const char *name;       /* interned */
    const char *module;     /* interned: the plugin that brought it */
    bool meta;              /* in the meta chain */
    bool is_path;           /* the "path" link: walk the search path */
    void *state;            /* meta finders: the instance */
    bool opened;            /* meta finders: open succeeded */
} mh_hook;

/* The context handed to every finder call.  The public part comes first;
 * built-in finders reach the rest through MH_FCX(cx). */
typedef struct mh_fcx {
    mh_finder_ctx pub;
    struct mh_host *h;
    const mh_hook *hook;
    mh_error **err;         /* where error() puts its error: never NULL */
    struct mh_buf *why;     /* where miss() appends, or NULL */
    size_t why_mark;        /* why's length before this call */
    /* A built-in finder's room for the path it answers with: the host
     * copies or interns the answer before the next call (mh_fcx_found). */
    char path[PATH_MAX + MH_NAME_MAX + 16];
    /* For an import (set by the host): a built-in finder that can hand
     * over a module's bytes with its answer, in the same read of
     * its store, puts them in `bytes` (host memory); the host keeps them
     * with the answer (mh_found.pre) or frees them. */
    bool want_bytes;
    struct mh_finder_blob bytes;
} mh_fcx;

#define MH_FCX(cx) ((mh_fcx *)(cx))

/* Call the close or invalidate function of hook k on an instance. */
void mh_fcx_close(struct mh_host *h, const mh_hook *k, void *state);
void mh_fcx_invalidate(struct mh_host *h, const mh_hook *k, void *state);

/* Set up cx for a call to hook's class; err must not be NULL. */
void mh_fcx_init(mh_fcx *cx, struct mh_host *h, const mh_hook *hook,
                 struct mh_buf *why, mh_error **err);

typedef struct mh_found {
    mh_module_kind kind;
    const char *origin;   /* interned: what users see (path or URI) */
    const char *file;     /* interned: a file the loader opens, or NULL:
                             then the loader asks the finder's read() */
    const char *key;      /* interned, finder-private: which item to read */
    const char *meta_file;/* interned: sidecar manifest file, or NULL */
    const char *meta_key; /* interned: ... or its item for read() */
    const char *identity; /* interned, or NULL */
    const char *copy;     /* interned: a local copy of key's bytes, used
                             if it hashes to copy_sha256, or NULL */
    const char *copy_sha256; /* interned, 64 lowercase hex digits */
    bool binary;          /* Lua: a precompiled chunk (.luac), not source */
    bool trusted;         /* its bytes are covered by a verified signature */
    bool meta_whole;      /* meta_key has the whole manifest (the note's) */
    /* Set by the host, not the finder: */
    const char *finder;   /* class name */
    size_t entry;         /* search path index; SIZE_MAX: a meta finder */
    const mh_hook *hook;
    void *state;          /* the finder instance that found it */
    const struct mh_finder_blob *image; /* native bytes already read (by
                                   the metadata check), or NULL */
    int fd;               /* the module file (native code, Lua source or
                             bytecode), opened and checked once by import
                             (a native one's metadata is read from it; it
                             is the one mapped or compiled), or -1 */
    long long fd_size;    /* its size, from the check's fstat */
    bool from_copy;       /* file and fd are the finder's copy, checked to
                             hash to copy_sha256 (host/import.c) */
    dev_t fd_dev;         /* ... and the rest of its identity, which a */
    ino_t fd_ino;         /* failure is recorded against (the path may */
    struct timespec fd_mtim; /* lead to another file by then); 0: none */
    struct timespec fd_ctim;
    /* A transient answer (mh_find_spec for an import): origin and file
     * are copies in this block, not interned -- a loaded module keeps its
     * origin in a shorter form (cache/registry.h) -- and go with
     * mh_found_release.  NULL: every string is interned. */
    char *own;
    size_t own_size;
    /* A transient answer's bytes, read with the find (see mh_fcx.bytes),
     * or empty: import hands a native module's to the metadata check,
     * the Lua loader takes a Lua module's, in place of a read.  Freed by
     * mh_found_release. */
    struct mh_finder_blob pre;
} mh_found;

/* Free a transient answer's copies (nothing for an interned one). */
void mh_found_release(struct mh_host *h, mh_found *f);

/* Bytes of a module held in memory, from the host's allocator. */
typedef mh_finder_blob mh_blob;

void mh_blob_free(struct mh_host *h, mh_blob *b);

/* A finder's answer as the host keeps it: every string interned (but
 * origin and file copied into f->own when transient), the spec checked
 * (kind, origin, a way to read it).  MH_OK, MH_ENOMEM or MH_EFORMAT
 * naming the finder and module. */
mh_status mh_fcx_found(struct mh_host *h, const mh_hook *hook,
                       const char *name, const mh_finder_spec *spec,
                       bool transient, mh_found *f, mh_error **err);

/* A status a finder returned from find, open or read, as the host passes
 * it on: one that is no mh_status (a plugin's -1, a stray number) is
 * MH_EIO, and *odd says so (the caller's message names the finder and the
 * number). */
mh_status mh_fcx_status(mh_status rc, bool *odd);

/* Is k a finder of the library's own (fs, sqlite, http)?  Their errors
 * name what failed and where themselves; others' are prefixed with the
 * module, the entry and the finder's name -- unless they say where
 * already (mh_fcx_placed). */
bool mh_hook_builtin(const mh_hook *k);

/* Does a finder's message msg say where it comes from?  It starts with
 * the finder's name and ':', with `place` or `place2` (an entry as shown
 * and as given, an origin; either may be NULL), or with a head (up to its
 * first ": ") that one of them starts with ("mem:app: ..." of the origin
 * "mem:app/greet.lua"). */
bool mh_fcx_placed(const char *msg, const char *name, const char *place,
                   const char *place2);

/* Read item `key` of the finder that made f: module bytes or a sidecar. */
mh_status mh_fcx_read(struct mh_host *h, const mh_found *f,
                        const char *key, mh_blob *out, mh_error **err);

/* Walk the search path for `name` (interned), as import does.  MH_OK with
 * *found (a module, or a namespace package when only directories were
 * found), MH_ENOTFOUND listing every entry tried and why it missed, or the
 * error of the entry that failed. (host/find.c) */
mh_status mh_find_spec(struct mh_host *h, const char *name, mh_found *found,
                       mh_error **err);

/* mh_find_spec for an import: a module's answer is transient (see
 * mh_found.own); release it with mh_found_release. */
mh_status mh_find_spec_transient(struct mh_host *h, const char *name,
                                 mh_found *found, mh_error **err);

/* Every module visible on the search path, each once (the one import
 * would pick), sorted by name; fn gets the interned name and the found.
 * (host/find.c) */
typedef int (*mh_found_fn)(void *ud, const char *name, const mh_found *f);
mh_status mh_list_found(struct mh_host *h, mh_found_fn fn, void *ud,
                        mh_error **err);

/* ---- the chains (finders/hooks.c) ---------------------------------- */

typedef struct mh_chain {
    pthread_rwlock_t lock;
    mh_hook **hooks;        /* path hooks, in order */
    size_t nhooks, hcap;
    mh_hook **meta;         /* meta finders, "path" among them */
    size_t nmeta, mcap;
    bool ready;             /* lock initialised */
} mh_chain;

/* The built-in chains: hooks http, sqlite, fs; meta [path].  -1 on OOM. */
int mh_chain_init(struct mh_host *h);
/* Close the meta finders' instances (before plugins are unloaded). */
void mh_chain_close(struct mh_host *h);
void mh_chain_free(struct mh_host *h);

/* The hook that claims entry, or NULL; *shadowed gets the names of later
 * hooks that would also claim it (interned, ", "-separated) or NULL, and
 * is warned of unless it held the same on the way in (the entry claimed
 * again).  `shown` is the entry as messages show it (no password).  Chain
 * read lock taken inside. */
const mh_hook *mh_chain_claim(struct mh_host *h, const char *entry,
                              const char *shown, const char **shadowed);

/* Could entry's scheme name a finder plugin?  Then, if modname is not
 * NULL, it receives the module name "finders.<scheme>". */
bool mh_chain_scheme_plugin(const char *entry, char *modname, size_t size);

/* Import the finder plugin for the scheme of `entry` ("finders.<scheme>")
 * and register it as a path hook: MH_OK with *hook, or an error naming
 * the module; MH_ECYCLE (no error object) when this thread is importing
 * that plugin already.  Must be called without any entry lock held. */
mh_status mh_chain_load_scheme(struct mh_host *h, const char *entry,
                               const mh_hook **hook, mh_error **err);

/* At most this many links in each chain. */
#define MH_CHAIN_MAX 64

/* A snapshot of the meta chain, in order: up to max links into v. */
size_t mh_chain_meta(struct mh_host *h, const mh_hook **v, size_t max);

/* Invalidate every meta finder (mh_invalidate_caches). */
void mh_chain_invalidate(struct mh_host *h);

/* Is this thread importing the finder plugin of entry's scheme?  Then the
 * entry is passed over (the plugin cannot be in it): 1 when it is the
 * innermost import, 2 when an outer one (a plugin being loaded may need
 * it), 0 when not. */
int mh_chain_loading(const char *entry);
/* Count an entry passed over for an outer import (this thread), and read
 * the count: a plugin load that failed while such entries were passed
 * over may succeed later, so its failure is not kept. */
void mh_chain_pass_over(void);
unsigned long mh_chain_passed_over(void);
/* An entry passed over because its opener waits for this thread: never
 * settled, nested or not. */
void mh_chain_pass_over_busy(void);
unsigned long mh_chain_passed_busy(void);
/* Is this thread inside a finder plugin's import?  Only a failure there
 * can be undone by the outer import; the outermost one is final. */
bool mh_chain_nested(void);

/* The built-in finder classes. */
extern const mh_finder_class mh_fsf_class;
extern const mh_finder_class mh_sqf_class;
extern const mh_finder_class mh_htf_class;

/* Can an instance of mh_fsf_class only miss every module of top-level
 * package `top` (tlen bytes, no dot)?  True when its root listing is
 * current and watched (finders/notify.h) and has no directory or link of
 * that name: a find of "top.anything" would then answer "no directory
 * top/" without another look.  False when it may have it, or when its
 * root listing is missing or not watched.  (It reads the listing as a
 * find would: a stale one is read again.) */
bool mh_fsf_lacks_top(void *state, const char *top, size_t tlen);
/* The reason such a find gives: "no directory top/".  The search path
 * walk writes it for the entries it skips (host/find.c), so the message
 * reads the same as when every entry is asked. */
void mh_fsf_lacks_reason(struct mh_buf *why, const char *top, size_t tlen);

/* The shared resolution rule: mh_finder_relpath (modhost/finder.h). */
#define mh_name_relpath mh_finder_relpath

/* Is s[0..n) one name component, [A-Za-z_][A-Za-z0-9_]*?  (host/name.c) */
bool mh_name_ident(const char *s, size_t n);

/* Module file suffixes: native code, Lua source, Lua bytecode, manifest. */
#define MH_NATIVE_SUFFIX ".so"
#define MH_LUA_SUFFIX ".lua"
#define MH_LUAC_SUFFIX ".luac"
#define MH_META_SUFFIX ".json"

/* A module whose sidecar is never read: the top-level `index`, whose
 * index.json is an HTTP site's index (modhost index writes it; the
 * filesystem finder and the index writer agree).  rel: the module's path
 * without suffix ("index", "pkg/index"), or its name ("pkg.index"), rlen
 * bytes: only the top-level one is "index". */
static inline bool mh_sidecar_is_site_index(const char *rel, size_t rlen)
{
    return rlen == 5 && memcmp(rel, "index", 5) == 0;
}
#endif /* MH_FINDERS_FINDER_H */
