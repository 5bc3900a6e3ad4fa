#!/usr/bin/python3
"""idle_conns.py HOST PORT N [PATH] - open N keep-alive connections and hold them (W5).

Each connection sends one `GET PATH HTTP/1.1` and reads the whole response
(head + Content-Length body); then it stays open, idle. At most 256
connections are being set up at a time, so the server's listen queue never
overflows. When all N have their response the client prints
`ready OK FAILED` on stdout. Then it reads commands on stdin:
  check   -> prints `open K`: how many of the N are still open (not closed
             by the server)
  EOF     -> closes everything and exits.
It exits by itself after --hold seconds (default 120) even without EOF, so it
can never outlive the benchmark by much.
"""
import errno
import selectors
import signal
import socket
import sys
import time

INFLIGHT = 256


def main():
    host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    path = sys.argv[4] if len(sys.argv) > 4 else "/hello"
    hold = 120.0
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(2))
    signal.alarm(int(hold))
    req = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    held = []  # sockets with a complete response
    failed = 0
    started = 0
    pending = 0

    def start_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            return False
        sel.register(s, selectors.EVENT_WRITE, {"buf": b"", "state": "connect"})
        return True

    deadline = time.monotonic() + 60
    while (started < n or pending) and time.monotonic() < deadline:
        while started < n and pending < INFLIGHT:
            started += 1
            if start_one():
                pending += 1
            else:
                failed += 1
        for key, _ev in sel.select(timeout=1.0):
            s, st = key.fileobj, key.data
            try:
                if st["state"] == "connect":
                    e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if e:
                        raise OSError(e, "connect")
                    s.send(req)  # 40-odd bytes: one send on a fresh socket
                    st["state"] = "read"
                    sel.modify(s, selectors.EVENT_READ, st)
                    continue
                data = s.recv(65536)
                if not data:
                    raise OSError(errno.ECONNRESET, "closed by server")
                st["buf"] += data
                head, sep, body = st["buf"].partition(b"\r\n\r\n")
                if not sep:
                    continue
                clen = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        clen = int(v.strip())
                if len(body) >= clen:
                    sel.unregister(s)
                    pending -= 1
                    if head.split(b" ", 2)[1:2] == [b"200"]:
                        held.append(s)
                    else:
                        failed += 1
                        s.close()
            except OSError:
                sel.unregister(s)
                s.close()
                pending -= 1
                failed += 1
    failed = n - len(held)  # includes any still pending at the 60 s deadline
    print(f"ready {len(held)} {failed}", flush=True)

    for line in sys.stdin:
        if line.strip() == "check":
            chk = selectors.DefaultSelector()
            for s in held:
                chk.register(s, selectors.EVENT_READ)
            closed = 0
            for key, _ev in chk.select(timeout=0):
                try:
                    if key.fileobj.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                        closed += 1
                except OSError:
                    closed += 1
            chk.close()
            print(f"open {len(held) - closed}", flush=True)
    for s in held:
        s.close()


if __name__ == "__main__":
    main()
