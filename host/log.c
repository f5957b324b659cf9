/*
 * host/log.c -- messages through the host's log hook.
 *
 * The default hook writes warnings and errors to stderr always, and info
 * and traces only when the host is verbose (-v, MODHOST_VERBOSE=1), in the
 * spirit of `python -v`.  Messages are formatted into a bounded stack
 * buffer: logging never allocates, so it works while reporting OOM.
 */
#include "host/internal.h"
#include "host/path.h"

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
    /* Control characters other than newlines and tabs are shown as
     * \xNN: a message may quote what a server, a plugin or a manifest
     * chose, and that must not drive the terminal.  The line is made
     * first and written with one call (one write(2) on unbuffered
     * stderr), so lines from threads and processes stay whole.  mh_vlog
     * makes lines of at most 2 KiB; a longer one is cut. */
    char line[4 * 2048 + 32];
    int o0 = snprintf(line, sizeof line, "modhost: %s: ", level_name(level));
    size_t o = o0 > 0 ? (size_t)o0 : 0;
    o += mh_escape(line + o, sizeof line - o - 1, msg, SIZE_MAX, true, NULL);
    line[o++] = '\n';
    fwrite(line, 1, o, stderr); /* one write(2), however long */
}

/* The host whose log hook this thread is in (the innermost, when a hook
 * logs through another host), or NULL. */
static __thread const mh_host *tl_hook;

bool mh_in_log_hook(const mh_host *h)
{
    return h && tl_hook == h;
}

mh_status mh_entry_check(mh_host *h, const char *fn, unsigned what,
                         mh_error **err)
{
    if (atomic_load(&h->closing))
        return mh_err(h, err, MH_EINVAL, "%s: the host is being freed (a "
                      "plugin's fini may not call it)", fn);
    if (tl_hook == h)
        return mh_err(h, err, MH_EINVAL, "%s: called from the host's log "
                      "hook, which may run while the host holds its locks "
                      "(the call would wait for itself); call it after the "
                      "hook returns", fn);
    if ((what & MH_ENTRY_PATH) && mh_path_walking(h))
        return mh_err(h, err, MH_EINVAL, "%s: called while this thread walks "
                      "the host's search path under its lock (from a "
                      "finder's callback, or the init of a module it "
                      "imports, in a walk that had no memory for a copy of "
                      "the path), which the change would wait for; make it "
                      "outside the walk", fn);
    return MH_OK;
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
    const mh_host *up = tl_hook;
    tl_hook = h;
    h->log(h->log_ud, level, out);
    tl_hook = up;
}

void mh_log(mh_host *h, mh_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mh_vlog(h, level, fmt, ap);
    va_end(ap);
}
