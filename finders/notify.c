/*
 * finders/notify.c -- inotify behind the listing caches (see notify.h).
 *
 * One inotify instance per host, made at the first watch.  Each watch
 * descriptor has an event count (gen) in a two-level array that only
 * grows, so mh_ntf_current reads it without a lock; the host-wide count
 * (epoch) covers what invalidates listings of more than one directory.
 * Events are read under the lock, by whichever thread drains.
 */
#include "host/internal.h"
#include "finders/finder.h"
#include "finders/notify.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#define CHUNK 64u            /* watch slots per chunk */
#define MAX_WD (1u << 20)    /* watch descriptors below 2^20 have a slot */
#define MASK (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO |       \
              IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

/* The spellings kept of a directory above entries: one directory may be
 * reached by several (T/app and T/app/bin/.., a link's path and its
 * target's), and an event names it by none in particular. */
#define NTF_ABOVE_MAX 4

typedef struct ntf_wd {
    _Atomic uint64_t gen;       /* events seen on this watch */
    const char *above[NTF_ABOVE_MAX]; /* interned paths by which it is a
                                   directory above an entry, or NULL */
    bool above_more;            /* more than those: every name counts */
    bool listed;                /* a listing is stamped with it */
} ntf_wd;

/* Slots of watch descriptors, CHUNK to a chunk.  The kernel hands out
 * descriptors counting up from 1, so a host's slots are a few chunks; a
 * chunk never moves once made (its counters are updated in place), only
 * this directory of chunks grows, by doubling into a new copy. */
typedef struct ntf_dir {
    size_t n;                   /* chunk pointers in c[] */
    struct ntf_dir *older;      /* the retired list */
    _Atomic(ntf_wd *) c[];
} ntf_dir;

struct mh_notify {
    pthread_mutex_t lock;       /* watching, draining, roots */
    _Atomic int fd;             /* the inotify instance, or -1: off */
    int mounts;                 /* /proc/self/mountinfo, polled: a mount
                                   over a watched directory raises no
                                   inotify event; or -1 (lock held) */
    _Atomic bool blind;         /* a directory above an entry could not be
                                   watched: trust nothing, stat instead */
    unsigned forks;             /* fork count when made */
    _Atomic uint64_t epoch;
    _Atomic uint64_t seq;       /* events that could change a listing */
    _Atomic(ntf_dir *) dir;     /* the chunks, read lock-free */
    ntf_dir *retired;           /* smaller directories: readers may still
                                   be there */
    const char **roots;         /* paths to entries: first the ngiven
                                   given (entries, package links), then
                                   those derived from them (each link
                                   hop, the real path), made anew at
                                   each rewatch */
    size_t nroots, ngiven, caproots;
};

/* A child of fork() shares the parent's inotify queue: reading it would
 * steal the parent's events.  The child turns notification off
 * (mh_fork_count). */

static struct mh_notify *get(mh_host *h, bool make)
{
    struct mh_notify *n = atomic_load_explicit(&h->notify,
                                               memory_order_acquire);
    if (n || !make)
        return n;
    n = mh_mem_calloc(h, 1, sizeof *n);
    if (!n)
        return NULL;
    pthread_mutex_init(&n->lock, NULL);
    n->forks = mh_fork_count();
    int fd = mh_fault(h, "inotify") ? -1
                                    : inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    atomic_init(&n->fd, fd);
    n->mounts = fd < 0 ? -1
                       : open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        MH_TRACE(h, "fs: no change notification (%s): directories are "
                 "checked with stat() at each use", strerror(errno));
    struct mh_notify *none = NULL;
    if (!atomic_compare_exchange_strong(&h->notify, &none, n)) {
        if (fd >= 0)
            close(fd);
        if (n->mounts >= 0)
            close(n->mounts);
        pthread_mutex_destroy(&n->lock);
        mh_mem_free(h, n, sizeof *n);
        return none;
    }
    return n;
}

static inline bool usable(struct mh_notify *n)
{
    return atomic_load_explicit(&n->fd, memory_order_relaxed) >= 0 &&
           !atomic_load_explicit(&n->blind, memory_order_relaxed) &&
           n->forks == mh_fork_count();
}

static inline ntf_wd *slot(struct mh_notify *n, int wd)
{
    ntf_dir *d = atomic_load_explicit(&n->dir, memory_order_acquire);
    if (wd < 0 || !d || (unsigned)wd / CHUNK >= d->n)
        return NULL;
    ntf_wd *c = atomic_load_explicit(&d->c[(unsigned)wd / CHUNK],
                                     memory_order_acquire);
    return c ? &c[(unsigned)wd % CHUNK] : NULL;
}

/* A directory of at least `need` chunks (lock held): the current one, or
 * a larger copy that replaces it.  NULL: out of memory. */
static ntf_dir *dir_room(mh_host *h, struct mh_notify *n, size_t need)
{
    ntf_dir *d = atomic_load_explicit(&n->dir, memory_order_relaxed);
    if (d && d->n >= need)
        return d;
    size_t cap = d ? d->n : 16;
    while (cap < need)
        cap *= 2;
    ntf_dir *nd = mh_mem_calloc(h, 1, sizeof *nd + cap * sizeof nd->c[0]);
    if (!nd)
        return NULL;
    nd->n = cap;
    for (size_t i = 0; d && i < d->n; i++)
        atomic_init(&nd->c[i], atomic_load_explicit(&d->c[i],
                                                    memory_order_relaxed));
    if (d) {
        d->older = n->retired;
        n->retired = d;
    }
    atomic_store_explicit(&n->dir, nd, memory_order_release);
    return nd;
}

/* The slot of a new watch, making its chunk (lock held). */
static ntf_wd *slot_make(mh_host *h, struct mh_notify *n, int wd)
{
    if (wd < 0 || (unsigned)wd >= MAX_WD)
        return NULL;
    ntf_wd *s = slot(n, wd);
    if (s)
        return s;
    ntf_dir *d = dir_room(h, n, (unsigned)wd / CHUNK + 1);
    ntf_wd *c = d ? mh_mem_calloc(h, CHUNK, sizeof *c) : NULL;
    if (!c)
        return NULL;
    atomic_store_explicit(&d->c[(unsigned)wd / CHUNK], c,
                          memory_order_release);
    return &c[(unsigned)wd % CHUNK];
}

bool mh_ntf_remote_type(unsigned long f_type)
{
    switch (f_type) {
    case 0x6969UL:      /* NFS */
    case 0x517bUL:      /* SMB */
    case 0xfe534d42UL:  /* SMB2 */
    case 0xff534d42UL:  /* CIFS */
    case 0x65735546UL:  /* FUSE */
    case 0x00c36400UL:  /* Ceph */
    case 0x01021997UL:  /* 9P */
    case 0x6b414653UL:  /* AFS */
    case 0x47504653UL:  /* GPFS */
    case 0x0bd00bd0UL:  /* Lustre */
        return true;
    }
    return false;
}

/* Is dir on a filesystem other machines change, or one statfs cannot
 * tell?  A path that leads nowhere (not there, a loop, no permission) is
 * not: watching it then fails, saying why. */
static bool remote(const char *dir)
{
    struct statfs sf;
    if (statfs(dir, &sf) != 0)
        return errno != ENOENT && errno != ENOTDIR && errno != ELOOP &&
               errno != EACCES && errno != ENAMETOOLONG;
    return mh_ntf_remote_type((unsigned long)sf.f_type);
}

static void say_remote(mh_host *h, const char *dir)
{
    MH_TRACE(h, "fs: %s is on a network filesystem: checked with stat() at "
             "each use", dir);
}

/* Add a watch (lock held): its slot, or NULL with errno (ENOENT or
 * ENOTDIR: dir is not there).  The directory's filesystem is checked here
 * by its path, unless the caller checks it once it has the directory open
 * (mh_ntf_opened). */
static ntf_wd *watch(mh_host *h, struct mh_notify *n, const char *dir,
                     bool check, int *wd_out)
{
    if (check && remote(dir)) {
        say_remote(h, dir);
        errno = EREMOTE;
        return NULL;
    }
    /* Fault site "watch": as when the user's watches run out (ENOSPC at
     * fs.inotify.max_user_watches), which tests cannot cause for real
     * without changing the whole machine's limit. */
    int wd = mh_fault(h, "watch")
                 ? (errno = ENOSPC, -1)
                 : inotify_add_watch(atomic_load(&n->fd), dir, MASK);
    if (wd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR)
            MH_TRACE(h, "fs: %s is not there to watch", dir);
        else
            MH_TRACE(h, "fs: cannot watch %s (%s): checked with stat() at "
                     "each use", dir, strerror(e));
        errno = e;
        return NULL;
    }
    *wd_out = wd;
    ntf_wd *s = slot_make(h, n, wd);
    if (!s)
        errno = ENOMEM;
    return s;
}

static void watch_stamp(mh_host *h, const char *dir, bool check,
                        mh_ntf_stamp *st)
{
    *st = MH_NTF_NONE;
    struct mh_notify *n = get(h, true);
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    int wd;
    ntf_wd *s = usable(n) ? watch(h, n, dir, check, &wd) : NULL;
    if (s) {
        s->listed = true;
        *st = (mh_ntf_stamp){wd, atomic_load(&s->gen),
                             atomic_load(&n->epoch)};
    }
    pthread_mutex_unlock(&n->lock);
}

void mh_ntf_watch(mh_host *h, const char *dir, mh_ntf_stamp *st)
{
    watch_stamp(h, dir, true, st);
}

void mh_ntf_watch_first(mh_host *h, const char *dir, mh_ntf_stamp *st)
{
    watch_stamp(h, dir, false, st);
}

bool mh_ntf_opened(mh_host *h, int fd, const char *dir, mh_ntf_stamp *st)
{
    struct statfs sf;
    if (!mh_fault(h, "statfs") && fstatfs(fd, &sf) == 0 &&
        !mh_ntf_remote_type((unsigned long)sf.f_type))
        return true;
    /* The watch stays (a second one of the same directory is the same
     * watch, and taking it off would be an event for every listing); the
     * listing just does not trust it. */
    if (st->wd >= 0)
        say_remote(h, dir);
    *st = MH_NTF_NONE;
    return false;
}

bool mh_ntf_current(mh_host *h, const mh_ntf_stamp *st)
{
    /* Once per listing used, for every entry of every import: nothing
     * here makes a call. */
    struct mh_notify *n = atomic_load_explicit(&h->notify,
                                               memory_order_acquire);
    if (!n || st->wd < 0 || !usable(n) ||
        atomic_load_explicit(&n->epoch, memory_order_acquire) != st->epoch)
        return false;
    ntf_wd *s = slot(n, st->wd);
    return s && atomic_load_explicit(&s->gen, memory_order_acquire) ==
                    st->gen;
}

bool mh_ntf_seq(mh_host *h, uint64_t *seq)
{
    struct mh_notify *n = atomic_load_explicit(&h->notify,
                                               memory_order_acquire);
    if (!n || !usable(n))
        return false;
    *seq = atomic_load_explicit(&n->seq, memory_order_acquire);
    return true;
}

/* Does `above`/`name` lead to an entry (lock held)? */
static bool on_a_root_path(struct mh_notify *n, const char *above,
                           const char *name)
{
    size_t al = strcmp(above, "/") == 0 ? 0 : strlen(above);
    size_t nl = strlen(name);
    for (size_t i = 0; i < n->nroots; i++) {
        const char *r = n->roots[i];
        if (strncmp(r, above, al) == 0 && r[al] == '/' &&
            strncmp(r + al + 1, name, nl) == 0 &&
            (r[al + 1 + nl] == '/' || r[al + 1 + nl] == '\0'))
            return true;
    }
    return false;
}

/* Does name in the directory of watch s lead to an entry, by any of the
 * paths the directory was reached by (lock held)? */
static bool above_a_root(struct mh_notify *n, const ntf_wd *s,
                         const char *name)
{
    if (s->above_more)
        return true;
    for (size_t k = 0; k < NTF_ABOVE_MAX && s->above[k]; k++)
        if (on_a_root_path(n, s->above[k], name))
            return true;
    return false;
}

/* A name that can only be a module file or its sidecar, never a package
 * or a link to one. */
static bool module_file(const char *name)
{
    static const char *const suffixes[] = {MH_NATIVE_SUFFIX, MH_LUA_SUFFIX,
                                           MH_LUAC_SUFFIX, MH_META_SUFFIX};
    size_t len = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t sl = strlen(suffixes[i]);
        if (len > sl && strcmp(name + len - sl, suffixes[i]) == 0)
            return true;
    }
    return false;
}

static void root_add(mh_host *h, struct mh_notify *n, const char *root,
                     bool given);

static bool watch_above(mh_host *h, struct mh_notify *n, const char *r);
static void derive(mh_host *h, struct mh_notify *n, const char *r);
static bool add_hops(mh_host *h, struct mh_notify *n, const char *root);

/* After an event that may have changed where paths lead: the directories
 * above every entry are watched again -- a directory replaced by another
 * of the same name is a new inode, unwatched -- and each entry's real
 * path, if new, is added. */
static void rewatch_roots(mh_host *h, struct mh_notify *n)
{
    /* The derived paths are made again from the given ones: a release
     * rotated away leaves nothing behind. */
    n->nroots = n->ngiven;
    for (size_t i = 0; i < n->ngiven && usable(n); i++) {
        if (!watch_above(h, n, n->roots[i]))
            return;
        derive(h, n, n->roots[i]);
    }
}

void mh_ntf_drain(mh_host *h)
{
    struct mh_notify *n = get(h, false);
    if (!n || atomic_load_explicit(&n->fd, memory_order_relaxed) < 0)
        return;
    pthread_mutex_lock(&n->lock);
    int fd = atomic_load(&n->fd);
    if (fd >= 0 && !usable(n)) { /* a child of fork(): let go of it */
        close(fd);
        atomic_store(&n->fd, -1);
        fd = -1;
        if (n->mounts >= 0)
            close(n->mounts);
        n->mounts = -1;
    }
    uint64_t epoch0 = atomic_load(&n->epoch);
    /* One call asks both: any inotify events, and a change to the mount
     * table (the kernel's POLLPRI on mountinfo, once per change), after
     * which no path is known to lead where it did. */
    struct pollfd pf[2] = {{fd, POLLIN, 0}, {n->mounts, POLLPRI, 0}};
    if (fd >= 0 &&
        poll(pf, n->mounts >= 0 ? 2 : 1, 0) > 0) {
        if (pf[1].revents & (POLLPRI | POLLERR)) {
            atomic_fetch_add_explicit(&n->epoch, 1, memory_order_release);
            atomic_fetch_add_explicit(&n->seq, 1, memory_order_release);
        }
    }
    if (!(pf[0].revents & POLLIN))
        fd = -1; /* nothing to read */
    _Alignas(struct inotify_event) char buf[4096];
    while (fd >= 0) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break; /* EAGAIN: nothing more */
        for (char *p = buf; p < buf + r;) {
            const struct inotify_event *e = (const void *)p;
            p += sizeof *e + e->len;
            ntf_wd *s = slot(n, e->wd);
            if (s)
                atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
            /* A directory made, moved or gone changes where paths below
             * it lead: every listing is in question.  So does any other
             * name that could be a package (a symbolic link to one is no
             * IN_ISDIR event), and a change of a name on the way to an
             * entry.  A module file added or removed concerns its own
             * directory only. */
            const uint32_t self = IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED;
            bool wide =
                !s || (e->mask & (IN_Q_OVERFLOW | self)) ||
                /* in a listed directory: a directory, or a name that may
                 * be a link to one */
                (s->listed && e->len &&
                 ((e->mask & IN_ISDIR) || !module_file(e->name))) ||
                /* above an entry (as /tmp is): only its own path's names;
                 * others come and go there all the time */
                ((s->above[0] || s->above_more) && e->len &&
                 above_a_root(n, s, e->name));
            if (wide)
                atomic_fetch_add_explicit(&n->epoch, 1,
                                          memory_order_release);
            if (wide || s->listed)
                atomic_fetch_add_explicit(&n->seq, 1, memory_order_release);
        }
    }
    /* Paths may lead elsewhere now (a release directory swapped behind a
     * link): watch the directories above every entry's real path again. */
    if (atomic_load(&n->epoch) != epoch0 && usable(n))
        rewatch_roots(h, n);
    pthread_mutex_unlock(&n->lock);
}

/* Add root (lock held), given or derived, and watch above it. */
static void root_add(mh_host *h, struct mh_notify *n, const char *root,
                     bool given)
{
    const char *r = mh_int_cstr(h, root);
    if (!r)
        return;
    for (size_t i = 0; i < n->nroots; i++) {
        if (n->roots[i] != r)
            continue;
        if (given && i >= n->ngiven) { /* derived until now */
            n->roots[i] = n->roots[n->ngiven];
            n->roots[n->ngiven++] = r;
        }
        return;
    }
    if (n->nroots == n->caproots) {
        size_t cap = n->caproots ? n->caproots * 2 : 8;
        const char **v = mh_mem_realloc(h, n->roots,
                                        n->caproots * sizeof *v,
                                        cap * sizeof *v);
        if (!v)
            return;
        n->roots = v;
        n->caproots = cap;
    }
    n->roots[n->nroots++] = r;
    if (given) {
        n->roots[n->nroots - 1] = n->roots[n->ngiven];
        n->roots[n->ngiven++] = r;
    }
    watch_above(h, n, r);
}

/* The paths derived from given root r: each hop of its links, and its
 * real path (lock held). */
static void derive(mh_host *h, struct mh_notify *n, const char *r)
{
    char real[PATH_MAX];
    if (!add_hops(h, n, r) && realpath(r, real) && strcmp(real, r) != 0)
        root_add(h, n, real, false);
}

/* Watch every directory above entry r, "/" first, as far as they exist
 * (lock held): the making of the first that does not is an event in the
 * one above it, which rewatch_roots follows.  false (and the host blind:
 * stat() at each use) when one that is there cannot be watched. */
static bool watch_above(mh_host *h, struct mh_notify *n, const char *r)
{
    char path[PATH_MAX];
    size_t len = strlen(r);
    for (size_t i = 0; i < len; i++) {
        if (r[i] != '/')
            continue;
        size_t pl = i ? i : 1;
        if (pl >= sizeof path)
            break;
        memcpy(path, r, pl);
        path[pl] = '\0';
        int wd;
        ntf_wd *s = watch(h, n, path, true, &wd);
        if (!s && (errno == ENOENT || errno == ENOTDIR))
            return true; /* not there (yet) */
        if (!s) { /* a change there would go unseen */
            atomic_store(&n->blind, true);
            MH_TRACE(h, "fs: cannot watch %s above entry %s: directories "
                     "are checked with stat() at each use", path, r);
            return false;
        }
        const char *spelt = mh_int_str(h, path, pl);
        size_t k = 0;
        while (k < NTF_ABOVE_MAX && s->above[k] && s->above[k] != spelt)
            k++;
        if (k == NTF_ABOVE_MAX || !spelt)
            s->above_more = true; /* no room, or no memory: every name */
        else
            s->above[k] = spelt;
    }
    return true;
}

/* Does a link's target hold a "." or ".." component (then it is not
 * followed here: realpath gives where the chain ends)? */
static bool dotted(const char *t)
{
    for (const char *c = t; *c;) {
        size_t n = strcspn(c, "/");
        if ((n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return true;
        c += n + (c[n] == '/');
    }
    return false;
}

/* The paths root leads through, one link at a time (lock held), each
 * added as a root: the directories above every hop are then watched --
 * in /opt/app -> /srv/current -> releases/7, /srv, which holds
 * "current", as well as /opt and /srv/releases.  True when the last one
 * has no link in it: it is then the real path (every component was
 * looked at), added already. */
static bool add_hops(mh_host *h, struct mh_notify *n, const char *root)
{
    char cur[PATH_MAX], target[PATH_MAX], next[PATH_MAX];
    size_t len = strlen(root);
    if (len >= sizeof cur)
        return false;
    memcpy(cur, root, len + 1);
    for (int hop = 0; hop < 40; hop++) { /* SYMLOOP_MAX */
        size_t i = 1, j = 1; /* cur[j..i): a component */
        ssize_t tl = 0;
        for (; i <= len; i++) {
            if (cur[i] != '/' && cur[i] != '\0')
                continue;
            char save = cur[i];
            struct stat st;
            cur[i] = '\0';
            int r = lstat(cur, &st);
            if (r == 0 && S_ISLNK(st.st_mode))
                tl = readlink(cur, target, sizeof target - 1);
            cur[i] = save;
            if (r != 0 || tl != 0)
                break;
            j = i + 1;
        }
        if (i > len)
            return true; /* no link left */
        if (tl <= 0)
            return false; /* a component missing, or unreadable */
        target[tl] = '\0';
        /* The directory holding the link, cur[0..j-1), has no link in it:
         * the target's leading "." and ".." are taken against it as the
         * kernel would ("../srv/current"); one further in may follow a
         * link of the target's, so it ends the chain. */
        size_t bl = target[0] == '/' ? 0 : j - 1;
        const char *t = target;
        for (;;) {
            while (*t == '/')
                t++;
            size_t cn = strcspn(t, "/");
            if (cn == 2 && t[0] == '.' && t[1] == '.')
                while (bl > 0 && cur[--bl] != '/')
                    ;
            else if (!(cn == 1 && t[0] == '.'))
                break;
            t += cn;
        }
        if (dotted(t))
            return false;
        int m = snprintf(next, sizeof next, "%.*s/%s%s", (int)bl, cur, t,
                         cur + i);
        if (m < 0 || (size_t)m >= sizeof next)
            return false;
        /* One slash between components, none at the end. */
        size_t o = 0;
        for (size_t k = 0; next[k]; k++)
            if (next[k] != '/' || (o == 0 || cur[o - 1] != '/'))
                cur[o++] = next[k];
        while (o > 1 && cur[o - 1] == '/')
            o--;
        cur[o] = '\0';
        len = o;
        root_add(h, n, cur, false);
    }
    return false;
}

void mh_ntf_root(mh_host *h, const char *root)
{
    struct mh_notify *n = get(h, true);
    if (!n || root[0] != '/')
        return;
    pthread_mutex_lock(&n->lock);
    if (usable(n)) {
        root_add(h, n, root, true);
        derive(h, n, root);
    }
    pthread_mutex_unlock(&n->lock);
}

void mh_ntf_init(mh_host *h)
{
    get(h, true);
}

void mh_ntf_free(mh_host *h)
{
    struct mh_notify *n = get(h, false);
    if (!n)
        return;
    int fd = atomic_load(&n->fd);
    if (fd >= 0)
        close(fd);
    if (n->mounts >= 0)
        close(n->mounts);
    ntf_dir *d = atomic_load(&n->dir);
    for (size_t i = 0; d && i < d->n; i++) {
        ntf_wd *c = atomic_load(&d->c[i]);
        if (c)
            mh_mem_free(h, c, CHUNK * sizeof *c);
    }
    if (d) /* the current directory, then the ones it replaced */
        d->older = n->retired;
    for (ntf_dir *older; d; d = older) {
        older = d->older;
        mh_mem_free(h, d, sizeof *d + d->n * sizeof d->c[0]);
    }
    mh_mem_free(h, n->roots, n->caproots * sizeof *n->roots);
    pthread_mutex_destroy(&n->lock);
    mh_mem_free(h, n, sizeof *n);
    atomic_store(&h->notify, NULL);
}
