#!/usr/bin/env bash
# absolute_dirs.sh -- the install tree is relocatable, so an absolute
# CMAKE_INSTALL_LIBDIR (or BINDIR, INCLUDEDIR) is refused when the project
# is configured, saying which and why (it made a modhost.pc with
# "${prefix}//opt/..." and a CLI rpath of "$ORIGIN/..//opt/...").
set -euo pipefail

fail() { echo "absolute_dirs: FAIL: $*" >&2; exit 1; }
src_dir=${MH_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
work=$(mktemp -d "${TMPDIR:-/tmp}/modhost-absdirs.XXXXXX")
trap 'rm -rf "$work"' EXIT

for dir in LIBDIR INCLUDEDIR; do
    set +e
    cmake -S "$src_dir" -B "$work/$dir" "-DCMAKE_INSTALL_$dir=/opt/mh/x" \
        >"$work/out" 2>&1
    rc=$?
    set -e
    [ "$rc" -ne 0 ] || fail "configured with an absolute CMAKE_INSTALL_$dir"
    grep -q "CMAKE_INSTALL_$dir is /opt/mh/x: modhost's install tree is" \
        "$work/out" || fail "no reason given: $(tail -n 5 "$work/out")"
done
echo "absolute_dirs: ok"
