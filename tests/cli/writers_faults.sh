#!/usr/bin/env bash
# cli.writers_faults: the writers (pack, index, keygen) on a full disk and
# killed at the worst moment leave no partial file under a real name and
# their old files as they were, say which file failed, and a later run
# works.  The faults are injected into the real system calls with strace
# (-e inject): ENOSPC from the Nth write, SIGKILL at the Nth link.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"
command -v strace >/dev/null || fail "strace is not installed"
command -v sqlite3 >/dev/null || fail "the sqlite3 CLI is not installed"
cd "$T"
# Where ptrace is refused (a container's seccomp, Yama), nothing can be
# injected: skipped, not passed.
strace -f -qq -o /dev/null -e trace=none true 2>/dev/null ||
    skip "strace cannot trace a process here"

# faulted SYSCALLS WHAT ARGS...: modhost ARGS with WHAT (error=E:when=N
# or signal=S:when=N) injected into SYSCALLS (each counted on its own:
# "link,linkat" is link where the machine has it, linkat where not).
faulted() {
    local sc=$1 what=$2
    shift 2
    LAST_CMD="strace -e inject=$sc:$what modhost $*"
    RC=0
    # LeakSanitizer cannot run under ptrace; everything else of ASan can.
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        strace -f -qq -o /dev/null -e trace="$sc" -e inject="$sc:$what" \
        "$MODHOST_BIN" "$@" >"$T/.out" 2>"$T/.err" || RC=$?
    OUT=$(cat "$T/.out")
    ERR=$(cat "$T/.err")
}

# only DIR NAME...: DIR holds exactly the NAMEs (dot files included).
only() {
    local dir=$1 got want
    shift
    got=$(cd "$dir" && ls -A | sort | tr '\n' ' ')
    want=""
    if (($#)); then want=$(printf '%s\n' "$@" | sort | tr '\n' ' '); fi
    [[ $got == "$want" ]] || fail "$dir holds '$got', not '$want'"
}

rows() { sqlite3 "$1" 'SELECT name, mode, sz, hex(data) FROM sqlar ORDER BY name'; }

# ---- pack: a new database, the disk full at each of its first writes ----
# SQLite writes pages with pwrite64.  Whichever write fails, the pack says
# so naming the database and leaves nothing: no database, no temporary
# copy, no journal.
mkdir new
for n in 1 2 3 4 6 9; do
    faulted pwrite64 error=ENOSPC:when=$n+ pack new/mods.db "$PD/hello.so" \
        "$PD/codecs/rot13.so"
    expect_rc 1
    expect_err_has "module database new/mods.db"
    expect_err_has "disk is full"
    only new
done
# With room again the same pack works.
mh pack new/mods.db "$PD/hello.so" "$PD/codecs/rot13.so"
expect_rc 0
only new mods.db
[[ $(rows new/mods.db | wc -l) == 2 ]] || fail "new/mods.db lacks its rows"

# ---- pack: an existing database keeps every row, byte for byte ---------
saved=$(rows new/mods.db)
for what in error=ENOSPC:when=1 error=ENOSPC:when=3 error=ENOSPC:when=2+ \
    error=ENOSPC:when=5+; do
    faulted pwrite64 "$what" pack new/mods.db "$PD/textutil.lua"
    expect_rc 1
    expect_err_has "module database new/mods.db"
    # A hot journal a failed rollback left is the database's own: the
    # next reader (sqlite3 here) rolls it back.  Nothing else is left.
    [[ $(rows new/mods.db) == "$saved" ]] || fail "$what changed new/mods.db"
    only new mods.db
done

# ---- pack killed just before it links its new database into place ------
# The kill leaves its temporary database (nothing under the real name); a
# later pack works, and removes it once it is older than any live pack's.
mkdir killed
faulted link,linkat signal=SIGKILL:when=1 pack killed/mods.db "$PD/hello.so"
expect_rc 137
[[ ! -e killed/mods.db ]] || fail "a killed pack left killed/mods.db"
left=(killed/mods.db.tmp-*)
[[ ${#left[@]} == 1 && -f ${left[0]} ]] || fail "no temporary database"
mh pack killed/mods.db "$PD/hello.so"
expect_rc 0
[[ -f ${left[0]} ]] || fail "a pack removed another run's recent file"
rm killed/mods.db
touch -d '-11 minutes' "${left[0]}"
mh pack killed/mods.db "$PD/hello.so"
expect_rc 0
only killed mods.db

# ---- index: the disk full while index.json is written ------------------
mkdir site
cp "$PD/hello.so" site/
mh index site
expect_rc 0
cp site/index.json index.saved
cp "$PD/codecs/rot13.so" site/
faulted write error=ENOSPC:when=1 index site
expect_rc 1
expect_err_has "cannot write site/index.json (left as it was)"
expect_err_has "No space left on device"
cmp -s site/index.json index.saved || fail "a failed index changed it"
only site hello.so rot13.so index.json

# ... and while a signed one's signature is written: the old pair stays.
mh keygen signer
expect_rc 0
mh index --sign signer.key site
expect_rc 0
cp site/index.json index.saved
cp site/index.json.sig sig.saved
rm site/rot13.so
faulted write error=ENOSPC:when=2 index --sign signer.key site
expect_rc 1
expect_err_has "cannot write site/index.json.sig (left as it was)"
cmp -s site/index.json index.saved || fail "a failed index changed it"
cmp -s site/index.json.sig sig.saved || fail "a failed index changed .sig"
only site hello.so index.json index.json.sig

# ---- keygen: the disk full while a key is written -----------------------
mkdir keys
faulted write error=ENOSPC:when=1 keygen keys/a
expect_rc 1
expect_err_has "cannot write keys/a.key: No space left on device"
only keys
faulted write error=ENOSPC:when=2 keygen keys/a
expect_rc 1
expect_err_has "cannot write keys/a.pub: No space left on device"
only keys      # the private key made first was removed again

# ---- keygen killed at its first link: nothing under the real names ------
faulted link,linkat signal=SIGKILL:when=1 keygen keys/b
expect_rc 137
left=(keys/b.key.tmp-*)
[[ ${#left[@]} == 1 && -f ${left[0]} ]] || fail "no temporary key file"
only keys "${left[0]#keys/}"
# A later run works; the private key's temporary copy goes once it is
# older than any live run's, not before.
mh keygen keys/b
expect_rc 0
[[ -f ${left[0]} ]] || fail "keygen removed another run's recent file"
touch -d '-11 minutes' "${left[0]}"
rm keys/b.key keys/b.pub
mh keygen keys/b
expect_rc 0
only keys b.key b.pub

# ---- keygen killed between its two files: the half pair is named --------
faulted link,linkat signal=SIGKILL:when=2 keygen keys/c
expect_rc 137
[[ -s keys/c.key && ! -e keys/c.pub ]] || fail "not a half pair"
mh keygen keys/c
expect_rc 1
expect_err_has "keys/c.key already exists, without keys/c.pub"
expect_err_has "openssl pkey -in keys/c.key -pubout -out keys/c.pub"
[[ ! -e keys/c.pub ]] || fail "a refused keygen wrote keys/c.pub"
# ... and the remedy it names gives the pair: what the key signs, the
# public key verifies.
openssl pkey -in keys/c.key -pubout -out keys/c.pub 2>/dev/null ||
    fail "openssl could not write the public key"
mh index --sign keys/c.key site
expect_rc 0
openssl pkeyutl -verify -pubin -inkey keys/c.pub -rawin \
    -in site/index.json -sigfile site/index.json.sig >/dev/null ||
    fail "keys/c.pub does not verify what keys/c.key signed"
