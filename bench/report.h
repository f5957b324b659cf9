/* bench/report.h -- what main.c writes into docs/performance.md. */
#ifndef MODHOST_BENCH_REPORT_H
#define MODHOST_BENCH_REPORT_H

/* The markdown of every table so far. */
const char *bench_report_tables(void);
/* One markdown row per target so far, and the counts. */
const char *bench_report_summary(int *met, int *missed, int *unmeasured);

#endif
