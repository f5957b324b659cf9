/*
 * test_finders.c -- the public finder API (include/modhost/finder.h):
 * custom path hooks and meta-path finders registered in code, the named
 * and ordered chains, shadowed claims, the checks on a finder's table and
 * answers, and the lifecycle calls (open, invalidate, close).
 *
 * The finders here serve Lua source from a table in memory, so every
 * case imports real modules through them.  Finder plugins loaded by
 * scheme are exercised by test_tar.c and the tutorial's test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <modhost/finder.h>

#include "support/support.h"
#include "test.h"

/* ------------------------------------------------------------- a finder */

typedef struct dict {
    const char *const *mods;   /* name, source, name, source, ..., NULL */
    int opens, closes, invalidates, finds;
    const char *fail_open;     /* open fails with this message */
    int bad_answer;            /* 1: no origin; 2: NATIVE without file/key;
                                  3: a copy with a bad SHA-256; 4: a copy
                                  that is not an absolute path; 5: a copy
                                  without a key */
    int error_find;            /* find fails with MH_EIO; 2: and says it
                                  as "ENTRY: ..." */
    int odd_status;            /* find returns this number, no mh_status */
    int odd_open;              /* open returns this number */
    const char *miss_extra;    /* a second miss() reason, after the first */
    int error_read;            /* read fails with MH_EIO */
    char entry[64];            /* the entry opened */
    char origin[256];          /* the answer's strings live here */
} dict;

static const char *dict_source(const dict *d, const char *name)
{
    for (size_t i = 0; d->mods && d->mods[i]; i += 2)
        if (strcmp(d->mods[i], name) == 0)
            return d->mods[i + 1];
    return NULL;
}

static int dict_claims(mh_finder_ctx *cx, const char *entry)
{
    (void)cx;
    return strncmp(entry, "multi:", 6) == 0;
}

static mh_status dict_open(mh_finder_ctx *cx, const char *entry, void **state)
{
    dict *d = cx->ud;
    d->opens++;
    snprintf(d->entry, sizeof d->entry, "%s", entry ? entry : "");
    if (d->odd_open)
        return (mh_status)d->odd_open;
    if (d->fail_open)
        return cx->svc->error(cx, MH_EPATH, "%s (entry %s)", d->fail_open,
                              entry ? entry : "(meta)");
    *state = d;
    return MH_OK;
}

static mh_status dict_find(mh_finder_ctx *cx, void *state, const char *name,
                           mh_finder_spec *spec)
{
    dict *d = state;
    d->finds++;
    if (d->odd_status)
        return (mh_status)d->odd_status;
    if (d->error_find == 2)
        return cx->svc->error(cx, MH_EIO, "%s: the store is unreadable",
                              d->entry);
    if (d->error_find)
        return cx->svc->error(cx, MH_EIO, "dict: the store is unreadable "
                              "(looking for %s)", name);
    const char *src = dict_source(d, name);
    if (!src) {
        cx->svc->miss(cx, "dict has no '%s'", name);
        if (d->miss_extra)
            cx->svc->miss(cx, "%s", d->miss_extra);
        return MH_ENOTFOUND;
    }
    snprintf(d->origin, sizeof d->origin, "dict:%s", name);
    spec->kind = d->bad_answer == 2 ? MH_KIND_NATIVE : MH_KIND_LUA;
    spec->origin = d->bad_answer == 1 ? NULL : d->origin;
    spec->key = d->bad_answer == 2 ? NULL : cx->svc->intern(cx, name);
    if (d->bad_answer >= 3) {
        spec->kind = MH_KIND_NATIVE;
        spec->key = d->bad_answer == 5 ? NULL : spec->key;
        spec->file = d->bad_answer == 5 ? "/tmp/file.so" : NULL;
        spec->copy = d->bad_answer == 3 ? "/tmp/copy.so" : "copy.so";
        spec->copy_sha256 = d->bad_answer == 3 ? "00ff" /* too short */
                                               : "0123456789abcdef0123456789"
                                                 "abcdef0123456789abcdef0123"
                                                 "456789abcdef";
    }
    return MH_OK;
}

static mh_status dict_list(mh_finder_ctx *cx, void *state,
                           mh_finder_list_fn fn, void *ud)
{
    dict *d = state;
    char origin[256];
    for (size_t i = 0; d->mods && d->mods[i]; i += 2) {
        snprintf(origin, sizeof origin, "dict:%s", d->mods[i]);
        mh_finder_spec spec = {.kind = MH_KIND_LUA, .origin = origin,
                               .key = d->mods[i]};
        if (fn(ud, d->mods[i], &spec))
            break;
    }
    (void)cx;
    return MH_OK;
}

static mh_status dict_read(mh_finder_ctx *cx, void *state, const char *key,
                           mh_finder_blob *out)
{
    const char *src = dict_source(state, key);
    if (((dict *)state)->error_read)
        return cx->svc->error(cx, MH_EIO, "the disk is on fire");
    if (!src)
        return cx->svc->error(cx, MH_ENOTFOUND, "dict: '%s' vanished", key);
    size_t n = strlen(src);
    out->data = cx->svc->alloc(cx, n);
    if (!out->data)
        return cx->svc->error(cx, MH_ENOMEM, "out of memory");
    memcpy(out->data, src, n);
    out->len = out->size = n;
    return MH_OK;
}

static void dict_invalidate(mh_finder_ctx *cx, void *state)
{
    (void)cx;
    ((dict *)state)->invalidates++;
}

static void dict_close(mh_finder_ctx *cx, void *state)
{
    (void)cx;
    ((dict *)state)->closes++;
}

#define DICT_FUNCS                                                        \
    .open = dict_open, .find = dict_find, .list = dict_list,              \
    .read = dict_read, .invalidate = dict_invalidate, .close = dict_close

static const mh_finder_class alpha = {MH_FINDER_CLASS_INIT, .name = "alpha",
                                      .scheme = "alpha", DICT_FUNCS};
static const mh_finder_class beta = {MH_FINDER_CLASS_INIT, .name = "beta",
                                     .scheme = "beta", DICT_FUNCS};
static const mh_finder_class multi1 = {MH_FINDER_CLASS_INIT, .name = "m1",
                                       .claims = dict_claims, DICT_FUNCS};
static const mh_finder_class multi2 = {MH_FINDER_CLASS_INIT, .name = "m2",
                                       .claims = dict_claims, DICT_FUNCS};
static const mh_finder_class meta = {MH_FINDER_CLASS_INIT, .name = "frozen",
                                     DICT_FUNCS};

static const char *const ALPHA_MODS[] = {
    "a_mod", "return {who = function() return 'alpha' end}",
    "same", "return {who = function() return 'alpha' end}", NULL};
static const char *const BETA_MODS[] = {
    "b_mod", "return {who = function() return 'beta' end}",
    "same", "return {who = function() return 'beta' end}", NULL};

static const char *who(mh_host *host, const char *name)
{
    return call_ok(import_ok(host, name), "who", NULL);
}

static mh_host *host_with_log(const char *path, log_capture *lc)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = path;
    cfg.cache_dir = tmp_path("cache");
    cfg.log = log_capture_fn;
    cfg.log_ud = lc;
    return host_new_cfg(&cfg);
}

/* The chain as "role:name," ... */
static const char *chain_text(mh_host *host)
{
    const char *s = "";
    for (size_t i = 0; i < mh_host_finder_count(host); i++) {
        mh_finder_info fi = {.size = sizeof fi};
        ASSERT_STATUS(mh_host_finder_info(host, i, &fi), MH_OK);
        s = str_fmt("%s%s:%s,", s, fi.role, fi.name);
    }
    return s;
}

/* --------------------------------------------------------------- cases */

TEST(two_path_hooks_at_once)
{
    dict da = {.mods = ALPHA_MODS}, db = {.mods = BETA_MODS};
    mh_host *host = host_new_isolated("alpha:one", "beta:two");
    ASSERT_STATUS(mh_host_add_path_hook(host, &alpha, &da, MH_CHAIN_BEFORE,
                                        "fs", ERR), MH_OK);
    ASSERT_STATUS(mh_host_add_path_hook(host, &beta, &db, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_EQ_STR(chain_text(host), "meta:path,hook:beta,hook:http,"
                                    "hook:sqlite,hook:alpha,hook:fs,");
    ASSERT_EQ_STR(who(host, "a_mod"), "\"alpha\"");
    ASSERT_EQ_STR(who(host, "b_mod"), "\"beta\"");
    /* the first entry wins for a name both have */
    ASSERT_EQ_STR(who(host, "same"), "\"alpha\"");
    ASSERT_EQ_STR(mh_module_finder(mh_host_module(host, "b_mod")), "beta");
    ASSERT_EQ_STR(mh_module_origin(mh_host_module(host, "a_mod")),
                  "dict:a_mod");
    mh_path_entry_info ei = {.size = sizeof ei};
    ASSERT_STATUS(mh_host_path_entry_info(host, 1, &ei), MH_OK);
    ASSERT_EQ_STR(ei.entry, "beta:two");
    ASSERT_EQ_STR(ei.finder, "beta");
    ASSERT_NULL(ei.shadowed);
    ASSERT_EQ_INT(da.opens, 1);
    ASSERT_EQ_INT(db.opens, 1);
    mh_host_free(host);
    ASSERT_EQ_INT(da.closes, 1);
    ASSERT_EQ_INT(db.closes, 1);
}

typedef struct listed {
    const char *text;
} listed;

static int collect_list(void *ud, const mh_spec_info *info)
{
    listed *l = ud;
    l->text = str_fmt("%s%s %s %s\n", l->text, info->name, info->finder,
                      info->origin);
    return 0;
}

TEST(list_walks_custom_finders_in_path_order)
{
    dict da = {.mods = ALPHA_MODS}, db = {.mods = BETA_MODS};
    mh_host *host = host_new_isolated("beta:x", "alpha:y");
    ASSERT_STATUS(mh_host_add_path_hook(host, &alpha, &da, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_STATUS(mh_host_add_path_hook(host, &beta, &db, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    listed l = {""};
    ASSERT_STATUS(mh_list(host, collect_list, &l, ERR), MH_OK);
    ASSERT_EQ_STR(l.text, "a_mod alpha dict:a_mod\nb_mod beta dict:b_mod\n"
                          "same beta dict:same\n");
    mh_host_free(host);
}

/* A host on the entry "multi:store", which both m1 (d1, first) and m2
 * (d2, last) claim. */
static mh_host *multi_host(dict *d1, dict *d2, log_capture *lc)
{
    mh_host *host = host_with_log("multi:store", lc);
    ASSERT_STATUS(mh_host_add_path_hook(host, &multi1, d1, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_STATUS(mh_host_add_path_hook(host, &multi2, d2, MH_CHAIN_LAST,
                                        NULL, ERR), MH_OK);
    return host;
}

TEST(shadowed_claim_is_named_never_silent)
{
    dict d1 = {.mods = ALPHA_MODS}, d2 = {.mods = BETA_MODS};
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = multi_host(&d1, &d2, &lc);
    ASSERT_EQ_STR(who(host, "same"), "\"alpha\"");
    mh_path_entry_info ei = {.size = sizeof ei};
    ASSERT_STATUS(mh_host_path_entry_info(host, 0, &ei), MH_OK);
    ASSERT_EQ_STR(ei.finder, "m1");
    ASSERT_EQ_STR(ei.shadowed, "m2");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "claimed by finder "
                                    "'m1'; also claimed by m2"), 1);
    ASSERT_EQ_INT(d2.opens, 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

static long long mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* An entry whose open failed is left alone for a second (no open per
 * import), then opened again at its next use: mended meanwhile, it
 * serves.  Neither the failure nor the shadowed claim is warned of again
 * when it says the same. */
TEST(failed_open_is_tried_again_after_a_while)
{
    dict d1 = {.mods = ALPHA_MODS, .fail_open = "the store is offline"};
    dict d2 = {.mods = BETA_MODS};
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = multi_host(&d1, &d2, &lc);
    mh_module *mod = NULL;
    long long t0 = mono_ms();
    ASSERT_STATUS(mh_import(host, "same", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "the store is offline (entry multi:store)");
    ASSERT_STATUS(mh_import(host, "same", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "the store is offline (entry multi:store)");
    if (mono_ms() - t0 < 900) /* both within the second */
        ASSERT_EQ_INT(d1.opens, 1);
    usleep(1100 * 1000);
    ASSERT_STATUS(mh_import(host, "same", &mod, ERR), MH_ENOTFOUND);
    ASSERT_EQ_INT(d1.opens, 2);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "the store is "
                                    "offline"), 1);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "also claimed by "
                                    "m2"), 1);
    d1.fail_open = NULL;
    usleep(1100 * 1000);
    ASSERT_EQ_STR(who(host, "same"), "\"alpha\"");
    ASSERT_EQ_INT(d1.opens, 3);
    ASSERT_EQ_INT(d2.opens, 0);
    mh_path_entry_info ei = {.size = sizeof ei};
    ASSERT_STATUS(mh_host_path_entry_info(host, 0, &ei), MH_OK);
    ASSERT_EQ_STR(ei.finder, "m1");
    ASSERT_NULL(ei.error);
    mh_host_free(host);
    log_capture_free(&lc);
}

static int dir_claims(mh_finder_ctx *cx, const char *entry)
{
    (void)cx;
    return entry[0] == '/';
}

TEST(hook_position_decides_who_claims)
{
    /* A hook that takes directories loses to fs after it (and is named as
     * shadowed), and wins before it (fs is then the shadowed one). */
    const char *dir = tmp_mkdir("mods");
    static const mh_finder_class dirs = {MH_FINDER_CLASS_INIT,
                                         .name = "dirs",
                                         .claims = dir_claims, DICT_FUNCS};
    dict d = {.mods = ALPHA_MODS};
    mh_path_entry_info ei = {.size = sizeof ei};

    mh_host *host = host_new_isolated(dir);
    ASSERT_STATUS(mh_host_add_path_hook(host, &dirs, &d, MH_CHAIN_AFTER,
                                        "fs", ERR), MH_OK);
    ASSERT_EQ_STR(chain_text(host), "meta:path,hook:http,hook:sqlite,"
                                    "hook:fs,hook:dirs,");
    ASSERT_STATUS(mh_host_path_entry_info(host, 0, &ei), MH_OK);
    ASSERT_EQ_STR(ei.finder, "fs");
    ASSERT_EQ_STR(ei.shadowed, "dirs");
    mh_host_free(host);

    host = host_new_isolated(dir);
    ASSERT_STATUS(mh_host_add_path_hook(host, &dirs, &d, MH_CHAIN_BEFORE,
                                        "fs", ERR), MH_OK);
    ASSERT_STATUS(mh_host_path_entry_info(host, 0, &ei), MH_OK);
    ASSERT_EQ_STR(ei.finder, "dirs");
    ASSERT_EQ_STR(ei.shadowed, "fs");
    ASSERT_EQ_STR(who(host, "a_mod"), "\"alpha\"");
    mh_host_free(host);
}

TEST(bad_registrations_are_refused_with_reasons)
{
    dict d = {.mods = ALPHA_MODS};
    mh_host *host = host_new_isolated(NULL);
    ASSERT_STATUS(mh_host_add_path_hook(host, &alpha, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    /* the same name twice */
    mh_finder_class again = alpha;
    again.scheme = "other";
    ASSERT_STATUS(mh_host_add_path_hook(host, &again, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "finder 'alpha': a finder of that name is "
                               "already in the path hook chain");
    /* one scheme, one finder */
    mh_finder_class rival = alpha;
    rival.name = "rival";
    ASSERT_STATUS(mh_host_add_path_hook(host, &rival, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "'alpha:' is already claimed by finder "
                               "'alpha'");
    /* an anchor that is not there: the message lists the chain */
    ASSERT_STATUS(mh_host_add_path_hook(host, &beta, &d, MH_CHAIN_BEFORE,
                                        "nosuch", ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "no such finder");
    ASSERT_CONTAINS(ERR_MSG(), "alpha, http, sqlite, fs");
    /* malformed tables */
    mh_finder_class nofind = beta;
    nofind.find = NULL;
    ASSERT_STATUS(mh_host_add_path_hook(host, &nofind, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "no find function");
    mh_finder_class noclaim = beta;
    noclaim.scheme = NULL;
    ASSERT_STATUS(mh_host_add_path_hook(host, &noclaim, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "needs a scheme or a claims function");
    mh_finder_class badscheme = beta;
    badscheme.scheme = "a/b";
    ASSERT_STATUS(mh_host_add_path_hook(host, &badscheme, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_EINVAL);
    mh_finder_class future = beta;
    future.version = MH_FINDER_VERSION + 1;
    ASSERT_STATUS(mh_host_add_path_hook(host, &future, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), "finder API version");
    mh_finder_class tiny = beta;
    tiny.size = 16;
    ASSERT_STATUS(mh_host_add_path_hook(host, &tiny, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_EVERSION);
    ASSERT_STATUS(mh_host_add_path_hook(host, NULL, &d, MH_CHAIN_FIRST, NULL,
                                        ERR), MH_EINVAL);
    /* nothing of the refused ones got in */
    ASSERT_EQ_STR(chain_text(host), "meta:path,hook:alpha,hook:http,"
                                    "hook:sqlite,hook:fs,");
    mh_host_free(host);
}

TEST(meta_finder_first_wins_and_last_is_a_fallback)
{
    dict dm = {.mods = BETA_MODS}, da = {.mods = ALPHA_MODS};
    static const char *const FALLBACK[] = {
        "only_here", "return {who = function() return 'fallback' end}",
        "same", "return {who = function() return 'fallback' end}", NULL};
    dict dl = {.mods = FALLBACK};
    static const mh_finder_class late = {MH_FINDER_CLASS_INIT,
                                         .name = "late", DICT_FUNCS};
    mh_host *host = host_new_isolated("alpha:x");
    ASSERT_STATUS(mh_host_add_path_hook(host, &alpha, &da, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_STATUS(mh_host_add_meta_finder(host, &meta, &dm, MH_CHAIN_BEFORE,
                                          "path", ERR), MH_OK);
    ASSERT_STATUS(mh_host_add_meta_finder(host, &late, &dl, MH_CHAIN_AFTER,
                                          "path", ERR), MH_OK);
    ASSERT_EQ_INT(dm.opens, 1); /* opened at registration */
    ASSERT_EQ_STR(chain_text(host), "meta:frozen,meta:path,meta:late,"
                                    "hook:alpha,hook:http,hook:sqlite,"
                                    "hook:fs,");
    ASSERT_EQ_STR(who(host, "same"), "\"beta\"");
    ASSERT_EQ_STR(mh_module_finder(mh_host_module(host, "same")), "frozen");
    ASSERT_EQ_STR(who(host, "a_mod"), "\"alpha\"");
    ASSERT_EQ_STR(who(host, "only_here"), "\"fallback\"");
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, "b_mod", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.finder, "frozen");
    ASSERT_EQ_INT(info.entry_index, SIZE_MAX);
    /* not found anywhere: every link says why */
    ASSERT_STATUS(mh_import(host, "nowhere", &(mh_module *){0}, ERR),
                  MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "meta finder 'frozen': dict has no 'nowhere'");
    ASSERT_CONTAINS(ERR_MSG(), "alpha:x: dict has no 'nowhere'");
    ASSERT_CONTAINS(ERR_MSG(), "meta finder 'late': dict has no 'nowhere'");
    mh_invalidate_caches(host);
    ASSERT_EQ_INT(dm.invalidates, 1);
    ASSERT_EQ_INT(dl.invalidates, 1);
    ASSERT_EQ_INT(da.invalidates, 1);
    mh_host_free(host);
    ASSERT_EQ_INT(dm.closes, 1);
    ASSERT_EQ_INT(dl.closes, 1);
}

TEST(meta_finder_that_cannot_open_is_not_added)
{
    dict d = {.mods = BETA_MODS, .fail_open = "the store is locked"};
    mh_host *host = host_new_isolated(NULL);
    ASSERT_STATUS(mh_host_add_meta_finder(host, &meta, &d, MH_CHAIN_FIRST,
                                          NULL, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "meta finder 'frozen' could not be opened");
    ASSERT_CONTAINS(ERR_MSG(), "the store is locked");
    ASSERT_EQ_STR(chain_text(host), "meta:path,hook:http,hook:sqlite,"
                                    "hook:fs,");
    mh_host_free(host);
    ASSERT_EQ_INT(d.closes, 0);
}

TEST(meta_finder_whose_open_returns_no_mh_status_is_not_added)
{
    dict d = {.mods = BETA_MODS, .odd_open = -1};
    mh_host *host = host_new_isolated(NULL);
    ASSERT_STATUS(mh_host_add_meta_finder(host, &meta, &d, MH_CHAIN_FIRST,
                                          NULL, ERR), MH_EIO);
    ASSERT_EQ_STR(ERR_MSG(), "meta finder 'frozen' could not be opened: "
                             "open returned -1, which is no mh_status");
    mh_host_free(host);
}

TEST(entry_whose_finder_cannot_open_says_why)
{
    dict d = {.mods = ALPHA_MODS, .fail_open = "no such store"};
    dict ok = {.mods = BETA_MODS};
    mh_host *host = host_new_isolated("alpha:gone", "beta:here");
    ASSERT_STATUS(mh_host_add_path_hook(host, &alpha, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_STATUS(mh_host_add_path_hook(host, &beta, &ok, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_EQ_STR(who(host, "b_mod"), "\"beta\"");
    mh_path_entry_info ei = {.size = sizeof ei};
    ASSERT_STATUS(mh_host_path_entry_info(host, 0, &ei), MH_OK);
    ASSERT_EQ_STR(ei.finder, "alpha"); /* it claimed the entry ... */
    ASSERT_CONTAINS(ei.error, "finder 'alpha': no such store (entry "
                              "alpha:gone)");
    mh_host_free(host);
}

TEST(bad_answers_are_refused_naming_the_finder)
{
    dict d = {.mods = ALPHA_MODS, .bad_answer = 1};
    mh_host *host = host_new_isolated("alpha:x");
    ASSERT_STATUS(mh_host_add_path_hook(host, &alpha, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_STATUS(mh_import(host, "a_mod", &(mh_module *){0}, ERR),
                  MH_EFORMAT);
    /* The host's words on the answer: said once, not prefixed again. */
    ASSERT_EQ_STR(ERR_MSG(), "finder 'alpha' gave a bad answer for module "
                             "'a_mod': it has no origin");
    d.bad_answer = 2;
    ASSERT_STATUS(mh_import(host, "a_mod", &(mh_module *){0}, ERR),
                  MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "neither a file nor a key");
    d.bad_answer = 3;
    ASSERT_STATUS(mh_import(host, "a_mod", &(mh_module *){0}, ERR),
                  MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "'a_mod': its copy_sha256 is not 64 hex "
                               "digits");
    d.bad_answer = 4;
    ASSERT_STATUS(mh_import(host, "a_mod", &(mh_module *){0}, ERR),
                  MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "'a_mod': its copy is not an absolute path");
    d.bad_answer = 5;
    ASSERT_STATUS(mh_import(host, "a_mod", &(mh_module *){0}, ERR),
                  MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), "'a_mod': it has a copy but no key the "
                               "finder can read");
    d.bad_answer = 0;
    ASSERT_EQ_STR(who(host, "a_mod"), "\"alpha\"");
    mh_host_free(host);
}

TEST(finder_error_reaches_the_importer)
{
    dict d = {.mods = ALPHA_MODS, .error_find = 1};
    mh_host *host = host_new_isolated("alpha:x");
    ASSERT_STATUS(mh_host_add_path_hook(host, &alpha, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_STATUS(mh_import(host, "a_mod", &(mh_module *){0}, ERR), MH_EIO);
    /* The finder's words, with the module, the entry and the finder. */
    ASSERT_EQ_STR(ERR_MSG(), "module 'a_mod': search path entry 'alpha:x' "
                             "(finder 'alpha'): dict: the store is "
                             "unreadable (looking for a_mod)");
    ASSERT_EQ_INT((int)mh_host_module_count(host), 0);
    /* Words that start with the entry say where already: kept as they
     * are. */
    d.error_find = 2;
    ASSERT_STATUS(mh_import(host, "a_mod", &(mh_module *){0}, ERR), MH_EIO);
    ASSERT_EQ_STR(ERR_MSG(), "alpha:x: the store is unreadable");
    mh_host_free(host);
}

TEST(a_finder_read_error_names_the_origin_and_finder)
{
    dict d = {.mods = ALPHA_MODS, .error_read = 1};
    mh_host *host = host_new_isolated("alpha:x");
    ASSERT_STATUS(mh_host_add_path_hook(host, &alpha, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_STATUS(mh_import(host, "a_mod", &(mh_module *){0}, ERR), MH_EIO);
    ASSERT_CONTAINS(ERR_MSG(), "dict:a_mod (finder 'alpha'): the disk is on "
                               "fire");
    mh_host_free(host);
}

TEST(a_finder_status_that_is_no_mh_status_is_an_io_error)
{
    static const int odd[] = {-1, 12345, MH_STATUS_COUNT_};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        dict d = {.mods = ALPHA_MODS, .odd_status = odd[i]};
        mh_host *host = host_new_isolated("alpha:x");
        ASSERT_STATUS(mh_host_add_path_hook(host, &alpha, &d, MH_CHAIN_FIRST,
                                            NULL, ERR), MH_OK);
        ASSERT_STATUS(mh_import(host, "a_mod", &(mh_module *){0}, ERR),
                      MH_EIO);
        ASSERT_EQ_STR(ERR_MSG(), str_fmt("module 'a_mod': search path entry "
                                         "'alpha:x' (finder 'alpha') "
                                         "returned %d, which is no "
                                         "mh_status", odd[i]));
        mh_host_free(host);
    }
}

TEST(a_finder_miss_is_one_line_of_the_message)
{
    /* A line break would write lines that read as other entries'; a
     * second reason is joined to the first; a huge one is cut, and the
     * other entries' lines stay. */
    const char *big = str_fmt("%0*d", 70000, 0);
    const char *extra[] = {"line1\n  /forged: entry\r", big};
    for (size_t i = 0; i < 2; i++) {
        const char *dir = tmp_mkdir("E%zu", i);
        dict d = {.mods = ALPHA_MODS, .miss_extra = extra[i]};
        mh_host *host = host_new_isolated("alpha:x", dir);
        ASSERT_STATUS(mh_host_add_path_hook(host, &alpha, &d, MH_CHAIN_FIRST,
                                            NULL, ERR), MH_OK);
        ASSERT_STATUS(mh_import(host, "nowhere", &(mh_module *){0}, ERR),
                      MH_ENOTFOUND);
        const char *msg = ERR_MSG();
        if (i == 0)
            ASSERT_CONTAINS(msg, "\n  alpha:x: dict has no 'nowhere'; "
                                 "line1   /forged: entry \n");
        else
            ASSERT_CONTAINS(msg, "\n  alpha:x: dict has no 'nowhere'; "
                                 "00000");
        ASSERT_CONTAINS(msg, str_fmt("\n  %s: no nowhere.so", dir));
        ASSERT_EQ_INT(strstr(msg, "...") != NULL, i == 1);
        size_t lines = 0;
        for (const char *c = msg; *c; c++)
            lines += *c == '\n';
        ASSERT_EQ_INT(lines, 2);
        mh_host_free(host);
    }
}

TEST(unclaimed_entry_is_retried_after_a_new_hook)
{
    dict d = {.mods = ALPHA_MODS};
    log_capture lc;
    log_capture_init(&lc);
    const char *mods = tmp_mkdir("mods");
    mh_host *host = host_with_log(str_fmt("alpha:x;%s", mods), &lc);
    /* no hook yet: the scheme would need finders/alpha.so, which is not
     * on the path; the entry is unusable and says why */
    ASSERT_STATUS(mh_import(host, "a_mod", &(mh_module *){0}, ERR),
                  MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "finder plugin 'finders.alpha' could not be "
                               "imported");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "'alpha:x' skipped"),
                  1);
    ASSERT_STATUS(mh_host_add_path_hook(host, &alpha, &d, MH_CHAIN_FIRST,
                                        NULL, ERR), MH_OK);
    ASSERT_EQ_STR(who(host, "a_mod"), "\"alpha\"");
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(entry_with_no_scheme_and_no_hook)
{
    const char *file = tmp_path("plain.txt");
    file_write(file, "not a module store");
    mh_host *host = host_new_isolated(file);
    mh_path_entry_info ei = {.size = sizeof ei};
    ASSERT_STATUS(mh_host_path_entry_info(host, 0, &ei), MH_OK);
    ASSERT_NULL(ei.finder); /* nobody claimed it */
    ASSERT_CONTAINS(ei.error, "no finder handles this entry");
    ASSERT_STATUS(mh_host_path_entry_info(host, 1, &ei), MH_EINVAL);
    mh_host_free(host);
}
