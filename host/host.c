/*
 * host/host.c -- creating and freeing a host; configuration, versions and
 * the environment.
 *
 * The environment is read through mh_host_getenv only: secure_getenv, so a
 * setuid or otherwise privileged process ignores it entirely, and in
 * isolated mode (-E) every MODHOST_* variable is ignored too.
 */
#include "host/internal.h"
#include "host/tops.h"
#include "finders/notify.h"
#include "host/secure.h"
#include "loaders/loader.h"
#include "loaders/probe.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

int mh_version(void)
{
    return MH_VERSION_NUMBER;
}

const char *mh_version_string(void)
{
    return MH_VERSION_STRING;
}

mh_status mh_check_version_(int version, size_t config_size,
                            size_t host_api_size, size_t plugin_desc_size,
                            mh_error **err)
{
    if (version / 100 != MH_VERSION_NUMBER / 100)
        return mh_err(NULL, err, MH_EVERSION,
                      "compiled against modhost %d.%d headers, running with "
                      "library %s", version / 10000, version / 100 % 100,
                      MH_VERSION_STRING);
    if (config_size != sizeof(mh_config) ||
        host_api_size != sizeof(mh_host_api) ||
        plugin_desc_size != sizeof(mh_plugin_desc))
        return mh_err(NULL, err, MH_EVERSION,
                      "modhost struct sizes differ between the headers "
                      "(config %zu, host api %zu, descriptor %zu) and the "
                      "library (%zu, %zu, %zu): mixed installations?",
                      config_size, host_api_size, plugin_desc_size,
                      sizeof(mh_config), sizeof(mh_host_api),
                      sizeof(mh_plugin_desc));
    return MH_OK;
}

void mh_config_init(mh_config *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof *cfg);
    cfg->size = sizeof *cfg;
}

const char *mh_host_getenv(const mh_host *h, const char *name)
{
    if ((h->flags & MH_CONFIG_ISOLATED) && strncmp(name, "MODHOST_", 8) == 0)
        return NULL;
    return secure_getenv(name);
}

static char *default_cache_dir(mh_host *h)
{
    char buf[PATH_MAX];
    const char *xdg = mh_host_getenv(h, "XDG_CACHE_HOME");
    const char *home = mh_host_getenv(h, "HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, sizeof buf, "%s/modhost", xdg);
    else if (home && home[0] == '/')
        n = snprintf(buf, sizeof buf, "%s/.cache/modhost", home);
    else /* privileged process or no home: a per-user path under /tmp
            would be predictable; none, which mh_sec_private_dir refuses */
        n = snprintf(buf, sizeof buf, "%s", MH_NO_CACHE_DIR);
    if (n < 0 || (size_t)n >= sizeof buf)
        return mh_mem_strdup(h, MH_NO_CACHE_DIR);
    return mh_mem_strndup(h, buf, (size_t)n);
}

static void http_limits(mh_host *h, const mh_http_limits *in)
{
    mh_http_limits *l = &h->http;
    memset(l, 0, sizeof *l);
    l->size = sizeof *l;
    if (in && in->size >= offsetof(mh_http_limits, reserved)) {
        l->connect_timeout_ms = in->connect_timeout_ms;
        l->timeout_ms = in->timeout_ms;
        l->low_speed_bytes = in->low_speed_bytes;
        l->low_speed_seconds = in->low_speed_seconds;
        l->max_index_size = in->max_index_size;
        l->max_redirects = in->max_redirects;
        l->index_fresh_s = in->index_fresh_s;
    }
    if (l->connect_timeout_ms <= 0) l->connect_timeout_ms = 10000;
    if (l->timeout_ms <= 0) l->timeout_ms = 60000;
    if (l->low_speed_bytes <= 0) l->low_speed_bytes = 1024;
    if (l->low_speed_seconds <= 0) l->low_speed_seconds = 10;
    if (l->max_index_size == 0) l->max_index_size = 8u << 20;
    if (l->max_redirects <= 0) l->max_redirects = 5;
    if (l->index_fresh_s <= 0) l->index_fresh_s = 300;
}

static _Atomic unsigned fork_count;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void count_fork(void)
{
    atomic_fetch_add(&fork_count, 1);
    mh_reg_forked(); /* this thread goes on in the child */
}

static void atfork_setup(void)
{
    pthread_atfork(NULL, NULL, count_fork);
}

unsigned mh_fork_count(void)
{
    return atomic_load_explicit(&fork_count, memory_order_relaxed);
}

mh_status mh_host_new(const mh_config *cfg, mh_host **out, mh_error **err)
{
    mh_config defaults;
    if (!out)
        return mh_err(NULL, err, MH_EINVAL, "mh_host_new: out is NULL");
    *out = NULL;
    if (!cfg) {
        mh_config_init(&defaults);
        cfg = &defaults;
    }
    if (cfg->size < offsetof(mh_config, reserved))
        return mh_err(NULL, err, MH_EVERSION,
                      "mh_config.size is %zu; call mh_config_init() first",
                      cfg->size);
    if (cfg->flags & ~MH_CONFIG_KNOWN_)
        return mh_err(NULL, err, MH_EINVAL, "mh_config.flags: unknown flags "
                      "0x%x (a newer header's? this library is %s)",
                      cfg->flags & ~MH_CONFIG_KNOWN_, MH_VERSION_STRING);
    /* A relative one would follow the process's working directory: code
     * written in one and read back from another. */
    if (cfg->cache_dir && cfg->cache_dir[0] != '/')
        return mh_err(NULL, err, MH_EPATH, "mh_config.cache_dir must be an "
                      "absolute path, not \"%s\"", cfg->cache_dir);
    if (cfg->probe_timeout_ms > MH_PROBE_TIMEOUT_MAX)
        return mh_err(NULL, err, MH_EINVAL, "mh_config.probe_timeout_ms is "
                      "%u; at most %ld (an hour)", cfg->probe_timeout_ms,
                      MH_PROBE_TIMEOUT_MAX);
    if (cfg->http && cfg->http->size < offsetof(mh_http_limits, reserved))
        return mh_err(NULL, err, MH_EVERSION, "mh_config.http->size is %zu; "
                      "set it to sizeof(mh_http_limits)",
                      cfg->http->size);

    pthread_once(&atfork_once, atfork_setup); /* before a fork divides */
    mh_alloc_fn alloc = cfg->alloc ? cfg->alloc : mh_mem_default_alloc;
    mh_host *h = alloc(cfg->alloc_ud, NULL, 0, sizeof *h);
    if (!h)
        return mh_err(NULL, err, MH_ENOMEM, "out of memory creating a host");
    memset(h, 0, sizeof *h);
    h->alloc = alloc;
    h->alloc_ud = cfg->alloc_ud;
    h->log = cfg->log ? cfg->log : mh_log_default;
    h->log_ud = cfg->log ? cfg->log_ud : h;
    if (cfg->size >= offsetof(mh_config, fault_ud) + sizeof cfg->fault_ud) {
        h->fault = cfg->fault;
        h->fault_ud = cfg->fault_ud;
    }
    h->flags = cfg->flags;
    h->max_module_size = cfg->max_module_size ? cfg->max_module_size
                                              : MH_DEFAULT_MAX_MODULE;
    h->probe_timeout_ms = cfg->probe_timeout_ms;
    const char *v = mh_host_getenv(h, "MODHOST_VERBOSE");
    h->verbose = (cfg->flags & MH_CONFIG_VERBOSE) ||
                 (v && v[0] && strcmp(v, "0") != 0);
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->sec.lock, NULL);
    mh_reg_init(&h->registry);
    mh_tops_init(h);
    mh_api_fill(&h->api);

    if (mh_int_init(h, &h->intern) != 0) {
        pthread_mutex_destroy(&h->lock);
        pthread_mutex_destroy(&h->sec.lock);
        mh_tops_free(h);
        alloc(cfg->alloc_ud, h, sizeof *h, 0);
        return mh_err(NULL, err, MH_ENOMEM, "out of memory creating a host");
    }
    http_limits(h, cfg->http);
    mh_ntf_init(h); /* its descriptor is the host's from the start */
    if (mh_chain_init(h) != 0) {
        mh_host_free(h);
        return mh_err(NULL, err, MH_ENOMEM, "out of memory creating a host");
    }
    if (cfg->cache_dir) {
        /* Without trailing slashes: "DIR/" would name the directory a
         * link at DIR leads to, and pass as not a link itself. */
        size_t n = strlen(cfg->cache_dir);
        while (n > 1 && cfg->cache_dir[n - 1] == '/')
            n--;
        h->cache_dir = mh_mem_strndup(h, cfg->cache_dir, n);
    } else {
        h->cache_dir = default_cache_dir(h);
    }
    if (!h->cache_dir || mh_path_init(h, cfg) != 0) {
        mh_host_free(h);
        return mh_err(NULL, err, MH_ENOMEM,
                      "out of memory building the search path");
    }
    const char *trust = cfg->trust ? cfg->trust
                                   : mh_host_getenv(h, "MODHOST_TRUST");
    mh_error *terr = NULL;
    if (mh_tru_load(h, trust, cfg->trust ? "mh_config.trust"
                                         : "MODHOST_TRUST",
                    &h->trust, &terr) != MH_OK) {
        mh_host_free(h);
        mh_status code = mh_error_code(terr);
        mh_err(NULL, err, code, "%s", mh_error_message(terr));
        mh_error_free(terr);
        return code;
    }
    MH_TRACE(h, "host created: modhost %s, plugin ABI %d, %zu path entries",
             MH_VERSION_STRING, MH_PLUGIN_ABI_VERSION, h->path.n);
    *out = h;
    return MH_OK;
}

bool mh_fault(mh_host *h, const char *site)
{
    if (!h || !h->fault || !h->fault(h->fault_ud, site))
        return false;
    errno = EIO;
    return true;
}

typedef struct busy_slot {
    const mh_host *host;
    unsigned calls;
    uintptr_t frame;            /* the outermost counted call's */
} busy_slot;
static __thread busy_slot tl_busy[8];

/* Slot i still counts calls running below `here` (the stack grows down:
 * a call still running has its frame above every frame it called). */
static bool live(const busy_slot *b, uintptr_t here)
{
    return b->calls > 0 && b->frame > here;
}

const mh_host *mh_busy_enter(const mh_host *h, const void *frame)
{
    uintptr_t f = (uintptr_t)frame;
    busy_slot *mine = NULL, *free_slot = NULL;
    for (size_t i = 0; h && i < MH_ARRAY_LEN(tl_busy); i++) {
        if (tl_busy[i].calls && tl_busy[i].host == h)
            mine = &tl_busy[i];
        else if (!tl_busy[i].calls && !free_slot)
            free_slot = &tl_busy[i];
    }
    if (mine && live(mine, f)) {
        mine->calls++;
        return h;
    }
    if (!mine) /* else a count left by calls that never returned: anew */
        mine = free_slot;
    if (!h || !mine)
        return NULL; /* more hosts nested than counted: not this one */
    mine->host = h;
    mine->calls = 1;
    mine->frame = f;
    return h;
}

void mh_busy_leave(const mh_host *const *h)
{
    for (size_t i = 0; *h && i < MH_ARRAY_LEN(tl_busy); i++)
        if (tl_busy[i].calls && tl_busy[i].host == *h) {
            tl_busy[i].calls--;
            return;
        }
}

bool mh_busy(const mh_host *h, const void *here)
{
    for (size_t i = 0; h && i < MH_ARRAY_LEN(tl_busy); i++)
        if (tl_busy[i].calls && tl_busy[i].host == h) {
            if (live(&tl_busy[i], (uintptr_t)here))
                return true;
            tl_busy[i].calls = 0; /* left without returning: gone */
        }
    return false;
}

void mh_host_free(mh_host *host)
{
    if (!host || mh_in_log_hook(host))
        return; /* the hook runs with the host's locks held: see header */
    if (mh_busy(host, __builtin_frame_address(0))) {
        /* From a module's init, a finder's callback, a list's callback:
         * what the call still uses would be freed under it. */
        mh_log(host, MH_LOG_ERROR, "mh_host_free: called from inside a "
               "call into the host (a module's init, a finder's code, a "
               "callback of the call); the host was not freed: free it "
               "once that call has returned");
        return;
    }
    if (atomic_exchange(&host->closing, true))
        return; /* a plugin's fini freeing it again */
    mh_path_close(host);        /* finder instances first: some finders */
    mh_chain_close(host);       /* are plugins, unloaded below */
    mh_reg_free(host);          /* fini runs first: plugins may log; it
                                   also closes the Lua state in time */
    mh_path_free(host);
    mh_chain_free(host);
    mh_sec_free(host);
    mh_ntf_free(host);
    mh_tops_free(host);
    mh_mem_free(host, host->dx_failed,
                host->capdx_failed * sizeof *host->dx_failed);
    mh_mem_free(host, host->dx_unclear,
                host->capdx_unclear * sizeof *host->dx_unclear);
    mh_tru_free(host, &host->trust);
    mh_mem_strfree(host, host->cache_dir);
    mh_int_free(host, &host->intern);
    pthread_mutex_destroy(&host->lock);
    host->alloc(host->alloc_ud, host, sizeof *host, 0);
}

const char *mh_host_cache_dir(mh_host *host)
{
    return host ? host->cache_dir : NULL;
}
