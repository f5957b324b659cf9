/*
 * disc.c -- helpers for the discovery tests: one mh_discover call caught
 * whole (every module's metadata as one comparable line, and what the
 * host traced about reading), entry points and recorded failures as
 * lists, file ages set by hand so the "changed less than 2 s ago" rule
 * only applies where a test wants it, and directories of plugins.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <modhost/plugin.h>

#include "support/support.h"
#include "test.h"

/* ------------------------------------------------------------ file ages */

void disc_set_age(const char *path, long secs_ago)
{
    struct timespec ts[2];
    ts[0].tv_sec = time(NULL) - secs_ago;
    ts[0].tv_nsec = 0;
    ts[1] = ts[0];
    if (utimensat(AT_FDCWD, path, ts, 0) < 0)
        FAIL("utimensat(%s): %s", path, strerror(errno));
}

static long age_of_tree;

static int age_one(const char *path, const struct stat *st, int flag,
                   struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_F)
        disc_set_age(path, age_of_tree);
    return 0;
}

void disc_age_tree(const char *dir, long secs_ago)
{
    age_of_tree = secs_ago;
    if (nftw(dir, age_one, 16, FTW_PHYS) != 0)
        FAIL("nftw(%s): %s", dir, strerror(errno));
}

/* ---------------------------------------------------------- the plugins */

const char *disc_lua_source(const char *word)
{
    return str_fmt("return { encode = function(s) return '%s:' .. "
                   "tostring(s) end }\n", word);
}

const char *disc_plugin_dir(const char *rel, size_t n)
{
    const char *dir = tmp_mkdir("%s", rel);
    for (size_t i = 0; i < n; i++)
        fixture_copy(i % 2 ? "disc_plain" : "disc_codec", "%s/p%03zu.so", rel,
                     i);
    file_write(str_fmt("%s/lua_a.lua", dir), disc_lua_source("a"));
    file_write(str_fmt("%s/lua_a.json", dir),
               "{\"version\": \"1.0.0\", \"provides\": {\"codec\": "
               "\"encode\"}}");
    file_write(str_fmt("%s/lua_b.lua", dir), disc_lua_source("b"));
    file_write(str_fmt("%s/lua_b.json", dir),
               "{\"version\": \"2.0.0\", \"description\": \"no entry "
               "points\"}");
    file_write(str_fmt("%s/lua_c.lua", dir), disc_lua_source("c"));
    disc_age_tree(dir, 60);
    return dir;
}

void disc_damage_note(const char *path)
{
    size_t len;
    unsigned char *data = file_bytes(path, &len);
    long at = meta_note_offset(data, len);
    uint32_t descsz = 0xfffffff0u; /* runs far past its segment */

    if (at < 0) {
        free(data);
        FAIL("%s has no modhost manifest note to damage", path);
    }
    memcpy(data + at + 4, &descsz, 4);
    file_write_bytes(path, data, len);
    free(data);
}

/* ------------------------------------------------------------- discover */

/* A growing string (malloc'd), handed to the case's arena when done. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *text, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (p == NULL)
            FAIL("out of memory in test support");
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, text, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static const char *sb_done(sbuf *b)
{
    const char *s = str_fmt("%s", b->s ? b->s : "");
    free(b->s);
    memset(b, 0, sizeof *b);
    return s;
}

static size_t log_mark(log_capture *lc)
{
    pthread_mutex_lock(&lc->mu);
    size_t n = lc->n;
    pthread_mutex_unlock(&lc->mu);
    return n;
}

static const char *provides_text(const mh_manifest *m)
{
    const char *s = "";
    size_t n = mh_manifest_provides_count(m);
    for (size_t i = 0; i < n; i++) {
        const char *group = NULL, *exp = NULL;
        if (mh_manifest_provide(m, i, &group, &exp) != MH_OK)
            FAIL("mh_manifest_provide(%zu) failed with count %zu", i, n);
        s = str_fmt("%s%s%s=%s", s, i ? "," : "", group, exp);
    }
    return s;
}

static const char *requires_text(const mh_manifest *m)
{
    const char *s = "";
    size_t n = mh_manifest_requires_count(m);
    for (size_t i = 0; i < n; i++) {
        const char *name = NULL, *c = NULL;
        if (mh_manifest_require(m, i, &name, &c) != MH_OK)
            FAIL("mh_manifest_require(%zu) failed with count %zu", i, n);
        s = str_fmt("%s%s%s %s", s, i ? "," : "", name, c);
    }
    return s;
}

#define OR_NULL(s) ((s) ? (s) : "(null)")

static int collect(void *ud, const mh_module_meta *m)
{
    disc_run *r = ud;
    if (m->size != sizeof *m)
        FAIL("mh_module_meta.size is %zu, expected %zu", m->size, sizeof *m);
    if (m->name == NULL || m->origin == NULL || m->finder == NULL)
        FAIL("a module reported without name, origin or finder");
    if (r->n == DISC_MAX)
        FAIL("more than %d modules reported", DISC_MAX);
    if (r->n && strcmp(r->mods[r->n - 1].name, m->name) >= 0)
        r->unordered = str_fmt("'%s' after '%s'", m->name,
                               r->mods[r->n - 1].name);
    disc_mod *d = &r->mods[r->n++];
    d->name = str_fmt("%s", m->name);
    d->interned = m->name;
    d->origin = str_fmt("%s", m->origin);
    d->finder = str_fmt("%s", m->finder);
    d->kind = m->kind;
    d->entry_index = m->entry_index;
    d->status = m->status;
    d->reason = m->reason ? str_fmt("%s", m->reason) : NULL;
    d->has_manifest = m->manifest != NULL;
    if (m->manifest) {
        const mh_manifest *man = m->manifest;
        d->manifest_name = str_fmt("%s", OR_NULL(mh_manifest_name(man)));
        d->source = str_fmt("%s", OR_NULL(mh_manifest_source(man)));
        d->version = mh_manifest_version(man)
                         ? str_fmt("%s", mh_manifest_version(man)) : NULL;
        d->description = mh_manifest_description(man)
                             ? str_fmt("%s", mh_manifest_description(man))
                             : NULL;
        d->abi = mh_manifest_abi(man);
        d->json = str_fmt("%s", OR_NULL(mh_manifest_json(man)));
        d->provides = provides_text(man);
        d->requires = requires_text(man);
    }
    d->line = str_fmt("%s|%s|%s|%s|entry %zu|%s|%s|manifest %s|name %s|"
                      "source %s|version %s|description %s|"
                      "provides %s|requires %s|json %s",
                      d->name, d->origin, d->finder,
                      mh_module_kind_name(d->kind), d->entry_index,
                      mh_status_name(d->status), OR_NULL(d->reason),
                      d->has_manifest ? "yes" : "no",
                      OR_NULL(d->manifest_name),
                      OR_NULL(d->source), OR_NULL(d->version),
                      OR_NULL(d->description), OR_NULL(d->provides),
                      OR_NULL(d->requires), OR_NULL(d->json));
    return 0;
}

static const char READING[] = "discover: reading the metadata of '";

void disc_discover(mh_host *host, log_capture *lc, disc_run *r)
{
    size_t mark = lc ? log_mark(lc) : 0;
    mh_error *e = NULL;

    memset(r, 0, sizeof *r);
    r->text = r->log = r->read_names = "";
    r->sum_modules = r->sum_read = r->sum_index = -1;
    r->status = mh_discover(host, collect, r, &e);
    r->error = e ? str_fmt("%s", mh_error_message(e)) : NULL;
    mh_error_free(e);

    sbuf text = {0}, log = {0}, names = {0};
    for (size_t i = 0; i < r->n; i++) {
        sb_add(&text, r->mods[i].line, strlen(r->mods[i].line));
        sb_add(&text, "\n", 1);
    }
    r->text = sb_done(&text);
    if (!lc)
        return;
    pthread_mutex_lock(&lc->mu);
    for (size_t i = mark; i < lc->n; i++) {
        const char *msg = lc->msgs[i];
        const char *p = strstr(msg, READING);
        unsigned long a, b, c;
        const char *line = str_fmt("  [%d] %s\n", (int)lc->levels[i], msg);
        sb_add(&log, line, strlen(line));
        if (lc->levels[i] <= MH_LOG_WARN)
            r->warnings++;
        if (p) {
            const char *name = p + sizeof READING - 1;
            const char *end = strchr(name, '\'');
            if (r->reads++)
                sb_add(&names, " ", 1);
            sb_add(&names, name, end ? (size_t)(end - name) : strlen(name));
        }
        if ((p = strstr(msg, "discover: ")) != NULL &&
            sscanf(p, "discover: %lu modules, %lu read, %lu from the index",
                   &a, &b, &c) == 3) {
            r->sum_modules = (long)a;
            r->sum_read = (long)b;
            r->sum_index = (long)c;
        }
    }
    pthread_mutex_unlock(&lc->mu);
    r->log = sb_done(&log);
    r->read_names = sb_done(&names);
}

const disc_mod *disc_find(const disc_run *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->mods[i].name, name) == 0)
            return &r->mods[i];
    return NULL;
}

const disc_mod *disc_get(const disc_run *r, const char *name)
{
    const disc_mod *d = disc_find(r, name);
    if (d == NULL)
        FAIL("discovery did not report '%s'; it reported:\n%s", name,
             r->text);
    return d;
}

size_t disc_count_status(const disc_run *r, mh_status status)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++)
        n += r->mods[i].status == status;
    return n;
}

/* --------------------------------------------------------- entry points */

typedef struct ep_ctx {
    disc_eps *out;
    mh_host *host;
    disc_ep_load_fn load;
    void *load_ud;
} ep_ctx;

static int ep_collect(void *ud, const mh_entry_point *ep)
{
    ep_ctx *cx = ud;
    disc_eps *out = cx->out;
    if (ep->size != sizeof *ep)
        FAIL("mh_entry_point.size is %zu, expected %zu", ep->size,
             sizeof *ep);
    if (!ep->group || !ep->module || !ep->export_name || !ep->origin ||
        !ep->manifest)
        FAIL("an entry point with a NULL field");
    if (out->n == DISC_MAX)
        FAIL("more than %d entry points", DISC_MAX);
    disc_ep *d = &out->v[out->n++];
    d->group = str_fmt("%s", ep->group);
    d->module = str_fmt("%s", ep->module);
    d->export_name = str_fmt("%s", ep->export_name);
    d->origin = str_fmt("%s", ep->origin);
    d->version = mh_manifest_version(ep->manifest)
                     ? str_fmt("%s", mh_manifest_version(ep->manifest))
                     : NULL;
    d->provider = mh_manifest_provider(ep->manifest, ep->group)
                      ? str_fmt("%s", mh_manifest_provider(ep->manifest,
                                                           ep->group))
                      : NULL;
    out->text = str_fmt("%s%s=%s (%s)\n", out->text, d->module,
                        d->export_name, d->origin);
    if (cx->load)
        cx->load(cx->load_ud, cx->host, ep);
    return 0;
}

void disc_entry_points(mh_host *host, const char *group, disc_eps *out,
                       disc_ep_load_fn load, void *load_ud)
{
    ep_ctx cx = {out, host, load, load_ud};
    mh_error *e = NULL;

    memset(out, 0, sizeof *out);
    out->text = "";
    out->status = mh_host_entry_points(host, group, ep_collect, &cx, &e);
    out->error = e ? str_fmt("%s", mh_error_message(e)) : NULL;
    mh_error_free(e);
}

/* ------------------------------------------------------------- failures */

static int fail_collect(void *ud, const mh_failure *f)
{
    disc_fails *out = ud;
    if (f->size != sizeof *f)
        FAIL("mh_failure.size is %zu, expected %zu", f->size, sizeof *f);
    if (!f->name || !f->origin || !f->reason)
        FAIL("a recorded failure with a NULL field");
    if (out->n == DISC_FAILS_MAX)
        FAIL("more than %d failures", DISC_FAILS_MAX);
    disc_fail *d = &out->v[out->n++];
    d->name = str_fmt("%s", f->name);
    d->origin = str_fmt("%s", f->origin);
    d->reason = str_fmt("%s", f->reason);
    d->status = f->status;
    d->when = f->when;
    out->text = str_fmt("%s%s (%s): %s: %s\n", out->text, d->name, d->origin,
                        mh_status_name(d->status), d->reason);
    return 0;
}

void disc_failures(mh_host *host, disc_fails *out)
{
    mh_error *e = NULL;

    memset(out, 0, sizeof *out);
    out->text = "";
    out->status = mh_host_failures(host, fail_collect, out, &e);
    out->error = e ? str_fmt("%s", mh_error_message(e)) : NULL;
    mh_error_free(e);
}

const disc_fail *disc_fail_find(const disc_fails *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->v[i].name, name) == 0)
            return &f->v[i];
    return NULL;
}
