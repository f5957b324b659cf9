/*
 * tests/fuzz/fuzz_names.c -- module names: mh_name_check and interning.
 *
 * The input is one or more strings separated by NUL bytes (one string when
 * it has none).  Each is checked against the name grammar and compared
 * with an independent reading of the contract in modhost.h, then interned
 * into one host: equal strings must give one pointer holding the same
 * bytes, mh_intern_len and mh_intern_lookup must agree with mh_intern, and
 * the count must grow by exactly the number of new distinct strings.
 * Many pieces in one input grow the intern table past its first size.
 */
#include "fuzz.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The grammar, read from include/modhost.h: dot-separated identifiers
 * [A-Za-z_][A-Za-z0-9_]*, 1 to 255 bytes. */
static bool grammar_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MH_NAME_MAX)
        return false;
    bool start = true;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                     c == '_';
        bool digit = c >= '0' && c <= '9';
        if (c == '.') {
            if (start)
                return false; /* empty component */
            start = true;
        } else if (start ? alpha : (alpha || digit)) {
            start = false;
        } else {
            return false;
        }
    }
    return !start; /* not ending with a dot */
}

#define MAX_PIECES 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fz_cstr(data, size);
    fz_alloc a;
    mh_host *h = fz_host_new(NULL, 0, NULL, &a);
    FZ_CHECK(h != NULL, "a host with no path must be made");
    size_t base = mh_intern_count(h);

    const char **seen = malloc(MAX_PIECES * sizeof *seen);
    size_t nseen = 0;
    FZ_CHECK(seen != NULL, "out of memory");
    size_t pos = 0;
    while (pos <= size && nseen + 2 <= MAX_PIECES) {
        const char *s = text + pos;
        size_t len = strlen(s);

        mh_error *err = NULL;
        mh_status st = mh_name_check(s, &err);
        FZ_CHECK((st == MH_OK) == grammar_ok(s), "mh_name_check says %d "
                 "for a %zu-byte string the grammar %s", (int)st, len,
                 grammar_ok(s) ? "accepts" : "refuses");
        FZ_CHECK(st == MH_OK || st == MH_EBADNAME, "status %d", (int)st);
        FZ_CHECK((st == MH_OK) == (err == NULL), "error object and status "
                 "disagree");
        if (err) {
            FZ_CHECK(mh_error_code(err) == st, "error code");
            FZ_CHECK(strlen(mh_error_message(err)) > 0, "empty message");
            mh_error_free(err);
        }
        FZ_CHECK(mh_name_check(s, NULL) == st, "result depends on err");

        /* Interning: stable, canonical, byte-exact. */
        const char *before = mh_intern_lookup(h, s);
        const char *p = mh_intern(h, s);
        FZ_CHECK(p != NULL, "mh_intern failed (%zu bytes)", len);
        FZ_CHECK(strcmp(p, s) == 0, "interned copy differs");
        FZ_CHECK(p != s, "interned the caller's buffer");
        FZ_CHECK(before == NULL || before == p, "lookup gave another copy");
        FZ_CHECK(mh_intern_lookup(h, s) == p, "lookup after intern");
        FZ_CHECK(mh_intern_len(h, s, len) == p, "mh_intern_len differs");
        /* One this input interned already must be found as that very
         * pointer (strings the host interned itself, such as finder
         * names, are found without being in `seen`). */
        bool in_seen = false;
        for (size_t i = 0; i < nseen && !in_seen; i++)
            in_seen = seen[i] == p;
        FZ_CHECK(!in_seen || before == p, "a string interned twice");
        if (!before)
            seen[nseen++] = p;
        if (len > 0) { /* a prefix: not NUL-terminated where it ends */
            char *copy = fz_cstr((const uint8_t *)s, len - 1);
            const char *before_q = mh_intern_lookup(h, copy);
            const char *q = mh_intern_len(h, s, len - 1);
            FZ_CHECK(q && strcmp(q, copy) == 0, "mh_intern_len copy");
            FZ_CHECK(!before_q || before_q == q, "prefix interned twice");
            if (!before_q)
                seen[nseen++] = q;
            free(copy);
        }
        pos += len + 1;
    }
    /* Every pointer handed out still holds its string. */
    for (size_t i = 0; i < nseen; i++)
        FZ_CHECK(mh_intern_lookup(h, seen[i]) == seen[i], "pointer %zu "
                 "moved", i);
    size_t count = mh_intern_count(h);
    FZ_CHECK(count == base + nseen, "count %zu, expected %zu + %zu", count,
             base, nseen);
    free(seen);
    fz_host_free(h, &a);
    free(text);
    return 0;
}
