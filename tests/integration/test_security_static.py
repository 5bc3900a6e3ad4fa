"""Static files, security (issue 11): the directory redirect never leaves the
origin, dotfiles are not served (nor listed) unless --allow-dotfiles, a
listing tells nothing about files outside the root, an empty directory can
be listed."""
import os
import re
import time
import urllib.parse

import pytest

from conftest import raw, status_of


def request(server, target, extra=b""):
    """One raw GET (the target exactly as given); returns (status, headers, body)."""
    resp = raw(server, b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra
               + b"Connection: close\r\n\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        headers[k.decode().lower()] = v.strip().decode("latin-1")
    return status_of(resp), headers, body


@pytest.fixture
def site(tmp_path):
    """A root with dotfiles, a .well-known directory, a listing directory."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "hello").write_bytes(b"Hello, World!\n")
    (root / "files").mkdir()
    (root / "files" / "index.html").write_bytes(b"files index\n")
    (root / ".env").write_bytes(b"SECRET_KEY=hunter2\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(b"[core]\n\tbare = false\n")
    (root / ".well-known").mkdir()
    (root / ".well-known" / "security.txt").write_bytes(b"Contact: mailto:security@example.org\n")
    (root / ".well-known" / ".hidden").write_bytes(b"hidden under .well-known\n")
    (root / "sub").mkdir()
    (root / "sub" / ".htpasswd").write_bytes(b"admin:xyz\n")
    (root / "sub" / "visible.txt").write_bytes(b"visible\n")
    return root


# ---- the directory redirect ----

@pytest.mark.parametrize(
    "target, location",
    [
        ("//evil.example/..//files", "/files/"),
        ("/\\evil.example/../files", "/files/"),
        ("//files", "/files/"),
        ("///files?x=1", "/files/?x=1"),
        ("//evil.example/..//files?next=//evil.example", "/files/?next=//evil.example"),
        ("http://x//evil.example/..//files", "/files/"),  # absolute-form: the same path
    ],
)
def test_redirect_stays_on_the_origin(start_server, site, model, target, location):
    s = start_server(model=model, root=site)
    status, headers, _ = request(s, target)
    assert status == 301
    loc = headers["location"]
    assert loc == location
    assert not loc.startswith("//") and not loc.startswith("/\\")
    base = f"http://127.0.0.1:{s.port}/some/page"
    assert urllib.parse.urlsplit(urllib.parse.urljoin(base, loc)).netloc == f"127.0.0.1:{s.port}"
    # and it leads to the directory
    status, _, body = request(s, loc)
    assert status == 200 and body == b"files index\n"


def test_redirect_percent_encodes_the_name(start_server, site):
    """A name with '%', '?', '#', '\\', a space and non-ASCII comes back in
    Location percent-encoded, and following it reaches the same directory."""
    name = "a b%c?d#e\\f\u00e9"
    d = site / "files" / name
    d.mkdir()
    (d / "index.html").write_bytes(b"odd name\n")
    s = start_server(model="event", root=site)
    # a backslash may come raw in a request-target; it must not go back raw
    enc = urllib.parse.quote(name, safe="\\")
    assert "\\" in enc
    status, headers, _ = request(s, f"/files/{enc}?q=1")
    assert status == 301
    loc = headers["location"]
    assert loc == "/files/a%20b%25c%3Fd%23e%5Cf%C3%A9/?q=1"
    path, _, query = loc.partition("?")
    assert urllib.parse.unquote(path) == f"/files/{name}/" and query == "q=1"
    status, _, body = request(s, loc)
    assert status == 200 and body == b"odd name\n"


# ---- dotfiles ----

HIDDEN = ["/.env", "/.git/config", "/.git/", "/.git", "/%2egit/config", "/%2Eenv",
          "/sub/.htpasswd", "/sub/%2ehtpasswd", "/files/../.env", "/.well-known/.hidden"]


@pytest.mark.parametrize("target", HIDDEN)
def test_dotfiles_are_not_served_by_default(start_server, site, target):
    s = start_server(model="event", root=site)
    status, _, body = request(s, target)
    assert status == 404, (target, body[:100])
    assert b"hunter2" not in body and b"bare" not in body and b"admin" not in body


def test_dotfiles_every_model(start_server, site, model):
    s = start_server("--verbose", model=model, root=site)
    for target in ("/.env", "/.git/config", "/%2egit/config"):
        assert request(s, target)[0] == 404, target
    status, _, body = request(s, "/.well-known/security.txt")
    assert status == 200 and body.startswith(b"Contact:")
    status, headers, _ = request(s, "/.well-known")
    assert status == 301 and headers["location"] == "/.well-known/"
    assert request(s, "/sub/visible.txt")[0] == 200
    # logged at debug level, with the flag that serves them
    err = ""
    deadline = time.monotonic() + 3
    while "--allow-dotfiles" not in err and time.monotonic() < deadline:
        time.sleep(0.02)
        err = s.stderr()
    assert "404 for /.env: a dotfile" in err and "--allow-dotfiles" in err


def test_dotfiles_not_logged_without_verbose(start_server, site):
    s = start_server(model="event", root=site)
    assert request(s, "/.env")[0] == 404
    s.stop()
    assert "dotfile" not in s.stderr()


@pytest.mark.parametrize("target, body", [
    ("/.env", b"SECRET_KEY=hunter2\n"),
    ("/.git/config", b"[core]\n\tbare = false\n"),
    ("/%2egit/config", b"[core]\n\tbare = false\n"),
    ("/sub/.htpasswd", b"admin:xyz\n"),
    ("/.well-known/.hidden", b"hidden under .well-known\n"),
])
def test_allow_dotfiles(start_server, site, target, body):
    s = start_server("--allow-dotfiles", model="event", root=site)
    status, _, got = request(s, target)
    assert status == 200 and got == body


def listing_names(body):
    return re.findall(r'<a href="[^"]*">([^<]*)</a>', body.decode())


def test_autoindex_hides_dotfiles(start_server, site):
    (site / "files" / "index.html").unlink()
    (site / "files" / ".secret").write_bytes(b"s\n")
    (site / "files" / ".dir").mkdir()
    (site / "files" / "a.txt").write_bytes(b"a\n")
    s = start_server("--autoindex", model="event", root=site)
    status, _, body = request(s, "/files/")
    assert status == 200
    assert listing_names(body) == ["../", "a.txt"]
    assert b".secret" not in body and b".dir" not in body
    # the root: .well-known is served, so it is listed; .env and .git are not
    status, _, body = request(s, "/")
    assert status == 200
    assert listing_names(body) == [".well-known/", "files/", "hello", "sub/"]
    # inside .well-known, its own dotfiles stay hidden
    status, _, body = request(s, "/.well-known/")
    assert status == 200 and listing_names(body) == ["../", "security.txt"]


def test_autoindex_lists_dotfiles_when_allowed(start_server, site):
    (site / "files" / "index.html").unlink()
    (site / "files" / ".secret").write_bytes(b"s\n")
    s = start_server("--autoindex", "--allow-dotfiles", model="event", root=site)
    status, _, body = request(s, "/files/")
    assert status == 200 and ".secret" in listing_names(body)
    status, _, body = request(s, "/")
    assert {".env", ".git/", ".well-known/"} <= set(listing_names(body))


# ---- listings and symlinks ----

def test_autoindex_symlink_outside_shows_no_size_or_date(start_server, site, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"x" * 12345)
    os.utime(outside, (1000000000, 1000000000))  # 2001
    d = site / "links"
    d.mkdir()
    os.symlink(outside, d / "abs-out")
    os.symlink("../../outside.bin", d / "rel-out")
    os.symlink("../hello", d / "in")  # inside the root, though outside this directory
    os.symlink(site / "hello", d / "abs-in")
    os.symlink("nowhere", d / "dangling")
    s = start_server("--autoindex", model="event", root=site)
    status, _, body = request(s, "/links/")
    assert status == 200
    text = body.decode()
    assert "12345" not in text and "2001" not in text
    lines = {listing_names(line.encode())[0]: line for line in text.splitlines()
             if listing_names(line.encode())}
    for name in ("abs-out", "rel-out", "dangling"):
        assert lines[name].endswith(f">{name}</a>  -  -"), lines[name]
    for name in ("in", "abs-in"):
        assert lines[name].endswith("  14"), lines[name]  # hello's size
        assert " GMT  " in lines[name]


def test_autoindex_empty_directory(start_server, site, model):
    """An empty directory's listing (qsort(NULL, 0) once killed the worker
    under UBSan)."""
    (site / "void").mkdir()
    s = start_server("--autoindex", model=model, root=site)
    status, _, body = request(s, "/void/")
    assert status == 200
    assert b"Index of /void/" in body and listing_names(body) == ["../"]
    # the worker is still there and serving
    assert request(s, "/hello")[0] == 200
