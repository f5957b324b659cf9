/*
 * tests/fuzz/fuzz_sqlar.c -- module databases: the SQLite finder
 * (finders/sqlite.c) and the archive row format (finders/sqlar.c) on a
 * fuzzed database file.
 *
 * The input is written as a database file in the process's temp
 * directory (its -wal, -shm and -journal files removed first, so nothing
 * of one input leaks into the next).  Then:
 *   1. the target reads every row itself, hardened as the finder is
 *      (read-only, defensive, no triggers or views), and gives each to
 *      mh_sar_decode and mh_sar_name_ok -- rows the finder would only
 *      reach by name included;
 *   2. mh_sar_decode also runs on the raw input (a 4-byte size, then
 *      data), for the zlib paths;
 *   3. a host with the file as its only entry ("sqlite:PATH") lists it,
 *      finds and reads the metadata of what it lists and of a few fixed
 *      names, imports some, discovers (MH_CONFIG_NO_INDEX) and asks for
 *      entry points.
 * Imports read the row, inflate it, check the ELF, hash it and write the
 * memfd; dlopen always fails (fz_host_new's fault hook).  A Lua module
 * would run, so imports are skipped when any row name holds ".lua" or
 * the database fails PRAGMA integrity_check (an index entry could then
 * name a row other than the one the scan saw).
 */
#include "fuzz.h"
#include "finders/sqlar.h"

#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_NAMES 4

typedef struct listed {
    char names[MAX_NAMES][MH_NAME_MAX + 1];
    size_t n, total;
} listed;

static int on_list(void *ud, const mh_spec_info *info)
{
    listed *l = ud;
    FZ_CHECK(mh_name_check(info->name, NULL) == MH_OK, "listed a bad name");
    FZ_CHECK(info->origin && strstr(info->origin, "!/"), "origin '%s'",
             info->origin ? info->origin : "(null)");
    if (l->n < MAX_NAMES)
        snprintf(l->names[l->n++], sizeof l->names[0], "%s", info->name);
    l->total++;
    return 0;
}

static int on_meta(void *ud, const mh_module_meta *m)
{
    (void)ud;
    FZ_CHECK(mh_name_check(m->name, NULL) == MH_OK, "discovered a bad name");
    if (m->manifest)
        (void)strlen(mh_manifest_json(m->manifest));
    if (m->reason)
        (void)strlen(m->reason);
    return 0;
}

static int on_entry_point(void *ud, const mh_entry_point *ep)
{
    (void)ud;
    (void)strlen(ep->module);
    (void)strlen(ep->export_name);
    return 0;
}

/* An independent reading of "a safe relative path". */
static bool name_safe(const char *s)
{
    if (!s[0] || s[0] == '/' || s[strlen(s) - 1] == '/')
        return false;
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') ||
            (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += n;
        if (*p)
            p++;
    }
    return true;
}

/* Every row through mh_sar_decode; true when imports are safe. */
static bool rows(mh_host *h, const char *db_path)
{
    sqlite3 *db = NULL;
    bool safe = false;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) !=
        SQLITE_OK) {
        sqlite3_close(db);
        return false;
    }
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_VIEW, 0, NULL);
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, (int)FZ_MAX_MODULE + 1024);
    sqlite3_exec(db, "PRAGMA cell_size_check = ON", NULL, NULL, NULL);

    sqlite3_stmt *st = NULL;
    bool intact = false;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st,
                           NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *r = sqlite3_column_text(st, 0);
        intact = r && strcmp((const char *)r, "ok") == 0;
    }
    sqlite3_finalize(st);
    st = NULL;

    if (sqlite3_prepare_v2(db, "SELECT name, sz, data, typeof(sz), "
                           "typeof(data) FROM sqlar", -1, &st,
                           NULL) == SQLITE_OK) {
        bool lua = false;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const void *nb = sqlite3_column_blob(st, 0);
            size_t nlen = (size_t)sqlite3_column_bytes(st, 0);
            if (nb && memmem(nb, nlen, ".lua", 4))
                lua = true;
            const char *name = (const char *)sqlite3_column_text(st, 0);
            if (name) {
                bool ok = mh_sar_name_ok(name);
                FZ_CHECK(ok == name_safe(name), "mh_sar_name_ok('%s') = %d",
                         name, ok);
            }
            const char *tdata = (const char *)sqlite3_column_text(st, 4);
            const char *tsz = (const char *)sqlite3_column_text(st, 3);
            if (!tdata || strcmp(tdata, "blob") != 0 || !tsz ||
                strcmp(tsz, "integer") != 0)
                continue;
            int64_t sz = sqlite3_column_int64(st, 1);
            const void *data = sqlite3_column_blob(st, 2);
            size_t len = (size_t)sqlite3_column_bytes(st, 2);
            mh_blob b;
            const char *why = NULL;
            mh_status s = mh_sar_decode(h, data, len, sz, FZ_MAX_MODULE, &b,
                                        &why);
            FZ_CHECK(s == MH_OK ? b.len == (size_t)sz && b.size >= b.len
                                : why != NULL && !b.data,
                     "decode status %d, sz %lld, len %zu", (int)s,
                     (long long)sz, b.len);
            mh_blob_free(h, &b);
        }
        safe = rc == SQLITE_DONE && intact && !lua;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return safe;
}

static void remove_db(const char *db)
{
    static const char *const ext[] = {"", "-wal", "-shm", "-journal"};
    char p[4200];
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        snprintf(p, sizeof p, "%s%s", db, ext[i]);
        unlink(p);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char db[4096], entry[4200];
    snprintf(db, sizeof db, "%s", fz_path("modules.db"));
    snprintf(entry, sizeof entry, "sqlite:%s", db);
    remove_db(db);
    fz_write_file(db, data, size);

    fz_alloc a;
    mh_host *h = fz_host_new(entry, MH_CONFIG_NO_INDEX |
                             MH_CONFIG_NO_BYTECODE_WRITE, NULL, &a);
    FZ_CHECK(h != NULL, "host");

    bool importable = rows(h, db); /* 1. */

    /* 2. The raw input as a row: 4 bytes of sz (little-endian), then data. */
    if (size >= 4) {
        int32_t sz = (int32_t)((uint32_t)data[0] | (uint32_t)data[1] << 8 |
                               (uint32_t)data[2] << 16 |
                               (uint32_t)data[3] << 24);
        mh_blob b;
        const char *why = NULL;
        mh_status s = mh_sar_decode(h, data + 4, size - 4, sz, FZ_MAX_MODULE,
                                    &b, &why);
        FZ_CHECK(s == MH_OK ? b.len == (size_t)sz : why != NULL,
                 "raw decode status %d", (int)s);
        mh_blob_free(h, &b);
    }

    /* 3. Through the host. */
    listed l = {.n = 0};
    mh_error *err = NULL;
    mh_status st = mh_list(h, on_list, &l, &err);
    mh_error_free(err);
    err = NULL;
    (void)st;
    static const char *const fixed[] = {"hello", "codecs.rot13", "textutil",
                                        "pkg"};
    const char *names[MAX_NAMES + 4];
    size_t nn = 0;
    for (size_t i = 0; i < l.n; i++)
        names[nn++] = l.names[i];
    for (size_t i = 0; i < 4; i++)
        names[nn++] = fixed[i];
    for (size_t i = 0; i < nn; i++) {
        mh_spec_info info;
        memset(&info, 0, sizeof info);
        info.size = sizeof info;
        if (mh_find(h, names[i], &info, &err) == MH_OK)
            FZ_CHECK(info.origin && strcmp(info.name, names[i]) == 0,
                     "find '%s'", names[i]);
        mh_error_free(err);
        err = NULL;
        mh_manifest *m = NULL;
        if (mh_metadata(h, names[i], &m, &err) == MH_OK)
            FZ_CHECK(strcmp(mh_manifest_name(m), names[i]) == 0, "metadata");
        mh_manifest_free(m);
        mh_error_free(err);
        err = NULL;
    }
    if (importable)
        for (size_t i = 0; i < nn && i < 3; i++) {
            mh_module *mod = NULL;
            st = mh_import(h, names[i], &mod, &err);
            FZ_CHECK(st != MH_OK || mh_module_kind_of(mod) ==
                                         MH_KIND_NAMESPACE,
                     "'%s' was loaded although dlopen always fails",
                     names[i]);
            mh_error_free(err);
            err = NULL;
        }
    mh_discover(h, on_meta, NULL, &err);
    mh_error_free(err);
    err = NULL;
    mh_host_entry_points(h, "codec", on_entry_point, NULL, &err);
    mh_error_free(err);
    fz_host_free(h, &a);
    remove_db(db);
    return 0;
}
