/*
 * host/tops.h -- which search path entries can only miss a top-level
 * package: the search path walk's memory (host/tops.c).
 *
 * With P entries on the search path, an import of "pkg.mod" from the
 * last one asks P - 1 finders first, and a filesystem entry without a
 * directory "pkg" answers "no directory pkg/" from its root listing.  A
 * host remembers those answers per top-level package, so that the next
 * import from the same package skips those entries without asking them:
 *
 *   - only filesystem entries whose root listing is watched (inotify) are
 *     remembered, and the memory holds only while no event that could
 *     change a listing has been read since (mh_ntf_seq), no entry was
 *     added to the path and mh_invalidate_caches was not called: exactly
 *     while asking again would give the same answer;
 *   - a walk that skips entries and finds nothing writes their lines of
 *     the "not found" message afterwards, the same text they would have
 *     written, in the same order (past the message's limit, the same
 *     "too many to list");
 *   - a verbose host skips nothing: its traces name every entry asked;
 *   - the event count is host-wide: a change in any listed directory
 *     makes every package's record stale, to be learned again.
 */
#ifndef MH_HOST_TOPS_H
#define MH_HOST_TOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mh_host;

#define MH_TOPS_WORDS 8 /* entries remembered: the first 512 */

/* One walk's copy of what its package's record said, and what it
 * learned. */
typedef struct mh_tops_view {
    bool on;                 /* the walk may skip and learn */
    bool learned;            /* something to store at the end */
    const char *top;         /* the package: top[0..len) */
    size_t len;
    uint64_t gen, seq;       /* what the record must have been made under */
    uint64_t looked[MH_TOPS_WORDS]; /* entry i asked under these counts */
    uint64_t lacks[MH_TOPS_WORDS];  /* ... and it lacks the package */
} mh_tops_view;

void mh_tops_init(struct mh_host *h);
void mh_tops_free(struct mh_host *h);

/* Forget every record: the path changed, or mh_invalidate_caches. */
void mh_tops_forget(struct mh_host *h);

/* Start a walk of nentries entries for module `name` (path lock held,
 * after mh_ntf_drain).  False (v->on false) when nothing is skipped or
 * learned: a name without a package, a verbose host, no notification. */
bool mh_tops_begin(struct mh_host *h, const char *name, size_t nentries,
                   mh_tops_view *v);

/* Store what the walk learned. */
void mh_tops_end(struct mh_host *h, const mh_tops_view *v);

/* Can entry i be skipped? */
static inline bool mh_tops_skips(const mh_tops_view *v, size_t i)
{
    return v->on && (v->lacks[i / 64] >> (i % 64) & 1);
}

/* Has entry i been asked under the current counts? */
static inline bool mh_tops_looked(const mh_tops_view *v, size_t i)
{
    return v->looked[i / 64] >> (i % 64) & 1;
}

/* Record what asking entry i told. */
static inline void mh_tops_learn(mh_tops_view *v, size_t i, bool lacks)
{
    v->looked[i / 64] |= (uint64_t)1 << (i % 64);
    if (lacks)
        v->lacks[i / 64] |= (uint64_t)1 << (i % 64);
    v->learned = true;
}

#endif /* MH_HOST_TOPS_H */
