#!/usr/bin/env bash
# cli.pack_files: file inputs are stored under their relative path as
# given, or by base name when absolute; packing again replaces entries
# in place.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

command -v sqlite3 >/dev/null || fail "the sqlite3 CLI is not installed"
names() { sqlite3 "$1" -At | LC_ALL=C sort; }
expect_names() {
    local got
    got=$(names "$1")
    [[ $got == "$2" ]] ||
        fail "$1 holds:"$'\n'"$got"$'\n'"instead of:"$'\n'"$2"
}

# Relative files: stored as given.
DB=$T/rel.db
cd "$PD"
mh pack "$DB" hello.so codecs/rot13.so
cd - >/dev/null
expect_rc 0
expect_err_empty
expect_out "packed 2 files into $DB"
expect_names "$DB" "codecs/rot13.so"$'\n'"hello.so"
mh -E -p "$DB" run codecs.rot13 Hello
expect_rc 0
expect_out "Uryyb"

# An absolute file: stored by its base name.
ABS=$T/abs.db
mh pack "$ABS" "$PD/codecs/rot13.so"
expect_rc 0
expect_out "packed 1 file into $ABS"
expect_names "$ABS" "rot13.so"
mh -E -p "$ABS" find rot13
expect_rc 0
expect_out_line "origin: $ABS!/rot13.so"

# A relative DB path names the same file as its absolute form.
cd "$T"
mh pack abs.db "$PD/hello.so"
cd - >/dev/null
expect_rc 0
expect_names "$ABS" "hello.so"$'\n'"rot13.so"

# Packing again replaces: same entries, and their data is the new data.
mh pack "$DB" "$PD"
expect_rc 0
before=$(sqlite3 "$DB" 'SELECT count(*) FROM sqlar')
mh pack "$DB" "$PD"
expect_rc 0
[[ $(sqlite3 "$DB" 'SELECT count(*) FROM sqlar') == "$before" ]] ||
    fail "packing again changed the number of entries"

mkdir -p "$T/tree/sub"
cp "$PD/hello.so" "$T/tree/sub/m.so"
mh pack "$T/re.db" "$T/tree"
expect_rc 0
expect_out "packed 1 file into $T/re.db"
cp "$PD/codecs/rot13.so" "$T/tree/sub/m.so"
mh pack "$T/re.db" "$T/tree"
expect_rc 0
expect_names "$T/re.db" "sub/m.so"
mkdir "$T/x"
(cd "$T/x" && sqlite3 "$T/re.db" -Ax) || fail "sqlite3 -Ax failed"
cmp -s "$T/x/sub/m.so" "$PD/codecs/rot13.so" ||
    fail "the replaced entry does not hold the new data"
mh -E -p "$T/re.db" run sub.m Hello
expect_rc 0
expect_out "Uryyb"

# Files and directories mix in one call.
mh pack "$T/mix.db" "$PD/hello.so" "$T/tree"
expect_rc 0
expect_out "packed 2 files into $T/mix.db"
expect_names "$T/mix.db" "hello.so"$'\n'"sub/m.so"
