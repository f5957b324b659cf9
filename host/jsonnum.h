/*
 * host/jsonnum.h -- numbers JSON cannot hold.  JSON's numbers are finite,
 * but cJSON parses a text such as 1e400 to an infinity (and prints NaN
 * and infinities as null), and an application's cJSON tree may hold
 * either.  On its own, with no other header of the library's, so that
 * the command line (which uses the public API only) shares it.
 */
#ifndef MH_HOST_JSONNUM_H
#define MH_HOST_JSONNUM_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdbool.h>

static inline bool mh_json_nonfinite_in_(const cJSON *j, int depth)
{
    if (cJSON_IsNumber(j))
        return !isfinite(j->valuedouble);
    if (depth >= CJSON_NESTING_LIMIT ||
        !(cJSON_IsArray(j) || cJSON_IsObject(j)))
        return false;
    for (const cJSON *c = j->child; c; c = c->next)
        if (mh_json_nonfinite_in_(c, depth + 1))
            return true;
    return false;
}

/* Does j (NULL: no) hold a number that is not finite -- NaN, or an
 * infinity?  Looks as deep as cJSON parses (CJSON_NESTING_LIMIT). */
static inline bool mh_json_has_nonfinite(const cJSON *j)
{
    return j && mh_json_nonfinite_in_(j, 0);
}

#endif /* MH_HOST_JSONNUM_H */
