/* test_http_parse.c - unit tests of src/http_parse.c (TAP, run by prove).
 *
 * Every input is parsed from a copy placed right before a PROT_NONE page, so
 * reading one byte past what the parser was given crashes the test.
 */
#include "http_parse.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* guard page                                                          */

static char *g_area;
static size_t g_size; /* usable bytes; the next page is PROT_NONE */

static void guard_setup(void)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    g_size = 32 * ps;
    g_area = mmap(NULL, g_size + ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_area == MAP_FAILED || mprotect(g_area + g_size, ps, PROT_NONE) != 0) {
        perror("mmap/mprotect");
        exit(2);
    }
}

/* Copy n bytes so that they end exactly at the guard page. */
static char *guard_put(const char *s, size_t n)
{
    if (n > g_size) {
        fprintf(stderr, "input too big for the guard area\n");
        exit(2);
    }
    char *p = g_area + g_size - n;
    if (n) memcpy(p, s, n);
    return p;
}

static const struct http_limits LIM = { 100, 1000, 10 };

/* One-shot parse of s[0..n) placed before the guard page. */
static int parse_guarded(struct http_req *r, const char *s, size_t n)
{
    http_req_init(r);
    return http_parse_request(r, guard_put(s, n), n, &LIM);
}

static int view_is(struct http_str v, const char *want)
{
    if (!want) return v.p == NULL;
    return v.p != NULL && v.len == strlen(want) && memcmp(v.p, want, v.len) == 0;
}

/* ------------------------------------------------------------------ */
/* valid requests                                                      */

struct vcase {
    const char *name;
    const char *in;
    size_t len;
    size_t extra; /* bytes after the head (body, next request) */
    const char *method;
    enum http_method m;
    const char *target, *path, *query, *authority;
    int form, minor;
    const char *headers; /* "name: value\n" for each field, in order */
    const char *host;
    long long cl;
    int chunked, ka, expect;
};

#define IN(s) .in = s, .len = sizeof(s) - 1

static const struct vcase valid[] = {
    { "simple GET", IN("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "/", "/", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: example.com\n", "example.com", -1, 0, 1, 0 },
    { "HEAD 1.0 with query, no Host", IN("HEAD /x/y?a=1&b=%20 HTTP/1.0\r\n\r\n"), 0,
      "HEAD", HTTP_M_HEAD, "/x/y?a=1&b=%20", "/x/y", "a=1&b=%20", "", HTTP_TF_ORIGIN, 0,
      "", "", -1, 0, 0, 0 },
    { "POST with body", IN("POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"), 5,
      "POST", HTTP_M_POST, "/form", "/form", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\nContent-Length: 5\n", "h", 5, 0, 1, 0 },
    { "1.0 keep-alive", IN("GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "/a", "/a", NULL, "", HTTP_TF_ORIGIN, 0,
      "Connection: Keep-Alive\n", "", -1, 0, 1, 0 },
    { "1.1 close in a list", IN("GET /a HTTP/1.1\r\nHost: h\r\nConnection: foo, Close\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "/a", "/a", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\nConnection: foo, Close\n", "h", -1, 0, 0, 0 },
    { "absolute-form", IN("GET http://Example.com:8080/a/b?q=1 HTTP/1.1\r\nHost: other\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "http://Example.com:8080/a/b?q=1", "/a/b", "q=1", "Example.com:8080",
      HTTP_TF_ABSOLUTE, 1, "Host: other\n", "Example.com:8080", -1, 0, 1, 0 },
    { "absolute-form no path", IN("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "http://h", "/", NULL, "h", HTTP_TF_ABSOLUTE, 1,
      "Host: h\n", "h", -1, 0, 1, 0 },
    { "absolute-form HTTPS query only", IN("GET HTTPS://[::1]:443?x HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "HTTPS://[::1]:443?x", "/", "x", "[::1]:443", HTTP_TF_ABSOLUTE, 1,
      "Host: h\n", "[::1]:443", -1, 0, 1, 0 },
    { "OPTIONS *", IN("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
      "OPTIONS", HTTP_M_OPTIONS, "*", "", NULL, "", HTTP_TF_ASTERISK, 1,
      "Host: h\n", "h", -1, 0, 1, 0 },
    { "CONNECT authority", IN("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), 0,
      "CONNECT", HTTP_M_CONNECT, "example.com:443", "", NULL, "", HTTP_TF_AUTHORITY, 1,
      "Host: example.com:443\n", "example.com:443", -1, 0, 1, 0 },
    { "ten headers", IN("GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n"
                        "E: 5\r\nF: 6\r\nG: 7\r\nH: 8\r\nI: 9\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "/", "/", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\nA: 1\nB: 2\nC: 3\nD: 4\nE: 5\nF: 6\nG: 7\nH: 8\nI: 9\n", "h", -1, 0, 1, 0 },
    { "empty values", IN("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-E2:  \t \r\n\r\n"), 0,
      "GET", HTTP_M_GET, "/", "/", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\nX-Empty: \nX-E2: \n", "h", -1, 0, 1, 0 },
    { "leading CRLFs", IN("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "/", "/", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\n", "h", -1, 0, 1, 0 },
    { "obs-text in value", IN("GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9 \xff\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "/", "/", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\nX-Name: caf\xc3\xa9 \xff\n", "h", -1, 0, 1, 0 },
    { "pipelined", IN("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n"), 28,
      "GET", HTTP_M_GET, "/1", "/1", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\n", "h", -1, 0, 1, 0 },
    { "chunked", IN("POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"), 15,
      "POST", HTTP_M_POST, "/u", "/u", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\nTransfer-Encoding: chunked\n", "h", -1, 1, 1, 0 },
    { "chunked case and empty list elements", IN("PUT /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , CHUNKED ,\r\n\r\n"), 0,
      "PUT", HTTP_M_PUT, "/u", "/u", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\nTransfer-Encoding: , CHUNKED ,\n", "h", -1, 1, 1, 0 },
    { "expect 100-continue", IN("POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 0\r\n\r\n"), 0,
      "POST", HTTP_M_POST, "/", "/", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\nExpect: 100-Continue\nContent-Length: 0\n", "h", 0, 0, 1, 1 },
    { "expect ignored in 1.0", IN("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 000000000000000012\r\n\r\n"), 0,
      "POST", HTTP_M_POST, "/", "/", NULL, "", HTTP_TF_ORIGIN, 0,
      "Expect: 100-continue\nContent-Length: 000000000000000012\n", "", 12, 0, 0, 0 },
    { "HTTP/1.5 as 1.1", IN("DELETE /r HTTP/1.5\r\nHost: h\r\n\r\n"), 0,
      "DELETE", HTTP_M_DELETE, "/r", "/r", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\n", "h", -1, 0, 1, 0 },
    { "unknown method", IN("PURGE /c HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
      "PURGE", HTTP_M_OTHER, "/c", "/c", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\n", "h", -1, 0, 1, 0 },
    { "lowercase method is OTHER", IN("get / HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
      "get", HTTP_M_OTHER, "/", "/", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\n", "h", -1, 0, 1, 0 },
    { "OWS trimmed, inner kept", IN("PATCH / HTTP/1.1\r\nHost:\th\t\r\nX:  \t a \t b \t \r\n\r\n"), 0,
      "PATCH", HTTP_M_PATCH, "/", "/", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: h\nX: a \t b\n", "h", -1, 0, 1, 0 },
    { "empty Host", IN("TRACE / HTTP/1.1\r\nHost:\r\n\r\n"), 0,
      "TRACE", HTTP_M_TRACE, "/", "/", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: \n", "", -1, 0, 1, 0 },
    { "IPv6 Host, query only", IN("GET /? HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "/?", "/", "", "", HTTP_TF_ORIGIN, 1,
      "Host: [::1]:8080\n", "[::1]:8080", -1, 0, 1, 0 },
    { "IPv4 Host, empty query", IN("GET /p? HTTP/1.1\r\nhOsT: 127.0.0.1:80\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "/p?", "/p", "", "", HTTP_TF_ORIGIN, 1,
      "hOsT: 127.0.0.1:80\n", "127.0.0.1:80", -1, 0, 1, 0 },
    { "pct-encoded host, absolute-form with port", IN("GET http://ex%41mple:8080 HTTP/1.1\r\nHost: a%2db\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "http://ex%41mple:8080", "/", NULL, "ex%41mple:8080", HTTP_TF_ABSOLUTE, 1,
      "Host: a%2db\n", "ex%41mple:8080", -1, 0, 1, 0 },
    { "token chars in names and method", IN("M!#$%&'*+-.^_`|~9 /x HTTP/1.1\r\nHost: [::1]\r\n!#$%&'*+-.^_`|~: v\r\n\r\n"), 0,
      "M!#$%&'*+-.^_`|~9", HTTP_M_OTHER, "/x", "/x", NULL, "", HTTP_TF_ORIGIN, 1,
      "Host: [::1]\n!#$%&'*+-.^_`|~: v\n", "[::1]", -1, 0, 1, 0 },
    { "visible ASCII target but '#'", IN("GET /!\"$%&'()*+,-./:;<=>?@[\\]^_`{|}~ HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
      "GET", HTTP_M_GET, "/!\"$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "/!\"$%&'()*+,-./:;<=>",
      "@[\\]^_`{|}~", "", HTTP_TF_ORIGIN, 1, "Host: h\n", "h", -1, 0, 1, 0 },
};

static int check_req(const struct http_req *r, const struct vcase *v, const char **what)
{
    char hdrs[2048];
    size_t o = 0;
    for (size_t i = 0; i < r->nheaders && o < sizeof hdrs - 8; i++) {
        const struct http_header *h = &r->headers[i];
        o += (size_t)snprintf(hdrs + o, sizeof hdrs - o, "%.*s: %.*s\n", (int)h->name.len,
                              h->name.p, (int)h->value.len, h->value.p);
    }
    hdrs[o < sizeof hdrs ? o : sizeof hdrs - 1] = '\0';
#define CHECK(c, w) do { if (!(c)) { *what = w; return 0; } } while (0)
    CHECK(view_is(r->method, v->method), "method");
    CHECK(r->m == v->m, "method enum");
    CHECK(view_is(r->target, v->target), "target");
    CHECK(view_is(r->path, v->path), "path");
    CHECK(view_is(r->query, v->query), "query");
    CHECK(view_is(r->authority, v->authority), "authority");
    CHECK(r->target_form == v->form, "target form");
    CHECK(r->version_minor == v->minor, "version");
    CHECK(strcmp(hdrs, v->headers) == 0, "headers");
    CHECK(view_is(r->host, v->host), "host");
    CHECK(r->content_length == v->cl, "content_length");
    CHECK(r->chunked == v->chunked, "chunked");
    CHECK(r->keep_alive == v->ka, "keep_alive");
    CHECK(r->expect_continue == v->expect, "expect_continue");
    CHECK(r->head_len == v->len - v->extra, "head_len");
#undef CHECK
    *what = "";
    return 1;
}

static void test_valid(void)
{
    static struct http_req r, r2;
    for (size_t k = 0; k < sizeof valid / sizeof valid[0]; k++) {
        const struct vcase *v = &valid[k];
        const char *what = "";
        int head = (int)(v->len - v->extra);

        int rc = parse_guarded(&r, v->in, v->len);
        int good = rc == head && check_req(&r, v, &what);
        if (!ok(good, "valid: %s", v->name))
            diag("rc=%d want %d, first wrong field: %s (%s)", rc, head, what,
                 rc < 0 ? r.error : "");

        /* every truncated prefix is a valid prefix */
        int again = 1;
        for (size_t n = 0; n < (size_t)head; n++) {
            if (parse_guarded(&r, v->in, n) != HTTP_AGAIN) {
                diag("prefix %zu: not AGAIN (%s)", n, r.error ? r.error : "");
                again = 0;
                break;
            }
        }
        ok(again, "valid: %s: every prefix is AGAIN", v->name);

        /* byte-at-a-time on one buffer gives the same result */
        char *g = guard_put(v->in, v->len);
        http_req_init(&r2);
        int inc = HTTP_AGAIN;
        size_t n;
        for (n = 0; n <= v->len && inc == HTTP_AGAIN; n++)
            inc = http_parse_request(&r2, g, n, &LIM);
        good = inc == head && n - 1 == (size_t)head && check_req(&r2, v, &what);
        /* and calling again once done returns the same */
        good = good && http_parse_request(&r2, g, v->len, &LIM) == head;
        if (!ok(good, "valid: %s: byte at a time", v->name))
            diag("rc=%d at len %zu, field %s", inc, n - 1, what);
    }
}

static void test_header_lookup(void)
{
    static struct http_req r;
    static const char in[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
    int rc = parse_guarded(&r, in, sizeof in - 1);
    const struct http_header *h = http_req_header(&r, "X-a");
    ok(rc > 0 && h && view_is(h->value, "1"), "http_req_header: first match, any case");
    ok(http_req_header(&r, "X-B") == NULL, "http_req_header: absent -> NULL");
    ok(http_req_header(&r, "X") == NULL, "http_req_header: prefix is no match");

    struct http_str s = { "Keep-Alive", 10 };
    ok(http_str_ieq(s, "keep-alive") && !http_str_ieq(s, "keep-aliv"), "http_str_ieq");
    struct http_str l = { " a ,\tClose\t, b", 14 };
    ok(http_list_has(l, "close") && http_list_has(l, "A") && !http_list_has(l, "c"),
       "http_list_has trims OWS, case-insensitive");
    struct http_str e = { "", 0 };
    ok(!http_list_has(e, "close"), "http_list_has on empty");
    ok(http_is_tchar('!') && http_is_tchar('~') && http_is_tchar('z') && !http_is_tchar(':') &&
       !http_is_tchar(' ') && !http_is_tchar(0) && !http_is_tchar(0x80) && !http_is_tchar('"'),
       "http_is_tchar");

    /* NULL limits use the defaults */
    http_req_init(&r);
    ok(http_parse_request(&r, in, sizeof in - 1, NULL) == (int)sizeof in - 1, "NULL limits: defaults");
}

/* ------------------------------------------------------------------ */
/* malformed requests                                                  */

struct bcase {
    const char *in;
    size_t len;
    size_t early; /* the shortest prefix that must already be HTTP_BAD */
    int status;
    const char *name;
};

/* E(a, b): the error is in the last byte of a; L(a): only the whole input */
#define E(a, b, st, nm) { a b, sizeof(a b) - 1, sizeof(a) - 1, st, nm }
#define L(a, st, nm) { a, sizeof(a) - 1, sizeof(a) - 1, st, nm }
#define RQ "GET / HTTP/1.1\r\nHost: h\r\n"

static struct bcase bad_static[] = {
    /* request-line */
    E("G\x01", "ET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "CTL in method"),
    E("GE(", "T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "'(' in method"),
    E(" ", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "leading SP"),
    E("\n", "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "leading bare LF"),
    E("\r\r", "\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "leading bare CR"),
    E("GET  ", "/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, "double SP after method"),
    E("GET /  ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "double SP after target"),
    E("GET\t", "/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, "HTAB as separator"),
    E("GET / h", "ttp/1.1\r\nHost: h\r\n\r\n", 400, "lowercase version"),
    E("GET / HTTP/2.0\r", "\nHost: h\r\n\r\n", 505, "HTTP/2.0"),
    E("GET / HTTP/0.9\r", "\nHost: h\r\n\r\n", 505, "HTTP/0.9"),
    E("GET / HTTP/3.0\r", "\n\r\n", 505, "HTTP/3.0"),
    E("GET / HTTP/1.10", "\r\nHost: h\r\n\r\n", 400, "HTTP/1.10"),
    E("GET / HTTP/01", ".1\r\nHost: h\r\n\r\n", 400, "HTTP/01.1"),
    E("GET / HTTP/1\r", "\nHost: h\r\n\r\n", 400, "HTTP/1"),
    E("GET / HTTP/1.x", "\r\nHost: h\r\n\r\n", 400, "HTTP/1.x"),
    E("GET / HTTP/1.1 ", "\r\nHost: h\r\n\r\n", 400, "SP after version"),
    E("GET /\r", "\n\r\n", 400, "no version"),
    E("GET / HTTP/1.1\n", "Host: h\r\n\r\n", 400, "bare LF after request-line"),
    E("GET / HTTP/1.1\rX", "Host: h\r\n\r\n", 400, "bare CR after request-line"),
    E("GET /\x80", "a HTTP/1.1\r\nHost: h\r\n\r\n", 400, "0x80 in target"),
    E("GET /\x7f", "a HTTP/1.1\r\nHost: h\r\n\r\n", 400, "DEL in target"),
    E("GET /a#", "b HTTP/1.1\r\nHost: h\r\n\r\n", 400, "fragment in target (RFC 9112 3.2)"),
    E("GET /\x01", "a HTTP/1.1\r\nHost: h\r\n\r\n", 400, "CTL in target"),
    E("GET /\t", "a HTTP/1.1\r\nHost: h\r\n\r\n", 400, "HTAB in target"),
    E("GET /\0", "a HTTP/1.1\r\nHost: h\r\n\r\n", 400, "NUL in target"),
    E("GET * ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "'*' with GET"),
    E("CONNECT * ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "'*' with CONNECT"),
    E("OPTIONS ** ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "'**' target"),
    E("GET example.com:80 ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "authority-form with GET"),
    E("CONNECT / ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "origin-form with CONNECT"),
    E("CONNECT example.com ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "CONNECT without port"),
    E("CONNECT example.com: ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "CONNECT empty port"),
    E("CONNECT u@example.com:1 ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "CONNECT userinfo"),
    E("GET http://u:p@h/ ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "userinfo in absolute-form"),
    E("GET http:/// ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "empty authority"),
    E("GET http://:80/ ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "empty host in authority"),
    E("GET ftp://h/ ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "ftp scheme"),
    E("GET http:/h ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "http:/ scheme"),
    E("GET http://a^b/ ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad host char"),
    E("GET http://h:8x/ ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad port"),
    E("GET http://[zz]/ ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad IPv6 literal"),
    E("GET http://[::1/ ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "unclosed IPv6 literal"),
    E("GET http://h%zz/ ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "bad pct in host"),
    E("GET index.html ", "HTTP/1.1\r\nHost: h\r\n\r\n", 400, "relative target"),
    /* field lines */
    E(RQ "X: a\0", "b\r\n\r\n", 400, "NUL in value"),
    E(RQ "X: a\x01", "b\r\n\r\n", 400, "CTL in value"),
    E(RQ "X: a\x7f", "b\r\n\r\n", 400, "DEL in value"),
    E(RQ "X: \x1b", "b\r\n\r\n", 400, "ESC at value start"),
    E(RQ "X\x01", "Y: a\r\n\r\n", 400, "CTL in name"),
    E(RQ "X\0", "Y: a\r\n\r\n", 400, "NUL in name"),
    E(RQ "X\xff", "Y: a\r\n\r\n", 400, "0xff in name"),
    E(RQ "X(", "Y: a\r\n\r\n", 400, "'(' in name"),
    E("GET / HTTP/1.1\r\nHost ", ": h\r\n\r\n", 400, "space before colon"),
    E(RQ "X\t", ": a\r\n\r\n", 400, "HTAB before colon"),
    E(RQ "X: b\r\n ", "c\r\n\r\n", 400, "obs-fold SP"),
    E(RQ "X: b\r\n\t", "c\r\n\r\n", 400, "obs-fold HTAB"),
    E("GET / HTTP/1.1\r\n ", "Host: h\r\n\r\n", 400, "whitespace before first field"),
    E(RQ ":", " a\r\n\r\n", 400, "empty field name"),
    E("GET / HTTP/1.1\r\nHost: h\n", "\r\n", 400, "bare LF ending a field"),
    E(RQ "X: a\n", "\r\n", 400, "bare LF in value"),
    E(RQ "X:\n", "\r\n", 400, "bare LF after colon"),
    E(RQ "X: a\rb", "\r\n\r\n", 400, "bare CR in value"),
    E(RQ "Xa\r", "\n\r\n", 400, "no colon"),
    E(RQ "Xa\n", "\r\n", 400, "bare LF in name"),
    E(RQ "\rX", "", 400, "bare CR ending the head"),
    E(RQ "\n", "", 400, "bare LF ending the head"),
    /* semantics, known once the head is complete */
    L("GET / HTTP/1.1\r\n\r\n", 400, "missing Host in 1.1"),
    L("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "two Hosts"),
    L("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, "two Hosts in 1.0"),
    L("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "bad Host value"),
    L("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "space in Host"),
    L("GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", 400, "userinfo in Host"),
    L("GET / HTTP/1.1\r\nHost: h:x\r\n\r\n", 400, "bad Host port"),
    L("GET http://a/ HTTP/1.1\r\n\r\n", 400, "absolute-form still needs Host"),
    L(RQ "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "CL and TE"),
    L(RQ "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, "TE and CL"),
    L(RQ "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 400, "duplicate CL"),
    L(RQ "Content-Length: 5, 5\r\n\r\n", 400, "CL list"),
    L(RQ "Content-Length: +5\r\n\r\n", 400, "CL +5"),
    L(RQ "Content-Length: -1\r\n\r\n", 400, "CL -1"),
    L(RQ "Content-Length: 1234567890123456789\r\n\r\n", 400, "CL 19 digits"),
    L(RQ "Content-Length: 0000000000000000000\r\n\r\n", 400, "CL 19 zeros"),
    L(RQ "Content-Length:\r\n\r\n", 400, "CL empty"),
    L(RQ "Content-Length: 5x\r\n\r\n", 400, "CL 5x"),
    L(RQ "Content-Length: 0x10\r\n\r\n", 400, "CL hex"),
    L(RQ "Content-Length: 1 0\r\n\r\n", 400, "CL with inner space"),
    L(RQ "Transfer-Encoding: gzip\r\n\r\n", 400, "TE gzip only"),
    L(RQ "Transfer-Encoding: identity\r\n\r\n", 400, "TE identity only"),
    L(RQ "Transfer-Encoding: chunked, identity\r\n\r\n", 400, "TE chunked not last"),
    L(RQ "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "TE chunked then gzip field"),
    L(RQ "Transfer-Encoding: chunked, chunked\r\n\r\n", 400, "TE chunked twice"),
    L(RQ "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "TE chunked in two fields"),
    L(RQ "Transfer-Encoding:\r\n\r\n", 400, "TE empty"),
    L(RQ "Transfer-Encoding: chunked x\r\n\r\n", 400, "TE bad syntax"),
    L(RQ "Transfer-Encoding: \"chunked\"\r\n\r\n", 400, "TE quoted"),
    L("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "TE in 1.0"),
    L(RQ "Transfer-Encoding: gzip, chunked\r\n\r\n", 501, "TE gzip, chunked"),
    L(RQ "Transfer-Encoding: identity, chunked\r\n\r\n", 501, "TE identity, chunked"),
    L(RQ "Transfer-Encoding: deflate\r\nTransfer-Encoding: chunked\r\n\r\n", 501, "TE deflate then chunked fields"),
    L(RQ "Transfer-Encoding: x-foo, CHUNKED\r\n\r\n", 501, "TE unknown, chunked"),
};

/* limit cases, built at run time */
static char long_line[200], long_line2[200], many_hdrs[400], big_head[1200], crlfs[1100];

static struct bcase bad_dyn[6];

static size_t build_dynamic(void)
{
    size_t n = 0, o;
    /* request-line of 101 bytes (max_line 100): 414 without waiting for CRLF */
    o = (size_t)sprintf(long_line, "GET /");
    while (o < 92) long_line[o++] = 'a';
    o += (size_t)sprintf(long_line + o, " HTTP/1.1\r\nHost: h\r\n\r\n");
    bad_dyn[n++] = (struct bcase){ long_line, o, 101, 414, "request-line 101 bytes" };
    /* same with the line still incomplete: the 101st byte already fails */
    memset(long_line2, 'a', 150);
    memcpy(long_line2, "GET /", 5);
    bad_dyn[n++] = (struct bcase){ long_line2, 150, 101, 414, "incomplete request-line too long" };
    /* 11 fields with max_headers 10: fails on the first byte of the 11th */
    o = (size_t)sprintf(many_hdrs, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 0; i < 9; i++) o += (size_t)sprintf(many_hdrs + o, "X%d: v\r\n", i);
    size_t at = o + 1;
    o += (size_t)sprintf(many_hdrs + o, "Y: v\r\n\r\n");
    bad_dyn[n++] = (struct bcase){ many_hdrs, o, at, 431, "11 header fields" };
    /* head of 1001 bytes (max_head 1000) */
    o = (size_t)sprintf(big_head, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
    while (o < 1001 - 4) big_head[o++] = 'v';
    o += (size_t)sprintf(big_head + o, "\r\n\r\n");
    bad_dyn[n++] = (struct bcase){ big_head, o, 1001, 431, "head 1001 bytes" };
    /* leading CRLFs count toward max_head */
    for (o = 0; o < 1000; o += 2) memcpy(crlfs + o, "\r\n", 2);
    o += (size_t)sprintf(crlfs + o, "GET / HTTP/1.1\r\n");
    bad_dyn[n++] = (struct bcase){ crlfs, o, 1001, 431, "1000 bytes of leading CRLF" };
    return n;
}

static void run_bad(const struct bcase *b)
{
    static struct http_req r;
    int rc = parse_guarded(&r, b->in, b->len);
    if (!ok(rc == HTTP_BAD && r.status == b->status && r.error != NULL, "bad: %s -> %d", b->name, b->status))
        diag("rc=%d status=%d (%s)", rc, r.status, r.error ? r.error : "");

    /* each prefix on its own: AGAIN before the offending byte, BAD from it */
    int good = 1;
    for (size_t n = 0; n <= b->len && good; n++) {
        rc = parse_guarded(&r, b->in, n);
        int want = n < b->early ? HTTP_AGAIN : HTTP_BAD;
        if (rc != want || (rc == HTTP_BAD && r.status != b->status)) {
            diag("prefix %zu of %zu: rc=%d status=%d, want rc=%d", n, b->len, rc, r.status, want);
            good = 0;
        }
    }
    ok(good, "bad: %s: reported right after byte %zu", b->name, b->early);

    /* growing one buffer byte by byte agrees */
    char *g = guard_put(b->in, b->len);
    http_req_init(&r);
    size_t n;
    rc = HTTP_AGAIN;
    for (n = 0; n <= b->len && rc == HTTP_AGAIN; n++) rc = http_parse_request(&r, g, n, &LIM);
    ok(rc == HTTP_BAD && r.status == b->status && n - 1 == b->early &&
       http_parse_request(&r, g, b->len, &LIM) == HTTP_BAD,
       "bad: %s: byte at a time", b->name);
}

static void test_bad(void)
{
    size_t nd = build_dynamic();
    for (size_t i = 0; i < sizeof bad_static / sizeof bad_static[0]; i++) run_bad(&bad_static[i]);
    for (size_t i = 0; i < nd; i++) run_bad(&bad_dyn[i]);

    /* limits are inclusive: exactly max_line and max_head are fine */
    static struct http_req r;
    char buf[1200];
    size_t o = (size_t)sprintf(buf, "GET /");
    while (o < 100 - 9) buf[o++] = 'a';
    o += (size_t)sprintf(buf + o, " HTTP/1.1\r\nHost: h\r\n\r\n");
    ok(parse_guarded(&r, buf, o) == (int)o, "request-line of exactly max_line is accepted");
    o = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: h\r\nX: ");
    while (o < 1000 - 4) buf[o++] = 'v';
    o += (size_t)sprintf(buf + o, "\r\n\r\n");
    ok(parse_guarded(&r, buf, o) == 1000, "head of exactly max_head is accepted");
    ok((size_t)LIM.max_line < sizeof long_line, "limit buffers sized");
}

/* ------------------------------------------------------------------ */
/* chunked                                                             */

struct ccase {
    const char *name;
    const char *in;
    size_t len;
    const char *out;
    size_t outlen;
    size_t rest; /* bytes after the body */
};
#define CIN(s) s, sizeof(s) - 1
#define COUT(s) s, sizeof(s) - 1

static const struct ccase chunk_ok[] = {
    { "single", CIN("5\r\nhello\r\n0\r\n\r\n"), COUT("hello"), 0 },
    { "empty body", CIN("0\r\n\r\n"), COUT(""), 0 },
    { "many", CIN("1\r\na\r\n2\r\nbc\r\na\r\n0123456789\r\n0\r\n\r\n"), COUT("abc0123456789"), 0 },
    { "uppercase hex, leading zeros", CIN("0000A\r\n0123456789\r\n000\r\n\r\n"), COUT("0123456789"), 0 },
    { "extensions", CIN("5;a=b;c;d=\"q\\\"x;\" ; e = f\r\nhello\r\n0;last\r\n\r\n"), COUT("hello"), 0 },
    { "BWS before ';' and quoted obs-text", CIN("3 \t;x=\"\xff \t\"\r\nabc\r\n0\r\n\r\n"), COUT("abc"), 0 },
    { "trailers", CIN("3\r\nabc\r\n0\r\nX-T: 1\r\nY:\r\nZ: \xc3\xa9 v\t\r\n\r\n"), COUT("abc"), 0 },
    { "CRLF inside data", CIN("4\r\n\r\n\r\n\r\n0\r\n\r\n"), COUT("\r\n\r\n"), 0 },
    { "next request after", CIN("2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), COUT("hi"), 16 },
    { "binary data", CIN("3\r\n\0\xff\n\r\n0\r\n\r\nX"), COUT("\0\xff\n"), 1 },
};

struct cbad {
    const char *name;
    const char *in;
    size_t len;
};

static const struct cbad chunk_bad[] = {
    { "bad hex", CIN("g\r\n") },
    { "0x prefix", CIN("0x10\r\n") },
    { "leading space", CIN(" 5\r\nhello\r\n0\r\n\r\n") },
    { "trailing space", CIN("5 \r\nhello\r\n0\r\n\r\n") },
    { "empty size line", CIN("\r\n") },
    { "overflow 2^63", CIN("8000000000000000\r\n") },
    { "overflow 17 digits", CIN("10000000000000000\r\n") },
    { "missing CRLF after data", CIN("5\r\nhelloX\r\n0\r\n\r\n") },
    { "bare LF after data", CIN("5\r\nhello\n0\r\n\r\n") },
    { "bare CR after data", CIN("5\r\nhello\r0\r\n\r\n") },
    { "bare LF after size", CIN("5\nhello\r\n0\r\n\r\n") },
    { "bare CR after size", CIN("5\rhello\r\n0\r\n\r\n") },
    { "ext without size", CIN(";a\r\n") },
    { "empty ext name", CIN("5;\r\nhello\r\n") },
    { "empty ext value", CIN("5;a=\r\nhello\r\n") },
    { "unterminated quoted value", CIN("5;a=\"x\r\nhello\r\n") },
    { "ws then junk after name", CIN("5;a b\r\nhello\r\n") },
    { "ws then CR after name", CIN("5;a \r\nhello\r\n") },
    { "CTL in ext", CIN("5;a\x01\r\nhello\r\n") },
    { "junk after quoted value", CIN("5;a=\"x\"y\r\nhello\r\n") },
    { "obs-fold in trailer", CIN("0\r\nX: a\r\n b\r\n\r\n") },
    { "space before colon in trailer", CIN("0\r\nX : z\r\n\r\n") },
    { "trailer without colon", CIN("0\r\nXz\r\n\r\n") },
    { "NUL in trailer", CIN("0\r\nX: a\0\r\n\r\n") },
    { "bare LF in trailer", CIN("0\r\nX: a\n\r\n") },
    { "bare CR at end", CIN("0\r\n\rX") },
    { "bare LF at end", CIN("0\r\n\n") },
};

/* Decode in[0..len) in pieces split at `cuts` (sorted offsets) and collect
 * the decoded bytes and the bytes after the body. Returns the final rc. */
static int decode_pieces(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                         char *out, size_t *outlen, char *rest, size_t *restlen)
{
    struct http_chunked d;
    http_chunked_init(&d);
    size_t start = 0;
    int rc = HTTP_AGAIN;
    *outlen = *restlen = 0;
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        size_t n = end - start;
        char *g = guard_put(in + start, n);
        rc = http_chunked_decode(&d, g, &n);
        if (rc == HTTP_BAD) return rc;
        memcpy(out + *outlen, g, n);
        *outlen += n;
        if (rc >= 0) {
            memcpy(rest + *restlen, g + n, (size_t)rc);
            *restlen += (size_t)rc;
        }
        start = end;
    }
    return rc;
}


/* "0" CRLF, then count trailer fields of 3,000 bytes each, then CRLF. */
static size_t last_chunk_with_trailers(char *big, int count)
{
    size_t o = (size_t)sprintf(big, "0\r\n");
    for (int k = 0; k < count; k++) {
        o += (size_t)sprintf(big + o, "X%d: ", k);
        for (int j = 0; j < 3000; j++) big[o++] = 'v';
        o += (size_t)sprintf(big + o, "\r\n");
    }
    o += (size_t)sprintf(big + o, "\r\n");
    return o;
}

static void test_chunked(void)
{
    static char out[20000], rest[20000];
    static size_t cuts[20000];
    size_t ol, rl;

    for (size_t i = 0; i < sizeof chunk_ok / sizeof chunk_ok[0]; i++) {
        const struct ccase *c = &chunk_ok[i];
        int rc = decode_pieces(c->in, c->len, NULL, 0, out, &ol, rest, &rl);
        ok(rc == (int)c->rest && ol == c->outlen && memcmp(out, c->out, ol) == 0 &&
           rl == c->rest && memcmp(rest, c->in + c->len - c->rest, rl) == 0,
           "chunked: %s (rc=%d)", c->name, rc);

        /* one byte at a time */
        for (size_t k = 0; k + 1 < c->len; k++) cuts[k] = k + 1;
        rc = decode_pieces(c->in, c->len, cuts, c->len - 1, out, &ol, rest, &rl);
        ok(rc >= 0 && ol == c->outlen && memcmp(out, c->out, ol) == 0 && rl == c->rest &&
           memcmp(rest, c->in + c->len - c->rest, rl) == 0, "chunked: %s: byte at a time", c->name);

        /* every split in two */
        int good = 1;
        for (size_t k = 0; k <= c->len && good; k++) {
            cuts[0] = k;
            rc = decode_pieces(c->in, c->len, cuts, 1, out, &ol, rest, &rl);
            good = rc >= 0 && ol == c->outlen && memcmp(out, c->out, ol) == 0 && rl == c->rest;
        }
        ok(good, "chunked: %s: every two-way split", c->name);
    }

    for (size_t i = 0; i < sizeof chunk_bad / sizeof chunk_bad[0]; i++) {
        const struct cbad *c = &chunk_bad[i];
        struct http_chunked d;
        http_chunked_init(&d);
        size_t n = c->len;
        int rc = http_chunked_decode(&d, guard_put(c->in, n), &n);
        ok(rc == HTTP_BAD && d.status == 400 && d.error, "chunked bad: %s", c->name);
        for (size_t k = 0; k + 1 < c->len; k++) cuts[k] = k + 1;
        rc = decode_pieces(c->in, c->len, cuts, c->len - 1, out, &ol, rest, &rl);
        ok(rc == HTTP_BAD, "chunked bad: %s: byte at a time", c->name);
    }

    /* generated: size line and trailer caps */
    static char big[20000];
    struct http_chunked d;
    size_t n, o;

    o = (size_t)sprintf(big, "5;");
    while (o < 4096) big[o++] = 'a';
    o += (size_t)sprintf(big + o, "\r\nhello\r\n0\r\n\r\n");
    n = o;
    http_chunked_init(&d);
    ok(http_chunked_decode(&d, guard_put(big, n), &n) == 0 && n == 5, "chunked: size line of 4096 bytes ok");
    o = (size_t)sprintf(big, "5;");
    while (o < 4097) big[o++] = 'a';
    o += (size_t)sprintf(big + o, "\r\nhello\r\n0\r\n\r\n");
    n = o;
    http_chunked_init(&d);
    ok(http_chunked_decode(&d, guard_put(big, n), &n) == HTTP_BAD, "chunked bad: size line of 4097 bytes");

    o = (size_t)sprintf(big, "0\r\nX: ");
    while (o < 3 + 4097) big[o++] = 'v';
    o += (size_t)sprintf(big + o, "\r\n\r\n");
    n = o;
    http_chunked_init(&d);
    ok(http_chunked_decode(&d, guard_put(big, n), &n) == HTTP_BAD, "chunked bad: trailer line over 4 KiB");

    n = last_chunk_with_trailers(big, 3);
    http_chunked_init(&d);
    ok(http_chunked_decode(&d, guard_put(big, n), &n) == HTTP_BAD, "chunked bad: trailers over 8 KiB");

    n = last_chunk_with_trailers(big, 2);
    http_chunked_init(&d);
    ok(http_chunked_decode(&d, guard_put(big, n), &n) == 0 && n == 0, "chunked: two 3 KB trailers ok");

    /* the largest size is a valid prefix; leftover after the end */
    static const char maxsz[] = "7fffffffffffffff\r\nab";
    n = sizeof maxsz - 1;
    http_chunked_init(&d);
    ok(http_chunked_decode(&d, guard_put(maxsz, n), &n) == HTTP_AGAIN && n == 2 &&
       d.remaining == 0x7fffffffffffffffULL - 2, "chunked: 2^63-1 accepted, data flows");

    static const char two[] = "3\r\nabc\r\n0\r\n\r\nPOST";
    n = sizeof two - 1;
    http_chunked_init(&d);
    char *g = guard_put(two, n);
    int rc = http_chunked_decode(&d, g, &n);
    ok(rc == 4 && n == 3 && memcmp(g, "abcPOST", 7) == 0, "chunked: leftover moved right after the data");
    n = 4;
    rc = http_chunked_decode(&d, g, &n);
    ok(rc == 4 && n == 0, "chunked: after the end everything is leftover");
    n = 2;
    http_chunked_init(&d);
    http_chunked_decode(&d, guard_put("g\r", 2), &n);
    n = 3;
    ok(http_chunked_decode(&d, guard_put("0\r\n", 3), &n) == HTTP_BAD, "chunked: BAD is sticky");
}

/* ------------------------------------------------------------------ */
/* Range                                                               */

struct rcase {
    const char *v;
    uint64_t size;
    int rc;
    uint64_t first, last;
};

static const struct rcase ranges[] = {
    { "bytes=0-4", 10, 1, 0, 4 },
    { "bytes=2-", 10, 1, 2, 9 },
    { "bytes=-3", 10, 1, 7, 9 },
    { "BYTES=1-1", 10, 1, 1, 1 },
    { "Bytes=0-0", 1, 1, 0, 0 },
    { "bytes= 1-2 ", 10, 1, 1, 2 },
    { "bytes=\t1-2\t", 10, 1, 1, 2 },
    { "bytes=5-100", 10, 1, 5, 9 },
    { "bytes=0-18446744073709551615", 10, 1, 0, 9 },
    { "bytes=9-9", 10, 1, 9, 9 },
    { "bytes=-10", 10, 1, 0, 9 },
    { "bytes=-11", 10, 1, 0, 9 },
    { "bytes=-99999999999", 10, 1, 0, 9 },
    { "bytes=0-", 10, 1, 0, 9 },
    { "bytes=10-", 10, -1, 0, 0 },
    { "bytes=10-20", 10, -1, 0, 0 },
    { "bytes=-0", 10, -1, 0, 0 },
    { "bytes=0-0", 0, -1, 0, 0 },
    { "bytes=-5", 0, -1, 0, 0 },
    { "bytes=0-", 0, -1, 0, 0 },
    { "bytes=5-3", 10, 0, 0, 0 },
    { "bytes=20-3", 10, 0, 0, 0 },
    { "bytes=0-1,3-4", 10, 0, 0, 0 },
    { "bytes=0-1, 3-4", 10, 0, 0, 0 },
    { "bytes=0-18446744073709551616", 10, 0, 0, 0 },
    { "bytes=99999999999999999999-", 10, 0, 0, 0 },
    { "bytes=-", 10, 0, 0, 0 },
    { "bytes=", 10, 0, 0, 0 },
    { "bytes", 10, 0, 0, 0 },
    { "", 10, 0, 0, 0 },
    { "items=0-4", 10, 0, 0, 0 },
    { "bytes =0-4", 10, 0, 0, 0 },
    { "bytes=a-4", 10, 0, 0, 0 },
    { "bytes=0-4x", 10, 0, 0, 0 },
    { "bytes=+1-4", 10, 0, 0, 0 },
    { "bytes=1 -4", 10, 0, 0, 0 },
    { "bytes=1--4", 10, 0, 0, 0 },
    { "bytes=--4", 10, 0, 0, 0 },
    { "bytes=0x1-4", 10, 0, 0, 0 },
    { "bytes=1", 10, 0, 0, 0 },
};

static void test_range(void)
{
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        const struct rcase *c = &ranges[i];
        uint64_t f = 12345, l = 12345;
        size_t n = strlen(c->v);
        int rc = http_parse_range(guard_put(c->v, n), n, c->size, &f, &l);
        int good = rc == c->rc && (rc != 1 || (f == c->first && l == c->last));
        if (!ok(good, "range: '%s' size %llu -> %d", c->v, (unsigned long long)c->size, c->rc))
            diag("rc=%d first=%llu last=%llu", rc, (unsigned long long)f, (unsigned long long)l);
    }
}

/* ------------------------------------------------------------------ */
/* path normalisation                                                  */

struct pcase {
    const char *in;
    const char *out; /* NULL: HTTP_BAD */
};

static const struct pcase paths[] = {
    { "/", "/" },
    { "/a", "/a" },
    { "/a/b/c.html", "/a/b/c.html" },
    { "/a/", "/a/" },
    { "//a//b", "/a/b" },
    { "//", "/" },
    { "/a//", "/a/" },
    { "/a/./b", "/a/b" },
    { "/a/../b", "/b" },
    { "/a/b/../../c", "/c" },
    { "/a/.", "/a/" },
    { "/a/b/..", "/a/" },
    { "/a/..", "/" },
    { "/.", "/" },
    { "/./", "/" },
    { "/a/./", "/a/" },
    { "/a/%2e", "/a/" },
    { "/a/b/%2E%2e", "/a/" },
    { "/a/%2E%2E/%2e%2E/x", NULL },
    { "/a/b/%2E%2E/%2e%2E/x", "/x" },
    { "/..", NULL },
    { "/../etc/passwd", NULL },
    { "/%2e%2e/", NULL },
    { "/%2E./x", NULL },
    { "/a/../..", NULL },
    { "/a/b/../../../c", NULL },
    { "/...", "/..." },
    { "/..a/.b/a..", "/..a/.b/a.." },
    { "/a.%2e", "/a.." },
    { "/%41%62%7e", "/Ab~" },
    { "/a%20b", "/a b" },
    { "/%c3%A9", "/\xc3\xa9" },
    { "/%5c..%5c", "/\\..\\" },
    { "/%2f", NULL },
    { "/a%2Fb", NULL },
    { "/a%00b", NULL },
    { "/a%0", NULL },
    { "/a%", NULL },
    { "/a%g0", NULL },
    { "/a%0g", NULL },
    { "", NULL },
    { "a/b", NULL },
    { "%2fa", NULL },
    { "/a?b", "/a?b" },
};

static void test_path(void)
{
    char out[256];
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        const struct pcase *c = &paths[i];
        size_t n = strlen(c->in);
        memset(out, 'Z', sizeof out);
        int rc = http_normalize_path(guard_put(c->in, n), n, out, sizeof out);
        int good = c->out ? rc == (int)strlen(c->out) && strcmp(out, c->out) == 0 : rc == HTTP_BAD;
        if (!ok(good, "path: '%s' -> %s", c->in, c->out ? c->out : "BAD"))
            diag("rc=%d out='%s'", rc, rc >= 0 ? out : "");
    }
    /* raw NUL */
    int rc = http_normalize_path(guard_put("/a\0b", 4), 4, out, sizeof out);
    ok(rc == HTTP_BAD, "path: raw NUL -> BAD");

    /* output size: "/abc" needs 5 bytes with the NUL */
    ok(http_normalize_path("/abc", 4, out, 5) == 4 && strcmp(out, "/abc") == 0, "path: fits exactly");
    ok(http_normalize_path("/abc", 4, out, 4) == HTTP_BAD, "path: one byte short -> BAD");
    ok(http_normalize_path("/abc/", 5, out, 6) == 5, "path: trailing slash fits");
    ok(http_normalize_path("/abc/", 5, out, 5) == HTTP_BAD, "path: trailing slash overflows");
    ok(http_normalize_path("/", 1, out, 1) == HTTP_BAD, "path: outsz 1 -> BAD");
    ok(http_normalize_path("/", 1, out, 2) == 1 && strcmp(out, "/") == 0, "path: '/' in 2 bytes");
    ok(http_normalize_path("/aaaaaaaa/..", 12, out, 3) == 1, "path: temporary segments need no room");
    ok(http_normalize_path("/a/bbbbbbbb/cccc/../..", 22, out, 4) == 3 && strcmp(out, "/a/") == 0,
       "path: spilled segments removed by later ..");
    ok(http_normalize_path("/aaaa/bbbb/../c", 15, out, 6) == HTTP_BAD, "path: spilled segment remains -> BAD");
    ok(http_normalize_path("/%41", 4, out, 3) == 2 && strcmp(out, "/A") == 0, "path: decoded length counts");
}

int main(void)
{
    guard_setup();
    test_valid();
    test_header_lookup();
    test_bad();
    test_chunked();
    test_range();
    test_path();
    return done_testing();
}
