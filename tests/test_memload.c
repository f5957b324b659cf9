/*
 * test_memload.c -- native code loaded from memory (module database
 * blobs): memfd_create, sealed, dlopen'ed through /proc/self/fd and kept
 * open while loaded; the private cache-directory fallback forced with
 * MH_CONFIG_NO_MEMFD, and its refusal of unsafe directories; and
 * deduplication by content (same bytes + same name load once a process).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
#endif
#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#endif

/* The fd of the one open memfd whose name contains needle, or -1. */
static int memfd_of(const char *needle)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int fd = -1;

    if (d == NULL)
        FAIL("opendir(/proc/self/fd): %s", strerror(errno));
    while ((e = readdir(d)) != NULL) {
        char link[512];
        ssize_t len = readlinkat(dirfd(d), e->d_name, link, sizeof link - 1);
        if (e->d_name[0] == '.' || len < 0)
            continue;
        link[len] = '\0';
        if (strstr(link, "memfd:") && strstr(link, needle))
            fd = atoi(e->d_name);
    }
    closedir(d);
    return fd;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        FAIL("lstat(%s): %s", path, strerror(errno));
    return st.st_mode;
}

/* ------------------------------------------------------------- memfd */

/* A module database without its recorded hashes (docs/formats.md), as
 * `sqlite3 -A` or an older modhost writes one: its native code is always
 * read and loaded from memory, which is what these cases are about.  (A
 * database with them has its modules mapped from kept copies:
 * tests/test_sqlite.c.) */
#define mem_db(db, ...) db_without_hashes(db_make((db), __VA_ARGS__))

TEST(memfd_mapping_named_after_module)
{
    const char *db = mem_db(tmp_path("p.db"), "counter:memtestmod.so");
    mh_host *host = host_new_isolated(db);
    mh_module *mod;

    mod = import_ok(host, "memtestmod");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    if (maps_count("memfd:", "memtestmod") < 1)
        FAIL("no mapping of a memfd named after memtestmod:%s",
             sh_run("grep -e memfd -e modhost /proc/$PPID/maps", NULL));
    ASSERT_EQ_INT(memfd_fd_count("memtestmod"), 1);
    ASSERT_EQ_STR(mh_module_origin(mod), str_fmt("%s!/memtestmod.so", db));
    /* nothing went through the file fallback */
    ASSERT_TRUE(dir_count(tmp_path("cache/native")) <= 0);
    mh_host_free(host);
    ASSERT_EQ_INT(memfd_fd_count("memtestmod"), 0);
}

TEST(memfd_is_sealed_and_close_on_exec)
{
    const char *db = mem_db(tmp_path("p.db"), "counter:sealmod.so");
    mh_host *host = host_new_isolated(db);
    int fd, seals,
        want = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

    import_ok(host, "sealmod");
    fd = memfd_of("sealmod");
    if (fd < 0)
        FAIL("no open memfd named after sealmod");
    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & want) != want)
        FAIL("memfd %d seals are %#x, want write, shrink, grow and seal "
             "(%#x)", fd, seals, want);
    /* sealed for good: no seal can be added or removed any more */
    ASSERT_TRUE(seals & F_SEAL_SEAL);
    ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ASSERT_TRUE(write(fd, "x", 1) < 0);
    mh_host_free(host);
}

/* ----------------------------------------------------------- fallback */

TEST(no_memfd_loads_through_private_directory)
{
    const char *cache = tmp_mkdir("cache");
    const char *native = tmp_path("cache/native");
    const char *db = mem_db(tmp_path("p.db"), "counter:fbmod.so");
    host_opts o = {.flags = MH_CONFIG_NO_MEMFD, .cache_dir = cache};
    mh_host *host = host_new_opts(&o, db);
    mh_module *mod;

    ASSERT_EQ_STR(mh_host_cache_dir(host), cache);
    mod = import_ok(host, "fbmod");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_origin(mod), str_fmt("%s!/fbmod.so", db));
    ASSERT_TRUE(S_ISDIR(mode_of(native)));
    ASSERT_EQ_INT(mode_of(native) & 07777, 0700);
    /* written, fsynced, loaded, unlinked: nothing stays behind */
    ASSERT_EQ_INT(dir_count(native), 0);
    ASSERT_EQ_INT(memfd_fd_count("fbmod"), 0);
    ASSERT_EQ_INT(maps_count("memfd:", "fbmod"), 0);
    if (maps_count(str_fmt("%s/", native), "") < 1)
        FAIL("no mapping of a file under %s", native);
    mh_host_free(host);
    ASSERT_EQ_INT(dir_count(native), 0);
}

TEST(no_memfd_creates_missing_cache_directory)
{
    const char *cache = tmp_path("home/.cache/modhost");
    const char *native = tmp_path("home/.cache/modhost/native");
    const char *db = mem_db(tmp_path("p.db"), "answer7:fbmod.so");
    host_opts o = {.flags = MH_CONFIG_NO_MEMFD, .cache_dir = cache};
    mh_host *host = host_new_opts(&o, db);

    ASSERT_EQ_INT(call_int(import_ok(host, "fbmod"), "value"), 7);
    ASSERT_TRUE(S_ISDIR(mode_of(native)));
    ASSERT_EQ_INT(mode_of(native) & 07777, 0700);
    ASSERT_EQ_INT(dir_count(native), 0);
    mh_host_free(host);
}

TEST(no_memfd_refuses_world_writable_directory)
{
    const char *native = tmp_mkdir("cache/native");
    const char *db = mem_db(tmp_path("p.db"), "counter:fbmod.so");
    host_opts o = {.flags = MH_CONFIG_NO_MEMFD};
    mh_host *host;
    mh_module *mod;

    if (chmod(native, 0777) < 0)
        FAIL("chmod: %s", strerror(errno));
    host = host_new_opts(&o, db);
    ASSERT_NE_INT(mh_import(host, "fbmod", &mod, ERR), MH_OK);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), native);
    ASSERT_EQ_INT(dir_count(native), 0);
    ASSERT_NULL(mh_host_module(host, "fbmod"));
    mh_host_free(host);
}

TEST(no_memfd_refuses_symlinked_directory)
{
    const char *elsewhere = tmp_mkdir("elsewhere");
    const char *native = tmp_path("cache/native");
    const char *db = mem_db(tmp_path("p.db"), "counter:fbmod.so");
    host_opts o = {.flags = MH_CONFIG_NO_MEMFD};
    mh_host *host;
    mh_module *mod;

    tmp_mkdir("cache");
    if (chmod(elsewhere, 0700) < 0 || symlink(elsewhere, native) < 0)
        FAIL("chmod/symlink: %s", strerror(errno));
    host = host_new_opts(&o, db);
    ASSERT_NE_INT(mh_import(host, "fbmod", &mod, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), native);
    ASSERT_EQ_INT(dir_count(elsewhere), 0);
    ASSERT_TRUE(S_ISLNK(mode_of(native)));
    mh_host_free(host);
}

TEST(no_memfd_refuses_directory_of_another_user)
{
    const char *native = tmp_mkdir("cache/native");
    const char *db = mem_db(tmp_path("p.db"), "counter:fbmod.so");
    host_opts o = {.flags = MH_CONFIG_NO_MEMFD};
    mh_host *host;
    mh_module *mod;

    if (geteuid() != 0) {
        printf("skipped: only root can give a directory away\n");
        return;
    }
    if (chmod(native, 0700) < 0 || chown(native, 65534, 65534) < 0)
        FAIL("chmod/chown: %s", strerror(errno));
    host = host_new_opts(&o, db);
    ASSERT_NE_INT(mh_import(host, "fbmod", &mod, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), native);
    ASSERT_EQ_INT(dir_count(native), 0);
    mh_host_free(host);
}

TEST(no_memfd_cache_dir_that_is_a_file_fails_cleanly)
{
    const char *cache = tmp_path("cache");
    const char *db = mem_db(tmp_path("p.db"), "counter:fbmod.so");
    host_opts o = {.flags = MH_CONFIG_NO_MEMFD, .cache_dir = cache};
    mh_host *host;
    mh_module *mod;

    file_write(cache, "a file where the cache directory should be\n");
    host = host_new_opts(&o, db);
    ASSERT_NE_INT(mh_import(host, "fbmod", &mod, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), cache);
    ASSERT_CONTAINS(file_read(cache), "a file where");
    mh_host_free(host);
}

TEST(fd_of_module_still_mapped_is_not_reused)
{
    /* pinmod stays loaded after its host is freed (NODELETE).  If its
     * memfd were closed, the next memfd could get the same number, and
     * dlopen("/proc/self/fd/N") would return pinmod (glibc matches loaded
     * objects by name) instead of the new module. */
    const char *db1 = mem_db(tmp_path("one.db"), "nodelete:pinmod.so");
    const char *db2 = mem_db(tmp_path("two.db"), "answer7:othermod.so");
    mh_spec_info info = {.size = sizeof info};
    mh_host *h1 = host_new_isolated(db1), *h2;
    int pin_fd, other_fd, hold[64], nhold = 0;

    ASSERT_EQ_INT(call_int(import_ok(h1, "pinmod"), "value"), 42);
    pin_fd = memfd_of("pinmod");
    ASSERT_TRUE(pin_fd >= 0);
    mh_host_free(h1);
    h2 = host_new_isolated(db2);
    ASSERT_STATUS(mh_find(h2, "othermod", &info, ERR), MH_OK); /* opens db2 */
    /* Fill every free fd below pin_fd, so that if pin_fd is free the next
     * memfd gets it. */
    while (nhold < 64) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            FAIL("open(/dev/null): %s", strerror(errno));
        if (fd >= pin_fd) {
            close(fd);
            break;
        }
        hold[nhold++] = fd;
    }
    ASSERT_EQ_INT(call_int(import_ok(h2, "othermod"), "value"), 7);
    other_fd = memfd_of("othermod");
    while (nhold > 0)
        close(hold[--nhold]);
    if (other_fd != pin_fd)
        printf("note: fd %d was not reused (othermod got %d)\n", pin_fd,
               other_fd);
    mh_host_free(h2);
}

/* -------------------------------------------------------------- dedup */

TEST(same_bytes_same_name_load_once)
{
    const char *db = mem_db(tmp_path("p.db"), "counter:dedupmod.so");
    size_t before = memfd_fd_count("");
    mh_host *h1 = host_new_isolated(db), *h2 = host_new_isolated(db);
    mh_module *m1, *m2;

    m1 = import_ok(h1, "dedupmod");
    m2 = import_ok(h2, "dedupmod");
    /* one mapping, so one counter; init ran once per host */
    ASSERT_EQ_PTR(symbol_ok(m1, "value"), symbol_ok(m2, "value"));
    ASSERT_EQ_INT(call_int(m1, "init_count"), 2);
    ASSERT_EQ_INT(memfd_fd_count("dedupmod"), 1);
    mh_host_free(h1);
    ASSERT_EQ_INT(call_int(m2, "value"), 42);
    ASSERT_EQ_INT(memfd_fd_count("dedupmod"), 1);
    mh_host_free(h2);
    ASSERT_EQ_INT(memfd_fd_count("dedupmod"), 0);
    ASSERT_EQ_INT(memfd_fd_count(""), before);
}

TEST(same_bytes_same_name_load_once_without_memfd)
{
    const char *db = mem_db(tmp_path("p.db"), "counter:dedupmod.so");
    host_opts o = {.flags = MH_CONFIG_NO_MEMFD};
    mh_host *h1 = host_new_opts(&o, db), *h2 = host_new_opts(&o, db);
    mh_module *m1, *m2;

    m1 = import_ok(h1, "dedupmod");
    m2 = import_ok(h2, "dedupmod");
    ASSERT_EQ_PTR(symbol_ok(m1, "value"), symbol_ok(m2, "value"));
    ASSERT_EQ_INT(call_int(m2, "init_count"), 2);
    ASSERT_EQ_INT(dir_count(tmp_path("cache/native")), 0);
    mh_host_free(h1);
    ASSERT_EQ_INT(call_int(m2, "value"), 42);
    mh_host_free(h2);
}

TEST(different_bytes_same_name_load_separately)
{
    /* If an fd were closed after dlopen, the second memfd could reuse its
     * number, and glibc, matching "/proc/self/fd/N" by name, would hand
     * back the first library. */
    const char *db1 = mem_db(tmp_path("one.db"), "counter:twinmod.so");
    const char *db2 = mem_db(tmp_path("two.db"), "answer7:twinmod.so");
    mh_host *h1 = host_new_isolated(db1), *h2 = host_new_isolated(db2);
    mh_host *h3;
    mh_module *m1, *m2, *m3;

    m1 = import_ok(h1, "twinmod");
    m2 = import_ok(h2, "twinmod");
    ASSERT_EQ_INT(call_int(m1, "value"), 42);
    ASSERT_EQ_INT(call_int(m2, "value"), 7);
    ASSERT_EQ_INT(memfd_fd_count("twinmod"), 2);
    mh_host_free(h1);
    h3 = host_new_isolated(db1);
    m3 = import_ok(h3, "twinmod");
    ASSERT_EQ_INT(call_int(m3, "value"), 42);
    ASSERT_EQ_INT(call_int(m2, "value"), 7);
    mh_host_free(h3);
    mh_host_free(h2);
    ASSERT_EQ_INT(memfd_fd_count("twinmod"), 0);
}

TEST(same_bytes_other_name_load_separately)
{
    const char *db = mem_db(tmp_path("p.db"), "counter:c1.so",
                             "counter:c2.so");
    mh_host *host = host_new_isolated(db);
    mh_module *m1 = import_ok(host, "c1"), *m2 = import_ok(host, "c2");

    ASSERT_NE_PTR(symbol_ok(m1, "value"), symbol_ok(m2, "value"));
    ASSERT_EQ_INT(call_int(m1, "init_count"), 1);
    ASSERT_EQ_INT(call_int(m2, "init_count"), 1);
    mh_host_free(host);
}

#define N_HOSTS 16

struct one_host {
    const char *db;
    pthread_barrier_t *start;
    mh_host *host;
    mh_module *mod;
};

static void *host_worker(void *arg)
{
    struct one_host *w = arg;
    mh_spec_info info = {.size = sizeof info};

    w->host = host_new_isolated(w->db);
    if (mh_find(w->host, "sharedmod", &info, NULL) != MH_OK)
        FAIL("sharedmod not found"); /* the database is open now */
    pthread_barrier_wait(w->start); /* all import at once */
    w->mod = import_ok(w->host, "sharedmod");
    return NULL;
}

TEST(hosts_in_threads_share_one_load)
{
    /* A check-then-load race loads twice; twenty rounds make it show. */
    const char *db = mem_db(tmp_path("p.db"), "counter:sharedmod.so");
    struct one_host w[N_HOSTS];
    pthread_t t[N_HOSTS];
    pthread_barrier_t start;

    for (int round = 0; round < 20; round++) {
        pthread_barrier_init(&start, NULL, N_HOSTS);
        for (int i = 0; i < N_HOSTS; i++) {
            w[i].db = db;
            w[i].start = &start;
            if (pthread_create(&t[i], NULL, host_worker, &w[i]) != 0)
                FAIL("pthread_create");
        }
        for (int i = 0; i < N_HOSTS; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&start);
        for (int i = 1; i < N_HOSTS; i++)
            if (symbol_ok(w[i].mod, "value") != symbol_ok(w[0].mod, "value"))
                FAIL("round %d: host %d got its own copy of the module "
                     "(%zu memfds for it)", round, i,
                     memfd_fd_count("sharedmod"));
        ASSERT_EQ_INT(call_int(w[0].mod, "init_count"), N_HOSTS);
        ASSERT_EQ_INT(memfd_fd_count("sharedmod"), 1);
        for (int i = 0; i < N_HOSTS; i++)
            mh_host_free(w[i].host);
        ASSERT_EQ_INT(memfd_fd_count("sharedmod"), 0);
    }
}

/* ------------------------------------------------- review: load failures */

/* A copy of counter.so whose dependency libc.so.6 is renamed nosuch.so in
 * its dynamic string table: a well-formed shared object (any header or
 * segment check passes) that dlopen refuses cleanly ("nosuch.so: cannot
 * open shared object file"). */
static const char *missing_dep_module(const char *rel)
{
    static const char from[] = "libc.so.6", to[] = "nosuch.so";
    const char *path = fixture_copy("counter", "%s", rel);
    size_t len, hits = 0;
    unsigned char *so = file_bytes(path, &len);

    for (size_t i = 0; i + sizeof from <= len; i++)
        if (memcmp(so + i, from, sizeof from) == 0) { /* with its NUL */
            memcpy(so + i, to, sizeof to);
            hits++;
        }
    if (hits == 0)
        FAIL("no \"%s\" in %s", from, path);
    file_write_bytes(path, so, len);
    free(so);
    return path;
}

TEST(memfd_load_failure_writes_no_file)
{
    /* The file fallback is for memfd mappings the system refuses, not for
     * images the dynamic loader rejects: those must not be written out. */
    const char *bad = missing_dep_module("stage/badmod.so");
    const char *db = tmp_path("p.db");
    const char *native = tmp_mkdir("cache/native");
    const char *in[] = {bad};
    char buf[4096];
    host_opts o = {0};
    mh_host *host;
    mh_module *mod;
    mh_status st;
    ssize_t got;
    int ino;

    ASSERT_STATUS(mh_pack(db, in, 1, NULL, ERR), MH_OK);
    if (chmod(native, 0700) < 0)
        FAIL("chmod: %s", strerror(errno));
    ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ino < 0 || inotify_add_watch(ino, native, IN_CREATE | IN_MOVED_TO |
                                                      IN_CLOSE_WRITE) < 0)
        FAIL("inotify: %s", strerror(errno));
    host = host_new_opts(&o, db); /* cache_dir is tmp_path("cache") */
    st = mh_import(host, "badmod", &mod, ERR);
    if (st != MH_ELOAD && st != MH_EFORMAT)
        FAIL("import of a module with a missing dependency: %s, want "
             "MH_ELOAD or MH_EFORMAT: %s", mh_status_name(st), ERR_MSG());
    got = read(ino, buf, sizeof buf);
    if (got > 0) {
        const struct inotify_event *ev = (const void *)buf;
        FAIL("a file was written into %s (%s) after a failed dlopen of a "
             "memfd", native, ev->len ? ev->name : "?");
    }
    ASSERT_TRUE(dir_count(native) <= 0);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("%s!/badmod.so", db));
    ASSERT_NOT_CONTAINS(ERR_MSG(), native);
    mh_host_free(host);
    close(ino);
}

/* ------------------------------------------------------ review: traces */

TEST(verbose_traces_never_name_proc_fd)
{
    const char *db = mem_db(tmp_path("p.db"), "counter:tracemod.so");
    log_capture lc;
    host_opts o = {.flags = MH_CONFIG_VERBOSE};
    mh_host *h1, *h2;

    log_capture_init(&lc);
    o.log = &lc;
    h1 = host_new_opts(&o, db);
    h2 = host_new_opts(&o, db);
    ASSERT_EQ_INT(call_int(import_ok(h1, "tracemod"), "value"), 42);
    ASSERT_EQ_INT(call_int(import_ok(h2, "tracemod"), "value"), 42);
    mh_host_free(h1);
    mh_host_free(h2);
    if (log_capture_count(&lc, -1, "tracemod") == 0)
        FAIL("no trace mentions tracemod; log:%s", log_capture_dump(&lc));
    if (log_capture_count(&lc, -1, "/proc/self/fd") != 0)
        FAIL("a message names /proc/self/fd; log:%s", log_capture_dump(&lc));
    log_capture_free(&lc);
}

/* ------------------------------------- review: fallback directory ancestors */

/* Some occurrence of path in msg names path itself (is not followed by
 * '/' or another name character). */
static int names_path(const char *msg, const char *path)
{
    size_t n = strlen(path);
    for (const char *p = strstr(msg, path); p; p = strstr(p + 1, path)) {
        char c = p[n];
        if (c != '/' && c != '_' && c != '.' && c != '-' &&
            !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
            !(c >= '0' && c <= '9'))
            return 1;
    }
    return 0;
}

TEST(fallback_refuses_world_writable_ancestor)
{
    const char *ww = tmp_mkdir("ww");
    const char *cache = tmp_path("ww/cache");
    const char *db = mem_db(tmp_path("p.db"), "counter:fbmod.so");
    host_opts o = {.flags = MH_CONFIG_NO_MEMFD, .cache_dir = cache};
    mh_host *host;
    mh_module *mod;

    if (chmod(ww, 0777) < 0) /* world-writable, not sticky */
        FAIL("chmod: %s", strerror(errno));
    host = host_new_opts(&o, db);
    ASSERT_NE_INT(mh_import(host, "fbmod", &mod, ERR), MH_OK);
    ASSERT_NULL(mod);
    if (!names_path(ERR_MSG(), ww))
        FAIL("the message does not name %s: \"%s\"", ww, ERR_MSG());
    /* no file of any kind (the code to load least of all) under ww */
    if (sh_run(str_fmt("find %s ! -type d", sh_quote(ww)), NULL)[0])
        FAIL("files were written under %s:\n%s", ww,
             sh_run(str_fmt("find %s ! -type d", sh_quote(ww)), NULL));
    ASSERT_NULL(mh_host_module(host, "fbmod"));
    mh_host_free(host);
}

TEST(fallback_accepts_sticky_root_ancestor)
{
    const char *ww = tmp_mkdir("ww");
    const char *cache = tmp_path("ww/cache");
    const char *db = mem_db(tmp_path("p.db"), "counter:fbmod.so");
    host_opts o = {.flags = MH_CONFIG_NO_MEMFD, .cache_dir = cache};
    mh_host *host;

    if (geteuid() != 0) {
        printf("skipped: needs root (a sticky directory owned by root)\n");
        return;
    }
    if (chmod(ww, 01777) < 0) /* like /tmp */
        FAIL("chmod: %s", strerror(errno));
    host = host_new_opts(&o, db);
    ASSERT_EQ_INT(call_int(import_ok(host, "fbmod"), "value"), 42);
    ASSERT_EQ_INT(dir_count(tmp_path("ww/cache/native")), 0);
    mh_host_free(host);
}

TEST(fallback_accepts_root_symlink_in_cache_path)
{
    const char *safe = tmp_mkdir("safe");
    const char *cache = tmp_path("link/cache");
    const char *db = mem_db(tmp_path("p.db"), "counter:fbmod.so");
    host_opts o = {.flags = MH_CONFIG_NO_MEMFD, .cache_dir = cache};
    mh_host *host;

    if (geteuid() != 0) {
        printf("skipped: needs root (a symbolic link owned by root)\n");
        return;
    }
    if (chmod(safe, 0755) < 0 || symlink(safe, tmp_path("link")) < 0)
        FAIL("chmod/symlink: %s", strerror(errno));
    host = host_new_opts(&o, db);
    ASSERT_EQ_INT(call_int(import_ok(host, "fbmod"), "value"), 42);
    ASSERT_TRUE(S_ISDIR(mode_of(tmp_path("safe/cache/native"))));
    ASSERT_EQ_INT(dir_count(tmp_path("safe/cache/native")), 0);
    mh_host_free(host);
}

/* --------------------------------------------- review: concurrent loads */

struct racer {
    const char *db;
    const char *name;
    pthread_barrier_t *start;
    mh_host *host;
    mh_module *mod;
};

static void *race_worker(void *arg)
{
    struct racer *w = arg;
    mh_spec_info info = {.size = sizeof info};

    w->host = host_new_isolated(w->db);
    if (mh_find(w->host, w->name, &info, NULL) != MH_OK)
        FAIL("%s not found", w->name); /* the database is open now */
    pthread_barrier_wait(w->start);
    w->mod = import_ok(w->host, w->name);
    return NULL;
}

TEST(two_threads_same_new_image_one_memfd)
{
    const char *db = mem_db(tmp_path("p.db"), "counter:racemod.so");
    struct racer w[2];
    pthread_t t[2];
    pthread_barrier_t start;

    for (int round = 0; round < 30; round++) {
        pthread_barrier_init(&start, NULL, 2);
        for (int i = 0; i < 2; i++) {
            w[i] = (struct racer){.db = db, .name = "racemod",
                                  .start = &start};
            if (pthread_create(&t[i], NULL, race_worker, &w[i]) != 0)
                FAIL("pthread_create");
        }
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&start);
        if (memfd_fd_count("racemod") != 1)
            FAIL("round %d: %zu memfds for one image", round,
                 memfd_fd_count("racemod"));
        ASSERT_EQ_PTR(symbol_ok(w[0].mod, "value"),
                      symbol_ok(w[1].mod, "value"));
        ASSERT_EQ_INT(call_int(w[0].mod, "init_count"), 2);
        for (int i = 0; i < 2; i++)
            mh_host_free(w[i].host);
        ASSERT_EQ_INT(memfd_fd_count("racemod"), 0);
    }
}

struct slow_import {
    mh_host *host;
    int done;
};

static void *slow_worker(void *arg)
{
    struct slow_import *s = arg;
    import_ok(s->host, "slowmod");
    __atomic_store_n(&s->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

TEST(slow_init_does_not_block_other_memory_loads)
{
    /* No process-wide lock may be held while plugin code runs: a module
     * whose init takes 300 ms must not hold up another host loading a
     * different module from memory. */
    const char *db1 = mem_db(tmp_path("one.db"), "slow_init:slowmod.so");
    const char *db2 = mem_db(tmp_path("two.db"), "answer7:quickmod.so");
    const char *marker = tmp_path("slow-init-started");
    mh_spec_info info = {.size = sizeof info};
    struct slow_import s = {0};
    mh_host *quick;
    pthread_t t;
    double t0, took;
    int slow_done;

    env_set("MH_SLOW_INIT_MARKER", marker);
    s.host = host_new_isolated(db1);
    quick = host_new_isolated(db2);
    ASSERT_STATUS(mh_find(quick, "quickmod", &info, ERR), MH_OK);
    if (pthread_create(&t, NULL, slow_worker, &s) != 0)
        FAIL("pthread_create");
    wait_for_file(marker, "the slow module's init", 10);
    t0 = mono_s();
    ASSERT_EQ_INT(call_int(import_ok(quick, "quickmod"), "value"), 7);
    took = mono_s() - t0;
    slow_done = __atomic_load_n(&s.done, __ATOMIC_SEQ_CST);
    pthread_join(t, NULL);
    if (took >= 0.25)
        FAIL("importing quickmod took %.0f ms while slowmod's init ran",
             took * 1000);
    if (slow_done)
        FAIL("slowmod's init had finished before quickmod was loaded: the "
             "check proved nothing");
    ASSERT_EQ_INT(call_int(mh_host_module(s.host, "slowmod"), "value"), 3);
    mh_host_free(quick);
    mh_host_free(s.host);
}
