/*
 * finders/sqlite.c -- the SQLite finder (mh_sqf_*): modules stored as
 * BLOBs in a SQLite Archive (see finders/sqlar.h), one database file per
 * search path entry.
 *
 * Claim: an entry written `sqlite:/path/to.db`, or an absolute path to a
 * regular file that starts with the SQLite header.  Module a.b.c is the
 * archive row "a/b/c.so" (the same resolution rule as directories); a
 * directory row "a/b/c", or any row under "a/b/c/", makes a namespace
 * portion.  A module's origin is "/path/to.db!/a/b/c.so".
 *
 * The connection
 * --------------
 * One read-only connection per entry, its prepared statements reused,
 * serialised by the finder's mutex.  It is hardened as for untrusted
 * files: defensive mode, no trusted schema, no triggers or views, a busy
 * timeout, a length limit of max_module_size plus 1 KiB.  Names are bound,
 * never pasted into SQL.
 *
 * Consistency with writers
 * ------------------------
 * A module's size and data are read by one statement, so within one read
 * transaction: while `modhost pack` or `sqlite3 -A` replaces a module in
 * another process, a reader sees the old row or the new row, whole.  Each
 * find runs fresh statements, so committed changes are visible at once
 * without any invalidation.  A database file deleted or replaced (a new
 * inode at the path) is noticed by a stat per find: the old connection is
 * closed, and a replacement is opened in its place.
 *
 * Failures
 * --------
 * A database that cannot be opened at all (not SQLite, truncated, no
 * sqlar table) fails the entry's open: the host reports that once and
 * skips the entry.  Damage found later (a corrupt page) is a miss with the
 * reason, warned about once per connection.  A bad row (corrupt zlib data,
 * a lying sz) fails the import of that module only, in read().
 */
#include "host/internal.h"
#include "host/secure.h"
#include "finders/finder.h"
#include "finders/sqlar.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SQF_SCHEME "sqlite:"
#define SQF_BUSY_MS 5000
#define SQF_IDENT_MAX 200   /* a row's identity (row_identity): <= 174 */

static const char SQLITE_MAGIC[16] = "SQLite format 3";

typedef struct sqf_state {
    mh_host *host;
    const char *path;         /* interned database path */
    pthread_mutex_t lock;
    sqlite3 *db;              /* NULL while closed */
    sqlite3_stmt *find, *ns, *read, *list;
    dev_t dev;
    ino_t ino;
    struct timespec ctim;     /* and ctime and size: a file rewritten in
                                 place (cp) keeps its inode, and SQLite its
                                 page cache while the change counter in the
                                 header is the same -- another file's */
    off_t size;
    long long born;           /* birth time in ns (0 if unknown): a file
                                 deleted and made again may get the inode
                                 back, never the birth time */
    bool warned;              /* a problem reported since the last good
                                 open: said once, not at every find while
                                 the database stays unusable */
} sqf_state;

static const char *db_path_of(const char *entry)
{
    return strncmp(entry, SQF_SCHEME, sizeof SQF_SCHEME - 1) == 0
               ? entry + sizeof SQF_SCHEME - 1 : entry;
}

/* Is path a regular file with the SQLite header?  1 or 0; -1 when that
 * cannot be told now, for want of a descriptor to look with. */
static int sqlite_header(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return mh_errno_status(errno, MH_EIO) == MH_EAGAIN ? -1 : 0;
    struct stat st;
    char head[16];
    bool yes = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
               read(fd, head, sizeof head) == (ssize_t)sizeof head &&
               memcmp(head, SQLITE_MAGIC, sizeof head) == 0;
    close(fd);
    return yes;
}

/* Is the database at path in WAL mode (its header's read and write
 * versions are 2)? */
static bool wal_mode(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return false;
    unsigned char v[2];
    bool wal = pread(fd, v, sizeof v, 18) == (ssize_t)sizeof v && v[0] == 2 &&
               v[1] == 2;
    close(fd);
    return wal;
}

/* May this process make files in the directory holding path? */
static bool dir_writable(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash && slash > path ? (size_t)(slash - path) : 1;
    if (n >= sizeof dir)
        return false;
    memcpy(dir, path, n);
    dir[n] = '\0';
    return faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == 0;
}

static int sqf_claims(mh_finder_ctx *cx, const char *entry)
{
    MH_UNUSED(cx);
    if (strncmp(entry, SQF_SCHEME, sizeof SQF_SCHEME - 1) == 0)
        return true;
    if (entry[0] != '/')
        return false;
    /* A regular file with the SQLite header; directories go to fs.  With
     * no descriptor to look, a regular file is taken on trust: sqf_open
     * looks again, and an entry that is no database after all is
     * reported there, as any entry no finder can use. */
    int says = sqlite_header(entry);
    struct stat st;
    return says > 0 ||
           (says < 0 && stat(entry, &st) == 0 && S_ISREG(st.st_mode));
}

static void db_close(sqf_state *s)
{
    sqlite3_finalize(s->find);
    sqlite3_finalize(s->ns);
    sqlite3_finalize(s->read);
    sqlite3_finalize(s->list);
    s->find = s->ns = s->read = s->list = NULL;
    sqlite3_close(s->db); /* statements are gone: never SQLITE_BUSY */
    s->db = NULL;
}

/* Open (or reopen) the connection.  MH_OK, or an error naming the file. */
static mh_status db_open_once(sqf_state *s, bool recovering, mh_error **err);

static mh_status db_open(sqf_state *s, mh_error **err)
{
    return db_open_once(s, false, err);
}

static mh_status db_open_once(sqf_state *s, bool recovering, mh_error **err)
{
    mh_host *h = s->host;
    struct stat st;
    if (stat(s->path, &st) != 0)
        return mh_err(h, err, errno == ENOENT ? MH_EPATH : MH_EIO,
                      "module database %s: %s", s->path,
                      errno == ENOENT ? "no such file" : mh_errno_text(errno));
    if (!S_ISREG(st.st_mode))
        return mh_err(h, err, MH_EPATH, "module database %s: not a regular "
                      "file", s->path);
    int rc = mh_fault(h, "sqlite")
                 ? SQLITE_CANTOPEN
                 : sqlite3_open_v2(s->path, &s->db,
                                   SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX |
                                       SQLITE_OPEN_EXRESCODE, NULL);
    if (rc != SQLITE_OK)
        goto fail;
    sqlite3_extended_result_codes(s->db, 1);
    int on = -1, off = -1, notrig = -1, noview = -1;
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, &off);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, &notrig);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, &noview);
    if (on != 1 || off != 0 || notrig != 0 || noview != 0) {
        db_close(s);
        return mh_err(h, err, MH_EVERSION, "module database %s: this SQLite "
                      "(%s) cannot be hardened (defensive mode, no trusted "
                      "schema, no triggers or views); refusing to read it",
                      s->path, sqlite3_libversion());
    }
    sqlite3_busy_timeout(s->db, SQF_BUSY_MS);
    size_t max = h->max_module_size;
    sqlite3_limit(s->db, SQLITE_LIMIT_LENGTH,
                  max > INT_MAX - 1024 ? INT_MAX : (int)max + 1024);
    /* Reading the schema: a file that is not a database, a truncated one,
     * a locked one, or one without a plain sqlar table fails here.  A
     * virtual table would hand untrusted bytes to a module's own parser. */
    sqlite3_stmt *chk = NULL;
    const char *rowid = "0";
    char find_sql[1024], list_sql[200];
    if ((rc = sqlite3_exec(s->db, "PRAGMA cell_size_check = ON", NULL, NULL,
                           NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v2(s->db,
             "SELECT type, sql FROM sqlite_schema WHERE name = 'sqlar' "
             "COLLATE NOCASE", -1, &chk, NULL)) != SQLITE_OK)
        goto fail;
    rc = sqlite3_step(chk);
    if (rc == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(chk, 0);
        const char *sql = (const char *)sqlite3_column_text(chk, 1);
        bool plain = type && strcmp(type, "table") == 0 && sql &&
                     sqlite3_strnicmp(sql, "CREATE TABLE", 12) == 0;
        /* The row id joins a row's identity: INSERT OR REPLACE (a
         * re-pack) gives a new one even when size and mtime stay. */
        rowid = plain && !strcasestr(sql, "WITHOUT ROWID") ? "_rowid_" : "0";
        if (!plain) {
            mh_err(h, err, MH_EFORMAT, "module database %s: 'sqlar' is a "
                   "%s, not a plain table; refusing to read it", s->path,
                   type && strcmp(type, "table") == 0 ? "virtual table"
                   : type ? type : "?");
            sqlite3_finalize(chk); /* owns type and sql */
            db_close(s);
            return MH_EFORMAT;
        }
        sqlite3_finalize(chk);
    } else {
        sqlite3_finalize(chk);
        if (rc != SQLITE_DONE)
            goto fail;
        /* rc DONE: no such table; the prepare below says so. */
    }
    /* Names compare as bytes (BINARY), whatever the table declares, so a
     * NOCASE table cannot make find and list disagree. */
    /* A find asks for a module's three possible rows (.so, .lua, .json) in
     * one statement: one read transaction, so one round of SQLite's file
     * locking and journal checks (about 8 system calls) per find.  For an
     * import it also takes the code rows' bytes, when they are within
     * ?4 bytes (max_module_size; else NULL, and the read says why): the
     * load needs no second transaction, and what is loaded is the row
     * this find saw.  Three point lookups joined by UNION ALL, not
     * "name IN (?1, ?2, ?3)": SQLite runs an IN list of variables through
     * a temporary b-tree built on every step (an OpenEphemeral and three
     * inserts), about a tenth of a find's work.  (A hand-made table
     * with no index on its names is scanned three times, not once.) */
#define FIND_ARM(n, data)                                                 \
    "SELECT name, mode, mtime, sz, length(data), %s, " data " FROM sqlar " \
    "WHERE name = ?" #n " COLLATE BINARY AND typeof(name) = 'text'"
#define FIND_DATA "CASE WHEN length(data) <= ?4 THEN data END"
    snprintf(find_sql, sizeof find_sql,
             FIND_ARM(1, FIND_DATA) " UNION ALL " FIND_ARM(2, FIND_DATA)
             " UNION ALL " FIND_ARM(3, "NULL"), rowid, rowid, rowid);
#undef FIND_ARM
#undef FIND_DATA
    snprintf(list_sql, sizeof list_sql, "SELECT name, mode, mtime, sz, "
             "length(data), %s FROM sqlar WHERE typeof(name) = 'text' "
             "ORDER BY name COLLATE BINARY", rowid);
    if ((rc = sqlite3_prepare_v3(s->db, find_sql, -1,
             SQLITE_PREPARE_PERSISTENT, &s->find, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v3(s->db,
             "SELECT 1 FROM sqlar WHERE name = ?1 COLLATE BINARY OR "
             "(name >= ?2 COLLATE BINARY AND name < ?3 COLLATE BINARY) "
             "LIMIT 1", -1,
             SQLITE_PREPARE_PERSISTENT, &s->ns, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v3(s->db,
             "SELECT sz, data FROM sqlar "
             "WHERE name = ?1 COLLATE BINARY", -1,
             SQLITE_PREPARE_PERSISTENT, &s->read, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v3(s->db, list_sql, -1,
             SQLITE_PREPARE_PERSISTENT, &s->list, NULL)) != SQLITE_OK)
        goto fail;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->ctim = st.st_ctim;
    s->size = st.st_size;
    s->warned = false; /* a good open: the next problem is news */
    struct statx stx;
    s->born = statx(AT_FDCWD, s->path, 0, STATX_BTIME, &stx) == 0 &&
                      (stx.stx_mask & STATX_BTIME)
                  ? (long long)stx.stx_btime.tv_sec * 1000000000LL +
                        stx.stx_btime.tv_nsec
                  : 0;
    MH_TRACE(h, "sqlite: opened %s read-only", s->path);
    return MH_OK;

fail:;
    const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
    int base = rc & 0xff;
    bool no_table = strstr(msg, "no such table") != NULL;
    /* Passing, tried again at the next find:
     *   MH_EAGAIN: locked by a writer past the busy timeout, or no
     *     descriptor free -- the database may well hold the module, so
     *     the import stops rather than take a later entry's;
     *   MH_EIO: the file could not be opened or read just now (passed
     *     over, as a directory that cannot be read is), or a hot journal
     *     a dead writer left (rolled back below);
     *   MH_ENOMEM.
     * Final until mh_invalidate_caches or a change to the file: what the
     * bytes say (MH_EFORMAT), and a file this process may not open
     * (MH_EPATH). */
    int sys = s->db && (base == SQLITE_CANTOPEN || base == SQLITE_IOERR)
                  ? sqlite3_system_errno(s->db) : 0;
    mh_status code = base == SQLITE_BUSY || base == SQLITE_LOCKED
                         ? MH_EAGAIN
                     : base == SQLITE_NOMEM ? MH_ENOMEM
                     : sys == EACCES || sys == EPERM ? MH_EPATH
                     : base == SQLITE_READONLY || base == SQLITE_CANTOPEN ||
                             base == SQLITE_IOERR
                         ? mh_errno_status(sys, MH_EIO)
                         : MH_EFORMAT;
    if (rc == SQLITE_READONLY_ROLLBACK && !recovering) {
        /* A pack killed mid-transaction left its journal: a read-only
         * connection may not roll it back, so one brief read-write
         * connection does (the file passed the owner checks), then the
         * read-only open is tried once more. */
        db_close(s);
        sqlite3 *rw = NULL;
        if (sqlite3_open_v2(s->path, &rw, SQLITE_OPEN_READWRITE, NULL) ==
            SQLITE_OK)
            sqlite3_exec(rw, "PRAGMA schema_version", NULL, NULL, NULL);
        sqlite3_close(rw);
        MH_TRACE(h, "sqlite: %s had a hot journal; rolled back", s->path);
        recovering = true;
        return db_open_once(s, true, err);
    }
    /* A WAL-mode database needs its -wal and -shm files, which a reader
     * that cannot write the directory (a system database, a read-only
     * filesystem) cannot make: say so, and how to mend it.  Not passing:
     * tried again after mh_invalidate_caches.  (A directory it may write,
     * where making them failed all the same -- a full disk -- is the
     * passing trouble below.) */
    if ((base == SQLITE_READONLY || base == SQLITE_CANTOPEN) &&
        code != MH_EAGAIN && wal_mode(s->path) && !dir_writable(s->path)) {
        mh_err(h, err, MH_EPATH, "module database %s is in WAL mode, and "
               "this process cannot make its -wal and -shm files beside it "
               "(%s); take it out of WAL mode with: sqlite3 %s 'PRAGMA "
               "journal_mode=DELETE' ('modhost pack' does so when nothing "
               "else has it open), or let the process write its directory",
               s->path, msg, s->path);
        db_close(s);
        return MH_EPATH;
    }
    /* The system's reason, where the file could not be opened or read
     * (the descriptor limit says what to do about it). */
    mh_err(h, err, code, "module database %s: %s%s%s%s", s->path, msg,
           sys ? ": " : "", sys ? mh_errno_text(sys) : "",
           no_table ? " (a module database holds a SQLite Archive 'sqlar' "
                      "table: make one with 'modhost pack' or 'sqlite3 -A')"
                    : "");
    db_close(s);
    return code;
}

static mh_status sqf_open(mh_finder_ctx *cx, const char *entry, void **state)
{
    mh_host *h = MH_FCX(cx)->h;
    mh_error **err = MH_FCX(cx)->err;
    const char *path = db_path_of(entry);
    if (path[0] != '/')
        return mh_err(h, err, MH_EPATH, "entry '%s': a module database "
                      "needs an absolute path (sqlite:/path/to.db)", entry);
    if (path == entry && sqlite_header(path) == 0) /* taken on trust */
        return mh_err(h, err, MH_EPATH, "entry '%s' is no module database "
                      "(it was taken for one when no descriptor was free to "
                      "look)", entry);
    char canon[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof canon)
        return mh_err(h, err, MH_EPATH, "entry '%s': path too long", entry);
    memcpy(canon, path, len + 1);
    len = mh_path_canon(canon, len);
    sqf_state *s = mh_mem_calloc(h, 1, sizeof *s);
    const char *ipath = mh_int_str(h, canon, len);
    if (!s || !ipath) {
        mh_mem_free(h, s, sizeof *s);
        return mh_err(h, err, MH_ENOMEM, "out of memory opening %s", path);
    }
    s->host = h;
    s->path = ipath;
    /* Native code is loaded straight from its rows: a database others may
     * write is refused like such a directory (host/secure.c). */
    mh_error *se = NULL;
    mh_status rc = mh_sec_code_file(h, ipath, &se);
    if (rc != MH_OK && rc != MH_ENOTFOUND) {
        rc = mh_err(h, err, rc, "module database %s not used: %s", ipath,
                    mh_error_message(se));
        mh_error_free(se);
        mh_mem_free(h, s, sizeof *s);
        return rc;
    }
    mh_error_free(se);
    /* An I/O error is no verdict on the entry: it is left to the first
     * find, which opens the database again and passes over the entry for
     * that import if it fails again (ensure_current).  MH_EAGAIN (busy,
     * no descriptor) fails the open, which stops the import (host/find.c)
     * and is tried again at the next. */
    mh_error *oe = NULL;
    rc = db_open(s, &oe);
    if (rc == MH_EIO) {
        MH_TRACE(h, "sqlite: %s not opened yet: %s", ipath,
                 mh_error_message(oe));
        mh_error_free(oe);
    } else if (rc != MH_OK) {
        mh_err_give(oe, err);
        mh_mem_free(h, s, sizeof *s);
        return rc;
    }
    pthread_mutex_init(&s->lock, NULL);
    *state = s;
    return MH_OK;
}

static void sqf_invalidate(mh_finder_ctx *cx, void *state)
{
    MH_UNUSED(cx);
    sqf_state *s = state;
    pthread_mutex_lock(&s->lock);
    db_close(s); /* reopened by the next find */
    pthread_mutex_unlock(&s->lock);
}

static void sqf_close(mh_finder_ctx *cx, void *state)
{
    MH_UNUSED(cx);
    sqf_state *s = state;
    db_close(s);
    pthread_mutex_destroy(&s->lock);
    mh_mem_free(s->host, s, sizeof *s);
}

/* Make sure the connection is to the file now at the path (lock held).
 * MH_OK, MH_ENOMEM, MH_EAGAIN (locked past the busy timeout, or no
 * descriptor free: the reason in *busy, or appended to why if busy is
 * NULL), or MH_ENOTFOUND with the reason appended to why. */
static mh_status ensure_current(sqf_state *s, mh_buf *why, mh_error **busy)
{
    struct stat st;
    if (stat(s->path, &st) != 0) {
        if (s->db)
            MH_TRACE(s->host, "sqlite: %s is gone; connection closed",
                     s->path);
        db_close(s);
        mh_buf_printf(why, "database %s no longer exists", s->path);
        return MH_ENOTFOUND;
    }
    if (s->db && st.st_dev == s->dev && st.st_ino == s->ino &&
        st.st_ctim.tv_sec == s->ctim.tv_sec &&
        st.st_ctim.tv_nsec == s->ctim.tv_nsec && st.st_size == s->size)
        return MH_OK;
    if (s->db)
        MH_TRACE(s->host, "sqlite: %s was replaced or changed; reopening",
                 s->path);
    db_close(s);
    mh_error *e = NULL;
    /* Checked again, as at the first open: a replacement (or a chmod)
     * may have made it a file others can write -- before SQLite reads it,
     * or rolls a journal back into it. */
    mh_status sc = mh_sec_code_file(s->host, s->path, &e);
    if (sc == MH_EAGAIN && busy) { /* no descriptor to check it with */
        *busy = e;
        return MH_EAGAIN;
    }
    if (sc != MH_OK && sc != MH_ENOTFOUND) {
        mh_buf_printf(why, "module database %s not used: %s", s->path,
                      mh_error_message(e));
        if (!s->warned) {
            s->warned = true;
            mh_log(s->host, MH_LOG_WARN, "module database %s not used: %s",
                   s->path, mh_error_message(e));
        }
        mh_error_free(e);
        return sc == MH_ENOMEM ? MH_ENOMEM : MH_ENOTFOUND;
    }
    mh_error_free(e);
    e = NULL;
    if (db_open(s, &e) != MH_OK) {
        mh_status code = mh_error_code(e);
        if (code == MH_EAGAIN && busy) {
            *busy = e;
            return MH_EAGAIN;
        }
        if (code != MH_EAGAIN && code != MH_ENOMEM && !s->warned) {
            s->warned = true; /* no database, or none to be read now */
            mh_log(s->host, MH_LOG_WARN, "%s", mh_error_message(e));
        }
        mh_buf_puts(why, mh_error_message(e));
        mh_error_free(e);
        return code == MH_ENOMEM ? MH_ENOMEM : MH_ENOTFOUND;
    }
    return MH_OK;
}

/* Module `name` cannot be looked up in the database now (cause says
 * why): the import stops with MH_EAGAIN.  Passing over the entry would
 * let a later entry's module of the same name load in place of the one
 * this database may hold. */
static mh_status busy_stop(sqf_state *s, const char *name, const char *cause,
                           mh_error **err)
{
    return mh_err(s->host, err, MH_EAGAIN, "module '%s' cannot be looked "
                  "up now: %s; later search path entries were not looked "
                  "at, as the module may be in %s: try again", name, cause,
                  s->path);
}

/* Did a statement's step fail because a writer held the database past
 * the busy timeout? */
static bool locked(int step)
{
    return (step & 0xff) == SQLITE_BUSY || (step & 0xff) == SQLITE_LOCKED;
}

static mh_status locked_stop(sqf_state *s, const char *name, int step,
                             mh_error **err)
{
    char cause[PATH_MAX + 200];
    snprintf(cause, sizeof cause, "module database %s: %s (a writer held "
             "it past the %d s busy timeout)", s->path, sqlite3_errstr(step),
             SQF_BUSY_MS / 1000);
    return busy_stop(s, name, cause, err);
}

/* A statement failed (lock held): the reason goes to why, and the first
 * time on this connection to the log too. */
static mh_status damaged(sqf_state *s, sqlite3_stmt *st, const char *what,
                         mh_buf *why)
{
    const char *msg = s->db ? sqlite3_errmsg(s->db)
                            : "the database could not be opened again";
    mh_buf_printf(why, "database error %s: %s", what, msg);
    if (!s->warned) {
        s->warned = true;
        mh_log(s->host, MH_LOG_WARN, "module database %s: %s: %s", s->path,
               what, msg);
    }
    sqlite3_reset(st);
    return MH_ENOTFOUND;
}

/* What changes whenever a row's bytes may have: its columns and the
 * database file's identity.  Into buf. */
static const char *row_identity(const sqf_state *s, sqlite3_stmt *st, int col,
                                char buf[SQF_IDENT_MAX])
{
    /* The file (device, inode, birth), then the row's mode, mtime, sz,
     * length(data) and row id: what a rewrite changes.  The text of
     * "sqlar:%ju:%ju:%lld:%lld:%lld:%lld:%lld:%lld", without snprintf
     * (a cold import pays for every line of code it runs). */
    static const char pre[] = "sqlar:";
    char *p = buf;
    memcpy(p, pre, sizeof pre - 1);
    p = mh_put_dec(p + sizeof pre - 1, (unsigned long long)s->dev, 1);
    *p++ = ':';
    p = mh_put_dec(p, (unsigned long long)s->ino, 1);
    *p++ = ':';
    p = mh_put_sdec(p, s->born);
    for (int i = 0; i < 5; i++) {
        *p++ = ':';
        p = mh_put_sdec(p, (long long)sqlite3_column_int64(st, col + i));
    }
    *p = '\0';
    return buf;
}

/* a, b and c joined into buf (size bytes): false, and nothing usable in
 * buf, if they do not fit. */
static bool join3(char *buf, size_t size, const char *a, const char *b,
                  const char *c)
{
    size_t na = strlen(a), nb = strlen(b), nc = strlen(c);
    if (na + nb + nc >= size)
        return false;
    memcpy(buf, a, na);
    memcpy(buf + na, b, nb);
    memcpy(buf + na + nb, c, nc + 1);
    return true;
}

/* The sidecar manifest row of module file rel (n bytes, with its suffix
 * of sl bytes), for a listing, into key: key, or NULL when there is none.
 * Its row's identity is appended to ident (isize bytes), so a changed
 * sidecar changes the module's identity.  Lock held; s->find is free. */
static const char *sidecar(sqf_state *s, const char *rel, size_t n,
                           size_t sl, char *key, size_t size, char *ident,
                           size_t isize)
{
    if (n - sl + sizeof MH_META_SUFFIX > size)
        return NULL;
    memcpy(key, rel, n - sl);
    memcpy(key + n - sl, MH_META_SUFFIX, sizeof MH_META_SUFFIX);
    sqlite3_bind_text(s->find, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_null(s->find, 2); /* name = NULL matches nothing */
    sqlite3_bind_null(s->find, 3);
    sqlite3_bind_int64(s->find, 4, -1); /* no data: a listing */
    int step = sqlite3_step(s->find);
    bool file = step == SQLITE_ROW &&
                !mh_sar_is_dir(sqlite3_column_int64(s->find, 1)) &&
                !mh_sar_is_link(sqlite3_column_int64(s->find, 1));
    if (file) {
        size_t used = strlen(ident);
        char meta[SQF_IDENT_MAX];
        row_identity(s, s->find, 1, meta);
        if (!join3(ident + used, isize - used, "|meta:", meta, ""))
            ident[used] = '\0'; /* cannot be: isize holds two */
    }
    sqlite3_reset(s->find);
    return file ? key : NULL;
}

/* A statement failed because a writer that died left a hot journal,
 * which this read-only connection may not roll back?  Then reconnect
 * (db_open rolls it back): MH_OK, and the caller tries once more;
 * MH_EAGAIN with *busy set when the database is locked now; else
 * MH_ENOTFOUND.  Lock held. */
static mh_status hot_journal(sqf_state *s, mh_buf *why, mh_error **busy)
{
    if (!s->db || sqlite3_extended_errcode(s->db) != SQLITE_READONLY_ROLLBACK)
        return MH_ENOTFOUND;
    db_close(s);
    mh_status rc = ensure_current(s, why, busy);
    return rc == MH_OK || rc == MH_EAGAIN ? rc : MH_ENOTFOUND;
}

/* A row's sz and data (columns isz and idata of st) into the file's
 * bytes: both must be what sqlar says they are.  MH_OK, MH_ENOMEM, or
 * MH_EFORMAT with *why. */
static mh_status row_bytes(mh_host *h, sqlite3_stmt *st, int isz, int idata,
                           mh_blob *out, const char **why)
{
    out->data = NULL;
    out->len = out->size = 0;
    if (sqlite3_column_type(st, isz) != SQLITE_INTEGER) {
        *why = "its size (sz) is not an integer";
        return MH_EFORMAT;
    }
    if (sqlite3_column_type(st, idata) != SQLITE_BLOB) {
        *why = "its data is not a BLOB";
        return MH_EFORMAT;
    }
    /* Fetched after the types: a conversion would change them. */
    int64_t sz = sqlite3_column_int64(st, isz);
    const void *data = sqlite3_column_blob(st, idata);
    size_t len = (size_t)sqlite3_column_bytes(st, idata);
    return mh_sar_decode(h, data, len, sz, h->max_module_size, out, why);
}

/* A code row's bytes, taken by the find for an import (NULL data unless
 * within max_module_size); nothing when they are not there or do not
 * decode -- the read then says why. */
static void take_bytes(sqf_state *s, sqlite3_stmt *st, int64_t mode,
                       mh_blob *out)
{
    const char *why;
    if (!out->data && !mh_sar_is_link(mode) && !mh_sar_is_dir(mode) &&
        sqlite3_column_type(st, 6) == SQLITE_BLOB)
        row_bytes(s->host, st, 3, 6, out, &why); /* empty when it fails */
}

static mh_status sqf_find(mh_finder_ctx *cx, void *state, const char *name,
                          mh_finder_spec *spec)
{
    mh_buf *why = MH_FCX(cx)->why;
    /* The same order as in a directory: native code, then Lua source, then
     * a package (a namespace portion). */
    static const struct { const char *suffix; mh_module_kind kind; } kinds[] = {
        {MH_NATIVE_SUFFIX, MH_KIND_NATIVE}, {MH_LUA_SUFFIX, MH_KIND_LUA}};
    sqf_state *s = state;
    mh_host *h = s->host;
    mh_blob *bytes = MH_FCX(cx)->want_bytes ? &MH_FCX(cx)->bytes : NULL;
    /* The rows a module may have: its code (kinds[]), then its sidecar
     * manifest; what each says about itself when it is there. */
    enum { META = MH_ARRAY_LEN(kinds), NROWS };
    mh_blob code[META] = {{0}}; /* each code row's bytes, for an import */
    struct {
        char rel[MH_NAME_MAX + 8];
        size_t n;
        bool there;
        int64_t mode;
        char ident[SQF_IDENT_MAX];
    } row[NROWS];
    char rel[MH_NAME_MAX + 8], lo[sizeof rel + 1], hi[sizeof rel + 1];
    char origin[PATH_MAX + MH_NAME_MAX + 8], ident[400];

    for (size_t k = 0; k < NROWS; k++)
        row[k].n = mh_name_relpath(name, k < META ? kinds[k].suffix
                                                  : MH_META_SUFFIX,
                                   row[k].rel, sizeof row[k].rel);
    pthread_mutex_lock(&s->lock);
    mh_error *busy = NULL;
    mh_status rc = ensure_current(s, why, &busy);
    if (rc == MH_EAGAIN) {
        rc = busy_stop(s, name, mh_error_message(busy), MH_FCX(cx)->err);
        mh_error_free(busy);
    }
    if (rc != MH_OK)
        goto out;
    sqlite3_int64 limit = h->max_module_size > INT64_MAX
                              ? INT64_MAX : (sqlite3_int64)h->max_module_size;
    for (bool reopened = false, with_bytes = bytes != NULL;;) {
        for (size_t k = 0; k < NROWS; k++) {
            row[k].there = false;
            sqlite3_bind_text(s->find, (int)k + 1, row[k].rel, (int)row[k].n,
                              SQLITE_STATIC);
        }
        for (size_t k = 0; k < META; k++)
            mh_blob_free(h, &code[k]); /* of a try before a reopen */
        sqlite3_bind_int64(s->find, 4, with_bytes ? limit : -1);
        bool injected = mh_fault(s->host, "sqlite");
        int step = injected ? SQLITE_IOERR : sqlite3_step(s->find);
        for (; step == SQLITE_ROW; step = sqlite3_step(s->find)) {
            const char *got = (const char *)sqlite3_column_text(s->find, 0);
            size_t len = (size_t)sqlite3_column_bytes(s->find, 0);
            for (size_t k = 0; got && k < NROWS; k++)
                if (!row[k].there && len == row[k].n &&
                    !memcmp(got, row[k].rel, len)) { /* the first wins,
                                                        as in read */
                    row[k].there = true;
                    row[k].mode = sqlite3_column_int64(s->find, 1);
                    if (k < META && with_bytes) /* before sz is read */
                        take_bytes(s, s->find, row[k].mode, &code[k]);
                    row_identity(s, s->find, 1, row[k].ident);
                }
        }
        sqlite3_reset(s->find);
        if (step == SQLITE_DONE)
            break;
        /* The data failed to read (a damaged page, an I/O error, memory):
         * find the row without it, and let the read say what is wrong
         * with that entry -- never a miss that lets a later entry's
         * module load in its place. */
        int base = sqlite3_errcode(s->db) & 0xff;
        if (with_bytes && !injected &&
            (base == SQLITE_CORRUPT || base == SQLITE_IOERR ||
             base == SQLITE_NOMEM || base == SQLITE_TOOBIG)) {
            with_bytes = false;
            continue;
        }
        mh_status hj = reopened ? MH_ENOTFOUND : hot_journal(s, why, &busy);
        if (hj == MH_OK) {
            reopened = true; /* rolled back: look again, once */
            continue;
        }
        if (hj == MH_EAGAIN) {
            rc = busy_stop(s, name, mh_error_message(busy), MH_FCX(cx)->err);
            mh_error_free(busy);
            goto out;
        }
        if (locked(step)) {
            rc = locked_stop(s, name, step, MH_FCX(cx)->err);
            goto out;
        }
        rc = damaged(s, s->find, "looking up a module", why);
        goto out;
    }
    for (size_t k = 0; k < META; k++) {
        if (!row[k].there)
            continue;
        if (mh_sar_is_link(row[k].mode) || mh_sar_is_dir(row[k].mode)) {
            mh_buf_printf(why, "%s is a %s in the archive, not a file; ",
                          row[k].rel, mh_sar_is_link(row[k].mode)
                                          ? "symbolic link" : "directory");
            continue;
        }
        /* The origin is copied by the host, which keeps only the part
         * every module of this database shares. */
        char *at = MH_FCX(cx)->path;
        /* A sidecar that is a file: its row is part of the identity, so
         * a changed sidecar changes the module's.  (Both fit: the buffers
         * are sized for a database path and two identities.) */
        bool meta = row[META].there && !mh_sar_is_dir(row[META].mode) &&
                    !mh_sar_is_link(row[META].mode);
        if (!join3(at, sizeof MH_FCX(cx)->path, s->path, "!/",
                   row[k].rel) ||
            !join3(ident, sizeof ident, row[k].ident, meta ? "|meta:" : "",
                   meta ? row[META].ident : "")) {
            rc = mh_err(h, MH_FCX(cx)->err, MH_EPATH, "module '%s' in %s: "
                        "its path is too long", name, s->path);
            goto out;
        }
        spec->kind = kinds[k].kind;
        /* Interned: the host reads them after this frame is gone. */
        spec->origin = at;
        spec->key = mh_int_str(h, row[k].rel, row[k].n);
        spec->identity = mh_int_cstr(h, ident);
        spec->meta_key = meta ? mh_int_str(h, row[META].rel, row[META].n)
                              : NULL;
        rc = spec->key && spec->identity &&
                     (!meta || spec->meta_key)
                 ? MH_OK
                 : mh_err(h, MH_FCX(cx)->err, MH_ENOMEM, "out of memory "
                          "finding '%s'", name);
        if (rc == MH_OK && bytes) { /* the answer's bytes go with it */
            *bytes = code[k];
            code[k] = (mh_blob){0};
        }
        goto out;
    }
    /* Not a module: a namespace portion if anything lies under a/b/c/. */
    size_t d = mh_name_relpath(name, "", rel, sizeof rel);
    snprintf(lo, sizeof lo, "%s/", rel);
    snprintf(hi, sizeof hi, "%s0", rel); /* '0' follows '/' */
    sqlite3_bind_text(s->ns, 1, rel, (int)d, SQLITE_STATIC);
    sqlite3_bind_text(s->ns, 2, lo, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->ns, 3, hi, -1, SQLITE_STATIC);
    int step = sqlite3_step(s->ns);
    sqlite3_reset(s->ns);
    if (step == SQLITE_ROW) {
        snprintf(origin, sizeof origin, "%s!/%s", s->path, rel);
        spec->kind = MH_KIND_NAMESPACE;
        spec->origin = mh_int_cstr(h, origin);
        rc = spec->origin ? MH_OK
                          : mh_err(h, MH_FCX(cx)->err, MH_ENOMEM,
                                   "out of memory finding '%s'", name);
    } else if (step == SQLITE_DONE) {
        mh_buf_printf(why, "no %s.so or %s.lua in the archive", rel, rel);
        rc = MH_ENOTFOUND;
    } else if (locked(step)) {
        rc = locked_stop(s, name, step, MH_FCX(cx)->err);
    } else {
        rc = damaged(s, s->ns, "looking up a package", why);
    }
out:
    for (size_t k = 0; k < META; k++)
        mh_blob_free(h, &code[k]);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static mh_status sqf_read(mh_finder_ctx *cx, void *state, const char *key,
                          mh_blob *out)
{
    sqf_state *s = state;
    mh_error **err = MH_FCX(cx)->err;
    mh_host *h = s->host;
    mh_status rc;
    const char *why = NULL;

    out->data = NULL;
    out->len = out->size = 0;
    pthread_mutex_lock(&s->lock);
    if (!s->db) {
        mh_buf b;
        mh_buf_init(&b, h, 0);
        rc = ensure_current(s, &b, NULL);
        if (rc != MH_OK) {
            rc = mh_err(h, err, rc == MH_ENOMEM ? MH_ENOMEM : MH_EIO,
                        "cannot read %s!/%s: %s", s->path, key,
                        mh_buf_str(&b));
            mh_buf_free(&b);
            goto out;
        }
        mh_buf_free(&b);
    }
    sqlite3_bind_text(s->read, 1, key, -1, SQLITE_STATIC);
    int step = mh_fault(h, "sqlite") ? SQLITE_IOERR : sqlite3_step(s->read);
    if (step == SQLITE_ROW) {
        /* sz and data come from one row of one statement: one snapshot. */
        rc = row_bytes(h, s->read, 0, 1, out, &why);
        if (rc == MH_ENOMEM)
            rc = mh_err(h, err, rc, "out of memory reading %s!/%s",
                        s->path, key);
        else if (rc != MH_OK)
            rc = mh_err(h, err, rc, "module database %s, entry %s: %s",
                        s->path, key, why);
    } else if (step == SQLITE_DONE) {
        rc = mh_err(h, err, MH_ENOTFOUND, "module database %s: entry %s "
                    "was removed between find and load", s->path, key);
    } else if (step == SQLITE_TOOBIG) { /* the length limit (db_open) */
        rc = mh_err(h, err, MH_EFORMAT, "module database %s, entry %s: its "
                    "data is over the host's max_module_size (%zu bytes)",
                    s->path, key, h->max_module_size);
    } else {
        rc = mh_err(h, err, MH_EIO, "module database %s, entry %s: %s",
                    s->path, key, sqlite3_errmsg(s->db));
    }
    sqlite3_reset(s->read);
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* "a/b/c.so" (n bytes, from the row) -> "a.b.c", if that name maps back
 * to exactly this row: every component an identifier, no '.' inside one,
 * no NUL inside the text. */
static bool module_name_of(const char *rel, size_t n, char *out, size_t size,
                           mh_module_kind *kind)
{
    size_t sl;
    if (n > 3 && strcmp(rel + n - 3, MH_NATIVE_SUFFIX) == 0) {
        sl = 3;
        *kind = MH_KIND_NATIVE;
    } else if (n > 4 && strcmp(rel + n - 4, MH_LUA_SUFFIX) == 0) {
        sl = 4;
        *kind = MH_KIND_LUA;
    } else {
        return false;
    }
    if (strlen(rel) != n || n - sl >= size || memchr(rel, '.', n - sl))
        return false;
    for (size_t i = 0; i < n - sl; i++)
        out[i] = rel[i] == '/' ? '.' : rel[i];
    out[n - sl] = '\0';
    return mh_name_check(out, NULL) == MH_OK;
}

static mh_status sqf_list(mh_finder_ctx *cx, void *state,
                          mh_finder_list_fn fn, void *ud)
{
    sqf_state *s = state;
    mh_host *h = s->host;
    mh_error **err = MH_FCX(cx)->err;
    mh_buf why;
    mh_status rc = MH_OK;
    char mname[MH_NAME_MAX + 1], origin[PATH_MAX + MH_NAME_MAX + 8];
    char ident[400], meta[MH_NAME_MAX + 8];

    mh_buf_init(&why, h, 0);
    pthread_mutex_lock(&s->lock);
    if (ensure_current(s, &why, NULL) != MH_OK) {
        rc = mh_err(h, err, MH_ENOTFOUND, "%s", mh_buf_str(&why));
        goto out;
    }
    int step;
    while ((step = sqlite3_step(s->list)) == SQLITE_ROW) {
        const char *rel = (const char *)sqlite3_column_text(s->list, 0);
        size_t rlen = (size_t)sqlite3_column_bytes(s->list, 0);
        int64_t mode = sqlite3_column_int64(s->list, 1);
        mh_module_kind kind;
        if (!rel || mh_sar_is_dir(mode) || mh_sar_is_link(mode) ||
            !module_name_of(rel, rlen, mname, sizeof mname, &kind))
            continue;
        snprintf(origin, sizeof origin, "%s!/%s", s->path, rel);
        /* The same identity as find gives: mode, mtime, sz, length. */
        mh_finder_spec f = {
            .kind = kind, .origin = origin, .key = rel,
            .identity = row_identity(s, s->list, 1, ident)};
        f.meta_key = sidecar(s, rel, rlen,
                             kind == MH_KIND_NATIVE
                                 ? sizeof MH_NATIVE_SUFFIX - 1
                                 : sizeof MH_LUA_SUFFIX - 1,
                             meta, sizeof meta, ident, sizeof ident);
        if (fn(ud, mname, &f) != 0)
            break;
    }
    if (rc == MH_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = mh_err(h, err, MH_EIO, "module database %s: %s", s->path,
                    sqlite3_errmsg(s->db));
    sqlite3_reset(s->list);
out:
    pthread_mutex_unlock(&s->lock);
    mh_buf_free(&why);
    return rc;
}

const mh_finder_class mh_sqf_class = {
    MH_FINDER_CLASS_INIT,
    .name = "sqlite",
    .scheme = "sqlite",
    .description = "module databases (SQLite Archives): sqlite:/path or a "
                   "file with the SQLite header",
    .claims = sqf_claims,
    .open = sqf_open,
    .find = sqf_find,
    .list = sqf_list,
    .read = sqf_read,
    .invalidate = sqf_invalidate,
    .close = sqf_close,
};
