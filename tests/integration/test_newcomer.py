"""A newcomer's first day (issue 18): --user with files in a root-owned
directory (rotation + SIGUSR1, the pid file removed), --unix's mode and owner,
the fork model's status page, the access log's bytes (streams, aborts,
garbage), log time stamps that an app's TZ does not move, fatal app errors at
level error, and commands the docs give."""
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess

import pytest

from conftest import BIN, BUILD, REPO, http_request, public_root, raw, recv_all, wait_until

# Python's own allocations (interned strings, module state) are not ours to free
LSAN = {"LSAN_OPTIONS": "suppressions=" + os.path.join(REPO, "tests", "lsan-python.supp")
        + ":print_suppressions=0"}
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def service_user():
    for name in ("www-data", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    pytest.skip("no www-data or nobody user")


def banner_port(p):
    line = p.stdout.readline().decode()
    assert line.startswith("Serving HTTP on"), line + p.stderr.read().decode()
    return line


def get(port, path="/hello"):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
    data = recv_all(s)
    s.close()
    return data


def uid_of(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Uid:"):
            return int(line.split()[1])


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


# ---- 1. --user with files in a root-owned directory ----

@ROOT_ONLY
@pytest.mark.parametrize("model", ["fork", "event"])
def test_user_files_rotation_and_pid_file(model):
    pw = service_user()
    d = public_root()
    pidf, alog, elog = (os.path.join(d, n) for n in ("fh.pid", "a.log", "e.log"))
    p = subprocess.Popen([BIN, "--host", "127.0.0.1", "--port", "0", "--root", d,
                          "--model", model, "--workers", "1", "--user", pw.pw_name,
                          "--pid-file", pidf, "--access-log", alog, "--error-log", elog],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(banner_port(p).split(" port ")[1].split()[0])
        assert int(open(pidf).read()) == p.pid  # signals go to the process started
        server = wait_until(lambda: children(p.pid))
        assert server and uid_of(server[0]) == pw.pw_uid  # the server runs as the user
        for f in (alog, elog):
            assert os.stat(f).st_uid == pw.pw_uid, f
        assert get(port).endswith(b"Hello, World!\n")
        assert wait_until(lambda: '"GET /hello HTTP/1.0" 200 14' in open(alog).read())
        # logrotate without "create": the files are moved away, then SIGUSR1
        os.rename(alog, alog + ".1")
        os.rename(elog, elog + ".1")
        os.kill(p.pid, signal.SIGUSR1)
        # the root parent creates each file, then gives it to the user: wait
        # for that end state (between the two steps it is root's)
        def owned(f):
            try:
                return os.stat(f).st_uid == pw.pw_uid
            except FileNotFoundError:
                return False
        assert wait_until(lambda: owned(alog) and owned(elog)), (alog, elog)

        def logged_again():
            get(port)
            return '"GET /hello HTTP/1.0" 200 14' in open(alog).read()
        assert wait_until(logged_again, timeout=5)
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(15)
    err = p.stderr.read().decode()
    logs = err + open(elog).read() + open(elog + ".1").read()
    assert rc == 0, logs
    assert "Permission denied" not in logs and "reopen" not in logs, logs
    assert not os.path.exists(pidf)  # removed at exit, though the server was not root
    assert not children(p.pid)
    shutil.rmtree(d)


@ROOT_ONLY
def test_user_without_files_is_one_process():
    """No file to manage: no root parent stays (the process started drops)."""
    pw = service_user()
    d = public_root()
    p = subprocess.Popen([BIN, "--host", "127.0.0.1", "--port", "0", "--root", d,
                          "--model", "fork", "--user", pw.pw_name],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        banner_port(p)
        assert uid_of(p.pid) == pw.pw_uid
    finally:
        p.terminate()
        assert p.wait(10) == 0
    shutil.rmtree(d)


# ---- 2. --unix: mode, owner, removal ----

def sock_stat(path):
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode)
    return st


def test_unix_mode_default_and_given(docroot, tmp_path):
    for extra, mode in (([], 0o660), (["--unix-mode", "0600"], 0o600), (["--unix-mode", "666"], 0o666)):
        path = str(tmp_path / "fh.sock")
        p = subprocess.Popen([BIN, "--unix", path, "--root", str(docroot), "--model", "event",
                              "--workers", "1"] + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            banner_port(p)
            assert stat.S_IMODE(sock_stat(path).st_mode) == mode, extra
        finally:
            p.terminate()
            assert p.wait(10) == 0
        assert not os.path.exists(path)


@pytest.mark.parametrize("bad", ["888", "-1", "01000", "rw", ""])
def test_unix_mode_errors(bad):
    p = subprocess.run([BIN, "--unix", "/tmp/x.sock", "--unix-mode", bad], capture_output=True, timeout=10)
    assert p.returncode == 2
    err = p.stderr.decode()
    assert err.count("\n") == 1 and "--unix-mode" in err, err


@ROOT_ONLY
@pytest.mark.parametrize("model", ["fork", "prefork"])
def test_unix_socket_with_user(model):
    pw = service_user()
    d = public_root()
    path = os.path.join(d, "fh.sock")
    p = subprocess.Popen([BIN, "--unix", path, "--root", d, "--model", model, "--workers", "1",
                          "--user", pw.pw_name], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        banner_port(p)
        st = sock_stat(path)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (pw.pw_uid, pw.pw_gid, 0o660)
        # a proxy that is not root (here: the same user) can connect
        out = subprocess.run(["curl", "-sS", "--unix-socket", path, "http://x/hello"],
                             capture_output=True, timeout=10, user=pw.pw_uid, group=pw.pw_gid,
                             extra_groups=[])
        assert out.stdout == b"Hello, World!\n", out.stderr
    finally:
        p.terminate()
        rc = p.wait(10)
    assert rc == 0, p.stderr.read().decode()
    assert not os.path.exists(path)  # removed at exit by the root parent
    shutil.rmtree(d)


# ---- 4. the status page in the fork model ----

def test_fork_status_has_numbers(start_server, docroot):
    s = start_server("--status", "/server-status", "--backlog", "77", model="fork", root=docroot)
    r = http_request(s, "GET", "/server-status?json")
    doc = json.loads(r[1])
    q = doc["listen_queue"]
    assert isinstance(q["now"], int) and q["max"] == 77, q
    r = http_request(s, "GET", "/server-status")
    assert re.search(rb"listen queue \d+ of 77,", r[1]), r[1]


# ---- 5. the access log: bytes written, at the end of the exchange ----

STREAM_CGI = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
head -c 20000 /dev/zero | tr '\\0' a
sleep 0.1
head -c 10000 /dev/zero | tr '\\0' b
"""


def log_lines(path):
    try:
        return open(path).read().splitlines()
    except OSError:
        return []


def logged(path, needle):
    return [line for line in log_lines(path) if needle in line]


@pytest.mark.parametrize("model", ["fork", "event"])
def test_access_log_stream_bytes(start_server, docroot, tmp_path, model):
    cgi = tmp_path / "cgi"
    cgi.mkdir()
    (cgi / "stream.sh").write_text(STREAM_CGI)
    (cgi / "stream.sh").chmod(0o755)
    alog = tmp_path / "access.log"
    s = start_server("--cgi", f"/cgi-bin={cgi}", "--access-log", alog, model=model, root=docroot)
    for version in ("1.1", "1.0"):  # chunked, then close-delimited
        r = raw(s, f"GET /cgi-bin/stream.sh HTTP/{version}\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
                timeout=10, shut=False)  # a half-close would stop the script (499)
        assert r.startswith(b"HTTP/1.1 200")
        needle = f'"GET /cgi-bin/stream.sh HTTP/{version}" 200 '
        assert wait_until(lambda: logged(alog, needle)), log_lines(alog)
        assert logged(alog, needle)[0].split(needle)[1].split()[0] == "30000"
    # a small static file, pipelined twice: each logged with its size
    raw(s, b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert wait_until(lambda: len(logged(alog, '"GET /hello HTTP/1.1" 200 14 ')) == 2), log_lines(alog)


@pytest.mark.parametrize("model", ["fork", "event"])
def test_access_log_aborted_transfer(start_server, docroot, tmp_path, model):
    size = 256 << 20
    with open(docroot / "big.bin", "wb") as f:
        f.truncate(size)  # sparse: costs no disk
    alog = tmp_path / "access.log"
    s = start_server("--access-log", alog, model=model, root=docroot)
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.settimeout(5)
    c.connect(("127.0.0.1", s.port))
    c.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    got = c.recv(4096)
    assert got.startswith(b"HTTP/1.1 200")
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # a reset: the transfer is aborted
    needle = '"GET /big.bin HTTP/1.1" 200 '
    assert wait_until(lambda: logged(alog, needle), timeout=10), log_lines(alog)
    sent = logged(alog, needle)[0].split(needle)[1].split()[0]
    assert sent == "-" or 0 < int(sent) < size, sent


@pytest.mark.parametrize("model", ["fork", "event"])
def test_access_log_garbage_request(start_server, docroot, tmp_path, model):
    alog = tmp_path / "access.log"
    s = start_server("--access-log", alog, model=model, root=docroot)
    r = raw(s, b"\x16\x03\x01 garbage\"\r\n\r\n")
    assert r.startswith(b"HTTP/1.1 400")
    body = r.split(b"\r\n\r\n", 1)[1]
    # nginx: the first line as received, escaped; the error page's bytes
    needle = '"\\x16\\x03\\x01 garbage\\x22" 400 '
    assert wait_until(lambda: logged(alog, needle)), log_lines(alog)
    assert logged(alog, needle)[0].split(needle)[1].split()[0] == str(len(body))


# ---- 6. an app's time zone does not move the server's time stamps ----

WSGI_SO = os.path.join(BUILD, "wsgi.so")


def django_ok():
    return os.path.exists(WSGI_SO) and subprocess.run(
        ["/usr/bin/python3", "-c", "import django"], capture_output=True).returncode == 0


@pytest.mark.skipif(not django_ok(), reason="needs build/wsgi.so and python3-django")
@pytest.mark.parametrize("model", ["fork", "event"])
def test_django_time_zone_does_not_move_the_log(start_server, tmp_path, model):
    (tmp_path / "tzsettings.py").write_text(
        "from djangoapp.settings import *\nTIME_ZONE = 'Asia/Kathmandu'\n")  # +0545
    alog, elog = tmp_path / "access.log", tmp_path / "error.log"
    env = dict(LSAN, TZ="UTC", DJANGO_SETTINGS_MODULE="tzsettings")
    s = start_server("--pythonpath", os.path.join(REPO, "apps", "python"), "--pythonpath", tmp_path,
                     "--wsgi", "/django=djangoapp.wsgi:application", "--workers", 1,
                     "--access-log", alog, "--error-log", elog, "--header-timeout", "0.3",
                     model=model, env=env, root=tmp_path)
    r = http_request(s, "GET", "/django/hello")
    assert r[1] == b"Hello world from Django!\n"
    c = s.connect()  # a warning after Django ran: a time-stamped error-log line
    c.sendall(b"GET /x HTTP/1.1\r\n")
    c.recv(4096)
    c.close()
    assert wait_until(lambda: logged(alog, '"GET /django/hello HTTP/1.1" 200'))
    assert wait_until(lambda: "header timeout" in elog.read_text())
    s.stop()
    line = logged(alog, '"GET /django/hello HTTP/1.1" 200')[0]
    assert " +0000] " in line, line
    stamps = re.findall(r"^\S+T\S+([+-]\d{4}) forkhttpd", elog.read_text(), re.M)
    assert stamps and set(stamps) == {"+0000"}, elog.read_text()


# ---- 7. a fatal app error is an error ----

@pytest.mark.skipif(not os.path.exists(WSGI_SO), reason="build/wsgi.so not built")
@pytest.mark.parametrize("model", ["fork", "event"])
def test_fatal_wsgi_import_error_is_error(tmp_path, model):
    p = subprocess.run([BIN, "--host", "127.0.0.1", "--port", "0", "--model", model,
                        "--pythonpath", str(tmp_path), "--wsgi", "no_such_module_xyz:app"],
                       capture_output=True, timeout=30, env=dict(os.environ, **LSAN))
    err = p.stderr.decode()
    assert p.returncode == 2, err
    assert ": error: " in err and ": warn: " not in err, err


# ---- docs: the commands they give ----

def test_help_alias_and_signals():
    h = subprocess.run([BIN, "-h"], capture_output=True, timeout=10)
    hh = subprocess.run([BIN, "--help"], capture_output=True, timeout=10)
    assert h.returncode == 0 and h.stdout == hh.stdout
    text = h.stdout.decode()
    for word in ("TERM", "HUP", "USR1", "--unix-mode"):
        assert word in text, word


def test_make_run_host_port():
    out = subprocess.run(["make", "-n", "-o", "all", f"BUILD={BUILD}", "run", "HOST=127.0.0.1",
                          "PORT=0"], cwd=REPO, capture_output=True, timeout=30).stdout.decode()
    assert "--host 127.0.0.1 --port 0" in out, out


def test_readme_cgi_command(tmp_path):
    """README: --cgi /cgi-bin=./examples/cgi-bin, from the checkout."""
    p = subprocess.Popen([BIN, "--host", "127.0.0.1", "--port", "0", "--model", "event",
                          "--workers", "1", "--cgi", "/cgi-bin=./examples/cgi-bin"],
                         cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = int(banner_port(p).split(" port ")[1].split()[0])
        assert b"Hello, World! (from /bin/sh" in get(port, "/cgi-bin/hello.sh")
    finally:
        p.terminate()
        assert p.wait(10) == 0
    readme = open(os.path.join(REPO, "README.md")).read()
    assert "--cgi /cgi-bin=./examples/cgi-bin" in readme


def test_make_install(tmp_path):
    """make install DESTDIR=...: the installed server finds its wsgi.so."""
    dest = tmp_path / "dest"
    r = subprocess.run(["make", "-s", f"BUILD={BUILD}", f"DESTDIR={dest}", "PREFIX=/usr", "install"],
                       cwd=REPO, capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    exe = dest / "usr" / "bin" / "forkhttpd"
    assert subprocess.run([str(exe), "-h"], capture_output=True, timeout=10).returncode == 0
    assert (dest / "usr" / "bin" / "forkload").exists()
    assert (dest / "usr" / "lib" / "forkhttpd" / "hello.so").exists()
    if os.path.exists(WSGI_SO):
        assert (dest / "usr" / "lib" / "forkhttpd" / "wsgi.so").exists()
        p = subprocess.Popen([str(exe), "--host", "127.0.0.1", "--port", "0", "--model", "event",
                              "--workers", "1", "--pythonpath",
                              str(dest / "usr" / "share" / "forkhttpd" / "python"),
                              "--wsgi", "hello:app"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            port = int(banner_port(p).split(" port ")[1].split()[0])
            assert get(port, "/").endswith(b"Hello, World!\n")
        finally:
            p.terminate()
            assert p.wait(15) == 0, p.stderr.read().decode()
