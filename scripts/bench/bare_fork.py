#!/usr/bin/python3
"""bare_fork.py PORT - the WSGI fork row's ceiling for `make bench` (issue 19).

A bare fork-per-connection server in Python: the parent accepts and forks,
the child reads the request once, writes a fixed answer and _exits. No WSGI,
no parsing: what a fork of a process holding a Python interpreter costs, and
nothing else. forkhttpd --model fork --wsgi forks such a process too (its
interpreter is embedded), so this is the most that row can reach.

Children are reaped by a SIGCHLD handler (waitpid WNOHANG loop), as in the
tutorial; SIGTERM ends the server.
"""
import errno
import os
import signal
import socket
import sys

ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n"
          b"Content-Type: text/plain\r\n\r\nHello, World!\n")


def reap(_signo, _frame):
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0))
    ls.listen(1024)
    signal.signal(signal.SIGCHLD, reap)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"Serving HTTP on 127.0.0.1 port {ls.getsockname()[1]}", flush=True)
    while True:
        try:
            conn, _ = ls.accept()  # (PEP 475 restarts it after SIGCHLD)
        except OSError as e:
            if e.errno == errno.EINTR:
                continue
            raise
        if os.fork() == 0:
            try:
                ls.close()
                if conn.recv(4096):
                    conn.sendall(ANSWER)
            finally:
                os._exit(0)
        conn.close()


if __name__ == "__main__":
    main()
