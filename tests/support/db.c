/*
 * db.c -- helpers for module databases: pack with mh_pack_ex, drive the stock
 * sqlite3 CLI (the tests link only libmodhost, so SQL goes through the
 * command a user would run), damage files on purpose, hosts with options,
 * and what /proc says about memfds and mappings.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "finders/sqlar.h"
#include "support/support.h"
#include "test.h"

/* ------------------------------------------------------------- packing */

size_t db_pack_(const char *db, unsigned flags, const char *const *inputs)
{
    size_t n = 0, count = 0;
    mh_error *err = NULL;
    mh_status st;

    while (inputs[n])
        n++;
    st = mh_pack_ex(db, inputs, n, flags, &count, &err);
    if (st != MH_OK) {
        const char *msg = str_fmt("%s", mh_error_message(err));
        mh_error_free(err);
        FAIL("mh_pack(%s): %s: %s", db, mh_status_name(st), msg);
    }
    return count;
}

const char *db_make_(const char *db, unsigned flags, const char *const *specs)
{
    static unsigned stage_n;
    const char *rel = str_fmt(".stage%u", stage_n++);

    tmp_mkdir("%s", rel);
    for (size_t i = 0; specs[i]; i++) {
        const char *colon = strchr(specs[i], ':');
        if (colon == NULL)
            FAIL("db_make: spec \"%s\" is not FIXTURE:REL", specs[i]);
        fixture_copy(str_fmt("%.*s", (int)(colon - specs[i]), specs[i]),
                     "%s/%s", rel, colon + 1);
    }
    const char *in[] = {tmp_path("%s", rel), NULL};
    db_pack_(db, flags, in);
    return db;
}

/* ----------------------------------------------------------- the shell */

const char *sh_quote(const char *s)
{
    const char *q = "'";
    for (const char *p = s; *p; p++)
        q = *p == '\'' ? str_fmt("%s'\\''", q) : str_fmt("%s%c", q, *p);
    return str_fmt("%s'", q);
}

const char *sh_run(const char *cmd, int *status)
{
    FILE *f;
    char buf[4096];
    size_t n;
    const char *out = "";
    int st;

    fflush(NULL);
    f = popen(cmd, "r");
    if (f == NULL)
        FAIL("popen(%s): %s", cmd, strerror(errno));
    while ((n = fread(buf, 1, sizeof buf - 1, f)) > 0) {
        buf[n] = '\0';
        out = str_fmt("%s%s", out, buf);
    }
    st = pclose(f);
    if (status)
        *status = st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
}

static const char *chomp(const char *s)
{
    size_t len = strlen(s);
    while (len > 0 && s[len - 1] == '\n')
        len--;
    return str_fmt("%.*s", (int)len, s);
}

const char *sqlite3_cli(const char *fmt, ...)
{
    va_list ap;
    char *args = NULL;
    const char *errf = tmp_path(".sqlite3.stderr");
    const char *out;
    int st;

    va_start(ap, fmt);
    if (vasprintf(&args, fmt, ap) < 0)
        FAIL("out of memory in test support");
    va_end(ap);
    out = sh_run(str_fmt("sqlite3 -batch -init /dev/null %s 2>%s", args,
                         sh_quote(errf)),
                 &st);
    if (st != 0) {
        const char *e = file_read(errf);
        const char *what = str_fmt("%s", args);
        free(args);
        FAIL("sqlite3 %s: exit %d: %s", what, st, e ? e : "");
    }
    free(args);
    unlink(errf);
    return chomp(out);
}

const char *db_exec(const char *db, const char *sql)
{
    return sqlite3_cli("%s %s", sh_quote(db), sh_quote(sql));
}

/* ---------------------------------------------------------------- files */

unsigned char *file_bytes(const char *path, size_t *len)
{
    struct stat st;
    unsigned char *buf;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;

    if (fd < 0)
        FAIL("open(%s): %s", path, strerror(errno));
    if (fstat(fd, &st) < 0)
        FAIL("fstat(%s): %s", path, strerror(errno));
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL)
        FAIL("out of memory reading %s", path);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n <= 0)
            FAIL("read(%s): %s", path, n < 0 ? strerror(errno) : "short");
        got += (size_t)n;
    }
    close(fd);
    *len = got;
    return buf;
}

void file_write_bytes(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const unsigned char *p = data;

    if (fd < 0)
        FAIL("create %s: %s", path, strerror(errno));
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            FAIL("write(%s): %s", path, strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    if (close(fd) < 0)
        FAIL("close(%s): %s", path, strerror(errno));
}

void file_copy(const char *src, const char *dst)
{
    size_t len;
    unsigned char *data = file_bytes(src, &len);
    file_write_bytes(dst, data, len);
    free(data);
}

int files_equal(const char *a, const char *b)
{
    size_t la, lb;
    unsigned char *da = file_bytes(a, &la), *db = file_bytes(b, &lb);
    int eq = la == lb && memcmp(da, db, la) == 0;
    free(da);
    free(db);
    return eq;
}

long long file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        FAIL("stat(%s): %s", path, strerror(errno));
    return (long long)st.st_size;
}

void file_truncate_to(const char *path, size_t len)
{
    if (truncate(path, (off_t)len) < 0)
        FAIL("truncate(%s, %zu): %s", path, len, strerror(errno));
}

void file_scribble(const char *path, size_t offset, unsigned seed)
{
    size_t len;
    unsigned char *data = file_bytes(path, &len);
    unsigned x = seed ? seed : 1;

    if (offset >= len)
        FAIL("file_scribble(%s): offset %zu past the end (%zu)", path,
             offset, len);
    for (size_t i = offset; i < len; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (unsigned char)(x >> 16);
    }
    file_write_bytes(path, data, len);
    free(data);
}

size_t db_page_size(const char *db)
{
    size_t len, ps;
    unsigned char *h = file_bytes(db, &len);

    if (len < 100 || memcmp(h, "SQLite format 3", 16) != 0)
        FAIL("%s is not a SQLite database", db);
    ps = (size_t)h[16] << 8 | h[17];
    free(h);
    return ps == 1 ? 65536 : ps;
}

long dir_count(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    long n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* ---------------------------------------------------------------- hosts */

mh_host *host_new_opts_(const host_opts *o, const char *const *entries)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH | o->flags;
    cfg.path = path_join(entries);
    cfg.cache_dir = o->cache_dir ? o->cache_dir : tmp_path("cache");
    cfg.max_module_size = o->max_module_size;
    if (o->log) {
        cfg.log = log_capture_fn;
        cfg.log_ud = o->log;
    }
    cfg.fault = o->fault;
    cfg.fault_ud = o->fault_ud;
    return host_new_cfg(&cfg);
}

/* ---------------------------------------------------------------- /proc */

size_t memfd_fd_count(const char *needle)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    size_t n = 0;

    if (d == NULL)
        FAIL("opendir(/proc/self/fd): %s", strerror(errno));
    while ((e = readdir(d)) != NULL) {
        char link[512];
        ssize_t len;
        if (e->d_name[0] == '.')
            continue;
        len = readlinkat(dirfd(d), e->d_name, link, sizeof link - 1);
        if (len < 0)
            continue;
        link[len] = '\0';
        if (strstr(link, "memfd:") && strstr(link, needle))
            n++;
    }
    closedir(d);
    return n;
}

size_t maps_count(const char *a, const char *b)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096];
    size_t n = 0;

    if (f == NULL)
        FAIL("fopen(/proc/self/maps): %s", strerror(errno));
    while (fgets(line, sizeof line, f))
        if (strstr(line, a) && strstr(line, b))
            n++;
    fclose(f);
    return n;
}

const char *db_without_hashes(const char *db)
{
    db_exec(db, MH_SAR_SHA_DROP);
    return db;
}
