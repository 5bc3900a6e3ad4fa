"""Static sites as people deploy them (docs/static.md): precompressed
sidecars and compression on the fly (the coding chosen, Vary, an ETag and a
304 per variant, ranges of a variant, clients that refuse compression),
multipart/byteranges with its bounds, --header, --error-page, --fallback,
MIME types, index.htm, OPTIONS, and every new flag's bad input."""
import ctypes
import ctypes.util
import email.parser
import email.policy
import gzip
import http.client
import os
import re
import shutil
import subprocess

import pytest

from conftest import BIN, BUILD, raw, status_of, wait_until
from test_static import get

HTML = "".join(f"<p>Paragraph {i}: the quick brown fox jumps over the lazy dog.</p>\n"
               for i in range(330)).encode()
CSS = b"body { color: rgb(1, 2, 3); }\n" + b"/* padding for compression */\n" * 40
JS = b"document.body.dataset.js = 'ran';\n" + b"// padding for compression\n" * 40


def unbrotli(data):
    """Decode brotli with Debian's libbrotlidec (the python3-brotli module is not needed)."""
    lib = ctypes.CDLL(ctypes.util.find_library("brotlidec") or "libbrotlidec.so.1")
    out = ctypes.create_string_buffer(1 << 22)
    n = ctypes.c_size_t(len(out))
    ok = lib.BrotliDecoderDecompress(ctypes.c_size_t(len(data)), data, ctypes.byref(n), out)
    assert ok == 1, "not brotli"
    return out.raw[:n.value]


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    (root / "app").mkdir(parents=True)
    (root / "assets").mkdir()
    (root / "docs").mkdir()
    (root / "page.html").write_bytes(HTML)
    (root / "assets" / "style.css").write_bytes(CSS)
    (root / "assets" / "app.js").write_bytes(JS)
    (root / "image.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 40)
    (root / "tiny.txt").write_bytes(b"tiny\n")
    (root / "hello").write_bytes(b"Hello, World!\n")
    (root / "pre.html").write_bytes(HTML)
    (root / "pre.html.gz").write_bytes(gzip.compress(HTML, 9))
    (root / "pre.html.br").write_bytes(b"BR-SIDECAR:" + HTML[:100])  # served as is
    (root / "404.html").write_bytes(b"<h1>custom not found</h1>\n")
    (root / "app" / "index.html").write_bytes(b"<h1>the app</h1>\n")
    (root / "docs" / "index.htm").write_bytes(b"htm index\n")
    (root / "data.bin").write_bytes(bytes(range(256)) * 100)  # 25600 bytes: not cached
    (root / "small.bin").write_bytes(bytes(range(256)) * 8)   # 2048 bytes: cached
    return root


# ---- compression ----

def test_precompressed_sidecars(start_server, site, model):
    s = start_server("--precompressed", model=model, root=site)
    r, body = get(s, "/pre.html", {"Accept-Encoding": "gzip, br"})
    assert r.status == 200 and r.getheader("Content-Encoding") == "br"
    assert body == (site / "pre.html.br").read_bytes()
    assert r.getheader("Vary") == "Accept-Encoding"
    assert r.getheader("Content-Type") == "text/html; charset=utf-8"
    etag_br = r.getheader("ETag")
    r, body = get(s, "/pre.html", {"Accept-Encoding": "gzip"})
    assert r.getheader("Content-Encoding") == "gzip" and gzip.decompress(body) == HTML
    etag_gz = r.getheader("ETag")
    r, body = get(s, "/pre.html")  # no Accept-Encoding: the file itself
    assert r.getheader("Content-Encoding") is None and body == HTML
    assert r.getheader("Vary") == "Accept-Encoding"
    etag_id = r.getheader("ETag")
    assert len({etag_br, etag_gz, etag_id}) == 3
    # a 304 per variant, and no 304 for another variant's tag
    r, _ = get(s, "/pre.html", {"Accept-Encoding": "gzip", "If-None-Match": etag_gz})
    assert r.status == 304 and r.getheader("ETag") == etag_gz
    assert r.getheader("Vary") == "Accept-Encoding"
    r, body = get(s, "/pre.html", {"Accept-Encoding": "gzip", "If-None-Match": etag_id})
    assert r.status == 200 and r.getheader("Content-Encoding") == "gzip"
    r, _ = get(s, "/pre.html", {"If-None-Match": etag_id})
    assert r.status == 304
    # ranges of the variant sent
    gz = (site / "pre.html.gz").read_bytes()
    r, body = get(s, "/pre.html", {"Accept-Encoding": "gzip", "Range": "bytes=10-19"})
    assert r.status == 206 and body == gz[10:20]
    assert r.getheader("Content-Range") == f"bytes 10-19/{len(gz)}"
    # a client that refuses compression
    for ae in ("identity", "gzip;q=0, br;q=0", "*;q=0, identity"):
        r, body = get(s, "/pre.html", {"Accept-Encoding": ae})
        assert r.getheader("Content-Encoding") is None and body == HTML, ae
    # HEAD: the same head as a GET
    r, body = get(s, "/pre.html", {"Accept-Encoding": "br"}, method="HEAD")
    assert body == b"" and r.getheader("Content-Encoding") == "br"
    assert r.getheader("Content-Length") == str(len((site / "pre.html.br").read_bytes()))


def test_precompressed_off_and_stale(start_server, site):
    s = start_server(model="event", root=site)  # no --precompressed
    r, body = get(s, "/pre.html", {"Accept-Encoding": "gzip, br"})
    assert r.getheader("Content-Encoding") is None and body == HTML
    assert r.getheader("Vary") is None
    s.stop()
    # a sidecar older than its file is not sent
    os.utime(site / "pre.html.gz", (1, 1))
    os.utime(site / "pre.html.br", (1, 1))
    s = start_server("--precompressed", model="event", root=site)
    r, body = get(s, "/pre.html", {"Accept-Encoding": "gzip, br"})
    assert r.getheader("Content-Encoding") is None and body == HTML


def test_compress_on_the_fly(start_server, site, model):
    s = start_server("--compress", model=model, root=site)
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
    tags = {}
    for ae, enc in (("gzip, br", "br"), ("gzip", "gzip"), ("br;q=0.5, gzip", "gzip"),
                    ("gzip, br", "br"), (None, None), ("identity;q=0", None)):
        c.request("GET", "/page.html", headers={"Accept-Encoding": ae} if ae else {})
        r = c.getresponse()
        body = r.read()
        assert r.status == 200 and r.getheader("Content-Encoding") == enc, ae
        assert r.getheader("Vary") == "Accept-Encoding"
        decoded = {"br": unbrotli, "gzip": gzip.decompress, None: bytes}[enc](body)
        assert decoded == HTML
        assert len(body) < len(HTML) or enc is None
        assert tags.setdefault(enc, r.getheader("ETag")) == r.getheader("ETag")  # kept: same bytes
    c.close()
    assert len(set(tags.values())) == 3
    r, _ = get(s, "/page.html", {"Accept-Encoding": "gzip", "If-None-Match": tags["gzip"]})
    assert r.status == 304 and r.getheader("ETag") == tags["gzip"]
    # never a 206 of a compressed variant: a Range gets the file's bytes
    r, body = get(s, "/page.html", {"Accept-Encoding": "gzip", "Range": "bytes=0-9"})
    assert r.status == 206 and body == HTML[:10] and r.getheader("Content-Encoding") is None
    # not compressed: an image, a file below --compress-min, CSS/JS are
    for path, enc in (("/image.png", None), ("/tiny.txt", None), ("/assets/style.css", "gzip"),
                      ("/assets/app.js", "gzip")):
        r, body = get(s, path, {"Accept-Encoding": "gzip"})
        assert r.getheader("Content-Encoding") == enc, path
    r, _ = get(s, "/image.png", {"Accept-Encoding": "gzip"})
    assert r.getheader("Vary") is None


def test_compress_head_and_cache_bound(start_server, site):
    # --compress-cache 0: nothing is kept, every answer is still right
    s = start_server("--compress", "--compress-cache", "0", model="event", root=site)
    r, body = get(s, "/page.html", {"Accept-Encoding": "gzip"}, method="HEAD")
    assert body == b"" and r.getheader("Content-Encoding") is None  # a HEAD makes no variant
    for _ in range(2):
        r, body = get(s, "/page.html", {"Accept-Encoding": "gzip"})
        assert r.getheader("Content-Encoding") == "gzip" and gzip.decompress(body) == HTML


def test_compress_file_changes(start_server, site):
    s = start_server("--compress", model="event", root=site)
    r, body = get(s, "/assets/style.css", {"Accept-Encoding": "gzip"})
    assert gzip.decompress(body) == CSS
    new = CSS.replace(b"rgb(1, 2, 3)", b"rgb(4, 5, 6)") + b"/* more */\n"
    (site / "assets" / "style.css").write_bytes(new)
    # an edit shows within a clock tick (the cache fstats at most once per tick)
    assert wait_until(lambda: gzip.decompress(
        get(s, "/assets/style.css", {"Accept-Encoding": "gzip"})[1]) == new, timeout=3)


# ---- ranges ----

def parse_multipart(r, body):
    ctype = r.getheader("Content-Type")
    assert ctype.startswith("multipart/byteranges; boundary=")
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
    assert msg.is_multipart()
    parts = []
    for p in msg.iter_parts():
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", p["Content-Range"])
        parts.append((int(m[1]), int(m[2]), int(m[3]), p.get_content_type(), p.get_payload(decode=True)))
    return parts


@pytest.mark.parametrize("path", ["/small.bin", "/data.bin"])  # cached bytes, and a file
def test_multiple_ranges(start_server, site, model, path):
    s = start_server(model=model, root=site)
    data = (site / path[1:]).read_bytes()
    r, body = get(s, path, {"Range": "bytes=0-9, 100-199,-5"})
    assert r.status == 206 and r.getheader("Content-Range") is None
    assert int(r.getheader("Content-Length")) == len(body)
    parts = parse_multipart(r, body)
    assert [(a, b) for a, b, *_ in parts] == [(0, 9), (100, 199), (len(data) - 5, len(data) - 1)]
    for a, b, total, ctype, payload in parts:
        assert total == len(data) and ctype == "application/octet-stream"
        assert payload == data[a:b + 1]
    # one satisfiable range among unsatisfiable ones: a plain 206
    r, body = get(s, path, {"Range": f"bytes=5-6,{len(data) + 10}-"})
    assert r.status == 206 and body == data[5:7]
    assert r.getheader("Content-Range") == f"bytes 5-6/{len(data)}"
    # HEAD: the same head, no body
    r, body = get(s, path, {"Range": "bytes=0-1,4-5"}, method="HEAD")
    assert r.status == 200 and body == b""  # ranges are for GET only


def test_hostile_range_lists(start_server, site):
    s = start_server(model="event", root=site)
    data = (site / "data.bin").read_bytes()
    hostile = [
        "bytes=" + ",".join(["0-"] * 50),                         # overlapping: the CVE-2011-3192 pattern
        "bytes=" + ",".join(f"{i}-{i}" for i in range(65)),       # more than 64 ranges
        "bytes=0-99,50-149",                                       # two that overlap
        "bytes=-100,0-",                                           # suffix overlapping a prefix
        "bytes=0-1,x-2",                                           # a bad spec
    ]
    for h in hostile:
        r, body = get(s, "/data.bin", {"Range": h})
        assert r.status == 200 and body == data, h[:40]
    r, body = get(s, "/data.bin", {"Range": "bytes=" + ",".join(f"{2*i}-{2*i}" for i in range(64))})
    assert r.status == 206 and len(parse_multipart(r, body)) == 64
    r, body = get(s, "/data.bin", {"Range": "bytes=30000-,40000-50000"})
    assert r.status == 416 and r.getheader("Content-Range") == f"bytes */{len(data)}"
    # a raw pipelined pair after a multipart answer stays in sync
    req = (b"GET /small.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-0,2-2\r\n\r\n"
           b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    resp = raw(s, req)
    assert resp.count(b"HTTP/1.1 ") == 2 and resp.endswith(b"Hello, World!\n")


# ---- headers, pages, fallback ----

def test_extra_headers(start_server, site, model):
    s = start_server("--header", "Cache-Control: max-age=60",
                     "--header", "/assets=X-Content-Type-Options: nosniff",
                     "--header", "/assets=Cache-Control: immutable", model=model, root=site)
    r, _ = get(s, "/page.html")
    assert r.getheader("Cache-Control") == "max-age=60"
    assert r.getheader("X-Content-Type-Options") is None
    r, _ = get(s, "/assets/style.css")
    assert r.getheader("X-Content-Type-Options") == "nosniff"
    assert r.msg.get_all("Cache-Control") == ["max-age=60", "immutable"]
    etag = r.getheader("ETag")
    r, _ = get(s, "/assets/style.css", {"If-None-Match": etag})
    assert r.status == 304 and r.getheader("X-Content-Type-Options") == "nosniff"
    r, _ = get(s, "/assetsx")  # a prefix matches on a segment boundary
    assert r.status == 404 and r.getheader("Cache-Control") is None


def test_error_page(start_server, site, model):
    (site / "e403.html").write_bytes(b"<h1>custom forbidden</h1>\n")
    (site / "empty").mkdir()
    s = start_server("--error-page", "404=/404.html", "--error-page", "403=/e403.html",
                     "--error-page", "405=/missing.html", model=model, root=site)
    r, body = get(s, "/nope")
    assert r.status == 404 and body == b"<h1>custom not found</h1>\n"
    assert r.getheader("Content-Type") == "text/html; charset=utf-8"
    assert r.getheader("ETag") is None
    r, body = get(s, "/empty/")
    assert r.status == 403 and body == b"<h1>custom forbidden</h1>\n"
    r, body = get(s, "/nope", method="HEAD")
    assert r.status == 404 and body == b""
    r, body = get(s, "/page.html", method="DELETE")  # its page is missing: the built-in one
    assert r.status == 405 and b"405 Method Not Allowed" in body and r.getheader("Allow")


def test_fallback(start_server, site, model):
    s = start_server("--fallback", "/app/index.html", "--error-page", "404=/404.html",
                     model=model, root=site)
    app = (site / "app" / "index.html").read_bytes()
    for path in ("/dashboard", "/users/42/edit", "/app/settings", "/john.doe"):
        r, body = get(s, path)
        assert r.status == 200 and body == app, path
    for path in ("/missing.js", "/assets/missing.css", "/logo.png", "/x.json"):
        r, body = get(s, path)  # an asset stays a 404
        assert r.status == 404 and body == b"<h1>custom not found</h1>\n", path
    r, body = get(s, "/dashboard", method="HEAD")
    assert r.status == 200 and body == b"" and r.getheader("Content-Length") == str(len(app))
    r, body = get(s, "/dashboard", method="POST")
    assert r.status == 405
    r, body = get(s, "/.env")  # a dotfile is never served, nor falls back
    assert r.status == 404
    r, body = get(s, "/page.html")
    assert body == HTML


# ---- MIME, index.htm, OPTIONS ----

def test_mime_and_index_htm(start_server, site, model):
    (site / "notes.md").write_bytes(b"# notes\n")
    (site / "thing.foo").write_bytes(b"foo\n")
    (site / "x.webmanifest").write_bytes(b"{}\n")
    s = start_server("--mime", "foo=text/x-foo", "--mime", "png=image/x-test",
                     "--default-type", "text/plain", model=model, root=site)
    for path, ctype in (("/hello", "text/plain; charset=utf-8"),
                        ("/notes.md", "text/markdown; charset=utf-8"),
                        ("/thing.foo", "text/x-foo; charset=utf-8"),
                        ("/image.png", "image/x-test"),
                        ("/assets/app.js", "text/javascript; charset=utf-8"),
                        ("/page.html", "text/html; charset=utf-8"),
                        ("/docs/", "text/html; charset=utf-8")):
        r, _ = get(s, path)
        assert r.getheader("Content-Type") == ctype, path
    r, body = get(s, "/docs/")
    assert body == b"htm index\n"
    s.stop()
    s = start_server(model=model, root=site)
    r, _ = get(s, "/hello")
    assert r.getheader("Content-Type") == "application/octet-stream"
    if os.path.exists("/etc/mime.types"):  # Debian's media-types: a type the built-ins lack
        r, _ = get(s, "/x.webmanifest")
        assert r.getheader("Content-Type") == "application/manifest+json"


def test_options(start_server, site):
    s = start_server(model="event", root=site)
    r, body = get(s, "/page.html", method="OPTIONS")
    assert r.status == 204 and r.getheader("Allow") == "GET, HEAD, OPTIONS" and body == b""
    resp = raw(s, b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(resp) == 204 and b"\r\nAllow: " in resp and b"Content-Length" not in resp


# ---- bad flags ----

@pytest.mark.parametrize("args", [
    ["--header", "NoColon"],
    ["--header", "Bad Name: x"],
    ["--header", ": x"],
    ["--header", "Content-Length: 5"],
    ["--header", "content-type: text/plain"],
    ["--header", "Server: mine"],
    ["--header", "Transfer-Encoding: chunked"],
    ["--header", "ETag: \"x\""],
    ["--header", "X-A: b\x01c"],
    ["--header", "nope=X-A: b"],
    ["--error-page", "404"],
    ["--error-page", "200=/x.html"],
    ["--error-page", "99=/x.html"],
    ["--error-page", "abc=/x.html"],
    ["--error-page", "404=x.html"],
    ["--error-page", "404=/../x.html"],
    ["--error-page", "404=/dir/"],
    ["--error-page", "404=/.hidden"],
    ["--fallback", "index.html"],
    ["--fallback", "/a/../b"],
    ["--fallback", "/"],
    ["--mime", "foo"],
    ["--mime", "=text/plain"],
    ["--mime", "f o=text/plain"],
    ["--mime", "foo=textplain"],
    ["--mime", "foo=text/x\r\nX: y"],
    ["--default-type", "nothing"],
    ["--default-type", "/x"],
    ["--compress-min", "-1"],
    ["--compress-min", "x"],
    ["--compress-cache", "1e3"],
    ["--precompressed=1"],
])
def test_bad_flags(tmp_path, args):
    p = subprocess.run([BIN, "--port", "0", "--root", str(tmp_path)] + args,
                       capture_output=True, timeout=10)
    err = p.stderr.decode()
    assert p.returncode == 2, (args, err)
    assert err.count("\n") == 1 and err.startswith("forkhttpd: "), err


# ---- a browser ----

def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_browser_loads_compressed_css_js(start_server, site, tmp_path):
    exe = chromium()
    if not exe:
        pytest.skip("no chromium (Debian's chromium package) installed: the browser test is skipped")
    (site / "b.html").write_bytes(
        b"<!DOCTYPE html><html><head><link rel=stylesheet href=/assets/style.css>"
        b"<script src=/assets/app.js defer></script></head><body><p id=p>x</p>"
        b"<script>addEventListener('load',()=>{document.title=getComputedStyle("
        b"document.body).color+'|'+document.body.dataset.js})</script></body></html>\n")
    s = start_server("--compress", model="event", root=site)
    for path in ("/assets/style.css", "/assets/app.js"):  # what Chromium asks for arrives compressed
        r, _ = get(s, path, {"Accept-Encoding": "gzip, deflate, br, zstd"})
        assert r.getheader("Content-Encoding") == "br", path
    home = tmp_path / "home"  # Chromium writes under $HOME: a temporary one
    home.mkdir()
    proc = subprocess.Popen([exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chrome'}",
                             "--virtual-time-budget=3000", "--dump-dom", f"http://127.0.0.1:{s.port}/b.html"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env=dict(os.environ, HOME=str(home)))
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        raise
    dom = out.decode(errors="replace")
    assert "<title>rgb(1, 2, 3)|ran</title>" in dom, (dom[:500], err[-2000:])


# ---- compress.so: the codecs are a module (docs/static.md) ----

def mapped_files(pid):
    with open(f"/proc/{pid}/maps") as f:
        return {line.split()[-1] for line in f if len(line.split()) >= 6}


def codec_files(files):
    return [f for f in files if "libz.so" in f or "libbrotli" in f or f.endswith("/compress.so")]


@pytest.mark.parametrize("model", ["fork", "event"])
def test_codecs_mapped_only_with_compress(start_server, site, model):
    """zlib and brotli are build/compress.so: the server binary does not link
    them, and loads the module only with --compress; --precompressed sends its
    sidecars without it."""
    s = start_server("--precompressed", model=model, root=site)
    r, body = get(s, "/pre.html", {"Accept-Encoding": "gzip, br"})
    assert r.getheader("Content-Encoding") == "br" and body == (site / "pre.html.br").read_bytes()
    assert not codec_files(mapped_files(s.pid)), mapped_files(s.pid)
    t = start_server("--compress", model=model, root=site)
    r, body = get(t, "/page.html", {"Accept-Encoding": "gzip"})
    assert r.getheader("Content-Encoding") == "gzip" and gzip.decompress(body) == HTML
    files = mapped_files(t.pid)
    assert os.path.join(os.path.realpath(BUILD), "compress.so") in files, files
    assert [f for f in files if "libz.so" in f] and [f for f in files if "libbrotlienc" in f], files


@pytest.mark.parametrize("case", ["missing", "foreign"])
def test_missing_compress_module(site, tmp_path, case):
    """The binary without its compress.so (or with something else under that
    name): --compress fails at start with one line and exit 2;
    --precompressed alone runs."""
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "forkhttpd"
    shutil.copy2(BIN, exe)
    if case == "foreign":
        shutil.copy2(os.path.join(BUILD, "hello.so"), d / "compress.so")
    base = [str(exe), "--host", "127.0.0.1", "--port", "0", "--root", str(site)]
    r = subprocess.run(base + ["--compress"], capture_output=True, timeout=20)
    assert r.returncode == 2
    err = r.stderr.decode()
    assert len(err.strip().splitlines()) == 1, err
    if case == "missing":
        assert f"--compress needs {d}/compress.so (make; Debian zlib1g-dev, libbrotli-dev)" in err, err
    else:
        assert "is not this server's module" in err, err
    assert not any(m in err for m in ("Sanitizer", "runtime error")), err
    proc = subprocess.Popen(base + ["--precompressed"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().startswith(b"Serving HTTP on")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
