/*
 * finders/tree.c -- the directory walk shared by mh_pack and mh_index_dir
 * (see finders/tree.h).
 */
#include "host/internal.h"
#include "finders/tree.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct walk {
    const char *root;
    mh_tree_keep_fn keep;
    mh_tree_file_fn file;
    void *ud;
    mh_error **err;
    int depth;
    size_t dirs;                        /* directories visited */
    dev_t dev[MH_TREE_MAX_DEPTH + 1];   /* directories on the current walk */
    ino_t ino[MH_TREE_MAX_DEPTH + 1];
    char rel[PATH_MAX];
} walk;

static mh_status walk_dir(walk *w, size_t rlen)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s%s%s", w->root, rlen ? "/" : "",
                 w->rel) >= (int)sizeof path)
        return mh_err(NULL, w->err, MH_EINVAL, "path too long under %s",
                      w->root);
    struct stat st;
    if (stat(path, &st) != 0)
        return mh_err(NULL, w->err, MH_EIO, "cannot read directory %s: %s",
                      path, strerror(errno));
    for (int i = 0; i < w->depth; i++)
        if (w->dev[i] == st.st_dev && w->ino[i] == st.st_ino)
            return MH_OK; /* a link back up: that directory is being walked */
    if (w->depth > MH_TREE_MAX_DEPTH)
        return mh_err(NULL, w->err, MH_EINVAL, "%s is nested more than %d "
                      "directories deep", path, MH_TREE_MAX_DEPTH);
    if (++w->dirs > MH_TREE_MAX_DIRS)
        return mh_err(NULL, w->err, MH_EINVAL, "more than %d directories "
                      "under %s (symbolic links that reach the same "
                      "directories by many paths?); the last was %s",
                      MH_TREE_MAX_DIRS, w->root[0] ? w->root : "/", path);
    DIR *d = opendir(path);
    if (!d)
        return mh_err(NULL, w->err, mh_errno_status(errno, MH_EIO),
                      "cannot read directory %s: %s",
                      path, mh_errno_text(errno));
    w->dev[w->depth] = st.st_dev;
    w->ino[w->depth] = st.st_ino;
    w->depth++;
    mh_status rc = MH_OK;
    struct dirent *de;
    while (rc == MH_OK && (errno = 0, de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        size_t n = strlen(nm);
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
            continue;
        size_t nr = rlen + (rlen ? 1 : 0);
        char full[PATH_MAX];
        if (nr + n >= sizeof w->rel ||
            snprintf(full, sizeof full, "%s/%.*s%s%s", w->root, (int)rlen,
                     w->rel, rlen ? "/" : "", nm) >= (int)sizeof full) {
            rc = mh_err(NULL, w->err, MH_EINVAL, "path too long under %s",
                        path);
            break;
        }
        if (stat(full, &st) != 0) {
            /* A dangling link is nothing there.  Anything else the walk
             * would take (a link loop, a file it may not reach) is an
             * error: a file silently left out of a database or an index
             * is worse. */
            int e = errno;
            if (e == ENOENT || e == ENOTDIR ||
                (!w->keep(w->ud, nm, n, false) &&
                 !w->keep(w->ud, nm, n, true)))
                continue;
            rc = mh_err(NULL, w->err, mh_errno_status(e, MH_EIO),
                        "cannot read %s: %s", full, mh_errno_text(e));
            break;
        }
        bool dir = S_ISDIR(st.st_mode);
        if (!w->keep(w->ud, nm, n, dir) || !(dir || S_ISREG(st.st_mode)))
            continue;
        if (rlen)
            w->rel[rlen] = '/';
        memcpy(w->rel + nr, nm, n + 1);
        rc = dir ? walk_dir(w, nr + n) : w->file(w->ud, full, w->rel, nr + n,
                                                 &st);
        w->rel[rlen] = '\0';
    }
    if (rc == MH_OK && errno != 0)
        rc = mh_err(NULL, w->err, MH_EIO, "cannot read directory %s: %s",
                    path, strerror(errno));
    closedir(d);
    w->depth--;
    return rc;
}

mh_status mh_tree_walk(const char *root, mh_tree_keep_fn keep,
                       mh_tree_file_fn file, void *ud, mh_error **err)
{
    walk *w = calloc(1, sizeof *w);
    if (!w)
        return mh_err(NULL, err, MH_ENOMEM, "out of memory walking %s", root);
    w->root = root;
    w->keep = keep;
    w->file = file;
    w->ud = ud;
    w->err = err;
    mh_status rc = walk_dir(w, 0);
    free(w);
    return rc;
}
