/*
 * runner.c -- main() for every test program: the case registry, failure
 * reporting, the ERR slot and per-case cleanup.
 *
 * One case per process: CTest runs `test_AREA CASE`, so a case that
 * crashes, hangs or leaks takes nothing else down.  Without an argument
 * every case runs, one after the other.  Either way the case runs in a
 * forked child while the parent owns its temp directory, so the directory
 * is removed even when the case dies of a signal or a sanitizer abort.  A
 * watchdog (SIGALRM) turns a hang into a failure that says so, well before
 * CTest's own timeout.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

#define MAX_CASES 256
#define CASE_TIMEOUT_S 45

static struct {
    const char *name;
    test_fn fn;
} cases[MAX_CASES];
static size_t ncases;

static const char *current_case = "?";
static mh_error *err_slot;

void test_register(const char *name, test_fn fn)
{
    if (ncases == MAX_CASES) {
        fprintf(stderr, "test.h: more than %d cases\n", MAX_CASES);
        abort();
    }
    cases[ncases].name = name;
    cases[ncases].fn = fn;
    ncases++;
}

mh_error **test_err_slot(void)
{
    mh_error_free(err_slot);
    err_slot = NULL;
    return &err_slot;
}

mh_error *test_err_last(void)
{
    return err_slot;
}

/* Say why the case ends (file:line: WORD case: message) and end it with
 * status.  _exit: the case is abandoned mid-way, so skip atexit handlers
 * and the leak checker, whose report would only bury the real failure. */
static _Noreturn void end_case(const char *file, int line, const char *word,
                               int status, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s:%d: %s %s: ", file, line, word, current_case);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(NULL);
    support_cleanup();
    _exit(status);
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    end_case(file, line, "FAIL in", 1, fmt, ap);
}

void test_skip(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    end_case(file, line, "SKIP", TEST_SKIP_STATUS, fmt, ap);
}

static void on_alarm(int sig)
{
    static const char msg[] = "FAIL: case timed out (hang or deadlock)\n";
    (void)sig;
    if (write(2, msg, sizeof msg - 1) < 0) {
        /* nothing more to do */
    }
    _exit(1);
}

/* Under valgrind everything is 20-50 times slower: the caller scales the
 * watchdog (MH_TEST_TIMEOUT_SCALE). */
unsigned test_timeout_scale(void)
{
    const char *scale = getenv("MH_TEST_TIMEOUT_SCALE");
    unsigned long s = scale ? strtoul(scale, NULL, 10) : 1;
    return s >= 1 && s <= 100 ? (unsigned)s : 1;
}

unsigned test_case_timeout_s(void)
{
    return CASE_TIMEOUT_S * test_timeout_scale();
}

static int run_case(size_t i)
{
    current_case = cases[i].name;
    signal(SIGALRM, on_alarm);
    alarm(test_case_timeout_s());
    cases[i].fn();
    alarm(0);
    mh_error_free(err_slot);
    err_slot = NULL;
    support_cleanup();
    return 0;
}

/* Run case i in a child; 0 when it passed. */
static int run_forked(size_t i)
{
    int status = 0;
    pid_t pid;

    tmp_dir(); /* created here, so this process can remove it */
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0)
        exit(run_case(i));
    while (waitpid(pid, &status, 0) < 0) {
        /* retry on EINTR */
    }
    support_cleanup();
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "FAIL: case %s died of signal %d\n", cases[i].name,
                WTERMSIG(status));
        return 1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int run_all(void)
{
    size_t failed = 0;

    for (size_t i = 0; i < ncases; i++) {
        int rc = run_forked(i);
        if (rc == 0) {
            printf("ok   %s\n", cases[i].name);
        } else if (rc == TEST_SKIP_STATUS) {
            printf("skip %s\n", cases[i].name);
        } else {
            printf("FAIL %s\n", cases[i].name);
            failed++;
        }
        fflush(stdout);
    }
    printf("%zu of %zu cases failed\n", failed, ncases);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return run_all();
    for (size_t i = 0; i < ncases; i++)
        if (strcmp(cases[i].name, argv[1]) == 0)
            return run_forked(i);
    fprintf(stderr, "%s: no case named '%s'\n", argv[0], argv[1]);
    return 2;
}
