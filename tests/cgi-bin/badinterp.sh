#!/nonexistent/interpreter
# An interpreter that does not exist: exec fails (ENOENT).
