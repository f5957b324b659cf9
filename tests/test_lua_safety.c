/*
 * test_lua_safety.c -- the Lua loader's safety fixes: a Lua error met
 * while looking a function up is MH_ECALL, never a panic; results without
 * an exact JSON form (NaN, infinity, a string holding NUL, a cycle) are
 * MH_EFORMAT and big integers stay exact; the bytecode cache is neither
 * read nor written in a directory others can write; load, loadfile, dofile
 * and require refuse binary chunks inside Lua; package.path has no "./"
 * entries; and a host with a Lua C module holding a __gc object is freed
 * cleanly.
 *
 * Every Lua source is written by the case itself, in its temp directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "support/support.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */




/* A verbose host with its log captured and the given cache dir (NULL:
 * tmp_path("cache")). */
static mh_host *vhost(log_capture *lc, const char *cache, const char *entry)
{
    host_opts o = {.flags = MH_CONFIG_VERBOSE, .cache_dir = cache, .log = lc};
    return host_new_opts(&o, entry);
}

static void chmod_ok(const char *path, mode_t mode)
{
    if (chmod(path, mode) != 0)
        FAIL("chmod %s: %m", path);
}

/* ------------------------------------------------ errors while looking up */

TEST(index_error_is_ecall)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_module *mod;

    lua_write("E/mt.lua",
              "local M = { ok = function() return 'fine' end }\n"
              "return setmetatable(M, { __index = function(t, k)\n"
              "  error('index trap for ' .. tostring(k))\n"
              "end })\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "mt");
    ASSERT_EQ_INT(call_fails(mod, "anything", NULL), MH_ECALL);
    ASSERT_CONTAINS(ERR_MSG(), "index trap for anything");
    /* Again: the state survived the first error. */
    ASSERT_EQ_INT(call_fails(mod, "other", "[1]"), MH_ECALL);
    ASSERT_CONTAINS(ERR_MSG(), "index trap for other");
    ASSERT_EQ_STR(call_ok(mod, "ok", NULL), "\"fine\"");
    mh_host_free(host);
}

/* --------------------------------------------------------- exact results */

TEST(results_exact_or_eformat)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_module *mod;

    lua_write("E/res.lua",
              "local M = {}\n"
              "function M.maxint() return math.maxinteger end\n"
              "function M.minint() return math.mininteger end\n"
              "function M.nan() return 0/0 end\n"
              "function M.inf() return math.huge end\n"
              "function M.ninf() return -math.huge end\n"
              "function M.nul() return 'a\\0b' end\n"
              "function M.nested_nan() return { 1, 0/0 } end\n"
              "function M.nested_nul() return { k = 'a\\0b' } end\n"
              "function M.cycle() local t = {} t.self = t return t end\n"
              "function M.cycle_arr() local t = {} t[1] = t return t end\n"
              "function M.cycle_deep()\n"
              "  local a, b = {}, {} a.b = b b.a = a return a end\n"
              "function M.ok() return 'fine' end\n"
              "return M\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "res");
    ASSERT_EQ_STR(call_ok(mod, "maxint", NULL), "9223372036854775807");
    ASSERT_EQ_STR(call_ok(mod, "minint", NULL), "-9223372036854775808");
    ASSERT_EQ_INT(call_fails(mod, "nan", NULL), MH_EFORMAT);
    ASSERT_EQ_INT(call_fails(mod, "inf", NULL), MH_EFORMAT);
    ASSERT_EQ_INT(call_fails(mod, "ninf", NULL), MH_EFORMAT);
    ASSERT_EQ_INT(call_fails(mod, "nul", NULL), MH_EFORMAT);
    ASSERT_EQ_INT(call_fails(mod, "nested_nan", NULL), MH_EFORMAT);
    ASSERT_EQ_INT(call_fails(mod, "nested_nul", NULL), MH_EFORMAT);
    ASSERT_EQ_INT(call_fails(mod, "cycle", NULL), MH_EFORMAT);
    ASSERT_EQ_INT(call_fails(mod, "cycle_arr", NULL), MH_EFORMAT);
    ASSERT_EQ_INT(call_fails(mod, "cycle_deep", NULL), MH_EFORMAT);
    ASSERT_EQ_STR(call_ok(mod, "ok", NULL), "\"fine\"");
    mh_host_free(host);
}

/* --------------------------------------------- cache only where private */

TEST(cache_in_world_writable_dir_unused)
{
    const char *dir = tmp_mkdir("E");
    const char *ww = tmp_mkdir("ww");
    const char *cache = tmp_path("ww/cache");
    const char *names = NULL;
    log_capture lc;
    mh_host *host;

    chmod_ok(ww, 0777); /* world-writable, not sticky */
    lua_write("E/wm.lua", "return { v = function() return 7 end }\n");
    log_capture_init(&lc);
    host = vhost(&lc, cache, dir);
    ASSERT_EQ_STR(call_ok(import_ok(host, "wm"), "v", NULL), "7");
    ASSERT_LOG(&lc, MH_LOG_WARN, "bytecode cache not used");
    if (log_capture_count(&lc, -1, "bytecode from cache") != 0)
        FAIL("bytecode read from a world-writable dir; log:%s",
             log_capture_dump(&lc));
    mh_host_free(host);
    if (dir_count(ww) != 0 || tree_count(ww, "", &names) != 0)
        FAIL("something was written under %s:%s; log:%s", ww,
             names ? names : " (directories only)", log_capture_dump(&lc));
    log_capture_free(&lc);
}

TEST(cache_dir_opened_to_others_not_read)
{
    const char *dir = tmp_mkdir("E");
    const char *mark = tmp_path("mark");
    const char *names;
    log_capture l1, l2, l3;
    mh_host *h;

    lua_write("E/cw.lua",
              str_fmt("local f = assert(io.open('%s', 'a'))\n"
                      "f:write('ran\\n') f:close()\n"
                      "return { v = function() return 3 end }\n", mark));
    log_capture_init(&l1);
    log_capture_init(&l2);
    log_capture_init(&l3);

    /* A private cache: written by the first host. */
    h = vhost(&l1, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "cw"), "v", NULL), "3");
    mh_host_free(h);
    if (tree_count(tmp_path("cache/lua"), ".mhc", &names) == 0)
        FAIL("no .mhc under cache/lua; log:%s", log_capture_dump(&l1));

    /* Control: still private, so a second host reads it back. */
    h = vhost(&l2, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "cw"), "v", NULL), "3");
    ASSERT_LOG(&l2, -1, "bytecode from cache");
    mh_host_free(h);

    /* Opened to others: anybody could have replaced the file. */
    chmod_ok(tmp_path("cache/lua"), 0777);
    h = vhost(&l3, NULL, dir);
    ASSERT_EQ_STR(call_ok(import_ok(h, "cw"), "v", NULL), "3");
    if (log_capture_count(&l3, -1, "bytecode from cache") != 0)
        FAIL("bytecode read from a world-writable cache dir; log:%s",
             log_capture_dump(&l3));
    ASSERT_LOG(&l3, MH_LOG_WARN, "bytecode cache not used");
    mh_host_free(h);
    chmod_ok(tmp_path("cache/lua"), 0700);
    log_capture_free(&l1);
    log_capture_free(&l2);
    log_capture_free(&l3);
}

/* The cache directory named through a symbolic link: kept there only if
 * no other user could point the link elsewhere after the check, since
 * every later read and write goes by that path.  A link in a directory
 * others may write (not sticky), in one another user owns, or another
 * user's link in a sticky one (as root: chown) is refused; our own link
 * in a root-owned sticky directory, like /tmp, is followed. */
static void cache_through(const char *cache, const char *entry,
                          const char *good, const char *why)
{
    log_capture lc;
    const char *names = NULL;
    log_capture_init(&lc);
    mh_host *h = vhost(&lc, cache, entry);
    ASSERT_EQ_STR(call_ok(import_ok(h, "ln"), "v", NULL), "5");
    mh_host_free(h);
    if (why) {
        ASSERT_LOG(&lc, MH_LOG_WARN, "bytecode cache not used");
        ASSERT_LOG(&lc, MH_LOG_WARN, why);
        if (tree_count(good, "", &names) != 0)
            FAIL("written through %s:%s; log:%s", cache, names,
                 log_capture_dump(&lc));
    } else if (tree_count(good, ".mhc", &names) == 0) {
        FAIL("no bytecode kept through %s; log:%s", cache,
             log_capture_dump(&lc));
    }
    log_capture_free(&lc);
}

TEST(cache_through_a_link_others_could_change_unused)
{
    const char *dir = tmp_mkdir("E");
    const char *good = tmp_mkdir("good");
    const char *ww = tmp_mkdir("ww");
    chmod_ok(good, 0700);
    chmod_ok(ww, 0777); /* anybody may replace a name here */
    lua_write("E/ln.lua", "return { v = function() return 5 end }\n");
    if (symlink(good, tmp_path("ww/c")) != 0)
        FAIL("symlink: %m");
    cache_through(tmp_path("ww/c/cache"), dir, good,
                  "goes through the symbolic link");
    /* ...or below it: a directory of ours inside ww holding the link */
    const char *mine = tmp_mkdir("ww/mine");
    chmod_ok(mine, 0755);
    if (symlink(good, tmp_path("ww/mine/c")) != 0)
        FAIL("symlink: %m");
    cache_through(tmp_path("ww/mine/c/cache"), dir, good,
                  "writable by group or others");
    /* ...or a directory there left by "..": replaced by a link later, its
     * ".." is wherever that leads */
    cache_through(str_fmt("%s/ww/mine/../../good/cache", tmp_dir()), dir,
                  good, "and out of it (\"..\")");
    /* Control: our link in a directory of ours, as a ~/.cache that is a
     * link: followed. */
    const char *home = tmp_mkdir("home");
    chmod_ok(home, 0755);
    if (symlink(good, tmp_path("home/.cache")) != 0)
        FAIL("symlink: %m");
    cache_through(tmp_path("home/.cache/cache"), dir, good, NULL);
    ASSERT_EQ_INT(system(str_fmt("rm -rf '%s'/*", good)), 0);
    if (geteuid() != 0) {
        printf("skip: lua_safety.cache_through_a_link_others_could_change_"
               "unused: links and directories of uid 65534 (not root)\n");
        return;
    }
    /* T/sticky: 1777 and root's, as /tmp is */
    const char *st = tmp_mkdir("sticky");
    chmod_ok(st, 01777);
    if (chown(st, 0, 0) != 0 || symlink(good, tmp_path("sticky/c")) != 0)
        FAIL("chown/symlink: %m");
    if (lchown(tmp_path("sticky/c"), 65534, (gid_t)-1) != 0)
        FAIL("lchown: %m");
    cache_through(tmp_path("sticky/c/cache"), dir, good,
                  "symbolic link of uid 65534 in a sticky directory");
    /* a directory of another user's, holding our link */
    const char *theirs = tmp_mkdir("theirs");
    chmod_ok(theirs, 0755);
    if (symlink(good, tmp_path("theirs/c")) != 0 ||
        chown(theirs, 65534, 65534) != 0)
        FAIL("symlink/chown: %m");
    cache_through(tmp_path("theirs/c/cache"), dir, good,
                  "owned by another user");
    /* Control: the same link, ours, in the sticky directory is used. */
    if (lchown(tmp_path("sticky/c"), 0, (gid_t)-1) != 0)
        FAIL("lchown: %m");
    cache_through(tmp_path("sticky/c/cache"), dir, good, NULL);
}

/* ------------------------------------------- no binary chunks inside Lua */

/* The chunk dumps a function returning 'BIN' and tries every way in; each
 * probe returns true when the binary chunk was loaded (and so could run). */
TEST(load_loadfile_dofile_refuse_binary)
{
    const char *dir = tmp_mkdir("E");
    const char *bc = tmp_path("dumped.bin");
    mh_host *host;
    mh_module *mod;

    lua_write("E/ld.lua",
              str_fmt("local path = '%s'\n"
                      "local bc = string.dump(function() return 'BIN' end)\n"
                      "local f = assert(io.open(path, 'wb'))\n"
                      "f:write(bc) f:close()\n"
                      "local function got(ok, fn)\n"
                      "  return ok and type(fn) == 'function'\n"
                      "end\n"
                      "local M = {}\n"
                      "function M.load() return got(pcall(load, bc)) end\n"
                      "function M.load_b()\n"
                      "  return got(pcall(load, bc, 'x', 'b')) end\n"
                      "function M.load_bt()\n"
                      "  return got(pcall(load, bc, 'x', 'bt', {})) end\n"
                      "function M.load_reader()\n"
                      "  local done = false\n"
                      "  return got(pcall(load, function()\n"
                      "    if done then return nil end\n"
                      "    done = true return bc end))\n"
                      "end\n"
                      "function M.loadfile() return got(pcall(loadfile, path)) end\n"
                      "function M.loadfile_b()\n"
                      "  return got(pcall(loadfile, path, 'b')) end\n"
                      "function M.dofile()\n"
                      "  local ok, r = pcall(dofile, path)\n"
                      "  return ok or r == 'BIN'\n"
                      "end\n"
                      "function M.text_load() return load('return 2')() end\n"
                      "function M.ok() return 'fine' end\n"
                      "return M\n", bc));
    host = host_new_isolated(dir);
    mod = import_ok(host, "ld");
    ASSERT_EQ_INT(file_read(bc)[0], 0x1b); /* "\x1bLua": it is bytecode */
    ASSERT_EQ_STR(call_ok(mod, "load", NULL), "false");
    ASSERT_EQ_STR(call_ok(mod, "load_b", NULL), "false");
    ASSERT_EQ_STR(call_ok(mod, "load_bt", NULL), "false");
    ASSERT_EQ_STR(call_ok(mod, "load_reader", NULL), "false");
    ASSERT_EQ_STR(call_ok(mod, "loadfile", NULL), "false");
    ASSERT_EQ_STR(call_ok(mod, "loadfile_b", NULL), "false");
    ASSERT_EQ_STR(call_ok(mod, "dofile", NULL), "false");
    /* Text still loads. */
    ASSERT_EQ_STR(call_ok(mod, "text_load", NULL), "2");
    ASSERT_EQ_STR(call_ok(mod, "ok", NULL), "\"fine\"");
    mh_host_free(host);
}

TEST(require_refuses_binary_on_package_path)
{
    const char *dir = tmp_mkdir("E");
    const char *lp = tmp_mkdir("lp");
    const char *mark = tmp_path("mark");
    mh_host *host;
    mh_module *mod;

    lua_write("lp/good.lua", "return { v = 'text' }\n");
    lua_write("E/rq.lua",
              str_fmt("package.path = '%s/?.lua'\n"
                      "local bc = string.dump(function()\n"
                      "  local f = io.open('%s', 'a')\n"
                      "  if f then f:write('ran\\n') f:close() end\n"
                      "  return { v = 'BIN' }\n"
                      "end)\n"
                      "local f = assert(io.open('%s/evil.lua', 'wb'))\n"
                      "f:write(bc) f:close()\n"
                      "local ok, r = pcall(require, 'evil')\n"
                      "local gok, g = pcall(require, 'good')\n"
                      "local M = {}\n"
                      "function M.evil() return ok end\n"
                      "function M.msg() return ok and 'loaded' or tostring(r) end\n"
                      "function M.good() return gok and g.v or tostring(g) end\n"
                      "return M\n", lp, mark, lp));
    host = host_new_isolated(dir);
    mod = import_ok(host, "rq");
    ASSERT_EQ_INT(file_read(tmp_path("lp/evil.lua"))[0], 0x1b);
    ASSERT_EQ_STR(call_ok(mod, "evil", NULL), "false");
    ASSERT_CONTAINS(call_ok(mod, "msg", NULL), "evil");
    /* Nothing binary ran. */
    ASSERT_FALSE(file_exists(mark));
    /* Control: the same package.path serves a text module. */
    ASSERT_EQ_STR(call_ok(mod, "good", NULL), "\"text\"");
    mh_host_free(host);
}

/* ------------------------------------------------ no ./ in package.path */

static void no_dot_entries(void)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    mh_module *mod;
    const char *path, *cpath;

    lua_write("E/pp.lua",
              "return { path = function() return package.path end,\n"
              "         cpath = function() return package.cpath end }\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "pp");
    path = call_ok(mod, "path", NULL);
    cpath = call_ok(mod, "cpath", NULL);
    ASSERT_CONTAINS(path, "?.lua"); /* the system entries are still there */
    ASSERT_NOT_CONTAINS(path, "./?");
    ASSERT_NOT_CONTAINS(cpath, "./?");
    ASSERT_NOT_CONTAINS(cpath, "./loadall");
    mh_host_free(host);
}

TEST(package_path_has_no_dot_entries)
{
    env_unset("LUA_PATH");
    env_unset("LUA_PATH_5_4");
    env_unset("LUA_CPATH");
    env_unset("LUA_CPATH_5_4");
    no_dot_entries();
}

TEST(package_path_from_env_has_no_dot_entries)
{
    env_set("LUA_PATH_5_4", "./?.lua;./?/init.lua;;");
    env_set("LUA_CPATH_5_4", "./?.so;;");
    no_dot_entries();
}

/* LUA_PATH and LUA_CPATH count in a host that is not isolated: of their
 * entries only the absolute ones are kept, whole.  ("../?.lua" is as
 * relative as "./?.lua"; and cutting "./?.lua;" out of "/opt/x./?.lua"
 * once made "/opt/x" + the next entry.) */
TEST(package_path_from_env_keeps_absolute_entries_whole)
{
    const char *dir = tmp_mkdir("E");
    mh_config cfg;

    env_set("LUA_PATH_5_4", "../?.lua;/usr/share/lua/5.4/?.lua;?.lua;"
                            "/opt/x./?.lua;lib/?/init.lua");
    env_set("LUA_CPATH_5_4", "./?.so;/opt/y./?.so;lib/?.so");
    lua_write("E/pp.lua",
              "return { path = function() return package.path end,\n"
              "         cpath = function() return package.cpath end }\n");
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_NO_DEFAULT_PATH; /* not isolated: LUA_* count */
    cfg.path = dir;
    cfg.cache_dir = tmp_path("cache");
    mh_host *host = host_new_cfg(&cfg);
    mh_module *mod = import_ok(host, "pp");
    ASSERT_EQ_STR(call_ok(mod, "path", NULL),
                  "\"/usr/share/lua/5.4/?.lua;/opt/x./?.lua\"");
    ASSERT_EQ_STR(call_ok(mod, "cpath", NULL), "\"/opt/y./?.so\"");
    mh_host_free(host);
}

/* ------------------------------------- a Lua C module's __gc at host free */

TEST(host_free_runs_c_module_gc_before_unmap)
{
    const char *dir = tmp_mkdir("E");
    const char *mark = tmp_path("gcmark");
    mh_host *host;
    mh_module *mod;

    env_set("MH_LUA_GC_MARK", mark);
    fixture_copy("lua_gc", "E/lua_gc.so");
    lua_write("E/gcuser.lua",
              "local v = require('lua_gc')\n"
              "return { v = function() return v end,\n"
              "         kind = function() return type(lua_gc_obj) end }\n");
    host = host_new_isolated(dir);
    mod = import_ok(host, "gcuser");
    ASSERT_NOT_NULL(mh_host_module(host, "lua_gc"));
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "42");
    ASSERT_EQ_STR(call_ok(mod, "kind", NULL), "\"userdata\"");
    ASSERT_FALSE(file_exists(mark));
    /* Lua is closed (the __gc runs, its code still mapped), then the
     * library is unmapped: no crash, and the __gc did run. */
    mh_host_free(host);
    ASSERT_TRUE(file_exists(mark));
    ASSERT_EQ_STR(file_read(mark), "gc\n");
}

/* ------------------------- package.path and cpath under the code rules */

static const char *const REQ_ZZ =
    "local ok, e = pcall(require, 'zz')\n"
    "return {why = function() return tostring(e) end,\n"
    "        ok = function() return ok end}\n";

/* A world-writable directory on LUA_PATH holding zz.lua, whose chunk
 * would leave a marker file if it ever ran. */
static const char *evil_lua_dir(const char **marker)
{
    const char *evil = tmp_mkdir("evil");
    *marker = tmp_path("evil-ran");
    file_write(str_fmt("%s/zz.lua", evil),
               str_fmt("io.open('%s', 'w'):close() return {}", *marker));
    if (chmod(evil, 0777) != 0)
        FAIL("chmod %s", evil);
    return evil;
}

TEST(lua_path_from_env_ignored_when_isolated)
{
    const char *marker;
    const char *evil = evil_lua_dir(&marker);
    env_set("LUA_PATH_5_4", str_fmt("%s/?.lua", evil));
    lua_write("E/req.lua", REQ_ZZ);
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = import_ok(host, "req");
    ASSERT_EQ_STR(call_ok(mod, "ok", NULL), "false");
    ASSERT_CONTAINS(call_ok(mod, "why", NULL), "not found");
    ASSERT_NOT_CONTAINS(call_ok(mod, "why", NULL), evil);
    ASSERT_FALSE(file_exists(marker));
    mh_host_free(host);
}

/* A C module on LUA_CPATH in a world-writable directory: refused before
 * any dlopen, said once in require's message, on a line of its own.  The
 * message began with a "\n\t" of its own, which Lua 5.4's require adds
 * itself (blank lines), and the all-in-one searcher refused the same
 * file again for a name without a dot, which Lua's own skips. */
TEST(package_cpath_file_in_writable_dir_refused_once)
{
    const char *evil = tmp_mkdir("evilc");
    file_write(str_fmt("%s/zz.so", evil), "not even an object\n");
    if (chmod(evil, 0777) != 0)
        FAIL("chmod %s", evil);
    env_set("LUA_CPATH_5_4", str_fmt("%s/?.so", evil));
    lua_write("E/req.lua", REQ_ZZ);
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_NO_DEFAULT_PATH; /* not isolated: LUA_CPATH read */
    cfg.path = tmp_path("E");
    cfg.cache_dir = tmp_path("cache");
    mh_host *host = host_new_cfg(&cfg);
    mh_module *mod = import_ok(host, "req");
    ASSERT_EQ_STR(call_ok(mod, "ok", NULL), "false");
    const char *why = call_ok(mod, "why", NULL);
    const char *line = str_fmt("\\n\\trefused %s/zz.so: ", evil);
    const char *at = strstr(why, line);
    if (!at || strstr(at + strlen(line), "refused "))
        FAIL("want one line \"%s...\" in %s", line, why);
    ASSERT_NOT_CONTAINS(why, "\\n\\t\\n\\t");
    mh_host_free(host);
}

TEST(package_path_file_in_writable_dir_refused)
{
    const char *marker;
    const char *evil = evil_lua_dir(&marker);
    env_set("LUA_PATH_5_4", str_fmt("%s/?.lua", evil));
    lua_write("E/req.lua", REQ_ZZ);
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_NO_DEFAULT_PATH; /* not isolated: LUA_PATH read */
    cfg.path = tmp_path("E");
    cfg.cache_dir = tmp_path("cache");
    mh_host *host = host_new_cfg(&cfg);
    mh_module *mod = import_ok(host, "req");
    ASSERT_EQ_STR(call_ok(mod, "ok", NULL), "false");
    ASSERT_CONTAINS(call_ok(mod, "why", NULL), "refusing to load code");
    ASSERT_CONTAINS(call_ok(mod, "why", NULL), evil);
    ASSERT_FALSE(file_exists(marker));
    mh_host_free(host);
}
