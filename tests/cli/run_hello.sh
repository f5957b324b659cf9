#!/usr/bin/env bash
# cli.run_hello: `run hello ARGS` imports the bundled hello plugin and
# calls its main with the arguments; options after the module name belong
# to the module.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

MODHOST_PATH=$PD mh run hello alpha beta-2
expect_rc 0
expect_out_has hello
expect_out_has alpha
expect_out_has beta-2

# Same from -p, isolated; -x and --zeta are hello's, not modhost's.
mh -E -p "$PD" run hello --zeta -x
expect_rc 0
expect_out_has hello
expect_out_has --zeta
expect_out_has -x

mh -E -p "$PD" run -- hello gamma
expect_rc 0
expect_out_has gamma

# A module that is nowhere: status 3, named on stderr.
mh -E -p "$PD" run no_such_module
expect_rc 3
expect_out_empty
expect_err_prefixed
expect_err_has no_such_module
