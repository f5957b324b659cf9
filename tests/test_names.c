/*
 * test_names.c -- the module name grammar: dot-separated identifiers
 * [A-Za-z_][A-Za-z0-9_]*, 1 to 255 bytes.  A bad name must fail with
 * MH_EBADNAME from mh_name_check, mh_import and mh_find alike, before any
 * file is touched: the path holds a nonexistent entry (a lookup would say
 * "not found") and a directory of bait plugins at the paths a careless
 * name-to-path mapping would reach (a load would run their init, which
 * leaves a marker file).
 */
#include <string.h>

#include "support/support.h"
#include "test.h"

static const char *const bad_names[] = {
    "", ".", "..", "...", "a..b", ".a", "a.", "..a", "a..", "a.b.",
    "a/b", "../x", "/ab", "ab/", "a\\b", "a b", " a", "a ", "a\tb", "a\nb",
    "1abc", "a.1b", "9", "é", "caf\xc3\xa9", "a-b", "-", "a.b-c", "a:b",
    "a;b", "a*", "a.b.c.", "A9_.",
};
#define NBAD (sizeof bad_names / sizeof bad_names[0])

static const char *const good_names[] = {
    "a", "_x", "_", "__init__", "a.b.c", "A9_.b", "a1.b2.c3", "Z", "x_1.y_2",
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_",
};
#define NGOOD (sizeof good_names / sizeof good_names[0])

static const char *long_name(size_t len, int dotted)
{
    char buf[400];
    memset(buf, 'a', len);
    if (dotted)
        for (size_t i = 1; i + 1 < len; i += 2)
            buf[i] = '.';
    buf[len] = '\0';
    return str_fmt("%s", buf);
}

/* Bait: init_fails copies where a naive mapping of the bad names would
 * look; their init appends to the marker file. */
static const char *make_bait(void)
{
    static const char *const rel[] = {
        "bait/a-b.so", "bait/a b.so", "bait/1abc.so", "bait/é.so",
        "bait/a/1b.so", "bait/a.so", "bait/a/b.so", "x.so", "bait/9.so",
        "bait/a.b-c.so", "bait/a/b-c.so", "bait/-.so", "bait/a:b.so",
    };
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++)
        fixture_copy("init_fails", "%s", rel[i]);
    env_set("MH_FIXTURE_MARKER", tmp_path("marker"));
    return tmp_path("bait");
}

static const char *show(const char *name)
{
    return str_fmt("\"%s\" (%zu bytes)", name, strlen(name));
}

TEST(bad_names_fail_name_check)
{
    for (size_t i = 0; i < NBAD; i++) {
        mh_status st = mh_name_check(bad_names[i], ERR);
        if (st != MH_EBADNAME)
            FAIL("mh_name_check(%s): got %s", show(bad_names[i]),
                 mh_status_name(st));
        ASSERT_EQ_INT(ERR_CODE(), MH_EBADNAME);
        ASSERT_TRUE(ERR_MSG()[0] != '\0');
    }
}

TEST(bad_names_fail_import_without_touching_files)
{
    const char *bait = make_bait();
    mh_host *host = host_new_isolated(tmp_path("does-not-exist"), bait);

    for (size_t i = 0; i < NBAD; i++) {
        mh_module *mod = (mh_module *)&mod; /* must be reset to NULL */
        mh_status st = mh_import(host, bad_names[i], &mod, ERR);
        if (st != MH_EBADNAME)
            FAIL("mh_import(%s): got %s: %s", show(bad_names[i]),
                 mh_status_name(st), ERR_MSG());
        ASSERT_NULL(mod);
        ASSERT_EQ_INT(ERR_CODE(), MH_EBADNAME);
        st = mh_import_ex(host, bad_names[i], MH_IMPORT_PLAIN, &mod, NULL);
        if (st != MH_EBADNAME)
            FAIL("mh_import_ex(%s, PLAIN): got %s", show(bad_names[i]),
                 mh_status_name(st));
    }
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
    ASSERT_NULL(file_read(tmp_path("marker")));
}

TEST(bad_names_fail_find)
{
    const char *bait = make_bait();
    mh_host *host = host_new_isolated(tmp_path("does-not-exist"), bait);

    for (size_t i = 0; i < NBAD; i++) {
        mh_spec_info info;
        memset(&info, 0, sizeof info);
        info.size = sizeof info;
        mh_status st = mh_find(host, bad_names[i], &info, ERR);
        if (st != MH_EBADNAME)
            FAIL("mh_find(%s): got %s: %s", show(bad_names[i]),
                 mh_status_name(st), ERR_MSG());
    }
    mh_host_free(host);
    ASSERT_NULL(file_read(tmp_path("marker")));
}

TEST(bad_name_message_names_it)
{
    mh_host *host = host_new_isolated(tmp_path("does-not-exist"));
    mh_module *mod;

    ASSERT_STATUS(mh_import(host, "codecs.rot-13", &mod, ERR), MH_EBADNAME);
    ASSERT_CONTAINS(ERR_MSG(), "codecs.rot-13");
    ASSERT_STATUS(mh_name_check("x..y", ERR), MH_EBADNAME);
    ASSERT_CONTAINS(ERR_MSG(), "x..y");
    mh_host_free(host);
}

TEST(bad_name_without_err_object)
{
    mh_host *host = host_new_isolated(tmp_path("does-not-exist"));
    mh_module *mod;

    ASSERT_STATUS(mh_import(host, "a-b", &mod, NULL), MH_EBADNAME);
    ASSERT_STATUS(mh_name_check("a-b", NULL), MH_EBADNAME);
    mh_host_free(host);
}

TEST(null_name_refused)
{
    mh_host *host = host_new_isolated(tmp_path("does-not-exist"));
    mh_module *mod = (mh_module *)&mod;
    mh_status st = mh_import(host, NULL, &mod, ERR);

    ASSERT_TRUE(st == MH_EINVAL || st == MH_EBADNAME);
    ASSERT_NULL(mod);
    st = mh_name_check(NULL, NULL);
    ASSERT_TRUE(st == MH_EINVAL || st == MH_EBADNAME);
    mh_host_free(host);
}

TEST(good_names_pass_check)
{
    for (size_t i = 0; i < NGOOD; i++) {
        mh_status st = mh_name_check(good_names[i], ERR);
        if (st != MH_OK)
            FAIL("mh_name_check(%s): got %s: %s", show(good_names[i]),
                 mh_status_name(st), ERR_MSG());
    }
}

TEST(good_names_are_looked_up)
{
    mh_host *host = host_new_isolated(tmp_path("does-not-exist"));

    for (size_t i = 0; i < NGOOD; i++) {
        mh_module *mod;
        mh_status st = mh_import(host, good_names[i], &mod, ERR);
        if (st != MH_ENOTFOUND)
            FAIL("mh_import(%s): got %s, expected MH_ENOTFOUND: %s",
                 show(good_names[i]), mh_status_name(st), ERR_MSG());
    }
    mh_host_free(host);
}

TEST(length_limit_is_255)
{
    mh_host *host = host_new_isolated(tmp_path("does-not-exist"));
    mh_module *mod;
    mh_spec_info info = {.size = sizeof info};

    ASSERT_EQ_INT(MH_NAME_MAX, 255);
    ASSERT_STATUS(mh_name_check(long_name(255, 0), ERR), MH_OK);
    ASSERT_STATUS(mh_name_check(long_name(255, 1), ERR), MH_OK);
    ASSERT_STATUS(mh_name_check(long_name(256, 0), ERR), MH_EBADNAME);
    ASSERT_STATUS(mh_name_check(long_name(257, 1), ERR), MH_EBADNAME);
    ASSERT_STATUS(mh_name_check(long_name(300, 0), ERR), MH_EBADNAME);

    ASSERT_STATUS(mh_import(host, long_name(255, 0), &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_import(host, long_name(255, 1), &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_import(host, long_name(256, 0), &mod, ERR), MH_EBADNAME);
    ASSERT_STATUS(mh_find(host, long_name(256, 0), &info, ERR), MH_EBADNAME);
    mh_host_free(host);
}
