/*
 * tests/fuzz/fuzz.h -- what every fuzz target shares (fuzz_common.c).
 *
 * A target is one file tests/fuzz/fuzz_NAME.c defining libFuzzer's entry
 * point, LLVMFuzzerTestOneInput.  It is linked either with libFuzzer
 * (clang, `make fuzz`) or with replay.c, a main() that runs it over the
 * committed corpus (`make test`).  Targets link the library's sources
 * statically (cmake/fuzz.cmake), so they may call internal functions.
 *
 * Rules a target keeps, so a finding is always a library bug:
 *   - every host it makes is isolated (no MODHOST_* variable, no default
 *     entry), logs nowhere, keeps its cache in the process's own temp
 *     directory, and counts its memory with the checking allocator below:
 *     a free with the wrong size, or a byte still held after
 *     mh_host_free, aborts with a message;
 *   - no fuzzed bytes ever run as code, and nothing goes to the network:
 *     dlopen and curl transfers fail through the fault hook, and Lua is
 *     only reached where a target says why it is safe;
 *   - a property the library promises and the target can check (an
 *     interned pointer is stable, a valid name matches the grammar) is
 *     checked with FZ_CHECK, which aborts like a crash.
 */
#ifndef MODHOST_FUZZ_H
#define MODHOST_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include <modhost.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort, libFuzzer-style, when a promised property does not hold. */
#define FZ_CHECK(cond, ...)                                               \
    do {                                                                  \
        if (!(cond))                                                      \
            fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);              \
    } while (0)
_Noreturn void fz_fail(const char *file, int line, const char *cond,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Is finding `id` known and to be let through?  True when the variable
 * MH_FUZZ_KNOWN lists it (comma- or space-separated).  A check for a bug
 * already reported is written FZ_CHECK(ok || fz_known("id"), ...), so a
 * long run can go on looking for other bugs; by default (and in `make
 * test`) nothing is let through.  Ids are listed in docs/fuzzing.md.
 */
int fz_known(const char *id);

/* The mh_config.alloc hook (lua_Alloc contract), checking every osize. */
typedef struct fz_alloc {
    size_t outstanding;      /* bytes held */
    size_t blocks;           /* blocks held */
} fz_alloc;
void *fz_alloc_fn(void *ud, void *ptr, size_t osize, size_t nsize);

/* The process's temp directory (mode 0700, under $TMPDIR or /tmp, made
 * on first use, removed at exit). */
const char *fz_tmpdir(void);
/* fz_tmpdir() + "/" + rel, in a static buffer per call site's choice:
 * the result lives until the next call. */
const char *fz_path(const char *rel);
/* Write size bytes to path (created 0600, truncated); aborts on error. */
void fz_write_file(const char *path, const void *data, size_t size);
/* Remove every entry under dir (not dir itself). */
void fz_empty_dir(const char *dir);
/* A NUL-terminated malloc'ed copy of size bytes (an embedded NUL ends the
 * string early, as it would for any C caller). */
char *fz_cstr(const uint8_t *data, size_t size);

/*
 * A fuzzing host: mh_config with cfg_flags | MH_CONFIG_ISOLATED |
 * MH_CONFIG_NO_DEFAULT_PATH, path (or NULL), the quiet log hook, the
 * fault hook refusing dlopen and curl, the checking allocator a,
 * cache_dir (NULL: fz_tmpdir()/cache) and max_module_size 1 MiB.  NULL
 * when mh_host_new fails (an error a fuzzed path may legitimately cause).
 */
mh_host *fz_host_new(const char *path, unsigned cfg_flags,
                     const char *cache_dir, fz_alloc *a);
/* mh_host_free, then check that every byte went back to a. */
void fz_host_free(mh_host *h, fz_alloc *a);

#define FZ_MAX_MODULE ((size_t)1 << 20)

#endif /* MODHOST_FUZZ_H */
