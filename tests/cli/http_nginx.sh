#!/usr/bin/env bash
# cli.http_nginx: a stock static server proves that nothing in the HTTP
# finder depends on the test server.  Debian's nginx, with a throwaway
# config, serves a directory `modhost index` prepared, on 127.0.0.1 and a
# free port only; `run` imports from it, revalidates against nginx's own
# ETag/Last-Modified (304), and after nginx stops runs from the cache with
# a warning; a module never downloaded then fails naming its URL.
set -euo pipefail
source "$(dirname "$0")/lib.sh.inc"

NGINX=/usr/sbin/nginx
[[ -x $NGINX ]] || fail "nginx is not installed (scripts/install-deps)"
command -v python3 >/dev/null || fail "python3 is not installed"

WWW=$T/www
cp -r "$PD" "$WWW"
mh index "$WWW"
expect_rc 0
[[ -f $WWW/index.json ]] || fail "modhost index wrote no index.json"

# A free loopback port (asked of the kernel; nginx binds it right after).
PORT=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
N=$T/nginx
mkdir -p "$N/tmp"
cat >"$N/nginx.conf" <<CONF
daemon off;
master_process off;
pid $N/nginx.pid;
error_log $N/error.log;
events {}
http {
    access_log $N/access.log;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    server {
        listen 127.0.0.1:$PORT;
        root $WWW;
    }
}
CONF
chmod -R a+rX "$T"

"$NGINX" -p "$N" -e "$N/error.log" -c "$N/nginx.conf" \
    >"$N/stdout" 2>&1 &
NGINX_PID=$!
stop_nginx() {
    if [[ -n ${NGINX_PID-} ]]; then
        kill "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        NGINX_PID=
    fi
}
trap 'stop_nginx; rm -rf "$T"' EXIT

up=
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        up=1
        break
    fi
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.1
done
[[ -n $up ]] || fail "nginx did not start: $(cat "$N/error.log" "$N/stdout" 2>/dev/null)"

URL=http://127.0.0.1:$PORT/
CACHE=$XDG_CACHE_HOME/modhost

mh -E -p "$URL" run hello alpha
expect_rc 0
expect_err_empty
expect_out "hello from the modhost plugin 'hello', args: alpha"
[[ -n $(find "$CACHE/blobs" -type f 2>/dev/null) ]] ||
    fail "nothing was cached under $CACHE/blobs"

mh -E -p "$URL" find hello
expect_rc 0
expect_out_line "finder: http"
expect_out_line "origin: ${URL}hello.so"

# Again, nginx still up: the index is revalidated (nginx answers 304 to
# its own validators) and the module comes from the cache.
mh -E -p "$URL" run hello beta
expect_rc 0
expect_out "hello from the modhost plugin 'hello', args: beta"
grep -q '"GET /index.json HTTP/1.1" 304 ' "$N/access.log" ||
    fail "no conditional request answered 304:"$'\n'"$(cat "$N/access.log")"
[[ $(grep -c '"GET /hello.so HTTP/1.1" 200 ' "$N/access.log") == 1 ]] ||
    fail "hello.so was downloaded more than once:"$'\n'"$(cat "$N/access.log")"
if grep -q ' 404 ' "$N/access.log"; then
    fail "nginx answered 404:"$'\n'"$(cat "$N/access.log")"
fi

stop_nginx
# Offline: the cached index and module, with a warning naming the entry.
mh -E -p "$URL" run hello gamma
expect_rc 0
expect_out "hello from the modhost plugin 'hello', args: gamma"
expect_err_has "127.0.0.1:$PORT"

# codecs.rot13 was never downloaded: it fails, naming its URL.
mh -E -p "$URL" run codecs.rot13 Hello
[[ $RC != 0 ]] || fail "a module never cached ran offline"
expect_out_empty
expect_err_prefixed
expect_err_has "${URL}codecs/rot13.so"
