/*
 * tests/fuzz/fuzz_index.c -- index.json, the HTTP finder's index
 * (finders/index.c), parsed as the untrusted bytes a server sends.
 *
 * A parsed index is checked for what the finder relies on: sorted unique
 * valid names, every path exactly the name's path (it cannot leave the
 * base URL), every entry found by mh_idx_get, mh_idx_has_children
 * consistent with the names, manifests parseable when present.
 */
#include "fuzz.h"
#include "finders/index.h"
#include "host/meta.h"

#include <string.h>

/* The relative path the finder would fetch for a name and kind. */
static void want_path(const mh_idx_entry *e, char *out, size_t size)
{
    size_t n = strlen(e->name);
    FZ_CHECK(n + 6 < size, "name too long");
    for (size_t i = 0; i <= n; i++)
        out[i] = e->name[i] == '.' ? '/' : e->name[i];
    strcat(out, e->kind == MH_KIND_NATIVE ? ".so"
                : e->binary                ? ".luac"
                                           : ".lua");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_alloc a;
    mh_host *h = fz_host_new(NULL, 0, NULL, &a);
    FZ_CHECK(h != NULL, "host");
    mh_index idx;
    mh_error *err = NULL;
    mh_status st = mh_idx_parse(h, "https://fuzz.example/index.json", data,
                                size, &idx, &err);
    if (st != MH_OK) {
        FZ_CHECK(st == MH_EFORMAT || st == MH_ENOMEM, "status %d", (int)st);
        FZ_CHECK(idx.n == 0 && idx.v == NULL, "outputs set on failure");
        FZ_CHECK(err && strstr(mh_error_message(err), "fuzz.example"),
                 "the error does not name the index");
        mh_error_free(err);
        fz_host_free(h, &a);
        return 0;
    }
    for (size_t i = 0; i < idx.n; i++) {
        const mh_idx_entry *e = &idx.v[i];
        FZ_CHECK(mh_name_check(e->name, NULL) == MH_OK, "entry %zu name", i);
        FZ_CHECK(i == 0 || strcmp(idx.v[i - 1].name, e->name) < 0,
                 "entries %zu and %zu out of order or equal", i - 1, i);
        FZ_CHECK(e->kind == MH_KIND_NATIVE || e->kind == MH_KIND_LUA,
                 "entry %zu kind %d", i, (int)e->kind);
        char want[MH_NAME_MAX + 8];
        want_path(e, want, sizeof want);
        FZ_CHECK(strcmp(want, e->path) == 0, "entry %zu '%s' has path '%s'",
                 i, e->name, e->path);
        FZ_CHECK(e->size <= (1ull << 53), "size %llu",
                 (unsigned long long)e->size);
        FZ_CHECK(mh_idx_get(&idx, e->name) == e, "mh_idx_get '%s'", e->name);
        /* Children: a name with this prefix and a dot right after. */
        size_t len = strlen(e->name);
        int kids = 0;
        for (size_t k = 0; k < idx.n && !kids; k++)
            kids = strncmp(idx.v[k].name, e->name, len) == 0 &&
                   idx.v[k].name[len] == '.';
        FZ_CHECK(mh_idx_has_children(&idx, e->name) == kids,
                 "has_children('%s') is not %d", e->name, kids);
        if (e->manifest) {
            mh_manifest *m = NULL;
            mh_status ms = mh_manifest_parse(h, e->name, "sidecar", e->path,
                                             e->manifest,
                                             strlen(e->manifest), 0, &m,
                                             &err);
            FZ_CHECK(ms == MH_OK || ms == MH_EFORMAT, "manifest status %d",
                     (int)ms);
            mh_manifest_free(m);
            mh_error_free(err);
            err = NULL;
        }
    }
    FZ_CHECK(mh_idx_get(&idx, "no.such.fuzz_module") == NULL ||
                 strcmp(mh_idx_get(&idx, "no.such.fuzz_module")->name,
                        "no.such.fuzz_module") == 0,
             "mh_idx_get of a missing name");
    mh_idx_free(h, &idx);
    fz_host_free(h, &a);
    return 0;
}
