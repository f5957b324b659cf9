/*
 * host/fileio.c -- whole reads and writes on file descriptors (mh_io_*),
 * with EINTR and short transfers handled once, here; SHA-256 of bytes and
 * of a file, and hex digits.
 *
 * SHA-256 is OpenSSL's.  Where the OpenSSL headers this is built with
 * still declare its low-level SHA256_* functions (deprecated since 3.0,
 * not removed), they are used: the first EVP digest of a process sets up
 * OpenSSL's providers and reads its configuration file -- about 1.5 ms
 * here, which the first Lua import of every process paid to name its
 * bytecode cache file, against about 20 µs for the first SHA256_Init.
 * The same function, the same SHA-NI code.  Signatures (host/trust.c)
 * stay on EVP.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1 /* SHA256_Init and friends, below */

#include "host/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

#include <openssl/evp.h>
#include <openssl/sha.h>

/* Exactly the condition under which <openssl/sha.h> declares them.  The
 * EVP branch is built with OpenSSL 3 by -DOPENSSL_API_COMPAT=30000
 * -DOPENSSL_NO_DEPRECATED: `make evp`, in CI, builds and tests it so. */
#if !defined(OPENSSL_NO_DEPRECATED_3_0)
typedef SHA256_CTX sha_ctx;
static bool sha_init(sha_ctx *c)
{
    return SHA256_Init(c) == 1;
}
static bool sha_update(sha_ctx *c, const void *d, size_t n)
{
    return SHA256_Update(c, d, n) == 1;
}
static bool sha_final(sha_ctx *c, unsigned char out[32])
{
    return SHA256_Final(out, c) == 1;
}
static void sha_done(sha_ctx *c)
{
    MH_UNUSED(c);
}
#else
typedef EVP_MD_CTX *sha_ctx;
static bool sha_init(sha_ctx *c)
{
    if ((*c = EVP_MD_CTX_new()) == NULL) {
        errno = ENOMEM;
        return false;
    }
    return EVP_DigestInit_ex(*c, EVP_sha256(), NULL) == 1;
}
static bool sha_update(sha_ctx *c, const void *d, size_t n)
{
    return EVP_DigestUpdate(*c, d, n) == 1;
}
static bool sha_final(sha_ctx *c, unsigned char out[32])
{
    unsigned len = 0;
    return EVP_DigestFinal_ex(*c, out, &len) == 1 && len == 32;
}
static void sha_done(sha_ctx *c)
{
    EVP_MD_CTX_free(*c);
}
#endif

bool mh_sha256(const void *d, size_t n, unsigned char out[32])
{
    sha_ctx c;
    bool ok = sha_init(&c) && sha_update(&c, d, n) && sha_final(&c, out);
    sha_done(&c);
    return ok;
}

int mh_io_write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int mh_io_lock(int fd)
{
    int rc;
    while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
        ;
    return rc;
}

size_t mh_io_read_all(int fd, void *buf, size_t len)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, p + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

int mh_io_read_small_fd(int fd, void *buf, size_t cap, size_t *len,
                        struct stat *st)
{
    int e = fstat(fd, st) != 0 ? errno
            : !S_ISREG(st->st_mode) ? EINVAL
            : (uint64_t)st->st_size > cap ? EFBIG : 0;
    if (!e) {
        errno = 0; /* a file cut meanwhile reads short with none set */
        *len = mh_io_read_all(fd, buf, (size_t)st->st_size);
        if (*len != (size_t)st->st_size)
            e = errno ? errno : EIO;
    }
    return e;
}

void mh_io_unlink_db(const char *path)
{
    static const char *const side[] = {"", "-journal", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof side / sizeof *side; i++) {
        char f[PATH_MAX + 16];
        if ((size_t)snprintf(f, sizeof f, "%s%s", path, side[i]) < sizeof f)
            unlink(f);
    }
}

const char *mh_io_small_why(int e)
{
    return e == EINVAL ? "not a regular file"
           : e == EFBIG ? "too large for a key" : strerror(e);
}

size_t mh_io_pread_all(int fd, void *buf, size_t len, off_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (char *)buf + got, len - got,
                          off + (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

const char *mh_io_sha256(int fd, uint64_t size, unsigned char out[32])
{
    enum { CHUNK = 64 * 1024 };
    unsigned char *buf = malloc(CHUNK);
    sha_ctx md;
    int err = 0;
    errno = 0;
    bool started = buf && sha_init(&md); /* then sha_done, whatever else */
    const char *why = !buf || (!started && errno == ENOMEM)
                          ? (err = ENOMEM, "out of memory")
                      : !started ? "it cannot be hashed" : NULL;
    for (uint64_t at = 0; !why && at < size;) {
        size_t want = size - at < CHUNK ? (size_t)(size - at) : CHUNK;
        errno = 0;
        size_t got = mh_io_pread_all(fd, buf, want, (off_t)at);
        if (got < want) /* an error, or the end of the file came early */
            why = (err = errno) ? "it cannot be read"
                                : "it changed size while being read";
        else if (!sha_update(&md, buf, got))
            why = "it cannot be hashed";
        at += got;
    }
    if (!why && mh_io_pread_all(fd, buf, 1, (off_t)size) != 0)
        why = "it changed size while being read"; /* it grew */
    if (!why && !sha_final(&md, out))
        why = "it cannot be hashed";
    if (buf) /* sha_init was called */
        sha_done(&md);
    free(buf);
    errno = err;
    return why;
}

bool mh_io_age_unsure(int64_t rsec, int64_t rnsec, int64_t sec, int64_t nsec)
{
    long long ds, dn, age;
    bool odd = __builtin_sub_overflow((long long)rsec, (long long)sec, &ds) ||
               __builtin_sub_overflow((long long)rnsec, (long long)nsec,
                                      &dn) ||
               __builtin_mul_overflow(ds, 1000000000LL, &age) ||
               __builtin_add_overflow(age, dn, &age);
    return odd || age < MH_UNSURE_NS;
}

bool mh_hex64_ok(const void *t, size_t n)
{
    const unsigned char *c = t;
    if (!c || n != 64)
        return false;
    for (size_t i = 0; i < 64; i++)
        if (!((c[i] >= '0' && c[i] <= '9') || (c[i] >= 'a' && c[i] <= 'f')))
            return false;
    return true;
}

void mh_hex(const unsigned char *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

bool mh_unhex(const char *s, size_t n, unsigned char *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

bool mh_sha256_hex(const void *d, size_t n, size_t bytes, char *out)
{
    unsigned char sha[32];
    if (bytes > sizeof sha || !mh_sha256(d, n, sha))
        return false;
    mh_hex(sha, bytes, out);
    return true;
}

char *mh_put_dec(char *p, unsigned long long v, int width)
{
    char t[24];
    int n = 0;
    if (width > 20) /* all a 64-bit value can need */
        width = 20;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v || n < width);
    while (n)
        *p++ = t[--n];
    return p;
}

char *mh_put_sdec(char *p, long long v)
{
    if (v < 0)
        *p++ = '-';
    return mh_put_dec(p, v < 0 ? 0ULL - (unsigned long long)v
                            : (unsigned long long)v, 1);
}

void mh_fd_path(char buf[MH_FD_PATH_SIZE], int fd)
{
    static const char pre[] = "/proc/self/fd/";
    memcpy(buf, pre, sizeof pre - 1);
    *mh_put_dec(buf + sizeof pre - 1, (unsigned)fd, 1) = '\0';
}

int mh_io_put_new(mh_host *h, const char *dir, const char *path,
                  const void *data, size_t len, bool replace, bool *never)
{
    *never = false;
    int fd = mh_fault(h, "open")
                 ? (errno = EIO, -1)
                 : open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    int e = fd < 0 ? errno : 0;
    if (e == EOPNOTSUPP || e == EISDIR || e == EINVAL) {
        *never = true; /* EISDIR: a kernel before 3.11 */
        return e;
    }
    if (!e && (mh_fault(h, "write") || mh_io_write_all(fd, data, len)))
        e = errno ? errno : EIO;
    if (!e) {
        /* Linked by its /proc name: linkat's AT_EMPTY_PATH needs a
         * capability.  A file already there (an older one) goes. */
        char proc[MH_FD_PATH_SIZE];
        mh_fd_path(proc, fd);
        int rc = linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
        if (rc != 0 && errno == EEXIST && replace && unlink(path) == 0)
            rc = linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
        e = rc != 0 ? errno : 0;
        if (e == ENOENT && access("/proc/self/fd", F_OK) != 0)
            *never = true;
    }
    if (fd >= 0)
        close(fd);
    return e;
}
