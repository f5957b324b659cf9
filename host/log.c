/*
 * host/log.c -- messages through the host's log hook.
 *
 * The default hook writes warnings and errors to stderr always, and info
 * and traces only when the host is verbose (-v, MODHOST_VERBOSE=1), in the
 * spirit of `python -v`.  Messages are formatted into a bounded stack
 * buffer: logging never allocates, so it works while reporting OOM.
 */
#include "host/internal.h"

#include <stdio.h>

static const char *level_name(mh_log_level level)
{
    switch (level) {
    case MH_LOG_ERROR: return "error";
    case MH_LOG_WARN: return "warning";
    case MH_LOG_INFO: return "info";
    default: return "trace";
    }
}

void mh_log_default(void *ud, mh_log_level level, const char *msg)
{
    const mh_host *h = ud;
    if (level > MH_LOG_WARN && !(h && h->verbose))
        return;
    /* One fprintf per line keeps lines from threads whole. */
    fprintf(stderr, "modhost: %s: %s\n", level_name(level), msg);
}

void mh_vlog(mh_host *h, mh_log_level level, const char *fmt, va_list ap)
{
    char line[1024];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) /* mark the cut */
        snprintf(line + sizeof line - 4, 4, "...");
    /* The hook gets one line: a multi-line message (a not-found list)
     * has its line breaks and indents folded into "; ".  That can make
     * it longer ("\n" -> "; "), so it goes into a buffer of its own. */
    char out[2 * sizeof line];
    size_t o = 0;
    for (size_t i = 0; line[i] && o + 2 < sizeof out; i++) {
        if (line[i] != '\n') {
            out[o++] = line[i];
            continue;
        }
        while (line[i + 1] == ' ')
            i++;
        if (o > 0 && out[o - 1] == ':')
            out[o++] = ' ';
        else if (line[i + 1]) {
            out[o++] = ';';
            out[o++] = ' ';
        }
    }
    out[o] = '\0';
    h->log(h->log_ud, level, out);
}

void mh_log(mh_host *h, mh_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mh_vlog(h, level, fmt, ap);
    va_end(ap);
}
