/*
 * test_path.c -- how the search path is built: config entries first, then
 * the path variable (MODHOST_PATH or cfg->path_env), whose empty item ";;"
 * stands for the default entries; isolation; rejected entries reported
 * through the log hook; and mh_host_add_path.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/support.h"
#include "test.h"

struct entry {
    const char *text;
    mh_path_source source;
};

/* The host's path as "text(source)" items, for failure messages. */
static const char *describe(mh_host *host)
{
    const char *s = "";
    size_t n = mh_host_path_count(host);
    for (size_t i = 0; i < n; i++) {
        const char *text = NULL, *finder = NULL;
        mh_path_source src = MH_SOURCE_API;
        mh_host_path_entry(host, i, &text, &src, &finder);
        s = str_fmt("%s%s%s(%s)", s, i ? " " : "", text ? text : "(null)",
                    mh_path_source_name(src));
    }
    return s;
}

static struct entry entry_at(mh_host *host, size_t i)
{
    struct entry e = {NULL, MH_SOURCE_API};
    const char *finder = NULL;
    if (mh_host_path_entry(host, i, &e.text, &e.source, &finder) != MH_OK)
        FAIL("mh_host_path_entry(%zu) failed; path: %s", i, describe(host));
    if (e.text == NULL)
        FAIL("entry %zu has NULL text", i);
    return e;
}

#define ASSERT_ENTRY(host, i, want_text, want_source)                      \
    do {                                                                   \
        struct entry e_ = entry_at((host), (i));                           \
        if (strcmp(e_.text, (want_text)) != 0 || e_.source != (want_source)) \
            FAIL("entry %zu: want %s(%s); path: %s", (size_t)(i),          \
                 (want_text), mh_path_source_name(want_source),            \
                 describe(host));                                          \
    } while (0)

static size_t count_source(mh_host *host, mh_path_source src)
{
    size_t n = 0, count = mh_host_path_count(host);
    for (size_t i = 0; i < count; i++)
        if (entry_at(host, i).source == src)
            n++;
    return n;
}

static mh_host *new_host(unsigned flags, const char *path, const char *path_env,
                         log_capture *lc)
{
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = flags;
    cfg.path = path;
    cfg.path_env = path_env;
    if (lc) {
        cfg.log = log_capture_fn;
        cfg.log_ud = lc;
    }
    return host_new_cfg(&cfg);
}

TEST(config_entries_in_order)
{
    const char *a = tmp_mkdir("A"), *b = tmp_mkdir("B"), *c = tmp_mkdir("C");
    mh_host *host = host_new_isolated(a, b, c);

    ASSERT_EQ_INT(mh_host_path_count(host), 3);
    ASSERT_ENTRY(host, 0, a, MH_SOURCE_CONFIG);
    ASSERT_ENTRY(host, 1, b, MH_SOURCE_CONFIG);
    ASSERT_ENTRY(host, 2, c, MH_SOURCE_CONFIG);
    mh_host_free(host);
}

TEST(entry_longer_than_a_path_is_refused_and_the_rest_kept)
{
    /* 4,096 bytes and more is no path: mh_host_add_path refuses it with
     * MH_EPATH; in the configuration it is left out with a warning, and
     * the entries around it stay. */
    const char *a = tmp_mkdir("A"), *b = tmp_mkdir("B");
    char *big = malloc(4200);
    log_capture lc;

    if (!big)
        FAIL("out of memory");
    memset(big, 'x', 4199);
    big[0] = '/';
    big[4199] = '\0';
    log_capture_init(&lc);
    mh_host *host = new_host(MH_CONFIG_NO_DEFAULT_PATH | MH_CONFIG_ISOLATED,
                             str_fmt("%s;%s;%s", a, big, b), NULL, &lc);
    ASSERT_EQ_INT(mh_host_path_count(host), 2);
    ASSERT_ENTRY(host, 0, a, MH_SOURCE_CONFIG);
    ASSERT_ENTRY(host, 1, b, MH_SOURCE_CONFIG);
    /* Named by its start, cut. */
    ASSERT_LOG(&lc, MH_LOG_WARN, "ignoring search path entry '/xxxxxxxxxx");
    ASSERT_LOG(&lc, MH_LOG_WARN, "...' from the configuration: longer than "
                                 "4095 bytes");
    ASSERT_STATUS(mh_host_add_path(host, big, 0, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "search path entry longer than 4095 bytes");
    ASSERT_EQ_INT(mh_host_path_count(host), 2);
    big[4095] = '\0'; /* 4,095 bytes: a path, kept */
    ASSERT_STATUS(mh_host_add_path(host, big, 0, ERR), MH_OK);
    ASSERT_EQ_INT(mh_host_path_count(host), 3);
    mh_host_free(host);
    log_capture_free(&lc);

    /* A password in a long entry is masked, though it runs past where
     * the entry is cut for the message (its '@' with it). */
    char *url = malloc(4300);
    if (!url)
        FAIL("out of memory");
    memcpy(url, "https://u:", 10);
    memset(url + 10, 'S', 4200);
    memcpy(url + 4210, "@h/", 4);
    log_capture_init(&lc);
    host = new_host(MH_CONFIG_NO_DEFAULT_PATH | MH_CONFIG_ISOLATED,
                    str_fmt("%s;%s", a, url), NULL, &lc);
    free(url);
    ASSERT_LOG(&lc, MH_LOG_WARN, "ignoring search path entry 'https://u:***@h");
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "SSSS"), 0);
    mh_host_free(host);
    log_capture_free(&lc);
    free(big);
}

TEST(env_entries_follow_config)
{
    const char *a = tmp_mkdir("A"), *x = tmp_mkdir("X"), *y = tmp_mkdir("Y");
    mh_host *host;

    env_set("MODHOST_PATH", str_fmt("%s;%s", x, y));
    host = new_host(MH_CONFIG_NO_DEFAULT_PATH, a, NULL, NULL);
    ASSERT_EQ_INT(mh_host_path_count(host), 3);
    ASSERT_ENTRY(host, 0, a, MH_SOURCE_CONFIG);
    ASSERT_ENTRY(host, 1, x, MH_SOURCE_ENV);
    ASSERT_ENTRY(host, 2, y, MH_SOURCE_ENV);
    mh_host_free(host);
}

TEST(custom_path_variable)
{
    const char *x = tmp_mkdir("X"), *y = tmp_mkdir("Y");
    mh_host *host;

    env_set("MYAPP_PLUGIN_PATH", x);
    env_set("MODHOST_PATH", y);
    host = new_host(MH_CONFIG_NO_DEFAULT_PATH, NULL, "MYAPP_PLUGIN_PATH", NULL);
    ASSERT_EQ_INT(mh_host_path_count(host), 1);
    ASSERT_ENTRY(host, 0, x, MH_SOURCE_ENV);
    ASSERT_EQ_INT(path_index(host, y), -1);
    mh_host_free(host);
}

TEST(double_semicolon_inserts_defaults)
{
    const char *x = tmp_mkdir("X"), *y = tmp_mkdir("Y");
    mh_host *host;
    size_t n, ndef;

    env_set("MODHOST_PATH", str_fmt("%s;;%s", x, y));
    host = new_host(0, NULL, NULL, NULL);
    n = mh_host_path_count(host);
    ndef = count_source(host, MH_SOURCE_DEFAULT);
    if (ndef == 0 || n != ndef + 2)
        FAIL("want X, the defaults, Y; path: %s", describe(host));
    ASSERT_ENTRY(host, 0, x, MH_SOURCE_ENV);
    for (size_t i = 1; i + 1 < n; i++)
        if (entry_at(host, i).source != MH_SOURCE_DEFAULT)
            FAIL("entry %zu is not a default; path: %s", i, describe(host));
    ASSERT_ENTRY(host, n - 1, y, MH_SOURCE_ENV);
    mh_host_free(host);
}

TEST(double_semicolon_in_custom_variable)
{
    const char *x = tmp_mkdir("X");
    mh_host *host;
    size_t n;

    env_set("MYAPP_PLUGIN_PATH", str_fmt(";;%s", x));
    host = new_host(0, NULL, "MYAPP_PLUGIN_PATH", NULL);
    n = mh_host_path_count(host);
    if (n < 2 || entry_at(host, 0).source != MH_SOURCE_DEFAULT)
        FAIL("want the defaults, then X; path: %s", describe(host));
    ASSERT_ENTRY(host, n - 1, x, MH_SOURCE_ENV);
    mh_host_free(host);
}

TEST(variable_without_double_semicolon_replaces_defaults)
{
    const char *x = tmp_mkdir("X"), *y = tmp_mkdir("Y");
    mh_host *host;

    env_set("MODHOST_PATH", str_fmt("%s;%s", x, y));
    host = new_host(0, NULL, NULL, NULL);
    if (count_source(host, MH_SOURCE_DEFAULT) != 0)
        FAIL("default entries present; path: %s", describe(host));
    ASSERT_EQ_INT(mh_host_path_count(host), 2);
    mh_host_free(host);
}

TEST(defaults_when_variable_unset)
{
    mh_host *host;
    size_t n;

    env_unset("MODHOST_PATH");
    host = new_host(0, NULL, NULL, NULL);
    n = mh_host_path_count(host);
    if (n == 0 || count_source(host, MH_SOURCE_DEFAULT) != n)
        FAIL("want only default entries; path: %s", describe(host));
    for (size_t i = 0; i < n; i++) {
        const char *text = entry_at(host, i).text;
        size_t len = strlen(text);
        ASSERT_TRUE(text[0] == '/');
        if (len < 15 || strcmp(text + len - 15, "modhost/modules") != 0)
            FAIL("default entry '%s' does not end with modhost/modules", text);
    }
    mh_host_free(host);
}

TEST(no_default_path_flag)
{
    mh_host *host;

    env_unset("MODHOST_PATH");
    host = new_host(MH_CONFIG_NO_DEFAULT_PATH, NULL, NULL, NULL);
    ASSERT_EQ_INT(mh_host_path_count(host), 0);
    mh_host_free(host);
}

TEST(isolated_ignores_variable)
{
    const char *x = tmp_mkdir("X"), *a = tmp_mkdir("A");
    mh_host *host;

    env_set("MODHOST_PATH", x);
    env_set("MYAPP_PLUGIN_PATH", x);
    host = new_host(MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH, a, NULL, NULL);
    ASSERT_EQ_INT(mh_host_path_count(host), 1);
    ASSERT_ENTRY(host, 0, a, MH_SOURCE_CONFIG);
    mh_host_free(host);
    host = new_host(MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH, a,
                    "MYAPP_PLUGIN_PATH", NULL);
    ASSERT_EQ_INT(mh_host_path_count(host), 1);
    mh_host_free(host);
}

TEST(isolated_keeps_defaults)
{
    const char *x = tmp_mkdir("X");
    mh_host *host;

    env_set("MODHOST_PATH", x);
    host = new_host(MH_CONFIG_ISOLATED, NULL, NULL, NULL);
    if (mh_host_path_count(host) == 0 ||
        count_source(host, MH_SOURCE_DEFAULT) != mh_host_path_count(host))
        FAIL("want only default entries; path: %s", describe(host));
    mh_host_free(host);
}

TEST(relative_config_entries_rejected_with_warning)
{
    const char *a = tmp_mkdir("A"), *b = tmp_mkdir("B");
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = new_host(MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH,
                    str_fmt("%s;rel/dir;.;%s", a, b), NULL, &lc);
    ASSERT_EQ_INT(mh_host_path_count(host), 2);
    ASSERT_ENTRY(host, 0, a, MH_SOURCE_CONFIG);
    ASSERT_ENTRY(host, 1, b, MH_SOURCE_CONFIG);
    if (log_capture_count(&lc, MH_LOG_WARN, "rel/dir") == 0)
        FAIL("no warning names 'rel/dir'; log:%s", log_capture_dump(&lc));
    if (log_capture_count(&lc, MH_LOG_WARN, "") < 2)
        FAIL("want a warning per rejected entry; log:%s", log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(relative_env_entries_rejected_with_warning)
{
    const char *a = tmp_mkdir("A");
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    env_set("MODHOST_PATH", str_fmt("plugins/here;%s", a));
    host = new_host(MH_CONFIG_NO_DEFAULT_PATH, NULL, NULL, &lc);
    ASSERT_EQ_INT(mh_host_path_count(host), 1);
    ASSERT_ENTRY(host, 0, a, MH_SOURCE_ENV);
    if (log_capture_count(&lc, MH_LOG_WARN, "plugins/here") == 0)
        FAIL("no warning names 'plugins/here'; log:%s", log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(empty_config_entries_never_enter_path)
{
    const char *a = tmp_mkdir("A"), *b = tmp_mkdir("B");
    mh_host *host = new_host(MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH,
                             str_fmt(";%s;;%s;", a, b), NULL, NULL);

    ASSERT_EQ_INT(mh_host_path_count(host), 2);
    ASSERT_ENTRY(host, 0, a, MH_SOURCE_CONFIG);
    ASSERT_ENTRY(host, 1, b, MH_SOURCE_CONFIG);
    mh_host_free(host);
}

TEST(add_path_refuses_relative_and_empty)
{
    mh_host *host = host_new_isolated(tmp_mkdir("A"));

    ASSERT_STATUS(mh_host_add_path(host, "rel/dir", 0, ERR), MH_EPATH);
    ASSERT_CONTAINS(ERR_MSG(), "rel/dir");
    ASSERT_STATUS(mh_host_add_path(host, "", 0, ERR), MH_EPATH);
    ASSERT_STATUS(mh_host_add_path(host, ".", 0, ERR), MH_EPATH);
    ASSERT_STATUS(mh_host_add_path(host, "..", (size_t)-1, ERR), MH_EPATH);
    ASSERT_EQ_INT(mh_host_path_count(host), 1);
    mh_host_free(host);
}

TEST(entries_with_control_characters_refused_and_shown_escaped)
{
    /* A newline in an entry reached every message naming it raw: a log
     * line could be forged from MODHOST_PATH. */
    const char *a = tmp_mkdir("A");
    log_capture lc;
    log_capture_init(&lc);
    env_set("MODHOST_PATH",
            str_fmt("%s/x\nmodule 'evil' loaded;%s;"
                    "http://u:secret@h/\tx", a, a));
    mh_host *host = new_host(MH_CONFIG_NO_DEFAULT_PATH, NULL, NULL, &lc);
    ASSERT_EQ_INT(mh_host_path_count(host), 1);
    ASSERT_ENTRY(host, 0, a, MH_SOURCE_ENV);
    const char *want = str_fmt("ignoring search path entry '%s/x\\x0amodule "
                               "'evil' loaded' from MODHOST_PATH: it holds "
                               "a control character", a);
    if (log_capture_count(&lc, MH_LOG_WARN, want) != 1 ||
        log_capture_count(&lc, MH_LOG_WARN, "http://u:***@h/\\x09x") != 1 ||
        log_capture_count(&lc, -1, "\n") != 0 ||
        log_capture_count(&lc, -1, "secret") != 0)
        FAIL("want two warnings, escaped and masked; log:%s",
             log_capture_dump(&lc));
    ASSERT_STATUS(mh_host_add_path(host, "/tmp/a\rb", 0, ERR), MH_EPATH);
    ASSERT_EQ_STR(ERR_MSG(), "search path entry '/tmp/a\\x0db' refused: it "
                             "holds a control character (shown as \\xNN)");
    ASSERT_STATUS(mh_host_add_path(host, "sqlite:/db\x7f", 0, ERR),
                  MH_EPATH);
    /* A C1 control in UTF-8 (U+009B, CSI: "\xc2\x9b" "31m" turns a
     * terminal red); the letters whose UTF-8 holds such bytes are kept
     * ("\xc4\x9f" is U+011F, g with breve). */
    ASSERT_STATUS(mh_host_add_path(host, "/tmp/a\xc2\x9b" "31mb", 0, ERR),
                  MH_EPATH);
    ASSERT_EQ_STR(ERR_MSG(), "search path entry '/tmp/a\\xc2\\x9b31mb' "
                             "refused: it holds a control character (shown "
                             "as \\xNN)");
    ASSERT_STATUS(mh_host_add_path(host, "/tmp/a\xc2", 0, ERR), MH_OK);
    ASSERT_EQ_INT(mh_host_path_count(host), 2);
    ASSERT_STATUS(mh_host_add_path(host, "/tmp/do\xc4\x9f" "an", 0, ERR),
                  MH_OK);
    ASSERT_EQ_INT(mh_host_path_count(host), 3);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(add_path_positions)
{
    const char *a = tmp_mkdir("A"), *b = tmp_mkdir("B"), *c = tmp_mkdir("C");
    const char *d = tmp_mkdir("D"), *e = tmp_mkdir("E");
    mh_host *host = host_new_isolated(a);

    ASSERT_STATUS(mh_host_add_path(host, b, 0, ERR), MH_OK);
    ASSERT_STATUS(mh_host_add_path(host, c, (size_t)-1, ERR), MH_OK);
    ASSERT_STATUS(mh_host_add_path(host, d, 100, ERR), MH_OK);
    ASSERT_STATUS(mh_host_add_path(host, e, 1, ERR), MH_OK);
    ASSERT_EQ_INT(mh_host_path_count(host), 5);
    ASSERT_ENTRY(host, 0, b, MH_SOURCE_API);
    ASSERT_ENTRY(host, 1, e, MH_SOURCE_API);
    ASSERT_ENTRY(host, 2, a, MH_SOURCE_CONFIG);
    ASSERT_ENTRY(host, 3, c, MH_SOURCE_API);
    ASSERT_ENTRY(host, 4, d, MH_SOURCE_API);
    mh_host_free(host);
}

TEST(adding_an_entry_already_there_moves_it)
{
    /* It was dropped, MH_OK and all: an application moving an entry to
     * the front to take precedence got nothing, silently. */
    const char *a = tmp_mkdir("A"), *b = tmp_mkdir("B"), *c = tmp_mkdir("C");
    fixture_copy("counter", "A/m.so");
    fixture_copy("answer7", "C/m.so");
    mh_host *host = host_new_isolated(a, b, c);
    ASSERT_STATUS(mh_host_add_path(host, str_fmt("%s/", c), 0, ERR), MH_OK);
    ASSERT_EQ_INT(mh_host_path_count(host), 3);
    ASSERT_ENTRY(host, 0, c, MH_SOURCE_CONFIG); /* where it came from */
    ASSERT_ENTRY(host, 1, a, MH_SOURCE_CONFIG);
    ASSERT_ENTRY(host, 2, b, MH_SOURCE_CONFIG);
    ASSERT_EQ_INT(call_int(import_ok(host, "m"), "value"), 7);
    ASSERT_STATUS(mh_host_add_path(host, c, (size_t)-1, ERR), MH_OK);
    ASSERT_ENTRY(host, 0, a, MH_SOURCE_CONFIG);
    ASSERT_ENTRY(host, 1, b, MH_SOURCE_CONFIG);
    ASSERT_ENTRY(host, 2, c, MH_SOURCE_CONFIG);
    ASSERT_STATUS(mh_host_add_path(host, c, 1, ERR), MH_OK);
    ASSERT_ENTRY(host, 1, c, MH_SOURCE_CONFIG);
    ASSERT_ENTRY(host, 2, b, MH_SOURCE_CONFIG);
    ASSERT_EQ_INT(mh_host_path_count(host), 3);
    mh_host_free(host);
}

TEST(added_entry_is_searched)
{
    const char *late = tmp_mkdir("late");
    mh_host *host = host_new_isolated(tmp_mkdir("A"));
    mh_module *mod;
    const char *finder = NULL, *text = NULL;
    mh_path_source src;

    fixture_copy("counter", "late/extra.so");
    ASSERT_STATUS(mh_import(host, "extra", &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_host_add_path(host, late, (size_t)-1, ERR), MH_OK);
    mod = import_ok(host, "extra");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_STATUS(mh_host_path_entry(host, 1, &text, &src, &finder), MH_OK);
    ASSERT_EQ_STR(text, late);
    ASSERT_EQ_INT(src, MH_SOURCE_API);
    ASSERT_EQ_STR(finder, "fs");
    mh_host_free(host);
}

TEST(not_found_lists_every_entry_of_a_long_path)
{
    /* 700 entries: the "not found" message names each with its reason
     * (about 41 KB, under the message's 64 KB limit), the last one too */
    mh_host *host = host_new_isolated(tmp_mkdir("A"));
    const char *last = NULL;
    for (int i = 0; i < 700; i++) {
        last = str_fmt("/nonexistent-modhost-test/e%03d", i); /* short */
        ASSERT_STATUS(mh_host_add_path(host, last, (size_t)-1, ERR), MH_OK);
    }
    ASSERT_STATUS(mh_import(host, "nowhere", &(mh_module *){0}, ERR),
                  MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "searched 701 path entries");
    ASSERT_NOT_CONTAINS(ERR_MSG(), "too many to list");
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("%s: directory does not exist",
                                       last));
    mh_host_free(host);
}

TEST(uri_entry_accepted)
{
    mh_host *host = host_new_isolated(tmp_mkdir("A"));
    mh_module *mod;

    ASSERT_STATUS(mh_host_add_path(host, "nosuchscheme:/x/y", (size_t)-1, ERR), MH_OK);
    ASSERT_EQ_INT(path_index(host, "nosuchscheme:/x/y"), 1);
    /* No finder claims it; the search goes on and reports it. */
    ASSERT_STATUS(mh_import(host, "absent", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "nosuchscheme:/x/y");
    mh_host_free(host);
}

TEST(path_entry_out_of_range)
{
    mh_host *host = host_new_isolated(tmp_mkdir("A"));
    const char *text = "x", *finder = "x";
    mh_path_source src;

    ASSERT_STATUS(mh_host_path_entry(host, 1, &text, &src, &finder), MH_EINVAL);
    ASSERT_STATUS(mh_host_path_entry(host, SIZE_MAX, &text, &src, &finder), MH_EINVAL);
    mh_host_free(host);
}

TEST(path_source_names)
{
    ASSERT_EQ_STR(mh_path_source_name(MH_SOURCE_CONFIG), "config");
    ASSERT_EQ_STR(mh_path_source_name(MH_SOURCE_ENV), "environment");
    ASSERT_EQ_STR(mh_path_source_name(MH_SOURCE_DEFAULT), "default");
    ASSERT_EQ_STR(mh_path_source_name(MH_SOURCE_API), "api");
}

TEST(empty_config_path_warns)
{
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    host = new_host(MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH, "", NULL,
                    &lc);
    ASSERT_EQ_INT(mh_host_path_count(host), 0);
    if (log_capture_count(&lc, MH_LOG_WARN, "empty") != 1)
        FAIL("want one warning about the empty entry; log:%s",
             log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(lone_semicolon_variable_warns_twice_and_searches_nothing)
{
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    env_set("MODHOST_PATH", ";");
    host = new_host(0, NULL, NULL, &lc);
    /* Two empty entries, and no ";;": the defaults are left out too. */
    ASSERT_EQ_INT(mh_host_path_count(host), 0);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "empty"), 2);
    if (log_capture_count(&lc, MH_LOG_WARN, "no usable entry") != 1)
        FAIL("want a warning that MODHOST_PATH gives nothing; log:%s",
             log_capture_dump(&lc));
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(only_first_double_semicolon_expands)
{
    const char *a = tmp_mkdir("A"), *b = tmp_mkdir("B"), *c = tmp_mkdir("C");
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    env_set("MODHOST_PATH", str_fmt("%s;;%s;;%s", a, b, c));
    host = new_host(0, NULL, NULL, &lc);
    size_t n = mh_host_path_count(host), defaults = count_source(host,
                                                        MH_SOURCE_DEFAULT);
    ASSERT_TRUE(defaults >= 1);
    ASSERT_EQ_INT(n, 3 + defaults);
    ASSERT_ENTRY(host, 0, a, MH_SOURCE_ENV);
    ASSERT_EQ_INT(entry_at(host, 1).source, MH_SOURCE_DEFAULT);
    ASSERT_ENTRY(host, 1 + defaults, b, MH_SOURCE_ENV);
    ASSERT_ENTRY(host, 2 + defaults, c, MH_SOURCE_ENV);
    /* The second ";;" is an empty entry, refused with a warning. */
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "empty"), 1);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(triple_semicolon_is_defaults_then_empty_entry)
{
    const char *a = tmp_mkdir("A");
    log_capture lc;
    mh_host *host;

    log_capture_init(&lc);
    env_set("MODHOST_PATH", str_fmt(";;;%s", a));
    host = new_host(0, NULL, NULL, &lc);
    size_t defaults = count_source(host, MH_SOURCE_DEFAULT);
    ASSERT_TRUE(defaults >= 1);
    ASSERT_EQ_INT(entry_at(host, 0).source, MH_SOURCE_DEFAULT);
    ASSERT_ENTRY(host, defaults, a, MH_SOURCE_ENV);
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN, "empty"), 1);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(spellings_of_one_directory_are_one_entry)
{
    const char *a = tmp_mkdir("A");
    mh_host *host = new_host(MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH,
                             str_fmt("%s/;%s;%s//", a, a, a), NULL, NULL);

    ASSERT_EQ_INT(mh_host_path_count(host), 1);
    ASSERT_ENTRY(host, 0, a, MH_SOURCE_CONFIG);
    /* "//" inside is collapsed too. */
    ASSERT_STATUS(mh_host_add_path(host, str_fmt("/%s", a), 0, ERR), MH_OK);
    ASSERT_EQ_INT(mh_host_path_count(host), 1);
    mh_host_free(host);
}

TEST(out_of_range_entry_clears_outputs)
{
    mh_host *host = new_host(MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH,
                             NULL, NULL, NULL);
    const char *text = "x", *finder = "y";
    mh_path_source src = MH_SOURCE_API;

    ASSERT_EQ_INT(mh_host_path_entry(host, 5, &text, &src, &finder),
                  MH_EINVAL);
    ASSERT_NULL(text);
    ASSERT_NULL(finder);
    ASSERT_EQ_INT(src, MH_SOURCE_CONFIG);
    mh_host_free(host);
}

/* The fault hook: "path-copy" fails (and is counted), nothing else. */
static int no_path_copy(void *ud, const char *site)
{
    if (strcmp(site, "path-copy") != 0)
        return 0;
    (*(int *)ud)++;
    return 1;
}

TEST(long_path_walk_survives_allocation_failure)
{
    /* A walk copies a path of more than 64 entries into memory of its
     * own, so that no finder code runs under the path's lock.  With no
     * memory for the copy it walks the path under the lock instead, as
     * before: the import works all the same. */
    const char *dir = tmp_mkdir("M");
    fixture_copy("counter", "M/deep.so");
    char path[8192] = "";
    for (int i = 0; i < 80; i++)
        snprintf(path + strlen(path), sizeof path - strlen(path),
                 "/nonexistent-modhost-test/e%02d;", i);
    snprintf(path + strlen(path), sizeof path - strlen(path), "%s", dir);
    int refused = 0;
    mh_config cfg;
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = path;
    cfg.fault = no_path_copy;
    cfg.fault_ud = &refused;
    mh_host *h = host_new_cfg(&cfg);
    ASSERT_EQ_INT(mh_host_path_count(h), 81);
    ASSERT_EQ_INT(call_int(import_ok(h, "deep"), "value"), 42);
    ASSERT_TRUE(refused >= 1);
    ASSERT_STATUS(import_fails(h, "nowhere"), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "searched 81 path entries");
    mh_host_free(h);
}
