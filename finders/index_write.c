/*
 * finders/index_write.c -- mh_index_dir: describing a module directory for
 * the HTTP finder, as DIR/index.json (format 1), optionally signed.
 *
 * The index is what a client trusts: it names every module, where its
 * file is relative to the index, and the size and SHA-256 the downloaded
 * bytes must have before they are loaded.  Format 1:
 *
 *   {"format": 1, "serial": 1764200000, "generator": "modhost 0.1.0",
 *    "modules": [{"name": "codecs.rot13", "kind": "native",
 *                 "path": "codecs/rot13.so", "size": 35008,
 *                 "sha256": "<64 lowercase hex digits>"}, ...]}
 *
 * Modules are found as the filesystem finder finds them: a regular file
 * a/b/c.so whose components are identifiers is the native module a.b.c,
 * a/b/c.lua the Lua module a.b.c; hidden and other names are not modules
 * (index.json itself among them); links to directories are followed, but
 * never back into a directory already on the walk.  A name present as both
 * .so and .lua is listed once, as native, the kind import picks.  Modules
 * are sorted by name (byte order), so the same tree always gives the same
 * bytes.  The serial grows with every change: the old index's plus one,
 * and at least the time (seconds since 1970), so that an index made
 * afresh, its old one lost, still comes after it; an unchanged tree keeps
 * the old serial, and so the same bytes.
 *
 * With a signing key, index.json.sig holds the raw 64-byte Ed25519
 * signature of index.json's exact bytes.  Everything that can fail (the
 * walk, hashing, the key, signing) happens before anything is written;
 * then each file is written to a temporary name in DIR, fsynced and
 * renamed into place, so a server never serves a partial file, and a
 * failure leaves no temporary file and index.json as it was.  An unsigned
 * index removes a stale index.json.sig, which could not match it.
 *
 * Not tied to a host: it uses the C allocator (and cJSON's, which is the
 * C allocator too).
 */
#include "host/internal.h"
#include "finders/finder.h"
#include "finders/index.h"
#include "finders/tree.h"
#include "host/meta.h"
#include "loaders/elf.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IXW_MAX_OLD (64u << 20) /* the old index.json, read for its serial */
#define IXW_INDEX "index.json"
#define IXW_SIG "index.json.sig"
#define IXW_SIG_LEN 64          /* Ed25519 */
#define IXW_MAX_MODULES 1000000 /* the most a reader accepts */

typedef struct ixw_mod {
    char *name;              /* dotted */
    const char *kind;        /* "native" or "lua" (static) */
    char *path;              /* relative, '/'-separated */
    uint64_t size;
    char sha256[65];         /* lowercase hex */
    cJSON *manifest;         /* from the sidecar NAME.json, or NULL */
} ixw_mod;

typedef struct ixw {
    char dir[PATH_MAX];      /* without trailing slashes */
    ixw_mod *mods;
    size_t n, cap;
    mh_error **err;
} ixw;

/* The module suffixes, in the order a name present under both is kept. */
static const struct {
    const char *suffix;
    const char *kind;
} ixw_kinds[] = {
    {".so", "native"},
    {".lua", "lua"},
    {".luac", "luac"}, /* loaded only when the index is signed */
};

/* The kind index of a module file name, or -1 if it names no module. */
static int module_kind(const char *nm, size_t len)
{
    for (size_t k = 0; k < MH_ARRAY_LEN(ixw_kinds); k++) {
        size_t s = strlen(ixw_kinds[k].suffix);
        if (len > s && strcmp(nm + len - s, ixw_kinds[k].suffix) == 0 &&
            mh_name_ident(nm, len - s))
            return (int)k;
    }
    return -1;
}

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

static void mods_free(ixw *w)
{
    for (size_t i = 0; i < w->n; i++) {
        free(w->mods[i].name);
        free(w->mods[i].path);
        cJSON_Delete(w->mods[i].manifest);
    }
    free(w->mods);
}

/* ---- the walk ----------------------------------------------------------- */

/* Size and SHA-256 of the file, read in chunks (never whole in memory). */
static mh_status hash_file(ixw *w, const char *file, ixw_mod *m)
{
    /* O_NONBLOCK: a FIFO that stat saw as a file in a race must not hang. */
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return mh_err(NULL, w->err, MH_EIO, "cannot open %s: %s", file,
                      strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mh_err(NULL, w->err, MH_EIO, "cannot index %s: not a regular "
                      "file", file);
    }
    /* A file being rewritten would give a size and hash of neither
     * version: clients would then refuse it, so refuse it here. */
    unsigned char dig[32];
    const char *why = mh_io_sha256(fd, (uint64_t)st.st_size, dig);
    int e = errno;
    close(fd);
    if (why)
        return e ? mh_err(NULL, w->err, MH_EIO, "cannot index %s: %s (%s)",
                          file, why, strerror(e))
                 : mh_err(NULL, w->err, MH_EIO, "cannot index %s: %s", file,
                          why);
    mh_hex(dig, sizeof dig, m->sha256);
    m->size = (uint64_t)st.st_size;
    return MH_OK;
}

/* m->manifest from the n bytes of JSON at text, the manifest of `file`
 * (`what`: "its manifest note", "its sidecar manifest"): a JSON object,
 * nested no deeper than a host reads (the index nests it 3 levels further
 * down, and one too deep for cJSON would make the whole index one no
 * host can read). */
static mh_status take_manifest(ixw *w, const char *file, const char *what,
                               const char *text, size_t n, ixw_mod *m)
{
    m->manifest = cJSON_ParseWithLength(text, n);
    if (cJSON_IsObject(m->manifest) && !mh_manifest_too_deep(m->manifest))
        return MH_OK;
    mh_status rc = cJSON_IsObject(m->manifest)
        ? mh_err(NULL, w->err, MH_EFORMAT, "%s: %s nests its objects and "
                 "arrays more than %d levels deep", file, what,
                 MH_MANIFEST_DEPTH_MAX)
        : mh_err(NULL, w->err, MH_EFORMAT, "%s: %s is not a JSON object",
                 file, what);
    cJSON_Delete(m->manifest);
    m->manifest = NULL;
    return rc;
}

/* The manifest note of native module file `full`, if it has one, into
 * m->manifest, with the ABI it was built for. */
static mh_status note(ixw *w, const char *full, ixw_mod *m)
{
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return mh_err(NULL, w->err, MH_EIO, "cannot open %s: %s", full,
                      strerror(errno));
    }
    mh_elf_note n;
    const char *why = mh_elf_note_fd(NULL, fd, (uint64_t)st.st_size, &n);
    close(fd);
    if (why)
        return mh_err(NULL, w->err, MH_EFORMAT, "%s: %s", full, why);
    if (!n.found)
        return MH_OK;
    uint32_t abi = n.abi;
    mh_status taken = take_manifest(w, full, "its manifest note", n.json,
                                    n.json_len, m);
    mh_elf_note_free(NULL, &n);
    if (taken != MH_OK)
        return taken;
    const cJSON *said = cJSON_GetObjectItemCaseSensitive(m->manifest, "abi");
    mh_status rc = MH_OK;
    if (said && (!cJSON_IsNumber(said) || said->valuedouble != (double)abi))
        rc = mh_err(NULL, w->err, MH_EFORMAT, "%s: its manifest says abi "
                    "%g, but the plugin was built for ABI %u", full,
                    cJSON_IsNumber(said) ? said->valuedouble : -1.0, abi);
    else if (!said && !cJSON_AddNumberToObject(m->manifest, "abi",
                                               (double)abi))
        rc = mh_err(NULL, w->err, MH_ENOMEM, "out of memory");
    if (rc != MH_OK) {
        cJSON_Delete(m->manifest);
        m->manifest = NULL;
    }
    return rc;
}

/* Why read_small read nothing: no such file, and three of its reasons
 * that callers tell apart. */
static const char IXW_NONE[] = "there is none";
static const char IXW_NOT_FILE[] = "not a regular file";
static const char IXW_TOO_BIG[] = "too large";
static const char IXW_NO_MEMORY[] = "out of memory";

/* The whole of a regular file of at most max bytes (open's extra flags),
 * never waiting on a FIFO: NULL with *buf (malloc'd, NUL-terminated) and
 * *n, or why not (IXW_NONE when it does not exist), *buf NULL. */
static const char *read_small(const char *path, int flags, size_t max,
                              char **buf, size_t *n)
{
    *buf = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | flags);
    if (fd < 0)
        return errno == ENOENT ? IXW_NONE : strerror(errno);
    struct stat st;
    const char *why = fstat(fd, &st) != 0 ? strerror(errno)
                      : !S_ISREG(st.st_mode) ? IXW_NOT_FILE
                      : (uint64_t)st.st_size > max ? IXW_TOO_BIG : NULL;
    size_t len = why ? 0 : (size_t)st.st_size;
    char *b = why ? NULL : malloc(len + 1);
    if (!why && !b)
        why = IXW_NO_MEMORY;
    else if (!why && mh_io_read_all(fd, b, len) != len)
        why = "it changed while being read";
    close(fd);
    if (why) {
        free(b);
        return why;
    }
    b[len] = '\0';
    *buf = b;
    *n = len;
    return NULL;
}

/* The manifest of module file full (flen bytes without its suffix), if
 * any, into m->manifest, in import's order: a native module's note, else
 * the sidecar beside it.  It goes into the index, where the signature
 * covers it. */
static mh_status sidecar(ixw *w, const char *full, size_t flen, ixw_mod *m)
{
    char path[PATH_MAX];
    if (flen + sizeof ".json" > sizeof path)
        return MH_OK;
    memcpy(path, full, flen);
    memcpy(path + flen, ".json", sizeof ".json");
    if (strcmp(m->kind, "native") == 0) { /* the note first, as import */
        mh_status rc = note(w, full, m);
        if (rc != MH_OK || m->manifest)
            return rc;
    }
    /* The index itself, which each run would have taken in as its
     * manifest, nested one level deeper every time (a note still counts). */
    if (mh_sidecar_is_site_index(m->name, strlen(m->name)))
        return MH_OK;
    char *text;
    size_t n;
    mh_status rc = MH_OK;
    const char *why = read_small(path, 0, MH_MANIFEST_MAX, &text, &n);
    if (why == IXW_NONE)
        return MH_OK;
    if (why == IXW_TOO_BIG || why == IXW_NOT_FILE)
        rc = mh_err(NULL, w->err, MH_EFORMAT, "%s: a sidecar manifest must "
                    "be a regular file of at most %u bytes", path,
                    MH_MANIFEST_MAX);
    else if (why)
        rc = mh_err(NULL, w->err, why == IXW_NO_MEMORY
                                      ? MH_ENOMEM : MH_EIO,
                    "cannot read %s: %s", path, why);
    if (rc == MH_OK)
        rc = take_manifest(w, path, "the sidecar manifest", text, n, m);
    free(text);
    return rc;
}

/* Add the module file `rel` (relative to the directory, `len` bytes, with
 * the suffix of ixw_kinds[kind]). */
static mh_status add_module(ixw *w, const char *full, const char *rel,
                            size_t len, int kind)
{
    size_t nlen = len - strlen(ixw_kinds[kind].suffix);
    if (nlen > MH_NAME_MAX)
        return MH_OK; /* no import could ask for it */
    if (w->n == IXW_MAX_MODULES)
        return mh_err(NULL, w->err, MH_EINVAL, "%s/%s: more than %d modules",
                      w->dir, IXW_INDEX, IXW_MAX_MODULES);
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16, bytes;
        if (mh_mul_overflows(cap, sizeof *w->mods, &bytes))
            return mh_err(NULL, w->err, MH_ENOMEM, "too many modules");
        ixw_mod *v = realloc(w->mods, bytes);
        if (!v)
            return mh_err(NULL, w->err, MH_ENOMEM, "out of memory");
        w->mods = v;
        w->cap = cap;
    }
    ixw_mod *m = &w->mods[w->n];
    memset(m, 0, sizeof *m);
    m->kind = ixw_kinds[kind].kind;
    m->path = strdup(rel);
    m->name = strndup(rel, nlen);
    if (!m->path || !m->name) {
        free(m->path);
        free(m->name);
        return mh_err(NULL, w->err, MH_ENOMEM, "out of memory");
    }
    for (char *p = m->name; *p; p++)
        if (*p == '/')
            *p = '.';
    mh_status rc = hash_file(w, full, m);
    if (rc == MH_OK)
        rc = sidecar(w, full, strlen(full) - strlen(ixw_kinds[kind].suffix),
                     m);
    if (rc != MH_OK) {
        free(m->path);
        free(m->name);
        return rc;
    }
    w->n++;
    return MH_OK;
}

/* Directories that can hold modules, and module files. */
static bool tree_keep(void *ud, const char *name, size_t len, bool is_dir)
{
    MH_UNUSED(ud);
    int kind = module_kind(name, len);
    return is_dir ? kind < 0 && mh_name_ident(name, len) : kind >= 0;
}

static mh_status tree_file(void *ud, const char *full, const char *rel,
                           size_t rlen, const struct stat *st)
{
    MH_UNUSED(st);
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    return add_module(ud, full, rel, rlen, module_kind(base, strlen(base)));
}

static int kind_rank(const char *kind)
{
    for (size_t k = 0; k < MH_ARRAY_LEN(ixw_kinds); k++)
        if (strcmp(kind, ixw_kinds[k].kind) == 0)
            return (int)k;
    return (int)MH_ARRAY_LEN(ixw_kinds);
}

static int mod_cmp(const void *a, const void *b)
{
    const ixw_mod *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : kind_rank(x->kind) - kind_rank(y->kind);
}

/* Sort by name and keep the first kind of each name. */
static void sort_unique(ixw *w)
{
    if (w->n < 2)
        return;
    qsort(w->mods, w->n, sizeof *w->mods, mod_cmp);
    size_t out = 1;
    for (size_t i = 1; i < w->n; i++) {
        if (strcmp(w->mods[i].name, w->mods[out - 1].name) == 0) {
            free(w->mods[i].name);
            free(w->mods[i].path);
            cJSON_Delete(w->mods[i].manifest);
            continue;
        }
        w->mods[out++] = w->mods[i];
    }
    w->n = out;
}

/* ---- serialisation ------------------------------------------------------ */

/* index.json's bytes with that serial (malloc'd, *len without the NUL),
 * or NULL when out of memory. */
static char *render(const ixw *w, uint64_t serial, size_t *len)
{
    char serial_text[24];
    snprintf(serial_text, sizeof serial_text, "%llu",
             (unsigned long long)serial);
    cJSON *root = cJSON_CreateObject(), *mods = NULL;
    char *text = NULL, *out = NULL;
    if (!root || !cJSON_AddNumberToObject(root, "format", 1) ||
        /* Printed whole: cJSON's number printing takes doubles within
         * a few units of each other near 2^53 for the same. */
        !cJSON_AddRawToObject(root, "serial", serial_text) ||
        !cJSON_AddStringToObject(root, "generator",
                                 "modhost " MH_VERSION_STRING) ||
        /* Every module's manifest is here, or it has none. */
        !cJSON_AddTrueToObject(root, "manifests") ||
        !(mods = cJSON_AddArrayToObject(root, "modules")))
        goto out;
    for (size_t i = 0; i < w->n; i++) {
        const ixw_mod *m = &w->mods[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            goto out;
        cJSON_AddItemToArray(mods, o);
        /* Sizes are JSON numbers, exact in a double up to 2^53 bytes. */
        if (!cJSON_AddStringToObject(o, "name", m->name) ||
            !cJSON_AddStringToObject(o, "kind", m->kind) ||
            !cJSON_AddStringToObject(o, "path", m->path) ||
            !cJSON_AddNumberToObject(o, "size", (double)m->size) ||
            !cJSON_AddStringToObject(o, "sha256", m->sha256))
            goto out;
        cJSON *man = m->manifest ? cJSON_Duplicate(m->manifest, 1) : NULL;
        if (m->manifest && (!man || !cJSON_AddItemToObject(o, "manifest",
                                                           man))) {
            cJSON_Delete(man);
            goto out;
        }
    }
    text = cJSON_Print(root);
    if (!text)
        goto out;
    /* A text file ends with a newline; it is part of the signed bytes. */
    size_t n = strlen(text);
    out = malloc(n + 2);
    if (out) {
        memcpy(out, text, n);
        out[n] = '\n';
        out[n + 1] = '\0';
        *len = n + 1;
    }
out:
    cJSON_free(text);
    cJSON_Delete(root);
    return out;
}

/* The index.json now in dir, for its serial: *serial (0 when there is no
 * such file, or it has no serial -- an index from before serials) and its
 * bytes in *old (malloc'd; NULL if none).  One that cannot be read, is no
 * JSON object, or has a serial that is not a whole number below 2^53 is an
 * error: the serial the new one needs cannot be told, and starting again
 * from the time could go back, which hosts refuse. */
static mh_status previous(const char *dir, uint64_t *serial, char **old,
                          size_t *old_len, mh_error **err)
{
    char path[PATH_MAX + sizeof IXW_INDEX + 1];
    snprintf(path, sizeof path, "%s/" IXW_INDEX, dir);
    *serial = 0;
    *old = NULL;
    *old_len = 0;
    char *buf;
    size_t n;
    const char *why = read_small(path, O_NOFOLLOW, IXW_MAX_OLD, &buf, &n);
    if (why == IXW_NONE)
        return MH_OK;
    cJSON *root = why ? NULL : cJSON_ParseWithLength(buf, n);
    const cJSON *sv = cJSON_GetObjectItemCaseSensitive(root, "serial");
    if (!why && !cJSON_IsObject(root))
        why = "not a JSON object";
    else if (!why && sv &&
             !(cJSON_IsNumber(sv) && mh_idx_serial(sv->valuedouble, serial)))
        why = "its \"serial\" is not a whole number from 1 to 2^53 - 1";
    cJSON_Delete(root);
    if (why) {
        free(buf);
        return mh_err(NULL, err, MH_EINVAL, "cannot index %s: the index "
                      "there now, %s, cannot give the serial to follow (%s): "
                      "remove it, or write {\"serial\": N} in it to go on "
                      "from N", dir[0] ? dir : "/", path, why);
    }
    *old = buf;
    *old_len = n;
    return MH_OK;
}

/* ---- signing ------------------------------------------------------------ */

/* Never prompt on the terminal for a pass phrase: an encrypted key is an
 * error, reported as such. */
static int no_passphrase(char *buf, int size, int rwflag, void *ud)
{
    MH_UNUSED(buf);
    MH_UNUSED(size);
    MH_UNUSED(rwflag);
    *(bool *)ud = true;
    return -1;
}

/* Read the signing key key_file (a small regular file: a FIFO named as
 * the key would otherwise be waited on for ever) into pem, cap bytes;
 * its fstat in *st.  0, or an errno for mh_io_small_why. */
static int read_key(const char *key_file, char *pem, size_t cap,
                    size_t *len, struct stat *st)
{
    int fd = open(key_file, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return errno;
    int e = mh_io_read_small_fd(fd, pem, cap, len, st);
    close(fd);
    return e;
}

static mh_status sign(const char *key_file, const char *data, size_t len,
                      unsigned char sig[IXW_SIG_LEN], mh_error **err)
{
    char why[256];
    bool asked = false;
    ERR_clear_error();
    char pem[16384];
    size_t pem_len = 0;
    struct stat st;
    int e = read_key(key_file, pem, sizeof pem, &pem_len, &st);
    if (e) {
        OPENSSL_cleanse(pem, sizeof pem); /* a key cut short is a key */
        return mh_err(NULL, err, MH_EIO, "cannot read signing key %s: %s",
                      key_file, mh_io_small_why(e));
    }
    BIO *bio = BIO_new_mem_buf(pem, (int)pem_len);
    if (!bio) {
        OPENSSL_cleanse(pem, sizeof pem);
        return mh_err(NULL, err, MH_ENOMEM, "out of memory reading signing "
                      "key %s", key_file);
    }
    EVP_PKEY *pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase,
                                             &asked);
    BIO_free(bio);
    OPENSSL_cleanse(pem, sizeof pem);
    if (!pkey) {
        ossl_why(why, sizeof why);
        if (asked)
            return mh_err(NULL, err, MH_EINVAL, "signing key %s is "
                          "encrypted; an unencrypted PEM private key (as "
                          "'modhost keygen' writes) is needed", key_file);
        return mh_err(NULL, err, MH_EFORMAT, "cannot read signing key %s: "
                      "%s (a PEM Ed25519 private key, as 'modhost keygen' "
                      "writes, is needed)", key_file, why);
    }
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        const char *type = EVP_PKEY_get0_type_name(pkey);
        mh_status rc = mh_err(NULL, err, MH_EINVAL, "signing key %s is "
                              "not an Ed25519 key (it is %s); make one with "
                              "'modhost keygen'", key_file,
                              type ? type : "another type");
        EVP_PKEY_free(pkey);
        return rc;
    }
    /* A private key group or others may read or write is refused, not
     * warned of (as ssh refuses one): whoever can read it can sign
     * indexes every host trusting its public half loads code from, and a
     * warning from a library with no log of its own, in a publishing
     * script's output, is one nobody reads.  Judged once the file is
     * known to be a private key, on the descriptor that was read. */
    if (st.st_mode & 077) {
        EVP_PKEY_free(pkey);
        return mh_err(NULL, err, MH_EINVAL, "signing key %s may be read or "
                      "written by group or others (mode %04o, owner uid "
                      "%u): anyone who can read it can sign indexes your "
                      "hosts trust; make it private with 'chmod 600 %s' "
                      "(and make a new pair with 'modhost keygen' if others "
                      "may have read it)", key_file,
                      (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
                      key_file);
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t sig_len = IXW_SIG_LEN;
    mh_status rc = MH_OK;
    /* Ed25519 signs the message itself: no digest (NULL md), one shot. */
    if (!md || EVP_DigestSignInit(md, NULL, NULL, NULL, pkey) != 1 ||
        EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)data,
                       len) != 1 || sig_len != IXW_SIG_LEN)
        rc = mh_err(NULL, err, MH_EIO, "cannot sign with %s: %s", key_file,
                    ossl_why(why, sizeof why));
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    return rc;
}

/* Is real path p rdir (a real path) or under it? */
static bool under_dir(const char *p, const char *rdir)
{
    size_t n = strlen(rdir);
    return strcmp(rdir, "/") == 0 ||
           (strncmp(p, rdir, n) == 0 && (p[n] == '/' || p[n] == '\0'));
}

/* Refuse a signing key inside dir, the directory indexed: whatever serves
 * the index serves everything under it, hidden files too, and so the
 * private key.  Judged by the key's name (a link in dir would be served
 * as its target, wherever that is) and by the file it names (dir may be
 * reached through a link).  A path that cannot be resolved is left to
 * the read, which names what is wrong with it. */
static mh_status key_outside(const char *dir, const char *key_file,
                             mh_error **err)
{
    char rdir[PATH_MAX], parent[PATH_MAX], rparent[PATH_MAX], p[PATH_MAX];
    if (!realpath(dir, rdir) ||
        (size_t)snprintf(parent, sizeof parent, "%s", key_file) >=
            sizeof parent)
        return MH_OK;
    char *slash = strrchr(parent, '/');
    const char *base = slash ? slash + 1 : key_file;
    if (slash == parent)
        parent[1] = '\0'; /* "/k.key": in "/" */
    else if (slash)
        *slash = '\0';
    else
        strcpy(parent, ".");
    bool in = realpath(parent, rparent) &&
              (size_t)snprintf(p, sizeof p, "%s/%s", rparent, base) <
                  sizeof p &&
              under_dir(p, rdir);
    if (!in && realpath(key_file, p))
        in = under_dir(p, rdir);
    if (!in)
        return MH_OK;
    return mh_err(NULL, err, MH_EINVAL, "signing key %s is inside %s, the "
                  "directory being indexed: whatever serves the index would "
                  "serve the private key too; keep it outside that tree "
                  "(as /etc/modhost/release.key), and make a new pair with "
                  "'modhost keygen' if it has been served", key_file, rdir);
}

/* ---- atomic writes ------------------------------------------------------ */

/* Write data to a new temporary file DIR/.NAME.tmp-XXXXXX, fsynced and
 * readable by a web server (0644); its name goes to tmp.  On failure
 * nothing is left behind. */
static mh_status write_temp(const char *dir, const char *name,
                            const void *data, size_t len, char tmp[PATH_MAX],
                            mh_error **err)
{
    if (snprintf(tmp, PATH_MAX, "%s/.%s.tmp-XXXXXX", dir, name) >= PATH_MAX)
        return mh_err(NULL, err, MH_EINVAL, "path too long: %s/%s", dir,
                      name);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return mh_err(NULL, err, MH_EIO, "cannot create a temporary file in "
                      "%s: %s", dir, strerror(errno));
    /* Named as the file the run makes, which is left as it was: the
     * temporary one is gone when the message is read. */
    int e = fchmod(fd, 0644) != 0 || mh_io_write_all(fd, data, len) != 0 ||
                    fsync(fd) != 0
                ? errno : 0;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e)
        return MH_OK;
    unlink(tmp);
    return mh_err(NULL, err, MH_EIO, "cannot write %s/%s (left as it was): "
                  "%s", dir, name, strerror(e));
}

/* Rename tmp to DIR/NAME (dst gets that path): 0, or the errno of a
 * failure, tmp removed then. */
static int put_in_place(const char *dir, const char *tmp, const char *name,
                        char dst[PATH_MAX])
{
    /* Always fits: tmp is the same name, longer. */
    if (snprintf(dst, PATH_MAX, "%s/%s", dir, name) >= PATH_MAX ||
        rename(tmp, dst) != 0) {
        int e = errno;
        unlink(tmp);
        return e;
    }
    return 0;
}

/* Make the renames durable: best effort, the files are whole either way. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Put the index.json that was there before the run back (old, old_len;
 * none when old is NULL), after the new one was renamed into place: the
 * old bytes, written afresh and renamed over the new file (which this run
 * owns, so even a sticky directory lets it go), or the new file removed.
 * true when that worked. */
static bool put_back(const char *dir, const char *old, size_t old_len)
{
    char tmp[PATH_MAX], dst[PATH_MAX];
    if (!old)
        return snprintf(dst, sizeof dst, "%s/%s", dir, IXW_INDEX) <
                   (int)sizeof dst && unlink(dst) == 0;
    mh_error *ignored = NULL;
    bool ok = write_temp(dir, IXW_INDEX, old, old_len, tmp, &ignored) ==
                  MH_OK && put_in_place(dir, tmp, IXW_INDEX, dst) == 0;
    mh_error_free(ignored);
    return ok;
}

/* Write index.json (and index.json.sig when sig is not NULL, else remove
 * a stale one).  Both temporary files are complete before either rename,
 * so the index and its signature change together as nearly as two
 * renames allow.  When the signature's step fails after index.json was
 * replaced, the old index.json (old: its bytes, NULL when there was none)
 * is put back, so that a failure leaves the two as they were; only a
 * crash between the renames leaves the new index beside the old
 * signature, and the next run, the tree unchanged, writes both again. */
static mh_status publish(const char *dir, const char *data, size_t len,
                         const char *old, size_t old_len,
                         const unsigned char *sig, mh_error **err)
{
    char tmp_index[PATH_MAX], tmp_sig[PATH_MAX], stale[PATH_MAX];
    char dst[PATH_MAX];
    struct stat st;
    bool fits = snprintf(stale, sizeof stale, "%s/%s", dir, IXW_SIG) <
                (int)sizeof stale; /* it does: tmp_index is longer */
    /* A directory where the signature goes can be neither replaced nor
     * removed: the run fails before index.json is touched, signed or
     * not. */
    if (fits && lstat(stale, &st) == 0 && S_ISDIR(st.st_mode))
        return mh_err(NULL, err, MH_EIO, "cannot %s signature %s: it is "
                      "a directory", sig ? "write the" : "remove the stale",
                      stale);
    mh_status rc = write_temp(dir, IXW_INDEX, data, len, tmp_index, err);
    if (rc != MH_OK)
        return rc;
    if (sig) {
        rc = write_temp(dir, IXW_SIG, sig, IXW_SIG_LEN, tmp_sig, err);
        if (rc != MH_OK) {
            unlink(tmp_index);
            return rc;
        }
    }
    int e = put_in_place(dir, tmp_index, IXW_INDEX, dst);
    if (e) {
        if (sig)
            unlink(tmp_sig);
        return mh_err(NULL, err, MH_EIO, "cannot replace %s (left as it "
                      "was): %s", dst, strerror(e));
    }
    const char *what = "replace";
    if (sig)
        e = put_in_place(dir, tmp_sig, IXW_SIG, dst);
    else if (fits && unlink(stale) != 0 && errno != ENOENT) {
        e = errno;
        what = "remove the stale signature";
    }
    if (e) {
        bool back = put_back(dir, old, old_len);
        rc = mh_err(NULL, err, MH_EIO, "cannot %s %s: %s; %s/%s %s", what,
                    stale, strerror(e), dir, IXW_INDEX,
                    back ? "is left as it was"
                         : "could not be put back as it was, and does not "
                           "match its signature: run again");
    }
    sync_dir(dir[0] ? dir : "/");
    return rc;
}

/* Remove the temporary files of runs killed mid-way (".index.json.tmp-*",
 * ".index.json.sig.tmp-*": write_temp's names), regular files only.
 * Called under the directory's lock, so no run is writing one. */
static void sweep_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    static const char *const prefix[] = {"." IXW_INDEX ".tmp-",
                                         "." IXW_SIG ".tmp-"};
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        bool ours = false;
        for (size_t i = 0; i < 2; i++)
            ours |= strncmp(de->d_name, prefix[i], strlen(prefix[i])) == 0 &&
                    strlen(de->d_name) == strlen(prefix[i]) + 6;
        if (ours && fstatat(dirfd(d), de->d_name, &st,
                            AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode))
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

/* ---- the API ------------------------------------------------------------ */

mh_status mh_index_dir(const char *dir, const char *sign_key, size_t *count,
                       mh_error **err)
{
    if (count)
        *count = 0;
    if (!dir || !dir[0])
        return mh_err(NULL, err, MH_EINVAL, "mh_index_dir: no directory");
    if (sign_key && !sign_key[0])
        return mh_err(NULL, err, MH_EINVAL, "mh_index_dir: empty key file "
                      "name");

    ixw *w = calloc(1, sizeof *w);
    if (!w)
        return mh_err(NULL, err, MH_ENOMEM, "out of memory");
    w->err = err;
    int lock_fd = -1;
    size_t dlen = strlen(dir);
    while (dlen > 1 && dir[dlen - 1] == '/')
        dlen--;
    mh_status rc;
    if (dlen + sizeof "/." IXW_SIG ".tmp-XXXXXX" > PATH_MAX) {
        rc = mh_err(NULL, err, MH_EINVAL, "path too long: %s", dir);
        goto out;
    }
    memcpy(w->dir, dir, dlen);
    w->dir[dlen] = '\0';
    if (strcmp(w->dir, "/") == 0)
        w->dir[0] = '\0'; /* paths below are built as dir + "/" + rel */

    struct stat st;
    const char *shown = w->dir[0] ? w->dir : "/";
    if (stat(shown, &st) != 0) {
        rc = mh_err(NULL, err, MH_EIO, "cannot index %s: %s", shown,
                    strerror(errno));
        goto out;
    }
    if (!S_ISDIR(st.st_mode)) {
        rc = mh_err(NULL, err, MH_EINVAL, "cannot index %s: not a directory",
                    shown);
        goto out;
    }
    if (sign_key && (rc = key_outside(shown, sign_key, err)) != MH_OK)
        goto out;

    /* One writer at a time: the serial read, the signing and both
     * renames under one lock (two runs at once left one's index beside
     * the other's signature, and could give two indexes one serial).
     * The directory itself is locked: no lock file to serve. */
    lock_fd = open(shown, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock_fd < 0 || mh_io_lock(lock_fd) != 0) {
        rc = mh_err(NULL, err, MH_EIO, "cannot lock %s for indexing: %s",
                    shown, strerror(errno));
        goto out;
    }
    sweep_temps(shown); /* what killed runs left: none runs now */

    rc = mh_tree_walk(shown, tree_keep, tree_file, w, w->err);
    if (rc != MH_OK)
        goto out;
    sort_unique(w);

    /* The serial: the old index's while nothing changed (the same tree
     * gives the same bytes), else one more than the old one's -- and at
     * least the time, so an index made afresh (its old one lost) still
     * comes after it. */
    char *old = NULL;
    size_t old_len = 0, len = 0;
    uint64_t prev = 0;
    rc = previous(w->dir, &prev, &old, &old_len, err);
    if (rc != MH_OK)
        goto out;
    char *data = prev ? render(w, prev, &len) : NULL;
    if (!data || len != old_len || memcmp(data, old, len) != 0) {
        time_t t = time(NULL);
        uint64_t now = t > 0 ? (uint64_t)t : 0;
        uint64_t next = prev + 1 > now ? prev + 1 : now;
        free(data);
        data = NULL;
        if ((double)next > MH_IDX_SERIAL_MAX) {
            free(old);
            rc = mh_err(NULL, err, MH_EINVAL, "cannot index %s: the next "
                        "serial would pass 2^53 - 1", shown);
            goto out;
        }
        data = render(w, next, &len);
    }
    if (!data) {
        free(old);
        rc = mh_err(NULL, err, MH_ENOMEM, "out of memory writing %s/%s",
                    shown, IXW_INDEX);
        goto out;
    }
    unsigned char sig[IXW_SIG_LEN];
    rc = sign_key ? sign(sign_key, data, len, sig, err) : MH_OK;
    if (rc == MH_OK)
        rc = publish(w->dir, data, len, old, old_len, sign_key ? sig : NULL,
                     err);
    free(old);
    free(data);
    if (rc == MH_OK && count)
        *count = w->n;
out:
    if (lock_fd >= 0)
        close(lock_fd); /* and the lock with it */
    mods_free(w);
    free(w);
    return rc;
}
