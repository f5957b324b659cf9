/*
 * tests/fuzz/fuzz_common.c -- hosts, files and checks shared by the fuzz
 * targets (see fuzz.h).
 */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void fz_fail(const char *file, int line, const char *cond, const char *fmt,
             ...)
{
    va_list ap;
    fprintf(stderr, "%s:%d: fuzz check failed: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

int fz_known(const char *id)
{
    const char *list = getenv("MH_FUZZ_KNOWN");
    size_t n = strlen(id);
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, ", ");
        if (len == n && strncmp(p, id, n) == 0)
            return 1;
        p += len;
        p += strspn(p, ", ");
    }
    return 0;
}

/* ---- the checking allocator ------------------------------------------ */

/* Each block carries its size in a header, so a free or resize with the
 * wrong osize is caught where it happens, not as heap damage later.  The
 * mutex: a host may allocate from several threads. */
#define HDR alignof(max_align_t)
#define MAGIC 0x6d68667au /* "mhfz" */

typedef struct {
    size_t size;
    unsigned magic;
} block_hdr;

_Static_assert(sizeof(block_hdr) <= HDR, "header fits in its slot");

static pthread_mutex_t alloc_mu = PTHREAD_MUTEX_INITIALIZER;

void *fz_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize)
{
    fz_alloc *a = ud;
    block_hdr *h = NULL;
    pthread_mutex_lock(&alloc_mu);
    if (ptr) {
        h = (block_hdr *)((char *)ptr - HDR);
        FZ_CHECK(h->magic == MAGIC, "allocator hook: %p was not allocated "
                 "by this hook (or was freed)", ptr);
        FZ_CHECK(h->size == osize, "allocator hook: block %p of %zu bytes "
                 "released or resized with osize %zu", ptr, h->size, osize);
    }
    void *res = NULL;
    if (nsize == 0) {
        if (h) {
            a->outstanding -= h->size;
            a->blocks--;
            h->magic = 0;
            free(h);
        }
    } else if (nsize <= SIZE_MAX - HDR) {
        block_hdr *nh = realloc(h, HDR + nsize);
        if (nh) {
            if (h)
                a->outstanding -= osize;
            else
                a->blocks++;
            nh->size = nsize;
            nh->magic = MAGIC;
            a->outstanding += nsize;
            res = (char *)nh + HDR;
        }
    }
    pthread_mutex_unlock(&alloc_mu);
    return res;
}

/* ---- files ------------------------------------------------------------ */

static char tmp_root[PATH_MAX];

static int rm_one(const char *path, const struct stat *st, int type,
                  struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static pid_t tmp_owner;

static void tmp_cleanup(void)
{
    /* Only the process that made it (a forked child must not). */
    if (tmp_root[0] && getpid() == tmp_owner && !getenv("MH_FUZZ_KEEP"))
        rm_tree(tmp_root);
}

const char *fz_tmpdir(void)
{
    if (tmp_root[0])
        return tmp_root;
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof tmpl, "%s/modhost-fuzz-XXXXXX", base);
    FZ_CHECK(mkdtemp(tmpl) != NULL, "mkdtemp %s: %s", tmpl, strerror(errno));
    /* Canonical: the host resolves its cache directory, and checks that it
     * is private all the way up (a symlinked /tmp would not be). */
    FZ_CHECK(realpath(tmpl, tmp_root) != NULL, "realpath %s", tmpl);
    tmp_owner = getpid();
    atexit(tmp_cleanup);
    char cache[PATH_MAX + 8];
    snprintf(cache, sizeof cache, "%s/cache", tmp_root);
    FZ_CHECK(mkdir(cache, 0700) == 0, "mkdir %s: %s", cache, strerror(errno));
    return tmp_root;
}

const char *fz_path(const char *rel)
{
    static char buf[PATH_MAX];
    int n = snprintf(buf, sizeof buf, "%s/%s", fz_tmpdir(), rel);
    FZ_CHECK(n > 0 && (size_t)n < sizeof buf, "path too long: %s", rel);
    return buf;
}

void fz_write_file(const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FZ_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    const char *p = data;
    while (size > 0) {
        ssize_t w = write(fd, p, size);
        if (w < 0 && errno == EINTR)
            continue;
        FZ_CHECK(w > 0, "write %s: %s", path, strerror(errno));
        p += w;
        size -= (size_t)w;
    }
    FZ_CHECK(close(fd) == 0, "close %s", path);
}

void fz_empty_dir(const char *dir)
{
    rm_tree(dir);
    FZ_CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST, "mkdir %s: %s", dir,
             strerror(errno));
}

char *fz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    FZ_CHECK(s != NULL, "out of memory");
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* ---- hosts -------------------------------------------------------------- */

/* Messages are dropped, but read: a message that is not a string is a
 * bug the sanitizers should see.  MH_FUZZ_LOG=1 prints them, traces
 * included (the host is then verbose): what a target reached. */
static void quiet_log(void *ud, mh_log_level level, const char *msg)
{
    (void)ud;
    size_t n = strlen(msg);
    static int show = -1;
    if (show < 0)
        show = getenv("MH_FUZZ_LOG") != NULL;
    if (show)
        fprintf(stderr, "[log %d] %.*s\n", (int)level, (int)n, msg);
}

/* Fuzzed bytes must never run, and a fuzzed entry must never reach the
 * network (a finder plugin for an unknown scheme is looked for in every
 * entry, HTTP ones included): every dlopen and every curl transfer fails
 * as a real one would. */
static int no_dlopen(void *ud, const char *site)
{
    (void)ud;
    return strcmp(site, "dlopen") == 0 || strcmp(site, "curl") == 0;
}

mh_host *fz_host_new(const char *path, unsigned cfg_flags,
                     const char *cache_dir, fz_alloc *a)
{
    char cache[PATH_MAX + 8];
    if (!cache_dir) {
        snprintf(cache, sizeof cache, "%s/cache", fz_tmpdir());
        cache_dir = cache;
    }
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = cfg_flags | MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    if (getenv("MH_FUZZ_LOG"))
        cfg.flags |= MH_CONFIG_VERBOSE;
    cfg.path = path;
    cfg.cache_dir = cache_dir;
    cfg.alloc = fz_alloc_fn;
    cfg.alloc_ud = a;
    cfg.log = quiet_log;
    cfg.fault = no_dlopen;
    cfg.max_module_size = FZ_MAX_MODULE;
    memset(a, 0, sizeof *a);
    mh_host *h = NULL;
    mh_error *err = NULL;
    if (mh_host_new(&cfg, &h, &err) != MH_OK) {
        mh_error_free(err);
        FZ_CHECK(a->outstanding == 0, "mh_host_new failed and kept %zu "
                 "bytes in %zu blocks", a->outstanding, a->blocks);
        return NULL;
    }
    return h;
}

void fz_host_free(mh_host *h, fz_alloc *a)
{
    mh_host_free(h);
    FZ_CHECK(a->outstanding == 0 && a->blocks == 0, "mh_host_free left %zu "
             "bytes in %zu blocks of the host's allocator", a->outstanding,
             a->blocks);
}
