/*
 * test_meta.c -- a module's metadata without loading its code: the
 * manifest note MH_PLUGIN_MANIFEST writes into a native plugin, sidecar
 * NAME.json files (beside a stripped plugin, beside a Lua module, as a row
 * of a module database), damaged notes, the ABI and host version checked
 * from the note before dlopen, malformed manifests, the manifest a loaded
 * module keeps, and version constraints (mh_version_satisfies).
 *
 * "No code ran" is proved three ways: the meta_* fixtures append to
 * $MH_FIXTURE_MARKER from their ELF constructor (which dlopen itself would
 * run) and from init; the registry stays empty; and the file never shows
 * up in /proc/self/maps.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/support.h"
#include "test.h"

/* The Lua module the sidecar cases use: it logs when its chunk runs. */
#define LUA_SRC                                                           \
    "modhost.log('chunk ran: ' .. ...)\n"                                 \
    "return { hello = function() return 'hi' end }\n"

/* Nothing of the module at origin has run or been mapped, and nothing is
 * registered. */
static void assert_untouched(mh_host *host, const char *name,
                             const char *origin, const char *marker)
{
    if (file_exists(marker))
        FAIL("code of '%s' ran: %s says:\n%s", name, marker,
             file_read(marker));
    ASSERT_NULL(mh_host_module(host, name));
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    ASSERT_EQ_INT(maps_count(origin, origin), 0);
}

/* mh_metadata that must work. */
static mh_manifest *meta_ok(mh_host *host, const char *name)
{
    mh_manifest *m = NULL;
    ASSERT_STATUS(mh_metadata(host, name, &m, ERR), MH_OK);
    ASSERT_NOT_NULL(m);
    return m;
}

/* mh_metadata that must fail: *out stays NULL; returns the status. */
static mh_status meta_fails(mh_host *host, const char *name)
{
    mh_manifest *m = (mh_manifest *)1;
    mh_status st = mh_metadata(host, name, &m, ERR);
    if (st == MH_OK) {
        const char *src = str_fmt("%s", mh_manifest_source(m));
        mh_manifest_free(m);
        FAIL("mh_metadata('%s') worked (source %s)", name, src);
    }
    ASSERT_NULL(m);
    ASSERT_NOT_NULL(test_err_last());
    return st;
}

/* -------------------------------------------------- the manifest note */

TEST(note_read_without_running_code)
{
    const char *marker = meta_marker();
    const char *so = fixture_copy("meta_full", "E/meta_full.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_manifest *m = meta_ok(host, "meta_full");
    const char *group = NULL, *export_name = NULL;

    ASSERT_EQ_STR(mh_manifest_name(m), "meta_full");
    ASSERT_EQ_STR(mh_manifest_version(m), "2.3.4");
    ASSERT_EQ_STR(mh_manifest_description(m), "a fixture with every field");
    ASSERT_EQ_INT(mh_manifest_abi(m), MH_PLUGIN_ABI_VERSION);
    ASSERT_EQ_STR(mh_manifest_source(m), "elf-note");
    ASSERT_EQ_INT(mh_manifest_requires_count(m), 0);
    ASSERT_STATUS(mh_manifest_require(m, 0, &group, &export_name), MH_EINVAL);
    ASSERT_NULL(group);
    ASSERT_EQ_INT(mh_manifest_provides_count(m), 1);
    ASSERT_STATUS(mh_manifest_provide(m, 0, &group, &export_name), MH_OK);
    ASSERT_EQ_STR(group, "codec");
    ASSERT_EQ_STR(export_name, "call:encode");
    ASSERT_STATUS(mh_manifest_provide(m, 1, &group, &export_name), MH_EINVAL);
    ASSERT_NULL(group);
    ASSERT_NULL(export_name);
    ASSERT_EQ_STR(mh_manifest_provider(m, "codec"), "call:encode");
    ASSERT_NULL(mh_manifest_provider(m, "compressor"));
    ASSERT_CONTAINS(mh_manifest_json(m), "\"version\":\"2.3.4\"");
    ASSERT_CONTAINS(mh_manifest_json(m), "\"codec\":\"call:encode\"");
    mh_manifest_free(m);
    assert_untouched(host, "meta_full", so, marker);

    /* The marker is real: importing runs the constructor, then init. */
    mh_module *mod = import_ok(host, "meta_full");
    ASSERT_EQ_STR(file_read(marker), "ctor meta_full\ninit meta_full\n");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_TRUE(maps_count(so, so) > 0);
    mh_host_free(host);
}

TEST(note_beside_a_note_segment_aligned_to_8_is_read)
{
    /* Objects from a CET-enabled toolchain carry a GNU property note in a
     * note segment aligned to 8, whose data starts at ALIGN(12 + namesz,
     * 8): read as 12 + ALIGN(namesz, 8), it ran past its segment, and
     * every such plugin was refused as damaged. */
    fixture_copy("meta_note8", "E/meta_note8.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_manifest *m = meta_ok(host, "meta_note8");
    ASSERT_EQ_STR(mh_manifest_version(m), "2.5.0");
    ASSERT_EQ_STR(mh_manifest_source(m), "elf-note");
    mh_manifest_free(m);
    ASSERT_EQ_INT(call_int(import_ok(host, "meta_note8"), "value"), 8);
    mh_host_free(host);
}

TEST(metadata_twice_and_after_import_agree)
{
    fixture_copy("meta_full", "E/meta_full.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_manifest *before = meta_ok(host, "meta_full");
    const char *json = str_fmt("%s", mh_manifest_json(before));
    mh_manifest_free(before);

    import_ok(host, "meta_full");
    mh_manifest *after = meta_ok(host, "meta_full");
    ASSERT_EQ_STR(mh_manifest_json(after), json);
    ASSERT_EQ_STR(mh_manifest_source(after), "elf-note");
    mh_manifest_free(after);
    mh_host_free(host);
}

TEST(module_without_manifest_has_source_none)
{
    fixture_copy("counter", "E/counter.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_manifest *m = meta_ok(host, "counter");

    ASSERT_EQ_STR(mh_manifest_source(m), "none");
    ASSERT_EQ_STR(mh_manifest_name(m), "counter");
    ASSERT_EQ_STR(mh_manifest_json(m), "{}");
    ASSERT_NULL(mh_manifest_version(m));
    ASSERT_NULL(mh_manifest_description(m));
    ASSERT_EQ_INT(mh_manifest_abi(m), 0);
    ASSERT_EQ_INT(mh_manifest_requires_count(m), 0);
    ASSERT_EQ_INT(mh_manifest_provides_count(m), 0);
    mh_manifest_free(m);
    ASSERT_EQ_INT(mh_host_module_count(host), 0);

    /* Loaded, it has no manifest, and its descriptor gives the version. */
    mh_module *mod = import_ok(host, "counter");
    ASSERT_NULL(mh_module_manifest(mod));
    ASSERT_EQ_STR(mh_module_version(mod), "1.0");
    mh_host_free(host);
}

TEST(metadata_of_missing_or_badly_named_module)
{
    mh_host *host = host_new_isolated(tmp_mkdir("E"));
    mh_manifest *m = NULL;

    ASSERT_STATUS(meta_fails(host, "nothere"), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "nothere");
    ASSERT_STATUS(meta_fails(host, "1bad"), MH_EBADNAME);
    ASSERT_STATUS(mh_metadata(host, NULL, &m, ERR), MH_EINVAL);
    ASSERT_NULL(m);
    ASSERT_STATUS(mh_metadata(NULL, "x", &m, ERR), MH_EINVAL);
    ASSERT_STATUS(mh_metadata(host, "x", NULL, ERR), MH_EINVAL);
    /* Accessors and free accept NULL. */
    mh_manifest_free(NULL);
    ASSERT_NULL(mh_manifest_name(NULL));
    ASSERT_NULL(mh_manifest_json(NULL));
    ASSERT_NULL(mh_manifest_provider(NULL, "codec"));
    ASSERT_EQ_INT(mh_manifest_requires_count(NULL), 0);
    mh_host_free(host);
}

/* ----------------------------------------------- stripped and sidecars */

TEST(stripped_plugin_reads_its_sidecar)
{
    const char *marker = meta_marker();
    const char *so = tmp_path("E/meta_full.so");

    mkdir_p(tmp_path("E"));
    meta_tool("objcopy", str_fmt("-R .note.modhost %s %s",
                                 sh_quote(fixture_path("meta_full")),
                                 sh_quote(so)));
    /* Without the note and with no sidecar: no manifest at all. */
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_manifest *m = meta_ok(host, "meta_full");
    ASSERT_EQ_STR(mh_manifest_source(m), "none");
    mh_manifest_free(m);
    mh_host_free(host);

    file_write(tmp_path("E/meta_full.json"),
               "{\"name\": \"meta_full\", \"version\": \"9.8.7\",\n"
               " \"description\": \"from the sidecar\",\n"
               " \"requires\": [],\n"
               " \"provides\": {\"codec\": \"call:encode\","
               " \"checker\": \"value\"}}\n");
    host = host_new_isolated(tmp_path("E"));
    m = meta_ok(host, "meta_full");
    ASSERT_EQ_STR(mh_manifest_source(m), "sidecar");
    ASSERT_EQ_STR(mh_manifest_version(m), "9.8.7");
    ASSERT_EQ_STR(mh_manifest_description(m), "from the sidecar");
    ASSERT_EQ_INT(mh_manifest_abi(m), 0);
    ASSERT_EQ_INT(mh_manifest_provides_count(m), 2);
    ASSERT_EQ_STR(mh_manifest_provider(m, "codec"), "call:encode");
    ASSERT_EQ_STR(mh_manifest_provider(m, "checker"), "value");
    mh_manifest_free(m);
    assert_untouched(host, "meta_full", so, marker);

    /* Imported, it keeps the sidecar's manifest and version. */
    mh_module *mod = import_ok(host, "meta_full");
    ASSERT_EQ_STR(mh_manifest_source(mh_module_manifest(mod)), "sidecar");
    ASSERT_EQ_STR(mh_module_version(mod), "9.8.7");
    mh_host_free(host);
}

TEST(note_wins_over_sidecar)
{
    fixture_copy("meta_full", "E/meta_full.so");
    file_write(tmp_path("E/meta_full.json"),
               "{\"version\": \"9.8.7\", \"description\": \"sidecar\"}");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_manifest *m = meta_ok(host, "meta_full");

    ASSERT_EQ_STR(mh_manifest_source(m), "elf-note");
    ASSERT_EQ_STR(mh_manifest_version(m), "2.3.4");
    mh_manifest_free(m);
    mh_host_free(host);
}

TEST(strip_all_keeps_the_note)
{
    const char *marker = meta_marker();
    const char *so = tmp_path("E/meta_full.so");

    mkdir_p(tmp_path("E"));
    meta_tool("strip", str_fmt("--strip-all -o %s %s", sh_quote(so),
                               sh_quote(fixture_path("meta_full"))));
    ASSERT_FALSE(files_equal(so, fixture_path("meta_full")));
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_manifest *m = meta_ok(host, "meta_full");
    ASSERT_EQ_STR(mh_manifest_source(m), "elf-note");
    ASSERT_EQ_STR(mh_manifest_version(m), "2.3.4");
    ASSERT_EQ_STR(mh_manifest_provider(m, "codec"), "call:encode");
    mh_manifest_free(m);
    assert_untouched(host, "meta_full", so, marker);

    mh_module *mod = import_ok(host, "meta_full");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_EQ_STR(mh_module_version(mod), "2.3.4");
    mh_host_free(host);
}

TEST(lua_module_sidecar_in_directory)
{
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    meta_lua_module("E/pkg/tool", LUA_SRC,
                    "{\"name\": \"pkg.tool\", \"version\": \"0.4.1\","
                    " \"description\": \"a Lua tool\","
                    " \"requires\": [\"textutil >=1.0, <2  \", \"hello \"],"
                    " \"provides\": {\"tools\": \"hello\"}}");
    mh_host *host = host_new_opts(&o, tmp_path("E"));
    mh_manifest *m = meta_ok(host, "pkg.tool");
    const char *rname, *rcons;

    ASSERT_EQ_STR(mh_manifest_source(m), "sidecar");
    ASSERT_EQ_STR(mh_manifest_name(m), "pkg.tool");
    ASSERT_EQ_STR(mh_manifest_version(m), "0.4.1");
    ASSERT_EQ_STR(mh_manifest_description(m), "a Lua tool");
    ASSERT_EQ_INT(mh_manifest_requires_count(m), 2);
    ASSERT_STATUS(mh_manifest_require(m, 0, &rname, &rcons), MH_OK);
    ASSERT_EQ_STR(rname, "textutil");
    ASSERT_EQ_STR(rcons, ">=1.0, <2"); /* trimmed at both ends */
    ASSERT_STATUS(mh_manifest_require(m, 1, &rname, &rcons), MH_OK);
    ASSERT_EQ_STR(rname, "hello");
    ASSERT_EQ_STR(rcons, "");
    ASSERT_EQ_STR(mh_manifest_provider(m, "tools"), "hello");
    mh_manifest_free(m);
    /* The chunk did not run. */
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "chunk ran"), 0);
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(lua_module_sidecar_in_database)
{
    const char *db = tmp_path("mods.db");
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};

    meta_lua_module("stage/a", LUA_SRC,
                    "{\"version\": \"1.5\", \"description\": \"in a db\","
                    " \"provides\": {\"greeting\": \"hello\"}}");
    meta_lua_module("stage/sub/b", LUA_SRC, "{\"version\": 7}");
    db_pack(db, tmp_path("stage"));
    ASSERT_CONTAINS(db_exec(db, "SELECT name FROM sqlar ORDER BY name;"),
                    "a.json");

    mh_host *host = host_new_opts(&o, db);
    mh_manifest *m = meta_ok(host, "a");
    ASSERT_EQ_STR(mh_manifest_source(m), "sidecar");
    ASSERT_EQ_STR(mh_manifest_version(m), "1.5");
    ASSERT_EQ_STR(mh_manifest_description(m), "in a db");
    ASSERT_EQ_STR(mh_manifest_provider(m, "greeting"), "hello");
    mh_manifest_free(m);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "chunk ran"), 0);

    /* A bad row names the database and the item. */
    ASSERT_STATUS(meta_fails(host, "sub.b"), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), db);
    ASSERT_CONTAINS(ERR_MSG(), "sub/b.json");
    ASSERT_CONTAINS(ERR_MSG(), "'version'");

    mh_module *mod = import_ok(host, "a");
    ASSERT_EQ_STR(mh_module_version(mod), "1.5");
    ASSERT_EQ_STR(mh_manifest_source(mh_module_manifest(mod)), "sidecar");
    ASSERT_EQ_STR(call_ok(mod, "hello", NULL), "\"hi\"");
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "chunk ran"), 1);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(note_read_from_database_without_loading)
{
    const char *marker = meta_marker();
    /* Without recorded hashes, so the import loads it from memory (with
     * them, from a kept copy: tests/test_sqlite.c). */
    const char *db = db_without_hashes(db_make(tmp_path("mods.db"),
                                               "meta_full:pkg/full.so"));
    mh_host *host = host_new_opts(&(host_opts){0}, db);
    mh_manifest *m = meta_ok(host, "pkg.full");

    ASSERT_EQ_STR(mh_manifest_source(m), "elf-note");
    ASSERT_EQ_STR(mh_manifest_name(m), "pkg.full");
    ASSERT_EQ_STR(mh_manifest_version(m), "2.3.4");
    ASSERT_EQ_INT(mh_manifest_abi(m), MH_PLUGIN_ABI_VERSION);
    ASSERT_EQ_STR(mh_manifest_provider(m, "codec"), "call:encode");
    mh_manifest_free(m);
    ASSERT_FALSE(file_exists(marker));
    ASSERT_EQ_INT(memfd_fd_count("pkg.full"), 0);
    ASSERT_EQ_INT(maps_count("pkg.full", "memfd"), 0);
    ASSERT_EQ_INT(mh_host_module_count(host), 0);

    mh_module *mod = import_ok(host, "pkg.full");
    ASSERT_EQ_STR(mh_module_version(mod), "2.3.4");
    ASSERT_EQ_STR(mh_manifest_source(mh_module_manifest(mod)), "elf-note");
    ASSERT_EQ_STR(file_read(marker), "ctor meta_full\ninit meta_full\n");
    ASSERT_TRUE(maps_count("pkg.full", "memfd") > 0);
    mh_host_free(host);
}

TEST(database_entry_refused_from_its_note_before_load)
{
    const char *marker = meta_marker();
    const char *db = db_make(tmp_path("mods.db"), "meta_abi2:abi2.so",
                             "meta_hostver:hostver.so");
    mh_host *host = host_new_opts(&(host_opts){0}, db);

    ASSERT_STATUS(import_fails(host, "abi2"), MH_EABI);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("%s!/abi2.so", db));
    ASSERT_CONTAINS(ERR_MSG(), "ABI 2");
    ASSERT_STATUS(import_fails(host, "hostver"), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("%s!/hostver.so", db));
    ASSERT_CONTAINS(ERR_MSG(), ">=99");
    if (file_exists(marker))
        FAIL("refused code ran: %s", file_read(marker));
    ASSERT_EQ_INT(maps_count("abi2", "memfd"), 0);
    ASSERT_EQ_INT(maps_count("hostver", "memfd"), 0);
    ASSERT_EQ_INT(mh_host_module_count(host), 0);
    mh_host_free(host);
}

TEST(stripped_plugin_with_sidecar_in_database)
{
    const char *db = tmp_path("mods.db");

    mkdir_p(tmp_path("stage"));
    meta_tool("objcopy", str_fmt("-R .note.modhost %s %s",
                                 sh_quote(fixture_path("meta_full")),
                                 sh_quote(tmp_path("stage/full.so"))));
    file_write(tmp_path("stage/full.json"), "{\"version\": \"5.0\"}");
    db_pack(db, tmp_path("stage"));
    mh_host *host = host_new_opts(&(host_opts){0}, db);
    mh_manifest *m = meta_ok(host, "full");

    ASSERT_EQ_STR(mh_manifest_source(m), "sidecar");
    ASSERT_EQ_STR(mh_manifest_version(m), "5.0");
    mh_manifest_free(m);
    ASSERT_EQ_STR(mh_module_version(import_ok(host, "full")), "5.0");
    mh_host_free(host);
}

TEST(sidecar_declaring_other_abi_refused_before_dlopen)
{
    const char *marker = meta_marker();
    const char *so = tmp_path("E/meta_full.so");

    mkdir_p(tmp_path("E"));
    meta_tool("objcopy", str_fmt("-R .note.modhost %s %s",
                                 sh_quote(fixture_path("meta_full")),
                                 sh_quote(so)));
    file_write(tmp_path("E/meta_full.json"), "{\"abi\": 2}");
    mh_host *host = host_new_isolated(tmp_path("E"));
    ASSERT_STATUS(import_fails(host, "meta_full"), MH_EABI);
    ASSERT_CONTAINS(ERR_MSG(), "ABI 2");
    assert_untouched(host, "meta_full", so, marker);
    mh_host_free(host);
}

TEST(sidecar_removed_after_listing)
{
    meta_lua_module("E/gone", LUA_SRC, "{\"version\": \"1.0\"}");
    /* An old mtime, restored after the unlink, keeps the cached listing
     * valid (fs.c trusts an unchanged nanosecond mtime). */
    file_set_mtime(tmp_path("E"), 1000000000);
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_manifest *m = meta_ok(host, "gone");
    ASSERT_EQ_STR(mh_manifest_version(m), "1.0");
    mh_manifest_free(m);

    /* The listing is cached; the sidecar goes away underneath it.  Either
     * the module reads as having no manifest, or the failure says why. */
    ASSERT_EQ_INT(unlink(tmp_path("E/gone.json")), 0);
    file_set_mtime(tmp_path("E"), 1000000000);
    m = NULL;
    mh_status st = mh_metadata(host, "gone", &m, ERR);
    if (st == MH_OK) {
        ASSERT_EQ_STR(mh_manifest_source(m), "none");
        mh_manifest_free(m);
    } else {
        ASSERT_NULL(m);
        if (test_err_last() == NULL)
            FAIL("mh_metadata failed with %s and no error object",
                 mh_status_name(st));
        ASSERT_CONTAINS(ERR_MSG(), "gone.json");
    }
    mh_module *mod = NULL;
    st = mh_import(host, "gone", &mod, ERR);
    if (st != MH_OK) {
        if (test_err_last() == NULL)
            FAIL("mh_import failed with %s and no error object",
                 mh_status_name(st));
        ASSERT_CONTAINS(ERR_MSG(), "gone.json");
    }
    mh_host_free(host);
}

/* --------------------------------------------------------- damaged notes */

/* A copy of meta_full at E/meta_full.so whose note is changed by patch;
 * returns its path. */
static const char *damaged_copy(void (*patch)(unsigned char *, size_t,
                                              long))
{
    size_t len;
    unsigned char *bytes = file_bytes(fixture_path("meta_full"), &len);
    long at = meta_note_offset(bytes, len);
    const char *so = tmp_path("E/meta_full.so");

    if (at < 0) {
        free(bytes);
        FAIL("the fixture meta_full has no manifest note");
    }
    patch(bytes, len, at);
    mkdir_p(tmp_path("E"));
    file_write_bytes(so, bytes, len);
    free(bytes);
    return so;
}

static void huge_descsz(unsigned char *b, size_t len, long at)
{
    uint32_t big = 0x7ffffff0u;
    (void)len;
    memcpy(b + at + 4, &big, 4);
}

static void json_garbled(unsigned char *b, size_t len, long at)
{
    /* namesz, descsz, type, "modhost\0", abi, then the JSON. */
    unsigned char *json = b + at + 12 + 8 + 4;
    (void)len;
    if (json[0] != '{')
        FAIL("the note's JSON does not start where expected");
    memcpy(json, "{{{", 3);
}

static void unterminated(unsigned char *b, size_t len, long at)
{
    uint32_t descsz;
    (void)len;
    memcpy(&descsz, b + at + 4, 4);
    /* The last byte of the data is the JSON's NUL. */
    unsigned char *nul = b + at + 12 + 8 + descsz - 1;
    if (*nul != '\0')
        FAIL("the note's JSON does not end where expected");
    *nul = '}';
}

/* mh_metadata and mh_import of the damaged copy both fail with EFORMAT,
 * naming the file and saying `what`; none of its code runs. */
static void assert_damaged(const char *so, const char *what)
{
    const char *marker = meta_marker();
    mh_host *host = host_new_isolated(tmp_path("E"));

    ASSERT_STATUS(meta_fails(host, "meta_full"), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), so);
    ASSERT_CONTAINS(ERR_MSG(), "meta_full");
    ASSERT_CONTAINS(ERR_MSG(), what);
    const char *meta_msg = str_fmt("%s", ERR_MSG());

    ASSERT_STATUS(import_fails(host, "meta_full"), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), so);
    ASSERT_CONTAINS(ERR_MSG(), what);
    ASSERT_EQ_STR(ERR_MSG(), meta_msg);
    assert_untouched(host, "meta_full", so, marker);
    /* And again: a failed import left nothing that would change that. */
    ASSERT_STATUS(import_fails(host, "meta_full"), MH_EFORMAT);
    assert_untouched(host, "meta_full", so, marker);
    mh_host_free(host);
}

static void abi_word_zero(unsigned char *b, size_t len, long at)
{
    uint32_t zero = 0;
    (void)len;
    memcpy(b + at + 12 + 8, &zero, 4); /* namesz, descsz, type, name */
}

TEST(note_abi_word_that_is_no_abi_is_eformat)
{
    /* 0 read as "no ABI": the module got past the check before dlopen,
     * and its constructor ran. */
    assert_damaged(damaged_copy(abi_word_zero), "ABI word 0 is not a plugin "
                                                "ABI");
}

TEST(note_with_huge_descsz_is_eformat)
{
    assert_damaged(damaged_copy(huge_descsz), "runs past");
}

TEST(note_with_invalid_json_is_eformat)
{
    assert_damaged(damaged_copy(json_garbled), "not valid JSON");
}

TEST(note_without_nul_is_eformat)
{
    assert_damaged(damaged_copy(unterminated), "NUL-terminated");
}

TEST(note_abi_contradicting_its_json_is_eformat)
{
    const char *marker = meta_marker();
    const char *so = fixture_copy("meta_abiclash", "E/meta_abiclash.so");
    mh_host *host = host_new_isolated(tmp_path("E"));

    ASSERT_STATUS(meta_fails(host, "meta_abiclash"), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), so);
    ASSERT_CONTAINS(ERR_MSG(), "abi 7");
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("ABI %d", MH_PLUGIN_ABI_VERSION));
    ASSERT_STATUS(import_fails(host, "meta_abiclash"), MH_EFORMAT);
    assert_untouched(host, "meta_abiclash", so, marker);
    mh_host_free(host);
}

/* ------------------------------------------- refused before any code */

TEST(other_abi_in_note_refused_before_dlopen)
{
    const char *marker = meta_marker();
    const char *so = fixture_copy("meta_abi2", "E/meta_abi2.so");
    mh_host *host = host_new_isolated(tmp_path("E"));

    /* Reading the metadata works: it is data. */
    mh_manifest *m = meta_ok(host, "meta_abi2");
    ASSERT_EQ_INT(mh_manifest_abi(m), 2);
    ASSERT_EQ_STR(mh_manifest_source(m), "elf-note");
    mh_manifest_free(m);

    ASSERT_STATUS(import_fails(host, "meta_abi2"), MH_EABI);
    ASSERT_CONTAINS(ERR_MSG(), "meta_abi2");
    ASSERT_CONTAINS(ERR_MSG(), so);
    ASSERT_CONTAINS(ERR_MSG(), "ABI 2");
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("ABI %d", MH_PLUGIN_ABI_VERSION));
    ASSERT_CONTAINS(ERR_MSG(), "none of its code ran");
    assert_untouched(host, "meta_abi2", so, marker);
    mh_host_free(host);
}

TEST(note_abi_word_out_of_range_is_eformat)
{
    /* a note whose ABI word no plugin ABI can be: refused as damaged
     * metadata, before anything is loaded (an "abi" field is limited the
     * same way) */
    const char *so = fixture_copy("meta_full", "E/meta_full.so");
    int st;
    sh_run(str_fmt("python3 -c 'import sys; p = sys.argv[1]; "
                   "b = open(p, \"rb\").read(); "
                   "k = b\"modhost\\0\\1\\0\\0\\0{\"; i = b.index(k); "
                   "b = b[:i + 8] + (2147483647).to_bytes(4, \"little\") + "
                   "b[i + 12:]; open(p, \"wb\").write(b)' %s",
                   sh_quote(so)), &st);
    ASSERT_EQ_INT(st, 0);
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_manifest *m = NULL;
    ASSERT_STATUS(mh_metadata(host, "meta_full", &m, ERR), MH_EFORMAT);
    ASSERT_NULL(m);
    ASSERT_CONTAINS(ERR_MSG(), "its note's ABI word 2147483647 is not a "
                               "plugin ABI");
    ASSERT_STATUS(import_fails(host, "meta_full"), MH_EFORMAT);
    mh_host_free(host);
}

TEST(host_version_constraint_refused)
{
    const char *marker = meta_marker();
    const char *so = fixture_copy("meta_hostver", "E/meta_hostver.so");
    mh_host *host = host_new_isolated(tmp_path("E"));

    ASSERT_STATUS(import_fails(host, "meta_hostver"), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), "meta_hostver");
    ASSERT_CONTAINS(ERR_MSG(), ">=99");
    ASSERT_CONTAINS(ERR_MSG(), mh_version_string());
    assert_untouched(host, "meta_hostver", so, marker);
    mh_host_free(host);
}

TEST(host_version_constraint_met_loads)
{
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    meta_lua_module("E/ok", LUA_SRC,
                    str_fmt("{\"modhost\": \">=%d.%d, <%d\"}",
                            MH_VERSION_MAJOR, MH_VERSION_MINOR,
                            MH_VERSION_MAJOR + 1));
    meta_lua_module("E/old", LUA_SRC,
                    str_fmt("{\"modhost\": \"<%s\"}", MH_VERSION_STRING));
    mh_host *host = host_new_opts(&o, tmp_path("E"));

    import_ok(host, "ok");
    ASSERT_STATUS(import_fails(host, "old"), MH_EVERSION);
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("<%s", MH_VERSION_STRING));
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "chunk ran: old"), 0);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "chunk ran: ok"), 1);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* ---------------------------------------------------- bad manifests */

static const struct {
    const char *json;
    const char *says; /* what the message must name */
} bad_manifests[] = {
    {"this is not JSON", "not valid JSON"},
    {"{\"version\": \"1.0\",", "not valid JSON"},
    {"[\"name\", \"x\"]", "not a JSON object"},
    {"\"just a string\"", "not a JSON object"},
    {"{\"version\": 1}", "'version'"},
    {"{\"description\": true}", "'description'"},
    {"{\"name\": 5}", "'name'"},
    {"{\"name\": \"1bad\"}", "'name'"},
    {"{\"modhost\": 1}", "'modhost'"},
    {"{\"modhost\": \">>1\"}", "'modhost'"},
    {"{\"requires\": \"textutil\"}", "'requires'"},
    {"{\"requires\": {\"textutil\": \">=1\"}}", "'requires'"},
    {"{\"requires\": [5]}", "requires[0]"},
    {"{\"requires\": [\"1bad\"]}", "1bad"},
    {"{\"requires\": [\"ok\", \"textutil >>1\"]}", "requires[1] 'textutil >>1'"},
    {"{\"requires\": [\"textutil ~=1\"]}", "textutil ~=1"},
    {"{\"requires\": [\"\"]}", "requires[0]"},
    {"{\"provides\": [\"codec\"]}", "'provides'"},
    {"{\"provides\": \"codec\"}", "'provides'"},
    {"{\"provides\": {\"codec\": 1}}", "codec"},
    {"{\"provides\": {\"codec\": \"\"}}", "codec"},
    {"{\"abi\": -1}", "'abi'"},
    {"{\"abi\": 0}", "'abi'"},
    {"{\"abi\": 1.5}", "'abi'"},
    {"{\"abi\": 2000000}", "'abi' must be a whole number from 1 to "
                           "1000000"},
    {"{\"abi\": \"1\"}", "'abi'"},
};

TEST(bad_manifests_are_eformat_naming_field_and_file)
{
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    const char *file = tmp_path("E/bad.json");

    for (size_t i = 0; i < sizeof bad_manifests / sizeof *bad_manifests;
         i++) {
        meta_lua_module("E/bad", LUA_SRC, bad_manifests[i].json);
        mh_host *host = host_new_opts(&o, tmp_path("E"));
        mh_status st = meta_fails(host, "bad");
        if (st != MH_EFORMAT || !strstr(ERR_MSG(), file) ||
            !strstr(ERR_MSG(), bad_manifests[i].says))
            FAIL("manifest %s: mh_metadata gave %s, \"%s\"; expected "
                 "MH_EFORMAT naming %s and %s", bad_manifests[i].json,
                 mh_status_name(st), ERR_MSG(), file,
                 bad_manifests[i].says);
        const char *meta_msg = str_fmt("%s", ERR_MSG());
        st = import_fails(host, "bad");
        if (st != MH_EFORMAT || strcmp(ERR_MSG(), meta_msg) != 0)
            FAIL("manifest %s: mh_import gave %s, \"%s\"; expected "
                 "MH_EFORMAT, \"%s\"", bad_manifests[i].json,
                 mh_status_name(st), ERR_MSG(), meta_msg);
        ASSERT_EQ_INT(mh_host_module_count(host), 0);
        mh_host_free(host);
    }
    if (log_capture_count(&lc, -1, "chunk ran") != 0)
        FAIL("a module with a bad manifest ran:%s", log_capture_dump(&lc));
    log_capture_free(&lc);
}

TEST(manifest_over_256_kib_is_eformat)
{
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    size_t n = 256 * 1024 + 1;
    char *big = malloc(n + 64);
    const char *file = tmp_path("E/big.json");

    ASSERT_NOT_NULL(big);
    int k = snprintf(big, 64, "{\"description\": \"");
    memset(big + k, 'x', n);
    strcpy(big + k + n, "\"}");
    meta_lua_module("E/big", LUA_SRC, big);
    free(big);
    /* Just under the limit is fine. */
    char *ok = malloc(256 * 1024 + 1);
    ASSERT_NOT_NULL(ok);
    k = snprintf(ok, 64, "{\"description\": \"");
    memset(ok + k, 'y', 256 * 1024 - (size_t)k - 2);
    strcpy(ok + 256 * 1024 - 2, "\"}");
    ASSERT_EQ_INT(strlen(ok), 256 * 1024);
    meta_lua_module("E/fits", LUA_SRC, ok);
    free(ok);

    mh_host *host = host_new_opts(&o, tmp_path("E"));
    ASSERT_STATUS(meta_fails(host, "big"), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), file);
    ASSERT_CONTAINS(ERR_MSG(), "262144");
    ASSERT_STATUS(import_fails(host, "big"), MH_EFORMAT);
    ASSERT_CONTAINS(ERR_MSG(), file);

    mh_manifest *m = meta_ok(host, "fits");
    ASSERT_EQ_INT(strlen(mh_manifest_description(m)), 256 * 1024 - 19);
    mh_manifest_free(m);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "chunk ran"), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

/* A manifest's objects and arrays nest at most 64 levels, the manifest
 * counting 1 (cJSON alone allows 1000, and a manifest nested near that
 * made the HTTP index it is copied into one cJSON refuses whole). */
TEST(manifest_nested_past_64_levels_is_eformat)
{
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    meta_lua_module("E/deep", LUA_SRC, meta_nested_manifest(65));
    meta_lua_module("E/deeper", LUA_SRC, meta_nested_manifest(990));
    meta_lua_module("E/fits", LUA_SRC, meta_nested_manifest(64));
    mh_host *host = host_new_opts(&o, tmp_path("E"));

    const char *names[] = {"deep", "deeper"};
    for (size_t i = 0; i < 2; i++) {
        const char *file = tmp_path("E/%s.json", names[i]);
        ASSERT_STATUS(meta_fails(host, names[i]), MH_EFORMAT);
        ASSERT_CONTAINS(ERR_MSG(), file);
        ASSERT_CONTAINS(ERR_MSG(), "nest more than 64 levels deep");
        ASSERT_STATUS(import_fails(host, names[i]), MH_EFORMAT);
        ASSERT_CONTAINS(ERR_MSG(), "nest more than 64 levels deep");
    }
    mh_manifest *m = meta_ok(host, "fits");
    ASSERT_EQ_STR(mh_manifest_description(m), "deep");
    mh_manifest_free(m);
    import_ok(host, "fits");
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "chunk ran: deep"), 0);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(unknown_fields_are_ignored)
{
    meta_lua_module("E/fut", LUA_SRC,
                    "{\"version\": \"1.0\", \"homepage\": \"x\","
                    " \"x-future\": {\"a\": [1, 2]}}");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_manifest *m = meta_ok(host, "fut");
    ASSERT_EQ_STR(mh_manifest_version(m), "1.0");
    mh_manifest_free(m);
    import_ok(host, "fut");
    mh_host_free(host);
}

/* ---------------------------------------------- the loaded module's */

TEST(module_manifest_after_import)
{
    fixture_copy("meta_full", "E/meta_full.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = import_ok(host, "meta_full");
    const mh_manifest *m = mh_module_manifest(mod);

    ASSERT_NOT_NULL(m);
    ASSERT_EQ_STR(mh_manifest_source(m), "elf-note");
    ASSERT_EQ_STR(mh_manifest_name(m), "meta_full");
    ASSERT_EQ_STR(mh_manifest_version(m), "2.3.4");
    ASSERT_EQ_INT(mh_manifest_abi(m), MH_PLUGIN_ABI_VERSION);
    ASSERT_EQ_STR(mh_manifest_provider(m, "codec"), "call:encode");
    /* The manifest's version wins over the descriptor's "0.0.1". */
    ASSERT_EQ_STR(mh_module_version(mod), "2.3.4");
    /* What it provides is a real export. */
    ASSERT_EQ_STR(call_ok(mod, "encode", "[\"x\"]"), "\"encoded\"");
    ASSERT_EQ_PTR(mh_module_manifest(mod), m); /* owned by the module */
    ASSERT_NULL(mh_module_manifest(NULL));
    mh_host_free(host);
}

/* A manifest from an ELF note is not kept by a loaded module: the note
 * is in its mapping, parsed on first use and kept from then on. */
TEST(note_manifest_is_parsed_on_first_use)
{
    alloc_tracker at;
    mh_config cfg;
    mh_manifest *before;

    fixture_copy("meta_full", "E/meta_full.so");
    alloc_tracker_init(&at);
    cfg = tracked_config(&at, tmp_path("E"));
    mh_host *host = host_new_cfg(&cfg);
    ASSERT_STATUS(mh_metadata(host, "meta_full", &before, ERR), MH_OK);
    mh_module *mod = import_ok(host, "meta_full");
    size_t loaded = at.outstanding;
    const mh_manifest *m = mh_module_manifest(mod);
    size_t parsed = at.outstanding;
    ASSERT_TRUE(parsed > loaded); /* parsed now, not before */
    ASSERT_EQ_PTR(mh_module_manifest(mod), m);
    ASSERT_EQ_INT(at.outstanding, parsed); /* and once */
    /* The same manifest as the one read from the file before loading. */
    ASSERT_EQ_STR(mh_manifest_json(m), mh_manifest_json(before));
    ASSERT_EQ_STR(mh_manifest_source(m), "elf-note");
    ASSERT_EQ_INT(mh_manifest_abi(m), MH_PLUGIN_ABI_VERSION);
    ASSERT_EQ_STR(mh_manifest_provider(m, "codec"), "call:encode");
    mh_manifest_free(before);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
}

typedef struct racer {
    mh_module *mod;
    pthread_barrier_t *go;
    const mh_manifest *got;
    const char *text;
} racer;

enum { N_RACERS = 8 };

/* N_RACERS threads run fn on r[i] (mod and got set, the rest zero) at
 * once, released together by a barrier; all joined on return. */
static void race(mh_module *mod, const mh_manifest *got,
                 void *(*fn)(void *), racer r[N_RACERS])
{
    pthread_t t[N_RACERS];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N_RACERS);
    for (int i = 0; i < N_RACERS; i++) {
        r[i] = (racer){mod, &go, got, NULL};
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, fn, &r[i]), 0);
    }
    for (int i = 0; i < N_RACERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
}

static void *race_manifest(void *ud)
{
    racer *r = ud;
    pthread_barrier_wait(r->go);
    r->got = mh_module_manifest(r->mod);
    return NULL;
}

TEST(note_manifest_parsed_by_racing_threads_is_one)
{
    racer r[N_RACERS];

    fixture_copy("meta_full", "E/meta_full.so");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = import_ok(host, "meta_full");
    race(mod, NULL, race_manifest, r);
    ASSERT_NOT_NULL(r[0].got);
    for (int i = 1; i < N_RACERS; i++)
        ASSERT_EQ_PTR(r[i].got, r[0].got);
    ASSERT_EQ_PTR(mh_module_manifest(mod), r[0].got);
    ASSERT_EQ_STR(mh_manifest_version(r[0].got), "2.3.4");
    mh_host_free(host);
}

/* A host whose allocations at tracks, with meta_full imported: its
 * manifest, checked. */
static const mh_manifest *tracked_meta_full(alloc_tracker *at,
                                            mh_host **host)
{
    fixture_copy("meta_full", "E/meta_full.so");
    alloc_tracker_init(at);
    mh_config cfg = tracked_config(at, tmp_path("E"));
    *host = host_new_cfg(&cfg);
    const mh_manifest *m = mh_module_manifest(import_ok(*host, "meta_full"));
    ASSERT_NOT_NULL(m);
    ASSERT_EQ_STR(mh_manifest_version(m), "2.3.4");
    return m;
}

/* A module's manifest is printed as JSON only when its text is first
 * asked for (an import checks the manifest, then drops it), and the text
 * is the one the file's metadata gives before loading. */
TEST(module_manifest_text_is_printed_on_first_ask)
{
    alloc_tracker at;
    mh_manifest *before;
    mh_host *host;
    const mh_manifest *m = tracked_meta_full(&at, &host);
    /* the file's metadata, read and printed apart from the module */
    ASSERT_STATUS(mh_metadata(host, "meta_full", &before, ERR), MH_OK);
    size_t parsed = at.outstanding, frees = at.calls - at.requests;
    const char *json = mh_manifest_json(m);
    ASSERT_NOT_NULL(json);
    ASSERT_TRUE(at.outstanding > parsed); /* printed now */
    ASSERT_EQ_STR(json, mh_manifest_json(before));
    /* with the note's ABI word, as the text printed before loading says */
    ASSERT_CONTAINS(json, str_fmt("\"abi\":%d", MH_PLUGIN_ABI_VERSION));
    size_t printed = at.outstanding;
    ASSERT_EQ_PTR(mh_manifest_json(m), json); /* and once */
    ASSERT_EQ_INT(at.outstanding, printed);
    ASSERT_EQ_INT(at.calls - at.requests, frees); /* none thrown away */
    mh_manifest_free(before);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
}

/* The import itself parses with the text for later: a module whose note
 * lies in a writable segment keeps the manifest its import parsed (the
 * mapping's copy may have been rewritten), and that manifest's text is
 * printed only when asked for. */
TEST(import_prints_manifest_text_only_when_asked)
{
    alloc_tracker at;

    fixture_copy("meta_rwnote", "E/meta_rwnote.so");
    alloc_tracker_init(&at);
    mh_config cfg = tracked_config(&at, tmp_path("E"));
    mh_host *host = host_new_cfg(&cfg);
    mh_module *mod = import_ok(host, "meta_rwnote");
    ASSERT_EQ_INT(call_int(mod, "value"), 567);
    size_t loaded = at.outstanding;
    const mh_manifest *m = mh_module_manifest(mod);
    ASSERT_NOT_NULL(m);
    ASSERT_EQ_INT(at.outstanding, loaded); /* the import's, kept */
    ASSERT_EQ_STR(mh_manifest_source(m), "elf-note");
    ASSERT_EQ_STR(mh_manifest_version(m), "5.6.7");
    const char *json = mh_manifest_json(m);
    ASSERT_TRUE(at.outstanding > loaded); /* printed now, not at import */
    ASSERT_EQ_STR(json, str_fmt("{\"name\":\"meta_rwnote\",\"version\":"
                                "\"5.6.7\",\"abi\":%d}",
                                MH_PLUGIN_ABI_VERSION));
    ASSERT_EQ_PTR(mh_manifest_json(m), json);
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
}

static void *race_text(void *ud)
{
    racer *r = ud;
    pthread_barrier_wait(r->go);
    r->text = mh_manifest_json(r->got);
    return NULL;
}

/* Threads asking for the text at once all get the one published; a print
 * that lost the race is freed (the host's allocator sees nothing left). */
TEST(module_manifest_text_printed_by_racing_threads_is_one)
{
    racer r[N_RACERS];
    alloc_tracker at;
    mh_host *host;
    const mh_manifest *m = tracked_meta_full(&at, &host);
    race(mh_host_module(host, "meta_full"), m, race_text, r);
    ASSERT_NOT_NULL(r[0].text);
    for (int i = 1; i < N_RACERS; i++)
        ASSERT_EQ_PTR(r[i].text, r[0].text);
    ASSERT_EQ_PTR(mh_manifest_json(m), r[0].text);
    ASSERT_CONTAINS(r[0].text, "\"version\":\"2.3.4\"");
    mh_host_free(host);
    ASSERT_EQ_INT(at.outstanding, 0);
    alloc_tracker_destroy(&at);
}

TEST(note_manifest_of_module_loaded_from_memory)
{
    /* from a database: the note is read in the mapping of its memfd */
    const char *db = tmp_path("mods.db");
    alloc_tracker at;
    fixture_copy("meta_full", "stage/meta_full.so");
    db_pack(db, tmp_path("stage"));
    alloc_tracker_init(&at);
    mh_config cfg = tracked_config(&at, str_fmt("sqlite:%s", db));
    mh_host *host = host_new_cfg(&cfg);
    mh_module *mod = import_ok(host, "meta_full");
    size_t loaded = at.outstanding;
    const mh_manifest *m = mh_module_manifest(mod);
    ASSERT_NOT_NULL(m);
    ASSERT_TRUE(at.outstanding > loaded); /* parsed now, not kept */
    ASSERT_EQ_STR(mh_manifest_source(m), "elf-note");
    ASSERT_EQ_STR(mh_manifest_version(m), "2.3.4");
    ASSERT_EQ_STR(mh_module_version(mod), "2.3.4");
    mh_host_free(host);
    alloc_tracker_destroy(&at);
}

TEST(note_rewritten_in_place_after_load_gives_no_manifest)
{
    /* what is mapped no longer says what was checked: no manifest, and a
     * warning naming the module and its file */
    log_capture lc;
    host_opts o = {.log = &lc};
    const char *so = tmp_path("E/meta_full.so");
    int st;

    fixture_copy("meta_full", "E/meta_full.so");
    log_capture_init(&lc);
    mh_host *host = host_new_opts(&o, tmp_path("E"));
    mh_module *mod = import_ok(host, "meta_full");
    /* same length, in place (not a new file): 2.3.4 -> 9.9.9 */
    sh_run(str_fmt("python3 -c 'import sys; f = open(sys.argv[1], \"r+b\"); "
                   "b = f.read(); i = b.index(b\"2.3.4\"); f.seek(i); "
                   "f.write(b\"9.9.9\")' %s", sh_quote(so)), &st);
    ASSERT_EQ_INT(st, 0);
    ASSERT_NULL(mh_module_manifest(mod));
    ASSERT_LOG(&lc, MH_LOG_WARN, "changed since the module was loaded");
    ASSERT_LOG(&lc, MH_LOG_WARN, so);
    mh_host_free(host);
    log_capture_free(&lc);
}

TEST(lua_module_version_from_sidecar)
{
    meta_lua_module("E/v", LUA_SRC, "{\"version\": \"3.2.1\"}");
    meta_lua_module("E/nov", LUA_SRC, "{\"description\": \"no version\"}");
    meta_lua_module("E/bare", LUA_SRC, NULL);
    mh_host *host = host_new_isolated(tmp_path("E"));

    ASSERT_EQ_STR(mh_module_version(import_ok(host, "v")), "3.2.1");
    mh_module *nov = import_ok(host, "nov");
    ASSERT_NULL(mh_module_version(nov));
    ASSERT_EQ_STR(mh_manifest_description(mh_module_manifest(nov)),
                  "no version");
    mh_module *bare = import_ok(host, "bare");
    ASSERT_NULL(mh_module_version(bare));
    ASSERT_NULL(mh_module_manifest(bare));
    mh_host_free(host);
}

/* ------------------------------------------------ version constraints */

static const struct {
    const char *version, *constraint;
    mh_status want;
} satisfies[] = {
    {"1.2", "", MH_OK},
    {"0.0.1", "", MH_OK},
    /* >= <= > < */
    {"1.2", ">=1.2", MH_OK},
    {"1.3", ">=1.2", MH_OK},
    {"1.1.9", ">=1.2", MH_ENOTFOUND},
    {"1.2", "<=1.2", MH_OK},
    {"1.2.0", "<=1.2", MH_OK},
    {"1.2.1", "<=1.2", MH_ENOTFOUND},
    {"1.2", ">1.2", MH_ENOTFOUND},
    {"1.2.0.1", ">1.2", MH_OK},
    {"1.1.99", "<1.2", MH_OK},
    {"1.2", "<1.2", MH_ENOTFOUND},
    /* == = != (missing numbers are 0) */
    {"1.2.0", "==1.2", MH_OK},
    {"1.2", "==1.2.0", MH_OK},
    {"1.2.1", "==1.2", MH_ENOTFOUND},
    {"1.4", "=1.4", MH_OK},
    {"1.5", "=1.4", MH_ENOTFOUND},
    {"1.3", "!=1.2", MH_OK},
    {"1.2", "!=1.2", MH_ENOTFOUND},
    {"1.2.0", "!=1.2", MH_ENOTFOUND},
    /* ~=1.4 is >=1.4, <2 */
    {"1.4", "~=1.4", MH_OK},
    {"1.9.9", "~=1.4", MH_OK},
    {"1.3.9", "~=1.4", MH_ENOTFOUND},
    {"2.0", "~=1.4", MH_ENOTFOUND},
    /* ~=1.4.2 is >=1.4.2, <1.5 */
    {"1.4.2", "~=1.4.2", MH_OK},
    {"1.4.10", "~=1.4.2", MH_OK},
    {"1.4.1", "~=1.4.2", MH_ENOTFOUND},
    {"1.5", "~=1.4.2", MH_ENOTFOUND},
    {"1.5.0", "~=1.4.2", MH_ENOTFOUND},
    /* bare VERSION is >= */
    {"1.2", "1.2", MH_OK},
    {"1.10", "1.2", MH_OK},
    {"1.1", "1.2", MH_ENOTFOUND},
    /* numbers compare as numbers */
    {"1.10", ">1.9", MH_OK},
    {"1.10", "<1.9", MH_ENOTFOUND},
    {"1.9", "<1.10", MH_OK},
    {"10.0", ">9.99", MH_OK},
    /* a tail sorts before the plain release */
    {"1.0rc1", "<1.0", MH_OK},
    {"1.0rc1", ">=1.0", MH_ENOTFOUND},
    {"1.0", ">1.0rc1", MH_OK},
    {"1.0rc2", ">1.0rc1", MH_OK},
    {"1.0rc1", "==1.0rc1", MH_OK},
    {"1.0rc1", ">=0.9", MH_OK},
    /* several clauses, all must hold; spaces around them are fine */
    {"1.5", ">=1.2, <2", MH_OK},
    {"1.5", " >= 1.2 ,<2 ", MH_OK},
    {"2.0", ">=1.2, <2", MH_ENOTFOUND},
    {"1.1", ">=1.2, <2", MH_ENOTFOUND},
    {"1.3", ">=1.0, !=1.3, <2", MH_ENOTFOUND},
    {"1.4", ">=1.0, !=1.3, <2", MH_OK},
    {"1.4", "~=1.4, !=1.4.0", MH_ENOTFOUND},
    /* malformed */
    {"1.0", ">>1", MH_EINVAL},
    {"1.0", "=>1", MH_EINVAL},
    {"1.0", ">=", MH_EINVAL},
    {"1.0", "abc", MH_EINVAL},
    {"1.0", ">=x.1", MH_EINVAL},
    {"1.0", "~=1", MH_EINVAL},
    {"1.0", ">=1.0,", MH_EINVAL},
    {"1.0", ",>=1.0", MH_EINVAL},
    {"1.0", ">=1.0,,<2", MH_EINVAL},
    {"1.0", ">=1 <2", MH_EINVAL},
    {"1.0", ">= 1.0 2.0", MH_EINVAL},
    /* two clauses without their comma (it held for 1.5: "<1.2" was taken
     * for a tail of 1.0), a tab, a comma and a space at the end */
    {"1.5", ">=1.0<1.2", MH_EINVAL},
    {"1.1", ">=1.0<1.2", MH_EINVAL},
    {"1.5", ">=1.0\t<1.2", MH_EINVAL},
    {"1.5", ">=1.0!=1.1", MH_EINVAL},
    {"1.0", ">=1.0, ", MH_EINVAL},
    {"1.0-beta+b7", "==1.0-beta+b7", MH_OK},
    {"1.0~rc1", "==1.0~rc1", MH_OK},
    {"1.0.post1", "==1.0.post1", MH_OK},
    {"1.5", ">=1.0||2.0", MH_EINVAL},
    /* numbers up to 2^64 - 1 (the last six were refused); past it, a
     * clause is malformed, and a version is no version */
    {"18446744073709551615", "==18446744073709551615", MH_OK},
    {"18446744073709551614", "<18446744073709551615", MH_OK},
    {"1.18446744073709551615", "~=1.18446744073709551615", MH_OK},
    {"2.0", "~=1.18446744073709551615", MH_ENOTFOUND},
    {"18446744073709551615.3", "~=18446744073709551615.2", MH_OK},
    {"18446744073709551615.1", "~=18446744073709551615.2", MH_ENOTFOUND},
    {"1.0", ">=18446744073709551616", MH_EINVAL},
    /* malformed even where an earlier clause already fails */
    {"0.1", ">=1.0, >>2", MH_EINVAL},
};

TEST(version_satisfies_table)
{
    for (size_t i = 0; i < sizeof satisfies / sizeof *satisfies; i++) {
        mh_status got = mh_version_satisfies(satisfies[i].version,
                                             satisfies[i].constraint, ERR);
        if (got != satisfies[i].want)
            FAIL("mh_version_satisfies(\"%s\", \"%s\"): got %s, expected %s"
                 " (message \"%s\")", satisfies[i].version,
                 satisfies[i].constraint, mh_status_name(got),
                 mh_status_name(satisfies[i].want), ERR_MSG());
        if (got == MH_OK) {
            ASSERT_NULL(test_err_last());
            continue;
        }
        ASSERT_EQ_INT(ERR_CODE(), got);
        ASSERT_CONTAINS(ERR_MSG(), satisfies[i].constraint);
        if (got == MH_ENOTFOUND)
            ASSERT_CONTAINS(ERR_MSG(), satisfies[i].version);
    }
    /* it said the version did not start with a number */
    ASSERT_STATUS(mh_version_satisfies("1.0", ">=1.99999999999999999999",
                                       ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "a version number is larger than "
                               "18446744073709551615");
    ASSERT_STATUS(mh_version_satisfies(NULL, ">=1", ERR), MH_EINVAL);
    ASSERT_STATUS(mh_version_satisfies("1.0", NULL, ERR), MH_EINVAL);
    ASSERT_STATUS(mh_version_satisfies("1.0", ">=1", NULL), MH_OK);
    ASSERT_STATUS(mh_version_satisfies("1.0", ">=2", NULL), MH_ENOTFOUND);
}

TEST(versions_with_many_numbers_compare_as_numbers)
{
    /* "Versions compare as dotted numbers": a ninth number is a number,
     * not text after the numbers. */
    ASSERT_STATUS(mh_version_satisfies("1.2.3.4.5.6.7.8", ">=1.2.3.4.5.6.7.8",
                                       ERR), MH_OK);
    ASSERT_STATUS(mh_version_satisfies("1.2.3.4.5.6.7.8.9",
                                       ">1.2.3.4.5.6.7.8", ERR), MH_OK);
    ASSERT_STATUS(mh_version_satisfies("1.2.3.4.5.6.7.8",
                                       "<1.2.3.4.5.6.7.8.9", ERR), MH_OK);
    ASSERT_STATUS(mh_version_satisfies("1.1.1.1.1.1.1.1.10",
                                       ">1.1.1.1.1.1.1.1.9", ERR), MH_OK);
    /* 32 numbers at most; the 33rd is named as such, not as a version
     * that does not start with a number. */
    char v32[80] = "1", c33[80] = ">=1";
    for (int i = 1; i < 32; i++)
        strcat(v32, ".1");
    for (int i = 1; i < 33; i++)
        strcat(c33, ".1");
    ASSERT_STATUS(mh_version_satisfies(v32, str_fmt(">=%s", v32), ERR),
                  MH_OK);
    ASSERT_STATUS(mh_version_satisfies("1.0", c33, ERR), MH_EINVAL);
    ASSERT_CONTAINS(ERR_MSG(), "a version has more than 32 numbers");
}

TEST(module_version_falls_back_to_descriptor)
{
    mkdir_p(tmp_path("E"));
    meta_tool("objcopy", str_fmt("-R .note.modhost %s %s",
                                 sh_quote(fixture_path("meta_full")),
                                 sh_quote(tmp_path("E/meta_full.so"))));
    file_write(tmp_path("E/meta_full.json"), "{\"description\": \"d\"}");
    mh_host *host = host_new_isolated(tmp_path("E"));
    mh_module *mod = import_ok(host, "meta_full");

    ASSERT_EQ_STR(mh_manifest_description(mh_module_manifest(mod)), "d");
    ASSERT_NULL(mh_manifest_version(mh_module_manifest(mod)));
    ASSERT_EQ_STR(mh_module_version(mod), "0.0.1"); /* the descriptor's */
    mh_host_free(host);
}
