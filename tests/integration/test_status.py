"""--status PREFIX: the scoreboard as text and JSON, in every model."""
import json
import os

from conftest import raw, status_of, wait_until


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
