/*
 * loaders/probe_run.c -- running and supervising a probe's child process
 * (mh_prun_*), for loaders/probe.c.
 *
 * The child is started with posix_spawn, never a bare fork: the host
 * process may have many threads, and a forked copy of it could only call
 * async-signal-safe functions before exec (glibc's posix_spawn is a
 * vfork-like clone followed by exec at once).  Its descriptors:
 *   0, 1  /dev/null: a plugin's output must not mix into the host's;
 *   2     a pipe: the end of it is kept, for a sanitizer's report;
 *   3     a pipe: the status channel (MH_PROBE_STATUS_FD);
 *   4     the module's bytes (MH_PROBE_MODULE_FD), if any;
 * and nothing else (closefrom), whatever the application left open
 * without close-on-exec.  Every descriptor made here is close-on-exec, so
 * threads probing at once never hand a pipe to each other's children.
 * The signal mask is emptied and every signal set to its default, as an
 * ignored SIGCHLD or SIGSEGV would otherwise be inherited across exec.
 *
 * The child leads a process group of its own (POSIX_SPAWN_SETPGROUP).
 * Supervision is a poll loop over the two pipes, with waitid(WNOWAIT)
 * between polls, until the child exits or the time limit passes.  Then
 * its whole group is killed with SIGKILL -- before the child is reaped,
 * so its pid, and with it the group's id, cannot have been given to
 * another process -- and it is reaped.  So what a plugin's init forked
 * (a copy that hangs, a daemon) does not outlive its probe; a process
 * that left the group (setsid) does.  The end of the child is told by
 * waitid, not by the pipes' end of file: a grandchild the plugin started
 * may hold them open for ever.
 */
#include "host/internal.h"
#include "loaders/probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define POLL_SLICE_MS 50  /* longest wait between two waitpid checks */
#define FD_FLOOR 10       /* sources of dup2 live above the targets */

/* fd moved above FD_FLOOR, close-on-exec (the original is closed): so no
 * dup2 of the spawn can overwrite a source of a later one.  -1 on error. */
static int lift(int fd)
{
    if (fd < 0)
        return -1;
    int up = fcntl(fd, F_DUPFD_CLOEXEC, FD_FLOOR);
    close(fd);
    return up;
}

/* A pipe whose read end is non-blocking; both ends close-on-exec, the
 * write end lifted.  0, or -1 with both ends closed and *rd = *wr = -1
 * (the caller closes what it holds: never a number closed here, which
 * another thread may have been given meanwhile). */
static int make_pipe(int *rd, int *wr)
{
    int p[2];
    *rd = *wr = -1;
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    int w = lift(p[1]);
    if (w < 0 || fcntl(p[0], F_SETFL, O_NONBLOCK) != 0) {
        int e = errno;
        close(p[0]);
        if (w >= 0)
            close(w);
        errno = e;
        return -1;
    }
    *rd = p[0];
    *wr = w;
    return 0;
}

/* Read what is there from fd into the status buffer (the first bytes are
 * kept) or the stderr buffer (the last bytes are kept).  Returns false at
 * end of file or on an error other than "nothing yet". */
static bool drain(int fd, char *buf, size_t *len, size_t max, bool keep_tail)
{
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK;
        if (n == 0)
            return false;
        size_t k = (size_t)n;
        if (!keep_tail) {
            size_t room = max - *len;
            memcpy(buf + *len, chunk, k < room ? k : room);
            *len += k < room ? k : room;
        } else {
            if (k >= max) {
                memcpy(buf, chunk + (k - max), max);
                *len = max;
            } else {
                size_t drop = *len + k > max ? *len + k - max : 0;
                memmove(buf, buf + drop, *len - drop);
                memcpy(buf + *len - drop, chunk, k);
                *len = *len - drop + k;
            }
        }
        buf[*len] = '\0';
    }
}

static int spawn(const mh_prun *r, int err_w, int st_w, int mod_fd, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc != 0)
        return rc;
    rc = posix_spawnattr_init(&at);
    if (rc != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigemptyset(&none);
    sigfillset(&all);
    if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
                                                    O_RDONLY, 0);
    if (!rc) rc = posix_spawn_file_actions_addopen(&fa, 1, "/dev/null",
                                                    O_WRONLY, 0);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, err_w, 2);
    if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, st_w,
                                                    MH_PROBE_STATUS_FD);
    if (!rc && mod_fd >= 0)
        rc = posix_spawn_file_actions_adddup2(&fa, mod_fd,
                                              MH_PROBE_MODULE_FD);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 34)
    if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(
                      &fa, MH_PROBE_MODULE_FD + (mod_fd >= 0));
#endif
    if (!rc) rc = posix_spawnattr_setsigmask(&at, &none);
    if (!rc) rc = posix_spawnattr_setsigdefault(&at, &all);
    if (!rc) rc = posix_spawnattr_setpgroup(&at, 0); /* its own group */
    if (!rc) rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
                                                    POSIX_SPAWN_SETSIGDEF |
                                                    POSIX_SPAWN_SETPGROUP);
    if (!rc)
        rc = posix_spawn(pid, r->bin, &fa, &at, r->argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Wait for the child, reading its pipes, until it exits or its time is
 * up.  fds[0] is its stderr, fds[1] its status channel (-1 once at end
 * of file). */
static void supervise(mh_prun *r, pid_t pid, int fds[2], long start)
{
    char *bufs[2] = {r->err, r->status};
    size_t *lens[2] = {&r->err_len, &r->status_len};
    const size_t maxs[2] = {MH_PRUN_STDERR_MAX, MH_PRUN_STATUS_MAX};
    long idle = 1; /* sleep while both pipes are shut: 1, 2, 4 ... ms */
    for (;;) {
        siginfo_t si = {0};
        int w = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT);
        if (w == 0 && si.si_pid == pid)
            break; /* exited, not reaped yet: its group is still its own */
        if (w < 0 && errno != EINTR) {
            r->lost = true; /* ECHILD: reaped by someone else */
            break;
        }
        long left = r->timeout_ms - ((long)mh_mono_ms() - start);
        if (left <= 0) {
            r->timed_out = true;
            break;
        }
        struct pollfd p[2];
        nfds_t n = 0;
        for (int i = 0; i < 2; i++)
            if (fds[i] >= 0)
                p[n++] = (struct pollfd){.fd = fds[i], .events = POLLIN};
        long slice = n ? POLL_SLICE_MS : idle;
        if (!n && idle < POLL_SLICE_MS)
            idle *= 2;
        if (poll(p, n, (int)(left < slice ? left : slice)) <= 0)
            continue;
        for (int i = 0; i < 2; i++)
            if (fds[i] >= 0 &&
                !drain(fds[i], bufs[i], lens[i], maxs[i], i == 0)) {
                close(fds[i]);
                fds[i] = -1;
            }
    }
    /* The whole group (the child, dead or not, holds its id until it is
     * reaped), then the child.  Reaped already by another waitpid of this
     * process (an application's SIGCHLD handler with waitpid(-1), or
     * SIGCHLD ignored), the group is killed only while something still
     * holds a pipe's far end -- a copy the plugin forked, in the group,
     * whose id the kernel then gives to no other process. */
    bool held = false;
    for (int i = 0; r->lost && i < 2; i++) {
        struct pollfd q = {.fd = fds[i], .events = POLLIN};
        if (fds[i] >= 0 && poll(&q, 1, 0) >= 0 && !(q.revents & POLLHUP))
            held = true;
    }
    if (!r->lost || held)
        kill(-pid, SIGKILL);
    if (!r->lost) {
        kill(pid, SIGKILL); /* if it left its group itself */
        int w;
        while ((w = waitpid(pid, &r->wstatus, 0)) < 0 && errno == EINTR)
            ;
        if (w < 0) /* taken since waitid saw it exit */
            r->lost = true;
    }
    /* What it wrote last is in the pipes still (or was left there by a
     * grandchild that kept them open until it was killed: no more waiting
     * for it). */
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            drain(fds[i], bufs[i], lens[i], maxs[i], i == 0);
    r->elapsed_ms = (long)mh_mono_ms() - start;
}

mh_status mh_prun_run(mh_host *h, mh_prun *r, mh_error **err)
{
    r->timed_out = r->lost = false;
    r->wstatus = 0;
    r->elapsed_ms = 0;
    r->status_len = r->err_len = 0;
    r->status = mh_mem_alloc(h, MH_PRUN_STATUS_MAX + 1);
    r->err = mh_mem_alloc(h, MH_PRUN_STDERR_MAX + 1);
    if (!r->status || !r->err)
        return mh_err(h, err, MH_ENOMEM, "out of memory starting a probe");
    r->status[0] = r->err[0] = '\0';

    int err_r = -1, err_w = -1, st_r = -1, st_w = -1, mod_fd = -1;
    mh_status rc = MH_OK;
    if (make_pipe(&err_r, &err_w) != 0 || make_pipe(&st_r, &st_w) != 0 ||
        (r->module_fd >= 0 &&
         (mod_fd = fcntl(r->module_fd, F_DUPFD_CLOEXEC, FD_FLOOR)) < 0)) {
        rc = mh_err(h, err, mh_errno_status(errno, MH_EIO), "cannot start "
                    "a probe: no pipe or descriptor: %s",
                    mh_errno_text(errno));
        goto out;
    }
    pid_t pid = -1;
    long start = (long)mh_mono_ms();
    int e = spawn(r, err_w, st_w, mod_fd, &pid);
    if (e != 0) {
        rc = mh_err(h, err, MH_EIO, "cannot run the probe command %s: %s",
                    r->bin, strerror(e));
        goto out;
    }
    /* Only the child may hold the write ends now, or no end of file. */
    close(err_w);
    close(st_w);
    err_w = st_w = -1;
    r->pid = pid;
    int fds[2] = {err_r, st_r};
    supervise(r, pid, fds, start);
    err_r = fds[0];
    st_r = fds[1];
out:;
    const int opened[] = {err_r, err_w, st_r, st_w, mod_fd};
    for (size_t i = 0; i < MH_ARRAY_LEN(opened); i++)
        if (opened[i] >= 0)
            close(opened[i]);
    return rc;
}

void mh_prun_free(mh_host *h, mh_prun *r)
{
    mh_mem_free(h, r->status, MH_PRUN_STATUS_MAX + 1);
    mh_mem_free(h, r->err, MH_PRUN_STDERR_MAX + 1);
    r->status = r->err = NULL;
    r->status_len = r->err_len = 0;
}
