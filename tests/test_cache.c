/*
 * test_cache.c -- the cache directory's contents and pruning
 * (mh_host_prune_cache): what is counted where, what is removed by last
 * use, what goes with it, what is never removed, and that nothing
 * outside the cache directory is reached.
 */
#include "test.h"
#include "support/support.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>

#define DAY 86400

/* Set a file's access and modification times, in days before now. */
static void set_days(const char *path, long atime_days, long mtime_days)
{
    time_t now = time(NULL);
    struct timespec ts[2] = {
        { now - atime_days * DAY, 0 },
        { now - mtime_days * DAY, 0 },
    };
    ASSERT_EQ_INT(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* A file of n bytes at cache/<rel>, last used days ago. */
static const char *cached(const char *rel, size_t n, long days)
{
    const char *p = tmp_path("cache/%s", rel);
    mkdir_p(str_fmt("%.*s", (int)(strrchr(p, '/') - p), p));
    char buf[4096];
    memset(buf, 'x', n < sizeof buf ? n : sizeof buf);
    file_write_bytes(p, buf, n < sizeof buf ? n : sizeof buf);
    set_days(p, days, days);
    return p;
}

/* Every file directly in dir, last used days ago. */
static void set_days_all(const char *dir, long days)
{
    DIR *d = opendir(dir);
    ASSERT_NOT_NULL(d);
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_type == DT_REG)
            set_days(str_fmt("%s/%s", dir, de->d_name), days, days);
    closedir(d);
}

static mh_host *cache_host(void)
{
    host_opts o = {0};
    mkdir_p(tmp_path("cache"));
    ASSERT_EQ_INT(chmod(tmp_path("cache"), 0700), 0);
    return host_new_opts(&o, tmp_dir());
}

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define TAG_1 "0123456789abcdef"
#define TAG_2 "fedcba9876543210"

TEST(counts_every_part_and_removes_nothing)
{
    cached("lua/x.lua54-4.mhc", 100, 90);
    cached("lua/y.lua54-4.mhc", 50, 90);
    cached("blobs/" SHA_A, 200, 90);
    cached("blobs/origins/" TAG_1, 64, 90);
    cached("verified/" SHA_A, 30, 90);
    cached("probe/k.ok", 10, 90);
    cached("native/m-0011223344556677.so", 7, 90);
    cached("http/site1/index.json", 40, 90);
    cached("http/site1/serial", 5, 90);
    cached("discovery.db", 1000, 90);
    mh_host *h = cache_host();
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, -1, &u, ERR), MH_OK);
    ASSERT_EQ_INT(u.part[MH_CACHE_BYTECODE].files, 2);
    ASSERT_EQ_INT(u.part[MH_CACHE_BYTECODE].bytes, 150);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].files, 2);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].bytes, 264);
    ASSERT_EQ_INT(u.part[MH_CACHE_STAMPS].bytes, 30);
    ASSERT_EQ_INT(u.part[MH_CACHE_PROBES].bytes, 10);
    ASSERT_EQ_INT(u.part[MH_CACHE_SCRATCH].bytes, 7);
    ASSERT_EQ_INT(u.part[MH_CACHE_HTTP].files, 2);
    ASSERT_EQ_INT(u.part[MH_CACHE_HTTP].bytes, 45);
    ASSERT_EQ_INT(u.part[MH_CACHE_INDEX].bytes, 1000);
    for (int i = 0; i < MH_CACHE_NPARTS; i++)
        ASSERT_EQ_INT(u.part[i].removed_files, 0);
    ASSERT_TRUE(file_exists(tmp_path("cache/lua/x.lua54-4.mhc")));
    ASSERT_EQ_STR(mh_cache_part_name(MH_CACHE_BYTECODE), "bytecode");
    ASSERT_EQ_STR(mh_cache_part_name(MH_CACHE_INDEX), "index");
    ASSERT_NULL(mh_cache_part_name(MH_CACHE_NPARTS));
    mh_host_free(h);
}

TEST(removes_what_was_not_used_for_that_long)
{
    const char *old_bc = cached("lua/old.lua54-4.mhc", 100, 40);
    const char *new_bc = cached("lua/new.lua54-4.mhc", 100, 3);
    /* Written long ago, read yesterday: in use. */
    const char *read_bc = cached("lua/read.lua54-4.mhc", 100, 40);
    set_days(read_bc, 1, 40);
    /* Read long ago, written again yesterday: in use too. */
    const char *written = cached("probe/w.ok", 10, 40);
    set_days(written, 40, 1);
    const char *old_probe = cached("probe/o.ok", 10, 40);
    const char *scratch = cached("native/m-0011223344556677.so", 7, 40);
    /* Never removed, however old. */
    const char *floor = cached("http/site1/serial", 5, 400);
    const char *index = cached("discovery.db", 1000, 400);
    mh_host *h = cache_host();
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, 30 * DAY, &u, ERR), MH_OK);
    ASSERT_FALSE(file_exists(old_bc));
    ASSERT_FALSE(file_exists(old_probe));
    ASSERT_FALSE(file_exists(scratch));
    ASSERT_TRUE(file_exists(new_bc));
    ASSERT_TRUE(file_exists(read_bc));
    ASSERT_TRUE(file_exists(written));
    ASSERT_TRUE(file_exists(floor));
    ASSERT_TRUE(file_exists(index));
    ASSERT_EQ_INT(u.part[MH_CACHE_BYTECODE].removed_files, 1);
    ASSERT_EQ_INT(u.part[MH_CACHE_BYTECODE].removed_bytes, 100);
    ASSERT_EQ_INT(u.part[MH_CACHE_BYTECODE].files, 2);
    ASSERT_EQ_INT(u.part[MH_CACHE_PROBES].removed_files, 1);
    ASSERT_EQ_INT(u.part[MH_CACHE_PROBES].files, 1);
    ASSERT_EQ_INT(u.part[MH_CACHE_SCRATCH].removed_files, 1);
    ASSERT_EQ_INT(u.part[MH_CACHE_HTTP].files, 1);
    ASSERT_EQ_INT(u.part[MH_CACHE_INDEX].files, 1);
    /* 0 takes everything but the two parts that are kept. */
    ASSERT_STATUS(mh_host_prune_cache(h, 0, &u, ERR), MH_OK);
    ASSERT_FALSE(file_exists(new_bc));
    ASSERT_FALSE(file_exists(written));
    ASSERT_EQ_INT(u.part[MH_CACHE_BYTECODE].removed_files, 2);
    ASSERT_TRUE(file_exists(floor));
    ASSERT_TRUE(file_exists(index));
    mh_host_free(h);
}

/* A prune removes what an index rebuild killed mid-way left beside the
 * index (stale: older than a live writer's), and keeps the index. */
TEST(a_prune_removes_what_a_killed_index_rebuild_left)
{
    const char *index = cached("discovery.db", 1000, 400);
    const char *tmp = cached("discovery.db.tmp-4242-0a1b2c3d4e5f", 300, 1);
    const char *journal = cached("discovery.db.tmp-4242-0a1b2c3d4e5f-journal",
                                 20, 1);
    const char *young = cached("discovery.db.tmp-4343-0a1b2c3d4e5f", 300, 0);
    mh_host *h = cache_host();
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, 30 * DAY, &u, ERR), MH_OK);
    ASSERT_FALSE(file_exists(tmp));
    ASSERT_FALSE(file_exists(journal));
    ASSERT_TRUE(file_exists(young)); /* a rebuild under way */
    ASSERT_TRUE(file_exists(index));
    ASSERT_EQ_INT(u.part[MH_CACHE_INDEX].files, 2);
    ASSERT_EQ_INT(u.part[MH_CACHE_INDEX].bytes, 1300);
    /* Counting alone removes nothing. */
    tmp = cached("discovery.db.tmp-4242-0a1b2c3d4e5f", 300, 1);
    ASSERT_STATUS(mh_host_prune_cache(h, -1, &u, ERR), MH_OK);
    ASSERT_TRUE(file_exists(tmp));
    mh_host_free(h);
}

/* What a writer killed mid-way left goes from every part, http/ too,
 * once older than a live writer's: nothing reads it, and a warm cache's
 * writers, which sweep only after a write of their own, may never write
 * there again. */
TEST(a_prune_removes_what_killed_writers_left_in_every_part)
{
    const char *floor = cached("http/site1/serial", 5, 400);
    const char *http_tmp = cached("http/site1/.tmp-0a1b2c3d4e5f", 300, 1);
    const char *lua_tmp = cached("lua/.tmp-a1b2c3d4e5f6", 100, 1);
    const char *young = cached("http/site1/.tmp-0a1b2c3d4e60", 300, 0);
    const char *not_ours = cached("http/site1/.tmp-notours", 7, 40);
    mh_host *h = cache_host();
    mh_cache_usage u = {.size = sizeof u};
    /* Counting alone removes nothing. */
    ASSERT_STATUS(mh_host_prune_cache(h, -1, &u, ERR), MH_OK);
    ASSERT_TRUE(file_exists(http_tmp));
    ASSERT_STATUS(mh_host_prune_cache(h, 30 * DAY, &u, ERR), MH_OK);
    ASSERT_FALSE(file_exists(http_tmp));
    ASSERT_FALSE(file_exists(lua_tmp));
    ASSERT_TRUE(file_exists(young)); /* a write under way */
    ASSERT_TRUE(file_exists(not_ours));
    ASSERT_TRUE(file_exists(floor));
    ASSERT_EQ_INT(u.part[MH_CACHE_HTTP].removed_files, 1);
    ASSERT_EQ_INT(u.part[MH_CACHE_HTTP].removed_bytes, 300);
    ASSERT_EQ_INT(u.part[MH_CACHE_HTTP].files, 3);
    ASSERT_EQ_INT(u.part[MH_CACHE_BYTECODE].removed_files, 1);
    mh_host_free(h);
}

TEST(a_copy_takes_its_stamp_and_its_origin_record)
{
    /* An old copy goes, with its stamp even though that was read today,
     * and its origin's record; a record whose copy stays is kept, and one
     * that names no copy or holds no digest goes. */
    const char *old = cached("blobs/" SHA_A "." TAG_1, 200, 40);
    const char *stamp = cached("verified/" SHA_A "." TAG_1, 30, 0);
    const char *rec = cached("blobs/origins/" TAG_1, 0, 0);
    file_write(rec, SHA_A);
    const char *kept = cached("blobs/" SHA_B "." TAG_2, 200, 0);
    const char *kept_stamp = cached("verified/" SHA_B "." TAG_2, 30, 0);
    const char *kept_rec = cached("blobs/origins/" TAG_2, 0, 0);
    file_write(kept_rec, SHA_B);
    /* A record is read only when its origin's next copy is kept: old as
     * it is, it stays while its copy does. */
    set_days(kept_rec, 400, 400);
    const char *stray = cached("blobs/origins/1111111111111111", 0, 0);
    file_write(stray, SHA_B);
    const char *junk = cached("blobs/origins/2222222222222222", 0, 0);
    file_write(junk, "not a digest");
    mh_host *h = cache_host();
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, 30 * DAY, &u, ERR), MH_OK);
    ASSERT_FALSE(file_exists(old));
    ASSERT_FALSE(file_exists(stamp));
    ASSERT_FALSE(file_exists(rec));
    ASSERT_FALSE(file_exists(stray));
    ASSERT_FALSE(file_exists(junk));
    ASSERT_TRUE(file_exists(kept));
    ASSERT_TRUE(file_exists(kept_stamp));
    ASSERT_TRUE(file_exists(kept_rec));
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].removed_files, 4);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].files, 2);
    ASSERT_EQ_INT(u.part[MH_CACHE_STAMPS].removed_files, 1);
    ASSERT_EQ_INT(u.part[MH_CACHE_STAMPS].files, 1);
    /* Counting alone removes no record, whatever it names. */
    file_write(rec, SHA_A);
    ASSERT_STATUS(mh_host_prune_cache(h, -1, &u, ERR), MH_OK);
    ASSERT_TRUE(file_exists(rec));
    mh_host_free(h);
}

TEST(a_pruned_copy_is_kept_again_at_the_next_import)
{
    /* The real thing: a database module's copy, kept by an import,
     * pruned; a new host still imports the module, from its row, and
     * keeps the copy again. */
    const char *db = db_make(tmp_path("p.db"), "counter:m.so");
    host_opts o = {0};
    mh_host *h = host_new_opts(&o, db);
    ASSERT_EQ_INT(call_int(import_ok(h, "m"), "value"), 42);
    mh_host_free(h);
    long copies = dir_count(tmp_path("cache/blobs"));
    ASSERT_EQ_INT(copies, 2); /* the copy and origins/ */
    /* Written just now: even 0 leaves it (a host may be about to map it). */
    h = host_new_opts(&o, db);
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, 0, &u, ERR), MH_OK);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].removed_files, 0);
    set_days_all(tmp_path("cache/blobs"), 1);
    ASSERT_STATUS(mh_host_prune_cache(h, 0, &u, ERR), MH_OK);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].removed_files, 2);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].files, 0);
    ASSERT_EQ_INT(dir_count(tmp_path("cache/blobs")), 1);
    ASSERT_EQ_INT(dir_count(tmp_path("cache/blobs/origins")), 0);
    ASSERT_EQ_INT(call_int(import_ok(h, "m"), "value"), 42);
    mh_host_free(h);
    ASSERT_EQ_INT(dir_count(tmp_path("cache/blobs")), 2);
    ASSERT_EQ_INT(dir_count(tmp_path("cache/blobs/origins")), 1);
}

TEST(nothing_outside_the_cache_is_reached)
{
    /* Links in the cache are neither followed nor counted: an old file
     * outside, linked from lua/, stays; a part that is a link is
     * refused by name, with what was there left as it was. */
    const char *outside = tmp_path("outside.mhc");
    file_write(outside, "keep me");
    set_days(outside, 400, 400);
    mkdir_p(tmp_path("elsewhere"));
    const char *far = tmp_path("elsewhere/x.ok");
    file_write(far, "keep me too");
    set_days(far, 400, 400);
    cached("lua/real.lua54-4.mhc", 10, 400);
    ASSERT_EQ_INT(symlink(outside, tmp_path("cache/lua/link.mhc")), 0);
    ASSERT_EQ_INT(symlink(tmp_path("elsewhere"), tmp_path("cache/probe")), 0);
    mh_host *h = cache_host();
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, 0, &u, ERR), MH_EIO);
    ASSERT_CONTAINS(ERR_MSG(), "/cache/probe");
    ASSERT_TRUE(file_exists(outside));
    ASSERT_TRUE(file_exists(far));
    ASSERT_FALSE(file_exists(tmp_path("cache/lua/real.lua54-4.mhc")));
    ASSERT_EQ_INT(u.part[MH_CACHE_BYTECODE].removed_files, 1);
    ASSERT_EQ_INT(u.part[MH_CACHE_PROBES].removed_files, 0);
    mh_host_free(h);
}

TEST(a_cache_that_is_not_private_is_refused)
{
    const char *bc = cached("lua/old.lua54-4.mhc", 10, 400);
    mh_host *h = cache_host();
    ASSERT_EQ_INT(chmod(tmp_path("cache"), 0777), 0);
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, 0, &u, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), tmp_path("cache"));
    ASSERT_TRUE(file_exists(bc));
    ASSERT_EQ_INT(u.part[MH_CACHE_BYTECODE].files, 0);
    mh_host_free(h);
}

TEST(no_cache_directory_yet_counts_nothing_and_makes_none)
{
    host_opts o = {.cache_dir = tmp_path("not-yet/cache")};
    mh_host *h = host_new_opts(&o, tmp_dir());
    mh_cache_usage u;
    memset(&u, 0xff, sizeof u);
    u.size = sizeof u;
    ASSERT_STATUS(mh_host_prune_cache(h, 0, &u, ERR), MH_OK);
    for (int i = 0; i < MH_CACHE_NPARTS; i++)
        ASSERT_EQ_INT(u.part[i].files + u.part[i].removed_files, 0);
    ASSERT_FALSE(file_exists(tmp_path("not-yet")));
    ASSERT_STATUS(mh_host_prune_cache(h, 0, NULL, ERR), MH_EINVAL);
    ASSERT_STATUS(mh_host_prune_cache(NULL, 0, &u, ERR), MH_EINVAL);
    u.size = 0;
    ASSERT_STATUS(mh_host_prune_cache(h, 0, &u, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "usage->size");
    mh_host_free(h);
}

TEST(no_cache_directory_yet_under_a_public_one_is_refused)
{
    /* It does not exist, and it never could be made private there: the
     * count says so, as every host would, instead of "nothing cached". */
    ASSERT_EQ_INT(mkdir(tmp_path("pub"), 0700), 0);
    ASSERT_EQ_INT(chmod(tmp_path("pub"), 0777), 0);
    host_opts o = {.cache_dir = tmp_path("pub/modhost")};
    mh_host *h = host_new_opts(&o, tmp_dir());
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, -1, &u, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), tmp_path("pub"));
    ASSERT_CONTAINS(ERR_MSG(), "writable by group or others");
    ASSERT_FALSE(file_exists(tmp_path("pub/modhost")));
    mh_host_free(h);
}

TEST(fetch_where_no_blob_can_be_kept_says_so_first)
{
    /* A cache directory others may write (no sticky bit): its blobs/
     * could not be private, so nothing fetched would stay. */
    const char *pub = tmp_path("pub");
    ASSERT_EQ_INT(mkdir(pub, 0700), 0);
    ASSERT_EQ_INT(chmod(pub, 0777), 0);
    fixture_copy("counter", "E/counter.so");
    host_opts o = {.cache_dir = pub};
    mh_host *h = host_new_opts(&o, tmp_path("E"));
    const char *names[] = {"counter"};
    ASSERT_STATUS(mh_fetch(h, names, 1, NULL, NULL, NULL, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "nothing can be cached");
    ASSERT_CONTAINS(ERR_MSG(), pub);
    ASSERT_EQ_INT(dir_count(pub), 0);
    mh_host_free(h);
}

TEST(a_cache_directory_the_process_cannot_look_at_is_no_empty_cache)
{
    /* lstat's EACCES was taken for "not there yet": the count said the
     * cache was empty. */
    if (geteuid() != 0)
        SKIP("counts as uid 65534, which needs root");
    ASSERT_EQ_INT(chmod(tmp_dir(), 0755), 0);
    const char *priv = tmp_mkdir("priv");
    tmp_mkdir("priv/modhost");
    ASSERT_EQ_INT(chmod(priv, 0744), 0); /* readable, not searchable */
    host_opts o = {.cache_dir = tmp_path("priv/modhost")};
    mh_host *h = host_new_opts(&o, tmp_dir());
    mh_cache_usage u = {.size = sizeof u};
    if (seteuid(65534) != 0)
        FAIL("seteuid(65534): %s", strerror(errno));
    mh_status rc = mh_host_prune_cache(h, -1, &u, ERR);
    if (seteuid(0) != 0)
        FAIL("seteuid(0): %s", strerror(errno));
    ASSERT_STATUS(rc, MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), tmp_path("priv/modhost"));
    ASSERT_CONTAINS(ERR_MSG(), "Permission denied");
    mh_host_free(h);
}

TEST(downloads_a_cached_index_lists_stay)
{
    /* What `fetch` kept for offline use stays while the site's cached
     * index lists it, however long unused; a download no index lists
     * ages as anything else, and so do those of an index that cannot be
     * read. */
    http_server *srv = http_start(http_site(NULL), "--max-age 0");
    const char *entry = http_url(srv, "ok/");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = http_host(entry, &lc);
    size_t fetched = 0;
    ASSERT_STATUS(mh_fetch(h, NULL, 0, NULL, NULL, &fetched, ERR), MH_OK);
    ASSERT_EQ_INT(fetched, 3);
    mh_host_free(h);
    http_stop(srv);
    ASSERT_EQ_INT(http_blob_count(), 2);
    const char *stray = cached("blobs/" SHA_A, 100, 40);
    set_days_all(tmp_path("cache/blobs"), 40);

    h = http_host(entry, &lc);
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, 30 * DAY, &u, ERR), MH_OK);
    ASSERT_FALSE(file_exists(stray));
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].removed_files, 1);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].files, 2);
    /* Offline, the module is still there. */
    ASSERT_EQ_INT(call_int(import_ok(h, "answer7"), "value"), 7);
    mh_host_free(h);

    const char *idx = sh_run(str_fmt("ls %s/*/index.json",
                                     sh_quote(tmp_path("cache/http"))), NULL);
    const char *idx_path = str_fmt("%.*s", (int)strcspn(idx, "\n"), idx);
    /* An index there but not readable (here a directory in its place)
     * might list them all: every download stays. */
    const char *saved = tmp_path("index.json.saved");
    ASSERT_EQ_INT(rename(idx_path, saved), 0);
    ASSERT_EQ_INT(mkdir(idx_path, 0700), 0);
    h = http_host(entry, &lc);
    ASSERT_STATUS(mh_host_prune_cache(h, 30 * DAY, &u, ERR), MH_OK);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].removed_files, 0);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].files, 2);
    mh_host_free(h);
    ASSERT_EQ_INT(rmdir(idx_path), 0);
    ASSERT_EQ_INT(rename(saved, idx_path), 0);
    /* A damaged one lists nothing: the finder cannot use it either. */
    file_write(idx_path, "{");
    set_days_all(tmp_path("cache/blobs"), 40);
    h = http_host(entry, &lc);
    ASSERT_STATUS(mh_host_prune_cache(h, 30 * DAY, &u, ERR), MH_OK);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].removed_files, 2);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].files, 0);
    mh_host_free(h);
    log_capture_free(&lc);
}

TEST(what_was_touched_in_the_last_minutes_stays)
{
    /* A host may be between writing a file and renaming, linking or
     * loading it: nothing touched in the last ten minutes goes, not even
     * at 0; older than that, everything. */
    const char *fresh = cached("native/m-0011223344556677.so", 7, 0);
    const char *read = cached("probe/r.ok", 7, 40);
    struct timespec ts[2] = {{time(NULL) - 60, 0}, {time(NULL) - 40 * DAY, 0}};
    ASSERT_EQ_INT(utimensat(AT_FDCWD, read, ts, 0), 0);
    const char *older = cached("native/n-0011223344556677.so", 7, 0);
    ts[0].tv_sec = ts[1].tv_sec = time(NULL) - 11 * 60;
    ASSERT_EQ_INT(utimensat(AT_FDCWD, older, ts, 0), 0);
    mh_host *h = cache_host();
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, 0, &u, ERR), MH_OK);
    ASSERT_TRUE(file_exists(fresh));
    ASSERT_TRUE(file_exists(read));
    ASSERT_FALSE(file_exists(older));
    mh_host_free(h);
}

TEST(an_access_time_counts_for_a_day_more)
{
    /* relatime moves an access time at most once a day: one 30 hours old
     * may stand for a read 6 hours ago, which --prune 1 must keep; one
     * 50 hours old is at least 26 hours old in truth. */
    const char *maybe = cached("lua/a.lua54-4.mhc", 10, 40);
    const char *surely = cached("lua/b.lua54-4.mhc", 10, 40);
    struct timespec ts[2] = {{time(NULL) - 30 * 3600, 0},
                             {time(NULL) - 40 * DAY, 0}};
    ASSERT_EQ_INT(utimensat(AT_FDCWD, maybe, ts, 0), 0);
    ts[0].tv_sec = time(NULL) - 50 * 3600;
    ASSERT_EQ_INT(utimensat(AT_FDCWD, surely, ts, 0), 0);
    mh_host *h = cache_host();
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, DAY, &u, ERR), MH_OK);
    ASSERT_TRUE(file_exists(maybe));
    ASSERT_FALSE(file_exists(surely));
    mh_host_free(h);
}

TEST(a_caller_built_with_fewer_parts_gets_only_those)
{
    /* usage->size says how many parts the caller's header had: the
     * library writes no further. */
    cached("lua/x.lua54-4.mhc", 100, 1);
    cached("blobs/" SHA_A, 200, 1);
    cached("discovery.db", 1000, 1);
    mh_host *h = cache_host();
    mh_cache_usage u;
    memset(&u, 0xee, sizeof u);
    u.size = offsetof(mh_cache_usage, part) + 2 * sizeof u.part[0];
    ASSERT_STATUS(mh_host_prune_cache(h, -1, &u, ERR), MH_OK);
    ASSERT_EQ_INT(u.part[MH_CACHE_BYTECODE].bytes, 100);
    ASSERT_EQ_INT(u.part[MH_CACHE_BLOBS].bytes, 200);
    ASSERT_EQ_INT(u.part[MH_CACHE_STAMPS].files, 0xeeeeeeeeeeeeeeeeull);
    ASSERT_EQ_INT(u.part[MH_CACHE_INDEX].bytes, 0xeeeeeeeeeeeeeeeeull);
    mh_host_free(h);
}

TEST(a_cache_directory_that_is_a_link_is_refused_by_every_part)
{
    /* The discovery index refused a cache directory that is a symbolic
     * link while the blob cache kept copies through it: one rule now. */
    const char *real = tmp_mkdir("real-cache");
    ASSERT_EQ_INT(chmod(real, 0700), 0);
    ASSERT_EQ_INT(symlink(real, tmp_path("cache")), 0);
    const char *db = db_make(tmp_path("p.db"), "counter:m.so");
    lua_write("lm.lua", "return {v = function() return 5 end}\n");
    host_opts o = {0};
    mh_host *h = host_new_opts(&o, db, tmp_dir());
    ASSERT_EQ_INT(call_int(import_ok(h, "m"), "value"), 42);
    import_ok(h, "lm");
    ASSERT_EQ_INT(dir_count(real), 0);
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, 0, &u, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "symbolic link");
    mh_host_free(h);
    /* "DIR/" names the directory the link leads to: the same refusal. */
    o.cache_dir = tmp_path("cache/");
    h = host_new_opts(&o, db, tmp_dir());
    ASSERT_EQ_STR(mh_host_cache_dir(h), tmp_path("cache"));
    ASSERT_EQ_INT(call_int(import_ok(h, "m"), "value"), 42);
    import_ok(h, "lm");
    ASSERT_EQ_INT(dir_count(real), 0);
    mh_host_free(h);
}

/* ------------------------------------------- times at the ends of time */

/* The ends of a 64-bit time, less a little: tmpfs keeps them (ext4 clamps
 * to 2446), and any user may give their files such times. */
#define END_OF_TIME 9223372036854775000LL

/* tmp_path("cache") on a tmpfs, in a mount namespace of the case's own
 * (each case is a process of its own): one that keeps file times as set.
 * Skips the case where no mount may be made. */
static void cache_on_tmpfs(void)
{
    if (unshare(CLONE_NEWNS) != 0 ||
        mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        SKIP("no mount namespace of its own here: %s", strerror(errno));
    mkdir_p(tmp_path("cache"));
    if (mount("tmpfs", tmp_path("cache"), "tmpfs", 0, "mode=0700,size=1m") != 0)
        SKIP("cannot mount a tmpfs here: %s", strerror(errno));
}

/* Give path these access and modification times (seconds), and see that
 * the filesystem kept them. */
static void set_times(const char *path, long long atime, long long mtime)
{
    struct timespec ts[2] = {{(time_t)atime, 0}, {(time_t)mtime, 0}};
    struct stat st;
    ASSERT_EQ_INT(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
    ASSERT_EQ_INT(stat(path, &st), 0);
    ASSERT_EQ_INT(st.st_atim.tv_sec, atime);
    ASSERT_EQ_INT(st.st_mtim.tv_sec, mtime);
}

TEST(a_prune_takes_access_times_at_the_ends_of_time_for_recent)
{
    /* atime + a day, and now - a time long before 1970, overflowed (UBSan
     * stopped `modhost cache --prune 1`): an age that cannot be told
     * keeps the file, one that can still decides. */
    cache_on_tmpfs();
    long long now = (long long)time(NULL);
    const char *future = cached("lua/f.lua54-4.mhc", 10, 40);
    set_times(future, END_OF_TIME, now - 40 * DAY);
    const char *past = cached("lua/p.lua54-4.mhc", 10, 40);
    set_times(past, -END_OF_TIME, -END_OF_TIME);
    const char *old = cached("lua/o.lua54-4.mhc", 10, 40);
    mh_host *h = cache_host();
    mh_cache_usage u = {.size = sizeof u};
    for (int i = 0; i < 2; i++) {
        ASSERT_STATUS(mh_host_prune_cache(h, i ? 0 : DAY, &u, ERR), MH_OK);
        ASSERT_TRUE(file_exists(future));
        ASSERT_TRUE(file_exists(past));
        ASSERT_FALSE(file_exists(old));
    }
    mh_host_free(h);
    ASSERT_EQ_INT(umount(tmp_path("cache")), 0);
}

TEST(a_sweep_takes_modification_times_at_the_ends_of_time_for_recent)
{
    /* now - mtime overflowed for a killed writer's leftover dated long
     * before 1970: it cannot be told to be stale, so it stays. */
    cache_on_tmpfs();
    const char *past = cached("lua/.tmp-abcdef012345", 10, 40);
    set_times(past, -END_OF_TIME, -END_OF_TIME);
    const char *future = cached("lua/.tmp-abcdef012346", 10, 40);
    set_times(future, END_OF_TIME, END_OF_TIME);
    const char *stale = cached("lua/.tmp-abcdef012347", 10, 1);
    mh_host *h = cache_host();
    mh_cache_usage u = {.size = sizeof u};
    ASSERT_STATUS(mh_host_prune_cache(h, DAY, &u, ERR), MH_OK);
    ASSERT_TRUE(file_exists(past));
    ASSERT_TRUE(file_exists(future));
    ASSERT_FALSE(file_exists(stale));
    mh_host_free(h);
    ASSERT_EQ_INT(umount(tmp_path("cache")), 0);
}
