"""HTTPS (issue 12, docs/tls.md): OpenSSL behind the transport seam, in every
model. A throw-away CA and certificates are made with the openssl CLI once per
session (never committed): root CA -> intermediate -> "localhost" leaf (the
default certificate, served as a chain), and root CA -> "alt.test" (for SNI)."""
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import BUILD, MODELS, raw, status_of, wait_until

ECHO = os.path.join(BUILD, "echo.so")
OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(OPENSSL is None, reason="the openssl CLI (Debian openssl) is missing")


def sh(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_leaf(d, name, sans, issuer, serial):
    sh(OPENSSL, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d)
    sh(OPENSSL, "req", "-new", "-key", f"{name}.key", "-subj", f"/CN={name}", "-out", f"{name}.csr", cwd=d)
    with open(os.path.join(d, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                "extendedKeyUsage=serverAuth\n")
    sh(OPENSSL, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.crt", "-CAkey", f"{issuer}.key",
       "-set_serial", str(serial), "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    sh(OPENSSL, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key", cwd=d)
    sh(OPENSSL, "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=forkhttpd test CA", "-days", "2",
       "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
       "-out", "ca.crt", cwd=d)
    sh(OPENSSL, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "int.key", cwd=d)
    sh(OPENSSL, "req", "-new", "-key", "int.key", "-subj", "/CN=forkhttpd test intermediate", "-out", "int.csr", cwd=d)
    with open(os.path.join(d, "int.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n")
    sh(OPENSSL, "x509", "-req", "-in", "int.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "2",
       "-days", "2", "-extfile", "int.ext", "-out", "int.crt", cwd=d)
    make_leaf(d, "localhost", "DNS:localhost,IP:127.0.0.1,IP:::1", "int", 10)
    make_leaf(d, "alt.test", "DNS:alt.test", "ca", 11)
    make_leaf(d, "renewed", "DNS:localhost,IP:127.0.0.1", "int", 12)
    for leaf in ("localhost", "renewed"):  # leaf + intermediate in one PEM
        with open(os.path.join(d, f"{leaf}.chain"), "w") as f:
            f.write(open(os.path.join(d, f"{leaf}.crt")).read() + open(os.path.join(d, "int.crt")).read())
    with open(os.path.join(d, "bad.pem"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    return d


def p(pki, name):
    return os.path.join(pki, name)


def tls_args(pki, alt=False):
    a = ["--tls-cert", p(pki, "localhost.chain"), "--tls-key", p(pki, "localhost.key")]
    if alt:
        a += ["--tls-cert", p(pki, "alt.test.crt"), "--tls-key", p(pki, "alt.test.key")]
    return a


def client_ctx(pki):
    ctx = ssl.create_default_context(cafile=p(pki, "ca.crt"))
    return ctx


def tls_connect(pki, port, host="localhost", ctx=None, session=None, timeout=10):
    ctx = ctx or client_ctx(pki)
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(s, server_hostname=host, session=session)


def read_all(s):
    out = []
    while True:
        try:
            b = s.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, socket.timeout):
            break
        if not b:
            break
        out.append(b)
    return b"".join(out)


def read_response(f):
    """One response from a file object: (status, headers dict, body)."""
    line = f.readline()
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, v = h.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    body = f.read(n) if n else b""
    return status, headers, body


def extra_ports(server):
    """Ports of the banner's further lines (--listen), in order."""
    ports = []
    for _ in range(server.args.count("--listen")):
        line = server.proc.stdout.readline().decode()
        assert line.startswith("Serving HTTP"), line
        ports.append(int(line.split(" port ")[1].split()[0]))
    return ports


@pytest.mark.parametrize("model", ["event", "fork"])
def test_slow_reader_gets_every_record(start_server, docroot, pki, model):
    """The records of one write leave in one batch; what a full socket does
    not take is kept and sent first (tls.c pend). A reader with a small
    window that reads slowly fills the socket mid-batch, at the end of a
    response (then the next request must wait for it) and before the close:
    every byte arrives, in order, and the connection ends cleanly."""
    data = hashlib.sha256(b"slow").digest() * (3 << 15)  # 3 MiB
    (docroot / "three.bin").write_bytes(data)
    s = start_server(*tls_args(pki), model=model, root=docroot)
    raw_sock = socket.socket()
    raw_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    raw_sock.settimeout(20)
    raw_sock.connect(("127.0.0.1", s.port))
    c = client_ctx(pki).wrap_socket(raw_sock, server_hostname="localhost", suppress_ragged_eofs=False)
    c.sendall(b"GET /three.bin HTTP/1.1\r\nHost: localhost\r\n\r\n"
              b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"
              b"GET /three.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    got = []
    while True:
        b = c.recv(4096)  # (a close without close_notify would raise SSLEOFError)
        if not b:
            break
        got.append(b)
        if len(got) % 16 == 0:
            time.sleep(0.001)  # a slow reader: the server's socket fills
    c.close()
    body = b"".join(got)
    assert body.count(b"HTTP/1.1 200") == 3
    assert body.endswith(data), "the last response, to the close"
    head1, rest = body.split(b"\r\n\r\n", 1)
    assert rest[:len(data)] == data
    assert b"Hello, World!\n" in rest[len(data):len(data) + 400]


@pytest.mark.parametrize("model", ["event", "prefork", "fork"])
def test_last_response_ends_with_close_notify(start_server, docroot, pki, model):
    """The response that ends a connection carries the TLS close_notify (in
    the same write): the client sees a clean end of the TLS stream, for a
    small answer, a file, an error, and HTTP/1.0."""
    (docroot / "f.bin").write_bytes(b"x" * 70000)
    s = start_server(*tls_args(pki), model=model, root=docroot)
    for req, status, tail in ((b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 200,
                               b"Hello, World!\n"),
                              (b"GET /f.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 200,
                               b"x" * 100),
                              (b"GET /nope HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 404, b""),
                              (b"GET /hello HTTP/1.0\r\n\r\n", 200, b"Hello, World!\n")):
        raw_sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        c = client_ctx(pki).wrap_socket(raw_sock, server_hostname="localhost", suppress_ragged_eofs=False)
        c.sendall(req)
        out = []
        while True:
            b = c.recv(65536)  # SSLEOFError if the server closed without close_notify
            if not b:
                break
            out.append(b)
        body = b"".join(out)
        c.close()
        assert status_of(body) == status and body.endswith(tail), body[:200]


@pytest.fixture
def site(docroot):
    big = docroot / "big20.bin"
    with open(big, "wb") as f:
        block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB
        for _ in range(320):  # 20 MiB
            f.write(block)
    return docroot


def test_https_every_model(start_server, site, pki, model):
    s = start_server(*tls_args(pki), "--app", f"/echo={ECHO}:app", "--listen", "127.0.0.1:0",
                     "--workers", "2", model=model, root=site)
    assert s.banner.startswith("Serving HTTPS on 127.0.0.1 port ")
    (plain_port,) = extra_ports(s)
    # GET, HEAD, Range, keep-alive on one connection
    with tls_connect(pki, s.port) as c:
        assert c.version() in ("TLSv1.2", "TLSv1.3")
        f = c.makefile("rb")
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert read_response(f)[::2] == (200, b"Hello, World!\n")
        c.sendall(b"HEAD /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
        line = f.readline()
        assert line.startswith(b"HTTP/1.1 200")
        while f.readline() not in (b"\r\n", b""):
            pass
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nRange: bytes=7-11\r\n\r\n")
        st, h, body = read_response(f)
        assert (st, body) == (206, b"World")
        # 20 pipelined requests in one write
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n" * 20)
        for _ in range(20):
            assert read_response(f)[::2] == (200, b"Hello, World!\n")
        # a large file, intact
        c.sendall(b"GET /big20.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        st, h, body = read_response(f)
        assert st == 200 and len(body) == 20 << 20
        assert hashlib.sha256(body).digest() == hashlib.sha256(open(site / "big20.bin", "rb").read()).digest()
        # a chunked upload to an app, echoed
        c.sendall(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        line = f.readline()
        assert line.startswith(b"HTTP/1.1 200"), line
        f.close()
    # curl too
    out = subprocess.run(["curl", "-sS", "--cacert", p(pki, "ca.crt"), f"https://localhost:{s.port}/hello"],
                         capture_output=True, timeout=20)
    assert out.stdout == b"Hello, World!\n", out.stderr
    # plain HTTP to the TLS port: a 400 that says so, and the connection closes
    r = raw(s, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(r) == 400 and b"speaks HTTPS" in r
    # the plain --listen port serves the same site in the same workers
    s2 = socket.create_connection(("127.0.0.1", plain_port), timeout=5)
    s2.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
    assert read_all(s2).endswith(b"Hello, World!\n")
    s2.close()


def test_protocols_and_ciphers(start_server, docroot, pki):
    s = start_server(*tls_args(pki), root=docroot)

    def s_client(*args):
        r = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{s.port}", "-servername", "localhost",
                            "-CAfile", p(pki, "ca.crt"), *args], input=b"", capture_output=True, timeout=20)
        return r.returncode == 0 and b"Cipher is (NONE)" not in r.stdout and b"New, " in r.stdout

    assert s_client("-tls1_3")
    assert s_client("-tls1_2")
    assert s_client("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    for old in ("-tls1", "-tls1_1"):
        assert not s_client(old, "-cipher", "ALL:@SECLEVEL=0"), old
    for weak in ("NULL", "EXPORT", "RC4", "3DES", "aNULL", "kRSA", "AES128-SHA", "ECDHE-ECDSA-AES128-SHA"):
        assert not s_client("-tls1_2", "-cipher", f"{weak}:@SECLEVEL=0"), weak
    assert "TLS handshake with 127.0.0.1 port" in s.stderr()  # one warn line per failure


def cert_cn(pki, port, servername=None):
    args = [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", p(pki, "ca.crt")]
    args += ["-servername", servername] if servername else ["-noservername"]
    r = subprocess.run(args, input=b"", capture_output=True, timeout=20)
    for line in r.stdout.decode().splitlines():
        if line.startswith("subject="):
            return line.split("CN", 1)[1].lstrip(" =")
    return None


def test_sni_picks_certificate(start_server, docroot, pki):
    s = start_server(*tls_args(pki, alt=True), root=docroot)
    assert cert_cn(pki, s.port, "alt.test") == "alt.test"
    assert cert_cn(pki, s.port, "localhost") == "localhost"
    assert cert_cn(pki, s.port, "unknown.example") == "localhost"
    assert cert_cn(pki, s.port) == "localhost"  # no SNI: the default
    with tls_connect(pki, s.port, host="alt.test") as c:  # verified against the CA
        c.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        assert read_all(c).endswith(b"Hello, World!\n")


@pytest.mark.parametrize("case", ["mismatch", "missing", "badpem", "nokey"])
def test_bad_certificate_files(pki, docroot, case):
    args = {
        "mismatch": ["--tls-cert", p(pki, "localhost.chain"), "--tls-key", p(pki, "alt.test.key")],
        "missing": ["--tls-cert", p(pki, "nope.crt"), "--tls-key", p(pki, "localhost.key")],
        "badpem": ["--tls-cert", p(pki, "bad.pem"), "--tls-key", p(pki, "localhost.key")],
        "nokey": ["--tls-cert", p(pki, "localhost.chain")],
    }[case]
    r = subprocess.run([os.path.join(BUILD, "forkhttpd"), "--host", "127.0.0.1", "--port", "0", "--root",
                        str(docroot)] + args, capture_output=True, timeout=20)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert len(err.strip().splitlines()) == 1, err
    assert "--tls-" in err and not any(m in err for m in ("Sanitizer", "runtime error"))


def test_slow_and_broken_handshakes(start_server, docroot, pki):
    """300 connections that never send a ClientHello, half handshakes and
    clients that vanish mid-handshake: 50 real clients are still served
    quickly, and the silent ones are closed after --header-timeout."""
    s = start_server(*tls_args(pki), "--workers", "2", "--header-timeout", "2", root=docroot)
    idle = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(300)]
    # half a handshake: the start of a ClientHello, then silence
    half = []
    for _ in range(10):
        h = socket.create_connection(("127.0.0.1", s.port))
        h.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        half.append(h)
    # vanish mid-handshake: a real ClientHello, then a reset
    for _ in range(10):
        v = socket.create_connection(("127.0.0.1", s.port))
        obj = ssl.MemoryBIO(), ssl.MemoryBIO()
        cli = client_ctx(pki).wrap_bio(obj[0], obj[1], server_hostname="localhost")
        try:
            cli.do_handshake()
        except ssl.SSLWantReadError:
            pass
        v.sendall(obj[1].read())
        v.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        v.close()
    slow = []

    def client():
        t0 = time.monotonic()
        with tls_connect(pki, s.port) as c:
            c.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
            ok = read_all(c).endswith(b"Hello, World!\n")
        slow.append((ok, time.monotonic() - t0))

    threads = [threading.Thread(target=client) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(slow) == 50 and all(ok for ok, _ in slow)
    assert max(d for _, d in slow) < 2.0, max(d for _, d in slow)
    # the silent ones are closed like a slowloris (header timeout)
    for c in idle[:5] + half[:5]:
        c.settimeout(10)
        assert read_all(c) == b""
    for c in idle + half:
        c.close()
    assert s.proc.poll() is None


def session_of(pki, port, ctx):
    c = tls_connect(pki, port, ctx=ctx)
    c.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    read_all(c)
    sess, reused = c.session, c.session_reused
    c.close()
    return sess, reused


@pytest.mark.parametrize("model", ["fork", "prefork"])
@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_session_resumption_across_workers(start_server, docroot, pki, model, version):
    s = start_server(*tls_args(pki), "--workers", "2", model=model, root=docroot)
    ctx = client_ctx(pki)
    ctx.maximum_version = ctx.minimum_version = getattr(ssl.TLSVersion, version)
    sess, reused = session_of(pki, s.port, ctx)
    assert not reused
    # fork: every connection is a new process; prefork: two workers take turns
    results = []
    for _ in range(6):
        c = tls_connect(pki, s.port, ctx=ctx, session=sess)
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        read_all(c)
        results.append(c.session_reused)
        c.close()
    assert all(results), results


def cert_serial(pki, port):
    ctx = client_ctx(pki)
    with tls_connect(pki, port, ctx=ctx) as c:
        der = c.getpeercert(binary_form=True)
    return hashlib.sha256(der).hexdigest()


@pytest.mark.parametrize("model", MODELS)
def test_reload_certificate(start_server, docroot, pki, tmp_path, model):
    crt, key = tmp_path / "cur.crt", tmp_path / "cur.key"
    shutil.copy(p(pki, "localhost.chain"), crt)
    shutil.copy(p(pki, "localhost.key"), key)
    s = start_server("--tls-cert", crt, "--tls-key", key, "--workers", "2", model=model, root=docroot)
    old = cert_serial(pki, s.port)
    failures, done, count = [], threading.Event(), [0]

    def load():  # keep-alive clients while the certificate changes
        while not done.is_set():
            try:
                with tls_connect(pki, s.port) as c:
                    f = c.makefile("rb")
                    for _ in range(5):
                        c.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        st, h, body = read_response(f)
                        if st != 200 or body != b"Hello, World!\n":
                            failures.append(st)
                        count[0] += 1
                        if h.get("connection") == "close":  # a worker stopping: reconnect
                            break
                    f.close()
            except (OSError, ValueError, IndexError) as e:
                failures.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(2 if model != "iterative" else 1)]
    for t in threads:
        t.start()
    shutil.copy(p(pki, "renewed.chain"), crt)
    shutil.copy(p(pki, "renewed.key"), key)
    s.proc.send_signal(signal.SIGHUP)
    # (the first answer with another certificate names the new one: asking
    # again could still reach a worker of the old generation, finishing)
    def renewed():
        v = cert_serial(pki, s.port)
        return v if v != old else None
    new = wait_until(renewed, timeout=10)
    assert new
    # a broken key at the next reload: one error line naming it, the current one stays
    with open(key, "w") as f:
        f.write("garbage\n")
    s.proc.send_signal(signal.SIGHUP)
    assert wait_until(lambda: str(key) in s.stderr(), timeout=10)
    done.set()
    for t in threads:
        t.join(20)
    assert wait_until(lambda: cert_serial(pki, s.port) == new, timeout=10)
    assert not failures, failures[:5]
    assert count[0] > 0


def test_redirect_https(start_server, docroot, pki):
    s = start_server(*tls_args(pki), "--listen", "127.0.0.1:0", "--redirect-https", root=docroot)
    (plain,) = extra_ports(s)
    c = socket.create_connection(("127.0.0.1", plain), timeout=5)
    c.sendall(b"GET /a/b?x=1 HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n")
    r = read_all(c)
    c.close()
    assert status_of(r) == 308
    assert f"\r\nLocation: https://example.test:{s.port}/a/b?x=1\r\n".encode() in r


def test_listen_ipv6_and_bad_spec(start_server, docroot, pki):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1")
    s = start_server(*tls_args(pki), "--listen", "[::1]:0/tls", root=docroot)
    (port6,) = extra_ports(s)
    ctx = client_ctx(pki)
    c = ctx.wrap_socket(socket.create_connection(("::1", port6), timeout=5), server_hostname="localhost")
    c.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
    assert read_all(c).endswith(b"Hello, World!\n")
    c.close()
    for bad in (["--listen", "nope"], ["--listen", "127.0.0.1:0/tls"]):
        r = subprocess.run([os.path.join(BUILD, "forkhttpd"), "--port", "0"] + bad, capture_output=True, timeout=10)
        assert r.returncode == 2 and len(r.stderr.decode().strip().splitlines()) == 1, r.stderr


def chromium_dump(exe, url, home, timeout=60):
    """Headless Chromium's --dump-dom of url: (stdout, stderr). HOME and the
    profile are temporary (Chromium reads its NSS trust store from
    $HOME/.pki/nssdb); the whole process group goes on a timeout."""
    proc = subprocess.Popen([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-dev-shm-usage", f"--user-data-dir={home / 'profile'}",
                             "--virtual-time-budget=3000", "--dump-dom", url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env=dict(os.environ, HOME=str(home)))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return out.decode(errors="replace"), err.decode(errors="replace")


def test_chromium_loads_page(start_server, docroot, pki, tmp_path):
    """A real browser loads the page over HTTPS, trusting the test CA through a
    temporary NSS database (certificate checks stay on: without the CA the same
    load fails)."""
    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("Debian chromium is not installed (scripts/deps.sh installs it)")
    certutil = shutil.which("certutil")
    if not certutil:
        pytest.skip("certutil (libnss3-tools) is needed to make chromium trust the test CA")
    (docroot / "demo.html").write_bytes(
        b"<!DOCTYPE html><html><head><title>forkhttpd over TLS</title></head><body>"
        b"<p id=js>no script</p><script>document.getElementById('js').textContent="
        b"'ran on '+location.protocol+'//'+location.hostname</script></body></html>\n")
    s = start_server(*tls_args(pki), root=docroot)
    url = f"https://localhost:{s.port}/demo.html"
    trusting, bare = tmp_path / "home-ca", tmp_path / "home-bare"
    for home in (trusting, bare):
        nss = home / ".pki" / "nssdb"
        nss.mkdir(parents=True)
        sh(certutil, "-N", "-d", f"sql:{nss}", "--empty-password", cwd=str(tmp_path))
    sh(certutil, "-A", "-d", f"sql:{trusting / '.pki' / 'nssdb'}", "-n", "forkhttpd test CA", "-t", "C,,",
       "-i", p(pki, "ca.crt"), cwd=str(tmp_path))
    dom, err = chromium_dump(chromium, url, trusting)
    assert "<title>forkhttpd over TLS</title>" in dom, (dom[:500], err[-2000:])
    assert '<p id="js">ran on https://localhost</p>' in dom, dom[:500]
    # the control: a browser that does not know the CA refuses the certificate
    dom, err = chromium_dump(chromium, url, bare)
    assert "forkhttpd over TLS" not in dom and "ran on" not in dom, dom[:500]


def test_access_log_tls_format(start_server, docroot, pki, tmp_path):
    """--access-log-format tls: the Combined Log Format line, then the
    connection's protocol and cipher ("-" "-" on plain HTTP)."""
    log = tmp_path / "access.log"
    s = start_server(*tls_args(pki), "--listen", "127.0.0.1:0", "--access-log", str(log),
                     "--access-log-format", "tls", "--workers", "1", root=docroot)
    (plain,) = extra_ports(s)
    with tls_connect(pki, s.port) as c:
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tls-test\r\nConnection: close\r\n\r\n")
        read_all(c)
    ctx = client_ctx(pki)
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with tls_connect(pki, s.port, ctx=ctx) as c:
        c.sendall(b"GET /nope HTTP/1.0\r\n\r\n")
        read_all(c)
    c = socket.create_connection(("127.0.0.1", plain), timeout=5)
    c.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
    read_all(c)
    c.close()
    assert wait_until(lambda: log.exists() and log.read_text().count("\n") == 3)
    lines = log.read_text().splitlines()
    assert lines[0].startswith("127.0.0.1 - - [") and '"GET /hello HTTP/1.1" 200 14 "-" "tls-test" ' in lines[0]
    assert re.search(r'"tls-test" TLSv1\.3 TLS_[A-Z0-9_]+$', lines[0]), lines[0]
    assert re.search(r'"GET /nope HTTP/1.0" 404 \d+ "-" "-" TLSv1\.2 ECDHE-ECDSA-AES128-GCM-SHA256$',
                     lines[1]), lines[1]
    assert lines[2].endswith('"GET /hello HTTP/1.0" 200 14 "-" "-" - -'), lines[2]
    # the default is the plain Combined Log Format; a bad name is one line, exit 2
    r = subprocess.run([os.path.join(BUILD, "forkhttpd"), "--port", "0", "--access-log-format", "json"],
                       capture_output=True, timeout=10)
    assert r.returncode == 2 and r.stderr.decode().count("\n") == 1 and "--access-log-format" in r.stderr.decode()


def test_gateways_and_status_see_tls(start_server, docroot, pki, tmp_path):
    cgi = tmp_path / "cgi"
    cgi.mkdir()
    script = cgi / "env.sh"
    script.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n")
    script.chmod(0o755)
    s = start_server(*tls_args(pki), "--cgi", f"/cgi-bin={cgi}", "--status", "/status",
                     "--listen", "127.0.0.1:0", root=docroot)
    (plain,) = extra_ports(s)
    with tls_connect(pki, s.port) as c:
        c.sendall(b"GET /cgi-bin/env.sh HTTP/1.0\r\nHost: localhost\r\n\r\n")
        env = read_all(c).decode()
    assert "\nHTTPS=on\n" in env and "\nSSL_TLS_SNI=localhost\n" in env, env
    assert "\nSSL_PROTOCOL=TLSv1.3\n" in env and "\nSSL_CIPHER=TLS_" in env, env
    c = socket.create_connection(("127.0.0.1", plain), timeout=5)
    c.sendall(b"GET /cgi-bin/env.sh HTTP/1.0\r\nHost: localhost\r\n\r\n")
    env = read_all(c).decode()
    c.close()
    assert "HTTPS=" not in env and "SSL_" not in env
    with tls_connect(pki, s.port) as c:
        c.sendall(b"GET /status?json HTTP/1.0\r\nHost: localhost\r\n\r\n")
        page = read_all(c).decode()
    assert '"tls_handshakes":' in page and '"tls_failed":' in page, page


def mapped_files(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {line.split()[-1] for line in f if len(line.split()) >= 6}


@pytest.mark.parametrize("model", ["fork", "event"])
def test_openssl_mapped_only_with_tls(start_server, docroot, pki, model):
    """HTTPS is build/tls.so (docs/tls.md): the server binary does not link
    OpenSSL, and loads the module only when --tls-cert is given."""
    s = start_server(model=model, root=docroot)
    assert status_of(raw(s, b"GET / HTTP/1.0\r\n\r\n")) in (200, 403, 404)
    files = mapped_files(s.pid)
    assert not [f for f in files if "libssl" in f or "libcrypto" in f or f.endswith("/tls.so")], files
    t = start_server(*tls_args(pki), model=model, root=docroot)
    files = mapped_files(t.pid)
    assert os.path.join(os.path.realpath(BUILD), "tls.so") in files, files
    assert [f for f in files if "libssl.so" in f], files


@pytest.mark.parametrize("case", ["missing", "foreign"])
def test_missing_tls_module(pki, docroot, tmp_path, case):
    """The binary without its tls.so (or with something else under that
    name): HTTPS fails at start with one line and exit 2; plain HTTP runs."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "forkhttpd"
    shutil.copy2(os.path.join(BUILD, "forkhttpd"), exe)
    if case == "foreign":
        shutil.copy2(os.path.join(BUILD, "hello.so"), d / "tls.so")
    base = [str(exe), "--host", "127.0.0.1", "--port", "0", "--root", str(docroot)]
    r = subprocess.run(base + tls_args(pki), capture_output=True, timeout=20)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert len(err.strip().splitlines()) == 1, err
    if case == "missing":
        assert f"HTTPS needs {d}/tls.so (make; Debian libssl-dev)" in err, err
    else:
        assert "is not this server's module" in err, err
    assert not any(m in err for m in ("Sanitizer", "runtime error")), err
    # without TLS the same binary serves
    proc = subprocess.Popen(base, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().startswith(b"Serving HTTP on")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
