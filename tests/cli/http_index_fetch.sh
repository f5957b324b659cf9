#!/usr/bin/env bash
# cli.http_index_fetch: a directory prepared by `index --sign` and served by
# a stock static server (python3 -m http.server, on 127.0.0.1 only) is a
# search path entry: `fetch` fills the cache and says so (no progress bar
# when stderr is not a terminal), the modules run, and after the server
# stops they still run from the cache.  A host that trusts another key
# refuses the index; a name no entry has exits 3.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

command -v python3 >/dev/null || fail "python3 is not installed"

D=$T/serve
cp -r "$PD" "$D"
# The native plugins only: bundled Lua modules are counted by the Lua tests.
find "$D" -name '*.lua' -delete
n=$(cd "$PD" && find . -name '*.so' | wc -l)
mkdir "$T/keys"
mh keygen "$T/keys/idx"
expect_rc 0
mh keygen "$T/keys/other"
expect_rc 0
mh index --sign "$T/keys/idx.key" "$D"
expect_rc 0

# The stock server on a free loopback port (it prints the port).  Its
# output file exists before the background job starts: the loop below may
# look before the job has opened it (set -e would stop at a failing sed).
: >"$T/server.out"
(cd "$D" && exec python3 -u -m http.server --bind 127.0.0.1 0) \
    >"$T/server.out" 2>"$T/server.err" &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$T"' EXIT
PORT=
for _ in $(seq 100); do
    PORT=$(sed -n 's/^Serving HTTP on 127\.0\.0\.1 port \([0-9]*\) .*/\1/p' \
           "$T/server.out")
    [[ -n $PORT ]] && break
    sleep 0.1
done
[[ -n $PORT ]] || fail "the HTTP server did not start: $(cat "$T/server.err")"
URL=http://127.0.0.1:$PORT/
CACHE=$XDG_CACHE_HOME/modhost

# Trusting another key: the index is refused, nothing is fetched.
MODHOST_TRUST=$T/keys/other.pub mh -p "$URL" fetch
expect_rc 1
expect_out_empty
expect_err_prefixed
[[ $(wc -l <"$T/.err") == 1 ]] || fail "the refusal is not said once: $ERR"
[[ -z $(find "$CACHE" -type f 2>/dev/null) ]] ||
    fail "an index signed by an untrusted key filled the cache"

# Trusting the signer: everything is fetched; stderr is a file, so no
# progress bar.
MODHOST_TRUST=$T/keys/idx.pub mh -p "$URL" fetch
expect_rc 0
expect_err_empty
expect_out "$n modules cached in $CACHE"

# A name no HTTP entry has: status 3; a named module alone: 1 module.
MODHOST_TRUST=$T/keys/idx.pub mh -p "$URL" fetch no_such.module
expect_rc 3
expect_err_prefixed
expect_err_has "no_such.module"
MODHOST_TRUST=$T/keys/idx.pub mh -p "$URL" fetch codecs.rot13
expect_rc 0
expect_out "1 module cached in $CACHE"

# Stop the server: the cache alone serves the modules ...
kill "$SERVER"
wait "$SERVER" 2>/dev/null || true
MODHOST_TRUST=$T/keys/idx.pub mh -p "$URL" run codecs.rot13 Hello
expect_rc 0
expect_out "Uryyb"
# ... and fetch says what the cache holds, not that it downloaded it.
MODHOST_TRUST=$T/keys/idx.pub mh -p "$URL" fetch
expect_rc 0
expect_out "$n modules cached in $CACHE"
expect_err_lacks "no HTTP(S) entry"

# No HTTP entry on the path: nothing failed, and a note says why nothing
# was fetched.
mh -p "$T" fetch
expect_rc 0
expect_out "0 modules cached in $CACHE"
expect_err_has "note: no HTTP(S) entry on the search path"
