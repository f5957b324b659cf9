/*
 * test_deps.c -- dependencies declared in manifests ("requires"): imported
 * first, in order, before the module that needs them; a missing one, a
 * version that does not satisfy the constraint and a cycle each fail with
 * the whole import chain named and nothing of the failed modules left
 * loaded; a module two others require is initialised once.
 *
 * Most cases use Lua modules with sidecar manifests the test writes: each
 * chunk appends its name to the global ORDER (one Lua state per host) and
 * logs "loaded <NAME>" through the captured log hook.  The native cases
 * use the dep_* fixtures, whose requirements are in their manifest notes
 * and whose init logs "init NAME".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>

#include <modhost/finder.h>

#include "support/support.h"
#include "test.h"

#define LUA_SRC                                                           \
    "ORDER = ORDER or {}\n"                                               \
    "ORDER[#ORDER + 1] = ...\n"                                           \
    "modhost.log('loaded <' .. ... .. '>')\n"                             \
    "return { order = function() return table.concat(ORDER, ',') end }\n"

/* Lua module E/NAME.lua with a sidecar whose "requires" is reqs (a JSON
 * array's inside, e.g. "\"b >=1\"") and version ver (NULL: none). */
static void lua_dep(const char *name, const char *ver, const char *reqs)
{
    const char *json = str_fmt("{%s%s%s\"requires\": [%s]}",
                               ver ? "\"version\": \"" : "", ver ? ver : "",
                               ver ? "\", " : "", reqs);
    meta_lua_module(str_fmt("E/%s", name), LUA_SRC, json);
}

/* Index of the first captured message containing needle, or -1. */
static long log_index(log_capture *lc, const char *needle)
{
    long at = -1;
    pthread_mutex_lock(&lc->mu);
    for (size_t i = 0; i < lc->n && at < 0; i++)
        if (strstr(lc->msgs[i], needle))
            at = (long)i;
    pthread_mutex_unlock(&lc->mu);
    return at;
}

/* The messages containing each of the needles came in this order, each
 * exactly once. */
#define ASSERT_LOG_ORDER(lc, ...)                                         \
    assert_log_order((lc), (const char *const[]){__VA_ARGS__, NULL})
static void assert_log_order(log_capture *lc, const char *const *needles)
{
    long prev = -1;
    for (size_t i = 0; needles[i]; i++) {
        long at = log_index(lc, needles[i]);
        size_t n = log_capture_count(lc, -1, needles[i]);
        if (at < 0 || n != 1 || at < prev)
            FAIL("expected \"%s\" once, after \"%s\"; log:%s", needles[i],
                 i ? needles[i - 1] : "(start)", log_capture_dump(lc));
        prev = at;
    }
}

/* What the Lua globals say was loaded, in order. */
static const char *lua_order(mh_host *host, const char *any_loaded)
{
    mh_module *mod = mh_host_module(host, any_loaded);
    if (!mod)
        FAIL("'%s' is not loaded", any_loaded);
    return call_ok(mod, "order", NULL);
}

#define HOST(lc)                                                          \
    host_new_opts(&(host_opts){.log = (lc)}, tmp_path("E"))

/* ----------------------------------------------------- imported first */

TEST(lua_chain_imported_first_in_order)
{
    log_capture lc;
    log_capture_init(&lc);
    lua_dep("a", "1.0", "\"b\"");
    lua_dep("b", "1.0", "\"c >=0.5\"");
    lua_dep("c", "0.5", "");
    mh_host *host = HOST(&lc);

    mh_module *a = import_ok(host, "a");
    ASSERT_EQ_INT(mh_host_module_count(host), 3);
    ASSERT_NOT_NULL(mh_host_module(host, "b"));
    ASSERT_NOT_NULL(mh_host_module(host, "c"));
    ASSERT_EQ_STR(lua_order(host, "a"), "\"c,b,a\"");
    ASSERT_LOG_ORDER(&lc, "loaded <c>", "loaded <b>", "loaded <a>");
    /* Importing again runs nothing. */
    ASSERT_EQ_PTR(import_ok(host, "a"), a);
    ASSERT_EQ_STR(lua_order(host, "a"), "\"c,b,a\"");
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(requires_imported_in_listed_order)
{
    log_capture lc;
    log_capture_init(&lc);
    lua_dep("top", NULL, "\"y\", \"x >=1\", \"w\"");
    lua_dep("w", NULL, "");
    lua_dep("x", "1.0", "");
    lua_dep("y", NULL, "");
    mh_host *host = HOST(&lc);

    import_ok(host, "top");
    ASSERT_EQ_STR(lua_order(host, "top"), "\"y,x,w,top\"");
    ASSERT_EQ_INT(mh_host_module_count(host), 4);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(native_chain_imported_first_in_order)
{
    log_capture lc;
    log_capture_init(&lc);
    fixture_copy("dep_a", "E/dep_a.so");
    fixture_copy("dep_b", "E/dep_b.so");
    const char *c_so = fixture_copy("dep_c", "E/dep_c.so");
    mh_host *host = HOST(&lc);

    mh_module *a = import_ok(host, "dep_a");
    ASSERT_EQ_INT(mh_host_module_count(host), 3);
    mh_module *b = mh_host_module(host, "dep_b");
    mh_module *c = mh_host_module(host, "dep_c");
    ASSERT_NOT_NULL(b);
    ASSERT_NOT_NULL(c);
    ASSERT_EQ_STR(mh_module_origin(c), c_so);
    ASSERT_LOG_ORDER(&lc, "init dep_c", "init dep_b", "init dep_a");
    ASSERT_EQ_INT(call_int(a, "init_count"), 1);
    ASSERT_EQ_INT(call_int(b, "init_count"), 1);
    ASSERT_EQ_INT(call_int(c, "init_count"), 1);
    /* Versions come from the notes, not the descriptors' "0.0.0". */
    ASSERT_EQ_STR(mh_module_version(a), "3.1");
    ASSERT_EQ_STR(mh_module_version(b), "1.0");
    ASSERT_EQ_STR(mh_module_version(c), "1.2.0");
    mh_host_free(host);
    log_capture_free(&lc);
}

/* ---------------------------------------------------------- missing */

TEST(missing_requirement_names_chain_and_leaves_nothing)
{
    log_capture lc;
    log_capture_init(&lc);
    lua_dep("a", NULL, "\"b\"");
    lua_dep("b", NULL, "\"zzz\"");
    mh_host *host = HOST(&lc);

    ASSERT_STATUS(import_fails(host, "a"), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "a -> b -> zzz");
    ASSERT_CONTAINS(ERR_MSG(), "'zzz'");
    ASSERT_NULL(mh_host_module(host, "b"));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "loaded <"), 0);
    /* The same again: nothing was left half-imported. */
    ASSERT_STATUS(import_fails(host, "a"), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "a -> b -> zzz");
    /* b alone names its own, shorter chain. */
    ASSERT_STATUS(import_fails(host, "b"), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "b -> zzz");
    ASSERT_NOT_CONTAINS(ERR_MSG(), "a -> b");

    /* Once zzz exists, the import works. */
    lua_dep("zzz", NULL, "");
    mh_invalidate_caches(host);
    import_ok(host, "a");
    ASSERT_EQ_STR(lua_order(host, "a"), "\"zzz,b,a\"");
    ASSERT_EQ_INT(mh_host_module_count(host), 3);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(native_missing_requirement_never_opens_the_chain)
{
    const char *a_so = fixture_copy("dep_a", "E/dep_a.so");
    const char *b_so = fixture_copy("dep_b", "E/dep_b.so");
    mh_host *host = host_new_isolated(tmp_path("E"));

    ASSERT_STATUS(import_fails(host, "dep_a"), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "dep_a -> dep_b -> dep_c");
    ASSERT_NULL(mh_host_module(host, "dep_b"));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    /* Refused from the notes: neither object was ever mapped. */
    ASSERT_EQ_INT(maps_count(a_so, a_so), 0);
    ASSERT_EQ_INT(maps_count(b_so, b_so), 0);

    fixture_copy("dep_c", "E/dep_c.so");
    mh_invalidate_caches(host);
    mh_module *a = import_ok(host, "dep_a");
    ASSERT_EQ_INT(call_int(a, "init_count"), 1);
    ASSERT_EQ_INT(mh_host_module_count(host), 3);
    mh_host_free(host);
}

/* ---------------------------------------------------------- versions */

TEST(version_conflict_names_chain_version_and_origin)
{
    log_capture lc;
    log_capture_init(&lc);
    lua_dep("a", NULL, "\"b >=2\"");
    const char *b_origin = tmp_path("E/b.lua");
    lua_dep("b", "1.0", "");
    mh_host *host = HOST(&lc);

    ASSERT_STATUS(import_fails(host, "a"), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), "a -> b");
    ASSERT_CONTAINS(ERR_MSG(), "b >=2");
    ASSERT_CONTAINS(ERR_MSG(), "1.0");
    ASSERT_CONTAINS(ERR_MSG(), b_origin);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "loaded <a>"), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(version_conflict_variants)
{
    static const struct {
        const char *constraint;
        mh_status want;
    } cases[] = {
        {"~=2.0", MH_EVERSION}, {"~=1.1", MH_EVERSION},
        {"~=1.0", MH_OK},       {"~=0.9", MH_EVERSION},
        {"<1.0", MH_EVERSION},  {"<1.0.1", MH_OK},
        {"!=1.0.0", MH_EVERSION}, {"==1", MH_OK},
        {">=0.9, <1", MH_EVERSION}, {">=0.9, <1.1", MH_OK},
    };
    lua_dep("b", "1.0", "");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        lua_dep("a", NULL, str_fmt("\"b %s\"", cases[i].constraint));
        mh_host *host = host_new_isolated(tmp_path("E"));
        mh_module *mod = NULL;
        mh_status st = mh_import(host, "a", &mod, ERR);
        if (st != cases[i].want)
            FAIL("a requires 'b %s', b is 1.0: got %s, expected %s (\"%s\")",
                 cases[i].constraint, mh_status_name(st),
                 mh_status_name(cases[i].want), ERR_MSG());
        if (st == MH_OK) {
            ASSERT_EQ_PTR(mh_host_module(host, "a"), mod);
        } else {
            ASSERT_NULL(mod);
            ASSERT_NULL(mh_host_module(host, "a"));
            ASSERT_CONTAINS(ERR_MSG(), "a -> b");
            ASSERT_CONTAINS(ERR_MSG(), cases[i].constraint);
            ASSERT_CONTAINS(ERR_MSG(), "version 1.0");
        }
        mh_host_free(host);
    }
}

TEST(deep_version_conflict_names_whole_chain)
{
    lua_dep("a", NULL, "\"b\"");
    lua_dep("b", NULL, "\"c >=5\"");
    lua_dep("c", "4.9.9", "");
    mh_host *host = host_new_isolated(tmp_path("E"));

    ASSERT_STATUS(import_fails(host, "a"), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), "a -> b -> c");
    ASSERT_CONTAINS(ERR_MSG(), "4.9.9");
    ASSERT_CONTAINS(ERR_MSG(), "c >=5");
    ASSERT_NULL(mh_host_module(host, "b"));
    mh_host_free(host);
}

TEST(native_version_conflict)
{
    const char *newer_so = fixture_copy("dep_newer", "E/dep_newer.so");
    const char *c_so = fixture_copy("dep_c", "E/dep_c.so");
    mh_host *host = host_new_isolated(tmp_path("E"));

    ASSERT_STATUS(import_fails(host, "dep_newer"), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), "dep_newer -> dep_c");
    ASSERT_CONTAINS(ERR_MSG(), "dep_c >=2");
    ASSERT_CONTAINS(ERR_MSG(), "1.2.0");
    ASSERT_CONTAINS(ERR_MSG(), c_so);
    ASSERT_EQ_INT(maps_count(newer_so, newer_so), 0);
    mh_host_free(host);
}

TEST(constraint_on_module_without_version)
{
    lua_dep("a", NULL, "\"b >=1\"");
    lua_dep("b", NULL, "");                      /* sidecar, no version */
    meta_lua_module("E/c", LUA_SRC, NULL);       /* no sidecar at all */
    lua_dep("d", NULL, "\"c ~=1.0\"");
    lua_dep("e", NULL, "\"b\", \"c\"");          /* no constraint: fine */
    mh_host *host = host_new_isolated(tmp_path("E"));

    ASSERT_STATUS(import_fails(host, "a"), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), "a -> b");
    ASSERT_CONTAINS(ERR_MSG(), "of no declared version");
    ASSERT_STATUS(import_fails(host, "d"), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), "d -> c");
    ASSERT_CONTAINS(ERR_MSG(), "of no declared version");
    import_ok(host, "e");
    mh_host_free(host);
}

TEST(constraint_on_a_version_that_is_no_version)
{
    /* A manifest may declare any text as its version; a constraint on
     * one that is no version failed saying only "is version abc", and
     * an empty one ("is version ") hid the module's other version. */
    lua_dep("f", "abc", "");
    lua_dep("g", NULL, "\"f >=1\"");
    lua_dep("h", "", "");
    lua_dep("i", NULL, "\"h >=1\"");
    mh_host *host = host_new_isolated(tmp_path("E"));

    ASSERT_STATUS(import_fails(host, "g"), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), "g -> f");
    ASSERT_CONTAINS(ERR_MSG(), "is version abc, which is not a version "
                               "(dotted numbers, as 1.2.0)");
    ASSERT_STATUS(import_fails(host, "i"), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), "i -> h");
    ASSERT_CONTAINS(ERR_MSG(), "of no declared version");
    ASSERT_NULL(mh_module_version(import_ok(host, "h")));
    /* Loaded first, the same words from the check after the import. */
    import_ok(host, "f");
    ASSERT_STATUS(import_fails(host, "g"), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), "is version abc, which is not a version");
    mh_host_free(host);
}

/* ------------------------------------------------------------ cycles */

/* One import on a thread of its own (cases racing two imports). */
typedef struct race {
    mh_host *host;
    const char *name;
    mh_status st;
} race;

static void *race_import(void *arg)
{
    race *r = arg;
    mh_module *mod;
    r->st = mh_import(r->host, r->name, &mod, NULL);
    return NULL;
}

TEST(cycle_of_two_is_ecycle_with_chain)
{
    log_capture lc;
    log_capture_init(&lc);
    lua_dep("a", NULL, "\"b\"");
    lua_dep("b", NULL, "\"a\"");
    mh_host *host = HOST(&lc);

    ASSERT_STATUS(import_fails(host, "a"), MH_ECYCLE);
    ASSERT_CONTAINS(ERR_MSG(), "a -> b -> a");
    ASSERT_NULL(mh_host_module(host, "b"));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    /* Again, and from the other end. */
    ASSERT_STATUS(import_fails(host, "a"), MH_ECYCLE);
    ASSERT_CONTAINS(ERR_MSG(), "a -> b -> a");
    ASSERT_STATUS(import_fails(host, "b"), MH_ECYCLE);
    ASSERT_CONTAINS(ERR_MSG(), "b -> a -> b");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "loaded <"), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(entry_no_finder_takes_is_settled_after_a_cycle_too)
{
    /* An entry no finder takes is settled at its first use: one warning,
     * its error kept.  After a cycle had been refused in the thread, it
     * never was: the check that an open() met an import in progress
     * counted that old cycle (found by review). */
    log_capture lc;
    log_capture_init(&lc);
    lua_dep("a", NULL, "\"b\"");
    lua_dep("b", NULL, "\"a\"");
    mh_host *host = HOST(&lc);
    ASSERT_STATUS(import_fails(host, "a"), MH_ECYCLE);
    ASSERT_STATUS(mh_host_add_path(host, "nosuchscheme:/x", SIZE_MAX, ERR),
                  MH_OK);
    for (int i = 0; i < 3; i++)
        ASSERT_STATUS(import_fails(host, "zzz"), MH_ENOTFOUND);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "search path entry "
                                    "'nosuchscheme:/x' skipped"), 1);
    mh_path_entry_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_host_path_entry_info(host, 1, &info), MH_OK);
    ASSERT_NOT_NULL(info.error);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(cycle_of_three_and_self)
{
    lua_dep("a", NULL, "\"b\"");
    lua_dep("b", NULL, "\"c\"");
    lua_dep("c", NULL, "\"a\"");
    lua_dep("me", NULL, "\"me\"");
    mh_host *host = host_new_isolated(tmp_path("E"));

    ASSERT_STATUS(import_fails(host, "a"), MH_ECYCLE);
    /* The chain once: it said "(import chain: a -> b -> c -> a): circular
     * import of module 'a': a -> b -> c -> a". */
    ASSERT_EQ_STR(ERR_MSG(), "module 'c' requires 'a' (import chain: a -> "
                             "b -> c -> a): a circular import");
    ASSERT_STATUS(import_fails(host, "c"), MH_ECYCLE);
    ASSERT_CONTAINS(ERR_MSG(), "c -> a -> b -> c");
    ASSERT_STATUS(import_fails(host, "me"), MH_ECYCLE);
    ASSERT_CONTAINS(ERR_MSG(), "me -> me");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
}

TEST(cycle_below_a_good_module)
{
    lua_dep("top", NULL, "\"ok\", \"a\"");
    lua_dep("ok", NULL, "");
    lua_dep("a", NULL, "\"b\"");
    lua_dep("b", NULL, "\"a\"");
    mh_host *host = host_new_isolated(tmp_path("E"));

    ASSERT_STATUS(import_fails(host, "top"), MH_ECYCLE);
    ASSERT_CONTAINS(ERR_MSG(), "top -> a -> b -> a");
    ASSERT_NULL(mh_host_module(host, "a"));
    ASSERT_NULL(mh_host_module(host, "b"));
    mh_host_free(host);
}

TEST(cycle_across_two_threads_fails_without_hanging)
{
    lua_dep("a", NULL, "\"b\"");
    lua_dep("b", NULL, "\"a\"");
    for (int round = 0; round < 20; round++) {
        mh_host *host = host_new_isolated(tmp_path("E"));
        race r[2] = {{host, "a", MH_OK}, {host, "b", MH_OK}};
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            ASSERT_EQ_INT(pthread_create(&t[i], NULL, race_import, &r[i]),
                          0);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        for (int i = 0; i < 2; i++)
            if (r[i].st != MH_ECYCLE && r[i].st != MH_EDEADLOCK)
                FAIL("round %d: importing '%s' gave %s", round, r[i].name,
                     mh_status_name(r[i].st));
        ASSERT_EQ_INT(mh_host_module_count(host), 0);
        mh_host_free(host);
    }
}

/* ------------------------------------------------------------ sharing */

TEST(shared_dependency_initialised_once)
{
    log_capture lc;
    log_capture_init(&lc);
    lua_dep("x", NULL, "\"d\"");
    lua_dep("y", NULL, "\"d\"");
    lua_dep("both", NULL, "\"x\", \"y\", \"d\"");
    lua_dep("d", "1.0", "");
    mh_host *host = HOST(&lc);

    import_ok(host, "both");
    ASSERT_EQ_STR(lua_order(host, "both"), "\"d,x,y,both\"");
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "loaded <d>"), 1);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(native_shared_dependency_init_once)
{
    log_capture lc;
    log_capture_init(&lc);
    fixture_copy("dep_b", "E/dep_b.so");
    fixture_copy("dep_twin", "E/dep_twin.so");
    fixture_copy("dep_c", "E/dep_c.so");
    mh_host *host = HOST(&lc);

    import_ok(host, "dep_b");
    import_ok(host, "dep_twin");
    mh_module *c = mh_host_module(host, "dep_c");
    ASSERT_NOT_NULL(c);
    ASSERT_EQ_INT(call_int(c, "init_count"), 1);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "init dep_c"), 1);
    ASSERT_LOG_ORDER(&lc, "init dep_c", "init dep_b", "init dep_twin");
    ASSERT_EQ_INT(mh_host_module_count(host), 3);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(native_shared_dependency_init_once_across_threads)
{
    log_capture lc;
    log_capture_init(&lc);
    fixture_copy("dep_b", "E/dep_b.so");
    fixture_copy("dep_twin", "E/dep_twin.so");
    fixture_copy("dep_c", "E/dep_c.so");
    mh_host *host = HOST(&lc);
    race r[2] = {{host, "dep_b", MH_EINVAL}, {host, "dep_twin", MH_EINVAL}};
    pthread_t t[2];

    for (int i = 0; i < 2; i++)
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, race_import, &r[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    ASSERT_STATUS(r[0].st, MH_OK);
    ASSERT_STATUS(r[1].st, MH_OK);
    mh_module *c = mh_host_module(host, "dep_c");
    ASSERT_NOT_NULL(c);
    ASSERT_EQ_INT(call_int(c, "init_count"), 1);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "init dep_c"), 1);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* ----------------------------------------------- a requirement that fails */

TEST(requirement_failing_after_a_swallowed_chain_error_names_chain)
{
    /* b's chunk tries c (which cannot be admitted: it requires the
     * missing zzz), swallows that error, then fails for its own reason.
     * a's import must still name the chain a -> b. */
    lua_dep("a", NULL, "\"b\"");
    meta_lua_module("E/b",
                    "local ok = pcall(modhost.import, 'c')\n"
                    "assert(not ok)\n"
                    "error('b fails on its own')\n",
                    "{\"version\": \"1.0\"}");
    lua_dep("c", NULL, "\"zzz\"");
    mh_host *host = host_new_isolated(tmp_path("E"));

    import_fails(host, "a");
    ASSERT_CONTAINS(ERR_MSG(), "b fails on its own");
    ASSERT_CONTAINS(ERR_MSG(), "a -> b");
    mh_host_free(host);
}

TEST(failing_requirement_names_chain_and_its_error)
{
    lua_dep("a", NULL, "\"b\"");
    meta_lua_module("E/b", "error('b refuses to load')\n",
                    "{\"version\": \"1.0\"}");
    mh_host *host = host_new_isolated(tmp_path("E"));

    mh_status st = import_fails(host, "a");
    ASSERT_NE_INT(st, MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), "a -> b");
    ASSERT_CONTAINS(ERR_MSG(), "b refuses to load");
    ASSERT_NULL(mh_host_module(host, "b"));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
}
