/*
 * loaders/memfd.c -- native code loaded from memory (mh_mfd_*): module
 * bytes from a database or the network, never extracted to a shared place.
 *
 * The memory path
 * ---------------
 *   1. memfd_create(name = module name, close-on-exec, sealable);
 *   2. write the bytes, then seal the file against writes, growing and
 *      shrinking (and against further seals): the bytes the caller checked
 *      are the bytes that get mapped;
 *   3. dlopen("/proc/self/fd/N").  The fd stays open as long as the module
 *      is loaded: glibc matches already-loaded objects by path name first,
 *      so a reused fd number naming another image would be handed the old
 *      library.
 *
 * The fallback
 * ------------
 * Where executable memfds are refused (vm.memfd_noexec, no /proc, an LSM
 * denying the mapping), or when MH_CONFIG_NO_MEMFD asks for it: a private
 * directory <cache_dir>/native (created 0700; refused unless it is a real
 * directory owned by this user and closed to everybody else), a file
 * written there with a fresh random name, fsynced, loaded, and unlinked at
 * once whether the load worked or not.  Never a shared temporary path.
 *
 * Deduplication
 * -------------
 * Images are kept in a process-wide table keyed by (module name, SHA-256
 * of the bytes), with a reference per loaded module: the same bytes under
 * the same name -- in a second host, or after a failed init -- are the
 * same loaded object, as the same file would be.  The table is process
 * state because the dynamic loader's is; it uses the C allocator, since no
 * single host owns it.  (Two threads loading the very same image for the
 * first time at the same instant may each map a copy; both work.)
 */
#include "host/internal.h"
#include "loaders/loader.h"
#include "loaders/memfd.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: executable memfd, explicitly */
#endif

struct mh_mfd {
    struct mh_mfd *next;
    unsigned char sha[32];
    int fd;                  /* the memfd, or -1 (file fallback) */
    unsigned refs;           /* modules holding this image */
    char path[PATH_MAX];     /* what dlopen was given */
    char name[];             /* module name */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static mh_mfd *table;

/* dlerror() text with the loader-facing path replaced by what users know
 * the module as (the origin). */
static void dl_message(char *out, size_t size, const char *path,
                       const char *origin)
{
    const char *e = dlerror();
    if (!e)
        e = "unknown dynamic loader error";
    const char *at = strstr(e, path);
    if (at)
        snprintf(out, size, "%.*s%s%s", (int)(at - e), e, origin,
                 at + strlen(path));
    else
        snprintf(out, size, "%s", e);
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The memory path, steps 1-2.  fd, or -1 with *why set. */
static int memfd_image(const char *name, const mh_blob *b, char *path,
                       size_t size, const char **why)
{
    char mname[250];
    snprintf(mname, sizeof mname, "%s", name);
    int fd = memfd_create(mname, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL) /* a kernel before MFD_EXEC */
        fd = memfd_create(mname, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        *why = "memfd_create refused";
        return -1;
    }
    if (write_all(fd, b->data, b->len) != 0) {
        *why = "writing the memfd failed";
        goto fail;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                                   F_SEAL_SEAL) != 0) {
        *why = "sealing the memfd failed";
        goto fail;
    }
    snprintf(path, size, "/proc/self/fd/%d", fd);
    if (access(path, R_OK) != 0) {
        *why = "/proc/self/fd is not available";
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* mkdir -p with mode 0700 for what it creates. */
static int mkdir_private(const char *dir)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

/* The fallback's private directory: <cache_dir>/native, checked. */
static mh_status private_dir(mh_host *h, char *dir, size_t size,
                             mh_error **err)
{
    if (snprintf(dir, size, "%s/native", h->cache_dir) >= (int)size)
        return mh_err(h, err, MH_EPATH, "cache directory path too long: %s",
                      h->cache_dir);
    if (mkdir_private(dir) != 0)
        return mh_err(h, err, MH_EIO, "cannot create the private directory "
                      "%s for native code loaded from memory: %s", dir,
                      strerror(errno));
    struct stat st;
    if (lstat(dir, &st) != 0)
        return mh_err(h, err, MH_EIO, "cannot check %s: %s", dir,
                      strerror(errno));
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 077) != 0)
        return mh_err(h, err, MH_EPATH,
                      "refusing to write native code into %s: it must be a "
                      "directory (not a link) owned by uid %u with mode 0700, "
                      "but it is %s, owned by uid %u, mode %03o", dir,
                      (unsigned)geteuid(),
                      S_ISDIR(st.st_mode) ? "a directory"
                      : S_ISLNK(st.st_mode) ? "a symbolic link"
                                            : "not a directory",
                      (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
    return MH_OK;
}

/* The fallback: a private file, loaded and unlinked.  Handle or NULL. */
static void *file_image(mh_host *h, mh_module *mod, const mh_blob *b,
                        char *path, size_t size, mh_error **err)
{
    char dir[PATH_MAX];
    if (private_dir(h, dir, sizeof dir, err) != MH_OK)
        return NULL;
    if (snprintf(path, size, "%s/%.64s-XXXXXX.so", dir, mod->name) >=
        (int)size) {
        mh_err(h, err, MH_EPATH, "path too long in %s", dir);
        return NULL;
    }
    int fd = mkostemps(path, 3, O_CLOEXEC);
    if (fd < 0) {
        mh_err(h, err, MH_EIO, "cannot create a file in %s: %s", dir,
               strerror(errno));
        return NULL;
    }
    if (fchmod(fd, 0700) != 0 || write_all(fd, b->data, b->len) != 0 ||
        fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        mh_err(h, err, MH_EIO, "cannot write %s: %s", path, strerror(e));
        return NULL;
    }
    close(fd);
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    char why[512];
    if (!dl)
        dl_message(why, sizeof why, path, mod->origin);
    unlink(path); /* loaded or not, the file never outlives this call */
    if (!dl)
        mh_err(h, err, MH_ELOAD, "cannot load module '%s': %s", mod->name,
               why);
    return dl;
}

static mh_mfd *entry_new(const char *name, const unsigned char *sha, int fd,
                         const char *path)
{
    size_t n = strlen(name);
    mh_mfd *e = malloc(sizeof *e + n + 1);
    if (!e)
        return NULL;
    memcpy(e->sha, sha, sizeof e->sha);
    e->fd = fd;
    e->refs = 1;
    snprintf(e->path, sizeof e->path, "%s", path);
    memcpy(e->name, name, n + 1);
    e->next = table; /* table lock held */
    table = e;
    return e;
}

static mh_status load_locked(mh_host *h, mh_module *mod, const mh_blob *b,
                             const unsigned char *sha, void **dl_out,
                             mh_mfd **ref, mh_error **err);

mh_status mh_mfd_load(mh_host *h, mh_module *mod, const mh_blob *b,
                      void **dl_out, mh_mfd **ref, mh_error **err)
{
    unsigned char sha[32];
    *dl_out = NULL;
    *ref = NULL;

    if (!EVP_Digest(b->data, b->len, sha, NULL, EVP_sha256(), NULL))
        return mh_err(h, err, MH_ENOMEM, "cannot hash module '%s' (%s)",
                      mod->name, mod->origin);

    /* The table lock is held across the whole load, so two threads loading
     * one image for the first time get one object.  dlopen is serialised
     * by the C library anyway, and plugins cannot call back into this
     * file (they do not link against libmodhost). */
    pthread_mutex_lock(&table_lock);
    mh_status rc = load_locked(h, mod, b, sha, dl_out, ref, err);
    pthread_mutex_unlock(&table_lock);
    return rc;
}

static mh_status load_locked(mh_host *h, mh_module *mod, const mh_blob *b,
                             const unsigned char *sha, void **dl_out,
                             mh_mfd **ref, mh_error **err)
{
    char path[PATH_MAX], why[512];

    /* Already loaded: the same object again. */
    mh_mfd *e = table;
    while (e && !(memcmp(e->sha, sha, sizeof e->sha) == 0 &&
                  strcmp(e->name, mod->name) == 0))
        e = e->next;
    if (e) {
        dlerror();
        void *dl = dlopen(e->path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
            dl_message(why, sizeof why, e->path, mod->origin);
            return mh_err(h, err, MH_ELOAD, "cannot load module '%s': %s",
                          mod->name, why);
        }
        e->refs++;
        MH_TRACE(h, "%s: same image as already loaded (%s)", mod->name,
                 e->path);
        *dl_out = dl;
        *ref = e;
        return MH_OK;
    }

    /* The memory path. */
    const char *mwhy = "disabled by MH_CONFIG_NO_MEMFD";
    why[0] = '\0';
    if (!(h->flags & MH_CONFIG_NO_MEMFD)) {
        int fd = memfd_image(mod->name, b, path, sizeof path, &mwhy);
        if (fd >= 0) {
            dlerror();
            void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (dl) {
                e = entry_new(mod->name, sha, fd, path);
                if (!e) {
                    dlclose(dl);
                    close(fd);
                    return mh_err(h, err, MH_ENOMEM,
                                  "out of memory loading '%s'", mod->name);
                }
                MH_TRACE(h, "%s: loaded from a sealed memfd (%zu bytes)",
                         mod->name, b->len);
                *dl_out = dl;
                *ref = e;
                return MH_OK;
            }
            dl_message(why, sizeof why, path, mod->origin);
            mwhy = why;
            close(fd);
        }
    }

    /* The fallback. */
    MH_TRACE(h, "%s: memory path not used (%s); private file fallback",
             mod->name, mwhy);
    mh_error *ferr = NULL;
    void *dl = file_image(h, mod, b, path, sizeof path, &ferr);
    if (!dl) {
        if (!why[0])
            return mh_err_give(ferr, err);
        /* The memfd load failed too: say both. */
        mh_status rc = mh_err(h, err, MH_ELOAD, "cannot load module '%s': "
                              "%s (and from a private file: %s)", mod->name,
                              why, mh_error_message(ferr));
        mh_error_free(ferr);
        return rc;
    }
    e = entry_new(mod->name, sha, -1, path);
    if (!e) {
        dlclose(dl);
        return mh_err(h, err, MH_ENOMEM, "out of memory loading '%s'",
                      mod->name);
    }
    *dl_out = dl;
    *ref = e;
    return MH_OK;
}

void mh_mfd_release(mh_mfd *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&table_lock);
    if (--e->refs > 0) {
        pthread_mutex_unlock(&table_lock);
        return;
    }
    /* The last module let go (after its dlclose).  The C library may
     * still keep the object mapped (RTLD_NODELETE, unique symbols of C++
     * code, another dlopen of it): then its path must keep naming this
     * image, or a later memfd that got the same fd number would be handed
     * this library by name.  Such an image stays, fd open, for reuse. */
    void *still = dlopen(e->path, RTLD_NOW | RTLD_NOLOAD);
    if (still) {
        dlclose(still);
        pthread_mutex_unlock(&table_lock);
        return;
    }
    for (mh_mfd **p = &table; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
    pthread_mutex_unlock(&table_lock);
    if (e->fd >= 0)
        close(e->fd);
    free(e);
}
