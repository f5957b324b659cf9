/*
 * test_http_trust.c -- what the HTTP finder trusts, and when it lets go:
 * the plain-http rule (which host names are loopback), a definite refusal
 * of the index withdrawing the cached copy for good, a huge
 * Cache-Control max-age, credentials in the entry URL never shown or
 * stored, a TLS failure that is not "offline", mh_fetch going on past a
 * failing module, and a transient failure of index.json.sig alone.
 *
 * Only 127.0.0.1 is ever contacted: made-up host names (plugins.example,
 * 127.evil.example) are reached through tests/http/server.py acting as the
 * HTTP proxy (http_proxy), which serves an absolute-form request as if it
 * were the origin.  http_site() clears every other proxy variable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

/* ------------------------------------------------------------- helpers */

/* A host on entry with extra config flags, trusted keys (NULL: none) and
 * its own cache directory (NULL: tmp_path("cache")). */
static mh_host *host_with(const char *entry, unsigned flags,
                          const char *trust, const char *cache,
                          log_capture *lc)
{
    mh_config cfg = http_cfg(entry, lc);
    cfg.flags |= flags;
    cfg.trust = trust;
    if (cache)
        cfg.cache_dir = cache;
    return host_new_cfg(&cfg);
}

static const char *sha256_of(const char *path)
{
    int st;
    const char *out = sh_run(str_fmt("sha256sum %s", sh_quote(path)), &st);
    if (st != 0 || strlen(out) < 64)
        FAIL("sha256sum %s failed", path);
    return str_fmt("%.64s", out);
}

static const char *sha256_of_string(const char *s)
{
    int st;
    const char *out = sh_run(str_fmt("printf %%s %s | sha256sum",
                                     sh_quote(s)), &st);
    if (st != 0 || strlen(out) < 64)
        FAIL("sha256sum of a string failed");
    return str_fmt("%.64s", out);
}

/* Use srv as the HTTP proxy for every http:// URL. */
static void use_proxy(const http_server *srv)
{
    env_set("http_proxy", http_url(srv, "%s", ""));
}

/* The entry on a made-up host name refuses an unsigned index over plain
 * http: nothing found, no module requested, and a warning that says what
 * would make it work. */
static void plain_http_refused(const http_server *proxy, const char *entry,
                               const char *cache)
{
    size_t modules = http_requests(proxy, ".so ");
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    host = host_with(entry, 0, NULL, cache, &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, "MH_CONFIG_ALLOW_HTTP");
    ASSERT_LOG(&lc, MH_LOG_WARN, "signed");
    ASSERT_REQUESTS(proxy, ".so ", modules);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* -------------------------------------------------------- plain http */

TEST(plain_http_rule_through_proxy)
{
    /* A made-up host name, reached through the proxy: an unsigned index
     * needs MH_CONFIG_ALLOW_HTTP, a signed one trusted keys.  A NAME that
     * starts with "127." is not 127.0.0.0/8; the literal address and
     * "localhost" are loopback and need neither. */
    const char *key = http_keygen("a");
    const char *www = http_site(NULL);
    http_server *proxy = http_start(www, NULL);
    http_server *srv = http_start(www, NULL);
    const char *entry = "http://plugins.example/ok/";
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    use_proxy(proxy);
    /* unsigned, no opt-in: refused (the index was asked for, through the
     * proxy, and nothing else) */
    plain_http_refused(proxy, entry, tmp_path("cache-a"));
    ASSERT_REQUESTS(proxy, "GET http://plugins.example/ok/index.json 200 "
                           "plugins.example proxy", 1);

    /* unsigned, MH_CONFIG_ALLOW_HTTP: works */
    log_capture_init(&lc);
    host = host_with(entry, MH_CONFIG_ALLOW_HTTP, NULL, tmp_path("cache-b"),
                     &lc);
    mod = import_ok(host, "counter");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mod),
                  "http://plugins.example/ok/counter.so");
    ASSERT_REQUESTS(proxy, "GET http://plugins.example/ok/counter.so 200", 1);
    /* Nothing checks a signature without trusted keys: none was asked
     * for (a failure of that request failed the entry). */
    ASSERT_REQUESTS(proxy, "index.json.sig", 0);
    mh_host_free(host);
    log_capture_free(&lc);

    /* unsigned, on names that merely start with "127.": refused */
    plain_http_refused(proxy, "http://127.evil.example/ok/",
                       tmp_path("cache-c"));
    ASSERT_REQUESTS(proxy, "GET http://127.evil.example/ok/index.json 200",
                    1);
    plain_http_refused(proxy, "http://127.0.0.1.evil.example/ok/",
                       tmp_path("cache-d"));
    ASSERT_REQUESTS(proxy,
                    "GET http://127.0.0.1.evil.example/ok/index.json 200", 1);

    /* signed, the key trusted, no opt-in: works */
    http_index_dir(www, str_fmt("%s.key", key));
    log_capture_init(&lc);
    host = host_with(entry, 0, str_fmt("%s.pub", key), tmp_path("cache-e"),
                     &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "answer7"), "value"), 7);
    ASSERT_REQUESTS(proxy, "GET http://plugins.example/ok/index.json.sig 200",
                    1);
    mh_host_free(host);
    log_capture_free(&lc);

    /* real loopback, direct: an unsigned index is fine */
    http_index_dir(www, NULL);
    env_unset("http_proxy");
    log_capture_init(&lc);
    host = host_with(http_url(srv, "ok/"), 0, NULL, tmp_path("cache-f"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    mh_host_free(host);
    host = host_with(str_fmt("http://localhost:%d/ok/", srv->port), 0, NULL,
                     tmp_path("cache-g"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "answer7"), "value"), 7);
    mh_host_free(host);
    ASSERT_REQUESTS(srv, "proxy", 0);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    log_capture_free(&lc);
    http_stop(srv);
    http_stop(proxy);
}

/* ------------------------------------------ a refusal withdraws the cache */

/* Host 1 caches the good signed index of /switch/ (and counter's bytes);
 * then the server refuses the index as bad_mode ("404" or "badsig") and
 * a host is refused; then the server answers 500 and neither that host
 * nor a new one may bring the withdrawn index back as "stale". */
static void refusal_withdraws_cached_index(const char *bad_mode,
                                           int change_index)
{
    const char *key = http_keygen("a");
    const char *trust = str_fmt("%s.pub", key);
    const char *www = http_site(str_fmt("%s.key", key));
    http_server *srv = http_start(www, "--max-age 0");
    const char *entry = http_url(srv, "switch/");
    log_capture lc;
    mh_host *h1, *h2, *h3;
    mh_module *mod;

    log_capture_init(&lc);
    h1 = host_with(entry, 0, trust, NULL, &lc);
    ASSERT_EQ_INT(call_int(import_ok(h1, "counter"), "value"), 42);
    mh_host_free(h1);
    ASSERT_EQ_INT(http_blob_count(), 1);

    if (change_index) {
        /* a new index, so the revalidation gets a 200 (and a signature)
         * instead of a 304 */
        fixture_copy("answer7", "www/extra.so");
        http_index_dir(www, str_fmt("%s.key", key));
    }
    http_set_mode(srv, bad_mode);
    h2 = host_with(entry, 0, trust, NULL, &lc);
    ASSERT_STATUS(mh_import(h2, "counter", &mod, ERR), MH_ENOTFOUND);
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "switch/"));

    http_set_mode(srv, "500");
    mh_invalidate_caches(h2);
    ASSERT_STATUS(mh_import(h2, "counter", &mod, ERR), MH_ENOTFOUND);
    h3 = host_with(entry, 0, trust, NULL, &lc);
    ASSERT_STATUS(mh_import(h3, "counter", &mod, ERR), MH_ENOTFOUND);
    if (http_requests(srv, "GET /switch/index.json 500") == 0)
        FAIL("no index request answered 500; server log:\n%s",
             http_log_text(srv));
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "using the cached"), 0);
    ASSERT_REQUESTS(srv, "/switch/counter.so", 1);
    mh_host_free(h2);
    mh_host_free(h3);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(index_404_withdraws_cached_index)
{
    refusal_withdraws_cached_index("404", 0);
}

TEST(bad_signature_withdraws_cached_index)
{
    refusal_withdraws_cached_index("badsig", 1);
}

TEST(a_signature_from_the_other_side_of_a_publish_is_asked_for_again)
{
    /* index.json and index.json.sig are two requests, and `modhost index`
     * renames one, then the other: a host between the two got a new index
     * with the old signature, refused the site as badly signed and deleted
     * its cached index and every module it vouched for.  Both are asked
     * for again once before that; a signature still bad is refused (the
     * case above). */
    const char *key = http_keygen("a");
    const char *trust = str_fmt("%s.pub", key);
    const char *www = http_site(str_fmt("%s.key", key));
    http_server *srv = http_start(www, NULL);
    log_capture lc;

    log_capture_init(&lc);
    mh_host *host = host_with(http_url(srv, "badsig-once/"), 0, trust, NULL,
                              &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    ASSERT_REQUESTS(srv, "GET /badsig-once/index.json 200", 2);
    ASSERT_REQUESTS(srv, "GET /badsig-once/index.json.sig 200", 2);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* ------------------------------------------------------- Cache-Control */

TEST(huge_max_age_is_clamped)
{
    /* max-age=INT64_MAX: no overflow (UBSan would stop the case), and
     * the index stays fresh, within the host and across hosts */
    http_server *srv = http_start(http_site(NULL),
                                  "--max-age 9223372036854775807");
    log_capture lc;
    mh_host *h1, *h2;

    log_capture_init(&lc);
    h1 = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(h1, "counter"), "value"), 42);
    ASSERT_EQ_INT(call_int(import_ok(h1, "answer7"), "value"), 7);
    ASSERT_REQUESTS(srv, "/ok/index.json ", 1);
    mh_host_free(h1);

    h2 = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(h2, "counter"), "value"), 42);
    ASSERT_EQ_INT(call_int(import_ok(h2, "pkg.mod"), "value"), 42);
    ASSERT_REQUESTS(srv, "/ok/index.json ", 1);
    mh_host_free(h2);
    http_stop(srv);
    log_capture_free(&lc);
}

/* --------------------------------------------- credentials in the URL */

static int collect_origins(void *ud, const mh_spec_info *info)
{
    const char **out = ud;
    *out = str_fmt("%s%s\n", *out, info->origin);
    return 0;
}

/* No file under dir holds needle (in its bytes or its name). */
static void assert_tree_free_of(const char *dir, const char *needle)
{
    int st;
    const char *hits = sh_run(str_fmt("grep -r -a -l -F -e %s %s",
                                      sh_quote(needle), sh_quote(dir)), &st);
    const char *names;

    if (st == 0 || *hits)
        FAIL("\"%s\" is in these files under %s:\n%s", needle, dir, hits);
    if (st != 1)
        FAIL("grep -r %s failed (%d)", dir, st);
    if (tree_count(dir, needle, &names) != 0)
        FAIL("\"%s\" is in file names under %s:%s", needle, dir, names);
}

TEST(credentials_never_shown_or_cached)
{
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, "--max-age 0");
    const char *entry = str_fmt("http://user:s3cret@127.0.0.1:%d/ok/",
                                srv->port);
    const char *entry404 = str_fmt("http://user:s3cret@127.0.0.1:%d/404/",
                                   srv->port);
    const char *path = path_join((const char *const[]){entry, entry404,
                                                       NULL});
    mh_spec_info info = {.size = sizeof info};
    const char *listed = "";
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    /* answer7 is in the index but gone from the server: a load error */
    if (unlink(str_fmt("%s/answer7.so", www)) < 0)
        FAIL("unlink: %s", strerror(errno));
    host = http_host(path, &lc);
    mod = import_ok(host, "counter");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_CONTAINS(mh_module_origin(mod),
                    str_fmt("127.0.0.1:%d/ok/counter.so", srv->port));
    ASSERT_NOT_CONTAINS(mh_module_origin(mod), "s3cret");
    ASSERT_STATUS(mh_find(host, "pkg.mod", &info, ERR), MH_OK);
    ASSERT_NOT_CONTAINS(info.origin, "s3cret");
    ASSERT_STATUS(mh_find(host, "pkg", &info, ERR), MH_OK); /* namespace */
    ASSERT_NOT_CONTAINS(info.origin, "s3cret");
    ASSERT_STATUS(mh_list(host, collect_origins, &listed, ERR), MH_OK);
    ASSERT_CONTAINS(listed, "/ok/pkg/mod.so");
    ASSERT_NOT_CONTAINS(listed, "s3cret");

    import_fails(host, "answer7");
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("127.0.0.1:%d/ok/answer7.so",
                                       srv->port));
    ASSERT_NOT_CONTAINS(ERR_MSG(), "s3cret");
    ASSERT_NE_INT(mh_fetch(host, (const char *const[]){"answer7"}, 1, NULL,
                           NULL, NULL, ERR), MH_OK);
    ASSERT_NOT_CONTAINS(ERR_MSG(), "s3cret");
    /* reaches the /404/ entry: a warning about its index */
    mh_find(host, "nothere", &info, ERR);
    ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("127.0.0.1:%d/404/", srv->port));
    mh_host_free(host);
    fprintf(stderr, "note: %zu of the requests carried Authorization\n",
            http_requests(srv, "auth"));

    /* offline: the cached index, with a warning naming the base URL */
    http_stop(srv);
    host = http_host(entry, &lc);
    mod = import_ok(host, "counter");
    ASSERT_NOT_CONTAINS(mh_module_origin(mod), "s3cret");
    ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("127.0.0.1:%d/ok", srv->port));
    mh_host_free(host);

    if (log_capture_count(&lc, -1, "s3cret") != 0)
        FAIL("a log message shows the password:%s", log_capture_dump(&lc));
    assert_tree_free_of(tmp_path("cache"), "s3cret");
    log_capture_free(&lc);
}

TEST(credentials_not_in_not_found_error)
{
    http_server *srv = http_start(http_site(NULL), NULL);
    log_capture lc;
    mh_host *host;
    mh_module *mod;

    log_capture_init(&lc);
    host = http_host(str_fmt("http://user:s3cret@127.0.0.1:%d/ok/",
                             srv->port), &lc);
    ASSERT_STATUS(mh_import(host, "nothere", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("127.0.0.1:%d/ok", srv->port));
    ASSERT_NOT_CONTAINS(ERR_MSG(), "s3cret");
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "s3cret"), 0);
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(credentials_not_in_unusable_entry_warning)
{
    /* An entry the finder cannot parse is skipped with a warning that
     * names it -- with its password masked, even where the password
     * holds '/', '#' or '@' (curl refuses the first two), or the URL
     * lacks its slashes. */
    static const struct {
        const char *entry, *secret, *shown;
    } cases[] = {
        {"http://alice:s3cret@127.0.0.1:999999/base/", "s3cret",
         "alice:***@127.0.0.1:999999"},
        {"http://alice:S3/CRET@127.0.0.1:8/", "CRET", "alice:***@127.0.0.1:8/"},
        {"http://alice:s3#c@127.0.0.1:999999/", "s3#c", "alice:***@127.0.0.1"},
        {"http://alice:p@ss@127.0.0.1:999999/", "ss@", "alice:***@127.0.0.1"},
        /* malformed: one slash, or none, after the scheme -- and a
         * "://" further on is no authority */
        {"https:/alice:s3cret@127.0.0.1:999999/", "s3cret",
         "https:/alice:***@127.0.0.1"},
        {"http:alice:s3cret@127.0.0.1:999999/", "s3cret",
         "http:alice:***@127.0.0.1"},
        {"https:/alice:s3cret@127.0.0.1:999999/x?r=http://y", "s3cret",
         "https:/alice:***@127.0.0.1"},
        /* a token alone, no ':' */
        {"https://T0KEN5ECRET@127.0.0.1:999999/", "T0KEN5ECRET",
         "https://***@127.0.0.1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        log_capture lc;
        log_capture_init(&lc);
        mh_host *host = http_host(cases[i].entry, &lc);
        mh_spec_info info = {.size = sizeof info};
        ASSERT_STATUS(mh_find(host, "nothere", &info, ERR), MH_ENOTFOUND);
        ASSERT_NOT_CONTAINS(ERR_MSG(), cases[i].secret);
        ASSERT_LOG(&lc, MH_LOG_WARN, cases[i].shown);
        if (log_capture_count(&lc, -1, cases[i].secret) != 0)
            FAIL("%s: a log message shows the password:%s", cases[i].entry,
                 log_capture_dump(&lc));
        mh_host_free(host);
        log_capture_free(&lc);
    }
}

/* ----------------------------------------------------------------- TLS */

TEST(tls_failure_does_not_use_cached_index)
{
    /* An index and counter's bytes are in the cache of the https entry
     * (written in the documented layout, docs/http.md: the server cannot
     * speak both http and https on one port).  A certificate that is not
     * trusted is no outage: the import fails naming the URL, the cached
     * index is not used.  A copy of the same cache, used while the port
     * is closed, shows the cache itself is good. */
    const char *www = http_site(NULL);
    const char *cert = tmp_path("cert.pem"), *pkey = tmp_path("key.pem");
    const char *caches[] = {tmp_path("cache"), tmp_path("cache2")};
    http_server *srv;
    const char *entry;
    log_capture lc;
    mh_host *host;
    mh_module *mod;
    int st;

    log_capture_init(&lc);
    sh_run(str_fmt("openssl req -x509 -newkey ec -pkeyopt "
                   "ec_paramgen_curve:prime256v1 -nodes -days 1 "
                   "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
                   "-keyout %s -out %s 2>/dev/null",
                   sh_quote(pkey), sh_quote(cert)),
           &st);
    if (st != 0)
        FAIL("openssl could not make a certificate");
    srv = http_start(www, str_fmt("--tls %s %s", cert, pkey));
    entry = str_fmt("https://127.0.0.1:%d/ok/", srv->port);
    for (int i = 0; i < 2; i++) {
        const char *dir = str_fmt("%s/http/%.32s", caches[i],
                                  sha256_of_string(entry));
        mkdir_p(dir);
        mkdir_p(str_fmt("%s/blobs", caches[i]));
        /* private, as the cache is used only then */
        ASSERT_EQ_INT(chmod(dir, 0700), 0);
        ASSERT_EQ_INT(chmod(str_fmt("%s/blobs", caches[i]), 0700), 0);
        file_copy(str_fmt("%s/index.json", www),
                  str_fmt("%s/index.json", dir));
        file_write(str_fmt("%s/meta.json", dir),
                   str_fmt("{\"url\":\"%s\",\"etag\":\"\",\"last_modified\":"
                           "\"\",\"fresh_until\":0}", entry));
        file_copy(str_fmt("%s/counter.so", www),
                  str_fmt("%s/blobs/%s", caches[i],
                          sha256_of(str_fmt("%s/counter.so", www))));
    }

    host = host_with(entry, 0, NULL, caches[0], &lc);
    ASSERT_STATUS(mh_import(host, "counter", &mod, ERR), MH_ENOTFOUND);
    if (!strstr(ERR_MSG(), str_fmt("https://127.0.0.1:%d/ok", srv->port)) &&
        log_capture_count(&lc, MH_LOG_WARN,
                          str_fmt("https://127.0.0.1:%d/ok", srv->port)) == 0)
        FAIL("neither the error nor a warning names the URL: \"%s\"; log:%s",
             ERR_MSG(), log_capture_dump(&lc));
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "using the cached"), 0);
    ASSERT_REQUESTS(srv, "GET", 0);
    mh_host_free(host);
    http_stop(srv);

    /* the port is closed now: that is offline, and the cache is good */
    host = host_with(entry, 0, NULL, caches[1], &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* ------------------------------------------------------------ mh_fetch */

TEST(fetch_goes_on_past_a_failing_module)
{
    const char *www = http_site(NULL);
    http_server *srv;
    static const char *const names[] = {"pkg2.a", "pkg2.b"};
    log_capture lc;
    mh_host *host;

    fixture_copy("counter", "www/pkg2/a.so");
    fixture_copy("answer7", "www/pkg2/b.so");
    http_index_dir(www, NULL);
    if (unlink(str_fmt("%s/pkg2/a.so", www)) < 0)
        FAIL("unlink: %s", strerror(errno));
    srv = http_start(www, NULL);
    log_capture_init(&lc);
    host = http_host(http_url(srv, "ok/"), &lc);
    ASSERT_NE_INT(mh_fetch(host, names, 2, NULL, NULL, NULL, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), http_url(srv, "ok/pkg2/a.so"));
    ASSERT_REQUESTS(srv, "GET /ok/pkg2/a.so 404", 1);
    ASSERT_REQUESTS(srv, "GET /ok/pkg2/b.so 200", 1);
    ASSERT_EQ_INT(http_blob_count(), 1);
    ASSERT_TRUE(file_exists(tmp_path("cache/blobs/%s",
                                     sha256_of(str_fmt("%s/pkg2/b.so",
                                                       www)))));
    http_assert_cache_clean();
    mh_host_free(host);
    http_stop(srv);
    log_capture_free(&lc);
}

/* ------------------------------------- the signature fails, transiently */

/* With key a trusted and a good signed index cached, the server publishes
 * a new index but its index.json.sig fails in a transient way (mode, a
 * MODE-sig of server.py): the cached index is used, with a warning. */
static void sig_outage_uses_cached_index(const char *mode, long timeout_ms,
                                         const char *says)
{
    const char *key = http_keygen("a");
    const char *trust = str_fmt("%s.pub", key);
    const char *www = http_site(str_fmt("%s.key", key));
    http_server *srv = http_start(www, "--max-age 0");
    const char *entry = http_url(srv, "switch/");
    mh_http_limits lim = http_limits();
    log_capture lc;
    mh_config cfg;
    mh_host *h1, *h2;
    long long t0;

    log_capture_init(&lc);
    h1 = host_with(entry, 0, trust, NULL, &lc);
    import_ok(h1, "counter");
    mh_host_free(h1);

    fixture_copy("answer7", "www/extra.so");
    http_index_dir(www, str_fmt("%s.key", key));
    http_set_mode(srv, mode);
    cfg = http_cfg(entry, &lc);
    cfg.trust = trust;
    lim.timeout_ms = timeout_ms;
    cfg.http = &lim;
    h2 = host_new_cfg(&cfg);
    t0 = clock_ms();
    ASSERT_EQ_INT(call_int(import_ok(h2, "counter"), "value"), 42);
    if (timeout_ms && clock_ms() - t0 > timeout_ms * 3)
        FAIL("the import took %lld ms with a %ld ms timeout",
             clock_ms() - t0, timeout_ms);
    ASSERT_REQUESTS(srv, "GET /switch/index.json 200", 2);
    ASSERT_REQUESTS(srv, "GET /switch/index.json.sig 200", 1);
    if (http_requests(srv, "GET /switch/index.json.sig ") < 2)
        FAIL("the signature was not asked for again; server log:\n%s",
             http_log_text(srv));
    ASSERT_LOG(&lc, MH_LOG_WARN, http_url(srv, "switch"));
    /* The warning says what failed: the signature's URL, and how. */
    ASSERT_LOG(&lc, MH_LOG_WARN,
               str_fmt("GET %s: %s", http_url(srv, "switch/index.json.sig"),
                       says));
    ASSERT_REQUESTS(srv, "/switch/counter.so", 1);
    mh_host_free(h2);
    http_stop(srv);
    log_capture_free(&lc);
}

TEST(signature_500_uses_cached_index)
{
    sig_outage_uses_cached_index("500-sig", 0, "HTTP 500");
}

TEST(signature_timeout_uses_cached_index)
{
    sig_outage_uses_cached_index("hang-sig", 1500, "Operation timed out");
}

/* A rate-limiting CDN's 429 page is larger than any signature: the status
 * is the answer, so the cached index stands in (the page's size was taken
 * for a definite refusal, and the cached index deleted). */
TEST(signature_429_page_uses_cached_index)
{
    sig_outage_uses_cached_index("429page-sig", 0, "HTTP 429");
}

TEST(signature_503_page_uses_cached_index)
{
    sig_outage_uses_cached_index("503page-sig", 0, "HTTP 503");
}

/* ------------------------------------------------ trusted key files */

#define NOBODY 65534 /* another, non-root user */

/* A site at ok/ signed with a new key; its public half in *pub. */
static http_server *signed_site(const char **pub)
{
    const char *key = http_keygen("a");
    http_server *srv = http_start(http_site(str_fmt("%s.key", key)), NULL);
    *pub = str_fmt("%s.pub", key);
    return srv;
}

/* A host trusting key file pub takes the site's signed index. */
static void trusted_key_works(const http_server *srv, const char *pub,
                              unsigned flags)
{
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = host_with(http_url(srv, "ok/"), flags, pub,
                              tmp_path("cache-%s", flags ? "i" : "s"), &lc);
    ASSERT_EQ_INT(call_int(import_ok(host, "counter"), "value"), 42);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A trusted key file another user could rewrite chooses the host's code:
 * no host is made, and the message names the file, says why (want) and
 * the way out; MH_CONFIG_INSECURE_FILES waives the rule, as for code. */
static void trusted_key_refused(const http_server *srv, const char *pub,
                                const char *want)
{
    log_capture lc;
    mh_host *host = NULL;
    log_capture_init(&lc);
    mh_config cfg = http_cfg(http_url(srv, "ok/"), &lc);
    cfg.trust = pub;
    ASSERT_STATUS(mh_host_new(&cfg, &host, ERR), MH_EPATH);
    ASSERT_NULL(host);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("mh_config.trust: trusted key %s: "
                                       "held to the rules for code files",
                                       pub));
    ASSERT_CONTAINS(ERR_MSG(), want);
    ASSERT_CONTAINS(ERR_MSG(), "MH_CONFIG_INSECURE_FILES");
    log_capture_free(&lc);
    trusted_key_works(srv, pub, MH_CONFIG_INSECURE_FILES);
}

TEST(trusted_key_writable_by_others_refused)
{
    const char *pub;
    http_server *srv = signed_site(&pub);
    if (chmod(pub, 0666) != 0)
        FAIL("chmod %s: %s", pub, strerror(errno));
    trusted_key_refused(srv, pub, "it is writable by group or others "
                                  "(mode 0666");
    if (chmod(pub, 0620) != 0)
        FAIL("chmod %s: %s", pub, strerror(errno));
    trusted_key_refused(srv, pub, "(mode 0620");
    /* mended: taken */
    if (chmod(pub, 0644) != 0)
        FAIL("chmod %s: %s", pub, strerror(errno));
    trusted_key_works(srv, pub, 0);
    http_stop(srv);
}

TEST(trusted_key_in_a_world_writable_directory_refused)
{
    /* Whoever may write the directory may put another key in its place. */
    const char *pub;
    http_server *srv = signed_site(&pub);
    const char *dir = tmp_mkdir("ww");
    const char *copy = tmp_path("ww/k.pub");
    file_copy(pub, copy);
    if (chmod(copy, 0644) != 0 || chmod(dir, 0777) != 0)
        FAIL("chmod: %s", strerror(errno));
    trusted_key_refused(srv, copy, str_fmt("the directory %s above it: it "
                                           "is writable by group or others "
                                           "and not a root-owned sticky "
                                           "directory (mode 0777", dir));
    if (chmod(dir, 0755) != 0)
        FAIL("chmod: %s", strerror(errno));
    trusted_key_works(srv, copy, 0);
    http_stop(srv);
}

TEST(trusted_key_of_another_user_refused)
{
    if (geteuid() != 0)
        SKIP("needs root, to give the key file to uid %d", NOBODY);
    const char *pub;
    http_server *srv = signed_site(&pub);
    if (chmod(pub, 0644) != 0 || lchown(pub, NOBODY, (gid_t)-1) != 0)
        FAIL("chmod/chown %s: %s", pub, strerror(errno));
    trusted_key_refused(srv, pub, "it is owned by another user (mode 0644, "
                                  "owner uid 65534)");
    if (lchown(pub, 0, (gid_t)-1) != 0)
        FAIL("chown %s: %s", pub, strerror(errno));
    trusted_key_works(srv, pub, 0);
    http_stop(srv);
}

TEST(trusted_key_through_another_users_link_in_a_sticky_directory_refused)
{
    /* In a sticky directory anyone may write (as /tmp), another user's
     * link named as the key could be pointed at any key they like. */
    if (geteuid() != 0)
        SKIP("needs root, to give the link to uid %d", NOBODY);
    const char *pub;
    http_server *srv = signed_site(&pub);
    const char *st = tmp_mkdir("sticky");
    const char *link = tmp_path("sticky/k.pub");
    if (chmod(st, 01777) != 0 || symlink(pub, link) != 0 ||
        lchown(link, NOBODY, (gid_t)-1) != 0)
        FAIL("sticky directory with a link: %s", strerror(errno));
    trusted_key_refused(srv, link, str_fmt("%s is a symbolic link of uid "
                                           "65534 in a sticky directory",
                                           link));
    /* our own link there: followed, and its target judged */
    if (lchown(link, 0, (gid_t)-1) != 0)
        FAIL("chown %s: %s", link, strerror(errno));
    trusted_key_works(srv, link, 0);
    http_stop(srv);
}

/* The bytes of files a then b, written to tmp_path(name), mode 0644. */
static const char *cat_files(const char *name, const char *a, const char *b)
{
    const char *out = tmp_path("%s", name);
    file_write(out, str_fmt("%s%s", file_read(a), file_read(b)));
    if (chmod(out, 0644) != 0)
        FAIL("chmod %s: %s", out, strerror(errno));
    return out;
}

TEST(trusted_key_file_with_several_keys_trusts_each)
{
    /* `cat a.pub b.pub > both.pub`: an index signed by b is taken (only
     * a, the first, was read, and b's index silently refused). */
    const char *a = http_keygen("a"), *b = http_keygen("b");
    http_server *srv = http_start(http_site(str_fmt("%s.key", b)), NULL);
    const char *apub = str_fmt("%s.pub", a), *bpub = str_fmt("%s.pub", b);
    trusted_key_works(srv, cat_files("ab.pub", apub, bpub), 0);
    trusted_key_works(srv, cat_files("ba.pub", bpub, apub), 0);

    /* Anything but Ed25519 public keys in it fails host creation, naming
     * the file and the block: a private key beside a public one, a block
     * cut short. */
    static const struct {
        const char *second, *want;
    } bad[] = {
        {".key", "PEM block 2 is not an Ed25519 public key: give only "
                 "public keys, never a private .key"},
        {"cut", "PEM block 2 is cut short or garbled"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *second = str_fmt("%s%s", b, bad[i].second);
        if (strcmp(bad[i].second, "cut") == 0) {
            second = tmp_path("cut.pub");
            file_write(second, str_fmt("%.40s", file_read(bpub)));
        }
        const char *f = cat_files(str_fmt("bad%zu.pub", i), apub, second);
        log_capture lc;
        mh_host *host = NULL;
        log_capture_init(&lc);
        mh_config cfg = http_cfg(http_url(srv, "ok/"), &lc);
        cfg.trust = f;
        ASSERT_STATUS(mh_host_new(&cfg, &host, ERR), MH_EFORMAT);
        ASSERT_NULL(host);
        ASSERT_CONTAINS(ERR_MSG(), str_fmt("mh_config.trust: trusted key "
                                           "%s: %s", f, bad[i].want));
        log_capture_free(&lc);
    }
    http_stop(srv);
}

TEST(keygen_refuses_a_base_naming_a_directory)
{
    /* BASE is a prefix: "DIR/" made the hidden DIR/.key and DIR/.pub. */
    const char *dir = tmp_mkdir("k");
    const char *bases[] = {str_fmt("%s/", dir), str_fmt("%s/.", dir),
                           str_fmt("%s/..", dir), str_fmt("%s//", dir)};
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        ASSERT_STATUS(mh_keygen(bases[i], ERR), MH_EINVAL);
        ASSERT_CONTAINS(ERR_MSG(), str_fmt("mh_keygen: %s: BASE names a "
                                           "directory; give a file name "
                                           "such as DIR/release", bases[i]));
    }
    ASSERT_EQ_INT(dir_count(dir), 0);
    ASSERT_FALSE(file_exists(tmp_path(".key")));
    ASSERT_FALSE(file_exists(tmp_path(".pub")));
    /* A file name in it still makes both. */
    ASSERT_STATUS(mh_keygen(str_fmt("%s/release", dir), ERR), MH_OK);
    ASSERT_EQ_INT(dir_count(dir), 2);
}

/* ------------------------------------------------------- signing keys */

/* mh_index_dir(www, key) is refused with MH_EINVAL saying want, and
 * writes nothing: www holds just counter.so, as before. */
static void signing_refused(const char *www, const char *key,
                            const char *want)
{
    ASSERT_STATUS(mh_index_dir(www, key, NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("signing key %s ", key));
    ASSERT_CONTAINS(ERR_MSG(), want);
    ASSERT_FALSE(file_exists(str_fmt("%s/index.json", www)));
    ASSERT_FALSE(file_exists(str_fmt("%s/index.json.sig", www)));
    ASSERT_EQ_INT(tree_count(www, "index.json", NULL), 0);
}

TEST(signing_key_others_may_read_is_refused)
{
    /* As ssh refuses such a key: whoever may read it may sign indexes
     * the hosts trust. */
    const char *key = str_fmt("%s.key", http_keygen("a"));
    const char *www = tmp_mkdir("www");
    fixture_copy("counter", "www/counter.so");
    static const mode_t loose[] = {0640, 0604, 0620, 0602, 0660};
    for (size_t i = 0; i < sizeof loose / sizeof *loose; i++) {
        ASSERT_EQ_INT(chmod(key, loose[i]), 0);
        signing_refused(www, key, str_fmt("may be read or written by group "
                                          "or others (mode %04o",
                                          (unsigned)loose[i]));
        ASSERT_CONTAINS(ERR_MSG(), str_fmt("'chmod 600 %s'", key));
    }
    /* private again: signs */
    ASSERT_EQ_INT(chmod(key, 0600), 0);
    ASSERT_STATUS(mh_index_dir(www, key, NULL, ERR), MH_OK);
    ASSERT_TRUE(file_exists(str_fmt("%s/index.json.sig", www)));
}

TEST(signing_key_inside_the_indexed_directory_is_refused)
{
    /* `modhost index --sign DIR/release.key DIR` published the private
     * key with the index: whatever serves DIR serves it too. */
    const char *www = tmp_mkdir("www");
    fixture_copy("counter", "www/counter.so");
    const char *want = str_fmt("is inside %s, the directory being indexed",
                               www);
    ASSERT_STATUS(mh_keygen(str_fmt("%s/release", www), ERR), MH_OK);
    signing_refused(www, str_fmt("%s/release.key", www), want);
    tmp_mkdir("www/.private");
    ASSERT_STATUS(mh_keygen(str_fmt("%s/.private/k", www), ERR), MH_OK);
    signing_refused(www, str_fmt("%s/.private/k.key", www), want);
    /* by a name outside that leads in, or one inside that leads out */
    const char *out = str_fmt("%s.key", http_keygen("out"));
    ASSERT_EQ_INT(symlink(str_fmt("%s/release.key", www),
                          tmp_path("keys/in.key")), 0);
    signing_refused(www, tmp_path("keys/in.key"), want);
    ASSERT_EQ_INT(symlink(out, str_fmt("%s/link.key", www)), 0);
    signing_refused(www, str_fmt("%s/link.key", www), want);
    /* the directory named through a link of its own */
    ASSERT_EQ_INT(symlink(www, tmp_path("site")), 0);
    signing_refused(tmp_path("site"), str_fmt("%s/release.key", www), want);
    signing_refused(www, tmp_path("site/release.key"), want);
    /* outside: signs */
    ASSERT_EQ_INT(unlink(str_fmt("%s/link.key", www)), 0);
    ASSERT_STATUS(mh_index_dir(www, out, NULL, ERR), MH_OK);
    ASSERT_TRUE(file_exists(str_fmt("%s/index.json.sig", www)));
}
