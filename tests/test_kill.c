/*
 * test_kill.c -- kill tests (issue 7, "Fault injection"): a process that
 * writes one of modhost's caches is SIGKILLed at a random point, hundreds
 * of times, and a fresh host then uses what it left.  It must never trust
 * a file it should not, never crash, and never wrongly fail:
 *
 *   lua_bytecode     the Lua bytecode cache (cache/bytecode.c through
 *                    cache/atomic.c), central and __mhcache__ beside
 *   discovery_index  the discovery index (cache/discovery.c)
 *   pack_existing    mh_pack into an existing module database
 *   pack_new         mh_pack creating a module database
 *   http_blobs       the HTTP finder's module (blob) and index cache
 *
 * Every case has one shape: fork a writer that loops over its cache writes
 * for ever; wait until it runs, sleep a random delay, SIGKILL it, reap it;
 * check the files with fresh hosts; repeat.  Writers are forked by a
 * "zygote", a copy of the case made before its ASan heap grew by megabytes
 * a kill: forking, exiting and reaping the grown case itself took ~15 ms
 * a kill.  The delay is uniform in [0, W], W about one loop of the writer
 * (5 to 100 ms, measured as the case runs), so kills land anywhere in a
 * loop: with fsync near 5 ms on a busy disk one cache write takes longer
 * than 5 ms, and a fixed 0-5 ms window would only ever hit its start.
 *
 * The random choices (delays, what the writers change) come from a seed
 * printed on stderr; MH_KILL_SEED=N repeats them (where the kills land
 * still depends on timing).  MH_KILL_ITERS=N sets the number of kills
 * (default 200), MH_KILL_VERBOSE=1 prints where they landed and what was
 * left behind.  On success the only line on stdout is
 * "cases: kill.NAME N kills".
 *
 * A writer is a forked copy of the case: it must never call FAIL, whose
 * cleanup would remove the case's temp dir under the parent, so it uses
 * raw system calls, reports through shared memory and ends with _exit.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "support/support.h"
#include "test.h"

/* ================================================================ killer */

#define KILL_ITERS 200
#define KILL_MIN_WINDOW_NS 5000000LL     /* 5 ms */
#define KILL_MAX_WINDOW_NS 100000000LL   /* 100 ms */
#define KILL_READY_TIMEOUT_MS 10000
#define KILL_BUDGET_MS 40000             /* the runner's watchdog is 45 s */
#define KILL_SPAWN 1                     /* zygote commands */
#define KILL_REAP 2
#define KILL_PHASES 8

/* Shared between the case and its writers (MAP_SHARED, before fork). */
typedef struct kill_shm {
    atomic_int ready;       /* the writer reached its loop */
    atomic_int phase;       /* what the writer is doing (case-specific) */
    atomic_long loops;      /* loops the writer completed */
    atomic_long loop_ns;    /* how long its last complete loop took */
    atomic_long gen;        /* last generation any writer began */
    atomic_long gen_try;    /* generation being written */
    atomic_long gen_done;   /* last generation completely written */
    atomic_uint param;      /* for this writer (case-specific) */
    char msg[4096];         /* why a writer gave up */
} kill_shm;

typedef void (*kill_writer_fn)(void *ud, kill_shm *shm, uint64_t seed);

typedef struct killer {
    const char *name;
    kill_writer_fn fn;          /* the writer, and what it is given */
    void *ud;
    pid_t zygote;               /* forks the writers */
    int cmd_fd, res_fd;         /* pipes to and from it */
    const char *const *phases;  /* phase names, NULL-terminated */
    uint64_t seed, rng;
    kill_shm *shm;
    long want, kills;
    long long window_ns;        /* delays are drawn from [0, window_ns] */
    long long started_ms;
    int phase;                  /* where the last kill landed */
    long phase_hits[KILL_PHASES];
    long loops;                 /* writer loops completed, all kills */
} killer;

/* The case's own process: the writer helpers also prepare files there,
 * and must then fail the case instead of exiting. */
static pid_t case_pid;
/* Where w_fail reports. */
static kill_shm *w_shm;

/* Fail the case, saying which kill and how to repeat it. */
#define KFAIL(k, fmt, ...)                                                \
    FAIL("kill.%s, kill %ld (seed %" PRIu64 ", killed while '%s'): " fmt, \
         (k)->name, (k)->kills, (k)->seed, (k)->phases[(k)->phase],       \
         ##__VA_ARGS__)

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t *s, uint64_t n)
{
    return n ? rng_next(s) % n : 0;
}

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(long long ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000LL),
                          (long)(ns % 1000000000LL)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        /* the rest */
    }
}

static long env_long(const char *name, long dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 0) : dflt;
}

static int verbose(void)
{
    return env_long("MH_KILL_VERBOSE", 0) != 0;
}

static void killer_init(killer *k, const char *name,
                        const char *const *phases)
{
    memset(k, 0, sizeof *k);
    k->name = name;
    k->phases = phases;
    /* Default: a fixed seed per case (FNV-1a of its name). */
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    const char *s = getenv("MH_KILL_SEED");
    k->seed = s && *s ? strtoull(s, NULL, 0) : h;
    k->rng = k->seed;
    k->want = env_long("MH_KILL_ITERS", KILL_ITERS);
    k->window_ns = KILL_MIN_WINDOW_NS;
    k->started_ms = clock_ms();
    case_pid = getpid();
    k->shm = mmap(NULL, sizeof *k->shm, PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (k->shm == MAP_FAILED)
        FAIL("mmap: %s", strerror(errno));
    w_shm = k->shm; /* the case prepares files with the writer helpers */
    fprintf(stderr, "kill.%s: seed %" PRIu64 " (MH_KILL_SEED=%" PRIu64
            " repeats the random choices)\n", name, k->seed, k->seed);
}

static int killer_more(killer *k)
{
    long budget = KILL_BUDGET_MS * (long)test_timeout_scale();
    if (k->kills >= k->want)
        return 0;
    if (clock_ms() - k->started_ms > budget)
        FAIL("kill.%s: only %ld of %ld kills in %ld s: each one is too slow",
             k->name, k->kills, k->want, budget / 1000);
    return 1;
}

typedef struct kill_cmd {
    int op;                 /* KILL_SPAWN or KILL_REAP */
    pid_t pid;              /* REAP: whom */
    uint64_t seed;          /* SPAWN: the writer's */
} kill_cmd;

typedef struct kill_res {
    pid_t pid;              /* the writer, or -errno */
    int status;             /* REAP: its wait status */
} kill_res;

/* 0 when all of len moved, -1 on EOF or error. */
static int io_full(int fd, void *buf, size_t len, int writing)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The zygote: fork a writer, or reap one, on each command; end at EOF. */
_Noreturn static void zygote_main(killer *k, int cmd_fd, int res_fd)
{
    kill_cmd c;
    pid_t self = getpid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != case_pid)
        _exit(125);
    while (io_full(cmd_fd, &c, sizeof c, 0) == 0) {
        kill_res r = {0, 0};
        if (c.op == KILL_SPAWN) {
            r.pid = fork();
            if (r.pid == 0) {
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 ||
                    getppid() != self)
                    _exit(125);
                close(cmd_fd);
                close(res_fd);
                atomic_store(&k->shm->ready, 1);
                k->fn(k->ud, k->shm, c.seed);
                _exit(124); /* writers loop until killed */
            }
            if (r.pid < 0)
                r.pid = -errno;
        } else {
            r.pid = c.pid;
            while (waitpid(c.pid, &r.status, 0) < 0) {
                if (errno != EINTR) {
                    r.pid = -errno;
                    break;
                }
            }
        }
        if (io_full(res_fd, &r, sizeof r, 1) != 0)
            break;
    }
    _exit(0);
}

/* Start the zygote that forks writers running fn(ud, shm, seed).  It is a
 * snapshot of the case: ud and everything it points to must be ready
 * (what changes per kill goes through shm->param). */
static void killer_start(killer *k, kill_writer_fn fn, void *ud)
{
    int cmd[2], res[2];
    k->fn = fn;
    k->ud = ud;
    if (pipe2(cmd, O_CLOEXEC) != 0 || pipe2(res, O_CLOEXEC) != 0)
        FAIL("pipe2: %s", strerror(errno));
    fflush(NULL);
    k->zygote = fork();
    if (k->zygote < 0)
        FAIL("fork: %s", strerror(errno));
    if (k->zygote == 0) {
        close(cmd[1]);
        close(res[0]);
        zygote_main(k, cmd[0], res[1]);
    }
    close(cmd[0]);
    close(res[1]);
    k->cmd_fd = cmd[1];
    k->res_fd = res[0];
}

static kill_res killer_ask(killer *k, int op, pid_t pid, uint64_t seed)
{
    kill_cmd c = {op, pid, seed};
    kill_res r;
    if (io_full(k->cmd_fd, &c, sizeof c, 1) != 0 ||
        io_full(k->res_fd, &r, sizeof r, 0) != 0)
        FAIL("kill.%s: the zygote is gone", k->name);
    if (r.pid < 0)
        FAIL("kill.%s: the zygote: %s", k->name, strerror(-r.pid));
    return r;
}

/* Have a writer forked with param, kill it at a random point of its loop
 * and reap it.  Fails the case when the writer gave up. */
static void killer_fire(killer *k, unsigned param)
{
    kill_shm *shm = k->shm;
    uint64_t child_seed = rng_next(&k->rng);
    long long delay = (long long)rng_below(&k->rng,
                                           (uint64_t)k->window_ns + 1);

    atomic_store(&shm->ready, 0);
    atomic_store(&shm->phase, 0);
    atomic_store(&shm->loops, 0);
    atomic_store(&shm->loop_ns, 0);
    atomic_store(&shm->param, param);
    shm->msg[0] = '\0';
    fflush(NULL);
    pid_t pid = killer_ask(k, KILL_SPAWN, 0, child_seed).pid;
    long long deadline = clock_ms() + KILL_READY_TIMEOUT_MS;
    while (!atomic_load(&shm->ready) && clock_ms() < deadline)
        sleep_ns(20000);
    sleep_ns(delay);
    k->phase = atomic_load(&shm->phase);
    kill(pid, SIGKILL);
    int status = killer_ask(k, KILL_REAP, pid, 0).status;
    if (!atomic_load(&shm->ready))
        FAIL("kill.%s: the writer did not start (status 0x%x)", k->name,
             status);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        FAIL("kill.%s, kill %ld (seed %" PRIu64 "): the writer ended by "
             "itself (status 0x%x): %s", k->name, k->kills, k->seed, status,
             shm->msg[0] ? shm->msg : "(no message)");
    /* A writer that noticed trouble just before the kill. */
    if (shm->msg[0])
        FAIL("kill.%s, kill %ld (seed %" PRIu64 "): the writer gave up: %s",
             k->name, k->kills, k->seed, shm->msg);
    if (k->phase < 0 || k->phase >= KILL_PHASES)
        k->phase = 0;
    k->phase_hits[k->phase]++;
    k->loops += atomic_load(&shm->loops);
    /* Stretch the window over about one loop of the writer: a loop that
     * completed pulls it towards its length; a kill inside the first loop
     * (whose length is then unknown, and only short loops ever complete)
     * widens it a little. */
    long long loop = atomic_load(&shm->loop_ns), w = k->window_ns;
    w = loop > 0 ? (w * 3 + loop) / 4 : w + w / 16;
    k->window_ns = w < KILL_MIN_WINDOW_NS ? KILL_MIN_WINDOW_NS
                   : w > KILL_MAX_WINDOW_NS ? KILL_MAX_WINDOW_NS : w;
    k->kills++;
}

static void killer_done(killer *k, const char *extra)
{
    int status;
    close(k->cmd_fd); /* the zygote ends */
    close(k->res_fd);
    while (waitpid(k->zygote, &status, 0) < 0 && errno == EINTR) {
        /* again */
    }
    if (verbose()) {
        fprintf(stderr, "kill.%s: %ld kills, %ld writer loops completed, "
                "window %.1f ms; kills by phase:", k->name, k->kills,
                k->loops, (double)k->window_ns / 1e6);
        for (int i = 0; i < KILL_PHASES && k->phases[i]; i++)
            fprintf(stderr, " %s %ld", k->phases[i], k->phase_hits[i]);
        fprintf(stderr, "\n%s%s", extra ? extra : "", extra ? "\n" : "");
    }
    munmap(k->shm, sizeof *k->shm);
    printf("cases: kill.%s %ld kills\n", k->name, k->kills);
    fflush(stdout);
}

/* ------------------------------------------------------ writer helpers */


__attribute__((format(printf, 1, 2))) _Noreturn static void
w_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w_shm->msg, sizeof w_shm->msg, fmt, ap);
    va_end(ap);
    if (getpid() == case_pid)
        FAIL("%s", w_shm->msg);
    _exit(3);
}

static void w_phase(int phase)
{
    atomic_store(&w_shm->phase, phase);
}

/* Write a whole file in place (O_TRUNC), no fsync. */
static void w_write(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const char *p = data;
    if (fd < 0)
        w_fail("writer: open %s: %s", path, strerror(errno));
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            w_fail("writer: write %s: %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    close(fd);
}

/* Whole file into buf (NUL-terminated); its length, or -1. */
static ssize_t w_read(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    if (fd < 0)
        return -1;
    while (got + 1 < size) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

static void w_rename(const char *from, const char *to)
{
    if (rename(from, to) != 0)
        w_fail("writer: rename %s -> %s: %s", from, to, strerror(errno));
}

/* Epoch of the made-up "old" mtimes: far enough in the past that nothing
 * is "changed less than 2 s ago", and one distinct second per generation,
 * so no two generations of a file ever share an mtime. */
static time_t old_epoch;

static void old_epoch_init(void)
{
    old_epoch = time(NULL) - 10000000;
}

/* Give path the made-up old mtime of generation gen. */
static int set_old_mtime(const char *path, long gen)
{
    struct timespec ts[2];
    ts[0].tv_sec = old_epoch + gen;
    ts[0].tv_nsec = (gen * 7919) % 1000000000L;
    ts[1] = ts[0];
    return utimensat(AT_FDCWD, path, ts, 0);
}

static void w_set_old_mtime(const char *path, long gen)
{
    if (set_old_mtime(path, gen) != 0)
        w_fail("writer: utimensat %s: %s", path, strerror(errno));
}

/* A run of 'a'..'z' of length n into buf (size > n). */
static const char *pad_text(char *buf, size_t n, uint64_t *rng)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + rng_below(rng, 26));
    buf[n] = '\0';
    return buf;
}

/* ------------------------------------------------------- case helpers */

/* "NAME SIZE MTIME" of every file under root whose name contains needle,
 * one a line, in a stable order: a fingerprint that shows whether any of
 * them was read into place, rewritten or removed. */
static const char *fp_needle;
static char *fp_text;
static size_t fp_len;

static int fp_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    if (flag != FTW_F || !strstr(path + ftw->base, fp_needle))
        return 0;
    char line[PATH_MAX + 64];
    int n = snprintf(line, sizeof line, "%s %lld %lld.%09ld\n", path,
                     (long long)st->st_size, (long long)st->st_mtim.tv_sec,
                     (long)st->st_mtim.tv_nsec);
    char *p = realloc(fp_text, fp_len + (size_t)n + 1);
    if (!p)
        FAIL("out of memory");
    memcpy(p + fp_len, line, (size_t)n + 1);
    fp_text = p;
    fp_len += (size_t)n;
    return 0;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *files_fingerprint(const char *root, const char *needle)
{
    fp_needle = needle;
    fp_text = NULL;
    fp_len = 0;
    if (file_exists(root) && nftw(root, fp_one, 16, FTW_PHYS) != 0)
        FAIL("nftw(%s): %s", root, strerror(errno));
    if (!fp_text)
        return "";
    /* nftw's order is the directory's: sort the lines. */
    size_t n = str_count(fp_text, "\n");
    char **lines = calloc(n ? n : 1, sizeof *lines);
    char *save = NULL, *tok = strtok_r(fp_text, "\n", &save);
    size_t i = 0;
    for (; tok && i < n; tok = strtok_r(NULL, "\n", &save))
        lines[i++] = tok;
    qsort(lines, i, sizeof *lines, cmp_line);
    const char *out = "";
    for (size_t j = 0; j < i; j++)
        out = str_fmt("%s%s\n", out, lines[j]);
    free(lines);
    free(fp_text);
    fp_text = NULL;
    return out;
}

/* Messages of a log at WARN or ERROR, one a line ("" for none). */
static const char *log_problems(log_capture *lc)
{
    const char *s = "";
    pthread_mutex_lock(&lc->mu);
    for (size_t i = 0; i < lc->n; i++)
        if ((int)lc->levels[i] <= (int)MH_LOG_WARN)
            s = str_fmt("%s\n  [%d] %s", s, (int)lc->levels[i], lc->msgs[i]);
    pthread_mutex_unlock(&lc->mu);
    return s;
}

/* A writer's host: isolated, no default path, one entry, the given cache
 * directory, its log to fn(shm). */
static mh_host *w_host(const char *entry, const char *cache, unsigned flags,
                       mh_log_fn fn)
{
    mh_config cfg;
    mh_host *h = NULL;
    mh_error *e = NULL;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH | flags;
    cfg.path = entry;
    cfg.cache_dir = cache;
    cfg.log = fn;
    cfg.log_ud = w_shm;
    if (mh_host_new(&cfg, &h, &e) != MH_OK)
        w_fail("writer: mh_host_new: %s", mh_error_message(e));
    return h;
}

/* ==================================================== 1. Lua bytecode */

/*
 * Four modules km0..km3 in entry E, each "return { v = function() return
 * G end, ... }" with G its generation (unique over the whole case).  The
 * writer loops: rewrite a random non-empty subset of the sources (written
 * aside, given either their natural mtime -- the cache entry is then
 * "unsure" and checked by hash -- or a made-up old one unique to the
 * generation -- checked by stat alone -- and renamed into E, so a source
 * is always whole), then a new host imports all four (stale entries are
 * compiled and rewritten), checks each v() itself, and is freed.  Each
 * kill uses the central cache (<cache>/lua) or __mhcache__ beside the
 * source, at random; both persist, so a long-stale entry of the other
 * mode keeps being offered.
 *
 * After a kill, a fresh host must return the current generation for
 * every module (never stale bytecode, never a crash, no warning), a
 * second fresh host must take all four from the cache, and the leftover
 * ".tmp-*" files of killed writes must be untouched by both.
 */

#define LBC_MODS 4

enum { LBC_START, LBC_SOURCE, LBC_HOST, LBC_IMPORT, LBC_STORE, LBC_FREE };
static const char *const LBC_PHASES[] = {"starting", "writing sources",
                                         "making the host", "importing",
                                         "storing bytecode",
                                         "freeing the host", NULL};

typedef struct lbc {
    const char *dir;        /* the entry E */
    const char *stage;      /* sources are written here, then renamed */
    const char *cache;      /* the hosts' cache directory */
    unsigned flags;         /* 0 or MH_CONFIG_BYTECODE_BESIDE, per kill
                               (the writer's comes in shm->param) */
} lbc;

/* The source of generation gen of module m, with a pad of padlen. */
static int lbc_source(char *buf, size_t size, int m, long gen,
                      size_t padlen, uint64_t *rng)
{
    char pad[256];
    return snprintf(buf, size, "-- kill test: module km%d, generation %ld\n"
                    "return { v = function() return %ld end, pad = '%s' "
                    "}\n", m, gen, gen,
                    pad_text(pad, padlen % sizeof pad, rng));
}

static long lbc_parse(const char *text)
{
    const char *p = text ? strstr(text, "generation ") : NULL;
    long g = -1;
    return p && sscanf(p, "generation %ld", &g) == 1 ? g : -1;
}

/* Write generation gen of module m: aside, mtime, rename. */
static void lbc_put(const lbc *t, int m, long gen, uint64_t *rng)
{
    char text[512], stage[PATH_MAX], path[PATH_MAX];
    int n = lbc_source(text, sizeof text, m, gen, rng_below(rng, 200), rng);
    snprintf(stage, sizeof stage, "%s/km%d.lua", t->stage, m);
    snprintf(path, sizeof path, "%s/km%d.lua", t->dir, m);
    w_write(stage, text, (size_t)n);
    if (rng_below(rng, 3) != 0)
        w_set_old_mtime(stage, gen);
    w_rename(stage, path);
}

static void lbc_log(void *ud, mh_log_level level, const char *msg)
{
    (void)ud;
    if ((int)level <= (int)MH_LOG_WARN)
        w_fail("writer logged: %s", msg);
    if (strstr(msg, ": compiled "))
        w_phase(LBC_STORE); /* the bytecode is written next */
}

static void lbc_writer(void *ud, kill_shm *shm, uint64_t seed)
{
    lbc *t = ud;
    long cur[LBC_MODS];
    char path[PATH_MAX], text[1024];

    w_shm = shm;
    for (int m = 0; m < LBC_MODS; m++) {
        snprintf(path, sizeof path, "%s/km%d.lua", t->dir, m);
        if (w_read(path, text, sizeof text) < 0 ||
            (cur[m] = lbc_parse(text)) < 0)
            w_fail("writer: cannot read %s", path);
    }
    for (;;) {
        long long t0 = now_ns();
        w_phase(LBC_SOURCE);
        unsigned mask = 1u + (unsigned)rng_below(&seed, (1u << LBC_MODS) - 1);
        for (int m = 0; m < LBC_MODS; m++) {
            if (!(mask & (1u << m)))
                continue;
            cur[m] = atomic_fetch_add(&shm->gen, 1) + 1;
            lbc_put(t, m, cur[m], &seed);
        }
        w_phase(LBC_HOST);
        mh_host *h = w_host(t->dir, t->cache,
                            MH_CONFIG_VERBOSE | atomic_load(&shm->param),
                            lbc_log);
        for (int m = 0; m < LBC_MODS; m++) {
            mh_module *mod;
            mh_error *e = NULL;
            cJSON *res = NULL;
            char name[16];
            snprintf(name, sizeof name, "km%d", m);
            w_phase(LBC_IMPORT);
            if (mh_import(h, name, &mod, &e) != MH_OK)
                w_fail("writer: import %s: %s", name, mh_error_message(e));
            if (mh_module_call(mod, "v", NULL, &res, &e) != MH_OK)
                w_fail("writer: %s.v(): %s", name, mh_error_message(e));
            if (!cJSON_IsNumber(res) || (long)res->valuedouble != cur[m])
                w_fail("writer: %s.v() returned %g, its source is "
                       "generation %ld: stale bytecode", name,
                       cJSON_IsNumber(res) ? res->valuedouble : -1.0, cur[m]);
            cJSON_Delete(res);
        }
        w_phase(LBC_FREE);
        mh_host_free(h);
        atomic_fetch_add(&shm->loops, 1);
        atomic_store(&shm->loop_ns, now_ns() - t0);
    }
}

/* Leftover temporary files of both cache places. */
static const char *lbc_tmps(const lbc *t)
{
    return str_fmt("%s%s", files_fingerprint(t->cache, ".tmp-"),
                   files_fingerprint(str_fmt("%s/__mhcache__", t->dir),
                                     ".tmp-"));
}

typedef struct lbc_stats {
    long hits, compiled;    /* of the first host after each kill */
} lbc_stats;

static void lbc_check(killer *k, const lbc *t, lbc_stats *st)
{
    long cur[LBC_MODS];
    for (int m = 0; m < LBC_MODS; m++) {
        const char *path = str_fmt("%s/km%d.lua", t->dir, m);
        if ((cur[m] = lbc_parse(file_read(path))) < 0)
            KFAIL(k, "%s is not a whole source (sources are renamed into "
                  "place):\n%s", path, file_read(path));
    }
    const char *tmps = lbc_tmps(t);
    for (int pass = 0; pass < 2; pass++) {
        log_capture lc;
        log_capture_init(&lc);
        host_opts o = {.flags = MH_CONFIG_VERBOSE | t->flags,
                       .cache_dir = t->cache, .log = &lc};
        mh_host *h = host_new_opts(&o, t->dir);
        for (int m = 0; m < LBC_MODS; m++) {
            const char *name = str_fmt("km%d", m);
            mh_module *mod;
            mh_status rc = mh_import(h, name, &mod, ERR);
            if (rc != MH_OK)
                KFAIL(k, "host %d: import %s: %s: %s; log:%s", pass + 1,
                      name, mh_status_name(rc), ERR_MSG(),
                      log_capture_dump(&lc));
            const char *v = call_ok(mod, "v", NULL);
            if (strcmp(v, str_fmt("%ld", cur[m])) != 0)
                KFAIL(k, "host %d: %s.v() returned %s but its source is "
                      "generation %ld: stale bytecode was trusted (%s "
                      "cache); log:%s", pass + 1, name, v, cur[m],
                      t->flags ? "beside" : "central",
                      log_capture_dump(&lc));
        }
        const char *problems = log_problems(&lc);
        if (*problems)
            KFAIL(k, "host %d warned:%s", pass + 1, problems);
        if (log_capture_count(&lc, -1, ".tmp-"))
            KFAIL(k, "host %d mentions a temporary file; log:%s", pass + 1,
                  log_capture_dump(&lc));
        size_t hits = log_capture_count(&lc, -1, "bytecode from cache");
        size_t compiled = log_capture_count(&lc, -1, ": compiled ");
        if (hits + compiled != LBC_MODS)
            KFAIL(k, "host %d: %zu modules from the cache and %zu compiled, "
                  "of %d; log:%s", pass + 1, hits, compiled, LBC_MODS,
                  log_capture_dump(&lc));
        if (pass == 0) {
            st->hits += (long)hits;
            st->compiled += (long)compiled;
        } else if (hits != LBC_MODS) {
            KFAIL(k, "the second host compiled %zu modules: the cache the "
                  "first one left is not usable; log:%s", compiled,
                  log_capture_dump(&lc));
        }
        mh_host_free(h);
        log_capture_free(&lc);
    }
    const char *after = lbc_tmps(t);
    if (strcmp(tmps, after) != 0)
        KFAIL(k, "temporary files changed while hosts loaded modules:\n"
              "before:\n%safter:\n%s", tmps, after);
}

TEST(lua_bytecode)
{
    killer k;
    lbc t = {.dir = tmp_mkdir("lbc/E"), .stage = tmp_mkdir("lbc/stage"),
             .cache = tmp_path("lbc/cache")};
    lbc_stats st = {0, 0};
    uint64_t rng = 1;

    killer_init(&k, "lua_bytecode", LBC_PHASES);
    old_epoch_init();
    for (int m = 0; m < LBC_MODS; m++)
        lbc_put(&t, m, atomic_fetch_add(&k.shm->gen, 1) + 1, &rng);
    killer_start(&k, lbc_writer, &t);
    while (killer_more(&k)) {
        t.flags = rng_below(&k.rng, 2) ? MH_CONFIG_BYTECODE_BESIDE : 0;
        killer_fire(&k, t.flags);
        lbc_check(&k, &t, &st);
    }
    size_t left = tree_count(t.cache, ".tmp-", NULL) +
                  tree_count(str_fmt("%s/__mhcache__", t.dir), ".tmp-", NULL);
    killer_done(&k, str_fmt("kill.lua_bytecode: first host after a kill: "
                            "%ld modules from the cache, %ld compiled; %zu "
                            "leftover .tmp-* files (never removed)",
                            st.hits, st.compiled, left));
}

/* ================================================= 2. discovery index */

/*
 * Entry D holds Lua modules dl0..dl4 and native ones dn0 (answer7: no
 * manifest note, so its sidecar describes it) and dn1 (disc_codec: its
 * note wins, the sidecar only joins its identity), each with a sidecar
 * NAME.json that the writer keeps changing.  A loop of the writer: change
 * one to three sidecars -- a new whole manifest renamed into place (most
 * often), one written in place, a torn one (invalid JSON: a recorded
 * failure) or none (removed); all but a few with a made-up old mtime
 * unique to their generation -- now and then damage discovery.db (its
 * header, or cut it in half) so that the index is rebuilt, then
 * mh_discover through a new host, checking the whole sidecars' versions.
 *
 * After a kill, a fresh host's mh_discover must report exactly what a
 * host without an index reads from the files (never a stale manifest)
 * and every whole sidecar's version; a second fresh host must agree and
 * read nothing again, except a file the kill left changed less than 2 s
 * ago ("unsure": read every time by design).
 */

#define DX_LUA 5
#define DX_MODS (DX_LUA + 2)
#define DX_CODEC 6              /* dn1: described by its ELF note */
#define DX_CODEC_VERSION "3.1.4"

enum { DX_START, DX_EDIT, DX_DAMAGE, DX_HOST, DX_DISCOVER, DX_FREE };
static const char *const DX_PHASES[] = {"starting", "changing sidecars",
                                        "damaging the index",
                                        "making the host", "discovering",
                                        "freeing the host", NULL};
static const char *const DX_NAMES[DX_MODS] = {"dl0", "dl1", "dl2", "dl3",
                                              "dl4", "dn0", "dn1"};

typedef struct dxt {
    const char *dir;        /* the entry D */
    const char *stage;      /* whole sidecars are written here first */
    const char *cache;
} dxt;

static const char *dx_file(const dxt *t, int m, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s.%s", t->dir, DX_NAMES[m],
             m < DX_LUA ? "lua" : "so");
    return buf;
}

static const char *dx_sidecar(const dxt *t, int m, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s.json", t->dir, DX_NAMES[m]);
    return buf;
}

/* Generation gen of module m's sidecar; a whole one ends in " end\"}\n". */
static int dx_manifest(char *buf, size_t size, int m, long gen,
                       uint64_t *rng)
{
    char pad[128];
    return snprintf(buf, size, "{\"version\": \"1.%d.%ld\", \"provides\": "
                    "{\"kgrp%ld\": \"v\"}, \"description\": \"%s "
                    "generation %ld %s end\"}\n", m, gen, gen % 3,
                    DX_NAMES[m], gen, pad_text(pad, rng_below(rng, 100), rng));
}

/* The version a whole sidecar text declares, or NULL (torn, absent). */
static const char *dx_whole_version(const char *text, char *buf,
                                    size_t size)
{
    int m;
    long gen;
    size_t n = text ? strlen(text) : 0;
    if (n < 8 || strcmp(text + n - 7, " end\"}\n") != 0 ||
        sscanf(text, "{\"version\": \"1.%d.%ld\"", &m, &gen) != 2)
        return NULL;
    snprintf(buf, size, "1.%d.%ld", m, gen);
    return buf;
}

typedef struct dx_seen {
    char version[DX_MODS][64]; /* "" when none */
    int status[DX_MODS], seen[DX_MODS];
} dx_seen;

static int dx_collect(void *ud, const mh_module_meta *meta)
{
    dx_seen *s = ud;
    for (int m = 0; m < DX_MODS; m++) {
        if (strcmp(meta->name, DX_NAMES[m]) != 0)
            continue;
        const char *v = meta->manifest ? mh_manifest_version(meta->manifest)
                                       : NULL;
        snprintf(s->version[m], sizeof s->version[m], "%s", v ? v : "");
        s->status[m] = meta->status;
        s->seen[m]++;
    }
    return 0;
}

static void dx_log(void *ud, mh_log_level level, const char *msg)
{
    (void)ud;
    if ((int)level <= (int)MH_LOG_WARN)
        w_fail("writer logged: %s", msg);
}

/* Change module m's sidecar to generation gen, one way or another; the
 * version a later discover must report into want (or "" if not known). */
static void dx_edit(const dxt *t, int m, long gen, uint64_t *rng,
                    char *want, size_t size)
{
    char text[512], stage[PATH_MAX], path[PATH_MAX];
    int n = dx_manifest(text, sizeof text, m, gen, rng);
    unsigned how = (unsigned)rng_below(rng, 20);
    dx_sidecar(t, m, path, sizeof path);
    snprintf(stage, sizeof stage, "%s/%s.json", t->stage, DX_NAMES[m]);
    want[0] = '\0';
    if (how < 12) {             /* whole, renamed into place */
        w_write(stage, text, (size_t)n);
        w_set_old_mtime(stage, gen);
        w_rename(stage, path);
        dx_whole_version(text, want, size);
    } else if (how < 15) {      /* whole, rewritten in place */
        w_write(path, text, (size_t)n);
        w_set_old_mtime(path, gen);
        dx_whole_version(text, want, size);
    } else if (how < 16) {      /* whole, in place, mtime now: unsure */
        w_write(path, text, (size_t)n);
        dx_whole_version(text, want, size);
    } else if (how < 18) {      /* torn: a recorded failure */
        w_write(stage, text, (size_t)n / 2);
        w_set_old_mtime(stage, gen);
        w_rename(stage, path);
    } else if (unlink(path) != 0 && errno != ENOENT) {
        w_fail("writer: unlink %s: %s", path, strerror(errno));
    }
    if (m == DX_CODEC) /* its note wins over any sidecar */
        snprintf(want, size, "%s", DX_CODEC_VERSION);
}

/* Damage the index so that the next open rebuilds it. */
static void dx_damage(const dxt *t, uint64_t *rng)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s/discovery.db", t->cache);
    if (stat(path, &st) != 0)
        return;
    if (rng_below(rng, 2)) {
        static const char junk[100] = "not a database, not at all";
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || pwrite(fd, junk, sizeof junk, 0) != sizeof junk)
            w_fail("writer: damaging %s: %s", path, strerror(errno));
        close(fd);
    } else if (truncate(path, st.st_size / 2) != 0) {
        w_fail("writer: truncating %s: %s", path, strerror(errno));
    }
}

static void dx_writer(void *ud, kill_shm *shm, uint64_t seed)
{
    dxt *t = ud;
    char want[DX_MODS][64];

    w_shm = shm;
    memset(want, 0, sizeof want);
    for (;;) {
        long long t0 = now_ns();
        w_phase(DX_EDIT);
        int edits = 1 + (int)rng_below(&seed, 3);
        for (int i = 0; i < edits; i++) {
            int m = (int)rng_below(&seed, DX_MODS);
            long gen = atomic_fetch_add(&shm->gen, 1) + 1;
            dx_edit(t, m, gen, &seed, want[m], sizeof want[m]);
        }
        if (rng_below(&seed, 10) == 0) {
            w_phase(DX_DAMAGE);
            dx_damage(t, &seed);
        }
        w_phase(DX_HOST);
        mh_host *h = w_host(t->dir, t->cache, 0, dx_log);
        dx_seen seen;
        mh_error *e = NULL;
        memset(&seen, 0, sizeof seen);
        w_phase(DX_DISCOVER);
        if (mh_discover(h, dx_collect, &seen, &e) != MH_OK)
            w_fail("writer: mh_discover: %s", mh_error_message(e));
        for (int m = 0; m < DX_MODS; m++) {
            if (seen.seen[m] != 1)
                w_fail("writer: %s reported %d times", DX_NAMES[m],
                       seen.seen[m]);
            if (want[m][0] && (seen.status[m] != MH_OK ||
                               strcmp(seen.version[m], want[m]) != 0))
                w_fail("writer: %s reported as version '%s' (%s), its "
                       "sidecar says '%s': stale metadata", DX_NAMES[m],
                       seen.version[m], mh_status_name(seen.status[m]),
                       want[m]);
        }
        w_phase(DX_FREE);
        mh_host_free(h);
        atomic_fetch_add(&shm->loops, 1);
        atomic_store(&shm->loop_ns, now_ns() - t0);
    }
}

/* Did module m's file or sidecar change less than 3 s ago? */
static int dx_recent(const dxt *t, int m)
{
    char a[PATH_MAX], b[PATH_MAX];
    const char *paths[2] = {dx_file(t, m, a, sizeof a),
                            dx_sidecar(t, m, b, sizeof b)};
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (int i = 0; i < 2; i++) {
        struct stat st;
        if (stat(paths[i], &st) == 0 && st.st_mtim.tv_sec > now.tv_sec - 3)
            return 1;
    }
    return 0;
}

typedef struct dx_stats {
    long reads, failures, rereads_unsure, journals;
} dx_stats;

static disc_run dx_truth, dx_first, dx_second;

static void dx_check(killer *k, const dxt *t, dx_stats *st)
{
    char path[PATH_MAX], vbuf[64];
    log_capture l0, l1, l2;
    log_capture_init(&l0);
    log_capture_init(&l1);
    log_capture_init(&l2);
    const char *db = str_fmt("%s/discovery.db", t->cache);
    const char *journal = str_fmt("%s-journal", db);
    if (file_exists(journal))
        st->journals++; /* a kill inside a transaction */

    /* The first host to see what the writer left. */
    host_opts o1 = {.flags = MH_CONFIG_VERBOSE, .cache_dir = t->cache,
                    .log = &l1};
    mh_host *h1 = host_new_opts(&o1, t->dir);
    disc_discover(h1, &l1, &dx_first);
    mh_host_free(h1);

    /* What the files say, read without any index. */
    host_opts o0 = {.flags = MH_CONFIG_NO_INDEX, .cache_dir = t->cache,
                    .log = &l0};
    mh_host *h0 = host_new_opts(&o0, t->dir);
    disc_discover(h0, NULL, &dx_truth);
    mh_host_free(h0);

    if (dx_truth.status != MH_OK || dx_truth.n != DX_MODS)
        KFAIL(k, "discovery without an index: %s, %zu modules:\n%s",
              mh_status_name(dx_truth.status), dx_truth.n, dx_truth.text);
    if (dx_first.status != MH_OK)
        KFAIL(k, "mh_discover failed: %s: %s; log:\n%s",
              mh_status_name(dx_first.status), dx_first.error, dx_first.log);
    if (strcmp(dx_first.text, dx_truth.text) != 0)
        KFAIL(k, "the index made discovery report what the files do not "
              "say (a stale or damaged row trusted).\nreported:\n%s"
              "the files say:\n%slog:\n%s", dx_first.text, dx_truth.text,
              dx_first.log);
    for (int m = 0; m < DX_MODS; m++) {
        const char *want = m == DX_CODEC
            ? DX_CODEC_VERSION
            : dx_whole_version(file_read(dx_sidecar(t, m, path, sizeof path)),
                               vbuf, sizeof vbuf);
        const disc_mod *d = disc_get(&dx_first, DX_NAMES[m]);
        if (want && (d->status != MH_OK || !d->version ||
                     strcmp(d->version, want) != 0))
            KFAIL(k, "%s reported as version %s (%s), its manifest says "
                  "%s:\n%s", DX_NAMES[m], d->version ? d->version : "none",
                  mh_status_name(d->status), want, dx_first.text);
        st->failures += d->status != MH_OK;
    }
    st->reads += (long)dx_first.reads;

    /* The index it left must serve a second host whole. */
    host_opts o2 = {.flags = MH_CONFIG_VERBOSE, .cache_dir = t->cache,
                    .log = &l2};
    mh_host *h2 = host_new_opts(&o2, t->dir);
    disc_discover(h2, &l2, &dx_second);
    mh_host_free(h2);
    if (dx_second.status != MH_OK ||
        strcmp(dx_second.text, dx_truth.text) != 0)
        KFAIL(k, "a second discovery differs (%s).\nreported:\n%s"
              "the files say:\n%slog:\n%s", mh_status_name(dx_second.status),
              dx_second.text, dx_truth.text, dx_second.log);
    for (int m = 0; m < DX_MODS; m++) {
        const char *names = str_fmt(" %s ", dx_second.read_names);
        if (!strstr(names, str_fmt(" %s ", DX_NAMES[m])))
            continue;
        if (!dx_recent(t, m))
            KFAIL(k, "the second discovery read %s again, though the first "
                  "one indexed it and it is unchanged (read: %s); log:\n%s",
                  DX_NAMES[m], dx_second.read_names, dx_second.log);
        st->rereads_unsure++;
    }
    if (dx_second.sum_read != (long)dx_second.reads)
        KFAIL(k, "the summary says %ld read, the traces %zu; log:\n%s",
              dx_second.sum_read, dx_second.reads, dx_second.log);
    if (k->kills % 25 == 0) {
        const char *ic = db_exec(db, "PRAGMA integrity_check;");
        if (strcmp(ic, "ok") != 0)
            KFAIL(k, "integrity_check of %s: %s", db, ic);
    }
    log_capture_free(&l0);
    log_capture_free(&l1);
    log_capture_free(&l2);
}

TEST(discovery_index)
{
    killer k;
    dxt t = {.dir = tmp_mkdir("dx/D"), .stage = tmp_mkdir("dx/stage"),
             .cache = tmp_path("dx/cache")};
    dx_stats st = {0, 0, 0, 0};
    char path[PATH_MAX];
    uint64_t rng = 2;

    killer_init(&k, "discovery_index", DX_PHASES);
    old_epoch_init();
    for (int m = 0; m < DX_LUA; m++)
        file_write(dx_file(&t, m, path, sizeof path),
                   "return { v = function() return 1 end }\n");
    fixture_copy("answer7", "dx/D/dn0.so");
    fixture_copy("disc_codec", "dx/D/dn1.so");
    for (int m = 0; m < DX_MODS; m++) {
        if (set_old_mtime(dx_file(&t, m, path, sizeof path), 0) != 0)
            FAIL("utimensat %s: %s", path, strerror(errno));
        long gen = atomic_fetch_add(&k.shm->gen, 1) + 1;
        char text[512];
        int n = dx_manifest(text, sizeof text, m, gen, &rng);
        w_write(dx_sidecar(&t, m, path, sizeof path), text, (size_t)n);
        w_set_old_mtime(path, gen);
    }
    killer_start(&k, dx_writer, &t);
    while (killer_more(&k)) {
        killer_fire(&k, 0);
        dx_check(&k, &t, &st);
    }
    size_t left = tree_count(t.cache, ".tmp-", NULL);
    killer_done(&k, str_fmt("kill.discovery_index: %ld kills inside a "
                            "transaction (journal left); first discovery "
                            "after a kill read %ld modules, %ld reported "
                            "failures; %ld re-reads of unsure files; %zu "
                            "leftover discovery.db.tmp-* files (never "
                            "removed)", st.journals, st.reads, st.failures,
                            st.rereads_unsure, left));
}

/* ==================================================== 3. module databases */

/*
 * The writer stages generation G of five modules -- pk0..pk3.lua, whose
 * gen() returns G (with pads of random length, so rows move between
 * pages), and nat.so, answer7 (value() 7) for even G and kill_nine (9)
 * for odd -- and packs the stage directory with mh_pack, in a loop:
 *
 *   pack_existing  into one database, made before the first kill: after a
 *                  kill, a fresh host (read-only, as every application)
 *                  imports all five from it, and they are one generation,
 *                  the last committed or the one being written; the
 *                  database passes integrity_check.
 *   pack_new       removing the database first, so every pack creates
 *                  it: after a kill the database is absent, or complete
 *                  (as above); never a partial file at its path.
 *
 * The writer records the generation it is packing (gen_try) and the last
 * one mh_pack returned for (gen_done) in shared memory.
 */

#define PK_LUA 4

enum { PK_START, PK_STAGE, PK_UNLINK, PK_PACK, PK_DONE };
static const char *const PK_PHASES[] = {"starting", "staging files",
                                        "removing the database", "packing",
                                        "after the pack", NULL};

typedef struct pkt {
    const char *db;
    const char *stage;          /* the directory packed */
    const char *cache;          /* of the checking hosts */
    unsigned char *nat[2];      /* answer7, kill_nine */
    size_t nat_len[2];
    int fresh;                  /* pack_new: remove the database first */
    mh_host *live;              /* pack_existing: a host that runs through
                                   every kill, its connection open */
    log_capture live_log;
} pkt;

/* Write generation gen into the stage directory. */
static void pk_stage(const pkt *t, long gen, uint64_t *rng)
{
    char path[PATH_MAX], text[2400], pad[2048];
    for (int m = 0; m < PK_LUA; m++) {
        int n = snprintf(text, sizeof text, "-- pack generation %ld\n"
                         "return { gen = function() return %ld end, "
                         "pad = '%s' }\n", gen, gen,
                         pad_text(pad, rng_below(rng, sizeof pad), rng));
        snprintf(path, sizeof path, "%s/pk%d.lua", t->stage, m);
        w_write(path, text, (size_t)n);
    }
    snprintf(path, sizeof path, "%s/nat.so", t->stage);
    w_write(path, t->nat[gen % 2], t->nat_len[gen % 2]);
}

static void pk_writer(void *ud, kill_shm *shm, uint64_t seed)
{
    pkt *t = ud;
    const char *in[1] = {t->stage};

    w_shm = shm;
    for (;;) {
        long long t0 = now_ns();
        long gen = atomic_fetch_add(&shm->gen, 1) + 1;
        w_phase(PK_STAGE);
        pk_stage(t, gen, &seed);
        if (t->fresh) {
            w_phase(PK_UNLINK);
            if (unlink(t->db) != 0 && errno != ENOENT)
                w_fail("writer: unlink %s: %s", t->db, strerror(errno));
        }
        atomic_store(&shm->gen_try, gen);
        w_phase(PK_PACK);
        size_t count = 0;
        mh_error *e = NULL;
        if (mh_pack(t->db, in, 1, &count, &e) != MH_OK)
            w_fail("writer: mh_pack %s: %s", t->db, mh_error_message(e));
        if (count != PK_LUA + 1)
            w_fail("writer: mh_pack wrote %zu files", count);
        atomic_store(&shm->gen_done, gen);
        w_phase(PK_DONE);
        atomic_fetch_add(&shm->loops, 1);
        atomic_store(&shm->loop_ns, now_ns() - t0);
    }
}

/* Import all five modules from the database through a fresh host: their
 * common generation, or -1 with *why when an import failed. */
static long pk_read(killer *k, const pkt *t, const char **why)
{
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.cache_dir = t->cache, .log = &lc};
    mh_host *h = host_new_opts(&o, t->db);
    long gen = -1;
    *why = NULL;
    for (int m = 0; m <= PK_LUA && !*why; m++) {
        const char *name = m < PK_LUA ? str_fmt("pk%d", m) : "nat";
        mh_module *mod;
        mh_status rc = mh_import(h, name, &mod, ERR);
        if (rc != MH_OK) {
            *why = str_fmt("import %s: %s: %s; log:%s", name,
                           mh_status_name(rc), ERR_MSG(),
                           log_capture_dump(&lc));
            break;
        }
        if (m < PK_LUA) {
            long g = atol(call_ok(mod, "gen", NULL));
            if (m > 0 && g != gen)
                KFAIL(k, "pk%d is generation %ld, pk0 %ld: the database "
                      "mixes two packs", m, g, gen);
            gen = g;
        } else if (call_int(mod, "value") != (gen % 2 ? 9 : 7)) {
            KFAIL(k, "nat's value() is %d, the Lua modules are generation "
                  "%ld: the database mixes two packs",
                  call_int(mod, "value"), gen);
        }
    }
    mh_host_free(h);
    log_capture_free(&lc);
    return *why ? -1 : gen;
}

typedef struct pk_stats {
    long absent, old_gen, new_gen, journals;
    long refused, live_refused;     /* by a new host, by the running one */
    long stuck;                     /* a host that met the journal, still
                                       refused after the rollback */
    const char *first_refusal, *first_live;
} pk_stats;

/* mh_find of pk0 through host h: NULL, or why it failed. */
static const char *pk_find(mh_host *h)
{
    mh_spec_info info = {.size = sizeof info};
    mh_status rc = mh_find(h, "pk0", &info, ERR);
    return rc == MH_OK ? NULL
                       : str_fmt("%s: %s", mh_status_name(rc), ERR_MSG());
}

static void pk_check(killer *k, const pkt *t, pk_stats *st)
{
    long g_try = atomic_load(&k->shm->gen_try);
    long g_done = atomic_load(&k->shm->gen_done);
    const char *journal = str_fmt("%s-journal", t->db);
    const char *why = NULL;

    if (!file_exists(t->db)) {
        if (!t->fresh)
            KFAIL(k, "%s is gone", t->db);
        st->absent++;
        return;
    }
    int has_journal = file_exists(journal);
    st->journals += has_journal;
    /* First as applications read it: read-only, before any writer; an
     * application that was running all along, then one that starts now. */
    const char *live_why = t->live ? pk_find(t->live) : NULL;
    if (live_why) {
        if (!has_journal)
            KFAIL(k, "a running host cannot find pk0 in %s: %s", t->db,
                  live_why);
        if (!st->live_refused++)
            st->first_live = live_why;
    }
    long gen = pk_read(k, t, &why);
    mh_host *met = NULL; /* a host that met the journal, kept */
    log_capture met_log;
    if (gen < 0) {
        if (!has_journal || t->fresh)
            KFAIL(k, "the database left at %s cannot be used: %s", t->db,
                  why);
        if (!st->refused++)
            st->first_refusal = why;
        log_capture_init(&met_log);
        host_opts o = {.cache_dir = t->cache, .log = &met_log};
        met = host_new_opts(&o, t->db);
        pk_find(met);
    }
    /* The stock CLI opens it read-write, which rolls a journal back. */
    const char *ic = db_exec(t->db, "PRAGMA integrity_check; "
                             "SELECT count(*) FROM sqlar;");
    if (strcmp(ic, str_fmt("ok\n%d", PK_LUA + 1)) != 0)
        KFAIL(k, "%s: integrity_check and row count (%d expected): %s",
              t->db, PK_LUA + 1, ic);
    if (gen < 0 && (gen = pk_read(k, t, &why)) < 0)
        KFAIL(k, "the database cannot be used even after a read-write "
              "connection rolled its journal back: %s", why);
    if (live_why && (live_why = pk_find(t->live)) != NULL)
        KFAIL(k, "the running host still cannot find pk0 after a read-write "
              "connection rolled the journal back: %s", live_why);
    if (met) {
        st->stuck += pk_find(met) != NULL;
        mh_host_free(met);
        log_capture_free(&met_log);
    }
    if (gen != g_done && gen != g_try)
        KFAIL(k, "the database holds generation %ld, neither the last "
              "committed (%ld) nor the one being written (%ld)", gen, g_done,
              g_try);
    if (gen == g_try && g_try != g_done)
        st->new_gen++;
    else
        st->old_gen++;
    /* A writer killed between the commit and its note of it. */
    atomic_store(&k->shm->gen_done, gen);
}

static void pk_setup(pkt *t, const char *dir, int fresh)
{
    memset(t, 0, sizeof *t);
    t->db = tmp_path("%s/mods.db", dir);
    t->stage = tmp_mkdir("%s/stage", dir);
    t->cache = tmp_path("%s/cache", dir);
    t->fresh = fresh;
    t->nat[0] = file_bytes(fixture_path("answer7"), &t->nat_len[0]);
    t->nat[1] = file_bytes(fixture_path("kill_nine"), &t->nat_len[1]);
}

static void pk_run(const char *name, int fresh)
{
    killer k;
    pkt t;
    pk_stats st;
    uint64_t rng = 3;
    const char *dir = str_fmt("pk_%s", name);

    memset(&st, 0, sizeof st);
    killer_init(&k, name, PK_PHASES);
    pk_setup(&t, dir, fresh);
    if (!fresh) { /* generation 1, committed */
        long gen = atomic_fetch_add(&k.shm->gen, 1) + 1;
        pk_stage(&t, gen, &rng);
        db_pack(t.db, t.stage);
        atomic_store(&k.shm->gen_try, gen);
        atomic_store(&k.shm->gen_done, gen);
    }
    killer_start(&k, pk_writer, &t);
    if (!fresh) { /* after the zygote: writers need not inherit it */
        log_capture_init(&t.live_log);
        host_opts o = {.cache_dir = t.cache, .log = &t.live_log};
        t.live = host_new_opts(&o, t.db);
        const char *why = pk_find(t.live);
        if (why)
            FAIL("mh_find pk0 in %s: %s", t.db, why);
    }
    while (killer_more(&k)) {
        killer_fire(&k, 0);
        pk_check(&k, &t, &st);
    }
    size_t left = tree_count(str_fmt("%s/%s", tmp_dir(), dir), ".tmp-",
                             NULL);
    const char *summary = str_fmt(
        "kill.%s: after the kill the database was absent %ld times, the "
        "old generation %ld, the new one %ld; %ld kills left a journal, "
        "%ld times a new host could not read the database (and %ld times "
        "the running host) before a writer rolled it back; %zu leftover "
        "temporary files (never removed)", name, st.absent, st.old_gen,
        st.new_gen, st.journals, st.refused, st.live_refused, left);
    free(t.nat[0]);
    free(t.nat[1]);
    if (t.live) {
        mh_host_free(t.live);
        log_capture_free(&t.live_log);
    }
    if (st.refused || st.live_refused)
        FAIL("kill.%s (seed %" PRIu64 "): in %ld of %ld kills that left a "
             "journal (-journal of an interrupted mh_pack transaction), the "
             "read-only connection of the sqlite finder could not use the "
             "database (a new host %ld times, a running one %ld times), so "
             "imports failed until a read-write connection rolled the "
             "journal back; a host that met the journal kept the entry "
             "skipped after the rollback %ld of %ld times.  The first "
             "time, a new host: %s\nthe running host: %s\n%s", name, k.seed,
             st.refused > st.live_refused ? st.refused : st.live_refused,
             st.journals, st.refused, st.live_refused, st.stuck, st.refused,
             st.first_refusal ? st.first_refusal : "-",
             st.first_live ? st.first_live : "-", summary);
    killer_done(&k, summary);
}

TEST(pack_existing)
{
    pk_run("pack_existing", 0);
}

TEST(pack_new)
{
    pk_run("pack_new", 1);
}

/* ================================================ 4. HTTP module cache */

/*
 * A loopback server (tests/http/server.py) serves hl0.lua and hl1.lua,
 * whose v() returns a pad of a few KiB, a7.so (answer7) and n9.so
 * (kill_nine), at /switch/, whose behaviour the case can flip; its index
 * is fresh for an hour, so hosts ask for it only when it is not cached.
 * The writer loops: remove one cached module (cache/blobs/<sha256>) or
 * scribble on one, and now and then the cached index; then mh_fetch
 * everything through a new host, which downloads what is missing or
 * damaged and writes it into the cache again.
 *
 * After a kill, with the server answering 500 (down), a fresh host
 * imports every module whose blob is in the cache: each must load with
 * the right bytes or fail cleanly (never damaged bytes, never a crash);
 * with the server back, a fresh host must import every module,
 * downloading again what the cache lacks.  (Modules whose blob is absent
 * are not tried offline: each would only cost a refused request, and
 * this server answers a request in ~40 ms -- Nagle's algorithm against
 * delayed ACKs.)
 */

#define HB_LUA 2
#define HB_MODS (HB_LUA + 2)

enum { HB_START, HB_EDIT, HB_HOST, HB_FETCH, HB_FREE };
static const char *const HB_PHASES[] = {"starting", "damaging the cache",
                                        "making the host", "fetching",
                                        "freeing the host", NULL};
static const char *const HB_NAMES[HB_MODS] = {"hl0", "hl1", "a7", "n9"};

typedef struct hbt {
    const char *entry;      /* http://127.0.0.1:PORT/switch/ */
    const char *cache;
    const char *want[HB_MODS]; /* v() as JSON, or value() as text */
    const char *blob[HB_MODS]; /* cache/blobs/<sha256 of the module> */
    http_server *srv;
} hbt;

static void hb_log(void *ud, mh_log_level level, const char *msg)
{
    (void)ud;
    if ((int)level <= (int)MH_LOG_WARN &&
        !strstr(msg, "is damaged; downloading it again"))
        w_fail("writer logged: %s", msg);
}

/* Up to max names of dir's entries not starting with '.'; their count. */
static int hb_list(const char *dir, char names[][128], int max)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (!d)
        return 0;
    while (n < max && (de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            snprintf(names[n++], 128, "%.127s", de->d_name);
    closedir(d);
    return n;
}

static void hb_damage(const hbt *t, uint64_t *rng)
{
    char dir[PATH_MAX], path[PATH_MAX + 160], names[16][128];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/blobs", t->cache);
    int n = hb_list(dir, names, 16);
    if (n) {
        snprintf(path, sizeof path, "%s/%s", dir,
                 names[rng_below(rng, (uint64_t)n)]);
        if (rng_below(rng, 4) || stat(path, &st) != 0 || st.st_size < 2) {
            if (unlink(path) != 0 && errno != ENOENT)
                w_fail("writer: unlink %s: %s", path, strerror(errno));
        } else {
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            off_t at = (off_t)rng_below(rng, (uint64_t)st.st_size - 1);
            if (fd < 0 || pwrite(fd, "\x7f\x01", 2, at) != 2)
                w_fail("writer: scribbling on %s: %s", path,
                       strerror(errno));
            close(fd);
        }
    }
    if (rng_below(rng, 6) == 0) { /* the cached index */
        snprintf(dir, sizeof dir, "%s/http", t->cache);
        if (hb_list(dir, names, 1) == 1) {
            snprintf(path, sizeof path, "%s/%s/index.json", dir, names[0]);
            unlink(path);
        }
    }
}

static void hb_writer(void *ud, kill_shm *shm, uint64_t seed)
{
    hbt *t = ud;

    w_shm = shm;
    for (;;) {
        long long t0 = now_ns();
        w_phase(HB_EDIT);
        hb_damage(t, &seed);
        w_phase(HB_HOST);
        mh_host *h = w_host(t->entry, t->cache, 0, hb_log);
        size_t fetched = 0;
        mh_error *e = NULL;
        w_phase(HB_FETCH);
        if (mh_fetch(h, NULL, 0, NULL, NULL, &fetched, &e) != MH_OK)
            w_fail("writer: mh_fetch: %s", mh_error_message(e));
        if (fetched != HB_MODS)
            w_fail("writer: mh_fetch: %zu modules cached", fetched);
        w_phase(HB_FREE);
        mh_host_free(h);
        atomic_fetch_add(&shm->loops, 1);
        atomic_store(&shm->loop_ns, now_ns() - t0);
    }
}

/* What module m gives: v() as JSON for Lua, value() for native. */
static const char *hb_result(mh_module *mod, int m)
{
    return m < HB_LUA ? call_ok(mod, "v", NULL)
                      : str_fmt("%d", call_int(mod, "value"));
}

typedef struct hb_stats {
    long offline_ok, offline_no_index, offline_damaged;
} hb_stats;

/* SHA-256 of the file at path in hex (sha256sum), or "" if unreadable. */
static const char *hb_sha256(const char *path)
{
    int status = 0;
    const char *out = sh_run(str_fmt("sha256sum %s 2>/dev/null",
                                     sh_quote(path)), &status);
    return status == 0 && strlen(out) >= 64 ? str_fmt("%.64s", out) : "";
}

/* Does the blob at path hold the bytes its name is the hash of? */
static int hb_blob_whole(const char *path)
{
    const char *slash = strrchr(path, '/');
    return strcmp(hb_sha256(path), slash + 1) == 0;
}

/* Is an index of the entry in the cache (cache/http/KEY/index.json)? */
static int hb_index_cached(const hbt *t)
{
    char names[1][128];
    const char *dir = str_fmt("%s/http", t->cache);
    return hb_list(dir, names, 1) == 1 &&
           file_exists(str_fmt("%s/%s/index.json", dir, names[0]));
}

static void hb_check(killer *k, const hbt *t, hb_stats *st)
{
    for (int online = 0; online < 2; online++) {
        log_capture lc;
        log_capture_init(&lc);
        http_set_mode(t->srv, online ? "ok" : "500");
        mh_config cfg = http_cfg(t->entry, &lc);
        cfg.cache_dir = t->cache;
        mh_host *h = host_new_cfg(&cfg);
        for (int m = 0; m < HB_MODS; m++) {
            if (!online && !file_exists(t->blob[m]))
                continue;
            mh_module *mod = NULL;
            mh_status rc = mh_import(h, HB_NAMES[m], &mod, ERR);
            if (rc != MH_OK) {
                if (online)
                    KFAIL(k, "with the server up, import %s: %s: %s; log:%s",
                          HB_NAMES[m], mh_status_name(rc), ERR_MSG(),
                          log_capture_dump(&lc));
                if (mod || mh_host_module(h, HB_NAMES[m]))
                    KFAIL(k, "a failed import of %s left it registered",
                          HB_NAMES[m]);
                /* Only a damaged blob or a lost index excuse it. */
                if (!hb_index_cached(t)) {
                    st->offline_no_index++;
                } else if (!hb_blob_whole(t->blob[m])) {
                    st->offline_damaged++;
                } else {
                    KFAIL(k, "with the server down, import %s failed though "
                          "its cached copy is whole and the index is cached: "
                          "%s: %s; log:%s", HB_NAMES[m], mh_status_name(rc),
                          ERR_MSG(), log_capture_dump(&lc));
                }
                continue;
            }
            const char *got = hb_result(mod, m);
            if (strcmp(got, t->want[m]) != 0)
                KFAIL(k, "%s (server %s) gives %.80s..., expected "
                      "%.80s...: damaged bytes were loaded; log:%s",
                      HB_NAMES[m], online ? "up" : "down", got, t->want[m],
                      log_capture_dump(&lc));
            st->offline_ok += !online;
        }
        mh_host_free(h);
        log_capture_free(&lc);
    }
}

/* cache/blobs/ + the SHA-256 of the file at path, in hex. */
static const char *hb_blob_path(const hbt *t, const char *path)
{
    const char *sha = hb_sha256(path);
    if (!*sha)
        FAIL("sha256sum %s failed", path);
    return str_fmt("%s/blobs/%s", t->cache, sha);
}

TEST(http_blobs)
{
    killer k;
    hbt t;
    hb_stats st = {0, 0, 0};
    uint64_t rng = 4;
    char pad[8192];

    killer_init(&k, "http_blobs", HB_PHASES);
    http_no_proxy_env();
    t.cache = tmp_path("hb/cache");
    const char *www = tmp_mkdir("hb/www");
    for (int m = 0; m < HB_LUA; m++) {
        const char *path = str_fmt("%s/%s.lua", www, HB_NAMES[m]);
        pad_text(pad, 2048 + (size_t)rng_below(&rng, 4096), &rng);
        file_write(path, str_fmt("local pad = '%s'\nreturn { v = function() "
                                 "return pad end }\n", pad));
        t.want[m] = str_fmt("\"%s\"", pad);
        t.blob[m] = hb_blob_path(&t, path);
    }
    t.blob[HB_LUA] = hb_blob_path(&t, fixture_copy("answer7", "hb/www/a7.so"));
    t.blob[HB_LUA + 1] =
        hb_blob_path(&t, fixture_copy("kill_nine", "hb/www/n9.so"));
    t.want[HB_LUA] = "7";
    t.want[HB_LUA + 1] = "9";
    http_index_dir(www, NULL);
    t.srv = http_start(www, "--max-age 3600");
    t.entry = http_url(t.srv, "switch/");
    http_set_mode(t.srv, "ok");
    killer_start(&k, hb_writer, &t);
    while (killer_more(&k)) {
        killer_fire(&k, 0);
        hb_check(&k, &t, &st);
    }
    http_stop(t.srv);
    /* The online check left every module cached, under its own hash. */
    for (int m = 0; m < HB_MODS; m++)
        if (!file_exists(t.blob[m]))
            FAIL("%s is not cached as %s", HB_NAMES[m], t.blob[m]);
    size_t left = tree_count(t.cache, ".tmp-", NULL);
    killer_done(&k, str_fmt("kill.http_blobs: offline after a kill, %ld "
                            "imports from the cache worked, %ld failed "
                            "cleanly without a cached index and %ld with a "
                            "damaged blob; %zu leftover .tmp-* files (never "
                            "removed)", st.offline_ok, st.offline_no_index,
                            st.offline_damaged, left));
}
