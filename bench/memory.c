/*
 * bench/memory.c -- registry bytes per loaded module, excluding the
 * mapping.
 *
 * A host searching tree/ counts every byte it holds through its allocator
 * hook (bench_count_alloc: malloc_usable_size, so allocator rounding is
 * in).  Bytes after importing all 1,000 fixture modules minus bytes before
 * the first import, divided by 1,000, is everything the host keeps per
 * loaded module: the module entry, its interned name and origin, its
 * manifest, the finder's directory caches, and the first import's one-time
 * setup spread over the 1,000 (a manifest from an ELF note is parsed only
 * when asked for: a row shows the registry once every one was).  What
 * dlopen itself costs -- the mapping, and ld.so's link_map and scope
 * arrays, which it takes from the C heap -- is outside the hook, which is
 * what "excluding the mapping" means.
 *
 * Peers and a cross-check, each in a fork()ed child so that every one
 * starts from the same process state, as growth of the C heap in use
 * (mallinfo2) minus that of plain dlopen()s of the same files:
 *   modhost   the same imports, to show nothing bypasses the hook
 *   GModule   g_module_open(file, G_MODULE_BIND_LOCAL)
 *   libltdl   lt_dlopenadvise(file, local)
 * and CPython 3: tracemalloc's traced bytes over importing the 1,000
 * fixtures as extension modules (their packages imported beforehand, as
 * modhost has none).
 */
#include "bench.h"
#include "common.h"
#include "host/internal.h" /* the intern arena, counted below */

#include <dlfcn.h>
#include <fcntl.h>
#include <gmodule.h>
#include <ltdl.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ROUNDS 5 /* byte counts are deterministic: a few suffice */

typedef struct ctx {
    const char *const *names;
    size_t n;
    const char *const *files;   /* tree/pkgA/subB/mod_N.so per name */
} ctx;


/* ---- modhost, through the allocator hook --------------------------------- */

typedef struct hook_fig {
    double all;                 /* bytes per module over all n imports */
    double second_half;         /* bytes per module, imports n/2 .. n */
    double first;               /* bytes of the first import alone */
    double blocks;              /* blocks per module over all n */
    double kept;                /* per module, once mh_invalidate_caches()
                                   dropped the finders' caches */
    double asked;               /* kept, and every module's manifest
                                   asked for (mh_module_manifest) */
} hook_fig;

/* The host's bytes as the hook counts them, but its intern arena's
 * chunks at what their records use: a host makes its first 64 KiB chunk
 * when it is made, before the first reading, and the records of the
 * modules' names then fall in it uncounted.  Full chunks count whole (a
 * full chunk's unused tail is the arena's waste); the newest counts what
 * its records use. */
static long long arena_unused(mh_host *h)
{
    long long b = 0;
    for (mh_ichunk *k = h->intern.chunks; k; k = k->next)
        b += (long long)malloc_usable_size(k) -
             (long long)(k == h->intern.chunks ? h->intern.chunk_used
                                               : k->size);
    return b;
}

static long long host_bytes(mh_host *h, const bench_count *count)
{
    return count->bytes - arena_unused(h);
}

static hook_fig measure_hook(const ctx *c)
{
    bench_count count = {0, 0};
    mh_host *h = bench_host(bench_path(1), 0, bench_count_alloc, &count);
    size_t half = c->n / 2;
    long long b0 = host_bytes(h, &count), k0 = count.blocks;
    bench_import_all(h, c->names, 1);
    long long b1 = host_bytes(h, &count);
    bench_import_all(h, c->names + 1, half - 1);
    long long bh = host_bytes(h, &count);
    bench_import_all(h, c->names + half, c->n - half);
    long long bn = host_bytes(h, &count), kn = count.blocks;
    mh_invalidate_caches(h);
    long long bi = host_bytes(h, &count);
    for (size_t i = 0; i < c->n; i++)
        if (!mh_module_manifest(mh_host_module(h, c->names[i])))
            fprintf(stderr, "bench: memory: %s has no manifest\n",
                    c->names[i]);
    long long ba = host_bytes(h, &count);
    mh_host_free(h);
    hook_fig f = {
        (double)(bn - b0) / (double)c->n,
        (double)(bn - bh) / (double)(c->n - half),
        (double)(b1 - b0),
        (double)(kn - k0) / (double)c->n,
        (double)(bi - b0) / (double)c->n,
        (double)(ba - b0) / (double)c->n,
    };
    return f;
}

/* ---- C heap growth in a fork()ed child ----------------------------------- */

static double heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
}

typedef enum loader {
    L_DLOPEN_FD,                /* dlopen("/proc/self/fd/N"), fd kept open,
                                   as modhost's native loader does */
    L_DLOPEN_PATH,              /* dlopen(path) */
    L_MODHOST,
    L_GMODULE,
    L_LTDL
} loader;

/* Heap growth per module over loading every fixture with `how`; runs in
 * the child.  One-time setup of each loader (a host, lt_dlinit) happens
 * before the first reading. */
static double heap_per_module(const ctx *c, loader how)
{
    mh_host *h = NULL;
    lt_dladvise adv;
    if (how == L_MODHOST)
        h = bench_host(bench_path(1), 0, NULL, NULL);
    if (how == L_GMODULE && !g_module_supported())
        return NAN;
    if (how == L_LTDL &&
        (lt_dlinit() != 0 || lt_dladvise_init(&adv) != 0 ||
         lt_dladvise_local(&adv) != 0))
        return NAN;
    double before = heap_in_use();
    long long unused0 = h ? arena_unused(h) : 0;
    for (size_t i = 0; i < c->n; i++) {
        bool ok = false;
        switch (how) {
        case L_DLOPEN_FD: {
            int fd = open(c->files[i], O_RDONLY | O_CLOEXEC);
            char byfd[40];
            snprintf(byfd, sizeof byfd, "/proc/self/fd/%d", fd);
            ok = fd >= 0 && dlopen(byfd, RTLD_NOW | RTLD_LOCAL);
            break;
        }
        case L_DLOPEN_PATH:
            ok = dlopen(c->files[i], RTLD_NOW | RTLD_LOCAL) != NULL;
            break;
        case L_MODHOST:
            bench_import_all(h, c->names + i, 1);
            ok = true;
            break;
        case L_GMODULE:
            ok = g_module_open(c->files[i], G_MODULE_BIND_LOCAL) != NULL;
            break;
        case L_LTDL:
            ok = lt_dlopenadvise(c->files[i], adv) != NULL;
            break;
        }
        if (!ok) {
            fprintf(stderr, "bench: memory: cannot load %s\n",
                    c->files[i]);
            return NAN;
        }
    }
    double after = heap_in_use();
    if (h) /* the intern arena as in host_bytes() */
        after -= (double)(arena_unused(h) - unused0);
    return (after - before) / (double)c->n;
}

typedef struct fork_arg {
    const ctx *c;
    loader how;
} fork_arg;

static double heap_in_child(void *p)
{
    const fork_arg *a = p;
    return heap_per_module(a->c, a->how);
}

/* heap_per_module in a fork()ed child; NAN on any failure. */
static double forked(const ctx *c, loader how)
{
    fork_arg a = {c, how};
    return bench_forked(heap_in_child, &a);
}

/* ---- CPython ------------------------------------------------------------- */

/* tracemalloc sees what CPython allocates through its own allocators:
 * the module object and its dict, spec and loader, the sys.modules entry,
 * the attribute on the parent package, the extension cache, the path
 * finder's directory caches.  It reports the sizes asked for (no
 * allocator rounding) and never sees dlopen's heap. */
static const char py_script[] =
    "import importlib, sys, tracemalloc\n"
    "fx = sys.argv[1]\n"
    "names = open(fx + '/names.txt').read().split()\n"
    "sys.path.insert(0, fx + '/tree')\n"
    "for n in names:\n"
    "    importlib.import_module(n.rsplit('.', 1)[0])\n"
    "tracemalloc.start()\n"
    "before = tracemalloc.get_traced_memory()[0]\n"
    "for n in names:\n"
    "    importlib.import_module(n)\n"
    "print((tracemalloc.get_traced_memory()[0] - before) / len(names))\n";

static double python_per_module(void)
{
    /* The script goes in as a file: no quoting games with the shell. */
    char *script = bench_fmt("%s/memory_tracemalloc.py", bench.work);
    FILE *f = fopen(script, "w");
    if (!f || fputs(py_script, f) == EOF || fclose(f) != 0)
        bench_die("cannot write %s", script);
    char *cmd = bench_fmt("/usr/bin/python3 -I -B '%s' '%s'", script,
                    bench.fixtures);
    FILE *p = popen(cmd, "r");
    double v = NAN;
    if (p) {
        if (fscanf(p, "%lf", &v) != 1)
            v = NAN;
        if (pclose(p) != 0)
            v = NAN;
    }
    if (isnan(v))
        fprintf(stderr, "bench: failed: %s\n", cmd);
    free(cmd);
    free(script);
    return v;
}

/* ---- the table ----------------------------------------------------------- */

static void run(void)
{
    ctx c;
    c.n = bench_names(&c.names);
    if (c.n < 2)
        bench_die("memory: needs at least 2 fixture modules");
    c.files = bench_files();

    int rounds = bench.rounds < MAX_ROUNDS ? bench.rounds : MAX_ROUNDS;
    double all[MAX_ROUNDS], half[MAX_ROUNDS], first[MAX_ROUNDS],
        blocks[MAX_ROUNDS], kept[MAX_ROUNDS], asked[MAX_ROUNDS],
        heap_fd[MAX_ROUNDS],
        heap_path[MAX_ROUNDS], heap_mh[MAX_ROUNDS], heap_gm[MAX_ROUNDS], heap_lt[MAX_ROUNDS],
        py[MAX_ROUNDS];
    double lo = INFINITY, hi = -INFINITY;
    for (int r = 0; r < rounds; r++) {
        heap_fd[r] = forked(&c, L_DLOPEN_FD);
        heap_path[r] = forked(&c, L_DLOPEN_PATH);
        double mh = forked(&c, L_MODHOST);
        double gm = forked(&c, L_GMODULE);
        double lt = forked(&c, L_LTDL);
        heap_mh[r] = mh - heap_fd[r];
        heap_gm[r] = gm - heap_path[r];
        heap_lt[r] = lt - heap_path[r];
        py[r] = python_per_module();
        hook_fig f = measure_hook(&c);
        all[r] = f.all;
        half[r] = f.second_half;
        first[r] = f.first;
        blocks[r] = f.blocks;
        kept[r] = f.kept;
        asked[r] = f.asked;
        lo = fmin(lo, f.all);
        hi = fmax(hi, f.all);
    }
    size_t k = (size_t)rounds;
    double m_all = bench_median(all, k);

    char *unit = bench_fmt("bytes the loader keeps per loaded module, "
                           "excluding the mapping; %zu fixture modules "
                           "loaded", c.n);
    bench_table("Registry memory per loaded module", unit);
    free(unit);
    bench_row("modhost: all imports (allocator hook)", m_all, "B", true);
    bench_row("modhost: second half of the imports only",
              bench_median(half, k), "B", false);
    bench_row("modhost: after mh_invalidate_caches (registry only)",
              bench_median(kept, k), "B", false);
    bench_row("modhost: registry only, every manifest asked for",
              bench_median(asked, k), "B", false);
    bench_row("modhost: C heap growth minus plain dlopen's",
              bench_median(heap_mh, k), "B", false);
    bench_row("CPython 3: import of an extension module",
              bench_median(py, k), "B", false);
    bench_row("GModule: g_module_open minus plain dlopen's",
              bench_median(heap_gm, k), "B", false);
    bench_row("libltdl: lt_dlopenadvise minus plain dlopen's",
              bench_median(heap_lt, k), "B", false);
    bench_target("modhost registry bytes per loaded module", m_all, 256,
                 false);
    bench_note("modhost: bytes its host holds (allocator hook, "
               "malloc_usable_size; the intern arena's newest chunk at "
               "what its records use, not the 64 KiB the host took for it "
               "when it was made) after importing all %zu modules minus "
               "before the first import, ÷ %zu: the module entry, interned "
               "name and origin, finder caches, and one-time setup (the "
               "first import alone: %.0f B); %.1f blocks per "
               "module; %d rounds, %.1f to %.1f B.  The second-half row "
               "counts imports %zu to %zu only: one more module once the "
               "one-time setup is done and most directory listings are "
               "cached.  A manifest from an ELF note (every fixture has "
               "one) is not kept by a loaded module but parsed again when "
               "first asked for (mh_module_manifest); the \"every manifest "
               "asked for\" row is the registry once all 1,000 were.",
               c.n, c.n, bench_median(first, k), bench_median(blocks, k),
               rounds, lo, hi, c.n / 2 + 1, c.n);
    bench_note("Excluded, for every row: the mapping of the object and "
               "ld.so's own records (link_map, scopes), which it keeps "
               "in the C heap -- %.0f B per plain dlopen() of a fixture "
               "here, outside modhost's allocator hook.  The \"minus plain "
               "dlopen's\" rows are C heap growth (mallinfo2, chunk "
               "headers included) over the same loads in a fork()ed "
               "child, minus that of plain dlopen()s of the same files "
               "(by /proc/self/fd for modhost, which loads that way; by "
               "path for the others).  GModule and libltdl keep handles "
               "only, with no registry by name.  CPython: tracemalloc, "
               "requested sizes, the packages imported beforehand.",
               bench_median(heap_path, k));
    bench_table_end();
}

const bench_area bench_area_memory = {"memory", "Registry memory", run,
                                      NULL};
