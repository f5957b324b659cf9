#!/usr/bin/env bash
# cli.sqlite_stock_db: a database made by the stock `sqlite3 -Ac` (zlib
# compressed entries) is a search path entry: recognised by its header,
# written sqlite:PATH, or in MODHOST_PATH.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

command -v sqlite3 >/dev/null || fail "the sqlite3 CLI is not installed"
DB=$T/stock.db
(cd "$PD" && sqlite3 "$DB" -Ac hello.so codecs/rot13.so) ||
    fail "sqlite3 -Ac failed"
[[ $(sqlite3 "$DB" 'SELECT count(*) FROM sqlar WHERE length(data) < sz') \
   == 2 ]] || fail "sqlite3 -Ac did not compress both entries"

mh -E -p "$DB" run hello x
expect_rc 0
expect_err_empty
expect_out "hello from the modhost plugin 'hello', args: x"

mh -E -p "$DB" run codecs.rot13 Hello
expect_rc 0
expect_out "Uryyb"

mh -E -p "sqlite:$DB" find hello
expect_rc 0
expect_err_empty
expect_out_line "finder: sqlite"
expect_out_line "origin: $DB!/hello.so"
expect_out_line "kind: native"

mh -E -p "sqlite:$DB" run hello y
expect_rc 0
expect_out "hello from the modhost plugin 'hello', args: y"

MODHOST_PATH=$DB mh find codecs.rot13
expect_rc 0
expect_out_line "finder: sqlite"
expect_out_line "origin: $DB!/codecs/rot13.so"

mh -E -p "$DB" list
expect_rc 0
expect_out_line "hello${TAB}native${TAB}$DB!/hello.so"
expect_out_line "codecs.rot13${TAB}native${TAB}$DB!/codecs/rot13.so"

# An entry stored uncompressed (length(data) == sz) loads too.
sqlite3 "$DB" "INSERT INTO sqlar SELECT 'plain/hello.so', mode, mtime, sz,
               sqlar_uncompress(data, sz) FROM sqlar WHERE name = 'hello.so'"
[[ $(sqlite3 "$DB" "SELECT length(data) = sz FROM sqlar
                    WHERE name = 'plain/hello.so'") == 1 ]] ||
    fail "could not store an uncompressed entry"
mh -E -p "$DB" run plain.hello z
expect_rc 0
expect_out "hello from the modhost plugin 'plain.hello', args: z"

# A module the database lacks: not found, and the message names the
# database.
mh -E -p "$DB" find no_such
expect_rc 3
expect_err_prefixed
expect_err_has "$DB"
