/*
 * loaders/probe.h -- probe mode (MH_CONFIG_PROBE): a new native plugin is
 * loaded and initialised in a child process first, so that one which
 * crashes or hangs there is refused with the reason instead of taking the
 * host process down.  The design is at the top of loaders/probe.c; the
 * child process is run by loaders/probe_run.c (mh_prun_*).
 */
#ifndef MH_LOADERS_PROBE_H
#define MH_LOADERS_PROBE_H

#include <stdbool.h>
#include <stddef.h>

#include "modhost.h"

struct mh_host;
struct mh_found;

/* The time a child gets to load, init and fini the module, unless
 * mh_config.probe_timeout_ms or MODHOST_PROBE_TIMEOUT_MS says otherwise (1
 * to MH_PROBE_TIMEOUT_MAX). */
#define MH_PROBE_TIMEOUT_MS 10000L
#define MH_PROBE_TIMEOUT_MAX 3600000L

/* The descriptors the child gets: its status channel and the module. */
#define MH_PROBE_STATUS_FD 3
#define MH_PROBE_MODULE_FD 4

/*
 * Check native module `name` (interned), found as f, in a child process
 * before the caller loads it here.  Skipped (MH_OK at once) when this
 * module, with this identity -- the file's device, inode, size, mtime and
 * ctime, or the SHA-256 of an image held in memory -- was probed ok
 * before (a file <cache dir>/probe/<sha256>.ok).  Otherwise the modhost
 * command is run as `modhost probe --in-process` on the same bytes
 * (f->fd, or the image) and:
 *   - it loaded, initialised and finalised the module: MH_OK, and the
 *     result is cached;
 *   - the module refused cleanly there (its init returned an error, a
 *     requirement was missing, ...): MH_OK, not cached -- loading it here
 *     gives the host's own answer, safely, and in the host's own setting;
 *   - it crashed, aborted, exited or hung: MH_EINIT, the message naming
 *     the module, its origin and the reason ("crashed in init: signal 11
 *     (Segmentation fault)", "aborted (signal 6)", "hung: no answer in
 *     10 s").  The caller records it in the discovery index, as for any
 *     failed init (host/import.c does);
 *   - the probe itself could not run (no modhost command, no pipe, a
 *     command of another version): MH_EIO, or MH_ENOMEM; not the module's
 *     fault, so not to be recorded.
 * The host process never runs any of the module's code here.
 */
mh_status mh_probe_native(struct mh_host *h, const char *name,
                          const struct mh_found *f, mh_error **err);

/* ---- the child process (loaders/probe_run.c) ---------------------------- */

/* Bytes kept of what the child writes: its status channel from the start,
 * its stderr from the end (where a sanitizer's summary is). */
#define MH_PRUN_STATUS_MAX 8192u
#define MH_PRUN_STDERR_MAX 8192u

typedef struct mh_prun {
    /* In: */
    const char *bin;          /* absolute path of the modhost command */
    char *const *argv;        /* its arguments, argv[0] first, NULL-ended */
    int module_fd;            /* becomes MH_PROBE_MODULE_FD in the child */
    long timeout_ms;
    /* Out: */
    bool timed_out;           /* killed (SIGKILL) when the time ran out */
    bool lost;                /* its exit status was taken by someone else
                                 (SIGCHLD ignored, a waitpid(-1) elsewhere) */
    pid_t pid;                /* the child's, which leads a process group
                                 of its own */
    int wstatus;              /* waitpid status, unless lost */
    long elapsed_ms;
    char *status;             /* what it wrote on MH_PROBE_STATUS_FD, NUL-
                                 terminated; host memory */
    size_t status_len;
    char *err;                /* the end of its stderr, NUL-terminated */
    size_t err_len;
} mh_prun;

/* Run the child described by r, supervise it until it exits or its time
 * runs out (then SIGKILL), and fill r's outputs.  The child leads a
 * process group, killed whole (SIGKILL) once it has exited or its time is
 * up: what a plugin's init forked goes with it (not what left the group,
 * with setsid or setpgid).  MH_OK whenever the
 * child ran; MH_EIO (the command could not be started) or MH_ENOMEM
 * otherwise.  Free the outputs with mh_prun_free, in every case. */
mh_status mh_prun_run(struct mh_host *h, mh_prun *r, mh_error **err);
void mh_prun_free(struct mh_host *h, mh_prun *r);

#endif /* MH_LOADERS_PROBE_H */
