#!/usr/bin/env bash
# cli.list: every visible module, NAME<TAB>KIND<TAB>ORIGIN per line in name
# order, or a JSON array with --json; a name found in several entries is
# listed once, from the first.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

mh -E -p "$PD" list
expect_rc 0
expect_out_line "hello${TAB}native${TAB}$PD/hello.so"
expect_out_line "codecs.rot13${TAB}native${TAB}$PD/codecs/rot13.so"
cut -f1 "$T/.out" | LC_ALL=C sort -c || fail "list is not in name order"
[[ $(cut -f1 "$T/.out" | sort | uniq -d) == "" ]] || fail "a name is listed twice"

mh -E -p "$PD" list --json
expect_rc 0
json_check "isinstance(d, list)" \
    "[m['name'] for m in d] == sorted(m['name'] for m in d)" \
    "all(set(m) >= {'name', 'kind', 'loader', 'finder', 'origin', 'entry'}
         for m in d)" \
    "{'name': 'hello', 'kind': 'native', 'loader': 'native', 'finder': 'fs',
      'origin': '$PD/hello.so', 'entry': 0} .items()
      <= [m for m in d if m['name'] == 'hello'][0].items()" \
    "[m for m in d if m['name'] == 'codecs.rot13'][0]['origin']
      == '$PD/codecs/rot13.so'" \
    "[m['kind'] for m in d if m['name'] == 'codecs.rot13'] == ['native']"

# hello in two entries: listed once, from the first.
mkdir "$T/first"
cp "$PD/hello.so" "$T/first/hello.so"
mh -E -p "$T/first" -p "$PD" list
expect_rc 0
expect_out_line "hello${TAB}native${TAB}$T/first/hello.so"
[[ $(grep -c "^hello${TAB}" "$T/.out") == 1 ]] || fail "hello listed twice"

# MODHOST_PATH without ';;' has no default entries: an empty dir lists
# nothing.
mkdir "$T/empty"
MODHOST_PATH=$T/empty mh list
expect_rc 0
expect_out_empty
MODHOST_PATH=$T/empty mh list --json
expect_rc 0
json_check "d == []"
