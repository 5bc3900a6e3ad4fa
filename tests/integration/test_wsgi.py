"""WSGI (--wsgi [PREFIX=]module:callable, build/wsgi.so) in every model: the
example apps (plain WSGI, Flask, Pyramid, Django) through real clients; a test
app under wsgiref.validate.validator (any warning is an error); streaming,
write(), exc_info, close() on a disconnect, large uploads (also chunked),
wsgi.file_wrapper; an app exception is a 500 without the traceback; startup
errors exit 2 with one line; no zombies, no fd leaks. The whole module is
skipped when build/wsgi.so was not built (no libpython3.11-dev)."""
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

from conftest import (BIN, BUILD, REPO, TRICKY_WANT, conn_fd_count, file_fd_count, http_request,
                      raw, request_vars, send_tricky, status_of, wait_until, zombies_of)

WSGI_SO = os.path.join(BUILD, "wsgi.so")
pytestmark = pytest.mark.skipif(not os.path.exists(WSGI_SO), reason="build/wsgi.so not built")

EXAMPLES = os.path.join(REPO, "apps", "python")
# Python's own allocations (interned strings, module state) are not ours to free
LSAN = {"LSAN_OPTIONS": "suppressions=" + os.path.join(REPO, "tests", "lsan-python.supp")
        + ":print_suppressions=0"}

# The test app, written into the test's directory. validator() wraps it at /v;
# /raw is the same app unwrapped, for what the validator forbids on purpose.
TESTAPP = r'''
import hashlib, json, os, sys, time, warnings
from wsgiref.validate import validator
warnings.simplefilter("error")  # a validator warning becomes an exception: a 500

MARKS = os.environ.get("WSGI_MARKS", ".")
with open(os.path.join(MARKS, "imports.txt"), "a") as f:
    f.write("%d\n" % os.getpid())

def ok(start_response, body, ctype="text/plain"):
    start_response("200 OK", [("Content-Type", ctype), ("Content-Length", str(len(body)))])
    return [body]

def qs(environ):
    return dict(p.split("=", 1) for p in environ["QUERY_STRING"].split("&") if "=" in p)

def raw_app(environ, start_response):
    path = environ["PATH_INFO"]
    q = qs(environ)
    inp = environ["wsgi.input"]
    if path.startswith("/env"):
        env = {k: v for k, v in environ.items() if isinstance(v, (str, bool, tuple))}
        env["pid"] = os.getpid()
        return ok(start_response, json.dumps(env).encode(), "application/json")
    if path == "/upload":  # read() in pieces
        h, n = hashlib.sha256(), 0
        while True:
            b = inp.read(65536)
            if not b:
                break
            h.update(b)
            n += len(b)
        return ok(start_response, ("%d %s" % (n, h.hexdigest())).encode())
    if path == "/lines":  # readline, iteration, readlines
        first = inp.readline()
        second = inp.readline(3)
        rest = [l for l in inp]
        return ok(start_response, json.dumps([first.decode(), second.decode(),
                                              len(rest), sum(map(len, rest))]).encode())
    if path == "/readlines":
        lines = inp.readlines()
        return ok(start_response, json.dumps([len(lines), sum(map(len, lines))]).encode())
    if path == "/stream":  # a generator, no Content-Length: chunked, sent as produced
        n, delay = int(q.get("n", "3")), float(q.get("delay", "0"))
        start_response("200 OK", [("Content-Type", "text/plain")])
        def gen():
            for i in range(n):
                yield b"chunk %d at %.3f\n" % (i, time.time())
                if delay:
                    time.sleep(delay)
        return gen()
    if path == "/lazy":  # start_response called from inside the iterable
        def gen():
            start_response("200 OK", [("Content-Type", "text/plain")])
            yield b""
            yield b"lazy\n"
        return gen()
    if path == "/write":
        w = start_response("200 OK", [("Content-Type", "text/plain")])
        w(b"written ")
        w(b"twice, ")
        return [b"then ", b"returned\n"]
    if path == "/raise":
        raise RuntimeError("the app failed on purpose (SECRET-TRACE)")
    if path == "/excinfo":  # an error before any body: exc_info replaces the head
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("oops")
        except ValueError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                           sys.exc_info())
        return [b"recovered\n"]
    if path == "/excinfo-late":  # after the body began: start_response must re-raise
        start_response("200 OK", [("Content-Type", "text/plain")])
        def gen():
            yield b"first\n"
            try:
                raise ValueError("late")
            except ValueError:
                try:
                    start_response("500 Internal Server Error", [("Content-Type", "text/plain")],
                                   sys.exc_info())
                except ValueError:
                    open(os.path.join(MARKS, "reraised"), "w").close()
                    raise
        return gen()
    if path == "/twice":
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"never\n"]
    if path == "/forever":  # close() must run when the client goes away
        mark = os.path.join(MARKS, q["mark"])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        class Body:
            def __iter__(self):
                return self
            def __next__(self):
                time.sleep(0.002)
                return b"x" * 65536
            def close(self):
                with open(mark, "w") as f:
                    f.write("%d" % os.getpid())
        return Body()
    if path == "/closed":  # close() after a normal end, too
        mark = os.path.join(MARKS, q["mark"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        def gen():
            try:
                yield b"a"
                yield b"b"
            finally:
                open(mark, "w").close()
        return gen()
    if path == "/file":
        f = open(q["path"], "rb")
        if "skip" in q:
            f.read(int(q["skip"]))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 32768)
    if path == "/badheader":
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Bad", "a\r\nInjected: 1")])
        return [b"no\n"]
    if path == "/hopbyhop":  # the fields the server owns are dropped (src/owned_hdr.c)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Connection", "close"),
                                  ("Date", "app"), ("Server", "app"), ("TE", "trailers"),
                                  ("Trailer", "X"), ("Transfer-Encoding", "chunked"),
                                  ("X-Kept", "yes"), ("Content-Length", " 6 ")])
        return [b"owned\n"]
    if path == "/badlength":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "99")])
        return [b"short\n"]
    if path == "/str":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return ["not bytes"]
    if path == "/big":
        n = int(q["n"])
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [bytes(range(256)) * (n // 256)]
    if path.startswith("/latin1"):
        start_response("201 Created", [("Content-Type", "text/plain"),
                                       ("X-Latin", "caf\u00e9")])
        return [environ["PATH_INFO"].encode("latin-1")]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]

app = validator(raw_app)
'''

EXAMPLE_MOUNTS = ["--wsgi", "/hello=hello:app", "--wsgi", "/flask=flaskapp:app",
                  "--wsgi", "/pyramid=pyramidapp:app",
                  "--wsgi", "/django=djangoapp.wsgi:application"]


def wsgi_server(start_server, tmp_path, *args, model="event", env=None, **kw):
    (tmp_path / "wsgitest.py").write_text(TESTAPP)
    e = dict(LSAN, WSGI_MARKS=str(tmp_path))
    e.update(env or {})
    return start_server("--pythonpath", tmp_path, "--max-body", 64 << 20, *args,
                        model=model, env=e, root=tmp_path, **kw)


def get(server, path, method="GET", body=None, headers=None, conn=None):
    return http_request(server, method, path, body, headers, conn, timeout=15)


def serving_pid(server, model):
    if model in ("iterative", "fork"):
        return server.pid
    return wait_until(lambda: server.workers() and server.workers()[0])


# ---- the example apps, every model ----

def test_examples(start_server, tmp_path, model):
    s = start_server("--pythonpath", EXAMPLES, *EXAMPLE_MOUNTS, model=model, env=LSAN,
                     root=tmp_path)
    want = {"/hello/": b"Hello, World!\n",
            "/flask/hello": b"Hello world from Flask!\n",
            "/pyramid/hello": b"Hello world from Pyramid!\n",
            "/django/hello": b"Hello world from Django!\n"}
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=15)
    for _ in range(2):  # keep-alive across apps
        for path, body in want.items():
            r, data = get(s, path, conn=c)
            assert (r.status, data) == (200, body), path
            assert r.getheader("Content-Type").startswith("text/plain")
            assert r.getheader("Content-Length") == str(len(body))
            # HEAD: the same head (the app's Content-Length), no body
            r, data = get(s, path, method="HEAD", conn=c)
            assert (r.status, data) == (200, b"")
            assert r.getheader("Content-Length") == str(len(body)), path
    c.close()
    for path in ("/flask/nope", "/pyramid/nope", "/django/nope"):
        assert get(s, path)[0].status == 404
    # curl, HTTP/1.0 and a pipelined burst
    out = subprocess.run(["curl", "-s", "--http1.0", f"http://127.0.0.1:{s.port}/django/hello",
                          f"http://127.0.0.1:{s.port}/flask/hello"],
                         capture_output=True, timeout=15).stdout
    assert out == want["/django/hello"] + want["/flask/hello"]
    resp = raw(s, b"GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n" * 3 +
               b"GET /pyramid/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert resp.count(b"HTTP/1.1 200 OK") == 4 and resp.endswith(want["/pyramid/hello"])
    # a child that just exited is a zombie until the SIGCHLD handler runs:
    # none may outlive a reap cycle
    assert wait_until(lambda: zombies_of(s.pid) == [])


# ---- PEP 3333 under wsgiref.validate ----

def test_environ_validated(start_server, tmp_path, model):
    s = wsgi_server(start_server, tmp_path, "--workers", "1", "--wsgi", "/v=wsgitest:app",
                    model=model)
    r, data = get(s, "/v/env/a%20b?x=1&y=%20", headers={"X-Thing": "one", "Cookie": "a=1"})
    assert r.status == 200, (data, s.stderr())
    env = json.loads(data)
    assert env["REQUEST_METHOD"] == "GET"
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/v", "/env/a b")
    assert env["QUERY_STRING"] == "x=1&y=%20"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"] == "127.0.0.1" and env["SERVER_PORT"] == str(s.port)
    assert env["REMOTE_ADDR"] == "127.0.0.1" and int(env["REMOTE_PORT"]) > 0
    assert env["HTTP_X_THING"] == "one" and env["HTTP_COOKIE"] == "a=1"
    assert env["wsgi.version"] == [1, 0] and env["wsgi.url_scheme"] == "http"
    # --threads (default 64) runs WSGI on pool threads in the event model
    assert env["wsgi.multithread"] is (model == "event") and env["wsgi.run_once"] is False
    assert env["wsgi.multiprocess"] is (model in ("fork", "prefork"))
    assert "CONTENT_LENGTH" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["SERVER_SOFTWARE"].startswith("forkhttpd/")
    # a body: CONTENT_TYPE / CONTENT_LENGTH, never HTTP_CONTENT_*
    r, data = get(s, "/v/env", method="POST", body=b"abc",
                  headers={"Content-Type": "text/x-test"})
    env = json.loads(data)
    assert (env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == ("text/x-test", "3")
    assert "HTTP_CONTENT_TYPE" not in env
    # a header with '_' is dropped (it would pose as its '-' twin)
    r, data = get(s, "/v/env", headers={"X_Thing": "spoof"})
    assert "HTTP_X_THING" not in json.loads(data)
    # every endpoint the validator sees stays quiet: no warning turned error
    for path, want in (("/v/stream?n=4", 200), ("/v/write", 200), ("/v/lazy", 200),
                       ("/v/nope", 404)):
        r, data = get(s, path)
        assert r.status == want, (path, data)
    assert get(s, "/v/lines", method="POST", body=b"one\ntwo\nthree\n")[0].status == 200
    err = s.stderr()
    assert "Warning" not in err and "Traceback" not in err, err


def test_bodies(start_server, tmp_path, model):
    s = wsgi_server(start_server, tmp_path, "--wsgi", "/v=wsgitest:app",
                    "--wsgi", "/raw=wsgitest:raw_app", model=model)
    # write() then the iterable, in order
    r, data = get(s, "/v/write")
    assert (r.status, data) == (200, b"written twice, then returned\n")
    # a generator without Content-Length goes out chunked
    r, data = get(s, "/v/stream?n=5")
    assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
    assert data.count(b"chunk ") == 5
    r, data = get(s, "/v/lazy")
    assert (r.status, data) == (200, b"lazy\n")
    # HTTP/1.0: no chunking, the end of the body is the close
    resp = raw(s, b"GET /raw/stream?n=3 HTTP/1.0\r\n\r\n")
    assert b" 200 " in resp[:20]
    assert resp.count(b"chunk ") == 3 and b"Transfer-Encoding" not in resp
    # a big list body (streamed from the bytes object, with its length)
    r, data = get(s, "/raw/big?n=3145728")
    assert r.status == 200 and len(data) == 3145728 and data[:4] == bytes(range(4))
    assert r.getheader("Content-Length") == "3145728"
    # latin-1 in the path and in header values; a status other than 200
    r, data = get(s, "/raw/latin1%E9")
    assert r.status == 201 and data == "/latin1\u00e9".encode("latin-1")
    assert r.getheader("X-Latin") == "caf\u00e9"
    # close() after a normal end
    r, data = get(s, "/raw/closed?mark=closed-ok")
    assert data == b"ab"
    assert wait_until(lambda: (tmp_path / "closed-ok").exists())


def test_streaming_is_incremental(start_server, tmp_path):
    """A slow generator's first chunk arrives before the last one is made."""
    s = wsgi_server(start_server, tmp_path, "--wsgi", "/raw=wsgitest:raw_app", model="prefork")
    c = s.connect(timeout=10)
    c.sendall(b"GET /raw/stream?n=4&delay=0.3 HTTP/1.1\r\nHost: x\r\n\r\n")
    first = b""
    while b"chunk 0" not in first:  # the head may come in a write of its own
        b = c.recv(65536)
        assert b
        first += b
    t_first = time.time()
    rest = b""
    while not rest.endswith(b"0\r\n\r\n"):
        b = c.recv(65536)
        assert b
        rest += b
    c.close()
    assert b"chunk 0" in first and b"chunk 3" not in first
    assert t_first < time.time() - 0.5  # the rest came well after the first chunk


def test_exc_info(start_server, tmp_path, model):
    s = wsgi_server(start_server, tmp_path, "--wsgi", "/raw=wsgitest:raw_app",
                    "--wsgi", "/v=wsgitest:app", model=model)
    # before any body: the new status and headers win
    r, data = get(s, "/v/excinfo")
    assert (r.status, data) == (500, b"recovered\n")
    # after the body began: start_response re-raises; the response is cut short
    resp = raw(s, b"GET /raw/excinfo-late HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(resp) == 200 and b"first\n" in resp and not resp.endswith(b"0\r\n\r\n")
    assert wait_until(lambda: (tmp_path / "reraised").exists())
    # start_response twice without exc_info: an error, so a 500
    assert get(s, "/raw/twice")[0].status == 500
    assert get(s, "/raw/env")[0].status == 200  # the server goes on


def test_errors_are_500(start_server, tmp_path, model):
    s = wsgi_server(start_server, tmp_path, "--wsgi", "/raw=wsgitest:raw_app", model=model)
    for path in ("/raw/raise", "/raw/badheader", "/raw/badlength", "/raw/str"):
        r, data = get(s, path)
        assert r.status == 500, path
        assert b"Traceback" not in data and b"SECRET-TRACE" not in data
        assert r.getheader("Injected") is None
    err = s.stderr()
    assert "Traceback (most recent call last)" in err and "SECRET-TRACE" in err
    assert get(s, "/raw/env")[0].status == 200


def test_close_on_disconnect(start_server, tmp_path, model):
    s = wsgi_server(start_server, tmp_path, "--wsgi", "/raw=wsgitest:raw_app", model=model)
    c = s.connect(timeout=10)
    c.sendall(b"GET /raw/forever?mark=gone HTTP/1.1\r\nHost: x\r\n\r\n")
    got = 0
    while got < 300000:
        b = c.recv(65536)
        assert b
        got += len(b)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()  # a reset: the server's next write fails
    assert wait_until(lambda: (tmp_path / "gone").exists(), timeout=10), s.stderr()
    assert get(s, "/raw/env")[0].status == 200


def test_uploads(start_server, tmp_path, model):
    s = wsgi_server(start_server, tmp_path, "--wsgi", "/raw=wsgitest:raw_app",
                    "--wsgi", "/v=wsgitest:app", model=model)
    data = os.urandom(6 << 20)
    want = b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())
    r, body = get(s, "/raw/upload", method="POST", body=data)
    assert (r.status, body) == (200, want)

    def pieces():  # http.client sends an iterable chunked
        for i in range(0, len(data), 1 << 20):
            yield data[i:i + (1 << 20)]
    r, body = get(s, "/raw/upload", method="POST", body=pieces())
    assert (r.status, body) == (200, want)
    # readline/iteration/readlines over a multi-MiB body (validated, too)
    text = b"first line\n" + b"".join(b"line %d %s\n" % (i, b"y" * (i % 300))
                                      for i in range(30000)) + b"no newline at end"
    r, body = get(s, "/v/lines", method="POST", body=text)
    assert r.status == 200, body
    first, second, nrest, nbytes = json.loads(body)
    assert first == "first line\n" and second == "lin"
    assert nrest == 30001 and nbytes == len(text) - len("first line\nlin")
    r, body = get(s, "/raw/readlines", method="POST", body=text)
    assert json.loads(body) == [30002, len(text)]


def test_file_wrapper(start_server, tmp_path, model):
    s = wsgi_server(start_server, tmp_path, "--wsgi", "/raw=wsgitest:raw_app", model=model)
    f = tmp_path / "big.bin"
    content = os.urandom(3 << 20)
    f.write_bytes(content)
    r, data = get(s, f"/raw/file?path={f}")
    assert r.status == 200 and data == content
    assert r.getheader("Content-Length") == str(len(content))
    # from where the file object stands (it read ahead into its buffer)
    r, data = get(s, f"/raw/file?path={f}&skip=1000")
    assert data == content[1000:]
    # a non-regular file is iterated instead
    r, data = get(s, "/raw/file?path=/dev/null")
    assert (r.status, data) == (200, b"")


def test_no_leaks(start_server, tmp_path, model):
    # one worker: the request below proves it is up (its own import done)
    s = wsgi_server(start_server, tmp_path, "--workers", "1", "--wsgi", "/raw=wsgitest:raw_app",
                    model=model)
    pid = serving_pid(s, model)
    assert get(s, "/raw/env")[0].status == 200
    before = conn_fd_count(pid)
    files_before = file_fd_count(pid, tmp_path)  # its stderr file is under tmp_path too
    for i in range(30):
        assert get(s, "/raw/upload", method="POST", body=b"x" * 5000)[0].status == 200
        assert get(s, "/raw/stream?n=3")[0].status == 200
        assert get(s, "/raw/raise")[0].status == 500
        assert get(s, f"/raw/file?path={tmp_path / 'wsgitest.py'}")[0].status == 200
    assert wait_until(lambda: conn_fd_count(pid) <= before), (
        before, conn_fd_count(pid), [os.readlink(f"/proc/{pid}/fd/{f}") for f in os.listdir(f"/proc/{pid}/fd")])
    # wsgi.file_wrapper's files are closed too
    assert wait_until(lambda: file_fd_count(pid, tmp_path) <= files_before)
    assert wait_until(lambda: zombies_of(s.pid) == [])


# ---- the process model ----

def imports(tmp_path):
    p = tmp_path / "imports.txt"
    return [int(x) for x in p.read_text().split()] if p.exists() else []


def test_preload(start_server, tmp_path):
    # --preload: imported once, in the master, before forking the workers
    s = wsgi_server(start_server, tmp_path, "--preload", "--workers", "2",
                    "--wsgi", "/raw=wsgitest:raw_app", model="event")
    pids = {json.loads(get(s, "/raw/env")[1])["pid"] for _ in range(10)}
    assert imports(tmp_path) == [s.pid] and s.pid not in pids
    s.stop()
    (tmp_path / "imports.txt").unlink()
    # without it: a startup check in a throw-away child, then each worker imports
    s = wsgi_server(start_server, tmp_path, "--workers", "2",
                    "--wsgi", "/raw=wsgitest:raw_app", model="event")
    assert wait_until(lambda: len(imports(tmp_path)) == 3)
    assert s.pid not in imports(tmp_path)
    assert set(s.workers()) <= set(imports(tmp_path))
    s.stop()
    (tmp_path / "imports.txt").unlink()
    # fork: imported once in the parent, the children inherit it
    s = wsgi_server(start_server, tmp_path, "--wsgi", "/raw=wsgitest:raw_app", model="fork")
    pids = {json.loads(get(s, "/raw/env")[1])["pid"] for _ in range(5)}
    assert imports(tmp_path) == [s.pid] and len(pids) == 5 and s.pid not in pids


def run_bad(tmp_path, *args):
    (tmp_path / "broken.py").write_text("def app(:\n")
    (tmp_path / "notcallable.py").write_text("app = 42\n")
    (tmp_path / "raises.py").write_text("raise RuntimeError('no config here')\n")
    env = dict(os.environ, **LSAN)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return subprocess.run([BIN, "--host", "127.0.0.1", "--port", "0", "--pythonpath",
                           str(tmp_path)] + list(args),
                          capture_output=True, timeout=30, cwd=str(tmp_path), env=env)


@pytest.mark.parametrize("spec,why", [
    ("nosuchmodule:app", "No module named 'nosuchmodule'"),
    ("wsgitest:nope", "no callable 'nope'"),
    ("notcallable:app", "not a callable"),
    ("broken:app", "SyntaxError"),
    ("raises:app", "RuntimeError: no config here"),
])
@pytest.mark.parametrize("mode", [["--model", "event"], ["--model", "fork"],
                                  ["--model", "event", "--preload"]])
def test_startup_errors(tmp_path, spec, why, mode):
    (tmp_path / "wsgitest.py").write_text(TESTAPP)
    p = run_bad(tmp_path, *mode, "--wsgi", spec)
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert b"Serving HTTP" not in p.stdout
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and why in lines[0] and spec in lines[0], err


def test_usage_errors(tmp_path):
    for args, why in ((["--wsgi", "nocolon"], "expected [PREFIX=]MODULE:CALLABLE"),
                      (["--wsgi", "x=a:b"], "PREFIX must start with '/'"),
                      (["--pythonpath", "/no/such/dir", "--wsgi", "a:b"], "/no/such/dir"),
                      (["--chdir", "/no/such/dir", "--wsgi", "a:b"], "/no/such/dir")):
        p = run_bad(tmp_path, *args)
        lines = p.stderr.decode().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and why in lines[0], lines


def test_chdir(start_server, tmp_path):
    sub = tmp_path / "proj"
    sub.mkdir()
    (sub / "chdirapp.py").write_text(
        "import os\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [os.getcwd().encode()]\n")
    s = start_server("--chdir", sub, "--wsgi", "chdirapp:app", model="prefork", env=LSAN,
                     root=tmp_path)
    r, data = get(s, "/")
    assert (r.status, data) == (200, str(sub).encode())


# ---- issue 11: CGI, C apps and WSGI see the same request ----

def text_env(body):
    return dict(line.split("=", 1) for line in body.decode().splitlines() if "=" in line)


def test_gateways_agree(start_server, tmp_path, model):
    cgi = tmp_path / "cgi"
    cgi.mkdir()
    shutil.copy(os.path.join(REPO, "tests", "cgi-bin", "env.sh"), cgi / "env.sh")
    os.chmod(cgi / "env.sh", 0o755)
    s = wsgi_server(start_server, tmp_path, "--wsgi", "/raw=wsgitest:raw_app",
                    "--app", f"/app={os.path.join(BUILD, 'environ.so')}:app",
                    "--cgi", f"/cgi={cgi}", model=model)
    envs = {"wsgi": json.loads(send_tricky(s, "/raw/env")),
            "app": text_env(send_tricky(s, "/app/x")),
            "cgi": text_env(send_tricky(s, "/cgi/env.sh"))}
    for name, env in envs.items():
        assert request_vars(env) == TRICKY_WANT, name
        assert env["SERVER_NAME"] == "example.org", name


def test_owned_response_fields_dropped(start_server, tmp_path, model):
    s = wsgi_server(start_server, tmp_path, "--wsgi", "/raw=wsgitest:raw_app", model=model)
    for _ in range(2):
        r, data = get(s, "/raw/hopbyhop")
        assert (r.status, data, r.getheader("X-Kept")) == (200, b"owned\n", "yes")
        assert r.getheader("Content-Length") == "6"
        assert r.getheader("Server").startswith("forkhttpd/") and r.getheader("Date") != "app"
        for name in ("Connection", "TE", "Trailer", "Transfer-Encoding"):
            assert r.getheader(name) is None, name
    assert wait_until(lambda: "dropped its Trailer field" in s.stderr())

