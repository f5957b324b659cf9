#!/usr/bin/env bash
# cli.show: `show NAME` prints a module's metadata without running any of
# its code: from the ELF note of a native plugin, from a sidecar NAME.json
# beside a Lua module, or "metadata: none"; --json prints the manifest.  A
# missing module fails with status 3 and the library's message, a broken
# manifest with status 1 naming the file.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

# A native plugin with a manifest note (MH_PLUGIN_MANIFEST in rot13.c).
mh -E -p "$PD" show codecs.rot13
expect_rc 0
expect_err_empty
expect_out "name: codecs.rot13
kind: native
finder: fs
origin: $PD/codecs/rot13.so
entry: 0 $PD
metadata: elf-note
version: 1.0.0
description: ROT13 text codec
abi: 1
modhost: >=0.1
requires: -
provides: codec call:encode"

mh -E -p "$PD" show --json codecs.rot13
expect_rc 0
json_check "d == {'name': 'codecs.rot13', 'version': '1.0.0',
                  'description': 'ROT13 text codec', 'modhost': '>=0.1',
                  'provides': {'codec': 'call:encode'}, 'abi': 1}"

# hello: a note, provides nothing.
mh -E -p "$PD" show hello
expect_rc 0
expect_out_line "metadata: elf-note"
expect_out_line "version: 1.0.0"
expect_out_line "provides: -"

# The bundled Lua module: its sidecar textutil.json, copied beside it.
mh -E -p "$PD" show textutil
expect_rc 0
expect_out_line "kind: lua"
expect_out_line "origin: $PD/textutil.lua"
expect_out_line "metadata: sidecar"
expect_out_line "version: 1.0.0"
expect_out_line "abi: -"
expect_out_line "provides: text upper"

# No code runs: a native plugin whose ELF constructor (run by dlopen,
# before any descriptor is looked at) leaves a mark, and a Lua module whose
# chunk raises an error.
mkdir -p "$T/m"
cat >"$T/noted.c" <<'C'
#include <modhost/plugin.h>
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void ran(void)
{
    FILE *f = fopen(getenv("MARKER"), "a");
    if (f) { fputs("constructor ran\n", f); fclose(f); }
}
static int noted_main(int argc, char **argv)
{
    (void)argc; (void)argv;
    return 0;
}
MH_PLUGIN_MANIFEST("{\"version\": \"2.3.4\", \"description\": \"a\\tnoted\\nplugin\","
                   " \"requires\": [\"hello >=1.0, <2\", \"textutil\"],"
                   " \"provides\": {\"greeter\": \"main\", \"codec\": \"main\"}}")
MH_PLUGIN("noted", "0.0.1", NULL, NULL, MH_EXPORT("main", noted_main))
C
"${CC:-cc}" -shared -fPIC -o "$T/m/noted.so" "$T/noted.c" \
    -I"$MH_TEST_SOURCE_DIR/include" || fail "cannot build the test plugin"
export MARKER=$T/marker
mh -E -p "$T/m" -p "$PD" show noted
expect_rc 0
[[ ! -e $MARKER ]] || fail "show ran the plugin's code: $(cat "$MARKER")"
expect_out_line "metadata: elf-note"
# The manifest's version, not the descriptor's (0.0.1).
expect_out_line "version: 2.3.4"
# A description with a tab and a newline stays one field of one line.
expect_out_line "description: a noted plugin"
expect_out_line "abi: 1"
expect_out_line "modhost: -"
# requires and provides: one line each, in the manifest's order.
[[ $(grep '^requires: ' "$T/.out") == "requires: hello >=1.0, <2
requires: textutil" ]] || fail "requires lines are wrong"
[[ $(grep '^provides: ' "$T/.out" | sort) == "provides: codec main
provides: greeter main" ]] || fail "provides lines are wrong"
# The mark appears once the plugin really is loaded: the check above means
# something.
mh -E -p "$T/m" -p "$PD" run noted
expect_rc 0
[[ -s $MARKER ]] || fail "the test plugin's constructor leaves no mark"

# A Lua module with a sidecar, whose chunk would fail if it ran.
printf 'error("the chunk ran")\n' >"$T/m/tool.lua"
cat >"$T/m/tool.json" <<'JSON'
{"version": "0.2", "description": "a tool", "requires": ["hello"],
 "provides": {"tools": "run"}}
JSON
mh -E -p "$T/m" show tool
expect_rc 0
expect_err_empty
expect_out_line "kind: lua"
expect_out_line "metadata: sidecar"
expect_out_line "version: 0.2"
expect_out_line "requires: hello"
expect_out_line "provides: tools run"
mh -E -p "$T/m" show --json tool
expect_rc 0
json_check "d == {'version': '0.2', 'description': 'a tool',
                  'requires': ['hello'], 'provides': {'tools': 'run'}}"

# No manifest at all: a Lua module without a sidecar, and a namespace.
printf 'return {}\n' >"$T/m/bare.lua"
mh -E -p "$T/m" show bare
expect_rc 0
expect_out_line "metadata: none"
expect_out_line "version: -"
expect_out_line "description: -"
expect_out_line "requires: -"
expect_out_line "provides: -"
mh -E -p "$T/m" show --json bare
expect_rc 0
json_check "d == {}"
mh -E -p "$PD" show codecs
expect_rc 0
expect_out_line "kind: namespace"
expect_out_line "metadata: none"

# Control characters a manifest chose (C0 escapes, OSC, a C1 CSI in
# UTF-8) reach the terminal as \xNN, in show and in list -l.
cat >"$T/m/esc.json" <<'JSON'
{"version": "1.0\u001b[31m", "description": "evil \u001b]0;pwned\u0007 \u009b2J desc",
 "provides": {"g\u001b]0;pwned\u0007": "f\u001b[31m"}}
JSON
printf 'return {}\n' >"$T/m/esc.lua"
mh -E -p "$T/m" show esc
expect_rc 0
expect_out_line 'version: 1.0\x1b[31m'
expect_out_line 'description: evil \x1b]0;pwned\x07 \xc2\x9b2J desc'
expect_out_line 'provides: g\x1b]0;pwned\x07 f\x1b[31m'
[[ $OUT != *$'\e'* && $OUT != *$'\a'* ]] ||
    fail "a control character reached stdout raw"
mh -E -p "$T/m" list --provides $'g\e]0;pwned\a'
expect_rc 0
expect_out_has 'esc'$'\t''f\x1b[31m'$'\t''1.0\x1b[31m'
[[ $OUT != *$'\e'* && $OUT != *$'\a'* ]] ||
    fail "a control character reached stdout raw"
mh -E -p "$T/m" list -l
expect_rc 0
expect_out_has 'esc'
expect_out_has '1.0\x1b[31m'
expect_out_has 'evil \x1b]0;pwned\x07 \xc2\x9b2J desc'
[[ $OUT != *$'\e'* && $OUT != *$'\a'* && $OUT != *$'\xc2\x9b'* ]] ||
    fail "a control character reached stdout raw"
rm "$T/m/esc.json" "$T/m/esc.lua"

# A malformed sidecar: status 1, the file and the field named.
printf '{"version": 3}\n' >"$T/m/bare.json"
mh -E -p "$T/m" show bare
expect_rc 1
expect_out_empty
expect_err_prefixed
expect_err_has "$T/m/bare.json"
expect_err_has "version"

# Not found: status 3 and the library's message, naming every entry.
mkdir "$T/empty"
for json in "" --json; do
    mh -E -p "$T/empty" show $json no_such.module
    expect_rc 3
    expect_out_empty
    expect_err_prefixed
    expect_err_has "module 'no_such.module' not found"
    expect_err_has "$T/empty"
done
mh -E -p "$T/empty" show 9bad
expect_rc 3
expect_err_has "9bad"

# Usage.
mh show
expect_rc 2
expect_err_has "missing module name"
mh show a b
expect_rc 2
expect_err_has "too many arguments"
mh show --help
expect_rc 0
[[ $OUT == "Usage: modhost [GLOBAL OPTIONS] show "* ]] || fail "no usage"
