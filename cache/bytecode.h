/*
 * cache/bytecode.h -- the Lua bytecode cache (mh_bc_*); the file format
 * and the rules are in cache/bytecode.c.
 */
#ifndef MH_CACHE_BYTECODE_H
#define MH_CACHE_BYTECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/atomic.h"
#include "modhost.h"

struct mh_host;

enum { MH_BC_HASH = 1, MH_BC_STAT = 2 };

/* Bytes of a cache file's header (format 4, LP64), before the bytecode. */
#define MH_BC_HEADER_SIZE 152

/* What the cache entry is checked against.  bytes != NULL: hash mode
 * (sha is the SHA-256 of the bytes, mh_sha256); else stat mode (the other
 * fields).  Either way the origin (the chunk name the bytecode carries)
 * must be the one recorded. */
typedef struct mh_bc_source {
    const char *origin;
    const void *bytes;
    unsigned char sha[32];
    int64_t mtime_sec, mtime_nsec;
    uint64_t size, ino;
    int64_t ctime_sec, ctime_nsec;
    uint64_t dev;
} mh_bc_source;

/* A hit: the cache file as read (host memory, or the reader's kept
 * buffer), its checked bytecode in place.  Given back by
 * mh_bc_chunk_free. */
typedef struct mh_bc_chunk {
    unsigned char *file;
    size_t file_len;
    mh_atw_buf *keep;   /* file may be its buffer, lent */
    const unsigned char *bc;
    size_t bc_len;
} mh_bc_chunk;

typedef enum mh_bc_result {
    MH_BC_HIT,      /* *out holds checked bytecode */
    MH_BC_ABSENT,   /* no usable file */
    MH_BC_STALE,    /* a file, but foreign, damaged or out of date */
    MH_BC_UNSURE    /* stat says current, but too close to call: hash */
} mh_bc_result;

/* This build's cache tag, part of every cache file's name, as CPython's
 * "cpython-311" is of __pycache__/m.cpython-311.pyc: "lua54-4" (Lua 5.4,
 * cache format 4), with the type sizes appended ("-4488": int, size_t,
 * lua_Integer, lua_Number) where they are not 4, 8, 8, 8.  Builds that
 * cannot read each other's files -- another Lua, another format -- then
 * keep apart in a shared cache directory instead of rewriting each
 * other's file on every import. */
#define MH_BC_TAG_SIZE 32
void mh_bc_tag(char out[MH_BC_TAG_SIZE]);

/* Has a stat-mode source been still (mtime and ctime) for the unsure
 * window?  An entry recorded now would then be a sure one. */
bool mh_bc_settled(const mh_bc_source *src);

/* *out is filled on MH_BC_HIT only (else zeroed).  The file is read into
 * keep's buffer where it can be lent (cache/atomic.h); keep may be NULL. */
mh_bc_result mh_bc_load(struct mh_host *h, const char *path,
                        const mh_bc_source *src, mh_atw_buf *keep,
                        mh_bc_chunk *out);
void mh_bc_chunk_free(struct mh_host *h, mh_bc_chunk *c);
mh_status mh_bc_store(struct mh_host *h, const char *path,
                      const mh_bc_source *src, const unsigned char *source_sha,
                      const void *bc, size_t bc_len, mh_error **err);

#endif /* MH_CACHE_BYTECODE_H */
