#!/usr/bin/env bash
# cli.sqlite_bad_db: a search path entry that is not a usable module
# database is reported once, naming it, and skipped: later entries still
# serve their modules.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

command -v sqlite3 >/dev/null || fail "the sqlite3 CLI is not installed"

# The number of stderr lines that mention $1.
mentions() { grep -cF -- "$1" "$T/.err" || true; }
expect_warned_once() {
    [[ $(mentions "$1") == 1 ]] ||
        fail "stderr does not mention '$1' on exactly one line"
}

# A text file written as sqlite:PATH.
TXT=$T/notes.txt
printf 'not a database\n' >"$TXT"
mh -E -p "sqlite:$TXT" -p "$PD" run hello
expect_rc 0
expect_out "hello from the modhost plugin 'hello'"
expect_warned_once "$TXT"

# A SQLite database without a sqlar table, recognised by its header.
NOSQLAR=$T/nosqlar.db
sqlite3 "$NOSQLAR" 'CREATE TABLE t(a)'
mh -E -p "$NOSQLAR" -p "$PD" find hello
expect_rc 0
expect_out_line "origin: $PD/hello.so"
expect_out_line "entry: 1 $PD"
expect_warned_once "$NOSQLAR"

mh -E -p "$NOSQLAR" -p "$PD" run codecs.rot13 Hello
expect_rc 0
expect_out "Uryyb"
expect_warned_once "$NOSQLAR"

mh -E -p "$NOSQLAR" -p "$PD" list
expect_rc 0
expect_out_line "hello${TAB}native${TAB}$PD/hello.so"
expect_err_has "$NOSQLAR"

# The SQLite header followed by garbage: cannot be opened, skipped.
GARBAGE=$T/garbage.db
{ printf 'SQLite format 3\0'; head -c 4080 /dev/zero | tr '\0' 'x'; } \
    >"$GARBAGE"
mh -E -p "$GARBAGE" -p "$PD" run hello
expect_rc 0
expect_out "hello from the modhost plugin 'hello'"
expect_warned_once "$GARBAGE"
