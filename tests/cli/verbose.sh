#!/usr/bin/env bash
# cli.verbose: -v (or MODHOST_VERBOSE=1) traces the search on stderr,
# naming each entry looked at; -E makes MODHOST_VERBOSE ignored.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

mkdir "$T/empty"
E=$T/empty

# Quiet by default: nothing about the entries on stderr.
mh -E -p "$E" -p "$PD" find codecs.rot13
expect_rc 0
expect_err_lacks "$E"

for v in -v --verbose; do
    mh -E $v -p "$E" -p "$PD" find codecs.rot13
    expect_rc 0
    expect_out_line "origin: $PD/codecs/rot13.so"
    expect_err_has "$E"
    expect_err_has "$PD"
done

MODHOST_VERBOSE=1 MODHOST_PATH="$E;$PD" mh find codecs.rot13
expect_rc 0
expect_out_line "origin: $PD/codecs/rot13.so"
expect_err_has "$E"
expect_err_has "$PD"

MODHOST_VERBOSE=1 mh -E -p "$E" -p "$PD" find codecs.rot13
expect_rc 0
expect_out_line "origin: $PD/codecs/rot13.so"
expect_err_lacks "$E"
expect_err_lacks "$PD"
