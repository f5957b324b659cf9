/*
 * test_sqlite.c -- the SQLite finder: module databases (SQLite Archives,
 * the `sqlar` table of `sqlite3 -A`) on the search path, made both by
 * mh_pack and by the stock sqlite3 CLI.  How an entry is claimed, how
 * names resolve and origins read, mh_find and mh_list, path order, mh_pack
 * itself, broken rows (an error naming the database and the entry, for
 * that module only), unusable databases (one warning, then skipped), live
 * updates, threads, and a concurrent writer that must never tear a module.
 *
 * SQL reaches the databases through the sqlite3 command (db_exec), since
 * the tests link only libmodhost.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <modhost/finder.h>
#include <sqlite3.h>

#include "finders/sqlar.h"
#include "support/support.h"
#include "test.h"

/* What users see as the origin of ENTRY in database DB. */
static const char *origin_of(const char *db, const char *entry)
{
    return str_fmt("%s!/%s", db, entry);
}

static const char *entry_finder(mh_host *host, size_t i)
{
    const char *text = NULL, *finder = NULL;
    mh_path_source src;

    if (mh_host_path_entry(host, i, &text, &src, &finder) != MH_OK)
        FAIL("mh_host_path_entry(%zu) failed", i);
    return finder;
}

/* ------------------------------------------------------ claiming entries */

TEST(header_claims_file_with_any_extension)
{
    const char *db1 = db_make(tmp_path("plugins.bin"), "counter:one.so");
    const char *db2 = db_make(tmp_path("modules"), "answer7:two.so");
    mh_host *host = host_new_isolated(db1, db2);
    mh_module *one, *two;

    ASSERT_EQ_STR(entry_finder(host, 0), "sqlite");
    ASSERT_EQ_STR(entry_finder(host, 1), "sqlite");
    one = import_ok(host, "one");
    two = import_ok(host, "two");
    ASSERT_EQ_INT(call_int(one, "value"), 42);
    ASSERT_EQ_INT(call_int(two, "value"), 7);
    ASSERT_EQ_STR(mh_module_finder(one), "sqlite");
    ASSERT_EQ_STR(mh_module_origin(one), origin_of(db1, "one.so"));
    ASSERT_EQ_STR(mh_module_origin(two), origin_of(db2, "two.so"));
    ASSERT_EQ_INT(mh_module_kind_of(one), MH_KIND_NATIVE);
    mh_host_free(host);
}

TEST(scheme_entry_origin_is_plain_db_path)
{
    const char *db = db_make(tmp_path("p.db"), "counter:mod.so");
    mh_host *host = host_new_isolated(str_fmt("sqlite:%s", db));
    mh_module *mod;

    ASSERT_EQ_STR(entry_finder(host, 0), "sqlite");
    mod = import_ok(host, "mod");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_finder(mod), "sqlite");
    ASSERT_EQ_STR(mh_module_origin(mod), origin_of(db, "mod.so"));
    mh_host_free(host);
}

TEST(path_variable_holds_databases)
{
    const char *db1 = db_make(tmp_path("a.db"), "counter:froma.so");
    const char *db2 = db_make(tmp_path("b.sqlar"), "answer7:fromb.so");
    mh_config cfg;
    mh_host *host;
    mh_module *a, *b;

    env_set("MH_TEST_SQLITE_PATH", str_fmt("%s;sqlite:%s", db1, db2));
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path_env = "MH_TEST_SQLITE_PATH";
    cfg.cache_dir = tmp_path("cache");
    host = host_new_cfg(&cfg);
    a = import_ok(host, "froma");
    b = import_ok(host, "fromb");
    ASSERT_EQ_STR(mh_module_origin(a), origin_of(db1, "froma.so"));
    ASSERT_EQ_STR(mh_module_origin(b), origin_of(db2, "fromb.so"));
    ASSERT_EQ_INT(call_int(b, "value"), 7);
    mh_host_free(host);
}

TEST(other_files_are_not_claimed)
{
    const char *empty = tmp_path("empty.db");
    const char *old = tmp_path("old.db");
    const char *notes = tmp_path("notes.txt");
    static const char v2[32] = "SQLite format 2";
    mh_host *host;
    mh_module *mod;

    file_write(empty, "");
    file_write_bytes(old, v2, sizeof v2);
    file_write(notes, "SQLite format 3 is what this note is about\n");
    host = host_new_isolated(empty, old, notes);
    for (size_t i = 0; i < 3; i++) {
        const char *finder = entry_finder(host, i);
        if (finder && strcmp(finder, "sqlite") == 0)
            FAIL("entry %zu claimed by the sqlite finder", i);
    }
    ASSERT_STATUS(mh_import(host, "mod", &mod, ERR), MH_ENOTFOUND);
    mh_host_free(host);
}

TEST(relative_scheme_entry_is_not_opened)
{
    /* "sqlite:rel.db" must never mean "rel.db in the current directory" */
    mh_host *host;
    mh_module *mod;

    db_make(tmp_path("rel.db"), "counter:mod.so");
    if (chdir(tmp_dir()) < 0)
        FAIL("chdir: %s", strerror(errno));
    host = host_new_isolated("sqlite:rel.db");
    ASSERT_STATUS(mh_import(host, "mod", &mod, ERR), MH_ENOTFOUND);
    mh_host_free(host);
}

TEST(origin_uses_canonical_database_path)
{
    const char *db = db_make(tmp_path("p.db"), "counter:mod.so");
    const char *spelled = str_fmt("%s//p.db", tmp_dir());
    mh_host *h1 = host_new_isolated(spelled);
    mh_host *h2 = host_new_isolated(str_fmt("sqlite:%s", spelled));

    ASSERT_EQ_STR(mh_module_origin(import_ok(h1, "mod")),
                  origin_of(db, "mod.so"));
    ASSERT_EQ_STR(mh_module_origin(import_ok(h2, "mod")),
                  origin_of(db, "mod.so"));
    mh_host_free(h1);
    mh_host_free(h2);
}

/* ----------------------------------------------------- names and origins */

TEST(dotted_name_is_nested_entry)
{
    const char *db = db_make(tmp_path("p.db"), "counter:a/b/c.so",
                             "answer7:x.y.so");
    mh_host *host = host_new_isolated(db);
    mh_module *mod;

    mod = import_ok(host, "a.b.c");
    ASSERT_EQ_STR(mh_module_origin(mod), origin_of(db, "a/b/c.so"));
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    /* a.b.c is the row a/b/c.so; a row literally named x.y.so is not x.y */
    ASSERT_STATUS(mh_import(host, "x.y", &mod, ERR), MH_ENOTFOUND);
    mh_host_free(host);
}

TEST(names_are_case_sensitive)
{
    const char *db = db_make(tmp_path("p.db"), "counter:Mod.so",
                             "counter:NS/x.so");
    mh_host *host = host_new_isolated(db);
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;

    ASSERT_STATUS(mh_import(host, "mod", &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_find(host, "ns", &info, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_find(host, "ns.x", &info, ERR), MH_ENOTFOUND);
    import_ok(host, "Mod");
    ASSERT_STATUS(mh_find(host, "NS", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_NAMESPACE);
    mh_host_free(host);
}

TEST(underscore_is_not_a_wildcard)
{
    /* '_' is valid in module names and a LIKE wildcard in SQL */
    const char *db = db_make(tmp_path("p.db"), "counter:aXb/x.so",
                             "counter:aXc.so");
    mh_host *host = host_new_isolated(db);
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;

    ASSERT_STATUS(mh_find(host, "a_b", &info, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_import(host, "a_b.x", &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_import(host, "a_c", &mod, ERR), MH_ENOTFOUND);
    import_ok(host, "aXb.x");
    mh_host_free(host);
}

TEST(rows_under_prefix_make_namespace)
{
    const char *db = db_make(tmp_path("p.db"), "counter:ns/deep/one.so");
    mh_host *host = host_new_isolated(db);
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;

    ASSERT_STATUS(mh_find(host, "ns", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_NAMESPACE);
    ASSERT_STATUS(mh_find(host, "ns.deep", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_NAMESPACE);
    mod = import_ok(host, "ns");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_NAMESPACE);
    import_ok(host, "ns.deep.one");
    /* a prefix of a name is not a namespace: "ns/de" has no row under it */
    ASSERT_STATUS(mh_find(host, "ns.de", &info, ERR), MH_ENOTFOUND);
    mh_host_free(host);
}

TEST(directory_row_is_namespace)
{
    /* sqlite3 -Ac on an empty directory writes one row with a directory
     * mode and no data: a namespace portion, as an empty directory is. */
    const char *db = tmp_path("p.db");
    mh_host *host;
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;
    int st;

    tmp_mkdir("stage/emptyns");
    sh_run(str_fmt("cd %s && sqlite3 -batch -init /dev/null %s -Ac emptyns",
                   sh_quote(tmp_path("stage")), sh_quote(db)),
           &st);
    ASSERT_EQ_INT(st, 0);
    ASSERT_EQ_STR(db_exec(db, "SELECT name, mode>>12 FROM sqlar"),
                  "emptyns|4");
    host = host_new_isolated(db);
    ASSERT_STATUS(mh_find(host, "emptyns", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_NAMESPACE);
    mod = import_ok(host, "emptyns");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_NAMESPACE);
    ASSERT_NULL(mh_module_symbol(mod, "value"));
    mh_host_free(host);
}

TEST(namespace_spans_directory_and_database)
{
    const char *dir = tmp_mkdir("E");
    const char *db = db_make(tmp_path("p.db"), "answer7:ns/two.so");
    const char *fs_one = fixture_copy("counter", "E/ns/one.so");
    mh_host *host;
    mh_module *one, *two;

    for (int order = 0; order < 2; order++) {
        host = order ? host_new_isolated(db, dir) : host_new_isolated(dir, db);
        one = import_ok(host, "ns.one");
        two = import_ok(host, "ns.two");
        ASSERT_EQ_STR(mh_module_origin(one), fs_one);
        ASSERT_EQ_STR(mh_module_finder(one), "fs");
        ASSERT_EQ_STR(mh_module_origin(two), origin_of(db, "ns/two.so"));
        ASSERT_EQ_STR(mh_module_finder(two), "sqlite");
        ASSERT_EQ_INT(call_int(two, "value"), 7);
        ASSERT_EQ_INT(mh_module_kind_of(import_ok(host, "ns")),
                      MH_KIND_NAMESPACE);
        mh_host_free(host);
    }
}

TEST(find_reports_sqlite_finder_and_origin)
{
    const char *dir = tmp_mkdir("E");
    const char *db = db_make(tmp_path("p.db"), "counter:pkg/mod.so");
    mh_host *host = host_new_isolated(dir, db);
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;

    ASSERT_STATUS(mh_find(host, "pkg.mod", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.name, "pkg.mod");
    ASSERT_EQ_STR(info.finder, "sqlite");
    ASSERT_EQ_STR(info.origin, origin_of(db, "pkg/mod.so"));
    ASSERT_EQ_STR(info.loader, "native");
    ASSERT_EQ_INT(info.kind, MH_KIND_NATIVE);
    ASSERT_EQ_INT(info.entry_index, 1);
    ASSERT_EQ_INT(mh_host_module_count(host), 0); /* find loads nothing */
    mod = import_ok(host, "pkg.mod");
    ASSERT_EQ_INT(call_int(mod, "init_count"), 1);
    ASSERT_EQ_STR(mh_module_origin(mod), info.origin);
    mh_host_free(host);
}

TEST(not_found_message_names_database)
{
    const char *db = db_make(tmp_path("p.db"), "counter:other.so");
    mh_host *host = host_new_isolated(db);
    mh_module *mod;

    ASSERT_STATUS(mh_import(host, "absent", &mod, ERR), MH_ENOTFOUND);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), "absent");
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_STATUS(mh_import(host, "pkg.absent", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), db);
    mh_host_free(host);
}

/* ------------------------------------------------------------ listing */

#define MAX_LISTED 32

struct listing {
    size_t n;
    const char *names[MAX_LISTED];
    const char *origins[MAX_LISTED];
    const char *finders[MAX_LISTED];
};

static int collect(void *ud, const mh_spec_info *info)
{
    struct listing *l = ud;

    if (l->n == MAX_LISTED)
        FAIL("mh_list reported more than %d modules", MAX_LISTED);
    l->names[l->n] = str_fmt("%s", info->name);
    l->origins[l->n] = str_fmt("%s", info->origin ? info->origin : "(null)");
    l->finders[l->n] = str_fmt("%s", info->finder ? info->finder : "(null)");
    l->n++;
    return 0;
}

static const char *joined_names(const struct listing *l)
{
    const char *s = "";
    for (size_t i = 0; i < l->n; i++)
        s = str_fmt("%s%s%s", s, i ? "," : "", l->names[i]);
    return s;
}

TEST(list_includes_database_first_entry_wins)
{
    const char *dir = tmp_mkdir("E");
    const char *fs_beta = fixture_copy("counter", "E/beta.so");
    const char *db = db_make(tmp_path("p.db"), "counter:alpha.so",
                             "counter:beta.so", "counter:pkg/gamma.so");
    struct listing l = {0};
    mh_host *host = host_new_isolated(dir, db);

    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "alpha,beta,pkg.gamma");
    ASSERT_EQ_STR(l.origins[0], origin_of(db, "alpha.so"));
    ASSERT_EQ_STR(l.finders[0], "sqlite");
    ASSERT_EQ_STR(l.origins[1], fs_beta);
    ASSERT_EQ_STR(l.finders[1], "fs");
    ASSERT_EQ_STR(l.origins[2], origin_of(db, "pkg/gamma.so"));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);

    memset(&l, 0, sizeof l);
    host = host_new_isolated(db, dir);
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "alpha,beta,pkg.gamma");
    ASSERT_EQ_STR(l.origins[1], origin_of(db, "beta.so"));
    mh_host_free(host);
}

/* ----------------------------------------------------------- path order */

TEST(symlink_row_is_not_a_module)
{
    /* sqlite3 -Ac stores a symbolic link as a row with a link mode and
     * the target's name as its data.  It is not a module: the name is not
     * found (the message says why), its target is never followed, and
     * listings leave it out; the file beside it imports. */
    const char *db = tmp_path("p.db");
    struct listing l = {0};
    mh_module *mod;
    int st;

    fixture_copy("counter", "stage/real.so");
    ASSERT_EQ_INT(symlink("real.so", tmp_path("stage/lnk.so")), 0);
    sh_run(str_fmt("cd %s && sqlite3 -batch -init /dev/null %s -Ac "
                   "real.so lnk.so",
                   sh_quote(tmp_path("stage")), sh_quote(db)),
           &st);
    ASSERT_EQ_INT(st, 0);
    ASSERT_EQ_STR(db_exec(db, "SELECT name, mode>>12, CAST(data AS TEXT)"
                              " FROM sqlar WHERE name = 'lnk.so'"),
                  "lnk.so|10|real.so");
    mh_host *host = host_new_isolated(db);
    ASSERT_STATUS(mh_import(host, "lnk", &mod, ERR), MH_ENOTFOUND);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), "lnk.so is a symbolic link in the archive");
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "real");
    ASSERT_EQ_INT(call_int(import_ok(host, "real"), "value"), 42);
    ASSERT_EQ_INT(mh_host_module_count(host), 1);
    mh_host_free(host);
}

TEST(database_before_directory_wins)
{
    const char *dir = tmp_mkdir("E");
    const char *db = db_make(tmp_path("p.db"), "counter:mod.so");
    mh_host *host;
    mh_module *mod;

    fixture_copy("answer7", "E/mod.so");
    host = host_new_isolated(db, dir);
    mod = import_ok(host, "mod");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_finder(mod), "sqlite");
    mh_host_free(host);
}

TEST(directory_before_database_wins)
{
    const char *dir = tmp_mkdir("E");
    const char *db = db_make(tmp_path("p.db"), "counter:mod.so");
    mh_host *host;
    mh_module *mod;

    fixture_copy("answer7", "E/mod.so");
    host = host_new_isolated(dir, db);
    mod = import_ok(host, "mod");
    ASSERT_EQ_INT(call_int(mod, "value"), 7);
    ASSERT_EQ_STR(mh_module_finder(mod), "fs");
    ASSERT_EQ_STR(mh_module_origin(mod), tmp_path("E/mod.so"));
    mh_host_free(host);
}

/* -------------------------------------------------- kinds and failures */

TEST(plain_module_from_database)
{
    const char *db = db_make(tmp_path("p.db"), "no_desc:plainmod.so");
    mh_host *host = host_new_isolated(db);
    mh_module *mod;
    int (*fn)(void);

    ASSERT_STATUS(mh_import(host, "plainmod", &mod, ERR), MH_ENODESC);
    ASSERT_CONTAINS(ERR_MSG(), origin_of(db, "plainmod.so"));
    ASSERT_STATUS(mh_import_ex(host, "plainmod", MH_IMPORT_PLAIN, &mod, ERR),
                  MH_OK);
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_PLAIN);
    fn = (int (*)(void))symbol_ok(mod, "plain_answer");
    ASSERT_EQ_INT(fn(), 42);
    ASSERT_EQ_STR(mh_module_origin(mod), origin_of(db, "plainmod.so"));
    mh_host_free(host);
}

TEST(load_errors_name_database_entry)
{
    const char *db = db_make(tmp_path("p.db"), "wrong_abi:old.so",
                             "init_fails:refuser.so");
    mh_host *host;
    mh_module *mod;

    env_set("MH_FIXTURE_MARKER", tmp_path("marker"));
    host = host_new_isolated(db);
    ASSERT_STATUS(mh_import(host, "old", &mod, ERR), MH_EABI);
    ASSERT_CONTAINS(ERR_MSG(), origin_of(db, "old.so"));
    ASSERT_NOT_CONTAINS(ERR_MSG(), "/proc/self/fd");
    ASSERT_STATUS(mh_import(host, "refuser", &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "refuser");
    ASSERT_NOT_CONTAINS(ERR_MSG(), "/proc/self/fd");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
}

/* ------------------------------------------------------------- mh_pack */

TEST(pack_stores_names_as_given)
{
    const char *db = tmp_path("p.db");
    const char *abs_file = fixture_copy("counter", "abs/b.so");
    mh_host *host;
    size_t count = 0;

    fixture_copy("counter", "rel/pkg/a.so");
    fixture_copy("counter", "tree/c.so");
    fixture_copy("answer7", "tree/sub/d.so");
    if (chdir(tmp_dir()) < 0)
        FAIL("chdir: %s", strerror(errno));
    {
        const char *in[] = {"rel/pkg/a.so", abs_file, tmp_path("tree")};
        ASSERT_STATUS(mh_pack(db, in, 3, &count, ERR), MH_OK);
    }
    ASSERT_EQ_INT(count, 4);
    ASSERT_EQ_STR(db_exec(db, "SELECT name FROM sqlar ORDER BY name"),
                  "b.so\nc.so\nrel/pkg/a.so\nsub/d.so");
    host = host_new_isolated(db);
    import_ok(host, "rel.pkg.a");
    import_ok(host, "b");
    import_ok(host, "c");
    ASSERT_EQ_INT(call_int(import_ok(host, "sub.d"), "value"), 7);
    mh_host_free(host);
}

TEST(pack_compresses_only_where_smaller)
{
    const char *db = tmp_path("p.db"), *dbz = tmp_path("z.db");
    const char *so = fixture_copy("counter", "in/counter.so");
    const char *noise = tmp_path("in/noise.bin");
    const char *text = tmp_path("in/text.lua");
    unsigned char buf[8192];
    unsigned x = 12345;
    mh_host *host;

    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    file_write_bytes(noise, buf, sizeof buf);
    memset(buf, '-', sizeof buf);
    memcpy(buf, "return {} --", 12);
    file_write_bytes(text, buf, sizeof buf);

    /* By default native code is stored as is (no inflating on import);
     * the rest is compressed where that makes it smaller. */
    ASSERT_EQ_INT(db_pack(db, tmp_path("in")), 3);
    ASSERT_EQ_STR(db_exec(db, "SELECT name, sz, length(data) FROM sqlar"
                              " ORDER BY name"),
                  str_fmt("counter.so|%lld|%lld\nnoise.bin|8192|8192\n"
                          "text.lua|8192|%s",
                          file_size(so), file_size(so),
                          db_exec(db, "SELECT length(data) FROM sqlar"
                                      " WHERE name = 'text.lua'")));
    ASSERT_EQ_STR(db_exec(db, "SELECT length(data) < 200 FROM sqlar"
                              " WHERE name = 'text.lua'"),
                  "1");

    /* MH_PACK_COMPRESS_CODE compresses native code too. */
    ASSERT_EQ_INT(db_pack_z(dbz, tmp_path("in")), 3);
    ASSERT_EQ_STR(db_exec(dbz, "SELECT name, sz, length(data) < sz FROM sqlar"
                               " ORDER BY name"),
                  str_fmt("counter.so|%lld|1\nnoise.bin|8192|0\n"
                          "text.lua|8192|1",
                          file_size(so)));
    /* The compressed form is the one sqlite3 -A reads. */
    ASSERT_EQ_STR(db_exec(dbz, str_fmt("SELECT sqlar_uncompress(data, sz) ="
                                       " readfile('%s') FROM sqlar"
                                       " WHERE name = 'counter.so'",
                                       so)),
                  "1");
    /* Either way the module imports. */
    host = host_new_isolated(db);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    mh_host_free(host);
    host = host_new_isolated(dbz);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    mh_host_free(host);
}

TEST(pack_unknown_flag_is_einval)
{
    /* Refused before anything is looked at: not the new database's
     * removal, nor "not a database" for a file that is none. */
    const char *db = tmp_path("p.db"), *junk = tmp_path("junk.db");
    const char *in[] = {fixture_copy("counter", "in/counter.so")};

    file_write(junk, "not a database");
    ASSERT_STATUS(mh_pack_ex(db, in, 1, 0x100u, NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "unknown flags 0x100");
    ASSERT_FALSE(file_exists(db));
    ASSERT_STATUS(mh_pack_ex(junk, in, 1, 0x100u, NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "unknown flags 0x100");
    ASSERT_EQ_STR(file_read(junk), "not a database");
}

TEST(pack_bad_arguments_say_which)
{
    const char *in[] = {fixture_copy("counter", "in/counter.so")};
    ASSERT_STATUS(mh_pack("", in, 1, NULL, ERR), MH_EINVAL);
    ASSERT_EQ_STR(ERR_MSG(), "mh_pack: the database path is empty");
    ASSERT_STATUS(mh_pack(NULL, in, 1, NULL, ERR), MH_EINVAL);
    ASSERT_EQ_STR(ERR_MSG(), "mh_pack: db is NULL");
    ASSERT_STATUS(mh_pack(tmp_path("p.db"), NULL, 1, NULL, ERR), MH_EINVAL);
    ASSERT_EQ_STR(ERR_MSG(), "mh_pack: inputs is NULL");
    ASSERT_FALSE(file_exists(tmp_path("p.db")));
}

TEST(pack_replaces_existing_entry)
{
    const char *db = db_make(tmp_path("p.db"), "counter:mod.so",
                             "counter:keep.so");
    mh_host *host;

    db_make(db, "answer7:mod.so");
    ASSERT_EQ_STR(db_exec(db, "SELECT name FROM sqlar ORDER BY name"),
                  "keep.so\nmod.so");
    host = host_new_isolated(db);
    ASSERT_EQ_INT(call_int(import_ok(host, "mod"), "value"), 7);
    ASSERT_EQ_INT(call_int(import_ok(host, "keep"), "value"), 42);
    mh_host_free(host);
}

TEST(pack_gives_a_changed_last_row_a_new_row_id)
{
    /* The new row's id was max(rowid) + 1 taken after the old row was
     * deleted: re-packing the module with the highest id gave it its id
     * back, and with the same size and mtime (a reproducible build) its
     * identity did not change, so discovery kept its old metadata and
     * any failure recorded against it. */
    const char *src = tmp_path("src/m.so");
    /* Two different builds made the same size (zeros after the object,
     * which nothing reads) and given the same mtime. */
    fixture_copy("same_sym_a", "src/m.so");
    ASSERT_EQ_INT(truncate(src, 65536), 0);
    file_set_mtime(src, 1700000000);
    const char *db = tmp_path("p.db");
    ASSERT_EQ_INT(db_pack(db, tmp_path("src")), 1);
    ASSERT_EQ_STR(db_exec(db, "SELECT rowid, sz FROM sqlar"), "1|65536");
    fixture_copy("same_sym_b", "src/m.so");
    ASSERT_EQ_INT(truncate(src, 65536), 0);
    file_set_mtime(src, 1700000000);
    ASSERT_EQ_INT(db_pack(db, tmp_path("src")), 1);
    ASSERT_EQ_STR(db_exec(db, "SELECT rowid, sz FROM sqlar"), "2|65536");
    /* Unchanged, it keeps its row (and its id). */
    ASSERT_EQ_INT(db_pack(db, tmp_path("src")), 1);
    ASSERT_EQ_STR(db_exec(db, "SELECT rowid FROM sqlar"), "2");
}

TEST(pack_into_a_table_whose_row_ids_are_used_up_says_so)
{
    /* A row id set by hand to the largest there is: the new row's,
     * taken above it, overflowed (UBSan: signed integer overflow). */
    const char *db = tmp_path("top.db");
    db_exec(db, "CREATE TABLE sqlar(name TEXT PRIMARY KEY, mode INT, "
                "mtime INT, sz INT, data BLOB); INSERT INTO sqlar(rowid, "
                "name, mode, mtime, sz, data) VALUES (9223372036854775807, "
                "'x.so', 33188, 1, 1, x'00');");
    fixture_copy("counter", "in/mod.so");
    const char *in[] = {tmp_path("in/mod.so")};
    ASSERT_STATUS(mh_pack(db, in, 1, NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "row ids go up to 9223372036854775807");
    ASSERT_EQ_STR(db_exec(db, "SELECT name FROM sqlar"), "x.so");
}

TEST(pack_into_a_without_rowid_table_says_so)
{
    /* The finder reads such a table; pack does not write into it, and
     * called the database "not a module database" when it refused. */
    const char *db = tmp_path("w.db");
    db_exec(db, "CREATE TABLE sqlar(name TEXT PRIMARY KEY, mode INT, "
                "mtime INT, sz INT, data BLOB) WITHOUT ROWID;");
    fixture_copy("counter", "in/mod.so");
    const char *in[] = {tmp_path("in/mod.so")};
    ASSERT_STATUS(mh_pack(db, in, 1, NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "its sqlar table is WITHOUT ROWID");
    ASSERT_NOT_CONTAINS(ERR_MSG(), "not a module database");
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM sqlar"), "0");
}

/* db made by hand: its sqlar table with `name` declared as name_decl. */
static const char *hand_made(const char *file, const char *name_decl)
{
    const char *db = tmp_path("%s", file);
    db_exec(db, str_fmt("CREATE TABLE sqlar(%s, mode INT, mtime INT, "
                        "sz INT, data BLOB);", name_decl));
    return db;
}

/* The `value` export of module mod, imported in a new host on db. */
static int value_in(const char *db, const char *mod)
{
    mh_host *host = host_new_isolated(db);
    int v = call_int(import_ok(host, mod), "value");
    mh_host_free(host);
    return v;
}

TEST(pack_replaces_an_entry_in_a_table_with_no_key_on_name)
{
    /* A table made by hand, without the PRIMARY KEY `sqlite3 -A` gives
     * name: INSERT OR REPLACE had no conflict to replace on, so the old
     * row stayed first and went on being served. */
    const char *db = hand_made("nokey.db", "name TEXT");
    db_make(db, "counter:mod.so");
    db_make(db, "answer7:mod.so");
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM sqlar WHERE name = "
                              "'mod.so'"), "1");
    ASSERT_EQ_INT(value_in(db, "mod"), 7);

    /* Rows a hand-made table already holds twice: packing the bytes of
     * one of them is a change (the other would be served), and leaves
     * one row. */
    db_exec(db, str_fmt("INSERT INTO sqlar SELECT 'two.so', mode, mtime, sz,"
                        " data FROM sqlar; INSERT INTO sqlar VALUES("
                        "'two.so', 33261, 0, length(readfile('%s')),"
                        " readfile('%s'));", fixture_path("counter"),
                        fixture_path("counter")));
    db_make(db, "answer7:two.so");
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM sqlar WHERE name = "
                              "'two.so'"), "1");
    ASSERT_EQ_INT(value_in(db, "two"), 7);
}

TEST(pack_into_a_nocase_table_replaces_only_its_own_name)
{
    /* A name compared by the table's NOCASE collation: packing foo.so
     * deleted FOO.so, another module. */
    const char *db = hand_made("nocase.db", "name TEXT COLLATE NOCASE");
    db_make(db, "counter:FOO.so");
    db_make(db, "answer7:foo.so");
    db_make(db, "answer7:foo.so"); /* unchanged: left alone */
    ASSERT_EQ_STR(db_exec(db, "SELECT name FROM sqlar ORDER BY name "
                              "COLLATE BINARY"), "FOO.so\nfoo.so");
    ASSERT_EQ_INT(value_in(db, "FOO"), 42);
    ASSERT_EQ_INT(value_in(db, "foo"), 7);
}

TEST(pack_into_a_nocase_key_refuses_what_would_replace_another)
{
    /* With a key on name that ignores case, INSERT OR REPLACE removed
     * FOO.so to store foo.so, another module. */
    const char *db = hand_made("nocasekey.db",
                               "name TEXT PRIMARY KEY COLLATE NOCASE");
    db_make(db, "counter:FOO.so");
    const char *in[] = {fixture_copy("answer7", "stage/foo.so")};
    ASSERT_STATUS(mh_pack(db, in, 1, NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "storing foo.so");
    ASSERT_CONTAINS(ERR_MSG(), "nothing was written");
    ASSERT_EQ_STR(db_exec(db, "SELECT name FROM sqlar"), "FOO.so");
    db_make(db, "answer7:FOO.so"); /* its own name: replaced */
    ASSERT_EQ_INT(value_in(db, "FOO"), 7);
}

/* A directory under tmp_dir() deep enough that d/<name> is at least
 * want bytes long: made one short component at a time. */
static const char *deep_dir(size_t want, const char *name)
{
    const char *d = tmp_path("deep");
    ASSERT_EQ_INT(mkdir(d, 0700), 0);
    while (strlen(d) + 1 + strlen(name) < want) {
        d = str_fmt("%s/%s", d, "dddddddddddddddddddddddddddddddddddddd");
        ASSERT_EQ_INT(mkdir(d, 0700), 0);
    }
    return d;
}

TEST(database_path_too_long_for_sqlite_is_said_so)
{
    /* SQLite's Unix VFS opens no path over 512 bytes (with room for its
     * -journal), and says only "unable to open database file", with
     * whatever errno the thread had: it read "Resource temporarily
     * unavailable", a passing failure, tried again at every import. */
    const char *dir = deep_dir(520, "x.db");
    const char *db = str_fmt("%s/x.db", dir);
    const char *in = str_fmt("%s/mod.so", tmp_dir());
    file_copy(fixture_path("counter"), in);
    errno = EAGAIN;
    ASSERT_STATUS(mh_pack(db, (const char *const[]){in}, 1, NULL, ERR),
                  MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_CONTAINS(ERR_MSG(), "SQLite opens a database only by a path of "
                               "at most");
    ASSERT_CONTAINS(ERR_MSG(), "nothing was written");
    ASSERT_EQ_STR(sh_run(str_fmt("ls -A %s", sh_quote(dir)), NULL), "");

    /* Made at a short path, then moved there: a host names the length,
     * and the entry is refused for good (not tried at every import). */
    db_make(tmp_path("x.db"), "counter:mod.so");
    ASSERT_EQ_INT(rename(tmp_path("x.db"), db), 0);
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    mh_host *host = host_new_opts(&o, str_fmt("sqlite:%s", db));
    mh_module *mod;
    for (int i = 0; i < 3; i++) {
        errno = EAGAIN;
        ASSERT_STATUS(mh_import(host, "mod", &mod, NULL), MH_ENOTFOUND);
    }
    if (log_capture_count(&lc, MH_LOG_WARN, "/x.db' skipped") != 1 ||
        log_capture_count(&lc, -1, "x.db") != 1) /* cut: it is long */
        FAIL("not warned once: %s", log_capture_dump(&lc));
    mh_path_entry_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_host_path_entry_info(host, 0, &info), MH_OK);
    ASSERT_TRUE(info.error != NULL);
    ASSERT_CONTAINS(info.error, str_fmt("%s: its real path is", db));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(pack_missing_input_creates_nothing)
{
    const char *db = tmp_path("new.db");
    const char *good = fixture_copy("counter", "good.so");
    const char *missing = tmp_path("no/such.so");
    const char *in[] = {good, missing};
    size_t count = 99;

    ASSERT_NE_INT(mh_pack(db, in, 2, &count, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), missing);
    ASSERT_EQ_INT(count, 0);
    ASSERT_FALSE(file_exists(db));
    ASSERT_FALSE(file_exists(str_fmt("%s-journal", db)));
    ASSERT_FALSE(file_exists(str_fmt("%s-wal", db)));
}

TEST(pack_failure_leaves_database_unchanged)
{
    const char *db = db_make(tmp_path("p.db"), "counter:old.so");
    const char *sum = "SELECT hex(sha3_query("
                      "'SELECT * FROM sqlar ORDER BY name'))";
    const char *before = db_exec(db, sum);
    const char *in[] = {fixture_copy("answer7", "stage/new.so"),
                        fixture_copy("answer7", "stage/old.so"),
                        tmp_path("missing.so")};

    ASSERT_NE_INT(mh_pack(db, in, 3, NULL, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), tmp_path("missing.so"));
    ASSERT_EQ_STR(db_exec(db, sum), before);
    ASSERT_EQ_STR(db_exec(db, "SELECT name FROM sqlar"), "old.so");
}

TEST(pack_refuses_non_sqlite_database_file)
{
    const char *db = tmp_path("notes.txt");
    const char *text = "these are my notes, not a database\n";
    const char *in[] = {fixture_copy("counter", "mod.so")};

    file_write(db, text);
    ASSERT_NE_INT(mh_pack(db, in, 1, NULL, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_EQ_STR(file_read(db), text);
    ASSERT_FALSE(file_exists(str_fmt("%s-journal", db)));
}

TEST(pack_refuses_parent_references)
{
    const char *db = tmp_path("p.db");
    const char *in[1];

    fixture_copy("counter", "E/mod.so");
    tmp_mkdir("work/sub");
    if (chdir(tmp_path("work/sub")) < 0)
        FAIL("chdir: %s", strerror(errno));
    in[0] = "../../E/mod.so";
    ASSERT_NE_INT(mh_pack(db, in, 1, NULL, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), "..");
    ASSERT_FALSE(file_exists(db));
    /* ".." hidden in the middle is refused as well */
    if (chdir(tmp_dir()) < 0)
        FAIL("chdir: %s", strerror(errno));
    in[0] = "work/../E/mod.so";
    ASSERT_NE_INT(mh_pack(db, in, 1, NULL, ERR), MH_OK);
    ASSERT_FALSE(file_exists(db));
}

/* ----------------------------------------------- the stock sqlite3 CLI */

TEST(stock_cli_database_imports)
{
    const char *plugins = getenv("MH_TEST_PLUGIN_DIR");
    const char *stage = tmp_mkdir("stage");
    const char *db = tmp_path("stage/plugins.db");
    mh_host *host;
    mh_module *hello, *rot13;
    const char *(*greeting)(void);
    void (*encode)(const char *, char *, size_t);
    char out[16];
    int st;

    if (plugins == NULL || *plugins == '\0')
        plugins = MH_TEST_PLUGIN_DIR;
    file_copy(str_fmt("%s/hello.so", plugins), tmp_path("stage/hello.so"));
    tmp_mkdir("stage/codecs");
    file_copy(str_fmt("%s/codecs/rot13.so", plugins),
              tmp_path("stage/codecs/rot13.so"));
    sh_run(str_fmt("cd %s && sqlite3 -batch -init /dev/null plugins.db -Ac"
                   " hello.so codecs/rot13.so",
                   sh_quote(stage)),
           &st);
    ASSERT_EQ_INT(st, 0);
    ASSERT_EQ_STR(db_exec(db, "SELECT name FROM sqlar ORDER BY name"),
                  "codecs/rot13.so\nhello.so");
    host = host_new_isolated(db);
    hello = import_ok(host, "hello");
    greeting = (const char *(*)(void))symbol_ok(hello, "greeting");
    ASSERT_NOT_NULL(greeting());
    rot13 = import_ok(host, "codecs.rot13");
    ASSERT_EQ_STR(mh_module_origin(rot13), origin_of(db, "codecs/rot13.so"));
    encode = (void (*)(const char *, char *, size_t))symbol_ok(rot13,
                                                                "encode");
    encode("Hello", out, sizeof out);
    ASSERT_EQ_STR(out, "Uryyb");
    mh_host_free(host);
}

TEST(stock_cli_lists_and_extracts_packed_database)
{
    const char *db = tmp_path("p.db");
    const char *out = tmp_mkdir("out");
    const char *names[] = {"counter.so", "pkg/sub/mod.so", "plain.so"};
    int st;

    fixture_copy("counter", "in/counter.so");
    fixture_copy("answer7", "in/pkg/sub/mod.so");
    fixture_copy("no_desc", "in/plain.so");
    ASSERT_EQ_INT(db_pack(db, tmp_path("in")), 3);
    ASSERT_EQ_STR(sh_run(str_fmt("sqlite3 -batch -init /dev/null %s -At"
                                 " | LC_ALL=C sort",
                                 sh_quote(db)),
                         &st),
                  "counter.so\npkg/sub/mod.so\nplain.so\n");
    ASSERT_EQ_INT(st, 0);
    sh_run(str_fmt("cd %s && sqlite3 -batch -init /dev/null %s -Ax",
                   sh_quote(out), sh_quote(db)),
           &st);
    ASSERT_EQ_INT(st, 0);
    for (size_t i = 0; i < 3; i++) {
        const char *x = tmp_path("out/%s", names[i]);
        if (!file_exists(x))
            FAIL("sqlite3 -Ax did not extract %s", names[i]);
        if (!files_equal(x, tmp_path("in/%s", names[i])))
            FAIL("%s extracted by sqlite3 -Ax differs from the input",
                 names[i]);
    }
}

TEST(raw_rows_import)
{
    /* sqlar keeps data uncompressed when length(data) == sz. */
    const char *db = db_make(tmp_path("p.db"), "answer7:other.so");
    const char *so = fixture_path("counter");
    mh_host *host;
    mh_module *mod;

    db_exec(db, str_fmt("INSERT INTO sqlar(name, mode, mtime, sz, data)"
                        " VALUES('raw.so', 33261, 0, length(readfile('%s')),"
                        " readfile('%s'))",
                        so, so));
    ASSERT_EQ_STR(db_exec(db, "SELECT length(data) = sz FROM sqlar"
                              " WHERE name = 'raw.so'"),
                  "1");
    host = host_new_isolated(db);
    mod = import_ok(host, "raw");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mod), origin_of(db, "raw.so"));
    mh_host_free(host);
}

/* ---------------------------------------------------------- broken rows */

/*
 * A database holding good.so and bad.so (both counter), packed with flags,
 * with `set` applied to bad.so's row: importing bad fails with MH_EFORMAT
 * and a message that names the database, the entry and `needle`; good
 * still imports, before and after.
 */
static void check_broken_row_packed(unsigned flags, const char *set,
                                    const char *needle)
{
    const char *db = db_make_(tmp_path("p%u.db", flags), flags,
                              (const char *const[]){"counter:good.so",
                                                    "counter:bad.so", NULL});
    mh_host *host;
    mh_module *mod;

    db_exec(db, str_fmt("UPDATE sqlar SET %s WHERE name = 'bad.so'", set));
    host = host_new_isolated(db);
    ASSERT_EQ_INT(call_int(import_ok(host, "good"), "value"), 42);
    for (int i = 0; i < 2; i++) {
        ASSERT_STATUS(mh_import(host, "bad", &mod, ERR), MH_EFORMAT);
        ASSERT_NULL(mod);
        ASSERT_CONTAINS(ERR_MSG(), db);
        ASSERT_CONTAINS(ERR_MSG(), "bad.so");
        ASSERT_NOT_CONTAINS(ERR_MSG(), "/proc/self/fd");
        if (needle)
            ASSERT_CONTAINS(ERR_MSG(), needle);
    }
    ASSERT_NULL(mh_host_module(host, "bad"));
    ASSERT_EQ_INT(mh_host_module_count(host), 1);
    mh_host_free(host);
}

/* The same on a compressed row (the zlib cases need one). */
static void check_broken_row(const char *set, const char *needle)
{
    check_broken_row_packed(MH_PACK_COMPRESS_CODE, set, needle);
}

TEST(row_corrupt_zlib_fails_that_module_only)
{
    /* Keep the zlib header and the first half; zero the rest. */
    check_broken_row("data = CAST(substr(data, 1, length(data) / 2)"
                     " || zeroblob(length(data) - length(data) / 2) AS BLOB)",
                     NULL);
}

TEST(row_stored_as_is_damaged_is_caught_by_probe)
{
    /* A row stored as is (the default for native code) has no checksum:
     * its second half zeroed passes the ELF checks and would crash the
     * dynamic loader, as a damaged .so file would.  Probe mode loads it
     * in a child first, so the host gets an error naming it, and lives. */
    const char *db = db_make(tmp_path("p.db"), "counter:good.so",
                             "counter:bad.so");
    host_opts o = {.flags = MH_CONFIG_PROBE};
    mh_host *host;
    mh_module *mod;

    db_exec(db, "UPDATE sqlar SET data = CAST(substr(data, 1, sz / 2)"
                " || zeroblob(sz - sz / 2) AS BLOB) WHERE name = 'bad.so'");
    ASSERT_EQ_STR(db_exec(db, "SELECT length(data) = sz FROM sqlar"
                              " WHERE name = 'bad.so'"),
                  "1");
    host = host_new_opts(&o, db);
    ASSERT_NE_INT(mh_import(host, "bad", &mod, ERR), MH_OK);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), "bad");
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_EQ_INT(call_int(import_ok(host, "good"), "value"), 42);
    mh_host_free(host);
}

TEST(row_garbage_after_zlib_header)
{
    check_broken_row("data = CAST(X'789C' || zeroblob(length(data) - 2)"
                     " AS BLOB)",
                     NULL);
}

TEST(row_size_larger_than_content)
{
    check_broken_row("sz = sz + 1", NULL);
    /* a raw row (as packed by default) then reads as corrupt zlib */
    check_broken_row_packed(0, "sz = sz + 1", "zlib");
}

TEST(row_size_smaller_than_content)
{
    check_broken_row("sz = sz - 1", NULL);
    check_broken_row_packed(0, "sz = sz - 1", "longer than its size");
}

TEST(row_data_longer_than_size)
{
    /* length(data) > sz is neither raw nor compressed sqlar data. */
    check_broken_row("data = sqlar_uncompress(data, sz), sz = sz - 100",
                     NULL);
}

TEST(row_not_elf)
{
    check_broken_row("data = CAST('#!/bin/sh\necho this is not ELF\n' AS BLOB),"
                     " sz = length(CAST('#!/bin/sh\necho this is not ELF\n'"
                     " AS BLOB))",
                     "ELF");
}

TEST(row_compressed_not_elf)
{
    check_broken_row("data = sqlar_compress(zeroblob(20000)), sz = 20000",
                     "ELF");
}

TEST(row_null_data)
{
    check_broken_row("data = NULL", NULL);
}

TEST(row_huge_size_claim)
{
    /* Far over any limit: refused before anything is allocated for it. */
    check_broken_row("sz = 1099511627776", NULL);
}

/* Counts the finder's SQLite statements: each passes the "sqlite" fault
 * site once, and each is a read transaction of its own. */
static int count_statements(void *ud, const char *site)
{
    if (strcmp(site, "sqlite") == 0)
        (*(int *)ud)++;
    return 0;
}

/* A host on db counting its statements in *steps, after importing warm
 * (whose value() is value): the database is open. */
static mh_host *counting_host(const char *db, int *steps, const char *warm,
                              int value)
{
    *steps = 0;
    host_opts o = {.fault = count_statements, .fault_ud = steps};
    mh_host *host = host_new_opts(&o, db);
    ASSERT_EQ_INT(call_int(import_ok(host, warm), "value"), value);
    return host;
}

TEST(import_reads_its_row_with_the_find)
{
    /* A module is imported with one statement (one round of SQLite's
     * locks): the find takes the row's bytes with it -- native code stored
     * as is or compressed, Lua source -- and a second statement is never
     * needed. */
    for (unsigned flags = 0; flags <= MH_PACK_COMPRESS_CODE;
         flags += MH_PACK_COMPRESS_CODE) {
        const char *db = db_make_(tmp_path("p%u.db", flags), flags,
                                  (const char *const[]){
                                      "counter:a.so", "answer7:pkg/b.so",
                                      NULL});
        lua_write(str_fmt("L%u/pkg/l.lua", flags),
                  "return {v = function() return 9 end}");
        db_pack_(db, flags, (const char *const[]){tmp_path("L%u", flags),
                                                  NULL});
        int steps;
        mh_host *host = counting_host(db, &steps, "a", 42);
        int before = steps;
        mh_module *b = import_ok(host, "pkg.b");
        ASSERT_EQ_INT(steps - before, 1);
        ASSERT_EQ_INT(call_int(b, "value"), 7);
        ASSERT_EQ_STR(mh_module_origin(b), str_fmt("%s!/pkg/b.so", db));
        before = steps; /* Lua source too: the loader takes the find's */
        mh_module *l = import_ok(host, "pkg.l");
        ASSERT_EQ_INT(steps - before, 1);
        ASSERT_EQ_STR(call_ok(l, "v", NULL), "9");
        mh_host_free(host);
    }
}

/* A module with all three rows -- native code, Lua source and a sidecar
 * manifest -- is found with one statement that sees each: the native code
 * wins (as in a directory), its manifest is the sidecar's, and the Lua
 * row is not what loads; without the native row, the Lua row is. */
TEST(find_sees_native_lua_and_sidecar_rows_at_once)
{
    const char *db = db_make_(tmp_path("p.db"), 0,
                              (const char *const[]){"counter:x.so",
                                                    "answer7:y.so", NULL});
    db_exec(db, "INSERT INTO sqlar VALUES('x.lua', 33188, 0, 36, CAST("
                "'return {v = function() return 9 end}' AS BLOB));"
                " INSERT INTO sqlar VALUES('x.json', 33188, 0, 20, CAST("
                "'{\"version\": \"3.1.4\"}' AS BLOB));");
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM sqlar WHERE "
                              "length(data) = sz"), "4");
    int steps;
    mh_host *host = counting_host(db, &steps, "y", 7);
    int before = steps;
    mh_module *x = import_ok(host, "x");
    ASSERT_EQ_INT(steps - before, 2); /* the find, the sidecar's read */
    ASSERT_EQ_INT(mh_module_kind_of(x), MH_KIND_NATIVE);
    ASSERT_EQ_INT(call_int(x, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(x), origin_of(db, "x.so"));
    const mh_manifest *m = mh_module_manifest(x);
    ASSERT_NOT_NULL(m);
    ASSERT_EQ_STR(mh_manifest_source(m), "sidecar");
    ASSERT_EQ_STR(mh_manifest_version(m), "3.1.4");
    mh_host_free(host);

    db_exec(db, "DELETE FROM sqlar WHERE name = 'x.so'");
    host = host_new_isolated(db);
    x = import_ok(host, "x");
    ASSERT_EQ_INT(mh_module_kind_of(x), MH_KIND_LUA);
    ASSERT_EQ_STR(call_ok(x, "v", NULL), "9");
    ASSERT_EQ_STR(mh_module_origin(x), origin_of(db, "x.lua"));
    mh_host_free(host);
}

/* A table made by hand may hold one name more than once: the first row
 * (in the table's order) is the module, for the find (its mode, its
 * bytes) and the read alike -- here a later row of the name is another
 * plugin, and the last a directory. */
TEST(name_in_three_rows_first_wins)
{
    const char *db = tmp_path("dup.db");
    const char *a = fixture_path("meta_full"), *b = fixture_path("answer7");
    db_exec(db, str_fmt("CREATE TABLE sqlar(name TEXT, mode INT, mtime INT,"
                        " sz INT, data BLOB);"
                        " INSERT INTO sqlar VALUES('dup.so', 33261, 0,"
                        " length(readfile('%s')), readfile('%s'));"
                        " INSERT INTO sqlar VALUES('dup.so', 33261, 0,"
                        " length(readfile('%s')), readfile('%s'));"
                        " INSERT INTO sqlar VALUES('dup.so', 16877, 0, 0,"
                        " NULL);",
                        a, a, b, b));
    mh_host *host = host_new_isolated(db);
    mh_manifest *m = NULL;
    /* metadata: the row read is the first (meta_full's note) */
    ASSERT_STATUS(mh_metadata(host, "dup", &m, ERR), MH_OK);
    ASSERT_EQ_STR(mh_manifest_version(m), "2.3.4");
    mh_manifest_free(m);
    /* the import: the first row's mode (a file) and bytes */
    ASSERT_EQ_INT(call_int(import_ok(host, "dup"), "value"), 42);
    mh_host_free(host);
}

TEST(without_rowid_table_read_however_it_is_spelled)
{
    /* "without\nrowid" or two spaces: the declaration's words were
     * matched as "WITHOUT ROWID", so _rowid_ was asked of a table that
     * has none, and the whole database was skipped. */
    const char *src = db_make(tmp_path("src.db"), "counter:mod.so");
    const char *spell[] = {"without\n  rowid", "WITHOUT  ROWID",
                           "/* x */ WITHOUT/**/ROWID"};
    for (size_t i = 0; i < sizeof spell / sizeof *spell; i++) {
        const char *db = tmp_path("wr%zu.db", i);
        db_exec(db, str_fmt("CREATE TABLE sqlar(name TEXT PRIMARY KEY, mode "
                            "INT, mtime INT, sz INT, data BLOB) %s; ATTACH "
                            "%s AS s; INSERT INTO sqlar SELECT * FROM "
                            "s.sqlar;", spell[i], sh_quote(src)));
        mh_host *host = host_new_isolated(db);
        ASSERT_EQ_INT(call_int(import_ok(host, "mod"), "value"), 42);
        mh_host_free(host);
    }
}

/* Break the overflow chain of the row holding file `so`'s bytes in db:
 * the first page that continues them (a 4-byte next-page number, then
 * more of the bytes) gets a next page past the end of the file. */
static void break_overflow_chain(const char *db, const char *so)
{
    size_t dlen, slen;
    unsigned char *d = file_bytes(db, &dlen), *b = file_bytes(so, &slen);
    size_t page = ((size_t)d[16] << 8 | d[17]) == 1
                      ? 65536 : ((size_t)d[16] << 8 | d[17]);
    for (size_t off = page; off + page <= dlen; off += page) {
        /* Overflow pages hold the bytes as they are, at any offset of
         * the file: look for 64 of this page's in it. */
        for (size_t at = 0; at + 64 <= slen; at++)
            if (memcmp(d + off + 4, b + at, 64) == 0) {
                d[off] = d[off + 1] = 0x7f;
                d[off + 2] = d[off + 3] = 0xff;
                file_write_bytes(db, d, dlen);
                free(d);
                free(b);
                return;
            }
    }
    FAIL("no overflow page of %s found in %s", so, db);
}

TEST(damaged_row_data_is_that_entrys_error_not_a_miss)
{
    /* The find takes a native row's data with it.  Data that cannot be
     * read (a broken overflow chain) must still be that entry's error,
     * naming database and entry -- never a miss that lets the next entry's
     * module of that name load in its place. */
    fixture_copy("answer7", "E/a.so");
    const char *db = db_make(tmp_path("p.db"), "counter:a.so");
    break_overflow_chain(db, fixture_path("counter"));
    host_opts o = {0};
    mh_host *host = host_new_opts(&o, db, tmp_path("E"));
    mh_module *mod;
    ASSERT_STATUS(mh_import(host, "a", &mod, ERR), MH_EIO);
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_CONTAINS(ERR_MSG(), "a.so");
    ASSERT_CONTAINS(ERR_MSG(), "malformed");
    mh_host_free(host);
}

/* A Lua source row whose bytes cannot be compressed is stored as is:
 * source of n bytes that zlib cannot shrink (a long comment of
 * pseudo-random bytes, none of them ']' or a NUL), returning {v = 5}. */
static const char *incompressible_lua(size_t n)
{
    char *src = calloc(n + 1, 1);
    ASSERT_NOT_NULL(src);
    size_t k = (size_t)snprintf(src, n, "return {v = function() return 5 "
                                        "end}\n--[[");
    unsigned x = 2463534242u;
    for (; k < n - 3; k++) {
        do {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
        } while ((x & 255) == 0 || (x & 255) == ']');
        src[k] = (char)(x & 255);
    }
    memcpy(src + n - 3, "]]\n", 3);
    const char *path = lua_write("L/lmod.lua", src);
    free(src);
    return path;
}

/* The same for a Lua module: its row's data unreadable (a broken overflow
 * chain) is that entry's error, naming database and entry -- the find's
 * retry without data is shared with native rows -- and a file of that
 * name later on the path does not load in its place. */
TEST(damaged_lua_row_data_is_that_entrys_error_not_a_miss)
{
    const char *src = incompressible_lua(20000);
    const char *db = tmp_path("p.db");
    db_pack(db, tmp_path("L"));
    ASSERT_EQ_STR(db_exec(db, "SELECT length(data) = sz FROM sqlar WHERE "
                              "name = 'lmod.lua'"), "1"); /* as is */
    lua_write("E/lmod.lua", "return {v = function() return 6 end}");
    host_opts o = {0};
    mh_host *host = host_new_opts(&o, db, tmp_path("E"));
    ASSERT_EQ_STR(call_ok(import_ok(host, "lmod"), "v", NULL), "5");
    mh_host_free(host);

    break_overflow_chain(db, src);
    host = host_new_opts(&o, db, tmp_path("E"));
    mh_module *mod;
    ASSERT_STATUS(mh_import(host, "lmod", &mod, ERR), MH_EIO);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_CONTAINS(ERR_MSG(), "lmod.lua");
    ASSERT_CONTAINS(ERR_MSG(), "malformed");
    mh_host_free(host);
}

/* A Lua row stored compressed whose zlib stream is damaged fails that
 * module only, with a message naming database and entry. */
TEST(lua_row_corrupt_zlib_fails_that_module_only)
{
    lua_write("L/good.lua", "return {v = function() return 1 end}");
    lua_write("L/bad.lua", "-- a comment long enough to be worth "
                           "compressing, compressing, compressing\n"
                           "return {v = function() return 2 end}");
    const char *db = tmp_path("p.db");
    db_pack(db, tmp_path("L"));
    ASSERT_EQ_STR(db_exec(db, "SELECT length(data) < sz FROM sqlar WHERE "
                              "name = 'bad.lua'"), "1"); /* compressed */
    db_exec(db, "UPDATE sqlar SET data = CAST(substr(data, 1, length(data)"
                " / 2) || zeroblob(length(data) - length(data) / 2) AS"
                " BLOB) WHERE name = 'bad.lua'");
    mh_host *host = host_new_isolated(db);
    mh_module *mod;
    for (int i = 0; i < 2; i++) {
        ASSERT_STATUS(mh_import(host, "bad", &mod, ERR), MH_EFORMAT);
        ASSERT_NULL(mod);
        ASSERT_CONTAINS(ERR_MSG(), db);
        ASSERT_CONTAINS(ERR_MSG(), "bad.lua");
    }
    ASSERT_EQ_STR(call_ok(import_ok(host, "good"), "v", NULL), "1");
    mh_host_free(host);
}

TEST(row_over_max_module_size)
{
    /* Stored as is (the default: SQLite's length limit stops the read) and
     * compressed (sz says it is too big before anything is inflated). */
    fixture_copy("counter", "E/onfs.so");
    for (unsigned flags = 0; flags <= MH_PACK_COMPRESS_CODE;
         flags += MH_PACK_COMPRESS_CODE) {
        const char *db = db_make_(tmp_path("p%u.db", flags), flags,
                                  (const char *const[]){"counter:big.so",
                                                        NULL});
        host_opts o = {.max_module_size = 4096};
        mh_host *host;
        mh_module *mod;

        host = host_new_opts(&o, db, tmp_path("E"));
        ASSERT_STATUS(mh_import(host, "big", &mod, ERR), MH_EFORMAT);
        ASSERT_CONTAINS(ERR_MSG(), db);
        ASSERT_CONTAINS(ERR_MSG(), "big.so");
        ASSERT_CONTAINS(ERR_MSG(), "max_module_size");
        /* the limit is for what is read into memory, not for files */
        ASSERT_EQ_INT(call_int(import_ok(host, "onfs"), "value"), 42);
        mh_host_free(host);

        o.max_module_size = 0; /* the default is far above the fixture */
        host = host_new_opts(&o, db);
        import_ok(host, "big");
        mh_host_free(host);
    }
}

/* fixture counter with `extra` bytes appended (garbage, then zeros): still
 * a valid shared object, as the loader ignores what follows its segments */
static const char *big_module(const char *rel, size_t extra)
{
    const char *path = tmp_path("%s", rel);
    size_t len;
    unsigned char *so = file_bytes(fixture_path("counter"), &len);
    unsigned char *buf = calloc(1, len + extra);
    unsigned x = 99;

    if (buf == NULL)
        FAIL("out of memory");
    memcpy(buf, so, len);
    for (size_t i = len; i < len + extra / 2; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    file_write_bytes(path, buf, len + extra);
    free(so);
    free(buf);
    return path;
}

TEST(large_module_imports)
{
    const char *db = tmp_path("p.db");
    const char *so;
    long long size;
    host_opts o = {0};
    mh_host *host;
    mh_module *mod;

    tmp_mkdir("in");
    so = big_module("in/big.so", (size_t)6 << 20);
    size = file_size(so);
    db_pack_z(db, tmp_path("in"));
    ASSERT_EQ_STR(db_exec(db, "SELECT sz, length(data) < sz FROM sqlar"),
                  str_fmt("%lld|1", size));
    host = host_new_isolated(db);
    ASSERT_EQ_INT(call_int(import_ok(host, "big"), "value"), 42);
    mh_host_free(host);
    {   /* stored as is, as packed by default */
        const char *raw = tmp_path("raw.db");
        db_pack(raw, tmp_path("in"));
        ASSERT_EQ_STR(db_exec(raw, "SELECT sz, length(data) FROM sqlar"),
                      str_fmt("%lld|%lld", size, size));
        host = host_new_isolated(raw);
        ASSERT_EQ_INT(call_int(import_ok(host, "big"), "value"), 42);
        mh_host_free(host);
    }

    /* max_module_size is inclusive */
    o.max_module_size = (size_t)size;
    host = host_new_opts(&o, db);
    import_ok(host, "big");
    mh_host_free(host);
    o.max_module_size = (size_t)size - 1;
    host = host_new_opts(&o, db);
    ASSERT_STATUS(mh_import(host, "big", &mod, ERR), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "big.so");
    mh_host_free(host);
}

/* -------------------------------------------------- unusable databases */

static int count_all(void *ud, const mh_spec_info *info)
{
    (void)info;
    ++*(int *)ud;
    return 0;
}

/*
 * `entry` (for database file `dbfile`) cannot be used.  Behind it is a
 * directory with good.so and other.so.  Importing and finding several
 * modules never crashes, modules behind the entry import, a module that
 * only the broken database could have had is not found, and exactly one
 * warning names the database (and `needle`, if given).
 */
static void check_unusable(const char *entry, const char *dbfile,
                           const char *needle)
{
    const char *after = tmp_mkdir("after");
    host_opts o = {0};
    log_capture lc;
    mh_spec_info info = {.size = sizeof info};
    mh_host *host;
    mh_module *mod;
    int n = 0;

    fixture_copy("counter", "after/good.so");
    fixture_copy("answer7", "after/other.so");
    log_capture_init(&lc);
    o.log = &lc;
    host = host_new_opts(&o, entry, after);
    ASSERT_EQ_INT(call_int(import_ok(host, "good"), "value"), 42);
    ASSERT_EQ_INT(call_int(import_ok(host, "other"), "value"), 7);
    ASSERT_STATUS(mh_import(host, "indb", &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_import(host, "pkg.indb", &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_find(host, "good", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.origin, tmp_path("after/good.so"));
    ASSERT_STATUS(mh_find(host, "indb", &info, ERR), MH_ENOTFOUND);
    if (log_capture_count(&lc, MH_LOG_WARN, dbfile) != 1)
        FAIL("want one warning naming %s; log:%s", dbfile,
             log_capture_dump(&lc));
    if (needle && log_capture_count(&lc, MH_LOG_WARN, needle) < 1)
        FAIL("want a warning mentioning \"%s\"; log:%s", needle,
             log_capture_dump(&lc));
    /* Listing skips it too (it may warn about that). */
    ASSERT_STATUS(mh_list(host, count_all, &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 2);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A valid database of several pages (indb.so, pkg/indb.so and more). */
static const char *multi_page_db(const char *rel)
{
    const char *db = db_make(tmp_path("%s", rel), "counter:indb.so",
                             "answer7:pkg/indb.so", "no_desc:x1.so",
                             "init_fails:x2.so", "importer:x3.so");
    if (file_size(db) < 3 * (long long)db_page_size(db) ||
        file_size(db) <= 4096)
        FAIL("want a database of several pages, got %lld bytes",
             file_size(db));
    return db;
}

TEST(not_sqlite_file_with_scheme_is_skipped)
{
    const char *f = tmp_path("notes.db");

    file_write(f, "these are notes, not a SQLite database; long enough to"
                  " fill a header of one hundred bytes and then some more\n");
    check_unusable(str_fmt("sqlite:%s", f), f, NULL);
    ASSERT_CONTAINS(file_read(f), "these are notes");
}

TEST(truncated_database_1k_is_skipped)
{
    const char *db = multi_page_db("t.db");
    file_truncate_to(db, 1024);
    check_unusable(db, db, NULL);
}

TEST(truncated_database_4k_is_skipped)
{
    const char *db = multi_page_db("t.db");
    file_truncate_to(db, 4096);
    check_unusable(db, db, NULL);
}

TEST(garbage_pages_after_page_one_are_skipped)
{
    const char *db = multi_page_db("g.db");
    file_scribble(db, db_page_size(db), 7);
    check_unusable(db, db, NULL);
}

TEST(garbage_after_header_is_skipped)
{
    const char *db = multi_page_db("g.db");
    file_scribble(db, 100, 11);
    check_unusable(db, db, NULL);
}

TEST(garbage_pages_with_scheme_entry_are_skipped)
{
    const char *db = multi_page_db("g.db");
    file_scribble(db, db_page_size(db), 13);
    check_unusable(str_fmt("sqlite:%s", db), db, NULL);
}

TEST(database_without_sqlar_is_skipped)
{
    const char *db = tmp_path("other.db");

    db_exec(db, "CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES('hi');");
    check_unusable(db, db, "sqlar");
}

TEST(unusable_database_retried_after_invalidate)
{
    const char *db = tmp_path("later.db");
    log_capture lc;
    host_opts o = {0};
    mh_host *host;
    mh_module *mod;

    db_exec(db, "CREATE TABLE notes(x TEXT);");
    log_capture_init(&lc);
    o.log = &lc;
    host = host_new_opts(&o, db);
    ASSERT_STATUS(mh_import(host, "mod", &mod, ERR), MH_ENOTFOUND);
    db_make(db, "counter:mod.so"); /* now it has a sqlar table */
    mh_invalidate_caches(host);
    ASSERT_EQ_INT(call_int(import_ok(host, "mod"), "value"), 42);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* ------------------------------------------------------ fault injection */

static int count_listed(void *ud, const mh_spec_info *info)
{
    (void)info;
    ++*(int *)ud;
    return 0;
}

/* Step i against a database: its status; checks what it produced. */
static mh_status db_fault_step(mh_host *host, int i, long n, mh_error **err)
{
    mh_module *mod = NULL;
    mh_spec_info info = {.size = sizeof info};
    mh_status st;
    int listed = 0;

    switch (i) {
    case 0:
        st = mh_import(host, "mod", &mod, err);
        if (st == MH_OK && call_int(mod, "value") != 7)
            FAIL("n=%ld: imported module is broken", n);
        return st;
    case 1:
        st = mh_import(host, "pkg.raw", &mod, err);
        if (st == MH_OK && call_int(mod, "value") != 7)
            FAIL("n=%ld: raw module is broken", n);
        return st;
    case 2:
        return mh_import(host, "absent", &mod, err);
    case 3:
        return mh_import(host, "bad", &mod, err);
    case 4:
        st = mh_find(host, "pkg.raw", &info, err);
        if (st == MH_OK && strstr(info.origin, "!/pkg/raw.so") == NULL)
            FAIL("n=%ld: mh_find gave origin '%s'", n, info.origin);
        return st;
    case 5:
        st = mh_list(host, count_listed, &listed, err);
        if (st == MH_OK && listed != 3)
            FAIL("n=%ld: mh_list reported %d modules", n, listed);
        return st;
    case 6:
        return mh_import(host, "pkg", &mod, err);
    }
    return MH_EINVAL;
}

static const mh_status db_fault_want[] = {
    MH_OK, MH_OK, MH_ENOTFOUND, MH_EFORMAT, MH_OK, MH_OK, MH_OK,
};
#define DB_FAULT_STEPS ((int)(sizeof db_fault_want / sizeof db_fault_want[0]))

/* One run with the n-th allocation failing; returns whether it fired. */
static int db_fault_run(const char *db, long n, int once, unsigned flags)
{
    alloc_tracker at;
    mh_config cfg;
    mh_host *host = NULL;
    mh_error *err = NULL;
    mh_status st;
    int fired;

    alloc_tracker_init(&at);
    at.fail_at = n;
    at.fail_once = once;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH | flags;
    cfg.path = db;
    cfg.cache_dir = tmp_path("cache");
    cfg.alloc = alloc_tracker_fn;
    cfg.alloc_ud = &at;
    st = mh_host_new(&cfg, &host, &err);
    if (st != MH_OK && st != MH_ENOMEM)
        FAIL("n=%ld: mh_host_new: %s: %s", n, mh_status_name(st),
             mh_error_message(err));
    for (int i = 0; st == MH_OK && host && i < DB_FAULT_STEPS; i++) {
        mh_status got;
        mh_error_free(err);
        err = NULL;
        got = db_fault_step(host, i, n, &err);
        if (got != db_fault_want[i] && got != MH_ENOMEM)
            FAIL("n=%ld (%s): step %d: got %s, expected %s: %s", n,
                 once ? "once" : "persistent", i, mh_status_name(got),
                 mh_status_name(db_fault_want[i]), mh_error_message(err));
        if (got == MH_ENOMEM && once) {
            mh_error_free(err);
            err = NULL;
            got = db_fault_step(host, i, n, &err);
            if (got != db_fault_want[i])
                FAIL("n=%ld: step %d retried after ENOMEM: got %s, "
                     "expected %s: %s", n, i, mh_status_name(got),
                     mh_status_name(db_fault_want[i]), mh_error_message(err));
        }
    }
    mh_error_free(err);
    mh_host_free(host);
    if (at.outstanding != 0 || at.blocks != 0)
        FAIL("n=%ld (%s): %zu bytes in %zu blocks leaked", n,
             once ? "once" : "persistent", at.outstanding, at.blocks);
    fired = at.injected > 0;
    alloc_tracker_destroy(&at);
    return fired;
}

static void db_fault_loop(int once, unsigned flags)
{
    const char *db = db_make(tmp_path("p.db"), "answer7:mod.so",
                             "counter:bad.so");
    const char *raw = fixture_path("answer7");
    long n = 1;

    db_exec(db, str_fmt("INSERT INTO sqlar VALUES('pkg/raw.so', 33261, 0,"
                        " length(readfile('%s')), readfile('%s'));"
                        " UPDATE sqlar SET sz = sz + 1 WHERE name = 'bad.so'",
                        raw, raw));
    while (db_fault_run(db, n, once, flags)) {
        if (++n > 100000)
            FAIL("fault injection did not converge");
    }
    ASSERT_TRUE(n > 2); /* the library did allocate */
    printf("fault injection (%s%s): %ld runs\n", once ? "once" : "persistent",
           flags & MH_CONFIG_NO_MEMFD ? ", no memfd" : "", n);
}

TEST(alloc_failure_every_point_persistent)
{
    db_fault_loop(0, 0);
}

TEST(alloc_failure_every_point_once)
{
    db_fault_loop(1, 0);
}

TEST(alloc_failure_every_point_without_memfd)
{
    db_fault_loop(1, MH_CONFIG_NO_MEMFD);
}

/* --------------------------------------------------------- live updates */

TEST(module_packed_later_is_visible)
{
    const char *db = db_make(tmp_path("p.db"), "counter:first.so");
    mh_host *host = host_new_isolated(db);
    mh_module *mod;

    import_ok(host, "first");
    ASSERT_STATUS(mh_import(host, "late", &mod, ERR), MH_ENOTFOUND);
    db_make(db, "answer7:late.so", "answer7:pkg/later.so");
    /* no mh_invalidate_caches: a changed database is seen */
    ASSERT_EQ_INT(call_int(import_ok(host, "late"), "value"), 7);
    import_ok(host, "pkg.later");
    mh_host_free(host);
}

/* A `sqlite:` entry whose database did not exist yet was skipped for
 * the host's life (until mh_invalidate_caches), with a warning: an
 * application started before `modhost pack` made its database never saw
 * it.  It is looked for at each find, as a directory entry's directory
 * is -- with MH_CONFIG_INSECURE_FILES too, whose open of a missing file
 * said MH_EIO where the checked one says MH_ENOTFOUND. */
static void database_made_later(unsigned flags)
{
    const char *db = tmp_path("later%u.db", flags);
    const char *after = tmp_mkdir("after%u", flags);
    log_capture lc;
    host_opts o = {.flags = flags};
    mh_module *mod;

    fixture_copy("counter", "after%u/other.so", flags);
    log_capture_init(&lc);
    o.log = &lc;
    mh_host *host = host_new_opts(&o, str_fmt("sqlite:%s", db), after);
    ASSERT_STATUS(mh_import(host, "late", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("database %s does not exist", db));
    ASSERT_EQ_INT(call_int(import_ok(host, "other"), "value"), 42);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);

    db_make(db, "answer7:late.so", "answer7:pkg/later.so");
    /* no mh_invalidate_caches */
    ASSERT_EQ_INT(call_int(import_ok(host, "late"), "value"), 7);
    import_ok(host, "pkg.later");
    ASSERT_EQ_INT(unlink(db), 0);
    ASSERT_STATUS(mh_import(host, "gone", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("database %s no longer exists", db));
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(database_made_after_its_entry_was_opened_is_used)
{
    database_made_later(0);
    database_made_later(MH_CONFIG_INSECURE_FILES);
}

TEST(wal_mode_database_is_read_and_updated)
{
    const char *db = db_make(tmp_path("p.db"), "counter:first.so");
    mh_host *host;

    ASSERT_EQ_STR(db_exec(db, "PRAGMA journal_mode=WAL"), "wal");
    host = host_new_isolated(db);
    ASSERT_EQ_INT(call_int(import_ok(host, "first"), "value"), 42);
    db_make(db, "answer7:second.so");
    ASSERT_EQ_INT(call_int(import_ok(host, "second"), "value"), 7);
    mh_host_free(host);
    ASSERT_EQ_STR(db_exec(db, "SELECT name FROM sqlar ORDER BY name"),
                  "first.so\nsecond.so");
}

TEST(deleted_database_fails_cleanly)
{
    const char *db = db_make(tmp_path("p.db"), "counter:first.so",
                             "answer7:second.so");
    mh_host *host = host_new_isolated(db);
    mh_spec_info info = {.size = sizeof info};
    mh_module *first, *mod;
    int n = 0;

    first = import_ok(host, "first");
    ASSERT_STATUS(mh_find(host, "second", &info, ERR), MH_OK);
    ASSERT_EQ_INT(unlink(db), 0);
    ASSERT_STATUS(mh_import(host, "second", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_STATUS(mh_find(host, "second", &info, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_list(host, count_all, &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 0);
    /* what was loaded stays usable */
    ASSERT_EQ_INT(call_int(first, "value"), 42);
    ASSERT_EQ_PTR(import_ok(host, "first"), first);
    mh_host_free(host);
}

TEST(deleted_database_that_comes_back_is_used)
{
    const char *db = db_make(tmp_path("p.db"), "counter:first.so");
    mh_host *host = host_new_isolated(db);
    mh_module *mod;

    import_ok(host, "first");
    ASSERT_EQ_INT(unlink(db), 0);
    ASSERT_STATUS(mh_import(host, "second", &mod, ERR), MH_ENOTFOUND);
    db_make(db, "answer7:second.so");
    ASSERT_EQ_INT(call_int(import_ok(host, "second"), "value"), 7);
    mh_host_free(host);
}

TEST(replaced_database_is_used)
{
    const char *db = db_make(tmp_path("p.db"), "counter:first.so",
                             "counter:mod.so");
    const char *next = db_make(tmp_path("next.db.tmp"), "answer7:mod.so",
                               "answer7:newer.so");
    mh_host *host = host_new_isolated(db);
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;

    import_ok(host, "first");
    ASSERT_STATUS(mh_find(host, "mod", &info, ERR), MH_OK);
    ASSERT_STATUS(mh_import(host, "newer", &mod, ERR), MH_ENOTFOUND);
    ASSERT_EQ_INT(rename(next, db), 0);
    mod = import_ok(host, "mod");
    ASSERT_EQ_INT(call_int(mod, "value"), 7);
    ASSERT_EQ_STR(mh_module_origin(mod), origin_of(db, "mod.so"));
    ASSERT_STATUS(mh_find(host, "newer", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.origin, origin_of(db, "newer.so"));
    import_ok(host, "newer");
    mh_host_free(host);
}

/* `cp new.db plugins.db` rewrites the file in place: the inode stays.
 * SQLite keeps its page cache while the header's change counter is the
 * same, and two freshly packed databases have the same one, so a host
 * served the old file's pages (a crash in dlopen, for native code).  The
 * file's ctime and size tell: it is opened again. */
TEST(database_rewritten_in_place_is_read_again)
{
    const char *one = tmp_mkdir("one"), *two = tmp_mkdir("two");
    const char *db = tmp_path("p.db");
    struct stat before, after;

    file_write(str_fmt("%s/x.lua", one), "return { v = function() return 'ONE' end }\n");
    file_write(str_fmt("%s/y.lua", one), "return { v = function() return 'ONE' end }\n");
    file_write(str_fmt("%s/x.lua", two), "return { v = function() return 'TWO' end }\n");
    file_write(str_fmt("%s/y.lua", two), "return { v = function() return 'TWO' end }\n");
    db_pack(tmp_path("one.db"), one);
    db_pack(tmp_path("two.db"), two);
    file_copy(tmp_path("one.db"), db);
    mh_host *host = host_new_isolated(db);
    ASSERT_EQ_STR(call_ok(import_ok(host, "x"), "v", NULL), "\"ONE\"");
    ASSERT_EQ_INT(stat(db, &before), 0);
    file_copy(tmp_path("two.db"), db);
    ASSERT_EQ_INT(stat(db, &after), 0);
    ASSERT_TRUE(after.st_ino == before.st_ino);
    ASSERT_EQ_STR(call_ok(import_ok(host, "y"), "v", NULL), "\"TWO\"");
    mh_host_free(host);
}

/* A database replaced, or made writable by others, after the host opened
 * it is checked again before anything is read from it: native code from
 * a file others may write is refused there as at the first open. */
TEST(database_made_writable_by_others_is_refused_on_reopen)
{
    const char *db = db_make(tmp_path("p.db"), "counter:first.so");
    const char *evil = db_make(tmp_path("evil.db"), "answer7:b.so");
    log_capture lc;
    host_opts o = {.log = &lc};
    mh_module *mod;

    log_capture_init(&lc);
    mh_host *host = host_new_opts(&o, db);
    import_ok(host, "first");
    ASSERT_EQ_INT(chmod(evil, 0666), 0);
    ASSERT_EQ_INT(rename(evil, db), 0);
    ASSERT_STATUS(mh_import(host, "b", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "writable by");
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_STATUS(mh_import(host, "b", &mod, ERR), MH_ENOTFOUND);
    /* said at every import, warned once */
    ASSERT_CONTAINS(ERR_MSG(), "writable by");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "not used"), 1);
    ASSERT_EQ_INT(chmod(db, 0644), 0); /* the owner mends it */
    ASSERT_EQ_INT(call_int(import_ok(host, "b"), "value"), 7);
    ASSERT_EQ_INT(chmod(db, 0666), 0); /* in place, no new inode */
    ASSERT_STATUS(mh_find(host, "b", &(mh_spec_info){.size = sizeof(mh_spec_info)}, ERR), MH_ENOTFOUND);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* -------------------------------------------------------------- threads */

#define N_THREADS 8

struct worker {
    mh_host *host;
    int index;
    int ok;
    char msg[512];
};

static void *import_worker(void *arg)
{
    struct worker *w = arg;
    char name[32];
    mh_error *err = NULL;
    mh_module *a = NULL, *b = NULL;

    snprintf(name, sizeof name, "m%d", w->index);
    if (mh_import(w->host, name, &a, &err) != MH_OK ||
        mh_import(w->host, "shared", &b, &err) != MH_OK) {
        snprintf(w->msg, sizeof w->msg, "%s", mh_error_message(err));
        mh_error_free(err);
        return NULL;
    }
    w->ok = ((int (*)(void))mh_module_symbol(a, "value"))() == 7 &&
            ((int (*)(void))mh_module_symbol(b, "value"))() == 42;
    return NULL;
}

TEST(threads_import_from_one_database)
{
    const char *db = db_make(tmp_path("p.db"), "counter:shared.so");
    struct worker w[N_THREADS];
    pthread_t t[N_THREADS];
    mh_host *host;

    for (int i = 0; i < N_THREADS; i++)
        db_make(db, str_fmt("answer7:m%d.so", i));
    host = host_new_isolated(db);
    for (int i = 0; i < N_THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].host = host;
        w[i].index = i;
        if (pthread_create(&t[i], NULL, import_worker, &w[i]) != 0)
            FAIL("pthread_create");
    }
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < N_THREADS; i++)
        if (!w[i].ok)
            FAIL("thread %d: %s", i, w[i].msg[0] ? w[i].msg : "wrong value");
    ASSERT_EQ_INT(call_int(import_ok(host, "shared"), "init_count"), 1);
    ASSERT_EQ_INT(mh_host_module_count(host), N_THREADS + 1);
    mh_host_free(host);
}

/* ---------------------------------------------------- concurrent writer */

#define WRITER_MAX_IMPORTS 150
#define WRITER_MAX_SECONDS 15

/* The writer (a forked child): pack A and B alternately, both holding
 * mod.so, until the parent closes the pipe (or dies).  Plain stdio only:
 * the test helpers would clean up the case's temp dir if they failed here. */
static _Noreturn void writer(const char *db, const char *a, const char *b,
                             int stop_fd, const char *report)
{
    size_t packs = 0, fails = 0;
    char last[512] = "";
    FILE *f;

    for (unsigned i = 0;; i++) {
        const char *in[1] = {(i & 1) ? b : a};
        mh_error *err = NULL;
        char c;
        ssize_t r = read(stop_fd, &c, 1);

        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
            break;
        if (mh_pack(db, in, 1, NULL, &err) == MH_OK) {
            packs++;
        } else {
            fails++;
            snprintf(last, sizeof last, "%s", mh_error_message(err));
        }
        mh_error_free(err);
    }
    f = fopen(report, "w");
    if (f) {
        fprintf(f, "%zu %zu %s", packs, fails, last);
        fclose(f);
    }
    _exit(0);
}

TEST(concurrent_writer_never_tears_a_module)
{
    const char *a = tmp_mkdir("A"), *b = tmp_mkdir("B");
    const char *db = tmp_path("p.db");
    const char *report = tmp_path("writer.txt");
    struct timespec t0, now;
    int fds[2], status = 0, seen42 = 0, seen7 = 0, imports = 0;
    size_t packs = 0, fails = 0;
    const char *rep;
    pid_t pid;

    fixture_copy("counter", "A/mod.so");
    fixture_copy("answer7", "B/mod.so");
    db_pack(db, a);
    if (pipe(fds) < 0)
        FAIL("pipe: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        close(fds[1]);
        fcntl(fds[0], F_SETFL, O_NONBLOCK);
        writer(db, a, b, fds[0], report);
    }
    close(fds[0]);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        mh_host *host = host_new_isolated(db);
        mh_module *mod = NULL;
        int v;

        if (mh_import(host, "mod", &mod, ERR) != MH_OK) {
            kill(pid, SIGKILL);
            FAIL("import %d while the writer runs: %s: %s", imports,
                 mh_status_name(ERR_CODE()), ERR_MSG());
        }
        v = call_int(mod, "value");
        if (v != 42 && v != 7) {
            kill(pid, SIGKILL);
            FAIL("import %d: value() is %d, neither 42 nor 7", imports, v);
        }
        seen42 |= v == 42;
        seen7 |= v == 7;
        mh_host_free(host);
        imports++;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (imports < WRITER_MAX_IMPORTS &&
             now.tv_sec - t0.tv_sec < WRITER_MAX_SECONDS);
    close(fds[1]); /* tells the writer to stop */
    if (waitpid(pid, &status, 0) != pid)
        FAIL("waitpid: %s", strerror(errno));
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rep = file_read(report);
    ASSERT_NOT_NULL(rep);
    if (sscanf(rep, "%zu %zu", &packs, &fails) != 2)
        FAIL("bad writer report: \"%s\"", rep);
    if (fails)
        FAIL("%zu of %zu packs failed while readers ran; last: %s", fails,
             packs + fails, rep);
    if (packs < 2)
        FAIL("the writer packed only %zu times", packs);
    if (!seen42 || !seen7)
        FAIL("%d imports saw only one version (42: %d, 7: %d; %zu packs)",
             imports, seen42, seen7, packs);
}

/* ------------------------------------------------ review: busy databases */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A python3 process holding an EXCLUSIVE lock on db for `seconds`; returns
 * its pid once it says it holds the lock. */
static pid_t hold_exclusive_lock(const char *db, const char *seconds)
{
    static const char script[] =
        "import sqlite3,sys,time; c=sqlite3.connect(sys.argv[1],"
        " isolation_level=None); c.execute('BEGIN EXCLUSIVE');"
        " print('locked', flush=True); time.sleep(float(sys.argv[2]))";
    char line[64];
    size_t n = 0;
    int fds[2];
    pid_t pid;

    if (pipe(fds) < 0)
        FAIL("pipe: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execlp("python3", "python3", "-c", script, db, seconds, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    while (n < sizeof line - 1) {
        ssize_t r = read(fds[0], line + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(fds[0]);
    if (strcmp(line, "locked") != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        FAIL("the lock holder said \"%s\", not \"locked\"", line);
    }
    return pid;
}

/* The journal mode the header of db says: 1 rollback, 2 WAL. */
static int header_journal(const char *db)
{
    unsigned char v[2] = {0, 0};
    int fd = open(db, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || pread(fd, v, 2, 18) != 2)
        FAIL("cannot read the header of %s", db);
    close(fd);
    if (v[0] != v[1])
        FAIL("%s: read version %d, write version %d", db, v[0], v[1]);
    return v[0];
}

TEST(wal_database_a_reader_cannot_join_says_how_to_mend_it)
{
    /* A root-owned database in WAL mode, in a directory its reader cannot
     * write: SQLite needs the -wal and -shm files beside it.  The entry
     * is refused once, saying so and how to mend it (not "try again" at
     * every import); pack takes the database out of WAL mode. */
    if (geteuid() != 0)
        SKIP("reads as uid 65534, which needs root");
    ASSERT_EQ_INT(chmod(tmp_dir(), 0755), 0); /* 65534 may look in */
    const char *dir = tmp_mkdir("sys");
    ASSERT_EQ_INT(chmod(dir, 0755), 0);
    const char *db = db_make(tmp_path("sys/p.db"), "counter:mod.so");
    ASSERT_EQ_INT(chmod(db, 0644), 0);
    ASSERT_EQ_STR(db_exec(db, "PRAGMA journal_mode=WAL"), "wal");
    ASSERT_EQ_INT(header_journal(db), 2);
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    mh_host *host = host_new_opts(&o, db);
    mh_module *mod = NULL;
    mh_status rc[2];
    if (seteuid(65534) != 0)
        FAIL("seteuid(65534): %s", strerror(errno));
    rc[0] = mh_import(host, "mod", &mod, ERR);
    rc[1] = mh_import(host, "mod", &mod, NULL);
    if (seteuid(0) != 0)
        FAIL("seteuid(0): %s", strerror(errno));
    ASSERT_STATUS(rc[0], MH_ENOTFOUND);
    ASSERT_STATUS(rc[1], MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("module database %s is in WAL mode",
                                       db));
    ASSERT_CONTAINS(ERR_MSG(), "journal_mode=DELETE");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "WAL mode"), 1);
    ASSERT_FALSE(file_exists(str_fmt("%s-wal", db)));

    /* a pack, as root, takes it out of WAL mode: then it serves */
    const char *in[] = {fixture_copy("answer7", "in/other.so")};
    ASSERT_STATUS(mh_pack(db, in, 1, NULL, ERR), MH_OK);
    ASSERT_EQ_INT(header_journal(db), 1);
    mh_invalidate_caches(host);
    if (seteuid(65534) != 0)
        FAIL("seteuid(65534): %s", strerror(errno));
    rc[0] = mh_import(host, "mod", &mod, ERR);
    if (seteuid(0) != 0)
        FAIL("seteuid(0): %s", strerror(errno));
    ASSERT_STATUS(rc[0], MH_OK);
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(empty_file_in_a_database_fails_as_on_disk)
{
    /* SQLite hands back a BLOB of no bytes as NULL: an empty file was
     * "no data".  It is an empty module, whose loader says what is wrong
     * with it -- the same status and words as for the file on disk. */
    const char *stage = tmp_mkdir("stage");
    const char *db = tmp_path("e.db");
    static const char *const names[] = {"empty", "e2"};
    file_write(tmp_path("stage/empty.lua"), "");
    file_write(tmp_path("stage/e2.so"), "");
    ASSERT_EQ_INT(db_pack(db, stage), 2);
    mh_host *from_db = host_new_isolated(db);
    mh_host *from_dir = host_new_isolated(stage);
    for (size_t i = 0; i < 2; i++) {
        mh_module *mod;
        mh_status want = mh_import(from_dir, names[i], &mod, ERR);
        ASSERT_NE_INT(want, MH_OK);
        const char *dir_msg = str_fmt("%s", ERR_MSG());
        ASSERT_STATUS(mh_import(from_db, names[i], &mod, ERR), want);
        ASSERT_NOT_CONTAINS(ERR_MSG(), "no data");
        /* the words after the origin are the same */
        const char *a = strstr(dir_msg, ") "), *b = strstr(ERR_MSG(), ") ");
        if (!a || !b || strcmp(a, b) != 0)
            FAIL("%s: from the database \"%s\", from the directory \"%s\"",
                 names[i], ERR_MSG(), dir_msg);
    }
    mh_host_free(from_db);
    mh_host_free(from_dir);
}

TEST(pack_refuses_two_inputs_under_one_name)
{
    /* Absolute inputs are stored by base name: /a/m.so and /b/m.so would
     * be one row, the first silently dropped.  Refused, naming the name,
     * and nothing is written. */
    const char *db = tmp_path("dup.db");
    const char *a = fixture_copy("counter", "a/m.so");
    const char *b = fixture_copy("answer7", "b/m.so");
    const char *in[] = {a, b};
    ASSERT_STATUS(mh_pack(db, in, 2, NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "'m.so'");
    ASSERT_CONTAINS(ERR_MSG(), b);
    ASSERT_FALSE(file_exists(db));
}

/* The import of `mod` from a host on [db, dir] while db is locked: it
 * stops with MH_EAGAIN naming the database and the lock, and dir's module
 * of the same name is not taken in its place. */
static void import_stops_at_locked(mh_host *host, const char *db)
{
    mh_module *mod;
    ASSERT_STATUS(mh_import(host, "mod", &mod, ERR), MH_EAGAIN);
    const char *msg = ERR_MSG();
    ASSERT_CONTAINS(msg, "'mod'");
    ASSERT_CONTAINS(msg, db);
    ASSERT_CONTAINS(msg, "try again");
    if (strstr(msg, "locked") == NULL && strstr(msg, "busy") == NULL)
        FAIL("the message says neither 'locked' nor 'busy': \"%s\"", msg);
    ASSERT_NULL(mh_host_module(host, "mod"));
}

static void lock_holder_done(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        FAIL("waitpid: %s", strerror(errno));
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A bare sqlar at db (as `sqlite3 -A` makes it: no hashes) holding the
 * counter fixture as `rel`, then the SQL `more` (rows of its own). */
static const char *bare_db(const char *db, const char *rel, const char *more)
{
    const char *so = fixture_path("counter");
    db_exec(db, str_fmt("CREATE TABLE sqlar(name TEXT PRIMARY KEY, mode INT,"
                        " mtime INT, sz INT, data BLOB); INSERT INTO sqlar"
                        " VALUES('%s', 33261, 0, length(readfile('%s')),"
                        " readfile('%s')); %s", rel, so, so, more));
    return db;
}

/* The log hook of lock_after_find: once the find of module `x` is
 * traced (its row read, the statement done), another process takes the
 * database's exclusive lock. */
struct lock_after_find {
    const char *db;
    pid_t pid;
};

static void lock_after_find_log(void *ud, mh_log_level level,
                                const char *msg)
{
    struct lock_after_find *l = ud;
    if (level == MH_LOG_TRACE && l->pid == 0 &&
        strstr(msg, "find 'x': ") && strstr(msg, "found"))
        l->pid = hold_exclusive_lock(l->db, "8");
}

TEST(row_read_from_a_locked_database_says_try_again)
{
    /* What the metadata needs after the find (the code's note, the
     * sidecar manifest) is read in a transaction of its own: a writer
     * holding the database then made the read MH_EIO, as if the database
     * were broken, where every other lookup says MH_EAGAIN. */
    const char *db = bare_db(tmp_path("s.db"), "x.so",
                             "INSERT INTO sqlar VALUES('x.json', 33188, 0, "
                             "20, CAST('{\"version\": \"2.0.0\"}' AS "
                             "BLOB));");
    struct lock_after_find l = {db, 0};
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH |
                MH_CONFIG_VERBOSE;
    cfg.path = db;
    cfg.cache_dir = tmp_path("cache");
    cfg.log = lock_after_find_log;
    cfg.log_ud = &l;
    mh_host *host = host_new_cfg(&cfg);
    mh_manifest *m = NULL;
    ASSERT_STATUS(mh_metadata(host, "x", &m, ERR), MH_EAGAIN);
    ASSERT_NULL(m);
    if (l.pid == 0)
        FAIL("the find was never traced: the lock was not taken");
    /* The code's row (for its note) or the sidecar: read after the
     * find, either way. */
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("module database %s, entry x.", db));
    ASSERT_CONTAINS(ERR_MSG(), "database is locked");
    ASSERT_CONTAINS(ERR_MSG(), "try again");
    lock_holder_done(l.pid);
    ASSERT_STATUS(mh_metadata(host, "x", &m, ERR), MH_OK);
    ASSERT_EQ_STR(mh_manifest_version(m), "2.0.0");
    mh_manifest_free(m);
    mh_host_free(host);
}

TEST(busy_database_at_first_use_is_transient)
{
    /* A database locked by a writer when a host first opens it is busy,
     * not broken: the import stops (a later entry's module of the same
     * name must not load in its place), and the same host uses the
     * database once the lock is gone. */
    const char *db = db_make(tmp_path("p.db"), "counter:mod.so");
    const char *dir = tmp_mkdir("later");
    double t0 = now_s();
    log_capture lc;
    host_opts o = {0};
    mh_host *host;
    mh_module *mod;
    mh_spec_info info = {.size = sizeof info};
    pid_t pid;

    fixture_copy("answer7", "later/mod.so");
    log_capture_init(&lc);
    o.log = &lc;
    pid = hold_exclusive_lock(db, "7");
    host = host_new_opts(&o, db, dir);
    import_stops_at_locked(host, db);
    lock_holder_done(pid);
    /* the same host, no mh_invalidate_caches */
    mod = import_ok(host, "mod");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mod), origin_of(db, "mod.so"));
    ASSERT_STATUS(mh_find(host, "mod", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.finder, "sqlite");
    mh_host_free(host);
    log_capture_free(&lc);
    if (now_s() - t0 >= 20)
        FAIL("took %.1f s", now_s() - t0);
}

TEST(database_locked_during_a_find_stops_the_import)
{
    /* The database was open and read (another module imported) before a
     * writer locked it past the busy timeout: the same as at first use. */
    const char *db = db_make(tmp_path("p.db"), "counter:mod.so",
                             "answer7:other.so");
    const char *dir = tmp_mkdir("later");
    log_capture lc;
    host_opts o = {0};
    mh_host *host;
    pid_t pid;

    fixture_copy("answer7", "later/mod.so");
    log_capture_init(&lc);
    o.log = &lc;
    host = host_new_opts(&o, db, dir);
    ASSERT_EQ_STR(mh_module_origin(import_ok(host, "other")),
                  origin_of(db, "other.so"));
    pid = hold_exclusive_lock(db, "7");
    import_stops_at_locked(host, db);
    lock_holder_done(pid);
    ASSERT_EQ_INT(call_int(import_ok(host, "mod"), "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mh_host_module(host, "mod")),
                  origin_of(db, "mod.so"));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(database_changed_then_locked_stops_the_import)
{
    /* Rewritten since the host read it, so the next find reopens it --
     * into a writer's lock: the import stops as well.  A host that has
     * never opened it lists the other entries, with a warning naming it. */
    const char *db = db_make(tmp_path("p.db"), "counter:mod.so",
                             "answer7:other.so");
    const char *dir = tmp_mkdir("later");
    log_capture lc, lc2;
    host_opts o = {0}, o2 = {0};
    pid_t pid;
    int n = 0;

    fixture_copy("answer7", "later/mod.so");
    log_capture_init(&lc);
    log_capture_init(&lc2);
    o.log = &lc;
    o2.log = &lc2;
    mh_host *host = host_new_opts(&o, db, dir);
    ASSERT_EQ_STR(mh_module_origin(import_ok(host, "other")),
                  origin_of(db, "other.so"));
    db_make(db, "answer7:new.so"); /* the file changes */
    pid = hold_exclusive_lock(db, "12");
    import_stops_at_locked(host, db);
    mh_host *fresh = host_new_opts(&o2, db, dir);
    ASSERT_STATUS(mh_list(fresh, count_all, &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 1); /* later/mod.so */
    ASSERT_LOG(&lc2, MH_LOG_WARN, db);
    ASSERT_LOG(&lc2, MH_LOG_WARN, "locked");
    lock_holder_done(pid);
    ASSERT_EQ_INT(call_int(import_ok(host, "mod"), "value"), 42);
    ASSERT_EQ_INT(call_int(import_ok(host, "new"), "value"), 7);
    mh_host_free(fresh);
    mh_host_free(host);
    log_capture_free(&lc);
    log_capture_free(&lc2);
}

TEST(database_reopened_without_a_descriptor_stops_the_import)
{
    /* A changed database is checked and reopened at the next find; with
     * no descriptor free for that, whether it holds the module is
     * unknown: the import stops (MH_EAGAIN), the later entry's module of
     * the same name is not taken, and it works once there is room. */
    const char *db = db_make(tmp_path("p.db"), "counter:mod.so",
                             "answer7:other.so");
    const char *dir = tmp_mkdir("later");
    struct rlimit old;
    mh_module *mod;

    fixture_copy("answer7", "later/mod.so");
    mh_host *host = host_new_isolated(db, dir);
    import_ok(host, "other");
    db_exec(db, "UPDATE sqlar SET mtime = mtime + 1");
    fds_none_begin(&old);
    mh_status rc = mh_import(host, "mod", &mod, ERR);
    fds_none_end(&old);
    ASSERT_STATUS(rc, MH_EAGAIN);
    ASSERT_CONTAINS(ERR_MSG(), "'mod'");
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_NULL(mh_host_module(host, "mod"));
    ASSERT_EQ_STR(mh_module_origin(import_ok(host, "mod")),
                  origin_of(db, "mod.so"));
    mh_host_free(host);
}

/* As uid 65534 (the case needs root): n imports of mod into host, each
 * failing as not found, then entry 0's info into *info, its error text
 * (NULL: none) returned. */
static const char *imports_as_nobody(mh_host *host, int n,
                                     mh_path_entry_info *info)
{
    mh_module *mod;
    mh_status rc[8];
    if (n > 8 || seteuid(65534) != 0)
        FAIL("seteuid(65534): %s", strerror(errno));
    for (int i = 0; i < n; i++)
        rc[i] = mh_import(host, "mod", &mod, NULL);
    *info = (mh_path_entry_info){.size = sizeof *info};
    mh_status irc = mh_host_path_entry_info(host, 0, info);
    if (seteuid(0) != 0)
        FAIL("seteuid(0): %s", strerror(errno));
    for (int i = 0; i < n; i++)
        ASSERT_STATUS(rc[i], MH_ENOTFOUND);
    ASSERT_STATUS(irc, MH_OK);
    return info->error;
}

TEST(database_the_process_may_not_open_is_reported_once)
{
    /* A database its reader may not open (EACCES) is no passing trouble:
     * one warning, the reason kept for `modhost path`, not a warning at
     * every import. */
    if (geteuid() != 0)
        SKIP("reads as uid 65534, which needs root");
    ASSERT_EQ_INT(chmod(tmp_dir(), 0755), 0);
    const char *db = db_make(tmp_path("p.db"), "counter:mod.so");
    ASSERT_EQ_INT(chmod(db, 0600), 0);
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    mh_host *host = host_new_opts(&o, str_fmt("sqlite:%s", db));
    mh_path_entry_info info;
    const char *why = imports_as_nobody(host, 3, &info);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, db), 1);
    ASSERT_TRUE(why != NULL);
    ASSERT_CONTAINS(why, db);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(hot_journal_a_reader_cannot_roll_back_is_said_so)
{
    /* A writer died mid-transaction; its journal must be rolled back
     * before the database can be read, which takes write access.  A
     * reader without it read "attempt to write a readonly database", and
     * tried again at every import. */
    if (geteuid() != 0)
        SKIP("reads as uid 65534, which needs root");
    ASSERT_EQ_INT(chmod(tmp_dir(), 0755), 0);
    const char *src = db_make(tmp_path("src.db"), "counter:mod.so",
                              "answer7:other.so");
    const char *dir = tmp_path("ro");
    ASSERT_EQ_INT(mkdir(dir, 0755), 0);
    const char *db = str_fmt("%s/p.db", dir);
    /* The files of a transaction caught half-way: the database with
     * changes spilled into it, and the journal to undo them. */
    int st;
    sh_run(str_fmt("sqlite3 -batch -init /dev/null %s <<'EOF'\n"
                   "PRAGMA journal_mode=DELETE;\n"
                   "PRAGMA cache_size=1;\n"
                   "BEGIN;\n"
                   "UPDATE sqlar SET data = zeroblob(length(data));\n"
                   ".shell cp %s %s && cp %s-journal %s-journal\n"
                   "ROLLBACK;\n"
                   "EOF", sh_quote(src), src, db, src, db), &st);
    ASSERT_EQ_INT(st, 0);
    ASSERT_TRUE(file_exists(str_fmt("%s-journal", db)));
    ASSERT_FALSE(file_exists(str_fmt("%s-journal", src)));

    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    mh_host *host = host_new_opts(&o, str_fmt("sqlite:%s", db));
    mh_path_entry_info info;
    const char *why = imports_as_nobody(host, 3, &info);
    ASSERT_TRUE(why != NULL);
    ASSERT_CONTAINS(why, "left its journal");
    if (log_capture_count(&lc, MH_LOG_WARN, "left its journal") != 1 ||
        log_capture_count(&lc, -1, db) != 1)
        FAIL("not warned once: %s", log_capture_dump(&lc));
    ASSERT_TRUE(file_exists(str_fmt("%s-journal", db)));

    /* Rolled back by one who may: read after mh_invalidate_caches, as
     * every entry refused for good is. */
    db_exec(db, "PRAGMA schema_version");
    ASSERT_FALSE(file_exists(str_fmt("%s-journal", db)));
    mh_invalidate_caches(host);
    ASSERT_EQ_INT(call_int(import_ok(host, "mod"), "value"), 42);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(database_without_scheme_the_process_may_not_read_says_why)
{
    /* Without "sqlite:", a database is known by its first bytes: one the
     * process may not read was "no finder handles this entry", and
     * nothing more. */
    if (geteuid() != 0)
        SKIP("reads as uid 65534, which needs root");
    ASSERT_EQ_INT(chmod(tmp_dir(), 0755), 0);
    const char *db = db_make(tmp_path("p.db"), "counter:mod.so");
    ASSERT_EQ_INT(chmod(db, 0600), 0);
    mh_host *host = host_new_isolated(db);
    mh_path_entry_info info;
    const char *why = imports_as_nobody(host, 1, &info);
    ASSERT_TRUE(why != NULL);
    ASSERT_CONTAINS(why, "no finder handles this entry (it cannot be "
                                "read: Permission denied;");
    mh_host_free(host);
}

/* Stage n_files files of `each` random (incompressible) bytes under dir. */
static void random_files(const char *dir, int n_files, size_t each)
{
    unsigned char *buf = malloc(each);
    uint64_t x = 0x9e3779b97f4a7c15u;

    if (buf == NULL)
        FAIL("out of memory");
    for (int f = 0; f < n_files; f++) {
        for (size_t i = 0; i < each; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (unsigned char)(x >> 24);
        }
        file_write_bytes(str_fmt("%s/blob%02d.bin", dir, f), buf, each);
    }
    free(buf);
}

#define BIG_PACKS 3

TEST(pack_reads_inputs_before_write_lock)
{
    /* 20 MB that does not compress: a pack that read and compressed it
     * while holding the database's write lock would keep readers out for
     * that long.  Readers (a fresh host each time) must never fail. */
    const char *stage = tmp_mkdir("stage");
    const char *db = tmp_path("p.db");
    const char *report = tmp_path("writer.txt");
    int fds[2], status = 0, imports = 0;
    double t0, t1, longest = 0;
    pid_t pid;
    const char *rep;
    int packs = -1;

    random_files(stage, 20, (size_t)1 << 20);
    fixture_copy("counter", "stage/mod.so");
    db_pack(db, stage);
    if (pipe(fds) < 0)
        FAIL("pipe: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) { /* the writer: plain stdio only */
        const char *in[1] = {stage};
        int ok = 0;
        char last[512] = "";
        FILE *f;
        close(fds[0]);
        for (int i = 0; i < BIG_PACKS; i++) {
            mh_error *err = NULL;
            if (mh_pack(db, in, 1, NULL, &err) == MH_OK)
                ok++;
            else
                snprintf(last, sizeof last, "%s", mh_error_message(err));
            mh_error_free(err);
        }
        f = fopen(report, "w");
        if (f) {
            fprintf(f, "%d %s", ok, last);
            fclose(f);
        }
        _exit(0); /* closes fds[1]: the reader stops */
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    t0 = now_s();
    for (;;) {
        char c;
        ssize_t r = read(fds[0], &c, 1);
        mh_host *host;
        mh_module *mod = NULL;

        if (r == 0)
            break; /* the writer is done */
        if (now_s() - t0 > 18) {
            kill(pid, SIGKILL);
            FAIL("the writer did not finish %d packs in 18 s", BIG_PACKS);
        }
        t1 = now_s();
        host = host_new_isolated(db);
        if (mh_import(host, "mod", &mod, ERR) != MH_OK) {
            kill(pid, SIGKILL);
            FAIL("import %d while mh_pack ran (%.2f s in): %s: %s", imports,
                 now_s() - t0, mh_status_name(ERR_CODE()), ERR_MSG());
        }
        ASSERT_EQ_INT(call_int(mod, "value"), 42);
        mh_host_free(host);
        if (now_s() - t1 > longest)
            longest = now_s() - t1;
        imports++;
    }
    close(fds[0]);
    if (waitpid(pid, &status, 0) != pid)
        FAIL("waitpid: %s", strerror(errno));
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rep = file_read(report);
    ASSERT_NOT_NULL(rep);
    if (sscanf(rep, "%d", &packs) != 1 || packs != BIG_PACKS)
        FAIL("the writer's packs failed: \"%s\"", rep);
    printf("%d imports during %d packs (%.2f s), the slowest %.0f ms\n",
           imports, BIG_PACKS, now_s() - t0, longest * 1000);
    ASSERT_TRUE(imports > 0);
}

/* ------------------------------------------------ review: mh_pack edges */

/* The names in dir, sorted, comma-separated ("" when empty). */
static const char *dir_listing(const char *dir)
{
    const char *s = sh_run(str_fmt("ls -A %s | LC_ALL=C sort | paste -sd, -",
                                   sh_quote(dir)),
                           NULL);
    size_t n = strlen(s);
    while (n > 0 && s[n - 1] == '\n')
        n--;
    return str_fmt("%.*s", (int)n, s);
}

TEST(pack_failure_leaves_nothing_behind)
{
    const char *out = tmp_mkdir("out");
    const char *db = str_fmt("%s/new.db", out);
    const char *good = fixture_copy("counter", "in/good.so");
    const char *missing = tmp_path("in/missing.so");
    const char *old_dir = tmp_mkdir("old");
    const char *old = db_make(str_fmt("%s/p.db", old_dir), "counter:old.so",
                              "answer7:pkg/keep.so");
    const char *dump = "SELECT name, mode, mtime, sz, hex(data) FROM sqlar"
                       " ORDER BY name";
    const char *before = db_exec(old, dump);
    const char *big = tmp_mkdir("big");
    const char *climbs = "../in/good.so";

    random_files(big, 4, (size_t)1 << 20); /* enough to spill the cache */
    {
        const char *in[] = {good, missing};
        ASSERT_NE_INT(mh_pack(db, in, 2, NULL, ERR), MH_OK);
        ASSERT_CONTAINS(ERR_MSG(), missing);
        ASSERT_EQ_STR(dir_listing(out), "");
    }
    {
        const char *in[] = {big, good, "/dev/null"};
        ASSERT_NE_INT(mh_pack(db, in, 3, NULL, ERR), MH_OK);
        ASSERT_CONTAINS(ERR_MSG(), "/dev/null");
        ASSERT_EQ_STR(dir_listing(out), "");
    }
    if (chdir(tmp_path("in")) < 0)
        FAIL("chdir: %s", strerror(errno));
    {
        const char *in[] = {big, climbs};
        ASSERT_NE_INT(mh_pack(db, in, 2, NULL, ERR), MH_OK);
        ASSERT_EQ_STR(dir_listing(out), "");
    }
    /* an existing database: rows unchanged, no stray file beside it */
    {
        const char *in[] = {fixture_copy("answer7", "in2/old.so"),
                            fixture_copy("answer7", "in2/new.so"), big,
                            missing};
        ASSERT_NE_INT(mh_pack(old, in, 4, NULL, ERR), MH_OK);
        ASSERT_CONTAINS(ERR_MSG(), missing);
        ASSERT_EQ_STR(db_exec(old, dump), before);
        ASSERT_EQ_STR(dir_listing(old_dir), "p.db");
    }
}

TEST(failed_pack_never_removes_database_made_by_another)
{
    /* Pack B (20 MB, then a missing file) starts on a new path and fails;
     * pack A, started while B still reads, makes the database.  B's
     * failure must not remove what A made. */
    const char *out = tmp_mkdir("out");
    const char *db = str_fmt("%s/p.db", out);
    const char *big = tmp_mkdir("big");
    const char *missing = tmp_path("missing.so");
    const char *good = fixture_copy("counter", "in/good.so");
    const char *report = tmp_path("b.txt");
    const char *rep;
    int status = 0, st = -1;
    pid_t pid;
    mh_host *host;

    random_files(big, 20, (size_t)1 << 20);
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) { /* pack B: plain stdio only */
        const char *in[] = {big, missing};
        mh_error *err = NULL;
        int rc = (int)mh_pack(db, in, 2, NULL, &err);
        FILE *f = fopen(report, "w");
        if (f) {
            fprintf(f, "%d %s", rc, mh_error_message(err));
            fclose(f);
        }
        mh_error_free(err);
        _exit(0);
    }
    {
        struct timespec ts = {0, 150 * 1000 * 1000}; /* B is reading */
        nanosleep(&ts, NULL);
    }
    ASSERT_EQ_INT(db_pack(db, good), 1); /* pack A */
    if (waitpid(pid, &status, 0) != pid)
        FAIL("waitpid: %s", strerror(errno));
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rep = file_read(report);
    ASSERT_NOT_NULL(rep);
    if (sscanf(rep, "%d", &st) != 1 || st == MH_OK)
        FAIL("pack B did not fail: \"%s\"", rep);
    ASSERT_CONTAINS(rep, missing);
    if (!file_exists(db))
        FAIL("the database pack A made is gone; %s holds: \"%s\"", out,
             dir_listing(out));
    ASSERT_EQ_STR(dir_listing(out), "p.db");
    ASSERT_EQ_STR(db_exec(db, "SELECT name FROM sqlar"), "good.so");
    host = host_new_isolated(db);
    ASSERT_EQ_INT(call_int(import_ok(host, "good"), "value"), 42);
    mh_host_free(host);
}

TEST(pack_fifo_input_fails_promptly)
{
    const char *out = tmp_mkdir("out");
    const char *db = str_fmt("%s/p.db", out);
    const char *good = fixture_copy("counter", "in/good.so");
    const char *fifo = tmp_path("in/pipe.so");
    const char *report = tmp_path("child.txt");
    const char *rep;
    int status = 0, st = -1;
    double secs = -1;
    char msg[1024] = "";
    pid_t pid;

    if (mkfifo(fifo, 0644) < 0)
        FAIL("mkfifo: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) { /* plain stdio only; SIGALRM kills it if it hangs */
        const char *in[] = {good, fifo};
        mh_error *err = NULL;
        double t0;
        int rc;
        FILE *f;
        signal(SIGALRM, SIG_DFL);
        alarm(5);
        t0 = now_s();
        rc = (int)mh_pack(db, in, 2, NULL, &err);
        f = fopen(report, "w");
        if (f) {
            fprintf(f, "%d %.3f %s", rc, now_s() - t0,
                    mh_error_message(err));
            fclose(f);
        }
        mh_error_free(err);
        _exit(0);
    }
    if (waitpid(pid, &status, 0) != pid)
        FAIL("waitpid: %s", strerror(errno));
    if (WIFSIGNALED(status))
        FAIL("mh_pack with a FIFO input hung (killed by signal %d after 5 s)",
             WTERMSIG(status));
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    rep = file_read(report);
    ASSERT_NOT_NULL(rep);
    if (sscanf(rep, "%d %lf %1023[^\n]", &st, &secs, msg) < 2)
        FAIL("bad report from the child: \"%s\"", rep);
    if (st == MH_OK)
        FAIL("mh_pack of a FIFO succeeded");
    if (secs >= 2)
        FAIL("mh_pack took %.2f s to fail", secs);
    ASSERT_CONTAINS(rep, fifo);
    ASSERT_EQ_STR(dir_listing(out), "");
}

TEST(pack_uri_like_database_name_is_a_plain_file)
{
    const char *cwd = tmp_mkdir("cwd");
    const char *good = fixture_copy("counter", "in/urimod.so");
    const char *literal = tmp_path("cwd/file:x.db?mode=memory");
    const char *in[] = {good};
    char saved[4096];
    size_t count = 0;
    mh_status st;
    mh_host *host;

    if (getcwd(saved, sizeof saved) == NULL)
        FAIL("getcwd: %s", strerror(errno));
    if (chdir(cwd) < 0)
        FAIL("chdir: %s", strerror(errno));
    st = mh_pack("file:x.db?mode=memory", in, 1, &count, ERR);
    if (chdir(saved) < 0)
        FAIL("chdir back: %s", strerror(errno));
    ASSERT_STATUS(st, MH_OK);
    ASSERT_EQ_INT(count, 1);
    ASSERT_EQ_STR(dir_listing(cwd), "file:x.db?mode=memory");
    ASSERT_EQ_STR(db_exec(literal, "SELECT name FROM sqlar"), "urimod.so");
    host = host_new_isolated(literal);
    ASSERT_EQ_INT(call_int(import_ok(host, "urimod"), "value"), 42);
    mh_host_free(host);
}

/* What `sqlite3 DB -At` lists, sorted, one a line. */
static const char *archive_names(const char *db)
{
    int st;
    const char *out = sh_run(str_fmt("sqlite3 -batch -init /dev/null %s -At"
                                     " | LC_ALL=C sort",
                                     sh_quote(db)),
                             &st);
    ASSERT_EQ_INT(st, 0);
    return out;
}

TEST(pack_directory_holding_the_database_skips_it)
{
    const char *dir = tmp_mkdir("D");
    const char *db = tmp_path("D/p.db");
    const char *want = "m.so\npkg/n.so\n";
    mh_host *host;

    fixture_copy("counter", "D/m.so");
    fixture_copy("answer7", "D/pkg/n.so");
    /* new, then existing */
    for (int run = 0; run < 2; run++) {
        ASSERT_EQ_INT(db_pack(db, dir), 2);
        ASSERT_EQ_STR(archive_names(db), want);
    }
    /* WAL mode, with a reader keeping -wal and -shm in place */
    ASSERT_EQ_STR(db_exec(db, "PRAGMA journal_mode=WAL"), "wal");
    host = host_new_isolated(db);
    ASSERT_EQ_INT(call_int(import_ok(host, "m"), "value"), 42);
    if (!file_exists(str_fmt("%s-wal", db)) ||
        !file_exists(str_fmt("%s-shm", db)))
        printf("note: no -wal/-shm beside the database: %s\n",
               dir_listing(dir));
    ASSERT_EQ_INT(db_pack(db, dir), 2);
    ASSERT_EQ_STR(archive_names(db), want);
    ASSERT_EQ_INT(call_int(import_ok(host, "pkg.n"), "value"), 7);
    mh_host_free(host);
}

TEST(pack_follows_symlinked_package_directory)
{
    const char *dir = tmp_mkdir("D");
    const char *db = tmp_path("p.db");
    const char *in[] = {dir};
    size_t count = 0;
    double t0;
    mh_host *host;
    mh_module *mod;

    fixture_copy("counter", "real/pkg/m.so");
    fixture_copy("answer7", "D/top.so");
    if (symlink("../real/pkg", tmp_path("D/pkg")) < 0 ||
        symlink(".", tmp_path("D/loop")) < 0)
        FAIL("symlink: %s", strerror(errno));
    /* the fs finder follows the link */
    host = host_new_isolated(dir);
    ASSERT_EQ_INT(call_int(import_ok(host, "pkg.m"), "value"), 42);
    mh_host_free(host);

    t0 = now_s();
    ASSERT_STATUS(mh_pack(db, in, 1, &count, ERR), MH_OK);
    if (now_s() - t0 > 10)
        FAIL("mh_pack took %.1f s (the loop?)", now_s() - t0);
    ASSERT_EQ_STR(db_exec(db, "SELECT name FROM sqlar WHERE name NOT LIKE"
                              " 'loop/%' ORDER BY name"),
                  "pkg/m.so\ntop.so");
    host = host_new_isolated(db);
    mod = import_ok(host, "pkg.m");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mod), origin_of(db, "pkg/m.so"));
    ASSERT_EQ_INT(call_int(import_ok(host, "top"), "value"), 7);
    mh_host_free(host);
}

TEST(pack_directory_with_a_file_it_cannot_read_fails)
{
    /* A link loop where a file would be is an error naming it, and
     * nothing is written: a database missing one module, said nowhere,
     * is worse.  A dangling link is nothing there, and is passed over. */
    const char *dir = tmp_mkdir("D");
    const char *db = tmp_path("p.db");
    const char *in[] = {dir};
    size_t count = 9;
    fixture_copy("counter", "D/m.so");
    ASSERT_EQ_INT(symlink("nowhere.so", tmp_path("D/dangling.so")), 0);
    ASSERT_EQ_INT(db_pack(db, dir), 1);
    ASSERT_EQ_INT(symlink("loop.so", tmp_path("D/pkg.so")), 0);
    ASSERT_EQ_INT(mkdir(tmp_path("D/pkg"), 0755), 0);
    ASSERT_EQ_INT(symlink("loop2.so", tmp_path("D/pkg/loop2.so")), 0);
    ASSERT_STATUS(mh_pack(tmp_path("q.db"), in, 1, &count, ERR), MH_EIO);
    ASSERT_CONTAINS(ERR_MSG(), tmp_path("D/pkg"));
    ASSERT_CONTAINS(ERR_MSG(), "symbolic links");
    ASSERT_EQ_INT(count, 0);
    ASSERT_FALSE(file_exists(tmp_path("q.db")));
    /* the same into an existing database: it is left as it was */
    ASSERT_STATUS(mh_pack(db, in, 1, &count, ERR), MH_EIO);
    ASSERT_EQ_STR(archive_names(db), "m.so\n");
}

TEST(pack_onto_a_dangling_link_is_refused)
{
    /* SQLite would build the database in place through the link, half
     * made for readers and left behind on failure. */
    const char *db = tmp_path("link.db");
    const char *in[] = {fixture_path("counter")};
    ASSERT_EQ_INT(symlink(tmp_path("elsewhere/target.db"), db), 0);
    ASSERT_EQ_INT(mkdir(tmp_path("elsewhere"), 0755), 0);
    ASSERT_STATUS(mh_pack(db, in, 1, NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_CONTAINS(ERR_MSG(), "symbolic link");
    ASSERT_EQ_INT(dir_count(tmp_path("elsewhere")), 0);
    /* a link loop there: said as such */
    ASSERT_EQ_INT(symlink("loop.db", tmp_path("loop.db")), 0);
    ASSERT_NE_INT(mh_pack(tmp_path("loop.db"), in, 1, NULL, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), tmp_path("loop.db"));
    ASSERT_CONTAINS(ERR_MSG(), "symbolic links");
    /* a link to a database that exists is packed into, as before */
    ASSERT_EQ_INT(db_pack(tmp_path("elsewhere/target.db"),
                          fixture_path("answer7")), 1);
    ASSERT_EQ_INT(db_pack(db, fixture_path("counter")), 1);
    ASSERT_EQ_STR(archive_names(tmp_path("elsewhere/target.db")),
                  "answer7.so\ncounter.so\n");
}

TEST(pack_stores_dot_slash_slash_names_relative)
{
    /* ".//pkg/m.so" is the file pkg/m.so, stored as "pkg/m.so" (it was
     * read as "/pkg/m.so", another file). */
    fixture_copy("counter", "pkg/m.so");
    const char *cwd = getcwd(NULL, 0);
    ASSERT_EQ_INT(chdir(tmp_dir()), 0);
    const char *in[] = {".//pkg/m.so"};
    mh_status rc = mh_pack("p.db", in, 1, NULL, ERR);
    ASSERT_EQ_INT(chdir(cwd), 0);
    free((void *)cwd);
    ASSERT_STATUS(rc, MH_OK);
    ASSERT_EQ_STR(archive_names(tmp_path("p.db")), "pkg/m.so\n");
}

/* ---------------------------------------- review: load failures, traces */

/* A copy of counter.so cut to 60% of its size: its ELF header and program
 * headers are intact, its segments reach past the end of the file. */
static const char *truncated_module(const char *rel)
{
    const char *path = fixture_copy("counter", "%s", rel);
    file_truncate_to(path, (size_t)(file_size(path) * 6 / 10));
    return path;
}

/* A copy of counter.so whose dependency libc.so.6 is renamed nosuch.so in
 * its dynamic string table: a well-formed shared object (any header or
 * segment check passes) that dlopen refuses cleanly ("nosuch.so: cannot
 * open shared object file"). */
static const char *missing_dep_module(const char *rel)
{
    static const char from[] = "libc.so.6", to[] = "nosuch.so";
    const char *path = fixture_copy("counter", "%s", rel);
    size_t len, hits = 0;
    unsigned char *so = file_bytes(path, &len);

    for (size_t i = 0; i + sizeof from <= len; i++)
        if (memcmp(so + i, from, sizeof from) == 0) { /* with its NUL */
            memcpy(so + i, to, sizeof to);
            hits++;
        }
    if (hits == 0)
        FAIL("no \"%s\" in %s", from, path);
    file_write_bytes(path, so, len);
    free(so);
    return path;
}

/* Import "bad" (the image at `bad`, packed as bad.so beside a good module)
 * with memfd and without: it fails with MH_ELOAD or MH_EFORMAT and a
 * message naming DB!/bad.so, never crashes, and good still imports. */
static void check_bad_image(const char *bad)
{
    const char *db = tmp_path("p.db");
    const char *in[] = {bad, fixture_copy("answer7", "stage/good.so")};
    const unsigned flags[] = {0, MH_CONFIG_NO_MEMFD};

    ASSERT_STATUS(mh_pack(db, in, 2, NULL, ERR), MH_OK);
    for (int i = 0; i < 2; i++) {
        host_opts o = {.flags = flags[i]};
        mh_host *host = host_new_opts(&o, db);
        mh_module *mod;
        mh_status st = mh_import(host, "bad", &mod, ERR);

        if (st != MH_ELOAD && st != MH_EFORMAT)
            FAIL("%s: import of a broken image: %s, want MH_ELOAD or "
                 "MH_EFORMAT: %s", i ? "no memfd" : "memfd",
                 mh_status_name(st), ERR_MSG());
        ASSERT_NULL(mod);
        ASSERT_CONTAINS(ERR_MSG(), origin_of(db, "bad.so"));
        ASSERT_NOT_CONTAINS(ERR_MSG(), "/proc/self/fd");
        ASSERT_NOT_CONTAINS(ERR_MSG(), tmp_path("cache/native/"));
        ASSERT_NULL(mh_host_module(host, "bad"));
        ASSERT_EQ_INT(call_int(import_ok(host, "good"), "value"), 7);
        mh_host_free(host);
    }
}

TEST(db_load_failure_names_database_and_entry)
{
    check_bad_image(missing_dep_module("stage/bad.so"));
}

TEST(db_truncated_module_fails_cleanly)
{
    /* The dynamic loader maps segments past the end of the file and
     * touches them (SIGBUS): such an image must be refused, not run. */
    check_bad_image(truncated_module("stage/bad.so"));
}

/* ------------------------------------------- review: hostile schemas */

TEST(nocase_name_column_does_not_match_other_case)
{
    const char *db = tmp_path("p.db");
    const char *dir = tmp_mkdir("E");
    const char *so = fixture_path("counter");
    const char *fs_hello = fixture_copy("answer7", "E/hello.so");
    mh_spec_info info = {.size = sizeof info};
    struct listing l = {0};
    mh_host *host;
    mh_module *mod;

    db_exec(db, str_fmt("CREATE TABLE sqlar(name TEXT PRIMARY KEY COLLATE"
                        " NOCASE, mode INT, mtime INT, sz INT, data BLOB);"
                        " INSERT INTO sqlar VALUES('HELLO.so', 33261, 0,"
                        " length(readfile('%s')), readfile('%s'));",
                        so, so));
    /* the database alone: hello is not there */
    host = host_new_isolated(db);
    ASSERT_STATUS(mh_import(host, "hello", &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_find(host, "hello", &info, ERR), MH_ENOTFOUND);
    mh_host_free(host);
    /* the directory behind it has hello.so: that one is used */
    host = host_new_isolated(db, dir);
    ASSERT_STATUS(mh_find(host, "hello", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.origin, fs_hello);
    mod = import_ok(host, "hello");
    ASSERT_EQ_INT(call_int(mod, "value"), 7);
    ASSERT_EQ_STR(mh_module_origin(mod), fs_hello);
    /* mh_list agrees with mh_find, name by name */
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    for (size_t i = 0; i < l.n; i++) {
        ASSERT_STATUS(mh_find(host, l.names[i], &info, ERR), MH_OK);
        if (strcmp(info.origin, l.origins[i]) != 0)
            FAIL("mh_list says %s is %s, mh_find says %s", l.names[i],
                 l.origins[i], info.origin);
    }
    if (strstr(str_fmt(",%s,", joined_names(&l)), ",hello,") == NULL)
        FAIL("mh_list does not report hello: %s", joined_names(&l));
    mh_host_free(host);
}

/* A name stored as both native code and Lua source: a find takes the
 * native code (as in a directory), and the listing said Lua -- X.lua
 * sorts before X.so, and a listing keeps the first it is given.  A
 * directory row X.so shadows nothing.  Both kinds of table: packed (with
 * the hashes), and a bare sqlar. */
static void list_and_find_agree_on(const char *db)
{
    mh_spec_info info = {.size = sizeof info};
    struct listing l = {0};
    mh_host *host = host_new_isolated(db);
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "dirso,hello,only");
    for (size_t i = 0; i < l.n; i++) {
        ASSERT_STATUS(mh_find(host, l.names[i], &info, ERR), MH_OK);
        if (strcmp(info.origin, l.origins[i]) != 0)
            FAIL("mh_list says %s is %s, mh_find says %s", l.names[i],
                 l.origins[i], info.origin);
    }
    ASSERT_EQ_STR(l.origins[1], str_fmt("%s!/hello.so", db));
    ASSERT_EQ_STR(l.origins[0], str_fmt("%s!/dirso.lua", db));
    ASSERT_EQ_INT(call_int(import_ok(host, "hello"), "value"), 42);
    ASSERT_EQ_INT(mh_module_kind_of(import_ok(host, "dirso")), MH_KIND_LUA);
    mh_host_free(host);
}

TEST(a_name_with_native_code_and_lua_source_is_listed_as_found)
{
    static const char lua[] =
        "INSERT INTO sqlar VALUES('hello.lua', 33188, 0, 26, "
        "CAST('return {value = 7} -- lua' AS BLOB)); "
        "INSERT INTO sqlar VALUES('only.lua', 33188, 0, 9, "
        "CAST('return {}' AS BLOB)); "
        "INSERT INTO sqlar VALUES('dirso.so', 16877, 0, 0, NULL); "
        "INSERT INTO sqlar VALUES('dirso.lua', 33188, 0, 9, "
        "CAST('return {}' AS BLOB));";
    list_and_find_agree_on(bare_db(tmp_path("bare.db"), "hello.so", lua));
    const char *packed = db_make(tmp_path("packed.db"), "counter:hello.so");
    db_exec(packed, lua);
    list_and_find_agree_on(packed);
}

TEST(virtual_sqlar_table_is_refused)
{
    const char *db = tmp_path("v.db");
    const char *so = fixture_path("counter");
    const char *after = tmp_mkdir("after");
    log_capture lc;
    host_opts o = {0};
    mh_spec_info info = {.size = sizeof info};
    mh_host *host;

    db_exec(db, str_fmt("CREATE VIRTUAL TABLE sqlar USING fts5(name, mode,"
                        " mtime, sz, data);"
                        " INSERT INTO sqlar VALUES('indb.so', 33261, 0,"
                        " length(readfile('%s')), readfile('%s'));"
                        " INSERT INTO sqlar VALUES('pkg/indb.so', 33261, 0,"
                        " length(readfile('%s')), readfile('%s'));",
                        so, so, so, so));
    check_unusable(db, db, NULL);

    log_capture_init(&lc);
    o.log = &lc;
    fixture_copy("answer7", "after/hello.so");
    host = host_new_opts(&o, db, after);
    ASSERT_STATUS(mh_find(host, "indb", &info, ERR), MH_ENOTFOUND);
    ASSERT_EQ_INT(call_int(import_ok(host, "hello"), "value"), 7);
    if (log_capture_count(&lc, MH_LOG_WARN, "sqlar") +
            log_capture_count(&lc, MH_LOG_WARN, "virtual") == 0)
        FAIL("no warning mentions sqlar or virtual; log:%s",
             log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(a_column_named_rowid_is_refused)
{
    /* A column _rowid_ is what "_rowid_" then reads: a row's identity,
     * and the row its code is read from by id, would be the column's
     * word.  The database is refused, naming why. */
    const char *db = tmp_path("r.db");
    const char *so = fixture_path("counter");
    db_exec(db, str_fmt("CREATE TABLE sqlar(name TEXT PRIMARY KEY, mode INT,"
                        " mtime INT, sz INT, data BLOB, _RowId_ INT);"
                        " INSERT INTO sqlar VALUES('indb.so', 33261, 0,"
                        " length(readfile('%s')), readfile('%s'), 7);",
                        so, so));
    check_unusable(db, db, "has a column named _rowid_, which hides the row "
                           "id");
}

TEST(rows_with_unusable_names_are_not_modules)
{
    const char *db = db_make(tmp_path("p.db"), "counter:good.so");
    const char *so = fixture_path("answer7");
    const char *row = str_fmt("33261, 0, length(readfile('%s')),"
                              " readfile('%s')", so, so);
    struct listing l = {0};
    mh_host *host;
    mh_module *mod;

    db_exec(db, str_fmt("INSERT INTO sqlar VALUES(CAST('blobmod.so' AS BLOB),"
                        " %s);"
                        " INSERT INTO sqlar VALUES('nulmod.so' || char(0) ||"
                        " 'x', %s);"
                        " INSERT INTO sqlar VALUES('x.y.so', %s);"
                        " INSERT INTO sqlar VALUES('pkg/a.b.so', %s);",
                        row, row, row, row));
    ASSERT_EQ_STR(db_exec(db, "SELECT typeof(name), length(CAST(name AS"
                              " BLOB)) FROM sqlar WHERE name != 'good.so'"
                              " AND name != 'x.y.so' AND name !="
                              " 'pkg/a.b.so' ORDER BY 2"),
                  "blob|10\ntext|11");
    host = host_new_isolated(db);
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "good");
    ASSERT_NE_INT(mh_import(host, "blobmod", &mod, ERR), MH_OK);
    ASSERT_NE_INT(mh_import(host, "nulmod", &mod, ERR), MH_OK);
    ASSERT_NE_INT(mh_import(host, "x.y", &mod, ERR), MH_OK);
    ASSERT_NE_INT(mh_import(host, "pkg.a.b", &mod, ERR), MH_OK);
    ASSERT_EQ_INT(call_int(import_ok(host, "good"), "value"), 42);
    ASSERT_EQ_INT(mh_host_module_count(host), 1);
    mh_host_free(host);
}

TEST(row_size_stored_as_text)
{
    check_broken_row("sz = CAST(sz AS TEXT) || 'abc'", NULL);
}

TEST(row_data_stored_as_text)
{
    check_broken_row("data = CAST(data AS TEXT)", NULL);
}

/* ---- copies of native rows (the hashes table, the blob cache) ------- */

/* The copy the host keeps of db's row `rel`: named by the SHA-256 the
 * database records for it and a tag of its origin ("" when it records
 * none). */
static const char *blob_of(const char *db, const char *rel)
{
    const char *sha = db_exec(db, str_fmt("SELECT sha256 FROM mh_sha256 "
                                          "WHERE name = '%s'", rel));
    if (!*sha)
        return "";
    /* Its name ends in a tag of the origin: the one file of that content
     * for this database (these cases keep one origin per content). */
    const char *found = sh_run(str_fmt("ls -d %s.* 2>/dev/null | head -n 2",
                                       sh_quote(tmp_path("cache/blobs/%s",
                                                         sha))), NULL);
    if (strchr(found, '\n') && strchr(found, '\n')[1])
        FAIL("two copies of %s: %s", rel, found);
    size_t n = strcspn(found, "\n");
    return n ? str_fmt("%.*s", (int)n, found)
             : tmp_path("cache/blobs/%s.none", sha);
}

/* A host on db whose cache directory is tmp_path("cache"). */
static mh_host *copy_host(const char *db)
{
    host_opts o = {0};
    return host_new_opts(&o, db);
}

/* value() of module `name`, imported by a new host on db (copy_host). */
static int value_in_new_host(const char *db, const char *name)
{
    mh_host *host = copy_host(db);
    int v = call_int(import_ok(host, name), "value");
    mh_host_free(host);
    return v;
}

/* Database p.db holding counter as m.so, imported once: its copy kept. */
static const char *db_with_kept_copy(void)
{
    const char *db = db_make(tmp_path("p.db"), "counter:m.so");
    ASSERT_EQ_INT(value_in_new_host(db, "m"), 42);
    ASSERT_TRUE(file_exists(blob_of(db, "m.so")));
    return db;
}

/* Is file `path` mapped into this process? */
static bool mapped(const char *path)
{
    const char *maps = sh_run(str_fmt("cat /proc/%d/maps", (int)getpid()),
                              NULL);
    return strstr(maps, path) != NULL;
}

/* Are files a and b the same bytes? */
static bool same_bytes(const char *a, const char *b)
{
    int status;
    sh_run(str_fmt("cmp -s %s %s", sh_quote(a), sh_quote(b)), &status);
    return status == 0;
}

TEST(packed_module_is_mapped_from_its_kept_copy)
{
    const char *db = db_make(tmp_path("p.db"), "counter:first.so");
    /* mh_pack records the row's SHA-256, that of the file packed. */
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM mh_sha256"), "1");
    ASSERT_EQ_STR(sh_run(str_fmt("sha256sum < %s | head -c 64",
                                 sh_quote(fixture_path("counter"))), NULL),
                  db_exec(db, "SELECT sha256 FROM mh_sha256"));
    /* The first import reads the row, keeps it as a copy, and maps that:
     * every host of the process loads the one file. */
    ASSERT_TRUE(dir_count(tmp_path("cache/blobs")) <= 0);
    mh_host *host = copy_host(db);
    ASSERT_EQ_INT(call_int(import_ok(host, "first"), "value"), 42);
    ASSERT_EQ_INT(tree_count(tmp_path("cache/blobs"), ".", NULL), 1);
    const char *blob = blob_of(db, "first.so");
    ASSERT_TRUE(file_exists(blob));
    ASSERT_TRUE(same_bytes(blob, fixture_path("counter")));
    ASSERT_TRUE(mapped(blob));
    ASSERT_FALSE(mapped("/memfd:first "));
    mh_host_free(host);
    ASSERT_FALSE(mapped(blob));
    /* The next host maps it too, reading no row's data. */
    host = copy_host(db);
    mh_module *m = import_ok(host, "first");
    ASSERT_EQ_INT(call_int(m, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(m), str_fmt("%s!/first.so", db));
    ASSERT_TRUE(mapped(blob));
    mh_host_free(host);
}

TEST(changed_row_is_never_served_from_an_old_copy)
{
    const char *db = db_with_kept_copy();
    /* Re-packed: the new row, its new hash. */
    db_make(db, "answer7:m.so");
    ASSERT_EQ_INT(value_in_new_host(db, "m"), 7);
    /* Changed by another writer in place (the same row id): the trigger
     * drops the hash, and the row is read. */
    db_exec(db, str_fmt("UPDATE sqlar SET data = readfile('%s'), sz = "
                        "length(readfile('%s')) WHERE name = 'm.so'",
                        fixture_path("counter"), fixture_path("counter")));
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM mh_sha256"), "0");
    ASSERT_EQ_INT(value_in_new_host(db, "m"), 42);
}

TEST(hash_row_without_its_triggers_is_not_trusted)
{
    const char *db = db_with_kept_copy();
    /* A writer that drops a trigger, changes the row, and makes the old
     * hash row look like the new row's: the hash is not taken. */
    const char *other = fixture_path("answer7");
    db_exec(db, str_fmt("DROP TRIGGER mh_sha256_update; UPDATE sqlar SET "
                        "data = readfile('%s'), sz = length(readfile('%s')) "
                        "WHERE name = 'm.so'; UPDATE mh_sha256 SET sz = "
                        "(SELECT sz FROM sqlar), len = (SELECT length(data) "
                        "FROM sqlar)", other, other));
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM mh_sha256 h, sqlar s "
                          "WHERE h.row = s.rowid AND h.mode = s.mode AND "
                          "h.mtime = s.mtime AND h.sz = s.sz AND h.len = "
                          "length(s.data)"), "1");
    ASSERT_EQ_INT(value_in_new_host(db, "m"), 7);
}

/* Holding a database's names reads every module's row (its hash's join):
 * through SQLite's default page cache that grew SQLite's memory by 2 MB,
 * page by page, and kept it, though the rows are not read again.  It is
 * read through a small cache, and what that cached is given back. */
TEST(names_held_are_read_through_a_small_page_cache)
{
    const char *dir = tmp_mkdir("S");
    enum { MODULES = 700 }; /* rows of a 16 KB plugin: over 2 MB of pages */
    for (int i = 0; i < MODULES; i++)
        fixture_copy("counter", "S/m%03d.so", i);
    const char *db = tmp_path("p.db");
    ASSERT_EQ_INT(db_pack(db, dir), MODULES);
    usleep(2200 * 1000); /* the database still for the unsure window */
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.flags = MH_CONFIG_VERBOSE, .log = &lc};
    sqlite3_memory_highwater(1);
    sqlite3_int64 base = sqlite3_memory_used();
    mh_host *host = host_new_opts(&o, db);
    for (int i = 0; i < 4; i++) /* the fourth find reads the names */
        import_ok(host, str_fmt("m%03d", i));
    ASSERT_LOG(&lc, MH_LOG_TRACE, "700 names and 700 hashes held in memory");
    sqlite3_int64 peak = sqlite3_memory_highwater(0) - base;
    sqlite3_int64 held = sqlite3_memory_used() - base;
    if (peak > 1024 * 1024 || held > 256 * 1024)
        FAIL("SQLite's memory grew by %lld bytes at most and holds %lld "
             "more (a small page cache, given back: under 1 MiB and "
             "256 KiB)",
             (long long)peak, (long long)held);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(names_held_in_memory_see_a_later_pack)
{
    const char *db = db_make(tmp_path("p.db"), "counter:a.so",
                             "counter:b.so", "counter:c.so",
                             "counter:d.so", "answer7:pkg/e.so");
    mh_host *host = copy_host(db);
    for (const char *n = "abcd"; *n; n++) /* their copies, for the next */
        import_ok(host, str_fmt("%c", *n));
    mh_host_free(host);
    usleep(2200 * 1000); /* the database still for the unsure window */
    int steps;
    host = counting_host(db, &steps, "a", 42);
    import_ok(host, "b");
    import_ok(host, "c");
    import_ok(host, "d"); /* the fourth find: the names are read */
    int before = steps;
    mh_module *mod;
    ASSERT_STATUS(mh_import(host, "late", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "no late.so or late.lua");
    ASSERT_EQ_INT(steps - before, 0); /* answered from memory */
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, "pkg", &info, ERR), MH_OK);
    ASSERT_EQ_INT(steps - before, 0);
    /* A pack changes the file: the names are read again. */
    db_make(db, "answer7:late.so", "counter:pkg/later.so");
    ASSERT_EQ_INT(call_int(import_ok(host, "late"), "value"), 7);
    ASSERT_EQ_INT(call_int(import_ok(host, "pkg.later"), "value"), 42);
    mh_host_free(host);
}

TEST(damaged_copy_is_kept_again_from_the_row)
{
    const char *db = db_with_kept_copy();
    const char *blob = blob_of(db, "m.so");
    long long size = file_size(blob);
    char *junk = calloc(1, (size_t)size);
    memset(junk, 'x', (size_t)size);
    file_write_bytes(blob, junk, (size_t)size);
    free(junk);
    chmod(blob, 0600);
    ASSERT_EQ_INT(value_in_new_host(db, "m"), 42);
    ASSERT_TRUE(same_bytes(blob, fixture_path("counter")));
}

TEST(false_hash_row_loads_the_row_and_says_so)
{
    const char *db = db_make(tmp_path("p.db"), "counter:m.so");
    const char *zeros = "0000000000000000000000000000000000000000000000000000"
                        "000000000000";
    db_exec(db, str_fmt("UPDATE mh_sha256 SET sha256 = '%s'", zeros));
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    mh_host *host = host_new_opts(&o, db);
    ASSERT_EQ_INT(call_int(import_ok(host, "m"), "value"), 42);
    mh_host_free(host);
    ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("module database %s, entry m.so: "
                                         "its SHA-256 in the mh_sha256 "
                                         "table is not that of its data",
                                         db));
    log_capture_free(&lc);
    ASSERT_EQ_INT(dir_count(tmp_path("cache/blobs")), 0);
}

TEST(no_private_blob_cache_loads_from_memory)
{
    const char *db = db_make(tmp_path("p.db"), "counter:m.so");
    tmp_mkdir("cache/blobs");
    chmod(tmp_path("cache/blobs"), 0755); /* others may read: not used */
    for (int i = 0; i < 2; i++) {
        mh_host *host = copy_host(db);
        ASSERT_EQ_INT(call_int(import_ok(host, "m"), "value"), 42);
        ASSERT_TRUE(mapped("/memfd:"));
        mh_host_free(host);
    }
    ASSERT_FALSE(file_exists(blob_of(db, "m.so")));
}

TEST(a_blob_cache_on_a_noexec_mount_loads_from_memory)
{
    /* Copies there could not be mapped to run ("failed to map segment"):
     * a copy kept before the mount went noexec is not used, and none is
     * kept on it; the module loads from memory, every time. */
    if (unshare(CLONE_NEWNS) != 0 ||
        mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0)
        SKIP("no mount namespace of its own here: %s", strerror(errno));
    const char *db = db_make(tmp_path("p.db"), "counter:m.so");
    const char *cache = tmp_path("cache");
    mh_host *host = copy_host(db);
    ASSERT_EQ_INT(call_int(import_ok(host, "m"), "value"), 42);
    mh_host_free(host);
    const char *blob = blob_of(db, "m.so");
    ASSERT_TRUE(file_exists(blob));
    if (mount(cache, cache, "none", MS_BIND, NULL) != 0 ||
        mount("none", cache, "none", MS_REMOUNT | MS_BIND | MS_NOEXEC,
              NULL) != 0)
        SKIP("cannot make %s noexec here: %s", cache, strerror(errno));
    unlink(blob); /* a host keeps none there now, and uses none */
    for (int i = 0; i < 2; i++) {
        host = copy_host(db);
        ASSERT_EQ_INT(call_int(import_ok(host, "m"), "value"), 42);
        ASSERT_TRUE(mapped("/memfd:"));
        mh_host_free(host);
        ASSERT_FALSE(file_exists(blob));
    }
    /* One written before the mount went noexec is passed over (no copy
     * is offered where none may be kept: HTTP's, which are offered, have
     * the check of their own, in http.blob_on_a_noexec_mount_...). */
    file_copy(fixture_path("counter"), blob);
    chmod(blob, 0600);
    host = copy_host(db);
    ASSERT_EQ_INT(call_int(import_ok(host, "m"), "value"), 42);
    ASSERT_FALSE(mapped(blob));
    mh_host_free(host);
    ASSERT_EQ_INT(umount(cache), 0);
}

TEST(copies_load_once_per_module_as_files_do)
{
    /* Two hosts of one process: the same module, one loaded object (the
     * first host maps the copy it kept, as the second does). */
    const char *db = db_make(tmp_path("p.db"), "counter:m.so",
                             "counter:twin.so");
    const char *db2 = db_make(tmp_path("q.db"), "counter:m.so");
    mh_host *h1 = copy_host(db), *h2 = copy_host(db);
    mh_module *a = import_ok(h1, "m"), *b = import_ok(h2, "m");
    ASSERT_EQ_PTR(symbol_ok(a, "value"), symbol_ok(b, "value"));
    ASSERT_TRUE(mapped(tmp_path("cache/blobs/")));
    ASSERT_FALSE(mapped("/memfd:m "));
    /* The same bytes under another name, or in another database, are
     * another module: another object, as two files would be. */
    mh_module *t = import_ok(h1, "twin");
    ASSERT_TRUE(symbol_ok(t, "value") != symbol_ok(a, "value"));
    mh_host *h3 = copy_host(db2);
    mh_module *c = import_ok(h3, "m");
    ASSERT_TRUE(symbol_ok(c, "value") != symbol_ok(a, "value"));
    ASSERT_EQ_INT(call_int(c, "init_count"), 1);
    mh_host_free(h3);
    mh_host_free(h2);
    mh_host_free(h1);
}

/* counter.so with value() patched to return 7: the same size, other
 * bytes (its one "mov $42, %eax" found and changed). */
static const char *counter_returning_7(const char *rel)
{
    static const unsigned char mov42[] = {0xb8, 0x2a, 0, 0, 0};
    size_t len, at = 0, hits = 0;
    unsigned char *b = file_bytes(fixture_path("counter"), &len);
    for (size_t i = 0; i + sizeof mov42 <= len; i++)
        if (memcmp(b + i, mov42, sizeof mov42) == 0) {
            at = i;
            hits++;
        }
    if (hits != 1)
        FAIL("%zu \"mov $42, %%eax\" in counter.so, want 1", hits);
    b[at + 1] = 7;
    const char *p = tmp_path("%s", rel);
    file_write_bytes(p, b, len);
    free(b);
    return p;
}

TEST(names_held_take_a_hash_only_for_its_row_as_it_is)
{
    /* A writer with triggers off changes a row (and its mtime): the hash
     * row no longer names it, and neither the statement nor the names
     * held in memory take it. */
    const char *db = db_make(tmp_path("p.db"), "counter:a.so",
                             "counter:b.so", "counter:c.so", "counter:m.so");
    mh_host *host = copy_host(db);
    for (const char *n = "abcm"; *n; n++)
        import_ok(host, str_fmt("%c", *n));
    mh_host_free(host);
    const char *other = fixture_path("answer7");
    sh_run(str_fmt("sqlite3 %s '.dbconfig enable_trigger off' "
                   "\"UPDATE sqlar SET data = readfile('%s'), sz = "
                   "length(readfile('%s')), mtime = mtime + 1 WHERE name = "
                   "'m.so'\"", sh_quote(db), other, other), NULL);
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM mh_sha256"), "4");
    ASSERT_EQ_INT(value_in_new_host(db, "m"), 7);
    usleep(2200 * 1000); /* still for the unsure window: names held */
    int steps;
    host = counting_host(db, &steps, "a", 42);
    import_ok(host, "b");
    import_ok(host, "c");
    int before = steps;
    ASSERT_EQ_INT(call_int(import_ok(host, "m"), "value"), 7);
    ASSERT_EQ_INT(steps - before, 1); /* m's row was read: no copy */
    mh_host_free(host);
}

TEST(pack_hashes_every_row_again)
{
    /* A change made while a trigger was gone: the next pack (of anything)
     * makes the triggers again and hashes every row anew, so no hash
     * recorded before outlives it. */
    const char *db = db_with_kept_copy();
    mh_host *host;
    const char *p = counter_returning_7("patched.so");
    db_exec(db, str_fmt("DROP TRIGGER mh_sha256_update; UPDATE sqlar SET "
                        "data = readfile('%s') WHERE name = 'm.so'", p));
    host = copy_host(db); /* no triggers: the row is read */
    ASSERT_EQ_INT(call_int(import_ok(host, "m"), "value"), 7);
    mh_host_free(host);
    db_make(db, "answer7:other.so");
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM sqlite_schema WHERE "
                          "type = 'trigger'"), "3");
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM mh_sha256"), "2");
    ASSERT_EQ_INT(value_in_new_host(db, "m"), 7);
}

TEST(triggers_on_another_table_are_not_taken)
{
    /* sqlar renamed (a table rebuilt, the old one kept): the triggers
     * follow the old table, and guard nothing here. */
    const char *db = db_with_kept_copy();
    const char *p = counter_returning_7("patched.so");
    db_exec(db, str_fmt("ALTER TABLE sqlar RENAME TO sqlar_old; "
                        "CREATE TABLE sqlar(name TEXT PRIMARY KEY, mode INT, "
                        "mtime INT, sz INT, data BLOB); INSERT INTO "
                        "sqlar(rowid, name, mode, mtime, sz, data) SELECT "
                        "rowid, * FROM sqlar_old; UPDATE sqlar SET data = "
                        "readfile('%s') WHERE name = 'm.so'", p));
    ASSERT_EQ_STR(db_exec(db, "SELECT group_concat(DISTINCT tbl_name) FROM "
                          "sqlite_schema WHERE type = 'trigger'"),
                  "sqlar_old");
    ASSERT_EQ_INT(value_in_new_host(db, "m"), 7);
}

TEST(wal_database_names_are_never_held)
{
    /* Its commits leave the database file alone: even when the 4th find
     * has no descriptor to spare, the names are not held, and a module
     * committed later is found. */
    const char *db = db_make(tmp_path("p.db"), "counter:a.so",
                             "counter:b.so", "counter:c.so");
    db_exec(db, "PRAGMA journal_mode=WAL");
    mh_host *host = copy_host(db);
    for (const char *n = "abc"; *n; n++)
        import_ok(host, str_fmt("%c", *n));
    usleep(2200 * 1000);
    struct rlimit old;
    mh_spec_info info = {.size = sizeof info};
    fds_none_begin(&old);
    mh_status st = mh_find(host, "zzz", &info, ERR); /* the 4th find */
    fds_none_end(&old);
    ASSERT_STATUS(st, MH_ENOTFOUND);
    ASSERT_STATUS(mh_find(host, "zzz", &info, ERR), MH_ENOTFOUND);
    /* A writer that keeps the WAL (a long-lived connection would). */
    sh_run(str_fmt("sqlite3 %s '.dbconfig no_ckpt_on_close on' \"INSERT "
                   "INTO sqlar SELECT 'late.so', mode, mtime, sz, data FROM "
                   "sqlar WHERE name = 'a.so'\"", sh_quote(db)), NULL);
    ASSERT_STATUS(mh_find(host, "late", &info, ERR), MH_OK);
    mh_host_free(host);
}

TEST(hash_table_dropped_under_an_open_database_is_no_miss)
{
    /* In WAL mode the drop does not show in the file's stat: the find's
     * statement fails, and the database is opened again -- never a miss
     * that would let a later entry's module load instead. */
    const char *db = db_make(tmp_path("p.db"), "counter:a.so",
                             "answer7:b.so");
    const char *later = tmp_mkdir("later");
    fixture_copy("counter", "later/b.so");
    db_exec(db, "PRAGMA journal_mode=WAL");
    host_opts o = {0};
    mh_host *host = host_new_opts(&o, db, later);
    ASSERT_EQ_INT(call_int(import_ok(host, "a"), "value"), 42);
    sh_run(str_fmt("sqlite3 %s '.dbconfig no_ckpt_on_close on' %s",
                   sh_quote(db), sh_quote(MH_SAR_SHA_DROP)), NULL);
    mh_module *b = import_ok(host, "b");
    ASSERT_EQ_INT(call_int(b, "value"), 7);
    ASSERT_EQ_STR(mh_module_origin(b), str_fmt("%s!/b.so", db));
    mh_host_free(host);
}

struct copy_racer {
    const char *db;
    pthread_barrier_t *start;
    mh_host *host;
    mh_module *mod;
};

static void *copy_race(void *arg)
{
    struct copy_racer *w = arg;
    w->host = copy_host(w->db);
    pthread_barrier_wait(w->start);
    w->mod = import_ok(w->host, "m");
    return NULL;
}

TEST(hosts_racing_to_keep_a_copy_share_one_object)
{
    /* Hosts of one process importing a module at once: each may find no
     * copy and keep one, but the first file made is the one all map. */
    enum { N = 6 };
    for (int round = 0; round < 5; round++) {
        const char *db = db_make(tmp_path("r%d.db", round), "counter:m.so");
        struct copy_racer w[N];
        pthread_t t[N];
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, N);
        for (int i = 0; i < N; i++) {
            w[i] = (struct copy_racer){.db = db, .start = &start};
            if (pthread_create(&t[i], NULL, copy_race, &w[i]) != 0)
                FAIL("pthread_create");
        }
        for (int i = 0; i < N; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&start);
        for (int i = 1; i < N; i++)
            if (symbol_ok(w[i].mod, "value") != symbol_ok(w[0].mod, "value"))
                FAIL("round %d: host %d has another object of m", round, i);
        ASSERT_EQ_INT(call_int(w[0].mod, "init_count"), N);
        for (int i = 0; i < N; i++)
            mh_host_free(w[i].host);
    }
}

TEST(pack_hashes_only_what_changed)
{
    /* With the table and its triggers intact, a pack hashes the rows it
     * wrote and leaves the other hash rows be (here one made wrong by
     * hand, to see it); without them, it hashes every row again. */
    const char *zeros = "0000000000000000000000000000000000000000000000000000"
                        "000000000000";
    const char *db = db_make(tmp_path("p.db"), "counter:a.so");
    const char *real = db_exec(db, "SELECT sha256 FROM mh_sha256");
    db_exec(db, str_fmt("UPDATE mh_sha256 SET sha256 = '%s'", zeros));
    db_make(db, "answer7:b.so");
    ASSERT_EQ_STR(db_exec(db, "SELECT sha256 FROM mh_sha256 WHERE name = "
                              "'a.so'"), zeros);
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM mh_sha256"), "2");
    db_exec(db, "DROP TRIGGER mh_sha256_delete");
    db_make(db, "answer7:c.so");
    ASSERT_EQ_STR(db_exec(db, "SELECT sha256 FROM mh_sha256 WHERE name = "
                              "'a.so'"), real);
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM mh_sha256"), "3");
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM sqlite_schema WHERE "
                          "type = 'trigger'"), "3");
}

TEST(hosts_told_not_to_write_copies_read_the_rows)
{
    /* A cache that does not outlast the process: no copy is written (the
     * flag, or MODHOST_DONTWRITECOPIES=1), the row is loaded from memory;
     * a copy another host kept is still mapped. */
    const char *db = db_make(tmp_path("p.db"), "counter:m.so");
    for (int way = 0; way < 2; way++) {
        mh_config cfg;
        mh_config_init(&cfg);
        cfg.flags = MH_CONFIG_NO_DEFAULT_PATH |
                    (way ? 0 : MH_CONFIG_ISOLATED | MH_CONFIG_NO_COPY_WRITE);
        cfg.path = db;
        cfg.path_env = "MH_TEST_SQLITE_NO_PATH"; /* not MODHOST_PATH */
        cfg.cache_dir = tmp_path("cache");
        if (way)
            env_set("MODHOST_DONTWRITECOPIES", "1");
        mh_host *host = host_new_cfg(&cfg);
        mh_module *m = import_ok(host, "m");
        ASSERT_EQ_INT(call_int(m, "value"), 42);
        ASSERT_TRUE(memfd_fd_count("m") > 0);
        mh_host_free(host);
        ASSERT_TRUE(dir_count(tmp_path("cache/blobs")) <= 0);
    }
    env_unset("MODHOST_DONTWRITECOPIES");
    mh_host *host = copy_host(db); /* keeps one */
    import_ok(host, "m");
    mh_host_free(host);
    const char *blob = blob_of(db, "m.so");
    host_opts o = {.flags = MH_CONFIG_NO_COPY_WRITE};
    host = host_new_opts(&o, db);
    import_ok(host, "m");
    ASSERT_TRUE(mapped(blob));
    mh_host_free(host);
}

TEST(a_new_copy_of_a_module_removes_the_one_it_follows)
{
    /* One copy per origin, not one per version ever packed: re-packed,
     * the module's new copy takes the old one's place, stamp and all. */
    const char *db = db_with_kept_copy();
    const char *v1 = blob_of(db, "m.so");
    usleep(2200 * 1000); /* still for the unsure window: the next host */
    mh_host *host = copy_host(db); /* stamps it */
    import_ok(host, "m");
    mh_host_free(host);
    const char *stamp = tmp_path("cache/verified/%s", strrchr(v1, '/') + 1);
    ASSERT_TRUE(file_exists(stamp));
    db_make(db, "answer7:m.so", "counter:other.so");
    host = copy_host(db);
    ASSERT_EQ_INT(call_int(import_ok(host, "m"), "value"), 7);
    ASSERT_EQ_INT(call_int(import_ok(host, "other"), "value"), 42);
    mh_host_free(host);
    const char *v2 = blob_of(db, "m.so");
    ASSERT_TRUE(file_exists(v2));
    ASSERT_TRUE(strcmp(v1, v2) != 0);
    ASSERT_FALSE(file_exists(v1));
    ASSERT_FALSE(file_exists(stamp));
    /* m's new copy, and other's (the same bytes as m's old one, another
     * origin) */
    ASSERT_EQ_INT(tree_count(tmp_path("cache/blobs"), "", NULL), 2 + 2);
}
