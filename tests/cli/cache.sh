#!/usr/bin/env bash
# cli.cache: `cache` shows what the cache directory holds, one line per
# part (PART<TAB>FILES<TAB>BYTES<TAB>REMOVED_FILES<TAB>REMOVED_BYTES) and a
# total; `cache --prune DAYS` removes what was not used for DAYS days,
# never the http floors or the discovery index.  The cache is the test's
# own (lib.sh.inc points XDG_CACHE_HOME into the scratch directory).
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

CACHE=$XDG_CACHE_HOME/modhost

# No cache directory yet: zeros, and none made.
mh cache
expect_rc 0
expect_out_line "bytecode${TAB}0${TAB}0${TAB}0${TAB}0"
expect_out_line "total${TAB}0${TAB}0${TAB}0${TAB}0"
[[ ! -e $CACHE ]] || fail "counting made the cache directory"

# A Lua module imported once leaves its bytecode; the index is written by
# a listing.
mkdir -p "$T/m"
printf 'return {answer = function() return 42 end}\n' >"$T/m/answer.lua"
touch -d '1 hour ago' "$T/m/answer.lua"
MODHOST_PATH=$T/m mh call answer answer
expect_rc 0
expect_out "42"
bc=$(ls "$CACHE"/lua/*.mhc)
size=$(stat -c %s "$bc")
mh cache
expect_rc 0
expect_out_line "bytecode${TAB}1${TAB}${size}${TAB}0${TAB}0"
mh cache --json
expect_rc 0
json_check "d['cache_dir'] == '$CACHE'" \
    "d['parts']['bytecode'] == {'files': 1, 'bytes': $size, 'removed_files': 0, 'removed_bytes': 0}" \
    "sorted(d['parts']) == sorted(['bytecode', 'blobs', 'stamps', 'probes', 'scratch', 'http', 'index'])"

# Used within the last 30 days: kept.
mh cache --prune 30
expect_rc 0
expect_out_line "bytecode${TAB}1${TAB}${size}${TAB}0${TAB}0"
[[ -f $bc ]] || fail "--prune 30 removed bytecode used today"

# An http floor and the bytecode, both unused for 40 days: the bytecode
# goes, the floor stays; the module is compiled again at its next import.
mkdir -p "$CACHE/http/site"
printf '7\n' >"$CACHE/http/site/serial"
touch -a -m -d '40 days ago' "$bc" "$CACHE/http/site/serial"
mh cache --prune 30
expect_rc 0
expect_out_line "bytecode${TAB}0${TAB}0${TAB}1${TAB}${size}"
expect_out_line "http${TAB}1${TAB}2${TAB}0${TAB}0"
[[ ! -e $bc ]] || fail "--prune 30 kept bytecode unused for 40 days"
[[ -f $CACHE/http/site/serial ]] || fail "--prune removed an http floor"
MODHOST_PATH=$T/m mh -v call answer answer
expect_rc 0
expect_out "42"
expect_err_has "compiled"
[[ -f $bc ]] || fail "the bytecode was not written again"

# Bad input: a usage error names the option and changes nothing.
for days in -1 -0 x 1e9 '' 3d nan ' 5' 0x1e 1e1 inf; do
    mh cache --prune "$days"
    expect_rc 2
    expect_err_prefixed
    expect_err_has "--prune takes a number of days"
done
mh cache extra
expect_rc 2
[[ -f $bc ]] || fail "a usage error removed something"

# A cache directory others may write to is refused, and left as it was.
chmod 0777 "$CACHE"
mh cache --prune 0
expect_rc 1
expect_err_prefixed
expect_err_has "$CACHE"
[[ -f $bc ]] || fail "a refused cache was pruned"
chmod 0700 "$CACHE"

# Written in the last ten minutes: even 0 keeps it.
mh cache --prune 0
expect_rc 0
[[ -f $bc ]] || fail "--prune 0 removed bytecode written just now"
touch -a -m -d '1 hour ago' "$bc"
mh cache --prune 0
expect_rc 0
[[ ! -e $bc ]] || fail "--prune 0 kept the bytecode"

# A part that is a link is not followed: the rest is done and shown, then
# the failure, naming it; exit 1.
mkdir -p "$T/elsewhere"
printf 'x' >"$T/elsewhere/r.ok"
touch -a -m -d '40 days ago' "$T/elsewhere/r.ok"
ln -s "$T/elsewhere" "$CACHE/probe"
mh cache --prune 0
expect_rc 1
expect_out_line "http${TAB}1${TAB}2${TAB}0${TAB}0"
expect_err_has "$CACHE/probe: it is a symbolic link"
[[ -f $T/elsewhere/r.ok ]] || fail "--prune followed a link out of the cache"

# An option without its argument says so.
mh cache --prune
expect_rc 2
expect_err_has "option '--prune' needs an argument"
