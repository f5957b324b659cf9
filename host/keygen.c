/*
 * host/keygen.c -- mh_keygen: an Ed25519 key pair for signing module
 * indexes (mh_index_dir) and for MODHOST_TRUST.
 *
 * BASE.key is the private key, PEM PKCS#8 and unencrypted, so it must be
 * private to its owner: it is written under a temporary name created
 * with O_EXCL and mode 0600 (set exactly, whatever the umask), then
 * linked into place, never through an existing file or link.
 * BASE.pub is the public key, PEM SubjectPublicKeyInfo, the form
 * `openssl pkey -pubout` writes and MODHOST_TRUST reads.  Existing files
 * are never overwritten, and a failure removes what this call created.
 *
 * Not tied to a host: it uses the C allocator.
 */
#include "host/internal.h"
#include "cache/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* The first queued OpenSSL error as text (the queue is then emptied). */
static const char *ossl_why(char *buf, size_t size)
{
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, buf, size);
    else
        snprintf(buf, size, "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

/* file, written whole under a temporary name beside it (tmp, mode) and
 * then linked into place: a run killed half-way leaves no empty or
 * half-written key under the real name, which every later keygen would
 * refuse to replace.  link() does not replace an existing file, so the
 * no-overwrite promise holds to the last moment.  *created once file is
 * there; tmp is removed either way. */
static mh_status write_new(const char *file, mode_t mode, BIO *mem,
                           bool *created, mh_error **err)
{
    char *data = NULL;
    long len = BIO_get_mem_data(mem, &data);
    char tmp[PATH_MAX + 24];
    unsigned char r[6];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        return mh_err(NULL, err, MH_EIO, "no random bytes: %s",
                      strerror(errno));
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%02x%02x%02x%02x%02x%02x", file,
                 r[0], r[1], r[2], r[3], r[4], r[5]) >= (int)sizeof tmp)
        return mh_err(NULL, err, MH_EINVAL, "path too long: %s", file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC
                  | O_NOCTTY, mode);
    if (fd < 0)
        return mh_err(NULL, err, MH_EIO, "cannot create %s: %s", file,
                      strerror(errno));
    /* The private key's mode must not depend on the umask being sane. */
    int e = len < 0 ? EIO /* the BIO holds nothing: never linked */
          : (mode == 0600 && fchmod(fd, mode) != 0) ||
                    mh_io_write_all(fd, data, (size_t)len) != 0 ||
                    fsync(fd) != 0
                ? errno : 0;
    if (close(fd) != 0 && !e)
        e = errno;
    mh_status rc = MH_OK;
    if (e) /* named as the file: the temporary one is gone */
        rc = mh_err(NULL, err, MH_EIO, "cannot write %s: %s", file,
                    strerror(e));
    else if (link(tmp, file) != 0)
        rc = errno == EEXIST
                 ? mh_err(NULL, err, MH_EINVAL, "%s already exists; "
                          "refusing to overwrite it", file)
                 : mh_err(NULL, err, MH_EIO, "cannot create %s: %s", file,
                          strerror(errno));
    else
        *created = true;
    unlink(tmp);
    return rc;
}

/* Does base name a directory: its last component empty ("DIR/"), "." or
 * ".."?  BASE is a prefix, so "DIR/" would write the hidden DIR/.key and
 * DIR/.pub, which nobody meant to ask for. */
static bool names_dir(const char *base)
{
    const char *slash = strrchr(base, '/');
    const char *last = slash ? slash + 1 : base;
    return strcmp(last, "") == 0 || strcmp(last, ".") == 0 ||
           strcmp(last, "..") == 0;
}

mh_status mh_keygen(const char *base, mh_error **err)
{
    if (!base || !base[0])
        return mh_err(NULL, err, MH_EINVAL, "mh_keygen: no file name");
    if (names_dir(base))
        return mh_err(NULL, err, MH_EINVAL, "mh_keygen: %s: BASE names a "
                      "directory; give a file name such as DIR/release",
                      base);
    char key[PATH_MAX], pub[PATH_MAX];
    if (snprintf(key, sizeof key, "%s.key", base) >= (int)sizeof key ||
        snprintf(pub, sizeof pub, "%s.pub", base) >= (int)sizeof pub)
        return mh_err(NULL, err, MH_EINVAL, "path too long: %s", base);
    /* The temporary files of runs killed before they linked theirs into
     * place (a private key among them): removed once they are older than
     * any live run's. */
    mh_atw_sweep_beside(key);
    mh_atw_sweep_beside(pub);
    /* Check both before making either: a refusal must leave nothing. */
    struct stat st;
    bool has_key = lstat(key, &st) == 0, has_pub = lstat(pub, &st) == 0;
    if (has_key && !has_pub) /* a run stopped between its two files */
        return mh_err(NULL, err, MH_EINVAL, "%s already exists, without %s; "
                      "refusing to overwrite it (remove it to make a new "
                      "pair, or write its public key with `openssl pkey -in "
                      "%s -pubout -out %s`)", key, pub, key, pub);
    if (has_key || has_pub)
        return mh_err(NULL, err, MH_EINVAL, "%s already exists; refusing to "
                      "overwrite it", has_key ? key : pub);

    char why[256];
    ERR_clear_error();
    EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!pkey)
        return mh_err(NULL, err, MH_EIO, "cannot make an Ed25519 key: %s",
                      ossl_why(why, sizeof why));
    /* Secure-heap memory BIOs are not needed: the text is cleansed before
     * it is freed. */
    BIO *priv = BIO_new(BIO_s_mem()), *pubm = BIO_new(BIO_s_mem());
    bool key_made = false, pub_made = false;
    mh_status rc = MH_OK;
    if (!priv || !pubm) {
        rc = mh_err(NULL, err, MH_ENOMEM, "out of memory");
        goto out;
    }
    if (PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) != 1
        || PEM_write_bio_PUBKEY(pubm, pkey) != 1) {
        rc = mh_err(NULL, err, MH_EIO, "cannot encode the key: %s",
                    ossl_why(why, sizeof why));
        goto out;
    }
    rc = write_new(key, 0600, priv, &key_made, err);
    if (rc == MH_OK)
        rc = write_new(pub, 0644, pubm, &pub_made, err);
out:
    if (rc != MH_OK) {
        if (key_made)
            unlink(key);
        if (pub_made)
            unlink(pub);
    }
    if (priv) {
        char *data = NULL;
        long len = BIO_get_mem_data(priv, &data);
        if (data && len > 0)
            OPENSSL_cleanse(data, (size_t)len);
    }
    BIO_free(priv);
    BIO_free(pubm);
    EVP_PKEY_free(pkey);
    return rc;
}
