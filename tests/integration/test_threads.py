"""Apps that wait (--threads, src/app_pool.c): a slow app runs on a pool
thread of its event worker, so it stalls no other connection; the app that
sleeps (apps/sleep.c) and a WSGI app that sleeps in every model; CPU-bound
calls; a crash and an exception while other calls run; the queue bound
(503 + Retry-After); --app-timeout (504, stuck threads, the master replaces
the worker); graceful stop and restart with calls in flight.

No timing is asserted: "does not stall" is checked by order (a quick request
is answered while slow ones are still running, their sockets still silent)."""
import json
import os
import signal
import socket
import threading
import time

import pytest

from conftest import BUILD, MODELS, REPO, conn_fd_count, http_request, raw, status_of, wait_until

SLEEP = os.path.join(BUILD, "sleep.so")
HELLO = os.path.join(BUILD, "hello.so")
WSGI_SO = os.path.join(BUILD, "wsgi.so")
LSAN = {"LSAN_OPTIONS": "suppressions=" + os.path.join(REPO, "tests", "lsan-python.supp")
        + ":print_suppressions=0"}

# a WSGI app that waits, and shows which thread (and thread-local) served it
SLOWAPP = r'''
import threading, time
local = threading.local()

def app(environ, start_response):
    q = environ.get("QUERY_STRING", "")
    ms = int(q[3:]) if q.startswith("ms=") else 50
    if environ["PATH_INFO"] == "/raise":
        raise RuntimeError("boom")
    if environ["PATH_INFO"] == "/main":  # the loop's thread
        body = b"%d\n" % threading.main_thread().ident
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    if ms:
        time.sleep(ms / 1000.0)
    local.n = getattr(local, "n", 0) + 1
    body = ("%d %s %d\n" % (threading.get_ident(), environ["wsgi.multithread"], local.n)).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def sleep_apps(*extra):
    return ["--app", f"/sleep={SLEEP}:app", "--app", f"/hello={HELLO}:app",
            "--status", "/status"] + [str(x) for x in extra]


def send(server, path, method="GET", body=b""):
    """Send a request on a new connection; the socket, to read later."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    return s


def read_all(s):
    out = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except (ConnectionResetError, socket.timeout):
        pass
    s.close()
    return out


def silent(s):
    """Nothing has arrived on s yet (without consuming anything)."""
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) is None
    except BlockingIOError:
        return True
    finally:
        s.setblocking(True)


def status(server):
    r = http_request(server, "GET", "/status?json")
    assert r[0].status == 200
    return json.loads(r[1])


def pool(server):
    """Sum of the workers' pool counters."""
    keys = ("app_threads", "app_busy", "app_queued", "app_stuck", "app_rejected", "app_timeouts")
    tot = dict.fromkeys(keys, 0)
    for w in status(server)["workers"]:
        for k in keys:
            tot[k] += w.get(k, 0)
    return tot


def body_of(resp):
    return resp.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in resp else b""


# ---- the app that sleeps, in every model ----

@pytest.mark.parametrize("model", MODELS)
def test_sleep_app_every_model(start_server, model):
    s = start_server(*sleep_apps("--workers", "2"), model=model)
    socks = [send(s, "/sleep?ms=50") for _ in range(6)]
    outs = [read_all(x) for x in socks]
    assert all(status_of(o) == 200 and body_of(o) == b"slept 50 ms\n" for o in outs), outs
    r = raw(s, b"POST /sleep/post HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n"
               b"Connection: close\r\n\r\n" + b"x" * 100000)
    assert status_of(r) == 200 and body_of(r) == b"read 100000\n", r


def test_slow_calls_do_not_stall_the_worker(start_server):
    s = start_server(*sleep_apps("--workers", "1", "--threads", "4"))
    slow = [send(s, "/sleep?ms=4000") for _ in range(3)]
    assert wait_until(lambda: pool(s)["app_busy"] == 3, timeout=10)
    # while three calls sleep, the same worker answers others: an inline app,
    # a quick pool call, the status page
    for path in ("/hello", "/sleep?ms=0"):
        r, data = http_request(s, "GET", path)
        assert r.status == 200, data
    assert all(silent(x) for x in slow)  # ...and the slow ones are still running
    for x in slow:
        o = read_all(x)
        assert status_of(o) == 200 and body_of(o) == b"slept 4000 ms\n"
    st = pool(s)
    assert st["app_busy"] == 0 and st["app_queued"] == 0 and st["app_threads"] >= 3


def test_threads_0_runs_inline(start_server):
    s = start_server(*sleep_apps("--workers", "1", "--threads", "0"))
    outs = [read_all(x) for x in [send(s, "/sleep?ms=20") for _ in range(3)]]
    assert all(status_of(o) == 200 for o in outs)
    assert "app_threads" not in status(s)["workers"][0]


def test_cpu_bound_calls(start_server):
    s = start_server(*sleep_apps("--workers", "1", "--threads", "2", "--app-queue", "64"))
    socks = [send(s, "/sleep/cpu?ms=30") for _ in range(8)] + [send(s, "/sleep?ms=5")]
    outs = [read_all(x) for x in socks]
    assert all(status_of(o) == 200 for o in outs), outs
    assert sum(body_of(o) == b"spun 30 ms\n" for o in outs) == 8


def test_client_gone_mid_call_leaks_nothing(start_server):
    s = start_server(*sleep_apps("--workers", "1", "--threads", "2"))

    def abandon_three():
        for _ in range(3):
            x = send(s, "/sleep/post?ms=300", "POST", b"y" * 5000)
            x.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            x.close()  # a reset while the call runs (or waits in the queue)
        assert wait_until(lambda: pool(s)["app_busy"] == 0, timeout=10)
        r, _ = http_request(s, "GET", "/sleep?ms=0")  # the loop frees what they left
        assert r.status == 200

    # The pool keeps request objects (each with its eventfd) for reuse, as
    # many as were ever in flight at once: how many a round uses depends on
    # timing (a call dropped while queued never gets one). So: warm up, then
    # 9 more abandoned calls must not add a descriptor each (at most the 3 a
    # round can have in flight, if the warm-up happened to use fewer).
    abandon_three()
    wpid = s.workers()[0]  # (it answered: it exists)
    before = conn_fd_count(wpid)
    for _ in range(3):
        abandon_three()
    assert wait_until(lambda: conn_fd_count(wpid) <= before + 3, timeout=5), \
        (before, conn_fd_count(wpid))


# ---- errors and crashes while other calls run ----

def test_raise_and_crash_while_others_run(start_server):
    s = start_server(*sleep_apps("--workers", "2", "--threads", "4"), check=True)
    slow = [send(s, "/sleep?ms=300") for _ in range(3)]
    r, _ = http_request(s, "GET", "/sleep/raise")
    assert r.status == 500
    assert all(status_of(read_all(x)) == 200 for x in slow)
    # a crash on a pool thread: 500 to its client, that worker dies, the master
    # starts another
    out = raw(s, b"GET /sleep/segv?ms=0 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status_of(out) == 500 and b"Connection: close" in out
    assert wait_until(lambda: "crashed with signal 11 (SIGSEGV)" in s.stderr(), timeout=5)
    assert wait_until(lambda: len(s.workers()) == 2, timeout=5)
    r, data = http_request(s, "GET", "/sleep?ms=1")
    assert r.status == 200 and data == b"slept 1 ms\n"


# ---- back-pressure ----

def test_queue_full_answers_503(start_server):
    s = start_server(*sleep_apps("--workers", "1", "--threads", "1", "--app-queue", "1"))
    running = send(s, "/sleep?ms=3000")
    assert wait_until(lambda: pool(s)["app_busy"] == 1, timeout=10)
    queued = send(s, "/sleep?ms=1")
    assert wait_until(lambda: pool(s)["app_queued"] == 1, timeout=10)
    r, data = http_request(s, "GET", "/sleep?ms=1")
    assert r.status == 503 and r.getheader("Retry-After") == "1"
    r2, _ = http_request(s, "GET", "/sleep?ms=1")
    assert r2.status == 503
    assert pool(s)["app_rejected"] == 2
    assert s.stderr().count("answering 503") == 1  # once per second, not per request
    assert status_of(read_all(running)) == 200
    assert status_of(read_all(queued)) == 200
    r, _ = http_request(s, "GET", "/sleep?ms=1")
    assert r.status == 200


# ---- --app-timeout ----

def test_app_timeout_504_stuck_and_recycled(start_server):
    s = start_server(*sleep_apps("--workers", "1", "--threads", "3", "--app-timeout", "0.3",
                                 "--app-stuck", "2"))
    old = wait_until(s.workers)
    r, data = http_request(s, "GET", "/sleep?ms=4000")
    assert r.status == 504
    assert wait_until(lambda: '"GET /sleep?ms=4000 HTTP/1.1"' in s.stderr(), timeout=5)
    st = pool(s)
    assert st["app_stuck"] == 1 and st["app_timeouts"] == 1
    r, _ = http_request(s, "GET", "/sleep?ms=1")  # one stuck thread: the others serve
    assert r.status == 200
    r, _ = http_request(s, "GET", "/sleep?ms=4000")  # the second: the worker is replaced
    assert r.status == 504
    assert wait_until(lambda: "replacing it" in s.stderr(), timeout=5)
    assert wait_until(lambda: old[0] not in s.workers() and len(s.workers()) == 1, timeout=10)
    r, data = http_request(s, "GET", "/sleep?ms=1")
    assert r.status == 200 and data == b"slept 1 ms\n"


def test_slow_client_is_not_a_stuck_call(start_server):
    # a client that reads its (large) answer slowly holds no thread
    s = start_server(*sleep_apps("--workers", "1", "--threads", "1", "--app-timeout", "0.3"))
    x = send(s, "/sleep/post?ms=0", "POST", b"z" * 10)
    r, _ = http_request(s, "GET", "/sleep?ms=0")
    assert r.status == 200
    assert status_of(read_all(x)) == 200
    assert pool(s)["app_stuck"] == 0


# ---- stop and restart with calls in flight ----

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_stop_and_restart_lose_no_call(start_server, sig):
    s = start_server(*sleep_apps("--workers", "2", "--threads", "8"))
    socks = [send(s, "/sleep?ms=600") for _ in range(6)]
    assert wait_until(lambda: pool(s)["app_busy"] + pool(s)["app_queued"] == 6, timeout=10)
    s.proc.send_signal(sig)
    outs = [read_all(x) for x in socks]
    assert all(status_of(o) == 200 and body_of(o) == b"slept 600 ms\n" for o in outs), outs
    if sig == signal.SIGHUP:
        r, data = http_request(s, "GET", "/sleep?ms=1")
        assert r.status == 200
    else:
        assert s.stop() == 0


# ---- WSGI ----

def wsgi(start_server, tmp_path, *args, model="event"):
    if not os.path.exists(WSGI_SO):
        pytest.skip("build/wsgi.so not built")
    (tmp_path / "slowapp.py").write_text(SLOWAPP)
    return start_server("--pythonpath", tmp_path, "--wsgi", "/w=slowapp:app",
                        "--status", "/status", *args, model=model, env=LSAN, root=tmp_path)


@pytest.mark.parametrize("model", MODELS)
def test_wsgi_sleep_every_model(start_server, tmp_path, model):
    s = wsgi(start_server, tmp_path, "--workers", "2", model=model)
    outs = [read_all(x) for x in [send(s, "/w/x?ms=50") for _ in range(6)]]
    assert all(status_of(o) == 200 for o in outs), outs
    multithread = {body_of(o).split()[1] for o in outs}
    assert multithread == {b"True" if model == "event" else b"False"}


def test_wsgi_threads_keep_their_state(start_server, tmp_path):
    s = wsgi(start_server, tmp_path, "--workers", "1", "--threads", "4")
    slow = [send(s, "/w/x?ms=3000") for _ in range(3)]
    assert wait_until(lambda: pool(s)["app_busy"] == 3, timeout=10)
    r, data = http_request(s, "GET", "/w/x?ms=0")  # the GIL is not held while they sleep
    assert r.status == 200
    assert all(silent(x) for x in slow)
    outs = [body_of(read_all(x)).split() for x in slow]
    assert len({o[0] for o in outs}) == 3  # three threads at once
    # a thread's threading.local lives across its requests (Django's
    # per-thread DB connections): some thread has served more than one
    counts = [int(body_of(raw(s, b"GET /w/x?ms=0 HTTP/1.1\r\nHost: t\r\n\r\n")).split()[2])
              for _ in range(12)]
    assert max(counts) >= 2
    r, data = http_request(s, "GET", "/w/raise")
    assert r.status == 500
    assert "boom" in s.stderr()


def test_wsgi_concurrent_calls_stress(start_server, tmp_path):
    s = wsgi(start_server, tmp_path, "--workers", "2", "--threads", "8")
    results = []

    def client():
        for _ in range(10):
            r, data = http_request(s, "GET", "/w/x?ms=2")
            results.append(r.status)

    ts = [threading.Thread(target=client) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results == [200] * 80


def assert_static_fast_while_pooled(s):
    """Once 9 slow app calls are on the pool, a static file still comes within a second."""
    assert wait_until(lambda: pool(s)["app_busy"] >= 9, timeout=15)
    t = time.monotonic()
    r, data = http_request(s, "GET", "/static.txt")
    assert r.status == 200 and data == b"static\n"
    assert time.monotonic() - t < 1.0


# ---- inline while short, the pool once it waits (app_pool_call) ----

def test_fast_app_runs_inline_then_moves_to_the_pool(start_server, tmp_path):
    # a WSGI app whose calls are short runs inside the loop (the main thread)
    # after a few dozen calls on the pool; once its calls start to wait it is
    # moved back to the pool, and a static file on the same worker is served
    # at once while ten slow calls run
    s = wsgi(start_server, tmp_path, "--workers", "1")
    (tmp_path / "static.txt").write_text("static\n")
    c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    f = c.makefile("rb")

    def get(path):
        c.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        assert f.readline().split()[1] == b"200"
        n = 0
        while True:
            line = f.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        return f.read(n)

    idents = [get("/w/x?ms=0").split()[0] for _ in range(400)]
    main_ident = get("/w/main").strip()
    assert idents[0] != main_ident  # an app starts on the pool...
    # ...and its short calls come inline (most of them: on a busy machine a
    # call descheduled in the middle looks long, and a few go back to the pool)
    assert idents[-100:].count(main_ident) >= 50
    c.close()
    slow = [send(s, "/w/x?ms=2500") for _ in range(10)]
    # the first slow call may run inline (stalling the loop once); the rest go
    # to the pool
    assert_static_fast_while_pooled(s)
    assert sum(silent(x) for x in slow) >= 9  # ...while they still run
    outs = [body_of(read_all(x)).split() for x in slow]
    assert all(len(o) == 3 for o in outs), outs
    assert sum(o[0] != main_ident for o in outs) >= 9  # on pool threads


def test_app_inline_us_0_always_pools(start_server, tmp_path):
    s = wsgi(start_server, tmp_path, "--workers", "1", "--app-inline-us", "0")
    idents = {body_of(raw(s, b"GET /w/x?ms=0 HTTP/1.1\r\nHost: t\r\n\r\n")).split()[0]
              for _ in range(150)}
    main = body_of(raw(s, b"GET /w/main HTTP/1.1\r\nHost: t\r\n\r\n")).strip()
    assert main and main not in idents  # never inline


def test_fast_c_app_inline_then_pooled(start_server, tmp_path):
    # the same with a thread-safe C app (apps/sleep.c; also under make tsan)
    (tmp_path / "static.txt").write_text("static\n")
    s = start_server(*sleep_apps("--workers", "1"), root=tmp_path)
    c = socket.create_connection(("127.0.0.1", s.port), timeout=30)
    for _ in range(300):
        c.sendall(b"GET /sleep?ms=0 HTTP/1.1\r\nHost: t\r\n\r\n")
        got = b""
        while not got.endswith(b"slept 0 ms\n"):
            got += c.recv(4096)
        assert status_of(got) == 200
    c.close()
    slow = [send(s, "/sleep?ms=2500") for _ in range(10)]
    assert_static_fast_while_pooled(s)
    outs = [read_all(x) for x in slow]
    assert all(status_of(o) == 200 and body_of(o) == b"slept 2500 ms\n" for o in outs), outs
