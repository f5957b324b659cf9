/*
 * bench/registry.c -- registry hit: importing a module that is already
 * loaded, by its name string.
 *
 * The 1,000 fixture plugins are loaded once; then every variant looks up
 * all 1,000 names, in the fixed shuffled order, many times:
 *   modhost   mh_import(host, "pkg3.sub17.mod_12345", ...)
 *   bare      a bare open-addressing table of the same strings (hash,
 *             probe, compare): the floor
 *   Lua 5.4   require "pkg3.sub17.mod_12345", every name in package.loaded
 *   CPython   `import pkg3.sub17.mod_12345` statements, every module in
 *             sys.modules (and `import os`, the figure usually quoted)
 */
#include "bench.h"
#include "common.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPEAT 200 /* passes over the 1,000 names per sample */

typedef struct ctx {
    const char *const *names;
    size_t n;
    mh_host *host;
    const char *short_name;     /* a loaded module with a short name */
    bench_strtab *bare;
    lua_State *L;
} ctx;

static double sample_modhost(void *p)
{
    ctx *c = p;
    size_t hits = 0;
    uint64_t t = bench_now_ns();
    for (int r = 0; r < REPEAT; r++)
        for (size_t i = 0; i < c->n; i++) {
            mh_module *m;
            hits += mh_import(c->host, c->names[i], &m, NULL) == MH_OK;
        }
    uint64_t dt = bench_now_ns() - t;
    if (hits != (size_t)REPEAT * c->n)
        bench_die("registry: a loaded module was not found");
    return (double)dt / ((double)REPEAT * (double)c->n);
}

/* The like of CPython's `import os`: one short name, again and again. */
static double sample_modhost_short(void *p)
{
    ctx *c = p;
    size_t hits = 0;
    uint64_t t = bench_now_ns();
    for (int r = 0; r < REPEAT * 1000; r++) {
        mh_module *m;
        hits += mh_import(c->host, c->short_name, &m, NULL) == MH_OK;
    }
    uint64_t dt = bench_now_ns() - t;
    if (hits != (size_t)REPEAT * 1000)
        bench_die("registry: '%s' was not found", c->short_name);
    return (double)dt / ((double)REPEAT * 1000);
}

static double sample_bare(void *p)
{
    ctx *c = p;
    size_t hits = 0;
    uint64_t t = bench_now_ns();
    for (int r = 0; r < REPEAT; r++)
        for (size_t i = 0; i < c->n; i++)
            hits += bench_strtab_find(c->bare, c->names[i]) != NULL;
    uint64_t dt = bench_now_ns() - t;
    if (hits != (size_t)REPEAT * c->n)
        bench_die("registry: bare table lost a name");
    return (double)dt / ((double)REPEAT * (double)c->n);
}

static double sample_lua(void *p)
{
    ctx *c = p;
    lua_getglobal(c->L, "bench_requires");
    lua_pushinteger(c->L, REPEAT);
    uint64_t t = bench_now_ns();
    if (lua_pcall(c->L, 1, 0, 0) != LUA_OK)
        bench_die("registry: lua: %s", lua_tostring(c->L, -1));
    uint64_t dt = bench_now_ns() - t;
    return (double)dt / ((double)REPEAT * (double)c->n);
}

static double sample_python(void *p)
{
    (void)p;
    return bench_python("cached", 1, NULL);
}

static double sample_python_os(void *p)
{
    (void)p;
    return bench_python("cached-os", 1, NULL);
}

/* A chunk defining bench_requires(k): k passes of `require "NAME"` over
 * every name, as literal strings (no table walk in the loop), every name
 * already in package.loaded. */
static lua_State *lua_setup(const char *const *names, size_t n)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    char *src = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&src, &len);
    fputs("local require = require\nlocal loaded = package.loaded\n", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "loaded['%s'] = true\n", names[i]);
    fputs("function bench_requires(k)\n  for _ = 1, k do\n", f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "    require '%s'\n", names[i]);
    fputs("  end\nend\n", f);
    fclose(f);
    if (luaL_loadbuffer(L, src, len, "bench") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK)
        bench_die("registry: lua setup: %s", lua_tostring(L, -1));
    free(src);
    return L;
}

static void run(void)
{
    ctx c;
    c.n = bench_names(&c.names);
    /* The fixtures, and the bundled plugin `hello` for a short name. */
    char *path = bench_fmt("%s;%s/lib/modhost/modules", bench_path(1),
                           bench.build);
    c.host = bench_host(path, 0, NULL, NULL);
    free(path);
    bench_import_all(c.host, c.names, c.n);
    c.short_name = "hello";
    bench_import_all(c.host, &c.short_name, 1);
    c.bare = bench_strtab_new(c.names, c.n);
    c.L = lua_setup(c.names, c.n);

    bench_var v[] = {
        {"modhost: mh_import of a loaded module", sample_modhost, &c, 0},
        {"bare open-addressing table hit (floor)", sample_bare, &c, 0},
        {"Lua 5.4: require of a loaded module", sample_lua, &c, 0},
        {"CPython 3: import of a loaded module", sample_python, &c, 0},
        {"CPython 3: import os (loaded)", sample_python_os, &c, 0},
        {"modhost: mh_import of `hello` (loaded)", sample_modhost_short, &c,
         0},
    };
    bench_interleave(v, (sizeof v / sizeof v[0]), bench.rounds);

    bench_table("Registry hit",
                "ns per import of an already-loaded module by name; 1,000 "
                "loaded modules (`pkg3.sub17.mod_12345`), looked up in a "
                "fixed shuffled order");
    for (size_t i = 0; i < (sizeof v / sizeof v[0]); i++)
        bench_row(v[i].name, v[i].median, "ns", i == 0);
    double mh = v[0].median;
    bench_target("modhost ÷ CPython import", mh / v[3].median, 1.0 / 3,
                 false);
    bench_target("modhost `hello` ÷ CPython `import os`",
                 v[5].median / v[4].median, 1.0 / 3, false);
    bench_target("modhost ÷ Lua require", mh / v[2].median, 1.0 / 3, false);
    bench_target("modhost ÷ bare table hit", mh / v[1].median, 2.0, false);
    bench_table_end();

    lua_close(c.L);
    bench_strtab_free(c.bare);
    mh_host_free(c.host);
}

const bench_area bench_area_registry = {"registry", "Registry hit", run, NULL};
