/* cgi_head.c - validate a CGI script's header block and turn it into the
 * response's status, length and header lines. Pure: no I/O, no allocation.
 * Strict on purpose: whatever a script writes is passed to a client, so a
 * field that could split the response or contradict its framing is a 502. */
#include <string.h>

#include "cgi_head.h"
#include "http_parse.h"
#include "owned_hdr.h"

size_t cgi_head_end(const char *buf, size_t len, size_t *scan)
{
    while (*scan < len) {
        const char *lf = memchr(buf + *scan, '\n', len - *scan);
        if (!lf)
            return 0;
        size_t n = (size_t)(lf - (buf + *scan));
        if (n == 0 || (n == 1 && buf[*scan] == '\r'))
            return *scan + n + 1;
        *scan += n + 1;
    }
    return 0;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* "NNN" or "NNN reason", NNN a final status (1xx cannot end an exchange) */
static int parse_status(const char *v, size_t n)
{
    if (n < 3 || (n > 3 && v[3] != ' '))
        return -1;
    int s = 0;
    for (int i = 0; i < 3; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        s = s * 10 + (v[i] - '0');
    }
    return s >= 200 && s <= 599 ? s : -1;
}

/* Append "Name: value\r\n"; -1 when it does not fit: a dropped Set-Cookie or
 * Location must not go unnoticed. */
static int hdr_put(char *hdr, size_t cap, size_t *at, const char *name, size_t nl,
                   const char *v, size_t vl)
{
    if (*at + nl + 2 + vl + 2 >= cap)
        return -1;
    char *p = hdr + *at;
    memcpy(p, name, nl);
    memcpy(p + nl, ": ", 2);
    memcpy(p + nl + 2, v, vl);
    memcpy(p + nl + 2 + vl, "\r\n", 2);
    *at += nl + 2 + vl + 2;
    return 0;
}

static int bad(struct cgi_head *h, const char *why)
{
    h->why = why;
    return -1;
}

int cgi_head_parse(const char *buf, size_t end, struct cgi_head *h, char *hdr, size_t cap,
                   size_t *hdr_len)
{
    int status = 0, nfields = 0;
    const char *loc = NULL, *ctype = NULL;
    size_t loc_len = 0, ctype_len = 0;
    int64_t clen = -1;

    h->status = 0;
    h->length = -1;
    h->why = NULL;
    h->dropped = 0;
    size_t pos = 0;
    for (;;) {
        const char *line = buf + pos;
        const char *lf = pos < end ? memchr(line, '\n', end - pos) : NULL;
        if (!lf)
            return bad(h, "a header block without its empty line");
        size_t n = (size_t)(lf - line);
        pos += n + 1;
        if (n && line[n - 1] == '\r')
            n--;
        if (n == 0)
            break; /* the empty line */
        const char *colon = memchr(line, ':', n);
        if (!colon || colon == line)
            return bad(h, "a header line without a field name");
        size_t nl = (size_t)(colon - line);
        for (size_t i = 0; i < nl; i++)
            if (!http_is_tchar((unsigned char)line[i]))
                return bad(h, "a bad header field name");
        const char *v = colon + 1;
        const char *ve = line + n;
        while (v < ve && is_ows(*v))
            v++;
        while (ve > v && is_ows(ve[-1]))
            ve--;
        for (const char *p = v; p < ve; p++)
            if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
                return bad(h, "a control character in a header value");
        size_t vl = (size_t)(ve - v);
        struct http_str fname = {line, nl};
        nfields++;
        if (http_str_ieq(fname, "Status")) {
            if (status || (status = parse_status(v, vl)) < 0)
                return bad(h, "a bad Status field");
        } else if (http_str_ieq(fname, "Location")) {
            if (loc || vl == 0)
                return bad(h, "a bad Location field");
            loc = v;
            loc_len = vl;
        } else if (http_str_ieq(fname, "Content-Type")) {
            if (ctype)
                return bad(h, "two Content-Type fields");
            ctype = v;
            ctype_len = vl;
        } else if (http_str_ieq(fname, "Content-Length")) {
            int64_t x = 0;
            if (http_parse_content_length(v, vl, &x) < 0)
                return bad(h, "a bad Content-Length field");
            if (clen >= 0 && clen != x)
                return bad(h, "two different Content-Length fields");
            clen = x;
        } else {
            /* the fields the core writes itself (owned_hdr.c): dropped, and
             * noted for h_cgi.c's log line */
            int owned = owned_hdr_find(line, nl);
            if (owned >= 0)
                h->dropped |= 1u << owned;
            else if (hdr_put(hdr, cap, hdr_len, line, nl, v, vl) < 0)
                return bad(h, "header fields too large to pass on");
        }
    }
    if (nfields == 0)
        return bad(h, "an empty header block");

    if (loc) {
        /* A local redirect (RFC 3875 6.2.2: "Location: /path", nothing else)
         * is answered as a 302 to that path and the client fetches it: the
         * same for every mount, and no re-entry into the router from inside
         * a handler. A client redirect (an absolute URI) is a 302 too, unless
         * the script set a Status (RFC 3875 6.2.4). */
        if (!status)
            status = 302;
        if (hdr_put(hdr, cap, hdr_len, "Location", 8, loc, loc_len) < 0)
            return bad(h, "a Location too long to pass on");
    }
    if (ctype && hdr_put(hdr, cap, hdr_len, "Content-Type", 12, ctype, ctype_len) < 0)
        return bad(h, "a Content-Type too long to pass on");
    h->status = status ? status : 200;
    h->length = clen;
    return 0;
}
