/* http_parse.c - the HTTP/1.1 request parser (RFC 9110 / RFC 9112).
 *
 * Everything here is a byte-at-a-time state machine over caller-owned bytes:
 * no I/O, no allocation, no writable globals. Each input byte is looked at
 * exactly once across calls (r->pos remembers how far we got), so feeding a
 * request one byte at a time costs O(n) in total, and because every decision
 * is taken on the byte that triggers it, one-shot and incremental parsing
 * give the same answer and errors surface as early as the bytes allow.
 *
 * Private state of struct http_req while the head is incomplete:
 *   state       RS_* below
 *   pos         bytes of buf already scanned (every byte before it is valid)
 *   line_start  offset of the current line (request-line or field line)
 * Views (method, target, the field being read in headers[nheaders]) point
 * into buf, hence the contract "call again with the same buf".
 */
#include "http_parse.h"

#include <limits.h>
#include <stddef.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* character classes                                                   */

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA */
/* tchar (RFC 9110 5.6.2) as a table: it is asked for every byte of every
 * method and field name */
static const unsigned char tchar_tab[256] = {
    ['0' ... '9'] = 1, ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1,
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
};

int http_is_tchar(unsigned char c)
{
    return tchar_tab[c];
}

/* field-vchar / obs-text, plus SP and HTAB inside a value (RFC 9110 5.5) */
static int is_field_byte(unsigned char c)
{
    return c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
}

static int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static int mem_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

int http_str_ieq(struct http_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && (n == 0 || mem_ieq(s.p, lit, n));
}

/* Trim OWS at both ends of [*p, *p+*n). */
static void trim_ows(const char **p, size_t *n)
{
    while (*n > 0 && is_ows((unsigned char)(*p)[0])) { (*p)++; (*n)--; }
    while (*n > 0 && is_ows((unsigned char)(*p)[*n - 1])) (*n)--;
}

int http_list_has(struct http_str value, const char *token)
{
    const char *s = value.p, *end = value.p + value.len;
    if (value.len == 0) return 0;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *e = comma ? comma : end;
        struct http_str el = { s, (size_t)(e - s) };
        trim_ows(&el.p, &el.len);
        if (http_str_ieq(el, token)) return 1;
        if (!comma) break;
        s = comma + 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* host[:port] (RFC 3986 3.2.2/3.2.3)                                  */

static int is_regname_char(unsigned char c)
{
    /* unreserved / sub-delims (pct-encoded handled by the caller) */
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("-._~!$&'()*+,;=", c) != NULL;
}

/* Validate uri-host [":" port]. need_host: the host may not be empty
 * ("http" URIs, RFC 9110 4.2.1); need_port: ":" 1*DIGIT is required
 * (authority-form of CONNECT, RFC 9112 3.2.3). */
static int valid_host_port(const char *s, size_t n, int need_host, int need_port)
{
    size_t i = 0;
    if (n > 0 && s[0] == '[') {
        /* IP-literal: only IPv6 (hex, ':' and '.' for an embedded IPv4);
         * IPvFuture is not something a server needs to accept. */
        i = 1;
        while (i < n && s[i] != ']') {
            unsigned char c = (unsigned char)s[i];
            if (hexval(c) < 0 && c != ':' && c != '.') return 0;
            i++;
        }
        if (i >= n || i == 1) return 0;
        i++; /* ']' */
    } else {
        /* reg-name, which also covers IPv4address */
        while (i < n && s[i] != ':') {
            unsigned char c = (unsigned char)s[i];
            if (c == '%') {
                if (i + 2 >= n || hexval((unsigned char)s[i + 1]) < 0 ||
                    hexval((unsigned char)s[i + 2]) < 0)
                    return 0;
                i += 3;
                continue;
            }
            if (!is_regname_char(c)) return 0;
            i++;
        }
        if (i == 0 && need_host) return 0;
    }
    if (i == n) return !need_port;
    if (s[i] != ':') return 0;
    i++;
    if (i == n && need_port) return 0;
    for (; i < n; i++)
        if (!is_digit((unsigned char)s[i])) return 0;
    return 1;
}

/* ------------------------------------------------------------------ */
/* request head                                                        */

enum {
    RS_START = 0, /* before the request-line: empty lines are skipped */
    RS_START_LF,  /* CR of a leading empty line seen, LF must follow */
    RS_METHOD,
    RS_TARGET0,   /* first byte of the request-target */
    RS_TARGET,
    RS_VERSION,   /* "HTTP/" DIGIT "." DIGIT CR, position from the target end */
    RS_RL_LF,     /* CR after the version seen */
    RS_FIELD0,    /* start of a field line, or of the final empty line */
    RS_NAME,
    RS_OWS,       /* after ':', before the value */
    RS_VALUE,
    RS_FIELD_LF,  /* CR at the end of a field line seen */
    RS_END_LF,    /* CR of the empty line seen */
    RS_DONE,
    RS_BAD,
};

static const struct http_limits default_limits = { 8192, 65536, HTTP_MAX_HEADERS };

static int req_bad(struct http_req *r, int status, const char *why)
{
    r->state = RS_BAD;
    r->status = status;
    r->error = why;
    return HTTP_BAD;
}

void http_req_init(struct http_req *r)
{
    /* everything but the header array (3 KiB, filled before it is read):
     * this runs once per request */
    memset(r, 0, offsetof(struct http_req, headers));
    memset(&r->nheaders, 0, sizeof *r - offsetof(struct http_req, nheaders));
    r->state = RS_START;
    r->content_length = -1;
}

static enum http_method method_of(struct http_str m)
{
    static const struct { const char *name; enum http_method m; } tab[] = {
        { "GET", HTTP_M_GET },         { "HEAD", HTTP_M_HEAD },
        { "POST", HTTP_M_POST },       { "PUT", HTTP_M_PUT },
        { "DELETE", HTTP_M_DELETE },   { "OPTIONS", HTTP_M_OPTIONS },
        { "TRACE", HTTP_M_TRACE },     { "CONNECT", HTTP_M_CONNECT },
        { "PATCH", HTTP_M_PATCH },
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (m.len == strlen(tab[i].name) && memcmp(m.p, tab[i].name, m.len) == 0)
            return tab[i].m; /* method names are case-sensitive (RFC 9110 9.1) */
    return HTTP_M_OTHER;
}

/* Split "path[?query]" starting at p (end e) into r->path / r->query. */
static void split_query(struct http_req *r, const char *p, const char *e)
{
    const char *q = memchr(p, '?', (size_t)(e - p));
    if (q) {
        r->query.p = q + 1;
        r->query.len = (size_t)(e - q - 1);
        e = q;
    }
    if (p == e) { /* absolute-form without a path: "/" (RFC 9112 3.2.1) */
        r->path.p = "/";
        r->path.len = 1;
    } else {
        r->path.p = p;
        r->path.len = (size_t)(e - p);
    }
}

/* Decide the form of the complete target (RFC 9112 3.2) and split it. */
static int classify_target(struct http_req *r)
{
    const char *t = r->target.p, *end = t + r->target.len;
    size_t n = r->target.len;

    r->path.p = "";
    r->path.len = 0;
    r->query.p = NULL;
    r->query.len = 0;
    r->authority.p = "";
    r->authority.len = 0;

    if (r->m == HTTP_M_CONNECT) {
        /* CONNECT takes only authority-form: uri-host ":" port */
        if (!valid_host_port(t, n, 1, 1))
            return req_bad(r, 400, "CONNECT needs an authority-form target");
        r->target_form = HTTP_TF_AUTHORITY;
        return 0;
    }
    if (t[0] == '/') {
        r->target_form = HTTP_TF_ORIGIN;
        split_query(r, t, end);
        return 0;
    }
    if (n == 1 && t[0] == '*') {
        if (r->m != HTTP_M_OPTIONS) return req_bad(r, 400, "'*' target only with OPTIONS");
        r->target_form = HTTP_TF_ASTERISK;
        return 0;
    }
    size_t skip = 0;
    if (n >= 7 && mem_ieq(t, "http://", 7)) skip = 7;
    else if (n >= 8 && mem_ieq(t, "https://", 8)) skip = 8;
    if (skip == 0) return req_bad(r, 400, "bad request-target");

    const char *a = t + skip, *ae = a;
    while (ae < end && *ae != '/' && *ae != '?') ae++;
    if (ae == a) return req_bad(r, 400, "empty authority");
    if (memchr(a, '@', (size_t)(ae - a)))
        return req_bad(r, 400, "userinfo in authority");
    if (!valid_host_port(a, (size_t)(ae - a), 1, 0))
        return req_bad(r, 400, "bad authority");
    r->target_form = HTTP_TF_ABSOLUTE;
    r->authority.p = a;
    r->authority.len = (size_t)(ae - a);
    split_query(r, ae, end);
    return 0;
}

/* Content-Length = 1*DIGIT; no sign, no list, <= 18 digits so it fits.
 * The one parser for the field: requests here, and the responses of CGI
 * scripts, C apps and WSGI apps. */
int http_parse_content_length(const char *p, size_t len, int64_t *out)
{
    trim_ows(&p, &len);
    if (len == 0 || len > 18) return -1;
    int64_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit((unsigned char)p[i])) return -1;
        n = n * 10 + (p[i] - '0');
    }
    *out = n;
    return 0;
}

struct te_acc {
    int codings;  /* list elements seen */
    int chunked;  /* times "chunked" seen */
    int last_chunked;
    int other;    /* some other coding seen */
    int after;    /* a coding after chunked */
    int bad;      /* syntax error */
};

/* Walk one Transfer-Encoding field value: 1#transfer-coding, where
 * transfer-coding = token *( OWS ";" OWS transfer-parameter ). Parameters
 * are skipped; empty list elements are ignored (RFC 9110 5.6.1). */
static void te_scan(struct te_acc *acc, struct http_str v)
{
    const char *s = v.p, *end = v.p + v.len;
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *e = comma ? comma : end;
        const char *p = s;
        size_t n = (size_t)(e - s);
        trim_ows(&p, &n);
        if (n > 0) {
            size_t k = 0;
            while (k < n && http_is_tchar((unsigned char)p[k])) k++;
            struct http_str tok = { p, k };
            size_t j = k;
            while (j < n && is_ows((unsigned char)p[j])) j++;
            if (k == 0 || (j < n && p[j] != ';')) acc->bad = 1;
            acc->codings++;
            if (acc->chunked) acc->after = 1;
            if (http_str_ieq(tok, "chunked")) {
                acc->chunked++;
                acc->last_chunked = 1;
            } else {
                acc->other = 1;
                acc->last_chunked = 0;
            }
        }
        if (!comma) break;
        s = comma + 1;
    }
}

/* The head is complete: derive what the core needs (RFC 9112 6, 9.3). */
static int finish_head(struct http_req *r)
{
    const struct http_header *host = NULL;
    int nhost = 0, ncl = 0, nte = 0, close = 0, ka = 0;
    struct te_acc te = { 0, 0, 0, 0, 0, 0 };

    r->content_length = -1;
    r->chunked = 0;
    r->expect_continue = 0;

    for (size_t i = 0; i < r->nheaders; i++) {
        const struct http_header *h = &r->headers[i];
        if (http_str_ieq(h->name, "host")) {
            nhost++;
            host = h;
        } else if (http_str_ieq(h->name, "content-length")) {
            /* even identical duplicates are refused: no smuggling games */
            if (++ncl > 1) return req_bad(r, 400, "duplicate Content-Length");
            if (http_parse_content_length(h->value.p, h->value.len, &r->content_length) < 0)
                return req_bad(r, 400, "bad Content-Length");
        } else if (http_str_ieq(h->name, "transfer-encoding")) {
            nte++;
            te_scan(&te, h->value);
        } else if (http_str_ieq(h->name, "connection")) {
            close |= http_list_has(h->value, "close");
            ka |= http_list_has(h->value, "keep-alive");
        } else if (http_str_ieq(h->name, "expect")) {
            /* Only 100-continue means something; other expectations are
             * ignored (RFC 9110 10.1.1 allows 417, we keep it simple), and
             * so is 100-continue in HTTP/1.0 (MUST ignore). */
            if (r->version_minor == 1 && http_str_ieq(h->value, "100-continue"))
                r->expect_continue = 1;
        }
    }

    /* Host: RFC 9110 7.2 / RFC 9112 3.2 */
    if (nhost > 1) return req_bad(r, 400, "duplicate Host");
    if (nhost == 0 && r->version_minor == 1) return req_bad(r, 400, "missing Host");
    if (host && !valid_host_port(host->value.p, host->value.len, 0, 0))
        return req_bad(r, 400, "bad Host");
    if (r->target_form == HTTP_TF_ABSOLUTE)
        r->host = r->authority; /* RFC 9112 3.2.2: the target's authority wins */
    else if (host)
        r->host = host->value;
    else {
        r->host.p = "";
        r->host.len = 0;
    }

    /* Transfer-Encoding: RFC 9112 6.1, 6.3 */
    if (nte > 0) {
        if (ncl > 0) return req_bad(r, 400, "Transfer-Encoding with Content-Length");
        if (r->version_minor == 0) return req_bad(r, 400, "Transfer-Encoding in HTTP/1.0");
        if (te.bad || te.codings == 0) return req_bad(r, 400, "bad Transfer-Encoding");
        if (te.chunked > 1) return req_bad(r, 400, "chunked applied twice");
        if (!te.last_chunked) return req_bad(r, 400, "chunked is not the final coding");
        if (te.other) return req_bad(r, 501, "unsupported transfer coding");
        r->chunked = 1;
        r->content_length = -1;
    }

    /* persistence: RFC 9112 9.3 */
    if (r->version_minor == 1) r->keep_alive = !close;
    else r->keep_alive = ka && !close;
    return 0;
}

int http_parse_request(struct http_req *r, const char *buf, size_t len,
                       const struct http_limits *lim)
{
    if (r->state == RS_DONE) return (int)r->head_len;
    if (r->state == RS_BAD) return HTTP_BAD;
    if (!lim) lim = &default_limits;

    size_t max_line = lim->max_line;
    size_t max_head = lim->max_head > INT_MAX ? INT_MAX : lim->max_head;
    size_t max_hdrs = lim->max_headers < HTTP_MAX_HEADERS ? lim->max_headers
                                                          : HTTP_MAX_HEADERS;

    size_t stop_head = len < max_head ? len : max_head;
    for (size_t i = r->pos; i < len; i++) {
        /* Fast paths for the long runs (target, names, values): skip the
         * bytes that cannot change the state without the per-byte switch.
         * They stop before any limit, so the checks below still see the
         * byte that crosses one. */
        if (r->state == RS_TARGET) {
            size_t stop = r->line_start + max_line < stop_head ? r->line_start + max_line : stop_head;
            size_t j = i;
            while (j < stop && (unsigned char)buf[j] >= 0x21 && (unsigned char)buf[j] <= 0x7e &&
                   buf[j] != '#')
                j++;
            if (j > i) {
                i = j - 1;
                continue;
            }
        } else if (r->state == RS_NAME) {
            size_t j = i;
            while (j < stop_head && http_is_tchar((unsigned char)buf[j]))
                j++;
            if (j > i) {
                i = j - 1;
                continue;
            }
        } else if (r->state == RS_VALUE) {
            struct http_header *h = &r->headers[r->nheaders];
            size_t j = i, last = 0;
            while (j < stop_head) {
                unsigned char v = (unsigned char)buf[j];
                if (v >= 0x21 && v != 0x7f)
                    last = j + 1; /* visible (obs-text included) */
                else if (v != ' ' && v != '\t')
                    break;
                j++;
            }
            if (j > i) {
                if (last)
                    h->value.len = (size_t)(buf + last - h->value.p);
                i = j - 1;
                continue;
            }
        }
        unsigned char c = (unsigned char)buf[i];

        /* Limits first, on the byte that would cross them, so a client that
         * never sends CRLF cannot make us wait forever. */
        if (r->state >= RS_METHOD && r->state <= RS_VERSION && c != '\r' &&
            i - r->line_start >= max_line)
            return req_bad(r, 414, "request-line too long");
        if (i >= max_head) return req_bad(r, 431, "head too large");

        switch (r->state) {
        case RS_START:
            if (c == '\r') {
                r->state = RS_START_LF;
            } else if (http_is_tchar(c)) {
                r->line_start = i;
                r->method.p = buf + i;
                r->state = RS_METHOD;
            } else {
                return req_bad(r, 400, c == '\n' ? "bare LF" : "bad method");
            }
            break;

        case RS_START_LF:
            if (c != '\n') return req_bad(r, 400, "bare CR");
            r->state = RS_START;
            break;

        case RS_METHOD:
            if (c == ' ') {
                r->method.len = (size_t)(buf + i - r->method.p);
                r->m = method_of(r->method);
                r->state = RS_TARGET0;
            } else if (!http_is_tchar(c)) {
                return req_bad(r, 400, "bad method");
            }
            break;

        case RS_TARGET0:
        case RS_TARGET:
            /* visible ASCII; no '#': a fragment is never part of a
             * request-target (RFC 9112 3.2), and dropping it silently
             * would let two parsers see different paths */
            if (c >= 0x21 && c <= 0x7e && c != '#') {
                if (r->state == RS_TARGET0) {
                    r->target.p = buf + i;
                    r->state = RS_TARGET;
                }
            } else if (c == ' ' && r->state == RS_TARGET) {
                r->target.len = (size_t)(buf + i - r->target.p);
                if (classify_target(r) < 0) return HTTP_BAD;
                r->state = RS_VERSION;
            } else {
                return req_bad(r, 400, "bad request-target");
            }
            break;

        case RS_VERSION: {
            /* exactly "HTTP/" DIGIT "." DIGIT, then CR */
            size_t k = i - (size_t)(r->target.p + r->target.len + 1 - buf);
            if (k < 5) {
                if (c != (unsigned char)"HTTP/"[k]) return req_bad(r, 400, "bad HTTP-version");
            } else if (k == 5 || k == 7) {
                if (!is_digit(c)) return req_bad(r, 400, "bad HTTP-version");
            } else if (k == 6) {
                if (c != '.') return req_bad(r, 400, "bad HTTP-version");
            } else {
                if (c != '\r') return req_bad(r, 400, "bad HTTP-version");
                if (buf[i - 3] != '1') return req_bad(r, 505, "HTTP version not supported");
                r->version_minor = buf[i - 1] == '0' ? 0 : 1; /* 1.x, x>1: as 1.1 */
                r->state = RS_RL_LF;
            }
            break;
        }

        case RS_RL_LF:
        case RS_FIELD_LF:
            if (c != '\n') return req_bad(r, 400, "bare CR");
            if (r->state == RS_FIELD_LF) r->nheaders++;
            r->line_start = i + 1;
            r->state = RS_FIELD0;
            break;

        case RS_FIELD0:
            if (c == '\r') {
                r->state = RS_END_LF;
            } else if (http_is_tchar(c)) {
                if (r->nheaders >= max_hdrs) return req_bad(r, 431, "too many header fields");
                r->headers[r->nheaders].name.p = buf + i;
                r->state = RS_NAME;
            } else if (is_ows(c)) {
                /* obs-fold, or whitespace before the first field (RFC 9112 2.2, 5.2) */
                return req_bad(r, 400, "obs-fold or leading whitespace");
            } else {
                return req_bad(r, 400, c == '\n' ? "bare LF" : "bad field name");
            }
            break;

        case RS_NAME:
            if (c == ':') {
                struct http_header *h = &r->headers[r->nheaders];
                h->name.len = (size_t)(buf + i - h->name.p);
                r->state = RS_OWS;
            } else if (is_ows(c)) {
                return req_bad(r, 400, "whitespace before ':'"); /* RFC 9112 5.1 */
            } else if (!http_is_tchar(c)) {
                return req_bad(r, 400, c == '\n' ? "bare LF" : "bad field name");
            }
            break;

        case RS_OWS:
        case RS_VALUE: {
            struct http_header *h = &r->headers[r->nheaders];
            if (c == '\r') {
                if (r->state == RS_OWS) {
                    h->value.p = buf + i; /* empty value */
                    h->value.len = 0;
                }
                r->state = RS_FIELD_LF;
            } else if (is_ows(c)) {
                /* leading OWS skipped; inner/trailing OWS not counted until
                 * a visible byte follows */
            } else if (is_field_byte(c)) {
                if (r->state == RS_OWS) {
                    h->value.p = buf + i;
                    r->state = RS_VALUE;
                }
                h->value.len = (size_t)(buf + i + 1 - h->value.p);
            } else {
                return req_bad(r, 400, c == '\n' ? "bare LF" : "CTL in field value");
            }
            break;
        }

        case RS_END_LF:
            if (c != '\n') return req_bad(r, 400, "bare CR");
            r->head_len = i + 1;
            r->pos = i + 1;
            if (finish_head(r) < 0) return HTTP_BAD;
            r->state = RS_DONE;
            return (int)r->head_len;

        default:
            return req_bad(r, 400, "parser state");
        }
    }
    r->pos = len;
    return HTTP_AGAIN;
}

const struct http_header *http_req_header(const struct http_req *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (http_str_ieq(r->headers[i].name, name)) return &r->headers[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* chunked transfer coding (RFC 9112 7.1)                              */

#define CHUNK_LINE_MAX 4096    /* chunk-size line with extensions, trailer line */
#define CHUNK_TRAILERS_MAX 8192

enum {
    CS_SIZE0 = 0,  /* first hex digit of chunk-size */
    CS_SIZE,       /* more hex digits */
    CS_EXT_WS,     /* BWS that must lead to ';' */
    CS_EXT_NAME0,  /* after ';': BWS then the extension name */
    CS_EXT_NAME,
    CS_EXT_NAME_WS,/* BWS after a name: '=' or ';' must follow */
    CS_EXT_VAL0,   /* after '=': BWS then token or quoted-string */
    CS_EXT_TOKEN,
    CS_EXT_QS,
    CS_EXT_QS_ESC,
    CS_EXT_QS_END, /* after the closing quote */
    CS_SIZE_LF,    /* CR of the size line seen */
    CS_DATA,
    CS_DATA_CR,    /* chunk data done: CR LF must follow */
    CS_DATA_LF,
    CS_TR0,        /* start of a trailer line or of the final empty line */
    CS_TR_NAME,
    CS_TR_VALUE,   /* after ':' (OWS and value alike) */
    CS_TR_LF,
    CS_END_LF,
    CS_DONE,
    CS_BAD,
};

void http_chunked_init(struct http_chunked *d)
{
    memset(d, 0, sizeof *d);
    d->state = CS_SIZE0;
}

static int chunk_bad(struct http_chunked *d, size_t *len, const char *why)
{
    d->state = CS_BAD;
    d->status = 400;
    d->error = why;
    *len = 0;
    return HTTP_BAD;
}

int http_chunked_decode(struct http_chunked *d, char *buf, size_t *len)
{
    size_t n = *len, i = 0, out = 0;

    if (d->state == CS_BAD) return chunk_bad(d, len, d->error);
    if (d->state == CS_DONE) { /* everything is after the body */
        *len = 0;
        return n > INT_MAX ? INT_MAX : (int)n;
    }

    while (i < n) {
        unsigned char c = (unsigned char)buf[i];

        if (d->state == CS_DATA) {
            /* the only state that consumes more than one byte per step */
            size_t take = n - i;
            if (take > d->remaining) take = (size_t)d->remaining;
            memmove(buf + out, buf + i, take);
            out += take;
            i += take;
            d->remaining -= take;
            if (d->remaining == 0) d->state = CS_DATA_CR;
            continue;
        }

        /* line caps: every byte of a size line or trailer line but its CR */
        if (d->state <= CS_EXT_QS_END && c != '\r') {
            if (++d->line_len > CHUNK_LINE_MAX) return chunk_bad(d, len, "chunk-size line too long");
        } else if (d->state >= CS_TR0 && d->state <= CS_TR_LF && !(d->state == CS_TR0 && c == '\r')) {
            if (c != '\r' && c != '\n' && ++d->line_len > CHUNK_LINE_MAX)
                return chunk_bad(d, len, "trailer line too long");
            if (++d->trailer_len > CHUNK_TRAILERS_MAX)
                return chunk_bad(d, len, "trailers too large");
        }

        switch (d->state) {
        case CS_SIZE0:
        case CS_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                if (d->remaining > (uint64_t)(INT64_MAX - v) / 16)
                    return chunk_bad(d, len, "chunk-size overflow");
                d->remaining = d->remaining * 16 + (uint64_t)v;
                d->state = CS_SIZE;
            } else if (d->state == CS_SIZE0) {
                return chunk_bad(d, len, "bad chunk-size");
            } else if (c == '\r') {
                d->state = CS_SIZE_LF;
            } else if (c == ';') {
                d->state = CS_EXT_NAME0;
            } else if (is_ows(c)) {
                d->state = CS_EXT_WS;
            } else {
                return chunk_bad(d, len, "bad chunk-size");
            }
            break;
        }

        case CS_EXT_WS:
            if (c == ';') d->state = CS_EXT_NAME0;
            else if (!is_ows(c)) return chunk_bad(d, len, "bad chunk extension");
            break;

        case CS_EXT_NAME0:
            if (http_is_tchar(c)) d->state = CS_EXT_NAME;
            else if (!is_ows(c)) return chunk_bad(d, len, "bad chunk extension");
            break;

        case CS_EXT_NAME:
        case CS_EXT_NAME_WS:
            if (c == '=') d->state = CS_EXT_VAL0;
            else if (c == ';') d->state = CS_EXT_NAME0;
            else if (is_ows(c)) d->state = CS_EXT_NAME_WS;
            else if (c == '\r' && d->state == CS_EXT_NAME) d->state = CS_SIZE_LF;
            else if (!(http_is_tchar(c) && d->state == CS_EXT_NAME))
                return chunk_bad(d, len, "bad chunk extension");
            break;

        case CS_EXT_VAL0:
            if (c == '"') d->state = CS_EXT_QS;
            else if (http_is_tchar(c)) d->state = CS_EXT_TOKEN;
            else if (!is_ows(c)) return chunk_bad(d, len, "bad chunk extension");
            break;

        case CS_EXT_TOKEN:
        case CS_EXT_QS_END:
            if (c == '\r') d->state = CS_SIZE_LF;
            else if (c == ';') d->state = CS_EXT_NAME0;
            else if (is_ows(c)) d->state = CS_EXT_WS;
            else if (!(http_is_tchar(c) && d->state == CS_EXT_TOKEN))
                return chunk_bad(d, len, "bad chunk extension");
            break;

        case CS_EXT_QS:
            /* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
            if (c == '"') d->state = CS_EXT_QS_END;
            else if (c == '\\') d->state = CS_EXT_QS_ESC;
            else if (!is_field_byte(c)) return chunk_bad(d, len, "bad quoted-string");
            break;

        case CS_EXT_QS_ESC:
            if (!is_field_byte(c)) return chunk_bad(d, len, "bad quoted-pair");
            d->state = CS_EXT_QS;
            break;

        case CS_SIZE_LF:
            if (c != '\n') return chunk_bad(d, len, "bare CR");
            d->line_len = 0;
            d->state = d->remaining == 0 ? CS_TR0 : CS_DATA; /* 0: last-chunk */
            break;

        case CS_DATA_CR:
            if (c != '\r') return chunk_bad(d, len, "no CRLF after chunk data");
            d->state = CS_DATA_LF;
            break;

        case CS_DATA_LF:
            if (c != '\n') return chunk_bad(d, len, "no CRLF after chunk data");
            d->line_len = 0;
            d->state = CS_SIZE0;
            break;

        case CS_TR0:
            if (c == '\r') d->state = CS_END_LF;
            else if (http_is_tchar(c)) d->state = CS_TR_NAME;
            else return chunk_bad(d, len, c == '\n' ? "bare LF" : "bad trailer field");
            break;

        case CS_TR_NAME:
            if (c == ':') d->state = CS_TR_VALUE;
            else if (!http_is_tchar(c)) return chunk_bad(d, len, "bad trailer field");
            break;

        case CS_TR_VALUE:
            if (c == '\r') d->state = CS_TR_LF;
            else if (!is_field_byte(c)) return chunk_bad(d, len, "bad trailer field");
            break;

        case CS_TR_LF:
            if (c != '\n') return chunk_bad(d, len, "bare CR");
            d->line_len = 0;
            d->state = CS_TR0;
            break;

        case CS_END_LF: {
            if (c != '\n') return chunk_bad(d, len, "bare CR");
            size_t rest = n - (i + 1);
            memmove(buf + out, buf + i + 1, rest);
            *len = out;
            d->state = CS_DONE;
            return rest > INT_MAX ? INT_MAX : (int)rest;
        }

        default:
            return chunk_bad(d, len, "decoder state");
        }
        i++;
    }
    *len = out;
    return HTTP_AGAIN;
}

/* ------------------------------------------------------------------ */
/* Range (RFC 9110 14.1.1, 14.1.2)                                     */

/* 1*DIGIT into *v; returns the digits consumed, 0 if none, -1 on overflow. */
static int parse_u64(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t n = 0;
    while (s < end && is_digit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (n > (UINT64_MAX - d) / 10) return -1;
        n = n * 10 + d;
        s++;
    }
    int got = s != *p;
    *p = s;
    *v = n;
    return got;
}

int http_parse_range(const char *v, size_t len, uint64_t size,
                     uint64_t *first, uint64_t *last)
{
    const char *p = v, *end = v + len;
    uint64_t a = 0, b = 0;
    int suffix = 0, open = 0;

    if (len < 6 || !mem_ieq(p, "bytes=", 6)) return 0;
    p += 6;
    if (memchr(p, ',', (size_t)(end - p))) return 0; /* several ranges: whole */
    while (p < end && is_ows((unsigned char)*p)) p++;
    while (end > p && is_ows((unsigned char)end[-1])) end--;

    if (p < end && *p == '-') { /* suffix-range */
        p++;
        suffix = 1;
        if (parse_u64(&p, end, &b) <= 0) return 0;
    } else {
        if (parse_u64(&p, end, &a) <= 0) return 0;
        if (p >= end || *p != '-') return 0;
        p++;
        if (p == end) open = 1;
        else if (parse_u64(&p, end, &b) <= 0) return 0;
    }
    if (p != end) return 0;

    if (suffix) {
        if (b == 0 || size == 0) return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (!open && b < a) return 0; /* invalid range-spec: ignore the field */
    if (a >= size) return -1;
    *first = a;
    *last = (open || b >= size) ? size - 1 : b;
    return 1;
}

/* One range-spec [p, end) (OWS trimmed) against size: 1 satisfiable
 * (*first..*last), -1 unsatisfiable, 0 invalid. */
static int range_spec(const char *p, const char *end, uint64_t size,
                      uint64_t *first, uint64_t *last)
{
    uint64_t a = 0, b = 0;
    if (p < end && *p == '-') { /* suffix-range: the last b bytes */
        p++;
        if (parse_u64(&p, end, &b) <= 0 || p != end) return 0;
        if (b == 0 || size == 0) return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    int open = 0;
    if (parse_u64(&p, end, &a) <= 0 || p >= end || *p != '-') return 0;
    p++;
    if (p == end) open = 1;
    else if (parse_u64(&p, end, &b) <= 0 || p != end) return 0;
    if (!open && b < a) return 0;
    if (a >= size) return -1;
    *first = a;
    *last = (open || b >= size) ? size - 1 : b;
    return 1;
}

int http_parse_ranges(const char *v, size_t len, uint64_t size,
                      struct http_range *out, int max)
{
    const char *p = v, *end = v + len;
    int n = 0, specs = 0;

    if (len < 6 || !mem_ieq(p, "bytes=", 6)) return 0;
    p += 6;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end, *s = p;
        p = comma ? comma + 1 : end;
        while (s < e && is_ows((unsigned char)*s)) s++;
        const char *t = e;
        while (t > s && is_ows((unsigned char)t[-1])) t--;
        if (s == t) continue; /* an empty list element (RFC 9110 5.6.1) */
        if (++specs > max) return 0; /* too many: the whole representation */
        uint64_t f, l;
        int r = range_spec(s, t, size, &f, &l);
        if (r == 0) return 0; /* one invalid spec invalidates the field */
        if (r < 0) continue;  /* unsatisfiable: left out */
        for (int i = 0; i < n; i++) /* overlap with an earlier one: whole */
            if (f <= out[i].last && out[i].first <= l) return 0;
        out[n].first = f;
        out[n].last = l;
        n++;
    }
    if (specs == 0) return 0;
    return n ? n : -1;
}

/* ------------------------------------------------------------------ */
/* path normalisation                                                  */

/* Validate and measure one raw segment [s, e): decoded length in *dlen,
 * and whether it decodes to "." or "..". Returns -1 on a bad escape,
 * NUL or encoded '/'. */
static int seg_scan(const char *s, const char *e, size_t *dlen, int *dots)
{
    size_t n = 0;
    int all_dots = 1;
    while (s < e) {
        unsigned char c = (unsigned char)*s;
        if (c == '%') {
            int h, l;
            if (e - s < 3 || (h = hexval((unsigned char)s[1])) < 0 ||
                (l = hexval((unsigned char)s[2])) < 0)
                return -1;
            c = (unsigned char)(h * 16 + l);
            if (c == '/') return -1; /* %2F: ambiguous with a separator */
            s += 3;
        } else {
            s++;
        }
        if (c == '\0') return -1;
        if (c != '.') all_dots = 0;
        n++;
    }
    *dlen = n;
    *dots = (all_dots && (n == 1 || n == 2)) ? (int)n : 0;
    return 0;
}

int http_normalize_path(const char *in, size_t len, char *out, size_t outsz)
{
    const char *p = in, *end = in + len;
    size_t o = 0;      /* output length; out[0..o) is "/seg/seg" or empty */
    int slash_end = 0; /* the result must end in '/' */
    size_t spill = 0;  /* segments that did not fit, stacked above out[] */

    if (outsz > (size_t)INT_MAX) outsz = (size_t)INT_MAX;
    if (len == 0 || in[0] != '/' || outsz < 2) return HTTP_BAD;

    while (p < end) {
        /* p is at a '/', the segment runs to the next '/' or the end */
        const char *s = p + 1;
        const char *e = memchr(s, '/', (size_t)(end - s));
        if (!e) e = end;
        size_t dlen;
        int dots;
        if (seg_scan(s, e, &dlen, &dots) < 0) return HTTP_BAD;
        slash_end = 0;
        if (dlen == 0) {
            slash_end = 1; /* "//" collapses; a final "/" stays */
        } else if (dots == 1) {
            slash_end = 1; /* "/a/." is the directory "/a/" */
        } else if (dots == 2) {
            if (spill > 0) {
                spill--;
            } else {
                if (o == 0) return HTTP_BAD; /* above the root */
                while (o > 0 && out[o - 1] != '/') o--;
                o--; /* drop the '/' too: out holds "/seg..." or nothing */
            }
            slash_end = 1;
        } else if (spill > 0 || o + 1 + dlen + 1 > outsz) {
            spill++; /* does not fit (yet): a later ".." may still remove it */
        } else {
            out[o++] = '/';
            while (s < e) {
                if (*s == '%') {
                    out[o++] = (char)(hexval((unsigned char)s[1]) * 16 + hexval((unsigned char)s[2]));
                    s += 3;
                } else {
                    out[o++] = *s++;
                }
            }
        }
        p = e;
    }
    if (spill > 0) return HTTP_BAD; /* the result is longer than outsz-1 */
    if (o == 0 || slash_end) {
        if (o + 2 > outsz) return HTTP_BAD;
        out[o++] = '/';
    }
    out[o] = '\0';
    return (int)o;
}
