/* test_gw_compress.c - the pure pieces of --compress for app, CGI and WSGI
 * responses: what header lines say (owned_hdr_facts, src/owned_hdr.c) and
 * the streaming gzip coder (zs_*, src/compress.c): pieces in, sync
 * flushes between them, a small output buffer, decoded back with zlib. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "compress.h"
#include "owned_hdr.h"
#include "tap.h"

static void test_facts(void)
{
    struct hdr_facts f;
    const char *h = "X-A: 1\r\nContent-Type: text/html; charset=utf-8\r\n"
                    "cache-control: public, No-Transform\r\nVary: Cookie\r\n";
    owned_hdr_facts(h, strlen(h), &f);
    ok(f.type && f.type_len == 24 && memcmp(f.type, "text/html; charset=utf-8", 24) == 0,
       "Content-Type found, without its line end");
    ok(f.no_transform && !f.encoded && !f.range && !f.vary_ae, "no-transform, nothing else");
    h = "Content-Encoding: br\r\nContent-Range: bytes 0-1/2\r\nVary: accept-encoding, x\r\n"
        "Cache-Control: max-age=\"no-transform\"\r\n";
    owned_hdr_facts(h, strlen(h), &f);
    ok(!f.type && f.encoded && f.range && f.vary_ae, "coded, ranged, Vary names it");
    ok(!f.no_transform, "no-transform inside a quoted value does not count");
    h = "Cache-Control: no-transformx, private\r\nVary: *\r\nContent-Encodingx: y\r\n";
    owned_hdr_facts(h, strlen(h), &f);
    ok(!f.no_transform && f.vary_ae && !f.encoded, "tokens and names match whole");
    owned_hdr_facts("", 0, &f);
    ok(!f.type && !f.encoded, "no lines");
}

static size_t pull(struct zstream *z, unsigned char *out, size_t *len, size_t cap)
{
    size_t n = 0;
    long r;
    while ((r = zs_output(z, out + *len, cap - *len < 100 ? cap - *len : 100)) > 0) {
        *len += (size_t)r;
        n += (size_t)r;
    }
    ok(r == 0, "output ends with 0");
    return n;
}

static void test_stream(void)
{
    ok(zs_new(ENC_BR) == NULL && zs_new(ENC_IDENTITY) == NULL, "gzip only");
    struct zstream *z = zs_new(ENC_GZIP);
    ok(z != NULL, "a gzip stream");
    static unsigned char out[1 << 20], back[1 << 20];
    size_t len = 0;
    const char *a = "first line\n";
    zs_input(z, a, strlen(a), ZS_MORE);
    pull(z, out, &len, sizeof out);
    zs_input(z, NULL, 0, ZS_FLUSH); /* the producer waits: all of it goes out */
    ok(pull(z, out, &len, sizeof out) > 0, "a sync flush gives bytes");
    /* what was sent so far decodes to the first line */
    z_stream d;
    memset(&d, 0, sizeof d);
    inflateInit2(&d, 31);
    d.next_in = out;
    d.avail_in = (uInt)len;
    d.next_out = back;
    d.avail_out = sizeof back;
    int rc = inflate(&d, Z_SYNC_FLUSH);
    ok(rc == Z_OK && d.total_out == strlen(a) && memcmp(back, a, strlen(a)) == 0,
       "the flushed prefix decodes to the first piece");
    zs_input(z, NULL, 0, ZS_FLUSH); /* a second flush with nothing new */
    ok(pull(z, out, &len, sizeof out) == 0, "nothing new: nothing more");
    size_t big = 300000;
    char *src = malloc(big);
    for (size_t i = 0; i < big; i++)
        src[i] = (char)("abcdefghij\n"[i % 11] + (i % 997 == 0));
    zs_input(z, src, big, ZS_MORE);
    pull(z, out, &len, sizeof out);
    zs_input(z, NULL, 0, ZS_FINISH);
    pull(z, out, &len, sizeof out);
    ok(zs_finished(z), "finished");
    zs_input(z, NULL, 0, ZS_FINISH);
    ok(zs_output(z, out + len, 100) == 0, "after the end: nothing");
    d.avail_in = (uInt)(len - (size_t)(d.next_in - out)); /* (next_in: where it stopped) */
    rc = inflate(&d, Z_FINISH);
    ok(rc == Z_STREAM_END && d.total_out == strlen(a) + big &&
           memcmp(back + strlen(a), src, big) == 0,
       "the whole body decodes (%zu bytes from %zu)", len, strlen(a) + big);
    inflateEnd(&d);
    free(src);
    zs_free(z);
    zs_free(NULL);
}

int main(void)
{
    test_facts();
    test_stream();
    return done_testing();
}
