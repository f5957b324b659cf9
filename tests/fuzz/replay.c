/*
 * tests/fuzz/replay.c -- run a fuzz target over saved inputs, without
 * libFuzzer: the main() of the replay builds that `make test` runs.
 *
 *   fuzz-NAME PATH...
 *
 * Each PATH is a file (run once) or a directory (every regular file in it,
 * in name order; subdirectories and dot files are skipped).  The empty
 * input runs first, as libFuzzer runs it.  Each input is read into a
 * buffer of exactly its size, so a read one byte past the end is an ASan
 * report here as under libFuzzer.  Exit status 0 when every input ran;
 * 2 for a usage or I/O error.  A finding aborts (sanitizer report, or
 * FZ_CHECK), naming the input on stderr first.  An input that runs longer
 * than MH_FUZZ_TIMEOUT seconds (default 10, libFuzzer's -timeout in
 * scripts/fuzz) is a finding too: a hang, reported and aborted.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char *current;     /* the input running, for the alarm */
static unsigned timeout_s = 10;

static void say(const char *s)
{
    if (write(2, s, strlen(s)) < 0)
        return; /* nothing better to do in a signal handler */
}

static void on_alarm(int sig)
{
    (void)sig;
    say("replay: timeout: an input ran longer than MH_FUZZ_TIMEOUT "
        "seconds: ");
    say(current);
    say("\n");
    abort();
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        fclose(f);
        return -1;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        fprintf(stderr, "replay: %s: cannot read\n", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
    /* A copy of exactly n bytes, so ASan sees any overread. */
    uint8_t *exact = n ? malloc(n) : NULL;
    if (n && !exact) {
        free(buf);
        return -1;
    }
    if (n)
        memcpy(exact, buf, n);
    free(buf);
    current = path;
    alarm(timeout_s);
    LLVMFuzzerTestOneInput(exact, n);
    alarm(0);
    free(exact);
    return 0;
}

static int only_files(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

static long run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path) == 0 ? 1 : -1;
    struct dirent **list;
    int n = scandir(path, &list, only_files, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    long ran = 0;
    for (int i = 0; i < n; i++) {
        char file[4096];
        snprintf(file, sizeof file, "%s/%s", path, list[i]->d_name);
        struct stat fs;
        if (ran >= 0 && stat(file, &fs) == 0 && S_ISREG(fs.st_mode))
            ran = run_file(file) == 0 ? ran + 1 : -1;
        free(list[i]);
    }
    free(list);
    return ran;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    const char *t = getenv("MH_FUZZ_TIMEOUT");
    if (t && atoi(t) > 0)
        timeout_s = (unsigned)atoi(t);
    signal(SIGALRM, on_alarm);
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
    long total = 0;
    for (int i = 1; i < argc; i++) {
        long n = run_path(argv[i]);
        if (n < 0)
            return 2;
        fprintf(stderr, "replay: %ld inputs from %s\n", n, argv[i]);
        total += n;
    }
    if (total == 0) {
        fprintf(stderr, "replay: no inputs at all\n");
        return 2;
    }
    printf("replay: %ld inputs, no findings\n", total);
    return 0;
}
