/*
 * finders/tree.h -- walking a directory of modules (mh_tree_*), as the
 * writers (mh_pack, mh_index_dir) see it.
 *
 * Depth first; symbolic links are followed the way the filesystem finder
 * follows them, but never back into a directory already on the walk, and
 * never deeper than MH_TREE_MAX_DEPTH.  Dangling links are skipped.
 */
#ifndef MH_FINDERS_TREE_H
#define MH_FINDERS_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "modhost.h"

#define MH_TREE_MAX_DEPTH 64
/* Directories one walk visits at most: links that reach the same
 * directories many ways (a fan of them, each level twice the last) would
 * otherwise walk for ever without a loop to stop them. */
#define MH_TREE_MAX_DIRS 100000

/* Should the walk look at this directory entry at all?  (is_dir: it is,
 * or leads to, a directory.) */
typedef bool (*mh_tree_keep_fn)(void *ud, const char *name, size_t len,
                                bool is_dir);

/* A regular file kept: full path, path relative to the root (rlen bytes),
 * and its stat.  A status other than MH_OK stops the walk. */
typedef mh_status (*mh_tree_file_fn)(void *ud, const char *full,
                                     const char *rel, size_t rlen,
                                     const struct stat *st);

/* Walk root.  Errors (unreadable directory, too deep, path too long) go
 * to *err (C allocator) and stop the walk. */
mh_status mh_tree_walk(const char *root, mh_tree_keep_fn keep,
                       mh_tree_file_fn file, void *ud, mh_error **err);

#endif /* MH_FINDERS_TREE_H */
