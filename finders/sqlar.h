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

/*
 * The SHA-256 of native code rows, which mh_pack keeps beside sqlar so a
 * reader can map a copy of a module (cache/blobs.h) without reading its
 * row: one row per module file, valid while the sqlar row it names (row
 * id, mode, mtime, sz, length(data)) is unchanged.  The triggers delete a
 * module's hash whenever a writer -- `sqlite3 -A`, a hand-written UPDATE
 * -- inserts, changes or deletes its row.  A reader uses the table only
 * while all three triggers are there, on sqlar, exactly as written here
 * (sqlite_schema keeps the text without IF NOT EXISTS or the last ';').
 * mh_pack keeps them up to date where all four were there as written
 * when it began; else it drops them before it writes and makes them
 * anew, every hash taken again (finders/pack.c, docs/formats.md).
 */
#define MH_SAR_SHA_TABLE "mh_sha256"
#define MH_SAR_SHA_TABLE_SQL                                              \
    "CREATE TABLE mh_sha256(name TEXT PRIMARY KEY, row INTEGER NOT NULL, " \
    "mode INTEGER NOT NULL, mtime INTEGER NOT NULL, sz INTEGER NOT NULL, " \
    "len INTEGER NOT NULL, sha256 TEXT NOT NULL)"
#define MH_SAR_SHA_TRIG_INSERT                                            \
    "CREATE TRIGGER mh_sha256_insert AFTER INSERT ON sqlar BEGIN DELETE " \
    "FROM mh_sha256 WHERE name = new.name; END"
#define MH_SAR_SHA_TRIG_UPDATE                                            \
    "CREATE TRIGGER mh_sha256_update AFTER UPDATE ON sqlar BEGIN DELETE " \
    "FROM mh_sha256 WHERE name = old.name OR name = new.name; END"
#define MH_SAR_SHA_TRIG_DELETE                                            \
    "CREATE TRIGGER mh_sha256_delete AFTER DELETE ON sqlar BEGIN DELETE " \
    "FROM mh_sha256 WHERE name = old.name; END"
/* Drops the table and its triggers (mh_pack, before it writes rows,
 * where they were not all there as written). */
#define MH_SAR_SHA_DROP                                                   \
    "DROP TRIGGER IF EXISTS mh_sha256_insert; DROP TRIGGER IF EXISTS "    \
    "mh_sha256_update; DROP TRIGGER IF EXISTS mh_sha256_delete; "         \
    "DROP TABLE IF EXISTS mh_sha256;"
/* Makes them (one string of statements for sqlite3_exec). */
#define MH_SAR_SHA_CREATE                                                 \
    MH_SAR_SHA_TABLE_SQL "; " MH_SAR_SHA_TRIG_INSERT "; "                 \
    MH_SAR_SHA_TRIG_UPDATE "; " MH_SAR_SHA_TRIG_DELETE ";"
/* True in SQL while all three triggers are there as written: a scan of
 * the few rows of sqlite_schema (ORs, not an IN list, which SQLite would
 * build a temporary b-tree for at every run). */
#define MH_SAR_SHA_TRIGGERS_OK                                            \
    "(SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND "     \
    "tbl_name = 'sqlar' AND (sql = '" MH_SAR_SHA_TRIG_INSERT "' OR "      \
    "sql = '" MH_SAR_SHA_TRIG_UPDATE "' OR sql = '"                       \
    MH_SAR_SHA_TRIG_DELETE "')) = 3"
/* Are the hashes' table and all three triggers there, as written, in db
 * (one statement; false also when it cannot be told)?  Then a hash row
 * that names its row as it is (MH_SAR_SHA_MATCH) can be trusted. */
struct sqlite3;
bool mh_sar_shas_intact(struct sqlite3 *db);

/* Can SQLite open a database at path, with its -journal and -wal files?
 * Its default VFS refuses a real path over mxPathname bytes, 512 on Unix,
 * with no reason of its own.  False then, with why (size bytes) saying
 * so: "its real path is N bytes, and SQLite ... at most M (...)"; true
 * when it fits or cannot be told. */
bool mh_sar_path_fits(const char *path, char *why, size_t size);
/* The join that takes a hash row only for the sqlar row (s) it names. */
#define MH_SAR_SHA_MATCH                                                  \
    "h.name = s.name AND h.row = s._rowid_ AND h.mode IS s.mode AND "     \
    "h.mtime IS s.mtime AND h.sz IS s.sz AND h.len IS length(s.data)"

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
