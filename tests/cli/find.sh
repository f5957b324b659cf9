#!/usr/bin/env bash
# cli.find: `find NAME` says where NAME would be imported from: text lines
# "key: value", or one JSON object with --json.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

mh -E -p "$PD" find codecs.rot13
expect_rc 0
expect_err_empty
expect_out "name: codecs.rot13
kind: native
loader: native
finder: fs
origin: $PD/codecs/rot13.so
entry: 0 $PD"

mh -E -p "$PD" find --json codecs.rot13
expect_rc 0
json_check "d == {'name': 'codecs.rot13', 'kind': 'native',
                  'loader': 'native', 'finder': 'fs',
                  'origin': '$PD/codecs/rot13.so', 'entry': 0,
                  'entry_text': '$PD'}"

# --plain is accepted and finds the same thing; options may follow NAME.
mh -E -p "$PD" find codecs.rot13 --plain --json
expect_rc 0
json_check "d['origin'] == '$PD/codecs/rot13.so'"

# The entry that has it is reported, not the first one.
mkdir "$T/empty"
mh -E -p "$T/empty" -p "$PD" find hello
expect_rc 0
expect_out_line "origin: $PD/hello.so"
expect_out_line "entry: 1 $PD"

# The first entry that has it wins.
mkdir "$T/first"
cp "$PD/hello.so" "$T/first/hello.so"
mh -E -p "$T/first" -p "$PD" find hello
expect_rc 0
expect_out_line "origin: $T/first/hello.so"
expect_out_line "entry: 0 $T/first"

# A directory alone is a namespace package.
mh -E -p "$PD" find codecs
expect_rc 0
expect_out_line "kind: namespace"
expect_out_line "origin: $PD/codecs"
