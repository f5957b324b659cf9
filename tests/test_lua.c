/*
 * test_lua.c -- the Lua loader: a/b.lua found by every finder (directory,
 * module database, HTTP), its chunk run once per host, its table's
 * functions called through mh_module_call with cJSON values; syntax,
 * runtime and call errors (never a crash, nothing left registered); the
 * bytecode cache (compiled once, read back, invalidated by an edit of the
 * same size in the same second, corrupt files ignored and rewritten, an
 * unwritable cache tolerated, the no-write switch, __mhcache__ beside the
 * source, hash mode for databases); text-mode loading of sources; and
 * concurrent calls from several threads.
 *
 * Every Lua source is written by the case itself, in its temp directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cache/bytecode.h"
#include "cache/intern.h"
#include "support/support.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */




/* Number of lines of a file (0 when it does not exist). */
static size_t line_count(const char *path)
{
    const char *text = file_read(path);
    return text ? str_count(text, "\n") : 0;
}

/* A chunk that appends a line to MARK each time it runs, and returns
 * {v = function() return VALUE end}. */
static const char *marked_src(const char *mark, const char *value)
{
    return str_fmt("local f = assert(io.open(%s, 'a'))\n"
                   "f:write('ran\\n')\n"
                   "f:close()\n"
                   "return { v = function() return %s end }\n",
                   str_fmt("'%s'", mark), value);
}

/* A verbose host with its log captured and the given cache dir (NULL:
 * tmp_path("cache")). */
static mh_host *vhost(log_capture *lc, unsigned flags, const char *cache,
                      const char *entry)
{
    host_opts o = {.flags = MH_CONFIG_VERBOSE | flags, .cache_dir = cache,
                   .log = lc};
    return host_new_opts(&o, entry);
}

/* The first regular file under root (NULL if none). */
static const char *found_file;
static int find_first_cb(const char *path, const struct stat *sb, int type,
                         struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type == FTW_F) {
        found_file = str_fmt("%s", path);
        return 1;
    }
    return 0;
}
static const char *first_file_under(const char *root)
{
    found_file = NULL;
    nftw(root, find_first_cb, 16, FTW_PHYS);
    return found_file;
}

/* --------------------------------------------------- directory + calls */

TEST(dir_import_and_call)
{
    const char *dir = tmp_mkdir("E");
    const char *path = lua_write("E/a/b.lua",
                                 "local M = {}\n"
                                 "function M.add(x, y) return x + y end\n"
                                 "function M.hello(n) return 'hi ' .. n end\n"
                                 "return M\n");
    mh_host *host = host_new_isolated(dir);
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;

    ASSERT_STATUS(mh_find(host, "a.b", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_LUA);
    ASSERT_EQ_STR(info.loader, "lua");
    ASSERT_EQ_STR(info.origin, path);

    mod = import_ok(host, "a.b");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_LUA);
    ASSERT_EQ_STR(mh_module_kind_name(MH_KIND_LUA), "lua");
    ASSERT_EQ_STR(mh_module_origin(mod), path);
    ASSERT_EQ_STR(mh_module_finder(mod), "fs");
    ASSERT_EQ_PTR(mh_host_module(host, "a.b"), mod);
    ASSERT_EQ_STR(call_ok(mod, "add", "[2, 3]"), "5");
    ASSERT_EQ_STR(call_ok(mod, "hello", "[\"bob\"]"), "\"hi bob\"");
    /* The same module again, no second load. */
    ASSERT_EQ_PTR(import_ok(host, "a.b"), mod);
    mh_host_free(host);
}

TEST(chunk_runs_once_per_host)
{
    const char *dir = tmp_mkdir("E");
    const char *mark = tmp_path("mark");
    mh_host *h1, *h2;
    mh_module *m1;

    lua_write("E/once.lua", marked_src(mark, "1"));
    h1 = host_new_isolated(dir);
    m1 = import_ok(h1, "once");
    ASSERT_EQ_PTR(import_ok(h1, "once"), m1);
    ASSERT_EQ_STR(call_ok(m1, "v", NULL), "1");
    ASSERT_EQ_STR(call_ok(m1, "v", "[]"), "1");
    ASSERT_EQ_INT(line_count(mark), 1);

    h2 = host_new_isolated(dir);
    import_ok(h2, "once");
    import_ok(h2, "once");
    ASSERT_EQ_INT(line_count(mark), 2);
    mh_host_free(h2);
    mh_host_free(h1);
    ASSERT_EQ_INT(line_count(mark), 2);
}

TEST(module_state_persists_between_calls)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_module *mod;

    lua_write("E/ctr.lua", "local n = 0\n"
                           "return { inc = function() n = n + 1; return n end }\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "ctr");
    ASSERT_EQ_STR(call_ok(mod, "inc", NULL), "1");
    ASSERT_EQ_STR(call_ok(mod, "inc", NULL), "2");
    ASSERT_EQ_STR(call_ok(mod, "inc", NULL), "3");
    mh_host_free(host);
}

TEST(json_values_both_ways)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_module *mod;
    cJSON *res = NULL, *args, *item;

    lua_write("E/vals.lua",
              "local M = {}\n"
              "function M.id(x) return x end\n"
              "function M.none() end\n"
              "function M.arr() return {1, 2, 3} end\n"
              "function M.obj() return {a = 1, s = 'x', t = true, f = false,\n"
              "                         sub = {10, 20}} end\n"
              "function M.field(o) return o.k end\n"
              "function M.count(...) return select('#', ...) end\n"
              "function M.len(t) return #t end\n"
              "function M.typeof(x) return type(x) end\n"
              "function M.many()\n"
              "  local t = {}\n"
              "  for i = 59, 0, -1 do\n"
              "    t[string.format('k%02d', i)] = {y = -i, x = i}\n"
              "  end\n"
              "  return t\n"
              "end\n"
              "return M\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "vals");

    ASSERT_EQ_STR(call_ok(mod, "id", "[7]"), "7");
    ASSERT_EQ_STR(call_ok(mod, "id", "[2.5]"), "2.5");
    ASSERT_EQ_STR(call_ok(mod, "id", "[-3]"), "-3");
    ASSERT_EQ_STR(call_ok(mod, "id", "[\"a\\\"b\"]"), "\"a\\\"b\"");
    ASSERT_EQ_STR(call_ok(mod, "id", "[true]"), "true");
    ASSERT_EQ_STR(call_ok(mod, "id", "[false]"), "false");
    ASSERT_EQ_STR(call_ok(mod, "id", "[null]"), "null");
    ASSERT_EQ_STR(call_ok(mod, "none", NULL), "null");
    ASSERT_EQ_STR(call_ok(mod, "arr", NULL), "[1,2,3]");
    ASSERT_EQ_STR(call_ok(mod, "id", "[[4,5,6]]"), "[4,5,6]");
    ASSERT_EQ_STR(call_ok(mod, "field", "[{\"k\": \"v\"}]"), "\"v\"");
    ASSERT_EQ_STR(call_ok(mod, "count", "[1, 2, 3, 4]"), "4");
    ASSERT_EQ_STR(call_ok(mod, "count", "[]"), "0");
    ASSERT_EQ_STR(call_ok(mod, "len", "[[9, 8, 7]]"), "3");
    ASSERT_EQ_STR(call_ok(mod, "typeof", "[{\"k\": 1}]"), "\"table\"");
    ASSERT_EQ_STR(call_ok(mod, "typeof", "[\"s\"]"), "\"string\"");
    ASSERT_EQ_STR(call_ok(mod, "typeof", "[1]"), "\"number\"");

    /* An object: its members in the byte order of their keys, nested
     * ones too (Lua's traversal order changes from state to state: 60
     * keys would hardly ever come out sorted by chance). */
    ASSERT_EQ_STR(call_ok(mod, "obj", NULL),
                  "{\"a\":1,\"f\":false,\"s\":\"x\",\"sub\":[10,20],"
                  "\"t\":true}");
    {
        char want[2048];
        size_t o = 0;
        want[o++] = '{';
        for (int i = 0; i < 60; i++)
            o += (size_t)snprintf(want + o, sizeof want - o, "%s\"k%02d\":"
                                  "{\"x\":%d,\"y\":%d}", i ? "," : "",
                                  i, i, -i);
        want[o++] = '}';
        want[o] = '\0';
        ASSERT_EQ_STR(call_ok(mod, "many", NULL), want);
        ASSERT_EQ_STR(call_ok(mod, "id", "[{\"b\":1,\"a\":2,\"ab\":3,"
                                         "\"\":4}]"),
                      "{\"\":4,\"a\":2,\"ab\":3,\"b\":1}");
    }
    ASSERT_STATUS(mh_module_call(mod, "obj", NULL, &res, ERR), MH_OK);
    ASSERT_NOT_NULL(res);
    ASSERT_TRUE(cJSON_IsObject(res));
    item = cJSON_GetObjectItemCaseSensitive(res, "a");
    ASSERT_TRUE(cJSON_IsNumber(item) && item->valuedouble == 1);
    item = cJSON_GetObjectItemCaseSensitive(res, "s");
    ASSERT_TRUE(cJSON_IsString(item) && strcmp(item->valuestring, "x") == 0);
    ASSERT_TRUE(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "t")));
    ASSERT_TRUE(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(res, "f")));
    item = cJSON_GetObjectItemCaseSensitive(res, "sub");
    ASSERT_TRUE(cJSON_IsArray(item));
    ASSERT_EQ_INT(cJSON_GetArraySize(item), 2);
    ASSERT_EQ_INT(cJSON_GetArrayItem(item, 1)->valuedouble, 20);
    cJSON_Delete(res);

    /* Built with the cJSON API, as an application would. */
    args = cJSON_CreateArray();
    cJSON_AddItemToArray(args, cJSON_CreateString("built"));
    res = NULL;
    ASSERT_STATUS(mh_module_call(mod, "id", args, &res, ERR), MH_OK);
    ASSERT_TRUE(cJSON_IsString(res));
    ASSERT_EQ_STR(res->valuestring, "built");
    cJSON_Delete(res);
    cJSON_Delete(args);
    mh_host_free(host);
}

TEST(unknown_function_is_enosym)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_module *mod;

    lua_write("E/pkg/few.lua", "return { x = 1, f = function() return 1 end }\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "pkg.few");
    ASSERT_EQ_INT(call_fails(mod, "nothere", NULL), MH_ENOSYM);
    ASSERT_EQ_INT(ERR_CODE(), MH_ENOSYM);
    ASSERT_CONTAINS(ERR_MSG(), "pkg.few");
    ASSERT_CONTAINS(ERR_MSG(), "nothere");
    /* A field that is not a function is not callable either. */
    ASSERT_NE_INT(call_fails(mod, "x", NULL), MH_OK);
    /* The module still works. */
    ASSERT_EQ_STR(call_ok(mod, "f", NULL), "1");
    mh_host_free(host);
}

TEST(call_on_native_module_is_enosym)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_module *mod;

    fixture_copy("counter", "E/nat.so");
    host = host_new_isolated(dir);
    mod = import_ok(host, "nat");
    ASSERT_EQ_INT(call_fails(mod, "nothere", NULL), MH_ENOSYM);
    mh_host_free(host);
}

TEST(native_wins_over_lua_in_one_entry)
{
    const char *dir = tmp_mkdir("E");
    const char *mark = tmp_path("mark");
    const char *so = fixture_copy("counter", "E/both.so");
    mh_host *host;
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;

    lua_write("E/both.lua", marked_src(mark, "1"));
    host = host_new_isolated(dir);
    ASSERT_STATUS(mh_find(host, "both", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_NATIVE);
    ASSERT_EQ_STR(info.loader, "native");
    ASSERT_EQ_STR(info.origin, so);
    mod = import_ok(host, "both");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_NATIVE);
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_INT(line_count(mark), 0);
    mh_host_free(host);
}

TEST(lua_in_earlier_entry_wins_over_native_in_later)
{
    const char *e1 = tmp_mkdir("E1");
    const char *e2 = tmp_mkdir("E2");
    mh_host *host;
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;

    lua_write("E1/m.lua", "return { v = function() return 'lua' end }\n");
    fixture_copy("counter", "E2/m.so");
    host = host_new_isolated(e1, e2);
    ASSERT_STATUS(mh_find(host, "m", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_LUA);
    ASSERT_EQ_INT(info.entry_index, 0);
    mod = import_ok(host, "m");
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "\"lua\"");
    mh_host_free(host);
}

/* -------------------------------------------------------------- errors */

TEST(syntax_error_names_module_origin_line)
{
    const char *dir = tmp_mkdir("E");
    const char *path = lua_write("E/pkg/bad.lua",
                                 "local M = {}\n"
                                 "function M.f() return 1 end\n"
                                 "local x = = 2\n"
                                 "return M\n");
    mh_host *host = host_new_isolated(dir);
    mh_status st = import_fails(host, "pkg.bad");

    if (st != MH_ELOAD && st != MH_EFORMAT)
        FAIL("got %s, expected MH_ELOAD or MH_EFORMAT; message: %s",
             mh_status_name(st), ERR_MSG());
    ASSERT_CONTAINS(ERR_MSG(), "pkg.bad");
    ASSERT_CONTAINS(ERR_MSG(), path);
    ASSERT_CONTAINS(ERR_MSG(), ":3:");
    mh_host_free(host);
}

TEST(runtime_error_rolls_back_and_retry_works)
{
    const char *dir = tmp_mkdir("E");
    const char *mark = tmp_path("mark");
    mh_host *host;
    mh_module *mod;

    lua_write("E/flaky.lua", "error('kaput in chunk')\nreturn {}\n");
    host = host_new_isolated(dir);
    ASSERT_EQ_INT(import_fails(host, "flaky"), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "kaput in chunk");
    ASSERT_CONTAINS(ERR_MSG(), "flaky");
    ASSERT_NULL(mh_host_module(host, "flaky"));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    /* Still failing the same way, not "half loaded". */
    ASSERT_EQ_INT(import_fails(host, "flaky"), MH_EINIT);

    lua_write("E/flaky.lua", marked_src(mark, "'fixed now'"));
    mh_invalidate_caches(host);
    mod = import_ok(host, "flaky");
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "\"fixed now\"");
    ASSERT_EQ_INT(line_count(mark), 1);
    mh_host_free(host);
}

TEST(chunk_not_returning_table_fails)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_status st;

    lua_write("E/num.lua", "return 42\n");
    lua_write("E/nothing.lua", "local x = 1\n");
    host = host_new_isolated(dir);
    st = import_fails(host, "num");
    ASSERT_NE_INT(st, MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), "num");
    ASSERT_CONTAINS_CI(ERR_MSG(), "table");
    st = import_fails(host, "nothing");
    ASSERT_NE_INT(st, MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), "nothing");
    ASSERT_CONTAINS_CI(ERR_MSG(), "table");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
}

TEST(call_error_is_ecall_with_traceback)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_module *mod;

    lua_write("E/err.lua",
              "local M = {}\n"
              "local function inner() error('boom') end\n"
              "function M.bad() inner() end\n"
              "function M.table_err() error({code = 1}) end\n"
              "function M.nil_err() error() end\n"
              "function M.arith(x) return x + {} end\n"
              "function M.ok() return 'fine' end\n"
              "return M\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "err");

    ASSERT_EQ_INT(call_fails(mod, "bad", NULL), MH_ECALL);
    ASSERT_CONTAINS(ERR_MSG(), "boom");
    ASSERT_CONTAINS(ERR_MSG(), "stack traceback");
    /* Non-string error values and VM errors: errors, never a crash. */
    ASSERT_EQ_INT(call_fails(mod, "table_err", NULL), MH_ECALL);
    ASSERT_EQ_INT(call_fails(mod, "nil_err", NULL), MH_ECALL);
    ASSERT_EQ_INT(call_fails(mod, "arith", "[1]"), MH_ECALL);
    ASSERT_CONTAINS(ERR_MSG(), "arithmetic");
    /* The state is still usable afterwards. */
    ASSERT_EQ_STR(call_ok(mod, "ok", NULL), "\"fine\"");
    mh_host_free(host);
}

TEST(result_without_json_form_is_eformat)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_module *mod;

    lua_write("E/fnret.lua",
              "return { f = function() return function() end end,\n"
              "         ok = function() return 1 end }\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "fnret");
    ASSERT_EQ_INT(call_fails(mod, "f", NULL), MH_EFORMAT);
    ASSERT_EQ_STR(call_ok(mod, "ok", NULL), "1");
    mh_host_free(host);
}

TEST(binary_chunk_in_lua_file_refused)
{
    const char *dir = tmp_mkdir("E");
    const char *src = tmp_path("src.lua");
    const char *out = tmp_path("E/bin.lua");
    const char *mark = tmp_path("mark");
    mh_host *host;
    const char *msg;
    int st;

    if (system("command -v luac5.4 >/dev/null 2>&1") != 0)
        FAIL("luac5.4 is missing (Debian package lua5.4)");
    file_write(src, marked_src(mark, "1"));
    sh_run(str_fmt("luac5.4 -o %s %s", sh_quote(out), sh_quote(src)), &st);
    ASSERT_EQ_INT(st, 0);
    ASSERT_TRUE(file_exists(out));
    ASSERT_EQ_INT(file_read(out)[0], 0x1b); /* "\x1bLua" */

    host = host_new_isolated(dir);
    ASSERT_NE_INT(import_fails(host, "bin"), MH_OK);
    msg = ERR_MSG();
    if (strcasestr(msg, "binary") == NULL && strcasestr(msg, "text") == NULL)
        FAIL("message mentions neither binary nor text: %s", msg);
    ASSERT_CONTAINS(msg, "bin");
    ASSERT_EQ_INT(line_count(mark), 0);
    mh_host_free(host);
}

TEST(luac_only_from_a_trusted_source)
{
    const char *dir = tmp_mkdir("E");
    const char *src = tmp_path("src.lua");
    const char *out = tmp_path("E/pre.luac");
    const char *mark = tmp_path("mark");
    mh_config cfg;
    mh_host *host;
    mh_module *mod;
    int st;

    if (system("command -v luac5.4 >/dev/null 2>&1") != 0)
        FAIL("luac5.4 is missing (Debian package lua5.4)");
    file_write(src, marked_src(mark, "1"));
    sh_run(str_fmt("luac5.4 -o %s %s", sh_quote(out), sh_quote(src)), &st);
    ASSERT_EQ_INT(st, 0);

    /* Found (a .luac is a Lua module), but refused: nobody vouched for it. */
    host = host_new_isolated(dir);
    ASSERT_EQ_INT(import_fails(host, "pre"), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "MH_CONFIG_TRUST_LUAC");
    ASSERT_CONTAINS(ERR_MSG(), out);
    ASSERT_EQ_INT(line_count(mark), 0);
    mh_host_free(host);

    /* The application marks its entries trusted: it loads and runs once. */
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH |
                MH_CONFIG_TRUST_LUAC;
    cfg.path = dir;
    cfg.cache_dir = tmp_path("cache");
    host = host_new_cfg(&cfg);
    mod = import_ok(host, "pre");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_LUA);
    ASSERT_EQ_INT(line_count(mark), 1);
    mh_host_free(host);
}

/* ------------------------------------------------------------ finders */

TEST(import_from_database)
{
    const char *stage = tmp_mkdir("stage");
    const char *db = tmp_path("m.db");
    mh_host *host;
    mh_module *mod;
    mh_spec_info info = {.size = sizeof info};

    lua_write("stage/a/b.lua", "return { add = function(x, y) return x + y end }\n");
    db_pack(db, stage);
    ASSERT_EQ_STR(db_exec(db, "SELECT name FROM sqlar WHERE name = 'a/b.lua'"),
                  "a/b.lua");
    host = host_new_isolated(str_fmt("sqlite:%s", db));
    ASSERT_STATUS(mh_find(host, "a.b", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_LUA);
    ASSERT_EQ_STR(info.loader, "lua");
    mod = import_ok(host, "a.b");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_LUA);
    ASSERT_EQ_STR(mh_module_finder(mod), "sqlite");
    ASSERT_CONTAINS(mh_module_origin(mod), "a/b.lua");
    ASSERT_EQ_STR(call_ok(mod, "add", "[40, 2]"), "42");
    mh_host_free(host);
}

TEST(database_native_wins_over_lua)
{
    const char *stage = tmp_mkdir("stage");
    const char *db = tmp_path("m.db");
    mh_host *host;
    mh_module *mod;
    mh_spec_info info = {.size = sizeof info};

    lua_write("stage/both.lua", "return { v = function() return 1 end }\n");
    fixture_copy("counter", "stage/both.so");
    db_pack(db, stage);
    host = host_new_isolated(str_fmt("sqlite:%s", db));
    ASSERT_STATUS(mh_find(host, "both", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_NATIVE);
    ASSERT_EQ_STR(info.loader, "native");
    mod = import_ok(host, "both");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    mh_host_free(host);
}

TEST(database_syntax_error_names_origin_line)
{
    const char *stage = tmp_mkdir("stage");
    const char *db = tmp_path("m.db");
    mh_host *host;

    lua_write("stage/pkg/bad.lua", "local M = {}\n\nlocal = 1\nreturn M\n");
    db_pack(db, stage);
    host = host_new_isolated(str_fmt("sqlite:%s", db));
    import_fails(host, "pkg.bad");
    ASSERT_CONTAINS(ERR_MSG(), "pkg.bad");
    ASSERT_CONTAINS(ERR_MSG(), "pkg/bad.lua");
    ASSERT_CONTAINS(ERR_MSG(), ":3:");
    mh_host_free(host);
}

TEST(import_over_http)
{
    const char *www = tmp_mkdir("www");
    http_server *srv;
    log_capture lc;
    mh_host *host;
    mh_module *mod;
    cJSON *index, *mods, *m;
    int seen = 0;

    http_no_proxy_env();
    lua_write("www/hl.lua", "return { v = function() return 'over http' end }\n");
    lua_write("www/pkg/sub.lua", "return { v = function() return 'sub' end }\n");
    http_index_dir(www, NULL);
    index = cJSON_Parse(file_read(tmp_path("www/index.json")));
    ASSERT_NOT_NULL(index);
    mods = cJSON_GetObjectItemCaseSensitive(index, "modules");
    cJSON_ArrayForEach(m, mods) {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(m, "name"));
        const char *kind = cJSON_GetStringValue(cJSON_GetObjectItem(m, "kind"));
        const char *path = cJSON_GetStringValue(cJSON_GetObjectItem(m, "path"));
        if (name && strcmp(name, "hl") == 0) {
            ASSERT_EQ_STR(kind, "lua");
            ASSERT_EQ_STR(path, "hl.lua");
            seen++;
        }
        if (name && strcmp(name, "pkg.sub") == 0) {
            ASSERT_EQ_STR(kind, "lua");
            ASSERT_EQ_STR(path, "pkg/sub.lua");
            seen++;
        }
    }
    cJSON_Delete(index);
    ASSERT_EQ_INT(seen, 2);

    srv = http_start(www, NULL);
    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    mod = import_ok(host, "hl");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_LUA);
    ASSERT_EQ_STR(mh_module_finder(mod), "http");
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "\"over http\"");
    mod = import_ok(host, "pkg.sub");
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "\"sub\"");
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* ------------------------------------------------------ bytecode cache */

TEST(cache_compiled_then_read_back)
{
    const char *dir = tmp_mkdir("E");
    const char *mark = tmp_path("mark");
    log_capture l1, l2;
    mh_host *h1, *h2;
    const char *names;

    lua_write("E/cm.lua", marked_src(mark, "5"));
    log_capture_init(&l1);
    log_capture_init(&l2);
    h1 = vhost(&l1, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h1, "cm"), "v", NULL), "5");
    ASSERT_LOG(&l1, -1, "compiled");
    if (tree_count(tmp_path("cache/lua"), "", &names) == 0)
        FAIL("no file under cache/lua; log:%s", log_capture_dump(&l1));
    http_assert_cache_clean();
    mh_host_free(h1);

    h2 = vhost(&l2, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h2, "cm"), "v", NULL), "5");
    ASSERT_LOG(&l2, -1, "bytecode from cache");
    if (log_capture_count(&l2, -1, "compiled") != 0)
        FAIL("second host compiled again; log:%s", log_capture_dump(&l2));
    /* Cached bytecode is still the chunk: it runs (once per host). */
    ASSERT_EQ_INT(line_count(mark), 2);
    mh_host_free(h2);
    log_capture_free(&l1);
    log_capture_free(&l2);
}

/* The fuzz target of the cache reader (tests/fuzz/fuzz_bytecode.c) is
 * only as good as its seeds: a seed of an older cache format stops at the
 * header check and tests nothing.  Every committed seed and regression
 * input must start with the header the host writes now (magic, format,
 * Lua version, type sizes: the first 20 bytes). */
TEST(fuzz_bytecode_seeds_are_of_the_current_format)
{
    const char *dir = tmp_mkdir("E");
    log_capture l;
    unsigned char *want, *got;
    size_t wlen, glen;
    const char *src = getenv("MH_TEST_SOURCE_DIR");

    lua_write("E/fs.lua", "return {v = function() return 1 end}\n");
    log_capture_init(&l);
    mh_host *h = vhost(&l, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "fs"), "v", NULL), "1");
    mh_host_free(h);
    log_capture_free(&l);
    const char *cfile = first_file_under(tmp_path("cache/lua"));
    ASSERT_NOT_NULL(cfile);
    want = file_bytes(cfile, &wlen);
    ASSERT_TRUE(wlen > 20);
    if (!src || !*src)
        src = MH_TEST_SOURCE_DIR;
    /* Every file of both directories, so a seed added later is checked
     * too; each directory must hold some. */
    static const char *const dirs[] = {"tests/fuzz/corpus/bytecode",
                                       "tests/fuzz/regressions/bytecode"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
        const char *d = str_fmt("%s/%s", src, dirs[i]);
        DIR *dp = opendir(d);
        ASSERT_NOT_NULL(dp);
        int seen = 0;
        for (struct dirent *de; (de = readdir(dp)) != NULL;) {
            if (de->d_name[0] == '.')
                continue;
            got = file_bytes(str_fmt("%s/%s", d, de->d_name), &glen);
            if (glen < 20 || memcmp(got, want, 20) != 0)
                FAIL("%s/%s does not start with the header this build "
                     "writes: remake it (scripts/fuzz-seeds; see "
                     "docs/fuzzing.md)", dirs[i], de->d_name);
            free(got);
            seen++;
        }
        closedir(dp);
        ASSERT_TRUE(seen > 0);
    }
    free(want);
}

/* As lua5.4 reads a file: a UTF-8 byte order mark and a first line
 * starting with '#' ("#!/usr/bin/env lua") are skipped, with the line
 * numbers kept -- in a module, compiled and from the cache, and in a
 * file dofile() reads. */
TEST(source_with_shebang_or_bom_loads)
{
    const char *dir = tmp_mkdir("E");
    const char *inner = tmp_path("E/inner.lua");

    lua_write("E/sb.lua", "#!/usr/bin/env lua\n"
                          "return { v = function() return 1 end,\n"
                          "         boom = function() error('here') end }\n");
    lua_write("E/inner.lua", "\xEF\xBB\xBF#!lua\nreturn 2\n");
    lua_write("E/bom.lua",
              str_fmt("\xEF\xBB\xBFreturn { v = function() "
                      "return dofile('%s') end }\n", inner));
    for (int round = 0; round < 2; round++) { /* compiled, then cached */
        log_capture l;
        log_capture_init(&l);
        mh_host *h = vhost(&l, 0, NULL, dir);
        mh_module *sb = import_ok(h, "sb");
        ASSERT_LOG(&l, -1, round ? "bytecode from cache" : "compiled");
        ASSERT_EQ_STR(call_ok(sb, "v", NULL), "1");
        ASSERT_EQ_INT(call_fails(sb, "boom", NULL), MH_ECALL);
        ASSERT_CONTAINS(ERR_MSG(), "sb.lua:3: here");
        ASSERT_EQ_STR(call_ok(import_ok(h, "bom"), "v", NULL), "2");
        mh_host_free(h);
        log_capture_free(&l);
    }
}

TEST(cache_edit_same_size_same_mtime_seen)
{
    const char *dir = tmp_mkdir("E");
    const char *path = lua_write("E/ed.lua",
                                 "return { v = function() return 111 end }\n");
    log_capture l1, l2;
    mh_host *h1, *h2;
    struct stat before, after;
    struct timespec times[2];

    log_capture_init(&l1);
    log_capture_init(&l2);
    h1 = vhost(&l1, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h1, "ed"), "v", NULL), "111");
    ASSERT_LOG(&l1, -1, "compiled");
    mh_host_free(h1);

    ASSERT_EQ_INT(stat(path, &before), 0);
    file_write(path, "return { v = function() return 222 end }\n");
    times[0] = before.st_atim;
    times[1] = before.st_mtim;
    ASSERT_EQ_INT(utimensat(AT_FDCWD, path, times, 0), 0);
    ASSERT_EQ_INT(stat(path, &after), 0);
    ASSERT_EQ_INT(after.st_size, before.st_size);
    ASSERT_EQ_INT(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    ASSERT_EQ_INT(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);

    h2 = vhost(&l2, 0, NULL, dir);
    if (strcmp(call_ok(import_ok(h2, "ed"), "v", NULL), "222") != 0)
        FAIL("old bytecode used after a same-size same-mtime edit; log:%s",
             log_capture_dump(&l2));
    mh_host_free(h2);
    log_capture_free(&l1);
    log_capture_free(&l2);
}

/* A source rewritten in place with the same size and its mtime pinned to
 * an old time (reproducible builds: tar --mtime, SOURCE_DATE_EPOCH) keeps
 * its mtime, size and inode; its ctime, which the kernel sets and nobody
 * can set back, tells (cache format 4).  Format 3 served the first
 * version's bytecode here. */
TEST(cache_rewritten_with_pinned_mtime_seen)
{
    const char *dir = tmp_mkdir("E");
    const char *path = lua_write("E/pin.lua",
                                 "return { v = function() return 111 end }\n");
    log_capture l1, l2;
    struct stat before, after;

    file_set_mtime(path, 1000000000LL); /* 2001 */
    log_capture_init(&l1);
    log_capture_init(&l2);
    mh_host *h = vhost(&l1, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "pin"), "v", NULL), "111");
    ASSERT_LOG(&l1, -1, "compiled");
    mh_host_free(h);

    ASSERT_EQ_INT(stat(path, &before), 0);
    file_write(path, "return { v = function() return 222 end }\n");
    file_set_mtime(path, 1000000000LL);
    ASSERT_EQ_INT(stat(path, &after), 0);
    ASSERT_TRUE(after.st_ino == before.st_ino);
    ASSERT_EQ_INT(after.st_size, before.st_size);
    ASSERT_EQ_INT(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
    ASSERT_EQ_INT(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);

    h = vhost(&l2, 0, NULL, dir);
    if (strcmp(call_ok(import_ok(h, "pin"), "v", NULL), "222") != 0)
        FAIL("old bytecode used after a rewrite with a pinned mtime; log:%s",
             log_capture_dump(&l2));
    mh_host_free(h);
    log_capture_free(&l1);
    log_capture_free(&l2);
}

/* An entry recorded within the unsure window of its source's last change
 * is checked by hash; once the source has been still that long, a hit is
 * recorded again, and stat alone settles the imports after it. */
TEST(cache_entry_recorded_again_once_the_source_is_still)
{
    const char *dir = tmp_mkdir("E");
    const char *path = lua_write("E/st.lua",
                                 "return { v = function() return 5 end }\n");
    log_capture l1, l2, l3;

    file_set_mtime(path, 1000000000LL); /* its ctime is now */
    log_capture_init(&l1);
    log_capture_init(&l2);
    log_capture_init(&l3);
    mh_host *h = vhost(&l1, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "st"), "v", NULL), "5");
    ASSERT_LOG(&l1, -1, "compiled");
    mh_host_free(h);

    usleep(2200 * 1000); /* the unsure window is 2 s */
    h = vhost(&l2, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "st"), "v", NULL), "5");
    ASSERT_LOG(&l2, -1, "bytecode from cache");
    ASSERT_LOG(&l2, -1, "recorded again");
    mh_host_free(h);

    h = vhost(&l3, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "st"), "v", NULL), "5");
    ASSERT_LOG(&l3, -1, "bytecode from cache");
    if (log_capture_count(&l3, -1, "recorded again") != 0)
        FAIL("recorded again at every import; log:%s", log_capture_dump(&l3));
    mh_host_free(h);
    log_capture_free(&l1);
    log_capture_free(&l2);
    log_capture_free(&l3);
}

/* A tree moved with its bytecode beside it (MH_CONFIG_BYTECODE_BESIDE)
 * keeps every stat field and hash of the source; the bytecode carries the
 * old path as its chunk name, which errors show.  The entry records its
 * origin, and is compiled again at the new one. */
TEST(cache_beside_moved_tree_names_the_new_path)
{
    const char *dir = tmp_mkdir("proj");
    const char *moved = tmp_path("proj2");
    lua_write("proj/bz.lua", "return { v = function() return 1 end,\n"
                             "         boom = function() error('boom') end }\n");
    file_set_mtime(tmp_path("proj/bz.lua"), 1000000000LL);
    log_capture l1, l2;
    log_capture_init(&l1);
    log_capture_init(&l2);
    mh_host *h = vhost(&l1, MH_CONFIG_BYTECODE_BESIDE, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "bz"), "v", NULL), "1");
    mh_host_free(h);
    ASSERT_EQ_INT(rename(dir, moved), 0);

    h = vhost(&l2, MH_CONFIG_BYTECODE_BESIDE, NULL, moved);
    ASSERT_EQ_INT(call_fails(import_ok(h, "bz"), "boom", NULL), MH_ECALL);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("%s/bz.lua:2: boom", moved));
    ASSERT_LOG(&l2, -1, "compiled");
    mh_host_free(h);
    log_capture_free(&l1);
    log_capture_free(&l2);
}

/* Bytecode over the cache's read limit (64 MiB a file) would be written,
 * with an fsync, at every import and never read: it is not written. */
TEST(bytecode_over_the_cache_limit_is_not_written)
{
    const char *dir = tmp_mkdir("E");
    size_t n = ((size_t)64 << 20) + 1024; /* one string constant */
    char *src = malloc(n + 128);
    ASSERT_NOT_NULL(src);
    int k = sprintf(src, "local s = [[");
    memset(src + k, 'x', n);
    strcpy(src + k + n, "]]\nreturn { n = function() return #s end }\n");
    lua_write("E/big.lua", src);
    free(src);
    log_capture l;
    log_capture_init(&l);
    mh_host *h = vhost(&l, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "big"), "n", NULL),
                  str_fmt("%zu", n));
    ASSERT_LOG(&l, -1, "not cached");
    mh_host_free(h);
    ASSERT_EQ_INT(tree_count(tmp_path("cache/lua"), "", NULL), 0);
    log_capture_free(&l);
}

TEST(cache_edit_different_size_seen)
{
    const char *dir = tmp_mkdir("E");
    const char *path = lua_write("E/ed.lua",
                                 "return { v = function() return 1 end }\n");
    log_capture l1, l2;
    mh_host *h1, *h2;

    log_capture_init(&l1);
    log_capture_init(&l2);
    h1 = vhost(&l1, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h1, "ed"), "v", NULL), "1");
    mh_host_free(h1);
    file_write(path, "return { v = function() return 'changed' end }\n");
    h2 = vhost(&l2, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h2, "ed"), "v", NULL), "\"changed\"");
    ASSERT_LOG(&l2, -1, "compiled");
    mh_host_free(h2);
    log_capture_free(&l1);
    log_capture_free(&l2);
}

/* Import once (compiling), damage the cache file with how(), then check a
 * second host compiles again and works, and a third reads it from cache. */
static void corrupt_case(int truncate)
{
    const char *dir = tmp_mkdir("E");
    log_capture l1, l2, l3;
    mh_host *h;
    const char *cfile;
    long long size;

    lua_write("E/cc.lua", "local M = {}\n"
                          "function M.v() return 'cc' end\n"
                          "function M.w(x) return x * 2 end\n"
                          "return M\n");
    log_capture_init(&l1);
    log_capture_init(&l2);
    log_capture_init(&l3);
    h = vhost(&l1, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "cc"), "v", NULL), "\"cc\"");
    ASSERT_LOG(&l1, -1, "compiled");
    mh_host_free(h);

    cfile = first_file_under(tmp_path("cache/lua"));
    if (cfile == NULL)
        FAIL("no cache file under cache/lua; log:%s", log_capture_dump(&l1));
    size = file_size(cfile);
    ASSERT_TRUE(size > 8);
    if (truncate)
        file_truncate_to(cfile, (size_t)size / 2);
    else
        file_scribble(cfile, 0, 7);

    h = vhost(&l2, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "cc"), "v", NULL), "\"cc\"");
    ASSERT_EQ_STR(call_ok(import_ok(h, "cc"), "w", "[21]"), "42");
    ASSERT_LOG(&l2, -1, "compiled");
    mh_host_free(h);

    h = vhost(&l3, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "cc"), "w", "[4]"), "8");
    ASSERT_LOG(&l3, -1, "bytecode from cache");
    if (log_capture_count(&l3, -1, "compiled") != 0)
        FAIL("rewritten cache file not used; log:%s", log_capture_dump(&l3));
    mh_host_free(h);
    http_assert_cache_clean();
    log_capture_free(&l1);
    log_capture_free(&l2);
    log_capture_free(&l3);
}

/* Counts the fault hook's sites, failing none. */
typedef struct site_count {
    pthread_mutex_t mu;
    size_t fsync, rename;
} site_count;

static int count_site(void *ud, const char *site)
{
    site_count *c = ud;
    pthread_mutex_lock(&c->mu);
    c->fsync += strcmp(site, "fsync") == 0;
    c->rename += strcmp(site, "rename") == 0;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

TEST(cache_writes_are_not_fsynced_and_sweep_once_per_host)
{
    /* A cache file is checked (its checksum) and compiled again when a
     * crash left it torn, so it costs no fsync (about 0.7 ms a write
     * here); and a host reads the directory for killed writers' leftovers
     * at its first write there, not at every one. */
    const char *dir = tmp_mkdir("E");
    const char *lua = tmp_path("cache/lua");
    const char *left1 = str_fmt("%s/.tmp-0123456789ab", lua);
    const char *left2 = str_fmt("%s/.tmp-ba9876543210", lua);
    long long old = (long long)time(NULL) - 3600;
    lua_write("E/w1.lua", "return {v = function() return 1 end}\n");
    lua_write("E/w2.lua", "return {v = function() return 2 end}\n");
    lua_write("E/w3.lua", "return {v = function() return 3 end}\n");
    ASSERT_EQ_INT(mkdir(tmp_path("cache"), 0700), 0);
    ASSERT_EQ_INT(mkdir(lua, 0700), 0);
    file_write(left1, "killed");
    file_set_mtime(left1, old);

    site_count c = {.mu = PTHREAD_MUTEX_INITIALIZER};
    host_opts o = {.fault = count_site, .fault_ud = &c};
    mh_host *h = host_new_opts(&o, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "w1"), "v", NULL), "1");
    ASSERT_FALSE(file_exists(left1)); /* the first write swept */
    file_write(left2, "killed");
    file_set_mtime(left2, old);
    ASSERT_EQ_STR(call_ok(import_ok(h, "w2"), "v", NULL), "2");
    ASSERT_TRUE(file_exists(left2)); /* the second did not */
    ASSERT_EQ_INT(c.rename, 2);
    ASSERT_EQ_INT(c.fsync, 0);
    mh_host_free(h);

    h = host_new_opts(&o, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "w3"), "v", NULL), "3");
    ASSERT_FALSE(file_exists(left2)); /* a new host's first write */
    mh_host_free(h);
}

TEST(cache_garbage_file_ignored_and_rewritten)
{
    corrupt_case(0);
}

/* A module of n functions; selftest() calls each and returns n. */
static const char *big_lua_source(int n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT_NOT_NULL(f);
    fputs("local M = {}\n", f);
    for (int i = 0; i < n; i++)
        fprintf(f, "function M.f%d(x) return x + 1 end\n", i);
    fprintf(f, "function M.selftest()\n  local t = 0\n  for i = 0, %d do "
            "t = t + M['f' .. i](0) end\n  return t\nend\nreturn M\n",
            n - 1);
    fclose(f);
    const char *out = str_fmt("%s", text);
    free(text);
    return out;
}

/* A host reads cached bytecode into one buffer it keeps: importing a
 * second module from the cache allocates nothing for the file, where a
 * buffer per import costs its pages anew each time (docs/performance.md,
 * Lua).  Two modules of one text and equal names' lengths have cache
 * files of one size. */
TEST(cached_bytecode_is_read_into_one_kept_buffer)
{
    const char *dir = tmp_mkdir("E");
    const char *text = big_lua_source(400);
    const char *names[] = {"ka", "kb", "kc"};
    for (size_t i = 0; i < 3; i++) {
        const char *f = lua_write(str_fmt("E/%s.lua", names[i]), text);
        file_set_mtime(f, (long long)time(NULL) - 3600);
    }
    /* Entries recorded 2 s after the sources' last change (the ctime that
     * setting the mtime set) are sure ones: found by stat, nothing
     * rewritten. */
    usleep(2200 * 1000);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h1 = vhost(&lc, 0, NULL, dir);
    for (size_t i = 0; i < 3; i++)
        import_ok(h1, names[i]);
    mh_host_free(h1);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "compiled"), 3);
    log_capture_free(&lc);

    const char *files;
    ASSERT_EQ_INT(tree_count(tmp_path("cache/lua"), "", &files), 3);
    struct stat st;
    ASSERT_EQ_INT(stat(first_file_under(tmp_path("cache/lua")), &st), 0);
    alloc_tracker at;
    alloc_tracker_init(&at);
    at.only_size = (size_t)st.st_size; /* a cache file's buffer */
    log_capture_init(&lc);
    mh_config cfg = tracked_config(&at, dir);
    cfg.flags |= MH_CONFIG_VERBOSE;
    cfg.cache_dir = tmp_path("cache");
    cfg.log = log_capture_fn;
    cfg.log_ud = &lc;
    mh_host *h2 = NULL;
    ASSERT_STATUS(mh_host_new(&cfg, &h2, ERR), MH_OK);
    for (size_t i = 0; i < 3; i++)
        ASSERT_EQ_STR(call_ok(import_ok(h2, names[i]), "selftest", NULL),
                      "400");
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "bytecode from cache"), 3);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "compiled"), 0);
    /* By stat, as an installed module's are: nothing hashed or written. */
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "recorded again"), 0);
    if (at.requests != 1)
        FAIL("%zu allocations of the cache file's %zu bytes for 3 imports "
             "from the cache (one kept buffer: 1)", at.requests,
             at.only_size);
    mh_host_free(h2);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
    log_capture_free(&lc);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The sizes of the regular files under a tree, each size once. */
static size_t file_sizes[8], file_sizes_n;
static int file_size_cb(const char *path, const struct stat *sb, int type,
                        struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (type != FTW_F)
        return 0;
    for (size_t i = 0; i < file_sizes_n; i++)
        if (file_sizes[i] == (size_t)sb->st_size)
            return 0;
    if (file_sizes_n == sizeof file_sizes / sizeof file_sizes[0])
        return 1;
    file_sizes[file_sizes_n++] = (size_t)sb->st_size;
    return 0;
}

/* Cache files are read into the host's kept buffer only while it is at
 * most 1 MiB: a larger file is read into memory of its own, given back
 * after its load, and the kept buffer stays as it was; a larger file that
 * fits makes the buffer grow (one allocation), after which smaller ones
 * use it too; a file refused (its checksum does not match) gives the
 * buffer back, so the next import uses it.  Counted by allocation size:
 * S (small modules), B (larger), H (over 1 MiB: a long string). */
TEST(cached_bytecode_buffer_grows_keeps_and_is_given_back)
{
    const char *dir = tmp_mkdir("E");
    const char *small = big_lua_source(100), *large = big_lua_source(400);
    size_t hn = (size_t)1200 << 10;
    char *huge = malloc(hn + 128);
    ASSERT_NOT_NULL(huge);
    int k = sprintf(huge, "local s = [[");
    memset(huge + k, 'x', hn);
    strcpy(huge + k + hn, "]]\nreturn {selftest = function() "
                          "return #s end}\n");
    const char *names[] = {"s1", "s2", "s3", "s4", "b1", "b2", "b3", "u1",
                           "u2"};
    for (size_t i = 0; i < 9; i++) {
        const char *f = lua_write(str_fmt("E/%s.lua", names[i]),
                                  names[i][0] == 's' ? small
                                  : names[i][0] == 'b' ? large : huge);
        file_set_mtime(f, (long long)time(NULL) - 3600);
    }
    free(huge);
    usleep(2200 * 1000); /* sure entries, as in the case above */

    /* s2's cache file first, alone, then damaged in its bytecode. */
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = vhost(&lc, 0, NULL, dir);
    import_ok(h, "s2");
    mh_host_free(h);
    const char *damaged = first_file_under(tmp_path("cache/lua"));
    ASSERT_NOT_NULL(damaged);
    file_scribble(damaged, (size_t)file_size(damaged) / 2, 3);
    h = vhost(&lc, 0, NULL, dir);
    for (size_t i = 0; i < 9; i++)
        if (i != 1)
            import_ok(h, names[i]);
    mh_host_free(h);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "compiled"), 9);
    log_capture_free(&lc);
    file_sizes_n = 0;
    nftw(tmp_path("cache/lua"), file_size_cb, 16, FTW_PHYS);
    ASSERT_EQ_INT(file_sizes_n, 3);
    qsort(file_sizes, 3, sizeof file_sizes[0], cmp_size);
    size_t S = file_sizes[0], B = file_sizes[1], H = file_sizes[2];
    ASSERT_TRUE(B <= (1u << 20) && H > (1u << 20));

    alloc_tracker at;
    alloc_tracker_init(&at);
    log_capture_init(&lc);
    mh_config cfg = tracked_config(&at, dir);
    /* Nothing written: every allocation of a cache file's size is a
     * read's. */
    cfg.flags |= MH_CONFIG_VERBOSE | MH_CONFIG_NO_BYTECODE_WRITE;
    cfg.cache_dir = tmp_path("cache");
    cfg.log = log_capture_fn;
    cfg.log_ud = &lc;
    h = NULL;
    ASSERT_STATUS(mh_host_new(&cfg, &h, ERR), MH_OK);
    struct { const char *name, *selftest; size_t size, requests; } steps[] = {
        {"s1", "100", S, 1},  /* the buffer, made */
        {"s2", "100", S, 1},  /* damaged: refused, compiled; given back */
        {"s3", "100", S, 1},  /* ... so this one uses it */
        {"b1", "400", B, 1},  /* grown, once */
        {"s4", "100", B, 1},  /* the grown one serves smaller files */
        {"b2", "400", B, 1},
        {"u1", "1228800", H, 1}, /* over 1 MiB: its own memory */
        {"u2", "1228800", H, 2}, /* ... each time */
        {"b3", "400", B, 0},  /* the kept buffer is still the grown one */
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (at.only_size != steps[i].size) {
            at.only_size = steps[i].size;
            at.requests = 0;
        }
        ASSERT_EQ_STR(call_ok(import_ok(h, steps[i].name), "selftest", NULL),
                      steps[i].selftest);
        if (at.requests != steps[i].requests)
            FAIL("after importing %s: %zu allocations of %zu bytes, "
                 "expected %zu; log:%s", steps[i].name, at.requests,
                 steps[i].size, steps[i].requests, log_capture_dump(&lc));
    }
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "bytecode from cache"), 8);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "compiled"), 1); /* s2 */
    mh_host_free(h);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
    log_capture_free(&lc);
}

TEST(cache_truncated_file_ignored_and_rewritten)
{
    corrupt_case(1);
}

TEST(cache_unwritable_warns_once)
{
    const char *dir = tmp_mkdir("E");
    const char *cache = tmp_path("file/cache");
    log_capture lc;
    mh_host *host;

    file_write(tmp_path("file"), "a regular file\n");
    lua_write("E/u1.lua", "return { v = function() return 1 end }\n");
    lua_write("E/u2.lua", "return { v = function() return 2 end }\n");
    lua_write("E/pkg/u3.lua", "return { v = function() return 3 end }\n");
    log_capture_init(&lc);
    host = vhost(&lc, 0, cache, dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "u1"), "v", NULL), "1");
    ASSERT_EQ_STR(call_ok(import_ok(host, "u2"), "v", NULL), "2");
    ASSERT_EQ_STR(call_ok(import_ok(host, "pkg.u3"), "v", NULL), "3");
    if (log_capture_count(&lc, MH_LOG_WARN, "") != 1)
        FAIL("expected exactly one warning; log:%s", log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(no_bytecode_write_flag)
{
    const char *dir = tmp_mkdir("E");
    log_capture l1, l2;
    mh_host *host;

    lua_write("E/nw.lua", "return { v = function() return 'nw' end }\n");
    log_capture_init(&l1);
    log_capture_init(&l2);
    host = vhost(&l1, MH_CONFIG_NO_BYTECODE_WRITE, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "nw"), "v", NULL), "\"nw\"");
    mh_host_free(host);
    /* not even a directory: nothing may be written */
    ASSERT_FALSE(file_exists(tmp_path("cache/lua")));
    ASSERT_FALSE(file_exists(tmp_path("E/__mhcache__")));
    /* Again: still compiled, still nothing written. */
    host = vhost(&l2, MH_CONFIG_NO_BYTECODE_WRITE, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "nw"), "v", NULL), "\"nw\"");
    ASSERT_LOG(&l2, -1, "compiled");
    mh_host_free(host);
    ASSERT_FALSE(file_exists(tmp_path("cache/lua")));
    /* Nor beside the source, where a __mhcache__ in a read-only use of a
     * tree would be litter. */
    host = vhost(&l2, MH_CONFIG_NO_BYTECODE_WRITE | MH_CONFIG_BYTECODE_BESIDE,
                 NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "nw"), "v", NULL), "\"nw\"");
    mh_host_free(host);
    ASSERT_FALSE(file_exists(tmp_path("E/__mhcache__")));
    log_capture_free(&l1);
    log_capture_free(&l2);
}

/* With no usable HOME or XDG_CACHE_HOME a host has no cache directory:
 * its name is under "/nonexistent", where nothing is ever made -- a root
 * process made one there before, which every user of a setuid program
 * would share.  Lua compiles in memory, saying why (with -v: info, not a
 * warning at every run, since nothing is wrong to mend); listing recorded
 * failures says there is nowhere they could be. */
TEST(no_home_means_no_cache_directory)
{
    const char *dir = tmp_mkdir("E");
    const char *none = "/nonexistent/modhost-cache";
    bool existed = file_exists("/nonexistent");
    log_capture l;
    mh_config cfg;
    size_t n = 0;

    env_unset("XDG_CACHE_HOME");
    env_unset("HOME");
    lua_write("E/nh.lua", "return { v = function() return 'nh' end }\n");
    log_capture_init(&l);
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = dir;
    cfg.log = log_capture_fn;
    cfg.log_ud = &l;
    mh_host *h = host_new_cfg(&cfg);
    ASSERT_EQ_STR(mh_host_cache_dir(h), none);
    ASSERT_EQ_STR(call_ok(import_ok(h, "nh"), "v", NULL), "\"nh\"");
    ASSERT_LOG(&l, MH_LOG_INFO, "lua: bytecode cache not used (compiling in "
                                "memory): no cache directory: neither "
                                "XDG_CACHE_HOME nor HOME names one");
    ASSERT_EQ_INT(log_capture_count(&l, MH_LOG_WARN, ""), 0);
    ASSERT_EQ_INT(log_capture_count(&l, -1, none), 0); /* the stand-in */
    ASSERT_STATUS(mh_host_clear_failures(h, NULL, &n, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "no cache directory: neither XDG_CACHE_HOME "
                               "nor HOME names one");
    ASSERT_NOT_CONTAINS(ERR_MSG(), none); /* the library's own stand-in */
    mh_host_free(h);

    /* A HOME of /nonexistent (nobody's) is named, with why. */
    env_set("HOME", "/nonexistent");
    log_capture_free(&l);
    log_capture_init(&l);
    h = host_new_cfg(&cfg);
    ASSERT_EQ_STR(mh_host_cache_dir(h), "/nonexistent/.cache/modhost");
    ASSERT_EQ_STR(call_ok(import_ok(h, "nh"), "v", NULL), "\"nh\"");
    ASSERT_LOG(&l, MH_LOG_INFO, "no cache directory: /nonexistent/.cache/"
                                "modhost/lua is under /nonexistent");
    ASSERT_EQ_INT(log_capture_count(&l, MH_LOG_WARN, ""), 0);
    ASSERT_STATUS(mh_host_clear_failures(h, NULL, &n, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "no cache directory: /nonexistent/.cache/"
                               "modhost is under /nonexistent, which is no "
                               "place for one");
    mh_host_free(h);
    if (!existed)
        ASSERT_FALSE(file_exists("/nonexistent"));
    log_capture_free(&l);
}

TEST(dontwritebytecode_env_var)
{
    const char *dir = tmp_mkdir("E");
    mh_config cfg;
    mh_host *host;

    /* The variable is part of the environment: not read by isolated hosts,
     * so this host is not isolated (but has no default path). */
    env_set("MODHOST_DONTWRITEBYTECODE", "1");
    env_unset("MODHOST_PATH");
    lua_write("E/nw.lua", "return { v = function() return 'nw' end }\n");
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = dir;
    cfg.cache_dir = tmp_path("cache");
    host = host_new_cfg(&cfg);
    ASSERT_EQ_STR(call_ok(import_ok(host, "nw"), "v", NULL), "\"nw\"");
    mh_host_free(host);
    ASSERT_EQ_INT(tree_count(tmp_path("cache/lua"), "", NULL), 0);
}

TEST(bytecode_beside_source)
{
    const char *dir = tmp_mkdir("E");
    log_capture l1, l2;
    mh_host *host;
    const char *names;

    lua_write("E/pkg/bs.lua", "return { v = function() return 'bs' end }\n");
    log_capture_init(&l1);
    log_capture_init(&l2);
    host = vhost(&l1, MH_CONFIG_BYTECODE_BESIDE, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "pkg.bs"), "v", NULL), "\"bs\"");
    ASSERT_LOG(&l1, -1, "compiled");
    mh_host_free(host);
    if (tree_count(tmp_path("E/pkg/__mhcache__"), "", &names) == 0)
        FAIL("no file in E/pkg/__mhcache__; log:%s", log_capture_dump(&l1));
    ASSERT_EQ_INT(tree_count(tmp_path("cache/lua"), "", NULL), 0);

    host = vhost(&l2, MH_CONFIG_BYTECODE_BESIDE, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "pkg.bs"), "v", NULL), "\"bs\"");
    ASSERT_LOG(&l2, -1, "bytecode from cache");
    if (log_capture_count(&l2, -1, "compiled") != 0)
        FAIL("__mhcache__ not read back; log:%s", log_capture_dump(&l2));
    mh_host_free(host);
    log_capture_free(&l1);
    log_capture_free(&l2);
}

/* A cache file's name carries its build's tag (Lua 5.4 -- the Lua CMake
 * requires -- and cache format 4), as CPython's __pycache__ names carry
 * "cpython-311": two builds sharing a cache directory keep a file each
 * instead of rewriting each other's on every import. */
TEST(cache_files_of_other_builds_are_left_alone)
{
    const char *dir = tmp_mkdir("E");
    const char *cache = tmp_mkdir("E/pkg/__mhcache__");
    static const char *const other[] = {
        "ob.lua.mhc",         /* a build before tags */
        "ob.lua.lua54-2.mhc", /* an older cache format */
        "ob.lua.lua54-3.mhc", /* the one before ctime and device */
        "ob.lua.lua53-3.mhc", /* another Lua */
    };
    log_capture l1, l2, l3;
    mh_host *host;
    const char *names;

    lua_write("E/pkg/ob.lua", "return { v = function() return 'ob' end }\n");
    if (chmod(cache, 0700) != 0) /* as a host makes it */
        FAIL("chmod %s: %s", cache, strerror(errno));
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        file_write(str_fmt("%s/%s", cache, other[i]),
                   str_fmt("another build's cache file %zu\n", i));
    log_capture_init(&l1);
    log_capture_init(&l2);
    log_capture_init(&l3);
    host = vhost(&l1, MH_CONFIG_BYTECODE_BESIDE, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "pkg.ob"), "v", NULL), "\"ob\"");
    ASSERT_LOG(&l1, -1, "compiled");
    mh_host_free(host);
    /* "lua54-4", then "-4488" (the type sizes) on a build where int,
     * size_t, lua_Integer and lua_Number are not 4, 8, 8 and 8 bytes. */
    if (tree_count(cache, "", &names) != 5 ||
        tree_count(cache, "ob.lua.lua54-4", NULL) != 1)
        FAIL("want the four other builds' files and ob.lua.lua54-4*.mhc; "
             "have:%s\nlog:%s", names, log_capture_dump(&l1));

    host = vhost(&l2, MH_CONFIG_BYTECODE_BESIDE, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "pkg.ob"), "v", NULL), "\"ob\"");
    ASSERT_LOG(&l2, -1, "bytecode from cache");
    if (log_capture_count(&l2, -1, "compiled") != 0)
        FAIL("the tagged file was not read back; log:%s",
             log_capture_dump(&l2));
    mh_host_free(host);
    for (size_t i = 0; i < sizeof other / sizeof *other; i++)
        ASSERT_EQ_STR(file_read(str_fmt("%s/%s", cache, other[i])),
                      str_fmt("another build's cache file %zu\n", i));

    /* The central cache's names carry the tag too. */
    host = vhost(&l3, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "pkg.ob"), "v", NULL), "\"ob\"");
    mh_host_free(host);
    if (tree_count(tmp_path("cache/lua"), ".lua54-4", &names) != 1 ||
        tree_count(tmp_path("cache/lua"), "", NULL) != 1)
        FAIL("want one <hash>.lua54-4*.mhc under cache/lua; have:%s",
             names);
    log_capture_free(&l1);
    log_capture_free(&l2);
    log_capture_free(&l3);
}

TEST(cache_path_too_long_compiles_in_memory_with_one_warning)
{
    /* A cache directory so long that no cache file's path fits: the
     * modules compile in memory, one warning says why, nothing is
     * written anywhere (a cut-off path would be another file). */
    const char *dir = tmp_mkdir("E");
    char *cache = malloc(4300);
    int n = snprintf(cache, 4300, "%s/", tmp_path("c"));
    memset(cache + n, 'x', 4300 - (size_t)n - 1);
    cache[4299] = '\0';
    log_capture lc;
    mh_host *host;

    lua_write("E/l1.lua", "return { v = function() return 'l1' end }\n");
    lua_write("E/l2.lua", "return { v = function() return 'l2' end }\n");
    log_capture_init(&lc);
    host = vhost(&lc, 0, cache, dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "l1"), "v", NULL), "\"l1\"");
    ASSERT_EQ_STR(call_ok(import_ok(host, "l2"), "v", NULL), "\"l2\"");
    mh_host_free(host);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "cache file's path "
                                                      "is too long"), 1);
    ASSERT_LOG(&lc, MH_LOG_WARN, "'l1'");
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "compiled"), 2);
    ASSERT_EQ_INT(tree_count(tmp_dir(), ".mhc", NULL), 0);
    log_capture_free(&lc);
    free(cache);
}

TEST(database_cache_hash_mode)
{
    const char *stage = tmp_mkdir("stage");
    const char *db = tmp_path("m.db");
    const char *entry = str_fmt("sqlite:%s", db);
    log_capture l1, l2, l3;
    mh_host *h;

    lua_write("stage/dbm.lua", "return { v = function() return 111 end }\n");
    db_pack(db, stage);
    log_capture_init(&l1);
    log_capture_init(&l2);
    log_capture_init(&l3);

    h = vhost(&l1, 0, NULL, entry);
    ASSERT_EQ_STR(call_ok(import_ok(h, "dbm"), "v", NULL), "111");
    ASSERT_LOG(&l1, -1, "compiled");
    mh_host_free(h);
    ASSERT_NE_INT(tree_count(tmp_path("cache/lua"), "", NULL), 0);

    h = vhost(&l2, 0, NULL, entry);
    ASSERT_EQ_STR(call_ok(import_ok(h, "dbm"), "v", NULL), "111");
    ASSERT_LOG(&l2, -1, "bytecode from cache");
    if (log_capture_count(&l2, -1, "compiled") != 0)
        FAIL("second host compiled again; log:%s", log_capture_dump(&l2));
    mh_host_free(h);

    /* Same size, re-packed: only the hash tells them apart. */
    lua_write("stage/dbm.lua", "return { v = function() return 222 end }\n");
    db_pack(db, stage);
    h = vhost(&l3, 0, NULL, entry);
    if (strcmp(call_ok(import_ok(h, "dbm"), "v", NULL), "222") != 0)
        FAIL("stale bytecode for a re-packed database; log:%s",
             log_capture_dump(&l3));
    ASSERT_LOG(&l3, -1, "compiled");
    mh_host_free(h);
    log_capture_free(&l1);
    log_capture_free(&l2);
    log_capture_free(&l3);
}

/* ------------------------------------------------------------- threads */

typedef struct worker {
    mh_module *mod;
    int id;
    int bad;
    char msg[256];
} worker;

static void *call_worker(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 200 && !w->bad; i++) {
        cJSON *args = cJSON_CreateArray(), *res = NULL;
        mh_error *err = NULL;
        mh_status st;

        cJSON_AddItemToArray(args, cJSON_CreateNumber(w->id * 1000 + i));
        cJSON_AddItemToArray(args, cJSON_CreateNumber(i));
        st = mh_module_call(w->mod, "f", args, &res, &err);
        if (st != MH_OK) {
            snprintf(w->msg, sizeof w->msg, "call %d: %s: %s", i,
                     mh_status_name(st), mh_error_message(err));
            w->bad = 1;
        } else if (!cJSON_IsNumber(res) ||
                   res->valuedouble != (double)(w->id * 1000 + i) * 3 + i) {
            snprintf(w->msg, sizeof w->msg, "call %d: wrong result", i);
            w->bad = 1;
        }
        mh_error_free(err);
        cJSON_Delete(res);
        cJSON_Delete(args);
    }
    return NULL;
}

TEST(threads_call_concurrently)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_module *mod;
    pthread_t t[4];
    worker w[4];

    lua_write("E/th.lua",
              "local calls = 0\n"
              "local M = {}\n"
              "function M.f(a, b)\n"
              "  calls = calls + 1\n"
              "  local s = 0\n"
              "  for k = 1, 3 do s = s + a end\n"
              "  local t = {}\n"
              "  for k = 1, 50 do t[k] = k end\n"
              "  return s + b\n"
              "end\n"
              "function M.calls() return calls end\n"
              "return M\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "th");
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.mod = mod, .id = i + 1};
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, call_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        if (w[i].bad)
            FAIL("thread %d: %s", i, w[i].msg);
    ASSERT_EQ_STR(call_ok(mod, "calls", NULL), "800");
    mh_host_free(host);
}

/* ---------------------------------------------------- harder cache cases */

TEST(cache_body_scribbled_never_crashes)
{
    const char *dir = tmp_mkdir("E");
    log_capture l1, l2;
    mh_host *h;
    const char *cfile;
    long long size;

    lua_write("E/sb.lua", "local M = {}\n"
                          "function M.v(x) local t = {} for i = 1, x do t[i] = i end\n"
                          "  return #t end\n"
                          "return M\n");
    log_capture_init(&l1);
    log_capture_init(&l2);
    h = vhost(&l1, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "sb"), "v", "[5]"), "5");
    mh_host_free(h);
    cfile = first_file_under(tmp_path("cache/lua"));
    ASSERT_NOT_NULL(cfile);
    size = file_size(cfile);
    /* Scribble the last quarter only: the header most likely survives,
     * the code does not (Lua itself does not verify binary chunks). */
    file_scribble(cfile, (size_t)(size - size / 4), 11);
    ASSERT_EQ_INT(file_size(cfile), size);

    h = vhost(&l2, 0, NULL, dir);
    if (strcmp(call_ok(import_ok(h, "sb"), "v", "[7]"), "7") != 0)
        FAIL("scribbled bytecode used; log:%s", log_capture_dump(&l2));
    mh_host_free(h);
    log_capture_free(&l1);
    log_capture_free(&l2);
}

/* One byte of the bytecode changed, the header intact: the checksum
 * sees it, so the module is compiled again, never undumped. */
TEST(cache_one_byte_changed_is_compiled_again)
{
    const char *dir = tmp_mkdir("E");
    log_capture l1, l2;
    mh_host *h;
    const char *cfile;
    unsigned char *bytes;
    size_t len;

    lua_write("E/ob.lua", "local M = {}\n"
                          "function M.v(x) return x + 1 end\n"
                          "return M\n");
    log_capture_init(&l1);
    log_capture_init(&l2);
    h = vhost(&l1, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "ob"), "v", "[1]"), "2");
    mh_host_free(h);
    cfile = first_file_under(tmp_path("cache/lua"));
    ASSERT_NOT_NULL(cfile);
    bytes = file_bytes(cfile, &len);
    ASSERT_TRUE(len > 200);
    bytes[len - 20] ^= 0x01;
    file_write_bytes(cfile, bytes, len);
    free(bytes);

    h = vhost(&l2, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "ob"), "v", "[41]"), "42");
    ASSERT_LOG(&l2, -1, "compiled");
    if (log_capture_count(&l2, -1, "bytecode from cache") != 0)
        FAIL("changed bytecode undumped; log:%s", log_capture_dump(&l2));
    mh_host_free(h);
    log_capture_free(&l1);
    log_capture_free(&l2);
}

/* A whole file of this build's tag whose bytecode Lua refuses (written by
 * a Lua built with another LUAC_FORMAT, say) is stale: a warning with
 * Lua's reason, the source compiled, the file written again -- not every
 * import failing until someone deletes it. */
/* Make the cache file of module NAME (beside its source in E/) one that
 * is whole but that Lua refuses: another LUAC_FORMAT, the checksum
 * sealed again. */
static const char *bytecode_refused_by_lua(const char *name)
{
    glob_t g;
    const char *pat = tmp_path("E/__mhcache__/%s.lua.lua*.mhc", name);
    if (glob(pat, 0, NULL, &g) != 0 || g.gl_pathc != 1)
        FAIL("want one cache file like %s", pat);
    const char *cfile = str_fmt("%s", g.gl_pathv[0]);
    globfree(&g);
    size_t len;
    unsigned char *bytes = file_bytes(cfile, &len);
    ASSERT_TRUE(len > MH_BC_HEADER_SIZE + 6);
    unsigned char *bc = bytes + MH_BC_HEADER_SIZE;
    ASSERT_TRUE(memcmp(bc, "\x1bLua", 4) == 0);
    bc[5] ^= 0x01; /* LUAC_FORMAT */
    uint64_t sum = mh_hash_bytes(bc, len - MH_BC_HEADER_SIZE);
    memcpy(bytes + 112, &sum, 8); /* bc_sum: the file stays whole */
    file_write_bytes(cfile, bytes, len);
    free(bytes);
    return cfile;
}

/* A whole file of this build's tag whose bytecode Lua refuses (written by
 * a Lua built with another LUAC_FORMAT, say) is stale: a warning with
 * Lua's reason -- one per host, as every file such a Lua wrote is --, the
 * source compiled, the file written again (where writes are on) -- not
 * every import failing until someone deletes it. */
TEST(cache_bytecode_lua_refuses_is_compiled_again)
{
    const char *dir = tmp_mkdir("E");
    const unsigned beside = MH_CONFIG_BYTECODE_BESIDE;
    log_capture l1, l2, l3, l4;

    lua_write("E/rf.lua", "return { v = function() return 7 end }\n");
    lua_write("E/rg.lua", "return { v = function() return 8 end }\n");
    log_capture_init(&l1);
    log_capture_init(&l2);
    log_capture_init(&l3);
    log_capture_init(&l4);
    mh_host *h = vhost(&l1, beside, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "rf"), "v", NULL), "7");
    ASSERT_EQ_STR(call_ok(import_ok(h, "rg"), "v", NULL), "8");
    mh_host_free(h);
    const char *cfile = bytecode_refused_by_lua("rf");
    bytecode_refused_by_lua("rg");

    /* Writes off: compiled, one warning for both. */
    h = vhost(&l2, beside | MH_CONFIG_NO_BYTECODE_WRITE, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "rf"), "v", NULL), "7");
    ASSERT_EQ_STR(call_ok(import_ok(h, "rg"), "v", NULL), "8");
    ASSERT_LOG(&l2, MH_LOG_WARN, cfile);
    ASSERT_LOG(&l2, MH_LOG_WARN, "format");
    ASSERT_EQ_INT(log_capture_count(&l2, MH_LOG_WARN, "refused by Lua"), 1);
    ASSERT_EQ_INT(log_capture_count(&l2, -1, "compiled"), 2);
    mh_host_free(h);

    h = vhost(&l3, beside, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "rf"), "v", NULL), "7");
    ASSERT_LOG(&l3, MH_LOG_WARN, "refused by Lua");
    ASSERT_LOG(&l3, -1, "compiled");
    mh_host_free(h);

    h = vhost(&l4, beside, NULL, dir); /* written again, and good */
    ASSERT_EQ_STR(call_ok(import_ok(h, "rf"), "v", NULL), "7");
    ASSERT_LOG(&l4, -1, "bytecode from cache");
    mh_host_free(h);
    log_capture_free(&l1);
    log_capture_free(&l2);
    log_capture_free(&l3);
    log_capture_free(&l4);
}

/* The checksum (a 64-bit hash since cache format 3) sees one flipped bit
 * anywhere in the bytecode: its first byte, its middle, its last, each
 * bit of those.  Every time the module is compiled again, never
 * undumped, and the file is rewritten whole. */
TEST(cache_any_bit_flipped_is_compiled_again)
{
    const char *dir = tmp_mkdir("E");
    log_capture l0;
    mh_host *h;
    const char *cfile;
    unsigned char *good, *bad;
    size_t len, got_len;

    lua_write("E/bf.lua", "local M = {}\n"
                          "function M.v(x) return x * 3 end\n"
                          "M.s = 'a string constant'\n"
                          "return M\n");
    log_capture_init(&l0);
    h = vhost(&l0, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "bf"), "v", "[2]"), "6");
    mh_host_free(h);
    log_capture_free(&l0);
    cfile = first_file_under(tmp_path("cache/lua"));
    ASSERT_NOT_NULL(cfile);
    good = file_bytes(cfile, &len);
    ASSERT_TRUE(len > 200 + MH_BC_HEADER_SIZE);
    const size_t hs = MH_BC_HEADER_SIZE; /* the bytecode starts there */
    const size_t at[] = {hs, hs + (len - hs) / 2, len - 1};
    bad = malloc(len);
    ASSERT_NOT_NULL(bad);
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        for (int bit = 0; bit < 8; bit++) {
            log_capture l;
            memcpy(bad, good, len);
            bad[at[i]] ^= (unsigned char)(1u << bit);
            file_write_bytes(cfile, bad, len);
            log_capture_init(&l);
            h = vhost(&l, 0, NULL, dir);
            ASSERT_EQ_STR(call_ok(import_ok(h, "bf"), "v", "[5]"), "15");
            if (log_capture_count(&l, -1, "bytecode from cache") != 0 ||
                log_capture_count(&l, -1, "compiled") != 1)
                FAIL("byte %zu bit %d flipped: not compiled again; log:%s",
                     at[i], bit, log_capture_dump(&l));
            mh_host_free(h);
            log_capture_free(&l);
            unsigned char *now = file_bytes(cfile, &got_len);
            if (got_len != len || now[at[i]] != good[at[i]] ||
                memcmp(now + hs, good + hs, len - hs) != 0)
                FAIL("byte %zu bit %d: the cache file was not rewritten "
                     "with the same bytecode", at[i], bit);
            free(now);
        }
    }
    free(bad);
    free(good);
}

TEST(cache_file_of_other_module_not_used)
{
    const char *dir = tmp_mkdir("E");
    log_capture l1, l2;
    mh_host *h;
    char *fx = NULL, *fy = NULL;
    const char *names;

    lua_write("E/x.lua", "return { v = function() return 'x' end }\n");
    lua_write("E/y.lua", "return { v = function() return 'y' end }\n");
    log_capture_init(&l1);
    log_capture_init(&l2);
    h = vhost(&l1, 0, NULL, dir);
    import_ok(h, "x");
    mh_host_free(h);
    fx = strdup(first_file_under(tmp_path("cache/lua")));
    h = vhost(&l1, 0, NULL, dir);
    import_ok(h, "y");
    mh_host_free(h);
    ASSERT_EQ_INT(tree_count(tmp_path("cache/lua"), "", &names), 2);
    /* The other of the two files. */
    {
        const char *a = first_file_under(tmp_path("cache/lua"));
        if (strcmp(a, fx) != 0) {
            fy = strdup(a);
        } else {
            const char *out = sh_run(str_fmt("find %s -type f ! -path %s",
                                             sh_quote(tmp_path("cache/lua")),
                                             sh_quote(fx)), NULL);
            fy = strndup(out, strcspn(out, "\n"));
        }
    }
    /* y's bytecode (with y's header) where x's belongs. */
    file_copy(fy, fx);
    h = vhost(&l2, 0, NULL, dir);
    if (strcmp(call_ok(import_ok(h, "x"), "v", NULL), "\"x\"") != 0)
        FAIL("x ran y's cached bytecode; log:%s", log_capture_dump(&l2));
    mh_host_free(h);
    free(fx);
    free(fy);
    log_capture_free(&l1);
    log_capture_free(&l2);
}

/* A cache file another user could have written (another's, or writable
 * by others: the directory's check was made once, and a link above it
 * may since lead elsewhere) is not read: the module is compiled, and the
 * file made again, ours. */
static void foreign_cache_file_not_read(bool chown_it, mode_t mode,
                                        const char *why)
{
    const char *dir = tmp_mkdir("E");
    log_capture l1, l2;
    mh_host *h;

    lua_write("E/fc.lua", "return { v = function() return 'fc' end }\n");
    log_capture_init(&l1);
    log_capture_init(&l2);
    h = vhost(&l1, 0, NULL, dir);
    import_ok(h, "fc");
    mh_host_free(h);
    char *f = strdup(first_file_under(tmp_path("cache/lua")));
    if (chown_it && lchown(f, 65534, (gid_t)-1) != 0)
        FAIL("lchown %s: %s", f, strerror(errno));
    if (chmod(f, mode) != 0)
        FAIL("chmod %s: %s", f, strerror(errno));
    h = vhost(&l2, 0, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "fc"), "v", NULL), "\"fc\"");
    ASSERT_LOG(&l2, MH_LOG_WARN, "not reading the cache file");
    ASSERT_LOG(&l2, MH_LOG_WARN, why);
    ASSERT_LOG(&l2, -1, "compiled");
    if (log_capture_count(&l2, -1, "bytecode from cache") != 0)
        FAIL("the foreign cache file was read; log:%s",
             log_capture_dump(&l2));
    mh_host_free(h);
    struct stat st;
    if (lstat(f, &st) != 0 || st.st_uid != geteuid() ||
        (st.st_mode & 077) != 0)
        FAIL("%s was not made again, ours and private", f);
    free(f);
    log_capture_free(&l1);
    log_capture_free(&l2);
}

TEST(cache_file_writable_by_others_not_read)
{
    foreign_cache_file_not_read(false, 0666, "writable by group or others");
}

TEST(cache_file_of_another_user_not_read)
{
    if (geteuid() != 0) {
        printf("skip: lua.cache_file_of_another_user_not_read (not root: "
               "needs chown)\n");
        return;
    }
    foreign_cache_file_not_read(true, 0600, "owned by another user");
}

typedef struct importer {
    mh_host *host;
    mh_module *mod;
    int bad;
    char msg[256];
} importer;

static void *import_worker(void *arg)
{
    importer *w = arg;
    mh_error *err = NULL;
    mh_status st = mh_import(w->host, "ti", &w->mod, &err);
    if (st != MH_OK) {
        snprintf(w->msg, sizeof w->msg, "%s: %s", mh_status_name(st),
                 mh_error_message(err));
        w->bad = 1;
    }
    mh_error_free(err);
    return NULL;
}

TEST(threads_import_runs_chunk_once)
{
    const char *dir = tmp_mkdir("E");
    const char *mark = tmp_path("mark");
    mh_host *host;
    pthread_t t[4];
    importer w[4];

    lua_write("E/ti.lua", marked_src(mark, "'ti'"));
    host = host_new_isolated(dir);
    for (int i = 0; i < 4; i++) {
        w[i] = (importer){.host = host};
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, import_worker, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++) {
        if (w[i].bad)
            FAIL("thread %d: %s", i, w[i].msg);
        ASSERT_EQ_PTR(w[i].mod, w[0].mod);
    }
    ASSERT_EQ_INT(line_count(mark), 1);
    ASSERT_EQ_STR(call_ok(w[0].mod, "v", NULL), "\"ti\"");
    mh_host_free(host);
}

TEST(host_free_with_lua_modules_after_errors)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_module *mod;

    lua_write("E/ok.lua", "return { v = function() return 1 end }\n");
    lua_write("E/bad.lua", "return {\n");
    lua_write("E/boom.lua", "error('x')\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "ok");
    import_fails(host, "bad");
    import_fails(host, "boom");
    ASSERT_EQ_INT(call_fails(mod, "nothere", NULL), MH_ENOSYM);
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "1");
    ASSERT_EQ_INT(mh_host_module_count(host), 1);
    mh_host_free(host);
}

/* ------------------------------------------- review: bad-input sweep */

static int count_failure(void *ud, const mh_failure *f)
{
    (void)f;
    ++*(size_t *)ud;
    return 0;
}

TEST(a_require_chain_too_deep_is_an_error_not_a_crash)
{
    /* Each module requires the next while it loads.  Each level runs on
     * a Lua thread of its own, so Lua's own C-stack guard never trips,
     * and a few thousand levels took the stack (a crash): the host stops
     * at 200, as Lua's C calls do.  Not one module of the chain is
     * recorded as broken: each failed for the next one's sake. */
    for (int i = 0; i < 250; i++)
        lua_write(str_fmt("c%d.lua", i),
                  str_fmt("local n = require 'c%d'\n"
                          "return {f = function() return n.f() end}\n",
                          i + 1));
    lua_write("c250.lua", "return {f = function() return 1 end}\n");
    mh_host *host = host_new_isolated(tmp_dir());
    mh_module *mod = (mh_module *)1;
    /* the limit's MH_ECYCLE, passed up through every chunk */
    ASSERT_STATUS(mh_import(host, "c0", &mod, ERR), MH_ECYCLE);
    ASSERT_CONTAINS(ERR_MSG(), "cannot import 'c200' from 'c199': imports "
                               "nested 200 deep");
    ASSERT_NULL(mod);
    ASSERT_NULL(mh_host_module(host, "c0"));
    size_t recorded = 0;
    ASSERT_STATUS(mh_host_failures(host, count_failure, &recorded, ERR),
                  MH_OK);
    ASSERT_EQ_INT(recorded, 0);
    /* a chain within the limit works */
    lua_write("d0.lua", "local n = require 'c60'\n"
                        "return {f = function() return n.f() end}\n");
    ASSERT_EQ_STR(call_ok(import_ok(host, "d0"), "f", NULL), "1");
    mh_host_free(host);
}

typedef struct chain_job {
    mh_host *host;
    mh_status rc;
    char msg[4096];
} chain_job;

static void *import_chain(void *p)
{
    chain_job *j = p;
    mh_module *mod = NULL;
    mh_error *e = NULL;
    j->rc = mh_import(j->host, "s0", &mod, &e);
    snprintf(j->msg, sizeof j->msg, "%s", e ? mh_error_message(e) : "");
    mh_error_free(e);
    return NULL;
}

/* The chain below imported on a thread of stack_kib KiB of stack. */
static void chain_on_a_thread_of(size_t stack_kib)
{
    for (int i = 0; i < 199; i++)
        lua_write(str_fmt("s%d.lua", i),
                  str_fmt("local function nest(k)\n"
                          "  if k == 0 then return require 's%d' end\n"
                          "  local ok, r = pcall(nest, k - 1)\n"
                          "  if not ok then error(r, 0) end\n"
                          "  return r\n"
                          "end\n"
                          "local n = nest(150)\n"
                          "return {f = function() return n.f() end}\n",
                          i + 1));
    lua_write("s199.lua", "return {f = function() return 1 end}\n");
    chain_job j = {.host = host_new_isolated(tmp_dir())};
    pthread_attr_t a;
    pthread_t t;
    ASSERT_EQ_INT(pthread_attr_init(&a), 0);
    ASSERT_EQ_INT(pthread_attr_setstacksize(&a, stack_kib * 1024), 0);
    ASSERT_EQ_INT(pthread_create(&t, &a, import_chain, &j), 0);
    pthread_join(t, NULL);
    pthread_attr_destroy(&a);
    /* The guard's MH_ECYCLE, passed up through every chunk it failed */
    ASSERT_EQ_INT(j.rc, MH_ECYCLE);
    if (!strstr(j.msg, "of this thread's stack left"))
        FAIL("not the stack guard: %s", j.msg);
    ASSERT_NULL(mh_host_module(j.host, "s0"));
    mh_host_free(j.host);
}

TEST(a_require_chain_that_would_take_the_stack_is_an_error_not_a_crash)
{
    /* Within the depth limit, but each level nests 150 pcalls before it
     * requires the next (under Lua's own limit of 200 C calls, which
     * starts again on each module's Lua thread), on a thread of 1 MiB of
     * stack: the stack ran out (SIGSEGV) long before 200 levels.  The
     * host now refuses an import with too little stack left. */
    chain_on_a_thread_of(1024);
}

TEST(a_require_chain_on_a_small_stack_is_guarded_too)
{
    /* The same on 800 KiB: the guard kept its whole reserve (768 KiB in
     * an ASan build) and switched itself off on such threads as "bounds
     * not to be trusted"; the reserve is now at most a quarter of the
     * thread's stack. */
    chain_on_a_thread_of(800);
}

TEST(a_table_with_holes_and_other_keys_is_no_array)
{
    /* #t was taken for proof the keys were 1..n: {1, nil, 3, 4, x = ..}
     * has four keys and a border of 4, and came out as [1,null,3,4]. */
    lua_write("holes.lua",
              "local M = {}\n"
              "function M.a() local t = {1, 2, 3, 4} t[2] = nil "
              "t.x = 'lost' return t end\n"
              "function M.b() return {1, 2, 3} end\n"
              "function M.c() local t = {1, 2, 3} t[2] = nil return t end\n"
              "return M\n");
    mh_host *host = host_new_isolated(tmp_dir());
    mh_module *mod = import_ok(host, "holes");
    ASSERT_STATUS(call_fails(mod, "a", NULL), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "a table with other keys");
    ASSERT_EQ_STR(call_ok(mod, "b", NULL), "[1,2,3]");
    ASSERT_STATUS(call_fails(mod, "c", NULL), MH_EFORMAT);
    mh_host_free(host);
}

TEST(a_result_shared_at_every_level_is_refused_before_memory_is)
{
    /* t = {t, t} forty times is 2^40 values in JSON, within the depth
     * limit: refused once it passes a million. */
    lua_write("bomb.lua",
              "return {f = function() local t = {} "
              "for i = 1, 40 do t = {t, t} end return t end,\n"
              "        g = function() local t = {} "
              "for i = 1, 10 do t = {t, t} end return t end}\n");
    mh_host *host = host_new_isolated(tmp_dir());
    mh_module *mod = import_ok(host, "bomb");
    ASSERT_STATUS(call_fails(mod, "f", NULL), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "over 1000000 values");
    /* [t, t] of {}: 5 * 2^k - 3 bytes at level k */
    ASSERT_EQ_INT(strlen(call_ok(mod, "g", NULL)), 5 * 1024 - 3);
    mh_host_free(host);
}

TEST(strings_that_are_not_utf8_get_a_replacement_character_per_bad_byte)
{
    /* A JSON string is Unicode, a Lua string bytes: each byte that is no
     * part of a UTF-8 sequence becomes U+FFFD (as Go's encoding/json
     * does), in values and keys; they were printed raw, which is no
     * JSON. */
    lua_write("bytes.lua",
              "return {bin = function() return '\\xff\\xfe' end,\n"
              "        key = function() return {['\\xc0\\x80'] = 1} end,\n"
              "        sur = function() return '\\xed\\xa0\\x80' end,\n"
              "        ok = function() return 'h\\xc3\\xa9' end}\n");
    mh_host *host = host_new_isolated(tmp_dir());
    mh_module *mod = import_ok(host, "bytes");
#define FFFD "\xef\xbf\xbd"
    ASSERT_EQ_STR(call_ok(mod, "bin", NULL), "\"" FFFD FFFD "\"");
    ASSERT_EQ_STR(call_ok(mod, "key", NULL), "{\"" FFFD FFFD "\":1}");
    ASSERT_EQ_STR(call_ok(mod, "sur", NULL), "\"" FFFD FFFD FFFD "\"");
#undef FFFD
    ASSERT_EQ_STR(call_ok(mod, "ok", NULL), "\"h\xc3\xa9\"");
    mh_host_free(host);
}

TEST(a_chunk_that_fails_leaves_nothing_in_package_loaded)
{
    /* It put its table there (as a module breaking a require cycle
     * does), then failed: require must not take that for loaded. */
    lua_write("halfa.lua", "local M = {}\npackage.loaded['halfa'] = M\n"
                           "error('init failed')\n");
    lua_write("probe.lua",
              "return {f = function()\n"
              "  local ok1 = pcall(require, 'halfa')\n"
              "  local ok2, v = pcall(require, 'halfa')\n"
              "  return {ok1, ok2, package.loaded['halfa'] == nil}\n"
              "end}\n");
    mh_host *host = host_new_isolated(tmp_dir());
    ASSERT_EQ_STR(call_ok(import_ok(host, "probe"), "f", NULL),
                  "[false,false,true]");
    mh_host_free(host);
}

TEST(an_error_object_with_tostring_is_said_through_it)
{
    lua_write("errs.lua",
              "local E = setmetatable({}, {__tostring = function() "
              "return 'custom failure 42' end})\n"
              "return {f = function() error(E) end,\n"
              "        g = function() error({}) end}\n");
    mh_host *host = host_new_isolated(tmp_dir());
    mh_module *mod = import_ok(host, "errs");
    ASSERT_STATUS(call_fails(mod, "f", NULL), MH_ECALL);
    ASSERT_CONTAINS(ERR_MSG(), "custom failure 42");
    ASSERT_STATUS(call_fails(mod, "g", NULL), MH_ECALL);
    ASSERT_CONTAINS(ERR_MSG(), "error object is a table value");
    mh_host_free(host);
}

TEST(the_registry_holds_nothing_lua_code_can_break_the_host_with)
{
    /* The host was found under a registry key: cleared through
     * debug.getregistry, the next loadfile crashed. */
    lua_write("lib.lua", "return 5\n");
    lua_write("lib2.lua", "return {v = 6}\n");
    lua_write("reg.lua",
              str_fmt("return {f = function()\n"
                      "  for k in pairs(debug.getregistry()) do\n"
                      "    if type(k) == 'string' then "
                      "debug.getregistry()[k] = nil end\n"
                      "  end\n"
                      "  pcall(modhost.import, 'lib2')\n"
                      "  return loadfile('%s')()\n"
                      "end}\n", tmp_path("lib.lua")));
    mh_host *host = host_new_isolated(tmp_dir());
    mh_module *mod = import_ok(host, "reg");
    /* whatever else clearing the registry breaks, the host stands */
    cJSON *res = NULL;
    mh_status st = mh_module_call(mod, "f", NULL, &res, ERR);
    ASSERT_TRUE(st == MH_OK || st == MH_ECALL);
    if (st == MH_OK)
        ASSERT_EQ_INT(res->valuedouble, 5);
    cJSON_Delete(res);
    mh_host_free(host);
}

TEST(a_lua_module_has_no_c_symbols_and_says_how_to_call_it)
{
    /* `modhost run` on a Lua module with a main said only "has no export
     * 'main'". */
    lua_write("withmain.lua", "return {main = function() return 0 end}\n");
    mh_host *host = host_new_isolated(tmp_dir());
    mh_module *mod = import_ok(host, "withmain");
    void *sym = (void *)1;
    ASSERT_STATUS(mh_module_symbol_ex(mod, "main", &sym, ERR), MH_ENOSYM);
    ASSERT_NULL(sym);
    ASSERT_CONTAINS(ERR_MSG(), "it is a Lua module");
    ASSERT_CONTAINS(ERR_MSG(), "mh_module_call");
    mh_host_free(host);
}
