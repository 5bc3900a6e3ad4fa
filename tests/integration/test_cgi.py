"""CGI/1.1 (RFC 3875): --cgi PREFIX=DIR, over every concurrency model.

The scripts are in tests/cgi-bin (sh, perl, python3); each test copies them
into its tmp_path with explicit modes (git may not keep them). Beside them
runs a real CGI program shipped by Debian: git http-backend, cloned from."""
import hashlib
import http.client
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import (GIT_BACKEND, REPO, TRICKY_WANT, descendants, git_cgi_dir, proc_state, raw,
                      recv_all, request_vars, send_tricky, status_of, wait_until)

CGI_SRC = os.path.join(REPO, "tests", "cgi-bin")

# Everything a script may find in its environment (RFC 3875 4.1 and the usual
# additions); HTTP_* come from the request.
ALLOWED_ENV = {
    "AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "GATEWAY_INTERFACE", "PATH_INFO",
    "PATH_TRANSLATED", "QUERY_STRING", "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_PORT",
    "REQUEST_METHOD", "SCRIPT_NAME", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL",
    "SERVER_SOFTWARE", "REQUEST_URI", "SCRIPT_FILENAME", "DOCUMENT_ROOT", "PATH",
    "PWD",  # set by the shell itself
}


@pytest.fixture
def site(tmp_path):
    """tmp_path/www (document root), tmp_path/cgi-bin (the scripts), and
    tmp_path/outside.sh: an executable outside DIR that leaves a marker if run."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello").write_bytes(b"Hello, World!\n")
    cgi = tmp_path / "cgi-bin"
    shutil.copytree(CGI_SRC, cgi)
    for dirpath, dirs, files in os.walk(cgi):
        for f in files:
            os.chmod(os.path.join(dirpath, f), 0o644 if f == "noexec.sh" else 0o755)
    marker = tmp_path / "ran-outside"
    outside = tmp_path / "outside.sh"
    outside.write_text(f"#!/bin/sh\ntouch {marker}\nprintf 'Content-Type: text/plain\\n\\nout\\n'\n")
    os.chmod(outside, 0o755)
    os.symlink("../outside.sh", cgi / "escape.sh")
    os.symlink(str(outside), cgi / "escape-abs.sh")
    return tmp_path


def serve(start_server, site, model, *extra, env=None):
    return start_server("--cgi", f"/cgi={site / 'cgi-bin'}", "--max-body", 16 << 20, *extra,
                        model=model, root=site / "www", env=env)


def request(server, method, path, body=None, headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.headers, r.read()
    finally:
        c.close()


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def scripts_of(server):
    """Descendants of the server that are not forkhttpd itself (CGI scripts)."""
    return [p for p in descendants(server.pid) if "forkhttpd" not in cmdline(p)]


def zombies_under(server):
    return [p for p in descendants(server.pid) if proc_state(p) == "Z"]


def assert_clean(server):
    """No script left running, no zombie anywhere under the server."""
    assert wait_until(lambda: not scripts_of(server), 5), [cmdline(p) for p in scripts_of(server)]
    assert wait_until(lambda: not zombies_under(server), 5), zombies_under(server)


def group_members(pgid):
    """Live processes of a process group. (A killed grandchild is reparented
    to init, which reaps it on its own schedule: a zombie there is gone.)"""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                    if int(fields[2]) == pgid and fields[0] != "Z":
                        out.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def parse_env(body):
    env = {}
    for line in body.decode().splitlines():
        k, _, v = line.partition("=")
        env[k] = v
    return env


# ---- the environment ----

def test_env(start_server, site, model):
    s = serve(start_server, site, model, env={"FORKHTTPD_SECRET": "leak"})
    st, h, body = request(s, "GET", "/cgi/env.sh/a/b%20c?x=1&y=%41",
                          headers={"Proxy": "http://evil:1", "X-A": "1", "Host": "example.org:81",
                                   "Authorization": "Basic Zm9vOmJhcg==", "X_Smuggle": "1"})
    assert st == 200 and h["Content-Type"] == "text/plain"
    env = parse_env(body)
    assert set(env) - ALLOWED_ENV <= {k for k in env if k.startswith("HTTP_")}, env
    assert "FORKHTTPD_SECRET" not in env
    assert "HTTP_PROXY" not in env  # httpoxy
    assert "HTTP_X_SMUGGLE" not in env  # '_' in a name: dropped
    assert env["GATEWAY_INTERFACE"] == "CGI/1.1"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == "/cgi/env.sh"
    assert env["PATH_INFO"] == "/a/b c"
    assert env["PATH_TRANSLATED"] == str(site / "www") + "/a/b c"
    assert env["QUERY_STRING"] == "x=1&y=%41"
    assert env["REQUEST_URI"] == "/cgi/env.sh/a/b%20c?x=1&y=%41"
    assert env["SCRIPT_FILENAME"] == str(site / "cgi-bin" / "env.sh")
    assert env["DOCUMENT_ROOT"] == str(site / "www")
    assert env["REMOTE_ADDR"] == "127.0.0.1" and int(env["REMOTE_PORT"]) > 0
    assert env["SERVER_PORT"] == str(s.port)
    assert env["SERVER_NAME"] == "example.org"
    assert env["SERVER_SOFTWARE"].startswith("forkhttpd/")
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert env["AUTH_TYPE"] == "Basic"
    assert env["HTTP_X_A"] == "1"
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env  # no body
    assert env["PWD"] == str(site / "cgi-bin")  # run in the script's directory
    assert_clean(s)


def test_env_repeated_fields_and_body(start_server, site, model):
    s = serve(start_server, site, model)
    req = (b"POST /cgi/env.sh HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nCookie: a=1\r\n"
           b"Cookie: b=2\r\nContent-Type: text/x-test\r\nContent-Length: 5\r\n"
           b"Connection: close\r\n\r\nhello")
    # no half-close: a client that shuts its side while a script works on the
    # head is taken as gone, and the script is stopped (as nginx does)
    resp = raw(s, req, shut=False)
    assert status_of(resp) == 200
    env = parse_env(resp.split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
                    .replace(b"\r\n", b""))  # one chunk
    assert env["HTTP_X_A"] == "1, 2"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["CONTENT_LENGTH"] == "5" and env["CONTENT_TYPE"] == "text/x-test"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["REQUEST_METHOD"] == "POST"
    assert_clean(s)


def test_only_std_fds(start_server, site, model):
    s = serve(start_server, site, model)
    st, _, body = request(s, "GET", "/cgi/fds.py")
    assert st == 200
    fds = dict(line.split(" -> ", 1) for line in body.decode().splitlines())
    assert sorted(fds) == ["0", "1", "2"], fds
    assert fds["0"] == "/dev/null" and fds["1"].startswith("pipe:")
    # with a body, stdin is the spooled body file
    st, _, body = request(s, "POST", "/cgi/fds.py", body=b"x" * 10)
    assert st == 200
    fds = dict(line.split(" -> ", 1) for line in body.decode().splitlines())
    assert sorted(fds) == ["0", "1", "2"], fds
    assert fds["0"] != "/dev/null" and not fds["0"].startswith("pipe:"), fds
    assert_clean(s)


# ---- bodies in and out ----

def test_large_bodies(start_server, site, model):
    s = serve(start_server, site, model)
    data = os.urandom(5 << 20)
    st, h, body = request(s, "POST", "/cgi/echo.py", body=data)
    assert st == 200 and h["X-Content-Length"] == str(len(data)) and body == data
    # chunked request body: de-chunked before the script sees it
    def gen():
        for i in range(0, len(data), 300000):
            yield data[i:i + 300000]
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=20)
    c.request("POST", "/cgi/echo.py", body=gen(), encode_chunked=True)
    r = c.getresponse()
    got = r.read()
    c.close()
    assert r.status == 200 and r.headers["X-Content-Length"] == str(len(data))
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    # a large response, streamed (chunked)
    st, h, body = request(s, "GET", "/cgi/big.py?8")
    assert st == 200 and h["Transfer-Encoding"] == "chunked"
    assert body == bytes(range(256)) * 4096 * 8
    assert_clean(s)


def test_streaming_is_progressive(start_server, site, model):
    s = serve(start_server, site, model)
    go = site / "go"
    sock = s.connect(10)
    sock.sendall(f"GET /cgi/slow.py?{go} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    got = b""
    while b"first line\n" not in got:
        b = sock.recv(65536)
        assert b, got
        got += b
    assert b"last line" not in got  # the script is still waiting for us
    assert b"Transfer-Encoding: chunked" in got
    go.write_bytes(b"")
    while not got.endswith(b"\r\n0\r\n\r\n"):
        b = sock.recv(65536)
        assert b, got
        got += b
    assert b"last line\n" in got
    # keep-alive: the next CGI request on the same connection works
    sock.sendall(b"GET /cgi/hello.sh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rest = recv_all(sock)
    sock.close()
    assert status_of(rest) == 200 and b"Hello, World!" in rest
    assert_clean(s)


def test_keepalive_many(start_server, site, model):
    s = serve(start_server, site, model)
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    for i in range(5):
        c.request("GET", "/cgi/hello.sh" if i % 2 else "/cgi/status.pl")
        r = c.getresponse()
        # each answer is the one to its own request: none shifted by one
        want = (200, b"Hello, World!\n") if i % 2 else (404, b"not here")
        assert (r.status, r.read()) == want, i
    c.request("HEAD", "/cgi/big.py?50")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b""
    c.request("GET", "/hello")  # static, after CGI on the same connection
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"Hello, World!\n"
    c.close()
    assert_clean(s)


# ---- the script's header block ----

def test_status_location_length(start_server, site, model):
    s = serve(start_server, site, model)
    st, h, body = request(s, "GET", "/cgi/status.pl")
    assert (st, body) == (404, b"not here")
    assert h["X-Script"] == "perl" and h["Content-Length"] == "8" and "Transfer-Encoding" not in h
    st, h, body = request(s, "GET", "/cgi/redirect.pl?local")
    assert st == 302 and h["Location"] == "/hello"
    st, h, body = request(s, "GET", "/cgi/redirect.pl")
    assert st == 301 and h["Location"] == "http://example.com/x" and body == b"moved\n"
    st, h, body = request(s, "GET", "/cgi/sub/deep.sh/p/q")
    assert st == 200
    assert body.decode().strip() == (f"deep SCRIPT_NAME=/cgi/sub/deep.sh PATH_INFO=/p/q "
                                      f"PWD={site / 'cgi-bin' / 'sub'}")
    # HTTP/1.0: no chunked framing, close-delimited
    resp = raw(s, b"GET /cgi/hello.sh HTTP/1.0\r\n\r\n", shut=False)
    assert resp.startswith(b"HTTP/1.1 200") and resp.endswith(b"\r\n\r\nHello, World!\n")
    assert b"chunked" not in resp
    assert_clean(s)


def test_bad_output_and_crash(start_server, site, model):
    s = serve(start_server, site, model)
    for name in ("bad.sh", "badstatus.sh", "crash.sh", "badinterp.sh"):
        st, _, _ = request(s, "GET", f"/cgi/{name}")
        assert st == 502, name
    # fewer bytes than its Content-Length: the connection is cut, not kept alive
    t0 = time.monotonic()
    resp = raw(s, b"GET /cgi/short.sh HTTP/1.1\r\nHost: x\r\n\r\n", shut=False, timeout=5)
    assert time.monotonic() - t0 < 3  # closed by the server, not raw()'s timeout
    assert status_of(resp) == 200 and b"Content-Length: 100" in resp
    assert resp.endswith(b"\r\n\r\nabc\n")
    assert_clean(s)
    err = s.stderr()
    assert "cgi /cgi/bad.sh: a header line without a field name" in err
    assert "cgi /cgi/badstatus.sh: a bad Status field" in err
    assert "cgi /cgi/crash.sh: killed by signal 11" in err
    assert "cgi /cgi/badinterp.sh: cannot run" in err
    assert "cgi /cgi/short.sh: output ended 96 bytes short of its Content-Length" in err


# ---- limits ----

def test_timeout_kills_group(start_server, site, model):
    s = serve(start_server, site, model, "--cgi-timeout", "1")
    pidfile = site / "sleep.pid"
    t0 = time.monotonic()
    st, _, _ = request(s, "GET", f"/cgi/sleep.sh?{pidfile}")
    assert st == 504
    assert 0.9 < time.monotonic() - t0 < 5
    pid = int(pidfile.read_text())
    assert wait_until(lambda: not group_members(pid), 5), group_members(pid)
    assert_clean(s)
    # the log line says which timeout fired, for which client and request
    assert re.search(r"warn: handler timeout \(1000 ms\) from 127\.0\.0\.1 port \d+ on "
                     r"\"GET /cgi/sleep\.sh\?\S+ HTTP/1\.1\"; no response head", s.stderr())


def test_client_disconnect(start_server, site, model):
    s = serve(start_server, site, model)
    sock = s.connect(10)
    sock.sendall(b"GET /cgi/big.py?2000 HTTP/1.1\r\nHost: x\r\n\r\n")
    got = 0
    while got < 1 << 20:
        b = sock.recv(65536)
        assert b
        got += len(b)
    assert any("big.py" in cmdline(p) for p in scripts_of(s))
    sock.close()
    assert_clean(s)
    # the server goes on
    st, _, body = request(s, "GET", "/cgi/hello.sh")
    assert (st, body) == (200, b"Hello, World!\n")


def test_cgi_max(start_server, site):
    s = serve(start_server, site, "event", "--workers", "1", "--cgi-max", "1")
    go = site / "go"
    sock = s.connect(10)
    sock.sendall(f"GET /cgi/slow.py?{go} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    got = b""
    while b"first line" not in got:
        b = sock.recv(65536)
        assert b, got
        got += b
    st, h, _ = request(s, "GET", "/cgi/hello.sh")
    assert st == 503 and h["Retry-After"] == "1"
    go.write_bytes(b"")
    sock.close()
    assert_clean(s)
    assert request(s, "GET", "/cgi/hello.sh")[0] == 200


# ---- security ----

def test_forbidden_and_traversal(start_server, site, model):
    s = serve(start_server, site, model)
    assert request(s, "GET", "/cgi/noexec.sh")[0] == 403
    # a symlink out of DIR looks like a missing script (src/confine.c)
    assert request(s, "GET", "/cgi/escape.sh")[0] == 404
    assert request(s, "GET", "/cgi/escape-abs.sh")[0] == 404
    assert request(s, "GET", "/cgi/nothere.sh")[0] == 404
    assert request(s, "GET", "/cgi/sub")[0] == 404            # a directory, no script
    assert request(s, "GET", "/cgi/")[0] == 404
    assert request(s, "GET", "/cgi")[0] == 404
    for target in (b"/cgi/../outside.sh", b"/cgi/%2e%2e/outside.sh", b"/cgi/sub/../../outside.sh",
                   b"/cgi/..%2foutside.sh", b"/cgi/%2E%2E/%2E%2E/outside.sh"):
        resp = raw(s, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(resp) in (400, 403, 404), (target, resp[:40])
    # the CGI directory is not served as static content either
    assert request(s, "GET", "/cgi-bin/env.sh")[0] == 404
    assert not (site / "ran-outside").exists()
    assert_clean(s)


# ---- a real CGI program: git http-backend ----

@pytest.mark.skipif(not os.path.exists(GIT_BACKEND), reason="git http-backend not installed")
def test_git_clone(start_server, site, model, tmp_path):
    genv = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@x", GIT_COMMITTER_NAME="t",
                GIT_COMMITTER_EMAIL="t@x", GIT_CONFIG_NOSYSTEM="1", HOME=str(tmp_path))
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True, env=genv)
    (work / "README").write_text("hello from git over CGI\n")
    (work / "blob.bin").write_bytes(os.urandom(300000))
    subprocess.run(["git", "-C", str(work), "add", "."], check=True, env=genv)
    subprocess.run(["git", "-C", str(work), "commit", "-q", "-m", "first"], check=True, env=genv)
    repo = tmp_path / "repos" / "repo.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(repo)], check=True, env=genv)
    gitcgi = git_cgi_dir(tmp_path, repo)
    s = start_server("--cgi", f"/git={gitcgi}", model=model, root=site / "www")
    dest = tmp_path / "clone"
    r = subprocess.run(["git", "clone", "-q", f"http://127.0.0.1:{s.port}/git/repo.git", str(dest)],
                       env=dict(genv, GIT_TERMINAL_PROMPT="0"), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    assert (dest / "README").read_text() == "hello from git over CGI\n"
    assert (dest / "blob.bin").read_bytes() == (work / "blob.bin").read_bytes()
    # smart HTTP was used: the advertisement comes from git-upload-pack
    st, h, body = request(s, "GET", "/git/repo.git/info/refs?service=git-upload-pack")
    assert st == 200 and h["Content-Type"] == "application/x-git-upload-pack-advertisement"
    assert_clean(s)


# ---- the script's lifetime: killed when its client leaves, reaped without waiting ----

def test_client_leaving_before_head_kills_script(start_server, site, model):
    """Clients that leave while their script has not sent its head: the group
    is killed at once (not at --cgi-timeout) and the --cgi-max slots are free
    again - else every other CGI request would get 503 for 30 s."""
    one = model == "iterative"  # serves one connection at a time
    extra = ["--workers", "1"] if model in ("prefork", "event") else []
    s = serve(start_server, site, model, "--cgi-max", "2", "--cgi-timeout", "30", *extra)
    pids = []
    for batch in ([0], [1], [2], [3]) if one else ([0, 1], [2, 3]):
        socks = []
        for i in batch:  # --cgi-max scripts at once (one per connection in iterative)
            pidfile = site / f"sleep{i}.pid"
            sock = s.connect(10)
            sock.sendall(f"GET /cgi/sleep.sh?{pidfile} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 10), i
            pids.append(int(pidfile.read_text()))
            socks.append(sock)
        t0 = time.monotonic()
        for i, sock in zip(batch, socks):
            if i % 2:  # a reset, else a FIN
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        assert wait_until(lambda: not any(group_members(p) for p in pids), 10), \
            [(p, group_members(p)) for p in pids]
        assert time.monotonic() - t0 < 10  # killed at once, not after --cgi-timeout (30 s)
    t0 = time.monotonic()
    st, _, body = request(s, "GET", "/cgi/hello.sh", timeout=10)
    assert (st, body) == (200, b"Hello, World!\n")  # not 503: the slots are free
    assert time.monotonic() - t0 < 5
    assert_clean(s)


def test_lingering_scripts_do_not_stall_the_worker(start_server, site):
    """Scripts that close their stdout and linger: the worker reaps them
    without waiting (their grace is a deadline, not a sleep), so a static
    request on the same event worker is not held up; after the grace their
    groups are killed and reaped. (Waiting 100 ms per script held 6 of them
    up to 600 ms.)"""
    s = serve(start_server, site, "event", "--workers", "1")
    static = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)

    def get_static():
        t = time.monotonic()
        static.request("GET", "/hello")
        r = static.getresponse()
        assert (r.status, r.read()) == (200, b"Hello, World!\n")
        return time.monotonic() - t

    get_static()
    results = {}

    def run(i):
        results[i] = request(s, "GET", f"/cgi/linger.sh?{site / f'linger{i}.pid'}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    pidfiles = [site / f"linger{i}.pid" for i in range(6)]
    assert wait_until(lambda: all(f.exists() and f.read_text().strip() for f in pidfiles), 10)
    (site / "linger-go").write_bytes(b"")  # all six end their output together
    t0 = time.monotonic()
    lat = []
    while any(t.is_alive() for t in threads) or time.monotonic() - t0 < 1.5:
        lat.append(get_static())
    for t in threads:
        t.join()
    static.close()
    assert sorted(results) == list(range(6))
    for i, (st, _, body) in results.items():
        assert (st, body) == (200, b"bye\n"), i
    assert max(lat) < 0.3, f"static GET stalled {max(lat) * 1000:.0f} ms behind lingering scripts"
    # the scripts sleep 5 s: killed after their grace, not waited for
    pids = [int(f.read_text()) for f in pidfiles]
    assert wait_until(lambda: not any(group_members(p) for p in pids), 3), \
        [(p, group_members(p)) for p in pids]
    assert time.monotonic() - t0 < 4.5
    assert_clean(s)  # and reaped: no zombie
    assert request(s, "GET", "/cgi/hello.sh")[0] == 200


# ---- issue 11: one environ builder (src/environ.c), one owned-field table ----

# The TRICKY request (conftest.py): CGI must give exactly the HTTP_* set C
# apps and WSGI give (test_wsgi.py compares all three on one server).

def test_env_rules(start_server, site, model):
    s = serve(start_server, site, model)
    env = parse_env(send_tricky(s, "/cgi/env.sh", timeout=10))
    assert request_vars(env) == TRICKY_WANT
    assert env["SERVER_NAME"] == "example.org"
    # Content-Length: 0 frames an (empty) body: CONTENT_LENGTH=0, as for apps
    st, _, body = request(s, "POST", "/cgi/env.sh", body=b"")
    assert st == 200 and parse_env(body)["CONTENT_LENGTH"] == "0"
    assert_clean(s)


def test_owned_response_fields_dropped(start_server, site, model):
    owned = site / "cgi-bin" / "owned.sh"
    owned.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nDate: script\\r\\n"
                     "Server: script\\r\\nTE: trailers\\r\\nTrailer: X\\r\\n"
                     "Proxy-Authenticate: Basic\\r\\nX-Kept: yes\\r\\n\\r\\nowned\\n'\n")
    os.chmod(owned, 0o755)
    s = serve(start_server, site, model)
    for _ in range(2):
        st, h, body = request(s, "GET", "/cgi/owned.sh")
        assert (st, body, h["X-Kept"]) == (200, b"owned\n", "yes")
        assert h["Server"].startswith("forkhttpd/") and h["Date"] != "script"
        assert h["TE"] is None and h["Trailer"] is None and h["Proxy-Authenticate"] is None
    assert wait_until(lambda: "dropped its Trailer field" in s.stderr())
    assert_clean(s)

