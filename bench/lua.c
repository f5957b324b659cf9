/*
 * bench/lua.c -- Lua modules: a 2,000-line module imported from cached
 * bytecode against compiling its source, and a `require` that hits.
 *
 * Table 1, one cold import of `benchlua` (generated below: 2,000 lines of
 * varied code returning a table of functions), each import in a fresh
 * host made and freed outside the timed region, so the figure is what an
 * application pays for its first import of the module -- the host's Lua
 * state is created in it, as it is in a real first import:
 *   compile    empty cache dir, MH_CONFIG_NO_BYTECODE_WRITE: the source is
 *              read and compiled, nothing is cached (docs/lua.md)
 *   cached     a cache dir where the bytecode was written once before
 *   peers      plain Lua 5.4 on a fresh lua_State (luaL_newstate +
 *              luaL_openlibs in the timed region, as modhost creates its
 *              state there too): luaL_loadbuffer of the source text + call,
 *              and lua_load of the lua_dump'ed bytecode + call; and the
 *              two loads alone, what "bytecode loads 10x faster" compares
 * plus information rows: the first import that also writes the cache, a
 * cache entry that is "unsure" (recorded < 2 s after the source's last
 * change, so checked by hash; with cache writes off, or its first hit
 * after those 2 s would record it again as a sure one), and the fixed
 * cost of a 1-line module.
 *
 * Table 2, import hits: after the modules are loaded, mh_import of the
 * Lua module against mh_import of a native fixture plugin in the same
 * host, and Lua's own `require` of a module in package.loaded.
 */
#include "bench.h"
#include "common.h"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINES 2000      /* of the generated module */
#define HITS 200000     /* import hits per sample */

/* ---- the module ------------------------------------------------------- */

/* The generated source, built in an open_memstream. */
typedef struct gen {
    FILE *f;
    int lines;
    /* selftest() calls, collected while generating, written at the end */
    char *test;
    size_t test_len;
    FILE *tf;
    int tests;
} gen;

static void line(gen *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void line(gen *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(g->f, fmt, ap);
    va_end(ap);
    fputc('\n', g->f);
    g->lines++;
}

static void test(gen *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void test(gen *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("  t = t + ", g->tf);
    vfprintf(g->tf, fmt, ap);
    fputc('\n', g->tf);
    va_end(ap);
    g->tests++;
}

static const char *const SEPS[] = {",", ";", "|", ":", "/", "\\t"};
static const char *const CASE[] = {"upper", "lower", "reverse"};
static const char *const WORDS[] = {"alpha", "beta", "gamma", "delta",
                                    "omega", "sigma", "kappa", "theta"};

/* The largest template below, in lines: room is left for one more. */
#define TEMPLATE_MAX 26

/* One piece of module code, of kind k % 8, varied by k. */
static void piece(gen *g, int k)
{
    const char *sep = SEPS[k % 6];
    switch ((k * 5 + 3) % 8) {
    case 0: /* split and normalise a record */
        line(g, "-- Split a '%s'-separated record, trim and %s each field.",
             sep, CASE[k % 3]);
        line(g, "function M.fields_%d(s)", k);
        line(g, "  local out, n = {}, 0");
        line(g, "  for part in string.gmatch(s, \"[^%s]+\") do", sep);
        line(g, "    local v = part:gsub(\"^%%s+\", \"\"):gsub(\"%%s+$\", "
             "\"\")");
        line(g, "    if #v > %d then v = v:sub(1, %d) end", 8 + k % 9,
             8 + k % 9);
        line(g, "    n = n + 1");
        line(g, "    out[n] = string.%s(v)", CASE[k % 3]);
        line(g, "  end");
        line(g, "  if n == 0 then return nil, \"empty record (%d)\" end", k);
        line(g, "  return out, n");
        line(g, "end");
        line(g, "%s", "");
        test(g, "select(2, M.fields_%d(\"a%s b %s  cc%sd\"))", k,
             sep, sep, sep);
        break;
    case 1: /* a numeric series */
        line(g, "function M.series_%d(n)", k);
        line(g, "  local acc, a, b = 0, %d, %d", k % 7 + 1, k % 5 + 2);
        line(g, "  for i = 1, n do");
        line(g, "    if i %% 3 == 0 then");
        line(g, "      acc = acc + a * i");
        line(g, "    elseif i %% 3 == 1 then");
        line(g, "      acc = acc - b * %d", k % 4 + 1);
        line(g, "    else");
        line(g, "      acc = acc + (i // %d) ~ %d", k % 3 + 2, k % 64);
        line(g, "    end");
        line(g, "    a, b = b, (a + b) %% %d", 89 + k % 13);
        line(g, "  end");
        line(g, "  return acc");
        line(g, "end");
        line(g, "%s", "");
        test(g, "M.series_%d(%d)", k, 30 + k % 20);
        break;
    case 2: /* sort with a closure */
        line(g, "local function by_field_%d(field, desc)", k);
        line(g, "  return function(x, y)");
        line(g, "    if x[field] == y[field] then return x.name < y.name "
             "end");
        line(g, "    if desc then return x[field] > y[field] end");
        line(g, "    return x[field] < y[field]");
        line(g, "  end");
        line(g, "end");
        line(g, "%s", "");
        line(g, "--- The names of the best %d items by score.", 3 + k % 5);
        line(g, "function M.top_%d(items, k)", k);
        line(g, "  local copy = {}");
        line(g, "  for i, v in ipairs(items) do copy[i] = v end");
        line(g, "  table.sort(copy, by_field_%d(\"score\", %s))", k,
             k % 2 ? "true" : "false");
        line(g, "  local res = {}");
        line(g, "  for i = 1, math.min(k or %d, #copy) do", 3 + k % 5);
        line(g, "    res[#res + 1] = copy[i].name");
        line(g, "  end");
        line(g, "  return res");
        line(g, "end");
        line(g, "%s", "");
        test(g, "#M.top_%d({{name = \"a\", score = %d}, {name = \"b\", "
             "score = 2}, {name = \"c\", score = 9}})", k, k % 11);
        break;
    case 3: /* configuration data */
        line(g, "M.config_%d = {", k);
        line(g, "  name = \"service-%s-%d\",", WORDS[k % 8], k);
        line(g, "  port = %d,", 8000 + k);
        line(g, "  retries = %d,", k % 4 + 1);
        line(g, "  timeout = %d.%d,", k % 30, k % 10);
        line(g, "  tags = {\"%s\", \"%s\", \"t%d\"},", WORDS[(k + 1) % 8],
             WORDS[(k + 3) % 8], k);
        line(g, "  limits = {cpu = %d, mem = %d, files = %d},", k % 8 + 1,
             (k % 16 + 1) * 64, 256 << (k % 4));
        line(g, "  enabled = %s,", k % 3 ? "true" : "false");
        line(g, "}");
        line(g, "%s", "");
        test(g, "M.config_%d.limits.cpu + #M.config_%d.tags", k, k);
        break;
    case 4: /* a class with a metatable */
        line(g, "local Counter_%d = {}", k);
        line(g, "Counter_%d.__index = Counter_%d", k, k);
        line(g, "%s", "");
        line(g, "function Counter_%d.new(start)", k);
        line(g, "  return setmetatable({n = start or %d, hist = {}}, "
             "Counter_%d)", k % 10, k);
        line(g, "end");
        line(g, "%s", "");
        line(g, "function Counter_%d:add(d)", k);
        line(g, "  self.n = self.n + (d or %d)", k % 3 + 1);
        line(g, "  self.hist[#self.hist + 1] = self.n");
        line(g, "  return self");
        line(g, "end");
        line(g, "%s", "");
        line(g, "function Counter_%d:total()", k);
        line(g, "  local s = 0");
        line(g, "  for _, v in ipairs(self.hist) do s = s + v end");
        line(g, "  return s");
        line(g, "end");
        line(g, "M.Counter_%d = Counter_%d", k, k);
        line(g, "%s", "");
        test(g, "M.Counter_%d.new(%d):add():add(%d):total()", k, k % 5,
             k % 7);
        break;
    case 5: /* a tokenizer */
        line(g, "function M.tokens_%d(src)", k);
        line(g, "  local toks, i, len = {}, 1, #src");
        line(g, "  while i <= len do");
        line(g, "    local c = src:sub(i, i)");
        line(g, "    if c:match(\"%%d\") then");
        line(g, "      local j = i");
        line(g, "      while j <= len and src:sub(j, j):match(\"%%d\") do "
             "j = j + 1 end");
        line(g, "      toks[#toks + 1] = {kind = \"num\", value = "
             "tonumber(src:sub(i, j - 1))}");
        line(g, "      i = j");
        line(g, "    elseif c:match(\"[%%a_]\") then");
        line(g, "      local word = src:match(\"^[%%w_]+\", i)");
        line(g, "      toks[#toks + 1] = {kind = KEYWORDS[word] and \"kw\" "
             "or \"id\", value = word}");
        line(g, "      i = i + #word");
        line(g, "    elseif c:match(\"%%s\") then");
        line(g, "      i = i + 1");
        line(g, "    else");
        line(g, "      toks[#toks + 1] = {kind = \"op\", value = c, "
             "at = i + %d}", k % 3);
        line(g, "      i = i + 1");
        line(g, "    end");
        line(g, "  end");
        line(g, "  return toks");
        line(g, "end");
        line(g, "%s", "");
        test(g, "#M.tokens_%d(\"local x%d = %d + y * (z - 7) if x then "
             "end\")", k, k, k);
        break;
    case 6: /* formatting */
        line(g, "-- Render a flat record as {k=v%sk=v} with sorted keys.",
             sep);
        line(g, "function M.render_%d(rec)", k);
        line(g, "  local keys = {}");
        line(g, "  for key in pairs(rec) do keys[#keys + 1] = tostring(key) "
             "end");
        line(g, "  table.sort(keys)");
        line(g, "  local buf = {}");
        line(g, "  for _, key in ipairs(keys) do");
        line(g, "    local v = rec[key]");
        line(g, "    if type(v) == \"string\" then");
        line(g, "      v = string.format(\"%%q\", v)");
        line(g, "    elseif math.type(v) == \"float\" then");
        line(g, "      v = string.format(\"%%.%dg\", v)", k % 6 + 2);
        line(g, "    end");
        line(g, "    buf[#buf + 1] = key .. \"=\" .. tostring(v)");
        line(g, "  end");
        line(g, "  return \"{\" .. table.concat(buf, \"%s\") .. \"}\"", sep);
        line(g, "end");
        line(g, "%s", "");
        test(g, "#M.render_%d({a = 1, b = \"x%d\", c = %d.25})", k, k,
             k % 9);
        break;
    default: /* memoised recursion */
        line(g, "local memo_%d = {}", k);
        line(g, "local function walk_%d(n)", k);
        line(g, "  if n < %d then return n end", 2 + k % 2);
        line(g, "  local m = memo_%d[n]", k);
        line(g, "  if m then return m end");
        line(g, "  m = walk_%d(n - 1) + walk_%d(n - %d)", k, k, 2 + k % 2);
        line(g, "  memo_%d[n] = m", k);
        line(g, "  return m");
        line(g, "end");
        line(g, "M.walk_%d = walk_%d", k, k);
        line(g, "%s", "");
        test(g, "M.walk_%d(%d)", k, 20 + k % 15);
        break;
    }
}

/* The module: exactly LINES lines, ending in `return M`; selftest()
 * calls a function of every piece and sums the results (an integer, the
 * same however the chunk was loaded). */
static char *module_source(size_t *len)
{
    gen g = {0};
    char *src = NULL;
    g.f = open_memstream(&src, len);
    g.tf = open_memstream(&g.test, &g.test_len);
    if (!g.f || !g.tf)
        bench_die("out of memory");
    line(&g, "-- benchlua: generated by bench/lua.c, a module of %d lines.",
         LINES);
    line(&g, "local M = {_VERSION = \"1.0\"}");
    line(&g, "local KEYWORDS = {[\"local\"] = true, [\"if\"] = true, "
         "[\"then\"] = true, [\"end\"] = true}");
    line(&g, "%s", "");
    /* room at the end: selftest's 4 lines and its calls, `return M` */
    int k = 0;
    while (g.lines + TEMPLATE_MAX + (g.tests + 1) + 5 <= LINES)
        piece(&g, k++);
    /* The rest: short definitions, as modules end with. */
    int tail = LINES - (g.lines + g.tests + 5);
    for (int i = 0; i < tail; i++)
        switch (i % 3) {
        case 0:
            line(&g, "M.limit_%d = %d * %d %% 1009", i, i + 3, k + i);
            break;
        case 1:
            line(&g, "M.label_%d = \"%s-\" .. %d", i, WORDS[i % 8], i);
            break;
        default:
            line(&g, "M.flags_%d = {%d %% 2 == 0, %d %% 3 == 0}", i, i + k,
                 i);
            break;
        }
    fclose(g.tf);
    line(&g, "function M.selftest()");
    line(&g, "  local t = 0");
    fputs(g.test, g.f);
    g.lines += g.tests;
    line(&g, "  return t");
    line(&g, "end");
    line(&g, "return M");
    fclose(g.f);
    free(g.test);
    if (g.lines != LINES)
        bench_die("lua: generated %d lines, not %d", g.lines, LINES);
    return src;
}

/* ---- files -------------------------------------------------------------- */

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "w");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        bench_die("cannot write %s: %s", path, strerror(errno));
}

/* An installed module has not changed for a while: wait out the unsure
 * window (2 s after the source's ctime, which the kernel set when the
 * file was written and age_file cannot set back) before its cache entry
 * is written, so that the entry is a sure one, as it would be there. */
static void let_sources_settle(void)
{
    usleep(2100 * 1000);
}

/* Set a file's mtime `age` seconds into the past. */
static void age_file(const char *path, long age)
{
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= age;
    t[1] = t[0];
    if (utimensat(AT_FDCWD, path, t, 0) != 0)
        bench_die("utimensat %s: %s", path, strerror(errno));
}

static void make_dir(const char *path)
{
    if (bench_sh("mkdir -p -m 0700 '%s'", path) != 0)
        bench_die("cannot create %s", path);
}

/* The one bytecode file under cache/lua, or NULL. */
static char *cache_file(const char *cache)
{
    char *pat = bench_fmt("%s/lua/*.mhc", cache);
    glob_t g;
    char *f = NULL;
    if (glob(pat, 0, NULL, &g) == 0) {
        if (g.gl_pathc == 1)
            f = strdup(g.gl_pathv[0]);
        globfree(&g);
    }
    free(pat);
    return f;
}

/* ---- hosts -------------------------------------------------------------- */

/* What the log hook saw: traces (verbose hosts) and anything worse. */
typedef struct logseen {
    int from_cache;     /* "bytecode from cache" */
    int compiled;       /* "compiled N bytes of source" */
    int warnings;       /* warnings and errors: a setup fault here */
    char last[512];
    bool count;         /* install the fault hook (checks only: timed
                           hosts have none, as in production) */
    int reads;          /* its "read" sites: whole-file reads (source,
                           cache file) */
} logseen;

static int fault_hook(void *ud, const char *site)
{
    logseen *s = ud;
    s->reads += strcmp(site, "read") == 0;
    return 0; /* count only */
}

static void log_hook(void *ud, mh_log_level level, const char *msg)
{
    logseen *s = ud;
    if (strstr(msg, "bytecode from cache"))
        s->from_cache++;
    if (strstr(msg, "compiled") && strstr(msg, "bytes of source"))
        s->compiled++;
    if (level <= MH_LOG_WARN) {
        s->warnings++;
        snprintf(s->last, sizeof s->last, "%s", msg);
    }
}

/* A host searching `path`, caching in `cache` (bench_host makes a new
 * cache dir every time; a warm cache needs the same one again). */
static mh_host *host_at(const char *path, const char *cache, unsigned flags,
                        logseen *seen)
{
    mh_config cfg;
    bench_config(&cfg, path, cache, flags);
    cfg.log = log_hook;
    cfg.log_ud = seen;
    if (seen->count) {
        cfg.fault = fault_hook;
        cfg.fault_ud = seen;
    }
    return bench_host_new(&cfg);
}

static mh_module *import(mh_host *h, const char *name)
{
    mh_module *m = NULL;
    mh_error *err = NULL;
    if (mh_import(h, name, &m, &err) != MH_OK)
        bench_die("lua: import %s: %s", name, mh_error_message(err));
    return m;
}

/* ---- table 1: cold imports ---------------------------------------------- */

typedef struct ctx {
    int reps;               /* imports per sample, each in a fresh host */
    const char *dir;        /* holds benchlua.lua */
    const char *dir_unsure; /* the same, cached within 2 s of its mtime */
    const char *dir_tiny;   /* holds tiny.lua: one line */
    const char *empty;      /* cache dir that stays empty */
    const char *warm;       /* cache dir holding benchlua's bytecode */
    const char *warm_unsure;
    const char *warm_tiny;
    const char *src;        /* the source text, for the peers */
    size_t src_len;
    unsigned char *bc;      /* lua_dump of it, for the peers */
    size_t bc_len;
    char *chunkname;
    logseen seen;           /* warnings of every timed host */
} ctx;

/* Imports per sample. */
static int reps_per_sample(void)
{
    return bench.quick ? 4 : 20;
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
    (void)L;
    FILE *f = ud;
    return fwrite(p, 1, n, f) == n ? 0 : 1;
}

/* The module as the peers get it, from file (the chunk named after it):
 * its text, and the bytecode lua_dump makes of it. */
static void module_of(ctx *c, const char *file)
{
    c->src = module_source(&c->src_len);
    c->chunkname = bench_fmt("@%s", file);
    lua_State *L = luaL_newstate();
    char *bc = NULL;
    FILE *f = open_memstream(&bc, &c->bc_len);
    if (!L || !f ||
        luaL_loadbufferx(L, c->src, c->src_len, c->chunkname, "t") !=
            LUA_OK ||
        lua_dump(L, dump_writer, f, 0) != 0)
        bench_die("lua: cannot dump the module");
    fclose(f);
    c->bc = (unsigned char *)bc;
    lua_close(L);
}

/* reps cold imports of `name`, each in a new host (made and freed
 * untimed); mean µs per import. */
static double cold(ctx *c, const char *path, const char *cache,
                   unsigned flags, const char *name)
{
    uint64_t total = 0;
    for (int r = 0; r < c->reps; r++) {
        mh_host *h = cache ? host_at(path, cache, flags, &c->seen)
                           : bench_host(path, flags, NULL, NULL);
        mh_module *m = NULL;
        mh_error *err = NULL;
        uint64_t t = bench_now_ns();
        mh_status rc = mh_import(h, name, &m, &err);
        total += bench_now_ns() - t;
        if (rc != MH_OK)
            bench_die("lua: import %s: %s", name, mh_error_message(err));
        mh_host_free(h);
    }
    if (c->seen.warnings)
        bench_die("lua: the host warned: %s", c->seen.last);
    return (double)total / c->reps / 1e3;
}

static double s_compile(void *p)
{
    ctx *c = p;
    return cold(c, c->dir, c->empty, MH_CONFIG_NO_BYTECODE_WRITE,
                "benchlua");
}

static double s_cached(void *p)
{
    ctx *c = p;
    return cold(c, c->dir, c->warm, 0, "benchlua");
}

/* A first import as it happens by default: compile, then write the cache
 * (lua_dump, checksum, temporary file, rename; not fsynced) -- a new cache dir
 * every time. */
static double s_first(void *p)
{
    ctx *c = p;
    return cold(c, c->dir, NULL, 0, "benchlua");
}

static double s_unsure(void *p)
{
    ctx *c = p;
    return cold(c, c->dir_unsure, c->warm_unsure, MH_CONFIG_NO_BYTECODE_WRITE,
                "benchlua");
}

static double s_tiny(void *p)
{
    ctx *c = p;
    return cold(c, c->dir_tiny, c->warm_tiny, 0, "tiny");
}

/* The 1-line module's import as the first thing a new process does: the
 * bench runs itself (`--child lua.first`) in a process of its own, which
 * makes a host and times its first import, so the process's one-time
 * costs (the first use of each library the import calls into) are in
 * the figure, and process start-up is not. */
static double s_tiny_process(void *p)
{
    ctx *c = p;
    /* The child finds the module and its cache where s_tiny does. */
    setenv("MH_BENCH_TINY_DIR", c->dir_tiny, 1);
    setenv("MH_BENCH_TINY_CACHE", c->warm_tiny, 1);
    char *cmd = bench_child_cmd("lua.first");
    FILE *f = popen(cmd, "r");
    double us = NAN;
    if (!f || fscanf(f, "%lf", &us) != 1)
        us = NAN;
    if (!f || pclose(f) != 0 || isnan(us))
        bench_die("lua: the child timing a process's first import failed "
                  "(%s)", cmd);
    free(cmd);
    return us;
}

/* One way of the running-host table, run by a worker of its own
 * (bench_worker): modhost compiling, modhost from the cache, plain Lua
 * from source, plain Lua from bytecode. */
enum { WAY_COMPILE, WAY_CACHED, WAY_LUA_SRC, WAY_LUA_BC, WAYS };
static int way_child(int kind);

/* `--child lua.first` (above), or `--child lua.way.K` (a worker of the
 * running-host table). */
static int child(const char *id)
{
    if (strncmp(id, "way.", 4) == 0 && id[4] >= '0' &&
        id[4] < '0' + WAYS && !id[5])
        return way_child(id[4] - '0');
    if (strcmp(id, "first") != 0)
        bench_die("lua: no child '%s'", id);
    const char *dir = getenv("MH_BENCH_TINY_DIR");
    const char *cache = getenv("MH_BENCH_TINY_CACHE");
    if (!dir || !cache)
        bench_die("lua: the child's directories are not set");
    /* What is timed is an import from the cache: it must be there, and
     * still the same file after (a miss would compile and rewrite it). */
    char *have = cache_file(cache);
    if (!have)
        bench_die("lua: no bytecode cached in %s", cache);
    struct stat before, after;
    if (stat(have, &before) != 0)
        bench_die("lua: %s: %s", have, strerror(errno));
    logseen seen = {0};
    mh_host *h = host_at(dir, cache, 0, &seen);
    mh_module *m = NULL;
    mh_error *err = NULL;
    uint64_t t = bench_now_ns();
    mh_status rc = mh_import(h, "tiny", &m, &err);
    uint64_t dt = bench_now_ns() - t;
    if (rc != MH_OK)
        bench_die("lua: import tiny: %s", mh_error_message(err));
    if (seen.warnings)
        bench_die("lua: the host warned: %s", seen.last);
    mh_host_free(h);
    if (stat(have, &after) != 0 || after.st_ino != before.st_ino ||
        after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
        after.st_mtim.tv_nsec != before.st_mtim.tv_nsec)
        bench_die("lua: %s changed: the import was not from the cache",
                  have);
    free(have);
    printf("%.3f\n", (double)dt / 1e3);
    return 0;
}

/* Plain Lua: a new state with the standard libraries, the chunk loaded
 * (text or binary) and run; closed untimed.  mode "t" or "b"; with
 * `bare`, only the load is timed (in a state made untimed, not run): what
 * "bytecode loads N times faster than source compiles" compares. */
static double peer(ctx *c, const char *mode, bool bare)
{
    bool text = mode[0] == 't';
    uint64_t total = 0;
    for (int r = 0; r < c->reps; r++) {
        lua_State *L = NULL;
        if (bare) {
            L = luaL_newstate();
            luaL_openlibs(L);
        }
        uint64_t t = bench_now_ns();
        if (!bare) {
            L = luaL_newstate();
            luaL_openlibs(L);
        }
        int rc = text ? luaL_loadbufferx(L, c->src, c->src_len,
                                         c->chunkname, mode)
                      : luaL_loadbufferx(L, (const char *)c->bc, c->bc_len,
                                         c->chunkname, mode);
        if (rc == LUA_OK && !bare)
            rc = lua_pcall(L, 0, 1, 0);
        total += bench_now_ns() - t;
        if (rc != LUA_OK || !(bare ? lua_isfunction(L, -1)
                                   : lua_istable(L, -1)))
            bench_die("lua: plain Lua (%s): %s", mode,
                      rc != LUA_OK ? lua_tostring(L, -1) : "no table");
        lua_close(L);
    }
    return (double)total / c->reps / 1e3;
}

static double s_lua_src(void *p)
{
    return peer(p, "t", false);
}

static double s_lua_bc(void *p)
{
    return peer(p, "b", false);
}

static double s_lua_compile(void *p)
{
    return peer(p, "t", true);
}

static double s_lua_undump(void *p)
{
    return peer(p, "b", true);
}

static double s_lua_state(void *p)
{
    ctx *c = p;
    uint64_t total = 0;
    for (int r = 0; r < c->reps; r++) {
        uint64_t t = bench_now_ns();
        lua_State *L = luaL_newstate();
        luaL_openlibs(L);
        total += bench_now_ns() - t;
        lua_close(L);
    }
    return (double)total / c->reps / 1e3;
}

/* selftest() of the module in plain Lua: the reference result. */
static long long lua_selftest(const ctx *c)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadbufferx(L, c->src, c->src_len, c->chunkname, "t") !=
            LUA_OK ||
        lua_pcall(L, 0, 1, 0) != LUA_OK)
        bench_die("lua: the generated module fails: %s",
                  lua_tostring(L, -1));
    lua_getfield(L, -1, "selftest");
    if (lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_isinteger(L, -1))
        bench_die("lua: selftest: %s", lua_isstring(L, -1)
                                           ? lua_tostring(L, -1)
                                           : "not an integer");
    long long v = (long long)lua_tointeger(L, -1);
    lua_close(L);
    return v;
}

/* selftest() of the module as modhost loaded it, through mh_module_call.
 * cJSON is libmodhost's dependency, not ours: its functions are looked up
 * in the process (the struct's fields need no function). */
static void check_selftest(mh_module *m, long long want, const char *how)
{
    cJSON *res = NULL;
    mh_error *err = NULL;
    if (mh_module_call(m, "selftest", NULL, &res, &err) != MH_OK)
        bench_die("lua: selftest (%s): %s", how, mh_error_message(err));
    if (!res || !(res->type & cJSON_Number) ||
        res->valuedouble != (double)want)
        bench_die("lua: selftest (%s) gave %.17g, plain Lua %lld", how,
                  res ? res->valuedouble : NAN, want);
    void (*del)(cJSON *) = (void (*)(cJSON *))dlsym(RTLD_DEFAULT,
                                                    "cJSON_Delete");
    if (del)
        del(res);
}

/* One verbose import, to see which way it went: the trace says
 * "compiled" or "bytecode from cache" (docs/lua.md), and the fault hook
 * counts whole-file reads: the source when compiling; the cache file
 * alone on a sure hit (by stat); the cache file, the source (to hash it)
 * and the cache file again for an unsure entry. */
static void check_way(const char *path, const char *cache, unsigned flags,
                      bool want_cache, int want_reads, long long want,
                      const char *how)
{
    logseen s = {.count = true};
    mh_host *h = host_at(path, cache, flags | MH_CONFIG_VERBOSE, &s);
    mh_module *m = import(h, "benchlua");
    if (mh_module_kind_of(m) != MH_KIND_LUA)
        bench_die("lua: benchlua (%s) is a %s module", how,
                  mh_module_kind_name(mh_module_kind_of(m)));
    check_selftest(m, want, how);
    mh_host_free(h);
    if (s.warnings)
        bench_die("lua: %s: the host warned: %s", how, s.last);
    if (want_cache ? s.from_cache != 1 || s.compiled != 0
                   : s.compiled != 1 || s.from_cache != 0)
        bench_die("lua: %s: %d compiled, %d from cache: not what is "
                  "measured", how, s.compiled, s.from_cache);
    if (s.reads != want_reads)
        bench_die("lua: %s: %d file reads, %d expected: not what is "
                  "measured", how, s.reads, want_reads);
}

/* Write the bytecode cache of `dir`'s benchlua (or tiny) into `cache`. */
static char *warm_up(const char *dir, const char *cache, const char *name)
{
    logseen s = {0};
    mh_host *h = host_at(dir, cache, 0, &s);
    import(h, name);
    mh_host_free(h);
    char *f = cache_file(cache);
    if (!f || s.warnings)
        bench_die("lua: no bytecode cached for %s in %s%s%s", name, cache,
                  s.warnings ? ": " : "", s.last);
    return f;
}

/* ---- table 2: hits ------------------------------------------------------ */

typedef struct hctx {
    mh_host *host;
    const char *name;
    lua_State *L;           /* for the plain Lua row */
} hctx;

/* A sample is the median of BATCHES batches of HITS / BATCHES hits: on a
 * shared machine a batch may be preempted, and one such batch must not
 * decide the sample (all rows alike). */
#define BATCHES 10

static double s_hit(void *p)
{
    hctx *c = p;
    double v[BATCHES];
    size_t hits = 0;
    for (int b = 0; b < BATCHES; b++) {
        uint64_t t = bench_now_ns();
        for (int r = 0; r < HITS / BATCHES; r++) {
            mh_module *m;
            hits += mh_import(c->host, c->name, &m, NULL) == MH_OK;
        }
        v[b] = (double)(bench_now_ns() - t) / (HITS / BATCHES);
    }
    if (hits != HITS)
        bench_die("lua: loaded module %s was not found", c->name);
    return bench_median(v, BATCHES);
}

static double s_require(void *p)
{
    hctx *c = p;
    double v[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        lua_getglobal(c->L, "bench_requires");
        lua_pushinteger(c->L, HITS / BATCHES / 100);
        uint64_t t = bench_now_ns();
        if (lua_pcall(c->L, 1, 0, 0) != LUA_OK)
            bench_die("lua: require: %s", lua_tostring(c->L, -1));
        v[b] = (double)(bench_now_ns() - t) / (HITS / BATCHES);
    }
    return bench_median(v, BATCHES);
}

/* Plain Lua with benchlua loaded by its own `require` (package.path set
 * to the module's directory), and bench_requires(k): k passes of 100
 * literal `require "benchlua"`, as registry.c does for its names. */
static lua_State *require_setup(const char *dir)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    char *src = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&src, &len);
    fprintf(f, "package.path = '%s/?.lua'\n"
            "assert(type(require 'benchlua') == 'table')\n"
            "local require = require\n"
            "function bench_requires(k)\n  for _ = 1, k do\n", dir);
    for (int i = 0; i < 100; i++)
        fputs("    require 'benchlua'\n", f);
    fputs("  end\nend\n", f);
    fclose(f);
    if (luaL_loadbuffer(L, src, len, "bench") != LUA_OK ||
        lua_pcall(L, 0, 0, 0) != LUA_OK)
        bench_die("lua: require setup: %s", lua_tostring(L, -1));
    free(src);
    return L;
}

/* ---- the area ----------------------------------------------------------- */

static void run_cold(ctx *c, long long want)
{
    enum { COMPILE, CACHED, FIRST, UNSURE, TINY, TINY_PROC, L_SRC, L_BC,
           L_COMPILE, L_UNDUMP, L_STATE, N_VAR };
    bench_var v[N_VAR] = {
        [COMPILE] = {"modhost: compile from source (no cache)", s_compile,
                     c, 0},
        [CACHED] = {"modhost: bytecode from cache", s_cached, c, 0},
        [FIRST] = {"modhost: first import, compile + write cache", s_first,
                   c, 0},
        [UNSURE] = {"modhost: cached, entry unsure (hash check)", s_unsure,
                    c, 0},
        [TINY] = {"modhost: 1-line module from cache", s_tiny, c, 0},
        [TINY_PROC] = {"modhost: the same, a new process's first import",
                       s_tiny_process, c, 0},
        [L_SRC] = {"Lua 5.4: new state + load source + run", s_lua_src, c,
                   0},
        [L_BC] = {"Lua 5.4: new state + load bytecode + run", s_lua_bc, c,
                  0},
        [L_COMPILE] = {"Lua 5.4: load source only (compile)", s_lua_compile,
                       c, 0},
        [L_UNDUMP] = {"Lua 5.4: load bytecode only (undump)", s_lua_undump,
                      c, 0},
        [L_STATE] = {"Lua 5.4: new state + openlibs only", s_lua_state, c,
                     0},
    };
    bench_interleave(v, N_VAR, bench.rounds);

    /* Nothing changed under the measured variants: the compile variant
     * wrote nothing, the cached one still loads from cache. */
    char *stray = cache_file(c->empty);
    if (stray)
        bench_die("lua: the no-write host cached %s", stray);
    check_way(c->dir, c->warm, 0, true, 1, want, "cached, after the run");

    char *unit = bench_fmt("µs per cold import of a %d-line module "
                           "(%zu bytes of source, %zu of bytecode) in a "
                           "fresh host: Lua state created, chunk loaded and "
                           "run; mean of %d imports per sample",
                           LINES, c->src_len, c->bc_len, c->reps);
    bench_table("Lua module: cached bytecode vs compiling the source", unit);
    free(unit);
    for (int i = 0; i < N_VAR; i++)
        bench_row(v[i].name, v[i].median, "µs", i == COMPILE);
    bench_note("modhost compile ÷ from cache in a fresh host: %.2f (the "
               "target is held against the running host, below: a new "
               "host's one-time costs are in both ways here).",
               v[COMPILE].median / v[CACHED].median);
    double tiny = v[TINY].median;
    bench_note("Each import runs in a new host (created and freed outside "
               "the timed region), so the host's Lua state is created in "
               "the timed import, as in a real first import; the plain Lua "
               "\"new state\" rows create theirs in the timed region "
               "likewise. Compile: an empty cache dir and "
               "`MH_CONFIG_NO_BYTECODE_WRITE`; from cache: the bytecode "
               "written once beforehand, the source's mtime an hour before "
               "that (an installed module); each way checked by the "
               "host's trace (`compiled` / `bytecode from cache`) and the "
               "module's selftest() through `mh_module_call`.");
    bench_note("The same ratio elsewhere in this run: plain Lua, new state "
               "+ load + run: %.1f; plain Lua, load only (the \"bytecode "
               "loads 10× faster\" figure): %.1f; modhost less its "
               "1-line-module cost (the part that depends on the module): "
               "%.1f.",
               v[L_SRC].median / v[L_BC].median,
               v[L_COMPILE].median / v[L_UNDUMP].median,
               (v[COMPILE].median - tiny) / (v[CACHED].median - tiny));
    bench_note("Information rows: \"first import\" is the default first "
               "import, which also writes the cache (dump, checksum, "
               "rename; not fsynced), in a new cache dir each time; \"entry "
               "unsure\" is a cache entry recorded less than 2 s after the "
               "source's last change (an edit, then an immediate run), "
               "which is checked by reading and hashing the source (here "
               "at every import, as cache writes are off: else the first "
               "hit 2 s after the change records it again, as a sure "
               "one); "
               "\"1-line module\" is the part of a cold import that does "
               "not depend on the module (Lua state, path search, "
               "directory checks, cache lookup); \"a new process's first "
               "import\" is that import as the first a process makes (one "
               "process per sample, timed inside it): what a process pays "
               "once on top, for the first use of the libraries the import "
               "calls into.");
    bench_table_end();
}

static void run_hits(ctx *c, const char *native, const char *lua_alike)
{
    char *path = bench_fmt("%s;%s/tree", c->dir, bench.fixtures);
    char *cache = bench_fmt("%s/lua/cache-hits", bench.work);
    logseen s = {0};
    hctx hl = {host_at(path, cache, 0, &s), "benchlua", NULL};
    hctx ha = {hl.host, lua_alike, NULL};
    hctx hn = {hl.host, native, NULL};
    hctx hr = {NULL, NULL, require_setup(c->dir)};
    if (mh_module_kind_of(import(hl.host, "benchlua")) != MH_KIND_LUA ||
        mh_module_kind_of(import(hl.host, lua_alike)) != MH_KIND_LUA ||
        mh_module_kind_of(import(hl.host, native)) != MH_KIND_NATIVE)
        bench_die("lua: the hit modules are not of the expected kinds");
    if (s.warnings)
        bench_die("lua: the host warned: %s", s.last);

    bench_var v[] = {
        {"modhost: mh_import hit, native plugin", s_hit, &hn, 0},
        {"modhost: mh_import hit, Lua (same name length)", s_hit, &ha, 0},
        {"modhost: mh_import hit, `benchlua` (Lua)", s_hit, &hl, 0},
        {"Lua 5.4: require \"benchlua\" (package.loaded)", s_require, &hr,
         0},
    };
    size_t n = sizeof v / sizeof v[0];
    bench_interleave(v, n, bench.rounds);

    char *unit = bench_fmt("ns per import of a loaded module; a sample is "
                           "the median of %d batches of %d hits; one host "
                           "whose path has the Lua modules' directory and "
                           "the fixtures' tree/", BATCHES, HITS / BATCHES);
    bench_table("Lua module: cached require through the host", unit);
    free(unit);
    for (size_t i = 0; i < n; i++)
        bench_row(v[i].name, v[i].median, "ns", i == 0);
    bench_target("Lua hit ÷ native hit (same name length)",
                 v[1].median / v[0].median, 1.10, false);
    bench_note("\"As fast as a native registry hit\" is read as within "
               "10%%. A hit costs a hash of the name and a probe, so the "
               "Lua module compared is `%s` (the 2,000-line source again), "
               "named like the native `%s` (same length, same packages); "
               "`benchlua` is shown too, its shorter name hashing faster. "
               "The hit path is the registry's, whatever the module's "
               "kind.", lua_alike, native);
    bench_table_end();

    lua_close(hr.L);
    mh_host_free(hl.host);
    free(path);
    free(cache);
}

/* ---- table 1b: the same module in a running host ----------------------- */

/* A host that has been working for a while: its Lua state made, its
 * directory listed and checked, its cache directory checked (a first,
 * 1-line module imported).  Each sample imports the next fresh copies of
 * the 2,000-line module (benchlua_K: the same text under other names), so
 * what is timed is what depends on the module: compiling it, or reading,
 * checking and undumping its cached bytecode -- then running it. */
typedef struct rctx {
    ctx *c;
    mh_host *h;
    int next;               /* next copy to import */
    int copies;
} rctx;

static double running(void *p)
{
    rctx *r = p;
    uint64_t total = 0;
    for (int k = 0; k < r->c->reps; k++) {
        if (r->next >= r->copies)
            bench_die("lua: out of module copies");
        char name[32];
        snprintf(name, sizeof name, "benchlua_%d", r->next++);
        mh_module *m = NULL;
        mh_error *err = NULL;
        uint64_t t = bench_now_ns();
        mh_status rc = mh_import(r->h, name, &m, &err);
        total += bench_now_ns() - t;
        if (rc != MH_OK)
            bench_die("lua: import %s: %s", name, mh_error_message(err));
    }
    return (double)total / r->c->reps / 1e3;
}

/* Plain Lua under the same conditions: one state per way, made (libraries
 * opened, a first module run) before the timing, each import loading the
 * module (compiling its source, or undumping its bytecode), running it and
 * keeping its table, as require and a host keep theirs.  What a running
 * state costs per import, module memory and collector included, without
 * any host. */
typedef struct lrctx {
    ctx *c;
    lua_State *L;
    bool text;
    int kept;
} lrctx;

static double running_lua(void *p)
{
    lrctx *r = p;
    ctx *c = r->c;
    lua_State *L = r->L;
    uint64_t total = 0;
    for (int k = 0; k < c->reps; k++) {
        uint64_t t = bench_now_ns();
        int rc = r->text ? luaL_loadbufferx(L, c->src, c->src_len,
                                            c->chunkname, "t")
                         : luaL_loadbufferx(L, (const char *)c->bc,
                                            c->bc_len, c->chunkname, "b");
        if (rc == LUA_OK)
            rc = lua_pcall(L, 0, 1, 0);
        if (rc == LUA_OK && lua_istable(L, -1))
            lua_rawseti(L, 1, ++r->kept); /* kept, as package.loaded */
        total += bench_now_ns() - t;
        if (rc != LUA_OK || lua_gettop(L) != 1)
            bench_die("lua: plain Lua, running state: %s",
                      rc != LUA_OK ? lua_tostring(L, -1) : "no table");
    }
    return (double)total / c->reps / 1e3;
}

static lua_State *running_state(void)
{
    lua_State *L = luaL_newstate();
    if (!L)
        bench_die("out of memory");
    luaL_openlibs(L);
    lua_newtable(L); /* index 1: the modules kept */
    static const char tiny[] = "return {answer = function() return 42 end}";
    if (luaL_loadbufferx(L, tiny, sizeof tiny - 1, "=tiny", "t") != LUA_OK ||
        lua_pcall(L, 0, 1, 0) != LUA_OK)
        bench_die("lua: a plain state's first module failed");
    lua_rawseti(L, 1, 0);
    return L;
}

/* KB of Lua memory one kept copy of the module holds (collected fully
 * before and after). */
static double kept_kb(const ctx *c)
{
    lua_State *L = running_state();
    lua_gc(L, LUA_GCCOLLECT);
    int before = lua_gc(L, LUA_GCCOUNT);
    if (luaL_loadbufferx(L, (const char *)c->bc, c->bc_len, c->chunkname,
                         "b") != LUA_OK ||
        lua_pcall(L, 0, 1, 0) != LUA_OK)
        bench_die("lua: the module's bytecode failed in a plain state");
    lua_rawseti(L, 1, 1);
    lua_gc(L, LUA_GCCOLLECT);
    double kb = lua_gc(L, LUA_GCCOUNT) - before;
    lua_close(L);
    return kb;
}

/* A way's worker: its module, host or state, and what its trace saw. */
typedef struct way {
    ctx *c;
    int kind;
    const char *dir, *empty, *warm;
    int copies;
    logseen seen;           /* the child's, for its host's trace */
    rctx r;                 /* the modhost ways' */
    lrctx l;                /* the plain ones' */
} way;

/* What a way's worker says when it ends: what its host's trace saw. */
typedef struct way_report {
    int warnings, compiled, from_cache, imports;
    char last[512];
} way_report;

static void way_setup(void *p)
{
    way *w = p;
    if (w->kind >= WAY_LUA_SRC) {
        w->l = (lrctx){w->c, running_state(), w->kind == WAY_LUA_SRC, 0};
        return;
    }
    bool compile = w->kind == WAY_COMPILE;
    mh_host *h = host_at(w->dir, compile ? w->empty : w->warm,
                         MH_CONFIG_VERBOSE |
                             (compile ? MH_CONFIG_NO_BYTECODE_WRITE : 0),
                         &w->seen);
    import(h, "tiny");
    w->seen.compiled = w->seen.from_cache = 0;
    w->r = (rctx){w->c, h, 0, w->copies};
}

static double way_sample(void *p)
{
    way *w = p;
    return w->kind >= WAY_LUA_SRC ? running_lua(&w->l) : running(&w->r);
}

static void way_finish(void *p, void *out)
{
    way *w = p;
    way_report *rep = out;
    if (w->kind >= WAY_LUA_SRC) {
        lua_close(w->l.L);
        return;
    }
    mh_host_free(w->r.h);
    rep->warnings = w->seen.warnings;
    rep->compiled = w->seen.compiled;
    rep->from_cache = w->seen.from_cache;
    rep->imports = w->r.next;
    memcpy(rep->last, w->seen.last, sizeof rep->last);
}

/* Where the running-host table's modules and caches are, under base (the
 * area's work directory), and how many copies of the module it imports. */
static way running_way(ctx *c, const char *base, int kind)
{
    return (way){.c = c, .kind = kind,
                 .dir = bench_fmt("%s/src-running", base),
                 .empty = bench_fmt("%s/cache-running-empty", base),
                 .warm = bench_fmt("%s/cache-running-warm", base),
                 .copies = (bench.rounds + 1) * c->reps};
}

/* Where the area keeps its files: <work>/lua, the module's sources in
 * <work>/lua/src, and the 2,000-line module there as benchlua.lua; the
 * parent (run) and a way's worker (way_child) both find them here. */
static char *area_base(void)
{
    return bench_fmt("%s/lua", bench.work);
}

static char *source_dir(const char *base)
{
    return bench_fmt("%s/src", base);
}

static char *module_file_in(const char *dir)
{
    return bench_fmt("%s/benchlua.lua", dir);
}

/* The worker of one way (`--child lua.way.K`): the bench run anew, so
 * that nothing of the areas before is in its heap; what it needs of the
 * module made as run() makes it. */
static int way_child(int kind)
{
    static ctx c;
    static way w;
    c.reps = reps_per_sample();
    char *base = area_base();
    char *file = module_file_in(source_dir(base));
    module_of(&c, file);
    w = running_way(&c, base, kind);
    bench_worker_serve(&(bench_worker){.out_size = sizeof(way_report),
                                       .setup = way_setup,
                                       .sample = way_sample,
                                       .finish = way_finish, .state = &w});
}

static void run_running(ctx *c, const char *base)
{
    way paths = running_way(c, base, 0);
    int copies = paths.copies;
    const char *dir = paths.dir, *empty = paths.empty, *warm = paths.warm;
    make_dir(dir);
    make_dir(empty);
    for (int k = 0; k < copies; k++) {
        char *f = bench_fmt("%s/benchlua_%d.lua", dir, k);
        write_file(f, c->src, c->src_len);
        age_file(f, 3600);
        free(f);
    }
    static const char tiny[] = "return {answer = function() return 42 end}\n";
    char *ft = bench_fmt("%s/tiny.lua", dir);
    write_file(ft, tiny, sizeof tiny - 1);
    age_file(ft, 3600);
    free(ft);
    let_sources_settle();

    /* Every copy's bytecode, written once beforehand. */
    logseen ws = {0};
    mh_host *wh = host_at(dir, warm, 0, &ws);
    for (int k = 0; k < copies; k++) {
        char name[32];
        snprintf(name, sizeof name, "benchlua_%d", k);
        import(wh, name);
    }
    mh_host_free(wh);
    if (ws.warnings)
        bench_die("lua: warming the cache: %s", ws.last);

    /* Each way in a process of its own: a heap, a Lua state, a host
     * that no other way's imports (nor any area before) leave anything
     * in. */
    static const char *const names[WAYS] = {
        "modhost: compile from source (no cache)",
        "modhost: bytecode from cache",
        "Lua 5.4, running state: load source + run, kept",
        "Lua 5.4, running state: load bytecode + run, kept",
    };
    bench_worker workers[WAYS];
    bench_var v[WAYS];
    char ids[WAYS][16];
    for (int i = 0; i < WAYS; i++) {
        snprintf(ids[i], sizeof ids[i], "lua.way.%d", i);
        workers[i] = (bench_worker){.child = ids[i],
                                    .out_size = sizeof(way_report)};
        bench_worker_start(&workers[i]);
        v[i] = (bench_var){names[i], bench_worker_sample, &workers[i], 0};
    }
    bench_interleave(v, WAYS, bench.rounds);
    way_report rep[WAYS];
    for (int i = 0; i < WAYS; i++)
        if (!bench_worker_end(&workers[i], &rep[i]))
            bench_die("lua: the running-host way \"%s\" failed", names[i]);
    way_report *sc = &rep[WAY_COMPILE], *sw = &rep[WAY_CACHED];
    /* Each way did what it is named for, every time. */
    if (sc->warnings || sw->warnings)
        bench_die("lua: a running host warned: %s",
                  sc->warnings ? sc->last : sw->last);
    if (sc->compiled != sc->imports || sc->from_cache != 0 ||
        sw->from_cache != sw->imports || sw->compiled != 0)
        bench_die("lua: running hosts: %d compiled + %d cached, and %d "
                  "cached + %d compiled: not what is measured",
                  sc->compiled, sc->from_cache, sw->from_cache, sw->compiled);
    char *stray = cache_file(empty);
    if (stray)
        bench_die("lua: the no-write host cached %s", stray);

    char *unit = bench_fmt("µs per import of the %d-line module into a "
                           "running host (its Lua state made, directory "
                           "listed, a first module imported): compiled, or "
                           "its cached bytecode read, checked and undumped; "
                           "then run; plain Lua the same in a running state "
                           "of its own; mean of %d imports per sample",
                           LINES, c->reps);
    bench_table("Lua module in a running host: cached bytecode vs "
                "compiling", unit);
    free(unit);
    for (int i = 0; i < 4; i++)
        bench_row(v[i].name, v[i].median, "µs", i == 0);
    bench_target("modhost compile ÷ modhost from cache",
                 v[0].median / v[1].median, 8, true);
    bench_note("Plain Lua under the same conditions (a running state that "
               "keeps every module it loads): compile ÷ undump %.2f. Each "
               "kept module holds about %.0f KB of new memory, which both "
               "ways pay for alike (this run's machine: %.2f µs a fresh "
               "page, at the top of the file). Each of the four ways runs "
               "in a process of its own (its heap, its host or state): "
               "the bench program started anew, so that no area run "
               "before leaves anything in its heap; each is asked for "
               "one sample at a time, round by round.",
               v[2].median / v[3].median, kept_kb(c), bench.page_us);
    bench_note("Each imported name is new to its host (copies of the same "
               "2,000-line text), so every import really compiles or "
               "really loads bytecode: checked by the hosts' traces "
               "(%d compiled, %d from cache). The fresh-host table above "
               "adds to both ways what a new host pays once (making its "
               "Lua state, listing and checking directories).",
               sc->compiled, sw->from_cache);
    bench_table_end();
    free((char *)dir);
    free((char *)empty);
    free((char *)warm);
}

static void run(void)
{
    ctx c = {0};
    c.reps = reps_per_sample();
    char *base = area_base();
    char *dir = source_dir(base);
    char *dir_unsure = bench_fmt("%s/src-unsure", base);
    char *dir_tiny = bench_fmt("%s/src-tiny", base);
    char *empty = bench_fmt("%s/cache-empty", base);
    char *warm = bench_fmt("%s/cache-warm", base);
    char *warm_unsure = bench_fmt("%s/cache-unsure", base);
    char *warm_tiny = bench_fmt("%s/cache-tiny", base);
    c.dir = dir;
    c.dir_unsure = dir_unsure;
    c.dir_tiny = dir_tiny;
    c.empty = empty;
    c.warm = warm;
    c.warm_unsure = warm_unsure;
    c.warm_tiny = warm_tiny;
    make_dir(dir);
    make_dir(dir_unsure);
    make_dir(dir_tiny);

    /* The Lua module that looks like the first native fixture module:
     * pkgA.subB.mod_N -> pkgA.subB.lua_N (the packages are namespaces
     * across both entries). */
    const char *const *names;
    bench_names(&names);
    const char *native = names[0];
    const char *last = strrchr(native, '.');
    if (!last || strncmp(last + 1, "mod_", 4) != 0)
        bench_die("lua: unexpected fixture name %s", native);
    char *alike = bench_fmt("%.*s.lua_%s", (int)(last - native), native,
                            last + 5);
    char *alike_dir = bench_fmt("%s/%.*s", dir, (int)(last - native),
                                native);
    for (char *p = alike_dir + strlen(dir); *p; p++)
        if (*p == '.')
            *p = '/';
    make_dir(alike_dir);

    char *file = module_file_in(dir);
    module_of(&c, file);
    const char *src = c.src;
    size_t len = c.src_len;
    char *file_unsure = module_file_in(dir_unsure);
    char *file_tiny = bench_fmt("%s/tiny.lua", dir_tiny);
    char *file_alike = bench_fmt("%s/lua_%s.lua", alike_dir, last + 5);
    write_file(file, src, len);
    write_file(file_unsure, src, len);
    write_file(file_alike, src, len);
    static const char tiny[] = "return {answer = function() return 42 end}\n";
    write_file(file_tiny, tiny, sizeof tiny - 1);
    /* An installed module, not one edited this second: its cache entry
     * is sure (by stat).  The unsure copy keeps its fresh mtime. */
    age_file(file, 3600);
    age_file(file_tiny, 3600);
    age_file(file_alike, 3600);

    long long want = lua_selftest(&c);

    /* The unsure entry first, within 2 s of its source's writing; then
     * the others, once their sources have been still that long. */
    char *w = warm_up(dir_unsure, warm_unsure, "benchlua");
    free(w);
    let_sources_settle();
    w = warm_up(dir, warm, "benchlua");
    free(w);
    w = warm_up(dir_tiny, warm_tiny, "tiny");
    free(w);
    make_dir(empty);
    check_way(dir, empty, MH_CONFIG_NO_BYTECODE_WRITE, false, 1, want,
              "compile");
    check_way(dir, warm, 0, true, 1, want, "cached");
    check_way(dir_unsure, warm_unsure, MH_CONFIG_NO_BYTECODE_WRITE, true, 3,
              want, "cached, unsure");

    run_cold(&c, want);
    run_running(&c, base);
    run_hits(&c, native, alike);

    free(c.bc);
    free(c.chunkname);
    free((char *)c.src);
    free(file);
    free(file_unsure);
    free(file_tiny);
    free(file_alike);
    free(alike);
    free(alike_dir);
    free(base);
    free(dir);
    free(dir_unsure);
    free(dir_tiny);
    free(empty);
    free(warm);
    free(warm_unsure);
    free(warm_tiny);
}

const bench_area bench_area_lua = {"lua", "Lua modules", run, child};
