/*
 * host/path.h -- the search path (mh_path_*): Python's sys.path plus
 * sys.path_importer_cache.
 *
 * Entries are kept in order; each remembers where it came from and, once
 * first used, the finder instance that claimed it.  Readers (imports)
 * copy the entries under the read lock and walk the copy; adding an
 * entry takes the write lock.  Entries are never freed before the host,
 * and their texts are interned, so they outlive any change.
 */
#ifndef MH_HOST_PATH_H
#define MH_HOST_PATH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "modhost.h"
#include "cache/registry.h"

struct mh_host;
struct mh_hook;

/* How long a search path entry whose open failed is left alone before its
 * next use opens it again (mh_path_finder). */
#define MH_ENTRY_RETRY_MS 1000

typedef struct mh_pentry {
    const char *text;                      /* interned; given to finders */
    const char *shown;                     /* interned; text with any
                                              password masked: for every
                                              message and for the API */
    mh_path_source source;
    mh_olock opening;                      /* guards the lazy finder open
                                              and the fields below it */
    _Atomic(const struct mh_hook *) finder; /* once opened */
    void *state;                           /* finder instance */
    const char *claimant;                  /* interned: the hook that
                                              claimed it, even if its open
                                              failed */
    const char *shadowed;                  /* interned: other hooks that
                                              would have claimed it */
    bool tried;                            /* open attempted, failed and
                                              settled (open_error) */
    long long retry_at;                    /* mh_mono_ms() after which a
                                              settled failure is tried
                                              again */
    _Atomic(bool) stale;                   /* invalidated while another
                                              thread opened it (BUSY) */
    bool closed;                           /* its instance was closed */
    mh_error *open_error;                  /* why it could not be opened */
    _Atomic size_t asked;                  /* finds that asked its finder */
} mh_pentry;

typedef struct mh_path {
    pthread_rwlock_t lock;
    mh_pentry **v;
    size_t n, cap;
    const char *defaults_var; /* the variable (interned name) that, set
                                 without ";;", left the default entries
                                 out; NULL if none did.  Set once at
                                 creation, for the "not found" of a finder
                                 plugin, which is installed there */
} mh_path;

/* Build the path from the config, the environment and the defaults.
 * Rejected entries are logged as warnings.  -1 on OOM. */
int mh_path_init(struct mh_host *h, const mh_config *cfg);
void mh_path_free(struct mh_host *h);

/* The finder instance for entry e, opening it on first use: MH_OK with
 * *hook and *state; MH_EPATH when no finder takes the entry (the reason is
 * appended to `why`, which may be NULL; the entry is opened again at its
 * first use MH_ENTRY_RETRY_MS after that -- unless its finder plugin could
 * not be imported -- or after mh_invalidate_caches or a new path hook, and
 * a failure that says the same again is not warned of again); MH_ENOMEM
 * (tried again next time).  An entry whose scheme no hook claims brings
 * in the finder plugin finders.<scheme> (finders/hooks.c). */
/* Lock entry e (its `opening`), waiting while another thread opens it:
 * MH_OLOCK_TAKEN (give it back with mh_path_entry_unlock); MH_OLOCK_MINE
 * when this thread holds it already, in the entry's claims() or open()
 * (which may import, or ask about the path); MH_OLOCK_BUSY when the thread
 * opening it waits for this one: its fields may not be read. */
mh_olock_r mh_path_entry_lock(mh_pentry *e);
void mh_path_entry_unlock(mh_pentry *e, mh_olock_r how);

struct mh_buf;
mh_status mh_path_finder(struct mh_host *h, mh_pentry *e,
                         const struct mh_hook **hook, void **state,
                         struct mh_buf *why);

/* A new path hook: entries no hook could claim are tried again. */
void mh_path_retry_unclaimed(struct mh_host *h);

/* Close every entry's finder instance (at host teardown, before the
 * modules -- finder plugins among them -- are unloaded). */
void mh_path_close(struct mh_host *h);

/* A copy of the search path's entries, in order, taken under its lock
 * and walked without it: entries live as long as the host, so no finder
 * code -- claims, open, find, list, invalidate, which may import, and an
 * init that adds an entry -- runs under the path's lock.  (A walk that
 * held it, waiting for an import whose init called mh_host_add_path,
 * waited for ever: the change waited for the walk.)  Up to
 * MH_PATH_SNAP_INLINE entries in place, more allocated; out of memory,
 * the snapshot is the path itself with its read lock held until
 * mh_path_snap_free, as walks were made before. */
#define MH_PATH_SNAP_INLINE 64
typedef struct mh_path_snap {
    mh_pentry *const *v;
    size_t n;
    bool locked;                 /* out of memory: the lock is held */
    mh_pentry **heap;
    mh_pentry *in[MH_PATH_SNAP_INLINE];
} mh_path_snap;

/* Take a snapshot.  `under` (may be NULL) is called with the lock still
 * held, for what must agree with the copy (a walk's package record,
 * which mh_host_add_path forgets under the write lock). */
void mh_path_snap_take(struct mh_host *h, mh_path_snap *s,
                       void (*under)(struct mh_host *h, size_t n, void *ud),
                       void *ud);
void mh_path_snap_free(struct mh_host *h, mh_path_snap *s);
/* Entry i of the path now, or NULL past its end (taken under the lock; an
 * entry lives as long as the host). */
mh_pentry *mh_path_at(struct mh_host *h, size_t i);

/* Does this thread hold h's search path lock for reading?  Only a
 * snapshot made out of memory holds it across finder code, and then
 * mh_host_add_path is refused rather than left waiting for ever. */
bool mh_path_walking(const struct mh_host *h);

/* Absolute paths are compared in a canonical spelling: "//" collapsed,
 * no trailing "/" (but "/" itself), so "/a/" and "/a" are one entry.  In
 * place; returns the new length (never longer).  Other text is left. */
size_t mh_path_canon(char *t, size_t len);

/* The entry as people may see it: a URI's password replaced by "***"
 * ("https://u:***@host/"); anything else unchanged.  Interned (for what
 * the host keeps: entries); NULL when out of memory. */
const char *mh_path_shown(struct mh_host *h, const char *t);
/* The same appended to out, nothing kept (for text others choose, such
 * as a server's Location): whether anything was masked. */
bool mh_path_mask(const char *t, struct mh_buf *out);

/* Text others choose (an entry refused, a server's Location) for a
 * message: any password masked as above, control characters (C0, DEL,
 * and C1 in UTF-8) as \xNN, cut with "..." to fit buf (size bytes, at
 * least 16).  Nothing kept; returns buf. */
const char *mh_path_show_escaped(struct mh_host *h, const char *t, char *buf,
                                 size_t size);

/* Is the text an acceptable entry (absolute path or scheme:...)? */
bool mh_path_acceptable(const char *text);

#endif /* MH_HOST_PATH_H */
