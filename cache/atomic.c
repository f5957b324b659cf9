/*
 * cache/atomic.c -- whole-file writes and bounded reads for the on-disk
 * caches.
 */
#include "host/internal.h"
#include "cache/atomic.h"
#include "host/secure.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int mkdirs(char *dir)
{
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(dir, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    return mkdir(dir, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

bool mh_atw_first_in(mh_host *h, const char *dir)
{
    const char *d = h ? mh_int_cstr(h, dir) : NULL;
    if (!d)
        return true;
    for (size_t i = 0; i < MH_ATW_SWEPT; i++) {
        const char *cur = atomic_load(&h->swept[i]);
        if (cur == d)
            return false;
        if (!cur && atomic_compare_exchange_strong(&h->swept[i], &cur, d))
            return true;
        if (cur == d) /* another thread took the slot for it */
            return false;
    }
    return true;
}

mh_status mh_atw_write(mh_host *h, const char *path, const void *data,
                       size_t len, mh_error **err)
{
    return mh_atw_write_ex(h, path, data, len, 0, err);
}

mh_status mh_atw_write_ex(mh_host *h, const char *path, const void *data,
                          size_t len, unsigned flags, mh_error **err)
{
    bool sync = !(flags & MH_ATW_NO_SYNC);
    char dir[PATH_MAX], tmp[PATH_MAX + 32];
    const char *slash = strrchr(path, '/');
    if (!slash || (size_t)(slash - path) >= sizeof dir)
        return mh_err(h, err, MH_EINVAL, "bad cache path %s", path);
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = '\0';
    if (dir[0] && mkdirs(dir) != 0)
        return mh_err(h, err, MH_EIO, "cannot create %s: %s", dir,
                      strerror(errno));
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return mh_err(h, err, MH_EIO, "no random bytes: %s", strerror(errno));
    snprintf(tmp, sizeof tmp, "%s/.tmp-%02x%02x%02x%02x%02x%02x", dir, r[0],
             r[1], r[2], r[3], r[4], r[5]);
    int fd = mh_fault(h, "open")
                 ? -1
                 : open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                 O_CLOEXEC, 0600);
    if (fd < 0)
        return mh_err(h, err, MH_EIO, "cannot create %s: %s", tmp,
                      mh_errno_text(errno));
    int e = mh_fault(h, "write") || mh_io_write_all(fd, data, len) != 0
                ? errno : 0;
    if (!e && sync && (mh_fault(h, "fsync") || fsync(fd) != 0))
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && (mh_fault(h, "rename") || rename(tmp, path) != 0))
        e = errno;
    if (e) {
        unlink(tmp);
        return mh_err(h, err, MH_EIO, "cannot write %s: %s", path,
                      strerror(e));
    }
    int dfd = sync ? open(dir[0] ? dir : "/",
                          O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                   : -1;
    if (dfd >= 0) { /* make the rename itself durable */
        fsync(dfd);
        close(dfd);
    }
    /* What killed writers left: once per directory and host, not at every
     * write (a read of the whole directory: a cache of n files would cost
     * n reads of n names to fill). */
    if (mh_atw_first_in(h, dir))
        mh_atw_sweep(dir, ".tmp-");
    return MH_OK;
}

static mh_status read_file(mh_host *h, const char *path, size_t max,
                           int flags, mh_atw_buf *keep, unsigned char **out,
                           size_t *len, mh_error **err);

mh_status mh_atw_read(mh_host *h, const char *path, size_t max,
                      unsigned char **out, size_t *len, mh_error **err)
{
    return read_file(h, path, max, O_NOFOLLOW, NULL, out, len, err);
}

mh_status mh_atw_read_keep(mh_host *h, const char *path, size_t max,
                           mh_atw_buf *keep, unsigned char **out,
                           size_t *len, mh_error **err)
{
    return read_file(h, path, max, O_NOFOLLOW, keep, out, len, err);
}

mh_status mh_atw_read_file(mh_host *h, const char *path, size_t max,
                           unsigned char **out, size_t *len, mh_error **err)
{
    return read_file(h, path, max, 0, NULL, out, len, err);
}

void mh_atw_buf_return(mh_host *h, mh_atw_buf *keep, unsigned char *p,
                       size_t len)
{
    if (keep && p && p == keep->p)
        keep->lent = false;
    else if (p)
        mh_mem_free(h, p, len ? len : 1);
}

void mh_atw_buf_free(mh_host *h, mh_atw_buf *keep)
{
    if (keep->p)
        mh_mem_free(h, keep->p, keep->cap);
    memset(keep, 0, sizeof *keep);
}

/* Memory for n bytes read: keep's buffer, grown to fit, when it can be
 * lent (see mh_atw_buf); else a block of its own.  NULL: out of memory. */
static unsigned char *read_buffer(mh_host *h, mh_atw_buf *keep, size_t n)
{
    size_t want = n ? n : 1;
    if (!keep || keep->lent || want > MH_ATW_KEEP_MAX)
        return mh_mem_alloc(h, want);
    if (want > keep->cap) {
        mh_atw_buf_free(h, keep); /* grown: nothing to keep of the old */
        keep->p = mh_mem_alloc(h, want);
        if (!keep->p)
            return NULL;
        keep->cap = want;
    }
    keep->lent = true;
    return keep->p;
}

static mh_status read_file(mh_host *h, const char *path, size_t max,
                           int flags, mh_atw_buf *keep, unsigned char **out,
                           size_t *len, mh_error **err)
{
    *out = NULL;
    *len = 0;
    int fd = mh_fault(h, "open")
                 ? -1 : open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | flags);
    if (fd < 0)
        return errno == ENOENT
                   ? MH_ENOTFOUND
                   : mh_err(h, err, MH_EIO, "cannot read %s: %s", path,
                            mh_errno_text(errno));
    struct stat st;
    bool got_st = fstat(fd, &st) == 0;
    const char *why;
    /* A cache file another user could have written: its directory was
     * checked when first used (the links on its path too), and is
     * reached by its path since; the file is held to the rule as well,
     * a second line.  It is no cache file of ours: MH_EPATH, which its
     * readers take as absent (but the HTTP floor, which then lets no
     * index in), and made again by its writer (a rename, in place). */
    if (got_st && (flags & O_NOFOLLOW) && S_ISREG(st.st_mode) &&
        (why = mh_sec_file_problem(&st)) != NULL) {
        close(fd);
        mh_log(h, MH_LOG_WARN, "not reading the cache file %s: %s (mode "
               "%04o, owner uid %u)", path, why,
               (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
        return MH_EPATH;
    }
    if (!got_st || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        close(fd);
        return mh_err(h, err, MH_EFORMAT, "%s is not a regular file of at "
                      "most %zu bytes", path, max);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = read_buffer(h, keep, n);
    if (!buf) {
        close(fd);
        return mh_err(h, err, MH_ENOMEM, "out of memory reading %s", path);
    }
    size_t got = mh_fault(h, "read") ? 0 : mh_io_read_all(fd, buf, n);
    close(fd);
    if (got != n) {
        mh_atw_buf_return(h, keep, buf, n);
        return mh_err(h, err, MH_EIO, "%s changed while being read", path);
    }
    *out = buf;
    *len = n;
    return MH_OK;
}

bool mh_atw_leftover(const char *name, const char *prefix,
                     const struct stat *st, time_t now)
{
    /* Only names we make: the prefix, then a random tail of hex digits
     * and dashes, maybe a SQLite journal's suffix; and only files of
     * ours. */
    size_t n = strlen(prefix);
    const char *tail = name + n;
    size_t t = strncmp(name, prefix, n) == 0
                   ? strspn(tail, "0123456789abcdef-") : 0;
    bool ours = t >= 6 && (tail[t] == '\0' ||
                           strcmp(tail + t, "journal") == 0 ||
                           strcmp(tail + t, "wal") == 0);
    /* An age that cannot be told (an mtime near the ends of time_t,
     * which tmpfs keeps) counts as recent: the file stays. */
    time_t age;
    return ours && S_ISREG(st->st_mode) && st->st_uid == geteuid() &&
           !__builtin_sub_overflow(now, st->st_mtime, &age) &&
           age >= MH_ATW_STALE_S;
}

void mh_atw_sweep(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir[0] ? dir : "/");
    if (!d)
        return;
    time_t now = time(NULL);
    size_t n = strlen(prefix);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (strncmp(de->d_name, prefix, n) == 0 && /* no stat for others */
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            mh_atw_leftover(de->d_name, prefix, &st, now))
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

void mh_atw_sweep_beside(const char *file)
{
    char dir[PATH_MAX], prefix[NAME_MAX + 8];
    const char *slash = strrchr(file, '/');
    const char *leaf = slash ? slash + 1 : file;
    if (strlen(leaf) + sizeof ".tmp-" > sizeof prefix)
        return; /* no such name could have been made */
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - file) : 1,
             slash ? file : ".");
    snprintf(prefix, sizeof prefix, "%s.tmp-", leaf);
    mh_atw_sweep(slash == file ? "/" : dir, prefix);
}
