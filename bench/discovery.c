/*
 * bench/discovery.c -- discovery: the metadata of 1,000 plugins listed
 * with mh_discover, with the discovery index and without it, and what a
 * touched plugin costs.
 *
 * The search path is one entry, a copy of the fixtures' tree/ in the
 * run's work directory (a real copy, not hard links: touching a plugin
 * must not touch the shared fixtures); the touched variant has a second
 * copy, so its touches leave the others' plugins alone.  Every listing
 * runs in a fresh host, made outside the timed region; variants,
 * interleaved:
 *   without    MH_CONFIG_NO_INDEX: every plugin's ELF note read afresh
 *   warm       the index filled before, in the same cache dir
 *   touched    warm, but one plugin's mtime changed before the listing
 *   first      an empty cache dir: the index is built by the listing
 *   bare       the floors, in plain C: walk the tree and stat every file
 *              (what checking 1,000 identities costs), or open every
 *              plugin and read its note (what reading 1,000 costs)
 * What a listing reads is counted through the fault hook (mh_config.
 * fault is called before every open the host makes, with site "open"),
 * and for the touched check also from outside, by strace on a child run.
 */
#include "bench.h"
#include "common.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- hooks -------------------------------------------------------------- */

/* What a host did, from its fault and log hooks. */
typedef struct seen {
    long opens;             /* "open" sites: a module or sidecar file */
    long sites;             /* every site */
    int warnings;
    char last[512];
    /* verbose hosts only: the modules discovery says it read */
    char *reads;            /* one name a line */
    size_t reads_len;
    FILE *rf;
    char summary[256];      /* "discover: N modules, R read, ..." */
} seen;

static int fault_hook(void *ud, const char *site)
{
    seen *s = ud;
    s->sites++;
    if (strcmp(site, "open") == 0)
        s->opens++;
    return 0; /* never inject: count only */
}

static void log_hook(void *ud, mh_log_level level, const char *msg)
{
    seen *s = ud;
    static const char READING[] = "discover: reading the metadata of '";
    const char *p = strstr(msg, READING);
    if (p && s->rf) {
        p += sizeof READING - 1;
        fprintf(s->rf, "%.*s\n", (int)strcspn(p, "'"), p);
    }
    if (strstr(msg, "discover: ") && strstr(msg, " modules, "))
        snprintf(s->summary, sizeof s->summary, "%s", msg);
    if (level <= MH_LOG_WARN) {
        s->warnings++;
        snprintf(s->last, sizeof s->last, "%s", msg);
    }
}

/* A host searching `path`, caching in `cache` (bench_host makes a new
 * cache dir every call; a warm index needs the same one again). */
static mh_host *host_at(const char *path, const char *cache, unsigned flags,
                        seen *s)
{
    mh_config cfg;
    bench_config(&cfg, path, cache, flags);
    cfg.fault = fault_hook;
    cfg.fault_ud = s;
    cfg.log = log_hook;
    cfg.log_ud = s;
    return bench_host_new(&cfg);
}

/* ---- a listing ---------------------------------------------------------- */

/* What a listing reported. */
typedef struct tally {
    const char *touched;    /* module name watched */
    size_t modules, natives, ok;
    char version[64];       /* the watched module's version */
    int watched;
} tally;

static int count_one(void *ud, const mh_module_meta *m)
{
    tally *t = ud;
    t->modules++;
    if (m->kind != MH_KIND_NATIVE)
        return 0;
    t->natives++;
    const char *v = m->status == MH_OK ? mh_manifest_version(m->manifest)
                                       : NULL;
    if (v && strncmp(mh_manifest_source(m->manifest), "elf-note", 8) == 0)
        t->ok++;
    if (t->touched && strcmp(m->name, t->touched) == 0) {
        t->watched++;
        snprintf(t->version, sizeof t->version, "%s", v ? v : "(none)");
    }
    return 0;
}

typedef struct ctx {
    const char *tree;       /* the copy: the search path */
    const char *tree_t;     /* a second copy, for the touched variant:
                               touching a plugin of `tree` would make the
                               warm variant re-read it */
    const char *noindex;    /* cache dirs */
    const char *warm;
    const char *touch;
    size_t n;               /* plugins */
    const char *touched;    /* its name ... */
    const char *touched_file; /* ... and file */
    struct timespec base;   /* touched mtimes: base + k seconds */
    int touches;
    unsigned firsts;        /* "first" cache dirs made */
    long opens[4];          /* per modhost variant: min and max seen */
    long opens_max[4];
    size_t modules;         /* modules per listing */
} ctx;

enum { V_NOINDEX, V_WARM, V_TOUCHED, V_FIRST };

/* One timed mh_discover in a new host; ms.  Checks that every plugin was
 * listed with its manifest, and notes how many files the host opened. */
static double listing(ctx *c, int which, const char *cache, unsigned flags)
{
    seen s = {0};
    mh_host *h = host_at(which == V_TOUCHED ? c->tree_t : c->tree, cache,
                         flags, &s);
    tally t = {0};
    mh_error *err = NULL;
    uint64_t t0 = bench_now_ns();
    mh_status rc = mh_discover(h, count_one, &t, &err);
    uint64_t dt = bench_now_ns() - t0;
    if (rc != MH_OK)
        bench_die("discovery: mh_discover: %s", mh_error_message(err));
    mh_host_free(h);
    if (s.warnings)
        bench_die("discovery: the host warned: %s", s.last);
    if (t.natives != c->n || t.ok != c->n)
        bench_die("discovery: %zu plugins listed, %zu with their manifest; "
                  "%zu expected", t.natives, t.ok, c->n);
    c->modules = t.modules;
    if (s.opens < c->opens[which] || c->opens[which] < 0)
        c->opens[which] = s.opens;
    if (s.opens > c->opens_max[which])
        c->opens_max[which] = s.opens;
    return (double)dt / 1e6;
}

static double s_noindex(void *p)
{
    ctx *c = p;
    return listing(c, V_NOINDEX, c->noindex, MH_CONFIG_NO_INDEX);
}

static double s_warm(void *p)
{
    ctx *c = p;
    return listing(c, V_WARM, c->warm, 0);
}

/* Set the watched plugin's mtime to base + k s: a time it never had, and
 * well in the past (a file changed within the last 2 s is "unsure" and
 * read again anyway, docs/formats.md). */
static void touch(ctx *c, long k)
{
    struct timespec t[2] = {c->base, c->base};
    t[0].tv_sec += k;
    t[1].tv_sec += k;
    if (utimensat(AT_FDCWD, c->touched_file, t, 0) != 0)
        bench_die("utimensat %s: %s", c->touched_file, strerror(errno));
}

static double s_touched(void *p)
{
    ctx *c = p;
    touch(c, ++c->touches);
    return listing(c, V_TOUCHED, c->touch, 0);
}

static double s_first(void *p)
{
    ctx *c = p;
    char *cache = bench_fmt("%s/dx/first%u", bench.work, c->firsts++);
    double v = listing(c, V_FIRST, cache, 0);
    free(cache);
    return v;
}

/* ---- the floors ---------------------------------------------------------- */

/* The modhost manifest note of an ELF file: the JSON's length, or -1.
 * Reads what the host reads (ELF header, program headers, PT_NOTE
 * segments, with pread), checks less. */
static long read_note(int fd, char *json, size_t size)
{
    Elf64_Ehdr eh;
    if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh ||
        memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 64)
        return -1;
    Elf64_Phdr ph[64];
    size_t phn = eh.e_phnum;
    if (pread(fd, ph, phn * sizeof *ph, (off_t)eh.e_phoff) !=
        (ssize_t)(phn * sizeof *ph))
        return -1;
    for (size_t i = 0; i < phn; i++) {
        if (ph[i].p_type != PT_NOTE || ph[i].p_filesz > 65536)
            continue;
        unsigned char seg[65536];
        size_t len = ph[i].p_filesz;
        if (pread(fd, seg, len, (off_t)ph[i].p_offset) != (ssize_t)len)
            return -1;
        size_t align = ph[i].p_align == 8 ? 8 : 4;
        for (size_t o = 0; o + 12 <= len;) {
            Elf64_Nhdr nh;
            memcpy(&nh, seg + o, sizeof nh);
            size_t name = o + 12;
            size_t desc = name + ((nh.n_namesz + align - 1) & ~(align - 1));
            if (desc + nh.n_descsz > len)
                break;
            if (nh.n_type == 0x4d480001u && nh.n_namesz == 8 &&
                memcmp(seg + name, "modhost", 8) == 0 &&
                nh.n_descsz > 4 && nh.n_descsz - 4 <= size) {
                memcpy(json, seg + desc + 4, nh.n_descsz - 4);
                return (long)nh.n_descsz - 5;
            }
            o = desc + ((nh.n_descsz + align - 1) & ~(align - 1));
        }
    }
    return -1;
}

/* Walk dir; for every *.so: stat it (notes false) or read its note.
 * Returns the plugins handled. */
static size_t walk(const char *dir, bool notes)
{
    DIR *d = opendir(dir);
    if (!d)
        bench_die("discovery: opendir %s: %s", dir, strerror(errno));
    size_t n = 0;
    char path[4096];
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_type == DT_DIR) {
            n += walk(path, notes);
            continue;
        }
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 3, ".so") != 0) {
            struct stat st;
            if (!notes && stat(path, &st) != 0)
                bench_die("discovery: stat %s: %s", path, strerror(errno));
            continue;
        }
        if (!notes) {
            struct stat st;
            if (stat(path, &st) != 0)
                bench_die("discovery: stat %s: %s", path, strerror(errno));
            n++;
            continue;
        }
        char json[4096];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            bench_die("discovery: open %s: %s", path, strerror(errno));
        n += read_note(fd, json, sizeof json) > 0;
        close(fd);
    }
    closedir(d);
    return n;
}

static double bare(ctx *c, bool notes)
{
    uint64_t t = bench_now_ns();
    size_t n = walk(c->tree, notes);
    uint64_t dt = bench_now_ns() - t;
    if (n != c->n)
        bench_die("discovery: the bare walk found %zu plugins, not %zu", n,
                  c->n);
    return (double)dt / 1e6;
}

static double s_bare_stat(void *p)
{
    return bare(p, false);
}

static double s_bare_note(void *p)
{
    return bare(p, true);
}

/* ---- the touched plugin, counted from outside ---------------------------- */

/* Paths: <work>/dx/{tree,cache-check,...}. */
static char *dx(const char *what)
{
    return bench_fmt("%s/dx/%s", bench.work, what);
}

/* The file of module `name` in tree: a.b.c -> tree/a/b/c.so. */
static char *module_file(const char *tree, const char *name)
{
    char *f = bench_fmt("%s/%s.so", tree, name);
    for (char *p = f + strlen(tree) + 1; *p; p++)
        if (*p == '.' && strcmp(p, ".so") != 0)
            *p = '/';
    return f;
}

/* One listing of the copy with the check cache dir, verbose: prints what
 * it saw to stdout (run as a child under strace, or in process). */
static int child_touched(FILE *out)
{
    const char *const *names;
    bench_names(&names);
    char *tree = dx("tree-touched"), *cache = dx("cache-check");
    seen s = {0};
    s.rf = open_memstream(&s.reads, &s.reads_len);
    mh_host *h = host_at(tree, cache, MH_CONFIG_VERBOSE, &s);
    tally t = {.touched = names[0]};
    mh_error *err = NULL;
    if (mh_discover(h, count_one, &t, &err) != MH_OK)
        bench_die("discovery: mh_discover: %s", mh_error_message(err));
    mh_host_free(h);
    fclose(s.rf);
    fprintf(out, "plugins %zu\nok %zu\nwatched %d\nversion %s\nopens %ld\n"
            "warnings %d\nsummary %s\n", t.natives, t.ok, t.watched,
            t.version, s.opens, s.warnings, s.summary);
    /* The plugins discovery said it read (packages are read every time:
     * they have no file, nothing to read). */
    char *save = NULL;
    for (char *l = strtok_r(s.reads, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        char *f = module_file(tree, l);
        struct stat st;
        if (stat(f, &st) == 0 && S_ISREG(st.st_mode))
            fprintf(out, "read %s\n", l);
        free(f);
    }
    free(s.reads);
    free(tree);
    free(cache);
    return 0;
}

static int child(const char *id)
{
    if (strcmp(id, "touched") == 0)
        return child_touched(stdout);
    bench_die("discovery: no child '%s'", id);
}

/* What the check found. */
typedef struct check {
    long strace_reads;      /* distinct plugin files opened (strace), or -1 */
    bool strace_touched;    /* the touched one among them */
    long hook_opens;        /* the host's "open" sites */
    long traced_reads;      /* plugins the trace says were read */
    bool traced_touched;
    size_t plugins, ok;
    int watched;
    char version[64];
    char summary[256];
} check;

/* Count distinct *.so files under tree opened successfully in an strace
 * log of openat calls. */
static void parse_strace(const char *log, const char *tree, const char *want,
                         check *k)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return;
    char line[8192];
    char **seen_v = NULL;
    size_t n = 0;
    k->strace_reads = 0;
    while (fgets(line, sizeof line, f)) {
        char *q = strchr(line, '"');
        char *e = q ? strchr(q + 1, '"') : NULL;
        char *res = e ? strstr(e, ") = ") : NULL;
        if (!res || !strstr(line, "open") || res[4] == '-')
            continue;
        *e = '\0';
        const char *path = q + 1;
        size_t len = strlen(path);
        bool in_tree = strncmp(path, tree, strlen(tree)) == 0;
        /* relative names (openat on a directory fd) count too */
        if ((!in_tree && path[0] == '/') || len < 3 ||
            strcmp(path + len - 3, ".so") != 0)
            continue;
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup |= strcmp(seen_v[i], path) == 0;
        if (dup)
            continue;
        seen_v = realloc(seen_v, (n + 1) * sizeof *seen_v);
        seen_v[n++] = strdup(path);
        k->strace_reads++;
        const char *base = strrchr(want, '/');
        if (strcmp(path, want) == 0 ||
            (!in_tree && base && strcmp(path, base + 1) == 0))
            k->strace_touched = true;
    }
    fclose(f);
    for (size_t i = 0; i < n; i++)
        free(seen_v[i]);
    free(seen_v);
}

static void parse_child(FILE *f, const char *touched, check *k)
{
    char line[4096];
    k->traced_reads = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *v = strchr(line, ' ');
        if (!v)
            continue;
        *v++ = '\0';
        if (strcmp(line, "plugins") == 0)
            k->plugins = strtoul(v, NULL, 10);
        else if (strcmp(line, "ok") == 0)
            k->ok = strtoul(v, NULL, 10);
        else if (strcmp(line, "watched") == 0)
            k->watched = atoi(v);
        else if (strcmp(line, "version") == 0)
            snprintf(k->version, sizeof k->version, "%s", v);
        else if (strcmp(line, "opens") == 0)
            k->hook_opens = atol(v);
        else if (strcmp(line, "summary") == 0)
            snprintf(k->summary, sizeof k->summary, "%s", v);
        else if (strcmp(line, "warnings") == 0 && atoi(v) != 0)
            bench_die("discovery: the check host warned");
        else if (strcmp(line, "read") == 0) {
            k->traced_reads++;
            k->traced_touched |= strcmp(v, touched) == 0;
        }
    }
}

/* Rewrite the touched plugin in place so its manifest says version
 * 9.0.N (same size, same inode), and give it an mtime of its own: the
 * listing must show the new version -- proof that what it returns comes
 * from the file, not from the index. */
static char *rewrite_version(const ctx *c)
{
    int fd = open(c->touched_file, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        bench_die("discovery: open %s: %s", c->touched_file,
                  strerror(errno));
    char *buf = malloc((size_t)st.st_size);
    if (!buf || pread(fd, buf, (size_t)st.st_size, 0) != st.st_size)
        bench_die("discovery: read %s: %s", c->touched_file,
                  strerror(errno));
    static const char KEY[] = "\"version\": \"1.";
    char *hit = memmem(buf, (size_t)st.st_size, KEY, sizeof KEY - 1);
    if (!hit || memmem(hit + 1, (size_t)(buf + st.st_size - hit - 1), KEY,
                       sizeof KEY - 1))
        bench_die("discovery: %s: no single manifest version to change",
                  c->touched_file);
    off_t at = (off_t)(hit - buf) + (off_t)sizeof KEY - 3;
    if (pwrite(fd, "9", 1, at) != 1 || close(fd) != 0)
        bench_die("discovery: write %s: %s", c->touched_file,
                  strerror(errno));
    char *p = hit + sizeof KEY - 3;
    *p = '9';
    char *version = strndup(p, strcspn(p, "\""));
    free(buf);
    struct timespec t[2] = {c->base, c->base};
    t[0].tv_sec -= 100;
    t[1].tv_sec -= 100;
    if (utimensat(AT_FDCWD, c->touched_file, t, 0) != 0)
        bench_die("utimensat %s: %s", c->touched_file, strerror(errno));
    return version;
}

static void run_check(ctx *c, check *k, bool *by_strace, char **want_version)
{
    char *cache = dx("cache-check");
    /* Fill the index, then list again: nothing is read the second time. */
    listing(c, V_TOUCHED, cache, 0);
    seen s = {0};
    mh_host *h = host_at(c->tree_t, cache, 0, &s);
    tally t = {0};
    mh_error *err = NULL;
    if (mh_discover(h, count_one, &t, &err) != MH_OK)
        bench_die("discovery: mh_discover: %s", mh_error_message(err));
    mh_host_free(h);
    if (s.opens != 0)
        bench_die("discovery: a warm listing of unchanged plugins opened "
                  "%ld files", s.opens);

    *want_version = rewrite_version(c);
    memset(k, 0, sizeof *k);
    k->strace_reads = -1;
    char *log = dx("strace.log"), *out = dx("child.out");
    *by_strace = bench_sh("command -v strace >/dev/null 2>&1") == 0;
    if (*by_strace) {
        char *child = bench_child_cmd("discovery.touched");
        int rc = bench_sh("strace -f -qq -e trace=open,openat,openat2 "
                          "-o '%s' %s >'%s'", log, child, out);
        free(child);
        if (rc != 0)
            bench_die("discovery: the strace child failed (exit %d); see "
                      "%s", rc, out);
        FILE *f = fopen(out, "r");
        if (!f)
            bench_die("discovery: %s: %s", out, strerror(errno));
        parse_child(f, c->touched, k);
        fclose(f);
        parse_strace(log, c->tree_t, c->touched_file, k);
    } else {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        child_touched(f);
        fclose(f);
        f = fmemopen(text, len, "r");
        parse_child(f, c->touched, k);
        fclose(f);
        free(text);
    }
    free(log);
    free(out);
    free(cache);
}

/* ---- the area ------------------------------------------------------------ */

static void run(void)
{
    ctx c = {0};
    const char *const *names;
    c.n = bench_names(&names);
    char *base = dx("");
    char *tree = dx("tree"), *tree_t = dx("tree-touched");
    if (bench_sh("mkdir -p -m 0700 '%s' && cp -a '%s/tree' '%s' && "
                 "cp -a '%s/tree' '%s'", base, bench.fixtures, tree,
                 bench.fixtures, tree_t) != 0)
        bench_die("discovery: cannot copy %s/tree to %s", bench.fixtures,
                  base);
    c.tree = tree;
    c.tree_t = tree_t;
    char *noindex = dx("cache-noindex"), *warm = dx("cache-warm");
    char *touchc = dx("cache-touch");
    c.noindex = noindex;
    c.warm = warm;
    c.touch = touchc;
    c.touched = names[0];
    char *tf = module_file(tree_t, names[0]);
    c.touched_file = tf;
    /* A copy of its own: touching it must not touch the fixtures. */
    char *ftree = bench_fmt("%s/tree", bench.fixtures);
    char *orig = module_file(ftree, names[0]);
    {
        struct stat a, b;
        if (stat(tf, &a) != 0 || stat(orig, &b) != 0 || a.st_nlink != 1 ||
            (a.st_dev == b.st_dev && a.st_ino == b.st_ino))
            bench_die("discovery: %s is not a file of its own", tf);
    }
    clock_gettime(CLOCK_REALTIME, &c.base);
    c.base.tv_sec -= 3600;

    /* Fill the warm indexes (their first listing builds them). */
    listing(&c, V_FIRST, warm, 0);
    listing(&c, V_TOUCHED, touchc, 0);

    bench_var v[] = {
        {"modhost: without the index (MH_CONFIG_NO_INDEX)", s_noindex, &c,
         0},
        {"modhost: with the index (warm)", s_warm, &c, 0},
        {"modhost: warm index, one plugin touched", s_touched, &c, 0},
        {"modhost: first listing, empty cache (builds it)", s_first, &c, 0},
        {"bare C: walk + stat every file (floor, index)", s_bare_stat, &c,
         0},
        {"bare C: walk + read every ELF note (floor, none)", s_bare_note,
         &c, 0},
    };
    size_t n = sizeof v / sizeof v[0];
    for (int i = 0; i < 4; i++) { /* the fills above are not samples */
        c.opens[i] = -1;
        c.opens_max[i] = 0;
    }
    bench_interleave(v, n, bench.rounds);

    char *unit = bench_fmt("ms per mh_discover listing every module of a "
                           "search path of one entry: a copy of the "
                           "fixtures' tree/, %zu native plugins with ELF-"
                           "note manifests (%zu modules listed); a fresh "
                           "host per listing, made outside the timed "
                           "region", c.n, c.modules);
    bench_table("Discovery: metadata of 1,000 plugins, with and without "
                "the index", unit);
    free(unit);
    for (size_t i = 0; i < n; i++)
        bench_row(v[i].name, v[i].median, "ms", i == 0);
    bench_target("without the index ÷ with it", v[0].median / v[1].median,
                 10, true);
    bench_note("Files the host opened per listing (its fault hook's "
               "\"open\" sites, min–max over the samples; the hook only "
               "counts, at nanoseconds a call): without the "
               "index %ld–%ld, warm %ld–%ld, one touched %ld–%ld, first "
               "%ld–%ld. %.2f µs per plugin without the index, %.2f with "
               "it. No peer: neither CPython (importlib.metadata reads "
               "dist-info directories, which these plugins have not) nor "
               "Lua lists plugin metadata; the bare C rows are floors.",
               c.opens[V_NOINDEX], c.opens_max[V_NOINDEX], c.opens[V_WARM],
               c.opens_max[V_WARM], c.opens[V_TOUCHED],
               c.opens_max[V_TOUCHED], c.opens[V_FIRST],
               c.opens_max[V_FIRST], v[0].median * 1e3 / (double)c.n,
               v[1].median * 1e3 / (double)c.n);
    bench_table_end();

    /* The touched plugin: counted from outside. */
    check k;
    bool by_strace;
    char *version = NULL;
    run_check(&c, &k, &by_strace, &version);
    long reread = by_strace ? k.strace_reads : k.hook_opens;
    bool touched_ok = (by_strace ? k.strace_touched : k.traced_touched) &&
                      k.watched == 1 && strcmp(k.version, version) == 0 &&
                      k.plugins == c.n && k.ok == c.n;

    bench_table("Discovery: one plugin touched",
                "ms per listing, as above; then one listing after one "
                "plugin was rewritten, counted");
    bench_row("modhost: with the index (warm)", v[1].median, "ms", true);
    bench_row("modhost: warm index, one plugin touched", v[2].median, "ms",
              false);
    bench_target("plugins re-read after touching one", (double)reread, 1,
                 false);
    bench_target("the touched one re-read, new metadata listed (1 = yes)",
                 touched_ok ? 1 : 0, 1, true);
    bench_note("After a warm listing, `%s` was rewritten in place (its "
               "manifest's version changed to %s, same size and inode, an "
               "mtime of its own) and listed again with the warm index, "
               "%s. Plugin files opened: %ld%s; the host's \"open\" "
               "sites: %ld; its trace: \"%s\", naming %ld plugin%s%s. The "
               "listing gave %zu plugins, %zu with their manifest, `%s` "
               "at version %s.",
               c.touched, version,
               by_strace ? "in a child process under `strace -f -e "
                           "trace=open,openat,openat2`"
                         : "in process (no strace here: counted by the "
                           "fault hook)",
               reread,
               by_strace ? (k.strace_touched ? ", the touched one"
                                             : ", NOT the touched one")
                         : "",
               k.hook_opens, k.summary, k.traced_reads,
               k.traced_reads == 1 ? "" : "s",
               k.traced_touched ? " (the touched one)" : "", k.plugins,
               k.ok, c.touched, k.version);
    bench_note("Every sample of the \"touched\" row first set that "
               "plugin's mtime to a new value an hour in the past (not "
               "within the 2 s in which a row is stored as unsure and "
               "read again anyway).");
    bench_table_end();

    free(version);
    free(orig);
    free(ftree);
    free(tf);
    free(noindex);
    free(warm);
    free(touchc);
    free(tree);
    free(tree_t);
    free(base);
}

const bench_area bench_area_discovery = {"discovery", "Discovery", run,
                                         child};
