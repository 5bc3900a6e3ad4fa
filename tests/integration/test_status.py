"""--status PREFIX: the scoreboard as text and JSON, in every model."""
import json
import os
import re
import socket
import subprocess

import pytest

from conftest import BIN, raw, raw_to, status_of, wait_until


def get_status(s, q=""):
    resp = raw(s, f"GET /status{q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status_of(resp) == 200, resp[:300]
    return resp.split(b"\r\n\r\n", 1)[1]


def test_status_text_and_json(start_server, docroot, model):
    s = start_server("--status", "/status", "--workers", 2, "--backlog", 333, model=model, root=docroot)
    for _ in range(5):
        assert raw(s, b"GET /hello HTTP/1.0\r\n\r\n").endswith(b"Hello, World!\n")
    doc = json.loads(get_status(s, "?json"))
    assert doc["model"] == model and doc["master_pid"] == s.pid
    assert doc["listen_queue"]["max"] == 333
    workers = doc["workers"]
    if model in ("prefork", "event"):
        # the master's children (prefork's pool may grow or shrink meanwhile)
        now = set(s.workers())
        assert workers and all(w["pid"] in now or not os.path.exists(f"/proc/{w['pid']}") for w in workers)
        if model == "event":
            assert {w["pid"] for w in workers} == now
    else:
        assert [w["pid"] for w in workers] == [s.pid]
    assert sum(w["requests"] for w in workers) >= 5
    assert sum(w["accepted"] for w in workers) >= 5
    assert all(w["fds"] > 0 for w in workers)
    if model == "fork":  # each connection's child was reaped
        assert wait_until(lambda: json.loads(get_status(s, "?json"))["children_reaped"] >= 5)
    text = get_status(s).decode()
    assert f"model {model}" in text and f"master pid {s.pid}" in text
    assert "listen queue" in text and "requests" in text


def test_status_off_by_default(start_server, docroot):
    s = start_server(model="event", root=docroot)
    assert status_of(raw(s, b"GET /status HTTP/1.0\r\n\r\n")) == 404


def test_status_methods(start_server, docroot):
    s = start_server("--status", "/_st", "--status-public", model="event", root=docroot)
    assert status_of(raw(s, b"POST /_st HTTP/1.0\r\nContent-Length: 0\r\n\r\n")) == 405
    head = raw(s, b"HEAD /_st HTTP/1.0\r\n\r\n")
    assert status_of(head) == 200 and head.endswith(b"\r\n\r\n")


# ---- who may look, and under which spelling (issue 11) ----

def status_req(s, target, extra=b"", method=b"GET"):
    return status_of(raw(s, method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         + extra + b"\r\n"))


@pytest.mark.parametrize("public", [False, True])
def test_status_only_canonical_spelling(start_server, docroot, public):
    """The router matches the normalised path, a proxy in front may match the
    raw one: every other spelling of the status path is 404, never the page
    (a proxy rule that guards "/status" cannot be walked around)."""
    (docroot / "status").mkdir()
    (docroot / "status" / "x").write_bytes(b"static\n")
    s = start_server("--status", "/status", *(["--status-public"] if public else []),
                     model="event", root=docroot)
    assert status_req(s, b"/status") == 200
    assert status_req(s, b"/status?json") == 200
    assert status_req(s, b"http://x/status") == 200  # absolute-form: the same path
    for t in [b"/%73tatus", b"/%73%74%61%74%75%73", b"//status", b"/./status", b"/status/.",
              b"/x/../status", b"/hello/../status", b"/status/", b"/status//", b"/status/x",
              b"//status?json", b"http://x//status", b"http://x/%73tatus"]:
        assert status_req(s, t) == 404, t
    assert status_req(s, b"/%73tatus", method=b"HEAD") == 404
    # not a prefix match on a segment boundary: another resource, served as usual
    assert status_req(s, b"/statusx") == 404
    assert status_req(s, b"/hello") == 200


def test_status_prefix_must_be_canonical(tmp_path):
    for bad in ["/%73tatus", "//status", "/a/../status", "/./status", "/st?x"]:
        p = subprocess.run([BIN, "--port", "0", "--status", bad], capture_output=True, timeout=10)
        assert p.returncode == 2 and b"--status" in p.stderr, (bad, p.stderr)


PROXY_FIELDS = [b"X-Forwarded-For: 203.0.113.9", b"x-forwarded-for: 127.0.0.1",
                b"Forwarded: for=203.0.113.9", b"Via: 1.1 proxy", b"X-Real-IP: 203.0.113.9",
                b"X-Forwarded-Proto: https", b"X-Forwarded-Host: example.com"]


@pytest.mark.parametrize("model", ["event", "fork"])
def test_status_refused_through_a_proxy(start_server, docroot, model):
    """A loopback peer that forwards for someone else (it says so in a proxy
    header field) is not the local admin: 403 unless --status-public."""
    s = start_server("--status", "/status", model=model, root=docroot)
    assert status_req(s, b"/status") == 200  # a direct loopback client
    for f in PROXY_FIELDS:
        assert status_req(s, b"/status", f + b"\r\n") == 403, f
        assert status_req(s, b"/status?json", b"User-Agent: t\r\n" + f + b"\r\n") == 403, f
    # the rest of the site is not affected by the fields
    assert status_req(s, b"/hello", PROXY_FIELDS[0] + b"\r\n") == 200
    # fields that only look similar do not count
    assert status_req(s, b"/status", b"X-Forwarded: 1\r\nVia-Note: 1\r\n") == 200
    p = start_server("--status", "/status", "--status-public", model=model, root=docroot)
    for f in PROXY_FIELDS:
        assert status_req(p, b"/status", f + b"\r\n") == 200, f


def non_loopback_ipv4():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))  # no packet is sent: only picks the source address
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") else ip


def test_status_remote_client_refused(start_server, docroot):
    ip = non_loopback_ipv4()
    if not ip:
        pytest.skip("no non-loopback IPv4 address")
    s = start_server("--status", "/status", "--host", "0.0.0.0", model="event", root=docroot)
    req = b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert status_of(raw_to((ip, s.port), req)) == 403
    assert status_of(raw_to(("127.0.0.1", s.port), req)) == 200
    # a non-canonical spelling is 404 whoever asks
    assert status_of(raw_to((ip, s.port), req.replace(b"/status", b"//status"))) == 404
    p = start_server("--status", "/status", "--status-public", "--host", "0.0.0.0",
                     model="event", root=docroot)
    assert status_of(raw_to((ip, p.port), req)) == 200


# ---- the event loop's longest iteration; the mount table (issue 13) ----

def test_status_loop_time_and_mounts(start_server, docroot, model):
    """Event workers show their longest loop iteration (since start, and over
    the last 10-20 s) in us; the blocking models have no loop and show none.
    Every model shows the mount table: prefix, kind, what serves it."""
    cgi = docroot / "sub"
    s = start_server("--status", "/status", "--cgi", f"/cgi-bin={cgi}", "--workers", 1,
                     model=model, root=docroot)
    assert raw(s, b"GET /hello HTTP/1.0\r\n\r\n").endswith(b"Hello, World!\n")
    doc = json.loads(get_status(s, "?json"))
    for w in doc["workers"]:
        if model == "event":
            assert isinstance(w["loop_max_us"], int) and isinstance(w["loop_recent_us"], int)
            assert w["loop_max_us"] >= w["loop_recent_us"] >= 0
        else:
            assert "loop_max_us" not in w and "loop_recent_us" not in w
    text = get_status(s).decode()
    assert ("loop_max_ms" in text) == (model == "event")
    mounts = [(m["prefix"], m["kind"], m["serves"]) for m in doc["mounts"]]
    assert mounts == [("/status", "status", "loopback clients"),
                      ("/cgi-bin", "cgi", os.path.realpath(cgi)),
                      ("/", "static", os.path.realpath(docroot))]
    assert re.search(rf"^/cgi-bin +cgi +{re.escape(os.path.realpath(cgi))}$", text, re.M), text
