/*
 * finders/httpget.h -- one bounded HTTP(S) GET (mh_get_*); the rules it
 * enforces are in finders/httpget.c.
 */
#ifndef MH_FINDERS_HTTPGET_H
#define MH_FINDERS_HTTPGET_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

#include "finders/finder.h"

struct mh_host;

typedef struct mh_get {
    long status;              /* final HTTP status (after redirects) */
    char *final_url;          /* host memory: the URL that answered
                                 status, when redirects led there (else
                                 NULL: the URL asked for) */
    mh_blob body;             /* host memory */
    char etag[256];
    char last_modified[128];
    long max_age;             /* Cache-Control max-age less the Age a
                                 cache in between reported, at least 0;
                                 0 for no-cache or no-store (on any of
                                 the response's Cache-Control lines); -1
                                 if none */
    long age;                 /* Age header; 0 if none */
    bool no_cache;            /* no-cache or no-store seen */
    bool unavailable;         /* unreachable, timed out, a TLS handshake
                                 broken off, an HTTP/2 stream refused,
                                 5xx, or 408, 425 or 429: the server is
                                 down or busy, so cached copies may stand
                                 in (never after a certificate that fails
                                 verification, or another protocol
                                 error) */
} mh_get;

typedef int (*mh_get_progress_fn)(void *ud, uint64_t now, uint64_t total);

/* GET url into g (at most max body bytes, decoded, of a 2xx answer: the
 * body of any other, an error page, is read and dropped, up to
 * MH_GET_DROP_MAX bytes, whatever max is), with the host's
 * limits; userpwd ("user:password", or NULL) is sent to that origin only.  etag/last_modified, if non-empty, make it conditional (304).
 * MH_OK with g->status set for any HTTP answer; an error (naming the URL
 * and the cause) for transport failures, limits and refused redirects:
 * MH_EFORMAT exactly when the body is larger than max (a caller whose
 * max is an index's size tells a stale index by it), MH_EINVAL for a URL
 * too long, MH_ENOMEM, else MH_EIO. */
mh_status mh_get_url(struct mh_host *h, CURL *c, const char *url,
                     const char *userpwd, size_t max, const char *etag,
                     const char *last_modified, mh_get_progress_fn fn,
                     void *ud, mh_get *g, mh_error **err);

/* "GET <url>: HTTP <status>", or, when redirects led elsewhere, "GET
 * <url>: redirected to <final>: HTTP <status>" -- a status named against
 * the URL that gave it.  Into buf (size bytes, cut to fit). */
void mh_get_status_text(const mh_get *g, const char *url, char *buf,
                        size_t size);

#define MH_GET_MAX_AGE (366L * 24 * 3600) /* max-age is clamped to this */
#define MH_GET_DROP_MAX (1024 * 1024) /* an error page past this is cut off */
void mh_get_free(struct mh_host *h, mh_get *g);

/* Is the URL's host a literal loopback address (127.0.0.0/8, ::1) or
 * exactly "localhost"?  A name that merely starts with "127." is
 * anybody's.  Loopback URLs are never fetched through a proxy. */
bool mh_get_loopback(const char *url);

#endif /* MH_FINDERS_HTTPGET_H */
