/*
 * test_discovery.c -- mh_discover, entry points and recorded failures over
 * the discovery index: every module's metadata without running its code;
 * no unchanged file read twice (counted from the host's traces "discover:
 * reading the metadata of 'NAME'" and its summary line), and every change
 * -- a module or a sidecar touched, replaced, added or removed, a
 * database re-packed -- read again; the index a disposable SQLite file
 * (damaged, foreign or of another format: rebuilt, silently, its rows not
 * trusted; disabled; refused in a cache directory others can write);
 * failures recorded with their reasons and skipped until the file
 * changes; shadowing as import sees it; threads, hosts and processes
 * sharing one index; and allocation faults.
 *
 * Files older than 2 s are trusted by identity, newer ones are read again
 * (the mtime granularity rule), so every test ages what it creates (60 s)
 * and "touches" a file by giving it another age; the rule itself has a
 * test of its own.  SQL reaches the index through the sqlite3 command.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <modhost/finder.h>

#include "cache/discovery.h"
#include "support/support.h"
#include "test.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

#define NPLUG 200               /* plugins of the big directory */
#define NMODS (NPLUG + 3)       /* ... and its Lua modules */

/* ------------------------------------------------------------ helpers */

/* A host on the entries, tracing (MH_CONFIG_VERBOSE) into lc, with its
 * cache in cache (NULL: tmp_path("cache")) and flags added. */
static mh_host *vhost_(log_capture *lc, const char *cache, unsigned flags,
                       const char *const *entries)
{
    host_opts o = {.flags = MH_CONFIG_VERBOSE | flags, .cache_dir = cache,
                   .log = lc};
    return host_new_opts_(&o, entries);
}
#define vhost(lc, cache, flags, ...) \
    vhost_((lc), (cache), (flags), (const char *const[]){__VA_ARGS__, NULL})

static const char *index_path(const char *cache)
{
    return str_fmt("%s/%s", cache ? cache : tmp_path("cache"), MH_DX_FILE);
}

/* The run succeeded, reported n modules in name order, traced a summary
 * that agrees with its read traces, and logged no warning or error. */
#define ASSERT_RUN(r, want_n)                                             \
    do {                                                                  \
        const disc_run *r_ = (r);                                         \
        if (r_->status != MH_OK)                                          \
            FAIL("mh_discover: %s: %s", mh_status_name(r_->status),       \
                 r_->error ? r_->error : "");                             \
        if (r_->n != (size_t)(want_n))                                    \
            FAIL("%zu modules reported, expected %zu:\n%s", r_->n,        \
                 (size_t)(want_n), r_->text);                             \
        if (r_->unordered)                                                \
            FAIL("not in name order: %s", r_->unordered);                 \
        if (r_->warnings)                                                 \
            FAIL("%zu warnings or errors logged:\n%s", r_->warnings,      \
                 r_->log);                                                \
        if (r_->sum_modules >= 0 &&                                       \
            (r_->sum_modules != (long)r_->n ||                            \
             r_->sum_read != (long)r_->reads ||                           \
             r_->sum_index != (long)(r_->n - r_->reads)))                 \
            FAIL("summary %ld modules, %ld read, %ld from the index, "    \
                 "but %zu reported and %zu read traces:\n%s",             \
                 r_->sum_modules, r_->sum_read, r_->sum_index, r_->n,     \
                 r_->reads, r_->log);                                     \
    } while (0)

/* The run read exactly the modules named (space-separated, name order). */
#define ASSERT_READ(r, names)                                             \
    do {                                                                  \
        const disc_run *r_ = (r);                                         \
        if (r_->sum_modules < 0)                                          \
            FAIL("no discovery summary traced (is the host verbose?)");   \
        if (strcmp(r_->read_names, (names)) != 0)                         \
            FAIL("read [%s], expected [%s]; log:\n%s", r_->read_names,    \
                 (names), r_->log);                                       \
    } while (0)

/* The run read every one of its modules. */
#define ASSERT_READ_ALL(r)                                                \
    do {                                                                  \
        if ((r)->reads != (r)->n || (r)->sum_read != (long)(r)->n)        \
            FAIL("%zu of %zu modules read, expected all; log:\n%s",       \
                 (r)->reads, (r)->n, (r)->log);                           \
    } while (0)

/* The first line where a and b differ, both versions, for messages. */
static const char *first_diff(const char *a, const char *b)
{
    size_t line = 1;
    const char *la = a, *lb = b;
    for (; *a && *a == *b; a++, b++)
        if (*a == '\n') {
            line++;
            la = a + 1;
            lb = b + 1;
        }
    size_t na = strcspn(la, "\n"), nb = strcspn(lb, "\n");
    return str_fmt("line %zu:\n  first: %.*s\n  then:  %.*s", line, (int)na,
                   la, (int)nb, lb);
}

#define ASSERT_SAME_TEXT(a, b)                                            \
    do {                                                                  \
        const char *a_ = (a), *b_ = (b);                                  \
        if (strcmp(a_, b_) != 0)                                          \
            FAIL("results differ at %s", first_diff(a_, b_));             \
    } while (0)

static void assert_module(const disc_mod *d, mh_module_kind kind,
                          const char *source, const char *version,
                          const char *provides)
{
    if (d->status != MH_OK || d->kind != kind || !d->has_manifest ||
        strcmp(d->source, source) != 0 ||
        (version ? !d->version || strcmp(d->version, version) != 0
                 : d->version != NULL) ||
        strcmp(d->provides, provides) != 0)
        FAIL("module %s: got\n  %s\nexpected kind %s, source %s, version "
             "%s, provides [%s]", d->name, d->line,
             mh_module_kind_name(kind), source, version ? version : "(null)",
             provides);
}

#define CODEC_PROVIDES "codec=call:encode,answer=answer"

/* text without the lines that mention skip. */
static const char *without(const char *text, const char *skip)
{
    size_t len = strlen(text), n = 0;
    char *buf = malloc(len + 1);
    if (buf == NULL)
        FAIL("out of memory");
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p + 1) : strlen(p);
        const char *hit = strstr(p, skip);
        if (!hit || hit >= p + ll) {
            memcpy(buf + n, p, ll);
            n += ll;
        }
        p += ll;
    }
    buf[n] = '\0';
    const char *out = str_fmt("%s", buf);
    free(buf);
    return out;
}

/* The big directory, a verbose host on it, and two runs (all read, then
 * none): the starting point of the change tests. */
typedef struct big {
    log_capture lc;
    const char *dir;
    mh_host *host;
    disc_run first;
} big;

static void big_setup(big *b)
{
    disc_run again;
    log_capture_init(&b->lc);
    b->dir = disc_plugin_dir("plugins", NPLUG);
    b->host = vhost(&b->lc, NULL, 0, b->dir);
    disc_discover(b->host, &b->lc, &b->first);
    ASSERT_RUN(&b->first, NMODS);
    ASSERT_READ_ALL(&b->first);
    disc_discover(b->host, &b->lc, &again);
    ASSERT_RUN(&again, NMODS);
    ASSERT_READ(&again, "");
}

static void big_done(big *b)
{
    mh_host_free(b->host);
    log_capture_free(&b->lc);
}

static const char *path_in(const char *dir, const char *file)
{
    return str_fmt("%s/%s", dir, file);
}

/* Replace path with content by writing a new file and renaming it over
 * (a new inode), aged secs_ago. */
static void replace_file(const char *path, const char *content, long age)
{
    const char *tmp = str_fmt("%s.new", path);
    file_write(tmp, content);
    disc_set_age(tmp, age);
    if (rename(tmp, path) != 0)
        FAIL("rename(%s): %s", tmp, strerror(errno));
}

/* ----------------------------------------------- many plugins, one read */

TEST(many_plugins_read_once_then_from_index)
{
    big b;
    disc_run r;
    log_capture lc2;

    big_setup(&b);
    /* What was read is what the files say. */
    assert_module(disc_get(&b.first, "p000"), MH_KIND_NATIVE, "elf-note",
                  "3.1.4", CODEC_PROVIDES);
    assert_module(disc_get(&b.first, "p199"), MH_KIND_NATIVE, "elf-note",
                  "1.0.0", "");
    assert_module(disc_get(&b.first, "lua_a"), MH_KIND_LUA, "sidecar",
                  "1.0.0", "codec=encode");
    assert_module(disc_get(&b.first, "lua_b"), MH_KIND_LUA, "sidecar",
                  "2.0.0", "");
    assert_module(disc_get(&b.first, "lua_c"), MH_KIND_LUA, "none", NULL, "");
    const disc_mod *p0 = disc_get(&b.first, "p000");
    ASSERT_EQ_STR(p0->origin, path_in(b.dir, "p000.so"));
    ASSERT_EQ_STR(p0->finder, "fs");
    ASSERT_EQ_INT(p0->entry_index, 0);
    ASSERT_EQ_STR(p0->manifest_name, "p000");
    ASSERT_EQ_PTR(p0->interned, mh_intern_lookup(b.host, "p000"));
    ASSERT_EQ_STR(p0->description, "discovery fixture with entry points");
    ASSERT_EQ_INT(p0->abi, MH_PLUGIN_ABI_VERSION); /* the note says so */
    ASSERT_NULL(p0->reason);
    ASSERT_EQ_STR(disc_get(&b.first, "lua_a")->origin,
                  path_in(b.dir, "lua_a.lua"));
    ASSERT_EQ_INT(disc_count_status(&b.first, MH_OK), NMODS);
    ASSERT_EQ_INT(mh_host_module_count(b.host), 0); /* nothing loaded */

    /* Third run (big_setup made two): none read, the same answers. */
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "");
    ASSERT_EQ_INT(r.sum_index, NMODS);
    ASSERT_SAME_TEXT(b.first.text, r.text);

    /* The index is a file: a new host with the same cache reads none. */
    log_capture_init(&lc2);
    mh_host *h2 = vhost(&lc2, NULL, 0, b.dir);
    disc_discover(h2, &lc2, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "");
    ASSERT_SAME_TEXT(b.first.text, r.text);
    ASSERT_EQ_INT(mh_host_module_count(h2), 0);
    mh_host_free(h2);
    log_capture_free(&lc2);
    big_done(&b);
}

/* The ABI a manifest note declares is part of the metadata: the same
 * whether the note was just read or the index remembered it. */
TEST(manifest_abi_is_the_same_from_the_index)
{
    log_capture lc;
    disc_run r1, r2;
    const char *dir = disc_plugin_dir("plugins", 2);

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r1);
    ASSERT_RUN(&r1, 5);
    ASSERT_READ_ALL(&r1);
    disc_discover(host, &lc, &r2);
    ASSERT_RUN(&r2, 5);
    ASSERT_READ(&r2, "");
    for (size_t i = 0; i < r1.n; i++) {
        const disc_mod *a = &r1.mods[i], *b = disc_get(&r2, a->name);
        int want = a->kind == MH_KIND_NATIVE ? MH_PLUGIN_ABI_VERSION : 0;
        if (a->abi != want || b->abi != want)
            FAIL("%s: mh_manifest_abi %d when read from the file, %d from "
                 "the index; expected %d both times", a->name, a->abi,
                 b->abi, want);
    }
    mh_host_free(host);
    log_capture_free(&lc);
}

static int stop_after_three(void *ud, const mh_module_meta *m)
{
    size_t *calls = ud;
    (void)m;
    return ++*calls == 3;
}

static int never_called(void *ud, const mh_failure *f)
{
    (void)ud;
    (void)f;
    FAIL("a failure reported where none was recorded");
}

TEST(callback_stops_the_walk_and_null_arguments_are_refused)
{
    size_t calls = 0;
    const char *dir = disc_plugin_dir("plugins", 6);
    mh_host *host = host_new_opts(&(host_opts){0}, dir);

    ASSERT_STATUS(mh_discover(host, stop_after_three, &calls, ERR), MH_OK);
    ASSERT_EQ_INT(calls, 3);
    ASSERT_STATUS(mh_discover(host, NULL, NULL, ERR), MH_EINVAL);
    ASSERT_STATUS(mh_discover(NULL, stop_after_three, &calls, ERR),
                  MH_EINVAL);
    ASSERT_STATUS(mh_host_failures(host, NULL, NULL, ERR), MH_EINVAL);
    ASSERT_STATUS(mh_host_failures(host, never_called, NULL, ERR), MH_OK);
    ASSERT_STATUS(mh_host_clear_failures(NULL, NULL, NULL, ERR), MH_EINVAL);
    ASSERT_STATUS(mh_host_clear_failures(host, "bad/name", NULL, ERR),
                  MH_EBADNAME);
    ASSERT_CONTAINS(ERR_MSG(), "bad/name");
    mh_host_free(host);
}

TEST(touched_plugin_alone_is_read_again)
{
    big b;
    disc_run r;
    struct stat st;

    big_setup(&b);
    /* A new mtime. */
    disc_set_age(path_in(b.dir, "p123.so"), 30);
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "p123");
    ASSERT_SAME_TEXT(b.first.text, r.text);
    disc_discover(b.host, &b.lc, &r);
    ASSERT_READ(&r, "");

    /* A new size, the mtime put back to the very nanosecond. */
    const char *p124 = path_in(b.dir, "p124.so");
    ASSERT_EQ_INT(stat(p124, &st), 0);
    int fd = open(p124, O_WRONLY | O_APPEND);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ_INT(write(fd, "\0\0\0\0", 4), 4);
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    ASSERT_EQ_INT(futimens(fd, ts), 0);
    close(fd);
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "p124");
    ASSERT_SAME_TEXT(b.first.text, r.text);
    disc_discover(b.host, &b.lc, &r);
    ASSERT_READ(&r, "");
    big_done(&b);
}

/* A long-lived host that lists again and again while a plugin is
 * rewritten: each listing interned the identity of every row it read, so
 * the host's interned strings -- never freed before the host is -- grew
 * by one per rewrite. */
TEST(listing_again_after_rewrites_interns_nothing_new)
{
    big b;
    disc_run r;

    big_setup(&b);
    size_t before = mh_intern_count(b.host);
    for (long k = 0; k < 8; k++) {
        disc_set_age(path_in(b.dir, "p123.so"), 30 + k);
        disc_discover(b.host, &b.lc, &r);
        ASSERT_RUN(&r, NMODS);
        ASSERT_READ(&r, "p123");
    }
    disc_discover(b.host, &b.lc, &r);
    ASSERT_READ(&r, "");
    ASSERT_EQ_INT(mh_intern_count(b.host), before);
    big_done(&b);
}

/* An unchanged identity means the file is not opened at all: p000's bytes
 * are changed in place (same inode, same size, mtime put back), and the
 * listing still reports what the index holds; once its mtime moves, the
 * new bytes are read. */
/* The "open" sites of a host (mh_config.fault is called before every
 * file the host opens), counted, never failed. */
static int count_opens(void *ud, const char *site)
{
    if (strcmp(site, "open") == 0)
        __atomic_add_fetch((long *)ud, 1, __ATOMIC_RELAXED);
    return 0;
}

TEST(unchanged_identity_means_the_file_is_not_read)
{
    big b;
    disc_run r;
    long opens = 0;

    big_setup(&b);
    /* A new host on the same index opens no file at all: every module
     * (native, Lua, sidecar) comes from its row. */
    host_opts o = {.flags = MH_CONFIG_VERBOSE, .log = &b.lc,
                   .fault = count_opens, .fault_ud = &opens};
    mh_host *h = host_new_opts(&o, b.dir);
    disc_discover(h, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "");
    ASSERT_EQ_INT(opens, 0);
    ASSERT_SAME_TEXT(b.first.text, r.text);

    /* A chmod moves the ctime: that module alone is read (opened) again. */
    ASSERT_EQ_INT(chmod(path_in(b.dir, "p007.so"), 0600), 0);
    disc_discover(h, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "p007");
    ASSERT_EQ_INT(opens, 1);
    mh_host_free(h);

    big_done(&b);
}

/* A plugin rewritten in place with its size and mtime put back (cp -p,
 * install -p, a reproducible build): only the ctime tells. */
TEST(rewritten_in_place_with_size_and_mtime_put_back_is_read_again)
{
    big b;
    disc_run r;
    struct stat st;
    size_t len;
    const char *p000;
    unsigned char *data, *hit;

    big_setup(&b);
    p000 = path_in(b.dir, "p000.so");
    ASSERT_EQ_INT(stat(p000, &st), 0);
    data = file_bytes(p000, &len);
    hit = memmem(data, len, "\"3.1.4\"", 7);
    ASSERT_NOT_NULL(hit);
    ASSERT_NULL(memmem(hit + 1, len - (size_t)(hit + 1 - data), "\"3.1.4\"",
                       7));
    memcpy(hit, "\"3.1.5\"", 7);
    int fd = open(p000, O_WRONLY);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ_INT(pwrite(fd, data, len, 0), (long long)len);
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    ASSERT_EQ_INT(futimens(fd, ts), 0);
    close(fd);
    free(data);
    struct stat now;
    ASSERT_EQ_INT(stat(p000, &now), 0);
    ASSERT_EQ_INT(now.st_ino, st.st_ino);
    ASSERT_EQ_INT(now.st_size, st.st_size);
    ASSERT_EQ_INT(now.st_mtim.tv_sec, st.st_mtim.tv_sec);
    ASSERT_EQ_INT(now.st_mtim.tv_nsec, st.st_mtim.tv_nsec);

    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "p000");
    ASSERT_EQ_STR(disc_get(&r, "p000")->version, "3.1.5");
    ASSERT_SAME_TEXT(without(b.first.text, "p000"), without(r.text, "p000"));

    /* Its mtime is old: the new row is sure, and serves from now on. */
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "");
    ASSERT_EQ_STR(disc_get(&r, "p000")->version, "3.1.5");
    big_done(&b);
}

TEST(replaced_file_with_same_size_and_mtime_is_read_again)
{
    big b;
    disc_run r;
    struct stat st;

    big_setup(&b);
    /* Another file of the same size and mtime renamed over it: only the
     * inode tells them apart. */
    const char *p010 = path_in(b.dir, "p010.so");
    const char *fresh = fixture_copy("disc_codec", "p010.so.new");
    ASSERT_EQ_INT(stat(p010, &st), 0);
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    ASSERT_EQ_INT(utimensat(AT_FDCWD, fresh, ts, 0), 0);
    ASSERT_EQ_INT(rename(fresh, p010), 0);
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "p010");
    ASSERT_SAME_TEXT(b.first.text, r.text);
    big_done(&b);
}

TEST(replaced_sidecar_rereads_only_its_module)
{
    big b;
    disc_run r;

    big_setup(&b);
    /* Renamed over (new inode). */
    replace_file(path_in(b.dir, "lua_a.json"),
                 "{\"version\": \"1.1.0\", \"provides\": {\"codec\": "
                 "\"encode\", \"extra\": \"encode\"}}", 60);
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "lua_a");
    assert_module(disc_get(&r, "lua_a"), MH_KIND_LUA, "sidecar", "1.1.0",
                  "codec=encode,extra=encode");
    ASSERT_SAME_TEXT(without(b.first.text, "lua_a"), without(r.text, "lua_a"));

    /* Rewritten in place (same inode, new size and age). */
    file_write(path_in(b.dir, "lua_b.json"),
               "{\"version\": \"2.0.1\", \"description\": \"rewritten\"}");
    disc_set_age(path_in(b.dir, "lua_b.json"), 30);
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "lua_b");
    assert_module(disc_get(&r, "lua_b"), MH_KIND_LUA, "sidecar", "2.0.1", "");
    ASSERT_EQ_STR(disc_get(&r, "lua_b")->description, "rewritten");

    disc_discover(b.host, &b.lc, &r);
    ASSERT_READ(&r, "");
    big_done(&b);
}

TEST(added_or_removed_sidecar_rereads_module)
{
    big b;
    disc_run r;

    big_setup(&b);
    /* lua_c had none. */
    const char *side = path_in(b.dir, "lua_c.json");
    file_write(side, "{\"version\": \"3.0.0\", \"provides\": {\"codec\": "
                     "\"encode\"}}");
    disc_set_age(side, 60);
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "lua_c");
    assert_module(disc_get(&r, "lua_c"), MH_KIND_LUA, "sidecar", "3.0.0",
                  "codec=encode");

    /* A native plugin with a note gets a sidecar: read again (its
     * identity changed), and the note still wins. */
    const char *pside = path_in(b.dir, "p001.json");
    file_write(pside, "{\"version\": \"9.9.9\"}");
    disc_set_age(pside, 60);
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "p001");
    assert_module(disc_get(&r, "p001"), MH_KIND_NATIVE, "elf-note", "1.0.0",
                  "");

    /* And lua_c loses its sidecar again. */
    ASSERT_EQ_INT(unlink(side), 0);
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS);
    ASSERT_READ(&r, "lua_c");
    assert_module(disc_get(&r, "lua_c"), MH_KIND_LUA, "none", NULL, "");
    ASSERT_SAME_TEXT(without(b.first.text, "p001"), without(r.text, "p001"));
    big_done(&b);
}

TEST(deleted_plugin_disappears_added_one_is_read)
{
    big b;
    disc_run r;

    big_setup(&b);
    ASSERT_EQ_INT(unlink(path_in(b.dir, "p050.so")), 0);
    ASSERT_EQ_INT(unlink(path_in(b.dir, "lua_b.lua")), 0); /* json stays */
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS - 2);
    ASSERT_READ(&r, "");
    ASSERT_NULL(disc_find(&r, "p050"));
    ASSERT_NULL(disc_find(&r, "lua_b"));
    ASSERT_SAME_TEXT(without(without(b.first.text, "p050"), "lua_b"), r.text);

    const char *p = fixture_copy("disc_codec", "plugins/p200.so");
    disc_set_age(p, 60);
    disc_discover(b.host, &b.lc, &r);
    ASSERT_RUN(&r, NMODS - 1);
    ASSERT_READ(&r, "p200");
    assert_module(disc_get(&r, "p200"), MH_KIND_NATIVE, "elf-note", "3.1.4",
                  CODEC_PROVIDES);
    big_done(&b);
}

/* A file changed less than 2 s before it was read may change again in the
 * same mtime tick unseen: it is read again on the next listing.  Whether
 * or not 2 s have passed by then, the second listing must read it (either
 * it is still that young, or its identity lost the "unsure" mark). */
TEST(file_changed_just_now_is_read_again_next_time)
{
    log_capture lc;
    disc_run r;
    const char *dir = tmp_mkdir("plugins");

    log_capture_init(&lc);
    fixture_copy("disc_codec", "plugins/old.so");
    file_write(path_in(dir, "side.lua"), disc_lua_source("s"));
    file_write(path_in(dir, "side.json"), "{\"version\": \"1.0.0\"}");
    disc_age_tree(dir, 60);
    fixture_copy("disc_codec", "plugins/young.so");
    disc_set_age(path_in(dir, "young.so"), 0);   /* mtime: now */
    disc_set_age(path_in(dir, "side.json"), 0);  /* a young sidecar too */
    mh_host *host = vhost(&lc, NULL, 0, dir);

    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 3);
    ASSERT_READ(&r, "old side young");
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 3);
    ASSERT_READ(&r, "side young");

    /* Once they are old, one more read, then none. */
    disc_set_age(path_in(dir, "young.so"), 60);
    disc_set_age(path_in(dir, "side.json"), 60);
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "side young");
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "");
    assert_module(disc_get(&r, "young"), MH_KIND_NATIVE, "elf-note", "3.1.4",
                  CODEC_PROVIDES);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* ----------------------------------------------------------- the index */

TEST(index_is_a_sqlite_file_in_the_cache_dir)
{
    log_capture lc;
    disc_run r;
    const char *dir = disc_plugin_dir("plugins", 4);
    const char *cache = tmp_path("my-cache");
    const char *db = index_path(cache);

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, cache, 0, dir);
    ASSERT_EQ_STR(mh_host_cache_dir(host), cache);
    ASSERT_FALSE(file_exists(db));
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 7);
    ASSERT_TRUE(file_exists(db));
    ASSERT_EQ_STR(sqlite3_cli("%s 'PRAGMA application_id; PRAGMA "
                              "user_version; PRAGMA integrity_check'",
                              sh_quote(db)),
                  str_fmt("%d\n%d\nok", MH_DX_APP_ID, MH_DX_FORMAT));
    /* No temporary file of its making left behind. */
    ASSERT_EQ_INT(tree_count(cache, ".tmp", NULL), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* What an index rebuild killed mid-way left (its temporary database and
 * journal) goes at the next listing of a host that writes the index --
 * not only after another rebuild, which may never come.  A young one (a
 * rebuild under way) stays. */
TEST(a_listing_sweeps_what_a_killed_rebuild_left)
{
    log_capture lc;
    disc_run r;
    const char *dir = disc_plugin_dir("plugins", 4);
    const char *db = index_path(NULL);
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r); /* the index, and the cache dir */
    ASSERT_RUN(&r, 7);
    mh_host_free(host);
    const char *old = str_fmt("%s.tmp-4242-0a1b2c3d4e5f", db);
    const char *old_j = str_fmt("%s-journal", old);
    const char *young = str_fmt("%s.tmp-4343-0a1b2c3d4e5f", db);
    file_write(old, "half a database");
    file_write(old_j, "its journal");
    file_write(young, "a rebuild under way");
    struct timespec ago[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    ASSERT_EQ_INT(utimensat(AT_FDCWD, old, ago, 0), 0);
    ASSERT_EQ_INT(utimensat(AT_FDCWD, old_j, ago, 0), 0);
    host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 7);
    ASSERT_READ(&r, ""); /* the index itself was kept */
    ASSERT_FALSE(file_exists(old));
    ASSERT_FALSE(file_exists(old_j));
    ASSERT_TRUE(file_exists(young));
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A finder ("dd:") with one module, xm, whose manifest read() imports
 * the module `broken` first (its init fails). */
static mh_host *dd_host;

static mh_status dd_open(mh_finder_ctx *cx, const char *entry, void **st)
{
    (void)cx;
    (void)entry;
    *st = NULL;
    return MH_OK;
}

static void dd_spec(mh_finder_ctx *cx, mh_finder_spec *spec)
{
    spec->kind = MH_KIND_LUA;
    spec->origin = cx->svc->intern(cx, "dd:xm");
    spec->key = "code";
    spec->meta_key = "meta";
}

static mh_status dd_find(mh_finder_ctx *cx, void *st, const char *name,
                         mh_finder_spec *spec)
{
    (void)st;
    if (strcmp(name, "xm") != 0)
        return MH_ENOTFOUND;
    dd_spec(cx, spec);
    return MH_OK;
}

static mh_status dd_list(mh_finder_ctx *cx, void *st, mh_finder_list_fn fn,
                         void *ud)
{
    (void)st;
    mh_finder_spec spec = {0};
    dd_spec(cx, &spec);
    fn(ud, "xm", &spec);
    return MH_OK;
}

static mh_status dd_read(mh_finder_ctx *cx, void *st, const char *key,
                         mh_finder_blob *out)
{
    (void)st;
    const char *text = "return {}";
    if (strcmp(key, "meta") == 0) {
        mh_module *m = NULL;
        mh_import(dd_host, "broken", &m, NULL); /* fails: recorded */
        text = "{\"name\": \"xm\", \"version\": \"1.0\"}";
    }
    size_t n = strlen(text);
    out->data = cx->svc->alloc(cx, n);
    memcpy(out->data, text, n);
    out->len = out->size = n;
    return MH_OK;
}

static void dd_close(mh_finder_ctx *cx, void *st)
{
    (void)cx;
    (void)st;
}

static const mh_finder_class dd_class = {
    MH_FINDER_CLASS_INIT, .name = "dd", .scheme = "dd", .open = dd_open,
    .find = dd_find, .list = dd_list, .read = dd_read, .close = dd_close};

static int count_broken(void *ud, const mh_failure *f)
{
    *(int *)ud += strcmp(f->name, "broken") == 0;
    return 0;
}

static int ignore_meta(void *ud, const mh_module_meta *m)
{
    (void)ud;
    (void)m;
    return 0;
}

TEST(a_failure_met_while_discovering_is_recorded)
{
    /* mh_discover held the index's write transaction while it read
     * metadata through finders: an import failing meanwhile (here from
     * the finder's own read()) waited out the busy timeout (5 s) and its
     * failure was not recorded, though the trace said it was.  The rows
     * are now written once everything is read. */
    fixture_copy("init_fails", "E/broken.so"); /* just now: "unsure" */
    log_capture lc;
    log_capture_init(&lc);
    dd_host = vhost(&lc, NULL, 0, "dd:x", tmp_path("E"));
    ASSERT_STATUS(mh_host_add_path_hook(dd_host, &dd_class, NULL,
                                        MH_CHAIN_FIRST, NULL, ERR), MH_OK);
    ASSERT_STATUS(mh_discover(dd_host, ignore_meta, NULL, ERR), MH_OK);
    int broken = 0;
    ASSERT_STATUS(mh_host_failures(dd_host, count_broken, &broken, ERR),
                  MH_OK);
    if (broken != 1)
        FAIL("the failure of 'broken' was not recorded; log:\n%s",
             log_capture_dump(&lc));
    ASSERT_LOG(&lc, MH_LOG_TRACE, "recorded the failure of 'broken'");
    mh_host_free(dd_host);
    log_capture_free(&lc);
}

/* mh_host_failures callback: the status recorded for module "df", or -1. */
static int df_status(void *ud, const mh_failure *f)
{
    if (strcmp(f->name, "df") == 0)
        *(int *)ud = (int)f->status;
    return 0;
}

/* mh_discover callback: the status the listing gives module "df". */
static int df_listed(void *ud, const mh_module_meta *m)
{
    if (strcmp(m->name, "df") == 0)
        *(int *)ud = (int)m->status;
    return 0;
}

TEST(a_load_failure_of_a_module_just_written_outlasts_a_listing)
{
    /* A plugin whose descriptor is a function fails to load (MH_EFORMAT)
     * though its metadata reads fine.  Written just now, its identity is
     * "unsure", so a listing reads its metadata again -- and replaced the
     * failure the import had recorded with a row saying all was well:
     * `doctor` showed nothing, and it was offered again.  Only ELOAD,
     * ENODESC and EINIT were kept; any failure met loading is now. */
    fixture_copy("desc_func", "E/df.so");
    for (int round = 0; round < 2; round++) {
        mh_host *host = host_new_opts(&(host_opts){0}, tmp_path("E"));
        mh_module *m = NULL;
        if (round == 0)
            ASSERT_STATUS(mh_import(host, "df", &m, ERR), MH_EFORMAT);
        int listed = -1;
        ASSERT_STATUS(mh_discover(host, df_listed, &listed, ERR), MH_OK);
        if (listed != MH_EFORMAT) /* skipped, not offered again */
            FAIL("round %d: the listing gives 'df' %s", round,
                 listed < 0 ? "nothing" : mh_status_name(listed));
        int st = -1;
        ASSERT_STATUS(mh_host_failures(host, df_status, &st, ERR), MH_OK);
        if (st != MH_EFORMAT)
            FAIL("round %d: the load failure of 'df' is %s after a listing",
                 round, st < 0 ? "gone" : mh_status_name(st));
        mh_host_free(host);
    }
}

/* mh_host_failures callback: how many are for module "m". */
static int count_m(void *ud, const mh_failure *f)
{
    *(int *)ud += strcmp(f->name, "m") == 0;
    return 0;
}

TEST(a_lua_module_replaced_while_it_fails_is_not_blamed)
{
    /* A failure is recorded against the file the import opened.  A Lua
     * module's was looked up by its path when the failure was recorded,
     * so a fixed version renamed into place meanwhile (a deploy; here the
     * old chunk itself does it) was taken for the failed one: listed as
     * failed, and offered by no entry point, though it imports fine. */
    const char *path = tmp_path("E/m.lua"), *fixed = tmp_path("fixed.lua");
    tmp_mkdir("E");
    file_write(path, str_fmt("os.rename(\"%s\", \"%s\")\n"
                             "error(\"the old version fails\")\n",
                             fixed, path));
    file_write(fixed, "return {f = function() return \"fixed\" end}\n");
    long long old = (long long)time(NULL) - 60; /* settled: no "unsure" */
    file_set_mtime(path, old);
    file_set_mtime(fixed, old);

    mh_host *host = host_new_opts(&(host_opts){0}, tmp_path("E"));
    mh_module *m = NULL;
    ASSERT_STATUS(mh_import(host, "m", &m, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "the old version fails");
    mh_host_free(host);

    host = host_new_opts(&(host_opts){0}, tmp_path("E"));
    ASSERT_STATUS(mh_discover(host, ignore_meta, NULL, ERR), MH_OK);
    int failed = 0;
    ASSERT_STATUS(mh_host_failures(host, count_m, &failed, ERR), MH_OK);
    ASSERT_EQ_INT(failed, 0);
    ASSERT_STATUS(mh_import(host, "m", &m, ERR), MH_OK);
    ASSERT_EQ_STR(call_ok(m, "f", NULL), "\"fixed\"");
    mh_host_free(host);
}

/* Discover the small directory, damage the index with `damage`, and check
 * that the next listing is complete and correct, silent, reads everything,
 * and leaves a valid index behind (the one after reads nothing). */
static void rebuilt_after(void (*damage)(const char *db))
{
    log_capture lc;
    disc_run r1, r;
    const char *dir = disc_plugin_dir("plugins", 20);
    const char *db = index_path(NULL);

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r1);
    ASSERT_RUN(&r1, 23);
    ASSERT_TRUE(file_exists(db));

    damage(db);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 23);                  /* no warning, no error */
    ASSERT_READ_ALL(&r);
    ASSERT_SAME_TEXT(r1.text, r.text);
    if (!file_exists(db))
        FAIL("no index in the cache after the listing that met the damaged "
             "one; log:\n%s", r.log);
    ASSERT_EQ_STR(sqlite3_cli("%s 'PRAGMA application_id; PRAGMA "
                              "user_version; PRAGMA integrity_check'",
                              sh_quote(db)),
                  str_fmt("%d\n%d\nok", MH_DX_APP_ID, MH_DX_FORMAT));
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 23);
    ASSERT_READ(&r, "");
    ASSERT_SAME_TEXT(r1.text, r.text);
    mh_host_free(host);

    /* A new host trusts the rebuilt file too. */
    host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 23);
    ASSERT_READ(&r, "");
    mh_host_free(host);
    log_capture_free(&lc);
}

static void damage_garbage(const char *db)
{
    file_scribble(db, 0, 7);
}

static void damage_truncate(const char *db)
{
    file_truncate_to(db, 5);
}

static void damage_empty(const char *db)
{
    file_truncate_to(db, 0);
}

static void damage_tail(const char *db)
{
    /* The header survives; the pages after it do not. */
    file_scribble(db, 100, 11);
}

static void damage_pages(const char *db)
{
    /* The first page (header and schema) survives, the table does not. */
    file_scribble(db, db_page_size(db), 13);
}

/* A row that lies: p000's manifest replaced, its identity left as it is. */
static const char TAMPER[] =
    "UPDATE modules SET manifest = '{\"version\":\"666.0.0\"}' "
    "WHERE name = 'p000';";

static void damage_foreign_app(const char *db)
{
    db_exec(db, str_fmt("%s PRAGMA application_id = 1234;", TAMPER));
}

static void damage_other_format(const char *db)
{
    db_exec(db, str_fmt("%s PRAGMA user_version = %d;", TAMPER,
                        MH_DX_FORMAT + 1));
}

static void damage_no_table(const char *db)
{
    db_exec(db, "DROP TABLE modules;");
}

/* The table made again as another declares it (its rows kept): rows were
 * written by position and read by name, or a constraint ran at each
 * write (one can take for ever). */
static void redeclare(const char *db, const char *columns)
{
    db_exec(db, str_fmt("%s CREATE TABLE m2(%s); INSERT INTO m2(origin, "
                        "identity, name, source, manifest, status, reason, "
                        "recorded) SELECT origin, identity, name, source, "
                        "manifest, status, reason, recorded FROM modules; "
                        "DROP TABLE modules; ALTER TABLE m2 RENAME TO "
                        "modules;", TAMPER, columns));
}

static void damage_columns_reordered(const char *db)
{
    redeclare(db, "origin TEXT PRIMARY KEY NOT NULL, identity TEXT NOT NULL, "
                  "name TEXT NOT NULL, source TEXT NOT NULL, reason TEXT, "
                  "status INTEGER NOT NULL, manifest TEXT, recorded INTEGER "
                  "NOT NULL");
}

static void damage_check_constraint(const char *db)
{
    redeclare(db, "origin TEXT PRIMARY KEY NOT NULL, identity TEXT NOT NULL, "
                  "name TEXT NOT NULL, source TEXT NOT NULL, manifest TEXT, "
                  "status INTEGER NOT NULL, reason TEXT, recorded INTEGER "
                  "NOT NULL CHECK (recorded >= 0)");
}

static void damage_expression_index(const char *db)
{
    db_exec(db, str_fmt("%s CREATE INDEX mx ON modules(length(manifest));",
                        TAMPER));
}

TEST(index_with_its_columns_in_another_order_is_rebuilt)
{
    rebuilt_after(damage_columns_reordered);
}

TEST(index_with_a_check_constraint_is_rebuilt)
{
    rebuilt_after(damage_check_constraint);
}

TEST(index_with_an_index_of_its_own_is_rebuilt)
{
    rebuilt_after(damage_expression_index);
}

TEST(garbage_index_is_rebuilt_silently)
{
    rebuilt_after(damage_garbage);
}

TEST(truncated_index_is_rebuilt_silently)
{
    rebuilt_after(damage_truncate);
}

TEST(empty_index_is_rebuilt_silently)
{
    rebuilt_after(damage_empty);
}

TEST(index_damaged_after_its_header_is_rebuilt_silently)
{
    rebuilt_after(damage_tail);
}

TEST(index_with_damaged_table_pages_is_rebuilt_silently)
{
    rebuilt_after(damage_pages);
}

/* A log hook that, when the index is found damaged while in use, puts a
 * whole copy in its place (as another host that rebuilt it would), once;
 * every message also goes to lc. */
typedef struct swap_on_damage {
    log_capture *lc;
    const char *db, *whole;
    int swapped;
} swap_on_damage;

static void swap_on_damage_log(void *ud, mh_log_level level, const char *msg)
{
    swap_on_damage *s = ud;
    log_capture_fn(s->lc, level, msg);
    if (!s->swapped && strstr(msg, "discovery index ") &&
        strstr(msg, "malformed")) {
        s->swapped = rename(s->whole, s->db) == 0 ? 1 : -1;
    }
}

/* An index found damaged while a listing reads it is rebuilt when the
 * listing closes it (above) -- unless it reads whole again by then:
 * another host rebuilt it meanwhile, and that one is kept, not rebuilt
 * over. */
TEST(index_damaged_in_use_but_whole_at_close_is_kept)
{
    log_capture lc;
    disc_run r1, r;
    const char *dir = disc_plugin_dir("plugins", 20);
    const char *db = index_path(NULL);
    const char *whole = tmp_path("whole.db");

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r1);
    ASSERT_RUN(&r1, 23);
    mh_host_free(host);
    file_copy(db, whole);
    struct stat want;
    ASSERT_EQ_INT(stat(whole, &want), 0);
    damage_pages(db);

    swap_on_damage sw = {&lc, db, whole, 0};
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH |
                MH_CONFIG_VERBOSE;
    cfg.path = dir;
    cfg.cache_dir = tmp_path("cache");
    cfg.log = swap_on_damage_log;
    cfg.log_ud = &sw;
    host = host_new_cfg(&cfg);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 23);
    ASSERT_SAME_TEXT(r1.text, r.text);
    if (sw.swapped != 1)
        FAIL("the listing never found the index damaged (or the swap "
             "failed: %d); log:\n%s", sw.swapped, r.log);
    struct stat got;
    ASSERT_EQ_INT(stat(db, &got), 0);
    /* A rebuild makes a new file (a temporary one renamed into place:
     * another inode, whatever was freed) and traces it.  The kept one may
     * have been written to: the listing records what it read (its mtime
     * then moves, which a loaded machine showed). */
    if (got.st_ino != want.st_ino || strstr(r.log, "discovery index: new"))
        FAIL("the index that was whole again at close was rebuilt over "
             "(inode %llu, the whole one's %llu); log:\n%s",
             (unsigned long long)got.st_ino,
             (unsigned long long)want.st_ino, r.log);
    /* ... and used: the next listing reads nothing. */
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 23);
    ASSERT_READ(&r, "");
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(index_of_another_application_is_ignored_and_rebuilt)
{
    rebuilt_after(damage_foreign_app);
}

TEST(index_of_another_format_version_is_ignored_and_rebuilt)
{
    rebuilt_after(damage_other_format);
}

TEST(index_without_its_table_is_rebuilt_silently)
{
    rebuilt_after(damage_no_table);
}

/* The control for the two tests above: the same lying row in an index of
 * this format IS used (rows whose identity matches are trusted), so it is
 * the format check that keeps foreign rows out. */
TEST(index_rows_of_this_format_are_trusted)
{
    log_capture lc;
    disc_run r;
    const char *dir = disc_plugin_dir("plugins", 4);

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 7);
    db_exec(index_path(NULL), TAMPER);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 7);
    ASSERT_READ(&r, "");
    ASSERT_EQ_STR(disc_get(&r, "p000")->version, "666.0.0");
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(index_path_that_is_not_a_file_is_not_used)
{
    log_capture lc;
    disc_run r1, r;
    const char *dir = disc_plugin_dir("plugins", 4);
    const char *cache = tmp_mkdir("cache");
    const char *victim = tmp_path("victim.db");

    ASSERT_EQ_INT(chmod(cache, 0700), 0);
    log_capture_init(&lc);
    /* A symbolic link is not followed: nothing is made where it points. */
    ASSERT_EQ_INT(symlink(victim, index_path(NULL)), 0);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r1);
    ASSERT_RUN(&r1, 7);
    ASSERT_READ_ALL(&r1);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 7);
    ASSERT_READ_ALL(&r);
    ASSERT_SAME_TEXT(r1.text, r.text);
    ASSERT_FALSE(file_exists(victim));

    /* A directory neither. */
    ASSERT_EQ_INT(unlink(index_path(NULL)), 0);
    mkdir_p(index_path(NULL));
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 7);
    ASSERT_READ_ALL(&r);
    ASSERT_SAME_TEXT(r1.text, r.text);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(no_index_flag_reads_everything_every_time)
{
    log_capture lc;
    disc_run r1, r;
    disc_fails f;
    size_t n = 99;
    mh_module *mod;
    const char *dir = disc_plugin_dir("plugins", 20);
    fixture_copy("disc_refuse", "plugins/refuse.so");
    disc_age_tree(dir, 60);

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, MH_CONFIG_NO_INDEX, dir);
    ASSERT_STATUS(mh_import(host, "refuse", &mod, ERR), MH_EINIT);
    disc_discover(host, &lc, &r1);
    ASSERT_RUN(&r1, 24);
    ASSERT_READ_ALL(&r1);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 24);
    ASSERT_READ_ALL(&r);
    ASSERT_SAME_TEXT(r1.text, r.text);
    ASSERT_FALSE(file_exists(index_path(NULL)));
    /* Nothing recorded either: discovery cannot know init refuses. */
    ASSERT_EQ_INT(disc_get(&r, "refuse")->status, MH_OK);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_OK);
    ASSERT_EQ_INT(f.n, 0);
    ASSERT_STATUS(mh_host_clear_failures(host, NULL, &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 0);
    ASSERT_FALSE(file_exists(index_path(NULL)));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(cache_dir_writable_by_others_is_not_used)
{
    log_capture lc;
    disc_run r1, r;
    const char *dir = disc_plugin_dir("plugins", 20);
    const char *cache = tmp_mkdir("shared-cache");

    ASSERT_EQ_INT(chmod(cache, 0777), 0); /* not sticky either */
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, cache, 0, dir);
    disc_discover(host, &lc, &r1);
    ASSERT_EQ_INT(r1.status, MH_OK);
    ASSERT_EQ_INT(r1.n, 23);
    ASSERT_READ_ALL(&r1);
    assert_module(disc_get(&r1, "p000"), MH_KIND_NATIVE, "elf-note", "3.1.4",
                  CODEC_PROVIDES);
    disc_discover(host, &lc, &r);
    ASSERT_EQ_INT(r.status, MH_OK);
    ASSERT_READ_ALL(&r);
    ASSERT_SAME_TEXT(r1.text, r.text);
    ASSERT_FALSE(file_exists(index_path(cache)));
    ASSERT_EQ_INT(dir_count(cache), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* ------------------------------------------------------------ failures */

/* good, plain, and four that fail: not ELF, a damaged note, an init that
 * refuses (known only once imported), a note for plugin ABI 2. */
static const char *broken_dir(void)
{
    const char *dir = tmp_mkdir("plugins");
    fixture_copy("disc_codec", "plugins/good.so");
    fixture_copy("disc_plain", "plugins/plain.so");
    file_write(path_in(dir, "bad.so"), "this is not a shared object\n");
    disc_damage_note(fixture_copy("disc_codec", "plugins/badnote.so"));
    fixture_copy("disc_refuse", "plugins/refuse.so");
    fixture_copy("disc_abi2", "plugins/abi2.so");
    disc_age_tree(dir, 60);
    return dir;
}

static void import_refused(mh_host *host)
{
    mh_module *mod = (mh_module *)1;
    ASSERT_STATUS(mh_import(host, "refuse", &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "disc_refuse says no on purpose");
    ASSERT_NULL(mod);
}

static void assert_failed(const disc_run *r, const char *dir,
                          const char *name, mh_status status,
                          const char *fault)
{
    const disc_mod *d = disc_get(r, name);
    if (d->status != status)
        FAIL("%s: status %s, expected %s: %s", name,
             mh_status_name(d->status), mh_status_name(status), d->line);
    if (!d->reason || !strstr(d->reason, path_in(dir, str_fmt("%s.so",
                                                                name))) ||
        !strstr(d->reason, fault))
        FAIL("%s: the reason should name %s and say \"%s\": %s", name,
             path_in(dir, str_fmt("%s.so", name)), fault,
             d->reason ? d->reason : "(null)");
}

TEST(failures_are_reported_with_reasons_and_recorded)
{
    log_capture lc;
    disc_run r;
    disc_fails f;
    disc_eps eps;
    const char *dir = broken_dir();
    long long t0 = (long long)time(NULL);

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    import_refused(host);
    disc_discover(host, &lc, &r);
    ASSERT_EQ_INT(r.status, MH_OK);
    ASSERT_EQ_INT(r.n, 6);
    ASSERT_NULL(r.unordered);
    assert_failed(&r, dir, "bad", MH_EFORMAT, "not an ELF");
    assert_failed(&r, dir, "badnote", MH_EFORMAT, "note");
    assert_failed(&r, dir, "refuse", MH_EINIT,
                  "disc_refuse says no on purpose");
    assert_failed(&r, dir, "abi2", MH_EABI, "ABI 2");
    assert_module(disc_get(&r, "good"), MH_KIND_NATIVE, "elf-note", "3.1.4",
                  CODEC_PROVIDES);
    ASSERT_NULL(disc_get(&r, "good")->reason);
    assert_module(disc_get(&r, "plain"), MH_KIND_NATIVE, "elf-note", "1.0.0",
                  "");

    /* The same four, with the same reasons, in the index. */
    disc_failures(host, &f);
    long long t1 = (long long)time(NULL);
    ASSERT_EQ_INT(f.status, MH_OK);
    if (f.n != 4)
        FAIL("%zu failures recorded, expected 4:\n%s", f.n, f.text);
    static const char *const names[] = {"abi2", "bad", "badnote", "refuse"};
    for (size_t i = 0; i < 4; i++) {
        const disc_fail *x = &f.v[i];
        const disc_mod *d = disc_get(&r, names[i]);
        ASSERT_EQ_STR(x->name, names[i]);
        ASSERT_EQ_STR(x->origin, path_in(dir, str_fmt("%s.so", names[i])));
        ASSERT_EQ_STR(x->reason, d->reason);
        ASSERT_EQ_INT(x->status, d->status);
        if (x->when < t0 || x->when > t1)
            FAIL("%s recorded at %lld, outside [%lld, %lld]", x->name,
                 (long long)x->when, t0, t1);
    }

    /* Entry points skip them: refuse and abi2 claim "codec" too. */
    disc_entry_points(host, "codec", &eps, NULL, NULL);
    ASSERT_EQ_INT(eps.status, MH_OK);
    ASSERT_EQ_STR(eps.text, str_fmt("good=call:encode (%s)\n",
                                    path_in(dir, "good.so")));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(a_gone_failure_that_cannot_be_deleted_marks_the_index_damaged)
{
    /* Listing failures forgets those of files gone.  When the delete
     * fails on a damaged key index, the index is rebuilt: the failure is
     * told by the delete itself (SQLite also rolls the transaction back,
     * so the COMMIT after it fails too, which told it before). */
    log_capture lc;
    disc_run r;
    disc_fails f;
    const char *dir = broken_dir();
    const char *db = index_path(NULL);

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.n, 3); /* bad, badnote, abi2 */
    mh_host_free(host);
    ASSERT_EQ_INT(unlink(path_in(dir, "bad.so")), 0);

    /* Only the origin key's index: the table still reads whole. */
    long page = atol(db_exec(db, "SELECT rootpage FROM sqlite_schema WHERE "
                                 "name = 'sqlite_autoindex_modules_1';"));
    size_t psize = db_page_size(db), len = 0;
    ASSERT_TRUE(page > 1);
    unsigned char *bytes = file_bytes(db, &len);
    ASSERT_TRUE((size_t)page * psize <= len);
    for (size_t i = 0; i < psize; i++)
        bytes[((size_t)page - 1) * psize + i] = (unsigned char)(i * 37 + 11);
    file_write_bytes(db, bytes, len);
    free(bytes);
    struct stat before, after;
    ASSERT_EQ_INT(stat(db, &before), 0);

    host = vhost(&lc, NULL, 0, dir);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_OK);
    if (f.n != 2)
        FAIL("%zu failures listed, expected 2 (bad.so is gone):\n%s", f.n,
             f.text);
    mh_host_free(host);
    if (stat(db, &after) == 0 && after.st_ino == before.st_ino)
        FAIL("the index whose delete failed was kept as it was; log:\n%s",
             log_capture_dump(&lc));
    log_capture_free(&lc);
}

/* An init that refused for a passing reason (a service down, a file not
 * there yet), then loads: the failure recorded for it is forgotten, so
 * discovery stops skipping it -- in this host (it was listed failed,
 * loaded and working, and left out of the entry points) and in the next
 * (for good, until someone cleared it).  A host that only listed the
 * failure, recorded elsewhere, forgets it as well when it loads the
 * module. */
TEST(a_failure_that_passed_is_forgotten_when_the_module_loads)
{
    log_capture lc;
    disc_fails f;
    disc_eps eps;
    const char *dir = broken_dir();
    const char *refuse = path_in(dir, "refuse.so");

    log_capture_init(&lc);
    env_unset("MH_FIXTURE_REFUSE_OK");
    mh_host *host = vhost(&lc, NULL, 0, dir);
    import_refused(host);
    disc_run r;
    disc_discover(host, NULL, &r); /* records the others' failures */
    disc_failures(host, &f);
    ASSERT_NOT_NULL(disc_fail_find(&f, "refuse"));
    ASSERT_NOT_NULL(disc_fail_find(&f, "bad"));
    env_set("MH_FIXTURE_REFUSE_OK", "1");
    mh_module *mod = import_ok(host, "refuse");
    ASSERT_EQ_STR(mh_module_origin(mod), refuse);
    ASSERT_LOG(&lc, MH_LOG_TRACE, "the failure recorded for it is forgotten");
    disc_failures(host, &f);
    if (disc_fail_find(&f, "refuse"))
        FAIL("still recorded after it loaded:\n%s", f.text);
    ASSERT_NOT_NULL(disc_fail_find(&f, "bad")); /* the others stay */
    disc_entry_points(host, "codec", &eps, NULL, NULL);
    ASSERT_CONTAINS(eps.text, str_fmt("refuse=call:encode (%s)\n", refuse));
    mh_host_free(host);

    host = vhost(NULL, NULL, 0, dir);
    disc_entry_points(host, "codec", &eps, NULL, NULL);
    ASSERT_CONTAINS(eps.text, str_fmt("refuse=call:encode (%s)\n", refuse));
    mh_host_free(host);

    /* Recorded by one host; another that met it in a listing (and so
     * skipped it) loads it by name: forgotten too. */
    env_unset("MH_FIXTURE_REFUSE_OK");
    host = vhost(NULL, NULL, 0, dir);
    import_refused(host);
    mh_host_free(host);
    host = vhost(NULL, NULL, 0, dir);
    disc_entry_points(host, "codec", &eps, NULL, NULL);
    ASSERT_NOT_CONTAINS(eps.text, "refuse=");
    env_set("MH_FIXTURE_REFUSE_OK", "1");
    import_ok(host, "refuse");
    disc_failures(host, &f);
    ASSERT_NULL(disc_fail_find(&f, "refuse"));
    mh_host_free(host);
    env_unset("MH_FIXTURE_REFUSE_OK");
    log_capture_free(&lc);
}

TEST(failures_are_not_read_again_until_the_file_changes)
{
    log_capture lc;
    disc_run r1, r;
    disc_fails f;
    const char *dir = broken_dir();

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    import_refused(host);
    disc_discover(host, &lc, &r1);
    /* refuse's failure came from the import, with its identity. */
    ASSERT_READ(&r1, "abi2 bad badnote good plain");
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "");
    ASSERT_SAME_TEXT(r1.text, r.text);

    /* Touched: read again, and still broken. */
    disc_set_age(path_in(dir, "bad.so"), 30);
    disc_set_age(path_in(dir, "badnote.so"), 30);
    disc_set_age(path_in(dir, "abi2.so"), 30);
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "abi2 bad badnote");
    assert_failed(&r, dir, "bad", MH_EFORMAT, "not an ELF");
    assert_failed(&r, dir, "badnote", MH_EFORMAT, "note");
    assert_failed(&r, dir, "abi2", MH_EABI, "ABI 2");
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "");

    /* refuse touched: its metadata is fine, and discovery runs no code,
     * so it is back until an import fails again. */
    disc_set_age(path_in(dir, "refuse.so"), 30);
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "refuse");
    assert_module(disc_get(&r, "refuse"), MH_KIND_NATIVE, "elf-note", "0.9.0",
                  "codec=call:encode");
    import_refused(host);
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "");
    assert_failed(&r, dir, "refuse", MH_EINIT, "says no on purpose");

    /* bad.so fixed: read, fine, and no longer listed as a failure. */
    ASSERT_EQ_INT(unlink(path_in(dir, "bad.so")), 0);
    disc_set_age(fixture_copy("disc_plain", "plugins/bad.so"), 60);
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "bad");
    assert_module(disc_get(&r, "bad"), MH_KIND_NATIVE, "elf-note", "1.0.0",
                  "");
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_OK);
    ASSERT_NULL(disc_fail_find(&f, "bad"));
    ASSERT_EQ_INT(f.n, 3);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* The sqlite3 command holding a lock on the index at path until
 * index_unlock, taken by BEGIN `how`: EXCLUSIVE (readers get SQLITE_BUSY
 * meanwhile) or IMMEDIATE (writers do). */
static FILE *index_lock_by(const char *path, const char *how)
{
    const char *said = tmp_path(".locked");
    unlink(said);
    FILE *p = popen(str_fmt("sqlite3 -batch -init /dev/null %s >%s 2>&1",
                            sh_quote(path), sh_quote(said)), "w");
    ASSERT_NOT_NULL(p);
    fprintf(p, "BEGIN %s;\nSELECT count(*) FROM modules;\n"
            ".print locked\n", how);
    fflush(p);
    for (int i = 0; i < 1000; i++) {
        const char *t = file_read(said);
        if (t && strstr(t, "locked"))
            return p;
        usleep(10000);
    }
    FAIL("the sqlite3 command did not lock %s: %s", path,
         file_read(said) ? file_read(said) : "(no output)");
}

static FILE *index_lock(const char *path)
{
    return index_lock_by(path, "EXCLUSIVE");
}

static void index_unlock(FILE *p)
{
    fputs("COMMIT;\n", p);
    ASSERT_EQ_INT(pclose(p), 0);
}

TEST(clearing_failures_while_another_process_writes_says_try_again)
{
    /* Another process in a write transaction past the busy timeout: the
     * failures cannot be cleared now, which said MH_EIO ("cannot clear")
     * as for a damaged index, where the header promises MH_EAGAIN. */
    log_capture lc;
    disc_run r;
    const char *dir = broken_dir();
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    import_refused(host);
    disc_discover(host, &lc, &r);
    FILE *lock = index_lock_by(index_path(NULL), "IMMEDIATE");
    size_t n = 99;
    ASSERT_STATUS(mh_host_clear_failures(host, NULL, &n, ERR), MH_EAGAIN);
    ASSERT_EQ_INT(n, 0);
    index_unlock(lock);
    ASSERT_STATUS(mh_host_clear_failures(host, NULL, &n, ERR), MH_OK);
    ASSERT_TRUE(n > 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(index_locked_by_another_process_is_kept_with_its_failures)
{
    /* Locked past the busy timeout (5 s) is no damage: the listing goes on
     * without the index, failures say "try again", and the file -- with
     * the failures only an import could record -- is left as it was. */
    log_capture lc;
    disc_run r;
    disc_fails f;
    const char *dir = broken_dir();
    struct stat before, after;

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    import_refused(host);
    disc_discover(host, &lc, &r);
    ASSERT_EQ_INT(stat(index_path(NULL), &before), 0);

    FILE *lock = index_lock(index_path(NULL));
    disc_discover(host, &lc, &r);
    ASSERT_EQ_INT(r.status, MH_OK);
    ASSERT_EQ_INT(r.n, 6);
    assert_module(disc_get(&r, "good"), MH_KIND_NATIVE, "elf-note", "3.1.4",
                  CODEC_PROVIDES);
    ASSERT_LOG(&lc, MH_LOG_TRACE, "cannot be read now");
    /* said to whoever reads the listing: its failures are not shown */
    ASSERT_LOG(&lc, MH_LOG_WARN, "failures recorded there are not shown "
                                 "this time");
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_EAGAIN);
    ASSERT_CONTAINS(f.error, tmp_path("cache"));
    ASSERT_CONTAINS(f.error, "try again");
    index_unlock(lock);

    ASSERT_EQ_INT(stat(index_path(NULL), &after), 0);
    ASSERT_EQ_INT(after.st_ino, before.st_ino);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_OK);
    ASSERT_EQ_INT(f.n, 4);
    ASSERT_EQ_INT(disc_fail_find(&f, "refuse")->status, MH_EINIT);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(a_failure_that_passed_while_the_index_was_locked_is_forgotten_later)
{
    /* The load that shows a recorded failure passed does not wait for
     * another process's lock on the index to forget it: it was then never
     * forgotten, and discovery skipped, for good, a module that loads.
     * Now the host's next listing (or mh_host_failures) forgets it. */
    log_capture lc;
    disc_fails f;
    disc_eps eps;
    const char *dir = broken_dir();
    const char *refuse = path_in(dir, "refuse.so");

    log_capture_init(&lc);
    env_unset("MH_FIXTURE_REFUSE_OK");
    mh_host *host = vhost(&lc, NULL, 0, dir);
    import_refused(host);
    disc_failures(host, &f);
    ASSERT_NOT_NULL(disc_fail_find(&f, "refuse"));

    FILE *lock = index_lock(index_path(NULL));
    env_set("MH_FIXTURE_REFUSE_OK", "1");
    import_ok(host, "refuse");
    ASSERT_LOG(&lc, MH_LOG_TRACE, "the failure recorded for it is forgotten "
                                  "at the next listing");
    index_unlock(lock);
    /* Still recorded: another host sees it. */
    mh_host *other = vhost(NULL, NULL, 0, dir);
    disc_failures(other, &f);
    ASSERT_NOT_NULL(disc_fail_find(&f, "refuse"));
    mh_host_free(other);

    disc_entry_points(host, "codec", &eps, NULL, NULL);
    ASSERT_CONTAINS(eps.text, str_fmt("refuse=call:encode (%s)\n", refuse));
    ASSERT_LOG(&lc, MH_LOG_TRACE, "loaded while the index was locked: the "
                                  "failure recorded for it is forgotten now");
    other = vhost(NULL, NULL, 0, dir);
    disc_failures(other, &f);
    ASSERT_NULL(disc_fail_find(&f, "refuse"));
    ASSERT_NOT_NULL(disc_fail_find(&f, "bad")); /* the others stay */
    mh_host_free(other);
    mh_host_free(host);

    /* The same through mh_host_failures. */
    env_unset("MH_FIXTURE_REFUSE_OK");
    host = vhost(NULL, NULL, 0, dir);
    import_refused(host);
    lock = index_lock(index_path(NULL));
    env_set("MH_FIXTURE_REFUSE_OK", "1");
    import_ok(host, "refuse");
    index_unlock(lock);
    disc_failures(host, &f);
    ASSERT_NULL(disc_fail_find(&f, "refuse"));
    mh_host_free(host);
    env_unset("MH_FIXTURE_REFUSE_OK");
    log_capture_free(&lc);
}

TEST(a_failure_recorded_after_the_pending_load_is_kept)
{
    /* The load whose cleanup waits for the lock is at T; a failure of the
     * same file recorded after T -- another process's, which met it
     * failing again -- is the newer verdict, and this host's later
     * listing must not delete it with the old one. */
    disc_fails f;
    const char *dir = broken_dir();

    env_unset("MH_FIXTURE_REFUSE_OK");
    mh_host *host = vhost(NULL, NULL, 0, dir);
    import_refused(host);
    FILE *lock = index_lock(index_path(NULL));
    env_set("MH_FIXTURE_REFUSE_OK", "1");
    import_ok(host, "refuse"); /* its cleanup pending */
    index_unlock(lock);
    sleep(2); /* the index records whole seconds */
    env_unset("MH_FIXTURE_REFUSE_OK");
    mh_host *other = vhost(NULL, NULL, 0, dir);
    import_refused(other); /* recorded again, after the load */
    mh_host_free(other);
    disc_failures(host, &f);
    const disc_fail *kept = disc_fail_find(&f, "refuse");
    if (!kept)
        FAIL("the failure recorded after the load was deleted:\n%s",
             f.text);
    ASSERT_EQ_INT(kept->status, MH_EINIT);
    mh_host_free(host);
    env_unset("MH_FIXTURE_REFUSE_OK");
}

/* The log hook of the cases below: once a trace saying `at` is seen (the
 * index opened, its rows not read yet), another process locks the
 * index. */
struct lock_at {
    log_capture *lc;
    const char *at;
    FILE *lock;
};

static void lock_at_log(void *ud, mh_log_level level, const char *msg)
{
    struct lock_at *l = ud;
    log_capture_fn(l->lc, level, msg);
    if (level == MH_LOG_TRACE && !l->lock && strstr(msg, l->at))
        l->lock = index_lock(index_path(NULL));
}

/* broken_dir() with its failures recorded, and a verbose host of it whose
 * log goes through l (lock_at_log). */
static mh_host *host_locking_at(struct lock_at *l, const char *dir)
{
    disc_run r;
    mh_host *host = vhost(l->lc, NULL, 0, dir);
    import_refused(host);
    disc_discover(host, l->lc, &r);
    mh_host_free(host);
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH |
                MH_CONFIG_VERBOSE;
    cfg.path = dir;
    cfg.cache_dir = tmp_path("cache");
    cfg.log = lock_at_log;
    cfg.log_ud = l;
    return host_new_cfg(&cfg);
}

TEST(index_locked_after_its_open_is_said_by_a_listing)
{
    /* Locked between the open and the read of its rows, the index was
     * passed over without a word by a listing, so modules recorded as
     * failing were listed as fine, as if nothing were recorded. */
    log_capture lc;
    disc_run r;
    log_capture_init(&lc);
    struct lock_at l = {&lc, "reading what the discovery index in", NULL};
    mh_host *host = host_locking_at(&l, broken_dir());
    disc_discover(host, NULL, &r);
    if (!l.lock)
        FAIL("the read of the index was never traced: no lock taken");
    ASSERT_EQ_INT(r.status, MH_OK);
    ASSERT_LOG(&lc, MH_LOG_WARN, "failures recorded there are not shown "
                                 "this time");
    index_unlock(l.lock);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(index_locked_after_its_open_says_try_again_for_failures)
{
    /* Locked between the open and the read of its rows (past the busy
     * timeout), the index made mh_host_failures MH_EIO, "could not be
     * read; it will be rebuilt" -- neither true: nothing is wrong with it,
     * and it is kept. */
    log_capture lc;
    disc_fails f;
    struct stat before, after;

    log_capture_init(&lc);
    struct lock_at l = {&lc, "reading the failures recorded", NULL};
    mh_host *host = host_locking_at(&l, broken_dir());
    ASSERT_EQ_INT(stat(index_path(NULL), &before), 0);
    disc_failures(host, &f);
    if (!l.lock)
        FAIL("the read of the failures was never traced: no lock taken");
    ASSERT_EQ_INT(f.status, MH_EAGAIN);
    ASSERT_CONTAINS(f.error, tmp_path("cache"));
    ASSERT_CONTAINS(f.error, "try again");
    ASSERT_NOT_CONTAINS(f.error, "rebuilt");
    index_unlock(l.lock);

    ASSERT_EQ_INT(stat(index_path(NULL), &after), 0);
    ASSERT_EQ_INT(after.st_ino, before.st_ino);
    l.lock = (FILE *)1; /* no lock this time */
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_OK);
    ASSERT_EQ_INT(f.n, 4);
    ASSERT_EQ_INT(disc_fail_find(&f, "refuse")->status, MH_EINIT);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(failure_is_recorded_against_the_file_that_failed)
{
    /* A new version renamed into place while the old one's init ran: the
     * failure is the old file's, and the new one at the path is read and
     * offered, not skipped until it changes. */
    log_capture lc;
    disc_run r;
    disc_fails f;
    const char *dir = tmp_mkdir("plugins");
    const char *dst = fixture_copy("disc_refuse", "plugins/codec.so");
    tmp_mkdir("staging");
    const char *src = fixture_copy("disc_codec", "staging/codec.so");
    disc_age_tree(dir, 60);
    disc_set_age(src, 30);

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    ASSERT_EQ_INT(setenv("MH_FIXTURE_SWAP_SRC", src, 1), 0);
    ASSERT_EQ_INT(setenv("MH_FIXTURE_SWAP_DST", dst, 1), 0);
    mh_module *mod;
    ASSERT_STATUS(mh_import(host, "codec", &mod, ERR), MH_EINIT);
    unsetenv("MH_FIXTURE_SWAP_SRC");
    unsetenv("MH_FIXTURE_SWAP_DST");
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "codec");
    assert_module(disc_get(&r, "codec"), MH_KIND_NATIVE, "elf-note", "3.1.4",
                  CODEC_PROVIDES);
    disc_failures(host, &f);
    ASSERT_NULL(disc_fail_find(&f, "codec"));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(clearing_failures_makes_discovery_read_again)
{
    log_capture lc;
    disc_run r;
    disc_fails f;
    size_t n = 99;
    const char *dir = broken_dir();

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    import_refused(host);
    disc_discover(host, &lc, &r);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.n, 4);

    /* One. */
    ASSERT_STATUS(mh_host_clear_failures(host, "bad", &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 1);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.n, 3);
    ASSERT_NULL(disc_fail_find(&f, "bad"));
    n = 99;
    ASSERT_STATUS(mh_host_clear_failures(host, "good", &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 0); /* no failure of its own */
    n = 99;
    ASSERT_STATUS(mh_host_clear_failures(host, "nosuch", &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 0);
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "bad");
    assert_failed(&r, dir, "bad", MH_EFORMAT, "not an ELF"); /* still */
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.n, 4);
    ASSERT_NOT_NULL(disc_fail_find(&f, "bad"));

    /* abi2's is this host's verdict on a manifest that reads fine, made
     * at every listing: nothing recorded to clear, listed while it
     * stands. */
    n = 99;
    ASSERT_STATUS(mh_host_clear_failures(host, "abi2", &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 0);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.n, 4);
    ASSERT_EQ_INT(disc_fail_find(&f, "abi2")->status, MH_EABI);

    /* All. */
    n = 99;
    ASSERT_STATUS(mh_host_clear_failures(host, NULL, &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 3);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.n, 1);
    ASSERT_NOT_NULL(disc_fail_find(&f, "abi2"));
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "bad badnote refuse");
    assert_failed(&r, dir, "bad", MH_EFORMAT, "not an ELF");
    assert_failed(&r, dir, "badnote", MH_EFORMAT, "note");
    assert_failed(&r, dir, "abi2", MH_EABI, "ABI 2");
    ASSERT_EQ_INT(disc_get(&r, "refuse")->status, MH_OK); /* ran no code */
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.n, 3);
    ASSERT_NULL(disc_fail_find(&f, "refuse"));
    ASSERT_STATUS(mh_host_clear_failures(host, NULL, NULL, ERR), MH_OK);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.n, 1);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* Sidecars that are not manifests: each module is a failure whose reason
 * names the sidecar and what is wrong with it; recorded, not read again. */
TEST(rows_written_by_another_modhost_are_judged_by_this_one)
{
    /* Hosts of several versions may share a cache directory.  A row says
     * what was read; whether it passes this host's checks (plugin ABI,
     * "modhost" version) is decided at every listing, by this host. */
    log_capture lc;
    disc_run r;
    disc_fails f;
    const char *dir = broken_dir();
    const char *db = index_path(NULL);

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r);
    assert_module(disc_get(&r, "good"), MH_KIND_NATIVE, "elf-note", "3.1.4",
                  CODEC_PROVIDES);

    /* A newer modhost found plain fine though it asks for modhost >= 99
     * (it was one); and an older one judged good too new for it, as the
     * modhost of an earlier format-1 index stored its verdicts. */
    db_exec(db, "UPDATE modules SET manifest = json_set(manifest, "
                "'$.modhost', '>=99') WHERE name = 'plain'");
    db_exec(db, str_fmt("UPDATE modules SET status = %d, manifest = NULL, "
                        "reason = 'module ''good'' needs modhost <0.1' "
                        "WHERE name = 'good'", (int)MH_EVERSION));
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "good"); /* an old verdict: read again */
    assert_module(disc_get(&r, "good"), MH_KIND_NATIVE, "elf-note", "3.1.4",
                  CODEC_PROVIDES);
    assert_failed(&r, dir, "plain", MH_EVERSION, "needs modhost >=99");
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_OK);
    ASSERT_EQ_INT(disc_fail_find(&f, "plain")->status, MH_EVERSION);
    ASSERT_CONTAINS(disc_fail_find(&f, "plain")->reason, "needs modhost >=99");
    ASSERT_NULL(disc_fail_find(&f, "good"));
    /* Only the read is stored: plain's row still holds its manifest. */
    ASSERT_EQ_STR(db_exec(db, "SELECT status, json_extract(manifest, "
                              "'$.modhost') FROM modules WHERE name = "
                              "'plain'"), "0|>=99");
    mh_host_free(host);
    log_capture_free(&lc);
}

typedef struct clear_call {
    mh_host *host;
    int calls;
    mh_status rc;
    size_t cleared;
    const char *error;
} clear_call;

/* mh_host_failures callback: clears the first recorded failure (not
 * abi2's, which this host judges anew each time), and stops. */
static int clear_from_callback(void *ud, const mh_failure *f)
{
    clear_call *c = ud;
    mh_error *e = NULL;
    if (f->status == MH_EABI)
        return 0;
    c->calls++;
    c->rc = mh_host_clear_failures(c->host, f->name, &c->cleared, &e);
    c->error = str_fmt("%s", e ? mh_error_message(e) : "");
    mh_error_free(e);
    return 1;
}

static int sqlite_fails(void *ud, const char *site)
{
    (void)ud;
    return strcmp(site, "sqlite") == 0;
}

TEST(index_that_cannot_be_opened_is_not_taken_for_a_busy_one)
{
    /* SQLite cannot open the file (the "sqlite" fault: as for a file of
     * another owner, mode 0600): no "try again" (MH_EAGAIN), and no false
     * "nothing recorded" either -- MH_EIO, naming the file.  The host
     * that can open it still reads what was recorded. */
    disc_run r;
    disc_fails f;
    const char *dir = broken_dir();
    mh_host *host = host_new_opts(&(host_opts){0}, dir);
    disc_discover(host, NULL, &r);
    mh_host_free(host);
    host = host_new_opts(&(host_opts){.fault = sqlite_fails}, dir);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_EIO);
    ASSERT_EQ_INT(f.n, 0);
    ASSERT_STATUS(mh_host_failures(host, clear_from_callback, NULL, ERR),
                  MH_EIO);
    ASSERT_CONTAINS(ERR_MSG(), index_path(NULL));
    ASSERT_CONTAINS(ERR_MSG(), "cannot be opened");
    mh_host_free(host);
    host = host_new_opts(&(host_opts){0}, dir);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_OK);
    ASSERT_EQ_INT(f.n, 3);
    mh_host_free(host);
}

static int sqlite_fails_once(void *ud, const char *site)
{
    int *n = ud;
    return strcmp(site, "sqlite") == 0 && (*n)++ == 0;
}

TEST(index_that_cannot_be_opened_once_is_not_rebuilt)
{
    /* A listing (which may make the index) whose open of it fails once, as
     * for a passing I/O error SQLite reports as damage: the file is asked
     * again before it is replaced, reads whole, and is kept -- with the
     * failures recorded there, which a rebuild would lose. */
    disc_run r;
    disc_fails f;
    int n = 0;
    struct stat before, after;
    const char *dir = broken_dir();
    mh_host *host = host_new_opts(&(host_opts){0}, dir);
    disc_discover(host, NULL, &r);
    mh_host_free(host);
    ASSERT_EQ_INT(stat(index_path(NULL), &before), 0);
    host_opts once = {.fault = sqlite_fails_once, .fault_ud = &n};
    host = host_new_opts(&once, dir);
    disc_discover(host, NULL, &r);
    mh_host_free(host);
    ASSERT_TRUE(n >= 1);
    ASSERT_EQ_INT(stat(index_path(NULL), &after), 0);
    if (after.st_ino != before.st_ino)
        FAIL("the index was rebuilt after one failed open");
    host = host_new_opts(&(host_opts){0}, dir);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_OK);
    ASSERT_EQ_INT(f.n, 3);
    mh_host_free(host);
}

TEST(failures_under_a_directory_named_with_a_bang_are_kept)
{
    /* "!/" in an origin also separates a database from its member: a
     * module file under a directory "x!" whose "x" does not exist is
     * still there, and so is its failure, until the file goes. */
    log_capture lc;
    disc_run r;
    disc_fails f;
    const char *dir = tmp_mkdir("x!");
    const char *bad = path_in(dir, "bad.so");
    file_write(bad, "this is not a shared object\n");
    disc_age_tree(dir, 60);
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r);
    assert_failed(&r, dir, "bad", MH_EFORMAT, "not an ELF");
    for (int round = 0; round < 2; round++) { /* and not forgotten after */
        disc_failures(host, &f);
        ASSERT_EQ_INT(f.status, MH_OK);
        if (f.n != 1)
            FAIL("round %d: %zu failures listed, expected bad's:\n%s", round,
                 f.n, f.text);
        ASSERT_EQ_STR(f.v[0].origin, bad);
    }
    ASSERT_EQ_INT(unlink(bad), 0);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.status, MH_OK);
    ASSERT_EQ_INT(f.n, 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

static int count_failure(void *ud, const mh_failure *f)
{
    (void)f;
    ++*(size_t *)ud;
    return 0;
}

TEST(failures_of_an_unusable_cache_directory_are_an_error)
{
    /* "No recorded failures" must mean it: where the index cannot be
     * used (a cache directory others can write), listing and clearing say
     * why instead.  Where there is simply none yet, nothing is recorded. */
    disc_fails f;
    size_t n = 99;
    const char *cache = tmp_mkdir("opencache");
    host_opts o = {.cache_dir = cache};
    mh_host *host = host_new_opts(&o, broken_dir());
    ASSERT_EQ_INT(chmod(cache, 0700), 0); /* private, as a host makes it */

    disc_failures(host, &f); /* no index yet */
    ASSERT_EQ_INT(f.status, MH_OK);
    ASSERT_EQ_INT(f.n, 0);
    ASSERT_EQ_INT(chmod(cache, 0777), 0);
    ASSERT_STATUS(mh_host_failures(host, count_failure, &n, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "discovery index cannot be used");
    ASSERT_CONTAINS(ERR_MSG(), cache);
    ASSERT_STATUS(mh_host_clear_failures(host, NULL, &n, ERR), MH_EPATH);
    ASSERT_EQ_INT(n, 0);
    mh_host_free(host);
}

TEST(failures_callback_may_use_the_index)
{
    /* The failures are handed out once the index is closed, so the
     * callback may clear one (or import, which may record one) instead of
     * waiting out the busy timeout on the listing's own read lock. */
    disc_run r;
    disc_fails f;
    mh_host *host = host_new_opts(&(host_opts){0}, broken_dir());
    disc_discover(host, NULL, &r);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.n, 3);

    clear_call c = {.host = host};
    ASSERT_STATUS(mh_host_failures(host, clear_from_callback, &c, ERR),
                  MH_OK);
    ASSERT_EQ_INT(c.calls, 1);
    if (c.rc != MH_OK || c.cleared != 1)
        FAIL("clearing bad from the callback: %s, %zu cleared: %s",
             mh_status_name(c.rc), c.cleared, c.error);
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.n, 2);
    ASSERT_NULL(disc_fail_find(&f, "bad"));
    mh_host_free(host);
}

TEST(manifest_longer_once_escaped_is_read_once)
{
    /* 200,000 tab characters in a description: within the 256 KiB limit
     * as written, about 400 KB as the index keeps it (each printed "\t").
     * The index's own text is not held to the limit for what is read. */
    log_capture lc;
    disc_run r;
    const char *dir = tmp_mkdir("plugins");
    size_t n = 200000;
    char *json = malloc(n + 64);
    ASSERT_NOT_NULL(json);
    int k = sprintf(json, "{\"version\": \"1.0.0\", \"description\": \"");
    memset(json + k, '\t', n);
    strcpy(json + k + n, "\"}");
    file_write(path_in(dir, "m.lua"), disc_lua_source("x"));
    file_write(path_in(dir, "m.json"), json);
    free(json);
    disc_age_tree(dir, 60);
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "m");
    ASSERT_EQ_INT(disc_get(&r, "m")->status, MH_OK);
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "");
    ASSERT_EQ_INT(disc_get(&r, "m")->status, MH_OK);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(malformed_sidecars_are_recorded_failures)
{
    log_capture lc;
    disc_run r;
    disc_fails f;
    const char *dir = tmp_mkdir("plugins");
    static const struct {
        const char *name, *json, *fault;
    } cases[] = {
        {"notjson", "{\"version\": ", "not valid JSON"},
        {"array", "[1, 2]", "not a JSON object"},
        {"badver", "{\"version\": 3}", "'version'"},
        {"badprov", "{\"provides\": [\"codec\"]}", "'provides'"},
    };

    for (size_t i = 0; i < N_OF(cases); i++) {
        file_write(path_in(dir, str_fmt("%s.lua", cases[i].name)),
                   disc_lua_source("x"));
        file_write(path_in(dir, str_fmt("%s.json", cases[i].name)),
                   cases[i].json);
    }
    fixture_copy("disc_codec", "plugins/good.so");
    disc_age_tree(dir, 60);
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_discover(host, &lc, &r);
    ASSERT_EQ_INT(r.status, MH_OK);
    ASSERT_EQ_INT(r.n, 5);
    ASSERT_READ_ALL(&r);
    for (size_t i = 0; i < N_OF(cases); i++) {
        const disc_mod *d = disc_get(&r, cases[i].name);
        const char *side = path_in(dir, str_fmt("%s.json", cases[i].name));
        if (d->status != MH_EFORMAT || !d->reason ||
            !strstr(d->reason, side) || !strstr(d->reason, cases[i].fault))
            FAIL("%s: expected MH_EFORMAT naming %s and saying \"%s\": %s",
                 cases[i].name, side, cases[i].fault, d->line);
    }
    disc_failures(host, &f);
    ASSERT_EQ_INT(f.n, N_OF(cases));
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "");
    ASSERT_EQ_INT(disc_count_status(&r, MH_EFORMAT), N_OF(cases));
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A manifest refused half-way through its provides or requires, read by a
 * host with its own allocator (lua_Alloc contract: every block freed with
 * the size it was allocated with): a failure, and nothing leaked. */
static void half_parsed(const char *json, const char *fault)
{
    alloc_tracker at;
    mh_config cfg;
    disc_run r;
    const char *dir = tmp_mkdir("plugins");

    file_write(path_in(dir, "half.lua"), disc_lua_source("h"));
    file_write(path_in(dir, "half.json"), json);
    disc_age_tree(dir, 60);
    alloc_tracker_init(&at);
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = dir;
    cfg.cache_dir = tmp_path("cache");
    cfg.alloc = alloc_tracker_fn;
    cfg.alloc_ud = &at;
    mh_host *host = host_new_cfg(&cfg);
    disc_discover(host, NULL, &r);
    ASSERT_EQ_INT(r.status, MH_OK);
    ASSERT_EQ_INT(disc_get(&r, "half")->status, MH_EFORMAT);
    ASSERT_CONTAINS(disc_get(&r, "half")->reason, fault);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    ASSERT_EQ_INT(at.blocks, 0);
    alloc_tracker_destroy(&at);
}

TEST(manifest_refused_in_its_provides_frees_what_it_allocated)
{
    half_parsed("{\"provides\": {\"codec\": \"encode\", \"tool\": \"\"}}",
                "provides 'tool'");
}

TEST(manifest_refused_in_its_requires_frees_what_it_allocated)
{
    half_parsed("{\"requires\": [\"other >=1\", \"-bad\"]}", "requires[1]");
}

/* --------------------------------------------------------- entry points */

/* zeta, alpha: disc_codec; mid: disc_plain; tool: disc_noexp; lcodec: Lua
 * providing codec; lplain: Lua without a sidecar. */
static const char *ep_dir(void)
{
    const char *dir = tmp_mkdir("plugins");
    fixture_copy("disc_codec", "plugins/zeta.so");
    fixture_copy("disc_codec", "plugins/alpha.so");
    fixture_copy("disc_plain", "plugins/mid.so");
    fixture_copy("disc_noexp", "plugins/tool.so");
    file_write(path_in(dir, "lcodec.lua"), disc_lua_source("l"));
    file_write(path_in(dir, "lcodec.json"),
               "{\"version\": \"0.5.0\", \"provides\": {\"codec\": "
               "\"encode\"}}");
    file_write(path_in(dir, "lplain.lua"), disc_lua_source("p"));
    disc_age_tree(dir, 60);
    return dir;
}

TEST(entry_points_by_group_in_name_order_loading_nothing)
{
    log_capture lc;
    disc_eps eps;
    disc_run r;
    const char *dir = ep_dir();

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_entry_points(host, "codec", &eps, NULL, NULL);
    ASSERT_EQ_INT(eps.status, MH_OK);
    ASSERT_EQ_STR(eps.text,
                  str_fmt("alpha=call:encode (%s)\nlcodec=encode (%s)\n"
                          "zeta=call:encode (%s)\n",
                          path_in(dir, "alpha.so"), path_in(dir, "lcodec.lua"),
                          path_in(dir, "zeta.so")));
    for (size_t i = 0; i < eps.n; i++) {
        ASSERT_EQ_STR(eps.v[i].group, "codec");
        ASSERT_EQ_STR(eps.v[i].provider, eps.v[i].export_name);
    }
    ASSERT_EQ_STR(eps.v[0].version, "3.1.4");
    ASSERT_EQ_STR(eps.v[1].version, "0.5.0");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);

    disc_entry_points(host, "answer", &eps, NULL, NULL);
    ASSERT_EQ_STR(eps.text, str_fmt("alpha=answer (%s)\nzeta=answer (%s)\n",
                                    path_in(dir, "alpha.so"),
                                    path_in(dir, "zeta.so")));
    disc_entry_points(host, "tool", &eps, NULL, NULL);
    ASSERT_EQ_STR(eps.text, str_fmt("tool=no_such_export (%s)\n",
                                    path_in(dir, "tool.so")));
    disc_entry_points(host, "nosuch", &eps, NULL, NULL);
    ASSERT_EQ_INT(eps.status, MH_OK);
    ASSERT_EQ_INT(eps.n, 0);
    ASSERT_EQ_INT(mh_host_module_count(host), 0);

    /* Listing entry points goes through the index like discovery. */
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 6);
    ASSERT_READ(&r, "");
    ASSERT_STATUS(mh_host_entry_points(host, NULL, NULL, NULL, ERR),
                  MH_EINVAL);
    mh_host_free(host);
    log_capture_free(&lc);
}

typedef struct loaded {
    size_t n;
    const char *module[8];
    mh_module *mod[8];
    void *symbol[8];
} loaded;

static void load_each(void *ud, mh_host *host, const mh_entry_point *ep)
{
    loaded *l = ud;
    mh_module *mod = NULL;
    void *sym = (void *)1;
    mh_error *e = NULL;
    mh_status rc = mh_entry_point_load(host, ep, &mod, &sym, &e);

    if (rc != MH_OK)
        FAIL("mh_entry_point_load(%s): %s: %s", ep->module,
             mh_status_name(rc), mh_error_message(e));
    if (l->n == 8)
        FAIL("too many entry points");
    l->module[l->n] = str_fmt("%s", ep->module);
    l->mod[l->n] = mod;
    l->symbol[l->n] = sym;
    l->n++;
}

TEST(entry_point_load_returns_module_and_export)
{
    log_capture lc;
    disc_eps eps;
    loaded codec = {0}, answer = {0};
    const char *dir = ep_dir();

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_entry_points(host, "answer", &eps, load_each, &answer);
    ASSERT_EQ_INT(eps.status, MH_OK);
    ASSERT_EQ_INT(answer.n, 2);
    for (size_t i = 0; i < 2; i++) {
        ASSERT_EQ_STR(mh_module_name(answer.mod[i]), answer.module[i]);
        ASSERT_NOT_NULL(answer.symbol[i]);
        ASSERT_EQ_PTR(answer.symbol[i],
                      mh_module_symbol(answer.mod[i], "answer"));
        ASSERT_EQ_INT(((int (*)(void))answer.symbol[i])(), 42);
    }
    ASSERT_EQ_INT(mh_host_module_count(host), 2);

    disc_entry_points(host, "codec", &eps, load_each, &codec);
    ASSERT_EQ_INT(codec.n, 3);
    /* alpha: native, the call export's address. */
    ASSERT_EQ_PTR(codec.mod[0], answer.mod[0]);
    ASSERT_NOT_NULL(codec.symbol[0]);
    ASSERT_EQ_PTR(codec.symbol[0], mh_module_symbol(codec.mod[0],
                                                    "call:encode"));
    ASSERT_EQ_STR(call_ok(codec.mod[0], "encode", NULL), "\"disc-encoded\"");
    /* lcodec: Lua, no address; called by name. */
    ASSERT_EQ_STR(mh_module_name(codec.mod[1]), "lcodec");
    ASSERT_EQ_INT(mh_module_kind_of(codec.mod[1]), MH_KIND_LUA);
    ASSERT_NULL(codec.symbol[1]);
    ASSERT_EQ_STR(call_ok(codec.mod[1], "encode", "[\"x\"]"), "\"l:x\"");
    ASSERT_EQ_INT(mh_host_module_count(host), 3);

    /* After the walk, from an entry point the caller keeps; symbol may be
     * NULL. */
    mh_entry_point ep = {.size = sizeof ep, .group = "answer",
                         .module = "zeta", .export_name = "answer",
                         .origin = path_in(dir, "zeta.so")};
    mh_module *mod = NULL;
    ASSERT_STATUS(mh_entry_point_load(host, &ep, &mod, NULL, ERR), MH_OK);
    ASSERT_EQ_PTR(mod, answer.mod[1]);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* mh_entry_point_load imports by name, as Python's EntryPoint.load()
 * does: a module of the same name added to an entry in front since the
 * listing is the one loaded, and its origin tells. */
TEST(entry_point_load_imports_by_name_and_its_origin_tells)
{
    disc_eps eps;
    const char *front = tmp_mkdir("front");
    const char *dir = ep_dir();

    mh_host *host = vhost(NULL, NULL, 0, front, dir);
    disc_entry_points(host, "tool", &eps, NULL, NULL);
    ASSERT_EQ_INT(eps.n, 1);
    ASSERT_EQ_STR(eps.v[0].origin, path_in(dir, "tool.so"));
    fixture_copy("disc_noexp", "front/tool.so");
    mh_entry_point ep = {.size = sizeof ep, .group = eps.v[0].group,
                         .module = eps.v[0].module,
                         .export_name = eps.v[0].export_name,
                         .origin = eps.v[0].origin};
    mh_module *mod = NULL;
    ASSERT_STATUS(mh_entry_point_load(host, &ep, &mod, NULL, ERR), MH_OK);
    ASSERT_EQ_STR(mh_module_origin(mod), path_in(front, "tool.so"));
    ASSERT_TRUE(strcmp(mh_module_origin(mod), ep.origin) != 0);
    mh_host_free(host);
}

TEST(entry_point_with_missing_export_is_enosym)
{
    log_capture lc;
    disc_eps eps;
    const char *dir = ep_dir();
    mh_module *mod = (mh_module *)1;
    void *sym = (void *)1;

    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, dir);
    disc_entry_points(host, "tool", &eps, NULL, NULL);
    ASSERT_EQ_INT(eps.n, 1);
    mh_entry_point ep = {.size = sizeof ep, .group = eps.v[0].group,
                         .module = eps.v[0].module,
                         .export_name = eps.v[0].export_name,
                         .origin = eps.v[0].origin};
    ASSERT_STATUS(mh_entry_point_load(host, &ep, &mod, &sym, ERR),
                  MH_ENOSYM);
    ASSERT_CONTAINS(ERR_MSG(), "'tool'");
    ASSERT_CONTAINS(ERR_MSG(), "no_such_export");
    ASSERT_NULL(mod);
    ASSERT_NULL(sym);

    /* A Lua module's function is looked up too (it was not: MH_OK, and
     * the error came only from the later call). */
    mh_entry_point lep = {.size = sizeof lep, .group = "codec",
                          .module = "lcodec",
                          .export_name = "no_such_function",
                          .origin = path_in(dir, "lcodec.lua")};
    ASSERT_STATUS(mh_entry_point_load(host, &lep, &mod, &sym, ERR),
                  MH_ENOSYM);
    ASSERT_CONTAINS(ERR_MSG(), "'lcodec'");
    ASSERT_CONTAINS(ERR_MSG(), "no_such_function");
    ASSERT_NULL(mod);
    lep.export_name = "encode";
    ASSERT_STATUS(mh_entry_point_load(host, &lep, &mod, &sym, ERR), MH_OK);
    ASSERT_EQ_STR(mh_module_name(mod), "lcodec");
    ASSERT_NULL(sym);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* ---------------------------------------------------- module databases */

TEST(database_modules_discovered_once_repacked_one_read_again)
{
    log_capture lc;
    disc_run r1, r;
    const char *src = disc_plugin_dir("src", 30);
    const char *db = tmp_path("plugins.db");

    db_pack(db, src);
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, db);
    disc_discover(host, &lc, &r1);
    ASSERT_RUN(&r1, 33);
    ASSERT_READ_ALL(&r1);
    const disc_mod *p0 = disc_get(&r1, "p000");
    ASSERT_EQ_STR(p0->finder, "sqlite");
    ASSERT_EQ_STR(p0->origin, str_fmt("%s!/p000.so", db));
    assert_module(p0, MH_KIND_NATIVE, "elf-note", "3.1.4", CODEC_PROVIDES);
    assert_module(disc_get(&r1, "p007"), MH_KIND_NATIVE, "elf-note", "1.0.0",
                  "");
    assert_module(disc_get(&r1, "lua_a"), MH_KIND_LUA, "sidecar", "1.0.0",
                  "codec=encode");
    assert_module(disc_get(&r1, "lua_c"), MH_KIND_LUA, "none", NULL, "");
    ASSERT_EQ_INT(mh_host_module_count(host), 0);

    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 33);
    ASSERT_READ(&r, "");
    ASSERT_SAME_TEXT(r1.text, r.text);

    /* p007 becomes a codec; the whole directory is packed again. */
    disc_set_age(fixture_copy("disc_codec", "src/p007.so"), 60);
    db_pack(db, src);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 33);
    ASSERT_READ(&r, "p007");
    assert_module(disc_get(&r, "p007"), MH_KIND_NATIVE, "elf-note", "3.1.4",
                  CODEC_PROVIDES);
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "");
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(database_sidecar_added_is_read)
{
    log_capture lc;
    disc_run r;
    const char *src = disc_plugin_dir("src", 4);
    const char *db = tmp_path("plugins.db");

    db_pack(db, src);
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, db);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 7);
    const char *side = path_in(src, "lua_c.json");
    file_write(side, "{\"version\": \"3.0.0\"}");
    disc_set_age(side, 60);
    db_pack(db, src);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 7);
    ASSERT_READ(&r, "lua_c");
    assert_module(disc_get(&r, "lua_c"), MH_KIND_LUA, "sidecar", "3.0.0", "");
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A database module with a sidecar that fails only when loaded: the
 * failure its import recorded is what discovery reports, not read over --
 * find and list give it the same identity (sidecar row included). */
TEST(database_load_failure_with_sidecar_is_kept)
{
    log_capture lc;
    disc_run r;
    const char *src = disc_plugin_dir("src", 4);
    const char *db = tmp_path("plugins.db");

    fixture_copy("disc_refuse", "src/refuse.so");
    file_write(path_in(src, "refuse.json"), "{\"version\": \"2.0.0\"}");
    db_pack(db, src);
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, db);
    disc_discover(host, &lc, &r);
    ASSERT_READ_ALL(&r);
    import_refused(host);
    disc_discover(host, &lc, &r);
    ASSERT_READ(&r, "");
    const disc_mod *d = disc_get(&r, "refuse");
    ASSERT_STATUS(d->status, MH_EINIT);
    ASSERT_CONTAINS(d->reason, "says no on purpose");
    ASSERT_CONTAINS(d->reason, str_fmt("%s!/refuse.so", db));
    mh_host_free(host);
    log_capture_free(&lc);
}

/* The module's row stays the same; its sidecar row changes. */
TEST(database_sidecar_changed_is_read_again)
{
    log_capture lc;
    disc_run r;
    const char *src = disc_plugin_dir("src", 4);
    const char *db = tmp_path("plugins.db");

    db_pack(db, src);
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, db);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 7);
    assert_module(disc_get(&r, "lua_a"), MH_KIND_LUA, "sidecar", "1.0.0",
                  "codec=encode");
    const char *side = path_in(src, "lua_a.json");
    file_write(side, "{\"version\": \"1.5.0\"}");
    disc_set_age(side, 30);
    db_pack(db, src);
    /* What the finder itself says now. */
    mh_manifest *m = NULL;
    ASSERT_STATUS(mh_metadata(host, "lua_a", &m, ERR), MH_OK);
    ASSERT_EQ_STR(mh_manifest_version(m), "1.5.0");
    mh_manifest_free(m);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 7);
    assert_module(disc_get(&r, "lua_a"), MH_KIND_LUA, "sidecar", "1.5.0", "");
    ASSERT_READ(&r, "lua_a");
    mh_host_free(host);
    log_capture_free(&lc);
}

/* ----------------------------------------------------------- shadowing */

TEST(shadowed_name_is_reported_from_the_first_entry_only)
{
    log_capture lc;
    disc_run r;
    disc_eps eps;
    mh_spec_info info = {.size = sizeof info};
    const char *e1 = tmp_mkdir("e1"), *e2 = tmp_mkdir("e2");
    const char *db = tmp_path("e3.db");

    fixture_copy("disc_codec", "e1/dup.so");
    fixture_copy("disc_plain", "e2/dup.so");
    fixture_copy("disc_plain", "e2/only2.so");
    file_write(path_in(e2, "dup.json"), "{\"version\": \"5.0.0\"}");
    disc_age_tree(e1, 60);
    disc_age_tree(e2, 60);
    db_make(db, "disc_plain:dup.so", "disc_codec:only3.so");
    log_capture_init(&lc);
    mh_host *host = vhost(&lc, NULL, 0, e1, e2, db);

    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 3);
    ASSERT_READ(&r, "dup only2 only3");
    const disc_mod *dup = disc_get(&r, "dup");
    ASSERT_EQ_STR(dup->origin, path_in(e1, "dup.so"));
    ASSERT_EQ_INT(dup->entry_index, 0);
    assert_module(dup, MH_KIND_NATIVE, "elf-note", "3.1.4", CODEC_PROVIDES);
    ASSERT_EQ_INT(disc_get(&r, "only2")->entry_index, 1);
    ASSERT_EQ_INT(disc_get(&r, "only3")->entry_index, 2);
    /* The shadowed copies were never read. */
    ASSERT_EQ_INT(str_count(r.log, path_in(e2, "dup.so")), 0);
    ASSERT_EQ_INT(str_count(r.log, str_fmt("%s!/dup.so", db)), 0);
    /* As import would pick. */
    ASSERT_STATUS(mh_find(host, "dup", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.origin, dup->origin);
    disc_entry_points(host, "codec", &eps, NULL, NULL);
    ASSERT_EQ_STR(eps.text, str_fmt("dup=call:encode (%s)\nonly3=call:encode "
                                    "(%s!/only3.so)\n",
                                    path_in(e1, "dup.so"), db));

    /* The first copy gone: the second one is reported, read as itself. */
    ASSERT_EQ_INT(unlink(path_in(e1, "dup.so")), 0);
    disc_discover(host, &lc, &r);
    ASSERT_RUN(&r, 3);
    ASSERT_READ(&r, "dup");
    dup = disc_get(&r, "dup");
    ASSERT_EQ_STR(dup->origin, path_in(e2, "dup.so"));
    ASSERT_EQ_INT(dup->entry_index, 1);
    assert_module(dup, MH_KIND_NATIVE, "elf-note", "1.0.0", "");
    mh_host_free(host);
    log_capture_free(&lc);
}

/* --------------------------------------------------------- concurrency */

#define NTHREADS 4
#define ROUNDS 6

typedef struct worker {
    pthread_barrier_t *start;
    mh_host *host;
    disc_run run;
} worker;

static void *discover_worker(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    disc_discover(w->host, NULL, &w->run);
    return NULL;
}

/* Round after round, NTHREADS threads discover at once, on hosts[t %
 * nhosts]; every result must be complete and the same as ref.  Between
 * rounds the index is sometimes deleted (so the threads race to create
 * it) and sometimes a few files change. */
static void discover_in_threads(mh_host **hosts, size_t nhosts,
                                const char *dir, const char *ref)
{
    static worker w[NTHREADS];
    pthread_t th[NTHREADS];
    pthread_barrier_t start;

    for (int round = 0; round < ROUNDS; round++) {
        if (round % 2 == 0)
            unlink(index_path(NULL));
        if (round % 3 == 1) {
            disc_set_age(path_in(dir, "p001.so"), 30 + round);
            disc_set_age(path_in(dir, "lua_a.json"), 30 + round);
        }
        pthread_barrier_init(&start, NULL, NTHREADS);
        for (size_t t = 0; t < NTHREADS; t++) {
            w[t].start = &start;
            w[t].host = hosts[t % nhosts];
            ASSERT_EQ_INT(pthread_create(&th[t], NULL, discover_worker,
                                         &w[t]), 0);
        }
        for (size_t t = 0; t < NTHREADS; t++)
            ASSERT_EQ_INT(pthread_join(th[t], NULL), 0);
        pthread_barrier_destroy(&start);
        for (size_t t = 0; t < NTHREADS; t++) {
            const disc_run *r = &w[t].run;
            if (r->status != MH_OK)
                FAIL("round %d, thread %zu: %s: %s", round, t,
                     mh_status_name(r->status), r->error);
            if (strcmp(r->text, ref) != 0)
                FAIL("round %d, thread %zu: results differ at %s", round, t,
                     first_diff(ref, r->text));
        }
    }
}

TEST(threads_discovering_on_one_host_get_complete_results)
{
    log_capture lc, vlc;
    disc_run ref, r;
    const char *dir = disc_plugin_dir("plugins", 40);

    log_capture_init(&lc);
    mh_host *host = host_new_opts(&(host_opts){.log = &lc}, dir);
    disc_discover(host, NULL, &ref);
    ASSERT_EQ_INT(ref.status, MH_OK);
    ASSERT_EQ_INT(ref.n, 43);
    ASSERT_EQ_INT(disc_count_status(&ref, MH_OK), 43);
    discover_in_threads(&host, 1, dir, ref.text);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, ""), 0);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_ERROR, ""), 0);
    mh_host_free(host);

    /* What the threads left is a complete index. */
    log_capture_init(&vlc);
    host = vhost(&vlc, NULL, 0, dir);
    disc_discover(host, &vlc, &r);
    ASSERT_RUN(&r, 43);
    ASSERT_READ(&r, "");
    ASSERT_SAME_TEXT(ref.text, r.text);
    mh_host_free(host);
    log_capture_free(&vlc);
    log_capture_free(&lc);
}

TEST(hosts_sharing_a_cache_dir_get_complete_results)
{
    log_capture lc[2], vlc;
    disc_run ref, r;
    mh_host *hosts[2];
    const char *dir = disc_plugin_dir("plugins", 40);

    for (size_t i = 0; i < 2; i++) {
        log_capture_init(&lc[i]);
        hosts[i] = host_new_opts(&(host_opts){.log = &lc[i]}, dir);
    }
    disc_discover(hosts[0], NULL, &ref);
    ASSERT_EQ_INT(ref.n, 43);
    discover_in_threads(hosts, 2, dir, ref.text);
    for (size_t i = 0; i < 2; i++) {
        ASSERT_EQ_INT(log_capture_count(&lc[i], MH_LOG_WARN, ""), 0);
        ASSERT_EQ_INT(log_capture_count(&lc[i], MH_LOG_ERROR, ""), 0);
        mh_host_free(hosts[i]);
        log_capture_free(&lc[i]);
    }
    log_capture_init(&vlc);
    mh_host *host = vhost(&vlc, NULL, 0, dir);
    disc_discover(host, &vlc, &r);
    ASSERT_RUN(&r, 43);
    ASSERT_READ(&r, "");
    mh_host_free(host);
    log_capture_free(&vlc);
}

static int child_complaints;

static void child_log(void *ud, mh_log_level level, const char *msg)
{
    (void)ud;
    if (level <= MH_LOG_WARN) {
        child_complaints++;
        fprintf(stderr, "child %ld logged: %s\n", (long)getpid(), msg);
    }
}

/* A child process's loop: its own host, ROUNDS discoveries, each complete
 * and equal to ref, with nothing logged at WARN or above.  No FAIL here
 * (it would tidy the parent's temp dir): the exit status says how it
 * went. */
static int child_discovers(const char *dir, const char *ref)
{
    mh_config cfg;
    mh_host *host = NULL;
    disc_run *r = malloc(sizeof *r);
    int bad = r == NULL;

    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = dir;
    cfg.cache_dir = tmp_path("cache");
    cfg.log = child_log;
    if (!bad && mh_host_new(&cfg, &host, NULL) != MH_OK)
        bad = 1;
    for (int i = 0; !bad && i < ROUNDS * 2; i++) {
        disc_discover(host, NULL, r);
        if (r->status != MH_OK || strcmp(r->text, ref) != 0) {
            fprintf(stderr, "child %ld, round %d: %s: %s; differs at %s\n",
                    (long)getpid(), i, mh_status_name(r->status),
                    r->error ? r->error : "", first_diff(ref, r->text));
            bad = 1;
        }
    }
    mh_host_free(host);
    free(r);
    return bad || child_complaints;
}

TEST(processes_sharing_a_cache_dir_get_complete_results)
{
    disc_run ref;
    pid_t pid[3];
    const char *dir = disc_plugin_dir("plugins", 40);

    mh_host *host = host_new_opts(&(host_opts){0}, dir);
    disc_discover(host, NULL, &ref);
    mh_host_free(host);
    ASSERT_EQ_INT(ref.n, 43);
    unlink(index_path(NULL));
    fflush(NULL);
    for (size_t i = 0; i < 3; i++) {
        pid[i] = fork();
        ASSERT_TRUE(pid[i] >= 0);
        if (pid[i] == 0)
            _exit(child_discovers(dir, ref.text));
    }
    for (size_t i = 0; i < 3; i++) {
        int st = 0;
        ASSERT_EQ_INT(waitpid(pid[i], &st, 0), pid[i]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            FAIL("child %zu failed (status 0x%x)", i, (unsigned)st);
    }
}

/* ---------------------------------------------------- allocation faults */

/* Is d as a listing should give it: as in ref, or -- for the module an
 * import tried, whose failure may have gone unrecorded for want of
 * memory -- as in plain, where no import was tried. */
static bool listed_right(const disc_mod *d, const disc_run *ref,
                         const disc_run *plain, const char *imported)
{
    if (strcmp(d->line, disc_get(ref, d->name)->line) == 0)
        return true;
    return imported && strcmp(d->name, imported) == 0 &&
           strcmp(d->line, disc_get(plain, d->name)->line) == 0;
}

/* Fail the Nth allocation (once), N = 1, 2, ... until none fires, in a
 * host created, importing `imported` (NULL: nothing; else a module whose
 * init fails, recorded by the import), listing twice (building the index,
 * then from it) and freed.  Every call ends in success or MH_ENOMEM,
 * nothing leaks, and the faults leave nothing wrong behind: a listing
 * without faults on the same host and cache gives the full, right
 * answer. */
static void alloc_faults_poison_nothing(const char *dir, size_t want_n,
                                        const char *imported)
{
    disc_run ref, plain_ref, r;
    size_t fired = 0;
    mh_host *plain = host_new_opts(&(host_opts){.cache_dir =
                                                    tmp_path("plaincache")},
                                   dir);
    disc_discover(plain, NULL, &plain_ref);
    mh_host_free(plain);
    mh_host *refh = host_new_opts(&(host_opts){.cache_dir =
                                                   tmp_path("refcache")},
                                  dir);
    mh_module *m;
    if (imported)
        ASSERT_STATUS(mh_import(refh, imported, &m, ERR), MH_EINIT);
    disc_discover(refh, NULL, &ref);
    mh_host_free(refh);
    ASSERT_EQ_INT(ref.n, want_n);

    for (long n = 1;; n++) {
        alloc_tracker at;
        mh_config cfg;
        mh_host *host = NULL;

        alloc_tracker_init(&at);
        at.fail_at = n;
        at.fail_once = 1;
        mh_config_init(&cfg);
        cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
        cfg.path = dir;
        cfg.cache_dir = tmp_path("cache%ld", n);
        cfg.alloc = alloc_tracker_fn;
        cfg.alloc_ud = &at;
        mh_status st = mh_host_new(&cfg, &host, ERR);
        if (st != MH_OK) {
            ASSERT_STATUS(st, MH_ENOMEM);
        } else {
            if (imported) {
                st = mh_import(host, imported, &m, NULL);
                if (st != MH_EINIT && st != MH_ENOMEM)
                    FAIL("fault at %ld: import '%s': %s", n, imported,
                         mh_status_name(st));
            }
            for (int pass = 0; pass < 2; pass++) {
                disc_discover(host, NULL, &r);
                if (r.status != MH_OK && r.status != MH_ENOMEM)
                    FAIL("fault at %ld, pass %d: %s: %s", n, pass,
                         mh_status_name(r.status), r.error);
                for (size_t i = 0; r.status == MH_OK && i < r.n; i++) {
                    const disc_mod *d = &r.mods[i];
                    if (d->status == MH_ENOMEM)
                        continue; /* skipped this time, and said why */
                    if (!listed_right(d, &ref, &plain_ref, imported))
                        FAIL("fault at %ld, pass %d:\n  %s\nexpected\n  %s",
                             n, pass, d->line, disc_get(&ref, d->name)->line);
                }
            }
            pthread_mutex_lock(&at.mu);
            at.fail_at = 0;
            pthread_mutex_unlock(&at.mu);
            disc_discover(host, NULL, &r);
            if (r.status != MH_OK || r.n != ref.n)
                FAIL("after a fault at %ld: %s %s, %zu modules", n,
                     mh_status_name(r.status), r.error ? r.error : "", r.n);
            for (size_t i = 0; i < r.n; i++)
                if (!listed_right(&r.mods[i], &ref, &plain_ref, imported))
                    FAIL("after a fault at %ld:\n  %s\nexpected\n  %s", n,
                         r.mods[i].line, disc_get(&ref, r.mods[i].name)->line);
            mh_host_free(host);
        }
        if (at.outstanding != 0 || at.blocks != 0)
            FAIL("fault at %ld: %zu bytes in %zu blocks leaked", n,
                 at.outstanding, at.blocks);
        size_t injected = at.injected;
        alloc_tracker_destroy(&at);
        if (injected == 0)
            break;
        fired++;
    }
    ASSERT_TRUE(fired > 10);
}

TEST(allocation_faults_fail_cleanly_and_poison_nothing)
{
    const char *dir = disc_plugin_dir("plugins", 4);
    alloc_faults_poison_nothing(dir, 7, NULL);
}

TEST(allocation_faults_record_no_failure_of_their_own)
{
    /* Modules that fail for real: a fault while their reason is written
     * must not put "out of memory" in its place in the index, where it
     * would stand until the file changes. */
    alloc_faults_poison_nothing(broken_dir(), 6, "refuse");
}


