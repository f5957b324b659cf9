/*
 * bench/measure.c -- time, medians, interleaving, callgrind children, and
 * the tables (plain text on stdout, markdown for docs/performance.md).
 */
#include "bench.h"
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

bench_opts bench;

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) /* NAN samples (failures) drop out */
        if (!isnan(v[i]))
            v[k++] = v[i];
    if (k == 0)
        return NAN;
    qsort(v, k, sizeof *v, cmp_double);
    return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

void bench_interleave(bench_var *v, size_t n, int rounds)
{
    double *s = calloc((size_t)rounds * n, sizeof *s);
    if (!s)
        bench_die("out of memory");
    size_t *order = calloc(n ? n : 1, sizeof *order);
    if (!order)
        bench_die("out of memory");
    uint64_t seed = 0x9e3779b97f4a7c15ull; /* the same orders every run */
    for (int r = 0; r < rounds; r++) {
        /* A new order each round (Fisher-Yates): no variant always runs
         * first, or right after the same neighbour, whose leftovers
         * (caches, the allocator's state, the page cache) it would then
         * always inherit. */
        for (size_t k = 0; k < n; k++)
            order[k] = k;
        for (size_t k = n; k > 1; k--) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            size_t j = (size_t)(seed % k), t = order[k - 1];
            order[k - 1] = order[j];
            order[j] = t;
        }
        for (size_t k = 0; k < n; k++) {
            size_t i = order[k];
            s[i * (size_t)rounds + (size_t)r] = v[i].sample(v[i].ctx);
        }
    }
    free(order);
    for (size_t i = 0; i < n; i++)
        v[i].median = bench_median(s + i * (size_t)rounds, (size_t)rounds);
    free(s);
}

/* ---- callgrind ------------------------------------------------------------ */

bool bench_under_valgrind(void)
{
    return RUNNING_ON_VALGRIND != 0;
}

void bench_cg_start(void)
{
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
}

void bench_cg_stop(void)
{
    CALLGRIND_TOGGLE_COLLECT;
}

double bench_callgrind(const char *id, double ops)
{
    if (bench.quick)
        return NAN;
    char *out = bench_fmt("%s/callgrind.%s.out", bench.work, id);
    char *log = bench_fmt("%s/callgrind.%s.log", bench.work, id);
    char *child = bench_child_cmd(id);
    int rc = bench_sh("valgrind --tool=callgrind --collect-atstart=no "
                      "--callgrind-out-file='%s' %s >'%s' 2>&1", out, child,
                      log);
    free(child);
    double result = NAN;
    FILE *f = rc == 0 ? fopen(out, "r") : NULL;
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f)) {
            unsigned long long n;
            if (sscanf(line, "totals: %llu", &n) == 1 ||
                sscanf(line, "summary: %llu", &n) == 1)
                result = (double)n / ops;
        }
        fclose(f);
    }
    if (isnan(result))
        fprintf(stderr, "bench: callgrind child '%s' failed (exit %d); "
                "see %s\n", id, rc, log);
    free(out);
    free(log);
    return result;
}

/* ---- helpers -------------------------------------------------------------- */

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

char *bench_fmt(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        bench_die("out of memory");
    va_end(ap);
    return s;
}

char *bench_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    if (!m)
        bench_die("out of memory");
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, k, m);
    fclose(f);
    fclose(m);
    if (len)
        *len = n;
    return buf;
}

int bench_sh(const char *fmt, ...)
{
    va_list ap;
    char *cmd = NULL;
    va_start(ap, fmt);
    if (vasprintf(&cmd, fmt, ap) < 0)
        bench_die("out of memory");
    va_end(ap);
    fflush(NULL);
    int rc = system(cmd);
    free(cmd);
    if (rc == -1)
        return -1;
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

char *bench_child_cmd(const char *id)
{
    return bench_fmt("'%s' --child '%s' --build '%s' --source '%s' "
                     "--fixtures '%s' --work '%s' --rounds %d%s",
                     bench.self, id, bench.build, bench.source,
                     bench.fixtures, bench.work, bench.rounds,
                     bench.quick ? " --quick" : "");
}

static char **names_v;
static size_t names_n;

size_t bench_names(const char *const **names)
{
    if (!names_v) {
        char *p = bench_fmt("%s/names.txt", bench.fixtures);
        FILE *f = fopen(p, "r");
        if (!f)
            bench_die("cannot open %s: %s (run bench/gen-fixtures)", p,
                      strerror(errno));
        char line[256];
        size_t cap = 0;
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = '\0';
            if (!*line)
                continue;
            if (names_n == cap) {
                cap = cap ? cap * 2 : 1024;
                names_v = realloc(names_v, cap * sizeof *names_v);
                if (!names_v)
                    bench_die("out of memory");
            }
            names_v[names_n++] = strdup(line);
        }
        fclose(f);
        free(p);
        if (names_n == 0)
            bench_die("no names in %s/names.txt", bench.fixtures);
    }
    *names = (const char *const *)names_v;
    return names_n;
}

#define MAX_P 50

static char *paths[2][MAX_P + 1];
static char **dirs[2][MAX_P + 1];

static const char *const *path_dirs(int shared, int p)
{
    if (p < 1 || p > MAX_P)
        bench_die("search path of %d entries: 1..%d only", p, MAX_P);
    if (!dirs[shared][p]) {
        char **d = calloc((size_t)p + 1, sizeof(char *));
        if (!d)
            bench_die("out of memory");
        for (int i = 0; i < p - 1; i++)
            d[i] = bench_fmt("%s/%s/d%02d", bench.fixtures,
                             shared ? "decoy-shared" : "decoy", i);
        d[p - 1] = bench_fmt("%s/tree", bench.fixtures);
        dirs[shared][p] = d;
    }
    return (const char *const *)dirs[shared][p];
}

static const char *path_of(int shared, int p)
{
    const char *const *d = path_dirs(shared, p);
    if (!paths[shared][p]) {
        size_t len = 1;
        for (int i = 0; i < p; i++)
            len += strlen(d[i]) + 1;
        char *s = calloc(1, len);
        if (!s)
            bench_die("out of memory");
        for (int i = 0; i < p; i++) {
            if (i)
                strcat(s, ";");
            strcat(s, d[i]);
        }
        paths[shared][p] = s;
    }
    return paths[shared][p];
}

const char *const *bench_path_dirs(int p) { return path_dirs(0, p); }
const char *const *bench_path_dirs_shared(int p) { return path_dirs(1, p); }
const char *bench_path(int p) { return path_of(0, p); }
const char *bench_path_shared(int p) { return path_of(1, p); }

/* ---- tables ----------------------------------------------------------------- */

static FILE *md;            /* markdown of the whole run */
static char *md_text;
static size_t md_len;
static double table_ref;    /* the reference row's figure */
static bool in_targets;
static int n_met, n_missed, n_unmeasured;
static char *summary_text;
static size_t summary_len;
static FILE *summary;

static void md_open(void)
{
    if (!md) {
        md = open_memstream(&md_text, &md_len);
        summary = open_memstream(&summary_text, &summary_len);
        if (!md || !summary)
            bench_die("out of memory");
    }
}

static const char *current_title;

void bench_table(const char *title, const char *unit_note)
{
    md_open();
    current_title = title;
    table_ref = NAN;
    in_targets = false;
    printf("\n== %s ==\n   (%s)\n", title, unit_note);
    fprintf(md, "\n### %s\n\n%s\n\n| variant | figure | ratio |\n"
            "|---|---:|---:|\n", title, unit_note);
}

static void fmt_value(char *buf, size_t n, double v, const char *unit)
{
    if (isnan(v))
        snprintf(buf, n, "n/a");
    else if (v >= 100)
        snprintf(buf, n, "%.0f %s", v, unit);
    else if (v >= 10)
        snprintf(buf, n, "%.1f %s", v, unit);
    else
        snprintf(buf, n, "%.2f %s", v, unit);
}

void bench_row(const char *variant, double value, const char *unit, bool ref)
{
    if (ref)
        table_ref = value;
    char v[64], r[32];
    fmt_value(v, sizeof v, value, unit);
    if (isnan(value) || isnan(table_ref) || table_ref == 0)
        snprintf(r, sizeof r, "%s", ref ? "1" : "n/a");
    else
        snprintf(r, sizeof r, "%.2f", value / table_ref);
    printf("   %-46s %16s  x%s\n", variant, v, r);
    fprintf(md, "| %s | %s | %s |\n", variant, v, r);
}

void bench_target(const char *what, double value, double limit,
                  bool at_least)
{
    const char *verdict;
    if (isnan(value)) {
        verdict = "not measured";
        n_unmeasured++;
    } else if (at_least ? value >= limit : value <= limit) {
        verdict = "met";
        n_met++;
    } else {
        verdict = "**missed**";
        n_missed++;
    }
    if (!in_targets) {
        fprintf(md, "\n| target | measured | limit | |\n"
                "|---|---:|---:|---|\n");
        in_targets = true;
    }
    printf("   target: %-44s %8.3f  %s %-7.3f %s\n", what, value,
           at_least ? ">=" : "<=", limit, verdict[0] == '*' ? "MISSED"
                                                            : verdict);
    fprintf(md, "| %s | %.3f | %s %.3g | %s |\n", what, value,
            at_least ? "≥" : "≤", limit, verdict);
    fprintf(summary, "| %s | %s | %.3f | %s %.3g | %s |\n", current_title,
            what, value, at_least ? "≥" : "≤", limit, verdict);
}

void bench_note(const char *fmt, ...)
{
    md_open();
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        bench_die("out of memory");
    va_end(ap);
    printf("   note: %s\n", s);
    fprintf(md, "\n%s\n", s);
    free(s);
}

void bench_table_end(void)
{
    fflush(stdout);
}

const char *bench_report_tables(void)
{
    md_open();
    fflush(md);
    return md_text;
}

const char *bench_report_summary(int *met, int *missed, int *unmeasured)
{
    md_open();
    fflush(summary);
    *met = n_met;
    *missed = n_missed;
    *unmeasured = n_unmeasured;
    return summary_text;
}
