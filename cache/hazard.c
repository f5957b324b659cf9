/*
 * cache/hazard.c -- per-thread hazard records and the writer's barrier
 * (see hazard.h).
 *
 * Records are 64-byte aligned, one cache line each, so two threads
 * reading never write the same line.  They live in a push-only list and
 * are reused, not freed: a thread that exits releases its record (its
 * pthread key destructor), and the next new thread takes it.
 */
#include "cache/hazard.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

_Thread_local mh_hazard *mh_hz_self_ __attribute__((tls_model("initial-exec")));
_Atomic bool mh_hz_asym_;

static _Atomic(mh_hazard *) all;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static bool key_ok;

static void release(void *p)
{
    mh_hazard *hz = p;
    atomic_store_explicit(&hz->ptr, NULL, memory_order_release);
    atomic_store_explicit(&hz->used, 0, memory_order_release);
    mh_hz_self_ = NULL; /* a later use in this thread registers again */
}

static void setup(void)
{
    key_ok = pthread_key_create(&key, release) == 0;
#ifndef MH_HZ_TSAN
    /* Registering once per process makes the expedited command cheap
     * (an IPI to the CPUs running this process's threads only). */
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
                0, 0) == 0)
        atomic_store(&mh_hz_asym_, true);
#endif
}

mh_hazard *mh_hz_register_(void)
{
    pthread_once(&once, setup);
#ifndef MH_HZ_TSAN
    if (!atomic_load(&mh_hz_asym_))
        return NULL; /* no membarrier: readers lock */
#endif
    if (!key_ok)
        return NULL;
    mh_hazard *hz;
    for (hz = atomic_load(&all); hz; hz = hz->next) {
        int free_ = 0;
        if (atomic_compare_exchange_strong(&hz->used, &free_, 1))
            break;
    }
    if (!hz) {
        hz = aligned_alloc(64, 64);
        if (!hz)
            return NULL;
        memset(hz, 0, 64);
        atomic_init(&hz->ptr, NULL);
        atomic_init(&hz->used, 1);
        hz->next = atomic_load(&all);
        while (!atomic_compare_exchange_weak(&all, &hz->next, hz))
            ;
    }
    if (pthread_setspecific(key, hz) != 0) {
        atomic_store(&hz->used, 0);
        return NULL;
    }
    mh_hz_self_ = hz;
    return hz;
}

/* libmodhost unloaded (dlclose): no thread may call a destructor that is
 * no longer mapped. */
__attribute__((destructor)) static void unload(void)
{
    if (key_ok)
        pthread_key_delete(key);
}

bool mh_hz_barrier(void)
{
    pthread_once(&once, setup);
#ifndef MH_HZ_TSAN
    /* Readers rely on it for their ordering: should it ever fail, nothing
     * may be freed.  Without it, there are no lock-free readers. */
    if (atomic_load_explicit(&mh_hz_asym_, memory_order_relaxed))
        return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0,
                       0) == 0;
#endif
    atomic_thread_fence(memory_order_seq_cst);
    return true;
}

bool mh_hz_held(const void *p)
{
    for (mh_hazard *hz = atomic_load(&all); hz; hz = hz->next)
        if (atomic_load_explicit(&hz->ptr, memory_order_acquire) == p)
            return true;
    return false;
}
