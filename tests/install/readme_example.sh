#!/usr/bin/env bash
# readme_example.sh -- the README's plugin and application examples, built
# exactly as the README says (cc + pkg-config against the *installed*
# headers and library) and run: the plugin with the installed modhost
# command, the application on its own.  Keeps the README honest.
#
# Needs MH_TEST_PREFIX (the scratch install prefix, filled by the
# install.setup test) and MH_TEST_SOURCE_DIR (the source tree).
set -euo pipefail

fail() { echo "readme_example: FAIL: $*" >&2; exit 1; }

: "${MH_TEST_PREFIX:?set MH_TEST_PREFIX to the install prefix}"
src_dir=${MH_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
readme=$src_dir/README.md
[ -f "$readme" ] || fail "no README at $readme"

work=$(mktemp -d "${TMPDIR:-/tmp}/modhost-readme.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The lines strictly between the markers: one ```c fenced block.
awk '/<!-- plugin-example:end -->/ { inside = 0 }
     inside                         { print }
     /<!-- plugin-example:begin -->/ { inside = 1 }' "$readme" >"$work/block.md"
[ -s "$work/block.md" ] || fail "README has no plugin-example markers (or nothing between them)"
grep -v '^[[:space:]]*$' "$work/block.md" | head -n 1 | grep -q '^```c[[:space:]]*$' ||
    fail "the example does not open with a \`\`\`c fence"
grep -v '^[[:space:]]*$' "$work/block.md" | tail -n 1 | grep -q '^```[[:space:]]*$' ||
    fail "the example does not end with a \`\`\` fence"
grep -v '^[[:space:]]*```' "$work/block.md" >"$work/greet.c"
grep -q 'MH_PLUGIN' "$work/greet.c" || fail "the example defines no MH_PLUGIN descriptor"

# GNUInstallDirs may have chosen lib, lib64 or lib/<multiarch>.
pcdir=
for d in lib/pkgconfig lib/x86_64-linux-gnu/pkgconfig lib64/pkgconfig; do
    if [ -f "$MH_TEST_PREFIX/$d/modhost.pc" ]; then
        pcdir=$MH_TEST_PREFIX/$d
        break
    fi
done
[ -n "$pcdir" ] || fail "no modhost.pc under $MH_TEST_PREFIX (ls: $(ls -R "$MH_TEST_PREFIX" | head -n 40 | tr '\n' ' '))"
export PKG_CONFIG_PATH=$pcdir

# Exactly the README's command.
cd "$work"
cc -shared -fPIC -o greet.so greet.c $(pkg-config --cflags modhost) ||
    fail "the README's compile command failed"
[ -f greet.so ] || fail "no greet.so after compiling"

set +e
"$MH_TEST_PREFIX/bin/modhost" -E -p "$work" run greet world >"$work/out" 2>"$work/err"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "modhost run greet world exited $rc; stderr: $(cat "$work/err")"
grep -q 'world' "$work/out" || fail "stdout lacks 'world': $(cat "$work/out")"
grep -q 'hello,' "$work/out" || fail "stdout lacks 'hello,': $(cat "$work/out")"
echo "readme_example: ok: $(cat "$work/out")"

# The application example, built with the README's command (its rpath is
# what lets it start from this scratch prefix) and run: it imports the
# bundled codecs.rot13 from the default path beside the installed library.
awk '/<!-- app-example:end -->/ { inside = 0 }
     inside                      { print }
     /<!-- app-example:begin -->/ { inside = 1 }' "$readme" >"$work/app.md"
[ -s "$work/app.md" ] || fail "README has no app-example markers (or nothing between them)"
grep -v '^[[:space:]]*```' "$work/app.md" >"$work/app.c"
# A library built with sanitizers needs a program built with them too.
san=
if grep -qa 'libasan\.so' "$(pkg-config --variable=libdir modhost)/libmodhost.so"; then
    san="-fsanitize=address,undefined -fno-omit-frame-pointer"
fi
# The README's command (plus the sanitizer flags).
# shellcheck disable=SC2086
cc $san -o app app.c $(pkg-config --cflags --libs modhost) \
   -Wl,-rpath,"$(pkg-config --variable=libdir modhost)" ||
    fail "the README's application compile command failed"
while read -r var; do
    unset "$var"
done < <(compgen -e | grep '^MODHOST_' || true)
set +e
XDG_DATA_HOME="$work/xdg" XDG_CACHE_HOME="$work/cache" ./app >"$work/out" \
    2>"$work/err"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "the README's application exited $rc; stderr: $(cat "$work/err")"
[ "$(cat "$work/out")" = "Uryyb" ] || fail "the application printed '$(cat "$work/out")', not Uryyb"
echo "readme_example: ok: the application printed $(cat "$work/out")"
