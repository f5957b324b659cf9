/*
 * finders/notify.h -- change notification for the filesystem finder's
 * listing caches (inotify), so that a cached listing is trusted without a
 * system call per search path entry per import (mh_ntf_*).
 *
 * A listing carries a stamp taken when its directory was watched, just
 * before it was read.  The stamp stays current until an event on that
 * directory (a name added, removed or renamed) or a host-wide event (the
 * queue overflowed, a directory was moved or replaced, a directory above
 * an entry changed the name on the entry's path) makes it stale.  Events
 * are read once per find or list walk (mh_ntf_drain: one read(2) that
 * usually returns EAGAIN).  Without inotify (no kernel support, no
 * instances or watches left, after fork(), or the "inotify" fault site)
 * every stamp is stale and the finder falls back to stat() per use.
 */
#ifndef MH_FINDERS_NOTIFY_H
#define MH_FINDERS_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

struct mh_host;

typedef struct mh_ntf_stamp {
    int wd;             /* inotify watch, or -1: never current */
    uint64_t gen;       /* that watch's event count when taken */
    uint64_t epoch;     /* the host-wide event count when taken */
} mh_ntf_stamp;

#define MH_NTF_NONE ((mh_ntf_stamp){-1, 0, 0})

/* Watch directory `dir` and stamp *st: call before reading it.  Leaves
 * MH_NTF_NONE when it cannot be watched, or when it is on a network
 * filesystem (statfs of the path; mh_ntf_remote_type). */
void mh_ntf_watch(struct mh_host *h, const char *dir, mh_ntf_stamp *st);

/* The same for a directory the caller opens next: its filesystem is not
 * looked at here but on the open descriptor, by mh_ntf_opened, which
 * must come before the stamp is trusted. */
void mh_ntf_watch_first(struct mh_host *h, const char *dir,
                        mh_ntf_stamp *st);

/* Directory `dir`, stamped by mh_ntf_watch_first, is open as fd: true
 * when its filesystem is local.  False (and *st becomes MH_NTF_NONE, with
 * a trace when it was watched) on a network filesystem, or when fstatfs
 * cannot tell. */
bool mh_ntf_opened(struct mh_host *h, int fd, const char *dir,
                   mh_ntf_stamp *st);

/* Is the stamp still current (nothing changed since it was taken, as of
 * the last drain)?  No system call, no lock. */
bool mh_ntf_current(struct mh_host *h, const mh_ntf_stamp *st);

/* The count of events read so far that could have made some listing's
 * stamp stale (every event on a listed directory, and every host-wide
 * one): while it stays the same, every stamp current when it was read
 * still is.  False when notification is off (every stamp is stale). */
bool mh_ntf_seq(struct mh_host *h, uint64_t *seq);

/* Read the events that arrived: once before each find or list walk. */
void mh_ntf_drain(struct mh_host *h);

/* Watch the directories above entry `root` (by its path as given and by
 * its real path): a rename or a new symbolic link there that changes
 * where the entry's path leads makes every stamp stale. */
void mh_ntf_root(struct mh_host *h, const char *root);

/* Make the host's inotify instance (at host creation). */
void mh_ntf_init(struct mh_host *h);
void mh_ntf_free(struct mh_host *h);

/* Is statfs's f_type a filesystem that other machines change (NFS, SMB,
 * FUSE, Ceph, ...)?  Their changes raise no inotify event, and a file
 * mapped from one may vanish under the mapping. */
bool mh_ntf_remote_type(unsigned long f_type);

#endif /* MH_FINDERS_NOTIFY_H */
