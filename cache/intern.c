/*
 * cache/intern.c -- interned strings: one canonical copy, compared by
 * pointer (Python's sys.intern, GLib's g_intern_string).
 *
 * Design
 * ------
 * Records (mh_iname) are packed into arena chunks taken from the host's
 * allocator and never move or die before the host does: a pointer handed
 * out once stays valid, and an 8-byte-aligned record costs 16 bytes of
 * header plus the string.
 *
 * The index is an open-addressing table of record pointers with linear
 * probing, at most 3/4 full.  Readers load the current table with acquire
 * order and probe without any lock; a record is fully written before its
 * slot is published with release order.  Writers take the mutex, probe
 * again, and either fill an empty slot or grow: a new table twice the size
 * is filled and published, and the old one is retired.  A reader
 * publishes the array it probes in its hazard pointer (cache/hazard.h), so
 * the writer frees a retired array as soon as no reader holds it -- at
 * once, nearly always -- and a table costs its live array only.  A reader
 * that misses on an old array only falls through to the locked insert
 * path, which looks again in the current one, so a string is never
 * interned twice.
 */
#include "host/internal.h"
#include "cache/hazard.h"

#include <string.h>

#define CHUNK_BYTES (64u * 1024u - sizeof(mh_ichunk))
#define INITIAL_SLOTS 256u

static mh_itab *tab_new(mh_host *h, size_t cap)
{
    size_t bytes;
    if (mh_mul_overflows(cap, sizeof(mh_iname *), &bytes) ||
        bytes > SIZE_MAX - sizeof(mh_itab))
        return NULL;
    mh_itab *t = mh_mem_alloc(h, sizeof(mh_itab) + bytes);
    if (!t)
        return NULL;
    t->mask = cap - 1;
    t->next_retired = NULL;
    /* All-zero bytes are a null atomic pointer on every target we build
     * for; one memset instead of cap atomic_init calls. */
    memset((void *)t->slots, 0, bytes);
    return t;
}

static void tab_free(mh_host *h, mh_itab *t)
{
    mh_mem_free(h, t, sizeof(mh_itab) + (t->mask + 1) * sizeof(mh_iname *));
}

int mh_int_init(mh_host *h, mh_itable *t)
{
    memset(t, 0, sizeof *t);
    mh_itab *tab = tab_new(h, INITIAL_SLOTS);
    if (!tab)
        return -1;
    atomic_init(&t->tab, tab);
    atomic_init(&t->count, 0);
    pthread_mutex_init(&t->lock, NULL);
    return 0;
}

void mh_int_free(mh_host *h, mh_itable *t)
{
    mh_itab *tab = atomic_load_explicit(&t->tab, memory_order_relaxed);
    if (!tab)
        return;
    tab_free(h, tab);
    while (t->retired) {
        mh_itab *next = t->retired->next_retired;
        tab_free(h, t->retired);
        t->retired = next;
    }
    while (t->chunks) {
        mh_ichunk *next = t->chunks->next;
        mh_mem_free(h, t->chunks, sizeof(mh_ichunk) + t->chunks->size);
        t->chunks = next;
    }
    pthread_mutex_destroy(&t->lock);
    atomic_store_explicit(&t->tab, NULL, memory_order_relaxed);
}

/* No hazard record for this thread yet: make one, or, where none can be
 * made, probe under the writers' lock. */
mh_iname *mh_int_find_cold_(mh_itable *t, const char *s, size_t len,
                            uint64_t hash)
{
    mh_hazard *hz = mh_hz_register_();
    if (hz)
        return mh_int_find_hz_(t, hz, s, len, hash);
    pthread_mutex_lock(&t->lock);
    mh_iname *r = mh_int_probe_(atomic_load_explicit(&t->tab,
                                                     memory_order_relaxed),
                                s, len, hash);
    pthread_mutex_unlock(&t->lock);
    return r;
}

/* Carve a record out of the arena (lock held). */
static mh_iname *record_new(mh_host *h, mh_itable *t, size_t len)
{
    size_t need = (offsetof(mh_iname, str) + len + 1 + 7) & ~(size_t)7;
    if (need > CHUNK_BYTES / 4) {
        /* A long string gets a chunk of its own, kept behind the head so
         * the head's free space is not wasted. */
        mh_ichunk *c = mh_mem_alloc(h, sizeof(mh_ichunk) + need);
        if (!c)
            return NULL;
        c->size = need;
        if (t->chunks) {
            c->next = t->chunks->next;
            t->chunks->next = c;
        } else {
            c->next = NULL;
            t->chunks = c;
            t->chunk_used = need;
        }
        return (mh_iname *)(void *)c->data;
    }
    if (!t->chunks || t->chunks->size - t->chunk_used < need) {
        mh_ichunk *c = mh_mem_alloc(h, sizeof(mh_ichunk) + CHUNK_BYTES);
        if (!c)
            return NULL;
        c->size = CHUNK_BYTES;
        c->next = t->chunks;
        t->chunks = c;
        t->chunk_used = 0;
    }
    mh_iname *r = (mh_iname *)(void *)(t->chunks->data + t->chunk_used);
    t->chunk_used += need;
    return r;
}

static void slot_put(mh_itab *tab, mh_iname *r, memory_order order)
{
    size_t i = r->hash & tab->mask;
    while (atomic_load_explicit(&tab->slots[i], memory_order_relaxed))
        i = (i + 1) & tab->mask;
    atomic_store_explicit(&tab->slots[i], r, order);
}

/* Grow to twice the size (lock held).  Returns the table to insert into. */
static mh_itab *grow(mh_host *h, mh_itable *t, mh_itab *old)
{
    size_t cap = (old->mask + 1) * 2;
    mh_itab *nt = tab_new(h, cap);
    if (!nt)
        return NULL;
    /* The hash's low 32 bits are kept, so a table past 2^32 slots would
     * need more; names are far fewer than that. */
    for (size_t i = 0; i <= old->mask; i++) {
        mh_iname *r = atomic_load_explicit(&old->slots[i],
                                           memory_order_relaxed);
        if (r)
            slot_put(nt, r, memory_order_relaxed);
    }
#ifdef MH_HZ_TSAN
    atomic_store_explicit(&t->tab, nt, memory_order_seq_cst);
#else
    atomic_store_explicit(&t->tab, nt, memory_order_release);
#endif
    old->next_retired = t->retired;
    t->retired = old;
    /* Free the retired arrays no reader is probing (any reader that looks
     * from now on finds nt). */
    if (mh_hz_barrier())
        for (mh_itab **p = &t->retired; *p;) {
            mh_itab *r = *p;
            if (mh_hz_held(r)) {
                p = &r->next_retired;
                continue;
            }
            *p = r->next_retired;
            tab_free(h, r);
        }
    return nt;
}

static __attribute__((noinline)) mh_iname *
insert(mh_host *h, mh_itable *t, const char *s, size_t len, uint64_t hash,
       size_t seen);

/* Find or insert, inlined into both callers (the hit is a hot path).  A
 * length past 32 bits matches no record, and insert refuses it. */
static inline __attribute__((always_inline)) mh_iname *
get(mh_host *h, mh_itable *t, const char *s, size_t len)
{
    uint64_t hash = mh_hash_bytes(s, len);
    /* Inserts so far: if none happens between the lock-free miss and the
     * lock, the miss stands and the probe need not be repeated. */
    size_t seen = atomic_load_explicit(&t->count, memory_order_acquire);
    mh_iname *r = mh_int_find(t, s, len, hash);
    return r ? r : insert(h, t, s, len, hash, seen);
}

mh_iname *mh_int_get(mh_host *h, mh_itable *t, const char *s, size_t len)
{
    return get(h, t, s, len);
}

/* After a lock-free miss, with `seen` inserts made before it.  Out of
 * line: a hit pays for none of its registers. */
static __attribute__((noinline)) mh_iname *
insert(mh_host *h, mh_itable *t, const char *s, size_t len, uint64_t hash,
       size_t seen)
{
    mh_iname *r = NULL;
    if (len > UINT32_MAX)
        return NULL;
    pthread_mutex_lock(&t->lock);
    mh_itab *tab = atomic_load_explicit(&t->tab, memory_order_relaxed);
    size_t count = atomic_load_explicit(&t->count, memory_order_relaxed);
    /* Another writer may have won.  Under the lock no array is freed. */
    if (count != seen && (r = mh_int_probe_(tab, s, len, hash)) != NULL)
        goto out;
    if ((count + 1) * 4 > (tab->mask + 1) * 3) {
        tab = grow(h, t, tab);
        if (!tab)
            goto out;
    }
    r = record_new(h, t, len);
    if (!r)
        goto out;
    atomic_init(&r->module, NULL);
    r->hash = (uint32_t)hash;
    r->len = (uint32_t)len;
    memcpy(r->str, s, len);
    r->str[len] = '\0';
    slot_put(tab, r, memory_order_release);
    atomic_store_explicit(&t->count, count + 1, memory_order_release);
out:
    pthread_mutex_unlock(&t->lock);
    return r;
}

const char *mh_int_str(mh_host *h, const char *s, size_t len)
{
    mh_iname *r = mh_int_get(h, &h->intern, s, len);
    return r ? r->str : NULL;
}

const char *mh_int_cstr(mh_host *h, const char *s)
{
    return mh_int_str(h, s, strlen(s));
}

/* ---- public API --------------------------------------------------------- */

const char *mh_intern(mh_host *host, const char *str)
{
    if (!host || !str)
        return NULL;
    mh_iname *r = get(host, &host->intern, str, strlen(str));
    return r ? r->str : NULL;
}

const char *mh_intern_len(mh_host *host, const char *str, size_t len)
{
    if (!host || (!str && len) || (str && memchr(str, '\0', len)))
        return NULL;
    return mh_int_str(host, str ? str : "", len);
}

/* The interned copy of s, if any: the find inlined (a public hit). */
static inline __attribute__((always_inline)) const char *
lookup(mh_host *h, const char *s, size_t len)
{
    mh_iname *r = mh_int_find(&h->intern, s, len, mh_hash_bytes(s, len));
    return r ? r->str : NULL;
}

const char *mh_int_lookup(mh_host *h, const char *s, size_t len)
{
    return lookup(h, s, len);
}

const char *mh_intern_lookup(mh_host *host, const char *str)
{
    if (!host || !str)
        return NULL;
    return lookup(host, str, strlen(str));
}

size_t mh_intern_count(mh_host *host)
{
    return host ? atomic_load(&host->intern.count) : 0;
}
