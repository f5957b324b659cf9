#!/usr/bin/env python3
"""server.py -- the loopback HTTP server of the HTTP finder's tests.

    python3 server.py --root DIR [--log FILE] [--max-age N] [--mode-file F]
                      [--no-etag] [--tls CERT KEY]

Binds 127.0.0.1 on a free port (never any other address), prints the port
on the first line of stdout and serves DIR over HTTP/1.1 with keep-alive,
strong ETags (SHA-256 of the bytes sent), Last-Modified (the file's mtime)
and 304 answers to If-None-Match / If-Modified-Since.  --max-age N adds
"Cache-Control: max-age=N" to every 200 and 304 (none without it);
--no-etag leaves ETags out (Last-Modified alone validates).  With
--tls it speaks HTTPS with that certificate (to test that clients verify).
Python's standard library only.  The server exits on its own when the
process that started it goes away, so a crashed test never leaks it.

Every request is logged to --log as one flushed line:

    METHOD PATH STATUS HOST FLAGS

STATUS is the answer's code, "hang" for a request never answered; HOST is
the Host header; FLAGS is "-" or a comma list of: cond (the request was
conditional), gzip (the body was sent gzip-encoded), auth (the request
carried an Authorization header), proxy (the request line had an absolute
URL, as clients send to a proxy).

Behaviour is chosen by the first path segment, the MODE, so one server
serves every fault; the rest of the path names a file under DIR
(/ok/pkg/mod.so is DIR/pkg/mod.so).  A mode applies to every file;
MODE-mod (e.g. /trunc-mod/) applies it to module files only (anything but
index.json and index.json.sig, which are then served as under /ok/), and
MODE-sig (e.g. /500-sig/, /hang-sig/) applies it to index.json.sig only
(everything else is served as under /ok/).

  ok               serve the file (404 when absent, directories too)
  404, 500         answer that status
  408, 429         answer that status (429 with Retry-After: 1): passing
                   refusals, as a rate-limiting CDN sends
  hang             read the request, never answer
  garbled          answer with bytes that are no HTTP response, and close
                   (a server restarting, a broken balancer)
  drip             send the headers, then the body one byte a second
  trunc            Content-Length says N, send N/2 bytes and close
  big              a valid 200 of 64 MiB (zeros) with Content-Length
  endless          200 without Content-Length, zeros until the client
                   hangs up (close-delimited)
  endless-chunked  the same with chunked transfer encoding
  chunked          the real body, chunked (no Content-Length)
  gzip             gzip-encode when the request accepts gzip
  gzip-always      gzip-encode whatever the request says
  gzipbomb         a ~1 MiB gzip that inflates to 1 GiB of zeros,
                   Content-Encoding: gzip
  404page, 429page, 503page
                   that status with a 64 KiB HTML page (Content-Length),
                   as a CDN sends: larger than any signature
  503chunked       503 with a 64 KiB page, chunked (no Content-Length)
  503endless       503 with a chunked page that never ends, until the
                   client hangs up
  cc-split         the file, with "Cache-Control: no-cache" and
                   "Cache-Control: max-age=3600" on two header lines
  aged             the file, with "Cache-Control: max-age=3600" and
                   "Age: 3600" (a cache in between held it that long)
  cc-bare304       the file, with "Cache-Control: max-age=1" on a 200
                   and none on a 304 (which then keeps the 200's)
  redir-ctl        302 to /ok/x<ESC>[31mRED/REST (an escape sequence in
                   the Location)
  redir-same       302 to /ok/REST (same origin)
  redir-other      302 to http://localhost:PORT/ok/REST (same server,
                   another host name: another origin)
  redir-to-P       302 to http://127.0.0.1:P/ok/REST (another port)
  redir-404        302 to /404/REST (same origin, which answers 404)
  redir-loop       302 to the request's own path
  redir-slow       the same, each answer 0.4 s late
  redir-userinfo   302 to http://bob:hunter2@HOST/ok/REST (the same
                   origin, with a user name and password)
  redir-userinfo-n the same, each Location another: .../ok/N/<3000 x>/REST
                   with N counting the requests
  tamper           index.json as is, module bodies with one byte flipped
                   (always module-only)
  badsig           index.json.sig with one byte flipped
  badsig-once      the same for the first request of index.json.sig only,
                   then the real one (a client caught between the renames
                   of a publish)
  switch           whatever mode the --mode-file names (first line; "ok"
                   when the file is absent), read on every request, so a
                   test can turn one URL from good to bad and back
  badindex-KIND    index.json replaced by a broken variant made from
                   DIR/index.json; module files served normally.  KIND:
                     malformed      not JSON
                     truncated      the first half of the real index
                     empty          zero bytes
                     trailing       the real index followed by garbage
                     nested         100000 '['
                     nested-obj     100000 '{"a":'
                     toplevel       an array instead of an object
                     format-string  "format": "1"
                     format-2       "format": 2 (unknown version)
                     serial-string  "serial": "5"
                     serial-zero    "serial": 0
                     serial-frac    "serial": 1.5
                     serial-huge    "serial": 2^53 + 2 (past exact)
                     modules-object "modules": {}
                     module-string  a module entry that is a string
                     name-number    a module's "name": 5
                     name-bad       a module's "name": "../evil"
                     size-string    a module's "size": "123"
                     size-negative  a module's "size": -1
                     size-huge      a module's "size": 1e300
                     dup            a module's entry twice
                     sha-short      a module's "sha256": "abcd"
                     sha-nonhex     a module's "sha256": 64 'z'
                     no-sha         a module without "sha256"
                     path-dotdot    a module's "path": "../x.so"
                     path-abs       a module's "path": "/etc/x.so"
                     path-pct       a module's "path": "a/%2e%2e/x.so"
                     path-other     a module's "path": another module's
                     path-backslash a module's "path": "..\\x.so"
                   The altered module is the one named "counter" if there
                   is one, else the first.
  badsize          index.json with one module's size off by one (its
                   hash still right); otherwise like ok
  badsize-less     the same, the size one byte short of the file's
"""
import argparse
import email.utils
import gzip
import hashlib
import itertools
import json
import os
import select
import socket
import socketserver
import ssl
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, HTTPServer

ARGS = None
LOG = None
LOG_LOCK = threading.Lock()
BIG_SIZE = 64 * 1024 * 1024
CHUNK = 64 * 1024
INDEX_FILES = ("index.json", "index.json.sig")

MODES = {"ok", "404", "500", "408", "429", "hang", "drip", "trunc", "big", "endless",
         "endless-chunked", "chunked", "gzip", "gzip-always", "gzipbomb",
         "redir-same", "redir-other", "redir-loop", "redir-slow",
         "redir-userinfo",
         "redir-404",
         "redir-userinfo-n",
         "tamper", "badsig", "badsig-once", "garbled",
         "badsize", "badsize-less", "404page", "429page", "503page", "503chunked",
         "503endless", "cc-split", "aged", "cc-bare304", "redir-ctl"}
PAGE = b"<html><body>" + b"x" * 65536 + b"</body></html>"

_redirects = itertools.count()
_sig_requests = itertools.count()
_bomb = None
_bomb_lock = threading.Lock()


def gzip_bomb():
    """A gzip member holding 1 GiB of zeros, built in well under a second:
    after a full flush deflate's state is reset, so every further MiB of
    zeros compresses to the same bytes, which are repeated."""
    global _bomb
    with _bomb_lock:
        if _bomb is None:
            mib = bytes(1 << 20)
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            first = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
            rep = c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH)
            assert c.compress(mib) + c.flush(zlib.Z_FULL_FLUSH) == rep
            last = c.flush(zlib.Z_FINISH)
            crc = 0
            for _ in range(1024):
                crc = zlib.crc32(mib, crc)
            header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
            trailer = crc.to_bytes(4, "little") + (0).to_bytes(4, "little")
            _bomb = b"".join([header, first, rep * 1023, last, trailer])
    return _bomb


def log_line(line):
    if LOG is None:
        return
    with LOG_LOCK:
        LOG.write(line + "\n")
        LOG.flush()


def httpdate(t):
    return email.utils.formatdate(t, usegmt=True)


def altered_index(kind, raw):
    """The broken index.json variant KIND, made from the real bytes."""
    if kind == "malformed":
        return b'{"format": 1, "modules": [ {"name": "counter", ] '
    if kind == "truncated":
        return raw[: len(raw) // 2]
    if kind == "empty":
        return b""
    if kind == "trailing":
        return raw + b'\n{"format": 1} garbage'
    if kind == "nested":
        return b"[" * 100000
    if kind == "nested-obj":
        return b'{"a":' * 100000
    doc = json.loads(raw)
    if kind == "toplevel":
        return json.dumps([doc]).encode()
    if kind == "format-string":
        doc["format"] = "1"
        return json.dumps(doc).encode()
    if kind == "format-2":
        doc["format"] = 2
        return json.dumps(doc).encode()
    serials = {"serial-string": "5", "serial-zero": 0, "serial-frac": 1.5,
               "serial-huge": 2 ** 53 + 2}
    if kind in serials:
        doc["serial"] = serials[kind]
        return json.dumps(doc).encode()
    if kind == "modules-object":
        doc["modules"] = {m["name"]: m for m in doc["modules"]}
        return json.dumps(doc).encode()
    mods = doc["modules"]
    target = next((m for m in mods if m.get("name") == "counter"), mods[0])
    if kind == "module-string":
        mods[mods.index(target)] = "counter.so"
        return json.dumps(doc).encode()
    if kind == "size-huge":
        # json.dumps cannot write 1e300 as a number of an int field: splice
        text = json.dumps(doc)
        return text.replace('"size": %d' % target["size"], '"size": 1e300',
                            1).encode()
    changes = {
        "name-number": ("name", 5),
        "name-bad": ("name", "../evil"),
        "size-string": ("size", str(target.get("size"))),
        "size-negative": ("size", -1),
        "sha-short": ("sha256", "abcd"),
        "sha-nonhex": ("sha256", "z" * 64),
        "path-dotdot": ("path", "../x.so"),
        "path-abs": ("path", "/etc/x.so"),
        "path-pct": ("path", "a/%2e%2e/x.so"),
        "path-backslash": ("path", "..\\x.so"),
    }
    if kind == "no-sha":
        target.pop("sha256", None)
    elif kind == "dup":
        mods.append(dict(target))
    elif kind == "path-other":
        other = next((m for m in mods if m is not target), None)
        target["path"] = other["path"] if other else "other.so"
    elif kind in changes:
        key, value = changes[kind]
        target[key] = value
    else:
        raise KeyError(kind)
    return json.dumps(doc).encode()


def size_off_by(raw, delta):
    doc = json.loads(raw)
    mods = doc["modules"]
    target = next((m for m in mods if m.get("name") == "counter"), mods[0])
    target["size"] += delta
    return json.dumps(doc).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "modhost-test-server/1"

    def log_message(self, fmt, *args):  # quiet on stderr
        pass

    # ----------------------------------------------------------- helpers

    def flags(self, extra=()):
        f = list(extra)
        if self.headers.get("If-None-Match") or \
                self.headers.get("If-Modified-Since"):
            f.append("cond")
        if self.headers.get("Authorization"):
            f.append("auth")
        if self.proxied:
            f.append("proxy")
        return ",".join(f) if f else "-"

    def log_req(self, status, extra=()):
        log_line("%s %s %s %s %s" % (self.command, self.path_only, status,
                                     self.headers.get("Host", "-"),
                                     self.flags(extra)))

    def send_simple(self, code, body=b"", headers=(), extra=()):
        self.log_req(code, extra)
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def cache_headers(self):
        h = []
        if ARGS.max_age is not None:
            h.append(("Cache-Control", "max-age=%d" % ARGS.max_age))
        return h

    def write_safe(self, data):
        try:
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
            return False

    def client_gone(self, wait):
        """Wait up to `wait` seconds; True once the client has hung up."""
        try:
            r, _, _ = select.select([self.connection], [], [], wait)
            if r:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True
        return False

    # ----------------------------------------------------------- request

    def do_HEAD(self):
        self.handle_request()

    def do_GET(self):
        self.handle_request()

    def handle_request(self):
        path = self.path
        self.proxied = False
        if path.startswith("http://") or path.startswith("https://"):
            # absolute form, as sent to a proxy: serve it as the origin
            self.proxied = True
            rest = path.split("://", 1)[1]
            path = "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        path = path.split("?", 1)[0].split("#", 1)[0]
        self.path_only = self.path if self.proxied else path
        parts = path.lstrip("/").split("/", 1)
        mode = parts[0]
        rest = parts[1] if len(parts) > 1 else ""
        if mode == "switch":
            mode = "ok"
            if ARGS.mode_file and os.path.exists(ARGS.mode_file):
                with open(ARGS.mode_file) as f:
                    mode = (f.readline().strip() or "ok")
        module_only = False
        if mode.endswith("-mod") and mode != "-mod":
            mode = mode[:-4]
            module_only = True
        if mode.endswith("-sig") and mode != "-sig":
            mode = mode[:-4]
            if rest != "index.json.sig":
                return self.serve_file(rest)
        is_index = rest in INDEX_FILES
        if mode == "tamper":
            module_only = True
        if mode.startswith("badindex-"):
            return self.serve_badindex(mode[len("badindex-"):], rest)
        if mode.startswith("redir-to-") and mode[9:].isdigit():
            port = int(mode[9:])
            mode = "redir-to"
        elif mode not in MODES:
            return self.send_simple(404, b"unknown mode\n")
        if (module_only and is_index) or mode == "ok":
            return self.serve_file(rest)
        if mode == "badsig":
            return self.serve_file(rest, flip=rest == "index.json.sig")
        if mode == "badsig-once":
            return self.serve_file(rest, flip=rest == "index.json.sig" and
                                   next(_sig_requests) == 0)
        if mode in ("badsize", "badsize-less"):
            if rest == "index.json":
                delta = 1 if mode == "badsize" else -1
                return self.serve_file(
                    rest, transform=lambda raw: size_off_by(raw, delta))
            return self.serve_file(rest)
        if mode == "tamper":
            return self.serve_file(rest, flip=True)
        if mode == "404":
            return self.send_simple(404, b"not found (test)\n")
        if mode == "500":
            return self.send_simple(500, b"server error (test)\n")
        if mode == "408":
            return self.send_simple(408, b"request timeout (test)\n")
        if mode == "429":
            return self.send_simple(429, b"too many requests (test)\n",
                                    headers=(("Retry-After", "1"),))
        if mode in ("404page", "429page", "503page"):
            return self.send_simple(int(mode[:3]), PAGE,
                                    headers=(("Content-Type", "text/html"),
                                             ("Retry-After", "1")))
        if mode == "503chunked":
            return self.stream(len(PAGE), chunked=True, status=503)
        if mode == "503endless":
            return self.stream(None, chunked=True, status=503)
        if mode == "redir-ctl":
            return self.redirect("/ok/x\x1b[31mRED/" + rest)
        if mode == "redir-same":
            return self.redirect("/ok/" + rest)
        if mode == "redir-404":
            return self.redirect("/404/" + rest)
        if mode == "redir-other":
            return self.redirect("http://localhost:%d/ok/%s"
                                 % (self.server.server_address[1], rest))
        if mode == "redir-to":
            return self.redirect("http://127.0.0.1:%d/ok/%s" % (port, rest))
        if mode == "redir-loop":
            return self.redirect(path)
        if mode == "redir-slow":
            time.sleep(0.4)
            return self.redirect(path)
        if mode == "redir-userinfo":
            return self.redirect("http://bob:hunter2@%s/ok/%s"
                                 % (self.headers.get("Host"), rest))
        if mode == "redir-userinfo-n":
            return self.redirect("http://bob:hunter2@%s/ok/%d/%s/%s"
                                 % (self.headers.get("Host"),
                                    next(_redirects), "x" * 3000, rest))
        if mode == "hang":
            return self.hang()
        if mode == "garbled":
            self.log_req("garbled")
            self.close_connection = True
            self.write_safe(b"\x00\x01garbage, not HTTP\r\n\r\n")
            return
        if mode == "big":
            return self.stream(BIG_SIZE)
        if mode == "endless":
            return self.stream(None)
        if mode == "endless-chunked":
            return self.stream(None, chunked=True)
        if mode == "gzipbomb":
            return self.send_simple(
                200, b"" if self.command == "HEAD" else gzip_bomb(),
                [("Content-Encoding", "gzip"),
                 ("Content-Type", "application/octet-stream")], ["gzip"])
        return self.serve_file(rest, special=mode)

    def serve_badindex(self, kind, rest):
        if rest != "index.json":
            return self.serve_file(rest)
        try:
            return self.serve_file(rest,
                                   transform=lambda raw: altered_index(kind,
                                                                       raw))
        except KeyError:
            return self.send_simple(404, b"unknown badindex kind\n")

    def redirect(self, location):
        self.send_simple(302, b"", [("Location", location)])

    def hang(self):
        self.log_req("hang")
        self.close_connection = True
        while not self.client_gone(1.0):
            pass

    def stream(self, size, chunked=False, status=200):
        """size bytes of zeros (None: until the client hangs up); chunked
        sends them so even when size is known."""
        self.log_req(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if size is not None and not chunked:
            self.send_header("Content-Length", str(size))
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command == "HEAD":
            return
        zeros = bytes(CHUNK)
        sent = 0
        while size is None or sent < size:
            n = CHUNK if size is None else min(CHUNK, size - sent)
            data = zeros[:n]
            if chunked:
                data = b"%x\r\n%s\r\n" % (n, data)
            if not self.write_safe(data):
                return
            sent += n
        if chunked:
            self.write_safe(b"0\r\n\r\n")

    def serve_file(self, rest, flip=False, transform=None, special=None):
        root = os.path.realpath(ARGS.root)
        full = os.path.realpath(os.path.join(root, rest))
        if not rest or not (full + "/").startswith(root + "/") or \
                not os.path.isfile(full):
            return self.send_simple(404, b"no such file\n",
                                    self.cache_headers())
        with open(full, "rb") as f:
            body = f.read()
        mtime = os.stat(full).st_mtime
        if transform is not None:
            body = transform(body)
        if flip and body:
            b = bytearray(body)
            b[len(b) // 2] ^= 0x5A
            body = bytes(b)
        extra = []
        encoding = None
        if special == "gzip-always" or (
                special == "gzip" and
                "gzip" in self.headers.get("Accept-Encoding", "")):
            body = gzip.compress(body, mtime=0)
            encoding = "gzip"
            extra.append("gzip")
        etag = '"%s%s"' % (hashlib.sha256(body).hexdigest()[:32],
                           "-gz" if encoding else "")
        headers = [("Last-Modified", httpdate(mtime))]
        if ARGS.no_etag:
            etag = None
        else:
            headers.append(("ETag", etag))
        if special == "cc-split":
            headers += [("Cache-Control", "no-cache"),
                        ("Cache-Control", "max-age=3600")]
        elif special == "aged":
            headers += [("Cache-Control", "max-age=3600"), ("Age", "3600")]
        elif special == "cc-bare304":
            pass  # max-age=1 on a 200 only, below
        else:
            headers += self.cache_headers()
        if encoding:
            headers.append(("Content-Encoding", encoding))
            headers.append(("Vary", "Accept-Encoding"))
        if self.not_modified(etag, mtime):
            self.log_req(304, extra)
            self.send_response(304)
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            return
        if special == "cc-bare304":
            headers.append(("Cache-Control", "max-age=1"))
        if special == "drip":
            return self.drip(body, headers)
        if special == "trunc":
            return self.trunc(body, headers)
        if special == "chunked":
            return self.chunked(body, headers)
        headers.append(("Content-Type", "application/octet-stream"))
        self.send_simple(200, body, headers, extra)

    def not_modified(self, etag, mtime):
        inm = self.headers.get("If-None-Match")
        if inm is not None and etag is not None:
            tags = [t.strip() for t in inm.split(",")]
            return "*" in tags or etag in tags or ("W/" + etag) in tags
        ims = self.headers.get("If-Modified-Since")
        if ims is not None:
            try:
                t = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError, IndexError):
                return False
            return int(mtime) <= t
        return False

    def drip(self, body, headers):
        self.log_req(200)
        self.send_response(200)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not self.write_safe(b""):
            return
        for i in range(len(body)):
            if not self.write_safe(body[i:i + 1]) or self.client_gone(1.0):
                self.close_connection = True
                return

    def trunc(self, body, headers):
        self.log_req(200)
        self.send_response(200)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.write_safe(body[: len(body) // 2])
        self.close_connection = True

    def chunked(self, body, headers):
        self.log_req(200)
        self.send_response(200)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(body), 1000):
            piece = body[i:i + 1000]
            if not self.write_safe(b"%x\r\n%s\r\n" % (len(piece), piece)):
                return
        self.write_safe(b"0\r\n\r\n")


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        # Clients that hang up mid-answer are what the tests are about.
        if not isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLError)):
            super().handle_error(request, client_address)


def watch_parent(ppid):
    """Exit when the test that started us is gone (PR_SET_PDEATHSIG in the
    C helper does the same; this also covers other launchers)."""
    while True:
        if os.getppid() != ppid:
            os._exit(0)
        time.sleep(0.5)


def main():
    global ARGS, LOG
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--log")
    p.add_argument("--max-age", type=int)
    p.add_argument("--mode-file")
    p.add_argument("--no-etag", action="store_true")
    p.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ARGS = p.parse_args()
    if ARGS.log:
        LOG = open(ARGS.log, "a", buffering=1)
    httpd = Server(("127.0.0.1", 0), Handler)
    if ARGS.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls[0], ARGS.tls[1])
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=watch_parent, args=(os.getppid(),),
                     daemon=True).start()
    sys.stdout.write("%d\n" % httpd.server_address[1])
    sys.stdout.flush()
    # Nothing else goes to stdout: the starter may close its end.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
