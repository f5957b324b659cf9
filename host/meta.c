/*
 * host/meta.c -- a module's metadata without running its code, and the
 * checks made from it before a load.
 *
 * Where metadata comes from, first found wins:
 *   1. native code: the ELF note MH_PLUGIN_MANIFEST writes, read from the
 *      file with pread (headers and note segments only) or from the image
 *      a finder returned, by the bounds-checked reader of loaders/elf.c --
 *      never dlopen, which would run the object's constructors;
 *   2. a sidecar NAME.json the finder reported (a file, a database row, an
 *      archive member): what a stripped plugin or a Lua module uses.
 * A module with neither has an empty manifest (source "none").
 *
 * Before a load: the ABI the note says the plugin was
 * built for, the host version the manifest asks for, then every
 * requirement imported in order, its version checked (mh_meta_check,
 * then mh_meta_require).  A failure names
 * the whole import chain, once: the innermost failing requirement writes
 * the message and the levels above pass it on unchanged.
 */
#include "host/internal.h"
#include "host/meta.h"
#include "finders/finder.h"
#include "loaders/elf.h"
#include "cache/atomic.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The ELF note of a native module: from its file, or from its bytes
 * (kept in *image when the caller wants them). */
static mh_status note_of(mh_host *h, const char *name, const mh_found *f,
                         mh_elf_note *note, mh_blob *image,
                         bool *fetch_failed, mh_error **err)
{
    const char *why;
    if (f->file) {
        /* The file import opened and checked, if it did: the bytes whose
         * note is read are the bytes that get mapped.  O_NONBLOCK: a FIFO
         * where a finder said "file" must not hang. */
        int fd = f->fd >= 0 ? f->fd
               : mh_fault(h, "open")
                   ? -1
                   : open(f->file, O_RDONLY | O_CLOEXEC | O_NOCTTY |
                                       O_NONBLOCK);
        struct stat st;
        if (fd >= 0 && fd == f->fd && f->fd_size >= 0) {
            /* checked on open: a regular file of that size */
            st.st_mode = S_IFREG;
            st.st_size = (off_t)f->fd_size;
        } else if (fd < 0 || fstat(fd, &st) != 0) {
            int e = errno;
            if (fd >= 0 && fd != f->fd)
                close(fd);
            return mh_err(h, err, MH_EIO, "module '%s': cannot read its "
                          "metadata: %s: %s", name, f->file, strerror(e));
        }
        if (mh_fault(h, "read")) {
            if (fd != f->fd)
                close(fd);
            return mh_err(h, err, MH_EIO, "module '%s': cannot read its "
                          "metadata: %s: %s", name, f->file, strerror(EIO));
        }
        why = S_ISREG(st.st_mode)
                  ? mh_elf_note_fd(h, fd, (uint64_t)st.st_size, note)
                  : "it is not a regular file";
        if (fd != f->fd)
            close(fd);
    } else {
        mh_blob b;
        if (image && image->data) { /* the finder's, read with the find */
            b = *image;
            *image = (mh_blob){0};
        } else {
            mh_status rc = mh_fcx_read(h, f, f->key, &b, err);
            if (rc != MH_OK) {
                if (fetch_failed)
                    *fetch_failed = true;
                return rc;
            }
        }
        why = mh_elf_note_mem(h, b.data, b.len, note);
        if (image && !why)
            *image = b;
        else
            mh_blob_free(h, &b);
    }
    if (!why && note->foreign) {
        /* Not damaged, not for here: said before dlopen says "cannot open
         * shared object file" of /proc/self/fd/N. */
        const char *fw = note->foreign;
        mh_elf_note_free(h, note);
        if (image)
            mh_blob_free(h, image);
        return mh_err(h, err, MH_EFORMAT, "module '%s' (%s) cannot be "
                      "loaded here: %s", name, f->origin, fw);
    }
    if (!why)
        return MH_OK;
    if (strcmp(why, "out of memory") == 0)
        return mh_err(h, err, MH_ENOMEM, "out of memory reading the "
                      "metadata of '%s'", name);
    return mh_err(h, err, MH_EFORMAT, "module '%s' (%s) is damaged: %s; not "
                  "loaded", name, f->origin, why);
}

/* The sidecar of f, if it has one: *out, or NULL.  A sidecar that is gone
 * by now (a listing is a moment old) is no sidecar. */
static mh_status sidecar_of(mh_host *h, const char *name, const mh_found *f,
                            mh_manifest **out, mh_error **err)
{
    mh_blob b = {0};
    mh_status rc;
    mh_error *e = NULL;
    char where[4200];
    *out = NULL;
    if (f->meta_file) {
        snprintf(where, sizeof where, "%s", f->meta_file);
        rc = mh_atw_read_file(h, f->meta_file, MH_MANIFEST_MAX, &b.data,
                              &b.len, &e);
        b.size = b.len ? b.len : 1;
    } else if (f->meta_key) {
        snprintf(where, sizeof where, "%s, item %s", f->origin, f->meta_key);
        rc = mh_fcx_read(h, f, f->meta_key, &b, &e);
    } else {
        return MH_OK;
    }
    if (rc == MH_ENOTFOUND) {
        mh_error_free(e);
        return MH_OK;
    }
    if (rc != MH_OK) {
        rc = mh_err(h, err, rc, "manifest of module '%s' (%s): %s", name,
                    where, e ? mh_error_message(e) : mh_strerror(rc));
        mh_error_free(e);
        return rc;
    }
    rc = mh_manifest_parse(h, name, "sidecar", where, (const char *)b.data,
                           b.len, 0, out, err);
    mh_blob_free(h, &b);
    return rc;
}

/* What tells a note's data (the ABI word, the JSON) from a changed one. */
static uint32_t note_hash(uint32_t abi, const char *json, size_t len)
{
    /* 32 bits: it tells a rewrite from no rewrite, not one author from
     * another (who could rewrite the file could rewrite the code). */
    uint64_t x = mh_hash_bytes(json, len) ^
                 ((uint64_t)abi * 0x9e3779b97f4a7c15u);
    return (uint32_t)(x ^ (x >> 32));
}

/* The note's data at `at` in a mapping, if it is still the one checked
 * (ABI word, then len bytes of JSON and a NUL): its JSON, else NULL. */
static const char *note_at(const char *at, size_t len, uint32_t hash,
                           uint32_t *abi)
{
    memcpy(abi, at, sizeof *abi);
    const char *json = at + sizeof *abi;
    if (strnlen(json, len + 1) != len || note_hash(*abi, json, len) != hash)
        return NULL;
    return json;
}

mh_status mh_meta_of(mh_host *h, const char *name, const mh_found *f,
                     unsigned how, mh_manifest **out, mh_blob *image,
                     bool *fetch_failed, mh_error **err)
{
    *out = NULL;
    if (fetch_failed)
        *fetch_failed = false;
    /* *image may hold the bytes already (read with the find): note_of
     * takes them in place of a read. */
    if ((how & MH_META_SIDECAR_FIRST) && f->meta_whole) {
        mh_status rc = sidecar_of(h, name, f, out, err); /* no image read */
        if (rc == MH_OK && !*out)
            rc = mh_manifest_empty(h, name, out, err);
        return rc;
    }
    if (f->kind == MH_KIND_NATIVE) {
        mh_elf_note note;
        mh_status rc = note_of(h, name, f, &note, image, fetch_failed, err);
        if (rc != MH_OK)
            return rc;
        if (note.found) {
            rc = (how & MH_META_TEXT_LATER ? mh_manifest_parse_later
                                           : mh_manifest_parse)(
                h, name, "elf-note", f->origin, note.json, note.json_len,
                note.abi, out, err);
            if (rc == MH_OK) {
                (*out)->note_vaddr = note.vaddr;
                (*out)->note_len = note.json_len;
                (*out)->note_hash = note_hash(note.abi, note.json,
                                              note.json_len);
            }
            mh_elf_note_free(h, &note);
            if (rc != MH_OK && image)
                mh_blob_free(h, image);
            return rc;
        }
    }
    mh_status rc = f->kind == MH_KIND_NAMESPACE
                       ? MH_OK : sidecar_of(h, name, f, out, err);
    if (rc == MH_OK && !*out)
        rc = mh_manifest_empty(h, name, out, err);
    if (rc != MH_OK && image)
        mh_blob_free(h, image);
    return rc;
}

/* ---- admission ---------------------------------------------------------- */

bool mh_meta_keep_note(mh_module *mod, const mh_manifest *m)
{
    struct link_map *lm = NULL;
    if (!m || !m->note_vaddr || !mod->dl || /* note_vaddr: an ELF note's */
        dlinfo(mod->dl, RTLD_DI_LINKMAP, &lm) != 0 || !lm)
        return false;
    /* Mapped from the descriptor whose note was read, by a read-only
     * segment (loaders/elf.c): the same bytes, checked all the same. */
    const char *at = (const char *)(lm->l_addr + m->note_vaddr);
    uint32_t abi;
    if (m->note_len > UINT32_MAX ||
        !note_at(at, m->note_len, m->note_hash, &abi))
        return false;
    mod->note = at;
    mod->note_len = (uint32_t)m->note_len;
    mod->note_hash = m->note_hash;
    return true;
}

const mh_manifest *mh_meta_manifest(const mh_module *mod)
{
    mh_module *m = (mh_module *)mod; /* its manifest is a cache */
    mh_manifest *man = atomic_load_explicit(&m->manifest,
                                            memory_order_acquire);
    if (man || !m->note)
        return man;
    /* Checked and parsed from one copy: the mapping of a file may change
     * under a reader (a file truncated under it cannot be helped: the
     * module's code faults the same way). */
    size_t size = sizeof(uint32_t) + m->note_len + 1;
    char *copy = mh_mem_alloc(m->host, size);
    if (!copy)
        return NULL;
    memcpy(copy, m->note, size);
    uint32_t abi;
    const char *json = note_at(copy, m->note_len, m->note_hash, &abi);
    if (!json) {
        mh_mem_free(m->host, copy, size);
        /* A file mapped is rewritten in place while loaded: what it says
         * now is not what was checked, and its code changed too. */
        mh_log(m->host, MH_LOG_WARN, "module '%s' (%s): its manifest note "
               "changed since the module was loaded (the file was rewritten "
               "in place); no manifest", m->name, mh_reg_where(m));
        return NULL;
    }
    mh_manifest *fresh;
    mh_status rc = mh_manifest_parse_later(m->host, m->name, "elf-note",
                                           mh_reg_where(m), json, m->note_len,
                                           abi, &fresh, NULL);
    mh_mem_free(m->host, copy, size);
    if (rc != MH_OK)
        return NULL; /* out of memory: it parsed before load */
    if (!atomic_compare_exchange_strong_explicit(
            &m->manifest, &man, fresh, memory_order_acq_rel,
            memory_order_acquire)) {
        mh_manifest_free(fresh); /* another thread's came first */
        return man;
    }
    return fresh;
}

/* The version m declares, or NULL: "" declares none. */
static const char *declared(const mh_manifest *m)
{
    return m && m->version && m->version[0] ? m->version : NULL;
}

const char *mh_meta_module_version(const mh_module *mod)
{
    const char *v = declared(mh_meta_manifest(mod));
    return v ? v : mod->desc ? mod->desc->version : NULL;
}

/* Into detail: why module `dep` (at where) fails a constraint, being of
 * version v (NULL: none declared). */
static void version_detail(char *detail, size_t size, const char *dep,
                           const char *where, const char *v)
{
    snprintf(detail, size, "'%s' (%s) is %s%s%s", dep, where,
             v ? "version " : "of no declared version", v ? v : "",
             !v || mh_version_valid(v)
                 ? "" : ", which is not a version (dotted numbers, as "
                        "1.2.0)");
}

static mh_status chain_error(mh_host *h, mh_error **err, mh_status code,
                             const char *name, const mh_requirement *r,
                             const char *detail)
{
    mh_buf chain;
    mh_buf_init(&chain, h, 0);
    mh_reg_import_chain(&chain, r->name);
    mh_status rc = mh_err(h, err, code, "module '%s' requires '%s%s%s' "
                          "(import chain: %s): %s", name, r->name,
                          r->constraint[0] ? " " : "", r->constraint,
                          chain.failed ? "?" : mh_buf_str(&chain), detail);
    mh_buf_free(&chain);
    return rc;
}

mh_status mh_meta_check(mh_host *h, const char *name, const char *origin,
                        const mh_manifest *m, mh_error **err)
{
    if (m->abi && m->abi != MH_PLUGIN_ABI_VERSION)
        return mh_err(h, err, MH_EABI, "module '%s' (%s) was built for "
                      "plugin ABI %d (its %s says so), but this "
                      "host (modhost %s) supports ABI %d; it was not loaded "
                      "and none of its code ran; rebuild the plugin against "
                      "this modhost", name, origin, m->abi,
                      strcmp(m->source, "elf-note") == 0 ? "manifest note"
                                                         : "manifest",
                      MH_VERSION_STRING, MH_PLUGIN_ABI_VERSION);
    const char *why;
    if (m->host_req && mh_version_check(MH_VERSION_STRING, m->host_req,
                                        &why) != 1)
        return mh_err(h, err, MH_EVERSION, "module '%s' (%s) needs modhost "
                      "%s; this is modhost %s; it was not loaded", name,
                      origin, m->host_req, MH_VERSION_STRING);
    return MH_OK;
}

/* Is e the failure of a requirement further down (chain_error's "module
 * 'x' requires 'y' (import chain: ...)"), which names the whole chain
 * already? */
static bool names_chain(const mh_error *e)
{
    const char *m = mh_error_message(e);
    const char *q = strncmp(m, "module '", 8) == 0 ? strchr(m + 8, '\'')
                                                   : NULL;
    return q && strncmp(q, "' requires '", 12) == 0;
}

/* Is e the circular import of dep itself, whose chain (a -> ... -> dep)
 * the requirement's import chain shows already? */
static bool is_cycle_of(const mh_error *e, const char *dep)
{
    char head[MH_NAME_MAX + 40];
    snprintf(head, sizeof head, "circular import of module '%s': ", dep);
    return mh_error_code(e) == MH_ECYCLE &&
           strncmp(mh_error_message(e), head, strlen(head)) == 0;
}

/* The version a requirement declares in its manifest, checked before it
 * is imported: a conflict then runs none of its code.  Without a declared
 * version the check waits for the import (the descriptor's version). */
static mh_status precheck(mh_host *h, const char *name,
                          const mh_requirement *r, mh_error **err)
{
    const char *iname = mh_int_cstr(h, r->name);
    mh_found f;
    mh_manifest *m = NULL;
    if (!iname || mh_find_spec(h, iname, &f, NULL) != MH_OK ||
        mh_meta_of(h, iname, &f, MH_META_SIDECAR_FIRST, &m, NULL, NULL,
                   NULL) !=
            MH_OK)
        return MH_OK; /* the import says what is wrong */
    const char *why, *v = declared(m);
    mh_status rc = MH_OK;
    if (v && mh_version_check(v, r->constraint, &why) != 1) {
        char detail[600];
        version_detail(detail, sizeof detail, r->name, f.origin, v);
        rc = chain_error(h, err, MH_EVERSION, name, r, detail);
    }
    mh_manifest_free(m);
    return rc;
}

mh_status mh_meta_require(mh_host *h, const char *name, const mh_manifest *m,
                          mh_error **err)
{
    const char *why;
    for (size_t i = 0; i < m->nreq; i++) {
        const mh_requirement *r = &m->req[i];
        mh_module *dep;
        mh_error *e = NULL;
        MH_TRACE(h, "import '%s': requires '%s %s'", name, r->name,
                 r->constraint);
        mh_status rc = MH_OK;
        if (r->constraint[0] && !mh_host_module(h, r->name))
            rc = precheck(h, name, r, err); /* before any of its code runs */
        if (rc != MH_OK)
            return rc;
        rc = mh_import(h, r->name, &dep, &e);
        if (rc != MH_OK) {
            if (names_chain(e)) /* said deeper down, whole */
                return mh_err_give(e, err);
            rc = chain_error(h, err, rc, name, r,
                             is_cycle_of(e, r->name) ? "a circular import"
                                                     : mh_error_message(e));
            mh_error_free(e);
            return rc;
        }
        if (!r->constraint[0])
            continue;
        const char *v = mh_meta_module_version(dep);
        if (mh_version_check(v, r->constraint, &why) != 1) {
            char detail[600];
            version_detail(detail, sizeof detail, r->name, mh_reg_where(dep),
                           v);
            return chain_error(h, err, MH_EVERSION, name, r, detail);
        }
    }
    return MH_OK;
}

/* ---- public API --------------------------------------------------------- */

mh_status mh_metadata(mh_host *host, const char *name, mh_manifest **out,
                      mh_error **err)
{
    MH_BUSY(host);
    if (!out)
        return mh_err(host, err, MH_EINVAL, "mh_metadata: out is NULL");
    *out = NULL;
    if (!host || !name)
        return mh_err(host, err, MH_EINVAL, "mh_metadata: %s is NULL",
                      mh_null_name(2, host, "host", name, "name"));
    mh_status grc = mh_entry_check(host, "mh_metadata", 0, err);
    if (grc != MH_OK)
        return grc;
    mh_status rc = mh_name_check(name, err);
    if (rc != MH_OK)
        return rc;
    const char *iname = mh_int_cstr(host, name);
    if (!iname)
        return mh_err(host, err, MH_ENOMEM, "out of memory reading the "
                      "metadata of '%s'", name);
    mh_found f;
    rc = mh_find_spec(host, iname, &f, err);
    if (rc == MH_OK)
        rc = mh_meta_of(host, iname, &f, 0, out, NULL, NULL, err);
    return rc;
}

const mh_manifest *mh_module_manifest(const mh_module *mod)
{
    return mod ? mh_meta_manifest(mod) : NULL;
}
