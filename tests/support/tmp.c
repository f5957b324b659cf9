/*
 * tmp.c -- per-case strings, temp directory, fixture copies and file
 * helpers; support_cleanup() undoes all of it when the case ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

void env_restore_all(void); /* env.c */

/* Strings handed out to the case, freed together at the end. */
static char **arena;
static size_t arena_n, arena_cap;
static pthread_mutex_t arena_mu = PTHREAD_MUTEX_INITIALIZER;

static char *case_dir;

static const char *arena_keep(char *s)
{
    pthread_mutex_lock(&arena_mu);
    if (arena_n == arena_cap) {
        size_t cap = arena_cap ? arena_cap * 2 : 64;
        char **p = realloc(arena, cap * sizeof *p);
        if (p == NULL) {
            pthread_mutex_unlock(&arena_mu);
            FAIL("out of memory in test support");
        }
        arena = p;
        arena_cap = cap;
    }
    arena[arena_n++] = s;
    pthread_mutex_unlock(&arena_mu);
    return s;
}

static const char *vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        FAIL("out of memory in test support");
    return arena_keep(s);
}

const char *str_fmt(const char *fmt, ...)
{
    va_list ap;
    const char *s;
    va_start(ap, fmt);
    s = vfmt(fmt, ap);
    va_end(ap);
    return s;
}

size_t str_count(const char *hay, const char *needle)
{
    size_t n = 0, len;
    if (hay == NULL || needle == NULL || (len = strlen(needle)) == 0)
        return 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

const char *tmp_dir(void)
{
    char templ[PATH_MAX], real[PATH_MAX];
    const char *base = getenv("TMPDIR");

    if (case_dir)
        return case_dir;
    if (base == NULL || *base == '\0')
        base = "/tmp";
    snprintf(templ, sizeof templ, "%s/modhost-test.XXXXXX", base);
    if (mkdtemp(templ) == NULL)
        FAIL("mkdtemp(%s): %s", templ, strerror(errno));
    /* Canonical, so it compares equal to what the library reports even
     * when TMPDIR goes through a symlink. */
    if (realpath(templ, real) == NULL)
        FAIL("realpath(%s): %s", templ, strerror(errno));
    case_dir = strdup(real);
    if (case_dir == NULL)
        FAIL("out of memory in test support");
    return case_dir;
}

const char *tmp_path(const char *fmt, ...)
{
    va_list ap;
    const char *rel;
    va_start(ap, fmt);
    rel = vfmt(fmt, ap);
    va_end(ap);
    return str_fmt("%s/%s", tmp_dir(), rel);
}

void mkdir_p(const char *path)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len >= sizeof buf)
        FAIL("path too long: %s", path);
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            FAIL("mkdir(%s): %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        FAIL("mkdir(%s): %s", buf, strerror(errno));
}

const char *tmp_mkdir(const char *fmt, ...)
{
    va_list ap;
    const char *rel, *path;
    va_start(ap, fmt);
    rel = vfmt(fmt, ap);
    va_end(ap);
    path = str_fmt("%s/%s", tmp_dir(), rel);
    mkdir_p(path);
    return path;
}

const char *fixture_path(const char *name)
{
    const char *dir = getenv("MH_TEST_FIXTURE_DIR");
    if (dir == NULL || *dir == '\0')
        dir = MH_TEST_FIXTURE_DIR;
    return str_fmt("%s/%s.so", dir, name);
}

static void parent_mkdir(const char *path)
{
    char buf[PATH_MAX];
    char *slash;
    snprintf(buf, sizeof buf, "%s", path);
    slash = strrchr(buf, '/');
    if (slash && slash != buf) {
        *slash = '\0';
        mkdir_p(buf);
    }
}

const char *fixture_copy(const char *name, const char *fmt, ...)
{
    va_list ap;
    const char *rel, *src, *dst;
    char buf[65536];
    ssize_t n;
    int in, out;

    va_start(ap, fmt);
    rel = vfmt(fmt, ap);
    va_end(ap);
    src = fixture_path(name);
    dst = str_fmt("%s/%s", tmp_dir(), rel);
    parent_mkdir(dst);
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        FAIL("open fixture %s: %s", src, strerror(errno));
    out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    if (out < 0)
        FAIL("create %s: %s", dst, strerror(errno));
    while ((n = read(in, buf, sizeof buf)) > 0) {
        if (write(out, buf, (size_t)n) != n)
            FAIL("write %s: %s", dst, strerror(errno));
    }
    if (n < 0)
        FAIL("read %s: %s", src, strerror(errno));
    close(in);
    if (close(out) < 0)
        FAIL("close %s: %s", dst, strerror(errno));
    return dst;
}

void file_write(const char *path, const char *content)
{
    FILE *f;
    parent_mkdir(path);
    f = fopen(path, "w");
    if (f == NULL)
        FAIL("fopen(%s): %s", path, strerror(errno));
    fputs(content, f);
    if (fclose(f) != 0)
        FAIL("fclose(%s): %s", path, strerror(errno));
}

const char *file_read(const char *path)
{
    FILE *f = fopen(path, "r");
    char *s = NULL;
    size_t len = 0;
    size_t n;
    char buf[4096];

    if (f == NULL) {
        if (errno == ENOENT)
            return NULL;
        FAIL("fopen(%s): %s", path, strerror(errno));
    }
    s = calloc(1, 1);
    while (s && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        char *p = realloc(s, len + n + 1);
        if (p == NULL) {
            free(s);
            s = NULL;
            break;
        }
        s = p;
        memcpy(s + len, buf, n);
        len += n;
        s[len] = '\0';
    }
    fclose(f);
    if (s == NULL)
        FAIL("out of memory reading %s", path);
    return arena_keep(s);
}

int file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void wait_for_file(const char *path, const char *what, double seconds)
{
    double t0 = mono_s();
    while (!file_exists(path)) {
        struct timespec ts = {0, 1000 * 1000};
        if (mono_s() - t0 > seconds)
            FAIL("%s never happened (no %s after %.0f s)", what, path,
                 seconds);
        nanosleep(&ts, NULL);
    }
}

void in_child_of_fork(int (*fn)(void *ud), void *ud, const char *codes)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        alarm(10); /* a hang is a failure, not a stuck case */
        _exit(fn(ud));
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            FAIL("waitpid: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL("the child of fork() %s %d (%s)",
             WIFEXITED(status) ? "exited with status"
                               : "was killed by signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
             codes);
}

int child_imports_fn(void *ud)
{
    const child_imports *c = ud;
    mh_module *m = NULL;
    mh_error *e = NULL;
    mh_status rc = mh_import(c->host, c->bad, &m, &e);
    const char *msg = mh_error_message(e);
    int bad = rc != c->status || !msg || !strstr(msg, c->says);
    if (bad)
        fprintf(stderr, "child: import %s: %s: %s\n", c->bad,
                mh_status_name(rc), msg ? msg : "");
    mh_error_free(e);
    if (bad)
        return 2;
    return mh_import(c->host, c->good, &m, NULL) == MH_OK ? 0 : 3;
}

void file_set_mtime(const char *path, long long sec)
{
    struct timespec ts[2];
    ts[0].tv_sec = (time_t)sec;
    ts[0].tv_nsec = 0;
    ts[1] = ts[0];
    if (utimensat(AT_FDCWD, path, ts, 0) < 0)
        FAIL("utimensat(%s): %s", path, strerror(errno));
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

void support_cleanup(void)
{
    const char *keep = getenv("MH_TEST_KEEP");

    env_restore_all();
    if (case_dir) {
        if (keep && *keep && strcmp(keep, "0") != 0)
            fprintf(stderr, "kept temp dir %s\n", case_dir);
        else
            nftw(case_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(case_dir);
        case_dir = NULL;
    }
    pthread_mutex_lock(&arena_mu);
    for (size_t i = 0; i < arena_n; i++)
        free(arena[i]);
    free(arena);
    arena = NULL;
    arena_n = arena_cap = 0;
    pthread_mutex_unlock(&arena_mu);
}
