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
#include "finders/notify.h"
#include "finders/finder.h"
#include "host/tops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The walk of one find: the reasons so far, the first namespace portion. */
typedef struct find_walk {
    mh_host *h;
    const char *name;
    mh_buf why;
    mh_found ns;
    bool have_ns;
    bool transient;        /* answers are transient (mh_found.own) */
    size_t tried;          /* links and entries asked */
    size_t meta_tried;     /* of which meta finders */
} find_walk;

/* Where a link is, as its messages name it. */
static const char *where_of(size_t entry, char *buf, size_t size)
{
    if (entry == SIZE_MAX)
        return "meta finder";
    snprintf(buf, size, "entry %zu", entry);
    return buf;
}

/* ask()'s failure, said with the module and where it failed (kept off
 * the walk's path, which is mostly misses): e (the finder's or the
 * host's words, or NULL) into *err.  raw: a return that was no mh_status,
 * else 0. */
static __attribute__((cold, noinline)) mh_status
finder_error(find_walk *w, const mh_hook *k, const char *shown,
             const char *text, int raw, bool finders_words, mh_status rc,
             mh_error *e, mh_error **err)
{
    mh_host *h = w->h;
    /* Where it failed: "search path entry 'ENTRY' (finder 'F')", or
     * "meta finder 'F'". */
    char at[PATH_MAX + 2 * MH_NAME_MAX];
    if (shown)
        snprintf(at, sizeof at, "search path entry '%s' (finder '%s')",
                 shown, k->name);
    else
        snprintf(at, sizeof at, "meta finder '%s'", k->name);
    if (raw) {
        mh_error_free(e);
        e = NULL;
        mh_err(h, &e, rc, "module '%s': %s returned %d, which is no "
               "mh_status", w->name, at, raw);
    } else if (!e) {
        mh_err(h, &e, rc, "module '%s': %s failed (%s)", w->name, at,
               mh_strerror(rc));
    } else if (finders_words && !mh_hook_builtin(k) &&
               !mh_fcx_placed(mh_error_message(e), k->name, shown, text)) {
        /* A finder's own words, said with the module and where -- unless
         * they say where already, as the tutorial's and tar's do. */
        mh_error *named = NULL;
        mh_err(h, &named, rc, "module '%s': %s: %s", w->name, at,
               mh_error_message(e));
        mh_error_free(e);
        e = named;
    }
    return mh_err_give(e, err);
}

/* Ask one finder instance.  MH_OK: *found is the module; MH_ENOTFOUND:
 * go on (a miss, or a namespace portion kept in w); else an error.  This
 * runs for every entry of every import, most of them misses: the miss
 * path builds no text but the reason and frees only what was made. */
static mh_status ask(find_walk *w, const mh_hook *k, void *state,
                     size_t entry, const char *shown, const char *text,
                     mh_found *found, mh_error **err)
{
    mh_host *h = w->h;
    char wb[32];
    size_t mark = w->why.len; /* where this link's reason starts */
    mh_finder_spec spec = {0};
    mh_error *e = NULL;
    mh_fcx cx;
    mh_fcx_init(&cx, h, k, &w->why, &e);
    cx.want_bytes = w->transient;
    bool odd;
    int raw = (int)k->cls->find(&cx.pub, state, w->name, &spec);
    mh_status rc = mh_fcx_status((mh_status)raw, &odd);
    if (rc == MH_ENOTFOUND) {
        if (cx.bytes.data)
            mh_blob_free(h, &cx.bytes);
        if (w->why.len == mark)
            mh_buf_puts(&w->why, "not found");
        if (e)
            mh_error_free(e);
        MH_TRACE(h, "find '%s': %s (%s): %s", w->name,
                 where_of(entry, wb, sizeof wb), k->name,
                 w->why.failed ? "?" : mh_buf_str(&w->why) + mark);
        return MH_ENOTFOUND;
    }
    mh_found f;
    bool finders_words = rc != MH_OK; /* else the host's, on its answer */
    if (rc == MH_OK) {
        rc = mh_fcx_found(h, k, w->name, &spec, w->transient, &f, &e);
        f.entry = entry;
        f.state = state;
    }
    if (rc == MH_OK && f.kind != MH_KIND_NAMESPACE && !f.file) {
        f.pre = cx.bytes; /* the module's bytes, read with the find */
        cx.bytes = (mh_blob){0};
    }
    mh_blob_free(h, &cx.bytes);
    if (rc == MH_OK && f.kind == MH_KIND_NAMESPACE) {
        mh_error_free(e);
        e = NULL;
        MH_TRACE(h, "find '%s': %s (%s): %s, a namespace portion; going on",
                 w->name, where_of(entry, wb, sizeof wb), k->name, f.origin);
        mh_buf_printf(&w->why, "namespace portion %s", f.origin);
        if (!w->have_ns) {
            w->ns = f;
            w->have_ns = true;
        } else {
            mh_found_release(h, &f);
        }
        return MH_ENOTFOUND;
    }
    if (rc == MH_OK) {
        mh_error_free(e); /* an error() before an MH_OK */
        *found = f;
        MH_TRACE(h, "find '%s': %s (%s): found %s", w->name,
                 where_of(entry, wb, sizeof wb), k->name, f.origin);
        return MH_OK;
    }
    return finder_error(w, k, shown, text, odd ? raw : 0, finders_words, rc,
                        e, err);
}

/* The line of the "not found" message an entry skipped for lacking the
 * package would have written: the entry's, then fsf_find's reason. */
static void skipped_line(mh_buf *b, const mh_pentry *e, const mh_tops_view *v)
{
    mh_buf_add(b, "\n  ", 3);
    mh_buf_add(b, e->shown, mh_int_record(e->shown)->len);
    mh_buf_add(b, ": ", 2);
    mh_fsf_lacks_reason(b, v->top, v->len);
}

/* After a walk that skipped entries found nothing: the message's lines
 * in entry order, the skipped ones written now.  ends[i] is where the
 * lines written up to entry i end, over the walk's copy s of the path. */
static void write_skipped(find_walk *w, const mh_path_snap *s, size_t start,
                          const uint32_t *ends, const mh_tops_view *v)
{
    mh_host *h = w->h;
    mh_buf b;
    mh_buf_init(&b, h, w->why.max);
    mh_buf_add(&b, mh_buf_str(&w->why), start);
    size_t from = start;
    for (size_t i = 0; i < s->n; i++) {
        if (mh_tops_skips(v, i))
            skipped_line(&b, s->v[i], v);
        else
            mh_buf_add(&b, mh_buf_str(&w->why) + from, ends[i] - from);
        from = ends[i];
    }
    if (b.failed) { /* over the limit, as the walk asking each would be */
        mh_buf_free(&b);
        w->why.failed = true;
        return;
    }
    mh_buf_free(&w->why);
    w->why = b;
}

/* The "path" link: every search path entry in order.  Entries known to
 * lack the module's top-level package are skipped (host/tops.h). */
/* The walk's package record is read with the path's copy, under its
 * lock: what it says of entry i is about this i. */
typedef struct tops_start {
    const char *name;
    mh_tops_view *tv;
} tops_start;

static void begin_tops(mh_host *h, size_t n, void *ud)
{
    tops_start *t = ud;
    mh_tops_begin(h, t->name, n, t->tv);
}

static mh_status walk_path(find_walk *w, mh_found *found, mh_error **err)
{
    mh_host *h = w->h;
    mh_status rc = MH_ENOTFOUND;
    mh_tops_view tv;
    mh_path_snap path;
    mh_path_snap_take(h, &path, begin_tops,
                      &(tops_start){.name = w->name, .tv = &tv});
    size_t n = path.n;
    /* A line per entry ("\n  ENTRY: reason"), in one block from the start
     * (a hint: never more than half the message's limit, which a reserve
     * past it would mark as overflowed). */
    size_t hint = n * 96;
    mh_buf_reserve(&w->why, hint < w->why.max / 2 ? hint : w->why.max / 2);
    uint32_t ends[MH_TOPS_WORDS * 64]; /* only when tv.on: n fits */
    size_t start = w->why.len, skipped = 0;
    for (size_t i = 0; i < n && rc == MH_ENOTFOUND; i++) {
        mh_pentry *e = path.v[i];
        w->tried++;
        if (mh_tops_skips(&tv, i)) {
            skipped++;
            ends[i] = (uint32_t)w->why.len;
            continue;
        }
        mh_buf_add(&w->why, "\n  ", 3);
        mh_buf_add(&w->why, e->shown, mh_int_record(e->shown)->len);
        mh_buf_add(&w->why, ": ", 2);
        size_t mark = w->why.len;
        const mh_hook *k;
        void *state;
        rc = mh_path_finder(h, e, &k, &state, &w->why);
        if (rc == MH_ENOMEM) {
            mh_err(h, err, MH_ENOMEM, "out of memory opening the finder of "
                   "search path entry '%s' for module '%s'", e->shown,
                   w->name);
            break;
        }
        if (rc == MH_EAGAIN) {
            /* Busy, or no descriptor to open it: the entry may hold the
             * module, and a later entry's of that name must not load in
             * its place.  Tried again at the next import. */
            mh_err(h, err, MH_EAGAIN, "module '%s' cannot be looked up "
                   "now: search path entry '%s' cannot be opened (%s); later "
                   "entries were not looked at, as the module may be in it: "
                   "try again", w->name, e->shown,
                   w->why.failed ? "?" : mh_buf_str(&w->why) + mark);
            break;
        }
        if (rc != MH_OK) {
            MH_TRACE(h, "find '%s': entry %zu '%s': %s", w->name, i, e->shown,
                     w->why.failed ? "?" : mh_buf_str(&w->why) + mark);
            rc = MH_ENOTFOUND;
        } else {
            atomic_fetch_add_explicit(&e->asked, 1, memory_order_relaxed);
            rc = ask(w, k, state, i, e->shown, e->text, found, err);
            if (rc == MH_ENOTFOUND && tv.on && !mh_tops_looked(&tv, i))
                mh_tops_learn(&tv, i, k->cls == &mh_fsf_class &&
                                          mh_fsf_lacks_top(state, tv.top,
                                                           tv.len));
        }
        if (tv.on)
            ends[i] = (uint32_t)w->why.len;
    }
    if (rc == MH_ENOTFOUND && skipped && !w->have_ns && !w->why.failed)
        write_skipped(w, &path, start, ends, &tv);
    mh_path_snap_free(h, &path);
    mh_tops_end(h, &tv);
    return rc;
}

static mh_status find_spec(mh_host *h, const char *name, bool transient,
                           mh_found *found, mh_error **err)
{
    find_walk w = {.h = h, .name = name, .transient = transient};
    mh_status rc = MH_ENOTFOUND;
    const mh_hook *links[MH_CHAIN_MAX];
    size_t nl = mh_chain_meta(h, links, MH_CHAIN_MAX);

    mh_ntf_drain(h); /* what changed on disk since the last walk */
    mh_buf_init(&w.why, h, 0);
    for (size_t i = 0; i < nl && rc == MH_ENOTFOUND; i++) {
        if (links[i]->is_path) {
            rc = walk_path(&w, found, err);
            continue;
        }
        mh_buf_printf(&w.why, "\n  meta finder '%s': ", links[i]->name);
        w.tried++;
        w.meta_tried++;
        rc = ask(&w, links[i], links[i]->state, SIZE_MAX, NULL, NULL, found,
                 err);
    }

    if (rc != MH_ENOTFOUND && w.have_ns)
        mh_found_release(h, &w.ns); /* a module after it, or an error */
    if (rc == MH_ENOTFOUND && w.have_ns) {
        *found = w.ns;
        rc = MH_OK;
        MH_TRACE(h, "find '%s': namespace package, first portion %s", name,
                 w.ns.origin);
    } else if (rc == MH_ENOTFOUND) {
        if (w.tried == 0)
            mh_err(h, err, MH_ENOTFOUND, "module '%s' not found: the search "
                   "path is empty (set MODHOST_PATH or add entries)", name);
        else
            mh_err(h, err, MH_ENOTFOUND,
                   "module '%s' not found; searched %zu %s:%s", name,
                   w.tried, w.meta_tried ? (w.tried == 1 ? "place" : "places")
                            : w.tried == 1 ? "path entry" : "path entries",
                   w.why.failed ? " (too many to list)" : mh_buf_str(&w.why));
    }
    mh_buf_free(&w.why);
    return rc;
}

mh_status mh_find_spec(mh_host *h, const char *name, mh_found *found,
                       mh_error **err)
{
    return find_spec(h, name, false, found, err);
}

mh_status mh_find_spec_transient(mh_host *h, const char *name,
                                 mh_found *found, mh_error **err)
{
    return find_spec(h, name, true, found, err);
}

static const char *loader_name(mh_module_kind kind)
{
    return kind == MH_KIND_NAMESPACE ? "namespace"
         : kind == MH_KIND_LUA ? "lua" : "native";
}

mh_status mh_find(mh_host *host, const char *name, mh_spec_info *info,
                  mh_error **err)
{
    MH_BUSY(host);
    if (!host || !name || !info)
        return mh_err(host, err, MH_EINVAL, "mh_find: %s is NULL",
                      mh_null_name(3, host, "host", name, "name", info, "info"));
    mh_status grc = mh_entry_check(host, "mh_find", 0, err);
    if (grc != MH_OK)
        return grc;
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
    const mh_hook *hook;
    void *state;
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

static int acc_add(void *ud, const char *name, const mh_finder_spec *spec)
{
    list_acc *a = ud;
    mh_host *h = a->host;
    if (mh_name_check(name, NULL) != MH_OK) {
        mh_log(h, MH_LOG_WARN, "finder '%s' listed '%s', which is not a "
               "module name; ignored", a->hook->name, name);
        return 0;
    }
    const char *iname = mh_int_cstr(h, name);
    if (!iname) {
        a->oom = true;
        return 1;
    }
    if (a->cap && a->seen[seen_slot(a, iname)])
        return 0; /* an earlier entry has it: import would pick that one */
    mh_found f;
    mh_error *e = NULL;
    mh_status rc = mh_fcx_found(h, a->hook, iname, spec, false, &f, &e);
    if (rc == MH_ENOMEM) {
        mh_error_free(e);
        a->oom = true;
        return 1;
    }
    if (rc != MH_OK) {
        mh_log(h, MH_LOG_WARN, "%s; not listed", mh_error_message(e));
        mh_error_free(e);
        return 0;
    }
    if (a->n == a->cap && !acc_grow(a)) {
        a->oom = true;
        return 1;
    }
    f.entry = a->entry;
    f.state = a->state;
    a->seen[seen_slot(a, iname)] = iname;
    a->items[a->n].name = iname;
    a->items[a->n].found = f;
    a->n++;
    return 0;
}

static int item_cmp(const void *x, const void *y)
{
    return strcmp(((const list_item *)x)->name, ((const list_item *)y)->name);
}

/* List one finder instance into a.  `where` names it in warnings. */
static mh_status list_one(list_acc *a, const mh_hook *k, void *state,
                          size_t entry, const char *where, bool quiet_missing,
                          mh_error **err)
{
    mh_host *h = a->host;
    if (!k->cls->list)
        return MH_OK;
    a->hook = k;
    a->state = state;
    a->entry = entry;
    mh_error *lerr = NULL;
    mh_fcx cx;
    mh_fcx_init(&cx, h, k, NULL, &lerr);
    mh_status lrc = k->cls->list(&cx.pub, state, acc_add, a);
    if (lrc == MH_ENOMEM || a->oom) {
        mh_error_free(lerr);
        return mh_err(h, err, MH_ENOMEM, "out of memory listing %s", where);
    }
    if (lrc != MH_OK) {
        /* A default entry that does not exist is normal; anything
         * else the operator should hear about. */
        mh_log_level lvl = lrc == MH_ENOTFOUND && quiet_missing
                               ? MH_LOG_TRACE : MH_LOG_WARN;
        if (lvl != MH_LOG_TRACE || h->verbose)
            mh_log(h, lvl, "%s: %s", where,
                   lerr ? mh_error_message(lerr) : mh_strerror(lrc));
    }
    mh_error_free(lerr);
    return MH_OK;
}

mh_status mh_list_found(mh_host *host, mh_found_fn fn, void *ud,
                        mh_error **err)
{
    MH_BUSY(host);
    list_acc a = {.host = host};
    mh_status rc = MH_OK;
    const mh_hook *links[MH_CHAIN_MAX];
    size_t nl = mh_chain_meta(host, links, MH_CHAIN_MAX);

    mh_ntf_drain(host);
    for (size_t l = 0; l < nl && rc == MH_OK; l++) {
        if (!links[l]->is_path) {
            char where[128];
            snprintf(where, sizeof where, "meta finder '%s'", links[l]->name);
            rc = list_one(&a, links[l], links[l]->state, SIZE_MAX, where,
                          false, err);
            continue;
        }
        mh_path_snap path;
        mh_path_snap_take(host, &path, NULL, NULL);
        for (size_t i = 0; i < path.n && rc == MH_OK; i++) {
            mh_pentry *e = path.v[i];
            const mh_hook *k;
            void *state;
            mh_status prc = mh_path_finder(host, e, &k, &state, NULL);
            if (prc == MH_ENOMEM)
                rc = mh_err(host, err, MH_ENOMEM, "out of memory opening the "
                            "finder of search path entry '%s'", e->shown);
            if (prc != MH_OK)
                continue;
            char where[4200];
            snprintf(where, sizeof where, "search path entry %zu (%s)", i,
                     e->shown);
            rc = list_one(&a, k, state, i, where,
                          e->source == MH_SOURCE_DEFAULT, err);
        }
        mh_path_snap_free(host, &path);
    }

    if (rc == MH_OK && a.n)
        qsort(a.items, a.n, sizeof *a.items, item_cmp);
    for (size_t i = 0; rc == MH_OK && i < a.n; i++)
        if (fn(ud, a.items[i].name, &a.items[i].found) != 0)
            break;
    mh_mem_free(host, a.items, a.cap * sizeof *a.items);
    mh_mem_free(host, a.seen, a.seen_cap * sizeof *a.seen);
    return rc;
}

typedef struct list_pub {
    mh_list_fn fn;
    void *ud;
} list_pub;

static int list_pub_one(void *ud, const char *name, const mh_found *f)
{
    list_pub *p = ud;
    mh_spec_info info = {
        .size = sizeof info,
        .name = name,
        .origin = f->origin,
        .finder = f->finder,
        .kind = f->kind,
        .loader = loader_name(f->kind),
        .entry_index = f->entry,
    };
    return p->fn(p->ud, &info);
}

mh_status mh_list(mh_host *host, mh_list_fn fn, void *ud, mh_error **err)
{
    if (!host || !fn)
        return mh_err(host, err, MH_EINVAL, "mh_list: %s is NULL",
                      mh_null_name(2, host, "host", fn, "fn"));
    mh_status grc = mh_entry_check(host, "mh_list", 0, err);
    if (grc != MH_OK)
        return grc;
    list_pub p = {fn, ud};
    return mh_list_found(host, list_pub_one, &p, err);
}
