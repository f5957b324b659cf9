/*
 * finders/sqlar.h -- the SQLite Archive format (mh_sar_*), shared by the
 * SQLite finder (reading) and mh_pack (writing).
 *
 * One table, as the stock `sqlite3 -A` creates it:
 *     sqlar(name TEXT PRIMARY KEY, mode INT, mtime INT, sz INT, data BLOB)
 * name is a relative path; mode is st_mode (type bits included); sz is the
 * size of the original file (-1 for a symbolic link, whose data is the
 * target); data is the file, zlib-compressed (zlib format, not raw
 * deflate) exactly when length(data) < sz.  Directories have data NULL.
 */
#ifndef MH_FINDERS_SQLAR_H
#define MH_FINDERS_SQLAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "finders/finder.h"

#define MH_SAR_CREATE                                                     \
    "CREATE TABLE IF NOT EXISTS sqlar(name TEXT PRIMARY KEY, mode INT, "  \
    "mtime INT, sz INT, data BLOB)"

#define MH_SAR_S_IFMT 0170000
#define MH_SAR_S_IFDIR 0040000
#define MH_SAR_S_IFREG 0100000
#define MH_SAR_S_IFLNK 0120000

/* Kinds of row, from mode. */
static inline bool mh_sar_is_dir(int64_t mode)
{
    return (mode & MH_SAR_S_IFMT) == MH_SAR_S_IFDIR;
}

static inline bool mh_sar_is_link(int64_t mode)
{
    return (mode & MH_SAR_S_IFMT) == MH_SAR_S_IFLNK;
}

/*
 * Turn a row's stored data into the file's bytes, into out (host memory).
 * Checks everything a hostile row could lie about: sz negative or over
 * max, data longer than sz, data that does not inflate to exactly sz
 * bytes.  MH_OK, MH_ENOMEM, or MH_EFORMAT with *why a static reason.
 */
mh_status mh_sar_decode(struct mh_host *h, const void *data, size_t len,
                        int64_t sz, size_t max, mh_blob *out,
                        const char **why);

/*
 * The bytes to store for a file of len bytes: a malloc'ed zlib stream in
 * *out when that is smaller (return 1), else nothing (return 0: store the
 * file as is).  -1 on out of memory.  (Whether to try at all is the
 * caller's choice: mh_pack stores native code as is by default.)
 */
int mh_sar_encode(const void *data, size_t len, unsigned char **out,
                  size_t *out_len);

/* Is a stored name a safe relative path ("a/b.so": no "", ".", ".."
 * component, no leading "/", no NUL)? */
bool mh_sar_name_ok(const char *name);

#endif /* MH_FINDERS_SQLAR_H */
