/* bench/sqlite.c -- (not written yet) */
#include "bench.h"

static void run(void)
{
    bench_table("sqlite", "not measured yet");
    bench_table_end();
}

const bench_area bench_area_sqlite = {"sqlite", "sqlite", run, NULL};
