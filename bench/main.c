/*
 * bench/main.c -- `modhost-bench`: run the areas, print their tables, and
 * write them into docs/performance.md between its bench markers.
 *
 *   modhost-bench --build DIR --source DIR --fixtures DIR
 *                 [--rounds N] [--quick] [--md FILE] [--command TEXT]
 *                 [AREA...]
 *   modhost-bench --child ID ...   (internal: one measurement in a process
 *                                   of its own, under callgrind or not)
 */
#include "bench.h"
#include "report.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define BENCH_LIST(a) &bench_area_##a,
static const bench_area *const areas[] = {BENCH_AREAS(BENCH_LIST)};
#undef BENCH_LIST
#define N_AREAS (sizeof areas / sizeof areas[0])

static const char *MARK_BEGIN = "<!-- bench:begin";
static const char *MARK_END = "<!-- bench:end -->";

static char *shell_line(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return strdup("?");
    char line[512] = "";
    if (!fgets(line, sizeof line, p))
        strcpy(line, "?");
    pclose(p);
    line[strcspn(line, "\n")] = '\0';
    return strdup(line);
}

/* What the machine charges for the two things a load cannot do without,
 * measured at the start of the run (bench.syscall_ns, bench.page_us): a
 * system call, and a page of memory
 * the process has not touched before.  Virtual machines differ from bare
 * metal by tens of times in both (docs/performance.md), and every cold
 * figure below is made of them. */
static void machine_costs(void)
{
    enum { ROUNDS = 7, CALLS = 20000, PAGES = 1024 };
    double sc[ROUNDS], pg[ROUNDS];
    long page = sysconf(_SC_PAGESIZE);
    for (int r = 0; r < ROUNDS; r++) {
        uint64_t t = bench_now_ns();
        for (int i = 0; i < CALLS; i++)
            syscall(SYS_getppid); /* not cached by the C library */
        sc[r] = (double)(bench_now_ns() - t) / CALLS;
        size_t len = (size_t)PAGES * (size_t)page;
        char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            bench_die("mmap: %s", strerror(errno));
        /* Pages, not a huge page (where transparent huge pages are on
         * for every mapping): what a heap's growth faults in. */
        madvise(m, len, MADV_NOHUGEPAGE);
        t = bench_now_ns();
        for (size_t off = 0; off < len; off += (size_t)page)
            m[off] = 1;
        pg[r] = (double)(bench_now_ns() - t) / PAGES / 1e3;
        munmap(m, len);
    }
    bench.syscall_ns = bench_median(sc, ROUNDS);
    bench.page_us = bench_median(pg, ROUNDS);
    printf("machine: a system call costs %.0f ns, a fresh page %.2f µs\n",
           bench.syscall_ns, bench.page_us);
}

/* Machine, date, peers: what a reader needs to redo the run. */
static void machine(FILE *o, const char *command)
{
    struct utsname u;
    uname(&u);
    char *cpu = shell_line("sed -n 's/^model name[^:]*: //p' /proc/cpuinfo "
                           "| head -n 1");
    char *mem = shell_line("awk '/MemTotal/ {printf \"%.1f GiB\", "
                           "$2/1048576}' /proc/meminfo");
    char *cc = shell_line("cc --version | head -n 1");
    char *py = shell_line("/usr/bin/python3 --version 2>&1");
    char *glib = shell_line("pkg-config --modversion glib-2.0");
    char *ltdl = shell_line("dpkg-query -W -f='${Version}' libltdl7");
    char *lua = shell_line("pkg-config --modversion lua5.4");
    char *vg = shell_line("valgrind --version");
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(o, "- Run: %s, with `%s` from the source tree\n", date, command);
    fprintf(o, "- Machine: %s, %ld cores, %s RAM; %s %s %s\n", cpu,
            sysconf(_SC_NPROCESSORS_ONLN), mem, u.sysname, u.release,
            u.machine);
    fprintf(o, "- Costs measured at the start of the run: a system call "
            "(`getppid`) %.0f ns; a fresh page of memory (first write to "
            "new anonymous memory, fault included) %.2f µs\n",
            bench.syscall_ns, bench.page_us);
    fprintf(o, "- Compiler: %s (modhost built RelWithDebInfo, -O2)\n", cc);
    fprintf(o, "- Peers (Debian packages): GLib %s, libltdl %s, Lua %s, "
            "%s; %s for instruction counts\n", glib, ltdl, lua, py, vg);
    fprintf(o, "- Figures are medians of %d rounds; the variants of a table "
            "are interleaved round by round.\n", bench.rounds);
    free(cpu); free(mem); free(cc); free(py); free(glib); free(ltdl);
    free(lua); free(vg);
}

static void write_md(const char *path, const char *command)
{
    char *body = NULL;
    size_t len = 0;
    FILE *o = open_memstream(&body, &len);
    int met, missed, unmeasured;
    const char *summary = bench_report_summary(&met, &missed, &unmeasured);
    fprintf(o, "%s (written by `make bench`; edit outside the markers) "
            "-->\n\n## Last run\n\n", MARK_BEGIN);
    machine(o, command);
    fprintf(o, "\n### Targets: %d met, %d missed, %d not measured\n\n"
            "| area | target | measured | limit | |\n"
            "|---|---|---:|---:|---|\n%s", met, missed, unmeasured, summary);
    fprintf(o, "%s\n%s\n", bench_report_tables(), MARK_END);
    fclose(o);

    char *old = bench_read_file(path, NULL);
    char *b = old ? strstr(old, MARK_BEGIN) : NULL;
    char *e = b ? strstr(b, MARK_END) : NULL;
    char *tmp = bench_fmt("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        bench_die("cannot write %s: %s", tmp, strerror(errno));
    if (old && (strstr(old, MARK_BEGIN) || strstr(old, MARK_END)) &&
        !(b && e)) {
        /* Half a pair: writing the file anew would drop what was written
         * by hand around the markers. */
        fclose(f);
        unlink(tmp);
        bench_die("%s has a \"%s\" marker without its pair; mend it by "
                  "hand, then run again (the file was not changed)", path,
                  b ? MARK_END : MARK_BEGIN);
    }
    if (b && e) {
        fwrite(old, 1, (size_t)(b - old), f);
        fputs(body, f);
        fputs(e + strlen(MARK_END) + (e[strlen(MARK_END)] == '\n'), f);
    } else {
        fprintf(f, "# Performance\n\nMeasured by `make bench` "
                "(bench/).\n\n%s", body);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        bench_die("cannot write %s: %s", path, strerror(errno));
    printf("\nbench: tables written to %s\n", path);
    free(tmp);
    free(old);
    free(body);
}

/* The work directory this process made (none when --work named one), and
 * who made it: a fork()ed child that exits must not remove it. */
static char *own_work;
static pid_t own_pid;

static void remove_work(void)
{
    if (own_work && getpid() == own_pid) {
        bench_sh("rm -rf '%s'", own_work);
        free(own_work);
        own_work = NULL;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: modhost-bench --build DIR --source DIR "
            "--fixtures DIR [--rounds N] [--quick] [--md FILE] "
            "[--command TEXT] [AREA...]\nareas:");
    for (size_t i = 0; i < N_AREAS; i++)
        fprintf(stderr, " %s", areas[i]->name);
    fputc('\n', stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"build", required_argument, NULL, 'b'},
        {"source", required_argument, NULL, 's'},
        {"fixtures", required_argument, NULL, 'f'},
        {"work", required_argument, NULL, 'w'},
        {"rounds", required_argument, NULL, 'r'},
        {"quick", no_argument, NULL, 'q'},
        {"md", required_argument, NULL, 'm'},
        {"command", required_argument, NULL, 'c'},
        {"child", required_argument, NULL, 'C'},
        {NULL, 0, NULL, 0}};
    const char *md = NULL, *command = "make bench", *child = NULL;
    bench.rounds = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b': bench.build = optarg; break;
        case 's': bench.source = optarg; break;
        case 'f': bench.fixtures = optarg; break;
        case 'w': bench.work = optarg; break;
        case 'r': bench.rounds = atoi(optarg); break;
        case 'q': bench.quick = true; break;
        case 'm': md = optarg; break;
        case 'c': command = optarg; break;
        case 'C': child = optarg; break;
        default: usage();
        }
    }
    if (!bench.build || !bench.source || !bench.fixtures)
        usage();
    bench.self = realpath("/proc/self/exe", NULL);
    if (!bench.self) /* it runs itself: workers, callgrind */
        bench_die("/proc/self/exe: %s", strerror(errno));
    /* Absolute from here on: search path entries must be. */
    const char **dirs[] = {&bench.build, &bench.source, &bench.fixtures};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char *abs = realpath(*dirs[i], NULL);
        if (!abs)
            bench_die("%s: %s", *dirs[i], strerror(errno));
        *dirs[i] = abs;
    }
    if (bench.rounds <= 0)
        bench.rounds = bench.quick ? 3 : 11;

    if (child) { /* "AREA.WHAT": the area's child function */
        size_t n = strcspn(child, ".");
        for (size_t i = 0; i < N_AREAS; i++)
            if (areas[i]->child && strlen(areas[i]->name) == n &&
                strncmp(areas[i]->name, child, n) == 0)
                return areas[i]->child(child[n] ? child + n + 1 : "");
        bench_die("no child '%s'", child);
    }

    for (int k = optind; k < argc; k++) {
        bool known = false;
        for (size_t i = 0; i < N_AREAS; i++)
            known |= strcmp(argv[k], areas[i]->name) == 0;
        if (!known)
            bench_die("unknown area '%s'", argv[k]);
    }
    if (!bench.work) {
        char tmpl[] = "/tmp/modhost-bench.XXXXXX";
        if (!mkdtemp(tmpl))
            bench_die("mkdtemp: %s", strerror(errno));
        own_work = strdup(tmpl);
        own_pid = getpid();
        bench.work = own_work;
        atexit(remove_work); /* bench_die exits too */
    }
    machine_costs();
    for (size_t i = 0; i < N_AREAS; i++) {
        bool want = optind == argc;
        for (int k = optind; k < argc; k++)
            want |= strcmp(argv[k], areas[i]->name) == 0;
        if (!want)
            continue;
        areas[i]->run();
    }
    int met, missed, unmeasured;
    bench_report_summary(&met, &missed, &unmeasured);
    printf("\nbench: targets met %d, missed %d, not measured %d\n", met,
           missed, unmeasured);
    /* Only a full run speaks for the whole file: a smoke run or a few
     * areas leave the last full run's tables where they are. */
    if (md && (bench.quick || optind < argc))
        printf("bench: a %s run; %s left as it is\n",
               bench.quick ? "quick" : "partial", md);
    else if (md)
        write_md(md, command);
    return 0; /* remove_work, at exit */
}
