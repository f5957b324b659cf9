#!/usr/bin/env bash
# cli.tar_finder: an entry "tar:ARCHIVE" is served by the finder plugin
# finders.tar, imported from the plugin directory later on the path: `run`
# runs a module from inside the archive, `path` shows the entry claimed by
# finder "tar", `find` and `list` give "ARCHIVE!/member" origins, and a
# missing archive is named on stderr while the other entries still work.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

# An archive holding the bundled hello plugin and a Lua module.
cat >"$T/shout.lua" <<'LUA'
return { shout = function(s) return string.upper(s) .. "!" end }
LUA
python3 - "$T/m.tar" "$PD/hello.so" "$T/shout.lua" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1], "w") as t:
    t.add(sys.argv[2], arcname="hello.so")
    t.add(sys.argv[3], arcname="tools/shout.lua")
PY
P="tar:$T/m.tar;$PD"

mh -E -p "$P" run hello from-tar
expect_rc 0
expect_out_has "hello from the modhost plugin"
expect_out_has from-tar

mh -E -p "$P" path
expect_rc 0
expect_out_line "0${TAB}tar:$T/m.tar${TAB}config${TAB}tar"
expect_out_line "1${TAB}$PD${TAB}config${TAB}fs"

mh -E -p "$P" find hello
expect_rc 0
expect_out_line "finder: tar"
expect_out_line "origin: $T/m.tar!/hello.so"
expect_out_line "entry: 0 tar:$T/m.tar"

mh -E -p "$P" call tools.shout shout '["tar"]'
expect_rc 0
expect_out '"TAR!"'

mh -E -p "$P" list
expect_rc 0
expect_out_line "hello${TAB}native${TAB}$T/m.tar!/hello.so"
expect_out_line "tools.shout${TAB}lua${TAB}$T/m.tar!/tools/shout.lua"

# The same archive as a zip.
python3 - "$T/m.zip" "$PD/hello.so" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    z.write(sys.argv[2], arcname="hello.so")
PY
mh -E -p "tar:$T/m.zip;$PD" find hello
expect_rc 0
expect_out_line "origin: $T/m.zip!/hello.so"

# A missing archive: a warning naming it; hello still runs, from $PD.
mh -E -p "tar:$T/none.tar;$PD" run hello
expect_rc 0
expect_out_has "hello from the modhost plugin"
expect_err_has "$T/none.tar"
expect_err_has "no such archive"
mh -E -p "tar:$T/none.tar;$PD" run tools.shout
expect_rc 3
expect_err_has "$T/none.tar: no such archive"

# MODHOST_PATH without ';;' leaves out the default entries, where the
# bundled finders.tar is installed: the error says so, and ';;' mends it.
MODHOST_PATH="tar:$T/m.tar" mh run hello
expect_rc 3
expect_err_has "module 'finders.tar' not found"
expect_err_has "(the default entries, where modhost's own finder plugins are installed, are not on the search path: MODHOST_PATH is set without ';;', which would keep them)"
MODHOST_PATH="tar:$T/m.tar;;" mh find hello
expect_rc 0
expect_out_line "origin: $T/m.tar!/hello.so"
# With the defaults on the path, a finder plugin not found gets no such
# note.
mh -E -p "nosuch:$T/m.tar" run hello
expect_rc 0
expect_err_has "module 'finders.nosuch' not found"
expect_err_lacks "the default entries"
