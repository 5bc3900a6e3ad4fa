#!/usr/bin/python3
# Progressive output: prints a first line, then waits (up to 10 s) for the
# file named by QUERY_STRING to exist before it prints the last line.
import os, sys, time
out = sys.stdout
out.write("Content-Type: text/plain\n\n")
out.write("first line\n")
out.flush()
path = os.environ.get("QUERY_STRING", "")
end = time.monotonic() + 10
while path and not os.path.exists(path) and time.monotonic() < end:
    time.sleep(0.02)
out.write("last line\n")
out.flush()
