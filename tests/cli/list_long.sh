#!/usr/bin/env bash
# cli.list_long: `list -l` adds each module's version and description from
# its metadata (read without running any code, kept in the discovery index)
# to the three columns of `list`: NAME<TAB>KIND<TAB>ORIGIN<TAB>VERSION<TAB>
# DESCRIPTION; a module with a recorded failure has "skipped: REASON".
# MODHOST_PATH without ';;' makes $T/m the only entry (no defaults).
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

mkdir -p "$T/m"
cp "$PD/hello.so" "$T/m/hello.so"
cp "$PD/textutil.lua" "$PD/textutil.json" "$T/m/"
printf 'error("the chunk ran")\n' >"$T/m/bare.lua"
printf 'not an ELF object\n' >"$T/m/bad.so"

MODHOST_PATH=$T/m mh list
expect_rc 0
plain=$OUT

MODHOST_PATH=$T/m mh list -l
expect_rc 0
expect_err_empty
expect_out_line "hello${TAB}native${TAB}$T/m/hello.so${TAB}1.0.0${TAB}Prints a greeting and its arguments"
expect_out_line "textutil${TAB}lua${TAB}$T/m/textutil.lua${TAB}1.0.0${TAB}Text helpers in Lua: upper, lower, words, stats, reverse"
# No manifest: "-" for both.
expect_out_line "bare${TAB}lua${TAB}$T/m/bare.lua${TAB}-${TAB}-"
# Not ELF: skipped, with the reason on the same line.
grep -qE "^bad${TAB}native${TAB}$T/m/bad\.so${TAB}-${TAB}skipped: .*not an ELF" \
    "$T/.out" || fail "bad.so is not marked as skipped"
# The same modules, in the same order, with the same first three columns.
[[ $(cut -f1-3 "$T/.out") == "$plain" ]] || fail "-l changes the listing"
awk -F'\t' 'NF != 5 { exit 1 }' "$T/.out" || fail "a line has not 5 columns"
long=$OUT

# Again, from the discovery index: the same answer.
[[ -f $XDG_CACHE_HOME/modhost/discovery.db ]] ||
    fail "no discovery index in the cache directory"
MODHOST_PATH=$T/m mh list --long
expect_rc 0
expect_out "$long"

MODHOST_PATH=$T/m mh list -l --json
expect_rc 0
json_check "[m['name'] for m in d] == ['bad', 'bare', 'hello', 'textutil']" \
    "[m for m in d if m['name'] == 'hello'][0].items() >= {
        'kind': 'native', 'loader': 'native', 'finder': 'fs', 'entry': 0,
        'origin': '$T/m/hello.so', 'version': '1.0.0',
        'description': 'Prints a greeting and its arguments',
        'metadata': 'elf-note', 'status': None, 'reason': None}.items()" \
    "[m for m in d if m['name'] == 'textutil'][0]['metadata'] == 'sidecar'" \
    "[m for m in d if m['name'] == 'bare'][0]['metadata'] == 'none'" \
    "[m for m in d if m['name'] == 'bad'][0]['status'] == 'MH_EFORMAT'" \
    "'not an ELF' in [m for m in d if m['name'] == 'bad'][0]['reason']"

# A changed module is read again: a new description shows at once.
printf '{"version": "1.1.0", "description": "changed"}\n' >"$T/m/bare.json"
MODHOST_PATH=$T/m mh list -l
expect_rc 0
expect_out_line "bare${TAB}lua${TAB}$T/m/bare.lua${TAB}1.1.0${TAB}changed"

mh list -l x
expect_rc 2
expect_err_has "unexpected argument 'x'"
