/*
 * cache/blobs.h -- the blob cache (mh_blobs_*): <cache_dir>/blobs/<sha256>,
 * copies of modules' native code named by the SHA-256 of their bytes, which
 * the host maps in place of reading the bytes from where a finder keeps
 * them (host/secure.c, mh_sec_open_copy).  The HTTP finder keeps its
 * downloads there; the SQLite finder the modules it read from a database
 * that records their SHA-256 (docs/formats.md), one per content and
 * origin, the origin's newest replacing the one it follows.
 */
#ifndef MH_CACHE_BLOBS_H
#define MH_CACHE_BLOBS_H

#include <stdbool.h>
#include <stddef.h>

#include "modhost.h"

struct mh_host;

/* Is <cache_dir>/blobs private (made, mode 0700, if absent)?  MH_OK, or an
 * error naming the directory; MH_EAGAIN and MH_ENOMEM are passing (a
 * descriptor limit), the rest hold until the cache directory changes. */
mh_status mh_blobs_check(struct mh_host *h, mh_error **err);

/* mh_blobs_check's answer, kept for the host's life (a passing failure is
 * asked again next time; mh_blobs_forget forgets it): true when blobs may
 * be kept.  Traced, not warned: a finder that only saves work with the
 * cache goes on without it. */
bool mh_blobs_ready(struct mh_host *h);

/* <cache_dir>/blobs/<hex> into buf (size bytes): false when it does not
 * fit or hex is not 64 characters.  With a tag (tn bytes, not NUL-ended;
 * NULL for none), <hex>.<16 hex digits of a 64-bit hash of the tag>: one
 * file per content and tag, so that two modules with the same bytes are
 * two files -- two loaded objects, as two files on disk would be. */
bool mh_blobs_path(const struct mh_host *h, const char *hex, const char *tag,
                   size_t tn, char *buf, size_t size);

/* The name, in <cache_dir>/blobs, of the copy an origin record
 * (blobs/origins/<tag>) names: "<sha>.<tag>", sha being the record's 64
 * hex digits and tag the record's own name.  False when it does not fit
 * size bytes.  The one spelling of that rule, for the host that keeps
 * copies and for `cache --prune`, which removes records whose copy went. */
bool mh_blobs_copy_name(const char *sha, const char *tag, char *buf,
                        size_t size);

/* Keep len bytes as the blob at path (from mh_blobs_path; the caller has
 * checked their SHA-256).  A file already there is replaced when
 * `replace` (a damaged copy); else it is kept, and true returned: another
 * host made it meanwhile, and whoever maps it checks it -- so the hosts
 * of a process that raced to make it still map one file, one loaded
 * object.
 * Written atomically, not fsynced (a copy is hashed until a stamp vouches
 * for it, and a stamp syncs it first: cache/stamp.c).  True when kept;
 * failures are traced, the bytes being still at hand where they were
 * read. */
bool mh_blobs_put(struct mh_host *h, const char *path, const void *data,
                  size_t len, bool replace);

/* Look at the directory again at the next use (mh_invalidate_caches). */
void mh_blobs_forget(struct mh_host *h);

#endif /* MH_CACHE_BLOBS_H */
