#!/usr/bin/env bash
# cli.path: the effective search path, INDEX<TAB>ENTRY<TAB>SOURCE<TAB>FINDER
# per entry line: -p entries first (config), then MODHOST_PATH
# (environment), whose ';;' stands for the defaults; -E ignores
# MODHOST_PATH; relative entries are refused with a warning.  (The lines
# of other shapes, under the entries and in the finder chain, are checked
# by cli.path_chain.)
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

mkdir "$T/a" "$T/b" "$T/c"
A=$T/a B=$T/b C=$T/c

# The entry lines of stdout (those that begin with an index).
entries() { grep -E "^[0-9]+$TAB" "$T/.out" || true; }
# Their first three columns: index, entry, source.
cols() { entries | cut -f1-3; }
expect_cols() {
    [[ $(cols) == "$1" ]] || fail "path is not:"$'\n'"$1"
}
# "INDEX<TAB>ENTRY<TAB>SOURCE" lines for entries from index $1 on.
lines() {
    local i=$1 src=$2; shift 2
    local e
    for e in "$@"; do printf '%s\t%s\t%s\n' "$i" "$e" "$src"; i=$((i + 1)); done
}

# The defaults alone (nothing set): every entry has source default.
mh path
expect_rc 0
defaults=()
while IFS=$'\t' read -r _ entry src _; do
    [[ $src == default ]] || fail "source '$src' without -p or MODHOST_PATH"
    defaults+=("$entry")
done < <(entries)
(( ${#defaults[@]} > 0 )) || fail "no default entries"
entries | awk -F'\t' 'NF != 4 { exit 1 }' || fail "a line has not 4 columns"

# -p entries, in order, then the defaults.
mh -E -p "$A" -p "$B" path
expect_rc 0
expect_cols "$(lines 0 config "$A" "$B"; lines 2 default "${defaults[@]}")"

# MODHOST_PATH without ';;': its entries and no defaults; -p first.
MODHOST_PATH="$A;$B" mh path
expect_rc 0
expect_cols "$(lines 0 environment "$A" "$B")"
MODHOST_PATH="$A;$B" mh -p "$C" path
expect_rc 0
expect_cols "$(lines 0 config "$C"; lines 1 environment "$A" "$B")"

# -E ignores MODHOST_PATH.
MODHOST_PATH="$A;$B" mh -E -p "$C" path
expect_rc 0
expect_cols "$(lines 0 config "$C"; lines 1 default "${defaults[@]}")"

# ';;' puts the defaults where it stands.
n=${#defaults[@]}
MODHOST_PATH="$A;;$B" mh path
expect_rc 0
expect_cols "$(lines 0 environment "$A"; lines 1 default "${defaults[@]}"
               lines $((n + 1)) environment "$B")"
MODHOST_PATH=";;$A" mh path
expect_rc 0
expect_cols "$(lines 0 default "${defaults[@]}"; lines "$n" environment "$A")"

# A relative entry is refused, with a warning naming it.
MODHOST_PATH="$A;relative/dir;$B" mh path
expect_rc 0
expect_err_has "relative/dir"
expect_cols "$(lines 0 environment "$A" "$B")"
mh -E -p rel_entry -p "$A" path
expect_rc 0
expect_err_has "rel_entry"
expect_cols "$(lines 0 config "$A"; lines 1 default "${defaults[@]}")"

# --json: the same entries as objects.
MODHOST_PATH="$A;$B" mh -p "$C" path --json
expect_rc 0
json_check "[(e['index'], e['entry'], e['source']) for e in d]
            == [(0, '$C', 'config'), (1, '$A', 'environment'),
                (2, '$B', 'environment')]" \
    "all(set(e) >= {'index', 'entry', 'source', 'finder'} for e in d)" \
    "all(e['finder'] is None or isinstance(e['finder'], str) for e in d)"

# Empty -p entries, and ';;', are mistakes in the command: status 2, said
# once (the library would have warned about each empty field).
for arg in '' ';' "$PD;" ";$PD"; do
    mh -p "$arg" path
    expect_rc 2
    expect_out_empty
    expect_err_has "-p: an empty entry"
done
mh -p ";;" path
expect_rc 2
expect_err_has "-p: ';;' (the default entries) has no place in -p"
[[ $(grep -c "has no place" "$T/.err") == 1 ]] || fail "said more than once"
