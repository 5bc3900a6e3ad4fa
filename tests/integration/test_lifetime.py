"""Lifetimes between the parts (issue 11): a response that waits must own or
pin what it sends, and answers queued before a request that waits (for its
body, for a CGI head) leave before it.

These are regression tests: each failed before its fix."""
import os
import socket
import time

import pytest

from conftest import MODELS, wait_until

FILE_LEN = 6000  # a small file: kept in the open-file cache (<= 8 KiB)
N_PIPELINED = 2000  # ~12 MB of answers: more than the socket buffers hold


def server_send_queue(server_port, client_port):
    """Bytes queued in the server's socket towards client_port (/proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, remote = fields[1], fields[2]
            if (int(local.split(":")[1], 16) == server_port
                    and int(remote.split(":")[1], 16) == client_port):
                return int(fields[4].split(":")[0], 16)
    return 0


def read_chunked_answer(c, timeout=10):
    """The bytes on c up to the end of a chunked answer (a CGI's: no
    Content-Length), read until its last chunk."""
    c.settimeout(timeout)
    rest = b""
    while not rest.endswith(b"0\r\n\r\n"):
        b = c.recv(65536)
        assert b, rest
        rest += b
    return rest


def read_responses(sock, count, timeout=10.0):
    """Read count HTTP/1.1 responses with Content-Length; returns [(status, body)]."""
    sock.settimeout(timeout)
    buf = b""
    out = []
    while len(out) < count:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError(f"EOF after {len(out)} responses")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if status // 100 == 1:
            out.append((status, b""))
            continue
        while len(buf) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise AssertionError("EOF in a body")
            buf += chunk
        out.append((status, buf[:length]))
        buf = buf[length:]
    return out


@pytest.mark.parametrize("change", ["evict", "rewrite"])
def test_deferred_cached_body_survives_eviction(start_server, tmp_path, change):
    """A client pipelines GETs of a small cached file and stops reading: the
    answers wait in the worker. Another client then evicts the file's cache
    slot (many other files) or the file changes. Every answer the first
    client finally reads is the file's bytes (one version or the other),
    never freed memory or another file's bytes."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.txt").write_bytes(b"A" * FILE_LEN)
    for i in range(400):
        (root / f"f{i}.txt").write_bytes(bytes([ord("a") + i % 26]) * FILE_LEN)
    s = start_server("--workers", 1, model="event", root=root)

    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", s.port))
    req = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    slow.sendall(req * N_PIPELINED)
    # wait until the worker has filled the socket (it holds answers back then):
    # the send queue is large and has stopped growing
    port = slow.getsockname()[1]
    last = [-1]

    def full():
        q = server_send_queue(s.port, port)
        done = q > 65536 and q == last[0]
        last[0] = q
        return done
    assert wait_until(full, timeout=10, interval=0.1), "the server never filled the socket"

    other = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    if change == "evict":
        for i in range(400):
            other.sendall(f"GET /f{i}.txt HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert read_responses(other, 1)[0][0] == 200
    else:
        time.sleep(0.05)  # a new mtime, in a later coarse-clock tick
        (root / "a.txt").write_bytes(b"B" * FILE_LEN)
        for _ in range(5):  # the cache notices the change and refills the entry
            other.sendall(req)
            st, body = read_responses(other, 1)[0]
            assert st == 200
            # then drop the new bytes too
        for i in range(400):
            other.sendall(f"GET /f{i}.txt HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert read_responses(other, 1)[0][0] == 200
    other.close()

    answers = read_responses(slow, N_PIPELINED, timeout=20)
    slow.close()
    good = {b"A" * FILE_LEN, b"B" * FILE_LEN}
    bad = [i for i, (st, body) in enumerate(answers) if st != 200 or body not in good]
    assert not bad, f"{len(bad)} answers are not the file: first {answers[bad[0]][1][:40]!r}"


def cgi_site(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "hello").write_bytes(b"Hello, World!\n")
    cgi = tmp_path / "cgi-bin"
    cgi.mkdir()
    late = cgi / "late.sh"
    # the head comes only once the file named by QUERY_STRING exists (10 s at most)
    late.write_text("#!/bin/sh\n"
                    "i=0\n"
                    "while [ ! -e \"$QUERY_STRING\" ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done\n"
                    "printf 'Content-Type: text/plain\\r\\n\\r\\nlate\\n'\n")
    late.chmod(0o755)
    echo = cgi / "cat.sh"
    echo.write_text("#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\ncat\n")
    echo.chmod(0o755)
    return root, cgi


@pytest.mark.parametrize("model", MODELS)
def test_answer_not_held_behind_cgi_head(start_server, tmp_path, model):
    """GET /hello and a CGI request pipelined: the 200 for /hello leaves at
    once, not when the script finally prints its head."""
    root, cgi = cgi_site(tmp_path)
    flag = tmp_path / "go"
    s = start_server("--cgi", f"/cgi={cgi}", model=model, root=root)
    c = s.connect(timeout=10)
    c.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
              b"GET /cgi/late.sh?" + str(flag).encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.monotonic()
    first = read_responses(c, 1, timeout=5)
    assert first == [(200, b"Hello, World!\n")]
    assert time.monotonic() - t0 < 3, "the first answer waited for the CGI head"
    flag.write_bytes(b"")
    rest = read_chunked_answer(c)
    assert rest.startswith(b"HTTP/1.1 200") and b"late\n" in rest
    c.close()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("expect", [False, True])
def test_answer_not_held_behind_request_body(start_server, tmp_path, model, expect):
    """GET /hello and a POST whose body comes later, pipelined: the GET's 200
    leaves before the body arrives; with Expect: 100-continue the interim
    answer follows it in order, through the same buffer."""
    root, cgi = cgi_site(tmp_path)
    s = start_server("--cgi", f"/cgi={cgi}", model=model, root=root)
    c = s.connect(timeout=10)
    head = (b"POST /cgi/cat.sh HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            + (b"Expect: 100-continue\r\n" if expect else b"") + b"\r\n")
    c.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n" + head)
    want = 2 if expect else 1
    got = read_responses(c, want, timeout=5)
    assert got[0] == (200, b"Hello, World!\n")
    if expect:
        assert got[1][0] == 100
    c.sendall(b"hello")
    rest = read_chunked_answer(c)
    assert rest.startswith(b"HTTP/1.1 200") and b"hello" in rest
    c.close()
