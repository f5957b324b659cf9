/*
 * test_probe.c -- probe mode (MH_CONFIG_PROBE, loaders/probe.c): a new
 * native plugin is loaded, initialised and finalised in a child process
 * (`modhost probe --in-process`) before the host loads it.  A plugin that
 * crashes (SIGSEGV), aborts, exits or hangs in init is refused with the
 * reason, which discovery and mh_host_failures show; the test process
 * lives on and good plugins still load.  A pass is cached by the module's
 * identity (a second host spawns no child) until the file changes; a
 * clean refusal in the child is left to the host's own load; the same
 * works for images held in memory (database blobs); without the flag
 * nothing is spawned.
 *
 * Children are counted two ways: the host's trace "checking it in a child
 * process", and the fixture probe_good, whose init and fini append "init
 * PID" / "fini PID" to $MH_FIXTURE_MARKER in whatever process runs them.
 * The crashing and hanging fixtures are only ever imported in probe mode.
 * Hosts here are not isolated, so that MODHOST_PROBE_TIMEOUT_MS and
 * MODHOST_PROBE_BIN reach them; the path variable is one that is unset.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

#define SPAWNED "checking it in a child process"
#define CACHED "(cached)"

/* ------------------------------------------------------------ helpers */

/* Nothing from the environment steers the probe, but what a case sets. */
static void probe_env(void)
{
    env_unset("MODHOST_PROBE_BIN");
    env_unset("MODHOST_PROBE_TIMEOUT_MS");
    env_unset("MH_TEST_PROBE_NO_PATH");
}

/* A host tracing into lc (may be NULL) over entry, with flags added to
 * NO_DEFAULT_PATH | VERBOSE, its cache in tmp_path("cache"). */
static mh_host *probe_host(log_capture *lc, unsigned flags, const char *entry)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_NO_DEFAULT_PATH | MH_CONFIG_VERBOSE | flags;
    cfg.path = entry;
    cfg.path_env = "MH_TEST_PROBE_NO_PATH";
    cfg.cache_dir = tmp_path("cache");
    if (lc) {
        cfg.log = log_capture_fn;
        cfg.log_ud = lc;
    }
    return host_new_cfg(&cfg);
}

/* Fixture NAME copied to tmp_dir()/E/NAME.so, 60 s old (older than the
 * 2 s "may still change" window, so a pass is cached). */
static const char *plugin(const char *fixture)
{
    const char *path = fixture_copy(fixture, "E/%s.so", fixture);
    disc_set_age(path, 60);
    return path;
}

static size_t spawned(log_capture *lc)
{
    return log_capture_count(lc, MH_LOG_TRACE, SPAWNED);
}

/* Lines of the marker file that start with what ("init", "fini"). */
static size_t marks(const char *marker, const char *what)
{
    const char *text = file_read(marker);
    return str_count(text ? text : "", str_fmt("%s ", what));
}

/* A bad fixture in probe mode: import fails with MH_EINIT naming the
 * module, its file and the reason; this process and the host go on (a
 * good plugin imports); the failure is recorded for mh_host_failures and
 * discovery; a second import probes again and fails the same way. */
static void check_refused(const char *fixture, const char *reason)
{
    log_capture lc;
    log_capture_init(&lc);
    const char *file = plugin(fixture);
    plugin("probe_good");
    mh_host *h = probe_host(&lc, MH_CONFIG_PROBE, tmp_path("E"));
    long fds = dir_count("/proc/self/fd");

    mh_module *mod = (mh_module *)1;
    ASSERT_STATUS(mh_import(h, fixture, &mod, ERR), MH_EINIT);
    ASSERT_EQ_INT(dir_count("/proc/self/fd"), fds); /* nothing kept open */
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("module '%s' (%s) failed its probe "
                                       "in a child process: ", fixture,
                                       file));
    ASSERT_CONTAINS(ERR_MSG(), reason);
    ASSERT_NULL(mh_host_module(h, fixture));
    ASSERT_EQ_INT(spawned(&lc), 1);

    /* Still here, and the host still loads good plugins. */
    ASSERT_EQ_INT(call_int(import_ok(h, "probe_good"), "value"), 42);
    ASSERT_EQ_INT(spawned(&lc), 2);

    disc_fails fails;
    disc_failures(h, &fails);
    const disc_fail *f = disc_fail_find(&fails, fixture);
    if (!f)
        FAIL("no recorded failure of %s:\n%s", fixture, fails.text);
    ASSERT_EQ_INT(f->status, MH_EINIT);
    ASSERT_EQ_STR(f->origin, file);
    ASSERT_CONTAINS(f->reason, reason);
    ASSERT_NULL(disc_fail_find(&fails, "probe_good"));

    disc_run r;
    disc_discover(h, NULL, &r);
    const disc_mod *m = disc_get(&r, fixture);
    ASSERT_EQ_INT(m->status, MH_EINIT);
    ASSERT_CONTAINS(m->reason, reason);
    ASSERT_EQ_INT(disc_get(&r, "probe_good")->status, MH_OK);

    /* Failures are not cached by the probe: it runs again. */
    ASSERT_STATUS(mh_import(h, fixture, &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), reason);
    ASSERT_EQ_INT(spawned(&lc), 3);
    mh_host_free(h);
    log_capture_free(&lc);
}

/* ------------------------------------------------------ bad plugins */

TEST(segv_in_init_is_refused)
{
    probe_env();
    check_refused("probe_segv",
                  "crashed in init: signal 11 (Segmentation fault)");
}

TEST(abort_in_init_is_refused)
{
    probe_env();
    check_refused("probe_abort", "aborted (signal 6)");
}

TEST(exit_in_init_is_refused)
{
    probe_env();
    check_refused("probe_exit", "exited in init with status 3");
    ASSERT_CONTAINS(ERR_MSG(), "probe_exit: giving up");
}

TEST(hang_in_init_is_refused_in_time)
{
    probe_env();
    env_set("MODHOST_PROBE_TIMEOUT_MS", "500");
    long long t0 = clock_ms();
    check_refused("probe_hang", "hung: no answer in 0.5 s");
    long long ms = clock_ms() - t0;
    /* Three probes of 0.5 s, a good one, and discovery. */
    if (ms > 8000)
        FAIL("took %lld ms", ms);
}

/* An application sets the probe's limit in its config: an isolated host,
 * which reads no environment, has one too, and the config's wins over
 * MODHOST_PROBE_TIMEOUT_MS; over an hour is refused when the host is
 * made. */
TEST(the_probe_timeout_is_set_in_the_config)
{
    probe_env();
    env_set("MODHOST_PROBE_TIMEOUT_MS", "60000");
    const char *file = plugin("probe_hang");
    for (int isolated = 0; isolated < 2; isolated++) {
        mh_config cfg;
        mh_config_init(&cfg);
        cfg.flags = MH_CONFIG_NO_DEFAULT_PATH | MH_CONFIG_PROBE |
                    (isolated ? MH_CONFIG_ISOLATED : 0);
        cfg.path = tmp_path("E");
        cfg.path_env = "MH_TEST_PROBE_NO_PATH";
        cfg.cache_dir = tmp_path("cache");
        cfg.probe_timeout_ms = 1500; /* room for a slow child to start */
        mh_host *h = host_new_cfg(&cfg);
        mh_module *mod = NULL;
        ASSERT_STATUS(mh_import(h, "probe_hang", &mod, ERR), MH_EINIT);
        ASSERT_CONTAINS(ERR_MSG(), str_fmt("module 'probe_hang' (%s) failed "
                                           "its probe", file));
        ASSERT_CONTAINS(ERR_MSG(), "hung: no answer in 1.5 s");
        mh_host_free(h);
    }
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.probe_timeout_ms = 3600001;
    mh_host *h = (mh_host *)1;
    ASSERT_STATUS(mh_host_new(&cfg, &h, ERR), MH_EINVAL);
    ASSERT_NULL(h);
    ASSERT_CONTAINS(ERR_MSG(), "mh_config.probe_timeout_ms is 3600001; at "
                               "most 3600000");
}

/* Init forks; the copy says "init-ok" and "ok" on the inherited status
 * descriptor while the child itself exits with status 3: the child's own
 * word is what counts.  Its last words hold an escape sequence, shown as
 * \x1b, never raw. */
TEST(forked_copy_cannot_answer_for_the_child)
{
    probe_env();
    check_refused("probe_fork_exit", "exited in init with status 3 (its "
                  "last words: probe_fork_exit: \\x1b[31mgiving up)");
    ASSERT_NULL(strchr(ERR_MSG(), '\x1b'));
}

/* An init that closes the status descriptor has the child end without a
 * word: refused, and said so (no leak reported as its last words). */
TEST(closed_status_descriptor_is_said)
{
    probe_env();
    check_refused("probe_close_status", "exited in init with status 0, or "
                  "closed the probe's status descriptor (3)");
    ASSERT_NOT_CONTAINS(ERR_MSG(), "leak");
}

/* Is process pid gone (or a zombie nobody reaps)? */
static bool process_gone(long pid)
{
    const char *stat = file_read(str_fmt("/proc/%ld/stat", pid));
    const char *paren = stat ? strrchr(stat, ')') : NULL;
    return !paren || paren[1] != ' ' || paren[2] == 'Z' || paren[2] == 'X';
}

/* The copy probe_fork_hang forked, whose pid is in marker, is gone (within
 * two seconds). */
static void copy_is_gone(const char *marker)
{
    const char *text = file_read(marker);
    if (!text)
        FAIL("the fixture's copy wrote no pid to %s", marker);
    long pid = strtol(text, NULL, 10);
    ASSERT_TRUE(pid > 1 && pid != (long)getpid());
    for (int i = 0; i < 200 && !process_gone(pid); i++)
        usleep(10 * 1000);
    if (!process_gone(pid)) {
        kill((pid_t)pid, SIGKILL);
        FAIL("the copy %ld forked in the probe child outlived the probe",
             pid);
    }
}

/* What a passing plugin's init forked in the probe child is killed with
 * the child's process group, not left behind holding the probe's pipes. */
TEST(forked_copy_does_not_outlive_the_probe)
{
    probe_env();
    const char *marker = tmp_path("forked");
    env_set("MH_FIXTURE_MARKER", marker);
    plugin("probe_fork_hang");
    mh_host *h = probe_host(NULL, MH_CONFIG_PROBE, tmp_path("E"));
    ASSERT_EQ_INT(call_int(import_ok(h, "probe_fork_hang"), "value"), 5);
    mh_host_free(h);
    copy_is_gone(marker);
}

static void reap_every_child(int sig)
{
    (void)sig;
    int e = errno;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    errno = e;
}

#define LOST_PATH "ended in init without finishing; how cannot be told, " \
                  "as its exit status was taken by someone else"

/* With SIGCHLD handled by handler (sa_flags), the failing fixture bad is
 * refused (MH_EINIT) with a message holding one of want1 and want2 (may
 * be NULL), what probe_fork_hang's init forked is killed, and a good
 * plugin passes.  The error message is left in ERR_MSG(). */
static void probe_under_sigchld(void (*handler)(int), int sa_flags,
                                const char *bad, const char *want1,
                                const char *want2)
{
    probe_env();
    struct sigaction sa = {.sa_handler = handler}, old;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = sa_flags;
    ASSERT_EQ_INT(sigaction(SIGCHLD, &sa, &old), 0);
    const char *marker = tmp_path("forked");
    env_set("MH_FIXTURE_MARKER", marker);
    plugin(bad);
    plugin("probe_fork_hang");
    plugin("probe_good");
    mh_host *h = probe_host(NULL, MH_CONFIG_PROBE, tmp_path("E"));
    mh_module *mod;
    ASSERT_STATUS(mh_import(h, bad, &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "failed its probe in a child process: ");
    if (!strstr(ERR_MSG(), want1) && !(want2 && strstr(ERR_MSG(), want2)))
        FAIL("neither \"%s\" nor \"%s\": %s", want1,
             want2 ? want2 : "", ERR_MSG());
    ASSERT_EQ_INT(call_int(import_ok(h, "probe_fork_hang"), "value"), 5);
    ASSERT_EQ_INT(call_int(import_ok(h, "probe_good"), "value"), 42);
    mh_host_free(h);
    sigaction(SIGCHLD, &old, NULL);
    copy_is_gone(marker);
}

/* An application whose SIGCHLD handler reaps every child (waitpid(-1))
 * takes the probe child's exit status: a crash is still refused as the
 * module's failure, saying why it cannot say how (it was MH_EIO, "failed
 * before loading it"), what a plugin's init forked is still killed with
 * the child's group (it was left running), and good plugins still pass.
 * Which of the two waits gets the status first is the scheduler's
 * choice; the next case takes the lost path every time. */
TEST(an_application_reaping_every_child_keeps_verdicts_and_containment)
{
    probe_under_sigchld(reap_every_child, SA_RESTART | SA_NOCLDSTOP,
                        "probe_segv", LOST_PATH,
                        "crashed in init: signal 11");
}

/* With SIGCHLD ignored the kernel reaps every child at once, so the probe
 * never has the exit status: a child that exits in init is still the
 * module's failure, said as such, and what a plugin's init forked is
 * still killed. */
TEST(sigchld_ignored_keeps_verdicts_and_containment)
{
    probe_under_sigchld(SIG_IGN, 0, "probe_exit", LOST_PATH, NULL);
    ASSERT_CONTAINS(ERR_MSG(), "(its last words: probe_exit: giving up)");
}

/* A plugin whose init refuses cleanly in the child is not the probe's
 * business: the host loads it and gives its own answer (recorded by the
 * import as any failed init). */
TEST(clean_refusal_gets_the_hosts_own_answer)
{
    probe_env();
    const char *marker = meta_marker();
    log_capture lc;
    log_capture_init(&lc);
    plugin("init_fails");
    mh_host *h = probe_host(&lc, MH_CONFIG_PROBE, tmp_path("E"));
    mh_module *mod;
    ASSERT_STATUS(mh_import(h, "init_fails", &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "deliberate init failure from fixture");
    ASSERT_NOT_CONTAINS(ERR_MSG(), "failed its probe");
    ASSERT_LOG(&lc, MH_LOG_TRACE, "refused cleanly in the child");
    ASSERT_EQ_INT(marks(marker, "init"), 2); /* the child, then here */
    disc_fails fails;
    disc_failures(h, &fails);
    ASSERT_NOT_NULL(disc_fail_find(&fails, "init_fails"));
    mh_host_free(h);
    log_capture_free(&lc);
}

/* ------------------------------------------------ good plugins, cache */

TEST(good_plugin_loads_and_its_pass_is_cached)
{
    probe_env();
    const char *marker = meta_marker();
    const char *file = plugin("probe_good");
    log_capture lc;
    log_capture_init(&lc);
    long fds = dir_count("/proc/self/fd");

    mh_host *h = probe_host(&lc, MH_CONFIG_PROBE, tmp_path("E"));
    mh_module *mod = import_ok(h, "probe_good");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_INT(spawned(&lc), 1);
    ASSERT_LOG(&lc, MH_LOG_TRACE, "probe: 'probe_good' (");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_TRACE, CACHED), 0);
    /* The child ran init and fini; this process ran init. */
    ASSERT_EQ_INT(marks(marker, "init"), 2);
    ASSERT_EQ_INT(marks(marker, "fini"), 1);
    ASSERT_TRUE(strstr(file_read(marker), str_fmt("init %ld\n",
                                                  (long)getpid())) != NULL);
    mh_host_free(h);
    ASSERT_EQ_INT(dir_count("/proc/self/fd"), fds);
    ASSERT_EQ_INT(marks(marker, "fini"), 2);
    ASSERT_EQ_INT(tree_count(tmp_path("cache/probe"), ".ok", NULL), 1);

    /* A second host: no child. */
    log_capture lc2;
    log_capture_init(&lc2);
    h = probe_host(&lc2, MH_CONFIG_PROBE, tmp_path("E"));
    ASSERT_EQ_INT(call_int(import_ok(h, "probe_good"), "value"), 42);
    ASSERT_EQ_INT(spawned(&lc2), 0);
    ASSERT_LOG(&lc2, MH_LOG_TRACE, "probe: 'probe_good' (");
    ASSERT_LOG(&lc2, MH_LOG_TRACE, CACHED);
    ASSERT_EQ_INT(marks(marker, "init"), 3);
    mh_host_free(h);
    log_capture_free(&lc2);

    /* Touched: probed again; then cached again. */
    disc_set_age(file, 30);
    log_capture lc3;
    log_capture_init(&lc3);
    h = probe_host(&lc3, MH_CONFIG_PROBE, tmp_path("E"));
    import_ok(h, "probe_good");
    ASSERT_EQ_INT(spawned(&lc3), 1);
    ASSERT_EQ_INT(log_capture_count(&lc3, MH_LOG_TRACE, CACHED), 0);
    mh_host_free(h);
    log_capture_free(&lc3);
    ASSERT_EQ_INT(marks(marker, "init"), 5);

    log_capture lc4;
    log_capture_init(&lc4);
    h = probe_host(&lc4, MH_CONFIG_PROBE, tmp_path("E"));
    import_ok(h, "probe_good");
    ASSERT_EQ_INT(spawned(&lc4), 0);
    ASSERT_LOG(&lc4, MH_LOG_TRACE, CACHED);
    mh_host_free(h);
    log_capture_free(&lc4);
    log_capture_free(&lc);
}

/* A pass record another user could have written (or did: as root, one of
 * uid 65534) is no pass: the plugin is probed again, with a warning
 * naming the file, and the record made anew. */
TEST(a_pass_record_others_could_write_is_not_trusted)
{
    probe_env();
    plugin("probe_good");
    mh_host *h = probe_host(NULL, MH_CONFIG_PROBE, tmp_path("E"));
    import_ok(h, "probe_good");
    mh_host_free(h);
    const char *names = NULL;
    ASSERT_EQ_INT(tree_count(tmp_path("cache/probe"), ".ok", &names), 1);
    char ok[4096];
    ASSERT_EQ_INT(sscanf(names, " %4095s", ok), 1);
    for (int round = 0; round < 2; round++) {
        if (round == 0) {
            ASSERT_EQ_INT(chmod(ok, 0666), 0);
        } else if (geteuid() == 0) {
            ASSERT_EQ_INT(chown(ok, 65534, 65534), 0);
        } else {
            printf("skip: probe.a_pass_record_others_could_write_is_not_"
                   "trusted: one of uid 65534 (not root)\n");
            break;
        }
        log_capture lc;
        log_capture_init(&lc);
        h = probe_host(&lc, MH_CONFIG_PROBE, tmp_path("E"));
        ASSERT_EQ_INT(call_int(import_ok(h, "probe_good"), "value"), 42);
        ASSERT_EQ_INT(spawned(&lc), 1);
        ASSERT_LOG(&lc, MH_LOG_WARN, str_fmt("not reading the cache file %s",
                                             ok));
        mh_host_free(h);
        log_capture_free(&lc);
        struct stat st;
        ASSERT_EQ_INT(stat(ok, &st), 0); /* made anew, ours and private */
        ASSERT_EQ_INT(st.st_uid, geteuid());
        ASSERT_EQ_INT(st.st_mode & 077, 0);
    }
}

/* Replaced by other bytes of the same size and mtime: a new inode (and
 * ctime), so it is probed again. */
TEST(replaced_file_is_probed_again)
{
    probe_env();
    const char *file = plugin("probe_good");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = probe_host(&lc, MH_CONFIG_PROBE, tmp_path("E"));
    import_ok(h, "probe_good");
    mh_host_free(h);
    ASSERT_EQ_INT(spawned(&lc), 1);

    const char *copy = tmp_path("copy.so");
    file_copy(file, copy);
    ASSERT_EQ_INT(rename(copy, file), 0);
    disc_set_age(file, 60);
    h = probe_host(&lc, MH_CONFIG_PROBE, tmp_path("E"));
    import_ok(h, "probe_good");
    mh_host_free(h);
    ASSERT_EQ_INT(spawned(&lc), 2);
    log_capture_free(&lc);
}

/* Just written (younger than 2 s): probed, loaded, not cached. */
TEST(fresh_file_is_not_cached)
{
    probe_env();
    fixture_copy("probe_good", "E/probe_good.so");
    log_capture lc;
    log_capture_init(&lc);
    for (int i = 0; i < 2; i++) {
        mh_host *h = probe_host(&lc, MH_CONFIG_PROBE, tmp_path("E"));
        import_ok(h, "probe_good");
        mh_host_free(h);
    }
    ASSERT_EQ_INT(spawned(&lc), 2);
    ASSERT_LOG(&lc, MH_LOG_TRACE, "changed less than 2 s ago");
    ASSERT_EQ_INT(tree_count(tmp_path("cache/probe"), ".ok", NULL), 0);
    log_capture_free(&lc);
}

/* MH_CONFIG_NO_INDEX: nothing cached, every import probes. */
TEST(no_index_caches_nothing)
{
    probe_env();
    plugin("probe_good");
    log_capture lc;
    log_capture_init(&lc);
    for (int i = 0; i < 2; i++) {
        mh_host *h = probe_host(&lc, MH_CONFIG_PROBE | MH_CONFIG_NO_INDEX,
                                tmp_path("E"));
        import_ok(h, "probe_good");
        mh_host_free(h);
    }
    ASSERT_EQ_INT(spawned(&lc), 2);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_TRACE, CACHED), 0);
    log_capture_free(&lc);
}

TEST(without_probe_mode_nothing_is_spawned)
{
    probe_env();
    const char *marker = meta_marker();
    plugin("probe_good");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = probe_host(&lc, 0, tmp_path("E"));
    ASSERT_EQ_INT(call_int(import_ok(h, "probe_good"), "value"), 42);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_TRACE, "probe:"), 0);
    ASSERT_EQ_INT(marks(marker, "init"), 1);
    mh_host_free(h);
    ASSERT_EQ_INT(marks(marker, "fini"), 1);
    log_capture_free(&lc);
}

/* An init that imports another module passes in the child: the host's
 * local entries are the child's search path. */
TEST(init_imports_work_in_the_child)
{
    probe_env();
    const char *marker = meta_marker();
    env_set("MH_FIXTURE_IMPORT", "probe_good");
    plugin("importer");
    plugin("probe_good");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = probe_host(&lc, MH_CONFIG_PROBE, tmp_path("E"));
    import_ok(h, "importer");
    ASSERT_LOG(&lc, MH_LOG_TRACE, "probe: 'importer' (");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_TRACE, "refused cleanly"), 0);
    /* importer's child, probe_good's child, and this process. */
    ASSERT_EQ_INT(spawned(&lc), 2);
    ASSERT_EQ_INT(marks(marker, "init"), 3);
    mh_host_free(h);
    log_capture_free(&lc);
}

/* ---------------------------------------------- images held in memory */

TEST(database_blobs_are_probed_by_content)
{
    probe_env();
    const char *db = db_make(tmp_path("mods.db"), "probe_segv:probe_segv.so",
                             "probe_good:probe_good.so");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = probe_host(&lc, MH_CONFIG_PROBE, db);
    mh_module *mod;
    mh_spec_info info = {.size = sizeof info};
    /* Finding opens the database, which its finder then keeps open. */
    ASSERT_STATUS(mh_find(h, "probe_segv", &info, ERR), MH_OK);
    long fds = dir_count("/proc/self/fd");
    ASSERT_STATUS(mh_import(h, "probe_segv", &mod, ERR), MH_EINIT);
    ASSERT_EQ_INT(dir_count("/proc/self/fd"), fds);
    ASSERT_CONTAINS(ERR_MSG(), "crashed in init: signal 11 "
                               "(Segmentation fault)");
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_EQ_INT(call_int(import_ok(h, "probe_good"), "value"), 42);
    ASSERT_EQ_INT(spawned(&lc), 2);
    disc_fails fails;
    disc_failures(h, &fails);
    ASSERT_NOT_NULL(disc_fail_find(&fails, "probe_segv"));
    mh_host_free(h);

    /* The same bytes in another database: cached by their SHA-256. */
    const char *db2 = db_make(tmp_path("other.db"),
                              "probe_good:probe_good.so");
    h = probe_host(&lc, MH_CONFIG_PROBE, db2);
    import_ok(h, "probe_good");
    mh_host_free(h);
    ASSERT_EQ_INT(spawned(&lc), 2);
    log_capture_free(&lc);
}

/* memfd_create refused (fault hook): the image goes to the child through
 * an unlinked file in the private cache directory; nothing is left. */
static int no_memfd(void *ud, const char *site)
{
    (void)ud;
    return strcmp(site, "memfd") == 0;
}

TEST(blob_without_memfd)
{
    probe_env();
    /* Read from memory (no copy kept: docs/formats.md). */
    const char *db = db_without_hashes(db_make(tmp_path("mods.db"),
                                               "probe_good:probe_good.so"));
    log_capture lc;
    log_capture_init(&lc);
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_NO_DEFAULT_PATH | MH_CONFIG_VERBOSE |
                MH_CONFIG_PROBE | MH_CONFIG_NO_MEMFD;
    cfg.path = db;
    cfg.path_env = "MH_TEST_PROBE_NO_PATH";
    cfg.cache_dir = tmp_path("cache");
    cfg.log = log_capture_fn;
    cfg.log_ud = &lc;
    cfg.fault = no_memfd;
    mh_host *h = host_new_cfg(&cfg);
    ASSERT_EQ_INT(call_int(import_ok(h, "probe_good"), "value"), 42);
    ASSERT_LOG(&lc, MH_LOG_TRACE, "private file instead");
    ASSERT_EQ_INT(spawned(&lc), 1);
    mh_host_free(h);
    ASSERT_EQ_INT(tree_count(tmp_path("cache/probe"), "image-", NULL), 0);
    log_capture_free(&lc);
}

/* A probing host with MH_CONFIG_NO_MEMFD and a cache directory others
 * may write (so no private file either: nothing can be loaded from
 * memory), tracing into lc through log (log_capture_fn, or one that
 * hands on to it). */
static mh_host *no_memory_host(log_capture *lc, mh_log_fn log)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_NO_DEFAULT_PATH | MH_CONFIG_VERBOSE |
                MH_CONFIG_PROBE | MH_CONFIG_NO_MEMFD;
    cfg.path = tmp_path("E");
    cfg.path_env = "MH_TEST_PROBE_NO_PATH";
    cfg.cache_dir = tmp_mkdir("open");
    if (chmod(cfg.cache_dir, 0777) != 0)
        FAIL("chmod %s: %s", cfg.cache_dir, strerror(errno));
    cfg.log = log;
    cfg.log_ud = lc;
    return host_new_cfg(&cfg);
}

/* A file module is tried in the child as the file it is, as the host
 * loads it.  The child once loaded its bytes from memory: where it could
 * not (here: MH_CONFIG_NO_MEMFD and no private cache directory), or where
 * the file was over its limit for bytes read into memory (256 MiB; a
 * file has none), it said "refused" -- and the host, taking that for the
 * module's own clean refusal, loaded it untried and crashed. */
TEST(file_module_is_tried_as_a_file)
{
    probe_env();
    log_capture lc;
    log_capture_init(&lc);
    plugin("probe_segv");
    mh_host *h = no_memory_host(&lc, log_capture_fn);
    mh_module *mod;
    ASSERT_STATUS(mh_import(h, "probe_segv", &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "crashed in init: signal 11");
    mh_host_free(h);

    const char *big = plugin("probe_segv");
    if (truncate(big, (off_t)300 << 20) != 0) /* sparse: no disk used */
        FAIL("truncate %s: %s", big, strerror(errno));
    h = probe_host(&lc, MH_CONFIG_PROBE, tmp_path("E"));
    ASSERT_STATUS(mh_import(h, "probe_segv", &mod, ERR), MH_EINIT);
    ASSERT_CONTAINS(ERR_MSG(), "crashed in init: signal 11");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_TRACE, "refused cleanly"), 0);
    mh_host_free(h);
    log_capture_free(&lc);
}

/* Hands on to log_capture_fn; when the probe starts its child, replaces
 * E/probe_segv.so (the file the host holds open) by another file, so the
 * child has only the deleted file's bytes, which it cannot load here. */
static void replace_at_spawn(void *ud, mh_log_level level, const char *msg)
{
    log_capture_fn(ud, level, msg);
    if (strstr(msg, SPAWNED) &&
        rename(tmp_path("E/other.so"), tmp_path("E/probe_segv.so")) != 0)
        FAIL("rename: %s", strerror(errno));
}

/* A child that could not load the module, for a reason that is none of
 * the module's, has not tried it: the import fails (MH_EIO, "cannot
 * probe"), and the module is not loaded here untried. */
TEST(module_the_child_cannot_load_is_not_loaded_untried)
{
    probe_env();
    log_capture lc;
    log_capture_init(&lc);
    plugin("probe_segv");
    fixture_copy("probe_good", "E/other.so");
    mh_host *h = no_memory_host(&lc, replace_at_spawn);
    mh_module *mod = (mh_module *)1;
    ASSERT_STATUS(mh_import(h, "probe_segv", &mod, ERR), MH_EIO);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), "cannot probe module 'probe_segv'");
    ASSERT_CONTAINS(ERR_MSG(), "for a reason that is not the module's");
    ASSERT_CONTAINS(ERR_MSG(), "MH_CONFIG_NO_MEMFD");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_TRACE, "refused cleanly"), 0);
    disc_fails fails;
    disc_failures(h, &fails);
    ASSERT_NULL(disc_fail_find(&fails, "probe_segv")); /* not its fault */
    mh_host_free(h);
    log_capture_free(&lc);
}

/* What the module's init starts with exec inherits none of the probe's
 * descriptors: the module's own (4) was once left open across exec. */
TEST(child_descriptors_are_closed_on_exec)
{
    probe_env();
    log_capture lc;
    log_capture_init(&lc);
    plugin("probe_fds");
    mh_host *h = probe_host(&lc, MH_CONFIG_PROBE, tmp_path("E"));
    ASSERT_EQ_INT(call_int(import_ok(h, "probe_fds"), "value"), 4);
    ASSERT_EQ_INT(spawned(&lc), 1);
    mh_host_free(h);
    log_capture_free(&lc);
}

/* ------------------------------------------------ the probe itself */

/* No modhost command: the import fails (MH_EIO), and nothing is recorded
 * against the module, which did nothing wrong. */
TEST(missing_command_is_not_the_modules_fault)
{
    probe_env();
    plugin("probe_good");
    env_set("MODHOST_PROBE_BIN", tmp_path("no/such/modhost"));
    mh_host *h = probe_host(NULL, MH_CONFIG_PROBE, tmp_path("E"));
    mh_module *mod;
    ASSERT_STATUS(mh_import(h, "probe_good", &mod, ERR), MH_EIO);
    ASSERT_CONTAINS(ERR_MSG(), "cannot run the probe command");
    ASSERT_CONTAINS(ERR_MSG(), "no/such/modhost");
    disc_fails fails;
    disc_failures(h, &fails);
    ASSERT_EQ_INT(fails.n, 0);

    env_set("MODHOST_PROBE_BIN", "relative/modhost");
    ASSERT_STATUS(mh_import(h, "probe_good", &mod, ERR), MH_EIO);
    ASSERT_CONTAINS(ERR_MSG(), "absolute path");

    /* The real one, named: it works. */
    env_set("MODHOST_PROBE_BIN", getenv("MODHOST_BIN"));
    import_ok(h, "probe_good");
    mh_host_free(h);
}

/* A command that is not modhost (exits at once): MH_EIO as well. */
TEST(broken_command_is_not_the_modules_fault)
{
    probe_env();
    plugin("probe_good");
    env_set("MODHOST_PROBE_BIN", "/bin/false");
    mh_host *h = probe_host(NULL, MH_CONFIG_PROBE, tmp_path("E"));
    mh_module *mod;
    ASSERT_STATUS(mh_import(h, "probe_good", &mod, ERR), MH_EIO);
    ASSERT_CONTAINS(ERR_MSG(), "failed before loading it: exit status 1");
    disc_fails fails;
    disc_failures(h, &fails);
    ASSERT_EQ_INT(fails.n, 0);
    mh_host_free(h);
}

TEST(bad_timeout_variable_warns_and_uses_the_default)
{
    probe_env();
    plugin("probe_good");
    env_set("MODHOST_PROBE_TIMEOUT_MS", "soon");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = probe_host(&lc, MH_CONFIG_PROBE, tmp_path("E"));
    import_ok(h, "probe_good");
    ASSERT_LOG(&lc, MH_LOG_WARN, "MODHOST_PROBE_TIMEOUT_MS=soon");
    ASSERT_LOG(&lc, MH_LOG_TRACE, "limit 10 s");
    mh_host_free(h);
    log_capture_free(&lc);
}

/* ---------------------------------------------------------- threads */

typedef struct importer_arg {
    mh_host *h;
    const char *name;
    mh_status st;
} importer_arg;

static void *import_thread(void *p)
{
    importer_arg *a = p;
    mh_module *mod;
    mh_error *e = NULL;
    a->st = mh_import(a->h, a->name, &mod, &e);
    mh_error_free(e);
    return NULL;
}

/* Probes from several threads at once, good and bad mixed: each gets its
 * own answer (no pipe handed to the wrong child). */
TEST(threads_probe_at_once)
{
    probe_env();
    static const char *const good[] = {"g1", "g2", "g3", "g4"};
    static const char *const bad[] = {"b1", "b2"};
    for (size_t i = 0; i < 4; i++)
        disc_set_age(fixture_copy("probe_good", "E/%s.so", good[i]), 60);
    disc_set_age(fixture_copy("probe_segv", "E/b1.so"), 60);
    disc_set_age(fixture_copy("probe_abort", "E/b2.so"), 60);
    mh_host *h = probe_host(NULL, MH_CONFIG_PROBE, tmp_path("E"));
    pthread_t t[6];
    importer_arg a[6];
    for (size_t i = 0; i < 6; i++) {
        a[i] = (importer_arg){h, i < 4 ? good[i] : bad[i - 4], MH_OK};
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, import_thread, &a[i]), 0);
    }
    for (size_t i = 0; i < 6; i++)
        pthread_join(t[i], NULL);
    for (size_t i = 0; i < 6; i++)
        if (a[i].st != (i < 4 ? MH_OK : MH_EINIT))
            FAIL("%s: %s", a[i].name, mh_status_name(a[i].st));
    mh_host_free(h);
}

/* -------------------------------------------------- allocation faults */

/* The Nth allocation fails, N = 1, 2, ... until none does: each import
 * ends in MH_OK or MH_ENOMEM, the next one works, and nothing leaks. */
TEST(allocation_faults)
{
    probe_env();
    plugin("probe_good");
    size_t runs = 0;
    for (long n = 1;; n++) {
        alloc_tracker at;
        alloc_tracker_init(&at);
        at.fail_at = n;
        at.fail_once = 1;
        mh_config cfg;
        mh_config_init(&cfg);
        cfg.flags = MH_CONFIG_NO_DEFAULT_PATH | MH_CONFIG_PROBE;
        cfg.path = tmp_path("E");
        cfg.path_env = "MH_TEST_PROBE_NO_PATH";
        cfg.cache_dir = tmp_path("cache%ld", n); /* a probe every time */
        cfg.alloc = alloc_tracker_fn;
        cfg.alloc_ud = &at;
        mh_host *h = NULL;
        mh_status st = mh_host_new(&cfg, &h, ERR);
        if (st == MH_OK) {
            mh_module *mod;
            st = mh_import(h, "probe_good", &mod, ERR);
            if (st != MH_OK && st != MH_ENOMEM)
                FAIL("fault at %ld: %s: %s", n, mh_status_name(st), ERR_MSG());
            if (st == MH_OK)
                ASSERT_EQ_INT(call_int(mod, "value"), 42);
            else
                import_ok(h, "probe_good");
            mh_host_free(h);
        } else {
            ASSERT_STATUS(st, MH_ENOMEM);
        }
        test_err_slot(); /* free the last error before counting */
        if (at.outstanding != 0)
            FAIL("fault at %ld: %zu bytes in %zu blocks leaked", n,
                 at.outstanding, at.blocks);
        size_t injected = at.injected;
        alloc_tracker_destroy(&at);
        runs++;
        if (!injected)
            break;
        if (n > 2000)
            FAIL("still failing after 2000 allocations");
    }
    ASSERT_TRUE(runs > 10);
}

/* A host told to keep no copies of database modules: neither does its
 * probe's child, whose init imports one from the database (the child
 * shares the cache directory, and the parent would map what it kept). */
TEST(probe_child_keeps_no_copies)
{
    probe_env();
    const char *db = db_make(tmp_path("mods.db"), "importer:imp.so",
                             "counter:m.so");
    env_set("MH_FIXTURE_IMPORT", "m");
    log_capture lc;
    log_capture_init(&lc);
    mh_host *h = probe_host(&lc, MH_CONFIG_PROBE | MH_CONFIG_NO_COPY_WRITE,
                            db);
    import_ok(h, "imp");
    ASSERT_EQ_INT(spawned(&lc), 2); /* imp, then m (imp's init) */
    mh_host_free(h);
    env_unset("MH_FIXTURE_IMPORT");
    log_capture_free(&lc);
    ASSERT_EQ_INT(tree_count(tmp_path("cache/blobs"), "", NULL), 0);
}
