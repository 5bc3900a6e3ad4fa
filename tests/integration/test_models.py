"""The concurrency models and the process lessons of the tutorial: the
command line, zombies, file descriptors, connection storms, the master's
supervision (respawn, graceful stop, restart, log reopen), prefork's pool."""
import http.client
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (BIN, conn_fd_count, fd_count, file_fd_count, proc_children,
                      raw, raw_to, read_until, recv_all, status_of, wait_until, zombies_of)


def hello_ok(server):
    return raw(server, b"GET /hello HTTP/1.0\r\n\r\n").endswith(b"Hello, World!\n")


# ---- command line ----

@pytest.mark.parametrize(
    "args,needle",
    [
        (["--bogus"], "unknown option"),
        (["--port", "x"], "--port"),
        (["--port", "70000"], "--port"),
        (["--workers", "0"], "--workers"),
        (["--root", "/nonexistent/dir"], "/nonexistent/dir"),
        (["--model", "threads"], "--model"),
        (["--header-timeout", "-1"], "--header-timeout"),
        (["--port"], "missing argument"),
        (["extra"], "unexpected argument"),
    ],
)
def test_bad_flags_exit_2(args, needle):
    p = subprocess.run([BIN] + args, capture_output=True, timeout=10)
    assert p.returncode == 2
    err = p.stderr.decode().strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert p.stdout == b""


def test_port_in_use_exit_2(start_server, docroot):
    s = start_server(model="event", root=docroot)
    p = subprocess.run([BIN, "--host", "127.0.0.1", "--port", str(s.port)], capture_output=True, timeout=10)
    assert p.returncode == 2 and "cannot listen" in p.stderr.decode()


def test_help_and_version():
    p = subprocess.run([BIN, "--help"], capture_output=True, timeout=10)
    assert p.returncode == 0 and b"--model" in p.stdout and b"--max-body" in p.stdout
    p = subprocess.run([BIN, "--version"], capture_output=True, timeout=10)
    assert p.returncode == 0 and p.stdout.startswith(b"forkhttpd ")


def test_banner(start_server, docroot, model):
    s = start_server("--workers", 2, model=model, root=docroot)
    n = 2 if model in ("prefork", "event") else 1
    assert s.banner == f"Serving HTTP on 127.0.0.1 port {s.port} (model {model}, {n} worker{'s' if n > 1 else ''}) ...\n"
    assert hello_ok(s)


def test_ipv6(start_server, docroot):
    s = start_server(model="event", root=docroot)
    s6 = subprocess.Popen([BIN, "--host", "::1", "--port", "0", "--root", str(docroot)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = s6.stdout.readline().decode()
    port = int(line.split(" port ")[1].split()[0])
    data = raw_to(("::1", port), b"GET /hello HTTP/1.0\r\n\r\n", shut=False)
    s6.terminate()
    assert s6.wait(10) == 0
    assert data.endswith(b"Hello, World!\n")


# ---- the tutorial's lessons: zombies, fds, storms ----

def serving_pids(server, model):
    """The processes whose fds must not grow: the server, or its workers."""
    if model in ("prefork", "event"):
        return [server.pid] + server.workers()
    return [server.pid]


def storm(port, clients=20, conns=100):
    """The tutorial's client: `clients` forked processes, each opening `conns`
    connections, sending a request on each, reading every answer."""
    pids = []
    for _ in range(clients):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                socks = []
                for _ in range(conns):
                    s = socket.create_connection(("127.0.0.1", port), timeout=20)
                    s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                    socks.append(s)
                for s in socks:
                    data = read_until(s, b"Hello, World!\n")
                    if not data.endswith(b"Hello, World!\n"):
                        code = 1
                for s in socks:
                    s.close()
            except Exception:
                code = 2
            os._exit(code)
        pids.append(pid)
    return [os.waitpid(p, 0)[1] for p in pids]


@pytest.mark.parametrize("model", ["fork", "prefork", "event"])
def test_storm_leaves_no_zombie_and_no_fd(start_server, docroot, model):
    extra = ["--workers", "2", "--max-workers", "64"] if model == "prefork" else []
    s = start_server("--keepalive-timeout", "2", *extra, model=model, root=docroot)
    assert hello_ok(s)
    wait_until(lambda: not zombies_of(s.pid))
    base = {p: conn_fd_count(p) for p in serving_pids(s, model)}
    statuses = storm(s.port, clients=20, conns=100 if model != "prefork" else 10)
    assert all(st == 0 for st in statuses), statuses
    # every connection child exits and is reaped: no zombie outlives a reap cycle
    assert wait_until(lambda: not zombies_of(s.pid) and (model != "fork" or not proc_children(s.pid)), timeout=10)
    for p, n in base.items():
        if os.path.exists(f"/proc/{p}"):
            assert wait_until(lambda: conn_fd_count(p) <= n, timeout=10), (p, conn_fd_count(p), n)
            assert file_fd_count(p, docroot) <= 1  # the cached /hello, at most
    assert hello_ok(s)


def test_iterative_storm_small(start_server, docroot):
    s = start_server("--keepalive-timeout", "1", model="iterative", root=docroot)
    base = fd_count(s.pid)
    # one at a time: keep-alive connections would serialize on the timeout, so close
    for _ in range(200):
        assert hello_ok(s)
    # the only new descriptor is the open-file cache's copy of /hello
    assert fd_count(s.pid) == base + 1 and file_fd_count(s.pid, docroot) == 1
    assert not zombies_of(s.pid)


def test_fork_verbose_narrates_the_lessons(start_server, docroot):
    s = start_server("--verbose", model="fork", root=docroot)
    assert hello_ok(s)
    err = wait_until(lambda: s.stderr() if "reaped child PID" in s.stderr() else None)
    assert err, s.stderr()
    assert "accepted connection from 127.0.0.1 port" in err
    assert "parent PID %d" % s.pid in err
    assert "< GET /hello HTTP/1.0" in err
    assert "> HTTP/1.1 200 OK" in err
    assert "exit status 0" in err
    # the response never carries the narration
    assert raw(s, b"GET /hello HTTP/1.0\r\n\r\n").count(b"\r\n\r\n") == 1


def test_fork_children_close_listener(start_server, docroot):
    """The child must close its copy of the listening socket, the parent its
    copy of the client socket."""
    s = start_server("--keepalive-timeout", "5", model="fork", root=docroot)
    base = fd_count(s.pid)
    c = s.connect()
    c.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    c.recv(4096)
    kids = wait_until(lambda: proc_children(s.pid))
    assert len(kids) == 1
    kid = kids[0]
    parent_fds = [os.readlink(f"/proc/{s.pid}/fd/{f}") for f in os.listdir(f"/proc/{s.pid}/fd")]
    listeners = [l for l in parent_fds if l.startswith("socket:")]
    assert len(listeners) == 1  # the parent holds only the listening socket
    kid_fds = [os.readlink(f"/proc/{kid}/fd/{f}") for f in os.listdir(f"/proc/{kid}/fd")]
    assert listeners[0] not in kid_fds
    assert len([l for l in kid_fds if l.startswith("socket:")]) == 1  # its client only
    assert fd_count(s.pid) == base  # the parent closed the client socket
    c.close()
    assert wait_until(lambda: not proc_children(s.pid))


# ---- the master: respawn, stop, restart, reopen ----

@pytest.mark.parametrize("model", ["prefork", "event"])
def test_worker_respawn_after_kill9(start_server, docroot, model):
    s = start_server("--workers", 2, model=model, root=docroot)
    workers = wait_until(lambda: s.workers() if len(s.workers()) == 2 else None)
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    assert wait_until(lambda: len(s.workers()) == 2 and workers[0] not in s.workers())
    # the master writes the line just after waitpid(): the pid may be gone first
    assert wait_until(lambda: "killed by signal 9 (Killed)" in s.stderr())
    for _ in range(10):
        assert hello_ok(s)
    assert wait_until(lambda: not zombies_of(s.pid))


@pytest.mark.parametrize("model", ["iterative", "fork", "prefork", "event"])
def test_graceful_stop_finishes_in_flight(start_server, docroot, model):
    s = start_server("--workers", 1, model=model, root=docroot)
    c = s.connect(timeout=10)
    # a request whose body is still on its way when the stop comes
    c.sendall(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345")
    time.sleep(0.3)  # let the server read the head (no signal exists for that)
    s.snapshot()  # the processes serving it: stop() checks they are gone
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    c.sendall(b"67890")
    data = recv_all(c)
    assert status_of(data) == 405 and b"Connection: close" in data
    assert s.proc.wait(timeout=15) == 0
    s.stop()  # no process left behind, no sanitizer report


def test_idle_keepalive_closed_on_stop(start_server, docroot):
    s = start_server("--keepalive-timeout", "30", model="event", root=docroot)
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
    c.request("GET", "/hello")
    c.getresponse().read()
    t0 = time.monotonic()
    s.snapshot()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5  # not the 30 s keep-alive timeout
    s.stop()
    c.close()


@pytest.mark.parametrize("model", ["prefork", "event"])
def test_sighup_restart_loses_nothing(start_server, docroot, model):
    s = start_server("--workers", 2, model=model, root=docroot)
    old = set(wait_until(lambda: s.workers() if len(s.workers()) == 2 else None))
    failures, done = [], threading.Event()
    counts = [0]

    def client_loop():
        while not done.is_set():
            try:
                c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
                for _ in range(20):
                    c.request("GET", "/hello")
                    r = c.getresponse()
                    if r.read() != b"Hello, World!\n":
                        failures.append(r.status)
                    counts[0] += 1
                    if r.getheader("Connection") == "close":
                        break
                c.close()
            except Exception as e:  # a failed request: the test fails
                failures.append(repr(e))

    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    for _ in range(3):
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(0.7)
    done.set()
    for t in threads:
        t.join(10)
    assert not failures, failures[:5]
    assert counts[0] > 100
    # the old generation is gone (prefork may have grown the new one under load)
    assert wait_until(lambda: s.workers() and not (set(s.workers()) & old))


def test_sigusr1_reopens_access_log(start_server, docroot, tmp_path):
    log = tmp_path / "a.log"
    s = start_server("--access-log", log, "--workers", 1, model="event", root=docroot)
    assert hello_ok(s)
    assert wait_until(lambda: log.exists() and log.read_text().count("\n") == 1)
    os.rename(log, tmp_path / "a.log.1")
    s.proc.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: log.exists(), timeout=5)  # the master reopens at once
    # the workers reopen on their next loop; a few requests make sure one lands after
    assert wait_until(lambda: hello_ok(s) and log.exists() and log.read_text().count("\n") >= 1, timeout=5)
    assert (tmp_path / "a.log.1").read_text().count("\n") >= 1


def test_prefork_pool_grows_and_shrinks(start_server, docroot):
    s = start_server("--workers", 2, "--max-workers", 64, "--keepalive-timeout", 5,
                     model="prefork", root=docroot)
    conns = []
    for _ in range(50):
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        c.request("GET", "/hello")  # each keeps its worker busy (keep-alive)
        conns.append(c)
    t0 = time.monotonic()
    for c in conns:
        assert c.getresponse().read() == b"Hello, World!\n"
    assert time.monotonic() - t0 < 5  # all 50 served at once, not one keep-alive timeout each
    assert len(s.workers()) >= 50
    for c in conns:
        c.close()
    # idle workers above --workers are retired
    assert wait_until(lambda: len(s.workers()) < 20, timeout=20), len(s.workers())


def test_event_max_conns(start_server, docroot):
    s = start_server("--workers", 1, "--max-conns", 5, "--keepalive-timeout", 2, model="event", root=docroot)
    held = [s.connect() for _ in range(5)]
    for c in held:
        c.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.recv(4096).endswith(b"Hello, World!\n")
    # the sixth waits in the listen queue until a slot frees, then is served
    t0 = time.monotonic()
    sixth = s.connect(timeout=10)
    sixth.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
    held[0].close()
    data = sixth.recv(4096)
    assert data.startswith(b"HTTP/1.1 200")
    for c in held[1:]:
        c.close()
    sixth.close()
    assert time.monotonic() - t0 < 5


# ---- resource exhaustion: fork failing, descriptors running out ----

def test_fork_failure_answers_503(tmp_path):
    """fork() failing with EAGAIN (the process limit) gets that client a 503,
    and the server goes on. As root the limit does not apply, so the server
    runs as an otherwise unused uid with RLIMIT_NPROC at 1."""
    import resource
    import tempfile
    root = tempfile.mkdtemp(dir="/tmp")
    os.chmod(root, 0o755)
    with open(os.path.join(root, "hello"), "wb") as f:
        f.write(b"Hello, World!\n")
    os.chmod(os.path.join(root, "hello"), 0o644)
    uid = 54321  # a uid no other process uses: the server is its only process

    def demote():
        resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))  # so every fork is refused
        os.setgid(uid)
        os.setgroups([])
        os.setuid(uid)

    # LeakSanitizer needs a thread of its own at exit, which this limit forbids
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    p = subprocess.Popen([BIN, "--host", "127.0.0.1", "--port", "0", "--model", "fork", "--root", root],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=demote, env=env)
    try:
        line = p.stdout.readline().decode()
        port = int(line.split(" port ")[1].split()[0])
        statuses = []
        for _ in range(3):
            data = raw_to(("127.0.0.1", port), b"GET /hello HTTP/1.0\r\n\r\n", shut=False)
            statuses.append(status_of(data))
        assert statuses == [503, 503, 503], statuses
        assert p.poll() is None  # still serving
    finally:
        p.terminate()
        rc = p.wait(10)
        err = p.stderr.read().decode()
    assert rc == 0, err
    assert "fork:" in err


@pytest.mark.parametrize("model", ["iterative", "fork", "prefork", "event"])
def test_out_of_descriptors_keeps_serving(start_server, docroot, model, tmp_path):
    """With RLIMIT_NOFILE at 40 and 100 clients at once, accept fails with
    EMFILE: the server pauses accepting, keeps serving, and every client is
    answered in the end (it neither spins nor dies)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    args = [BIN, "--host", "127.0.0.1", "--port", "0", "--model", model, "--workers", "1",
            "--root", str(docroot), "--keepalive-timeout", "1"]
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limit)
    try:
        port = int(p.stdout.readline().decode().split(" port ")[1].split()[0])
        socks = [socket.create_connection(("127.0.0.1", port), timeout=20) for _ in range(100)]
        for s in socks:
            s.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        statuses = []
        for s in socks:
            data = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
            statuses.append(status_of(data) if data.endswith(b"Hello, World!\n") or status_of(data) != 200 else -1)
            s.close()
        # every client is answered: served, or told 503 when a file could not be opened
        assert set(statuses) <= {200, 503} and statuses.count(200) >= 90, statuses
        assert p.poll() is None
    finally:
        p.terminate()
        rc = p.wait(15)
        err = p.stderr.read().decode()
    assert rc == 0, err
    assert "AddressSanitizer" not in err


def test_fork_max_conns_caps_children(start_server, docroot):
    """--max-conns bounds the fork model's children: idle connections past it
    wait in the listen queue instead of becoming processes."""
    s = start_server("--max-conns", 3, "--header-timeout", 5, model="fork", root=docroot)
    idle = [s.connect() for _ in range(6)]  # silent connections
    assert wait_until(lambda: len(proc_children(s.pid)) == 3)
    time_limit = wait_until(lambda: len(proc_children(s.pid)) > 3, timeout=0.5)
    assert not time_limit  # no fourth child while three are busy
    for c in idle[:3]:
        c.close()  # their children end; the queued ones get theirs
    assert wait_until(lambda: len(proc_children(s.pid)) == 3 and not zombies_of(s.pid))
    for c in idle[3:]:
        c.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        assert c.recv(4096).startswith(b"HTTP/1.1 200")
        c.close()


def test_event_accept_reuseport(start_server, docroot):
    """--accept reuseport: a SO_REUSEPORT listener per worker; the kernel
    spreads new connections over them (both workers accept some)."""
    s = start_server("--accept", "reuseport", "--workers", 2, "--status", "/st", model="event", root=docroot)
    for _ in range(200):
        assert hello_ok(s)
    import json
    doc = json.loads(raw(s, b"GET /st?json HTTP/1.0\r\n\r\n").split(b"\r\n\r\n", 1)[1])
    accepted = [w["accepted"] for w in doc["workers"]]
    assert len(accepted) == 2 and all(a > 20 for a in accepted), accepted
    assert doc["listen_queue"]["max"] == 1024  # the worker's own listener


def test_accept_flag_errors():
    p = subprocess.run([BIN, "--accept", "random"], capture_output=True, timeout=10)
    assert p.returncode == 2 and b"--accept" in p.stderr


def test_fork_child_globals_share_one_page():
    """The globals a fork child writes on its way through a request
    (FORK_CHILD_WRITES, src/fork_child.h) are in one page of .data: each
    other page would be a copy-on-write fault per connection (issue 19)."""
    out = subprocess.run(["nm", BIN], capture_output=True, text=True, check=True).stdout
    if "__asan_init" in out:
        pytest.skip("ASan gives every global a redzone: .data is many pages there")
    want = {"free_list", "free_count", "held_ms", "net_listen_fd", "sig_close_on_stop", "sb_self"}
    addrs = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[2] in want and f[1] in "dD":
            addrs[f[2]] = int(f[0], 16)
    assert set(addrs) == want, f"not in .data: {sorted(want - set(addrs))}"
    assert len({a // 4096 for a in addrs.values()}) == 1, {k: hex(v) for k, v in addrs.items()}


def test_fork_child_date_is_now(start_server, docroot):
    """A fork child answers with the Date its parent made just before the
    fork (clock_hold, src/clock.c): it is the current second, and a later
    connection gets a later one."""
    import email.utils
    s = start_server(model="fork", root=docroot)

    def date_of():
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        c.request("GET", "/hello")
        r = c.getresponse()
        r.read()
        c.close()
        return email.utils.parsedate_to_datetime(r.getheader("Date")).timestamp()

    first = date_of()
    assert abs(first - time.time()) <= 2
    time.sleep(1.1)  # the Date has a resolution of one second: let one pass
    second = date_of()
    assert second > first and abs(second - time.time()) <= 2
