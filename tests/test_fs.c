/*
 * test_fs.c -- the file system finder: its directory cache (stale after a
 * change until invalidated or the mtime moves), mh_find (where a module
 * would come from, without loading it) and mh_list (every visible module,
 * in name order, first entry winning).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>
#include <errno.h>
#include <stdbool.h>

#include "support/support.h"
#include <modhost/finder.h>
#include "test.h"

/* A directory last changed long ago, so no "modified just now" leeway in
 * the finder's cache applies: what it sees depends on the mtime alone. */
#define OLD_TIME 1000000000LL /* 2001 */

/* Importing name from host fails: not found. */
static void misses(mh_host *host, const char *name)
{
    mh_module *mod;
    ASSERT_STATUS(mh_import(host, name, &mod, ERR), MH_ENOTFOUND);
}

/* Importing name from host gives a working copy of the counter fixture. */
static void finds_counter(mh_host *host, const char *name)
{
    ASSERT_EQ_INT(call_int(import_ok(host, name), "value"), 42);
}

TEST(invalidate_caches_sees_new_module)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host = host_new_isolated(dir);

    file_set_mtime(dir, OLD_TIME);
    /* A first import lists the directory (and may cache the listing). */
    misses(host, "late");
    fixture_copy("counter", "E/late.so");
    file_set_mtime(dir, OLD_TIME); /* the change is invisible to stat */
    mh_invalidate_caches(host);
    finds_counter(host, "late");
    mh_host_free(host);
}

TEST(changed_directory_mtime_sees_new_module)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host = host_new_isolated(dir);

    file_set_mtime(dir, OLD_TIME);
    misses(host, "late");
    fixture_copy("counter", "E/late.so");
    /* Still long ago, but a different mtime: no invalidation needed. */
    file_set_mtime(dir, OLD_TIME + 100);
    finds_counter(host, "late");
    mh_host_free(host);
}

TEST(changed_directory_mtime_sees_removed_module)
{
    const char *dir = tmp_mkdir("E");
    const char *path = fixture_copy("counter", "E/gone.so");
    mh_host *host = host_new_isolated(dir);
    mh_spec_info info = {.size = sizeof info};

    file_set_mtime(dir, OLD_TIME);
    ASSERT_STATUS(mh_find(host, "gone", &info, ERR), MH_OK);
    ASSERT_EQ_INT(unlink(path), 0);
    file_set_mtime(dir, OLD_TIME + 100);
    ASSERT_STATUS(mh_find(host, "gone", &info, ERR), MH_ENOTFOUND);
    mh_host_free(host);
}

TEST(invalidate_caches_sees_new_package_directory)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host = host_new_isolated(dir);

    file_set_mtime(dir, OLD_TIME);
    misses(host, "pkg.late");
    fixture_copy("counter", "E/pkg/late.so");
    file_set_mtime(dir, OLD_TIME);
    mh_invalidate_caches(host);
    import_ok(host, "pkg.late");
    mh_host_free(host);
}

/* Where name would come from (its origin), or the status of the miss. */
static const char *found_at(mh_host *host, const char *name)
{
    mh_spec_info info = {.size = sizeof info};
    mh_status rc = mh_find(host, name, &info, NULL);
    return rc == MH_OK ? str_fmt("%s", info.origin) : mh_status_name(rc);
}

TEST(a_mount_over_a_package_directory_is_seen)
{
    /* inotify says nothing of a mount over a watched directory: the
     * listing from before it was used for the host's life (modules under
     * the mount missed, those it hides "found" and failing to load). */
    /* In a mount namespace of the case's own (each case is a process of
     * its own), so that cases running beside it, whose hosts see every
     * change of the mount table, do not see this one. */
    if (unshare(CLONE_NEWNS) != 0 ||
        mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0)
        SKIP("no mount namespace of its own here: %s", strerror(errno));
    const char *pkg = tmp_mkdir("E/pkg");
    fixture_copy("counter", "E/pkg/a.so");
    fixture_copy("answer7", "E2/pkg/a.so");
    mh_host *host = host_new_isolated(tmp_path("E"), tmp_path("E2"));
    ASSERT_EQ_STR(found_at(host, "pkg.a"), tmp_path("E/pkg/a.so"));
    ASSERT_EQ_STR(found_at(host, "pkg.b"), "MH_ENOTFOUND");
    if (mount("none", pkg, "tmpfs", 0, "mode=0755") != 0) {
        mh_host_free(host);
        SKIP("cannot mount a tmpfs here: %s", strerror(errno));
    }
    fixture_copy("counter", "E/pkg/b.so"); /* into the mount */
    const char *a = found_at(host, "pkg.a"), *b = found_at(host, "pkg.b");
    mh_module *mod = NULL;
    mh_status brc = mh_import(host, "pkg.b", &mod, NULL);
    int value = brc == MH_OK ? call_int(mod, "value") : -1;
    mh_host_free(host); /* nothing of the mount stays mapped */
    int un = umount(pkg);
    ASSERT_EQ_INT(un, 0);
    ASSERT_EQ_STR(a, tmp_path("E2/pkg/a.so")); /* E's is hidden */
    ASSERT_EQ_STR(b, tmp_path("E/pkg/b.so"));
    ASSERT_STATUS(brc, MH_OK);
    ASSERT_EQ_INT(value, 42);
}

/* mh_list callback: is the name ud->want listed? */
struct want_listed {
    const char *want;
    int seen;
    size_t n;
};

static int note_listed(void *ud, const mh_spec_info *info)
{
    struct want_listed *w = ud;
    w->seen += strcmp(info->name, w->want) == 0;
    w->n++;
    return 0;
}

TEST(list_goes_as_deep_as_a_name_can)
{
    /* Past 64 package levels, list left modules out, silently, which
     * import found (a name may have about 128 levels). */
    char rel[512] = "E", name[300] = "";
    for (int i = 0; i < 100; i++) {
        strcat(rel, "/a");
        strcat(name, "a.");
    }
    tmp_mkdir("%s", rel);
    fixture_copy("counter", "%s/m.so", rel);
    strcat(name, "m");
    mh_host *host = host_new_isolated(tmp_path("E"));
    struct want_listed w = {name, 0, 0};
    ASSERT_STATUS(mh_list(host, note_listed, &w, ERR), MH_OK);
    ASSERT_EQ_INT(w.seen, 1);
    ASSERT_EQ_INT(call_int(import_ok(host, name), "value"), 42);
    mh_host_free(host);
}

TEST(find_does_not_load)
{
    const char *path = fixture_copy("init_fails", "E/refuser.so");
    mh_host *host;
    mh_spec_info info;

    env_set("MH_FIXTURE_MARKER", tmp_path("marker"));
    host = host_new_isolated(tmp_path("E"));
    memset(&info, 0, sizeof info);
    info.size = sizeof info;
    ASSERT_STATUS(mh_find(host, "refuser", &info, ERR), MH_OK);
    ASSERT_EQ_PTR(info.name, mh_intern_lookup(host, "refuser"));
    ASSERT_EQ_STR(info.name, "refuser");
    ASSERT_EQ_STR(info.origin, path);
    ASSERT_EQ_STR(info.finder, "fs");
    ASSERT_EQ_STR(info.loader, "native");
    ASSERT_EQ_INT(info.kind, MH_KIND_NATIVE);
    ASSERT_EQ_INT(info.entry_index, 0);
    ASSERT_NULL(mh_host_module(host, "refuser"));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    ASSERT_FALSE(file_exists(tmp_path("marker")));
    mh_host_free(host);
    ASSERT_FALSE(file_exists(tmp_path("marker")));
}

TEST(find_then_import_runs_init_once)
{
    mh_host *host;
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;

    fixture_copy("counter", "E/counter.so");
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_find(host, "counter", &info, ERR), MH_OK);
    ASSERT_STATUS(mh_find(host, "counter", &info, ERR), MH_OK);
    mod = import_ok(host, "counter");
    ASSERT_EQ_INT(call_int(mod, "init_count"), 1);
    ASSERT_EQ_STR(mh_module_origin(mod), info.origin);
    mh_host_free(host);
}

TEST(find_reports_entry_index)
{
    const char *path;
    mh_host *host;
    mh_spec_info info = {.size = sizeof info};

    tmp_mkdir("E1");
    path = fixture_copy("counter", "E2/pkg/mod.so");
    host = host_new_isolated(tmp_path("missing"), tmp_path("E1"), tmp_path("E2"));
    ASSERT_STATUS(mh_find(host, "pkg.mod", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.entry_index, 2);
    ASSERT_EQ_STR(info.origin, path);
    mh_host_free(host);
}

TEST(find_namespace)
{
    mh_host *host;
    mh_spec_info info = {.size = sizeof info};

    fixture_copy("counter", "E1/ns/one.so");
    fixture_copy("counter", "E2/ns/two.so");
    host = host_new_isolated(tmp_path("E1"), tmp_path("E2"));
    ASSERT_STATUS(mh_find(host, "ns", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_NAMESPACE);
    ASSERT_EQ_STR(info.loader, "namespace");
    ASSERT_EQ_STR(info.origin, tmp_path("E1/ns"));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
}

TEST(find_not_found_lists_entries)
{
    const char *e1 = tmp_mkdir("E1");
    const char *missing = tmp_path("missing");
    mh_host *host = host_new_isolated(e1, missing);
    mh_spec_info info = {.size = sizeof info};

    ASSERT_STATUS(mh_find(host, "nope.nothing", &info, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "nope.nothing");
    ASSERT_CONTAINS(ERR_MSG(), e1);
    ASSERT_CONTAINS(ERR_MSG(), missing);
    mh_host_free(host);
}

/* ----------------------------------------------------------------- list */

#define MAX_LISTED 64

struct listing {
    mh_host *host;
    size_t n;
    const char *names[MAX_LISTED];
    const char *origins[MAX_LISTED];
    mh_module_kind kinds[MAX_LISTED];
    int stop_after;
};

static int collect(void *ud, const mh_spec_info *info)
{
    struct listing *l = ud;

    if (l->n == MAX_LISTED)
        FAIL("mh_list reported more than %d modules", MAX_LISTED);
    if (info == NULL || info->name == NULL)
        FAIL("mh_list passed a NULL info or name");
    l->names[l->n] = str_fmt("%s", info->name);
    l->origins[l->n] = str_fmt("%s", info->origin ? info->origin : "(null)");
    l->kinds[l->n] = info->kind;
    l->n++;
    return l->stop_after && (int)l->n >= l->stop_after;
}

static const char *joined_names(const struct listing *l)
{
    const char *s = "";
    for (size_t i = 0; i < l->n; i++)
        s = str_fmt("%s%s%s", s, i ? "," : "", l->names[i]);
    return s;
}

TEST(list_in_name_order_first_entry_wins)
{
    const char *b1, *a2, *c2;
    struct listing l = {0};
    mh_host *host;

    b1 = fixture_copy("init_fails", "E1/beta.so");
    a2 = fixture_copy("init_fails", "E2/alpha.so");
    fixture_copy("init_fails", "E2/beta.so");
    c2 = fixture_copy("init_fails", "E2/gamma.so");
    env_set("MH_FIXTURE_MARKER", tmp_path("marker"));
    host = host_new_isolated(tmp_path("E1"), tmp_path("E2"));
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "alpha,beta,gamma");
    ASSERT_EQ_STR(l.origins[0], a2);
    ASSERT_EQ_STR(l.origins[1], b1);
    ASSERT_EQ_STR(l.origins[2], c2);
    ASSERT_EQ_INT(l.kinds[1], MH_KIND_NATIVE);
    /* Listing loads nothing. */
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    ASSERT_FALSE(file_exists(tmp_path("marker")));
    mh_host_free(host);
}

TEST(list_stops_when_callback_says_so)
{
    struct listing l = {0};
    mh_host *host;

    fixture_copy("counter", "E/a1.so");
    fixture_copy("counter", "E/a2.so");
    fixture_copy("counter", "E/a3.so");
    host = host_new_isolated(tmp_path("E"));
    l.stop_after = 1;
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_INT(l.n, 1);
    ASSERT_EQ_STR(l.names[0], "a1");
    mh_host_free(host);
}

TEST(list_ignores_other_files)
{
    struct listing l = {0};
    mh_host *host;

    fixture_copy("counter", "E/real.so");
    file_write(tmp_path("E/notes.txt"), "not a module\n");
    file_write(tmp_path("E/old.so.bak"), "not a module\n");
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "real");
    mh_host_free(host);
}

TEST(bytecode_cache_directories_are_not_packages)
{
    /* __mhcache__ (modhost's bytecode beside its sources) and __pycache__
     * are caches, never packages: not listed, not found. */
    struct listing l = {0};
    mh_host *host;

    fixture_copy("counter", "E/real.so");
    tmp_mkdir("E/__mhcache__");
    tmp_mkdir("E/__pycache__");
    fixture_copy("counter", "E/__mhcache__/a.so");
    fixture_copy("counter", "E/__pycache__/b.so");
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "real");
    misses(host, "__mhcache__.a");
    misses(host, "__pycache__.b");
    mh_host_free(host);
}

TEST(list_skips_unimportable_names)
{
    /* A file whose name breaks the grammar can never be imported, so it
     * is not a visible module. */
    struct listing l = {0};
    mh_host *host;

    fixture_copy("counter", "E/real.so");
    fixture_copy("counter", "E/not-valid.so");
    fixture_copy("counter", "E/9lives.so");
    host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "real");
    mh_host_free(host);
}

TEST(list_skips_missing_entry)
{
    struct listing l = {0};
    mh_host *host;

    fixture_copy("counter", "E/only.so");
    host = host_new_isolated(tmp_path("missing"), tmp_path("E"));
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "only");
    mh_host_free(host);
}

/* ud: the fault site that fails every time ("inotify": no instance;
 * "watch": an instance, but no watch can be added, as when the user's
 * watches have run out). */
static int failing_site(void *ud, const char *site)
{
    return strcmp(site, ud) == 0;
}

/* An isolated host searching dir where inotify fails at `site`:
 * directories are checked with stat() at each use.  With lc, it traces
 * every decision into lc. */
static mh_host *host_failing_at(const char *dir, const char *site,
                                log_capture *lc)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH |
                (lc ? MH_CONFIG_VERBOSE : 0);
    cfg.path = dir;
    cfg.fault = failing_site;
    cfg.fault_ud = (void *)site;
    cfg.log = lc ? log_capture_fn : NULL;
    cfg.log_ud = lc;
    return host_new_cfg(&cfg);
}

static mh_host *host_without_inotify(const char *dir)
{
    return host_failing_at(dir, "inotify", NULL);
}

/* host searches dir (tmp's "E", no notification): a module and a package
 * made after misses are found once the directory's mtime moves. */
static void late_arrivals_found(mh_host *host, const char *dir)
{
    file_set_mtime(dir, OLD_TIME);
    misses(host, "late");
    misses(host, "pkg.late");
    fixture_copy("counter", "E/late.so");
    tmp_mkdir("E/pkg");
    fixture_copy("counter", "E/pkg/late.so");
    file_set_mtime(dir, OLD_TIME + 100);
    import_ok(host, "late");
    import_ok(host, "pkg.late");
}

/* Make tmp/link a symbolic link to tmp/target, replacing an existing one
 * atomically (a new link renamed over it, as a deploy does). */
static void link_to(const char *target, const char *link)
{
    const char *tmp = str_fmt("%s.new", tmp_path("%s", link));
    if (symlink(tmp_path("%s", target), tmp) != 0 ||
        rename(tmp, tmp_path("%s", link)) != 0)
        FAIL("linking %s -> %s: %s", link, target, strerror(errno));
}

TEST(listing_is_cached_until_directory_changes)
{
    /* Without change notification: the directory's mtime decides. */
    const char *dir = tmp_mkdir("E");
    mh_host *host = host_without_inotify(dir);

    file_set_mtime(dir, OLD_TIME);
    misses(host, "late");
    fixture_copy("counter", "E/late.so");
    file_set_mtime(dir, OLD_TIME);
    /* Same mtime: the cached listing answers, so the new file is not seen.
     * A finder that re-read the directory on every import fails here. */
    misses(host, "late");
    mh_invalidate_caches(host);
    import_ok(host, "late");
    mh_host_free(host);
}

TEST(same_tick_change_seen_with_notification)
{
    /* With notification, a file added in the directory's same mtime tick
     * (simulated: the mtime put back) is an event: the listing is read
     * again, whatever the mtime says. */
    const char *dir = tmp_mkdir("E");
    mh_host *host = host_new_isolated(dir);

    file_set_mtime(dir, OLD_TIME);
    misses(host, "late");
    fixture_copy("counter", "E/late.so");
    file_set_mtime(dir, OLD_TIME);
    import_ok(host, "late");
    mh_host_free(host);
}

TEST(events_seen_in_directories_watched_past_the_first_thousand)
{
    /* 1,100 package directories, each watched when a miss lists it: the
     * host's watch slots grow past their first thousand.  A module added
     * in the same mtime tick (put back) is seen only through its event,
     * in the first directory watched and in the last. */
    enum { NDIRS = 1100 };
    const char *dir = tmp_mkdir("E");
    for (int i = 0; i < NDIRS; i++)
        file_set_mtime(tmp_mkdir("E/p%d", i), OLD_TIME);
    mh_host *host = host_new_isolated(dir);
    char name[32];
    for (int i = 0; i < NDIRS; i++) {
        snprintf(name, sizeof name, "p%d.m", i);
        misses(host, name);
    }
    int ends[] = {0, NDIRS - 1};
    for (size_t k = 0; k < 2; k++) {
        fixture_copy("counter", "E/p%d/m.so", ends[k]);
        file_set_mtime(tmp_path("E/p%d", ends[k]), OLD_TIME);
        snprintf(name, sizeof name, "p%d.m", ends[k]);
        finds_counter(host, name);
    }
    misses(host, "p1.m");
    mh_host_free(host);
}

TEST(package_link_inside_entry_retargeted_is_followed)
{
    /* E/pkg is a link to A; retargeting it to B is a name event in E with
     * no IN_ISDIR: the listing of E/pkg (A's) must not answer for B. */
    tmp_mkdir("E");
    tmp_mkdir("A");
    tmp_mkdir("B");
    fixture_copy("counter", "B/fresh.so");
    link_to("A", "E/pkg");
    mh_host *host = host_new_isolated(tmp_path("E"));
    misses(host, "pkg.fresh");
    misses(host, "pkg.fresh");
    link_to("B", "E/pkg");
    finds_counter(host, "pkg.fresh");
    mh_host_free(host);
}

TEST(dangling_package_link_whose_target_appears_is_followed)
{
    /* E/pkg leads to S/x, which does not exist yet: no event in E when it
     * appears, so E's listing must not answer "no package pkg". */
    tmp_mkdir("E");
    tmp_mkdir("S");
    link_to("S/x", "E/pkg");
    mh_host *host = host_new_isolated(tmp_path("E"));
    misses(host, "pkg.m");
    misses(host, "pkg.m");
    tmp_mkdir("S/x");
    fixture_copy("counter", "S/x/m.so");
    finds_counter(host, "pkg.m");
    mh_host_free(host);
}

TEST(repeated_misses_read_directory_once)
{
    const char *dir = tmp_mkdir("E");
    log_capture lc;
    mh_config cfg;
    mh_host *host;

    fixture_copy("counter", "E/here.so");
    file_set_mtime(dir, OLD_TIME);
    log_capture_init(&lc);
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH |
                MH_CONFIG_VERBOSE;
    cfg.path = dir;
    cfg.log = log_capture_fn;
    cfg.log_ud = &lc;
    host = host_new_cfg(&cfg);
    for (int i = 0; i < 5; i++)
        misses(host, "absent");
    import_ok(host, "here");
    if (log_capture_count(&lc, MH_LOG_TRACE, "reading directory") != 1)
        FAIL("want the directory read once; log:%s", log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(dangling_symlink_does_not_hide_entry)
{
    const char *e1 = tmp_mkdir("E1"), *e2 = tmp_mkdir("E2");
    const char *first = fixture_copy("counter", "E1/mod.so");
    mh_host *host;
    mh_module *mod;

    fixture_copy("counter", "E2/mod.so");
    ASSERT_EQ_INT(symlink("/nonexistent/target", tmp_path("E1/README")), 0);
    ASSERT_EQ_INT(symlink("loop", tmp_path("E1/loop")), 0);
    host = host_new_isolated(e1, e2);
    mod = import_ok(host, "mod");
    ASSERT_EQ_STR(mh_module_origin(mod), first);
    mh_host_free(host);
}

static int count_module(void *ud, const mh_spec_info *info)
{
    (void)info;
    ++*(int *)ud;
    return 0;
}

TEST(list_does_not_follow_links_back_up)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host;
    int n = 0;

    fixture_copy("counter", "E/mod.so");
    fixture_copy("counter", "E/pkg/inner.so");
    ASSERT_EQ_INT(symlink(".", tmp_path("E/a")), 0);
    ASSERT_EQ_INT(symlink(".", tmp_path("E/b")), 0);
    ASSERT_EQ_INT(symlink("..", tmp_path("E/pkg/up")), 0);
    host = host_new_isolated(dir);
    ASSERT_STATUS(mh_list(host, count_module, &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 2); /* mod and pkg.inner, nothing through a, b, up */
    mh_host_free(host);
}

TEST(list_warns_about_unreadable_entry)
{
    const char *dir = tmp_mkdir("E");
    log_capture lc;
    mh_config cfg;
    mh_host *host;
    int n = 0;

    fixture_copy("counter", "E/mod.so");
    log_capture_init(&lc);
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = str_fmt("%s;%s", tmp_path("missing"), dir);
    cfg.log = log_capture_fn;
    cfg.log_ud = &lc;
    host = host_new_cfg(&cfg);
    ASSERT_STATUS(mh_list(host, count_module, &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 1);
    if (log_capture_count(&lc, MH_LOG_WARN, tmp_path("missing")) != 1)
        FAIL("want a warning naming the missing entry; log:%s",
             log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

/* Fails the second directory read the host makes (mh_config.fault). */
static int fail_second_opendir(void *ud, const char *site)
{
    int *n = ud;
    return strcmp(site, "opendir") == 0 && ++*n == 2;
}

TEST(list_warns_about_unreadable_package_directory)
{
    /* E is read, then E/pkg cannot be: the listing goes on without its
     * modules, and says which directory it could not read. */
    const char *dir = tmp_mkdir("E");
    log_capture lc;
    int n = 0, reads = 0;

    fixture_copy("counter", "E/mod.so");
    fixture_copy("counter", "E/pkg/inner.so");
    log_capture_init(&lc);
    host_opts o = {.log = &lc, .fault = fail_second_opendir,
                   .fault_ud = &reads};
    mh_host *host = host_new_opts(&o, dir);
    ASSERT_STATUS(mh_list(host, count_module, &n, ERR), MH_OK);
    ASSERT_EQ_INT(reads, 2);
    ASSERT_EQ_INT(n, 1);
    const char *want = str_fmt("cannot list package directory %s: ",
                               tmp_path("E/pkg"));
    if (log_capture_count(&lc, MH_LOG_WARN, want) != 1 ||
        log_capture_count(&lc, MH_LOG_WARN, "its modules are not listed") != 1)
        FAIL("want a warning naming E/pkg; log:%s", log_capture_dump(&lc));
    /* readable again: listed in full, with no word */
    n = 0;
    ASSERT_STATUS(mh_list(host, count_module, &n, ERR), MH_OK);
    ASSERT_EQ_INT(n, 2);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, want), 1);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(overlong_path_is_a_miss_not_an_error)
{
    char deep[3800];
    mh_host *host;
    mh_module *mod;

    /* An entry whose name is so long that entry + module path passes
     * PATH_MAX: that entry misses, and the next one is still searched. */
    memset(deep, 'e', sizeof deep - 1);
    deep[sizeof deep - 1] = '\0';
    for (size_t i = 200; i < sizeof deep - 1; i += 200)
        deep[i] = '/';
    const char *e2 = tmp_mkdir("E2");
    char name[200];
    memset(name, 'a', 150);
    memcpy(name + 150, ".b", 3);
    fixture_copy("counter", "E2/%.150s/b.so", name);
    host = host_new_isolated(str_fmt("%s/%s", tmp_dir(), deep), e2);
    mod = import_ok(host, name);
    ASSERT_NOT_NULL(mod);
    mh_host_free(host);
}

TEST(sidecar_whose_path_passes_path_max_is_a_miss)
{
    /* An entry so deep that m.so's path fits in PATH_MAX and m.json's
     * does not: the manifest was dropped without a word, and the module
     * loaded without its checks (ABI, host version, requirements).  Now
     * it is a miss that says why, and it is not listed. */
    const char *root = tmp_dir();
    char deep[PATH_MAX];
    size_t want = 4089; /* + "/m.so" = 4094, + "/m.json" = 4096 */
    if ((want - strlen(root)) % 201 == 1)
        want++; /* the last component must have a byte */
    snprintf(deep, sizeof deep, "%s", root);
    while (strlen(deep) < want) {
        size_t room = want - strlen(deep) - 1;
        size_t c = room > 200 ? 200 : room;
        size_t n = strlen(deep);
        deep[n] = '/';
        memset(deep + n + 1, 'd', c);
        deep[n + 1 + c] = '\0';
    }
    ASSERT_EQ_INT(strlen(deep), want);
    mkdir_p(deep);
    fixture_copy("counter", "%s/m.so", deep + strlen(root) + 1);
    int dfd = open(deep, O_RDONLY | O_DIRECTORY);
    ASSERT_TRUE(dfd >= 0);
    int fd = openat(dfd, "m.json", O_WRONLY | O_CREAT | O_EXCL, 0644);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ_INT(write(fd, "{\"version\": \"1.0\"}", 18), 18);
    close(fd);
    close(dfd);

    mh_host *host = host_new_isolated(deep);
    mh_module *mod = (mh_module *)&mod;
    ASSERT_STATUS(mh_import(host, "m", &mod, ERR), MH_ENOTFOUND);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), "path of the manifest m.json would be longer "
                               "than 4095 bytes");
    struct listing l = {0};
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "");
    mh_host_free(host);
}

TEST(directory_named_like_a_module_file_is_named_in_the_miss)
{
    /* A directory E/x.so (a build went wrong, say): "no x.so" was all the
     * not-found message said, while E/x.so is there to see. */
    mh_host *host = host_new_isolated(tmp_mkdir("E"));
    tmp_mkdir("E/x.so");
    tmp_mkdir("E/pkg/y.lua");
    fixture_copy("counter", "E/x.so/inner.so");
    fixture_copy("counter", "E/real.so");
    mh_module *mod = (mh_module *)&mod;
    ASSERT_STATUS(mh_import(host, "x", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "no x.so, x.lua or x.luac (x.so is not a "
                               "regular file)");
    ASSERT_STATUS(mh_import(host, "pkg.y", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "(pkg/y.lua is not a regular file)");
    /* Other misses say nothing of it; the directory is no package, and
     * list walks nothing in it. */
    ASSERT_STATUS(mh_import(host, "z", &mod, ERR), MH_ENOTFOUND);
    ASSERT_NOT_CONTAINS(ERR_MSG(), "regular file");
    struct listing l = {0};
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "real");
    mh_host_free(host);
}

TEST(top_level_index_json_is_no_sidecar)
{
    /* A site's directory, indexed for HTTP and also on the search path:
     * index.json was read as the manifest of index.lua (once past
     * 256 KiB, index could not be imported).  (Found by review.)  Below
     * the top, index.json is a sidecar as any other. */
    mh_host *host = host_new_isolated(tmp_mkdir("E"));
    file_write(tmp_path("E/index.lua"), "return {}\n");
    file_write(tmp_path("E/index.json"), "{\"format\": 1, \"modules\": []}");
    tmp_mkdir("E/pkg");
    file_write(tmp_path("E/pkg/index.lua"), "return {}\n");
    file_write(tmp_path("E/pkg/index.json"), "{\"version\": \"2.5\"}");
    mh_manifest *m = NULL;
    ASSERT_STATUS(mh_metadata(host, "index", &m, ERR), MH_OK);
    ASSERT_EQ_STR(mh_manifest_source(m), "none");
    mh_manifest_free(m);
    ASSERT_STATUS(mh_metadata(host, "pkg.index", &m, ERR), MH_OK);
    ASSERT_EQ_STR(mh_manifest_source(m), "sidecar");
    ASSERT_EQ_STR(mh_manifest_version(m), "2.5");
    mh_manifest_free(m);
    mh_host_free(host);
}

TEST(failed_find_clears_info)
{
    const char *dir = tmp_mkdir("E");
    mh_host *host = host_new_isolated(dir);
    mh_spec_info info;

    memset(&info, 0xab, sizeof info);
    info.size = sizeof info;
    ASSERT_STATUS(mh_find(host, "absent", &info, ERR), MH_ENOTFOUND);
    ASSERT_EQ_INT(info.size, sizeof info);
    ASSERT_NULL(info.name);
    ASSERT_NULL(info.origin);
    ASSERT_NULL(info.finder);
    mh_host_free(host);
}

/* ---- change notification (finders/notify.c) ---------------------------- */

TEST(new_package_directory_seen_without_invalidate)
{
    /* A miss remembers "no directory E/pkg" (watching E); making it is
     * an event there, so the next import looks again. */
    const char *dir = tmp_mkdir("E");
    mh_host *host = host_new_isolated(dir);

    file_set_mtime(dir, OLD_TIME);
    for (int i = 0; i < 3; i++)
        misses(host, "pkg.late");
    tmp_mkdir("E/pkg");
    fixture_copy("counter", "E/pkg/late.so");
    finds_counter(host, "pkg.late");
    mh_host_free(host);
}

TEST(link_above_entry_retargeted_is_followed)
{
    /* Entry T/cur/plugins, where cur is a link: an atomic "deploy" swaps
     * the link to a new release.  The listings of the old release must
     * not answer for the new one. */
    tmp_mkdir("rel1");
    tmp_mkdir("rel1/plugins");
    tmp_mkdir("rel2");
    tmp_mkdir("rel2/plugins");
    fixture_copy("counter", "rel2/plugins/fresh.so");
    link_to("rel1", "cur");
    mh_host *host = host_new_isolated(tmp_path("cur/plugins"));
    misses(host, "fresh");
    misses(host, "fresh");
    link_to("rel2", "cur");
    finds_counter(host, "fresh");
    mh_host_free(host);
}

TEST(without_notification_directories_are_checked_each_use)
{
    /* No inotify instance: every use stats the directory, as before. */
    const char *dir = tmp_mkdir("E");
    mh_host *host = host_without_inotify(dir);
    late_arrivals_found(host, dir);
    mh_host_free(host);
}

TEST(without_watches_directories_are_checked_each_use)
{
    /* An inotify instance, but every watch refused (ENOSPC: the user's
     * fs.inotify.max_user_watches used up): the same as no instance --
     * every use stats the directory, and the trace says so. */
    const char *dir = tmp_mkdir("E");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = host_failing_at(dir, "watch", &lc);
    late_arrivals_found(host, dir);
    ASSERT_LOG(&lc, MH_LOG_TRACE, "No space left on device");
    ASSERT_LOG(&lc, MH_LOG_TRACE, "checked with stat() at each use");
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(network_filesystem_directories_are_checked_each_use)
{
    /* A directory on a filesystem that fstatfs calls remote, or cannot
     * tell ("statfs" fails here), is not trusted to inotify -- another
     * machine's changes raise no event -- but checked with stat() at each
     * use, by its mtime, and the trace says so. */
    const char *dir = tmp_mkdir("E");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *host = host_failing_at(dir, "statfs", &lc);
    late_arrivals_found(host, dir);
    ASSERT_LOG(&lc, MH_LOG_TRACE, "E is on a network filesystem: checked "
               "with stat() at each use");
    /* A module added with the mtime put back goes unseen, as one added by
     * another machine in the same timestamp tick would; seen once the
     * mtime moves. */
    fixture_copy("counter", "E/later.so");
    file_set_mtime(dir, OLD_TIME + 100);
    misses(host, "later");
    file_set_mtime(dir, OLD_TIME + 200);
    import_ok(host, "later");
    mh_host_free(host);
    log_capture_free(&lc);
    /* On a local filesystem the watch saw it. */
    host = host_new_isolated(dir);
    misses(host, "latest");
    fixture_copy("counter", "E/latest.so");
    file_set_mtime(dir, OLD_TIME + 200);
    import_ok(host, "latest");
    mh_host_free(host);
}

TEST(entry_not_there_leaves_the_other_entries_watched)
{
    /* An entry whose directories do not exist yet (the default
     * $XDG_DATA_HOME/modhost/modules, often) is watched as far as it
     * goes; the host does not fall back to stat() for every entry. */
    const char *dir = tmp_mkdir("E");
    mh_host *host = host_new_isolated(tmp_path("none/a/b"), dir);
    file_set_mtime(dir, OLD_TIME);
    misses(host, "late");
    fixture_copy("counter", "E/late.so");
    file_set_mtime(dir, OLD_TIME); /* as read: only an event tells */
    finds_counter(host, "late");
    /* And it is seen once it appears. */
    tmp_mkdir("none/a/b");
    fixture_copy("counter", "none/a/b/early.so");
    finds_counter(host, "early");
    mh_host_free(host);
}

TEST(directory_above_entry_replaced_is_watched_again)
{
    /* T/cur, above the entry, is swapped for a new directory (a release
     * renamed into place): the new one is watched as the old one was, so
     * a link retargeted in it later is seen. */
    tmp_mkdir("T/cur/E");
    tmp_mkdir("r1");
    tmp_mkdir("r2");
    fixture_copy("counter", "r2/fresh.so");
    mh_host *host = host_new_isolated(tmp_path("T/cur/E"));
    misses(host, "fresh");
    tmp_mkdir("T/new");
    link_to("r1", "T/new/E");
    ASSERT_EQ_INT(rename(tmp_path("T/cur"), tmp_path("T/old")), 0);
    ASSERT_EQ_INT(rename(tmp_path("T/new"), tmp_path("T/cur")), 0);
    misses(host, "fresh");
    misses(host, "fresh");
    link_to("r2", "T/cur/E");
    finds_counter(host, "fresh");
    mh_host_free(host);
}

/* ------------------------------------ symbolic links in an entry */

/* A link's target can appear, go or change type with no event in the
 * link's directory and no change of its mtime: a listed link is
 * followed when used, with and without notification. */

static void dangling_link_target_appears(bool notify)
{
    tmp_mkdir("E");
    tmp_mkdir("S");
    link_to("S/late.so", "E/late.so");
    file_set_mtime(tmp_path("E"), OLD_TIME);
    mh_host *host = notify ? host_new_isolated(tmp_path("E"))
                           : host_without_inotify(tmp_path("E"));
    misses(host, "late");
    misses(host, "late");
    fixture_copy("counter", "S/late.so");
    finds_counter(host, "late");
    mh_host_free(host);
}

TEST(dangling_module_link_is_found_once_its_target_appears)
{
    dangling_link_target_appears(true);
}

TEST(dangling_module_link_is_found_once_its_target_appears_without_inotify)
{
    dangling_link_target_appears(false);
}

TEST(package_link_whose_target_is_removed_is_no_package)
{
    tmp_mkdir("E");
    tmp_mkdir("S/pkg");
    link_to("S/pkg", "E/pkg");
    file_set_mtime(tmp_path("E"), OLD_TIME);
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, "pkg", &info, ERR), MH_OK);
    ASSERT_EQ_INT(rmdir(tmp_path("S/pkg")), 0);
    ASSERT_STATUS(mh_find(host, "pkg", &info, ERR), MH_ENOTFOUND);
    mh_host_free(host);
}

TEST(module_link_whose_target_is_removed_lets_the_next_entry_win)
{
    tmp_mkdir("E1");
    tmp_mkdir("E2");
    tmp_mkdir("S");
    fixture_copy("counter", "S/m.so");
    fixture_copy("counter", "E2/m.so");
    link_to("S/m.so", "E1/m.so");
    mh_host *host = host_new_isolated(tmp_path("E1"), tmp_path("E2"));
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, "m", &info, ERR), MH_OK);
    ASSERT_EQ_INT((int)info.entry_index, 0);
    ASSERT_EQ_INT(unlink(tmp_path("S/m.so")), 0);
    ASSERT_STATUS(mh_find(host, "m", &info, ERR), MH_OK);
    ASSERT_EQ_INT((int)info.entry_index, 1);
    /* Listing agrees: one m, the second entry's. */
    struct listing l = {0};
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "m");
    ASSERT_EQ_STR(l.origins[0], tmp_path("E2/m.so"));
    mh_host_free(host);
}

TEST(package_link_retargeted_below_an_unlisted_package_is_seen)
{
    /* Importing p.cur.fresh reads E/p/cur through link E/p/cur; retargeting
     * that link is an event in E/p, which is watched as well. */
    tmp_mkdir("E/p");
    tmp_mkdir("R1");
    tmp_mkdir("R2");
    fixture_copy("counter", "R2/fresh.so");
    link_to("R1", "E/p/cur");
    mh_host *host = host_new_isolated(tmp_path("E"));
    misses(host, "p.cur.fresh");
    misses(host, "p.cur.fresh");
    link_to("R2", "E/p/cur");
    finds_counter(host, "p.cur.fresh");
    mh_host_free(host);
}

TEST(second_link_on_the_way_to_the_entry_retargeted_is_seen)
{
    /* cur -> B/stage -> rel1, the entry cur/plugins: retargeting stage (a
     * name in B, on neither the path as given nor the real path) is seen,
     * because every hop's path is watched. */
    tmp_mkdir("rel1/plugins");
    tmp_mkdir("rel2/plugins");
    tmp_mkdir("B");
    fixture_copy("counter", "rel2/plugins/fresh.so");
    link_to("rel1", "B/stage");
    ASSERT_EQ_INT(symlink("B/stage", tmp_path("cur")), 0); /* relative */
    mh_host *host = host_new_isolated(tmp_path("cur/plugins"));
    misses(host, "fresh");
    misses(host, "fresh");
    link_to("rel2", "B/stage");
    finds_counter(host, "fresh");
    mh_host_free(host);
}

TEST(dotdot_link_on_the_way_to_the_entry_retargeted_is_seen)
{
    /* opt/app -> ../srv/current -> releases/1, the entry opt/app/plugins:
     * the ".." is taken against opt, so srv (holding current) is
     * watched, and a release swapped there is seen. */
    tmp_mkdir("srv/releases/1/plugins");
    tmp_mkdir("srv/releases/2/plugins");
    tmp_mkdir("opt");
    fixture_copy("counter", "srv/releases/2/plugins/fresh.so");
    ASSERT_EQ_INT(symlink("releases/1", tmp_path("srv/current")), 0);
    ASSERT_EQ_INT(symlink("../srv/current", tmp_path("opt/app")), 0);
    mh_host *host = host_new_isolated(tmp_path("opt/app/plugins"));
    misses(host, "fresh");
    misses(host, "fresh");
    ASSERT_EQ_INT(symlink("releases/2", tmp_path("srv/current.new")), 0);
    ASSERT_EQ_INT(rename(tmp_path("srv/current.new"),
                         tmp_path("srv/current")), 0);
    finds_counter(host, "fresh");
    mh_host_free(host);
}

TEST(entry_spelled_with_dotdot_sees_a_link_on_its_way_retargeted)
{
    /* Entry T/app/bin/../lib, lib a link to a release (a relocatable
     * install's "$(dirname $0)/../lib"): the directory holding lib was
     * known by the first spelling that reached it, T/app, and a change of
     * "lib" there was not taken for one on the way to the entry, spelt
     * T/app/bin/../lib -- the old release answered until
     * mh_invalidate_caches. */
    tmp_mkdir("app/bin");
    tmp_mkdir("rel1");
    tmp_mkdir("rel2");
    fixture_copy("counter", "rel2/fresh.so");
    link_to("rel1", "app/lib");
    mh_host *host = host_new_isolated(tmp_path("app/bin/../lib"));
    misses(host, "fresh");
    misses(host, "fresh");
    link_to("rel2", "app/lib");
    finds_counter(host, "fresh");
    mh_host_free(host);
}

TEST(entries_reaching_one_directory_by_two_paths_both_see_it_change)
{
    /* T/opt/link -> T/srv/data, and the entries T/opt/link/E1 and
     * T/srv/data/E2 (E2 a link to a release): srv/data was known by the
     * first path only, so retargeting E2 went unseen and T/E3's pkg.mod
     * went on shadowing the one E2 now has. */
    tmp_mkdir("srv/data/E1");
    tmp_mkdir("rel1");
    tmp_mkdir("rel2/pkg");
    tmp_mkdir("opt");
    fixture_copy("counter", "rel2/pkg/mod.so");
    fixture_copy("answer7", "E3/pkg/mod.so");
    link_to("srv/data", "opt/link");
    link_to("rel1", "srv/data/E2");
    mh_host *host = host_new_isolated(tmp_path("opt/link/E1"),
                                      tmp_path("srv/data/E2"),
                                      tmp_path("E3"));
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, "pkg.mod", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.origin, tmp_path("E3/pkg/mod.so"));
    link_to("rel2", "srv/data/E2");
    ASSERT_STATUS(mh_find(host, "pkg.mod", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.origin, tmp_path("srv/data/E2/pkg/mod.so"));
    finds_counter(host, "pkg.mod");
    mh_host_free(host);
}

TEST(package_link_through_a_release_link_swapped_is_seen)
{
    /* E/pkg -> cur/pkg, cur -> rel1: the second link is outside the
     * entry, on the way to where the first leads; swapping it is seen. */
    tmp_mkdir("E");
    tmp_mkdir("rel1/pkg");
    tmp_mkdir("rel2/pkg");
    fixture_copy("counter", "rel2/pkg/fresh.so");
    link_to("rel1", "cur");
    link_to("cur/pkg", "E/pkg");
    mh_host *host = host_new_isolated(tmp_path("E"));
    misses(host, "pkg.fresh");
    misses(host, "pkg.fresh");
    link_to("rel2", "cur");
    finds_counter(host, "pkg.fresh");
    mh_host_free(host);
}

TEST(package_link_through_a_release_link_listed_first_then_swapped_is_seen)
{
    /* The same, the package listed by mh_list before any find: the list
     * read E/pkg without watching the way its link leads, so the swap was
     * no event, and the find after it took the old release's listing for
     * current (pkg.old found, and then not loadable). */
    struct listing l = {0};
    tmp_mkdir("E");
    tmp_mkdir("rel2/pkg");
    fixture_copy("counter", "rel1/pkg/old.so");
    fixture_copy("counter", "rel2/pkg/fresh.so");
    link_to("rel1", "cur");
    link_to("cur/pkg", "E/pkg");
    mh_host *host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(mh_list(host, collect, &l, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&l), "pkg.old");
    link_to("rel2", "cur");
    finds_counter(host, "pkg.fresh");
    misses(host, "pkg.old");
    struct listing again = {0};
    ASSERT_STATUS(mh_list(host, collect, &again, ERR), MH_OK);
    ASSERT_EQ_STR(joined_names(&again), "pkg.fresh");
    mh_host_free(host);
}

static int count_watches(void *ud, const char *site)
{
    if (strcmp(site, "watch") == 0)
        (*(size_t *)ud)++;
    return 0;
}

TEST(release_rotation_does_not_grow_what_is_watched)
{
    /* E/pkg -> T/cur/pkg, and cur moved from release to release, each old
     * one removed: the paths derived from the link are made anew at each
     * change, so a find after the 30th release watches no more than after
     * the 3rd. */
    size_t calls = 0, third = 0;
    tmp_mkdir("E");
    tmp_mkdir("T/rel0/pkg");
    fixture_copy("counter", "T/rel0/pkg/m.so");
    link_to("T/rel0", "T/cur");
    link_to("T/cur/pkg", "E/pkg");
    host_opts o = {.fault = count_watches, .fault_ud = &calls};
    mh_host *host = host_new_opts(&o, tmp_path("E"));
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, "pkg.m", &info, ERR), MH_OK);
    for (int k = 1; k <= 30; k++) {
        tmp_mkdir("T/rel%d/pkg", k);
        fixture_copy("counter", "T/rel%d/pkg/m.so", k);
        link_to(str_fmt("T/rel%d", k), "T/cur");
        ASSERT_EQ_INT(unlink(tmp_path("T/rel%d/pkg/m.so", k - 1)), 0);
        ASSERT_EQ_INT(rmdir(tmp_path("T/rel%d/pkg", k - 1)), 0);
        ASSERT_EQ_INT(rmdir(tmp_path("T/rel%d", k - 1)), 0);
        calls = 0;
        ASSERT_STATUS(mh_find(host, "pkg.m", &info, ERR), MH_OK);
        if (k == 3)
            third = calls;
        if (k == 30 && calls > third)
            FAIL("a find after the 30th release made %zu watches, after "
                 "the 3rd %zu", calls, third);
    }
    mh_host_free(host);
}

/* ud: counts the fault sites "open" and "watch" (never failed). */
static int count_opens_and_watches(void *ud, const char *site)
{
    if (strcmp(site, "open") == 0 || strcmp(site, "watch") == 0)
        (*(size_t *)ud)++;
    return 0;
}

TEST(entry_that_is_a_link_loop_is_named_as_the_fault)
{
    /* An entry that is a symbolic link to itself: the message blamed the
     * package ("no directory pkg/ (Too many levels of symbolic links)"),
     * not the entry. */
    fixture_copy("counter", "E2/pkg/mod.so");
    ASSERT_EQ_INT(symlink("loop", tmp_path("loop")), 0);
    mh_host *host = host_new_isolated(tmp_path("loop"), tmp_path("E2"));
    mh_module *mod;
    ASSERT_STATUS(mh_import(host, "pkg.nothere", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("%s: %s", tmp_path("loop"),
                                       strerror(ELOOP)));
    ASSERT_NOT_CONTAINS(ERR_MSG(), str_fmt("%s: no directory pkg/",
                                           tmp_path("loop")));
    finds_counter(host, "pkg.mod");
    mh_host_free(host);
}

TEST(missing_entry_costs_nothing_once_known)
{
    /* An entry that does not exist (the usual ~/.local/share one) was
     * stamped only by directories at or below it, so none: every find
     * tried to watch it and open it again, twice.  Its parent's watch
     * stamps it; it is looked at again once something changes there. */
    size_t calls = 0;
    tmp_mkdir("home");
    fixture_copy("counter", "E2/pkg/mod.so");
    host_opts o = {.fault = count_opens_and_watches, .fault_ud = &calls};
    mh_host *host = host_new_opts(&o, tmp_path("home/missing"),
                                  tmp_path("E2"));
    mh_spec_info info = {.size = sizeof info};
    ASSERT_STATUS(mh_find(host, "pkg.mod", &info, ERR), MH_OK);
    ASSERT_STATUS(mh_find(host, "pkg.mod", &info, ERR), MH_OK);
    calls = 0;
    for (int k = 0; k < 5; k++)
        ASSERT_STATUS(mh_find(host, "pkg.mod", &info, ERR), MH_OK);
    ASSERT_EQ_INT(calls, 0);
    /* ... and the entry made later is seen. */
    fixture_copy("answer7", "home/missing/pkg/mod.so");
    ASSERT_STATUS(mh_find(host, "pkg.mod", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.origin, tmp_path("home/missing/pkg/mod.so"));
    mh_host_free(host);
}

TEST(listing_event_in_a_child_of_fork_is_not_stolen)
{
    /* A child of fork() shares the inotify queue; it must not read it, or
     * the parent would miss the change. */
    const char *dir = tmp_mkdir("E");
    mh_host *host = host_new_isolated(dir);
    file_set_mtime(dir, OLD_TIME);
    misses(host, "late");
    fixture_copy("counter", "E/late.so");
    file_set_mtime(dir, OLD_TIME + 100);
    pid_t pid = fork();
    if (pid == 0) {
        mh_module *m;
        mh_status rc = mh_import(host, "late", &m, NULL);
        _exit(rc == MH_OK ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    finds_counter(host, "late");
    mh_host_free(host);
}

/* ------------------------------------ entries that lack the package */

/* How many times host's finds asked entry i's finder. */
static size_t asked(mh_host *host, size_t i)
{
    mh_path_entry_info info = {.size = sizeof info};
    if (mh_host_path_entry_info(host, i, &info) != MH_OK)
        FAIL("no entry %zu", i);
    return info.asked;
}

/* The asked counts of entries 0..3, as "a b c d". */
static const char *asked4(mh_host *host)
{
    return str_fmt("%zu %zu %zu %zu", asked(host, 0), asked(host, 1),
                   asked(host, 2), asked(host, 3));
}

/* Three entries in front without package "pkg" (one empty, one with
 * another package, one with a module file named pkg.so), then T with
 * pkg/a.so ... pkg/f.so.  Returns the path, ';'-separated. */
#define LACKING tmp_path("E1"), tmp_path("E2"), tmp_path("E3"), tmp_path("T")

static const char *lacking_path(void)
{
    tmp_mkdir("E1");
    tmp_mkdir("E2/other");
    fixture_copy("counter", "E3/pkg.so");
    const char *mods[] = {"a", "b", "c", "d", "e", "f"};
    for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++)
        fixture_copy("counter", "T/pkg/%s.so", mods[i]);
    return str_fmt("%s;%s;%s;%s", tmp_path("E1"), tmp_path("E2"),
                   tmp_path("E3"), tmp_path("T"));
}

/* A host on the lacking path that imported pkg.a and pkg.b: the second
 * import skipped the three entries in front. */
static mh_host *warmed_host(void)
{
    lacking_path();
    mh_host *host = host_new_isolated(LACKING);
    import_ok(host, "pkg.a");
    import_ok(host, "pkg.b");
    ASSERT_EQ_STR(asked4(host), "1 1 1 2");
    return host;
}

/* name imports answer7's copy at tmp's rel. */
static mh_module *finds_answer7(mh_host *host, const char *name,
                                const char *rel)
{
    mh_module *m = import_ok(host, name);
    ASSERT_EQ_INT(call_int(m, "value"), 7);
    ASSERT_EQ_STR(mh_module_origin(m), tmp_path("%s", rel));
    return m;
}

TEST(entries_without_the_package_are_asked_once)
{
    /* The first import from "pkg" asks every entry; later ones skip the
     * three that lack it (their listings watched, nothing changed), and
     * ask only T -- until a change there, an entry added or
     * mh_invalidate_caches. */
    lacking_path();
    mh_host *host = host_new_isolated(LACKING);
    import_ok(host, "pkg.a");
    ASSERT_EQ_STR(asked4(host), "1 1 1 1");
    import_ok(host, "pkg.b");
    import_ok(host, "pkg.c");
    ASSERT_EQ_STR(asked4(host), "1 1 1 3");
    /* a name without a package is not skipped for one: "pkg" is E3's */
    ASSERT_EQ_STR(mh_module_origin(import_ok(host, "pkg")),
                  tmp_path("E3/pkg.so"));
    ASSERT_EQ_STR(asked4(host), "2 2 2 3");

    /* the package appears in E2: a listed directory changed, so every
     * entry is asked again, and E2 now wins */
    tmp_mkdir("E2/pkg");
    fixture_copy("answer7", "E2/pkg/d.so");
    finds_answer7(host, "pkg.d", "E2/pkg/d.so");
    ASSERT_EQ_STR(asked4(host), "3 3 2 3");
    import_ok(host, "pkg.e"); /* E1 skipped again, E2 has the package */
    ASSERT_EQ_STR(asked4(host), "3 4 3 4");
    import_ok(host, "pkg.f");
    ASSERT_EQ_STR(asked4(host), "3 5 3 5");

    mh_invalidate_caches(host);
    misses(host, "pkg.nothere");
    ASSERT_EQ_STR(asked4(host), "4 6 4 6");
    misses(host, "pkg.nothere2");
    ASSERT_EQ_STR(asked4(host), "4 7 4 7");
    mh_host_free(host);
}

TEST(entry_added_in_front_is_asked)
{
    /* Adding an entry moves the others: nothing remembered is used. */
    mh_host *host = warmed_host();
    fixture_copy("answer7", "N/pkg/c.so");
    ASSERT_STATUS(mh_host_add_path(host, tmp_path("N"), 0, ERR), MH_OK);
    finds_answer7(host, "pkg.c", "N/pkg/c.so");
    ASSERT_EQ_STR(asked4(host), "1 1 1 1"); /* N, E1, E2, E3 */
    import_ok(host, "pkg.d");
    ASSERT_EQ_STR(asked4(host), "2 2 2 2");
    ASSERT_EQ_INT((long long)asked(host, 4), 3);
    import_ok(host, "pkg.e");
    ASSERT_EQ_STR(asked4(host), "3 2 2 2");
    ASSERT_EQ_INT((long long)asked(host, 4), 4);
    mh_host_free(host);
}

/* "pkg.zzz" missed by a new host and by one that imported pkg.a first,
 * and so skips the entries in front that lack "pkg": the same message,
 * which is returned. */
static const char *same_miss(const char *const *entries)
{
    mh_host *fresh = host_new_isolated_(entries);
    mh_host *warm = host_new_isolated_(entries);
    import_ok(warm, "pkg.a");
    mh_module *mod;
    ASSERT_STATUS(mh_import(fresh, "pkg.zzz", &mod, ERR), MH_ENOTFOUND);
    const char *want = str_fmt("%s", ERR_MSG());
    ASSERT_STATUS(mh_import(warm, "pkg.zzz", &mod, ERR), MH_ENOTFOUND);
    ASSERT_EQ_INT((long long)asked(warm, 0), 1); /* skipped the 2nd time */
    ASSERT_EQ_STR(ERR_MSG(), want);
    mh_host_free(fresh);
    mh_host_free(warm);
    return want;
}

TEST(not_found_message_is_the_same_with_entries_skipped)
{
    /* A walk that skipped entries and found nothing writes their lines
     * afterwards: the message is the one a new host gives, byte for
     * byte, with every entry in order. */
    lacking_path();
    const char *want = same_miss((const char *const[]){LACKING, NULL});
    ASSERT_CONTAINS(want, "searched 4 path entries");
    ASSERT_CONTAINS(want, str_fmt("\n  %s: no directory pkg/\n  %s: no "
                                  "directory pkg/\n  %s: no directory "
                                  "pkg/\n  %s: no pkg/zzz.so",
                                  tmp_path("E1"), tmp_path("E2"),
                                  tmp_path("E3"), tmp_path("T")));
}

TEST(without_notification_every_entry_is_asked)
{
    /* No inotify, or no watch granted: a listing is only known current
     * after a stat(), so nothing is skipped; a verbose host, whose traces
     * name every entry asked, skips nothing either. */
    const char *path = lacking_path();
    mh_host *blind = host_failing_at(path, "inotify", NULL);
    mh_host *unwatched = host_failing_at(path, "watch", NULL);
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.flags = MH_CONFIG_VERBOSE, .log = &lc};
    mh_host *verbose = host_new_opts(&o, LACKING);
    mh_host *hosts[] = {blind, unwatched, verbose};
    for (size_t i = 0; i < 3; i++) {
        import_ok(hosts[i], "pkg.a");
        import_ok(hosts[i], "pkg.b");
        ASSERT_EQ_STR(asked4(hosts[i]), "2 2 2 2");
    }
    ASSERT_LOG(&lc, MH_LOG_TRACE, "find 'pkg.b': entry 1 (fs): no "
                                  "directory pkg/");
    mh_host_free(blind);
    mh_host_free(unwatched);
    mh_host_free(verbose);
    log_capture_free(&lc);
}

TEST(link_named_like_the_package_is_not_skipped)
{
    /* A symbolic link in front named like the package may lead to one
     * (its target can appear with no event there): always asked. */
    lacking_path();
    if (symlink(tmp_path("nowhere"), tmp_path("E1/pkg")) != 0)
        FAIL("symlink: %s", strerror(errno));
    mh_host *host = host_new_isolated(LACKING);
    import_ok(host, "pkg.a");
    import_ok(host, "pkg.b");
    ASSERT_EQ_STR(asked4(host), "2 1 1 2");
    /* the target appears: no event in E1, yet the link's entry wins */
    fixture_copy("answer7", "nowhere/c.so");
    finds_answer7(host, "pkg.c", "E1/pkg/c.so");
    mh_host_free(host);
}

TEST(over_long_not_found_message_is_the_same_with_entries_skipped)
{
    /* 130 entries of about 490 bytes each in front of T: their lines pass
     * the message's 64 KiB.  A walk that skipped them must say "too many
     * to list" as one that asked each does, not list a few. */
    char seg[241];
    memset(seg, 'd', sizeof seg - 1);
    seg[sizeof seg - 1] = '\0';
    const char *base = tmp_mkdir("%s/%s", seg, seg);
    ASSERT_TRUE(strlen(base) > 480);
    const char *entries[132];
    for (int i = 0; i < 130; i++)
        entries[i] = tmp_mkdir("%s/%s/E%03d", seg, seg, i);
    fixture_copy("counter", "T/pkg/a.so");
    entries[130] = tmp_path("T");
    entries[131] = NULL;
    ASSERT_CONTAINS(same_miss(entries),
                    "searched 131 path entries: (too many to list)");
}

TEST(entry_removed_and_made_again_with_the_package_is_asked)
{
    /* An entry in front known to lack the package goes away and comes
     * back holding it: its own removal is an event, so it is asked. */
    mh_host *host = warmed_host();
    if (rmdir(tmp_path("E1")) != 0)
        FAIL("rmdir: %s", strerror(errno));
    fixture_copy("answer7", "E1/pkg/c.so");
    finds_answer7(host, "pkg.c", "E1/pkg/c.so");
    mh_host_free(host);
}

TEST(path_entry_info_of_the_older_size_is_filled)
{
    /* A caller built before mh_path_entry_info.asked passes a smaller
     * size: served, and nothing written past it. */
    lacking_path();
    mh_host *host = host_new_isolated(LACKING);
    import_ok(host, "pkg.a");
    union {
        mh_path_entry_info info;
        unsigned char bytes[sizeof(mh_path_entry_info)];
    } u;
    memset(&u, 0xAB, sizeof u);
    u.info.size = offsetof(mh_path_entry_info, asked);
    ASSERT_STATUS(mh_host_path_entry_info(host, 3, &u.info), MH_OK);
    ASSERT_EQ_STR(u.info.entry, tmp_path("T"));
    for (size_t i = offsetof(mh_path_entry_info, asked); i < sizeof u; i++)
        if (u.bytes[i] != 0xAB)
            FAIL("byte %zu past the caller's size was written", i);
    u.info.size = offsetof(mh_path_entry_info, asked) - 1;
    ASSERT_STATUS(mh_host_path_entry_info(host, 3, &u.info), MH_EVERSION);
    ASSERT_EQ_INT((long long)asked(host, 3), 1);
    mh_host_free(host);
}
