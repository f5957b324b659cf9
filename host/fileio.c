/*
 * host/fileio.c -- whole reads and writes on file descriptors (mh_io_*),
 * with EINTR and short transfers handled once, here; a file's SHA-256,
 * and hex digits.
 */
#include "host/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <openssl/evp.h>

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
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int err = 0;
    const char *why = !buf || !md ? (err = ENOMEM, "out of memory")
                    : EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1
                        ? "it cannot be hashed" : NULL;
    for (uint64_t at = 0; !why && at < size;) {
        size_t want = size - at < CHUNK ? (size_t)(size - at) : CHUNK;
        errno = 0;
        size_t got = mh_io_pread_all(fd, buf, want, (off_t)at);
        if (got < want) /* an error, or the end of the file came early */
            why = (err = errno) ? "it cannot be read"
                                : "it changed size while being read";
        else if (EVP_DigestUpdate(md, buf, got) != 1)
            why = "it cannot be hashed";
        at += got;
    }
    unsigned len = 0;
    if (!why && mh_io_pread_all(fd, buf, 1, (off_t)size) != 0)
        why = "it changed size while being read"; /* it grew */
    if (!why && (EVP_DigestFinal_ex(md, out, &len) != 1 || len != 32))
        why = "it cannot be hashed";
    EVP_MD_CTX_free(md);
    free(buf);
    errno = err;
    return why;
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
