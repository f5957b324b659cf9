/*
 * host.c -- isolated hosts, import shortcuts that fail the case with the
 * library's message, and a log hook that records what it receives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "test.h"

const char *path_join(const char *const *entries)
{
    const char *joined = NULL;
    for (size_t i = 0; entries[i]; i++)
        joined = joined ? str_fmt("%s;%s", joined, entries[i]) : entries[i];
    return joined;
}

mh_host *host_new_cfg(const mh_config *cfg)
{
    mh_host *host = NULL;
    mh_error *err = NULL;
    mh_status st = mh_host_new(cfg, &host, &err);

    if (st != MH_OK) {
        const char *msg = str_fmt("%s", mh_error_message(err));
        mh_error_free(err);
        FAIL("mh_host_new: %s: %s", mh_status_name(st), msg);
    }
    if (host == NULL)
        FAIL("mh_host_new returned MH_OK and a NULL host");
    return host;
}

mh_host *host_new_isolated_(const char *const *entries)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = path_join(entries);
    return host_new_cfg(&cfg);
}

mh_module *import_ok(mh_host *host, const char *name)
{
    mh_module *mod = NULL;
    mh_error *err = NULL;
    mh_status st = mh_import(host, name, &mod, &err);

    if (st != MH_OK) {
        const char *msg = str_fmt("%s", mh_error_message(err));
        mh_error_free(err);
        FAIL("import '%s': %s: %s", name, mh_status_name(st), msg);
    }
    if (mod == NULL)
        FAIL("import '%s' returned MH_OK and a NULL module", name);
    return mod;
}

void *symbol_ok(mh_module *mod, const char *symbol)
{
    void *p = mh_module_symbol(mod, symbol);
    if (p == NULL)
        FAIL("module '%s' has no export '%s'", mh_module_name(mod), symbol);
    return p;
}

int call_int(mh_module *mod, const char *symbol)
{
    int (*fn)(void) = (int (*)(void))symbol_ok(mod, symbol);
    return fn();
}

long path_index(mh_host *host, const char *entry)
{
    size_t n = mh_host_path_count(host);
    for (size_t i = 0; i < n; i++) {
        const char *text = NULL, *finder = NULL;
        mh_path_source src;
        if (mh_host_path_entry(host, i, &text, &src, &finder) != MH_OK)
            FAIL("mh_host_path_entry(%zu) failed with count %zu", i, n);
        if (text && strcmp(text, entry) == 0)
            return (long)i;
    }
    return -1;
}

/* ------------------------------------------------------------- log hook */

void log_capture_init(log_capture *lc)
{
    memset(lc, 0, sizeof *lc);
    pthread_mutex_init(&lc->mu, NULL);
}

void log_capture_free(log_capture *lc)
{
    for (size_t i = 0; i < lc->n; i++)
        free(lc->msgs[i]);
    free(lc->msgs);
    free(lc->levels);
    pthread_mutex_destroy(&lc->mu);
    memset(lc, 0, sizeof *lc);
}

void log_capture_fn(void *ud, mh_log_level level, const char *msg)
{
    log_capture *lc = ud;

    if (msg == NULL)
        FAIL("log hook called with a NULL message");
    if (strchr(msg, '\n'))
        FAIL("log message contains a newline: \"%s\"", msg);
    pthread_mutex_lock(&lc->mu);
    if (lc->n == lc->cap) {
        size_t cap = lc->cap ? lc->cap * 2 : 16;
        char **m = realloc(lc->msgs, cap * sizeof *m);
        mh_log_level *l = m ? realloc(lc->levels, cap * sizeof *l) : NULL;
        if (m)
            lc->msgs = m;
        if (l == NULL)
            FAIL("out of memory in log hook");
        lc->levels = l;
        lc->cap = cap;
    }
    lc->msgs[lc->n] = strdup(msg);
    if (lc->msgs[lc->n] == NULL)
        FAIL("out of memory in log hook");
    lc->levels[lc->n] = level;
    lc->n++;
    pthread_mutex_unlock(&lc->mu);
}

size_t log_capture_count(log_capture *lc, int level, const char *needle)
{
    size_t n = 0;
    pthread_mutex_lock(&lc->mu);
    for (size_t i = 0; i < lc->n; i++)
        if ((level < 0 || (int)lc->levels[i] == level) &&
            strstr(lc->msgs[i], needle))
            n++;
    pthread_mutex_unlock(&lc->mu);
    return n;
}

const char *log_capture_dump(log_capture *lc)
{
    const char *s = "";
    pthread_mutex_lock(&lc->mu);
    for (size_t i = 0; i < lc->n; i++)
        s = str_fmt("%s\n  [%d] %s", s, (int)lc->levels[i], lc->msgs[i]);
    pthread_mutex_unlock(&lc->mu);
    return s;
}
