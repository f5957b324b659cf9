/*
 * modhost/plugin.h -- the plugin SDK.
 *
 * A native modhost module is a shared object that exports one symbol,
 * `mh_plugin_descriptor`, of type mh_plugin_desc.  The MH_PLUGIN() macro
 * defines it.  Plugins include only this header and never link against
 * libmodhost: everything a plugin may ask of the host comes through the
 * mh_host_api table passed to its init function (the same pattern as
 * SQLite's sqlite3_api_routines).
 *
 * Compatibility rules (never broken, only extended):
 *   - MH_PLUGIN_ABI_VERSION changes only when an existing field of
 *     mh_plugin_desc or mh_host_api changes meaning.  The host refuses a
 *     descriptor whose abi_version differs from its own, before it calls
 *     any function of the plugin.  A plugin built with MH_PLUGIN_MANIFEST
 *     carries its ABI in its manifest note and is refused before it is
 *     even mapped; one without a note is checked right after dlopen, so
 *     its ELF constructors, if it has any, have run by then.
 *   - mh_host_api only ever grows at its end.  A plugin built against a
 *     newer header checks api->size before using a field the host it runs
 *     in may not have (see MH_API_HAS).
 *   - mh_plugin_desc begins with its ABI version and size and keeps
 *     reserved room at its end.
 *
 * Minimal plugin:
 *
 *     #include <modhost/plugin.h>
 *     #include <stdio.h>
 *
 *     static int hello_main(int argc, char **argv) {
 *         printf("hello from a plugin, %d args\n", argc);
 *         return 0;
 *     }
 *     MH_PLUGIN("hello", "1.0", NULL, NULL,
 *               MH_EXPORT("main", hello_main))
 */
#ifndef MODHOST_PLUGIN_H
#define MODHOST_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The plugin ABI this header describes. */
#define MH_PLUGIN_ABI_VERSION 1

/* Name of the descriptor symbol the host looks up with dlsym(). */
#define MH_PLUGIN_DESCRIPTOR_SYMBOL "mh_plugin_descriptor"

/* Log levels, shared with the host API (modhost.h uses the same values). */
#define MH_PLUGIN_LOG_ERROR 0
#define MH_PLUGIN_LOG_WARN  1
#define MH_PLUGIN_LOG_INFO  2
#define MH_PLUGIN_LOG_TRACE 3

/* The module being initialised, as the plugin sees it: an opaque handle it
 * passes back to the host API. */
typedef struct mh_plugin mh_plugin;

/* Where a JSON call's result goes (see MH_CALL). */
typedef struct mh_call_out mh_call_out;

/* One exported function: a name and an address.  The host hands the
 * address back unchanged from mh_module_symbol(); the caller casts it to
 * the function's real type, as with dlsym(). */
typedef struct mh_export {
    const char *name;
    void *address;
} mh_export;

/*
 * Services the host offers to plugins.  Grows only at its end; `size` is
 * sizeof(mh_host_api) in the host that built it.
 */
typedef struct mh_host_api {
    uint32_t abi_version;      /* MH_PLUGIN_ABI_VERSION of the host */
    uint32_t size;             /* sizeof(mh_host_api) in the host */
    const char *host_version;  /* e.g. "0.1.0" */

    /* Write a message through the host's log hook, tagged with the
     * module's name.  printf-style. */
    void (*log)(mh_plugin *self, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* From init only: record why init refuses to load.  The text becomes
     * the import error the application sees.  printf-style; cut to 4 KiB
     * (ending "..."), as call_error's is. */
    void (*set_error)(mh_plugin *self, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

    /* Allocate and free through the host's allocator.  alloc returns NULL
     * on failure; free(NULL) is a no-op.  Memory must be freed with the same
     * size it was allocated with. */
    void *(*alloc)(mh_plugin *self, size_t size);
    void (*free)(mh_plugin *self, void *ptr, size_t size);

    /* Return the canonical interned copy of str (valid for the host's
     * lifetime), or NULL when out of memory. */
    const char *(*intern)(mh_plugin *self, const char *str);

    /* Import another module through the host (its init runs first if it is
     * not loaded yet) and look up one of its exports.  Returns the address,
     * or NULL.  During init the reason becomes this plugin's error, shown
     * once: in the init's error if the init then fails without set_error,
     * else (it goes on, or says why with set_error) logged as a warning.
     * Outside init the reason is logged. */
    void *(*import_symbol)(mh_plugin *self, const char *module,
                           const char *symbol);

    /* Per-module user data, e.g. state allocated in init for fini. */
    void (*set_userdata)(mh_plugin *self, void *data);
    void *(*get_userdata)(mh_plugin *self);

    /* The module's own interned name. */
    const char *(*name)(mh_plugin *self);

    /* From a JSON call function (MH_CALL): set its result, JSON text that
     * the host copies; or say why it failed (printf-style), then return
     * non-zero. */
    void (*call_return)(mh_call_out *out, const char *json);
    void (*call_error)(mh_call_out *out, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

    /* New members go here, at the end only. */
} mh_host_api;

/*
 * A function callable with JSON values (mh_module_call, `modhost call`):
 * args_json is a JSON array of the arguments; return 0 after
 * api->call_return(out, "json"), or non-zero after api->call_error.
 */
typedef int (*mh_call_fn)(const mh_host_api *api, mh_plugin *self,
                          const char *args_json, mh_call_out *out);

/* One entry of the export list that is callable as `name` with JSON:
 * exported under "call:name". */
#define MH_CALL(name, fn) MH_EXPORT("call:" name, (mh_call_fn)(fn))

/* True when the host's API table has member `field`. */
#define MH_API_HAS(api, field) \
    ((api)->size >= offsetof(mh_host_api, field) + sizeof((api)->field))

/*
 * init: called once per host, after the ABI check, before the module is
 * visible to anybody else.  Return 0 to accept, non-zero to refuse (call
 * api->set_error first to say why).  A refused module is unloaded and
 * fini is never called.
 * fini: called once when the host is freed, in reverse order of
 * initialisation.
 *
 * Several hosts in one process that import the same file share one
 * loaded object (the dynamic loader maps a file once), and so its static
 * variables: each host runs init and fini on it.  Keep what init makes
 * for its host in api->set_userdata, not in statics, or a second host's
 * init overwrites the first's and the first host's fini frees what the
 * other still uses.
 */
typedef int (*mh_plugin_init_fn)(const mh_host_api *api, mh_plugin *self);
typedef void (*mh_plugin_fini_fn)(const mh_host_api *api, mh_plugin *self);

typedef struct mh_plugin_desc {
    uint32_t abi_version;        /* MH_PLUGIN_ABI_VERSION */
    uint32_t size;               /* sizeof(mh_plugin_desc) */
    const char *name;            /* the module's own name, informative */
    const char *version;         /* free-form version string */
    mh_plugin_init_fn init;      /* may be NULL */
    mh_plugin_fini_fn fini;      /* may be NULL */
    const mh_export *exports;    /* terminated by {NULL, NULL}; may be NULL */
    void *reserved[8];           /* zero; room to grow */
} mh_plugin_desc;

#if defined(__GNUC__)
#define MH_PLUGIN_EXPORT_ __attribute__((visibility("default"), used))
#else
#define MH_PLUGIN_EXPORT_
#endif
/* In C++ a const at namespace scope has internal linkage, and a name of
 * C++ linkage is mangled: the descriptor must be extern "C" to be found. */
#ifdef __cplusplus
#define MH_PLUGIN_LINKAGE_ extern "C"
#else
#define MH_PLUGIN_LINKAGE_
#endif

/* One entry of the export list given to MH_PLUGIN(). */
#define MH_EXPORT(name, fn) { (name), (void *)(fn) }

/*
 * Define the module's descriptor.  Use once per plugin, at file scope.
 *   MH_PLUGIN(name, version, init, fini, MH_EXPORT("f", f), ...)
 */
#define MH_PLUGIN(name_, version_, init_, fini_, ...)                      \
    static const mh_export mh_plugin_exports_[] = {                        \
        __VA_ARGS__ __VA_OPT__(,) { NULL, NULL } };                        \
    MH_PLUGIN_LINKAGE_ MH_PLUGIN_EXPORT_                                   \
    const mh_plugin_desc mh_plugin_descriptor = {                          \
        MH_PLUGIN_ABI_VERSION, (uint32_t)sizeof(mh_plugin_desc),           \
        (name_), (version_), (init_), (fini_), mh_plugin_exports_,         \
        { NULL } };

/*
 * The module's manifest, readable without loading it: JSON text (a string
 * literal) in an ELF note (section ".note.modhost", owner "modhost"),
 * together with the plugin ABI it was built for.  The host reads it from
 * the file before dlopen, checks the ABI and the host version there, and
 * imports what it requires first.  Use once per plugin, at file scope:
 *
 *   MH_PLUGIN_MANIFEST("{\"name\": \"codecs.rot13\", \"version\": \"1.2.0\","
 *                      " \"provides\": {\"codec\": \"call:encode\"}}")
 *
 * Fields: see docs/formats.md ("Manifests").  Tools that strip sections
 * may drop it; a sidecar NAME.json beside the plugin serves then.
 */
#define MH_NOTE_OWNER "modhost"
#define MH_NOTE_TYPE_MANIFEST 0x4d480001u
#define MH_PLUGIN_MANIFEST(json_)                                          \
    __attribute__((section(".note.modhost"), used, aligned(4)))            \
    static const struct {                                                  \
        uint32_t namesz, descsz, type;                                     \
        char owner[8];                                                     \
        uint32_t abi;                                                      \
        char json[(sizeof(json_) + 3) & ~(size_t)3];                       \
    } mh_plugin_manifest_note_ = {                                         \
        8, (uint32_t)(4 + sizeof(json_)), MH_NOTE_TYPE_MANIFEST,           \
        MH_NOTE_OWNER, MH_PLUGIN_ABI_VERSION, json_ };

#ifdef __cplusplus
}
#endif
#endif /* MODHOST_PLUGIN_H */
