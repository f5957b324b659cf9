#!/usr/bin/env bash
# cli.call: `call NAME FUNCTION [JSON-ARRAY]` imports a Lua module and
# calls one of its functions with JSON values, printing the result on one
# line; bad JSON is a usage error (2), a missing module 3, a failed call 1
# (with the Lua message and traceback).
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

[[ -f $PD/textutil.lua ]] || fail "fixture $PD/textutil.lua is missing"

mh -E -p "$PD" call textutil upper '["hello"]'
expect_rc 0
expect_err_empty
expect_out '"HELLO"'

mh -E -p "$PD" call textutil words '["the  quick brown"]'
expect_rc 0
expect_err_empty
expect_out '["the","quick","brown"]'

mh -E -p "$PD" call textutil stats '["the quick brown fox"]'
expect_rc 0
expect_err_empty
[[ $(wc -l <"$T/.out") == 1 ]] || fail "the result is not on one line"
json_check "d == {'chars': 19, 'words': 4}"

# Extra whitespace in the JSON is fine; a string with a quote round-trips.
mh -E -p "$PD" call textutil reverse ' [ "a\"b" ] '
expect_rc 0
expect_out '"b\"a"'

# Options after NAME are operands (a JSON number may start with '-').
mh -E -p "$PD" call --plain textutil upper '["x"]'
expect_rc 0
expect_out '"X"'

# Usage errors: bad JSON, not an array, missing operands.
for bad in '[1,' 'nope' '{"a": 1}' '"str"' '42'; do
    mh -E -p "$PD" call textutil upper "$bad"
    expect_rc 2
    expect_out_empty
    expect_err_prefixed
    expect_err_has "call: "
done
mh -E -p "$PD" call textutil upper '{"a": 1}'
expect_err_has "JSON array"
mh -E -p "$PD" call textutil upper '[1,'
expect_err_has "invalid JSON"
mh -E -p "$PD" call textutil
expect_rc 2
expect_err_has "missing function name"
mh -E -p "$PD" call
expect_rc 2
expect_err_has "missing module name"
mh -E -p "$PD" call textutil upper '["a"]' '["b"]'
expect_rc 2
expect_err_has "too many arguments"

# An unknown function: status 1, named.
mh -E -p "$PD" call textutil no_such_fn '[]'
expect_rc 1
expect_out_empty
expect_err_prefixed
expect_err_has no_such_fn

# A Lua error: status 1, the message and the traceback, no crash.
mh -E -p "$PD" call textutil fail '["boom"]'
expect_rc 1
expect_out_empty
expect_err_prefixed
expect_err_has boom
expect_err_has "stack traceback"

# A wrong argument type raises inside Lua: an error, not a crash.
mh -E -p "$PD" call textutil upper '[{}]'
expect_rc 1
expect_out_empty
expect_err_prefixed

# A native module without that JSON call: status 1, saying how to declare one.
mh -E -p "$PD" call hello main
expect_rc 1
expect_out_empty
expect_err_prefixed
expect_err_has hello
expect_err_has "MH_CALL"

# A native module's MH_CALL function, and its refusal of bad arguments.
mh -E -p "$PD" call codecs.rot13 encode '["Hello, World"]'
expect_rc 0
expect_out '"Uryyb, Jbeyq"'
mh -E -p "$PD" call codecs.rot13 encode '[1, 2]'
expect_rc 1
expect_err_has "encode takes one string"

# Not found / bad name: status 3.
mh -E -p "$PD" call no_such_module f
expect_rc 3
expect_err_prefixed
expect_err_has no_such_module
mh -E -p "$PD" call 'bad-name!' f
expect_rc 3

# Help: per command and in the global list.
for args in "help call" "call --help"; do
    mh $args
    expect_rc 0
    expect_err_empty
    [[ $OUT == "Usage: modhost [GLOBAL OPTIONS] call "* ]] ||
        fail "'$args' does not print the usage of call"
done
mh --help
expect_rc 0
grep -qE "^  call( |$)" "$T/.out" || fail "--help does not list 'call'"

# Numbers come out as exactly what they are (cJSON alone printed 2^53 - 1
# as 9.00719925474099e+15, and 0.1 + 0.2 as 0.3).
mkdir -p "$T/num"
printf 'return {id = function(x) return x end,\n        sum = function() return 0.1 + 0.2 end}\n' >"$T/num/num.lua"
mh -E -p "$T/num" call num id '[9007199254740991]'
expect_rc 0
expect_out "9007199254740991"
mh -E -p "$T/num" call num sum
expect_rc 0
expect_out "0.30000000000000004"
mh -E -p "$T/num" call num id '[{"a": 123456789012345678, "b": [0.1, -0, 1e300]}]'
expect_rc 0
# (an argument past 2^53 is read as the nearest double: cJSON's numbers)
json_check "d == {'a': 123456789012345680, 'b': [0.1, 0, 1e300]}"

# A module that sets a locale whose decimal point is a comma does not
# change the JSON: numbers are printed in the C locale ("1,5" is no JSON).
# The locale is compiled here (localedef, from Debian's `locales`) and
# found through LOCPATH.  glibc's setlocale leaks the LOCPATH list it
# splits (__argz_add_sep): suppressed for this command only.
mkdir -p "$T/loc"
localedef -i de_DE -f UTF-8 "$T/loc/de_DE.UTF-8" 2>"$T/.localedef" ||
    fail "localedef could not build de_DE.UTF-8 (is Debian's locales installed?): $(cat "$T/.localedef")"
printf 'leak:__argz_add_sep\n' >"$T/lsan.supp"
printf 'return {f = function()\n  local r = os.setlocale("de_DE.UTF-8")\n  return {r, tostring(1.5), 1.5, 0.1 + 0.2, -2.5e-7}\nend}\n' >"$T/num/loc.lua"
LOCPATH="$T/loc" LSAN_OPTIONS="suppressions=$T/lsan.supp:print_suppressions=0" \
    mh -E -p "$T/num" call loc f
expect_rc 0
expect_out '["de_DE.UTF-8","1,5",1.5,0.30000000000000004,-2.5e-07]'

# A NUL in a string reached the function cut there ("a" for "a\u0000b");
# an escaped backslash before u0000 is no NUL.
mh -E -p "$PD" call textutil upper '["a\u0000b"]'
expect_rc 2
expect_err_has "holds \\u0000 (NUL), which cannot be passed"
mh -E -p "$PD" call textutil upper '["a\\u0000b"]'
expect_rc 0
expect_out '"A\\U0000B"'

# The whole text must be JSON: trailing text is an error, not ignored.
for bad in '["a"] trailing' '["a"],[2]' '[1]]'; do
    mh -E -p "$T/num" call num id "$bad"
    expect_rc 2
    expect_err_has "invalid JSON"
done

# A number past a double's range parsed to an infinity: the function got
# inf (printed "INF" by textutil.upper). Refused as the arguments' fault.
for args in '[1e400]' '[[{"a": -1e999}]]'; do
    mh -E -p "$PD" call textutil upper "$args"
    expect_rc 2
    expect_out_empty
    expect_err_has "a number in the arguments is past the range of a double"
done
mh -E -p "$PD" call textutil upper '[1e300]'
expect_rc 0
