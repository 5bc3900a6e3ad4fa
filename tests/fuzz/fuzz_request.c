/* fuzz_request.c - libFuzzer driver for http_parse_request.
 * One-shot parsing must agree with feeding the same buffer one byte more at
 * a time, and every view of a parsed request must lie inside the input. */
#include "http_parse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void freq_inside(struct http_str v, const char *b, size_t n)
{
    if (v.len > 0 && (v.p < b || v.p + v.len > b + n) && !(v.len == 1 && v.p[0] == '/'))
        abort(); /* only the "/" of an absolute-form without path is static */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct http_req a, b;
    static const struct http_limits lim = { 200, 1500, 16 };
    const char *buf = (const char *)data;

    http_req_init(&a);
    int rc = http_parse_request(&a, buf, size, &lim);
    if (rc != HTTP_AGAIN && rc != HTTP_BAD && (rc <= 0 || (size_t)rc > size)) abort();
    if (rc == HTTP_BAD && (a.status < 400 || a.status > 505 || !a.error)) abort();

    http_req_init(&b);
    int rb = HTTP_AGAIN;
    for (size_t n = 0; n <= size && rb == HTTP_AGAIN; n++) rb = http_parse_request(&b, buf, n, &lim);
    if (rb != rc || (rc == HTTP_BAD && a.status != b.status)) abort();
    if (rc <= 0) return 0;

    if (a.head_len != (size_t)rc || a.nheaders != b.nheaders || a.m != b.m ||
        a.version_minor != b.version_minor || a.content_length != b.content_length ||
        a.chunked != b.chunked || a.keep_alive != b.keep_alive || a.host.p != b.host.p ||
        a.path.p != b.path.p || a.query.len != b.query.len || a.target_form != b.target_form)
        abort();
    freq_inside(a.method, buf, a.head_len);
    freq_inside(a.target, buf, a.head_len);
    freq_inside(a.path, buf, a.head_len);
    freq_inside(a.query, buf, a.head_len);
    freq_inside(a.authority, buf, a.head_len);
    freq_inside(a.host, buf, a.head_len);
    for (size_t i = 0; i < a.nheaders; i++) {
        freq_inside(a.headers[i].name, buf, a.head_len);
        freq_inside(a.headers[i].value, buf, a.head_len);
        if (a.headers[i].name.len == 0) abort();
    }
    if (a.chunked && a.content_length != -1) abort();
    return 0;
}
