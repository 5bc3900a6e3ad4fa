"""Behind a balancer (issue 16, docs/deploy.md), without one: raw sockets
play the balancer. PROXY protocol v1 and v2 on a /proxy listener (and
--proxy-protocol), only from --trusted-proxy; X-Forwarded-For / Forwarded
from trusted peers only, the right-most untrusted address; the client's
address in the access log, REMOTE_ADDR (CGI, C apps, WSGI) and the --status
loopback check; --health and --drain; two instances sharing a port
(--accept reuseport) while one drains and stops.

On loopback every peer is 127.x: the tests use 127.0.0.1 as the trusted
balancer, bind "clients" to 127.0.0.2 (untrusted), and let PROXY headers
name documentation addresses (192.0.2.0/24, 2001:db8::/32) as the client,
so an assertion can tell the client from the balancer."""
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import shutil
import time

import pytest

from conftest import BUILD, MODELS, Server, raw, recv_all, status_of, wait_until

SIG2 = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src, dst, sport, dport, tlvs=b"", cmd=1):
    """A PROXY v2 header (TCP over IPv4 or IPv6)."""
    if ":" in src:
        fam, a = 0x21, socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    else:
        fam, a = 0x11, socket.inet_aton(src) + socket.inet_aton(dst)
    body = a + struct.pack("!HH", sport, dport) + tlvs
    return SIG2 + bytes([0x20 | cmd, fam]) + struct.pack("!H", len(body)) + body


def v2_local(tlvs=b""):
    return SIG2 + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs


def tlv(t, value):
    return bytes([t]) + struct.pack("!H", len(value)) + value


def send(port, data, source="127.0.0.1", timeout=5.0, pieces=False):
    """Send data from source (an address on lo), read until the server closes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        if pieces:  # a byte at a time: the header arrives in many reads
            for i in range(len(data)):
                s.send(data[i:i + 1])
                time.sleep(0.002)
        else:
            s.sendall(data)
        return recv_all(s, stop_on_error=True)
    finally:
        s.close()


GET = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def log_lines(path):
    with open(path) as f:
        return [l for l in f.read().splitlines() if l]


def proxied(start_server, docroot, tmp_path, *extra, model="event", env=None):
    """A server whose --host/--port listener expects PROXY from 127.0.0.1."""
    alog = tmp_path / "access.log"
    s = start_server("--proxy-protocol", "--trusted-proxy", "127.0.0.1", "--access-log", alog,
                     *extra, model=model, root=docroot, env=env)
    return s, alog


@pytest.mark.parametrize("model", MODELS)
def test_proxy_v1_v2_every_model(start_server, docroot, tmp_path, model):
    s, alog = proxied(start_server, docroot, tmp_path, model=model)
    r = send(s.port, b"PROXY TCP4 192.0.2.7 198.51.100.1 40001 443\r\n" + GET)
    assert status_of(r) == 200 and r.endswith(b"Hello, World!\n")
    r = send(s.port, v2("2001:db8::9", "2001:db8::1", 40002, 443,
                        tlv(0x01, b"http/1.1") + tlv(0x04, b"") + tlv(0x20, b"\x01\0\0\0\0")) + GET)
    assert status_of(r) == 200
    r = send(s.port, v2_local() + GET)  # a balancer's own health check: its address stays
    assert status_of(r) == 200
    assert wait_until(lambda: len(log_lines(alog)) == 3)
    addrs = [l.split()[0] for l in log_lines(alog)]
    assert addrs == ["192.0.2.7", "2001:db8::9", "127.0.0.1"], addrs


def test_proxy_header_in_pieces_then_keepalive(start_server, docroot, tmp_path):
    s, alog = proxied(start_server, docroot, tmp_path)
    two = (b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" + GET)
    r = send(s.port, b"PROXY TCP4 192.0.2.8 198.51.100.1 40003 80\r\n" + two, pieces=True)
    assert r.count(b"HTTP/1.1 200 OK") == 2
    r = send(s.port, v2("192.0.2.9", "198.51.100.1", 40004, 80) + two, pieces=True)
    assert r.count(b"HTTP/1.1 200 OK") == 2
    assert wait_until(lambda: len(log_lines(alog)) == 4)
    assert [l.split()[0] for l in log_lines(alog)] == ["192.0.2.8"] * 2 + ["192.0.2.9"] * 2


@pytest.mark.parametrize("header,why", [
    (b"PROXY TCP4 192.0.2.1 198.51.100.1 1 99999\r\n", "not a port"),
    (b"PROXY TCP4 192.0.2.1  198.51.100.1 1 2\r\n", "empty field"),
    (b"PROXY TCP6 192.0.2.1 198.51.100.1 1 2\r\n", "not an IPv6"),
    (b"PROXY TCP4 192.0.2.1 198.51.100.1 1 2\n", "CRLF"),
    (SIG2 + b"\x21\x12\x00\x0c" + bytes(12), "datagram"),
    (SIG2 + b"\x21\x11\x00\x10" + bytes(12) + b"\x01\x00\x09x", "TLV"),
    (SIG2 + b"\x31\x11\x00\x0c" + bytes(12), "version"),
])
def test_malformed_proxy_header(start_server, docroot, tmp_path, header, why):
    s, alog = proxied(start_server, docroot, tmp_path)
    r = send(s.port, header + GET)
    assert status_of(r) == 400 and b"Connection: close" in r
    assert wait_until(lambda: "malformed PROXY header from 127.0.0.1" in s.stderr())
    assert why in s.stderr()
    assert wait_until(lambda: log_lines(alog) and log_lines(alog)[-1].split()[0] == "127.0.0.1")
    assert '" 400 ' in log_lines(alog)[-1]


def test_proxy_from_untrusted_peer(start_server, docroot, tmp_path):
    s, alog = proxied(start_server, docroot, tmp_path)
    for hdr in (b"PROXY TCP4 192.0.2.1 198.51.100.1 1 2\r\n", v2("192.0.2.1", "198.51.100.1", 1, 2)):
        r = send(s.port, hdr + GET, source="127.0.0.2")
        assert status_of(r) == 400
    assert wait_until(lambda: s.stderr().count("PROXY header from 127.0.0.2") == 2)
    assert "not a --trusted-proxy" in s.stderr()
    assert wait_until(lambda: len(log_lines(alog)) == 2)
    assert all(l.startswith("127.0.0.2 ") for l in log_lines(alog))


def test_no_proxy_header_closes(start_server, docroot, tmp_path):
    s, alog = proxied(start_server, docroot, tmp_path)
    assert send(s.port, GET) == b""
    assert wait_until(lambda: "no PROXY header from 127.0.0.1" in s.stderr())
    # a plain --listen next to it does not expect one
    s2 = start_server("--listen", "127.0.0.1:0/proxy", "--trusted-proxy", "127.0.0.1",
                      root=docroot)
    assert status_of(raw(s2, GET)) == 200


def test_listen_proxy_with_tls(start_server, docroot, tmp_path):
    openssl = shutil.which("openssl")
    if not openssl:
        pytest.skip("the openssl CLI is missing")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    alog = tmp_path / "access.log"
    s = start_server("--tls-cert", cert, "--tls-key", key, "--listen", "127.0.0.1:0/tls/proxy",
                     "--trusted-proxy", "127.0.0.1/32", "--access-log", alog, root=docroot)
    extra = s.proc.stdout.readline().decode()  # the banner's second line: the --listen one
    port = int(extra.split(" port ")[1].split()[0])
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw_sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    raw_sock.sendall(v2("192.0.2.33", "198.51.100.1", 40005, 443))
    with ctx.wrap_socket(raw_sock, server_hostname="localhost") as t:
        t.sendall(GET)
        data = recv_all(t)
    assert status_of(data) == 200
    # a malformed header on a TLS listener is answered in plain text
    r = send(port, b"PROXY TCP4 x y 1 2\r\n" + b"\x16\x03\x01")
    assert status_of(r) == 400
    assert wait_until(lambda: any(l.startswith("192.0.2.33 ") for l in log_lines(alog)))


def test_client_address_in_cgi_app_wsgi(start_server, docroot, tmp_path):
    cgi = os.path.join(os.path.dirname(os.path.dirname(__file__)), "cgi-bin")
    args = ["--cgi", f"/cgi-bin={cgi}", "--app", f"/env={BUILD}/environ.so:app"]
    wsgi = os.path.exists(os.path.join(BUILD, "wsgi.so"))
    if wsgi:
        (tmp_path / "remote.py").write_text(
            "def app(environ, start_response):\n"
            "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
            "    return [('REMOTE_ADDR=%s\\n' % environ['REMOTE_ADDR']).encode()]\n")
        args += ["--pythonpath", tmp_path, "--wsgi", "/py=remote:app"]
    # the embedded interpreter's own allocations (as test_wsgi.py)
    lsan = {"LSAN_OPTIONS": "suppressions=" + os.path.join(os.path.dirname(os.path.dirname(__file__)),
                                                           "lsan-python.supp") + ":print_suppressions=0"}
    s, alog = proxied(start_server, docroot, tmp_path, *args, env=lsan if wsgi else None)
    paths = ["/cgi-bin/env.sh", "/env/"] + (["/py"] if wsgi else [])
    for p in paths:
        req = f"GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        r = send(s.port, b"PROXY TCP4 192.0.2.44 198.51.100.1 40006 80\r\n" + req)
        assert status_of(r) == 200, (p, r[:200])
        assert b"REMOTE_ADDR=192.0.2.44" in r, (p, r)


def test_forwarded_headers_only_from_trusted(start_server, docroot, tmp_path):
    alog = tmp_path / "access.log"
    s = start_server("--trusted-proxy", "127.0.0.1", "--trusted-proxy", "10.0.0.0/8",
                     "--access-log", alog, root=docroot)

    def get(xff, source):
        req = (f"GET /hello HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {xff}\r\n"
               "Connection: close\r\n\r\n").encode()
        return status_of(send(s.port, req, source=source))

    # from the trusted balancer: the right-most untrusted, never the left-most
    assert get("6.6.6.6, 203.0.113.5, 10.1.1.1", "127.0.0.1") == 200
    # from anyone else: ignored, whatever it says
    assert get("203.0.113.99", "127.0.0.2") == 200
    assert wait_until(lambda: len(log_lines(alog)) == 2)
    assert [l.split()[0] for l in log_lines(alog)] == ["203.0.113.5", "127.0.0.2"]


def test_rfc7239_forwarded(start_server, docroot, tmp_path):
    alog = tmp_path / "access.log"
    s = start_server("--trusted-proxy", "127.0.0.1", "--forwarded-header", "forwarded",
                     "--access-log", alog, root=docroot)
    req = (b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.1\r\n"
           b"Forwarded: for=6.6.6.6\r\nForwarded: for=\"[2001:db8::77]:4711\";proto=https\r\n"
           b"Connection: close\r\n\r\n")
    assert status_of(send(s.port, req)) == 200
    assert wait_until(lambda: log_lines(alog))
    assert log_lines(alog)[0].startswith("2001:db8::77 ")


def test_status_page_sees_the_client(start_server, docroot, tmp_path):
    s, alog = proxied(start_server, docroot, tmp_path, "--status", "/status")
    st = b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    # a remote client through the balancer: not loopback
    assert status_of(send(s.port, b"PROXY TCP4 192.0.2.1 198.51.100.1 1 80\r\n" + st)) == 403
    # a local one: allowed
    assert status_of(send(s.port, b"PROXY TCP4 127.0.0.5 127.0.0.1 1 80\r\n" + st)) == 200
    s2 = start_server("--trusted-proxy", "127.0.0.1", "--status", "/status", root=docroot)
    # a trusted proxy naming a remote client: refused
    xff = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.1\r\nConnection: close\r\n\r\n"
    assert status_of(send(s2.port, xff)) == 403
    # an untrusted peer claiming loopback: refused (spoofed header)
    spoof = xff.replace(b"192.0.2.1", b"127.0.0.1")
    assert status_of(send(s2.port, spoof, source="127.0.0.2")) == 403


@pytest.mark.parametrize("model", ["prefork", "event"])
def test_health_and_drain(start_server, docroot, tmp_path, model):
    s = start_server("--health", "/healthz", "--drain", "1", "--workers", "2", model=model,
                     root=docroot)
    hz = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    r = raw(s, hz)
    assert status_of(r) == 200 and r.endswith(b"ok\n") and b"Cache-Control: no-store" in r
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    assert wait_until(lambda: status_of(raw(s, hz)) == 503, timeout=2)
    # ...while everything else is served, on new connections too
    assert status_of(raw(s, GET)) == 200
    assert status_of(raw(s, GET)) == 200
    assert s.proc.poll() is None
    assert s.stop(timeout=10) == 0
    assert time.monotonic() - t0 >= 0.9  # the drain, then the graceful stop
    assert "draining: --health answers 503 for 1000 ms" in s.stderr()


def test_health_without_drain(start_server, docroot):
    s = start_server("--health", "/healthz", model="fork", root=docroot)
    hz = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert status_of(raw(s, hz)) == 200
    assert status_of(raw(s, hz.replace(b"/healthz", b"/healthz/x"))) == 404


@pytest.mark.parametrize("args,msg", [
    (["--proxy-protocol"], "--trusted-proxy"),
    (["--listen", "127.0.0.1:0/proxy"], "--trusted-proxy"),
    (["--listen", "127.0.0.1:0/proxy/proxy", "--trusted-proxy", "::1"], "--listen"),
    (["--listen", "127.0.0.1:0/prox", "--trusted-proxy", "::1"], "--listen"),
    (["--trusted-proxy", "10.1.2.3/8"], "--trusted-proxy"),
    (["--trusted-proxy", "example.org"], "--trusted-proxy"),
    (["--forwarded-header", "x-real-ip"], "--forwarded-header"),
    (["--health", "healthz"], "--health"),
    (["--drain", "-1"], "--drain"),
    (["--drain", "1", "--model", "fork"], "--drain"),
])
def test_bad_flags(args, msg):
    p = subprocess.run([os.path.join(BUILD, "forkhttpd"), "--port", "0"] + args,
                       capture_output=True, timeout=10)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert err.count("\n") == 1 and msg in err, err


def test_two_instances_share_a_port(start_server, docroot, tmp_path):
    """The zero-downtime binary upgrade: a new instance joins the port's
    SO_REUSEPORT group, the old one drains and stops, under load: nothing
    fails."""
    old = start_server("--accept", "reuseport", "--workers", "2", "--health", "/healthz",
                       "--drain", "0.5", root=docroot)
    alog = tmp_path / "new.log"
    new = Server(["--host", "127.0.0.1", "--port", str(old.port), "--model", "event",
                  "--accept", "reuseport", "--workers", "2", "--root", str(docroot),
                  "--access-log", str(alog)], str(tmp_path))
    try:
        load = subprocess.Popen(
            [os.path.join(BUILD, "forkload"), "--json", "--clients", "1", "--conns", "8", "-k",
             "--duration", "3", f"http://127.0.0.1:{old.port}/hello"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.5)  # load on both (not a synchronisation: forkload runs 3 s regardless)
        assert old.stop(timeout=10) == 0
        out, err = load.communicate(timeout=20)
        res = json.loads(out)
        assert load.returncode == 0, (out, err)
        assert res["answered"] > 0 and res["errors"]["total"] == 0, res
        assert res["status_5xx"] == 0 and res["ok"] == res["answered"], res
        assert log_lines(alog)  # the new instance took its share
    finally:
        new.stop()
