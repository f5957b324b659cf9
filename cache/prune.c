/*
 * cache/prune.c -- what the cache directory holds, and removing what has
 * not been used for a while (mh_host_prune_cache).
 *
 * Most of the cache is made again when it is missing: a Lua chunk is
 * compiled again, a download fetched again, a database module's copy
 * kept again from its row, a stamp recorded after the next hash, a probe
 * run again.  So a host never depends on finding any of it, and removing
 * it while hosts run is safe: one that has a file mapped keeps its
 * mapping, one about to open it finds none.  That is what pruning does,
 * by last use: a file is used when it is read or mapped, which sets its
 * access time (at most once a day under Linux's default `relatime`; with
 * `noatime` never, and a file's age is then the time since it was
 * written, so a file still in use is removed and made again).
 *
 * Two parts are never pruned: http/ holds each site's serial floor, which
 * keeps an older signed index out (docs/http.md), and discovery.db holds
 * recorded failures besides what it caches.  They are counted.  Nor is a
 * download that a site's cached index still lists, however long unused:
 * it is what `modhost fetch` kept for offline use.
 *
 * Only regular files are counted or removed, each by unlinkat on a
 * directory opened without following links, so nothing outside the
 * cache directory can be reached through it; the cache directory itself
 * must pass the checks every host makes (mh_sec_private_dir).
 */
#include "host/internal.h"
#include "cache/atomic.h"
#include "finders/index.h"
#include "host/secure.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *const part_names[MH_CACHE_NPARTS] = {
    [MH_CACHE_BYTECODE] = "bytecode",
    [MH_CACHE_BLOBS] = "blobs",
    [MH_CACHE_STAMPS] = "stamps",
    [MH_CACHE_PROBES] = "probes",
    [MH_CACHE_SCRATCH] = "scratch",
    [MH_CACHE_HTTP] = "http",
    [MH_CACHE_INDEX] = "index",
};

const char *mh_cache_part_name(mh_cache_part part)
{
    return (unsigned)part < MH_CACHE_NPARTS ? part_names[part] : NULL;
}

/* The subdirectories, in the order they are pruned: the blobs before the
 * stamps, so a stamp whose copy went goes with it. */
static const struct {
    const char *dir;
    mh_cache_part part;
} subdirs[] = {
    { "lua", MH_CACHE_BYTECODE },
    { "blobs", MH_CACHE_BLOBS },
    { "verified", MH_CACHE_STAMPS },
    { "probe", MH_CACHE_PROBES },
    { "native", MH_CACHE_SCRATCH },
    { "http", MH_CACHE_HTTP },
};

typedef struct pruner {
    mh_host *h;
    mh_cache_usage *u;
    int64_t unused_s;        /* < 0: count only */
    struct timespec now;
    int blobs, stamps;       /* blobs/ and verified/, or -1 */
    unsigned char (*listed)[32]; /* what the cached indexes list, sorted */
    size_t nlisted, caplisted;
    char where[PATH_MAX];    /* the directory being read, for messages */
    mh_status rc;            /* the first failure; the walk goes on */
    mh_error **err;
} pruner;

static void failed(pruner *p, const char *what, const char *name, int e)
{
    if (p->rc != MH_OK)
        return;
    p->rc = mh_err(p->h, p->err, MH_EIO, "cannot %s %s/%s: %s", what,
                   p->where, name, mh_errno_text(e));
}

static bool unused(const pruner *p, const struct stat *st)
{
    if (p->unused_s < 0)
        return false;
    time_t last = st->st_atim.tv_sec > st->st_mtim.tv_sec
                      ? st->st_atim.tv_sec : st->st_mtim.tv_sec;
    return (int64_t)p->now.tv_sec - (int64_t)last >= p->unused_s;
}

static void count(mh_cache_count *c, const struct stat *st)
{
    c->files++;
    c->bytes += st->st_size > 0 ? (uint64_t)st->st_size : 0;
}

/* blobs/origins/<tag> names the content of the origin's copy,
 * blobs/<sha>.<tag>: is that copy gone? */
static bool orphan_record(const pruner *p, int origins, const char *tag)
{
    char sha[65], copy[NAME_MAX + 1];
    int fd = openat(origins, tag, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
                                      O_NONBLOCK);
    if (fd < 0 || p->blobs < 0) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    size_t n = mh_io_read_all(fd, sha, sizeof sha);
    close(fd);
    if (!mh_hex64_ok(sha, n))
        return true; /* no record this library reads */
    sha[64] = '\0';
    if ((size_t)snprintf(copy, sizeof copy, "%s.%s", sha, tag) >= sizeof copy)
        return true;
    struct stat st;
    return fstatat(p->blobs, copy, &st, AT_SYMLINK_NOFOLLOW) != 0 &&
           errno == ENOENT;
}

static int digest_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* Collect the SHA-256 of every module the index at path lists (an index
 * that cannot be read or parsed lists nothing: its downloads age). */
static void gather(pruner *p, const char *path)
{
    unsigned char *json;
    size_t len;
    mh_index idx;
    if (mh_atw_read(p->h, path, p->h->http.max_index_size, &json, &len,
                    NULL) != MH_OK)
        return;
    mh_error *e = NULL;
    mh_status rc = mh_idx_parse(p->h, path, json, len, &idx, &e);
    mh_mem_free(p->h, json, len ? len : 1);
    if (rc != MH_OK) {
        MH_TRACE(p->h, "cache: %s lists nothing: %s", path,
                 mh_error_message(e));
        mh_error_free(e);
        return;
    }
    for (size_t i = 0; i < idx.n; i++) {
        if (p->nlisted == p->caplisted) {
            size_t cap = p->caplisted ? 2 * p->caplisted : 64;
            void *v = mh_mem_realloc(p->h, p->listed,
                                     p->caplisted * sizeof *p->listed,
                                     cap * sizeof *p->listed);
            if (!v)
                break; /* fewer kept: they are fetched again */
            p->listed = v;
            p->caplisted = cap;
        }
        memcpy(p->listed[p->nlisted++], idx.v[i].sha256, 32);
    }
    mh_idx_free(p->h, &idx);
}

/* Every cached index: http/<site>/index.json. */
static void gather_listed(pruner *p, int top, const char *real)
{
    int fd = openat(top, "http", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                     O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return; /* an unreadable http/ is reported when it is counted */
    }
    struct dirent *de;
    char path[PATH_MAX];
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' &&
            (size_t)snprintf(path, sizeof path, "%s/http/%s/index.json",
                             real, de->d_name) < sizeof path)
            gather(p, path);
    closedir(d);
    if (p->nlisted)
        qsort(p->listed, p->nlisted, sizeof *p->listed, digest_cmp);
}

/* blobs/<64 hex>: a download; does a cached index list it? */
static bool listed(const pruner *p, const char *name)
{
    unsigned char sha[32];
    if (strlen(name) != 64 || !mh_hex64_ok(name, 64) || !p->nlisted)
        return false;
    for (int i = 0; i < 32; i++) {
        int hi = name[2 * i], lo = name[2 * i + 1];
        hi = hi <= '9' ? hi - '0' : hi - 'a' + 10;
        lo = lo <= '9' ? lo - '0' : lo - 'a' + 10;
        sha[i] = (unsigned char)(hi << 4 | lo);
    }
    return bsearch(sha, p->listed, p->nlisted, sizeof *p->listed,
                   digest_cmp) != NULL;
}

/* Remove a file, or count it kept when it cannot be: true when it went
 * (or another process removed it first). */
static bool drop(pruner *p, int dir, const char *name, const struct stat *st,
                 mh_cache_part part)
{
    if (unlinkat(dir, name, 0) != 0 && errno != ENOENT) {
        failed(p, "remove", name, errno);
        count(&p->u->kept[part], st);
        return false;
    }
    count(&p->u->removed[part], st);
    return true;
}

/* A removed copy's stamp (verified/<its name>) goes with it. */
static void drop_stamp(pruner *p, const char *name)
{
    struct stat st;
    if (p->stamps >= 0 &&
        fstatat(p->stamps, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode) && unlinkat(p->stamps, name, 0) == 0)
        count(&p->u->removed[MH_CACHE_STAMPS], &st);
}

typedef enum walk_kind {
    W_PRUNE,      /* remove what is unused */
    W_RECORDS,    /* blobs/origins: also what names a copy that is gone */
    W_COUNT,      /* count only */
    W_COUNT_DEEP, /* http/: count, and one level of directories below */
} walk_kind;

/* Every regular file in the directory sub of at (a directory the walk
 * opens without following links; absent is empty), into part. */
static void walk(pruner *p, int at, const char *sub, mh_cache_part part,
                 walk_kind kind)
{
    size_t len = strlen(p->where);
    if ((size_t)snprintf(p->where + len, sizeof p->where - len, "/%s", sub) >=
        sizeof p->where - len) {
        p->where[len] = '\0';
        failed(p, "read", sub, ENAMETOOLONG);
        return;
    }
    int fd = openat(at, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                 O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        p->where[len] = '\0';
        if (e != ENOENT)
            failed(p, "read", sub, e);
        return;
    }
    struct dirent *de;
    for (errno = 0; (de = readdir(d)); errno = 0) {
        const char *name = de->d_name;
        struct stat st;
        if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2])))
            continue;
        if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno != ENOENT)
                failed(p, "stat", name, errno);
            continue;
        }
        if (S_ISDIR(st.st_mode) && kind == W_COUNT_DEEP)
            walk(p, fd, name, part, W_COUNT);
        if (!S_ISREG(st.st_mode))
            continue;
        bool go = kind <= W_RECORDS &&
                  ((unused(p, &st) &&
                    !(part == MH_CACHE_BLOBS && listed(p, name))) ||
                   (kind == W_RECORDS && p->unused_s >= 0 &&
                    orphan_record(p, fd, name)));
        if (!go)
            count(&p->u->kept[part], &st);
        else if (drop(p, fd, name, &st, part) && part == MH_CACHE_BLOBS &&
                 kind == W_PRUNE)
            drop_stamp(p, name);
    }
    if (errno)
        failed(p, "read", ".", errno);
    closedir(d);
    p->where[len] = '\0';
}

mh_status mh_host_prune_cache(mh_host *host, int64_t unused_s,
                              mh_cache_usage *usage, mh_error **err)
{
    if (usage)
        memset(usage, 0, sizeof *usage);
    if (!host || !usage)
        return mh_err(host, err, MH_EINVAL,
                      "mh_host_prune_cache: NULL argument");

    /* Nothing there, nothing to count: a count makes no directory. */
    struct stat st;
    if (lstat(host->cache_dir, &st) != 0 && errno == ENOENT &&
        strncmp(host->cache_dir, MH_NO_DIR, sizeof MH_NO_DIR - 1) != 0)
        return MH_OK;
    char real[PATH_MAX];
    mh_status rc = mh_sec_private_dir(host, host->cache_dir, real,
                                      sizeof real, err);
    if (rc != MH_OK)
        return rc;

    pruner p = { .h = host, .u = usage, .unused_s = unused_s,
                 .blobs = -1, .stamps = -1, .rc = MH_OK, .err = err };
    clock_gettime(CLOCK_REALTIME, &p.now);
    int top = open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (top < 0)
        return mh_err(host, err, MH_EIO, "cannot open the cache directory "
                      "%s: %s", real, mh_errno_text(errno));
    snprintf(p.where, sizeof p.where, "%s", real); /* fits: checked */
    p.blobs = openat(top, "blobs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                       O_CLOEXEC);
    p.stamps = openat(top, "verified", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                           O_CLOEXEC);
    if (unused_s >= 0)
        gather_listed(&p, top, real);
    for (size_t i = 0; i < sizeof subdirs / sizeof *subdirs; i++) {
        mh_cache_part part = subdirs[i].part;
        walk(&p, top, subdirs[i].dir, part,
             part == MH_CACHE_HTTP ? W_COUNT_DEEP : W_PRUNE);
        if (part == MH_CACHE_BLOBS && p.blobs >= 0) {
            size_t len = strlen(p.where);
            snprintf(p.where + len, sizeof p.where - len, "/blobs");
            walk(&p, p.blobs, "origins", part, W_RECORDS);
            p.where[len] = '\0';
        }
    }

    /* discovery.db and SQLite's files beside it. */
    DIR *d = fdopendir(top);
    if (!d) {
        failed(&p, "read", ".", errno);
        close(top);
    } else {
        struct dirent *de;
        for (errno = 0; (de = readdir(d)); errno = 0)
            if (strncmp(de->d_name, "discovery.db", 12) == 0 &&
                fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISREG(st.st_mode))
                count(&usage->kept[MH_CACHE_INDEX], &st);
        closedir(d);
    }
    if (p.blobs >= 0)
        close(p.blobs);
    if (p.stamps >= 0)
        close(p.stamps);
    mh_mem_free(host, p.listed, p.caplisted * sizeof *p.listed);
    return p.rc;
}
