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
 * Copies, and the names held
 * --------------------------
 * A database mh_pack wrote records each native row's SHA-256 in a table
 * its triggers keep true (finders/sqlar.h, MH_SAR_SHA_CREATE).  Where the
 * host's blob cache is private, the first import of such a module keeps
 * its bytes there (cache/blobs.h), and later hosts map that copy: no
 * memfd, no row read.  From the SQF_SNAP_AT-th find on a connection, the
 * database's names are held in memory (finders/sqlsnap.h) while its file
 * stays unchanged, and finds of modules with copies, of modules the
 * database lacks, and of packages run no statement.  docs/formats.md.
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
#include "cache/blobs.h"
#include "finders/sqlsnap.h"
#include "loaders/elf.h"
#include "cache/stamp.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define SQF_SCHEME "sqlite:"
#define SQF_BUSY_MS 5000
#define SQF_IDENT_MAX 200   /* a row's identity (row_identity): <= 174 */
#define SQF_SNAP_AT 4       /* finds on a connection before its names are
                               held in memory (a host asking once pays
                               nothing for a snapshot) */

static const char SQLITE_MAGIC[16] = "SQLite format 3";

typedef struct sqf_state {
    mh_host *host;
    const char *path;         /* interned database path */
    pthread_mutex_t lock;
    sqlite3 *db;              /* NULL while closed */
    sqlite3_stmt *find, *ns, *read, *list;
    sqlite3_stmt *byrow;      /* a row's bytes by row id (shas only) */
    sqlite3_stmt *mode_of;    /* a row's mode by name: whether a listed
                                 Lua module is shadowed by native code */
    bool shas;                /* the database records its native code's
                                 SHA-256 (MH_SAR_SHA_CREATE) and this host
                                 keeps blobs: modules are mapped from
                                 copies (cache/blobs.h) */
    bool sha_warned;          /* a recorded hash found false: said once */
    mh_sqs *snap;             /* its names, while the file is unchanged
                                 (shas only), or NULL */
    unsigned finds;           /* finds on this connection, to SQF_SNAP_AT */
    bool snap_failed;         /* no snapshot to be had on this connection */
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

/* Is path a regular file with the SQLite header?  1 or 0; -1 with errno
 * when that cannot be told now: no descriptor to look with, or an I/O
 * error opening or reading it. */
static int sqlite_header(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return errno == EIO || mh_errno_status(errno, MH_EIO) == MH_EAGAIN
                   ? -1 : 0;
    struct stat st = {0};
    char head[16];
    ssize_t got = -1;
    bool yes = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
               (got = read(fd, head, sizeof head)) == (ssize_t)sizeof head &&
               memcmp(head, SQLITE_MAGIC, sizeof head) == 0;
    int e = errno;
    close(fd);
    if (got < 0 && S_ISREG(st.st_mode) && e == EIO) {
        errno = e;
        return -1;
    }
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

static void finalize_all(sqf_state *s)
{
    sqlite3_finalize(s->find);
    sqlite3_finalize(s->ns);
    sqlite3_finalize(s->read);
    sqlite3_finalize(s->list);
    sqlite3_finalize(s->byrow);
    sqlite3_finalize(s->mode_of);
    s->find = s->ns = s->read = s->list = s->byrow = s->mode_of = NULL;
}

static void db_close(sqf_state *s)
{
    mh_sqs_free(s->host, s->snap);
    s->snap = NULL;
    s->finds = 0;
    s->snap_failed = false;
    finalize_all(s);
    sqlite3_close(s->db); /* statements are gone: never SQLITE_BUSY */
    s->db = NULL;
}

/* Is the sqlar table, declared by sql, a WITHOUT ROWID one?  SQLite's own
 * answer (its table list), which no spacing, case or comment in the
 * declaration can mislead; the declaration's words only where this SQLite
 * has no table list (before 3.37). */
static bool without_rowid(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *q = NULL;
    int wr = -1;
    if (sqlite3_prepare_v2(db, "SELECT wr FROM pragma_table_list WHERE "
                           "schema = 'main' AND name = 'sqlar' COLLATE "
                           "NOCASE", -1, &q, NULL) == SQLITE_OK &&
        sqlite3_step(q) == SQLITE_ROW)
        wr = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    return wr >= 0 ? wr != 0 : strcasestr(sql, "WITHOUT ROWID") != NULL;
}

static mh_status db_open_once(sqf_state *s, bool recovering, mh_error **err);

/* Has the sqlar table a column named _rowid_, which every statement here
 * would then read for the row id (a row's identity, and the row a copy
 * is read from)? */
static bool rowid_shadowed(sqlite3 *db)
{
    sqlite3_stmt *q = NULL;
    bool yes = sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info("
                                  "'sqlar') WHERE name = '_rowid_' COLLATE "
                                  "NOCASE", -1, &q, NULL) == SQLITE_OK &&
               sqlite3_step(q) == SQLITE_ROW;
    sqlite3_finalize(q);
    return yes;
}

/* Does the database keep its native code's SHA-256 (MH_SAR_SHA_CREATE: the
 * table, and all three triggers that keep it true, as written), and may this
 * host keep the copies (its blob cache is private)?  Then an import maps
 * a module's copy and reads no row.  Anything else -- an older database,
 * one `sqlite3 -A` made, a table without its triggers -- is read as
 * before. */
static bool uses_shas(sqf_state *s)
{
    bool yes = mh_sar_shas_intact(s->db);
    if (yes && !mh_blobs_ready(s->host)) {
        MH_TRACE(s->host, "sqlite: %s records its modules' SHA-256, but "
                 "there is no blob cache to map copies from", s->path);
        return false;
    }
    return yes;
}

/* Open (or reopen) the connection.  MH_OK, or an error naming the file. */
static mh_status db_open(sqf_state *s, mh_error **err)
{
    return db_open_once(s, false, err);
}

/* Prepare the connection's statements, for a sqlar table whose row id
 * column is `rowid` ("0" for none), with or without the hashes
 * (s->shas).  SQLITE_OK, or SQLite's code. */
static int prepare(sqf_state *s, const char *rowid)
{
    char find_sql[2048], list_sql[200];
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
    "SELECT name, mode, mtime, sz, length(data), %s, " data ", NULL "     \
    "FROM sqlar WHERE name = ?" #n " COLLATE BINARY AND "                 \
    "typeof(name) = 'text'"
#define FIND_DATA "CASE WHEN length(data) <= ?4 THEN data END"
    /* With the hashes, the native row comes with its SHA-256, and its
     * bytes only where it has none: the host maps a copy of it.  The
     * triggers are looked for in the same read transaction, so a writer
     * that drops them and changes a row is never taken at its word. */
#define SHA_JOIN                                                          \
    " FROM sqlar s LEFT JOIN " MH_SAR_SHA_TABLE " h ON " MH_SAR_SHA_MATCH \
    " AND " MH_SAR_SHA_TRIGGERS_OK " "
    if (s->shas)
        snprintf(find_sql, sizeof find_sql,
                 "SELECT s.name, s.mode, s.mtime, s.sz, length(s.data), "
                 "s._rowid_, CASE WHEN h.sha256 IS NULL AND length(s.data) "
                 "<= ?4 THEN s.data END, h.sha256" SHA_JOIN "WHERE s.name = "
                 "?1 COLLATE BINARY AND typeof(s.name) = 'text' UNION ALL "
                 FIND_ARM(2, FIND_DATA) " UNION ALL " FIND_ARM(3, "NULL"),
                 rowid, rowid);
    else
        snprintf(find_sql, sizeof find_sql,
                 FIND_ARM(1, FIND_DATA) " UNION ALL " FIND_ARM(2, FIND_DATA)
                 " UNION ALL " FIND_ARM(3, "NULL"), rowid, rowid, rowid);
#undef FIND_ARM
#undef FIND_DATA
    snprintf(list_sql, sizeof list_sql, "SELECT name, mode, mtime, sz, "
             "length(data), %s FROM sqlar WHERE typeof(name) = 'text' "
             "ORDER BY name COLLATE BINARY", rowid);
    int rc;
    if ((rc = sqlite3_prepare_v3(s->db, find_sql, -1,
             SQLITE_PREPARE_PERSISTENT, &s->find, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v3(s->db,
             "SELECT 1 FROM sqlar WHERE name = ?1 COLLATE BINARY OR "
             "(name >= ?2 COLLATE BINARY AND name < ?3 COLLATE BINARY) "
             "LIMIT 1", -1,
             SQLITE_PREPARE_PERSISTENT, &s->ns, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v3(s->db, s->shas
             ? "SELECT s.sz, s.data, h.sha256" SHA_JOIN
               "WHERE s.name = ?1 COLLATE BINARY"
             : "SELECT sz, data, NULL FROM sqlar "
               "WHERE name = ?1 COLLATE BINARY", -1,
             SQLITE_PREPARE_PERSISTENT, &s->read, NULL)) != SQLITE_OK ||
        (s->shas && (rc = sqlite3_prepare_v3(s->db,
             "SELECT sz, data FROM sqlar WHERE _rowid_ = ?1", -1,
             SQLITE_PREPARE_PERSISTENT, &s->byrow, NULL)) != SQLITE_OK) ||
        (rc = sqlite3_prepare_v3(s->db, list_sql, -1,
             SQLITE_PREPARE_PERSISTENT, &s->list, NULL)) != SQLITE_OK ||
        (rc = sqlite3_prepare_v3(s->db,
             "SELECT mode FROM sqlar WHERE name = ?1 COLLATE BINARY AND "
             "typeof(name) = 'text'", -1,
             SQLITE_PREPARE_PERSISTENT, &s->mode_of, NULL)) != SQLITE_OK)
        return rc;
#undef SHA_JOIN
    return SQLITE_OK;
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
    char why[200];
    if (!mh_sar_path_fits(s->path, why, sizeof why))
        return mh_err(h, err, MH_EPATH, "module database %s: %s; move it to "
                      "a shorter one", s->path, why);
    /* SQLite takes errno as the system's reason for a failure, also one
     * that made no system call. */
    errno = 0;
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
        rowid = plain && !without_rowid(s->db, sql) ? "_rowid_" : "0";
        if (plain && rowid_shadowed(s->db)) {
            mh_err(h, err, MH_EFORMAT, "module database %s: 'sqlar' has a "
                   "column named _rowid_, which hides the row id; refusing "
                   "to read it", s->path);
            sqlite3_finalize(chk);
            db_close(s);
            return MH_EFORMAT;
        }
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
    s->shas = strcmp(rowid, "0") != 0 && uses_shas(s);
    rc = prepare(s, rowid);
    if (rc != SQLITE_OK && s->shas) { /* a table of hashes not ours */
        MH_TRACE(h, "sqlite: %s: its " MH_SAR_SHA_TABLE " table is not "
                 "used: %s", s->path, sqlite3_errmsg(s->db));
        finalize_all(s);
        s->shas = false;
        rc = prepare(s, rowid);
    }
    if (rc != SQLITE_OK)
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
     * Settled (the entry unusable: host/path.c opens it again a second
     * later, or after mh_invalidate_caches): what the bytes say
     * (MH_EFORMAT), and a file this process may not open, or whose hot
     * journal it may not roll back (MH_EPATH). */
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
    /* The journal is still there: this process may not write what rolling
     * it back writes.  Not passing: only someone who may can mend it, and
     * the entry is tried again later (as any unusable entry). */
    if (rc == SQLITE_READONLY_ROLLBACK) {
        mh_err(h, err, MH_EPATH, "module database %s: a writer that did not "
               "finish left its journal %s-journal, which only a process "
               "that may write the database and its directory can roll "
               "back, and this one may not; open it once as a user who may "
               "(for instance: sqlite3 %s 'PRAGMA schema_version')",
               s->path, s->path, s->path);
        db_close(s);
        return MH_EPATH;
    }
    /* A WAL-mode database needs its -wal and -shm files, which a reader
     * that cannot write the directory (a system database, a read-only
     * filesystem) cannot make: say so, and how to mend it.  Not passing:
     * tried again later, as any unusable entry.  (A directory it may write,
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
    int hs = path == entry ? sqlite_header(path) : 1;
    if (hs == 0) /* taken on trust */
        return mh_err(h, err, MH_EPATH, "entry '%s' is no module database "
                      "(it was taken for one when it could not be looked "
                      "at)", entry);
    if (hs < 0) /* a passing trouble, or the disk's */
        return mh_err(h, err, mh_errno_status(errno, MH_EIO), "entry '%s': "
                      "cannot read its first bytes, to tell whether it is a "
                      "module database: %s", entry, mh_errno_text(errno));
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
    bool absent = rc == MH_ENOTFOUND;
    if (rc != MH_OK && !absent) {
        rc = mh_err(h, err, rc, "module database %s not used: %s", ipath,
                    mh_error_message(se));
        mh_error_free(se);
        mh_mem_free(h, s, sizeof *s);
        return rc;
    }
    mh_error_free(se);
    /* An I/O error is no verdict on the entry: it is left to the first
     * find, which opens the database again and passes over the entry for
     * that import if it fails again (ensure_current).  So is a database
     * that does not exist yet (`modhost pack` makes it later), as a
     * directory entry works once its directory appears.  MH_EAGAIN (busy,
     * no descriptor) fails the open, which stops the import (host/find.c)
     * and is tried again at the next. */
    mh_error *oe = NULL;
    if (absent) {
        MH_TRACE(h, "sqlite: %s does not exist (yet); looked for at each "
                 "find", ipath);
        rc = MH_OK;
    } else
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
        int e = errno;
        if (s->db)
            MH_TRACE(s->host, "sqlite: %s is gone; connection closed",
                     s->path);
        db_close(s);
        if (e == ENOENT) /* never opened: it never did (sqf_open) */
            mh_buf_printf(why, "database %s %s", s->path,
                          s->ino ? "no longer exists" : "does not exist");
        else
            mh_buf_printf(why, "database %s cannot be looked at: %s",
                          s->path, mh_errno_text(e));
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
    if (sc == MH_EAGAIN) { /* the same, for a listing: not now, said so */
        mh_buf_printf(why, "module database %s cannot be checked now: %s",
                      s->path, mh_error_message(e));
        mh_error_free(e);
        return MH_ENOTFOUND;
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
                         const char *name, mh_buf *why)
{
    const char *msg = s->db ? sqlite3_errmsg(s->db)
                            : "the database could not be opened again";
    mh_buf_printf(why, "database error %s '%s': %s", what, name, msg);
    if (!s->warned) {
        s->warned = true;
        mh_log(s->host, MH_LOG_WARN, "module database %s: %s '%s': %s",
               s->path, what, name, msg);
    }
    sqlite3_reset(st);
    return MH_ENOTFOUND;
}

/* What changes whenever a row's bytes may have: its columns and the
 * database file's identity.  Into buf. */
static const char *ident_of(const sqf_state *s, const int64_t v[5],
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
        p = mh_put_sdec(p, (long long)v[i]);
    }
    *p = '\0';
    return buf;
}

static const char *row_identity(const sqf_state *s, sqlite3_stmt *st, int col,
                                char buf[SQF_IDENT_MAX])
{
    int64_t v[5];
    for (int i = 0; i < 5; i++)
        v[i] = sqlite3_column_int64(st, col + i);
    return ident_of(s, v, buf);
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
 * which this read-only connection may not roll back, or because the
 * schema changed under a statement that reads the hashes (their table
 * dropped: in WAL mode the file's stat need not show it)?  Then
 * reconnect (db_open rolls the journal back, and looks for the hashes
 * again): MH_OK, and the caller tries once more; MH_EAGAIN with *busy
 * set when the database is locked now; else MH_ENOTFOUND.  Lock held. */
static mh_status reconnect(sqf_state *s, mh_buf *why, mh_error **busy)
{
    if (!s->db ||
        (sqlite3_extended_errcode(s->db) != SQLITE_READONLY_ROLLBACK &&
         !(s->shas && sqlite3_extended_errcode(s->db) == SQLITE_ERROR)))
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

/* Has the database file been still long enough that any later change
 * moves its ctime (it was checked against s->ctim just now), on a local
 * filesystem that keeps a ctime of its own (a network filesystem's
 * cached attributes may hide a change)?  Then a snapshot of its names
 * holds while the ctime stays: a commit writes the file.  (A WAL
 * database's commits do not: none is taken of one, mh_sqs_read.) */
static bool settled(const sqf_state *s)
{
    struct timespec now;
    struct statfs sf;
    clock_gettime(CLOCK_REALTIME, &now);
    return !mh_io_age_unsure(now.tv_sec, now.tv_nsec, s->ctim.tv_sec,
                             s->ctim.tv_nsec) &&
           statfs(s->path, &sf) == 0 &&
           mh_stamp_fs_ok((unsigned long)sf.f_type);
}

/* May this host write copies (MH_CONFIG_NO_COPY_WRITE,
 * MODHOST_DONTWRITECOPIES)?  A cache that does not outlive the process
 * (a container started afresh) would pay for writing them at every
 * start; copies already there are mapped either way. */
static bool writes_copies(mh_host *h)
{
    const char *v = mh_host_getenv(h, "MODHOST_DONTWRITECOPIES");
    return !(h->flags & MH_CONFIG_NO_COPY_WRITE) &&
           !(v && v[0] && strcmp(v, "0"));
}

/* Where the copy of row rel with SHA-256 sha is kept: a file per content
 * and origin (DB!/rel), so that two modules with the same bytes are two
 * loaded objects, as two files would be.  False if it cannot be named. */
static bool copy_path(const sqf_state *s, const char *rel, const char *sha,
                      char *blob, size_t size)
{
    char origin[PATH_MAX + MH_NAME_MAX + 8];
    return join3(origin, sizeof origin, s->path, "!/", rel) &&
           mh_blobs_path(s->host, sha, origin, strlen(origin), blob, size);
}

/* A native row's bytes, read from the database, whose SHA-256 it records
 * as sha: kept as its copy at blob when they hash to it (true: the host
 * can map that copy; a file already there is replaced only when
 * `replace`, else taken, as another host's).  When they do not, the
 * table is wrong -- a writer got around its triggers -- and the bytes are
 * loaded as read, with a warning once per connection.  Lock held. */
static bool keep_copy(sqf_state *s, const char *rel, const char *sha,
                      const char *blob, const mh_blob *b, bool replace)
{
    char hex[65];
    if (!mh_sha256_hex(b->data, b->len, 32, hex))
        return false;
    if (memcmp(hex, sha, 64) != 0) {
        if (!s->sha_warned) {
            s->sha_warned = true;
            mh_log(s->host, MH_LOG_WARN, "module database %s, entry %s: its "
                   "SHA-256 in the " MH_SAR_SHA_TABLE " table is not that of "
                   "its data (a writer went around the table's triggers?); "
                   "the data is loaded as read, and no copy is kept. To "
                   "mend it: sqlite3 %s 'DELETE FROM " MH_SAR_SHA_TABLE "', "
                   "then 'modhost pack' into it records every hash again",
                   s->path, rel, s->path);
        }
        return false;
    }
    /* Only an image the memory loader would take: one that maps outside
     * its bytes (truncated) would fault in the dynamic loader, where the
     * memory loader refuses it with the reason. */
    const char *bad = mh_elf_check(b->data, b->len);
    if (bad) {
        MH_TRACE(s->host, "sqlite: %s!/%s: no copy kept: %s", s->path, rel,
                 bad);
        return false;
    }
    return mh_blobs_put(s->host, blob, b->data, b->len, replace);
}

/* A row read on its own (read(): the host found its copy unusable, or
 * wants its metadata), whose SHA-256 is recorded as sha: a copy that is
 * there but bad itself -- other bytes, a link, another's file, writable
 * by others (what mh_sec_open_copy refuses as MH_EFORMAT) -- is kept anew
 * from the bytes b.  One that is not there is left so (only an import
 * keeps one, native_copy, not a listing), and so is one refused for where
 * it is (a network filesystem) or for want of a descriptor: writing it
 * again would not help.  Lock held. */
static void mend_copy(sqf_state *s, const char *rel, const char *sha,
                      const mh_blob *b)
{
    char blob[PATH_MAX];
    int fd;
    long long size;
    const char *why;
    if (!writes_copies(s->host) || !mh_blobs_ready(s->host) ||
        !copy_path(s, rel, sha, blob, sizeof blob))
        return;
    mh_status rc = mh_sec_open_copy(s->host, blob, sha,
                                    s->host->max_module_size, true, &fd,
                                    &size, &why);
    if (rc == MH_OK)
        close(fd);
    if (rc != MH_EFORMAT)
        return;
    MH_TRACE(s->host, "sqlite: the copy %s of %s!/%s: %s; kept anew", blob,
             s->path, rel, why);
    keep_copy(s, rel, sha, blob, b, true);
}

/* The native row s->find stands on, in a database that records hashes
 * (column 7): its SHA-256 into sha ("" if none), and into blob (size
 * bytes) the copy the host is to map, or "" for none.  A copy already in
 * the blob cache is named as it is.  Else, for an import (out not NULL),
 * the row's bytes are read by row id in the same read transaction (the
 * row this find saw) and kept as the copy, which the host then maps like
 * any other -- so every host of the process maps the same file, and
 * shares one loaded object -- or, if they cannot be kept, handed over in
 * *out.  Lock held. */
static void native_copy(sqf_state *s, const char *rel, mh_blob *out,
                        char sha[65], char *blob, size_t size)
{
    sha[0] = blob[0] = '\0';
    if (sqlite3_column_type(s->find, 7) == SQLITE_NULL)
        return; /* no hash: the statement took the bytes, if asked to */
    const unsigned char *t = sqlite3_column_text(s->find, 7);
    bool ok = mh_hex64_ok(t, (size_t)sqlite3_column_bytes(s->find, 7)) &&
              copy_path(s, rel, (const char *)t, blob, size);
    if (ok) {
        memcpy(sha, t, 64);
        sha[64] = '\0';
        if (access(blob, F_OK) == 0)
            return;
    }
    if (!out) {
        blob[0] = '\0';
        return;
    }
    /* No copy yet (or a hash not to be used): the bytes, as the row is in
     * this read transaction. */
    const char *why;
    sqlite3_bind_int64(s->byrow, 1, sqlite3_column_int64(s->find, 5));
    if (sqlite3_step(s->byrow) == SQLITE_ROW) /* in the find's transaction */
        row_bytes(s->host, s->byrow, 0, 1, out, &why); /* else the read */
    sqlite3_reset(s->byrow);
    if (ok && out->data && writes_copies(s->host) &&
        keep_copy(s, rel, sha, blob, out, false))
        mh_blob_free(s->host, out);
    else
        blob[0] = '\0';
}

/* No module `name` here, but rows under its path rel (package): a
 * namespace portion, else a miss saying so. */
static mh_status package_or_none(sqf_state *s, mh_finder_ctx *cx,
                                 const char *name, const char *rel,
                                 bool package, mh_finder_spec *spec)
{
    char origin[PATH_MAX + MH_NAME_MAX + 8];
    if (!package) {
        mh_buf_printf(MH_FCX(cx)->why, "no %s.so or %s.lua in the archive",
                      rel, rel);
        return MH_ENOTFOUND;
    }
    snprintf(origin, sizeof origin, "%s!/%s", s->path, rel);
    spec->kind = MH_KIND_NAMESPACE;
    spec->origin = mh_int_cstr(s->host, origin);
    return spec->origin ? MH_OK
                        : mh_err(s->host, MH_FCX(cx)->err, MH_ENOMEM,
                                 "out of memory finding '%s'", name);
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
    char ident[400];
    char sha[65] = "", blob[PATH_MAX] = ""; /* the native row's copy */

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
    if (s->shas && !s->snap && !s->snap_failed &&
        ++s->finds >= SQF_SNAP_AT && settled(s)) {
        bool again = false;
        s->snap = mh_sqs_read(h, s->db, s->path, &again);
        s->snap_failed = !s->snap && !again;
    }
    if (s->snap) {
        /* Answered from the names held: a module with its copy, a module
         * this database does not have, a package.  Anything else -- a
         * Lua module, a sidecar manifest, a row that is no file, a copy
         * not kept yet -- is asked of the database below. */
        const mh_sqs *q = s->snap;
        const mh_sqs_row *r;
        char *at = MH_FCX(cx)->path; /* the origin; also the copy's tag */
        if (mh_sqs_has(q, row[0].rel, row[0].n)) {
            if ((r = mh_sqs_hash(q, row[0].rel, row[0].n)) &&
                !mh_sar_is_link(r->mode) && !mh_sar_is_dir(r->mode) &&
                !mh_sqs_has(q, row[META].rel, row[META].n) &&
                join3(at, sizeof MH_FCX(cx)->path, s->path, "!/",
                      row[0].rel) &&
                mh_blobs_path(h, r->sha, at, strlen(at), blob, sizeof blob) &&
                access(blob, F_OK) == 0) {
                int64_t v[5] = {r->mode, r->mtime, r->sz, r->len, r->row};
                spec->kind = MH_KIND_NATIVE;
                spec->origin = at;
                spec->key = mh_int_str(h, row[0].rel, row[0].n);
                spec->identity = mh_int_cstr(h, ident_of(s, v, ident));
                spec->copy = mh_int_cstr(h, blob);
                spec->copy_sha256 = mh_int_str(h, r->sha, 64);
                rc = spec->key && spec->identity && spec->copy &&
                             spec->copy_sha256
                         ? MH_OK
                         : mh_err(h, MH_FCX(cx)->err, MH_ENOMEM, "out of "
                                  "memory finding '%s'", name);
                goto out;
            }
        } else if (!mh_sqs_has(q, row[1].rel, row[1].n)) {
            size_t d = mh_name_relpath(name, "", rel, sizeof rel);
            rc = package_or_none(s, cx, name, rel, mh_sqs_has_under(q, rel, d),
                                 spec);
            goto out;
        }
        blob[0] = '\0';
    }
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
        sha[0] = blob[0] = '\0';
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
                    if (k == 0 && s->shas && !mh_sar_is_link(row[k].mode) &&
                        !mh_sar_is_dir(row[k].mode))
                        native_copy(s, row[k].rel, with_bytes ? &code[k]
                                                              : NULL,
                                    sha, blob, sizeof blob);
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
        mh_status hj = reopened ? MH_ENOTFOUND : reconnect(s, why, &busy);
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
        rc = damaged(s, s->find, "looking up module", name, why);
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
        if (k == 0 && blob[0] &&
            (!(spec->copy = mh_int_cstr(h, blob)) ||
             !(spec->copy_sha256 = mh_int_str(h, sha, 64))))
            spec->key = NULL; /* out of memory, below */
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
    if (step == SQLITE_ROW || step == SQLITE_DONE) {
        rc = package_or_none(s, cx, name, rel, step == SQLITE_ROW, spec);
    } else if (locked(step)) {
        rc = locked_stop(s, name, step, MH_FCX(cx)->err);
    } else {
        rc = damaged(s, s->ns, "looking up package", name, why);
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
    int step;
    for (bool again = true;; again = false) {
        if (!s->db) {
            mh_buf b;
            mh_buf_init(&b, h, 0);
            mh_error *busy = NULL;
            rc = ensure_current(s, &b, &busy);
            if (rc == MH_EAGAIN) /* locked, short of descriptors: not now */
                rc = mh_err(h, err, MH_EAGAIN, "cannot read %s!/%s now: %s; "
                            "try again", s->path, key,
                            mh_error_message(busy));
            else if (rc != MH_OK)
                rc = mh_err(h, err, rc == MH_ENOMEM ? MH_ENOMEM : MH_EIO,
                            "cannot read %s!/%s: %s", s->path, key,
                            mh_buf_str(&b));
            mh_error_free(busy);
            mh_buf_free(&b);
            if (rc != MH_OK)
                goto out;
        }
        sqlite3_bind_text(s->read, 1, key, -1, SQLITE_STATIC);
        step = mh_fault(h, "sqlite") ? SQLITE_IOERR : sqlite3_step(s->read);
        if (!(again && step == SQLITE_ERROR && s->shas))
            break;
        db_close(s); /* the hashes' table went: opened again, once */
    }
    if (step == SQLITE_ROW) {
        /* sz and data come from one row of one statement: one snapshot. */
        rc = row_bytes(h, s->read, 0, 1, out, &why);
        const unsigned char *sha = sqlite3_column_text(s->read, 2);
        if (rc == MH_OK &&
            mh_hex64_ok(sha, (size_t)sqlite3_column_bytes(s->read, 2)))
            mend_copy(s, key, (const char *)sha, out);
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
    } else if (locked(step)) { /* a writer, past the busy timeout */
        rc = mh_err(h, err, MH_EAGAIN, "module database %s, entry %s: %s (a "
                    "writer held it past the %d s busy timeout); try again",
                    s->path, key, sqlite3_errstr(step), SQF_BUSY_MS / 1000);
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

/* Does the archive hold native code for the Lua module at rel (rlen
 * bytes, ending in ".lua"): a row REL.so that is a file, which a find
 * takes first?  1 yes, 0 no, -1 the look failed (the error in s->db). */
static int native_shadows(sqf_state *s, const char *rel, size_t rlen)
{
    char so[MH_NAME_MAX + 8];
    size_t stem = rlen - (sizeof MH_LUA_SUFFIX - 1);
    if (stem + sizeof MH_NATIVE_SUFFIX > sizeof so)
        return 0; /* no module name is that long */
    memcpy(so, rel, stem);
    memcpy(so + stem, MH_NATIVE_SUFFIX, sizeof MH_NATIVE_SUFFIX);
    sqlite3_bind_text(s->mode_of, 1, so, -1, SQLITE_STATIC);
    int step = sqlite3_step(s->mode_of);
    int64_t mode = step == SQLITE_ROW ? sqlite3_column_int64(s->mode_of, 0)
                                      : 0;
    sqlite3_reset(s->mode_of);
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        return -1;
    return step == SQLITE_ROW && !mh_sar_is_dir(mode) &&
           !mh_sar_is_link(mode);
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
        /* As find does: native code before Lua source of the same name
         * (X.lua sorts before X.so, and the first a listing gives is
         * the one kept). */
        int shadowed = kind == MH_KIND_LUA ? native_shadows(s, rel, rlen)
                                           : 0;
        if (shadowed < 0) {
            rc = mh_err(h, err, MH_EIO, "module database %s: looking up "
                        "the native code of %s: %s", s->path, rel,
                        sqlite3_errmsg(s->db));
            break;
        }
        if (shadowed)
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
