/*
 * finders/hooks.c -- the path hooks (Python's sys.path_hooks): which
 * finder class claims a search path entry.
 *
 * Classes are asked in order; the first whose claims() says yes gets the
 * entry.  Specific claims (a scheme, a file header) come before the
 * catch-all filesystem finder, which takes any absolute path.
 */
#include "host/internal.h"
#include "finders/finder.h"

static const mh_finder_class *const hooks[] = {
    &mh_htf_class,   /* http://, https:// */
    &mh_sqf_class,   /* sqlite:/path, or a file with a SQLite header */
    &mh_fsf_class,   /* any other absolute path: a directory */
};

const mh_finder_class *mh_hooks_claim(mh_host *h, const char *entry)
{
    for (size_t i = 0; i < MH_ARRAY_LEN(hooks); i++)
        if (hooks[i]->claims(h, entry))
            return hooks[i];
    return NULL;
}
