#!/usr/bin/env bash
# cli.find_missing: a module no entry has gives status 3 and a message that
# names the module and every entry tried.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

mkdir "$T/one" "$T/two"
for json in "" --json; do
    mh -E -p "$T/one" -p "$T/two" find $json no_such.module
    expect_rc 3
    expect_out_empty
    expect_err_prefixed
    expect_err_has "no_such.module"
    expect_err_has "$T/one"
    expect_err_has "$T/two"
done

# The same through MODHOST_PATH.
MODHOST_PATH="$T/one;$T/two" mh find no_such.module
expect_rc 3
expect_err_has "no_such.module"
expect_err_has "$T/one"
expect_err_has "$T/two"
