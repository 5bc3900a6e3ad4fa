"""HTTP/1.1 behaviour on the wire, in every model: persistence, pipelining,
bodies, strict parsing, limits, timeouts, the access log."""
import http.client
import re
import select
import socket
import time

import pytest

from conftest import raw, status_of, wait_until

GET_HELLO = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"


def read_response(sock, buf=b""):
    """Read one response with a Content-Length body from sock; returns
    (status, headers dict, body, leftover)."""
    while b"\r\n\r\n" not in buf:
        b = sock.recv(65536)
        if not b:
            raise EOFError(buf)
        buf += b
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for l in lines[1:]:
        k, v = l.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        b = sock.recv(65536)
        if not b:
            raise EOFError(rest)
        rest += b
    return status, headers, rest[:n], rest[n:]


def test_keep_alive_many_requests(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
    for _ in range(50):
        c.request("GET", "/hello")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"Hello, World!\n"
        assert r.getheader("Connection") is None
    c.close()


def test_connection_close_and_http10(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    resp = raw(s, b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", shut=False)
    assert b"Connection: close" in resp and resp.endswith(b"Hello, World!\n")
    # HTTP/1.0 closes by default; no Host needed
    resp = raw(s, b"GET /hello HTTP/1.0\r\n\r\n", shut=False)
    assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"Hello, World!\n")
    # HTTP/1.0 keep-alive is honoured and echoed
    sock = s.connect()
    sock.sendall(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    st, h, body, rest = read_response(sock)
    assert h.get("connection") == "keep-alive"
    sock.sendall(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    st, h, body, rest = read_response(sock, rest)
    assert st == 200 and body == b"Hello, World!\n"
    sock.close()


def test_pipelining_in_order(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    sock = s.connect()
    paths = ["/hello", "/style.css", "/missing", "/hello", "/sub/"] * 20
    sock.sendall(b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in paths))
    rest = b""
    for p in paths:
        st, h, body, rest = read_response(sock, rest)
        expect = {"/hello": 200, "/style.css": 200, "/missing": 404, "/sub/": 200}[p]
        assert st == expect, p
        if p == "/hello":
            assert body == b"Hello, World!\n"
    sock.close()


def test_pipelining_byte_by_byte(start_server, docroot):
    s = start_server(model="event", root=docroot)
    sock = s.connect()
    data = GET_HELLO * 3
    for i in range(len(data)):
        sock.send(data[i : i + 1])
    rest = b""
    for _ in range(3):
        st, h, body, rest = read_response(sock, rest)
        assert st == 200 and body == b"Hello, World!\n"
    sock.close()


def test_request_bodies_keep_connection_in_sync(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    sock = s.connect()
    reqs = (
        b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde"
        + b"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: x\r\n\r\n"
        + GET_HELLO
    )
    sock.sendall(reqs)
    st, h, body, rest = read_response(sock)
    assert st == 405
    st, h, body, rest = read_response(sock, rest)
    assert st == 405
    st, h, body, rest = read_response(sock, rest)
    assert st == 200 and body == b"Hello, World!\n"
    sock.close()


def test_large_body_discarded(start_server, docroot, model):
    s = start_server("--max-body", 4 << 20, model=model, root=docroot)
    sock = s.connect()
    body = b"x" * (3 << 20)
    sock.sendall(b"PUT /hello HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
    sock.sendall(body)
    sock.sendall(GET_HELLO)
    st, h, b, rest = read_response(sock)
    assert st == 405
    st, h, b, rest = read_response(sock, rest)
    assert st == 200
    sock.close()


def test_body_limits(start_server, docroot, model):
    s = start_server("--max-body", 100, model=model, root=docroot)
    resp = raw(s, b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + b"x" * 101)
    assert status_of(resp) == 413 and b"Connection: close" in resp
    chunked = b"POST /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunked += b"40\r\n" + b"y" * 64 + b"\r\n" + b"40\r\n" + b"y" * 64 + b"\r\n0\r\n\r\n"
    resp = raw(s, chunked)
    assert status_of(resp) == 413


def test_expect_continue(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    # static does not want the body: a final answer at once, and the connection closes
    sock = s.connect()
    sock.sendall(b"PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
    st, h, body, rest = read_response(sock)
    assert st == 405 and h.get("connection") == "close"
    sock.close()


MALFORMED = [
    (b"GET /hello HTTP/1.1\r\n\r\n", 400),  # no Host in 1.1
    (b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET /hello HTTP/1.1\nHost: x\n\n", 400),  # bare LF
    (b"GET /hello HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", 400),  # bare CR
    (b"GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", 400),  # space before colon
    (b"GET /hello HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", 400),  # obs-fold
    (b"GET /hello HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),  # NUL
    (b"GET /hello HTTP/1.1\r\nHost: x\r\nX(y): z\r\n\r\n", 400),  # bad token
    (b"GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /hello http/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET /hello HTTP/0.9\r\nHost: x\r\n\r\n", 505),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nx", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\nx", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 400),
    (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET example.com:80 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET http://u@h/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # TLS to a plain port
]


@pytest.mark.parametrize("req,status", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed(start_server, docroot, req, status):
    s = start_server(model="event", root=docroot)
    resp = raw(s, req, shut=False, timeout=5)
    assert status_of(resp) == status, resp[:200]
    assert b"Connection: close" in resp
    # the server goes on serving
    assert raw(s, GET_HELLO.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")).endswith(b"Hello, World!\n")


def test_malformed_every_model(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    for req, status in MALFORMED[:12]:
        resp = raw(s, req, shut=False, timeout=5)
        assert status_of(resp) == status, (req, resp[:200])


def test_absolute_form(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    resp = raw(s, b"GET http://example.com/hello HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n")
    assert status_of(resp) == 200 and resp.endswith(b"Hello, World!\n")


def test_limits(start_server, docroot, model):
    s = start_server("--max-line", 1024, "--max-header-size", 4096, "--max-headers", 20,
                     model=model, root=docroot)
    resp = raw(s, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", shut=False)
    assert status_of(resp) == 414
    resp = raw(s, b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 5000 + b"\r\n\r\n", shut=False)
    assert status_of(resp) == 431
    many = b"".join(b"X%d: y\r\n" % i for i in range(30))
    resp = raw(s, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n", shut=False)
    assert status_of(resp) == 431


def test_million_byte_request_line(start_server, docroot):
    """The 414 must reach the client, not a silent close or a reset: read
    while writing (the server may answer before it has read the million)."""
    s = start_server(model="event", root=docroot)
    sock = s.connect()
    sock.sendall(b"GET /")
    sock.setblocking(False)
    data, sent, chunk = b"", 0, b"a" * 10000
    t0 = time.monotonic()
    while sent < 1_000_000 and b"\r\n\r\n" not in data and time.monotonic() - t0 < 10:
        r, w, _ = select.select([sock], [sock], [], 0.5)
        if r:
            b = sock.recv(65536)  # a reset before the answer fails the test
            if not b:
                break
            data += b
        if w and sent < 1_000_000:
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                pass
    sock.setblocking(True)
    sock.settimeout(5)
    while b"\r\n\r\n" not in data:
        b = sock.recv(65536)
        if not b:
            break
        data += b
    sock.close()
    assert status_of(data) == 414 and b"Connection: close" in data, data[:200]
    assert raw(s, b"GET /hello HTTP/1.0\r\n\r\n").endswith(b"Hello, World!\n")


def test_header_timeout_408(start_server, docroot, model):
    s = start_server("--header-timeout", "0.5", model=model, root=docroot)
    sock = s.connect()
    sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # never finished
    sock.settimeout(5)
    t0 = time.monotonic()
    data = b""
    while True:
        b = sock.recv(4096)
        if not b:
            break
        data += b
    assert status_of(data) == 408
    assert time.monotonic() - t0 < 3
    sock.close()


def test_keepalive_timeout_closes_idle(start_server, docroot, model):
    s = start_server("--keepalive-timeout", "0.5", model=model, root=docroot)
    sock = s.connect()
    sock.sendall(GET_HELLO)
    st, h, body, rest = read_response(sock)
    sock.settimeout(5)
    t0 = time.monotonic()
    assert sock.recv(100) == b""  # closed by the server, without a response
    assert 0.3 < time.monotonic() - t0 < 3
    sock.close()


def test_slow_client_does_not_block_others(start_server, docroot, model):
    if model == "iterative":
        pytest.skip("one connection at a time is the iterative model's lesson")
    s = start_server("--header-timeout", "3", model=model, root=docroot)
    slow = [s.connect() for _ in range(3)]
    for c in slow:
        c.sendall(b"GET /hello HTTP/1.1\r\n")  # slowloris: an unfinished head
    t0 = time.monotonic()
    for _ in range(5):
        resp = raw(s, b"GET /hello HTTP/1.0\r\n\r\n")
        assert resp.endswith(b"Hello, World!\n")
    assert time.monotonic() - t0 < 2
    for c in slow:
        c.close()


def test_client_vanishes_mid_response(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    for _ in range(5):
        sock = s.connect()
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(1000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # reset mid-body
    for _ in range(5):
        sock = s.connect()
        sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nContent-")
        sock.close()  # gone mid-head
    assert raw(s, b"GET /hello HTTP/1.0\r\n\r\n").endswith(b"Hello, World!\n")


def test_half_closed_client_gets_answer(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    resp = raw(s, GET_HELLO, shut=True)  # request, then shutdown(SHUT_WR)
    assert status_of(resp) == 200 and resp.endswith(b"Hello, World!\n")


def test_access_log(start_server, docroot, tmp_path, model):
    log = tmp_path / "access.log"
    s = start_server("--access-log", log, model=model, root=docroot)
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
    c.request("GET", "/hello?q=1", headers={"User-Agent": 'ua "quoted"', "Referer": "http://r/"})
    c.getresponse().read()
    c.request("GET", "/missing")
    c.getresponse().read()
    c.close()
    raw(s, b"GET /bad\x01 HTTP/1.1\r\nHost: x\r\n\r\n")
    lines = wait_until(lambda: log.read_text().splitlines() if log.exists() and len(log.read_text().splitlines()) >= 3 else None)
    assert lines, "access log has fewer than 3 lines"
    clf = re.compile(r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "(.*)" (\d{3}) (\d+|-) "(.*)" "(.*)"$')
    m = clf.match(lines[0])
    assert m, lines[0]
    assert m.group(1) == "GET /hello?q=1 HTTP/1.1" and m.group(2) == "200" and m.group(3) == "14"
    assert m.group(4) == "http://r/" and m.group(5) == "ua \\x22quoted\\x22"
    assert clf.match(lines[1]).group(2) == "404"
    assert clf.match(lines[2]).group(2) == "400"


def test_date_header_format(start_server, docroot):
    s = start_server(model="event", root=docroot)
    resp = raw(s, b"GET /hello HTTP/1.0\r\n\r\n")
    m = re.search(rb"\r\nDate: (\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT)\r\n", resp)
    assert m
    from email.utils import parsedate_to_datetime
    import datetime
    d = parsedate_to_datetime(m.group(1).decode())
    assert abs((datetime.datetime.now(datetime.timezone.utc) - d).total_seconds()) < 5
