/*
 * test_http.c -- the HTTP finder against a real server on 127.0.0.1:
 * tests/http/server.py, started by each case on a port of its own and
 * stopped at its end (tests/support/http.c).  What an http:// entry
 * serves and how names and origins read; the index and its revalidation
 * (ETag, Last-Modified, Cache-Control max-age); the content-addressed
 * cache and offline use (connection refused, 5xx); signed indexes and the
 * trust rules; mh_fetch; the proxy variables and TLS verification.  The
 * faults -- slow, broken, oversized and redirected answers, bad bytes and
 * broken indexes -- are in test_http_faults.c.
 *
 * Nothing here talks to any address but 127.0.0.1 (and "localhost"):
 * http_site() clears the proxy variables first, so a proxy configured
 * around the test run is never asked.
 */
#include <cjson/cJSON.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */

static const char *entry_finder(mh_host *host, size_t i)
{
    const char *text = NULL, *finder = NULL;
    mh_path_source src;

    if (mh_host_path_entry(host, i, &text, &src, &finder) != MH_OK)
        FAIL("mh_host_path_entry(%zu) failed", i);
    return finder;
}

static const char *sha256_of(const char *path)
{
    int st;
    const char *out = sh_run(str_fmt("sha256sum %s", sh_quote(path)), &st);
    if (st != 0 || strlen(out) < 64)
        FAIL("sha256sum %s failed", path);
    return str_fmt("%.64s", out);
}

/* ----------------------------------------------------------- importing */

static mh_host *http_host_verbose(const char *entry, log_capture *lc)
{
    mh_config cfg = http_cfg(entry, lc);
    cfg.flags |= MH_CONFIG_VERBOSE;
    return host_new_cfg(&cfg);
}

TEST(import_over_http)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_STR(entry_finder(host, 0), "http");
    mod = import_ok(host, "counter");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_finder(mod), "http");
    ASSERT_EQ_STR(mh_module_origin(mod), http_url(srv, "ok/counter.so"));
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_NATIVE);
    ASSERT_EQ_STR(mh_module_version(mod), "1.0");
    ASSERT_REQUESTS(srv, "GET /ok/index.json 200", 1);
    ASSERT_REQUESTS(srv, "GET /ok/counter.so 200", 1);
    /* a second import is the same module: no request */
    ASSERT_EQ_PTR(import_ok(host, "counter"), mod);
    ASSERT_REQUESTS(srv, "/ok/counter.so", 1);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_ERROR, ""), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* The process's IP sockets that a program it runs would get: those
 * without close-on-exec.  Their number; the first's fd in *first, and
 * how many IP sockets there are in all in *all. */
static int inherited_ip_sockets(int *first, int *all)
{
    int n = 0;
    *first = -1;
    *all = 0;
    for (int fd = 0; fd < 1024; fd++) {
        int dom = 0;
        socklen_t len = sizeof dom;
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) != 0 ||
            (dom != AF_INET && dom != AF_INET6))
            continue;
        ++*all;
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC) && n++ == 0)
            *first = fd;
    }
    return n;
}

TEST(kept_connection_is_not_inherited_by_programs_run)
{
    /* The host keeps its connection to the server for the next request:
     * a program the application runs must not get it (the request stream
     * to the module server, open after the host is freed). */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    int fd, kept;

    log_capture_init(&lc);
    ASSERT_EQ_INT(inherited_ip_sockets(&fd, &kept), 0);
    mh_host *host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    ASSERT_REQUESTS(srv, "GET /ok/counter.so 200", 1);
    int bad = inherited_ip_sockets(&fd, &kept);
    if (kept == 0) /* else the check below could not fail */
        FAIL("no connection kept after the import");
    if (bad != 0)
        FAIL("socket %d (of %d kept) has no close-on-exec", fd, kept);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(entry_without_trailing_slash)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok"), &lc);
    ASSERT_EQ_STR(entry_finder(host, 0), "http");
    mod = import_ok(host, "answer7");
    ASSERT_EQ_INT(call_int(mod, "value"), 7);
    ASSERT_EQ_STR(mh_module_origin(mod), http_url(srv, "ok/answer7.so"));
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(dotted_name_is_nested_path)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    mod = import_ok(host, "pkg.mod");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mod), http_url(srv, "ok/pkg/mod.so"));
    ASSERT_REQUESTS(srv, "GET /ok/pkg/mod.so 200", 1);
    /* a name that is not in the index: no request for it at all */
    ASSERT_STATUS(mh_import(host, "pkg.nothere", &mod, ERR), MH_ENOTFOUND);
    ASSERT_REQUESTS(srv, "nothere", 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(namespace_package_over_http)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    mh_spec_info info = {.size = sizeof info};
    log_capture lc;
    mh_host *host;
    mh_module *ns;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_STATUS(mh_find(host, "pkg", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_NAMESPACE);
    ns = import_ok(host, "pkg");
    ASSERT_EQ_INT(mh_module_kind_of(ns), MH_KIND_NAMESPACE);
    ASSERT_NULL(mh_module_symbol(ns, "value"));
    ASSERT_EQ_INT(call_int(import_ok(host, "pkg.mod"), "value"), 42);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

static int collect(void *ud, const mh_spec_info *info)
{
    const char **out = ud;
    *out = str_fmt("%s%s %s %s %s\n", *out, info->name,
                   mh_module_kind_name(info->kind), info->finder,
                   info->origin);
    return 0;
}

TEST(list_shows_http_modules)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    const char *out = "";
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_STATUS(mh_list(host, collect, &out, ERR), MH_OK);
    ASSERT_CONTAINS(out, str_fmt("answer7 native http %s\n",
                                 http_url(srv, "ok/answer7.so")));
    ASSERT_CONTAINS(out, str_fmt("counter native http %s\n",
                                 http_url(srv, "ok/counter.so")));
    ASSERT_CONTAINS(out, str_fmt("pkg.mod native http %s\n",
                                 http_url(srv, "ok/pkg/mod.so")));
    /* listing reads the index only */
    ASSERT_REQUESTS(srv, ".so ", 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(listing_an_entry_whose_index_cannot_be_had_warns_once)
{
    /* The finder warned that the index could not be fetched, and the
     * listing warned again with the same words, naming the entry. */
    http_server *srv = http_start(http_site(NULL), NULL);
    const char *out = "";
    log_capture lc;
    log_capture_init(&lc);
    const char *entry = http_url(srv, "404/");
    mh_host *host = http_host(entry, &lc);
    ASSERT_STATUS(mh_list(host, collect, &out, ERR), MH_OK);
    ASSERT_EQ_STR(out, "");
    if (log_capture_count(&lc, MH_LOG_WARN, "index.json") != 1)
        FAIL("not one warning about the index:\n%s", log_capture_dump(&lc));
    ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("search path entry 0 (%s)",
                                         entry));
    /* An import still warns of it, once, and its "not found" says why. */
    ASSERT_EQ_INT(import_fails(host, "counter"), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "404");
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(find_does_not_download)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    mh_spec_info info = {.size = sizeof info};
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_STATUS(mh_find(host, "counter", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.finder, "http");
    ASSERT_EQ_STR(info.origin, http_url(srv, "ok/counter.so"));
    ASSERT_EQ_INT(info.kind, MH_KIND_NATIVE);
    ASSERT_EQ_INT(info.entry_index, 0);
    ASSERT_REQUESTS(srv, "/ok/counter.so", 0);
    ASSERT_EQ_INT(http_blob_count(), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(localhost_is_loopback_too)
{
    /* loopback needs neither a signature nor MH_CONFIG_ALLOW_HTTP */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    host = http_host(str_fmt("http://localhost:%d/ok/", srv->port), &lc);
    mod = import_ok(host, "counter");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mod),
                  str_fmt("http://localhost:%d/ok/counter.so", srv->port));
    ASSERT_REQUESTS(srv, str_fmt("GET /ok/counter.so 200 localhost:%d",
                                 srv->port), 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(scheme_in_capitals_is_http_too)
{
    /* URL schemes are case-insensitive (RFC 3986): HTTP:// is the http
     * finder's, not a plugin finders.HTTP's, and is shown in lower case. */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host(str_fmt("HTTP://127.0.0.1:%d/ok/", srv->port),
                              &lc);
    mh_module *mod = import_ok(host, "counter");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mod), http_url(srv, "ok/counter.so"));
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* Four threads import four different names through one entry at once. */
struct import_job {
    mh_host *host;
    const char *name;
    mh_status st;
    char msg[512];
    int done;
};

static void *import_thread(void *arg)
{
    struct import_job *job = arg;
    mh_error *err = NULL;
    mh_module *mod;

    job->st = mh_import(job->host, job->name, &mod, &err);
    snprintf(job->msg, sizeof job->msg, "%s", mh_error_message(err));
    mh_error_free(err);
    __atomic_store_n(&job->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

TEST(slow_download_holds_up_no_other_find)
{
    /* [HTTP entry whose module bodies never come, B (other.so)].  One
     * thread imports counter, whose download hangs until its time runs
     * out.  The download held the entry's lock all along, so another
     * thread's import of other -- in B, but the walk asks the HTTP entry
     * first -- waited for it, and so did mh_invalidate_caches (from a
     * sweep of the finders under threads).  Both end while the download
     * still hangs now. */
    http_server *srv = http_start(http_site(NULL), NULL);
    const char *b = tmp_mkdir("B");
    fixture_copy("answer7", "B/other.so");
    mh_http_limits lim = http_limits();
    lim.timeout_ms = 2500;
    log_capture lc;
    log_capture_init(&lc);
    mh_config cfg = http_cfg(str_fmt("%s;%s", http_url(srv, "hang-mod/"), b),
                             &lc);
    cfg.http = &lim;
    mh_host *host = host_new_cfg(&cfg);
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, "counter", &info, ERR), MH_OK); /* index */
    struct import_job slow = {host, "counter", MH_OK, "", 0};
    struct import_job other = {host, "other", MH_OK, "", 0};
    pthread_t ts, to;
    ASSERT_EQ_INT(pthread_create(&ts, NULL, import_thread, &slow), 0);
    while (http_requests(srv, "GET /hang-mod/counter.so hang") == 0) {
        struct timespec ms = {0, 1000 * 1000};
        nanosleep(&ms, NULL);
    }
    ASSERT_EQ_INT(pthread_create(&to, NULL, import_thread, &other), 0);
    pthread_join(to, NULL);
    mh_invalidate_caches(host);
    ASSERT_FALSE(__atomic_load_n(&slow.done, __ATOMIC_SEQ_CST));
    ASSERT_STATUS(other.st, MH_OK);
    ASSERT_EQ_INT(call_int(mh_host_module(host, "other"), "value"), 7);
    pthread_join(ts, NULL);
    ASSERT_STATUS(slow.st, MH_EIO);
    ASSERT_CONTAINS(slow.msg, http_url(srv, "hang-mod/counter.so"));
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(threads_import_at_once)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    static const char *const names[] = {"counter", "answer7", "pkg.mod",
                                        "counter"};
    struct import_job jobs[4] = {0};
    pthread_t tids[4];
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    for (int i = 0; i < 4; i++) {
        jobs[i].host = host;
        jobs[i].name = names[i];
        if (pthread_create(&tids[i], NULL, import_thread, &jobs[i]) != 0)
            FAIL("pthread_create failed");
    }
    for (int i = 0; i < 4; i++)
        pthread_join(tids[i], NULL);
    for (int i = 0; i < 4; i++)
        if (jobs[i].st != MH_OK)
            FAIL("import %s: %s: %s", jobs[i].name,
                 mh_status_name(jobs[i].st), jobs[i].msg);
    for (int i = 0; i < 4; i++)
        ASSERT_NOT_NULL(mh_host_module(host, names[i]));
    ASSERT_EQ_INT(call_int(mh_host_module(host, "answer7"), "value"), 7);
    /* counter.so and pkg/mod.so are the same bytes: the blob cache is by
     * content, so whichever thread comes first downloads them, once. */
    ASSERT_EQ_INT(http_requests(srv, "GET /ok/counter.so 200") +
                      http_requests(srv, "GET /ok/pkg/mod.so 200"), 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* ------------------------------------------------- index and revalidation */

/* The cached meta.json of the one site cached under tmp_path("cache/http"):
 * its fields (NULL-ended) set to value, or moved by it (add). */
static void meta_set_times(const char *const *fields, double value, bool add)
{
    int st;
    const char *key = sh_run(str_fmt("ls %s", sh_quote(tmp_path("cache/"
                                                               "http"))),
                             &st);
    ASSERT_EQ_INT(st, 0);
    const char *meta = tmp_path("cache/http/%.32s/meta.json", key);
    cJSON *m = cJSON_Parse(file_read(meta));
    ASSERT_NOT_NULL(m);
    for (size_t i = 0; fields[i]; i++) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(m, fields[i]);
        ASSERT_TRUE(cJSON_IsNumber(t));
        cJSON_SetNumberValue(t, add ? t->valuedouble + value : value);
    }
    char *txt = cJSON_PrintUnformatted(m);
    file_write(meta, txt);
    cJSON_free(txt);
    cJSON_Delete(m);
}

TEST(one_index_request_per_host)
{
    http_server *srv = http_start(http_site(NULL), "--max-age 3600");
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    import_ok(host, "counter");
    import_ok(host, "answer7");
    import_ok(host, "pkg.mod");
    ASSERT_REQUESTS(srv, "/ok/index.json ", 1);
    ASSERT_REQUESTS(srv, "GET /ok/answer7.so 200", 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(stale_index_revalidated_with_304)
{
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    log_capture lc;
    mh_host *h1, *h2;

    log_capture_init(&lc);
    h1 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);
    ASSERT_REQUESTS(srv, "GET /ok/index.json 200", 1);

    h2 = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(h2, "counter"), "value"), 42);
    /* a conditional request, answered 304, and the module from the cache */
    ASSERT_REQUESTS(srv, "GET /ok/index.json 304 ", 1);
    ASSERT_REQUESTS(srv, "cond", 1);
    ASSERT_REQUESTS(srv, "/ok/counter.so", 1);
    mh_host_free(h2);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(a_304_keeps_the_cached_index_fresh_for_other_processes)
{
    /* A host takes the index; once it is stale, the next revalidates
     * (304), and that answer's freshness was kept in memory only, so every
     * later process (each CLI run) asked again.  It goes into meta.json
     * too.  (The cached freshness is made to have passed by writing it
     * into meta.json, rather than waited for.) */
    http_server *srv = http_start(http_site(NULL), "--max-age 60");
    log_capture lc;
    mh_spec_info info = {.size = sizeof info};

    log_capture_init(&lc);
    mh_host *h = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_STATUS(mh_find(h, "counter", &info, ERR), MH_OK);
    mh_host_free(h);
    meta_set_times((const char *[]){"fresh_until", NULL}, 1, false);
    h = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_STATUS(mh_find(h, "counter", &info, ERR), MH_OK);
    mh_host_free(h);
    ASSERT_REQUESTS(srv, "GET /ok/index.json 304 ", 1);
    for (int k = 0; k < 3; k++) {
        h = http_host(http_url(srv, "ok/"), &lc);
        ASSERT_STATUS(mh_find(h, "counter", &info, ERR), MH_OK);
        mh_host_free(h);
    }
    ASSERT_REQUESTS(srv, "/ok/index.json ", 2);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(cached_validators_of_another_index_are_not_used)
{
    /* Two processes saving the index at once can leave the older one's
     * index.json beside the newer one's meta.json.  Its ETag would get
     * that older index a 304 for as long as the server's stays the same:
     * validators count only for the index bytes they were saved with. */
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    log_capture lc;
    mh_host *h1, *h2;

    log_capture_init(&lc);
    h1 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);
    int st;
    const char *key = sh_run(str_fmt("ls %s", sh_quote(tmp_path("cache/http"))),
                             &st);
    ASSERT_EQ_INT(st, 0);
    const char *idx = tmp_path("cache/http/%.32s/index.json", key);
    /* an older index: the same, without counter */
    cJSON *j = cJSON_Parse(file_read(idx));
    cJSON *mods = cJSON_GetObjectItemCaseSensitive(j, "modules");
    int n = cJSON_GetArraySize(mods), gone = 0;
    for (int i = n - 1; i >= 0; i--) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetArrayItem(mods, i), "name");
        if (cJSON_IsString(nm) && strcmp(nm->valuestring, "counter") == 0) {
            cJSON_DeleteItemFromArray(mods, i);
            gone++;
        }
    }
    ASSERT_EQ_INT(gone, 1);
    char *txt = cJSON_Print(j);
    file_write(idx, txt);
    cJSON_free(txt);
    cJSON_Delete(j);

    h2 = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(h2, "counter"), "value"), 42);
    ASSERT_REQUESTS(srv, "GET /ok/index.json 200", 2);
    ASSERT_REQUESTS(srv, "GET /ok/index.json 304", 0);
    mh_host_free(h2);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(revalidated_by_last_modified_alone)
{
    /* a server without ETags: If-Modified-Since does the job */
    http_server *srv = http_start(http_site(NULL), "--max-age 0 --no-etag");
    log_capture lc;
    mh_host *h1, *h2;

    log_capture_init(&lc);
    h1 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);
    h2 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h2, "counter");
    ASSERT_REQUESTS(srv, "GET /ok/index.json 304 ", 1);
    ASSERT_REQUESTS(srv, "/ok/counter.so", 1);
    mh_host_free(h2);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(invalidate_caches_revalidates_index)
{
    /* fresh for an hour, but mh_invalidate_caches means "look again" */
    http_server *srv = http_start(http_site(NULL), "--max-age 3600");
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    import_ok(host, "counter");
    mh_invalidate_caches(host);
    import_ok(host, "answer7");
    ASSERT_REQUESTS(srv, "GET /ok/index.json 200", 1);
    ASSERT_REQUESTS(srv, "GET /ok/index.json 304 ", 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(fresh_index_needs_no_request)
{
    http_server *srv = http_start(http_site(NULL), "--max-age 3600");
    log_capture lc;
    mh_host *h1, *h2;

    log_capture_init(&lc);
    h1 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);
    h2 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h2, "counter");
    ASSERT_EQ_INT(call_int(import_ok(h2, "answer7"), "value"), 7);
    /* within max-age: the cached index is used as it is */
    ASSERT_REQUESTS(srv, "/ok/index.json", 1);
    ASSERT_REQUESTS(srv, "GET /ok/answer7.so 200", 1);
    mh_host_free(h2);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(index_without_freshness_is_checked_once_per_host)
{
    /* No Cache-Control at all: one request for the host's first find,
     * none for the next imports; a new host (a new process) and
     * mh_invalidate_caches look again. */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h1 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h1, "counter");
    import_ok(h1, "answer7");
    mh_module *mod;
    ASSERT_STATUS(mh_import(h1, "absent", &mod, ERR), MH_ENOTFOUND);
    ASSERT_REQUESTS(srv, "/ok/index.json", 1);
    mh_invalidate_caches(h1);
    ASSERT_STATUS(mh_import(h1, "absent", &mod, ERR), MH_ENOTFOUND);
    ASSERT_REQUESTS(srv, "GET /ok/index.json 304", 1);
    mh_host *h2 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h2, "counter");
    ASSERT_REQUESTS(srv, "GET /ok/index.json 304", 2);
    mh_host_free(h2);
    mh_host_free(h1);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(index_without_freshness_is_checked_again_after_index_fresh_s)
{
    /* mh_http_limits.index_fresh_s (300 by default) is how long that one
     * check lasts: within it no request, after it one revalidation, and
     * then the window starts again. */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_config cfg = http_cfg(http_url(srv, "ok/"), &lc);
    /* The window counts whole seconds (time()): 5 is at least 4, room
     * for a loaded machine between the first two imports. */
    mh_http_limits lim = {.size = sizeof lim, .index_fresh_s = 5};
    cfg.http = &lim;
    mh_host *h = host_new_cfg(&cfg);
    mh_module *mod;
    import_ok(h, "counter");
    ASSERT_STATUS(mh_import(h, "absent", &mod, ERR), MH_ENOTFOUND);
    ASSERT_REQUESTS(srv, "/ok/index.json", 1); /* within the window */
    sleep(6);
    ASSERT_STATUS(mh_import(h, "absent", &mod, ERR), MH_ENOTFOUND);
    ASSERT_REQUESTS(srv, "GET /ok/index.json 304", 1);
    import_ok(h, "answer7");
    ASSERT_REQUESTS(srv, "/ok/index.json", 2); /* a new window */
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(index_fresh_s_of_zero_or_less_is_the_default_window)
{
    /* 0 (a zeroed struct) and a negative value mean the default 300 s,
     * not "no window": the host's first find checks the index, the next
     * finds make no request. */
    static const long values[] = {0, -1};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        http_server *srv = http_start(http_site(NULL), NULL);
        log_capture lc;
        log_capture_init(&lc);
        mh_config cfg = http_cfg(http_url(srv, "ok/"), &lc);
        mh_http_limits lim = {.size = sizeof lim,
                              .index_fresh_s = values[i]};
        cfg.http = &lim;
        mh_host *h = host_new_cfg(&cfg);
        mh_module *mod;
        import_ok(h, "counter");
        ASSERT_STATUS(mh_import(h, "absent", &mod, ERR), MH_ENOTFOUND);
        import_ok(h, "answer7");
        if (http_requests(srv, "/ok/index.json") != 1)
            FAIL("index_fresh_s = %ld: %zu index requests, not 1", values[i],
                 http_requests(srv, "/ok/index.json"));
        mh_host_free(h);
        http_stop(srv);
        log_capture_free(&lc);
    }
}

TEST(index_with_max_age_0_is_checked_every_find)
{
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h, "counter");
    import_ok(h, "answer7");
    ASSERT_REQUESTS(srv, "GET /ok/index.json 200", 1);
    ASSERT_REQUESTS(srv, "GET /ok/index.json 304", 1);
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

/* Under server.py's mode, the index is asked for again at the next find
 * (a 304), in this host and in the next (from disk). */
static void index_asked_again_at_next_find(const char *mode)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = http_host(http_url(srv, "%s/", mode), &lc);
    import_ok(h, "counter");
    import_ok(h, "answer7");
    ASSERT_REQUESTS(srv, str_fmt("GET /%s/index.json 200", mode), 1);
    ASSERT_REQUESTS(srv, str_fmt("GET /%s/index.json 304", mode), 1);
    mh_host_free(h);
    h = http_host(http_url(srv, "%s/", mode), &lc);
    import_ok(h, "counter");
    ASSERT_REQUESTS(srv, str_fmt("GET /%s/index.json 304", mode), 2);
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

/* Cache-Control directives split over two header lines are one list
 * (nginx's "expires" beside an "add_header"): "no-cache" on one holds
 * whatever "max-age=3600" on the other says. */
TEST(no_cache_on_one_of_two_cache_control_lines_holds)
{
    index_asked_again_at_next_find("cc-split");
}

/* An index a cache in between has held for its whole max-age (Age:
 * 3600, max-age=3600) is stale when it arrives: asked again at the next
 * find, not trusted for another hour. */
TEST(age_counts_against_max_age)
{
    index_asked_again_at_next_find("aged");
}

/* A 304 that says nothing of freshness keeps what the 200 said
 * (max-age=1): the index is asked again a second later, as the server
 * meant -- not taken for index_fresh_s (5 minutes), as if the server had
 * never said. */
TEST(not_modified_without_cache_control_keeps_the_max_age)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = http_host(http_url(srv, "cc-bare304/"), &lc);
    import_ok(h, "counter");
    ASSERT_REQUESTS(srv, "GET /cc-bare304/index.json 200", 1);
    usleep(1100 * 1000);
    import_ok(h, "answer7");
    ASSERT_REQUESTS(srv, "GET /cc-bare304/index.json 304", 1);
    usleep(1100 * 1000);
    mh_spec_info info = {.size = sizeof info}; /* counter is loaded */
    ASSERT_STATUS(mh_find(h, "counter", &info, ERR), MH_OK);
    ASSERT_REQUESTS(srv, "GET /cc-bare304/index.json 304", 2);
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

/* A base URL near the longest allowed (4095 bytes) still has its
 * validators and max-age kept on disk: a new host needs no request.
 * (meta.json was read up to 4 KiB, and such a URL made it longer.) */
TEST(fresh_index_of_a_long_url_needs_no_request)
{
    const char *www = http_site(NULL);
    char seg[251], rel[4200] = "www";
    memset(seg, 'd', 250);
    seg[250] = '\0';
    for (int i = 0; i < 16; i++)
        snprintf(rel + strlen(rel), sizeof rel - strlen(rel), "/%s", seg);
    const char *deep = tmp_mkdir("%s", rel);
    fixture_copy("counter", "%s/counter.so", rel);
    http_index_dir(deep, NULL);
    http_server *srv = http_start(www, "--max-age 3600");
    const char *entry = http_url(srv, "ok%s/", rel + 3);
    ASSERT_TRUE(strlen(entry) > 4000 && strlen(entry) < 4095);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = http_host(entry, &lc);
    import_ok(h, "counter");
    mh_host_free(h);
    h = http_host(entry, &lc);
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    ASSERT_REQUESTS(srv, "/index.json", 1);
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

/* A fresh index's max-age counts from when it was fetched.  A host whose
 * clock ran 30 days ahead kept it as fresh until then (plus its max-age);
 * with the clock right again, a new host asks the server at once rather
 * than trusting it for the 30 days (it was trusted up to a year). */
TEST(fresh_index_from_a_clock_that_was_ahead_is_asked_again)
{
    http_server *srv = http_start(http_site(NULL), "--max-age 3600");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h, "counter");
    mh_host_free(h);
    h = http_host(http_url(srv, "ok/"), &lc); /* fresh: no request */
    import_ok(h, "counter");
    mh_host_free(h);
    ASSERT_REQUESTS(srv, "/index.json", 1);

    meta_set_times((const char *[]){"fetched_at", "fresh_until", NULL},
                   30 * 86400.0, true);
    h = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    mh_host_free(h);
    ASSERT_REQUESTS(srv, "/index.json", 2);
    http_stop(srv);
    log_capture_free(&lc);
}

/* A cache directory whose path leaves no room for an entry's files in it
 * (each path is at most PATH_MAX) is not used, and said so: the entry
 * works from the server.  (Its serial floor "could not be read now", at
 * every find, and the entry served nothing.) */
TEST(cache_directory_too_deep_for_its_files_is_not_used)
{
    char seg[201], rel[4200] = "deep";
    memset(seg, 'c', 200);
    seg[200] = '\0';
    /* 4060 bytes: room for the directory's own checks and blobs/, none
     * for http/<key>/serial (38 + 7 more). */
    size_t base = strlen(tmp_dir()) + 1, want = 4060;
    while (want - base - strlen(rel) > 201)
        snprintf(rel + strlen(rel), sizeof rel - strlen(rel), "/%s", seg);
    snprintf(rel + strlen(rel), sizeof rel - strlen(rel), "/%.*s",
             (int)(want - base - strlen(rel) - 1), seg);
    const char *cache = tmp_mkdir("%s", rel);
    ASSERT_EQ_INT(strlen(cache), want);
    ASSERT_EQ_INT(chmod(tmp_path("deep"), 0700), 0);
    http_server *srv = http_start(http_site(NULL), "--max-age 3600");
    log_capture lc;
    log_capture_init(&lc);
    mh_config cfg = http_cfg(http_url(srv, "ok/"), &lc);
    cfg.cache_dir = cache;
    mh_host *h = host_new_cfg(&cfg);
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    ASSERT_LOG(&lc, MH_LOG_WARN, "the disk cache is not used");
    ASSERT_LOG(&lc, MH_LOG_WARN, "too long for the files kept there");
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(changed_index_is_picked_up)
{
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    log_capture lc;
    mh_host *h1, *h2;
    mh_module *mod;

    log_capture_init(&lc);
    h1 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h1, "counter");
    ASSERT_STATUS(mh_import(h1, "extra", &mod, ERR), MH_ENOTFOUND);
    mh_host_free(h1);

    fixture_copy("answer7", "www/extra.so");
    http_index_dir(www, NULL);
    h2 = http_host(http_url(srv, "ok/"), &lc);
    mod = import_ok(h2, "extra");
    ASSERT_EQ_INT(call_int(mod, "value"), 7);
    ASSERT_REQUESTS(srv, "GET /ok/index.json 200", 2);
    mh_host_free(h2);
    http_stop(srv);
    log_capture_free(&lc);
}

/* --------------------------------------------------------------- cache */

TEST(cached_module_needs_no_download)
{
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    const char *blob = tmp_path("cache/blobs/%s",
                                sha256_of(str_fmt("%s/counter.so", www)));
    log_capture lc;
    mh_host *h1, *h2;
    mh_module *mod;

    log_capture_init(&lc);
    h1 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);
    /* content-addressed: the blob is named by the SHA-256 of its bytes */
    ASSERT_TRUE(file_exists(blob));
    ASSERT_TRUE(files_equal(blob, str_fmt("%s/counter.so", www)));
    ASSERT_TRUE(file_exists(tmp_path("cache/http")));

    h2 = http_host(http_url(srv, "ok/"), &lc);
    mod = import_ok(h2, "counter");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mod), http_url(srv, "ok/counter.so"));
    ASSERT_REQUESTS(srv, "/ok/counter.so", 1);
    http_assert_cache_clean();
    mh_host_free(h2);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(cached_module_is_mapped_from_its_blob)
{
    /* downloaded bytes load from a sealed memfd; from the cache, the blob
     * file itself is mapped once its SHA-256 checks out -- no copy */
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    const char *blob = tmp_path("cache/blobs/%s",
                                sha256_of(str_fmt("%s/counter.so", www)));
    log_capture lc;
    mh_host *h1, *h2;

    log_capture_init(&lc);
    h1 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h1, "counter");
    ASSERT_EQ_INT(maps_count(blob, ""), 0);
    ASSERT_TRUE(maps_count("memfd:", "") > 0);
    mh_host_free(h1);

    h2 = http_host_verbose(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(h2, "counter"), "value"), 42);
    ASSERT_TRUE(maps_count(blob, "") > 0);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "mapping the verified copy"), 1);
    ASSERT_REQUESTS(srv, "GET /ok/counter.so 200", 1);
    mh_host_free(h2);
    ASSERT_EQ_INT(maps_count(blob, ""), 0);
    http_stop(srv);
    log_capture_free(&lc);
}

/* The cached blob of counter.so made unfit to map by `spoil` (a shell
 * command on $B); the module still loads, from verified bytes in memory
 * (read from the cache, or downloaded again: `gets` GETs in all), and the
 * blob is never mapped. */
static void blob_not_mapped(const char *spoil, const char *why, int reads,
                            int gets)
{
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    const char *blob = tmp_path("cache/blobs/%s",
                                sha256_of(str_fmt("%s/counter.so", www)));
    log_capture lc;
    mh_host *h;
    int st;

    log_capture_init(&lc);
    h = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h, "counter");
    mh_host_free(h);
    sh_run(str_fmt("B=%s; %s", sh_quote(blob), spoil), &st);
    ASSERT_EQ_INT(st, 0);

    h = http_host_verbose(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    ASSERT_EQ_INT(maps_count(blob, ""), 0);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "mapping the verified copy"), 0);
    if (log_capture_count(&lc, -1, why) != (size_t)reads)
        FAIL("want %d line(s) saying '%s'; log:%s", reads, why,
             log_capture_dump(&lc));
    ASSERT_REQUESTS(srv, "GET /ok/counter.so 200", gets);
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(blob_writable_by_others_is_not_mapped)
{
    /* not read by the cache's reader either: fetched again */
    blob_not_mapped("chmod 0666 \"$B\"", "writable by group or others", 2,
                    2);
}

TEST(blob_on_a_noexec_mount_is_not_mapped)
{
    /* It could not be mapped to run ("failed to map segment"): the
     * module is read and loaded from memory, at every import, with no
     * fetch again (the copy's bytes are good). */
    if (unshare(CLONE_NEWNS) != 0 ||
        mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0)
        SKIP("no mount namespace of its own here: %s", strerror(errno));
    const char *cache = tmp_path("cache");
    tmp_mkdir("cache");
    if (mount(cache, cache, "none", MS_BIND, NULL) != 0 ||
        mount("none", cache, "none", MS_REMOUNT | MS_BIND | MS_NOEXEC,
              NULL) != 0)
        SKIP("cannot make %s noexec here: %s", cache, strerror(errno));
    blob_not_mapped("true", "mounted noexec", 1, 1);
    ASSERT_EQ_INT(umount(cache), 0);
}

TEST(blob_that_is_a_link_is_not_mapped)
{
    /* not followed here, nor by the cache's reader: fetched again */
    blob_not_mapped("cp \"$B\" \"$B.real\" && ln -sf \"$B.real\" \"$B\"",
                    "it is a symbolic link", 1, 2);
}

TEST(cached_blob_over_max_module_size_is_refused)
{
    /* a host whose limit the cached module exceeds neither maps it nor
     * reads it: the import fails naming the limit, nothing is fetched */
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    const char *blob = tmp_path("cache/blobs/%s",
                                sha256_of(str_fmt("%s/counter.so", www)));
    log_capture lc;
    mh_config cfg;
    mh_host *h;

    log_capture_init(&lc);
    h = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h, "counter");
    mh_host_free(h);
    if (file_size(blob) <= 8192)
        FAIL("counter.so is too small for this test");
    cfg = http_cfg(http_url(srv, "ok/"), &lc);
    cfg.flags |= MH_CONFIG_VERBOSE;
    cfg.max_module_size = 8192;
    h = host_new_cfg(&cfg);
    import_fails(h, "counter");
    ASSERT_CONTAINS(ERR_MSG(), "max_module_size");
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "larger than the host's "
                                             "max_module_size"), 1);
    ASSERT_EQ_INT(maps_count(blob, ""), 0);
    ASSERT_REQUESTS(srv, "GET /ok/counter.so 200", 1);
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(damaged_blob_is_downloaded_again)
{
    /* caches are disposable: a blob whose bytes no longer hash to its
     * name is never loaded, the module is fetched again */
    blob_not_mapped("printf 'damaged' | dd of=\"$B\" bs=1 seek=4096 "
                    "conv=notrunc status=none",
                    "its SHA-256 is not the one expected", 1, 2);
}

/* ------------------------------------------------------------- rollback */

/* www's index.json with its "serial" set to `serial` (-1: taken out). */
static void set_serial(const char *www, long long serial)
{
    int st;
    sh_run(str_fmt("python3 -c 'import json,sys; p=sys.argv[1]; "
                   "d=json.load(open(p)); s=int(sys.argv[2]); "
                   "d.pop(\"serial\", None) if s < 0 else d.update(serial=s); "
                   "open(p, \"w\").write(json.dumps(d))' %s %lld",
                   sh_quote(str_fmt("%s/index.json", www)), serial),
           &st);
    ASSERT_EQ_INT(st, 0);
}

TEST(older_index_is_refused_as_a_rollback)
{
    /* A host that has an index (cached) is served an older one: a lower
     * serial, or none.  It keeps the newer index, warns once naming both
     * serials, and does not ask again at every find. */
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    log_capture lc;
    mh_host *h;

    log_capture_init(&lc);
    fixture_copy("answer7", "www/newer.so");
    http_index_dir(www, NULL);
    set_serial(www, 1000);
    h = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(h, "newer"), "value"), 7);
    mh_host_free(h);

    for (int older = 0; older < 2; older++) {
        /* the index of the tree without newer.so, serial 999, then none */
        unlink(str_fmt("%s/newer.so", www));
        http_index_dir(www, NULL);
        set_serial(www, older ? -1 : 999);
        h = http_host(http_url(srv, "ok/"), &lc);
        mh_module *mod = import_ok(h, "newer"); /* from the newer index */
        ASSERT_EQ_INT(call_int(mod, "value"), 7);
        ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
        ASSERT_LOG(&lc, MH_LOG_WARN, "rollback");
        ASSERT_LOG(&lc, MH_LOG_WARN,
                   older ? "it has no serial, unlike an index this entry "
                           "had (serial 1000)"
                         : "its serial (999) is older than that of an index "
                           "this entry had (serial 1000)");
        mh_host_free(h);
        fixture_copy("answer7", "www/newer.so");
    }
    /* one index request per host: a rollback is not asked again at the
     * next find */
    ASSERT_REQUESTS(srv, "GET /ok/index.json", 3);

    /* a newer one is taken */
    http_index_dir(www, NULL);
    set_serial(www, 1001);
    unlink(str_fmt("%s/newer.so", www));
    http_index_dir(www, NULL); /* serial: at least the time, > 1001 */
    h = http_host(http_url(srv, "ok/"), &lc);
    mh_module *mod;
    ASSERT_STATUS(mh_import(h, "newer", &mod, ERR), MH_ENOTFOUND);
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

static mh_host *trusting_host(const char *entry, const char *trust,
                              log_capture *lc);

/* A host on entry that trusts key's public half. */
#define keyed_host(entry, key, lc) \
    trusting_host((entry), str_fmt("%s.pub", (key)), (lc))

/* value() of module `name` as a new keyed host imports it. */
static int keyed_value(const char *entry, const char *key, log_capture *lc,
                       const char *name)
{
    mh_host *h = keyed_host(entry, key, lc);
    int v = call_int(import_ok(h, name), "value");
    mh_host_free(h);
    return v;
}

/* Why a new keyed host finds no module `name` (it must not). */
static const char *keyed_refusal(const char *entry, const char *key,
                                 log_capture *lc, const char *name)
{
    mh_host *h = keyed_host(entry, key, lc);
    mh_module *mod;
    ASSERT_STATUS(mh_import(h, name, &mod, ERR), MH_ENOTFOUND);
    mh_host_free(h);
    return str_fmt("%s", ERR_MSG());
}

TEST(rollback_after_a_refused_answer_is_refused_too)
{
    /* One definite refusal (a 404) drops the cached index; the serial of
     * that signed index stays the floor, so an older index, validly
     * signed, served next is still a rollback -- in this host and in the
     * next -- and nothing is served in its place. */
    const char *key = http_keygen("a");
    const char *keyfile = str_fmt("%s.key", key);
    const char *www = http_site(keyfile);
    http_server *srv = http_start(www, "--max-age 0");
    const char *entry = http_url(srv, "switch/");
    log_capture lc;
    mh_host *h;
    mh_module *mod;
    int st;

    log_capture_init(&lc);
    http_set_mode(srv, "ok");
    /* the old index, signed, kept aside */
    sh_run(str_fmt("cp %s/index.json %s/old.json && cp %s/index.json.sig "
                   "%s/old.sig", sh_quote(www), sh_quote(tmp_dir()),
                   sh_quote(www), sh_quote(tmp_dir())), &st);
    ASSERT_EQ_INT(st, 0);
    fixture_copy("answer7", "www/newer.so");
    http_index_dir(www, keyfile); /* a higher serial */
    ASSERT_EQ_INT(keyed_value(entry, key, &lc, "newer"), 7);

    http_set_mode(srv, "404");
    h = keyed_host(entry, key, &lc);
    ASSERT_STATUS(mh_import(h, "counter", &mod, ERR), MH_ENOTFOUND);
    sh_run(str_fmt("cp %s/old.json %s/index.json && cp %s/old.sig "
                   "%s/index.json.sig && rm %s/newer.so",
                   sh_quote(tmp_dir()), sh_quote(www), sh_quote(tmp_dir()),
                   sh_quote(www), sh_quote(www)), &st);
    ASSERT_EQ_INT(st, 0);
    http_set_mode(srv, "ok");
    mh_invalidate_caches(h);
    ASSERT_STATUS(mh_import(h, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "rollback");
    mh_host_free(h);
    ASSERT_CONTAINS(keyed_refusal(entry, key, &lc, "counter"), "rollback");
    http_stop(srv);
    log_capture_free(&lc);
}

/* The one file NAME under the test cache's http/<key>/ directory. */
static const char *cached_http_file(const char *name)
{
    int st;
    const char *f = sh_run(str_fmt("ls -d %s/http/*/%s",
                                   sh_quote(tmp_path("cache")), name), &st);
    ASSERT_EQ_INT(st, 0);
    return str_fmt("%.*s", (int)strcspn(f, "\n"), f);
}

/* The serial floor file spoiled -- its text made no serial, or its mode
 * opened to others, who could have lowered it -- lets no index in (not
 * the cached one either), saying why and naming it; mended, all is as
 * before. */
static void spoiled_floor_lets_no_index_in(bool by_mode)
{
    const char *key = http_keygen("a");
    const char *www = http_site(str_fmt("%s.key", key));
    http_server *srv = http_start(www, "--max-age 0");
    const char *entry = http_url(srv, "ok/");
    log_capture lc;

    log_capture_init(&lc);
    ASSERT_EQ_INT(keyed_value(entry, key, &lc, "counter"), 42);
    const char *floor = cached_http_file("serial");
    if (by_mode)
        ASSERT_EQ_INT(chmod(floor, 0666), 0);
    else
        file_write(floor, "not a number\n");
    const char *why = keyed_refusal(entry, key, &lc, "counter");
    ASSERT_CONTAINS(why, floor);
    ASSERT_CONTAINS(why, by_mode ? "could have been written by another user"
                                 : "is not a serial");
    if (by_mode) {
        ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("not reading the cache file "
                                             "%s", floor));
        ASSERT_EQ_INT(chmod(floor, 0600), 0);
    } else {
        ASSERT_EQ_INT(unlink(floor), 0);
    }
    ASSERT_EQ_INT(keyed_value(entry, key, &lc, "counter"), 42);
    ASSERT_TRUE(file_exists(floor));
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(a_floor_file_that_is_no_serial_lets_no_index_in)
{
    spoiled_floor_lets_no_index_in(false);
}

TEST(a_floor_file_others_could_write_lets_no_index_in)
{
    spoiled_floor_lets_no_index_in(true);
}

/* A cached index another user could have written is not read: asked for
 * again, with a warning naming it, and cached anew. */
TEST(a_cached_index_others_could_write_is_not_read)
{
    http_server *srv = http_start(http_site(NULL), "--max-age 3600");
    log_capture lc;

    log_capture_init(&lc);
    mh_host *h = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h, "counter");
    mh_host_free(h);
    ASSERT_REQUESTS(srv, "/ok/index.json", 1);
    const char *idx = cached_http_file("index.json");
    ASSERT_EQ_INT(chmod(idx, 0646), 0);
    h = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    mh_host_free(h);
    /* fresh for an hour, yet asked for again */
    ASSERT_REQUESTS(srv, "/ok/index.json", 2);
    ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("not reading the cache file %s",
                                         idx));
    struct stat sb;
    ASSERT_EQ_INT(stat(idx, &sb), 0);
    ASSERT_EQ_INT(sb.st_mode & 077, 0);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(unsigned_index_never_sets_the_floor_for_hosts_with_keys)
{
    /* A host without keys takes an index nobody signed, with a huge
     * serial: it must not lock a host with keys, sharing the cache, out
     * of the real, signed index. */
    const char *key = http_keygen("a");
    const char *www = http_site(str_fmt("%s.key", key));
    http_server *srv = http_start(www, "--max-age 0");
    const char *entry = http_url(srv, "ok/");
    log_capture lc;
    mh_host *h;
    int st;

    log_capture_init(&lc);
    sh_run(str_fmt("cp %s/index.json %s/real.json", sh_quote(www),
                   sh_quote(tmp_dir())), &st);
    ASSERT_EQ_INT(st, 0);
    set_serial(www, 9007199254740991LL); /* its signature is now wrong */
    h = http_host(entry, &lc); /* no keys: taken */
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    mh_host_free(h);
    sh_run(str_fmt("cp %s/real.json %s/index.json", sh_quote(tmp_dir()),
                   sh_quote(www)), &st);
    ASSERT_EQ_INT(st, 0);
    ASSERT_EQ_INT(keyed_value(entry, key, &lc, "counter"), 42);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "rollback"), 0);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(index_without_a_cached_one_is_taken_whatever_its_serial)
{
    /* a host with nothing cached has nothing to compare with */
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    log_capture lc;

    log_capture_init(&lc);
    set_serial(www, 1);
    mh_host *h = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

/* --------------------------------------------------------------- stamps */

/* The unsure window of cache/stamp.c (MH_UNSURE_NS), and a little more:
 * a blob changed less than this long ago is hashed and not stamped. */
#define STAMP_WAIT_US (2200 * 1000)

/* counter.so downloaded into the cache by one host; its blob's path and
 * its stamp's. */
static void cache_counter(http_server *srv, const char *www, log_capture *lc,
                          const char **blob, const char **stamp)
{
    const char *sha = sha256_of(str_fmt("%s/counter.so", www));
    mh_host *h = http_host(http_url(srv, "ok/"), lc);
    import_ok(h, "counter");
    mh_host_free(h);
    *blob = tmp_path("cache/blobs/%s", sha);
    *stamp = tmp_path("cache/verified/%s", sha);
}

/* A verbose host imports counter (42), mapping its cached blob `mapped`
 * times, and counts the log lines with `needle`. */
static int import_counting(http_server *srv, int mapped, const char *needle)
{
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = http_host_verbose(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "mapping the verified copy"),
                  mapped);
    int n = log_capture_count(&lc, -1, needle);
    mh_host_free(h);
    log_capture_free(&lc);
    return n;
}

static int fail_writes(void *ud, const char *site)
{
    (void)ud;
    return strcmp(site, "write") == 0;
}

TEST(blob_hashed_once_settled_is_stamped_and_not_hashed_again)
{
    /* the first host to hash a blob that has been still for 2 s records
     * a stamp; the next maps the same unchanged file without hashing it */
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    const char *blob, *stamp;
    log_capture lc;
    struct stat st;

    log_capture_init(&lc);
    cache_counter(srv, www, &lc, &blob, &stamp);
    usleep(STAMP_WAIT_US);
    /* a stamp that cannot be written leaves nothing, and costs nothing
     * but the next host's hash */
    mh_config cfg = http_cfg(http_url(srv, "ok/"), &lc);
    cfg.fault = fail_writes;
    mh_host *h = host_new_cfg(&cfg);
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    mh_host_free(h);
    ASSERT_FALSE(file_exists(stamp));
    ASSERT_EQ_INT(tree_count(tmp_path("cache/verified"), "", NULL), 0);
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 0);
    ASSERT_TRUE(file_exists(stamp));
    ASSERT_EQ_INT(stat(stamp, &st), 0);
    ASSERT_EQ_INT((int)(st.st_mode & 07777), 0600);
    ASSERT_EQ_INT(stat(tmp_path("cache/verified"), &st), 0);
    ASSERT_EQ_INT((int)(st.st_mode & 07777), 0700);
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 1);
    ASSERT_EQ_INT(import_counting(srv, 1, "recorded the stamp"), 0);

    /* a stamp that is not a whole record of this file is not believed:
     * the blob is hashed and stamped again (a short one, then one of a
     * stamp's length, 136 bytes) */
    file_write(stamp, "MHSTAMP1 not a stamp");
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 0);
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 1);
    file_write(stamp, str_fmt("MHSTAMP1%0128d", 0));
    ASSERT_EQ_INT(file_size(stamp), 136);
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 0);
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 1);
    /* ... nor is a whole one with a byte more (it is read in one call of
     * a byte more than a stamp) */
    FILE *f = fopen(stamp, "a");
    ASSERT_NOT_NULL(f);
    ASSERT_EQ_INT(fputc('x', f), 'x');
    ASSERT_EQ_INT(fclose(f), 0);
    ASSERT_EQ_INT(file_size(stamp), 137);
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 0);
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 1);
    ASSERT_REQUESTS(srv, "GET /ok/counter.so 200", 1);
    http_assert_cache_clean();
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(blob_changed_lately_is_hashed_and_not_stamped)
{
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    const char *blob, *stamp;
    log_capture lc;

    log_capture_init(&lc);
    cache_counter(srv, www, &lc, &blob, &stamp);
    /* the blob changed just now, whatever the time the download took */
    ASSERT_EQ_INT(chmod(blob, 0600), 0);
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 0);
    ASSERT_FALSE(file_exists(stamp));
    ASSERT_EQ_INT(chmod(blob, 0600), 0);
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 0);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(stamped_blob_changed_in_place_is_hashed_and_refused)
{
    /* the same size, the same mtime (put back), the same inode: only the
     * ctime tells, and that is enough */
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    const char *blob, *stamp;
    log_capture lc;
    int st;

    log_capture_init(&lc);
    cache_counter(srv, www, &lc, &blob, &stamp);
    usleep(STAMP_WAIT_US);
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 0);
    ASSERT_TRUE(file_exists(stamp));
    sh_run(str_fmt("B=%s; touch -r \"$B\" \"$B.t\" && "
                   "printf 'damaged' | dd of=\"$B\" bs=1 seek=4096 "
                   "conv=notrunc status=none && touch -r \"$B.t\" \"$B\" && "
                   "rm \"$B.t\"", sh_quote(blob)), &st);
    ASSERT_EQ_INT(st, 0);
    ASSERT_EQ_INT(import_counting(srv, 0, "its SHA-256 is not the one "
                                          "expected"), 1);
    ASSERT_REQUESTS(srv, "GET /ok/counter.so 200", 2);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(no_stamps_where_their_directory_is_not_private)
{
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    const char *blob, *stamp;
    log_capture lc;

    log_capture_init(&lc);
    cache_counter(srv, www, &lc, &blob, &stamp);
    ASSERT_EQ_INT(mkdir(tmp_path("cache/verified"), 0700), 0);
    ASSERT_EQ_INT(chmod(tmp_path("cache/verified"), 0777), 0);
    usleep(STAMP_WAIT_US);
    ASSERT_EQ_INT(import_counting(srv, 1, "no stamps kept"), 1);
    ASSERT_FALSE(file_exists(stamp));
    ASSERT_EQ_INT(import_counting(srv, 1, "verified by its stamp"), 0);
    http_stop(srv);
    log_capture_free(&lc);
}

/* -------------------------------------------------------------- offline */

TEST(offline_refused_uses_cache)
{
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    const char *entry = http_url(srv, "ok/");
    log_capture lc;
    mh_host *h1, *h2;
    mh_module *mod;

    log_capture_init(&lc);
    h1 = http_host(entry, &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);
    http_stop(srv); /* connection refused from now on */

    h2 = http_host(entry, &lc);
    mod = import_ok(h2, "counter");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mod), http_url(srv, "ok/counter.so"));
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "ok"));
    mh_host_free(h2);
    log_capture_free(&lc);
}

TEST(cache_others_can_write_is_not_used)
{
    /* Without trusted keys the cached index vouches for the cached
     * blobs: in a cache directory others can write, both could be
     * planted.  It is not used -- not even offline -- and says why. */
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    const char *entry = http_url(srv, "ok/");
    const char *cache = tmp_path("cache");
    log_capture lc;
    mh_host *h1, *h2;

    log_capture_init(&lc);
    h1 = http_host(entry, &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);
    http_stop(srv);
    ASSERT_EQ_INT(chmod(cache, 0777), 0);

    h2 = http_host(entry, &lc);
    import_fails(h2, "counter");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "ok"));
    ASSERT_LOG(&lc, MH_LOG_WARN, "disk cache is not used");
    ASSERT_LOG(&lc, MH_LOG_WARN, cache);
    mh_host_free(h2);
    log_capture_free(&lc);
}

TEST(offline_refused_uncached_fails_naming_url)
{
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    const char *entry = http_url(srv, "ok/");
    log_capture lc;
    mh_host *h1, *h2;

    log_capture_init(&lc);
    h1 = http_host(entry, &lc);
    import_ok(h1, "counter"); /* the index is cached, answer7 is not */
    mh_host_free(h1);
    http_stop(srv);

    h2 = http_host(entry, &lc);
    import_fails(h2, "answer7");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "ok/answer7.so"));
    ASSERT_CONTAINS_CI(ERR_MSG(), "connect");
    ASSERT_EQ_INT(http_blob_count(), 1);
    mh_host_free(h2);
    log_capture_free(&lc);
}

TEST(offline_500_uses_cache)
{
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    const char *entry = http_url(srv, "switch/");
    log_capture lc;
    mh_host *h1, *h2;

    log_capture_init(&lc);
    h1 = http_host(entry, &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);
    http_set_mode(srv, "500");

    h2 = http_host(entry, &lc);
    ASSERT_EQ_INT(call_int(import_ok(h2, "counter"), "value"), 42);
    ASSERT_REQUESTS(srv, "GET /switch/index.json 500", 1);
    ASSERT_REQUESTS(srv, "/switch/counter.so", 1);
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "switch"));
    mh_host_free(h2);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(offline_429_uses_cache_and_keeps_it)
{
    /* 429 (a rate-limiting CDN) and 408 say "not now", not "no": the
     * cached index stands in, and is still there afterwards. */
    static const char *const modes[] = {"429", "408"};
    for (size_t i = 0; i < 2; i++) {
        http_server *srv = http_start(http_site(NULL), "--max-age 0");
        const char *entry = http_url(srv, "switch/");
        log_capture lc;
        mh_host *h;

        log_capture_init(&lc);
        h = http_host(entry, &lc);
        import_ok(h, "counter");
        mh_host_free(h);
        http_set_mode(srv, modes[i]);
        for (int round = 0; round < 2; round++) {
            h = http_host(entry, &lc);
            ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
            mh_host_free(h);
        }
        ASSERT_REQUESTS(srv, str_fmt("GET /switch/index.json %s", modes[i]),
                        2);
        /* the blob is cached by content: the second server is never
         * asked for it */
        ASSERT_REQUESTS(srv, "/switch/counter.so", i == 0 ? 1 : 0);
        ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "switch"));
        ASSERT_LOG(&lc, MH_LOG_WARN, modes[i]);
        http_stop(srv);
        log_capture_free(&lc);
    }
}

TEST(offline_500_uncached_fails_naming_url)
{
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    const char *entry = http_url(srv, "switch/");
    log_capture lc;
    mh_host *h1, *h2;

    log_capture_init(&lc);
    h1 = http_host(entry, &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);
    http_set_mode(srv, "500");

    h2 = http_host(entry, &lc);
    import_fails(h2, "answer7");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "switch/answer7.so"));
    ASSERT_CONTAINS(ERR_MSG(), "500");
    /* the server is back: the same host imports it now */
    http_set_mode(srv, "ok");
    ASSERT_EQ_INT(call_int(import_ok(h2, "answer7"), "value"), 7);
    mh_host_free(h2);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(module_404_names_url)
{
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    if (unlink(str_fmt("%s/answer7.so", www)) < 0)
        FAIL("unlink: %s", strerror(errno));
    host = http_host(http_url(srv, "ok/"), &lc);
    import_fails(host, "answer7");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "ok/answer7.so"));
    ASSERT_CONTAINS(ERR_MSG(), "404");
    ASSERT_REQUESTS(srv, "GET /ok/answer7.so 404", 1);
    /* the rest of the entry still works */
    import_ok(host, "counter");
    ASSERT_EQ_INT(http_blob_count(), 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(index_404_skips_entry)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    const char *dir = tmp_mkdir("fsdir");
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    fixture_copy("answer7", "fsdir/local.so");
    host = http_host(path_join((const char *const[]){
                         http_url(srv, "404/"), dir, NULL}),
                     &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "404/index.json"));
    ASSERT_LOG(&lc, MH_LOG_WARN, "404");
    /* the next entry is searched as usual */
    mod = import_ok(host, "local");
    ASSERT_EQ_STR(mh_module_finder(mod), "fs");
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(index_500_without_cache_skips_entry)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "500/"), &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "500/index.json"));
    ASSERT_LOG(&lc, MH_LOG_WARN, "500");
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(refused_without_cache_skips_entry)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    const char *entry = http_url(srv, "ok/");
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    http_stop(srv);
    host = http_host(entry, &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "ok"));
    mh_host_free(host);
    log_capture_free(&lc);
}

/* -------------------------------------------------------------- signing */

/* A host on entry that trusts the public keys in trust (';'-separated). */
static mh_host *trusting_host(const char *entry, const char *trust,
                              log_capture *lc)
{
    mh_config cfg = http_cfg(entry, lc);
    cfg.trust = trust;
    return host_new_cfg(&cfg);
}

TEST(signed_index_is_accepted)
{
    const char *key = http_keygen("a");
    const char *www = http_site(str_fmt("%s.key", key));
    http_server *srv = http_start(www, NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    ASSERT_EQ_INT(file_size(str_fmt("%s/index.json.sig", www)), 64);
    host = trusting_host(http_url(srv, "ok/"), str_fmt("%s.pub", key), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    ASSERT_REQUESTS(srv, "GET /ok/index.json.sig 200", 1);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(signed_blob_is_hashed_at_every_import)
{
    /* a signature's promise never rests on stamps in the cache directory:
     * a blob the signed index vouches for is hashed at every import and
     * never stamped -- nor does a stamp that a host without the keys,
     * sharing the cache, wrote for the same blob count */
    const char *key = http_keygen("a");
    const char *www = http_site(str_fmt("%s.key", key));
    http_server *srv = http_start(www, "--max-age 0");
    const char *stamp = tmp_path("cache/verified/%s",
                                 sha256_of(str_fmt("%s/counter.so", www)));
    log_capture lc, last;
    mh_host *h;

    log_capture_init(&lc);
    log_capture_init(&last);
    mh_config plain = http_cfg(http_url(srv, "ok/"), &lc);
    plain.flags |= MH_CONFIG_VERBOSE;
    mh_config cfg = plain;
    cfg.trust = str_fmt("%s.pub", key);
    for (int i = 0; i < 2; i++) {
        h = host_new_cfg(&cfg);
        ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
        mh_host_free(h);
        if (i == 0)
            usleep(STAMP_WAIT_US);
    }
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "mapping the verified copy"), 1);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "recorded the stamp"), 0);
    ASSERT_FALSE(file_exists(stamp));

    h = host_new_cfg(&plain); /* no keys: it stamps the blob */
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    mh_host_free(h);
    ASSERT_TRUE(file_exists(stamp));

    cfg.log_ud = &last;
    h = host_new_cfg(&cfg);
    ASSERT_EQ_INT(call_int(import_ok(h, "counter"), "value"), 42);
    mh_host_free(h);
    ASSERT_EQ_INT(log_capture_count(&last, -1, "mapping the verified copy"),
                  1);
    ASSERT_EQ_INT(log_capture_count(&last, -1, "verified by its stamp"), 0);
    ASSERT_REQUESTS(srv, "GET /ok/counter.so 200", 1);
    http_stop(srv);
    log_capture_free(&lc);
    log_capture_free(&last);
}

/* With key a trusted, the entry on mode is refused, with a warning that
 * mentions the signature. */
static void signature_refused(const char *www, const char *mode,
                              const char *trust)
{
    http_server *srv = http_start(www, NULL);
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    host = trusting_host(http_url(srv, "%s/", mode), trust, &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, "signature");
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "%s", mode));
    ASSERT_REQUESTS(srv, ".so ", 0);
    ASSERT_EQ_INT(http_blob_count(), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(unsigned_index_refused_when_keys_trusted)
{
    const char *key = http_keygen("a");
    signature_refused(http_site(NULL), "ok", str_fmt("%s.pub", key));
}

TEST(signature_that_cannot_be_had_says_why)
{
    /* A signature over its size limit was "no signature": the reason
     * its request failed is said now.  (Found by a sweep.) */
    const char *key = http_keygen("a");
    const char *www = http_site(str_fmt("%s.key", key));
    char big[8192];
    memset(big, 'x', sizeof big);
    file_write_bytes(str_fmt("%s/index.json.sig", www), big, sizeof big);
    http_server *srv = http_start(www, NULL);
    log_capture lc;
    mh_module *mod;

    log_capture_init(&lc);
    mh_host *host = trusting_host(http_url(srv, "ok/"),
                                  str_fmt("%s.pub", key), &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("no signature (index.json.sig: GET "
                                         "%s: the response is larger than "
                                         "the limit of",
                                         http_url(srv, "ok/index.json.sig")));
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
    /* and a 404 says so */
    srv = http_start(www, NULL);
    log_capture_init(&lc);
    host = trusting_host(http_url(srv, "404-sig/"), str_fmt("%s.pub", key),
                         &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("no signature (index.json.sig: GET "
                                         "%s: HTTP 404)",
                                         http_url(srv, "404-sig/"
                                                  "index.json.sig")));
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(bad_signature_refused)
{
    const char *key = http_keygen("a");
    signature_refused(http_site(str_fmt("%s.key", key)), "badsig",
                      str_fmt("%s.pub", key));
}

TEST(short_signature_refused)
{
    const char *key = http_keygen("a");
    const char *www = http_site(str_fmt("%s.key", key));

    file_write(str_fmt("%s/index.json.sig", www), "not a signature");
    signature_refused(www, "ok", str_fmt("%s.pub", key));
}

TEST(signature_by_other_key_refused)
{
    const char *a = http_keygen("a"), *b = http_keygen("b");
    signature_refused(http_site(str_fmt("%s.key", b)), "ok",
                      str_fmt("%s.pub", a));
}

TEST(signature_of_other_index_refused)
{
    /* a valid signature, of the index as it was before a module was added */
    const char *key = http_keygen("a");
    const char *www = http_site(str_fmt("%s.key", key));
    const char *sig = str_fmt("%s/index.json.sig", www);
    const char *old = tmp_path("old.sig");

    file_copy(sig, old);
    fixture_copy("answer7", "www/extra.so");
    http_index_dir(www, str_fmt("%s.key", key));
    file_copy(old, sig);
    signature_refused(www, "ok", str_fmt("%s.pub", key));
}

TEST(any_trusted_key_will_do)
{
    const char *a = http_keygen("a"), *b = http_keygen("b");
    http_server *srv = http_start(http_site(str_fmt("%s.key", b)), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = trusting_host(http_url(srv, "ok/"),
                         str_fmt("%s.pub;%s.pub", a, b), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(signed_index_works_offline)
{
    const char *key = http_keygen("a");
    http_server *srv = http_start(http_site(str_fmt("%s.key", key)),
                                  "--max-age 0");
    const char *entry = http_url(srv, "ok/");
    const char *trust = str_fmt("%s.pub", key);
    log_capture lc;
    mh_host *h1, *h2;

    log_capture_init(&lc);
    h1 = trusting_host(entry, trust, &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);
    http_stop(srv);
    h2 = trusting_host(entry, trust, &lc);
    ASSERT_EQ_INT(call_int(import_ok(h2, "counter"), "value"), 42);
    mh_host_free(h2);
    log_capture_free(&lc);
}

/* A host that reads the environment (not isolated), with entry only. */
static mh_host *env_host(const char *entry, log_capture *lc)
{
    mh_config cfg = http_cfg(entry, lc);
    cfg.flags = MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path_env = "MH_TEST_HTTP_NO_PATH";
    env_unset("MH_TEST_HTTP_NO_PATH");
    return host_new_cfg(&cfg);
}

TEST(trust_from_environment_refuses_unsigned)
{
    const char *key = http_keygen("a");
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    env_set("MODHOST_TRUST", str_fmt("%s.pub", key));
    host = env_host(http_url(srv, "ok/"), &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, "signature");
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(trust_from_environment_accepts_signed)
{
    const char *key = http_keygen("a");
    http_server *srv = http_start(http_site(str_fmt("%s.key", key)), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    env_set("MODHOST_TRUST", str_fmt("%s.pub", key));
    host = env_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    ASSERT_REQUESTS(srv, "GET /ok/index.json.sig 200", 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(trust_naming_no_key_file_fails_closed)
{
    /* MODHOST_TRUST set, yet naming no file (";", or "$KEYS;" with KEYS
     * empty): trusting nothing would turn signature checks off.  The host
     * is not made, and the message says why; an empty value is unset. */
    static const char *const specs[] = {";", ";;", " ;"};
    log_capture lc;
    mh_host *host = NULL;

    log_capture_init(&lc);
    for (size_t i = 0; i < 2; i++) {
        env_set("MODHOST_TRUST", specs[i]);
        mh_config cfg = http_cfg("http://127.0.0.1:9/ok/", &lc);
        cfg.flags = MH_CONFIG_NO_DEFAULT_PATH;
        ASSERT_STATUS(mh_host_new(&cfg, &host, ERR), MH_EPATH);
        ASSERT_NULL(host);
        ASSERT_CONTAINS(ERR_MSG(), str_fmt("MODHOST_TRUST: trusted keys "
                                           "\"%s\" name no key file",
                                           specs[i]));
    }
    env_set("MODHOST_TRUST", specs[2]); /* " " is a file name, relative */
    mh_config cfg = http_cfg("http://127.0.0.1:9/ok/", &lc);
    cfg.flags = MH_CONFIG_NO_DEFAULT_PATH;
    ASSERT_STATUS(mh_host_new(&cfg, &host, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "MODHOST_TRUST: trusted key  : not an "
                               "absolute path");
    /* Every message says where the keys were named. */
    env_set("MODHOST_TRUST", "/nonexistent/k.pub");
    ASSERT_STATUS(mh_host_new(&cfg, &host, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "MODHOST_TRUST: trusted key /nonexistent/"
                               "k.pub: cannot read it: No such file");
    cfg.trust = "k.pub";
    ASSERT_STATUS(mh_host_new(&cfg, &host, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "mh_config.trust: trusted key k.pub: not an "
                               "absolute path");
    cfg.trust = NULL;
    env_set("MODHOST_TRUST", "");
    ASSERT_STATUS(mh_host_new(&cfg, &host, ERR), MH_OK);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(isolated_host_ignores_trust_variable)
{
    const char *key = http_keygen("a");
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    env_set("MODHOST_TRUST", str_fmt("%s.pub", key));
    host = http_host(http_url(srv, "ok/"), &lc); /* MH_CONFIG_ISOLATED */
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* ------------------------------------------------------------- mh_fetch */

struct progress {
    size_t calls, count, max_index;
    uint64_t last_now, last_total;
    const char *modules;
};

static int on_progress(void *ud, const char *module, size_t index,
                       size_t count, uint64_t now, uint64_t total)
{
    struct progress *p = ud;
    p->calls++;
    p->count = count;
    if (index > p->max_index)
        p->max_index = index;
    p->last_now = now;
    p->last_total = total;
    if (module && !strstr(p->modules, str_fmt("[%s]", module)))
        p->modules = str_fmt("%s[%s]", p->modules, module);
    return 0;
}

TEST(fetch_then_import_offline)
{
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    const char *entry = http_url(srv, "ok/");
    struct progress p = {.modules = ""};
    log_capture lc;
    mh_host *h1, *h2;
    size_t fetched = 0;

    log_capture_init(&lc);
    h1 = http_host(entry, &lc);
    ASSERT_STATUS(mh_fetch(h1, NULL, 0, on_progress, &p, &fetched, ERR),
                  MH_OK);
    ASSERT_EQ_INT(fetched, 3);
    ASSERT_EQ_INT(mh_host_module_count(h1), 0); /* fetched, not loaded */
    ASSERT_TRUE(p.calls >= 2);
    ASSERT_EQ_INT(p.count, 3);
    ASSERT_CONTAINS(p.modules, "[counter]");
    ASSERT_CONTAINS(p.modules, "[answer7]");
    /* pkg.mod has counter's bytes: already in the cache, no download */
    ASSERT_REQUESTS(srv, "GET /ok/answer7.so 200", 1);
    ASSERT_EQ_INT(http_blob_count(), 2); /* counter.so and pkg/mod.so are equal */
    http_assert_cache_clean();
    mh_host_free(h1);
    http_stop(srv);

    h2 = http_host(entry, &lc);
    ASSERT_EQ_INT(call_int(import_ok(h2, "counter"), "value"), 42);
    ASSERT_EQ_INT(call_int(import_ok(h2, "answer7"), "value"), 7);
    ASSERT_EQ_INT(call_int(import_ok(h2, "pkg.mod"), "value"), 42);
    mh_host_free(h2);
    log_capture_free(&lc);
}

static int cancel_at_once(void *ud, const char *module, size_t index,
                          size_t count, uint64_t now, uint64_t total)
{
    (void)module, (void)index, (void)count, (void)now, (void)total;
    ++*(size_t *)ud;
    return 1;
}

TEST(fetch_cancelled_by_its_progress_callback_stops_the_whole_job)
{
    /* "Return non-zero to cancel": that stopped the module being
     * downloaded, and the job went on to every other, each failing with
     * libcurl's "Callback aborted" and a warning, and the job returned
     * MH_EIO. */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    size_t fetched = 99, calls = 0;
    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_STATUS(mh_fetch(host, NULL, 0, cancel_at_once, &calls, &fetched,
                           ERR), MH_ECANCELED);
    ASSERT_CONTAINS(ERR_MSG(), "fetch: cancelled by the progress callback, "
                               "at module '");
    ASSERT_CONTAINS(ERR_MSG(), "(0 modules in the cache)");
    ASSERT_EQ_INT(fetched, 0);
    ASSERT_EQ_INT(calls, 1); /* one download begun, no other */
    ASSERT_TRUE(http_requests(srv, ".so ") <= 1);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    ASSERT_EQ_INT(http_blob_count(), 0);
    http_assert_cache_clean();
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

struct cancel_at {
    const char *module; /* the callback cancels at this one's download */
    size_t calls;
};

static int cancel_at_module(void *ud, const char *module, size_t index,
                            size_t count, uint64_t now, uint64_t total)
{
    (void)index, (void)count, (void)now, (void)total;
    struct cancel_at *c = ud;
    c->calls++;
    return module && strcmp(module, c->module) == 0;
}

TEST(fetch_cancelled_after_a_failure_says_cancelled_and_leaks_nothing)
{
    /* A module that failed (gone from the server: 404), then the job
     * cancelled at the next: the first failure's error was overwritten
     * by the cancellation's, and leaked (LeakSanitizer, at exit). */
    const char *www = http_site(NULL);
    ASSERT_EQ_INT(unlink(str_fmt("%s/answer7.so", www)), 0);
    http_server *srv = http_start(www, NULL);
    log_capture lc;
    alloc_tracker at;
    struct cancel_at c = {"counter", 0};
    size_t fetched = 99;
    log_capture_init(&lc);
    alloc_tracker_init(&at);
    mh_host *host = http_host_tracked(http_url(srv, "ok/"), &lc, &at);
    ASSERT_STATUS(mh_fetch(host, NULL, 0, cancel_at_module, &c, &fetched,
                           ERR), MH_ECANCELED);
    ASSERT_CONTAINS(ERR_MSG(), "at module 'counter'");
    ASSERT_REQUESTS(srv, "GET /ok/answer7.so 404", 1);
    ASSERT_EQ_INT(fetched, 0);
    (void)ERR; /* frees the error held there: all of the host's memory */
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    http_stop(srv);
    alloc_tracker_destroy(&at);
    log_capture_free(&lc);
}

/* What the fetch below does at its first progress call: the server's
 * index loses a.so, and the host reads it again. */
static struct {
    mh_host *host;
    const char *www;
    int changed;
} shrink;

static int shrink_index(void *ud, const char *module, size_t index,
                        size_t count, uint64_t now, uint64_t total)
{
    (void)ud;
    (void)module;
    (void)index;
    (void)count;
    (void)now;
    (void)total;
    if (shrink.changed++ == 0) {
        ASSERT_EQ_INT(unlink(str_fmt("%s/a.so", shrink.www)), 0);
        http_index_dir(shrink.www, NULL);
        mh_invalidate_caches(shrink.host);
        mh_spec_info info = {.size = sizeof info};
        ASSERT_STATUS(mh_find(shrink.host, "c", &info, NULL), MH_OK);
    }
    return 0;
}

TEST(fetch_of_every_module_survives_the_index_changing)
{
    /* [a, b, c]; while a downloads, the index becomes [b, c].  The fetch
     * went on by position in whatever index there was: b, now first,
     * was never fetched (and before a fix of the same day, a later
     * position read past the new index's end).  It goes on by name now
     * (from a review). */
    const char *www = tmp_mkdir("www");
    fixture_copy("answer7", "www/a.so");
    fixture_copy("counter", "www/b.so");
    fixture_copy("slow_init", "www/c.so");
    http_index_dir(www, NULL);
    const char *b_sha = sha256_of(str_fmt("%s/b.so", www));
    const char *c_sha = sha256_of(str_fmt("%s/c.so", www));
    http_server *srv = http_start(www, "--max-age 0");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = http_host(http_url(srv, "ok/"), &lc);
    memset(&shrink, 0, sizeof shrink);
    shrink.host = h;
    shrink.www = www;
    size_t fetched = 0;
    /* a went while it downloaded: that is the failure; b and c are
     * fetched all the same. */
    ASSERT_STATUS(mh_fetch(h, NULL, 0, shrink_index, NULL, &fetched, ERR),
                  MH_EIO);
    ASSERT_CONTAINS(ERR_MSG(), "module 'a'");
    ASSERT_TRUE(shrink.changed > 0);
    ASSERT_TRUE(file_exists(tmp_path("cache/blobs/%s", b_sha)));
    ASSERT_TRUE(file_exists(tmp_path("cache/blobs/%s", c_sha)));
    ASSERT_EQ_INT(fetched, 2);
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

static int import_same_bytes(void *ud, const char *module, size_t index,
                             size_t count, uint64_t now, uint64_t total)
{
    (void)module;
    (void)index;
    (void)count;
    (void)now;
    (void)total;
    int *imported = ud;
    if ((*imported)++ == 0) {
        mh_module *mod = NULL;
        ASSERT_STATUS(mh_import(shrink.host, "pkg.mod", &mod, NULL), MH_OK);
        ASSERT_EQ_INT(call_int(mod, "value"), 42);
    }
    return 0;
}

TEST(fetch_progress_importing_the_same_bytes_does_not_wait_for_itself)
{
    /* While counter downloads, the progress callback imports pkg.mod, the
     * same bytes from the same entry: a thread needing bytes on their way
     * waits for that download -- but not for its own, which would wait
     * for ever (from a review). */
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = http_host(http_url(srv, "ok/"), &lc);
    memset(&shrink, 0, sizeof shrink);
    shrink.host = h;
    int imported = 0;
    const char *names[] = {"counter"};
    ASSERT_STATUS(mh_fetch(h, names, 1, import_same_bytes, &imported, NULL,
                           ERR), MH_OK);
    ASSERT_TRUE(imported > 0);
    ASSERT_NOT_NULL(mh_host_module(h, "pkg.mod"));
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(fetch_into_a_cache_others_can_write_fails)
{
    /* Fetching is caching: where the cache is not used, mh_fetch says so
     * instead of downloading into nowhere and reporting success. */
    http_server *srv = http_start(http_site(NULL), NULL);
    const char *cache = tmp_mkdir("cache");
    log_capture lc;
    size_t fetched = 0;

    ASSERT_EQ_INT(chmod(cache, 0777), 0);
    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_STATUS(mh_fetch(host, NULL, 0, NULL, NULL, &fetched, ERR),
                  MH_EPATH);
    /* The cache is checked first, whatever the entries: the message
     * names it, and no request is made. */
    ASSERT_CONTAINS(ERR_MSG(), "nothing can be cached");
    ASSERT_CONTAINS(ERR_MSG(), cache);
    ASSERT_EQ_INT(fetched, 0);
    ASSERT_REQUESTS(srv, "GET", 0);
    ASSERT_EQ_INT(http_blob_count(), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(fetch_named_modules_only)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    static const char *const names[] = {"answer7"};
    log_capture lc;
    mh_host *host;
    size_t fetched = 0;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_STATUS(mh_fetch(host, names, 1, NULL, NULL, &fetched, ERR), MH_OK);
    ASSERT_EQ_INT(fetched, 1);
    ASSERT_REQUESTS(srv, "GET /ok/answer7.so 200", 1);
    ASSERT_REQUESTS(srv, "counter.so", 0);
    ASSERT_EQ_INT(http_blob_count(), 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(fetch_unknown_module_fails)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    static const char *const names[] = {"no_such_module"};
    log_capture lc;
    mh_host *host;
    size_t fetched = 99;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_NE_INT(mh_fetch(host, names, 1, NULL, NULL, &fetched, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), "no_such_module");
    ASSERT_EQ_INT(http_blob_count(), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(fetch_that_cannot_keep_a_download_fails)
{
    /* Fetching is keeping: a download that cannot be written into the
     * cache (a directory where its blob goes) is a failure naming the
     * module, not counted as fetched; the others are kept, and an import
     * still loads it, from memory, with a warning. */
    const char *site = http_site(NULL);
    http_server *srv = http_start(site, NULL);
    const char *sha = sh_run(str_fmt("sha256sum < %s",
                                     sh_quote(str_fmt("%s/answer7.so", site))),
                             NULL);
    mkdir_p(tmp_path("cache/blobs/%.64s/in-the-way", sha));
    ASSERT_EQ_INT(chmod(tmp_path("cache"), 0700), 0);
    ASSERT_EQ_INT(chmod(tmp_path("cache/blobs"), 0700), 0);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "ok/"), &lc);
    size_t fetched = 0;
    ASSERT_STATUS(mh_fetch(host, NULL, 0, NULL, NULL, &fetched, ERR), MH_EIO);
    ASSERT_CONTAINS(ERR_MSG(), "module 'answer7'");
    ASSERT_CONTAINS(ERR_MSG(), "cannot keep it");
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "ok/answer7.so"));
    ASSERT_EQ_INT(fetched, 2); /* counter and pkg.mod: one blob */
    ASSERT_EQ_INT(call_int(import_ok(host, "answer7"), "value"), 7);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "cannot cache"), 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(fetch_from_an_unusable_http_entry_fails)
{
    /* An http:// entry its finder cannot open is a failure naming it,
     * not "fetched 0 modules"; a usable entry after it is still
     * fetched. */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host(str_fmt("http://127.0.0.1:99999/;%s",
                                      http_url(srv, "ok/")), &lc);
    size_t fetched = 0;
    ASSERT_STATUS(mh_fetch(host, NULL, 0, NULL, NULL, &fetched, ERR),
                  MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "http://127.0.0.1:99999/");
    ASSERT_CONTAINS(ERR_MSG(), "not a usable base URL");
    ASSERT_EQ_INT(fetched, 3);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(fetch_where_nothing_can_be_cached_fails_with_no_http_entry)
{
    /* Where the cache is not used, fetch fails even before it knows
     * whether there is anything to fetch: "fetched 0 modules" would say
     * the machine is ready for offline use. */
    const char *cache = tmp_mkdir("cache");
    ASSERT_EQ_INT(chmod(cache, 0777), 0);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host(tmp_dir(), &lc);
    size_t fetched = 7;
    ASSERT_STATUS(mh_fetch(host, NULL, 0, NULL, NULL, &fetched, ERR),
                  MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "nothing can be cached");
    ASSERT_CONTAINS(ERR_MSG(), cache);
    ASSERT_EQ_INT(fetched, 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(fetch_reports_a_bad_module)
{
    /* one module of the index is tampered with: fetch says which */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "tamper/"), &lc);
    ASSERT_NE_INT(mh_fetch(host, NULL, 0, NULL, NULL, NULL, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "tamper/"));
    /* each bad module said once: the first is the error, not also a
     * warning; the others (the site has three) are warnings */
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ERR_MSG()), 0);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "the SHA-256 of"), 2);
    ASSERT_CONTAINS(ERR_MSG(), "is not the one the index gives");
    ASSERT_EQ_INT(http_blob_count(), 0);
    http_assert_cache_clean();
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(fetch_warns_of_every_entry_after_the_error)
{
    /* the first entry's unusable index is the error; the second's, which
     * has no error to be, is a warning -- nothing is lost */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(path_join((const char *const[]){
                         http_url(srv, "404/"), http_url(srv, "404/b/"),
                         NULL}),
                     &lc);
    ASSERT_NE_INT(mh_fetch(host, NULL, 0, NULL, NULL, NULL, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "404/index.json"));
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN,
                                    http_url(srv, "404/b/index.json")), 1);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN,
                                    http_url(srv, "404/index.json")), 0);
    mh_host_free(host);

    /* with no error to fill, the failure is a warning */
    host = http_host(http_url(srv, "404/"), &lc);
    ASSERT_NE_INT(mh_fetch(host, NULL, 0, NULL, NULL, NULL, NULL), MH_OK);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN,
                                    http_url(srv, "404/index.json")), 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(fetch_from_a_stale_index_warns_that_it_is_stale)
{
    /* the server is down and the index cached: fetch works from it, and
     * says the index may be stale, as an import would */
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    const char *entry = http_url(srv, "ok/");
    log_capture lc;
    mh_host *host;
    size_t got = 99;

    log_capture_init(&lc);
    host = http_host(entry, &lc);
    ASSERT_STATUS(mh_fetch(host, NULL, 0, NULL, NULL, NULL, ERR), MH_OK);
    mh_host_free(host);
    http_stop(srv); /* connection refused from now on */
    host = http_host(entry, &lc);
    ASSERT_STATUS(mh_fetch(host, NULL, 0, NULL, NULL, &got, ERR), MH_OK);
    ASSERT_LOG(&lc, MH_LOG_WARN, "using the cached index");
    ASSERT_TRUE(got > 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(fetch_says_an_unusable_index_once)
{
    /* the index cannot be had: that is fetch's error, not a warning too */
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = http_host(http_url(srv, "404/"), &lc);
    ASSERT_NE_INT(mh_fetch(host, NULL, 0, NULL, NULL, NULL, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), "404");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    /* an import afterwards still warns, as the entry is passed over */
    mh_module *mod;
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, "404");
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* ------------------------------------------------------ the environment */

TEST(proxy_variable_is_honoured)
{
    /* http_proxy names a server on 127.0.0.1; the entry's host does not
     * resolve, so only through the proxy can the import work.  A plain
     * http:// host that is not loopback needs the application's opt-in
     * (or a signed index). */
    const char *www = http_site(NULL);
    http_server *proxy = http_start(www, NULL);
    log_capture lc;

    log_capture_init(&lc);
    env_set("http_proxy", http_url(proxy, "%s", ""));
    mh_config cfg = http_cfg("http://modhost-proxied.invalid/ok/", &lc);
    cfg.flags |= MH_CONFIG_ALLOW_HTTP;
    mh_host *host = host_new_cfg(&cfg);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    ASSERT_REQUESTS(proxy, "GET http://modhost-proxied.invalid/ok/"
                           "counter.so 200", 1);
    mh_host_free(host);
    http_stop(proxy);
    log_capture_free(&lc);
}

TEST(loopback_entry_is_never_proxied)
{
    /* A proxy's 127.0.0.1 is the proxy's own: what it answers for a
     * loopback entry went through, and, loopback needing no signature,
     * a proxy (anyone on the way to it) could serve its own unsigned
     * index and code.  (Found by a sweep.) */
    const char *www = http_site(NULL);
    http_server *proxy = http_start(www, NULL);
    http_server *srv = http_start(www, NULL);
    log_capture lc;

    log_capture_init(&lc);
    env_set("http_proxy", http_url(proxy, "%s", ""));
    env_set("HTTP_PROXY", http_url(proxy, "%s", ""));
    env_set("all_proxy", http_url(proxy, "%s", ""));
    static const char *const hosts[] = {"127.0.0.1", "localhost"};
    for (size_t i = 0; i < sizeof hosts / sizeof *hosts; i++) {
        mh_host *host = http_host(str_fmt("http://%s:%d/ok/", hosts[i],
                                          srv->port), &lc);
        ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
        mh_host_free(host);
    }
    ASSERT_REQUESTS(srv, "GET /ok/index.json 200", 2);
    ASSERT_REQUESTS(proxy, "GET", 0);
    http_stop(srv);
    http_stop(proxy);
    log_capture_free(&lc);
}

/* A TCP server on 127.0.0.1 that reads what a client sends and then
 * resets the connection: an https:// server going down mid-handshake. */
typedef struct rst_server {
    int fd, port;
    pthread_t thread;
} rst_server;

static void *rst_loop(void *arg)
{
    rst_server *r = arg;
    for (;;) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            return NULL; /* shut down */
        char buf[512];
        struct timeval tv = {2, 0};
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void)!read(c, buf, sizeof buf);
        struct linger l = {1, 0}; /* close with RST */
        setsockopt(c, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(c);
    }
}

static void rst_start(rst_server *r)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (r->fd < 0 || bind(r->fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(r->fd, 8) != 0 ||
        getsockname(r->fd, (struct sockaddr *)&a, &len) != 0)
        FAIL("cannot listen on 127.0.0.1: %s", strerror(errno));
    r->port = ntohs(a.sin_port);
    if (pthread_create(&r->thread, NULL, rst_loop, r) != 0)
        FAIL("pthread_create");
}

static void rst_stop(rst_server *r)
{
    shutdown(r->fd, SHUT_RDWR);
    pthread_join(r->thread, NULL);
    close(r->fd);
}

TEST(https_handshake_reset_uses_the_cached_index)
{
    /* A TLS handshake the server resets is the server down, not a
     * definite answer: it deleted the cached index, so an https:// site
     * restarting took every cached module of it away.  (Found by a
     * sweep.)  The cache of an https:// entry is made from an http://
     * one's: the same index, under the https:// base's key, without its
     * validators (else no request would be made). */
    http_server *srv = http_start(http_site(NULL), NULL);
    rst_server rst;
    log_capture lc;
    int st;

    log_capture_init(&lc);
    mh_host *h1 = http_host(http_url(srv, "ok/"), &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);
    http_stop(srv);
    rst_start(&rst);
    const char *base = str_fmt("https://127.0.0.1:%d/ok/", rst.port);
    const char *key = sh_run(str_fmt("ls %s", sh_quote(tmp_path("cache/"
                                                               "http"))),
                             &st);
    const char *key2 = sh_run(str_fmt("printf %%s %s | sha256sum",
                                      sh_quote(base)), &st);
    ASSERT_EQ_INT(st, 0);
    sh_run(str_fmt("cp -r %s %s && rm %s", sh_quote(tmp_path("cache/http/"
                                                             "%.32s", key)),
                   sh_quote(tmp_path("cache/http/%.32s", key2)),
                   sh_quote(tmp_path("cache/http/%.32s/meta.json", key2))),
           &st);
    ASSERT_EQ_INT(st, 0);
    mh_host *h2 = http_host(base, &lc);
    ASSERT_EQ_INT(call_int(import_ok(h2, "counter"), "value"), 42);
    ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("%s unavailable (", base));
    ASSERT_LOG(&lc, MH_LOG_WARN, "using the cached index");
    ASSERT_TRUE(file_exists(tmp_path("cache/http/%.32s/index.json", key2)));
    mh_host_free(h2);
    rst_stop(&rst);
    log_capture_free(&lc);
}

TEST(https_certificate_is_verified)
{
    /* a self-signed certificate the system does not trust: refused
     * before any request is sent */
    const char *www = http_site(NULL);
    const char *cert = tmp_path("cert.pem"), *key = tmp_path("key.pem");
    http_server *srv;
    log_capture lc;
    mh_host *host;
    mh_module *mod;
    int st;

    log_capture_init(&lc);
    sh_run(str_fmt("openssl req -x509 -newkey ec -pkeyopt "
                   "ec_paramgen_curve:prime256v1 -nodes -days 1 "
                   "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
                   "-keyout %s -out %s 2>/dev/null",
                   sh_quote(key), sh_quote(cert)),
           &st);
    if (st != 0)
        FAIL("openssl could not make a certificate");
    srv = http_start(www, str_fmt("--tls %s %s", cert, key));
    host = http_host(str_fmt("https://127.0.0.1:%d/ok/", srv->port), &lc);
    ASSERT_EQ_STR(entry_finder(host, 0), "http");
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN,
               str_fmt("https://127.0.0.1:%d/ok", srv->port));
    ASSERT_REQUESTS(srv, "GET", 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(index_refreshes_do_not_grow_the_host)
{
    /* Each refresh of an index whose manifests changed interned their
     * text, which lives as long as the host: a site republishing every
     * few seconds grew a long-running host by the size of its manifests
     * each time.  (Found by a sweep.)  Now the index owns them: after
     * the first refreshes, more leave the host's memory as it was. */
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    alloc_tracker at;
    alloc_tracker_init(&at);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host_tracked(http_url(srv, "ok/"), &lc, &at);
    file_write(str_fmt("%s/big.lua", www), "return {}\n");
    size_t after[6];
    for (int round = 0; round < 6; round++) {
        /* a new 16 KiB description each round: a new index */
        char desc[16385];
        for (size_t k = 0; k + 1 < sizeof desc; k++)
            desc[k] = (char)('a' + (k * 7 + (size_t)round * 13) % 26);
        desc[sizeof desc - 1] = '\0';
        file_write(str_fmt("%s/big.json", www),
                   str_fmt("{\"version\": \"1.%d\", \"description\": "
                           "\"%s\"}", round, desc));
        http_index_dir(www, NULL);
        mh_spec_info info = {.size = sizeof info};
        ASSERT_STATUS(mh_find(host, "big", &info, ERR), MH_OK);
        after[round] = at.outstanding;
    }
    ASSERT_REQUESTS(srv, "GET /ok/index.json 200", 6);
    /* it grew by 16 KiB and more a round */
    if (after[5] > after[2] + 8192)
        FAIL("the host grew from %zu to %zu bytes over three refreshes",
             after[2], after[5]);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    http_stop(srv);
    alloc_tracker_destroy(&at);
    log_capture_free(&lc);
}

/* ------------------------------------------------------------ metadata */

typedef struct meta_seen {
    const char *text;
} meta_seen;

static int collect_meta(void *ud, const mh_module_meta *m)
{
    meta_seen *s = ud;
    s->text = str_fmt("%s%s %s %s %s\n", s->text, m->name,
                      mh_manifest_source(m->manifest),
                      mh_manifest_version(m->manifest)
                          ? mh_manifest_version(m->manifest) : "-",
                      mh_manifest_provider(m->manifest, "count")
                          ? mh_manifest_provider(m->manifest, "count") : "-");
    return 0;
}

/* A sidecar beside a module goes into index.json (under the signature):
 * discovery over HTTP reads it from the index, downloading no module, and
 * the discovery index then spares even the index's parse. */
TEST(sidecar_manifest_travels_in_the_index)
{
    const char *www = tmp_mkdir("www");
    http_no_proxy_env();
    fixture_copy("counter", "www/counter.so");
    fixture_copy("answer7", "www/answer7.so");
    file_write(str_fmt("%s/counter.json", www),
               "{\"version\": \"3.1\", \"provides\": {\"count\": \"value\"}}");
    http_index_dir(www, NULL);
    ASSERT_CONTAINS(file_read(str_fmt("%s/index.json", www)),
                    "\"manifest\":");
    http_server *srv = http_start(www, NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "ok/"), &lc);
    meta_seen seen = {""};

    ASSERT_STATUS(mh_discover(host, collect_meta, &seen, ERR), MH_OK);
    ASSERT_EQ_STR(seen.text, "answer7 none - -\ncounter sidecar 3.1 value\n");
    ASSERT_REQUESTS(srv, ".so ", 0);
    /* importing checks the module's own bytes, and keeps the manifest */
    mh_module *mod = import_ok(host, "counter");
    ASSERT_EQ_STR(mh_module_version(mod), "3.1");
    ASSERT_EQ_STR(mh_manifest_provider(mh_module_manifest(mod), "count"),
                  "value");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

static void on_alarm(int sig)
{
    (void)sig;
}

/* An application whose signal handler does not restart system calls,
 * with a timer firing every millisecond: indexing waits for another
 * writer's lock through the signals (it failed "Interrupted system call",
 * and the HTTP finder's floor lock, taken the same way, went on without
 * its lock). */
TEST(index_dir_waits_for_the_lock_through_signals)
{
    const char *www = tmp_mkdir("www");
    fixture_copy("counter", "www/counter.so");
    int ready[2];
    ASSERT_EQ_INT(pipe(ready), 0);
    pid_t pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) { /* another writer: holds the lock for 300 ms */
        int fd = open(www, O_RDONLY | O_DIRECTORY);
        if (fd < 0 || flock(fd, LOCK_EX) != 0)
            _exit(2);
        if (write(ready[1], "x", 1) != 1)
            _exit(2);
        usleep(300 * 1000);
        _exit(0);
    }
    close(ready[1]);
    char c;
    ASSERT_EQ_INT(read(ready[0], &c, 1), 1);
    close(ready[0]);
    struct sigaction sa = {.sa_handler = on_alarm}, old;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART */
    ASSERT_EQ_INT(sigaction(SIGALRM, &sa, &old), 0);
    struct itimerval it = {{0, 1000}, {0, 1000}}, off = {{0, 0}, {0, 0}};
    ASSERT_EQ_INT(setitimer(ITIMER_REAL, &it, NULL), 0);
    mh_error *e = NULL;
    size_t n = 0;
    mh_status rc = mh_index_dir(www, NULL, &n, &e);
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    /* It waited for the writer: that one is gone by now. */
    int status = 0;
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == 0) {
        waitpid(pid, &status, 0);
        FAIL("returned while the other writer held the lock (%s)",
             mh_status_name(rc));
    }
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    if (rc != MH_OK)
        FAIL("%s: %s", mh_status_name(rc), e ? mh_error_message(e) : "");
    ASSERT_EQ_INT(n, 1);
    mh_error_free(e);
}

/* A manifest over the size limit (256 KiB): the index writer refuses
 * such a sidecar, naming it; an index written by other tools may still
 * carry one, and a host reading that index refuses that module's
 * metadata and import, naming module and limit, and nothing else. */
TEST(huge_manifest_in_the_index_is_that_modules_error)
{
    const char *www = tmp_mkdir("www");
    http_no_proxy_env();
    fixture_copy("counter", "www/counter.so");
    fixture_copy("answer7", "www/answer7.so");
    size_t n = 300 * 1024;
    char *big = malloc(n + 1);
    ASSERT_NOT_NULL(big);
    memset(big, 'x', n);
    big[n] = '\0';
    const char *side = str_fmt("%s/counter.json", www);
    file_write(side, str_fmt("{\"description\": \"%s\"}", big));
    mh_error *e = NULL;
    ASSERT_STATUS(mh_index_dir(www, NULL, NULL, &e), MH_EFORMAT);
    ASSERT_CONTAINS(mh_error_message(e), side);
    ASSERT_CONTAINS(mh_error_message(e), "262144 bytes");
    mh_error_free(e);
    ASSERT_FALSE(file_exists(str_fmt("%s/index.json", www)));

    /* The same manifest put into the index by hand. */
    ASSERT_EQ_INT(unlink(side), 0);
    ASSERT_STATUS(mh_index_dir(www, NULL, NULL, NULL), MH_OK);
    const char *ix = str_fmt("%s/index.json", www);
    cJSON *root = cJSON_Parse(file_read(ix));
    ASSERT_NOT_NULL(root);
    cJSON_AddTrueToObject(root, "manifests");
    cJSON *mod;
    cJSON_ArrayForEach(mod, cJSON_GetObjectItem(root, "modules")) {
        const cJSON *nm = cJSON_GetObjectItem(mod, "name");
        if (cJSON_IsString(nm) && strcmp(nm->valuestring, "counter") == 0) {
            cJSON *m = cJSON_AddObjectToObject(mod, "manifest");
            cJSON_AddStringToObject(m, "description", big);
        }
    }
    char *text = cJSON_PrintUnformatted(root);
    file_write(ix, text);
    cJSON_free(text);
    cJSON_Delete(root);
    free(big);

    http_server *srv = http_start(www, NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "ok/"), &lc);
    mh_manifest *m = NULL;
    mh_module *got;
    ASSERT_STATUS(mh_metadata(host, "counter", &m, ERR), MH_EFORMAT);
    ASSERT_NULL(m);
    ASSERT_CONTAINS(ERR_MSG(), "manifest of module 'counter'");
    ASSERT_CONTAINS(ERR_MSG(), "the limit is 262144");
    ASSERT_STATUS(mh_import(host, "counter", &got, ERR), MH_EFORMAT);
    ASSERT_NULL(got);
    ASSERT_CONTAINS(ERR_MSG(), "the limit is 262144");
    ASSERT_EQ_INT(call_int(import_ok(host, "answer7"), "value"), 7);
    ASSERT_EQ_INT(mh_host_module_count(host), 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* index.json nests each manifest 3 levels down, so a sidecar nested near
 * cJSON's limit of 1000 made an index no host could read, every module of
 * the site lost: the writer refuses a manifest nested past the 64 levels
 * a host reads, naming it, and writes nothing.  An index written by other
 * tools with such a manifest fails only that module. */
TEST(deeply_nested_manifest_stops_the_index)
{
    const char *www = tmp_mkdir("www");
    http_no_proxy_env();
    fixture_copy("counter", "www/counter.so");
    fixture_copy("answer7", "www/answer7.so");
    const char *side = str_fmt("%s/counter.json", www);
    const int too_deep[] = {65, 998};
    for (size_t i = 0; i < 2; i++) {
        file_write(side, meta_nested_manifest(too_deep[i]));
        mh_error *e = NULL;
        ASSERT_STATUS(mh_index_dir(www, NULL, NULL, &e), MH_EFORMAT);
        ASSERT_CONTAINS(mh_error_message(e), side);
        ASSERT_CONTAINS(mh_error_message(e), "more than 64 levels deep");
        mh_error_free(e);
        ASSERT_FALSE(file_exists(str_fmt("%s/index.json", www)));
    }

    /* 64 levels: written, and read back whole. */
    file_write(side, meta_nested_manifest(64));
    ASSERT_STATUS(mh_index_dir(www, NULL, NULL, ERR), MH_OK);
    http_server *srv = http_start(www, NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "ok/"), &lc);
    mh_manifest *m = NULL;
    ASSERT_STATUS(mh_metadata(host, "counter", &m, ERR), MH_OK);
    ASSERT_EQ_STR(mh_manifest_source(m), "sidecar");
    ASSERT_EQ_STR(mh_manifest_description(m), "deep");
    mh_manifest_free(m);
    mh_host_free(host);

    /* 65 levels put into the index by hand: that module's error only. */
    const char *ix = str_fmt("%s/index.json", www);
    cJSON *root = cJSON_Parse(file_read(ix));
    ASSERT_NOT_NULL(root);
    cJSON *mod;
    bool replaced = false;
    cJSON_ArrayForEach(mod, cJSON_GetObjectItem(root, "modules")) {
        const cJSON *nm = cJSON_GetObjectItem(mod, "name");
        if (cJSON_IsString(nm) && strcmp(nm->valuestring, "counter") == 0)
            replaced = cJSON_ReplaceItemInObject(
                mod, "manifest", cJSON_Parse(meta_nested_manifest(65)));
    }
    ASSERT_TRUE(replaced);
    char *text = cJSON_PrintUnformatted(root);
    file_write(ix, text);
    cJSON_free(text);
    cJSON_Delete(root);
    host = http_host(http_url(srv, "ok/"), &lc);
    mh_module *got;
    ASSERT_STATUS(mh_import(host, "counter", &got, ERR), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "manifest of module 'counter'");
    ASSERT_CONTAINS(ERR_MSG(), "more than 64 levels deep");
    ASSERT_EQ_INT(call_int(import_ok(host, "answer7"), "value"), 7);
    ASSERT_EQ_INT(mh_host_module_count(host), 1);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* A host that imported over HTTP keeps its connection to the server
 * alive; children forked from it (a pre-fork server's workers) used that
 * same socket, each reading the others' answers: "Received HTTP/0.9",
 * sizes and hashes that do not match the index.  A child makes
 * connections of its own; the parent's is left alone. */
TEST(children_of_fork_use_connections_of_their_own)
{
    const char *www = http_site(NULL);
    enum { KIDS = 8 };
    pid_t kid[KIDS];

    /* Bytes of their own each (a copy of answer7 with zeros after it),
     * so that no child finds another's download in the blob cache. */
    for (int i = 0; i < KIDS; i++) {
        const char *so = fixture_copy("answer7", "www/m%d.so", i);
        FILE *f = fopen(so, "ab");
        ASSERT_NOT_NULL(f);
        for (int k = 0; k < 1000 * (i + 1); k++)
            fputc(0, f);
        ASSERT_EQ_INT(fclose(f), 0);
    }
    http_index_dir(www, NULL);
    http_server *srv = http_start(www, NULL);
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    int go[2];
    ASSERT_EQ_INT(pipe(go), 0);
    fflush(NULL);
    for (int i = 0; i < KIDS; i++) {
        kid[i] = fork();
        ASSERT_TRUE(kid[i] >= 0);
        if (kid[i] == 0) { /* all at once, when the parent closes go */
            char c;
            close(go[1]);
            if (read(go[0], &c, 1) != 0)
                _exit(2);
            mh_module *mod = NULL;
            mh_error *e = NULL;
            mh_status st = mh_import(host, str_fmt("m%d", i), &mod, &e);
            if (st != MH_OK)
                fprintf(stderr, "child %d: %s\n", i, mh_error_message(e));
            _exit(st == MH_OK ? 0 : 1);
        }
    }
    close(go[0]);
    close(go[1]);
    int failed = 0;
    for (int i = 0; i < KIDS; i++) {
        int status = 0;
        ASSERT_EQ_INT(waitpid(kid[i], &status, 0), kid[i]);
        failed += !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    if (failed)
        FAIL("%d of %d children could not import (their errors above); "
             "server log:\n%s", failed, KIDS, http_log_text(srv));
    /* The parent's own connection still works. */
    ASSERT_EQ_INT(call_int(import_ok(host, "answer7"), "value"), 7);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* ---------------------------------------------- the index's writer */

TEST(a_signature_that_cannot_be_written_leaves_the_index_as_it_was)
{
    /* With a directory where index.json.sig goes, the signed run failed
     * at the signature's rename -- after index.json had been replaced by
     * the new, unsigned-by-anyone index. */
    const char *key = http_keygen("a");
    const char *www = http_site(NULL);
    const char *ix = str_fmt("%s/index.json", www);
    const char *before = file_read(ix);
    fixture_copy("answer7", "www/extra.so");
    ASSERT_EQ_INT(mkdir(str_fmt("%s/index.json.sig", www), 0755), 0);
    mh_error *e = NULL;
    ASSERT_STATUS(mh_index_dir(www, str_fmt("%s.key", key), NULL, &e),
                  MH_EIO);
    ASSERT_CONTAINS(mh_error_message(e), "index.json.sig: it is a directory");
    mh_error_free(e);
    ASSERT_EQ_STR(file_read(ix), before);
}

/* Runs mh_index_dir(www, key) as uid 65534 (the caller is root). */
static mh_status index_as_nobody(const char *www, const char *key,
                                 mh_error **e)
{
    if (seteuid(65534) != 0)
        FAIL("seteuid(65534): %s", strerror(errno));
    mh_status rc = mh_index_dir(www, key, NULL, e);
    if (seteuid(0) != 0)
        FAIL("seteuid(0): %s", strerror(errno));
    return rc;
}

TEST(a_signature_step_refused_after_the_index_puts_the_index_back)
{
    /* In a sticky directory, the signature another user owns cannot be
     * replaced, nor removed: the run failed at that step with index.json
     * already replaced -- beside a signature that no longer matched it
     * (signed), or the stale one (unsigned).  The old index.json is put
     * back now, and a run with none before leaves none. */
    if (geteuid() != 0)
        SKIP("writes as uid 65534 beside root's files, which needs root");
    ASSERT_EQ_INT(chmod(tmp_dir(), 0755), 0);
    const char *key = str_fmt("%s.key", http_keygen("a"));
    ASSERT_EQ_INT(chown(key, 65534, 65534), 0);
    const char *www = tmp_mkdir("www");
    ASSERT_EQ_INT(chmod(www, 01777), 0); /* as /tmp */
    fixture_copy("counter", "www/counter.so");
    const char *ix = str_fmt("%s/index.json", www);
    const char *sig = str_fmt("%s/index.json.sig", www);
    mh_error *e = NULL;
    ASSERT_STATUS(index_as_nobody(www, key, &e), MH_OK);
    const char *ix_before = file_read(ix);
    size_t sig_len = 0;
    unsigned char *sig_before = file_bytes(sig, &sig_len);
    ASSERT_EQ_INT(sig_len, 64);
    ASSERT_EQ_INT(lchown(sig, 0, 0), 0); /* root's now: not nobody's to
                                            replace or remove */
    fixture_copy("answer7", "www/extra.so");

    /* Signed: the new signature cannot replace root's. */
    ASSERT_STATUS(index_as_nobody(www, key, &e), MH_EIO);
    ASSERT_CONTAINS(mh_error_message(e), str_fmt("cannot replace %s", sig));
    ASSERT_CONTAINS(mh_error_message(e), strerror(EPERM));
    ASSERT_CONTAINS(mh_error_message(e), str_fmt("%s is left as it was", ix));
    mh_error_free(e);
    e = NULL;
    ASSERT_EQ_STR(file_read(ix), ix_before);
    size_t n = 0;
    unsigned char *sig_now = file_bytes(sig, &n);
    ASSERT_TRUE(n == sig_len && memcmp(sig_now, sig_before, n) == 0);
    free(sig_now);
    ASSERT_EQ_INT(dir_count(www), 4); /* two plugins, index, signature */

    /* Unsigned: the stale signature cannot be removed. */
    ASSERT_STATUS(index_as_nobody(www, NULL, &e), MH_EIO);
    ASSERT_CONTAINS(mh_error_message(e), str_fmt("cannot remove the stale "
                                                 "signature %s", sig));
    ASSERT_CONTAINS(mh_error_message(e), str_fmt("%s is left as it was", ix));
    mh_error_free(e);
    e = NULL;
    ASSERT_EQ_STR(file_read(ix), ix_before);
    ASSERT_EQ_INT(dir_count(www), 4);

    /* No index before: none after. */
    ASSERT_EQ_INT(unlink(ix), 0);
    ASSERT_STATUS(index_as_nobody(www, key, &e), MH_EIO);
    ASSERT_CONTAINS(mh_error_message(e), str_fmt("%s is left as it was", ix));
    mh_error_free(e);
    ASSERT_FALSE(file_exists(ix));
    ASSERT_EQ_INT(dir_count(www), 3);
    free(sig_before);
}

TEST(a_fifo_as_a_key_is_refused_not_waited_on)
{
    /* The signing key and MODHOST_TRUST's keys were opened with a
     * blocking open: a FIFO named there hung `modhost index --sign`, and
     * mh_host_new in every application given MODHOST_TRUST. */
    const char *www = http_site(NULL);
    const char *fifo = tmp_path("keys.fifo");
    ASSERT_EQ_INT(mkfifo(fifo, 0600), 0);
    alarm(test_case_timeout_s());
    mh_error *e = NULL;
    ASSERT_STATUS(mh_index_dir(www, fifo, NULL, &e), MH_EIO);
    ASSERT_CONTAINS(mh_error_message(e), "not a regular file");
    mh_error_free(e);
    env_set("MODHOST_TRUST", fifo);
    log_capture lc;
    log_capture_init(&lc);
    mh_config cfg = http_cfg("http://127.0.0.1:9/ok/", &lc);
    cfg.flags = MH_CONFIG_NO_DEFAULT_PATH;
    mh_host *host = NULL;
    ASSERT_STATUS(mh_host_new(&cfg, &host, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "not a regular file");
    alarm(0);
    log_capture_free(&lc);
}

TEST(a_key_file_that_is_a_directory_or_too_large_is_refused)
{
    /* Key files are read whole as small regular files: a directory, or a
     * file past 16 KiB, is refused naming why (a signing key and
     * MODHOST_TRUST alike). */
    const char *www = http_site(NULL);
    const char *dir = tmp_mkdir("keydir");
    const char *big = tmp_path("big.pem");
    char *text = malloc(20000);
    ASSERT_NOT_NULL(text);
    memset(text, 'A', 19999);
    text[19999] = '\0';
    file_write(big, text);
    free(text);
    const char *files[] = {dir, big};
    const char *why[] = {"not a regular file", "too large for a key"};
    log_capture lc;
    log_capture_init(&lc);
    for (int i = 0; i < 2; i++) {
        mh_error *e = NULL;
        ASSERT_STATUS(mh_index_dir(www, files[i], NULL, &e), MH_EIO);
        ASSERT_CONTAINS(mh_error_message(e), why[i]);
        ASSERT_CONTAINS(mh_error_message(e), files[i]);
        mh_error_free(e);
        env_set("MODHOST_TRUST", files[i]);
        mh_config cfg = http_cfg("http://127.0.0.1:9/ok/", &lc);
        cfg.flags = MH_CONFIG_NO_DEFAULT_PATH;
        mh_host *host = NULL;
        ASSERT_STATUS(mh_host_new(&cfg, &host, ERR), MH_EPATH);
        ASSERT_CONTAINS(ERR_MSG(), why[i]);
    }
    log_capture_free(&lc);
}

TEST(a_manifest_contradicting_its_note_stops_the_index_and_leaks_nothing)
{
    /* The error was right, and the manifest parsed from the note leaked
     * (LeakSanitizer fails this case if it does again). */
    const char *www = tmp_mkdir("www");
    fixture_copy("meta_abiclash", "www/clash.so");
    mh_error *e = NULL;
    ASSERT_STATUS(mh_index_dir(www, NULL, NULL, &e), MH_EFORMAT);
    ASSERT_CONTAINS(mh_error_message(e), "but the plugin was built for ABI");
    mh_error_free(e);
}

TEST(links_that_fan_out_stop_the_walk_with_a_message)
{
    /* Each level holds two links to the next: no loop, but 2^depth
     * paths; the walk ran for ever (pack and index alike). */
    const char *www = tmp_mkdir("www");
    for (int i = 0; i < 20; i++) {
        const char *d = tmp_mkdir("www/l%d", i);
        for (int k = 0; k < 2; k++)
            ASSERT_EQ_INT(symlink(tmp_path("www/l%d", i + 1),
                                  str_fmt("%s/x%d", d, k)), 0);
    }
    tmp_mkdir("www/l20");
    alarm(test_case_timeout_s());
    mh_error *e = NULL;
    ASSERT_STATUS(mh_index_dir(www, NULL, NULL, &e), MH_EINVAL);
    ASSERT_CONTAINS(mh_error_message(e), "more than 100000 directories");
    ASSERT_CONTAINS(mh_error_message(e), www);
    mh_error_free(e);
    alarm(0);
}

TEST(an_index_run_sweeps_what_a_killed_one_left)
{
    const char *www = http_site(NULL);
    const char *left = str_fmt("%s/.index.json.tmp-AbC123", www);
    const char *left_sig = str_fmt("%s/.index.json.sig.tmp-Zz9y8x", www);
    file_write(left, "half an index");
    file_write(left_sig, "half a signature");
    http_index_dir(www, NULL);
    ASSERT_FALSE(file_exists(left));
    ASSERT_FALSE(file_exists(left_sig));
}

static void *index_in_thread(void *dir)
{
    mh_status *rc = malloc(sizeof *rc);
    *rc = mh_index_dir(dir, NULL, NULL, NULL);
    return rc;
}

TEST(two_index_runs_take_turns)
{
    /* One run's index could end beside another's signature (two renames
     * each, no lock), and both could take the same next serial.  A run
     * now holds the directory's lock from reading the old index to the
     * last rename: while another holds it, it waits. */
    const char *www = http_site(NULL);
    const char *ix = str_fmt("%s/index.json", www);
    const char *before = file_read(ix);
    fixture_copy("answer7", "www/extra.so");
    int fd = open(www, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ_INT(flock(fd, LOCK_EX), 0);
    pthread_t t;
    ASSERT_EQ_INT(pthread_create(&t, NULL, index_in_thread, (void *)www), 0);
    usleep(300 * 1000);
    ASSERT_EQ_STR(file_read(ix), before); /* waiting for the lock */
    ASSERT_EQ_INT(flock(fd, LOCK_UN), 0);
    close(fd);
    void *rc = NULL;
    pthread_join(t, &rc);
    ASSERT_STATUS(*(mh_status *)rc, MH_OK);
    free(rc);
    ASSERT_CONTAINS(file_read(ix), "extra");
}

TEST(sidecar_that_is_not_an_object_stops_the_index)
{
    const char *www = tmp_mkdir("www");
    fixture_copy("counter", "www/counter.so");
    file_write(str_fmt("%s/counter.json", www), "[1, 2]");
    mh_error *e = NULL;
    ASSERT_STATUS(mh_index_dir(www, NULL, NULL, &e), MH_EFORMAT);
    ASSERT_CONTAINS(mh_error_message(e), str_fmt("%s/counter.json", www));
    ASSERT_CONTAINS(mh_error_message(e), "JSON object");
    mh_error_free(e);
    ASSERT_FALSE(file_exists(str_fmt("%s/index.json", www)));
}
