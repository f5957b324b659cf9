/* bench/common.h -- hosts and peers shared by several areas. */
#ifndef MODHOST_BENCH_COMMON_H
#define MODHOST_BENCH_COMMON_H

#include <modhost.h>
#include <stddef.h>
#include <stdint.h>

/* A host searching exactly `path` (';'-separated): isolated, no default
 * entries, caches under the run's work directory; extra MH_CONFIG_* flags
 * ORed in.  alloc may be NULL.  Dies on failure. */
mh_host *bench_host(const char *path, unsigned flags, mh_alloc_fn alloc,
                    void *alloc_ud);
/* Regular files in dir (0 if it cannot be read). */
size_t bench_count_files(const char *dir);

/* A copy of h's cache directory (NULL if it has none), for
 * bench_discard once h is freed. */
char *bench_cache_of(mh_host *h);
/* Move dir (a cache a sample made) into the work directory's trash/, which
 * goes when the run ends (see common.c for why it is not removed now);
 * frees dir.  NULL: nothing. */
void bench_discard(char *dir);

/* The same in two steps, for hosts with hooks or a given cache dir (a
 * warm cache is the same dir again): fill cfg, set what else is needed,
 * then make the host (dies on failure). */
void bench_config(mh_config *cfg, const char *path, const char *cache_dir,
                  unsigned flags);
mh_host *bench_host_new(const mh_config *cfg);
/* Import every name (dies on the first failure, naming it). */
void bench_import_all(mh_host *h, const char *const *names, size_t n);

/* The fixture file of every name (tree/pkgA/subB/mod_N.so, in names.txt
 * order), made once, owned by bench. */
const char *const *bench_files(void);

/* The floor: dlopen() each of files[0..n) by absolute path, RTLD_NOW |
 * RTLD_LOCAL; µs per object.  Everything is closed again untimed. */
double bench_dlopen_all_us(const char *const *files, size_t n);

/* Run fn(arg) in a fork()ed child and return the double it computed, or
 * NAN if the child failed: for what must start from a fresh process
 * (a process-global table, the C heap's growth). */
double bench_forked(double (*fn)(void *), void *arg);
/* The same for fn(arg, out) filling size bytes at out (copied back from
 * the child); false if the child failed. */
bool bench_forked_into(void (*fn)(void *arg, void *out), void *arg,
                       void *out, size_t size);

/* A variant kept running in a process of its own, so that what it holds
 * (a heap, a Lua state) is shared with no other variant of its table, and
 * nothing is inherited from the areas run before it: bench_worker_start
 * runs the bench anew (`--child AREA.ID`, with this run's options), whose
 * area child function fills a bench_worker with its functions and state
 * and calls bench_worker_serve.  That runs setup(state) once, then
 * sample(state) each time the parent asks (bench_worker_sample, a
 * bench_var's sample function with the worker as its context, so the
 * variants still interleave round by round), and at bench_worker_end
 * finish(state, out), whose out_size bytes come back to the parent. */
typedef struct bench_worker {
    const char *child;      /* the parent's: "AREA.ID" */
    size_t out_size;        /* both sides' */
    int pid, to, from;      /* set by bench_worker_start */
    void (*setup)(void *state); /* the child's */
    double (*sample)(void *state);
    void (*finish)(void *state, void *out);
    void *state;
} bench_worker;
void bench_worker_start(bench_worker *w);
double bench_worker_sample(void *worker);
/* False if the child failed (out then holds nothing to use). */
bool bench_worker_end(bench_worker *w, void *out);
/* The child's side: answers the parent until it ends; never returns. */
_Noreturn void bench_worker_serve(const bench_worker *w);

/* CPython: run bench/py_import.py MODE FIXTURES P [EXTRA] once; its
 * figure, or NAN.  extra may be NULL. */
double bench_python(const char *mode, int p, const char *extra);

/* The library's string hash, reimplemented for the floors. */
uint64_t bench_hash(const void *p, size_t len);

/* A bare open-addressing string table: the floor a registry hit is held
 * against (hash the name, probe, compare). */
typedef struct bench_strtab bench_strtab;
bench_strtab *bench_strtab_new(const char *const *keys, size_t n);
const char *bench_strtab_find(const bench_strtab *t, const char *key);
void bench_strtab_free(bench_strtab *t);

/* A counting allocator for mh_config.alloc: bytes (malloc_usable_size)
 * and blocks the host holds right now; thread-safe. */
typedef struct bench_count {
    _Atomic long long bytes;
    _Atomic long long blocks;
} bench_count;
void *bench_count_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

#endif
