/*
 * fault.c -- one fault plan for both of a host's fault sources: the
 * system and library calls it reports through mh_config.fault ("open",
 * "dlopen", "sqlite", ...) and the allocations it makes through
 * mh_config.alloc (counted as the site "alloc").  Every call either hook
 * sees gets the next number; the plan fails the fail_at-th (once) or it
 * and every later one (persistent), optionally counting one site only,
 * as SQLite's test_malloc.c and curl's torture mode do.  Memory is kept by
 * the tracking allocator of alloc.c, so a run's leaks are counted too; its
 * own fail_at stays 0, since only the plan sees both kinds of call.
 *
 * Also the process checks a fault run ends with: open descriptors,
 * memfds, and temporary files left in a cache directory.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

void fault_plan_init(fault_plan *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    alloc_tracker_init(&p->mem);
}

void fault_plan_destroy(fault_plan *p)
{
    free(p->trace);
    alloc_tracker_destroy(&p->mem);
    pthread_mutex_destroy(&p->mu);
    memset(p, 0, sizeof *p);
}

void fault_plan_arm(fault_plan *p, long fail_at, int once, const char *only)
{
    pthread_mutex_lock(&p->mu);
    /* A new count starts here; the per-site table keeps adding up. */
    p->calls = 0;
    p->injected = 0;
    p->fired_site[0] = '\0';
    p->trace_n = 0;
    p->fail_at = fail_at > 0 ? fail_at : 0;
    p->once = once;
    p->only = only;
    pthread_mutex_unlock(&p->mu);
}

void fault_plan_disarm(fault_plan *p)
{
    pthread_mutex_lock(&p->mu);
    p->fail_at = 0;
    pthread_mutex_unlock(&p->mu);
}

/* The slot of site in p's table (added on first sight).  Locked. */
static size_t site_slot(fault_plan *p, const char *site)
{
    size_t i;
    for (i = 0; i < p->nsites; i++)
        if (strcmp(p->sites[i].site, site) == 0)
            return i;
    if (p->nsites == FAULT_SITES_MAX)
        FAIL("fault plan: more than %d distinct sites (new: \"%s\")",
             FAULT_SITES_MAX, site);
    /* Sites are string literals of the library or of this file; copy the
     * name anyway, it costs nothing and outlives any host. */
    snprintf(p->sites[i].site, sizeof p->sites[i].site, "%s", site);
    p->nsites++;
    return i;
}

/* Count one call of site; 1 when it must fail. */
static int decide(fault_plan *p, const char *site)
{
    int fail = 0;
    size_t slot;

    pthread_mutex_lock(&p->mu);
    slot = site_slot(p, site);
    p->sites[slot].calls++;
    if (p->only == NULL || strcmp(p->only, site) == 0) {
        p->calls++;
        if (p->record) {
            if (p->trace_n == p->trace_cap) {
                size_t cap = p->trace_cap ? p->trace_cap * 2 : 1024;
                unsigned char *t = realloc(p->trace, cap);
                if (t == NULL) {
                    pthread_mutex_unlock(&p->mu);
                    FAIL("out of memory in the fault plan");
                }
                p->trace = t;
                p->trace_cap = cap;
            }
            p->trace[p->trace_n++] = (unsigned char)slot;
        }
        if (p->fail_at > 0 &&
            (p->once ? p->calls == (size_t)p->fail_at
                     : p->calls >= (size_t)p->fail_at)) {
            fail = 1;
            if (p->injected++ == 0)
                snprintf(p->fired_site, sizeof p->fired_site, "%s", site);
            p->sites[slot].injected++;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return fail;
}

int fault_site_fn(void *ud, const char *site)
{
    if (site == NULL || site[0] == '\0')
        FAIL("fault hook called without a site name");
    return decide(ud, site);
}

void *fault_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize)
{
    fault_plan *p = ud;
    /* Only requests for memory can fail; a free never does. */
    if (nsize > 0 && decide(p, FAULT_ALLOC))
        return NULL;
    return alloc_tracker_fn(&p->mem, ptr, osize, nsize);
}

void fault_config(mh_config *cfg, fault_plan *p)
{
    cfg->alloc = fault_alloc_fn;
    cfg->alloc_ud = p;
    cfg->fault = fault_site_fn;
    cfg->fault_ud = p;
}

size_t fault_site_calls(const fault_plan *p, const char *site)
{
    for (size_t i = 0; i < p->nsites; i++)
        if (strcmp(p->sites[i].site, site) == 0)
            return p->sites[i].calls;
    return 0;
}

const char *fault_sites_text(const fault_plan *p)
{
    const char *s = "";
    for (size_t i = 0; i < p->nsites; i++)
        s = str_fmt("%s%s%s %zu", s, i ? ", " : "", p->sites[i].site,
                    p->sites[i].calls);
    return s;
}

const char *fault_trace_site(const fault_plan *p, size_t i)
{
    return i < p->trace_n ? p->sites[p->trace[i]].site : NULL;
}

/* -------------------------------------------------------------- checks */

size_t fault_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    size_t n = 0;

    if (d == NULL)
        FAIL("opendir(/proc/self/fd): %s", strerror(errno));
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* not the one reading the directory */
}

const char *fault_fd_list(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    const char *s = "";

    if (d == NULL)
        FAIL("opendir(/proc/self/fd): %s", strerror(errno));
    while ((e = readdir(d)) != NULL) {
        char link[512];
        ssize_t len;
        if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
            continue;
        len = readlinkat(dirfd(d), e->d_name, link, sizeof link - 1);
        link[len < 0 ? 0 : len] = '\0';
        s = str_fmt("%s\n  %s -> %s", s, e->d_name, link);
    }
    closedir(d);
    return s;
}

size_t fault_memfd_count(void)
{
    return memfd_fd_count("") + maps_count("memfd:", "");
}

/* State of one walk (nftw has no user pointer). */
static const char *walk_bad;
static size_t walk_nbad;
static const char *walk_prefix;

static int walk_one(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    const char *base = path + ftw->base;
    const char *rel = path + strlen(walk_prefix);
    (void)st;
    if (flag == FTW_D || flag == FTW_DP)
        return 0;
    /* Temporaries of cache/atomic.c (".tmp-*"), the discovery index's
     * ("discovery.db.tmp-*"), and any "*.tmp-*"; SQLite journals, which
     * a cleanly closed connection never leaves; and anything in the
     * private directory of the no-memfd path, whose files are unlinked
     * as soon as they are loaded. */
    if (strncmp(base, ".tmp-", 5) == 0 || strstr(base, ".tmp-") ||
        strstr(base, "-journal") || strstr(base, "-wal") ||
        strncmp(rel, "/native/", 8) == 0) {
        walk_nbad++;
        walk_bad = str_fmt("%s\n  %s", walk_bad, path);
    }
    return 0;
}

const char *fault_cache_leftovers(const char *cache_dir)
{
    struct stat st;
    walk_bad = "";
    walk_nbad = 0;
    walk_prefix = cache_dir;
    if (stat(cache_dir, &st) != 0)
        return NULL;
    if (nftw(cache_dir, walk_one, 16, FTW_PHYS) < 0)
        FAIL("nftw(%s): %s", cache_dir, strerror(errno));
    return walk_nbad ? walk_bad : NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if ((flag == FTW_DP ? rmdir(path) : unlink(path)) != 0)
        FAIL("removing %s: %s", path, strerror(errno));
    return 0;
}

void fault_rm_tree(const char *dir)
{
    struct stat st;
    if (lstat(dir, &st) != 0)
        return;
    if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
        FAIL("nftw(%s): %s", dir, strerror(errno));
}

/* State of one copy. */
static const char *copy_from, *copy_to;

static int copy_one(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    const char *dst = str_fmt("%s%s", copy_to, path + strlen(copy_from));
    (void)ftw;
    if (flag == FTW_D) {
        if (mkdir(dst, st->st_mode & 07777) != 0 && errno != EEXIST)
            FAIL("mkdir %s: %s", dst, strerror(errno));
    } else if (flag == FTW_F) {
        file_copy(path, dst);
        if (chmod(dst, st->st_mode & 07777) != 0)
            FAIL("chmod %s: %s", dst, strerror(errno));
    } else {
        FAIL("fault_copy_tree: %s is neither a file nor a directory", path);
    }
    return 0;
}

void fault_copy_tree(const char *from, const char *to)
{
    copy_from = from;
    copy_to = to;
    if (nftw(from, copy_one, 16, FTW_PHYS) < 0)
        FAIL("nftw(%s): %s", from, strerror(errno));
}

void fds_none_begin(struct rlimit *old)
{
    /* below it, every descriptor is taken */
    int lowest = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (lowest < 0 || close(lowest) != 0 || getrlimit(RLIMIT_NOFILE, old))
        FAIL("cannot look at the descriptors: %s", strerror(errno));
    struct rlimit tight = *old;
    tight.rlim_cur = (rlim_t)lowest;
    if (setrlimit(RLIMIT_NOFILE, &tight) != 0)
        FAIL("setrlimit: %s", strerror(errno));
}

void fds_none_end(const struct rlimit *old)
{
    if (setrlimit(RLIMIT_NOFILE, old) != 0)
        FAIL("setrlimit back: %s", strerror(errno));
}
