#!/usr/bin/env bash
# cli.http_index: `index DIR` writes DIR/index.json, format 1: every module
# under DIR (and nothing else), sorted by name, with the kind, path, size
# and SHA-256 the files really have.  The same tree gives the same bytes,
# no temporary file is left, and indexing again picks up changes.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

D=$T/serve
cp -r "$PD" "$D"
# The native plugins only: bundled Lua modules are counted by the Lua tests.
find "$D" -name '*.lua' -delete
for f in hello.so codecs/rot13.so; do
    [[ -f $D/$f ]] || fail "fixture $PD/$f is missing"
done

# Not modules, so not in the index: hidden names, names that are not
# identifiers, other suffixes, a link back up the tree (followed once).
printf 'notes\n' >"$D/README.txt"
cp "$PD/hello.so" "$D/.hidden.so"
cp "$PD/hello.so" "$D/bad-name.so"
mkdir "$D/.git" "$D/1st" "$D/sub.d"
cp "$PD/hello.so" "$D/.git/x.so"
cp "$PD/hello.so" "$D/1st/x.so"
cp "$PD/hello.so" "$D/sub.d/x.so"
ln -s .. "$D/codecs/up"
ln -s no_such_file.so "$D/dangling.so"

# manifest: "PATH<TAB>SIZE<TAB>SHA256" of every module file, from the
# coreutils rather than from anything modhost shares.
manifest() {
    local f
    for f in "$@"; do
        printf '%s\t%s\t%s\n' "$f" "$(stat -L -c %s "$D/$f")" \
            "$(sha256sum <"$D/$f" | cut -d' ' -f1)"
    done >"$T/manifest"
}

# check_index KIND...: index.json is format 1, has a serial, and lists exactly the
# manifest's files, in name order; KIND is "PATH=KIND" for non-native ones.
CHECK_PY='
import json, sys
raw = open(sys.argv[1], "rb").read()
d = json.loads(raw)
want = {}
for line in open(sys.argv[2]):
    path, size, sha = line.rstrip("\n").split("\t")
    want[path] = (int(size), sha)
kinds = dict(a.split("=") for a in sys.argv[3:])
def bad(msg):
    print("index.json: " + msg, file=sys.stderr); sys.exit(1)
if set(d) != {"format", "serial", "generator", "manifests", "modules"}: bad("keys %r" % sorted(d))
if type(d["serial"]) is not int or d["serial"] < 1: bad("serial")
if d["manifests"] is not True: bad("manifests is not true")
if d["format"] != 1 or type(d["format"]) is not int: bad("format")
if not d["generator"].startswith("modhost "): bad("generator")
mods = d["modules"]
names = [m["name"] for m in mods]
if names != sorted(names): bad("not sorted by name: %r" % names)
if len(set(names)) != len(names): bad("a name twice: %r" % names)
got = {}
for m in mods:
    if set(m) - {"manifest"} != {"name", "kind", "path", "size", "sha256"}: bad("keys %r" % m)
    if "manifest" in m and (type(m["manifest"]) is not dict or (m["kind"] == "native" and m["manifest"].get("abi") != 1)): bad("manifest %r" % m)
    kind = kinds.get(m["path"], "native")
    suffix = {"native": ".so", "lua": ".lua"}[kind]
    if m["kind"] != kind: bad("kind of %r" % m)
    if m["path"] != m["name"].replace(".", "/") + suffix: bad("path %r" % m)
    if type(m["size"]) is not int: bad("size %r" % m)
    got[m["path"]] = (m["size"], m["sha256"])
if got != want: bad("lists %r\nwanted %r" % (got, want))
if not raw.endswith(b"\n"): bad("no final newline")
'
check_index() {
    python3 -c "$CHECK_PY" "$D/index.json" "$T/manifest" "$@" ||
        fail "index.json is wrong:"$'\n'"$(cat "$D/index.json")"
}

no_temp_files() {
    local left
    left=$(find "$D" -name '.index.json*')
    [[ -z $left ]] || fail "temporary files left: $left"
}

mods=$(cd "$PD" && find . -name '*.so' | sed 's|^\./||' | LC_ALL=C sort)
n=$(printf '%s\n' "$mods" | wc -l)
# shellcheck disable=SC2086
manifest $mods

mh index "$D"
expect_rc 0
expect_err_empty
expect_out "indexed $n modules in $D/index.json"
check_index
no_temp_files
[[ ! -e $D/index.json.sig ]] || fail "an unsigned index has a signature"
[[ $(stat -c %a "$D/index.json") == 644 ]] ||
    fail "index.json is not readable by a web server (mode 644)"

# The same tree gives the same bytes (a trailing slash changes nothing).
cp "$D/index.json" "$T/first.json"
mh index "$D/"
expect_rc 0
expect_out "indexed $n modules in $D/index.json"
cmp -s "$D/index.json" "$T/first.json" || fail "re-indexing changed the bytes"

# A directory still works as a search path entry (index.json is no module).
mh -E -p "$D" list
expect_rc 0
expect_err_empty
# (-E keeps the default entries, whose modules may add lines: count ours.)
[[ $(printf '%s\n' "$OUT" | grep -c "	$D/") == "$n" ]] || fail "list sees other modules"

# New modules appear: native and Lua; a name present as both .so and .lua
# is listed once, as native; a changed module gets its new size and hash;
# the serial grows.
cp "$PD/hello.so" "$D/codecs/extra.so"
printf 'return {}\n' >"$D/codecs/script.lua"
printf 'return {}\n' >"$D/hello.lua"
cat "$PD/hello.so" "$PD/hello.so" >"$D/hello.so"
# shellcheck disable=SC2086
manifest $mods codecs/extra.so codecs/script.lua
mh index "$D"
expect_rc 0
expect_out "indexed $((n + 2)) modules in $D/index.json"
check_index codecs/script.lua=lua
no_temp_files
serial() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["serial"])' "$1"; }
(( $(serial "$D/index.json") > $(serial "$T/first.json") )) ||
    fail "the serial did not grow: $(serial "$T/first.json") -> $(serial "$D/index.json")"

# An empty directory has an empty index; a missing one or a file is an
# error naming it, with nothing written.
mkdir "$T/empty"
mh index "$T/empty"
expect_rc 0
expect_out "indexed 0 modules in $T/empty/index.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(d["modules"] != [])' \
    "$T/empty/index.json" || fail "the empty index lists modules"

mh index "$T/no_such_dir"
expect_rc 1
expect_out_empty
expect_err_prefixed
expect_err_has "$T/no_such_dir"
mh index "$D/hello.so"
expect_rc 1
expect_err_has "$D/hello.so: not a directory"

# The serial goes on from the old index's, even one far ahead of the
# clock (written by hand: the documented way to set where it goes on).
# An old index that cannot give it -- not JSON, a FIFO (never waited on),
# a bad serial -- fails, naming it, with nothing written.
mkdir "$T/ser"
cp "$PD/hello.so" "$T/ser/"
echo '{"serial": 5000000000}' >"$T/ser/index.json"
mh index "$T/ser"
expect_rc 0
[[ $(serial "$T/ser/index.json") == 5000000001 ]] ||
    fail "the serial did not go on from 5000000000: $(serial "$T/ser/index.json")"
for bad in garbage fifo '{"serial": 0}' '{"serial": "7"}'; do
    rm -f "$T/ser/index.json"
    case $bad in
    fifo) mkfifo "$T/ser/index.json" ;;
    *) printf '%s\n' "$bad" >"$T/ser/index.json" ;;
    esac
    before=$(ls -la "$T/ser")
    timeout 20 "$MODHOST_BIN" index "$T/ser" >"$T/.out" 2>"$T/.err" && rc=0 || rc=$?
    [[ $rc == 1 ]] || fail "old index '$bad': status $rc, not 1"
    grep -qF "$T/ser/index.json" "$T/.err" || fail "old index '$bad': not named: $(cat "$T/.err")"
    [[ $(ls -la "$T/ser") == "$before" ]] || fail "old index '$bad': something was written"
done

# A top-level module named index: its sidecar would be index.json, the
# index itself, which each run took in as index's manifest (one level
# deeper each time, with a new serial).  It has none; runs agree.
mkdir "$T/ix"
printf 'return {f = function() return 1 end}\n' >"$T/ix/index.lua"
for run in 1 2 3; do
    mh index "$T/ix"
    expect_rc 0
    cp "$T/ix/index.json" "$T/ix.$run"
done
cmp -s "$T/ix.2" "$T/ix.3" || fail "indexing an unchanged tree changed index.json"
cmp -s "$T/ix.1" "$T/ix.2" || fail "the second run changed index.json"
python3 - "$T/ix.3" <<'PY' || fail "module 'index' got a manifest: $(cat "$T/ix.3")"
import json, sys
d = json.load(open(sys.argv[1]))
m = [x for x in d["modules"] if x["name"] == "index"]
sys.exit(0 if len(m) == 1 and "manifest" not in m[0] else 1)
PY

# Usage errors: status 2.
usage_error() {
    local want=$1; shift
    mh "$@"
    expect_rc 2
    expect_out_empty
    expect_err_prefixed
    expect_err_has "$want"
}
usage_error "missing directory" index
usage_error "too many arguments" index "$D" "$T/empty"
usage_error "needs an argument" index --sign
usage_error "--bogus" index --bogus "$D"
usage_error "empty directory name" index ""
