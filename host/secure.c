/*
 * host/secure.c -- trusted directories for code.
 *
 * A directory can be trusted with code only if no other user can change
 * what is in it: not the directory itself, and not any directory above it
 * (whoever can rename an ancestor can swap the whole subtree).  The walk
 * goes down the real path one component at a time with O_NOFOLLOW, so
 * what is checked is what is there, not what a link pointed to a moment
 * before.  The rule for ancestors is the one sudo applies to its plugins:
 * owned by root or by us, and writable by nobody else unless sticky (a
 * sticky directory such as /tmp lets nobody else rename our entries).
 */
#include "host/internal.h"
#include "host/secure.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

static const char *ancestor_problem(const struct stat *st, uid_t me)
{
    if (!S_ISDIR(st->st_mode))
        return "it is not a directory";
    if (st->st_uid != 0 && st->st_uid != me)
        return "it is owned by another user";
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) && !(st->st_mode & S_ISVTX))
        return "it is writable by group or others and not sticky";
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
        return mh_err(h, err, MH_EIO, "cannot open /: %s", strerror(errno));
    mh_status rc = MH_OK;
    char done[PATH_MAX] = "/";
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
        snprintf(comp, sizeof comp, "%.*s", (int)n, p);
        int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
                                        O_CLOEXEC);
        if (next < 0) {
            rc = mh_err(h, err, MH_EPATH, "cannot open %s/%s without "
                        "following links: %s", strcmp(done, "/") ? done : "",
                        comp, strerror(errno));
            break;
        }
        close(fd);
        fd = next;
        size_t dl = strlen(done);
        snprintf(done + dl, sizeof done - dl, "%s%s",
                 strcmp(done, "/") ? "/" : "", comp);
        p += n;
        if (*p == '/')
            p++;
    }
    close(fd);
    return rc;
}

mh_status mh_sec_private_dir(mh_host *h, const char *path, char *real,
                             size_t size, mh_error **err)
{
    char rp[PATH_MAX], have[PATH_MAX];

    /* Check what exists before creating anything in it: nothing is made
     * under a directory that would be refused. */
    if (snprintf(have, sizeof have, "%s", path) >= (int)sizeof have)
        return mh_err(h, err, MH_EPATH, "path too long: %s", path);
    struct stat st;
    while (lstat(have, &st) != 0) {
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
    if (!exists) {
        if (!realpath(have, rp))
            return mh_err(h, err, MH_EIO, "cannot resolve %s: %s", have,
                          strerror(errno));
        mh_status rc = check_chain(h, rp, false, err);
        if (rc != MH_OK)
            return rc;
        if (mkdir_parents(path) != 0)
            return mh_err(h, err, MH_EIO, "cannot create the private "
                          "directory %s: %s", path, strerror(errno));
    }
    if (!realpath(path, rp))
        return mh_err(h, err, MH_EIO, "cannot resolve %s: %s", path,
                      strerror(errno));
    if (strlen(rp) >= size)
        return mh_err(h, err, MH_EPATH, "path too long: %s", rp);
    mh_status rc = check_chain(h, rp, true, err);
    if (rc == MH_OK)
        memcpy(real, rp, strlen(rp) + 1);
    return rc;
}
