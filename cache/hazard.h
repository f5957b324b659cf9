/*
 * cache/hazard.h -- one hazard pointer per thread, for freeing what
 * lock-free readers may still be looking at (Michael's hazard pointers,
 * with asymmetric fences as in folly and liburcu).
 *
 * A reader publishes the pointer it is about to follow, then checks that
 * it is still current; a writer that unpublished a pointer frees it only
 * once no thread's hazard holds it.  The reader's side costs two plain
 * stores and a load: its store/load ordering comes from the writer, whose
 * mh_hz_barrier() makes every running thread execute a full barrier
 * (membarrier(2), MEMBARRIER_CMD_PRIVATE_EXPEDITED, Linux 4.14).  Where
 * membarrier is not available no thread gets a record, and readers take
 * their writers' lock instead; ThreadSanitizer builds use sequentially
 * consistent accesses it can see.
 *
 * One hazard per thread: a reader must not be re-entered from a signal
 * handler (mh_intern and the import fast path are not async-signal-safe).
 */
#ifndef MH_CACHE_HAZARD_H
#define MH_CACHE_HAZARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct mh_hazard {
    _Atomic(void *) ptr;        /* what this thread may be reading */
    struct mh_hazard *next;     /* every record ever made; never freed */
    _Atomic int used;           /* owned by a live thread */
} mh_hazard;

#if defined(__SANITIZE_THREAD__)
#define MH_HZ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MH_HZ_TSAN 1
#endif
#endif

/* This thread's record.  A reader that finds it NULL calls
 * mh_hz_register_(); NULL from that means no record can be made, and the
 * reader reads under its writers' lock instead (cache/intern.h). */
extern _Thread_local mh_hazard *mh_hz_self_
    __attribute__((tls_model("initial-exec")));
extern _Atomic bool mh_hz_asym_;

/* Register this thread (first use); NULL when out of memory or when no
 * membarrier makes lock-free reading safe. */
mh_hazard *mh_hz_register_(void);

/* Publish p.  The caller must then re-read where p came from and start
 * over if it changed: only a p still current after this is protected. */
static inline void mh_hz_set(mh_hazard *hz, void *p)
{
#ifdef MH_HZ_TSAN
    atomic_store_explicit(&hz->ptr, p, memory_order_seq_cst);
#else
    atomic_store_explicit(&hz->ptr, p, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst); /* compiler only: the
                                                  writer's membarrier */
#endif
}

/* The order of the re-read after mh_hz_set. */
#ifdef MH_HZ_TSAN
#define MH_HZ_RECHECK memory_order_seq_cst
#else
#define MH_HZ_RECHECK memory_order_acquire
#endif

/* Done reading. */
static inline void mh_hz_clear(mh_hazard *hz)
{
    atomic_store_explicit(&hz->ptr, NULL, memory_order_release);
}

/* Writer: after unpublishing pointers (a store of the replacement), make
 * every reader's hazard store visible, then ask mh_hz_held.  False when
 * that could not be done: free nothing this time. */
bool mh_hz_barrier(void);
/* Does any thread's hazard hold p? */
bool mh_hz_held(const void *p);

#endif /* MH_CACHE_HAZARD_H */
