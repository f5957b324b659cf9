/*
 * cmd_fetch.c -- `modhost fetch [NAME...]`: download modules from the
 * HTTP(S) search path entries into the cache ahead of time (mh_fetch), so
 * the machine can import them later without the network.
 *
 * On a terminal, stderr shows one progress line, redrawn in place:
 *   [3/10] codecs.rot13  [#########...........] 52%  18 KiB/35 KiB
 * and nothing at all when stderr is a file or a pipe, so logs stay clean.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli.h"

#define BAR_WIDTH 20

typedef struct progress {
    int width;           /* terminal columns */
    size_t shown;        /* length of the line on screen (0: none) */
    char last[512];      /* that line, to skip redrawing the same text */
} progress;

/* n bytes as "512 B", "18 KiB", "3.4 MiB" or "1.2 GiB". */
static void human(char *buf, size_t size, uint64_t n)
{
    if (n < 1024)
        snprintf(buf, size, "%u B", (unsigned)n);
    else if (n < 1024 * 1024)
        snprintf(buf, size, "%u KiB", (unsigned)(n / 1024));
    else if (n < (uint64_t)1024 * 1024 * 1024)
        snprintf(buf, size, "%.1f MiB", (double)n / (1024.0 * 1024.0));
    else
        snprintf(buf, size, "%.1f GiB",
                 (double)n / (1024.0 * 1024.0 * 1024.0));
}

static int on_progress(void *ud, const char *module, size_t index,
                       size_t count, uint64_t now, uint64_t total)
{
    progress *p = ud;
    char line[sizeof p->last], got[32], all[32];
    int n;

    human(got, sizeof got, now);
    if (total > 0) {
        uint64_t done = now > total ? total : now;
        int pct = (int)(done * 100 / total);
        int fill = (int)(done * BAR_WIDTH / total);
        char bar[BAR_WIDTH + 1];
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(BAR_WIDTH - fill));
        bar[BAR_WIDTH] = '\0';
        human(all, sizeof all, total);
        n = snprintf(line, sizeof line, "[%zu/%zu] %s  [%s] %3d%%  %s/%s",
                     index + 1, count, module ? module : "", bar, pct, got,
                     all);
    } else {
        n = snprintf(line, sizeof line, "[%zu/%zu] %s  %s", index + 1, count,
                     module ? module : "", got);
    }
    if (n < 0)
        return 0;
    /* A line wider than the terminal would wrap, and '\r' would then
     * redraw only its last row. */
    size_t len = strlen(line);
    if (p->width > 1 && len > (size_t)p->width - 1) {
        len = (size_t)p->width - 1;
        line[len] = '\0';
    }
    if (strcmp(line, p->last) == 0)
        return 0;
    /* Spaces over the rest of a longer previous line. */
    fprintf(stderr, "\r%s%*s", line,
            p->shown > len ? (int)(p->shown - len) : 0, "");
    if (p->shown > len)
        fprintf(stderr, "\r%s", line);
    fflush(stderr);
    memcpy(p->last, line, len + 1);
    p->shown = len;
    return 0;
}

/* Does a search path entry of host's go to the HTTP finder? */
static bool has_http_entry(mh_host *host)
{
    for (size_t i = 0, n = mh_host_path_count(host); i < n; i++) {
        const char *finder = NULL;
        if (mh_host_path_entry(host, i, NULL, NULL, &finder) == MH_OK &&
            finder && strcmp(finder, "http") == 0)
            return true;
    }
    return false;
}

int cli_cmd_fetch(const cli_ctx *ctx, const cli_command *cmd, int argc,
                  char **argv)
{
    int code = cli_parse_no_opts(cmd, argc, argv);
    if (code >= 0)
        return code;

    const char *const *names = (const char *const *)(argv + optind);
    size_t n = (size_t)(argc - optind), fetched = 0;
    mh_host *host = NULL;
    mh_error *err = NULL;
    progress prog;
    int tty = isatty(STDERR_FILENO);

    memset(&prog, 0, sizeof prog);
    if (tty) {
        struct winsize ws;
        prog.width = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col
                         ? ws.ws_col : 80;
    }
    code = cli_host_new(ctx, &host);
    if (code != CLI_EXIT_OK)
        return code;
    mh_status st = mh_fetch(host, names, n, tty ? on_progress : NULL, &prog,
                            &fetched, &err);
    if (prog.shown)
        fputc('\n', stderr);
    if (st != MH_OK) {
        code = cli_fail(err);
        /* Status 3 says a NAME is missing; with no NAME, nothing was
         * asked for by name, so any failure is an ordinary one. */
        if (n == 0)
            code = CLI_EXIT_FAILURE;
    } else {
        /* The count is of the modules now in the cache: downloaded by
         * this run or kept from an earlier one. */
        printf("%zu module%s cached in %s\n", fetched,
               fetched == 1 ? "" : "s", cli_str(mh_host_cache_dir(host)));
        if (n == 0 && !has_http_entry(host))
            cli_errorf("note: no HTTP(S) entry on the search path (see "
                       "`modhost path`): nothing to fetch");
        code = cli_finish_output(CLI_EXIT_OK);
    }
    mh_host_free(host);
    return code;
}
