/*
 * finders/httpget.c -- one bounded HTTP(S) GET with libcurl (mh_get_*).
 *
 * What a plugin host must never let a server do to it, and how:
 *   - send more than expected: bytes are counted as they arrive (after
 *     content decoding, so a gzip bomb stops at the limit too), and the
 *     transfer is aborted past the maximum; Content-Length over it fails
 *     before the body (CURLOPT_MAXFILESIZE_LARGE);
 *   - keep us waiting: connect and total timeouts, and a low-speed limit
 *     for servers that drip;
 *   - send us elsewhere: redirects are followed by hand, only to the same
 *     origin (scheme, host, port), at most max_redirects times, so
 *     credentials and trust never cross to another host;
 *   - downgrade: only http and https, TLS verification as libcurl's
 *     default (on).  Proxies come from the standard environment variables,
 *     which libcurl reads itself.
 * The handle is the caller's and is reused across calls: curl_easy_reset
 * keeps its live connections, so a finder talks to its server over one
 * keep-alive connection.
 */
#include "host/internal.h"
#include "finders/httpget.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

typedef struct sink {
    mh_host *host;
    CURL *c;
    mh_get *g;
    size_t max;
    size_t dropped;   /* bytes of an error page read and not kept */
    bool too_big;
    bool cut;         /* an error page cut off at MH_GET_DROP_MAX */
    bool oom;
} sink;

/* Is status one whose body is wanted (2xx)?  The body of any other -- a
 * CDN's 429 page, a 503 page, a redirect's note -- says nothing modhost
 * reads, and must not be held against the size limit of what was asked
 * for: its status is the answer. */
static bool body_wanted(long status)
{
    return status >= 200 && status < 300;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    mh_get *g = s->g;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &status);
    if (!body_wanted(status)) {
        s->dropped += len;
        if (s->dropped > MH_GET_DROP_MAX) {
            s->cut = true;
            return 0; /* aborts: CURLE_WRITE_ERROR */
        }
        return len;
    }
    if (len > s->max - g->body.len || g->body.len > s->max) {
        s->too_big = true;
        return 0; /* aborts: CURLE_WRITE_ERROR */
    }
    if (g->body.len + len > g->body.size) {
        size_t cap = g->body.size ? g->body.size : 16384;
        while (cap < g->body.len + len)
            cap = cap > s->max / 2 ? s->max : cap * 2;
        unsigned char *nb = mh_mem_realloc(s->host, g->body.data,
                                           g->body.size, cap);
        if (!nb) {
            s->oom = true;
            return 0;
        }
        g->body.data = nb;
        g->body.size = cap;
    }
    memcpy(g->body.data + g->body.len, p, len);
    g->body.len += len;
    return len;
}

static void header_value(char *out, size_t size, const char *v, size_t n)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    snprintf(out, size, "%.*s", (int)n, v);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    mh_get *g = ud;
    size_t len = size * n;
    if (len >= 5 && strncasecmp(p, "HTTP/", 5) == 0) { /* a new response */
        g->etag[0] = g->last_modified[0] = '\0';
        g->max_age = -1;
        g->age = 0;
        g->no_cache = false;
    } else if (len > 5 && strncasecmp(p, "ETag:", 5) == 0) {
        header_value(g->etag, sizeof g->etag, p + 5, len - 5);
    } else if (len > 14 && strncasecmp(p, "Last-Modified:", 14) == 0) {
        header_value(g->last_modified, sizeof g->last_modified, p + 14,
                     len - 14);
    } else if (len > 14 && strncasecmp(p, "Cache-Control:", 14) == 0) {
        char v[256];
        header_value(v, sizeof v, p + 14, len - 14);
        char *m = strstr(v, "max-age=");
        if (m) { /* a year at most: no overflow, no "forever" */
            long a = strtol(m + 8, NULL, 10);
            g->max_age = a < 0 ? 0 : a > MH_GET_MAX_AGE ? MH_GET_MAX_AGE : a;
        }
        /* Directives may come on several lines (RFC 9110 5.3: they are
         * one list; nginx's "expires" beside an "add_header" does it):
         * a no-cache on any of them holds whatever the others say. */
        if (strstr(v, "no-cache") || strstr(v, "no-store"))
            g->no_cache = true;
    } else if (len > 4 && strncasecmp(p, "Age:", 4) == 0) {
        char v[32];
        header_value(v, sizeof v, p + 4, len - 4);
        long a = strtol(v, NULL, 10); /* seconds a cache in between held it */
        g->age = a < 0 ? 0 : a > MH_GET_MAX_AGE ? MH_GET_MAX_AGE : a;
    }
    return len;
}

typedef struct progress {
    mh_get_progress_fn fn;
    void *ud;
} progress;

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow,
                       curl_off_t ultotal, curl_off_t ulnow)
{
    MH_UNUSED(ultotal);
    MH_UNUSED(ulnow);
    progress *pr = ud;
    return pr->fn ? pr->fn(pr->ud, (uint64_t)dlnow, (uint64_t)dltotal) : 0;
}

/* curl's sockets, made close-on-exec: a kept connection would otherwise
 * pass, open, to every program the application runs (libcurl 7.88 sets
 * no FD_CLOEXEC).  Its transfer loop's own wake-up socket pair it makes
 * without one too, and offers no option for (docs/http.md). */
static curl_socket_t open_socket(void *ud, curlsocktype purpose,
                                 struct curl_sockaddr *a)
{
    (void)ud;
    (void)purpose;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

/* scheme://host:port of url, lower-cased scheme and host. */
static bool origin_of(const char *url, char *out, size_t size)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) ==
                  CURLUE_OK;
    if (ok) {
        snprintf(out, size, "%s://%s:%s", scheme, host, port);
        for (char *c = out; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}

/* A refused redirect's error, its Location shown with any password
 * masked, in memory of this call's: a server choosing Locations must not
 * grow the host (nothing is interned). */
static mh_status refuse_redirect(mh_host *h, mh_error **err, const char *cur,
                                 const char *to, const char *what)
{
    char shown[1024];
    mh_path_show_escaped(h, to, shown, sizeof shown);
    return mh_err(h, err, MH_EIO, "GET %s: redirect to %s (%s) refused", cur,
                  what, shown);
}

/* Does url carry a user name or password? */
static bool has_userinfo(const char *url)
{
    CURLU *u = curl_url();
    char *user = NULL, *pass = NULL;
    bool yes = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
               (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
                curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK);
    curl_free(user);
    curl_free(pass);
    curl_url_cleanup(u);
    return yes;
}

void mh_get_free(mh_host *h, mh_get *g)
{
    mh_blob_free(h, &g->body);
    mh_mem_strfree(h, g->final_url);
    g->final_url = NULL;
}

void mh_get_status_text(const mh_get *g, const char *url, char *buf,
                        size_t size)
{
    if (g->final_url)
        snprintf(buf, size, "GET %s: redirected to %s: HTTP %ld", url,
                 g->final_url, g->status);
    else
        snprintf(buf, size, "GET %s: HTTP %ld", url, g->status);
}

/* Transport failures that mean "the server is down" (so a cached copy may
 * stand in), as opposed to ones that mean "something is wrong" (TLS
 * verification, a refused protocol), which must never fall back. */
static bool transport_down(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    /* A TLS handshake broken off (a reset, an early close: a server
     * restarting, a balancer with no backend), HTTP/2 refusing a stream:
     * not now, rather than no.  A certificate that fails verification
     * (CURLE_PEER_FAILED_VERIFICATION) stays a definite answer. */
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    /* Bytes that are no HTTP answer (a server restarting, a broken
     * balancer or proxy): "weird server reply", or "Received HTTP/0.9 when
     * not allowed", which libcurl calls an unsupported protocol (no other
     * request made here can be one: the entry is http(s), and a redirect
     * only to the same origin); and a compressed body broken off. */
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_CONTENT_ENCODING:
        return true;
    default:
        return false;
    }
}

/* Only a literal loopback address, or exactly "localhost", is loopback:
 * a name that merely starts with "127." is anybody's. */
bool mh_get_loopback(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL;
    bool yes = false;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        char h[256];
        size_t n = strlen(host);
        if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
            snprintf(h, sizeof h, "%.*s", (int)(n - 2), host + 1);
        else
            snprintf(h, sizeof h, "%s", host);
        struct in_addr a4;
        struct in6_addr a6;
        if (strcasecmp(h, "localhost") == 0)
            yes = true;
        else if (inet_pton(AF_INET, h, &a4) == 1)
            yes = (ntohl(a4.s_addr) >> 24) == 127;
        else if (inet_pton(AF_INET6, h, &a6) == 1)
            yes = IN6_IS_ADDR_LOOPBACK(&a6);
    }
    curl_free(host);
    curl_url_cleanup(u);
    return yes;
}

mh_status mh_get_url(mh_host *h, CURL *c, const char *url,
                     const char *userpwd, size_t max, const char *etag,
                     const char *last_modified, mh_get_progress_fn fn,
                     void *ud, mh_get *g, mh_error **err)
{
    const mh_http_limits *lim = &h->http;
    char cur[4096], errbuf[CURL_ERROR_SIZE];
    memset(g, 0, sizeof *g);
    g->max_age = -1;
    g->unavailable = true;
    if (strlen(url) >= sizeof cur) {
        g->unavailable = false; /* for good, not the server down */
        return mh_err(h, err, MH_EINVAL, "GET %.200s...: the URL is longer "
                      "than %zu bytes", url, sizeof cur - 1);
    }
    snprintf(cur, sizeof cur, "%s", url);
    /* A loopback URL is this machine: a proxy's 127.0.0.1 is the proxy's
     * own, and what it answers must not pass for this machine's (the
     * loopback exemption from signatures).  Redirects stay on the
     * origin. */
    bool direct = mh_get_loopback(url);
    /* timeout_ms is for the whole answer, redirects and all: a server
     * that sends each request elsewhere slowly must not stretch it to
     * (max_redirects + 1) times as long. */
    long long deadline = mh_mono_ms() + lim->timeout_ms;

    for (int hops = 0;; hops++) {
        long long left = deadline - mh_mono_ms();
        if (left <= 0) {
            g->unavailable = true; /* as a transfer that timed out */
            return mh_err(h, err, MH_EIO, "GET %s: timed out: no answer "
                          "within timeout_ms (%ld ms; %d redirect%s "
                          "followed, the last to %s)", url, lim->timeout_ms,
                          hops, hops == 1 ? "" : "s", cur);
        }
        struct curl_slist *hdrs = NULL;
        char line[600];
        if (etag && etag[0]) {
            snprintf(line, sizeof line, "If-None-Match: %s", etag);
            hdrs = curl_slist_append(hdrs, line);
        }
        if (last_modified && last_modified[0]) {
            snprintf(line, sizeof line, "If-Modified-Since: %s",
                     last_modified);
            hdrs = curl_slist_append(hdrs, line);
        }
        sink s = {.host = h, .c = c, .g = g, .max = max};
        progress pr = {fn, ud};
        mh_blob_free(h, &g->body);
        errbuf[0] = '\0';
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, cur);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, lim->connect_timeout_ms);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)left);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, lim->low_speed_bytes);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, lim->low_speed_seconds);
        /* curl holds this against Content-Length, which is the encoded
         * size: gzip makes a small or incompressible body larger.  Room
         * for that here; on_body holds the decoded bytes to max exactly,
         * and a body that lies about its length is cut there too. */
        curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
                         (curl_off_t)(max + max / 8 + 1024));
        curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(c, CURLOPT_USERAGENT, "modhost/" MH_VERSION_STRING);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, g);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &pr);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, fn ? 0L : 1L);
        if (direct)
            curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
        if (userpwd) /* same origin only (redirects are checked below) */
            curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
        CURLcode rc = mh_fault(h, "curl") ? CURLE_RECV_ERROR
                                          : curl_easy_perform(c);
        curl_slist_free_all(hdrs);

        if (s.oom)
            return mh_err(h, err, MH_ENOMEM, "out of memory downloading %s",
                          cur);
        /* An error page cut off, or refused by its Content-Length: the
         * status is the answer, its body is not wanted anyway. */
        long got = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &got);
        if ((s.cut && rc == CURLE_WRITE_ERROR) ||
            (rc == CURLE_FILESIZE_EXCEEDED && got >= 100 &&
             !body_wanted(got)))
            rc = CURLE_OK;
        if (s.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
            g->unavailable = false;
            return mh_err(h, err, MH_EFORMAT, "GET %s: the response is "
                          "larger than the limit of %zu bytes", cur, max);
        }
        if (rc != CURLE_OK) {
            g->unavailable = transport_down(rc);
            return mh_err(h, err, MH_EIO, "GET %s: %s", cur,
                          errbuf[0] ? errbuf : curl_easy_strerror(rc));
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &g->status);
        if (g->status >= 300 && g->status < 400 && g->status != 304) {
            char *to = NULL;
            curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &to);
            g->unavailable = false;
            if (!to)
                return mh_err(h, err, MH_EIO, "GET %s: HTTP %ld without a "
                              "Location", cur, g->status);
            /* A user name or password in it is never sent. */
            if (has_userinfo(to))
                return refuse_redirect(h, err, cur, to, "a URL with a user "
                                       "name or password");
            char oa[512], ob[512];
            if (!origin_of(to, ob, sizeof ob))
                return refuse_redirect(h, err, cur, to, "a URL that cannot "
                                       "be parsed");
            if (!origin_of(url, oa, sizeof oa) || strcmp(oa, ob) != 0)
                return refuse_redirect(h, err, cur, to, "another origin");
            if (strlen(to) >= sizeof cur)
                return mh_err(h, err, MH_EIO, "GET %s: redirect to a URL "
                              "longer than %zu bytes refused", cur,
                              sizeof cur - 1);
            if (hops + 1 > lim->max_redirects)
                return mh_err(h, err, MH_EIO, "GET %s: more than %d "
                              "redirects (a loop?)", url, lim->max_redirects);
            snprintf(cur, sizeof cur, "%s", to);
            continue;
        }
        /* 5xx, and the 4xx that say "not now" rather than "no": a
         * request timeout, too early, too many requests (a rate-limiting
         * CDN).  Cached copies stand in for them; any other 4xx is a
         * definite answer. */
        g->unavailable = g->status >= 500 || g->status == 408 ||
                         g->status == 425 || g->status == 429;
        /* The freshness, settled once all headers are in: none with a
         * no-cache on any line, else what a cache in between has held
         * counts against the lifetime (RFC 9111 4.2.3), or an index is
         * fresh here for up to twice its max-age. */
        if (g->no_cache)
            g->max_age = 0;
        else if (g->max_age > 0)
            g->max_age = g->age >= g->max_age ? 0 : g->max_age - g->age;
        /* Named in messages about the status; without the memory, the
         * message names the URL asked for. */
        if (hops > 0)
            g->final_url = mh_mem_strdup(h, cur);
        return MH_OK;
    }
}
