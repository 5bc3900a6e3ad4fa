"""Shared fixtures: start the real forkhttpd binary on 127.0.0.1 --port 0 and
talk to it with real clients. Every server a test starts is stopped with
SIGTERM at the end of the test, unless the test stopped it itself; either way
Server.stop() checks that it exited as expected (0 unless the test says
otherwise), left no process behind (no zombie while it ran, none of its
workers, CGI scripts or other descendants once it exited) and printed no
sanitizer report, neither on stderr nor in its --error-log file.

FORKHTTPD_BUILD (default "build") names the build directory, so the same
suite runs against the ASan+UBSan build (build-asan)."""
import contextlib
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(REPO, os.environ.get("FORKHTTPD_BUILD", "build"))
BIN = os.path.join(BUILD, "forkhttpd")
MODELS = ["iterative", "fork", "prefork", "event"]
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "UndefinedBehaviorSanitizer")


def proc_children(pid):
    """PIDs whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def proc_state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def zombies_of(pid):
    return [c for c in proc_children(pid) if proc_state(c) == "Z"]


def proc_start(pid):
    """The start time of pid (clock ticks since boot), or None if it is gone:
    with the PID it names one process, even if the PID is reused later."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for c in proc_children(p):
            out.append(c)
            todo.append(c)
    return out


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def conn_fd_count(pid):
    """Descriptors that would leak per connection or request: sockets, pipes,
    anonymous inodes, deleted temporary files. Regular files left open by the
    bounded open-file cache are not counted here (see file_fd_count)."""
    n = 0
    for f in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{f}")
        except OSError:
            continue
        if t.startswith(("socket:", "pipe:", "anon_inode:")) or t.endswith("(deleted)"):
            n += 1
    return n


def file_fd_count(pid, under):
    n = 0
    for f in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{f}").startswith(str(under) + "/"):
                n += 1
        except OSError:
            pass
    return n


def wait_until(cond, timeout=5.0, interval=0.02):
    """Poll cond() until true or timeout; returns the last value."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > end:
            return v
        time.sleep(interval)


class Server:
    def __init__(self, args, cwd, env=None):
        self.args = args
        self.errpath = os.path.join(cwd, f"stderr-{len(os.listdir(cwd))}.txt")
        self.errfile = open(self.errpath, "w+b")
        full_env = dict(os.environ)
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        full_env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen(
            [BIN] + args, stdout=subprocess.PIPE, stderr=self.errfile, cwd=cwd, env=full_env
        )
        self.pid = self.proc.pid
        # the first stdout line is the readiness signal: it names the real port
        line = self.proc.stdout.readline().decode()
        if not line.startswith(("Serving HTTP on", "Serving HTTPS on")):  # HTTPS: --tls-cert
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"server did not start: {line!r} {self.stderr()}")
        self.banner = line
        self.port = int(line.split(" port ")[1].split()[0])
        self.stopped = False
        self.check = True
        self.error_log = self._error_log_path(cwd)
        self.seen = {}  # pid -> start time of every descendant seen while running
        self.snapshot()

    def _error_log_path(self, cwd):
        path = None
        for i, a in enumerate(self.args):
            if a == "--error-log" and i + 1 < len(self.args):
                path = self.args[i + 1]
            elif a.startswith("--error-log="):
                path = a.split("=", 1)[1]
        return None if path is None else os.path.join(cwd, path)

    def snapshot(self):
        """Remember the server's descendants (stop() checks they are gone)."""
        if self.proc.poll() is not None:
            return
        for p in descendants(self.pid):
            t = proc_start(p)
            if t is not None:
                self.seen.setdefault(p, t)

    def stderr(self):
        if not self.errfile.closed:
            self.errfile.flush()
        with open(self.errpath, "rb") as f:
            return f.read().decode(errors="replace")

    def connect(self, timeout=5.0):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s

    def workers(self):
        w = proc_children(self.pid)
        self.snapshot()
        return w

    def error_log_text(self):
        if not self.error_log:
            return ""
        try:
            with open(self.error_log, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=15, expect_rc=0, check=None):
        """Stop the server with sig (unless it already exited) and check how
        it ended: exit status expect_rc (None: any; a signal N is -N), no
        sanitizer report, no process left behind. check=False, or
        start_server(check=False), skips the checks. Returns the exit status;
        raises AssertionError listing the problems. A second call only returns
        the status."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        check = self.check if check is None else check
        problems = []
        if self.proc.poll() is None:
            self.snapshot()
            # a child that died must be reaped, not left a zombie (give SIGCHLD a moment)
            reaped = wait_until(lambda: not zombies_of(self.pid), timeout=3, interval=0.05)
            z = [] if reaped else zombies_of(self.pid)
            if z and self.proc.poll() is None:
                problems.append(f"server {self.pid} has unreaped children (zombies) {z}")
            self.snapshot()
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("server did not stop within %ss\n%s" % (timeout, self.stderr()))
        self.proc.stdout.close()
        self.errfile.close()
        if not check:
            return rc
        err = self.stderr()
        if expect_rc is not None and rc != expect_rc:
            problems.append(f"server {self.args} exited {rc}, expected {expect_rc}\n{err}")
        # every process it started is gone once it exited (each reaps its own
        # children first); a short grace for one still on its way out
        def left():
            return sorted(p for p, t in self.seen.items() if proc_start(p) == t)
        gone = wait_until(lambda: not left(), timeout=2, interval=0.05)
        if not gone:
            desc = ", ".join(f"{p} ({proc_state(p)})" for p in left())
            problems.append(f"server {self.pid} left processes behind: {desc}")
        for where, text in (("stderr", err), (f"--error-log {self.error_log}", self.error_log_text())):
            if any(mark in text for mark in SANITIZER_MARKS):
                problems.append(f"sanitizer report from {self.args} in {where}:\n{text}")
        assert not problems, "\n".join(problems)
        return rc


@pytest.fixture
def start_server(tmp_path):
    """start_server(*args, model=..., check=True) -> Server (on 127.0.0.1, --port 0)."""
    servers = []

    def start(*args, model="event", env=None, check=True, root=None):
        a = ["--host", "127.0.0.1", "--port", "0", "--model", model]
        if root is not None:
            a += ["--root", str(root)]
        a += [str(x) for x in args]
        s = Server(a, str(tmp_path), env=env)
        s.check = check
        servers.append(s)
        return s

    yield start
    problems = []
    for s in servers:
        if s.stopped:  # the test stopped it: stop() has checked it then
            continue
        try:
            s.stop()
        except AssertionError as e:
            problems.append(str(e))
    assert not problems, "\n".join(problems)


@pytest.fixture
def docroot(tmp_path):
    """A small document root used by most tests."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello").write_bytes(b"Hello, World!\n")
    (root / "index.html").write_bytes(b"<html><body>index</body></html>\n")
    (root / "big.bin").write_bytes(bytes(range(256)) * 4096 * 4)  # 4 MiB
    (root / "style.css").write_bytes(b"body{}\n")
    sub = root / "sub"
    sub.mkdir()
    (sub / "index.html").write_bytes(b"sub index\n")
    (sub / "a b.txt").write_bytes(b"space\n")
    empty = root / "empty"
    empty.mkdir()
    (empty / "x&<y>.txt").write_bytes(b"x\n")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"TOP SECRET\n")
    os.symlink(secret, root / "escape")
    os.symlink(root / "hello", root / "inside-link")
    noread = root / "noread.txt"
    noread.write_bytes(b"no\n")
    os.chmod(noread, 0)
    return root


@pytest.fixture(params=MODELS)
def model(request):
    return request.param


def http_request(server, method, path, body=None, headers=None, conn=None, timeout=10):
    """One request with http.client; returns (response, body bytes). body may
    be bytes or an iterable of bytes (then it goes chunked). Reuses conn if
    given (keep-alive), else opens and closes a connection."""
    c = conn or http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r, data


def raw(server, data, timeout=5.0, shut=True):
    """Send raw bytes, read until the server closes (or timeout); returns bytes."""
    return raw_to(("127.0.0.1", server.port), data, timeout, shut)


def raw_to(addr, data, timeout=5.0, shut=True):
    """raw() to an address (host, port): for servers started without the fixture."""
    s = socket.create_connection(addr, timeout=timeout)
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        return recv_all(s, stop_on_error=True)
    finally:
        s.close()


def status_of(resp):
    """Status code of the first response in raw bytes (0 if none)."""
    if not resp.startswith(b"HTTP/1.1 "):
        return 0
    return int(resp[9:12])


def open_and_request(port, n, results, hold, timeout=10, timed=False):
    """Open n connections to 127.0.0.1:port (a refused connect is tried again,
    50 times), send GET /hello on each, read every answer, then call hold()
    before closing them. results gets the number of "Hello, World!" 200s and,
    if timed, the seconds from the first connect to the last answer (and
    then a connection that fails while its answer is read counts as not
    answered, instead of raising)."""
    socks = []
    t0 = time.monotonic()
    try:
        for _ in range(n):
            for attempt in range(50):
                try:
                    c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
                    break
                except OSError as e:
                    err = e
                    time.sleep(0.05)
            else:
                raise err
            socks.append(c)
        for c in socks:
            c.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        ok = 0
        for c in socks:
            buf = b""
            while not buf.endswith(b"Hello, World!\n"):
                try:
                    b = c.recv(4096)
                except OSError:
                    if not timed:
                        raise
                    break
                if not b:
                    break
                buf += b
            ok += status_of(buf) == 200 and buf.endswith(b"Hello, World!\n")
        results.append(ok)
        if timed:
            results.append(time.monotonic() - t0)
        hold()
    finally:
        for c in socks:
            c.close()


@contextlib.contextmanager
def held_in_processes(port, nproc, per, **kw):
    """nproc client processes (fork), each holding per connections answered
    by open_and_request(port, per, ..., **kw). Yields each process's report:
    [answered] or, with timed=True, [answered, seconds] ([0, 99] if it
    reported nothing). On leaving, the processes close their connections,
    and each must have exited 0."""
    pipes, pids = [], []
    try:
        for _ in range(nproc):
            r_done, w_done = os.pipe()
            r_go, w_go = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r_done)
                os.close(w_go)
                code = 1
                try:
                    res = []
                    open_and_request(port, per, res,
                                     lambda: (os.write(w_done, " ".join(map(str, res)).encode() + b"\n"),
                                              os.read(r_go, 1)), **kw)
                    code = 0
                finally:
                    os._exit(code)
            os.close(w_done)
            os.close(r_go)
            pipes.append((r_done, w_go))
            pids.append(pid)
        reports = []
        for r_done, _ in pipes:
            line = b""
            while not line.endswith(b"\n"):
                b = os.read(r_done, 64)
                if not b:
                    break
                line += b
            reports.append([float(x) for x in line.split()] or [0, 99])
        yield reports
    finally:
        for r_done, w_go in pipes:
            os.write(w_go, b"x")
            os.close(w_go)
            os.close(r_done)
        for pid in pids:
            _, st = os.waitpid(pid, 0)
            assert os.WIFEXITED(st) and os.WEXITSTATUS(st) == 0


# ---- issue 11: the owned-field rules, one tricky request for every gateway ----

# Every trick at once: httpoxy, a '_' twin of a real field, '_' spellings of
# Content-Type/-Length (fh_env_at used to stop at them, hiding every later
# field), a field after them, repeated fields, the connection's own fields
# and a chunked body (de-chunked: Transfer-Encoding is no longer true).
# CGI, C apps and WSGI must all give exactly TRICKY_WANT.
TRICKY = [("Host", "example.org:81"), ("Proxy", "http://evil:1"), ("X-Foo", "good"),
          ("X_Foo", "spoof"), ("Content_Type", "text/evil"), ("Content_Length", "99"),
          ("X-Later", "after"), ("Cookie", "a=1"), ("X-A", "1"), ("Cookie", "b=2"),
          ("X-A", "2"), ("TE", "trailers"), ("Keep-Alive", "5"), ("Connection", "keep-alive, TE"),
          ("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked"), ("X-Last", "z")]
TRICKY_WANT = {"HTTP_HOST": "example.org:81", "HTTP_X_FOO": "good", "HTTP_X_LATER": "after",
               "HTTP_COOKIE": "a=1; b=2", "HTTP_X_A": "1, 2", "HTTP_X_LAST": "z",
               "CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "3"}


def send_tricky(server, path, timeout=15):
    """POST the TRICKY request (body "abc", chunked) to path; assert a 200 and
    return the body."""
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    c.putrequest("POST", path, skip_host=True, skip_accept_encoding=True)
    for k, v in TRICKY:
        c.putheader(k, v)
    c.endheaders()
    c.send(b"3\r\nabc\r\n0\r\n\r\n")
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, body
    return body


def request_vars(env):
    """The variables of env that come from the request: HTTP_*, CONTENT_TYPE
    and CONTENT_LENGTH."""
    return {k: v for k, v in env.items()
            if k.startswith("HTTP_") or k in ("CONTENT_TYPE", "CONTENT_LENGTH")}


def recv_all(sock, stop_on_error=False):
    """Everything sock receives until the peer closes; with stop_on_error, a
    timeout or a reset ends it too (and what came until then is returned)."""
    chunks = []
    while True:
        try:
            b = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            if not stop_on_error:
                raise
            break
        if not b:
            break
        chunks.append(b)
    return b"".join(chunks)


def public_root():
    """A root-owned document root others may enter and read but not write
    (like /var/log; pytest's tmp dirs are root-only), with /hello in it."""
    root = tempfile.mkdtemp(dir="/tmp")
    os.chmod(root, 0o755)
    with open(os.path.join(root, "hello"), "wb") as f:
        f.write(b"Hello, World!\n")
    os.chmod(os.path.join(root, "hello"), 0o644)
    return root


GIT_BACKEND = "/usr/lib/git-core/git-http-backend"


def git_cgi_dir(tmp_path, repo):
    """A CGI directory for --cgi /git=<it>: its script repo.git runs git
    http-backend on the bare repository repo. The environment is clean, so
    the wrapper sets what git http-backend needs (as SetEnv would under Apache)."""
    gitcgi = tmp_path / "gitcgi"
    gitcgi.mkdir()
    wrapper = gitcgi / "repo.git"
    wrapper.write_text(f"#!/bin/sh\nGIT_PROJECT_ROOT={repo} GIT_HTTP_EXPORT_ALL=1 "
                       f"exec {GIT_BACKEND}\n")
    os.chmod(wrapper, 0o755)
    return gitcgi


def read_until(sock, end):
    """What sock receives until it ends with end, or the peer closes."""
    data = b""
    while not data.endswith(end):
        b = sock.recv(4096)
        if not b:
            break
        data += b
    return data
