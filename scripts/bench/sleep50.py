"""bench.py's app that waits: every call sleeps 50 ms (a database round trip,
say), then answers 14 bytes. forkhttpd --wsgi sleep50:app against gunicorn's
gthread worker (docs/benchmarks.md, "Apps that wait")."""
import time

BODY = b"Hello, World!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    time.sleep(0.05)
    start_response("200 OK", list(HEADERS))
    return [BODY]
