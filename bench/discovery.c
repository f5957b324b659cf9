/* bench/discovery.c -- (not written yet) */
#include "bench.h"

static void run(void)
{
    bench_table("discovery", "not measured yet");
    bench_table_end();
}

const bench_area bench_area_discovery = {"discovery", "discovery", run, NULL};
