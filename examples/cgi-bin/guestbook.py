#!/usr/bin/python3
"""A CGI program in Python: a form, its POST body on stdin, a redirect.
Entries live only in memory of each run (CGI programs start fresh every time),
so this just echoes what was posted."""
import html
import os
import sys
import urllib.parse

method = os.environ.get("REQUEST_METHOD", "GET")
if method == "POST":
    n = int(os.environ.get("CONTENT_LENGTH") or 0)
    form = urllib.parse.parse_qs(sys.stdin.read(n))
    name = html.escape(form.get("name", ["stranger"])[0])
    body = f"<p>Thanks, {name}. Your request came from {os.environ.get('REMOTE_ADDR')}.</p>"
else:
    body = ('<form method="post"><label>Your name <input name="name"></label>'
            '<button>Sign</button></form>')
sys.stdout.write("Content-Type: text/html; charset=utf-8\r\n\r\n")
sys.stdout.write(f"<!DOCTYPE html><title>guestbook</title><h1>Guestbook (CGI)</h1>{body}\n")
