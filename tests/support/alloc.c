/*
 * alloc.c -- a tracking, fault-injecting allocator with the lua_Alloc
 * contract (mh_alloc_fn).  Each block carries a small header holding its
 * size, so a free or resize that passes the wrong osize is caught at the
 * call that does it, not as a corrupt heap later.
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "test.h"

#define HDR alignof(max_align_t)
#define MAGIC 0x6d68616cu /* "mhal" */

typedef struct {
    size_t size;
    unsigned magic;
} block_hdr;

_Static_assert(sizeof(block_hdr) <= HDR, "header fits in its slot");

void alloc_tracker_init(alloc_tracker *at)
{
    memset(at, 0, sizeof *at);
    pthread_mutex_init(&at->mu, NULL);
}

void alloc_tracker_destroy(alloc_tracker *at)
{
    pthread_mutex_destroy(&at->mu);
}

static block_hdr *header_of(void *ptr, size_t osize)
{
    block_hdr *h = (block_hdr *)((char *)ptr - HDR);
    if (h->magic != MAGIC)
        FAIL("allocator hook: %p was not allocated by this hook", ptr);
    if (h->size != osize)
        FAIL("allocator hook: block %p of %zu bytes released with osize %zu",
             ptr, h->size, osize);
    return h;
}

/* Decide, under the lock, whether this request (for nsize bytes) gets a
 * fault. */
static int inject(alloc_tracker *at, size_t nsize)
{
    if (at->only_size && nsize != at->only_size)
        return 0;
    at->requests++;
    if (at->fail_at <= 0)
        return 0;
    if (at->fail_once ? at->requests == (size_t)at->fail_at
                      : at->requests >= (size_t)at->fail_at &&
                            (at->fail_until <= 0 ||
                             at->requests <= (size_t)at->fail_until)) {
        at->injected++;
        return 1;
    }
    return 0;
}

void *alloc_tracker_fn(void *ud, void *ptr, size_t osize, size_t nsize)
{
    alloc_tracker *at = ud;
    block_hdr *h = NULL;
    void *res = NULL;

    pthread_mutex_lock(&at->mu);
    at->calls++;
    if (ptr)
        h = header_of(ptr, osize);
    if (nsize == 0) {
        if (h) {
            at->outstanding -= h->size;
            at->blocks--;
            h->magic = 0;
            free(h);
        }
        pthread_mutex_unlock(&at->mu);
        return NULL;
    }
    if (nsize > (size_t)-1 - HDR || inject(at, nsize)) {
        pthread_mutex_unlock(&at->mu);
        return NULL; /* ptr, if any, stays valid */
    }
    {
        block_hdr *nh = realloc(h, HDR + nsize);
        if (nh == NULL) {
            pthread_mutex_unlock(&at->mu);
            return NULL;
        }
        if (h) {
            at->outstanding -= osize;
        } else {
            at->blocks++;
        }
        nh->size = nsize;
        nh->magic = MAGIC;
        at->outstanding += nsize;
        res = (char *)nh + HDR;
    }
    pthread_mutex_unlock(&at->mu);
    return res;
}

mh_config tracked_config(alloc_tracker *at, const char *path)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = path;
    cfg.alloc = alloc_tracker_fn;
    cfg.alloc_ud = at;
    return cfg;
}
