/*
 * test_import.c -- mh_import end to end with real fixture plugins: the
 * registry, dotted names, namespace packages, path order, every way a
 * load can fail (and that a failure leaves nothing behind), RTLD_LOCAL
 * isolation, circular and nested imports, fini order, and exports.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "test.h"

static const char *skip_quotes(const char *p)
{
    while (*p == ' ' || *p == '\'' || *p == '"')
        p++;
    return p;
}

/* True when msg holds the names in order, each pair joined by "->" (any
 * spacing or quoting around the arrow): e.g. "x -> y -> x". */
static int has_chain(const char *msg, int n, ...)
{
    const char *names[8];
    va_list ap;

    va_start(ap, n);
    for (int i = 0; i < n && i < 8; i++)
        names[i] = va_arg(ap, const char *);
    va_end(ap);
    for (const char *q = strstr(msg, names[0]); q; q = strstr(q + 1, names[0])) {
        const char *p = q + strlen(names[0]);
        int i = 1;
        for (; i < n; i++) {
            p = skip_quotes(p);
            if (strncmp(p, "->", 2) != 0)
                break;
            p = skip_quotes(p + 2);
            if (strncmp(p, names[i], strlen(names[i])) != 0)
                break;
            p += strlen(names[i]);
        }
        if (i == n)
            return 1;
    }
    return 0;
}

#define ASSERT_CHAIN(msg, n, ...)                                          \
    do {                                                                   \
        if (!has_chain((msg), (n), __VA_ARGS__))                           \
            FAIL("message lacks the chain %s: \"%s\"", #__VA_ARGS__, (msg)); \
    } while (0)

TEST(same_name_same_module)
{
    mh_host *host;
    mh_module *m1, *m2;

    fixture_copy("counter", "E/counter.so");
    host = host_new_isolated(tmp_path("E"));
    m1 = import_ok(host, "counter");
    m2 = import_ok(host, "counter");
    ASSERT_EQ_PTR(m1, m2);
    ASSERT_EQ_PTR(mh_host_module(host, "counter"), m1);
    ASSERT_EQ_INT(call_int(m1, "init_count"), 1);
    ASSERT_EQ_INT(call_int(m1, "value"), 42);
    ASSERT_EQ_INT(mh_host_module_count(host), 1);
    mh_host_free(host);
}

TEST(registry_hit_does_not_allocate)
{
    alloc_tracker at;
    mh_config cfg;
    mh_host *host;
    mh_module *mod;
    size_t calls;

    fixture_copy("counter", "E/pkg/counter.so");
    alloc_tracker_init(&at);
    cfg = tracked_config(&at, tmp_path("E"));
    host = host_new_cfg(&cfg);
    mod = import_ok(host, "pkg.counter");
    calls = at.calls;
    for (int i = 0; i < 1000; i++) {
        char name[16];
        mh_module *again = NULL;
        /* a fresh buffer each time: found by content, not by pointer */
        snprintf(name, sizeof name, "pkg.%s", "counter");
        ASSERT_STATUS(mh_import(host, name, &again, NULL), MH_OK);
        ASSERT_EQ_PTR(again, mod);
    }
    ASSERT_EQ_INT(at.calls, calls);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
}

TEST(dotted_name_origin_and_interned_name)
{
    const char *path = fixture_copy("counter", "E/pkg/sub/mod.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = import_ok(host, "pkg.sub.mod");

    ASSERT_EQ_STR(mh_module_origin(mod), path);
    ASSERT_EQ_STR(mh_module_name(mod), "pkg.sub.mod");
    ASSERT_EQ_PTR(mh_module_name(mod), mh_intern_lookup(host, "pkg.sub.mod"));
    ASSERT_EQ_PTR(mh_module_name(mod), mh_intern(host, "pkg.sub.mod"));
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_NATIVE);
    ASSERT_EQ_PTR(mh_host_module(host, "pkg.sub.mod"), mod);
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    mh_host_free(host);
}

/* mh_find's origin for name, interned by the host. */
static const char *found_origin(mh_host *host, const char *name)
{
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, name, &info, ERR), MH_OK);
    return info.origin;
}

TEST(loaded_modules_keep_no_path_of_their_own)
{
    /* A loaded module keeps its entry's share of its origin, not a path
     * of its own: ten imports from one directory intern the ten names and
     * the directory's own strings, never ten paths.  Asked for, each
     * origin is the very string mh_find reports (interned: ==). */
    enum { N = 10 };
    char name[32];
    for (int i = 0; i < N; i++)
        fixture_copy("counter", "E/pkg/m%d.so", i);
    lua_write("E/pkg/lmod.lua", "return {v = function() return 7 end}");
    tmp_mkdir("E/ns/inner");
    fixture_copy("counter", "E/ns/inner/leaf.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    import_ok(host, "pkg.m0"); /* the directories' strings, once */
    size_t before = mh_intern_count(host);
    for (int i = 1; i < N; i++) {
        snprintf(name, sizeof name, "pkg.m%d", i);
        import_ok(host, name);
    }
    /* Each import interns its name; a path per module would double it. */
    ASSERT_EQ_INT(mh_intern_count(host) - before, N - 1);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "pkg.m%d", i);
        mh_module *mod = mh_host_module(host, name);
        ASSERT_EQ_STR(mh_module_origin(mod),
                      tmp_path("E/pkg/m%d.so", i));
        ASSERT_EQ_PTR(mh_module_origin(mod), found_origin(host, name));
    }
    mh_module *lm = import_ok(host, "pkg.lmod");
    ASSERT_EQ_STR(mh_module_origin(lm), tmp_path("E/pkg/lmod.lua"));
    ASSERT_EQ_PTR(mh_module_origin(lm), found_origin(host, "pkg.lmod"));
    mh_module *ns = import_ok(host, "ns");
    ASSERT_EQ_STR(mh_module_origin(ns), tmp_path("E/ns"));
    ASSERT_EQ_PTR(mh_module_origin(ns), found_origin(host, "ns"));
    mh_module *leaf = import_ok(host, "ns.inner.leaf");
    ASSERT_EQ_STR(mh_module_origin(leaf), tmp_path("E/ns/inner/leaf.so"));
    mh_host_free(host);
}

TEST(module_metadata)
{
    mh_host *host;
    mh_module *mod;

    fixture_copy("counter", "E/counter.so");
    host = host_new_isolated(tmp_path("E"));
    mod = import_ok(host, "counter");
    ASSERT_EQ_STR(mh_module_version(mod), "1.0");
    ASSERT_EQ_STR(mh_module_finder(mod), "fs");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_NATIVE);
    ASSERT_EQ_STR(mh_module_kind_name(mh_module_kind_of(mod)), "native");
    mh_host_free(host);
}

TEST(namespace_package_across_entries)
{
    const char *one = fixture_copy("counter", "E1/ns/one.so");
    const char *two = fixture_copy("counter", "E2/ns/two.so");
    mh_host *host = host_new_isolated(tmp_path("E1"), tmp_path("E2"));
    mh_module *ns = import_ok(host, "ns");
    mh_module *m1, *m2;

    ASSERT_EQ_INT(mh_module_kind_of(ns), MH_KIND_NAMESPACE);
    ASSERT_EQ_STR(mh_module_kind_name(MH_KIND_NAMESPACE), "namespace");
    ASSERT_EQ_STR(mh_module_origin(ns), tmp_path("E1/ns"));
    ASSERT_NULL(mh_module_symbol(ns, "value"));
    ASSERT_EQ_INT(mh_module_export_count(ns), 0);
    /* Both portions are part of the package, whichever entry has them. */
    m1 = import_ok(host, "ns.one");
    m2 = import_ok(host, "ns.two");
    ASSERT_EQ_STR(mh_module_origin(m1), one);
    ASSERT_EQ_STR(mh_module_origin(m2), two);
    ASSERT_EQ_PTR(import_ok(host, "ns"), ns);
    mh_host_free(host);
}

TEST(namespace_submodules_before_package)
{
    const char *two = fixture_copy("counter", "E2/ns/two.so");
    mh_host *host;
    mh_module *ns;

    fixture_copy("counter", "E1/ns/one.so");
    host = host_new_isolated(tmp_path("E1"), tmp_path("E2"));
    ASSERT_EQ_STR(mh_module_origin(import_ok(host, "ns.two")), two);
    ASSERT_NOT_NULL(import_ok(host, "ns.one"));
    ns = import_ok(host, "ns");
    ASSERT_EQ_INT(mh_module_kind_of(ns), MH_KIND_NAMESPACE);
    mh_host_free(host);
}

TEST(first_entry_wins)
{
    const char *first = fixture_copy("counter", "E1/dup.so");
    mh_host *host;
    mh_module *mod;

    fixture_copy("fini_order", "E2/dup.so");
    host = host_new_isolated(tmp_path("E1"), tmp_path("E2"));
    mod = import_ok(host, "dup");
    ASSERT_EQ_STR(mh_module_origin(mod), first);
    ASSERT_NOT_NULL(mh_module_symbol(mod, "init_count"));
    mh_host_free(host);
}

TEST(module_file_beats_directory_in_same_entry)
{
    const char *file = fixture_copy("counter", "E/thing.so");
    mh_host *host;
    mh_module *mod;

    fixture_copy("counter", "E/thing/inner.so");
    host = host_new_isolated(tmp_path("E"));
    mod = import_ok(host, "thing");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_NATIVE);
    ASSERT_EQ_STR(mh_module_origin(mod), file);
    mh_host_free(host);
}

TEST(namespace_loses_to_module_in_later_entry)
{
    const char *file;
    mh_host *host;
    mh_module *mod;

    fixture_copy("counter", "E1/thing/inner.so");
    file = fixture_copy("counter", "E2/thing.so");
    host = host_new_isolated(tmp_path("E1"), tmp_path("E2"));
    mod = import_ok(host, "thing");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_NATIVE);
    ASSERT_EQ_STR(mh_module_origin(mod), file);
    mh_host_free(host);
}

TEST(not_found_message_lists_every_entry)
{
    const char *e1 = tmp_mkdir("E1");
    const char *missing = tmp_path("missing");
    const char *e2 = tmp_mkdir("E2");
    mh_host *host = host_new_isolated(e1, missing, e2);
    mh_module *mod = (mh_module *)&mod;

    ASSERT_STATUS(mh_import(host, "no.such.mod", &mod, ERR), MH_ENOTFOUND);
    ASSERT_NULL(mod);
    ASSERT_EQ_INT(ERR_CODE(), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "no.such.mod");
    ASSERT_CONTAINS(ERR_MSG(), e1);
    ASSERT_CONTAINS(ERR_MSG(), missing);
    ASSERT_CONTAINS(ERR_MSG(), e2);
    ASSERT_NULL(mh_host_module(host, "no.such.mod"));
    mh_host_free(host);
}

TEST(not_found_message_gives_each_entrys_own_reason)
{
    /* What each entry lacked, as an operator needs it to fix the path:
     * the package directory, the module in a package that is there, or
     * the entry itself.  A module file named like the package is not a
     * package. */
    const char *e1 = tmp_mkdir("E1");
    const char *e2 = tmp_mkdir("E2/pkgq");
    e2 = tmp_path("E2");
    const char *missing = tmp_path("missing");
    fixture_copy("counter", "E3/pkgq.so");
    const char *e3 = tmp_path("E3");
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.flags = MH_CONFIG_VERBOSE, .log = &lc};
    mh_host *host = host_new_opts(&o, e1, e2, missing, e3);
    mh_module *mod;

    ASSERT_STATUS(mh_import(host, "pkgq.mod", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "searched 4 path entries");
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("\n  %s: no directory pkgq/\n", e1));
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("\n  %s: no pkgq/mod.so, pkgq/mod.lua "
                                       "or pkgq/mod.luac\n", e2));
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("\n  %s: directory does not exist\n",
                                       missing));
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("\n  %s: no directory pkgq/", e3));
    /* answered by the root listings, not by a failed look below them */
    ASSERT_NOT_CONTAINS(ERR_MSG(), "pkgq/ (");
    /* the traces name each entry by its place in the path */
    ASSERT_LOG(&lc, MH_LOG_TRACE, "find 'pkgq.mod': entry 0 (fs): no "
                                  "directory pkgq/");
    ASSERT_LOG(&lc, MH_LOG_TRACE, "find 'pkgq.mod': entry 3 (fs): no "
                                  "directory pkgq/");

    ASSERT_STATUS(mh_import(host, "flat", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("\n  %s: no flat.so, flat.lua or "
                                       "flat.luac\n", e1));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(init_failure_leaves_nothing)
{
    mh_host *host;
    mh_module *mod = (mh_module *)&mod;

    fixture_copy("counter", "E/counter.so");
    fixture_copy("init_fails", "E/refuser.so");
    env_set("MH_FIXTURE_MARKER", tmp_path("marker"));
    host = host_new_isolated(tmp_path("E"));
    import_ok(host, "counter");
    ASSERT_STATUS(mh_import(host, "refuser", &mod, ERR), MH_EINIT);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), "deliberate init failure");
    ASSERT_CONTAINS(ERR_MSG(), "refuser");
    ASSERT_NULL(mh_host_module(host, "refuser"));
    ASSERT_EQ_INT(mh_host_module_count(host), 1);
    mh_host_free(host);
    /* init ran, and a refused module's fini never runs */
    ASSERT_EQ_STR(file_read(tmp_path("marker")), "init refuser\n");
}

TEST(init_failure_is_retried)
{
    mh_host *host;
    mh_module *mod;

    fixture_copy("init_fails", "E/refuser.so");
    env_set("MH_FIXTURE_MARKER", tmp_path("marker"));
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_import(host, "refuser", &mod, ERR), MH_EINIT);
    ASSERT_STATUS(mh_import(host, "refuser", &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "deliberate init failure");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    ASSERT_EQ_STR(file_read(tmp_path("marker")), "init refuser\ninit refuser\n");
    mh_host_free(host);
    ASSERT_EQ_STR(file_read(tmp_path("marker")), "init refuser\ninit refuser\n");
}

TEST(failed_module_is_unloaded)
{
    /* After a refused init the object must be closed: a new file at the
     * same path is then loaded afresh, not the stale handle. */
    mh_host *host;
    mh_module *mod;
    const char *path;

    path = fixture_copy("init_fails", "E/flaky.so");
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_import(host, "flaky", &mod, ERR), MH_EINIT);
    fixture_copy("counter", "staging.so");
    ASSERT_EQ_INT(rename(tmp_path("staging.so"), path), 0);
    mh_invalidate_caches(host);
    mod = import_ok(host, "flaky");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    mh_host_free(host);
}

TEST(wrong_abi_refused_before_init)
{
    mh_host *host;
    mh_module *mod = (mh_module *)&mod;

    fixture_copy("wrong_abi", "E/future.so");
    env_set("MH_FIXTURE_MARKER", tmp_path("marker"));
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_import(host, "future", &mod, ERR), MH_EABI);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), "future");
    ASSERT_CONTAINS(ERR_MSG(), "9999");
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("%d", MH_PLUGIN_ABI_VERSION));
    ASSERT_NULL(mh_host_module(host, "future"));
    mh_host_free(host);
    ASSERT_FALSE(file_exists(tmp_path("marker")));
}

TEST(plain_library_needs_flag)
{
    mh_host *host;
    mh_module *mod = (mh_module *)&mod;

    fixture_copy("no_desc", "E/plain.so");
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_import(host, "plain", &mod, ERR), MH_ENODESC);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), "plain");
    ASSERT_CONTAINS(ERR_MSG(), "descriptor");
    ASSERT_CONTAINS(ERR_MSG(), "MH_IMPORT_PLAIN");
    ASSERT_NULL(mh_host_module(host, "plain"));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
}

/* A library with no descriptor of its own, linked against a plugin
 * (answer7): dlsym on its handle finds the plugin's descriptor through
 * the dependency.  It was taken for the library's own -- the library
 * loaded as answer7, with answer7's exports and init. */
TEST(dependencys_descriptor_is_not_the_librarys)
{
    mh_module *mod = (mh_module *)&mod;
    fixture_copy("links_plugin", "E/links.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_import(host, "links", &mod, ERR), MH_ENODESC);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), "it has no 'mh_plugin_descriptor' symbol of "
                               "its own (the one it sees is ");
    ASSERT_CONTAINS(ERR_MSG(), "answer7.so's)");
    ASSERT_STATUS(mh_import_ex(host, "links", MH_IMPORT_PLAIN, &mod, ERR),
                  MH_OK);
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_PLAIN);
    int (*answer)(void) = (int (*)(void))symbol_ok(mod, "links_answer");
    ASSERT_EQ_INT(answer(), 8);
    mh_host_free(host);
}

TEST(descriptor_symbol_that_is_no_descriptor_refused)
{
    /* A function, or a 4-byte object, named mh_plugin_descriptor was read
     * as a descriptor: the function's code, or bytes past the object. */
    static const struct {
        const char *fixture, *says;
    } cases[] = {
        {"desc_func", "its 'mh_plugin_descriptor' is not a descriptor but "
                      "a function; was it made with MH_PLUGIN()?"},
        {"desc_small", "its 'mh_plugin_descriptor' is 4 bytes, too small "
                       "for a descriptor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fixture_copy(cases[i].fixture, "E%zu/bad.so", i);
        mh_host *host = host_new_isolated(tmp_path("E%zu", i));
        mh_module *mod = (mh_module *)&mod;
        ASSERT_STATUS(mh_import(host, "bad", &mod, ERR), MH_EFORMAT);
        ASSERT_NULL(mod);
        ASSERT_CONTAINS(ERR_MSG(), str_fmt("module 'bad' (%s): %s",
                                           tmp_path("E%zu/bad.so", i),
                                           cases[i].says));
        ASSERT_EQ_INT(mh_host_module_count(host), 0);
        mh_host_free(host);
    }
}

TEST(descriptor_symbol_of_no_type_and_size_still_loads)
{
    /* A descriptor whose symbol has no type and no size (assembly
     * without .type and .size) says nothing either way: it loaded before
     * the symbol table was asked, and must still.  (Found by review.) */
    fixture_copy("desc_notype", "E/nt.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    ASSERT_EQ_INT(call_int(import_ok(host, "nt"), "value"), 5);
    mh_host_free(host);
}

TEST(plain_library_with_flag)
{
    mh_host *host;
    mh_module *mod = NULL;
    int (*answer)(void);

    fixture_copy("no_desc", "E/plain.so");
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_import_ex(host, "plain", MH_IMPORT_PLAIN, &mod, ERR), MH_OK);
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_PLAIN);
    ASSERT_EQ_STR(mh_module_kind_name(MH_KIND_PLAIN), "plain");
    answer = (int (*)(void))symbol_ok(mod, "plain_answer");
    ASSERT_EQ_INT(answer(), 42);
    ASSERT_EQ_INT(mh_module_export_count(mod), 0);
    ASSERT_NULL(mh_module_version(mod));
    /* Once loaded it is in the registry like any module. */
    ASSERT_EQ_PTR(import_ok(host, "plain"), mod);
    mh_host_free(host);
}

TEST(plain_flag_keeps_native_kind)
{
    mh_host *host;
    mh_module *mod = NULL;

    fixture_copy("counter", "E/counter.so");
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_import_ex(host, "counter", MH_IMPORT_PLAIN, &mod, ERR), MH_OK);
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_NATIVE);
    ASSERT_EQ_INT(call_int(mod, "init_count"), 1);
    mh_host_free(host);
}

TEST(modules_are_loaded_rtld_local)
{
    mh_host *host;
    const char *(*ident_a)(void);
    const char *(*ident_b)(void);

    fixture_copy("same_sym_a", "E/sa.so");
    fixture_copy("same_sym_b", "E/sb.so");
    host = host_new_isolated(tmp_path("E"));
    ident_a = (const char *(*)(void))symbol_ok(import_ok(host, "sa"), "ident");
    ident_b = (const char *(*)(void))symbol_ok(import_ok(host, "sb"), "ident");
    ASSERT_EQ_STR(ident_a(), "a");
    ASSERT_EQ_STR(ident_b(), "b");
    mh_host_free(host);
}

TEST(self_import_is_circular)
{
    mh_host *host;
    mh_module *mod = (mh_module *)&mod;
    mh_status st;

    fixture_copy("self_import", "E/selfie.so");
    host = host_new_isolated(tmp_path("E"));
    /* The init fails with its nested import's words, so with its status:
     * the application can tell a cycle from an init's refusal. */
    st = mh_import(host, "selfie", &mod, ERR);
    if (st != MH_ECYCLE)
        FAIL("self import: got %s: %s", mh_status_name(st), ERR_MSG());
    ASSERT_NULL(mod);
    ASSERT_CHAIN(ERR_MSG(), 2, "selfie", "selfie");
    ASSERT_NULL(mh_host_module(host, "selfie"));
    /* Nothing is left locked or half-registered: it fails again, alike. */
    st = mh_import(host, "selfie", &mod, ERR);
    ASSERT_STATUS(st, MH_ECYCLE);
    ASSERT_CHAIN(ERR_MSG(), 2, "selfie", "selfie");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
}

TEST(two_module_cycle_names_chain)
{
    mh_host *host;
    mh_module *mod;
    mh_status st;

    fixture_copy("importer", "E/ping.so");
    fixture_copy("importer", "E/pong.so");
    env_set("MH_FIXTURE_IMPORT_ping", "pong");
    env_set("MH_FIXTURE_IMPORT_pong", "ping");
    host = host_new_isolated(tmp_path("E"));
    st = mh_import(host, "ping", &mod, ERR);
    if (st != MH_ECYCLE)
        FAIL("cycle: got %s: %s", mh_status_name(st), ERR_MSG());
    ASSERT_CHAIN(ERR_MSG(), 3, "ping", "pong", "ping");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    /* An init that fails with words of its own is the init's failure. */
    env_set("MH_FIXTURE_IMPORT_ON_FAIL", "own-error");
    ASSERT_STATUS(mh_import(host, "ping", &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "importer: cannot work without pong");
    mh_host_free(host);
}

TEST(fini_runs_in_reverse_init_order)
{
    const char *log = tmp_path("order.log");
    mh_host *host;

    fixture_copy("fini_order", "E/a.so");
    fixture_copy("fini_order", "E/b.so");
    fixture_copy("fini_order", "E/c.so");
    env_set("MH_FIXTURE_LOG", log);
    host = host_new_isolated(tmp_path("E"));
    import_ok(host, "a");
    import_ok(host, "c");
    import_ok(host, "b");
    ASSERT_EQ_STR(file_read(log), "init a\ninit c\ninit b\n");
    mh_host_free(host);
    ASSERT_EQ_STR(file_read(log),
                  "init a\ninit c\ninit b\nfini b\nfini c\nfini a\n");
}

TEST(nested_import_loads_dependency)
{
    mh_host *host;
    mh_module *top, *dep;

    fixture_copy("importer", "E/top.so");
    fixture_copy("counter", "E/dep.so");
    env_set("MH_FIXTURE_IMPORT", "dep");
    host = host_new_isolated(tmp_path("E"));
    top = import_ok(host, "top");
    dep = mh_host_module(host, "dep");
    ASSERT_NOT_NULL(dep);
    ASSERT_EQ_INT(mh_host_module_count(host), 2);
    ASSERT_EQ_INT(call_int(top, "dep_value"), 42);
    ASSERT_EQ_INT(call_int(dep, "init_count"), 1);
    ASSERT_EQ_PTR(import_ok(host, "dep"), dep);
    ASSERT_EQ_INT(call_int(dep, "init_count"), 1);
    mh_host_free(host);
}

TEST(nested_import_fini_order)
{
    const char *log = tmp_path("order.log");
    mh_host *host;

    fixture_copy("importer", "E/top.so");
    fixture_copy("fini_order", "E/dep.so");
    env_set("MH_FIXTURE_IMPORT", "dep");
    env_set("MH_FIXTURE_LOG", log);
    host = host_new_isolated(tmp_path("E"));
    import_ok(host, "top");
    /* dep finished its init first, so it is finalised last */
    ASSERT_EQ_STR(file_read(log), "init dep\ninit top\n");
    mh_host_free(host);
    ASSERT_EQ_STR(file_read(log), "init dep\ninit top\nfini top\nfini dep\n");
}

TEST(nested_import_failure_names_dependency)
{
    mh_host *host;
    mh_module *mod;

    fixture_copy("importer", "E/top.so");
    env_set("MH_FIXTURE_IMPORT", "absent.dependency");
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_import(host, "top", &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "top");
    ASSERT_CONTAINS(ERR_MSG(), "absent.dependency");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
}

TEST(nested_import_failure_message_is_text_not_a_format)
{
    /* The failed import's message becomes the init's: it names every
     * search path entry, and one here is a directory called E%s%n%s.
     * That text is kept as it is, never read as a format. */
    mh_module *mod;
    const char *odd = tmp_mkdir("E%%s%%n%%s");

    fixture_copy("importer", "E/top.so");
    env_set("MH_FIXTURE_IMPORT", "absent.dependency");
    host_opts o = {0};
    mh_host *host = host_new_opts(&o, tmp_path("E"), odd);
    ASSERT_STATUS(mh_import(host, "top", &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "absent.dependency");
    ASSERT_CONTAINS(ERR_MSG(), odd);
    mh_host_free(host);
}

TEST(unknown_symbol)
{
    mh_host *host;
    mh_module *mod;
    void *p = &p;

    fixture_copy("counter", "E/counter.so");
    host = host_new_isolated(tmp_path("E"));
    mod = import_ok(host, "counter");
    ASSERT_NULL(mh_module_symbol(mod, "no_such_symbol"));
    ASSERT_STATUS(mh_module_symbol_ex(mod, "no_such_symbol", &p, ERR), MH_ENOSYM);
    ASSERT_NULL(p);
    ASSERT_CONTAINS(ERR_MSG(), "counter");
    ASSERT_CONTAINS(ERR_MSG(), "no_such_symbol");
    ASSERT_STATUS(mh_module_symbol_ex(mod, "value", &p, ERR), MH_OK);
    ASSERT_EQ_PTR(p, mh_module_symbol(mod, "value"));
    mh_host_free(host);
}

TEST(export_listed_with_a_null_address_is_named_so)
{
    /* A weak function not linked in leaves its export listed with a NULL
     * address: "has no export 'optional'" contradicted the export list. */
    void *p = &p;

    fixture_copy("weak_export", "E/we.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = import_ok(host, "we");
    ASSERT_EQ_INT(mh_module_export_count(mod), 2);
    ASSERT_EQ_STR(mh_module_export_name(mod, 1), "optional");
    ASSERT_STATUS(mh_module_symbol_ex(mod, "optional", &p, ERR), MH_ENOSYM);
    ASSERT_NULL(p);
    ASSERT_CONTAINS(ERR_MSG(), "lists export 'optional' with a NULL "
                               "address");
    ASSERT_STATUS(mh_module_symbol_ex(mod, "value", &p, ERR), MH_OK);
    mh_host_free(host);
}

TEST(descriptor_exports_only)
{
    /* A native module exports what its descriptor lists, not every
     * dynamic symbol of the object. */
    mh_host *host;
    mh_module *mod;

    fixture_copy("same_sym_a", "E/sa.so");
    host = host_new_isolated(tmp_path("E"));
    mod = import_ok(host, "sa");
    ASSERT_NOT_NULL(mh_module_symbol(mod, "ident"));
    ASSERT_NULL(mh_module_symbol(mod, "mh_fixture_ident"));
    mh_host_free(host);
}

TEST(exports_listing)
{
    mh_host *host;
    mh_module *mod;
    const char *n0, *n1;

    fixture_copy("counter", "E/counter.so");
    host = host_new_isolated(tmp_path("E"));
    mod = import_ok(host, "counter");
    ASSERT_EQ_INT(mh_module_export_count(mod), 2);
    n0 = mh_module_export_name(mod, 0);
    n1 = mh_module_export_name(mod, 1);
    ASSERT_NOT_NULL(n0);
    ASSERT_NOT_NULL(n1);
    ASSERT_TRUE((strcmp(n0, "init_count") == 0 && strcmp(n1, "value") == 0) ||
                (strcmp(n0, "value") == 0 && strcmp(n1, "init_count") == 0));
    ASSERT_NULL(mh_module_export_name(mod, 2));
    mh_host_free(host);
}

TEST(host_module_never_loads)
{
    mh_host *host;

    fixture_copy("init_fails", "E/refuser.so");
    fixture_copy("counter", "E/counter.so");
    env_set("MH_FIXTURE_MARKER", tmp_path("marker"));
    host = host_new_isolated(tmp_path("E"));
    ASSERT_NULL(mh_host_module(host, "refuser"));
    ASSERT_NULL(mh_host_module(host, "counter"));
    ASSERT_NULL(mh_host_module(host, "bad-name"));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    ASSERT_FALSE(file_exists(tmp_path("marker")));
    ASSERT_EQ_PTR(import_ok(host, "counter"), mh_host_module(host, "counter"));
    mh_host_free(host);
}

TEST(null_handles_are_einval)
{
    mh_module *mod = (mh_module *)&mod;

    ASSERT_STATUS(mh_import(NULL, "x", &mod, ERR), MH_EINVAL);
    ASSERT_NULL(mod);
    ASSERT_STATUS(mh_import_ex(NULL, "x", 0, &mod, ERR), MH_EINVAL);
}

TEST(fini_may_call_a_module_finalised_before_it)
{
    const char *dir = tmp_mkdir("E");
    const char *log = tmp_path("log");
    mh_host *host;
    mh_module *user;

    fixture_copy("fini_import", "E/user.so");
    fixture_copy("counter", "E/dep.so");
    env_set("MH_FIXTURE_LOG", log);
    env_set("MH_FIXTURE_GRAB", "dep");
    host = host_new_isolated(dir);
    user = import_ok(host, "user");
    /* dep is imported after user's init: it is newer, so its fini runs
     * first, yet user's fini still calls into it. */
    ASSERT_EQ_INT(call_int(user, "grab"), 0);
    ASSERT_EQ_INT(mh_host_module_count(host), 2);
    mh_host_free(host);
    ASSERT_EQ_STR(file_read(log),
                  "fini called grabbed value: 42\n"
                  "fini import returned 0\n");
}

TEST(log_hook_gets_one_line_per_message)
{
    const char *e1 = tmp_mkdir("E1"), *e2 = tmp_mkdir("E2");
    log_capture lc;
    mh_config cfg;
    mh_host *host;
    mh_module *mod;

    fixture_copy("importer", "E1/imp.so");
    env_set("MH_FIXTURE_IMPORT", "absent.dep");
    log_capture_init(&lc);
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = str_fmt("%s;%s", e1, e2);
    cfg.log = log_capture_fn;
    cfg.log_ud = &lc;
    host = host_new_cfg(&cfg);
    /* The nested not-found error lists both entries on several lines; the
     * log hook must get it folded into one.  The init goes on without
     * the module, so the log is the only place the reason can go. */
    env_set("MH_FIXTURE_IMPORT_ON_FAIL", "go-on");
    ASSERT_STATUS(mh_import(host, "imp", &mod, ERR), MH_OK);
    if (log_capture_count(&lc, MH_LOG_WARN, "absent.dep") != 1)
        FAIL("the failed nested import was not logged once; log:%s",
             log_capture_dump(&lc));
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "imp: module "), 1);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "\n"), 0);
    ASSERT_TRUE(log_capture_count(&lc, MH_LOG_WARN, e2) > 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A failed nested import is shown once: in the init's error when the init
 * fails with it, else (the init went on, or failed with words of its own)
 * in the log. */
static void nested_failure_shown_once(const char *on_fail, mh_status want,
                                      size_t warnings, const char *in_error)
{
    log_capture lc;
    host_opts o = {.log = &lc};
    mh_module *mod;

    fixture_copy("importer", "E/imp.so");
    env_set("MH_FIXTURE_IMPORT", "absent.dep");
    if (on_fail)
        env_set("MH_FIXTURE_IMPORT_ON_FAIL", on_fail);
    log_capture_init(&lc);
    mh_host *host = host_new_opts(&o, tmp_path("E"));
    ASSERT_STATUS(mh_import(host, "imp", &mod, ERR), want);
    if (want != MH_OK) {
        ASSERT_CONTAINS(ERR_MSG(), in_error);
        ASSERT_CONTAINS(ERR_MSG(), "init of module 'imp'");
    }
    if (log_capture_count(&lc, MH_LOG_WARN, "module 'absent.dep' not found")
        != warnings)
        FAIL("want %zu warning(s) of the failed nested import; log:%s",
             warnings, log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(a_failed_nested_import_in_the_init_error_is_not_logged_too)
{
    nested_failure_shown_once(NULL, MH_EINIT, 0,
                              "module 'absent.dep' not found");
}

TEST(a_failed_nested_import_the_init_goes_on_from_is_logged)
{
    nested_failure_shown_once("go-on", MH_OK, 1, NULL);
}

TEST(a_failed_nested_import_the_init_replaces_is_logged)
{
    nested_failure_shown_once("own-error", MH_EINIT, 1,
                              "importer: cannot work without absent.dep");
}

TEST(native_json_call_through_mh_call)
{
    mh_host *host = host_new_isolated(MH_TEST_PLUGIN_DIR);
    mh_module *mod = import_ok(host, "codecs.rot13");
    cJSON *args = cJSON_Parse("[\"Hello\"]"), *res = NULL;

    ASSERT_STATUS(mh_module_call(mod, "encode", args, &res, ERR), MH_OK);
    ASSERT_TRUE(cJSON_IsString(res));
    ASSERT_EQ_STR(res->valuestring, "Uryyb");
    cJSON_Delete(res);
    res = NULL;
    /* A refusal is MH_ECALL with the plugin's words; nothing is returned. */
    cJSON_Delete(args);
    args = cJSON_Parse("[1]");
    ASSERT_STATUS(mh_module_call(mod, "encode", args, &res, ERR), MH_ECALL);
    ASSERT_CONTAINS(ERR_MSG(), "encode takes one string");
    ASSERT_NULL(res);
    /* Not declared with MH_CALL (main is a plain export). */
    ASSERT_STATUS(mh_module_call(mod, "main", args, &res, ERR), MH_ENOSYM);
    ASSERT_CONTAINS(ERR_MSG(), "MH_CALL");
    cJSON_Delete(args);
    mh_host_free(host);
}

TEST(a_descriptor_naming_another_module_is_said_in_the_trace)
{
    /* The descriptor's name is informative: a plugin copied under
     * another file name loads under that name, silently before. */
    fixture_copy("counter", "E/renamed.so");
    fixture_copy("counter", "E/counter.so");
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.flags = MH_CONFIG_VERBOSE, .log = &lc};
    mh_host *host = host_new_opts(&o, tmp_path("E"));
    import_ok(host, "renamed");
    import_ok(host, "counter");
    ASSERT_LOG(&lc, MH_LOG_TRACE, "renamed: loaded ");
    ASSERT_LOG(&lc, MH_LOG_TRACE, "; its descriptor names it 'counter')");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_TRACE, "its descriptor names"),
                  1); /* not counter itself */
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A native call's answer the host cannot parse is MH_EFORMAT, and says
 * which: nesting past cJSON's limit is not "not JSON". */
TEST(a_call_answering_unparsable_json_says_why)
{
    fixture_copy("raw_result", "E/raw_result.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = import_ok(host, "raw_result");
    char deep[2001];
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    deep[2000] = '\0';
    ASSERT_EQ_STR(call_ok(mod, "nested", "[1000]"), deep);
    ASSERT_STATUS(call_fails(mod, "nested", "[1001]"), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "raw_result.nested returned JSON nested "
                               "deeper than 1000");
    /* Not for what fails before it is deep, nor for brackets in a
     * string. */
    ASSERT_STATUS(call_fails(mod, "nested", "[1001, \"junk\"]"),
                  MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "raw_result.nested returned text that is "
                               "not JSON");
    const char *s = call_ok(mod, "nested", "[1001, \"string\"]");
    ASSERT_EQ_INT(strlen(s), 2 + 2 * 1001);
    ASSERT_STATUS(call_fails(mod, "garbage", NULL), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "raw_result.garbage returned text that is "
                               "not JSON");
    /* -1e400 parses to an infinity, which cJSON would print as null. */
    ASSERT_STATUS(call_fails(mod, "huge", NULL), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "raw_result.huge returned a number past the "
                               "range of a double");
    mh_host_free(host);
}

/* Arguments holding a number JSON has not (an infinity, NaN), as an
 * application's cJSON tree may: refused before any call, for native and
 * Lua functions alike (a native one got null for it, a Lua one inf). */
TEST(a_call_with_a_number_that_is_not_finite_is_refused)
{
    fixture_copy("raw_result", "E/raw_result.so");
    lua_write("E/idl.lua", "return {id = function(x) return x end}\n");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mods[2] = {import_ok(host, "raw_result"),
                          import_ok(host, "idl")};
    const char *fns[2] = {"garbage", "id"};
    double bad[3] = {INFINITY, -INFINITY, NAN};
    for (int m = 0; m < 2; m++)
        for (int b = 0; b < 3; b++) {
            cJSON *args = cJSON_CreateArray(), *inner = cJSON_CreateObject();
            cJSON_AddItemToArray(args, cJSON_CreateNumber(1));
            cJSON_AddItemToArray(args, inner);
            cJSON_AddItemToObject(inner, "x", cJSON_CreateNumber(bad[b]));
            cJSON *res = (cJSON *)&res;
            ASSERT_STATUS(mh_module_call(mods[m], fns[m], args, &res, ERR),
                          MH_EINVAL);
            ASSERT_NULL(res);
            ASSERT_CONTAINS(ERR_MSG(), str_fmt("call of %s.%s: an argument "
                                               "holds a number that is not "
                                               "finite",
                                               mh_module_name(mods[m]),
                                               fns[m]));
            cJSON_Delete(args);
        }
    /* A finite one still goes through. */
    ASSERT_EQ_STR(call_ok(mods[1], "id", "[1.5e300]"), "1.5e+300");
    mh_host_free(host);
}

TEST(a_call_name_too_long_calls_nothing)
{
    /* "call:" + the name went into 300 bytes: a name longer than the
     * plugin's 294-character one was cut to it, and called it. */
    fixture_copy("long_call", "E/long_call.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = import_ok(host, "long_call");
    char name[400];
    memset(name, 'a', 294);
    name[294] = '\0';
    cJSON *res = NULL;
    ASSERT_STATUS(mh_module_call(mod, name, NULL, &res, ERR), MH_OK);
    ASSERT_EQ_STR(res->valuestring, "the long one");
    cJSON_Delete(res);
    res = NULL;
    snprintf(name + 294, sizeof name - 294, "_something_else");
    ASSERT_STATUS(mh_module_call(mod, name, NULL, &res, ERR), MH_ENOSYM);
    ASSERT_NULL(res);
    mh_host_free(host);
}

TEST(a_truncated_plugin_file_is_damaged_not_a_crash)
{
    /* Its ELF and program headers intact, its segments past the end of
     * the file: dlopen mapped them and died of SIGBUS touching them.  An
     * image in memory was checked already; a file now is too, when its
     * note is read (no system call more).  Cut at 60% and at 3,000
     * bytes. */
    const char *dir = tmp_mkdir("E");
    for (int k = 0; k < 2; k++) {
        const char *so = fixture_copy("counter", "E/cut%d.so", k);
        file_truncate_to(so, k ? 3000 : (size_t)(file_size(so) * 6 / 10));
    }
    mh_host *host = host_new_isolated(dir);
    for (int k = 0; k < 2; k++) {
        const char *name = str_fmt("cut%d", k);
        mh_module *mod = (mh_module *)1;
        ASSERT_STATUS(mh_import(host, name, &mod, ERR), MH_EFORMAT);
        ASSERT_CONTAINS(ERR_MSG(), tmp_path("E/cut%d.so", k));
        ASSERT_CONTAINS(ERR_MSG(), "a loadable segment lies outside the "
                                   "file");
        ASSERT_NULL(mod);
    }
    mh_host_free(host);
}

TEST(an_empty_init_message_counts_as_none)
{
    /* set_error(self, "%s", "") gave "init ... failed: " and nothing. */
    fixture_copy("init_fails", "E/refuser.so");
    env_set("MH_FIXTURE_EMPTY_ERROR", "1");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = (mh_module *)1;
    ASSERT_STATUS(mh_import(host, "refuser", &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "it returned 1 without a message (an empty "
                               "one)");
    mh_host_free(host);
}

TEST(a_long_init_message_is_cut_not_lost)
{
    /* Over 4 KiB (a not-found list of a long search path, passed on), the
     * message was refused whole, and the failure reported as out of
     * memory, with no text. */
    fixture_copy("init_fails", "E/refuser.so");
    char *longer = malloc(6001);
    memset(longer, 'x', 6000);
    longer[6000] = '\0';
    env_set("MH_FIXTURE_LONG_ERROR", longer);
    free(longer);
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = (mh_module *)1;
    ASSERT_STATUS(mh_import(host, "refuser", &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "long message: xxxxxxxxxxxxxxxx");
    ASSERT_CONTAINS(ERR_MSG(), "xxx...");
    ASSERT_TRUE(strstr(ERR_MSG(), "<end>") == NULL);
    ASSERT_TRUE(strlen(ERR_MSG()) > 4000);
    mh_host_free(host);
}

/* A plugin the dynamic loader refuses is named as the file users know in
 * the loader's own words, not as the /proc/self/fd/N it was given. */
TEST(dynamic_loader_error_names_the_file)
{
    const char *so = fixture_copy("undef_sym", "E/undef_sym.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = (mh_module *)1;
    ASSERT_STATUS(mh_import(host, "undef_sym", &mod, ERR), MH_ELOAD);
    ASSERT_NULL(mod);
    /* The file named once: the loader's own naming of it goes. */
    ASSERT_EQ_STR(ERR_MSG(), str_fmt("cannot load module 'undef_sym' from "
                                     "%s: undefined symbol: "
                                     "mh_fixture_defined_nowhere", so));
    ASSERT_NOT_CONTAINS(ERR_MSG(), "/proc/self/fd");
    mh_host_free(host);
}

TEST(a_plugin_for_another_machine_says_so)
{
    /* dlopen of /proc/self/fd/N said "cannot open shared object file: No
     * such file or directory" of a file that is there. */
    const char *so = fixture_copy("counter", "E/other.so");
    size_t len;
    unsigned char *b = file_bytes(so, &len);
    uint16_t machine;
    memcpy(&machine, b + 18, 2); /* e_machine, in both word sizes */
    machine = machine == 62 ? 183 : 62; /* x86-64 <-> AArch64 */
    memcpy(b + 18, &machine, 2);
    file_write_bytes(so, b, len);
    free(b);
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = (mh_module *)1;
    ASSERT_STATUS(mh_import(host, "other", &mod, ERR), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), so);
    ASSERT_CONTAINS(ERR_MSG(), "cannot be loaded here: it is an ELF shared "
                               "object for another machine");
    ASSERT_NULL(mod);
    mh_host_free(host);
    /* `modhost index` still lists it: an index serves other machines */
    size_t count = 0;
    ASSERT_STATUS(mh_index_dir(tmp_path("E"), NULL, &count, ERR), MH_OK);
    ASSERT_EQ_INT(count, 1);
}
