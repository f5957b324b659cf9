/*
 * test_tar.c -- the finder plugin finders.tar (plugins/finders/tar.c):
 * modules inside tar, tar.gz and zip archives, reached through a search
 * path entry "tar:/path" whose scheme no built-in hook claims, so the host
 * imports finders.tar from the plugin directory (which every host here has
 * on its path after the archive).
 *
 * The archives are real, written by python3's tarfile and zipfile modules
 * from the bundled plugins and the fixtures, so member names no archiver
 * would write ("../evil.so", "/abs.so") can be tested too.  Every case
 * checks where a module came from (finder "tar", origin "ARCHIVE!/member"),
 * so a module found by the directory finder instead cannot pass.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <modhost/finder.h>

#include "support/support.h"
#include "test.h"

#define PD MH_TEST_PLUGIN_DIR

/* ------------------------------------------------------------- helpers */

/* Writes ARCHIVE (tar, tar.gz/.tgz or zip, by its name) from specs:
 *   MEMBER=/abs/file    the file's bytes
 *   MEMBER=:text        the text
 *   MEMBER=->target     a symbolic link (tar only)
 *   DIR/                a directory member
 * Member names are written exactly as given. */
static const char ARCHIVE_PY[] =
    "import io, sys, tarfile, time, zipfile\n"
    "out, specs = sys.argv[1], sys.argv[2:]\n"
    "items = []\n"
    "for s in specs:\n"
    "    if '=' not in s:\n"
    "        items.append((s, 'dir', None)); continue\n"
    "    name, src = s.split('=', 1)\n"
    "    if src.startswith('->'):\n"
    "        items.append((name, 'link', src[2:]))\n"
    "    elif src.startswith(':'):\n"
    "        items.append((name, 'file', src[1:].encode()))\n"
    "    else:\n"
    "        items.append((name, 'file', open(src, 'rb').read()))\n"
    "now = time.time()\n"
    "if out.endswith('.zip'):\n"
    "    with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:\n"
    "        for name, kind, data in items:\n"
    "            zi = zipfile.ZipInfo(name, time.localtime(now)[:6])\n"
    "            zi.compress_type = zipfile.ZIP_DEFLATED\n"
    "            mode = 0o40755 if kind == 'dir' else 0o100644\n"
    "            zi.external_attr = mode << 16\n"
    "            z.writestr(zi, b'' if kind == 'dir' else data)\n"
    "else:\n"
    "    mode = 'w:gz' if out.endswith(('.gz', '.tgz')) else 'w'\n"
    "    with tarfile.open(out, mode, format=tarfile.PAX_FORMAT) as t:\n"
    "        for name, kind, data in items:\n"
    "            ti = tarfile.TarInfo(name)\n"
    "            ti.mtime = now\n"
    "            if kind == 'dir':\n"
    "                ti.type = tarfile.DIRTYPE; ti.mode = 0o755\n"
    "                t.addfile(ti)\n"
    "            elif kind == 'link':\n"
    "                ti.type = tarfile.SYMTYPE; ti.linkname = data\n"
    "                t.addfile(ti)\n"
    "            else:\n"
    "                ti.size = len(data); ti.mode = 0o644\n"
    "                t.addfile(ti, io.BytesIO(data))\n";

#define archive_make(path, ...) \
    archive_make_((path), (const char *const[]){__VA_ARGS__, NULL})

static const char *archive_make_(const char *path, const char *const *specs)
{
    const char *script = tmp_path("mkarchive.py");
    const char *cmd;
    int status;

    if (!file_exists(script))
        file_write(script, ARCHIVE_PY);
    cmd = str_fmt("python3 %s %s", sh_quote(script), sh_quote(path));
    for (size_t i = 0; specs[i]; i++)
        cmd = str_fmt("%s %s", cmd, sh_quote(specs[i]));
    sh_run(str_fmt("%s 2>&1", cmd), &status);
    if (status != 0)
        FAIL("could not write the archive %s (status %d): %s", path, status,
             sh_run(str_fmt("%s 2>&1", cmd), NULL));
    return path;
}

/* Run a Python script (its text) with arg, to write an archive no spec
 * above can describe; fails the case if it fails. */
static void run_python(const char *name, const char *script, const char *arg)
{
    const char *path = tmp_path("%s", name);
    int status;
    file_write(path, script);
    const char *out = sh_run(str_fmt("python3 %s %s 2>&1", sh_quote(path),
                                     sh_quote(arg)), &status);
    if (status != 0)
        FAIL("%s failed (status %d): %s", name, status, out);
}

/* "MEMBER=PD/REL": a bundled plugin as an archive member. */
static const char *plugin_member(const char *member, const char *rel)
{
    return str_fmt("%s=%s/%s", member, PD, rel);
}

/* "MEMBER=FIXTURE_DIR/NAME.so". */
static const char *fixture_member(const char *member, const char *name)
{
    return str_fmt("%s=%s", member, fixture_path(name));
}

static const char *tar_entry(const char *archive)
{
    return str_fmt("tar:%s", archive);
}

/* A host whose path is the given archives' tar: entries, then the plugin
 * directory (where finders.tar is). */
static mh_host *tar_host(const host_opts *o, const char *archive)
{
    host_opts none = {0};
    return host_new_opts(o ? o : &none, tar_entry(archive), PD);
}

/* The module must have come from the archive, through the tar finder. */
static void assert_from(mh_module *mod, const char *archive,
                        const char *member)
{
    ASSERT_EQ_STR(mh_module_finder(mod), "tar");
    ASSERT_EQ_STR(mh_module_origin(mod), str_fmt("%s!/%s", archive, member));
}

static mh_path_entry_info entry_info(mh_host *h, size_t i)
{
    mh_path_entry_info info = {.size = sizeof info};
    if (mh_host_path_entry_info(h, i, &info) != MH_OK)
        FAIL("mh_host_path_entry_info(%zu) failed", i);
    return info;
}

static const char *hello_greeting(mh_module *mod)
{
    const char *(*greeting)(void) =
        (const char *(*)(void))symbol_ok(mod, "greeting");
    return greeting();
}

/* ------------------------------------------------------ native modules */

TEST(native_from_tar)
{
    const char *ar = archive_make(tmp_path("mods.tar"),
                                  plugin_member("hello.so", "hello.so"));
    mh_host *h = tar_host(NULL, ar);
    mh_module *mod = import_ok(h, "hello");
    int (*main_fn)(int, char **);
    char *argv[] = {(char *)"hello", NULL};
    mh_module *plugin;

    assert_from(mod, ar, "hello.so");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_NATIVE);
    ASSERT_EQ_STR(hello_greeting(mod), "hello");
    main_fn = (int (*)(int, char **))symbol_ok(mod, "main");
    ASSERT_EQ_INT(main_fn(1, argv), 0);
    /* The entry went to the plugin, imported from the plugin directory. */
    ASSERT_EQ_STR(entry_info(h, 0).finder, "tar");
    plugin = mh_host_module(h, "finders.tar");
    ASSERT_NOT_NULL(plugin);
    ASSERT_EQ_STR(mh_module_origin(plugin), PD "/finders/tar.so");
    ASSERT_EQ_STR(mh_module_finder(plugin), "fs");
    mh_host_free(h);
}

TEST(native_from_zip)
{
    const char *ar = archive_make(tmp_path("mods.zip"),
                                  plugin_member("hello.so", "hello.so"),
                                  "codecs/",
                                  plugin_member("codecs/rot13.so",
                                                "codecs/rot13.so"));
    mh_host *h = tar_host(NULL, ar);
    mh_module *hello = import_ok(h, "hello");
    mh_module *rot = import_ok(h, "codecs.rot13");
    void (*encode)(const char *, char *, size_t);
    char buf[32];

    assert_from(hello, ar, "hello.so");
    ASSERT_EQ_STR(hello_greeting(hello), "hello");
    assert_from(rot, ar, "codecs/rot13.so");
    encode = (void (*)(const char *, char *, size_t))symbol_ok(rot, "encode");
    encode("Hello", buf, sizeof buf);
    ASSERT_EQ_STR(buf, "Uryyb");
    mh_host_free(h);
}

TEST(native_from_tar_gz)
{
    const char *ar = archive_make(tmp_path("mods.tar.gz"),
                                  plugin_member("./hello.so", "hello.so"));
    mh_host *h = tar_host(NULL, ar);
    mh_module *mod = import_ok(h, "hello");

    /* "./hello.so" is the module hello; its origin drops the "./" */
    assert_from(mod, ar, "hello.so");
    ASSERT_EQ_STR(hello_greeting(mod), "hello");
    mh_host_free(h);
}

/* ------------------------------------------------------------ Lua */

TEST(lua_module)
{
    const char *ar = archive_make(tmp_path("lua.tar"),
                                  plugin_member("textutil.lua",
                                                "textutil.lua"));
    mh_host *h = tar_host(NULL, ar);
    mh_module *mod = import_ok(h, "textutil");

    assert_from(mod, ar, "textutil.lua");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_LUA);
    ASSERT_EQ_STR(call_ok(mod, "upper", "[\"from tar\"]"), "\"FROM TAR\"");
    ASSERT_EQ_STR(call_ok(mod, "words", "[\"a b c\"]"),
                  "[\"a\",\"b\",\"c\"]");
    mh_host_free(h);
}

TEST(luac_member_is_bytecode)
{
    /* A .luac member is flagged as a binary chunk: refused unless the host
     * trusts bytecode, loaded when it does. */
    const char *chunk = tmp_path("bc.luac");
    int status;
    sh_run(str_fmt("lua5.4 -e %s > %s",
                   sh_quote("io.write(string.dump(load("
                            "'return {v = function() return 5 end}')))"),
                   sh_quote(chunk)), &status);
    ASSERT_EQ_INT(status, 0);
    const char *ar = archive_make(tmp_path("bc.tar"),
                                  str_fmt("bc.luac=%s", chunk));
    mh_host *h = tar_host(NULL, ar);
    mh_module *mod;

    ASSERT_NE_INT(mh_import(h, "bc", &mod, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), "bc.luac");
    mh_host_free(h);

    host_opts o = {.flags = MH_CONFIG_TRUST_LUAC};
    h = tar_host(&o, ar);
    mod = import_ok(h, "bc");
    assert_from(mod, ar, "bc.luac");
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "5");
    mh_host_free(h);
}

/* ------------------------------------------ packages and resolution */

TEST(nested_package_and_namespace)
{
    const char *ar = archive_make(tmp_path("pkg.tar"), "a/", "a/b/",
                                  fixture_member("a/b/c.so", "counter"),
                                  fixture_member("./x/y.so", "answer7"));
    mh_host *h = tar_host(NULL, ar);
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod = import_ok(h, "a.b.c");

    assert_from(mod, ar, "a/b/c.so");
    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    /* a.b has members under it: a namespace portion from the archive */
    ASSERT_STATUS(mh_find(h, "a.b", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_NAMESPACE);
    ASSERT_EQ_STR(info.finder, "tar");
    ASSERT_EQ_INT(info.entry_index, 0);
    mod = import_ok(h, "a.b");
    ASSERT_EQ_INT(mh_module_kind_of(mod), MH_KIND_NAMESPACE);
    /* x has no directory member, only x/y.so (written "./x/y.so") */
    ASSERT_STATUS(mh_find(h, "x", &info, ERR), MH_OK);
    ASSERT_EQ_INT(info.kind, MH_KIND_NAMESPACE);
    mod = import_ok(h, "x.y");
    assert_from(mod, ar, "x/y.so");
    ASSERT_EQ_INT(call_int(mod, "value"), 7);
    mh_host_free(h);
}

TEST(native_before_lua_before_bytecode)
{
    const char *ar = archive_make(tmp_path("order.tar"),
                                  fixture_member("m.so", "counter"),
                                  "m.lua=:return {v = function() "
                                  "return 1 end}",
                                  "n.lua=:return {v = function() "
                                  "return 2 end}",
                                  "n.luac=:not even bytecode");
    mh_host *h = tar_host(NULL, ar);
    mh_module *m = import_ok(h, "m");
    mh_module *n = import_ok(h, "n");

    assert_from(m, ar, "m.so");
    ASSERT_EQ_INT(mh_module_kind_of(m), MH_KIND_NATIVE);
    assert_from(n, ar, "n.lua");
    ASSERT_EQ_STR(call_ok(n, "v", NULL), "2");
    mh_host_free(h);
}

/* ------------------------------------------------------------ listing */

typedef struct listed {
    size_t n;
    const char *names[64];
    const char *origins[64];
    const char *finders[64];
    mh_module_kind kinds[64];
} listed;

static int collect(void *ud, const mh_spec_info *info)
{
    listed *l = ud;
    if (l->n < 64) {
        l->names[l->n] = str_fmt("%s", info->name);
        l->origins[l->n] = str_fmt("%s", info->origin);
        l->finders[l->n] = str_fmt("%s", info->finder);
        l->kinds[l->n] = info->kind;
        l->n++;
    }
    return 0;
}

static long listed_at(const listed *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->names[i], name) == 0)
            return (long)i;
    return -1;
}

TEST(list_shows_archive_modules)
{
    const char *ar = archive_make(tmp_path("list.zip"),
                                  plugin_member("hello.so", "hello.so"),
                                  plugin_member("textutil.lua",
                                                "textutil.lua"),
                                  fixture_member("a/b/c.so", "counter"),
                                  "a/b/c.lua=:return {}",
                                  "notes.txt=:not a module",
                                  "bad-name.lua=:return {}");
    mh_host *h = tar_host(NULL, ar);
    listed l = {0};
    long i;

    ASSERT_STATUS(mh_list(h, collect, &l, ERR), MH_OK);
    /* hello is in the plugin directory too: listed once, from the archive */
    ASSERT_TRUE((i = listed_at(&l, "hello")) >= 0);
    ASSERT_EQ_STR(l.finders[i], "tar");
    ASSERT_EQ_STR(l.origins[i], str_fmt("%s!/hello.so", ar));
    ASSERT_EQ_INT(l.kinds[i], MH_KIND_NATIVE);
    ASSERT_TRUE((i = listed_at(&l, "textutil")) >= 0);
    ASSERT_EQ_STR(l.finders[i], "tar");
    ASSERT_EQ_INT(l.kinds[i], MH_KIND_LUA);
    /* a.b.c once, as import resolves it: the .so */
    ASSERT_TRUE((i = listed_at(&l, "a.b.c")) >= 0);
    ASSERT_EQ_STR(l.finders[i], "tar");
    ASSERT_EQ_STR(l.origins[i], str_fmt("%s!/a/b/c.so", ar));
    size_t abc = 0;
    for (size_t k = 0; k < l.n; k++)
        abc += strcmp(l.names[k], "a.b.c") == 0;
    ASSERT_EQ_INT(abc, 1);
    /* the plugin directory's own modules are still listed, by fs */
    ASSERT_TRUE((i = listed_at(&l, "codecs.rot13")) >= 0);
    ASSERT_EQ_STR(l.finders[i], "fs");
    for (size_t k = 0; k < l.n; k++)
        ASSERT_NOT_CONTAINS(l.origins[k], "notes");
    mh_host_free(h);
}

/* ---------------------------------------------------------- failures */

TEST(missing_module_names_the_archive)
{
    const char *ar = archive_make(tmp_path("few.tar"),
                                  fixture_member("here.so", "counter"));
    mh_host *h = tar_host(NULL, ar);
    mh_module *mod;

    ASSERT_STATUS(mh_import(h, "not_here", &mod, ERR), MH_ENOTFOUND);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), ar);
    ASSERT_CONTAINS(ERR_MSG(), "not_here.so");
    ASSERT_CONTAINS(ERR_MSG(), "not_here.lua");
    ASSERT_STATUS(mh_import(h, "pkg.not_here", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "pkg/not_here.so");
    import_ok(h, "here");
    mh_host_free(h);
}

/* An entry that failed to open: no finder, an error that names the
 * archive and says why; the other entries still serve. */
static void assert_unusable(const char *ar, const char *why)
{
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    mh_host *h = tar_host(&o, ar);
    mh_module *mod;

    ASSERT_STATUS(mh_import(h, "only_in_archive", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), ar);
    ASSERT_CONTAINS(ERR_MSG(), why);
    mh_path_entry_info info = entry_info(h, 0);
    ASSERT_CONTAINS(info.error, ar);
    ASSERT_CONTAINS(info.error, why);
    ASSERT_LOG(&lc, MH_LOG_WARN, why);
    /* hello is in the plugin directory, the next entry */
    mod = import_ok(h, "hello");
    ASSERT_EQ_STR(mh_module_finder(mod), "fs");
    ASSERT_EQ_STR(mh_module_origin(mod), PD "/hello.so");
    mh_host_free(h);
    log_capture_free(&lc);
}

TEST(missing_archive_is_unusable)
{
    assert_unusable(tmp_path("no-such.tar"), "no such archive");
}

TEST(random_bytes_are_not_an_archive)
{
    const char *ar = tmp_path("random.tar");
    file_write(ar, "this is not an archive, only some text that is long "
               "enough for the format detectors to look at it properly\n");
    file_scribble(ar, 8, 1234);
    assert_unusable(ar, "not a tar or zip archive");
}

TEST(truncated_archive_is_damaged)
{
    const char *ar = archive_make(tmp_path("cut.tar"),
                                  fixture_member("first.so", "counter"),
                                  plugin_member("only_in_archive.so",
                                                "hello.so"));
    file_truncate_to(ar, (size_t)file_size(ar) - 12000);
    assert_unusable(ar, "damaged archive");
}

TEST(truncated_tar_gz_is_damaged)
{
    const char *ar = archive_make(tmp_path("cut.tar.gz"),
                                  plugin_member("only_in_archive.so",
                                                "hello.so"));
    file_truncate_to(ar, (size_t)file_size(ar) / 2);
    assert_unusable(ar, "gzip");
}

TEST(truncated_tar_gz_says_its_gzip_stream_is_truncated)
{
    /* Cut inside the first header: the open fails.  It said "not a tar or
     * zip archive" of a .tar.gz (from a sweep of the tar finder), then
     * "gzip-compressed, but no tar archive could be read from it:
     * truncated gzip input", which blames the tar (from a review). */
    const char *ar = archive_make(tmp_path("short.tar.gz"),
                                  plugin_member("only_in_archive.so",
                                                "hello.so"));
    file_truncate_to(ar, 40);
    assert_unusable(ar, "damaged gzip stream: truncated");
}

TEST(small_tar_gz_without_its_trailer_says_so)
{
    /* The whole tar is in the first read, and libarchive fails at the
     * first header for want of the trailer, with no message of its own:
     * "gzip-compressed, but no tar archive could be read from it: unknown
     * libarchive error" (from a review of the tar finder). */
    const char *ar = archive_make(tmp_path("small.tgz"),
                                  "only_in_archive.lua=:return {}");
    file_truncate_to(ar, (size_t)file_size(ar) - 8);
    assert_unusable(ar, "damaged gzip stream: truncated");
}

TEST(sound_gzip_of_no_archive_says_so)
{
    /* The stream is whole: it is what is inside that is no archive. */
    const char *ar = tmp_path("text.gz");
    run_python("gztext.py",
               "import gzip, sys\n"
               "open(sys.argv[1], 'wb').write(gzip.compress(b'not a tar, "
               "only text that is long enough to look at ' * 40))\n",
               ar);
    assert_unusable(ar, "gzip-compressed, but no tar archive could be read "
                        "from it: Unrecognized archive format");
}

TEST(tar_gz_with_a_bad_crc_is_damaged)
{
    /* libarchive never checks a gzip trailer: a .tar.gz whose data no
     * longer matches its CRC-32 was served, flipped bytes and all (from a
     * sweep of the tar finder: corrupted code reached dlopen). */
    const char *ar = archive_make(tmp_path("crc.tar.gz"),
                                  plugin_member("only_in_archive.so",
                                                "hello.so"));
    size_t len;
    unsigned char *b = file_bytes(ar, &len);
    b[len - 8] ^= 0xff; /* the CRC-32 of the trailer */
    file_write_bytes(ar, b, len);
    free(b);
    assert_unusable(ar, "damaged gzip stream: incorrect data check");
}

/* Writes ARCHIVE (argv[1]): a tar of only_in_archive.lua, whose text comes
 * first and incompressible bytes after it (so every compressor stores its
 * "hello" as it is), and a megabyte of zeros after the end-of-archive
 * blocks, as a tape-blocked or padded archive has -- compressed with
 * argv[2] (gz, xz, zst, bz2), then damaged as argv[3] says: none; flip
 * ("hello" becomes "jello" in the compressed bytes); cut (flip, and the
 * last 8 bytes dropped: a gzip trailer); check (a byte of the stream's
 * own check at its end flipped). */
static const char STREAM_PY[] =
    "import bz2, gzip, io, lzma, random, subprocess, sys, tarfile\n"
    "out, kind, damage = sys.argv[1:4]\n"
    "noise = random.Random(7).randbytes(120000).replace(b']', b'x')\n"
    "data = (b'return {greet = function() return \"hello\" end}\\n--[['\n"
    "        + noise + b']]\\n')\n"
    "buf = io.BytesIO()\n"
    "with tarfile.open(fileobj=buf, mode='w', "
    "format=tarfile.USTAR_FORMAT) as t:\n"
    "    ti = tarfile.TarInfo('only_in_archive.lua')\n"
    "    ti.size = len(data); ti.mode = 0o644\n"
    "    t.addfile(ti, io.BytesIO(data))\n"
    "raw = buf.getvalue() + bytes(1 << 20)\n"
    "if kind == 'gz':\n"
    "    z = gzip.compress(raw, compresslevel=0, mtime=0)\n"
    "elif kind == 'xz':\n"
    "    z = lzma.compress(raw, check=lzma.CHECK_CRC64)\n"
    "elif kind == 'bz2':\n"
    "    z = bz2.compress(raw)\n"
    "else:\n"
    "    z = subprocess.run(['zstd', '-q', '--check', '-c'], input=raw,\n"
    "                       capture_output=True, check=True).stdout\n"
    "z = bytearray(z)\n"
    "if damage in ('flip', 'cut'):\n"
    "    i = z.find(b'\"hello\"')\n"
    "    assert i >= 0 and z.find(b'\"hello\"', i + 1) < 0, 'not literal'\n"
    "    z[i + 1] = ord('j')\n"
    "if damage == 'cut':\n"
    "    z = z[:-8]\n"
    "if damage == 'check':\n"
    "    z[-2] ^= 0xff\n"
    "open(out, 'wb').write(z)\n";

static const char *stream_make(const char *name, const char *kind,
                               const char *damage)
{
    const char *ar = tmp_path("%s", name);
    if (strcmp(kind, "zst") == 0) {
        int status;
        sh_run("command -v zstd", &status);
        if (status != 0)
            SKIP("no zstd program to write a .tar.zst with");
    }
    const char *py = tmp_path("stream.py");
    int status;
    file_write(py, STREAM_PY);
    const char *out = sh_run(str_fmt("python3 %s %s %s %s 2>&1",
                                     sh_quote(py), sh_quote(ar), kind,
                                     damage), &status);
    if (status != 0)
        FAIL("stream.py %s %s failed (status %d): %s", kind, damage, status,
             out);
    return ar;
}

TEST(compressed_archives_are_served)
{
    /* The archives the damaged ones below are made from: served whole,
     * checks and padding and all. */
    static const char *const kinds[] = {"gz", "xz", "bz2", "zst"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const char *ar = stream_make(str_fmt("sound.tar.%s", kinds[i]),
                                     kinds[i], "none");
        mh_host *h = tar_host(NULL, ar);
        mh_module *mod = import_ok(h, "only_in_archive");
        assert_from(mod, ar, "only_in_archive.lua");
        ASSERT_EQ_STR(call_ok(mod, "greet", NULL), "\"hello\"");
        mh_host_free(h);
    }
}

TEST(tar_gz_cut_in_its_trailer_is_damaged)
{
    /* A byte flipped, and the trailer (the CRC-32 that would catch it)
     * cut off: zlib's gzread said 0, "the end", and the check passed --
     * "jello" was served (from a review of the tar finder). */
    assert_unusable(stream_make("cut.tgz", "gz", "cut"),
                    "damaged gzip stream: truncated");
}

TEST(tar_xz_with_a_flipped_byte_is_damaged)
{
    /* The tar reader stops at the end-of-archive blocks; the xz block
     * check after the padding was never read, and "jello" was served
     * (from a review of the tar finder). */
    assert_unusable(stream_make("flip.tar.xz", "xz", "flip"),
                    "damaged xz stream");
}

TEST(tar_zst_with_a_flipped_byte_is_damaged)
{
    assert_unusable(stream_make("flip.tar.zst", "zst", "flip"),
                    "damaged zstd stream");
}

TEST(tar_bz2_with_a_bad_stream_check_is_damaged)
{
    /* bzip2 data cannot be flipped to say something else; its stream
     * check, at the very end, went unread all the same. */
    assert_unusable(stream_make("check.tar.bz2", "bz2", "check"),
                    "damaged bzip2 stream");
}

TEST(damaged_header_is_not_skipped)
{
    /* Three small members, the second's header checksum broken:
     * libarchive says RETRY (a damaged header) and finds the third
     * header after it, and the index took RETRY for a member without a
     * name -- the others were served, the damaged one a silent miss
     * (from a sweep of the tar finder). */
    const char *ar = tmp_path("hdr.tar");
    run_python("hdr.py",
               "import io, sys, tarfile\n"
               "with tarfile.open(sys.argv[1], 'w', "
               "format=tarfile.USTAR_FORMAT) as t:\n"
               "    for n in ('a', 'only_in_archive', 'c'):\n"
               "        d = b'return {}'\n"
               "        ti = tarfile.TarInfo(n + '.lua'); ti.size = len(d)\n"
               "        t.addfile(ti, io.BytesIO(d))\n"
               "b = bytearray(open(sys.argv[1], 'rb').read())\n"
               "b[1024 + 148:1024 + 156] = b'0000000\\0'\n"
               "open(sys.argv[1], 'wb').write(b)\n",
               ar);
    assert_unusable(ar, "damaged archive after member 1 ('a.lua')");
}

TEST(member_names_cannot_forge_lines_of_a_message)
{
    /* Member names went into messages as they were: a member named
     * "x\n  /opt/trusted/modules: found t.lua" put a line of the
     * archive's choosing into the "not found" list and the log (from a
     * review of the tar finder).  The damaged header after it and the
     * unsafe name before it are each named, escaped, on one line. */
    const char *ar = tmp_path("forge.tar");
    run_python("forge.py",
               "import io, sys, tarfile\n"
               "with tarfile.open(sys.argv[1], 'w', "
               "format=tarfile.USTAR_FORMAT) as t:\n"
               "    for n in ('/abs\\n  forged: found t.lua',\n"
               "              'x\\n  /opt/trusted/modules: found t.lua',\n"
               "              'only_in_archive.lua', 'c.lua'):\n"
               "        d = b'return {}'\n"
               "        ti = tarfile.TarInfo(n); ti.size = len(d)\n"
               "        t.addfile(ti, io.BytesIO(d))\n"
               "b = bytearray(open(sys.argv[1], 'rb').read())\n"
               "b[2048 + 148:2048 + 156] = b'0000000\\0'\n"
               "open(sys.argv[1], 'wb').write(b)\n",
               ar);
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    mh_host *h = tar_host(&o, ar);
    mh_module *mod;

    ASSERT_STATUS(mh_import(h, "only_in_archive", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "damaged archive after member 2 ('x\\n  "
                               "/opt/trusted/modules: found t.lua')");
    ASSERT_NOT_CONTAINS(ERR_MSG(), "\n  /opt/trusted");
    mh_path_entry_info info = entry_info(h, 0);
    ASSERT_CONTAINS(info.error, "'x\\n  /opt/trusted/modules: found t.lua'");
    ASSERT_NOT_CONTAINS(info.error, "\n");
    ASSERT_LOG(&lc, MH_LOG_WARN, "member '/abs\\n  forged: found t.lua' is "
                                 "never served");
    ASSERT_LOG(&lc, MH_LOG_WARN, "('x\\n  /opt/trusted/modules: found "
                                 "t.lua')");
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "\n  forged"), 0);
    ASSERT_EQ_INT(log_capture_count(&lc, -1, "\n  /opt/trusted"), 0);
    mh_host_free(h);
    log_capture_free(&lc);
}

TEST(fifo_is_refused_at_once)
{
    /* Opening a FIFO for reading waits for a writer: the first find
     * hung for ever, and with it every import after it (from a sweep of
     * the tar finder). */
    const char *fifo = tmp_path("pipe.tar");
    ASSERT_EQ_INT(mkfifo(fifo, 0600), 0);
    assert_unusable(fifo, "not a regular file");
}

TEST(archive_others_may_write_is_refused)
{
    /* The archive holds code: the host's file rules hold for it as for
     * a module file or a module database (from a sweep of the tar
     * finder: a world-writable archive was served). */
    const char *ar = archive_make(tmp_path("open.tar"),
                                  plugin_member("only_in_archive.so",
                                                "hello.so"));
    ASSERT_EQ_INT(chmod(ar, 0666), 0);
    assert_unusable(ar, "writable by group or others");
    /* MH_CONFIG_INSECURE_FILES: the application's choice, served. */
    host_opts o = {.flags = MH_CONFIG_INSECURE_FILES};
    mh_host *h = tar_host(&o, ar);
    assert_from(import_ok(h, "only_in_archive"), ar, "only_in_archive.so");
    mh_host_free(h);
}

TEST(deep_packages_index_each_directory_once)
{
    /* 10,000 modules 60 packages deep: every member added each prefix
     * of its path again (60 names, 7 KB a member), and such an archive
     * hit the index's limit of 64 MB of names long before its limit of
     * members (from a sweep of the tar finder).  Grouped members add
     * each directory once now. */
    const char *ar = tmp_path("deep.tar");
    run_python("deep.py",
               "import io, sys, tarfile\n"
               "d = '/'.join('p%d' % i for i in range(60))\n"
               "with tarfile.open(sys.argv[1], 'w') as t:\n"
               "    for i in range(10000):\n"
               "        ti = tarfile.TarInfo('%s/m%d.lua' % (d, i))\n"
               "        data = b'return {}'\n"
               "        ti.size = len(data)\n"
               "        t.addfile(ti, io.BytesIO(data))\n",
               ar);
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.flags = MH_CONFIG_VERBOSE, .log = &lc};
    mh_host *h = tar_host(&o, ar);
    const char *deep = "p0";
    for (int i = 1; i < 60; i++)
        deep = str_fmt("%s.p%d", deep, i);
    mh_module *mod = import_ok(h, str_fmt("%s.m9999", deep));
    ASSERT_EQ_STR(mh_module_finder(mod), "tar");
    ASSERT_LOG(&lc, MH_LOG_TRACE, "10000 module files, 60 package "
                                  "directories");
    mh_host_free(h);
    log_capture_free(&lc);
}

TEST(huge_sidecar_is_not_inflated)
{
    /* A small zip whose m.json inflates to 64 MiB: it was read whole
     * (up to max_module_size) before the host refused it as over a
     * manifest's 256 KiB (from a sweep of the tar finder).  Reading stops
     * at that limit now. */
    const char *ar = tmp_path("side.zip");
    run_python("side.py",
               "import sys, zipfile\n"
               "with zipfile.ZipFile(sys.argv[1], 'w', "
               "zipfile.ZIP_DEFLATED) as z:\n"
               "    z.writestr('only_in_archive.lua', 'return {}')\n"
               "    z.writestr('only_in_archive.json', '{\"version\": "
               "\"1\", \"x\": \"' + 'a' * (64 << 20) + '\"}')\n",
               ar);
    mh_host *h = tar_host(NULL, ar);
    mh_manifest *m = NULL;
    ASSERT_TRUE(mh_metadata(h, "only_in_archive", &m, ERR) != MH_OK);
    ASSERT_NULL(m);
    ASSERT_CONTAINS(ERR_MSG(), "the limit of a manifest");
    ASSERT_CONTAINS(ERR_MSG(), "only_in_archive.json");
    mh_host_free(h);
}

TEST(damaged_member_fails_that_module_only)
{
    /* A zip's member list is its central directory, at the end: scribbling
     * over the first member's compressed bytes leaves the list readable
     * and the data broken (bad deflate stream or bad CRC). */
    const char *ar = archive_make(tmp_path("dmg.zip"),
                                  plugin_member("hello.so", "hello.so"),
                                  fixture_member("fine.so", "answer7"));
    unsigned char *bytes;
    size_t len;
    mh_host *h;
    mh_module *mod;

    bytes = file_bytes(ar, &len);
    for (size_t i = 200; i < 2200 && i < len; i++)
        bytes[i] ^= (unsigned char)(0x5a + i);
    file_write_bytes(ar, bytes, len);
    free(bytes);
    h = tar_host(NULL, ar);
    ASSERT_NE_INT(mh_import(h, "hello", &mod, ERR), MH_OK);
    ASSERT_CONTAINS(ERR_MSG(), ar);
    ASSERT_CONTAINS(ERR_MSG(), "hello.so");
    /* tar's words say where they come from: the host adds nothing */
    ASSERT_NOT_CONTAINS(ERR_MSG(), "(finder 'tar')");
    mod = import_ok(h, "fine");
    assert_from(mod, ar, "fine.so");
    ASSERT_EQ_INT(call_int(mod, "value"), 7);
    mh_host_free(h);
}

static void assert_never_served(const char *ar)
{
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    mh_host *h = tar_host(&o, ar);
    mh_spec_info info = {.size = sizeof info};
    listed l = {0};
    mh_module *mod;

    ASSERT_STATUS(mh_find(h, "evil", &info, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_find(h, "abs", &info, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_find(h, "sneaky", &info, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_import(h, "evil", &mod, ERR), MH_ENOTFOUND);
    ASSERT_STATUS(mh_list(h, collect, &l, ERR), MH_OK);
    ASSERT_EQ_INT(listed_at(&l, "evil"), -1);
    ASSERT_EQ_INT(listed_at(&l, "abs"), -1);
    ASSERT_EQ_INT(listed_at(&l, "sneaky"), -1);
    ASSERT_LOG(&lc, MH_LOG_WARN, "../evil.so");
    /* the archive's good member is served as usual */
    mod = import_ok(h, "safe");
    assert_from(mod, ar, "safe.so");
    mh_host_free(h);
    log_capture_free(&lc);
}

TEST(unsafe_member_names_never_served)
{
    const char *ar;

    tmp_mkdir("in");
    ar = archive_make(tmp_path("in/evil.tar"),
                      fixture_member("../evil.so", "counter"),
                      fixture_member("/abs.so", "counter"),
                      fixture_member("pkg/../sneaky.so", "counter"),
                      fixture_member("safe.so", "answer7"));
    assert_never_served(ar);
}

TEST(unsafe_zip_member_names_never_served)
{
    const char *ar;

    tmp_mkdir("in");
    ar = archive_make(tmp_path("in/evil.zip"),
                      fixture_member("../evil.so", "counter"),
                      fixture_member("/abs.so", "counter"),
                      fixture_member("pkg/../sneaky.so", "counter"),
                      fixture_member("safe.so", "answer7"));
    assert_never_served(ar);
}

TEST(links_and_bad_names_are_not_modules)
{
    const char *ar = archive_make(tmp_path("links.tar"),
                                  fixture_member("real.so", "counter"),
                                  "alias.so=->real.so",
                                  fixture_member("has-dash.so", "counter"),
                                  fixture_member("x.y.so", "counter"));
    mh_host *h = tar_host(NULL, ar);
    mh_module *mod;

    ASSERT_STATUS(mh_import(h, "alias", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "symbolic link");
    /* a member "x.y.so" is not the module x.y (that is x/y.so) */
    ASSERT_STATUS(mh_import(h, "x.y", &mod, ERR), MH_ENOTFOUND);
    mod = import_ok(h, "real");
    assert_from(mod, ar, "real.so");
    mh_host_free(h);
}

TEST(member_over_max_module_size)
{
    const char *ar = archive_make(tmp_path("big.tar"),
                                  plugin_member("hello.so", "hello.so"),
                                  "small.lua=:return {v = function() "
                                  "return 3 end}");
    long long size = file_size(PD "/hello.so");
    host_opts o = {.max_module_size = 4096};
    mh_host *h = tar_host(&o, ar);
    mh_module *mod;

    ASSERT_TRUE(size > 4096);
    ASSERT_NE_INT(mh_import(h, "hello", &mod, ERR), MH_OK);
    ASSERT_NULL(mod);
    ASSERT_CONTAINS(ERR_MSG(), ar);
    ASSERT_CONTAINS(ERR_MSG(), "hello.so");
    ASSERT_CONTAINS(ERR_MSG(), "max_module_size");
    ASSERT_CONTAINS(ERR_MSG(), str_fmt("%lld", size));
    ASSERT_CONTAINS(ERR_MSG(), "4096");
    /* small members still load */
    mod = import_ok(h, "small");
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "3");
    mh_host_free(h);
}

/* --------------------------------------------------- archive changes */

/* Write a new archive beside path and rename it over path: a new inode,
 * as any careful updater does. */
#define archive_replace(path, ...)                                        \
    do {                                                                  \
        const char *tmp_ = archive_make(str_fmt("%s.new%s", (path),       \
            strstr((path), ".zip") ? ".zip" : ".tar"), __VA_ARGS__);      \
        if (rename(tmp_, (path)) != 0)                                    \
            FAIL("rename %s -> %s failed", tmp_, (path));                 \
    } while (0)

TEST(replaced_archive_is_reread)
{
    const char *ar = archive_make(tmp_path("live.tar"),
                                  fixture_member("one.so", "counter"));
    mh_host *h = tar_host(NULL, ar);
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod = import_ok(h, "one");

    ASSERT_EQ_INT(call_int(mod, "value"), 42);
    ASSERT_STATUS(mh_find(h, "two", &info, ERR), MH_ENOTFOUND);
    archive_replace(ar, fixture_member("two.so", "answer7"));
    /* no invalidation: the archive's stat changed, its index is re-read */
    mod = import_ok(h, "two");
    assert_from(mod, ar, "two.so");
    ASSERT_EQ_INT(call_int(mod, "value"), 7);
    /* one is gone from the archive (it stays loaded: no reloading) */
    ASSERT_STATUS(mh_find(h, "one", &info, ERR), MH_ENOTFOUND);
    ASSERT_TRUE(mh_host_module(h, "one") != NULL);
    mh_host_free(h);
}

TEST(rewritten_in_place_and_invalidated)
{
    const char *ar = archive_make(tmp_path("same.zip"),
                                  "one.lua=:return {v = function() "
                                  "return 1 end}");
    mh_host *h = tar_host(NULL, ar);
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod = import_ok(h, "one");

    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "1");
    /* the same inode rewritten (size and mtime change) */
    archive_make(tmp_path("other.zip"),
                 "one.lua=:return {v = function() return 1 end}",
                 "three.lua=:return {v = function() return 3 end}");
    file_copy(tmp_path("other.zip"), ar);
    mh_invalidate_caches(h);
    mod = import_ok(h, "three");
    assert_from(mod, ar, "three.lua");
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "3");
    ASSERT_STATUS(mh_find(h, "one", &info, ERR), MH_OK);
    mh_host_free(h);
}

/* The same inode rewritten with its size and mtime put back (cp -p):
 * the ctime moved, so the index is read again without invalidation. */
TEST(rewritten_in_place_with_size_and_mtime_put_back)
{
    const char *ar = archive_make(tmp_path("kept.tar"),
                                  "one.lua=:return {v = function() "
                                  "return 1 end}");
    mh_host *h = tar_host(NULL, ar);
    mh_spec_info info = {.size = sizeof info};
    struct stat before, after;

    ASSERT_STATUS(mh_find(h, "one", &info, ERR), MH_OK);
    ASSERT_STATUS(mh_find(h, "two", &info, ERR), MH_ENOTFOUND);
    ASSERT_EQ_INT(stat(ar, &before), 0);
    archive_make(tmp_path("next.tar"),
                 "two.lua=:return {v = function() return 2 end}");
    file_copy(tmp_path("next.tar"), ar);
    struct timespec ts[2] = {before.st_atim, before.st_mtim};
    ASSERT_EQ_INT(utimensat(AT_FDCWD, ar, ts, 0), 0);
    ASSERT_EQ_INT(stat(ar, &after), 0);
    ASSERT_EQ_INT(after.st_ino, before.st_ino);
    ASSERT_EQ_INT(after.st_size, before.st_size);
    ASSERT_EQ_INT(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
    ASSERT_EQ_INT(after.st_mtim.tv_sec, before.st_mtim.tv_sec);

    mh_module *mod = import_ok(h, "two");
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "2");
    ASSERT_STATUS(mh_find(h, "one", &info, ERR), MH_ENOTFOUND);
    mh_host_free(h);
}

TEST(archive_removed_then_restored)
{
    const char *ar = archive_make(tmp_path("gone.tar"),
                                  "a.lua=:return {v = function() "
                                  "return 1 end}");
    mh_host *h = tar_host(NULL, ar);
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;

    ASSERT_STATUS(mh_find(h, "a", &info, ERR), MH_OK);
    ASSERT_EQ_INT(unlink(ar), 0);
    ASSERT_STATUS(mh_import(h, "a", &mod, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), ar);
    ASSERT_CONTAINS(ERR_MSG(), "no longer exists");
    archive_make(ar, "a.lua=:return {v = function() return 2 end}");
    mod = import_ok(h, "a");
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "2");
    mh_host_free(h);
}

TEST(damaged_replacement_is_a_miss_then_recovers)
{
    const char *ar = archive_make(tmp_path("flip.tar"),
                                  "a.lua=:return {v = function() "
                                  "return 1 end}");
    log_capture lc;
    log_capture_init(&lc);
    host_opts o = {.log = &lc};
    mh_host *h = tar_host(&o, ar);
    mh_spec_info info = {.size = sizeof info};
    mh_module *mod;

    ASSERT_STATUS(mh_find(h, "a", &info, ERR), MH_OK);
    file_write(ar, "garbage where an archive was\n");
    ASSERT_STATUS(mh_find(h, "a", &info, ERR), MH_ENOTFOUND);
    ASSERT_CONTAINS(ERR_MSG(), "not a tar or zip archive");
    ASSERT_STATUS(mh_find(h, "b", &info, ERR), MH_ENOTFOUND);
    /* warned about once, not at every find */
    ASSERT_EQ_INT(log_capture_count(&lc, MH_LOG_WARN,
                                    "not a tar or zip archive"), 1);
    archive_replace(ar, "b.lua=:return {v = function() return 2 end}");
    mod = import_ok(h, "b");
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "2");
    mh_host_free(h);
    log_capture_free(&lc);
}

/* Run mh_find with no descriptor free: the limit lowered to the lowest
 * free number, so every open fails with EMFILE. */
static mh_status find_without_descriptors(mh_host *h, const char *name,
                                          mh_spec_info *info)
{
    struct rlimit old;
    fds_none_begin(&old);
    mh_status rc = mh_find(h, name, info, ERR);
    fds_none_end(&old);
    return rc;
}

TEST(out_of_descriptors_stops_the_import)
{
    /* A replaced archive is read again at the next find; with no
     * descriptor free to open it, that find was a miss and the next
     * entry's module of the same name was taken instead (from a review
     * of the tar finder).  Now the import stops, naming the archive, and
     * works once there is room. */
    const char *a = archive_make(tmp_path("A.tar"),
                                 "t.lua=:return {v = function() return 1 "
                                 "end}");
    const char *b = archive_make(tmp_path("B.tar"),
                                 "t.lua=:return {v = function() return 2 "
                                 "end}", "only_b.lua=:return {}");
    host_opts none = {0};
    mh_host *h = host_new_opts(&none, tar_entry(a), tar_entry(b), PD);
    mh_spec_info info = {.size = sizeof info};

    ASSERT_STATUS(mh_find(h, "t", &info, ERR), MH_OK);
    ASSERT_EQ_STR(info.origin, str_fmt("%s!/t.lua", a));
    /* B's entry open and indexed too: it needs no descriptor to answer */
    ASSERT_STATUS(mh_find(h, "only_b", &info, ERR), MH_OK);
    archive_replace(a, "t.lua=:return {v = function() return 3 end}");
    ASSERT_STATUS(find_without_descriptors(h, "t", &info), MH_EAGAIN);
    ASSERT_CONTAINS(ERR_MSG(), a);
    ASSERT_CONTAINS(ERR_MSG(), "'t'");
    ASSERT_CONTAINS(ERR_MSG(), "Too many open files");
    ASSERT_NOT_CONTAINS(ERR_MSG(), b);
    mh_module *mod = import_ok(h, "t");
    assert_from(mod, a, "t.lua");
    ASSERT_EQ_STR(call_ok(mod, "v", NULL), "3");
    mh_host_free(h);
}

/* ----------------------------------------------------------- metadata */

TEST(sidecar_member_is_metadata)
{
    const char *ar = archive_make(tmp_path("meta.tar"),
                                  "tu.lua=:return {v = function() "
                                  "return 1 end}",
                                  "tu.json=:{\"name\": \"tu\", \"version\": "
                                  "\"3.1.4\", \"description\": \"from the "
                                  "archive\"}");
    mh_host *h = tar_host(NULL, ar);
    mh_manifest *m = NULL;

    ASSERT_STATUS(mh_metadata(h, "tu", &m, ERR), MH_OK);
    ASSERT_EQ_STR(mh_manifest_source(m), "sidecar");
    ASSERT_EQ_STR(mh_manifest_version(m), "3.1.4");
    ASSERT_EQ_STR(mh_manifest_description(m), "from the archive");
    mh_manifest_free(m);
    /* nothing was loaded to read it */
    ASSERT_NULL(mh_host_module(h, "tu"));
    mh_host_free(h);
}

TEST(finder_plugin_manifest)
{
    /* finders.tar declares what it provides, readable without loading */
    host_opts o = {0};
    mh_host *h = host_new_opts(&o, PD);
    mh_manifest *m = NULL;

    ASSERT_STATUS(mh_metadata(h, "finders.tar", &m, ERR), MH_OK);
    ASSERT_EQ_STR(mh_manifest_source(m), "elf-note");
    ASSERT_EQ_STR(mh_manifest_version(m), "1.0.0");
    ASSERT_EQ_STR(mh_manifest_provider(m, "modhost.finder"),
                  MH_FINDER_EXPORT);
    mh_manifest_free(m);
    mh_host_free(h);
}

/* ------------------------------------------------------ fault injection */

/* One run: a host that has finders.tar loaded already, then the n-th
 * allocation from here on fails (once, or that one and every later one)
 * while the tar entry is opened and a native module (and, with single
 * faults, a Lua module) is found and read out of the archive.  Each
 * import ends loaded or with an error that says memory ran out, a retry
 * after a single fault works, and nothing leaks.  Returns whether the
 * fault fired.  (Persistent faults skip the Lua module: they reach the
 * Lua loader's own out-of-memory handling, which test_lua covers.) */
static int fault_run(const char *ar, long n, int once)
{
    static const char *const names[] = {"hello", "tu"};
    alloc_tracker at;
    mh_config cfg;
    mh_host *h;
    int fired;

    alloc_tracker_init(&at);
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = PD;
    cfg.cache_dir = tmp_path("cache");
    cfg.alloc = alloc_tracker_fn;
    cfg.alloc_ud = &at;
    h = host_new_cfg(&cfg);
    /* The plugin first, then the entry, not yet opened: its open (the
     * member index) runs under the faults. */
    import_ok(h, "finders.tar");
    ASSERT_STATUS(mh_host_add_path(h, tar_entry(ar), 0, ERR), MH_OK);
    pthread_mutex_lock(&at.mu);
    at.fail_at = (long)at.requests + n;
    at.fail_once = once;
    pthread_mutex_unlock(&at.mu);
    for (size_t i = 0; i < (once ? 2u : 1u); i++) {
        mh_module *mod = NULL;
        mh_error *err = NULL;
        mh_status st = mh_import(h, names[i], &mod, &err);
        if (st != MH_OK) {
            if (st != MH_ENOMEM &&
                !strcasestr(mh_error_message(err), "memory"))
                FAIL("n=%ld (%s): import %s: %s: %s", n,
                     once ? "once" : "persistent", names[i],
                     mh_status_name(st), mh_error_message(err));
            if (once) {
                mh_error_free(err);
                err = NULL;
                st = mh_import(h, names[i], &mod, &err);
                if (st != MH_OK)
                    FAIL("n=%ld: import %s again after one fault: %s: %s",
                         n, names[i], mh_status_name(st),
                         mh_error_message(err));
            }
        }
        if (st == MH_OK) {
            /* A loaded module's origin is built when first asked for,
             * which can run out of memory too: NULL then, and the right
             * one once memory is back (never a broken one kept). */
            const char *o = mh_module_origin(mod);
            if (!o) {
                pthread_mutex_lock(&at.mu);
                at.fail_at = 0;
                pthread_mutex_unlock(&at.mu);
            }
            assert_from(mod, ar, i == 0 ? "hello.so" : "tu.lua");
        }
        mh_error_free(err);
    }
    mh_host_free(h);
    if (at.outstanding != 0 || at.blocks != 0)
        FAIL("n=%ld (%s): %zu bytes in %zu blocks leaked", n,
             once ? "once" : "persistent", at.outstanding, at.blocks);
    fired = at.injected > 0;
    alloc_tracker_destroy(&at);
    return fired;
}

static void fault_all(int once)
{
    const char *ar = archive_make(tmp_path("faults.zip"),
                                  "tu.lua=:return {v = function() "
                                  "return 1 end}",
                                  plugin_member("hello.so", "hello.so"));
    long n = 1;

    while (fault_run(ar, n, once))
        if (++n > 20000)
            FAIL("faults still fire after 20000 allocations");
    ASSERT_TRUE(n > 10); /* the finder's own allocations were in range */
}

TEST(allocation_failure_once)
{
    fault_all(1);
}

TEST(allocation_failure_persistent)
{
    fault_all(0);
}

/* One run: a host whose .tgz entry is indexed, the archive replaced, and
 * the n-th allocation from here on failing once while the next find
 * reads it again (its member list, then its whole gzip stream through
 * zlib, whose memory is the host's).  That find ends found or out of
 * memory, never a miss; the find after it serves the new archive, and
 * nothing leaks.  Returns whether the fault fired. */
static int check_fault_run(const char *ar, long n)
{
    alloc_tracker at;
    mh_config cfg;
    mh_spec_info info = {.size = sizeof info};
    mh_error *err = NULL;

    alloc_tracker_init(&at);
    mh_config_init(&cfg);
    cfg.flags = MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH;
    cfg.path = str_fmt("%s;%s", tar_entry(ar), PD);
    cfg.cache_dir = tmp_path("cache");
    cfg.alloc = alloc_tracker_fn;
    cfg.alloc_ud = &at;
    archive_make(ar, "one.lua=:return {}");
    mh_host *h = host_new_cfg(&cfg);
    ASSERT_STATUS(mh_find(h, "one", &info, ERR), MH_OK);
    const char *next = archive_make(tmp_path("next.tgz"),
                                    "two.lua=:return {}");
    if (rename(next, ar) != 0)
        FAIL("rename %s -> %s failed", next, ar);
    pthread_mutex_lock(&at.mu);
    at.fail_at = (long)at.requests + n;
    at.fail_once = 1;
    pthread_mutex_unlock(&at.mu);
    mh_status st = mh_find(h, "two", &info, &err);
    if (st != MH_OK && st != MH_ENOMEM)
        FAIL("n=%ld: find two under one fault: %s: %s", n,
             mh_status_name(st), mh_error_message(err));
    mh_error_free(err);
    err = NULL;
    pthread_mutex_lock(&at.mu);
    at.fail_at = 0;
    pthread_mutex_unlock(&at.mu);
    if (mh_find(h, "two", &info, &err) != MH_OK)
        FAIL("n=%ld: find two after one fault: %s", n,
             mh_error_message(err));
    ASSERT_EQ_STR(info.origin, str_fmt("%s!/two.lua", ar));
    mh_host_free(h);
    if (at.outstanding != 0 || at.blocks != 0)
        FAIL("n=%ld: %zu bytes in %zu blocks leaked", n, at.outstanding,
             at.blocks);
    int fired = at.injected > 0;
    alloc_tracker_destroy(&at);
    return fired;
}

TEST(one_failure_checking_an_archive_is_not_remembered)
{
    /* A check that failed for want of memory (or a descriptor: gzdopen
     * on a dup of the archive's) said "cannot check its gzip stream",
     * MH_EFORMAT, and that version of the archive was a miss at every
     * find until it changed on disk (from a review of the tar finder).
     * Only what the bytes say is remembered now. */
    const char *ar = tmp_path("fault.tgz");
    long n = 1;
    while (check_fault_run(ar, n))
        if (++n > 5000)
            FAIL("faults still fire after 5000 allocations");
    ASSERT_TRUE(n > 3);
}

/* ------------------------------------------------------------ threads */

typedef struct race {
    mh_host *host;
    atomic_int *stop;
    int failures;
    char first[512];
} race;

/* mh_list callback for threads (collect's str_fmt is main-thread only). */
static int find_tu(void *ud, const mh_spec_info *info)
{
    if (strcmp(info->name, "tu") == 0)
        *(int *)ud = 1;
    return 0;
}

static void *finder_thread(void *arg)
{
    race *r = arg;
    for (int i = 0; i < 200 || !atomic_load(r->stop); i++) {
        mh_spec_info info = {.size = sizeof info};
        mh_error *err = NULL;
        if (mh_find(r->host, "tu", &info, &err) != MH_OK ||
            strcmp(info.finder, "tar") != 0) {
            if (r->failures++ == 0)
                snprintf(r->first, sizeof r->first, "%s",
                         err ? mh_error_message(err) : info.finder);
        }
        mh_error_free(err);
        if (i % 50 == 0) {
            int seen = 0;
            if (mh_list(r->host, find_tu, &seen, NULL) != MH_OK || !seen)
                r->failures++;
        }
    }
    return NULL;
}

TEST(concurrent_finds_while_replaced)
{
    const char *ar = archive_make(tmp_path("race.tar"),
                                  "tu.lua=:return {}");
    mh_host *h = tar_host(NULL, ar);
    atomic_int stop = 0;
    race r[4];
    pthread_t t[4];

    for (int i = 0; i < 4; i++) {
        r[i] = (race){.host = h, .stop = &stop};
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, finder_thread, &r[i]), 0);
    }
    /* every version has tu: a reader never sees it missing */
    for (int v = 0; v < 8; v++) {
        archive_replace(ar, "tu.lua=:return {}",
                        str_fmt("v%d.lua=:return {}", v));
        if (v % 3 == 0)
            mh_invalidate_caches(h);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        if (r[i].failures)
            FAIL("thread %d: %d failures; first: %s", i, r[i].failures,
                 r[i].first);
    mh_host_free(h);
}
