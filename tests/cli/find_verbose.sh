#!/usr/bin/env bash
# cli.find_verbose: `find -v NAME` adds how the finder chain found the
# module: "via: meta path > entry INDEX > hook FINDER", the plugin module
# that brought the finder and the finder's description; without -v the
# output is unchanged, and the global -v still means tracing.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

# fs's description, as `path` shows it in the chain.
mh -E -p "$PD" path
fs_desc=$(sed -n '/^finder chain:$/,$p' "$T/.out" |
          awk -F'\t' '$1 == "hook" && $2 == "fs" { print $5 }')
[[ -n $fs_desc ]] || fail "path shows no description for fs"

mh -E -p "$PD" find -v codecs.rot13
expect_rc 0
expect_err_empty
expect_out "name: codecs.rot13
kind: native
loader: native
finder: fs
origin: $PD/codecs/rot13.so
entry: 0 $PD
via: meta path > entry 0 > hook fs
finder module: -
finder description: $fs_desc"

# The entry that had it, not the first; --verbose and -v after NAME.
mkdir "$T/empty"
for args in "find -v hello" "find --verbose hello" "find hello -v"; do
    mh -E -p "$T/empty" -p "$PD" $args
    expect_rc 0
    expect_out_line "entry: 1 $PD"
    expect_out_line "via: meta path > entry 1 > hook fs"
done

# A finder plugin: the hook is tar, brought by the module finders.tar.
python3 - "$T/m.tar" "$PD/hello.so" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    t.add(sys.argv[2], arcname="hello.so")
PY
mh -E -p "tar:$T/m.tar;$PD" find -v hello
expect_rc 0
expect_out_line "finder: tar"
expect_out_line "via: meta path > entry 0 > hook tar"
expect_out_line "finder module: finders.tar"
grep -qE '^finder description: .+' "$T/.out" || fail "no description for tar"
# ... and a module of the next entry still comes through fs.
mh -E -p "tar:$T/m.tar;$PD" find -v codecs.rot13
expect_rc 0
expect_out_line "via: meta path > entry 1 > hook fs"
expect_out_line "finder module: -"

# --json -v: the same as keys.
mh -E -p "tar:$T/m.tar;$PD" find -v --json hello
expect_rc 0
json_check "d['link'] == 'path' and d['hook'] == 'tar'" \
    "d['finder_module'] == 'finders.tar'" \
    "isinstance(d['finder_description'], str)" \
    "d['entry'] == 0 and d['entry_text'] == 'tar:$T/m.tar'"

# Without -v: none of it.
mh -E -p "$PD" find codecs.rot13
expect_rc 0
[[ $(grep -c -e '^via: ' -e '^finder module: ' "$T/.out" || true) == 0 ]] ||
    fail "find without -v shows the chain"
mh -E -p "$PD" find --json codecs.rot13
json_check "'link' not in d and 'hook' not in d"
# The global -v traces on stderr and adds nothing to stdout.
mh -E -v -p "$PD" find codecs.rot13
expect_rc 0
expect_err_has "$PD"
[[ $OUT != *"via: "* ]] || fail "the global -v shows the chain"

# A missing module: status 3, as without -v.
mh -E -p "$T/empty" find -v no_such
expect_rc 3
expect_out_empty
expect_err_has "module 'no_such' not found"
