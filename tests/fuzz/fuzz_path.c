/*
 * tests/fuzz/fuzz_path.c -- search-path strings.
 *
 * The input, up to its first NUL, is mh_config.path of an isolated host
 * without default entries: split on ';', entries refused or kept,
 * canonicalised ("//" collapsed, no trailing "/"), deduplicated, a URI's
 * password hidden.  Then every entry is described, which opens its
 * finder (fs, sqlite, http, or a finder plugin for an unknown scheme) but
 * reads no module and makes no network request.  Checked: what the host
 * reports is consistent (entry text never empty, relative or with "//",
 * never showing a password it was given, finder name set when there is
 * no error).
 */
#include "fuzz.h"

#include <modhost/finder.h>
#include <stdlib.h>
#include <string.h>

/* Does a shown entry still hold the password of a "scheme://user:pw@"
 * authority?  The host promises "***" in its place. */
static int shows_password(const char *e)
{
    const char *auth = strstr(e, "://");
    if (!auth)
        return 0;
    auth += 3;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', alen);
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    return colon && !(at - colon == 4 && memcmp(colon, ":***@", 5) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *path = fz_cstr(data, size);
    fz_alloc a;
    mh_host *h = fz_host_new(path, 0, NULL, &a);
    if (!h) {
        free(path);
        return 0;
    }
    size_t n = mh_host_path_count(h);
    for (size_t i = 0; i < n; i++) {
        const char *entry = NULL, *finder = NULL;
        mh_path_source src;
        FZ_CHECK(mh_host_path_entry(h, i, &entry, &src, &finder) == MH_OK,
                 "entry %zu of %zu", i, n);
        FZ_CHECK(entry && entry[0], "entry %zu is empty", i);
        FZ_CHECK(src == MH_SOURCE_CONFIG, "entry %zu from source %d", i,
                 (int)src);
        FZ_CHECK(entry[0] == '/' || strchr(entry, ':'), "entry %zu '%s' is "
                 "relative", i, entry);
        if (entry[0] == '/')
            FZ_CHECK(!strstr(entry, "//") &&
                         (entry[1] == '\0' || entry[strlen(entry) - 1] != '/'),
                     "entry %zu '%s' is not canonical", i, entry);
        FZ_CHECK(!shows_password(entry), "entry %zu shows a password", i);

        mh_path_entry_info info;
        memset(&info, 0, sizeof info);
        info.size = sizeof info;
        FZ_CHECK(mh_host_path_entry_info(h, i, &info) == MH_OK, "info %zu",
                 i);
        FZ_CHECK(info.entry && strcmp(info.entry, entry) == 0,
                 "info %zu names another entry", i);
        FZ_CHECK(info.finder || info.error, "entry %zu '%s': no finder "
                 "and no reason", i, entry);
        if (info.error)
            (void)strlen(info.error);
        if (info.shadowed)
            (void)strlen(info.shadowed);
        /* The same entry again: opened already, same answers. */
        mh_path_entry_info again;
        memset(&again, 0, sizeof again);
        again.size = sizeof again;
        FZ_CHECK(mh_host_path_entry_info(h, i, &again) == MH_OK &&
                     again.entry == info.entry,
                 "info %zu changed", i);
    }
    mh_path_entry_info none;
    memset(&none, 0, sizeof none);
    none.size = sizeof none;
    FZ_CHECK(mh_host_path_entry_info(h, n, &none) == MH_EINVAL,
             "entry past the end");
    fz_host_free(h, &a);
    free(path);
    return 0;
}
