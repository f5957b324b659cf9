/*
 * test_intern.c -- the host's string interning: identity, lookup without
 * allocation, counting, address stability across table growth, and
 * concurrent interning from several threads.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The seccomp filter below checks the system call's architecture. */
#if defined(__x86_64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

#include "support/support.h"
#include "test.h"

TEST(equal_strings_same_pointer)
{
    mh_host *host = host_new_isolated(NULL);
    char a[16], b[16];
    const char *ia, *ib;

    strcpy(a, "hello.world");
    strcpy(b, "hello.world");
    ia = mh_intern(host, a);
    ib = mh_intern(host, b);
    ASSERT_NOT_NULL(ia);
    ASSERT_EQ_PTR(ia, ib);
    ASSERT_EQ_STR(ia, "hello.world");
    /* The host keeps its own copy, not the caller's buffer. */
    ASSERT_NE_PTR(ia, a);
    ASSERT_NE_PTR(ia, b);
    strcpy(a, "overwritten");
    ASSERT_EQ_STR(ia, "hello.world");
    mh_host_free(host);
}

TEST(different_strings_different_pointers)
{
    mh_host *host = host_new_isolated(NULL);
    const char *x = mh_intern(host, "alpha");
    const char *y = mh_intern(host, "alphb");
    const char *z = mh_intern(host, "alph");

    ASSERT_NOT_NULL(x);
    ASSERT_NOT_NULL(y);
    ASSERT_NOT_NULL(z);
    ASSERT_NE_PTR(x, y);
    ASSERT_NE_PTR(x, z);
    ASSERT_NE_PTR(y, z);
    ASSERT_EQ_STR(z, "alph");
    mh_host_free(host);
}

TEST(empty_string_interns)
{
    mh_host *host = host_new_isolated(NULL);
    char buf[1] = {'\0'};
    const char *e = mh_intern(host, "");

    ASSERT_NOT_NULL(e);
    ASSERT_EQ_STR(e, "");
    ASSERT_EQ_PTR(mh_intern(host, buf), e);
    ASSERT_EQ_PTR(mh_intern_len(host, "xyz", 0), e);
    mh_host_free(host);
}

TEST(null_argument_returns_null)
{
    mh_host *host = host_new_isolated(NULL);
    size_t before = mh_intern_count(host);

    ASSERT_NULL(mh_intern(host, NULL));
    ASSERT_EQ_INT(mh_intern_count(host), before);
    mh_host_free(host);
}

TEST(intern_len_without_nul)
{
    mh_host *host = host_new_isolated(NULL);
    const char unterminated[3] = {'a', 'b', 'c'};
    const char *abc = mh_intern_len(host, unterminated, 3);
    const char *hello = mh_intern_len(host, "hello world", 5);

    ASSERT_NOT_NULL(abc);
    ASSERT_EQ_STR(abc, "abc");
    ASSERT_EQ_PTR(abc, mh_intern(host, "abc"));
    ASSERT_EQ_STR(hello, "hello");
    ASSERT_EQ_PTR(hello, mh_intern(host, "hello"));
    ASSERT_NE_PTR(hello, mh_intern(host, "hello world"));
    mh_host_free(host);
}

TEST(lookup_never_interned_is_null)
{
    mh_host *host = host_new_isolated(NULL);
    size_t before = mh_intern_count(host);
    const char *p;

    ASSERT_NULL(mh_intern_lookup(host, "never.interned.name"));
    ASSERT_EQ_INT(mh_intern_count(host), before);
    p = mh_intern(host, "never.interned.name");
    ASSERT_NOT_NULL(p);
    ASSERT_EQ_PTR(mh_intern_lookup(host, "never.interned.name"), p);
    ASSERT_EQ_INT(mh_intern_count(host), before + 1);
    mh_host_free(host);
}

TEST(lookup_never_allocates)
{
    alloc_tracker at;
    mh_config cfg;
    mh_host *host;
    size_t calls;

    alloc_tracker_init(&at);
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.alloc = alloc_tracker_fn;
    cfg.alloc_ud = &at;
    host = host_new_cfg(&cfg);
    ASSERT_NOT_NULL(mh_intern(host, "present"));
    calls = at.calls;
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "absent%d", i);
        ASSERT_NULL(mh_intern_lookup(host, name));
        ASSERT_NOT_NULL(mh_intern_lookup(host, "present"));
    }
    ASSERT_EQ_INT(at.calls, calls);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
}

TEST(count_counts_distinct_strings)
{
    mh_host *host = host_new_isolated(NULL);
    size_t base = mh_intern_count(host);

    mh_intern(host, "one");
    mh_intern(host, "two");
    mh_intern(host, "one");
    mh_intern_len(host, "two three", 3);
    ASSERT_EQ_INT(mh_intern_count(host), base + 2);
    mh_intern(host, "three");
    ASSERT_EQ_INT(mh_intern_count(host), base + 3);
    mh_host_free(host);
}

#define GROWTH_N 100000

TEST(growth_keeps_addresses)
{
    mh_host *host = host_new_isolated(NULL);
    size_t base = mh_intern_count(host);
    const char **ptrs = calloc(GROWTH_N, sizeof *ptrs);
    char name[32];

    ASSERT_NOT_NULL(ptrs);
    for (int i = 0; i < GROWTH_N; i++) {
        snprintf(name, sizeof name, "grow.%d", i);
        ptrs[i] = mh_intern(host, name);
        if (ptrs[i] == NULL) {
            free(ptrs);
            FAIL("mh_intern returned NULL at %d", i);
        }
    }
    ASSERT_EQ_INT(mh_intern_count(host), base + GROWTH_N);
    for (int i = 0; i < GROWTH_N; i++) {
        snprintf(name, sizeof name, "grow.%d", i);
        if (strcmp(ptrs[i], name) != 0 || mh_intern(host, name) != ptrs[i] ||
            mh_intern_lookup(host, name) != ptrs[i]) {
            free(ptrs);
            FAIL("string %d moved or changed across growth", i);
        }
    }
    ASSERT_EQ_INT(mh_intern_count(host), base + GROWTH_N);
    free(ptrs);
    mh_host_free(host);
}

/* Eight threads intern overlapping ranges of names: thread t interns
 * c.K for K in [t*SPAN/2, t*SPAN/2 + SPAN), so each name is interned by
 * one or two threads, in different orders (odd threads go backwards). */
#define NTHREADS 8
#define SPAN 8000
#define DISTINCT ((NTHREADS + 1) * SPAN / 2)

struct intern_job {
    mh_host *host;
    pthread_barrier_t *start;
    int t;
    const char **seen; /* [DISTINCT], this thread's pointers */
    int failed;
};

static void *intern_worker(void *arg)
{
    struct intern_job *job = arg;
    int lo = job->t * SPAN / 2;
    char name[32];

    pthread_barrier_wait(job->start);
    for (int j = 0; j < SPAN; j++) {
        int k = (job->t % 2) ? lo + SPAN - 1 - j : lo + j;
        snprintf(name, sizeof name, "c.%d", k);
        job->seen[k] = mh_intern(job->host, name);
        if (job->seen[k] == NULL || strcmp(job->seen[k], name) != 0)
            job->failed = 1;
    }
    return NULL;
}

TEST(concurrent_interning_one_pointer_per_string)
{
    mh_host *host = host_new_isolated(NULL);
    size_t base = mh_intern_count(host);
    pthread_t th[NTHREADS];
    struct intern_job jobs[NTHREADS];
    pthread_barrier_t start;
    const char **canon = calloc(DISTINCT, sizeof *canon);

    ASSERT_NOT_NULL(canon);
    pthread_barrier_init(&start, NULL, NTHREADS);
    for (int t = 0; t < NTHREADS; t++) {
        jobs[t] = (struct intern_job){host, &start, t, NULL, 0};
        jobs[t].seen = calloc(DISTINCT, sizeof *jobs[t].seen);
        ASSERT_NOT_NULL(jobs[t].seen);
        ASSERT_EQ_INT(pthread_create(&th[t], NULL, intern_worker, &jobs[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&start);

    const char *problem = NULL;
    for (int t = 0; t < NTHREADS && !problem; t++) {
        if (jobs[t].failed)
            problem = str_fmt("thread %d got NULL or a wrong string", t);
        for (int k = 0; k < DISTINCT && !problem; k++) {
            const char *p = jobs[t].seen[k];
            if (p == NULL)
                continue;
            if (canon[k] == NULL)
                canon[k] = p;
            else if (canon[k] != p)
                problem = str_fmt("threads got two pointers for c.%d", k);
        }
    }
    for (int k = 0; k < DISTINCT && !problem; k++)
        if (canon[k] == NULL)
            problem = str_fmt("nobody interned c.%d", k);
    for (int t = 0; t < NTHREADS; t++)
        free(jobs[t].seen);
    free(canon);
    if (problem)
        FAIL("%s", problem);
    ASSERT_EQ_INT(mh_intern_count(host), base + DISTINCT);
    mh_host_free(host);
}

/* Readers probing while a writer grows the table many times: every
 * reader always finds its names, at their one address.  A grown-out array
 * freed while a reader still probes it is a use-after-free that ASan (and
 * TSan, with `make tsan`) report. */
#define GROW_NAMES 200000
#define READERS 3

struct reader_job {
    mh_host *host;
    const char *const *names; /* 64 names interned before the start */
    _Atomic int *stop;
    _Atomic int *ready;       /* readers that have made a first pass */
    int failed;
    unsigned long lookups;
};

static void *reader_worker(void *p)
{
    struct reader_job *j = p;
    while (!atomic_load(j->stop)) {
        for (int k = 0; k < 64; k++) {
            char copy[32];
            snprintf(copy, sizeof copy, "%s", j->names[k]);
            if (mh_intern_lookup(j->host, copy) != j->names[k] ||
                mh_intern(j->host, copy) != j->names[k])
                j->failed = 1;
            j->lookups++;
        }
        if (j->lookups == 64)
            atomic_fetch_add(j->ready, 1);
    }
    return NULL;
}

static void readers_during_growth(void)
{
    mh_host *host = host_new_isolated(NULL);
    const char *names[64];
    char buf[32];
    for (int k = 0; k < 64; k++) {
        snprintf(buf, sizeof buf, "early.name%d", k);
        names[k] = mh_intern(host, buf);
        ASSERT_NOT_NULL(names[k]);
    }
    _Atomic int stop = 0, ready = 0;
    pthread_t th[READERS];
    struct reader_job jobs[READERS];
    for (int t = 0; t < READERS; t++) {
        jobs[t] = (struct reader_job){host, names, &stop, &ready, 0, 0};
        ASSERT_EQ_INT(pthread_create(&th[t], NULL, reader_worker, &jobs[t]),
                      0);
    }
    /* Every reader is probing before the table starts growing (valgrind
     * runs one thread at a time, and might not schedule them otherwise). */
    while (atomic_load(&ready) < READERS)
        sched_yield();
    for (int i = 0; i < GROW_NAMES; i++) {
        snprintf(buf, sizeof buf, "grow.n%d", i);
        ASSERT_NOT_NULL(mh_intern(host, buf));
    }
    atomic_store(&stop, 1);
    for (int t = 0; t < READERS; t++) {
        pthread_join(th[t], NULL);
        ASSERT_EQ_INT(jobs[t].failed, 0);
        ASSERT_TRUE(jobs[t].lookups > 0);
    }
    for (int i = 0; i < GROW_NAMES; i += 997) {
        snprintf(buf, sizeof buf, "grow.n%d", i);
        ASSERT_NOT_NULL(mh_intern_lookup(host, buf));
    }
    mh_host_free(host);
}

TEST(readers_during_growth_find_every_name)
{
    readers_during_growth();
}

/* Where membarrier(2) is refused (an old kernel, a container's seccomp
 * profile), no thread gets a hazard record and readers probe under the
 * writers' lock instead (cache/hazard.h).  The same readers and writer,
 * in a child whose seccomp filter answers membarrier with ENOSYS: every
 * name is still found at its one address, and nothing is freed under a
 * reader (ASan).  ThreadSanitizer builds have no such fallback (every
 * reader gets a record there), so the case is skipped in them. */
TEST(readers_without_membarrier_take_the_lock)
{
#if defined(__SANITIZE_THREAD__)
    SKIP("a ThreadSanitizer build gives every reader a hazard record: "
         "there is no lock fallback to test");
#elif !defined(TEST_AUDIT_ARCH)
    SKIP("no seccomp architecture constant for this machine in the test");
#else
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        /* The watchdog's alarm is not inherited: set it again (scaled
         * as the runner's, under valgrind), and die with the case
         * rather than outlive it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        alarm(test_case_timeout_s());
        struct sock_filter f[] = {
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                     offsetof(struct seccomp_data, arch)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TEST_AUDIT_ARCH, 1, 0),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
            BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                     offsetof(struct seccomp_data, nr)),
            BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_membarrier, 0, 1),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
            BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {sizeof f / sizeof *f, f};
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
            fprintf(stderr, "cannot install a seccomp filter: %s\n",
                    strerror(errno));
            _exit(TEST_SKIP_STATUS);
        }
        if (syscall(__NR_membarrier, 0 /* MEMBARRIER_CMD_QUERY */, 0, 0) !=
                -1 ||
            errno != ENOSYS)
            FAIL("membarrier still answers under the filter");
        readers_during_growth();
        exit(0); /* with the leak check */
    }
    int status;
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == TEST_SKIP_STATUS)
        SKIP("this machine refuses seccomp filters");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("the child without membarrier failed (status 0x%x)", status);
#endif
}

/* Grown-out arrays are freed, not kept for the host's lifetime: 100,000
 * names of 20 bytes cost at most 64 bytes each, everything the host's
 * allocator gave the table included (records, live array, arena slack). */
TEST(grown_out_arrays_are_freed)
{
    alloc_tracker at;
    mh_config cfg;
    alloc_tracker_init(&at);
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.alloc = alloc_tracker_fn;
    cfg.alloc_ud = &at;
    mh_host *host = host_new_cfg(&cfg);
    size_t before = at.outstanding;
    char buf[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(buf, sizeof buf, "pkg1.sub2.mod_%06d", i); /* 20 bytes */
        ASSERT_EQ_INT(strlen(buf), 20);
        ASSERT_NOT_NULL(mh_intern(host, buf));
    }
    size_t per_name = (at.outstanding - before) / 100000;
    if (per_name > 64)
        FAIL("%zu bytes per 20-byte name (limit 64)", per_name);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
}
