#!/usr/bin/env python3
"""The include graph of src/ runs one way (issue 13; docs/architecture.md):

    models -> conn -> router -> handlers -> resp/parse -> config -> base

Each file belongs to a layer by its unit (its basename); it may include
headers of its own layer or of a lower one, never of a higher one, and the
headers may not include each other in a cycle. Prints TAP (run by prove from
`make unit`); exits non-zero on a violation."""
import os
import re
import sys

LAYERS = [
    # libc only: the clock, logging, sockets, signals, the pure request parser
    # (owned_hdr: the table of fields the server owns, pure; config checks --header with it)
    ("base", ["module", "fork_child", "clock", "log", "net", "sig", "sigsafe", "confine", "http_parse", "forkhttpd_app",
              "owned_hdr", "realip"]),
    # the options (validated with the parser) and the shared counters
    ("config", ["config", "scoreboard", "mime"]),
    ("resp/parse", ["cgi_head", "environ", "resp", "http_resp", "accept_enc", "compress",
                    "compress_*"]),
    ("handlers", ["handler", "h_static", "h_cgi", "h_app", "h_status", "app_*", "wsgi*"]),
    ("router", ["router"]),
    ("conn", ["conn", "transport", "tls", "tls_*", "transport_*", "proxy*"]),
    ("models", ["model", "model_*", "serve", "supervise", "worker", "main"]),
]

def layer_of(unit):
    for i, (_, names) in enumerate(LAYERS):
        for n in names:
            if n == unit or (n.endswith("*") and unit.startswith(n[:-1])):
                return i
    return None

def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    files = []
    for d, _, fs in os.walk(root):
        files += [os.path.join(d, f) for f in fs if f.endswith((".c", ".h"))]
    inc_re = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
    problems, graph = [], {}
    for path in sorted(files):
        rel = os.path.relpath(path, root)
        unit = os.path.splitext(os.path.basename(path))[0]
        if rel.startswith("wsgi" + os.sep):
            unit = "wsgi"
        lf = layer_of(unit)
        if lf is None:
            problems.append(f"{rel}: not in any layer (add its unit to scripts/check_layers.py)")
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            incs = inc_re.findall(f.read())
        if path.endswith(".h"):
            graph[os.path.basename(path)] = [os.path.basename(i) for i in incs]
        for inc in incs:
            iu = os.path.splitext(os.path.basename(inc))[0]
            li = layer_of(iu)
            if li is None:
                problems.append(f"{rel}: includes {inc}, which is in no layer")
            elif li > lf:
                problems.append(f"{rel} ({LAYERS[lf][0]}) includes {inc} ({LAYERS[li][0]}): "
                                "an include that climbs the layer order")
    # cycles among headers
    state = {}
    def visit(h, stack):
        state[h] = 1
        for n in graph.get(h, []):
            if state.get(n) == 1:
                problems.append("include cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            elif n in graph and not state.get(n):
                visit(n, stack + [n])
        state[h] = 2
    for h in sorted(graph):
        if not state.get(h):
            visit(h, [h])
    print("1..2")
    layer_bad = [p for p in problems if "cycle" not in p]
    cycle_bad = [p for p in problems if "cycle" in p]
    for i, (name, bad) in enumerate((("includes follow the layer order", layer_bad),
                                     ("no include cycle among headers", cycle_bad)), 1):
        print(("ok" if not bad else "not ok") + f" {i} - {name}")
        for p in bad:
            print("#   " + p)
    return 1 if problems else 0

if __name__ == "__main__":
    sys.exit(main())
