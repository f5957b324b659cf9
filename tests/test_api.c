/*
 * test_api.c -- the API's cross-cutting contracts: status codes and their
 * texts, versions and the header/library check, error-object conventions,
 * the allocator hook (used, balanced, sizes honoured, and out-of-memory at
 * every allocation handled), the log hook, and the host API table as a
 * plugin sees it.
 */
#include <setjmp.h>
#include <valgrind/valgrind.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include <modhost/finder.h>
#include "test.h"
#include <inttypes.h>
#include <stdint.h>
#include <unistd.h>

TEST(strerror_every_code)
{
    for (int c = 0; c < MH_STATUS_COUNT_; c++) {
        const char *s = mh_strerror(c);
        ASSERT_NOT_NULL(s);
        if (s[0] == '\0' || strcmp(s, "unknown status") == 0)
            FAIL("mh_strerror(%d) = \"%s\"", c, s);
        for (int d = 0; d < c; d++)
            if (strcmp(s, mh_strerror(d)) == 0)
                FAIL("codes %d and %d share the text \"%s\"", d, c, s);
    }
}

TEST(strerror_unknown_codes)
{
    ASSERT_EQ_STR(mh_strerror(MH_STATUS_COUNT_), "unknown status");
    ASSERT_EQ_STR(mh_strerror(-1), "unknown status");
    ASSERT_EQ_STR(mh_strerror(100000), "unknown status");
}

TEST(status_names)
{
    static const char *const want[MH_STATUS_COUNT_] = {
        "MH_OK", "MH_ENOMEM", "MH_EINVAL", "MH_EBADNAME", "MH_ENOTFOUND",
        "MH_EABI", "MH_ENODESC", "MH_EINIT", "MH_ELOAD", "MH_ECYCLE",
        "MH_EIO", "MH_ENOSYM", "MH_EPATH", "MH_EFORMAT", "MH_EDEADLOCK",
        "MH_EVERSION", "MH_EAGAIN", "MH_ECALL", "MH_ECANCELED",
    };
    for (int c = 0; c < MH_STATUS_COUNT_; c++)
        ASSERT_EQ_STR(mh_status_name(c), want[c]);
    ASSERT_EQ_STR(mh_status_name(MH_STATUS_COUNT_), "MH_E?");
    ASSERT_EQ_STR(mh_status_name(-5), "MH_E?");
}

TEST(status_numbers_are_stable)
{
    ASSERT_EQ_INT(MH_OK, 0);
    ASSERT_EQ_INT(MH_ENOMEM, 1);
    ASSERT_EQ_INT(MH_ENOTFOUND, 4);
    ASSERT_EQ_INT(MH_EINIT, 7);
    ASSERT_EQ_INT(MH_EVERSION, 15);
    ASSERT_EQ_INT(MH_EAGAIN, 16);
    ASSERT_EQ_INT(MH_ECALL, 17);
    ASSERT_EQ_INT(MH_ECANCELED, 18);
    /* Codes are only ever added at the end. */
    ASSERT_EQ_INT(MH_STATUS_COUNT_, 19);
}

TEST(version_number_and_string)
{
    ASSERT_EQ_INT(mh_version(), MH_VERSION_NUMBER);
    ASSERT_EQ_STR(mh_version_string(), MH_VERSION_STRING);
    ASSERT_EQ_STR(MH_VERSION_STRING,
                  str_fmt("%d.%d.%d", MH_VERSION_MAJOR, MH_VERSION_MINOR,
                          MH_VERSION_PATCH));
}

TEST(check_version_matches)
{
    ASSERT_STATUS(MH_CHECK_VERSION(ERR), MH_OK);
    ASSERT_STATUS(MH_CHECK_VERSION(NULL), MH_OK);
}

TEST(check_version_wrong_struct_sizes)
{
    ASSERT_STATUS(mh_check_version_(MH_VERSION_NUMBER, sizeof(mh_config) + 8,
                                    sizeof(mh_host_api), sizeof(mh_plugin_desc),
                                    ERR),
                  MH_EVERSION);
    ASSERT_EQ_INT(ERR_CODE(), MH_EVERSION);
    ASSERT_TRUE(ERR_MSG()[0] != '\0');
    ASSERT_STATUS(mh_check_version_(MH_VERSION_NUMBER, sizeof(mh_config),
                                    sizeof(mh_host_api) - 8,
                                    sizeof(mh_plugin_desc), ERR),
                  MH_EVERSION);
    ASSERT_STATUS(mh_check_version_(MH_VERSION_NUMBER, sizeof(mh_config),
                                    sizeof(mh_host_api),
                                    sizeof(mh_plugin_desc) + 16, NULL),
                  MH_EVERSION);
}

TEST(check_version_other_major)
{
    ASSERT_STATUS(mh_check_version_(MH_VERSION_NUMBER + 10000, sizeof(mh_config),
                                    sizeof(mh_host_api), sizeof(mh_plugin_desc),
                                    ERR),
                  MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), MH_VERSION_STRING);
}

TEST(error_accessors_accept_null)
{
    ASSERT_EQ_INT(mh_error_code(NULL), MH_EINVAL);
    ASSERT_EQ_STR(mh_error_message(NULL), "");
    mh_error_free(NULL);
    mh_host_free(NULL);
}

TEST(error_object_carries_code_and_message)
{
    mh_host *host = host_new_isolated(tmp_mkdir("E"));
    mh_module *mod;

    ASSERT_STATUS(mh_import(host, "absent", &mod, ERR), MH_ENOTFOUND);
    ASSERT_EQ_INT(ERR_CODE(), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "absent");
    mh_host_free(host);
    /* The error outlives the host that made it. */
    ASSERT_CONTAINS(ERR_MSG(), "absent");
}

TEST(err_untouched_on_success)
{
    mh_host *host;
    mh_module *mod = NULL;
    mh_error *sentinel = (mh_error *)&sentinel, *err = sentinel;

    fixture_copy("counter", "E/counter.so");
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_import(host, "counter", &mod, &err), MH_OK);
    ASSERT_EQ_PTR(err, sentinel);
    ASSERT_STATUS(mh_name_check("fine.name", &err), MH_OK);
    ASSERT_EQ_PTR(err, sentinel);
    mh_host_free(host);
}

TEST(config_init_defaults)
{
    mh_config cfg;

    memset(&cfg, 0x5a, sizeof cfg);
    mh_config_init(&cfg);
    ASSERT_EQ_INT(cfg.size, sizeof(mh_config));
    ASSERT_EQ_INT(cfg.flags, 0);
    ASSERT_NULL(cfg.path);
    ASSERT_NULL(cfg.path_env);
    ASSERT_NULL(cfg.cache_dir);
    ASSERT_NULL(cfg.alloc);
    ASSERT_NULL(cfg.alloc_ud);
    ASSERT_NULL(cfg.log);
    ASSERT_NULL(cfg.log_ud);
    ASSERT_EQ_INT(cfg.max_module_size, 0);
    for (size_t i = 0; i < sizeof cfg.reserved / sizeof *cfg.reserved; i++)
        ASSERT_NULL(cfg.reserved[i]);
}

TEST(host_new_null_config)
{
    mh_host *host = NULL;

    ASSERT_STATUS(mh_host_new(NULL, &host, ERR), MH_OK);
    ASSERT_NOT_NULL(host);
    mh_host_free(host);
}

TEST(host_new_null_out_is_einval)
{
    mh_config cfg;

    mh_config_init(&cfg);
    ASSERT_STATUS(mh_host_new(&cfg, NULL, ERR), MH_EINVAL);
}

TEST(null_arguments_are_named)
{
    /* "mh_find: NULL argument" did not say which. */
    mh_host *host = host_new_isolated(NULL);
    mh_spec_info info = {.size = sizeof info};
    mh_module *m;
    ASSERT_STATUS(mh_find(host, NULL, &info, ERR), MH_EINVAL);
    ASSERT_EQ_STR(ERR_MSG(), "mh_find: name is NULL");
    ASSERT_STATUS(mh_find(host, "x", NULL, ERR), MH_EINVAL);
    ASSERT_EQ_STR(ERR_MSG(), "mh_find: info is NULL");
    ASSERT_STATUS(mh_import(NULL, "x", &m, ERR), MH_EINVAL);
    ASSERT_EQ_STR(ERR_MSG(), "mh_import: host is NULL");
    ASSERT_STATUS(mh_list(host, NULL, NULL, ERR), MH_EINVAL);
    ASSERT_EQ_STR(ERR_MSG(), "mh_list: fn is NULL");
    mh_entry_point ep = {0};
    ep.module = "x";
    ASSERT_STATUS(mh_entry_point_load(host, &ep, &m, NULL, ERR), MH_EINVAL);
    ASSERT_EQ_STR(ERR_MSG(), "mh_entry_point_load: ep->export_name is NULL");
    ASSERT_STATUS(mh_entry_point_load(host, NULL, &m, NULL, ERR), MH_EINVAL);
    ASSERT_EQ_STR(ERR_MSG(), "mh_entry_point_load: ep is NULL");
    const char *names[] = {"a", NULL};
    ASSERT_STATUS(mh_fetch(host, names, 2, NULL, NULL, NULL, ERR),
                  MH_EINVAL);
    ASSERT_EQ_STR(ERR_MSG(), "mh_fetch: names[1] is NULL");
    mh_host_free(host);
}

TEST(host_new_refuses_unknown_flags_and_unset_http_size)
{
    /* Both were taken silently: the flags ignored, the limits dropped. */
    mh_config cfg;
    mh_host *h = (mh_host *)1;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | 0x8000u;
    ASSERT_STATUS(mh_host_new(&cfg, &h, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "mh_config.flags: unknown flags 0x8000");
    ASSERT_NULL(h);
    mh_http_limits lim = {0};
    lim.max_redirects = 1;
    mh_config_init(&cfg);
    cfg.http = &lim;
    ASSERT_STATUS(mh_host_new(&cfg, &h, ERR), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), "mh_config.http->size is 0");
    lim.size = sizeof lim;
    cfg.flags = MH_CONFIG_KNOWN_;
    ASSERT_STATUS(mh_host_new(&cfg, &h, ERR), MH_OK);
    mh_host_free(h);
    /* A relative cache directory would follow the working directory:
     * bytecode written in one and looked for in the next. */
    const char *rel[] = {"mycache", "", "./c"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        mh_config_init(&cfg);
        cfg.cache_dir = rel[i];
        h = (mh_host *)1;
        ASSERT_STATUS(mh_host_new(&cfg, &h, ERR), MH_EPATH);
        ASSERT_CONTAINS(ERR_MSG(), str_fmt("mh_config.cache_dir must be an "
                                           "absolute path, not \"%s\"",
                                           rel[i]));
        ASSERT_NULL(h);
    }
}

TEST(cache_dir_from_config_or_xdg)
{
    mh_config cfg;
    mh_host *host;
    const char *mine = tmp_path("mycache");

    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.cache_dir = mine;
    host = host_new_cfg(&cfg);
    ASSERT_EQ_STR(mh_host_cache_dir(host), mine);
    mh_host_free(host);

    env_set("XDG_CACHE_HOME", tmp_path("xdg"));
    cfg.cache_dir = NULL;
    host = host_new_cfg(&cfg);
    ASSERT_EQ_STR(mh_host_cache_dir(host), tmp_path("xdg/modhost"));
    mh_host_free(host);

    /* Neither absolute: a path under /nonexistent, which the cache's
     * users refuse (as the header says). */
    env_set("XDG_CACHE_HOME", "relative/xdg");
    env_set("HOME", "");
    host = host_new_cfg(&cfg);
    ASSERT_EQ_STR(mh_host_cache_dir(host), "/nonexistent/modhost-cache");
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(host, -1, &u, ERR), MH_EPATH);
    mh_host_free(host);
}

/* ------------------------------------------------------------ allocator */

static int list_count(void *ud, const mh_spec_info *info)
{
    (void)info;
    (*(int *)ud)++;
    return 0;
}

TEST(allocator_hook_used_and_balanced)
{
    alloc_tracker at;
    mh_config cfg;
    mh_host *host;
    mh_module *mod;
    mh_spec_info info = {.size = sizeof info};
    int listed = 0;

    fixture_copy("counter", "E/counter.so");
    fixture_copy("counter", "E/pkg/sub/mod.so");
    fixture_copy("init_fails", "E/refuser.so");
    alloc_tracker_init(&at);
    cfg = tracked_config(&at, tmp_path("E"));
    host = host_new_cfg(&cfg);
    ASSERT_TRUE(at.calls > 0);
    import_ok(host, "counter");
    import_ok(host, "pkg.sub.mod");
    ASSERT_STATUS(mh_import(host, "refuser", &mod, ERR), MH_EINIT);
    ASSERT_STATUS(mh_import(host, "absent", &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_find(host, "counter", &info, ERR), MH_OK);
    ASSERT_STATUS(mh_list(host, list_count, &listed, ERR), MH_OK);
    for (int i = 0; i < 2000; i++)
        ASSERT_NOT_NULL(mh_intern(host, str_fmt("s%d", i)));
    mh_invalidate_caches(host);
    ASSERT_TRUE(at.outstanding > 0);
    mh_host_free(host);
    test_err_slot(); /* free the last error too */
    ASSERT_EQ_INT(at.outstanding, 0);
    ASSERT_EQ_INT(at.blocks, 0);
    alloc_tracker_destroy(&at);
}

TEST(plugin_memory_goes_through_hook)
{
    alloc_tracker at;
    mh_config cfg;
    mh_host *host;
    mh_module *mod;
    size_t before;
    void *(*userdata)(void);
    unsigned char *block;

    fixture_copy("host_api", "E/apitest.so");
    alloc_tracker_init(&at);
    cfg = tracked_config(&at, tmp_path("E"));
    host = host_new_cfg(&cfg);
    mod = import_ok(host, "apitest");
    userdata = (void *(*)(void))symbol_ok(mod, "userdata");
    block = userdata();
    ASSERT_NOT_NULL(block);
    ASSERT_EQ_INT(block[0], 0xab);
    ASSERT_EQ_INT(block[99], 0xab);
    /* The block is one of the tracker's (its header checks out when the
     * plugin frees it with the same size in fini). */
    before = at.blocks;
    ASSERT_TRUE(before > 0);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    ASSERT_EQ_INT(at.blocks, 0);
    alloc_tracker_destroy(&at);
}

/*
 * Fault injection: fail the n-th allocation request (and every later one,
 * or only that one), for n = 1, 2, ... until a run completes without the
 * fault firing.  A run creates a host and goes through a script of
 * operations, successful and failing ones; each must give its expected
 * status or MH_ENOMEM -- never a crash, another code, or a leak.  With a
 * one-off fault, an operation that got MH_ENOMEM is retried and must now
 * succeed: a failed operation leaves nothing behind.
 */
static int fault_ok(mh_status st, mh_status want, const mh_error *err)
{
    if (st == want || st == MH_ENOMEM)
        return 1;
    /* A plugin whose nested import ran out of memory refuses its init. */
    return st == MH_EINIT && strstr(mh_error_message(err), "memory") != NULL;
}

static int count_cb(void *ud, const mh_spec_info *info)
{
    (void)info;
    (*(int *)ud)++;
    return 0;
}

/* Step i of the script; returns its status, checks what it produced. */
static mh_status fault_step(mh_host *host, int i, long n, mh_error **err)
{
    mh_module *mod = NULL;
    mh_spec_info info = {.size = sizeof info};
    mh_status st;
    int listed = 0;

    switch (i) {
    case 0:
        st = mh_import(host, "mod", &mod, err);
        if (st == MH_OK && call_int(mod, "value") != 42)
            FAIL("n=%ld: imported module is broken", n);
        return st;
    case 1:
        return mh_import(host, "absent", &mod, err);
    case 2:
        return mh_import(host, "refuser", &mod, err);
    case 3:
        st = mh_import(host, "top", &mod, err);
        if (st == MH_OK && call_int(mod, "dep_value") != 42)
            FAIL("n=%ld: nested import is broken", n);
        return st;
    case 4:
        st = mh_find(host, "mod", &info, err);
        if (st == MH_OK && strcmp(info.name, "mod") != 0)
            FAIL("n=%ld: mh_find gave name '%s'", n, info.name);
        return st;
    case 5:
        st = mh_list(host, count_cb, &listed, err);
        if (st == MH_OK && listed < 4)
            FAIL("n=%ld: mh_list reported %d modules", n, listed);
        return st;
    case 6:
        st = mh_import_ex(host, "plain", MH_IMPORT_PLAIN, &mod, err);
        if (st == MH_OK && call_int(mod, "plain_answer") != 42)
            FAIL("n=%ld: plain module is broken", n);
        return st;
    case 7:
        for (int k = 0; k < 1000; k++) {
            char name[32];
            const char *s;
            snprintf(name, sizeof name, "fault.%d", k);
            s = mh_intern(host, name);
            if (s == NULL)
                return MH_ENOMEM;
            if (strcmp(s, name) != 0)
                FAIL("n=%ld: interned string corrupted", n);
        }
        return MH_OK;
    case 8:
        return mh_host_add_path(host, tmp_path("E2"), (size_t)-1, err);
    case 9:
        return mh_import(host, "late", &mod, err);
    }
    return MH_EINVAL;
}

static const mh_status fault_want[] = {
    MH_OK, MH_ENOTFOUND, MH_EINIT, MH_OK, MH_OK,
    MH_OK, MH_OK, MH_OK, MH_OK, MH_OK,
};
#define FAULT_STEPS ((int)(sizeof fault_want / sizeof fault_want[0]))

/* One run; returns whether the fault fired. */
static int fault_run(long n, int once, const char *dir)
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
    cfg = tracked_config(&at, dir);
    st = mh_host_new(&cfg, &host, &err);
    if (st != MH_OK) {
        if (st != MH_ENOMEM)
            FAIL("n=%ld: mh_host_new: %s: %s", n, mh_status_name(st),
                 mh_error_message(err));
        if (host != NULL)
            FAIL("n=%ld: failed mh_host_new left *out set", n);
    } else {
        for (int i = 0; i < FAULT_STEPS; i++) {
            mh_error_free(err);
            err = NULL;
            st = fault_step(host, i, n, &err);
            /* Even an error made without memory carries the status
             * (step 7, mh_intern, says NULL and makes none). */
            if (st != MH_OK && i != 7 &&
                (!err || mh_error_code(err) != st))
                FAIL("n=%ld (%s): step %d returned %s, its error says %s: "
                     "%s", n, once ? "once" : "persistent", i,
                     mh_status_name(st),
                     err ? mh_status_name(mh_error_code(err)) : "(none)",
                     mh_error_message(err));
            if (!fault_ok(st, fault_want[i], err))
                FAIL("n=%ld (%s): step %d: got %s, expected %s: %s", n,
                     once ? "once" : "persistent", i, mh_status_name(st),
                     mh_status_name(fault_want[i]), mh_error_message(err));
            if (st != fault_want[i] && once) {
                mh_error_free(err);
                err = NULL;
                st = fault_step(host, i, n, &err);
                if (st != fault_want[i])
                    FAIL("n=%ld: step %d retried after ENOMEM: got %s, "
                         "expected %s: %s", n, i, mh_status_name(st),
                         mh_status_name(fault_want[i]), mh_error_message(err));
            }
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

static void fault_loop(int once)
{
    const char *dir = tmp_mkdir("E");
    long n = 1;

    fixture_copy("fini_order", "E/mod.so"); /* no sleep in its init */
    fixture_copy("init_fails", "E/refuser.so");
    fixture_copy("importer", "E/top.so");
    fixture_copy("no_desc", "E/plain.so");
    fixture_copy("counter", "E2/late.so");
    env_set("MH_FIXTURE_IMPORT", "mod");
    while (fault_run(n, once, dir)) {
        if (++n > 100000)
            FAIL("fault injection did not converge");
    }
    ASSERT_TRUE(n > 2); /* the library did allocate */
    printf("fault injection (%s): %ld runs\n", once ? "once" : "persistent", n);
}

TEST(alloc_failure_every_point_persistent)
{
    fault_loop(0);
}

TEST(alloc_failure_every_point_once)
{
    fault_loop(1);
}

/* An error that cannot be allocated still carries the call's status, not
 * MH_ENOMEM: what the call returned and mh_error_code() agree. */
TEST(error_without_memory_keeps_the_status)
{
    const char *dir = tmp_mkdir("N");
    alloc_tracker at;
    mh_host *host = NULL;
    mh_module *mod = NULL;
    mh_error *err = NULL;
    void *sym = NULL;

    fixture_copy("counter", "N/mod.so");
    alloc_tracker_init(&at);
    mh_config cfg = tracked_config(&at, dir);
    ASSERT_STATUS(mh_host_new(&cfg, &host, &err), MH_OK);
    ASSERT_STATUS(mh_import(host, "mod", &mod, &err), MH_OK);
    pthread_mutex_lock(&at.mu);
    at.fail_at = (long)at.requests + 1; /* every request from now on */
    pthread_mutex_unlock(&at.mu);
    mh_status st = mh_module_symbol_ex(mod, "no_such_export", &sym, &err);
    ASSERT_EQ_INT(st, MH_ENOSYM);
    ASSERT_TRUE(at.injected > 0); /* the error's allocation did fail */
    ASSERT_EQ_INT(mh_error_code(err), MH_ENOSYM);
    ASSERT_EQ_STR(mh_error_message(err),
                  "no memory left to describe the error");
    mh_error_free(err); /* a static one: nothing to free, no crash */
    err = NULL;
    pthread_mutex_lock(&at.mu);
    at.fail_at = 0;
    pthread_mutex_unlock(&at.mu);
    st = mh_module_symbol_ex(mod, "no_such_export", &sym, &err);
    ASSERT_EQ_INT(st, MH_ENOSYM);
    ASSERT_CONTAINS(mh_error_message(err), "no_such_export");
    mh_error_free(err);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
}

/* ------------------------------------------------- log hook, host API */

TEST(set_error_from_a_thread_racing_the_init_return)
{
    /* The init's thread keeps calling set_error (each call formats 1 MiB)
     * while the init returns and the module is published, which frees
     * the in-flight block the message lived in: a call must either land
     * before that or do nothing (under ASan, a write into the freed block
     * fails here).  The module loads, without the messages. */
    fixture_copy("late_error", "E/late.so");
    for (int round = 0; round < 3; round++) {
        mh_host *host = host_new_isolated(tmp_path("E"));
        mh_module *mod = import_ok(host, "late");
        ASSERT_TRUE(call_int(mod, "stop") >= 2);
        ASSERT_EQ_INT(call_int(mod, "value"), 9);
        mh_host_free(host);
    }
}

TEST(plugin_log_reaches_hook_with_module_name)
{
    log_capture lc;
    mh_config cfg;
    mh_host *host;

    fixture_copy("host_api", "E/apitest.so");
    log_capture_init(&lc);
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = tmp_path("E");
    cfg.log = log_capture_fn;
    cfg.log_ud = &lc;
    host = host_new_cfg(&cfg);
    import_ok(host, "apitest");
    if (log_capture_count(&lc, MH_LOG_WARN, "host_api fixture says hello 42") != 1)
        FAIL("formatted plugin warning missing; log:%s", log_capture_dump(&lc));
    if (log_capture_count(&lc, MH_LOG_WARN, "apitest") == 0)
        FAIL("plugin warning not tagged with the module name; log:%s",
             log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A log hook that calls its host back, once: what each call returned. */
typedef struct reentry {
    mh_host *host;
    const char *on;        /* the message that sets it off */
    const char *dir;       /* an entry to add */
    int fired;
    mh_status add, find, imp, list, meta;
    char add_msg[512], imp_msg[512];
} reentry;

static int list_none(void *ud, const mh_spec_info *info)
{
    (void)ud;
    (void)info;
    return 0;
}

static mh_status none_find(mh_finder_ctx *cx, void *st, const char *name,
                           mh_finder_spec *spec)
{
    (void)cx;
    (void)st;
    (void)name;
    (void)spec;
    return MH_ENOTFOUND;
}

static const mh_finder_class none_class = {
    MH_FINDER_CLASS_INIT, .name = "none", .find = none_find};

static void reentry_hook(void *ud, mh_log_level level, const char *msg)
{
    reentry *r = ud;
    (void)level;
    if (!r->host || r->fired || !strstr(msg, r->on))
        return;
    r->fired = 1;
    mh_error *e = NULL;
    r->add = mh_host_add_path(r->host, r->dir, (size_t)-1, &e);
    snprintf(r->add_msg, sizeof r->add_msg, "%s", mh_error_message(e));
    mh_error_free(e);
    e = NULL;
    mh_spec_info info = {.size = sizeof info};
    r->find = mh_find(r->host, "counter", &info, NULL);
    mh_invalidate_caches(r->host); /* void: it must return */
    mh_module *m;
    r->imp = mh_import(r->host, "counter", &m, &e);
    snprintf(r->imp_msg, sizeof r->imp_msg, "%s", mh_error_message(e));
    mh_error_free(e);
    r->list = mh_list(r->host, list_none, NULL, NULL);
    r->meta = mh_host_add_meta_finder(r->host, &none_class, NULL,
                                      MH_CHAIN_LAST, NULL, NULL);
    mh_host_free(r->host); /* ignored: not from the hook */
}

/* r->host: an isolated host on path, whose log hook is reentry_hook. */
static void reentry_host(reentry *r, const char *path)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = path;
    cfg.log = reentry_hook;
    cfg.log_ud = r;
    r->dir = tmp_mkdir("more");
    r->host = host_new_cfg(&cfg);
}

TEST(log_hook_calling_its_host_is_refused_not_hung)
{
    /* The hook may run while the host holds its locks (here: a warning
     * about an entry no finder takes, logged during the walk).  Calls
     * that would wait for them hung for ever; they are refused. */
    fixture_copy("counter", "E/counter.so");
    reentry r = {.on = "skipped"};
    reentry_host(&r, str_fmt("nosuchscheme:x;%s", tmp_path("E")));
    ASSERT_EQ_INT(call_int(import_ok(r.host, "counter"), "value"), 42);
    ASSERT_EQ_INT(r.fired, 1);
    ASSERT_STATUS(r.add, MH_EINVAL);
    ASSERT_CONTAINS(r.add_msg, "mh_host_add_path: called from the host's log "
                               "hook");
    ASSERT_STATUS(r.find, MH_EINVAL);
    ASSERT_STATUS(r.imp, MH_EINVAL);
    ASSERT_CONTAINS(r.imp_msg, "mh_import: called from the host's log hook");
    ASSERT_STATUS(r.list, MH_EINVAL);
    ASSERT_STATUS(r.meta, MH_EINVAL);
    ASSERT_EQ_INT(mh_host_path_count(r.host), 2); /* nothing was added */
    mh_host_free(r.host);
}

/* On "moved", reads the path: the calls the header says work. */
static void path_reading_hook(void *ud, mh_log_level level, const char *msg)
{
    reentry *r = ud;
    (void)level;
    if (!r->host || !strstr(msg, r->on))
        return;
    const char *text = NULL;
    r->fired += (int)mh_host_path_count(r->host);
    r->find = mh_host_path_entry(r->host, 0, &text, NULL, NULL);
}

TEST(log_hook_reading_the_path_of_an_entry_moved)
{
    /* The "moved" trace ran under the path's write lock: a hook reading
     * the path took the read lock (EDEADLK, ignored) and then unlocked
     * the writer's, and the next mh_host_add_path hung. */
    const char *a = tmp_mkdir("A"), *b = tmp_mkdir("B"), *c = tmp_mkdir("C");
    reentry r = {.on = "moved from entry"};
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH |
                MH_CONFIG_VERBOSE;
    cfg.path = str_fmt("%s;%s", a, b);
    cfg.log = path_reading_hook;
    cfg.log_ud = &r;
    r.host = host_new_cfg(&cfg);
    ASSERT_STATUS(mh_host_add_path(r.host, b, 0, ERR), MH_OK);
    ASSERT_STATUS(mh_host_add_path(r.host, a, 0, ERR), MH_OK);
    ASSERT_EQ_INT(r.fired, 4); /* two entries, twice */
    ASSERT_STATUS(r.find, MH_OK);
    ASSERT_STATUS(mh_host_add_path(r.host, c, 0, ERR), MH_OK);
    ASSERT_EQ_INT(mh_host_path_count(r.host), 3);
    mh_host_free(r.host);
}

TEST(log_hook_calling_its_host_during_free_is_refused)
{
    /* A plugin's fini logs while the host is being freed: its finders
     * are closed by then, and a find from the hook crashed on one. */
    fixture_copy("host_api", "E/apitest.so");
    reentry r = {.on = "host_api fixture: fini"};
    reentry_host(&r, tmp_path("E"));
    import_ok(r.host, "apitest");
    mh_host_free(r.host);
    ASSERT_EQ_INT(r.fired, 1);
    ASSERT_STATUS(r.add, MH_EINVAL);
    ASSERT_CONTAINS(r.add_msg, "the host is being freed");
    ASSERT_STATUS(r.find, MH_EINVAL);
    ASSERT_STATUS(r.imp, MH_EINVAL);
    ASSERT_STATUS(r.list, MH_EINVAL);
}

/* On r->on, once: reads entry 1 of the path, as the header says the hook
 * may. */
static void entry_reading_hook(void *ud, mh_log_level level, const char *msg)
{
    reentry *r = ud;
    (void)level;
    if (!r->host || r->fired || !strstr(msg, r->on))
        return;
    r->fired = 1;
    const char *text = NULL;
    r->find = mh_host_path_entry(r->host, 1, &text, NULL, NULL);
}

TEST(log_hook_reading_an_entry_the_notifier_traces_for_does_not_hang)
{
    /* The notifier traced "not there to watch" under its lock; the hook
     * read entry 1, which opened it, and the open took that lock again:
     * the thread waited for itself for ever.  Nothing is opened from the
     * hook now, and the entry opens at the next walk. */
    fixture_copy("counter", "E/counter.so");
    alarm(test_case_timeout_s());
    reentry r = {.on = "is not there to watch"};
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH |
                MH_CONFIG_VERBOSE;
    cfg.path = str_fmt("%s;%s", tmp_path("no/such/dir"), tmp_path("E"));
    cfg.log = entry_reading_hook;
    cfg.log_ud = &r;
    r.host = host_new_cfg(&cfg);
    ASSERT_EQ_INT(call_int(import_ok(r.host, "counter"), "value"), 42);
    alarm(0);
    ASSERT_EQ_INT(r.fired, 1);
    ASSERT_STATUS(r.find, MH_OK);
    mh_host_free(r.host);
}

static int free_from_list(void *ud, const mh_spec_info *info)
{
    (void)info;
    mh_host_free(ud);
    return 0;
}

TEST(host_free_from_a_callback_of_a_call_is_refused)
{
    /* mh_host_free from mh_list's callback freed the list under the
     * call (a use after free); it is refused, said, and the host works
     * on, until it is freed after the call. */
    fixture_copy("counter", "E/counter.so");
    fixture_copy("answer7", "E/answer7.so");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = host_new_opts(&(host_opts){.log = &lc}, tmp_path("E"));
    ASSERT_STATUS(mh_list(h, free_from_list, h, ERR), MH_OK);
    ASSERT_LOG(&lc, MH_LOG_ERROR, "mh_host_free: called from inside a call "
                                  "into the host");
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    mh_host_free(h);
    log_capture_free(&lc);
}

/* The stress_hook fixture's init and fini call these back: what each
 * does with the host (the_host) is set by the case. */
static mh_host *the_host;
static enum { DO_NOTHING, DO_FREE, DO_READ_ENTRY } at_init, at_fini;
static int fini_calls;
static mh_status fini_entry_rc = MH_EINVAL;

static void act_on_host(int what)
{
    if (what == DO_FREE) {
        mh_host_free(the_host);
    } else if (what == DO_READ_ENTRY) {
        const char *text = NULL, *finder = "unset";
        fini_entry_rc = mh_host_path_entry(the_host, 1, &text, NULL,
                                           &finder);
        if (finder)
            fini_entry_rc = MH_EINVAL; /* opened while it is freed */
    }
}

static int init_hook(const char *name, const char **next, char *why,
                     size_t size)
{
    (void)name;
    (void)next;
    (void)why;
    (void)size;
    act_on_host(at_init);
    return 0;
}

static int fini_hook(const char *name, const char **next, char *why,
                     size_t size)
{
    (void)name;
    (void)next;
    (void)why;
    (void)size;
    fini_calls++;
    act_on_host(at_fini);
    return 0;
}

/* the_host: a host on tmp/E, which holds the stress_hook fixture as
 * "freer", imported; its init and fini do what at_init and at_fini say. */
static void freer_host(log_capture *lc)
{
    fixture_copy("stress_hook", "E/freer.so");
    env_set("MH_STRESS_HOOK", str_fmt("%" PRIxPTR, (uintptr_t)init_hook));
    env_set("MH_STRESS_HOOK_FINI", str_fmt("%" PRIxPTR,
                                           (uintptr_t)fini_hook));
    the_host = host_new_opts(&(host_opts){.log = lc}, tmp_path("E"));
    import_ok(the_host, "freer");
}

TEST(host_free_from_a_modules_init_is_refused)
{
    /* The same from a module's init: the import went on in freed
     * memory. */
    log_capture lc;
    log_capture_init(&lc);
    at_init = DO_FREE;
    freer_host(&lc);
    ASSERT_LOG(&lc, MH_LOG_ERROR, "mh_host_free: called from inside a call "
                                  "into the host");
    mh_host_free(the_host);
    log_capture_free(&lc);
}

TEST(host_free_from_a_modules_fini_returns_at_once)
{
    /* A fini that frees its host (which is being freed) ran the fini
     * again, without end, until the stack ran out. */
    at_fini = DO_FREE;
    freer_host(NULL);
    mh_host_free(the_host);
    ASSERT_EQ_INT(fini_calls, 1);
}

TEST(entry_read_from_a_fini_is_not_opened_while_the_host_is_freed)
{
    /* An entry no walk had opened was opened from a fini, after the
     * host had closed its entries: the instance was never closed (a
     * leak), and finder code ran during teardown. */
    at_fini = DO_READ_ENTRY;
    freer_host(NULL);
    ASSERT_STATUS(mh_host_add_path(the_host, tmp_mkdir("later"), (size_t)-1,
                                   ERR), MH_OK);
    mh_host_free(the_host);
    ASSERT_STATUS(fini_entry_rc, MH_OK);
}

static jmp_buf out_of_list;

static int leave_by_longjmp(void *ud, const mh_spec_info *info)
{
    (void)ud;
    (void)info;
    longjmp(out_of_list, 1);
}

/* mh_list, left by a longjmp from its callback (as an application's own
 * Lua raising an error there would), at one frame deeper than this one:
 * the frame of a later call is not the same as the list's. */
/* LeakSanitizer's switch, in an ASan build: what the list had allocated
 * when it was left is lost, as a longjmp out of any C call loses it. */
extern void __lsan_disable(void) __attribute__((weak));
extern void __lsan_enable(void) __attribute__((weak));

static __attribute__((noinline)) void list_and_jump(mh_host *h)
{
    if (__lsan_disable)
        __lsan_disable();
    if (setjmp(out_of_list) == 0)
        mh_list(h, leave_by_longjmp, NULL, NULL);
    if (__lsan_enable)
        __lsan_enable();
}

TEST(host_left_by_a_longjmp_from_a_callback_can_still_be_freed)
{
    /* The count of calls in progress dropped only when a call returned:
     * after a longjmp out of a callback, every later mh_host_free on the
     * thread was refused (the finis never ran, the host leaked). */
    if (RUNNING_ON_VALGRIND)
        SKIP("the list's memory is lost by the longjmp, which memcheck "
             "rightly reports");
    log_capture lc;
    log_capture_init(&lc);
    freer_host(&lc);
    list_and_jump(the_host);
    mh_host_free(the_host);
    ASSERT_EQ_INT(fini_calls, 1);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_ERROR, "mh_host_free"), 0);
    log_capture_free(&lc);
}

TEST(host_api_table_as_plugin_sees_it)
{
    mh_host *host;
    mh_module *mod;
    const mh_host_api *(*table)(void);
    const mh_host_api *api;

    fixture_copy("host_api", "E/apitest.so");
    host = host_new_isolated(tmp_path("E"));
    mod = import_ok(host, "apitest");
    table = (const mh_host_api *(*)(void))symbol_ok(mod, "api_table");
    api = table();
    ASSERT_NOT_NULL(api);
    ASSERT_EQ_INT(api->abi_version, MH_PLUGIN_ABI_VERSION);
    ASSERT_EQ_INT(api->size, sizeof(mh_host_api));
    ASSERT_EQ_STR(api->host_version, MH_VERSION_STRING);
    ASSERT_TRUE(MH_API_HAS(api, name));
    ASSERT_NOT_NULL(api->log);
    ASSERT_NOT_NULL(api->set_error);
    ASSERT_NOT_NULL(api->alloc);
    ASSERT_NOT_NULL(api->free);
    ASSERT_NOT_NULL(api->intern);
    ASSERT_NOT_NULL(api->import_symbol);
    ASSERT_NOT_NULL(api->set_userdata);
    ASSERT_NOT_NULL(api->get_userdata);
    ASSERT_NOT_NULL(api->name);
    ASSERT_EQ_STR(mh_module_version(mod), "2.5");
    mh_host_free(host);
}

TEST(plugin_intern_and_name_match_host)
{
    mh_host *host;
    mh_module *mod;
    const char *(*interned)(void);
    const char *(*self_name)(void);

    fixture_copy("host_api", "E/pkg/apitest.so");
    host = host_new_isolated(tmp_path("E"));
    mod = import_ok(host, "pkg.apitest");
    interned = (const char *(*)(void))symbol_ok(mod, "interned");
    self_name = (const char *(*)(void))symbol_ok(mod, "self_name");
    ASSERT_EQ_STR(interned(), "fixture.interned.string");
    ASSERT_EQ_PTR(interned(), mh_intern_lookup(host, "fixture.interned.string"));
    ASSERT_EQ_STR(self_name(), "pkg.apitest");
    ASSERT_EQ_PTR(self_name(), mh_module_name(mod));
    mh_host_free(host);
}
