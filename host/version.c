/*
 * host/version.c -- versions and version constraints (mh_version_*).
 *
 * A version is dotted numbers (at most 32) with an optional tail:
 * "1.10.2", "2.0rc1".
 * Numbers compare as numbers ("1.10" > "1.9"), missing ones are 0 ("1.2"
 * == "1.2.0"); a tail sorts before the plain release ("1.0rc1" < "1.0")
 * and tails compare as bytes.  A constraint is comma-separated clauses
 * that must all hold: OP VERSION with OP one of >= <= > < == = != ~=, or a
 * bare VERSION meaning >=.  "~=1.4" is ">=1.4, <2"; "~=1.4.2" is
 * ">=1.4.2, <1.5" (PEP 440's compatible release).  The empty constraint
 * holds for every version.
 */
#include "host/internal.h"
#include "host/meta.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARTS 32

typedef struct ver {
    unsigned long long part[MAX_PARTS];
    int n;
    const char *tail;   /* into the text */
    size_t tail_len;
    bool huge;          /* a number past 2^64 - 1 (then not parsed) */
    bool too_many;      /* more than MAX_PARTS numbers (not parsed) */
} ver;

/* Parse s[0..len): false if it does not start with a number. */
static bool ver_parse(const char *s, size_t len, ver *v)
{
    size_t i = 0;
    v->n = 0;
    v->huge = v->too_many = false;
    memset(v->part, 0, sizeof v->part);
    while (i < len && isdigit((unsigned char)s[i]) && v->n < MAX_PARTS) {
        unsigned long long x = 0;
        size_t start = i;
        while (i < len && isdigit((unsigned char)s[i])) {
            unsigned d = (unsigned)(s[i++] - '0');
            if (x > (~0ull - d) / 10) {
                v->huge = true; /* absurdly long number */
                return false;
            }
            x = x * 10 + d;
        }
        if (i == start)
            break;
        v->part[v->n++] = x;
        if (i < len && s[i] == '.' && i + 1 < len &&
            isdigit((unsigned char)s[i + 1])) {
            if (v->n == MAX_PARTS) {
                v->too_many = true; /* more numbers than anyone means */
                return false;
            }
            i++;
        } else {
            break;
        }
    }
    v->tail = s + i;
    v->tail_len = len - i;
    return v->n > 0;
}

static int ver_cmp(const ver *a, const ver *b)
{
    for (int i = 0; i < MAX_PARTS; i++)
        if (a->part[i] != b->part[i])
            return a->part[i] < b->part[i] ? -1 : 1;
    if (!a->tail_len || !b->tail_len)
        return a->tail_len == b->tail_len ? 0 : a->tail_len ? -1 : 1;
    size_t n = a->tail_len < b->tail_len ? a->tail_len : b->tail_len;
    int c = memcmp(a->tail, b->tail, n);
    return c ? (c < 0 ? -1 : 1)
             : a->tail_len == b->tail_len ? 0 : a->tail_len < b->tail_len ? -1
                                                                           : 1;
}

int mh_version_cmp(const char *a, const char *b)
{
    ver va, vb;
    bool oa = ver_parse(a, strlen(a), &va), ob = ver_parse(b, strlen(b), &vb);
    if (!oa || !ob) /* not versions: as text, after every version */
        return !oa && !ob ? (strcmp(a, b) > 0) - (strcmp(a, b) < 0)
                          : oa ? -1 : 1;
    return ver_cmp(&va, &vb);
}

static const char *const ops[] = {">=", "<=", "==", "!=", "~=", ">", "<",
                                  "="};

/* Check one clause s[0..len) (trimmed) against v: 1 holds, 0 not,
 * -1 malformed (*why set). */
static int clause(const ver *v, const char *s, size_t len, const char **why)
{
    size_t k = 0, ol = 0;
    for (; k < MH_ARRAY_LEN(ops); k++) {
        ol = strlen(ops[k]);
        if (len >= ol && memcmp(s, ops[k], ol) == 0)
            break;
    }
    const char *op = k < MH_ARRAY_LEN(ops) ? ops[k] : ">=";
    if (k == MH_ARRAY_LEN(ops))
        ol = 0;
    while (ol < len && s[ol] == ' ')
        ol++;
    ver want;
    if (!ver_parse(s + ol, len - ol, &want)) {
        *why = want.huge ? "a version number is larger than "
                           "18446744073709551615"
             : want.too_many ? "a version has more than 32 numbers"
                             : "a clause must be OP VERSION (OP one of >= "
                               "<= > < == = != ~=) with VERSION starting "
                               "with a number";
        return -1;
    }
    /* A tail ("rc1", "-beta", "+build.5", Debian's "~rc1") is letters,
     * digits and . _ + ~ -: ">=1.0<1.2" is two clauses without their
     * comma, not 1.0 with a tail "<1.2", and "1.0||2.0" no version. */
    for (size_t i = 0; i < want.tail_len; i++)
        if (!isalnum((unsigned char)want.tail[i]) &&
            !strchr("._+~-", want.tail[i])) {
            *why = "a clause has text after its version (clauses are "
                   "separated by commas)";
            return -1;
        }
    int c = ver_cmp(v, &want);
    if (strcmp(op, "~=") == 0) {
        if (want.n < 2) {
            *why = "~= needs at least two numbers (~=1.4)";
            return -1;
        }
        ver upper = {.n = want.n - 1};
        memcpy(upper.part, want.part, sizeof upper.part);
        for (int i = want.n - 1; i < MAX_PARTS; i++)
            upper.part[i] = 0;
        if (upper.part[want.n - 2] == ~0ull) /* no higher release */
            return c >= 0;
        upper.part[want.n - 2]++;
        return c >= 0 && ver_cmp(v, &upper) < 0;
    }
    if (op[0] == '>')
        return op[1] ? c >= 0 : c > 0;
    if (op[0] == '<')
        return op[1] ? c <= 0 : c < 0;
    if (op[0] == '!')
        return c != 0;
    return c == 0;
}

bool mh_version_valid(const char *version)
{
    ver v;
    return version && ver_parse(version, strlen(version), &v);
}

int mh_version_check(const char *version, const char *constraint,
                     const char **why)
{
    ver v;
    bool have = version && ver_parse(version, strlen(version), &v);
    const char *s = constraint;
    int result = 1;
    *why = NULL;
    while (*s) {
        size_t len = strcspn(s, ",");
        const char *c = s;
        while (len && *c == ' ') {
            c++;
            len--;
        }
        while (len && c[len - 1] == ' ')
            len--;
        if (len == 0 && s[strcspn(s, ",")] == ',') {
            *why = "an empty clause (two commas, or a comma at an end)";
            return -1;
        }
        if (len) {
            int r = have ? clause(&v, c, len, why) : 0;
            if (!have) { /* still check the constraint is well formed */
                ver any = {.n = 1};
                r = clause(&any, c, len, why) < 0 ? -1 : 0;
            }
            if (r < 0)
                return -1;
            if (r == 0)
                result = 0;
        }
        s = c + len;
        while (*s == ' ')
            s++;
        if (*s == ',') {
            s++;
            while (*s == ' ')
                s++;
            if (!*s) {
                *why = "an empty clause (two commas, or a comma at an end)";
                return -1;
            }
        } else if (*s) {
            *why = "clauses are separated by commas";
            return -1;
        }
    }
    return result;
}

mh_status mh_version_satisfies(const char *version, const char *constraint,
                               mh_error **err)
{
    if (!version || !constraint)
        return mh_err(NULL, err, MH_EINVAL,
                      "mh_version_satisfies: %s is NULL",
                      mh_null_name(2, version, "version", constraint, "constraint"));
    const char *why;
    int r = mh_version_check(version, constraint, &why);
    if (r < 0)
        return mh_err(NULL, err, MH_EINVAL, "bad version constraint '%s': %s",
                      constraint, why);
    if (r == 0)
        return mh_err(NULL, err, MH_ENOTFOUND, "version '%s' does not "
                      "satisfy '%s'", version, constraint);
    return MH_OK;
}
