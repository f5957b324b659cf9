/*
 * loaders/native.c -- the native loader: shared objects through dlopen.
 *
 * Order of a load, and why:
 *   1. dlopen(RTLD_NOW | RTLD_LOCAL): every symbol resolved up front, so a
 *      missing dependency fails here and not at the first call; LOCAL so
 *      two plugins may define the same symbol without one seeing the
 *      other's.  dlerror() text is copied at once: it belongs to the C
 *      library and the next dl call replaces it.
 *   2. dlsym the descriptor.  None: refused (MH_ENODESC) unless the caller
 *      asked for a plain symbol module.
 *   3. Check abi_version and size before any function pointer in the
 *      descriptor is followed.
 *   4. init, with the host API table, and no lock held.  A refusal closes
 *      the handle; fini is never called after a failed init.
 * ELF constructors in the object do run at dlopen, before step 3; the SDK
 * never generates any.
 */
#include "host/internal.h"
#include "host/jsonnum.h"
#include "loaders/elf.h"
#include "loaders/loader.h"
#include "loaders/memfd.h"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_EXPORTS 65536u
_Static_assert(MAX_EXPORTS - 1 <= UINT16_MAX, "mh_module.nexports");

/* `where` for a message; NULL: the module's origin, built only then. */
static const char *shown(const mh_module *mod, const char *where)
{
    return where ? where : mh_reg_where(mod);
}

/* Steps 2-3 on an open handle: descriptor and ABI.  On failure the
 * handle is closed.  `where` is what users know the file as (NULL: its
 * origin). */
static mh_status nat_check(mh_host *h, mh_module *mod, void *dl,
                           const char *where, unsigned flags, mh_error **err)
{
    dlerror();
    const mh_plugin_desc *d = dlsym(dl, MH_PLUGIN_DESCRIPTOR_SYMBOL);
    /* What the symbol is, from the object's own symbol table: dlsym also
     * searches the object's dependencies, and a library linked against a
     * plugin would otherwise pass for that plugin -- its descriptor, its
     * init run a second time.  A function, or data smaller than a
     * descriptor, must not be read as one.  A symbol of no type and no
     * size (hand-written assembly without .type and .size), or an object
     * whose table cannot be read, says nothing: taken as it was before. */
    unsigned type = STT_NOTYPE;
    size_t bytes = 0;
    int own = d ? mh_elf_symbol_of(dl, MH_PLUGIN_DESCRIPTOR_SYMBOL, d, &type,
                                   &bytes)
                : -1;
    char theirs[PATH_MAX + 64] = "";
    if (own == 0) {
        Dl_info di; /* the dependency's file: its name says most */
        snprintf(theirs, sizeof theirs, " of its own (the one it sees is "
                 "%s's)", dladdr(d, &di) && di.dli_fname ? di.dli_fname
                                                        : "a dependency");
        d = NULL;
    }
    if (!d) {
        if (flags & MH_IMPORT_PLAIN) {
            mod->kind = MH_KIND_PLAIN;
            mod->dl = dl;
            MH_TRACE(h, "%s: loaded %s as a plain library (no descriptor)",
                     mod->name, shown(mod, where));
            return MH_OK;
        }
        dlclose(dl);
        return mh_err(h, err, MH_ENODESC,
                      "module '%s' (%s) is not a modhost plugin: it has no "
                      "'%s' symbol%s; import it with MH_IMPORT_PLAIN "
                      "(--plain on the command line) to use it as a plain "
                      "library",
                      mod->name, shown(mod, where),
                      MH_PLUGIN_DESCRIPTOR_SYMBOL, theirs);
    }
    if (own == 1) {
        bool code = type == STT_FUNC || type == STT_GNU_IFUNC;
        if (code || (bytes && bytes < offsetof(mh_plugin_desc, reserved))) {
            dlclose(dl);
            if (code)
                return mh_err(h, err, MH_EFORMAT, "module '%s' (%s): its "
                              "'%s' is not a descriptor but a function; was "
                              "it made with MH_PLUGIN()?", mod->name,
                              shown(mod, where), MH_PLUGIN_DESCRIPTOR_SYMBOL);
            return mh_err(h, err, MH_EFORMAT, "module '%s' (%s): its '%s' is "
                          "%zu bytes, too small for a descriptor (%zu); was "
                          "it made with MH_PLUGIN()?", mod->name,
                          shown(mod, where), MH_PLUGIN_DESCRIPTOR_SYMBOL,
                          bytes, offsetof(mh_plugin_desc, reserved));
        }
    }
    if (d->abi_version != MH_PLUGIN_ABI_VERSION) {
        uint32_t abi = d->abi_version;
        dlclose(dl);
        return mh_err(h, err, MH_EABI,
                      "module '%s' (%s) was built for plugin ABI %u, but this "
                      "host (modhost %s) supports ABI %d; rebuild the plugin "
                      "against this modhost",
                      mod->name, shown(mod, where), abi, MH_VERSION_STRING,
                      MH_PLUGIN_ABI_VERSION);
    }
    if (d->size < offsetof(mh_plugin_desc, reserved)) {
        uint32_t size = d->size;
        dlclose(dl);
        return mh_err(h, err, MH_EABI,
                      "module '%s' (%s) has a truncated descriptor "
                      "(%u bytes, need %zu)",
                      mod->name, shown(mod, where), size,
                      offsetof(mh_plugin_desc, reserved));
    }
    size_t n = 0;
    if (d->exports) {
        while (n < MAX_EXPORTS && d->exports[n].name)
            n++;
        if (n == MAX_EXPORTS) {
            dlclose(dl);
            return mh_err(h, err, MH_EFORMAT,
                          "module '%s' (%s): export list is not terminated "
                          "within %u entries", mod->name,
                          shown(mod, where), MAX_EXPORTS);
        }
    }
    mod->kind = MH_KIND_NATIVE;
    mod->dl = dl;
    mod->desc = d;
    mod->nexports = (uint16_t)n; /* n < MAX_EXPORTS */
    if (h->verbose) {
        /* The descriptor's name is informative; one that differs (a
         * file renamed, a plugin copied) is said in the trace. */
        bool other = d->name && strcmp(d->name, mod->name) != 0;
        MH_TRACE(h, "%s: loaded %s (plugin ABI %u, version %s, %zu "
                 "exports%s%s%s)", mod->name, shown(mod, where),
                 d->abi_version, d->version ? d->version : "-", n,
                 other ? "; its descriptor names it '" : "",
                 other ? d->name : "", other ? "'" : "");
    }
    return MH_OK;
}

/* ---- descriptors that name loaded objects ------------------------------ */

/* A module loaded through /proc/self/fd/N is known to the dynamic loader
 * by that name, and the loader matches names before files: if N were
 * closed and reused for another file while an object answers to it (the
 * object is RTLD_NODELETE, or another host has it), dlopen of the new file
 * would return the old object.  So a descriptor is closed only once no
 * object answers to its name; until then it waits here (process-wide: the
 * object outlives any one host) with the load address of the object that
 * does -- asked of the loader itself, as it may be another copy of the
 * same file that took the name on (the loader also matches device and
 * inode).  Whenever a descriptor is given back, those waiting are looked
 * at again: one pass over the loaded objects (dl_iterate_phdr, which
 * holds the loader's list lock while it calls back; nothing allocates
 * then), and a descriptor whose object's address no loaded object has is
 * closed.  An address taken again by another object only keeps a
 * descriptor longer, never closes one early; a descriptor added while its
 * object went away is closed by that same look.  The list grows as
 * needed; with no memory to grow it, or no address to look for, a
 * descriptor is left open rather than closed under a loaded object.
 *
 * Known limit: a pinned (RTLD_NODELETE) object never goes away, so each
 * host that loads it again through a new descriptor adds one that is
 * never closed. */
typedef struct kept_fd {
    int fd;
    uintptr_t base;
} kept_fd;
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static kept_fd *kept;
static size_t nkept, capkept;

/* Does an object answer to fd's /proc/self/fd name?  *base: its load
 * address (0 if the loader does not say). */
static bool fd_object(int fd, uintptr_t *base)
{
    char byfd[MH_FD_PATH_SIZE];
    mh_fd_path(byfd, fd);
    *base = 0;
    void *still = dlopen(byfd, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (!still)
        return false;
    struct link_map *lm = NULL;
    if (dlinfo(still, RTLD_DI_LINKMAP, &lm) == 0 && lm)
        *base = (uintptr_t)lm->l_addr;
    dlclose(still);
    return true;
}

typedef struct bases {
    uintptr_t *v;
    size_t n, cap;
    bool more;                  /* more objects than room: trust nothing */
} bases;

static int count_object(struct dl_phdr_info *info, size_t size, void *ud)
{
    MH_UNUSED(info);
    MH_UNUSED(size);
    ++*(size_t *)ud;
    return 0;
}

static int add_base(struct dl_phdr_info *info, size_t size, void *ud)
{
    MH_UNUSED(size);
    bases *b = ud;
    if (b->n == b->cap) {
        b->more = true;
        return 1;
    }
    b->v[b->n++] = (uintptr_t)info->dlpi_addr;
    return 0;
}

static int cmp_base(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return (x > y) - (x < y);
}

/* Close the waiting descriptors whose objects are gone (lock held).  The
 * addresses are gathered into room made beforehand, with some to spare;
 * if objects were loaded meanwhile beyond it, nothing is closed. */
static void sweep_kept(void)
{
    size_t n = 0;
    dl_iterate_phdr(count_object, &n);
    bases b = {.cap = n + 64};
    b.v = malloc(b.cap * sizeof *b.v);
    if (!b.v)
        return;
    dl_iterate_phdr(add_base, &b);
    if (!b.more) {
        qsort(b.v, b.n, sizeof *b.v, cmp_base);
        for (size_t i = 0; i < nkept;) {
            if (bsearch(&kept[i].base, b.v, b.n, sizeof *b.v, cmp_base)) {
                i++;
                continue;
            }
            close(kept[i].fd);
            kept[i] = kept[--nkept];
        }
    }
    free(b.v);
}

/* Give back fd, whose object was just dlclosed, or never loaded. */
static void release_fd(int fd)
{
    if (fd < 0)
        return;
    uintptr_t base;
    bool answered = fd_object(fd, &base);
    pthread_mutex_lock(&kept_lock);
    if (!answered) {
        close(fd);
    } else {
        if (nkept == capkept) {
            size_t cap = capkept ? capkept * 2 : 16;
            kept_fd *v = realloc(kept, cap * sizeof *v);
            if (v) {
                kept = v;
                capkept = cap;
            }
        }
        if (nkept < capkept && base)
            kept[nkept++] = (kept_fd){fd, base};
        /* else: no memory, or no address to look for -- left open for
         * good, never reused */
    }
    if (nkept)
        sweep_kept(); /* objects went away: maybe theirs, maybe fd's */
    pthread_mutex_unlock(&kept_lock);
}

mh_status mh_nat_load(mh_host *h, mh_module *mod, const char *file, int fd,
                      unsigned flags, mh_error **err)
{
    char why[512], byfd[MH_FD_PATH_SIZE];

    /* Through the descriptor import checked, when there is one: what was
     * checked is what is mapped.  It stays open while the module is
     * loaded, so its /proc/self/fd name -- which the dynamic loader keys
     * loaded objects by -- is never reused for another file. */
    if (fd >= 0)
        mh_fd_path(byfd, fd);
    dlerror();
    void *dl = mh_fault(h, "dlopen")
                   ? NULL
                   : dlopen(fd >= 0 ? byfd : file, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        /* Named as the file users know, not the descriptor's name. */
        mh_status st = mh_dl_message(why, sizeof why, fd >= 0 ? byfd : file,
                                     file);
        mh_status rc = mh_err(h, err, st, "cannot load module '%s' from %s: "
                              "%s", mod->name, file, why);
        release_fd(fd);
        return rc;
    }
    mh_status rc = nat_check(h, mod, dl, file, flags, err);
    if (rc == MH_OK)
        mod->fd = fd;
    else
        release_fd(fd); /* refused after dlopen: maybe still mapped */
    return rc;
}

mh_status mh_nat_load_blob(mh_host *h, mh_module *mod, const mh_blob *b,
                           unsigned flags, mh_error **err)
{
    const char *bad = mh_elf_check(b->data, b->len);
    if (bad)
        return mh_err(h, err, MH_EFORMAT, "module '%s' (%s): %s", mod->name,
                      mh_reg_where(mod), bad);
    void *dl;
    mh_mfd *ref;
    mh_status rc = mh_mfd_load(h, mod, b, &dl, &ref, err);
    if (rc != MH_OK)
        return rc;
    rc = nat_check(h, mod, dl, NULL, flags, err);
    if (rc != MH_OK) {
        mh_mfd_release(ref); /* nat_check closed the handle */
        return rc;
    }
    mod->image = ref;
    return MH_OK;
}

mh_status mh_nat_init(mh_host *h, mh_module *mod, mh_error **err)
{
    if (!mod->desc || !mod->desc->init)
        return MH_OK;
    /* Under the lock: a thread the init started may call set_error. */
    pthread_mutex_lock(&h->lock);
    mod->in_init = true;
    pthread_mutex_unlock(&h->lock);
    int rc = mod->desc->init(&h->api, (mh_plugin *)mod);
    pthread_mutex_lock(&h->lock);
    mod->in_init = false;
    pthread_mutex_unlock(&h->lock);
    if (rc == 0) {
        /* It went on without what a nested import failed to give: the
         * reason is shown, since no error will show it. */
        if (mod->flight->init_message && mod->flight->init_message_dep)
            mh_api_log_dep_failure(mod, mod->flight->init_message);
        mh_mem_strfree(h, mod->flight->init_message);
        mod->flight->init_message = NULL;
        mod->flight->init_message_dep = false;
        return MH_OK;
    }
    mh_status code;
    if (mod->flight->init_message_lost) /* not the module's to answer for */
        code = mh_err(h, err, MH_ENOMEM,
                      "init of module '%s' (%s) failed (it returned %d), "
                      "and its message was lost: out of memory", mod->name,
                      mh_reg_where(mod), rc);
    else if (mod->flight->init_message && mod->flight->init_message[0])
        code = mh_err(h, err,
                      mod->flight->init_message_dep
                          ? mh_init_status_of_dep(
                                (mh_status)mod->flight->init_dep_status)
                          : MH_EINIT,
                      "init of module '%s' (%s) failed: %s",
                      mod->name, mh_reg_where(mod),
                      mod->flight->init_message);
    else
        code = mh_err(h, err, MH_EINIT,
                      "init of module '%s' (%s) failed: it returned %d "
                      "without a message%s", mod->name, mh_reg_where(mod), rc,
                      mod->flight->init_message ? " (an empty one)" : "");
    mh_mem_strfree(h, mod->flight->init_message);
    mod->flight->init_message = NULL;
    mod->flight->init_message_lost = false;
    mod->flight->init_message_dep = false;
    return code;
}

void mh_nat_fini(mh_host *h, mh_module *mod)
{
    if (mod->desc && mod->desc->fini) {
        MH_TRACE(h, "%s: fini", mod->name);
        mod->desc->fini(&h->api, (mh_plugin *)mod);
    }
}

void mh_nat_unload(mh_host *h, mh_module *mod)
{
    MH_UNUSED(h);
    mod->note = NULL; /* it lies in the mapping */
    if (mod->dl)
        dlclose(mod->dl);
    if (mod->fd >= 0) {
        release_fd(mod->fd);
        mod->fd = -1;
    }
    mh_mfd_release(mod->image); /* after dlclose: the fd names the image */
    mod->image = NULL;
    mod->dl = NULL;
    mod->desc = NULL;
}

void *mh_nat_symbol(mh_module *mod, const char *symbol)
{
    if (mod->desc) {
        for (size_t i = 0; i < mod->nexports; i++)
            if (strcmp(mod->desc->exports[i].name, symbol) == 0)
                return mod->desc->exports[i].address;
        return NULL;
    }
    if (mod->kind == MH_KIND_PLAIN && mod->dl) {
        dlerror();
        return dlsym(mod->dl, symbol);
    }
    return NULL;
}

/* ---- dispatch ----------------------------------------------------------- */

mh_status mh_ld_load(mh_host *h, mh_module *mod, const mh_found *spec,
                     unsigned flags, mh_error **err)
{
    switch (spec->kind) {
    case MH_KIND_NAMESPACE:
        mod->kind = MH_KIND_NAMESPACE;
        return MH_OK;
    case MH_KIND_LUA:
        return mh_lua_load(h, mod, spec, err);
    case MH_KIND_NATIVE:
    case MH_KIND_PLAIN:
        break;
    default:
        return mh_err(h, err, MH_ELOAD, "module '%s' (%s): no loader for it",
                      mod->name, spec->origin);
    }
    /* A finder's copy is shown as the module's origin: the blob cache's
     * file name tells a user nothing. */
    if (spec->file)
        return mh_nat_load(h, mod,
                           spec->from_copy ? spec->origin : spec->file,
                           spec->fd, flags, err);
    if (spec->image)
        return mh_nat_load_blob(h, mod, spec->image, flags, err);
    mh_blob b;
    mh_status rc = mh_fcx_read(h, spec, spec->key, &b, err);
    if (rc != MH_OK)
        return rc;
    rc = mh_nat_load_blob(h, mod, &b, flags, err);
    mh_blob_free(h, &b); /* the image is in its memfd or file now */
    return rc;
}
mh_status mh_ld_init(mh_host *h, mh_module *mod, mh_error **err)
{
    return mod->kind == MH_KIND_NATIVE ? mh_nat_init(h, mod, err) : MH_OK;
}

void mh_ld_fini(mh_host *h, mh_module *mod)
{
    if (mod->kind == MH_KIND_NATIVE)
        mh_nat_fini(h, mod);
}

void mh_ld_unload(mh_host *h, mh_module *mod)
{
    if (mod->kind == MH_KIND_LUA)
        mh_lua_unload(h, mod);
    else if (mod->kind != MH_KIND_NAMESPACE)
        mh_nat_unload(h, mod);
}

void *mh_ld_symbol(mh_module *mod, const char *symbol)
{
    return mh_nat_symbol(mod, symbol);
}

/* ---- JSON calls (MH_CALL) ------------------------------------------------ */

/* Did cJSON stop at `end` in JSON text t because its arrays and objects
 * nest deeper there than it parses?  (Brackets in strings do not count.) */
static bool json_too_deep(const char *t, const char *end)
{
    int depth = 0;
    bool in_string = false;
    for (; *t && t <= end; t++) {
        if (in_string) {
            if (*t == '\\' && t[1])
                t++;
            else if (*t == '"')
                in_string = false;
        } else if (*t == '"') {
            in_string = true;
        } else if (*t == '[' || *t == '{') {
            if (++depth > CJSON_NESTING_LIMIT)
                return true;
        } else if (*t == ']' || *t == '}') {
            depth--;
        }
    }
    return false;
}

mh_status mh_nat_call(mh_module *mod, const char *fn, const cJSON *args,
                      cJSON **result, mh_error **err)
{
    mh_host *h = mod->host;
    char sym[300];
    /* A name cut to fit would call another function: none has it. */
    bool fits = (size_t)snprintf(sym, sizeof sym, "call:%s", fn) < sizeof sym;
    mh_call_fn f = fits ? (mh_call_fn)mh_nat_symbol(mod, sym) : NULL;
    if (!mod->desc || !f)
        return mh_err(h, err, MH_ENOSYM, "module '%s' (%s) has no JSON "
                      "call '%s' (plugins declare them with MH_CALL)",
                      mod->name, mh_reg_where(mod), fn);
    char *text = args ? cJSON_PrintUnformatted(args) : NULL;
    if (args && !text)
        return mh_err(h, err, MH_ENOMEM, "out of memory calling %s.%s",
                      mod->name, fn);
    mh_call_out out = {h, NULL, NULL, false};
    const char *parse_end = NULL;
    int rc = f(&h->api, (mh_plugin *)mod, text ? text : "[]", &out);
    cJSON_free(text);
    mh_status st = MH_OK;
    if (rc != 0)
        st = mh_err(h, err, MH_ECALL, "%s.%s (%s) failed: %s", mod->name, fn,
                    mh_reg_where(mod), out.error ? out.error
                                           : "it returned an error code");
    else if (out.oom)
        st = mh_err(h, err, MH_ENOMEM, "out of memory in %s.%s", mod->name,
                    fn);
    else if (!(*result = out.json
                             ? cJSON_ParseWithOpts(out.json, &parse_end, 1)
                             : cJSON_CreateNull()))
        st = out.json && parse_end && json_too_deep(out.json, parse_end)
                 ? mh_err(h, err, MH_EFORMAT, "%s.%s returned JSON nested "
                          "deeper than %d, which cJSON does not parse",
                          mod->name, fn, CJSON_NESTING_LIMIT)
                 : mh_err(h, err, MH_EFORMAT, "%s.%s returned text that is "
                          "not JSON", mod->name, fn);
    else if (mh_json_has_nonfinite(*result)) {
        cJSON_Delete(*result);
        *result = NULL;
        st = mh_err(h, err, MH_EFORMAT, "%s.%s returned a number past the "
                    "range of a double (JSON numbers are finite)", mod->name,
                    fn);
    }
    mh_mem_strfree(h, out.json);
    mh_mem_strfree(h, out.error);
    return st;
}
