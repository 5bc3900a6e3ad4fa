#!/usr/bin/python3
# Writes N (QUERY_STRING) MiB of a pattern, in one long stream.
import os, sys
n = int(os.environ.get("QUERY_STRING") or "1")
out = sys.stdout.buffer
out.write(b"Content-Type: application/octet-stream\n\n")
block = bytes(range(256)) * 4096
for _ in range(n):
    out.write(block)
