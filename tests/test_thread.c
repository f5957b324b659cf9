/*
 * test_thread.c -- concurrent imports on one host.  Threads start together
 * at a barrier; the counter fixture's init sleeps ~50 ms so that they
 * really overlap.  init must run once, everybody must get the same
 * module, failures must reach every importer, and a cross-thread cycle
 * must fail instead of hanging.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

#define MAX_THREADS 16

struct job {
    mh_host *host;
    pthread_barrier_t *start;
    const char *names[8]; /* imported in this order */
    int nnames;
    mh_status st[8];
    mh_module *mod[8];
    char *msg[8];
};

static void *import_worker(void *arg)
{
    struct job *job = arg;

    pthread_barrier_wait(job->start);
    for (int i = 0; i < job->nnames; i++) {
        mh_error *err = NULL;
        job->st[i] = mh_import(job->host, job->names[i], &job->mod[i], &err);
        job->msg[i] = strdup(mh_error_message(err));
        mh_error_free(err);
    }
    return NULL;
}

/* Run n jobs at once; fail the case if they are not all done in time. */
static void run_jobs(struct job *jobs, int n)
{
    pthread_t th[MAX_THREADS];
    pthread_barrier_t start;
    struct timespec deadline;

    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int t = 0; t < n; t++) {
        jobs[t].start = &start;
        ASSERT_EQ_INT(pthread_create(&th[t], NULL, import_worker, &jobs[t]), 0);
    }
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 20;
    for (int t = 0; t < n; t++) {
        int rc = pthread_timedjoin_np(th[t], NULL, &deadline);
        if (rc == ETIMEDOUT)
            FAIL("thread %d still importing after 20 s: deadlock", t);
        ASSERT_EQ_INT(rc, 0);
    }
    pthread_barrier_destroy(&start);
}

static void free_jobs(struct job *jobs, int n)
{
    for (int t = 0; t < n; t++)
        for (int i = 0; i < jobs[t].nnames; i++)
            free(jobs[t].msg[i]);
}

static void same_module_once(int n)
{
    struct job jobs[MAX_THREADS];
    mh_host *host;

    fixture_copy("counter", "E/counter.so");
    host = host_new_isolated(tmp_path("E"));
    memset(jobs, 0, sizeof jobs);
    for (int t = 0; t < n; t++) {
        jobs[t].host = host;
        jobs[t].names[0] = "counter";
        jobs[t].nnames = 1;
    }
    run_jobs(jobs, n);
    for (int t = 0; t < n; t++) {
        if (jobs[t].st[0] != MH_OK)
            FAIL("thread %d: %s: %s", t, mh_status_name(jobs[t].st[0]),
                 jobs[t].msg[0]);
        ASSERT_NOT_NULL(jobs[t].mod[0]);
        ASSERT_EQ_PTR(jobs[t].mod[0], jobs[0].mod[0]);
    }
    ASSERT_EQ_INT(call_int(jobs[0].mod[0], "init_count"), 1);
    ASSERT_EQ_INT(mh_host_module_count(host), 1);
    free_jobs(jobs, n);
    mh_host_free(host);
}

TEST(two_threads_one_init)
{
    same_module_once(2);
}

TEST(sixteen_threads_one_init)
{
    same_module_once(16);
}

static void many_modules_round(int round)
{
    static const char *const names[8] = {"m0", "m1", "m2", "m3",
                                         "m4", "m5", "m6", "m7"};
    struct job jobs[8];
    mh_host *host;

    for (int i = 0; i < 8; i++)
        fixture_copy("counter", "E%d/%s.so", round, names[i]);
    host = host_new_isolated(tmp_path("E%d", round));
    memset(jobs, 0, sizeof jobs);
    for (int t = 0; t < 8; t++) {
        jobs[t].host = host;
        jobs[t].nnames = 8;
        for (int i = 0; i < 8; i++)
            jobs[t].names[i] = names[(t + i) % 8];
    }
    run_jobs(jobs, 8);
    for (int i = 0; i < 8; i++) {
        mh_module *mod = mh_host_module(host, names[i]);
        ASSERT_NOT_NULL(mod);
        ASSERT_EQ_INT(call_int(mod, "init_count"), 1);
        for (int t = 0; t < 8; t++) {
            int k = (i - t + 8) % 8; /* where thread t imported names[i] */
            if (jobs[t].st[k] != MH_OK)
                FAIL("round %d, thread %d, %s: %s: %s", round, t, names[i],
                     mh_status_name(jobs[t].st[k]), jobs[t].msg[k]);
            ASSERT_EQ_PTR(jobs[t].mod[k], mod);
        }
    }
    ASSERT_EQ_INT(mh_host_module_count(host), 8);
    free_jobs(jobs, 8);
    mh_host_free(host);
}

TEST(threads_import_many_modules_in_different_orders)
{
    /* Several rounds, each with a fresh host and directory: the races
     * this looks for (a shared directory listing read while another
     * thread refreshes it) need a little luck to show. */
    for (int round = 0; round < 4; round++)
        many_modules_round(round);
}

TEST(concurrent_refused_init_fails_everywhere)
{
    struct job jobs[8];
    mh_host *host;

    fixture_copy("init_fails", "E/refuser.so");
    host = host_new_isolated(tmp_path("E"));
    memset(jobs, 0, sizeof jobs);
    for (int t = 0; t < 8; t++) {
        jobs[t].host = host;
        jobs[t].names[0] = "refuser";
        jobs[t].nnames = 1;
    }
    run_jobs(jobs, 8);
    for (int t = 0; t < 8; t++) {
        if (jobs[t].st[0] != MH_EINIT)
            FAIL("thread %d: got %s, expected MH_EINIT: %s", t,
                 mh_status_name(jobs[t].st[0]), jobs[t].msg[0]);
        ASSERT_NULL(jobs[t].mod[0]);
        ASSERT_CONTAINS(jobs[t].msg[0], "refuser");
    }
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    free_jobs(jobs, 8);
    mh_host_free(host);
}

TEST(nested_and_direct_imports_race)
{
    struct job jobs[8];
    mh_host *host;
    mh_module *dep;

    fixture_copy("importer", "E/top.so");
    fixture_copy("counter", "E/dep.so");
    env_set("MH_FIXTURE_IMPORT", "dep");
    host = host_new_isolated(tmp_path("E"));
    memset(jobs, 0, sizeof jobs);
    for (int t = 0; t < 8; t++) {
        jobs[t].host = host;
        jobs[t].names[0] = t % 2 ? "dep" : "top";
        jobs[t].nnames = 1;
    }
    run_jobs(jobs, 8);
    for (int t = 0; t < 8; t++)
        if (jobs[t].st[0] != MH_OK)
            FAIL("thread %d (%s): %s: %s", t, jobs[t].names[0],
                 mh_status_name(jobs[t].st[0]), jobs[t].msg[0]);
    dep = mh_host_module(host, "dep");
    ASSERT_NOT_NULL(dep);
    ASSERT_EQ_INT(call_int(dep, "init_count"), 1);
    ASSERT_EQ_INT(call_int(mh_host_module(host, "top"), "dep_value"), 42);
    ASSERT_EQ_INT(mh_host_module_count(host), 2);
    free_jobs(jobs, 8);
    mh_host_free(host);
}

TEST(cross_thread_cycle_fails_without_hanging)
{
    /* ping's init imports pong, pong's init imports ping; one thread
     * starts each.  Waiting would deadlock: both imports must fail, and
     * the reason must say so. */
    struct job jobs[2];
    mh_host *host;
    int said_deadlock = 0;

    fixture_copy("importer", "E/ping.so");
    fixture_copy("importer", "E/pong.so");
    env_set("MH_FIXTURE_IMPORT_ping", "pong");
    env_set("MH_FIXTURE_IMPORT_pong", "ping");
    /* Each init sleeps before its import, so that the other thread has
     * claimed its module by then (a thread later than that would make it
     * a one-thread cycle, MH_ECYCLE). */
    env_set("MH_FIXTURE_SLEEP_MS", "300");
    host = host_new_isolated(tmp_path("E"));
    memset(jobs, 0, sizeof jobs);
    for (int t = 0; t < 2; t++) {
        jobs[t].host = host;
        jobs[t].names[0] = t ? "pong" : "ping";
        jobs[t].nnames = 1;
    }
    run_jobs(jobs, 2);
    for (int t = 0; t < 2; t++) {
        if (jobs[t].st[0] == MH_OK)
            FAIL("thread %d imported %s despite the cycle", t, jobs[t].names[0]);
        if (jobs[t].st[0] == MH_EDEADLOCK || strcasestr(jobs[t].msg[0], "deadlock"))
            said_deadlock = 1;
    }
    if (!said_deadlock)
        FAIL("no error mentions the deadlock: [%s] \"%s\" / [%s] \"%s\"",
             mh_status_name(jobs[0].st[0]), jobs[0].msg[0],
             mh_status_name(jobs[1].st[0]), jobs[1].msg[0]);
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    free_jobs(jobs, 2);
    mh_host_free(host);
}

/* Churn: make and remove directories in the entries in front -- one
 * named like the package among them -- until told to stop, so that
 * listings change while the imports walk past them. */
struct churn {
    _Atomic int stop;
    const char *dirs[8];
};

static void *churn_worker(void *arg)
{
    struct churn *c = arg;
    while (!atomic_load(&c->stop))
        for (int i = 0; i < 8; i++)
            if (mkdir(c->dirs[i], 0755) == 0)
                rmdir(c->dirs[i]);
    return NULL;
}

TEST(threads_import_one_package_while_entries_in_front_change)
{
    /* Four entries without the package in front of T: the walks skip
     * them once they are known to lack it, and learn again after every
     * change another thread makes there (a directory named like the
     * package comes and goes).  Every import must find T's
     * module, every miss must list all five entries, and ThreadSanitizer
     * (make tsan) must see no race in what the walks remember. */
    static const char *const names[8] = {"pkg.m0", "pkg.m1", "pkg.m2",
                                         "pkg.m3", "pkg.m4", "pkg.none1",
                                         "pkg.m5", "pkg.none2"};
    for (int e = 0; e < 4; e++)
        tmp_mkdir("E%d/other%d", e, e);
    for (int i = 0; i < 6; i++)
        fixture_copy("counter", "T/pkg/m%d.so", i);
    mh_host *host = host_new_isolated(tmp_path("E0"), tmp_path("E1"),
                                      tmp_path("E2"), tmp_path("E3"),
                                      tmp_path("T"));
    struct job jobs[4];
    memset(jobs, 0, sizeof jobs);
    for (int t = 0; t < 4; t++) {
        jobs[t].host = host;
        jobs[t].nnames = 8;
        for (int i = 0; i < 8; i++)
            jobs[t].names[i] = names[(t * 3 + i) % 8];
    }
    struct churn churn = {0};
    for (int e = 0; e < 4; e++) {
        churn.dirs[2 * e] = tmp_path("E%d/churn", e);
        churn.dirs[2 * e + 1] = tmp_path("E%d/pkg", e);
    }
    pthread_t ct;
    ASSERT_EQ_INT(pthread_create(&ct, NULL, churn_worker, &churn), 0);
    run_jobs(jobs, 4);
    atomic_store(&churn.stop, 1);
    ASSERT_EQ_INT(pthread_join(ct, NULL), 0);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 8; i++) {
            const char *name = jobs[t].names[i];
            bool none = strstr(name, "none") != NULL;
            if (jobs[t].st[i] != (none ? MH_ENOTFOUND : MH_OK))
                FAIL("thread %d, %s: %s: %s", t, name,
                     mh_status_name(jobs[t].st[i]), jobs[t].msg[i]);
            if (none) {
                ASSERT_CONTAINS(jobs[t].msg[i], "searched 5 path entries");
                for (int e = 0; e < 4; e++) /* pkg/ may be there */
                    ASSERT_CONTAINS(jobs[t].msg[i],
                                    str_fmt("\n  %s: no ",
                                            tmp_path("E%d", e)));
                ASSERT_CONTAINS(jobs[t].msg[i],
                                str_fmt("\n  %s: no pkg/", tmp_path("T")));
            } else {
                ASSERT_EQ_STR(mh_module_origin(jobs[t].mod[i]),
                              tmp_path("T/pkg/%s.so", name + 4));
            }
        }
    /* what the walks learned under the churn is not trusted after it:
     * the package made in an entry in front is found there */
    fixture_copy("answer7", "E3/pkg/late.so");
    mh_module *late = import_ok(host, "pkg.late");
    ASSERT_EQ_STR(mh_module_origin(late), tmp_path("E3/pkg/late.so"));
    free_jobs(jobs, 4);
    mh_host_free(host);
}

/* ------------------------------------------------------------- fork() */

struct slow_import {
    mh_host *host;
    mh_status rc;
};

static void *import_slow_init(void *arg)
{
    struct slow_import *s = arg;
    mh_module *m;
    s->rc = mh_import(s->host, "slow_init", &m, NULL);
    return NULL;
}

TEST(child_of_fork_is_told_an_import_in_flight_cannot_finish)
{
    /* A thread is in slow_init's init when the process forks.  In the
     * child that thread does not exist, and importing slow_init waited
     * for it for ever (from a sweep of the import protocol under
     * threads).  It fails at once now, saying why; other modules import
     * in the child as usual, and in the parent the import ends well. */
    const char *dir = tmp_mkdir("E");
    fixture_copy("slow_init", "E/slow_init.so");
    fixture_copy("counter", "E/counter.so");
    const char *marker = tmp_path("init-started");
    env_set("MH_SLOW_INIT_MARKER", marker);
    mh_host *host = host_new_isolated(dir);
    struct slow_import s = {host, MH_OK};
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, import_slow_init, &s), 0);
    wait_for_file(marker, "slow_init's init", 20);
    /* In the child: slow_init fails at once, saying why; counter
     * imports. */
    child_imports c = {host, "slow_init", MH_EDEADLOCK,
                       "another thread was importing it when the process "
                       "forked", "counter"};
    in_child_of_fork(child_imports_fn, &c, "2: not the error expected, 3: "
                                           "counter did not import");
    pthread_join(t, NULL);
    ASSERT_STATUS(s.rc, MH_OK);
    mh_host_free(host);
}
