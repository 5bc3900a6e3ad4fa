#!/usr/bin/python3
"""A long run at default limits (make soak; not part of make test).

Starts build/forkhttpd (SOAK_MODEL, default event) with default limits plus
a CGI directory, the echo app and the status page, and for SOAK_SECONDS
(default 600) runs at once:

  - keep-alive clients: GET /hello over persistent connections;
  - uploads: 1-5 MiB POSTs to a CGI script (Content-Length) and chunked to
    the echo app, each checked byte for byte;
  - CGI: GET of a small script;
  - slowloris: 100 connections that send a head a byte a second, reopened
    whenever the server cuts them (--min-rate);
  - SIGHUP (graceful restart) every SOAK_HUP seconds (default 60).

Then checks: zero failed well-behaved requests; the server's RSS (all its
processes) and descriptor count back to where they were after the warm-up
(RSS within 25% + 8 MiB, descriptors within 8: caches and a respawned worker
may differ a little); no zombie. Exit 0 if all hold, 1 otherwise.

A well-behaved client retries a request once on a new connection when a
reused keep-alive connection is closed under it (a graceful restart or an
idle connection reclaimed; RFC 9112 9.3.1), as browsers and HTTP libraries
do; only a failure on a fresh connection counts."""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, os.environ.get("FORKHTTPD_BUILD", "build"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
HUP_EVERY = float(os.environ.get("SOAK_HUP", "60"))
MODEL = os.environ.get("SOAK_MODEL", "event")

stats_lock = threading.Lock()
stats = {"ok": 0, "failed": 0, "retried": 0, "slowloris_cut": 0, "uploads": 0, "cgi": 0}
failures = []
stop = threading.Event()


def count(key, n=1):
    with stats_lock:
        stats[key] += n


def fail(what):
    with stats_lock:
        stats["failed"] += 1
        if len(failures) < 20:
            failures.append(what)


class Client:
    """One keep-alive connection; a request that meets a closed reused
    connection is retried once on a new one."""

    def __init__(self, port):
        self.port = port
        self.conn = None
        self.used = False

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.used = False
            reused = self.used
            try:
                self.conn.request(method, path, body=body() if callable(body) else body,
                                  headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                self.used = True
                if r.will_close:
                    self.close()
                return r.status, r, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                    http.client.BadStatusLine) as e:
                self.close()
                if reused and attempt == 0:
                    count("retried")
                    continue
                return None, None, repr(e)
            except OSError as e:
                self.close()
                return None, None, repr(e)
        return None, None, "retry failed"

    def close(self):
        if self.conn:
            self.conn.close()
        self.conn = None


def get_loop(port, path, good, what, pause, counter=None):
    """GET path again and again on one keep-alive connection until stop:
    counts "ok" (and counter) when good(status, body), else fails with what."""
    c = Client(port)
    while not stop.is_set():
        st, r, data = c.request("GET", path)
        if good(st, data):
            count("ok")
            if counter:
                count(counter)
        else:
            fail(f"{what}: {st} {data[:80]!r}")
        time.sleep(pause)
    c.close()


def keepalive_client(port):
    get_loop(port, "/hello", lambda st, data: st == 200 and data == b"Hello, World!\n",
             "GET /hello", 0.01)


def uploader(port, k):
    c = Client(port)
    i = 0
    while not stop.is_set():
        size = (1 + (i + k) % 5) << 20
        body = os.urandom(size)
        if i % 2:
            pieces = lambda: (body[j:j + 65536] for j in range(0, len(body), 65536))
            st, r, data = c.request("POST", "/echo", body=pieces)
            good = st == 200 and body in data
        else:
            st, r, data = c.request("POST", "/cgi/echo.py", body=body)
            good = st == 200 and data == body
        if good:
            count("ok")
            count("uploads")
        else:
            fail(f"upload {size}: {st} {data[:80]!r}")
        i += 1
        time.sleep(0.2)
    c.close()


def cgi_client(port):
    get_loop(port, "/cgi/hello.sh", lambda st, data: st == 200, "cgi", 0.05, "cgi")


def slowloris(port, n):
    socks = []
    while not stop.is_set():
        while len(socks) < n and not stop.is_set():
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
                s.setblocking(False)
                socks.append(s)
            except OSError:
                break
        stop.wait(1.0)
        for s in list(socks):
            try:
                s.send(b"X")
                if s.recv(4096) == b"":
                    raise OSError
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                socks.remove(s)
                count("slowloris_cut")
    for s in socks:
        s.close()


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == p:
                    out.append((int(d), fields[0]))
                    todo.append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return out


def measure(pid):
    """(RSS kB, descriptors, zombies) over the server's processes."""
    rss = fds = 0
    zombies = 0
    for p, state in [(pid, "S")] + descendants(pid):
        if state == "Z":
            zombies += 1
            continue
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return rss, fds, zombies


def settle(pid, seconds=15):
    """Wait until no CGI script or extra process is left (or a while)."""
    end = time.monotonic() + seconds
    last = None
    while time.monotonic() < end:
        m = measure(pid)
        if m == last:
            return m
        last = m
        time.sleep(1)
    return measure(pid)


def main():
    tmp = tempfile.mkdtemp(prefix="forkhttpd-soak-")
    www = os.path.join(tmp, "www")
    os.mkdir(www)
    with open(os.path.join(www, "hello"), "wb") as f:
        f.write(b"Hello, World!\n")
    cgi = os.path.join(tmp, "cgi")
    shutil.copytree(os.path.join(REPO, "tests", "cgi-bin"), cgi)
    for name in os.listdir(cgi):
        os.chmod(os.path.join(cgi, name), 0o755)
    errlog = open(os.path.join(tmp, "stderr.txt"), "w+b")
    srv = subprocess.Popen([os.path.join(BUILD, "forkhttpd"), "--host", "127.0.0.1", "--port", "0",
                            "--model", MODEL, "--root", www, "--cgi", f"/cgi={cgi}",
                            "--app", f"/echo={BUILD}/echo.so:app", "--status", "/status",
                            "--allow-root"], stdout=subprocess.PIPE, stderr=errlog)
    line = srv.stdout.readline().decode()
    port = int(line.split(" port ")[1].split()[0])
    print(f"soak: {MODEL} model on port {port}, {SECONDS:.0f} s, SIGHUP every {HUP_EVERY:.0f} s",
          flush=True)
    # warm-up: every kind of request once, then the baseline
    c = Client(port)
    for path in ("/hello", "/cgi/hello.sh"):
        c.request("GET", path)
    c.request("POST", "/echo", body=b"x" * 1000)
    c.close()
    time.sleep(1)
    base = settle(srv.pid, 5)
    print(f"soak: start: RSS {base[0]} kB, {base[1]} fds, {base[2]} zombies", flush=True)

    threads = [threading.Thread(target=keepalive_client, args=(port,)) for _ in range(8)]
    threads += [threading.Thread(target=uploader, args=(port, k)) for k in range(2)]
    threads += [threading.Thread(target=cgi_client, args=(port,)) for _ in range(2)]
    threads += [threading.Thread(target=slowloris, args=(port, 100))]
    for t in threads:
        t.start()
    t0 = time.monotonic()
    next_hup = t0 + HUP_EVERY
    hups = 0
    peak = base
    try:
        while time.monotonic() - t0 < SECONDS:
            time.sleep(1)
            now = time.monotonic()
            m = measure(srv.pid)
            peak = (max(peak[0], m[0]), max(peak[1], m[1]), max(peak[2], m[2]))
            if now >= next_hup:
                os.kill(srv.pid, signal.SIGHUP)
                hups += 1
                next_hup = now + HUP_EVERY
            if int(now - t0) % 30 == 0:
                with stats_lock:
                    print(f"soak: {now - t0:.0f} s: {stats}, RSS {m[0]} kB, {m[1]} fds", flush=True)
    finally:
        stop.set()
        for t in threads:
            t.join()
    end = settle(srv.pid)
    srv.send_signal(signal.SIGTERM)
    rc = srv.wait(timeout=30)
    errlog.seek(0)
    log = errlog.read().decode(errors="replace")
    sanitizer = [l for l in log.splitlines() if "Sanitizer" in l or "runtime error:" in l]
    rss_ok = end[0] <= base[0] * 1.25 + 8192
    fds_ok = end[1] <= base[1] + 8
    print(f"soak: end: RSS {end[0]} kB (start {base[0]}, peak {peak[0]}), {end[1]} fds "
          f"(start {base[1]}, peak {peak[1]}), {end[2]} zombies; {hups} SIGHUPs; exit {rc}")
    print(f"soak: requests: {stats}")
    for f in failures:
        print(f"soak: failed: {f}")
    ok = stats["failed"] == 0 and rss_ok and fds_ok and end[2] == 0 and rc == 0 and not sanitizer
    print(f"soak: {'PASS' if ok else 'FAIL'} (failed requests {stats['failed']}, RSS back "
          f"{'yes' if rss_ok else 'NO'}, fds back {'yes' if fds_ok else 'NO'}, zombies {end[2]}, "
          f"sanitizer reports {len(sanitizer)})")
    if ok:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"soak: server stderr kept in {tmp}/stderr.txt")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
