#!/usr/bin/env bash
# cli.control_chars: text that others chose -- an environment variable's
# value, a command-line word, a file name -- reaches the terminal with its
# control characters (C0, DEL, C1 in UTF-8) as \xNN, in errors and in
# warnings alike; newlines that messages are made of stay.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

: "${MH_TEST_FIXTURE_DIR:?MH_TEST_FIXTURE_DIR is not set}"
FX=$MH_TEST_FIXTURE_DIR

no_raw_controls() {
    [[ $ERR != *$'\e'* && $ERR != *$'\a'* && $ERR != *$'\xc2\x9b'* ]] ||
        fail "a control character reached stderr raw"
}

# An error naming a trusted key file.
MODHOST_TRUST=$'/tmp/\e[2J\nFAKE' mh find hello
expect_rc 1
expect_err_prefixed
expect_err_has 'MODHOST_TRUST: trusted key /tmp/\x1b[2J'
no_raw_controls
[[ $(printf '%s\n' "$ERR" | grep -c '^FAKE') == 0 ]] ||
    fail "a newline in the variable started a line of its own"

# A warning (through the library's default log hook) quoting a variable.
MODHOST_PROBE_TIMEOUT_MS=$'abc\e[2J\xc2\x9b' mh probe "$FX/probe_good.so"
expect_rc 0
expect_err_has 'MODHOST_PROBE_TIMEOUT_MS=abc\x1b[2J\xc2\x9b'
no_raw_controls

# A file name on the command line.
mh pack "$T/x.db" $'\e[2J.so'
expect_rc 1
expect_err_has '\x1b[2J.so'
no_raw_controls
[[ ! -e $T/x.db ]] || fail "a failed pack left $T/x.db behind"

# A plugin's own log line, through the library's default log hook.
mkdir "$T/p"
cat >"$T/p/noisy.c" <<'C'
#include <modhost/plugin.h>
static int noisy_init(const mh_host_api *api, mh_plugin *self)
{
    api->log(self, MH_PLUGIN_LOG_WARN, "say \033[2J\a%s", "\xc2\x9b" "done");
    return 0;
}
static int noisy_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 0;
}
MH_PLUGIN("noisy", "1.0", noisy_init, NULL, MH_EXPORT("main", noisy_main))
C
"${CC:-cc}" -shared -fPIC -o "$T/p/noisy.so" "$T/p/noisy.c" \
    -I"$MH_TEST_SOURCE_DIR/include" || fail "cannot build the test plugin"
mh -E -p "$T/p" run noisy
expect_rc 0
expect_err_has 'say \x1b[2J\x07\xc2\x9bdone'
no_raw_controls
