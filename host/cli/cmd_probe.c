/*
 * cmd_probe.c -- `modhost probe [--plain] [--name NAME] FILE`: check a
 * native plugin file in a child process, and `--in-process`, the check
 * itself, which is what that child (and libmodhost's probe mode,
 * loaders/probe.c) runs.
 *
 * Both modes import FILE as module NAME through a meta-path finder of
 * this file that serves exactly that module, so the whole import protocol
 * runs -- metadata, ABI, requirements, load, init -- with the search path
 * left for what the module's init imports.  The checking mode does it in
 * a host with MH_CONFIG_PROBE (the library then runs `--in-process` in a
 * child and judges it) and MH_CONFIG_NO_INDEX (a check records nothing).
 * The library hands the in-process mode the module as /proc/self/fd/4:
 * a file it loads as that file, by the path that still names it, as the
 * library will; an image (or a file renamed since) from its bytes in
 * memory, as a database's module is loaded.
 *
 * The in-process mode's status channel (--status-fd), read by
 * loaders/probe.c, is one line per milestone: "start" once the host is
 * up, "init-ok" once the import worked, "ok" once the host is freed (fini
 * ran); or "refused STATUS_NAME" / "unusable" and a message to the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_probe.h"
#include "modhost/finder.h"

/* Flags the library may pass to the in-process mode (--config-flags). */
#define PASSABLE (MH_CONFIG_NO_MEMFD | MH_CONFIG_TRUST_LUAC |             \
                  MH_CONFIG_INSECURE_FILES | MH_CONFIG_NO_DEFAULT_PATH)

typedef struct probe_opts {
    const char *name;        /* module name; default: FILE's base name */
    const char *file;
    const char *origin;      /* shown in messages; default: FILE */
    const char *cache_dir;
    const char *host_version;/* the version of the library asking */
    unsigned import_flags;   /* MH_IMPORT_PLAIN */
    unsigned config_flags;
    int in_process;
    int status_fd;           /* -1: none */
} probe_opts;

/* ---- the finder of the one module --------------------------------------- */

typedef struct probe_target {
    const char *name, *origin, *file;
    int memory;              /* serve the bytes through read() */
    int unread;              /* read() failed: none of the module ran */
} probe_target;

static mh_status target_open(mh_finder_ctx *cx, const char *entry,
                             void **state)
{
    (void)entry;
    *state = cx->ud;
    return MH_OK;
}

static mh_status target_find(mh_finder_ctx *cx, void *state,
                             const char *name, mh_finder_spec *spec)
{
    const probe_target *t = state;
    if (strcmp(name, t->name) != 0) {
        cx->svc->miss(cx, "'modhost probe' serves '%s' only", t->name);
        return MH_ENOTFOUND;
    }
    spec->kind = MH_KIND_NATIVE;
    spec->origin = t->origin;
    if (t->memory)
        spec->key = "module";
    else
        spec->file = t->file;
    return MH_OK;
}

static mh_status target_read(mh_finder_ctx *cx, void *state, const char *key,
                             mh_finder_blob *out)
{
    probe_target *t = state;
    (void)key;
    t->unread = 1; /* until the bytes are in hand */
    int fd = open(t->file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return cx->svc->error(cx, MH_EIO, "cannot read %s: %s", t->origin,
                              strerror(e));
    }
    if (!S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > cx->svc->max_module_size(cx)) {
        close(fd);
        return cx->svc->error(cx, MH_EFORMAT, "%s is not a regular file of "
                              "at most %zu bytes", t->origin,
                              cx->svc->max_module_size(cx));
    }
    size_t size = st.st_size ? (size_t)st.st_size : 1, got = 0;
    unsigned char *data = cx->svc->alloc(cx, size);
    if (!data) {
        close(fd);
        return cx->svc->error(cx, MH_ENOMEM, "out of memory reading %s",
                              t->origin);
    }
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, data + got, (size_t)st.st_size - got,
                          (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    out->data = data;
    out->len = got;
    out->size = size;
    t->unread = 0;
    return MH_OK;
}

static void target_close(mh_finder_ctx *cx, void *state)
{
    (void)cx;
    (void)state;
}

static const mh_finder_class target_class = {
    MH_FINDER_CLASS_INIT,
    .name = "probe",
    .description = "the one module 'modhost probe' checks",
    .open = target_open,
    .find = target_find,
    .read = target_read,
    .close = target_close,
};

/* ---- the two modes ------------------------------------------------------ */

static void say(const probe_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A status write at most (the host keeps the first 8 KiB of them). */
#define PROBE_LINE_MAX 6144

/* A line (or a record) on the status channel, if there is one, in one
 * write of at most PROBE_LINE_MAX bytes.  The channel is not stdio's:
 * vdprintf allocated a stream buffer that a plugin closing the
 * descriptor left leaked.  Each write starts with this process's pid, so
 * the host can tell its child's lines from those of a copy a plugin
 * forked (which inherits the descriptor). */
static void say(const probe_opts *o, const char *fmt, ...)
{
    char line[PROBE_LINE_MAX];
    va_list ap;
    if (o->status_fd < 0)
        return;
    int n = snprintf(line, sizeof line, "%ld ", (long)getpid());
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = m < 0 ? (size_t)n
               : (size_t)n + (size_t)m < sizeof line ? (size_t)(n + m)
                                                     : sizeof line - 1;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(o->status_fd, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

/* A host for the module, with the finder of target first.  0, or the
 * exit code after reporting (on the status channel too). */
static int target_host(const cli_ctx *ctx, const probe_opts *o,
                       unsigned flags, size_t max_module_size,
                       probe_target *t, mh_host **host)
{
    mh_config cfg;
    mh_error *err = NULL;
    mh_config_init(&cfg);
    cfg.flags = ctx->flags | flags;
    cfg.path = ctx->path;
    cfg.cache_dir = o->cache_dir;
    cfg.max_module_size = max_module_size;
    if (mh_host_new(&cfg, host, &err) != MH_OK ||
        mh_host_add_meta_finder(*host, &target_class, t, MH_CHAIN_FIRST,
                                NULL, &err) != MH_OK) {
        say(o, "unusable\n%s", mh_error_message(err));
        mh_host_free(*host);
        *host = NULL;
        return cli_fail(err);
    }
    return CLI_EXIT_OK;
}

/* Did an import fail for the module's own reasons -- its init, its
 * descriptor or ABI, its bytes, what it requires -- which the asking
 * host's own load of the same bytes meets again, before or in the same
 * code?  Anything else (its bytes not read, a file or directory refused
 * or unreadable here, no memory, no descriptor, no way to load from
 * memory here: MH_CONFIG_NO_MEMFD without a private cache directory)
 * says nothing of the module, and the asking host must not take it for
 * a clean refusal: it would load the module untried. */
static bool modules_own_refusal(mh_status st)
{
    switch (st) {
    case MH_EINIT: case MH_EABI: case MH_ENODESC: case MH_ELOAD:
    case MH_EFORMAT: case MH_EVERSION: case MH_ENOTFOUND: case MH_ECYCLE:
    case MH_EDEADLOCK: case MH_ENOSYM:
        return true;
    default:
        return false;
    }
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out);

/* The module the asking host hands over as /proc/self/fd/N: its number,
 * or -1. */
static int handed_fd(const char *file)
{
    static const char pfx[] = "/proc/self/fd/";
    unsigned long n;
    if (strncmp(file, pfx, sizeof pfx - 1) != 0 ||
        parse_uint(file + sizeof pfx - 1, 1024 * 1024, &n) != 0)
        return -1;
    return (int)n;
}

/* The file the module is, when the descriptor handed over as fd_path
 * (stat a) is one by a path that still names it (same device and inode):
 * into real, true.
 * False for an image in memory (a memfd, an unlinked private file), or a
 * file renamed or replaced since.  Loading that path here loads as the
 * asking host does -- a file, mapped through its descriptor, $ORIGIN and
 * all -- where loading its bytes from memory could fail for reasons of
 * this process's (MH_CONFIG_NO_MEMFD, a cache directory it cannot use)
 * that the asking host does not share. */
static bool file_behind(const char *fd_path, const struct stat *a,
                        char *real)
{
    struct stat b;
    ssize_t n = readlink(fd_path, real, PATH_MAX - 1);
    if (n <= 0 || real[0] != '/' || !S_ISREG(a->st_mode))
        return false;
    real[n] = '\0';
    return stat(real, &b) == 0 && a->st_dev == b.st_dev &&
           a->st_ino == b.st_ino;
}

/* Is the file of st (its device and inode) mapped in this process?  A
 * file the child loaded by its path (file_behind) and that was renamed
 * over in between is another: what was tried is then not what the asking
 * host maps. */
static bool mapped_here(const struct stat *st)
{
    FILE *f = fopen("/proc/self/maps", "re");
    if (!f)
        return false;
    char line[PATH_MAX + 256];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned long long lo, hi, off, ino;
        unsigned maj, min;
        char perms[8];
        found = sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &lo, &hi,
                       perms, &off, &maj, &min, &ino) == 7 &&
                ino == (unsigned long long)st->st_ino &&
                makedev(maj, min) == st->st_dev;
    }
    fclose(f);
    return found;
}

/* The check itself: load, init and fini the module in this process. */
static int run_in_process(const cli_ctx *ctx, const probe_opts *o)
{
    int fd = handed_fd(o->file);
    if (o->status_fd >= 0) {
        /* Not for a plugin's children; and gone with the host that asks,
         * if it is killed while this hangs. */
        fcntl(o->status_fd, F_SETFD, FD_CLOEXEC);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
    }
    if (fd >= 0) /* nor the module's descriptor */
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (o->host_version && strcmp(o->host_version, mh_version_string()) != 0) {
        say(o, "unusable\nthe probe command is modhost %s, the host asking "
            "is modhost %s", mh_version_string(), o->host_version);
        cli_errorf("this is modhost %s, the host asking is modhost %s",
                   mh_version_string(), o->host_version);
        return CLI_EXIT_FAILURE;
    }
    /* A file is loaded as the file it is; an image from its bytes, all
     * of which the asking host accepted, whatever this host's limit. */
    char real[PATH_MAX];
    struct stat st;
    bool known = fd >= 0 && fstat(fd, &st) == 0;
    probe_target t = {o->name, o->origin, o->file, 1, 0};
    if (known && file_behind(o->file, &st, real)) {
        t.file = real;
        t.memory = 0;
    }
    size_t max = t.memory && known &&
                         (uint64_t)st.st_size > MH_DEFAULT_MAX_MODULE
                     ? (size_t)st.st_size : 0;
    mh_host *host;
    int code = target_host(ctx, o, o->config_flags | MH_CONFIG_NO_INDEX |
                                       MH_CONFIG_NO_BYTECODE_WRITE |
                                       MH_CONFIG_NO_COPY_WRITE,
                           max, &t, &host);
    if (code != CLI_EXIT_OK)
        return code;
    say(o, "start\n");
    mh_module *mod;
    mh_error *err = NULL;
    /* Plain accepted: whether a descriptor is required is the asking
     * host's question; here only loading and init are. */
    if (mh_import_ex(host, o->name, MH_IMPORT_PLAIN, &mod, &err) != MH_OK) {
        if (t.unread || !modules_own_refusal(mh_error_code(err)))
            say(o, "unusable\nthe child could not load it, for a reason "
                "that is not the module's: %s", mh_error_message(err));
        else
            say(o, "refused %s\n%s", mh_status_name(mh_error_code(err)),
                mh_error_message(err));
        mh_host_free(host);
        return cli_fail(err);
    }
    if (!t.memory && !mapped_here(&st)) {
        say(o, "unusable\n%s was replaced while the child loaded it: what "
            "it tried is not what the host holds", t.file);
        mh_host_free(host);
        cli_errorf("%s was replaced while it was being checked", t.file);
        return CLI_EXIT_FAILURE;
    }
    say(o, "init-ok\n");
    mh_host_free(host); /* its fini runs here */
    say(o, "ok\n");
    printf("%s: ok (%s)\n", o->name, o->origin);
    return cli_finish_output(CLI_EXIT_OK);
}

/* The checking mode: import in a probing host, which runs the check in a
 * child. */
static int run_checked(const cli_ctx *ctx, const probe_opts *o)
{
    char real[PATH_MAX];
    if (!realpath(o->file, real)) {
        int e = errno; /* the message's own write may set errno */
        cli_errorf("cannot probe %s: %s", o->file, strerror(e));
        return e == ENOENT ? CLI_EXIT_NOTFOUND : CLI_EXIT_FAILURE;
    }
    probe_target t = {o->name, real, real, 0, 0};
    mh_host *host;
    int code = target_host(ctx, o, MH_CONFIG_PROBE | MH_CONFIG_NO_INDEX, 0,
                           &t, &host);
    if (code != CLI_EXIT_OK)
        return code;
    mh_module *mod;
    mh_error *err = NULL;
    if (mh_import_ex(host, o->name, o->import_flags, &mod, &err) != MH_OK)
        code = cli_fail(err);
    else
        printf("%s: ok (%s)\n", o->name, real);
    mh_host_free(host);
    return code == CLI_EXIT_OK ? cli_finish_output(code) : code;
}

/* ---- options ------------------------------------------------------------ */

/* The default module name: FILE's base name without ".so" (static). */
static const char *name_of_file(const char *file)
{
    static char name[MH_NAME_MAX + 1];
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t n = strlen(base);
    if (n > 3 && strcmp(base + n - 3, ".so") == 0)
        n -= 3;
    if (n > MH_NAME_MAX)
        return NULL;
    memcpy(name, base, n);
    name[n] = '\0';
    return mh_name_check(name, NULL) == MH_OK ? name : NULL;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 0);
    if (errno || !*s || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

int cli_cmd_probe(const cli_ctx *ctx, const cli_command *cmd, int argc,
                  char **argv)
{
    enum { OPT_NAME = 0x100, OPT_INPROC, OPT_STATUS, OPT_ORIGIN, OPT_CACHE,
           OPT_FLAGS, OPT_HOSTVER };
    static const struct option longopts[] = {
        { "plain", no_argument, NULL, 'P' },
        { "name", required_argument, NULL, OPT_NAME },
        { "in-process", no_argument, NULL, OPT_INPROC },
        { "status-fd", required_argument, NULL, OPT_STATUS },
        { "origin", required_argument, NULL, OPT_ORIGIN },
        { "cache-dir", required_argument, NULL, OPT_CACHE },
        { "config-flags", required_argument, NULL, OPT_FLAGS },
        { "host-version", required_argument, NULL, OPT_HOSTVER },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    probe_opts o = { .status_fd = -1 };
    unsigned long v;
    int code, c;

    while ((c = cli_getopt(cmd, argc, argv, ":h", longopts, &code)) != -1) {
        switch (c) {
        case 0:
            return code;
        case 'P':
            o.import_flags |= MH_IMPORT_PLAIN;
            break;
        case OPT_NAME:
            o.name = optarg;
            break;
        case OPT_INPROC:
            o.in_process = 1;
            break;
        case OPT_STATUS:
            if (parse_uint(optarg, INT_MAX, &v) != 0 ||
                fcntl((int)v, F_GETFD) < 0)
                return cli_usage_error(cmd, "bad --status-fd '%s' (not an "
                                       "open descriptor)", optarg);
            o.status_fd = (int)v;
            break;
        case OPT_ORIGIN:
            o.origin = optarg;
            break;
        case OPT_CACHE:
            o.cache_dir = optarg;
            break;
        case OPT_FLAGS:
            if (parse_uint(optarg, PASSABLE, &v) != 0 || (v & ~PASSABLE))
                return cli_usage_error(cmd, "bad --config-flags '%s'",
                                       optarg);
            o.config_flags = (unsigned)v;
            break;
        case OPT_HOSTVER:
            o.host_version = optarg;
            break;
        default:
            return cli_usage_error(cmd, "unexpected option");
        }
    }
    if (optind >= argc)
        return cli_usage_error(cmd, "missing FILE");
    if (argc - optind > 1)
        return cli_usage_error(cmd, "too many arguments");
    o.file = argv[optind];
    if (!o.origin)
        o.origin = o.file;
    if (!o.name && !(o.name = name_of_file(o.file)))
        return cli_usage_error(cmd, "'%s' does not end in a module name; "
                               "give one with --name NAME", o.file);
    if (mh_name_check(o.name, NULL) != MH_OK)
        return cli_usage_error(cmd, "'%s' is not a valid module name",
                               o.name);
    if (!o.in_process && (o.status_fd >= 0 || o.config_flags ||
                          o.host_version))
        return cli_usage_error(cmd, "--status-fd, --config-flags and "
                               "--host-version go with --in-process");
    return o.in_process ? run_in_process(ctx, &o) : run_checked(ctx, &o);
}
