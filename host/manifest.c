/*
 * host/manifest.c -- module manifests (mh_manifest_*): JSON parsed with
 * cJSON, checked field by field, and kept as plain strings.
 *
 *   {"name": "codecs.rot13", "version": "1.2.0",
 *    "description": "ROT13 text codec", "abi": 1, "modhost": ">=0.1",
 *    "requires": ["textutil >=1.0, <2", "hello"],
 *    "provides": {"codec": "call:encode"}}
 *
 * Every field is optional; unknown fields are ignored (a newer SDK may
 * add some).  A field of the wrong type, a bad requirement or a bad
 * constraint is an error that names the field and the file: a manifest
 * is a promise, and a broken one should be fixed, not guessed at.
 */
#include "host/internal.h"
#include "host/meta.h"

#include <cjson/cJSON.h>
#include <string.h>

static void strfree(mh_host *h, const char *s)
{
    mh_mem_strfree(h, (char *)s);
}

void mh_manifest_free(mh_manifest *m)
{
    if (!m)
        return;
    mh_host *h = m->host;
    strfree(h, m->version);
    strfree(h, m->description);
    strfree(h, m->host_req);
    for (size_t i = 0; i < m->nreq; i++) {
        strfree(h, m->req[i].name);
        strfree(h, m->req[i].constraint);
    }
    for (size_t i = 0; i < m->nprov; i++) {
        strfree(h, m->prov[i].group);
        strfree(h, m->prov[i].export_name);
    }
    mh_mem_free(h, m->req, m->req_cap * sizeof *m->req);
    mh_mem_free(h, m->prov, m->prov_cap * sizeof *m->prov);
    char *json = atomic_load_explicit(&m->json, memory_order_acquire);
    mh_mem_strfree(h, json);
    if (m->later)
        mh_mem_free(h, m->later, m->later_len + 1);
    mh_mem_free(h, m, sizeof *m);
}

static mh_manifest *blank(mh_host *h, const char *name, const char *source)
{
    mh_manifest *m = mh_mem_calloc(h, 1, sizeof *m);
    if (!m)
        return NULL;
    m->host = h;
    m->source = source;
    /* Interned: the host has it already, so a kept manifest costs no
     * copy.  Where it came from is in its messages only: the module's
     * origin tells that. */
    m->name = mh_int_cstr(h, name);
    if (!m->name) {
        mh_manifest_free(m);
        return NULL;
    }
    return m;
}

/* A copy of len bytes of text, NUL-terminated, in host memory. */
static char *copy_n(mh_host *h, const char *text, size_t len)
{
    char *c = mh_mem_alloc(h, len + 1);
    if (c) {
        memcpy(c, text, len);
        c[len] = '\0';
    }
    return c;
}

static bool set_json_n(mh_manifest *m, const char *text, size_t len)
{
    /* Freed as a string (strlen + 1 bytes): never copy past a NUL. */
    char *c = copy_n(m->host, text, strnlen(text, len));
    atomic_store_explicit(&m->json, c, memory_order_release);
    return c != NULL;
}

static bool set_json(mh_manifest *m, const char *text)
{
    return set_json_n(m, text, strlen(text));
}

mh_status mh_manifest_empty(mh_host *h, const char *name, mh_manifest **out,
                            mh_error **err)
{
    *out = blank(h, name, "none");
    if (!*out || !set_json(*out, "{}")) {
        mh_manifest_free(*out);
        *out = NULL;
        return mh_err(h, err, MH_ENOMEM, "out of memory reading the "
                      "metadata of '%s'", name);
    }
    return MH_OK;
}

/* An optional string field: NULL if absent; false if of another type. */
static bool opt_string(const cJSON *root, const char *key, const char **out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = NULL;
    if (!j)
        return true;
    if (!cJSON_IsString(j) || !j->valuestring)
        return false;
    *out = j->valuestring;
    return true;
}

/* "name constraint" -> name, constraint (both trimmed); false if the
 * name part is not a module name. */
static bool split_req(const char *s, char *name, size_t nsize,
                      const char **constraint, size_t *clen)
{
    while (*s == ' ')
        s++;
    size_t n = strcspn(s, " <>=!~,");
    if (n == 0 || n >= nsize)
        return false;
    memcpy(name, s, n);
    name[n] = '\0';
    s += n;
    while (*s == ' ')
        s++;
    *constraint = s;
    *clen = strlen(s);
    while (*clen && s[*clen - 1] == ' ')
        --*clen;
    return mh_name_check(name, NULL) == MH_OK;
}

typedef struct parse_ctx {
    mh_host *h;
    const char *name, *where;
    mh_error **err;
    unsigned note_abi;       /* 0, or the ABI word of the note it is in */
} parse_ctx;

static mh_status bad(const parse_ctx *p, const char *what)
{
    return mh_err(p->h, p->err, MH_EFORMAT, "manifest of module '%s' (%s): "
                  "%s", p->name, p->where, what);
}

static mh_status bad_req(const parse_ctx *p, size_t i, const char *text,
                         const char *why)
{
    return mh_err(p->h, p->err, MH_EFORMAT, "manifest of module '%s' (%s): "
                  "requires[%zu] '%s': %s", p->name, p->where, i, text, why);
}

static mh_status parse_requires(const parse_ctx *p, const cJSON *arr,
                                mh_manifest *m)
{
    if (!arr)
        return MH_OK;
    if (!cJSON_IsArray(arr))
        return bad(p, "'requires' must be an array of strings "
                      "(\"name constraint\")");
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n > 1024)
        return bad(p, "'requires' has more than 1024 entries");
    m->req = n ? mh_mem_calloc(p->h, n, sizeof *m->req) : NULL;
    if (n && !m->req)
        return mh_err(p->h, p->err, MH_ENOMEM, "out of memory reading the "
                          "manifest of module '%s'", p->name);
    m->req_cap = n;
    size_t i = 0;
    for (const cJSON *j = arr->child; j; j = j->next, i++) {
        if (!cJSON_IsString(j) || !j->valuestring)
            return bad_req(p, i, "?", "not a string");
        char name[MH_NAME_MAX + 1];
        const char *c, *why;
        size_t clen;
        if (!split_req(j->valuestring, name, sizeof name, &c, &clen))
            return bad_req(p, i, j->valuestring, "it must start with a "
                           "module name");
        if (mh_version_check(NULL, c, &why) < 0)
            return bad_req(p, i, j->valuestring, why);
        m->req[m->nreq].name = mh_mem_strdup(p->h, name);
        m->req[m->nreq].constraint = mh_mem_strndup(p->h, c, clen);
        m->nreq++;
        if (!m->req[m->nreq - 1].name || !m->req[m->nreq - 1].constraint)
            return mh_err(p->h, p->err, MH_ENOMEM, "out of memory reading the "
                          "manifest of module '%s'", p->name);
    }
    return MH_OK;
}

static mh_status parse_provides(const parse_ctx *p, const cJSON *obj,
                                mh_manifest *m)
{
    if (!obj)
        return MH_OK;
    if (!cJSON_IsObject(obj))
        return bad(p, "'provides' must be an object: group -> export name");
    size_t n = (size_t)cJSON_GetArraySize(obj);
    if (n > 1024)
        return bad(p, "'provides' has more than 1024 groups");
    m->prov = n ? mh_mem_calloc(p->h, n, sizeof *m->prov) : NULL;
    if (n && !m->prov)
        return mh_err(p->h, p->err, MH_ENOMEM, "out of memory reading the "
                          "manifest of module '%s'", p->name);
    m->prov_cap = n;
    for (const cJSON *j = obj->child; j; j = j->next) {
        if (!j->string || !j->string[0] || !cJSON_IsString(j) ||
            !j->valuestring || !j->valuestring[0])
            return mh_err(p->h, p->err, MH_EFORMAT, "manifest of module '%s' "
                          "(%s): provides '%s': the group and its export "
                          "must be non-empty strings", p->name, p->where,
                          j->string ? j->string : "");
        if (mh_manifest_provider(m, j->string))
            return mh_err(p->h, p->err, MH_EFORMAT, "manifest of module '%s' "
                          "(%s): provides '%s' twice", p->name, p->where,
                          j->string);
        m->prov[m->nprov].group = mh_mem_strdup(p->h, j->string);
        m->prov[m->nprov].export_name = mh_mem_strdup(p->h, j->valuestring);
        m->nprov++;
        if (!m->prov[m->nprov - 1].group ||
            !m->prov[m->nprov - 1].export_name)
            return mh_err(p->h, p->err, MH_ENOMEM, "out of memory reading the "
                          "manifest of module '%s'", p->name);
    }
    return MH_OK;
}

/* Does j nest containers more than `left` levels deep? */
static bool deeper_than(const cJSON *j, int left)
{
    if (!cJSON_IsArray(j) && !cJSON_IsObject(j))
        return false;
    if (left == 0)
        return true;
    for (const cJSON *c = j->child; c; c = c->next)
        if (deeper_than(c, left - 1))
            return true;
    return false;
}

bool mh_manifest_too_deep(const cJSON *root)
{
    return deeper_than(root, MH_MANIFEST_DEPTH_MAX);
}

static mh_status fill(const parse_ctx *p, const cJSON *root, mh_manifest *m)
{
    mh_host *h = p->h;
    const char *version, *desc, *host_req, *mname;
    if (!cJSON_IsObject(root))
        return bad(p, "it is not a JSON object");
    /* One meaning per field: a key given twice is refused, not guessed. */
    if (cJSON_GetArraySize(root) > 256)
        return bad(p, "it has more than 256 fields");
    if (mh_manifest_too_deep(root))
        return mh_err(h, p->err, MH_EFORMAT, "manifest of module '%s' "
                      "(%s): its objects and arrays nest more than %d "
                      "levels deep", p->name, p->where,
                      MH_MANIFEST_DEPTH_MAX);
    for (const cJSON *a = root->child; a; a = a->next)
        for (const cJSON *b = a->next; b; b = b->next)
            if (a->string && b->string && strcmp(a->string, b->string) == 0)
                return mh_err(h, p->err, MH_EFORMAT, "manifest of module "
                              "'%s' (%s): '%s' is given twice", p->name,
                              p->where, a->string);
    if (!opt_string(root, "name", &mname))
        return bad(p, "'name' must be a string");
    if (mname && mh_name_check(mname, NULL) != MH_OK)
        return bad(p, "'name' is not a module name");
    if (!opt_string(root, "version", &version))
        return bad(p, "'version' must be a string");
    if (!opt_string(root, "description", &desc))
        return bad(p, "'description' must be a string");
    if (!opt_string(root, "modhost", &host_req))
        return bad(p, "'modhost' must be a version constraint string");
    const char *why;
    if (host_req && mh_version_check(NULL, host_req, &why) < 0)
        return mh_err(h, p->err, MH_EFORMAT, "manifest of module '%s' (%s): "
                      "'modhost' '%s': %s", p->name, p->where, host_req, why);
    const cJSON *abi = cJSON_GetObjectItemCaseSensitive(root, "abi");
    if (abi && (!cJSON_IsNumber(abi) || abi->valuedouble < 1 ||
                abi->valuedouble > 1e6 ||
                abi->valuedouble != (double)abi->valueint))
        return bad(p, "'abi' must be a whole number from 1 to 1000000");
    m->abi = abi ? abi->valueint : 0;
    if (p->note_abi && m->abi && (unsigned)m->abi != p->note_abi)
        return mh_err(h, p->err, MH_EFORMAT, "manifest of module '%s' (%s) "
                      "says abi %d, but the plugin was built for ABI %u",
                      p->name, p->where, m->abi, p->note_abi);
    if ((version && !(m->version = mh_mem_strdup(h, version))) ||
        (desc && !(m->description = mh_mem_strdup(h, desc))) ||
        (host_req && !(m->host_req = mh_mem_strdup(h, host_req))))
        return mh_err(h, p->err, MH_ENOMEM, "out of memory reading the "
                      "manifest of module '%s'", p->name);
    mh_status rc = parse_requires(
        p, cJSON_GetObjectItemCaseSensitive(root, "requires"), m);
    if (rc == MH_OK)
        rc = parse_provides(
            p, cJSON_GetObjectItemCaseSensitive(root, "provides"), m);
    return rc;
}

/* A note's ABI word goes into its JSON text too (its "abi" replaced),
 * so that a copy kept as text says it. */
static bool set_note_abi(cJSON *root, unsigned abi)
{
    cJSON_DeleteItemFromObjectCaseSensitive(root, "abi"); /* at most one */
    return cJSON_AddNumberToObject(root, "abi", abi) != NULL;
}

/* root printed compact, with the note's ABI word (if any): the text
 * mh_manifest_json gives, in cJSON's memory (cJSON_free), or NULL. */
static char *print(cJSON *root, unsigned note_abi)
{
    return !note_abi || set_note_abi(root, note_abi)
               ? cJSON_PrintUnformatted(root) : NULL;
}

enum text_mode {
    TEXT_PRINT, /* printed again, compact, now */
    TEXT_OWN,   /* this library's own print: kept as given */
    TEXT_LATER, /* kept as given, printed when first asked for */
};

static mh_status parse(mh_host *h, const char *name, const char *source,
                       const char *where, const char *json, size_t len,
                       unsigned note_abi, enum text_mode mode,
                       mh_manifest **out, mh_error **err)
{
    parse_ctx p = {h, name, where ? where : "?", err, note_abi};
    *out = NULL;
    if (note_abi > 1000000 ||
        (note_abi == 0 && mode != TEXT_OWN && source &&
         strcmp(source, "elf-note") == 0))
        /* 0 is no plugin ABI either (0 means "no note" elsewhere): such a
         * note would get past the check before dlopen.  (The discovery
         * index's own print has the ABI in its JSON, no word.) */
        return mh_err(h, err, MH_EFORMAT, "manifest of module '%s' (%s): "
                      "its note's ABI word %u is not a plugin ABI", name,
                      p.where, note_abi);
    /* This library's own print of a manifest that was within the limit
     * may be longer: JSON escapes take up to 6 bytes for one. */
    size_t limit = mode == TEXT_OWN ? 6 * (size_t)MH_MANIFEST_MAX
                                    : MH_MANIFEST_MAX;
    if (len > limit)
        return mh_err(h, err, MH_EFORMAT, "manifest of module '%s' (%s) is "
                      "%zu bytes; the limit is %zu", name, p.where, len,
                      limit);
    if (memchr(json, '\0', len))
        return bad(&p, "it contains a NUL byte");
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, false);
    while (root && end && end < json + len &&
           (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (root && end && end < json + len) { /* one JSON value, nothing after */
        cJSON_Delete(root);
        return mh_err(h, err, MH_EFORMAT, "manifest of module '%s' (%s) has "
                      "data after its JSON object (at byte %zu)", name,
                      p.where, (size_t)(end - json));
    }
    if (!root) {
        size_t at = end && end >= json && end <= json + len
                        ? (size_t)(end - json) : 0;
        return mh_err(h, err, MH_EFORMAT, "manifest of module '%s' (%s) is "
                      "not valid JSON (near byte %zu)", name, p.where, at);
    }
    mh_manifest *m = blank(h, name, source);
    mh_status rc = m ? fill(&p, root, m)
                     : mh_err(h, err, MH_ENOMEM, "out of memory reading the "
                              "manifest of module '%s'", name);
    if (rc == MH_OK && note_abi)
        m->abi = (int)note_abi; /* the note's word is the ABI it says */
    bool stored = true;
    if (rc == MH_OK && mode == TEXT_PRINT) {
        char *text = print(root, note_abi);
        stored = text && set_json(m, text);
        cJSON_free(text);
    } else if (rc == MH_OK && mode == TEXT_OWN) {
        stored = set_json_n(m, json, len);
    } else if (rc == MH_OK) {
        m->later = copy_n(h, json, len);
        m->later_len = len;
        m->later_abi = note_abi;
        stored = m->later != NULL;
    }
    if (!stored)
        rc = mh_err(h, err, MH_ENOMEM, "out of memory reading the manifest "
                    "of module '%s'", name);
    cJSON_Delete(root);
    if (rc != MH_OK) {
        mh_manifest_free(m);
        return rc;
    }
    *out = m;
    return MH_OK;
}

mh_status mh_manifest_parse(mh_host *h, const char *name, const char *source,
                            const char *where, const char *json, size_t len,
                            unsigned note_abi, mh_manifest **out,
                            mh_error **err)
{
    return parse(h, name, source, where, json, len, note_abi, TEXT_PRINT,
                 out, err);
}

mh_status mh_manifest_parse_later(mh_host *h, const char *name,
                                  const char *source, const char *where,
                                  const char *json, size_t len,
                                  unsigned note_abi, mh_manifest **out,
                                  mh_error **err)
{
    return parse(h, name, source, where, json, len, note_abi, TEXT_LATER,
                 out, err);
}

mh_status mh_manifest_parse_own(mh_host *h, const char *name,
                                const char *source, const char *where,
                                const char *json, size_t len,
                                mh_manifest **out, mh_error **err)
{
    return parse(h, name, source, where, json, len, 0, TEXT_OWN, out, err);
}

/* ---- accessors ---------------------------------------------------------- */

const char *mh_manifest_name(const mh_manifest *m)
{
    return m ? m->name : NULL;
}

const char *mh_manifest_version(const mh_manifest *m)
{
    return m ? m->version : NULL;
}

const char *mh_manifest_description(const mh_manifest *m)
{
    return m ? m->description : NULL;
}

int mh_manifest_abi(const mh_manifest *m)
{
    return m ? m->abi : 0;
}

const char *mh_manifest_source(const mh_manifest *m)
{
    return m ? m->source : NULL;
}

const char *mh_manifest_json(const mh_manifest *m)
{
    if (!m)
        return NULL;
    mh_manifest *w = (mh_manifest *)m; /* its text is a cache */
    char *json = atomic_load_explicit(&w->json, memory_order_acquire);
    if (json || !m->later)
        return json;
    /* Printed now: the text parsed and was checked before, so only memory
     * can fail.  Two threads may both print; the first to publish wins. */
    cJSON *root = cJSON_ParseWithLength(m->later, m->later_len);
    char *text = root ? print(root, m->later_abi) : NULL;
    char *mine = text ? copy_n(m->host, text, strlen(text)) : NULL;
    cJSON_free(text);
    cJSON_Delete(root);
    if (mine && !atomic_compare_exchange_strong_explicit(
                    &w->json, &json, mine, memory_order_acq_rel,
                    memory_order_acquire)) {
        mh_mem_strfree(m->host, mine); /* another thread's came first */
        return json;
    }
    return mine;
}

size_t mh_manifest_requires_count(const mh_manifest *m)
{
    return m ? m->nreq : 0;
}

mh_status mh_manifest_require(const mh_manifest *m, size_t i,
                              const char **name, const char **constraint)
{
    bool ok = m && i < m->nreq;
    if (name)
        *name = ok ? m->req[i].name : NULL;
    if (constraint)
        *constraint = ok ? m->req[i].constraint : NULL;
    return ok ? MH_OK : MH_EINVAL;
}

size_t mh_manifest_provides_count(const mh_manifest *m)
{
    return m ? m->nprov : 0;
}

mh_status mh_manifest_provide(const mh_manifest *m, size_t i,
                              const char **group, const char **export_name)
{
    bool ok = m && i < m->nprov;
    if (group)
        *group = ok ? m->prov[i].group : NULL;
    if (export_name)
        *export_name = ok ? m->prov[i].export_name : NULL;
    return ok ? MH_OK : MH_EINVAL;
}

const char *mh_manifest_provider(const mh_manifest *m, const char *group)
{
    for (size_t i = 0; m && group && i < m->nprov; i++)
        if (strcmp(m->prov[i].group, group) == 0)
            return m->prov[i].export_name;
    return NULL;
}
