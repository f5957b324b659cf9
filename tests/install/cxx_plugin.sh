#!/usr/bin/env bash
# cxx_plugin.sh -- the README's plugin, built as C++ against the installed
# headers: MH_PLUGIN must give the descriptor C linkage and keep it
# exported (in C++ a namespace-scope const is internal, and the host said
# "it has no 'mh_plugin_descriptor' symbol").  Needs MH_TEST_PREFIX.
set -euo pipefail

fail() { echo "cxx_plugin: FAIL: $*" >&2; exit 1; }
: "${MH_TEST_PREFIX:?set MH_TEST_PREFIX to the install prefix}"
src_dir=${MH_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v g++ >/dev/null || fail "no g++ (scripts/install-deps installs it)"

work=$(mktemp -d "${TMPDIR:-/tmp}/modhost-cxx.XXXXXX")
trap 'rm -rf "$work"' EXIT
awk '/<!-- plugin-example:end -->/ { inside = 0 }
     inside                         { print }
     /<!-- plugin-example:begin -->/ { inside = 1 }' "$src_dir/README.md" |
    grep -v '^[[:space:]]*```' >"$work/greet.cpp"
grep -q MH_PLUGIN "$work/greet.cpp" || fail "no plugin example in the README"

g++ -std=c++17 -Wall -Wextra -Werror -fvisibility=hidden -shared -fPIC \
    -I "$MH_TEST_PREFIX/include" -o "$work/greet.so" "$work/greet.cpp" ||
    fail "g++ could not build the README's plugin"
nm -D --defined-only "$work/greet.so" | grep -q ' mh_plugin_descriptor$' ||
    fail "mh_plugin_descriptor is not exported: $(nm -D "$work/greet.so")"
set +e
XDG_CACHE_HOME="$work/cache" "$MH_TEST_PREFIX/bin/modhost" -E -p "$work" \
    run greet world >"$work/out" 2>"$work/err"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "modhost run greet exited $rc: $(cat "$work/err")"
grep -q 'hello, world' "$work/out" || fail "greet printed: $(cat "$work/out")"
echo "cxx_plugin: ok: $(cat "$work/out")"
