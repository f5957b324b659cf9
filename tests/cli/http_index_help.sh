#!/usr/bin/env bash
# cli.http_index_help: index, keygen and fetch are in the global help's
# command list and have their own help, explaining the index format,
# signing and trust, and offline use; the global help mentions HTTP
# entries and MODHOST_TRUST.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"
cd "$T"

mh --help
expect_rc 0
for head in "index \[--sign KEY\] DIR" "keygen BASE" "fetch \[NAME\.\.\.\]"; do
    grep -qE "^  $head " "$T/.out" || fail "--help does not list '$head'"
done
for word in "https://" "MODHOST_TRUST" "modhost index"; do
    expect_out_has "$word"
done

# help_has CMD SYNOPSIS WORD...: every way of asking prints CMD's help.
help_has() {
    local c=$1 syn=$2 args word; shift 2
    for args in "help $c" "$c --help" "$c -h" "-E $c --help"; do
        mh $args
        expect_rc 0
        expect_err_empty
        [[ $OUT == "Usage: modhost [GLOBAL OPTIONS] $c $syn"$'\n'* ]] ||
            fail "'$args' does not print the usage of $c"
        for word in "$@"; do
            expect_out_has "$word"
        done
    done
}
help_has index "[--sign KEY] DIR" "index.json" '"format": 1' '"sha256"' \
    "SHA-256" "Ed25519" "index.json.sig" "MODHOST_TRUST" "keygen" \
    "temporary file" "--sign KEY"
help_has keygen "BASE" "BASE.key" "BASE.pub" "0600" "MODHOST_TRUST" \
    "index --sign" "never overwritten" "openssl pkeyutl"
help_has fetch "[NAME...]" "cache" "offline" "HTTP" "SHA-256" \
    "MODHOST_TRUST" "progress" "fetched N modules into"

# Help never acts: no index, no keys.
mh index --help .
expect_rc 0
mh keygen --help k
expect_rc 0
[[ ! -e index.json && ! -e k.key ]] || fail "--help did something"

# Usage errors: status 2.
mh fetch --bogus
expect_rc 2
expect_out_empty
expect_err_prefixed
expect_err_has "--bogus"
