/*
 * host/discover.c -- discovery: every module on the search path with its
 * metadata, entry points by group, and the failures that get a module
 * skipped -- without running any module code.
 *
 * mh_discover lists the path (host/find.c), then for each module compares
 * its identity with the discovery index (cache/discovery.c):
 *   - a file: device, inode, size, nanosecond mtime and ctime, of the
 *     module and of its sidecar (or its absence), from stat();
 *   - an item without a file: the identity its finder reports (a content
 *     hash for HTTP, the row and the database file for SQLite).
 * Same identity: the stored manifest or failure is used and the module
 * is not read.  Otherwise its metadata is read (host/meta.c) and the row
 * rewritten.  What depends on the host reading it -- its plugin ABI and
 * its version, against a manifest's "abi" and "modhost" -- is checked on
 * every answer and never stored: hosts of other versions may share the
 * cache directory, and each must judge a module by its own lights.  A
 * file changed less than UNSURE_NS before it was read might change again
 * within the same mtime tick unseen, so its row is stored as unsure and
 * read again next time (the rule of the directory listing cache).
 *
 * Callbacks run after the index is closed, so they may import, or clear
 * failures.
 */
#include "host/internal.h"
#include "host/meta.h"
#include "host/secure.h"
#include "cache/discovery.h"
#include "loaders/loader.h"
#include "finders/finder.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define UNSURE_NS 2000000000LL
#define UNSURE "unsure:"

/* ---- identities --------------------------------------------------------- */

/* "DEV:INO:SIZE:SEC.NSEC:CSEC.CNSEC" (mtime, then ctime) of path into
 * buf (at least STAT_ID_SIZE bytes), "-" for no path, "?" for one that
 * cannot be stat'ed.  The ctime is there because no one can set it: a
 * file rewritten in place with its size and mtime put back (cp -p,
 * install -p, a reproducible build) still moves it, as does a chmod. */
#define STAT_ID_SIZE 160
static char *put_time(char *p, const struct timespec *t)
{
    p = mh_put_sdec(p, (long long)t->tv_sec);
    *p++ = '.';
    return mh_put_dec(p, (unsigned long long)t->tv_nsec, 9);
}

static void put_identity(char *buf, dev_t dev, ino_t ino, long long size,
                         const struct timespec *mtim,
                         const struct timespec *ctim)
{
    /* 5 numbers of at most 20 digits and a sign, 2 x 9 digits, 6
     * separators */
    char *p = mh_put_dec(buf, (unsigned long long)dev, 1);
    *p++ = ':';
    p = mh_put_dec(p, (unsigned long long)ino, 1);
    *p++ = ':';
    p = mh_put_sdec(p, size);
    *p++ = ':';
    p = put_time(p, mtim);
    *p++ = ':';
    p = put_time(p, ctim);
    *p = '\0';
}

/* Only the mtime's age makes a row unsure (UNSURE_NS): a ctime that is
 * new while the mtime is old comes from a chmod or a put-back mtime,
 * and a second change within its tick would have to put back the mtime
 * again. */
static void stat_identity(const char *path, char *buf, bool *unsure)
{
    struct stat st;
    if (!path || stat(path, &st) != 0) {
        memcpy(buf, path ? "?" : "-", 2);
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long age = (long long)(now.tv_sec - st.st_mtim.tv_sec) * 1000000000LL
                    + (now.tv_nsec - st.st_mtim.tv_nsec);
    if (age < UNSURE_NS)
        *unsure = true;
    put_identity(buf, st.st_dev, st.st_ino, (long long)st.st_size,
                 &st.st_mtim, &st.st_ctim);
}

/* The identity of found module f into buf, or NULL when it has none (it
 * is then read every time).  An unsure one starts with UNSURE.  A module
 * file that import opened is known by what it opened (f->fd_*): the path
 * may lead to another file by now. */
static const char *identity_of(const mh_found *f, char *buf, size_t size)
{
    bool unsure = false;
    char mod[STAT_ID_SIZE], meta[STAT_ID_SIZE];
    int n;
    if (f->file) {
        if (f->fd_ino)
            put_identity(mod, f->fd_dev, f->fd_ino, f->fd_size, &f->fd_mtim,
                         &f->fd_ctim);
        else
            stat_identity(f->file, mod, &unsure);
        stat_identity(f->meta_file, meta, &unsure);
        n = snprintf(buf, size, "%sfile:%s|meta:%s", unsure ? UNSURE : "",
                     mod, meta);
    } else if (f->identity) {
        n = snprintf(buf, size, "item:%s|meta:%s", f->identity,
                     f->meta_key ? f->meta_key : "-");
    } else {
        return NULL;
    }
    /* A cut identity could equal another: none then (read every time). */
    return n > 0 && (size_t)n < size ? buf : NULL;
}

/* ---- the walk ----------------------------------------------------------- */

typedef struct dx_item {
    const char *name;       /* interned */
    mh_found found;
    mh_manifest *manifest;  /* NULL if it failed */
    mh_status status;
    const char *reason;     /* interned */
    bool transient;         /* not the module's fault: not recorded */
    char *ident;            /* read now, to be recorded under this
                               identity (host memory), or NULL */
} dx_item;

typedef struct dx_known {   /* a row of the index, by interned origin */
    const char *origin;
    char *identity;         /* host memory */
    const char *name, *source, *reason; /* interned */
    char *manifest;         /* host memory, or NULL */
    size_t manifest_size;
    int status;
} dx_known;

typedef struct dx_walk {
    mh_host *h;
    dx_item *items;
    size_t n, cap;
    dx_known *known;        /* open addressing on origin pointer */
    size_t kcap, kn;
    bool oom;
} dx_walk;

static size_t known_slot(const dx_walk *w, const char *origin)
{
    size_t i = (size_t)(((uintptr_t)origin >> 3) * 0x9e3779b97f4a7c15ull
                        >> 17) & (w->kcap - 1);
    while (w->known[i].origin && w->known[i].origin != origin)
        i = (i + 1) & (w->kcap - 1);
    return i;
}

static int add_item(void *ud, const char *name, const mh_found *f)
{
    dx_walk *w = ud;
    if (mh_mem_grow(w->h, (void **)&w->items, &w->cap, w->n,
                    sizeof *w->items, 64) != 0) {
        w->oom = true;
        return 1;
    }
    w->items[w->n++] = (dx_item){.name = name, .found = *f};
    return 0;
}

static int add_known(void *ud, const mh_dx_row *r)
{
    dx_walk *w = ud;
    mh_host *h = w->h;
    const char *origin = mh_intern_lookup(h, r->origin);
    if (!origin)
        return 0; /* not on this host's path now (never interned) */
    size_t i = known_slot(w, origin);
    if (!w->known[i].origin || w->known[i].identity)
        return 0; /* not an item of this walk, or seen */
    dx_known k = {
        .origin = origin,
        /* Not interned: a file's identity changes with every rewrite,
         * and a long-lived host that lists again would keep them all. */
        .identity = mh_mem_strdup(h, r->identity),
        .name = mh_int_cstr(h, r->name),
        .source = mh_int_cstr(h, r->source),
        .reason = r->reason ? mh_int_cstr(h, r->reason) : NULL,
        .status = r->status,
    };
    if (r->manifest) {
        k.manifest_size = strlen(r->manifest) + 1;
        k.manifest = mh_mem_alloc(h, k.manifest_size);
        if (k.manifest)
            memcpy(k.manifest, r->manifest, k.manifest_size);
    }
    if (!k.identity || !k.name || !k.source || (r->reason && !k.reason) ||
        (r->manifest && !k.manifest)) {
        mh_mem_free(h, k.manifest, k.manifest_size);
        mh_mem_strfree(h, k.identity);
        w->oom = true;
        return 1;
    }
    w->known[i] = k;
    w->kn++;
    return 0;
}

/* Load the index's rows for the items' origins: mh_dx_each's result (0
 * also when memory ran out: nothing known). */
static int load_known(dx_walk *w, mh_dx *dx)
{
    size_t cap = 64;
    while (cap < w->n * 2)
        cap *= 2;
    w->known = mh_mem_calloc(w->h, cap, sizeof *w->known);
    if (!w->known)
        return 0;
    w->kcap = cap;
    /* A slot per item's origin first: rows for other origins are passed
     * over, so the table never fills. */
    for (size_t i = 0; i < w->n; i++)
        w->known[known_slot(w, w->items[i].found.origin)].origin =
            w->items[i].found.origin;
    return mh_dx_each(dx, false, add_known, w);
}

static void free_known(dx_walk *w)
{
    for (size_t i = 0; i < w->kcap; i++) {
        mh_mem_free(w->h, w->known[i].manifest, w->known[i].manifest_size);
        mh_mem_strfree(w->h, w->known[i].identity);
    }
    mh_mem_free(w->h, w->known, w->kcap * sizeof *w->known);
}

static const char *sure(const char *id)
{
    return strncmp(id, UNSURE, sizeof UNSURE - 1) == 0
               ? id + sizeof UNSURE - 1 : id;
}

/* A failure that only a load or init shows: recorded by an import (its
 * source "load"; rows of earlier versions by their status), and never
 * found again by reading metadata. */
static bool load_failure(const dx_known *k)
{
    return k->status == MH_ELOAD || k->status == MH_ENODESC ||
           k->status == MH_EINIT ||
           (k->status != MH_OK && strcmp(k->source, MH_DX_AT_LOAD) == 0);
}

/* Does row k still describe the module whose identity is now id?  The
 * same identity, and not unsure -- except for a load failure, which a
 * re-read of the metadata cannot confirm or refute: it stands until the
 * module changes. */
static bool row_counts(const dx_known *k, const char *id)
{
    if (strcmp(sure(k->identity), sure(id)) != 0)
        return false;
    return load_failure(k) || (id == sure(id) &&
                                       k->identity == sure(k->identity));
}

/* Origin o (interned, or NULL when memory ran out: then not noted) has a
 * failure row this host wrote or met: a load from it will ask to forget
 * it (mh_discover_loaded). */
static void note_failed(mh_host *h, const char *o)
{
    if (!o)
        return;
    pthread_mutex_lock(&h->lock);
    bool have = false;
    for (size_t i = 0; i < h->ndx_failed && !have; i++)
        have = h->dx_failed[i] == o;
    if (!have && mh_mem_grow(h, (void **)&h->dx_failed, &h->capdx_failed,
                             h->ndx_failed, sizeof *h->dx_failed, 8) == 0)
        h->dx_failed[h->ndx_failed++] = o;
    atomic_store(&h->dx_failures, h->ndx_failed > 0);
    pthread_mutex_unlock(&h->lock);
}

/* Origin o (interned) joins (add) or leaves the origins whose recorded
 * failure is to be forgotten once the index can be written
 * (mh_host.dx_unclear).  Memory short: not kept (as if forgotten). */
static void unclear_set(mh_host *h, const char *o, bool add)
{
    pthread_mutex_lock(&h->lock);
    size_t i = 0;
    while (i < h->ndx_unclear && h->dx_unclear[i].origin != o)
        i++;
    if (!add && i < h->ndx_unclear)
        h->dx_unclear[i] = h->dx_unclear[--h->ndx_unclear];
    else if (add && i < h->ndx_unclear)
        h->dx_unclear[i].loaded_at = (int64_t)time(NULL);
    else if (add &&
             mh_mem_grow(h, (void **)&h->dx_unclear, &h->capdx_unclear,
                         h->ndx_unclear, sizeof *h->dx_unclear, 4) == 0)
        h->dx_unclear[h->ndx_unclear++] =
            (struct mh_dx_unclear){o, (int64_t)time(NULL)};
    pthread_mutex_unlock(&h->lock);
}

/* Forget, in the open index dx, the failures of the modules that loaded
 * while it was locked (mh_discover_loaded) -- those recorded before the
 * load: one recorded since (another process's, a new file's) is the
 * newer verdict.  One that cannot be forgotten now stays for the next
 * time. */
static void unclear_settle(mh_host *h, mh_dx *dx)
{
    for (;;) {
        pthread_mutex_lock(&h->lock);
        struct mh_dx_unclear u = {NULL, 0};
        if (h->ndx_unclear)
            u = h->dx_unclear[h->ndx_unclear - 1];
        pthread_mutex_unlock(&h->lock);
        const char *o = u.origin;
        size_t n = 0;
        if (!o || mh_dx_clear_failures(dx, NULL, o, u.loaded_at, &n) != 0)
            return;
        MH_TRACE(h, "discover: %s loaded while the index was locked: the "
                 "failure recorded for it is forgotten now", o);
        unclear_set(h, o, false);
    }
}

/* From a row whose identity matches: 1 used, 0 not usable. */
static int from_known(dx_walk *w, dx_item *it, const dx_known *k)
{
    mh_host *h = w->h;
    /* Written by an earlier modhost, which stored its own checks' verdict:
     * read again, and checked here. */
    if (k->status == MH_EABI || k->status == MH_EVERSION)
        return 0;
    if (k->status != MH_OK) {
        note_failed(h, k->origin);
        it->status = k->status > 0 && k->status < MH_STATUS_COUNT_
                         ? (mh_status)k->status : MH_EFORMAT;
        it->reason = k->reason ? k->reason : mh_int_cstr(h, "(no reason "
                                                            "recorded)");
        return 1;
    }
    mh_error *e = NULL;
    mh_status rc = k->manifest && strcmp(k->source, "none") != 0
        ? mh_manifest_parse_own(h, it->name, k->source, it->found.origin,
                                k->manifest, strlen(k->manifest),
                                &it->manifest, &e)
        : mh_manifest_empty(h, it->name, &it->manifest, &e);
    mh_error_free(e);
    return rc == MH_OK;
}

/* Read the item's metadata afresh. */
static void from_module(dx_walk *w, dx_item *it)
{
    mh_host *h = w->h;
    mh_error *e = NULL;
    bool fetch_failed;
    mh_status rc = mh_meta_of(h, it->name, &it->found, MH_META_SIDECAR_FIRST,
                              &it->manifest, NULL, &fetch_failed, &e);
    if (fetch_failed)
        it->transient = true; /* the finder's trouble, not the module's */
    if (rc != MH_OK) {
        mh_manifest_free(it->manifest);
        it->manifest = NULL;
        /* Memory ran out on the way, or describing the failure: this
         * time's trouble, not the module's, so not recorded. */
        if (mh_err_oom(e))
            rc = MH_ENOMEM;
        it->status = rc;
        it->reason = mh_int_cstr(h, mh_error_message(e));
        if (!it->reason)
            w->oom = true;
    }
    mh_error_free(e);
}

/* This host's checks of an item read fine (plugin ABI, modhost version):
 * a failure replaces its manifest for the answer, not in the index. */
static void check_here(dx_walk *w, dx_item *it)
{
    if (it->status != MH_OK || !it->manifest)
        return;
    mh_error *e = NULL;
    mh_status rc = mh_meta_check(w->h, it->name, it->found.origin,
                                 it->manifest, &e);
    if (rc == MH_OK)
        return;
    mh_manifest_free(it->manifest);
    it->manifest = NULL;
    it->status = mh_err_oom(e) ? MH_ENOMEM : rc;
    it->reason = mh_int_cstr(w->h, mh_error_message(e));
    if (!it->reason)
        w->oom = true;
    mh_error_free(e);
}

static bool transient(mh_status rc)
{
    return rc == MH_ENOMEM || rc == MH_EAGAIN || rc == MH_EIO ||
           rc == MH_ENOTFOUND;
}

mh_status mh_discover(mh_host *host, mh_meta_fn fn, void *ud, mh_error **err)
{
    MH_BUSY(host);
    if (!host || !fn)
        return mh_err(host, err, MH_EINVAL, "mh_discover: %s is NULL",
                      mh_null_name(2, host, "host", fn, "fn"));
    mh_status grc = mh_entry_check(host, "mh_discover", 0, err);
    if (grc != MH_OK)
        return grc;
    dx_walk w = {.h = host};
    mh_status rc = mh_list_found(host, add_item, &w, err);
    if (rc == MH_OK && w.oom)
        rc = mh_err(host, err, MH_ENOMEM, "out of memory listing modules");
    bool busy = false;
    mh_dx *dx = rc == MH_OK && w.n
                    ? mh_dx_open_ex(host, true, false, NULL, &busy)
                    : NULL;
    if (dx) {
        unclear_settle(host, dx);
        MH_TRACE(host, "discover: reading what the discovery index in %s "
                 "keeps", host->cache_dir);
        if (load_known(&w, dx) == MH_DX_BUSY) { /* locked since the open */
            free_known(&w);
            w.known = NULL;
            w.kcap = 0;
            mh_dx_close(dx); /* nothing to be written now either */
            dx = NULL;
            busy = true;
        }
    }
    if (!dx && busy) /* said: else a module recorded as failing is shown
                        as if it were fine */
        mh_log(host, MH_LOG_WARN, "the discovery index in %s is locked by "
               "another process: every module's metadata is read, and the "
               "failures recorded there are not shown this time",
               host->cache_dir);
    if (dx && mh_dx_damaged(dx)) { /* start afresh, and fill it now */
        free_known(&w);
        w.known = NULL;
        w.kcap = 0;
        mh_dx_close(dx);
        dx = mh_dx_open(host, true, NULL);
    }
    size_t reread = 0, to_write = 0;
    char ident[1024];
    for (size_t i = 0; rc == MH_OK && i < w.n && !w.oom; i++) {
        dx_item *it = &w.items[i];
        const char *id = identity_of(&it->found, ident, sizeof ident);
        const dx_known *k = w.kcap ? &w.known[known_slot(&w, it->found.origin)]
                                   : NULL;
        if (k && k->identity && id && row_counts(k, id) &&
            from_known(&w, it, k))
            continue;
        reread++;
        MH_TRACE(host, "discover: reading the metadata of '%s' (%s)",
                 it->name, it->found.origin);
        from_module(&w, it);
        if (dx && id && !it->transient && !transient(it->status) &&
            !w.oom) {
            if ((it->ident = mh_mem_strdup(host, id)) != NULL)
                to_write++;
        }
    }
    /* Written once everything was read: no write transaction is held
     * while finder code runs (a read may import, and an import that
     * fails records its failure in this index). */
    bool writing = to_write && mh_dx_begin(dx) == 0;
    for (size_t i = 0; writing && i < w.n; i++) {
        const dx_item *it = &w.items[i];
        if (!it->ident)
            continue;
        mh_dx_row row = {
            .origin = it->found.origin, .identity = it->ident,
            .name = it->name,
            .source = it->manifest ? it->manifest->source : "none",
            .manifest = mh_manifest_json(it->manifest),
            .status = it->status, .reason = it->reason,
        };
        if (mh_dx_put(dx, &row) != 0)
            writing = false;
    }
    if (writing)
        mh_dx_commit(dx);
    mh_dx_close(dx);
    /* What the metadata says is checked against this host (its ABI, the
     * modules required) for the listing; the index keeps what was read. */
    for (size_t i = 0; rc == MH_OK && i < w.n && !w.oom; i++)
        check_here(&w, &w.items[i]);
    if (rc == MH_OK && w.oom)
        rc = mh_err(host, err, MH_ENOMEM, "out of memory reading metadata");
    MH_TRACE(host, "discover: %zu modules, %zu read, %zu from the index",
             w.n, reread, w.n - reread);

    for (size_t i = 0; rc == MH_OK && i < w.n; i++) {
        const dx_item *it = &w.items[i];
        mh_module_meta meta = {
            .size = sizeof meta,
            .name = it->name,
            .origin = it->found.origin,
            .finder = it->found.finder,
            .kind = it->found.kind,
            .entry_index = it->found.entry,
            .manifest = it->manifest,
            .status = it->status,
            .reason = it->reason,
        };
        if (fn(ud, &meta) != 0)
            break;
    }
    for (size_t i = 0; i < w.n; i++) {
        mh_manifest_free(w.items[i].manifest);
        mh_mem_strfree(host, w.items[i].ident);
    }
    mh_mem_free(host, w.items, w.cap * sizeof *w.items);
    free_known(&w);
    return rc;
}

void mh_discover_record(mh_host *h, const char *name, const mh_found *f,
                        const mh_error *e, bool at_load)
{
    char ident[1024];
    const char *id = identity_of(f, ident, sizeof ident);
    /* Memory ran out, maybe while the failure was described: no reason
     * to keep.  This host's own checks (ABI, version) are made on every
     * listing instead: a host of another version may share the index. */
    mh_status code = mh_error_code(e);
    if (!id || mh_err_oom(e) || code == MH_EABI || code == MH_EVERSION)
        return;
    mh_dx *dx = mh_dx_open(h, true, NULL);
    if (!dx)
        return;
    mh_dx_row row = {
        .origin = f->origin, .identity = sure(id), .name = name,
        .source = at_load ? MH_DX_AT_LOAD : "none",
        .status = mh_error_code(e),
        .reason = mh_error_message(e),
    };
    bool began = mh_dx_begin(dx) == 0;
    bool put = began && mh_dx_put(dx, &row) == 0;
    if (put && mh_dx_commit(dx) == 0) {
        const char *o = mh_int_cstr(h, f->origin);
        note_failed(h, o);
        if (o) /* the newer verdict: not to be forgotten */
            unclear_set(h, o, false);
        MH_TRACE(h, "discover: recorded the failure of '%s' (%s)", name,
                 f->origin);
    } else
        MH_TRACE(h, "discover: the failure of '%s' (%s) could not be "
                 "recorded in the discovery index", name, f->origin);
    mh_dx_close(dx); /* a transaction left open is rolled back */
}

void mh_discover_loaded(mh_host *h, const char *name, const char *origin)
{
    const char *o = origin ? mh_int_lookup(h, origin, strlen(origin)) : NULL;
    bool had = false;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; o && i < h->ndx_failed && !had; i++)
        if ((had = h->dx_failed[i] == o))
            h->dx_failed[i] = h->dx_failed[--h->ndx_failed];
    atomic_store(&h->dx_failures, h->ndx_failed > 0);
    pthread_mutex_unlock(&h->lock);
    if (!had)
        return;
    /* Not waiting for another process's lock: an import, maybe inside an
     * init others wait for, does not stall on a cleanup.  One the lock
     * keeps from happening is left to the next listing or
     * mh_host_failures, which wait for it: else the failure would stay
     * recorded, and discovery skip a module that loads. */
    bool again = false;
    mh_dx *dx = mh_dx_open_ex(h, false, true, &again, NULL);
    size_t n = 0;
    int r = dx ? mh_dx_clear_failures(dx, NULL, origin, 0, &n) : -1;
    if (r == 0 && n)
        MH_TRACE(h, "discover: '%s' (%s) loaded: the failure recorded for "
                 "it is forgotten", name, origin);
    else if (r == MH_DX_BUSY || (!dx && again)) {
        MH_TRACE(h, "discover: '%s' (%s) loaded, but the discovery index "
                 "is locked: the failure recorded for it is forgotten at "
                 "the next listing", name, origin);
        unclear_set(h, o, true);
    }
    mh_dx_close(dx);
}

/* ---- entry points ------------------------------------------------------- */

typedef struct ep_walk {
    mh_host *host;
    const char *group;      /* interned */
    mh_entry_point_fn fn;
    void *ud;
    bool oom;
} ep_walk;

static int ep_one(void *ud, const mh_module_meta *m)
{
    ep_walk *w = ud;
    const char *exp = m->status == MH_OK
                          ? mh_manifest_provider(m->manifest, w->group) : NULL;
    if (!exp)
        return 0;
    /* Interned: an application may keep entry points past the call and
     * load one later; only the manifest dies with the callback. */
    mh_entry_point ep = {
        .size = sizeof ep,
        .group = w->group,
        .module = m->name,
        .export_name = mh_int_cstr(w->host, exp),
        .origin = m->origin,
        .manifest = m->manifest,
    };
    if (!ep.export_name) {
        w->oom = true;
        return 1;
    }
    return w->fn(w->ud, &ep);
}

mh_status mh_host_entry_points(mh_host *host, const char *group,
                               mh_entry_point_fn fn, void *ud, mh_error **err)
{
    MH_BUSY(host);
    if (!host || !group || !fn)
        return mh_err(host, err, MH_EINVAL,
                      "mh_host_entry_points: %s is NULL",
                      mh_null_name(3, host, "host", group, "group", fn, "fn"));
    mh_status grc = mh_entry_check(host, "mh_host_entry_points", 0, err);
    if (grc != MH_OK)
        return grc;
    ep_walk w = {host, mh_int_cstr(host, group), fn, ud, false};
    if (!w.group)
        return mh_err(host, err, MH_ENOMEM, "out of memory listing entry "
                      "points of '%s'", group);
    mh_status rc = mh_discover(host, ep_one, &w, err);
    if (rc == MH_OK && w.oom)
        rc = mh_err(host, err, MH_ENOMEM, "out of memory listing entry "
                    "points of '%s'", group);
    return rc;
}

mh_status mh_entry_point_load(mh_host *host, const mh_entry_point *ep,
                              mh_module **mod, void **symbol, mh_error **err)
{
    MH_BUSY(host);
    if (mod)
        *mod = NULL;
    if (symbol)
        *symbol = NULL;
    if (!host || !ep || !mod || !ep->module || !ep->export_name)
        return mh_err(host, err, MH_EINVAL,
                      "mh_entry_point_load: %s is NULL",
                      mh_null_name(4, host, "host", ep, "ep", mod, "mod",
                                   (const void *)NULL,
                                   ep && !ep->module ? "ep->module"
                                                     : "ep->export_name"));
    mh_status grc = mh_entry_check(host, "mh_entry_point_load", 0, err);
    if (grc != MH_OK)
        return grc;
    mh_module *m;
    mh_status rc = mh_import(host, ep->module, &m, err);
    if (rc != MH_OK)
        return rc;
    /* Asked for an export: a Lua module's function has no address, but
     * is looked up all the same, so that a missing one fails here as a
     * native export does. */
    rc = !symbol ? MH_OK
         : m->kind == MH_KIND_LUA
             ? mh_lua_has_function(m, ep->export_name, err)
             : mh_module_symbol_ex(m, ep->export_name, symbol, err);
    if (rc != MH_OK)
        return rc;
    *mod = m;
    return MH_OK;
}

/* ---- recorded failures -------------------------------------------------- */

typedef struct fail_walk {
    mh_host *host;
    mh_failure *v;          /* the rows, handed out once the index is
                               closed: the callback may use it */
    size_t n, cap;
    size_t gone;            /* rows of modules whose file is gone */
    bool oom;
} fail_walk;

/* The index is there but cannot be read now. */
static mh_status busy(mh_host *host, mh_error **err)
{
    mh_error *e = NULL;
    mh_err(host, &e, MH_EAGAIN, "the discovery index in %s cannot be read "
           "now (another process holds it locked, or memory or descriptors "
           "ran short); try again", host->cache_dir);
    return mh_err_give(e, err);
}

/* No index was opened, and not for a moment: is that none yet (MH_OK:
 * nothing recorded), or one that cannot be used (the error, as "no
 * recorded failures" would be a false all-clear)? */
static mh_status no_index(mh_host *host, mh_error **err)
{
    if (host->flags & MH_CONFIG_NO_INDEX)
        return MH_OK;
    char real[PATH_MAX], p[PATH_MAX + 32];
    mh_error *e = NULL, *out = NULL;
    mh_status rc = mh_sec_private_dir(host, host->cache_dir, real,
                                      sizeof real, &e);
    if (rc == MH_ENOMEM) {
        mh_error_free(e);
        return mh_err(host, err, MH_ENOMEM, "out of memory checking %s",
                      host->cache_dir);
    }
    if (rc != MH_OK) {
        mh_err(host, &out, MH_EPATH, "the discovery index cannot be used: "
               "%s", mh_error_message(e));
        mh_error_free(e);
        return mh_err_give(out, err);
    }
    snprintf(p, sizeof p, "%s/%s", real, MH_DX_FILE);
    struct stat st;
    if (lstat(p, &st) != 0 && errno == ENOENT)
        return MH_OK;
    mh_err(host, &out, MH_EIO, "the discovery index %s cannot be opened (a "
           "verbose host traces SQLite's reason)", p);
    return mh_err_give(out, err);
}

/* Is the file behind an origin ("/path", "/db!/member") gone?  The whole
 * origin first: "!/" may be part of a directory's name ("/srv/x!/m.so").
 * Where that is not there, the part before the last "!/", a database or
 * archive, decides.  A file removed from such a directory whose "x" is
 * there is then taken for a member of "x" and stays listed until cleared,
 * as a removed member does: never forgotten wrongly. */
static bool origin_gone(const char *origin)
{
    char path[PATH_MAX];
    struct stat st;
    if (origin[0] != '/')
        return false; /* a URI: its server decides */
    if (lstat(origin, &st) == 0 || (errno != ENOENT && errno != ENOTDIR))
        return false;
    const char *bang = NULL; /* "/db!/member": the last "!/" */
    for (const char *p = strstr(origin, "!/"); p; p = strstr(p + 1, "!/"))
        bang = p;
    if (!bang)
        return errno == ENOENT;
    size_t n = (size_t)(bang - origin);
    if (n >= sizeof path)
        return false;
    memcpy(path, origin, n);
    path[n] = '\0';
    return lstat(path, &st) != 0 && errno == ENOENT;
}

/* Does a module read fine fail this host's checks (ABI, version)?  The
 * failure, with *e, or MH_OK. */
static mh_status judged_here(fail_walk *w, const mh_dx_row *r, mh_error **e)
{
    if (!r->manifest || strcmp(r->source, "none") == 0)
        return MH_OK;
    mh_manifest *m = NULL;
    mh_error *pe = NULL;
    mh_status rc = mh_manifest_parse_own(w->host, r->name, r->source,
                                         r->origin, r->manifest,
                                         strlen(r->manifest), &m, &pe);
    if (rc == MH_OK)
        rc = mh_meta_check(w->host, r->name, r->origin, m, e);
    else if (mh_err_oom(pe))
        w->oom = true;
    else
        rc = MH_OK; /* not as stored: the next listing reads it again */
    mh_error_free(pe);
    mh_manifest_free(m);
    return rc;
}

static int fail_one(void *ud, const mh_dx_row *r)
{
    fail_walk *w = ud;
    mh_status status = r->status > 0 && r->status < MH_STATUS_COUNT_
                           ? (mh_status)r->status : MH_EFORMAT;
    if (r->status != MH_OK)
        note_failed(w->host, mh_int_cstr(w->host, r->origin));

    mh_error *e = NULL;
    if (r->status == MH_OK && (status = judged_here(w, r, &e)) == MH_OK)
        return w->oom;
    if (origin_gone(r->origin)) {
        w->gone++;
        mh_error_free(e);
        return 0;
    }
    /* Interned: they outlive the index connection, as the caller may
     * keep them until the host is freed. */
    mh_failure f = {
        .size = sizeof f,
        .name = mh_int_cstr(w->host, r->name),
        .origin = mh_int_cstr(w->host, r->origin),
        .reason = mh_int_cstr(w->host, e ? mh_error_message(e)
                                       : r->reason ? r->reason : ""),
        .status = mh_err_oom(e) ? MH_ENOMEM : status,
        .when = r->when,
    };
    mh_error_free(e);
    if (!f.name || !f.origin || !f.reason || f.status == MH_ENOMEM) {
        w->oom = true;
        return 1;
    }
    if (mh_mem_grow(w->host, (void **)&w->v, &w->cap, w->n, sizeof *w->v,
                    16) != 0) {
        w->oom = true;
        return 1;
    }
    w->v[w->n++] = f;
    return 0;
}

mh_status mh_host_failures(mh_host *host, mh_failure_fn fn, void *ud,
                           mh_error **err)
{
    MH_BUSY(host);
    if (!host || !fn)
        return mh_err(host, err, MH_EINVAL, "mh_host_failures: %s is NULL",
                      mh_null_name(2, host, "host", fn, "fn"));
    mh_status grc = mh_entry_check(host, "mh_host_failures", 0, err);
    if (grc != MH_OK)
        return grc;
    bool again;
    mh_dx *dx = mh_dx_open(host, false, &again);
    if (!dx && again)
        return busy(host, err);
    if (!dx)
        return no_index(host, err); /* none yet: nothing recorded */
    fail_walk w = {.host = host};
    MH_TRACE(host, "discovery index: reading the failures recorded in %s",
             host->cache_dir);
    unclear_settle(host, dx);
    int r = mh_dx_each(dx, true, fail_one, &w);
    mh_status rc = MH_OK;
    if (w.oom)
        rc = mh_err(host, err, MH_ENOMEM, "out of memory listing failures");
    else if (r == MH_DX_BUSY) /* locked since the open */
        rc = busy(host, err);
    else if (r != 0)
        rc = mh_err(host, err, MH_EIO, "the discovery index in %s could not "
                    "be read (%s)%s", host->cache_dir, mh_dx_errmsg(dx),
                    mh_dx_damaged(dx) ? "; it will be rebuilt" : "");
    else if (w.gone) /* nothing will change them now */
        mh_dx_forget_gone(dx, origin_gone);
    mh_dx_close(dx);
    for (size_t i = 0; rc == MH_OK && i < w.n; i++)
        if (fn(ud, &w.v[i]) != 0)
            break;
    mh_mem_free(host, w.v, w.cap * sizeof *w.v);
    return rc;
}

mh_status mh_host_clear_failures(mh_host *host, const char *name,
                                 size_t *cleared, mh_error **err)
{
    if (cleared)
        *cleared = 0;
    if (!host)
        return mh_err(host, err, MH_EINVAL,
                      "mh_host_clear_failures: %s is NULL",
                      mh_null_name(1, host, "host"));
    mh_status grc = mh_entry_check(host, "mh_host_clear_failures", 0, err);
    if (grc != MH_OK)
        return grc;
    if (name && (grc = mh_name_check(name, err)) != MH_OK)
        return grc; /* no module has it: nothing could be cleared */
    bool again;
    mh_dx *dx = mh_dx_open(host, false, &again);
    if (!dx && again)
        return busy(host, err);
    if (!dx)
        return no_index(host, err);
    size_t n = 0;
    int r = mh_dx_clear_failures(dx, name, NULL, 0, &n);
    mh_dx_close(dx);
    if (r == MH_DX_BUSY)
        return busy(host, err);
    if (r != 0)
        return mh_err(host, err, MH_EIO, "cannot clear the failures recorded "
                      "in the discovery index in %s", host->cache_dir);
    if (cleared)
        *cleared = n;
    return MH_OK;
}
