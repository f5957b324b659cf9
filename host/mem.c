/*
 * host/mem.c -- memory through the host's allocator hook, and bounded
 * string buffers.
 *
 * Every byte the library keeps goes through mh_host.alloc (Lua's lua_Alloc
 * contract), so an application can account for it and a test can fail the
 * Nth allocation.  Nothing here aborts: failures return NULL or mark the
 * buffer failed, and the caller turns that into MH_ENOMEM.
 */
#include "host/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Thread_local bool mh_mem_refused;

void *mh_mem_default_alloc(void *ud, void *p, size_t on, size_t nn)
{
    MH_UNUSED(ud);
    MH_UNUSED(on);
    if (nn == 0) {
        free(p);
        return NULL;
    }
    void *q = realloc(p, nn);
    if (!q)
        mh_mem_refused = true;
    return q;
}

bool mh_mul_overflows(size_t a, size_t b, size_t *out)
{
    return __builtin_mul_overflow(a, b, out);
}

void *mh_mem_alloc(mh_host *h, size_t n)
{
    if (n == 0)
        n = 1;
    return h->alloc(h->alloc_ud, NULL, 0, n);
}

void *mh_mem_calloc(mh_host *h, size_t count, size_t size)
{
    size_t n;
    if (mh_mul_overflows(count, size, &n))
        return NULL;
    void *p = mh_mem_alloc(h, n);
    if (p)
        memset(p, 0, n);
    return p;
}

void *mh_mem_realloc(mh_host *h, void *p, size_t on, size_t nn)
{
    if (nn == 0)
        nn = 1;
    return h->alloc(h->alloc_ud, p, p ? on : 0, nn);
}

int mh_mem_grow(mh_host *h, void **v, size_t *cap, size_t n, size_t size,
                size_t first)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : first, bytes;
    if (c <= n || mh_mul_overflows(c, size, &bytes))
        return -1;
    void *nv = mh_mem_realloc(h, *v, *cap * size, bytes);
    if (!nv)
        return -1;
    *v = nv;
    *cap = c;
    return 0;
}

void mh_mem_free(mh_host *h, void *p, size_t n)
{
    if (p)
        h->alloc(h->alloc_ud, p, n ? n : 1, 0);
}

char *mh_mem_strndup(mh_host *h, const char *s, size_t n)
{
    char *d = mh_mem_alloc(h, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *mh_mem_strdup(mh_host *h, const char *s)
{
    return mh_mem_strndup(h, s, strlen(s));
}

void mh_mem_strfree(mh_host *h, char *s)
{
    if (s)
        mh_mem_free(h, s, strlen(s) + 1);
}

/* ---- buffers ---------------------------------------------------------- */

void mh_buf_init(mh_buf *b, mh_host *h, size_t max)
{
    b->host = h;
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max ? max : MH_BUF_MAX_DEFAULT;
    b->failed = false;
}

bool mh_buf_reserve(mh_buf *b, size_t extra)
{
    size_t need;
    if (b->failed)
        return false;
    if (__builtin_add_overflow(b->len, extra + 1, &need) || need > b->max) {
        b->failed = true;
        return false;
    }
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > b->max / 2 ? b->max : cap * 2;
    char *p = mh_mem_realloc(b->host, b->data, b->cap, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void mh_buf_add_slow_(mh_buf *b, const char *s, size_t n)
{
    if (!mh_buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mh_buf_vprintf(mh_buf *b, const char *fmt, va_list ap)
{
    char small[256];
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(small, sizeof small, fmt, aq);
    va_end(aq);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        mh_buf_add(b, small, (size_t)n);
        return;
    }
    if (!mh_buf_reserve(b, (size_t)n))
        return;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void mh_buf_printf(mh_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mh_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

const char *mh_buf_str(const mh_buf *b)
{
    return b->data ? b->data : "";
}

void mh_buf_free(mh_buf *b)
{
    mh_mem_free(b->host, b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}
