/* test_environ.c - unit tests of src/environ.c (the request as CGI/WSGI
 * variables, one set of rules for CGI, C apps and WSGI), of src/owned_hdr.c
 * (the response fields the server owns) and of http_parse_content_length
 * (TAP, run by prove). */
#include "environ.h"
#include "http_parse.h"
#include "owned_hdr.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static struct http_req R;

static int parse(const char *s)
{
    static const struct http_limits lim = { 1000, 8000, HTTP_MAX_HEADERS };
    http_req_init(&R);
    return http_parse_request(&R, s, strlen(s), &lim) > 0 ? 0 : -1;
}

/* The variables as "NAME=value\n" lines, in order. */
static const char *listing(void)
{
    static char out[8192];
    size_t o = 0, pos = 0;
    int i;
    out[0] = 0;
    while ((i = env_next_field(&R, &pos)) >= 0) {
        char var[ENV_VAR_MAX + 1];
        size_t n = env_var_name(&R, i, var, sizeof var);
        memcpy(out + o, var, n);
        o += n;
        out[o++] = '=';
        size_t vl = env_var_value(&R, i, out + o, sizeof out - o - 2);
        o += vl;
        out[o++] = '\n';
        out[o] = 0;
    }
    return out;
}

static const char *var(const char *name)
{
    static char v[1024];
    int i = env_find_var(&R, name);
    if (i < 0)
        return NULL;
    size_t n = env_var_value(&R, i, v, sizeof v - 1);
    v[n] = 0;
    return v;
}

static const char *view(struct http_str s)
{
    static char v[256];
    if (!s.p)
        return NULL;
    memcpy(v, s.p, s.len);
    v[s.len] = 0;
    return v;
}

static void test_tricky(void)
{
    ok(parse("POST /x HTTP/1.1\r\nHost: example.org:81\r\nProxy: http://evil:1\r\n"
             "X-Foo: good\r\nX_Foo: spoof\r\nContent_Type: text/evil\r\n"
             "Content_Length: 99\r\nX-Later: after\r\nCookie: a=1\r\nX-A: 1\r\n"
             "cookie: b=2\r\nx-a: 2\r\nTE: trailers\r\nKeep-Alive: 5\r\nUpgrade: h2c\r\n"
             "Trailer: X\r\nProxy-Connection: x\r\nConnection: keep-alive, TE\r\n"
             "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\nX-Last: z\r\n\r\n") == 0,
       "the tricky request parses");
    /* no Proxy, no '_' names, no framing fields; repeated fields joined at
     * the first one; the iteration goes past the '_' spellings of
     * Content-Type/-Length to the last field */
    is_str(listing(),
           "HTTP_HOST=example.org:81\nHTTP_X_FOO=good\nHTTP_X_LATER=after\n"
           "HTTP_COOKIE=a=1; b=2\nHTTP_X_A=1, 2\nHTTP_X_LAST=z\n",
           "exactly the acceptable fields, joined, in order");
    is_str(var("HTTP_X_FOO"), "good", "X_Foo does not merge into HTTP_X_FOO");
    ok(var("HTTP_PROXY") == NULL, "no HTTP_PROXY (httpoxy)");
    ok(var("HTTP_TRANSFER_ENCODING") == NULL, "no HTTP_TRANSFER_ENCODING after de-chunking");
    ok(var("HTTP_CONTENT_TYPE") == NULL && var("HTTP_CONTENT_LENGTH") == NULL,
       "no HTTP_CONTENT_* (neither spelling)");
    ok(var("HTTP_CONNECTION") == NULL && var("HTTP_TE") == NULL && var("HTTP_UPGRADE") == NULL &&
           var("HTTP_KEEP_ALIVE") == NULL && var("HTTP_TRAILER") == NULL &&
           var("HTTP_PROXY_CONNECTION") == NULL,
       "no connection fields");
    ok(var("HTTP_x_foo") == NULL && var("X_FOO") == NULL, "names are exact, with HTTP_");
    is_str(view(env_content_type(&R)), "text/plain", "CONTENT_TYPE from Content-Type only");
    ok(env_has_body(&R), "chunked: CONTENT_LENGTH is set");
    is_str(view(env_server_name(&R)), "example.org", "SERVER_NAME: Host without its port");
    is_str(env_protocol(&R), "HTTP/1.1", "SERVER_PROTOCOL");
    char small[8];
    ok(env_var_name(&R, 0, small, sizeof small) == 0, "a name that does not fit: 0");
    ok(env_var_value(&R, 7, NULL, 0) == strlen("a=1; b=2"), "the value's length with cap 0");
}

static void test_meta(void)
{
    parse("GET http://[::1]:8080/p HTTP/1.1\r\nHost: other\r\n\r\n");
    is_str(view(env_server_name(&R)), "[::1]", "absolute-form: its authority, v6 kept whole");
    ok(!env_has_body(&R) && env_content_type(&R).p == NULL, "no body, no type");
    parse("GET / HTTP/1.0\r\n\r\n");
    ok(env_server_name(&R).len == 0, "no Host: empty (the caller uses its address)");
    is_str(env_protocol(&R), "HTTP/1.0", "HTTP/1.0");
    is_str(listing(), "", "no fields, no variables");
    parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nA: 1\r\nA:\r\nB-2: x\r\n"
          "X.Y: 1\r\nX~Y: 2\r\n\r\n");
    ok(env_has_body(&R), "Content-Length: 0 frames an (empty) body");
    is_str(listing(), "HTTP_HOST=h\nHTTP_A=1, \nHTTP_B_2=x\n",
           "an empty repeat is kept; '.' and '~' names dropped");
    char big[400];
    strcpy(big, "GET / HTTP/1.1\r\nHost: h\r\n");
    size_t n = strlen(big);
    memset(big + n, 'L', 257);
    strcpy(big + n + 257, ": v\r\n\r\n");
    parse(big);
    is_str(listing(), "HTTP_HOST=h\n", "a name over 256 bytes is dropped");
}

static void test_owned(void)
{
    static const char *const own[] = {"Connection", "keep-alive", "TRANSFER-ENCODING", "TE",
                                      "Trailer", "Upgrade", "Date", "Server",
                                      "Proxy-Connection"};
    int all = 1;
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        all &= owned_hdr_find(own[i], strlen(own[i])) >= 0;
    ok(all, "framing, connection, Date and Server fields are the server's");
    ok(owned_hdr_find("Content-Type", 12) < 0 && owned_hdr_find("Content-Length", 14) < 0 &&
           owned_hdr_find("Set-Cookie", 10) < 0 && owned_hdr_find("Dat", 3) < 0 &&
           owned_hdr_find("Dates", 5) < 0 && owned_hdr_find("Date", 3) < 0,
       "others (and prefixes) are the app's");
    is_str(owned_hdr_name(owned_hdr_find("date", 4)), "Date", "the table's spelling");
}

static void test_content_length(void)
{
    static const struct {
        const char *in;
        int64_t want; /* -1: refused */
    } cases[] = {
        {"0", 0}, {"42", 42}, {" 42\t", 42}, {"007", 7}, {"999999999999999999", 999999999999999999},
        {"", -1}, {" ", -1}, {"1000000000000000000", -1}, {"-1", -1}, {"+1", -1},
        {"4 2", -1}, {"5, 5", -1}, {"5,5", -1}, {"0x10", -1}, {"1e3", -1}, {"12a", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = -1;
        int rc = http_parse_content_length(cases[i].in, strlen(cases[i].in), &v);
        if (cases[i].want < 0)
            ok(rc == -1, "Content-Length '%s' refused", cases[i].in);
        else
            ok(rc == 0 && v == cases[i].want, "Content-Length '%s' = %lld", cases[i].in,
               (long long)cases[i].want);
    }
    /* the request parser keeps its rules through the shared function */
    ok(parse("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n") < 0,
       "a list in a request's Content-Length is still a 400");
}

int main(void)
{
    test_tricky();
    test_meta();
    test_owned();
    test_content_length();
    return done_testing();
}
