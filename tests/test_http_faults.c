/*
 * test_http_faults.c -- the HTTP finder against every fault the issue
 * lists, served by tests/http/server.py on 127.0.0.1 (its fault modes are
 * picked by the first path segment: /hang-mod/, /trunc-mod/, ...): a
 * server that never answers or drips, truncated, oversized, endless and
 * gzip-bomb bodies, redirects to another origin or in a loop, bytes that
 * do not match the index, and index.json broken every way.  Each must end
 * in an error or a warning that names the URL, soon, with nothing loaded,
 * nothing cached and no partial file left in the cache.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

/* -------------------------------------------------------- slow servers */

TEST(hanging_index_is_not_asked_again_at_once)
{
    /* Down, with no index cached to stand in: the next finds within a
     * few seconds -- imports of modules that live in later entries, say
     * -- do not each wait out the timeout again.  They say why, and
     * mh_invalidate_caches means "look again" at once. */
    http_server *srv = http_start(http_site(NULL), NULL);
    mh_http_limits lim = http_limits();
    log_capture lc;
    mh_config cfg;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    lim.timeout_ms = 1500;
    cfg = http_cfg(http_url(srv, "hang/"), &lc);
    cfg.http = &lim;
    host = host_new_cfg(&cfg);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_import(host, "answer7", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "hang/index.json"));
    ASSERT_CONTAINS(ERR_MSG(), "asked again after");
    ASSERT_REQUESTS(srv, "/hang/index.json", 1);
    mh_invalidate_caches(host);
    ASSERT_STATUS(mh_import(host, "answer7", &mod, ERR), MH_ENOTFOUND);
    ASSERT_REQUESTS(srv, "/hang/index.json", 2);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* A Lua module whose download hangs: its bytes are read before the
 * host's Lua lock is taken, so the Lua modules already loaded go on
 * being called meanwhile.  The download held the lock: every Lua call and
 * require of the host waited out the transfer's timeout. */
struct lua_dl {
    mh_host *host;
    mh_status st;
    atomic_bool done;
};

static void *lua_dl_import(void *ud)
{
    struct lua_dl *d = ud;
    mh_module *mod = NULL;
    mh_error *e = NULL;
    d->st = mh_import(d->host, "slow", &mod, &e);
    mh_error_free(e);
    atomic_store(&d->done, true);
    return NULL;
}

TEST(lua_module_download_does_not_stall_lua_calls)
{
    const char *www = http_site(NULL);
    const char *loc = tmp_mkdir("loc");
    mh_http_limits lim = http_limits();
    log_capture lc;
    pthread_t t;

    file_write(str_fmt("%s/slow.lua", www),
               "return { v = function() return 1 end }\n");
    http_index_dir(www, NULL);
    file_write(str_fmt("%s/fast.lua", loc),
               "return { f = function() return 'fast' end }\n");
    http_server *srv = http_start(www, NULL);
    log_capture_init(&lc);
    lim.timeout_ms = 10000;
    mh_config cfg = http_cfg(str_fmt("%s;%s", loc,
                                     http_url(srv, "hang-mod/")), &lc);
    cfg.http = &lim;
    mh_host *host = host_new_cfg(&cfg);
    mh_module *fast = import_ok(host, "fast");
    struct lua_dl d = {.host = host, .st = MH_OK};
    atomic_init(&d.done, false);
    ASSERT_EQ_INT(pthread_create(&t, NULL, lua_dl_import, &d), 0);
    for (int i = 0; i < 1000 && !http_requests(srv, "/hang-mod/slow.lua");
         i++)
        usleep(10000);
    ASSERT_REQUESTS(srv, "/hang-mod/slow.lua", 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ASSERT_EQ_STR(call_ok(fast, "f", NULL), "\"fast\"");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) +
                  (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    /* A call takes microseconds; waiting out the download, its 10 s. */
    if (atomic_load(&d.done) || took > 5.0)
        FAIL("the call waited for the download (%.1f s)", took);
    http_stop(srv); /* the download fails now */
    pthread_join(t, NULL);
    ASSERT_TRUE(d.st != MH_OK);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A host of srv's /switch/ with the index held (counter imported), the
 * server then answering as mode, and the next find to revalidate.  The
 * transfer timeout is timeout_ms (0: the default). */
static mh_host *index_held_then(http_server *srv, const char *mode,
                                long timeout_ms, log_capture *lc)
{
    mh_http_limits lim = http_limits();
    if (timeout_ms)
        lim.timeout_ms = timeout_ms;
    mh_config cfg = http_cfg(http_url(srv, "switch/"), lc);
    cfg.http = &lim;
    mh_host *host = host_new_cfg(&cfg);
    import_ok(host, "counter");
    http_set_mode(srv, mode);
    mh_invalidate_caches(host); /* revalidate at the next find */
    return host;
}

TEST(hanging_server_with_an_index_held_is_not_asked_at_every_find)
{
    /* The index held, the server hanging on its revalidation past the
     * few seconds it is then left alone: the wait was counted from
     * before the request, so it was over when the timeout came, and every
     * find after it waited out the timeout again (holding the entry).  It
     * is counted from the failure, and after a slow one lasts four times
     * what the request took. */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_spec_info info = {.size = sizeof info};

    log_capture_init(&lc);
    mh_host *host = index_held_then(srv, "hang", 5500, &lc);
    ASSERT_STATUS(mh_find(host, "answer7", &info, ERR), MH_OK);
    ASSERT_REQUESTS(srv, "/switch/index.json", 2);
    ASSERT_LOG(&lc, MH_LOG_WARN, "using the cached index");
    ASSERT_STATUS(mh_find(host, "answer7", &info, ERR), MH_OK);
    ASSERT_STATUS(mh_find(host, "counter", &info, ERR), MH_OK);
    ASSERT_REQUESTS(srv, "/switch/index.json", 2);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(an_outage_is_warned_of_once_though_its_timings_change)
{
    /* "One warning" per cause: libcurl's text of a timeout counts the
     * milliseconds it waited, another number at every try, and each try
     * warned again. */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_spec_info info = {.size = sizeof info};

    log_capture_init(&lc);
    mh_host *host = index_held_then(srv, "hang", 1000, &lc);
    ASSERT_STATUS(mh_find(host, "answer7", &info, ERR), MH_OK);
    /* Finds until the wait after the slow failure (5 s, or four times
     * what it took) has passed and the index was asked for again. */
    for (int i = 0; i < 60 && http_requests(srv, "/switch/index.json") < 3;
         i++) {
        usleep(500 * 1000);
        ASSERT_STATUS(mh_find(host, "answer7", &info, ERR), MH_OK);
    }
    ASSERT_REQUESTS(srv, "/switch/index.json", 3);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "unavailable"), 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(a_garbled_answer_is_an_outage_not_a_refusal)
{
    /* Bytes that are no HTTP response (a server restarting, a broken
     * balancer: libcurl's "weird server reply") were taken for a definite
     * "no", as a 404 is: the cached index was deleted and the entry
     * served nothing.  It is an outage: the cached index serves on. */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_spec_info info = {.size = sizeof info};

    log_capture_init(&lc);
    mh_host *host = index_held_then(srv, "garbled", 0, &lc);
    ASSERT_STATUS(mh_find(host, "answer7", &info, ERR), MH_OK);
    ASSERT_REQUESTS(srv, "GET /switch/index.json garbled", 1);
    ASSERT_LOG(&lc, MH_LOG_WARN, "using the cached index");
    mh_host_free(host);
    /* and a new host finds the cached index still there */
    mh_config cfg = http_cfg(http_url(srv, "switch/"), &lc);
    host = host_new_cfg(&cfg);
    ASSERT_STATUS(mh_find(host, "answer7", &info, ERR), MH_OK);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(hanging_module_times_out)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    mh_http_limits lim = http_limits();
    log_capture lc;
    mh_config cfg;
    mh_host *host;
    long long t0;

    log_capture_init(&lc);
    lim.timeout_ms = 1500;
    cfg = http_cfg(http_url(srv, "hang-mod/"), &lc);
    cfg.http = &lim;
    host = host_new_cfg(&cfg);
    t0 = clock_ms();
    import_fails(host, "counter");
    if (clock_ms() - t0 > 4000)
        FAIL("the import took %lld ms with a 1500 ms timeout", clock_ms() - t0);
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "hang-mod/counter.so"));
    if (!strcasestr(ERR_MSG(), "timeout") && !strcasestr(ERR_MSG(), "timed out"))
        FAIL("the message does not mention the timeout: \"%s\"", ERR_MSG());
    ASSERT_EQ_INT(http_blob_count(), 0);
    http_assert_cache_clean();
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(hanging_index_times_out)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    mh_http_limits lim = http_limits();
    log_capture lc;
    mh_config cfg;
    mh_host *host;
    mh_module *mod;
    long long t0;

    log_capture_init(&lc);
    lim.timeout_ms = 1500;
    cfg = http_cfg(http_url(srv, "hang/"), &lc);
    cfg.http = &lim;
    host = host_new_cfg(&cfg);
    t0 = clock_ms();
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    if (clock_ms() - t0 > 4000)
        FAIL("the import took %lld ms with a 1500 ms timeout", clock_ms() - t0);
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "hang/index.json"));
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(dripping_module_is_too_slow)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    mh_http_limits lim = http_limits();
    log_capture lc;
    mh_config cfg;
    mh_host *host;
    long long t0;

    log_capture_init(&lc);
    lim.low_speed_bytes = 100;
    lim.low_speed_seconds = 2;
    cfg = http_cfg(http_url(srv, "drip-mod/"), &lc);
    cfg.http = &lim;
    host = host_new_cfg(&cfg);
    t0 = clock_ms();
    import_fails(host, "counter");
    if (clock_ms() - t0 > 8000)
        FAIL("the import took %lld ms; the low-speed limit is 100 B/s "
             "over 2 s", clock_ms() - t0);
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "drip-mod/counter.so"));
    ASSERT_EQ_INT(http_blob_count(), 0);
    http_assert_cache_clean();
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* ------------------------------------------------------------ bad bodies */

TEST(truncated_module_fails)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "trunc-mod/"), &lc);
    import_fails(host, "counter");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "trunc-mod/counter.so"));
    ASSERT_EQ_INT(http_blob_count(), 0);
    http_assert_cache_clean();
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(truncated_index_body_skips_entry)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "trunc/"), &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "trunc/index.json"));
    ASSERT_REQUESTS(srv, "/trunc/counter.so", 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* Import counter from MODE-mod with max_module_size limit: it must fail
 * soon, name the URL, and leave nothing behind. */
static void module_over_limit(const char *mode, size_t limit)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_config cfg;
    mh_host *host;
    long long t0;

    log_capture_init(&lc);
    cfg = http_cfg(http_url(srv, "%s-mod/", mode), &lc);
    cfg.max_module_size = limit;
    host = host_new_cfg(&cfg);
    t0 = clock_ms();
    import_fails(host, "counter");
    if (clock_ms() - t0 > 15000)
        FAIL("the import took %lld ms", clock_ms() - t0);
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "%s-mod/counter.so", mode));
    ASSERT_EQ_INT(http_blob_count(), 0);
    http_assert_cache_clean();
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(big_module_over_limit)
{
    module_over_limit("big", 1024 * 1024);
}

TEST(endless_module_over_limit)
{
    module_over_limit("endless", 1024 * 1024);
}

TEST(endless_chunked_module_over_limit)
{
    module_over_limit("endless-chunked", 1024 * 1024);
}

TEST(gzip_bomb_module_over_limit)
{
    /* more than the ~1 MiB the bomb takes on the wire: only the decoded
     * size can trip the limit */
    module_over_limit("gzipbomb", 4 * 1024 * 1024);
}

/* An entry whose index.json is served by MODE (with limits lim, or the
 * defaults when NULL) is skipped with a warning naming index.json. */
static void index_refused(const char *mode, const mh_http_limits *lim)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_config cfg;
    mh_host *host;
    mh_module *mod;
    long long t0;

    log_capture_init(&lc);
    cfg = http_cfg(http_url(srv, "%s/", mode), &lc);
    cfg.http = lim;
    host = host_new_cfg(&cfg);
    t0 = clock_ms();
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    if (clock_ms() - t0 > 15000)
        FAIL("the import took %lld ms", clock_ms() - t0);
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "%s/index.json", mode));
    ASSERT_REQUESTS(srv, ".so ", 0);
    http_assert_cache_clean();
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(big_index_over_default_limit)
{
    index_refused("big", NULL); /* 64 MiB against the 8 MiB default */
}

TEST(endless_index_over_limit)
{
    mh_http_limits lim = http_limits();
    lim.max_index_size = 1024 * 1024;
    index_refused("endless", &lim);
}

TEST(gzip_bomb_index_over_limit)
{
    index_refused("gzipbomb", NULL);
}

TEST(index_over_configured_limit)
{
    mh_http_limits lim = http_limits();
    lim.max_index_size = 64; /* the real index is bigger */
    index_refused("ok", &lim);
}

TEST(gzip_module_is_decoded)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "gzip-always/"), &lc);
    mod = import_ok(host, "counter");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_REQUESTS(srv, "GET /gzip-always/counter.so 200", 1);
    ASSERT_REQUESTS(srv, "gzip", 2); /* index and module came encoded */
    ASSERT_EQ_INT(http_blob_count(), 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(gzip_module_larger_encoded_than_decoded)
{
    /* gzip makes a 10-byte module about 30 bytes: curl's size limit,
     * set to the module's size, was held against the encoded length, and
     * the module could not be downloaded from a compressing server.
     * (Found by a sweep.) */
    const char *www = http_site(NULL);
    file_write(str_fmt("%s/tiny.lua", www), "return {}\n");
    http_index_dir(www, NULL);
    http_server *srv = http_start(www, NULL);
    log_capture lc;

    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "gzip-always/"), &lc);
    import_ok(host, "tiny");
    ASSERT_REQUESTS(srv, "GET /gzip-always/tiny.lua 200", 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(gzip_counts_decoded_size)
{
    /* counter.so compresses well below 8 KiB, but decoded it is larger:
     * the decoded size is what the limit is about */
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, NULL);
    log_capture lc;
    mh_config cfg;
    mh_host *host;

    log_capture_init(&lc);
    if (file_size(str_fmt("%s/counter.so", www)) <= 8192)
        FAIL("counter.so is too small for this test");
    cfg = http_cfg(http_url(srv, "gzip-always/"), &lc);
    cfg.max_module_size = 8192;
    host = host_new_cfg(&cfg);
    import_fails(host, "counter");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "gzip-always/counter.so"));
    ASSERT_EQ_INT(http_blob_count(), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(chunked_module_works)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "chunked/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    ASSERT_EQ_INT(call_int(import_ok(host, "answer7"), "value"), 7);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* ------------------------------------------------------------ redirects */

TEST(same_origin_redirect_is_followed)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "redir-same/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    ASSERT_REQUESTS(srv, "GET /redir-same/index.json 302", 1);
    ASSERT_REQUESTS(srv, "GET /ok/index.json 200", 1);
    ASSERT_REQUESTS(srv, "GET /ok/counter.so 200", 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* An error page is the answer of its status, whatever its size: a
 * module answered 503 or 404 with a page larger than the module (with or
 * without Content-Length, or one that never ends) says that status, not
 * "larger than the limit". */
TEST(error_page_larger_than_the_module_says_its_status)
{
    static const struct {
        const char *mode, *says;
    } cases[] = {
        {"503page-mod", "HTTP 503 (server unavailable"},
        {"404page-mod", "HTTP 404"},
        {"503chunked-mod", "HTTP 503 (server unavailable"},
        {"503endless-mod", "HTTP 503 (server unavailable"},
    };
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    char want[600];

    log_capture_init(&lc);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mh_host *host = http_host(http_url(srv, "%s/", cases[i].mode), &lc);
        import_fails(host, "counter");
        snprintf(want, sizeof want, "GET %s: %s",
                 http_url(srv, "%s/counter.so", cases[i].mode), cases[i].says);
        ASSERT_CONTAINS(ERR_MSG(), want);
        ASSERT_NOT_CONTAINS(ERR_MSG(), "larger than");
        mh_host_free(host);
        http_assert_cache_clean();
    }
    ASSERT_EQ_INT(http_blob_count(), 0);
    http_stop(srv);
    log_capture_free(&lc);
}

/* A Location with an escape sequence: refused as a URL that cannot be
 * parsed (not "another origin": it names this one), and the escape shown
 * as \xNN, never sent raw to a terminal. */
TEST(redirect_with_control_characters_is_shown_escaped)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "redir-ctl/"), &lc);
    import_fails(host, "counter");
    ASSERT_CONTAINS(ERR_MSG(), "a URL that cannot be parsed");
    ASSERT_CONTAINS(ERR_MSG(), "/ok/x\\x1b[31mRED/index.json");
    ASSERT_NULL(strchr(ERR_MSG(), '\x1b'));
    ASSERT_NOT_CONTAINS(ERR_MSG(), "another origin");
    for (size_t i = 0; i < lc.n; i++)
        ASSERT_NULL(strchr(lc.msgs[i], '\x1b'));
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(status_after_redirect_names_the_url_that_gave_it)
{
    /* index.json is served; counter.so is redirected (same origin) to a
     * URL that answers 404: the message names both URLs, the 404 against
     * the second, the one that gave it. */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    char want[600];

    log_capture_init(&lc);
    host = http_host(http_url(srv, "redir-404-mod/"), &lc);
    import_fails(host, "counter");
    snprintf(want, sizeof want, "GET %s: redirected to ",
             http_url(srv, "redir-404-mod/counter.so"));
    ASSERT_CONTAINS(ERR_MSG(), want);
    snprintf(want, sizeof want, "%s: HTTP 404",
             http_url(srv, "404/counter.so"));
    ASSERT_CONTAINS(ERR_MSG(), want);
    ASSERT_REQUESTS(srv, "GET /404/counter.so 404", 1);
    ASSERT_EQ_INT(http_blob_count(), 0);
    mh_host_free(host);

    /* The index itself, through the same redirect: the cause of the
     * failure names the URL that answered 404. */
    host = http_host(http_url(srv, "redir-404/"), &lc);
    import_fails(host, "counter");
    snprintf(want, sizeof want, "%s: HTTP 404",
             http_url(srv, "404/index.json"));
    ASSERT_CONTAINS(ERR_MSG(), want);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(redirect_to_other_host_is_refused)
{
    /* localhost is the same server, but not the same origin */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "redir-other-mod/"), &lc);
    import_fails(host, "counter");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "redir-other-mod/counter.so"));
    if (!strcasestr(ERR_MSG(), "redirect") && !strcasestr(ERR_MSG(), "origin"))
        FAIL("the message mentions no redirect: \"%s\"", ERR_MSG());
    ASSERT_REQUESTS(srv, "localhost", 0);
    ASSERT_EQ_INT(http_blob_count(), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(redirect_to_other_port_is_refused)
{
    const char *www = http_site(NULL);
    http_server *other = http_start(www, NULL);
    http_server *srv = http_start(www, NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "redir-to-%d-mod/", other->port), &lc);
    import_fails(host, "counter");
    if (!strcasestr(ERR_MSG(), "redirect") && !strcasestr(ERR_MSG(), "origin"))
        FAIL("the message mentions no redirect: \"%s\"", ERR_MSG());
    ASSERT_REQUESTS(other, "GET", 0);
    mh_host_free(host);
    http_stop(srv);
    http_stop(other);
    log_capture_free(&lc);
}

TEST(index_redirect_to_other_host_is_refused)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "redir-other/"), &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "redir-other/index.json"));
    ASSERT_REQUESTS(srv, "localhost", 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(redirect_with_a_password_is_refused_and_not_shown)
{
    /* A same-origin Location carrying "bob:hunter2@" was followed, and
     * every later message showed the password.  (Found by a sweep.) */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_module *mod;

    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "redir-userinfo/"), &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("GET %s: redirect to a URL with a "
                                         "user name or password (http://"
                                         "bob:***@127.0.0.1:%d/ok/"
                                         "index.json) refused",
                                         http_url(srv, "redir-userinfo/"
                                                  "index.json"),
                                         srv->port));
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "hunter2"), 0);
    ASSERT_NOT_CONTAINS(ERR_MSG(), "hunter2");
    ASSERT_REQUESTS(srv, "GET /ok/", 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(refused_redirects_do_not_grow_the_host)
{
    /* Each refused Location was shown masked through the interning
     * table, which keeps what it holds as long as the host: a server
     * sending another Location each time grew a long-running host by
     * each.  (Found by review.) */
    http_server *srv = http_start(http_site(NULL), NULL);
    alloc_tracker at;
    alloc_tracker_init(&at);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host_tracked(http_url(srv, "redir-userinfo-n/"), &lc,
                                      &at);
    size_t after[60];
    for (int i = 0; i < 60; i++) {
        mh_spec_info info = {.size = sizeof info};
        mh_error *e = NULL;
        ASSERT_STATUS(mh_find(host, "counter", &info, &e), MH_ENOTFOUND);
        ASSERT_CONTAINS(mh_error_message(e), "redirect to a URL with a user "
                                             "name or password (http://"
                                             "bob:***@");
        mh_error_free(e);
        after[i] = at.outstanding;
    }
    ASSERT_REQUESTS(srv, "GET /redir-userinfo-n/index.json 302", 60);
    /* 3 KiB a Location: 150 KiB over 50, past any arena's slack */
    if (after[59] > after[9] + 2048)
        FAIL("the host grew from %zu to %zu bytes over 50 refusals",
             after[9], after[59]);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    http_stop(srv);
    alloc_tracker_destroy(&at);
    log_capture_free(&lc);
}

TEST(over_long_url_is_refused_not_cut)
{
    /* An entry of 4,090 bytes asked for ".../aaaa/inde": the URL was cut
     * to 4,095 bytes and requested.  (Found by a sweep.) */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    char seg[4097];
    mh_module *mod;

    log_capture_init(&lc);
    const char *base = http_url(srv, "ok/");
    size_t fill = 4090 - strlen(base) - 1;
    memset(seg, 'a', fill);
    seg[fill] = '\0';
    mh_host *host = http_host(str_fmt("%s%s/", base, seg), &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "the URL is longer than 4095 bytes");
    ASSERT_REQUESTS(srv, "GET", 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(redirect_loop_stops)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    size_t n;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "redir-loop-mod/"), &lc);
    import_fails(host, "counter");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "redir-loop-mod/counter.so"));
    ASSERT_CONTAINS_CI(ERR_MSG(), "redirect");
    /* the first request and at most 5 redirects (the default) */
    n = http_requests(srv, "/redir-loop-mod/counter.so 302");
    if (n < 2 || n > 6)
        FAIL("%zu requests in the loop; log:\n%s", n, http_log_text(srv));
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(redirect_limit_is_configurable)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    mh_http_limits lim = http_limits();
    log_capture lc;
    mh_config cfg;
    mh_host *host;
    size_t n;

    log_capture_init(&lc);
    lim.max_redirects = 2;
    cfg = http_cfg(http_url(srv, "redir-loop-mod/"), &lc);
    cfg.http = &lim;
    host = host_new_cfg(&cfg);
    import_fails(host, "counter");
    n = http_requests(srv, "/redir-loop-mod/counter.so 302");
    if (n < 2 || n > 3)
        FAIL("%zu requests with max_redirects 2; log:\n%s", n,
             http_log_text(srv));
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* timeout_ms holds for the whole answer, redirects and all: a server
 * that sends each request back to itself after 0.4 s, with a limit of
 * 1 s, is given up on by the third hop -- not after six hops (the limit
 * of redirects), each given the whole second. */
TEST(timeout_counts_redirects_in)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    mh_http_limits lim = http_limits();
    log_capture lc;

    log_capture_init(&lc);
    lim.timeout_ms = 1000;
    mh_config cfg = http_cfg(http_url(srv, "redir-slow-mod/"), &lc);
    cfg.http = &lim;
    mh_host *host = host_new_cfg(&cfg);
    import_fails(host, "counter");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "redir-slow-mod/counter.so"));
    ASSERT_NOT_CONTAINS(ERR_MSG(), "more than 5 redirects");
    ASSERT_CONTAINS(ERR_MSG(), "timed out");
    size_t n = http_requests(srv, "/redir-slow-mod/counter.so 302");
    if (n > 3)
        FAIL("%zu requests within 1 s of 0.4 s each; log:\n%s", n,
             http_log_text(srv));
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* ------------------------------------------------------------ integrity */

TEST(tampered_module_is_never_loaded)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "tamper/"), &lc);
    ASSERT_EQ_INT(import_fails(host, "counter"), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "tamper/counter.so"));
    if (!strcasestr(ERR_MSG(), "SHA-256") && !strcasestr(ERR_MSG(), "hash"))
        FAIL("the message does not mention the hash: \"%s\"", ERR_MSG());
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    ASSERT_EQ_INT(memfd_fd_count(""), 0);
    ASSERT_EQ_INT(http_blob_count(), 0);
    http_assert_cache_clean();
    /* not cached: the next import downloads (and refuses) it again */
    import_fails(host, "counter");
    ASSERT_REQUESTS(srv, "GET /tamper/counter.so 200", 2);
    ASSERT_EQ_INT(http_blob_count(), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(size_mismatch_is_refused)
{
    /* the index says one byte more than the server sends */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "badsize/"), &lc);
    import_fails(host, "counter");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "badsize/counter.so"));
    ASSERT_CONTAINS(ERR_MSG(), "index.json is out of date: run `modhost "
                               "index` there again");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    ASSERT_EQ_INT(http_blob_count(), 0);
    /* the other modules of the index are fine */
    ASSERT_EQ_INT(call_int(import_ok(host, "answer7"), "value"), 7);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(a_file_larger_than_its_index_says_points_at_a_stale_index)
{
    /* The index gives one byte less than the server sends: the download
     * stops at the index's size, and the error said only "larger than
     * the limit", as if a limit had been set too low. */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "badsize-less/"), &lc);
    ASSERT_EQ_INT(import_fails(host, "counter"), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "module 'counter': GET ");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "badsize-less/counter.so"));
    ASSERT_CONTAINS(ERR_MSG(), "the size the index gives it: the file on "
                               "the server is not the one indexed (the "
                               "index this host holds may be older than "
                               "the site");
    ASSERT_EQ_INT(http_blob_count(), 0);
    http_assert_cache_clean();
    ASSERT_EQ_INT(call_int(import_ok(host, "answer7"), "value"), 7);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(a_site_published_anew_is_seen_at_the_next_import)
{
    /* A running host holds the site's index for its freshness (5 min by
     * default).  The site was published anew meanwhile: the module's
     * file is not the one that index gives, and every import of it failed
     * so until the index went stale, telling the operator to run
     * `modhost index`, which they just had.  The disagreement makes the
     * host ask for the index again at the next import, which loads the
     * new file. */
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    fixture_copy("counter", "www/answer7.so"); /* new bytes, new size */
    http_index_dir(www, NULL);
    ASSERT_EQ_INT(import_fails(host, "answer7"), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "the index this host holds may be older "
                               "than the site: it is asked for again at "
                               "the next import");
    ASSERT_REQUESTS(srv, "GET /ok/index.json", 1);
    ASSERT_EQ_INT(call_int(import_ok(host, "answer7"), "value"), 42);
    ASSERT_REQUESTS(srv, "GET /ok/index.json", 2);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(a_site_published_anew_is_seen_by_the_next_process_too)
{
    /* The same with an index the server says is fresh for an hour: the
     * host that met the disagreement asked again, but the cache's
     * meta.json still said fresh, so each new process (each CLI run) took
     * the old index and failed the module for the hour. */
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 3600");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    mh_host_free(host);
    fixture_copy("counter", "www/answer7.so");
    http_index_dir(www, NULL);
    host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(import_fails(host, "answer7"), MH_EFORMAT);
    mh_host_free(host);
    ASSERT_REQUESTS(srv, "GET /ok/index.json", 1);
    host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "answer7"), "value"), 42);
    ASSERT_REQUESTS(srv, "GET /ok/index.json", 2);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* --------------------------------------------------------- broken indexes */

/* /badindex-KIND/index.json: the entry is refused with a warning naming
 * index.json, nothing is loaded, and nothing outside index.json (and its
 * signature) is ever requested -- not even for the modules it lists. */
static void bad_index_says(const char *kind, const char *says);

static void bad_index(const char *kind)
{
    bad_index_says(kind, NULL);
}

/* As bad_index, and the warning holds `says` (the entry it is about). */
static void bad_index_says(const char *kind, const char *says)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    const char *dir = tmp_mkdir("fsdir");
    log_capture lc;
    mh_host *host;
    mh_module *mod;
    size_t n;

    log_capture_init(&lc);
    fixture_copy("answer7", "fsdir/local.so");
    host = http_host(path_join((const char *const[]){
                         http_url(srv, "badindex-%s/", kind), dir, NULL}),
                     &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_import(host, "answer7", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, "index.json");
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "badindex-%s", kind));
    if (says)
        ASSERT_LOG(&lc, MH_LOG_WARN, says);
    n = http_requests(srv, "GET ");
    if (n == 0 || n != http_requests(srv, str_fmt("GET /badindex-%s/index.json",
                                                  kind)))
        FAIL("requests other than the index:\n%s", http_log_text(srv));
    /* the search goes on to the next entry */
    ASSERT_EQ_STR(mh_module_finder(import_ok(host, "local")), "fs");
    ASSERT_EQ_INT(http_blob_count(), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(bad_index_malformed)
{
    bad_index("malformed");
}

TEST(bad_index_truncated)
{
    bad_index("truncated");
}

TEST(bad_index_empty)
{
    bad_index("empty");
}

TEST(bad_index_trailing_garbage)
{
    bad_index("trailing");
}

TEST(bad_index_deeply_nested_arrays)
{
    bad_index("nested");
}

TEST(bad_index_deeply_nested_objects)
{
    bad_index("nested-obj");
}

TEST(bad_index_top_level_array)
{
    bad_index("toplevel");
}

TEST(bad_index_format_is_string)
{
    bad_index("format-string");
}

TEST(bad_index_unknown_format)
{
    bad_index("format-2");
}

TEST(bad_index_serial_is_string)
{
    bad_index("serial-string");
}

TEST(bad_index_serial_is_zero)
{
    bad_index("serial-zero");
}

TEST(bad_index_serial_is_fractional)
{
    bad_index("serial-frac");
}

TEST(bad_index_serial_past_exact_numbers)
{
    bad_index("serial-huge");
}

TEST(bad_index_modules_is_object)
{
    bad_index("modules-object");
}

TEST(bad_index_module_is_string)
{
    bad_index_says("module-string", "malformed index: modules[1]: a module ");
}

TEST(bad_index_name_is_number)
{
    bad_index_says("name-number", "malformed index: modules[1]: a module ");
}

TEST(bad_index_name_breaks_grammar)
{
    bad_index_says("name-bad", "(../evil): a module name is invalid");
}

TEST(bad_index_size_is_string)
{
    bad_index_says("size-string", "(counter): a module lacks");
}

TEST(bad_index_size_is_negative)
{
    bad_index_says("size-negative", "(counter): a module size");
}

TEST(bad_index_size_is_huge)
{
    bad_index_says("size-huge", "(counter): a module size");
}

TEST(bad_index_sha256_too_short)
{
    bad_index_says("sha-short", "(counter): a sha256");
}

TEST(bad_index_sha256_not_hex)
{
    bad_index_says("sha-nonhex", "(counter): a sha256");
}

TEST(bad_index_sha256_missing)
{
    bad_index_says("no-sha", "(counter): a module lacks");
}

TEST(bad_index_path_escapes_with_dotdot)
{
    bad_index_says("path-dotdot", "(counter): a module path");
}

TEST(bad_index_path_is_absolute)
{
    bad_index_says("path-abs", "(counter): a module path");
}

TEST(bad_index_path_escapes_percent_encoded)
{
    bad_index_says("path-pct", "(counter): a module path");
}

TEST(bad_index_path_is_other_module)
{
    bad_index_says("path-other", "(counter): a module path");
}

TEST(bad_index_module_listed_twice)
{
    bad_index_says("dup", "malformed index: counter: a module is listed "
                          "twice");
}

TEST(bad_index_path_has_backslash)
{
    bad_index_says("path-backslash", "(counter): a module path");
}

/* ----------------------------------------------------- cache hygiene */

TEST(no_partial_files_after_failures)
{
    /* one cache, every way a download can go wrong */
    static const char *const modes[] = {"trunc-mod", "big-mod",
                                        "endless-mod", "gzipbomb-mod",
                                        "tamper", "hang-mod", "drip-mod",
                                        "redir-loop-mod", "500-mod",
                                        "404-mod"};
    http_server *srv = http_start(http_site(NULL), NULL);
    mh_http_limits lim = http_limits();
    log_capture lc;

    log_capture_init(&lc);
    lim.timeout_ms = 1000;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        mh_config cfg = http_cfg(http_url(srv, "%s/", modes[i]), &lc);
        mh_host *host;
        cfg.http = &lim;
        cfg.max_module_size = 1024 * 1024;
        host = host_new_cfg(&cfg);
        import_fails(host, "counter");
        mh_host_free(host);
        http_assert_cache_clean();
    }
    ASSERT_EQ_INT(http_blob_count(), 0);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(killed_download_leaves_no_partial_file)
{
    /* a process killed mid-download (the server drips) leaves nothing a
     * later run would trust */
    http_server *srv = http_start(http_site(NULL), NULL);
    const char *entry = http_url(srv, "drip-mod/");
    log_capture lc;
    mh_host *host;
    pid_t pid;
    int st;

    log_capture_init(&lc);
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        mh_host *h = http_host(entry, &lc);
        mh_module *mod;
        mh_import(h, "counter", &mod, NULL);
        _exit(0);
    }
    /* wait until the module is being downloaded, then kill */
    for (int i = 0; i < 100 && !http_requests(srv, "/drip-mod/counter.so");
         i++)
        usleep(50 * 1000);
    usleep(1500 * 1000);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    ASSERT_REQUESTS(srv, "GET /drip-mod/counter.so 200", 1);
    ASSERT_EQ_INT(http_blob_count(), 0);

    /* the same cache, the server good again: a normal import */
    host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    ASSERT_EQ_INT(http_blob_count(), 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}
