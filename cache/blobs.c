/*
 * cache/blobs.c -- the blob cache directory (mh_blobs_*): see blobs.h.
 *
 * Whoever could write a blob could choose the code a host maps, so the
 * directory must be private (mh_sec_private_dir), and a copy is mapped
 * only after it hashed to the SHA-256 its finder names, or its stamp says
 * it did (cache/stamp.c).  A blob is only ever written under the digest
 * of the bytes written.
 */
#include "host/internal.h"
#include "cache/blobs.h"
#include "cache/intern.h"
#include "cache/stamp.h"
#include "host/secure.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLOB_DIR "blobs"

mh_status mh_blobs_check(mh_host *h, mh_error **err)
{
    char dir[PATH_MAX], real[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s/" BLOB_DIR, h->cache_dir) >=
        sizeof dir)
        return mh_err(h, err, MH_EPATH, "the cache directory's path is too "
                      "long: %s", h->cache_dir);
    return mh_sec_private_dir(h, dir, real, sizeof real, err);
}

bool mh_blobs_ready(mh_host *h)
{
    return mh_sec_cache_subdir_ex(h, &h->blobs, BLOB_DIR, true,
                                  "no blob cache");
}

bool mh_blobs_path(const mh_host *h, const char *hex, const char *tag,
                   size_t tn, char *buf, size_t size)
{
    if (strlen(hex) != 64)
        return false;
    /* The tag only tells origins apart (the bytes are checked against the
     * SHA-256 in the name): the library's 64-bit string hash will do. */
    unsigned long long t = tag ? (unsigned long long)mh_hash_bytes(tag, tn)
                               : 0;
    int n = tag ? snprintf(buf, size, "%s/" BLOB_DIR "/%s.%016llx",
                           h->cache_dir, hex, t)
                : snprintf(buf, size, "%s/" BLOB_DIR "/%s", h->cache_dir,
                           hex);
    return n > 0 && (size_t)n < size;
}

bool mh_blobs_copy_name(const char *sha, const char *tag, char *buf,
                        size_t size)
{
    int n = snprintf(buf, size, "%.64s.%s", sha, tag);
    return n > 0 && (size_t)n < size;
}

/* A tagged copy (<sha>.<tag>) newly kept at path: the copy of the same
 * origin it follows -- other bytes, recorded in blobs/origins/<tag> --
 * goes, with its stamp, so that a module re-packed again and again does
 * not leave a copy per version.  The new one is recorded first: a record
 * that cannot be written removes nothing.  A host that still has the old
 * copy mapped keeps its mapping; one about to open it finds none and
 * reads the row.  Best effort, failures traced: a copy left by a failed
 * or racing write stays until the cache is cleared. */
static void supersede(mh_host *h, const char *path)
{
    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    const char *tag = strchr(name, '.');
    if (!tag || tag - name != 64 || !tag[1])
        return;
    tag++;
    char dir[PATH_MAX], rec[PATH_MAX], old[PATH_MAX], copy[NAME_MAX + 1];
    char was[65];
    if ((size_t)snprintf(dir, sizeof dir, "%s/" BLOB_DIR "/origins",
                         h->cache_dir) >= sizeof dir ||
        (size_t)snprintf(rec, sizeof rec, "%s/%s", dir, tag) >= sizeof rec)
        return;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        MH_TRACE(h, "cannot make %s: %s", dir, mh_errno_text(errno));
        return;
    }
    int fd = open(rec, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    size_t n = fd >= 0 ? mh_io_read_all(fd, was, sizeof was) : 0;
    if (fd >= 0)
        close(fd);
    was[n < sizeof was ? n : 0] = '\0';
    bool never;
    int e = mh_io_put_new(h, dir, rec, name, 64, true, &never);
    if (e) {
        MH_TRACE(h, "cannot record %s as the copy of its origin: %s", name,
                 mh_errno_text(e));
        return;
    }
    if (mh_hex64_ok(was, n) &&
        memcmp(was, name, 64) != 0 &&
        mh_blobs_copy_name(was, tag, copy, sizeof copy) &&
        (size_t)snprintf(old, sizeof old, "%s/" BLOB_DIR "/%s",
                         h->cache_dir, copy) < sizeof old) {
        if (unlink(old) == 0)
            MH_TRACE(h, "removed the copy %s, which %s follows", old, name);
        else if (errno != ENOENT)
            MH_TRACE(h, "cannot remove the copy %s: %s", old,
                     mh_errno_text(errno));
        mh_stamp_drop(h, old);
    }
}

bool mh_blobs_put(mh_host *h, const char *path, const void *data, size_t len,
                  bool replace)
{
    char dir[PATH_MAX];
    if (!mh_blobs_ready(h))
        return false;
    snprintf(dir, sizeof dir, "%s/" BLOB_DIR, h->cache_dir); /* fits */
    bool never;
    int e = mh_io_put_new(h, dir, path, data, len, replace, &never);
    if (e == EEXIST && !replace) {
        MH_TRACE(h, "the blob %s is there already", path);
        return true; /* another host's, made meanwhile: checked at use */
    }
    if (never)
        atomic_store(&h->blobs, -1); /* no O_TMPFILE or /proc: none kept */
    if (e)
        MH_TRACE(h, "cannot keep the blob %s: %s", path, mh_errno_text(e));
    else
        MH_TRACE(h, "kept the blob %s", path);
    if (!e)
        supersede(h, path);
    return e == 0;
}

void mh_blobs_forget(mh_host *h)
{
    atomic_store(&h->blobs, 0);
}
