/*
 * finders/fs.c -- the filesystem finder (mh_fsf_*): modules in directories.
 *
 * Module a.b.c is <entry>/a/b/c.so; a directory <entry>/a/b alone is a
 * portion of the namespace package a.b.
 *
 * Directory listing cache
 * -----------------------
 * Probing each candidate with stat() or open() costs a system call per
 * entry per import, and most of them fail.  Instead each directory that
 * is looked into is read once and its listing kept (names of *.so files
 * and of subdirectories, sorted), keyed by the interned directory path.
 * A listing is stamped by a watch (finders/notify.c) taken just before it
 * was read, and used with no system call while the stamp is current; a
 * package the entry lacks is a miss told by the entry's own listing.
 *
 * Without notification, a find costs one stat() of the directory that
 * would hold the module, and the listing is read again only when that
 * directory's (dev, inode, nanosecond mtime) changed, as CPython's
 * FileFinder does.  Timestamps have a granularity: a file added in the
 * same tick as the listing was read would leave the mtime unchanged.  A
 * listing whose directory changed less than MH_FSF_UNSURE_NS before it
 * was read is therefore marked unsure and read again on next use, until
 * it is old enough to trust.  mh_invalidate_caches() drops every listing.
 */
#include "host/internal.h"
#include "host/secure.h"
#include "finders/finder.h"
#include "finders/notify.h"

#include <dirent.h>
#include <stdio.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MH_FSF_UNSURE_NS 2000000000LL  /* 2 s: covers FAT's granularity */
#define MH_FSF_MAX_ENTRIES 1000000u    /* per directory */
#define MH_FSF_MAX_DEPTH ((MH_NAME_MAX + 1) / 2) /* list: as deep as a
                                          name can go ("a.b.c...") */

enum { T_FILE = 'f', T_LUA = 'l', T_LUAC = 'c', T_DIR = 'd', T_META = 'j',
       T_LINK = 'u', /* a symbolic link: followed when used */
       T_ODD = 'x'   /* named as a module's file, but none (a directory
                        x.so): kept only to say so when x is missed */ };

/* A listing's entries, one block: n offsets (uint32_t, sorted by name)
 * and behind them the entries they point at, each a type byte followed by
 * the name and its NUL.  A package directory of five plugins costs one
 * block of about 90 bytes. */
typedef struct fsf_listing {
    const char *dir;    /* interned absolute path */
    struct fsf_listing *next;
    mh_ntf_stamp stamp; /* current: trusted without a system call */
    dev_t dev;
    ino_t ino;
    uint64_t mtime_ns;  /* the directory's mtime when read, in ns (mod
                           2^64: two mtimes 584 years apart match) */
    uint32_t *ents;     /* the block above, or NULL when n == 0 */
    uint32_t n, size;   /* entries, and the block's bytes */
    int missing;        /* 0, or the errno of a directory that is not
                           there (ENOENT, ENOTDIR), a listing of none */
    bool unsure;
    bool remote;        /* on a network filesystem: never watched */
    bool ups;           /* the package directories above it were listed
                           (watched) since it was last read */
    bool odd;           /* it has T_ODD entries */
} fsf_listing;

typedef struct fsf_state {
    mh_host *host;
    const char *root;   /* interned, no trailing slash */
    pthread_mutex_t lock;
    fsf_listing **buckets;
    size_t nbuckets, count;
} fsf_state;

/* Entry i of a listing: its type and its name. */
static const char *ent_at(const fsf_listing *l, size_t i)
{
    return (const char *)(l->ents + l->n) + l->ents[i];
}

static char ent_type(const fsf_listing *l, size_t i)
{
    return ent_at(l, i)[0];
}

static const char *ent_name(const fsf_listing *l, size_t i)
{
    return ent_at(l, i) + 1;
}

static void listing_clear(mh_host *h, fsf_listing *l)
{
    mh_mem_free(h, l->ents, l->size);
    l->ents = NULL;
    l->n = l->size = 0;
    l->odd = false;
}

/* A listing being read: names appended to one growing buffer, each as a
 * type byte, the name, a NUL. */
typedef struct fsf_build {
    char *buf;
    size_t len, cap;
    uint32_t *off;
    size_t n, ncap;
} fsf_build;

static void build_free(mh_host *h, fsf_build *b)
{
    mh_mem_free(h, b->buf, b->cap);
    mh_mem_free(h, b->off, b->ncap * sizeof *b->off);
}

static int build_add(mh_host *h, fsf_build *b, const char *name, size_t len,
                     char type)
{
    if (b->n == MH_FSF_MAX_ENTRIES)
        return 0; /* silently capped; documented limit */
    if (mh_mem_grow(h, (void **)&b->off, &b->ncap, b->n, sizeof *b->off,
                    16) != 0)
        return -1;
    if (b->len + len + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + len + 2)
            cap *= 2;
        char *p = mh_mem_realloc(h, b->buf, b->cap, cap);
        if (!p)
            return -1;
        b->buf = p;
        b->cap = cap;
    }
    b->off[b->n++] = (uint32_t)b->len; /* < 2^32: a million names */
    b->buf[b->len] = type;
    memcpy(b->buf + b->len + 1, name, len);
    b->buf[b->len + 1 + len] = '\0';
    b->len += len + 2;
    return 0;
}

static int off_cmp(const void *a, const void *b, void *names)
{
    const char *base = names;
    return strcmp(base + *(const uint32_t *)a + 1,
                  base + *(const uint32_t *)b + 1);
}

/* Sort what was read into l's one block.  0, or -1: out of memory. */
static int build_finish(mh_host *h, fsf_build *b, fsf_listing *l)
{
    if (!b->n)
        return 0;
    qsort_r(b->off, b->n, sizeof *b->off, off_cmp, b->buf);
    size_t size = b->n * sizeof(uint32_t) + b->len;
    if (size > UINT32_MAX)
        return -1;
    uint32_t *blk = mh_mem_alloc(h, size);
    if (!blk)
        return -1;
    memcpy(blk, b->off, b->n * sizeof *blk);
    memcpy(blk + b->n, b->buf, b->len);
    l->ents = blk;
    l->n = (uint32_t)b->n;
    l->size = (uint32_t)size;
    return 0;
}

/* What a name in a directory is, by its name and its file type (after
 * any link): a listing's type, or 0 when it can never be a module, a
 * package or a sidecar. */
static char type_of(const char *nm, unsigned char dt)
{
    size_t len = strlen(nm);
    bool so_name = len > 3 && strcmp(nm + len - 3, ".so") == 0 &&
                   mh_name_ident(nm, len - 3);
    bool lua_name = len > 4 && strcmp(nm + len - 4, ".lua") == 0 &&
                    mh_name_ident(nm, len - 4);
    bool luac_name = len > 5 && strcmp(nm + len - 5, ".luac") == 0 &&
                     mh_name_ident(nm, len - 5);
    bool meta_name = len > 5 && strcmp(nm + len - 5, ".json") == 0 &&
                     mh_name_ident(nm, len - 5);
    bool any = so_name || lua_name || luac_name || meta_name;
    /* Bytecode caches -- modhost's own beside its sources, CPython's --
     * are never packages, and not worth walking. */
    if (dt == DT_DIR && !any && mh_name_ident(nm, len) &&
        strcmp(nm, "__mhcache__") != 0 && strcmp(nm, "__pycache__") != 0)
        return T_DIR;
    if (dt != DT_REG)
        return so_name || lua_name || luac_name ? T_ODD : 0;
    return so_name ? T_FILE : lua_name ? T_LUA : luac_name ? T_LUAC
         : meta_name ? T_META : 0;
}

/* What entry nm of directory fd (file type dt, from getdents) is worth
 * keeping as: its type, or 0.  A symbolic link is kept as T_LINK
 * whatever it leads to now: its target can appear, go or change with no
 * event in this directory, so it is looked at when used (entry_now). */
static char entry_type(int fd, const char *nm, unsigned char dt)
{
    if (!type_of(nm, DT_DIR) && !type_of(nm, DT_REG))
        return 0; /* whatever it is, never a module, package or sidecar */
    if (dt == DT_LNK)
        return T_LINK;
    if (dt == DT_UNKNOWN) { /* a filesystem without d_type */
        struct stat st;
        if (fstatat(fd, nm, &st, AT_SYMLINK_NOFOLLOW) != 0)
            return 0;
        if (S_ISLNK(st.st_mode))
            return T_LINK;
        dt = S_ISDIR(st.st_mode) ? DT_DIR
           : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
    }
    return type_of(nm, dt);
}

/* Read directory fd (open on l->dir) into l, with getdents64: opendir
 * would fstat it again, and the caller has.  0, or -1 with errno. */
static int listing_read(mh_host *h, fsf_listing *l, int fd)
{
    enum { BUF = 32768 }; /* as glibc's readdir */
    listing_clear(h, l);
    char *buf = mh_mem_alloc(h, BUF);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    fsf_build b = {0};
    int saved = 0;
    for (;;) {
        ssize_t got = getdents64(fd, buf, BUF);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            saved = got < 0 ? errno : 0;
            break;
        }
        for (ssize_t at = 0; at < got && !saved;) {
            const struct dirent64 *de = (const void *)(buf + at);
            at += de->d_reclen;
            char type = entry_type(fd, de->d_name, de->d_type);
            l->odd |= type == T_ODD;
            if (type && build_add(h, &b, de->d_name, strlen(de->d_name),
                                  type) != 0)
                saved = ENOMEM;
        }
        if (saved)
            break;
    }
    mh_mem_free(h, buf, BUF);
    if (!saved && build_finish(h, &b, l) != 0)
        saved = ENOMEM;
    build_free(h, &b);
    if (saved) {
        errno = saved;
        return -1;
    }
    return 0;
}

/* A directory's mtime in ns (mod 2^64: two mtimes 584 years apart
 * match). */
static uint64_t mtime_of(const struct stat *st)
{
    return (uint64_t)st->st_mtim.tv_sec * 1000000000u +
           (uint64_t)st->st_mtim.tv_nsec;
}

/* The type of entry `name` in l, or 0 when it has none (T_LINK for a
 * symbolic link: see entry_now). */
static char listing_get(const fsf_listing *l, const char *name)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *en = ent_name(l, mid);
        /* Most probes differ in the first byte: no call for those. */
        int c = (unsigned char)name[0] - (unsigned char)en[0];
        if (c == 0 && name[0])
            c = strcmp(name + 1, en + 1);
        if (c == 0)
            return ent_type(l, mid);
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

/* The type of entry `name` of directory dir as it is now, by a stat of
 * its path (links followed): a missing or unusable target is no entry. */
static char entry_by_path(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path || stat(path, &st) != 0)
        return 0;
    return type_of(name, S_ISDIR(st.st_mode)   ? DT_DIR
                         : S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN);
}

/* The type of entry `name` in l as it is now: a symbolic link is
 * followed (one stat), a missing or unusable target is no entry. */
static char entry_now(const fsf_listing *l, const char *name)
{
    char t = listing_get(l, name);
    return t == T_LINK ? entry_by_path(l->dir, name) : t;
}

/* Entry name of directory dir as a find sees it: from its listing l; or,
 * with no listing (l NULL: a directory one may search but not list, mode
 * 0711), looked up by its path at every find -- nothing to keep, as
 * nothing can tell when it changes. */
static char entry_in(const fsf_listing *l, const char *dir, const char *name)
{
    return l ? entry_now(l, name) : entry_by_path(dir, name);
}

static size_t bucket_of(const fsf_state *s, const char *dir)
{
    uintptr_t p = (uintptr_t)dir;
    return (size_t)((p >> 3) * 0x9e3779b97f4a7c15ull >> 20) &
           (s->nbuckets - 1);
}

static int buckets_grow(fsf_state *s)
{
    size_t nb = s->nbuckets ? s->nbuckets * 2 : 64;
    fsf_listing **v = mh_mem_calloc(s->host, nb, sizeof *v);
    if (!v)
        return -1;
    fsf_listing **old = s->buckets;
    size_t onb = s->nbuckets;
    s->buckets = v;
    s->nbuckets = nb;
    for (size_t i = 0; i < onb; i++)
        for (fsf_listing *l = old[i], *next; l; l = next) {
            next = l->next;
            size_t b = bucket_of(s, l->dir);
            l->next = v[b];
            v[b] = l;
        }
    mh_mem_free(s->host, old, onb * sizeof *old);
    return 0;
}

/* Stamp a listing of a directory that is not there with a watch of the
 * nearest directory above it, up to the entry's parent: whatever makes
 * it appear changes a name there first. */
static void stamp_missing(fsf_state *s, fsf_listing *l, int e)
{
    char up[PATH_MAX];
    const char *rs = strrchr(s->root, '/');
    size_t parentlen = rs ? (size_t)(rs - s->root) : 0; /* 0: "/" */
    snprintf(up, sizeof up, "%s", l->dir);
    l->missing = e;
    l->stamp = MH_NTF_NONE;
    for (;;) {
        char *slash = strrchr(up, '/');
        if (!slash || slash == up || (size_t)(slash - up) < parentlen)
            return; /* past the entry's parent: stat() at each use */
        *slash = '\0';
        struct stat sb;
        if (stat(up, &sb) != 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                continue; /* absent too: look higher */
            return;       /* there but unreadable: stat() at each use */
        }
        if (!S_ISDIR(sb.st_mode))
            return;
        /* The name below `up` on the way is absent -- unless it is a
         * link to something absent, which can appear elsewhere with no
         * event here. */
        *slash = '/';
        bool link = lstat(up, &sb) == 0 && S_ISLNK(sb.st_mode);
        *slash = '\0';
        const char *d = link ? NULL : mh_int_cstr(s->host, up);
        if (!d)
            return;
        mh_ntf_stamp st;
        mh_ntf_watch(s->host, d, &st);
        if (st.wd >= 0 && stat(l->dir, &sb) != 0 && errno == e)
            l->stamp = st; /* still missing, after the watch began */
        return;
    }
}

/* The listing record of dir, or NULL (lock held). */
static fsf_listing *listing_find(const fsf_state *s, const char *dir)
{
    fsf_listing *l = NULL;
    if (s->nbuckets)
        for (l = s->buckets[bucket_of(s, dir)]; l && l->dir != dir;)
            l = l->next;
    return l;
}

/* The listing record of dir, made if new (lock held); NULL: ENOMEM. */
static fsf_listing *listing_of(fsf_state *s, const char *dir)
{
    fsf_listing *l = listing_find(s, dir);
    if (l)
        return l;
    if ((s->count + 1) * 2 > s->nbuckets * 3 && buckets_grow(s) != 0) {
        errno = ENOMEM;
        return NULL;
    }
    l = mh_mem_calloc(s->host, 1, sizeof *l);
    if (!l) {
        errno = ENOMEM;
        return NULL;
    }
    l->dir = dir;
    l->stamp = MH_NTF_NONE;
    size_t b = bucket_of(s, dir);
    l->next = s->buckets[b];
    s->buckets[b] = l;
    s->count++;
    return l;
}

/* The current listing of interned directory `dir` (lock held).  NULL with
 * errno when the directory cannot be read; ENOTDIR when it is no directory.
 * A listing whose stamp is current (finders/notify.h) costs no system
 * call; else the directory is stat()ed, and read again if it changed. */
static fsf_listing *get_listing(fsf_state *s, const char *dir)
{
    fsf_listing *l = listing_find(s, dir);
    if (l && mh_ntf_current(s->host, &l->stamp)) {
        if (l->missing) {
            errno = l->missing;
            return NULL;
        }
        return l;
    }
    /* Watch first, then look: a change after this point is an event.  A
     * directory known to be on a network filesystem is not watched. */
    mh_ntf_stamp stamp = MH_NTF_NONE;
    if (!l || !l->remote)
        mh_ntf_watch_first(s->host, dir, &stamp);
    struct stat st;
    /* Unwatched, the directory's identity and mtime tell, with one stat()
     * (unless too recent to trust).  A listing that was watched and saw
     * an event is read again: an mtime can stay the same across a change
     * in the same timestamp tick. */
    if (l && !l->missing && !l->unsure && l->stamp.wd < 0 && stamp.wd < 0) {
        int e = stat(dir, &st) != 0 ? errno
              : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
        if (e == ENOENT || e == ENOTDIR) {
            listing_clear(s->host, l);
            stamp_missing(s, l, e);
        }
        if (e) {
            errno = e;
            return NULL;
        }
        if (l->ino == st.st_ino && l->dev == st.st_dev &&
            l->mtime_ns == mtime_of(&st))
            return l;
    }
    int fd = mh_fault(s->host, "opendir")
                 ? (errno = EIO, -1)
                 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        fd = -1;
        errno = e;
    }
    if (fd < 0) {
        int e = errno;
        if ((e == ENOENT || e == ENOTDIR) && (l || (l = listing_of(s, dir)))) {
            listing_clear(s->host, l);
            stamp_missing(s, l, e);
        } else if (l) { /* there, but unreadable for now */
            listing_clear(s->host, l);
            l->missing = 0;
            l->stamp = MH_NTF_NONE;
            l->unsure = true;
        }
        errno = e;
        return NULL;
    }
    if (!l && !(l = listing_of(s, dir))) {
        close(fd);
        return NULL;
    }
    if (stamp.wd >= 0 && !mh_ntf_opened(s->host, fd, dir, &stamp))
        l->remote = true;
    l->missing = 0;
    l->stamp = MH_NTF_NONE;
    l->ups = false;
    MH_TRACE(s->host, "fs: reading directory %s", dir);
    int rc = listing_read(s->host, l, fd);
    int e = errno;
    close(fd);
    if (rc != 0) {
        l->unsure = true;
        errno = e;
        return NULL;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long age = (long long)(now.tv_sec - st.st_mtim.tv_sec) * 1000000000LL +
                    (now.tv_nsec - st.st_mtim.tv_nsec);
    /* While the stamp stays current the listing is trusted whatever its
     * age; once it is not, an unsure listing is read again. */
    l->stamp = stamp;
    l->unsure = age < MH_FSF_UNSURE_NS;
    l->mtime_ns = mtime_of(&st);
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    return l;
}

/* ---- the finder class --------------------------------------------------- */

/* Any absolute path but an existing non-directory (a database, an
 * archive: some other hook's, or nobody's). */
static int fsf_claims(mh_finder_ctx *cx, const char *entry)
{
    MH_UNUSED(cx);
    struct stat st;
    return entry[0] == '/' && (stat(entry, &st) != 0 || S_ISDIR(st.st_mode));
}

static mh_status fsf_open(mh_finder_ctx *cx, const char *entry, void **state)
{
    mh_host *h = MH_FCX(cx)->h;
    mh_error **err = MH_FCX(cx)->err;
    size_t len = strlen(entry);
    while (len > 1 && entry[len - 1] == '/')
        len--;
    fsf_state *s = mh_mem_calloc(h, 1, sizeof *s);
    const char *root = mh_int_str(h, entry, len);
    if (!s || !root) {
        mh_mem_free(h, s, sizeof *s);
        return mh_err(h, err, MH_ENOMEM, "out of memory opening %s", entry);
    }
    /* An entry others may write is refused at once (docs/reliability.md):
     * it could be made to hold anything.  One that does not exist yet is
     * checked file by file when modules appear. */
    struct stat st;
    mh_error *se = NULL;
    if (stat(root, &st) == 0 && mh_sec_code_dir(h, root, &se) != MH_OK) {
        mh_status rc = mh_err(h, err, mh_error_code(se), "%s",
                              mh_error_message(se));
        mh_error_free(se);
        mh_mem_free(h, s, sizeof *s);
        return rc;
    }
    s->host = h;
    s->root = root;
    pthread_mutex_init(&s->lock, NULL);
    mh_ntf_root(h, root);
    *state = s;
    return MH_OK;
}

static void fsf_invalidate(mh_finder_ctx *cx, void *state)
{
    MH_UNUSED(cx);
    fsf_state *s = state;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->nbuckets; i++)
        for (fsf_listing *l = s->buckets[i], *next; l; l = next) {
            next = l->next;
            listing_clear(s->host, l);
            mh_mem_free(s->host, l, sizeof *l);
        }
    mh_mem_free(s->host, s->buckets, s->nbuckets * sizeof *s->buckets);
    s->buckets = NULL;
    s->nbuckets = s->count = 0;
    pthread_mutex_unlock(&s->lock);
}

static void fsf_close(mh_finder_ctx *cx, void *state)
{
    fsf_state *s = state;
    fsf_invalidate(cx, s);
    pthread_mutex_destroy(&s->lock);
    mh_mem_free(s->host, s, sizeof *s);
}

/* root + "/" + rel (rel may be "") into buf[PATH_MAX]: its length, or
 * -1 (ENAMETOOLONG). */
static int join_buf(const fsf_state *s, const char *rel, size_t rlen,
                    char *buf)
{
    size_t n = mh_int_record(s->root)->len; /* interned: its length kept */
    bool slash = rlen && !(n == 1 && s->root[0] == '/');
    size_t total = n + slash + rlen;
    if (total >= PATH_MAX) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, s->root, n);
    buf[n] = '/';
    memcpy(buf + n + slash, rel, rlen);
    buf[total] = '\0';
    return (int)total;
}

/* root + "/" + rel (rel may be ""), interned. */
static const char *join(fsf_state *s, const char *rel, size_t rlen)
{
    char buf[PATH_MAX];
    int n = join_buf(s, rel, rlen, buf);
    if (n < 0)
        return NULL;
    const char *r = mh_int_str(s->host, buf, (size_t)n);
    if (!r)
        errno = ENOMEM;
    return r;
}

/* A join that failed: ENOMEM is an error, a path over PATH_MAX a miss. */
static mh_status join_failed(fsf_state *s, const char *name, mh_buf *why,
                             mh_error **err)
{
    if (errno != ENAMETOOLONG)
        return mh_err(s->host, err, MH_ENOMEM,
                      "out of memory finding '%s' in %s", name, s->root);
    mh_buf_printf(why, "path of '%s' would be longer than %d bytes", name,
                  PATH_MAX - 1);
    return MH_ENOTFOUND;
}

/* The sidecar manifest of module file `leaf` (a name without suffix) in
 * directory dir (listing l, or none: entry_in), as a path under rel (rlen
 * bytes): interned, or NULL.  *unnamed when there is one whose path
 * would pass PATH_MAX (the module must not go without its manifest's
 * checks), or memory ran out (errno ENOMEM). */
static const char *sidecar(fsf_state *s, const fsf_listing *l,
                           const char *dir, const char *leaf,
                           size_t leaf_len, const char *rel, size_t rlen,
                           bool *unnamed)
{
    static const char suffix[] = MH_META_SUFFIX;
    char nm[NAME_MAX + 1], path[PATH_MAX];
    size_t nlen = leaf_len + sizeof suffix - 1;
    *unnamed = false;
    if (nlen >= sizeof nm) /* no such file can be listed */
        return NULL;
    if (rlen == 0 && mh_sidecar_is_site_index(leaf, leaf_len))
        return NULL;
    memcpy(nm, leaf, leaf_len);
    memcpy(nm + leaf_len, suffix, sizeof suffix);
    if (entry_in(l, dir, nm) != T_META)
        return NULL;
    size_t n = rlen + (rlen ? 1 : 0) + nlen;
    const char *r = NULL;
    if (n < sizeof path) {
        memcpy(path, rel, rlen);
        if (rlen)
            path[rlen] = '/';
        memcpy(path + n - nlen, nm, nlen);
        path[n] = '\0';
        r = join(s, path, n);
    } else {
        errno = ENAMETOOLONG;
    }
    *unnamed = !r;
    return r;
}

/* What the entry's root listing says of top-level name top (tlen bytes):
 * ROOT_LACKS when it has no directory or link of that name (the entry
 * can only miss "top.anything"), ROOT_MAY_HAVE when it may have one, or
 * ROOT_NONE, with *e the errno, when there is no listing.  *watched: the
 * listing is kept current by a watch. */
enum root_says { ROOT_LACKS, ROOT_MAY_HAVE, ROOT_NONE };

static enum root_says root_has(fsf_state *s, const char *top, size_t tlen,
                               int *e, bool *watched)
{
    char t[MH_NAME_MAX + 8];
    if (tlen > MH_NAME_MAX) /* never, for a checked name */
        return ROOT_MAY_HAVE;
    memcpy(t, top, tlen);
    t[tlen] = '\0';
    pthread_mutex_lock(&s->lock);
    fsf_listing *rl = get_listing(s, s->root);
    *e = rl ? 0 : errno;
    char te = rl ? listing_get(rl, t) : 0;
    *watched = rl && rl->stamp.wd >= 0;
    pthread_mutex_unlock(&s->lock);
    return !rl                          ? ROOT_NONE
           : te == T_DIR || te == T_LINK ? ROOT_MAY_HAVE
                                         : ROOT_LACKS;
}

void mh_fsf_lacks_reason(mh_buf *why, const char *top, size_t tlen)
{
    mh_buf_add(why, "no directory ", 13);
    mh_buf_add(why, top, tlen);
    mh_buf_add(why, "/", 1);
}

bool mh_fsf_lacks_top(void *state, const char *top, size_t tlen)
{
    int e;
    bool watched;
    return root_has(state, top, tlen, &e, &watched) == ROOT_LACKS && watched;
}

/* Why the entry's own directory gave no listing: a miss. */
static mh_status no_root(mh_buf *why, int e)
{
    mh_buf_puts(why, e == ENOENT    ? "directory does not exist"
                   : e == ENOTDIR   ? "not a directory (nor a module database)"
                                    : strerror(e));
    return MH_ENOTFOUND;
}

/* Directory rel[0..i) on the way to a module's, or the module's own:
 * above it, listed, so watched (the caller lists its own); and when it
 * is a symbolic link in its parent's listing, its path is watched as an
 * entry's is (notify.h, mh_ntf_root), so a link further on, outside the
 * entry -- E/pkg -> /srv/cur/pkg, with /srv/cur retargeted -- is an
 * event too. */
static void watch_on_the_way(fsf_state *s, const char *rel, size_t i,
                             bool own)
{
    const char *up = join(s, rel, i);
    if (!up)
        return;
    size_t j = i; /* rel[j..i): its name */
    while (j > 0 && rel[j - 1] != '/')
        j--;
    const char *parent = j ? join(s, rel, j - 1) : s->root;
    const fsf_listing *pl = parent ? listing_find(s, parent) : NULL;
    char comp[NAME_MAX + 1];
    if (pl && i - j < sizeof comp) {
        memcpy(comp, rel + j, i - j);
        comp[i - j] = '\0';
        if (listing_get(pl, comp) == T_LINK)
            mh_ntf_root(s->host, up);
    }
    if (!own)
        (void)get_listing(s, up);
}

static mh_status fsf_find(mh_finder_ctx *cx, void *state, const char *name,
                          mh_finder_spec *spec)
{
    fsf_state *s = state;
    mh_host *h = s->host;
    mh_buf *why = MH_FCX(cx)->why;
    mh_error **err = MH_FCX(cx)->err;
    /* A package the entry does not have at all is a miss told by the
     * entry's own root listing: no path to build, nothing to stat, and no
     * "missing" record per package per entry.  This is the whole of a
     * miss in every entry in front of the one that has the module, so it
     * comes before anything else is built. */
    const char *dot = strchr(name, '.');
    if (dot) {
        size_t tlen = (size_t)(dot - name);
        int re;
        bool watched;
        enum root_says says = root_has(s, name, tlen, &re, &watched);
        if (says == ROOT_NONE && (re == ENOENT || re == ENOTDIR ||
                                  re == ELOOP || re == ENAMETOOLONG))
            return no_root(why, re); /* the entry itself, not the package */
        /* Unreadable (a directory one may search but not list): the
         * package is looked for by its path below. */
        if (says == ROOT_LACKS) {
            mh_fsf_lacks_reason(why, name, tlen);
            return MH_ENOTFOUND;
        }
    }
    char rel[MH_NAME_MAX + 8], leaf[MH_NAME_MAX + 8];
    size_t rlen = mh_name_relpath(name, "", rel, sizeof rel);
    const char *slash = strrchr(rel, '/');
    size_t dlen = slash ? (size_t)(slash - rel) : 0;
    size_t llen = slash ? rlen - dlen - 1 : rlen; /* < sizeof leaf */
    memcpy(leaf, slash ? slash + 1 : rel, llen + 1);

    const char *dir = join(s, rel, dlen);
    if (!dir)
        return join_failed(s, name, why, err);
    pthread_mutex_lock(&s->lock);
    /* The package directories on the way are listed (so watched) too,
     * before the module's: a name changed there -- a link retargeted, a
     * directory swapped -- is no event in the one the module is in.  Once
     * per stamp of the module's directory, and only with notification
     * (without, its stat() goes through the links already). */
    fsf_listing *l = listing_find(s, dir);
    uint64_t seq;
    if (!(l && l->ups &&
          (l->stamp.wd < 0 || mh_ntf_current(h, &l->stamp))) &&
        dlen && mh_ntf_seq(h, &seq))
        for (size_t i = 1; i <= dlen; i++)
            if (i == dlen || rel[i] == '/')
                watch_on_the_way(s, rel, i, i == dlen);
    l = get_listing(s, dir);
    if (l)
        l->ups = true;
    /* One may search it but not list it: its names are looked up. */
    bool unlisted = !l && errno == EACCES;
    if (!l && !unlisted) {
        int e = errno;
        pthread_mutex_unlock(&s->lock);
        if (e == ENOMEM)
            return mh_err(h, err, MH_ENOMEM, "out of memory reading %s", dir);
        /* No descriptor to read it with: whether it has the module is not
         * known, and a later entry's module of that name must not be
         * taken for it. */
        if (mh_errno_status(e, MH_ENOTFOUND) == MH_EAGAIN)
            return mh_err(h, err, MH_EAGAIN, "module '%s': cannot read "
                          "directory %s: %s", name, dir, mh_errno_text(e));
        if (dlen == 0)
            return no_root(why, e);
        mh_buf_printf(why, "no directory %.*s/ (%s)", (int)dlen, rel,
                      strerror(e));
        return MH_ENOTFOUND;
    }
    char file[sizeof leaf + 6];
    /* In one directory: native code first, then Lua source, then Lua
     * bytecode, then a package directory (docs/architecture.md).  Copy
     * the answers out: once unlocked, another thread may re-read (and
     * free) this listing. */
    static const struct { const char *suffix; char type; } kinds[] = {
        {MH_NATIVE_SUFFIX, T_FILE}, {MH_LUA_SUFFIX, T_LUA},
        {MH_LUAC_SUFFIX, T_LUAC}};
    size_t k = 0;
    memcpy(file, leaf, llen);
    for (; k < MH_ARRAY_LEN(kinds); k++) {
        size_t sl = strlen(kinds[k].suffix); /* file holds leaf + suffix */
        memcpy(file + llen, kinds[k].suffix, sl + 1);
        if (entry_in(l, dir, file) == kinds[k].type)
            break;
    }
    bool is_dir = k == MH_ARRAY_LEN(kinds) && entry_in(l, dir, leaf) == T_DIR;
    size_t odd = 0; /* 1 + the kind whose name is no file, if any */
    for (size_t i = 0; !is_dir && l && l->odd && i < k && !odd; i++) {
        memcpy(file + llen, kinds[i].suffix, strlen(kinds[i].suffix) + 1);
        if (listing_get(l, file) == T_ODD)
            odd = i + 1;
    }
    bool unnamed = false;
    const char *meta = k < MH_ARRAY_LEN(kinds)
                           ? sidecar(s, l, dir, leaf, llen, rel, dlen,
                                     &unnamed)
                           : NULL;
    pthread_mutex_unlock(&s->lock);
    if (unnamed && errno == ENOMEM)
        return mh_err(h, err, MH_ENOMEM, "out of memory finding '%s' in %s",
                      name, s->root);
    if (unnamed) {
        mh_buf_printf(why, "path of the manifest %s%s would be longer than "
                      "%d bytes", rel, MH_META_SUFFIX, PATH_MAX - 1);
        return MH_ENOTFOUND;
    }

    if (k < MH_ARRAY_LEN(kinds)) {
        char rel_f[MH_NAME_MAX + 8];
        size_t n = mh_name_relpath(name, kinds[k].suffix, rel_f,
                                   sizeof rel_f);
        /* Not interned: the host keeps what it needs of it. */
        char *path = MH_FCX(cx)->path;
        if (join_buf(s, rel_f, n, path) < 0)
            return join_failed(s, name, why, err);
        spec->kind = kinds[k].type == T_FILE ? MH_KIND_NATIVE : MH_KIND_LUA;
        spec->flags = kinds[k].type == T_LUAC ? MH_SPEC_BYTECODE : 0;
        spec->origin = spec->file = path;
        spec->meta_file = meta;
        return MH_OK;
    }
    if (is_dir) {
        const char *path = join(s, rel, rlen);
        if (!path)
            return join_failed(s, name, why, err);
        spec->kind = MH_KIND_NAMESPACE;
        spec->origin = path;
        return MH_OK;
    }
    mh_buf_printf(why, "no %s.so, %s.lua or %s.luac%s", rel, rel, rel,
                  unlisted ? " (looked up by name: the directory cannot be "
                             "listed)" : "");
    if (odd)
        mh_buf_printf(why, " (%s%s is not a regular file)", rel,
                      kinds[odd - 1].suffix);
    return MH_ENOTFOUND;
}

/* State of one list walk: the path so far, and the directories on it (by
 * device and inode), so a symlink back to an ancestor is not followed
 * round and round. */
typedef struct walk_ctx {
    fsf_state *s;
    mh_finder_list_fn fn;
    void *ud;
    int stop;
    int depth;
    dev_t dev[MH_FSF_MAX_DEPTH + 1];
    ino_t ino[MH_FSF_MAX_DEPTH + 1];
    char rel[PATH_MAX];
    char prefix[MH_NAME_MAX + 2];
    int unread_errno;           /* MH_EAGAIN: why, and where */
    char unread[PATH_MAX];
} walk_ctx;

static bool on_walk(const walk_ctx *w, const fsf_listing *l)
{
    for (int i = 0; i < w->depth; i++)
        if (w->dev[i] == l->dev && w->ino[i] == l->ino)
            return true;
    return false;
}

/* Depth-first walk of rel (length rlen), whose modules are named
 * prefix.* (prefix of length plen). */
static mh_status walk(walk_ctx *w, size_t rlen, size_t plen)
{
    fsf_state *s = w->s;
    const char *dir = join(s, w->rel, rlen);
    if (!dir)
        return errno == ENOMEM ? MH_ENOMEM : MH_OK;
    fsf_listing *l = get_listing(s, dir);
    if (!l) {
        if (errno == ENOMEM)
            return MH_ENOMEM;
        /* No descriptor to read it with: a listing without its modules
         * would pass for a whole one. */
        if (mh_errno_status(errno, MH_OK) == MH_EAGAIN) {
            w->unread_errno = errno;
            snprintf(w->unread, sizeof w->unread, "%s", dir);
            return MH_EAGAIN;
        }
        /* The entry itself unreadable is worth a word (the caller's); a
         * package directory that vanished while we walked is not, but one
         * that cannot be read is: its modules are missing from the list,
         * and an import of one of them fails.  One that may be searched
         * but not listed (0711) is a layout find supports -- its modules
         * import by name -- and only traced. */
        int e = errno;
        bool searchable = e == EACCES &&
                          faccessat(AT_FDCWD, dir, X_OK, AT_EACCESS) == 0;
        if (w->depth > 0 && searchable)
            MH_TRACE(s->host, "fs: package directory %s may be searched "
                     "but not listed: its modules import by name, and are "
                     "not listed", dir);
        else if (w->depth > 0 && e != ENOENT && e != ENOTDIR)
            mh_log(s->host, MH_LOG_WARN, "cannot list package directory "
                   "%s: %s; its modules are not listed", dir,
                   mh_errno_text(e));
        errno = e;
        return w->depth > 0 ? MH_OK : e == ENOENT ? MH_ENOTFOUND : MH_EIO;
    }
    if (on_walk(w, l)) {
        MH_TRACE(s->host, "fs: %s is a link back to a directory being "
                 "listed; not followed", dir);
        return MH_OK;
    }
    w->dev[w->depth] = l->dev;
    w->ino[w->depth] = l->ino;
    w->depth++;
    /* Recursion only visits longer paths, so it never re-reads (moves) this
     * listing; l stays valid across it. */
    mh_status rc = MH_OK;
    for (size_t i = 0; i < l->n && !w->stop && rc == MH_OK; i++) {
        const char *nm = ent_name(l, i);
        size_t len = strlen(nm);
        char type = ent_type(l, i);
        bool linked = type == T_LINK;
        if (linked)
            type = entry_now(l, nm);
        if (type == T_META || type == T_ODD || !type)
            continue; /* a sidecar, not a module; a directory x.so; or a
                         link to nothing */
        size_t nlen = len - (type == T_FILE ? 3 : type == T_LUA ? 4
                             : type == T_LUAC ? 5 : 0);
        size_t np = plen + (plen ? 1 : 0), nr = rlen + (rlen ? 1 : 0);
        if (np + nlen > MH_NAME_MAX || nr + len >= PATH_MAX)
            continue; /* no importable name could end up here */
        if (plen)
            w->prefix[plen] = '.';
        memcpy(w->prefix + np, nm, nlen);
        w->prefix[np + nlen] = '\0';
        if (rlen)
            w->rel[rlen] = '/';
        memcpy(w->rel + nr, nm, len + 1);
        if (type == T_LUA || type == T_LUAC) { /* shadowed, as in find */
            char tw[NAME_MAX + 1];
            snprintf(tw, sizeof tw, "%.*s.so", (int)nlen, nm);
            bool shadowed = entry_now(l, tw) == T_FILE;
            snprintf(tw, sizeof tw, "%.*s.lua", (int)nlen, nm);
            if (shadowed || (type == T_LUAC && entry_now(l, tw) == T_LUA)) {
                w->rel[rlen] = '\0';
                w->prefix[plen] = '\0';
                continue;
            }
        }
        if (type == T_FILE || type == T_LUA || type == T_LUAC) {
            const char *path = join(s, w->rel, nr + len);
            const char *mname = mh_int_str(s->host, w->prefix, np + nlen);
            bool unnamed = false;
            const char *meta = path && mname
                                   ? sidecar(s, l, l->dir, nm, nlen, w->rel,
                                             rlen, &unnamed)
                                   : NULL;
            if (path && mname && !unnamed) {
                mh_finder_spec f = {
                    .kind = type == T_FILE ? MH_KIND_NATIVE : MH_KIND_LUA,
                    .flags = type == T_LUAC ? MH_SPEC_BYTECODE : 0,
                    .origin = path, .file = path, .meta_file = meta};
                w->stop = w->fn(w->ud, mname, &f);
            } else if (!mname || errno == ENOMEM) {
                rc = MH_ENOMEM; /* else: not importable, not listed */
            }
        } else if (w->depth <= MH_FSF_MAX_DEPTH) {
            /* A package that is a link: its path is watched as an
             * entry's is before it is listed, as a find does
             * (watch_on_the_way), so a link further on retargeted -- E/pkg
             * -> /srv/cur/pkg, /srv/cur swapped -- is an event.  Without
             * it a listing read here passed for current afterwards. */
            const char *sub = linked ? join(s, w->rel, nr + len) : NULL;
            if (sub)
                mh_ntf_root(s->host, sub);
            rc = walk(w, nr + nlen, np + nlen);
        }
        w->rel[rlen] = '\0';
        w->prefix[plen] = '\0';
    }
    w->depth--;
    return rc;
}

static mh_status fsf_list(mh_finder_ctx *cx, void *state,
                          mh_finder_list_fn fn, void *ud)
{
    fsf_state *s = state;
    mh_error **err = MH_FCX(cx)->err;
    walk_ctx *w = mh_mem_calloc(s->host, 1, sizeof *w);
    if (!w)
        return mh_err(s->host, err, MH_ENOMEM, "out of memory listing %s",
                      s->root);
    w->s = s;
    w->fn = fn;
    w->ud = ud;
    pthread_mutex_lock(&s->lock);
    mh_status rc = walk(w, 0, 0);
    int e = errno;
    pthread_mutex_unlock(&s->lock);
    if (rc == MH_EAGAIN)
        mh_err(s->host, err, rc, "cannot list %s: cannot read directory %s: "
               "%s", s->root, w->unread, mh_errno_text(w->unread_errno));
    mh_mem_free(s->host, w, sizeof *w);
    if (rc == MH_EAGAIN)
        return rc;
    if (rc == MH_ENOMEM)
        return mh_err(s->host, err, rc, "out of memory listing %s", s->root);
    if (rc != MH_OK)
        return mh_err(s->host, err, mh_errno_status(e, rc),
                      "cannot list %s: %s", s->root,
                      rc == MH_ENOTFOUND ? "directory does not exist"
                                         : mh_errno_text(e));
    return MH_OK;
}

const mh_finder_class mh_fsf_class = {
    MH_FINDER_CLASS_INIT,
    .name = "fs",
    .description = "directories: a/b/c.so, .lua, .luac; a/b/ a package",
    .claims = fsf_claims,
    .open = fsf_open,
    .find = fsf_find,
    .list = fsf_list,
    .invalidate = fsf_invalidate,
    .close = fsf_close,
};
