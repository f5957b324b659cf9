/*
 * test_lua_require.c -- Lua modules requiring other modules: siblings of a
 * Lua package stored in a module database or served over HTTP, found
 * through the host's own searcher, with package.loaded agreeing with the
 * host's registry; a require cycle reported as a chain; stock Lua C modules
 * (Debian's lua-filesystem) from Lua's package.cpath and from the host's
 * search path; a stock pure-Lua library (Debian's lua-inspect) packed into
 * a database; and the `modhost` Lua library (version, log, import, call).
 *
 * Every Lua source of our own is written by the case, in its temp
 * directory; the Debian files are copied there unmodified.
 */
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <modhost/finder.h>

#include "support/support.h"
#include "test.h"

#define DEBIAN_LFS "/usr/lib/x86_64-linux-gnu/lua/5.4/lfs.so"
#define DEBIAN_INSPECT "/usr/share/lua/5.3/inspect.lua"

/* ------------------------------------------------------------- helpers */



/* Like call_ok, but the result must be a JSON string: returns its value. */
static const char *call_str(mh_module *mod, const char *fn, const char *args)
{
    cJSON *a = NULL, *res = NULL;
    const char *out;

    if (args != NULL && (a = cJSON_Parse(args)) == NULL)
        FAIL("bad JSON in the test: %s", args);
    ASSERT_STATUS(mh_module_call(mod, fn, a, &res, ERR), MH_OK);
    cJSON_Delete(a);
    if (res == NULL || !cJSON_IsString(res)) {
        char *text = res ? cJSON_PrintUnformatted(res) : NULL;
        const char *shown = str_fmt("%s", text ? text : "(null)");
        free(text);
        cJSON_Delete(res);
        FAIL("%s(%s) returned %s, not a string", fn, args ? args : "", shown);
    }
    out = str_fmt("%s", res->valuestring);
    cJSON_Delete(res);
    return out;
}


/* The package app: app/util.lua keeps a counter (so a second copy of it
 * would show), app/main.lua requires it as a sibling. */
static const char UTIL_SRC[] =
    "local M = {}\n"
    "local n = 0\n"
    "function M.double(x) return 2 * x end\n"
    "function M.bump() n = n + 1; return n end\n"
    "function M.count() return n end\n"
    "return M\n";

static const char MAIN_SRC[] =
    "local u = require('app.util')\n"
    "local M = {}\n"
    "function M.twice(x) return u.double(x) end\n"
    "function M.bump() return u.bump() end\n"
    "function M.same()\n"
    "  return package.loaded['app.util'] == require('app.util')\n"
    "end\n"
    "function M.same_as_host()\n"
    "  return package.loaded['app.util'] == u\n"
    "     and modhost.import('app.util') == u\n"
    "end\n"
    "function M.self_loaded() return package.loaded['app.main'] == M end\n"
    "return M\n";

/* What cases 1 and 2 check once the host can see the package app. */
static void check_app_package(mh_host *host, const char *finder)
{
    mh_module *main_mod, *util_mod;

    ASSERT_NULL(mh_host_module(host, "app.util"));
    main_mod = import_ok(host, "app.main");
    ASSERT_EQ_INT(mh_module_kind_of(main_mod), MH_KIND_LUA);
    ASSERT_EQ_STR(mh_module_finder(main_mod), finder);

    /* The sibling was imported through the host, from the same finder. */
    util_mod = mh_host_module(host, "app.util");
    ASSERT_NOT_NULL(util_mod);
    ASSERT_EQ_INT(mh_module_kind_of(util_mod), MH_KIND_LUA);
    ASSERT_EQ_STR(mh_module_finder(util_mod), finder);
    ASSERT_CONTAINS(mh_module_origin(util_mod), "app/util.lua");
    ASSERT_EQ_PTR(import_ok(host, "app.util"), util_mod);

    /* Calls through main reach util. */
    ASSERT_EQ_STR(call_ok(main_mod, "twice", "[21]"), "42");
    /* package.loaded, require and the host's module are one table. */
    ASSERT_EQ_STR(call_ok(main_mod, "same", NULL), "true");
    ASSERT_EQ_STR(call_ok(main_mod, "same_as_host", NULL), "true");
    ASSERT_EQ_STR(call_ok(main_mod, "self_loaded", NULL), "true");
    /* One util, one state: bumps through main show in the host's util. */
    ASSERT_EQ_STR(call_ok(main_mod, "bump", NULL), "1");
    ASSERT_EQ_STR(call_ok(main_mod, "bump", NULL), "2");
    ASSERT_EQ_STR(call_ok(util_mod, "count", NULL), "2");
    ASSERT_EQ_STR(call_ok(util_mod, "bump", NULL), "3");
    ASSERT_EQ_STR(call_ok(main_mod, "bump", NULL), "4");
}

/* ---------------------------------------------- siblings in a database */

TEST(database_package_requires_sibling)
{
    const char *stage = tmp_mkdir("stage");
    const char *db = tmp_path("app.db");
    mh_host *host;

    lua_write("stage/app/main.lua", MAIN_SRC);
    lua_write("stage/app/util.lua", UTIL_SRC);
    db_pack(db, stage);
    ASSERT_EQ_STR(db_exec(db, "SELECT count(*) FROM sqlar WHERE name IN "
                              "('app/main.lua', 'app/util.lua')"), "2");
    host = host_new_isolated(str_fmt("sqlite:%s", db));
    check_app_package(host, "sqlite");
    ASSERT_EQ_STR(mh_module_origin(mh_host_module(host, "app.util")),
                  str_fmt("%s!/app/util.lua", db));
    mh_host_free(host);
}

/* ------------------------------------------------- siblings over HTTP */

TEST(http_package_requires_sibling)
{
    const char *www = tmp_mkdir("www");
    http_server *srv;
    log_capture lc;
    mh_host *host;

    http_no_proxy_env();
    lua_write("www/app/main.lua", MAIN_SRC);
    lua_write("www/app/util.lua", UTIL_SRC);
    http_index_dir(www, NULL);
    srv = http_start(www, NULL);
    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    check_app_package(host, "http");
    /* util came from the server, not from somewhere else. */
    if (http_requests(srv, "app/util.lua") == 0)
        FAIL("app/util.lua was never fetched; server log:\n%s",
             http_log_text(srv));
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* ------------------------------------------------- native from Lua */

/* Lua: try(fn, ...) is "true: RESULT" or "false: ERROR", for a test to
 * see an error a call raised. */
#define LUA_TRY                                                           \
    "local function try(fn, ...)\n"                                        \
    "  local ok, e = pcall(fn, ...)\n"                                     \
    "  return tostring(ok) .. ': ' .. tostring(e)\n"                       \
    "end\n"

/* A native module's MH_CALL functions, from Lua: modhost.import and
 * require give a table of them, JSON values in and out (as
 * mh_module_call); its error is raised, and pcall catches it; a native
 * module with neither luaopen_* nor MH_CALL functions is an error that
 * says so. */
TEST(native_call_functions_from_lua)
{
    const char *dir = tmp_mkdir("E");
    lua_write("E/usenative.lua",
              "local r = modhost.import('codecs.rot13')\n"
              "local same = require('codecs.rot13')\n" LUA_TRY
              "return {\n"
              "  enc = function(s) return r.encode(s) end,\n"
              "  same = function() return same == r end,\n"
              "  bad = function() return try(r.encode, 1, 2) end,\n"
              "  nojson = function() return try(r.encode, print) end,\n"
              "  hello = function() return try(modhost.import, 'hello') end,\n"
              "}\n");
    mh_host *host = host_new_isolated(dir, MH_TEST_PLUGIN_DIR);
    mh_module *mod = import_ok(host, "usenative");
    ASSERT_EQ_STR(call_ok(mod, "enc", "[\"Hello\"]"), "\"Uryyb\"");
    ASSERT_EQ_STR(call_ok(mod, "same", NULL), "true");
    const char *bad = call_ok(mod, "bad", NULL);
    ASSERT_CONTAINS(bad, "\"false: codecs.rot13.encode (");
    ASSERT_CONTAINS(bad, "failed: encode takes one string\"");
    const char *nojson = call_ok(mod, "nojson", NULL);
    ASSERT_CONTAINS(nojson, "false: ");
    ASSERT_CONTAINS(nojson, "codecs.rot13.encode: argument 1 (function) "
                            "has no JSON form");
    const char *hello = call_ok(mod, "hello", NULL);
    ASSERT_CONTAINS(hello, "false: ");
    ASSERT_CONTAINS(hello, "without luaopen_hello or MH_CALL functions");
    mh_host_free(host);
}

/* A native call from Lua that runs out of memory (here: the host cannot
 * copy its result, 54,321 encoded letters and their quotes) fails the
 * mh_module_call or import that ran the Lua code with MH_ENOMEM, as Lua's
 * own memory errors do -- not MH_ECALL or MH_EINIT, as if the Lua code
 * were at fault -- and the module is not recorded as broken.  Lua code
 * that catches the error and raises its own fails as its own. */
TEST(native_out_of_memory_from_lua_stays_out_of_memory)
{
    const char *dir = tmp_mkdir("E");
    lua_write("E/callnom.lua",
              "local r = modhost.import('codecs.rot13')\n"
              "return {\n"
              "  big = function(n) return #r.encode(string.rep('a', n)) end,\n"
              "  mine = function(n)\n"
              "    local ok = pcall(r.encode, string.rep('a', n))\n"
              "    error('mine: ' .. tostring(ok), 0)\n"
              "  end,\n"
              "  more = function(n)\n"
              "    local ok, e = pcall(r.encode, string.rep('a', n))\n"
              "    error(e .. ' -- and mine', 0)\n"
              "  end,\n"
              "  again = function(n)\n"
              "    local ok, e = pcall(r.encode, string.rep('a', n))\n"
              "    error(e, 0)\n"
              "  end,\n"
              "}\n");
    lua_write("E/loadnom.lua",
              "local r = modhost.import('codecs.rot13')\n"
              "local x = r.encode(string.rep('a', 54321))\n"
              "return {n = function() return #x end}\n");
    /* Caught, then broken for its own reasons: recorded as broken. */
    lua_write("E/brk.lua",
              "local r = modhost.import('codecs.rot13')\n"
              "pcall(r.encode, string.rep('a', 54321))\n"
              "error('genuinely broken', 0)\n");
    /* And one that raised its words with more of its own. */
    lua_write("E/brk3.lua",
              "local r = modhost.import('codecs.rot13')\n"
              "local ok, e = pcall(r.encode, string.rep('a', 54321))\n"
              "error(e .. ' -- mine', 0)\n");
    /* So is one that caught a failed import. */
    lua_write("E/failing.lua", "error('failing on purpose', 0)\n");
    lua_write("E/brk2.lua", "pcall(modhost.import, 'failing')\n"
                            "error('broken too', 0)\n");
    alloc_tracker at;
    alloc_tracker_init(&at);
    mh_config cfg =
        tracked_config(&at, str_fmt("%s;%s", dir, MH_TEST_PLUGIN_DIR));
    cfg.cache_dir = tmp_path("cache");
    mh_host *host = NULL;
    ASSERT_STATUS(mh_host_new(&cfg, &host, ERR), MH_OK);
    mh_module *mod = import_ok(host, "callnom");
    ASSERT_EQ_STR(call_ok(mod, "big", "[54321]"), "54321");

    at.only_size = 54321 + 3; /* the result's JSON text: quotes and NUL */
    at.fail_at = 1;           /* every one */
    ASSERT_STATUS(call_fails(mod, "big", "[54321]"), MH_ENOMEM);
    ASSERT_CONTAINS(ERR_MSG(), "out of memory in codecs.rot13.encode");
    ASSERT_STATUS(call_fails(mod, "mine", "[54321]"), MH_ECALL);
    ASSERT_CONTAINS(ERR_MSG(), "mine: false");
    /* Its words and more of its own: its own failure; its very words
     * (error(e, 0)): passed on. */
    ASSERT_STATUS(call_fails(mod, "more", "[54321]"), MH_ECALL);
    ASSERT_CONTAINS(ERR_MSG(), "-- and mine");
    ASSERT_STATUS(call_fails(mod, "again", "[54321]"), MH_ENOMEM);
    ASSERT_STATUS(import_fails(host, "loadnom"), MH_ENOMEM);
    ASSERT_CONTAINS(ERR_MSG(), "out of memory in codecs.rot13.encode");
    ASSERT_STATUS(import_fails(host, "brk"), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "genuinely broken");
    ASSERT_STATUS(import_fails(host, "brk2"), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "broken too");
    ASSERT_STATUS(import_fails(host, "brk3"), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "-- mine");
    disc_fails fails;
    disc_failures(host, &fails);
    ASSERT_NOT_NULL(disc_fail_find(&fails, "brk"));
    ASSERT_NOT_NULL(disc_fail_find(&fails, "brk2"));
    ASSERT_NOT_NULL(disc_fail_find(&fails, "brk3"));
    ASSERT_NOT_NULL(disc_fail_find(&fails, "failing"));
    ASSERT_NULL(disc_fail_find(&fails, "loadnom"));

    /* The result, 54,321 letters, has no room in Lua: the second string of
     * that length (the first is the argument). */
    at.only_size = 24 + 54321 + 1; /* a long Lua string: header, bytes,
                                      NUL */
    at.requests = 0;
    at.fail_at = 2; /* and after: Lua asks again after a collection */
    ASSERT_STATUS(call_fails(mod, "big", "[54321]"), MH_ENOMEM);
    ASSERT_CONTAINS(ERR_MSG(), "out of memory in codecs.rot13.encode: its "
                               "result has no room in Lua");

    at.fail_at = 0; /* memory again: nothing was held against either */
    ASSERT_EQ_STR(call_ok(mod, "big", "[12]"), "12");
    ASSERT_EQ_STR(call_ok(import_ok(host, "loadnom"), "n", NULL), "54321");
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
}

/* cJSON's allocator is the application's to set (cJSON_InitHooks); the
 * library makes its JSON through it.  This one fails requests of one
 * size. */
static size_t cjson_fail_size;

static void *cjson_size_failing_malloc(size_t n)
{
    return n == cjson_fail_size ? NULL : malloc(n);
}

/* Running out of memory while turning Lua values into JSON -- a native
 * call's arguments (a string, a table's key) or a Lua function's result
 * -- fails with MH_ENOMEM, not as a value with no JSON form (MH_ECALL,
 * MH_EFORMAT), and an import whose chunk meets it is not recorded as
 * broken. */
TEST(out_of_memory_turning_lua_values_into_json_stays_out_of_memory)
{
    const char *dir = tmp_mkdir("E");
    lua_write("E/jnom.lua",
              "local r = modhost.import('codecs.rot13')\n"
              "return {\n"
              "  arg = function(n) return #r.encode(string.rep('a', n)) end,\n"
              "  key = function(n)\n"
              "    return r.encode({[string.rep('k', n)] = 1})\n"
              "  end,\n"
              "  res = function(n) return string.rep('b', n) end,\n"
              "  bytes = function(n) return #r.encode(string.rep('\\255', n)) "
              "end,\n"
              "}\n");
    lua_write("E/jload.lua",
              "local r = modhost.import('codecs.rot13')\n"
              "local x = r.encode(string.rep('a', 54321))\n"
              "return {n = function() return #x end}\n");
    mh_host *host = host_new_isolated(dir, MH_TEST_PLUGIN_DIR);
    mh_module *mod = import_ok(host, "jnom");

    cjson_fail_size = 54321 + 1; /* cJSON's copy of the string */
    /* Each failure's status and message, checked once the hook is gone. */
    struct got { const char *what; mh_status st; const char *msg, *says; };
    struct got got[5];
    size_t n = 0;
#define GOT(what_, st_, says_)                                            \
    do {                                                                  \
        mh_status st_of_ = (st_); /* before the message is read */        \
        got[n++] = (struct got){(what_), st_of_, str_fmt("%s", ERR_MSG()), \
                                (says_)};                                 \
    } while (0)
    cJSON_InitHooks(&(cJSON_Hooks){cjson_size_failing_malloc, free});
    GOT("arg", call_fails(mod, "arg", "[54321]"), "out of memory in "
        "codecs.rot13.encode: turning its arguments into JSON");
    GOT("key", call_fails(mod, "key", "[54321]"),
        "out of memory in codecs.rot13.encode");
    GOT("res", call_fails(mod, "res", "[54321]"), "jnom.res: out of memory "
        "turning its result (a string) into JSON");
    GOT("jload", import_fails(host, "jload"),
        "out of memory in codecs.rot13.encode");
    cjson_fail_size = 3 * 54321 + 1; /* the bytes as UTF-8, each U+FFFD */
    GOT("bytes", call_fails(mod, "bytes", "[54321]"),
        "out of memory in codecs.rot13.encode");
    cJSON_InitHooks(NULL);
#undef GOT
    for (size_t i = 0; i < n; i++)
        if (got[i].st != MH_ENOMEM || !strstr(got[i].msg, got[i].says))
            FAIL("%s: %s, expected MH_ENOMEM saying \"%s\"; message: %s",
                 got[i].what, mh_status_name(got[i].st), got[i].says,
                 got[i].msg);
    disc_fails fails;
    disc_failures(host, &fails);
    ASSERT_NULL(disc_fail_find(&fails, "jload"));

    /* With memory: the same calls and import work, or fail as the values'
     * own (a table is no string to rot13). */
    ASSERT_EQ_STR(call_ok(mod, "arg", "[54321]"), "54321");
    ASSERT_EQ_STR(call_ok(mod, "res", "[3]"), "\"bbb\"");
    ASSERT_EQ_STR(call_ok(mod, "bytes", "[54321]"), "162963");
    ASSERT_STATUS(call_fails(mod, "key", "[3]"), MH_ECALL);
    ASSERT_EQ_STR(call_ok(import_ok(host, "jload"), "n", NULL), "54321");
    mh_host_free(host);
}

/* Every allocation that fails while a call runs -- its arguments made
 * Lua values, the Lua function, its result made JSON, a native function
 * called from it and its result made Lua values again, values nested 60
 * deep each way -- fails the call with MH_ENOMEM or is got past, never
 * reads as a value with no JSON form or a Lua error of the function's.
 * Each request of the call is made to fail in turn. */
TEST(every_allocation_failing_in_a_call_is_out_of_memory)
{
    const char *dir = tmp_mkdir("E");
    lua_write("E/deep.lua",
              "local raw = modhost.import('raw_result')\n"
              "local function depth(t)\n"
              "  local d = 0\n"
              "  while type(t) == 'table' do d = d + 1; t = t.a or t[1] end\n"
              "  return d\n"
              "end\n"
              "return {\n"
              "  give = function(n)\n"
              "    local t = {}; local c = t\n"
              "    for i = 2, n do c.a = {}; c = c.a end\n"
              "    return t\n"
              "  end,\n"
              "  take = depth,\n"
              "  fetch = function(n) return depth(raw.nested(n)) end,\n"
              "}\n");
    alloc_tracker at;
    alloc_tracker_init(&at);
    mh_config cfg =
        tracked_config(&at, str_fmt("%s;%s", dir, MH_TEST_FIXTURE_DIR));
    mh_host *host = host_new_cfg(&cfg);
    mh_module *mod = import_ok(host, "deep");
    const char *arg = "{}"; /* {"a": ...}, 60 deep */
    for (int i = 1; i < 60; i++)
        arg = str_fmt("{\"a\":%s}", arg);
    arg = str_fmt("[%s]", arg);
    struct { const char *fn, *args, *want; } calls[] = {
        {"give", "[60]", NULL},
        {"take", arg, "60"},
        {"fetch", "[60]", "60"},
    };
    for (size_t c = 0; c < sizeof calls / sizeof calls[0]; c++)
        if (calls[c].want)
            ASSERT_EQ_STR(call_ok(mod, calls[c].fn, calls[c].args),
                          calls[c].want);
    /* Each request failing with every later one, or with the next one to
     * three: memory short for a moment, which Lua's retry after a
     * collection does not get past, and the error's own message, or the
     * record of the failure, then has room. */
    enum { WIDTHS = 4 };
    for (size_t c = 0; c < WIDTHS * sizeof calls / sizeof calls[0]; c++) {
        long width = (long)(c % WIDTHS); /* 0: for good */
        for (long n = 1;; n++) {
            at.requests = at.injected = 0;
            at.fail_at = n;
            at.fail_until = width ? n + width : 0;
            cJSON *a = cJSON_Parse(calls[c / WIDTHS].args), *res = NULL;
            ASSERT_NOT_NULL(a);
            mh_status st =
                mh_module_call(mod, calls[c / WIDTHS].fn, a, &res, ERR);
            at.fail_at = 0;
            cJSON_Delete(a);
            cJSON_Delete(res);
            if (st != MH_OK && st != MH_ENOMEM)
                FAIL("%s with request %ld failing (and %s): %s, not out of "
                     "memory: %s", calls[c / WIDTHS].fn, n,
                     width ? str_fmt("the next %ld", width) : "every later",
                     mh_status_name(st), ERR_MSG());
            if (!at.injected)
                break; /* every request of the call has failed once */
        }
    }
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
}

/* Lua code deep in recursion can fill Lua's own stack (a million slots)
 * with memory to spare: a native function's result that finds no room
 * left there fails as the Lua code's own error ("nested too deep for
 * Lua"), not as a shortage of memory passed up.  The Lua code recurses
 * with fat frames to near Lua's limit, then with thin ones, a few slots
 * at a time, so that some call meets the limit while its result is
 * made. */
TEST(a_full_lua_stack_is_no_memory_shortage)
{
    const char *dir = tmp_mkdir("E");
    const char *locals = "local a0";
    for (int i = 1; i < 190; i++) /* Lua's limit is 200 a function */
        locals = str_fmt("%s, a%d", locals, i);
    lua_write("E/fat.lua",
              str_fmt("local raw = modhost.import('raw_result')\n"
                      "local depth = 0\n"
                      "local function down(n, bottom)\n"
                      "  %s\n"
                      "  depth = depth + 1\n"
                      "  if n == 0 then return bottom() end\n"
                      "  local r = down(n - 1, bottom)\n"
                      "  return r\n"
                      "end\n"
                      "local function thin(m, f)\n"
                      "  if m == 0 then return f() end\n"
                      "  local r = thin(m - 1, f)\n"
                      "  return r\n"
                      "end\n"
                      "local function result() return raw.nested(60) end\n"
                      "return {probe = function()\n"
                      "  pcall(down, 1e9) -- to Lua's limit: stack overflow\n"
                      "  local max = depth\n"
                      "  local out = {}\n"
                      "  down(max - 3, function()\n"
                      "    for m = 0, 1000 do\n"
                      "      local ok, e = pcall(thin, m, result)\n"
                      "      e = ok and 'ok' or tostring(e):match('[^\\n]*')\n"
                      "      if e:find('stack overflow') then break end\n"
                      "      if e ~= out[#out] then out[#out + 1] = e end\n"
                      "    end\n"
                      "  end)\n"
                      "  return out\n"
                      "end}\n", locals));
    mh_host *host = host_new_isolated(dir, MH_TEST_FIXTURE_DIR);
    const char *got = call_ok(import_ok(host, "fat"), "probe", NULL);
    if (strstr(got, "no room") || !strstr(got, "nested too deep for Lua"))
        FAIL("calls from ever deeper in a nearly full Lua stack gave (each "
             "answer once, in turn): %s", got);
    mh_host_free(host);
}

/* Lua code may rewrite a closure's upvalues (debug.setupvalue): the
 * native functions and the host's loaders keep their module by name, so
 * a forged upvalue is an error, never a pointer followed (it was: a light
 * userdata Lua can get from debug.upvalueid was taken for the module). */
TEST(native_functions_survive_forged_upvalues)
{
    const char *dir = tmp_mkdir("E");
    lua_write("E/forge.lua",
              "local r = modhost.import('codecs.rot13')\n"
              "local any = debug.upvalueid(function() return r end, 1)\n"
              LUA_TRY
              "return {\n"
              "  module = function()\n"
              "    debug.setupvalue(r.encode, 1, any)\n"
              "    local got = try(r.encode, 'x')\n"
              "    debug.setupvalue(r.encode, 1, 'codecs.rot13')\n"
              "    return got .. ' / ' .. r.encode('Hi')\n"
              "  end,\n"
              "  name = function()\n"
              "    debug.setupvalue(r.encode, 2, {})\n"
              "    local got = try(r.encode, 'x')\n"
              "    debug.setupvalue(r.encode, 2, 'encode')\n"
              "    return got\n"
              "  end,\n"
              "  loader = function()\n"
              "    for _, s in ipairs(package.searchers) do\n"
              "      local l = s('codecs.rot13')\n"
              "      if type(l) == 'function' then\n"
              "        debug.setupvalue(l, 2, any)\n"
              "        return try(l, 'codecs.rot13')\n"
              "      end\n"
              "    end\n"
              "    return 'no loader'\n"
              "  end,\n"
              "}\n");
    mh_host *host = host_new_isolated(dir, MH_TEST_PLUGIN_DIR);
    mh_module *mod = import_ok(host, "forge");
    const char *got = call_ok(mod, "module", NULL);
    ASSERT_CONTAINS(got, "false: ");
    ASSERT_CONTAINS(got, "not one of a loaded module's");
    ASSERT_CONTAINS(got, " / Uv"); /* mended, it works again */
    ASSERT_CONTAINS(call_ok(mod, "name", NULL),
                    "false: this function's module or name is not one");
    ASSERT_CONTAINS(call_ok(mod, "loader", NULL),
                    "false: this loader's module is not loaded");
    mh_host_free(host);
}

/* A plugin named like one of Lua's own libraries (utf8) is still the
 * plugin to modhost.import and modhost.call, which Lua's package.loaded
 * would otherwise answer with the library. */
TEST(native_plugin_named_like_a_lua_library)
{
    const char *dir = tmp_mkdir("E");
    file_copy(str_fmt("%s/codecs/rot13.so", MH_TEST_PLUGIN_DIR),
              tmp_path("E/utf8.so"));
    lua_write("E/useu8.lua",
              "return {\n"
              "  imp = function() return modhost.import('utf8').encode('Hi')"
              " end,\n"
              "  call = function() return modhost.call('utf8', 'encode', "
              "'Hi') end,\n"
              "  lib = function() return utf8.char(72) end,\n"
              "}\n");
    mh_host *host = host_new_isolated(dir);
    mh_module *mod = import_ok(host, "useu8");
    ASSERT_EQ_STR(call_ok(mod, "imp", NULL), "\"Uv\"");
    ASSERT_EQ_STR(call_ok(mod, "call", NULL), "\"Uv\"");
    ASSERT_EQ_STR(call_ok(mod, "lib", NULL), "\"H\""); /* Lua's, still */
    mh_host_free(host);
}

/* -------------------------------------------------------------- cycles */

TEST(require_cycle_reports_chain)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_status st;

    lua_write("E/a.lua", "local b = require('b')\nreturn { b = b }\n");
    lua_write("E/b.lua", "local a = require('a')\nreturn { a = a }\n");
    host = host_new_isolated(dir);
    st = import_fails(host, "a");
    ASSERT_STATUS(st, MH_ECYCLE); /* through both chunks' failures */
    ASSERT_CONTAINS(ERR_MSG(), "a -> b -> a");
    ASSERT_NULL(mh_host_module(host, "a"));
    ASSERT_NULL(mh_host_module(host, "b"));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);

    /* Starting from b gives the other chain, and still nothing stays. */
    st = import_fails(host, "b");
    ASSERT_STATUS(st, MH_ECYCLE);
    ASSERT_CONTAINS(ERR_MSG(), "b -> a -> b");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);

    /* A chunk that catches the cycle and fails with words of its own
     * fails as itself: MH_EINIT. */
    lua_write("E/c.lua", "local ok = pcall(require, 'd')\n"
                         "error('c gives up', 0)\n");
    lua_write("E/d.lua", "return { c = require('c') }\n");
    host = host_new_isolated(dir);
    ASSERT_STATUS(import_fails(host, "c"), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "c gives up");
    mh_host_free(host);
}

/* An isolated host on dir whose log goes to lc. */
static mh_host *logged_host(const char *dir, log_capture *lc)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = dir;
    cfg.cache_dir = tmp_path("cache");
    cfg.log = log_capture_fn;
    cfg.log_ud = lc;
    return host_new_cfg(&cfg);
}

/* A module named like one of Lua's own libraries is imported and called
 * through the host, but package.loaded keeps Lua's library: every Lua
 * module's require("debug") would otherwise get the plugin. */
TEST(module_named_like_a_lua_library_does_not_replace_it)
{
    const char *dir = tmp_mkdir("E");
    log_capture lc;

    lua_write("E/debug.lua", "return { v = function() return 'plugin' end }\n");
    lua_write("E/user.lua",
              "return { v = function()\n"
              "  return type(require('debug').traceback) .. ' ' ..\n"
              "         type(package.loaded.debug.traceback)\n"
              "end }\n");
    log_capture_init(&lc);
    mh_host *host = logged_host(dir, &lc);
    ASSERT_EQ_STR(call_ok(import_ok(host, "user"), "v", NULL),
                  "\"function function\"");
    ASSERT_EQ_STR(call_ok(import_ok(host, "debug"), "v", NULL),
                  "\"plugin\"");
    ASSERT_EQ_STR(call_ok(mh_host_module(host, "user"), "v", NULL),
                  "\"function function\"");
    ASSERT_LOG(&lc, MH_LOG_WARN, "Lua's own library");
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A module that puts itself in package.loaded (to break a require cycle)
 * is published as usual, with no warning: the table there is its own. */
TEST(module_in_package_loaded_by_itself_is_published_quietly)
{
    const char *dir = tmp_mkdir("E");
    log_capture lc;

    lua_write("E/selfpub.lua", "local M = {}\n"
                               "package.loaded['selfpub'] = M\n"
                               "function M.v() return 'self' end\n"
                               "return M\n");
    lua_write("E/other.lua", "return { same = function()\n"
                             "  return require('selfpub') == modhost.import"
                             "('selfpub') and package.loaded.selfpub.v()\n"
                             "end }\n");
    log_capture_init(&lc);
    mh_host *host = logged_host(dir, &lc);
    ASSERT_EQ_STR(call_ok(import_ok(host, "selfpub"), "v", NULL), "\"self\"");
    ASSERT_EQ_STR(call_ok(import_ok(host, "other"), "same", NULL),
                  "\"self\"");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A directory of plugins on the host's path named like a Lua library on
 * package.path ("json/extra.lua" beside a json.lua library): the
 * namespace package was taken for the module, and require "json" failed
 * ("namespace code without luaopen_json or MH_CALL functions").  Lua's
 * other searchers are asked instead; with none to give it, require's
 * error says what the host found. */
TEST(namespace_directory_does_not_hide_a_package_path_library)
{
    const char *dir = tmp_mkdir("E");
    const char *lib = tmp_mkdir("lib");
    log_capture lc;

    lua_write("E/json/extra.lua", "return { v = function() return 1 end }\n");
    lua_write("lib/json.lua", "return { name = 'the json library' }\n");
    lua_write("E/user.lua",
              str_fmt("package.path = '%s/?.lua'\n"
                      "return { f = function()\n"
                      "  return require('json').name\n"
                      "end, g = function()\n"
                      "  local ok, e = pcall(require, 'json.nothere')\n"
                      "  package.path = ''\n"
                      "  package.loaded.json = nil\n"
                      "  local ok2, e2 = pcall(require, 'json')\n"
                      "  return tostring(ok2) .. ': ' .. tostring(e2)\n"
                      "end }\n", lib));
    log_capture_init(&lc);
    mh_host *host = logged_host(dir, &lc);
    mh_module *user = import_ok(host, "user");
    ASSERT_EQ_STR(call_ok(user, "f", NULL), "\"the json library\"");
    const char *g = call_str(user, "g", NULL);
    ASSERT_CONTAINS(g, "false: module 'json' not found");
    ASSERT_CONTAINS(g, "'json' on modhost's search path is a namespace "
                       "package");
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A module that puts a table in package.loaded (to break a require cycle)
 * and returns another (a proxy) is published as the one it returned, as
 * Lua's require does with a loader's value: package.loaded kept the first
 * while the host held the second, and a warning called the name one of
 * Lua's own libraries. */
TEST(module_returning_another_table_than_it_put_in_package_loaded)
{
    const char *dir = tmp_mkdir("E");
    log_capture lc;

    lua_write("E/proxied.lua",
              "local M = { v = function() return 'inner' end }\n"
              "package.loaded[...] = M\n"
              "return setmetatable({}, { __index = M })\n");
    lua_write("E/user.lua",
              "return { f = function()\n"
              "  local p = modhost.import('proxied')\n"
              "  return tostring(require('proxied') == p) .. ' ' ..\n"
              "         tostring(package.loaded.proxied == p) .. ' ' ..\n"
              "         p.v()\n"
              "end }\n");
    log_capture_init(&lc);
    mh_host *host = logged_host(dir, &lc);
    ASSERT_EQ_STR(call_ok(import_ok(host, "user"), "f", NULL),
                  "\"true true inner\"");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* Lua code required "lib" from package.path; a plugin named "lib" is
 * installed on the host's path later and imported by the application:
 * package.loaded keeps the library the Lua code already has (require
 * never replaces what package.loaded holds, and code that requires it
 * later must get what earlier code got), and a warning says why. */
TEST(plugin_imported_after_lua_required_its_name_leaves_the_library)
{
    const char *dir = tmp_mkdir("E");
    const char *ext = tmp_mkdir("ext");
    log_capture lc;

    lua_write("ext/lib.lua", "return { name = 'library' }\n");
    lua_write("E/user.lua",
              str_fmt("package.path = '%s/?.lua'\n"
                      "return { f = function()\n"
                      "  return require('lib').name\n"
                      "end }\n", ext));
    log_capture_init(&lc);
    mh_host *host = logged_host(dir, &lc);
    mh_module *user = import_ok(host, "user");
    ASSERT_EQ_STR(call_str(user, "f", NULL), "library");
    lua_write("E/lib.lua", "return { name = 'plugin' }\n");
    mh_module *lib = import_ok(host, "lib");
    ASSERT_EQ_INT(mh_module_kind_of(lib), MH_KIND_LUA);
    ASSERT_EQ_STR(call_str(user, "f", NULL), "library");
    ASSERT_LOG(&lc, MH_LOG_WARN, "already held a module Lua's require had "
                                 "loaded");
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A module may give package.loaded a metatable (a "strict" __index that
 * raises on a missing name, a lazy one that makes tables up), as stock
 * Lua's require allows: the host publishes it with raw access, so the
 * strict one imports (it failed as "out of memory publishing") and the
 * lazy one is published without a false warning that its name is Lua's
 * own library's. */
TEST(metatable_on_package_loaded_is_not_asked_when_publishing)
{
    const char *dir = tmp_mkdir("E");
    log_capture lc;

    lua_write("E/strict.lua",
              "setmetatable(package.loaded, {__index = function(t, k)\n"
              "  error('strict: no module ' .. tostring(k), 2) end})\n"
              "return { v = function() return 'strict' end }\n");
    lua_write("E/lazy.lua",
              "setmetatable(package.loaded, {__index = function(t, k)\n"
              "  return {} end})\n"
              "return { v = function()\n"
              "  return rawget(package.loaded, 'lazy') ~= nil end }\n");
    log_capture_init(&lc);
    mh_host *host = logged_host(dir, &lc);
    ASSERT_EQ_STR(call_ok(import_ok(host, "strict"), "v", NULL),
                  "\"strict\"");
    mh_host_free(host);
    host = logged_host(dir, &lc);
    ASSERT_EQ_STR(call_ok(import_ok(host, "lazy"), "v", NULL), "true");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* require of a module that is on the host's path but cannot be imported
 * for a "not found" of another (its manifest requires a module that is
 * nowhere) raises that error.  It said "no module 'x'" and went on to
 * Lua's own searchers, which loaded another x from package.path. */
TEST(require_of_a_module_whose_requirement_is_missing_raises_why)
{
    const char *dir = tmp_mkdir("E");
    const char *other = tmp_mkdir("other");
    log_capture lc;

    lua_write("E/x.lua", "return { v = 'the host\\'s x' }\n");
    file_write(tmp_path("E/x.json"), "{\"requires\": [\"nothere\"]}");
    lua_write("other/x.lua", "return { v = 'another x' }\n");
    lua_write("E/user.lua",
              str_fmt("return { f = function()\n"
                      "  package.path = '%s/?.lua;' .. package.path\n"
                      "  local ok, r = pcall(require, 'x')\n"
                      "  return ok and r.v or tostring(r)\n"
                      "end }\n", other));
    log_capture_init(&lc);
    mh_host *host = logged_host(dir, &lc);
    const char *got = call_ok(import_ok(host, "user"), "f", NULL);
    if (!strstr(got, "nothere") || strstr(got, "another x") ||
        strstr(got, "no module 'x'"))
        FAIL("require('x') gave %s", got);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A meta finder that finds nothing and counts the finds of "nosuch". */
static int nosuch_finds;

static mh_status count_find(mh_finder_ctx *cx, void *st, const char *name,
                            mh_finder_spec *spec)
{
    (void)cx;
    (void)st;
    (void)spec;
    nosuch_finds += strcmp(name, "nosuch") == 0;
    return MH_ENOTFOUND;
}

static mh_status count_open(mh_finder_ctx *cx, const char *entry,
                            void **st)
{
    (void)cx;
    (void)entry;
    *st = NULL;
    return MH_OK;
}

static void count_close(mh_finder_ctx *cx, void *st)
{
    (void)cx;
    (void)st;
}

static const mh_finder_class counting_class = {
    MH_FINDER_CLASS_INIT, .name = "counting", .open = count_open,
    .find = count_find, .close = count_close};

TEST(require_of_a_name_nowhere_walks_the_path_once)
{
    /* Telling "nowhere" from "its import failed on another's absence"
     * walked the path a second time (every meta finder, every entry),
     * with the Lua lock held. */
    const char *dir = tmp_mkdir("E");
    log_capture lc;
    lua_write("E/user.lua", "return { f = function()\n"
                            "  local ok, r = pcall(require, 'nosuch')\n"
                            "  return ok and 'found' or 'missing'\n"
                            "end }\n");
    log_capture_init(&lc);
    mh_host *host = logged_host(dir, &lc);
    ASSERT_STATUS(mh_host_add_meta_finder(host, &counting_class, NULL,
                                          MH_CHAIN_FIRST, NULL, ERR), MH_OK);
    ASSERT_EQ_STR(call_ok(import_ok(host, "user"), "f", NULL),
                  "\"missing\"");
    ASSERT_EQ_INT(nosuch_finds, 1);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* modhost.import of a Lua C module (lfs, from the host's path) after a
 * module gave package.loaded a lazy __index that makes tables up: the
 * import read package.loaded through it and returned {} for lfs. */
TEST(modhost_import_of_a_c_module_reads_package_loaded_raw)
{
    const char *dir = tmp_mkdir("E");
    if (!file_exists(DEBIAN_LFS))
        FAIL("%s is missing: install lua-filesystem", DEBIAN_LFS);
    file_copy(DEBIAN_LFS, tmp_path("E/lfs.so"));
    lua_write("E/lazy.lua",
              "setmetatable(package.loaded, {__index = function(t, k)\n"
              "  return {} end})\n"
              "return { kind = function()\n"
              "  return type(modhost.import('lfs').currentdir) end }\n");
    mh_host *host = host_new_isolated(dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "lazy"), "kind", NULL),
                  "\"function\"");
    mh_host_free(host);
}

/* ------------------------------------------------- stock Lua C modules */

TEST(lfs_from_lua_cpath)
{
    const char *dir = tmp_mkdir("E");
    char cwd[4096];
    mh_host *host;
    mh_module *mod;

    if (!file_exists(DEBIAN_LFS))
        FAIL("%s is missing: install lua-filesystem", DEBIAN_LFS);
    ASSERT_NOT_NULL(getcwd(cwd, sizeof cwd));
    /* Lua's default package.cpath, whatever the run's environment says. */
    env_unset("LUA_CPATH_5_4");
    env_unset("LUA_CPATH");
    env_unset("LUA_INIT_5_4");
    env_unset("LUA_INIT");

    lua_write("E/fsuser.lua",
              "local lfs = require('lfs')\n"
              "local M = {}\n"
              "function M.cwd() return lfs.currentdir() end\n"
              "function M.where() return package.searchpath('lfs', package.cpath) end\n"
              "function M.loaded() return package.loaded.lfs == lfs end\n"
              "return M\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "fsuser");
    ASSERT_EQ_STR(call_str(mod, "cwd", NULL), cwd);
    ASSERT_EQ_STR(call_str(mod, "where", NULL), DEBIAN_LFS);
    ASSERT_EQ_STR(call_ok(mod, "loaded", NULL), "true");
    /* Lua's own C searcher found it, not the host. */
    ASSERT_NULL(mh_host_module(host, "lfs"));
    mh_host_free(host);
}

TEST(lfs_from_host_search_path)
{
    const char *dir = tmp_mkdir("E");
    const char *copy = tmp_path("E/lfs.so");
    char cwd[4096];
    mh_host *host;
    mh_module *mod, *lfs;

    if (!file_exists(DEBIAN_LFS))
        FAIL("%s is missing: install lua-filesystem", DEBIAN_LFS);
    ASSERT_NOT_NULL(getcwd(cwd, sizeof cwd));
    file_copy(DEBIAN_LFS, copy);
    lua_write("E/fsuser.lua",
              "local lfs = require('lfs')\n"
              "local M = {}\n"
              "function M.cwd() return lfs.currentdir() end\n"
              "function M.kind() return type(lfs) end\n"
              "function M.loaded() return package.loaded.lfs == lfs end\n"
              "function M.same() local a = modhost.import('lfs')\n"
              "  return a == lfs and modhost.import('lfs') == a end\n"
              "return M\n");
    host = host_new_isolated(dir);
    ASSERT_NULL(mh_host_module(host, "lfs"));
    mod = import_ok(host, "fsuser");

    lfs = mh_host_module(host, "lfs");
    ASSERT_NOT_NULL(lfs);
    ASSERT_EQ_STR(mh_module_origin(lfs), copy);
    ASSERT_EQ_STR(mh_module_finder(lfs), "fs");
    ASSERT_EQ_INT(mh_module_kind_of(lfs), MH_KIND_PLAIN);
    ASSERT_NOT_NULL(symbol_ok(lfs, "luaopen_lfs"));
    /* The copy (a new inode) is what got mapped. */
    if (maps_count(copy, "") == 0)
        FAIL("%s is not mapped into the process", copy);

    /* luaopen_lfs ran: require gave its library table. */
    ASSERT_EQ_STR(call_str(mod, "kind", NULL), "table");
    ASSERT_EQ_STR(call_str(mod, "cwd", NULL), cwd);
    ASSERT_EQ_STR(call_ok(mod, "loaded", NULL), "true");
    /* modhost.import gives what require gave: luaopen_lfs ran once. */
    ASSERT_EQ_STR(call_ok(mod, "same", NULL), "true");
    mh_host_free(host);
}

/* ------------------------------------------- a stock pure-Lua library */

TEST(debian_inspect_from_database)
{
    const char *stage = tmp_mkdir("stage");
    const char *dir = tmp_mkdir("E");
    const char *db = tmp_path("lib.db");
    const char *shown;
    mh_host *host;
    mh_module *user, *insp;

    if (!file_exists(DEBIAN_INSPECT))
        FAIL("%s is missing: install lua-inspect", DEBIAN_INSPECT);
    file_copy(DEBIAN_INSPECT, tmp_path("stage/inspect.lua"));
    ASSERT_TRUE(files_equal(DEBIAN_INSPECT, tmp_path("stage/inspect.lua")));
    ASSERT_EQ_INT(db_pack(db, stage), 1);
    lua_write("E/user.lua",
              "local inspect = require('inspect')\n"
              "return { show = function(t) return inspect(t) end }\n");

    /* The user module in a directory, the library in the database. */
    host = host_new_isolated(dir, str_fmt("sqlite:%s", db));
    user = import_ok(host, "user");
    ASSERT_EQ_STR(mh_module_origin(user), tmp_path("E/user.lua"));
    shown = call_str(user, "show", "[[1, 2, {\"a\": 3}]]");
    ASSERT_CONTAINS(shown, "a = 3");
    ASSERT_CONTAINS(shown, "1, 2");

    /* The library the require found is the host's module "inspect". */
    insp = mh_host_module(host, "inspect");
    ASSERT_NOT_NULL(insp);
    ASSERT_EQ_PTR(import_ok(host, "inspect"), insp);
    ASSERT_EQ_INT(mh_module_kind_of(insp), MH_KIND_LUA);
    ASSERT_EQ_STR(mh_module_origin(insp), str_fmt("%s!/inspect.lua", db));
    mh_host_free(host);

    /* Imported directly, first thing, in a fresh host. */
    host = host_new_isolated(dir, str_fmt("sqlite:%s", db));
    insp = import_ok(host, "inspect");
    ASSERT_EQ_INT(mh_module_kind_of(insp), MH_KIND_LUA);
    ASSERT_EQ_STR(mh_module_finder(insp), "sqlite");
    ASSERT_EQ_STR(mh_module_origin(insp), str_fmt("%s!/inspect.lua", db));
    ASSERT_CONTAINS(call_str(insp, "inspect", "[{\"a\": 3}]"), "a = 3");
    mh_host_free(host);
}

/* --------------------------------------------- the modhost Lua library */

TEST(modhost_library)
{
    const char *dir = tmp_mkdir("E");
    log_capture lc;
    host_opts o = {.log = &lc};
    mh_host *host;
    mh_module *caller, *other;

    lua_write("E/other.lua",
              "return { tag = 'other-table',\n"
              "         f = function(a, b) return a * 10 + b end }\n");
    lua_write("E/caller.lua",
              "local M = {}\n"
              "function M.version() return modhost.version end\n"
              "function M.req_version() return require('modhost').version end\n"
              "function M.log(msg) modhost.log('warn', msg) return true end\n"
              "function M.imp()\n"
              "  local o = modhost.import('other')\n"
              "  assert(o == require('other'), 'import and require differ')\n"
              "  assert(o == package.loaded.other, 'not package.loaded')\n"
              "  return o.tag\n"
              "end\n"
              "function M.call(a, b) return modhost.call('other', 'f', a, b) end\n"
              "function M.missing() return modhost.import('missing') end\n"
              "return M\n");
    log_capture_init(&lc);
    host = host_new_opts(&o, dir);
    caller = import_ok(host, "caller");

    /* modhost.version */
    ASSERT_EQ_STR(call_str(caller, "version", NULL), mh_version_string());
    ASSERT_EQ_STR(call_str(caller, "req_version", NULL), mh_version_string());

    /* modhost.log reaches the config's hook, as a warning. */
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "hi"), 0);
    ASSERT_EQ_STR(call_ok(caller, "log", "[\"hi\"]"), "true");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "hi"), 1);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "hi"), 1);

    /* modhost.import gives the other module's table. */
    ASSERT_NULL(mh_host_module(host, "other"));
    ASSERT_EQ_STR(call_str(caller, "imp", NULL), "other-table");
    other = mh_host_module(host, "other");
    ASSERT_NOT_NULL(other);
    ASSERT_EQ_INT(mh_module_kind_of(other), MH_KIND_LUA);

    /* modhost.call runs other.f. */
    ASSERT_EQ_STR(call_ok(caller, "call", "[2, 3]"), "23");
    ASSERT_EQ_STR(call_ok(caller, "call", "[4, 1]"), "41");
    ASSERT_EQ_STR(call_ok(other, "f", "[2, 3]"), "23");

    /* modhost.import of a missing module raises a Lua error. */
    ASSERT_EQ_INT(call_fails(caller, "missing", NULL), MH_ECALL);
    ASSERT_CONTAINS(ERR_MSG(), "not found");
    ASSERT_CONTAINS(ERR_MSG(), "missing");
    ASSERT_NULL(mh_host_module(host, "missing"));
    /* The state is still usable afterwards. */
    ASSERT_EQ_STR(call_ok(caller, "call", "[1, 1]"), "11");
    mh_host_free(host);
    log_capture_free(&lc);
}

struct dl_job {
    mh_host *host;
    const char *name;
    int delay_ms;
    mh_status st;
};

static void *dl_import(void *arg)
{
    struct dl_job *j = arg;
    mh_module *m;
    if (j->delay_ms)
        usleep((useconds_t)j->delay_ms * 1000);
    j->st = mh_import(j->host, j->name, &m, NULL);
    return NULL;
}

TEST(cross_thread_require_does_not_deadlock)
{
    /* Thread 1 runs a's chunk (holding the Lua state) and requires b while
     * thread 2 has already claimed b and needs the Lua state to run it:
     * the state is let go while an import waits, so both finish. */
    const char *dir = tmp_mkdir("E");
    mh_config cfg;
    mh_host *host;
    pthread_t t1, t2;
    struct timespec deadline;

    file_write(tmp_path("E/a.lua"),
               "local t = os.clock(); while os.clock() - t < 0.4 do end\n"
               "local b = require('b')\n"
               "return { v = function() return b.v() + 1 end }\n");
    file_write(tmp_path("E/b.lua"),
               "return { v = function() return 41 end }\n");
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = dir;
    cfg.cache_dir = tmp_path("cache");
    host = host_new_cfg(&cfg);
    struct dl_job a = {host, "a", 0, MH_EINVAL}, b = {host, "b", 100,
                                                      MH_EINVAL};
    ASSERT_EQ_INT(pthread_create(&t1, NULL, dl_import, &a), 0);
    ASSERT_EQ_INT(pthread_create(&t2, NULL, dl_import, &b), 0);
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 15;
    if (pthread_timedjoin_np(t1, NULL, &deadline) != 0 ||
        pthread_timedjoin_np(t2, NULL, &deadline) != 0)
        FAIL("imports still waiting after 15 s: deadlock");
    ASSERT_EQ_INT(a.st, MH_OK);
    ASSERT_EQ_INT(b.st, MH_OK);
    cJSON *res = NULL;
    ASSERT_STATUS(mh_module_call(mh_host_module(host, "a"), "v", NULL, &res,
                                 ERR), MH_OK);
    ASSERT_TRUE(cJSON_IsNumber(res) && res->valuedouble == 42);
    cJSON_Delete(res);
    mh_host_free(host);
}

/* Threads requiring, at once, a library that only package.path has: a
 * thread that waited for another's import of the name was handed its
 * "not found" without learning that the name itself was missing, so its
 * require raised that error instead of asking package.path -- 146 of
 * 12,000 calls of four threads failed so. */
struct path_race {
    mh_module *mod;
    int calls, failed;
    char first[600];
    pthread_mutex_t mu;
};

static void *path_race_run(void *ud)
{
    struct path_race *r = ud;
    for (int i = 0; i < r->calls; i++) {
        cJSON *res = NULL;
        mh_error *e = NULL;
        mh_status st = mh_module_call(r->mod, "f", NULL, &res, &e);
        const char *said = st != MH_OK ? mh_error_message(e)
                           : cJSON_IsString(res) ? res->valuestring
                                                 : "(not a string)";
        if (strcmp(said, "ok") != 0) {
            pthread_mutex_lock(&r->mu);
            if (!r->failed++)
                snprintf(r->first, sizeof r->first, "%s", said);
            pthread_mutex_unlock(&r->mu);
        }
        cJSON_Delete(res);
        mh_error_free(e);
    }
    return NULL;
}

TEST(threads_requiring_a_package_path_library_at_once_all_get_it)
{
    const char *dir = tmp_mkdir("E");
    const char *ext = tmp_mkdir("ext");
    struct path_race r = {.calls = 1000, .mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t t[4];

    file_write(tmp_path("ext/extlib.lua"), "return { v = 1 }\n");
    file_write(tmp_path("E/m.lua"),
               str_fmt("package.path = '%s/?.lua'\n"
                       "return { f = function()\n"
                       "  package.loaded.extlib = nil\n"
                       "  local ok, e = pcall(require, 'extlib')\n"
                       "  return ok and 'ok' or tostring(e)\n"
                       "end }\n", ext));
    mh_host *host = host_new_isolated(dir);
    r.mod = import_ok(host, "m");
    for (size_t i = 0; i < 4; i++)
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, path_race_run, &r), 0);
    for (size_t i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    if (r.failed)
        FAIL("%d of %d requires failed; the first: %s", r.failed,
             4 * r.calls, r.first);
    mh_host_free(host);
}
