/* http_parse.h - the HTTP/1.1 request parser (RFC 9110 / RFC 9112).
 *
 * Pure functions over caller-owned bytes: no I/O, no malloc, no globals.
 * Every parsed string is a (ptr,len) view into the caller's buffer, valid as
 * long as the caller neither moves nor overwrites those bytes.
 *
 * Return convention (picohttpparser's, nginx's NGX_AGAIN):
 *   >= 0         done (meaning given per function)
 *   HTTP_AGAIN   the input is a valid prefix; call again with more bytes
 *   HTTP_BAD     malformed; the HTTP status to answer is in the state's .status
 */
#ifndef FH_HTTP_PARSE_H
#define FH_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_AGAIN (-2)
#define HTTP_BAD (-1)

#define HTTP_MAX_HEADERS 100 /* more header fields -> 431 */

/* Methods we know. An unknown but well-formed method token is HTTP_M_OTHER
 * (the core answers 501); a malformed one is a 400. */
enum http_method {
    HTTP_M_OTHER = 0,
    HTTP_M_GET,
    HTTP_M_HEAD,
    HTTP_M_POST,
    HTTP_M_PUT,
    HTTP_M_DELETE,
    HTTP_M_OPTIONS,
    HTTP_M_TRACE,
    HTTP_M_CONNECT,
    HTTP_M_PATCH,
};

struct http_str {
    const char *p;
    size_t len;
};

struct http_header {
    struct http_str name;  /* token, as received (case kept) */
    struct http_str value; /* leading/trailing OWS removed */
};

/* Limits the parser enforces; the caller fills them (config) before parsing. */
struct http_limits {
    size_t max_line;    /* request-line longer than this -> 414 */
    size_t max_head;    /* whole head (request-line + fields + CRLF) -> 431 */
    size_t max_headers; /* number of fields, <= HTTP_MAX_HEADERS -> 431 */
};

/* The parsed request head. Zero it (http_req_init) before the first call. */
struct http_req {
    /* --- parser state: private --- */
    int state;
    size_t pos;  /* bytes of buf fully parsed (complete lines) */
    size_t line_start;

    /* --- result --- */
    int status;  /* on HTTP_BAD: 400, 414, 431, 501 or 505 */
    const char *error; /* on HTTP_BAD: a short static reason, for logs */

    struct http_str method;
    enum http_method m;
    struct http_str target;   /* raw request-target as received */
    struct http_str path;     /* origin-form path ("/..."), still percent-encoded;
                                 for absolute-form the path part ("/" if empty);
                                 empty for "*" and authority-form */
    struct http_str query;    /* after '?', without it; p==NULL if no '?' */
    struct http_str authority;/* host[:port] of an absolute-form target, else empty */
    int target_form;          /* HTTP_TF_* */
    int version_minor;        /* 0 or 1 (1.x with x>1 is accepted as 1) */

    struct http_header headers[HTTP_MAX_HEADERS];
    size_t nheaders;

    /* Semantics derived once the head is complete: */
    struct http_str host;     /* Host field value (or authority of absolute-form) */
    int64_t content_length;   /* -1 if none */
    int chunked;              /* Transfer-Encoding: chunked (final coding) */
    int keep_alive;           /* persistence per RFC 9112 9.3 (version + Connection) */
    int expect_continue;      /* Expect: 100-continue */
    size_t head_len;          /* bytes of the head, CRLF CRLF included */
};

enum { HTTP_TF_ORIGIN = 1, HTTP_TF_ABSOLUTE, HTTP_TF_AUTHORITY, HTTP_TF_ASTERISK };

void http_req_init(struct http_req *r);

/* Parse a request head from buf[0..len). Call again with the same buf and a
 * larger len as bytes arrive (the bytes already passed must not change);
 * work already done is not repeated. Leading empty lines (CRLF) before the
 * request-line are skipped (RFC 9112 2.2).
 * Returns the head length (>0) when complete, HTTP_AGAIN, or HTTP_BAD with
 * r->status set:
 *   400  syntax: bad request-line, bare LF or bare CR, NUL/CTL in a field,
 *        whitespace before ':', obs-fold, bad token characters, missing or
 *        duplicate Host in 1.1, bad/duplicate/list Content-Length,
 *        Transfer-Encoding with Content-Length, chunked not final, any
 *        Transfer-Encoding in HTTP/1.0, '*' with a method other than OPTIONS,
 *        authority-form with a method other than CONNECT
 *   414  request-line longer than lim->max_line
 *   431  head longer than lim->max_head, or more than lim->max_headers fields
 *   501  a transfer coding other than chunked
 *   505  HTTP major version other than 1, or HTTP/1.x with a bad digit form
 *        is a 400 (e.g. "HTTP/1.10", "HTTP/01.1")
 * Errors are reported as early as the bytes allow (a bare CR or a NUL is
 * rejected without waiting for the end of the line), so no malformed input
 * can make the caller wait for more bytes. */
int http_parse_request(struct http_req *r, const char *buf, size_t len,
                       const struct http_limits *lim);

/* Case-insensitive lookup of a header field; the first match, or NULL. */
const struct http_header *http_req_header(const struct http_req *r, const char *name);

/* ---- chunked transfer coding (RFC 9112 7.1) ---- */

struct http_chunked {
    int state;        /* private */
    uint64_t remaining; /* private: data bytes left in the current chunk */
    size_t line_len;  /* private: length of the size/ext or trailer line so far */
    size_t trailer_len; /* private: total trailer bytes so far */
    int status;       /* on HTTP_BAD: 400 (or 413 never: body limits are the caller's) */
    const char *error;
};

void http_chunked_init(struct http_chunked *d);

/* Decode chunked bytes in place. On entry buf[0..*len) holds raw bytes that
 * follow what was passed before; on return buf[0..*len) holds the decoded data
 * bytes found in them (possibly 0). Returns:
 *   HTTP_AGAIN  all input consumed, body not finished;
 *   HTTP_BAD    malformed (bad hex, size overflow past 2^63-1, extension or
 *               trailer line over 4 KiB, trailers over 8 KiB, bare LF/CR,
 *               bad trailer field); d->status = 400;
 *   n >= 0      the body (last chunk and trailers) ended; the n bytes after it
 *               (the next pipelined request) were moved to buf[*len .. *len+n).
 * Chunk extensions are validated and ignored; trailer fields are validated
 * and discarded. */
int http_chunked_decode(struct http_chunked *d, char *buf, size_t *len);

/* ---- Range (RFC 9110 14) ---- */

/* Parse a Range field value against a representation of `size` bytes.
 * Only a single "bytes=" range is served.
 * Returns 1 and sets [*first, *last] (inclusive) for a satisfiable range;
 *         0 when the field must be ignored (not "bytes", syntax error,
 *           several ranges): serve the whole representation with 200;
 *        -1 when unsatisfiable (first-pos >= size, or a suffix of 0): 416. */
int http_parse_range(const char *v, size_t len, uint64_t size,
                     uint64_t *first, uint64_t *last);

/* Several ranges (multipart/byteranges, RFC 9110 14.6), with the bounds
 * that keep a Range field from costing more than the file (the lesson of
 * Apache's CVE-2011-3192): at most `max` range-specs, and no two of the
 * satisfiable ones may overlap; past either bound the field is ignored (the
 * whole representation, 200), as RFC 9110 14.2 allows.
 * Returns n >= 1: out[0..n) are the satisfiable ranges, in request order;
 *         0: ignore the field (not "bytes", a syntax error, an invalid
 *            spec, more than max specs, overlapping ranges);
 *        -1: none of the ranges is satisfiable: 416. */
struct http_range {
    uint64_t first, last; /* inclusive */
};
int http_parse_ranges(const char *v, size_t len, uint64_t size,
                      struct http_range *out, int max);

/* ---- path normalisation ---- */

/* Percent-decode an origin-form path (no query) into out (NUL-terminated),
 * then remove dot segments (RFC 3986 5.2.4), collapse repeated '/'.
 * The result always starts with '/'. Returns the output length, or HTTP_BAD
 * for: not starting with '/', a bad %XX escape, a decoded NUL, an encoded
 * '/' (%2F) (ambiguous with a separator), a ".." that would climb above '/',
 * or output longer than outsz-1. */
int http_normalize_path(const char *in, size_t len, char *out, size_t outsz);

/* ---- Content-Length (RFC 9110 8.6) ---- */

/* The one Content-Length parser, for requests (above) and for what CGI
 * scripts, C apps and WSGI apps declare: 1*DIGIT with optional surrounding
 * OWS, at most 18 digits; no sign, no list (not even "5, 5": a list is how
 * smuggling starts). 0 and *out set, or -1. */
int http_parse_content_length(const char *p, size_t len, int64_t *out);

/* ---- small helpers shared by the core ---- */

int http_is_tchar(unsigned char c);
/* Case-insensitive equality of a view and a C string. */
int http_str_ieq(struct http_str s, const char *lit);
/* Does a comma-separated field value contain token (case-insensitive)? */
int http_list_has(struct http_str value, const char *token);

#endif
