/*
 * loaders/probe.c -- probe mode (MH_CONFIG_PROBE): a native plugin the
 * host has not seen succeed is loaded in a child process first, the way
 * GStreamer's gst-plugin-scanner looks at new plugins out of process.
 *
 * Why a child, and which
 * ----------------------
 * A plugin's init runs inside somebody else's long-lived process.  If it
 * dereferences NULL, aborts or never returns, no error path of the host
 * can help: the process is gone or stuck.  In probe mode, import hands
 * the found module to mh_probe_native just before the loader would open
 * it, and the module is first loaded, initialised and finalised by
 * `modhost probe --in-process` (host/cli/cmd_probe.c) -- an ordinary
 * host, through the public API, so the same import protocol runs there.
 * The command is exec'd, never a fork of this process: the host may have
 * threads, and a forked copy of a threaded process may not allocate or
 * take a lock.  It is found beside the library (<libdir>/../bin/modhost,
 * or <libdir>/../../bin/modhost for a multiarch libdir such as
 * lib/x86_64-linux-gnu; in the build tree build/lib -> build/bin), or
 * named by MODHOST_PROBE_BIN (absolute; ignored in isolated mode and in
 * privileged processes, as every MODHOST_* variable is).
 *
 * The same bytes
 * --------------
 * The child is given the module through an inherited descriptor
 * (MH_PROBE_MODULE_FD), which it reads as /proc/self/fd/4 and loads from
 * memory: for a file, the descriptor import opened and checked (f->fd), so
 * the bytes probed are the bytes that will be mapped here even if the
 * path is swapped meanwhile; for an image held in memory (a database
 * blob, a download), a memfd holding a copy of it (or, where memfds are
 * refused, an unlinked file in the private <cache>/probe directory).  No
 * file name a third party could race is involved either way.
 *
 * The child's setting
 * -------------------
 * It runs isolated (-E), without defaults, without the discovery index
 * or bytecode writes, with the host's cache directory, its file-safety
 * and memfd flags, and the host's local search path entries (directories
 * and module databases), so that an init which imports other modules
 * finds them.  HTTP and other URI entries are left out: they may carry
 * credentials and trust settings the child's command line cannot.
 *
 * The answer
 * ----------
 * The child reports on its status descriptor (MH_PROBE_STATUS_FD), one
 * line per milestone: "start" (its host is up), "init-ok" (the import
 * worked), "ok" (the host was freed: fini ran), or "refused STATUS" /
 * "unusable" followed by a message.  Then:
 *   - "ok": passed; cached.
 *   - "refused": the module failed cleanly (its init said no, a
 *     requirement is missing, its ABI is wrong ...).  That is safe to hear
 *     in this process, so the load goes on here and gives the host's own
 *     answer -- in the host's own setting, which may differ (an entry the
 *     child was not given).  Not cached.
 *   - a milestone missing and the child killed by a signal, exited, or
 *     out of time (mh_config.probe_timeout_ms, else
 *     MODHOST_PROBE_TIMEOUT_MS, else MH_PROBE_TIMEOUT_MS):
 *     the module's fault, MH_EINIT with the reason; import records it in
 *     the discovery index, so `modhost doctor` shows it.  A sanitizer
 *     build's child reports a SEGV and exits instead of dying of it: the
 *     report's SUMMARY line is read from the end of its stderr and counts
 *     as the signal it names.
 *   - no "start", or "unusable": the probe could not run (no command, a
 *     command of another version): MH_EIO, never blamed on the module.
 *
 * The cache
 * ---------
 * A pass is remembered as <cache>/probe/<sha256 of the key>.ok, written
 * atomically; the file holds the key itself, which is compared whole.
 * The key names the modhost version, the module and its identity: a
 * file's device, inode, size, mtime and ctime (any touch re-probes), an
 * image's SHA-256 (the same bytes in another database are known).  A file modified less than 2 s ago is
 * not cached (it could change again within one timestamp tick: the rule
 * of host/discover.c).  With MH_CONFIG_NO_INDEX, or a cache directory that
 * is not private, nothing is cached.  Failures are not kept here: the
 * discovery index has them (and `modhost doctor --clear` forgets them),
 * so a failing module is probed again at each import.
 */
#include "host/internal.h"
#include "host/path.h"
#include "host/secure.h"
#include "cache/atomic.h"
#include "loaders/probe.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CACHE_MAGIC "modhost-probe 1\n"
#define CACHE_SUBDIR "probe"
#define UNSURE_NS 2000000000LL   /* host/discover.c's window */
/* Flags of the host that the child's host shares. */
#define PASSED_FLAGS (MH_CONFIG_NO_MEMFD | MH_CONFIG_TRUST_LUAC |         \
                      MH_CONFIG_INSECURE_FILES)
#define STR_(x) #x
#define STR(x) STR_(x)
#define MODULE_PATH "/proc/self/fd/" STR(MH_PROBE_MODULE_FD)

/* ---- settings ----------------------------------------------------------- */

static long probe_timeout(mh_host *h)
{
    if (h->probe_timeout_ms)
        return (long)h->probe_timeout_ms; /* the application's, checked */
    const char *s = mh_host_getenv(h, "MODHOST_PROBE_TIMEOUT_MS");
    if (!s || !*s)
        return MH_PROBE_TIMEOUT_MS;
    char *end;
    errno = 0;
    long ms = strtol(s, &end, 10);
    if (errno || *end || ms < 1 || ms > MH_PROBE_TIMEOUT_MAX) {
        char shown[256];
        mh_log(h, MH_LOG_WARN, "MODHOST_PROBE_TIMEOUT_MS=%s is not a number "
               "of milliseconds from 1 to %ld; using %ld",
               mh_path_show_escaped(h, s, shown, sizeof shown),
               MH_PROBE_TIMEOUT_MAX, MH_PROBE_TIMEOUT_MS);
        return MH_PROBE_TIMEOUT_MS;
    }
    return ms;
}

/* "10", "0.5": seconds for messages. */
static void seconds(long ms, char *out, size_t size)
{
    if (ms % 1000 == 0)
        snprintf(out, size, "%ld", ms / 1000);
    else
        snprintf(out, size, "%g", (double)ms / 1000.0);
}

static mh_status probe_bin(mh_host *h, char *out, size_t size,
                           mh_error **err)
{
    const char *env = mh_host_getenv(h, "MODHOST_PROBE_BIN");
    if (env && *env) {
        if (env[0] != '/' || strlen(env) >= size)
            return mh_err(h, err, MH_EIO, "cannot probe: MODHOST_PROBE_BIN "
                          "must be an absolute path: %s", env);
        memcpy(out, env, strlen(env) + 1);
        return MH_OK;
    }
    Dl_info info;
    char lib[PATH_MAX];
    if (!dladdr((void *)&mh_probe_native, &info) || !info.dli_fname ||
        !realpath(info.dli_fname, lib))
        return mh_err(h, err, MH_EIO, "cannot probe: libmodhost cannot find "
                      "its own file; set MODHOST_PROBE_BIN");
    char *slash = strrchr(lib, '/');
    *slash = '\0';
    static const char *const rel[] = {"../bin/modhost", "../../bin/modhost"};
    for (size_t i = 0; i < MH_ARRAY_LEN(rel); i++) {
        char bin[PATH_MAX + 32], real[PATH_MAX];
        snprintf(bin, sizeof bin, "%s/%s", lib, rel[i]);
        if (access(bin, X_OK) == 0 && realpath(bin, real) &&
            strlen(real) < size) {
            memcpy(out, real, strlen(real) + 1);
            return MH_OK;
        }
    }
    return mh_err(h, err, MH_EIO, "cannot probe: no modhost command at "
                  "%s/../bin/modhost (beside libmodhost); set "
                  "MODHOST_PROBE_BIN", lib);
}

/* ---- identity and the cache --------------------------------------------- */

/* The cache key of the module: which modhost asks, the module's name
 * and its identity (not its origin: the same bytes are the same test).
 * known: the SHA-256 the bytes at fd were checked to have (a finder's
 * copy), or NULL. */
static void key_of(mh_buf *key, const char *name, int fd,
                   const mh_blob *image, const char *known, bool *unsure)
{
    mh_buf_printf(key, "%smodhost %s abi %d\nname %s\n", CACHE_MAGIC,
                  MH_VERSION_STRING, MH_PLUGIN_ABI_VERSION, name);
    if (known) {
        mh_buf_printf(key, "sha256 %s\n", known);
        return;
    }
    if (image) {
        char sha[65];
        if (mh_sha256_hex(image->data, image->len, 32, sha))
            mh_buf_printf(key, "sha256 %s\n", sha);
        else
            key->failed = true;
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        key->failed = true;
        return;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long age = (long long)(now.tv_sec - st.st_mtim.tv_sec) * 1000000000LL
                    + (now.tv_nsec - st.st_mtim.tv_nsec);
    *unsure = age < UNSURE_NS;
    mh_buf_printf(key, "file %ju:%ju:%lld:%lld.%09ld:%lld.%09ld\n",
                  (uintmax_t)st.st_dev, (uintmax_t)st.st_ino,
                  (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                  st.st_mtim.tv_nsec, (long long)st.st_ctim.tv_sec,
                  st.st_ctim.tv_nsec);
}

/* <cache>/probe/<sha256 of key>.ok into path, or false when nothing is
 * to be cached (no index wanted, the directory is not private). */
static bool cache_path(mh_host *h, const mh_buf *key, char *path,
                       size_t size)
{
    if ((h->flags & MH_CONFIG_NO_INDEX) || key->failed || !key->len)
        return false;
    char want[PATH_MAX], dir[PATH_MAX], sha[65];
    mh_error *e = NULL;
    if (snprintf(want, sizeof want, "%s/" CACHE_SUBDIR, h->cache_dir) >=
            (int)sizeof want ||
        mh_sec_private_dir(h, want, dir, sizeof dir, &e) != MH_OK) {
        MH_TRACE(h, "probe: results are not cached: %s",
                 e ? mh_error_message(e) : "cache path too long");
        mh_error_free(e);
        return false;
    }
    if (!mh_sha256_hex(key->data, key->len, 32, sha))
        return false;
    int n = snprintf(path, size, "%s/%s.ok", dir, sha);
    return n > 0 && (size_t)n < size;
}

static bool cache_has(mh_host *h, const char *path, const mh_buf *key)
{
    unsigned char *data;
    size_t len;
    if (mh_atw_read(h, path, key->len, &data, &len, NULL) != MH_OK)
        return false;
    bool same = len == key->len && memcmp(data, key->data, len) == 0;
    mh_mem_free(h, data, len ? len : 1);
    return same;
}

/* ---- the module's bytes for the child ----------------------------------- */

/* An unlinked file in the private <cache>/probe: where memfds are
 * refused. */
static int private_file(mh_host *h, mh_error **err)
{
    char want[PATH_MAX], dir[PATH_MAX], path[PATH_MAX + 40];
    unsigned char rnd[8];
    char tag[17];
    if (snprintf(want, sizeof want, "%s/" CACHE_SUBDIR, h->cache_dir) >=
        (int)sizeof want) {
        mh_err(h, err, MH_EPATH, "cache directory path too long: %s",
               h->cache_dir);
        return -1;
    }
    if (mh_sec_private_dir(h, want, dir, sizeof dir, err) != MH_OK)
        return -1;
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        mh_err(h, err, MH_EIO, "no random bytes for a file name: %s",
               strerror(errno));
        return -1;
    }
    mh_hex(rnd, sizeof rnd, tag);
    snprintf(path, sizeof path, "%s/image-%s", dir, tag);
    int fd = mh_fault(h, "open")
                 ? -1
                 : open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
                                  O_CLOEXEC, 0600);
    if (fd < 0) {
        mh_err(h, err, MH_EIO, "cannot create a file in %s: %s", dir,
               strerror(errno));
        return -1;
    }
    unlink(path); /* the descriptor is all the child needs */
    return fd;
}

/* *out: a descriptor holding a copy of image. */
static mh_status image_fd(mh_host *h, const mh_blob *image, int *out,
                          mh_error **err)
{
    *out = -1;
    mh_error *e = NULL;
    int fd = mh_fault(h, "memfd") ? -1
                                  : memfd_create("modhost-probe", MFD_CLOEXEC);
    if (fd < 0) {
        MH_TRACE(h, "probe: memfd_create refused (%s); private file instead",
                 strerror(errno));
        fd = private_file(h, &e);
        if (fd < 0) {
            mh_status rc = mh_err(h, err, mh_error_code(e), "cannot copy the "
                                  "module for its probe: %s",
                                  mh_error_message(e));
            mh_error_free(e);
            return rc;
        }
    }
    if (mh_fault(h, "write") ||
        mh_io_write_all(fd, image->data, image->len) != 0) {
        int en = errno;
        close(fd);
        return mh_err(h, err, MH_EIO, "cannot copy the module for its "
                      "probe: %s", strerror(en));
    }
    *out = fd;
    return MH_OK;
}

/* ---- the child's command line ------------------------------------------- */

/* May a search path entry be handed to the child?  Local ones only. */
static bool local_entry(const char *text)
{
    return text[0] == '/' || strncmp(text, "sqlite:", 7) == 0;
}

/* A NULL-terminated argv for the child (host memory, *n slots); the
 * strings are the caller's, interned, or static. */
static char **child_argv(mh_host *h, const char *bin, const char *name,
                         const char *origin, const char *flags, size_t *n)
{
    const char *head[] = {bin, "-E"};
    const char *tail[] = {
        "probe", "--in-process", "--status-fd", STR(MH_PROBE_STATUS_FD),
        "--name", name, "--origin", origin, "--cache-dir", h->cache_dir,
        "--config-flags", flags, "--host-version", MH_VERSION_STRING, "--",
        MODULE_PATH};
    mh_path *p = &h->path;
    pthread_rwlock_rdlock(&p->lock);
    size_t k = 0;
    for (size_t i = 0; i < p->n; i++)
        k += local_entry(p->v[i]->text);
    *n = MH_ARRAY_LEN(head) + 2 * k + MH_ARRAY_LEN(tail) + 1;
    char **v = mh_mem_calloc(h, *n, sizeof *v);
    if (v) {
        size_t j = 0;
        for (size_t i = 0; i < MH_ARRAY_LEN(head); i++)
            v[j++] = (char *)head[i];
        for (size_t i = 0; i < p->n; i++)
            if (local_entry(p->v[i]->text)) {
                v[j++] = "-p";
                v[j++] = (char *)p->v[i]->text; /* interned: outlives */
            }
        for (size_t i = 0; i < MH_ARRAY_LEN(tail); i++)
            v[j++] = (char *)tail[i];
    }
    pthread_rwlock_unlock(&p->lock);
    return v;
}

/* ---- the verdict -------------------------------------------------------- */

typedef struct verdict {
    bool started, init_ok, ok;
    const char *refused;   /* "refused STATUS" line, or NULL */
    const char *unusable;  /* its message, or NULL */
    const char *message;   /* of refused */
} verdict;

/* The line without its "PID " prefix if pid wrote it, else NULL (a copy
 * the plugin forked, which inherits the status descriptor: its "ok" is
 * not the child's). */
static const char *from_child(const char *line, pid_t pid)
{
    char *end;
    errno = 0;
    long got = strtol(line, &end, 10);
    return end != line && *end == ' ' && !errno && got == (long)pid
               ? end + 1 : NULL;
}

/* Read the child's status lines (s is modified): "PID WORD", and after
 * "refused" or "unusable" the message, to the end. */
static void read_status(char *s, pid_t pid, verdict *v)
{
    for (char *raw = s; *raw;) {
        char *nl = strchr(raw, '\n');
        if (nl)
            *nl = '\0';
        const char *rest = nl ? nl + 1 : "";
        const char *line = from_child(raw, pid);
        if (!line)
            ;
        else if (strcmp(line, "start") == 0)
            v->started = true;
        else if (strcmp(line, "init-ok") == 0)
            v->init_ok = true;
        else if (strcmp(line, "ok") == 0)
            v->ok = true;
        else if (strncmp(line, "refused", 7) == 0) {
            v->refused = line;
            v->message = rest;
            return;
        } else if (strcmp(line, "unusable") == 0) {
            v->unusable = rest;
            return;
        }
        if (!nl)
            return;
        raw = nl + 1;
    }
}

/* The last line of text that is not empty, its first 200 bytes, into
 * out, control characters as \xNN: a plugin chose them, and the message
 * may reach a terminal. */
static void last_line(const char *text, char *out, size_t size)
{
    const char *end = text + strlen(text);
    while (end > text && (end[-1] == '\n' || end[-1] == '\r' ||
                          end[-1] == ' '))
        end--;
    const char *start = end;
    while (start > text && start[-1] != '\n')
        start--;
    if (end - start > 200)
        end = start + 200;
    mh_escape(out, size, start, (size_t)(end - start), false, NULL);
}

static int signal_named(const char *word, size_t n)
{
    static const struct { const char *name; int sig; } sigs[] = {
        {"SEGV", SIGSEGV}, {"BUS", SIGBUS}, {"FPE", SIGFPE},
        {"ILL", SIGILL}, {"ABRT", SIGABRT}, {"stack-overflow", SIGSEGV},
    };
    for (size_t i = 0; i < MH_ARRAY_LEN(sigs); i++)
        if (strlen(sigs[i].name) == n && memcmp(sigs[i].name, word, n) == 0)
            return sigs[i].sig;
    return 0;
}

/* "crashed in init: signal 11 (Segmentation fault)", "aborted (signal
 * 6)", ... into out, with `in` "" or " in fini". */
static void signal_reason(int sig, const char *in, char *out, size_t size)
{
    const char *d = sigdescr_np(sig);
    if (sig == SIGABRT)
        snprintf(out, size, "aborted%s (signal %d)", in, sig);
    else
        snprintf(out, size, "crashed%s: signal %d (%s)",
                 in[0] ? in : " in init", sig, d ? d : "unknown signal");
}

/* A sanitizer's summary at the end of the child's stderr, as a reason:
 * "SUMMARY: AddressSanitizer: SEGV ..." is signal 11, as if the child had
 * died of it.  false when there is none (or only a leak report). */
static bool sanitizer_reason(const char *err, const char *in, char *out,
                             size_t size)
{
    const char *s = NULL;
    for (const char *p = err; (p = strstr(p, "SUMMARY: ")); p++)
        s = p;
    if (!s)
        return false;
    s += strlen("SUMMARY: ");
    const char *colon = strstr(s, "Sanitizer: ");
    const char *eol = strchr(s, '\n');
    if (!colon || (eol && colon > eol))
        return false;
    const char *word = colon + strlen("Sanitizer: ");
    size_t n = strcspn(word, " \n");
    if (strstr(word, " leaked") && (!eol || strstr(word, " leaked") < eol))
        return false; /* LeakSanitizer at exit: not what stopped it */
    int sig = signal_named(word, n);
    if (sig) {
        signal_reason(sig, in, out, size);
        return true;
    }
    size_t tool = (size_t)(colon - s) + strlen("Sanitizer");
    const char *ub = strstr(err, "runtime error: ");
    if (strncmp(s, "UndefinedBehaviorSanitizer", tool) == 0 && ub)
        snprintf(out, size, "crashed%s: %.*s", in[0] ? in : " in init",
                 (int)strcspn(ub, "\n"), ub);
    else
        snprintf(out, size, "crashed%s: %.*s reported %.*s",
                 in[0] ? in : " in init", (int)tool, s, (int)n, word);
    return true;
}

/* A child whose exit status another waitpid took. */
#define LOST "its exit status was taken by someone else: another waitpid " \
             "in this process (a SIGCHLD handler's waitpid(-1)?), or " \
             "SIGCHLD is ignored"

/* Why the child did not pass, when it is the module's fault; r and v say
 * what happened. */
static void crash_reason(const mh_prun *r, const verdict *v, char *out,
                         size_t size)
{
    const char *in = v->ok ? " at exit" : v->init_ok ? " in fini" : "";
    const char *when = in[0] ? in + 1 : "in init";
    char secs[32], tail[4 * 200 + 16], words[sizeof tail + 32] = "";
    if (sanitizer_reason(r->err, in, out, size))
        return;
    last_line(r->err, tail, sizeof tail);
    if (tail[0])
        snprintf(words, sizeof words, " (its last words: %s)", tail);
    if (r->timed_out) {
        seconds(r->timeout_ms, secs, sizeof secs);
        snprintf(out, size, "hung%s: no answer in %s s", in, secs);
    } else if (r->lost) {
        /* It began loading and ended without its verdict: how, nobody
         * here can tell. */
        snprintf(out, size, "ended %s without finishing; how cannot be "
                 "told, as %s%s", when, LOST, words);
    } else if (WIFSIGNALED(r->wstatus)) {
        signal_reason(WTERMSIG(r->wstatus), in, out, size);
    } else {
        /* Status 0 with a milestone missing: exit(0), or the milestone
         * could not be written -- the plugin closed the descriptor. */
        char zero[64] = "";
        if (WEXITSTATUS(r->wstatus) == 0)
            snprintf(zero, sizeof zero, ", or closed the probe's status "
                     "descriptor (%d)", MH_PROBE_STATUS_FD);
        snprintf(out, size, "exited %s with status %d%s%s", when,
                 WEXITSTATUS(r->wstatus), zero, words);
    }
}

/* How a child that never got going ended, for an MH_EIO message. */
static void start_failure(const mh_prun *r, char *out, size_t size)
{
    char tail[4 * 200 + 16], secs[32];
    last_line(r->err, tail, sizeof tail);
    if (r->timed_out) {
        seconds(r->timeout_ms, secs, sizeof secs);
        snprintf(out, size, "no answer in %s s", secs);
    } else if (r->lost)
        snprintf(out, size, "%s", LOST);
    else if (WIFSIGNALED(r->wstatus))
        snprintf(out, size, "killed by signal %d", WTERMSIG(r->wstatus));
    else
        snprintf(out, size, "exit status %d", WEXITSTATUS(r->wstatus));
    if (tail[0])
        snprintf(out + strlen(out), size - strlen(out), ": %s", tail);
}

/* ---- the probe ---------------------------------------------------------- */

/* Run the child on fd and judge.  MH_OK with *passed (false: a clean
 * refusal), or the error. */
static mh_status run_child(mh_host *h, const char *name, const char *origin,
                           int fd, bool *passed, mh_error **err)
{
    char bin[PATH_MAX], flags[32], secs[32], why[1024];
    mh_status rc = probe_bin(h, bin, sizeof bin, err);
    if (rc != MH_OK)
        return rc;
    snprintf(flags, sizeof flags, "0x%x",
             (h->flags & PASSED_FLAGS) | MH_CONFIG_NO_DEFAULT_PATH);
    size_t n;
    char **argv = child_argv(h, bin, name, origin, flags, &n);
    if (!argv)
        return mh_err(h, err, MH_ENOMEM, "out of memory probing '%s'", name);
    mh_prun r = {.bin = bin, .argv = argv, .module_fd = fd,
                 .timeout_ms = probe_timeout(h)};
    seconds(r.timeout_ms, secs, sizeof secs);
    MH_TRACE(h, "probe: '%s' (%s): checking it in a child process (%s, "
             "limit %s s)", name, origin, bin, secs);
    rc = mh_prun_run(h, &r, err);
    mh_mem_free(h, argv, n * sizeof *argv);
    if (rc != MH_OK) {
        mh_prun_free(h, &r);
        return rc;
    }
    verdict v = {0};
    read_status(r.status, r.pid, &v);
    *passed = false;
    if (v.ok && !WIFSIGNALED(r.wstatus)) {
        MH_TRACE(h, "probe: '%s' (%s): ok in %ld ms", name, origin,
                 r.elapsed_ms);
        *passed = true;
    } else if (v.refused) {
        MH_TRACE(h, "probe: '%s' (%s): it refused cleanly in the child (%s: "
                 "%s); loading it here gives the host's own answer", name,
                 origin, v.refused, v.message);
    } else if (v.unusable) {
        rc = mh_err(h, err, MH_EIO, "cannot probe module '%s' (%s): %s",
                    name, origin, v.unusable);
    } else if (!v.started) {
        start_failure(&r, why, sizeof why);
        rc = mh_err(h, err, MH_EIO, "cannot probe module '%s' (%s): the "
                    "probe command %s failed before loading it: %s", name,
                    origin, bin, why);
    } else {
        crash_reason(&r, &v, why, sizeof why);
        MH_TRACE(h, "probe: '%s' (%s): %s", name, origin, why);
        rc = mh_err(h, err, MH_EINIT, "module '%s' (%s) failed its probe in "
                    "a child process: %s; not loaded", name, origin, why);
    }
    mh_prun_free(h, &r);
    return rc;
}

mh_status mh_probe_native(mh_host *h, const char *name, const mh_found *f,
                          mh_error **err)
{
    mh_blob own = {0};
    const mh_blob *image = NULL;
    int fd = -1;
    bool own_fd = false, unsure = false, passed = false;
    mh_status rc = MH_OK;
    mh_buf key;
    mh_buf_init(&key, h, 0);

    /* The bytes the child will load -- the ones to be mapped here. */
    if (f->file) {
        fd = f->fd;
        if (fd < 0) {
            fd = open(f->file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
            own_fd = true;
        }
        if (fd < 0) {
            rc = mh_err(h, err, MH_EIO, "module '%s': cannot open %s for "
                        "its probe: %s", name, f->file, strerror(errno));
            goto out;
        }
    } else {
        image = f->image;
        if (!image) {
            rc = mh_fcx_read(h, f, f->key, &own, err);
            if (rc != MH_OK)
                goto out;
            image = &own;
        }
    }

    key_of(&key, name, fd, image, f->from_copy ? f->copy_sha256 : NULL,
           &unsure);
    char path[PATH_MAX];
    bool cacheable = cache_path(h, &key, path, sizeof path);
    if (cacheable && cache_has(h, path, &key)) {
        MH_TRACE(h, "probe: '%s' (%s): probed ok before (cached)", name,
                 f->origin);
        goto out;
    }
    if (image) {
        rc = image_fd(h, image, &fd, err);
        own_fd = true;
        if (rc != MH_OK)
            goto out;
    }
    rc = run_child(h, name, f->origin, fd, &passed, err);
    if (rc == MH_OK && passed && cacheable) {
        mh_error *e = NULL;
        if (unsure)
            MH_TRACE(h, "probe: '%s': not cached: %s changed less than 2 s "
                     "ago", name, f->origin);
        else if (mh_atw_write(h, path, key.data, key.len, &e) != MH_OK)
            MH_TRACE(h, "probe: '%s': result not cached: %s", name,
                     mh_error_message(e));
        mh_error_free(e);
    }
out:
    if (own_fd && fd >= 0)
        close(fd);
    mh_blob_free(h, &own);
    mh_buf_free(&key);
    return rc;
}
