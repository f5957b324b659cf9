#!/usr/bin/env bash
# cli.http_index_sign: `keygen BASE` makes an Ed25519 pair in the standard
# formats (BASE.key private, mode 0600; BASE.pub public) and never
# overwrites; `index --sign BASE.key DIR` writes index.json.sig, the raw
# 64-byte signature of index.json's exact bytes, which the stock openssl
# CLI verifies with BASE.pub.  A key that is not Ed25519 (or unreadable,
# or encrypted) is refused with index.json left alone; an unsigned
# re-index removes the stale signature.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

command -v openssl >/dev/null || fail "the openssl CLI is not installed"

K=$T/keys
mkdir "$K"
umask 000      # the private key must be 0600 whatever the umask
mh keygen "$K/idx"
umask 022
expect_rc 0
expect_err_empty
expect_out_line "private key: $K/idx.key"
expect_out_line "public key: $K/idx.pub"
[[ -f $K/idx.key && -f $K/idx.pub ]] || fail "keygen did not write both files"
[[ $(stat -c %a "$K/idx.key") == 600 ]] ||
    fail "$K/idx.key has mode $(stat -c %a "$K/idx.key"), not 600"
[[ $(head -n1 "$K/idx.key") == "-----BEGIN PRIVATE KEY-----" ]] ||
    fail "idx.key is not PEM PKCS#8"
[[ $(head -n1 "$K/idx.pub") == "-----BEGIN PUBLIC KEY-----" ]] ||
    fail "idx.pub is not a PEM public key"
openssl pkey -in "$K/idx.key" -noout -text 2>/dev/null | grep -q ED25519 ||
    fail "idx.key is not an Ed25519 key"
[[ $(openssl pkey -in "$K/idx.key" -pubout) == "$(cat "$K/idx.pub")" ]] ||
    fail "idx.pub is not the public half of idx.key"

# Never overwritten: the pair stays as it was.
cp "$K/idx.key" "$T/saved.key"
cp "$K/idx.pub" "$T/saved.pub"
mh keygen "$K/idx"
expect_rc 1
expect_out_empty
expect_err_prefixed
expect_err_has "$K/idx.key already exists"
cmp -s "$K/idx.key" "$T/saved.key" && cmp -s "$K/idx.pub" "$T/saved.pub" ||
    fail "a refused keygen changed the key pair"

D=$T/serve
cp -r "$PD" "$D"
# The native plugins only: bundled Lua modules are counted by the Lua tests.
find "$D" -name '*.lua' -delete
n=$(cd "$PD" && find . -name '*.so' | wc -l)

verify() {    # verify PUB: openssl accepts index.json.sig for index.json
    openssl pkeyutl -verify -pubin -inkey "$1" -rawin -in "$D/index.json" \
        -sigfile "$D/index.json.sig" >/dev/null 2>&1
}

mh index --sign "$K/idx.key" "$D"
expect_rc 0
expect_err_empty
expect_out "indexed $n modules in $D/index.json (signed)"
[[ $(stat -c %s "$D/index.json.sig") == 64 ]] ||
    fail "index.json.sig is not 64 bytes"
verify "$K/idx.pub" || fail "openssl does not verify the signature"
[[ -z $(find "$D" -name '.index.json*') ]] || fail "temporary files left"

# The signature covers the exact bytes and only this key.
cp "$D/index.json" "$T/good.json"
sed -i 's/"format"/"format" /' "$D/index.json"
verify "$K/idx.pub" && fail "a changed index.json still verifies"
cp "$T/good.json" "$D/index.json"
mh keygen "$K/other"
expect_rc 0
verify "$K/other.pub" && fail "the signature verifies with another key"
verify "$K/idx.pub" || fail "the restored index no longer verifies"

# -s is --sign; re-signing with another key replaces the signature.
mh index -s "$K/other.key" "$D"
expect_rc 0
expect_out_has "(signed)"
verify "$K/other.pub" || fail "re-signing with other.key does not verify"
mh index --sign "$K/idx.key" "$D"
expect_rc 0

# Refused keys: exit 1, a message naming the key and why, and index.json
# and its signature untouched (same inode: not even rewritten).
ino() { stat -c %i "$D/index.json" "$D/index.json.sig"; }
before=$(ino)
cp "$D/index.json.sig" "$T/good.sig"
refused() {    # refused WANT KEY: signing with KEY fails, saying WANT
    mh index --sign "$2" "$D" </dev/null
    expect_rc 1
    expect_out_empty
    expect_err_prefixed
    expect_err_has "$2"
    expect_err_has "$1"
    [[ $(ino) == "$before" ]] || fail "a refused key rewrote the index"
    cmp -s "$D/index.json" "$T/good.json" &&
        cmp -s "$D/index.json.sig" "$T/good.sig" ||
        fail "a refused key changed the index or its signature"
    [[ -z $(find "$D" -name '.index.json*') ]] || fail "temporary files left"
}
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out "$K/rsa.pem" 2>/dev/null
refused "not an Ed25519 key" "$K/rsa.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -out "$K/ec.pem" 2>/dev/null
refused "not an Ed25519 key" "$K/ec.pem"
# Encrypted: refused without asking for a pass phrase (stdin is empty).
openssl genpkey -algorithm ed25519 -aes256 -pass pass:secret \
    -out "$K/enc.pem" 2>/dev/null
refused "encrypted" "$K/enc.pem"
refused "cannot read signing key" "$K/idx.pub"
printf 'not a key\n' >"$K/junk.pem"
refused "cannot read signing key" "$K/junk.pem"
refused "No such file" "$K/no_such.key"
# A private key others may read (as ssh refuses one), or one inside the
# directory indexed (it would be served with the index).
chmod 640 "$K/idx.key"
refused "may be read or written by group or others (mode 0640" "$K/idx.key"
chmod 600 "$K/idx.key"
cp "$K/idx.key" "$D/.in.key"
refused "is inside $D, the directory being indexed" "$D/.in.key"
rm "$D/.in.key"

# Unsigned again: the old signature would not match, so it goes.
mh index "$D"
expect_rc 0
expect_out "indexed $n modules in $D/index.json"
[[ ! -e $D/index.json.sig ]] || fail "the stale index.json.sig was kept"

# A stale signature that cannot be removed (a directory of that name)
# fails the run with index.json untouched: it was replaced, then the
# run failed.
cp "$D/index.json" "$T/before.json"
mkdir "$D/index.json.sig"
printf 'return {}\n' >"$D/newmod.lua"
mh index "$D"
expect_rc 1
expect_err_has "cannot remove the stale signature $D/index.json.sig: it is a directory"
cmp -s "$D/index.json" "$T/before.json" || fail "index.json was replaced by a failed run"
[[ -z $(find "$D" -name '.index.json*') ]] || fail "temporary files left"
rmdir "$D/index.json.sig"
rm "$D/newmod.lua"
