#!/usr/bin/env bash
# cli.version: --version prints "modhost VERSION" (the library's version,
# which must be the header's) and the plugin ABI version.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

version=$(sed -n 's/^#define MH_VERSION_STRING "\(.*\)"$/\1/p' \
    "$MH_TEST_SOURCE_DIR/include/modhost.h")
abi=$(sed -n 's/^#define MH_PLUGIN_ABI_VERSION \([0-9]*\)$/\1/p' \
    "$MH_TEST_SOURCE_DIR/include/modhost/plugin.h")
[[ -n $version && -n $abi ]] || fail "cannot read the versions from the headers"

mh --version
expect_rc 0
expect_out "modhost $version"$'\n'"plugin ABI $abi"
expect_err_empty

# Global options may come first; --version still wins over a command.
mh -E --version
expect_rc 0
expect_out "modhost $version"$'\n'"plugin ABI $abi"
