/*
 * loaders/loader.h -- loaders turn a found spec into a live module.
 *
 * A load is a transaction with two steps the import protocol runs in
 * order: mh_ld_load (open the code, check the ABI; no plugin function has
 * been called) and mh_ld_init (run the module's init).  If either fails,
 * mh_ld_unload undoes everything; fini is never called then.  At host
 * teardown every module's mh_ld_fini runs before any mh_ld_unload.
 */
#ifndef MH_LOADERS_LOADER_H
#define MH_LOADERS_LOADER_H

#include <stdbool.h>

#include "modhost.h"
#include "finders/finder.h"

struct mh_host;

/* Dispatch on spec->kind. */
mh_status mh_ld_load(struct mh_host *h, mh_module *mod, const mh_found *spec,
                     unsigned flags, mh_error **err);
mh_status mh_ld_init(struct mh_host *h, mh_module *mod, mh_error **err);
/* Call the module's fini (if any), once. */
void mh_ld_fini(struct mh_host *h, mh_module *mod);
/* Close the module (no fini). */
void mh_ld_unload(struct mh_host *h, mh_module *mod);
void *mh_ld_symbol(mh_module *mod, const char *symbol);

/* The native loader (loaders/native.c), used by the dispatch above. */
/* From a file: through fd (open, checked) when >= 0, else by path.  fd
 * is taken in every case: kept by the module, or closed once nothing
 * mapped from it remains. */
mh_status mh_nat_load(struct mh_host *h, mh_module *mod, const char *file,
                      int fd, unsigned flags, mh_error **err);
/* The same for an image in memory (checked as ELF, then loaded through
 * loaders/memfd.c). */
mh_status mh_nat_load_blob(struct mh_host *h, mh_module *mod,
                           const mh_blob *b, unsigned flags, mh_error **err);
mh_status mh_nat_init(struct mh_host *h, mh_module *mod, mh_error **err);
void mh_nat_fini(struct mh_host *h, mh_module *mod);
void mh_nat_unload(struct mh_host *h, mh_module *mod);
void *mh_nat_symbol(mh_module *mod, const char *symbol);

/* A JSON call of a native module's MH_CALL function. */
struct cJSON;
mh_status mh_nat_call(mh_module *mod, const char *fn, const struct cJSON *args,
                      struct cJSON **result, mh_error **err);

/* The Lua loader (loaders/lua.c). */
mh_status mh_lua_load(struct mh_host *h, mh_module *mod, const mh_found *spec,
                      mh_error **err);
void mh_lua_unload(struct mh_host *h, mh_module *mod);
/* Does Lua module mod have a function fn, as mh_module_call looks it up
 * (metatables included)?  MH_OK, or MH_ENOSYM naming it. */
mh_status mh_lua_has_function(mh_module *mod, const char *fn,
                              mh_error **err);
void mh_lua_close(struct mh_host *h);

#endif /* MH_LOADERS_LOADER_H */
