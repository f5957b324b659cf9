/*
 * cache/stamp.h -- verified-copy stamps (mh_stamp_*): a record that a
 * finder's local copy of a module (a download cache's file) was hashed
 * and found to be the bytes the finder named, kept so that the next host
 * can map the same unchanged file without hashing it again.
 */
#ifndef MH_CACHE_STAMP_H
#define MH_CACHE_STAMP_H

#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

struct mh_host;

/* Is the copy at path `copy` (a blob cache file), whose fstat is st,
 * recorded as hashing to sha_hex (64 lowercase hex digits), and unchanged
 * since: the same device, inode, size, mtime and ctime?  False when there
 * is no such stamp, or no private directory to keep stamps in.  Stamps
 * are kept per copy, by its file name. */
bool mh_stamp_holds(struct mh_host *h, const char *copy,
                    const char *sha_hex, const struct stat *st);

/* May stamps vouch for files on a filesystem of this type (statfs
 * f_type)?  Only where it keeps a ctime no writer of the file can set. */
bool mh_stamp_fs_ok(unsigned long f_type);

/* Record that the copy at path `copy`, open as fd, whose fstat is st,
 * hashed to sha_hex, its hash begun at (realtime) `before`.  Nothing is
 * recorded if the file's last change (mtime or ctime) was within the
 * unsure window (MH_UNSURE_NS) of `before`, if its bytes cannot be synced
 * to the disk first (fdatasync), or where stamps cannot be kept; failures
 * are traced, never errors (a stamp only spares work). */
void mh_stamp_record(struct mh_host *h, const char *copy,
                     const char *sha_hex, int fd, const struct stat *st,
                     const struct timespec *before);

/* Remove the stamp of the copy at path `copy` (a blob cache file named
 * <sha256>.<tag>, which has gone), if there is one. */
void mh_stamp_drop(struct mh_host *h, const char *copy);

/* Look at the stamps' directory again at the next use
 * (mh_invalidate_caches). */
void mh_stamp_forget(struct mh_host *h);

#endif /* MH_CACHE_STAMP_H */
