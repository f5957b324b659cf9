/*
 * host/import.c -- the import protocol, and what a loaded module offers.
 *
 *   1. Fast path: the name is already interned and its module READY: one
 *      lock-free hash lookup, no allocation, no system call.
 *   2. Check the name against the grammar (MH_EBADNAME before any I/O) and
 *      intern it.
 *   3. Claim the registry entry (cache/registry.c): or wait for the thread
 *      that owns it, or fail on a cycle.
 *   4. Find: walk the search path (host/find.c).
 *   5. Read the metadata (no code runs) and admit the module: its ABI,
 *      the host version it needs, its requirements imported first
 *      (host/meta.c).
 *   6. Load and check the ABI, then init (loaders/): a failure at any step
 *      undoes the earlier ones, and the entry is abandoned so that a later
 *      import starts over.
 *   7. Publish: READY, visible to the fast path, in the fini order.
 */
#include "host/internal.h"
#include "finders/finder.h"
#include "host/meta.h"
#include "host/secure.h"
#include "loaders/loader.h"
#include "loaders/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Open module file f->file (native code, Lua source or bytecode) into
 * f->fd and check it may be loaded (host/secure.c); f->fd_* are then its
 * identity. */
static mh_status open_checked(mh_host *h, const char *name, mh_found *f,
                              mh_error **err)
{
    int fd = -1;
    struct stat st = {.st_size = -1};
    mh_error *e = NULL;
    mh_status rc = mh_fault(h, "open")
                       ? mh_err(h, &e, MH_EIO, "cannot open %s: %s", f->file,
                                strerror(EIO))
                       : mh_sec_open_code_stat(h, f->file, &fd, &st, &e);
    if (rc != MH_OK) {
        rc = mh_err(h, err, rc, "module '%s' not loaded: %s", name,
                    mh_error_message(e));
        mh_error_free(e);
        return rc;
    }
    f->fd = fd;
    f->fd_size = (long long)st.st_size;
    f->fd_dev = st.st_dev;
    f->fd_ino = st.st_ino;
    f->fd_mtim = st.st_mtim;
    f->fd_ctim = st.st_ctim;
    return MH_OK;
}

/* A finder's local copy of the module's bytes (a download cache), mapped
 * in place of reading them when it checks out (host/secure.h): then f
 * names it as its file, opened (f->from_copy).  Else the bytes are read
 * from the finder, which fetches them again if it must. */
static void open_copy(mh_host *h, const char *name, mh_found *f)
{
    int fd;
    long long size;
    const char *why;
    /* A copy a signature vouches for is hashed every time: its promise
     * must not rest on the stamps in the cache directory. */
    if (mh_sec_open_copy(h, f->copy, f->copy_sha256, h->max_module_size,
                         !f->trusted, &fd, &size, &why) != MH_OK) {
        MH_TRACE(h, "import '%s': not using the copy %s: %s", name, f->copy,
                 why);
        return;
    }
    MH_TRACE(h, "import '%s': mapping the verified copy %s", name, f->copy);
    f->file = f->copy;
    f->fd = fd;
    f->fd_size = size;
    f->from_copy = true;
}

/* A failure that is the module's own (and stays until it changes), as
 * opposed to a missing file, a busy database, memory or a cycle. */
static bool own_fault(mh_status rc)
{
    /* Not MH_ELOAD: dlopen also fails for passing reasons (memory, a
     * descriptor limit), and a missing library may be installed later. */
    return rc == MH_EFORMAT || rc == MH_EABI || rc == MH_EVERSION ||
           rc == MH_ENODESC || rc == MH_EINIT;
}

/* mh_import/mh_import_ex called wrongly: the error (*out is NULL). */
static __attribute__((cold, noinline)) mh_status
bad_import_args(mh_host *host, const char *name, unsigned flags,
                mh_module **out, mh_error **err)
{
    if (!out)
        return mh_err(host, err, MH_EINVAL, "mh_import: out is NULL");
    *out = NULL;
    if (!host || !name)
        return mh_err(host, err, MH_EINVAL, "mh_import: %s is NULL",
                      mh_null_name(2, host, "host", name, "name"));
    return mh_err(host, err, MH_EINVAL,
                  "mh_import_ex: unknown flags 0x%x for '%s'",
                  flags & ~MH_IMPORT_PLAIN, name);
}

static __attribute__((noinline)) mh_status
import_slow(mh_host *h, const char *name, size_t len, unsigned flags,
            mh_module **out, mh_error **err)
{
    MH_BUSY(h);
    mh_status rc = mh_name_check(name, err);
    if (rc != MH_OK)
        return rc;
    if (atomic_load(&h->closing))
        return mh_err(h, err, MH_EINVAL, "cannot import '%s': the host is "
                      "being freed", name);
    if (mh_in_log_hook(h))
        return mh_entry_check(h, "mh_import", 0, err);
    const char *iname = mh_int_str(h, name, len);
    if (!iname)
        return mh_err(h, err, MH_ENOMEM, "out of memory importing '%s'", name);
    /* Guards before the stack runs out (each level takes some: the
     * import, its loader, a Lua chunk's frames), checked before the name
     * is claimed, which another thread could be waiting for: a chain of
     * modules each importing the next while it loads (a cycle through
     * ever new names?) stops at a depth, or earlier where the thread's
     * stack runs short.  A module loaded meanwhile is still answered. */
    size_t left = 0, reserve = 0;
    bool deep = mh_reg_depth() >= MH_IMPORT_DEPTH_MAX;
    if (deep || mh_reg_stack_short(&left, &reserve)) {
        mh_module *ready = mh_reg_lookup(h, name, len);
        if (ready) {
            *out = ready;
            return MH_OK;
        }
        const char *from = mh_reg_current_name();
        if (deep)
            return mh_err(h, err, MH_ECYCLE, "cannot import '%s' from '%s': "
                          "imports nested %d deep, the limit (each module "
                          "importing the next while it loads)", iname, from,
                          MH_IMPORT_DEPTH_MAX);
        return mh_err(h, err, MH_ECYCLE, "cannot import '%s' from '%s': "
                      "%zu KiB of this thread's stack left, and an import "
                      "may need %zu (imports nested %d deep, each module "
                      "importing the next while it loads)", iname,
                      from ? from : "(no module)", left / 1024,
                      reserve / 1024, mh_reg_depth());
    }

    mh_module *mod;
    switch (mh_reg_claim(h, iname, &mod, &rc, err)) {
    case MH_CLAIM_READY:
        *out = mod;
        return MH_OK;
    case MH_CLAIM_ERROR:
        return rc;
    case MH_CLAIM_OWNED:
        break;
    }

    /* This thread owns the entry: find, load, init, with no lock held. */
    mh_error *e = NULL;
    mh_found f;
    mh_reg_enter(mod);
    MH_TRACE(h, "import '%s': not loaded; searching the path", iname);
    rc = mh_find_spec_transient(h, iname, &f, &e);
    bool found = rc == MH_OK, fetch_failed = false;
    if (rc == MH_ENOTFOUND) { /* the name itself: Lua's require asks */
        mh_reg_set_missing(iname);
        mod->flight->name_missing = true; /* and so may a waiter's */
    }
    mh_manifest *man = NULL;
    mh_blob image = {0};
    if (rc == MH_OK) {
        mod->finder = f.finder;
        mod->flight->origin = f.origin; /* for messages, until released */
        if (mh_reg_set_origin(h, mod, f.origin) != MH_OK)
            rc = mh_err(h, &e, MH_ENOMEM, "out of memory importing '%s'",
                        iname);
    }
    if (rc == MH_OK) {
        /* A module file is opened once: checked (owner, mode, the
         * directories above it), its metadata read (a native one's note),
         * and mapped or compiled, all through this descriptor -- a file
         * swapped in between is never the one loaded, nor the one a
         * failure is recorded against. */
        if ((f.kind == MH_KIND_NATIVE || f.kind == MH_KIND_LUA) && f.file)
            rc = open_checked(h, iname, &f, &e);
        else if (f.kind == MH_KIND_NATIVE && f.copy)
            open_copy(h, iname, &f);
    }
    if (rc == MH_OK && f.kind == MH_KIND_NATIVE && f.pre.data) {
        image = f.pre; /* read with the find: checked below, not again */
        f.pre = (mh_blob){0};
    }
    if (rc == MH_OK) {
        /* Metadata first: no code of the module runs before its ABI,
         * host version and requirements are checked. */
        rc = mh_meta_of(h, iname, &f, MH_META_TEXT_LATER, &man,
                        f.kind == MH_KIND_NATIVE && !f.file ? &image : NULL,
                        &fetch_failed, &e);
    }
    if (rc == MH_OK)
        rc = mh_meta_check(h, iname, f.origin, man, &e);
    mh_found as_found = f; /* what discovery knows the module by */
    if (found && f.from_copy)
        as_found.file = NULL;
    if (found && !fetch_failed && rc != MH_OK && e && own_fault(rc))
        mh_discover_record(h, iname, &as_found, e, false);
    if (rc == MH_OK)
        rc = mh_meta_require(h, iname, man, &e);
    if (rc == MH_OK) {
        f.image = image.data ? &image : NULL;
        if ((h->flags & MH_CONFIG_PROBE) && f.kind == MH_KIND_NATIVE)
            rc = mh_probe_native(h, iname, &f, &e); /* in a child first */
        if (rc == MH_OK) {
            rc = mh_ld_load(h, mod, &f, flags, &e);
            if (f.kind == MH_KIND_NATIVE && f.file)
                f.fd = -1; /* the native loader took it */
        }
        if (rc == MH_OK) {
            rc = mh_ld_init(h, mod, &e);
            if (rc != MH_OK)
                mh_ld_unload(h, mod);
        }
        if (rc != MH_OK && e && own_fault(rc) && !mod->dep_failed)
            mh_discover_record(h, iname, &as_found, e, true);
    }
    mh_blob_free(h, &image); /* the loader keeps its own copy */
    if (found && f.fd >= 0)
        close(f.fd); /* not taken by a loaded module */
    if (found) {
        mod->flight->origin = NULL;
        mh_found_release(h, &f);
    }
    if (rc == MH_OK && strcmp(man->source, "none") != 0 &&
        !mh_meta_keep_note(mod, man)) {
        mod->manifest = man;
        man = NULL;
    }
    mh_manifest_free(man);
    mh_reg_leave(mod);
    if (rc != MH_OK) {
        if (!e) /* every failing step reports; this is a safety net */
            mh_err(h, &e, rc, "import of module '%s' failed: %s", iname,
                   mh_strerror(rc));
        MH_TRACE(h, "import '%s': failed: %s", iname, mh_error_message(e));
        return mh_reg_abandon(h, mod, e, err);
    }
    mh_reg_publish(h, mod);
    MH_TRACE(h, "import '%s': ready (%s, from %s)", iname,
             mh_module_kind_name(mod->kind), mh_reg_where(mod));
    if (atomic_load_explicit(&h->dx_failures, memory_order_relaxed))
        mh_discover_loaded(h, iname, mh_module_origin(mod));
    *out = mod;
    return MH_OK;
}

/* The whole of an import of a loaded module: argument checks, strlen,
 * one inline lock-free lookup.  Everything else is import_slow's, out of
 * line, so the hit pays for no registers it does not use. */
static inline __attribute__((always_inline)) mh_status
import_entry(mh_host *host, const char *name, unsigned flags,
             mh_module **out, mh_error **err)
{
    if (__builtin_expect(!out || !host || !name || (flags & ~MH_IMPORT_PLAIN),
                         0))
        return bad_import_args(host, name, flags, out, err);
    *out = NULL;
    size_t len = strlen(name);
    mh_module *mod = mh_int_module(&host->intern, name, len);
    if (__builtin_expect(mod != NULL, 1)) {
        *out = mod;
        return MH_OK;
    }
    return import_slow(host, name, len, flags, out, err);
}

mh_status mh_import_ex(mh_host *host, const char *name, unsigned flags,
                       mh_module **out, mh_error **err)
{
    return import_entry(host, name, flags, out, err);
}

mh_status mh_import(mh_host *host, const char *name, mh_module **out,
                    mh_error **err)
{
    return import_entry(host, name, 0, out, err);
}

/* ---- modules ------------------------------------------------------------ */

const char *mh_module_kind_name(mh_module_kind kind)
{
    switch (kind) {
    case MH_KIND_NATIVE: return "native";
    case MH_KIND_PLAIN: return "plain";
    case MH_KIND_NAMESPACE: return "namespace";
    case MH_KIND_LUA: return "lua";
    }
    return "unknown";
}

void *mh_module_symbol(mh_module *mod, const char *symbol)
{
    if (!mod || !symbol)
        return NULL;
    return mh_ld_symbol(mod, symbol);
}

mh_status mh_module_symbol_ex(mh_module *mod, const char *symbol, void **out,
                              mh_error **err)
{
    if (!out)
        return mh_err(NULL, err, MH_EINVAL, "mh_module_symbol_ex: out is NULL");
    *out = NULL;
    if (!mod || !symbol)
        return mh_err(NULL, err, MH_EINVAL,
                      "mh_module_symbol_ex: %s is NULL",
                      mh_null_name(2, mod, "mod", symbol, "symbol"));
    *out = mh_ld_symbol(mod, symbol);
    if (*out)
        return MH_OK;
    /* Listed with no address (a weak symbol not linked in): no export to
     * give, but not "no such name" either. */
    for (size_t i = 0; mod->desc && i < mod->nexports; i++)
        if (strcmp(mod->desc->exports[i].name, symbol) == 0)
            return mh_err(mod->host, err, MH_ENOSYM, "module '%s' (%s) "
                          "lists export '%s' with a NULL address",
                          mod->name, mh_reg_where(mod), symbol);
    return mh_err(mod->host, err, MH_ENOSYM,
                  "module '%s' (%s) has no export '%s'%s", mod->name,
                  mh_reg_where(mod), symbol,
                  mod->kind == MH_KIND_NAMESPACE
                      ? ": it is a namespace package, with no code"
                  : mod->kind == MH_KIND_LUA
                      ? ": it is a Lua module, whose functions have no C "
                        "address (call them with mh_module_call, or "
                        "`modhost call`)"
                      : "");
}

const char *mh_module_name(const mh_module *mod)
{
    return mod ? mod->name : NULL;
}

const char *mh_module_origin(const mh_module *mod)
{
    return mod ? mh_reg_origin(mod) : NULL;
}

const char *mh_module_finder(const mh_module *mod)
{
    return mod ? mod->finder : NULL;
}

mh_module_kind mh_module_kind_of(const mh_module *mod)
{
    return mod ? mod->kind : MH_KIND_NAMESPACE;
}

const char *mh_module_version(const mh_module *mod)
{
    return mod ? mh_meta_module_version(mod) : NULL;
}

size_t mh_module_export_count(const mh_module *mod)
{
    return mod ? mod->nexports : 0;
}

const char *mh_module_export_name(const mh_module *mod, size_t i)
{
    if (!mod || !mod->desc || i >= mod->nexports)
        return NULL;
    return mod->desc->exports[i].name;
}
