/*
 * host/secure.c -- trusted directories for code.
 *
 * A directory can be trusted with code only if no other user can change
 * what is in it: not the directory itself, and not any directory above it
 * (whoever can rename an ancestor can swap the whole subtree).  The walk
 * goes down the real path one component at a time with O_NOFOLLOW, so
 * what is checked is what is there, not what a link pointed to a moment
 * before.  The rule for ancestors is the one sudo applies to its plugins:
 * owned by root or by us, and writable by nobody else unless a root-owned
 * sticky directory (such as /tmp, where nobody else may rename our
 * entries).
 */
#include "host/internal.h"
#include "cache/stamp.h"
#include "host/secure.h"
#include "finders/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>


/* mkdir -p, mode 0700 for what it creates. */
static int mkdir_parents(const char *dir)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* Path component p (n bytes) as a C string in comp; false, errno
 * ENAMETOOLONG, if it is longer than a name can be (comp then holds its
 * start, for messages): a component is never opened cut short. */
static bool component(char comp[NAME_MAX + 1], const char *p, size_t n)
{
    size_t k = n <= NAME_MAX ? n : NAME_MAX;
    memcpy(comp, p, k);
    comp[k] = '\0';
    if (n > NAME_MAX)
        errno = ENAMETOOLONG;
    return n <= NAME_MAX;
}

/* Append "/comp" (n bytes) to the directory path done (*dl bytes, "/" for
 * the root) of PATH_MAX bytes; false if it would not fit. */
static bool descend(char done[PATH_MAX], size_t *dl, const char *comp,
                    size_t n)
{
    size_t sep = strcmp(done, "/") != 0;
    if (*dl + sep + n >= PATH_MAX)
        return false;
    if (sep)
        done[(*dl)++] = '/';
    memcpy(done + *dl, comp, n + 1);
    *dl += n;
    return true;
}

static const char *ancestor_problem(const struct stat *st, uid_t me)
{
    if (!S_ISDIR(st->st_mode))
        return "it is not a directory";
    if (st->st_uid != 0 && st->st_uid != me)
        return "it is owned by another user";
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) &&
        !((st->st_mode & S_ISVTX) && st->st_uid == 0))
        return "it is writable by group or others and not a root-owned "
               "sticky directory";
    return NULL;
}

/* Walk real path rp from "/" with O_NOFOLLOW, checking each directory as
 * an ancestor -- and the last one as the private directory itself when
 * `private_leaf`, else as one more ancestor. */
static mh_status check_chain(mh_host *h, const char *rp, bool private_leaf,
                             mh_error **err)
{
    uid_t me = geteuid();
    int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return mh_err(h, err, mh_errno_status(errno, MH_EIO),
                      "cannot open /: %s", mh_errno_text(errno));
    mh_status rc = MH_OK;
    char done[PATH_MAX] = "/";
    size_t dl = 1;
    for (const char *p = rp + 1;;) {
        struct stat st;
        bool last = *p == '\0';
        if (fstat(fd, &st) != 0) {
            rc = mh_err(h, err, MH_EIO, "cannot check %s: %s", done,
                        strerror(errno));
            break;
        }
        if (last && private_leaf) {
            if (st.st_uid != me || (st.st_mode & 077) != 0)
                rc = mh_err(h, err, MH_EPATH, "refusing to keep code in %s: "
                            "it must be owned by uid %u with mode 0700, but "
                            "it is owned by uid %u with mode %04o", rp,
                            (unsigned)me, (unsigned)st.st_uid,
                            (unsigned)(st.st_mode & 07777));
            break;
        }
        const char *why = ancestor_problem(&st, me);
        if (why) {
            rc = mh_err(h, err, MH_EPATH, "refusing to keep code under %s: "
                        "%s (mode %04o, owner uid %u)", done, why,
                        (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
            break;
        }
        if (last)
            break;
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char comp[NAME_MAX + 1];
        int next = component(comp, p, n)
                       ? openat(fd, comp, O_RDONLY | O_DIRECTORY |
                                              O_NOFOLLOW | O_CLOEXEC)
                       : -1;
        if (next < 0) {
            rc = mh_err(h, err, mh_errno_status(errno, MH_EPATH),
                        "cannot open %s/%s without "
                        "following links: %s", strcmp(done, "/") ? done : "",
                        comp, mh_errno_text(errno));
            break;
        }
        close(fd);
        fd = next;
        if (!descend(done, &dl, comp, n)) {
            rc = mh_err(h, err, MH_EPATH, "path too long: %s", rp);
            break;
        }
        p += n;
        if (*p == '/')
            p++;
    }
    close(fd);
    return rc;
}

static mh_status resolve(mh_host *h, const char *path, char rp[PATH_MAX],
                         uid_t me, mh_status missing, bool keep,
                         mh_error **err);

/* Is path dir or under it? */
static bool under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 &&
           (path[n] == '\0' || path[n] == '/');
}

bool mh_sec_no_dir(const char *path)
{
    return under(path, MH_NO_DIR);
}

/* mh_sec_private_dir, making the directory when `make`; without, a path
 * that does not exist passes when the directories it would be made in do
 * (*exists false, real untouched). */
static mh_status private_dir(mh_host *h, const char *path, char *real,
                             size_t size, bool make, bool *exists_out,
                             mh_error **err)
{
    char rp[PATH_MAX], have[PATH_MAX];

    /* "/nonexistent" is the home of users who have none (Debian's nobody)
     * and the cache directory of a host with no usable HOME or
     * XDG_CACHE_HOME (host.c): nothing is made or kept there, where a
     * root process would otherwise make a cache every user of a setuid
     * program shares. */
    if (mh_sec_no_dir(path))
        return under(path, MH_NO_CACHE_DIR)
                   ? mh_err(h, err, MH_EPATH, "no cache directory: neither "
                            "XDG_CACHE_HOME nor HOME names one this process "
                            "may use (an absolute path; an application may "
                            "set mh_config.cache_dir)")
                   : mh_err(h, err, MH_EPATH, "no cache directory: %s is "
                            "under %s, which is no place for one (the home "
                            "of users who have none)", path, MH_NO_DIR);

    /* Check what exists before creating anything in it: nothing is made
     * under a directory that would be refused. */
    if (snprintf(have, sizeof have, "%s", path) >= (int)sizeof have)
        return mh_err(h, err, MH_EPATH, "path too long: %s", path);
    struct stat st;
    while (lstat(have, &st) != 0) {
        /* Only what is not there is made; what cannot be looked at
         * (EACCES on the way) is no empty place. */
        if (errno != ENOENT)
            return mh_err(h, err, mh_errno_status(errno, MH_EPATH),
                          "cannot use %s: %s", have, mh_errno_text(errno));
        char *slash = strrchr(have, '/');
        if (!slash || slash == have) {
            strcpy(have, "/");
            break;
        }
        *slash = '\0';
    }
    bool exists = strcmp(have, path) == 0;
    if (exists && S_ISLNK(st.st_mode))
        return mh_err(h, err, MH_EPATH, "refusing to keep code in %s: it is "
                      "a symbolic link, not a directory", path);
    /* A part of the cache directory (blobs/, lua/, ...) is refused where
     * the cache directory itself would be: one rule for every part. */
    size_t cn = h && h->cache_dir ? strlen(h->cache_dir) : 0;
    struct stat cst;
    if (cn && strncmp(path, h->cache_dir, cn) == 0 && path[cn] == '/' &&
        lstat(h->cache_dir, &cst) == 0 && S_ISLNK(cst.st_mode))
        return mh_err(h, err, MH_EPATH, "refusing to keep code in %s: the "
                      "cache directory %s is a symbolic link, not a "
                      "directory", path, h->cache_dir);
    if (exists_out)
        *exists_out = exists;
    /* The directory is reached by its path as given from now on, so every
     * link on that path is judged as it is resolved (resolve(), `keep`):
     * one another user could replace would send the cache's files to
     * their directory after this check. */
    uid_t me = geteuid();
    if (!exists) {
        mh_status rc = resolve(h, have, rp, me, MH_EIO, true, err);
        if (rc == MH_OK)
            rc = check_chain(h, rp, false, err);
        if (rc != MH_OK || !make)
            return rc;
        if (mkdir_parents(path) != 0)
            return mh_err(h, err, MH_EIO, "cannot create the private "
                          "directory %s: %s", path, strerror(errno));
    }
    mh_status rrc = resolve(h, path, rp, me, MH_EIO, true, err);
    if (rrc != MH_OK)
        return rrc;
    if (strlen(rp) >= size)
        return mh_err(h, err, MH_EPATH, "path too long: %s", rp);
    mh_status rc = check_chain(h, rp, true, err);
    if (rc == MH_OK)
        memcpy(real, rp, strlen(rp) + 1);
    return rc;
}

mh_status mh_sec_private_dir(mh_host *h, const char *path, char *real,
                             size_t size, mh_error **err)
{
    return private_dir(h, path, real, size, true, NULL, err);
}

mh_status mh_sec_private_dir_if_any(mh_host *h, const char *path,
                                    char *real, size_t size, bool *exists,
                                    mh_error **err)
{
    return private_dir(h, path, real, size, false, exists, err);
}

/* ---- module files ------------------------------------------------------- */

/* A directory a walk passed, by path (interned): the directory a code
 * file was opened from, as the finder named it, and every directory the
 * walk went through, by its real path.  The next file from the same path
 * is opened from that directory again, and the next walk below it starts
 * there instead of at /, if the path still names it (same device and
 * inode, on the descriptor then used) and it still passes the checks
 * itself: the chain above it was checked, and only root or the owner can
 * change a checked chain (mh_invalidate_caches forgets these).  A process
 * that changed its effective user walks again, as does anything else. */
struct mh_sec_dir {
    const char *path;
    dev_t dev;
    ino_t ino;
};

/* The slot of interned path dir in the index (lock held): its own, or
 * the empty one where it would go.  nslot is a power of 2, over twice
 * ncode. */
static uint32_t *code_dir_slot(const mh_host *h, uint32_t *slot,
                               size_t nslot, const char *dir)
{
    size_t mask = nslot - 1;
    size_t i = (size_t)(((uintptr_t)dir >> 3) * 0x9E3779B97F4A7C15u >> 20);
    for (i &= mask; slot[i] && h->sec.code[slot[i] - 1].path != dir;
         i = (i + 1) & mask)
        ;
    return &slot[i];
}

static bool code_dir_find(mh_host *h, const char *dir, uid_t me, dev_t *dev,
                          ino_t *ino)
{
    bool yes = false;
    pthread_mutex_lock(&h->sec.lock);
    if (h->sec.ncode && h->sec.code_euid == me) {
        uint32_t at = *code_dir_slot(h, h->sec.slot, h->sec.nslot, dir);
        if (at) {
            *dev = h->sec.code[at - 1].dev;
            *ino = h->sec.code[at - 1].ino;
            yes = true;
        }
    }
    pthread_mutex_unlock(&h->sec.lock);
    return yes;
}

/* Room for one more entry, in the array and its index (lock held). */
static bool code_dir_room(mh_host *h)
{
    if (h->sec.ncode == h->sec.capcode) {
        size_t cap = h->sec.capcode ? h->sec.capcode * 2 : 16;
        struct mh_sec_dir *v = mh_mem_realloc(
            h, h->sec.code, h->sec.capcode * sizeof *v, cap * sizeof *v);
        if (!v)
            return false;
        h->sec.code = v;
        h->sec.capcode = cap;
    }
    if ((h->sec.ncode + 1) * 2 > h->sec.nslot) {
        size_t n = h->sec.nslot ? h->sec.nslot * 2 : 32;
        uint32_t *v = mh_mem_calloc(h, n, sizeof *v);
        if (!v)
            return false;
        for (size_t i = 0; i < h->sec.ncode; i++)
            *code_dir_slot(h, v, n, h->sec.code[i].path) = (uint32_t)i + 1;
        mh_mem_free(h, h->sec.slot, h->sec.nslot * sizeof *v);
        h->sec.slot = v;
        h->sec.nslot = n;
    }
    return true;
}

static void code_dir_remember(mh_host *h, const char *dir,
                              const struct stat *st, uid_t me)
{
    pthread_mutex_lock(&h->sec.lock);
    if (h->sec.code_euid != me) { /* checked for someone else: start over */
        h->sec.ncode = 0;
        if (h->sec.slot)
            memset(h->sec.slot, 0, h->sec.nslot * sizeof *h->sec.slot);
        h->sec.code_euid = me;
    }
    uint32_t *at = h->sec.ncode
                       ? code_dir_slot(h, h->sec.slot, h->sec.nslot, dir)
                       : NULL;
    if (at && *at) { /* replaced since */
        h->sec.code[*at - 1].dev = st->st_dev;
        h->sec.code[*at - 1].ino = st->st_ino;
    } else if (code_dir_room(h)) { /* else: walked again next time */
        h->sec.code[h->sec.ncode] =
            (struct mh_sec_dir){dir, st->st_dev, st->st_ino};
        *code_dir_slot(h, h->sec.slot, h->sec.nslot, dir) =
            (uint32_t)++h->sec.ncode;
    }
    pthread_mutex_unlock(&h->sec.lock);
}

void mh_sec_forget(mh_host *h)
{
    pthread_mutex_lock(&h->sec.lock);
    h->sec.ncode = 0;
    if (h->sec.slot)
        memset(h->sec.slot, 0, h->sec.nslot * sizeof *h->sec.slot);
    pthread_mutex_unlock(&h->sec.lock);
}

void mh_sec_free(mh_host *h)
{
    mh_mem_free(h, h->sec.code, h->sec.capcode * sizeof *h->sec.code);
    mh_mem_free(h, h->sec.slot, h->sec.nslot * sizeof *h->sec.slot);
    pthread_mutex_destroy(&h->sec.lock);
}

/* How a walk opens a directory: O_PATH, as it only looks names up in it
 * and checks its owner and mode (fstat), so a directory one may search but
 * not list (mode 0711) can hold code as well. */
#define WALK_DIR (O_PATH | O_DIRECTORY | O_CLOEXEC)

/* The checks a code file itself must pass, on its open descriptor. */
static const char *file_problem(const struct stat *st, uid_t me)
{
    return !S_ISREG(st->st_mode) ? "it is not a regular file"
         : st->st_uid != 0 && st->st_uid != me
             ? "it is owned by another user"
         : st->st_mode & (S_IWGRP | S_IWOTH)
             ? "it is writable by group or others"
         : NULL;
}

const char *mh_sec_file_problem(const struct stat *st)
{
    return file_problem(st, geteuid());
}

/* The fast way, from a directory checked before (see struct mh_sec_dir):
 * the file's descriptor, or -1 to take the whole walk (which also reports
 * every error properly). */
static int open_from_known_dir(mh_host *h, const char *dir, const char *base,
                               uid_t me, struct stat *out_st)
{
    dev_t dev;
    ino_t ino;
    struct stat st;
    if (!dir || !code_dir_find(h, dir, me, &dev, &ino))
        return -1;
    int dfd = open(dir, WALK_DIR);
    if (dfd < 0)
        return -1;
    int fd = -1;
    if (fstat(dfd, &st) == 0 && st.st_dev == dev && st.st_ino == ino &&
        !ancestor_problem(&st, me))
        fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
                                   O_NONBLOCK | O_NOCTTY);
    close(dfd);
    if (fd >= 0 && (fstat(fd, &st) != 0 || file_problem(&st, me))) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0)
        *out_st = st;
    return fd;
}

/* Absolute, shorter than PATH_MAX, and no empty, ".", ".." or over-long
 * component: what realpath would give back unchanged if no component is
 * a link. */
static bool plain_path(const char *p)
{
    if (p[0] != '/' || strlen(p) >= PATH_MAX)
        return false;
    for (const char *c = p + 1;; c++) {
        const char *e = strchrnul(c, '/');
        size_t n = (size_t)(e - c);
        if (n == 0 || n > NAME_MAX || (n == 1 && c[0] == '.') ||
            (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        if (!*e)
            return true;
        c = e;
    }
}

/* Where a walk down real path rp may start: the deepest directory above
 * the file that a walk passed before (struct mh_sec_dir), opened afresh
 * and still the same directory passing the checks; else "/".  Its
 * descriptor, its length in rp (0 for "/"), its stat in *st. */
static int walk_start(mh_host *h, const char *rp, uid_t me, size_t *len,
                      struct stat *st)
{
    const char *end = strrchr(rp, '/');
    while (end && end > rp) {
        size_t n = (size_t)(end - rp);
        dev_t dev;
        ino_t ino;
        const char *known = mh_int_lookup(h, rp, n);
        if (known && code_dir_find(h, known, me, &dev, &ino)) {
            int fd = open(known, WALK_DIR);
            if (fd >= 0 && fstat(fd, st) == 0 && st->st_dev == dev &&
                st->st_ino == ino && !ancestor_problem(st, me)) {
                *len = n;
                return fd;
            }
            if (fd >= 0)
                close(fd);
            break; /* changed since: the whole walk */
        }
        const char *prev = end;
        for (end = prev - 1; end > rp && *end != '/'; end--)
            ;
    }
    *len = 0;
    int fd = open("/", WALK_DIR);
    if (fd >= 0 && fstat(fd, st) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* What a refusal of code says to do about it. */
#define MEND_IT                                                           \
    "mend its mode or owner (an application may load anyway with "        \
    "MH_CONFIG_INSECURE_FILES)"

/* Down real path rp one directory at a time, each opened from the one
 * before without following links and checked on its descriptor, and the
 * file opened from the last: the directories checked are the ones the
 * file is read from, whatever is renamed meanwhile.  Every directory
 * passed is remembered (by its path in rp) as a place a later walk may
 * start from.  With `trial` (rp is the path as given, not known to be
 * real), anything but success -- a link, a missing component, and a
 * refusal too, as a link further down may lead out of a directory that
 * would be refused -- is MH_EAGAIN with nothing reported: the caller
 * resolves the path and walks again, and that walk gives the verdict.
 * An rp ending in '/' names a directory: the walk ends there, every
 * directory on the way checked, and *out is -1. */
static mh_status walk(mh_host *h, const char *rp, const char *dir, uid_t me,
                      bool trial, int *out, struct stat *out_st,
                      mh_error **err)
{
    struct stat st;
    size_t start;
    int dfd = walk_start(h, rp, me, &start, &st);
    if (dfd < 0)
        return mh_err(h, err, mh_errno_status(errno, MH_EIO),
                      "cannot open /: %s", mh_errno_text(errno));
    mh_status rc = MH_OK;
    char done[PATH_MAX]; /* the directory dfd is: rp's first start bytes */
    size_t dl = start ? start : 1; /* < PATH_MAX: rp fits in PATH_MAX */
    memcpy(done, start ? rp : "/", dl);
    done[dl] = '\0';
    const char *p = rp + start + 1;
    for (;;) { /* st: dfd's, already fetched */
        const char *slash = strchr(p, '/');
        const char *why = ancestor_problem(&st, me);
        if (why && trial) {
            rc = MH_EAGAIN;
            break;
        }
        if (why) {
            /* rp "D/" names the directory D itself: not "above it". */
            size_t rl = strlen(rp);
            bool self = rl > 1 && rp[rl - 1] == '/' &&
                        strlen(done) == rl - 1 &&
                        strncmp(done, rp, rl - 1) == 0;
            rc = mh_err(h, err, MH_EPATH, "refusing to load code from %s: "
                        "the directory %s %s: %s (mode %04o, owner uid %u); "
                        MEND_IT, rp, done,
                        self ? "itself" : "above it", why,
                        (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
            break;
        }
        if (!*p) /* the directory walked to */
            break;
        struct stat dir_st = st; /* the directory the file is opened from */
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char comp[NAME_MAX + 1];
        int next = component(comp, p, n)
                       ? openat(dfd, comp,
                                (slash ? WALK_DIR
                                       : O_RDONLY | O_NONBLOCK | O_NOCTTY |
                                             O_CLOEXEC) |
                                    O_NOFOLLOW)
                       : -1;
        if (next < 0 && trial) {
            rc = MH_EAGAIN; /* a link: resolved (and judged) next */
            break;
        }
        if (next < 0) {
            int e = errno;
            /* A link met with O_NOFOLLOW: ELOOP as the file, ENOTDIR as a
             * directory (swapped in since the path was resolved). */
            struct stat lst;
            bool link = (e == ELOOP || e == ENOTDIR) &&
                        fstatat(dfd, comp, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
                        S_ISLNK(lst.st_mode);
            rc = mh_err(h, err, mh_errno_status(e, MH_EIO),
                        "cannot open %s%s%s%s: %s", done,
                        strcmp(done, "/") ? "/" : "", comp,
                        link ? " without following links" : "",
                        link ? "it is a symbolic link" : mh_errno_text(e));
            break;
        }
        close(dfd);
        dfd = next;
        if (fstat(dfd, &st) != 0) {
            rc = trial ? MH_EAGAIN
                       : mh_err(h, err, MH_EIO, "cannot check %s%s%s: %s",
                                done, strcmp(done, "/") ? "/" : "", comp,
                                strerror(errno));
            break;
        }
        if (!slash) { /* the file */
            if ((why = file_problem(&st, me)) != NULL && trial) {
                rc = MH_EAGAIN;
                break;
            }
            if (why) {
                rc = mh_err(h, err, MH_EPATH, "refusing to load code from "
                            "%s: %s (mode %04o, owner uid %u); " MEND_IT,
                            rp, why,
                            (unsigned)(st.st_mode & 07777),
                            (unsigned)st.st_uid);
                break;
            }
            if (dir)
                code_dir_remember(h, dir, &dir_st, me);
            *out_st = st;
            *out = dfd;
            return MH_OK;
        }
        if (!descend(done, &dl, comp, n)) { /* rp fits: cannot happen */
            rc = mh_err(h, err, MH_EPATH, "path too long: %s", rp);
            break;
        }
        if (!ancestor_problem(&st, me)) { /* a place to start from */
            const char *idone = mh_int_cstr(h, done);
            if (idone)
                code_dir_remember(h, idone, &st, me);
        }
        p = slash + 1;
    }
    close(dfd);
    return rc;
}

/* For a private directory used by its path as given (resolve()'s
 * `keep`): dir, a directory the path goes through without staying in its
 * real path -- holding the symbolic link `link` (n bytes), or, with link
 * NULL, left by ".." -- must be one no other user can change, or they
 * could point the path elsewhere after the check. */
static __attribute__((noinline)) mh_status
passed_through(mh_host *h, const char *path, const char *dir,
               const char *link, size_t n, mh_error **err)
{
    char what[PATH_MAX + NAME_MAX + 32];
    if (link)
        snprintf(what, sizeof what, "the symbolic link %s%s%.*s", dir,
                 strcmp(dir, "/") ? "/" : "", (int)n, link);
    else
        snprintf(what, sizeof what, "%s and out of it (\"..\")", dir);
    mh_error *ce = NULL;
    mh_status crc = check_chain(h, dir, false, &ce);
    if (crc == MH_EPATH)
        crc = mh_err(h, err, crc, "refusing to keep code in %s: its path "
                     "goes through %s, which another user could change (%s)",
                     path, what, mh_error_message(ce));
    else if (crc != MH_OK)
        crc = mh_err(h, err, crc, "cannot keep code in %s: %s, on its path, "
                     "cannot be checked: %s", path, what,
                     mh_error_message(ce));
    mh_error_free(ce);
    return crc;
}

/* realpath(path) into rp (PATH_MAX bytes), resolving each link as the
 * kernel would and judging it as it goes: another user's symbolic link
 * in a sticky directory others may write (as /tmp) is followed only for
 * its owner or the directory's -- the kernel's protected_symlinks rule,
 * which realpath's readlink does not apply; else anyone could give our
 * code any name there.  With `keep` (a private directory, used by the
 * path as given), every directory holding a link or left by ".." must
 * also be one no other user can change (passed_through).  MH_OK; MH_EPATH
 * naming the link; else the system's error (`missing` for a missing
 * component), naming path. */
static mh_status resolve(mh_host *h, const char *path, char rp[PATH_MAX],
                         uid_t me, mh_status missing, bool keep,
                         mh_error **err)
{
    char cur[PATH_MAX], rest[2 * PATH_MAX], target[PATH_MAX];
    size_t cl;
    int links = 0, e = 0;
    if (path[0] == '/') {
        strcpy(cur, "/");
    } else if (!getcwd(cur, sizeof cur)) {
        e = errno;
        goto sys;
    }
    cl = strlen(cur);
    if (snprintf(rest, sizeof rest, "%s", path) >= (int)sizeof rest) {
        e = ENAMETOOLONG;
        goto sys;
    }
    for (char *p = rest;;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        char *end = strchrnul(p, '/');
        size_t n = (size_t)(end - p);
        if (n == 1 && p[0] == '.') {
            p = end;
            continue;
        }
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            mh_status prc = keep ? passed_through(h, path, cur, NULL, 0, err)
                                 : MH_OK;
            if (prc != MH_OK)
                return prc;
            while (cl > 1 && cur[cl - 1] != '/')
                cl--;
            if (cl > 1)
                cl--; /* the '/' before the last component */
            cur[cl] = '\0';
            p = end;
            continue;
        }
        size_t sep = cl > 1;
        if (n > NAME_MAX || cl + sep + n >= PATH_MAX) {
            e = ENAMETOOLONG;
            goto sys;
        }
        size_t was = cl;
        if (sep)
            cur[cl++] = '/';
        memcpy(cur + cl, p, n);
        cl += n;
        cur[cl] = '\0';
        struct stat st, dst;
        if (lstat(cur, &st) != 0) {
            e = errno;
            goto sys;
        }
        if (!S_ISLNK(st.st_mode)) {
            if (*end && !S_ISDIR(st.st_mode)) {
                e = ENOTDIR;
                goto sys;
            }
            p = end;
            continue;
        }
        /* A link: judged in the directory it sits in, then followed. */
        char saved = cur[was];
        cur[was] = '\0'; /* the directory: "/" when was is 1 */
        int ds = stat(cur, &dst);
        cur[was] = saved;
        if (ds == 0 && (dst.st_mode & S_ISVTX) && (dst.st_mode & S_IWOTH) &&
            st.st_uid != me && st.st_uid != dst.st_uid)
            return mh_err(h, err, MH_EPATH, "refusing to %s %s: %s is a "
                          "symbolic link of uid %u in a sticky directory "
                          "others may write, followed only for its owner or "
                          "the directory's%s",
                          keep ? "keep code in" : "load code from", path, cur,
                          (unsigned)st.st_uid, keep ? "" : " (an application "
                          "may load anyway with MH_CONFIG_INSECURE_FILES)");
        /* A private directory is used by the path as given, links and
         * all: a link in a directory another user may change (or under
         * one) could be pointed elsewhere after the check.  Code files
         * are opened by the real path this returns, so need not ask. */
        if (keep) {
            cur[was] = '\0';
            mh_status prc = passed_through(h, path, cur, p, n, err);
            cur[was] = saved;
            if (prc != MH_OK)
                return prc;
        }
        ssize_t tl = ++links > 40 ? -1 : readlink(cur, target,
                                                  sizeof target - 1);
        if (tl < 0) {
            e = links > 40 ? ELOOP : errno;
            goto sys;
        }
        target[tl] = '\0';
        /* What is left: the target, then the rest after this component. */
        size_t left = strlen(end) + 1;
        if ((size_t)tl + left > sizeof rest) {
            e = ENAMETOOLONG;
            goto sys;
        }
        memmove(rest + tl, end, left);
        memcpy(rest, target, (size_t)tl);
        p = rest;
        if (target[0] == '/') {
            strcpy(cur, "/");
            cl = 1;
        } else {
            cl = was;
            cur[cl] = '\0';
        }
    }
    memcpy(rp, cur, cl + 1);
    return MH_OK;
sys:
    return mh_err(h, err, e == ENOENT ? missing : MH_EIO,
                  "cannot resolve %s: %s", path, strerror(e));
}

mh_status mh_sec_open_code(mh_host *h, const char *path, int *out,
                           mh_error **err)
{
    struct stat st;
    return mh_sec_open_code_stat(h, path, out, &st, err);
}

mh_status mh_sec_open_code_stat(mh_host *h, const char *path, int *out,
                                struct stat *st, mh_error **err)
{
    *out = -1;
    memset(st, 0, sizeof *st);
    st->st_size = -1;
    if (h->flags & MH_CONFIG_INSECURE_FILES) {
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) /* missing: MH_ENOTFOUND, as the checked walk says */
            return mh_err(h, err,
                          mh_errno_status(errno, errno == ENOENT
                                                     ? MH_ENOTFOUND
                                                     : MH_EIO),
                          "cannot open %s: %s", path,
                          mh_errno_text(errno));
        *out = fd;
        return MH_OK;
    }
    uid_t me = geteuid();
    const char *slash0 = strrchr(path, '/');
    const char *dir = slash0 && slash0 > path && slash0[1]
                          ? mh_int_str(h, path, (size_t)(slash0 - path))
                          : NULL;
    int quick = open_from_known_dir(h, dir, slash0 ? slash0 + 1 : path, me,
                                    st);
    if (quick >= 0) {
        *out = quick;
        return MH_OK;
    }
    /* A path with no link in it is its own real path: walked as given,
     * realpath()'s readlink per component is saved.  Anything else --
     * a link on the way, a component missing -- is walked again from its
     * real path, which also gives the errors. */
    mh_status rc = MH_EAGAIN;
    if (plain_path(path)) {
        /* The trial's MH_EAGAIN with nothing reported means "walk again";
         * one it reports (no descriptor for "/") is its verdict. */
        mh_error *te = NULL;
        rc = walk(h, path, dir, me, true, out, st, &te);
        if (te)
            return mh_err_give(te, err);
    }
    if (rc == MH_EAGAIN) {
        char rp[PATH_MAX];
        rc = resolve(h, path, rp, me, MH_ENOTFOUND, false, err);
        if (rc == MH_OK)
            rc = walk(h, rp, dir, me, false, out, st, err);
    }
    return rc;
}

mh_status mh_sec_code_dir(mh_host *h, const char *dir, mh_error **err)
{
    if (h->flags & MH_CONFIG_INSECURE_FILES)
        return MH_OK;
    char rp[PATH_MAX];
    mh_status rrc = resolve(h, dir, rp, geteuid(), MH_EIO, false, err);
    if (rrc != MH_OK)
        return rrc;
    size_t n = strlen(rp);
    if (n + 1 >= sizeof rp)
        return mh_err(h, err, MH_EPATH, "path too long: %s", rp);
    if (rp[n - 1] != '/') { /* "/" is the only real path ending in one */
        rp[n] = '/';
        rp[n + 1] = '\0';
    }
    int fd = -1;
    struct stat st;
    return walk(h, rp, NULL, geteuid(), false, &fd, &st, err);
}

bool mh_sec_cache_subdir(mh_host *h, atomic_int *state, const char *sub,
                         const char *what)
{
    return mh_sec_cache_subdir_ex(h, state, sub, false, what);
}

bool mh_sec_cache_subdir_ex(mh_host *h, atomic_int *state, const char *sub,
                            bool exec, const char *what)
{
    int known = atomic_load(state);
    if (known != 0)
        return known > 0;
    char dir[PATH_MAX], real[PATH_MAX];
    mh_error *e = NULL;
    mh_status rc =
        (size_t)snprintf(dir, sizeof dir, "%s/%s", h->cache_dir, sub) <
                sizeof dir
            ? mh_sec_private_dir(h, dir, real, sizeof real, &e)
            : mh_err(h, &e, MH_EPATH, "the cache directory's path is too "
                     "long: %s", h->cache_dir);
    struct statvfs sv;
    if (rc == MH_OK && exec && statvfs(real, &sv) == 0 &&
        (sv.f_flag & ST_NOEXEC))
        rc = mh_err(h, &e, MH_EPATH, "%s is on a filesystem mounted "
                    "noexec: no code can be mapped from it", real);
    if (rc == MH_EAGAIN || rc == MH_ENOMEM) { /* asked next time */
        mh_error_free(e);
        return false;
    }
    if (rc != MH_OK)
        MH_TRACE(h, "%s: %s", what, mh_error_message(e));
    mh_error_free(e);
    atomic_store(state, rc == MH_OK ? 1 : -1);
    return rc == MH_OK;
}

mh_status mh_sec_code_file(mh_host *h, const char *path, mh_error **err)
{
    int fd;
    mh_status rc = mh_sec_open_code(h, path, &fd, err);
    if (fd >= 0)
        close(fd);
    return rc;
}

static bool sha_is(const unsigned char sha[32], const char *sha_hex)
{
    char hex[65];
    mh_hex(sha, 32, hex);
    return memcmp(hex, sha_hex, 64) == 0;
}

mh_status mh_sec_open_copy(mh_host *h, const char *path, const char *sha_hex,
                           size_t max, bool stamps, int *out,
                           long long *size, const char **why)
{
    *out = -1;
    *size = -1;
    *why = NULL;
    int fd = mh_fault(h, "open")
                 ? (errno = EIO, -1)
                 : open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
                                  O_NONBLOCK | O_NOCTTY);
    struct stat st;
    if (fd < 0) {
        int e = errno;
        *why = e == ENOENT ? "there is none"
             : e == ELOOP  ? "it is a symbolic link"
                           : "it cannot be opened";
        return e == ENOENT ? MH_ENOTFOUND : e == ELOOP ? MH_EFORMAT : MH_EIO;
    }
    struct statfs sf;
    struct stat again;
    struct timespec before;
    unsigned char sha[32];
    mh_status bad = MH_EFORMAT; /* the file's own fault, unless below */
    if (fstat(fd, &st) != 0)
        *why = "it cannot be checked", bad = MH_EIO;
    else if ((*why = file_problem(&st, geteuid())) != NULL)
        ;
    else if ((unsigned long long)st.st_size > max)
        *why = "it is larger than the host's max_module_size";
    /* Not on a filesystem another machine may change or remove it on,
     * under the mapping. */
    else if (fstatfs(fd, &sf) != 0 ||
             mh_ntf_remote_type((unsigned long)sf.f_type))
        *why = "it is on a network filesystem", bad = MH_EIO;
    /* Nor where it could not be mapped to run (the cache moved to a
     * noexec mount since it was written): the bytes are read instead. */
    else if (sf.f_flags & ST_NOEXEC)
        *why = "it is on a filesystem mounted noexec", bad = MH_EIO;
    /* Hashed before, and the very file, unchanged since (cache/stamp.c);
     * only where the filesystem's ctime can vouch for that. */
    else if ((stamps = stamps && mh_stamp_fs_ok((unsigned long)sf.f_type)) &&
             mh_stamp_holds(h, path, sha_hex, &st)) {
        MH_TRACE(h, "%s: verified by its stamp, not hashed", path);
        *out = fd;
        *size = (long long)st.st_size;
        return MH_OK;
    }
    /* Hashed through the descriptor that is mapped: the bytes checked are
     * the bytes loaded (the file is this user's, writable by no other).
     * When the hash began: a stamp needs the file to have been still for
     * the unsure window before it (cache/stamp.c). */
    else if (clock_gettime(CLOCK_REALTIME, &before),
             (*why = mh_io_sha256(fd, (uint64_t)st.st_size, sha)) != NULL)
        bad = MH_EIO;
    else if (fstat(fd, &again) != 0 || again.st_size != st.st_size ||
             again.st_mtim.tv_sec != st.st_mtim.tv_sec ||
             again.st_mtim.tv_nsec != st.st_mtim.tv_nsec ||
             again.st_ctim.tv_sec != st.st_ctim.tv_sec ||
             again.st_ctim.tv_nsec != st.st_ctim.tv_nsec)
        *why = "it changed while it was hashed", bad = MH_EIO;
    else if (!sha_is(sha, sha_hex))
        *why = "its SHA-256 is not the one expected";
    if (*why) {
        close(fd);
        return bad;
    }
    if (stamps)
        mh_stamp_record(h, path, sha_hex, fd, &again, &before);
    *out = fd;
    *size = (long long)st.st_size;
    return MH_OK;
}
