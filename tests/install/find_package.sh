#!/usr/bin/env bash
# find_package.sh -- a consumer project finds the installed library with
# find_package(modhost) and links modhost::modhost; its program checks the
# runtime version against the header, then imports the bundled `hello`
# plugin both from an explicit path and through the relocatable default
# path next to the installed library.
#
# Needs MH_TEST_PREFIX (the scratch install prefix).
set -euo pipefail

fail() { echo "find_package: FAIL: $*" >&2; exit 1; }

: "${MH_TEST_PREFIX:?set MH_TEST_PREFIX to the install prefix}"

# GNUInstallDirs may have chosen lib, lib64 or lib/<multiarch>.
libdir=
for d in lib lib64 lib/x86_64-linux-gnu; do
    if [ -e "$MH_TEST_PREFIX/$d/libmodhost.so" ]; then
        libdir=$MH_TEST_PREFIX/$d
        break
    fi
done
[ -n "$libdir" ] || fail "no libmodhost.so under $MH_TEST_PREFIX"
moddir=$libdir/modhost/modules
[ -f "$moddir/hello.so" ] || fail "no bundled hello.so in $moddir"

work=$(mktemp -d "${TMPDIR:-/tmp}/modhost-findpkg.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"

cat >"$work/src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(modhost_consumer C)
find_package(modhost REQUIRED)
add_executable(app main.c)
target_link_libraries(app modhost::modhost)
CMAKE

cat >"$work/src/main.c" <<'C'
#include <modhost.h>
#include <stdio.h>
#include <string.h>

static int import_hello(unsigned flags, const char *path, const char *want_dir)
{
    mh_config cfg;
    mh_host *host = NULL;
    mh_module *mod = NULL;
    mh_error *err = NULL;
    const char *(*greeting)(void);
    int rc = 1;

    mh_config_init(&cfg);
    cfg.flags = flags;
    cfg.path = path;
    if (mh_host_new(&cfg, &host, &err) != MH_OK) {
        fprintf(stderr, "mh_host_new: %s\n", mh_error_message(err));
        mh_error_free(err);
        return 1;
    }
    if (mh_import(host, "hello", &mod, &err) != MH_OK) {
        fprintf(stderr, "import hello: %s\n", mh_error_message(err));
        mh_error_free(err);
    } else if (strncmp(mh_module_origin(mod), want_dir, strlen(want_dir)) != 0) {
        fprintf(stderr, "hello came from %s, not %s\n", mh_module_origin(mod),
                want_dir);
    } else if ((greeting = (const char *(*)(void))mh_module_symbol(
                    mod, "greeting")) == NULL) {
        fprintf(stderr, "hello has no 'greeting' export\n");
    } else if (strcmp(greeting(), "hello") != 0) {
        fprintf(stderr, "greeting() returned '%s'\n", greeting());
    } else {
        rc = 0;
    }
    mh_host_free(host);
    return rc;
}

int main(int argc, char **argv)
{
    mh_error *err = NULL;

    if (argc != 2) {
        fprintf(stderr, "usage: app MODULE_DIR\n");
        return 2;
    }
    if (mh_version() != MH_VERSION_NUMBER) {
        fprintf(stderr, "mh_version() = %d, header says %d\n", mh_version(),
                MH_VERSION_NUMBER);
        return 1;
    }
    if (MH_CHECK_VERSION(&err) != MH_OK) {
        fprintf(stderr, "MH_CHECK_VERSION: %s\n", mh_error_message(err));
        mh_error_free(err);
        return 1;
    }
    if (import_hello(MH_CONFIG_ISOLATED | MH_CONFIG_NO_DEFAULT_PATH, argv[1],
                     argv[1]) != 0)
        return 1;
    /* No path at all: the relocatable default next to the library. */
    if (import_hello(MH_CONFIG_ISOLATED, NULL, argv[1]) != 0) {
        fprintf(stderr, "(through the default path)\n");
        return 1;
    }
    printf("ok: version %s\n", mh_version_string());
    return 0;
}
C

# A library built with sanitizers needs a program built with them too.
cflags=
if grep -qa 'libasan\.so' "$libdir/libmodhost.so"; then
    cflags="-fsanitize=address,undefined -fno-omit-frame-pointer"
fi

cmake -S "$work/src" -B "$work/build" -DCMAKE_PREFIX_PATH="$MH_TEST_PREFIX" \
      -DCMAKE_C_FLAGS="$cflags" >"$work/configure.log" 2>&1 ||
    fail "configuring the consumer failed: $(cat "$work/configure.log")"
cmake --build "$work/build" >"$work/build.log" 2>&1 ||
    fail "building the consumer failed: $(cat "$work/build.log")"

LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
    "$work/build/app" "$moddir" || fail "the consumer program failed"
