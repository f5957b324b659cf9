/*
 * tests/fuzz/fuzz_bytecode.c -- the Lua bytecode cache file reader
 * (cache/bytecode.c, mh_bc_load): header, checksum, freshness rules.
 *
 * The input is written as a cache file and loaded against several
 * sources: fixed ones, and ones made from the input's own header fields
 * (so the fuzzer gets past the freshness checks to the age and hit
 * paths; the offsets are those of bc_header on LP64, see
 * cache/bytecode.c, whose size is MH_BC_HEADER_SIZE (checked there when
 * it is compiled) -- if the layout changes the target still runs, it
 * only reaches less).  A hit must hand back exactly the bytes after the
 * header.  Then the input is stored as bytecode (mh_bc_store) and must
 * load back identical, by hash and by stat.
 */
#include "fuzz.h"
#include "cache/bytecode.h"
#include "host/internal.h"

#include <stdio.h>
#include <string.h>

#define HDR_SIZE MH_BC_HEADER_SIZE
#define OFF_SOURCE_SHA 24
#define OFF_MTIME 56     /* mtime_sec, mtime_nsec, size, ino: 8 bytes each */
#define OFF_CTIME 120    /* ctime_sec, ctime_nsec, dev, origin_hash: 8
                            bytes each */

static uint64_t u64_at(const uint8_t *d, size_t off)
{
    uint64_t v;
    memcpy(&v, d + off, 8);
    return v;
}

static void load(mh_host *h, const char *path, const mh_bc_source *src,
                 const uint8_t *data, size_t size)
{
    mh_bc_chunk c;
    mh_bc_result r = mh_bc_load(h, path, src, NULL, &c);
    FZ_CHECK(r == MH_BC_HIT || r == MH_BC_ABSENT || r == MH_BC_STALE ||
                 r == MH_BC_UNSURE,
             "result %d", (int)r);
    FZ_CHECK((r == MH_BC_HIT) == (c.bc != NULL), "bytecode %p for result %d",
             (const void *)c.bc, (int)r);
    if (r == MH_BC_UNSURE)
        FZ_CHECK(!src->bytes, "unsure in hash mode");
    if (c.bc) {
        FZ_CHECK(size >= HDR_SIZE && c.bc_len == size - HDR_SIZE &&
                     memcmp(c.bc, data + HDR_SIZE, c.bc_len) == 0,
                 "a hit of %zu bytes from a %zu-byte file", c.bc_len, size);
        mh_bc_chunk_free(h, &c);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_alloc a;
    mh_host *h = fz_host_new(NULL, 0, NULL, &a);
    FZ_CHECK(h != NULL, "host");
    char path[4096];
    snprintf(path, sizeof path, "%s", fz_path("cache/lua/fuzz.mhc"));
    fz_empty_dir(fz_path("cache/lua"));
    fz_write_file(path, data, size);

    static const char source[] = "return {answer = 42}\n";
    mh_bc_source by_hash = {.bytes = source};
    FZ_CHECK(mh_sha256(source, sizeof source - 1, by_hash.sha),
             "hashing the source");
    by_hash.size = sizeof source - 1;
    load(h, path, &by_hash, data, size);

    mh_bc_source by_stat = {.mtime_sec = 1700000000, .size = 21, .ino = 2,
                            .ctime_sec = 1700000000, .dev = 3};
    load(h, path, &by_stat, data, size);

    if (size >= HDR_SIZE) { /* sources the file says it is current for */
        mh_bc_source own_hash = {.bytes = source};
        memcpy(own_hash.sha, data + OFF_SOURCE_SHA, 32);
        load(h, path, &own_hash, data, size);
        mh_bc_source own_stat = {
            .mtime_sec = (int64_t)u64_at(data, OFF_MTIME),
            .mtime_nsec = (int64_t)u64_at(data, OFF_MTIME + 8),
            .size = u64_at(data, OFF_MTIME + 16),
            .ino = u64_at(data, OFF_MTIME + 24),
            .ctime_sec = (int64_t)u64_at(data, OFF_CTIME),
            .ctime_nsec = (int64_t)u64_at(data, OFF_CTIME + 8),
            .dev = u64_at(data, OFF_CTIME + 16)};
        load(h, path, &own_stat, data, size);
    }

    /* Written by the host, read back the same. */
    char out[4096];
    snprintf(out, sizeof out, "%s", fz_path("cache/lua/stored.mhc"));
    mh_error *err = NULL;
    FZ_CHECK(mh_bc_store(h, out, &by_hash, by_hash.sha, data, size, &err) ==
                 MH_OK,
             "store: %s", mh_error_message(err));
    mh_bc_chunk c;
    FZ_CHECK(mh_bc_load(h, out, &by_hash, NULL, &c) == MH_BC_HIT &&
                 c.bc_len == size && (!size || memcmp(c.bc, data, size) == 0),
             "stored by hash, not loaded back");
    mh_bc_chunk_free(h, &c);
    /* By stat, with an mtime long before now: a sure hit. */
    FZ_CHECK(mh_bc_store(h, out, &by_stat, by_hash.sha, data, size, &err) ==
                 MH_OK,
             "store: %s", mh_error_message(err));
    FZ_CHECK(mh_bc_load(h, out, &by_stat, NULL, &c) == MH_BC_HIT &&
                 c.bc_len == size && (!size || memcmp(c.bc, data, size) == 0),
             "stored by stat, not loaded back");
    mh_bc_chunk_free(h, &c);

    fz_host_free(h, &a);
    return 0;
}
