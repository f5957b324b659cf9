/* bench/memory.c -- (not written yet) */
#include "bench.h"

static void run(void)
{
    bench_table("memory", "not measured yet");
    bench_table_end();
}

const bench_area bench_area_memory = {"memory", "memory", run, NULL};
