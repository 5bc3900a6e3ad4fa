"""Many forkhttpd instances behind HAProxy, with nothing lost (issue 16,
docs/deploy.md). Debian's haproxy (scripts/deps-haproxy.txt) is started on
loopback with a generated config: three instances (event, prefork, event
with TLS), PROXY protocol v2 (health checks send LOCAL), `option httpchk`
on --health, --drain 1.

Addresses: forkload connects from 127.0.0.1; HAProxy connects to the
instances from 127.0.0.3 (`source`), and only 127.0.0.3 is a
--trusted-proxy. So an access log line of a proxied request that says
127.0.0.1 names the client, one that says 127.0.0.3 would name HAProxy --
and HAProxy's own health checks (PROXY v2 LOCAL: the connection's address
stays) must say 127.0.0.3, which shows the two really are told apart."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import BUILD, Server, descendants, recv_all, wait_until

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
OPENSSL = shutil.which("openssl")
pytestmark = pytest.mark.skipif(HAPROXY is None or OPENSSL is None,
                                reason="haproxy and openssl are needed (scripts/deps.sh)")

HAPROXY_ADDR = "127.0.0.3"
FORKLOAD = os.path.join(BUILD, "forkload")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Instance:
    """One forkhttpd behind HAProxy; restartable on the same port."""

    def __init__(self, name, model, workers, docroot, tmp, tls=None):
        self.name, self.model, self.workers = name, model, workers
        self.docroot, self.tmp, self.tls = docroot, tmp, tls
        self.log = os.path.join(tmp, f"access-{name}.log")
        self.port = 0
        self.server = None

    def start(self):
        args = ["--host", "127.0.0.1", "--port", str(self.port), "--model", self.model,
                "--workers", str(self.workers), "--root", str(self.docroot),
                "--proxy-protocol", "--trusted-proxy", HAPROXY_ADDR,
                "--health", "/healthz", "--drain", "1", "--grace", "5",
                "--access-log", self.log]
        if self.tls:
            args += ["--tls-cert", self.tls[0], "--tls-key", self.tls[1]]
        self.server = Server(args, self.tmp)
        self.port = self.server.port
        return self

    def lines(self):
        try:
            with open(self.log) as f:
                return [l for l in f.read().splitlines() if l]
        except FileNotFoundError:
            return []


class HAProxy:
    def __init__(self, tmp, instances):
        self.sock = os.path.join(tmp, "haproxy.sock")
        self.port = free_port()
        servers = "\n".join(
            f"    server {i.name} 127.0.0.1:{i.port} check"
            + (" ssl verify none" if i.tls else "") for i in instances)
        cfg = f"""
global
    nbthread 1
    maxconn 2000
    stats socket {self.sock} level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
    timeout check 1s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend be
backend be
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 100ms fall 1 rise 1 send-proxy-v2 check-send-proxy source {HAPROXY_ADDR}
{servers}
"""
        self.cfg = os.path.join(tmp, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(cfg)
        self.err = open(os.path.join(tmp, "haproxy.err"), "w+b")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", self.cfg], stdout=self.err,
                                     stderr=self.err)

    def status(self):
        """{server: "UP"/"DOWN"/...} from the stats socket, {} while it is not there."""
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(2)
            s.connect(self.sock)
            s.sendall(b"show stat\n")
            data = recv_all(s)
            s.close()
        except OSError:
            return {}
        rows = data.decode().splitlines()
        if not rows or not rows[0].startswith("# "):
            return {}
        head = rows[0][2:].split(",")
        out = {}
        for r in rows[1:]:
            f = dict(zip(head, r.split(",")))
            if f.get("pxname") == "be" and f.get("svname") not in ("BACKEND", None):
                out[f["svname"]] = f["status"].split()[0]
        return out

    def wait(self, name, state, timeout=5):
        return wait_until(lambda: self.status().get(name) == state, timeout=timeout, interval=0.02)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # soft stop
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.err.close()


@pytest.fixture
def cluster(docroot, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    insts = [Instance("a", "event", 1, docroot, str(tmp_path)),
             Instance("b", "prefork", 2, docroot, str(tmp_path)),
             Instance("c", "event", 1, docroot, str(tmp_path), tls=(str(cert), str(key)))]
    hap = None
    try:
        for i in insts:
            i.start()
        hap = HAProxy(str(tmp_path), insts)
        for i in insts:  # readiness: HAProxy's checks say UP (bounded)
            assert hap.wait(i.name, "UP"), (i.name, hap.status())
        yield hap, insts
    finally:
        if hap:
            hap.stop()
        problems = []
        for i in insts:
            if i.server and not i.server.stopped:
                try:
                    i.server.stop()
                except AssertionError as e:
                    problems.append(str(e))
        assert not problems, "\n".join(problems)


def forkload(port, seconds, conns=8):
    return subprocess.Popen(
        [FORKLOAD, "--json", "--clients", "1", "--conns", str(conns), "-k", "--timeout", "5",
         "--duration", str(seconds), f"http://127.0.0.1:{port}/hello"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def result(p):
    out, err = p.communicate(timeout=30)
    return p.returncode, json.loads(out), err.decode()


def test_rolling_restart_loses_nothing(cluster):
    hap, insts = cluster
    load = forkload(hap.port, 6)
    wait_until(lambda: all(i.lines() for i in insts), timeout=3)  # load reaches every instance
    for i in insts:
        t0 = time.monotonic()
        i.server.proc.send_signal(signal.SIGTERM)
        # --drain: HAProxy sees 503 on /healthz and takes it out while it still serves
        assert hap.wait(i.name, "DOWN", timeout=3), hap.status()
        assert i.server.proc.poll() is None, f"{i.name} stopped before HAProxy took it out"
        assert i.server.stop(timeout=10) == 0  # drain over, graceful stop, exit 0
        assert time.monotonic() - t0 >= 0.9
        i.start()  # the same port again
        assert hap.wait(i.name, "UP"), hap.status()
    rc, res, err = result(load)
    assert rc == 0 and res["errors"]["total"] == 0, (res, err)
    assert res["status_5xx"] == 0 and res["ok"] == res["answered"] > 0, res
    # the client's address in every instance's log, never HAProxy's
    for i in insts:
        lines = i.lines()
        app = [l for l in lines if '"GET /hello ' in l]
        checks = [l for l in lines if '"GET /healthz ' in l]
        assert app, i.name
        bad = [l for l in app if not l.startswith("127.0.0.1 ")]
        assert not bad, (i.name, bad[:3])
        assert checks and all(l.startswith(HAPROXY_ADDR + " ") for l in checks), (i.name, checks[:3])
        # while draining, the checks got 503
        assert any('" 503 ' in l for l in checks), i.name


def test_kill_9_marks_down_and_loses_only_in_flight(cluster):
    hap, insts = cluster
    conns = 8
    load = forkload(hap.port, 3, conns=conns)
    victim = insts[0]
    wait_until(lambda: len(victim.lines()) > 20, timeout=3)
    pids = [victim.server.pid] + descendants(victim.server.pid)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert hap.wait(victim.name, "DOWN", timeout=3), hap.status()
    rc, res, err = result(load)
    failed = res["errors"]["total"] + res["status_5xx"]
    # only what was in flight on the killed instance may fail: at most one
    # request per client connection (HAProxy retries most of them)
    assert failed <= conns, res
    assert res["answered"] > 0
    victim.server.stop(expect_rc=-signal.SIGKILL)
    # once it is out, nothing fails
    rc, res, err = result(forkload(hap.port, 1))
    assert rc == 0 and res["errors"]["total"] == 0 and res["status_5xx"] == 0, res
