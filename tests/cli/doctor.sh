#!/usr/bin/env bash
# cli.doctor: `doctor` discovers the search path, then lists the recorded
# failures (NAME<TAB>ORIGIN<TAB>STATUS<TAB>WHEN<TAB>REASON), or says "no
# recorded failures"; `doctor --clear [NAME]` forgets all of them or one
# module's and says how many.  The cache (and its discovery index) is the
# test's own: lib.sh.inc points XDG_CACHE_HOME into the scratch directory.
# MODHOST_PATH without ';;' makes $T/m the only entry (no defaults).
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

CACHE=$XDG_CACHE_HOME/modhost
mkdir -p "$T/m"
cp "$PD/hello.so" "$T/m/hello.so"

# Nothing broken, nothing recorded.
MODHOST_PATH=$T/m mh doctor
expect_rc 0
expect_out "no recorded failures"
MODHOST_PATH=$T/m mh doctor --json
expect_rc 0
json_check "d == []"

# A file that is not ELF: `list -l` records it ...
printf 'not an ELF object\n' >"$T/m/bad.so"
MODHOST_PATH=$T/m mh list -l
expect_rc 0
expect_out_has "skipped: "
MODHOST_PATH=$T/m mh doctor
expect_rc 0
expect_err_empty
line_re="^bad${TAB}$T/m/bad\.so${TAB}MH_EFORMAT${TAB}[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z${TAB}.*not an ELF"
grep -qE "$line_re" "$T/.out" || fail "doctor does not show bad.so's failure"
[[ $(wc -l <"$T/.out") == 1 ]] || fail "doctor shows more than bad.so"
MODHOST_PATH=$T/m mh doctor --json
expect_rc 0
json_check "len(d) == 1" \
    "d[0]['name'] == 'bad' and d[0]['origin'] == '$T/m/bad.so'" \
    "d[0]['status'] == 'MH_EFORMAT' and 'not an ELF' in d[0]['reason']" \
    "isinstance(d[0]['when'], (int, float)) and d[0]['when'] > 0" \
    "d[0]['recorded'] is True"

# ... and `doctor` alone finds it too, in a fresh cache: it discovers the
# current path first.
XDG_CACHE_HOME=$T/other-cache MODHOST_PATH=$T/m mh doctor
expect_rc 0
grep -qE "$line_re" "$T/.out" || fail "doctor does not discover by itself"

# An init that fails is recorded by the import that ran it.  (Its file is
# made older than the index's two-second "may still change" window, so
# its row is trusted as it is.)
cp "$MH_TEST_FIXTURE_DIR/init_fails.so" "$T/m/init_fails.so"
touch -d '1 minute ago' "$T/m/init_fails.so"
MODHOST_PATH=$T/m mh run init_fails
expect_rc 1
MODHOST_PATH=$T/m mh doctor
expect_rc 0
expect_out_has "init_fails${TAB}$T/m/init_fails.so${TAB}MH_EINIT${TAB}"
expect_out_has "deliberate init failure from fixture"
grep -qE "$line_re" "$T/.out" || fail "bad.so is no longer shown"

# --clear NAME: only that module's.
MODHOST_PATH=$T/m mh doctor --clear init_fails
expect_rc 0
expect_out "cleared 1 recorded failure of 'init_fails' in $CACHE"
MODHOST_PATH=$T/m mh doctor --clear init_fails
expect_rc 0
expect_out "cleared 0 recorded failures of 'init_fails' in $CACHE"
# ... and says so, as a name with no record may be a typo, or a module
# this modhost's ABI or version rules out (listed, never recorded).
expect_err_has "note: no failure of 'init_fails' is recorded"
MODHOST_PATH=$T/m mh doctor --clear bad
expect_rc 0
expect_out "cleared 1 recorded failure of 'bad' in $CACHE"

# Cleared, but still broken: the next doctor records bad.so again (and
# init_fails, whose metadata is fine, not).
MODHOST_PATH=$T/m mh doctor
expect_rc 0
grep -qE "$line_re" "$T/.out" || fail "bad.so is not recorded again"
[[ $OUT != *init_fails* ]] || fail "init_fails is recorded without a load"

# --clear: all of them.
MODHOST_PATH=$T/m mh doctor --clear
expect_rc 0
expect_out "cleared 1 recorded failure in $CACHE"
# Fixed (removed): nothing is recorded any more.
rm "$T/m/bad.so"
MODHOST_PATH=$T/m mh doctor
expect_rc 0
expect_out "no recorded failures"
MODHOST_PATH=$T/m mh doctor --clear
expect_rc 0
expect_out "cleared 0 recorded failures in $CACHE"

# Usage.
mh doctor x
expect_rc 2
expect_err_has "unexpected argument 'x'"
mh doctor --clear a b
expect_rc 2
expect_err_has "too many arguments"
mh doctor --clear --json
expect_rc 2
expect_err_has "cannot be combined"
MODHOST_PATH=$T/m mh doctor --clear 9bad
expect_rc 3
expect_err_has "9bad"
mh doctor --help
expect_rc 0
[[ $OUT == "Usage: modhost [GLOBAL OPTIONS] doctor "* ]] || fail "no usage"

# A module built for another plugin ABI is listed, judged by this host at
# each listing, and said to be not recorded; --clear cannot clear it.
mkdir -p "$T/abi"
cp "$MH_TEST_FIXTURE_DIR/meta_abi2.so" "$T/abi/other.so"
MODHOST_PATH=$T/abi mh doctor --json
expect_rc 0
json_check "len(d) == 1 and d[0]['name'] == 'other'" \
    "d[0]['status'] == 'MH_EABI' and d[0]['recorded'] is False"
MODHOST_PATH=$T/abi mh doctor --clear other
expect_rc 0
expect_err_has "note: no failure of 'other' is recorded"
