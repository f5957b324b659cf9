/*
 * finders/http.c -- the HTTP finder (mh_htf_*): modules from any static
 * web server serving a directory that `modhost index` prepared.
 *
 * An entry http(s)://host/base/ has BASE/index.json (finders/index.h)
 * listing every module with its size and SHA-256; module a.b.c is
 * BASE/a/b/c.so.  Nothing is fetched until the first find.
 *
 * The index
 * ---------
 * Fetched once, then kept as long as Cache-Control max-age allows and
 * revalidated with If-None-Match / If-Modified-Since after that.  A
 * server that says nothing about freshness (no max-age, no no-cache) gets
 * one revalidation per host every index_fresh_s seconds at most
 * (mh_http_limits, 300 by default): the index then serves this host's
 * imports (until mh_invalidate_caches()), not one request per import.
 * When trusted keys are configured (MODHOST_TRUST, mh_config.trust), the index
 * must come with BASE/index.json.sig, an Ed25519 signature of its exact
 * bytes by one of them, or the entry is refused.  Plain http:// to a host
 * that is not loopback is refused unless the index is signed that way or
 * the application opted in (MH_CONFIG_ALLOW_HTTP): an unsigned index over
 * plain HTTP is anybody's index.
 *
 * Integrity
 * ---------
 * A module's bytes must have the size and SHA-256 the (verified) index
 * gives before anything maps them: they go through the memory loader, so
 * the checked bytes are the mapped bytes.  A mismatch is an error and the
 * bytes are neither loaded nor cached.
 *
 * Cache and offline use
 * ---------------------
 * <cache_dir>/http/<hash of the base URL>/ keeps the last good index, its
 * signature and its validators; <cache_dir>/blobs/<sha256> keeps module
 * bytes by content, shared by all entries.  Files are written atomically
 * (cache/atomic.c) and re-verified on every read, so a damaged cache file
 * is ignored, never trusted.  Without trusted keys the cached index is
 * what vouches for the blobs, so the disk cache is used only where nobody
 * else can write (host/secure.c: both directories private, every one
 * above them owned by root or this user): elsewhere, with a warning, the
 * entry works from the network alone.  When the server is unreachable or
 * answers 5xx, the last good index and the cached modules are used
 * (stale-if-error) with a warning; a module never cached fails with an
 * error naming its URL and the cause.
 */
#include "host/internal.h"
#include "cache/atomic.h"
#include "cache/blobs.h"
#include "finders/finder.h"
#include "finders/httpget.h"
#include "finders/index.h"
#include "host/secure.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define HTF_STALE_RETRY_S 5   /* after a failed revalidation, wait this long */
#define HTF_SLOW_MS 1000      /* a failure that took this long (a timeout)
                                 is not asked again at once */
#define HTF_SLOW_RETRY_MAX_S 300 /* ... but after at most this long */
#define HTF_MAX_SIG 4096
/* meta.json: the base URL (under 4096 bytes), an ETag and a Last-Modified
 * as JSON strings (each byte at most 6: \u00XX), with room to spare. */
#define HTF_MAX_META 16384

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ok;

static void curl_init_once(void)
{
    curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* A download under way (get_module) from this entry, by the SHA-256 it
 * must have: a thread that needs the same bytes waits for it and takes
 * them from the blob cache, rather than download them again. */
typedef struct htf_dl {
    unsigned char sha256[32];
    pthread_t thread;          /* downloading: never waits for itself */
    unsigned forks;            /* mh_fork_count then: in a child of fork()
                                  the thread is not there to finish it */
    struct htf_dl *next;
} htf_dl;

typedef struct htf_state {
    mh_host *host;
    const char *base;          /* interned, ends with '/', no userinfo */
    char *userpwd;             /* "user:password" from the entry, or NULL:
                                  sent, never shown, logged or stored */
    char dir[4096];            /* cache directory of this entry */
    pthread_mutex_t lock;
    CURL *curl;                /* the entry's handle (its connections) */
    unsigned curl_forks;       /* mh_fork_count when it was made: in a
                                  child of fork() its connections are the
                                  parent's sockets too */
    bool curl_busy;            /* in use by a download made without the
                                  lock: others take a handle of their own */
    struct htf_dl *downloads;  /* under way, without the lock */
    pthread_cond_t dl_done;    /* one of them ended */
    bool loopback, plain;      /* 127.0.0.0/8, localhost, ::1; http:// */
    mh_index idx;              /* current index (may be stale) */
    bool have_idx;
    bool signed_ok;            /* idx passed a trusted signature check */
    uint64_t floor;            /* the highest index serial this entry has
                                  had (<dir>/serial, which outlives the
                                  index): none lower is taken */
    time_t fresh_until;        /* no request before this */
    time_t fresh_since;        /* when fresh_until was set (the answer's
                                  time): a clock now behind it was set
                                  back, and fresh_until means nothing */
    time_t host_fresh_until;   /* fetched or revalidated by this host, and
                                  the server set no freshness: this host
                                  asks again after this */
    long max_age;              /* the lifetime the server gave the index
                                  held (max-age less Age), -1 none: a 304
                                  that says none keeps it (RFC 9111 4.3.4:
                                  its headers update the stored ones) */
    char etag[256], last_modified[128];
    char idx_sha[65];          /* SHA-256 (hex) of the index held, or "" */
    char warned[256];          /* last cause warned about (once each) */
    bool quiet;                /* in mh_fetch and a listing: the caller
                                  gets the index's failure as the error
                                  (warn_failure) */
    int disk;                  /* the disk cache: 1 usable, -1 not (others
                                  could write there), 0 not checked yet */
    char disk_why[1024];       /* why not, when -1 */
    time_t down_until;         /* down, slowly (a timeout), with no index to
                                  stand in: no request before this (each
                                  would wait it out), down_cause instead */
    int down_retry_s;          /* down_until's distance, for messages */
    char down_cause[1024];
} htf_state;

static int htf_claims(mh_finder_ctx *cx, const char *entry)
{
    MH_UNUSED(cx);
    /* A scheme is case-insensitive (RFC 3986); the base URL curl gives
     * back is in lower case. */
    return strncasecmp(entry, "http://", 7) == 0 ||
           strncasecmp(entry, "https://", 8) == 0;
}

/* Split userinfo off the URL: base gets the URL without it, *userpwd the
 * "user:password" (host memory) or NULL.  false if the URL is unusable. */
static bool split_userinfo(mh_host *h, const char *url, char *base,
                           size_t size, char **userpwd)
{
    CURLU *u = curl_url();
    char *user = NULL, *pass = NULL, *clean = NULL;
    bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK;
    *userpwd = NULL;
    if (ok) {
        curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE);
        curl_url_get(u, CURLUPART_PASSWORD, &pass, CURLU_URLDECODE);
        curl_url_set(u, CURLUPART_USER, NULL, 0);
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
        ok = curl_url_get(u, CURLUPART_URL, &clean, 0) == CURLUE_OK &&
             strlen(clean) < size;
    }
    if (ok) {
        snprintf(base, size, "%s", clean);
        if (user) {
            mh_buf b;
            mh_buf_init(&b, h, 4096);
            mh_buf_printf(&b, "%s:%s", user, pass ? pass : "");
            *userpwd = b.failed ? NULL : mh_mem_strdup(h, mh_buf_str(&b));
            ok = *userpwd != NULL;
            mh_buf_free(&b);
        }
    }
    curl_free(user);
    curl_free(pass);
    curl_free(clean);
    curl_url_cleanup(u);
    return ok;
}

static mh_status htf_open(mh_finder_ctx *cx, const char *entry, void **state)
{
    mh_host *h = MH_FCX(cx)->h;
    mh_error **err = MH_FCX(cx)->err;
    /* Never the password, even of an entry that cannot be parsed. */
    const char *shown = mh_path_shown(h, entry);
    if (!shown)
        return mh_err(h, err, MH_ENOMEM, "out of memory opening an http "
                      "entry");
    pthread_once(&curl_once, curl_init_once);
    if (!curl_ok)
        return mh_err(h, err, MH_EIO, "entry %s: libcurl failed to "
                      "initialise", shown);
    char base[4096];
    char *userpwd = NULL;
    if (!split_userinfo(h, entry, base, sizeof base - 1, &userpwd) ||
        strchr(base, '?') || strchr(base, '#')) {
        mh_mem_strfree(h, userpwd);
        return mh_err(h, err, MH_EPATH, "entry %s: not a usable base URL",
                      shown);
    }
    size_t n = strlen(base);
    if (base[n - 1] != '/')
        memcpy(base + n, "/", 2);
    char key[33]; /* of the base URL: its cache directory's name */
    if (!mh_sha256_hex(base, strlen(base), 16, key)) {
        mh_mem_strfree(h, userpwd);
        return mh_err(h, err, MH_EIO, "entry %s: cannot hash its URL",
                      shown);
    }
    htf_state *s = mh_mem_calloc(h, 1, sizeof *s);
    if (!s) {
        mh_mem_strfree(h, userpwd);
        return mh_err(h, err, MH_ENOMEM, "out of memory opening %s", base);
    }
    s->host = h;
    s->userpwd = userpwd;
    s->base = mh_int_cstr(h, base);
    s->curl = curl_easy_init();
    s->curl_forks = mh_fork_count();
    if (!s->base || !s->curl) {
        curl_easy_cleanup(s->curl);
        mh_mem_strfree(h, s->userpwd);
        mh_mem_free(h, s, sizeof *s);
        return mh_err(h, err, MH_ENOMEM, "out of memory opening %s", base);
    }
    snprintf(s->dir, sizeof s->dir, "%s/http/%s", h->cache_dir, key);
    s->max_age = -1;
    s->loopback = mh_get_loopback(base);
    s->plain = strncasecmp(base, "http://", 7) == 0;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->dl_done, NULL);
    *state = s;
    return MH_OK;
}

static void htf_invalidate(mh_finder_ctx *cx, void *state)
{
    MH_UNUSED(cx);
    htf_state *s = state;
    pthread_mutex_lock(&s->lock);
    s->fresh_until = 0; /* revalidate on next use */
    s->host_fresh_until = 0;
    s->down_until = 0;
    s->warned[0] = '\0';
    pthread_mutex_unlock(&s->lock);
}

static void htf_close(mh_finder_ctx *cx, void *state)
{
    MH_UNUSED(cx);
    htf_state *s = state;
    if (s->have_idx)
        mh_idx_free(s->host, &s->idx);
    if (s->curl_forks == mh_fork_count()) /* else let go of: take_curl */
        curl_easy_cleanup(s->curl);
    mh_mem_strfree(s->host, s->userpwd);
    pthread_cond_destroy(&s->dl_done);
    pthread_mutex_destroy(&s->lock);
    mh_mem_free(s->host, s, sizeof *s);
}

/* A warning, once per distinct cause. */
static void warn_once(htf_state *s, const char *msg)
{
    /* Compared with the counts in libcurl's text as one '#': the same
     * cause counts what it waited and got ("Operation timed out after 4002
     * milliseconds with 0 out of 18976 bytes received"), other numbers at
     * every try.  Other numbers (a status, a serial, a port) tell causes
     * apart. */
    static const char *const counted[] = {" ms", " milliseconds", " bytes",
                                          " out of"};
    char key[sizeof s->warned];
    size_t k = 0;
    for (const char *p = msg; *p && k < sizeof key - 1;) {
        size_t d = strspn(p, "0123456789");
        bool count = false;
        for (size_t i = 0; d && i < MH_ARRAY_LEN(counted) && !count; i++)
            count = strncmp(p + d, counted[i], strlen(counted[i])) == 0;
        if (count) {
            key[k++] = '#';
            p += d;
        } else {
            key[k++] = *p++;
        }
    }
    key[k] = '\0';
    if (strcmp(s->warned, key) == 0)
        return;
    memcpy(s->warned, key, k + 1);
    mh_log(s->host, MH_LOG_WARN, "%s", msg);
}

/* The same for a failure the finder cannot work around, which an
 * mh_fetch holding the lock returns as its error instead (s->quiet). */
static void warn_failure(htf_state *s, const char *msg)
{
    if (!s->quiet)
        warn_once(s, msg);
}

static bool disk_ok(htf_state *s);

/* The serial floor from the disk cache (lock held): raised to what
 * <dir>/serial says, which another process may have raised since.  Read
 * before each index is taken, so no process, however long it has run,
 * takes or caches an index older than one any of them had.  MH_OK (no
 * file is a floor of 0); else *why says why the file cannot tell, and no
 * index is taken rather than one the floor might have refused: MH_EAGAIN
 * when that may pass (it could not be read now), MH_EVERSION when it
 * will not (it says no serial). */
static mh_status read_floor(htf_state *s, const char **why)
{
    char p[4200];
    unsigned char *d = NULL;
    size_t n = 0;
    if (!disk_ok(s))
        return MH_OK;
    snprintf(p, sizeof p, "%s/serial", s->dir);
    mh_status rc = mh_atw_read(s->host, p, 32, &d, &n, NULL);
    if (rc == MH_ENOTFOUND)
        return MH_OK;
    /* One another user could have written could have been lowered: no
     * floor at all would be no better. */
    if (rc != MH_OK) {
        *why = rc == MH_EFORMAT ? "is not a file of a serial"
             : rc == MH_EPATH   ? "could have been written by another user"
                                : "cannot be read now";
        return rc == MH_EFORMAT || rc == MH_EPATH ? MH_EVERSION : MH_EAGAIN;
    }
    char text[33];
    memcpy(text, d, n);
    text[n] = '\0';
    mh_mem_free(s->host, d, n ? n : 1);
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || (*end != '\n' && *end != '\0') ||
        v > (unsigned long long)MH_IDX_SERIAL_MAX) {
        *why = "is not a serial";
        return MH_EVERSION;
    }
    if (v > s->floor)
        s->floor = v;
    return MH_OK;
}

/* Hold a lock on the entry's cache directory (flock; it makes no file)
 * while an index is checked against the floor and cached, so that two
 * processes cannot each take their own and the lower one be written
 * last: a descriptor to close, or -1 (no disk cache, or no lock to be
 * had: then as before). */
static int floor_lock(htf_state *s)
{
    if (!disk_ok(s))
        return -1;
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 && mh_io_lock(fd) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Record a new, higher serial (lock held): in this host, and on disk
 * only for an index a trusted key signed -- where nobody checked the
 * signature, whoever served the index would set the floor for every
 * process sharing the cache, hosts with keys among them, and lock the
 * real index out.  Written before the index it belongs to is cached; a
 * failure is only a warning. */
static void raise_floor(htf_state *s, uint64_t serial, bool verified)
{
    if (serial <= s->floor)
        return;
    s->floor = serial;
    char p[4200], text[32];
    mh_error *e = NULL;
    if (!verified || !disk_ok(s))
        return;
    snprintf(p, sizeof p, "%s/serial", s->dir);
    int n = snprintf(text, sizeof text, "%llu\n", (unsigned long long)serial);
    if (mh_atw_write(s->host, p, text, (size_t)n, &e) != MH_OK)
        mh_log(s->host, MH_LOG_WARN, "http: cannot record the index serial "
               "of %s: %s", s->base, mh_error_message(e));
    mh_error_free(e);
}

/* Check a downloaded or cached index (and its signature) and make it
 * current.  Lock held.  sig_why: why there is no signature, when its
 * request failed (NULL: it was not there).  *bad_sig (if not NULL): the
 * refusal is the signature's (missing, or not valid for a trusted key). */
static mh_status adopt(htf_state *s, const void *json, size_t len,
                       const void *sig, size_t sig_len, const char *where,
                       const char *sig_why, bool *bad_sig, mh_error **err)
{
    mh_host *h = s->host;
    bool ignored;
    if (!bad_sig)
        bad_sig = &ignored;
    *bad_sig = false;
    bool trusted = h->trust.n > 0;
    if (trusted || (s->plain && !s->loopback &&
                    !(h->flags & MH_CONFIG_ALLOW_HTTP))) {
        if (!trusted)
            return mh_err(h, err, MH_EPATH, "%s: plain http:// to a host "
                          "that is not loopback needs a signed index and "
                          "trusted keys (MODHOST_TRUST), or the application's "
                          "opt-in (MH_CONFIG_ALLOW_HTTP)", where);
        *bad_sig = !sig || !mh_tru_verify(&h->trust, json, len, sig,
                                          sig_len);
        if (!sig)
            return mh_err(h, err, MH_EFORMAT, "%s: no signature "
                          "(index.json.sig%s%s), and trusted keys are "
                          "configured", where, sig_why ? ": " : "",
                          sig_why ? sig_why : "");
        if (*bad_sig)
            return mh_err(h, err, MH_EFORMAT, "%s: the signature "
                          "(index.json.sig) is not valid for any trusted key",
                          where);
    }
    mh_index idx;
    mh_status rc = mh_idx_parse(h, where, json, len, &idx, err);
    if (rc != MH_OK)
        return rc;
    /* An index older than one this entry has had (its serial lower than
     * the floor, or none) is a rollback -- to older modules, validly
     * signed once: kept out, and the newer index, if still held, kept.
     * The floor outlives the index (drop_cached leaves it), so a refusal
     * of the newer one in between opens no door to the older. */
    const char *fw = NULL;
    rc = read_floor(s, &fw);
    if (rc != MH_OK) {
        mh_idx_free(h, &idx);
        return mh_err(h, err, rc, "%s: not taken: the serial floor "
                      "%s/serial %s%s", where, s->dir, fw,
                      rc == MH_EAGAIN ? "" : " (remove it to start again)");
    }
    if (s->have_idx && s->idx.serial > s->floor)
        s->floor = s->idx.serial;
    if (idx.serial < s->floor) {
        char its[64];
        if (idx.serial)
            snprintf(its, sizeof its, "its serial (%llu) is older than "
                     "that of", (unsigned long long)idx.serial);
        else
            snprintf(its, sizeof its, "it has no serial, unlike");
        rc = mh_err(h, err, MH_EVERSION, "%s: %s an index this entry had "
                    "(serial %llu): refused as a rollback (to take an "
                    "older one on purpose, remove %s)", where, its,
                    (unsigned long long)s->floor, s->dir);
        mh_idx_free(h, &idx);
        return rc;
    }
    raise_floor(s, idx.serial, trusted);
    if (s->have_idx)
        mh_idx_free(h, &s->idx);
    s->idx = idx;
    s->have_idx = true;
    if (!mh_sha256_hex(json, len, 32, s->idx_sha))
        s->idx_sha[0] = '\0';
    s->signed_ok = trusted; /* verified above whenever keys are set */
    return MH_OK;
}

/* May the disk cache be used (lock held)?  Only if this entry's
 * directory and the blob directory are private (made so if absent): a
 * planted index, or a blob it vouches for, would be code run here.  A
 * passing failure (no descriptor) is asked again at the next use. */
static bool disk_ok(htf_state *s)
{
    mh_host *h = s->host;
    if (s->disk)
        return s->disk > 0;
    char real[PATH_MAX];
    mh_error *e = NULL;
    mh_status rc;
    /* Every file of the entry's directory, and the temporary names they
     * are written under, must fit in a path: else it could never be read
     * or written, which read_floor would take for "not now" at every
     * find (and the entry would serve nothing, for ever). */
    if (strlen(s->dir) + sizeof "/.tmp-000000000000" > PATH_MAX)
        rc = mh_err(h, &e, MH_EPATH, "the path of its cache directory is "
                    "too long for the files kept there (%zu bytes, at most "
                    "%zu): %.64s...", strlen(s->dir),
                    PATH_MAX - sizeof "/.tmp-000000000000", s->dir);
    else
        rc = mh_sec_private_dir(h, s->dir, real, sizeof real, &e);
    if (rc == MH_OK)
        rc = mh_blobs_check(h, &e);
    if (rc == MH_EAGAIN || rc == MH_ENOMEM) {
        mh_error_free(e);
        return false;
    }
    s->disk = rc == MH_OK ? 1 : -1;
    if (rc != MH_OK) {
        snprintf(s->disk_why, sizeof s->disk_why, "%s", mh_error_message(e));
        mh_log(h, MH_LOG_WARN, "http: %s: the disk cache is not used (every "
               "index and module comes from the server, and a new process "
               "cannot tell an older index from a newer): %s", s->base,
               s->disk_why);
    }
    mh_error_free(e);
    return s->disk > 0;
}

/* The last good index from the disk cache (lock held).  Quiet on any
 * problem: the cache is only a fallback. */
static void load_cached(htf_state *s)
{
    mh_host *h = s->host;
    char p[4200];
    unsigned char *json = NULL, *sig = NULL, *meta = NULL;
    size_t jl = 0, sl = 0, ml = 0;
    if (!disk_ok(s))
        return;
    snprintf(p, sizeof p, "%s/index.json", s->dir);
    if (mh_atw_read(h, p, h->http.max_index_size, &json, &jl, NULL) != MH_OK)
        return;
    snprintf(p, sizeof p, "%s/index.json.sig", s->dir);
    mh_atw_read(h, p, HTF_MAX_SIG, &sig, &sl, NULL);
    mh_error *e = NULL;
    if (adopt(s, json, jl, sig, sl, p, NULL, NULL, &e) == MH_OK) {
        snprintf(p, sizeof p, "%s/meta.json", s->dir);
        const char *sha = s->idx_sha; /* adopt's hash of json */
        cJSON *m = NULL;
        if (sha[0] &&
            mh_atw_read(h, p, HTF_MAX_META, &meta, &ml, NULL) == MH_OK)
            m = cJSON_ParseWithLength((const char *)meta, ml);
        /* The validators are for the index whose SHA-256 they carry: two
         * processes saving at once may leave one's index beside the
         * other's meta.json, whose ETag would get the wrong index a 304
         * for as long as the server's stays unchanged. */
        const cJSON *is = cJSON_GetObjectItemCaseSensitive(m, "index_sha256");
        if (m && !(cJSON_IsString(is) && strcmp(is->valuestring, sha) == 0)) {
            MH_TRACE(h, "http: %s: the cached validators are another "
                     "index's: not used", s->base);
            cJSON_Delete(m);
            m = NULL;
        }
        if (m) {
            const cJSON *et = cJSON_GetObjectItemCaseSensitive(m, "etag");
            const cJSON *lm = cJSON_GetObjectItemCaseSensitive(m,
                                                        "last_modified");
            const cJSON *fu = cJSON_GetObjectItemCaseSensitive(m,
                                                        "fresh_until");
            const cJSON *fs = cJSON_GetObjectItemCaseSensitive(m,
                                                        "fetched_at");
            const cJSON *ma = cJSON_GetObjectItemCaseSensitive(m,
                                                        "max_age");
            if (cJSON_IsNumber(ma) && ma->valuedouble >= 0 &&
                ma->valuedouble <= MH_GET_MAX_AGE)
                s->max_age = (long)ma->valuedouble;
            /* max-age holds across processes: a fresh cached index needs
             * no request at all -- from when it was fetched on, so that a
             * clock set back since (or a host whose clock was ahead) does
             * not keep it fresh for as long as it was off (ensure_index).
             * One without its time (an older meta.json) is asked again. */
            if (cJSON_IsNumber(fu) && cJSON_IsNumber(fs) &&
                fs->valuedouble > 0 && fs->valuedouble < 4e12 &&
                fu->valuedouble > fs->valuedouble &&
                fu->valuedouble - fs->valuedouble <= MH_GET_MAX_AGE) {
                s->fresh_until = (time_t)fu->valuedouble;
                s->fresh_since = (time_t)fs->valuedouble;
            }
            if (cJSON_IsString(et))
                snprintf(s->etag, sizeof s->etag, "%s", et->valuestring);
            if (cJSON_IsString(lm))
                snprintf(s->last_modified, sizeof s->last_modified, "%s",
                         lm->valuestring);
            cJSON_Delete(m);
        }
        MH_TRACE(h, "http: %s: cached index loaded (%zu modules)", s->base,
                 s->idx.n);
    }
    mh_error_free(e);
    mh_mem_free(h, json, jl ? jl : 1);
    mh_mem_free(h, sig, sl ? sl : 1);
    mh_mem_free(h, meta, ml ? ml : 1);
}

static void save_cached(htf_state *s, const mh_get *g, const mh_blob *sig)
{
    /* Called after fresh_until is set for this answer. */
    mh_host *h = s->host;
    char p[4200];
    mh_error *e = NULL;
    if (!disk_ok(s))
        return;
    /* The signature first: a crash between the two renames then leaves a
     * new signature beside an old index, which fails verification and is
     * ignored -- never an unverified index in use. */
    snprintf(p, sizeof p, "%s/index.json.sig", s->dir);
    mh_status rc = sig ? mh_atw_write(h, p, sig->data, sig->len, &e) : MH_OK;
    if (!sig)
        remove(p);
    snprintf(p, sizeof p, "%s/index.json", s->dir);
    if (rc == MH_OK)
        rc = mh_atw_write(h, p, g->body.data, g->body.len, &e);
    cJSON *m = cJSON_CreateObject();
    char *txt = NULL;
    if (m && s->idx_sha[0] && /* adopt's hash of these bytes */
        cJSON_AddStringToObject(m, "url", s->base) &&
        cJSON_AddStringToObject(m, "index_sha256", s->idx_sha) &&
        cJSON_AddStringToObject(m, "etag", g->etag) &&
        cJSON_AddStringToObject(m, "last_modified", g->last_modified) &&
        cJSON_AddNumberToObject(m, "fresh_until", (double)s->fresh_until) &&
        cJSON_AddNumberToObject(m, "fetched_at", (double)s->fresh_since) &&
        cJSON_AddNumberToObject(m, "max_age", (double)s->max_age))
        txt = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    snprintf(p, sizeof p, "%s/meta.json", s->dir);
    if (rc == MH_OK && txt)
        rc = mh_atw_write(h, p, txt, strlen(txt), &e);
    cJSON_free(txt);
    if (rc != MH_OK)
        mh_log(h, MH_LOG_WARN, "http: cannot cache the index of %s: %s",
               s->base, mh_error_message(e));
    mh_error_free(e);
}

/* The freshness of the index held (lock held), as it is now, into
 * meta.json too, so that other processes (every CLI run) go by it: a
 * 304's, new, so they take the cached index without asking while it
 * lasts; none, after a module disagreed with the index, so they ask
 * again.  Only if meta.json is still that of the index held (by its
 * SHA-256): another process may have cached a newer one since. */
static void persist_freshness(htf_state *s)
{
    mh_host *h = s->host;
    char p[4200];
    unsigned char *meta = NULL;
    size_t ml = 0;
    if (!disk_ok(s) || !s->have_idx || !s->idx_sha[0])
        return;
    int lock = floor_lock(s);
    snprintf(p, sizeof p, "%s/meta.json", s->dir);
    cJSON *m = mh_atw_read(h, p, HTF_MAX_META, &meta, &ml, NULL) == MH_OK
                   ? cJSON_ParseWithLength((const char *)meta, ml) : NULL;
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(m, "index_sha256");
    char *txt = NULL;
    if (cJSON_IsString(sha) && strcmp(sha->valuestring, s->idx_sha) == 0 &&
        cJSON_ReplaceItemInObject(m, "fresh_until",
                                  cJSON_CreateNumber((double)s->fresh_until))
        && cJSON_ReplaceItemInObject(m, "fetched_at",
                                     cJSON_CreateNumber(
                                         (double)s->fresh_since))) {
        cJSON_DeleteItemFromObjectCaseSensitive(m, "max_age");
        if (cJSON_AddNumberToObject(m, "max_age", (double)s->max_age))
            txt = cJSON_PrintUnformatted(m);
    }
    mh_error *e = NULL;
    if (txt && mh_atw_write(h, p, txt, strlen(txt), &e) != MH_OK)
        MH_TRACE(h, "http: cannot refresh %s: %s", p, mh_error_message(e));
    mh_error_free(e);
    cJSON_free(txt);
    cJSON_Delete(m);
    if (meta)
        mh_mem_free(h, meta, ml ? ml : 1);
    if (lock >= 0)
        close(lock);
}

/* The server refused this index for good (4xx, bad signature, malformed):
 * the last good copy must not come back in a later outage.  Lock held. */
static void drop_cached(htf_state *s)
{
    static const char *const files[] = {"index.json", "index.json.sig",
                                        "meta.json"};
    char p[4200];
    if (s->have_idx) {
        mh_idx_free(s->host, &s->idx);
        s->have_idx = false;
    }
    /* Nothing was cached where others can write, and nothing is removed
     * there: a planted link could point the removal elsewhere. */
    for (size_t i = 0; disk_ok(s) && i < MH_ARRAY_LEN(files); i++) {
        snprintf(p, sizeof p, "%s/%s", s->dir, files[i]);
        remove(p);
    }
    s->fresh_until = 0;
    s->etag[0] = s->last_modified[0] = '\0';
}

/* A handle for one transfer (lock held): the entry's own, kept alive
 * with its connections, unless a download without the lock has it; then
 * one of its own.  NULL when out of memory.  In a child of fork() the
 * entry's handle is another: the inherited one's connections are sockets
 * the parent reads too (two processes on one keep-alive connection read
 * each other's answers), so it is let go of -- not cleaned up, which
 * would close them under the parent (a TLS close_notify) -- and no
 * download is under way with it here (only the forking thread goes on). */
static CURL *take_curl(htf_state *s)
{
    if (s->curl_forks != mh_fork_count()) {
        CURL *fresh = curl_easy_init();
        if (!fresh)
            return NULL;
        s->curl = fresh;
        s->curl_forks = mh_fork_count();
        s->curl_busy = false;
    }
    if (!s->curl_busy) {
        s->curl_busy = true;
        return s->curl;
    }
    return curl_easy_init();
}

static void give_curl(htf_state *s, CURL *c)
{
    if (c == s->curl)
        s->curl_busy = false;
    else
        curl_easy_cleanup(c);
}

/* Said of a module whose file on the server disagrees with the index in
 * hand (get_module). */
#define STALE_HINT                                                        \
    "(the index this host holds may be older than the site: it is asked " \
    "for again at the next import; if that says the same, index.json is "  \
    "out of date: run `modhost index` there again)"

/* How long a server that failed after took_ms is left alone: a few
 * seconds; after a slow failure (a timeout, which every find asking would
 * wait out again, holding the entry) four times what it took, up to
 * HTF_SLOW_RETRY_MAX_S, so that finds spend at most a fifth of the time
 * waiting on a server that hangs. */
static int retry_after_s(long long took_ms)
{
    long long s = took_ms >= HTF_SLOW_MS ? 4 * took_ms / 1000 : 0;
    return s < HTF_STALE_RETRY_S ? HTF_STALE_RETRY_S
         : s > HTF_SLOW_RETRY_MAX_S ? HTF_SLOW_RETRY_MAX_S : (int)s;
}

/* No index to serve, and the server not to be asked again for retry
 * seconds from now: finds fail at once with cause. */
static void set_down(htf_state *s, const char *cause, time_t now, int retry)
{
    snprintf(s->down_cause, sizeof s->down_cause, "%s", cause);
    s->down_until = now + retry;
    s->down_retry_s = retry;
}

/* The server is down: the last good index if there is one (lock held).
 * Without one, a failure that took since_ms until now to come (a
 * timeout) is not asked again for a while (retry_after_s): each find
 * would wait it out again.  A quick one (refused, reset) is asked again
 * at once.  The time is taken now, after the failure, not before the
 * request: else a failure slower than the wait is asked again at once. */
static mh_status offline(htf_state *s, long long since_ms, const char *cause,
                         mh_buf *why)
{
    time_t now = time(NULL);
    long long took = mh_mono_ms() - since_ms;
    int retry = retry_after_s(took);
    if (s->have_idx) {
        char msg[5200];
        snprintf(msg, sizeof msg, "%s unavailable (%s); using the cached "
                 "index", s->base, cause);
        warn_once(s, msg);
        s->fresh_until = now + retry;
        s->fresh_since = now;
        return MH_OK;
    }
    warn_failure(s, cause);
    mh_buf_puts(why, cause);
    if (took >= HTF_SLOW_MS) {
        set_down(s, cause, now, retry);
    }
    return MH_ENOTFOUND;
}

static mh_status fetch_index_once(htf_state *s, CURL *c, mh_buf *why,
                                  bool last, bool *again);

/* Ask the server for the index through handle c (lock held), as
 * ensure_index says. */
static mh_status fetch_index(htf_state *s, CURL *c, mh_buf *why)
{
    bool again = false;
    mh_status rc = fetch_index_once(s, c, why, false, &again);
    return again ? fetch_index_once(s, c, why, true, &again) : rc;
}

/* Make the index usable (lock held): MH_OK, or MH_ENOTFOUND with the
 * reason in why (the entry serves nothing now), or MH_ENOMEM. */
static mh_status ensure_index(htf_state *s, mh_buf *why)
{
    time_t now = time(NULL);
    if (!s->have_idx)
        load_cached(s); /* may be fresh enough to need no request */
    if (now < s->fresh_since) /* the clock was set back: ask again */
        s->fresh_until = s->host_fresh_until = s->fresh_since = 0;
    if (s->have_idx && (now < s->fresh_until || now < s->host_fresh_until))
        return MH_OK;
    if (!s->have_idx && now < s->down_until) {
        mh_buf_printf(why, "%s (a moment ago; asked again after %d s)",
                      s->down_cause, s->down_retry_s);
        return MH_ENOTFOUND;
    }

    CURL *c = take_curl(s);
    if (!c)
        return MH_ENOMEM;
    mh_status rc = fetch_index(s, c, why);
    give_curl(s, c);
    return rc;
}

/* fetch_index, once: with `last` false, an index refused for its
 * signature sets *again and returns, deleting nothing. */
static mh_status fetch_index_once(htf_state *s, CURL *c, mh_buf *why,
                                  bool last, bool *again)
{
    mh_host *h = s->host;
    char url[4200];
    snprintf(url, sizeof url, "%sindex.json", s->base);
    mh_get g;
    mh_error *e = NULL;
    long long t0 = mh_mono_ms();
    mh_status rc = mh_get_url(h, c, url, s->userpwd,
                              h->http.max_index_size,
                              s->have_idx ? s->etag : NULL,
                              s->have_idx ? s->last_modified : NULL,
                              NULL, NULL, &g, &e);
    time_t now = time(NULL); /* freshness counts from the answer */
    if (rc == MH_ENOMEM) {
        mh_get_free(h, &g);
        mh_error_free(e);
        return MH_ENOMEM;
    }
    if (rc == MH_OK && g.status == 304 && s->have_idx) {
        if (g.max_age >= 0)
            s->max_age = g.max_age;
        s->fresh_until = now + (s->max_age > 0 ? s->max_age : 0);
        s->fresh_since = now;
        s->host_fresh_until =
            s->max_age < 0 ? now + h->http.index_fresh_s : 0;
        MH_TRACE(h, "http: %s not modified", url);
        mh_get_free(h, &g);
        persist_freshness(s);
        return MH_OK;
    }
    if (rc == MH_OK && g.status == 200) {
        /* The signature is fetched when it is checked: with trusted keys
         * (adopt).  Without, nothing reads it -- a plain http:// index
         * off loopback is then refused or taken (MH_CONFIG_ALLOW_HTTP)
         * whatever it is -- and a request for it could only fail the
         * entry (a 429 or a timeout on a file no one needs). */
        mh_get gs = {0};
        mh_blob *sig = NULL;
        char sig_url[sizeof url + 8], sig_why[2 * sizeof url + 600] = "";
        snprintf(sig_url, sizeof sig_url, "%s.sig", url);
        if (h->trust.n > 0) {
            mh_error *se = NULL;
            mh_status src = mh_get_url(h, c, sig_url, s->userpwd,
                                       HTF_MAX_SIG, NULL, NULL, NULL, NULL,
                                       &gs, &se);
            if (src == MH_OK && gs.status == 200) {
                sig = &gs.body;
            } else if (gs.unavailable) {
                /* Down half-way: the offline path, not "unsigned". */
                char cause[2 * sizeof sig_url + 600];
                if (src == MH_OK)
                    mh_get_status_text(&gs, sig_url, cause, sizeof cause);
                else
                    snprintf(cause, sizeof cause, "%s",
                             mh_error_message(se));
                mh_error_free(se);
                mh_get_free(h, &gs);
                mh_get_free(h, &g);
                return offline(s, t0, cause, why);
            }
            if (src != MH_OK) /* too big, refused redirect, TLS... */
                snprintf(sig_why, sizeof sig_why, "%s",
                         mh_error_message(se));
            else if (gs.status != 200)
                mh_get_status_text(&gs, sig_url, sig_why, sizeof sig_why);
            mh_error_free(se);
        }
        mh_error *ae = NULL;
        int lock = floor_lock(s);
        bool bad_sig = false;
        rc = adopt(s, g.body.data, g.body.len, sig ? sig->data : NULL,
                   sig ? sig->len : 0, url, sig_why[0] ? sig_why : NULL,
                   &bad_sig, &ae);
        if (rc == MH_OK) {
            snprintf(s->etag, sizeof s->etag, "%s", g.etag);
            snprintf(s->last_modified, sizeof s->last_modified, "%s",
                     g.last_modified);
            s->max_age = g.max_age;
            s->fresh_until = now + (g.max_age > 0 ? g.max_age : 0);
            s->fresh_since = now;
            s->host_fresh_until =
                g.max_age < 0 ? now + h->http.index_fresh_s : 0;
            s->warned[0] = '\0';
            save_cached(s, &g, sig);
            MH_TRACE(h, "http: %s: %zu modules", url, s->idx.n);
        } else if (rc == MH_EVERSION) {
            /* A rollback: the newer index, if held, serves on, and the
             * server is asked again in a while, not at every find. */
            s->host_fresh_until = now + h->http.index_fresh_s;
            if (s->have_idx) {
                warn_once(s, mh_error_message(ae));
                rc = MH_OK;
            } else { /* nothing to serve: said, not asked at every find */
                warn_failure(s, mh_error_message(ae));
                mh_buf_puts(why, mh_error_message(ae));
                set_down(s, mh_error_message(ae), now, HTF_STALE_RETRY_S);
                rc = MH_ENOTFOUND;
            }
        } else if (rc == MH_EAGAIN) {
            /* The floor could not be read just now: the index is not
             * taken this time; the one held, if any, serves meanwhile. */
            mh_buf_puts(why, mh_error_message(ae));
            rc = s->have_idx ? MH_OK : MH_ENOTFOUND;
        } else if (bad_sig && !last) {
            /* The index and its signature are two requests, and a
             * publish renames one file, then the other (a CDN may hold
             * the two for different times): both are asked for again
             * once before the refusal, which deletes the cached index
             * and every module it vouches for. */
            MH_TRACE(h, "http: %s: %s; asking for the index and its "
                     "signature again", url, mh_error_message(ae));
            *again = true;
        } else {
            /* A bad index is refused, not worked around: no stale copy. */
            drop_cached(s);
            warn_failure(s, mh_error_message(ae));
            mh_buf_puts(why, mh_error_message(ae));
            rc = rc == MH_ENOMEM ? MH_ENOMEM : MH_ENOTFOUND;
        }
        if (lock >= 0)
            close(lock); /* and with it the lock */
        mh_error_free(ae);
        mh_get_free(h, &gs);
        mh_get_free(h, &g);
        return rc;
    }

    /* No usable answer: down (stale-if-error) or a definite refusal. */
    char cause[2 * sizeof url + 600];
    if (rc != MH_OK)
        snprintf(cause, sizeof cause, "%s", mh_error_message(e));
    else
        mh_get_status_text(&g, url, cause, sizeof cause);
    bool down = g.unavailable;
    mh_get_free(h, &g);
    mh_error_free(e);
    if (down)
        return offline(s, t0, cause, why);
    drop_cached(s); /* a definite answer (4xx, TLS failure): nothing */
    warn_failure(s, cause);
    mh_buf_puts(why, cause);
    return MH_ENOTFOUND;
}

/* A module's identity: its content hash from the index, and a hash of
 * the manifest the index carries for it. */
#define IDENTITY_SIZE 96
static const char *identity(const mh_idx_entry *e, char out[IDENTITY_SIZE])
{
    memcpy(out, "sha256:", 7);
    mh_hex(e->sha256, 32, out + 7);
    uint64_t fnv = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const char *p = e->manifest ? e->manifest : ""; *p; p++)
        fnv = (fnv ^ (unsigned char)*p) * 0x100000001b3ull;
    snprintf(out + 71, IDENTITY_SIZE - 71, "|m:%016llx",
             (unsigned long long)fnv);
    return out;
}

/* The read() key of a module's manifest in the index: "manifest:NAME". */
#define MANIFEST_KEY "manifest:"
static const char *manifest_key(mh_host *h, const mh_idx_entry *e)
{
    char key[sizeof MANIFEST_KEY + MH_NAME_MAX];
    snprintf(key, sizeof key, "%s%s", MANIFEST_KEY, e->name);
    return mh_int_cstr(h, key);
}

/* Where the blob cache keeps e's bytes: named by their SHA-256. */
static void blob_path(const mh_host *h, const mh_idx_entry *e,
                      char hexsha[65], char *blob, size_t size)
{
    mh_hex(e->sha256, 32, hexsha);
    if (!mh_blobs_path(h, hexsha, NULL, 0, blob, size))
        snprintf(blob, size, "%s", MH_NO_DIR); /* cannot be: disk_ok */
}

static mh_status htf_find(mh_finder_ctx *cx, void *state, const char *name,
                          mh_finder_spec *spec)
{
    htf_state *s = state;
    mh_host *h = s->host;
    mh_buf *why = MH_FCX(cx)->why;
    mh_error **err = MH_FCX(cx)->err;
    char url[4400], ident[IDENTITY_SIZE];
    pthread_mutex_lock(&s->lock);
    mh_status rc = ensure_index(s, why);
    if (rc == MH_ENOMEM)
        rc = mh_err(h, err, MH_ENOMEM, "out of memory finding '%s'", name);
    if (rc != MH_OK)
        goto out;
    const mh_idx_entry *e = mh_idx_get(&s->idx, name);
    if (e) {
        snprintf(url, sizeof url, "%s%s", s->base, e->path);
        spec->kind = e->kind;
        spec->flags = (e->binary ? MH_SPEC_BYTECODE : 0) |
                      (s->signed_ok ? MH_SPEC_TRUSTED : 0) |
                      (s->idx.manifests ? MH_SPEC_META_WHOLE : 0);
        /* Interned: the host reads them after this frame is gone. */
        spec->origin = mh_int_cstr(h, url);
        spec->key = e->name;
        spec->identity = mh_int_cstr(h, identity(e, ident));
        bool has = e->manifest || s->idx.manifests;
        spec->meta_key = has ? manifest_key(h, e) : NULL;
        if (e->kind == MH_KIND_NATIVE) {
            /* Once downloaded, native code is mapped from the blob cache
             * by the host, which checks the SHA-256 itself (get_module's
             * read is the way when the blob is missing or damaged). */
            char hexsha[65], blob[4200];
            blob_path(h, e, hexsha, blob, sizeof blob);
            if (disk_ok(s) && (!(spec->copy = mh_int_cstr(h, blob)) ||
                !(spec->copy_sha256 = mh_int_cstr(h, hexsha))))
                spec->origin = NULL; /* out of memory, below */
        }
        if (!spec->origin || !spec->identity || (has && !spec->meta_key))
            rc = mh_err(h, err, MH_ENOMEM, "out of memory finding '%s'",
                        name);
    } else if (mh_idx_has_children(&s->idx, name)) {
        char rel[MH_NAME_MAX + 8];
        mh_name_relpath(name, "/", rel, sizeof rel);
        snprintf(url, sizeof url, "%s%s", s->base, rel);
        spec->kind = MH_KIND_NAMESPACE;
        spec->origin = mh_int_cstr(h, url);
        if (!spec->origin)
            rc = mh_err(h, err, MH_ENOMEM, "out of memory finding '%s'",
                        name);
    } else {
        mh_buf_printf(why, "not in %sindex.json", s->base);
        rc = MH_ENOTFOUND;
    }
out:
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Are the len bytes at d the size and SHA-256 sha that were asked for? */
static bool bytes_match(uint64_t size, const unsigned char sha256[32],
                        const unsigned char *d, size_t len)
{
    unsigned char sha[32];
    return len == size &&
           mh_sha256(d, len, sha) &&
           memcmp(sha, sha256, sizeof sha) == 0;
}

typedef struct fetch_cb {
    mh_fetch_progress_fn fn;
    void *ud;
    const char *module;
    size_t index, count;
    uint64_t expected;        /* the index's size, until the server says */
    bool cancelled;           /* fn said so: the whole job stops */
} fetch_cb;

static int on_progress(void *ud, uint64_t now, uint64_t total)
{
    fetch_cb *f = ud;
    if (f->fn(f->ud, f->module, f->index, f->count, now,
              total ? total : f->expected) == 0)
        return 0;
    f->cancelled = true;
    return 1;
}

/* The blob cache's copy at blob, if it has the size and SHA-256 asked
 * for: into out, true.  A damaged copy is said and left to be replaced. */
static bool from_cache(htf_state *s, const char *url, const char *blob,
                       uint64_t size, const unsigned char sha256[32],
                       mh_blob *out)
{
    mh_host *h = s->host;
    unsigned char *d = NULL;
    size_t len = 0;
    if (mh_atw_read(h, blob, (size_t)size, &d, &len, NULL) != MH_OK)
        return false;
    if (bytes_match(size, sha256, d, len)) {
        MH_TRACE(h, "http: %s: from the cache", url);
        out->data = d;
        out->len = len;
        out->size = len ? len : 1;
        return true;
    }
    mh_log(h, MH_LOG_WARN, "http: cached copy of %s is damaged; "
           "downloading it again", url);
    mh_mem_free(h, d, len ? len : 1);
    return false;
}

/* The verified bytes of entry e: from the blob cache, or downloaded (and
 * then cached: for a fetch, which is for keeping, bytes that cannot be
 * kept are an error; for an import, a warning).  Lock held on entry and
 * on return, but not during a download: a slow server must not hold up
 * the finds, lists and invalidations of other threads (imports of
 * modules in later entries among them) for a whole transfer.  So e, and
 * anything else of the index, may be gone when this returns. */
static mh_status get_module(htf_state *s, const mh_idx_entry *e,
                            fetch_cb *cb, bool fetch, mh_blob *out,
                            bool *downloaded, mh_error **err)
{
    mh_host *h = s->host;
    char hexsha[65], blob[4200], url[4400];
    blob_path(h, e, hexsha, blob, sizeof blob);
    snprintf(url, sizeof url, "%s%s", s->base, e->path);
    *downloaded = false;
    /* What the download is held to, out of the index, which another
     * thread may replace meanwhile (names are interned). */
    const char *name = e->name;
    const uint64_t size = e->size;
    unsigned char sha256[32];
    memcpy(sha256, e->sha256, sizeof sha256);

    if (size > h->max_module_size)
        return mh_err(h, err, MH_EFORMAT, "module '%s': %s is %llu bytes, "
                      "over the host's max_module_size (%zu)", name, url,
                      (unsigned long long)size, h->max_module_size);
    bool disk = disk_ok(s);
    /* The same bytes on their way from this entry (another module of the
     * same content): wait, then look in the cache again -- unless this
     * thread is the one downloading them (a fetch's progress callback
     * importing), or that thread stayed behind in the parent of fork(). */
    for (bool again = disk; again;) {
        again = false;
        if (from_cache(s, url, blob, size, sha256, out))
            return MH_OK;
        for (htf_dl *p = s->downloads; p && !again; p = p->next)
            again = memcmp(p->sha256, sha256, sizeof sha256) == 0 &&
                    !pthread_equal(p->thread, pthread_self()) &&
                    p->forks == mh_fork_count();
        if (again)
            pthread_cond_wait(&s->dl_done, &s->lock);
    }

    CURL *c = take_curl(s);
    if (!c)
        return mh_err(h, err, MH_ENOMEM, "out of memory downloading %s",
                      url);
    e = NULL; /* from here on, the index may change */
    htf_dl mine = {.thread = pthread_self(), .forks = mh_fork_count(),
                   .next = s->downloads};
    memcpy(mine.sha256, sha256, sizeof sha256);
    s->downloads = &mine;
    pthread_mutex_unlock(&s->lock);
    mh_get g;
    mh_error *ge = NULL;
    mh_status rc = mh_get_url(h, c, url, s->userpwd, (size_t)size, NULL,
                              NULL, cb ? on_progress : NULL, cb, &g, &ge);
    /* The server's file is not the one the index in hand gives (another
     * size or hash, or gone): a site published anew since this host took
     * its index, most likely -- which it would go on holding for its
     * freshness, failing the module at every try.  The index is asked for
     * again at the next use. */
    bool disagree = false;
    if (rc == MH_OK && g.status != 200) {
        char st[2 * sizeof url + 600];
        mh_get_status_text(&g, url, st, sizeof st);
        disagree = g.status == 404 || g.status == 410;
        rc = mh_err(h, err, MH_EIO, "module '%s': %s%s", name, st,
                    g.unavailable ? " (server unavailable, and the module "
                                    "was never cached)"
                    : disagree ? " " STALE_HINT : "");
    } else if (rc == MH_EFORMAT) {
        /* Larger than the index's size, which is the limit: the file
         * changed on the server since the index was made. */
        disagree = true;
        rc = mh_err(h, err, MH_EFORMAT, "module '%s': %s, the size the "
                    "index gives it: the file on the server is not the one "
                    "indexed " STALE_HINT "; not loaded, not cached", name,
                    mh_error_message(ge));
    } else if (rc != MH_OK) {
        rc = mh_err(h, err, rc == MH_ENOMEM ? MH_ENOMEM : MH_EIO,
                    "module '%s': %s%s", name, mh_error_message(ge),
                    g.unavailable ? " (and the module was never cached)" : "");
    } else if (!bytes_match(size, sha256, g.body.data, g.body.len)) {
        disagree = true;
        rc = g.body.len != size
                 ? mh_err(h, err, MH_EFORMAT, "module '%s': %s is %zu bytes, "
                          "not the %llu the index gives " STALE_HINT "; not "
                          "loaded, not cached", name, url, g.body.len,
                          (unsigned long long)size)
                 : mh_err(h, err, MH_EFORMAT, "module '%s': the SHA-256 of "
                          "%s is not the one the index gives (its size, "
                          "%zu bytes, is) " STALE_HINT "; not loaded, not "
                          "cached", name, url, g.body.len);
    } else {
        mh_error *we = NULL;
        if (disk && mh_atw_write(h, blob, g.body.data, g.body.len, &we) !=
                        MH_OK) {
            if (fetch)
                rc = mh_err(h, err, MH_EIO, "module '%s': downloaded %s, "
                            "but cannot keep it: %s", name, url,
                            mh_error_message(we));
            else
                mh_log(h, MH_LOG_WARN, "http: cannot cache %s: %s", url,
                       mh_error_message(we));
        }
        mh_error_free(we);
        if (rc == MH_OK) {
            *out = g.body;
            g.body.data = NULL;
            g.body.len = g.body.size = 0;
            *downloaded = true;
            MH_TRACE(h, "http: %s: downloaded, %zu bytes verified", url,
                     out->len);
        }
    }
    mh_error_free(ge);
    mh_get_free(h, &g);
    pthread_mutex_lock(&s->lock);
    if (disagree) { /* in this process, and in the next */
        s->fresh_until = s->host_fresh_until = 0;
        persist_freshness(s);
        MH_TRACE(h, "http: %s disagrees with %sindex.json: the index is "
                 "asked for again at the next use", url, s->base);
    }
    give_curl(s, c);
    for (htf_dl **p = &s->downloads; *p; p = &(*p)->next)
        if (*p == &mine) {
            *p = mine.next;
            break;
        }
    pthread_cond_broadcast(&s->dl_done);
    return rc;
}

static mh_status htf_read(mh_finder_ctx *cx, void *state, const char *key,
                          mh_blob *out)
{
    htf_state *s = state;
    mh_error **err = MH_FCX(cx)->err;
    out->data = NULL;
    out->len = out->size = 0;
    pthread_mutex_lock(&s->lock);
    bool manifest = strncmp(key, MANIFEST_KEY, sizeof MANIFEST_KEY - 1) == 0;
    if (manifest)
        key += sizeof MANIFEST_KEY - 1;
    const char *ikey = mh_int_cstr(s->host, key);
    const mh_idx_entry *e = s->have_idx && ikey ? mh_idx_get(&s->idx, ikey)
                                                : NULL;
    bool dl;
    mh_status rc;
    if (e && manifest && e->manifest) { /* from the index itself */
        size_t n = strlen(e->manifest);
        out->data = mh_mem_alloc(s->host, n ? n : 1);
        rc = out->data ? MH_OK : mh_err(s->host, err, MH_ENOMEM, "out of "
                                        "memory");
        if (out->data) {
            memcpy(out->data, e->manifest, n);
            out->len = n;
            out->size = n ? n : 1;
        }
    } else if (e && !manifest) {
        rc = get_module(s, e, NULL, false, out, &dl, err);
    } else if (e) { /* the index says it has none */
        rc = mh_err(s->host, err, MH_ENOTFOUND, "module '%s' has no "
                    "manifest in %sindex.json", key, s->base);
    } else {
        rc = mh_err(s->host, err, MH_ENOTFOUND, "module '%s'%s left "
                    "%sindex.json between find and load", key,
                    manifest ? " (its manifest)" : "", s->base);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static mh_status htf_list(mh_finder_ctx *cx, void *state,
                          mh_finder_list_fn fn, void *ud)
{
    htf_state *s = state;
    mh_host *h = s->host;
    mh_error **err = MH_FCX(cx)->err;
    mh_buf why;
    char url[4400], ident[IDENTITY_SIZE];
    mh_buf_init(&why, h, 0);
    pthread_mutex_lock(&s->lock);
    /* An index that cannot be had is the listing's error, which its
     * caller reports (mh_list warns, naming the entry): not a warning of
     * the finder's too. */
    s->quiet = true;
    mh_status rc = ensure_index(s, &why);
    s->quiet = false;
    if (rc != MH_OK)
        rc = mh_err(h, err, rc, "%s", mh_buf_str(&why));
    for (size_t i = 0; rc == MH_OK && i < s->idx.n; i++) {
        const mh_idx_entry *e = &s->idx.v[i];
        snprintf(url, sizeof url, "%s%s", s->base, e->path);
        mh_finder_spec f = {
            .kind = e->kind, .key = e->name, .origin = url,
            .flags = (e->binary ? MH_SPEC_BYTECODE : 0) |
                     (s->signed_ok ? MH_SPEC_TRUSTED : 0) |
                     (s->idx.manifests ? MH_SPEC_META_WHOLE : 0),
            .identity = identity(e, ident),
            .meta_key = e->manifest || s->idx.manifests ? manifest_key(h, e)
                                                        : NULL};
        if (fn(ud, e->name, &f) != 0)
            break;
    }
    pthread_mutex_unlock(&s->lock);
    mh_buf_free(&why);
    return rc;
}

const mh_finder_class mh_htf_class = {
    MH_FINDER_CLASS_INIT,
    .name = "http",
    .description = "HTTP(S) locations with an index.json: http://, "
                   "https://",
    .claims = htf_claims,
    .open = htf_open,
    .find = htf_find,
    .list = htf_list,
    .read = htf_read,
    .invalidate = htf_invalidate,
    .close = htf_close,
};

/* ---- mh_fetch ----------------------------------------------------------- */

/* Fetch the named modules (all when n == 0) of one HTTP entry. */
static mh_status fetch_entry(htf_state *s, const char *const *names, size_t n,
                             bool *done, fetch_cb *cb, size_t *fetched,
                             mh_error **err)
{
    mh_buf why;
    mh_buf_init(&why, s->host, 0);
    pthread_mutex_lock(&s->lock);
    /* The index's trouble is the error, not a warning too -- where there
     * is an error to give (after an earlier entry's, it is a warning). */
    s->quiet = err != NULL;
    mh_status rc = ensure_index(s, &why);
    s->quiet = false;
    if (rc != MH_OK) { /* the index is unusable: that is the error */
        rc = mh_err(s->host, err, rc == MH_ENOMEM ? MH_ENOMEM : MH_EIO,
                    "%s", mh_buf_str(&why));
        goto out;
    }
    if (!disk_ok(s)) { /* fetching is caching: nothing would stay */
        rc = mh_err(s->host, err, MH_EPATH, "fetch: %s: nothing can be "
                    "cached: %s", s->base,
                    s->disk < 0 ? s->disk_why : "the cache directory "
                    "cannot be checked now");
        goto out;
    }
    /* Every module: the names of the index as it is now (interned), each
     * looked up again before its turn -- the index may be replaced while
     * a module downloads (get_module lets the lock go), and a position in
     * it would then name another module, or none. */
    const char **all = NULL;
    size_t count = n ? n : s->idx.n;
    if (!n && count) {
        all = mh_mem_alloc(s->host, count * sizeof *all);
        if (!all) {
            rc = mh_err(s->host, err, MH_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i < count; i++)
            all[i] = s->idx.v[i].name;
    }
    mh_status first = MH_OK; /* one bad module must not stop the others */
    for (size_t i = 0; i < count && rc != MH_ENOMEM; i++) {
        const mh_idx_entry *e;
        if (n) {
            if (done[i] || !(e = mh_idx_get(&s->idx, names[i])))
                continue;
            done[i] = true;
        } else if (!s->have_idx || !(e = mh_idx_get(&s->idx, all[i]))) {
            continue; /* gone from the index meanwhile: nothing to keep */
        }
        mh_blob b = {0};
        bool dl;
        cb->module = e->name;
        cb->index = i;
        cb->count = count;
        cb->expected = e->size;
        mh_error *me = NULL;
        rc = get_module(s, e, cb->fn ? cb : NULL, true, &b, &dl, &me);
        if (cb->cancelled) { /* said by mh_fetch, not as this failure */
            mh_error_free(me);
            mh_blob_free(s->host, &b);
            break;
        }
        if (rc == MH_OK) {
            (*fetched)++;
            mh_blob_free(s->host, &b);
        } else {
            /* The first failure is the error (not a warning too); the
             * others, and all of an entry after one that failed, warn. */
            if (first == MH_OK && err) {
                mh_err_give(me, err);
                me = NULL;
            } else {
                mh_log(s->host, MH_LOG_WARN, "fetch: %s",
                       mh_error_message(me));
            }
            if (first == MH_OK)
                first = rc;
        }
        mh_error_free(me);
    }
    if (rc != MH_ENOMEM)
        rc = first;
    if (all)
        mh_mem_free(s->host, all, count * sizeof *all);
out:
    pthread_mutex_unlock(&s->lock);
    mh_buf_free(&why);
    return rc;
}

mh_status mh_fetch(mh_host *host, const char *const *names, size_t n,
                   mh_fetch_progress_fn progress, void *ud, size_t *fetched,
                   mh_error **err)
{
    MH_BUSY(host);
    size_t got = 0;
    if (fetched)
        *fetched = 0;
    if (!host || (n && !names))
        return mh_err(host, err, MH_EINVAL, "mh_fetch: %s is NULL",
                      mh_null_name(2, host, "host", names, "names"));
    mh_status grc = mh_entry_check(host, "mh_fetch", 0, err);
    if (grc != MH_OK)
        return grc;
    for (size_t i = 0; i < n; i++) {
        if (!names[i])
            return mh_err(host, err, MH_EINVAL, "mh_fetch: names[%zu] is "
                          "NULL", i);
        mh_status rc = mh_name_check(names[i], err);
        if (rc != MH_OK)
            return rc;
    }
    bool *done = n ? mh_mem_calloc(host, n, sizeof *done) : NULL;
    if (n && !done)
        return mh_err(host, err, MH_ENOMEM, "out of memory");
    fetch_cb cb = {progress, ud, NULL, 0, 0, 0, false};
    size_t entries = 0;
    /* Fetching is caching: where nothing can be cached, nothing would
     * stay, whatever the search path holds. */
    mh_error *ce = NULL;
    mh_status rc = mh_blobs_check(host, &ce);
    if (rc != MH_OK) {
        rc = mh_err(host, err, rc == MH_ENOMEM ? MH_ENOMEM : MH_EPATH,
                    "fetch: nothing can be cached: %s",
                    mh_error_message(ce));
        mh_error_free(ce);
        mh_mem_free(host, done, n * sizeof *done);
        return rc;
    }
    mh_path_snap path;
    mh_path_snap_take(host, &path, NULL, NULL);
    for (size_t i = 0; i < path.n && rc != MH_ENOMEM; i++) {
        const mh_hook *k;
        void *state;
        mh_pentry *pe = path.v[i];
        mh_buf why;
        mh_buf_init(&why, host, 0);
        mh_status frc = mh_path_finder(host, pe, &k, &state, &why);
        const char *claimant = NULL;
        if (frc != MH_OK) {
            mh_olock_r how = mh_path_entry_lock(pe); /* written under it */
            if (how != MH_OLOCK_BUSY)
                claimant = pe->claimant;
            mh_path_entry_unlock(pe, how);
        }
        if (claimant && strcmp(claimant, mh_htf_class.name) == 0) {
            /* An HTTP entry that cannot be used is a failure to fetch;
             * out of memory, or a finder on its way, is said as such. */
            entries++;
            mh_status code = frc == MH_ENOMEM || frc == MH_EAGAIN ? frc
                                                                  : MH_EPATH;
            const char *w = mh_buf_str(&why); /* names the entry */
            if (!*w)
                w = pe->shown;
            if (rc == MH_OK)
                rc = mh_err(host, err, code, "fetch: %s%s%s", w,
                            w == pe->shown ? ": " : "",
                            w == pe->shown ? mh_strerror(code) : "");
            else
                mh_log(host, MH_LOG_WARN, "fetch: %s", w);
        }
        mh_buf_free(&why);
        if (frc != MH_OK || k->cls != &mh_htf_class)
            continue;
        entries++;
        /* Every entry is tried; the first failure is the one reported. */
        mh_status erc = fetch_entry(state, names, n, done, &cb, &got,
                                    rc == MH_OK ? err : NULL);
        if (cb.cancelled) { /* the error, whatever failed before it */
            if ((rc != MH_OK || erc != MH_OK) && err) { /* given there */
                mh_error_free(*err);
                *err = NULL;
            }
            rc = mh_err(host, err, MH_ECANCELED, "fetch: cancelled by the "
                        "progress callback, at module '%s' (%zu module%s "
                        "in the cache)", cb.module, got,
                        got == 1 ? "" : "s");
            break;
        }
        if (rc == MH_OK)
            rc = erc;
    }
    mh_path_snap_free(host, &path);
    for (size_t i = 0; rc == MH_OK && i < n; i++)
        if (!done[i])
            rc = mh_err(host, err, MH_ENOTFOUND, "module '%s' is in no HTTP "
                        "search path entry's index (%zu HTTP entr%s)",
                        names[i], entries, entries == 1 ? "y" : "ies");
    mh_mem_free(host, done, n * sizeof *done);
    if (fetched)
        *fetched = got;
    return rc;
}
