/* compress.c - gzip and brotli over whole buffers (see compress.h). */
#include "compress.h"

#include <string.h>
#include <strings.h>

#include <brotli/encode.h>
#include <zlib.h>

static struct blob *gzip_buf(const void *src, size_t len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 31: a gzip header and trailer (15-bit window + 16) */
    if (deflateInit2(&z, COMPRESS_GZIP_LEVEL, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, (uLong)len);
    struct blob *b = len <= (uInt)-1 ? blob_new(cap) : NULL;
    if (b) {
        z.next_in = (Bytef *)(uintptr_t)src;
        z.avail_in = (uInt)len;
        z.next_out = (Bytef *)b->data;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
            blob_unref(b);
            b = NULL;
        } else {
            b->len = z.total_out;
        }
    }
    deflateEnd(&z);
    return b;
}

static struct blob *brotli_buf(const void *src, size_t len)
{
    size_t cap = BrotliEncoderMaxCompressedSize(len);
    struct blob *b = cap ? blob_new(cap) : NULL;
    if (!b)
        return NULL;
    size_t out = cap;
    if (!BrotliEncoderCompress(COMPRESS_BR_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, len,
                               (const uint8_t *)src, &out, (uint8_t *)b->data)) {
        blob_unref(b);
        return NULL;
    }
    b->len = out;
    return b;
}

struct blob *compress_buf(enum content_coding enc, const void *src, size_t len)
{
    struct blob *b = enc == ENC_GZIP ? gzip_buf(src, len) : enc == ENC_BR ? brotli_buf(src, len)
                                                                             : NULL;
    if (b && b->len >= len) { /* nothing gained: send the file as it is */
        blob_unref(b);
        b = NULL;
    }
    return b;
}

int compress_type_ok(const char *t)
{
    if (!t)
        return 0;
    size_t n = strcspn(t, ";");
    static const char *const exact[] = {
        "application/json", "application/javascript", "application/xml",
        "application/xhtml+xml", "application/rss+xml", "application/atom+xml",
        "application/manifest+json", "application/ld+json", "application/wasm",
        "image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon",
    };
    if (n > 5 && strncasecmp(t, "text/", 5) == 0)
        return 1;
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strlen(exact[i]) == n && strncasecmp(t, exact[i], n) == 0)
            return 1;
    /* structured syntax suffixes: application/foo+json, +xml */
    return (n > 5 && (strncasecmp(t + n - 5, "+json", 5) == 0)) ||
           (n > 4 && strncasecmp(t + n - 4, "+xml", 4) == 0);
}
