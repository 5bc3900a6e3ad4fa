#!/usr/bin/python3
"""tutorial_loopback.py SERVER.py [ARGS...] - run the tutorial's server on 127.0.0.1 only.

tutorial_server.py binds ("", port), i.e. every interface. The benchmark uses
nothing but loopback, so this wrapper turns a bind to "" / 0.0.0.0 into a bind
to 127.0.0.1 and then runs the unmodified script as __main__ in this process
(same pid, so /proc CPU accounting sees exactly the server and its children).
"""
import runpy
import socket
import sys

_bind = socket.socket.bind


def _loopback_bind(self, addr):
    if isinstance(addr, tuple) and addr and addr[0] in ("", "0.0.0.0"):
        addr = ("127.0.0.1",) + tuple(addr[1:])
    return _bind(self, addr)


socket.socket.bind = _loopback_bind
script = sys.argv[1]
sys.argv = [script] + sys.argv[2:]
runpy.run_path(script, run_name="__main__")
