/*
 * finders/index.c -- reading index.json (see finders/index.h).
 */
#include "host/internal.h"
#include "finders/finder.h"
#include "finders/index.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDX_MAX_MODULES 1000000

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const mh_idx_entry *)a)->name,
                  ((const mh_idx_entry *)b)->name);
}

/* One module object; NULL or a static reason. */
static const char *parse_entry(mh_host *h, const cJSON *m, size_t max_size,
                               mh_idx_entry *e, bool *oom)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(m, "kind");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(m, "path");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(m, "size");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(m, "sha256");
    e->manifest = NULL;
    if (!cJSON_IsObject(m))
        return "a module is not an object";
    if (!cJSON_IsString(name) || !cJSON_IsString(kind) ||
        !cJSON_IsString(path) || !cJSON_IsNumber(size) ||
        !cJSON_IsString(sha))
        return "a module lacks name, kind, path, size or sha256 of the "
               "right type";
    if (mh_name_check(name->valuestring, NULL) != MH_OK)
        return "a module name is invalid";
    const char *suffix;
    if (strcmp(kind->valuestring, "native") == 0) {
        e->kind = MH_KIND_NATIVE;
        suffix = MH_NATIVE_SUFFIX;
    } else if (strcmp(kind->valuestring, "lua") == 0) {
        e->kind = MH_KIND_LUA;
        suffix = MH_LUA_SUFFIX;
    } else if (strcmp(kind->valuestring, "luac") == 0) {
        e->kind = MH_KIND_LUA;
        e->binary = true;
        suffix = MH_LUAC_SUFFIX;
    } else {
        /* A kind this host has no loader for (a newer index, or "lua"
         * before the Lua loader): not an error, just not importable. */
        e->name = NULL;
        return NULL;
    }
    char want[MH_NAME_MAX + 8];
    if (!mh_name_relpath(name->valuestring, suffix, want, sizeof want) ||
        strcmp(want, path->valuestring) != 0)
        return "a module path is not its name's path (a/b.so for a.b): it "
               "could point outside the base URL";
    /* A size over max_module_size is refused when that module is
     * loaded, not here: one big module must not hide the others. */
    MH_UNUSED(max_size);
    double d = size->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d)
        return "a module size is negative, fractional or too large";
    if (strlen(sha->valuestring) != 64 ||
        !mh_unhex(sha->valuestring, 32, e->sha256))
        return "a sha256 is not 64 hex digits";
    const cJSON *man = cJSON_GetObjectItemCaseSensitive(m, "manifest");
    if (man && !cJSON_IsObject(man))
        return "a module's manifest is not an object";
    if (man) {
        /* The index's own copy, not interned: a site whose manifests
         * change at each refresh would grow the host for good. */
        char *text = cJSON_PrintUnformatted(man);
        size_t tl = text ? strlen(text) + 1 : 0;
        char *own = text ? mh_mem_alloc(h, tl) : NULL;
        if (own)
            memcpy(own, text, tl);
        cJSON_free(text);
        e->manifest = own;
        if (!own) {
            *oom = true;
            return "out of memory";
        }
    }
    e->size = (uint64_t)d;
    e->name = mh_int_cstr(h, name->valuestring);
    e->path = mh_int_cstr(h, path->valuestring);
    if (!e->name || !e->path) {
        *oom = true;
        return "out of memory";
    }
    return NULL;
}

/* What entries v[0..n) own: their manifests. */
static void entries_free(mh_host *h, mh_idx_entry *v, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (v[k].manifest) {
            mh_mem_free(h, (char *)v[k].manifest,
                        strlen(v[k].manifest) + 1);
            v[k].manifest = NULL;
        }
}

mh_status mh_idx_parse(mh_host *h, const char *where, const void *json,
                       size_t len, mh_index *out, mh_error **err)
{
    out->v = NULL;
    out->n = 0;
    out->serial = 0;
    /* cJSON limits nesting (CJSON_NESTING_LIMIT), so a deeply nested
     * document is a parse error, not a stack overflow. */
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root)
        return mh_err(h, err, MH_EFORMAT, "%s: not valid JSON (or nested too "
                      "deeply)", where);
    /* One JSON value and nothing after it but white space. */
    for (const char *p = end; p && p < (const char *)json + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return mh_err(h, err, MH_EFORMAT, "%s: malformed index: data "
                          "after the JSON document", where);
        }
    const char *why = NULL;
    bool oom = false;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *mods = cJSON_GetObjectItemCaseSensitive(root, "modules");
    out->manifests = cJSON_IsTrue(
        cJSON_GetObjectItemCaseSensitive(root, "manifests"));
    if (!cJSON_IsObject(root))
        why = "the document is not a JSON object";
    else if (!cJSON_IsNumber(fmt) || fmt->valuedouble != 1)
        why = "\"format\" is not 1 (an index from another modhost version?)";
    else if (!cJSON_IsArray(mods))
        why = "\"modules\" is not an array";
    const cJSON *serial = cJSON_GetObjectItemCaseSensitive(root, "serial");
    if (!why && serial) {
        if (!cJSON_IsNumber(serial) ||
            !mh_idx_serial(serial->valuedouble, &out->serial))
            why = "\"serial\" is not a whole number from 1 to 2^53 - 1";
    }
    int n = why ? 0 : cJSON_GetArraySize(mods);
    if (!why && n > IDX_MAX_MODULES)
        why = "too many modules";
    if (!why && n > 0) {
        out->v = mh_mem_calloc(h, (size_t)n, sizeof *out->v);
        if (!out->v) {
            oom = true;
            why = "out of memory";
        }
    }
    const cJSON *m;
    size_t i = 0, pos = 0;
    /* Which entry a reason is about: "modules[K] (NAME): ", NAME when it
     * is a string (escaped, cut to fit). */
    char at[128] = "";
    if (!why)
        cJSON_ArrayForEach(m, mods) {
            out->v[i].name = NULL;
            why = parse_entry(h, m, h->max_module_size, &out->v[i], &oom);
            if (why) {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(m, "name");
                size_t o = (size_t)snprintf(at, sizeof at, "modules[%zu]",
                                            pos);
                if (cJSON_IsString(nm)) {
                    memcpy(at + o, " (", 2);
                    o += 2;
                    o += mh_escape(at + o, sizeof at - o - 4,
                                   nm->valuestring, SIZE_MAX, false, NULL);
                    at[o++] = ')';
                }
                memcpy(at + o, ": ", 3);
                break;
            }
            pos++;
            if (out->v[i].name) /* else a kind without a loader: skipped */
                i++;
        }
    cJSON_Delete(root);
    size_t taken = (size_t)n;
    if (!why) {
        out->n = i;
        if (i)
            qsort(out->v, i, sizeof *out->v, entry_cmp);
        for (size_t k = 1; k < i && !why; k++)
            if (out->v[k].name == out->v[k - 1].name) {
                why = "a module is listed twice";
                size_t o = mh_escape(at, sizeof at - 3, out->v[k].name,
                                     SIZE_MAX, false, NULL);
                memcpy(at + o, ": ", 3);
            }
    }
    if (why) {
        /* entries 0..i parsed (i itself perhaps half) */
        if (out->v)
            entries_free(h, out->v, i < taken ? i + 1 : taken);
        mh_mem_free(h, out->v, taken * sizeof *out->v);
        out->v = NULL;
        out->n = 0;
        out->serial = 0;
        if (oom)
            return mh_err(h, err, MH_ENOMEM, "%s: out of memory reading the "
                          "index", where);
        return mh_err(h, err, MH_EFORMAT, "%s: malformed index: %s%s", where,
                      at, why);
    }
    if (i < taken) { /* give back the slots of skipped entries */
        mh_idx_entry *v = i ? mh_mem_realloc(h, out->v,
                                             taken * sizeof *v, i * sizeof *v)
                            : NULL;
        if (i && !v) {
            entries_free(h, out->v, i);
            mh_mem_free(h, out->v, taken * sizeof *out->v);
            out->v = NULL;
            out->n = 0;
            return mh_err(h, err, MH_ENOMEM, "%s: out of memory", where);
        }
        if (!i)
            mh_mem_free(h, out->v, taken * sizeof *out->v);
        out->v = v;
    }
    return MH_OK; /* out->n entries allocated: mh_idx_free frees them */
}

void mh_idx_free(mh_host *h, mh_index *idx)
{
    entries_free(h, idx->v, idx->n);
    mh_mem_free(h, idx->v, idx->n * sizeof *idx->v);
    idx->v = NULL;
    idx->n = 0;
}

const mh_idx_entry *mh_idx_get(const mh_index *idx, const char *name)
{
    mh_idx_entry key = {.name = name};
    if (!idx->n)
        return NULL;
    return bsearch(&key, idx->v, idx->n, sizeof *idx->v, entry_cmp);
}

int mh_idx_has_children(const mh_index *idx, const char *name)
{
    char prefix[MH_NAME_MAX + 2];
    size_t len = strlen(name);
    if (len + 1 >= sizeof prefix)
        return 0;
    memcpy(prefix, name, len);
    prefix[len] = '.';
    prefix[len + 1] = '\0';
    size_t lo = 0, hi = idx->n;
    while (lo < hi) { /* the first name >= "name." */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(idx->v[mid].name, prefix) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < idx->n && strncmp(idx->v[lo].name, prefix, len + 1) == 0;
}
