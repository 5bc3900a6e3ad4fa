"""The plain WSGI hello: forkhttpd --wsgi hello:app (from apps/python, or with
--pythonpath apps/python)."""

BODY = b"Hello, World!\n"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", list(HEADERS))
    return [BODY]
