"""--lesson: the fork model puts one bug of the tutorial back, and each
demonstration of docs/tutorial.md shows the symptom it promises (and, without
the lesson, does not). A deliberately broken server leaves zombies or exits on
its own, so these tests stop it themselves and tell the harness what to expect
(Server.stop(expect_rc=...)); the harness still checks that no process of the
server outlives it."""
import os
import select
import signal
import socket
import subprocess

import pytest

from conftest import (BIN, REPO, conn_fd_count, proc_children, proc_state, raw, read_until,
                      wait_until, zombies_of)

LESSONS = ["keep-dup-fd", "no-reap", "reap-once", "no-eintr-retry"]
N = 5


def hello_ok(server):
    return raw(server, b"GET /hello HTTP/1.0\r\n\r\n").endswith(b"Hello, World!\n")


def read_response(sock):
    return read_until(sock, b"Hello, World!\n")


def stop_broken(server, lesson, expect_rc=0):
    """The harness would count the lesson's zombies as a bug: stop the server
    here (its graceful stop reaps them), then let the harness check the rest.
    A lesson is announced with a warning; without one, nothing is said."""
    server.snapshot()  # every zombie is a descendant that must be gone after the exit
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=15)
    rc = server.stop(expect_rc=expect_rc)
    warnings = [l for l in server.stderr().splitlines() if "DELIBERATELY BROKEN" in l]
    if lesson:
        assert len(warnings) == 1 and "warn: --lesson " + lesson in warnings[0], warnings
    else:
        assert warnings == []
    return rc


def start(start_server, docroot, lesson, *args):
    extra = ["--lesson", lesson] if lesson else []
    return start_server(*args, *extra, model="fork", root=docroot)


# ---- the switch itself ----

@pytest.mark.parametrize("model", ["iterative", "prefork", "event"])
def test_lesson_refused_with_other_models(model):
    p = subprocess.run([BIN, "--model", model, "--lesson", "no-reap"], capture_output=True,
                       timeout=10)
    assert p.returncode == 2
    lines = p.stderr.decode().splitlines()
    assert len(lines) == 1 and "--lesson" in lines[0] and model in lines[0], lines


def test_lesson_refused_by_default_model_and_bad_value():
    p = subprocess.run([BIN, "--lesson", "no-reap"], capture_output=True, timeout=10)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    p = subprocess.run([BIN, "--model", "fork", "--lesson", "no-close"], capture_output=True,
                       timeout=10)
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1
    assert b"no-close" in p.stderr and b"keep-dup-fd" in p.stderr


def test_help_tutorial_and_readme_name_every_lesson():
    out = subprocess.run([BIN, "--help"], capture_output=True, timeout=10).stdout.decode()
    assert "--lesson" in out
    with open(os.path.join(REPO, "docs", "tutorial.md")) as f:
        tutorial = f.read()
    with open(os.path.join(REPO, "README.md")) as f:
        assert "--lesson" in f.read()
    for lesson in LESSONS:
        assert lesson in out
        assert "--lesson " + lesson in tutorial


# ---- keep-dup-fd: the parent keeps its copy of the client socket ----

@pytest.mark.parametrize("lesson", ["keep-dup-fd", None])
def test_keep_dup_fd(start_server, docroot, lesson):
    s = start(start_server, docroot, lesson)
    base = conn_fd_count(s.pid)
    socks = []
    try:
        for _ in range(N):
            c = s.connect()
            c.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
            assert read_response(c).endswith(b"Hello, World!\n")
            socks.append(c)
        # every child answered and exits (HTTP/1.0: no keep-alive), and is reaped
        assert wait_until(lambda: not proc_children(s.pid))
        if lesson:
            # the parent still holds every client socket: no EOF for anyone...
            readable, _, _ = select.select(socks, [], [], 1.0)
            assert readable == [], "a client saw EOF although the parent kept its copy"
            # ...and one more descriptor per connection
            assert conn_fd_count(s.pid) == base + N
        else:
            for c in socks:
                c.settimeout(5)
                assert c.recv(1) == b""  # EOF: the child closed the last copy
            assert wait_until(lambda: conn_fd_count(s.pid) == base)
    finally:
        for c in socks:
            c.close()
    assert hello_ok(s)
    stop_broken(s, lesson)


# ---- no-reap: no SIGCHLD handler, no waitpid ----

@pytest.mark.parametrize("lesson", ["no-reap", None])
def test_no_reap(start_server, docroot, lesson):
    s = start(start_server, docroot, lesson)
    for _ in range(N):
        assert hello_ok(s)
    if lesson:
        assert wait_until(lambda: len(zombies_of(s.pid)) == N), zombies_of(s.pid)
        assert len(proc_children(s.pid)) == N  # all of them zombies, none reaped
        assert "<defunct>" in subprocess.run(
            ["ps", "-o", "pid,stat,cmd", "--ppid", str(s.pid)], capture_output=True,
            timeout=10).stdout.decode()
    else:
        assert wait_until(lambda: not proc_children(s.pid))
    stop_broken(s, lesson)


# ---- reap-once: one waitpid per SIGCHLD, and signals are not queued ----

@pytest.mark.parametrize("lesson", ["reap-once", None])
def test_reap_once(start_server, docroot, lesson):
    # --verbose: "reaped child PID" says when the handler ran
    s = start(start_server, docroot, lesson, "--verbose")
    socks = [s.connect() for _ in range(N)]
    try:
        # N children, each waiting for its client's request
        assert wait_until(lambda: len(proc_children(s.pid)) == N)
        s.snapshot()
        # the burst, made deterministic: the parent is stopped while N
        # children end, so N exits raise one pending SIGCHLD
        os.kill(s.pid, signal.SIGSTOP)
        assert wait_until(lambda: proc_state(s.pid) == "T")
    finally:
        for c in socks:
            c.close()
    try:
        assert wait_until(lambda: len(zombies_of(s.pid)) == N), zombies_of(s.pid)
    finally:
        os.kill(s.pid, signal.SIGCONT)
    if lesson:
        assert wait_until(lambda: s.stderr().count("reaped child PID") >= 1)
        assert wait_until(lambda: proc_state(s.pid) == "S")
        assert len(zombies_of(s.pid)) == N - 1, zombies_of(s.pid)
        assert s.stderr().count("reaped child PID") == 1
    else:
        # the loop reaps them all at once
        assert wait_until(lambda: not proc_children(s.pid))
        assert s.stderr().count("reaped child PID") == N
    stop_broken(s, lesson)


# ---- no-eintr-retry: accept() interrupted by SIGCHLD is not restarted ----

@pytest.mark.parametrize("lesson", ["no-eintr-retry", None])
def test_no_eintr_retry(start_server, docroot, lesson):
    s = start(start_server, docroot, lesson)
    c = s.connect()
    try:
        # the child is forked and the parent is back in accept() (its only sleep)
        assert wait_until(lambda: len(proc_children(s.pid)) == 1 and proc_state(s.pid) == "S")
        c.sendall(b"GET /hello HTTP/1.0\r\n\r\n")
        assert read_response(c).endswith(b"Hello, World!\n")
    finally:
        c.close()
    if lesson:
        # the child's exit interrupts accept(): the server gives up
        rc = s.proc.wait(timeout=10)
        assert rc != 0
        err = s.stderr()
        assert "EINTR" in err and "Interrupted system call" in err, err
        stop_broken(s, lesson, expect_rc=rc)
    else:
        assert wait_until(lambda: not proc_children(s.pid))
        for _ in range(3):
            assert hello_ok(s)
        assert s.proc.poll() is None
        stop_broken(s, lesson)
