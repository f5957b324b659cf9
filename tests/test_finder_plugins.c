/*
 * test_finder_plugins.c -- finder plugins loaded by scheme, and what the
 * host must not trust them with: a plugin that claims nothing, exports no
 * finder or declares another scheme; finder plugins served by other
 * finder plugins, in either path order; a read() that lies about its
 * length or returns more than max_module_size; errors recorded and then
 * contradicted by MH_OK.  Beside them, contracts the same review found
 * wanting: discovery strings that outlive their callback, a note reader
 * whose work is bounded, and a re-packed database whose rows kept their
 * sizes and mtimes.
 *
 * The finders are tests/fixtures/fplug_*.c, each fplug.h's directory
 * finder with one behaviour switched on.  A case installs the one it
 * needs as tmp/plugins/finders/SCHEME.so and puts tmp/plugins on the
 * search path after the scheme's entries.  Every case checks which
 * finder a module came from, so a module found by another entry cannot
 * pass for one the plugin served.
 */
#include <elf.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <modhost/finder.h>

#include "support/support.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */

/* A host on exactly these entries, its cache in tmp/cache (never the
 * user's: discovery writes its index there). */
#define fhost(...) \
    host_new_opts_(&(host_opts){0}, (const char *const[]){__VA_ARGS__, NULL})
/* The same, verbose, its log (traces too) captured by lc. */
#define vhost(lc, ...)                                                    \
    host_new_opts_(&(host_opts){.flags = MH_CONFIG_VERBOSE, .log = (lc)}, \
                   (const char *const[]){__VA_ARGS__, NULL})

/* Lua source of a module whose who() returns word. */
static const char *who_source(const char *word)
{
    return str_fmt("return {who = function() return '%s' end}", word);
}

/* Install fixture fplug_FIXTURE as tmp/plugins/finders/SCHEME.so; returns
 * tmp/plugins, the directory to put on the path. */
static const char *install(const char *fixture, const char *scheme)
{
    fixture_copy(str_fmt("fplug_%s", fixture), "plugins/finders/%s.so",
                 scheme);
    return tmp_path("plugins");
}

/* tmp/REL holding the Lua module NAME.lua whose who() returns NAME. */
static const char *lua_dir(const char *rel, const char *name)
{
    const char *dir = tmp_mkdir("%s", rel);
    lua_write(str_fmt("%s/%s.lua", rel, name), who_source(name));
    return dir;
}

static mh_path_entry_info entry_info(mh_host *host, size_t i)
{
    mh_path_entry_info ei = {.size = sizeof ei};
    ASSERT_STATUS(mh_host_path_entry_info(host, i, &ei), MH_OK);
    return ei;
}

typedef struct listed {
    const char *text;           /* "name finder origin" a line */
} listed;

static int collect_list(void *ud, const mh_spec_info *info)
{
    listed *l = ud;
    l->text = str_fmt("%s%s %s %s\n", l->text, info->name, info->finder,
                      info->origin);
    return 0;
}

/* Import name, check it came from finder at origin, and call who(). */
static mh_module *import_from(mh_host *host, const char *name,
                              const char *finder, const char *origin)
{
    mh_module *mod = import_ok(host, name);
    ASSERT_EQ_STR(mh_module_finder(mod), finder);
    ASSERT_EQ_STR(mh_module_origin(mod), origin);
    ASSERT_EQ_STR(call_ok(mod, "who", NULL), str_fmt("\"%s\"", name));
    return mod;
}

/* The entry is unusable: nobody opened it, and error says why. */
static const char *assert_unusable(mh_host *host, size_t i)
{
    mh_path_entry_info ei = entry_info(host, i);
    if (ei.error == NULL)
        FAIL("entry %zu (%s) has no error; finder %s", i, ei.entry,
             ei.finder ? ei.finder : "(none)");
    return ei.error;
}

/* --------------------------------------------- plugins that are not right */

TEST(grab_plugin_that_claims_nothing)
{
    log_capture lc;
    const char *plugins = install("grab", "grab");
    const char *dir = lua_dir("mods", "lm");
    host_opts o = {.log = &lc};
    mh_spec_info info = {.size = sizeof info};
    listed l = {""};

    log_capture_init(&lc);
    mh_host *host = host_new_opts(&o, "grab:/x", plugins, dir);
    /* Asked more than once: the answer must not change, nor the plugin
     * be imported again and again. */
    for (int i = 0; i < 3; i++) {
        ASSERT_STATUS(mh_find(host, "lm", &info, ERR), MH_OK);
        ASSERT_EQ_STR(info.finder, "fs");
        ASSERT_EQ_STR(info.origin, str_fmt("%s/lm.lua", dir));
        ASSERT_EQ_INT(info.entry_index, 2);
    }
    ASSERT_STATUS(mh_list(host, collect_list, &l, ERR), MH_OK);
    ASSERT_CONTAINS(l.text, str_fmt("lm fs %s/lm.lua\n", dir));
    import_from(host, "lm", "fs", str_fmt("%s/lm.lua", dir));

    const char *why = assert_unusable(host, 0);
    ASSERT_CONTAINS(why, "'finders.grab'");
    ASSERT_CONTAINS(why, "was loaded");
    if (!strstr(why, "does not claim") && !strstr(why, "does not take"))
        FAIL("the reason does not say the plugin refused the entry: %s",
             why);
    ASSERT_NULL(entry_info(host, 0).finder);
    /* A module nobody has: the grab entry is listed with its reason. */
    ASSERT_STATUS(mh_import(host, "nosuch", &(mh_module *){0}, ERR),
                  MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "grab:/x");
    ASSERT_CONTAINS(ERR_MSG(), "finders.grab");
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(missing_finder_plugin_lists_its_own_search_one_step_in)
{
    /* The plugin's own "not found" list was written at the outer list's
     * indentation: "searched 2 path entries" followed by five entry
     * lines, and the entry waiting for its plugin said "no finder yet (a
     * finder plugin is being loaded)".  The host has no default entries,
     * where bundled finder plugins are installed: it says so. */
    const char *d = tmp_mkdir("D");
    const char *entry = str_fmt("nosuch:%s/x", tmp_dir());
    mh_host *host = host_new_isolated(entry, d);
    mh_module *m = NULL;
    ASSERT_STATUS(mh_import(host, "m", &m, ERR), MH_ENOTFOUND);
    const char *want = str_fmt(
        "module 'm' not found; searched 2 path entries:\n"
        "  %s: no path hook claims the scheme 'nosuch:', and its finder "
        "plugin 'finders.nosuch' could not be imported: module "
        "'finders.nosuch' not found; searched 2 path entries:\n"
        "    %s: passed over: its own finder plugin is what is being "
        "looked for\n"
        "    %s: no directory finders/\n"
        "    (the default entries, where modhost's own finder plugins are "
        "installed, are not on the search path: the host was made with "
        "MH_CONFIG_NO_DEFAULT_PATH)\n"
        "  %s: no m.so, m.lua or m.luac", entry, entry, d, d);
    ASSERT_EQ_STR(ERR_MSG(), want);
    mh_host_free(host);
}

/* An entry whose finder plugin could not be imported is not tried again
 * a second later, as an entry whose open failed is: that import walks the
 * whole path (and would run a failing plugin's init, or its probe, each
 * time).  It waits for mh_invalidate_caches. */
TEST(missing_finder_plugin_is_not_looked_for_each_second)
{
    const char *d = tmp_mkdir("D");
    const char *entry = str_fmt("nosuch:%s/x", tmp_dir());
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.flags = MH_CONFIG_VERBOSE, .log = &lc};
    mh_host *host = host_new_opts(&o, entry, d);
    const char *looked = "import 'finders.nosuch': not loaded";
    ASSERT_STATUS(mh_import(host, "m", &(mh_module *){0}, ERR),
                  MH_ENOTFOUND);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_TRACE, looked), 1);
    usleep(1100 * 1000);
    ASSERT_STATUS(mh_import(host, "m", &(mh_module *){0}, ERR),
                  MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "'finders.nosuch' could not be imported");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_TRACE, looked), 1);
    mh_invalidate_caches(host);
    ASSERT_STATUS(mh_import(host, "m", &(mh_module *){0}, ERR),
                  MH_ENOTFOUND);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_TRACE, looked), 2);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A host whose entry SCHEME:/x needs finder plugin FIXTURE, which has no
 * usable class export: the entry is unusable, and the other entries
 * still work, listing too.  The entry's reason, for the caller's checks;
 * *host_out to free. */
static const char *no_class_export(const char *fixture, const char *scheme,
                                   mh_host **host_out)
{
    const char *plugins = install(fixture, scheme);
    const char *dir = lua_dir("mods", "lm");
    const char *entry = str_fmt("%s:/x", scheme);
    mh_host *host = fhost(entry, plugins, dir);

    import_from(host, "lm", "fs", str_fmt("%s/lm.lua", dir));
    const char *why = assert_unusable(host, 0);
    ASSERT_CONTAINS(why, str_fmt("'finders.%s'", scheme));
    ASSERT_CONTAINS(why, "'" MH_FINDER_EXPORT "'");
    ASSERT_NULL(entry_info(host, 0).finder);
    ASSERT_STATUS(mh_import(host, "nosuch", &(mh_module *){0}, ERR),
                  MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), entry);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("finders.%s", scheme));
    listed l = {""};
    ASSERT_STATUS(mh_list(host, collect_list, &l, ERR), MH_OK);
    ASSERT_CONTAINS(l.text, str_fmt("lm fs %s/lm.lua\n", dir));
    *host_out = host;
    return why;
}

TEST(plugin_without_finder_export)
{
    mh_host *host;
    const char *why = no_class_export("noexp", "nox", &host);
    ASSERT_CONTAINS(why, "has no export '" MH_FINDER_EXPORT "'");
    mh_host_free(host);
}

TEST(plugin_with_a_null_finder_export)
{
    /* Said as what it is, not as a missing export. */
    mh_host *host;
    const char *why = no_class_export("nullexp", "nulx", &host);
    ASSERT_CONTAINS(why, "finder plugin 'finders.nulx': module "
                         "'finders.nulx' (");
    ASSERT_CONTAINS(why, "lists export '" MH_FINDER_EXPORT "' with a NULL "
                         "address; a finder plugin exports its class with "
                         "MH_EXPORT(MH_FINDER_EXPORT, &class)");
    mh_host_free(host);
}

TEST(plugin_with_wrong_scheme)
{
    const char *plugins = install("wrong", "wrong");
    const char *dir = lua_dir("mods", "lm");
    mh_host *host = fhost("wrong:/x", plugins, dir);

    import_from(host, "lm", "fs", str_fmt("%s/lm.lua", dir));
    const char *why = assert_unusable(host, 0);
    ASSERT_CONTAINS(why, "'finders.wrong'");
    ASSERT_CONTAINS(why, "'other', not 'wrong'");
    ASSERT_NULL(entry_info(host, 0).finder);
    /* its class never joined the chain under either name */
    for (size_t i = 0; i < mh_host_finder_count(host); i++) {
        mh_finder_info fi = {.size = sizeof fi};
        ASSERT_STATUS(mh_host_finder_info(host, i, &fi), MH_OK);
        ASSERT_NOT_CONTAINS(fi.name, "wrong");
        if (fi.scheme)
            ASSERT_NOT_CONTAINS(fi.scheme, "other");
    }
    mh_host_free(host);
}

/* ------------------------------------------------------ nested plugins */

/* D1 has m1.lua, served by "aa:D1"; finders/aa.so exists only in D2,
 * served by "bb:D2"; finders/bb.so is in the plugin directory.  So
 * importing m1 imports finders.aa through finders.bb. */
static void nested(int aa_first)
{
    const char *d1 = lua_dir("D1", "m1");
    const char *d2 = tmp_mkdir("D2");
    const char *aa_so = fixture_copy("fplug_aa", "D2/finders/aa.so");
    const char *plugins = install("bb", "bb");
    const char *ea = str_fmt("aa:%s", d1), *eb = str_fmt("bb:%s", d2);
    mh_host *host = aa_first ? fhost(ea, eb, plugins)
                             : fhost(eb, ea, plugins);
    size_t ia = aa_first ? 0 : 1, ib = aa_first ? 1 : 0;

    import_from(host, "m1", "aa", str_fmt("%s/m1.lua", d1));
    mh_module *aa = mh_host_module(host, "finders.aa");
    mh_module *bb = mh_host_module(host, "finders.bb");
    ASSERT_NOT_NULL(aa);
    ASSERT_NOT_NULL(bb);
    ASSERT_EQ_STR(mh_module_finder(aa), "bb");
    ASSERT_EQ_STR(mh_module_origin(aa), aa_so);
    ASSERT_EQ_STR(mh_module_finder(bb), "fs");
    ASSERT_EQ_STR(mh_module_origin(bb),
                  str_fmt("%s/finders/bb.so", plugins));
    mh_path_entry_info ei = entry_info(host, ia);
    ASSERT_EQ_STR(ei.finder, "aa");
    ASSERT_NULL(ei.error);
    ei = entry_info(host, ib);
    ASSERT_EQ_STR(ei.finder, "bb");
    ASSERT_NULL(ei.error);
    /* the plugins list their trees: list() of both, in path order */
    listed l = {""};
    ASSERT_STATUS(mh_list(host, collect_list, &l, ERR), MH_OK);
    ASSERT_CONTAINS(l.text, str_fmt("m1 aa %s/m1.lua\n", d1));
    ASSERT_CONTAINS(l.text, str_fmt("finders.aa bb %s\n", aa_so));
    ASSERT_CONTAINS(l.text, str_fmt("finders.bb fs %s/finders/bb.so\n",
                                    plugins));
    /* mh_find agrees, naming the entry */
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, "m1", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.finder, "aa");
    ASSERT_EQ_INT(info.entry_index, ia);
    mh_host_free(host);
}

/* A log hook that, on the first "searching the path" trace, reads entry
 * 0 of its host's path (which the header says it may). */
typedef struct entry_peek {
    mh_host *host;
    int fired;
    mh_status rc;
} entry_peek;

static void peek_hook(void *ud, mh_log_level level, const char *msg)
{
    entry_peek *p = ud;
    (void)level;
    if (!p->host || p->fired || !strstr(msg, "searching the path"))
        return;
    p->fired = 1;
    const char *text = NULL;
    p->rc = mh_host_path_entry(p->host, 0, &text, NULL, NULL);
}

TEST(log_hook_reading_an_entry_leaves_its_finder_plugin_to_load)
{
    /* Reading entry 0 from the hook opened it: its finder plugin's
     * import was refused there (no import from the hook), and that was
     * kept as the entry's failure until mh_invalidate_caches, so every
     * later import from it said "not found". */
    const char *d1 = lua_dir("D1", "m1");
    const char *plugins = install("aa", "aa");
    entry_peek p = {0};
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH |
                MH_CONFIG_VERBOSE;
    cfg.path = str_fmt("aa:%s;%s", d1, plugins);
    cfg.log = peek_hook;
    cfg.log_ud = &p;
    cfg.cache_dir = tmp_path("cache");
    p.host = host_new_cfg(&cfg);
    import_from(p.host, "m1", "aa", str_fmt("%s/m1.lua", d1));
    ASSERT_EQ_INT(p.fired, 1);
    ASSERT_STATUS(p.rc, MH_OK);
    ASSERT_EQ_STR(entry_info(p.host, 0).finder, "aa");
    mh_host_free(p.host);
}

/* [oimp:X (m1.lua), H (helper.so), plugins]: oimp's open() imports
 * helper.  X, H and the plugins' directory in *x, *h, *plugins. */
static mh_host *oimp_host(const char **x, const char **h,
                          const char **plugins)
{
    *x = lua_dir("X", "m1");
    *plugins = install("oimp", "oimp");
    *h = tmp_mkdir("H");
    fixture_copy("counter", "H/helper.so");
    return fhost(str_fmt("oimp:%s", *x), *h, *plugins);
}

TEST(finder_whose_open_imports_a_module_does_not_hang)
{
    /* open() of "oimp:X" imports "helper", which lies in a later entry:
     * that import walks the path back to the entry being opened, whose
     * lock this very thread holds.  It waited on it for ever; it passes
     * over it now, finds helper further on, and the open goes on. */
    const char *x, *h, *plugins;
    mh_host *host = oimp_host(&x, &h, &plugins);
    import_from(host, "m1", "oimp", str_fmt("%s/m1.lua", x));
    ASSERT_NOT_NULL(mh_host_module(host, "helper"));
    ASSERT_NULL(entry_info(host, 0).error);
    mh_host_free(host);
    /* helper nowhere: the open fails, with the reason, and no hang */
    host = fhost(str_fmt("oimp:%s", x), plugins);
    mh_module *mod = (mh_module *)1;
    ASSERT_STATUS(mh_import(host, "m1", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(entry_info(host, 0).error, "cannot import helper");
    mh_host_free(host);
}

TEST(a_finder_plugin_gets_its_own_hosts_userdata)
{
    /* Two hosts of one process load the same finder plugin: one object,
     * two inits.  Each host's callbacks get, as cx->ud, what its own
     * init kept; with a static, the second init's would serve both, and
     * dangle once that host is freed (ASan: heap-use-after-free). */
    const char *x, *h, *plugins;
    mh_host *a = oimp_host(&x, &h, &plugins);
    const char *y = lua_dir("Y", "m2");
    import_from(a, "m1", "oimp", str_fmt("%s/m1.lua", x));
    mh_host *b = fhost(str_fmt("oimp:%s", x), h, plugins);
    import_from(b, "m1", "oimp", str_fmt("%s/m1.lua", x));
    mh_host_free(b);
    /* A new entry of a's is opened now, after b is gone: its open runs
     * with a's userdata, and imports through a. */
    ASSERT_STATUS(mh_host_add_path(a, str_fmt("oimp:%s", y), 0, ERR),
                  MH_OK);
    import_from(a, "m2", "oimp", str_fmt("%s/m2.lua", y));
    mh_host_free(a);
}

TEST(importing_the_helper_of_a_finder_open_first_leaves_the_entry_usable)
{
    /* [oimp:X (m1.lua), H (helper), plugins].  Importing helper first
     * walks entry 0 inside helper's own import: oimp's open() imports
     * helper, a cycle.  That failure depends on the import in progress,
     * yet it was kept: the entry served nothing until
     * mh_invalidate_caches, and m1 was "not found" beside a loaded
     * helper (from a sweep of the import protocol under threads). */
    const char *x, *h, *plugins;
    mh_host *host = oimp_host(&x, &h, &plugins);
    ASSERT_EQ_INT(call_int(import_ok(host, "helper"), "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mh_host_module(host, "helper")),
                  str_fmt("%s/helper.so", h));
    import_from(host, "m1", "oimp", str_fmt("%s/m1.lua", x));
    ASSERT_NULL(entry_info(host, 0).error);
    mh_host_free(host);
}

struct importer {
    mh_host *host;
    const char *name;
    mh_status rc;
    char msg[512];
    int done;
};

static void *import_thread(void *arg)
{
    struct importer *im = arg;
    mh_module *mod = NULL;
    mh_error *e = NULL;
    im->rc = mh_import(im->host, im->name, &mod, &e);
    snprintf(im->msg, sizeof im->msg, "%s", e ? mh_error_message(e) : "");
    mh_error_free(e);
    __atomic_store_n(&im->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Wait for both import threads (a deadlock fails the case after 30 s,
 * rather than hang it), then both imports must have succeeded. */
static void both_imported(struct importer *a, pthread_t ta,
                          struct importer *b, pthread_t tb)
{
    double t0 = mono_s();
    while (!__atomic_load_n(&a->done, __ATOMIC_SEQ_CST) ||
           !__atomic_load_n(&b->done, __ATOMIC_SEQ_CST)) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (mono_s() - t0 > 30)
            FAIL("deadlock: %s %s, %s %s after 30 s", a->name,
                 a->done ? "imported" : "still importing", b->name,
                 b->done ? "imported" : "still importing");
        nanosleep(&ts, NULL);
    }
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (a->rc != MH_OK || b->rc != MH_OK)
        FAIL("%s: %s %s; %s: %s %s", a->name, mh_status_name(a->rc), a->msg,
             b->name, mh_status_name(b->rc), b->msg);
}

/* helper's init (the stress_hook fixture) for the case below: it waits
 * until the other thread is well inside the finder's open(), waiting for
 * helper, then adds an entry to the path. */
static struct {
    mh_host *host;
    const char *add;
    mh_status rc;
    char msg[512];
} ap;

static int add_path_in_init(const char *name, const char **next, char *why,
                            size_t size)
{
    (void)name;
    (void)next;
    (void)why;
    (void)size;
    struct timespec settle = {0, 300 * 1000 * 1000};
    nanosleep(&settle, NULL);
    mh_error *e = NULL;
    ap.rc = mh_host_add_path(ap.host, ap.add, SIZE_MAX, &e);
    snprintf(ap.msg, sizeof ap.msg, "%s", mh_error_message(e));
    mh_error_free(e);
    return 0;
}

TEST(init_adding_an_entry_while_a_finder_open_waits_for_it)
{
    /* [H (helper), oimp:X (m1.lua), plugins].  Thread B imports helper,
     * whose init adds an entry to the path.  Thread A meanwhile imports
     * m1: its walk opens oimp:X, whose open() imports helper and waits
     * for B.  The walk held the path's lock for reading all along, and
     * B's change waited for it: both hung for ever (from a sweep of the
     * import protocol under threads).  A walk now goes over a copy of the
     * path, so the change is made and both imports end. */
    const char *x = lua_dir("X", "m1");
    const char *plugins = install("oimp", "oimp");
    const char *h = tmp_mkdir("H");
    fixture_copy("stress_hook", "H/helper.so");
    env_set("MH_STRESS_HOOK",
            str_fmt("%" PRIxPTR, (uintptr_t)add_path_in_init));
    memset(&ap, 0, sizeof ap);
    ap.add = tmp_mkdir("added");
    mh_host *host = fhost(h, str_fmt("oimp:%s", x), plugins);
    ap.host = host;
    struct importer b = {host, "helper", MH_OK, "", 0};
    struct importer a = {host, "m1", MH_OK, "", 0};
    pthread_t ta, tb;
    ASSERT_EQ_INT(pthread_create(&tb, NULL, import_thread, &b), 0);
    struct timespec inside = {0, 50 * 1000 * 1000}; /* B in helper's init */
    nanosleep(&inside, NULL);
    ASSERT_EQ_INT(pthread_create(&ta, NULL, import_thread, &a), 0);
    both_imported(&a, ta, &b, tb);
    ASSERT_STATUS(ap.rc, MH_OK);
    ASSERT_EQ_STR(ap.msg, "");
    ASSERT_EQ_INT(mh_host_path_count(host), 4);
    ASSERT_EQ_STR(mh_module_finder(mh_host_module(host, "m1")), "oimp");
    mh_host_free(host);
}

TEST(finder_open_importing_what_another_thread_imports_does_not_deadlock)
{
    /* Thread A opens "ogate:X" (to import m1); its open() imports helper.
     * Thread B imports helper first: it claims helper, walks the path and
     * waits for entry 0, which A holds, while A waits for helper, which
     * B holds.  Neither wait was seen by the deadlock check: both hung.
     * Now A's wait sees the cycle through B's wait for the entry and
     * breaks that one: B passes over the entry (it cannot serve anything
     * before helper is loaded), finds helper in H, and both go on. */
    const char *x = lua_dir("X", "m1");
    const char *plugins = install("ogate", "ogate");
    const char *h = tmp_mkdir("H");
    const char *marker = tmp_path("open-started");
    const char *gate = tmp_path("gate");
    fixture_copy("counter", "H/helper.so");
    env_set("MH_FPLUG_MARKER", marker);
    env_set("MH_FPLUG_GATE", gate);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, str_fmt("ogate:%s", x), h, plugins);
    struct importer a = {host, "m1", MH_OK, "", 0};
    struct importer b = {host, "helper", MH_OK, "", 0};
    pthread_t ta, tb;
    ASSERT_EQ_INT(pthread_create(&ta, NULL, import_thread, &a), 0);
    wait_for_file(marker, "the finder's open()", 20);
    ASSERT_EQ_INT(pthread_create(&tb, NULL, import_thread, &b), 0);
    /* B claims helper and reaches the entry A holds: microseconds. */
    struct timespec settle = {0, 300 * 1000 * 1000};
    nanosleep(&settle, NULL);
    file_write_bytes(gate, "", 0);
    both_imported(&a, ta, &b, tb);
    ASSERT_EQ_STR(mh_module_finder(mh_host_module(host, "m1")), "ogate");
    ASSERT_EQ_STR(mh_module_origin(mh_host_module(host, "helper")),
                  str_fmt("%s/helper.so", h));
    ASSERT_NULL(entry_info(host, 0).error);
    /* B did pass over the entry: the case did not just happen to run
     * one import after the other. */
    const char *passed = "entry 0 'ogate:%s': not waited for: its finder "
                         "is being opened by another thread, which waits "
                         "for 'helper' (being imported by this thread)";
    if (log_capture_count(&lc, MH_LOG_TRACE, str_fmt(passed, x)) != 1)
        FAIL("helper's walk did not pass over entry 0:\n%s",
             log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(child_of_fork_passes_over_an_entry_a_parent_thread_was_opening)
{
    /* Thread A is inside ogate:X's open() when the process forks.  In
     * the child, A does not exist: a walk there waited for the entry's
     * opening lock for ever.  It passes over the entry now, saying why
     * (a module nowhere: every entry is asked), and modules of other
     * entries import. */
    const char *x = lua_dir("X", "m1");
    const char *plugins = install("ogate", "ogate");
    const char *h = tmp_mkdir("H");
    fixture_copy("counter", "H/helper.so");
    fixture_copy("answer7", "H/other.so");
    const char *marker = tmp_path("open-started");
    const char *gate = tmp_path("gate");
    env_set("MH_FPLUG_MARKER", marker);
    env_set("MH_FPLUG_GATE", gate);
    mh_host *host = fhost(str_fmt("ogate:%s", x), h, plugins);
    struct importer a = {host, "m1", MH_OK, "", 0};
    pthread_t ta;
    ASSERT_EQ_INT(pthread_create(&ta, NULL, import_thread, &a), 0);
    wait_for_file(marker, "the finder's open()", 20);
    /* In the child: a module nowhere is not found, entry 0 passed over
     * with the reason; other imports. */
    child_imports c = {host, "nowhere", MH_ENOTFOUND,
                       "a thread that was opening it when the process "
                       "forked", "other"};
    in_child_of_fork(child_imports_fn, &c, "2: not the error expected, 3: "
                                           "other did not import");
    file_write_bytes(gate, "", 0);
    pthread_join(ta, NULL);
    ASSERT_STATUS(a.rc, MH_OK);
    mh_host_free(host);
}

/* Thread B imports helper, whose init sleeps 1.5 s and then imports dep
 * ($MH_FIXTURE_IMPORT_helper); 150 ms later thread A imports m1, and is
 * at the entry whose open() waits for helper long before B's sleep ends.
 * Both must succeed. */
static void helper_then_m1(mh_host *host)
{
    env_set("MH_FIXTURE_IMPORT_helper", "dep");
    env_set("MH_FIXTURE_SLEEP_MS", "1500");
    struct importer b = {host, "helper", MH_OK, "", 0};
    struct importer a = {host, "m1", MH_OK, "", 0};
    pthread_t ta, tb;
    ASSERT_EQ_INT(pthread_create(&tb, NULL, import_thread, &b), 0);
    /* B claims helper and starts its init's sleep: microseconds. */
    struct timespec settle = {0, 150 * 1000 * 1000};
    nanosleep(&settle, NULL);
    ASSERT_EQ_INT(pthread_create(&ta, NULL, import_thread, &a), 0);
    both_imported(&a, ta, &b, tb);
}

TEST(thread_opening_an_entry_waits_for_an_import_that_passes_over_it)
{
    /* The other order: thread B imports helper (from H, entry 0), whose
     * init sleeps, then imports dep.  Meanwhile thread A opens entry 1,
     * "ogate:X", whose open() imports helper: A waits for B.  B's walk
     * for dep then reaches entry 1, which A holds: waiting for it would
     * never end.  B sees that before it waits, passes over the entry and
     * finds dep in D; helper is loaded, and A's open goes on. */
    const char *h = tmp_mkdir("H");
    const char *x = lua_dir("X", "m1");
    const char *d = tmp_mkdir("D");
    const char *plugins = install("ogate", "ogate");
    fixture_copy("importer", "H/helper.so");
    fixture_copy("counter", "D/dep.so");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, h, str_fmt("ogate:%s", x), d, plugins);
    helper_then_m1(host);
    ASSERT_EQ_STR(mh_module_finder(mh_host_module(host, "m1")), "ogate");
    ASSERT_EQ_STR(mh_module_origin(mh_host_module(host, "dep")),
                  str_fmt("%s/dep.so", d));
    ASSERT_NULL(entry_info(host, 1).error);
    const char *passed = "find 'dep': entry 1 'ogate:%s': not waited for: "
                         "its finder is being opened by another thread, "
                         "which waits for 'helper' (being imported by this "
                         "thread)";
    if (log_capture_count(&lc, MH_LOG_TRACE, str_fmt(passed, x)) != 1)
        FAIL("dep's walk did not pass over entry 1:\n%s",
             log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(thread_passing_over_an_entry_being_opened_breaks_no_other)
{
    /* [plugins, H (helper: sleeps, then imports dep), ogate:D2 (D2 holds
     * finders/aa.so), aa:D1 (m1.lua), D (dep)].  B imports helper; A
     * imports m1 and opens entry 2, whose open() waits for helper.  B's
     * walk for dep passes over entry 2 (its opener waits for B) and meets
     * aa:D1, whose finder plugin lies in entry 2: not found then, but not
     * for good.  It was taken as settled (B was neither opening an entry
     * nor loading a plugin): entry 3 marked unusable, m1 not found, even
     * by a later import on its own.  (Found by review.) */
    const char *plugins = install("ogate", "ogate");
    const char *h = tmp_mkdir("H");
    const char *d2 = tmp_mkdir("D2");
    fixture_copy("fplug_aa", "D2/finders/aa.so");
    const char *d1 = lua_dir("D1", "m1");
    const char *d = tmp_mkdir("D");
    fixture_copy("importer", "H/helper.so");
    fixture_copy("counter", "D/dep.so");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, plugins, h, str_fmt("ogate:%s", d2),
                          str_fmt("aa:%s", d1), d);
    helper_then_m1(host);
    ASSERT_EQ_STR(mh_module_finder(mh_host_module(host, "m1")), "aa");
    ASSERT_NULL(entry_info(host, 3).error);
    if (log_capture_count(&lc, MH_LOG_TRACE, "not waited for: its finder "
                          "is being opened by another thread") == 0)
        FAIL("dep's walk did not pass over entry 2:\n%s",
             log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

/* Two path hooks for the next cases: "slow:" entries, whose find() of
 * one name waits for another thread (then acts), and "gate:" entries,
 * whose open() imports x. */
static struct {
    mh_host *host;
    const char *slow_name;      /* the name slow's find() waits on */
    int generation;             /* "the data" gate's open() reads */
    int invalidate;             /* slow's find() changes it, invalidates */
    int slow_asked, gate_opening, gate_claims;
} hk;

static void hk_wait(int *flag)
{
    for (int i = 0; i < 20000 && !__atomic_load_n(flag, __ATOMIC_SEQ_CST);
         i++) {
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (!__atomic_load_n(flag, __ATOMIC_SEQ_CST))
        FAIL("a thread never got where the case needs it");
}

static mh_status hk_open(mh_finder_ctx *cx, const char *entry, void **st)
{
    (void)cx;
    (void)entry;
    *st = &hk;
    return MH_OK;
}

static void hk_close(mh_finder_ctx *cx, void *st)
{
    (void)cx;
    (void)st;
}

/* Asked for hk.slow_name (by B): wait until A opens a gate: entry (and so
 * waits for what B imports), then let it be for 300 ms, then change the
 * data and invalidate the caches if asked to. */
static mh_status hk_slow_find(mh_finder_ctx *cx, void *st, const char *name,
                              mh_finder_spec *spec)
{
    (void)st;
    (void)spec;
    if (strcmp(name, hk.slow_name) == 0) {
        __atomic_store_n(&hk.slow_asked, 1, __ATOMIC_SEQ_CST);
        hk_wait(&hk.gate_opening);
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (hk.invalidate) {
            __atomic_store_n(&hk.generation, 1, __ATOMIC_SEQ_CST);
            mh_invalidate_caches(hk.host);
        }
    }
    cx->svc->miss(cx, "slow has no '%s'", name);
    return MH_ENOTFOUND;
}

/* Reads the data, imports x, and fails if the data it read is old. */
static mh_status hk_gate_open(mh_finder_ctx *cx, const char *entry,
                              void **st)
{
    (void)entry;
    int gen = __atomic_load_n(&hk.generation, __ATOMIC_SEQ_CST);
    __atomic_store_n(&hk.gate_opening, 1, __ATOMIC_SEQ_CST);
    mh_module *m = NULL;
    mh_error *e = NULL;
    mh_status rc = mh_import(hk.host, "x", &m, &e);
    mh_error_free(e);
    if (rc != MH_OK)
        return cx->svc->error(cx, rc, "gate: cannot import x");
    if (gen == 0)
        return cx->svc->error(cx, MH_EPATH, "gate: old data (generation 0)");
    *st = &hk;
    return MH_OK;
}

/* Serves m, a Lua module, from memory. */
static mh_status hk_gate_find(mh_finder_ctx *cx, void *st, const char *name,
                              mh_finder_spec *spec)
{
    (void)st;
    if (strcmp(name, "m") != 0)
    {
        cx->svc->miss(cx, "gate has no '%s'", name);
        return MH_ENOTFOUND;
    }
    spec->kind = MH_KIND_LUA;
    spec->origin = cx->svc->intern(cx, "gate:m");
    spec->key = spec->origin;
    return MH_OK;
}

static mh_status hk_gate_read(mh_finder_ctx *cx, void *st, const char *key,
                              mh_finder_blob *out)
{
    (void)st;
    (void)key;
    static const char src[] = "return {}";
    out->data = cx->svc->alloc(cx, sizeof src - 1);
    if (!out->data)
        return MH_ENOMEM;
    memcpy(out->data, src, sizeof src - 1);
    out->len = out->size = sizeof src - 1;
    return MH_OK;
}

static int hk_gate_claims(mh_finder_ctx *cx, const char *entry)
{
    (void)cx;
    return __atomic_load_n(&hk.gate_claims, __ATOMIC_SEQ_CST) &&
           strncmp(entry, "zz:", 3) == 0;
}

static const mh_finder_class hk_slow = {
    MH_FINDER_CLASS_INIT, .name = "slow", .scheme = "slow",
    .open = hk_open, .find = hk_slow_find, .close = hk_close};
static const mh_finder_class hk_gate = {
    MH_FINDER_CLASS_INIT, .name = "gate", .scheme = "gate",
    .open = hk_gate_open, .find = hk_gate_find, .read = hk_gate_read,
    .close = hk_close};
/* gate's finder, but claiming "zz:" entries only once told to */
static const mh_finder_class hk_late = {
    MH_FINDER_CLASS_INIT, .name = "late", .claims = hk_gate_claims,
    .open = hk_gate_open, .find = hk_gate_find, .read = hk_gate_read,
    .close = hk_close};

/* A host on [e0, e1, D (x.so)] with the slow: hook, whose find() of
 * slow_name waits for a gate: open(); hk reset. */
static mh_host *hk_host(const char *slow_name, const char *e0,
                        const char *e1)
{
    memset(&hk, 0, sizeof hk);
    hk.slow_name = slow_name;
    fixture_copy("counter", "D/x.so");
    hk.host = host_new_isolated(e0, e1, tmp_path("D"));
    ASSERT_STATUS(mh_host_add_path_hook(hk.host, &hk_slow, NULL,
                                        MH_CHAIN_FIRST, NULL, ERR), MH_OK);
    return hk.host;
}

/* A finder whose find() changes its host's search path and caches. */
static struct {
    mh_host *host;
    const char *add;
    int asked, claimed;
    mh_status rc, meta_rc, claims_rc;
    char msg[512], claims_msg[512];
} pw;

static mh_status nothing_find(mh_finder_ctx *cx, void *st, const char *name,
                              mh_finder_spec *spec)
{
    (void)st;
    (void)spec;
    cx->svc->miss(cx, "nothing has no '%s'", name);
    return MH_ENOTFOUND;
}

static mh_status nothing_open(mh_finder_ctx *cx, const char *entry,
                              void **st)
{
    (void)cx;
    (void)entry;
    *st = NULL;
    return MH_OK;
}

/* A finder that finds nothing (scheme "nothing:" as a path hook): what
 * the callbacks below register. */
static const mh_finder_class hk_nothing = {
    MH_FINDER_CLASS_INIT, .name = "nothing", .scheme = "nothing",
    .open = nothing_open, .find = nothing_find, .close = hk_close};
static const mh_finder_class hk_nothing2 = {
    MH_FINDER_CLASS_INIT, .name = "nothing2", .scheme = "nothing2",
    .open = nothing_open, .find = nothing_find, .close = hk_close};

static mh_status pw_open(mh_finder_ctx *cx, const char *entry, void **st)
{
    (void)cx;
    (void)entry;
    *st = &pw;
    return MH_OK;
}

static mh_status pw_find(mh_finder_ctx *cx, void *st, const char *name,
                         mh_finder_spec *spec)
{
    (void)st;
    (void)spec;
    if (pw.asked++ == 0) {
        mh_error *e = NULL;
        pw.rc = mh_host_add_path(pw.host, pw.add, 0, &e);
        snprintf(pw.msg, sizeof pw.msg, "%s", mh_error_message(e));
        mh_error_free(e);
        /* no lock of the chain's is held here: this one works */
        pw.meta_rc = mh_host_add_meta_finder(pw.host, &hk_nothing, NULL,
                                             MH_CHAIN_LAST, NULL, NULL);
    }
    cx->svc->miss(cx, "pathy has no '%s'", name);
    return MH_ENOTFOUND;
}

/* claims() runs under the chain's read lock: registering from it would
 * wait for ever. */
static int pw_claims(mh_finder_ctx *cx, const char *entry)
{
    (void)cx;
    if (strncmp(entry, "cz:", 3) != 0)
        return 0;
    if (pw.claimed++ == 0) {
        mh_error *e = NULL;
        pw.claims_rc = mh_host_add_path_hook(pw.host, &hk_nothing, NULL,
                                             MH_CHAIN_LAST, NULL, &e);
        snprintf(pw.claims_msg, sizeof pw.claims_msg, "%s",
                 mh_error_message(e));
        mh_error_free(e);
    }
    return 1;
}

static const mh_finder_class hk_pathy = {
    MH_FINDER_CLASS_INIT, .name = "pathy", .scheme = "pathy",
    .open = pw_open, .find = pw_find, .close = hk_close};
static const mh_finder_class hk_claimy = {
    MH_FINDER_CLASS_INIT, .name = "claimy", .claims = pw_claims,
    .open = pw_open, .find = pw_find, .close = hk_close};

/* pw reset, pw.host on [entry, D (x.so)] with cls first in the chain,
 * and x imported through it: cls's callbacks have run. */
static void pw_import_x(const char *entry, const mh_finder_class *cls)
{
    memset(&pw, 0, sizeof pw);
    pw.add = tmp_mkdir("more");
    fixture_copy("counter", "D/x.so");
    pw.host = host_new_isolated(entry, tmp_path("D"));
    ASSERT_STATUS(mh_host_add_path_hook(pw.host, cls, NULL, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_EQ_INT(call_int(import_ok(pw.host, "x"), "value"), 42);
}

TEST(finder_changing_the_search_path_from_find_works)
{
    /* find() runs while its thread walks the path.  The walk held the
     * path's lock for reading, and the change waited for it for ever;
     * then it was refused.  A walk now goes over a copy of the path, and
     * the change is made at once: the walk that asked goes on over the
     * entries it copied, and the next one sees the new entry first. */
    pw_import_x("pathy:p", &hk_pathy);
    ASSERT_EQ_INT(pw.asked, 1);
    ASSERT_STATUS(pw.rc, MH_OK);
    ASSERT_EQ_INT(mh_host_path_count(pw.host), 3);
    const char *first = NULL;
    ASSERT_STATUS(mh_host_path_entry(pw.host, 0, &first, NULL, NULL), MH_OK);
    ASSERT_EQ_STR(first, pw.add);
    ASSERT_STATUS(pw.meta_rc, MH_OK);
    /* The new entry is searched: a module only it has is found. */
    fixture_copy("answer7", "more/only_there.so");
    ASSERT_EQ_INT(call_int(import_ok(pw.host, "only_there"), "value"), 7);
    mh_host_free(pw.host);
}

TEST(finder_registering_a_finder_from_claims_is_refused_not_hung)
{
    pw_import_x("cz:1", &hk_claimy);
    ASSERT_EQ_INT(pw.claimed, 1);
    ASSERT_STATUS(pw.claims_rc, MH_EINVAL);
    ASSERT_CONTAINS(pw.claims_msg, "mh_host_add_path_hook: called from a "
                                   "finder's claims()");
    /* Outside claims(), the same call works. */
    ASSERT_STATUS(mh_host_add_path_hook(pw.host, &hk_nothing2, NULL,
                                        MH_CHAIN_LAST, NULL, ERR), MH_OK);
    mh_host_free(pw.host);
}

/* claims() of the main thread importing a module whose init, on another
 * thread, registers a path hook. */
static struct {
    mh_host *host;
    pthread_t main;
    atomic_int in_claims, in_init;
    mh_status claims_import, hook_add;
} ci;

static void ci_wait(atomic_int *flag)
{
    while (!atomic_load(flag))
        usleep(1000);
}

static int ci_claims(mh_finder_ctx *cx, const char *entry)
{
    (void)cx;
    if (!pthread_equal(pthread_self(), ci.main) ||
        strncmp(entry, "ci:", 3) != 0)
        return 0;
    atomic_store(&ci.in_claims, 1);
    ci_wait(&ci.in_init);
    mh_module *m = NULL;
    ci.claims_import = mh_import(ci.host, "c", &m, NULL);
    return 0;
}

static const mh_finder_class hk_cimp = {
    MH_FINDER_CLASS_INIT, .name = "cimp", .claims = ci_claims,
    .open = nothing_open, .find = nothing_find, .close = hk_close};

static int ci_init(const char *name, const char **next, char *why,
                   size_t size)
{
    (void)name;
    (void)next;
    (void)why;
    (void)size;
    atomic_store(&ci.in_init, 1);
    ci_wait(&ci.in_claims);
    ci.hook_add = mh_host_add_path_hook(ci.host, &hk_nothing2, NULL,
                                        MH_CHAIN_LAST, NULL, NULL);
    return 0;
}

static void *ci_import_c(void *arg)
{
    (void)arg;
    mh_module *m = NULL;
    return mh_import(ci.host, "c", &m, NULL) == MH_OK ? m : NULL;
}

TEST(claims_importing_what_an_init_registering_a_finder_imports_does_not_hang)
{
    /* claims() ran under the finder chain's read lock.  It imported c,
     * which another thread was importing, and c's init registered a path
     * hook: the init waited for the write lock, held off by claims(),
     * which waited for c.  claims() are now asked over a copy of the
     * chain, with no lock held. */
    fixture_copy("stress_hook", "E/c.so");
    env_set("MH_STRESS_HOOK", str_fmt("%" PRIxPTR, (uintptr_t)ci_init));
    memset(&ci, 0, sizeof ci);
    ci.main = pthread_self();
    ci.claims_import = ci.hook_add = MH_EINVAL;
    ci.host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_host_add_path_hook(ci.host, &hk_cimp, NULL,
                                        MH_CHAIN_FIRST, NULL, ERR), MH_OK);
    alarm(test_case_timeout_s());
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, ci_import_c, NULL), 0);
    ci_wait(&ci.in_init);
    ASSERT_STATUS(mh_host_add_path(ci.host, "ci:new", 0, ERR), MH_OK);
    ASSERT_STATUS(mh_import(ci.host, "nosuch", &(mh_module *){0}, ERR),
                  MH_ENOTFOUND);
    void *c = NULL;
    pthread_join(t, &c);
    alarm(0);
    ASSERT_NOT_NULL(c);
    ASSERT_STATUS(ci.claims_import, MH_OK);
    ASSERT_STATUS(ci.hook_add, MH_OK);
    mh_host_free(ci.host);
}

TEST(thread_invalidating_while_an_entry_is_opened_is_not_lost)
{
    /* [slow:s, gate:g, D (x.so)].  B imports x; slow's find() waits until
     * A, importing m, opens gate:g, whose open() read the data and waits
     * for x.  Then B changes the data and calls mh_invalidate_caches: the
     * entry, being opened by a thread waiting for B, was passed over, and
     * the failure A's open() then met (old data) was kept for good.  It
     * is not kept now: m is found by the next import.  (Found by review.) */
    mh_host *host = hk_host("x", "slow:s", "gate:g");
    hk.invalidate = 1;
    ASSERT_STATUS(mh_host_add_path_hook(host, &hk_gate, NULL, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    struct importer b = {host, "x", MH_OK, "", 0};
    struct importer a = {host, "m", MH_OK, "", 0};
    pthread_t ta, tb;
    ASSERT_EQ_INT(pthread_create(&tb, NULL, import_thread, &b), 0);
    hk_wait(&hk.slow_asked);
    ASSERT_EQ_INT(pthread_create(&ta, NULL, import_thread, &a), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ASSERT_STATUS(b.rc, MH_OK);
    /* A's own open read the old data: it fails, with that reason */
    ASSERT_STATUS(a.rc, MH_ENOTFOUND);
    ASSERT_CONTAINS(a.msg, "gate: old data (generation 0)");
    ASSERT_NULL(entry_info(host, 1).error);
    ASSERT_EQ_STR(mh_module_finder(import_ok(host, "m")), "gate");
    mh_host_free(host);
}

TEST(thread_finding_an_entry_taken_after_its_plugin_failed_leaks_nothing)
{
    /* [zz:z, slow:s, D (x.so)].  B imports x; no hook takes zz:z, so B
     * imports finders.zz for it, and slow's find() of that waits until A
     * opens zz:z with a hook added meanwhile, whose open() waits for x.
     * finders.zz is nowhere; back at the entry, B finds its opener
     * waiting for B and passes over it: the plugin import's error was
     * leaked (LeakSanitizer).  (Found by review.) */
    mh_host *host = hk_host("finders.zz", "zz:z", "slow:s");
    hk.generation = 1;
    struct importer b = {host, "x", MH_OK, "", 0};
    struct importer a = {host, "m", MH_OK, "", 0};
    pthread_t ta, tb;
    ASSERT_EQ_INT(pthread_create(&tb, NULL, import_thread, &b), 0);
    hk_wait(&hk.slow_asked);  /* B: loading zz:z's finder plugin */
    __atomic_store_n(&hk.gate_claims, 1, __ATOMIC_SEQ_CST);
    ASSERT_STATUS(mh_host_add_path_hook(host, &hk_late, NULL, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_EQ_INT(pthread_create(&ta, NULL, import_thread, &a), 0);
    both_imported(&b, tb, &a, ta);
    ASSERT_EQ_STR(mh_module_finder(mh_host_module(host, "m")), "late");
    ASSERT_EQ_STR(mh_module_origin(mh_host_module(host, "x")),
                  tmp_path("D/x.so"));
    mh_host_free(host);
}

TEST(an_entry_passed_over_while_opening_breaks_no_other)
{
    /* [oimp:D2 (D2 holds finders/aa.so), aa:D1 (m1.lua), H (helper)]:
     * oimp's open() imports helper, whose walk passes over entry 0 and
     * meets aa:D1, whose finder plugin lies in entry 0.  That finder not
     * found was taken as settled: entry 1 marked unusable, m1 not found
     * until the caches were invalidated. */
    const char *d1 = lua_dir("D1", "m1");
    const char *d2 = tmp_mkdir("D2");
    fixture_copy("fplug_aa", "D2/finders/aa.so");
    const char *plugins = install("oimp", "oimp");
    const char *h = tmp_mkdir("H");
    fixture_copy("counter", "H/helper.so");
    mh_host *host = fhost(str_fmt("oimp:%s", d2), str_fmt("aa:%s", d1), h,
                          plugins);
    import_from(host, "m1", "aa", str_fmt("%s/m1.lua", d1));
    ASSERT_NULL(entry_info(host, 1).error);
    mh_host_free(host);
}

TEST(nested_finder_plugins)
{
    nested(1);
}

TEST(nested_finder_plugins_bb_first)
{
    nested(0);
}

/* ----------------------------------- discovery strings outlive callbacks */

#define SAVED_MAX 16

typedef struct saved_eps {
    size_t n;
    mh_entry_point v[SAVED_MAX];
} saved_eps;

/* Keep the struct only: its strings are the host's. */
static int save_ep(void *ud, const mh_entry_point *ep)
{
    saved_eps *s = ud;
    if (s->n == SAVED_MAX)
        FAIL("too many entry points");
    s->v[s->n++] = *ep;
    return 0;
}

static void assert_ep(const mh_entry_point *ep, const char *module,
                      const char *origin)
{
    ASSERT_EQ_STR(ep->group, "codec");
    ASSERT_EQ_STR(ep->module, module);
    ASSERT_EQ_STR(ep->export_name, "call:encode");
    ASSERT_EQ_STR(ep->origin, origin);
}

/* Work that makes the host allocate and free what a walk allocates. */
static int ignore_meta(void *ud, const mh_module_meta *m)
{
    (void)ud;
    (void)m;
    return 0;
}

static int ignore_ep(void *ud, const mh_entry_point *ep)
{
    (void)ud;
    (void)ep;
    return 0;
}

static int ignore_failure(void *ud, const mh_failure *f)
{
    (void)ud;
    (void)f;
    return 0;
}

static void churn(mh_host *host)
{
    ASSERT_STATUS(mh_discover(host, ignore_meta, NULL, ERR), MH_OK);
    ASSERT_STATUS(mh_host_entry_points(host, "answer", ignore_ep, NULL, ERR),
                  MH_OK);
    ASSERT_STATUS(mh_host_failures(host, ignore_failure, NULL, ERR), MH_OK);
    mh_invalidate_caches(host);
}

TEST(saved_entry_points_load_later)
{
    const char *dir = tmp_mkdir("eps");
    fixture_copy("disc_codec", "eps/c_one.so");
    fixture_copy("disc_codec", "eps/c_two.so");
    disc_age_tree(dir, 60);
    mh_host *host = fhost(dir);
    saved_eps s = {0};
    const char *origin[2] = {str_fmt("%s/c_one.so", dir),
                             str_fmt("%s/c_two.so", dir)};
    const char *name[2] = {"c_one", "c_two"};

    ASSERT_STATUS(mh_host_entry_points(host, "codec", save_ep, &s, ERR),
                  MH_OK);
    ASSERT_EQ_INT(s.n, 2);
    churn(host);
    for (size_t i = 0; i < 2; i++)
        assert_ep(&s.v[i], name[i], origin[i]);
    for (size_t i = 0; i < 2; i++) {
        mh_module *mod = NULL;
        void *sym = NULL;
        ASSERT_STATUS(mh_entry_point_load(host, &s.v[i], &mod, &sym, ERR),
                      MH_OK);
        ASSERT_EQ_STR(mh_module_name(mod), name[i]);
        ASSERT_EQ_STR(mh_module_origin(mod), origin[i]);
        ASSERT_NOT_NULL(sym);
        ASSERT_EQ_PTR(sym, mh_module_symbol(mod, "call:encode"));
        ASSERT_EQ_STR(call_ok(mod, "encode", NULL), "\"disc-encoded\"");
    }
    churn(host);
    /* still the host's until it is freed */
    for (size_t i = 0; i < 2; i++)
        assert_ep(&s.v[i], name[i], origin[i]);
    mh_host_free(host);
}

typedef struct saved_fails {
    size_t n;
    mh_failure v[SAVED_MAX];
} saved_fails;

static int save_failure(void *ud, const mh_failure *f)
{
    saved_fails *s = ud;
    if (s->n == SAVED_MAX)
        FAIL("too many failures");
    s->v[s->n++] = *f;
    return 0;
}

/* good.so (a codec) and bad.so (not ELF: a recorded failure). */
static const char *good_and_bad_dir(void)
{
    const char *dir = tmp_mkdir("plugins");
    fixture_copy("disc_codec", "plugins/good.so");
    file_write(str_fmt("%s/bad.so", dir), "this is not a shared object\n");
    disc_age_tree(dir, 60);
    return dir;
}

TEST(saved_failures_stay_valid)
{
    const char *dir = good_and_bad_dir();
    mh_host *host = fhost(dir);
    saved_fails s = {0};

    ASSERT_STATUS(mh_discover(host, ignore_meta, NULL, ERR), MH_OK);
    ASSERT_STATUS(mh_host_failures(host, save_failure, &s, ERR), MH_OK);
    ASSERT_EQ_INT(s.n, 1);
    churn(host);
    const mh_failure *f = &s.v[0];
    ASSERT_EQ_STR(f->name, "bad");
    ASSERT_EQ_STR(f->origin, str_fmt("%s/bad.so", dir));
    ASSERT_CONTAINS(f->reason, "not an ELF");
    ASSERT_EQ_INT(f->status, MH_EFORMAT);
    /* forgetting the failure is no reason to free what the caller holds */
    size_t cleared = 0;
    ASSERT_STATUS(mh_host_clear_failures(host, NULL, &cleared, ERR), MH_OK);
    ASSERT_EQ_INT(cleared, 1);
    churn(host);
    ASSERT_EQ_STR(f->name, "bad");
    ASSERT_EQ_STR(f->origin, str_fmt("%s/bad.so", dir));
    ASSERT_CONTAINS(f->reason, "not an ELF");
    mh_host_free(host);
}

typedef struct saved_meta {
    size_t n;
    mh_module_meta v[SAVED_MAX];
} saved_meta;

static int save_meta(void *ud, const mh_module_meta *m)
{
    saved_meta *s = ud;
    if (s->n == SAVED_MAX)
        FAIL("too many modules");
    s->v[s->n] = *m;
    s->v[s->n].manifest = NULL; /* only valid during the callback */
    s->n++;
    return 0;
}

TEST(saved_discover_meta_stays_valid)
{
    const char *dir = good_and_bad_dir();
    mh_host *host = fhost(dir);
    saved_meta s = {0};

    ASSERT_STATUS(mh_discover(host, save_meta, &s, ERR), MH_OK);
    ASSERT_EQ_INT(s.n, 2);
    for (int round = 0; round < 2; round++) {
        churn(host);
        /* in name order: bad, good */
        const mh_module_meta *bad = &s.v[0], *good = &s.v[1];
        ASSERT_EQ_STR(bad->name, "bad");
        ASSERT_EQ_STR(bad->origin, str_fmt("%s/bad.so", dir));
        ASSERT_EQ_STR(bad->finder, "fs");
        ASSERT_EQ_INT(bad->status, MH_EFORMAT);
        ASSERT_CONTAINS(bad->reason, "not an ELF");
        ASSERT_EQ_STR(good->name, "good");
        ASSERT_EQ_STR(good->origin, str_fmt("%s/good.so", dir));
        ASSERT_EQ_STR(good->finder, "fs");
        ASSERT_EQ_INT(good->status, MH_OK);
        ASSERT_NULL(good->reason);
        ASSERT_STATUS(mh_host_clear_failures(host, NULL, NULL, ERR), MH_OK);
    }
    mh_host_free(host);
}

/* ---------------------------------------------- blobs from finder plugins */

TEST(lying_blob_length)
{
    const char *plugins = install("badlen", "badlen");
    const char *dir = lua_dir("mods", "lm");
    mh_host *host = fhost(str_fmt("badlen:%s", dir), plugins);
    mh_module *mod = (mh_module *)1;

    /* the finder finds it ... */
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, "lm", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.finder, "badlen");
    /* ... and its bytes are refused, twice alike */
    for (int i = 0; i < 2; i++) {
        ASSERT_STATUS(mh_import(host, "lm", &mod, ERR), MH_EFORMAT);
        ASSERT_CONTAINS(ERR_MSG(), "'badlen'");
        ASSERT_NULL(mod);
        ASSERT_NULL(mh_host_module(host, "lm"));
    }
    mh_host_free(host);
}

TEST(error_then_ok_does_not_leak)
{
    /* Passing under LeakSanitizer is the proof; the tracker says the same
     * of the host's own allocator. */
    alloc_tracker at;
    alloc_tracker_init(&at);
    const char *plugins = install("errok", "errok");
    const char *dir = lua_dir("mods", "lm");
    lua_write("mods/pkg/sub.lua", who_source("pkg.sub"));
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = path_join((const char *const[]){str_fmt("errok:%s", dir),
                                               plugins, NULL});
    cfg.cache_dir = tmp_path("cache");
    cfg.alloc = alloc_tracker_fn;
    cfg.alloc_ud = &at;
    mh_host *host = host_new_cfg(&cfg);

    import_from(host, "lm", "errok", str_fmt("%s/lm.lua", dir));
    import_from(host, "pkg.sub", "errok", str_fmt("%s/pkg/sub.lua", dir));
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, "lm", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.finder, "errok");
    mh_path_entry_info ei = entry_info(host, 0);
    ASSERT_EQ_STR(ei.finder, "errok");
    ASSERT_NULL(ei.error);   /* open returned MH_OK: the entry is fine */
    /* a real miss is still a miss (the error is the host's memory too:
     * freed before counting) */
    mh_error *e = NULL;
    ASSERT_EQ_INT(mh_import(host, "nosuch", &(mh_module *){0}, &e),
                  MH_ENOTFOUND);
    mh_error_free(e);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    ASSERT_EQ_INT(at.blocks, 0);
    alloc_tracker_destroy(&at);
}

TEST(max_module_size_applies_to_plugin_finders)
{
    const char *plugins = install("rd", "rd");
    const char *dir = lua_dir("mods", "small");
    char pad[2049];
    memset(pad, '-', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    /* 2 KiB and more: a long comment before the table */
    const char *big = lua_write("mods/big.lua",
                                str_fmt("-- %s\n%s", pad, who_source("big")));
    ASSERT_TRUE(file_size(big) > 2048);
    host_opts o = {.max_module_size = 1024};
    mh_host *host = host_new_opts(&o, str_fmt("rd:%s", dir), plugins);
    mh_module *mod = (mh_module *)1;

    /* read() serves what fits */
    import_from(host, "small", "rd", str_fmt("%s/small.lua", dir));
    mh_status rc = mh_import(host, "big", &mod, ERR);
    if (rc == MH_OK)
        FAIL("a %lld-byte module loaded through a host that accepts 1024",
             file_size(big));
    ASSERT_NULL(mod);
    ASSERT_NULL(mh_host_module(host, "big"));
    if (!strstr(ERR_MSG(), "'big'") && !strstr(ERR_MSG(), big))
        FAIL("the message does not name the module: %s", ERR_MSG());
    ASSERT_CONTAINS(ERR_MSG(), "1024");
    mh_host_free(host);
}

/* ------------------------------------------------------ note reader work */

/* A 64-bit ELF shared object header (the machine's, from a real plugin)
 * with nphdr PT_NOTE program headers, all pointing at one region of seg
 * zero bytes: every one a segment of seg/12 empty notes. */
static void write_note_bomb(const char *path, unsigned nphdr, size_t seg)
{
    size_t hlen;
    unsigned char *h = file_bytes(MH_TEST_PLUGIN_DIR "/hello.so", &hlen);
    Elf64_Ehdr eh;

    if (hlen < sizeof eh || h[EI_CLASS] != ELFCLASS64)
        FAIL("hello.so is not a 64-bit ELF object");
    memcpy(&eh, h, sizeof eh);
    free(h);
    size_t phoff = sizeof eh;
    size_t notes = (phoff + (size_t)nphdr * sizeof(Elf64_Phdr) + 4095) &
                   ~(size_t)4095;
    unsigned char *buf = calloc(1, notes + seg);
    if (buf == NULL)
        FAIL("out of memory");
    eh.e_entry = 0;
    eh.e_phoff = phoff;
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = (Elf64_Half)nphdr;
    eh.e_shoff = 0;
    eh.e_shentsize = 0;
    eh.e_shnum = 0;
    eh.e_shstrndx = 0;
    memcpy(buf, &eh, sizeof eh);
    for (unsigned i = 0; i < nphdr; i++) {
        Elf64_Phdr ph = {.p_type = PT_NOTE, .p_flags = PF_R,
                         .p_offset = notes, .p_filesz = seg,
                         .p_memsz = seg, .p_align = 4};
        memcpy(buf + phoff + i * sizeof ph, &ph, sizeof ph);
    }
    file_write_bytes(path, buf, notes + seg);
    free(buf);
}

TEST(elf_note_work_is_bounded)
{
    /* 4000 segments of 1 MiB: 4 GiB read and 350 million notes looked at,
     * unless the reader bounds its work.  No timing: it must finish
     * within the runner's watchdog. */
    const char *dir = tmp_mkdir("mods");
    const char *slow = str_fmt("%s/slow.so", dir);
    write_note_bomb(slow, 4000, 1024 * 1024);
    mh_host *host = fhost(dir);
    mh_manifest *m = (mh_manifest *)1;

    ASSERT_STATUS(mh_metadata(host, "slow", &m, ERR), MH_EFORMAT);
    ASSERT_NULL(m);
    ASSERT_CONTAINS(ERR_MSG(), slow);
    ASSERT_CONTAINS_CI(ERR_MSG(), "note");
    /* import reads the note before dlopen: bounded as well */
    mh_module *mod = (mh_module *)1;
    ASSERT_NE_INT(mh_import(host, "slow", &mod, ERR), MH_OK);
    ASSERT_NULL(mod);
    mh_host_free(host);
}

/* --------------------------------------------- re-packed module databases */

/* m.lua + m.json in src, packed into db; discovery (a new host on the same
 * cache) must see a sidecar whose only change is its content: same size,
 * same mtime, rows written again either in the same database or in a new
 * file of the same name. */
static void repack_same_size(int recreate)
{
    static disc_run r;
    const char *src = tmp_mkdir("src");
    const char *lua = str_fmt("%s/m.lua", src);
    const char *json = str_fmt("%s/m.json", src);
    const char *db = tmp_path("m.db");
    long long t = (long long)time(NULL) - 60;

    file_write(lua, who_source("m"));
    file_write(json, "{\"version\": \"1.0.2\"}");
    file_set_mtime(lua, t);
    file_set_mtime(json, t);
    db_pack(db, src);

    mh_host *host = fhost(db);
    disc_discover(host, NULL, &r);
    ASSERT_EQ_INT(r.status, MH_OK);
    ASSERT_EQ_STR(disc_get(&r, "m")->finder, "sqlite");
    ASSERT_EQ_STR(disc_get(&r, "m")->version, "1.0.2");
    mh_host_free(host);

    long long before = file_size(json);
    file_write(json, "{\"version\": \"1.0.3\"}");
    file_set_mtime(json, t);
    ASSERT_EQ_INT(file_size(json), before);
    if (recreate && unlink(db) != 0)
        FAIL("unlink %s failed", db);
    db_pack(db, src);

    host = fhost(db);
    /* the finder itself reads the new bytes ... */
    mh_manifest *m = NULL;
    ASSERT_STATUS(mh_metadata(host, "m", &m, ERR), MH_OK);
    ASSERT_EQ_STR(mh_manifest_version(m), "1.0.3");
    mh_manifest_free(m);
    /* ... and so must discovery, not the index's old row */
    disc_discover(host, NULL, &r);
    ASSERT_EQ_INT(r.status, MH_OK);
    ASSERT_EQ_STR(disc_get(&r, "m")->version, "1.0.3");
    mh_host_free(host);
}

TEST(sqlite_repack_same_size_is_seen)
{
    repack_same_size(0);
}

TEST(sqlite_recreated_db_same_size_is_seen)
{
    repack_same_size(1);
}
