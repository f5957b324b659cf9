#!/usr/bin/env bash
# cli.path_chain: `path` says, under an entry, why it is unusable
# ("  error: ...") or what else to know ("  note: ..."), and after the entries lists the finder chain in the
# order it is asked: the meta link "path" first, then the path hooks http,
# sqlite and fs, with a finder plugin's hook (tar, brought by the module
# finders.tar) among them.  The entry lines keep their four columns.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

# The chain section: the lines after "finder chain:".
chain() { sed -n '/^finder chain:$/,$p' "$T/.out" | tail -n +2; }
# Its NAME column, one line.
chain_names() { chain | cut -f2 | paste -sd' '; }

# Built-in finders only: meta path, then the hooks http, sqlite, fs.
mh -E -p "$PD" path
expect_rc 0
expect_out_line "0${TAB}$PD${TAB}config${TAB}fs"
expect_out_line "finder chain:"
# An empty line separates the two parts.
grep -B1 -xF "finder chain:" "$T/.out" | head -1 | grep -qx '' ||
    fail "no empty line before 'finder chain:'"
[[ $(chain_names) == "path http sqlite fs" ]] ||
    fail "chain is '$(chain_names)', not 'path http sqlite fs'"
[[ $(chain | cut -f1 | paste -sd' ') == "meta hook hook hook" ]] ||
    fail "roles are wrong"
# ROLE NAME SCHEME MODULE DESCRIPTION: five columns, a description each,
# no module for the built-in ones.
chain | awk -F'\t' 'NF != 5 || $4 != "-" || $5 == "" || $5 == "-" { exit 1 }' ||
    fail "a chain line is malformed"
chain | grep -qE "^hook${TAB}sqlite${TAB}sqlite${TAB}-${TAB}" ||
    fail "sqlite's scheme is not shown"
# Nothing under a good entry.
[[ $(grep -c '^  ' "$T/.out" || true) == 0 ]] || fail "a good entry has notes"

# A finder plugin, a missing database and a file no hook claims.
cp "$PD/hello.so" "$T/hello.so"
python3 - "$T/m.tar" "$PD/hello.so" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    t.add(sys.argv[2], arcname="hello.so")
PY
: >"$T/plain.txt"
echo "these are notes, not a SQLite database" >"$T/notes.db"
mh -E -p "tar:$T/m.tar;$PD;sqlite:$T/notes.db;$T/plain.txt" path
expect_rc 0
expect_out_line "0${TAB}tar:$T/m.tar${TAB}config${TAB}tar"
expect_out_line "1${TAB}$PD${TAB}config${TAB}fs"
expect_out_line "2${TAB}sqlite:$T/notes.db${TAB}config${TAB}sqlite"
expect_out_line "3${TAB}$T/plain.txt${TAB}config${TAB}-"
# The error of each bad entry, on the line right under it.
under() { grep -A1 -xF "$1" "$T/.out" | sed -n 2p; }
[[ $(under "2${TAB}sqlite:$T/notes.db${TAB}config${TAB}sqlite") == \
   "  error: "*"$T/notes.db: file is not a database"* ]] ||
    fail "the bad database's error is not under its entry"
[[ $(under "3${TAB}$T/plain.txt${TAB}config${TAB}-") == \
   "  error: no finder handles this entry"* ]] ||
    fail "the unclaimed file's error is not under its entry"
# Good entries have none.
[[ $(under "1${TAB}$PD${TAB}config${TAB}fs") != "  "* ]] ||
    fail "the fs entry has a note"
# The plugin's hook joined the chain, and says where it came from; the
# built-in order is kept.
chain | grep -qE "^hook${TAB}tar${TAB}tar${TAB}finders\.tar${TAB}." ||
    fail "the tar hook is not shown with its module"
[[ $(chain_names | tr ' ' '\n' | grep -vx tar | paste -sd' ') == \
   "path http sqlite fs" ]] || fail "chain order is '$(chain_names)'"

# --json: each entry with its error (or null) and what it shadows.
mh -E -p "$PD;sqlite:$T/notes.db" path --json
expect_rc 0
json_check "d[0]['finder'] == 'fs' and d[0]['error'] is None" \
    "d[0]['shadowed'] == []" \
    "d[1]['entry'] == 'sqlite:$T/notes.db' and d[1]['finder'] == 'sqlite'" \
    "'$T/notes.db: file is not a database' in d[1]['error']" \
    "all(set(e) == {'index', 'entry', 'source', 'finder', 'shadowed',
                    'error', 'note'} for e in d)" \
    "d[0]['note'] is None"

# A directory that does not exist is no error (modules appear once it
# does), but it is seldom meant: a note says so.
mh -E -p "$T/nodir;$PD" path
expect_rc 0
[[ $(under "0${TAB}$T/nodir${TAB}config${TAB}fs") == \
   "  note: the directory does not exist (yet)" ]] ||
    fail "the missing directory has no note under it"
[[ $(under "1${TAB}$PD${TAB}config${TAB}fs") != "  "* ]] ||
    fail "the existing directory has a note"
mh -E -p "$T/nodir" path --json
expect_rc 0
json_check "d[0]['error'] is None" \
    "d[0]['note'] == 'the directory does not exist (yet)'"
# A module database that does not exist is the same (`modhost pack` may
# make it later): no error, a note.
mh -E -p "sqlite:$T/none.db;$PD" path
expect_rc 0
[[ $(under "0${TAB}sqlite:$T/none.db${TAB}config${TAB}sqlite") == \
   "  note: the database does not exist (yet)" ]] ||
    fail "the missing database has no note under it"
mh -E -p "sqlite:$T/none.db" path --json
expect_rc 0
json_check "d[0]['error'] is None" \
    "d[0]['note'] == 'the database does not exist (yet)'"
# Below a file it never will: the note said "does not exist (yet)".
echo x > "$T/afile"
mh -E -p "$T/afile/sub" path --json
expect_rc 0
json_check "d[0]['note'] == 'the directory cannot exist: a part of its path is a file'"
