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
 * access time -- at most once a day under Linux's default `relatime`, so
 * an access time counts for a day more than it says; with `noatime`
 * never, and a file's age is then the time since it was written, so a
 * file still in use is removed and made again.  A file written or used
 * in the last MH_ATW_STALE_S is never removed: a host may be between
 * writing it and renaming, linking or loading it (loaders/memfd.c's
 * fallback image in native/ is written, closed, then dlopen'd by path).
 *
 * Two parts are never pruned (but for what killed writers left there):
 * http/ holds each site's serial floor, which
 * keeps an older signed index out (docs/http.md), and discovery.db holds
 * recorded failures besides what it caches.  They are counted.  Nor is a
 * download that a site's cached index still lists, however long unused:
 * it is what `modhost fetch` kept for offline use.  (Reading an index
 * interns its names in the host, as the HTTP finder would.)
 *
 * Only regular files are counted or removed, each by unlinkat on a
 * directory opened without following links, so nothing outside the
 * cache directory can be reached through it; the cache directory itself
 * must pass the checks every host makes (mh_sec_private_dir).  A file is
 * judged by a stat and then removed: one a host replaced in between goes
 * although fresh, which costs that host a cache miss, nothing more.
 */
#include "host/internal.h"
#include "cache/atomic.h"
#include "cache/blobs.h"
#include "cache/discovery.h"
#include "finders/index.h"
#include "host/secure.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DAY_S 86400
/* An index this large is read when pruning (the cache is private: the
 * finder's own limit is for what comes from the network). */
#define PRUNE_MAX_INDEX ((size_t)1 << 30)

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
    mh_cache_usage u;        /* every part this library knows */
    int64_t unused_s;        /* < 0: count only */
    struct timespec now;
    int blobs, stamps;       /* blobs/ and verified/, or -1 */
    unsigned char (*listed)[32]; /* what the cached indexes list, sorted */
    size_t nlisted, caplisted;
    bool keep_downloads;     /* an index could not be read whole */
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

/* Not used for unused_s?  The access time counts for up to a day more
 * than it says (relatime), which makes "not used for DAYS days" hold for
 * any DAYS of 1 or more; and nothing touched in the last MH_ATW_STALE_S
 * goes, whatever unused_s says.  A file's times are anything a user or a
 * filesystem set (tmpfs keeps a year in the billions), so the sums here
 * are checked: an access time at the end of time saturates, and an age
 * that cannot be told counts as recent, keeping the file. */
static bool unused(const pruner *p, const struct stat *st)
{
    int64_t now = (int64_t)p->now.tv_sec;
    int64_t atime = (int64_t)st->st_atim.tv_sec;
    int64_t mtime = (int64_t)st->st_mtim.tv_sec;
    int64_t slack = p->unused_s < DAY_S ? p->unused_s : DAY_S;
    int64_t used, idle, since;
    if (__builtin_add_overflow(atime, slack, &used))
        used = INT64_MAX;
    if (used < mtime)
        used = mtime;
    int64_t touched = atime > mtime ? atime : mtime;
    return !__builtin_sub_overflow(now, touched, &since) &&
           since >= MH_ATW_STALE_S &&
           !__builtin_sub_overflow(now, used, &idle) && idle >= p->unused_s;
}

static void count_kept(mh_cache_count *c, const struct stat *st)
{
    c->files++;
    c->bytes += st->st_size > 0 ? (uint64_t)st->st_size : 0;
}

static void count_removed(mh_cache_count *c, const struct stat *st)
{
    c->removed_files++;
    c->removed_bytes += st->st_size > 0 ? (uint64_t)st->st_size : 0;
}

/* blobs/origins/<tag> names the content of the origin's copy,
 * blobs/<sha>.<tag>: is that copy gone (or does the record name none)?
 * *rec is the record read, for the check before it is removed. */
static bool orphan_record(const pruner *p, int origins, const char *tag,
                          struct stat *rec)
{
    char sha[65], copy[NAME_MAX + 1];
    int fd = openat(origins, tag, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
                                      O_NONBLOCK);
    if (fd < 0 || p->blobs < 0 || fstat(fd, rec) != 0) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    size_t n = mh_io_read_all(fd, sha, sizeof sha);
    close(fd);
    if (!mh_hex64_ok(sha, n))
        return true; /* no record this library reads */
    sha[64] = '\0';
    if (!mh_blobs_copy_name(sha, tag, copy, sizeof copy))
        return true;
    struct stat st;
    return fstatat(p->blobs, copy, &st, AT_SYMLINK_NOFOLLOW) != 0 &&
           errno == ENOENT;
}

/* Is the record at name still the one read?  A host that kept a new copy
 * meanwhile wrote a new record (a new file) naming it. */
static bool same_record(int origins, const char *name, const struct stat *rec)
{
    struct stat st;
    return fstatat(origins, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           st.st_dev == rec->st_dev && st.st_ino == rec->st_ino &&
           st.st_mtim.tv_sec == rec->st_mtim.tv_sec &&
           st.st_mtim.tv_nsec == rec->st_mtim.tv_nsec;
}

static int digest_cmp(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* Collect the SHA-256 of every module of the cached index in site
 * directory dir (taken).  One that is there but cannot be read whole
 * keeps every download; a damaged one lists nothing (the finder cannot
 * use it either: offline, it serves nothing). */
static void gather(pruner *p, int dir, const char *site)
{
    char where[PATH_MAX + NAME_MAX + 32];
    snprintf(where, sizeof where, "%s/http/%s/index.json", p->where, site);
    int fd = openat(dir, "index.json", O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
                                           O_NONBLOCK);
    int e0 = errno;
    close(dir);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > PRUNE_MAX_INDEX) {
        if (fd >= 0 || e0 != ENOENT) {
            MH_TRACE(p->h, "cache: %s cannot be read: every download is "
                     "kept", where);
            p->keep_downloads = true;
        }
        if (fd >= 0)
            close(fd);
        return;
    }
    size_t len = (size_t)st.st_size;
    unsigned char *json = mh_mem_alloc(p->h, len ? len : 1);
    bool whole = json && mh_io_read_all(fd, json, len) == len;
    close(fd);
    mh_index idx;
    mh_error *e = NULL;
    mh_status rc = whole ? mh_idx_parse(p->h, where, json, len, &idx, &e)
                         : MH_ENOMEM;
    mh_mem_free(p->h, json, len ? len : 1);
    if (rc != MH_OK) {
        if (rc != MH_EFORMAT)
            p->keep_downloads = true;
        MH_TRACE(p->h, "cache: %s lists nothing%s: %s", where,
                 p->keep_downloads ? " (every download is kept)" : "",
                 e ? mh_error_message(e) : "cannot be read whole");
        mh_error_free(e);
        return;
    }
    for (size_t i = 0; i < idx.n; i++) {
        if (p->nlisted == p->caplisted) {
            size_t cap = p->caplisted ? 2 * p->caplisted : 64;
            void *v = mh_mem_realloc(p->h, p->listed,
                                     p->caplisted * sizeof *p->listed,
                                     cap * sizeof *p->listed);
            if (!v) {
                p->keep_downloads = true;
                break;
            }
            p->listed = v;
            p->caplisted = cap;
        }
        memcpy(p->listed[p->nlisted++], idx.v[i].sha256, 32);
    }
    mh_idx_free(p->h, &idx);
}

/* Every cached index: http/<site>/index.json, each directory opened
 * without following links. */
static void gather_listed(pruner *p, int top)
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
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        int site = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY |
                                                    O_NOFOLLOW | O_CLOEXEC);
        if (site >= 0)
            gather(p, site, de->d_name);
    }
    closedir(d);
    if (p->nlisted)
        qsort(p->listed, p->nlisted, sizeof *p->listed, digest_cmp);
}

/* blobs/<64 hex>: a download; does a cached index list it? */
static bool listed(const pruner *p, const char *name)
{
    unsigned char sha[32];
    if (strlen(name) != 64 || !mh_hex64_ok(name, 64))
        return false;
    if (p->keep_downloads)
        return true;
    return p->nlisted && mh_unhex(name, 32, sha) &&
           bsearch(sha, p->listed, p->nlisted, sizeof *p->listed,
                   digest_cmp) != NULL;
}

/* Remove a file, or count it kept when it cannot be: true when it went
 * (or another process removed it first). */
static bool drop(pruner *p, int dir, const char *name, const struct stat *st,
                 mh_cache_part part)
{
    if (unlinkat(dir, name, 0) != 0 && errno != ENOENT) {
        failed(p, "remove", name, errno);
        count_kept(&p->u.part[part], st);
        return false;
    }
    count_removed(&p->u.part[part], st);
    return true;
}

/* A removed copy's stamp (verified/<its name>) goes with it. */
static void drop_stamp(pruner *p, const char *name)
{
    struct stat st;
    if (p->stamps >= 0 &&
        fstatat(p->stamps, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(st.st_mode) && unlinkat(p->stamps, name, 0) == 0)
        count_removed(&p->u.part[MH_CACHE_STAMPS], &st);
}

typedef enum walk_kind {
    W_PRUNE,      /* remove what is unused */
    W_RECORDS,    /* blobs/origins: remove what names a copy that is gone */
    W_COUNT,      /* count only */
    W_COUNT_DEEP, /* http/: count, and one level of directories below */
} walk_kind;

/* Should the file name (stat'd as st) in directory fd go? */
static bool goes(pruner *p, int fd, const char *name, const struct stat *st,
                 mh_cache_part part, walk_kind kind)
{
    if (p->unused_s < 0)
        return false;
    /* What a writer killed mid-way left goes from every part, http/ too,
     * which keeps its other files: nothing reads it, and a writer sweeps
     * its directory only after a write of its own, which a warm cache may
     * never make again. */
    if (kind != W_RECORDS && mh_atw_leftover(name, ".tmp-", st, p->now.tv_sec))
        return true;
    if (kind == W_RECORDS) {
        struct stat rec;
        return orphan_record(p, fd, name, &rec) &&
               same_record(fd, name, &rec);
    }
    return kind == W_PRUNE && unused(p, st) &&
           !(part == MH_CACHE_BLOBS && listed(p, name));
}

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
        struct stat ls;
        if ((e == ELOOP || e == ENOTDIR) && p->rc == MH_OK &&
            fstatat(at, sub, &ls, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISLNK(ls.st_mode)) /* O_NOFOLLOW met a link */
            p->rc = mh_err(p->h, p->err, MH_EIO, "cannot read %s/%s: it is "
                           "a symbolic link (not followed)", p->where, sub);
        else if (e != ENOENT)
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
        if (!goes(p, fd, name, &st, part, kind))
            count_kept(&p->u.part[part], &st);
        else if (drop(p, fd, name, &st, part) && part == MH_CACHE_BLOBS &&
                 kind == W_PRUNE)
            drop_stamp(p, name);
    }
    if (errno)
        failed(p, "read", ".", errno);
    closedir(d);
    p->where[len] = '\0';
}

/* discovery.db and the files SQLite and the index keep beside it. */
static void count_index(pruner *p, int top)
{
    DIR *d = fdopendir(top);
    if (!d) {
        failed(p, "read", ".", errno);
        close(top);
        return;
    }
    struct dirent *de;
    struct stat st;
    for (errno = 0; (de = readdir(d)); errno = 0)
        if (strncmp(de->d_name, "discovery.db", 12) == 0 &&
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode))
            count_kept(&p->u.part[MH_CACHE_INDEX], &st);
    if (errno)
        failed(p, "read", ".", errno);
    closedir(d);
}

mh_status mh_host_prune_cache(mh_host *host, int64_t unused_s,
                              mh_cache_usage *usage, mh_error **err)
{
    const size_t off = offsetof(mh_cache_usage, part);
    size_t size = usage ? usage->size : 0;
    if (size > sizeof *usage)
        size = sizeof *usage; /* a later header's parts: not known here */
    if (size >= off)
        memset((char *)usage + off, 0, size - off);
    if (!host || !usage)
        return mh_err(host, err, MH_EINVAL,
                      "mh_host_prune_cache: %s is NULL",
                      mh_null_name(2, host, "host", usage, "usage"));
    if (usage->size < off)
        return mh_err(host, err, MH_EINVAL, "mh_host_prune_cache: "
                      "usage->size is not set (sizeof(mh_cache_usage))");
    mh_status grc = mh_entry_check(host, "mh_host_prune_cache", 0, err);
    if (grc != MH_OK)
        return grc;

    /* Nothing there, nothing to count: a count makes no directory.  But
     * one that could never be made private is refused now, as every
     * host would refuse it. */
    char real[PATH_MAX];
    bool exists;
    mh_status rc = mh_sec_private_dir_if_any(host, host->cache_dir, real,
                                             sizeof real, &exists, err);
    if (rc != MH_OK || !exists)
        return rc;

    pruner *p = mh_mem_calloc(host, 1, sizeof *p);
    if (!p)
        return mh_err(host, err, MH_ENOMEM, "out of memory");
    p->h = host;
    p->unused_s = unused_s;
    p->blobs = p->stamps = -1;
    p->rc = MH_OK;
    p->err = err;
    clock_gettime(CLOCK_REALTIME, &p->now);
    int top = open(real, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (top < 0) {
        rc = mh_err(host, err, MH_EIO, "cannot open the cache directory "
                    "%s: %s", real, mh_errno_text(errno));
        mh_mem_free(host, p, sizeof *p);
        return rc;
    }
    snprintf(p->where, sizeof p->where, "%s", real); /* fits: checked */
    p->blobs = openat(top, "blobs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                        O_CLOEXEC);
    p->stamps = openat(top, "verified", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                            O_CLOEXEC);
    if (unused_s >= 0)
        gather_listed(p, top);
    for (size_t i = 0; i < sizeof subdirs / sizeof *subdirs; i++) {
        mh_cache_part part = subdirs[i].part;
        walk(p, top, subdirs[i].dir, part,
             part == MH_CACHE_HTTP ? W_COUNT_DEEP : W_PRUNE);
        if (part == MH_CACHE_BLOBS && p->blobs >= 0) {
            size_t len = strlen(p->where);
            snprintf(p->where + len, sizeof p->where - len, "/blobs");
            walk(p, p->blobs, "origins", part, W_RECORDS);
            p->where[len] = '\0';
        }
    }
    if (unused_s >= 0) /* what index rebuilds killed mid-way left */
        mh_atw_sweep(real, MH_DX_FILE ".tmp-");
    count_index(p, top);
    if (p->blobs >= 0)
        close(p->blobs);
    if (p->stamps >= 0)
        close(p->stamps);
    rc = p->rc;
    memcpy((char *)usage + off, (char *)&p->u + off, size - off);
    mh_mem_free(host, p->listed, p->caplisted * sizeof *p->listed);
    mh_mem_free(host, p, sizeof *p);
    return rc;
}
