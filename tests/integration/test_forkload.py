"""Integration tests for build/forkload against a local Python test server
(forkload_testserver.py) and, when installed, nginx. Only 127.0.0.1 / ::1.

Run: /usr/bin/python3 -m pytest tests/integration/test_forkload.py
With FORKHTTPD_BUILD=build-asan the sanitizer build is used, and any
AddressSanitizer / UBSan report on stderr fails the test.
"""
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from forkload_testserver import NASTY, SIZES, TestServer  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FORKLOAD = os.path.join(REPO, os.environ.get("FORKHTTPD_BUILD", "build"), "forkload")
NGINX = "/usr/sbin/nginx"

pytestmark = pytest.mark.skipif(not os.access(FORKLOAD, os.X_OK),
                                reason="forkload not built: make build/forkload")


def check_sanitizers(stderr):
    assert "AddressSanitizer" not in stderr, stderr
    assert "LeakSanitizer" not in stderr, stderr
    assert "runtime error" not in stderr, stderr
    assert "internal error" not in stderr, stderr  # request accounting


def run(*args, timeout=30):
    p = subprocess.run([FORKLOAD, *args], capture_output=True, text=True,
                       timeout=timeout)
    check_sanitizers(p.stderr)
    return p


def run_json(*args, timeout=30):
    p = run("--json", *args, timeout=timeout)
    assert p.stdout.strip(), p.stderr
    return p.returncode, json.loads(p.stdout)


@pytest.fixture
def server():
    with TestServer() as s:
        yield s


def ipv6_ok():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def wait_until(pred, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError("timed out waiting for " + what)


# ------------------------------------------------------------- arguments

@pytest.mark.parametrize("args,msg", [
    (["--conns", "x", "http://127.0.0.1/"], "forkload: --conns: not a positive number: 'x'"),
    (["--clients", "0", "http://127.0.0.1/"], "--clients: not a positive number: '0'"),
    (["--requests", "-3", "http://127.0.0.1/"], "--requests: not a positive number"),
    (["--pipeline", "2x", "http://127.0.0.1/"], "--pipeline: not a positive number"),
    (["--timeout", "abc", "http://127.0.0.1/"], "--timeout: not a positive number of seconds"),
    (["--duration", "nan", "http://127.0.0.1/"], "--duration: not a positive number of seconds"),
    (["--hold", "-1", "http://127.0.0.1/"], "--hold: not a positive number of seconds"),
    (["--clients", "99999", "http://127.0.0.1/"], "--clients: 99999 is too large"),
    (["--duration", "1", "--requests", "5", "http://127.0.0.1/"], "exclude each other"),
    (["--hold", "1", "--duration", "1", "http://127.0.0.1/"], "exclude each other"),
    (["--conns", "30000", "http://127.0.0.1/"], "ulimit -n"),
    (["--header", "nocolon", "http://127.0.0.1/"], "--header: want 'Name: value'"),
    (["--method", "G T", "http://127.0.0.1/"], "--method: not a valid method"),
    (["--body", "/nonexistent/file", "http://127.0.0.1/"], "--body: cannot open"),
    (["--bogus", "http://127.0.0.1/"], "unknown option '--bogus'"),
    (["--conns"], "missing value"),
    ([], "missing URL"),
    (["ftp://127.0.0.1/"], "only http:// and https://"),
    (["--cacert", "/etc/hostname", "http://127.0.0.1/"], "--cacert: only for https:// URLs"),
    (["--tls-resume", "http://127.0.0.1/"], "--tls-resume: only for https:// URLs"),
    (["--cacert", "x", "--insecure", "https://127.0.0.1/"], "exclude each other"),
    (["--cacert", "/nonexistent/ca.pem", "https://127.0.0.1/"], "--cacert: cannot load '/nonexistent/ca.pem'"),
    (["http://[::1/"], "unterminated IPv6"),
    (["http://127.0.0.1:99999/"], "bad port"),
    (["http://127.0.0.1:/"], "bad port"),
    (["http://:80/"], "bad host"),
    (["http://a/", "http://b/"], "unexpected argument"),
])
def test_bad_arguments_exit_2_with_one_line(args, msg):
    p = run(*args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("forkload: ")
    assert msg in lines[0]
    assert p.stdout == ""


def test_help_and_version():
    p = run("--help")
    assert p.returncode == 0
    for word in ("SYNOPSIS", "OPTIONS", "EXIT STATUS", "--hold", "--pipeline",
                 "--max-clients", "--json"):
        assert word in p.stdout
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("forkload ")


# ---------------------------------------------------------------- counts

def test_keepalive_counts(server):
    rc, j = run_json("--clients", "2", "--conns", "3", "--requests", "20",
                     "--keep-alive", server.url("/ok"))
    assert rc == 0
    assert j["requests"] == j["ok"] == 120
    assert j["errors"]["total"] == 0
    assert j["connections"]["opened"] == 6 and j["connections"]["failed"] == 0
    assert j["connections"]["reconnects"]["total"] == 0
    assert j["answered"] == 120 and j["requests_per_sec"] > 0
    assert j["bytes"] == 120 * SIZES["/ok"]
    assert j["clients"] == 2
    assert j["per_client"]["requests"] == [60, 60]
    assert server.accepted == 6 and server.requests == 120


def test_close_counts_new_connection_per_request(server):
    rc, j = run_json("--max-clients", "2", "--max-conns", "3", "--requests", "5",
                     server.url("/ok"))
    assert rc == 0
    assert j["requests"] == j["ok"] == 30
    assert j["connections"]["opened"] == 30
    assert server.accepted == 30
    head, _ = server.last_request
    assert b"\r\nConnection: close" in head


def test_server_closing_keepalive_connections(server):
    """Every response says Connection: close: 3 keep-alive slots need 15
    connections; the 12 beyond the 3 asked for are reconnects because the
    server closed, and the run still succeeds."""
    rc, j = run_json("--conns", "3", "--requests", "5", "-k", server.url("/close"))
    assert rc == 0 and j["exit_status"] == 0
    assert j["ok"] == j["answered"] == j["requests"] == 15
    assert j["errors"]["total"] == 0
    assert j["connections"]["opened"] == 15 == server.accepted
    assert j["connections"]["reconnects"] == {"total": 12, "server_closed": 12,
                                              "after_error": 0}
    ph = run("--conns", "3", "--requests", "5", "-k", server.url("/close"))
    assert ph.returncode == 0
    assert re.search(r"Reconnects:\s+12 beyond the 3 asked for \(12: server closed", ph.stdout)


def test_pipelining(server):
    rc, j = run_json("--conns", "2", "--requests", "50", "--pipeline", "8",
                     server.url("/ok"))
    assert rc == 0
    assert j["requests"] == j["ok"] == 100
    assert j["connections"]["opened"] == 2
    assert j["bytes"] == 100 * SIZES["/ok"]
    assert server.max_pipeline > 1


def test_pipelining_against_closing_server_resends(server):
    rc, j = run_json("--conns", "2", "--requests", "6", "--pipeline", "4",
                     server.url("/close"))
    assert rc == 0
    assert j["ok"] == 12 and j["errors"]["total"] == 0


@pytest.mark.parametrize("path,ka", [("/chunked", True), ("/eof", False),
                                     ("/eof", True), ("/interim", True)])
def test_body_framings(server, path, ka):
    args = ["--conns", "3", "--requests", "4"] + (["-k"] if ka else [])
    rc, j = run_json(*args, server.url(path))
    assert rc == 0, j
    assert j["ok"] == 12 and j["errors"]["total"] == 0
    assert j["bytes"] == 12 * SIZES[path]


@pytest.mark.parametrize("path,args", [("/204", ["-k"]), ("/http10", ["-k"]),
                                       ("/ok", ["--method", "HEAD", "-k"])])
def test_bodyless_and_http10(server, path, args):
    rc, j = run_json("--conns", "2", "--requests", "3", *args, server.url(path))
    assert rc == 0, j
    assert j["ok"] == 6


def test_status_4xx_5xx(server):
    """HTTP error statuses are answers: counted per class and in the rates,
    not failures for the exit status."""
    rc, j = run_json("--conns", "2", "--requests", "3", "-k", server.url("/404"))
    assert rc == 0
    assert j["status_4xx"] == 6 and j["ok"] == 0 and j["requests"] == 6
    assert j["answered"] == 6 and j["errors"]["total"] == 0 and j["requests_per_sec"] > 0
    rc, j = run_json("--conns", "2", "--requests", "3", "-k", server.url("/500"))
    assert rc == 0
    assert j["status_5xx"] == 6 and j["ok"] == 0 and j["answered"] == 6


def test_resets(server):
    rc, j = run_json("--conns", "3", "--requests", "2", server.url("/reset"))
    assert rc == 1
    assert j["errors"]["reset"] == 6 and j["errors"]["total"] == 6
    assert j["requests"] == 6 and j["ok"] == 0


def test_malformed(server):
    rc, j = run_json("--conns", "2", server.url("/bad"))
    assert rc == 1
    assert j["errors"]["malformed"] == 2


@pytest.mark.parametrize("n", range(len(NASTY)))
def test_nasty_responses_are_malformed_not_crashes(server, n):
    rc, j = run_json("--conns", "2", "-k", "--requests", "2", server.url("/raw/%d" % n))
    assert rc == 1
    assert j["errors"]["malformed"] == 4 and j["requests"] == 4, j


def test_timeouts_are_bounded(server):
    t0 = time.monotonic()
    rc, j = run_json("--conns", "3", "--timeout", "0.3", server.url("/hang"))
    assert time.monotonic() - t0 < 5
    assert rc == 1
    assert j["errors"]["timeout"] == 3 and j["requests"] == 3
    assert j["answered"] == 0 and j["requests_per_sec"] == 0


def test_silent_server_requests_unanswered_at_end_of_hold(server):
    """The server accepts and reads but never answers; --hold ends before
    --timeout: the requests are failures (unanswered), not left out."""
    rc, j = run_json("--conns", "3", "--hold", "0.5", "--timeout", "10",
                     server.url("/hang"))
    assert j["requests"] == 3
    assert rc == 1 and j["exit_status"] == 1 and j["answered"] == 0
    assert j["errors"]["unanswered"] == 3 and j["errors"]["total"] == 3
    assert j["connections"]["opened"] == 3
    assert j["requests_per_sec"] == 0
    ph = run("--conns", "3", "--hold", "0.5", "--timeout", "10", server.url("/hang"))
    assert ph.returncode == 1
    assert "unanswered 3" in ph.stdout and "FAILED" in ph.stdout


def full_listener():
    """A listening socket nobody accepts from, its queue already full."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    return s


def test_connects_that_never_complete_are_counted():
    with full_listener() as s:
        url = "http://127.0.0.1:%d/" % s.getsockname()[1]
        # Within --hold: still connecting at the end.
        rc, j = run_json("--conns", "6", "--hold", "0.5", "--timeout", "10", url)
        assert rc == 1
        c = j["connections"]
        assert c["never_completed"] >= 1, j
        assert c["opened"] + c["never_completed"] + c["failed"] == 6
        assert j["requests"] == 6 and j["answered"] == 0
        assert j["errors"]["total"] == 6
        assert j["errors"]["unanswered"] >= c["never_completed"]
        # With a short --timeout: connect timeouts.
        rc, j = run_json("--conns", "4", "--timeout", "0.3", url)
        assert rc == 1
        c = j["connections"]
        assert c["timed_out"] >= 1 and c["timed_out"] <= c["failed"]
        assert j["errors"]["timeout"] == 4 and j["requests"] == 4
        assert j["requests_per_sec"] == 0


def test_duration_waits_for_answers_in_flight(server):
    """Requests in flight when --duration ends are waited for (up to
    --timeout), so a server that stops answering is not a success."""
    t0 = time.monotonic()
    rc, j = run_json("--conns", "2", "-k", "--duration", "0.3", "--timeout", "0.6",
                     server.url("/hang"))
    assert time.monotonic() - t0 < 5
    assert rc == 1
    assert j["errors"]["timeout"] == 2 and j["requests"] == 2 and j["answered"] == 0


def free_port():
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_on_closed_port():
    rc, j = run_json("--clients", "2", "--conns", "2", "--requests", "3",
                     "http://127.0.0.1:%d/" % free_port())
    assert rc == 1
    assert j["errors"]["refused"] == 12 and j["requests"] == 12
    assert j["connections"]["opened"] == 0 and j["connections"]["failed"] == 12
    assert j["connections"]["reconnects"]["total"] == 0  # not keep-alive
    assert j["requests_per_sec"] == 0


def test_refused_with_pipeline_is_no_throughput():
    """Issue 18: refused connects were counted as finished requests, giving a
    huge requests_per_sec. 4 slots x 96 requests, 8 per connect attempt."""
    args = ["--conns", "4", "--requests", "96", "--pipeline", "8",
            "http://127.0.0.1:%d/" % free_port()]
    rc, j = run_json(*args)
    assert j["requests_per_sec"] == 0 and j["bytes_per_sec"] == 0
    assert rc == 1 and j["exit_status"] == 1
    assert j["answered"] == 0 and j["ok"] == 0
    assert j["errors"]["refused"] == j["errors"]["total"] == j["requests"] == 384
    c = j["connections"]
    assert c["opened"] == 0 and c["failed"] == 48
    assert c["reconnects"] == {"total": 44, "server_closed": 0, "after_error": 44}
    ph = run(*args)
    assert ph.returncode == 1
    assert "Throughput:   0.00 req/s" in ph.stdout
    assert "FAILED: 384 of 384 requests failed" in ph.stdout


def test_request_method_headers_body(server, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"x" * 3000)
    rc, j = run_json("--method", "POST", "-H", "X-Test: 1", "--header", "Accept: */*",
                     "--body", str(body), "--conns", "1", server.url("/ok?q=1"))
    assert rc == 0
    head, got = server.last_request
    assert head.startswith(b"POST /ok?q=1 HTTP/1.1\r\n")
    assert b"\r\nX-Test: 1" in head and b"\r\nAccept: */*" in head
    assert b"\r\nContent-Length: 3000" in head
    assert b"\r\nHost: 127.0.0.1:%d" % server.port in head
    assert got == b"x" * 3000


@pytest.mark.skipif(not ipv6_ok(), reason="no IPv6 loopback")
def test_ipv6_literal():
    with TestServer("::1") as s:
        rc, j = run_json("--conns", "2", "--requests", "2", "-k", s.url("/ok"))
        assert rc == 0 and j["ok"] == 4


# ------------------------------------------------------- output / latency

HUMAN = {
    "requests": r"Requests:\s+(\d+) total",
    "ok": r"(\d+) ok \(2xx/3xx\)",
    "status_4xx": r"(\d+) 4xx",
    "status_5xx": r"(\d+) 5xx",
    "opened": r"Connections:\s+(\d+) opened",
    "failed": r"(\d+) failed",
    "timed_out": r"\((\d+) timed out\)",
    "never_completed": r"(\d+) never completed",
    "unanswered": r"unanswered (\d+)",
    "reconnects": r"Reconnects:\s+(\d+) beyond",
    "bytes": r"\((\d+) bytes\)",
}


def test_json_matches_human_summary(server):
    args = ["--clients", "2", "--conns", "2", "--requests", "5", "-k"]
    ph = run(*args, server.url("/404"))
    rc, j = run_json(*args, server.url("/404"))
    assert ph.returncode == rc == j["exit_status"] == 0
    got = {k: int(re.search(rx, ph.stdout).group(1)) for k, rx in HUMAN.items()}
    c = j["connections"]
    assert got == {"requests": j["requests"], "ok": j["ok"],
                   "status_4xx": j["status_4xx"], "status_5xx": j["status_5xx"],
                   "opened": c["opened"], "failed": c["failed"],
                   "timed_out": c["timed_out"], "never_completed": c["never_completed"],
                   "unanswered": j["errors"]["unanswered"],
                   "reconnects": c["reconnects"]["total"], "bytes": j["bytes"]}
    assert "Result:       all 20 requests answered (exit 0)" in ph.stdout
    for name in ("refused", "reset", "timeout", "malformed", "other"):
        assert re.search(r"%s %d\b" % (name, j["errors"][name]), ph.stdout)
    lat = re.search(r"Latency \(us\): min (\d+), p50 (\d+), p90 (\d+), p99 (\d+), "
                    r"p99\.9 (\d+), max (\d+)", ph.stdout)
    assert lat
    for key in ("requests_per_sec", "bytes_per_sec", "duration_sec", "latency_us"):
        assert key in j
    assert set(j["latency_us"]) >= {"min", "p50", "p90", "p99", "p999", "max"}


def test_known_delay_shows_in_latency(server):
    rc, j = run_json("--conns", "2", "--requests", "3", "-k", server.url("/delay/150"))
    assert rc == 0 and j["ok"] == 6
    lat = j["latency_us"]
    assert 150000 <= lat["min"] <= lat["p50"] <= lat["p99"] <= lat["max"]
    assert lat["p50"] < 150000 * 1.5
    assert j["duration_sec"] >= 0.45


def test_duration_mode(server):
    t0 = time.monotonic()
    rc, j = run_json("--conns", "2", "-k", "--duration", "1", server.url("/ok"))
    assert 0.9 < time.monotonic() - t0 < 4
    assert rc == 0
    assert j["requests"] > 10 and j["ok"] == j["requests"]
    assert 0.9 < j["duration_sec"] < 2


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/status" % d) as f:
                st = dict(line.split(":\t", 1) for line in f if ":\t" in line)
        except OSError:
            continue
        if int(st.get("PPid", "0")) == pid:
            kids.append((int(d), st["State"].split()[0]))
    return kids


def test_hold_keeps_connections_and_leaves_no_zombies(server):
    clients, conns, hold = 3, 4, 2.0
    t0 = time.monotonic()
    p = subprocess.Popen([FORKLOAD, "--json", "--clients", str(clients), "--conns",
                          str(conns), "--hold", str(hold), server.url("/ok")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: server.open == clients * conns, 5, "all held connections")
        kids = children_of(p.pid)
        assert len(kids) == clients
        assert all(state != "Z" for _, state in kids)
        # Still all open well into the hold period.
        while time.monotonic() - t0 < hold * 0.6:
            assert server.open == clients * conns
            time.sleep(0.05)
        out, err = p.communicate(timeout=hold + 10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    check_sanitizers(err)
    assert time.monotonic() - t0 >= hold
    assert p.returncode == 0, err
    j = json.loads(out)
    assert j["ok"] == clients * conns
    assert j["connections"]["opened"] == clients * conns
    wait_until(lambda: server.open == 0, 5, "connections closed after --hold")
    for pid, _ in kids:  # reaped: gone entirely, not left as zombies
        assert not os.path.exists("/proc/%d" % pid)


def test_sigint_prints_summary_so_far(server):
    p = subprocess.Popen([FORKLOAD, "--json", "--clients", "2", "--conns", "2", "-k",
                          "--duration", "30", server.url("/ok")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: server.requests > 20, 10, "requests to flow")
        kids = children_of(p.pid)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    check_sanitizers(err)
    j = json.loads(out)
    assert j["interrupted"] is True
    assert j["requests"] > 0 and j["ok"] == j["requests"]
    assert j["errors"]["unanswered"] == 0  # cut off by Ctrl-C: cancelled
    assert 0 <= j["cancelled"] <= 4
    assert j["duration_sec"] < 20
    assert p.returncode == 0
    for pid, _ in kids:
        assert not os.path.exists("/proc/%d" % pid)


# ----------------------------------------------- forkhttpd, iterative

def test_storm_against_iterative_server_counts_every_request(start_server, docroot):
    """Issue 18: the tutorial's storm against --model iterative (one
    connection at a time, kept alive) reported "2 total: 2 ok, 0 errors",
    exit 0. Every request must be accounted for: answered + failed ==
    attempted, and connects the small backlog left hanging are counted."""
    srv = start_server("--backlog", "4", root=docroot, model="iterative")
    clients, conns = 4, 25
    rc, j = run_json("--clients", str(clients), "--conns", str(conns), "--hold", "1",
                     "--timeout", "10", "http://127.0.0.1:%d/hello" % srv.port)
    total = clients * conns
    assert rc == 1 and j["exit_status"] == 1
    assert j["requests"] == total
    assert j["answered"] + j["errors"]["total"] == total
    assert j["answered"] == j["ok"] >= 1
    assert j["errors"]["unanswered"] >= 1
    c = j["connections"]
    assert c["opened"] + c["failed"] + c["never_completed"] == total
    assert c["never_completed"] >= 1
    assert j["errors"]["unanswered"] >= c["never_completed"]
    assert j["requests_per_sec"] == pytest.approx(j["answered"] / j["duration_sec"], rel=0.01)
    assert sum(j["per_client"]["requests"]) == total


# ---------------------------------------------------------------- nginx

@contextlib.contextmanager
def nginx_running(d, server, connections, **values):
    """nginx (1 worker, files in d) with one server block on a free port:
    `server` is its lines, %-formatted with d, port and values. Yields the
    port; skips the test if nginx is not installed or does not start."""
    if not os.access(NGINX, os.X_OK):
        pytest.skip("nginx not installed")
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(("""
worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log;
events { worker_connections %(connections)d; }
http {
    access_log off;
    client_body_temp_path %(d)s;
    proxy_temp_path %(d)s;
    fastcgi_temp_path %(d)s;
    uwsgi_temp_path %(d)s;
    scgi_temp_path %(d)s;
    server {
""" + server + """\
    }
}
""") % dict(values, d=d, port=port, connections=connections))
    proc = subprocess.Popen([NGINX, "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return proc.poll() is not None
    try:
        wait_until(listening, 5, "nginx to listen")
        if proc.poll() is not None:
            pytest.skip("nginx failed to start")
        yield port
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def nginx():
    with nginx_running(tempfile.mkdtemp(prefix="forkload-nginx-"), """\
        listen 127.0.0.1:%(port)d;
        location / { return 200 "hello from nginx\\n"; }
        location /missing { return 404; }
""", 1024) as port:
        yield "http://127.0.0.1:%d" % port


def test_against_nginx(nginx):
    rc, j = run_json("--clients", "2", "--conns", "10", "--requests", "200", "-k",
                     "--pipeline", "4", nginx + "/")
    assert rc == 0
    assert j["ok"] == j["requests"] == 4000
    assert j["connections"]["opened"] >= 20
    rc, j = run_json("--conns", "5", "--requests", "4", nginx + "/missing")
    assert rc == 0 and j["status_4xx"] == 20


# ---------------------------------------------------------------- https

from test_tls import pki, tls_args  # noqa: E402,F401  (the throw-away CA, once per session)


def https_url(port, path="/hello", host="localhost"):
    return "https://%s:%d%s" % (host, port, path)


def test_https_full_and_resumed_handshakes(start_server, docroot, pki):
    s = start_server(*tls_args(pki), "--workers", "2", root=docroot)
    ca = os.path.join(pki, "ca.crt")
    # a handshake per request, checked against the CA and the name
    rc, j = run_json("--cacert", ca, "--conns", "4", "--requests", "10", https_url(s.port))
    assert rc == 0 and j["ok"] == j["requests"] == 40
    assert j["tls"] == {"handshakes": 40, "resumed": 0}
    assert j["connections"]["opened"] == 40 and j["errors"]["tls"] == 0
    assert j["bytes"] > 40 * len(b"Hello, World!\n")
    # --tls-resume: every slot's later connections resume its last session
    rc, j = run_json("--cacert", ca, "--conns", "4", "--requests", "10", "--tls-resume",
                     https_url(s.port))
    assert rc == 0 and j["ok"] == 40
    assert j["tls"] == {"handshakes": 40, "resumed": 36}
    # keep-alive and pipelining over one handshake per connection; an address URL
    # (the certificate names 127.0.0.1 too)
    rc, j = run_json("--cacert", ca, "--conns", "3", "--requests", "50", "--pipeline", "4",
                     https_url(s.port, host="127.0.0.1"))
    assert rc == 0 and j["ok"] == 150 and j["tls"]["handshakes"] == 3
    # a large body, through many records
    rc, j = run_json("--cacert", ca, "--conns", "2", "--requests", "3", "-k",
                     https_url(s.port, "/big.bin"))
    assert rc == 0 and j["ok"] == 6 and j["bytes"] > 6 * (4 << 20)
    # human output: the TLS line
    p = run("--cacert", ca, "--conns", "2", "--requests", "2", "--tls-resume", https_url(s.port))
    assert p.returncode == 0 and "TLS:          4 handshakes (2 resumed), 0 failed" in p.stdout


def test_https_untrusted_and_wrong_name(start_server, docroot, pki):
    # the server has only a certificate for alt.test
    s = start_server("--tls-cert", os.path.join(pki, "alt.test.crt"), "--tls-key",
                     os.path.join(pki, "alt.test.key"), root=docroot)
    ca = os.path.join(pki, "ca.crt")
    for args in ([], ["--cacert", ca]):  # the system's CAs do not know it; the name differs
        p = run("--json", *args, "--conns", "3", "--requests", "2", "-k", https_url(s.port))
        j = json.loads(p.stdout)
        assert p.returncode == 1 and j["errors"]["tls"] == j["requests"] == 6, j
        assert j["answered"] == 0 and j["tls"]["handshakes"] == 0
        assert j["connections"]["failed"] == 6
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "certificate verify failed" in lines[0], p.stderr
    rc, j = run_json("--insecure", "--conns", "3", "--requests", "2", https_url(s.port))
    assert rc == 0 and j["ok"] == 6


def test_https_to_a_plain_server_fails_cleanly(server):
    url = server.url("/").replace("http://", "https://")
    p = run("--json", "--conns", "2", "--requests", "2", "--timeout", "5", "--insecure", url)
    j = json.loads(p.stdout)
    assert p.returncode == 1 and j["answered"] == 0 and j["requests"] == 4
    assert j["errors"]["total"] == 4 and j["tls"]["handshakes"] == 0


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) not installed")
def test_https_counts_agree_with_h2load(start_server, docroot, pki):
    s = start_server(*tls_args(pki), root=docroot)
    h = subprocess.run(["h2load", "--h1", "-n", "200", "-c", "4", https_url(s.port)],
                       capture_output=True, text=True, timeout=60)
    assert "200 succeeded" in h.stdout and "0 failed" in h.stdout, h.stdout
    rc, j = run_json("--insecure", "--conns", "4", "--requests", "50", "-k", https_url(s.port))
    assert rc == 0 and j["ok"] == 200 and j["tls"]["handshakes"] == 4


@pytest.mark.parametrize("proto", ["TLSv1.2", "TLSv1.3"])
def test_https_against_nginx(pki, tmp_path, proto):
    """nginx over TLS (1.2: session IDs and tickets; 1.3: tickets) with the test certificate."""
    with nginx_running(str(tmp_path), """\
        listen 127.0.0.1:%(port)d ssl;
        ssl_certificate %(pki)s/localhost.chain;
        ssl_certificate_key %(pki)s/localhost.key;
        ssl_protocols %(proto)s;
        ssl_session_cache shared:S:1m;
        location / { return 200 "hello from nginx\\n"; }
""", 256, pki=pki, proto=proto) as port:
        ca = os.path.join(pki, "ca.crt")
        rc, j = run_json("--cacert", ca, "--conns", "3", "--requests", "5", "--tls-resume",
                         https_url(port, "/"))
        assert rc == 0 and j["ok"] == 15
        assert j["tls"] == {"handshakes": 15, "resumed": 12}
        rc, j = run_json("--cacert", ca, "--conns", "2", "--requests", "100", "--pipeline", "8",
                         https_url(port, "/"))
        assert rc == 0 and j["ok"] == 200 and j["tls"]["handshakes"] == 2

