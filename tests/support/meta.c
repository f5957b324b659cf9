/*
 * meta.c -- helpers for the metadata and dependency tests: a marker file
 * that fixture code writes if it ever runs, Lua modules with sidecar
 * manifests, binutils run on fixture copies, and the place of the modhost
 * manifest note inside a shared object's bytes.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <modhost/plugin.h>

#include "support/support.h"
#include "test.h"

const char *meta_marker(void)
{
    const char *path = tmp_path("marker");
    env_set("MH_FIXTURE_MARKER", path);
    return path;
}

const char *meta_lua_module(const char *rel, const char *src,
                            const char *json)
{
    const char *path = lua_write(str_fmt("%s.lua", rel), src);
    if (json)
        lua_write(str_fmt("%s.json", rel), json);
    return path;
}

void meta_tool(const char *tool, const char *args)
{
    int st;
    const char *which = sh_run(str_fmt("command -v %s", tool), &st);

    if (st != 0 || which[0] == '\0')
        FAIL("this test needs `%s` (binutils), which is not installed", tool);
    fflush(NULL);
    st = system(str_fmt("%s %s", tool, args));
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        FAIL("`%s %s` failed (status %d)", tool, args, st);
}

const char *meta_nested_manifest(int levels)
{
    size_t cap = 32 + 8 * (size_t)levels, at = 0;
    char *s = malloc(cap);
    if (!s)
        FAIL("out of memory");
    at += (size_t)snprintf(s, cap, "{\"description\": \"deep\", \"x\": ");
    for (int k = 2; k < levels; k++) /* levels 2 .. levels-1 */
        at += (size_t)snprintf(s + at, cap - at, k % 2 ? "{\"k\": " : "[");
    at += (size_t)snprintf(s + at, cap - at, "[]");
    for (int k = levels - 1; k >= 2; k--)
        at += (size_t)snprintf(s + at, cap - at, k % 2 ? "}" : "]");
    snprintf(s + at, cap - at, "}");
    const char *out = str_fmt("%s", s);
    free(s);
    return out;
}

long meta_note_offset(const unsigned char *data, size_t len)
{
    static const char owner[8] = MH_NOTE_OWNER;
    long found = -1;

    for (size_t i = 12; i + sizeof owner <= len; i++) {
        uint32_t namesz, type;
        if (memcmp(data + i, owner, sizeof owner) != 0)
            continue;
        memcpy(&namesz, data + i - 12, 4);
        memcpy(&type, data + i - 4, 4);
        if (namesz != sizeof owner || type != MH_NOTE_TYPE_MANIFEST)
            continue; /* e.g. ".note.modhost" in the section names */
        if (found >= 0)
            FAIL("two modhost manifest notes in one object");
        found = (long)(i - 12);
    }
    return found;
}
