/* bench/cold.c -- (not written yet) */
#include "bench.h"

static void run(void)
{
    bench_table("cold", "not measured yet");
    bench_table_end();
}

const bench_area bench_area_cold = {"cold", "cold", run, NULL};
