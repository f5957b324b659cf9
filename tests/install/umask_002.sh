#!/usr/bin/env bash
# umask_002.sh -- an install made under a umask of 002 (user-private
# groups, a prefix the installer owns) must still be a tree the host
# loads code from: its directories came out 0775, which the host's file
# rules refuse, so the installed modhost could not run its own bundled
# plugins.  Needs MH_TEST_BUILD_DIR (the build tree to install).
set -euo pipefail

fail() { echo "umask_002: FAIL: $*" >&2; exit 1; }
: "${MH_TEST_BUILD_DIR:?set MH_TEST_BUILD_DIR to the build tree}"

work=$(mktemp -d "${TMPDIR:-/tmp}/modhost-umask.XXXXXX")
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"

(umask 002 && cmake --install "$MH_TEST_BUILD_DIR" --prefix "$work/pfx" \
     >"$work/install.log") || fail "the install failed: $(tail -n 5 "$work/install.log")"
loose=$(find "$work/pfx" -type d -perm -g+w)
[ -z "$loose" ] || fail "group-writable directories installed: $loose"
set +e
XDG_CACHE_HOME="$work/cache" "$work/pfx/bin/modhost" -E run hello umask \
    >"$work/out" 2>"$work/err"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "modhost run hello exited $rc: $(cat "$work/err")"
grep -q 'umask' "$work/out" || fail "hello printed: $(cat "$work/out")"
echo "umask_002: ok: $(cat "$work/out")"
