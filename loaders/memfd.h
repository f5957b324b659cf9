/*
 * loaders/memfd.h -- loading native code held in memory (mh_mfd_*); see
 * loaders/memfd.c for the memory path, its fallback and deduplication.
 */
#ifndef MH_LOADERS_MEMFD_H
#define MH_LOADERS_MEMFD_H

#include "modhost.h"
#include "finders/finder.h"

struct mh_host;
typedef struct mh_mfd mh_mfd;

/* dlopen the image in b for mod (whose name and origin are set).  MH_OK
 * with the handle and a reference to the image (release it after
 * dlclose), or an error naming the module and its origin. */
mh_status mh_mfd_load(struct mh_host *h, mh_module *mod, const mh_blob *b,
                      void **dl, mh_mfd **ref, mh_error **err);

/* Drop a reference; the last one closes the memfd.  NULL is a no-op. */
void mh_mfd_release(mh_mfd *ref);

#endif /* MH_LOADERS_MEMFD_H */
