#!/usr/bin/env bash
# cli.probe: `modhost probe FILE` checks a native plugin in a child
# process and says how it went: "NAME: ok (FILE)" and status 0 for a good
# one; status 1 and "modhost: module 'NAME' (FILE) failed its probe in a
# child process: REASON; not loaded" for one that crashes, aborts, exits or
# hangs in init -- the command itself survives all of them.  --in-process
# runs the check in the command's own process (what the child runs), and
# --status-fd reports its milestones.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

: "${MH_TEST_FIXTURE_DIR:?MH_TEST_FIXTURE_DIR is not set}"
FX=$MH_TEST_FIXTURE_DIR

# A good plugin.
mh probe "$FX/probe_good.so"
expect_rc 0
expect_out "probe_good: ok ($FX/probe_good.so)"
expect_err_empty

# Its milestones in-process: host up, init, fini -- each led by the
# writer's pid, so that a copy a plugin forks cannot answer for the child.
mh probe --in-process --status-fd 1 "$FX/probe_good.so"
expect_rc 0
pid=${OUT%% *}
[[ $pid =~ ^[0-9]+$ ]] || fail "no pid leads the status lines"
expect_out "$pid start"$'\n'"$pid init-ok"$'\n'"$pid ok"$'\n'"probe_good: ok ($FX/probe_good.so)"

# Bad ones: the reason, status 1, and this command lives to say so.
bad() {
    local fixture=$1 reason=$2
    mh probe "$FX/$fixture.so"
    expect_rc 1
    expect_out_empty
    expect_err_prefixed
    expect_err_has "module '$fixture' ($FX/$fixture.so) failed its probe in a child process: $reason; not loaded"
}
bad probe_segv "crashed in init: signal 11 (Segmentation fault)"
bad probe_abort "aborted (signal 6)"
bad probe_exit "exited in init with status 3 (its last words: probe_exit: giving up)"
# A copy init forked says "ok" for it, and its last words hold an escape
# sequence: the child's own end counts, and the escape is shown as \x1b.
bad probe_fork_exit 'exited in init with status 3 (its last words: probe_fork_exit: \x1b[31mgiving up)'
[[ $ERR != *$'\e'* ]] || fail "an escape character reached stderr raw"
start=$SECONDS
MODHOST_PROBE_TIMEOUT_MS=500 bad probe_hang "hung: no answer in 0.5 s"
(( SECONDS - start < 10 )) || fail "the hang took $((SECONDS - start)) s"

# A clean refusal is the module's own message.
mh probe "$FX/init_fails.so"
expect_rc 1
expect_err_has "deliberate init failure from fixture"
expect_err_lacks "failed its probe"

# -v shows the decision.
mh -v probe "$FX/probe_good.so"
expect_rc 0
expect_err_has "probe: 'probe_good' ($FX/probe_good.so): checking it in a child process"
expect_err_has "probe: 'probe_good' ($FX/probe_good.so): ok in "

# --name, for a file whose name is no module name.
cp "$FX/probe_good.so" "$T/lib-good.so"
mh probe "$T/lib-good.so"
expect_rc 2
expect_err_has "give one with --name NAME"
mh probe --name good "$T/lib-good.so"
expect_rc 0
expect_out "good: ok ($T/lib-good.so)"

# Not a plugin: refused before any child (its metadata is read first).
printf 'not an ELF object\n' >"$T/junk.so"
mh probe "$T/junk.so"
expect_rc 1
expect_err_has "not an ELF"
# No descriptor: --plain accepts it.
mh probe "$FX/no_desc.so"
expect_rc 1
expect_err_has "not a modhost plugin"
mh probe --plain "$FX/no_desc.so"
expect_rc 0

# Missing file; usage errors.
mh probe "$T/absent.so"
expect_rc 3
expect_err_has "cannot probe $T/absent.so"
rc=0
"$MODHOST_BIN" probe "$T/absent.so" 2>/dev/full || rc=$?
[[ $rc == 3 ]] || fail "a missing FILE gave status $rc, not 3, with stderr full"
mh probe --name
expect_rc 2
expect_err_has "option '--name' needs an argument"
mh probe
expect_rc 2
expect_err_has "missing FILE"
mh probe a.so b.so
expect_rc 2
expect_err_has "too many arguments"
mh probe --status-fd 1 "$FX/probe_good.so"
expect_rc 2
expect_err_has "go with --in-process"
mh probe --in-process --config-flags 0x1 "$FX/probe_good.so"
expect_rc 2
expect_err_has "bad --config-flags"
# A status descriptor that is not open is a usage error (it used to be
# written to, through a stream that leaked).
mh probe --in-process --status-fd 1000 "$FX/probe_good.so"
expect_rc 2
expect_err_has "bad --status-fd '1000' (not an open descriptor)"

# A version mismatch is the probe's trouble, said on the status channel.
mh probe --in-process --status-fd 1 --host-version 9.9.9 "$FX/probe_good.so"
expect_rc 1
expect_out_has "unusable"
expect_err_has "the host asking is modhost 9.9.9"

# Nothing was cached or recorded by any of this.
[[ ! -e $XDG_CACHE_HOME/modhost/probe ]] || fail "probe results were cached"
[[ ! -e $XDG_CACHE_HOME/modhost/discovery.db ]] || fail "failures were recorded"
