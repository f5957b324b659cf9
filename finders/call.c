/*
 * finders/call.c -- calling a finder (mh_fcx_*): the context every call
 * gets, the services it offers (cx->svc), and what the host does with a
 * finder's answers -- a spec checked and interned into an mh_found, bytes
 * read, instances invalidated and closed.
 *
 * Every call goes through here, for built-in and third-party finders
 * alike; built-in ones reach the host's side of the context through
 * MH_FCX(cx) (the error slot, the miss buffer).
 */
#include "host/internal.h"
#include "host/secure.h"
#include "finders/finder.h"

#include <stdio.h>
#include <string.h>

/* ---- services ----------------------------------------------------------- */

mh_status mh_fcx_status(mh_status rc, bool *odd)
{
    *odd = (int)rc < 0 || (int)rc >= MH_STATUS_COUNT_;
    return *odd ? MH_EIO : rc;
}

bool mh_fcx_placed(const char *msg, const char *name, const char *place,
                   const char *place2)
{
    size_t nl = strlen(name);
    if (strncmp(msg, name, nl) == 0 && msg[nl] == ':')
        return true;
    const char *colon = strstr(msg, ": ");
    const char *places[] = {place, place2};
    for (size_t i = 0; i < 2; i++) {
        const char *p = places[i];
        if (!p || !*p)
            continue;
        if (strncmp(msg, p, strlen(p)) == 0 ||
            (colon && colon > msg &&
             strncmp(p, msg, (size_t)(colon - msg)) == 0))
            return true;
    }
    return false;
}

bool mh_hook_builtin(const mh_hook *k)
{
    return k->is_path || k->cls == &mh_fsf_class || k->cls == &mh_sqf_class ||
           k->cls == &mh_htf_class;
}

static mh_status svc_error(mh_finder_ctx *cx, mh_status code,
                           const char *fmt, ...)
{
    mh_fcx *x = MH_FCX(cx);
    bool odd;
    code = mh_fcx_status(code, &odd);
    if (code == MH_OK)
        code = MH_EIO; /* an error call is an error */
    va_list ap;
    va_start(ap, fmt);
    mh_error_free(*x->err);
    *x->err = NULL;
    mh_verr(x->h, x->err, code, fmt, ap);
    va_end(ap);
    return code;
}

/* The longest reason a finder's miss() adds, with its NUL: a longer one
 * is cut with "...", so one finder cannot push every other entry's line
 * out of the "not found" message. */
#define MH_MISS_MAX 512

static void svc_miss(mh_finder_ctx *cx, const char *fmt, ...)
{
    mh_fcx *x = MH_FCX(cx);
    if (!x->why)
        return;
    char text[MH_MISS_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (n < 0)
        snprintf(text, sizeof text, "(a reason its format could not make)");
    else if ((size_t)n >= sizeof text)
        memcpy(text + sizeof text - 4, "...", 4);
    /* One line of the message: a line break would make lines that read
     * as other entries'. */
    for (char *c = text; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    if (x->why->len > x->why_mark) /* a reason before it, from this call */
        mh_buf_puts(x->why, "; ");
    mh_buf_puts(x->why, text);
}

static void svc_log(mh_finder_ctx *cx, int level, const char *fmt, ...)
{
    mh_fcx *x = MH_FCX(cx);
    if (level >= MH_LOG_TRACE && !x->h->verbose)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mh_log(x->h, level < MH_LOG_ERROR ? MH_LOG_ERROR
                 : level > MH_LOG_TRACE ? MH_LOG_TRACE : (mh_log_level)level,
           "finder '%s': %s", x->hook ? x->hook->name : "?", msg);
}

static void *svc_alloc(mh_finder_ctx *cx, size_t size)
{
    return mh_mem_alloc(MH_FCX(cx)->h, size ? size : 1);
}

static void svc_free(mh_finder_ctx *cx, void *ptr, size_t size)
{
    if (ptr)
        mh_mem_free(MH_FCX(cx)->h, ptr, size ? size : 1);
}

static size_t svc_max_module_size(mh_finder_ctx *cx)
{
    return MH_FCX(cx)->h->max_module_size;
}

static int svc_verbose(mh_finder_ctx *cx)
{
    return MH_FCX(cx)->h->verbose;
}

static const char *svc_intern(mh_finder_ctx *cx, const char *str)
{
    return str ? mh_int_cstr(MH_FCX(cx)->h, str) : NULL;
}

static mh_status svc_open_code(mh_finder_ctx *cx, const char *path, int *fd,
                               char *why, size_t why_size)
{
    mh_fcx *x = MH_FCX(cx);
    *fd = -1;
    if (why_size)
        why[0] = '\0';
    if (!path) {
        if (why_size)
            snprintf(why, why_size, "open_code: path is NULL");
        return MH_EINVAL;
    }
    mh_error *e = NULL;
    mh_status rc = mh_sec_open_code(x->h, path, fd, &e);
    if (rc != MH_OK && why_size)
        snprintf(why, why_size, "%s", mh_error_message(e));
    mh_error_free(e);
    return rc;
}

static const mh_finder_services services = {
    .size = sizeof(mh_finder_services),
    .error = svc_error,
    .miss = svc_miss,
    .log = svc_log,
    .alloc = svc_alloc,
    .free = svc_free,
    .max_module_size = svc_max_module_size,
    .verbose = svc_verbose,
    .intern = svc_intern,
    .open_code = svc_open_code,
};

void mh_fcx_init(mh_fcx *cx, mh_host *h, const mh_hook *hook, mh_buf *why,
                 mh_error **err)
{
    cx->pub.svc = &services;
    cx->pub.ud = hook ? hook->ud : NULL;
    cx->h = h;
    cx->hook = hook;
    cx->err = err;
    cx->why = why;
    cx->why_mark = why ? why->len : 0;
    cx->want_bytes = false;
    cx->bytes = (mh_blob){0};
}

void mh_fcx_close(mh_host *h, const mh_hook *k, void *state)
{
    mh_error *e = NULL;
    mh_fcx cx;
    mh_fcx_init(&cx, h, k, NULL, &e);
    k->cls->close(&cx.pub, state);
    mh_error_free(e);
}

void mh_fcx_invalidate(mh_host *h, const mh_hook *k, void *state)
{
    if (!k->cls->invalidate)
        return;
    mh_error *e = NULL;
    mh_fcx cx;
    mh_fcx_init(&cx, h, k, NULL, &e);
    k->cls->invalidate(&cx.pub, state);
    mh_error_free(e);
}

/* ---- answers ------------------------------------------------------------ */

static const char *intern_opt(mh_host *h, const char *s, bool *oom)
{
    if (!s)
        return NULL;
    const char *r = mh_int_cstr(h, s);
    if (!r)
        *oom = true;
    return r;
}

static bool is_sha256_hex(const char *s)
{
    size_t n = 0;
    while (s && n < 64 && ((s[n] >= '0' && s[n] <= '9') ||
                           (s[n] >= 'a' && s[n] <= 'f')))
        n++;
    return n == 64 && s[n] == '\0';
}

void mh_found_release(mh_host *h, mh_found *f)
{
    mh_blob_free(h, &f->pre);
    mh_mem_free(h, f->own, f->own_size);
    f->own = NULL;
    f->own_size = 0;
}

/* Copy origin and file (one copy when they are the same text) into one
 * block, f->own.  0, or -1: out of memory. */
static int found_copy(mh_host *h, const mh_finder_spec *spec, mh_found *f)
{
    size_t ol = strlen(spec->origin) + 1;
    bool same = spec->file && strcmp(spec->file, spec->origin) == 0;
    size_t fl = spec->file && !same ? strlen(spec->file) + 1 : 0;
    char *p = mh_mem_alloc(h, ol + fl);
    if (!p)
        return -1;
    memcpy(p, spec->origin, ol);
    if (fl)
        memcpy(p + ol, spec->file, fl);
    f->own = p;
    f->own_size = ol + fl;
    f->origin = p;
    f->file = same ? p : fl ? p + ol : NULL;
    return 0;
}

mh_status mh_fcx_found(mh_host *h, const mh_hook *hook,
                       const char *name, const mh_finder_spec *spec,
                       bool transient, mh_found *f, mh_error **err)
{
    const char *bad = NULL;
    if (spec->kind != MH_KIND_NATIVE && spec->kind != MH_KIND_LUA &&
        spec->kind != MH_KIND_NAMESPACE)
        bad = "kind is not NATIVE, LUA or NAMESPACE";
    else if (!spec->origin || !spec->origin[0])
        bad = "it has no origin";
    else if (spec->kind != MH_KIND_NAMESPACE && !spec->file &&
             (!spec->key || !hook->cls->read))
        bad = "it has neither a file nor a key the finder can read";
    else if (spec->file && spec->file[0] != '/')
        bad = "its file is not an absolute path";
    else if (spec->meta_key && !hook->cls->read)
        bad = "it has a meta_key but the finder cannot read";
    else if (spec->copy && (!spec->key || !hook->cls->read))
        bad = "it has a copy but no key the finder can read";
    else if (spec->copy && spec->copy[0] != '/')
        bad = "its copy is not an absolute path";
    else if (spec->copy && !is_sha256_hex(spec->copy_sha256))
        bad = "its copy_sha256 is not 64 hex digits";
    if (bad)
        return mh_err(h, err, MH_EFORMAT, "finder '%s' gave a bad answer for "
                      "module '%s': %s", hook->name, name, bad);
    bool oom = false;
    *f = (mh_found){
        .kind = spec->kind,
        .origin = transient ? NULL : intern_opt(h, spec->origin, &oom),
        .file = transient ? NULL : intern_opt(h, spec->file, &oom),
        .key = intern_opt(h, spec->key, &oom),
        .meta_file = intern_opt(h, spec->meta_file, &oom),
        .meta_key = intern_opt(h, spec->meta_key, &oom),
        .identity = intern_opt(h, spec->identity, &oom),
        /* A copy serves native code only: Lua bytes are read anyway. */
        .copy = spec->kind == MH_KIND_NATIVE
                    ? intern_opt(h, spec->copy, &oom) : NULL,
        .copy_sha256 = spec->kind == MH_KIND_NATIVE && spec->copy
                           ? intern_opt(h, spec->copy_sha256, &oom) : NULL,
        .binary = (spec->flags & MH_SPEC_BYTECODE) != 0,
        .trusted = (spec->flags & MH_SPEC_TRUSTED) != 0,
        .meta_whole = (spec->flags & MH_SPEC_META_WHOLE) && spec->meta_key,
        .finder = hook->name,
        .hook = hook,
        .fd = -1,
        .fd_size = -1,
    };
    if (!oom && transient && found_copy(h, spec, f) != 0)
        oom = true;
    if (oom)
        return mh_err(h, err, MH_ENOMEM, "out of memory finding '%s'", name);
    return MH_OK;
}

mh_status mh_fcx_read(mh_host *h, const mh_found *f, const char *key,
                        mh_blob *out, mh_error **err)
{
    out->data = NULL;
    out->len = out->size = 0;
    const mh_hook *k = f->hook;
    if (!k || !k->cls->read || !key)
        return mh_err(h, err, MH_EIO, "%s: finder '%s' cannot read it",
                      f->origin, f->finder ? f->finder : "?");
    mh_error *e = NULL;
    mh_fcx cx;
    mh_fcx_init(&cx, h, k, NULL, &e);
    bool odd;
    int raw = (int)k->cls->read(&cx.pub, f->state, key, out);
    mh_status rc = mh_fcx_status((mh_status)raw, &odd);
    if (odd) {
        mh_error_free(e);
        e = NULL;
        mh_err(h, &e, rc, "finder '%s' returned %d, which is no mh_status, "
               "reading %s", k->name, raw, f->origin);
    }
    /* A finder's word on its own bytes is checked, not trusted. */
    if (rc == MH_OK) {
        mh_error_free(e); /* an error() before an MH_OK */
        e = NULL;
        if (out->size > 0 && !out->data)
            rc = mh_err(h, &e, MH_EFORMAT, "finder '%s' returned %zu bytes "
                        "without data for %s", k->name, out->size, f->origin);
        else if (out->len > out->size)
            rc = mh_err(h, &e, MH_EFORMAT, "finder '%s' returned %zu bytes "
                        "of content in a block of %zu for %s", k->name,
                        out->len, out->size, f->origin);
        else if (out->len > h->max_module_size)
            rc = mh_err(h, &e, MH_EFORMAT, "%s is %zu bytes, over the host's "
                        "max_module_size (%zu); not loaded", f->origin,
                        out->len, h->max_module_size);
    }
    if (rc != MH_OK) {
        if (out->data)
            mh_blob_free(h, out);
        out->data = NULL;
        out->len = out->size = 0;
        if (!e)
            mh_err(h, &e, rc, "finder '%s' could not read %s (%s)", k->name,
                   f->origin, mh_strerror(rc));
        else if (!mh_hook_builtin(k) && !odd &&
                 !mh_fcx_placed(mh_error_message(e), k->name, f->origin,
                                NULL)) {
            /* Its own words, with where they come from. */
            mh_error *named = NULL;
            mh_err(h, &named, rc, "%s (finder '%s'): %s", f->origin, k->name,
                   mh_error_message(e));
            mh_error_free(e);
            e = named;
        }
        return mh_err_give(e, err);
    }
    mh_error_free(e);
    return MH_OK;
}
