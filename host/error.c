/*
 * host/error.c -- status codes and error objects.
 *
 * An error is one allocation holding the code and the message; it remembers
 * the allocator it came from so mh_error_free() needs no host.  When even
 * the error cannot be allocated, callers get a static one with the same
 * status (musl's dlerror fallback), which mh_error_free() recognises and
 * ignores.
 */
#include "host/internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

struct mh_error {
    mh_alloc_fn alloc;   /* NULL: static, never freed */
    void *alloc_ud;
    size_t size;         /* bytes allocated, for the allocator */
    mh_status code;
    const char *message;
    char text[];         /* message storage when allocated */
};

/* When even the error cannot be allocated: a static one per status, so
 * that mh_error_code() still agrees with what the call returned. */
#define NO_ROOM(c)                                                        \
    [c] = {NULL, NULL, 0, c, "no memory left to describe the error"}
static const mh_error no_room[] = {
    [MH_ENOMEM] = {NULL, NULL, 0, MH_ENOMEM, "out of memory (and no memory "
                   "left to describe the error)"},
    NO_ROOM(MH_EINVAL),
    NO_ROOM(MH_EBADNAME),
    NO_ROOM(MH_ENOTFOUND),
    NO_ROOM(MH_EABI),
    NO_ROOM(MH_ENODESC),
    NO_ROOM(MH_EINIT),
    NO_ROOM(MH_ELOAD),
    NO_ROOM(MH_ECYCLE),
    NO_ROOM(MH_EIO),
    NO_ROOM(MH_ENOSYM),
    NO_ROOM(MH_EPATH),
    NO_ROOM(MH_EFORMAT),
    NO_ROOM(MH_EDEADLOCK),
    NO_ROOM(MH_EVERSION),
    NO_ROOM(MH_EAGAIN),
    NO_ROOM(MH_ECALL),
    NO_ROOM(MH_ECANCELED),
};
#undef NO_ROOM
_Static_assert(MH_ARRAY_LEN(no_room) == MH_STATUS_COUNT_,
               "a status without its error for when memory runs out");

static mh_error *no_room_for(mh_status code)
{
    if (code < 0 || (size_t)code >= MH_ARRAY_LEN(no_room) ||
        !no_room[code].message)
        code = MH_ENOMEM;
    return (mh_error *)&no_room[code];
}

static const struct {
    const char *name;
    const char *text;
} status_table[] = {
    [MH_OK] = {"MH_OK", "success"},
    [MH_ENOMEM] = {"MH_ENOMEM", "out of memory"},
    [MH_EINVAL] = {"MH_EINVAL", "invalid argument"},
    [MH_EBADNAME] = {"MH_EBADNAME", "invalid module name"},
    [MH_ENOTFOUND] = {"MH_ENOTFOUND", "module not found"},
    [MH_EABI] = {"MH_EABI", "plugin ABI version mismatch"},
    [MH_ENODESC] = {"MH_ENODESC", "shared object has no modhost descriptor"},
    [MH_EINIT] = {"MH_EINIT", "module initialisation failed"},
    [MH_ELOAD] = {"MH_ELOAD", "module could not be loaded"},
    [MH_ECYCLE] = {"MH_ECYCLE", "circular import"},
    [MH_EIO] = {"MH_EIO", "input/output error"},
    [MH_ENOSYM] = {"MH_ENOSYM", "no such export"},
    [MH_EPATH] = {"MH_EPATH", "unusable search path entry"},
    [MH_EFORMAT] = {"MH_EFORMAT", "bad or foreign data format"},
    [MH_EDEADLOCK] = {"MH_EDEADLOCK", "import would deadlock"},
    [MH_EVERSION] = {"MH_EVERSION", "header and library versions differ"},
    [MH_EAGAIN] = {"MH_EAGAIN", "temporarily unavailable"},
    [MH_ECALL] = {"MH_ECALL", "the called function raised an error"},
    [MH_ECANCELED] = {"MH_ECANCELED", "cancelled by the caller"},
};

const char *mh_strerror(int code)
{
    if (code < 0 || (size_t)code >= MH_ARRAY_LEN(status_table) ||
        !status_table[code].text)
        return "unknown status";
    return status_table[code].text;
}

const char *mh_status_name(int code)
{
    if (code < 0 || (size_t)code >= MH_ARRAY_LEN(status_table) ||
        !status_table[code].name)
        return "MH_E?";
    return status_table[code].name;
}

static mh_error *err_new(mh_host *h, mh_status code, const char *msg,
                         size_t len)
{
    mh_alloc_fn alloc = h ? h->alloc : mh_mem_default_alloc;
    void *ud = h ? h->alloc_ud : NULL;
    size_t size = sizeof(mh_error) + len + 1;
    mh_error *e = alloc(ud, NULL, 0, size);
    if (!e)
        return no_room_for(code);
    e->alloc = alloc;
    e->alloc_ud = ud;
    e->size = size;
    e->code = code;
    memcpy(e->text, msg, len);
    e->text[len] = '\0';
    e->message = e->text;
    return e;
}

mh_status mh_verr(mh_host *h, mh_error **err, mh_status code,
                  const char *fmt, va_list ap)
{
    if (!err)
        return code;
    char small[512];
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(small, sizeof small, fmt, aq);
    va_end(aq);
    if (n < 0) {
        *err = err_new(h, code, mh_strerror(code), strlen(mh_strerror(code)));
        return code;
    }
    if ((size_t)n < sizeof small) {
        *err = err_new(h, code, small, (size_t)n);
        return code;
    }
    /* Long message (a not-found list over many entries): format in place. */
    mh_alloc_fn alloc = h ? h->alloc : mh_mem_default_alloc;
    void *ud = h ? h->alloc_ud : NULL;
    size_t size = sizeof(mh_error) + (size_t)n + 1;
    mh_error *e = alloc(ud, NULL, 0, size);
    if (!e) {
        *err = no_room_for(code);
        return code;
    }
    e->alloc = alloc;
    e->alloc_ud = ud;
    e->size = size;
    e->code = code;
    vsnprintf(e->text, (size_t)n + 1, fmt, ap);
    e->message = e->text;
    *err = e;
    return code;
}

mh_status mh_errno_status(int e, mh_status code)
{
    return e == EMFILE || e == ENFILE ? MH_EAGAIN : code;
}

const char *mh_errno_text(int e)
{
    static _Thread_local char text[256];
    struct rlimit rl;
    int saved = errno;
    bool limit = e == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0;
    errno = saved;
    if (!limit)
        return strerror(e);
    snprintf(text, sizeof text, "%s (the process is at its limit of %llu "
             "open files, RLIMIT_NOFILE; every loaded native module holds "
             "one, its file or memory image: raise the limit, e.g. ulimit "
             "-n, or load fewer)", strerror(e),
             (unsigned long long)rl.rlim_cur);
    return text;
}

mh_status mh_dl_status(const char *raw, char *why, size_t size,
                       mh_status code)
{
    if (strstr(raw, strerror(ENFILE)))
        return MH_EAGAIN;
    const char *full = strerror(EMFILE);
    size_t flen = strlen(full), n = strlen(why);
    if (!strstr(raw, full))
        return code;
    const char *advice = mh_errno_text(EMFILE);
    if (n + 1 < size && strncmp(advice, full, flen) == 0)
        snprintf(why + n, size - n, "%s", advice + flen);
    return MH_EAGAIN;
}

size_t mh_escape(char *out, size_t size, const char *t, size_t n,
                 bool keep_lines, const char **rest)
{
    size_t o = 0, i = 0;
    while (i < n && t[i]) {
        size_t c = keep_lines && (t[i] == '\n' || t[i] == '\t')
                       ? 0 : mh_control_len(t + i);
        if (c > n - i)
            c = n - i; /* a C1 pair cut by n: its first byte alone */
        size_t need = c ? 4 * c : 1;
        if (o + need >= size)
            break;
        if (!c)
            out[o++] = t[i++];
        for (; c; c--)
            o += (size_t)snprintf(out + o, size - o, "\\x%02x",
                                  (unsigned char)t[i++]);
    }
    out[o] = '\0';
    if (rest)
        *rest = t + i;
    return o;
}

mh_status mh_dl_message(char *out, size_t size, const char *path,
                        const char *shown)
{
    const char *e = dlerror();
    if (!e)
        e = "unknown dynamic loader error";
    size_t pl = strlen(path);
    const char *at = strstr(e, path);
    /* "PATH: failed to map segment...": every caller names the file
     * before this text already, so the loader's own naming of it goes. */
    if (at == e && strncmp(e + pl, ": ", 2) == 0)
        snprintf(out, size, "%s", e + pl + 2);
    else if (at)
        snprintf(out, size, "%.*s%s%s", (int)(at - e), e, shown,
                 at + strlen(path));
    else
        snprintf(out, size, "%s", e);
    return mh_dl_status(e, out, size, MH_ELOAD);
}

mh_status mh_err(mh_host *h, mh_error **err, mh_status code,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mh_verr(h, err, code, fmt, ap);
    va_end(ap);
    return code;
}

mh_error *mh_err_dup(mh_host *h, const mh_error *src)
{
    if (!src)
        return no_room_for(MH_ENOMEM);
    return err_new(h, src->code, src->message, strlen(src->message));
}

bool mh_err_oom(const mh_error *e)
{
    return e && (e->code == MH_ENOMEM || !e->alloc);
}

mh_status mh_err_give(mh_error *e, mh_error **err)
{
    mh_status code = e ? e->code : MH_ENOMEM;
    if (err)
        *err = e;
    else
        mh_error_free(e);
    return code;
}

mh_status mh_error_code(const mh_error *err)
{
    return err ? err->code : MH_EINVAL;
}

const char *mh_error_message(const mh_error *err)
{
    return err ? err->message : "";
}

void mh_error_free(mh_error *err)
{
    if (!err || !err->alloc)
        return;
    err->alloc(err->alloc_ud, err, err->size, 0);
}

const char *mh_null_name(int n, ...)
{
    va_list ap;
    const char *which = "an argument";
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        const void *p = va_arg(ap, const void *);
        const char *name = va_arg(ap, const char *);
        if (!p) {
            which = name;
            break;
        }
    }
    va_end(ap);
    return which;
}
