#!/usr/bin/env bash
# cli.list_provides: `list --provides GROUP` lists the modules whose
# manifest provides the entry point GROUP, MODULE<TAB>EXPORT<TAB>VERSION<TAB>
# ORIGIN in name order, without loading any; modules with a recorded
# failure are left out; a group nobody provides lists nothing, status 0.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

# The bundled plugins: rot13 provides "codec" (its note), textutil "text"
# (its sidecar); hello provides nothing.
mh -E -p "$PD" list --provides codec
expect_rc 0
expect_err_empty
expect_out_line "codecs.rot13${TAB}call:encode${TAB}1.0.0${TAB}$PD/codecs/rot13.so"
[[ $OUT != *hello* ]] || fail "hello is listed as a codec"
mh -E -p "$PD" list --provides text
expect_rc 0
expect_out "textutil${TAB}upper${TAB}1.0.0${TAB}$PD/textutil.lua"

# A directory of our own, exact output: two providers in name order (a
# native one and a Lua one whose chunk would fail if it ran), hello, and
# a provider that this modhost is too old for (recorded failure: left out).
# MODHOST_PATH without ';;' makes $T/m the only entry (no defaults).
mkdir -p "$T/m/codecs"
cp "$PD/codecs/rot13.so" "$T/m/codecs/rot13.so"
cp "$PD/hello.so" "$T/m/hello.so"
printf 'error("the chunk ran")\n' >"$T/m/b64.lua"
printf '{"version": "0.3", "provides": {"codec": "encode"}}\n' >"$T/m/b64.json"
printf 'return {}\n' >"$T/m/future.lua"
printf '{"modhost": ">=99", "provides": {"codec": "encode"}}\n' \
    >"$T/m/future.json"
MODHOST_PATH=$T/m mh list --provides codec
expect_rc 0
expect_err_empty
expect_out "b64${TAB}encode${TAB}0.3${TAB}$T/m/b64.lua
codecs.rot13${TAB}call:encode${TAB}1.0.0${TAB}$T/m/codecs/rot13.so"

MODHOST_PATH=$T/m mh list --provides codec --json
expect_rc 0
json_check "d == [
    {'group': 'codec', 'module': 'b64', 'export': 'encode',
     'version': '0.3', 'origin': '$T/m/b64.lua'},
    {'group': 'codec', 'module': 'codecs.rot13', 'export': 'call:encode',
     'version': '1.0.0', 'origin': '$T/m/codecs/rot13.so'}]"

# The one left out has its failure recorded, with the reason.
MODHOST_PATH=$T/m mh doctor
expect_rc 0
expect_out_has "future${TAB}$T/m/future.lua${TAB}MH_EVERSION${TAB}"
expect_out_has ">=99"

# A group nobody provides: nothing, status 0 (a filter that matched
# nothing, as `list` of an empty directory).
MODHOST_PATH=$T/m mh list --provides no_such_group
expect_rc 0
expect_out_empty
expect_err_empty
MODHOST_PATH=$T/m mh list --provides no_such_group --json
expect_rc 0
json_check "d == []"

# Usage.
mh list --provides
expect_rc 2
expect_err_has "needs an argument"
mh list -l --provides codec
expect_rc 2
expect_err_has "cannot be combined"
mh list --provides ''
expect_rc 2
expect_err_has "empty entry point group"
