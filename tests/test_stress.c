/*
 * test_stress.c -- concurrent imports under load (issue 7, "Concurrency").
 *
 * test_thread.c shows each guarantee of the registry once; this file
 * repeats them until a race would have shown:
 *
 *   storm            64 threads x 200 rounds import 8 modules, each from
 *                    a different start: one module, one init per name;
 *   four_cycle       a -> b -> c -> d -> a, one thread on each, 1,000
 *                    rounds: the deadlock is reported, never waited out;
 *   ring_detects     a ring of N modules and N threads (N = 2, 3, 8);
 *   ring_broken      the same with N - 1 threads and the ring's closing
 *                    edge gone: no deadlock may be reported;
 *   init_error_reaches_every_waiter  one failing init, 32 waiters;
 *   self_import_under_contention     same-thread re-entry while others
 *                                    wait is a cycle, not a deadlock;
 *   deadlock_not_recorded            a deadlock is the import chain's
 *                                    fault, not the module's.
 *
 * Worker threads live for a whole case (a crew) and meet the main thread
 * at a barrier at the start of every round, so that rounds are cheap and
 * the threads really start together; every round has its own deadline,
 * well inside the runner's watchdog.  Every round has a fresh host (the
 * registry cleared).
 *
 * The rings need every thread to hold its own module before any asks for
 * the next: otherwise one thread may run the whole ring alone and report
 * a plain circular import.  The fixture stress_hook's init calls back into
 * this program (its address is in $MH_STRESS_HOOK), where a rendezvous
 * waits for every thread's init to start.
 *
 * On success each case prints one line, "cases: stress.NAME COUNT UNIT",
 * for the reliability report.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "support/support.h"
#include "test.h"

#define CREW_MAX 64
#define ROUND_TIMEOUT_S 10      /* per round; the runner's watchdog is 45 s */
#define RENDEZVOUS_MS 5000      /* a thread that never arrives: give up */

static void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) != 0) {
        /* interrupted: sleep the rest */
    }
}

static void report(const char *name, long long count, const char *unit)
{
    printf("cases: stress.%s %lld %s\n", name, count, unit);
    fflush(stdout);
}

/* Plugins' import failures are logged as warnings: thousands of them in
 * these loops, which would bury a failure's message.  Called from any
 * thread. */
static void quiet_log(void *ud, mh_log_level level, const char *msg)
{
    (void)ud;
    (void)level;
    (void)msg;
}

/* A host that sees only dir, keeping its cache (and, with index, its
 * discovery index) in the case's temp directory. */
static mh_host *stress_host(const char *dir, int index)
{
    mh_config cfg;

    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    if (!index)
        cfg.flags |= MH_CONFIG_NO_INDEX;
    cfg.path = dir;
    cfg.cache_dir = tmp_path("cache");
    cfg.log = quiet_log;
    return host_new_cfg(&cfg);
}

/* Point the stress_hook fixture at fn. */
static void set_hook(int (*fn)(const char *, const char **, char *, size_t))
{
    env_set("MH_STRESS_HOOK", str_fmt("%" PRIxPTR, (uintptr_t)fn));
}

/* ---- a crew: n threads that run one function per round ------------------ */

typedef void (*crew_fn)(void *ud, int t);

typedef struct crew crew;

struct crew_seat {
    crew *crew;
    int t;
};

struct crew {
    int n;
    pthread_t th[CREW_MAX];
    struct crew_seat seat[CREW_MAX];
    pthread_barrier_t go;   /* the n workers and the main thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* signalled when done grows; CLOCK_MONOTONIC */
    int done;               /* workers through with this round */
    int quit;               /* written before the barrier, read after */
    crew_fn fn;
    void *ud;
};

static void *crew_main(void *arg)
{
    struct crew_seat *seat = arg;
    crew *c = seat->crew;

    for (;;) {
        pthread_barrier_wait(&c->go);
        if (c->quit)
            return NULL;
        c->fn(c->ud, seat->t);
        pthread_mutex_lock(&c->mu);
        c->done++;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
    }
}

static void crew_start(crew *c, int n)
{
    pthread_condattr_t ca;

    if (n < 1 || n > CREW_MAX)
        FAIL("crew of %d threads (1..%d)", n, CREW_MAX);
    memset(c, 0, sizeof *c);
    c->n = n;
    pthread_barrier_init(&c->go, NULL, (unsigned)n + 1);
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    for (int t = 0; t < n; t++) {
        c->seat[t].crew = c;
        c->seat[t].t = t;
        ASSERT_EQ_INT(pthread_create(&c->th[t], NULL, crew_main, &c->seat[t]), 0);
    }
}

/* Run fn(ud, t) on every thread at once; fail the case if they are not
 * all done within ROUND_TIMEOUT_S. */
static void crew_round(crew *c, crew_fn fn, void *ud, const char *what,
                       int round)
{
    struct timespec deadline;

    c->fn = fn;
    c->ud = ud;
    pthread_mutex_lock(&c->mu);
    c->done = 0;
    pthread_mutex_unlock(&c->mu);
    pthread_barrier_wait(&c->go);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ROUND_TIMEOUT_S;
    pthread_mutex_lock(&c->mu);
    while (c->done < c->n)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == ETIMEDOUT &&
            c->done < c->n)
            FAIL("%s, round %d: %d of %d threads still importing after %d s: "
                 "hang or deadlock", what, round, c->n - c->done, c->n,
                 ROUND_TIMEOUT_S);
    pthread_mutex_unlock(&c->mu);
}

static void crew_stop(crew *c)
{
    c->quit = 1;
    pthread_barrier_wait(&c->go);
    for (int t = 0; t < c->n; t++)
        ASSERT_EQ_INT(pthread_join(c->th[t], NULL), 0);
    pthread_barrier_destroy(&c->go);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

/* ---- storm -------------------------------------------------------------- */

#define STORM_THREADS 64
#define STORM_ROUNDS 200
#define STORM_MODULES 8

static const char *const storm_names[STORM_MODULES] = {
    "m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7"};

struct storm {
    mh_host *host;
    mh_status st[STORM_THREADS][STORM_MODULES];   /* by module */
    mh_module *mod[STORM_THREADS][STORM_MODULES];
    char msg[STORM_THREADS][512];                 /* first error */
};

/* Thread t imports every module, starting at m(t % 8): eight threads
 * race for each module's first import, the others find it in flight or
 * loaded. */
static void storm_worker(void *ud, int t)
{
    struct storm *s = ud;

    for (int i = 0; i < STORM_MODULES; i++) {
        int k = (t + i) % STORM_MODULES;
        mh_error *err = NULL;

        s->st[t][k] = mh_import(s->host, storm_names[k], &s->mod[t][k], &err);
        if (err && !s->msg[t][0])
            snprintf(s->msg[t], sizeof s->msg[t], "%s", mh_error_message(err));
        mh_error_free(err);
    }
}

static void storm_check(struct storm *s, int round)
{
    for (int k = 0; k < STORM_MODULES; k++) {
        const char *name = storm_names[k];
        mh_module *mod = mh_host_module(s->host, name);
        const char *(*who)(void);
        int n;

        for (int t = 0; t < STORM_THREADS; t++) {
            if (s->st[t][k] != MH_OK)
                FAIL("round %d, thread %d, '%s': %s: %s", round, t, name,
                     mh_status_name(s->st[t][k]), s->msg[t]);
            if (s->mod[t][k] != mod)
                FAIL("round %d, thread %d got %p for '%s', the registry "
                     "holds %p", round, t, (void *)s->mod[t][k], name,
                     (void *)mod);
        }
        ASSERT_NOT_NULL(mod);
        n = call_int(mod, "count");
        if (n != 1)
            FAIL("round %d: init of '%s' ran %d times", round, name, n);
        who = (const char *(*)(void))symbol_ok(mod, "who");
        ASSERT_EQ_STR(who(), name);
        call_int(mod, "reset");
    }
    ASSERT_EQ_INT(mh_host_module_count(s->host), STORM_MODULES);
}

TEST(storm)
{
    static struct storm s;
    const char *dir = tmp_mkdir("S");
    crew c;

    for (int k = 0; k < STORM_MODULES; k++)
        fixture_copy("stress_count", "S/%s.so", storm_names[k]);
    crew_start(&c, STORM_THREADS);
    for (int round = 0; round < STORM_ROUNDS; round++) {
        memset(&s, 0, sizeof s);
        s.host = stress_host(dir, 0);
        crew_round(&c, storm_worker, &s, "storm", round);
        storm_check(&s, round);
        mh_host_free(s.host);
    }
    crew_stop(&c);
    report("storm", (long long)STORM_ROUNDS * STORM_THREADS * STORM_MODULES,
           "imports");
}

/* ---- rings -------------------------------------------------------------- */

#define RING_MAX 8
#define RING_MSG 4096

/* The round being played, set by the main thread between rounds. */
static struct ring {
    int n;                      /* modules names[0..n-1] */
    int nthreads;               /* thread t starts by importing names[t] */
    int closed;                 /* names[n-1]'s init imports names[0] */
    const char *names[RING_MAX];
    atomic_int arrived;         /* rendezvous */
    atomic_int stuck;           /* inits that gave up waiting */
    atomic_int inits[RING_MAX];
} ring;

/* stress_hook's init: count, wait until every thread holds its own
 * module, then import the next one around the ring. */
static int ring_hook(const char *name, const char **next, char *why,
                     size_t size)
{
    int i = 0;

    while (i < ring.n && strcmp(ring.names[i], name) != 0)
        i++;
    if (i == ring.n) {
        snprintf(why, size, "ring hook: unexpected module '%s'", name);
        return 1;
    }
    atomic_fetch_add(&ring.inits[i], 1);
    if (i < ring.nthreads) {
        long long give_up = clock_ms() + RENDEZVOUS_MS;

        atomic_fetch_add(&ring.arrived, 1);
        while (atomic_load(&ring.arrived) < ring.nthreads) {
            if (clock_ms() > give_up) {
                atomic_fetch_add(&ring.stuck, 1);
                break;
            }
            nap_us(50);
        }
    }
    if (i + 1 < ring.n)
        *next = ring.names[i + 1];
    else
        *next = ring.closed ? ring.names[0] : NULL;
    return 0;
}

struct ring_job {
    mh_host *host;
    mh_status st[RING_MAX];
    mh_module *mod[RING_MAX];
    char msg[RING_MAX][RING_MSG];
};

static void ring_worker(void *ud, int t)
{
    struct ring_job *j = ud;
    mh_error *err = NULL;

    j->st[t] = mh_import(j->host, ring.names[t], &j->mod[t], &err);
    snprintf(j->msg[t], RING_MSG, "%s", err ? mh_error_message(err) : "");
    mh_error_free(err);
}

/* Every thread's outcome, for failure messages. */
static const char *ring_outcomes(const struct ring_job *j)
{
    const char *s = "";

    for (int t = 0; t < ring.nthreads; t++)
        s = str_fmt("%s\n  thread %d (%s): %s %s", s, t, ring.names[t],
                    mh_status_name(j->st[t]), j->msg[t]);
    return s;
}

/* The deadlock report names every module of the ring, each quoted, after
 * "would deadlock". */
static int names_ring(const char *msg)
{
    const char *p = strstr(msg, "would deadlock");

    if (p == NULL)
        return 0;
    for (int i = 0; i < ring.n; i++) {
        char quoted[64];

        snprintf(quoted, sizeof quoted, "'%s'", ring.names[i]);
        if (strstr(p, quoted) == NULL)
            return 0;
    }
    return 1;
}

/* One round: a fresh host, every thread on its own module at once. */
static void ring_round(crew *c, struct ring_job *j, const char *dir,
                       int index, const char *what, int round)
{
    int detected = 0;

    memset(j, 0, sizeof *j);
    atomic_store(&ring.arrived, 0);
    atomic_store(&ring.stuck, 0);
    for (int i = 0; i < RING_MAX; i++)
        atomic_store(&ring.inits[i], 0);
    j->host = stress_host(dir, index);
    crew_round(c, ring_worker, j, what, round);

    if (atomic_load(&ring.stuck) != 0)
        FAIL("%s, round %d: %d inits gave up waiting for the others to "
             "start:%s", what, round, atomic_load(&ring.stuck),
             ring_outcomes(j));
    for (int i = 0; i < ring.n; i++)
        if (atomic_load(&ring.inits[i]) != 1)
            FAIL("%s, round %d: init of '%s' ran %d times:%s", what, round,
                 ring.names[i], atomic_load(&ring.inits[i]), ring_outcomes(j));
    for (int t = 0; t < ring.nthreads; t++) {
        mh_module *reg = mh_host_module(j->host, ring.names[t]);

        if (j->st[t] == MH_OK) {
            /* Whatever succeeded is whole and registered. */
            if (j->mod[t] == NULL || j->mod[t] != reg)
                FAIL("%s, round %d: thread %d got %p for '%s', the registry "
                     "holds %p", what, round, t, (void *)j->mod[t],
                     ring.names[t], (void *)reg);
            continue;
        }
        if (j->mod[t] != NULL || reg != NULL)
            FAIL("%s, round %d: '%s' failed (%s) but is handed out or "
                 "registered:%s", what, round, ring.names[t],
                 mh_status_name(j->st[t]), ring_outcomes(j));
        if (!ring.closed)
            FAIL("%s, round %d: no cycle, yet thread %d failed:%s", what,
                 round, t, ring_outcomes(j));
        /* Each failure is the deadlock's: reported where it was found,
         * passed on to the threads waiting, through each init. */
        if (j->st[t] != MH_EDEADLOCK)
            FAIL("%s, round %d: thread %d: %s, expected MH_EDEADLOCK (also "
                 "through an init whose import deadlocked):%s", what,
                 round, t, mh_status_name(j->st[t]), ring_outcomes(j));
        if (strstr(j->msg[t], "would deadlock") == NULL)
            FAIL("%s, round %d: thread %d's error does not say why:%s", what,
                 round, t, ring_outcomes(j));
        if (names_ring(j->msg[t]))
            detected++;
    }
    if (ring.closed && detected == 0)
        FAIL("%s, round %d: no error reports the deadlock with the whole "
             "ring:%s", what, round, ring_outcomes(j));
    if (!ring.closed)
        ASSERT_EQ_INT(mh_host_module_count(j->host), ring.n);
    mh_host_free(j->host);
}

/* Play a ring (or chain) of n modules, each a copy of stress_hook in
 * tmp_dir()/DIR; returns that directory. */
static const char *ring_setup(const char *dir, int n, int nthreads,
                              int closed, const char *const *names)
{
    ring.n = n;
    ring.nthreads = nthreads;
    ring.closed = closed;
    for (int i = 0; i < n; i++) {
        ring.names[i] = names[i];
        fixture_copy("stress_hook", "%s/%s.so", dir, names[i]);
    }
    set_hook(ring_hook);
    return tmp_path("%s", dir);
}

#define CYCLE_ROUNDS 1000
/* Under ThreadSanitizer the thousand rounds take 19-27 s of the 45 s
 * watchdog: past CYCLE_MAX_MS the case stops, with at least
 * CYCLE_MIN_ROUNDS played (reported). */
#define CYCLE_MIN_ROUNDS 100
#define CYCLE_MAX_MS 20000

TEST(four_cycle)
{
    /* a -> b -> c -> d -> a, one thread starting on each module. */
    static const char *const names[4] = {"a", "b", "c", "d"};
    static struct ring_job j;
    const char *dir = ring_setup("C", 4, 4, 1, names);
    crew c;

    long long stop_at = clock_ms() + CYCLE_MAX_MS;
    int round = 0;
    crew_start(&c, 4);
    for (; round < CYCLE_ROUNDS &&
           (round < CYCLE_MIN_ROUNDS || clock_ms() < stop_at);
         round++)
        ring_round(&c, &j, dir, 0, "four_cycle", round);
    crew_stop(&c);
    report("four_cycle", round, "rounds");
}

#define RING_ROUNDS 100

static const char *const ring_names[RING_MAX] = {"r0", "r1", "r2", "r3",
                                                 "r4", "r5", "r6", "r7"};

static void ring_case(const char *what, int broken)
{
    static const int sizes[] = {2, 3, 8};
    static struct ring_job j;
    long long rounds = 0;

    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int n = sizes[s];
        const char *dir = ring_setup(str_fmt("R%d", n), n, broken ? n - 1 : n,
                                     !broken, ring_names);
        const char *label = str_fmt("%s, N = %d", what, n);
        crew c;

        crew_start(&c, ring.nthreads);
        for (int round = 0; round < RING_ROUNDS; round++)
            ring_round(&c, &j, dir, 0, label, round);
        crew_stop(&c);
        rounds += RING_ROUNDS;
    }
    report(what, rounds, "rounds");
}

TEST(ring_detects)
{
    /* N modules r0 -> r1 -> ... -> r(N-1) -> r0, thread i on ri: every
     * thread holds one module and waits for the next; the last to ask
     * must see the ring and refuse. */
    ring_case("ring_detects", 0);
}

TEST(ring_broken)
{
    /* N - 1 threads, and r(N-1) imports nothing: thread N-2's init imports
     * r(N-1) itself.  The waits form a chain, not a ring, and all must
     * succeed.  (As in CPython's test_locks, the lock pair that would
     * close the ring is left out; with modules that means the closing
     * import too, else r0 -> ... -> r(N-1) -> r0 is a circular import
     * whatever the threads do.) */
    ring_case("ring_broken", 1);
}

/* ---- an init error reaches every waiter --------------------------------- */

#define FLAKY_THREADS 32
#define FLAKY_ROUNDS 8
#define FLAKY_HOLD_MS 300 /* a worker descheduled longer would init again */

static struct flaky {
    atomic_int announced;       /* workers about to import */
    atomic_int inits;
    atomic_int stuck;
} flaky;

/* The first init of a round waits until every worker is on its way, gives
 * them FLAKY_HOLD_MS to block on the entry, and refuses; later inits
 * succeed. */
static int flaky_hook(const char *name, const char **next, char *why,
                      size_t size)
{
    int attempt = atomic_fetch_add(&flaky.inits, 1) + 1;
    long long give_up = clock_ms() + RENDEZVOUS_MS;

    *next = NULL;
    if (attempt > 1)
        return 0;
    while (atomic_load(&flaky.announced) < FLAKY_THREADS) {
        if (clock_ms() > give_up) {
            atomic_fetch_add(&flaky.stuck, 1);
            break;
        }
        nap_us(100);
    }
    nap_us(FLAKY_HOLD_MS * 1000L);
    snprintf(why, size, "%s refuses, attempt %d", name, attempt);
    return 1;
}

struct flaky_job {
    mh_host *host;
    mh_status st[FLAKY_THREADS];
    mh_module *mod[FLAKY_THREADS];
    char msg[FLAKY_THREADS][1024];
};

static void flaky_worker(void *ud, int t)
{
    struct flaky_job *j = ud;
    mh_error *err = NULL;

    atomic_fetch_add(&flaky.announced, 1);
    j->st[t] = mh_import(j->host, "flaky", &j->mod[t], &err);
    snprintf(j->msg[t], sizeof j->msg[t], "%s", mh_error_message(err));
    mh_error_free(err);
}

TEST(init_error_reaches_every_waiter)
{
    static struct flaky_job j;
    const char *dir;
    crew c;

    fixture_copy("stress_hook", "F/flaky.so");
    dir = tmp_path("F");
    set_hook(flaky_hook);
    crew_start(&c, FLAKY_THREADS);
    for (int round = 0; round < FLAKY_ROUNDS; round++) {
        mh_module *mod, *again;

        memset(&j, 0, sizeof j);
        atomic_store(&flaky.announced, 0);
        atomic_store(&flaky.inits, 0);
        atomic_store(&flaky.stuck, 0);
        j.host = stress_host(dir, 1); /* the index too: the failure is
                                         recorded while others wait */
        crew_round(&c, flaky_worker, &j, "init_error", round);
        ASSERT_EQ_INT(atomic_load(&flaky.stuck), 0);
        if (atomic_load(&flaky.inits) != 1)
            FAIL("round %d: init ran %d times; every thread should have "
                 "waited for the first", round, atomic_load(&flaky.inits));
        for (int t = 0; t < FLAKY_THREADS; t++) {
            if (j.st[t] != MH_EINIT)
                FAIL("round %d, thread %d: %s, expected MH_EINIT: %s", round,
                     t, mh_status_name(j.st[t]), j.msg[t]);
            ASSERT_NULL(j.mod[t]);
            ASSERT_CONTAINS(j.msg[t], "'flaky'");
            ASSERT_CONTAINS(j.msg[t], "flaky refuses, attempt 1");
        }
        ASSERT_NULL(mh_host_module(j.host, "flaky"));
        ASSERT_EQ_INT(mh_host_module_count(j.host), 0);
        /* Nothing stays locked or failed: a later import tries again. */
        mod = import_ok(j.host, "flaky");
        ASSERT_EQ_INT(atomic_load(&flaky.inits), 2);
        again = import_ok(j.host, "flaky");
        ASSERT_EQ_PTR(again, mod);
        ASSERT_EQ_INT(atomic_load(&flaky.inits), 2);
        ASSERT_EQ_INT(mh_host_module_count(j.host), 1);
        mh_host_free(j.host);
    }
    crew_stop(&c);
    report("init_error_reaches_every_waiter",
           (long long)FLAKY_ROUNDS * FLAKY_THREADS, "imports");
}

/* ---- same-thread re-entry while others wait ----------------------------- */

#define SELF_THREADS 16
#define SELF_ROUNDS 50

struct self_job {
    mh_host *host;
    mh_status st[SELF_THREADS];
    mh_module *mod[SELF_THREADS];
    char msg[SELF_THREADS][1024];
};

static void self_worker(void *ud, int t)
{
    struct self_job *j = ud;
    mh_error *err = NULL;

    j->st[t] = mh_import(j->host, "selfie", &j->mod[t], &err);
    snprintf(j->msg[t], sizeof j->msg[t], "%s", mh_error_message(err));
    mh_error_free(err);
}

TEST(self_import_under_contention)
{
    /* test_import.c's self_import_is_circular, with 15 more threads
     * asking for the module while its init imports itself: the owner's
     * re-entry is a circular import (not a deadlock, though others wait),
     * and every thread -- waiter or later retrier -- gets that error. */
    static struct self_job j;
    const char *dir;
    crew c;

    fixture_copy("self_import", "P/selfie.so");
    dir = tmp_path("P");
    crew_start(&c, SELF_THREADS);
    for (int round = 0; round < SELF_ROUNDS; round++) {
        memset(&j, 0, sizeof j);
        j.host = stress_host(dir, 0);
        crew_round(&c, self_worker, &j, "self_import", round);
        for (int t = 0; t < SELF_THREADS; t++) {
            if (j.st[t] != MH_ECYCLE)
                FAIL("round %d, thread %d: %s, expected MH_ECYCLE (also "
                     "through the init that met it): %s", round, t,
                     mh_status_name(j.st[t]), j.msg[t]);
            ASSERT_NULL(j.mod[t]);
            ASSERT_CONTAINS(j.msg[t], "circular import");
            ASSERT_CONTAINS(j.msg[t], "selfie -> selfie");
            ASSERT_NOT_CONTAINS(j.msg[t], "deadlock");
        }
        ASSERT_EQ_INT(mh_host_module_count(j.host), 0);
        mh_host_free(j.host);
    }
    crew_stop(&c);
    report("self_import_under_contention",
           (long long)SELF_ROUNDS * SELF_THREADS, "imports");
}

/* ---- a deadlock is not the module's failure ----------------------------- */

TEST(deadlock_not_recorded)
{
    /* docs/architecture.md: MH_ECYCLE and MH_EDEADLOCK are not recorded
     * in the discovery index, "the import chain, not the module".  A
     * deadlock found inside an init reaches the importer as that init's
     * failure; it still must not mark the modules as broken, since the
     * next run, with other timing, loads them. */
    static const char *const names[4] = {"a", "b", "c", "d"};
    static struct ring_job j;
    const char *dir = ring_setup("D", 4, 4, 1, names);
    disc_fails f;
    mh_host *host;
    crew c;

    crew_start(&c, 4);
    ring_round(&c, &j, dir, 1, "deadlock_not_recorded", 0);
    crew_stop(&c);
    host = stress_host(dir, 1);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_OK);
    if (f.n != 0)
        FAIL("a cross-thread deadlock was recorded as %zu module "
             "failure(s):\n%s", f.n, f.text);
    mh_host_free(host);
    report("deadlock_not_recorded", 1, "rounds");
}
