#!/usr/bin/env bash
# cli.run_rot13: `run` reaches a dotted module (codecs.rot13) and passes
# its arguments verbatim: the output is exactly their rot13.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

mh -E -p "$PD" run codecs.rot13 Hello 'World, 13!' --abc
expect_rc 0
expect_out "Uryyb Jbeyq, 13! --nop"

MODHOST_PATH=$PD mh run codecs.rot13
expect_rc 0
expect_out ""
