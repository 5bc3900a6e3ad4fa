"""Operating as a service: --pid-file, --error-log (reopened on SIGUSR1),
--unix, systemd socket activation (LISTEN_FDS), --user/--group."""
import os
import re
import signal
import socket
import subprocess

import pytest

from conftest import BIN, public_root, raw, raw_to, status_of, wait_until


def test_pid_file(start_server, docroot, tmp_path, model):
    pidf = tmp_path / "fh.pid"
    s = start_server("--pid-file", pidf, model=model, root=docroot)
    assert int(pidf.read_text()) == s.pid
    assert s.stop() == 0
    assert not pidf.exists()


def test_error_log_and_reopen(start_server, docroot, tmp_path):
    elog = tmp_path / "error.log"
    s = start_server("--error-log", elog, "--header-timeout", "0.3", "--workers", 1,
                     model="event", root=docroot)
    c = s.connect()
    c.sendall(b"GET /hello HTTP/1.1\r\n")  # never finished: a header timeout warning
    assert c.recv(4096).startswith(b"HTTP/1.1 408")
    c.close()
    assert wait_until(lambda: "header timeout" in elog.read_text())
    os.rename(elog, tmp_path / "error.log.1")
    s.proc.send_signal(signal.SIGUSR1)
    assert wait_until(lambda: elog.exists())  # the master reopens at once

    def one_more_timeout():
        c = s.connect()
        c.sendall(b"GET /hello HTTP/1.1\r\n")
        c.recv(4096)
        c.close()
        return "header timeout" in elog.read_text()

    assert wait_until(one_more_timeout, timeout=5)


STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} forkhttpd\[\d+\]: "
                     r"(error|warn|info|debug): ")


@pytest.mark.parametrize("level,logged", [("error", set()), ("warn", {"warn"}),
                                          ("info", {"warn", "info"})])
def test_log_levels(start_server, docroot, tmp_path, level, logged):
    """--error-log lines carry a time and a level; --log-level drops the lines
    below it: a header timeout is a warning, stopping is info."""
    elog = tmp_path / "error.log"
    s = start_server("--error-log", elog, "--log-level", level, "--header-timeout", "0.2",
                     "--workers", 1, "--allow-root", model="event", root=docroot)
    c = s.connect()
    c_port = c.getsockname()[1]
    c.sendall(b"GET /hello HTTP/1.1\r\n")
    assert c.recv(4096).startswith(b"HTTP/1.1 408")  # logged before it was sent
    c.close()
    assert s.stop() == 0
    lines = elog.read_text().splitlines()
    assert all(STAMPED.match(line) for line in lines), lines
    seen = {STAMPED.match(line).group(1) for line in lines}
    assert seen == logged, lines
    # the line names the timeout, its flag and the client
    said = re.search(r"warn: header timeout \(200 ms\) from 127\.0\.0\.1 port (\d+); the request "
                     r"head is incomplete: answering 408 \(--header-timeout\)", elog.read_text())
    assert bool(said) == ("warn" in logged)
    if said:
        assert int(said.group(1)) == c_port


def test_log_level_errors():
    p = subprocess.run([BIN, "--port", "0", "--log-level", "loud"], capture_output=True, timeout=10)
    assert p.returncode == 2
    assert p.stderr.decode().count("\n") == 1 and "--log-level" in p.stderr.decode()


def test_unix_socket(tmp_path, docroot):
    path = str(tmp_path / "fh.sock")
    p = subprocess.Popen([BIN, "--unix", path, "--root", str(docroot), "--model", "event"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline().decode().startswith(f"Serving HTTP on unix:{path} ")
        out = subprocess.run(["curl", "-sS", "--unix-socket", path, "http://x/hello"],
                             capture_output=True, timeout=10)
        assert out.stdout == b"Hello, World!\n"
    finally:
        p.terminate()
        assert p.wait(10) == 0
    assert not os.path.exists(path)


def test_systemd_socket_activation(docroot):
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    port = ls.getsockname()[1]

    def at_fd3():
        os.dup2(ls.fileno(), 3)

    p = subprocess.Popen(["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"', BIN,
                          "--root", str(docroot), "--model", "prefork", "--workers", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=at_fd3,
                         pass_fds=(3,))
    ls.close()  # the server holds its own copy
    try:
        line = p.stdout.readline().decode()
        assert line.startswith(f"Serving HTTP on systemd socket port {port} "), line
        assert raw_to(("127.0.0.1", port), b"GET /hello HTTP/1.0\r\n\r\n").endswith(b"Hello, World!\n")
    finally:
        p.terminate()
        assert p.wait(10) == 0


def uid_of(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Uid:"):
            return int(line.split()[1])


@pytest.mark.parametrize("model", ["fork", "event"])
def test_user_drops_privileges(model):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    root = public_root()
    p = subprocess.Popen([BIN, "--host", "127.0.0.1", "--port", "0", "--root", root, "--model", model,
                          "--user", "nobody"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(p.stdout.readline().decode().split(" port ")[1].split()[0])
        assert uid_of(p.pid) == 65534
        assert raw_to(("127.0.0.1", port), b"GET /hello HTTP/1.0\r\n\r\n").endswith(b"Hello, World!\n")
    finally:
        p.terminate()
        assert p.wait(10) == 0
    err = p.stderr.read().decode()
    assert "serving as root" not in err


def test_user_errors():
    for args, needle in [(["--user", "no-such-user-xyz"], "no such user"),
                         (["--group", "nogroup"], "--group needs --user")]:
        p = subprocess.run([BIN, "--port", "0"] + args, capture_output=True, timeout=10)
        assert p.returncode == 2 and needle in p.stderr.decode(), p.stderr


def test_root_warning_and_allow_root(docroot):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for extra, warned in [([], True), (["--allow-root"], False)]:
        p = subprocess.Popen([BIN, "--host", "127.0.0.1", "--port", "0", "--root", str(docroot)] + extra,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        p.stdout.readline()
        p.terminate()
        assert p.wait(10) == 0
        assert ("serving as root" in p.stderr.read().decode()) == warned
