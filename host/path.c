/*
 * host/path.c -- building and keeping the search path.
 *
 * Order, first to last:
 *   1. config entries (mh_config.path, the CLI's -p);
 *   2. the path variable (MODHOST_PATH, or the application's own name),
 *      ';'-separated; its first ";;" stands for the default entries, as in
 *      LUA_PATH.  When the variable is set without ";;" the defaults are
 *      left out: the operator said exactly what to search;
 *   3. otherwise the defaults: <libdir>/modhost/modules next to the
 *      libmodhost.so actually loaded (so an installed tree can move), then
 *      $XDG_DATA_HOME/modhost/modules.
 * An entry must be an absolute path or a URI (scheme:...).  Relative,
 * empty and "." entries would depend on the working directory, a classic
 * way to load the wrong code, so they are refused with a warning.  Exact
 * duplicates are dropped.
 */
#include "host/internal.h"
#include "cache/stamp.h"
#include "cache/blobs.h"
#include "host/tops.h"
#include "host/secure.h"
#include "finders/finder.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *const source_names[] = {
    [MH_SOURCE_CONFIG] = "config",
    [MH_SOURCE_ENV] = "environment",
    [MH_SOURCE_DEFAULT] = "default",
    [MH_SOURCE_API] = "api",
};

const char *mh_path_source_name(mh_path_source src)
{
    if ((unsigned)src >= MH_ARRAY_LEN(source_names))
        return "unknown";
    return source_names[src];
}

/* A control character (a newline, say) is in no path anyone means, and
 * would reach every message that names the entry (mh_control_len). */
static bool has_control(const char *t)
{
    for (; *t; t++)
        if (mh_control_len(t))
            return true;
    return false;
}

/* Why t is no acceptable entry, or NULL. */
static const char *refusal(const char *t)
{
    if (!t[0])
        return "empty entries are not allowed";
    if (strcmp(t, ".") == 0)
        return "the current directory is not allowed; use an absolute path";
    if (has_control(t))
        return "it holds a control character (shown as \\xNN)";
    if (!mh_path_acceptable(t))
        return "it is neither an absolute path nor a URI (scheme:rest); "
               "relative paths are not allowed";
    return NULL;
}

const char *mh_path_show_escaped(mh_host *h, const char *t, char *buf,
                                 size_t size)
{
    mh_buf b; /* not interned: the entry is not kept */
    mh_buf_init(&b, h, 0);
    mh_path_mask(t, &b);
    const char *shown = b.failed ? "(out of memory)" : mh_buf_str(&b);
    const char *rest;
    size_t o = mh_escape(buf, size - 3, shown, SIZE_MAX, false, &rest);
    if (*rest) /* cut: said so */
        memcpy(buf + o, "...", 4);
    mh_buf_free(&b);
    return buf;
}

bool mh_path_acceptable(const char *t)
{
    if (has_control(t))
        return false;
    if (t[0] == '/')
        return true;
    /* scheme ":" rest, scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) */
    if (!((t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z')))
        return false;
    size_t i = 1;
    while ((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
           (t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '-' ||
           t[i] == '.')
        i++;
    return t[i] == ':' && t[i + 1] != '\0';
}

static void entry_close(mh_host *h, mh_pentry *e)
{
    const mh_hook *k = atomic_load(&e->finder);
    if (k && !e->closed) /* every instance open made, NULL state or not */
        mh_fcx_close(h, k, e->state);
    e->closed = true;
    e->state = NULL;
}

static void entry_free(mh_host *h, mh_pentry *e)
{
    entry_close(h, e);
    mh_error_free(e->open_error);
    mh_mem_free(h, e, sizeof *e);
}

/* Insert (write lock held by caller, or during init). */
size_t mh_path_canon(char *t, size_t len)
{
    if (t[0] != '/')
        return len; /* a URI is its finder's business */
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        if (!(t[i] == '/' && o > 0 && t[o - 1] == '/'))
            t[o++] = t[i];
    while (o > 1 && t[o - 1] == '/')
        o--;
    t[o] = '\0';
    return o;
}

/* The userinfo of the authority at auth: it ends at the authority's last
 * '@' ("u:p@ss@host"), and what is hidden is its password, or the whole
 * of it when it has no ':' (a token).  `lenient`: with no '@' in the
 * authority, a later '@' with a ':' before it ends it too -- a password
 * holding '/', '?' or '#' makes a URL curl refuses, but it must not be
 * shown either (a URL with a port and an '@' in its path is then masked
 * too: more than needed, never less).  False if there is none. */
static bool userinfo(const char *auth, bool lenient, const char **from,
                     const char **at)
{
    size_t alen = strcspn(auth, "/?#");
    const char *a = memrchr(auth, '@', alen), *colon;
    if (a) {
        colon = memchr(auth, ':', (size_t)(a - auth));
        *from = colon ? colon + 1 : auth;
        *at = a;
        return true;
    }
    if (!lenient || !(a = strrchr(auth, '@')) ||
        !(colon = memchr(auth, ':', (size_t)(a - auth))))
        return false;
    *from = colon + 1;
    *at = a;
    return true;
}

bool mh_path_mask(const char *t, mh_buf *out)
{
    /* The entry's own authority: after its scheme, read at the start
     * (http and https with any number of slashes, "https:/u:p@h" being
     * malformed but shown too; other schemes after "//"). */
    const char *auth = NULL;
    size_t sl = 0;
    if (isalpha((unsigned char)t[0]))
        for (sl = 1; isalnum((unsigned char)t[sl]) || t[sl] == '+' ||
                     t[sl] == '-' || t[sl] == '.';)
            sl++;
    if (sl && t[sl] == ':') {
        auth = t + sl + 1;
        if ((sl == 4 && strncasecmp(t, "http", 4) == 0) ||
            (sl == 5 && strncasecmp(t, "https", 5) == 0)) {
            while (*auth == '/')
                auth++;
        } else if (auth[0] == '/' && auth[1] == '/') {
            auth += 2;
        } else {
            auth = NULL; /* sqlite:/path, tar:/path: no authority */
        }
    }
    /* Then every "scheme://" further on (a URL inside a path or a query)
     * has its userinfo hidden too: whatever the entry means, no password
     * in it is shown. */
    const char *done = t, *from, *at, *p = t;
    bool masked = false, lenient = true;
    for (;;) {
        if (!auth) {
            const char *next = strstr(p, "://");
            if (!next)
                break;
            auth = next + 3;
        }
        if (userinfo(auth, lenient, &from, &at) && from >= done) {
            mh_buf_add(out, done, (size_t)(from - done));
            mh_buf_puts(out, "***");
            done = at;
            masked = true;
            p = at;
        } else {
            p = auth;
        }
        lenient = false; /* the entry's own authority, or the first */
        auth = NULL;
    }
    mh_buf_puts(out, done);
    return masked;
}

const char *mh_path_shown(mh_host *h, const char *t)
{
    mh_buf b;
    mh_buf_init(&b, h, 0);
    bool masked = mh_path_mask(t, &b);
    const char *r = !masked ? t
                  : b.failed ? NULL : mh_int_cstr(h, mh_buf_str(&b));
    mh_buf_free(&b);
    return r;
}

/* Add text at pos, or, for an API call, move the same entry there
 * (moved, if not NULL: its old and new places, the old SIZE_MAX when
 * nothing moved, and *moved_shown the entry as shown: the caller traces
 * it once it holds no lock a log hook could want). */
static mh_status insert(mh_host *h, const char *text, size_t len,
                        mh_path_source src, size_t pos, size_t moved[2],
                        const char **moved_shown, mh_error **err)
{
    if (moved)
        moved[0] = SIZE_MAX;
    mh_path *p = &h->path;
    char buf[PATH_MAX];
    if (len >= sizeof buf)
        return mh_err(h, err, MH_EPATH, "search path entry longer than %d "
                      "bytes", PATH_MAX - 1);
    memcpy(buf, text, len);
    buf[len] = '\0';
    len = mh_path_canon(buf, len);
    const char *t = mh_int_str(h, buf, len);
    if (!t)
        return mh_err(h, err, MH_ENOMEM, "out of memory adding entry");
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i]->text != t)
            continue;
        if (src != MH_SOURCE_API) { /* the first spelling stands */
            MH_TRACE(h, "search path: '%s' (%s) is already entry %zu; "
                     "dropped", p->v[i]->shown, mh_path_source_name(src), i);
            return MH_OK;
        }
        /* mh_host_add_path of an entry already there: it goes where it
         * was asked for (to the front, say, to take precedence), with
         * its finder and state. */
        mh_pentry *e = p->v[i];
        if (pos >= p->n)
            pos = p->n - 1;
        if (pos < i)
            memmove(p->v + pos + 1, p->v + pos, (i - pos) * sizeof *p->v);
        else if (pos > i)
            memmove(p->v + i, p->v + i + 1, (pos - i) * sizeof *p->v);
        p->v[pos] = e;
        if (moved) {
            moved[0] = i;
            moved[1] = pos;
            *moved_shown = e->shown;
        }
        return MH_OK;
    }
    if (mh_mem_grow(h, (void **)&p->v, &p->cap, p->n, sizeof *p->v, 8) != 0)
        return mh_err(h, err, MH_ENOMEM, "out of memory adding entry");
    mh_pentry *e = mh_mem_calloc(h, 1, sizeof *e);
    if (!e)
        return mh_err(h, err, MH_ENOMEM, "out of memory adding entry");
    e->text = t;
    e->shown = mh_path_shown(h, t);
    if (!e->shown) {
        mh_mem_free(h, e, sizeof *e);
        return mh_err(h, err, MH_ENOMEM, "out of memory adding entry");
    }
    e->source = src;
    e->opening.host = h;
    e->opening.kind = "search path entry";
    e->opening.what = e->shown;
    atomic_init(&e->opening.owner, NULL);
    atomic_init(&e->finder, NULL);
    atomic_init(&e->asked, 0);
    atomic_init(&e->stale, false);
    if (pos > p->n)
        pos = p->n;
    memmove(p->v + pos + 1, p->v + pos, (p->n - pos) * sizeof *p->v);
    p->v[pos] = e;
    p->n++;
    return MH_OK;
}

/* Append one field of a ';'-list, refusing what is not absolute. */
static int add_field(mh_host *h, const char *s, size_t len,
                     mh_path_source src, const char *where)
{
    char text[PATH_MAX];
    if (len >= sizeof text) {
        /* Named by its start, with a password in it masked: the whole
         * entry is masked first (a password cut off before its '@'
         * would not be). */
        char start[64];
        char *whole = mh_mem_strndup(h, s, len);
        mh_log(h, MH_LOG_WARN, "ignoring search path entry '%s' from %s: "
               "longer than %d bytes",
               whole ? mh_path_show_escaped(h, whole, start, sizeof start)
                     : "(out of memory to show it)", where, PATH_MAX - 1);
        mh_mem_strfree(h, whole);
        return 0;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    const char *why = refusal(text);
    if (why) {
        char shown[2 * PATH_MAX];
        mh_log(h, MH_LOG_WARN, "ignoring search path entry '%s' from %s: %s",
               mh_path_show_escaped(h, text, shown, sizeof shown), where, why);
        return 0;
    }
    mh_error *err = NULL;
    if (insert(h, text, len, src, (size_t)-1, NULL, NULL, &err) != MH_OK) {
        mh_error_free(err);
        return -1;
    }
    return 0;
}

static int add_list(mh_host *h, const char *s, size_t len,
                    mh_path_source src, const char *where)
{
    size_t i = 0;
    if (len == 0)
        return 0;
    for (;;) {
        size_t j = i;
        while (j < len && s[j] != ';')
            j++;
        if (add_field(h, s + i, j - i, src, where) != 0)
            return -1;
        if (j >= len)
            return 0;
        i = j + 1;
    }
}

/* <dir of libmodhost.so>/modhost/modules */
static int add_lib_default(mh_host *h)
{
    Dl_info info;
    char lib[PATH_MAX], dir[PATH_MAX + 32];
    if (!dladdr((void *)&mh_host_new, &info) || !info.dli_fname)
        return 0;
    if (!realpath(info.dli_fname, lib))
        return 0;
    char *slash = strrchr(lib, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    int n = snprintf(dir, sizeof dir, "%s/%s", lib[0] ? lib : "",
                     MODHOST_MODULE_RELDIR);
    if (n < 0 || (size_t)n >= sizeof dir)
        return 0;
    return add_field(h, dir, (size_t)n, MH_SOURCE_DEFAULT, "the defaults");
}

static int add_defaults(mh_host *h)
{
    if (h->flags & MH_CONFIG_NO_DEFAULT_PATH)
        return 0;
    if (add_lib_default(h) != 0)
        return -1;
    char dir[PATH_MAX];
    const char *xdg = mh_host_getenv(h, "XDG_DATA_HOME");
    const char *home = mh_host_getenv(h, "HOME");
    int n = -1;
    if (xdg && xdg[0] == '/')
        n = snprintf(dir, sizeof dir, "%s/modhost/modules", xdg);
    else if (home && home[0] == '/')
        n = snprintf(dir, sizeof dir, "%s/.local/share/modhost/modules", home);
    if (n > 0 && (size_t)n < sizeof dir)
        return add_field(h, dir, (size_t)n, MH_SOURCE_DEFAULT, "the defaults");
    return 0;
}

int mh_path_init(mh_host *h, const mh_config *cfg)
{
    mh_path *p = &h->path;
    memset(p, 0, sizeof *p);
    pthread_rwlock_init(&p->lock, NULL);

    if (cfg->path && !cfg->path[0] &&
        add_field(h, "", 0, MH_SOURCE_CONFIG, "the configuration") != 0)
        return -1; /* warns: an empty entry */
    if (cfg->path && add_list(h, cfg->path, strlen(cfg->path),
                              MH_SOURCE_CONFIG, "the configuration") != 0)
        return -1;

    const char *var = cfg->path_env ? cfg->path_env : "MODHOST_PATH";
    const char *env = (h->flags & MH_CONFIG_ISOLATED)
                          ? NULL : mh_host_getenv(h, var);
    if (!env || !env[0])
        return add_defaults(h);

    char where[128];
    snprintf(where, sizeof where, "%s", var);
    size_t before = p->n;
    const char *mark = strstr(env, ";;");
    if (!mark) {
        MH_TRACE(h, "search path: %s is set without ';;': no default entries",
                 var);
        p->defaults_var = mh_int_cstr(h, var);
        if (!p->defaults_var)
            p->defaults_var = "the search path's variable";
        if (add_list(h, env, strlen(env), MH_SOURCE_ENV, where) != 0)
            return -1;
        if (p->n == before)
            mh_log(h, MH_LOG_WARN, "%s has no usable entry, and without ';;' "
                   "it leaves out the defaults: nothing from it is searched",
                   var);
        return 0;
    }
    if (add_list(h, env, (size_t)(mark - env), MH_SOURCE_ENV, where) != 0 ||
        add_defaults(h) != 0)
        return -1;
    return add_list(h, mark + 2, strlen(mark + 2), MH_SOURCE_ENV, where);
}

void mh_path_free(mh_host *h)
{
    mh_path *p = &h->path;
    for (size_t i = 0; i < p->n; i++)
        entry_free(h, p->v[i]);
    mh_mem_free(h, p->v, p->cap * sizeof *p->v);
    p->v = NULL;
    p->n = p->cap = 0;
    pthread_rwlock_destroy(&p->lock);
}

void mh_path_close(mh_host *h)
{
    for (size_t i = 0; i < h->path.n; i++)
        entry_close(h, h->path.v[i]);
}

/* Open the instance of hook k for e.  Entry lock held. */
static mh_status entry_open(mh_host *h, mh_pentry *e, const mh_hook *k,
                            mh_error **err)
{
    void *st = NULL;
    mh_fcx cx;
    mh_fcx_init(&cx, h, k, NULL, err);
    bool odd;
    int raw = (int)k->cls->open(&cx.pub, e->text, &st);
    mh_status rc = mh_fcx_status((mh_status)raw, &odd);
    if (odd) {
        mh_error_free(*err);
        *err = NULL;
        mh_err(h, err, rc, "finder '%s' returned %d, which is no mh_status",
               k->name, raw);
    }
    if (rc == MH_OK) {
        e->state = st;
        MH_TRACE(h, "search path: '%s' claimed by finder '%s'%s%s", e->shown,
                 k->name, e->shadowed ? "; shadowed: " : "",
                 e->shadowed ? e->shadowed : "");
        atomic_store_explicit(&e->finder, k, memory_order_release);
    } else if (!*err) {
        mh_err(h, err, rc, "finder '%s' could not open it (%s)", k->name,
               mh_strerror(rc));
    } else if (!odd &&
               (strncmp(mh_error_message(*err), k->name, strlen(k->name)) != 0
                || mh_error_message(*err)[strlen(k->name)] != ':')) {
        /* Name the finder, unless its message does already. */
        mh_error *wrapped = NULL;
        mh_err(h, &wrapped, rc, "finder '%s': %s", k->name,
               mh_error_message(*err));
        mh_error_free(*err);
        *err = wrapped;
    }
    return rc;
}

/* How many entries this thread is opening, one inside the other: their
 * finders' claims() or open() may import (a finder needing a helper
 * module), and that import walks the path back to the entry being opened,
 * which this thread holds: it passes over it (mh_reg_olock_take: MINE). */
static _Thread_local int nopening;

mh_olock_r mh_path_entry_lock(mh_pentry *e)
{
    return mh_reg_olock_take(&e->opening, NULL);
}

void mh_path_entry_unlock(mh_pentry *e, mh_olock_r how)
{
    if (how == MH_OLOCK_TAKEN)
        mh_reg_olock_give(&e->opening);
}

/* Take e to open it: false (e passed over, the reason in `why`) when this
 * thread opens it already, or its opener waits for this thread. */
static bool open_begin(mh_pentry *e, mh_buf *why)
{
    mh_buf busy;
    mh_buf_init(&busy, e->opening.host, 0);
    mh_olock_r r = mh_reg_olock_take(&e->opening, why ? &busy : NULL);
    if (r == MH_OLOCK_TAKEN) {
        atomic_store(&e->stale, false); /* this open sees what is now */
        nopening++;
        mh_buf_free(&busy);
        return true;
    }
    /* Passed over, not settled: a finder plugin this walk looks for may
     * be in it (mh_chain_pass_over: the import that fails for that is
     * tried again later, not marked broken). */
    if (r == MH_OLOCK_BUSY)
        mh_chain_pass_over_busy();
    else
        mh_chain_pass_over();
    if (why && r == MH_OLOCK_MINE)
        mh_buf_puts(why, "no finder yet (its claims() or open() is running "
                    "on this thread, and imports)");
    else if (why)
        mh_buf_printf(why, "not waited for: its finder is being opened by "
                      "%s", busy.failed ? "another thread, which waits for "
                      "this one" : mh_buf_str(&busy));
    mh_buf_free(&busy);
    return false;
}

static void open_end(mh_pentry *e)
{
    nopening--;
    mh_reg_olock_give(&e->opening);
}

mh_status mh_path_finder(mh_host *h, mh_pentry *e, const mh_hook **hook,
                         void **state, mh_buf *why)
{
    const mh_hook *c = atomic_load_explicit(&e->finder, memory_order_acquire);
    *hook = c;
    *state = c ? e->state : NULL;
    if (c)
        return MH_OK;
    /* Nothing is opened from the log hook, which may run with locks held
     * that an open takes (the notifier's), or for a host being freed
     * (its entries were closed: what opened now would never be); and
     * nothing is settled: the entry is opened by the next walk. */
    if (mh_in_log_hook(h) || atomic_load(&h->closing)) {
        if (why)
            mh_buf_puts(why, mh_in_log_hook(h)
                        ? "not opened from the host's log hook"
                        : "not opened: the host is being freed");
        return MH_EPATH;
    }
    if (!open_begin(e, why))
        return MH_EPATH;
    mh_status rc = MH_EPATH;
    c = atomic_load_explicit(&e->finder, memory_order_relaxed);
    /* A settled failure is looked at again now and then: the operator may
     * have mended the entry (its mode, an owner, the file) while the
     * application runs.  Its error is kept until the new attempt settles,
     * which warns only of something new. */
    if (!c && e->tried && mh_mono_ms() >= e->retry_at)
        e->tried = false;
    if (!c && !e->tried) {
        mh_error *oerr = NULL;
        /* Cycles and deadlocks this thread has had refused so far: one
         * more by the end means the failure met an import in progress. */
        unsigned long refused = mh_reg_refused_waits();
        const mh_hook *k = mh_chain_claim(h, e->text, e->shown,
                                          &e->shadowed);
        e->claimant = k ? k->name : NULL;
        bool plugin = !k && mh_chain_scheme_plugin(e->text, NULL, 0);
        int loading = plugin ? mh_chain_loading(e->text) : 0;
        if (loading) {
            /* This thread is importing this entry's finder plugin: the
             * plugin cannot be in the entry that waits for it. */
            if (loading == 2)
                mh_chain_pass_over();
            open_end(e);
            if (why)
                mh_buf_puts(why, "passed over: its own finder plugin is "
                            "what is being looked for");
            return MH_EPATH;
        }
        if (plugin) {
            /* A finder plugin, imported with no entry lock held: the
             * import walks this very path. */
            open_end(e);
            unsigned long passed = mh_chain_passed_over();
            unsigned long busy = mh_chain_passed_busy();
            rc = mh_chain_load_scheme(h, e->text, &k, &oerr);
            if (rc == MH_ECYCLE ||
                (rc != MH_OK && (mh_chain_passed_busy() != busy ||
                                 (mh_chain_passed_over() != passed &&
                                  (mh_chain_nested() || nopening > 0))))) {
                /* The plugin is on its way, or the walk that looked for it
                 * passed over entries still waiting for theirs (it may be
                 * in one): not settled, tried again next time. */
                if (why)
                    mh_buf_puts(why, rc == MH_ECYCLE
                                ? "no finder yet (its finder plugin is "
                                  "being imported)"
                                : "no finder yet (its finder plugin may be "
                                  "in an entry whose own finder is being "
                                  "loaded)");
                mh_error_free(oerr);
                return MH_EPATH;
            }
            if (!open_begin(e, why)) {
                mh_error_free(oerr);
                return MH_EPATH;
            }
            c = atomic_load_explicit(&e->finder, memory_order_relaxed);
            if (k && !c && !e->tried) {
                const mh_hook *loaded = k;
                k = mh_chain_claim(h, e->text, e->shown, &e->shadowed);
                e->claimant = k ? k->name : NULL;
                if (!k)
                    rc = mh_err(h, &oerr, MH_EPATH, "finder plugin '%s' was "
                                "loaded for this entry's scheme, but its "
                                "claims() does not take the entry",
                                loaded->module ? loaded->module
                                               : loaded->name);
            }
        } else if (!k) {
            /* A file the finders could not look into says why: the
             * sqlite finder knows a database by its first bytes. */
            char unread[96] = ""; /* asked without opening: a FIFO's */
            if (e->text[0] == '/' &&
                faccessat(AT_FDCWD, e->text, R_OK, AT_EACCESS) != 0)
                snprintf(unread, sizeof unread, "it cannot be read: %s; ",
                         mh_errno_text(errno));
            rc = mh_err(h, &oerr, MH_EPATH, "no finder handles this entry "
                        "(%spath hooks: directories, sqlite:, http(s):, and "
                        "finders/<scheme>.so plugins)", unread);
        }
        if (c || e->tried) {
            mh_error_free(oerr); /* another thread settled it meanwhile */
            oerr = NULL;
        } else if (k) {
            mh_error_free(oerr);
            oerr = NULL;
            rc = entry_open(h, e, k, &oerr);
            if (rc == MH_OK) {
                c = k;
                mh_error_free(oerr); /* an error() before an MH_OK */
                oerr = NULL;
            }
        }
        if (!c && oerr && (rc == MH_ENOMEM || rc == MH_EAGAIN)) {
            /* Passing: the entry is tried again next time.  An import's
             * walk stops here with this as its error (host/find.c: the
             * entry may hold the module); anyone else is warned. */
            if (rc == MH_EAGAIN && !why)
                mh_log(h, MH_LOG_WARN, "search path entry '%s' not usable "
                       "now: %s", e->shown, mh_error_message(oerr));
            if (why)
                mh_buf_puts(why, mh_error_message(oerr));
            mh_error_free(oerr);
            oerr = NULL;
        } else if (!c && oerr &&
                   (atomic_exchange(&e->stale, false) ||
                    mh_reg_refused_waits() != refused)) {
            /* Invalidated while it opened, or its open imported a module
             * that this thread, or one waiting for it, was importing (a
             * cycle through the import that opened it: the helper of
             * open() found before the entry is ready): not settled, tried
             * again at the next use. */
            if (why)
                mh_buf_puts(why, mh_error_message(oerr));
            mh_error_free(oerr);
            oerr = NULL;
        } else if (!c && oerr) {
            bool again = e->open_error &&
                         strcmp(mh_error_message(e->open_error),
                                mh_error_message(oerr)) == 0;
            e->tried = true;
            /* A finder plugin that could not be imported is not imported
             * again each second: that import walks the whole path, and
             * runs the plugin's init (or its probe) again.  Its entry
             * waits for mh_invalidate_caches or a new path hook. */
            e->retry_at = plugin && !k ? LLONG_MAX
                                       : mh_mono_ms() + MH_ENTRY_RETRY_MS;
            if (!again || h->verbose)
                mh_log(h, again ? MH_LOG_TRACE : MH_LOG_WARN,
                       "search path entry '%s' skipped: %s", e->shown,
                       mh_error_message(oerr));
            mh_error_free(e->open_error);
            e->open_error = oerr;
        }
        if (!e->tried && e->open_error) {
            /* Opened at last, or failing in passing now: the settled
             * failure no longer holds. */
            mh_error_free(e->open_error);
            e->open_error = NULL;
        }
    }
    if (c)
        rc = MH_OK;
    else if (rc != MH_ENOMEM && rc != MH_EAGAIN && why && e->open_error)
        mh_buf_puts(why, mh_error_message(e->open_error));
    open_end(e);
    *hook = c;
    *state = c ? e->state : NULL;
    return rc;
}

/* Let entry e, if it has no finder, be tried again (`how` from
 * mh_path_entry_lock).  One being opened -- by another thread that waits
 * for this one, or by this thread, deeper down -- is marked stale
 * instead: whatever its open meets is not kept. */
static void entry_unsettle(mh_pentry *e, mh_olock_r how)
{
    if (atomic_load(&e->finder))
        return;
    if (how != MH_OLOCK_TAKEN) {
        atomic_store(&e->stale, true);
        return;
    }
    e->tried = false;
    mh_error_free(e->open_error);
    e->open_error = NULL;
}

/* Every entry unsettled (entry_unsettle), and with `invalidate` its
 * finder instance told to forget what it knows first. */
static void unsettle_all(mh_host *h, bool invalidate)
{
    mh_path_snap s;
    mh_path_snap_take(h, &s, NULL, NULL);
    for (size_t i = 0; i < s.n; i++) {
        mh_pentry *e = s.v[i];
        mh_olock_r how = mh_path_entry_lock(e);
        const mh_hook *c = atomic_load(&e->finder);
        if (c && invalidate)
            mh_fcx_invalidate(h, c, e->state);
        entry_unsettle(e, how);
        mh_path_entry_unlock(e, how);
    }
    mh_path_snap_free(h, &s);
}

void mh_path_retry_unclaimed(mh_host *h)
{
    unsettle_all(h, false);
}

/* ---- public API --------------------------------------------------------- */

/* The hosts whose search path lock this thread holds for reading, and
 * how many times: a few at most (a finder of one host importing through
 * another); past MH_WALKS_TRACKED, not recorded. */
#define MH_WALKS_TRACKED 8
static __thread struct {
    const mh_host *h;
    unsigned n;
} tl_walk[MH_WALKS_TRACKED];

static void path_rdlock(mh_host *h)
{
    pthread_rwlock_rdlock(&h->path.lock);
    size_t free_slot = MH_WALKS_TRACKED;
    for (size_t i = 0; i < MH_WALKS_TRACKED; i++) {
        if (tl_walk[i].h == h) {
            tl_walk[i].n++;
            return;
        }
        if (!tl_walk[i].h && free_slot == MH_WALKS_TRACKED)
            free_slot = i;
    }
    if (free_slot < MH_WALKS_TRACKED) {
        tl_walk[free_slot].h = h;
        tl_walk[free_slot].n = 1;
    }
}

static void path_rdunlock(mh_host *h)
{
    for (size_t i = 0; i < MH_WALKS_TRACKED; i++)
        if (tl_walk[i].h == h) {
            if (--tl_walk[i].n == 0)
                tl_walk[i].h = NULL;
            break;
        }
    pthread_rwlock_unlock(&h->path.lock);
}

bool mh_path_walking(const mh_host *h)
{
    for (size_t i = 0; i < MH_WALKS_TRACKED; i++)
        if (tl_walk[i].h == h)
            return true;
    return false;
}

void mh_path_snap_take(mh_host *h, mh_path_snap *s,
                       void (*under)(mh_host *h, size_t n, void *ud),
                       void *ud)
{
    s->heap = NULL;
    s->locked = false;
    path_rdlock(h);
    size_t n = h->path.n;
    mh_pentry **to = s->in;
    if (n > MH_PATH_SNAP_INLINE) {
        s->heap = mh_fault(h, "path-copy")
                      ? NULL
                      : mh_mem_alloc(h, n * sizeof *s->heap);
        to = s->heap;
    }
    if (under)
        under(h, n, ud);
    s->n = n;
    if (!to) { /* out of memory: walk the path itself, under its lock */
        s->v = h->path.v;
        s->locked = true;
        return;
    }
    if (n)
        memcpy(to, h->path.v, n * sizeof *to);
    s->v = to;
    path_rdunlock(h);
}

void mh_path_snap_free(mh_host *h, mh_path_snap *s)
{
    if (s->locked)
        path_rdunlock(h);
    if (s->heap)
        mh_mem_free(h, s->heap, s->n * sizeof *s->heap);
    s->locked = false;
    s->heap = NULL;
    s->n = 0;
}

mh_pentry *mh_path_at(mh_host *h, size_t i)
{
    path_rdlock(h);
    mh_pentry *e = i < h->path.n ? h->path.v[i] : NULL;
    path_rdunlock(h);
    return e;
}

mh_status mh_host_add_path(mh_host *host, const char *entry, size_t pos,
                           mh_error **err)
{
    MH_BUSY(host);
    if (!host || !entry)
        return mh_err(host, err, MH_EINVAL, "mh_host_add_path: %s is NULL",
                      mh_null_name(2, host, "host", entry, "entry"));
    mh_status grc = mh_entry_check(host, "mh_host_add_path", MH_ENTRY_PATH, err);
    if (grc != MH_OK)
        return grc;
    const char *why = refusal(entry);
    if (why) {
        char shown[2 * PATH_MAX];
        return mh_err(host, err, MH_EPATH, "search path entry '%s' refused: "
                      "%s",
                      mh_path_show_escaped(host, entry, shown, sizeof shown),
                      why);
    }
    size_t moved[2];
    const char *shown = NULL;
    /* Nothing under the write lock logs: a log hook reading the path
     * would wait for it. */
    pthread_rwlock_wrlock(&host->path.lock);
    mh_status rc = insert(host, entry, strlen(entry), MH_SOURCE_API, pos,
                          moved, &shown, err);
    if (rc == MH_OK)
        mh_tops_forget(host); /* entries moved: what was skipped is not */
    pthread_rwlock_unlock(&host->path.lock);
    if (moved[0] != SIZE_MAX)
        MH_TRACE(host, "search path: '%s' moved from entry %zu to %zu",
                 shown, moved[0], moved[1]);
    return rc;
}

size_t mh_host_path_count(mh_host *host)
{
    if (!host)
        return 0;
    path_rdlock(host);
    size_t n = host->path.n;
    path_rdunlock(host);
    return n;
}

mh_status mh_host_path_entry(mh_host *host, size_t i, const char **entry,
                             mh_path_source *source, const char **finder)
{
    MH_BUSY(host);
    if (entry) *entry = NULL;
    if (finder) *finder = NULL;
    if (source) *source = MH_SOURCE_CONFIG;
    if (!host)
        return MH_EINVAL;
    mh_pentry *e = mh_path_at(host, i);
    if (!e)
        return MH_EINVAL;
    const mh_hook *c;
    void *state;
    mh_path_finder(host, e, &c, &state, NULL); /* who claims it */
    if (entry) *entry = e->shown;
    if (source) *source = e->source;
    if (finder) *finder = c ? c->name : NULL;
    return MH_OK;
}

mh_status mh_host_path_entry_info(mh_host *host, size_t i,
                                  mh_path_entry_info *info)
{
    MH_BUSY(host);
    if (!host || !info)
        return MH_EINVAL;
    size_t size = info->size;
    if (size < offsetof(mh_path_entry_info, asked)) /* the first fields */
        return MH_EVERSION;
    memset(info, 0, size < sizeof *info ? size : sizeof *info);
    info->size = size;
    mh_pentry *e = mh_path_at(host, i);
    mh_status rc = MH_EINVAL;
    if (e) {
        const mh_hook *c;
        void *state;
        mh_path_finder(host, e, &c, &state, NULL);
        mh_olock_r how = mh_path_entry_lock(e);
        bool readable = how != MH_OLOCK_BUSY; /* else being opened */
        info->entry = e->shown;
        info->source = e->source;
        info->finder = c ? c->name : readable ? e->claimant : NULL;
        info->shadowed = readable ? e->shadowed : NULL;
        /* The error text is interned: it lives as long as the host even
         * if the entry is retried and its error replaced. */
        info->error = !c && readable && e->open_error
                          ? mh_int_cstr(host, mh_error_message(e->open_error))
                          : NULL;
        if (size >= offsetof(mh_path_entry_info, asked) + sizeof info->asked)
            info->asked = atomic_load_explicit(&e->asked,
                                               memory_order_relaxed);
        mh_path_entry_unlock(e, how);
        rc = MH_OK;
    }
    return rc;
}

void mh_invalidate_caches(mh_host *host)
{
    MH_BUSY(host);
    if (!host || mh_entry_check(host, "mh_invalidate_caches", 0, NULL) !=
                     MH_OK)
        return; /* it could wait for this thread: see the header */
    unsettle_all(host, true);
    mh_tops_forget(host);
    mh_chain_invalidate(host);
    mh_sec_forget(host);
    mh_stamp_forget(host);
    mh_blobs_forget(host);
}
