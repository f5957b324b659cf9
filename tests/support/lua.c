/*
 * support/lua.c -- helpers for the Lua tests: writing sources, and
 * mh_module_call with JSON given as text.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "support/support.h"
#include "test.h"

/* Write tmp_dir()/REL (creating parents) and return its absolute path. */
const char *lua_write(const char *rel, const char *src)
{
    const char *path = tmp_path("%s", rel);
    char *dir = strdup(path);
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    mkdir_p(dir);
    free(dir);
    file_write(path, src);
    return path;
}

/* mh_module_call with args given as JSON text (NULL: no args); fails the
 * case unless it returns MH_OK; returns the result printed unformatted. */
const char *call_ok(mh_module *mod, const char *fn, const char *args)
{
    cJSON *a = NULL, *res = NULL;
    const char *out;
    char *text;

    if (args != NULL && (a = cJSON_Parse(args)) == NULL)
        FAIL("bad JSON in the test: %s", args);
    ASSERT_STATUS(mh_module_call(mod, fn, a, &res, ERR), MH_OK);
    cJSON_Delete(a);
    if (res == NULL)
        FAIL("%s(%s) returned MH_OK but no result", fn, args ? args : "");
    text = cJSON_PrintUnformatted(res);
    out = str_fmt("%s", text);
    free(text);
    cJSON_Delete(res);
    return out;
}

/* mh_module_call that must fail; returns the status (message in ERR). */
mh_status call_fails(mh_module *mod, const char *fn, const char *args)
{
    cJSON *a = NULL, *res = NULL;
    mh_status st;

    if (args != NULL && (a = cJSON_Parse(args)) == NULL)
        FAIL("bad JSON in the test: %s", args);
    st = mh_module_call(mod, fn, a, &res, ERR);
    cJSON_Delete(a);
    if (st == MH_OK) {
        char *text = res ? cJSON_PrintUnformatted(res) : NULL;
        const char *shown = str_fmt("%s", text ? text : "(null)");
        free(text);
        cJSON_Delete(res);
        FAIL("%s(%s) worked, returned %s", fn, args ? args : "", shown);
    }
    if (res != NULL)
        FAIL("a failed call of %s left *result set", fn);
    return st;
}
