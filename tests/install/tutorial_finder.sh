#!/usr/bin/env bash
# tutorial_finder.sh -- docs/writing-a-finder.md, built and run the way the
# page says, as a third party would: its ```c file=... blocks (concatenated
# per file, in document order) are compiled with -Wall -Wextra -Werror
# against the *installed* headers through pkg-config (and again at -O2);
# the finder plugin is built as finders/flat.so and must neither link nor
# call libmodhost; the program runs (with sanitizers: also watching for
# stack use after return), its key results are checked one by one, and its
# whole output must be exactly the ```text output=tutorial_mem block; then
# the installed `modhost` command must load the plugin (`call`) and print
# the ```text output=modhost-path block (`path`).  So the tutorial fails
# here as soon as its code stops compiling, stops working, or prints
# something other than what the page shows.
#
# Needs MH_TEST_PREFIX (the scratch install prefix, filled by the
# install.setup test) and MH_TEST_SOURCE_DIR (the source tree).
set -euo pipefail

fail() { echo "tutorial_finder: FAIL: $*" >&2; exit 1; }

: "${MH_TEST_PREFIX:?set MH_TEST_PREFIX to the install prefix}"
src_dir=${MH_TEST_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
doc=$src_dir/docs/writing-a-finder.md
[ -f "$doc" ] || fail "no tutorial at $doc"

work=$(mktemp -d "${TMPDIR:-/tmp}/modhost-tutorial.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src" "$work/expected"

# Fenced blocks whose info string has file=PATH go to src/PATH, those with
# output=NAME to expected/NAME; blocks naming the same target are joined
# in document order.  Every fence must be closed.
python3 - "$doc" "$work" <<'PY' || fail "could not extract the code blocks"
import os, re, sys

doc, work = sys.argv[1], sys.argv[2]
blocks, target, start = {}, None, None
for n, line in enumerate(open(doc, encoding="utf-8"), 1):
    fence = re.match(r"^```(.*)$", line.rstrip("\n"))
    if fence is None:
        if target is not None:
            blocks[target].append(line)
        continue
    if start is not None:                 # a closing fence
        target, start = None, None
        continue
    start = n                             # an opening fence
    attr = re.search(r"\b(file|output)=(\S+)", fence.group(1))
    if attr:
        kind, name = attr.groups()
        if name.startswith("/") or ".." in name.split("/"):
            sys.exit(f"{doc}:{n}: unsafe {kind}= path '{name}'")
        target = os.path.join("src" if kind == "file" else "expected", name)
        blocks.setdefault(target, [])
if start is not None:
    sys.exit(f"{doc}:{start}: fence never closed")
for target, lines in blocks.items():
    path = os.path.join(work, target)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)
    print(f"tutorial_finder: {target}: {len(lines)} lines")
PY
for f in src/tutorial_mem.c src/finders/flat.c src/lua/shout.lua \
         expected/tutorial_mem expected/modhost-path; do
    [ -s "$work/$f" ] || fail "the page has no block for $f"
done

# GNUInstallDirs may have chosen lib, lib64 or lib/<multiarch>.
libdir=
for d in lib lib64 lib/x86_64-linux-gnu; do
    if [ -f "$MH_TEST_PREFIX/$d/pkgconfig/modhost.pc" ]; then
        libdir=$MH_TEST_PREFIX/$d
        break
    fi
done
[ -n "$libdir" ] || fail "no modhost.pc under $MH_TEST_PREFIX"
export PKG_CONFIG_PATH=$libdir/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -f "$MH_TEST_PREFIX/include/modhost/finder.h" ] ||
    fail "modhost/finder.h is not installed"

# A library built with sanitizers needs a program built with them too.
san=
if grep -qa 'libasan\.so' "$libdir/libmodhost.so"; then
    san="-fsanitize=address,undefined -fno-omit-frame-pointer"
fi

# The page's commands (plus the sanitizer flags).
cd "$work/src"
# shellcheck disable=SC2046,SC2086
cc $san -Wall -Wextra -Werror -o tutorial_mem tutorial_mem.c \
   $(pkg-config --cflags --libs modhost libcjson) -lpthread \
   >"$work/cc.log" 2>&1 || fail "tutorial_mem.c does not compile: $(cat "$work/cc.log")"
# shellcheck disable=SC2046
cc -shared -fPIC -Wall -Wextra -Werror -o finders/flat.so finders/flat.c \
   $(pkg-config --cflags modhost) \
   >"$work/cc.log" 2>&1 || fail "finders/flat.c does not compile: $(cat "$work/cc.log")"

# Optimised too: GCC's -Wdangling-pointer sees through inlined helpers
# only there (a spec pointing at find's stack is a real bug: the host
# reads the spec after find returns).
# shellcheck disable=SC2046
for f in tutorial_mem.c finders/flat.c; do
    cc -O2 -fPIC -Wall -Wextra -Werror -c -o "$work/opt.o" "$f" \
       $(pkg-config --cflags modhost libcjson) >"$work/cc.log" 2>&1 ||
        fail "$f does not compile at -O2: $(cat "$work/cc.log")"
done

# A finder plugin never links against libmodhost, nor calls into it, and
# carries its manifest.  (Outputs captured first: with pipefail, grep -q
# closing the pipe early could hide a match.)
dynamic=$(readelf -d finders/flat.so)
[[ $dynamic != *libmodhost* ]] || fail "finders/flat.so links against libmodhost"
undefined=$(nm -D --undefined-only finders/flat.so | awk '$NF ~ /^mh_/ { print $NF }')
[ -z "$undefined" ] || fail "finders/flat.so calls libmodhost: $undefined"
notes=$(readelf -n finders/flat.so)
[[ $notes == *modhost* ]] || fail "finders/flat.so has no modhost manifest note"

# Run it.  Its own cache directory; the page shows paths under
# /home/me/tutorial.  With sanitizers, also catch a finder whose answer
# lives on its stack (read by the host after find returns).
export XDG_CACHE_HOME=$work/cache
if [ -n "$san" ]; then
    export ASAN_OPTIONS=detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}
fi
set +e
./tutorial_mem "$PWD" >"$work/out" 2>"$work/err"
rc=$?
set -e
[ "$rc" -eq 0 ] || fail "tutorial_mem exited $rc; stdout: $(cat "$work/out"); stderr: $(cat "$work/err")"

# The outcomes the page is about, checked one by one for a clear message ...
want() {
    grep -qF -- "$1" "$work/out" || fail "$2 (no line with '$1'); stdout: $(cat "$work/out")"
}
want 'entry mem:app: finder mem' "the hook 'mem' did not claim mem:app"
want 'greet.hello["world"] = "hello, world, from memory"  (finder mem, origin mem:app/greet.lua)' \
     "greet.hello did not come through the mem finder"
grep -qE '^  greet +lua +mem +mem:app/greet\.lua$' "$work/out" ||
    fail "mh_list does not show greet from finder mem: $(cat "$work/out")"
grep -qE '^  tools\.text +lua +mem +mem:app/tools/text\.lua$' "$work/out" ||
    fail "mh_list does not show tools.text from finder mem: $(cat "$work/out")"
want 'tools: namespace, finder mem' "tools is not a namespace package from mem"
want "'late' was added after this entry was read" "the miss reason of mem_find is not in the not-found message"
want 'late.answer[] = 42  (finder mem' "late did not import after mh_invalidate_caches"
want "mem:app: module 'huge' is 102400 bytes, more than the 65536 this host accepts" \
     "the error of mem_find is not the import's error"
want 'frozen(meta)' "the meta finder is not in the chain"
want 'greet.hello["world"] = "hello, world, from the frozen table"  (finder frozen' \
     "the meta finder did not win over mem:app"
want "entry flat:$PWD/lua: finder flat" "the plugin hook did not claim the flat: entry"
want "shout.shout[\"plugins\"] = \"PLUGINS!\"  (finder flat, origin $PWD/lua/shout.lua)" \
     "shout did not come through the plugin finder"
want 'flat(hook, module finders.flat)' "the chain does not say the flat hook came from finders.flat"

# ... and the whole output must be what the page shows.
sed "s|$PWD|/home/me/tutorial|g" "$work/out" >"$work/out.shown"
diff -u "$work/expected/tutorial_mem" "$work/out.shown" >"$work/diff" ||
    fail "the program's output differs from the page's: $(cat "$work/diff")"

# The plugin through the modhost command, as the page shows it.  The page
# shows the default entries of a modhost installed in /usr/local, for a
# user whose home is /home/me.
modhost=$MH_TEST_PREFIX/bin/modhost
out=$("$modhost" -E -p "flat:$PWD/lua" -p "$PWD" call shout shout '["hi"]' 2>"$work/err") ||
    fail "modhost call shout failed: $(cat "$work/err")"
[ "$out" = '"HI!"' ] || fail "modhost call shout printed '$out', not '\"HI!\"'"
env -u XDG_DATA_HOME HOME=/home/me \
    "$modhost" -E -p "flat:$PWD/lua" -p "$PWD" path >"$work/path" 2>"$work/err" ||
    fail "modhost path failed: $(cat "$work/err")"
grep -qF "flat:$PWD/lua" "$work/path" || fail "modhost path lacks the flat: entry: $(cat "$work/path")"
sed "s|$PWD|/home/me/tutorial|g; s|$MH_TEST_PREFIX|/usr/local|g" "$work/path" >"$work/path.shown"
diff -u "$work/expected/modhost-path" "$work/path.shown" >"$work/diff" ||
    fail "modhost path differs from the page's: $(cat "$work/diff")"

echo "tutorial_finder: ok"
