/*
 * cache/discovery.h -- the discovery index (mh_dx_*): what is known about
 * each module on the search path, so listing metadata reads no unchanged
 * file again (GStreamer's registry cache, with reasons).
 *
 * A SQLite file, <cache dir>/discovery.db, one row per module origin:
 * the module's identity when it was read, its manifest (compact JSON) or
 * the failure that got it skipped, with the reason.  A row counts only
 * while the identity is unchanged.  Writes are SQLite transactions, so a
 * crash leaves the old or the new state.  A file that is not such an
 * index -- damaged, or of another format version (application_id and
 * user_version) -- is replaced by an empty one, silently: it is a cache.
 */
#ifndef MH_CACHE_DISCOVERY_H
#define MH_CACHE_DISCOVERY_H

#include <stdbool.h>
#include <stdint.h>

#include "modhost.h"

struct mh_host;

#define MH_DX_FILE "discovery.db"
#define MH_DX_APP_ID 0x4d484458    /* "MHDX" */
#define MH_DX_FORMAT 1

typedef struct mh_dx mh_dx;

/* The source of a failure an import met loading or running the module's
 * code (not reading its metadata). */
#define MH_DX_AT_LOAD "load"

typedef struct mh_dx_row {
    const char *origin;
    const char *identity;
    const char *name;
    const char *source;     /* "elf-note", "sidecar", "none", MH_DX_AT_LOAD */
    const char *manifest;   /* JSON, or NULL */
    int status;             /* MH_OK, or why the module is skipped */
    const char *reason;     /* or NULL */
    int64_t when;           /* Unix time recorded */
} mh_dx_row;

/* Open the host's index, creating (or replacing a damaged or foreign)
 * file when `create`.  NULL when there is none to use: disabled
 * (MH_CONFIG_NO_INDEX), the cache directory is not private, absent and
 * not `create`, or SQLite failed (traced, not an error: the index only
 * saves time).  An index that cannot be read now -- locked by another
 * process past the busy timeout, or out of memory or descriptors -- is
 * never replaced: NULL, and *again set (when again is not NULL). */
mh_dx *mh_dx_open(struct mh_host *h, bool create, bool *again);
/* The same, and *busy (when not NULL) set when what stopped it was a lock
 * another connection held past the busy timeout. */
mh_dx *mh_dx_open_ex(struct mh_host *h, bool create, bool quick, bool *again,
                     bool *busy);
/* Close; a file found damaged on the way is replaced by an empty index. */
void mh_dx_close(mh_dx *dx);
/* Was damage found (rows read so far are not to be trusted)? */
bool mh_dx_damaged(const mh_dx *dx);
/* SQLite's message for the last failure (valid until the next call). */
const char *mh_dx_errmsg(const mh_dx *dx);

/* Another connection held the index past the busy timeout: nothing is
 * wrong with it, try again. */
#define MH_DX_BUSY (-2)

/* Call fn for every row (by name, then origin, when asked) until it
 * returns non-zero.  Strings live during the call.  0; MH_DX_BUSY when
 * another connection held the index past the busy timeout (nothing is
 * wrong with it: try again); else -1, and mh_dx_damaged tells whether the
 * index is damaged (it is then replaced on the next open). */
typedef int (*mh_dx_fn)(void *ud, const mh_dx_row *row);
int mh_dx_each(mh_dx *dx, bool by_name, mh_dx_fn fn, void *ud);

/* Write rows in one transaction: begin, put..., commit (0 or -1). */
int mh_dx_begin(mh_dx *dx);
int mh_dx_put(mh_dx *dx, const mh_dx_row *row);
int mh_dx_commit(mh_dx *dx);

/* Delete the rows whose origin gone(origin) says is gone: 0, or -1 when
 * reading them, a delete or the commit failed (damage marks the index
 * for a rebuild, as every failure here does). */
int mh_dx_forget_gone(mh_dx *dx, bool (*gone)(const char *origin));

/* Forget failures: the one recorded for `origin` (with before > 0: if
 * recorded at Unix time `before` or earlier), else those of module
 * `name`, else all; *n of them.  0, -1, or MH_DX_BUSY when another
 * connection held the index past the busy timeout. */
int mh_dx_clear_failures(mh_dx *dx, const char *name, const char *origin,
                         int64_t before, size_t *n);

#endif /* MH_CACHE_DISCOVERY_H */
