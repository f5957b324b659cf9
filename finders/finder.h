/*
 * finders/finder.h -- the finder interface (Python's path entry finders).
 *
 * A finder class handles one kind of search path entry (a directory, and
 * later a database or a URL).  The path hooks (finders/hooks.c) pick the
 * class that claims an entry; the host opens one instance per entry, once,
 * and keeps it (sys.path_importer_cache).
 *
 * A find answers one of three ways:
 *   MH_OK + kind NATIVE/PLAIN   the module is here: `file` to load;
 *   MH_OK + kind NAMESPACE      only a directory of that name is here: a
 *                               portion of a namespace package, keep looking;
 *   MH_ENOTFOUND                not here; a one-line reason is appended to
 *                               `why` (the host lists them all, as Lua does).
 * Any other status is an error for this module in this entry.
 *
 * Every finder that exposes a tree of files uses the same resolution rule,
 * mh_name_relpath(): module a.b.c is a/b/c.so.
 */
#ifndef MH_FINDERS_FINDER_H
#define MH_FINDERS_FINDER_H

#include <stdbool.h>
#include <stddef.h>

#include "modhost.h"

struct mh_host;
struct mh_buf;

struct mh_finder_class;

typedef struct mh_found {
    mh_module_kind kind;
    const char *origin;   /* interned: what users see (path or URI) */
    const char *file;     /* interned: a file the loader opens, or NULL:
                             then the loader asks the finder's read() */
    const char *key;      /* interned, finder-private: which item to read */
    bool binary;          /* Lua: a precompiled chunk (.luac), not source */
    bool trusted;         /* its bytes are covered by a verified signature */
    /* Set by the host, not the finder: */
    const char *finder;   /* class name */
    size_t entry;         /* search path index */
    const struct mh_finder_class *cls;
    void *state;          /* the finder instance that found it */
} mh_found;

/* Bytes of a module held in memory, from the host's allocator. */
typedef struct mh_blob {
    unsigned char *data;
    size_t len;           /* bytes of content */
    size_t size;          /* bytes allocated (for the allocator) */
} mh_blob;

void mh_blob_free(struct mh_host *h, mh_blob *b);

/* Walk the search path for `name` (interned), as import does.  MH_OK with
 * *found (a module, or a namespace package when only directories were
 * found), MH_ENOTFOUND listing every entry tried and why it missed, or the
 * error of the entry that failed. (host/find.c) */
struct mh_host;
mh_status mh_find_spec(struct mh_host *h, const char *name, mh_found *found,
                       mh_error **err);

/* Called by list for each module in an entry. */
typedef int (*mh_finder_list_fn)(void *ud, const char *name, /* interned */
                                 const mh_found *found);

typedef struct mh_finder_class {
    const char *name;                      /* "fs" */
    /* Does this class handle the entry? (no I/O beyond a cheap check) */
    bool (*claims)(struct mh_host *h, const char *entry);
    mh_status (*open)(struct mh_host *h, const char *entry, void **state,
                      mh_error **err);
    mh_status (*find)(void *state, const char *name, mh_found *found,
                      struct mh_buf *why, mh_error **err);
    /* Report every module; stop when fn returns non-zero. */
    mh_status (*list)(void *state, mh_finder_list_fn fn, void *ud,
                      mh_error **err);
    /* The bytes of a module it found without a `file` (NULL if it never
     * does).  On failure *out is empty and the error names the item. */
    mh_status (*read)(void *state, const mh_found *found, mh_blob *out,
                      mh_error **err);
    void (*invalidate)(void *state);
    void (*close)(void *state);
} mh_finder_class;

/* The path hooks, in order: the first class that claims an entry gets it. */
const mh_finder_class *mh_hooks_claim(struct mh_host *h, const char *entry);

/* The built-in finder classes. */
extern const mh_finder_class mh_fsf_class;
extern const mh_finder_class mh_sqf_class;
extern const mh_finder_class mh_htf_class;

/* Shared resolution rule: "a.b.c" -> "a/b/c" + suffix, into buf of size
 * `size`.  Returns the length, or 0 if it does not fit.  The name must
 * have passed mh_name_check (no '/', no "..": it cannot escape). */
size_t mh_name_relpath(const char *name, const char *suffix, char *buf,
                       size_t size);

/* Is s[0..n) one name component, [A-Za-z_][A-Za-z0-9_]*?  (host/name.c) */
bool mh_name_ident(const char *s, size_t n);

/* Module file suffixes: native code, Lua source. */
#define MH_NATIVE_SUFFIX ".so"
#define MH_LUA_SUFFIX ".lua"
#define MH_LUAC_SUFFIX ".luac"

#endif /* MH_FINDERS_FINDER_H */
