#!/usr/bin/env bash
# cli.sqlite_eio: a module database whose first bytes cannot be read (an
# I/O error, injected with strace into the opens of that one file) is not
# taken for "no module database": once, the error passes and the module
# loads; every time, the error names the entry and the system's reason.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"
command -v strace >/dev/null || fail "strace is not installed"
cd "$T"
strace -f -qq -o /dev/null -e trace=none true 2>/dev/null ||
    skip "strace cannot trace a process here"

cp "$PD/hello.so" "$T/dbhello.so" # a name no other entry has
mh pack "$T/mods.db" "$T/dbhello.so"
expect_rc 0

# eio WHEN ARGS...: modhost ARGS with EIO from the WHENth open of mods.db
# (strace's when: N, or N+ for every one from N on).
eio() {
    local when=$1
    shift
    LAST_CMD="strace -P mods.db -e inject=openat:error=EIO:when=$when modhost $*"
    RC=0
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        strace -f -qq -o /dev/null -P "$T/mods.db" -e trace=openat \
        -e inject=openat:error=EIO:when="$when" \
        "$MODHOST_BIN" "$@" >"$T/.out" 2>"$T/.err" || RC=$?
    OUT=$(cat "$T/.out")
    ERR=$(cat "$T/.err")
}

# Once: a passing error, and the module comes from the database.
eio 1 -E -p "$T/mods.db" run dbhello
expect_rc 0
expect_out_has "hello from the modhost plugin 'dbhello'"

# Every time: said as what it is, not as "no finder" or "not found".
eio 1+ -E -p "$T/mods.db" run dbhello
expect_rc 3
expect_err_has "entry '$T/mods.db': cannot read its first bytes"
expect_err_has "Input/output error"
expect_err_lacks "no finder handles"
expect_err_lacks "is no module database"
