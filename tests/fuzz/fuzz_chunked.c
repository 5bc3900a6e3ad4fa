/* fuzz_chunked.c - libFuzzer driver for http_chunked_decode.
 * data[0] picks a split point; data[1..] is the body. Decoding it in one
 * call, in two calls split there, and one byte at a time must agree. */
#include "http_parse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fch_result {
    int rc;          /* HTTP_BAD, HTTP_AGAIN or >= 0 once the body ended */
    size_t outlen, restlen;
};

/* Decode in pieces ending at the offsets in cuts[]; decoded bytes go to out,
 * the bytes after the body to rest. Each piece gets its own exact-size heap
 * copy so ASan sees any over-read. */
static struct fch_result fch_run(const uint8_t *in, size_t n, const size_t *cuts, size_t ncuts,
                                 char *out, char *rest)
{
    struct http_chunked d;
    struct fch_result res = { HTTP_AGAIN, 0, 0 };
    size_t start = 0;
    http_chunked_init(&d);
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : n, len = end - start;
        char *piece = malloc(len ? len : 1);
        if (!piece) abort();
        memcpy(piece, in + start, len);
        res.rc = http_chunked_decode(&d, piece, &len);
        if (res.rc != HTTP_BAD) {
            memcpy(out + res.outlen, piece, len);
            res.outlen += len;
            if (res.rc >= 0) {
                memcpy(rest + res.restlen, piece + len, (size_t)res.rc);
                res.restlen += (size_t)res.rc;
            }
        } else if (d.status != 400 || !d.error) {
            abort();
        }
        free(piece);
        start = end;
        if (res.rc == HTTP_BAD) break;
    }
    return res;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const uint8_t *in = data + 1;
    size_t n = size - 1, cut = n ? data[0] % (n + 1) : 0;
    char *o1 = malloc(n + 1), *r1 = malloc(n + 1), *o2 = malloc(n + 1), *r2 = malloc(n + 1);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    if (!o1 || !r1 || !o2 || !r2 || !cuts) abort();

    struct fch_result one = fch_run(in, n, NULL, 0, o1, r1);
    struct fch_result two = fch_run(in, n, &cut, 1, o2, r2);
    if ((one.rc >= 0) != (two.rc >= 0) || (one.rc < 0 && one.rc != two.rc)) abort();
    if (one.rc >= 0 && (one.outlen != two.outlen || one.restlen != two.restlen ||
                        memcmp(o1, o2, one.outlen) || memcmp(r1, r2, one.restlen)))
        abort();
    if (one.rc == HTTP_AGAIN && (one.outlen != two.outlen || memcmp(o1, o2, one.outlen))) abort();

    for (size_t k = 0; k + 1 < n; k++) cuts[k] = k + 1;
    struct fch_result byte = fch_run(in, n, cuts, n ? n - 1 : 0, o2, r2);
    if ((one.rc >= 0) != (byte.rc >= 0) || (one.rc < 0 && one.rc != byte.rc)) abort();
    if (one.rc != HTTP_BAD && (one.outlen != byte.outlen || memcmp(o1, o2, one.outlen))) abort();
    if (one.rc >= 0 && (one.restlen != byte.restlen || memcmp(r1, r2, one.restlen))) abort();

    free(o1), free(r1), free(o2), free(r2), free(cuts);
    return 0;
}
