/* bench/intern.c -- (not written yet) */
#include "bench.h"

static void run(void)
{
    bench_table("intern", "not measured yet");
    bench_table_end();
}

const bench_area bench_area_intern = {"intern", "intern", run, NULL};
