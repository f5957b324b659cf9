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
#include <sys/stat.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_SEAL_WRITE 0x0008
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

TEST(memfd_mapping_named_after_module)
{
    const char *db = db_make(tmp_path("p.db"), "counter:memtestmod.so");
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
    const char *db = db_make(tmp_path("p.db"), "counter:sealmod.so");
    mh_host *host = host_new_isolated(db);
    int fd, seals, want = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW;

    import_ok(host, "sealmod");
    fd = memfd_of("sealmod");
    if (fd < 0)
        FAIL("no open memfd named after sealmod");
    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & want) != want)
        FAIL("memfd %d seals are %#x, want write, shrink and grow (%#x)", fd,
             seals, want);
    ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ASSERT_TRUE(write(fd, "x", 1) < 0);
    mh_host_free(host);
}

/* ----------------------------------------------------------- fallback */

TEST(no_memfd_loads_through_private_directory)
{
    const char *cache = tmp_mkdir("cache");
    const char *native = tmp_path("cache/native");
    const char *db = db_make(tmp_path("p.db"), "counter:fbmod.so");
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
    const char *db = db_make(tmp_path("p.db"), "answer7:fbmod.so");
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
    const char *db = db_make(tmp_path("p.db"), "counter:fbmod.so");
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
    const char *db = db_make(tmp_path("p.db"), "counter:fbmod.so");
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
    const char *db = db_make(tmp_path("p.db"), "counter:fbmod.so");
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
    const char *db = db_make(tmp_path("p.db"), "counter:fbmod.so");
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
    const char *db1 = db_make(tmp_path("one.db"), "nodelete:pinmod.so");
    const char *db2 = db_make(tmp_path("two.db"), "answer7:othermod.so");
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
    const char *db = db_make(tmp_path("p.db"), "counter:dedupmod.so");
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
    const char *db = db_make(tmp_path("p.db"), "counter:dedupmod.so");
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
    const char *db1 = db_make(tmp_path("one.db"), "counter:twinmod.so");
    const char *db2 = db_make(tmp_path("two.db"), "answer7:twinmod.so");
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
    const char *db = db_make(tmp_path("p.db"), "counter:c1.so",
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
    const char *db = db_make(tmp_path("p.db"), "counter:sharedmod.so");
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
