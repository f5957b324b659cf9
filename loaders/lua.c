/*
 * loaders/lua.c -- the Lua loader (mh_lua_*): modules written in Lua 5.4.
 *
 * One lua_State per host, created on first use, its memory through the
 * host's allocator, guarded by a lock held like a GIL: imports and calls
 * from several threads take turns; a Lua module whose chunk imports
 * another re-enters on the same thread; and the lock is let go while an
 * import from Lua waits for another thread, each run having a Lua thread
 * (coroutine stack) of its own -- otherwise thread 1 (running a's chunk,
 * waiting for b) and thread 2 (importing b, waiting for the state) would
 * wait for each other for ever.
 *
 * Loading a module: its source comes from a file (directory entries) or
 * from its finder's read() (databases, HTTP), and is compiled in TEXT mode
 * only -- "t" -- whatever finder it came from: a binary chunk in a .lua
 * file is refused, because Lua does not verify bytecode.  The compiled
 * chunk is cached (cache/bytecode.c) and later loaded from there in binary
 * mode, after the cache file's header and hash are checked.  The chunk
 * runs once, under lua_pcall with a traceback handler, and must return a
 * table: its exports, kept in the Lua registry.  A chunk that fails leaves
 * nothing behind (the import protocol abandons the entry) and a retry
 * compiles again.
 *
 * Calls (mh_module_call) cross as JSON values (cJSON): array elements in,
 * the first result out; Lua errors come back with message and traceback.
 */
#include "host/internal.h"
#include "host/jsonnum.h"
#include "host/secure.h"
#include "cache/atomic.h"
#include "cache/bytecode.h"
#include "cache/intern.h"
#include "finders/finder.h"
#include "loaders/loader.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdarg.h>
#include <sys/auxv.h>
#include <errno.h>
#include <unistd.h>
#include <dlfcn.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define LUA_JSON_DEPTH 64
/* Values in one call's result: a table shared at every level of a
 * nesting within the depth limit would otherwise expand to 2^depth. */
#define LUA_JSON_VALUES 1000000
#define MH_LUA_SONAME "liblua5.4.so.0"

typedef struct mh_lua {
    lua_State *L;
    /* The state's lock, held like a GIL: reentrant for its owner, and let
     * go while an import from Lua waits for another thread (which may
     * itself need the state to finish that import). */
    pthread_mutex_t gm;
    pthread_cond_t gc;
    bool held;
    pthread_t owner;
    int depth;
    bool warned_cache;         /* an unwritable cache is said once */
    bool warned_refused;       /* so is bytecode Lua refuses (written by a
                                  Lua built otherwise: all of it is) */
    int cache_ok;              /* <cache_dir>/lua: 0 unknown, 1 ok, -1 no */
    mh_atw_buf bc_buf;         /* cache files are read into this, kept */
} mh_lua;

static void gil_enter(mh_lua *lu)
{
    pthread_mutex_lock(&lu->gm);
    if (lu->held && pthread_equal(lu->owner, pthread_self())) {
        lu->depth++;
    } else {
        while (lu->held)
            pthread_cond_wait(&lu->gc, &lu->gm);
        lu->held = true;
        lu->owner = pthread_self();
        lu->depth = 1;
    }
    pthread_mutex_unlock(&lu->gm);
}

static void gil_leave(mh_lua *lu)
{
    pthread_mutex_lock(&lu->gm);
    if (--lu->depth == 0) {
        lu->held = false;
        pthread_cond_signal(&lu->gc);
    }
    pthread_mutex_unlock(&lu->gm);
}

/* Let go entirely (before waiting on the registry); returns the depth to
 * restore. */
static int gil_release(mh_lua *lu)
{
    pthread_mutex_lock(&lu->gm);
    int depth = lu->depth;
    lu->depth = 0;
    lu->held = false;
    pthread_cond_signal(&lu->gc);
    pthread_mutex_unlock(&lu->gm);
    return depth;
}

static void gil_restore(mh_lua *lu, int depth)
{
    pthread_mutex_lock(&lu->gm);
    while (lu->held)
        pthread_cond_wait(&lu->gc, &lu->gm);
    lu->held = true;
    lu->owner = pthread_self();
    lu->depth = depth;
    pthread_mutex_unlock(&lu->gm);
}

/* An import from Lua code, with the state let go meanwhile.  Every run
 * (a chunk, a call) has its own Lua thread, so another OS thread may use
 * the state while this one waits. */
static mh_status import_unlocked(mh_host *h, const char *name,
                                 mh_module **m, mh_error **e)
{
    int depth = gil_release(h->lua);
    mh_status rc = mh_import_ex(h, name, MH_IMPORT_PLAIN, m, e);
    gil_restore(h->lua, depth);
    return rc;
}

static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    mh_host *h = ud;
    if (!ptr)
        osize = 0; /* Lua passes a type tag there */
    if (nsize == 0) {
        if (ptr)
            h->alloc(h->alloc_ud, ptr, osize, 0);
        return NULL;
    }
    void *q = h->alloc(h->alloc_ud, ptr, osize, nsize);
    if (!q)
        mh_mem_refused = true;
    return q;
}

/* ---- what Lua code sees of the host ------------------------------------ */

/* The host, in the state's extra space, where Lua code cannot reach it
 * (a registry key could be cleared through debug.getregistry, an upvalue
 * through debug.setupvalue); every Lua thread made later starts with a
 * copy of it (open_libs sets it first). */
_Static_assert(LUA_EXTRASPACE >= sizeof(void *), "no room for the host");
static mh_host *host_of(lua_State *L)
{
    return *(mh_host **)lua_getextraspace(L);
}

/* What push_json made of a JSON value. */
typedef enum pushed {
    PUSHED,         /* its Lua value, on the stack */
    PUSH_NO_FORM,   /* none: nested too deep (for the value's limit, or
                       Lua's stack), or an item with no Lua form */
    PUSH_NO_MEMORY  /* none: no memory to grow the stack */
} pushed;

static pushed push_json(lua_State *L, const cJSON *j, int depth);
typedef struct json_walk json_walk;
static cJSON *to_json(lua_State *L, int idx, int depth, json_walk *w);
static int native_call(lua_State *L);

/* The registry's table of native modules' MH_CALL tables, by module
 * name: one per module and host, whatever Lua's own package.loaded holds
 * under that name (a plugin may be called "utf8"). */
static const char calls_key;

/* The loaded module whose name is the string at index idx -- as closures
 * Lua code can reach keep their module: by name, looked up again, never
 * by a pointer (debug.setupvalue could put any other there).  NULL when
 * that is no string, or names no loaded module. */
static mh_module *module_named(lua_State *L, int idx)
{
    const char *name = lua_type(L, idx) == LUA_TSTRING
                           ? lua_tostring(L, idx) : NULL;
    return name ? mh_host_module(host_of(L), name) : NULL;
}

/* Push a table of native module m's MH_CALL functions (exports
 * "call:NAME" with an address), each called with JSON values in and out,
 * as mh_module_call: made once, then kept (calls_key).  False, with
 * nothing pushed, when it has none. */
static bool push_native_calls(lua_State *L, mh_module *m)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &calls_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &calls_key);
    }
    if (lua_getfield(L, -1, m->name) == LUA_TTABLE) {
        lua_remove(L, -2);
        return true;
    }
    lua_pop(L, 1);
    size_t n = mh_module_export_count(m), calls = 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = mh_module_export_name(m, i);
        if (!e || strncmp(e, "call:", 5) != 0 || !mh_module_symbol(m, e))
            continue;
        if (calls++ == 0)
            lua_newtable(L);
        lua_pushstring(L, m->name);
        lua_pushstring(L, e + 5);
        lua_pushcclosure(L, native_call, 2);
        lua_setfield(L, -2, e + 5);
    }
    if (calls == 0) {
        lua_pop(L, 1);
        return false;
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, m->name); /* kept */
    lua_remove(L, -2);
    return true;
}

/* The luaopen_NAME function of native module m, or NULL; its name in
 * sym. */
static lua_CFunction luaopen_of(mh_module *m, const char *name,
                                char sym[MH_NAME_MAX + 16])
{
    snprintf(sym, MH_NAME_MAX + 16, "luaopen_%s", name);
    for (char *c = sym; *c; c++)
        if (*c == '.')
            *c = '_';
    return (lua_CFunction)mh_module_symbol(m, sym);
}

/* Push what a Lua `require` of module m gives: a Lua module's exports, a
 * Lua C module's luaopen_* loader result (which wins over MH_CALL
 * functions), a native module's MH_CALL functions (push_native_calls),
 * else an error. */
static int push_module(lua_State *L, mh_module *m, const char *name)
{
    if (m->kind == MH_KIND_LUA) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, m->lua_ref);
        return 1;
    }
    char sym[MH_NAME_MAX + 16];
    lua_CFunction open = luaopen_of(m, name, sym);
    if (!open && push_native_calls(L, m))
        return 1;
    if (!open)
        return luaL_error(L, "module '%s' (%s) is %s code without %s or "
                          "MH_CALL functions: nothing for Lua to use", name,
                          mh_reg_where(m), mh_module_kind_name(m->kind), sym);
    lua_pushcfunction(L, open);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    return 1;
}

/* package.searchers entry: the host's own search path and finders, so a
 * Lua package in a database or on a web server can require its siblings,
 * and a C module (luaopen_*) on the search path loads too. */
static int loader_of(lua_State *L)
{
    /* upvalue 1: host, 2: the module's name */
    mh_module *m = module_named(L, lua_upvalueindex(2));
    if (!m)
        return luaL_error(L, "this loader's module is not loaded");
    return push_module(L, m, luaL_checkstring(L, 1));
}

static void job_dep_failed(mh_status rc, const char *msg);

/* Records in m a failure of status st (MH_OK: none) whose error is msg;
 * a failure with no text is none. */
static void mark_set(mh_msg_mark *m, mh_status st, const char *msg)
{
    bool some = st != MH_OK && msg && msg[0];
    m->status = (uint8_t)(some ? st : MH_OK);
    m->len = some ? strlen(msg) : 0;
    m->hash = some ? mh_hash_bytes(msg, m->len) : 0;
}

/* What failed under Lua code, about to be raised there. */
typedef enum nested_kind {
    NESTED_IMPORT,  /* an import: any status */
    NESTED_CALL     /* a native call, with a status that passes up */
} nested_kind;

/* Something Lua code asked for failed, with rc and its error text msg,
 * about to be raised: if a module's chunk is loading here and then fails
 * with that very error (chunk_failure_status), it fails for another's
 * sake, as the nested failure did, and is not recorded as broken; so
 * does the mh_module_call running this thread's Lua, if any
 * (job_dep_failed).  Kept in the loading module's in-flight block, which
 * only this thread uses.  An import failing under a native init (through
 * a Lua function it called) marks that module at once, as its own
 * mh_host_api.import does. */
static void nested_failed(nested_kind kind, mh_status rc, const char *msg)
{
    job_dep_failed(rc, msg);
    mh_module *cur = mh_reg_current();
    if (!cur)
        return;
    mh_flight *f = cur->flight;
    if (kind == NESTED_IMPORT && !(f && f->in_chunk))
        cur->dep_failed = true; /* read by this thread's import_slow */
    if (f)
        mark_set(&f->chunk_dep, rc, msg);
}

/* A native call from Lua failed for its own reasons: nothing an earlier
 * failure recorded (nested_failed) stands for what is raised now. */
static void nested_forget(void)
{
    job_dep_failed(MH_OK, NULL);
    mh_module *cur = mh_reg_current();
    if (cur && cur->flight)
        mark_set(&cur->flight->chunk_dep, MH_OK, NULL);
}

/* Is msg, a failure raised through Lua with traceback() as its handler,
 * the failure m records, raised as it came: its text, then nothing or the
 * traceback?  (Lua code that adds words of its own fails as itself.) */
static bool raised_as_it_came(const char *msg, const mh_msg_mark *m)
{
    static const char tb[] = "\nstack traceback:";
    size_t n = m->len;
    return m->status != MH_OK && msg && strnlen(msg, n) == n &&
           mh_hash_bytes(msg, n) == m->hash &&
           (msg[n] == '\0' || strncmp(msg + n, tb, sizeof tb - 1) == 0);
}

/* The status of mod's chunk, which failed with msg: the nested failure's
 * when it raised that failure's error as it came (raised_as_it_came),
 * and then the module is not recorded as broken; else MH_EINIT.  Forgets
 * the nested failure's error. */
static mh_status chunk_failure_status(mh_module *mod, const char *msg)
{
    mh_flight *f = mod->flight;
    mh_status st = MH_EINIT;
    if (f && raised_as_it_came(msg, &f->chunk_dep)) {
        st = mh_init_status_of_dep((mh_status)f->chunk_dep.status);
        mod->dep_failed = true; /* read by this thread's import_slow */
    }
    if (f)
        mark_set(&f->chunk_dep, MH_OK, NULL);
    return st;
}

static int p_pushstr(lua_State *L)
{
    lua_pushstring(L, lua_touserdata(L, 1));
    return 1;
}

/* Push e's message, whole (a chunk's failure is matched to a nested
 * import's by it), and free e: the push, which may run out of memory and
 * raise, is made in a protected call, so that e is freed either way; a
 * memory error is raised then. */
static void push_message(lua_State *L, mh_error *e)
{
    lua_pushcfunction(L, p_pushstr);
    lua_pushlightuserdata(L, (void *)mh_error_message(e));
    int r = lua_pcall(L, 1, 1, 0);
    mh_error_free(e);
    if (r != LUA_OK)
        lua_error(L);
}

static int host_searcher(lua_State *L)
{
    mh_host *h = host_of(L);
    const char *name = luaL_checkstring(L, 1);
    mh_module *m = NULL;
    mh_error *e = NULL;
    mh_reg_set_missing(NULL);
    mh_status rc = import_unlocked(h, name, &m, &e);
    if (rc != MH_OK) {
        /* Not found, and name itself is not there: Lua's other searchers
         * may have it.  A module that is there but whose import failed
         * "not found" (a requirement of its manifest, a file gone between
         * find and load) is an error: going on would load another module
         * of that name from LUA_PATH, and drop the reason.  Told apart by
         * what the import's own walk missed, not by walking again. */
        const char *missing = mh_reg_missing();
        if (rc == MH_ENOTFOUND && !(missing && strcmp(missing, name) == 0))
            rc = MH_EINIT;
        if (rc == MH_ENOTFOUND || rc == MH_EBADNAME) {
            mh_error_free(e);
            lua_pushfstring(L, "no module '%s' on modhost's search path",
                            name);
            return 1;
        }
        nested_failed(NESTED_IMPORT, rc, mh_error_message(e));
        push_message(L, e); /* a cycle, a failed init */
        return lua_error(L);
    }
    if (m->kind == MH_KIND_NAMESPACE) {
        /* A directory without code is nothing for Lua to use: Lua's
         * other searchers are asked, as Python ranks a namespace portion
         * below any module of the name (a "json" directory of plugins
         * must not hide the json library on package.path). */
        lua_pushfstring(L, "'%s' on modhost's search path is a namespace "
                        "package (%s: a directory, no code)", name,
                        mh_reg_where(m));
        return 1;
    }
    lua_pushlightuserdata(L, h);
    lua_pushstring(L, m->name);
    lua_pushcclosure(L, loader_of, 2);
    lua_pushstring(L, mh_reg_where(m));
    return 2;
}

/* modhost.log([level,] message) */
static int lib_log(lua_State *L)
{
    mh_host *h = host_of(L);
    static const char *const levels[] = {"error", "warn", "info", "trace",
                                         NULL};
    int level = MH_LOG_INFO, arg = 1;
    if (lua_gettop(L) >= 2) {
        level = luaL_checkoption(L, 1, "info", levels);
        arg = 2;
    }
    if (level == MH_LOG_TRACE && !h->verbose)
        return 0;
    lua_Debug ar;
    const char *where = "lua";
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "S", &ar))
        where = ar.short_src;
    mh_log(h, (mh_log_level)level, "%s: %s", where, luaL_checkstring(L, arg));
    return 0;
}

/* modhost.import(name): like require, through the host only. */
static int lib_import(lua_State *L)
{
    mh_host *h = host_of(L);
    const char *name = luaL_checkstring(L, 1);
    mh_module *m = NULL;
    mh_error *e = NULL;
    mh_status rc = import_unlocked(h, name, &m, &e);
    if (rc != MH_OK) {
        nested_failed(NESTED_IMPORT, rc, mh_error_message(e));
        push_message(L, e);
        return lua_error(L);
    }
    char sym[MH_NAME_MAX + 16];
    if (m->kind == MH_KIND_LUA || !luaopen_of(m, name, sym))
        return push_module(L, m, name); /* its MH_CALL table, kept */
    /* A Lua C module: what require gave (or will give), luaopen_* run
     * once -- package.loaded, as require keeps it, read and written raw
     * (a metatable a module gave it is not asked, as p_publish). */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushstring(L, name);
    if (lua_rawget(L, -2) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    push_module(L, m, name);
    lua_pushstring(L, name);
    lua_pushvalue(L, -2);
    lua_rawset(L, -4);
    return 1;
}

/* modhost.call(module, function, ...): call another module's function
 * (a Lua module's, or a native one's MH_CALL function). */
static int lib_call(lua_State *L)
{
    int n = lua_gettop(L);
    const char *fn = luaL_checkstring(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, lib_import, 1);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1))
        return luaL_error(L, "module '%s' has no functions to call",
                          lua_tostring(L, 1));
    lua_getfield(L, -1, fn);
    if (!lua_isfunction(L, -1))
        return luaL_error(L, "module '%s' has no function '%s'",
                          lua_tostring(L, 1), fn);
    for (int i = 3; i <= n; i++)
        lua_pushvalue(L, i);
    lua_call(L, n - 2, LUA_MULTRET);
    return lua_gettop(L) - n - 1;
}

static int open_modhost(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"log", lib_log}, {"import", lib_import}, {"call", lib_call},
        {NULL, NULL}};
    luaL_newlibtable(L, fns);
    lua_pushvalue(L, lua_upvalueindex(1));
    luaL_setfuncs(L, fns, 1);
    lua_pushstring(L, MH_VERSION_STRING);
    lua_setfield(L, -2, "version");
    return 1;
}

/* Lua's own loading functions, in text mode only: Lua does not verify
 * bytecode, so no path -- package.path, load, loadfile, dofile -- may hand
 * it a binary chunk. */
static mh_status fd_blob(mh_host *h, int fd, const char *path, size_t max,
                         mh_blob *out, mh_error **err);


/* Where a source file's chunk starts, as luaL_loadfilex reads one: past a
 * UTF-8 byte order mark, and past a first line starting with '#' (a "#!"
 * line) -- up to its newline, which stays, so line numbers do not move. */
static size_t chunk_start(const unsigned char *t, size_t n)
{
    size_t i = n >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
    if (i < n && t[i] == '#')
        while (i < n && t[i] != '\n')
            i++;
    return i;
}

/* luaL_loadfilex(file, "t") with the rules for code files: the file is
 * opened through checked directories (host/secure.c) and read from that
 * descriptor.  file NULL is standard input, as in Lua. */
static int checked_loadfile(lua_State *L, const char *file)
{
    if (!file)
        return luaL_loadfilex(L, NULL, "t");
    mh_host *h = host_of(L);
    int fd = -1;
    mh_error *e = NULL;
    mh_blob b = {0};
    mh_status rc = mh_sec_open_code(h, file, &fd, &e);
    if (rc == MH_OK)
        rc = fd_blob(h, fd, file, h->max_module_size, &b, &e);
    if (fd >= 0)
        close(fd);
    if (rc != MH_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", mh_error_message(e));
        mh_error_free(e);
        lua_pushstring(L, msg);
        return LUA_ERRFILE;
    }
    char chunkname[PATH_MAX + 2];
    snprintf(chunkname, sizeof chunkname, "@%s", file);
    size_t at = chunk_start(b.data, b.len);
    int st = luaL_loadbufferx(L, (const char *)b.data + at, b.len - at,
                              chunkname, "t");
    mh_blob_free(h, &b);
    return st;
}

static int text_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    const char *path = lua_tostring(L, -1);
    if (!path)
        return luaL_error(L, "package.path must be a string");
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    lua_pushstring(L, name);
    lua_pushstring(L, path);
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
        return 1; /* the "no file ..." list */
    const char *file = lua_tostring(L, -2);
    if (checked_loadfile(L, file) != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
                          name, file, lua_tostring(L, -1));
    lua_pushstring(L, file);
    return 2;
}

static int text_load(lua_State *L)
{
    /* load(chunk [, chunkname [, mode [, env]]]) with mode forced to "t" */
    int n = lua_gettop(L);
    int want = n >= 4 ? 4 : 3; /* an absent env stays absent */
    lua_pushvalue(L, lua_upvalueindex(1));
    for (int i = 1; i <= want; i++) {
        if (i == 3)
            lua_pushliteral(L, "t");
        else if (i <= n)
            lua_pushvalue(L, i);
        else
            lua_pushnil(L);
    }
    lua_call(L, want, LUA_MULTRET);
    return lua_gettop(L) - n;
}

static int text_loadfile(lua_State *L)
{
    const char *file = luaL_optstring(L, 1, NULL);
    int env = !lua_isnone(L, 3) ? 3 : 0;
    if (checked_loadfile(L, file) != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env) {
        lua_pushvalue(L, env);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

static int text_dofile(lua_State *L)
{
    const char *file = luaL_optstring(L, 1, NULL);
    lua_settop(L, 1);
    if (checked_loadfile(L, file) != LUA_OK)
        return lua_error(L);
    lua_call(L, 0, LUA_MULTRET);
    return lua_gettop(L) - 1;
}

/* Lua's C searchers, with the rules for code files first: the file the
 * searcher would open (package.searchpath of the name, or of its root
 * for the all-in-one searcher) must pass them.  (Between this check and
 * Lua's own dlopen by path a swap is still possible: C modules found
 * through package.cpath are the system's, not modhost's.) */
static int checked_csearcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    int root = (int)lua_tointeger(L, lua_upvalueindex(2));
    const char *dot = strchr(name, '.');
    if (root && !dot)
        return 0; /* as Lua's own: the C searcher has looked already */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchpath");
    if (root) {
        lua_pushlstring(L, name, (size_t)(dot - name));
    } else {
        lua_pushstring(L, name);
    }
    lua_getfield(L, -3, "cpath");
    lua_call(L, 2, 2);
    const char *file = lua_tostring(L, -2);
    if (file) {
        mh_host *h = host_of(L);
        mh_error *e = NULL;
        if (mh_sec_code_file(h, file, &e) != MH_OK) {
            char msg[1024];
            /* Lua 5.4's require puts "\n\t" before each searcher's
             * message itself. */
            snprintf(msg, sizeof msg, "refused %s: %s", file,
                     mh_error_message(e));
            mh_error_free(e);
            lua_pushstring(L, msg);
            return 1;
        }
    }
    lua_settop(L, 2); /* name, extra */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* The names package.loaded holds once the state is made -- Lua's own
 * libraries and modhost -- as a set in the registry: no module of the
 * host's is published under one (p_publish). */
#define RESERVED_KEY "modhost.reserved"

static int open_libs(lua_State *L)
{
    mh_host *h = lua_touserdata(L, 1);
    *(mh_host **)lua_getextraspace(L) = h;
    /* LUA_PATH and LUA_CPATH are the environment too: ignored with -E and
     * in privileged processes, as MODHOST_* are. */
    if ((h->flags & MH_CONFIG_ISOLATED) || getauxval(AT_SECURE)) {
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    lua_getglobal(L, "load");
    lua_pushcclosure(L, text_load, 1);
    lua_setglobal(L, "load");
    lua_register(L, "loadfile", text_loadfile);
    lua_register(L, "dofile", text_dofile);
    /* No module from the current directory: relative entries are refused
     * on modhost's search path too.  Only absolute entries are kept, each
     * whole ("../?.lua" and "?.lua" are as relative as "./?.lua"). */
    if (luaL_dostring(L, "local function absolute(p)\n"
                         "  local keep = {}\n"
                         "  for e in p:gmatch('[^;]+') do\n"
                         "    if e:sub(1, 1) == '/' then keep[#keep + 1] = e end\n"
                         "  end\n"
                         "  return table.concat(keep, ';')\n"
                         "end\n"
                         "package.path = absolute(package.path)\n"
                         "package.cpath = absolute(package.cpath)") !=
        LUA_OK) /* memory: not a state that would search relative paths */
        return lua_error(L);
    /* require "modhost" (package.loaded), and the global of that name */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushlightuserdata(L, h);
    lua_pushcclosure(L, open_modhost, 1);
    lua_call(L, 0, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "modhost");
    lua_setglobal(L, "modhost");
    lua_newtable(L); /* [loaded, reserved] */
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, -4);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, RESERVED_KEY);
    lua_pop(L, 1);
    /* the host's searcher, right after package.preload's */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_pushcfunction(L, text_searcher); /* replaces Lua's file searcher */
    lua_rawseti(L, -2, 2);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = n; i >= 2; i--) {
        lua_rawgeti(L, -1, i);
        lua_rawseti(L, -2, i + 1);
    }
    lua_pushlightuserdata(L, h);
    lua_pushcclosure(L, host_searcher, 1);
    lua_rawseti(L, -2, 2);
    for (lua_Integer i = 4; i <= 5; i++) { /* Lua's C and Croot searchers */
        lua_rawgeti(L, -1, i);
        if (!lua_isfunction(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        lua_pushinteger(L, i == 5);
        lua_pushcclosure(L, checked_csearcher, 2);
        lua_rawseti(L, -2, i);
    }
    lua_pop(L, 2);
    return 0;
}

/* The host's Lua state, created on first use (lock not held). */
static mh_status lua_get(mh_host *h, mh_lua **out, mh_error **err)
{
    pthread_mutex_lock(&h->lock);
    mh_lua *lu = h->lua;
    if (!lu) {
        lu = mh_mem_calloc(h, 1, sizeof *lu);
        /* The default allocator already keeps Lua's contract (size 0
         * frees; the old size, a type tag for a new block, is ignored), so
         * Lua calls it directly: one call layer less on each of the
         * thousands of allocations an import makes. */
        lua_State *L = !lu ? NULL
                       : h->alloc == mh_mem_default_alloc
                           ? lua_newstate(mh_mem_default_alloc, NULL)
                           : lua_newstate(lua_alloc, h);
        if (L) {
            /* Lua C modules (luaopen_*) need the Lua API from the global
             * scope, even if the application dlopened us RTLD_LOCAL. */
            void *lib = dlopen(MH_LUA_SONAME, RTLD_NOW | RTLD_GLOBAL |
                                                  RTLD_NOLOAD);
            MH_UNUSED(lib); /* the reference is kept: it must stay global */
            lua_pushcfunction(L, open_libs);
            lua_pushlightuserdata(L, h);
            if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
                lua_close(L);
                L = NULL;
            }
        }
        if (!L) {
            mh_mem_free(h, lu, sizeof *lu);
            pthread_mutex_unlock(&h->lock);
            return mh_err(h, err, MH_ENOMEM, "out of memory creating the "
                          "Lua state");
        }
        pthread_mutex_init(&lu->gm, NULL);
        pthread_cond_init(&lu->gc, NULL);
        lu->L = L;
        h->lua = lu;
    }
    pthread_mutex_unlock(&h->lock);
    *out = lu;
    return MH_OK;
}

void mh_lua_close(mh_host *h)
{
    mh_lua *lu = h->lua;
    if (!lu)
        return;
    lua_close(lu->L);
    mh_atw_buf_free(h, &lu->bc_buf);
    pthread_mutex_destroy(&lu->gm);
    pthread_cond_destroy(&lu->gc);
    mh_mem_free(h, lu, sizeof *lu);
    h->lua = NULL;
}

/* The message handler: lua.c's own (an error object with __tostring is
 * said through it). */
static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") &&
            lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)",
                                  luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

typedef struct dumpbuf {
    mh_host *h;
    unsigned char *data;
    size_t len, cap;
    bool oom;
} dumpbuf;

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
    MH_UNUSED(L);
    dumpbuf *d = ud;
    if (d->len + n > d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4096;
        while (cap < d->len + n)
            cap *= 2;
        unsigned char *nd = mh_mem_realloc(d->h, d->data, d->cap, cap);
        if (!nd) {
            d->oom = true;
            return 1;
        }
        d->data = nd;
        d->cap = cap;
    }
    memcpy(d->data + d->len, p, n);
    d->len += n;
    return 0;
}

/* Where the compiled chunk of mod is cached: NAME.TAG.mhc, TAG this
 * build's (mh_bc_tag).  NULL, or why no name can be made (the hash of
 * the origin failed, or the path would not fit): then no cache is used. */
static const char *cache_path(mh_host *h, const char *origin,
                              const char *file, char *out, size_t size)
{
    char tag[MH_BC_TAG_SIZE];
    mh_bc_tag(tag);
    int n;
    if (file && (h->flags & MH_CONFIG_BYTECODE_BESIDE)) {
        const char *slash = strrchr(file, '/');
        n = snprintf(out, size, "%.*s/__mhcache__/%s.%s.mhc",
                     (int)(slash - file), file, slash + 1, tag);
    } else {
        char hex[33];
        if (!mh_sha256_hex(origin, strlen(origin), 16, hex))
            return "hashing the module's origin failed";
        n = snprintf(out, size, "%s/lua/%s.%s.mhc", h->cache_dir, hex, tag);
    }
    return n > 0 && (size_t)n < size ? NULL : "its cache file's path is too "
                                              "long";
}

/* May bytecode be read from (and written to) the directory of cpath?
 * Only if nobody else can write there (host/secure.c): a cache file's own
 * checksum proves it is whole, not who wrote it.  The directory is made
 * (private) if absent -- unless nothing may be written, when an absent
 * one just means no cache: reading makes no __mhcache__ in a tree. */
static bool cache_trusted(mh_host *h, mh_lua *lu, const char *cpath,
                          bool store)
{
    char dir[4300], real[4300];
    const char *slash = strrchr(cpath, '/');
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - cpath), cpath);
    bool central = !(h->flags & MH_CONFIG_BYTECODE_BESIDE);
    if (central && lu->cache_ok)
        return lu->cache_ok > 0;
    struct stat st;
    if (!store && lstat(dir, &st) != 0 && errno == ENOENT)
        return false;
    mh_error *e = NULL;
    mh_status rc = mh_sec_private_dir(h, dir, real, sizeof real, &e);
    bool ok = rc == MH_OK;
    if (!ok && !lu->warned_cache) {
        /* A host with no cache directory (no HOME: a service, a system
         * user) has none by design, and compiling in memory is all it
         * can do: said with -v, not warned of at every run, as Python
         * says nothing when it has nowhere to write its .pyc files.  A
         * directory that is refused (another user's, group-writable) is
         * a warning: someone can mend it. */
        lu->warned_cache = true;
        mh_log(h, mh_sec_no_dir(dir) ? MH_LOG_INFO : MH_LOG_WARN,
               "lua: bytecode cache not used (compiling in memory): %s",
               mh_error_message(e));
    }
    mh_error_free(e);
    if (central && rc != MH_EAGAIN) /* a passing failure: asked again */
        lu->cache_ok = ok ? 1 : -1;
    return ok;
}

static bool writes_allowed(mh_host *h)
{
    const char *v = mh_host_getenv(h, "MODHOST_DONTWRITEBYTECODE");
    return !(h->flags & MH_CONFIG_NO_BYTECODE_WRITE) && !(v && v[0] &&
                                                         strcmp(v, "0"));
}

/* The whole file behind fd (at most max bytes) into *out. */
static mh_status fd_blob(mh_host *h, int fd, const char *path, size_t max,
                         mh_blob *out, mh_error **err)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return mh_err(h, err, MH_EIO, "cannot read %s: %s", path,
                      strerror(errno));
    if ((uint64_t)st.st_size > max)
        return mh_err(h, err, MH_EFORMAT, "%s is %lld bytes, over the "
                      "host's max_module_size (%zu)", path,
                      (long long)st.st_size, max);
    size_t n = (size_t)st.st_size;
    out->data = mh_mem_alloc(h, n ? n : 1);
    if (!out->data)
        return mh_err(h, err, MH_ENOMEM, "out of memory reading %s", path);
    out->size = n ? n : 1;
    out->len = mh_fault(h, "read") ? 0 : mh_io_pread_all(fd, out->data, n, 0);
    if (out->len != n) {
        mh_blob_free(h, out);
        return mh_err(h, err, MH_EIO, "cannot read %s: it changed while "
                      "being read", path);
    }
    return MH_OK;
}

static mh_status load_chunk_fd(mh_host *h, mh_lua *lu, lua_State *L,
                               mh_module *mod, const mh_found *spec, int fd,
                               const struct stat *st, mh_error **err);

/* The bytes of mod into *text: those its finder read with the find (an
 * import from a database; used where they are, no second read, no copy),
 * else read now -- through fd, or from the finder -- into *own. */
static mh_status module_bytes(mh_host *h, const mh_found *spec, int fd,
                              mh_blob *own, const unsigned char **text,
                              size_t *len, mh_error **err)
{
    if (fd < 0 && spec->pre.data) {
        *text = spec->pre.data;
        *len = spec->pre.len;
        return MH_OK;
    }
    mh_status rc = fd >= 0 ? fd_blob(h, fd, spec->file, h->max_module_size,
                                     own, err)
                           : mh_fcx_read(h, spec, spec->key, own, err);
    *text = own->data;
    *len = own->len;
    return rc;
}

/* Compile (or take from the cache) the chunk of mod and leave it on the
 * stack.  Lock held.  A file is opened once (host/secure.c: by the import,
 * spec->fd) and read only through that descriptor: the chunk checked is
 * the chunk run. */
static mh_status load_chunk(mh_host *h, mh_lua *lu, lua_State *L,
                            mh_module *mod, const mh_found *spec,
                            mh_error **err)
{
    int fd = spec->file ? spec->fd : -1;
    if (spec->file && fd < 0) /* the import opens every module file */
        return mh_err(h, err, MH_EINVAL, "module '%s' (%s): not opened "
                      "by the import", mod->name, spec->file);
    struct stat st;             /* the checked open's, if it took one */
    memset(&st, 0, sizeof st);
    st.st_size = -1;
    if (fd >= 0 && spec->fd_ino) {
        st.st_mode = S_IFREG;
        st.st_size = (off_t)spec->fd_size;
        st.st_dev = spec->fd_dev;
        st.st_ino = spec->fd_ino;
        st.st_mtim = spec->fd_mtim;
        st.st_ctim = spec->fd_ctim;
    }
    return load_chunk_fd(h, lu, L, mod, spec, fd, &st, err);
}

/* An entry recorded too soon after its source's last change is checked
 * by hash at every import.  Once the source has been still for the unsure
 * window, a hash-checked hit is recorded again, so that stat alone will
 * do from then on (a source whose ctime is recent -- every file tar or
 * dpkg just made -- would otherwise be read and hashed for ever). */
static void resettle(mh_host *h, mh_module *mod, const char *cpath,
                     const mh_bc_source *src, bool store,
                     const mh_bc_chunk *bc)
{
    mh_error *e = NULL;
    if (!store || src->bytes || !mh_bc_settled(src))
        return;
    if (mh_bc_store(h, cpath, src, src->sha, bc->bc, bc->bc_len, &e) ==
        MH_OK)
        MH_TRACE(h, "lua: %s: cache entry %s recorded again: stat settles "
                 "it from now on", mod->name, cpath);
    mh_error_free(e);
}

static mh_status load_chunk_fd(mh_host *h, mh_lua *lu, lua_State *L,
                               mh_module *mod, const mh_found *spec, int fd,
                               const struct stat *checked, mh_error **err)
{
    char cpath[4300], chunkname[4200];
    snprintf(chunkname, sizeof chunkname, "@%s", spec->origin);
    const char *unnamed = cache_path(h, spec->origin, spec->file, cpath,
                                     sizeof cpath);
    bool named = !unnamed;
    if (unnamed && !lu->warned_cache) {
        lu->warned_cache = true;
        mh_log(h, MH_LOG_WARN, "lua: bytecode cache not used for '%s' "
               "(compiling in memory): %s", mod->name, unnamed);
    }

    mh_bc_source src = {.origin = spec->origin};
    mh_blob b = {0};            /* the bytes read here, if any */
    const unsigned char *text = NULL; /* the module's bytes: b's or the
                                         find's */
    size_t len = 0;
    mh_status rc;
    if (spec->binary) { /* a shipped .luac: only from a trusted source */
        if (!spec->trusted && !(h->flags & MH_CONFIG_TRUST_LUAC))
            return mh_err(h, err, MH_EFORMAT, "module '%s' (%s) is "
                          "precompiled Lua bytecode; Lua does not verify "
                          "bytecode and a crafted chunk can crash the "
                          "process, so it is loaded only from a signed HTTP "
                          "index or with MH_CONFIG_TRUST_LUAC", mod->name,
                          spec->origin);
        rc = module_bytes(h, spec, fd, &b, &text, &len, err);
        if (rc != MH_OK)
            return rc;
        int lr = luaL_loadbufferx(L, (const char *)text, len, chunkname,
                                  "b");
        mh_blob_free(h, &b);
        if (lr == LUA_OK)
            return MH_OK;
        rc = mh_err(h, err, lr == LUA_ERRMEM ? MH_ENOMEM : MH_EFORMAT,
                    "module '%s' (%s): %s", mod->name,
                    spec->origin, lua_tostring(L, -1));
        lua_pop(L, 1);
        return rc;
    }
    /* The source's SHA-256 is taken only where it is used: to look an
     * entry up by hash, to settle an unsure one, or to write one. */
    bool writes = writes_allowed(h);
    bool use_cache = named && cache_trusted(h, lu, cpath, writes);
    bool store = use_cache && writes;
    if (fd >= 0) { /* stat mode: the source need not be read on a hit */
        /* The checked open's fstat of this very descriptor, when it took
         * one (not with MH_CONFIG_INSECURE_FILES). */
        struct stat st = *checked;
        if (st.st_size < 0 && fstat(fd, &st) != 0)
            return mh_err(h, err, MH_EIO, "module '%s': cannot stat %s",
                          mod->name, spec->file);
        src.mtime_sec = st.st_mtim.tv_sec;
        src.mtime_nsec = st.st_mtim.tv_nsec;
        src.size = (uint64_t)st.st_size;
        src.ino = st.st_ino;
        src.ctime_sec = st.st_ctim.tv_sec;
        src.ctime_nsec = st.st_ctim.tv_nsec;
        src.dev = (uint64_t)st.st_dev;
    } else {
        rc = module_bytes(h, spec, fd, &b, &text, &len, err);
        if (rc != MH_OK)
            return rc;
        src.bytes = text;
        if (use_cache && !mh_sha256(text, len, src.sha))
            use_cache = store = false;
        src.size = len;
    }

    mh_bc_chunk bc = {0};
    mh_bc_result r = use_cache ? mh_bc_load(h, cpath, &src, &lu->bc_buf, &bc)
                               : MH_BC_ABSENT;
    bool by_hash = false;       /* an unsure entry's hit, checked by hash */
    for (int pass = 0; pass < 2; pass++) {
        if (r != MH_BC_HIT && !text) { /* read the file now */
            mh_error *e = NULL;
            rc = module_bytes(h, spec, fd, &b, &text, &len, &e);
            if (rc != MH_OK) {
                rc = mh_err(h, err, rc, "module '%s': %s", mod->name,
                            mh_error_message(e));
                mh_error_free(e);
                return rc;
            }
            bool unsure = r == MH_BC_UNSURE; /* use_cache: it was read */
            if ((unsure || store) && !mh_sha256(text, len, src.sha)) {
                unsure = store = false; /* compiled, and nothing cached */
                r = MH_BC_ABSENT;
            }
            if (unsure) { /* too close to call by stat: by hash */
                mh_bc_source hs = src;
                hs.bytes = text;
                r = mh_bc_load(h, cpath, &hs, &lu->bc_buf, &bc);
                by_hash = r == MH_BC_HIT;
            }
        }
        if (r != MH_BC_HIT)
            break;
        int lr = luaL_loadbufferx(L, (const char *)bc.bc, bc.bc_len,
                                  chunkname, "b");
        if (lr == LUA_OK && by_hash) /* and Lua took it */
            resettle(h, mod, cpath, &src, store, &bc);
        mh_bc_chunk_free(h, &bc);
        if (lr == LUA_OK) {
            mh_blob_free(h, &b);
            MH_TRACE(h, "lua: %s: bytecode from cache %s", mod->name, cpath);
            return MH_OK;
        }
        if (lr == LUA_ERRMEM) {
            lua_pop(L, 1);
            mh_blob_free(h, &b);
            return mh_err(h, err, MH_ENOMEM, "module '%s': out of memory "
                          "loading cached bytecode %s", mod->name, cpath);
        }
        /* Whole (its checksum holds) and of this build's tag, yet Lua
         * refuses it: a Lua built otherwise wrote it.  Stale, then:
         * compiled and written again, rather than failing every import
         * until someone deletes the file. */
        mh_log(h, lu->warned_refused ? MH_LOG_TRACE : MH_LOG_WARN,
               "lua: %s: cached bytecode %s was refused by Lua (%s); "
               "compiling the source again", mod->name, cpath,
               lua_tostring(L, -1));
        lu->warned_refused = true;
        lua_pop(L, 1);
        r = MH_BC_STALE;
    }

    /* Compile, in text mode only. */
    size_t at = chunk_start(text, len);
    int lr = luaL_loadbufferx(L, (const char *)text + at, len - at, chunkname,
                              "t");
    if (lr != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        rc = mh_err(h, err, lr == LUA_ERRMEM ? MH_ENOMEM : MH_EFORMAT,
                    "module '%s' (%s): %s", mod->name, spec->origin,
                    msg ? msg : "cannot compile");
        lua_pop(L, 1);
        mh_blob_free(h, &b);
        return rc;
    }
    MH_TRACE(h, "lua: %s: compiled %zu bytes of source", mod->name, len);
    if (store) {
        dumpbuf d = {h, NULL, 0, 0, false};
        lua_dump(L, dump_writer, &d, 0);
        mh_error *e = NULL;
        if (!d.oom &&
            mh_bc_store(h, cpath, &src, src.sha, d.data, d.len, &e) != MH_OK &&
            !lu->warned_cache) {
            lu->warned_cache = true;
            mh_log(h, MH_LOG_WARN, "lua: cannot write bytecode caches "
                   "(compiling in memory): %s", mh_error_message(e));
        }
        mh_error_free(e);
        mh_mem_free(h, d.data, d.cap);
    }
    mh_blob_free(h, &b);
    return MH_OK;
}

/* Every Lua call that may allocate runs protected: a memory error
 * outside lua_pcall would reach the panic function, which aborts.  These
 * helpers are those calls, each run with lua_pcall. */

/* A new thread, anchored in the registry: its reference. */
static int p_newthread(lua_State *L)
{
    lua_newthread(L);
    lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
    return 1;
}

/* Run the chunk (1) with the module's name (2, light userdata). */
static int p_runchunk(lua_State *L)
{
    const char *name = lua_touserdata(L, 2);
    lua_settop(L, 1);
    lua_pushstring(L, name);
    lua_call(L, 1, 1);
    return 1;
}

/* package.loaded[name (2)] = exports (1); the exports' reference. */
#define PUBLISHED_KEY "modhost.published"

/* package.loaded[name (2)] = the module's table (1), unless the name is
 * one of Lua's own libraries ("string", "debug", "modhost"...:
 * RESERVED_KEY), which every Lua module's require would otherwise get
 * the plugin for, or held a module before the chunk ran (3: what it
 * held then) that the host did not put there -- one Lua's require had
 * loaded, which Lua code that required it already has, as later code
 * must (require never replaces what package.loaded holds).  Whatever the
 * chunk itself put there is replaced by the table it returned, as
 * require does with a loader's value (a module that put a table there to
 * break a require cycle, and returned another).  Returns the table's
 * reference, whether it was published, and whether the name is Lua's. */
static int p_publish(lua_State *L)
{
    const char *name = lua_touserdata(L, 2);
    bool held = !lua_isnoneornil(L, 3);
    lua_settop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, PUBLISHED_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, PUBLISHED_KEY);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    /* Nothing there, what the module put there itself (package.loaded[
     * ...] = M, to break a require cycle), or the host's own.  Raw: a
     * module may have given package.loaded a metatable (a "strict"
     * __index that raises, a lazy one that makes tables up), which is
     * not asked. */
    if (lua_type(L, -1) != LUA_TTABLE)
        return luaL_error(L, "package.loaded is a %s, not a table",
                          luaL_typename(L, -1));
    bool lua_own = lua_getfield(L, LUA_REGISTRYINDEX, RESERVED_KEY) ==
                       LUA_TTABLE &&
                   (lua_pushstring(L, name), lua_rawget(L, -2)) != LUA_TNIL;
    lua_settop(L, 3);
    bool hosts = (lua_pushstring(L, name), lua_rawget(L, 2)) != LUA_TNIL;
    lua_settop(L, 3);
    bool ours = !lua_own && (!held || hosts);
    if (ours) {
        lua_pushstring(L, name);
        lua_pushvalue(L, 1);
        lua_rawset(L, 3);
        lua_pushstring(L, name);
        lua_pushboolean(L, 1);
        lua_rawset(L, 2);
    }
    lua_settop(L, 1);
    lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
    lua_pushboolean(L, ours);
    lua_pushboolean(L, lua_own);
    return 3;
}

/* package.loaded[name (1)], raw. */
static int p_loaded_get(lua_State *L)
{
    const char *name = lua_touserdata(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) != LUA_TTABLE)
        return 0; /* Lua code took it away (debug.getregistry) */
    lua_pushstring(L, name);
    lua_rawget(L, -2);
    return 1;
}

/* package.loaded[name (1)] = what it held before the chunk ran (2): a
 * chunk that failed after putting its table there (to break a require
 * cycle) leaves nothing that require would take for loaded. */
static int p_loaded_restore(lua_State *L)
{
    const char *name = lua_touserdata(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) != LUA_TTABLE)
        return 0;
    lua_pushstring(L, name);
    lua_pushvalue(L, 2);
    lua_rawset(L, -3);
    return 0;
}

/* A run's own Lua thread (while its chunk waits in an import, other runs
 * use the state), kept alive by a reference: *L and *ref, or MH_ENOMEM.
 * GIL held. */
static mh_status run_thread(mh_host *h, mh_lua *lu, lua_State **L, int *ref,
                            const char *what, mh_error **err)
{
    lua_pushcfunction(lu->L, p_newthread);
    if (lua_pcall(lu->L, 0, 1, 0) != LUA_OK) {
        lua_pop(lu->L, 1);
        return mh_err(h, err, MH_ENOMEM, "out of memory in Lua (%s)", what);
    }
    *ref = (int)lua_tointeger(lu->L, -1);
    lua_pop(lu->L, 1);
    lua_rawgeti(lu->L, LUA_REGISTRYINDEX, *ref);
    *L = lua_tothread(lu->L, -1);
    lua_pop(lu->L, 1);
    return MH_OK;
}

mh_status mh_lua_load(mh_host *h, mh_module *mod, const mh_found *spec,
                      mh_error **err)
{
    mh_lua *lu = NULL;
    mh_error *le = NULL;
    mh_status rc = lua_get(h, &lu, &le);
    if (rc != MH_OK) {
        rc = mh_err(h, err, rc, "module '%s' (%s): %s", mod->name,
                    spec->origin, mh_error_message(le));
        mh_error_free(le);
        return rc;
    }
    /* A module that is no file, and whose bytes the find did not bring
     * (an HTTP download), is read before the Lua lock is taken: a slow
     * server must not stall every Lua call and require of the host.  A
     * .luac that will be refused is not fetched. */
    mh_found with_bytes;
    mh_blob got = {0};
    if (!spec->file && !spec->pre.data &&
        (!spec->binary || spec->trusted ||
         (h->flags & MH_CONFIG_TRUST_LUAC))) {
        rc = mh_fcx_read(h, spec, spec->key, &got, err);
        if (rc != MH_OK)
            return rc;
        with_bytes = *spec;
        with_bytes.pre = got; /* freed below, not by mh_found_release */
        spec = &with_bytes;
    }
    gil_enter(lu);
    lua_State *L;
    int tref;
    char what[300];
    snprintf(what, sizeof what, "loading module '%s'", mod->name);
    rc = run_thread(h, lu, &L, &tref, what, err);
    if (rc != MH_OK) {
        gil_leave(lu);
        mh_blob_free(h, &got);
        return rc;
    }
    int top = lua_gettop(L);
    lua_pushcfunction(L, traceback);                 /* top + 1 */
    lua_pushcfunction(L, p_loaded_get);              /* top + 2: before */
    lua_pushlightuserdata(L, (void *)mod->name);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
    rc = load_chunk(h, lu, L, mod, spec, err);
    bool ran = false;
    if (rc == MH_OK) {
        ran = true;
        /* [traceback, chunk] -> [traceback, p_runchunk, chunk, name] */
        lua_pushcfunction(L, p_runchunk);
        lua_insert(L, -2);
        lua_pushlightuserdata(L, (void *)mod->name);
        mod->flight->in_chunk = true;
        int cr = lua_pcall(L, 2, 1, top + 1);
        mod->flight->in_chunk = false;
        if (cr == LUA_ERRMEM || cr == LUA_ERRERR) {
            rc = mh_err(h, err, MH_ENOMEM, "out of memory running module "
                        "'%s' (%s)", mod->name, spec->origin);
        } else if (cr != LUA_OK) {
            const char *msg = lua_tostring(L, -1);
            rc = mh_err(h, err, chunk_failure_status(mod, msg), "module '%s' "
                        "(%s) failed while running: %s", mod->name,
                        spec->origin, msg ? msg : "(no message)");
        } else if (!lua_istable(L, -1)) {
            rc = mh_err(h, err, MH_EINIT, "module '%s' (%s) returned %s, "
                        "not a table of exports", mod->name, spec->origin,
                        luaL_typename(L, -1));
        } else {
            /* package.loaded agrees with the host's registry */
            lua_pushcfunction(L, p_publish);
            lua_insert(L, -2);
            lua_pushlightuserdata(L, (void *)mod->name);
            lua_pushvalue(L, top + 2); /* what the name held before */
            int prc = lua_pcall(L, 3, 3, 0);
            if (prc == LUA_ERRMEM) {
                rc = mh_err(h, err, MH_ENOMEM, "out of memory publishing "
                            "module '%s' (%s)", mod->name, spec->origin);
            } else if (prc != LUA_OK) { /* package.loaded is no table */
                const char *msg = lua_tostring(L, -1);
                rc = mh_err(h, err, MH_EINIT, "module '%s' (%s) cannot be "
                            "put in package.loaded: %s", mod->name,
                            spec->origin, msg ? msg : "(no message)");
            } else {
                mod->kind = MH_KIND_LUA;
                mod->lua_ref = (int)lua_tointeger(L, -3);
                if (!lua_toboolean(L, -2))
                    mh_log(h, MH_LOG_WARN, "lua: module '%s' (%s) is not "
                           "package.loaded[\"%s\"]: %s, which "
                           "require(\"%s\") in Lua still gets",
                           mod->name, spec->origin, mod->name,
                           lua_toboolean(L, -1)
                               ? "that name is Lua's own library"
                               : "that name already held a module Lua's "
                                 "require had loaded (package.path, "
                                 "package.cpath)",
                           mod->name);
            }
        }
    }
    if (ran && rc != MH_OK) {
        lua_pushcfunction(L, p_loaded_restore);
        lua_pushlightuserdata(L, (void *)mod->name);
        lua_pushvalue(L, top + 2);
        if (lua_pcall(L, 2, 0, 0) != LUA_OK)
            lua_pop(L, 1); /* memory: nothing more can be done */
    }
    lua_settop(L, top);
    luaL_unref(lu->L, LUA_REGISTRYINDEX, tref);
    gil_leave(lu);
    mh_blob_free(h, &got);
    return rc;
}

/* ---- JSON <-> Lua -------------------------------------------------------- */

/* Room on L's stack for n more values: PUSHED, or why not -- memory (an
 * allocation failed growing it), or Lua's limit on the stack (Lua code
 * deep in recursion), told apart by asking again with mh_mem_refused
 * clear: only the first tries to allocate. */
static pushed stack_room(lua_State *L, int n)
{
    if (lua_checkstack(L, n))
        return PUSHED;
    mh_mem_refused = false;
    if (lua_checkstack(L, n))
        return PUSHED;
    return mh_mem_refused ? PUSH_NO_MEMORY : PUSH_NO_FORM;
}

/* j as a Lua value, pushed; running out of memory making it raises a
 * memory error, as Lua's own allocations do, but for the stack's growth
 * (PUSH_NO_MEMORY).  On failure the stack may hold partial values. */
static pushed push_json(lua_State *L, const cJSON *j, int depth)
{
    if (depth > LUA_JSON_DEPTH)
        return PUSH_NO_FORM;
    pushed room = stack_room(L, 4);
    if (room != PUSHED)
        return room;
    if (cJSON_IsNull(j) || !j) {
        lua_pushnil(L);
    } else if (cJSON_IsBool(j)) {
        lua_pushboolean(L, cJSON_IsTrue(j));
    } else if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d > -9.2e18 && d < 9.2e18 && d == (double)(lua_Integer)d)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsString(j)) {
        lua_pushstring(L, j->valuestring);
    } else if (cJSON_IsArray(j)) {
        lua_newtable(L);
        lua_Integer i = 1;
        const cJSON *e;
        cJSON_ArrayForEach(e, j) {
            pushed p = push_json(L, e, depth + 1);
            if (p != PUSHED)
                return p;
            lua_rawseti(L, -2, i++);
        }
    } else if (cJSON_IsObject(j)) {
        lua_newtable(L);
        const cJSON *e;
        cJSON_ArrayForEach(e, j) {
            pushed p = push_json(L, e, depth + 1);
            if (p != PUSHED)
                return p;
            lua_setfield(L, -2, e->string);
        }
    } else {
        return PUSH_NO_FORM;
    }
    return PUSHED;
}

/* The length of the UTF-8 sequence at s (n bytes left), 0 if none is
 * there (a stray or missing continuation byte, an overlong form, a
 * surrogate, past U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2
               : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (!len || len > n || (len == 2 && c < 0xc2))
        return 0;
    unsigned cp = len == 1 ? c : c & (0x7fu >> len);
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

/* s (len bytes, no NUL) as JSON string text: as it is when it is UTF-8,
 * else with each byte that is not replaced by U+FFFD, as Go's
 * encoding/json does (a JSON string is Unicode; Lua's are bytes: an
 * error message naming a file, say).  NULL on no memory. */
static char *utf8_text(const char *s, size_t len, bool *copied)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, q;
    while (i < len && (q = utf8_seq(u + i, len - i)))
        i += q;
    *copied = i < len;
    if (!*copied)
        return (char *)s;
    char *out = cJSON_malloc(len * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (i = 0; i < len;) {
        q = utf8_seq(u + i, len - i);
        if (q) {
            memcpy(o, s + i, q);
            o += q;
            i += q;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    *o = '\0';
    return out;
}

/* A walk of a Lua value into JSON (to_json): how many values it may
 * still take, and whether it stopped for want of memory (else the value
 * has no JSON form). */
struct json_walk {
    size_t budget;
    bool oom;
};

#define JSON_WALK_INIT {LUA_JSON_VALUES, false}

/* j, noting in w when a cJSON constructor had no memory for it. */
static cJSON *json_made(json_walk *w, cJSON *j)
{
    if (!j)
        w->oom = true;
    return j;
}

/* A Lua string (len bytes) as text for cJSON, a value or a key: NULL
 * when it holds NUL (cJSON's strings end there) or memory ran out (noted
 * in w); free it with json_text_free. */
static char *json_text(json_walk *w, const char *s, size_t len,
                       bool *copied)
{
    *copied = false;
    if (strlen(s) != len)
        return NULL;
    char *text = utf8_text(s, len, copied);
    if (!text)
        w->oom = true;
    return text;
}

static void json_text_free(char *text, bool copied)
{
    if (copied)
        cJSON_free(text);
}

/* The members of an object (the list from its `child`), sorted by key
 * in byte order: a bottom-up merge sort of the linked list, allocating
 * nothing.  Returns the new first member, whose `prev` is the last, as
 * cJSON keeps it. */
static cJSON *sort_members(cJSON *list)
{
    if (!list)
        return NULL;
    for (size_t k = 1;; k *= 2) {
        cJSON *p = list, *tail = NULL;
        size_t merges = 0;
        list = NULL;
        while (p) {
            merges++;
            cJSON *q = p;
            size_t np = 0, nq = k;
            while (np < k && q) {
                np++;
                q = q->next;
            }
            while (np > 0 || (nq > 0 && q)) {
                cJSON *e;
                if (np > 0 && (nq == 0 || !q ||
                               strcmp(p->string, q->string) <= 0)) {
                    e = p;
                    p = p->next;
                    np--;
                } else {
                    e = q;
                    q = q->next;
                    nq--;
                }
                e->prev = tail;
                if (tail)
                    tail->next = e;
                else
                    list = e;
                tail = e;
            }
            p = q;
        }
        tail->next = NULL;
        if (merges <= 1) {
            list->prev = tail;
            return list;
        }
    }
}

/* The Lua value at idx as JSON; NULL if it has no JSON form, would take
 * more than w's budget of values, or memory ran out (w->oom).  An
 * object's members come in the byte order of their keys: a Lua table has
 * no order of its own (and its traversal order changes from one Lua
 * state to the next), so the same table always gives the same text. */
static cJSON *to_json(lua_State *L, int idx, int depth, json_walk *w)
{
    idx = lua_absindex(L, idx);
    if (w->budget == 0)
        return NULL;
    --w->budget;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        return json_made(w, cJSON_CreateNull());
    case LUA_TBOOLEAN:
        return json_made(w, cJSON_CreateBool(lua_toboolean(L, idx)));
    case LUA_TNUMBER: {
        if (lua_isinteger(L, idx)) {
            lua_Integer i = lua_tointeger(L, idx);
            if (i >= -(1LL << 53) && i <= (1LL << 53))
                return json_made(w, cJSON_CreateNumber((double)i));
            char num[32]; /* past 2^53 a double would round it: raw text */
            snprintf(num, sizeof num, "%lld", (long long)i);
            return json_made(w, cJSON_CreateRaw(num));
        }
        lua_Number d = lua_tonumber(L, idx);
        if (d != d || d - d != 0)
            return NULL; /* no NaN or inf in JSON */
        return json_made(w, cJSON_CreateNumber(d));
    }
    case LUA_TSTRING: {
        size_t len;
        bool copied;
        const char *str = lua_tolstring(L, idx, &len);
        char *text = json_text(w, str, len, &copied);
        cJSON *j = text ? json_made(w, cJSON_CreateString(text)) : NULL;
        json_text_free(text, copied);
        return j;
    }
    case LUA_TTABLE:
        break;
    default:
        return NULL;
    }
    if (depth > LUA_JSON_DEPTH)
        return NULL;
    pushed room = stack_room(L, 4);
    if (room != PUSHED) {
        w->oom = room == PUSH_NO_MEMORY;
        return NULL;
    }
    /* An array when the keys are exactly 1..n: n of them, each a whole
     * number in that range (#t alone is any border of a table with
     * holes, and the count could match with other keys in). */
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx);
    size_t keys = 0;
    bool seq = n > 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        keys++;
        if (seq && (!lua_isinteger(L, -2) || lua_tointeger(L, -2) < 1 ||
                    lua_tointeger(L, -2) > n))
            seq = false;
        lua_pop(L, 1);
    }
    bool array = seq && (size_t)n == keys;
    cJSON *out =
        json_made(w, array ? cJSON_CreateArray() : cJSON_CreateObject());
    if (!out)
        return NULL;
    if (array) {
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            cJSON *v = to_json(L, -1, depth + 1, w);
            lua_pop(L, 1);
            if (!v || !cJSON_AddItemToArray(out, v)) {
                cJSON_Delete(v);
                cJSON_Delete(out);
                return NULL;
            }
        }
        return out;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) { /* no JSON form */
            lua_pop(L, 2);
            cJSON_Delete(out);
            return NULL;
        }
        size_t kl;
        const char *key = lua_tolstring(L, -2, &kl);
        bool copied;
        char *k = json_text(w, key, kl, &copied);
        cJSON *v = k ? to_json(L, -1, depth + 1, w) : NULL;
        bool added = v && cJSON_AddItemToObject(out, k, v);
        if (v && !added)
            w->oom = true; /* the key's copy */
        json_text_free(k, copied);
        if (!added) {
            cJSON_Delete(v);
            cJSON_Delete(out);
            lua_pop(L, 2);
            return NULL;
        }
        lua_pop(L, 1);
    }
    out->child = sort_members(out->child);
    return out;
}

typedef struct call_job {
    mh_module *mod;
    const char *fn;
    const cJSON *args;
    cJSON *result;
    mh_status status;     /* set when the body fails for its own reasons */
    bool look_only;       /* find fn, call nothing */
    char why[256];
    /* The last nested failure under the function (nested_failed), when
     * it is no fault of the function's (memory, a passing shortage, a
     * deadlock or a cycle): the call fails as it did when the function
     * raises that very error. */
    mh_msg_mark dep;
    struct call_job *outer; /* the call this one runs within, if any */
} call_job;

/* The innermost mh_module_call of a Lua function on this thread. */
static _Thread_local call_job *running_job;

static void job_dep_failed(mh_status rc, const char *msg)
{
    call_job *j = running_job;
    if (!j)
        return;
    bool passes = rc != MH_OK && mh_init_status_of_dep(rc) == rc;
    mark_set(&j->dep, passes ? rc : MH_OK, msg);
}

/* The status of a call whose function raised msg: the nested failure's,
 * when it was raised as it came (raised_as_it_came), else MH_ECALL. */
static mh_status call_failure_status(const call_job *j, const char *msg)
{
    return raised_as_it_came(msg, &j->dep) ? (mh_status)j->dep.status
                                           : MH_ECALL;
}

/* Runs under lua_pcall: everything that can raise a Lua error (a lookup
 * through a metatable, running out of memory while building arguments)
 * is caught, never a panic. */
static int call_body(lua_State *L)
{
    call_job *j = lua_touserdata(L, 1);
    lua_pushcfunction(L, traceback);                       /* 2 */
    lua_rawgeti(L, LUA_REGISTRYINDEX, j->mod->lua_ref);    /* 3 */
    lua_getfield(L, 3, j->fn);                             /* 4 */
    if (!lua_isfunction(L, 4)) {
        j->status = MH_ENOSYM;
        return 0;
    }
    if (j->look_only)
        return 0;
    int nargs = 0;
    const cJSON *a;
    if (j->args)
        cJSON_ArrayForEach(a, j->args) {
            pushed p = push_json(L, a, 0);
            if (p == PUSH_NO_MEMORY) {
                j->status = MH_ENOMEM;
                snprintf(j->why, sizeof j->why, "out of memory turning "
                         "argument %d into a Lua value", nargs + 1);
                return 0;
            }
            if (p != PUSHED) {
                j->status = MH_EFORMAT;
                snprintf(j->why, sizeof j->why, "argument %d is nested over "
                         "%d deep, or holds a cJSON item with no Lua form "
                         "(raw, invalid)", nargs + 1, LUA_JSON_DEPTH);
                return 0;
            }
            nargs++;
        }
    if (lua_pcall(L, nargs, 1, 2) != LUA_OK)
        return lua_error(L); /* message with traceback, to the caller */
    json_walk w = JSON_WALK_INIT;
    j->result = to_json(L, -1, 0, &w);
    if (!j->result && w.oom) {
        j->status = MH_ENOMEM;
        snprintf(j->why, sizeof j->why, "out of memory turning its result "
                 "(a %s) into JSON", luaL_typename(L, -1));
    } else if (!j->result) {
        j->status = MH_EFORMAT;
        snprintf(j->why, sizeof j->why, "it returned a %s with no JSON form "
                 "(a function, userdata, NaN or infinity, a string with NUL, "
                 "a table with other keys, a cycle, nesting over %d or over "
                 "%d values)", luaL_typename(L, -1),
                 LUA_JSON_DEPTH, LUA_JSON_VALUES);
    }
    return 0;
}

static mh_status lua_call_job(mh_module *mod, const char *fn,
                              const cJSON *args, bool look_only,
                              cJSON **result, mh_error **err)
{
    mh_host *h = mod->host;
    mh_lua *lu = h->lua;
    call_job j = {.mod = mod, .fn = fn, .args = args, .look_only = look_only,
                  .outer = running_job};
    *result = NULL;
    gil_enter(lu);
    lua_State *L; /* a thread per run, as above */
    int tref;
    char what[300];
    snprintf(what, sizeof what, "%s %s.%s",
             look_only ? "looking up" : "calling", mod->name, fn);
    mh_status trc = run_thread(h, lu, &L, &tref, what, err);
    if (trc != MH_OK) {
        gil_leave(lu);
        return trc;
    }
    int top = lua_gettop(L);
    lua_pushcfunction(L, call_body);
    lua_pushlightuserdata(L, &j);
    running_job = &j;
    int rc = lua_pcall(L, 1, 0, 0);
    running_job = j.outer;
    mh_status st = MH_OK;
    if (rc != LUA_OK) {
        /* A string only: converting a number would allocate, unprotected. */
        const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                        : NULL;
        st = mh_err(h, err, rc == LUA_ERRMEM ? MH_ENOMEM
                                             : call_failure_status(&j, msg),
                    "%s.%s (%s) raised an error: %s", mod->name, fn,
                    mh_reg_where(mod), msg ? msg : "(no message)");
        cJSON_Delete(j.result);
    } else if (j.status == MH_ENOSYM) {
        st = mh_err(h, err, MH_ENOSYM, "module '%s' (%s) has no function "
                    "'%s'", mod->name, mh_reg_where(mod), fn);
    } else if (j.status != MH_OK) {
        st = mh_err(h, err, j.status, "call of %s.%s: %s", mod->name, fn,
                    j.why);
        cJSON_Delete(j.result);
    } else {
        *result = j.result;
    }
    lua_settop(L, top);
    luaL_unref(lu->L, LUA_REGISTRYINDEX, tref);
    gil_leave(lu);
    return st;
}

/* The error object p_push_result raises when the stack could not grow. */
static const char no_room_key;

/* [json] -> its Lua value, or an error: memory (a memory error, or
 * &no_room_key), too deep. */
static int p_push_result(lua_State *L)
{
    const cJSON *j = lua_touserdata(L, 1);
    pushed p = push_json(L, j, 0);
    if (p == PUSH_NO_MEMORY) {
        lua_pushlightuserdata(L, (void *)&no_room_key);
        return lua_error(L);
    }
    if (p != PUSHED)
        return luaL_error(L, "nested too deep for Lua");
    return 1;
}

/* Raises msg, a native call's failure of status st, in L.  Memory, a
 * passing shortage, a deadlock or a cycle is no fault of the plugin's or
 * of the Lua code's: it is recorded first (nested_failed), and the import
 * or call that ran this Lua fails with it when the Lua code raises it as
 * it came, not as a failed chunk or call; any other status forgets an
 * earlier record.  msg is copied before: pushing it may raise, for
 * memory. */
static int raise_failure(lua_State *L, mh_status st, const char *msg)
{
    if (mh_init_status_of_dep(st) == st)
        nested_failed(NESTED_CALL, st, msg);
    else
        nested_forget();
    lua_pushstring(L, msg);
    return lua_error(L);
}

/* raise_failure(MH_ENOMEM) of the message made of fmt. */
static int raise_no_memory(lua_State *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int raise_no_memory(lua_State *L, const char *fmt, ...)
{
    char msg[MH_NAME_MAX * 2 + 96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return raise_failure(L, MH_ENOMEM, msg);
}

/* A native MH_CALL function called from Lua (upvalue 1: its module's
 * name, 2: the function's name): its arguments as a JSON array, its
 * result back as a Lua value; its error raised.  The state is let go
 * during the call, as for an import: the function may import, or take
 * long. */
static int native_call(lua_State *L)
{
    mh_module *m = module_named(L, lua_upvalueindex(1));
    char fn[MH_NAME_MAX + 1];
    size_t fl = 0;
    const char *f = lua_type(L, lua_upvalueindex(2)) == LUA_TSTRING
                        ? lua_tolstring(L, lua_upvalueindex(2), &fl) : NULL;
    if (!m || !f || fl >= sizeof fn)
        return luaL_error(L, "this function's module or name is not one "
                          "of a loaded module's");
    memcpy(fn, f, fl + 1); /* the upvalue may be replaced meanwhile */
    /* A __gc run by lua_close, after every fini: the plugin is done. */
    if (atomic_load(&m->host->closing))
        return luaL_error(L, "%s.%s: the host is being freed", m->name, fn);
    int n = lua_gettop(L);
    json_walk w = JSON_WALK_INIT;
    cJSON *args = json_made(&w, cJSON_CreateArray());
    for (int i = 1; args && i <= n; i++) {
        cJSON *v = to_json(L, i, 1, &w);
        if (!v && w.oom) {
            cJSON_Delete(args);
            args = NULL;
        } else if (!v) {
            cJSON_Delete(args);
            return luaL_error(L, "%s.%s: argument %d (%s) has no JSON form, "
                              "or is nested too deep or too large", m->name,
                              fn, i, luaL_typename(L, i));
        } else {
            cJSON_AddItemToArray(args, v);
        }
    }
    if (!args)
        return raise_no_memory(L, "out of memory in %s.%s: turning its "
                               "arguments into JSON", m->name, fn);
    mh_error *e = NULL;
    cJSON *res = NULL;
    int depth = gil_release(m->host->lua);
    mh_status rc = mh_nat_call(m, fn, args, &res, &e);
    gil_restore(m->host->lua, depth);
    cJSON_Delete(args);
    if (rc != MH_OK) {
        char msg[8192];
        if ((size_t)snprintf(msg, sizeof msg, "%s", mh_error_message(e)) >=
            sizeof msg)
            memcpy(msg + sizeof msg - 4, "...", 4);
        mh_error_free(e);
        return raise_failure(L, rc, msg);
    }
    lua_pushcfunction(L, p_push_result);
    lua_pushlightuserdata(L, res);
    int pr = lua_pcall(L, 1, 1, 0);
    cJSON_Delete(res);
    if (pr == LUA_ERRMEM ||
        (pr == LUA_ERRRUN && lua_touserdata(L, -1) == &no_room_key))
        return raise_no_memory(L, "out of memory in %s.%s: its result has "
                               "no room in Lua", m->name, fn);
    if (pr != LUA_OK)
        return luaL_error(L, "%s.%s: its result: %s", m->name, fn,
                          lua_tostring(L, -1));
    return 1;
}

mh_status mh_lua_call(mh_module *mod, const char *fn, const cJSON *args,
                      cJSON **result, mh_error **err)
{
    return lua_call_job(mod, fn, args, false, result, err);
}

mh_status mh_lua_has_function(mh_module *mod, const char *fn,
                              mh_error **err)
{
    cJSON *none;
    return lua_call_job(mod, fn, NULL, true, &none, err);
}

void mh_lua_unload(mh_host *h, mh_module *mod)
{
    mh_lua *lu = h->lua;
    if (!lu || mod->lua_ref == 0)
        return;
    gil_enter(lu);
    luaL_unref(lu->L, LUA_REGISTRYINDEX, mod->lua_ref);
    gil_leave(lu);
    mod->lua_ref = 0;
}

/* ---- public ------------------------------------------------------------- */

mh_status mh_module_call(mh_module *mod, const char *fn, const cJSON *args,
                         cJSON **result, mh_error **err)
{
    MH_BUSY(mod ? mod->host : NULL);
    if (!result)
        return mh_err(NULL, err, MH_EINVAL, "mh_module_call: result is NULL");
    *result = NULL;
    if (!mod || !fn)
        return mh_err(NULL, err, MH_EINVAL, "mh_module_call: %s is NULL",
                      mh_null_name(2, mod, "mod", fn, "fn"));
    if (mh_in_log_hook(mod->host)) /* the hook may run under its locks */
        return mh_entry_check(mod->host, "mh_module_call", 0, err);
    if (args && !cJSON_IsArray(args))
        return mh_err(mod->host, err, MH_EINVAL, "call of %s.%s: the "
                      "arguments must be a JSON array", mod->name, fn);
    if (mh_json_has_nonfinite(args))
        return mh_err(mod->host, err, MH_EINVAL, "call of %s.%s: an argument "
                      "holds a number that is not finite (NaN, or past the "
                      "range of a double, such as 1e400): JSON has none",
                      mod->name, fn);
    if (mod->kind == MH_KIND_NATIVE)
        return mh_nat_call(mod, fn, args, result, err);
    if (mod->kind != MH_KIND_LUA)
        return mh_err(mod->host, err, MH_ENOSYM, "module '%s' (%s) is %s: "
                      "it has no functions to call", mod->name,
                      mh_reg_where(mod), mh_module_kind_name(mod->kind));
    return mh_lua_call(mod, fn, args, result, err);
}
