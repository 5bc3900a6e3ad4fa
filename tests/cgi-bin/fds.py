#!/usr/bin/python3
# Lists the fds open in the script, one "N -> target" a line. (A Python script:
# a shell keeps its script file open on an fd of its own; Python has closed it
# by the time the code runs.) The fd listdir uses is gone when readlink runs.
import os
print("Content-Type: text/plain\n")
for fd in sorted(os.listdir("/proc/self/fd"), key=int):
    try:
        print(fd, "->", os.readlink("/proc/self/fd/" + fd))
    except OSError:
        pass
