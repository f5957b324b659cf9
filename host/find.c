/*
 * host/find.c -- walking the search path: find one module (the step of
 * import between the registry and the loader), and list them all.
 *
 * Python's PathFinder rule, entry by entry in order:
 *   - an entry that has the module wins at once;
 *   - an entry that has only a directory of that name contributes a
 *     portion of a namespace package, and the walk goes on;
 *   - at the end, portions found make a namespace package; none is
 *     "not found", with every entry tried and why it missed (Lua's
 *     searchers message, which tells an operator what to fix).
 */
#include "host/internal.h"
#include "finders/finder.h"

#include <stdlib.h>
#include <string.h>

mh_status mh_find_spec(mh_host *h, const char *name, mh_found *found,
                       mh_error **err)
{
    mh_buf why;
    mh_found ns = {0};
    bool have_ns = false;
    mh_status rc = MH_ENOTFOUND;

    mh_buf_init(&why, h, 0);
    pthread_rwlock_rdlock(&h->path.lock);
    size_t n = h->path.n;
    for (size_t i = 0; i < n; i++) {
        mh_pentry *e = h->path.v[i];
        const mh_finder_class *cls;
        mh_buf_printf(&why, "\n  %s: ", e->shown);
        size_t mark = why.len; /* where this entry's reason starts */
        void *state;
        rc = mh_path_finder(h, e, &cls, &state, &why);
        if (rc == MH_ENOMEM) {
            mh_err(h, err, MH_ENOMEM, "out of memory opening the finder of "
                   "search path entry '%s' for module '%s'", e->shown, name);
            break;
        }
        if (rc != MH_OK) {
            rc = MH_ENOTFOUND;
            MH_TRACE(h, "find '%s': entry %zu '%s': %s", name, i, e->shown,
                     why.failed ? "?" : mh_buf_str(&why) + mark);
            continue;
        }
        mh_found f = {0};
        rc = cls->find(state, name, &f, &why, err);
        if (rc == MH_OK && f.kind == MH_KIND_NAMESPACE) {
            MH_TRACE(h, "find '%s': entry %zu '%s' (%s): directory %s, a "
                     "namespace portion; going on", name, i, e->shown,
                     cls->name, f.origin);
            mh_buf_printf(&why, "namespace portion %s", f.origin);
            if (!have_ns) {
                ns = f;
                ns.finder = cls->name;
                ns.entry = i;
                ns.cls = cls;
                ns.state = state;
                have_ns = true;
            }
            rc = MH_ENOTFOUND;
            continue;
        }
        if (rc == MH_OK) {
            f.finder = cls->name;
            f.entry = i;
            f.cls = cls;
            f.state = state;
            *found = f;
            MH_TRACE(h, "find '%s': entry %zu '%s' (%s): found %s", name, i,
                     e->shown, cls->name, f.origin);
            break;
        }
        if (rc != MH_ENOTFOUND)
            break; /* the finder's own error, already in *err */
        MH_TRACE(h, "find '%s': entry %zu '%s' (%s): %s", name, i, e->shown,
                 cls->name, why.failed ? "?" : mh_buf_str(&why) + mark);
    }
    pthread_rwlock_unlock(&h->path.lock);

    if (rc == MH_ENOTFOUND && have_ns) {
        *found = ns;
        rc = MH_OK;
        MH_TRACE(h, "find '%s': namespace package, first portion %s", name,
                 ns.origin);
    } else if (rc == MH_ENOTFOUND) {
        if (n == 0)
            mh_err(h, err, MH_ENOTFOUND, "module '%s' not found: the search "
                   "path is empty (set MODHOST_PATH or add entries)", name);
        else
            mh_err(h, err, MH_ENOTFOUND,
                   "module '%s' not found; searched %zu path entr%s:%s", name,
                   n, n == 1 ? "y" : "ies",
                   why.failed ? " (too many to list)" : mh_buf_str(&why));
    }
    mh_buf_free(&why);
    return rc;
}

static const char *loader_name(mh_module_kind kind)
{
    return kind == MH_KIND_NAMESPACE ? "namespace"
         : kind == MH_KIND_LUA ? "lua" : "native";
}

mh_status mh_find(mh_host *host, const char *name, mh_spec_info *info,
                  mh_error **err)
{
    if (!host || !name || !info)
        return mh_err(host, err, MH_EINVAL, "mh_find: NULL argument");
    size_t size = info->size;
    if (size >= offsetof(mh_spec_info, reserved)) { /* cleared on failure */
        memset(info, 0, size < sizeof *info ? size : sizeof *info);
        info->size = size;
    }
    if (size < offsetof(mh_spec_info, reserved))
        return mh_err(host, err, MH_EVERSION,
                      "mh_spec_info.size is %zu; set it to "
                      "sizeof(mh_spec_info)", size);
    mh_status rc = mh_name_check(name, err);
    if (rc != MH_OK)
        return rc;
    const char *iname = mh_int_cstr(host, name);
    if (!iname)
        return mh_err(host, err, MH_ENOMEM, "out of memory finding '%s'", name);
    mh_found f;
    rc = mh_find_spec(host, iname, &f, err);
    if (rc != MH_OK)
        return rc;
    info->name = iname;
    info->origin = f.origin;
    info->finder = f.finder;
    info->kind = f.kind;
    info->loader = loader_name(f.kind);
    info->entry_index = f.entry;
    return MH_OK;
}

/* ---- listing ------------------------------------------------------------ */

typedef struct list_item {
    const char *name;
    mh_found found;
} list_item;

typedef struct list_acc {
    mh_host *host;
    list_item *items;
    size_t n, cap;
    const char **seen;       /* open-addressing set of interned names */
    size_t seen_cap;
    const char *finder;
    size_t entry;
    bool oom;
} list_acc;

static size_t seen_slot(const list_acc *a, const char *name)
{
    size_t i = (size_t)(((uintptr_t)name >> 3) * 0x9e3779b97f4a7c15ull >> 16);
    for (i &= a->seen_cap - 1; a->seen[i] && a->seen[i] != name;
         i = (i + 1) & (a->seen_cap - 1))
        ;
    return i;
}

static bool acc_grow(list_acc *a)
{
    size_t cap = a->cap ? a->cap * 2 : 64, scap = cap * 2;
    const char **s = mh_mem_calloc(a->host, scap, sizeof *s);
    if (!s)
        return false;
    list_item *v = mh_mem_realloc(a->host, a->items, a->cap * sizeof *v,
                                  cap * sizeof *v);
    if (!v) {
        mh_mem_free(a->host, s, scap * sizeof *s);
        return false;
    }
    a->items = v;
    a->cap = cap;
    mh_mem_free(a->host, a->seen, a->seen_cap * sizeof *a->seen);
    a->seen = s;
    a->seen_cap = scap;
    for (size_t i = 0; i < a->n; i++)
        a->seen[seen_slot(a, a->items[i].name)] = a->items[i].name;
    return true;
}

static int acc_add(void *ud, const char *name, const mh_found *found)
{
    list_acc *a = ud;
    if (a->cap && a->seen[seen_slot(a, name)])
        return 0; /* an earlier entry has it: import would pick that one */
    if (a->n == a->cap && !acc_grow(a)) {
        a->oom = true;
        return 1;
    }
    a->seen[seen_slot(a, name)] = name;
    a->items[a->n].name = name;
    a->items[a->n].found = *found;
    a->items[a->n].found.finder = a->finder;
    a->items[a->n].found.entry = a->entry;
    a->n++;
    return 0;
}

static int item_cmp(const void *x, const void *y)
{
    return strcmp(((const list_item *)x)->name, ((const list_item *)y)->name);
}

mh_status mh_list(mh_host *host, mh_list_fn fn, void *ud, mh_error **err)
{
    if (!host || !fn)
        return mh_err(host, err, MH_EINVAL, "mh_list: NULL argument");
    list_acc a = {.host = host};
    mh_status rc = MH_OK;

    pthread_rwlock_rdlock(&host->path.lock);
    for (size_t i = 0; i < host->path.n && rc == MH_OK && !a.oom; i++) {
        mh_pentry *e = host->path.v[i];
        const mh_finder_class *cls;
        void *state;
        mh_status prc = mh_path_finder(host, e, &cls, &state, NULL);
        if (prc == MH_ENOMEM)
            rc = mh_err(host, err, MH_ENOMEM, "out of memory opening the "
                        "finder of search path entry '%s'", e->shown);
        if (prc != MH_OK || !cls->list)
            continue;
        a.finder = cls->name;
        a.entry = i;
        mh_error *lerr = NULL;
        mh_status lrc = cls->list(state, acc_add, &a, &lerr);
        if (lrc == MH_ENOMEM)
            rc = mh_err_give(lerr, err);
        else if (lrc != MH_OK) {
            /* A default entry that does not exist is normal; anything
             * else the operator should hear about. */
            mh_log_level lvl = lrc == MH_ENOTFOUND &&
                               e->source == MH_SOURCE_DEFAULT
                                   ? MH_LOG_TRACE : MH_LOG_WARN;
            if (lvl != MH_LOG_TRACE || host->verbose)
                mh_log(host, lvl, "search path entry %zu: %s", i,
                       mh_error_message(lerr));
            mh_error_free(lerr);
        }
    }
    pthread_rwlock_unlock(&host->path.lock);
    if (a.oom && rc == MH_OK)
        rc = mh_err(host, err, MH_ENOMEM, "out of memory listing modules");

    if (rc == MH_OK && a.n)
        qsort(a.items, a.n, sizeof *a.items, item_cmp);
    for (size_t i = 0; rc == MH_OK && i < a.n; i++) {
        const list_item *it = &a.items[i];
        mh_spec_info info = {
            .size = sizeof info,
            .name = it->name,
            .origin = it->found.origin,
            .finder = it->found.finder,
            .kind = it->found.kind,
            .loader = loader_name(it->found.kind),
            .entry_index = it->found.entry,
        };
        if (fn(ud, &info) != 0)
            break;
    }
    mh_mem_free(host, a.items, a.cap * sizeof *a.items);
    mh_mem_free(host, a.seen, a.seen_cap * sizeof *a.seen);
    return rc;
}
