/*
 * finders/pack.c -- mh_pack: writing modules into a module database (a
 * SQLite Archive the stock `sqlite3 -A` reads, lists and extracts).
 *
 * Two phases, so the database is locked only while rows go in:
 *   1. read every input and compress it, in memory (nothing is touched if
 *      an input is missing, unreadable or too large); native code is
 *      stored as is unless MH_PACK_COMPRESS_CODE, so an import does not
 *      inflate it (it is copied into a memfd and mapped; inflating 16 KB
 *      is a quarter of an import from a compressed database, see
 *      docs/performance.md);
 *   2. one IMMEDIATE transaction inserting every row, and then making the
 *      table of native code hashes anew (record_shas, finders/sqlar.h).
 *      Readers in other processes see the old rows until the commit, then
 *      the new ones, never a mixture (the rollback journal makes the
 *      commit atomic).
 * A database that does not exist yet is built under a temporary name in
 * the same directory and linked into place only when complete: no reader
 * ever sees a half-made database, a failure leaves nothing, and a
 * database another pack created meanwhile is never removed (link() does
 * not replace; the rows then go into that one).
 *
 * Not tied to a host: it uses the C allocator.
 */
#include "host/internal.h"
#include "finders/finder.h"
#include "finders/sqlar.h"
#include "finders/tree.h"
#include "cache/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define PACK_BUSY_MS 10000

typedef struct row {
    char *name;
    char *from;              /* the input file, for messages */
    int64_t mode, mtime, sz;
    unsigned char *data;     /* stored bytes (compressed or not) */
    size_t len;
} row;

typedef struct pack {
    row *rows;
    size_t n, cap;
    dev_t db_dev;            /* the database itself, never packed */
    ino_t db_ino;
    bool db_exists;
    bool compress_code;      /* MH_PACK_COMPRESS_CODE */
    mh_error **err;
} pack;

static void rows_free(pack *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->rows[i].name);
        free(p->rows[i].from);
        free(p->rows[i].data);
    }
    free(p->rows);
}

/* ---- phase 1: read ------------------------------------------------------ */

static mh_status slurp(pack *p, const char *file, unsigned char **out,
                       size_t *len, struct stat *st)
{
    *out = NULL;
    /* O_NONBLOCK: a FIFO must not hang the call; it is refused below. */
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return mh_err(NULL, p->err, MH_EIO, "cannot open %s: %s", file,
                      strerror(errno));
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return mh_err(NULL, p->err, MH_EIO, "cannot pack %s: not a regular "
                      "file", file);
    }
    if ((uint64_t)st->st_size > MH_DEFAULT_MAX_MODULE) {
        close(fd);
        return mh_err(NULL, p->err, MH_EFORMAT, "%s is larger than %zu bytes",
                      file, MH_DEFAULT_MAX_MODULE);
    }
    size_t n = (size_t)st->st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return mh_err(NULL, p->err, MH_ENOMEM, "out of memory reading %s",
                      file);
    }
    size_t got = mh_io_read_all(fd, buf, n);
    close(fd);
    if (got != n) {
        free(buf);
        return mh_err(NULL, p->err, MH_EIO, "%s changed size while being "
                      "read", file);
    }
    *out = buf;
    *len = n;
    return MH_OK;
}

static mh_status add_file(pack *p, const char *file, const char *name)
{
    if (!mh_sar_name_ok(name))
        return mh_err(NULL, p->err, MH_EINVAL, "cannot store %s as '%s': "
                      "names must be relative paths without '.' or '..' "
                      "components", file, name);
    struct stat st;
    if (p->db_exists && stat(file, &st) == 0 && st.st_dev == p->db_dev &&
        st.st_ino == p->db_ino)
        return MH_OK; /* the database itself */
    unsigned char *data, *z;
    size_t len = 0, zlen = 0;
    mh_status rc = slurp(p, file, &data, &len, &st);
    if (rc != MH_OK)
        return rc;
    size_t nl = strlen(name), sl = sizeof MH_NATIVE_SUFFIX - 1;
    bool code = nl > sl && !strcmp(name + nl - sl, MH_NATIVE_SUFFIX);
    int enc = code && !p->compress_code ? 0
                                        : mh_sar_encode(data, len, &z, &zlen);
    if (enc < 0) {
        free(data);
        return mh_err(NULL, p->err, MH_ENOMEM, "out of memory compressing %s",
                      file);
    }
    if (enc) {
        free(data);
        data = z;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        row *v = realloc(p->rows, cap * sizeof *v);
        if (!v) {
            free(data);
            return mh_err(NULL, p->err, MH_ENOMEM, "out of memory");
        }
        p->rows = v;
        p->cap = cap;
    }
    row *r = &p->rows[p->n];
    r->name = strdup(name);
    r->from = strdup(file);
    if (!r->name || !r->from) {
        free(r->name);
        free(r->from);
        free(data);
        return mh_err(NULL, p->err, MH_ENOMEM, "out of memory");
    }
    r->mode = st.st_mode;
    r->mtime = st.st_mtime;
    r->sz = (int64_t)len;
    r->data = data;
    r->len = enc ? zlen : len;
    p->n++;
    return MH_OK;
}

/* A database's companions (-journal, -wal, -shm) are never modules. */
static bool sqlite_companion(const char *nm)
{
    static const char *const ends[] = {"-journal", "-wal", "-shm"};
    size_t n = strlen(nm);
    for (size_t i = 0; i < MH_ARRAY_LEN(ends); i++) {
        size_t e = strlen(ends[i]);
        if (n > e && strcmp(nm + n - e, ends[i]) == 0)
            return true;
    }
    return false;
}

static bool tree_keep(void *ud, const char *name, size_t len, bool is_dir)
{
    MH_UNUSED(ud);
    MH_UNUSED(len);
    MH_UNUSED(is_dir);
    return name[0] != '.' && !sqlite_companion(name);
}

static mh_status tree_file(void *ud, const char *full, const char *rel,
                           size_t rlen, const struct stat *st)
{
    MH_UNUSED(rlen);
    MH_UNUSED(st);
    return add_file(ud, full, rel);
}

static mh_status add_input(pack *p, const char *in)
{
    struct stat st;
    if (stat(in, &st) != 0)
        return mh_err(NULL, p->err, MH_EIO, "cannot pack %s: %s", in,
                      strerror(errno));
    if (S_ISDIR(st.st_mode)) /* its files, by their paths inside it */
        return mh_tree_walk(in, tree_keep, tree_file, p, p->err);
    if (in[0] == '/') /* absolute: stored by base name */
        return add_file(p, in, strrchr(in, '/') + 1);
    const char *name = in; /* "./a.so" and ".//a.so" are "a.so" */
    while (strncmp(name, "./", 2) == 0)
        for (name += 2; *name == '/'; name++)
            ;
    return add_file(p, in, name);
}

static int by_name(const void *a, const void *b)
{
    const row *x = *(const row *const *)a, *y = *(const row *const *)b;
    return strcmp(x->name, y->name);
}

/* Two inputs under one name (/a/x.so and /b/x.so, both stored by base
 * name): INSERT OR REPLACE would keep one and drop the other unsaid. */
static mh_status names_distinct(pack *p)
{
    if (p->n < 2)
        return MH_OK;
    const row **v = malloc(p->n * sizeof *v);
    if (!v)
        return mh_err(NULL, p->err, MH_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->n; i++)
        v[i] = &p->rows[i];
    qsort(v, p->n, sizeof *v, by_name);
    mh_status rc = MH_OK;
    for (size_t i = 1; i < p->n && rc == MH_OK; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0)
            rc = mh_err(NULL, p->err, MH_EINVAL, "cannot store both %s and "
                        "%s as '%s'; nothing was written", v[i - 1]->from,
                        v[i]->from, v[i]->name);
    free(v);
    return rc;
}

/* ---- phase 2: write ----------------------------------------------------- */

/* The table's highest row id (0 when empty), or -1 with the connection's
 * error (a WITHOUT ROWID table has no row id). */
static sqlite3_int64 max_rowid(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    sqlite3_int64 r = -1;
    if (sqlite3_prepare_v2(db, "SELECT coalesce(max(rowid), 0) FROM sqlar",
                           -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        r = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return r;
}

static mh_status db_fail(sqlite3 *db, const char *shown, const char *what,
                         mh_error **err)
{
    return mh_err(NULL, err, MH_EIO, "module database %s: %s: %s", shown,
                  what, sqlite3_errmsg(db));
}

/* The SHA-256 of a row's file: data as stored, of len bytes, inflated
 * first when compressed (len < sz).  False for a row that does not decode
 * (a reader then reads it and says why) or out of memory. */
static bool row_sha(const void *data, size_t len, int64_t sz,
                    char hex[65])
{
    unsigned char sha[32];
    if (sz < 0 || (uint64_t)sz > MH_DEFAULT_MAX_MODULE || len > (uint64_t)sz)
        return false;
    if (len == (size_t)sz) {
        if (!mh_sha256(data ? data : "", len, sha))
            return false;
    } else {
        uLongf got = (uLongf)sz;
        unsigned char *buf = malloc(sz ? (size_t)sz : 1);
        bool ok = buf && len &&
                  uncompress(buf, &got, data, (uLong)len) == Z_OK &&
                  got == (uLongf)sz && mh_sha256(buf, (size_t)sz, sha);
        free(buf);
        if (!ok)
            return false;
    }
    mh_hex(sha, 32, hex);
    return true;
}

/* Bring the table of native code hashes (MH_SAR_SHA_CREATE) up to date,
 * inside the pack's transaction.  intact (mh_sar_shas_intact at its
 * start): the
 * triggers dropped the hashes of the rows this pack replaced, and of any
 * other writer's; the hash rows that no longer name their row as it is
 * go, and the rows without one are hashed.  Else write_rows dropped the
 * table and triggers: they are made anew and every module row is hashed,
 * those of an older database or of `sqlite3 -A` included -- no hash
 * outlives a time without the triggers.  Only an aid to readers: on a
 * failure of its own its work is rolled back and the pack goes on
 * without it (readers then read every row).  MH_OK; MH_EIO if SQLite
 * gave up the whole transaction (a full disk), with the cause in *err. */
static mh_status record_shas(sqlite3 *db, bool intact, const char *shown,
                             mh_error **err)
{
    sqlite3_stmt *sel = NULL, *ins = NULL;
    if (sqlite3_exec(db, "SAVEPOINT mh_sha", NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(db, shown, "cannot record the modules' SHA-256", err);
    bool ok =
        (intact || sqlite3_exec(db, MH_SAR_SHA_CREATE, NULL, NULL, NULL) ==
                       SQLITE_OK) &&
        sqlite3_exec(db,
            "DELETE FROM mh_sha256 AS h WHERE NOT EXISTS (SELECT 1 FROM "
            "sqlar s WHERE " MH_SAR_SHA_MATCH ") OR length(h.sha256) != 64 "
            "OR h.sha256 GLOB '*[^0-9a-f]*'", NULL, NULL, NULL) ==
            SQLITE_OK &&
        sqlite3_prepare_v2(db,
            "SELECT name, _rowid_, mode, mtime, sz, length(data), data FROM "
            "sqlar WHERE typeof(name) = 'text' AND substr(name, -3) = '"
            MH_NATIVE_SUFFIX "' AND typeof(data) = 'blob' AND "
            "typeof(mode) = 'integer' AND (mode & 61440) = 32768 AND "
            "typeof(sz) = 'integer' AND typeof(mtime) = 'integer' AND NOT "
            "EXISTS (SELECT 1 FROM mh_sha256 h WHERE h.name = sqlar.name)",
            -1, &sel, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db,
            "INSERT OR IGNORE INTO mh_sha256(name, row, mode, mtime, sz, "
            "len, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)", -1, &ins,
            NULL) == SQLITE_OK;
    int step = SQLITE_DONE;
    while (ok && (step = sqlite3_step(sel)) == SQLITE_ROW) {
        char hex[65];
        int64_t sz = sqlite3_column_int64(sel, 4);
        const void *data = sqlite3_column_blob(sel, 6);
        size_t len = (size_t)sqlite3_column_bytes(sel, 6);
        if (!row_sha(data, len, sz, hex))
            continue;
        for (int i = 0; i < 6; i++)
            sqlite3_bind_value(ins, i + 1, sqlite3_column_value(sel, i));
        sqlite3_bind_text(ins, 7, hex, 64, SQLITE_STATIC);
        ok = sqlite3_step(ins) == SQLITE_DONE;
        sqlite3_reset(ins);
    }
    ok = ok && step == SQLITE_DONE;
    mh_status rc = MH_OK;
    if (!ok && sqlite3_get_autocommit(db)) /* SQLite rolled it all back */
        rc = db_fail(db, shown, "recording the modules' SHA-256", err);
    sqlite3_finalize(sel);
    sqlite3_finalize(ins);
    if (rc == MH_OK && !ok)
        sqlite3_exec(db, "ROLLBACK TO mh_sha", NULL, NULL, NULL);
    if (rc == MH_OK)
        sqlite3_exec(db, "RELEASE mh_sha", NULL, NULL, NULL);
    return rc;
}

/* Insert every row into the database at `file` in one transaction.
 * `shown` is the name users gave. */
static mh_status write_rows(pack *p, const char *file, const char *shown)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL, *same = NULL, *del = NULL;
    mh_status rc;
    /* A relative name with a ':' must never be taken for a "file:" URI. */
    char fname[PATH_MAX + 2];
    snprintf(fname, sizeof fname, "%s%s", file[0] == '/' ? "" : "./", file);
    char why[200];
    if (!mh_sar_path_fits(file, why, sizeof why))
        return mh_err(NULL, p->err, MH_EPATH, "module database %s%s: %s; "
                      "nothing was written", shown,
                      strcmp(file, shown) ? " (as it is made)" : "", why);
    errno = 0; /* SQLite's reason for a failure with no system call */
    if (sqlite3_open_v2(fname, &db, SQLITE_OPEN_READWRITE |
                        SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE,
                        NULL) != SQLITE_OK) {
        rc = db_fail(db, shown, "cannot open", p->err);
        sqlite3_close(db);
        return rc;
    }
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    sqlite3_busy_timeout(db, PACK_BUSY_MS);
    /* Out of WAL mode, which a reader that cannot write the database's
     * directory cannot read (it needs the -wal and -shm files).  Only
     * while nothing else has it open: a running host's connection keeps
     * it in WAL mode, and the pack goes on (such hosts read it fine). */
    sqlite3_exec(db, "PRAGMA journal_mode=DELETE", NULL, NULL, NULL);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(db, shown, "cannot start a transaction", p->err);
        sqlite3_close(db);
        return rc;
    }
    /* A row whose every column is unchanged is left alone; a changed one
     * gets a row id above every other the table had when this transaction
     * began -- taken before any row goes, as the replaced row may have had
     * the highest -- so (row id, mtime, sz, length), what a finder reports
     * as the row's identity, changes with it. */
    /* The hashes: kept up to date where their triggers were all there,
     * else dropped before any row is written and made anew (record_shas;
     * a drop that fails -- a view of that name -- leaves no hashes). */
    bool intact = false;
    if (sqlite3_exec(db, MH_SAR_CREATE, NULL, NULL, NULL) == SQLITE_OK &&
        !(intact = mh_sar_shas_intact(db)))
        sqlite3_exec(db, MH_SAR_SHA_DROP, NULL, NULL, NULL);
    sqlite3_int64 next = 0;     /* the row id the next insert takes */
    if (sqlite3_exec(db, MH_SAR_CREATE, NULL, NULL, NULL) == SQLITE_OK &&
        (next = max_rowid(db)) < 0) {
        rc = strstr(sqlite3_errmsg(db), "rowid")
                 ? mh_err(NULL, p->err, MH_EINVAL, "module database %s: its "
                          "sqlar table is WITHOUT ROWID, which modhost reads "
                          "but does not write into (a row's id is how a "
                          "change is told); pack into a new database",
                          shown)
                 : db_fail(db, shown, "not a module database", p->err);
        goto rollback;
    }
    if ((uint64_t)next > (uint64_t)INT64_MAX - p->n) {
        /* Ids set by hand up to the top: the new rows' would overflow. */
        rc = mh_err(NULL, p->err, MH_EINVAL, "module database %s: its row "
                    "ids go up to %lld, leaving none above them for %zu "
                    "new rows; pack into a new database", shown,
                    (long long)next, p->n);
        goto rollback;
    }
    if (sqlite3_exec(db, MH_SAR_CREATE, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
            "INSERT INTO sqlar(rowid, name, mode, mtime, sz, data) "
            "VALUES (?6, ?1, ?2, ?3, ?4, ?5)", -1, &ins, NULL) != SQLITE_OK ||
        /* A table made by hand may have no key on name: every row of the
         * name goes, or the finder, which reads the first, would still
         * serve an old one.  Names compare as bytes, as the finder's do,
         * whatever collation the table gives them. */
        sqlite3_prepare_v2(db, "DELETE FROM sqlar WHERE name = ?1 COLLATE "
                           "BINARY", -1, &del, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
            "SELECT 1 FROM sqlar WHERE name = ?1 COLLATE BINARY AND "
            "mode = ?2 AND mtime = ?3 AND sz = ?4 AND data = ?5 AND "
            "(SELECT count(*) FROM sqlar WHERE name = ?1 COLLATE BINARY) = 1",
            -1, &same,
            NULL) != SQLITE_OK) {
        rc = db_fail(db, shown, "not a module database", p->err);
        goto rollback;
    }
    for (size_t i = 0; i < p->n; i++) {
        const row *r = &p->rows[i];
        int step = SQLITE_DONE;
        /* same, then (if not) del and ins */
        for (int k = 0; k < 3; k++) {
            sqlite3_stmt *st = k == 0 ? same : k == 1 ? del : ins;
            sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
            if (st != del) {
                sqlite3_bind_int64(st, 2, r->mode);
                sqlite3_bind_int64(st, 3, r->mtime);
                sqlite3_bind_int64(st, 4, r->sz);
                sqlite3_bind_blob64(st, 5, r->data, r->len, SQLITE_STATIC);
            }
            if (st == ins)
                sqlite3_bind_int64(st, 6, ++next);
            step = sqlite3_step(st);
            sqlite3_reset(st);
            if (k == 0 && step == SQLITE_ROW) {
                step = SQLITE_DONE; /* unchanged */
                break;
            }
            if (k < 2 && step != SQLITE_DONE)
                break;
        }
        if (step != SQLITE_DONE) {
            /* The rows of the name went (del): a key that still conflicts
             * compares names otherwise (COLLATE NOCASE), and another
             * module's row would go with REPLACE. */
            bool other = (step & 0xff) == SQLITE_CONSTRAINT;
            rc = mh_err(NULL, p->err, other ? MH_EINVAL : MH_EIO,
                        "module database %s: storing %s: %s%s; nothing was "
                        "written", shown, r->name, sqlite3_errmsg(db),
                        other ? " (its sqlar table takes another row's name "
                                "for the same, as a key on name that ignores "
                                "case does)" : "");
            goto rollback;
        }
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(same);
    sqlite3_finalize(del);
    ins = same = del = NULL;
    if ((rc = record_shas(db, intact, shown, p->err)) != MH_OK)
        goto rollback;
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
        sqlite3_close(db);
        return MH_OK;
    }
    rc = db_fail(db, shown, "commit failed", p->err);
rollback:
    sqlite3_finalize(ins);
    sqlite3_finalize(same);
    sqlite3_finalize(del);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* A new database is made aside and linked into place, which a link at
 * its path would not allow: SQLite would build it in place through the
 * link, seen half-made and left on failure. */
static mh_status dangling(const char *db, mh_error **err)
{
    return mh_err(NULL, err, MH_EINVAL, "module database %s: a symbolic "
                  "link to a file that does not exist; pack to the target's "
                  "own path", db);
}

/* A new database: built aside, then linked into place. */
static mh_status write_new(pack *p, const char *db)
{
    char tmp[PATH_MAX];
    unsigned char rnd[6];
    /* Leftovers of packs killed before they linked their database. */
    mh_atw_sweep_beside(db);
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        return mh_err(NULL, p->err, MH_EIO, "no random bytes: %s",
                      strerror(errno));
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%02x%02x%02x%02x%02x%02x", db,
                 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]) >=
        (int)sizeof tmp)
        return mh_err(NULL, p->err, MH_EINVAL, "path too long: %s", db);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) /* named as the database, which it is made to become */
        return mh_err(NULL, p->err, MH_EIO, "cannot create %s (a temporary "
                      "file beside it first): %s", db, strerror(errno));
    close(fd);
    mh_status rc = write_rows(p, tmp, db);
    if (rc == MH_OK && link(tmp, db) != 0) {
        int e = errno;
        struct stat st;
        if (e == EEXIST && lstat(db, &st) == 0 && S_ISLNK(st.st_mode) &&
            stat(db, &st) != 0)
            rc = dangling(db, p->err); /* made a dangling link meanwhile */
        else if (e == EEXIST) /* another pack made it: join it */
            rc = write_rows(p, db, db);
        else
            rc = mh_err(NULL, p->err, MH_EIO, "cannot create %s: %s", db,
                        strerror(e));
    }
    mh_io_unlink_db(tmp); /* a failed connection may leave its journal */
    return rc;
}

mh_status mh_pack(const char *db, const char *const *inputs, size_t n,
                  size_t *count, mh_error **err)
{
    return mh_pack_ex(db, inputs, n, 0, count, err);
}

mh_status mh_pack_ex(const char *db, const char *const *inputs, size_t n,
                     unsigned flags, size_t *count, mh_error **err)
{
    if (count)
        *count = 0;
    if (!db || (!inputs && n))
        return mh_err(NULL, err, MH_EINVAL, "mh_pack: %s is NULL",
                      !db ? "db" : "inputs");
    if (!db[0])
        return mh_err(NULL, err, MH_EINVAL, "mh_pack: the database path is "
                      "empty");
    if (flags & ~MH_PACK_COMPRESS_CODE)
        return mh_err(NULL, err, MH_EINVAL, "mh_pack: unknown flags 0x%x",
                      flags & ~MH_PACK_COMPRESS_CODE);
    for (size_t i = 0; i < n; i++)
        if (!inputs[i])
            return mh_err(NULL, err, MH_EINVAL, "mh_pack: input %zu is NULL",
                          i);

    pack p = {.err = err, .compress_code = flags & MH_PACK_COMPRESS_CODE};
    struct stat st;
    if (stat(db, &st) == 0) {
        if (!S_ISREG(st.st_mode))
            return mh_err(NULL, err, MH_EINVAL, "module database %s: not a "
                          "regular file", db);
        p.db_exists = true;
        p.db_dev = st.st_dev;
        p.db_ino = st.st_ino;
    } else if (errno != ENOENT) {
        return mh_err(NULL, err, mh_errno_status(errno, MH_EIO), "module "
                      "database %s: %s", db, mh_errno_text(errno));
    } else if (lstat(db, &st) == 0 && S_ISLNK(st.st_mode)) {
        return dangling(db, err);
    }
    mh_status rc = MH_OK;
    for (size_t i = 0; i < n && rc == MH_OK; i++)
        rc = add_input(&p, inputs[i]);
    if (rc == MH_OK)
        rc = names_distinct(&p);
    if (rc == MH_OK)
        rc = p.db_exists ? write_rows(&p, db, db) : write_new(&p, db);
    if (rc == MH_OK && count)
        *count = p.n;
    rows_free(&p);
    return rc;
}
