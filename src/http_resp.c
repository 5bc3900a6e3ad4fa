/* http_resp.c - status table, response head, error bodies, the Date cache. */
#include "http_resp.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

const char *http_reason(int s)
{
    switch (s) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: break;
    }
    switch (s / 100) {
    case 1: return "Informational";
    case 2: return "Success";
    case 3: return "Redirection";
    case 4: return "Client Error";
    default: return "Server Error";
    }
}

static const char mon[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static int month_index(const char *m)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(m, mon[i], 3) == 0)
            return i;
    return -1;
}

int http_date_parse(const char *s, size_t len, time_t *out)
{
    char buf[64], mname[4] = {0}, wname[16];
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int n = 0;
    /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
    if (sscanf(buf, "%3s, %2d %3s %4d %2d:%2d:%2d GMT%n", wname, &tm.tm_mday, mname,
               &tm.tm_year, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) == 7 && n == (int)len) {
    /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
    } else if (sscanf(buf, "%15[A-Za-z], %2d-%3s-%2d %2d:%2d:%2d GMT%n", wname, &tm.tm_mday,
                      mname, &tm.tm_year, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) == 7 &&
               n == (int)len) {
        tm.tm_year += tm.tm_year < 70 ? 2000 : 1900;
    /* asctime: Sun Nov  6 08:49:37 1994 */
    } else if (sscanf(buf, "%3s %3s %2d %2d:%2d:%2d %4d%n", wname, mname, &tm.tm_mday,
                      &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &tm.tm_year, &n) == 7 &&
               n == (int)len) {
    } else {
        return -1;
    }
    tm.tm_mon = month_index(mname);
    if (tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 1900)
        return -1;
    tm.tm_year -= 1900;
    *out = timegm(&tm);
    return 0;
}

int http_status_has_body(int status)
{
    return !(status < 200 || status == 204 || status == 304);
}

/* The head is built with memcpy, not snprintf: this runs once per response. */
struct obuf {
    char *p;
    size_t len, cap;
    int full;
};

static void put(struct obuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->full = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define PUTS(b, lit) put((b), (lit), sizeof(lit) - 1)

static void put_u64(struct obuf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(b, tmp + i, sizeof tmp - i);
}

size_t http_build_head(const struct response *r, int keep_alive, int http10, int chunked,
                       char *out, size_t cap)
{
    struct obuf b = {out, 0, cap, 0};
    const char *reason = http_reason(r->status);
    PUTS(&b, "HTTP/1.1 ");
    put_u64(&b, (uint64_t)r->status);
    PUTS(&b, " ");
    put(&b, reason, strlen(reason));
    PUTS(&b, "\r\nServer: " FH_SERVER "\r\nDate: ");
    put(&b, http_date_now(), 29);
    PUTS(&b, "\r\n");
    if (r->content_type) {
        PUTS(&b, "Content-Type: ");
        put(&b, r->content_type, strlen(r->content_type));
        PUTS(&b, "\r\n");
    }
    if (chunked) {
        PUTS(&b, "Transfer-Encoding: chunked\r\n");
    } else if (r->length >= 0 && http_status_has_body(r->status)) {
        PUTS(&b, "Content-Length: ");
        put_u64(&b, (uint64_t)r->length);
        PUTS(&b, "\r\n");
    }
    put(&b, r->hdr, r->hdr_len);
    if (!keep_alive)
        PUTS(&b, "Connection: close\r\n");
    else if (http10)
        PUTS(&b, "Connection: keep-alive\r\n");
    PUTS(&b, "\r\n");
    return b.full ? 0 : b.len;
}

/* ---- response helpers ---- */

void resp_init(struct response *r)
{
    r->status = 200;
    r->content_type = NULL;
    r->length = 0;
    r->body = BODY_NONE;
    r->mem = NULL;
    r->mem_free = NULL;
    r->mem_pin = NULL;
    r->fd = -1;
    r->off = 0;
    memset(&r->stream, 0, sizeof r->stream);
    r->hdr_len = 0;
    r->close = 0;
    /* the exchange is reused (and malloc'd, not zeroed): a deferred head left
     * from an earlier CGI response must not be taken for this one's */
    memset(&r->deferred, 0, sizeof r->deferred);
    r->timeout_ms = 0;
}

void resp_release(struct response *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    if (r->mem_free) /* (free(NULL) would fault free's page into a fork child) */
        free(r->mem_free);
    r->mem_free = NULL;
    blob_unref(r->mem_pin);
    r->mem_pin = NULL;
    r->mem = NULL;
    if (r->body == BODY_STREAM && r->stream.close)
        r->stream.close(r->stream.ctx);
    r->stream.close = NULL;
    r->body = BODY_NONE;
}

void resp_header(struct response *r, const char *name, const char *fmt, ...)
{
    size_t cap = sizeof r->hdr - r->hdr_len;
    int n = snprintf(r->hdr + r->hdr_len, cap, "%s: ", name);
    if (n < 0 || (size_t)n >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(r->hdr + r->hdr_len + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0 || (size_t)(n + m + 2) >= cap)
        return;
    memcpy(r->hdr + r->hdr_len + n + m, "\r\n", 2);
    r->hdr_len += (size_t)(n + m + 2);
}

void resp_mem(struct response *r, int status, const char *type, const char *body, size_t len)
{
    r->status = status;
    r->content_type = type;
    r->body = BODY_MEM;
    r->mem = body;
    r->length = (int64_t)len;
}

void resp_pinned(struct response *r, int status, const char *type, struct blob *b, size_t off,
                 size_t len)
{
    r->status = status;
    r->content_type = type;
    r->body = BODY_MEM;
    r->mem_pin = blob_ref(b);
    r->mem = b->data + off;
    r->length = (int64_t)len;
}

/* Error pages are built once per status into a static table with a slot for
 * every status code: a page, once built, never changes, so a response that
 * borrows it (and waits to be sent) can never see another status's bytes. */
#define ERR_FIRST 100
#define ERR_LAST 599
void resp_error(struct response *r, int status)
{
    static struct {
        unsigned char len;
        char body[160];
    } cache[ERR_LAST - ERR_FIRST + 1];
    _Static_assert(sizeof cache[0].body <= 255, "len is one byte");
    if (status < ERR_FIRST || status > ERR_LAST)
        status = 500;
    size_t i = (size_t)(status - ERR_FIRST);
    if (!cache[i].len) {
        const char *reason = http_reason(status);
        int n = snprintf(cache[i].body, sizeof cache[i].body,
                         "<html><head><title>%d %s</title></head>"
                         "<body><h1>%d %s</h1></body></html>\n",
                         status, reason, status, reason);
        cache[i].len = (unsigned char)((size_t)n < sizeof cache[i].body ? (size_t)n
                                                                       : sizeof cache[i].body - 1);
    }
    resp_release(r);
    r->hdr_len = 0;
    resp_mem(r, status, "text/html; charset=utf-8", cache[i].body, cache[i].len);
}

/* ---- pinned blocks ---- */

struct blob *blob_new(size_t len)
{
    struct blob *b = malloc(sizeof *b + (len ? len : 1));
    if (!b)
        return NULL;
    b->refs = 1;
    b->len = len;
    return b;
}

struct blob *blob_ref(struct blob *b)
{
    b->refs++;
    return b;
}

void blob_unref(struct blob *b)
{
    if (b && --b->refs == 0)
        free(b);
}
