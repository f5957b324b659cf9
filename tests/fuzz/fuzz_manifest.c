/*
 * tests/fuzz/fuzz_manifest.c -- JSON manifests (host/manifest.c) and the
 * version constraints inside them (host/version.c).
 *
 * The input is manifest text given to mh_manifest_parse as a sidecar.  A
 * manifest it accepts is read back through every accessor, its compact
 * JSON must parse again to the same manifest, and again as a note's with
 * an ABI word (which it then says) -- printed at once and printed later,
 * alike -- and each constraint it holds (requires,
 * "modhost") is evaluated against its own version and the host's, with
 * mh_version_cmp checked for antisymmetry.
 */
#include "fuzz.h"
#include "host/meta.h"

#include <string.h>

static void versions(const char *a, const char *b)
{
    if (!a || !b)
        return;
    int ab = mh_version_cmp(a, b), ba = mh_version_cmp(b, a);
    FZ_CHECK(ab >= -1 && ab <= 1 && ab == -ba, "mh_version_cmp('%s', '%s') "
             "= %d but reversed %d", a, b, ab, ba);
    FZ_CHECK(mh_version_cmp(a, a) == 0, "'%s' differs from itself", a);
}

static void constraint(const char *version, const char *c)
{
    const char *why = NULL;
    int r = mh_version_check(version, c, &why);
    /* A constraint accepted when parsing is well formed. */
    FZ_CHECK(r == 0 || r == 1, "constraint '%s' malformed after parsing "
             "(%s)", c, why ? why : "?");
    mh_error *err = NULL;
    if (version) {
        mh_status st = mh_version_satisfies(version, c, &err);
        FZ_CHECK(st == (r ? MH_OK : MH_ENOTFOUND), "satisfies '%s' '%s' "
                 "gave %d, check %d", version, c, (int)st, r);
        mh_error_free(err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_alloc a;
    mh_host *h = fz_host_new(NULL, 0, NULL, &a);
    FZ_CHECK(h != NULL, "host");
    mh_manifest *m = NULL;
    mh_error *err = NULL;
    mh_status st = mh_manifest_parse(h, "fuzz.mod", "sidecar", "fuzz.json",
                                     (const char *)data, size, 0, &m, &err);
    FZ_CHECK((st == MH_OK) == (m != NULL), "status %d, manifest %p",
             (int)st, (void *)m);
    if (st != MH_OK) {
        FZ_CHECK(st == MH_EFORMAT || st == MH_ENOMEM, "status %d", (int)st);
        FZ_CHECK(err && strstr(mh_error_message(err), "fuzz.mod"),
                 "the error does not name the module");
        mh_error_free(err);
        fz_host_free(h, &a);
        return 0;
    }
    FZ_CHECK(strcmp(mh_manifest_name(m), "fuzz.mod") == 0, "name");
    FZ_CHECK(strcmp(mh_manifest_source(m), "sidecar") == 0, "source");
    const char *json = mh_manifest_json(m);
    const char *version = mh_manifest_version(m);
    if (mh_manifest_description(m))
        (void)strlen(mh_manifest_description(m));
    int abi = mh_manifest_abi(m);
    FZ_CHECK(abi >= 0 && abi <= 1000000, "abi %d", abi);

    size_t nreq = mh_manifest_requires_count(m);
    FZ_CHECK(nreq <= 1024, "%zu requires", nreq);
    for (size_t i = 0; i < nreq; i++) {
        const char *name, *c;
        FZ_CHECK(mh_manifest_require(m, i, &name, &c) == MH_OK, "req %zu", i);
        FZ_CHECK(mh_name_check(name, NULL) == MH_OK, "requires[%zu] name "
                 "'%s' is not a module name", i, name);
        constraint(version, c);
        constraint(mh_version_string(), c);
        constraint(NULL, c);
    }
    const char *none1 = "x", *none2 = "x";
    FZ_CHECK(mh_manifest_require(m, nreq, &none1, &none2) == MH_EINVAL &&
                 !none1 && !none2,
             "requires past the end");
    size_t nprov = mh_manifest_provides_count(m);
    FZ_CHECK(nprov <= 1024, "%zu provides", nprov);
    for (size_t i = 0; i < nprov; i++) {
        const char *group, *export_name;
        FZ_CHECK(mh_manifest_provide(m, i, &group, &export_name) == MH_OK,
                 "prov %zu", i);
        FZ_CHECK(group[0] && export_name[0], "empty provides %zu", i);
        const char *first = mh_manifest_provider(m, group);
        FZ_CHECK(first != NULL, "group '%s' not found", group);
    }
    versions(version, mh_version_string());
    versions(version, "1.0rc1");

    /* The compact text is a manifest too, and the same one. */
    mh_manifest *again = NULL;
    st = mh_manifest_parse(h, "fuzz.mod", "sidecar", NULL, json,
                           strlen(json), 0, &again, &err);
    FZ_CHECK(st == MH_OK, "its own JSON is refused: %s",
             mh_error_message(err));
    FZ_CHECK(strcmp(mh_manifest_json(again), json) == 0, "JSON changed on "
             "a second parse");
    FZ_CHECK(mh_manifest_requires_count(again) == nreq &&
                 mh_manifest_provides_count(again) == nprov &&
                 mh_manifest_abi(again) == abi,
             "a second parse differs");
    mh_manifest_free(again);

    /* As a note's text with ABI word 7: refused only if it declares
     * another abi; else it says 7, in its JSON too. */
    st = mh_manifest_parse(h, "fuzz.mod", "elf-note", NULL, json,
                           strlen(json), 7, &again, &err);
    FZ_CHECK(abi && abi != 7 ? st == MH_EFORMAT
                             : st == MH_OK && mh_manifest_abi(again) == 7,
             "note ABI 7 over abi %d: %s", abi,
             st == MH_OK ? "accepted" : mh_error_message(err));
    if (st == MH_OK) {
        mh_manifest *third = NULL;
        const char *j7 = mh_manifest_json(again);
        FZ_CHECK(mh_manifest_parse(h, "fuzz.mod", "sidecar", NULL, j7,
                                   strlen(j7), 0, &third, NULL) == MH_OK &&
                     mh_manifest_abi(third) == 7,
                 "note ABI 7 gave JSON %s", j7);
        mh_manifest_free(third);
    }
    mh_error_free(err);
    err = NULL;

    /* Parsed with its text printed later (as an import parses a note):
     * the same verdict, and once asked for, the same text. */
    mh_manifest *later = NULL;
    mh_status lst = mh_manifest_parse_later(h, "fuzz.mod", "elf-note", NULL,
                                            json, strlen(json), 7, &later,
                                            NULL);
    FZ_CHECK(lst == st, "printed later: status %d, printed now: %d",
             (int)lst, (int)st);
    if (lst == MH_OK) {
        const char *lj = mh_manifest_json(later);
        FZ_CHECK(lj && strcmp(lj, mh_manifest_json(again)) == 0,
                 "printed later %s, printed now %s", lj ? lj : "(null)",
                 mh_manifest_json(again));
        FZ_CHECK(mh_manifest_json(later) == lj, "printed twice");
        FZ_CHECK(mh_manifest_abi(later) == 7, "later abi %d",
                 mh_manifest_abi(later));
    }
    mh_manifest_free(later);
    mh_manifest_free(again);

    mh_manifest_free(m);
    fz_host_free(h, &a);
    return 0;
}
