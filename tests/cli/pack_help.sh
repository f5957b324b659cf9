#!/usr/bin/env bash
# cli.pack_help: pack is in the global help's command list and has its own
# help, which explains the format, the entry names and the transaction.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"
cd "$T"

mh --help
expect_rc 0
grep -qE "^  pack \[--compress-code\] DB FILE_OR_DIR\.\.\.( |$)" "$T/.out" ||
    fail "--help does not list pack"

for args in "help pack" "pack --help" "pack -h" "-E pack --help" \
            "pack x.db --help"; do
    mh $args
    expect_rc 0
    expect_err_empty
    [[ $OUT == "Usage: modhost [GLOBAL OPTIONS] pack [--compress-code] DB FILE_OR_DIR..."* ]] ||
        fail "'$args' does not print the usage of pack"
    for word in "SQLite Archive" "sqlite3 -A" "relative" "base name" \
                "compressed" "one transaction" "replaced" "--compress-code" \
                "Native code (.so) is stored as is"; do
        expect_out_has "$word"
    done
done
[[ ! -e x.db ]] || fail "pack --help created a database"
