/*
 * host/secure.h -- checks that keep other users' files out of this
 * process's code (mh_sec_*).
 */
#ifndef MH_HOST_SECURE_H
#define MH_HOST_SECURE_H

#include <stddef.h>

#include "modhost.h"

struct mh_host;

/*
 * Make `path` a private directory and check it can be trusted: created
 * (with its missing parents) mode 0700 if absent, and not itself a
 * symbolic link; then, on its real path,
 * every ancestor must be owned by root or this user and be writable by
 * nobody else unless it is sticky (as /tmp is), and the directory itself
 * must be owned by this user with no group or other permissions.  On
 * success the real path is copied to real (size bytes).  Otherwise an
 * error names the offending directory and why.
 */
mh_status mh_sec_private_dir(struct mh_host *h, const char *path, char *real,
                             size_t size, mh_error **err);

#endif /* MH_HOST_SECURE_H */
