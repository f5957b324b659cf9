/*
 * cache/intern.h -- the host's table of interned strings (mh_int_*).
 *
 * One canonical copy per distinct string, at an address that never moves,
 * so the rest of the library compares names with ==.  Readers never lock;
 * inserts take a mutex.  Each record also carries the registry slot of the
 * module of that name, which makes an import of a loaded module a single
 * hash lookup.
 */
#ifndef MH_CACHE_INTERN_H
#define MH_CACHE_INTERN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/hazard.h"

struct mh_host;
struct mh_module;

/* A record: the string lives in str[], right behind the header. */
typedef struct mh_iname {
    _Atomic(struct mh_module *) module; /* registry slot, see registry.h */
    uint32_t hash;                      /* low 32 bits of the hash */
    uint32_t len;
    char str[];
} mh_iname;

typedef struct mh_itab mh_itab;     /* one generation of the slot array */
typedef struct mh_ichunk mh_ichunk; /* arena chunk holding records */

/* Here, not in intern.c, so that bench/memory.c can count the records
 * at their size rather than the whole chunk the first of them took. */
struct mh_ichunk {
    mh_ichunk *next;
    size_t size;                 /* bytes in data[] */
    _Alignas(8) unsigned char data[];
};

typedef struct mh_itable {
    _Atomic(mh_itab *) tab;   /* current slot array, read lock-free */
    pthread_mutex_t lock;     /* serialises inserts and growth */
    _Atomic size_t count;
    mh_itab *retired;         /* older arrays: readers may still be there */
    mh_ichunk *chunks;        /* arena for records */
    size_t chunk_used;        /* bytes used in the newest chunk */
} mh_itable;

/* The hash every table in the library uses for strings: 16 bytes a step,
 * each step one 64x64->128-bit multiply folded to 64 bits (the "mum" mix
 * of wyhash), tails read with overlapping loads.  Inline: it is half of a
 * registry hit.  Stored in one place only, as the bytecode cache's
 * checksum (cache/bytecode.c): a change here needs a new cache format. */
static inline uint64_t mh_hash_mix_(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t mh_hash_load8_(const unsigned char *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    return v;
}

static inline uint64_t mh_hash_load4_(const unsigned char *p)
{
    uint32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

static inline uint64_t mh_hash_bytes(const void *p, size_t len)
{
    const uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull,
                   k2 = 0x8ebc6af09c88c6e3ull;
    const unsigned char *s = p;
    uint64_t h = k0 ^ len, a, b;
    if (len <= 8) {
        if (len >= 4) {
            a = mh_hash_load4_(s);
            b = mh_hash_load4_(s + len - 4);
        } else if (len > 0) {
            a = ((uint64_t)s[0] << 16) | ((uint64_t)s[len >> 1] << 8) |
                s[len - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else if (len <= 16) {
        a = mh_hash_load8_(s);
        b = mh_hash_load8_(s + len - 8); /* overlapping when len < 16 */
    } else {
        size_t n = len;
        while (n > 16) {
            h = mh_hash_mix_(mh_hash_load8_(s) ^ k1,
                             mh_hash_load8_(s + 8) ^ h);
            s += 16;
            n -= 16;
        }
        /* The last 16 bytes, overlapping what the loop consumed. */
        a = mh_hash_load8_(s + n - 16);
        b = mh_hash_load8_(s + n - 8);
    }
    return mh_hash_mix_(k1 ^ len, mh_hash_mix_(a ^ k1, b ^ h ^ k2));
}

int mh_int_init(struct mh_host *h, mh_itable *t);      /* 0 or -1 (OOM) */
void mh_int_free(struct mh_host *h, mh_itable *t);

/* Find or insert; NULL on out of memory. */
mh_iname *mh_int_get(struct mh_host *h, mh_itable *t, const char *s,
                     size_t len);
/* ---- the lock-free find, inline: it is most of a registry hit ---------- */

/* One generation of the slot array (its layout is here for the inline
 * find; only cache/intern.c writes it). */
struct mh_itab {
    size_t mask;                 /* capacity - 1; capacity is a power of 2 */
    mh_itab *next_retired;
    _Atomic(mh_iname *) slots[];
};

/* Equal bytes?  Names are short: word compares inline, no call. */
static inline bool mh_int_same_(const char *a, const char *b, size_t n)
{
    const unsigned char *x = (const unsigned char *)a;
    const unsigned char *y = (const unsigned char *)b;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8)
            if (mh_hash_load8_(x + i) != mh_hash_load8_(y + i))
                return false;
        return mh_hash_load8_(x + n - 8) == mh_hash_load8_(y + n - 8);
    }
    if (n >= 4)
        return mh_hash_load4_(x) == mh_hash_load4_(y) &&
               mh_hash_load4_(x + n - 4) == mh_hash_load4_(y + n - 4);
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return false;
    return true;
}

static inline mh_iname *mh_int_probe_(const mh_itab *tab, const char *s,
                                      size_t len, uint64_t hash)
{
    uint32_t h32 = (uint32_t)hash;
    for (size_t i = (size_t)hash & tab->mask;; i = (i + 1) & tab->mask) {
        mh_iname *r = atomic_load_explicit(&tab->slots[i],
                                           memory_order_acquire);
        if (!r)
            return NULL;
        if (r->hash == h32 && r->len == len && mh_int_same_(r->str, s, len))
            return r;
    }
}

/* Probe the current array under this thread's hazard pointer. */
static inline __attribute__((always_inline)) mh_iname *
mh_int_find_hz_(mh_itable *t, mh_hazard *hz, const char *s, size_t len,
                uint64_t hash)
{
    mh_itab *tab = atomic_load_explicit(&t->tab, memory_order_acquire);
    for (;;) {
        mh_hz_set(hz, tab);
        mh_itab *now = atomic_load_explicit(&t->tab, MH_HZ_RECHECK);
        if (now == tab)
            break;
        tab = now;
    }
    mh_iname *r = mh_int_probe_(tab, s, len, hash);
    mh_hz_clear(hz);
    return r;
}

/* A thread's first find: registers its hazard record, or, where none can
 * be made, probes under the writers' lock (cache/intern.c). */
mh_iname *mh_int_find_cold_(mh_itable *t, const char *s, size_t len,
                            uint64_t hash) __attribute__((cold, noinline));

/* Find only.  Never allocates from the host's allocator (a thread's first
 * find registers its hazard record, cache/hazard.c), and locks only where
 * no thread can get a record (no membarrier).  hash is
 * mh_hash_bytes(s, len). */
static inline __attribute__((always_inline)) mh_iname *
mh_int_find(mh_itable *t, const char *s, size_t len, uint64_t hash)
{
    mh_hazard *hz = mh_hz_self_;
    if (__builtin_expect(hz == NULL, 0))
        return mh_int_find_cold_(t, s, len, hash);
    return mh_int_find_hz_(t, hz, s, len, hash);
}

/* The READY module of that name -- the record's registry slot -- or
 * NULL: the whole of an import of a loaded module. */
static inline __attribute__((always_inline)) struct mh_module *
mh_int_module(mh_itable *t, const char *s, size_t len)
{
    mh_iname *r = mh_int_find(t, s, len, mh_hash_bytes(s, len));
    return r ? atomic_load_explicit(&r->module, memory_order_acquire) : NULL;
}

/* The record of an interned string (s must come from this table). */
static inline mh_iname *mh_int_record(const char *s)
{
    return (mh_iname *)(void *)(s - offsetof(mh_iname, str));
}

/* Intern a string given as pointer+length, or NUL-terminated. */
const char *mh_int_str(struct mh_host *h, const char *s, size_t len);
const char *mh_int_cstr(struct mh_host *h, const char *s);
/* The interned copy of s (len bytes), if there is one; never allocates. */
const char *mh_int_lookup(struct mh_host *h, const char *s, size_t len);

#endif /* MH_CACHE_INTERN_H */
