"""A small threaded HTTP/1.1 server for testing forkload.

The response is chosen by the request path, so one server covers every case:

  /ok            200 with Content-Length; keep-alive unless the request
                 says "Connection: close"
  /close         200 with "Connection: close", then close
  /chunked       200 chunked (with a chunk extension and a trailer)
  /eof           200 delimited by closing the connection (no length)
  /404, /500     that status, with a body
  /204           204, no body
  /interim       "100 Continue" then 200
  /http10        HTTP/1.0 200 with Content-Length, then close
  /bad           a malformed status line
  /reset         close with an RST (SO_LINGER 0) instead of answering
  /hang          never answer
  /raw/N         send NASTY[N] verbatim, then close
  /delay/N       sleep N ms, then 200

Pipelined requests are answered in order. The server counts accepted and
currently open connections, requests, and the deepest pipeline it has seen
(requests already buffered when it starts answering one).
"""
import socket
import struct
import threading
import time

BODY = b"hello, forkload\n"


def response(status, body=b"", extra=b"", version=b"HTTP/1.1"):
    reasons = {200: b"OK", 204: b"No Content", 404: b"Not Found",
               500: b"Internal Server Error"}
    head = b"%s %d %s\r\n" % (version, status, reasons.get(status, b"X"))
    if status != 204:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + extra + b"\r\n" + body


CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n"
           b"b\r\n, forkload!\r\n"
           b"0\r\nX-Trailer: yes\r\n\r\n")
EOF_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n" + BODY * 4
INTERIM = b"HTTP/1.1 100 Continue\r\n\r\n" + response(200, BODY)

# Responses a strict parser must reject (or, for 600, count as "other").
NASTY = [
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
    b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + (b"X-A: " + b"a" * 1000 + b"\r\n") * 100,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFF\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten..",
    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"HTTP/2 200\r\n\r\n",
    b"HTTP/1.1 20 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: \x01\r\n\r\n",
    b"\x00" * 10,
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
]

# Exact response sizes, so tests can check forkload's byte count.
SIZES = {
    "/ok": len(response(200, BODY)),
    "/chunked": len(CHUNKED),
    "/eof": len(EOF_RESPONSE),
    "/interim": len(INTERIM),
}


class TestServer:
    __test__ = False  # not a pytest test class

    def __init__(self, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(1024)  # listening before the constructor returns
        self.sock.settimeout(0.1)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.open = 0
        self.requests = 0
        self.max_pipeline = 0
        self.last_request = None  # (head bytes, body bytes)
        self._stop = threading.Event()
        self._conns = set()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def url(self, path="/ok"):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "http://%s:%d%s" % (h, self.port, path)

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                self.open += 1
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self._serve_requests(conn)
        except OSError:
            pass
        finally:
            with self.lock:
                self.open -= 1
                self._conns.discard(conn)
            conn.close()

    @staticmethod
    def _split(buf):
        """One complete request off the front of buf, or None."""
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = buf[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        total = end + 4 + length
        if len(buf) < total:
            return None
        return head, buf[end + 4:total], buf[total:]

    def _serve_requests(self, conn):
        buf = b""
        while not self._stop.is_set():
            req = self._split(buf)
            if req is None:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                continue
            head, body, buf = req
            depth = 1
            rest = buf
            while True:  # how many more complete requests are queued behind
                nxt = self._split(rest)
                if nxt is None:
                    break
                depth += 1
                rest = nxt[2]
            line = head.split(b"\r\n")[0].split(b" ")
            method, path = line[0], line[1].decode()
            with self.lock:
                self.requests += 1
                self.max_pipeline = max(self.max_pipeline, depth)
                self.last_request = (head, body)
            close_req = b"\r\nconnection: close" in head.lower()
            if not self._answer(conn, method, path, close_req):
                return

    def _answer(self, conn, method, path, close_req):
        """Send the response; False when the connection must end."""
        if path == "/reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
            return False
        if path == "/hang":
            while conn.recv(65536):
                pass
            return False
        if path.startswith("/raw/"):
            conn.sendall(NASTY[int(path[5:])])
            return False
        if path.startswith("/delay/"):
            time.sleep(int(path[7:]) / 1000.0)
            path = "/ok"
        keep = not close_req
        if path == "/close":
            out, keep = response(200, BODY, b"Connection: close\r\n"), False
        elif path == "/chunked":
            out = CHUNKED
        elif path == "/eof":
            out, keep = EOF_RESPONSE, False
        elif path == "/404":
            out = response(404, b"not here\n")
        elif path == "/500":
            out = response(500, b"broken\n")
        elif path == "/204":
            out = response(204)
        elif path == "/interim":
            out = INTERIM
        elif path == "/http10":
            out, keep = response(200, BODY, version=b"HTTP/1.0"), False
        elif path == "/bad":
            out, keep = b"HTTP/1.1 2x0 OK\r\n\r\n", False
        elif method == b"HEAD":
            out = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        else:
            out = response(200, BODY)
        conn.sendall(out)
        return keep
