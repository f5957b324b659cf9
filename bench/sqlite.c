/*
 * bench/sqlite.c -- import from a module database: the 1,000 fixture
 * plugins packed (mh_pack) into one SQLite Archive, imported cold.
 *
 * Variants, interleaved, one sample = all 1,000 modules imported by a
 * new host (made outside the timed region, freed after it, so every
 * sample is cold):
 *   sqlite      search path "sqlite:DB", DB packed by default (native code
 *               stored as is, its SHA-256 recorded), as every host after
 *               the first finds it: each module's copy in the blob cache,
 *               written by an earlier host and stamped by another since
 *               (cache/blobs.h, cache/stamp.c), mapped; no row read
 *   first import
 *               the same with an empty cache: each row read, hashed, kept
 *               as a blob, and the blob mapped
 *   no hashes   a copy of DB without its hashes (as `sqlite3 -A` or an
 *               older modhost writes one): each row read, checked as ELF
 *               and loaded from a sealed memfd (docs/formats.md)
 *   sqlite, compressed code
 *               DB packed with MH_PACK_COMPRESS_CODE, first import: each
 *               row is inflated too
 *   filesystem  search path tree/ (P = 1): the same plugins as files
 *   raw dlopen  dlopen(absolute path) of the files: the floor, for scale
 */
#include "bench.h"
#include "common.h"
#include "finders/sqlar.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct ctx {
    const char *const *names;
    size_t n;
    const char *db_entry;       /* "sqlite:/work/modules.db" */
    const char *dbz_entry;      /* the same, native code compressed */
    const char *nohash_entry;   /* a copy of the first without hashes */
    const char *warm;           /* a cache dir with every module's blob,
                                   stamped */
    const char *const *abs;     /* tree/pkgA/subB/mod_N.so */
} ctx;

/* One sample: all modules imported by a new host whose cache directory
 * is `warm` (kept), or a new one (removed after). */
static double import_all_us(const char *path, const char *warm,
                            const ctx *c)
{
    mh_host *h;
    if (warm) {
        mh_config cfg;
        bench_config(&cfg, path, warm, 0);
        h = bench_host_new(&cfg);
    } else {
        h = bench_host(path, 0, NULL, NULL);
    }
    char *gone = warm ? NULL : bench_cache_of(h);
    uint64_t t = bench_now_ns();
    bench_import_all(h, c->names, c->n); /* dies on a failure */
    uint64_t dt = bench_now_ns() - t;
    if (mh_host_module_count(h) < c->n)
        bench_die("sqlite: the host holds %zu modules, expected %zu",
                  mh_host_module_count(h), c->n);
    mh_host_free(h); /* unloads all: the next sample is cold again */
    bench_discard(gone);
    return (double)dt / 1000.0 / (double)c->n;
}

static double sample_sqlite(void *p)
{
    ctx *c = p;
    return import_all_us(c->db_entry, c->warm, c);
}

static double sample_first(void *p)
{
    ctx *c = p;
    return import_all_us(c->db_entry, NULL, c);
}

static double sample_nohash(void *p)
{
    ctx *c = p;
    return import_all_us(c->nohash_entry, NULL, c);
}

static double sample_sqlite_z(void *p)
{
    ctx *c = p;
    return import_all_us(c->dbz_entry, NULL, c);
}

static double sample_fs(void *p)
{
    ctx *c = p;
    return import_all_us(bench_path(1), NULL, c);
}

/* The warm cache, as a later process finds it: every blob kept by one
 * host, then hashed (and so stamped) by another, out of the unsure
 * window; checked by counting both. */
static char *warm_cache(const ctx *c)
{
    char *warm = bench_fmt("%s/sqlite-warm-cache", bench.work);
    bench_sh("rm -rf '%s'", warm);
    import_all_us(c->db_entry, warm, c);
    usleep(2100 * 1000); /* the unsure window, 2 s */
    import_all_us(c->db_entry, warm, c);
    char *blobs = bench_fmt("%s/blobs", warm);
    char *stamps = bench_fmt("%s/verified", warm);
    size_t nb = bench_count_files(blobs), ns = bench_count_files(stamps);
    if (nb < c->n || ns < c->n)
        bench_die("sqlite: %zu blobs in %s and %zu stamps in %s, expected "
                  "%zu of each", nb, blobs, ns, stamps, c->n);
    free(blobs);
    free(stamps);
    return warm;
}

static double sample_raw(void *p)
{
    ctx *c = p;
    return bench_dlopen_all_us(c->abs, c->n);
}

/* Pack the 1,000 plugins into work/NAME with flags; its size in MB, and
 * the "sqlite:" entry naming it in *entry (malloc'ed).  The database
 * holds them under the paths they have in tree/ (pkgA/subB/mod_N.so):
 * mh_pack stores relative inputs as given, so pack from inside tree/.
 * Only the plugins, not CPython's __init__.py and __pycache__ files
 * beside them.  One import, to fail early (with the message) if the
 * entry is not served as meant, and to check it really is the database. */
static double pack_db(const ctx *c, const char *name, unsigned flags,
                      char **entry)
{
    const char *tree = bench_path_dirs(1)[0];
    char *db = bench_fmt("%s/%s", bench.work, name);
    const char **inputs = calloc(c->n, sizeof *inputs);
    if (!inputs)
        bench_die("out of memory");
    for (size_t i = 0; i < c->n; i++)
        inputs[i] = c->abs[i] + strlen(tree) + 1;
    char *cwd = getcwd(NULL, 0);
    if (!cwd || chdir(tree) != 0)
        bench_die("sqlite: cannot change to %s: %s", tree, strerror(errno));
    size_t packed = 0;
    mh_error *err = NULL;
    mh_status rc = mh_pack_ex(db, inputs, c->n, flags, &packed, &err);
    if (chdir(cwd) != 0)
        bench_die("sqlite: cannot change back to %s: %s", cwd,
                  strerror(errno));
    if (rc != MH_OK)
        bench_die("sqlite: mh_pack %s: %s", db, mh_error_message(err));
    if (packed != c->n)
        bench_die("sqlite: packed %zu files, expected %zu", packed, c->n);
    free(cwd);
    free(inputs);
    struct stat st;
    if (stat(db, &st) != 0)
        bench_die("sqlite: %s was not written", db);
    *entry = bench_fmt("sqlite:%s", db);
    free(db);

    mh_host *h = bench_host(*entry, 0, NULL, NULL);
    mh_module *m;
    if (mh_import(h, c->names[0], &m, &err) != MH_OK)
        bench_die("sqlite: import %s from %s: %s", c->names[0], *entry,
                  mh_error_message(err));
    if (strcmp(mh_module_finder(m), "sqlite") != 0)
        bench_die("sqlite: %s came from finder '%s' (%s)", c->names[0],
                  mh_module_finder(m),
                  mh_module_origin(m) ? mh_module_origin(m) : "?");
    mh_host_free(h);
    return (double)st.st_size / 1e6;
}

static void run(void)
{
    ctx c;
    c.n = bench_names(&c.names);
    c.abs = bench_files();
    char *entry, *entry_z;
    double mb = pack_db(&c, "modules.db", 0, &entry);
    double mb_z = pack_db(&c, "modules-z.db", MH_PACK_COMPRESS_CODE,
                          &entry_z);
    c.db_entry = entry;
    c.dbz_entry = entry_z;
    char *nohash = bench_fmt("%s/modules-nohash.db", bench.work);
    if (bench_sh("cp '%s' '%s' && sqlite3 '%s' '" MH_SAR_SHA_DROP "'",
                 entry + 7, nohash, nohash) != 0)
        bench_die("sqlite: cannot make %s", nohash);
    char *nohash_entry = bench_fmt("sqlite:%s", nohash);
    c.nohash_entry = nohash_entry;
    char *warm = warm_cache(&c);
    c.warm = warm;

    bench_var v[] = {
        {"modhost, from one SQLite database (blob cache warm)",
         sample_sqlite, &c, 0},
        {"modhost, from the filesystem (P = 1)", sample_fs, &c, 0},
        {"raw dlopen, absolute path (floor)", sample_raw, &c, 0},
        {"modhost, SQLite packed with --compress-code, first import",
         sample_sqlite_z, &c, 0},
        {"modhost, SQLite, first import (empty cache)", sample_first, &c, 0},
        {"modhost, SQLite database without hashes (memfd)", sample_nohash,
         &c, 0},
    };
    size_t nv = sizeof v / sizeof v[0];
    bench_interleave(v, nv, bench.rounds);

    bench_table("SQLite import",
                "µs per module: 1,000 plugins imported cold by a new host, "
                "from one module database or from the same files in a "
                "directory; ratio to the filesystem import");
    /* The reference row first: ratios are to the row given as ref. */
    bench_row(v[1].name, v[1].median, "µs", true);
    bench_row(v[0].name, v[0].median, "µs", false);
    bench_row(v[4].name, v[4].median, "µs", false);
    bench_row(v[5].name, v[5].median, "µs", false);
    bench_row(v[3].name, v[3].median, "µs", false);
    bench_row(v[2].name, v[2].median, "µs", false);
    bench_target("SQLite import ÷ filesystem import",
                 v[0].median / v[1].median, 1.10, false);
    bench_note("The database is `mh_pack` of the %zu plugins of tree/ "
               "(%.1f MB: native code stored as is, the default, and its "
               "SHA-256 recorded), entry `sqlite:DB`. A host's first "
               "three finds read the module's row (all but its data) and "
               "recorded hash in one statement; at the fourth it reads "
               "the database's names and hashes once, and answers the "
               "rest from memory while the file is unchanged. Blob cache "
               "warm: as every host after the first finds it (the "
               "target's row): the module's copy in the blob cache, kept "
               "by an earlier host and stamped by another since, is "
               "mapped; no data is read. First import: an empty cache, so "
               "each row's data is read, hashed and kept as a copy (not "
               "fsynced), and the copy hashed again and mapped. Without "
               "hashes: the same database with its hash table dropped, as "
               "`sqlite3 -A` or an older modhost writes one: each row is "
               "read, checked (ELF) and loaded from a sealed memfd, which "
               "was every import before. The compressed row is the same "
               "plugins packed with `--compress-code` (%.1f MB), first "
               "import, each row inflated. The filesystem variant dlopens "
               "the files. Host creation and freeing are outside the timed "
               "region; opening the database (on the first find) is "
               "inside.",
               c.n, mb, mb_z);
    bench_table_end();

    free(entry);
    free(entry_z);
    free(nohash);
    free(nohash_entry);
    free(warm);
}

const bench_area bench_area_sqlite = {"sqlite", "SQLite import", run, NULL};
