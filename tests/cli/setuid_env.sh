#!/usr/bin/env bash
# cli.setuid_env: in a privileged process the environment is ignored
# (secure_getenv).  A setuid-root copy of modhost, run by uid 65534
# (setpriv), must not see MODHOST_PATH (its entry is not on `path`, and
# `run` of a module only there is not found), MODHOST_VERBOSE, or the XDG
# variables (no per-user default entry, no cache written there) -- while
# the same binary without the setuid bit, run the same way, sees all of
# them (the control).  -p still works in the setuid copy, so what it
# refuses is the environment and nothing else.
#
# Needs root (to make a setuid-root file) and setpriv (util-linux); SKIP
# (exit 0) without them.  CI runs as root, so there it really runs.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

skip() {
    echo "SKIP: cli.$TEST_NAME: $*"
    exit 0
}
[[ $(id -u) == 0 ]] || skip "not root: making a setuid-root copy of modhost needs root"
command -v setpriv >/dev/null || skip "setpriv (util-linux) is not installed"

NOBODY=65534

# The tree: a filesystem mounted nosuid would ignore the setuid bit and
# make the test meaningless, so fall back to the build tree then.
R=$T/tree
if findmnt -no OPTIONS --target "$T" 2>/dev/null | tr , '\n' | grep -qx nosuid; then
    R=$(mktemp -d "$MH_TEST_BUILD_DIR/setuid-env.XXXXXX")
    trap 'rm -rf "$T" "$R"' EXIT
    findmnt -no OPTIONS --target "$R" | tr , '\n' | grep -qx nosuid &&
        skip "both $T and $R are on nosuid filesystems"
fi
# uid 65534 must be able to reach everything it runs or reads.
chmod 755 "$T"
mkdir -p "$R"/{suid,plain}/{bin,lib} "$R/mods" "$R/home"
chmod 755 "$R" "$R"/{suid,plain} "$R"/{suid,plain}/{bin,lib} "$R/mods"

# Two copies of the CLI, each with its library beside it as an installed
# tree has it (<T>/bin/modhost, <T>/lib/libmodhost.so*).  The build tree's
# binary finds its library by an absolute RUNPATH, which a setuid process
# honours too; an installed one's $ORIGIN/../lib would be ignored in a
# setuid process unless the library is in a system directory.
LIBDIR=$(dirname "$MODHOST_BIN")/../lib
for d in suid plain; do
    cp "$MODHOST_BIN" "$R/$d/bin/modhost"
    cp -a "$LIBDIR"/libmodhost.so* "$R/$d/lib/"
done
chown root:root "$R/suid/bin/modhost"
chmod 4755 "$R/suid/bin/modhost"
chmod 755 "$R/plain/bin/modhost"
SUID=$R/suid/bin/modhost
PLAIN=$R/plain/bin/modhost

# A module only MODHOST_PATH can reach (hello's code under another name).
cp "$PD/hello.so" "$R/mods/envmod.so"
chmod 644 "$R/mods/envmod.so"

# uid 65534's own home and caches, for the control to write into.
export HOME=$R/home
export XDG_CACHE_HOME=$R/home/cache XDG_DATA_HOME=$R/home/data
mkdir -p "$XDG_CACHE_HOME" "$XDG_DATA_HOME/modhost/modules"
chown -R "$NOBODY:$NOBODY" "$R/home"
chmod 755 "$R/home"
USER_ENTRY=$XDG_DATA_HOME/modhost/modules

# as_nobody BIN ARGS...: run BIN as uid/gid 65534, no supplementary
# groups, with this environment; keeps $OUT, $ERR, $RC like mh.
as_nobody() {
    local bin=$1
    shift
    LAST_CMD="(uid $NOBODY) $bin $*"
    RC=0
    setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups -- \
        "$bin" "$@" >"$T/.out" 2>"$T/.err" || RC=$?
    OUT=$(cat "$T/.out")
    ERR=$(cat "$T/.err")
}

expect_out_lacks() {
    [[ $OUT != *"$1"* ]] || fail "stdout mentions '$1'"
}

# Does a setuid bit take effect here at all?  (no_new_privs, inherited
# from a container runtime, would silently turn it off.)
grep -qE '^NoNewPrivs:[[:space:]]*1' /proc/self/status &&
    skip "no_new_privs is set for this process tree: setuid bits are ignored"
cp "$(command -v id)" "$R/suid/bin/id"
chmod 4755 "$R/suid/bin/id"
euid=$(setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups -- \
    "$R/suid/bin/id" -u)
[[ $euid == 0 ]] || fail "a setuid-root copy of id, run as uid $NOBODY, has euid $euid"

# Both copies start and find their library.
as_nobody "$PLAIN" --version
expect_rc 0
as_nobody "$SUID" --version
if [[ $RC != 0 ]]; then
    fail "the setuid copy does not start (a sanitizer build run setuid? see stderr)"
fi
[[ $(stat -c %u:%a "$SUID") == 0:4755 ]] || fail "$SUID is not setuid root"

export MODHOST_PATH="$R/mods;;"
cases=0

# ---- control: the plain copy, run the same way, sees the environment.
as_nobody "$PLAIN" path
expect_rc 0
expect_out_has "$R/mods${TAB}environment"
expect_out_has "$USER_ENTRY${TAB}default"
as_nobody "$PLAIN" run envmod alpha
expect_rc 0
expect_out_has hello
expect_out_has alpha
MODHOST_VERBOSE=1 as_nobody "$PLAIN" find envmod
expect_rc 0
[[ -n $ERR ]] || fail "MODHOST_VERBOSE=1 traced nothing in the plain copy"
as_nobody "$PLAIN" list -l
expect_rc 0
[[ -e $XDG_CACHE_HOME/modhost ]] || fail "the plain copy did not use XDG_CACHE_HOME"
rm -rf "$XDG_CACHE_HOME/modhost"
cases=$((cases + 5))

# ---- the setuid copy ignores it all.
as_nobody "$SUID" path
expect_rc 0
expect_out_lacks "$R/mods"
expect_out_lacks "${TAB}environment"
expect_out_lacks "$USER_ENTRY"
as_nobody "$SUID" run envmod alpha
expect_rc 3
expect_out_empty
expect_err_has envmod
expect_err_lacks "$R/mods"
MODHOST_VERBOSE=1 as_nobody "$SUID" find hello
expect_rc 0
expect_err_empty
as_nobody "$SUID" list -l
expect_rc 0
expect_out_lacks envmod
[[ ! -e $XDG_CACHE_HOME/modhost ]] || fail "the setuid copy wrote into XDG_CACHE_HOME"
# MODHOST_PATH alone, without the defaults, changes nothing either.
MODHOST_PATH="$R/mods" as_nobody "$SUID" run envmod
expect_rc 3
cases=$((cases + 5))

# -p is configuration, not environment: it still works, so the refusals
# above are the environment's.
as_nobody "$SUID" -p "$R/mods" run envmod beta
expect_rc 0
expect_out_has hello
expect_out_has beta
cases=$((cases + 1))

echo "cases: cli.setuid_env $cases"
