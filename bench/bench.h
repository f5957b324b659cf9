/*
 * bench/bench.h -- the `make bench` program: modhost against the peers its
 * users would pick instead, one table per area, in one run.
 *
 * An area (bench/<area>.c) measures with the helpers below and reports
 * rows and target checks; main.c prints them and writes the markdown for
 * docs/performance.md.  Rules every area follows:
 *   - each figure is the median of bench.rounds samples;
 *   - the variants of one table are interleaved (round r runs every
 *     variant once, in an order shuffled anew each round), so drift hits
 *     them alike and none always follows the same neighbour;
 *   - where wall time is too noisy for the target (instruction ratios),
 *     the area re-runs itself under `valgrind --tool=callgrind` and counts
 *     only the measured region (bench_callgrind).
 */
#ifndef MODHOST_BENCH_H
#define MODHOST_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct bench_opts {
    const char *self;      /* this program, for re-running under callgrind */
    const char *build;     /* the build tree: bin/modhost, lib/ */
    const char *source;    /* the source tree */
    const char *fixtures;  /* bench/gen-fixtures output: tree/, decoy/,
                              names.txt */
    const char *work;      /* scratch directory of this run (removed) */
    int rounds;            /* samples per figure; the median is reported */
    bool quick;            /* fewer rounds, no callgrind: a smoke run */
    double syscall_ns;     /* what this machine charges for a system call */
    double page_us;        /* and for a page of new memory (main.c) */
} bench_opts;

extern bench_opts bench;

/* ---- time and statistics ---------------------------------------------- */

uint64_t bench_now_ns(void);
/* Median of v[0..n) (v is reordered). */
double bench_median(double *v, size_t n);

/* One variant of a table: sample() runs the measured work once and
 * returns its cost per operation (ns, or any unit, the same for all
 * variants of a table); NAN if it could not run (the error printed). */
typedef struct bench_var {
    const char *name;
    double (*sample)(void *ctx);
    void *ctx;
    double median;         /* out: median of the samples */
} bench_var;

/* Run every variant `rounds` times, interleaved, and set their medians. */
void bench_interleave(bench_var *v, size_t n, int rounds);

/* ---- instruction counts ------------------------------------------------- */

/* Run `self --child ID` under callgrind and return the instructions the
 * child counted between bench_cg_start() and bench_cg_stop(), divided by
 * ops; NAN if valgrind is missing or the child failed. */
double bench_callgrind(const char *id, double ops);
/* In a child: count from here... */
void bench_cg_start(void);
/* ...to here. */
void bench_cg_stop(void);
/* True when running under valgrind. */
bool bench_under_valgrind(void);

/* ---- reporting ------------------------------------------------------------ */

/* Start a table: title, then a line saying what one figure is. */
void bench_table(const char *title, const char *unit_note);
/* A row: variant, its figure (with unit), and the figure divided by the
 * table's reference (the first row given with ref = true). */
void bench_row(const char *variant, double value, const char *unit, bool ref);
/* A target: what is compared, the measured value and the limit; passes
 * when value <= limit (or >= limit with at_least).  Counted in the
 * summary. */
void bench_target(const char *what, double value, double limit,
                  bool at_least);
/* Free text under the table (markdown allowed). */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_table_end(void);

/* ---- helpers ---------------------------------------------------------------- */

/* printf into a new string (exits on failure). */
char *bench_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The fixture module names (names.txt), loaded once. */
size_t bench_names(const char *const **names);
/* The search path of P entries: P-1 decoys, then tree/ (';'-separated),
 * and the same as an array of directories (owned by bench).  Decoys are
 * decoy/dNN (entries with packages of their own: the typical path); the
 * _shared forms use decoy-shared/dNN (every entry holds the same package
 * directories as tree/: the worst case). */
const char *bench_path(int p);
const char *const *bench_path_dirs(int p);
const char *bench_path_shared(int p);
const char *const *bench_path_dirs_shared(int p);
/* A whole file in memory (NUL-terminated; *len without the NUL, len may
 * be NULL), or NULL with errno if it cannot be opened. */
char *bench_read_file(const char *path, size_t *len);
/* Run a shell command; returns its exit status. */
int bench_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The shell words that run this program anew as child ID (`--child ID`,
 * the area's child function) with this run's options; malloc'ed. */
char *bench_child_cmd(const char *id);
/* Die with a message (setup failures only; a figure that cannot be
 * measured is reported as NAN, not fatal). */
void bench_die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* ---- areas ------------------------------------------------------------------ */

typedef struct bench_area {
    const char *name;
    const char *title;
    void (*run)(void);                /* measure and report */
    int (*child)(const char *id);     /* --child ID (a callgrind count, or
                                         a fresh process's timing); NULL
                                         if none */
} bench_area;

#define BENCH_AREAS(X) \
    X(registry) X(intern) X(cold) X(sqlite) X(http) X(lua) X(discovery) \
    X(memory)

#define BENCH_DECLARE(a) extern const bench_area bench_area_##a;
BENCH_AREAS(BENCH_DECLARE)
#undef BENCH_DECLARE

#endif /* MODHOST_BENCH_H */
