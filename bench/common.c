/* bench/common.c -- see common.h. */
#include "bench.h"
#include "common.h"
#include "cache/intern.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void bench_config(mh_config *cfg, const char *path, const char *cache_dir,
                  unsigned flags)
{
    mh_config_init(cfg);
    cfg->flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH | flags;
    cfg->path = path;
    cfg->cache_dir = cache_dir;
}

mh_host *bench_host_new(const mh_config *cfg)
{
    mh_host *h = NULL;
    mh_error *err = NULL;
    if (mh_host_new(cfg, &h, &err) != MH_OK)
        bench_die("mh_host_new: %s", mh_error_message(err));
    return h;
}

const char *const *bench_files(void)
{
    static char **files;
    if (!files) {
        const char *const *names;
        size_t n = bench_names(&names);
        files = calloc(n, sizeof *files);
        if (!files)
            bench_die("out of memory");
        for (size_t i = 0; i < n; i++) {
            char *f = bench_fmt("%s/tree/%s.so", bench.fixtures, names[i]);
            char *end = f + strlen(f) - 3; /* the dots of the name only */
            for (char *p = f + strlen(bench.fixtures) + 6; p < end; p++)
                if (*p == '.')
                    *p = '/';
            files[i] = f;
        }
    }
    return (const char *const *)files;
}

double bench_dlopen_all_us(const char *const *files, size_t n)
{
    void **handles = calloc(n, sizeof *handles);
    if (!handles)
        bench_die("out of memory");
    size_t ok = 0;
    uint64_t t = bench_now_ns();
    for (size_t i = 0; i < n; i++)
        ok += (handles[i] = dlopen(files[i], RTLD_NOW | RTLD_LOCAL)) != NULL;
    uint64_t dt = bench_now_ns() - t;
    if (ok != n)
        bench_die("dlopen failed: %s", dlerror());
    for (size_t i = n; i-- > 0;) /* reverse, as a process winds down */
        dlclose(handles[i]);
    free(handles);
    return (double)dt / 1000.0 / (double)n;
}

mh_host *bench_host(const char *path, unsigned flags, mh_alloc_fn alloc,
                    void *alloc_ud)
{
    static unsigned seq;
    mh_config cfg;
    char *cache = bench_fmt("%s/cache%u", bench.work, seq++);
    bench_config(&cfg, path, cache, flags);
    cfg.alloc = alloc;
    cfg.alloc_ud = alloc_ud;
    mh_host *h = bench_host_new(&cfg);
    free(cache);
    return h;
}

void bench_import_all(mh_host *h, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mh_module *m;
        mh_error *err = NULL;
        if (mh_import(h, names[i], &m, &err) != MH_OK)
            bench_die("import %s: %s", names[i], mh_error_message(err));
    }
}

double bench_python(const char *mode, int p, const char *extra)
{
    char *cmd = bench_fmt("/usr/bin/python3 -I '%s/bench/py_import.py' %s "
                          "'%s' %d %s", bench.source, mode, bench.fixtures, p,
                          extra ? extra : "");
    FILE *f = popen(cmd, "r");
    double v = NAN;
    if (f) {
        if (fscanf(f, "%lf", &v) != 1)
            v = NAN;
        if (pclose(f) != 0)
            v = NAN;
    }
    if (isnan(v))
        fprintf(stderr, "bench: failed: %s\n", cmd);
    free(cmd);
    return v;
}

struct bench_strtab {
    size_t mask;
    const char **slots;
};

/* The floor's hash is the library's own (cache/intern.h), so a bare
 * table is not slower for a worse hash. */
uint64_t bench_hash(const void *p, size_t len)
{
    return mh_hash_bytes(p, len);
}

bench_strtab *bench_strtab_new(const char *const *keys, size_t n)
{
    bench_strtab *t = calloc(1, sizeof *t);
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    t->mask = cap - 1;
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots)
        bench_die("out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t j = bench_hash(keys[i], strlen(keys[i])) & t->mask;
        while (t->slots[j])
            j = (j + 1) & t->mask;
        t->slots[j] = keys[i];
    }
    return t;
}

const char *bench_strtab_find(const bench_strtab *t, const char *key)
{
    size_t len = strlen(key);
    for (size_t j = bench_hash(key, len) & t->mask;; j = (j + 1) & t->mask) {
        const char *s = t->slots[j];
        if (!s)
            return NULL;
        if (memcmp(s, key, len + 1) == 0)
            return s;
    }
}

void bench_strtab_free(bench_strtab *t)
{
    free(t->slots);
    free(t);
}

/* Removing a sample's cache right after it would slow the next sample
 * down, not this one: ext4's inode allocator passes over inodes freed in
 * the last seconds (minutes, while their inode table block is dirty), one
 * buffer lookup each, so creating files just after deleting thousands cost
 * several times what it costs on a quiet filesystem -- as no first import
 * into an empty cache ever pays.  A rename frees no inode. */
char *bench_cache_of(mh_host *h)
{
    const char *dir = mh_host_cache_dir(h);
    char *copy = dir ? strdup(dir) : NULL;
    if (dir && !copy)
        bench_die("out of memory");
    return copy;
}

void bench_discard(char *dir)
{
    static unsigned seq;
    if (!dir)
        return;
    char *trash = bench_fmt("%s/trash", bench.work);
    char *to = bench_fmt("%s/%u", trash, seq++);
    if (mkdir(trash, 0700) != 0 && errno != EEXIST)
        bench_die("cannot make %s: %s", trash, strerror(errno));
    if (rename(dir, to) != 0 && errno != ENOENT)
        bench_die("cannot move %s to %s: %s", dir, to, strerror(errno));
    free(trash);
    free(to);
    free(dir);
}

/* Counts what the C library really holds: malloc_usable_size(), not the
 * size asked for, so per-block rounding is in the figure. */
void *bench_count_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    bench_count *c = ud;
    (void)osize;
    long long before = ptr ? (long long)malloc_usable_size(ptr) : 0;
    if (nsize == 0) {
        if (ptr) {
            c->bytes -= before;
            c->blocks--;
        }
        free(ptr);
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) {
        c->bytes += (long long)malloc_usable_size(p) - before;
        if (!ptr)
            c->blocks++;
    }
    return p;
}

static bool write_all(int fd, const void *p, size_t n)
{
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, (const char *)p + done, n - done);
        if (w < 0 && errno != EINTR)
            return false;
        done += w > 0 ? (size_t)w : 0;
    }
    return true;
}

static bool read_all(int fd, void *p, size_t n);

/* fork(), with this process's output flushed first (else the child
 * would write it again); dies if it cannot. */
static pid_t fork_or_die(void)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork failed");
    return pid;
}

bool bench_forked_into(void (*fn)(void *arg, void *out), void *arg,
                       void *out, size_t size)
{
    int fd[2];
    if (pipe(fd) != 0)
        bench_die("pipe failed");
    pid_t pid = fork_or_die();
    if (pid == 0) {
        close(fd[0]);
        fn(arg, out);
        fflush(NULL);
        _exit(write_all(fd[1], out, size) ? 0 : 1);
    }
    close(fd[1]);
    bool got = read_all(fd[0], out, size);
    close(fd[0]);
    int st;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
           WEXITSTATUS(st) == 0 && got;
}

static bool read_all(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* The worker's end of the pipes: commands come on 0, answers go to 3. */
enum { WORKER_IN = 0, WORKER_OUT = 3 };

void bench_worker_start(bench_worker *w)
{
    /* A worker that died (its message said) makes the next write to it
     * fail with EPIPE, and bench_worker_sample say which: not a silent
     * SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* Close-on-exec: a worker inherits no other worker's pipes (dup2
     * clears the flag on the two ends it keeps). */
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0)
        bench_die("pipe failed");
    char *child = bench_child_cmd(w->child);
    char *cmd = bench_fmt("exec %s", child); /* the shell becomes it */
    free(child);
    pid_t pid = fork_or_die();
    if (pid == 0) {
        /* An end already at its place keeps close-on-exec: cleared. */
        if ((to[0] == WORKER_IN ? fcntl(to[0], F_SETFD, 0)
                                : dup2(to[0], WORKER_IN)) < 0 ||
            (from[1] == WORKER_OUT ? fcntl(from[1], F_SETFD, 0)
                                   : dup2(from[1], WORKER_OUT)) < 0)
            _exit(127);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        fprintf(stderr, "bench: cannot run /bin/sh: %s\n", strerror(errno));
        _exit(127);
    }
    free(cmd);
    close(to[0]);
    close(from[1]);
    w->pid = pid;
    w->to = to[1];
    w->from = from[0];
}

_Noreturn void bench_worker_serve(const bench_worker *w)
{
    w->setup(w->state);
    char cmd;
    while (read_all(WORKER_IN, &cmd, 1)) {
        if (cmd == 'r') {
            double v = w->sample(w->state);
            if (!write_all(WORKER_OUT, &v, sizeof v))
                exit(1);
        } else {
            char *out = calloc(1, w->out_size ? w->out_size : 1);
            if (!out)
                exit(1);
            w->finish(w->state, out);
            exit(write_all(WORKER_OUT, out, w->out_size) ? 0 : 1);
        }
    }
    exit(1); /* the parent went away */
}

double bench_worker_sample(void *worker)
{
    bench_worker *w = worker;
    double v;
    if (!write_all(w->to, "r", 1) || !read_all(w->from, &v, sizeof v))
        bench_die("a bench worker (pid %d) failed", w->pid);
    return v;
}

bool bench_worker_end(bench_worker *w, void *out)
{
    bool ok = write_all(w->to, "q", 1) &&
              read_all(w->from, out, w->out_size);
    close(w->to);
    close(w->from);
    int st;
    return waitpid(w->pid, &st, 0) == w->pid && WIFEXITED(st) &&
           WEXITSTATUS(st) == 0 && ok;
}

typedef struct one_call {
    double (*fn)(void *);
    void *arg;
} one_call;

static void one_double(void *arg, void *out)
{
    const one_call *c = arg;
    *(double *)out = c->fn(c->arg);
}

double bench_forked(double (*fn)(void *), void *arg)
{
    one_call c = {fn, arg};
    double v;
    return bench_forked_into(one_double, &c, &v, sizeof v) ? v : NAN;
}

size_t bench_count_files(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += e->d_type == DT_REG;
    if (d)
        closedir(d);
    return n;
}
