/*
 * bench/http.c -- import over HTTP: the 1,000 fixture plugins served by a
 * real HTTP server on loopback, imported cold (every module downloaded)
 * and from the cache a previous process left.
 *
 * The server is nginx, as a site would run it (docs/http.md names it
 * first), started here in the foreground on 127.0.0.1 and free ports,
 * serving a copy of tree/ in the run's work directory with the index.json
 * that mh_index_dir wrote (the fixtures stay untouched).  Where nginx is
 * not installed, the HTTP finder's test server (tests/http/server.py)
 * stands in.  Stock settings send no Cache-Control, so by default the
 * index is revalidated (ETag, 304); a second site sending max-age=3600
 * shows what a cached index that needs no revalidation costs.
 *
 * Variants, interleaved, one sample = all 1,000 modules imported by a new
 * host (made outside the timed region, freed after it):
 *   cold        an empty cache directory: index and every module fetched
 *   from cache  the same warm cache directory every time, as a second
 *               run of a program finds it; whatever the finder asks the
 *               server by default is in the figure.  Its blobs are
 *               stamped (cache/stamp.c): an earlier host hashed them
 *   hashed      a copy of it whose stamps' directory is not private, so
 *               every blob is hashed at every import, as a signed
 *               index's always are
 *   filesystem  tree/ (P = 1): the reference
 *   raw dlopen  the floor, for scale
 */
#include "bench.h"
#include "common.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_MS 15000

/* ---- the server ---------------------------------------------------------- */

/* One server process, serving the site on one or two ports: `plain`
 * sends no Cache-Control, `fresh` sends max-age=3600. */
typedef struct server {
    pid_t pid;
    const char *kind;           /* "nginx" or "server.py" */
    char *url[2];               /* base URLs: plain, fresh */
    char *log[2];               /* one line per request, with its status */
    char *errlog;
} server;

static server servers[2];       /* nginx: [0] only; server.py: one a port */

static void server_stop(server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    s->pid = 0;
}

/* bench_die() exits: never leave a server behind (and a crash of the
 * bench kills it too: PR_SET_PDEATHSIG below). */
static void stop_all(void)
{
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++)
        server_stop(&servers[i]);
}

/* fork + exec argv, stdout to *out_fd's pipe if out_fd, stderr to errlog. */
static pid_t spawn(const char *const *argv, const char *errlog, int *out_fd)
{
    int pfd[2] = {-1, -1};
    if (out_fd && pipe2(pfd, O_CLOEXEC) < 0)
        bench_die("http: pipe2: %s", strerror(errno));
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("http: fork: %s", strerror(errno));
    if (pid == 0) {
        /* Only async-signal-safe calls between fork and exec. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
            _exit(127);
        int efd = open(errlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                       0644);
        if (efd < 0 || dup2(efd, 2) < 0 || (out_fd && dup2(pfd[1], 1) < 0))
            _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (out_fd) {
        close(pfd[1]);
        *out_fd = pfd[0];
    }
    return pid;
}

/* A free loopback port (the kernel's choice; nginx cannot report one it
 * picked itself, so there is a short window another program could take
 * it: the start then fails loudly). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        bench_die("http: no free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static const char *find_nginx(void)
{
    static const char *const where[] = {"/usr/sbin/nginx",
                                        "/usr/local/sbin/nginx",
                                        "/usr/bin/nginx"};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++)
        if (access(where[i], X_OK) == 0)
            return where[i];
    return NULL;
}

/* nginx in the foreground, one process, its stock behaviour for static
 * files (ETag from mtime and size, Last-Modified, 304 answers, HTTP/1.1
 * keep-alive, TCP_NODELAY), with everything it writes under the run's
 * work directory. */
static void start_nginx(server *s, const char *nginx, const char *www)
{
    char *dir = bench_fmt("%s/nginx", bench.work);
    if (bench_sh("mkdir -p '%s/tmp'", dir) != 0)
        bench_die("http: cannot make %s", dir);
    int port[2] = {free_port(), free_port()};
    while (port[1] == port[0])
        port[1] = free_port();
    s->errlog = bench_fmt("%s/error.log", dir);
    char *conf = bench_fmt("%s/nginx.conf", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        bench_die("http: %s: %s", conf, strerror(errno));
    fprintf(f,
            "daemon off;\nmaster_process off;\nworker_processes 1;\n"
            "pid %s/nginx.pid;\nerror_log %s;\n"
            "events { worker_connections 64; }\n"
            "http {\n"
            "  default_type application/octet-stream;\n"
            "  log_format bench '$request_method $uri $status';\n"
            "  client_body_temp_path %s/tmp/body;\n"
            "  proxy_temp_path %s/tmp/proxy;\n"
            "  fastcgi_temp_path %s/tmp/fastcgi;\n"
            "  uwsgi_temp_path %s/tmp/uwsgi;\n"
            "  scgi_temp_path %s/tmp/scgi;\n",
            dir, s->errlog, dir, dir, dir, dir, dir);
    for (int k = 0; k < 2; k++) {
        s->log[k] = bench_fmt("%s/access%d.log", dir, k);
        s->url[k] = bench_fmt("http://127.0.0.1:%d/", port[k]);
        fprintf(f, "  server {\n    listen 127.0.0.1:%d;\n    root %s;\n"
                "    access_log %s bench;\n%s  }\n", port[k], www,
                s->log[k], k ? "    expires 3600s;\n" : "");
    }
    fputs("}\n", f);
    if (fclose(f) != 0)
        bench_die("http: %s: %s", conf, strerror(errno));
    const char *argv[] = {nginx, "-p", dir, "-c", conf, "-e", s->errlog,
                          NULL};
    s->pid = spawn(argv, s->errlog, NULL);
    s->kind = "nginx";
    uint64_t t0 = bench_now_ns();
    while (!(port_open(port[0]) && port_open(port[1]))) {
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            bench_die("http: nginx exited; see %s", s->errlog);
        }
        if (bench_now_ns() - t0 > START_TIMEOUT_MS * 1000000ull)
            bench_die("http: nginx did not listen; see %s", s->errlog);
        usleep(10000);
    }
    free(conf);
    free(dir);
}

/* Without nginx: the HTTP finder's test server, one a port. */
static void start_server_py(server *s, const char *www, int k)
{
    char *script = bench_fmt("%s/tests/http/server.py", bench.source);
    s->errlog = bench_fmt("%s/http%d.stderr", bench.work, k);
    s->log[0] = bench_fmt("%s/http%d.log", bench.work, k);
    const char *argv[] = {"/usr/bin/python3", script, "--root", www,
                          "--log", s->log[0], k ? "--max-age" : NULL,
                          "3600", NULL};
    int fd;
    s->pid = spawn(argv, s->errlog, &fd);
    s->kind = "server.py";
    /* The first line of its stdout is the port. */
    char buf[64];
    size_t len = 0;
    uint64_t t0 = bench_now_ns();
    for (;;) {
        int left = START_TIMEOUT_MS -
                   (int)((bench_now_ns() - t0) / 1000000u);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || (poll(&p, 1, left) < 0 && errno != EINTR))
            break;
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        if (strchr(buf, '\n') || len == sizeof buf - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    int port = atoi(buf);
    if (port <= 0 || port > 65535)
        bench_die("http: %s printed no port (\"%s\"); see %s", script, buf,
                  s->errlog);
    /* "/ok/" is server.py's mode for plain serving of the file. */
    s->url[0] = bench_fmt("http://127.0.0.1:%d/ok/", port);
    free(script);
}

/* Requests logged in `log` so far, and how many were answered 304. */
static size_t requests(const char *log, size_t *not_modified)
{
    FILE *f = fopen(log, "r");
    size_t n = 0;
    *not_modified = 0;
    if (!f)
        return 0;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        n++;
        *not_modified += strstr(line, " 304") != NULL;
    }
    fclose(f);
    return n;
}

/* ---- hosts --------------------------------------------------------------- */

/* A host with a given cache directory: bench_host() makes a fresh one
 * each call, and the point here is the same warm one. */
static mh_host *host_with_cache(const char *path, const char *cache)
{
    mh_config cfg;
    bench_config(&cfg, path, cache, 0);
    return bench_host_new(&cfg);
}

typedef struct ctx {
    const char *const *names;
    size_t n;
    const char *url;            /* base URL of the site */
    const char *url_fresh;      /* the same site, with max-age=3600 */
    char *warm;                 /* the warm cache directory */
    char *hashed;               /* a copy of it without usable stamps */
    const char *const *abs;     /* tree/pkgA/subB/mod_N.so */
} ctx;

/* Import everything with host h and free it: µs per module. */
static double timed_import(mh_host *h, const ctx *c)
{
    uint64_t t = bench_now_ns();
    bench_import_all(h, c->names, c->n); /* dies on a failure */
    uint64_t dt = bench_now_ns() - t;
    if (mh_host_module_count(h) < c->n)
        bench_die("http: the host holds %zu modules, expected %zu",
                  mh_host_module_count(h), c->n);
    mh_host_free(h);
    return (double)dt / 1000.0 / (double)c->n;
}

static double sample_cold(void *p)
{
    ctx *c = p;
    mh_host *h = bench_host(c->url, 0, NULL, NULL); /* a new, empty cache */
    char *gone = bench_cache_of(h);
    double us = timed_import(h, c);
    bench_discard(gone); /* 16 MB a sample, until the run ends */
    return us;
}

static double sample_warm(void *p)
{
    ctx *c = p;
    return timed_import(host_with_cache(c->url, c->warm), c);
}

static double sample_hashed(void *p)
{
    ctx *c = p;
    return timed_import(host_with_cache(c->url, c->hashed), c);
}

static double sample_warm_fresh(void *p)
{
    ctx *c = p;
    return timed_import(host_with_cache(c->url_fresh, c->warm), c);
}

static double sample_fs(void *p)
{
    ctx *c = p;
    mh_host *h = bench_host(bench_path(1), 0, NULL, NULL);
    char *gone = bench_cache_of(h);
    double us = timed_import(h, c);
    bench_discard(gone);
    return us;
}

static double sample_raw(void *p)
{
    ctx *c = p;
    return bench_dlopen_all_us(c->abs, c->n);
}

/* Regular files in dir (none if it cannot be read). */
/* Requests one import of everything makes, as the server logged them. */
static void count_requests(const char *log, mh_host *h, const ctx *c,
                           size_t *n, size_t *not_modified)
{
    size_t m0, n0 = requests(log, &m0);
    timed_import(h, c);
    /* nginx writes its log line after the answer: let it catch up. */
    usleep(100000);
    *n = requests(log, not_modified) - n0;
    *not_modified -= m0;
}

static void run(void)
{
    ctx c;
    c.n = bench_names(&c.names);
    const char *tree = bench_path_dirs(1)[0];
    c.abs = bench_files();

    /* The site: a copy of tree/ with its index (never written into the
     * fixtures). */
    char *www = bench_fmt("%s/www", bench.work);
    if (bench_sh("rm -rf '%s' && cp -r '%s' '%s'", www, tree, www) != 0)
        bench_die("http: cannot copy %s to %s", tree, www);
    size_t indexed = 0;
    mh_error *err = NULL;
    if (mh_index_dir(www, NULL, &indexed, &err) != MH_OK)
        bench_die("http: mh_index_dir %s: %s", www, mh_error_message(err));
    if (indexed < c.n)
        bench_die("http: index of %s has %zu modules, expected %zu", www,
                  indexed, c.n);

    /* Straight to loopback, whatever proxy this shell has. */
    static const char *const proxy_vars[] = {
        "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
        "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"};
    for (size_t i = 0; i < sizeof proxy_vars / sizeof proxy_vars[0]; i++)
        unsetenv(proxy_vars[i]);
    atexit(stop_all);
    const char *nginx = find_nginx();
    const char *url[2], *log[2];
    if (nginx) {
        start_nginx(&servers[0], nginx, www);
        for (int k = 0; k < 2; k++) {
            url[k] = servers[0].url[k];
            log[k] = servers[0].log[k];
        }
    } else {
        for (int k = 0; k < 2; k++) {
            start_server_py(&servers[k], www, k);
            url[k] = servers[k].url[0];
            log[k] = servers[k].log[0];
        }
    }
    c.url = url[0];
    c.url_fresh = url[1];

    /* Fill the warm cache (both entries' indexes; the blobs are shared,
     * by content), and check the modules really come over HTTP. */
    c.warm = bench_fmt("%s/http-warm-cache", bench.work);
    {
        mh_host *h = host_with_cache(c.url, c.warm);
        mh_module *m;
        if (mh_import(h, c.names[0], &m, &err) != MH_OK)
            bench_die("http: import %s from %s: %s", c.names[0], c.url,
                      mh_error_message(err));
        if (strcmp(mh_module_finder(m), "http") != 0)
            bench_die("http: %s came from finder '%s' (%s)", c.names[0],
                      mh_module_finder(m),
                      mh_module_origin(m) ? mh_module_origin(m) : "?");
        timed_import(h, &c);
        timed_import(host_with_cache(c.url_fresh, c.warm), &c);
    }
    /* As a later run finds them: the blobs downloaded a while ago, and
     * hashed (and so stamped) by one host since.  The copy's stamps'
     * directory is made unusable (group-readable: not private). */
    usleep(2100 * 1000); /* the unsure window, 2 s */
    timed_import(host_with_cache(c.url, c.warm), &c);
    char *vdir = bench_fmt("%s/verified", c.warm);
    size_t stamps = bench_count_files(vdir);
    if (stamps < c.n)
        bench_die("http: %zu stamps in %s, expected %zu", stamps, vdir, c.n);
    free(vdir);
    c.hashed = bench_fmt("%s/http-hashed-cache", bench.work);
    if (bench_sh("rm -rf '%s' && cp -a '%s' '%s' && chmod 0750 "
                 "'%s/verified'", c.hashed, c.warm, c.hashed, c.hashed) != 0)
        bench_die("http: cannot copy %s to %s", c.warm, c.hashed);
    size_t cold_n, cold_m, warm_n, warm_m, fresh_n, fresh_m;
    {
        char *cache = bench_fmt("%s/http-count-cache", bench.work);
        count_requests(log[0], host_with_cache(c.url, cache), &c, &cold_n,
                       &cold_m);
        bench_sh("rm -rf '%s'", cache);
        free(cache);
    }
    count_requests(log[0], host_with_cache(c.url, c.warm), &c, &warm_n,
                   &warm_m);
    count_requests(log[1], host_with_cache(c.url_fresh, c.warm), &c,
                   &fresh_n, &fresh_m);

    bench_var v[] = {
        {"modhost, HTTP from cache (default)", sample_warm, &c, 0},
        {"modhost, HTTP cold (empty cache)", sample_cold, &c, 0},
        {"modhost, filesystem (P = 1)", sample_fs, &c, 0},
        {"raw dlopen, absolute path (floor)", sample_raw, &c, 0},
        {"modhost, HTTP from cache, index max-age", sample_warm_fresh, &c,
         0},
        {"modhost, HTTP from cache, no stamps (hashed)",
         sample_hashed, &c, 0},
    };
    size_t nv = sizeof v / sizeof v[0];
    bench_interleave(v, nv, bench.rounds);

    bench_table("HTTP import",
                "µs per module: 1,000 plugins imported by a new host from "
                "a loopback HTTP server, cold and from the cache a "
                "previous host left; ratio to the filesystem import");
    /* The reference row first: ratios are to the row given as ref. */
    bench_row(v[2].name, v[2].median, "µs", true);
    bench_row(v[0].name, v[0].median, "µs", false);
    bench_row(v[4].name, v[4].median, "µs", false);
    bench_row(v[5].name, v[5].median, "µs", false);
    bench_row(v[1].name, v[1].median, "µs", false);
    bench_row(v[3].name, v[3].median, "µs", false);
    bench_target("HTTP from cache ÷ filesystem import",
                 v[0].median / v[2].median, 1.10, false);
    bench_note("Server: %s on 127.0.0.1 (HTTP/1.1 keep-alive, ETag and "
               "Last-Modified, 304 answers), serving a copy of tree/ with "
               "the index.json of `mh_index_dir` (%zu modules). By default "
               "it sends no Cache-Control, as static servers do unless "
               "configured; the `index max-age` row is the same site "
               "sending `Cache-Control: max-age=3600`, for comparison "
               "only. Requests made by one import of all 1,000, from the "
               "server's log: cold %zu; from cache %zu (%zu answered 304); "
               "from cache with max-age %zu. Cold includes downloading, "
               "verifying and writing each module to the cache (fsync, "
               "rename). From cache, each module's blob file is opened "
               "and checked against its stamp (device, inode, size, mtime "
               "and ctime of the file an earlier host hashed, 2 s or more "
               "after its download), and the same descriptor mapped (no "
               "copy into a memfd): the steady state, from the second host "
               "2 s after a download on. The `no stamps` row is the "
               "same cache with its stamps' directory unusable: each blob "
               "is hashed (SHA-256) through the descriptor it is mapped "
               "from, as the blobs of a signed index always are, and as "
               "the hosts before the steady state do.",
               nginx ? "nginx (stock static-file settings)"
                     : "tests/http/server.py (nginx not installed)",
               indexed, cold_n, warm_n, warm_m, fresh_n);
    (void)cold_m;
    (void)fresh_m;
    bench_table_end();

    stop_all();
    bench_sh("rm -rf '%s'", c.hashed);
    free(c.hashed);
    free(c.warm);
    free(www);
}

const bench_area bench_area_http = {"http", "HTTP import", run, NULL};
