/*
 * host/trust.c -- which signatures the host believes.
 *
 * Keys are Ed25519 (OpenSSL libcrypto): small, fast, deterministic, and
 * with no parameters to get wrong.  A signature is the raw 64 bytes over
 * the exact bytes of the signed file.
 */
#include "host/internal.h"
#include "host/trust.h"
#include "host/path.h"
#include "host/secure.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every PEM block of pem (len bytes) into t: a file may hold several
 * keys (`cat a.pub b.pub`), and each is trusted -- taking the first alone
 * would silently refuse what the others signed.  Each block must be an
 * Ed25519 public key; any other block, or one cut short or garbled, fails
 * the file naming the block's number.  Text between blocks is passed
 * over, as OpenSSL does for certificate bundles.  file is escaped. */
static mh_status add_keys(mh_host *h, mh_trust *t, const char *from,
                          const char *file, const char *pem, size_t len,
                          mh_error **err)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return mh_err(h, err, MH_ENOMEM, "out of memory loading %s", file);
    mh_status rc = MH_OK;
    for (size_t block = 1;; block++) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        long dlen = 0;
        ERR_clear_error();
        if (!PEM_read_bio(bio, &name, &header, &data, &dlen)) {
            unsigned long e = ERR_peek_last_error();
            ERR_clear_error();
            if (block > 1 && ERR_GET_LIB(e) == ERR_LIB_PEM &&
                ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
                break; /* no block after the last */
            rc = block == 1
                     ? mh_err(h, err, MH_EFORMAT, "%s: trusted key %s: not a "
                              "PEM Ed25519 public key (make one with "
                              "'modhost keygen')", from, file)
                     : mh_err(h, err, MH_EFORMAT, "%s: trusted key %s: "
                              "PEM block %zu is cut short or garbled: give "
                              "only whole Ed25519 public keys (make one "
                              "with 'modhost keygen')", from, file, block);
            break;
        }
        EVP_PKEY *k = NULL;
        if (strcmp(name, PEM_STRING_PUBLIC) == 0) {
            const unsigned char *p = data;
            k = d2i_PUBKEY(NULL, &p, dlen);
            if (k && p != data + dlen) { /* bytes after the key */
                EVP_PKEY_free(k);
                k = NULL;
            }
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        if (!k || EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
            EVP_PKEY_free(k);
            ERR_clear_error();
            rc = mh_err(h, err, MH_EFORMAT, "%s: trusted key %s: PEM "
                        "block %zu is not an Ed25519 public key: give only "
                        "public keys, never a private .key (make one with "
                        "'modhost keygen')", from, file, block);
            break;
        }
        void **v = mh_mem_realloc(h, t->keys, t->n * sizeof *v,
                                  (t->n + 1) * sizeof *v);
        if (!v) {
            EVP_PKEY_free(k);
            rc = mh_err(h, err, MH_ENOMEM, "out of memory loading %s", file);
            break;
        }
        t->keys = v;
        t->keys[t->n++] = k;
    }
    BIO_free(bio);
    return rc;
}

static mh_status load_one(mh_host *h, mh_trust *t, const char *from,
                          const char *path, mh_error **err)
{
    /* Named with control characters as \xNN: it may come from the
     * environment (MODHOST_TRUST), and a newline or an escape sequence
     * in it must not start lines or drive the terminal. */
    char file[4 * 4096 + 16];
    mh_path_show_escaped(h, path, file, sizeof file);
    if (path[0] != '/')
        return mh_err(h, err, MH_EPATH, "%s: trusted key %s: not an absolute "
                      "path (the working directory must not decide what is "
                      "trusted)", from, file);
    /* A trusted key decides which signed indexes, and so which native
     * code, the host loads: it is opened as a code file is (host/secure.c:
     * owned by root or us, writable by nobody else, every directory above
     * it too, links judged by their target), or anyone who may rewrite it
     * chooses our code.  MH_CONFIG_INSECURE_FILES waives this as it does
     * for code. */
    int fd = -1;
    struct stat st;
    mh_error *se = NULL;
    mh_status rc = mh_sec_open_code_stat(h, path, &fd, &st, &se);
    if (rc != MH_OK) {
        /* The walk's message names the path raw: escaped as above (and
         * cut with "..." past 8 KiB: the stack already holds file). */
        char why[8192];
        mh_path_show_escaped(h, se ? mh_error_message(se) : mh_strerror(rc),
                             why, sizeof why);
        mh_error_free(se);
        if (rc == MH_ENOMEM)
            return mh_err(h, err, MH_ENOMEM, "out of memory loading %s",
                          file);
        if (rc == MH_ENOTFOUND)
            return mh_err(h, err, MH_EPATH, "%s: trusted key %s: cannot "
                          "read it: %s", from, file, strerror(ENOENT));
        return mh_err(h, err, MH_EPATH, "%s: trusted key %s: %s%s", from,
                      file, rc == MH_EPATH ? "held to the rules for code "
                      "files, as it decides which code is loaded: "
                      : "cannot read it: ", why);
    }
    /* Read as a small regular file: a FIFO (opened, not waited on, with
     * MH_CONFIG_INSECURE_FILES) would be waited on for ever in the read
     * (in mh_host_new, by every application given MODHOST_TRUST). */
    char pem[16384];
    size_t len = 0;
    int e = mh_io_read_small_fd(fd, pem, sizeof pem, &len, &st);
    close(fd);
    if (e) {
        OPENSSL_cleanse(pem, sizeof pem);
        return mh_err(h, err, MH_EPATH, "%s: trusted key %s: cannot read it: "
                      "%s", from, file, mh_io_small_why(e));
    }
    rc = add_keys(h, t, from, file, pem, len, err);
    /* A private key named here by mistake is refused (add_keys): its text
     * does not stay on the stack either. */
    OPENSSL_cleanse(pem, sizeof pem);
    return rc;
}

mh_status mh_tru_load(mh_host *h, const char *spec, const char *from,
                      mh_trust *t, mh_error **err)
{
    t->keys = NULL;
    t->n = 0;
    if (!spec)
        return MH_OK;
    for (const char *p = spec; *p;) {
        const char *e = strchr(p, ';');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > 0) {
            char file[4096];
            if (n >= sizeof file) {
                mh_tru_free(h, t);
                return mh_err(h, err, MH_EPATH, "%s: a trusted key path "
                              "is longer than %zu bytes", from,
                              sizeof file - 1);
            }
            memcpy(file, p, n);
            file[n] = '\0';
            mh_status rc = load_one(h, t, from, file, err);
            if (rc != MH_OK) {
                mh_tru_free(h, t);
                return rc;
            }
        }
        p += n;
        if (*p == ';')
            p++;
    }
    /* Set, yet naming no key file (";", or "$KEYS;" with KEYS empty):
     * trusting nothing would turn signature checks off -- fail closed. */
    if (spec[0] && t->n == 0)
        return mh_err(h, err, MH_EPATH, "%s: trusted keys \"%s\" name no "
                      "key file: give the public key files, separated by ';'",
                      from, spec);
    return MH_OK;
}

void mh_tru_free(mh_host *h, mh_trust *t)
{
    for (size_t i = 0; i < t->n; i++)
        EVP_PKEY_free(t->keys[i]);
    mh_mem_free(h, t->keys, t->n * sizeof *t->keys);
    t->keys = NULL;
    t->n = 0;
}

bool mh_tru_verify(const mh_trust *t, const void *data, size_t len,
                   const void *sig, size_t sig_len)
{
    if (sig_len != 64)
        return false;
    for (size_t i = 0; i < t->n; i++) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        bool ok = ctx &&
                  EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, t->keys[i]) == 1 &&
                  EVP_DigestVerify(ctx, sig, sig_len, data, len) == 1;
        EVP_MD_CTX_free(ctx);
        ERR_clear_error();
        if (ok)
            return true;
    }
    return false;
}
