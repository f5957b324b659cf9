/*
 * host/tops.c -- which search path entries can only miss a top-level
 * package (see tops.h).
 *
 * A record per top-level package: two bit sets over the entries, "looked"
 * and "lacks", and the two counts they were true under -- the host's
 * generation (bumped when an entry is added, which moves the others, and
 * by mh_invalidate_caches) and inotify's
 * count of listing-changing events (finders/notify.h).  A record whose
 * counts are not the current ones is worth nothing and is replaced.  At
 * most MH_TOPS_MAX records: when full, all are dropped (a host imports
 * from a few packages; a flood of failed imports of made-up names must
 * not grow it without end).
 */
#include "host/internal.h"
#include "host/tops.h"
#include "finders/notify.h"

#include <string.h>

#define MH_TOPS_MAX 256
#define MH_TOPS_BUCKETS 64 /* a power of 2 */

struct mh_top {
    struct mh_top *next;
    uint64_t gen, seq;
    uint64_t looked[MH_TOPS_WORDS];
    uint64_t lacks[MH_TOPS_WORDS];
    size_t len;
    char name[];                  /* the package, not terminated */
};

static size_t bucket(const char *top, size_t len)
{
    return (size_t)mh_hash_bytes(top, len) & (MH_TOPS_BUCKETS - 1);
}

/* The record of top (lock held), or NULL. */
static struct mh_top **slot_of(mh_host *h, const char *top, size_t len)
{
    struct mh_top **p = &h->tops.b[bucket(top, len)];
    while (*p && ((*p)->len != len || memcmp((*p)->name, top, len) != 0))
        p = &(*p)->next;
    return p;
}

static void drop_all(mh_host *h)
{
    for (size_t i = 0; i < MH_TOPS_BUCKETS; i++) {
        for (struct mh_top *t = h->tops.b[i], *next; t; t = next) {
            next = t->next;
            mh_mem_free(h, t, sizeof *t + t->len);
        }
        h->tops.b[i] = NULL;
    }
    h->tops.count = 0;
}

void mh_tops_init(mh_host *h)
{
    pthread_mutex_init(&h->tops.lock, NULL);
    memset(h->tops.b, 0, sizeof h->tops.b);
    h->tops.count = 0;
    atomic_init(&h->tops.gen, 0);
}

void mh_tops_free(mh_host *h)
{
    drop_all(h);
    pthread_mutex_destroy(&h->tops.lock);
}

void mh_tops_forget(mh_host *h)
{
    atomic_fetch_add_explicit(&h->tops.gen, 1, memory_order_acq_rel);
}

bool mh_tops_begin(mh_host *h, const char *name, size_t nentries,
                   mh_tops_view *v)
{
    v->on = false;
    const char *dot = strchr(name, '.');
    /* Traces name every entry asked: a verbose host asks them all. */
    if (!dot || h->verbose || nentries == 0 ||
        nentries > MH_TOPS_WORDS * 64)
        return false;
    if (!mh_ntf_seq(h, &v->seq))
        return false;
    v->gen = atomic_load_explicit(&h->tops.gen, memory_order_acquire);
    v->top = name;
    v->len = (size_t)(dot - name);
    v->learned = false;
    memset(v->looked, 0, sizeof v->looked);
    memset(v->lacks, 0, sizeof v->lacks);
    pthread_mutex_lock(&h->tops.lock);
    struct mh_top *t = *slot_of(h, v->top, v->len);
    if (t && t->gen == v->gen && t->seq == v->seq) {
        memcpy(v->looked, t->looked, sizeof v->looked);
        memcpy(v->lacks, t->lacks, sizeof v->lacks);
    }
    pthread_mutex_unlock(&h->tops.lock);
    v->on = true;
    return true;
}

void mh_tops_end(mh_host *h, const mh_tops_view *v)
{
    if (!v->on || !v->learned)
        return;
    pthread_mutex_lock(&h->tops.lock);
    struct mh_top **p = slot_of(h, v->top, v->len), *t = *p;
    if (t && (t->gen != v->gen || t->seq != v->seq)) {
        /* stale: this walk's view is newer, or another walk's is (then
         * the record made from ours is stale at its next use) */
        memset(t->looked, 0, sizeof t->looked);
        memset(t->lacks, 0, sizeof t->lacks);
        t->gen = v->gen;
        t->seq = v->seq;
    }
    if (!t) {
        if (h->tops.count >= MH_TOPS_MAX) {
            drop_all(h);
            p = slot_of(h, v->top, v->len);
        }
        t = mh_mem_alloc(h, sizeof *t + v->len);
        if (t) { /* else: nothing kept, the next walk asks again */
            memset(t, 0, sizeof *t);
            t->gen = v->gen;
            t->seq = v->seq;
            t->len = v->len;
            memcpy(t->name, v->top, v->len);
            *p = t;
            h->tops.count++;
        }
    }
    if (t)
        for (size_t i = 0; i < MH_TOPS_WORDS; i++) {
            t->looked[i] |= v->looked[i];
            t->lacks[i] |= v->lacks[i];
        }
    pthread_mutex_unlock(&h->tops.lock);
}
