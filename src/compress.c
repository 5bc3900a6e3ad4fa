/* compress.c - gzip and brotli over whole buffers, gzip over a stream (see
 * compress.h): build/compress.so, the one unit that links zlib and brotli.
 * The core calls it through fh_compress_module()'s table (compress_module.h,
 * compress_load.c); it reaches the core only through the table setup() gets. */
#include "compress_module.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <brotli/encode.h>
#include <zlib.h>

static const struct fh_compress_core *core; /* setup() */

static struct blob *gzip_buf(const void *src, size_t len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 31: a gzip header and trailer (15-bit window + 16) */
    if (deflateInit2(&z, COMPRESS_GZIP_LEVEL, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, (uLong)len);
    struct blob *b = len <= (uInt)-1 ? core->blob_new(cap) : NULL;
    if (b) {
        z.next_in = (Bytef *)(uintptr_t)src;
        z.avail_in = (uInt)len;
        z.next_out = (Bytef *)b->data;
        z.avail_out = (uInt)cap;
        if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
            core->blob_unref(b);
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
    struct blob *b = cap ? core->blob_new(cap) : NULL;
    if (!b)
        return NULL;
    size_t out = cap;
    if (!BrotliEncoderCompress(COMPRESS_BR_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, len,
                               (const uint8_t *)src, &out, (uint8_t *)b->data)) {
        core->blob_unref(b);
        return NULL;
    }
    b->len = out;
    return b;
}

static struct blob *buf(enum content_coding enc, const void *src, size_t len)
{
    struct blob *b = enc == ENC_GZIP ? gzip_buf(src, len) : enc == ENC_BR ? brotli_buf(src, len)
                                                                             : NULL;
    if (b && b->len >= len) { /* nothing gained: send the file as it is */
        core->blob_unref(b);
        b = NULL;
    }
    return b;
}

struct zstream {
    z_stream z;
    const unsigned char *in; /* input given, not yet passed to zlib */
    size_t in_left;
    enum zs_mode mode;
    int want;     /* the input given is not consumed as its mode asks yet */
    int finished; /* the gzip trailer is out */
    char buf[ZS_BUF];
};

static struct zstream *zs_new_(enum content_coding enc)
{
    if (enc != ENC_GZIP)
        return NULL;
    struct zstream *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    memset(&s->z, 0, sizeof s->z);
    if (deflateInit2(&s->z, COMPRESS_GZIP_LEVEL, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(s);
        return NULL;
    }
    s->in = NULL;
    s->in_left = 0;
    s->mode = ZS_MORE;
    s->want = 0;
    s->finished = 0;
    return s;
}

static char *zs_buf_(struct zstream *s)
{
    return s->buf;
}

static void zs_input_(struct zstream *s, const void *in, size_t len, enum zs_mode mode)
{
    s->in = in;
    s->in_left = len;
    s->mode = mode;
    s->want = 1;
}

static long zs_output_(struct zstream *s, void *out, size_t cap)
{
    if (!s->want || s->finished)
        return 0;
    if (cap > LONG_MAX / 2)
        cap = LONG_MAX / 2;
    s->z.next_out = out;
    s->z.avail_out = cap > UINT_MAX ? UINT_MAX : (uInt)cap;
    for (;;) {
        if (!s->z.avail_in && s->in_left) { /* zlib takes at most 4 GiB at a time */
            uInt n = s->in_left > UINT_MAX ? UINT_MAX : (uInt)s->in_left;
            s->z.next_in = (Bytef *)(uintptr_t)s->in;
            s->z.avail_in = n;
            s->in += n;
            s->in_left -= n;
        }
        int last = !s->in_left; /* all the input is with zlib: the mode's flush applies */
        int flush = !last || s->mode == ZS_MORE ? Z_NO_FLUSH
                    : s->mode == ZS_FLUSH        ? Z_SYNC_FLUSH
                                                 : Z_FINISH;
        int rc = deflate(&s->z, flush);
        if (rc == Z_STREAM_ERROR)
            return -1;
        if (rc == Z_STREAM_END)
            s->finished = 1;
        int consumed = last && !s->z.avail_in;
        if (s->finished || (consumed && (s->mode == ZS_MORE || s->z.avail_out > 0)))
            s->want = 0; /* (a sync flush is complete when it left room in out) */
        if (!s->want || !s->z.avail_out)
            break;
        if (rc == Z_BUF_ERROR && s->z.avail_in) /* no progress possible: cannot be */
            return -1;
    }
    return (long)((char *)s->z.next_out - (char *)out);
}

static int zs_finished_(const struct zstream *s)
{
    return s->finished;
}

static void zs_free_(struct zstream *s)
{
    if (!s)
        return;
    deflateEnd(&s->z);
    free(s);
}

static void setup(const struct fh_compress_core *c)
{
    core = c;
}

/* The module's one exported symbol (compress_module.h): built with
 * -fvisibility=hidden, nothing else leaves compress.so. */
__attribute__((visibility("default"))) const struct fh_compress_module *fh_compress_module(void)
{
    static const struct fh_compress_module m = {
        .abi = FH_COMPRESS_ABI,
        .blob_size = sizeof(struct blob),
        .setup = setup,
        .buf = buf,
        .zs_new = zs_new_,
        .zs_buf = zs_buf_,
        .zs_input = zs_input_,
        .zs_output = zs_output_,
        .zs_finished = zs_finished_,
        .zs_free = zs_free_,
    };
    return &m;
}

#ifdef FH_COMPRESS_LINKED
/* Linked into a unit test (Makefile): the core gets the table at start. */
__attribute__((constructor)) static void linked(void)
{
    compress_linked(fh_compress_module());
}
#endif
