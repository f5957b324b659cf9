/*
 * cache/stamp.c -- verified-copy stamps (mh_stamp_*).
 *
 * A finder may name a local copy of a module's bytes (the HTTP finder's
 * blob cache) with their SHA-256; the host maps the copy once it hashes
 * to that (host/secure.c, mh_sec_open_copy).  Hashing is most of what a
 * cached import costs over a plain file's (about 9 us for 16 KB here), so
 * once a copy has been hashed, a stamp records which file that was, and a
 * later host that finds the same file unchanged maps it without hashing
 * it again -- as a stat-mode bytecode entry spares re-reading a Lua
 * source, or CPython's timestamp .pyc its .py.
 *
 * The stamp
 * ---------
 * <cache_dir>/verified/<the copy's file name> (its SHA-256 in hex, and
 * for a module database's copy a tag of its origin: cache/blobs.h) holds
 * one record: a magic, the hex digest, the file's device, inode, size,
 * mtime and ctime when it was hashed, and a 64-bit check of those
 * bytes.  A copy whose fstat matches every field is the file that was
 * hashed, unchanged: any write,
 * truncation, chmod, link or replacement moves its ctime (or its inode),
 * and no one can set a ctime back short of setting the clock.  A change
 * in the same clock tick as the hash could keep every field, so a stamp is
 * recorded only for a file whose mtime and ctime were both outside the
 * unsure window (2 s) when its hash began.
 *
 * That holds where the filesystem keeps a ctime of its own: ext2/3/4,
 * XFS, Btrfs, F2FS, tmpfs, overlayfs (the upper layer's), ZFS, bcachefs.
 * Elsewhere -- vfat keeps ctime equal to mtime, which anyone writing the
 * file can set -- a copy is hashed at every import (mh_stamp_fs_ok).  Like
 * a .pyc's timestamps, a stamp trusts the file's metadata: bytes that rot
 * on the disk under an unchanged inode are not noticed, as they are not
 * in a module file a directory entry holds.
 *
 * Stamps only spare work, never decide it: one missing, short, damaged,
 * of another format or of another file means the copy is hashed, as
 * before, and recorded again.  They are written without fsync: an
 * O_TMPFILE filled and then linked in by its /proc/self/fd name, so a
 * writer killed mid-way leaves nothing behind and readers see a whole
 * record or none; where that cannot be done (no O_TMPFILE, no /proc) the
 * host keeps no stamps.  They are kept only in a private directory
 * (mh_sec_private_dir): whoever could write a stamp could choose which
 * bytes a host maps.  That is the trust the unsigned HTTP cache already
 * rests on (its index.json sits in the same cache); a copy the finder
 * vouches for by signature (MH_SPEC_TRUSTED) is always hashed, so the
 * signature's promise never rests on this directory.
 */
#include "host/internal.h"
#include "cache/intern.h"
#include "cache/stamp.h"
#include "host/secure.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STAMP_MAGIC "MHSTAMP1" /* format 1 */
#define STAMP_DIR "verified"

typedef struct stamp {
    char magic[8];
    char sha[64];              /* lowercase hex, no NUL */
    uint64_t dev, ino, size;
    int64_t mtime_sec, mtime_nsec, ctime_sec, ctime_nsec;
    uint64_t check;            /* mh_hash_bytes of everything above */
} stamp;

_Static_assert(offsetof(stamp, check) == 8 + 64 + 7 * 8,
               "a stamp has no padding: its bytes are its fields");

static void stamp_of(stamp *s, const char *sha_hex, const struct stat *st)
{
    memset(s, 0, sizeof *s);
    memcpy(s->magic, STAMP_MAGIC, sizeof s->magic);
    memcpy(s->sha, sha_hex, sizeof s->sha);
    s->dev = (uint64_t)st->st_dev;
    s->ino = (uint64_t)st->st_ino;
    s->size = (uint64_t)st->st_size;
    s->mtime_sec = (int64_t)st->st_mtim.tv_sec;
    s->mtime_nsec = (int64_t)st->st_mtim.tv_nsec;
    s->ctime_sec = (int64_t)st->st_ctim.tv_sec;
    s->ctime_nsec = (int64_t)st->st_ctim.tv_nsec;
    s->check = mh_hash_bytes(s, offsetof(stamp, check));
}

/* <cache_dir>/verified/<name> in path, once the directory is known to be
 * private (created 0700 if need be, at the first use); false where stamps
 * cannot be kept, or for a digest that is not 64 characters.  The name is
 * the copy's file name where the blob cache gave it (hex digits and dots:
 * one stamp per copy, so two copies of the same bytes -- two origins,
 * cache/blobs.h -- do not overwrite each other's), else the digest (a
 * plugin finder's copy named otherwise). */
static bool stamp_path(mh_host *h, const char *copy, const char *sha_hex,
                       char *path, size_t size)
{
    const char *name = strrchr(copy, '/');
    name = name ? name + 1 : copy;
    if (strlen(sha_hex) != sizeof ((stamp *)0)->sha)
        return false;
    if (strncmp(name, sha_hex, 64) != 0 ||
        strspn(name, "0123456789abcdef.") != strlen(name))
        name = sha_hex;
    return mh_sec_cache_subdir(h, &h->stamps, STAMP_DIR,
                               "copies are hashed at every import: no "
                               "stamps kept") &&
           (size_t)snprintf(path, size, "%s/" STAMP_DIR "/%s", h->cache_dir,
                            name) < size;
}

bool mh_stamp_holds(mh_host *h, const char *copy, const char *sha_hex,
                    const struct stat *st)
{
    char path[PATH_MAX];
    if (!stamp_path(h, copy, sha_hex, path, sizeof path))
        return false;
    int fd = mh_fault(h, "open")
                 ? -1
                 : open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
                                  O_NONBLOCK);
    if (fd < 0)
        return false;
    stamp got, want;
    /* One more byte than a stamp: a longer file is not one.  One read: a
     * stamp is linked in whole, and a read of a regular file stops short
     * only at its end (were one ever cut short anyway, the copy would be
     * hashed, as with no stamp) -- a second read to see the end would be
     * a system call per import. */
    unsigned char buf[sizeof got + 1];
    ssize_t n = mh_fault(h, "read") ? -1 : read(fd, buf, sizeof buf);
    close(fd);
    if (n != (ssize_t)sizeof got)
        return false;
    memcpy(&got, buf, sizeof got);
    stamp_of(&want, sha_hex, st);
    return memcmp(&got, &want, sizeof got) == 0;
}

bool mh_stamp_fs_ok(unsigned long f_type)
{
    switch (f_type) {
    case EXT4_SUPER_MAGIC: /* ext2, ext3 too */
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
    case F2FS_SUPER_MAGIC:
    case TMPFS_MAGIC:
    case OVERLAYFS_SUPER_MAGIC:
    case 0x2fc12fc1UL: /* ZFS */
    case 0xca451a4eUL: /* bcachefs */
        return true;
    default:
        return false;
    }
}

/* Stamps cannot be written here at all (no O_TMPFILE on this filesystem,
 * no /proc to link one by): none are kept, for this host's life. */
static void give_up(mh_host *h, const char *why, int e)
{
    MH_TRACE(h, "copies are hashed at every import: no stamps kept (%s: "
             "%s)", why, mh_errno_text(e));
    atomic_store(&h->stamps, -1);
}

void mh_stamp_record(mh_host *h, const char *copy, const char *sha_hex,
                     int fd, const struct stat *st,
                     const struct timespec *before)
{
    if (mh_io_age_unsure(before->tv_sec, before->tv_nsec, st->st_mtim.tv_sec,
                         st->st_mtim.tv_nsec) ||
        mh_io_age_unsure(before->tv_sec, before->tv_nsec, st->st_ctim.tv_sec,
                         st->st_ctim.tv_nsec))
        return; /* changed lately: the next hash may record it */
    char path[PATH_MAX], dir[PATH_MAX];
    if (!stamp_path(h, copy, sha_hex, path, sizeof path))
        return;
    snprintf(dir, sizeof dir, "%s/" STAMP_DIR, h->cache_dir); /* fits */
    /* The copy's bytes on the disk before a stamp vouches for them: a
     * copy written without fsync (an extracted module, cache/blobs.c)
     * could otherwise come back from a crash as zeros under a stamp that
     * still holds.  Once per copy; cheap for one already written out. */
    if (mh_fault(h, "fsync") || fdatasync(fd) != 0) {
        MH_TRACE(h, "no stamp for %s: it cannot be synced: %s", sha_hex,
                 mh_errno_text(errno ? errno : EIO));
        return;
    }
    stamp s;
    stamp_of(&s, sha_hex, st);
    bool never;
    int e = mh_io_put_new(h, dir, path, &s, sizeof s, true, &never);
    if (never) {
        give_up(h, e == ENOENT ? "no /proc/self/fd to link a stamp by"
                               : "no O_TMPFILE", e);
        return;
    }
    if (e)
        MH_TRACE(h, "cannot record the stamp %s: %s", path, mh_errno_text(e));
    else
        MH_TRACE(h, "recorded the stamp %s", path);
}

void mh_stamp_drop(mh_host *h, const char *copy)
{
    char path[PATH_MAX], sha[65];
    const char *name = strrchr(copy, '/');
    name = name ? name + 1 : copy;
    if (strlen(name) <= 64)
        return;
    memcpy(sha, name, 64);
    sha[64] = '\0';
    /* Only a copy's own stamp (named after it), never one by digest,
     * which another copy of the same bytes may share. */
    if (stamp_path(h, copy, sha, path, sizeof path) &&
        strcmp(strrchr(path, '/') + 1, name) == 0)
        unlink(path);
}

void mh_stamp_forget(mh_host *h)
{
    atomic_store(&h->stamps, 0);
}
