/*
 * cache/atomic.h -- files that are either absent, old, or new, whole
 * (mh_atw_*): written to a temporary name in the same directory, fsynced,
 * renamed over the target, and the directory fsynced (or, for a file its
 * reader checks, not fsynced).  A crash or a kill at any point leaves at
 * worst a temporary file, which nothing trusts.
 */
#ifndef MH_CACHE_ATOMIC_H
#define MH_CACHE_ATOMIC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

#include "modhost.h"

struct mh_host;

/* Replace `path` with `len` bytes of data (mode 0600).  Creates missing
 * parent directories with mode 0700.  A host's first write into a
 * directory sweeps it (mh_atw_sweep); later ones do not read it again. */
mh_status mh_atw_write(struct mh_host *h, const char *path, const void *data,
                       size_t len, mh_error **err);

/* The same, without the two fsyncs with MH_ATW_NO_SYNC: for a file whose
 * reader checks it (a checksum) and makes it again, so that a crash can
 * cost it, never mislead a reader.  The rename still makes the file
 * whole or absent for every other process. */
#define MH_ATW_NO_SYNC 1u
mh_status mh_atw_write_ex(struct mh_host *h, const char *path,
                          const void *data, size_t len, unsigned flags,
                          mh_error **err);

/* Read a whole cache file of at most max bytes into host memory (*out,
 * *len; free with mh_mem_free(h, *out, *len ? *len : 1)).  MH_ENOTFOUND
 * if it does not exist; MH_EPATH, logged as a warning, if it is one that
 * another user could have written (mh_sec_file_problem): the caches'
 * files are ours alone, and its writer makes it again. */
mh_status mh_atw_read(struct mh_host *h, const char *path, size_t max,
                      unsigned char **out, size_t *len, mh_error **err);

/* A buffer one kind of reader keeps between reads (the Lua bytecode
 * cache's, per host): memory read into afresh at every import costs its
 * pages anew each time, which some machines charge dearly for
 * (docs/performance.md).  Lent to one read at a time; a read made while
 * it is lent (an import nested in another's load) gets memory of its
 * own.  Files over MH_ATW_KEEP_MAX are read into memory of their own too,
 * so a host keeps at most that much. */
typedef struct mh_atw_buf {
    unsigned char *p;
    size_t cap;
    bool lent;
} mh_atw_buf;
#define MH_ATW_KEEP_MAX (1u << 20)

/* mh_atw_read, into keep's buffer (grown to fit) when it is not lent and
 * the file fits MH_ATW_KEEP_MAX; *out is then keep->p, lent until
 * mh_atw_buf_return.  keep may be NULL: mh_atw_read. */
mh_status mh_atw_read_keep(struct mh_host *h, const char *path, size_t max,
                           mh_atw_buf *keep, unsigned char **out,
                           size_t *len, mh_error **err);
/* Give back what mh_atw_read_keep handed out: keep's buffer is returned
 * to it, anything else freed. */
void mh_atw_buf_return(struct mh_host *h, mh_atw_buf *keep, unsigned char *p,
                       size_t len);
/* Free the kept buffer (not lent). */
void mh_atw_buf_free(struct mh_host *h, mh_atw_buf *keep);

/* mh_atw_read for any file, following symbolic links (module
 * sources). */
mh_status mh_atw_read_file(struct mh_host *h, const char *path, size_t max,
                           unsigned char **out, size_t *len, mh_error **err);

/* Remove the temporary files a writer killed mid-way left in dir: regular
 * files named prefix* and older than MH_ATW_STALE_S (a live writer's are
 * younger).  Nothing ever reads them; this keeps them from piling up. */
#define MH_ATW_STALE_S 600
void mh_atw_sweep(const char *dir, const char *prefix);
/* Is name (fstat'd as st) such a leftover at time now: prefix, a random
 * tail (hex digits and dashes, maybe a SQLite journal's suffix), a
 * regular file of ours, older than MH_ATW_STALE_S?  What mh_atw_sweep
 * removes, and what a prune removes from every part. */
bool mh_atw_leftover(const char *name, const char *prefix,
                     const struct stat *st, time_t now);
/* The same for file's own temporary copies, FILE.tmp-*, in its directory
 * (the names mh_pack and mh_keygen write under before linking). */
void mh_atw_sweep_beside(const char *file);

/* Is this the host's first call for key (a directory, or a file whose
 * leftovers are swept), so that it sweeps?  Remembered for the first
 * MH_ATW_SWEPT keys (interned: compared by pointer); past them, or
 * without the memory to intern, always true. */
bool mh_atw_first_in(struct mh_host *h, const char *key);

#endif /* MH_CACHE_ATOMIC_H */
