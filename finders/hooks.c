/*
 * finders/hooks.c -- the finder chains (mh_chain_*; Python's
 * sys.path_hooks and sys.meta_path), their public registration API, and
 * finder plugins loaded by scheme.  Calls into finders are in call.c.
 *
 * Path hooks are asked in order; the first whose claims() (or scheme)
 * takes an entry gets it.  The built-in order is http, sqlite, fs: the
 * specific claims (a scheme, a file header) come before the catch-all
 * directory finder, which takes any absolute path.  Later hooks that would
 * also have claimed an entry are named as shadowed, never silently.
 *
 * The meta chain starts as the single link "path", the walk of the search
 * path entries; meta finders go before or after it.
 *
 * Lock order: an entry's opening lock -> chain.lock.  Of a finder's
 * functions only claims() runs under the chain lock (read): it must be a
 * cheap check that calls nothing of the host.  Walks of the meta chain
 * take a snapshot of the links, which live until the host is freed, as
 * walks of the search path take a copy of its entries (host/path.h): a
 * finder plugin is imported with no lock of the path held.  (Only a walk
 * that had no memory for its copy holds path.lock for reading; the
 * plugin's import then reads the path again, which a rwlock that prefers
 * readers, glibc's default, allows.)
 */
#include "host/internal.h"
#include "finders/finder.h"
#include "loaders/loader.h"

#include <stdio.h>
#include <string.h>

/* ---- the chains --------------------------------------------------------- */

static mh_status add_link(mh_host *h, const mh_finder_class *cls, void *ud,
                          bool meta, mh_chain_pos pos, const char *anchor,
                          const char *module, const mh_hook **out,
                          mh_error **err);

static const mh_finder_class path_link = {
    MH_FINDER_CLASS_INIT,
    .name = "path",
    .description = "the search path entries, each through its path hook",
};

int mh_chain_init(mh_host *h)
{
    mh_chain *c = &h->chain;
    pthread_rwlock_init(&c->lock, NULL);
    c->ready = true;
    static const mh_finder_class *const builtin[] = {
        &mh_htf_class,   /* http://, https:// */
        &mh_sqf_class,   /* sqlite:/path, or a file with a SQLite header */
        &mh_fsf_class,   /* any other absolute path: a directory */
    };
    for (size_t i = 0; i < MH_ARRAY_LEN(builtin); i++)
        if (add_link(h, builtin[i], NULL, false, MH_CHAIN_LAST, NULL, NULL,
                     NULL, NULL) != MH_OK)
            return -1;
    return add_link(h, &path_link, NULL, true, MH_CHAIN_LAST, NULL, NULL,
                    NULL, NULL) == MH_OK ? 0 : -1;
}

static void close_link(mh_host *h, mh_hook *k)
{
    if (k->meta && !k->is_path && k->opened)
        mh_fcx_close(h, k, k->state);
    k->opened = false;
    k->state = NULL;
}

void mh_chain_close(mh_host *h)
{
    mh_chain *c = &h->chain;
    for (size_t i = 0; i < c->nmeta; i++)
        close_link(h, c->meta[i]);
}

void mh_chain_free(mh_host *h)
{
    mh_chain *c = &h->chain;
    if (!c->ready)
        return;
    mh_chain_close(h);
    for (size_t i = 0; i < c->nhooks; i++)
        mh_mem_free(h, c->hooks[i], sizeof *c->hooks[i]);
    for (size_t i = 0; i < c->nmeta; i++)
        mh_mem_free(h, c->meta[i], sizeof *c->meta[i]);
    mh_mem_free(h, c->hooks, c->hcap * sizeof *c->hooks);
    mh_mem_free(h, c->meta, c->mcap * sizeof *c->meta);
    pthread_rwlock_destroy(&c->lock);
}

static mh_hook *find_name(const mh_chain *c, const char *name)
{
    for (size_t i = 0; i < c->nhooks; i++)
        if (strcmp(c->hooks[i]->name, name) == 0)
            return c->hooks[i];
    for (size_t i = 0; i < c->nmeta; i++)
        if (strcmp(c->meta[i]->name, name) == 0)
            return c->meta[i];
    return NULL;
}

static const char *chain_names(mh_host *h, mh_hook **v, size_t n, char *buf,
                               size_t size)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%s", i ? ", " : "",
                              v[i]->name);
    MH_UNUSED(h);
    return buf;
}

/* Is cls a table this library can call? */
static mh_status check_class(mh_host *h, const mh_finder_class *cls,
                             bool meta, mh_error **err)
{
    if (!cls)
        return mh_err(h, err, MH_EINVAL, "finder class is NULL");
    if (cls->version != MH_FINDER_VERSION)
        return mh_err(h, err, MH_EVERSION, "finder '%s' is for finder API "
                      "version %u; this modhost (%s) implements version %d",
                      cls->name ? cls->name : "?", cls->version,
                      MH_VERSION_STRING, MH_FINDER_VERSION);
    if (cls->size < offsetof(mh_finder_class, reserved))
        return mh_err(h, err, MH_EVERSION, "finder '%s': class size %u is "
                      "smaller than this API's (%zu); use "
                      "MH_FINDER_CLASS_INIT", cls->name ? cls->name : "?",
                      cls->size, offsetof(mh_finder_class, reserved));
    const char *bad = !cls->name || !cls->name[0] ? "it has no name"
                    : !cls->open ? "it has no open function"
                    : !cls->find ? "it has no find function"
                    : !cls->close ? "it has no close function"
                    : !meta && !cls->scheme && !cls->claims
                        ? "a path hook needs a scheme or a claims function"
                    : cls->scheme && !mh_name_ident(cls->scheme,
                                                    strlen(cls->scheme))
                        ? "its scheme is not [A-Za-z_][A-Za-z0-9_]*"
                    : NULL;
    if (bad)
        return mh_err(h, err, MH_EINVAL, "finder '%s' refused: %s",
                      cls->name ? cls->name : "?", bad);
    return MH_OK;
}

/* Insert k into v at pos/anchor.  Write lock held. */
static mh_status insert_at(mh_host *h, mh_hook ***v, size_t *n, size_t *cap,
                           mh_hook *k, mh_chain_pos pos, const char *anchor,
                           mh_error **err)
{
    size_t at = pos == MH_CHAIN_FIRST ? 0 : *n;
    if (pos == MH_CHAIN_BEFORE || pos == MH_CHAIN_AFTER) {
        size_t i = 0;
        while (i < *n && (!anchor || strcmp((*v)[i]->name, anchor) != 0))
            i++;
        if (i == *n) {
            char names[512];
            return mh_err(h, err, MH_EINVAL, "cannot add finder '%s' %s "
                          "'%s': no such finder in the %s chain (it has: %s)",
                          k->name, pos == MH_CHAIN_BEFORE ? "before" : "after",
                          anchor ? anchor : "(NULL)",
                          k->meta ? "meta" : "path hook",
                          chain_names(h, *v, *n, names, sizeof names));
        }
        at = pos == MH_CHAIN_BEFORE ? i : i + 1;
    } else if (pos != MH_CHAIN_FIRST && pos != MH_CHAIN_LAST) {
        return mh_err(h, err, MH_EINVAL, "finder '%s': bad chain position %d",
                      k->name, (int)pos);
    }
    if (mh_mem_grow(h, (void **)v, cap, *n, sizeof **v, 8) != 0)
        return mh_err(h, err, MH_ENOMEM, "out of memory adding finder '%s'",
                      k->name);
    memmove(*v + at + 1, *v + at, (*n - at) * sizeof **v);
    (*v)[at] = k;
    (*n)++;
    return MH_OK;
}

static mh_status add_link(mh_host *h, const mh_finder_class *cls, void *ud,
                          bool meta, mh_chain_pos pos, const char *anchor,
                          const char *module, const mh_hook **out,
                          mh_error **err)
{
    bool is_path = cls == &path_link;
    mh_status rc = is_path ? MH_OK : check_class(h, cls, meta, err);
    if (rc != MH_OK)
        return rc;
    mh_hook *k = mh_mem_calloc(h, 1, sizeof *k);
    const char *name = mh_int_cstr(h, cls->name);
    if (!k || !name) {
        mh_mem_free(h, k, sizeof *k);
        return mh_err(h, err, MH_ENOMEM, "out of memory adding finder '%s'",
                      cls->name);
    }
    *k = (mh_hook){.cls = cls, .ud = ud, .name = name, .module = module,
                   .meta = meta, .is_path = is_path};
    /* A meta finder is opened before it is visible: outside the lock, as
     * its open may do anything. */
    if (meta && !is_path) {
        mh_error *oe = NULL;
        mh_fcx cx;
        mh_fcx_init(&cx, h, k, NULL, &oe);
        bool odd;
        int raw = (int)cls->open(&cx.pub, NULL, &k->state);
        rc = mh_fcx_status((mh_status)raw, &odd);
        if (rc == MH_OK) {
            mh_error_free(oe); /* an error() before an MH_OK */
            k->opened = true;
        } else {
            if (odd) {
                mh_error_free(oe);
                oe = NULL;
                mh_err(h, &oe, rc, "open returned %d, which is no mh_status",
                       raw);
            } else if (!oe) {
                mh_err(h, &oe, rc, "open failed (%s)", mh_strerror(rc));
            }
            rc = mh_err(h, err, rc, "meta finder '%s' could not be opened: "
                        "%s", name, mh_error_message(oe));
            mh_error_free(oe);
            mh_mem_free(h, k, sizeof *k);
            return rc;
        }
    }
    mh_chain *c = &h->chain;
    pthread_rwlock_wrlock(&c->lock);
    mh_hook *dup = find_name(c, name);
    size_t count = meta ? c->nmeta : c->nhooks;
    mh_hook *same_scheme = NULL;
    for (size_t i = 0; !meta && cls->scheme && i < c->nhooks; i++)
        if (c->hooks[i]->cls->scheme &&
            strcmp(c->hooks[i]->cls->scheme, cls->scheme) == 0)
            same_scheme = c->hooks[i];
    if (dup && dup->cls == cls && dup->meta == meta && out) {
        *out = dup; /* the same finder plugin, loaded by two threads */
        rc = MH_OK;
    } else if (dup) {
        rc = mh_err(h, err, MH_EINVAL, "cannot add finder '%s': a finder of "
                    "that name is already in the %s chain%s%s", name,
                    dup->meta ? "meta" : "path hook",
                    dup->module ? ", from module " : "",
                    dup->module ? dup->module : "");
    } else if (same_scheme) {
        rc = mh_err(h, err, MH_EINVAL, "cannot add finder '%s': the scheme "
                    "'%s:' is already claimed by finder '%s'; one scheme "
                    "has one finder", name, cls->scheme, same_scheme->name);
    } else if (count >= MH_CHAIN_MAX) {
        rc = mh_err(h, err, MH_EINVAL, "cannot add finder '%s': the %s "
                    "chain is full (%d links)", name,
                    meta ? "meta" : "path hook", MH_CHAIN_MAX);
    } else if (meta) {
        rc = insert_at(h, &c->meta, &c->nmeta, &c->mcap, k, pos, anchor, err);
    } else {
        rc = insert_at(h, &c->hooks, &c->nhooks, &c->hcap, k, pos, anchor,
                       err);
    }
    bool kept = rc == MH_OK && !(dup && out && *out == dup);
    pthread_rwlock_unlock(&c->lock);
    if (!kept) {
        close_link(h, k);
        mh_mem_free(h, k, sizeof *k);
        return rc;
    }
    if (out)
        *out = k;
    MH_TRACE(h, "finder chain: %s '%s' added%s%s", meta ? "meta finder"
             : "path hook", name, module ? " by module " : "",
             module ? module : "");
    return MH_OK;
}

/* The host whose claims() this thread is in, or NULL: a change to the
 * chain from there (while the chain is being asked) is refused. */
static __thread const mh_host *tl_claims;

static bool claims(mh_host *h, const mh_hook *k, const char *entry)
{
    const mh_finder_class *cls = k->cls;
    if (cls->claims) {
        mh_error *e = NULL;
        mh_fcx cx;
        mh_fcx_init(&cx, h, k, NULL, &e);
        const mh_host *up = tl_claims;
        tl_claims = h;
        int r = cls->claims(&cx.pub, entry);
        tl_claims = up;
        mh_error_free(e);
        return r != 0;
    }
    size_t n = strlen(cls->scheme);
    return strncmp(entry, cls->scheme, n) == 0 && entry[n] == ':';
}

const mh_hook *mh_chain_claim(mh_host *h, const char *entry,
                              const char *shown, const char **shadowed)
{
    mh_chain *c = &h->chain;
    const mh_hook *won = NULL;
    mh_buf b;
    mh_buf_init(&b, h, 0);
    const char *was = *shadowed; /* said when this entry was last claimed */
    *shadowed = NULL;
    /* The claims() are asked with no lock held, over a copy of the chain
     * (links live as long as the host): one that imports a module whose
     * init adds a path hook, on another thread, would otherwise wait for
     * that init while the init waits for the chain's write lock. */
    const mh_hook *links[MH_CHAIN_MAX];
    pthread_rwlock_rdlock(&c->lock);
    size_t n = c->nhooks;
    memcpy(links, c->hooks, n * sizeof *links);
    pthread_rwlock_unlock(&c->lock);
    for (size_t i = 0; i < n; i++) {
        if (!claims(h, links[i], entry))
            continue;
        if (!won)
            won = links[i];
        else
            mh_buf_printf(&b, "%s%s", b.len ? ", " : "", links[i]->name);
    }
    if (b.len && !b.failed) {
        *shadowed = mh_int_cstr(h, mh_buf_str(&b));
        if (*shadowed != was)
            mh_log(h, MH_LOG_WARN, "search path entry '%s' is claimed by "
                   "finder '%s'; also claimed by %s, which %s shadowed "
                   "(reorder the path hooks to change this)", shown,
                   won->name, mh_buf_str(&b),
                   strchr(mh_buf_str(&b), ',') ? "are" : "is");
    }
    mh_buf_free(&b);
    return won;
}

size_t mh_chain_meta(mh_host *h, const mh_hook **v, size_t max)
{
    mh_chain *c = &h->chain;
    pthread_rwlock_rdlock(&c->lock);
    size_t n = c->nmeta < max ? c->nmeta : max;
    for (size_t i = 0; i < n; i++)
        v[i] = c->meta[i];
    pthread_rwlock_unlock(&c->lock);
    return n;
}

void mh_chain_invalidate(mh_host *h)
{
    const mh_hook *v[MH_CHAIN_MAX];
    size_t n = mh_chain_meta(h, v, MH_CHAIN_MAX);
    for (size_t i = 0; i < n; i++)
        if (!v[i]->is_path)
            mh_fcx_invalidate(h, v[i], v[i]->state);
}

/* ---- finder plugins ----------------------------------------------------- */

/* The finder plugins this thread is importing, innermost last: an entry
 * waiting for one of them is passed over while it loads (the plugin cannot
 * be in it); entries of other schemes may load theirs, so a plugin may
 * live in an entry served by another plugin. */
#define LOADING_MAX 8
static _Thread_local const char *loading[LOADING_MAX];
static _Thread_local int nloading;
static _Thread_local unsigned long passed_over; /* entries skipped so */

static _Thread_local unsigned long passed_busy;

void mh_chain_pass_over(void)
{
    passed_over++;
}

void mh_chain_pass_over_busy(void)
{
    passed_over++;
    passed_busy++;
}

unsigned long mh_chain_passed_busy(void)
{
    return passed_busy;
}

unsigned long mh_chain_passed_over(void)
{
    return passed_over;
}

bool mh_chain_nested(void)
{
    return nloading > 0;
}

int mh_chain_loading(const char *entry)
{
    char modname[64];
    if (!mh_chain_scheme_plugin(entry, modname, sizeof modname))
        return 0;
    for (int i = 0; i < nloading; i++)
        if (strcmp(loading[i], modname) == 0)
            return i == nloading - 1 ? 1 : 2;
    return nloading == LOADING_MAX ? 2 : 0; /* too deep: pass them over */
}

bool mh_chain_scheme_plugin(const char *entry, char *modname, size_t size)
{
    size_t n = strcspn(entry, ":");
    if (entry[n] != ':' || n == 0 || n > 32 || !mh_name_ident(entry, n))
        return false;
    if (modname)
        snprintf(modname, size, "finders.%.*s", (int)n, entry);
    return true;
}

mh_status mh_chain_load_scheme(mh_host *h, const char *entry,
                               const mh_hook **hook, mh_error **err)
{
    *hook = NULL;
    char modname[64];
    if (!mh_chain_scheme_plugin(entry, modname, sizeof modname))
        return mh_err(h, err, MH_EPATH, "no finder handles this entry");
    const char *scheme = modname + sizeof "finders." - 1;

    MH_TRACE(h, "search path: no path hook claims '%s'; importing the "
             "finder plugin '%s'", scheme, modname);
    mh_module *m = NULL;
    mh_error *ie = NULL;
    if (nloading == LOADING_MAX)
        return mh_err(h, err, MH_EPATH, "finder plugin '%s': finder plugins "
                      "nested more than %d deep", modname, LOADING_MAX);
    loading[nloading++] = modname;
    mh_status rc = mh_import(h, modname, &m, &ie);
    nloading--;
    if (rc == MH_ECYCLE) {
        /* This thread is importing the plugin already (an application
         * imported finders.<scheme> by name): its entry waits. */
        mh_error_free(ie);
        return MH_ECYCLE;
    }
    if (rc != MH_OK) {
        /* The plugin's own "not found" lists entries, one a line: indented
         * one step more, under this entry's line of the outer list. */
        mh_buf inner;
        mh_buf_init(&inner, h, 0);
        for (const char *p = mh_error_message(ie), *nl; *p; p = nl + 1) {
            nl = strchrnul(p, '\n');
            mh_buf_add(&inner, p, (size_t)(nl - p));
            if (!*nl)
                break;
            mh_buf_puts(&inner, "\n  ");
        }
        /* Bundled finder plugins are installed in the first default
         * entry: with the defaults left out, say so. */
        bool flag = h->flags & MH_CONFIG_NO_DEFAULT_PATH;
        const char *var = h->path.defaults_var;
        char hint[320] = "";
        if (rc == MH_ENOTFOUND && (flag || var))
            snprintf(hint, sizeof hint, "\n    (the default entries, where "
                     "modhost's own finder plugins are installed, are not "
                     "on the search path: %s%s%s)",
                     flag ? "the host was made with " : "",
                     flag ? "MH_CONFIG_NO_DEFAULT_PATH" : var,
                     flag ? "" : " is set without ';;', which would keep "
                                 "them");
        rc = mh_err(h, err, rc, "no path hook claims the scheme '%s:', and "
                    "its finder plugin '%s' could not be imported: %s%s",
                    scheme, modname, inner.failed ? mh_error_message(ie)
                                                  : mh_buf_str(&inner),
                    hint);
        mh_buf_free(&inner);
        mh_error_free(ie);
        return rc;
    }
    void *addr = NULL;
    mh_error *se = NULL;
    if (mh_module_symbol_ex(m, MH_FINDER_EXPORT, &addr, &se) != MH_OK) {
        /* Not exported, or (a NULL class) exported with no address. */
        rc = mh_err(h, err, MH_ENOSYM, "finder plugin '%s': %s; a finder "
                    "plugin exports its class with MH_EXPORT(MH_FINDER_EXPORT, "
                    "&class)", modname, mh_error_message(se));
        mh_error_free(se);
        return rc;
    }
    const mh_finder_class *cls = addr;
    if (cls->version == MH_FINDER_VERSION &&
        cls->size >= offsetof(mh_finder_class, reserved) &&
        (!cls->scheme || strcmp(cls->scheme, scheme) != 0))
        return mh_err(h, err, MH_EFORMAT, "finder plugin '%s' (%s) declares "
                      "the scheme '%s', not '%s'", modname, mh_reg_where(m),
                      cls->scheme ? cls->scheme : "(none)", scheme);
    mh_error *ae = NULL;
    /* Its callbacks get, as cx->ud, what its init kept with set_userdata:
     * this host's instance of the plugin, where a static would be every
     * host's (one object serves them all). */
    void *ud = m->userdata;
    rc = add_link(h, cls, ud, false, MH_CHAIN_BEFORE, "fs", m->name, hook,
                  &ae);
    if (rc == MH_EINVAL) /* a chain without "fs": first, then */
        rc = add_link(h, cls, ud, false, MH_CHAIN_FIRST, NULL, m->name,
                      hook, NULL);
    if (rc != MH_OK)
        rc = mh_err(h, err, rc, "finder plugin '%s' (%s): %s", modname,
                    mh_reg_where(m), mh_error_message(ae));
    mh_error_free(ae);
    return rc;
}

/* ---- public API --------------------------------------------------------- */

/* A change to the chain needs its write lock: refused from the log hook
 * (which may run under its read lock) and from a claims() call (the
 * chain is being asked). */
static mh_status chain_entry_check(mh_host *h, const char *fn,
                                   mh_error **err)
{
    mh_status rc = mh_entry_check(h, fn, 0, err);
    if (rc == MH_OK && tl_claims == h)
        rc = mh_err(h, err, MH_EINVAL, "%s: called from a finder's claims(), "
                    "while the finder chain is being asked; register "
                    "finders outside claims()", fn);
    return rc;
}

mh_status mh_host_add_path_hook(mh_host *host, const mh_finder_class *cls,
                                void *ud, mh_chain_pos pos,
                                const char *anchor, mh_error **err)
{
    MH_BUSY(host);
    if (!host || !cls)
        return mh_err(host, err, MH_EINVAL,
                      "mh_host_add_path_hook: %s is NULL",
                      mh_null_name(2, host, "host", cls, "cls"));
    mh_status rc = chain_entry_check(host, "mh_host_add_path_hook", err);
    if (rc != MH_OK)
        return rc;
    rc = add_link(host, cls, ud, false, pos, anchor, NULL, NULL,
                            err);
    if (rc == MH_OK)
        mh_path_retry_unclaimed(host);
    return rc;
}

mh_status mh_host_add_meta_finder(mh_host *host, const mh_finder_class *cls,
                                  void *ud, mh_chain_pos pos,
                                  const char *anchor, mh_error **err)
{
    MH_BUSY(host);
    if (!host || !cls)
        return mh_err(host, err, MH_EINVAL,
                      "mh_host_add_meta_finder: %s is NULL",
                      mh_null_name(2, host, "host", cls, "cls"));
    mh_status rc = chain_entry_check(host, "mh_host_add_meta_finder", err);
    if (rc != MH_OK)
        return rc;
    return add_link(host, cls, ud, true, pos, anchor, NULL, NULL, err);
}

size_t mh_host_finder_count(mh_host *host)
{
    if (!host)
        return 0;
    pthread_rwlock_rdlock(&host->chain.lock);
    size_t n = host->chain.nmeta + host->chain.nhooks;
    pthread_rwlock_unlock(&host->chain.lock);
    return n;
}

mh_status mh_host_finder_info(mh_host *host, size_t i, mh_finder_info *info)
{
    if (!host || !info)
        return MH_EINVAL;
    size_t size = info->size;
    if (size < offsetof(mh_finder_info, reserved))
        return MH_EVERSION;
    memset(info, 0, size < sizeof *info ? size : sizeof *info);
    info->size = size;
    mh_chain *c = &host->chain;
    pthread_rwlock_rdlock(&c->lock);
    const mh_hook *k = i < c->nmeta ? c->meta[i]
                     : i - c->nmeta < c->nhooks ? c->hooks[i - c->nmeta]
                                                : NULL;
    if (k) {
        info->name = k->name;
        info->role = k->meta ? "meta" : "hook";
        info->scheme = k->cls->scheme;
        info->description = k->cls->description;
        info->module = k->module;
    }
    pthread_rwlock_unlock(&c->lock);
    return k ? MH_OK : MH_EINVAL;
}
