/*
 * host/api.c -- the host API table handed to plugins (mh_host_api).
 *
 * Plugins never link against libmodhost; every service they use is one of
 * these functions.  The mh_plugin handle a plugin holds is its registry
 * entry.  The table only grows at its end (see modhost/plugin.h).
 */
#include "host/internal.h"
#include "loaders/loader.h"

#include <stdio.h>
#include <string.h>

/* The longest message a plugin passes (set_error, call_error), with its
 * NUL: longer ones are cut, with "...". */
#define MH_PLUGIN_MESSAGE_MAX 4096

static mh_module *self_of(mh_plugin *self)
{
    return (mh_module *)self;
}

static void api_log(mh_plugin *self, int level, const char *fmt, ...)
{
    mh_module *m = self_of(self);
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (level < MH_LOG_ERROR || level > MH_LOG_TRACE)
        level = MH_LOG_INFO;
    if (level == MH_LOG_TRACE && !m->host->verbose)
        return;
    mh_log(m->host, (mh_log_level)level, "%s: %s", m->name, msg);
}

/* A formatted message of at most 4 KiB, in host memory; NULL when out
 * of memory. */
static char *format_message(mh_host *h, const char *fmt, va_list ap)
{
    /* A longer one (a not-found list of a long search path, passed on)
     * is cut, and says so: it was refused whole, and taken for out of
     * memory. */
    char text[MH_PLUGIN_MESSAGE_MAX];
    int n = vsnprintf(text, sizeof text, fmt, ap);
    if (n < 0)
        snprintf(text, sizeof text, "(a message its format could not "
                 "make: %s)", fmt);
    else if ((size_t)n >= sizeof text)
        memcpy(text + sizeof text - 4, "...", 4);
    return mh_mem_strdup(h, text);
}

/* Replace *slot (host memory, or NULL) with a formatted message. */
static void set_message(mh_host *h, char **slot, const char *fmt, va_list ap)
{
    char *text = format_message(h, fmt, ap);
    mh_mem_strfree(h, *slot);
    *slot = text;
}

/* Make m's init message a formatted text of at most 4 KiB, cut with
 * "..." past that (NULL when out of memory) -- if its init still runs:
 * a thread the init started may call after it returned, when the
 * in-flight block may be gone.  `dep`: the text is a failed nested
 * import's, and the init now fails for another module's sake.  Returns
 * false when m's init is not running (nothing was kept).  A nested
 * import's message this replaces was shown nowhere: it is logged. */
static bool set_init_message(mh_module *m, mh_status dep, const char *fmt,
                             va_list ap)
{
    mh_host *h = m->host;
    char *text = format_message(h, fmt, ap), *old = NULL;
    bool kept = false, old_dep = false;
    pthread_mutex_lock(&h->lock);
    if (m->in_init && m->flight) {
        old = m->flight->init_message;
        old_dep = m->flight->init_message_dep;
        m->flight->init_message = text;
        m->flight->init_message_lost = !text;
        m->flight->init_message_dep = dep != MH_OK && text;
        m->flight->init_dep_status = (uint8_t)dep;
        text = NULL;
        kept = true;
        if (dep != MH_OK)
            m->dep_failed = true;
    }
    pthread_mutex_unlock(&h->lock);
    if (old && old_dep)
        mh_api_log_dep_failure(m, old);
    mh_mem_strfree(h, old);
    mh_mem_strfree(h, text);
    return kept;
}

void mh_api_log_dep_failure(mh_module *m, const char *message)
{
    mh_log(m->host, MH_LOG_WARN, "%s: %s", m->name, message);
}

static bool init_message(mh_module *m, mh_status dep, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool init_message(mh_module *m, mh_status dep, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool kept = set_init_message(m, dep, fmt, ap);
    va_end(ap);
    return kept;
}

static void api_set_error(mh_plugin *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_init_message(self_of(self), MH_OK, fmt, ap);
    va_end(ap);
}

static void *api_alloc(mh_plugin *self, size_t size)
{
    return mh_mem_alloc(self_of(self)->host, size);
}

static void api_free(mh_plugin *self, void *ptr, size_t size)
{
    mh_mem_free(self_of(self)->host, ptr, size);
}

static const char *api_intern(mh_plugin *self, const char *str)
{
    return str ? mh_int_cstr(self_of(self)->host, str) : NULL;
}

static void *api_import_symbol(mh_plugin *self, const char *module,
                               const char *symbol)
{
    mh_module *m = self_of(self), *dep = NULL;
    mh_error *err = NULL;
    void *addr = NULL;
    mh_status rc = mh_import(m->host, module, &dep, &err);
    if (rc == MH_OK)
        rc = mh_module_symbol_ex(dep, symbol, &addr, &err);
    if (err) {
        /* During init the message is kept for the init's error, and
         * logged only if that error will not show it; later, the log is
         * the only place it can go. */
        if (!init_message(m, rc, "%s", mh_error_message(err)))
            mh_api_log_dep_failure(m, mh_error_message(err));
        mh_error_free(err);
    }
    return addr;
}

static void api_set_userdata(mh_plugin *self, void *data)
{
    self_of(self)->userdata = data;
}

static void *api_get_userdata(mh_plugin *self)
{
    return self_of(self)->userdata;
}

static const char *api_name(mh_plugin *self)
{
    return self_of(self)->name;
}

static void api_call_return(mh_call_out *out, const char *json)
{
    mh_mem_strfree(out->host, out->json);
    out->json = json ? mh_mem_strdup(out->host, json) : NULL;
    out->oom = json && !out->json;
}

static void api_call_error(mh_call_out *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    set_message(out->host, &out->error, fmt, ap);
    va_end(ap);
}

void mh_api_fill(mh_host_api *api)
{
    memset(api, 0, sizeof *api);
    api->abi_version = MH_PLUGIN_ABI_VERSION;
    api->size = (uint32_t)sizeof *api;
    api->host_version = MH_VERSION_STRING;
    api->log = api_log;
    api->set_error = api_set_error;
    api->alloc = api_alloc;
    api->free = api_free;
    api->intern = api_intern;
    api->import_symbol = api_import_symbol;
    api->set_userdata = api_set_userdata;
    api->get_userdata = api_get_userdata;
    api->name = api_name;
    api->call_return = api_call_return;
    api->call_error = api_call_error;
}
