#!/usr/bin/env bash
# cli.pack_errors: a failed pack exits 1 with a message naming what is
# wrong and leaves the database as it was (not created, or unchanged);
# usage errors exit 2.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

command -v sqlite3 >/dev/null || fail "the sqlite3 CLI is not installed"

expect_failed() {    # status 1, nothing on stdout, "modhost: ..." naming $1
    expect_rc 1
    expect_out_empty
    expect_err_prefixed
    expect_err_has "$1"
}

# A missing input: nothing is created, even when other inputs are fine.
mh pack "$T/new.db" "$T/no_such_file.so"
expect_failed "$T/no_such_file.so"
[[ ! -e $T/new.db ]] || fail "a failed pack left $T/new.db"
mh pack "$T/new.db" "$PD/hello.so" "$T/no_such_dir"
expect_failed "$T/no_such_dir"
[[ ! -e $T/new.db ]] || fail "a failed pack left $T/new.db"

# A database in a directory that does not exist: named as given (the
# temporary file made beside it first is not the user's name).
mh pack "$T/no_dir/x.db" "$PD/hello.so"
expect_failed "cannot create $T/no_dir/x.db (a temporary file beside it first): No such file or directory"
expect_err_lacks ".tmp-"

# ... and an existing database keeps its entries and their data.
DB=$T/mods.db
mh pack "$DB" "$PD/hello.so"
expect_rc 0
dump() {
    sqlite3 "$DB" 'SELECT name, mode, mtime, sz, hex(data) FROM sqlar
                   ORDER BY name'
}
saved=$(dump)
mh pack "$DB" "$PD/codecs/rot13.so" "$T/no_such_file.so"
expect_failed "$T/no_such_file.so"
[[ $(dump) == "$saved" ]] || fail "a failed pack changed $DB"

# DB is not a SQLite database: refused, the file left alone.
printf 'just some text\n' >"$T/notes.txt"
cp "$T/notes.txt" "$T/notes.saved"
mh pack "$T/notes.txt" "$PD"
expect_failed "$T/notes.txt"
cmp -s "$T/notes.txt" "$T/notes.saved" || fail "pack changed a text file"

# A relative input that climbs out with "..": refused (it exists, so the
# refusal is about the name).
mkdir "$T/sub"
cp "$PD/hello.so" "$T/x.so"
cd "$T/sub"
mh pack "$T/up.db" ../x.so
cd - >/dev/null
expect_failed "../x.so"
[[ ! -e $T/up.db ]] || fail "a failed pack left $T/up.db"

# Usage errors: status 2, the reason on stderr.
usage_error() {
    local want=$1; shift
    mh "$@"
    expect_rc 2
    expect_out_empty
    expect_err_prefixed
    expect_err_has "$want"
}
usage_error "missing database" pack
usage_error "missing FILE_OR_DIR" pack "$T/u.db"
usage_error "--bogus" pack --bogus "$T/u.db" "$PD"
usage_error "empty database name" pack "" "$PD"
usage_error "empty FILE_OR_DIR (argument 3)" pack "$T/u.db" "$PD" ""
[[ ! -e $T/u.db ]] || fail "a usage error created $T/u.db"
