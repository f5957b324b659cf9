/*
 * test_faults.c -- fault injection across every finder and loader, in the
 * shape of SQLite's malloc/vfs fault loops and curl's torture mode.
 *
 * A scenario is one thing an application does with a fresh host: import
 * a module and use it (from a directory, a module database, an HTTP
 * server, its cache; native or Lua; with requirements), or discover the
 * modules of a directory.  The loop runs it for N = 1, 2, ... with the
 * N-th fallible call failing -- allocations (the allocator hook) and the
 * system and library calls the host reports to its fault hook, counted in
 * one sequence (tests/support/fault.c) -- once (only the N-th) or
 * persistently (the N-th and every later one), until a run completes
 * with no fault fired.  Every run, whatever failed, must end:
 *
 *   - in success, or in a clean error: a real mh_status, an error object
 *     of that status whose message names the module (or the operation);
 *     ASan and UBSan watch for anything worse;
 *   - with the registry unchanged unless the import worked (the module is
 *     absent; only a requirement imported before the failure may stay,
 *     whole), and with a retry in the same host, faults off, working;
 *   - with nothing leaked once the host is freed: every byte and block of
 *     the tracking allocator, every file descriptor, every memfd, every
 *     module handle (no file of the test still mapped; LSan covers the C
 *     allocator at exit);
 *   - with no temporary, journal or private native file left in the
 *     host's cache directory, and every cache file it did leave whole: a
 *     second, fault-free host on the same cache loads the module from it
 *     (traces prove the cache was used, not silently rewritten), and
 *     records no failure for a module that is fine.
 *
 * Persistent cases also run one loop per system call site with only that
 * site failing (every open from the N-th on, say, with memory to spare),
 * which the combined loop cannot show: there every allocation after the
 * first fault fails too.  Runs start after two fault-free ones (a
 * warm-up, which pays for what a process does once, and the dry run that
 * counts the points), with the search path's files a minute old, so every
 * run makes the same calls.
 *
 * Each case prints "faults: SCENARIO MODE N cases", N the number of fault
 * points exercised, for the reliability report.  A scenario with more
 * points than MAX_CASES would exercise every non-memory point and every
 * k-th allocation, and say so on that line; none has that many today
 * (the Lua ones, with the Lua state's own allocations, make 400-500).
 *
 * Surveying (environment): MH_TEST_FAULT_KEEP_GOING=1 reports each failed
 * check as "finding: ..." on stderr and goes on; MH_TEST_FAULT_N=N (and
 * MH_TEST_FAULT_ONLY=SITE) runs that one point, MH_TEST_FAULT_FROM=N
 * starts the loop there; MH_TEST_FAULT_SITES=1 prints the dry run's
 * sites, MH_TEST_FAULT_DEBUG=1 every run, MH_TEST_FAULT_MESSAGES=1 every
 * error message.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "support/support.h"
#include "test.h"

/* Fault points a case may exercise before it samples allocations: keeps
 * each case well under 20 s under ASan on 2 cores. */
#ifndef MAX_CASES
#define MAX_CASES 1000
#endif

/* ------------------------------------------------------------ scenarios */

typedef struct scen scen;

struct scen {
    const char *name;        /* for messages and the output line */
    const char *entry;       /* the search path */
    unsigned flags;          /* more MH_CONFIG_* */
    const char *cache_seed;  /* copied into each run's cache, or NULL */
    /* Import scenarios: */
    const char *module;      /* imported, then used */
    const char *dep;         /* a requirement of module, or NULL */
    /* Use mod (faults may be on): MH_OK, or a status with *err. */
    mh_status (*use)(const scen *sc, mh_module *mod, mh_error **err);
    /* What the validating host must trace when the cache holds a file
     * whose name contains cache_file (NULL: nothing to check). */
    const char *cache_file, *cache_trace;
    /* Discovery scenario: mh_discover and mh_host_failures instead. */
    int discover;
    const char *disc_expect;  /* fault-free mh_discover, one module a line */
    const char *fail_expect;  /* fault-free mh_host_failures */
    /* More checks of what a run left in cache, before the validating
     * host (NULL: none). */
    void (*check_cache)(const char *at, const scen *sc, const char *cache);
    http_server *srv;        /* the HTTP scenarios' server */
};

/* A check that failed.  With MH_TEST_FAULT_KEEP_GOING=1 in the
 * environment it is printed ("finding: ...", on stderr) and the loop goes
 * on, to survey every fault point at once; normally it fails the case. */
#define FINDING(...) finding_(__FILE__, __LINE__, __VA_ARGS__)
__attribute__((format(printf, 3, 4))) static void
finding_(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    char *msg = NULL;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0)
        test_fail(file, line, "out of memory in the test");
    va_end(ap);
    if (!getenv("MH_TEST_FAULT_KEEP_GOING")) {
        const char *m = str_fmt("%s", msg);
        free(msg);
        test_fail(file, line, "%s", m);
    }
    fprintf(stderr, "finding: %s\n", msg);
    free(msg);
}

/* The run under way, for the SIGABRT handler: an abort() inside the
 * library (a Lua panic, say) leaves no message of its own. */
static char current_run[256];

static void on_abort(int sig)
{
    static const char pre[] = "faults: aborted during the run ";
    ssize_t w = write(2, pre, sizeof pre - 1);
    w += write(2, current_run, strlen(current_run));
    w += write(2, "\n", 1);
    (void)w;
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Which run, for every message:
 *   "lua_dir once N=17 (first fault at 'alloc')"
 *   "http persistent only write N=2 (first fault at 'write', then more)" */
static const char *where(const scen *sc, int once, long n,
                         const fault_plan *p)
{
    return str_fmt("%s %s%s%s N=%ld (first fault at '%s'%s)", sc->name,
                   n == 0 ? "dry-run" : once ? "once" : "persistent",
                   p->only ? " only " : "", p->only ? p->only : "", n,
                   p->injected ? p->fired_site : "none",
                   p->injected > 1 ? ", then more" : "");
}

/* The messages of an error that could not be allocated (host/error.c):
 * MH_ENOMEM's, and any other status's. */
#define NO_MEMORY_MESSAGE \
    "out of memory (and no memory left to describe the error)"
#define NO_ROOM_MESSAGE "no memory left to describe the error"

/* A failed call must be clean: a real status, an error object of that
 * status, and a message that names what failed -- one of names (a
 * NULL-terminated list; an empty list takes any non-empty message). */
static void check_error_(const char *at, const char *step, mh_status st,
                         const mh_error *err, const char *const *names)
{
    const char *msg = mh_error_message(err);
    size_t i;
    if ((int)st <= 0 || st >= MH_STATUS_COUNT_)
        FAIL("%s: %s returned %d, not an mh_status", at, step, (int)st);
    if (err == NULL)
        FAIL("%s: %s failed with %s but gave no error object", at, step,
             mh_status_name(st));
    if (mh_error_code(err) != st)
        FAIL("%s: %s returned %s, its error says %s: %s", at, step,
             mh_status_name(st), mh_status_name(mh_error_code(err)), msg);
    if (msg[0] == '\0') {
        FINDING("%s: %s failed with %s and an empty message", at, step,
                mh_status_name(st));
        return;
    }
    if (getenv("MH_TEST_FAULT_MESSAGES"))
        fprintf(stderr, "%s: %s: %s: %s\n", at, step, mh_status_name(st),
                msg);
    /* With no memory even for the message, the library's static one
     * (of the same status: checked above). */
    if ((st == MH_ENOMEM && strcmp(msg, NO_MEMORY_MESSAGE) == 0) ||
        (st != MH_ENOMEM && strcmp(msg, NO_ROOM_MESSAGE) == 0))
        return;
    for (i = 0; names[i]; i++)
        if (strstr(msg, names[i]))
            return;
    if (i > 0)
        FINDING("%s: %s failed with %s, and the message names none of %s%s%s: "
                "\"%s\"", at, step, mh_status_name(st), names[0],
                names[1] ? " or " : "", names[1] ? names[1] : "", msg);
}
#define check_error(at, step, st, err, ...)                               \
    check_error_((at), (step), (st), (err),                               \
                 (const char *const[]){__VA_ARGS__, NULL})

/* --------------------------------------------------------------- using */

static mh_status use_greeting(const scen *sc, mh_module *mod, mh_error **err)
{
    const char *(*fn)(void) = (const char *(*)(void))mh_module_symbol(
        mod, "greeting");
    (void)err;
    if (fn == NULL)
        FAIL("%s: '%s' has no export 'greeting'", sc->name, sc->module);
    if (strcmp(fn(), "hello") != 0)
        FAIL("%s: greeting() returned \"%s\"", sc->name, fn());
    return MH_OK;
}

static mh_status use_value7(const scen *sc, mh_module *mod, mh_error **err)
{
    int (*fn)(void) = (int (*)(void))mh_module_symbol(mod, "value");
    (void)err;
    if (fn == NULL)
        FAIL("%s: '%s' has no export 'value'", sc->name, sc->module);
    if (fn() != 7)
        FAIL("%s: value() returned %d", sc->name, fn());
    return MH_OK;
}

/* mh_module_call(mod, "twice", [21]): 42, or a clean failure. */
static mh_status use_twice(const scen *sc, mh_module *mod, mh_error **err)
{
    cJSON *args = cJSON_Parse("[21]"), *res = (cJSON *)1;
    mh_status st;

    if (args == NULL)
        FAIL("out of memory in the test");
    st = mh_module_call(mod, "twice", args, &res, err);
    cJSON_Delete(args);
    if (st != MH_OK) {
        if (res != NULL)
            FAIL("%s: a failed call left *result set", sc->name);
        return st;
    }
    if (res == NULL || !cJSON_IsNumber(res) || res->valuedouble != 42)
        FAIL("%s: twice(21) did not return 42", sc->name);
    cJSON_Delete(res);
    return MH_OK;
}

/* ----------------------------------------------------------- discovery */

static int disc_line(void *ud, const mh_module_meta *m)
{
    const char **text = ud;
    const char *ver = m->manifest ? mh_manifest_version(m->manifest) : NULL;
    *text = str_fmt("%s%s %s %s %s\n", *text, m->name,
                    mh_module_kind_name(m->kind), mh_status_name(m->status),
                    ver ? ver : "-");
    return 0;
}

static int fail_line(void *ud, const mh_failure *f)
{
    const char **text = ud;
    *text = str_fmt("%s%s %s\n", *text, f->name, mh_status_name(f->status));
    return 0;
}

/* Is `got` (a discovery under faults) the expected one, but for modules
 * left out (an entry that could not be listed) or reported with a
 * transient status (the finder's trouble, not the module's)? */
static int disc_acceptable(const char *got, const char *expect)
{
    const char *p = got;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = (size_t)(eol - p);
        const char *line = str_fmt("%.*s\n", (int)len, p);
        if (!strstr(str_fmt("\n%s", expect), str_fmt("\n%s", line))) {
            /* the same name, with a transient status instead */
            char name[128], kind[32], status[32];
            if (sscanf(line, "%127s %31s %31s", name, kind, status) != 3)
                return 0;
            if (strcmp(status, "MH_EIO") != 0 &&
                strcmp(status, "MH_ENOMEM") != 0 &&
                strcmp(status, "MH_EAGAIN") != 0)
                return 0;
            if (!strstr(str_fmt("\n%s", expect),
                        str_fmt("\n%s %s ", name, kind)))
                return 0;
        }
        p = eol + 1;
    }
    return 1;
}

/* ------------------------------------------------------------ one run */

typedef struct run {
    const scen *sc;
    const char *at;          /* where(), refreshed as the run goes */
    fault_plan *p;
    int once;
    long n;
} run;

/* Import and use, faults as armed.  A step that fails has its error and
 * the registry checked, and is tried again with faults off. */
static void do_import(run *r, mh_host *h)
{
    const scen *sc = r->sc;
    size_t before = mh_host_module_count(h);
    mh_module *mod = (mh_module *)1;
    mh_error *err = NULL;
    mh_status st = mh_import(h, sc->module, &mod, &err);

    r->at = where(sc, r->once, r->n, r->p);
    if (st != MH_OK) {
        size_t now = mh_host_module_count(h);
        check_error(r->at, "mh_import", st, err,
                    str_fmt("'%s'", sc->module), sc->entry);
        if (mod != NULL)
            FAIL("%s: a failed import left *out set", r->at);
        if (mh_host_module(h, sc->module) != NULL)
            FINDING("%s: a failed import left '%s' registered", r->at,
                    sc->module);
        /* A requirement imported before the failure may stay, whole. */
        if (now != before &&
            !(sc->dep && now == before + 1 && mh_host_module(h, sc->dep)))
            FINDING("%s: a failed import of '%s' (%s) changed the registry "
                    "from %zu to %zu modules", r->at, sc->module,
                    mh_error_message(err), before, now);
        mh_error_free(err);
        err = NULL;
        fault_plan_disarm(r->p);
        st = mh_import(h, sc->module, &mod, &err);
        if (st != MH_OK) {
            FINDING("%s: after %s, the import again without faults failed: "
                    "%s: %s", r->at, r->once ? "a single fault" : "faults",
                    mh_status_name(st), mh_error_message(err));
            mh_error_free(err);
            return;
        }
    }
    if (mod == NULL || mod == (mh_module *)1)
        FAIL("%s: mh_import returned MH_OK without a module", r->at);
    if (mh_host_module(h, sc->module) != mod)
        FAIL("%s: the imported module is not the registered one", r->at);
    if (mh_host_module_count(h) != before + 1 + (sc->dep != NULL))
        FAIL("%s: %zu modules registered after importing '%s', expected "
             "%zu", r->at, mh_host_module_count(h), sc->module,
             before + 1 + (sc->dep != NULL));
    if (sc->dep && mh_host_module(h, sc->dep) == NULL)
        FAIL("%s: '%s' is loaded but its requirement '%s' is not", r->at,
             sc->module, sc->dep);

    st = sc->use(sc, mod, &err);
    r->at = where(sc, r->once, r->n, r->p);
    if (st != MH_OK) {
        check_error(r->at, "using the module", st, err,
                    str_fmt("'%s'", sc->module));
        mh_error_free(err);
        err = NULL;
        fault_plan_disarm(r->p);
        st = sc->use(sc, mod, &err);
        if (st != MH_OK)
            FINDING("%s: using '%s' again without faults failed: %s: %s",
                    r->at, sc->module, mh_status_name(st),
                    mh_error_message(err));
    }
    mh_error_free(err);
}

/* mh_discover then mh_host_failures, faults as armed. */
static void do_discover(run *r, mh_host *h)
{
    const scen *sc = r->sc;
    const char *text = "", *fails = "";
    mh_error *err = NULL;
    mh_status st = mh_discover(h, disc_line, &text, &err);

    r->at = where(sc, r->once, r->n, r->p);
    if (st != MH_OK) {
        check_error(r->at, "mh_discover", st, err, NULL);
    } else if (sc->disc_expect && !disc_acceptable(text, sc->disc_expect)) {
        FINDING("%s: mh_discover under faults reported\n%swhere a fault-free "
                "run reports\n%s", r->at, text, sc->disc_expect);
    }
    if (mh_host_module_count(h) != 0)
        FAIL("%s: mh_discover loaded a module", r->at);
    mh_error_free(err);
    err = NULL;
    st = mh_host_failures(h, fail_line, &fails, &err);
    r->at = where(sc, r->once, r->n, r->p);
    if (st != MH_OK)
        check_error(r->at, "mh_host_failures", st, err, NULL);
    mh_error_free(err);
    err = NULL;

    /* After a fault, both again without faults: exactly the fault-free
     * answers. */
    if (r->p->injected == 0)
        return;
    fault_plan_disarm(r->p);
    text = "";
    fails = "";
    st = mh_discover(h, disc_line, &text, &err);
    if (st != MH_OK)
        FINDING("%s: mh_discover again without faults: %s: %s", r->at,
                mh_status_name(st), mh_error_message(err));
    if (sc->disc_expect && strcmp(text, sc->disc_expect) != 0)
        FINDING("%s: mh_discover again without faults reported\n%swhere a "
                "fault-free run reports\n%s", r->at, text, sc->disc_expect);
    st = mh_host_failures(h, fail_line, &fails, &err);
    if (st != MH_OK)
        FINDING("%s: mh_host_failures again without faults: %s: %s", r->at,
                mh_status_name(st), mh_error_message(err));
    if (sc->fail_expect && strcmp(fails, sc->fail_expect) != 0)
        FINDING("%s: mh_host_failures again without faults reported\n%swhere "
                "a fault-free run reports\n%s", r->at, fails, sc->fail_expect);
    mh_error_free(err);
}

static mh_config run_config(const scen *sc, const char *cache,
                            log_capture *lc)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH | sc->flags;
    cfg.path = sc->entry;
    cfg.cache_dir = cache;
    cfg.log = log_capture_fn;
    cfg.log_ud = lc;
    return cfg;
}

/* A second host, without faults, on what the run left in cache: the
 * module must work, from the cache where there is one, and nothing may
 * be recorded against it. */
static void validate(const run *r, const char *cache)
{
    const scen *sc = r->sc;
    log_capture lc;
    mh_config cfg;
    mh_host *h;
    const char *cached = NULL;

    if (sc->check_cache)
        sc->check_cache(r->at, sc, cache);
    /* What the run left, before this host adds its own. */
    if (sc->cache_file && tree_count(cache, sc->cache_file, &cached) == 0)
        cached = NULL;
    log_capture_init(&lc);
    cfg = run_config(sc, cache, &lc);
    cfg.flags |= MH_CONFIG_VERBOSE;
    h = host_new_cfg(&cfg);
    if (sc->discover) {
        const char *text = "", *fails = "";
        ASSERT_STATUS(mh_discover(h, disc_line, &text, ERR), MH_OK);
        ASSERT_STATUS(mh_host_failures(h, fail_line, &fails, ERR), MH_OK);
        if (sc->disc_expect && strcmp(text, sc->disc_expect) != 0)
            FINDING("%s: a fault-free host on the run's cache discovered\n%s"
                    "where a fault-free run reports\n%s", r->at, text,
                    sc->disc_expect);
        if (sc->fail_expect && strcmp(fails, sc->fail_expect) != 0)
            FINDING("%s: a fault-free host on the run's cache lists the "
                    "failures\n%swhere a fault-free run lists\n%s", r->at,
                    fails, sc->fail_expect);
        if (log_capture_count(&lc, -1, "damaged") != 0)
            FINDING("%s: the run left a damaged discovery index; log:%s",
                    r->at, log_capture_dump(&lc));
    } else {
        mh_module *mod = NULL;
        mh_error *err = NULL;
        const char *fails = "";
        mh_status st = mh_import(h, sc->module, &mod, &err);
        if (st == MH_OK)
            st = sc->use(sc, mod, &err);
        if (st != MH_OK)
            FINDING("%s: a fault-free host on the run's cache cannot import "
                    "and use '%s': %s: %s", r->at, sc->module,
                    mh_status_name(st), mh_error_message(err));
        mh_error_free(err);
        err = NULL;
        if (cached && log_capture_count(&lc, -1, sc->cache_trace) <
                          str_count(cached, "\n"))
            FINDING("%s: the run left%s\nbut a fault-free host did not use "
                    "it (no \"%s\" in its log):%s", r->at, cached,
                    sc->cache_trace, log_capture_dump(&lc));
        if (log_capture_count(&lc, -1, "damaged") != 0)
            FINDING("%s: the run left a damaged cache file; log:%s", r->at,
                    log_capture_dump(&lc));
        st = mh_host_failures(h, fail_line, &fails, &err);
        if (st != MH_OK)
            FAIL("%s: mh_host_failures on the run's cache: %s: %s", r->at,
                 mh_status_name(st), mh_error_message(err));
        if (fails[0] != '\0')
            FINDING("%s: a fault left a recorded failure of a good module in "
                    "the discovery index (discovery skips it until the file "
                    "changes):\n%s", r->at, fails);
        mh_error_free(err);
    }
    mh_host_free(h);
    log_capture_free(&lc);
}

/* One run with the n-th fallible call failing -- of site `only`, or of
 * any site when it is NULL -- (n == 0: none, recording the sites into
 * *dry).  Returns whether a fault fired. */
static int fault_run(const scen *sc, long n, int once, const char *only,
                     fault_plan *dry)
{
    const char *cache = tmp_path("runs/%s-%ld/cache", once ? "o" : "p", n);
    size_t fds, memfds, fds_after;
    fault_plan plan, *p = dry ? dry : &plan;
    log_capture lc;
    mh_config cfg;
    mh_host *h = NULL;
    mh_error *err = NULL;
    mh_status st;
    run r = {.sc = sc, .p = p, .once = once, .n = n};
    int fired;
    long long t0 = clock_ms();

    snprintf(current_run, sizeof current_run, "%s %s%s%s N=%ld", sc->name,
             n == 0 ? "dry-run" : once ? "once" : "persistent",
             only ? " only " : "", only ? only : "", n);
    fault_rm_tree(tmp_path("runs/%s-%ld", once ? "o" : "p", n));
    tmp_mkdir("runs/%s-%ld", once ? "o" : "p", n);
    if (sc->cache_seed)
        fault_copy_tree(sc->cache_seed, cache);
    log_capture_init(&lc);
    fds = fault_fd_count();
    memfds = fault_memfd_count();
    if (!dry)
        fault_plan_init(p);
    p->record = dry != NULL;
    cfg = run_config(sc, cache, &lc);
    fault_config(&cfg, p);

    fault_plan_arm(p, n, once, only);
    st = mh_host_new(&cfg, &h, &err);
    r.at = where(sc, once, n, p);
    if (st != MH_OK) {
        check_error(r.at, "mh_host_new", st, err, NULL);
        if (h != NULL)
            FAIL("%s: a failed mh_host_new left *out set", r.at);
        mh_error_free(err);
        err = NULL;
        fault_plan_disarm(p);
        h = host_new_cfg(&cfg);
    }
    if (sc->discover)
        do_discover(&r, h);
    else
        do_import(&r, h);
    /* Still armed when nothing has fired yet: freeing must cope too. */
    mh_host_free(h);
    r.at = where(sc, once, n, p);

    /* Nothing of the host may outlive it. */
    if (p->mem.outstanding != 0 || p->mem.blocks != 0)
        FINDING("%s: %zu bytes in %zu blocks of the host's allocator leaked",
                r.at, p->mem.outstanding, p->mem.blocks);
    fds_after = fault_fd_count();
    if (fds_after != fds)
        FINDING("%s: %zu file descriptors open before the host, %zu after "
                "mh_host_free:%s", r.at, fds, fds_after, fault_fd_list());
    if (maps_count(tmp_dir(), "") != 0) /* a dlopen handle kept */
        FINDING("%s: a file of the test is still mapped after "
                "mh_host_free:%s", r.at, sh_run(str_fmt(
                    "grep -F %s /proc/%d/maps", sh_quote(tmp_dir()),
                    (int)getpid()), NULL));
    if (fault_memfd_count() != memfds)
        FINDING("%s: memfds left after mh_host_free (%zu before, %zu "
                "after):%s", r.at, memfds, fault_memfd_count(),
                fault_fd_list());
    {
        const char *left = fault_cache_leftovers(cache);
        if (left)
            FINDING("%s: temporary or partial files left in the cache:%s",
                    r.at, left);
    }
    validate(&r, cache);

    fired = p->injected > 0;
    if (getenv("MH_TEST_FAULT_DEBUG"))
        fprintf(stderr, "run %s: %zu calls (%s), %zu injected, %lld ms\n",
                r.at, p->calls, fault_sites_text(p), p->injected,
                clock_ms() - t0);
    if (!dry) {
        fault_plan_destroy(p);
        fault_rm_tree(tmp_path("runs/%s-%ld", once ? "o" : "p", n));
    }
    log_capture_free(&lc);
    return fired;
}

/* ----------------------------------------------------------- the loop */

/* Is call n (1-based) of the dry run one the loop skips: an allocation
 * other than every stride-th? */
static int sampled_out(const fault_plan *dry, size_t stride, long n)
{
    size_t k = 0;
    if (stride <= 1 || (size_t)n > dry->trace_n ||
        strcmp(fault_trace_site(dry, (size_t)n - 1), FAULT_ALLOC) != 0)
        return 0;
    for (long i = 0; i < n - 1; i++) /* its rank among the allocations */
        k += strcmp(fault_trace_site(dry, (size_t)i), FAULT_ALLOC) == 0;
    return k % stride != 0;
}

/* N = 1, 2, ... until a run fires no fault; `expect` calls are known to
 * be there (a fault-free run made them).  Returns the faults exercised. */
static size_t loop_until_quiet(const scen *sc, int once, const char *only,
                               const fault_plan *dry, size_t expect,
                               size_t stride)
{
    size_t cases = 0;
    /* Debugging: MH_TEST_FAULT_FROM=N starts the loop at N. */
    const char *from = only ? NULL : getenv("MH_TEST_FAULT_FROM");
    long n = from ? atol(from) : 1;

    for (;; n++) {
        if (!only && sampled_out(dry, stride, n))
            continue;
        if (!fault_run(sc, n, once, only, NULL))
            break;
        cases++;
        if ((size_t)n > expect + 10000)
            FAIL("%s: faults still fire %ld calls after the dry run's %zu",
                 sc->name, n, expect);
    }
    if ((size_t)n <= expect)
        FAIL("%s %s%s%s: no fault fired at N=%ld, though a fault-free run "
             "makes %zu such calls (sites: %s)", sc->name,
             once ? "once" : "persistent", only ? " only " : "",
             only ? only : "", n, expect, fault_sites_text(dry));
    return cases;
}

/*
 * Run sc under every fault point, once or persistently, and print the
 * "faults:" line.  Persistent mode also runs one loop per system call
 * site with only that site failing (the N-th open and every later one,
 * with memory to spare): the combined loop never shows that, since
 * there every allocation after the first fault fails too.
 */
static void fault_loop(const scen *sc, int once)
{
    fault_plan dry;
    size_t allocs = 0, others, stride = 1, cases, single = 0;
    const char *note = "", *sites = "";

    signal(SIGABRT, on_abort);
    /* Fault-free runs first: they must work, and the second gives the
     * sequence of fallible calls.  (The first pays for what a process
     * does once -- loading the Lua library, SQLite's and curl's global
     * set-up -- which later runs do not repeat.) */
    fault_plan_init(&dry);
    if (fault_run(sc, 0, once, NULL, &dry))
        FAIL("%s: the warm-up run injected a fault", sc->name);
    fault_plan_destroy(&dry);
    fault_plan_init(&dry);
    if (fault_run(sc, 0, once, NULL, &dry))
        FAIL("%s: the dry run injected a fault", sc->name);
    for (size_t i = 0; i < dry.trace_n; i++)
        allocs += strcmp(fault_trace_site(&dry, i), FAULT_ALLOC) == 0;
    others = dry.trace_n - allocs;
    if (dry.trace_n > MAX_CASES) {
        /* Every system call point; every stride-th allocation. */
        size_t budget = MAX_CASES > others ? MAX_CASES - others : 1;
        stride = (allocs + budget - 1) / budget;
        note = str_fmt(" (capped: %zu of %zu points, every non-memory "
                       "point and every %zu%s memory point)",
                       others + (allocs + stride - 1) / stride,
                       dry.trace_n, stride,
                       stride == 2 ? "nd" : stride == 3 ? "rd" : "th");
    }
    if (getenv("MH_TEST_FAULT_SITES"))
        fprintf(stderr, "%s: %zu points: %s\n", sc->name, dry.trace_n,
                fault_sites_text(&dry));

    if (getenv("MH_TEST_FAULT_N")) { /* debugging: that run alone */
        fault_run(sc, atol(getenv("MH_TEST_FAULT_N")), once,
                  getenv("MH_TEST_FAULT_ONLY"), NULL);
        fault_plan_destroy(&dry);
        return;
    }
    cases = loop_until_quiet(sc, once, NULL, &dry, dry.trace_n, stride);
    for (size_t i = 0; !once && i < dry.nsites; i++) {
        const char *site = dry.sites[i].site;
        if (strcmp(site, FAULT_ALLOC) == 0)
            continue;
        single += loop_until_quiet(sc, once, site, &dry, dry.sites[i].calls,
                                   1);
        sites = str_fmt("%s%s%s", sites, sites[0] ? ", " : "", site);
    }
    if (single)
        note = str_fmt("%s (%zu of them with one site failing alone: %s)",
                       note, single, sites);
    printf("faults: %s %s %zu cases%s\n", sc->name,
           once ? "once" : "persistent", cases + single, note);
    fflush(stdout);
    fault_plan_destroy(&dry);
}

/* ------------------------------------------------- scenario 1: native */

/* Make the files under dir, and dir itself, a minute old: finders and
 * caches distrust what changed in the last two seconds (an edit in the
 * same timestamp tick would go unseen) and look again, so a run made
 * right after the set-up would make more calls than the next. */
static const char *settle(const char *dir)
{
    disc_age_tree(dir, 60);
    disc_set_age(dir, 60);
    return dir;
}

static scen native_dir(void)
{
    const char *dir = tmp_mkdir("E");
    file_copy(MH_TEST_PLUGIN_DIR "/hello.so", str_fmt("%s/hello.so", dir));
    return (scen){.name = "native_dir", .entry = settle(dir),
                  .module = "hello", .use = use_greeting};
}

TEST(native_dir_once)
{
    scen sc = native_dir();
    fault_loop(&sc, 1);
}

TEST(native_dir_persistent)
{
    scen sc = native_dir();
    fault_loop(&sc, 0);
}

/* ---------------------------------------------------- scenario 2: Lua */

#define LUA_TWICE                                                         \
    "local M = {}\n"                                                      \
    "function M.twice(x) return x * 2 end\n"                              \
    "return M\n"

static scen lua_dir(void)
{
    lua_write("E/twice.lua", LUA_TWICE);
    return (scen){.name = "lua_dir", .entry = settle(tmp_path("E")),
                  .module = "twice", .use = use_twice,
                  .cache_file = ".mhc", .cache_trace = "bytecode from cache"};
}

TEST(lua_dir_once)
{
    scen sc = lua_dir();
    fault_loop(&sc, 1);
}

TEST(lua_dir_persistent)
{
    scen sc = lua_dir();
    fault_loop(&sc, 0);
}

/* A Lua module whose require of another fails (that one requires a
 * module that is nowhere -- a failure no index records -- and the
 * failure comes back to Lua as an error message): the message was
 * pushed while its mh_error was still held, so a push that ran out of
 * memory leaked it. */
static scen lua_nested_failure(void)
{
    lua_write("E/outer.lua", "local ok = pcall(require, 'inner')\n"
                             "assert(not ok)\n" LUA_TWICE);
    lua_write("E/inner.lua", "return {}\n");
    lua_write("E/inner.json", "{\"requires\": [\"nowhere\"]}");
    return (scen){.name = "lua_nested_failure",
                  .entry = settle(tmp_path("E")), .module = "outer",
                  .use = use_twice};
}

TEST(lua_nested_failure_once)
{
    scen sc = lua_nested_failure();
    fault_loop(&sc, 1);
}

TEST(lua_nested_failure_persistent)
{
    scen sc = lua_nested_failure();
    fault_loop(&sc, 0);
}

/* A fault-free host importing and using sc's module with cache as its
 * cache directory: what a run starting from a warm cache finds there. */
static void warm_cache(const scen *sc, const char *cache)
{
    log_capture lc;
    mh_config cfg;
    mh_host *h;
    mh_module *mod;

    log_capture_init(&lc);
    cfg = run_config(sc, cache, &lc);
    h = host_new_cfg(&cfg);
    mod = import_ok(h, sc->module);
    ASSERT_STATUS(sc->use(sc, mod, ERR), MH_OK);
    mh_host_free(h);
    log_capture_free(&lc);
}

/* Lua, from a warm cache: reading the bytecode under faults. */
static scen lua_dir_warm(void)
{
    scen sc = lua_dir();
    sc.name = "lua_dir_warm";
    sc.cache_seed = tmp_path("seed");
    warm_cache(&sc, sc.cache_seed);
    if (tree_count(sc.cache_seed, ".mhc", NULL) != 1)
        FAIL("a fault-free import did not write one bytecode cache file");
    return sc;
}

TEST(lua_dir_warm_once)
{
    scen sc = lua_dir_warm();
    fault_loop(&sc, 1);
}

TEST(lua_dir_warm_persistent)
{
    scen sc = lua_dir_warm();
    fault_loop(&sc, 0);
}

/* ------------------------------------------ scenario 3: native from db */

/* hello.so packed (fault-free) into a module database. */
static scen native_db(unsigned flags)
{
    const char *stage = tmp_mkdir("stage");
    const char *db = tmp_path("mods.db");
    file_copy(MH_TEST_PLUGIN_DIR "/hello.so", str_fmt("%s/hello.so", stage));
    db_pack(db, stage);
    disc_set_age(db, 60);
    return (scen){.name = flags & MH_CONFIG_NO_MEMFD ? "native_db_nomemfd"
                                                     : "native_db",
                  .entry = db, .flags = flags, .module = "hello",
                  .use = use_greeting};
}

TEST(native_db_once)
{
    scen sc = native_db(0);
    fault_loop(&sc, 1);
}

TEST(native_db_persistent)
{
    scen sc = native_db(0);
    fault_loop(&sc, 0);
}

/* The private-file fallback: <cache>/native/, written, loaded, unlinked
 * (fault_cache_leftovers reports any file left there). */
TEST(native_db_nomemfd_once)
{
    scen sc = native_db(MH_CONFIG_NO_MEMFD);
    fault_loop(&sc, 1);
}

TEST(native_db_nomemfd_persistent)
{
    scen sc = native_db(MH_CONFIG_NO_MEMFD);
    fault_loop(&sc, 0);
}

/* --------------------------------------------- scenario 4: Lua from db */

static scen lua_db(void)
{
    const char *db = tmp_path("lua.db");
    lua_write("stage/twice.lua", LUA_TWICE);
    db_pack(db, tmp_path("stage"));
    disc_set_age(db, 60);
    return (scen){.name = "lua_db", .entry = db, .module = "twice",
                  .use = use_twice, .cache_file = ".mhc",
                  .cache_trace = "bytecode from cache"};
}

TEST(lua_db_once)
{
    scen sc = lua_db();
    fault_loop(&sc, 1);
}

TEST(lua_db_persistent)
{
    scen sc = lua_db();
    fault_loop(&sc, 0);
}

/* ------------------------------------------------- scenario 5: HTTP */

static const char *sha256_of(const char *path)
{
    int st;
    const char *out = sh_run(str_fmt("sha256sum %s", sh_quote(path)), &st);
    if (st != 0 || strlen(out) < 64)
        FAIL("sha256sum %s failed", path);
    return str_fmt("%.64s", out);
}

/* What an HTTP run left must serve offline: with the server answering
 * 500, a host on that cache uses the cached index and, when the blob is
 * there too, imports the module from it. */
static void check_http_cache(const char *at, const scen *sc,
                             const char *cache)
{
    log_capture lc;
    mh_config cfg;
    mh_host *h;
    mh_module *mod = NULL;
    mh_error *err = NULL;
    int index = tree_count(cache, "index.json", NULL) != 0;
    int blob = tree_count(cache, sc->cache_file, NULL) != 0;
    mh_status st;

    if (!index)
        return; /* nothing to serve offline */
    log_capture_init(&lc);
    cfg = run_config(sc, cache, &lc);
    cfg.flags |= MH_CONFIG_VERBOSE;
    http_set_mode(sc->srv, "500");
    h = host_new_cfg(&cfg);
    st = mh_import(h, sc->module, &mod, &err);
    if (log_capture_count(&lc, -1, "cached index loaded") == 0)
        FINDING("%s: the run left an index in the cache, which a host did "
                "not load when the server failed; log:%s", at,
                log_capture_dump(&lc));
    if (blob && st == MH_OK)
        st = sc->use(sc, mod, &err);
    if (blob && st != MH_OK)
        FINDING("%s: the run left the index and the module in the cache, "
                "but offline a host cannot use them: %s: %s", at,
                mh_status_name(st), mh_error_message(err));
    if (blob && log_capture_count(&lc, -1, sc->cache_trace) == 0)
        FINDING("%s: offline, the module was not taken from the cache; "
                "log:%s", at, log_capture_dump(&lc));
    mh_error_free(err);
    mh_host_free(h);
    http_set_mode(sc->srv, "ok");
    log_capture_free(&lc);
}

/* answer7.so from the loopback server: the index and the module are
 * downloaded and cached (blobs/<sha256>), loaded through a memfd, and
 * later mapped from the cached blob once its SHA-256 is checked.
 * The entry is /switch/, so check_http_cache can take the server down. */
static scen http_online(void)
{
    const char *www = http_site(NULL);
    http_server *srv = http_start(www, NULL);
    http_set_mode(srv, "ok");
    return (scen){.name = "http", .entry = http_url(srv, "switch/"),
                  .module = "answer7", .use = use_value7,
                  .cache_file = sha256_of(str_fmt("%s/answer7.so", www)),
                  .cache_trace = "mapping the verified copy",
                  .check_cache = check_http_cache, .srv = srv};
}

TEST(http_once)
{
    scen sc = http_online();
    fault_loop(&sc, 1);
    http_stop(sc.srv);
}

TEST(http_persistent)
{
    scen sc = http_online();
    fault_loop(&sc, 0);
    http_stop(sc.srv);
}

/* The same entry with the server gone (connection refused), from a cache
 * a fault-free host filled while it was up. */
static scen http_offline(void)
{
    scen sc = http_online();
    sc.name = "http_offline";
    sc.cache_seed = tmp_path("seed");
    sc.check_cache = NULL;
    warm_cache(&sc, sc.cache_seed);
    if (tree_count(sc.cache_seed, sc.cache_file, NULL) != 1)
        FAIL("a fault-free import did not cache the module");
    http_stop(sc.srv);
    sc.srv = NULL;
    return sc;
}

TEST(http_offline_once)
{
    scen sc = http_offline();
    fault_loop(&sc, 1);
}

TEST(http_offline_persistent)
{
    scen sc = http_offline();
    fault_loop(&sc, 0);
}

/* -------------------------------------------- scenario 6: discovery */

/* Four plugins (two with manifest notes providing entry points), three
 * Lua modules (two with sidecars), and one plugin whose note is damaged,
 * which discovery records as a failure.  The fault-free answers are taken
 * from a host with a cache of its own. */
static scen discover(void)
{
    const char *dir = disc_plugin_dir("D", 4);
    const char *broken = fixture_copy("disc_codec", "D/broken.so");
    scen sc = {.name = "discover", .entry = dir, .discover = 1};
    log_capture lc;
    mh_config cfg;
    mh_host *h;
    const char *text = "", *fails = "";

    disc_damage_note(broken);
    settle(dir);
    log_capture_init(&lc);
    cfg = run_config(&sc, tmp_path("expect-cache"), &lc);
    h = host_new_cfg(&cfg);
    ASSERT_STATUS(mh_discover(h, disc_line, &text, ERR), MH_OK);
    ASSERT_STATUS(mh_host_failures(h, fail_line, &fails, ERR), MH_OK);
    mh_host_free(h);
    log_capture_free(&lc);
    ASSERT_EQ_INT(str_count(text, "\n"), 8);
    ASSERT_CONTAINS(text, "broken native MH_EFORMAT");
    ASSERT_EQ_STR(fails, "broken MH_EFORMAT\n");
    sc.disc_expect = text;
    sc.fail_expect = fails;
    return sc;
}

TEST(discover_once)
{
    scen sc = discover();
    fault_loop(&sc, 1);
}

TEST(discover_persistent)
{
    scen sc = discover();
    fault_loop(&sc, 0);
}

/* --------------------------------------------- scenario 7: requires */

/* app.lua requires libdep (sidecar manifests), and calls it through
 * require: both are imported, compiled and cached under faults. */
static scen requires(void)
{
    meta_lua_module("R/app",
                    "local lib = require('libdep')\n"
                    "local M = {}\n"
                    "function M.twice(x) return lib.mul(x, 2) end\n"
                    "return M\n",
                    "{\"version\": \"1.0\", "
                    "\"requires\": [\"libdep >=1.0\"]}");
    meta_lua_module("R/libdep",
                    "return { mul = function(a, b) return a * b end }\n",
                    "{\"version\": \"1.2\"}");
    return (scen){.name = "requires", .entry = settle(tmp_path("R")),
                  .module = "app", .dep = "libdep", .use = use_twice,
                  .cache_file = ".mhc", .cache_trace = "bytecode from cache"};
}

TEST(requires_once)
{
    scen sc = requires();
    fault_loop(&sc, 1);
}

TEST(requires_persistent)
{
    scen sc = requires();
    fault_loop(&sc, 0);
}
