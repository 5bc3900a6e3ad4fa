"""Static files in every model: bodies, MIME types, index, redirects, ranges,
validators and 304, confinement to the root, directory listings."""
import http.client
import os
import subprocess
import time
import urllib.parse

import pytest

from conftest import raw, status_of, wait_until


def get(server, path, headers=None, method="GET"):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def test_file_and_headers(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    r, body = get(s, "/hello")
    assert r.status == 200
    assert body == b"Hello, World!\n"
    assert r.getheader("Content-Length") == "14"
    assert r.getheader("Server").startswith("forkhttpd/")
    assert r.getheader("Date").endswith(" GMT")
    assert r.getheader("ETag").startswith('"')
    assert r.getheader("Accept-Ranges") == "bytes"
    r, body = get(s, "/style.css")
    assert r.getheader("Content-Type") == "text/css; charset=utf-8"


def test_head_same_headers_no_body(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    g, gbody = get(s, "/big.bin")
    h, hbody = get(s, "/big.bin", method="HEAD")
    assert h.status == 200 and hbody == b""
    assert h.getheader("Content-Length") == g.getheader("Content-Length") == str(len(gbody))
    assert h.getheader("ETag") == g.getheader("ETag")
    # raw: nothing follows the head of a HEAD response
    resp = raw(s, b"HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert resp.endswith(b"\r\n\r\n") and b"Content-Length: 14" in resp


def test_large_file_intact(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    r, body = get(s, "/big.bin")
    assert body == (docroot / "big.bin").read_bytes()


def test_index_and_redirect(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    r, body = get(s, "/")
    assert r.status == 200 and body == b"<html><body>index</body></html>\n"
    assert r.getheader("Content-Type").startswith("text/html")
    r, body = get(s, "/sub?x=1")
    assert r.status == 301 and r.getheader("Location") == "/sub/?x=1"
    r, body = get(s, "/sub/")
    assert body == b"sub index\n"
    r, body = get(s, "/empty/")
    assert r.status == 403  # no index.html and no --autoindex


@pytest.mark.parametrize("length", [200, 240, 241, 255, 256, 1000])
def test_long_paths(start_server, docroot, model, length):
    """Paths around and past the short-path buffers: h_static's serve_path
    (240 bytes and room for "index.html" on the stack, longer on the heap)
    and the exchange's path (255 bytes, longer on the heap): a file, a
    directory's index, the slash redirect and a 404, with --autoindex
    listing a long directory."""
    names, left = [], length - len("/f.txt")
    while left > 0:  # directories of at most 100 bytes (NAME_MAX is 255)
        n = min(100, left)
        names.append("d" * (n - 1) if n > 1 else "")
        left -= n
    names = [n for n in names if n]
    d = docroot.joinpath(*names)
    d.mkdir(parents=True, exist_ok=True)
    (d / "f.txt").write_bytes(b"long %d\n" % length)
    (d / "index.html").write_bytes(b"index %d\n" % length)
    (d / "sub").mkdir(exist_ok=True)
    dirpath = "/" + "/".join(names)
    s = start_server("--autoindex", model=model, root=docroot)
    r, body = get(s, dirpath + "/f.txt")
    assert r.status == 200 and body == b"long %d\n" % length
    r, body = get(s, dirpath + "/")
    assert r.status == 200 and body == b"index %d\n" % length
    r, body = get(s, dirpath)
    assert r.status == 301 and r.getheader("Location") == dirpath + "/"
    r, body = get(s, dirpath + "/missing.txt")
    assert r.status == 404
    r, body = get(s, dirpath + "/sub/")
    assert r.status == 200 and b"Index of" in body


def test_percent_decoding(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    r, body = get(s, "/sub/a%20b.txt")
    assert r.status == 200 and body == b"space\n"
    r, body = get(s, "/%68ello")
    assert body == b"Hello, World!\n"
    r, body = get(s, "/sub/../hello")
    assert body == b"Hello, World!\n"


@pytest.mark.parametrize(
    "target, status",
    [
        ("/../secret.txt", 400),                 # climbs above the root: the normaliser refuses
        ("/..%2fsecret.txt", 400),               # an encoded '/'
        ("/%2e%2e/secret.txt", 400),             # encoded dots that climb
        ("/sub/%2E%2E/%2e%2e/secret.txt", 400),
        ("/escape", 404),                        # a symlink out of the root looks like nothing
        ("/hello%00.txt", 400),                  # a decoded NUL
        ("/sub/..%5c..%5csecret.txt", 404),      # %5c is a name byte, not a separator: no such file
        ("//../secret.txt", 400),
    ],
)
def test_no_way_out_of_root(start_server, docroot, target, status):
    s = start_server(model="event", root=docroot)
    resp = raw(s, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert status_of(resp) == status, resp[:200]
    assert b"TOP SECRET" not in resp


def test_symlink_inside_root_and_unreadable(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    r, body = get(s, "/inside-link")
    assert r.status == 200 and body == b"Hello, World!\n"
    r, body = get(s, "/noread.txt")
    assert r.status == 403 and b"no\n" != body
    r, body = get(s, "/missing")
    assert r.status == 404 and b"404 Not Found" in body


def test_ranges(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    data = (docroot / "big.bin").read_bytes()
    n = len(data)
    r, body = get(s, "/big.bin", {"Range": "bytes=10-19"})
    assert r.status == 206 and body == data[10:20]
    assert r.getheader("Content-Range") == f"bytes 10-19/{n}"
    r, body = get(s, "/big.bin", {"Range": f"bytes={n - 5}-"})
    assert r.status == 206 and body == data[-5:]
    r, body = get(s, "/big.bin", {"Range": "bytes=-7"})
    assert r.status == 206 and body == data[-7:]
    r, body = get(s, "/big.bin", {"Range": f"bytes=0-{n * 2}"})
    assert r.status == 206 and body == data
    r, body = get(s, "/big.bin", {"Range": f"bytes={n}-"})
    assert r.status == 416 and r.getheader("Content-Range") == f"bytes */{n}"
    r, body = get(s, "/hello", {"Range": "bytes=0-1,4-5"})
    assert r.status == 206 and b"multipart/byteranges" in r.getheader("Content-Type").encode()
    r, body = get(s, "/hello", {"Range": "bytes=0-4,4-5"})
    assert r.status == 200 and body == b"Hello, World!\n"  # overlapping ranges: whole
    # (test_static_sites.py tests multipart/byteranges and its bounds)
    r, body = get(s, "/hello", {"Range": "lines=1-2"})
    assert r.status == 200


def test_if_range(start_server, docroot):
    s = start_server(model="event", root=docroot)
    r, _ = get(s, "/hello")
    etag, lm = r.getheader("ETag"), r.getheader("Last-Modified")
    r, body = get(s, "/hello", {"Range": "bytes=0-4", "If-Range": etag})
    assert r.status == 206 and body == b"Hello"
    r, body = get(s, "/hello", {"Range": "bytes=0-4", "If-Range": lm})
    assert r.status == 206
    r, body = get(s, "/hello", {"Range": "bytes=0-4", "If-Range": '"stale"'})
    assert r.status == 200 and body == b"Hello, World!\n"


def test_conditional_304(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    r, _ = get(s, "/hello")
    etag, lm = r.getheader("ETag"), r.getheader("Last-Modified")
    r, body = get(s, "/hello", {"If-None-Match": etag})
    assert r.status == 304 and body == b"" and r.getheader("ETag") == etag
    r, body = get(s, "/hello", {"If-None-Match": f'"nope", W/{etag}'})
    assert r.status == 304
    r, body = get(s, "/hello", {"If-None-Match": '"nope"'})
    assert r.status == 200
    r, body = get(s, "/hello", {"If-Modified-Since": lm})
    assert r.status == 304
    r, body = get(s, "/hello", {"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"})
    assert r.status == 200
    # If-None-Match wins over If-Modified-Since
    r, body = get(s, "/hello", {"If-None-Match": '"nope"', "If-Modified-Since": lm})
    assert r.status == 200
    r, body = get(s, "/hello", {"If-Match": '"nope"'})
    assert r.status == 412
    r, body = get(s, "/hello", {"If-Match": etag})
    assert r.status == 200


def test_etag_changes_with_file(start_server, docroot):
    s = start_server(model="event", root=docroot)
    r, _ = get(s, "/hello")
    etag = r.getheader("ETag")
    p = docroot / "hello"
    p.write_bytes(b"Changed!\n")
    os.utime(p, (time.time() + 5, time.time() + 5))
    # the open-file cache looks at the file at most once per millisecond; the
    # rewrite above is not atomic (truncate, then write), so wait for the
    # final content, not for the first answer that differs
    def changed():
        r, body = get(s, "/hello", {"If-None-Match": etag})
        return r.status == 200 and body == b"Changed!\n"
    assert wait_until(changed)
    r, body = get(s, "/hello", {"If-None-Match": etag})
    assert r.status == 200 and body == b"Changed!\n" and r.getheader("ETag") != etag


def test_methods(start_server, docroot, model):
    s = start_server(model=model, root=docroot)
    r, body = get(s, "/hello", method="DELETE")
    assert r.status == 405 and "GET" in r.getheader("Allow")
    r, body = get(s, "/hello", method="OPTIONS")
    assert r.status == 204 and "GET" in r.getheader("Allow")
    resp = raw(s, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(resp) == 204 and b"Allow:" in resp
    resp = raw(s, b"BREW /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(resp) == 501


def test_autoindex(start_server, docroot):
    s = start_server("--autoindex", model="event", root=docroot)
    r, body = get(s, "/empty/")
    assert r.status == 200
    text = body.decode()
    assert "x&amp;&lt;y&gt;.txt" in text  # HTML-escaped name
    assert 'href="x%26%3Cy%3E.txt"' in text  # URL-escaped link
    r, body = get(s, "/sub/")
    assert body == b"sub index\n"  # an index.html still wins
    # names sorted, with sizes
    (docroot / "empty" / "a.txt").write_bytes(b"12345")
    r, body = get(s, "/empty/")
    text = body.decode()
    assert text.index("a.txt") < text.index("x&amp;")
    assert " 5\n" in text


def test_real_clients(start_server, docroot, model, tmp_path):
    s = start_server(model=model, root=docroot)
    url = f"http://127.0.0.1:{s.port}/big.bin"
    out = tmp_path / "curl.out"
    subprocess.run(["curl", "-sSf", "-o", str(out), url], check=True, timeout=20)
    assert out.read_bytes() == (docroot / "big.bin").read_bytes()
    # curl resumes with a Range request
    part = tmp_path / "part.out"
    part.write_bytes((docroot / "big.bin").read_bytes()[:1000])
    subprocess.run(["curl", "-sSf", "-C", "-", "-o", str(part), url], check=True, timeout=20)
    assert part.read_bytes() == (docroot / "big.bin").read_bytes()
    wget = tmp_path / "wget.out"
    subprocess.run(["wget", "-q", "-O", str(wget), url], check=True, timeout=20)
    assert wget.read_bytes() == (docroot / "big.bin").read_bytes()


def test_git_clone_over_dumb_http(start_server, tmp_path, model):
    """git, a real client: clone a repository served as static files."""
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t", GIT_TERMINAL_PROMPT="0", HOME=str(tmp_path))
    work = tmp_path / "work"
    root = tmp_path / "gitroot"
    root.mkdir()
    run = lambda *a, **k: subprocess.run(a, check=True, capture_output=True, env=env, timeout=60, **k)
    run("git", "init", "-q", str(work))
    (work / "README").write_text("hello from git\n")
    run("git", "-C", str(work), "add", "README")
    run("git", "-C", str(work), "commit", "-q", "-m", "first")
    run("git", "clone", "-q", "--bare", str(work), str(root / "repo.git"))
    run("git", "-C", str(root / "repo.git"), "update-server-info")
    s = start_server(model=model, root=root)
    dest = tmp_path / "clone"
    run("git", "clone", "-q", f"http://127.0.0.1:{s.port}/repo.git", str(dest))
    assert (dest / "README").read_text() == "hello from git\n"


def test_replaced_file_is_noticed(start_server, docroot):
    """A file replaced by a rename (a new inode at the path) is served new
    within a second, as the cache re-checks the path once a second."""
    s = start_server("--workers", 1, model="event", root=docroot)
    r, body = get(s, "/hello")
    assert body == b"Hello, World!\n"
    tmp = docroot / "hello.new"
    tmp.write_bytes(b"Replaced\n")
    os.rename(tmp, docroot / "hello")
    assert wait_until(lambda: get(s, "/hello")[1] == b"Replaced\n", timeout=3)
    os.unlink(docroot / "hello")
    assert wait_until(lambda: get(s, "/hello")[0].status == 404, timeout=3)
