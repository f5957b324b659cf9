/*
 * host/meta.h -- module metadata: manifests (host/manifest.c), versions
 * (host/version.c), reading a found module's metadata without running its
 * code and checking it before a load (host/meta.c).
 */
#ifndef MH_HOST_META_H
#define MH_HOST_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "modhost.h"

struct mh_host;
struct mh_found;
struct mh_finder_blob;
struct cJSON;

/* Largest manifest accepted, in bytes of JSON. */
#define MH_MANIFEST_MAX (256u * 1024u)
/* Deepest nesting of a manifest's objects and arrays, the manifest itself
 * counting 1.  Far below cJSON's own limit (CJSON_NESTING_LIMIT, 1000),
 * so that a manifest copied into a larger document -- an HTTP site's
 * index.json nests each one 3 levels down -- never makes that document
 * one cJSON refuses whole. */
#define MH_MANIFEST_DEPTH_MAX 64

/* Do root's objects and arrays nest deeper than MH_MANIFEST_DEPTH_MAX
 * levels (root counting 1)? */
bool mh_manifest_too_deep(const struct cJSON *root);

typedef struct mh_requirement {
    const char *name;        /* host memory, owned by the manifest */
    const char *constraint;  /* "" for any version */
} mh_requirement;

typedef struct mh_provide {
    const char *group;
    const char *export_name;
} mh_provide;

struct mh_manifest {
    struct mh_host *host;    /* allocator */
    const char *name;        /* the module's name (as imported), interned */
    const char *version, *description, *host_req; /* or NULL */
    int abi;                 /* 0: none declared */
    const char *source;      /* "elf-note", "sidecar", "none" */
    /* Compact text, host memory (NUL-terminated; its size is strlen + 1).
     * NULL until first asked for when parsed with mh_manifest_parse_later:
     * then `later` (the text as given, host memory) is printed by
     * mh_manifest_json and the print published here.  `later` stays
     * until the manifest is freed: a reader may be printing from it. */
    _Atomic(char *) json;
    char *later;
    size_t later_len;
    unsigned later_abi;
    mh_requirement *req;
    size_t nreq, req_cap;
    mh_provide *prov;
    size_t nprov, prov_cap;
    /* From an ELF note: where its data lies once loaded (see
     * mh_elf_note.vaddr; 0 if unknown or not from a note), its JSON's
     * length and a hash of the ABI word and JSON as read (host/meta.c),
     * for mh_meta_keep_note. */
    uint64_t note_vaddr;
    size_t note_len;
    uint32_t note_hash;
};

/* Parse JSON text (len bytes) as the manifest of module `name` (interned).
 * `where` names the source in messages.  note_abi: 0, or the ABI word of
 * the ELF note the text came from, which an "abi" field must agree with
 * and which the manifest (and its JSON text) then says (a note's word of
 * 0 declares none, as a manifest without "abi" does).  MH_OK, MH_ENOMEM,
 * or MH_EFORMAT naming the field that is wrong. */
mh_status mh_manifest_parse(struct mh_host *h, const char *name,
                            const char *source, const char *where,
                            const char *json, size_t len, unsigned note_abi,
                            mh_manifest **out, mh_error **err);

/* The same, but the compact text is printed only when mh_manifest_json
 * first asks for it (an import checks a manifest and, when the module's
 * mapping holds its note, drops it: printing it would be wasted, and
 * cJSON's number printing alone is much of an import's code).  The text
 * as given is kept until then. */
mh_status mh_manifest_parse_later(struct mh_host *h, const char *name,
                                  const char *source, const char *where,
                                  const char *json, size_t len,
                                  unsigned note_abi, mh_manifest **out,
                                  mh_error **err);

/* The same for text this library printed itself (mh_manifest_json, as the
 * discovery index keeps it): parsed and checked alike, but kept as given
 * rather than printed again. */
mh_status mh_manifest_parse_own(struct mh_host *h, const char *name,
                                const char *source, const char *where,
                                const char *json, size_t len,
                                mh_manifest **out, mh_error **err);

/* A manifest with nothing in it (source "none"). */
mh_status mh_manifest_empty(struct mh_host *h, const char *name,
                            mh_manifest **out, mh_error **err);

/* -1, 0, 1 as a <, ==, > b (versions: host/version.c). */
int mh_version_cmp(const char *a, const char *b);
/* 1 when version satisfies constraint, 0 when not (or version is NULL or
 * no version), -1 when the constraint is malformed (*why, static). */
int mh_version_check(const char *version, const char *constraint,
                     const char **why);
/* Is version one (dotted numbers first, as host/version.c reads them)?
 * A manifest may declare any text; a constraint holds for none that is
 * not. */
bool mh_version_valid(const char *version);

/* The metadata of a found module, without running its code: the ELF note
 * of a native module, else a sidecar.  For a native module read into
 * memory, `image` (if not NULL) receives the bytes so the loader need not
 * read them again; bytes it already holds (read with the find) are used
 * in place of a read.  *fetch_failed (if not NULL) tells a failure of the
 * finder to deliver the bytes (a download, a locked database) from a fault
 * of the module itself.  (host/meta.c) */
#define MH_META_SIDECAR_FIRST 0x1u /* when the finder says its meta_key
                                      is the whole manifest
                                      (MH_SPEC_META_WHOLE: an HTTP index),
                                      use it; do not read the module */
#define MH_META_TEXT_LATER 0x2u    /* a manifest from an ELF note is
                                      printed when first asked for
                                      (mh_manifest_parse_later) */
mh_status mh_meta_of(struct mh_host *h, const char *name,
                     const struct mh_found *f, unsigned how,
                     mh_manifest **out, struct mh_finder_blob *image,
                     bool *fetch_failed, mh_error **err);

/* May module `name` with manifest m load here?  The plugin ABI and the
 * host version it declares; the refusal says why and that no code ran. */
mh_status mh_meta_check(struct mh_host *h, const char *name,
                        const char *origin, const mh_manifest *m,
                        mh_error **err);

/* Import m's requirements in order, checking their version constraints;
 * the error names the whole import chain. */
mh_status mh_meta_require(struct mh_host *h, const char *name,
                          const mh_manifest *m, mh_error **err);

/* The discovery index learns that module `name`, found as f, failed to
 * load for a reason of its own (its metadata, ABI, host version, load or
 * init), so discovery skips it until it changes.  at_load: the failure
 * came from loading or running its code, which no read of its metadata
 * can confirm or refute.  (host/discover.c) */
/* Module `name` loaded from origin: a failure the index recorded for that
 * origin (a passing one: a file, a service its init needed) no longer
 * holds, and discovery must stop skipping it -- if this host recorded or
 * met that failure (mh_host.dx_failed); another process's lock on the
 * index is not waited for (the next listing or mh_host_failures of this
 * host forgets it then: mh_host.dx_unclear). */
void mh_discover_loaded(struct mh_host *h, const char *name,
                        const char *origin);
void mh_discover_record(struct mh_host *h, const char *name,
                        const struct mh_found *f, const mh_error *e,
                        bool at_load);

/* After mod loaded with manifest m: when m came from an ELF note that
 * the mapping holds, point mod->note at it there and return true (the
 * caller frees m: mh_meta_manifest parses it again if asked); else
 * false (the caller keeps m). */
bool mh_meta_keep_note(mh_module *mod, const mh_manifest *m);

/* A loaded module's manifest: the one kept, or its note parsed now (and
 * kept from then on).  NULL if it has none, or out of memory. */
const mh_manifest *mh_meta_manifest(const mh_module *mod);

/* The version a loaded module reports: its manifest's, else its
 * descriptor's, or NULL. */
const char *mh_meta_module_version(const mh_module *mod);

#endif /* MH_HOST_META_H */
