/*
 * finders/sqlsnap.c -- a snapshot of a module database's names: see
 * sqlsnap.h.  Two sorted arrays (names compare as bytes, as SQLite's
 * BINARY collation does), their strings in one pool.
 */
#include "host/internal.h"
#include "finders/sqlar.h"
#include "finders/sqlsnap.h"

#include <stdio.h>
#include <string.h>

typedef struct name {
    uint32_t off, len;            /* into pool */
} name;

typedef struct hashed {
    name n;
    mh_sqs_row r;
} hashed;

struct mh_sqs {
    char *pool;
    size_t pool_len, pool_size;
    name *names;
    size_t nnames, names_cap;
    hashed *hashes;
    size_t nhashes, hashes_cap;
};

static int cmp(const mh_sqs *q, name a, const char *b, size_t bn)
{
    size_t n = a.len < bn ? a.len : bn;
    int c = memcmp(q->pool + a.off, b, n);
    return c ? c : (a.len > bn) - (a.len < bn);
}

static bool put(mh_host *h, mh_sqs *q, const void *text, int bytes,
                name *out)
{
    if (!text || bytes < 0)
        return false;
    size_t n = (size_t)bytes;
    if (q->pool_len + n > UINT32_MAX)
        return false;
    if (q->pool_len + n > q->pool_size) {
        size_t size = q->pool_size ? q->pool_size : 4096;
        while (size < q->pool_len + n)
            size *= 2;
        char *p = mh_mem_realloc(h, q->pool, q->pool_size, size);
        if (!p)
            return false;
        q->pool = p;
        q->pool_size = size;
    }
    memcpy(q->pool + q->pool_len, text, n);
    out->off = (uint32_t)q->pool_len;
    out->len = (uint32_t)n;
    q->pool_len += n;
    return true;
}

/* Grow array *v of *cap elements of size sz to hold n + 1. */
static bool room(mh_host *h, void **v, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 256;
    void *p = mh_mem_realloc(h, *v, *cap * sz, c * sz);
    if (!p)
        return false;
    *v = p;
    *cap = c;
    return true;
}

void mh_sqs_free(mh_host *h, mh_sqs *q)
{
    if (!q)
        return;
    mh_mem_free(h, q->pool, q->pool_size);
    mh_mem_free(h, q->names, q->names_cap * sizeof *q->names);
    mh_mem_free(h, q->hashes, q->hashes_cap * sizeof *q->hashes);
    mh_mem_free(h, q, sizeof *q);
}

static mh_sqs *read_snapshot(mh_host *h, sqlite3 *db, const char *shown,
                             bool *again);

/* The connection's page cache limit (PRAGMA cache_size), or 0 if it
 * cannot be read. */
static int cache_size(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int v = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA cache_size", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void set_cache_size(sqlite3 *db, int v)
{
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA cache_size = %d", v);
    sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* The page cache while the snapshot is read, in KiB: a module's row
 * fills much of a page (the first bytes of its data are stored with it),
 * so the rows' pages are read once (or twice, for the hashes' join)
 * whatever the cache holds, and SQLite's default of 2 MB would only grow
 * the heap by 2 MB of pages new to the process, which cost more than
 * reading them (docs/performance.md, SQLite).  This much
 * keeps the B-trees' inner pages; the default comes back afterwards, and
 * what the read cached is given back to the allocator. */
#define SNAP_CACHE_KIB 256

mh_sqs *mh_sqs_read(mh_host *h, sqlite3 *db, const char *shown,
                    bool *again)
{
    int old = cache_size(db);
    if (old)
        set_cache_size(db, -SNAP_CACHE_KIB);
    mh_sqs *q = read_snapshot(h, db, shown, again);
    if (old)
        set_cache_size(db, old);
    sqlite3_db_release_memory(db);
    return q;
}

static mh_sqs *read_snapshot(mh_host *h, sqlite3 *db, const char *shown,
                             bool *again)
{
    mh_sqs *q = mh_mem_calloc(h, 1, sizeof *q);
    sqlite3_stmt *a = NULL, *b = NULL, *j = NULL;
    const char *why = "out of memory";
    *again = false;
    if (!q)
        goto fail;
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        why = sqlite3_errmsg(db);
        goto fail;
    }
    /* In the transaction: the journal mode, the triggers, then both
     * tables, one state.  A WAL database's commits go to its -wal file
     * and leave the database file's ctime alone: never held. */
    int step;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &j, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT name FROM sqlar WHERE typeof(name) = "
                           "'text' AND " MH_SAR_SHA_TRIGGERS_OK " ORDER BY "
                           "name COLLATE BINARY", -1, &a, NULL) != SQLITE_OK ||
        /* Only a hash row that names its sqlar row as it is: the SQL
         * path's rule (finders/sqlite.c). */
        sqlite3_prepare_v2(db, "SELECT h.name, h.row, h.mode, h.mtime, "
                           "h.sz, h.len, h.sha256 FROM " MH_SAR_SHA_TABLE
                           " h JOIN sqlar s ON " MH_SAR_SHA_MATCH " WHERE "
                           "typeof(h.name) = 'text' ORDER BY h.name COLLATE "
                           "BINARY", -1, &b, NULL) != SQLITE_OK)
        goto failed;
    if ((step = sqlite3_step(j)) != SQLITE_ROW)
        goto failed;
    const unsigned char *mode = sqlite3_column_text(j, 0);
    if (!mode || sqlite3_stricmp((const char *)mode, "wal") == 0) {
        why = "it is in WAL mode";
        goto rollback;
    }
    while ((step = sqlite3_step(a)) == SQLITE_ROW) {
        name n;
        if (!room(h, (void **)&q->names, &q->names_cap, q->nnames,
                  sizeof *q->names) ||
            !put(h, q, sqlite3_column_text(a, 0), sqlite3_column_bytes(a, 0),
                 &n))
            goto nomem;
        if (q->nnames &&
            cmp(q, q->names[q->nnames - 1], q->pool + n.off, n.len) >= 0) {
            why = "a name is there twice";
            goto rollback;
        }
        q->names[q->nnames++] = n;
    }
    if (step != SQLITE_DONE)
        goto failed;
    if (!q->nnames) { /* no rows, or no triggers: no snapshot */
        why = "its triggers are not all there, or it is empty";
        goto rollback;
    }
    while ((step = sqlite3_step(b)) == SQLITE_ROW) {
        const unsigned char *sha = sqlite3_column_text(b, 6);
        if (!mh_hex64_ok(sha, (size_t)sqlite3_column_bytes(b, 6)))
            continue; /* the finder's statement would not use it either */
        hashed *e;
        if (!room(h, (void **)&q->hashes, &q->hashes_cap, q->nhashes,
                  sizeof *q->hashes))
            goto nomem;
        e = &q->hashes[q->nhashes];
        if (!put(h, q, sqlite3_column_text(b, 0), sqlite3_column_bytes(b, 0),
                 &e->n))
            goto nomem;
        if (q->nhashes && cmp(q, q->hashes[q->nhashes - 1].n,
                              q->pool + e->n.off, e->n.len) >= 0) {
            why = "a hash row is there twice";
            goto rollback;
        }
        e->r.row = sqlite3_column_int64(b, 1);
        e->r.mode = sqlite3_column_int64(b, 2);
        e->r.mtime = sqlite3_column_int64(b, 3);
        e->r.sz = sqlite3_column_int64(b, 4);
        e->r.len = sqlite3_column_int64(b, 5);
        memcpy(e->r.sha, sha, 64);
        e->r.sha[64] = '\0';
        q->nhashes++;
    }
    if (step != SQLITE_DONE)
        goto failed;
    sqlite3_finalize(a);
    sqlite3_finalize(b);
    sqlite3_finalize(j);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    MH_TRACE(h, "sqlite: %s: %zu names and %zu hashes held in memory",
             shown, q->nnames, q->nhashes);
    return q;
failed: /* a statement: busy or locked is worth another try later */
    why = sqlite3_errmsg(db);
    *again = (sqlite3_errcode(db) & 0xff) == SQLITE_BUSY ||
             (sqlite3_errcode(db) & 0xff) == SQLITE_LOCKED ||
             (sqlite3_errcode(db) & 0xff) == SQLITE_NOMEM;
    goto rollback;
nomem:
    why = "out of memory";
    *again = true;
rollback:
    MH_TRACE(h, "sqlite: %s: its names are not held in memory: %s", shown,
             why);
    sqlite3_finalize(a);
    sqlite3_finalize(b);
    sqlite3_finalize(j);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    mh_sqs_free(h, q);
    return NULL;
fail:
    MH_TRACE(h, "sqlite: %s: its names are not held in memory: %s", shown,
             why);
    *again = true;
    mh_sqs_free(h, q);
    return NULL;
}

/* The first name >= key (n bytes): an index into names. */
static size_t lower(const mh_sqs *q, const name *v, size_t count,
                    size_t stride, const char *key, size_t n)
{
    size_t lo = 0, hi = count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const name *m = (const name *)((const char *)v + mid * stride);
        if (cmp(q, *m, key, n) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool mh_sqs_has(const mh_sqs *q, const char *key, size_t n)
{
    size_t i = lower(q, q->names, q->nnames, sizeof *q->names, key, n);
    return i < q->nnames && cmp(q, q->names[i], key, n) == 0;
}

bool mh_sqs_has_under(const mh_sqs *q, const char *dir, size_t n)
{
    size_t i = lower(q, q->names, q->nnames, sizeof *q->names, dir, n);
    if (i >= q->nnames)
        return false;
    name m = q->names[i];
    if (cmp(q, m, dir, n) == 0)
        return true;
    /* Else the first name from "dir/" on: under dir if it starts so. */
    char key[MH_NAME_MAX + 16];
    if (n + 1 > sizeof key)
        return false;
    memcpy(key, dir, n);
    key[n] = '/';
    i = lower(q, q->names, q->nnames, sizeof *q->names, key, n + 1);
    if (i >= q->nnames)
        return false;
    m = q->names[i];
    return m.len >= n + 1 && memcmp(q->pool + m.off, key, n + 1) == 0;
}

const mh_sqs_row *mh_sqs_hash(const mh_sqs *q, const char *key, size_t n)
{
    if (!q->nhashes)
        return NULL;
    size_t i = lower(q, &q->hashes[0].n, q->nhashes, sizeof *q->hashes, key,
                     n);
    return i < q->nhashes && cmp(q, q->hashes[i].n, key, n) == 0
               ? &q->hashes[i].r : NULL;
}
