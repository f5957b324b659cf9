/*
 * tests/fuzz/fuzz_discovery.c -- the discovery index file
 * (cache/discovery.c): <cache dir>/discovery.db, a SQLite file a crash,
 * a disk error or another version may have left in any state.
 *
 * The input is written as the index of a host whose cache directory is
 * the process's own (emptied first).  The index is opened as discovery
 * opens it (mh_dx_open, then every row, in any order and by name), then
 * through the public calls: mh_host_failures, mh_host_clear_failures of
 * one name and of all (after which none may be listed but this host's
 * ABI and version verdicts, which are not recorded), and mh_discover
 * on an empty search path, which may rebuild a damaged file.  A damaged
 * or foreign file must be replaced, never trusted, never crash.
 */
#include "fuzz.h"
#include "cache/discovery.h"

#include <stdio.h>
#include <string.h>

static int on_row(void *ud, const mh_dx_row *r)
{
    size_t *n = ud;
    FZ_CHECK(r->origin && r->identity && r->name && r->source,
             "a row with a NULL key field was handed out");
    (void)strlen(r->origin);
    if (r->manifest)
        (void)strlen(r->manifest);
    if (r->reason)
        (void)strlen(r->reason);
    (*n)++;
    return 0;
}

static int on_failure(void *ud, const mh_failure *f)
{
    size_t *n = ud;
    FZ_CHECK(f->name && f->origin, "a failure without name or origin");
    FZ_CHECK(f->status != MH_OK, "a failure with status 0");
    if (f->reason)
        (void)strlen(f->reason);
    /* This host's verdict on a stored manifest (ABI, version) is made at
     * each call, not recorded: clearing does not remove it. */
    if (f->status != MH_EABI && f->status != MH_EVERSION)
        (*n)++;
    return 0;
}

static int on_meta(void *ud, const mh_module_meta *m)
{
    (void)ud;
    (void)m;
    FZ_CHECK(0, "an empty search path discovered a module");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char cache[4096], db[4200];
    snprintf(cache, sizeof cache, "%s", fz_path("dxcache"));
    fz_empty_dir(cache);
    snprintf(db, sizeof db, "%s/" MH_DX_FILE, cache);
    fz_write_file(db, data, size);

    fz_alloc a;
    mh_host *h = fz_host_new(NULL, 0, cache, &a);
    FZ_CHECK(h != NULL, "host");

    mh_dx *dx = mh_dx_open(h, false, NULL);
    if (dx) {
        size_t all = 0, by_name = 0;
        int r1 = mh_dx_each(dx, false, on_row, &all);
        int r2 = mh_dx_each(dx, true, on_row, &by_name);
        FZ_CHECK(r1 == 0 || r1 == -1, "each: %d", r1);
        FZ_CHECK(r2 == 0 || r2 == -1, "each: %d", r2);
        if (r1 == 0 && r2 == 0)
            FZ_CHECK(by_name == all, "%zu rows by name, %zu in all",
                     by_name, all);
        (void)mh_dx_damaged(dx);
        mh_dx_close(dx);
    }

    mh_error *err = NULL;
    size_t listed = 0, cleared = 0;
    mh_status st = mh_host_failures(h, on_failure, &listed, &err);
    FZ_CHECK(st == MH_OK || st == MH_EIO || st == MH_ENOMEM ||
                 st == MH_EAGAIN, "failures: %d", (int)st);
    mh_error_free(err);
    err = NULL;
    st = mh_host_clear_failures(h, "codecs.rot13", &cleared, &err);
    mh_error_free(err);
    err = NULL;
    st = mh_host_clear_failures(h, NULL, &cleared, &err);
    mh_error_free(err);
    err = NULL;
    if (st == MH_OK) {
        listed = 0;
        if (mh_host_failures(h, on_failure, &listed, &err) == MH_OK)
            FZ_CHECK(listed == 0, "%zu failures listed after clearing all",
                     listed);
        mh_error_free(err);
        err = NULL;
    }
    mh_discover(h, on_meta, NULL, &err);
    mh_error_free(err);
    fz_host_free(h, &a);
    return 0;
}
