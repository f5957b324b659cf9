#!/usr/bin/env bash
# cli.pack_dir: `pack DB DIR` stores every file under DIR by its path
# relative to DIR, as a SQLite Archive the stock sqlite3 CLI lists and
# extracts byte for byte; list, find and run then work on DB as on DIR.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

command -v sqlite3 >/dev/null || fail "the sqlite3 CLI is not installed"
DB=$T/mods.db

# The files of the plugin directory, relative to it, in C order: what the
# archive must hold exactly.
want=$(cd "$PD" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
n=$(printf '%s\n' "$want" | wc -l)
for f in hello.so codecs/rot13.so; do
    grep -qxF "$f" <<<"$want" || fail "fixture $PD/$f is missing"
done

mh pack "$DB" "$PD"
expect_rc 0
expect_err_empty
expect_out "packed $n files into $DB"
[[ -f $DB ]] || fail "$DB was not created"

# The stock CLI lists exactly those names.
got=$(sqlite3 "$DB" -At | LC_ALL=C sort)
[[ $got == "$want" ]] ||
    fail "sqlite3 -At lists:"$'\n'"$got"$'\n'"instead of:"$'\n'"$want"

# ... and extracts them byte-identical (through its own zlib code).
mkdir "$T/x"
(cd "$T/x" && sqlite3 "$DB" -Ax) || fail "sqlite3 -Ax failed"
while read -r f; do
    cmp -s "$PD/$f" "$T/x/$f" || fail "extracted $f differs from $PD/$f"
done <<<"$want"

# Native code is stored as is (an import then inflates nothing).
nso=$(grep -c '\.so$' <<<"$want")
[[ $(sqlite3 "$DB" "SELECT count(*) FROM sqlar WHERE name GLOB '*.so'
                    AND length(data) = sz") == "$nso" ]] ||
    fail "not every .so is stored uncompressed"

# --compress-code compresses it too (shared objects compress well), and
# the stock CLI extracts that byte for byte as well.
mh pack --compress-code "$T/z.db" "$PD"
expect_rc 0
expect_out "packed $n files into $T/z.db"
[[ $(sqlite3 "$T/z.db" "SELECT count(*) FROM sqlar WHERE name GLOB '*.so'
                        AND length(data) < sz") == "$nso" ]] ||
    fail "--compress-code left a .so uncompressed"
mkdir "$T/xz"
(cd "$T/xz" && sqlite3 "$T/z.db" -Ax) || fail "sqlite3 -Ax of z.db failed"
while read -r f; do
    cmp -s "$PD/$f" "$T/xz/$f" || fail "extracted $f differs from $PD/$f"
done <<<"$want"
mh -E -p "$T/z.db" run codecs.rot13 Hello
expect_rc 0
expect_out "Uryyb"

# The database is a search path entry like the directory.
mh -E -p "$DB" list
expect_rc 0
expect_err_empty
expect_out_line "hello${TAB}native${TAB}$DB!/hello.so"
expect_out_line "codecs.rot13${TAB}native${TAB}$DB!/codecs/rot13.so"

mh -E -p "$DB" find codecs.rot13
expect_rc 0
expect_err_empty
expect_out_line "name: codecs.rot13"
expect_out_line "kind: native"
expect_out_line "finder: sqlite"
expect_out_line "origin: $DB!/codecs/rot13.so"
expect_out_line "entry: 0 $DB"

mh -E -p "$DB" find --json hello
expect_rc 0
json_check "d['finder'] == 'sqlite'" "d['origin'] == '$DB!/hello.so'" \
    "d['entry'] == 0"

mh -E -p "$DB" run codecs.rot13 Hello
expect_rc 0
expect_err_empty
expect_out "Uryyb"

mh -E -p "$DB" run hello from-db
expect_rc 0
expect_out "hello from the modhost plugin 'hello', args: from-db"
