/*
 * bench/intern.c -- interned strings: insert, hit, bytes per name, and two
 * threads reading.
 *
 * 1,000,000 distinct 20-byte names ("pkg07.sub42.m_004207"), generated
 * deterministically and shuffled with a fixed seed: one order to insert,
 * another to hit, a third for the second reading thread.  The variants:
 *   modhost   mh_intern(host, name) (insert or hit), mh_intern_lookup
 *             (read-only hit)
 *   GLib      g_intern_string(name): one process-global table behind a
 *             mutex, which cannot be emptied
 *   bare      a plain single-threaded open-addressing table that copies
 *             the names into an arena (written below): the "good table"
 *             the issue holds GLib against
 *
 * Instruction counts come from callgrind children (`--child intern.ID`),
 * fresh processes, so GLib's insert starts from an empty table there too.
 * Wall-time inserts run in a fork()ed child per sample for every variant
 * alike: GLib's table can only be filled once per process, and the others
 * are given the same (copy-on-write, fresh-heap) conditions.
 */
#include "bench.h"
#include "common.h"

#include <glib.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_NAMES 1000000u
#define NAME_LEN 20u
#define THREAD_OPS 250000u /* hits per reading thread per sample */
#define MAX_SAMPLES 256

/* ---- the names ----------------------------------------------------------- */

typedef struct names {
    /* Each order's strings are laid out one after another in that order,
     * so the caller's own read of the key is sequential: what is measured
     * is the table, not the fetch of a key from a random place (a caller
     * interns a string it has just parsed, which is in its cache). */
    const char **insert;       /* insert order */
    const char **hit;          /* hit order (the first reading thread) */
    const char **hit2;         /* hit order of the second thread */
} names;

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void put_digits(char *p, unsigned v, int n)
{
    while (n-- > 0) {
        p[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Name number i: "pkgPP.subSS.m_NNNNNN", exactly 20 bytes, shaped like the
 * module names the library interns (dotted, sharing prefixes); written by
 * hand because snprintf a million times is slow under valgrind. */
static void make_name(char *p, unsigned i)
{
    memcpy(p, "pkgPP.subSS.m_NNNNNN", NAME_LEN + 1);
    put_digits(p + 3, (i * 7u) % 100, 2);
    put_digits(p + 9, (i / 7u) % 100, 2);
    put_digits(p + 14, i, 6);
}

/* All N_NAMES names in an order shuffled with `seed` (Fisher-Yates). */
static const char **shuffled(uint64_t seed)
{
    unsigned *perm = malloc(N_NAMES * sizeof *perm);
    const char **v = malloc(N_NAMES * sizeof *v);
    char *buf = malloc((size_t)N_NAMES * (NAME_LEN + 1));
    if (!perm || !v || !buf)
        bench_die("out of memory");
    for (unsigned i = 0; i < N_NAMES; i++)
        perm[i] = i;
    for (size_t i = N_NAMES - 1; i > 0; i--) {
        size_t j = (size_t)(((unsigned __int128)rng_next(&seed) * (i + 1))
                            >> 64);
        unsigned t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (size_t i = 0; i < N_NAMES; i++) {
        char *p = buf + i * (NAME_LEN + 1);
        make_name(p, perm[i]);
        v[i] = p;
    }
    free(perm);
    return v;
}

static const names *get_names(void)
{
    static names n;
    if (!n.insert) {
        n.insert = shuffled(1);
        n.hit = shuffled(2);
        n.hit2 = shuffled(3);
    }
    return &n;
}

/* ---- the bare table ------------------------------------------------------ */

/* What a careful single-threaded table would be: the full hash kept in
 * the slot (probes compare it before touching the string, and growth
 * never rehashes), linear probing at most half full, strings packed
 * into big arena chunks with no per-string header. */
typedef struct bare_slot {
    uint64_t hash;
    const char *str;           /* NULL: empty */
} bare_slot;

typedef struct bare_chunk {
    struct bare_chunk *next;
    char data[];
} bare_chunk;

#define BARE_CHUNK (256u * 1024u)

typedef struct bare {
    bare_slot *slots;
    size_t mask, count;
    bare_chunk *chunks;
    size_t used;               /* bytes used in chunks->data */
} bare;


static bare *bare_new(void)
{
    bare *t = calloc(1, sizeof *t);
    if (!t || !(t->slots = calloc(256, sizeof *t->slots)))
        bench_die("out of memory");
    t->mask = 255;
    t->used = BARE_CHUNK;
    return t;
}

static void bare_free(bare *t)
{
    while (t->chunks) {
        bare_chunk *n = t->chunks->next;
        free(t->chunks);
        t->chunks = n;
    }
    free(t->slots);
    free(t);
}

static const char *bare_find(const bare *t, const char *s)
{
    size_t len = strlen(s);
    uint64_t h = bench_hash(s, len);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        const bare_slot *e = &t->slots[i];
        if (!e->str)
            return NULL;
        if (e->hash == h && memcmp(e->str, s, len + 1) == 0)
            return e->str;
    }
}

static void bare_grow(bare *t)
{
    size_t cap = (t->mask + 1) * 2;
    bare_slot *ns = calloc(cap, sizeof *ns);
    if (!ns)
        bench_die("out of memory");
    for (size_t i = 0; i <= t->mask; i++)
        if (t->slots[i].str) {
            size_t j = t->slots[i].hash & (cap - 1);
            while (ns[j].str)
                j = (j + 1) & (cap - 1);
            ns[j] = t->slots[i];
        }
    free(t->slots);
    t->slots = ns;
    t->mask = cap - 1;
}

static const char *bare_intern(bare *t, const char *s)
{
    size_t len = strlen(s);
    uint64_t h = bench_hash(s, len);
    size_t i;
    for (i = h & t->mask; t->slots[i].str; i = (i + 1) & t->mask)
        if (t->slots[i].hash == h &&
            memcmp(t->slots[i].str, s, len + 1) == 0)
            return t->slots[i].str;
    if ((t->count + 1) * 2 > t->mask + 1) {
        bare_grow(t);
        for (i = h & t->mask; t->slots[i].str; i = (i + 1) & t->mask)
            ;
    }
    if (BARE_CHUNK - t->used < len + 1) {
        bare_chunk *c = malloc(sizeof *c + BARE_CHUNK);
        if (!c)
            bench_die("out of memory");
        c->next = t->chunks;
        t->chunks = c;
        t->used = 0;
    }
    char *copy = t->chunks->data + t->used;
    memcpy(copy, s, len + 1);
    t->used += len + 1;
    t->slots[i].hash = h;
    t->slots[i].str = copy;
    t->count++;
    return copy;
}

/* ---- the measured loops -------------------------------------------------- */

typedef enum op {
    OP_MODHOST,                /* mh_intern */
    OP_LOOKUP,                 /* mh_intern_lookup */
    OP_GLIB,                   /* g_intern_string */
    OP_BARE_INTERN,            /* bare_intern */
    OP_BARE_FIND               /* bare_find */
} op;

typedef struct tables {
    mh_host *host;
    bare *bare;
} tables;

/* n operations of one kind over `order`; returns how many gave a string,
 * which the caller checks (and which keeps the calls from being dropped).
 * One loop per kind, so the loop around the call is the same few
 * instructions for every variant. */
static size_t run_ops(op kind, const tables *t, const char *const *order,
                      size_t n)
{
    size_t ok = 0;
    switch (kind) {
    case OP_MODHOST:
        for (size_t i = 0; i < n; i++)
            ok += mh_intern(t->host, order[i]) != NULL;
        break;
    case OP_LOOKUP:
        for (size_t i = 0; i < n; i++)
            ok += mh_intern_lookup(t->host, order[i]) != NULL;
        break;
    case OP_GLIB:
        for (size_t i = 0; i < n; i++)
            ok += g_intern_string(order[i]) != NULL;
        break;
    case OP_BARE_INTERN:
        for (size_t i = 0; i < n; i++)
            ok += bare_intern(t->bare, order[i]) != NULL;
        break;
    case OP_BARE_FIND:
        for (size_t i = 0; i < n; i++)
            ok += bare_find(t->bare, order[i]) != NULL;
        break;
    }
    return ok;
}

/* The inserting kind that fills a table the given kind then reads. */
static op insert_kind(op kind)
{
    switch (kind) {
    case OP_MODHOST:
    case OP_LOOKUP:
        return OP_MODHOST;
    case OP_GLIB:
        return OP_GLIB;
    case OP_BARE_INTERN:
    case OP_BARE_FIND:
        break;
    }
    return OP_BARE_INTERN;
}

/* ---- callgrind children -------------------------------------------------- */

static const struct {
    const char *id;
    op kind;
    bool hit;                  /* fill first (not counted), then hit */
} children[] = {
    {"insert-modhost", OP_MODHOST, false},
    {"insert-glib", OP_GLIB, false},
    {"insert-bare", OP_BARE_INTERN, false},
    {"hit-modhost", OP_MODHOST, true},
    {"hit-lookup", OP_LOOKUP, true},
    {"hit-glib", OP_GLIB, true},
    {"hit-bare", OP_BARE_FIND, true},
};

static int child(const char *id)
{
    size_t k = 0;
    while (k < sizeof children / sizeof children[0] &&
           strcmp(children[k].id, id) != 0)
        k++;
    if (k == sizeof children / sizeof children[0])
        bench_die("intern: no child '%s'", id);
    const names *nm = get_names();
    tables t = {NULL, NULL};
    op kind = children[k].kind;
    if (kind == OP_MODHOST || kind == OP_LOOKUP)
        t.host = bench_host(NULL, 0, NULL, NULL);
    if (kind == OP_BARE_INTERN || kind == OP_BARE_FIND)
        t.bare = bare_new();
    /* The host interns a few names of its own when it is created. */
    size_t own = t.host ? mh_intern_count(t.host) : 0;
    if (children[k].hit &&
        run_ops(insert_kind(kind), &t, nm->insert, N_NAMES) != N_NAMES)
        return 1;
    /* Only the table operations are counted: an insert child counts
     * every insert into an initially empty table (growth included), a hit
     * child every lookup of a name that is there. */
    bench_cg_start();
    size_t ok = run_ops(kind, &t, children[k].hit ? nm->hit : nm->insert,
                        N_NAMES);
    bench_cg_stop();
    if (ok != N_NAMES) {
        fprintf(stderr, "intern child %s: %zu of %u ops found\n", id, ok,
                N_NAMES);
        return 1;
    }
    if (t.host && mh_intern_count(t.host) - own != N_NAMES) {
        fprintf(stderr, "intern child %s: %zu names added to the host\n",
                id, mh_intern_count(t.host) - own);
        return 1;
    }
    return 0;
}

/* ---- forked samples ------------------------------------------------------ */


typedef struct ctx {
    const names *nm;
    mh_host *empty;            /* an empty host (C allocator) for children */
    tables full;               /* filled tables, for hits */
} ctx;

typedef struct var_ctx {
    ctx *c;
    op kind;
    int threads;
    size_t next;               /* threads: where the next slice starts */
    int ncores;                /* threads: cores used, per sample */
    double cores[MAX_SAMPLES];
} var_ctx;

/* In a fork()ed child: insert every name into an empty table, ns/op. */
static double insert_in_child(void *p)
{
    var_ctx *v = p;
    tables t = {v->c->empty, NULL};
    size_t own = mh_intern_count(t.host);
    if (v->kind == OP_BARE_INTERN)
        t.bare = bare_new();
    if (v->kind == OP_GLIB && g_quark_try_string(v->c->nm->insert[0]))
        return NAN; /* GLib's table is not empty here: not an insert */
    uint64_t t0 = bench_now_ns();
    size_t ok = run_ops(v->kind, &t, v->c->nm->insert, N_NAMES);
    uint64_t dt = bench_now_ns() - t0;
    if (ok != N_NAMES || (v->kind == OP_MODHOST &&
                          mh_intern_count(t.host) - own != N_NAMES))
        return NAN;
    return (double)dt / N_NAMES;
}

static double sample_insert(void *p)
{
    return bench_forked(insert_in_child, p);
}

static double sample_hit(void *p)
{
    var_ctx *v = p;
    uint64_t t0 = bench_now_ns();
    size_t ok = run_ops(v->kind, &v->c->full, v->c->nm->hit, N_NAMES);
    uint64_t dt = bench_now_ns() - t0;
    if (ok != N_NAMES)
        bench_die("intern: a hit missed");
    return (double)dt / N_NAMES;
}

/* ---- bytes per name ------------------------------------------------------ */

static double heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
}

/* In a fork()ed child: what the C heap grows by (bytes in use, small and
 * mmapped chunks, headers included) when the names are interned. */
static double heap_in_child(void *p)
{
    var_ctx *v = p;
    tables t = {v->c->empty, NULL};
    if (v->kind == OP_GLIB && g_quark_try_string(v->c->nm->insert[0]))
        return NAN;
    double before = heap_in_use();
    if (v->kind == OP_BARE_INTERN)
        t.bare = bare_new();
    if (run_ops(v->kind, &t, v->c->nm->insert, N_NAMES) != N_NAMES)
        return NAN;
    return (heap_in_use() - before) / N_NAMES;
}

/* ---- threads ------------------------------------------------------------- */

typedef struct worker {
    pthread_t tid;
    pthread_barrier_t *start;
    const tables *t;
    op kind;
    const char *const *order;
    size_t ok;
} worker;

static void *worker_main(void *p)
{
    worker *w = p;
    pthread_barrier_wait(w->start);
    w->ok = run_ops(w->kind, w->t, w->order, THREAD_OPS);
    return NULL;
}

static double cpu_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Every thread does the same fixed work, THREAD_OPS hits in its own
 * random order (the next slice of it each sample, so no slice is warm
 * from the sample before); M hits per second of all threads together,
 * from the start barrier to the last thread done.  One thread runs on a
 * worker too, so both figures have the same code around them.  The
 * process's CPU time over the same span, divided by the wall time, says
 * how many cores the threads really had. */
static double sample_threads(void *p)
{
    var_ctx *v = p;
    size_t off = v->next;
    v->next = (v->next + THREAD_OPS) % (N_NAMES - THREAD_OPS + 1);
    const char *const *orders[2] = {v->c->nm->hit + off,
                                    v->c->nm->hit2 + off};
    pthread_barrier_t start;
    worker w[2];
    pthread_barrier_init(&start, NULL, (unsigned)v->threads + 1);
    for (int i = 0; i < v->threads; i++) {
        w[i] = (worker){0, &start, &v->c->full, v->kind, orders[i], 0};
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
            bench_die("pthread_create failed");
    }
    pthread_barrier_wait(&start);
    uint64_t t0 = bench_now_ns();
    double cpu0 = cpu_now_ns();
    size_t ok = 0;
    for (int i = 0; i < v->threads; i++) {
        pthread_join(w[i].tid, NULL);
        ok += w[i].ok;
    }
    uint64_t dt = bench_now_ns() - t0;
    double cpu = cpu_now_ns() - cpu0;
    pthread_barrier_destroy(&start);
    size_t want = (size_t)v->threads * THREAD_OPS;
    if (ok != want)
        bench_die("intern: a threaded hit missed");
    if (v->ncores < MAX_SAMPLES)
        v->cores[v->ncores++] = cpu / (double)dt;
    return (double)want / (double)dt * 1e3;
}

/* ---- the tables ---------------------------------------------------------- */

/* A variant's context (designated, so the per-sample fields start 0). */
#define VC(k, n) {.c = &c, .kind = (k), .threads = (n)}

/* The wall-time hits and the threads need GLib's global table full, and
 * GLib never gives back its old quark arrays (about 2 GB at 1 M names):
 * they are measured in a fork()ed child, so that the rest of the run (and
 * every process it forks) does not carry them. */
#define N_HIT 4
#define N_THR 8
typedef struct hit_figs {
    double wall[N_HIT];         /* ns per hit */
    double thr[N_THR];          /* M hits per second */
    double cores[N_THR];        /* cores the samples had, median */
} hit_figs;

static const char *const hit_name[N_HIT] = {
    "modhost: mh_intern", "modhost: mh_intern_lookup",
    "GLib: g_intern_string", "bare open-addressing table (good table)"};
static const char *const thr_name[N_THR] = {
    "modhost: mh_intern_lookup, 1 thread",
    "modhost: mh_intern_lookup, 2 threads",
    "modhost: mh_intern (hit), 1 thread",
    "modhost: mh_intern (hit), 2 threads",
    "GLib: g_intern_string (hit), 1 thread",
    "GLib: g_intern_string (hit), 2 threads",
    "bare table (read-only), 1 thread",
    "bare table (read-only), 2 threads"};

static void hits_in_child(void *arg, void *out)
{
    ctx c = *(ctx *)arg; /* VC() takes &c */
    hit_figs *f = out;
    c.full.bare = bare_new();
    if (run_ops(OP_BARE_INTERN, &c.full, c.nm->insert, N_NAMES) != N_NAMES ||
        run_ops(OP_GLIB, &c.full, c.nm->insert, N_NAMES) != N_NAMES)
        bench_die("intern: filling the peers failed");
    var_ctx hit[N_HIT] = {VC(OP_MODHOST, 1), VC(OP_LOOKUP, 1),
                          VC(OP_GLIB, 1), VC(OP_BARE_FIND, 1)};
    bench_var hv[N_HIT];
    for (size_t i = 0; i < N_HIT; i++)
        hv[i] = (bench_var){hit_name[i], sample_hit, &hit[i], 0};
    bench_interleave(hv, N_HIT, bench.rounds);
    var_ctx thr[N_THR] = {VC(OP_LOOKUP, 1),  VC(OP_LOOKUP, 2),
                          VC(OP_MODHOST, 1), VC(OP_MODHOST, 2),
                          VC(OP_GLIB, 1),    VC(OP_GLIB, 2),
                          VC(OP_BARE_FIND, 1), VC(OP_BARE_FIND, 2)};
    bench_var tv[N_THR];
    for (size_t i = 0; i < N_THR; i++)
        tv[i] = (bench_var){thr_name[i], sample_threads, &thr[i], 0};
    /* Short samples, many rounds: the machine runs other jobs, and a
     * median of many short samples is least moved by them. */
    int rounds = bench.rounds * 3 < MAX_SAMPLES ? bench.rounds * 3
                                                : MAX_SAMPLES;
    bench_interleave(tv, N_THR, rounds);
    for (size_t i = 0; i < N_HIT; i++)
        f->wall[i] = hv[i].median;
    for (size_t i = 0; i < N_THR; i++) {
        f->thr[i] = tv[i].median;
        f->cores[i] = bench_median(thr[i].cores, (size_t)thr[i].ncores);
    }
    bare_free(c.full.bare);
}


static void run(void)
{
    ctx c = {0};
    c.nm = get_names();
    c.empty = bench_host(NULL, 0, NULL, NULL);

    /* Insert, instructions.  Fresh processes: nothing in GLib's table. */
    double ins_ir[3] = {
        bench_callgrind("intern.insert-modhost", N_NAMES),
        bench_callgrind("intern.insert-glib", N_NAMES),
        bench_callgrind("intern.insert-bare", N_NAMES),
    };
    bench_table("Interning: insert, instructions",
                "instructions per insert of a new 20-byte name "
                "(callgrind), 1 M distinct names in random order into an "
                "empty table, growth included");
    bench_row("modhost: mh_intern", ins_ir[0], "Ir", true);
    bench_row("GLib: g_intern_string", ins_ir[1], "Ir", false);
    bench_row("bare open-addressing table (good table)", ins_ir[2], "Ir",
              false);
    bench_target("modhost ÷ GLib instructions, insert",
                 ins_ir[0] / ins_ir[1], 1.0 / 3, false);
    bench_note("GLib ÷ bare table: %.2f (the issue quotes about 4).",
               ins_ir[1] / ins_ir[2]);
    bench_table_end();

    /* Insert, wall time: every sample in a fork()ed child (GLib's table
     * cannot be emptied, so its parent must never fill it before this). */
    var_ctx ins[] = {VC(OP_MODHOST, 1), VC(OP_GLIB, 1),
                     VC(OP_BARE_INTERN, 1)};
    bench_var iv[] = {
        {"modhost: mh_intern", sample_insert, &ins[0], 0},
        {"GLib: g_intern_string", sample_insert, &ins[1], 0},
        {"bare open-addressing table (good table)", sample_insert,
         &ins[2], 0},
    };
    bench_interleave(iv, 3, bench.rounds);
    bench_table("Interning: insert, wall time",
                "ns per insert, 1 M distinct 20-byte names in random order "
                "into an empty table; each sample in a fork()ed child");
    for (size_t i = 0; i < 3; i++)
        bench_row(iv[i].name, iv[i].median, "ns", i == 0);
    bench_note("Wall time includes the page faults of the new memory, "
               "alike for all three; the targets are on instructions.");
    bench_table_end();

    /* Bytes per name.  The modhost figure counts, through the host's
     * allocator hook, everything the host holds (records, arena slack,
     * the live slot array and any retired ones), as malloc_usable_size
     * reports it. */
    bench_count count = {0, 0};
    c.full.host = bench_host(NULL, 0, bench_count_alloc, &count);
    long long b0 = count.bytes, k0 = count.blocks;
    size_t own = mh_intern_count(c.full.host);
    if (run_ops(OP_MODHOST, &c.full, c.nm->insert, N_NAMES) != N_NAMES ||
        mh_intern_count(c.full.host) - own != N_NAMES)
        bench_die("intern: filling the host failed");
    double per_name = (double)(count.bytes - b0) / N_NAMES;
    long long blocks = count.blocks - k0;
    var_ctx heap[] = {VC(OP_MODHOST, 1), VC(OP_GLIB, 1),
                      VC(OP_BARE_INTERN, 1)};
    double heap_v[3];
    for (size_t i = 0; i < 3; i++)
        heap_v[i] = bench_forked(heap_in_child, &heap[i]);
    bench_table("Interning: bytes per name",
                "bytes held per interned 20-byte name, 1 M names");
    bench_row("modhost (host allocator hook, usable sizes)", per_name, "B",
              true);
    bench_row("modhost (C heap growth, mallinfo2)", heap_v[0], "B", false);
    bench_row("GLib g_intern_string (C heap growth, mallinfo2)", heap_v[1],
              "B", false);
    bench_row("bare table (C heap growth, mallinfo2)", heap_v[2], "B",
              false);
    bench_target("modhost bytes per 20-byte name", per_name, 64, false);
    bench_note("First row: bytes the host holds after interning the 1 M "
               "names minus the empty host's, through its allocator hook "
               "(%lld blocks in all).  The mallinfo2 rows: growth of the C "
               "heap in use (chunk headers and mmapped blocks included) "
               "in a fork()ed child per variant, the only way to see "
               "GLib's process-global table.", blocks);
    bench_note("GLib's figure is mostly its quarks array: gquark.c grows "
               "it 2,048 entries at a time into a new copy and leaks the "
               "old one (so that readers need no lock), which at 1 M "
               "names leaves about 2 GB of old arrays; the copying is in "
               "its insert figures too.");
    bench_table_end();

    double hit_ir[4] = {
        bench_callgrind("intern.hit-modhost", N_NAMES),
        bench_callgrind("intern.hit-lookup", N_NAMES),
        bench_callgrind("intern.hit-glib", N_NAMES),
        bench_callgrind("intern.hit-bare", N_NAMES),
    };
    bench_table("Interning: hit, instructions",
                "instructions per lookup of an interned 20-byte name "
                "(callgrind), 1 M names, random order (not the insert "
                "order)");
    bench_row("modhost: mh_intern", hit_ir[0], "Ir", true);
    bench_row("modhost: mh_intern_lookup", hit_ir[1], "Ir", false);
    bench_row("GLib: g_intern_string", hit_ir[2], "Ir", false);
    bench_row("bare open-addressing table (good table)", hit_ir[3], "Ir",
              false);
    bench_target("modhost ÷ GLib instructions, hit (mh_intern)",
                 hit_ir[0] / hit_ir[2], 1.0 / 2, false);
    bench_note("GLib ÷ bare table: %.2f (the issue quotes about 2.2).",
               hit_ir[2] / hit_ir[3]);
    bench_table_end();

    hit_figs hf;
    if (!bench_forked_into(hits_in_child, &c, &hf, sizeof hf))
        bench_die("intern: the child measuring hits failed");
    bench_table("Interning: hit, wall time",
                "ns per lookup of an interned 20-byte name, one pass over "
                "the 1 M names in random order");
    for (size_t i = 0; i < N_HIT; i++)
        bench_row(hit_name[i], hf.wall[i], "ns", i == 0);
    bench_table_end();

    bench_table("Interning: 2 threads reading",
                "M hits per second, all threads together; each thread "
                "looks up 250,000 of the 1 M interned names in its own "
                "random order, timed from a start barrier to the last "
                "thread done");
    for (size_t i = 0; i < N_THR; i++)
        bench_row(thr_name[i], hf.thr[i], "M/s", i == 0);
    const double *tput = hf.thr, *cores = hf.cores;
    double scale = tput[1] / tput[0];
    bench_target("modhost 2-thread ÷ 1-thread hit throughput "
                 "(mh_intern_lookup)", scale, 1.8, true);
    bench_target("modhost 2-thread ÷ 1-thread hit throughput (mh_intern)",
                 tput[3] / tput[2], 1.8, true);
    /* CPU time per hit, 2 threads over 1: above 1 when sharing the table
     * makes each hit dearer (contended cache lines, a lock), whatever the
     * other jobs left us of the second core. */
    double cpu_hit[4];
    for (size_t i = 0; i < 4; i++)
        cpu_hit[i] = (cores[2 * i + 1] / tput[2 * i + 1]) /
                     (cores[2 * i] / tput[2 * i]);
    bench_note("2 threads ÷ 1 thread: mh_intern_lookup %.2f, mh_intern "
               "%.2f, GLib %.2f, bare table %.2f.  The bare table shares "
               "nothing between the threads but the memory system, so its "
               "ratio is the most this machine gave (%ld cores online, "
               "other jobs running).  Cores the 2-thread samples had "
               "(process CPU time ÷ wall time, median): modhost lookup "
               "%.2f, mh_intern %.2f, GLib %.2f, bare %.2f.  CPU time "
               "per hit, 2 threads ÷ 1 thread: modhost lookup %.2f, "
               "mh_intern %.2f, GLib %.2f, bare %.2f.", scale,
               tput[3] / tput[2], tput[5] / tput[4],
               tput[7] / tput[6], sysconf(_SC_NPROCESSORS_ONLN),
               cores[1], cores[3], cores[5], cores[7], cpu_hit[0],
               cpu_hit[1], cpu_hit[2], cpu_hit[3]);
    bench_table_end();

    mh_host_free(c.full.host);
    mh_host_free(c.empty);
}

const bench_area bench_area_intern = {"intern", "Interned strings", run,
                                      child};
