"""--compress on app, CGI and WSGI responses (docs/static.md, "App, CGI and
WSGI responses"): gzip-coded as they stream when the client accepts gzip and
the response allows it (a text type, no Content-Encoding of its own, no
Cache-Control: no-transform, not a HEAD, no Range, not tiny); decoded, the
body is the one sent without --compress; a streamed CGI body arrives
progressively (each piece flushed); keep-alive holds after a coded stream;
the access log counts the coded bytes; --compress-gateways off turns it off.
In the event model and one blocking model."""
import gzip
import http.client
import os
import re
import shutil
import socket
import time
import zlib

import pytest

from conftest import BUILD, REPO, wait_until

ECHO = os.path.join(BUILD, "echo.so")
ENVIRON = os.path.join(BUILD, "environ.so")
WSGI_SO = os.path.join(BUILD, "wsgi.so")
SLOW = os.path.join(REPO, "tests", "cgi-bin", "slow.py")
LSAN = {"LSAN_OPTIONS": "suppressions=" + os.path.join(REPO, "tests", "lsan-python.supp")
        + ":print_suppressions=0"}

TEXT = b"".join(b"line %d of a text body worth compressing\n" % i for i in range(400))

# A CGI script: QUERY_STRING names extra header lines (a=no-transform,
# a=coded, a=html, a=png, a=tiny, a=len: a Content-Length of its own).
CGI = r'''#!/usr/bin/python3
import os, sys
q = os.environ.get("QUERY_STRING", "")
body = b"".join(b"line %d of a text body worth compressing\n" % i for i in range(400))
head = ["Content-Type: text/plain"]
if "png" in q: head = ["Content-Type: image/png"]
if "html" in q: head = ["Content-Type: text/html; charset=utf-8"]
if "no-transform" in q: head.append("Cache-Control: public, no-transform")
if "coded" in q: head.append("Content-Encoding: x-mine")
if "tiny" in q: body = b"tiny\n"
if "len" in q: head.append("Content-Length: %d" % len(body))
if "vary" in q: head.append("Vary: Cookie")
out = sys.stdout.buffer
out.write(("\r\n".join(head) + "\r\n\r\n").encode())
out.write(body)
'''

WSGI = r'''
import os
BODY = b"".join(b"line %d of a text body worth compressing\n" % i for i in range(400))
def app(environ, start_response):
    q = environ.get("QUERY_STRING", "")
    h = [("Content-Type", "text/plain; charset=utf-8")]
    if "no-transform" in q: h.append(("Cache-Control", "no-transform"))
    if "coded" in q: h.append(("Content-Encoding", "x-mine"))
    if "stream" in q:  # pieces, no length
        start_response("200 OK", h)
        return (BODY[i:i + 1000] for i in range(0, len(BODY), 1000))
    if "file" in q:
        path = os.path.join(os.environ["GW_DIR"], "body.txt")
        h.append(("Content-Length", str(os.path.getsize(path))))
        start_response("200 OK", h)
        return environ["wsgi.file_wrapper"](open(path, "rb"), 4096)
    h.append(("Content-Length", str(len(BODY))))
    start_response("200 OK", h)
    return [BODY]
'''


def ungzip(data):
    return gzip.decompress(data)


@pytest.fixture
def gw(tmp_path):
    cgi = tmp_path / "cgi"
    cgi.mkdir()
    (cgi / "t.py").write_text(CGI)
    os.chmod(cgi / "t.py", 0o755)
    shutil.copy(SLOW, cgi / "slow.py")
    (tmp_path / "gwtest.py").write_text(WSGI)
    (tmp_path / "body.txt").write_bytes(TEXT)
    return tmp_path


def serve(start_server, gw, *args, model="event"):
    a = ["--cgi", f"/cgi={gw / 'cgi'}", "--app", f"/echo={ECHO}:app",
         "--app", f"/env={ENVIRON}:app", "--access-log", str(gw / "access.log")]
    env = dict(LSAN, GW_DIR=str(gw))
    if os.path.exists(WSGI_SO):
        a += ["--pythonpath", str(gw), "--wsgi", "/w=gwtest:app"]
    return start_server(*a, *args, model=model, env=env, root=gw)


def get(s, path, headers=None, method="GET", conn=None, body=None, http10=False):
    c = conn or http.client.HTTPConnection("127.0.0.1", s.port, timeout=15)
    if http10:
        c._http_vsn, c._http_vsn_str = 10, "HTTP/1.0"
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r, data


def fields(echoed):
    return [l for l in echoed.splitlines() if not l.startswith(b"Host:")]


GZ = {"Accept-Encoding": "gzip, deflate, br"}
PAD = {"X-Pad": "p" * 600}  # echo's body (the request's fields) is worth compressing


def paths():
    p = [("/cgi/t.py", {}), ("/cgi/t.py?len", {}), ("/cgi/t.py?html", {}),
         ("/echo/x", PAD), ("/env/stream?n=300", {})]
    if os.path.exists(WSGI_SO):
        p += [("/w/x", {}), ("/w/x?stream", {}), ("/w/x?file", {})]
    return p


@pytest.mark.parametrize("model", ["event", "prefork"])
def test_coded_when_accepted(start_server, gw, model):
    plain = serve(start_server, gw, model=model)
    want = {}
    for path, h in paths():
        r, body = get(plain, path, {**h, **GZ})  # no --compress: never coded
        assert r.status == 200 and r.getheader("Content-Encoding") is None, path
        assert r.getheader("Vary") is None, path
        want[path] = body
    s = serve(start_server, gw, "--compress", model=model)
    for path, h in paths():
        r, body = get(s, path, {**h, **GZ})
        assert r.status == 200, path
        assert r.getheader("Content-Encoding") == "gzip", path
        assert "Accept-Encoding" in r.getheader("Vary"), path
        assert r.getheader("Content-Length") is None, path
        assert r.getheader("Transfer-Encoding") == "chunked", path
        assert len(body) < len(want[path]), path
        decoded = ungzip(body)
        if path.startswith("/echo"):  # the request's own fields come back (but Host's port)
            assert fields(decoded) == fields(want[path]), path
        else:
            assert decoded == want[path], path
        # a client that accepts no gzip: as it is, with Vary
        for ae in ({"Accept-Encoding": "identity"}, {"Accept-Encoding": "br"}, {},
                   {"Accept-Encoding": "gzip;q=0"}):
            r, body = get(s, path, {**h, **ae})
            assert r.getheader("Content-Encoding") is None, (path, ae)
            assert "Accept-Encoding" in r.getheader("Vary"), path
            if not path.startswith("/echo"):
                assert body == want[path], (path, ae)
    # HTTP/1.0: close-delimited
    r, body = get(s, "/cgi/t.py?len", GZ, http10=True)
    assert r.getheader("Content-Encoding") == "gzip" and r.getheader("Content-Length") is None
    assert r.getheader("Transfer-Encoding") is None and ungzip(body) == TEXT


def test_not_coded_when_not_allowed(start_server, gw):
    s = serve(start_server, gw, "--compress")
    wsgi = os.path.exists(WSGI_SO)
    # no-transform, a Content-Encoding of its own, not a text type, tiny
    for path in ["/cgi/t.py?no-transform", "/cgi/t.py?png", "/cgi/t.py?tiny&len"] + \
            (["/w/x?no-transform", "/w/x?stream&no-transform"] if wsgi else []):
        r, body = get(s, path, GZ)
        assert r.status == 200 and r.getheader("Content-Encoding") is None, path
        assert "tiny" in path or body == TEXT or path.endswith("png"), path
    for path in ["/cgi/t.py?coded"] + (["/w/x?coded"] if wsgi else []):
        r, body = get(s, path, GZ)
        assert r.getheader("Content-Encoding") == "x-mine" and body == TEXT, path
    # an app's own Vary is kept, Accept-Encoding added
    r, body = get(s, "/cgi/t.py?vary", GZ)
    assert r.getheader("Content-Encoding") == "gzip" and ungzip(body) == TEXT
    assert r.getheader("Vary") == "Cookie, Accept-Encoding"
    # HEAD: the plain head (its Content-Length), no body
    r, body = get(s, "/cgi/t.py?len", GZ, method="HEAD")
    assert r.getheader("Content-Encoding") is None and body == b""
    assert r.getheader("Content-Length") == str(len(TEXT))
    # a request with Range: not coded (gateways send the whole body)
    r, body = get(s, "/cgi/t.py?len", {**GZ, "Range": "bytes=0-9"})
    assert r.getheader("Content-Encoding") is None and body == TEXT
    # static files keep their own rules (a cached variant, Content-Length)
    r, body = get(s, "/body.txt", GZ)
    assert r.getheader("Content-Encoding") == "br" and r.getheader("Content-Length")
    # --compress-gateways off: static only
    off = serve(start_server, gw, "--compress", "--compress-gateways", "off")
    r, body = get(off, "/cgi/t.py", GZ)
    assert r.getheader("Content-Encoding") is None and body == TEXT
    assert get(off, "/body.txt", GZ)[0].getheader("Content-Encoding") == "br"


def read_head(sock):
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(65536)
        assert b, buf
        buf += b
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode(), rest


def read_chunk(sock, buf):
    """One chunk's data from the socket (buf: bytes already read); (data, rest)."""
    while b"\r\n" not in buf:
        b = sock.recv(65536)
        assert b
        buf += b
    line, buf = buf.split(b"\r\n", 1)
    n = int(line, 16)
    while len(buf) < n + 2:
        b = sock.recv(65536)
        assert b
        buf += b
    return buf[:n], buf[n + 2:]


@pytest.mark.parametrize("model", ["event", "fork"])
def test_streamed_progressively_then_keepalive(start_server, gw, model):
    s = serve(start_server, gw, "--compress", model=model)
    flag = gw / "go"
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=15)
    try:
        sock.sendall(b"GET /cgi/slow.py?%s HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
                     % str(flag).encode())
        head, buf = read_head(sock)
        assert "Content-Encoding: gzip" in head and "Transfer-Encoding: chunked" in head
        d = zlib.decompressobj(31)
        got = b""
        while b"first line\n" not in got:  # before the script may finish
            data, buf = read_chunk(sock, buf)
            assert data, "the body ended before the script was let go"
            got += d.decompress(data)
        assert got == b"first line\n" and not flag.exists()
        flag.write_text("go")
        while True:
            data, buf = read_chunk(sock, buf)
            if not data:
                break
            got += d.decompress(data)
        assert got + d.flush() == b"first line\nlast line\n" and d.eof
        assert buf == b""
        # the same connection: a second (coded) answer
        sock.sendall(b"GET /cgi/t.py HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
                     b"Connection: close\r\n\r\n")
        head, buf = read_head(sock)
        assert head.startswith("HTTP/1.1 200") and "Content-Encoding: gzip" in head
        body = b""
        while True:
            data, buf = read_chunk(sock, buf)
            if not data:
                break
            body += data
        assert ungzip(body) == TEXT
    finally:
        sock.close()


def test_access_log_counts_coded_bytes(start_server, gw):
    s = serve(start_server, gw, "--compress")
    r, body = get(s, "/cgi/t.py?len", GZ)
    assert r.getheader("Content-Encoding") == "gzip"
    log = gw / "access.log"
    line = wait_until(lambda: log.exists() and [l for l in log.read_text().splitlines()
                                                 if "/cgi/t.py?len" in l])
    assert line, "no access log line"
    m = re.search(r'" 200 (\d+)', line[-1])
    assert m and int(m.group(1)) == len(body) < len(TEXT), line[-1]


def test_client_gone_mid_stream(start_server, gw):
    """A client that leaves while a coded stream waits: the stream is freed,
    the script stopped (the fixture checks no process is left, and the
    sanitizer build that nothing leaks)."""
    s = serve(start_server, gw, "--compress")
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=15)
        sock.sendall(b"GET /cgi/slow.py?%s HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
                     % str(gw / "never").encode())
        head, _ = read_head(sock)
        assert "Content-Encoding: gzip" in head
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # a reset
    time.sleep(0.3)
    r, body = get(s, "/cgi/t.py", GZ)
    assert ungzip(body) == TEXT
