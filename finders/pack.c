/*
 * finders/pack.c -- mh_pack: writing modules into a module database (a
 * SQLite Archive the stock `sqlite3 -A` reads, lists and extracts).
 *
 * One IMMEDIATE transaction for the whole call: readers in other processes
 * keep seeing the old rows until the commit, then the new ones, never a
 * mixture (SQLite's rollback journal makes the commit atomic).  On any
 * failure the transaction rolls back, and a database file this call
 * created is removed, so a failed pack leaves nothing behind.
 *
 * Not tied to a host: it uses the C allocator.
 */
#include "host/internal.h"
#include "finders/sqlar.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PACK_MAX_DEPTH 64
#define PACK_BUSY_MS 10000

typedef struct pack {
    sqlite3 *db;
    sqlite3_stmt *ins;
    const char *dbpath;
    size_t count;
    mh_error **err;
} pack;

static mh_status db_fail(pack *p, const char *what)
{
    return mh_err(NULL, p->err, MH_EIO, "module database %s: %s: %s",
                  p->dbpath, what, sqlite3_errmsg(p->db));
}

/* Read a whole regular file (at most MH_DEFAULT_MAX_MODULE bytes). */
static mh_status slurp(pack *p, const char *file, unsigned char **out,
                       size_t *len, struct stat *st)
{
    *out = NULL;
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return mh_err(NULL, p->err, MH_EIO, "cannot open %s: %s", file,
                      strerror(errno));
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return mh_err(NULL, p->err, MH_EIO, "%s is not a regular file", file);
    }
    if ((uint64_t)st->st_size > MH_DEFAULT_MAX_MODULE) {
        close(fd);
        return mh_err(NULL, p->err, MH_EFORMAT, "%s is larger than %zu bytes",
                      file, MH_DEFAULT_MAX_MODULE);
    }
    size_t n = (size_t)st->st_size, got = 0;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        close(fd);
        return mh_err(NULL, p->err, MH_ENOMEM, "out of memory reading %s",
                      file);
    }
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
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
    unsigned char *data, *z;
    size_t len = 0, zlen = 0;
    struct stat st;
    mh_status rc = slurp(p, file, &data, &len, &st);
    if (rc != MH_OK)
        return rc;
    int enc = mh_sar_encode(data, len, &z, &zlen);
    if (enc < 0) {
        free(data);
        return mh_err(NULL, p->err, MH_ENOMEM, "out of memory compressing %s",
                      file);
    }
    sqlite3_bind_text(p->ins, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(p->ins, 2, (sqlite3_int64)st.st_mode);
    sqlite3_bind_int64(p->ins, 3, (sqlite3_int64)st.st_mtime);
    sqlite3_bind_int64(p->ins, 4, (sqlite3_int64)len);
    sqlite3_bind_blob64(p->ins, 5, enc ? z : data, enc ? zlen : len,
                        SQLITE_STATIC);
    int step = sqlite3_step(p->ins);
    sqlite3_reset(p->ins);
    sqlite3_clear_bindings(p->ins);
    free(z);
    free(data);
    if (step != SQLITE_DONE)
        return mh_err(NULL, p->err, MH_EIO, "module database %s: storing %s: "
                      "%s", p->dbpath, name, sqlite3_errmsg(p->db));
    p->count++;
    return MH_OK;
}

/* Every regular file under dir/rel, stored as rel/...; hidden names and
 * symbolic links to directories are skipped. */
static mh_status add_tree(pack *p, const char *dir, char *rel, size_t rlen,
                          int depth)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s%s", dir, rlen ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d)
        return mh_err(NULL, p->err, MH_EIO, "cannot read directory %s: %s",
                      path, strerror(errno));
    mh_status rc = MH_OK;
    struct dirent *de;
    while (rc == MH_OK && (errno = 0, de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (nm[0] == '.')
            continue;
        size_t n = strlen(nm);
        if (rlen + 1 + n >= PATH_MAX - strlen(dir) - 1) {
            rc = mh_err(NULL, p->err, MH_EINVAL, "path too long under %s",
                        path);
            break;
        }
        size_t nr = rlen;
        if (rlen)
            rel[nr++] = '/';
        memcpy(rel + nr, nm, n + 1);
        char full[PATH_MAX];
        snprintf(full, sizeof full, "%s/%s", dir, rel);
        struct stat lst, st;
        if (lstat(full, &lst) == 0 && S_ISDIR(lst.st_mode)) {
            if (depth < PACK_MAX_DEPTH)
                rc = add_tree(p, dir, rel, nr + n, depth + 1);
        } else if (stat(full, &st) == 0 && S_ISREG(st.st_mode)) {
            rc = add_file(p, full, rel);
        }
        rel[rlen] = '\0';
    }
    if (rc == MH_OK && errno != 0)
        rc = mh_err(NULL, p->err, MH_EIO, "cannot read directory %s: %s",
                    path, strerror(errno));
    closedir(d);
    return rc;
}

static mh_status add_input(pack *p, const char *in)
{
    struct stat st;
    if (stat(in, &st) != 0)
        return mh_err(NULL, p->err, MH_EIO, "cannot pack %s: %s", in,
                      strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        char rel[PATH_MAX] = "";
        return add_tree(p, in, rel, 0, 0);
    }
    if (in[0] == '/') { /* absolute: stored by base name */
        const char *base = strrchr(in, '/') + 1;
        return add_file(p, in, base);
    }
    while (strncmp(in, "./", 2) == 0) /* "./a.so" is "a.so" */
        in += 2;
    return add_file(p, in, in);
}

mh_status mh_pack(const char *db, const char *const *inputs, size_t n,
                  size_t *count, mh_error **err)
{
    if (count)
        *count = 0;
    if (!db || (!inputs && n))
        return mh_err(NULL, err, MH_EINVAL, "mh_pack: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!inputs[i])
            return mh_err(NULL, err, MH_EINVAL, "mh_pack: input %zu is NULL",
                          i);

    struct stat st;
    bool existed = stat(db, &st) == 0;
    if (existed && !S_ISREG(st.st_mode))
        return mh_err(NULL, err, MH_EINVAL, "module database %s: not a "
                      "regular file", db);
    pack p = {.dbpath = db, .err = err};
    mh_status rc = MH_OK;
    if (sqlite3_open_v2(db, &p.db, SQLITE_OPEN_READWRITE |
                        SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE,
                        NULL) != SQLITE_OK) {
        rc = db_fail(&p, "cannot open");
        goto done;
    }
    sqlite3_db_config(p.db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(p.db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    sqlite3_busy_timeout(p.db, PACK_BUSY_MS);
    if (sqlite3_exec(p.db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(&p, "cannot start a transaction");
        goto done;
    }
    if (sqlite3_exec(p.db, MH_SAR_CREATE, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(p.db,
            "INSERT OR REPLACE INTO sqlar(name, mode, mtime, sz, data) "
            "VALUES (?1, ?2, ?3, ?4, ?5)", -1, &p.ins, NULL) != SQLITE_OK) {
        rc = db_fail(&p, "not a module database");
        goto rollback;
    }
    for (size_t i = 0; i < n && rc == MH_OK; i++)
        rc = add_input(&p, inputs[i]);
    sqlite3_finalize(p.ins);
    p.ins = NULL;
    if (rc == MH_OK) {
        if (sqlite3_exec(p.db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
            goto done;
        rc = db_fail(&p, "commit failed");
    }
rollback:
    sqlite3_finalize(p.ins);
    sqlite3_exec(p.db, "ROLLBACK", NULL, NULL, NULL);
done:
    sqlite3_close(p.db);
    if (rc != MH_OK && !existed)
        unlink(db); /* created by this call: leave nothing behind */
    if (rc == MH_OK && count)
        *count = p.count;
    return rc;
}
