/*
 * finders/sqlar.c -- encoding and decoding SQLite Archive rows.
 *
 * Kept apart from the SQL (finders/sqlite.c, finders/pack.c): this file
 * knows the row format and zlib, and asks a connection one thing only,
 * whether the hashes' schema is intact, which reader and writer share.
 */
#include "host/internal.h"
#include "finders/sqlar.h"

#include <sqlite3.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void mh_blob_free(mh_host *h, mh_blob *b)
{
    mh_mem_free(h, b->data, b->size);
    b->data = NULL;
    b->len = b->size = 0;
}

mh_status mh_sar_decode(mh_host *h, const void *data, size_t len, int64_t sz,
                        size_t max, mh_blob *out, const char **why)
{
    out->data = NULL;
    out->len = out->size = 0;
    /* SQLite gives NULL for a BLOB of no bytes: an empty file, whose
     * loader says what is wrong with it, as with an empty file on disk. */
    if (!data && len) {
        *why = "it has no data";
        return MH_EFORMAT;
    }
    if (sz < 0) {
        *why = "its size (sz) is negative";
        return MH_EFORMAT;
    }
    if ((uint64_t)sz > max) {
        *why = "its size (sz) is over the host's max_module_size";
        return MH_EFORMAT;
    }
    if (len > (uint64_t)sz) {
        *why = "its data is longer than its size (sz) says";
        return MH_EFORMAT;
    }
    size_t n = (size_t)sz;
    unsigned char *buf = mh_mem_alloc(h, n ? n : 1);
    if (!buf)
        return MH_ENOMEM;
    if (len == n) {
        if (n)
            memcpy(buf, data, n);
    } else if (!len) {
        mh_mem_free(h, buf, n);
        *why = "its data is shorter than its size (sz) says";
        return MH_EFORMAT;
    } else {
        uLongf got = (uLongf)n;
        int zr = uncompress(buf, &got, data, (uLong)len);
        if (zr != Z_OK || got != n) {
            mh_mem_free(h, buf, n);
            *why = zr == Z_BUF_ERROR ? "its data inflates to more than its "
                                       "size (sz) says"
                 : zr == Z_MEM_ERROR ? "zlib ran out of memory"
                 : zr == Z_OK ? "its data inflates to less than its size "
                                "(sz) says"
                              : "its zlib data is corrupt";
            return zr == Z_MEM_ERROR ? MH_ENOMEM : MH_EFORMAT;
        }
    }
    out->data = buf;
    out->len = n;
    out->size = n ? n : 1;
    return MH_OK;
}

int mh_sar_encode(const void *data, size_t len, unsigned char **out,
                  size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    uLongf cap = compressBound((uLong)len);
    unsigned char *buf = malloc(cap ? cap : 1);
    if (!buf)
        return -1;
    if (compress2(buf, &cap, data, (uLong)len, Z_BEST_COMPRESSION) != Z_OK) {
        free(buf);
        return -1;
    }
    if (cap >= len) { /* no gain: store as is, as sqlite3 -A does */
        free(buf);
        return 0;
    }
    *out = buf;
    *out_len = cap;
    return 1;
}

bool mh_sar_name_ok(const char *name)
{
    if (!name[0] || name[0] == '/')
        return false;
    for (const char *p = name; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') ||
            (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += n;
        if (*p == '/')
            p++;
        else
            break;
    }
    return name[strlen(name) - 1] != '/';
}

bool mh_sar_shas_intact(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool yes = sqlite3_prepare_v2(db,
                   "SELECT " MH_SAR_SHA_TRIGGERS_OK " AND EXISTS (SELECT 1 "
                   "FROM sqlite_schema WHERE type = 'table' AND name = '"
                   MH_SAR_SHA_TABLE "' AND sql = '" MH_SAR_SHA_TABLE_SQL "')",
                   -1, &st, NULL) == SQLITE_OK &&
               sqlite3_step(st) == SQLITE_ROW &&
               sqlite3_column_int(st, 0) == 1;
    sqlite3_finalize(st);
    return yes;
}

bool mh_sar_path_fits(const char *path, char *why, size_t size)
{
    sqlite3_vfs *vfs = sqlite3_vfs_find(NULL);
    size_t suffix = sizeof "-journal" - 1; /* the longest: -wal, -shm */
    if (!vfs || vfs->mxPathname <= (int)suffix)
        return true;
    size_t limit = (size_t)vfs->mxPathname - suffix, len;
    /* The path SQLite builds: absolute, "." and ".." gone, links followed
     * (as recent SQLite does); of the directory when the file is not
     * there yet. */
    char real[PATH_MAX], dir[PATH_MAX];
    if (realpath(path, real)) {
        len = strlen(real);
    } else {
        const char *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        snprintf(dir, sizeof dir, "%.*s", !slash ? 1 : slash == path ? 1
                 : (int)(slash - path), slash ? path : ".");
        if (!realpath(dir, real))
            return true; /* SQLite will say what is wrong */
        len = strlen(real) + (strcmp(real, "/") != 0) + strlen(base);
    }
    if (len <= limit)
        return true;
    snprintf(why, size, "its real path is %zu bytes, and SQLite opens a "
             "database only by a path of at most %zu (room for its "
             "-journal and -wal files)", len, limit);
    return false;
}
