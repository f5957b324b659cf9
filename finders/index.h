/*
 * finders/index.h -- the HTTP module index, index.json (mh_idx_*).
 *
 * Format 1 (docs/http.md):
 *   {"format": 1, "serial": 1764200000,
 *    "modules": [{"name": "a.b", "kind": "native",
 *     "path": "a/b.so", "size": 1234, "sha256": "<64 hex>"}, ...]}
 * "serial" is optional (older indexes have none): a positive integer
 * that grows with every change, so a client can refuse an older index
 * than the one it has (a rollback).
 * Parsed with cJSON and checked as untrusted input: every field typed,
 * every name valid and unique, every path exactly the name's path (so no
 * path can leave the base URL), sizes within the host's limit.
 */
#ifndef MH_FINDERS_INDEX_H
#define MH_FINDERS_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modhost.h"

struct mh_host;

typedef struct mh_idx_entry {
    const char *name;        /* interned */
    const char *path;        /* interned, relative: "a/b.so" */
    mh_module_kind kind;
    bool binary;             /* "luac": precompiled Lua */
    uint64_t size;
    unsigned char sha256[32];
    const char *manifest;    /* compact JSON, or NULL: the index's own
                                (freed by mh_idx_free) */
} mh_idx_entry;

typedef struct mh_index {
    mh_idx_entry *v;         /* sorted by name (strcmp) */
    size_t n;
    bool manifests;          /* every module's manifest is in the index */
    uint64_t serial;         /* its "serial", or 0 when it has none */
} mh_index;

/* The largest serial: every integer up to it is exact in a JSON number
 * (a double). */
#define MH_IDX_SERIAL_MAX 9007199254740991.0 /* 2^53 - 1 */

/* Is v, a JSON number, a serial (a whole number from 1 to the largest)?
 * Then *out is it.  The one rule for the reader and the writer. */
static inline bool mh_idx_serial(double v, uint64_t *out)
{
    if (!(v >= 1 && v <= MH_IDX_SERIAL_MAX) || v != (double)(uint64_t)v)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* Parse and check.  MH_OK, MH_ENOMEM, or MH_EFORMAT saying what is wrong
 * (`where` names the file or URL in the message). */
mh_status mh_idx_parse(struct mh_host *h, const char *where, const void *json,
                       size_t len, mh_index *out, mh_error **err);
void mh_idx_free(struct mh_host *h, mh_index *idx);

/* The entry of that name, or NULL. */
const mh_idx_entry *mh_idx_get(const mh_index *idx, const char *name);
/* Does any module lie under name. ("pkg" -> "pkg.mod")? */
int mh_idx_has_children(const mh_index *idx, const char *name);

#endif /* MH_FINDERS_INDEX_H */
