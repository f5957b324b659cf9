/*
 * cache/bytecode.c -- the Lua bytecode cache (mh_bc_*), modhost's
 * __pycache__.
 *
 * A cache file is a header and a dumped Lua chunk:
 *
 *     magic "MHLUABC\0", cache format, LUA_VERSION_NUM, sizes of int,
 *     size_t, lua_Integer and lua_Number (a foreign build's file is
 *     ignored), mode (hash or stat), SHA-256 of the source, the source's
 *     nanosecond mtime, size and inode, when the entry was recorded,
 *     bytecode length and the bytecode's 64-bit checksum, the source's
 *     nanosecond ctime and device, and a hash of its origin (format 4);
 *     then the bytecode.
 *
 * Two ways to know it is current, as PEP 552: by hash (the source's
 * SHA-256; the default for sources from databases and the network, whose
 * bytes are in hand anyway) and by stat (mtime, ctime, size, device and
 * inode: no need to read the source at all).  The ctime is the kernel's
 * own -- set at every create, write, rename or utimes, and never set back
 * -- so a file deleted and made again (tar, dpkg, unzip), with the same
 * size and a pinned mtime (reproducible builds), on the inode just freed,
 * is still seen; format 3 compared mtime, size and inode only, and served
 * the old file's bytecode there.  An entry recorded less than two seconds
 * after the later of the source's mtime and ctime is "unsure" -- an edit
 * in the same timestamp tick would not change them -- and is checked by
 * hash instead.
 *
 * Lua does not verify binary chunks, and crafted bytecode can crash the
 * VM, so bytecode is loaded only from these files and only after the
 * header and the bytecode's own checksum check out; anything else is
 * treated as absent and rewritten.  Writes are atomic (cache/atomic.c).
 * A file's name carries its build's tag (mh_bc_tag), so a file another
 * build wrote, which this one could not read, is never at its path.
 * The checksum proves the bytecode whole, not who wrote it (the cache
 * directory's rules do that, loaders/lua.c), so it need only catch
 * damage, on every import from the cache: it is mh_hash_bytes
 * (cache/intern.h), 16 bytes a step, 64 bits (a damaged file passes with
 * odds of about 2^-64), about 7 µs for 60 KB of bytecode where zlib's
 * CRC-32 took 26-36 and a SHA-256 (SHA-NI) 42.  That function is pinned by
 * this format: changing it means a new BC_FORMAT.  Format 1 files (a
 * SHA-256 there) and format 2 (a CRC-32) were named without a tag and
 * are left alone, as are format 3's (tag "lua54-3").
 *
 * A hit hands back the file as read, bytecode in place (no copy), in a
 * buffer the Lua loader keeps between imports where it can (the same
 * pages every time: on a machine where fresh memory is dear, 50-80 µs
 * of a 2,000-line module's 650, docs/performance.md).
 */
#include "host/internal.h"
#include "cache/atomic.h"
#include "cache/bytecode.h"

#include <lua.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BC_MAGIC "MHLUABC"
#define BC_FORMAT 4u
#define BC_MAX_FILE (64u << 20)

typedef struct bc_header {
    char magic[8];
    uint32_t format, lua_version;
    uint8_t sz_int, sz_size, sz_integer, sz_number;
    uint32_t mode;
    unsigned char source_sha[32];
    int64_t mtime_sec, mtime_nsec;
    uint64_t size, ino;
    int64_t recorded_sec, recorded_nsec;
    uint64_t bc_len;
    uint64_t bc_sum;         /* checksum() of the bytecode */
    int64_t ctime_sec, ctime_nsec;
    uint64_t dev;
    uint64_t origin_hash;    /* checksum() of the origin: the chunk name in
                                the bytecode, which its errors show */
} bc_header;

_Static_assert(sizeof(bc_header) == MH_BC_HEADER_SIZE ||
                   sizeof(void *) != 8,
               "the cache header changed: update MH_BC_HEADER_SIZE, the "
               "format number, tests/fuzz/fuzz_bytecode.c's offsets and "
               "the tag tests/test_lua.c expects in file names");

static uint64_t checksum(const void *d, size_t n)
{
    return mh_hash_bytes(d, n);
}

static uint64_t origin_hash(const mh_bc_source *src)
{
    return src->origin ? checksum(src->origin, strlen(src->origin)) : 0;
}

static void header_init(bc_header *hd)
{
    memset(hd, 0, sizeof *hd);
    memcpy(hd->magic, BC_MAGIC, sizeof BC_MAGIC);
    hd->format = BC_FORMAT;
    hd->lua_version = LUA_VERSION_NUM;
    hd->sz_int = sizeof(int);
    hd->sz_size = sizeof(size_t);
    hd->sz_integer = sizeof(lua_Integer);
    hd->sz_number = sizeof(lua_Number);
}

void mh_bc_tag(char out[MH_BC_TAG_SIZE])
{
    int n = snprintf(out, MH_BC_TAG_SIZE, "lua%d%d-%u", LUA_VERSION_NUM / 100,
                     LUA_VERSION_NUM % 100, BC_FORMAT);
    if (n > 0 && n < MH_BC_TAG_SIZE &&
        !(sizeof(int) == 4 && sizeof(size_t) == 8 &&
          sizeof(lua_Integer) == 8 && sizeof(lua_Number) == 8))
        n += snprintf(out + n, MH_BC_TAG_SIZE - (size_t)n, "-%zu%zu%zu%zu",
                      sizeof(int), sizeof(size_t), sizeof(lua_Integer),
                      sizeof(lua_Number));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    /* Lua's header tells byte orders apart, so a big-endian build reading
     * a little-endian one's file would take it for damage and write it
     * again at every import (a home shared between machines). */
    if (n > 0 && n < MH_BC_TAG_SIZE)
        snprintf(out + n, MH_BC_TAG_SIZE - (size_t)n, "-be");
#endif
}

void mh_bc_chunk_free(mh_host *h, mh_bc_chunk *c)
{
    mh_atw_buf_return(h, c->keep, c->file, c->file_len);
    memset(c, 0, sizeof *c);
}

/* Was (rsec, rnsec) within the unsure window of the source's last change
 * (mtime or ctime)? */
static bool changed_lately(int64_t rsec, int64_t rnsec, int64_t msec,
                           int64_t mnsec, int64_t csec, int64_t cnsec)
{
    return mh_io_age_unsure(rsec, rnsec, msec, mnsec) ||
           mh_io_age_unsure(rsec, rnsec, csec, cnsec);
}

bool mh_bc_settled(const mh_bc_source *src)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return !changed_lately(t.tv_sec, t.tv_nsec, src->mtime_sec,
                           src->mtime_nsec, src->ctime_sec, src->ctime_nsec);
}

mh_bc_result mh_bc_load(mh_host *h, const char *path, const mh_bc_source *src,
                        mh_atw_buf *keep, mh_bc_chunk *out)
{
    unsigned char *file = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    if (mh_atw_read_keep(h, path, BC_MAX_FILE, keep, &file, &len, NULL) !=
        MH_OK)
        return MH_BC_ABSENT;
    bc_header hd, want;
    header_init(&want);
    mh_bc_result r = MH_BC_STALE;
    if (len < sizeof hd)
        goto out; /* truncated: ignored, rewritten */
    memcpy(&hd, file, sizeof hd);
    if (memcmp(hd.magic, want.magic, sizeof hd.magic) != 0 ||
        hd.format != want.format || hd.lua_version != want.lua_version ||
        hd.sz_int != want.sz_int || hd.sz_size != want.sz_size ||
        hd.sz_integer != want.sz_integer || hd.sz_number != want.sz_number ||
        hd.bc_len != len - sizeof hd)
        goto out; /* foreign or damaged */
    if (checksum(file + sizeof hd, (size_t)hd.bc_len) != hd.bc_sum)
        goto out; /* damaged bytecode: never given to Lua */

    /* A tree moved (the cache beside its sources moves with it) keeps
     * stat and hash: the bytecode would name the old path in errors. */
    bool current = hd.origin_hash == origin_hash(src);
    if (current && src->bytes) { /* hash mode: the bytes are in hand */
        current = memcmp(hd.source_sha, src->sha, 32) == 0;
    } else if (current) {
        current = hd.mode == MH_BC_STAT && hd.mtime_sec == src->mtime_sec &&
                  hd.mtime_nsec == src->mtime_nsec &&
                  hd.ctime_sec == src->ctime_sec &&
                  hd.ctime_nsec == src->ctime_nsec && hd.size == src->size &&
                  hd.dev == src->dev && hd.ino == src->ino;
        if (current &&
            changed_lately(hd.recorded_sec, hd.recorded_nsec, hd.mtime_sec,
                           hd.mtime_nsec, hd.ctime_sec, hd.ctime_nsec)) {
            r = MH_BC_UNSURE; /* the caller hashes the source and retries */
            goto out;
        }
    }
    if (!current)
        goto out;
    out->file = file;
    out->file_len = len;
    out->keep = keep;
    out->bc = file + sizeof hd;
    out->bc_len = (size_t)hd.bc_len;
    return MH_BC_HIT;
out:
    mh_atw_buf_return(h, keep, file, len);
    return r;
}

mh_status mh_bc_store(mh_host *h, const char *path, const mh_bc_source *src,
                      const unsigned char *source_sha, const void *bc,
                      size_t bc_len, mh_error **err)
{
    bc_header hd;
    if (bc_len > BC_MAX_FILE - sizeof hd) { /* mh_bc_load would not read it */
        MH_TRACE(h, "lua: %zu bytes of bytecode, over the cache's limit of "
                 "%u MiB: not cached (%s)", bc_len, BC_MAX_FILE >> 20, path);
        return MH_OK;
    }
    header_init(&hd);
    hd.mode = src->bytes ? MH_BC_HASH : MH_BC_STAT;
    memcpy(hd.source_sha, source_sha, 32);
    hd.mtime_sec = src->mtime_sec;
    hd.mtime_nsec = src->mtime_nsec;
    hd.size = src->size;
    hd.ino = src->ino;
    hd.ctime_sec = src->ctime_sec;
    hd.ctime_nsec = src->ctime_nsec;
    hd.dev = src->dev;
    hd.origin_hash = origin_hash(src);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    hd.recorded_sec = now.tv_sec;
    hd.recorded_nsec = now.tv_nsec;
    hd.bc_len = bc_len;
    hd.bc_sum = checksum(bc, bc_len);
    size_t total = sizeof hd + bc_len;
    unsigned char *buf = mh_mem_alloc(h, total);
    if (!buf)
        return mh_err(h, err, MH_ENOMEM, "out of memory caching bytecode");
    memcpy(buf, &hd, sizeof hd);
    memcpy(buf + sizeof hd, bc, bc_len);
    /* Not fsynced: what a crash leaves torn fails its checksum, and is
     * compiled and written again (as CPython's .pyc files, unsynced). */
    mh_status rc = mh_atw_write_ex(h, path, buf, total, MH_ATW_NO_SYNC, err);
    mh_mem_free(h, buf, total);
    return rc;
}
