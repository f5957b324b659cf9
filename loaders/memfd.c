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
 * Where memfds cannot be used (memfd_create or sealing refused, no /proc,
 * vm.memfd_noexec or an LSM refusing to map one executable), or when
 * MH_CONFIG_NO_MEMFD asks for it: a private directory <cache_dir>/native
 * (created 0700; refused unless it and every directory above it pass
 * mh_sec_private_dir), a file written there under a fresh random name,
 * fsynced, loaded, and unlinked at once whether the load worked or not.
 * Never a shared temporary path.  An image the dynamic loader rejects for
 * its own reasons (a missing dependency) is not retried there.
 *
 * Deduplication
 * -------------
 * Images are kept in a process-wide table keyed by (module name, length,
 * a fast 64-bit hash of the bytes), with a reference per loaded module:
 * the same bytes under the same name -- in a second host, or after a
 * failed init -- are the same loaded object, as the same file would be.
 * "The same" is exact: when the key matches, the bytes are compared with
 * the loaded memfd's (a cryptographic hash would cost more than the
 * comparison it spares, on every load); an image loaded through a
 * private file, which is unlinked at once, is known by its SHA-256.  The
 * table is process state because the dynamic loader's is; it uses the C
 * allocator, since no single host owns it.  An image being loaded is in
 * the table marked `loading`: a second thread wanting the same image
 * waits for the first, but the table lock itself is never held while the
 * dynamic loader runs the image's constructors.
 */
#include "host/internal.h"
#include "host/secure.h"
#include "loaders/loader.h"
#include "loaders/memfd.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U /* Linux 6.3: executable memfd, explicitly */
#endif

struct mh_mfd {
    struct mh_mfd *next;
    uint64_t hash;           /* mh_hash_bytes of the image */
    size_t len;
    unsigned char sha[32];   /* SHA-256, for an image without a memfd */
    bool has_sha;
    int fd;                  /* the memfd, or -1 (file fallback) */
    unsigned refs;           /* modules holding this image */
    bool loading;            /* its first dlopen is under way */
    char path[PATH_MAX];     /* what dlopen was given */
    char name[];             /* module name */
};

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t table_cond = PTHREAD_COND_INITIALIZER;
/* Buckets by the digest's first byte: a load looks at a few entries, not
 * at every image loaded. */
static mh_mfd *table[256];

/* Did the kernel refuse to map the memfd executable (rather than the
 * dynamic loader rejecting the image)? */
static bool mapping_refused(const char *msg)
{
    return strstr(msg, "failed to map segment") ||
           strstr(msg, "Operation not permitted") ||
           strstr(msg, "Permission denied");
}

/* The memory path, steps 1-2.  fd, or -1 with *why set. */
static int memfd_image(mh_host *h, const char *name, const mh_blob *b,
                       char path[MH_FD_PATH_SIZE], const char **why)
{
    char mname[250]; /* memfd_create takes at most 249 bytes of name */
    size_t n = strnlen(name, sizeof mname - 1);
    memcpy(mname, name, n);
    mname[n] = '\0';
    if (mh_fault(h, "memfd")) {
        *why = "memfd_create refused";
        return -1;
    }
    int fd = memfd_create(mname, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL) /* a kernel before MFD_EXEC */
        fd = memfd_create(mname, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        *why = "memfd_create refused";
        return -1;
    }
    if (mh_fault(h, "write") || mh_io_write_all(fd, b->data, b->len) != 0) {
        *why = "writing the memfd failed";
        goto fail;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE |
                                   F_SEAL_SEAL) != 0) {
        *why = "sealing the memfd failed";
        goto fail;
    }
    mh_fd_path(path, fd);
    if (access(path, R_OK) != 0) {
        *why = "/proc/self/fd is not available";
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* The fallback: a private file, loaded and unlinked.  Handle or NULL. */
static void *file_image(mh_host *h, mh_module *mod, const mh_blob *b,
                        char *path, size_t size, mh_error **err)
{
    char want[PATH_MAX], dir[PATH_MAX];
    unsigned char rnd[8];
    if (snprintf(want, sizeof want, "%s/native", h->cache_dir) >=
        (int)sizeof want) {
        mh_err(h, err, MH_EPATH, "cache directory path too long: %s",
               h->cache_dir);
        return NULL;
    }
    if (mh_sec_private_dir(h, want, dir, sizeof dir, err) != MH_OK)
        return NULL;
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        mh_err(h, err, MH_EIO, "no random bytes for a file name: %s",
               strerror(errno));
        return NULL;
    }
    if (snprintf(path, size, "%s/%.64s-%02x%02x%02x%02x%02x%02x%02x%02x.so",
                 dir, mod->name, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
                 rnd[5], rnd[6], rnd[7]) >= (int)size) {
        mh_err(h, err, MH_EPATH, "path too long in %s", dir);
        return NULL;
    }
    int fd = mh_fault(h, "open")
                 ? -1
                 : open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
                                  O_CLOEXEC, 0700);
    if (fd < 0) {
        mh_err(h, err, mh_errno_status(errno, MH_EIO),
               "cannot create a file in %s: %s", dir,
               mh_errno_text(errno));
        return NULL;
    }
    if (mh_fault(h, "write") || mh_io_write_all(fd, b->data, b->len) != 0 ||
        fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(path);
        mh_err(h, err, MH_EIO, "cannot write %s: %s", path, strerror(e));
        return NULL;
    }
    close(fd);
    dlerror();
    void *dl = mh_fault(h, "dlopen") ? NULL
                                     : dlopen(path, RTLD_NOW | RTLD_LOCAL);
    char why[512];
    mh_status rc = MH_ELOAD;
    if (!dl)
        rc = mh_dl_message(why, sizeof why, path, mh_reg_where(mod));
    unlink(path); /* loaded or not, the file never outlives this call */
    if (!dl)
        mh_err(h, err, rc, "cannot load module '%s' (%s): %s", mod->name,
               mh_reg_where(mod), why);
    return dl;
}

/* Map the image and dlopen it, into e (not locked: constructors run). */
static mh_status open_image(mh_host *h, mh_module *mod, const mh_blob *b,
                            mh_mfd *e, void **dl_out, mh_error **err)
{
    const char *mwhy = "MH_CONFIG_NO_MEMFD is set";
    char why[512] = "";
    if (!(h->flags & MH_CONFIG_NO_MEMFD)) {
        int fd = memfd_image(h, mod->name, b, e->path, &mwhy);
        if (fd >= 0) {
            dlerror();
            void *dl = mh_fault(h, "dlopen")
                           ? NULL : dlopen(e->path, RTLD_NOW | RTLD_LOCAL);
            if (dl) {
                e->fd = fd;
                MH_TRACE(h, "%s: loaded from a sealed memfd (%zu bytes)",
                         mod->name, b->len);
                *dl_out = dl;
                return MH_OK;
            }
            mh_status rc = mh_dl_message(why, sizeof why, e->path,
                                         mh_reg_where(mod));
            close(fd);
            if (!mapping_refused(why))
                return mh_err(h, err, rc, "cannot load module '%s' (%s): %s",
                              mod->name, mh_reg_where(mod), why);
            mwhy = why;
        }
    }
    MH_TRACE(h, "%s: memory path not used (%s); private file fallback",
             mod->name, mwhy);
    mh_error *ferr = NULL;
    void *dl = file_image(h, mod, b, e->path, sizeof e->path, &ferr);
    if (dl) {
        e->fd = -1;
        *dl_out = dl;
        return MH_OK;
    }
    if (!why[0]) {
        mh_status rc = mh_err(h, err, mh_error_code(ferr), "cannot load "
                              "module '%s' (%s) from memory (%s), nor from "
                              "a private file: %s", mod->name,
                              mh_reg_where(mod), mwhy,
                              mh_error_message(ferr));
        mh_error_free(ferr);
        return rc;
    }
    /* The module's fault (MH_ELOAD) only where the private file's own
     * dlopen failed for a reason that is not the mapping refused: where
     * neither way may map code here, that is this process's setting (a
     * probe child must not take it for the module's refusal). */
    mh_status fc = mh_error_code(ferr);
    mh_status code = fc == MH_EAGAIN ? MH_EAGAIN
                     : fc == MH_ELOAD &&
                             !mapping_refused(mh_error_message(ferr))
                         ? MH_ELOAD : MH_EIO;
    mh_status rc = mh_err(h, err, code, "cannot load module '%s' (%s): %s "
                          "(and from a private file: %s)", mod->name,
                          mh_reg_where(mod), why, mh_error_message(ferr));
    mh_error_free(ferr);
    return rc;
}

static void unlink_entry(mh_mfd *e)
{
    for (mh_mfd **p = &table[e->hash & 255]; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            return;
        }
}

/* Are b's bytes those of loaded image e (table lock held)?  Read back
 * from its sealed memfd, or, for an image without one, by SHA-256. */
static bool same_image(const mh_mfd *e, const mh_blob *b)
{
    if (e->len != b->len)
        return false;
    if (e->fd < 0) { /* no digest, or none now: loaded apart */
        unsigned char sha[32];
        return e->has_sha && mh_sha256(b->data, b->len, sha) &&
               memcmp(sha, e->sha, sizeof sha) == 0;
    }
    unsigned char buf[8192];
    for (size_t off = 0; off < b->len;) {
        size_t n = b->len - off < sizeof buf ? b->len - off : sizeof buf;
        if (mh_io_pread_all(e->fd, buf, n, (off_t)off) != n ||
            memcmp(buf, b->data + off, n) != 0)
            return false;
        off += n;
    }
    return true;
}

mh_status mh_mfd_load(mh_host *h, mh_module *mod, const mh_blob *b,
                      void **dl_out, mh_mfd **ref, mh_error **err)
{
    *dl_out = NULL;
    *ref = NULL;
    uint64_t hash = mh_hash_bytes(b->data, b->len);

    pthread_mutex_lock(&table_lock);
    mh_mfd *e;
    for (;;) {
        for (e = table[hash & 255]; e; e = e->next)
            if (e->hash == hash && e->len == b->len &&
                strcmp(e->name, mod->name) == 0 &&
                (e->loading || same_image(e, b)))
                break;
        if (!e || !e->loading)
            break;
        pthread_cond_wait(&table_cond, &table_lock);
    }
    if (e) {
        /* Loaded already: the same object again (glibc matches the path
         * name, and the reference keeps the fd that names it open). */
        e->refs++;
        pthread_mutex_unlock(&table_lock);
        char why[512];
        dlerror();
        void *dl = dlopen(e->path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
            mh_status rc = mh_dl_message(why, sizeof why, e->path,
                                         mh_reg_where(mod));
            mh_mfd_release(e);
            return mh_err(h, err, rc, "cannot load module '%s' (%s): %s",
                          mod->name, mh_reg_where(mod), why);
        }
        MH_TRACE(h, "%s: the same image is loaded already; shared",
                 mod->name);
        *dl_out = dl;
        *ref = e;
        return MH_OK;
    }

    size_t n = strlen(mod->name);
    /* Not calloc: zeroing path[PATH_MAX] was 4 KiB written per import
     * (64 cache lines), for a path of a few dozen bytes. */
    e = malloc(sizeof *e + n + 1);
    if (!e) {
        pthread_mutex_unlock(&table_lock);
        return mh_err(h, err, MH_ENOMEM, "out of memory loading '%s'",
                      mod->name);
    }
    e->hash = hash;
    e->len = b->len;
    e->has_sha = false; /* sha: set with it */
    e->path[0] = '\0';
    memcpy(e->name, mod->name, n + 1);
    e->fd = -1;
    e->refs = 1;
    e->loading = true;
    e->next = table[hash & 255];
    table[hash & 255] = e;
    pthread_mutex_unlock(&table_lock);

    void *dl = NULL;
    mh_status rc = open_image(h, mod, b, e, &dl, err);

    if (rc == MH_OK && e->fd < 0) /* before anyone may compare with it */
        e->has_sha = mh_sha256(b->data, b->len, e->sha);
    pthread_mutex_lock(&table_lock);
    e->loading = false;
    if (rc != MH_OK)
        unlink_entry(e);
    pthread_cond_broadcast(&table_cond);
    pthread_mutex_unlock(&table_lock);
    if (rc != MH_OK) {
        free(e);
        return rc;
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
    unlink_entry(e);
    pthread_mutex_unlock(&table_lock);
    if (e->fd >= 0)
        close(e->fd);
    free(e);
}
