/*
 * host/secure.h -- checks that keep other users' files out of this
 * process's code (mh_sec_*).
 */
#ifndef MH_HOST_SECURE_H
#define MH_HOST_SECURE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "modhost.h"

struct mh_host;

/*
 * Make `path` a private directory and check it can be trusted: created
 * (with its missing parents) mode 0700 if absent, and not itself a
 * symbolic link; then, on its real path, every ancestor must be owned by
 * root or this user and be writable by nobody else unless root-owned and
 * sticky (as /tmp is), and the directory itself must be owned by this
 * user with no group or other permissions.  On
 * success the real path is copied to real (size bytes).  Otherwise an
 * error names the offending directory and why.
 */
/* No directory: the home of users who have none, and a host's cache
 * directory when it can have none.  mh_sec_private_dir refuses it and
 * everything under it. */
#define MH_NO_DIR "/nonexistent"
/* The cache directory of a host that can have none (host.c). */
#define MH_NO_CACHE_DIR MH_NO_DIR "/modhost-cache"

/* Is path MH_NO_DIR or under it: a place where no cache is kept, by
 * design (a host with no HOME, or nobody's), not a directory refused? */
bool mh_sec_no_dir(const char *path);

mh_status mh_sec_private_dir(struct mh_host *h, const char *path, char *real,
                             size_t size, mh_error **err);

/* The same checks, making nothing: for a reader (`cache` counts) that
 * must not create the directory, yet must refuse one that would be
 * refused.  A path that does not exist passes when the directories it
 * would be made in pass: MH_OK with *exists false, real untouched. */
mh_status mh_sec_private_dir_if_any(struct mh_host *h, const char *path,
                                    char *real, size_t size, bool *exists,
                                    mh_error **err);

/* Is <cache_dir>/<sub> private (mh_sec_private_dir; made if absent)?  The
 * answer is kept in *state for the host's life (0 not asked yet, 1 yes,
 * -1 no; a passing failure -- no descriptor, memory -- is asked again
 * next time), and a "no" is traced once, after `what`. */
bool mh_sec_cache_subdir(struct mh_host *h, atomic_int *state,
                         const char *sub, const char *what);
/* The same, and with `exec` a directory on a filesystem mounted noexec
 * is a "no" too: copies of native code kept there could not be mapped. */
bool mh_sec_cache_subdir_ex(struct mh_host *h, atomic_int *state,
                            const char *sub, bool exec, const char *what);

/*
 * May code be loaded from directory `dir`?  The same walk, every directory
 * of its real path taken as an ancestor: owned by root or us, writable by
 * nobody else unless root-owned and sticky.  Directories that passed are
 * remembered until mh_sec_forget (mh_invalidate_caches).  Always MH_OK
 * with MH_CONFIG_INSECURE_FILES.
 */
mh_status mh_sec_code_dir(struct mh_host *h, const char *dir, mh_error **err);

/*
 * Open code file `path` (a shared object, a Lua chunk, a database of
 * them) so that it may be loaded: each directory of its real path opened
 * from the one above without following links and checked on that
 * descriptor (owned by root or us, writable by nobody else unless
 * root-owned and sticky), then the file itself opened from the last one
 * and checked (a regular file owned by root or us, writable by nobody
 * else).  MH_OK with
 * *fd, to be read or mapped; else MH_EPATH naming the file or directory,
 * its mode and owner, and the way out.  With MH_CONFIG_INSECURE_FILES,
 * just open(2).
 */
mh_status mh_sec_open_code(struct mh_host *h, const char *path, int *fd,
                           mh_error **err);
/* The same, also giving the check's fstat of the file (all zero but
 * st_size -1 when unchecked, with MH_CONFIG_INSECURE_FILES). */
mh_status mh_sec_open_code_stat(struct mh_host *h, const char *path,
                                int *fd, struct stat *st, mh_error **err);

/* The same checks for a file not read through the descriptor. */
mh_status mh_sec_code_file(struct mh_host *h, const char *path,
                           mh_error **err);

void mh_sec_forget(struct mh_host *h);
void mh_sec_free(struct mh_host *h);

/*
 * Open `path`, a local copy of bytes whose SHA-256 is sha_hex (64
 * lowercase hex digits), to map it: not a link, a regular file of this
 * user or root, writable by no one else, at most max bytes, not on a
 * network filesystem, and hashing to sha_hex as read through the
 * descriptor returned in *out (its size in *size), unchanged (size,
 * mtime, ctime) while it was hashed.  With `stamps`, a copy a stamp shows
 * to be the very file hashed before, unchanged, is not hashed again, and
 * a copy that hashes right is stamped (cache/stamp.c); without, it is
 * hashed every time (a copy vouched for by signature).  Anything else
 * fails with the reason in *why (static text), and the caller reads the
 * bytes another way: MH_ENOTFOUND, there is no such file; MH_EFORMAT, the
 * file is bad itself (a link, not a regular file, another's or writable
 * by others, too large, other bytes: one to make again); MH_EIO, it cannot
 * be told now or here (no descriptor, a read error, a network
 * filesystem, a change while it was hashed).  The file stays mapped while the module is
 * loaded: it must only ever be replaced by rename, never rewritten in
 * place (as the caches here do).
 */
/* What makes the file fstat'd into st unfit to hold code or what vouches
 * for it (not a regular file, owned by another user than root or us,
 * writable by group or others), as static text; NULL if nothing.  The
 * rule for module files and for every file read back from the caches: a
 * cache directory is checked once and then reached by its path, which a
 * link further up may turn elsewhere, so each file is held to it too. */
const char *mh_sec_file_problem(const struct stat *st);

mh_status mh_sec_open_copy(struct mh_host *h, const char *path,
                           const char *sha_hex, size_t max, bool stamps,
                           int *out, long long *size, const char **why);

#endif /* MH_HOST_SECURE_H */
