/* bench/http.c -- (not written yet) */
#include "bench.h"

static void run(void)
{
    bench_table("http", "not measured yet");
    bench_table_end();
}

const bench_area bench_area_http = {"http", "http", run, NULL};
