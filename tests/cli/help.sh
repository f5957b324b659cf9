#!/usr/bin/env bash
# cli.help: global and per-command help go to stdout with status 0; usage
# errors (unknown command or option, missing argument) give status 2 and a
# "modhost: " message on stderr.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

commands=(run find list path help)

mh --help
expect_rc 0
expect_err_empty
[[ $OUT == "Usage: modhost "* ]] || fail "--help does not start with Usage"
for c in "${commands[@]}"; do
    grep -qE "^  $c( |$)" "$T/.out" || fail "--help does not list '$c'"
done
# The exit codes are documented.
for line in "  0  success" "  2  usage error" "  3  module not found"; do
    expect_out_has "$line"
done
global_help=$OUT

for args in "-h" "help"; do
    mh $args
    expect_rc 0
    expect_out "$global_help"
done

for c in "${commands[@]}"; do
    for args in "help $c" "$c --help" "$c -h" "-E $c --help"; do
        mh $args
        expect_rc 0
        expect_err_empty
        [[ $OUT == "Usage: modhost [GLOBAL OPTIONS] $c "* ]] ||
            fail "'$args' does not print the usage of $c"
    done
done

# Usage errors: status 2, nothing on stdout, the reason on stderr.
usage_error() {
    local want=$1; shift
    mh "$@"
    expect_rc 2
    expect_out_empty
    expect_err_prefixed
    expect_err_has "$want"
}
usage_error "unknown command 'bogus'" bogus
usage_error "unknown command 'bogus'" -E bogus
usage_error "missing command"
usage_error "missing command" -E
usage_error "--bogus" --bogus list
usage_error "-q" -q list
usage_error "needs an argument" --path
usage_error "needs an argument" -p
usage_error "--bogus" find --bogus hello
usage_error "missing module name" find
usage_error "missing module name" run
usage_error "missing module name" run --plain
usage_error "too many arguments" find a b
usage_error "unexpected argument 'x'" list x
usage_error "unexpected argument 'x'" path x
usage_error "unknown command 'bogus'" help bogus
usage_error "--json" run --json hello
