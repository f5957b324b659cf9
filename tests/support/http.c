/*
 * http.c -- the loopback HTTP server of the HTTP finder's tests: start
 * tests/http/server.py on 127.0.0.1 and a free port, read its request
 * log, switch its behaviour, stop it; and walk a cache directory.
 *
 * A server must never outlive its case, however the case ends.  Passing
 * cases stop it with http_stop() (kill, waitpid); an exit() that skipped
 * that stops it from an atexit handler; a failing case ends in _exit()
 * and a crashing one in a signal, and for those the server is started
 * with PR_SET_PDEATHSIG, so the kernel kills it when the case's process
 * dies (server.py also exits when its parent changes, as a second guard).
 * The death signal follows the thread that forked, so start servers from
 * the case's main thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

#define MAX_SERVERS 8
#define MAX_ARGS 32
#define START_TIMEOUT_MS 15000

static http_server servers[MAX_SERVERS];
static size_t nservers;

static void stop_all(void)
{
    for (size_t i = 0; i < nservers; i++)
        http_stop(&servers[i]);
}

static const char *python_path(void)
{
    const char *p = getenv("MH_TEST_PYTHON");
    if (p && *p)
        return p;
    /* Debian's own python3 (the one the issue promises), not whatever a
     * PATH shim would pick. */
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3"
                                                 : "python3";
}

static const char *server_script(void)
{
    const char *src = getenv("MH_TEST_SOURCE_DIR");
    if (src == NULL || *src == '\0')
        src = MH_TEST_SOURCE_DIR;
    return str_fmt("%s/tests/http/server.py", src);
}

/* Split opts on spaces into argv[*argc...]. */
static void split_opts(const char *opts, const char **argv, int *argc)
{
    const char *p = opts;

    while (p && *p) {
        size_t len;
        while (*p == ' ')
            p++;
        len = strcspn(p, " ");
        if (len == 0)
            break;
        if (*argc >= MAX_ARGS - 1)
            FAIL("http_start: too many options in \"%s\"", opts);
        argv[(*argc)++] = str_fmt("%.*s", (int)len, p);
        p += len;
    }
}

/* The port the server printed, or fail the case with its stderr. */
static int read_port(http_server *s, int fd, const char *errlog)
{
    char buf[64];
    size_t len = 0;
    struct timespec t0, t;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        long waited;
        ssize_t n;

        clock_gettime(CLOCK_MONOTONIC, &t);
        waited = (t.tv_sec - t0.tv_sec) * 1000 +
                 (t.tv_nsec - t0.tv_nsec) / 1000000;
        if (waited >= START_TIMEOUT_MS)
            break;
        if (poll(&pfd, 1, (int)(START_TIMEOUT_MS - waited)) < 0) {
            if (errno == EINTR)
                continue;
            FAIL("http_start: poll: %s", strerror(errno));
        }
        n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (strchr(buf, '\n')) {
            int port = atoi(buf);
            if (port > 0 && port < 65536)
                return port;
            break;
        }
        if (len == sizeof buf - 1)
            break;
    }
    buf[len] = '\0';
    http_stop(s);
    {
        const char *e = file_read(errlog);
        FAIL("http_start: the server printed no port (\"%s\"); stderr:\n%s",
             buf, e ? e : "");
    }
}

http_server *http_start(const char *root, const char *opts)
{
    static int atexit_done;
    const char *argv[MAX_ARGS];
    int argc = 0, pfd[2], port;
    size_t n = nservers;
    http_server *s;
    const char *errlog;
    pid_t parent = getpid(), pid;

    if (nservers == MAX_SERVERS)
        FAIL("http_start: more than %d servers in one case", MAX_SERVERS);
    if (!atexit_done) {
        atexit(stop_all);
        atexit_done = 1;
    }
    s = &servers[nservers++];
    memset(s, 0, sizeof *s);
    s->root = str_fmt("%s", root);
    s->log = tmp_path(".http%zu.log", n);
    s->mode_file = tmp_path(".http%zu.mode", n);
    errlog = tmp_path(".http%zu.stderr", n);
    file_write(s->log, "");

    argv[argc++] = python_path();
    argv[argc++] = server_script();
    argv[argc++] = "--root";
    argv[argc++] = s->root;
    argv[argc++] = "--log";
    argv[argc++] = s->log;
    argv[argc++] = "--mode-file";
    argv[argc++] = s->mode_file;
    split_opts(opts, argv, &argc);
    argv[argc] = NULL;

    if (pipe2(pfd, O_CLOEXEC) < 0)
        FAIL("pipe2: %s", strerror(errno));
    fflush(NULL);
    pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec. */
        int efd;
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);
        efd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (dup2(pfd[1], 1) < 0 || efd < 0 || dup2(efd, 2) < 0)
            _exit(127);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    close(pfd[1]);
    port = read_port(s, pfd[0], errlog);
    close(pfd[0]);
    s->port = port;
    return s;
}

void http_stop(http_server *s)
{
    int st;

    if (s == NULL || s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {
        /* retry */
    }
    s->pid = 0;
}

const char *http_url(const http_server *s, const char *fmt, ...)
{
    va_list ap;
    char *rel = NULL;
    const char *url;

    va_start(ap, fmt);
    if (vasprintf(&rel, fmt, ap) < 0)
        FAIL("out of memory in test support");
    va_end(ap);
    url = str_fmt("http://127.0.0.1:%d/%s", s->port, rel);
    free(rel);
    return url;
}

const char *http_log_text(const http_server *s)
{
    const char *text = file_read(s->log);
    return text ? text : "";
}

size_t http_requests(const http_server *s, const char *needle)
{
    const char *p = http_log_text(s);
    size_t n = 0;

    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (strstr(str_fmt("%.*s", (int)len, p), needle))
            n++;
        p += len + (eol != NULL);
    }
    return n;
}

void http_set_mode(const http_server *s, const char *mode)
{
    file_write(s->mode_file, str_fmt("%s\n", mode));
}

/* ----------------------------------------------------------- tree walk */

static const char *walk_needle;
static size_t walk_count;
static const char *walk_names;

static int walk_one(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    if (flag != FTW_D && flag != FTW_DP &&
        strstr(path + ftw->base, walk_needle)) {
        walk_count++;
        walk_names = str_fmt("%s\n  %s", walk_names, path);
    }
    return 0;
}

size_t tree_count(const char *root, const char *needle, const char **names)
{
    walk_needle = needle ? needle : "";
    walk_count = 0;
    walk_names = "";
    if (file_exists(root) &&
        nftw(root, walk_one, 16, FTW_PHYS) < 0)
        FAIL("nftw(%s): %s", root, strerror(errno));
    if (names)
        *names = walk_names;
    return walk_count;
}

/* ------------------------------------------------ sites, hosts, checks */

void http_no_proxy_env(void)
{
    static const char *const vars[] = {
        "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
        "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY", "MODHOST_TRUST"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        env_unset(vars[i]);
}

void http_index_dir(const char *dir, const char *key)
{
    mh_error *err = NULL;
    size_t count = 0;
    mh_status st = mh_index_dir(dir, key, &count, &err);

    if (st != MH_OK) {
        const char *msg = str_fmt("%s", mh_error_message(err));
        mh_error_free(err);
        FAIL("mh_index_dir(%s): %s: %s", dir, mh_status_name(st), msg);
    }
}

const char *http_keygen(const char *name)
{
    const char *base = str_fmt("%s/%s", tmp_mkdir("keys"), name);
    mh_error *err = NULL;
    mh_status st = mh_keygen(base, &err);

    if (st != MH_OK) {
        const char *msg = str_fmt("%s", mh_error_message(err));
        mh_error_free(err);
        FAIL("mh_keygen(%s): %s: %s", base, mh_status_name(st), msg);
    }
    return base;
}

const char *http_site(const char *key)
{
    const char *www = tmp_mkdir("www");

    http_no_proxy_env();
    fixture_copy("counter", "www/counter.so");
    fixture_copy("answer7", "www/answer7.so");
    fixture_copy("counter", "www/pkg/mod.so");
    http_index_dir(www, key);
    return www;
}

mh_http_limits http_limits(void)
{
    mh_http_limits l;
    memset(&l, 0, sizeof l);
    l.size = sizeof l;
    return l;
}

mh_config http_cfg(const char *entry, log_capture *lc)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = entry;
    cfg.cache_dir = tmp_path("cache");
    cfg.log = log_capture_fn;
    cfg.log_ud = lc;
    return cfg;
}

mh_host *http_host(const char *entry, log_capture *lc)
{
    mh_config cfg = http_cfg(entry, lc);
    return host_new_cfg(&cfg);
}

mh_host *http_host_tracked(const char *entry, log_capture *lc,
                           alloc_tracker *at)
{
    mh_config cfg = http_cfg(entry, lc);
    cfg.alloc = alloc_tracker_fn;
    cfg.alloc_ud = at;
    return host_new_cfg(&cfg);
}

mh_status import_fails(mh_host *host, const char *name)
{
    mh_module *mod = (mh_module *)1;
    mh_status st = mh_import(host, name, &mod, ERR);

    if (st == MH_OK)
        FAIL("import '%s' worked; origin %s", name, mh_module_origin(mod));
    if (mod != NULL)
        FAIL("a failed import of '%s' left *out set", name);
    if (mh_host_module(host, name) != NULL)
        FAIL("a failed import of '%s' left the module registered", name);
    return st;
}

size_t http_blob_count(void)
{
    return tree_count(tmp_path("cache/blobs"), "", NULL);
}

void http_assert_cache_clean(void)
{
    const char *names;
    if (tree_count(tmp_path("cache"), "tmp", &names) != 0)
        FAIL("temporary files left in the cache:%s", names);
    if (tree_count(tmp_path("cache"), "part", &names) != 0)
        FAIL("partial files left in the cache:%s", names);
}

long long clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
