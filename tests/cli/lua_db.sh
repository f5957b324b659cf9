#!/usr/bin/env bash
# cli.lua_db: a Lua module packed into a module database with `pack` is
# listed with kind lua, found through the sqlite finder, and called.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

mkdir -p "$T/src/pkg"
cat >"$T/src/mod.lua" <<'LUA'
local M = {}
function M.fn(a, b) return { sum = a + b, list = { a, b } } end
function M.greet(name) return "hi " .. name end
return M
LUA
cat >"$T/src/pkg/inner.lua" <<'LUA'
return { twice = function(x) return x * 2 end }
LUA
DB=$T/lua.db

mh pack "$DB" "$T/src"
expect_rc 0
expect_err_empty
expect_out "packed 2 files into $DB"

mh -E -p "$DB" list
expect_rc 0
expect_err_empty
expect_out_line "mod${TAB}lua${TAB}$DB!/mod.lua"
expect_out_line "pkg.inner${TAB}lua${TAB}$DB!/pkg/inner.lua"

mh -E -p "$DB" find mod
expect_rc 0
expect_out_line "kind: lua"
expect_out_line "finder: sqlite"

mh -E -p "$DB" call mod fn '[1,2]'
expect_rc 0
expect_err_empty
json_check "d == {'sum': 3, 'list': [1, 2]}"

mh -E -p "$DB" call mod greet '["db"]'
expect_rc 0
expect_out '"hi db"'

mh -E -p "$DB" call pkg.inner twice '[21]'
expect_rc 0
expect_out '42'

# The bundled textutil is in the demo database too (packed at build time).
demo=$(dirname "$(dirname "$(dirname "$PD")")")/share/modhost/demo.db
if [[ -f $demo ]]; then
    mh -E -p "$demo" call textutil upper '["db"]'
    expect_rc 0
    expect_out '"DB"'
fi
