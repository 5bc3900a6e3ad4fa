"""C apps (--app [PREFIX=]FILE.so:SYMBOL) in every model: the example apps
(hello, echo, environ), mount order, the response rules (500 for a failing
app or an invalid status/header), crash isolation per model, startup errors,
and no fd leak or zombie. The apps are built by `make` (build/*.so)."""
import http.client
import os
import signal
import socket
import subprocess
import time

import pytest

from conftest import (BIN, BUILD, TRICKY_WANT, fd_count, http_request, raw, request_vars,
                      send_tricky, status_of, wait_until, zombies_of)

HELLO = os.path.join(BUILD, "hello.so")
ECHO = os.path.join(BUILD, "echo.so")
ENVIRON = os.path.join(BUILD, "environ.so")
CRASH = os.path.join(BUILD, "crash.so")


def apps(*extra):
    return ["--app", f"/hello={HELLO}:app", "--app", f"/echo={ECHO}:app",
            "--app", f"/env={ENVIRON}:app", "--app", f"/crash={CRASH}:app"] + list(extra)


def request(server, method, path, body=None, headers=None, conn=None):
    return http_request(server, method, path, body, headers, conn)


def environ_of(body):
    env, query = {}, []
    for line in body.decode().splitlines():
        if line.startswith("query: "):
            query.append(tuple(line[7:].split("=", 1)))
        elif line.startswith("requests: "):
            env["requests"] = line[10:]
        elif "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    return env, query


def serving_pid(server, model):
    """The process that serves requests (iterative: the server; event with
    one worker: that worker)."""
    if model == "iterative":
        return server.pid
    return wait_until(lambda: server.workers() and server.workers()[0])


# ---- hello ----

def test_hello(start_server, docroot, model):
    s = start_server(*apps(), model=model, root=docroot)
    r, body = request(s, "GET", "/hello")
    assert (r.status, body) == (200, b"Hello, World!\n")
    assert r.getheader("Content-Type") == "text/plain"
    assert r.getheader("Content-Length") == "14"
    assert r.getheader("Server").startswith("forkhttpd/")
    r, body = request(s, "HEAD", "/hello")
    assert (r.status, body) == (200, b"")
    assert r.getheader("Content-Length") == "14"
    # keep-alive: several requests on one connection
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    for _ in range(5):
        r, body = request(s, "GET", "/hello/any/path?x", conn=c)
        assert (r.status, body) == (200, b"Hello, World!\n")
    c.close()
    # pipelined, and HTTP/1.0 (closes)
    out = raw(s, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" * 3 +
              b"GET /hello HTTP/1.0\r\n\r\n")
    assert out.count(b"Hello, World!\n") == 4 and out.count(b"HTTP/1.1 200 OK") == 4


def test_hello_needs_no_server_symbol():
    out = subprocess.run(["nm", "-D", "--undefined-only", HELLO], capture_output=True,
                         text=True, check=True).stdout
    undefined = [l.split()[-1] for l in out.splitlines() if l.split()[0] == "U"]
    # (the sanitizer build adds its runtime's entry points)
    undefined = [u for u in undefined if not u.startswith(("__asan", "__ubsan", "__sanitizer"))]
    assert undefined == [], undefined


# ---- echo ----

def test_echo_get_headers(start_server, model):
    s = start_server(*apps(), model=model)
    out = raw(s, b"GET /echo/x HTTP/1.1\r\nHost: h\r\nX-One:  1 \r\nx-two: a, b\r\n"
              b"Connection: close\r\n\r\n")
    assert status_of(out) == 200
    body = out.split(b"\r\n\r\n", 1)[1]
    assert body == b"Host: h\nX-One: 1\nx-two: a, b\nConnection: close\n"


@pytest.mark.parametrize("size", [0, 1, 100000, 3 * 1024 * 1024 + 7])
def test_echo_post(start_server, model, size):
    s = start_server(*apps("--max-body", str(8 << 20)), model=model)
    data = os.urandom(size)
    r, body = request(s, "POST", "/echo", body=data,
                      headers={"Content-Type": "application/x-test"})
    assert r.status == 200 and body == data
    assert r.getheader("Content-Type") == "application/x-test"
    assert r.getheader("Content-Length") == str(size)
    # chunked request body, in uneven pieces
    pieces = [data[i:i + 65521] for i in range(0, size, 65521)]
    r, body = request(s, "PUT", "/echo", body=iter(pieces))
    assert r.status == 200 and body == data


def test_echo_over_max_body(start_server, model):
    s = start_server(*apps("--max-body", "1000"), model=model)
    r, _ = request(s, "POST", "/echo", body=b"x" * 1001)
    assert r.status == 413
    r, body = request(s, "POST", "/echo", body=b"x" * 1000)
    assert (r.status, body) == (200, b"x" * 1000)


# ---- environ, streaming ----

def test_environ(start_server, model):
    s = start_server(*apps(), "--app", f"/={ENVIRON}:app", model=model)
    r, body = request(s, "GET", "/env/a%20b/c?x=1&y=h%20i+j&&z",
                      headers={"X-Custom-Thing": "v1", "Accept": "a/b"})
    assert r.status == 200
    env, query = environ_of(body)
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == "/env"
    assert env["PATH_INFO"] == "/a b/c"
    assert env["QUERY_STRING"] == "x=1&y=h%20i+j&&z"
    assert env["REQUEST_URI"] == "/env/a%20b/c?x=1&y=h%20i+j&&z"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_PORT"] == str(s.port)
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert int(env["REMOTE_PORT"]) > 0
    assert env["HTTP_X_CUSTOM_THING"] == "v1" and env["HTTP_ACCEPT"] == "a/b"
    assert env["HTTP_HOST"] == f"127.0.0.1:{s.port}"
    assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env
    assert query == [("x", "1"), ("y", "h i j"), ("z", "")]
    # the mount "/" has SCRIPT_NAME ""; a POST has CONTENT_*, not HTTP_CONTENT_*
    r, body = request(s, "POST", "/other?", body=b"abc",
                      headers={"Content-Type": "text/x-y", "Host": "example.org:81"})
    env, _ = environ_of(body)
    assert env["SCRIPT_NAME"] == "" and env["PATH_INFO"] == "/other"
    assert env["QUERY_STRING"] == ""
    assert env["CONTENT_LENGTH"] == "3" and env["CONTENT_TYPE"] == "text/x-y"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_NAME"] == "example.org"
    # per-process state from app_init: the count grows on one connection
    # (one process serves a connection in every model)
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    counts = [int(environ_of(request(s, "GET", "/env", conn=c)[1])[0]["requests"])
              for _ in range(3)]
    c.close()
    assert counts[1] == counts[0] + 1 and counts[2] == counts[1] + 1


def test_stream_is_chunked(start_server, model):
    s = start_server(*apps(), model=model)
    out = raw(s, b"GET /env/stream?n=2000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    r, body = request(s, "GET", "/env/stream?n=2000")  # http.client de-chunks
    assert body == b"".join(b"line %d\n" % i for i in range(2000))
    # HTTP/1.0: no chunking, the body ends with the connection
    out = raw(s, b"GET /env/stream?n=3 HTTP/1.0\r\n\r\n")
    head, body = out.split(b"\r\n\r\n", 1)
    assert b"chunked" not in head and body == b"line 0\nline 1\nline 2\n"


def test_mount_prefixes(start_server, docroot, model):
    s = start_server("--app", f"/a={HELLO}:app", "--app", f"/a/b={ECHO}:app",
                     "--app", f"/hello/deeper={ENVIRON}:app", model=model, root=docroot)
    assert request(s, "GET", "/a")[1] == b"Hello, World!\n"
    assert request(s, "GET", "/a/bc")[1] == b"Hello, World!\n"  # segment boundary
    r, body = request(s, "GET", "/a/b/x", headers={"X-E": "1"})
    assert b"X-E: 1\n" in body  # the longer prefix wins
    assert request(s, "GET", "/ab")[0].status == 404  # static, no such file
    assert request(s, "GET", "/hello")[1] == b"Hello, World!\n"  # the static file
    env, _ = environ_of(request(s, "GET", "/hello/deeper/x")[1])
    assert env["SCRIPT_NAME"] == "/hello/deeper" and env["PATH_INFO"] == "/x"


def test_sendfile_body(start_server, tmp_path, model):
    data = os.urandom(2 * 1024 * 1024 + 3)
    (tmp_path / "app-file.bin").write_bytes(data)  # the server's cwd is tmp_path
    s = start_server(*apps(), model=model)
    r, body = request(s, "GET", "/crash/file")
    assert r.status == 200 and body == data
    r, body = request(s, "GET", "/crash/file-range")
    assert r.getheader("Content-Length") == "100" and body == data[10:110]


# ---- failures ----

BAD = ["error", "badheader", "badname", "badstatus", "cl-bad", "two-bodies"]


def test_app_errors_give_500(start_server, model):
    s = start_server(*apps(), model=model)
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    for p in BAD:
        r, body = request(s, "GET", "/crash/" + p, conn=c)
        assert r.status == 500, p
        assert b"Injected" not in body and r.getheader("Injected") is None
        # the same connection goes on
        assert request(s, "GET", "/hello", conn=c)[1] == b"Hello, World!\n"
    c.close()
    r, body = request(s, "GET", "/crash/cl-ok")
    assert (r.status, body, r.getheader("Content-Length")) == (200, b"abc", "3")
    err = s.stderr()
    assert err.count("crash.so:app") >= len(BAD)
    assert '"GET /crash/badheader HTTP/1.1"' in err


def crash_once(s, path="/crash/segv"):
    out = raw(s, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode(), shut=False)
    return out


def test_crash(start_server, model):
    extra = ["--workers", "1"] if model in ("prefork", "event") else []
    s = start_server(*apps(*extra), model=model)
    out = crash_once(s)
    assert status_of(out) == 500 and b"Connection: close" in out
    msg = wait_until(lambda: "crashed with signal 11 (SIGSEGV)" in s.stderr() and s.stderr())
    assert msg and 'crash.so:app crashed' in msg and '"GET /crash/segv HTTP/1.1"' in msg
    if model == "iterative":
        # one process serves everything: the server itself dies by the signal
        assert s.proc.wait(timeout=5) == -signal.SIGSEGV
        s.stop(expect_rc=-signal.SIGSEGV)
        return
    # fork: only that child died; prefork/event: the master replaced the worker
    ok = wait_until(lambda: ok_hello(s), timeout=10)
    assert ok
    assert s.proc.poll() is None
    if model in ("prefork", "event"):
        assert wait_until(lambda: "killed by signal 11" in s.stderr())
    assert wait_until(lambda: not zombies_of(s.pid))


def ok_hello(s):
    try:
        return request(s, "GET", "/hello")[1] == b"Hello, World!\n"
    except (OSError, http.client.HTTPException):
        return False


@pytest.mark.parametrize("path,sig", [("/crash/abort", "SIGABRT"), ("/crash/fpe", "SIGFPE")])
def test_crash_kinds(start_server, path, sig):
    s = start_server(*apps(), model="fork")
    assert status_of(crash_once(s, path)) == 500
    assert wait_until(lambda: f"({sig})" in s.stderr())
    assert ok_hello(s)


def test_crash_in_stream(start_server, model):
    if model == "iterative":
        pytest.skip("kills the server; covered by test_crash")
    s = start_server(*apps(), model=model)
    out = crash_once(s, "/crash/stream-segv")
    # the head and a first chunk went out; then the connection just ends
    assert status_of(out) == 200 and b"partial\n" in out and not out.endswith(b"0\r\n\r\n")
    assert wait_until(lambda: "in its stream" in s.stderr())
    assert wait_until(lambda: ok_hello(s), timeout=10)


# ---- startup ----

def run_bin(*args):
    p = subprocess.run([BIN, "--host", "127.0.0.1", "--port", "0"] + list(args),
                       capture_output=True, text=True, timeout=10)
    return p.returncode, p.stderr


def build_so(tmp_path, name, src):
    c = tmp_path / (name + ".c")
    c.write_text(src)
    so = tmp_path / (name + ".so")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(so), str(c)], check=True)
    return so


def test_startup_errors(tmp_path):
    wrong = build_so(tmp_path, "wrong",
                     "const unsigned forkhttpd_app_api_version = 999;\n"
                     "int app(void *r); int app(void *r) { return 0; }\n")
    noversion = build_so(tmp_path, "nover", "int app(void *r); int app(void *r) { return 0; }\n")
    cases = [
        # (config.c reads a leading '/' as a PREFIX: absolute files need "PREFIX=")
        ([f"/={tmp_path}/missing.so:app"], "cannot open"),
        ([f"/={HELLO}:nope"], "no symbol 'nope'"),
        ([f"/={HELLO}:printf"], "no symbol 'printf'"),  # libc's is not the app's
        ([f"/={wrong}:app"], "version 999"),
        ([f"/={noversion}:app"], "forkhttpd_app_api_version"),
        ([f"/={HELLO}:app", f"/x={tmp_path}/missing.so:app"], "cannot open"),
    ]
    for specs, what in cases:
        args = []
        for spec in specs:
            args += ["--app", spec]
        rc, err = run_bin(*args)
        assert rc == 2, (specs, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("forkhttpd: --app ") and what in lines[0], err


def test_relative_file_is_a_path(start_server, tmp_path):
    # "hello.so" means ./hello.so (the cwd), not a name for the library search path
    import shutil
    shutil.copy(HELLO, tmp_path / "hello.so")
    s = start_server("--app", "hello.so:app", model="iterative")
    assert ok_hello(s)


# ---- resources ----

@pytest.mark.parametrize("m", ["iterative", "event"])
def test_no_fd_leak(start_server, tmp_path, m):
    (tmp_path / "app-file.bin").write_bytes(b"f" * 5000)
    s = start_server(*apps(), "--workers", "1", model=m)
    pid = serving_pid(s, m)

    def round_(n):
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        for i in range(n):
            request(s, "GET", "/hello", conn=c)
            request(s, "POST", "/echo", body=b"x" * (i * 97), conn=c)
            request(s, "GET", "/env/stream?n=5", conn=c)
            request(s, "GET", "/crash/badheader", conn=c)
            request(s, "GET", "/crash/file-range", conn=c)
            request(s, "HEAD", "/env/stream", conn=c)
            if i % 10 == 0:
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        c.close()

    round_(10)
    time.sleep(0.2)
    before = fd_count(pid)
    round_(50)  # 300 requests
    time.sleep(0.2)
    assert wait_until(lambda: fd_count(pid) <= before), (before, fd_count(pid))


def test_no_zombies_fork(start_server):
    s = start_server(*apps(), model="fork")
    for _ in range(20):
        assert ok_hello(s)
    assert wait_until(lambda: not zombies_of(s.pid))


# ---- issue 11: one environ builder (src/environ.c), one owned-field table ----

# TRICKY, send_tricky and request_vars are in conftest.py (CGI and WSGI share them).

def test_environ_rules(start_server, model):
    s = start_server(*apps(), model=model)
    env, _ = environ_of(send_tricky(s, "/env"))
    assert request_vars(env) == TRICKY_WANT
    assert env["SERVER_NAME"] == "example.org"
    # fh_env agrees with the listing, and finds nothing the listing hides
    r, body = request(s, "GET", "/env", headers={"Content-Length": "0"})
    env, _ = environ_of(body)
    assert env["CONTENT_LENGTH"] == "0" and "CONTENT_TYPE" not in env


def test_owned_response_fields_dropped(start_server, model):
    s = start_server(*apps(), model=model)
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    for _ in range(2):
        r, body = request(s, "GET", "/env/owned", conn=c)
        assert (r.status, body, r.getheader("X-Kept")) == (200, b"owned\n", "yes")
        assert r.getheader("Server").startswith("forkhttpd/")
        assert r.getheader("Date") != "app" and r.getheader("Connection") is None
        for name in ("TE", "Trailer", "Upgrade", "Keep-Alive", "Transfer-Encoding"):
            assert r.getheader(name) is None, name
        # Connection: close is a field like the others: dropped, the connection goes on
        r, body = request(s, "GET", "/crash/connection", conn=c)
        assert (r.status, body) == (200, b"ok\n")
    c.close()
    assert wait_until(lambda: "dropped its Trailer field" in s.stderr())
    err = s.stderr()
    # once per field name and process, not once per response
    assert err.count("dropped its Date field") <= (1 if model != "fork" else 2), err

