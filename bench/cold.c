/*
 * bench/cold.c -- cold import: the 1,000 fixture plugins, none loaded yet,
 * each found on a search path and loaded.
 *
 * One sample opens all 1,000 modules (names.txt order) and gives the cost
 * per module; everything is closed again outside the timed region, so the
 * next sample is as cold as the first (the files stay in the page cache:
 * "cold" means not yet loaded in the process, not not yet read from
 * disk).  For each search path of P = 1, 10, 50 entries (P-1 decoys, then
 * tree/, so every module is in the last entry), interleaved -- once with
 * the typical decoys (entries with packages of their own), then, at
 * P = 10 and 50, with the worst case (every entry holding the same 200
 * package directories):
 *   raw dlopen  dlopen(absolute path, RTLD_NOW | RTLD_LOCAL): the floor,
 *               which knows where the file is and searches nothing
 *   GLib        g_module_open(absolute path, G_MODULE_BIND_LOCAL): also
 *               told the path; it has no search path of its own
 *   modhost     mh_import(host, "pkgA.subB.mod_N"): a host made (outside
 *               the timed region) per sample, so the directory listings
 *               it caches are built during the sample, as in a real
 *               process start
 *   libltdl     lt_dlsetsearchpath(the P entries' pkgA/subB directories),
 *               lt_dlopenext("mod_N")
 *   naive       stat(entry/pkgA/subB/mod_N.so) for each entry in order,
 *               dlopen the first that exists
 *   CPython 3   `importlib.import_module` of each name, sys.path of the
 *               same P entries (bench/py_import.py, one process a sample)
 * and one more table: dlopen of a plain file against copying the same
 * bytes into a sealed memfd and dlopen of /proc/self/fd/N, the path
 * modhost takes for code from a database or the network.
 */
#include "bench.h"
#include "common.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gmodule.h>
#include <ltdl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const int PS[] = {1, 10, 50};
#define NP (sizeof PS / sizeof PS[0])

typedef struct ctx {
    int p;
    bool shared;                /* decoy-shared/ */
    const char *const *names;
    size_t n;
    const char *const *dirs;    /* the P entries */
    char **abs;                 /* tree/pkgA/subB/mod_N.so, per module */
    char **rel;                 /* pkgA/subB/mod_N.so, per module */
    char **base;                /* mod_N, per module (libltdl) */
    char **ltpath;              /* the P entries' pkgA/subB, ':'-joined */
    void **handles;             /* what the sample opened, to close */
    double *ltdl_share;         /* per sample: setsearchpath / total */
    int ltdl_samples;
} ctx;

static double per_module_us(uint64_t dt, size_t n)
{
    return (double)dt / 1000.0 / (double)n;
}

static void close_dl(ctx *c)
{
    /* Reverse order, as a process winding down would. */
    for (size_t i = c->n; i-- > 0;) {
        if (c->handles[i] && dlclose(c->handles[i]) != 0)
            bench_die("cold: dlclose: %s", dlerror());
        c->handles[i] = NULL;
    }
}

static double sample_raw(void *p)
{
    ctx *c = p;
    return bench_dlopen_all_us((const char *const *)c->abs, c->n);
}

static double sample_glib(void *p)
{
    ctx *c = p;
    size_t ok = 0;
    uint64_t t = bench_now_ns();
    for (size_t i = 0; i < c->n; i++)
        ok += (c->handles[i] = g_module_open(c->abs[i],
                                             G_MODULE_BIND_LOCAL)) != NULL;
    uint64_t dt = bench_now_ns() - t;
    if (ok != c->n)
        bench_die("cold: g_module_open: %s", g_module_error());
    for (size_t i = c->n; i-- > 0;) {
        if (!g_module_close(c->handles[i]))
            bench_die("cold: g_module_close: %s", g_module_error());
        c->handles[i] = NULL;
    }
    return per_module_us(dt, c->n);
}

static double sample_modhost(void *p)
{
    ctx *c = p;
    mh_host *h = bench_host(bench_path(c->p), 0, NULL, NULL);
    char *gone = bench_cache_of(h);
    uint64_t t = bench_now_ns();
    bench_import_all(h, c->names, c->n); /* dies on a failure */
    uint64_t dt = bench_now_ns() - t;
    if (mh_host_module_count(h) < c->n)
        bench_die("cold: modhost holds %zu modules, expected %zu",
                  mh_host_module_count(h), c->n);
    mh_host_free(h); /* every module's fini, dlclose */
    bench_discard(gone);
    return per_module_us(dt, c->n);
}

static double sample_ltdl(void *p)
{
    ctx *c = p;
    size_t ok = 0;
    uint64_t in_setpath = 0;
    uint64_t t = bench_now_ns();
    for (size_t i = 0; i < c->n; i++) {
        /* libltdl searches only names without a directory part, so the
         * package directories must be the search path; the shuffled
         * order changes them nearly every time.  Timed apart as well,
         * to show it is not what makes libltdl slow. */
        uint64_t s = bench_now_ns();
        int rc = lt_dlsetsearchpath(c->ltpath[i]);
        in_setpath += bench_now_ns() - s;
        if (rc != 0)
            break;
        ok += (c->handles[i] = lt_dlopenext(c->base[i])) != NULL;
    }
    uint64_t dt = bench_now_ns() - t;
    if (ok != c->n)
        bench_die("cold: libltdl: %s", lt_dlerror());
    for (size_t i = c->n; i-- > 0;) {
        if (lt_dlclose(c->handles[i]) != 0)
            bench_die("cold: lt_dlclose: %s", lt_dlerror());
        c->handles[i] = NULL;
    }
    c->ltdl_share[c->ltdl_samples++] = (double)in_setpath / (double)dt;
    return per_module_us(dt, c->n);
}

static double sample_naive(void *p)
{
    ctx *c = p;
    size_t ok = 0;
    char buf[4096];
    uint64_t t = bench_now_ns();
    for (size_t i = 0; i < c->n; i++) {
        for (int d = 0; d < c->p; d++) {
            struct stat st;
            snprintf(buf, sizeof buf, "%s/%s", c->dirs[d], c->rel[i]);
            if (stat(buf, &st) == 0) {
                ok += (c->handles[i] = dlopen(buf, RTLD_NOW | RTLD_LOCAL))
                      != NULL;
                break;
            }
        }
    }
    uint64_t dt = bench_now_ns() - t;
    if (ok != c->n)
        bench_die("cold: naive probing: %s", dlerror());
    close_dl(c);
    return per_module_us(dt, c->n);
}

static double sample_python(void *p)
{
    ctx *c = p;
    /* py_import.py reports ns per import; its interpreter start and exit
     * are outside its figure. */
    return bench_python("cold", c->p, c->shared ? "shared" : NULL) / 1000.0;
}

/* pkgA.subB.mod_N -> "pkgA/subB/mod_N" (no extension). */
static char *rel_of(const char *name)
{
    char *r = bench_fmt("%s", name);
    for (char *q = r; *q; q++)
        if (*q == '.')
            *q = '/';
    return r;
}

static void ctx_init(ctx *c, int p, bool shared, int rounds)
{
    memset(c, 0, sizeof *c);
    c->p = p;
    c->shared = shared;
    c->n = bench_names(&c->names);
    c->dirs = shared ? bench_path_dirs_shared(p) : bench_path_dirs(p);
    c->abs = calloc(c->n, sizeof *c->abs);
    c->rel = calloc(c->n, sizeof *c->rel);
    c->base = calloc(c->n, sizeof *c->base);
    c->ltpath = calloc(c->n, sizeof *c->ltpath);
    c->handles = calloc(c->n, sizeof *c->handles);
    c->ltdl_share = calloc((size_t)rounds, sizeof *c->ltdl_share);
    if (!c->abs || !c->rel || !c->base || !c->ltpath || !c->handles ||
        !c->ltdl_share)
        bench_die("out of memory");
    for (size_t i = 0; i < c->n; i++) {
        char *r = rel_of(c->names[i]);
        c->abs[i] = bench_fmt("%s/%s.so", c->dirs[p - 1], r);
        c->rel[i] = bench_fmt("%s.so", r);
        char *slash = strrchr(r, '/');
        if (!slash)
            bench_die("cold: '%s' is not pkgA.subB.mod_N", c->names[i]);
        c->base[i] = bench_fmt("%s", slash + 1);
        *slash = '\0'; /* r is now the package directory, pkgA/subB */
        char *lt = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&lt, &len);
        if (!f)
            bench_die("out of memory");
        for (int d = 0; d < p; d++)
            fprintf(f, "%s%s/%s", d ? ":" : "", c->dirs[d], r);
        fclose(f);
        c->ltpath[i] = lt;
        free(r);
        if (access(c->abs[i], R_OK) != 0)
            bench_die("cold: %s: %s", c->abs[i], strerror(errno));
    }
}

static void ctx_free(ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->abs[i]);
        free(c->rel[i]);
        free(c->base[i]);
        free(c->ltpath[i]);
    }
    free(c->abs);
    free(c->rel);
    free(c->base);
    free(c->ltpath);
    free(c->handles);
    free(c->ltdl_share);
}

/* ---- memfd against a plain file ------------------------------------------ */

typedef struct mctx {
    ctx *c;
    unsigned char **bytes;      /* every module's file, read beforehand */
    size_t *len;
    int *fds;
} mctx;

static double sample_memfd(void *p)
{
    mctx *m = p;
    ctx *c = m->c;
    size_t ok = 0;
    char path[64];
    uint64_t t = bench_now_ns();
    for (size_t i = 0; i < c->n; i++) {
        /* What modhost's memory path does (loaders/memfd.c): create,
         * write, seal against change, dlopen by /proc/self/fd name. */
        int fd = memfd_create(c->base[i], MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
            break;
        m->fds[i] = fd;
        if (write(fd, m->bytes[i], m->len[i]) != (ssize_t)m->len[i] ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
                                       F_SEAL_WRITE | F_SEAL_SEAL) != 0)
            break;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ok += (c->handles[i] = dlopen(path, RTLD_NOW | RTLD_LOCAL)) != NULL;
    }
    uint64_t dt = bench_now_ns() - t;
    if (ok != c->n)
        bench_die("cold: memfd load failed: %s / %s", strerror(errno),
                  dlerror());
    /* dlclose first: the loader knows each object by its fd's name, which
     * must not be reused while the object is mapped. */
    close_dl(c);
    for (size_t i = 0; i < c->n; i++) {
        close(m->fds[i]);
        m->fds[i] = -1;
    }
    return per_module_us(dt, c->n);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    char *buf = bench_read_file(path, len);
    if (!buf)
        bench_die("cold: %s: %s", path, strerror(errno));
    return (unsigned char *)buf;
}

static void run_memfd(ctx *c)
{
    mctx m = {c, calloc(c->n, sizeof(unsigned char *)),
              calloc(c->n, sizeof(size_t)), calloc(c->n, sizeof(int))};
    if (!m.bytes || !m.len || !m.fds)
        bench_die("out of memory");
    size_t total = 0;
    for (size_t i = 0; i < c->n; i++) {
        m.bytes[i] = slurp(c->abs[i], &m.len[i]);
        total += m.len[i];
    }
    bench_var v[] = {
        {"dlopen of the plain file (absolute path)", sample_raw, c, 0},
        {"memfd_create + write + seal + dlopen", sample_memfd, &m, 0},
    };
    size_t nv = sizeof v / sizeof v[0];
    bench_interleave(v, nv, bench.rounds);

    bench_table("Cold load: memfd against a plain file",
                "µs per module, 1,000 plugins loaded once each; the memfd "
                "figure includes creating, filling and sealing it");
    for (size_t i = 0; i < nv; i++)
        bench_row(v[i].name, v[i].median, "µs", i == 0);
    bench_note("The module bytes (%.1f KB each on average) are read into "
               "memory before timing, as a finder holds them (database "
               "row, download); the memfd variant does what modhost's "
               "memory loader does (loaders/memfd.c) minus its SHA-256 and "
               "ELF checks. The issue quotes 1.03× for this ratio.",
               (double)total / (double)c->n / 1000.0);
    bench_table_end();

    for (size_t i = 0; i < c->n; i++)
        free(m.bytes[i]);
    free(m.bytes);
    free(m.len);
    free(m.fds);
}

/* ---- the tables ---------------------------------------------------------- */

static void run_layout(int p, bool shared)
{
    int rounds = bench.rounds;
    ctx c;
    ctx_init(&c, p, shared, rounds);
    bench_var v[] = {
        {"raw dlopen, absolute path (floor)", sample_raw, &c, 0},
        {"GLib g_module_open, absolute path", sample_glib, &c, 0},
        {"modhost mh_import", sample_modhost, &c, 0},
        {"libltdl lt_dlopenext", sample_ltdl, &c, 0},
        {"naive stat probing + dlopen", sample_naive, &c, 0},
        {"CPython 3 import (C extension)", sample_python, &c, 0},
    };
    size_t nv = sizeof v / sizeof v[0];
    bench_interleave(v, nv, rounds);

    char *title = bench_fmt("Cold import, P = %d search path entr%s%s", p,
                            p == 1 ? "y" : "ies",
                            shared ? ", every entry holding the same "
                                     "packages (worst case)" : "");
    bench_table(title, shared
                ? "µs per module: as above, but each of the P-1 entries "
                  "in front holds the same 200 package directories as "
                  "tree/ (one other plugin in each); ratio to raw dlopen"
                : "µs per module: 1,000 plugins (15 KB each), none loaded "
                  "before; every module is in the last entry, the P-1 in "
                  "front hold 25 plugins each in packages of their own; "
                  "ratio to raw dlopen by absolute path");
    for (size_t i = 0; i < nv; i++)
        bench_row(v[i].name, v[i].median, "µs", i == 0);
    double mh = v[2].median;
    if (!shared) {
        char *what = bench_fmt("modhost ÷ raw dlopen, P = %d", p);
        bench_target(what, mh / v[0].median, 1.05, false);
        free(what);
        if (p == 50) {
            bench_target("libltdl ÷ modhost, P = 50", v[3].median / mh,
                         3.0, true);
            bench_target("CPython ÷ modhost, P = 50", v[5].median / mh,
                         3.0, true);
        }
    }
    double share = bench_median(c.ltdl_share, (size_t)c.ltdl_samples);
    if (shared)
        bench_note("No target is held against this layout: here every "
                   "search must look into P directories per package, and "
                   "a new host reads each of the %d×200 package "
                   "directories once (see docs/performance.md).", p - 1);
    else
        bench_note("Each sample loads all 1,000 modules and is closed "
                   "again (dlclose, g_module_close, lt_dlclose, "
                   "mh_host_free) outside the timed region; modhost gets "
                   "a new host per sample (made outside the timed region), "
                   "so building its directory listing cache is in the "
                   "figure. libltdl does not search a name with a directory "
                   "part, so for `pkgA.subB.mod_N` its search path is set "
                   "to the `pkgA/subB` directories of the %d entr%s "
                   "(lt_dlsetsearchpath, %.1f%% of its time) and "
                   "`lt_dlopenext(\"mod_N\")` opens it; libltdl binds "
                   "lazily (RTLD_LAZY), every other variant RTLD_NOW. "
                   "CPython runs one process per sample; its figure "
                   "excludes interpreter start-up.", p,
                   p == 1 ? "y" : "ies", share * 100.0);
    bench_table_end();
    free(title);

    if (p == 1 && !shared)
        run_memfd(&c);
    ctx_free(&c);
}

static void run(void)
{
    if (lt_dlinit() != 0)
        bench_die("cold: lt_dlinit: %s", lt_dlerror());
    /* A full run of this area (11 rounds) takes a minute or two on a
     * 2-core machine: no need to cut rounds although every sample loads
     * 1,000 objects. */
    for (size_t k = 0; k < NP; k++)
        run_layout(PS[k], false);
    for (size_t k = 1; k < NP; k++)
        run_layout(PS[k], true);
    lt_dlexit();
}

const bench_area bench_area_cold = {"cold", "Cold import", run, NULL};
