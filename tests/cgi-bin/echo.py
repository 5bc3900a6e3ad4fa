#!/usr/bin/python3
# Echoes the request body (stdin) back, with its length and type in headers.
import os, sys
data = sys.stdin.buffer.read()
out = sys.stdout.buffer
out.write(b"Content-Type: application/octet-stream\r\n")
out.write(b"X-Content-Length: %s\r\n" % os.environ.get("CONTENT_LENGTH", "none").encode())
out.write(b"X-Got: %d\r\n\r\n" % len(data))
out.write(data)
