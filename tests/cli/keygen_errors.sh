#!/usr/bin/env bash
# cli.keygen_errors: keygen refuses, with exit 1 and a message naming the
# file, when BASE's directory is missing or either file exists (even as a
# dangling link), and then creates nothing; usage errors (a BASE that
# names a directory among them) exit 2.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"
cd "$T"

failed() {    # failed WANT: exit 1, nothing on stdout, WANT on stderr
    expect_rc 1
    expect_out_empty
    expect_err_prefixed
    expect_err_has "$1"
}

# The directory of BASE does not exist.
mh keygen "$T/no_such_dir/k"
failed "$T/no_such_dir/k.key"
expect_err_has "No such file or directory"
[[ ! -e $T/no_such_dir ]] || fail "keygen created $T/no_such_dir"

# Either file exists: refused before anything is made.
mkdir a b c
: >a/k.key
mh keygen a/k
failed "a/k.key already exists"
[[ ! -e a/k.pub ]] || fail "a refused keygen wrote a/k.pub"
[[ ! -s a/k.key ]] || fail "a refused keygen wrote into a/k.key"

: >b/k.pub
mh keygen b/k
failed "b/k.pub already exists"
[[ ! -e b/k.key ]] || fail "a refused keygen wrote b/k.key"

# A dangling link is never followed to create its target.
ln -s "$T/elsewhere.key" c/k.key
mh keygen c/k
failed "c/k.key already exists"
[[ ! -e $T/elsewhere.key ]] || fail "keygen followed a dangling link"
[[ ! -e c/k.pub ]] || fail "a refused keygen wrote c/k.pub"

# A relative BASE works and names the files as given.
mh keygen ok
expect_rc 0
expect_err_empty
expect_out "private key: ok.key"$'\n'"public key: ok.pub"
[[ -s ok.key && -s ok.pub ]] || fail "keygen ok did not write both files"

# Usage errors: status 2, nothing created.
usage_error() {
    local want=$1; shift
    mh "$@"
    expect_rc 2
    expect_out_empty
    expect_err_prefixed
    expect_err_has "$want"
}
usage_error "missing BASE" keygen
usage_error "too many arguments" keygen x y
usage_error "empty BASE" keygen ""
usage_error "--bogus" keygen --bogus z
[[ ! -e x.key && ! -e z.key && ! -e .key ]] || fail "a usage error made a key"

# BASE is a prefix: one naming a directory ("d/", "d/.", "..") would make
# hidden files (d/.key, d/.pub).  A usage error; nothing made anywhere.
mkdir -p d/e
for base in d/ d// d/. d/e/.. . .. / "$T/d/"; do
    usage_error "BASE names a directory; give a file name such as" \
        keygen "$base"
done
[[ -z $(ls -A d/e) && $(ls -A d) == e ]] || fail "keygen d/... made: $(ls -AR d)"
[[ ! -e .key && ! -e .pub && ! -e ../.key && ! -e /.key ]] ||
    fail "keygen of a directory made a hidden key"
# A name that merely starts with dots is a file name.
mh keygen d/...k
expect_rc 0
[[ -s d/...k.key && -s d/...k.pub ]] || fail "keygen d/...k did not write both"
