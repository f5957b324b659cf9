/* bench/lua.c -- (not written yet) */
#include "bench.h"

static void run(void)
{
    bench_table("lua", "not measured yet");
    bench_table_end();
}

const bench_area bench_area_lua = {"lua", "lua", run, NULL};
