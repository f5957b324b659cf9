#!/usr/bin/env bash
# cli.run_exit_status: `run` exits with the module's main() result (& 0xff).
# Uses plain shared objects compiled here (run --plain): one whose main
# returns argc + 40, and one without main.  Without --plain they are
# refused (found but not loadable: status 1).
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

cc=${CC:-cc}
mkdir "$T/mods"
cat >"$T/exitcode.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    return argc > 1 ? atoi(argv[1]) : argc + 40;
}
C
printf 'int not_main(void) { return 1; }\n' >"$T/nomain.c"
"$cc" -shared -fPIC -o "$T/mods/exitcode.so" "$T/exitcode.c"
"$cc" -shared -fPIC -o "$T/mods/nomain.so" "$T/nomain.c"

mh -E -p "$T/mods" run --plain exitcode
expect_rc 41
expect_out "argv[0]=exitcode"

mh -E -p "$T/mods" run --plain exitcode 7 -v
expect_rc 7
expect_out "argv[0]=exitcode"$'\n'"argv[1]=7"$'\n'"argv[2]=-v"

mh -E -p "$T/mods" run --plain exitcode 300
expect_rc 44

mh -E -p "$T/mods" run --plain exitcode 0
expect_rc 0

# No descriptor and no --plain: found, but not loadable.
mh -E -p "$T/mods" run exitcode
expect_rc 1
expect_out_empty
expect_err_prefixed
expect_err_has exitcode

# Loaded, but nothing to run: the error names the module.
mh -E -p "$T/mods" run --plain nomain
expect_rc 1
expect_out_empty
expect_err_prefixed
expect_err_has nomain
expect_err_has main
