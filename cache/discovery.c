/*
 * cache/discovery.c -- the discovery index file (see discovery.h).
 *
 * One connection per use, opened on demand: listing is rare next to
 * importing, and short-lived connections need no locking between hosts
 * or processes beyond SQLite's own (busy timeout).  A damaged or foreign
 * file is replaced by renaming a new, empty index over it, so a reader
 * never sees a half-made file.
 */
#include "host/internal.h"
#include "host/secure.h"
#include "cache/discovery.h"
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
#include <time.h>
#include <unistd.h>

struct mh_dx {
    mh_host *host;
    sqlite3 *db;
    sqlite3_stmt *put;
    char path[PATH_MAX];
    bool damaged;           /* replace on the next open */
};

static const char SCHEMA[] =
    "CREATE TABLE modules("
    " origin TEXT PRIMARY KEY NOT NULL,"   /* file path or URI */
    " identity TEXT NOT NULL,"             /* when it was read */
    " name TEXT NOT NULL,"
    " source TEXT NOT NULL,"               /* elf-note, sidecar, none */
    " manifest TEXT,"                      /* compact JSON */
    " status INTEGER NOT NULL,"            /* 0, or the failure's mh_status */
    " reason TEXT,"
    " recorded INTEGER NOT NULL);";

static bool is_damage(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_CORRUPT || rc == SQLITE_NOTADB ||
           rc == SQLITE_FORMAT || rc == SQLITE_ERROR;
}

/* Remove what rebuilds killed mid-way left beside the index at path. */
static void sweep(const char *path)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        mh_atw_sweep(dir, MH_DX_FILE ".tmp-");
    }
}

/* Write a new, empty index at path: built under a temporary name and
 * renamed into place.  0 or -1. */
static int fresh(mh_host *h, const char *path)
{
    char tmp[PATH_MAX + 48];
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        MH_TRACE(h, "discovery index: cannot create %s (no random bytes: "
                 "%s)", path, mh_errno_text(errno));
        return -1;
    }
    /* A name of its own, made by us alone (SQLite's open ignores
     * SQLITE_OPEN_EXCLUSIVE, and would take a leftover of the same
     * name): random, and created O_EXCL before SQLite opens it. */
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld-%02x%02x%02x%02x%02x%02x", path,
             (long)getpid(), r[0], r[1], r[2], r[3], r[4], r[5]);
    sqlite3 *db = NULL;
    char sql[sizeof SCHEMA + 160];
    snprintf(sql, sizeof sql, "PRAGMA application_id = %d; "
             "PRAGMA user_version = %d; %s", MH_DX_APP_ID, MH_DX_FORMAT,
             SCHEMA);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                  0600);
    if (fd < 0) {
        MH_TRACE(h, "discovery index: cannot create %s (%s)", tmp,
                 mh_errno_text(errno));
        return -1;
    }
    close(fd);
    int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE |
                             SQLITE_OPEN_NOFOLLOW, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    int crc = sqlite3_close(db);
    if (rc == SQLITE_OK && crc == SQLITE_OK && rename(tmp, path) == 0) {
        sweep(path); /* killed rebuilds' leftovers */
        MH_TRACE(h, "discovery index: new %s", path);
        return 0;
    }
    MH_TRACE(h, "discovery index: cannot create %s (%s)", path,
             rc != SQLITE_OK ? sqlite3_errstr(rc) : mh_errno_text(errno));
    mh_io_unlink_db(tmp);
    return -1;
}

/* Is db an index of our format?  1 yes, 0 no (foreign or damaged), -1
 * cannot tell now (locked by another connection past the busy timeout,
 * out of memory, an I/O error): it is left as it is. */
static int ours(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int ok = 0;
    int rc;
    /* Ours: our ids, the table "modules" declared word for word as we
     * declare it, and nothing else but its primary key's index.  A view
     * or trigger, a CHECK, a DEFAULT, a generated column or an index on
     * an expression (any of which could run without end, or write), or
     * the same columns in another order (rows written by position would
     * land in the wrong ones), means the file is not one we made. */
    rc = sqlite3_prepare_v2(db, "SELECT (SELECT application_id FROM "
                            "pragma_application_id), (SELECT user_version "
                            "FROM pragma_user_version), (SELECT count(*) "
                            "FROM sqlite_schema WHERE name = 'modules' AND "
                            "type = 'table' AND sql = ?1), (SELECT count(*) "
                            "FROM sqlite_schema WHERE NOT ((type = 'table' "
                            "AND name = 'modules') OR (type = 'index' AND "
                            "name = 'sqlite_autoindex_modules_1' AND sql IS "
                            "NULL)))", -1, &st, NULL);
    if (rc == SQLITE_OK)
        sqlite3_bind_text(st, 1, SCHEMA, (int)sizeof SCHEMA - 2, /* no ';' */
                          SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        ok = sqlite3_column_int(st, 0) == MH_DX_APP_ID &&
             sqlite3_column_int(st, 1) == MH_DX_FORMAT &&
             sqlite3_column_int(st, 2) == 1 &&
             sqlite3_column_int(st, 3) == 0;
    else if (!is_damage(rc))
        ok = -1;
    sqlite3_finalize(st);
    return ok;
}

/* Is the index at path still damaged or foreign, asked afresh on a
 * connection of its own before it is replaced?  An error SQLite took for
 * damage may have been a passing one (a read that failed with EIO mid-way
 * is reported as SQLITE_CORRUPT; an open may fail for a moment): a
 * rebuild would then lose the failures recorded there for nothing.  True
 * only when it reads as not ours, or its structure does not check out;
 * false when it is ours and whole, or cannot be told now. */
static bool still_damaged(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    bool bad = false;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY |
                                       SQLITE_OPEN_NOFOLLOW, NULL) ==
        SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        int is = ours(db);
        if (is == 0) {
            bad = true;
        } else if (is == 1 && sqlite3_prepare_v2(db, "PRAGMA quick_check(1)",
                                                 -1, &st, NULL) == SQLITE_OK) {
            int rc = sqlite3_step(st);
            const unsigned char *v = rc == SQLITE_ROW
                                         ? sqlite3_column_text(st, 0) : NULL;
            bad = rc == SQLITE_ROW ? !(v && strcmp((const char *)v, "ok") == 0)
                                   : is_damage(rc);
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return bad;
}

mh_dx *mh_dx_open(mh_host *h, bool create, bool *again)
{
    return mh_dx_open_ex(h, create, false, again, NULL);
}

mh_dx *mh_dx_open_ex(mh_host *h, bool create, bool quick, bool *again,
                     bool *busy)
{
    if (again)
        *again = false;
    if (busy)
        *busy = false;
    if (h->flags & MH_CONFIG_NO_INDEX)
        return NULL;
    char real[PATH_MAX];
    mh_error *e = NULL;
    if (mh_sec_private_dir(h, h->cache_dir, real, sizeof real, &e) != MH_OK) {
        MH_TRACE(h, "discovery index not used: %s", mh_error_message(e));
        mh_error_free(e);
        return NULL;
    }
    mh_dx *dx = mh_mem_calloc(h, 1, sizeof *dx);
    if (!dx) {
        if (again)
            *again = true; /* short of memory: not the file's fault */
        return NULL;
    }
    dx->host = h;
    int n = snprintf(dx->path, sizeof dx->path, "%s/%s", real, MH_DX_FILE);
    if (n < 0 || (size_t)n >= sizeof dx->path)
        goto fail;
    /* Once per host that writes it, not only after a rebuild: a rebuild
     * killed mid-way is followed by one that is not, whose sweep finds
     * its leftovers too young to take, and then by none. */
    if (create && mh_atw_first_in(h, dx->path))
        sweep(dx->path);
    for (int attempt = 0; attempt < 2; attempt++) {
        struct stat st;
        if (lstat(dx->path, &st) != 0) {
            if (!create || fresh(h, dx->path) != 0)
                goto fail;
        } else if (!S_ISREG(st.st_mode)) {
            MH_TRACE(h, "discovery index: %s is not a regular file; not "
                     "used", dx->path);
            goto fail;
        }
        int rc = mh_fault(h, "sqlite")
                     ? SQLITE_CANTOPEN
                     : sqlite3_open_v2(dx->path, &dx->db,
                                       SQLITE_OPEN_READWRITE |
                                           SQLITE_OPEN_NOFOLLOW, NULL);
        int is;
        if (rc == SQLITE_OK) {
            sqlite3_busy_timeout(dx->db, quick ? 0 : 5000);
            sqlite3_extended_result_codes(dx->db, 1);
            if ((is = ours(dx->db)) == 1)
                return dx;
        } else { /* passing: memory or descriptors; else the file's fault */
            int se = dx->db ? sqlite3_system_errno(dx->db) : 0;
            is = rc == SQLITE_NOMEM || se == EMFILE || se == ENFILE ? -1 : 0;
        }
        /* Locked by another process past the busy timeout, short of
         * memory or descriptors: the file is not at fault, so it is kept
         * (sqlite3_open_v2 reads nothing: a file that is no database
         * fails in ours()). */
        if (is < 0) {
            MH_TRACE(h, "discovery index: %s cannot be read now (%s); not "
                     "used this time", dx->path, rc == SQLITE_OK
                         ? sqlite3_errmsg(dx->db) : sqlite3_errstr(rc));
            if (again)
                *again = true;
            if (busy && rc == SQLITE_OK &&
                (sqlite3_errcode(dx->db) & 0xff) == SQLITE_BUSY)
                *busy = true;
        }
        sqlite3_close(dx->db);
        dx->db = NULL;
        if (is < 0 || !create)
            goto fail;
        if (!still_damaged(dx->path)) {
            /* Kept, and opened again (another host may have just made
             * it); if that fails too, not used this time. */
            MH_TRACE(h, "discovery index: %s could not be read, but reads "
                     "whole now; kept", dx->path);
            if (attempt == 0)
                continue;
            if (again)
                *again = true;
            goto fail;
        }
        /* Damaged, or another format: a cache, so start afresh. */
        MH_TRACE(h, "discovery index: %s is damaged or of another format; "
                 "rebuilding it", dx->path);
        if (fresh(h, dx->path) != 0)
            goto fail;
    }
fail:
    mh_mem_free(h, dx, sizeof *dx);
    return NULL;
}

void mh_dx_close(mh_dx *dx)
{
    if (!dx)
        return;
    sqlite3_finalize(dx->put);
    sqlite3_close(dx->db);
    if (dx->damaged && still_damaged(dx->path) &&
        fresh(dx->host, dx->path) != 0)
        unlink(dx->path); /* then the next open that may create makes it */
    mh_mem_free(dx->host, dx, sizeof *dx);
}

bool mh_dx_damaged(const mh_dx *dx)
{
    return dx->damaged;
}

const char *mh_dx_errmsg(const mh_dx *dx)
{
    return sqlite3_errmsg(dx->db);
}

static int failed(mh_dx *dx, int rc)
{
    if (is_damage(rc))
        dx->damaged = true;
    MH_TRACE(dx->host, "discovery index %s: %s", dx->path,
             sqlite3_errmsg(dx->db));
    return -1;
}

/* Another connection's lock, held past the busy timeout: nothing wrong
 * with the index. */
static bool is_busy(int rc)
{
    return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
}

/* failed(), telling another's lock (MH_DX_BUSY) from the rest (-1). */
static int failed_or_busy(mh_dx *dx, int rc)
{
    int r = failed(dx, rc);
    return is_busy(rc) ? MH_DX_BUSY : r;
}

int mh_dx_each(mh_dx *dx, bool by_name, mh_dx_fn fn, void *ud)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(dx->db, by_name
        ? "SELECT origin, identity, name, source, manifest, status, reason, "
          "recorded FROM modules ORDER BY name, origin"
        : "SELECT origin, identity, name, source, manifest, status, reason, "
          "recorded FROM modules", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return failed_or_busy(dx, rc);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        mh_dx_row r = {
            .origin = (const char *)sqlite3_column_text(st, 0),
            .identity = (const char *)sqlite3_column_text(st, 1),
            .name = (const char *)sqlite3_column_text(st, 2),
            .source = (const char *)sqlite3_column_text(st, 3),
            .manifest = (const char *)sqlite3_column_text(st, 4),
            .status = sqlite3_column_int(st, 5),
            .reason = (const char *)sqlite3_column_text(st, 6),
            .when = sqlite3_column_int64(st, 7),
        };
        if (!r.origin || !r.identity || !r.name || !r.source)
            continue; /* NOT NULL says never; a tampered file may */
        if (fn(ud, &r) != 0)
            break;
    }
    int frc = sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return failed_or_busy(dx, rc);
    return frc == SQLITE_OK ? 0 : failed_or_busy(dx, frc);
}

int mh_dx_begin(mh_dx *dx)
{
    int rc = sqlite3_exec(dx->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : failed(dx, rc);
}

/* An identity without the "unsure:" mark a listing puts on a file changed
 * in the last moments (host/discover.c): the same file either way. */
#define SURE_ID(col)                                                      \
    "(CASE WHEN substr(" col ", 1, 7) = 'unsure:' THEN substr(" col ", 8) " \
    "ELSE " col " END)"

int mh_dx_put(mh_dx *dx, const mh_dx_row *r)
{
    int rc = SQLITE_OK;
    if (!dx->put)
        /* A row read from a module's metadata (status 0) never replaces
         * a load failure (source MH_DX_AT_LOAD; or ELOAD, ENODESC, EINIT,
         * as earlier versions wrote them: host/discover.c's load_failure)
         * recorded for the same identity: its metadata cannot refute it
         * (it stands until the module changes), and one may be recorded
         * while a listing that read the metadata before it runs. */
        rc = sqlite3_prepare_v2(dx->db, "INSERT INTO modules "
                                "(origin, identity, name, source, manifest, "
                                "status, reason, recorded) VALUES (?1, ?2, ?3, "
                                "?4, ?5, ?6, ?7, ?8) ON CONFLICT(origin) DO "
                                "UPDATE SET identity = excluded.identity, "
                                "name = excluded.name, source = "
                                "excluded.source, manifest = "
                                "excluded.manifest, status = excluded.status, "
                                "reason = excluded.reason, recorded = "
                                "excluded.recorded WHERE NOT (excluded.status "
                                "= 0 AND (modules.status IN (?9, ?10, ?11) "
                                "OR (modules.status != 0 AND modules.source "
                                "= '" MH_DX_AT_LOAD "')) AND "
                                SURE_ID("modules.identity") " = "
                                SURE_ID("excluded.identity") ")", -1,
                                &dx->put, NULL);
    if (rc != SQLITE_OK)
        return failed(dx, rc);
    sqlite3_stmt *st = dx->put;
    sqlite3_bind_text(st, 1, r->origin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->identity, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->manifest, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, r->status);
    sqlite3_bind_text(st, 7, r->reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, r->when ? r->when : (int64_t)time(NULL));
    sqlite3_bind_int(st, 9, MH_ELOAD);
    sqlite3_bind_int(st, 10, MH_ENODESC);
    sqlite3_bind_int(st, 11, MH_EINIT);
    rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : failed(dx, rc);
}

int mh_dx_commit(mh_dx *dx)
{
    int rc = sqlite3_exec(dx->db, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        return 0;
    failed(dx, rc);
    sqlite3_exec(dx->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

int mh_dx_clear_failures(mh_dx *dx, const char *name, const char *origin,
                         int64_t before, size_t *n)
{
    sqlite3_stmt *st = NULL;
    const char *key = origin ? origin : name;
    int rc = sqlite3_prepare_v2(dx->db, origin
        ? "DELETE FROM modules WHERE status <> 0 AND origin = ?1 AND "
          "(?2 = 0 OR recorded <= ?2)"
        : name ? "DELETE FROM modules WHERE status <> 0 AND name = ?1"
        : "DELETE FROM modules WHERE status <> 0", -1, &st, NULL);
    if (rc == SQLITE_OK && key)
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && origin)
        sqlite3_bind_int64(st, 2, before);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return failed_or_busy(dx, rc); /* busy: another writer */
    *n = (size_t)sqlite3_changes(dx->db);
    return 0;
}

typedef struct gone_walk {
    mh_host *host;
    bool (*gone)(const char *origin);
    char **v;               /* origins to delete, host memory */
    size_t n, cap;
} gone_walk;

static int collect_gone(void *ud, const mh_dx_row *r)
{
    gone_walk *g = ud;
    if (!g->gone(r->origin))
        return 0;
    if (mh_mem_grow(g->host, (void **)&g->v, &g->cap, g->n, sizeof *g->v,
                    16) != 0)
        return 1;
    if (!(g->v[g->n] = mh_mem_strdup(g->host, r->origin)))
        return 1;
    g->n++;
    return 0;
}

int mh_dx_forget_gone(mh_dx *dx, bool (*gone)(const char *origin))
{
    gone_walk g = {dx->host, gone, NULL, 0, 0};
    int r = mh_dx_each(dx, false, collect_gone, &g);
    sqlite3_stmt *st = NULL;
    int prc = SQLITE_OK;
    if (r == 0 && g.n &&
        (prc = sqlite3_prepare_v2(dx->db, "DELETE FROM modules WHERE "
                                  "origin = ?1", -1, &st, NULL)) !=
            SQLITE_OK)
        r = failed(dx, prc);
    else if (r == 0 && g.n && (r = mh_dx_begin(dx)) == 0) {
        int rc = SQLITE_DONE;
        for (size_t i = 0; i < g.n && rc == SQLITE_DONE; i++) {
            sqlite3_bind_text(st, 1, g.v[i], -1, SQLITE_STATIC);
            rc = sqlite3_step(st);
            sqlite3_reset(st);
        }
        /* A delete that failed is told as itself (damage marks the index
         * for a rebuild), not left to the COMMIT after it. */
        if (rc == SQLITE_DONE) {
            r = mh_dx_commit(dx);
        } else {
            r = failed(dx, rc);
            sqlite3_exec(dx->db, "ROLLBACK", NULL, NULL, NULL);
        }
    }
    sqlite3_finalize(st);
    for (size_t i = 0; i < g.n; i++)
        mh_mem_strfree(dx->host, g.v[i]);
    mh_mem_free(dx->host, g.v, g.cap * sizeof *g.v);
    return r;
}
