#!/usr/bin/env bash
# cli.bad_name: names that break the grammar give status 3 and say the name
# is invalid, for find and for run.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

check_bad() {
    mh "$@"
    expect_rc 3
    expect_out_empty
    expect_err_prefixed
    [[ ${ERR,,} == *invalid* ]] || fail "stderr does not say 'invalid'"
}

for name in ../etc a..b '' .a a. 1abc a-b 'a b' a/b; do
    check_bad -E -p "$PD" find "$name"
    check_bad -E -p "$PD" run "$name"
    [[ -z $name ]] || expect_err_has "$name"
done
# After "--", a leading dash is a (bad) name, not an option.
check_bad -E -p "$PD" find -- -x
check_bad -E -p "$PD" find --json -- -x

# A file given for a name: the error, then a hint that names the module
# and its directory as -p wants them.  A plain bad name gets no hint.
# The directory is made absolute, as a search path entry must be, so the
# command the hint gives works as it stands; shell-quoted when it holds
# anything but [A-Za-z0-9/._+,:@%-].
word() {
    if [[ $1 =~ ^[A-Za-z0-9/._+,:@%-]+$ ]]; then
        printf '%s' "$1"
    else
        printf "'%s'" "${1//\'/\'\\\'\'}"
    fi
}
mh -E -p "$PD" run ./greet.so
expect_rc 3
expect_err_has "hint: './greet.so' looks like a file"
expect_err_has "\`modhost -p $(word "$(pwd -P)") run greet\`"
mh -E -p "$PD" find /srv/x/pkg/mod.lua
expect_rc 3
expect_err_has "\`modhost -p /srv/x/pkg find mod\`"
mh -E -p "$PD" show hello.so
expect_rc 3
expect_err_has "\`modhost -p $(word "$(pwd -P)") show hello\`"
mkdir -p "$T/my plugins/sub"
cp "$PD/hello.so" "$T/my plugins/sub/"
(
    cd "$T/my plugins"
    mh -E run sub/hello.so
    expect_rc 3
    hint=$(grep -o '`modhost -p .*`' <<<"$ERR") || fail "no hint"
    [[ $hint == "\`modhost -p $(word "$(pwd -P)/sub") run hello\`" ]] ||
        fail "hint $hint"
    # Followed as it stands (in a shell: the directory has a space).
    eval "mh -E ${hint:9:-1}"
    expect_rc 0
)
mh -E -p "$PD" run a-b
expect_rc 3
expect_err_lacks "hint:"
