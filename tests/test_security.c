/*
 * test_security.c -- the security rules of issue 7, each with a test.
 *
 *   perms_*    a module file, the entry directory, its ancestors and the
 *              package directories between entry and module are refused
 *              when group- or world-writable (a directory: unless sticky
 *              and owned by root) or owned by another non-root user;
 *              MH_CONFIG_INSECURE_FILES accepts them all.  Native and Lua
 *              modules alike, symbolic links judged by what they point
 *              to, module databases like directories.
 *   swap_*     a thread swaps the module file (or its package directory)
 *              between a good and an evil one while the main thread
 *              imports with fresh hosts: every import that works is the
 *              good plugin, and the evil one never runs any code -- the
 *              bytes checked are the bytes mapped.
 *   fd_*       what loading through /proc/self/fd/N must not break: a
 *              pinned object's name is never handed to another file, and
 *              no descriptor leaks.
 *   symbols_*  plugins are loaded RTLD_LOCAL: a plugin defining the
 *              names of libmodhost's API changes nothing the process or
 *              a later plugin sees.
 *   names_*    no name escapes an entry, in any finder (directory,
 *              database, HTTP, tar archive) nor through Lua's require or
 *              modhost.import: a bad name is MH_EBADNAME before any
 *              finder is asked and before any I/O, and canary plugins
 *              placed where a careless mapping would land never run.
 * (The environment in privileged processes: tests/cli/setuid_env.sh.)
 *
 * Evil plugins (fixtures sec_evil, sec_evil_abi2) append to the marker
 * file from their ELF constructor and init, so the file's absence proves
 * none of their code ran; where a case finally loads one on purpose (with
 * MH_CONFIG_INSECURE_FILES) the marker appearing proves the canary live.
 *
 * Parts that need root (files owned by another user, a root-owned sticky
 * directory) are skipped when not root, saying so on stdout.  Each case
 * prints one line "cases: security.NAME N" on stdout, N the number of
 * sub-cases it checked.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <modhost/finder.h>

#include "support/support.h"
#include "test.h"

#define PD MH_TEST_PLUGIN_DIR
#define NOBODY 65534 /* another, non-root user */

/* ------------------------------------------------------------- helpers */

static int is_root(void)
{
    return geteuid() == 0;
}

static void report(const char *name, size_t n)
{
    printf("cases: security.%s %zu\n", name, n);
    fflush(stdout);
}

static void skip_note(const char *name, const char *what)
{
    printf("skip: security.%s: %s (not root: needs chown)\n", name, what);
    fflush(stdout);
}

static void chmod_ok(const char *path, mode_t mode)
{
    if (chmod(path, mode) != 0)
        FAIL("chmod(%s, %04o): %s", path, (unsigned)mode, strerror(errno));
}

static void chown_ok(const char *path, uid_t uid)
{
    if (lchown(path, uid, (gid_t)-1) != 0)
        FAIL("lchown(%s, %u): %s", path, (unsigned)uid, strerror(errno));
}

/* mkdir path (parents too) and give it exactly mode. */
static const char *dir_mode(const char *path, mode_t mode)
{
    mkdir_p(path);
    chmod_ok(path, mode);
    return path;
}

/* Copy fixture name to path with exactly mode. */
static const char *plugin_at(const char *name, const char *path, mode_t mode)
{
    const char *root = tmp_dir();
    size_t n = strlen(root);

    if (strncmp(path, root, n) != 0 || path[n] != '/')
        FAIL("plugin_at: %s is not in the case's directory", path);
    fixture_copy(name, "%s", path + n + 1);
    chmod_ok(path, mode);
    return path;
}

/* Lua source that appends to the marker when its chunk runs, and returns
 * {who = "evil"}. */
static const char LUA_EVIL[] =
    "local f = io.open(os.getenv('MH_FIXTURE_MARKER'), 'a')\n"
    "if f then f:write('chunk lua_evil\\n'); f:close() end\n"
    "return {who = function() return 'evil' end}\n";

/* Write Lua source src to path with exactly mode. */
static const char *lua_at(const char *path, const char *src, mode_t mode)
{
    file_write(path, src);
    chmod_ok(path, mode);
    return path;
}

/* who() of a native plugin or a Lua module (whose JSON string result is
 * unquoted): "good" or "evil". */
static const char *who(mh_module *mod)
{
    if (mh_module_kind_of(mod) == MH_KIND_LUA) {
        const char *r = call_ok(mod, "who", NULL);
        size_t len = strlen(r);
        if (len < 2 || r[0] != '"' || r[len - 1] != '"')
            FAIL("who() of Lua module '%s' returned %s", mh_module_name(mod),
                 r);
        return str_fmt("%.*s", (int)(len - 2), r + 1);
    }
    const char *(*fn)(void) = (const char *(*)(void))symbol_ok(mod, "who");
    return fn();
}

static mh_host *host_flags(unsigned flags, const char *entry)
{
    host_opts o = {.flags = flags};
    return host_new_opts(&o, entry);
}

static const char *marker_text(void)
{
    const char *m = file_read(tmp_path("marker"));
    return m ? m : "";
}

static void assert_no_marker(void)
{
    const char *m = file_read(tmp_path("marker"));
    if (m != NULL)
        FAIL("code of an evil plugin ran; marker:\n%s", m);
}

/*
 * The heart of the perms cases: module `name` in `entry` must be refused
 * by a fresh host with status `want`, with a message naming `culprit`
 * (the file or the directory at fault) and `why` (its mode or owner, as
 * text the message shows), leaving nothing registered and running none
 * of its code; a host with MH_CONFIG_INSECURE_FILES must then load it.
 * A refused file or package directory is MH_EPATH; an entry that is
 * itself unsafe (or lies under an unsafe directory) is unusable, as a
 * missing one is, so the module is MH_ENOTFOUND there, the reason listed.
 * Returns the number of checks made (for the report).
 */
#define REFUSED_FILE MH_EPATH
#define REFUSED_ENTRY MH_ENOTFOUND

static size_t refused_then_insecure_ok_(const char *entry, const char *name,
                                        mh_status want, const char *culprit,
                                        const char *why)
{
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    mh_host *h = host_new_opts(&o, entry);
    mh_module *mod = (mh_module *)&mod;
    mh_status st = mh_import(h, name, &mod, ERR);

    if (st == MH_OK)
        FAIL("module '%s' under %s was imported, but %s is %s", name, entry,
             culprit, why);
    if (st != want)
        FAIL("module '%s' under %s: %s, expected %s: %s", name, entry,
             mh_status_name(st), mh_status_name(want), ERR_MSG());
    ASSERT_NULL(mod);
    ASSERT_NULL(mh_host_module(h, name));
    ASSERT_CONTAINS(ERR_MSG(), culprit);
    ASSERT_CONTAINS(ERR_MSG(), why);
    if (want == REFUSED_ENTRY) /* an unusable entry is also a warning */
        ASSERT_LOG(&lc, MH_LOG_WARN, culprit);
    mh_host_free(h);
    log_capture_free(&lc);
    assert_no_marker();

    h = host_flags(MH_CONFIG_INSECURE_FILES, entry);
    mod = NULL;
    ASSERT_STATUS(mh_import(h, name, &mod, ERR), MH_OK);
    ASSERT_EQ_STR(who(mod), "evil");
    mh_host_free(h);
    /* the canary is live: loading it on purpose left its mark */
    if (file_read(tmp_path("marker")) == NULL)
        FAIL("the evil plugin loaded but left no marker: the test is blind");
    if (unlink(tmp_path("marker")) != 0)
        FAIL("unlink marker: %s", strerror(errno));
    return 2;
}
#define refused_then_insecure_ok(entry, name, culprit, why) \
    refused_then_insecure_ok_((entry), (name), REFUSED_FILE, (culprit), (why))
#define entry_refused_then_insecure_ok(entry, name, culprit, why) \
    refused_then_insecure_ok_((entry), (name), REFUSED_ENTRY, (culprit), (why))

/* For entries whose refusal may come either way (the entry unusable, or
 * the file refused). */
static size_t entry_or_file_refused(const char *entry, const char *name,
                                    const char *culprit, const char *why)
{
    mh_host *h = host_flags(0, entry);
    mh_module *mod = NULL;
    mh_status st = mh_import(h, name, &mod, ERR);
    mh_host_free(h);
    if (st == MH_OK)
        FAIL("module '%s' in %s was imported, but %s is %s", name, entry,
             culprit, why);
    return refused_then_insecure_ok_(entry, name,
                                     st == REFUSED_ENTRY ? REFUSED_ENTRY
                                                         : REFUSED_FILE,
                                     culprit, why);
}

/* Module name in entry loads with a fresh default host and is `want`. */
static size_t accepted(const char *entry, const char *name, const char *want)
{
    mh_host *h = host_flags(0, entry);
    mh_module *mod = NULL;

    ASSERT_STATUS(mh_import(h, name, &mod, ERR), MH_OK);
    ASSERT_EQ_STR(who(mod), want);
    mh_host_free(h);
    return 1;
}

/* How a refusal names the directory dir: the entry refused itself, or
 * one above it. */
static const char *itself(const char *dir)
{
    return str_fmt("the directory %s itself:", dir);
}

static const char *above(const char *dir)
{
    return str_fmt("the directory %s above it:", dir);
}

static const char *mode_text(mode_t mode)
{
    return str_fmt("%04o", (unsigned)mode);
}

/* -------------------------------------------------- rule 1: permissions */

TEST(perms_group_writable_file_refused)
{
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *f = plugin_at("sec_evil", tmp_path("e/mod.so"), 0664);
    size_t n = 0;

    meta_marker();
    n += refused_then_insecure_ok(e, "mod", f, mode_text(0664));
    /* the same file made private again is accepted */
    chmod_ok(f, 0644);
    n += accepted(e, "mod", "evil");
    report("perms_group_writable_file_refused", n);
}

TEST(perms_world_writable_file_refused)
{
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *f = plugin_at("sec_evil", tmp_path("e/mod.so"), 0646);
    size_t n = 0;

    meta_marker();
    n += refused_then_insecure_ok(e, "mod", f, mode_text(0646));
    chmod_ok(f, 0666);
    n += refused_then_insecure_ok(e, "mod", f, mode_text(0666));
    report("perms_world_writable_file_refused", n);
}

TEST(perms_writable_entry_dir_refused)
{
    const char *e = dir_mode(tmp_path("e"), 0777);
    size_t n = 0;

    meta_marker();
    plugin_at("sec_evil", tmp_path("e/mod.so"), 0644);
    n += entry_refused_then_insecure_ok(e, "mod", itself(e),
                                        mode_text(0777));
    chmod_ok(e, 0775);
    n += entry_refused_then_insecure_ok(e, "mod", itself(e),
                                        mode_text(0775));
    chmod_ok(e, 0757);
    n += entry_refused_then_insecure_ok(e, "mod", itself(e),
                                        mode_text(0757));
    chmod_ok(e, 0755);
    n += accepted(e, "mod", "evil");
    report("perms_writable_entry_dir_refused", n);
}

TEST(perms_writable_package_dir_refused)
{
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *pkg = dir_mode(tmp_path("e/pkg"), 0775);
    dir_mode(tmp_path("e/a"), 0755);
    const char *ab = dir_mode(tmp_path("e/a/b"), 0777);
    size_t n = 0;

    meta_marker();
    plugin_at("sec_evil", tmp_path("e/pkg/mod.so"), 0644);
    plugin_at("sec_evil", tmp_path("e/a/b/c/mod.so"), 0644);
    chmod_ok(tmp_path("e/a/b/c"), 0755);
    n += refused_then_insecure_ok(e, "pkg.mod", pkg, mode_text(0775));
    /* a writable directory two levels above the module */
    n += refused_then_insecure_ok(e, "a.b.c.mod", ab, mode_text(0777));
    chmod_ok(pkg, 0755);
    chmod_ok(ab, 0755);
    n += accepted(e, "pkg.mod", "evil");
    n += accepted(e, "a.b.c.mod", "evil");
    report("perms_writable_package_dir_refused", n);
}

TEST(perms_writable_ancestor_refused)
{
    /* T/ww (0777, not sticky) / entry (0755) / mod.so (0644) */
    const char *ww = dir_mode(tmp_path("ww"), 0777);
    const char *e = dir_mode(tmp_path("ww/entry"), 0755);
    size_t n = 0;

    meta_marker();
    plugin_at("sec_evil", tmp_path("ww/entry/mod.so"), 0644);
    n += entry_refused_then_insecure_ok(e, "mod", above(ww),
                                        mode_text(0777));
    chmod_ok(ww, 0775);
    n += entry_refused_then_insecure_ok(e, "mod", ww, mode_text(0775));
    chmod_ok(ww, 0755);
    n += accepted(e, "mod", "evil");
    report("perms_writable_ancestor_refused", n);
}

/* An entry refused for its mode, in a host that keeps running: mended,
 * it is opened again at its first use after MH_ENTRY_RETRY_MS (1 s) --
 * an operator need not restart the application -- and a refusal that
 * says the same again is not warned of again. */
TEST(perms_refused_entry_mended_while_the_host_runs)
{
    const char *ww = dir_mode(tmp_path("ww"), 0777);
    const char *e = dir_mode(tmp_path("ww/entry"), 0755);
    const char *warn = str_fmt("search path entry '%s' skipped", e);
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    mh_module *mod = (mh_module *)&mod;

    meta_marker();
    plugin_at("sec_evil", tmp_path("ww/entry/mod.so"), 0644);
    mh_host *h = host_new_opts(&o, e);
    ASSERT_STATUS(mh_import(h, "mod", &mod, ERR), REFUSED_ENTRY);
    ASSERT_CONTAINS(ERR_MSG(), above(ww));
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, warn), 1);
    usleep(1100 * 1000);
    /* tried again: the same refusal, not said again */
    ASSERT_STATUS(mh_import(h, "mod", &mod, ERR), REFUSED_ENTRY);
    ASSERT_CONTAINS(ERR_MSG(), above(ww));
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, warn), 1);
    /* another reason is news */
    chmod_ok(ww, 0775);
    usleep(1100 * 1000);
    ASSERT_STATUS(mh_import(h, "mod", &mod, ERR), REFUSED_ENTRY);
    ASSERT_CONTAINS(ERR_MSG(), mode_text(0775));
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, warn), 2);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, mode_text(0775)),
                  1);
    assert_no_marker();
    /* mended: loaded, with no invalidate_caches and no new host */
    chmod_ok(ww, 0755);
    usleep(1100 * 1000);
    mod = NULL;
    ASSERT_STATUS(mh_import(h, "mod", &mod, ERR), MH_OK);
    ASSERT_EQ_STR(who(mod), "evil");
    mh_host_free(h);
    log_capture_free(&lc);
    if (unlink(tmp_path("marker")) != 0)
        FAIL("unlink marker: %s", strerror(errno));
    report("perms_refused_entry_mended_while_the_host_runs", 4);
}

TEST(perms_foreign_owner_file_refused)
{
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *f = plugin_at("sec_evil", tmp_path("e/mod.so"), 0644);
    size_t n = 0;

    if (!is_root()) {
        skip_note("perms_foreign_owner_file_refused",
                  "a module file owned by uid 65534");
        report("perms_foreign_owner_file_refused", 0);
        return;
    }
    meta_marker();
    chown_ok(f, NOBODY);
    n += refused_then_insecure_ok(e, "mod", f, "65534");
    /* root's own file is fine */
    chown_ok(f, 0);
    n += accepted(e, "mod", "evil");
    report("perms_foreign_owner_file_refused", n);
}

TEST(perms_foreign_owner_dir_refused)
{
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *pkg = dir_mode(tmp_path("e/pkg"), 0755);
    const char *top = dir_mode(tmp_path("top"), 0755);
    const char *e2 = dir_mode(tmp_path("top/entry"), 0755);
    size_t n = 0;

    if (!is_root()) {
        skip_note("perms_foreign_owner_dir_refused",
                  "directories owned by uid 65534");
        report("perms_foreign_owner_dir_refused", 0);
        return;
    }
    meta_marker();
    plugin_at("sec_evil", tmp_path("e/mod.so"), 0644);
    plugin_at("sec_evil", tmp_path("e/pkg/mod.so"), 0644);
    plugin_at("sec_evil", tmp_path("top/entry/mod.so"), 0644);
    /* the entry itself */
    chown_ok(e, NOBODY);
    n += entry_refused_then_insecure_ok(e, "mod", e, "65534");
    chown_ok(e, 0);
    /* a package directory */
    chown_ok(pkg, NOBODY);
    n += refused_then_insecure_ok(e, "pkg.mod", pkg, "65534");
    chown_ok(pkg, 0);
    /* an ancestor of the entry */
    chown_ok(top, NOBODY);
    n += entry_refused_then_insecure_ok(e2, "mod", top, "65534");
    chown_ok(top, 0);
    n += accepted(e, "mod", "evil");
    n += accepted(e, "pkg.mod", "evil");
    n += accepted(e2, "mod", "evil");
    report("perms_foreign_owner_dir_refused", n);
}

TEST(perms_root_sticky_above_entry_accepted)
{
    /* T/sticky (1777, root's) / entry (0755, ours) / mod.so (0644) */
    const char *st = dir_mode(tmp_path("sticky"), 01777);
    const char *e = dir_mode(tmp_path("sticky/entry"), 0755);
    size_t n = 0;

    plugin_at("sec_good", tmp_path("sticky/entry/mod.so"), 0644);
    plugin_at("sec_good", tmp_path("sticky/entry/pkg/mod.so"), 0644);
    chmod_ok(tmp_path("sticky/entry/pkg"), 0755);
    if (is_root())
        chown_ok(st, 0);
    else
        skip_note("perms_root_sticky_above_entry_accepted",
                  "the sticky directory is ours, not root's (the case's "
                  "own temp directory sits under /tmp, which is)");
    n += accepted(e, "mod", "good");
    n += accepted(e, "pkg.mod", "good");
    report("perms_root_sticky_above_entry_accepted", n);
}

TEST(perms_foreign_sticky_above_entry_refused)
{
    /* sticky does not excuse a directory another user owns: they may
     * rename anything in it */
    const char *st = dir_mode(tmp_path("sticky"), 01777);
    const char *e = dir_mode(tmp_path("sticky/entry"), 0755);
    size_t n = 0;

    if (!is_root()) {
        skip_note("perms_foreign_sticky_above_entry_refused",
                  "a sticky directory owned by uid 65534");
        report("perms_foreign_sticky_above_entry_refused", 0);
        return;
    }
    meta_marker();
    plugin_at("sec_evil", tmp_path("sticky/entry/mod.so"), 0644);
    chown_ok(st, NOBODY);
    n += entry_refused_then_insecure_ok(e, "mod", st, "65534");
    report("perms_foreign_sticky_above_entry_refused", n);
}

TEST(perms_symlinked_file_judged_by_its_target)
{
    /* e/mod.so -> ww/real.so, ww world-writable: whoever may write ww
     * may swap real.so */
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *ww = dir_mode(tmp_path("ww"), 0777);
    size_t n = 0;

    meta_marker();
    plugin_at("sec_evil", tmp_path("ww/real.so"), 0644);
    if (symlink(tmp_path("ww/real.so"), tmp_path("e/mod.so")) != 0)
        FAIL("symlink: %s", strerror(errno));
    n += refused_then_insecure_ok(e, "mod", ww, mode_text(0777));
    /* the same link into a safe directory is fine */
    chmod_ok(ww, 0755);
    n += accepted(e, "mod", "evil");
    report("perms_symlinked_file_judged_by_its_target", n);
}

TEST(perms_symlinked_entry_judged_by_its_target)
{
    /* an entry that is a link to a world-writable directory */
    const char *ww = dir_mode(tmp_path("ww"), 0777);
    const char *link_entry = tmp_path("linked");
    size_t n = 0;

    meta_marker();
    plugin_at("sec_evil", tmp_path("ww/mod.so"), 0644);
    if (symlink(ww, link_entry) != 0)
        FAIL("symlink: %s", strerror(errno));
    n += entry_refused_then_insecure_ok(link_entry, "mod", ww,
                                        mode_text(0777));
    chmod_ok(ww, 0755);
    n += accepted(link_entry, "mod", "evil");
    report("perms_symlinked_entry_judged_by_its_target", n);
}

TEST(perms_link_out_of_a_writable_directory_judged_by_its_target)
{
    /* The entry is a link inside a group-writable directory (a home may
     * be 0775) to a safe one: the real path is what is loaded from and
     * what is judged, not the directory the link sits in. */
    dir_mode(tmp_path("gw"), 0775);
    dir_mode(tmp_path("good"), 0755);
    const char *entry = tmp_path("gw/link");
    size_t n = 0;

    meta_marker();
    plugin_at("sec_evil", tmp_path("good/mod.so"), 0644);
    if (symlink(tmp_path("good"), entry) != 0)
        FAIL("symlink: %s", strerror(errno));
    n += accepted(entry, "mod", "evil");
    report("perms_link_out_of_a_writable_directory_judged_by_its_target", n);
}

TEST(perms_others_link_in_a_sticky_directory_refused)
{
    /* Entry T/sticky (1777, root's), where anyone may make names: another
     * user's link there, to our own module, would give our code a name
     * of theirs (and shadow later entries).  Only the link's owner, or
     * the directory's, is followed (the kernel's protected_symlinks). */
    const char *st = dir_mode(tmp_path("sticky"), 01777);
    dir_mode(tmp_path("good"), 0755);
    const char *link = tmp_path("sticky/mod.so");
    size_t n = 0;

    if (!is_root()) {
        skip_note("perms_others_link_in_a_sticky_directory_refused",
                  "a link owned by uid 65534");
        report("perms_others_link_in_a_sticky_directory_refused", 0);
        return;
    }
    chown_ok(st, 0);
    meta_marker();
    plugin_at("sec_evil", tmp_path("good/real.so"), 0644);
    if (symlink(tmp_path("good/real.so"), link) != 0)
        FAIL("symlink: %s", strerror(errno));
    chown_ok(link, NOBODY);
    n += refused_then_insecure_ok(st, "mod", link, "symbolic link of uid "
                                                   "65534 in a sticky "
                                                   "directory");
    /* However the entry leads there: through a link of ours, ".", "..";
     * and a directory link of theirs on the way to the module. */
    const char *mine = tmp_path("mine");
    if (symlink(st, mine) != 0)
        FAIL("symlink: %s", strerror(errno));
    const char *ways[] = {mine, tmp_path("sticky/."),
                          tmp_path("good/../sticky")};
    for (size_t i = 0; i < sizeof ways / sizeof ways[0]; i++)
        n += refused_then_insecure_ok(ways[i], "mod", "sticky/mod.so",
                                      "symbolic link of uid 65534");
    dir_mode(tmp_path("good/pkg"), 0755);
    plugin_at("sec_evil", tmp_path("good/pkg/m.so"), 0644);
    const char *dlink = tmp_path("sticky/pkg");
    if (symlink(tmp_path("good/pkg"), dlink) != 0)
        FAIL("symlink: %s", strerror(errno));
    chown_ok(dlink, NOBODY);
    n += refused_then_insecure_ok(st, "pkg.m", dlink, "symbolic link of uid "
                                                      "65534");
    /* ours: followed, and judged by its target */
    chown_ok(link, 0);
    n += accepted(st, "mod", "evil");
    report("perms_others_link_in_a_sticky_directory_refused", n);
}

/* A meta finder that answers every name with one native file. */
static mh_status one_file_find(mh_finder_ctx *cx, void *state,
                               const char *name, mh_finder_spec *spec)
{
    (void)cx;
    (void)name;
    spec->kind = MH_KIND_NATIVE;
    spec->origin = spec->file = state;
    return MH_OK;
}

static mh_status one_file_open(mh_finder_ctx *cx, const char *entry,
                               void **state)
{
    (void)entry;
    *state = cx->ud;
    return MH_OK;
}

static void one_file_close(mh_finder_ctx *cx, void *state)
{
    (void)cx;
    (void)state;
}

TEST(perms_overlong_file_name_is_never_cut_short)
{
    /* A finder names e/<255 x's>EXTRA.so; e/<255 x's> is a good plugin.
     * The name is too long for any file: refused, never the shorter one
     * loaded in its place. */
    static const mh_finder_class one_file = {
        MH_FINDER_CLASS_INIT, .name = "one_file", .open = one_file_open,
        .find = one_file_find, .close = one_file_close};
    char longname[NAME_MAX + 1];
    memset(longname, 'x', NAME_MAX);
    longname[NAME_MAX] = '\0';
    const char *e = dir_mode(tmp_path("e"), 0755);
    plugin_at("sec_good", tmp_path("e/%s", longname), 0644);
    char *file = (char *)str_fmt("%s/%sEXTRA.so", e, longname);
    mh_host *h = host_flags(0, e);
    ASSERT_STATUS(mh_host_add_meta_finder(h, &one_file, file,
                                          MH_CHAIN_FIRST, NULL, ERR),
                  MH_OK);
    mh_module *mod = (mh_module *)&mod;
    ASSERT_NE_INT(mh_import(h, "anything", &mod, ERR), MH_OK);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), "EXTRA.so");
    mh_host_free(h);
    report("perms_overlong_file_name_is_never_cut_short", 1);
}

TEST(perms_checked_dirs_are_per_effective_user)
{
    /* e/top belongs to uid 65534: fine for that user, refused for root
     * above e/top/pkg (root's).  Checked and remembered as 65534, the
     * chain is checked again as root: the remembered e/top/pkg passes
     * the checks itself, so only the chain above it tells. */
    if (!is_root()) {
        skip_note("perms_checked_dirs_are_per_effective_user",
                  "seteuid to uid 65534 and back");
        report("perms_checked_dirs_are_per_effective_user", 0);
        return;
    }
    chmod_ok(tmp_dir(), 0755); /* so that 65534 may look in */
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *top = dir_mode(tmp_path("e/top"), 0755);
    dir_mode(tmp_path("e/top/pkg"), 0755);
    plugin_at("sec_good", tmp_path("e/top/pkg/a.so"), 0644);
    plugin_at("sec_evil", tmp_path("e/top/pkg/b.so"), 0644);
    chown_ok(top, NOBODY);
    mh_host *h = host_flags(0, e);
    if (seteuid(NOBODY) != 0)
        FAIL("seteuid(%d): %s", NOBODY, strerror(errno));
    mh_module *mod = NULL;
    mh_status rc = mh_import(h, "top.pkg.a", &mod, ERR);
    if (seteuid(0) != 0)
        FAIL("seteuid(0): %s", strerror(errno));
    ASSERT_STATUS(rc, MH_OK);
    ASSERT_EQ_STR(who(mod), "good");
    mod = (mh_module *)&mod;
    ASSERT_STATUS(mh_import(h, "top.pkg.b", &mod, ERR), REFUSED_FILE);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), top);
    ASSERT_CONTAINS(ERR_MSG(), "65534");
    mh_host_free(h);
    report("perms_checked_dirs_are_per_effective_user", 2);
}

TEST(perms_rechecked_after_invalidate_caches)
{
    /* a directory found safe is remembered; once it is opened to others,
     * mh_invalidate_caches() makes the host look again */
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *pkg = dir_mode(tmp_path("e/pkg"), 0755);
    size_t n = 0;

    meta_marker();
    plugin_at("sec_good", tmp_path("e/pkg/a.so"), 0644);
    mh_host *h = host_flags(0, e);
    ASSERT_EQ_STR(who(import_ok(h, "pkg.a")), "good");
    chmod_ok(pkg, 0777);
    plugin_at("sec_evil", tmp_path("e/pkg/b.so"), 0644);
    mh_invalidate_caches(h);
    mh_module *mod = (mh_module *)&mod;
    ASSERT_STATUS(mh_import(h, "pkg.b", &mod, ERR), REFUSED_FILE);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), pkg);
    ASSERT_CONTAINS(ERR_MSG(), mode_text(0777));
    /* the module loaded before stays loaded */
    ASSERT_NOT_NULL(mh_host_module(h, "pkg.a"));
    mh_host_free(h);
    assert_no_marker();
    n += 2;
    report("perms_rechecked_after_invalidate_caches", n);
}

/* The directories (0755) above file, below the case's directory top. */
static void dirs_above(const char *top, const char *file)
{
    for (const char *s = strchr(file, '/'); s; s = strchr(s + 1, '/'))
        dir_mode(tmp_path("%s/%.*s", top, (int)(s - file), file), 0755);
}

/* Made: e (0755) and the directories of good_file in it, ww (0777) and
 * those of evil_file in it (0755).  A host on e imports `good` (sec_good
 * at e/good_file); then e/rel is renamed away and replaced by a link to
 * ww/rel (0755 itself, below the world-writable ww): importing `evil`
 * (sec_evil at ww/evil_file) is refused naming ww, and no evil code
 * ran. */
static void swap_for_link_then_refused(const char *good_file,
                                       const char *good, const char *rel,
                                       const char *evil_file,
                                       const char *evil)
{
    dir_mode(tmp_path("e"), 0755);
    dirs_above("e", good_file);
    const char *ww = dir_mode(tmp_path("ww"), 0777);
    dirs_above("ww", evil_file);
    meta_marker();
    plugin_at("sec_good", tmp_path("e/%s", good_file), 0644);
    plugin_at("sec_evil", tmp_path("ww/%s", evil_file), 0644);
    mh_host *h = host_flags(0, tmp_path("e"));
    ASSERT_EQ_STR(who(import_ok(h, good)), "good");
    if (rename(tmp_path("e/%s", rel), tmp_path("e/%s_old", rel)) != 0 ||
        symlink(tmp_path("ww/%s", rel), tmp_path("e/%s", rel)) != 0)
        FAIL("swapping e/%s: %s", rel, strerror(errno));
    mh_module *mod = (mh_module *)&mod;
    ASSERT_STATUS(mh_import(h, evil, &mod, ERR), REFUSED_FILE);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), ww);
    ASSERT_CONTAINS(ERR_MSG(), mode_text(0777));
    mh_host_free(h);
    assert_no_marker();
}

TEST(perms_known_dir_swapped_for_a_link_is_walked_again)
{
    /* A directory code was opened from is remembered, and the next file
     * from the same path is opened from it without the walk from / --
     * but only while the path still names that very directory.  Here
     * e/pkg is swapped for a link to a directory (0755 itself) below a
     * world-writable one: the path names another inode, so the whole
     * chain is walked again and the writable ancestor refused. */
    swap_for_link_then_refused("pkg/a.so", "pkg.a", "pkg", "pkg/b.so",
                               "pkg.b");
    report("perms_known_dir_swapped_for_a_link_is_walked_again", 2);
}

TEST(perms_walk_from_a_known_ancestor_checks_what_is_below_it)
{
    /* A walk starts from the deepest directory an earlier walk passed
     * (e/pkg here), not from /: what lies below it is still checked. */
    const char *e = dir_mode(tmp_path("e"), 0755);
    dir_mode(tmp_path("e/pkg"), 0755);
    size_t n = 0;

    meta_marker();
    plugin_at("sec_good", tmp_path("e/pkg/a.so"), 0644);
    mh_host *h = host_flags(0, e);
    ASSERT_EQ_STR(who(import_ok(h, "pkg.a")), "good");
    const char *sub = dir_mode(tmp_path("e/pkg/sub"), 0777);
    plugin_at("sec_evil", tmp_path("e/pkg/sub/b.so"), 0644);
    mh_module *mod = (mh_module *)&mod;
    ASSERT_STATUS(mh_import(h, "pkg.sub.b", &mod, ERR), REFUSED_FILE);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), sub);
    ASSERT_CONTAINS(ERR_MSG(), mode_text(0777));
    chmod_ok(sub, 0755);
    ASSERT_EQ_STR(who(import_ok(h, "pkg.sub.b")), "evil");
    mh_host_free(h);
    n += 3;
    report("perms_walk_from_a_known_ancestor_checks_what_is_below_it", n);
}

TEST(perms_known_ancestor_swapped_for_a_link_is_walked_again)
{
    /* e/x was passed by a walk (to e/x/y/a.so).  Swapped for a link to a
     * directory that passes the checks itself (0755) but lies below a
     * world-writable one, it is no longer where a walk may start: the
     * path names another inode, so the chain is walked from / again, the
     * link resolved, and the writable ancestor refused. */
    swap_for_link_then_refused("x/y/a.so", "x.y.a", "x", "x/z/b.so",
                               "x.z.b");
    report("perms_known_ancestor_swapped_for_a_link_is_walked_again", 2);
}

TEST(perms_known_dir_opened_to_others_is_refused)
{
    /* Without mh_invalidate_caches: the remembered directory itself is
     * checked again on the descriptor every file is opened from. */
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *pkg = dir_mode(tmp_path("e/pkg"), 0755);
    size_t n = 0;

    meta_marker();
    plugin_at("sec_good", tmp_path("e/pkg/a.so"), 0644);
    mh_host *h = host_flags(0, e);
    ASSERT_EQ_STR(who(import_ok(h, "pkg.a")), "good");
    chmod_ok(pkg, 0777);
    plugin_at("sec_evil", tmp_path("e/pkg/b.so"), 0644);
    mh_module *mod = (mh_module *)&mod;
    ASSERT_STATUS(mh_import(h, "pkg.b", &mod, ERR), REFUSED_FILE);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), pkg);
    mh_host_free(h);
    assert_no_marker();
    n += 2;
    report("perms_known_dir_opened_to_others_is_refused", n);
}

TEST(perms_entry_one_may_search_but_not_list_holds_code)
{
    /* The walk opened every directory for reading, so an entry of mode
     * 0711 was skipped whole ("cannot open ... without following links:
     * Permission denied") and a later entry's modules of the same names
     * were loaded instead. */
    if (geteuid() != 0)
        SKIP("imports as uid 65534, which needs root");
    chmod_ok(tmp_dir(), 0755);
    const char *e1 = dir_mode(tmp_path("e1"), 0755);
    dir_mode(tmp_path("e1/pkg"), 0755);
    const char *e2 = dir_mode(tmp_path("e2"), 0755);
    dir_mode(tmp_path("e2/pkg"), 0755);
    plugin_at("sec_good", tmp_path("e1/pkg/a.so"), 0644);
    plugin_at("sec_good", tmp_path("e1/top.so"), 0644);
    plugin_at("sec_evil", tmp_path("e2/pkg/a.so"), 0644);
    plugin_at("sec_evil", tmp_path("e2/top.so"), 0644);
    chmod_ok(e1, 0711); /* root's: others may search it, not list it */
    meta_marker();

    if (seteuid(65534) != 0)
        FAIL("seteuid(65534): %s", strerror(errno));
    host_opts o = {0};
    mh_host *h = host_new_opts(&o, e1, e2);
    mh_module *a = NULL, *top = NULL;
    mh_status ra = mh_import(h, "pkg.a", &a, NULL);
    mh_status rt = mh_import(h, "top", &top, NULL);
    /* Copied: the modules' own strings go with the host. */
    const char *wa = str_fmt("%s", ra == MH_OK ? who(a) : "(not imported)");
    const char *wt = str_fmt("%s", rt == MH_OK ? who(top) : "(not imported)");
    mh_host_free(h);
    if (seteuid(0) != 0)
        FAIL("seteuid(0): %s", strerror(errno));
    ASSERT_STATUS(ra, MH_OK);
    ASSERT_STATUS(rt, MH_OK);
    ASSERT_EQ_STR(wa, "good");
    ASSERT_EQ_STR(wt, "good");
    assert_no_marker();
    report("perms_entry_one_may_search_but_not_list_holds_code", 2);
}

TEST(perms_lua_module_refused)
{
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *f = lua_at(tmp_path("e/lmod.lua"), LUA_EVIL, 0664);
    const char *pkg = dir_mode(tmp_path("e/pkg"), 0777);
    const char *ww = dir_mode(tmp_path("ww"), 0777);
    size_t n = 0;

    meta_marker();
    lua_at(tmp_path("e/pkg/lmod.lua"), LUA_EVIL, 0644);
    lua_at(tmp_path("ww/lmod.lua"), LUA_EVIL, 0644);
    n += refused_then_insecure_ok(e, "lmod", f, mode_text(0664));
    chmod_ok(f, 0646);
    n += refused_then_insecure_ok(e, "lmod", f, mode_text(0646));
    n += refused_then_insecure_ok(e, "pkg.lmod", pkg, mode_text(0777));
    n += entry_refused_then_insecure_ok(ww, "lmod", ww, mode_text(0777));
    if (is_root()) {
        chmod_ok(f, 0644);
        chown_ok(f, NOBODY);
        n += refused_then_insecure_ok(e, "lmod", f, "65534");
        chown_ok(f, 0);
    } else {
        skip_note("perms_lua_module_refused", "a Lua file owned by uid 65534");
    }
    chmod_ok(f, 0644);
    n += accepted(e, "lmod", "evil");
    report("perms_lua_module_refused", n);
}

TEST(perms_writable_database_refused)
{
    /* a module database is a file of code: the same rules, for the
     * database file and the directories above it */
    const char *d = dir_mode(tmp_path("d"), 0755);
    const char *db = tmp_path("d/mods.db");
    size_t n = 0;

    meta_marker();
    db_make(db, "sec_evil:mod.so");
    chmod_ok(db, 0666);
    n += entry_or_file_refused(db, "mod", db, mode_text(0666));
    chmod_ok(db, 0644);
    chmod_ok(d, 0777);
    n += entry_or_file_refused(db, "mod", d, mode_text(0777));
    chmod_ok(d, 0755);
    n += accepted(db, "mod", "evil");
    report("perms_writable_database_refused", n);
}

/* ------------------------------------------------ rule 2: swap races */

#define SWAP_IMPORTS 1000
#define SWAP_MAX_MS 20000

typedef struct swapper {
    const char *a, *b;      /* exchanged with each other */
    atomic_int stop;
    atomic_long swaps;
    int error;              /* errno of a failed exchange */
} swapper;

static int exchange(const char *a, const char *b)
{
#ifdef RENAME_EXCHANGE
    return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
#else
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, 2 /* EXCHANGE */);
#endif
}

static void *swap_loop(void *arg)
{
    swapper *s = arg;
    while (!atomic_load(&s->stop)) {
        if (exchange(s->a, s->b) != 0) {
            s->error = errno;
            break;
        }
        atomic_fetch_add(&s->swaps, 1);
    }
    return NULL;
}

/*
 * Import `name` from `entry` with a fresh host SWAP_IMPORTS times while a
 * thread exchanges a and b: each import that works must be the good
 * plugin; each that fails must fail with `refusal`, the status the evil
 * one is refused with.  Both outcomes must be seen, so the race was
 * really run, and the evil plugin's code never.
 */
static void swap_race(const char *case_name, const char *entry,
                      const char *name, const char *a, const char *b,
                      mh_status refusal)
{
    swapper s = {.a = a, .b = b};
    pthread_t t;
    size_t good = 0, refused = 0, i;
    long long t0 = clock_ms();
    const char *first_refusal = NULL;

    meta_marker();
    if (exchange(a, b) != 0 || exchange(a, b) != 0) {
        if (errno == EINVAL || errno == ENOSYS) {
            printf("skip: security.%s: renameat2(RENAME_EXCHANGE) is not "
                   "supported here (%s)\n", case_name, strerror(errno));
            report(case_name, 0);
            return;
        }
        FAIL("renameat2(%s, %s, RENAME_EXCHANGE): %s", a, b, strerror(errno));
    }
    if (pthread_create(&t, NULL, swap_loop, &s) != 0)
        FAIL("pthread_create failed");
    for (i = 0; i < SWAP_IMPORTS && clock_ms() - t0 < SWAP_MAX_MS; i++) {
        mh_host *h = host_flags(0, entry);
        mh_module *mod = NULL;
        mh_error *e = NULL;
        mh_status st = mh_import(h, name, &mod, &e);

        if (st == MH_OK) {
            const char *w = who(mod);
            if (strcmp(w, "good") != 0) {
                atomic_store(&s.stop, 1);
                pthread_join(t, NULL);
                FAIL("import %zu of %zu mapped the evil plugin (who() is "
                     "\"%s\"); marker: %s", i + 1, (size_t)SWAP_IMPORTS, w,
                     marker_text());
            }
            good++;
        } else if (st != refusal) {
            const char *msg = str_fmt("%s", mh_error_message(e));
            mh_error_free(e);
            atomic_store(&s.stop, 1);
            pthread_join(t, NULL);
            FAIL("import %zu: %s, expected %s or MH_OK: %s", i + 1,
                 mh_status_name(st), mh_status_name(refusal), msg);
        } else {
            if (!first_refusal)
                first_refusal = str_fmt("%s: %s", mh_status_name(st),
                                        mh_error_message(e));
            refused++;
        }
        mh_error_free(e);
        mh_host_free(h);
        if (file_read(tmp_path("marker")) != NULL) {
            atomic_store(&s.stop, 1);
            pthread_join(t, NULL);
            FAIL("import %zu (%s): code of the evil plugin ran; marker:\n%s",
                 i + 1, mh_status_name(st), marker_text());
        }
    }
    atomic_store(&s.stop, 1);
    pthread_join(t, NULL);
    if (s.error)
        FAIL("the swapping thread failed: %s", strerror(s.error));
    assert_no_marker();
    if (good == 0 || refused == 0)
        FAIL("the race was not run: %zu good imports, %zu refused in %zu "
             "tries, %ld swaps (first refusal: %s)", good, refused, i,
             atomic_load(&s.swaps), first_refusal ? first_refusal : "none");
    report(case_name, i);
}

TEST(swap_race_note_checked_is_mapped)
{
    /* mod.so and alt.so exchanged: good, and an evil plugin whose note
     * says ABI 2 (refused before dlopen) but whose descriptor is ABI 1 */
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *mod = plugin_at("sec_good", tmp_path("e/mod.so"), 0644);
    const char *alt = plugin_at("sec_evil_abi2", tmp_path("e/alt.so"), 0644);

    swap_race("swap_race_note_checked_is_mapped", e, "mod", mod, alt,
              MH_EABI);
}

TEST(swap_race_mode_checked_is_mapped)
{
    /* good (0644) and a valid evil plugin that is world-writable (0666):
     * its mode is the only thing that keeps it out */
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *mod = plugin_at("sec_good", tmp_path("e/mod.so"), 0644);
    const char *alt = plugin_at("sec_evil", tmp_path("e/alt.so"), 0666);

    swap_race("swap_race_mode_checked_is_mapped", e, "mod", mod, alt,
              REFUSED_FILE);
}

TEST(swap_race_package_dir_checked_is_mapped)
{
    /* e/pkg (0755, good mod.so) and e/pkx (0777, a valid evil mod.so)
     * exchanged: the module is judged by the directory it really came
     * from */
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *pkg = dir_mode(tmp_path("e/pkg"), 0755);
    const char *pkx = dir_mode(tmp_path("e/pkx"), 0777);

    plugin_at("sec_good", tmp_path("e/pkg/mod.so"), 0644);
    plugin_at("sec_evil", tmp_path("e/pkx/mod.so"), 0644);
    swap_race("swap_race_package_dir_checked_is_mapped", e, "pkg.mod", pkg,
              pkx, REFUSED_FILE);
}

TEST(swap_race_lua_checked_is_run)
{
    /* Lua source is code too: good (0644) and a world-writable evil
     * chunk that leaves a mark when it runs, exchanged */
    const char *e = dir_mode(tmp_path("e"), 0755);
    const char *mod = lua_at(tmp_path("e/lmod.lua"),
                             "return {who = function() return 'good' end}\n",
                             0644);
    const char *alt = lua_at(tmp_path("e/alt.lua"), LUA_EVIL, 0666);

    swap_race("swap_race_lua_checked_is_run", e, "lmod", mod, alt,
              REFUSED_FILE);
}

/*
 * Loading through /proc/self/fd/N names the object by its descriptor's
 * number, and the dynamic loader finds an object already loaded by that
 * name before it looks at any file.  An object that stays mapped after a
 * refusal (pinned: RTLD_NODELETE, STB_GNU_UNIQUE) must therefore keep its
 * number taken, or the next file opened under that number is never
 * mapped: the old object is handed out in its place.
 */
TEST(fd_name_of_a_pinned_object_is_never_reused)
{
    const char *e = dir_mode(tmp_path("e"), 0755);
    size_t n = 0;

    plugin_at("sec_pinned_nodesc", tmp_path("e/stale.so"), 0644);
    plugin_at("sec_good", tmp_path("e/good.so"), 0644);
    mh_host *h = host_flags(0, e);
    mh_module *mod = NULL;
    ASSERT_STATUS(mh_import(h, "stale", &mod, ERR), MH_ENODESC);
    /* right after, a plain import of the good plugin: its own file,
     * whatever descriptor it got -- never the pinned object's code */
    mod = NULL;
    ASSERT_STATUS(mh_import_ex(h, "good", MH_IMPORT_PLAIN, &mod, ERR), MH_OK);
    ASSERT_EQ_STR(who(mod), "good");
    ASSERT_EQ_STR(mh_module_kind_name(mh_module_kind_of(mod)),
                  mh_module_kind_name(MH_KIND_NATIVE));
    n += 2;
    mh_host_free(h);
    /* the same with a fresh host and an ordinary import */
    h = host_flags(0, e);
    ASSERT_STATUS(mh_import(h, "stale", &mod, ERR), MH_ENODESC);
    mod = NULL;
    ASSERT_STATUS(mh_import(h, "good", &mod, ERR), MH_OK);
    ASSERT_EQ_STR(who(mod), "good");
    n += 2;
    mh_host_free(h);
    report("fd_name_of_a_pinned_object_is_never_reused", n);
}

/* Open descriptors of this process. */
static size_t fd_count(void)
{
    return (size_t)dir_count("/proc/self/fd");
}

TEST(fd_loads_leak_no_descriptor)
{
    /* two hosts sharing one module file, freed in either order, many
     * times: every descriptor the loads opened is closed again */
    const char *e = dir_mode(tmp_path("e"), 0755);
    size_t before = 0, after, rounds = 50;

    plugin_at("sec_good", tmp_path("e/good.so"), 0644);
    /* a first round warms up whatever the process keeps for good */
    for (size_t r = 0; r <= rounds; r++) {
        if (r == 1)
            before = fd_count();
        mh_host *h1 = host_flags(0, e), *h2 = host_flags(0, e);
        ASSERT_EQ_STR(who(import_ok(h1, "good")), "good");
        ASSERT_EQ_STR(who(import_ok(h2, "good")), "good");
        if (r % 2) {
            mh_host_free(h1);
            mh_host_free(h2);
        } else {
            mh_host_free(h2);
            mh_host_free(h1);
        }
    }
    after = fd_count();
    if (after != before)
        FAIL("%zu descriptors open before %zu rounds of two hosts sharing "
             "a module, %zu after", before, rounds, after);
    report("fd_loads_leak_no_descriptor", rounds * 2);
}

TEST(fd_loads_of_many_shared_modules_leak_no_descriptor)
{
    /* 300 module files loaded by two hosts; the first freed: its 300
     * descriptors must wait (the objects are still the second host's),
     * however many, and never be reused under a loaded object -- a new
     * file then loaded is its own; the second freed: every one closed. */
    enum { N = 300 };
    const char *e = dir_mode(tmp_path("e"), 0755);
    char name[16];

    for (int i = 0; i < N; i++)
        plugin_at("sec_good", tmp_path("e/m%03d.so", i), 0644);
    plugin_at("sec_evil", tmp_path("e/extra.so"), 0644);
    mh_host *warm = host_flags(0, e); /* what the process keeps for good */
    ASSERT_EQ_STR(who(import_ok(warm, "m000")), "good");
    mh_host_free(warm);
    size_t before = fd_count();
    mh_host *h1 = host_flags(0, e), *h2 = host_flags(0, e);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "m%03d", i);
        ASSERT_EQ_STR(who(import_ok(h1, name)), "good");
        ASSERT_EQ_STR(who(import_ok(h2, name)), "good");
    }
    mh_host_free(h1);
    ASSERT_EQ_STR(who(import_ok(h2, "extra")), "evil");
    ASSERT_EQ_STR(who(import_ok(h2, "m299")), "good");
    mh_host_free(h2);
    size_t after = fd_count();
    if (after != before)
        FAIL("%zu descriptors open before two hosts shared %d modules, %zu "
             "after", before, N, after);
    report("fd_loads_of_many_shared_modules_leak_no_descriptor", 2 * N + 1);
}

TEST(fd_of_a_shared_module_survives_the_other_hosts_releases)
{
    /* h1 imports p1, then m00..m19 (which h2 imports too), then p2.
     * Freeing h1 gives back p1's and p2's descriptors, whose objects are
     * gone, and so looks at the waiting ones -- the m's, still h2's:
     * none may be closed, or a new file given its number would load as
     * the old object.  Six new files then each load as themselves. */
    const char *e = dir_mode(tmp_path("e"), 0755);
    char name[16];

    plugin_at("sec_good", tmp_path("e/p1.so"), 0644);
    plugin_at("sec_good", tmp_path("e/p2.so"), 0644);
    for (int i = 0; i < 20; i++)
        plugin_at("sec_good", tmp_path("e/m%02d.so", i), 0644);
    for (int i = 0; i < 6; i++)
        plugin_at("sec_evil", tmp_path("e/x%d.so", i), 0644);
    mh_host *h1 = host_flags(0, e), *h2 = host_flags(0, e);
    import_ok(h1, "p1");
    for (int i = 0; i < 20; i++) {
        snprintf(name, sizeof name, "m%02d", i);
        import_ok(h1, name);
        import_ok(h2, name);
    }
    import_ok(h1, "p2");
    mh_host_free(h1);
    mh_host *h3 = host_flags(0, e);
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "x%d", i);
        ASSERT_EQ_STR(who(import_ok(h3, name)), "evil");
    }
    mh_host_free(h3);
    mh_host_free(h2);
    report("fd_of_a_shared_module_survives_the_other_hosts_releases", 48);
}

/* The highest descriptor number open in this process. */
static int fd_highest(void)
{
    int top = -1;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && atoi(de->d_name) > top)
            top = atoi(de->d_name);
    closedir(d);
    return top;
}

/* The process at its descriptor limit with `room` numbers free: the limit
 * is on descriptor numbers, so every free one below the highest open is
 * filled with /dev/null first.  Skips where the limit is too close. */
typedef struct squeeze {
    struct rlimit old;
    rlim_t limit;               /* the lowered one */
    int *hold;
    size_t n;
} squeeze;

static void squeeze_on(squeeze *q, int room)
{
    int top = fd_highest();
    if (top < 0 || getrlimit(RLIMIT_NOFILE, &q->old) != 0)
        FAIL("cannot read the descriptor table or limit: %s",
             strerror(errno));
    if ((rlim_t)top + 1 + (rlim_t)room + 1 > q->old.rlim_cur)
        SKIP("the descriptor limit is too close to descriptor %d", top);
    q->hold = calloc((size_t)top + 1, sizeof *q->hold);
    q->n = 0;
    if (!q->hold)
        FAIL("out of memory");
    for (;;) {
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            FAIL("open(/dev/null): %s", strerror(errno));
        if (fd > top) {
            close(fd);
            break;
        }
        q->hold[q->n++] = fd;
    }
    struct rlimit low = q->old;
    low.rlim_cur = q->limit = (rlim_t)top + 1 + (rlim_t)room;
    if (setrlimit(RLIMIT_NOFILE, &low) != 0)
        FAIL("setrlimit: %s", strerror(errno));
}

static void squeeze_off(squeeze *q)
{
    if (setrlimit(RLIMIT_NOFILE, &q->old) != 0)
        FAIL("setrlimit back: %s", strerror(errno));
    while (q->n > 0)
        close(q->hold[--q->n]);
    free(q->hold);
}

/* mh_import of name with `room` descriptors free; *limit: the limit it
 * ran under. */
static mh_status import_squeezed(mh_host *h, const char *name, int room,
                                 rlim_t *limit)
{
    squeeze q;
    mh_module *mod = NULL;
    squeeze_on(&q, room);
    mh_status rc = mh_import(h, name, &mod, ERR);
    squeeze_off(&q);
    *limit = q.limit;
    return rc;
}

/* The hint every EMFILE message carries. */
static void assert_limit_said(rlim_t limit)
{
    ASSERT_CONTAINS(ERR_MSG(), "Too many open files");
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("limit of %llu open files, "
                                       "RLIMIT_NOFILE",
                                       (unsigned long long)limit));
    ASSERT_CONTAINS(ERR_MSG(), "every loaded native module holds one");
}

TEST(out_of_descriptors_says_why_and_loses_nothing)
{
    /* Each native module loaded from a file keeps its file open (above).
     * At the process's limit, an import fails naming the module, its file
     * and the limit; once there is room again the same import works, the
     * modules loaded before are untouched, and freeing the host gives
     * every descriptor back. */
    enum { N = 40 };
    const char *e = dir_mode(tmp_path("e"), 0755);
    char name[16];
    squeeze q;
    mh_module *mod = NULL;
    mh_status rc = MH_OK;
    int loaded = 0;

    for (int i = 0; i < N; i++)
        plugin_at("sec_good", tmp_path("e/m%02d.so", i), 0644);
    size_t before = fd_count();
    mh_host *h = host_flags(0, e);
    squeeze_on(&q, 16);
    for (loaded = 0; loaded < N; loaded++) {
        snprintf(name, sizeof name, "m%02d", loaded);
        if ((rc = mh_import(h, name, &mod, ERR)) != MH_OK)
            break;
    }
    squeeze_off(&q);
    if (rc == MH_OK || loaded == 0)
        FAIL("%d of %d imports worked with 16 descriptors free", loaded, N);
    ASSERT_EQ_STR(mh_status_name(rc), mh_status_name(MH_EAGAIN));
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("'%s'", name));
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("%s/%s.so", e, name));
    assert_limit_said(q.limit);
    for (int i = 0; i < N; i++) { /* the failed one too, and the rest */
        snprintf(name, sizeof name, "m%02d", i);
        ASSERT_EQ_STR(who(import_ok(h, name)), "good");
    }
    ASSERT_EQ_INT(mh_host_module_count(h), N);
    mh_host_free(h);
    ASSERT_EQ_INT(fd_count(), before);
    report("out_of_descriptors_says_why_and_loses_nothing", N);
}

TEST(entry_first_opened_out_of_descriptors_is_tried_again)
{
    /* A search path entry opened for the first time at the limit cannot
     * be checked; it must not be given up on for the host's life. */
    const char *e = dir_mode(tmp_path("e"), 0755);
    rlim_t limit;

    plugin_at("sec_good", tmp_path("e/first.so"), 0644);
    mh_host *h = host_flags(0, e);
    ASSERT_NE_INT(import_squeezed(h, "first", 0, &limit), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), "'first'");
    assert_limit_said(limit);
    ASSERT_EQ_STR(who(import_ok(h, "first")), "good");
    mh_host_free(h);
    report("entry_first_opened_out_of_descriptors_is_tried_again", 2);
}

TEST(package_directory_unreadable_for_descriptors_is_no_miss)
{
    /* With no descriptor to read a package's directory, whether the entry
     * has the module is unknown: the import fails as temporary (a later
     * entry's module of that name must not be taken for it), naming the
     * directory and the limit, and works once there is room. */
    const char *e = dir_mode(tmp_path("e"), 0755);
    rlim_t limit;

    dir_mode(tmp_path("e/pkg"), 0755);
    plugin_at("sec_good", tmp_path("e/top.so"), 0644);
    plugin_at("sec_good", tmp_path("e/pkg/m.so"), 0644);
    mh_host *h = host_flags(0, e);
    ASSERT_EQ_STR(who(import_ok(h, "top")), "good"); /* entry open, listed */
    mh_status rc = import_squeezed(h, "pkg.m", 0, &limit);
    ASSERT_EQ_STR(mh_status_name(rc), mh_status_name(MH_EAGAIN));
    ASSERT_CONTAINS(ERR_MSG(), "module 'pkg.m'");
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("cannot read directory %s/pkg", e));
    assert_limit_said(limit);
    ASSERT_EQ_STR(who(import_ok(h, "pkg.m")), "good");
    mh_host_free(h);
    report("package_directory_unreadable_for_descriptors_is_no_miss", 2);
}

TEST(memory_load_out_of_descriptors_says_why_and_loses_nothing)
{
    /* A module from a database is loaded from a sealed memfd (or a
     * private file): at the limit, whichever step runs out says so with
     * the limit -- the memfd, the dynamic loader's open of it, or the
     * fallback file -- and once there is room the same import works. */
    const char *db = tmp_path("m.db");
    rlim_t limit;
    int failed = 0;

    plugin_at("sec_good", tmp_path("stage/m0.so"), 0644);
    for (int i = 1; i <= 4; i++)
        plugin_at("sec_good", tmp_path("stage/m%d.so", i), 0644);
    db_pack(db, tmp_path("stage"));
    mh_host *h = host_flags(0, str_fmt("sqlite:%s", db));
    ASSERT_EQ_STR(who(import_ok(h, "m0")), "good"); /* the database open */
    for (int room = 0; room < 4; room++) {
        char name[8];
        snprintf(name, sizeof name, "m%d", room + 1);
        if (import_squeezed(h, name, room, &limit) == MH_OK)
            continue;
        failed++;
        ASSERT_CONTAINS(ERR_MSG(), str_fmt("'%s'", name));
        assert_limit_said(limit);
        ASSERT_EQ_STR(who(import_ok(h, name)), "good");
    }
    if (failed == 0)
        FAIL("no import failed with 0 to 3 descriptors free");
    mh_host_free(h);
    report("memory_load_out_of_descriptors_says_why_and_loses_nothing",
           failed);
}

TEST(database_entry_first_met_out_of_descriptors_is_tried_again)
{
    /* A database named by its bare path is recognised by its header, which
     * takes a descriptor: at the limit it is taken on trust, its open
     * fails as passing (naming the limit), and the next use looks again. */
    const char *db = tmp_path("m.db");
    rlim_t limit;

    plugin_at("sec_good", tmp_path("stage/m.so"), 0644);
    db_pack(db, tmp_path("stage"));
    mh_host *h = host_flags(0, db);
    ASSERT_NE_INT(import_squeezed(h, "m", 0, &limit), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), db);
    assert_limit_said(limit);
    ASSERT_EQ_STR(who(import_ok(h, "m")), "good");
    mh_host_free(h);
    report("database_entry_first_met_out_of_descriptors_is_tried_again", 2);
}

TEST(lua_cache_unreachable_for_descriptors_is_tried_again)
{
    /* A Lua import at the limit may work while the bytecode cache's
     * directory cannot be checked: the module is compiled in memory, and
     * the cache is asked again by the next import, not given up on. */
    const char *e = dir_mode(tmp_path("e"), 0755);
    log_capture lc;
    host_opts o = {.log = &lc};
    rlim_t limit;
    mh_status rc = MH_ENOTFOUND;

    file_write(tmp_path("e/la.lua"), "return { v = function() return 1 end }"
                                     "\n");
    file_write(tmp_path("e/lb.lua"), "return { v = function() return 2 end }"
                                     "\n");
    log_capture_init(&lc);
    mh_host *h = host_new_opts(&o, e);
    for (int room = 0; room < 16 && rc != MH_OK; room++)
        rc = import_squeezed(h, "la", room, &limit);
    ASSERT_STATUS(rc, MH_OK);
    if (log_capture_count(&lc, MH_LOG_WARN, "bytecode cache not used") == 0)
        SKIP("the first import that worked at the limit could check the "
             "cache as well");
    ASSERT_LOG(&lc, MH_LOG_WARN, "Too many open files");
    import_ok(h, "lb");
    if (tree_count(tmp_path("cache/lua"), ".mhc", NULL) != 1)
        FAIL("the cache was not used once there was room; log:%s",
             log_capture_dump(&lc));
    mh_host_free(h);
    log_capture_free(&lc);
    report("lua_cache_unreachable_for_descriptors_is_tried_again", 2);
}

static int list_names(void *ud, const mh_spec_info *info)
{
    char *names = ud;
    size_t n = strlen(names);
    snprintf(names + n, 512 - n, "%s ", info->name);
    return 0;
}

TEST(listing_out_of_descriptors_warns_instead_of_passing_for_whole)
{
    /* A package directory that cannot be read for lack of descriptors
     * leaves its modules out of mh_list; the operator hears so, with the
     * directory and the limit, and the next listing is whole. */
    const char *e = dir_mode(tmp_path("e"), 0755);
    log_capture lc;
    host_opts o = {.log = &lc};
    squeeze q;
    char names[512] = "";

    dir_mode(tmp_path("e/pkg"), 0755);
    plugin_at("sec_good", tmp_path("e/top.so"), 0644);
    plugin_at("sec_good", tmp_path("e/pkg/m.so"), 0644);
    log_capture_init(&lc);
    mh_host *h = host_new_opts(&o, e);
    ASSERT_EQ_STR(who(import_ok(h, "top")), "good"); /* entry open, listed */
    squeeze_on(&q, 0);
    mh_status rc = mh_list(h, list_names, names, ERR);
    squeeze_off(&q);
    ASSERT_STATUS(rc, MH_OK); /* what could be listed, and a warning */
    ASSERT_NOT_CONTAINS(names, "pkg.m");
    ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("cannot read directory %s/pkg", e));
    ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("limit of %llu open files",
                                         (unsigned long long)q.limit));
    names[0] = '\0';
    ASSERT_STATUS(mh_list(h, list_names, names, ERR), MH_OK);
    ASSERT_CONTAINS(names, "pkg.m ");
    ASSERT_CONTAINS(names, "top ");
    mh_host_free(h);
    log_capture_free(&lc);
    report("listing_out_of_descriptors_warns_instead_of_passing_for_whole",
           2);
}

/* ------------------------------------------- rule 3: RTLD_LOCAL, symbols */

static void *dl_default(const char *sym)
{
    dlerror();
    return dlsym(RTLD_DEFAULT, sym);
}

static void *call_ptr(mh_module *mod, const char *export_name)
{
    void *(*fn)(void) = (void *(*)(void))symbol_ok(mod, export_name);
    return fn();
}

TEST(symbols_plugin_cannot_shadow_host)
{
    static const char *const host_api[] = {
        "mh_version", "mh_intern", "mh_strerror", "mh_import",
        "mh_module_symbol", "mh_error_message", "mh_host_new"};
    static const char *const common[] = {"value", "greeting", "who",
                                         "encode", "sec_only_symbol"};
    void *before_api[sizeof host_api / sizeof host_api[0]];
    void *before_common[sizeof common / sizeof common[0]];
    const char *e = dir_mode(tmp_path("e"), 0755);
    size_t n = 0;

    plugin_at("sec_shadow", tmp_path("e/shadow.so"), 0644);
    plugin_at("sec_probe", tmp_path("e/probe.so"), 0644);
    mh_host *h = host_flags(0, str_fmt("%s;%s", e, PD));
    const char *abc = mh_intern(h, "abc");

    /* before: the process sees libmodhost's own functions */
    for (size_t i = 0; i < sizeof host_api / sizeof host_api[0]; i++) {
        before_api[i] = dl_default(host_api[i]);
        ASSERT_NOT_NULL(before_api[i]);
    }
    ASSERT_EQ_PTR(before_api[0], (void *)mh_version);
    ASSERT_EQ_PTR(before_api[1], (void *)mh_intern);
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
        before_common[i] = dl_default(common[i]);
    ASSERT_NULL(before_common[4]); /* sec_only_symbol: nobody's yet */

    mh_module *shadow = import_ok(h, "shadow");
    /* it really defines them: its own copies, which answer differently */
    void *own_version = call_ptr(shadow, "own_mh_version");
    void *own_intern = call_ptr(shadow, "own_mh_intern");
    ASSERT_NE_PTR(own_version, (void *)mh_version);
    ASSERT_NE_PTR(own_intern, (void *)mh_intern);
    ASSERT_EQ_INT(((int (*)(void))own_version)(), 666666);
    ASSERT_NOT_NULL(call_ptr(shadow, "own_sec_only_symbol"));
    /* and exports them: they are in its dynamic symbol table */
    int status;
    const char *dyn = sh_run(str_fmt("nm -D --defined-only %s",
                                     sh_quote(tmp_path("e/shadow.so"))),
                             &status);
    ASSERT_EQ_INT(status, 0);
    ASSERT_CONTAINS(dyn, " T sec_only_symbol\n");
    ASSERT_CONTAINS(dyn, " T mh_version\n");
    ASSERT_CONTAINS(dyn, " T mh_intern\n");
    n += 2;

    /* after: nothing the process resolves has changed */
    for (size_t i = 0; i < sizeof host_api / sizeof host_api[0]; i++, n++)
        if (dl_default(host_api[i]) != before_api[i])
            FAIL("dlsym(RTLD_DEFAULT, \"%s\") changed after importing the "
                 "shadow plugin", host_api[i]);
    for (size_t i = 0; i < sizeof common / sizeof common[0]; i++, n++)
        if (dl_default(common[i]) != before_common[i])
            FAIL("dlsym(RTLD_DEFAULT, \"%s\") changed after importing the "
                 "shadow plugin", common[i]);
    ASSERT_NULL(dl_default("sec_only_symbol"));
    ASSERT_NULL(mh_module_symbol(shadow, "sec_only_symbol"));

    /* and the host's functions still do the host's work */
    ASSERT_EQ_INT(mh_version(), MH_VERSION_NUMBER);
    ASSERT_EQ_STR(mh_version_string(), MH_VERSION_STRING);
    ASSERT_NE_INT(strcmp(mh_strerror(MH_EBADNAME), "shadow"), 0);
    ASSERT_EQ_PTR(mh_intern(h, "abc"), abc);
    ASSERT_EQ_STR(mh_intern(h, "abc"), "abc");
    const char *xyz = mh_intern(h, "xyz");
    ASSERT_EQ_STR(xyz, "xyz");
    ASSERT_EQ_PTR(mh_intern(h, str_fmt("%s", "xyz")), xyz);
    mh_module *m2 = NULL;
    ASSERT_STATUS(mh_import(h, "shadow", &m2, ERR), MH_OK);
    ASSERT_EQ_PTR(m2, shadow);
    n += 6;

    /* a plugin loaded later binds to the host's, never the shadow's */
    mh_module *probe = import_ok(h, "probe");
    ASSERT_NULL(call_ptr(probe, "bound_sec_only_symbol"));
    ASSERT_EQ_PTR(call_ptr(probe, "bound_mh_version"), (void *)mh_version);
    ASSERT_EQ_PTR(call_ptr(probe, "bound_mh_intern"), (void *)mh_intern);
    /* and a bundled plugin's exports are its own */
    mh_module *hello = import_ok(h, "hello");
    const char *(*greeting)(void) =
        (const char *(*)(void))symbol_ok(hello, "greeting");
    ASSERT_EQ_STR(greeting(), "hello");
    n += 4;

    mh_host_free(h);
    ASSERT_NULL(dl_default("sec_only_symbol"));
    ASSERT_EQ_PTR(dl_default("mh_version"), before_api[0]);
    report("symbols_plugin_cannot_shadow_host", n + 2);
}

/* ---------------------------------------------- rule 4: names, all finders */

/* Names that must never reach a finder.  Some are fine as path text but
 * are no module name; others would climb out of an entry under a careless
 * name-to-path mapping, decoded URL, or Unicode normalisation. */
static const char *const bad_names[] = {
    "", ".", "..", "...", "../canary", "..canary", "canary..", "canary.",
    ".canary", "a..canary", "a...canary", "a.b..canary",
    "/canary", "canary/", "a/canary", "a//canary", "a/../canary",
    "a/./canary", "..\\canary", "a\\..\\canary", "~", "~/canary",
    "~root", "%2e%2e", "%2e%2e/canary", "%2e%2e.canary", "%2E%2E%2Fcanary",
    "..%2fcanary", "..%2Fcanary", "%252e%252e%252fcanary", "%2fcanary",
    "canary%00", "\xe2\x80\xa4\xe2\x80\xa4/canary",      /* U+2024 x2 */
    "\xe2\x80\xa4\xe2\x80\xa4.canary", "\xe2\x80\xa5" "canary",           /* U+2025 */
    "\xef\xbc\x8e\xef\xbc\x8e/canary",                    /* U+FF0E x2 */
    "\xef\xbc\x8e\xef\xbc\x8e\xef\xbc\x8f" "canary",      /* ..／ */
    "\xe3\x80\x82\xe3\x80\x82/canary",                    /* U+3002 x2 */
    "\xef\xb9\x92\xef\xb9\x92/canary",                    /* U+FE52 x2 */
    "\xc0\xae\xc0\xae/canary",                            /* overlong . */
    "\xc0\xae\xc0\xae\xc0\xaf" "canary",                  /* overlong ./ */
    "\xe0\x80\xae\xe0\x80\xae/canary",                    /* 3-byte . */
    "canary\xef\xbc\x8e" "so", "canary\xe2\x80\xa4",
    "a canary", " canary", "canary ", "canary\n", "canary\t", "can:ary",
    "canary;x", "1canary", "a.1canary", "canary-x", "canary*",
};
#define NBAD (sizeof bad_names / sizeof bad_names[0])

/* Also every one of these with an absolute path in front, and a name
 * longer than 255 bytes. */

static const char *shown(const char *name)
{
    char buf[400];
    size_t o = 0;
    for (size_t i = 0; name[i] && o + 5 < sizeof buf; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 0x20 && c < 0x7f)
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, sizeof buf - o, "\\x%02x", c);
    }
    buf[o] = '\0';
    return str_fmt("\"%s\"", buf);
}

/* The full list: bad_names, absolute paths to the outside canary, and a
 * 256-byte name.  NULL-terminated. */
static const char **all_bad_names(const char *outside_dir)
{
    static const char *v[NBAD + 8];
    size_t n = 0;
    char lng[300];

    for (size_t i = 0; i < NBAD; i++)
        v[n++] = bad_names[i];
    v[n++] = str_fmt("%s/canary", outside_dir);
    v[n++] = str_fmt("%s/canary.so", outside_dir);
    v[n++] = str_fmt("%s/../canary", outside_dir);
    memset(lng, 'a', 256);
    lng[256] = '\0';
    v[n++] = str_fmt("%s", lng);
    v[n] = NULL;
    return v;
}

/* A meta-path finder asked first for every module: it counts what it is
 * asked and never has anything. */
typedef struct spy {
    atomic_long finds;
    char last[300];
} spy;

static mh_status spy_open(mh_finder_ctx *cx, const char *entry, void **state)
{
    (void)entry;
    *state = cx->ud;
    return MH_OK;
}

static mh_status spy_find(mh_finder_ctx *cx, void *state, const char *name,
                          mh_finder_spec *out)
{
    spy *s = state;
    (void)out;
    atomic_fetch_add(&s->finds, 1);
    snprintf(s->last, sizeof s->last, "%s", name);
    cx->svc->miss(cx, "the spy has nothing");
    return MH_ENOTFOUND;
}

static void spy_close(mh_finder_ctx *cx, void *state)
{
    (void)cx;
    (void)state;
}

static const mh_finder_class spy_class = {
    MH_FINDER_CLASS_INIT, .name = "spy", .open = spy_open,
    .find = spy_find, .close = spy_close};

/* The fault hook, never failing: it counts the I/O the library does. */
typedef struct io_count {
    atomic_long calls;
    char sites[512];
    pthread_mutex_t mu;
} io_count;

static int count_io(void *ud, const char *site)
{
    io_count *c = ud;
    atomic_fetch_add(&c->calls, 1);
    pthread_mutex_lock(&c->mu);
    size_t len = strlen(c->sites);
    if (len + strlen(site) + 2 < sizeof c->sites)
        snprintf(c->sites + len, sizeof c->sites - len, "%s ", site);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* A host on `path` with the spy first and the I/O counter. */
static mh_host *spy_host(const char *path, spy *sp, io_count *io,
                         log_capture *lc)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = path;
    cfg.cache_dir = tmp_path("cache");
    cfg.fault = count_io;
    cfg.fault_ud = io;
    if (lc) {
        cfg.log = log_capture_fn;
        cfg.log_ud = lc;
    }
    mh_host *h = host_new_cfg(&cfg);
    ASSERT_STATUS(mh_host_add_meta_finder(h, &spy_class, sp, MH_CHAIN_FIRST,
                                          NULL, ERR), MH_OK);
    return h;
}

/* Every bad name through mh_import, mh_import_ex(PLAIN), mh_find and
 * mh_metadata: MH_EBADNAME, no finder asked, no I/O.  Returns the number
 * of calls checked. */
static size_t bad_names_refused(mh_host *h, spy *sp, io_count *io,
                                const char **names)
{
    size_t n = 0;
    long finds0 = atomic_load(&sp->finds), io0 = atomic_load(&io->calls);

    for (size_t i = 0; names[i]; i++) {
        const char *nm = names[i];
        mh_module *mod = (mh_module *)&mod;
        mh_spec_info info = {.size = sizeof info};
        mh_manifest *man = (mh_manifest *)&man;
        mh_status st;

        st = mh_import(h, nm, &mod, ERR);
        if (st != MH_EBADNAME)
            FAIL("mh_import(%s): %s, expected MH_EBADNAME: %s", shown(nm),
                 mh_status_name(st), ERR_MSG());
        ASSERT_NULL(mod);
        st = mh_import_ex(h, nm, MH_IMPORT_PLAIN, &mod, ERR);
        if (st != MH_EBADNAME)
            FAIL("mh_import_ex(%s, PLAIN): %s: %s", shown(nm),
                 mh_status_name(st), ERR_MSG());
        st = mh_find(h, nm, &info, ERR);
        if (st != MH_EBADNAME)
            FAIL("mh_find(%s): %s: %s", shown(nm), mh_status_name(st),
                 ERR_MSG());
        st = mh_metadata(h, nm, &man, ERR);
        if (st != MH_EBADNAME)
            FAIL("mh_metadata(%s): %s: %s", shown(nm), mh_status_name(st),
                 ERR_MSG());
        if (st == MH_OK)
            mh_manifest_free(man);
        n += 4;
        if (atomic_load(&sp->finds) != finds0)
            FAIL("name %s reached a finder (the spy was asked for \"%s\")",
                 shown(nm), sp->last);
        if (atomic_load(&io->calls) != io0)
            FAIL("name %s caused I/O: %s", shown(nm), io->sites);
    }
    ASSERT_EQ_INT(mh_host_module_count(h), 0);
    return n;
}

/* After the bad names: a good name reaches the spy and does I/O (the
 * detectors work) and loads the good plugin from where it should. */
static size_t good_name_works(mh_host *h, spy *sp, io_count *io,
                              const char *finder)
{
    long finds0 = atomic_load(&sp->finds), io0 = atomic_load(&io->calls);
    mh_module *mod = import_ok(h, "good");
    ASSERT_EQ_STR(who(mod), "good");
    ASSERT_EQ_STR(mh_module_finder(mod), finder);
    ASSERT_TRUE(atomic_load(&sp->finds) > finds0);
    ASSERT_TRUE(atomic_load(&io->calls) > io0);
    return 1;
}

/* Canaries outside the entry, at T/names/: canary.so (evil), canary.lua
 * (evil), and inside the entry at paths only a bad name could map to.
 * Returns the outside directory. */
static const char *plant_canaries(const char *entry)
{
    const char *out = tmp_mkdir("names");
    static const char *const inside[] = {
        "%2e%2e/canary.so", "%2E%2E/canary.so",
        "\xe2\x80\xa4\xe2\x80\xa4/canary.so",
        "\xef\xbc\x8e\xef\xbc\x8e/canary.so", "~/canary.so",
        "a b.so", "canary .so", "1canary.so", "canary-x.so",
    };
    plugin_at("sec_evil", str_fmt("%s/canary.so", out), 0644);
    lua_at(str_fmt("%s/canary.lua", out), LUA_EVIL, 0644);
    plugin_at("sec_evil", tmp_path("canary.so"), 0644);
    if (entry)
        for (size_t i = 0; i < sizeof inside / sizeof inside[0]; i++)
            plugin_at("sec_evil", str_fmt("%s/%s", entry, inside[i]), 0644);
    return out;
}

TEST(names_fs_entry)
{
    spy sp = {0};
    io_count io = {.mu = PTHREAD_MUTEX_INITIALIZER};
    const char *e = tmp_mkdir("names/entry");
    const char *out;
    size_t n;

    meta_marker();
    plugin_at("sec_good", str_fmt("%s/good.so", e), 0644);
    out = plant_canaries(e);
    mh_host *h = spy_host(e, &sp, &io, NULL);
    n = bad_names_refused(h, &sp, &io, all_bad_names(out));
    n += good_name_works(h, &sp, &io, "fs");
    mh_host_free(h);
    assert_no_marker();
    report("names_fs_entry", n);
}

/* Rows named as a bad name would map them, added with the sqlite3 CLI. */
static void db_add_row(const char *db, const char *name, const char *file)
{
    db_exec(db, str_fmt("INSERT INTO sqlar(name, mode, mtime, sz, data) "
                        "VALUES(%s, 33188, 0, length(readfile(%s)), "
                        "readfile(%s));",
                        sh_quote(name), sh_quote(file), sh_quote(file)));
}

TEST(names_sqlite_entry)
{
    spy sp = {0};
    io_count io = {.mu = PTHREAD_MUTEX_INITIALIZER};
    const char *db = tmp_path("names/mods.db");
    static const char *const rows[] = {
        "../canary.so", "/canary.so", "%2e%2e/canary.so", "a/../canary.so",
        "a//canary.so", "\xe2\x80\xa4\xe2\x80\xa4/canary.so",
        "\xef\xbc\x8e\xef\xbc\x8e/canary.so", "canary/.so", "/.so", ".so",
        "a/./canary.so", "../canary.lua", "~/canary.so", "1canary.so",
    };
    size_t n;

    meta_marker();
    tmp_mkdir("names");
    db_make(db, "sec_good:good.so");
    const char *out = plant_canaries(NULL);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        db_add_row(db, rows[i], str_fmt("%s/canary.%s", out,
                                        strstr(rows[i], ".lua") ? "lua"
                                                                : "so"));
    mh_host *h = spy_host(db, &sp, &io, NULL);
    n = bad_names_refused(h, &sp, &io, all_bad_names(out));
    n += good_name_works(h, &sp, &io, "sqlite");
    mh_host_free(h);
    assert_no_marker();
    report("names_sqlite_entry", n);
}

TEST(names_http_entry)
{
    spy sp = {0};
    io_count io = {.mu = PTHREAD_MUTEX_INITIALIZER};
    log_capture lc;
    const char *www = tmp_mkdir("names/www");
    size_t n, before;

    meta_marker();
    http_no_proxy_env();
    plugin_at("sec_good", str_fmt("%s/good.so", www), 0644);
    /* canaries beside the served tree and, unindexed, inside it */
    const char *out = plant_canaries(NULL);
    plugin_at("sec_evil", str_fmt("%s/%%2e%%2e/canary.so", www), 0644);
    http_index_dir(www, NULL);
    http_server *srv = http_start(www, NULL);
    log_capture_init(&lc);
    mh_host *h = spy_host(http_url(srv, "ok/"), &sp, &io, &lc);
    before = http_requests(srv, "");
    n = bad_names_refused(h, &sp, &io, all_bad_names(out));
    if (http_requests(srv, "") != before)
        FAIL("bad names caused HTTP requests:\n%s", http_log_text(srv));
    ASSERT_REQUESTS(srv, "canary", 0);
    n += good_name_works(h, &sp, &io, "http");
    ASSERT_REQUESTS(srv, "canary", 0);
    mh_host_free(h);
    http_stop(srv);
    log_capture_free(&lc);
    assert_no_marker();
    report("names_http_entry", n + 1);
}

/* Writes a tar archive with the given members (MEMBER=FILE), member names
 * exactly as given, by python3's tarfile. */
static const char TAR_PY[] =
    "import sys, tarfile\n"
    "with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:\n"
    "    for s in sys.argv[2:]:\n"
    "        name, src = s.split('=', 1)\n"
    "        t.add(src, arcname=name)\n";

TEST(names_tar_entry)
{
    spy sp = {0};
    io_count io = {.mu = PTHREAD_MUTEX_INITIALIZER};
    static const char *const members[] = {
        "../canary.so", "/canary.so", "%2e%2e/canary.so", "a/../canary.so",
        "\xe2\x80\xa4\xe2\x80\xa4/canary.so",
        "\xef\xbc\x8e\xef\xbc\x8e/canary.so", "a//canary.so", "~/canary.so",
        "1canary.so",
    };
    const char *ar = tmp_path("names/mods.tar");
    const char *script = tmp_path("mktar.py");
    int status;
    size_t n;

    meta_marker();
    tmp_mkdir("names");
    const char *out = plant_canaries(NULL);
    const char *good = plugin_at("sec_good", tmp_path("good.so"), 0644);
    const char *cmd = str_fmt("python3 %s %s %s", sh_quote(script),
                              sh_quote(ar), sh_quote(str_fmt("good.so=%s",
                                                             good)));
    file_write(script, TAR_PY);
    for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
        cmd = str_fmt("%s %s", cmd, sh_quote(str_fmt("%s=%s/canary.so",
                                                     members[i], out)));
    const char *text = sh_run(str_fmt("%s 2>&1", cmd), &status);
    if (status != 0)
        FAIL("could not write %s: %s", ar, text);
    mh_host *h = spy_host(str_fmt("tar:%s;%s", ar, PD), &sp, &io, NULL);
    n = bad_names_refused(h, &sp, &io, all_bad_names(out));
    /* the finder plugin was not even needed yet */
    ASSERT_NULL(mh_host_module(h, "finders.tar"));
    n += good_name_works(h, &sp, &io, "tar");
    mh_host_free(h);
    assert_no_marker();
    report("names_tar_entry", n);
}

/* Lua: require(name) and modhost.import(name) of every bad name fail
 * without any finder being asked or any canary running. */
static const char LUA_PROBE[] =
    "local M = {}\n"
    "function M.try(name)\n"
    "  local ok1, e1 = pcall(require, name)\n"
    "  local ok2, e2 = pcall(modhost.import, name)\n"
    "  return (ok1 and 'require loaded ' or 'require failed ') ..\n"
    "         (ok2 and 'import loaded' or 'import failed') ..\n"
    "         '|' .. tostring(e1) .. '|' .. tostring(e2)\n"
    "end\n"
    "return M\n";

TEST(names_lua_require)
{
    spy sp = {0};
    io_count io = {.mu = PTHREAD_MUTEX_INITIALIZER};
    const char *e = tmp_mkdir("names/entry");
    const char **names;
    size_t n = 0;

    meta_marker();
    plugin_at("sec_good", str_fmt("%s/good.so", e), 0644);
    lua_at(str_fmt("%s/probe.lua", e), LUA_PROBE, 0644);
    const char *out = plant_canaries(e);
    names = all_bad_names(out);
    mh_host *h = spy_host(e, &sp, &io, NULL);
    mh_module *probe = import_ok(h, "probe");
    long finds0 = atomic_load(&sp.finds);
    for (size_t i = 0; names[i]; i++) {
        cJSON *args = cJSON_CreateArray(), *res = NULL;
        cJSON_AddItemToArray(args, cJSON_CreateString(names[i]));
        ASSERT_STATUS(mh_module_call(probe, "try", args, &res, ERR), MH_OK);
        cJSON_Delete(args);
        if (!cJSON_IsString(res))
            FAIL("try(%s) returned no string", shown(names[i]));
        const char *r = str_fmt("%s", res->valuestring);
        cJSON_Delete(res);
        if (strncmp(r, "require failed import failed|", 29) != 0)
            FAIL("Lua with the name %s: %s", shown(names[i]), r);
        if (atomic_load(&sp.finds) != finds0)
            FAIL("Lua's require or import of %s reached a finder (\"%s\")",
                 shown(names[i]), sp.last);
        n += 2;
    }
    ASSERT_EQ_INT(mh_host_module_count(h), 1);
    mh_host_free(h);
    assert_no_marker();
    report("names_lua_require", n);
}
