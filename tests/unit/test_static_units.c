/* test_static_units.c - unit tests of the pure parts of static sites:
 * the Accept-Encoding chooser (src/accept_enc.c), the compressible types
 * and the codecs (src/compress.c), http_parse_ranges (several ranges and
 * their bounds), and the MIME table (src/mime.c). TAP, run by prove. */
#include "accept_enc.h"
#include "clock.h"
#include "compress.h"
#include "http_parse.h"
#include "mime.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define ALL (ENC_BIT(ENC_GZIP) | ENC_BIT(ENC_BR))
#define GZ ENC_BIT(ENC_GZIP)
#define BR ENC_BIT(ENC_BR)

static const struct {
    const char *field; /* NULL: no Accept-Encoding */
    unsigned have;
    enum content_coding want;
} ae[] = {
    {NULL, ALL, ENC_IDENTITY},
    {"", ALL, ENC_IDENTITY},
    {"gzip", ALL, ENC_GZIP},
    {"gzip, br", ALL, ENC_BR},
    {"br, gzip", ALL, ENC_BR},
    {"gzip, deflate, br, zstd", ALL, ENC_BR},
    {"gzip, br", GZ, ENC_GZIP},
    {"br", GZ, ENC_IDENTITY},
    {"GZIP", ALL, ENC_GZIP},
    {"x-gzip", ALL, ENC_GZIP},
    {"br;q=0.5, gzip", ALL, ENC_GZIP},
    {"br;q=0.5, gzip;q=0.8", ALL, ENC_GZIP},
    {"br ; q=1.0 , gzip;q=0.999", ALL, ENC_BR},
    {"gzip;q=0", ALL, ENC_IDENTITY},
    {"gzip;q=0.000, br;q=0", ALL, ENC_IDENTITY},
    {"*", ALL, ENC_BR},
    {"*;q=0", ALL, ENC_IDENTITY},      /* nothing acceptable: identity anyway */
    {"*, br;q=0", ALL, ENC_GZIP},
    {"identity", ALL, ENC_IDENTITY},
    {"identity;q=0", ALL, ENC_IDENTITY}, /* nothing else named: identity anyway */
    {"identity;q=0, gzip", ALL, ENC_GZIP},
    {"gzip;q=0.5, identity", ALL, ENC_IDENTITY},
    {"gzip;q=0.5, identity;q=0.5", ALL, ENC_GZIP},
    {"gzip;q=2", ALL, ENC_IDENTITY},   /* a bad q: the element is skipped */
    {"gzip;q=0.1234", ALL, ENC_IDENTITY},
    {"gzip;q=, br", ALL, ENC_BR},
    {"gzip;level=9", ALL, ENC_GZIP},
    {",,, gzip ,", ALL, ENC_GZIP},
    {"deflate", ALL, ENC_IDENTITY},
    {"gzip", 0, ENC_IDENTITY},
    {"brotli", ALL, ENC_IDENTITY},
    {"gzip;q=0, gzip", ALL, ENC_GZIP}, /* named twice: the higher weight */
};

static void test_accept_enc(void)
{
    for (size_t i = 0; i < sizeof ae / sizeof ae[0]; i++) {
        const char *f = ae[i].field;
        enum content_coding got = accept_enc_choose(f, f ? strlen(f) : 0, ae[i].have);
        is_int(got, ae[i].want, "Accept-Encoding '%s' (have %u)", f ? f : "(none)", ae[i].have);
    }
    is_str(accept_enc_name(ENC_GZIP), "gzip", "name gzip");
    is_str(accept_enc_name(ENC_BR), "br", "name br");
}

static void test_compress(void)
{
    static const char *const yes[] = {"text/html; charset=utf-8", "text/css", "application/json",
                                      "image/svg+xml", "application/ld+json",
                                      "application/atom+xml", "text/javascript; charset=utf-8"};
    static const char *const no[] = {"image/png", "application/gzip", "font/woff2", "video/mp4",
                                     "application/octet-stream", "text/", NULL};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        ok(compress_type_ok(yes[i]), "compressible: %s", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        ok(!compress_type_ok(no[i]), "not compressible: %s", no[i] ? no[i] : "(null)");

    char src[20000];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = "<p>hello, compressed world</p>\n"[i % 31];
    struct blob *g = compress_buf(ENC_GZIP, src, sizeof src);
    ok(g && g->len < sizeof src / 10, "gzip shrinks text");
    if (g) { /* and it is gzip that zlib reads back */
        char back[sizeof src];
        z_stream z;
        memset(&z, 0, sizeof z);
        inflateInit2(&z, 31);
        z.next_in = (Bytef *)g->data;
        z.avail_in = (uInt)g->len;
        z.next_out = (Bytef *)back;
        z.avail_out = sizeof back;
        int rc = inflate(&z, Z_FINISH);
        ok(rc == Z_STREAM_END && z.total_out == sizeof src && memcmp(back, src, sizeof src) == 0,
           "gzip round trip");
        inflateEnd(&z);
    }
    blob_unref(g);
    struct blob *b = compress_buf(ENC_BR, src, sizeof src);
    ok(b && b->len < sizeof src / 10, "brotli shrinks text");
    blob_unref(b);
    ok(compress_buf(ENC_GZIP, "ab", 2) == NULL, "no gain: not compressed");
}

static const struct {
    const char *v;
    uint64_t size;
    int rc;
    const char *want; /* "a-b a-b ..." */
} rs[] = {
    {"bytes=0-1,3-4", 10, 2, "0-1 3-4"},
    {"bytes=0-1, 3-4", 10, 2, "0-1 3-4"},
    {"bytes=5-6,0-1", 10, 2, "5-6 0-1"},      /* request order is kept */
    {"bytes=0-1,,3-4,", 10, 2, "0-1 3-4"},    /* empty list elements */
    {"bytes=0-1,20-30", 10, 1, "0-1"},        /* the unsatisfiable one is left out */
    {"bytes=20-30,40-", 10, -1, ""},
    {"bytes=0-1,-2", 10, 2, "0-1 8-9"},
    {"bytes=0-4,4-5", 10, 0, ""},             /* overlap: the whole file */
    {"bytes=0-,0-", 10, 0, ""},
    {"bytes=-5,0-", 10, 0, ""},
    {"bytes=0-1,x", 10, 0, ""},               /* one invalid spec: ignored */
    {"bytes=0-1,5-3", 10, 0, ""},
    {"bytes=,", 10, 0, ""},
    {"bytes=0-0,2-2,4-4,6-6", 10, 4, "0-0 2-2 4-4 6-6"},
    {"bytes=0-0,2-2,4-4,6-6,8-8", 10, 0, ""}, /* more than max (4) */
    {"bytes=0-", 10, 1, "0-9"},
    {"bytes=0-1", 0, -1, ""},
};

static void test_ranges(void)
{
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        struct http_range r[4];
        int n = http_parse_ranges(rs[i].v, strlen(rs[i].v), rs[i].size, r, 4);
        char got[128] = "";
        size_t o = 0;
        for (int k = 0; k < n; k++)
            o += (size_t)snprintf(got + o, sizeof got - o, "%s%llu-%llu", k ? " " : "",
                                  (unsigned long long)r[k].first, (unsigned long long)r[k].last);
        if (!ok(n == rs[i].rc && strcmp(got, rs[i].want) == 0, "ranges '%s' size %llu -> %d '%s'",
                rs[i].v, (unsigned long long)rs[i].size, rs[i].rc, rs[i].want))
            diag("got %d '%s'", n, got);
    }
}

static void test_mime(void)
{
    mime_load(NULL); /* the built-in table only */
    is_str(mime_lookup("a/b.html", 8), "text/html; charset=utf-8", "html");
    is_str(mime_lookup("x.CSS", 5), "text/css; charset=utf-8", "case-insensitive");
    is_str(mime_lookup("x.png", 5), "image/png", "png");
    is_str(mime_lookup("hello", 5), "application/octet-stream", "no extension");
    is_str(mime_lookup(".bashrc", 7), "application/octet-stream", "a dotfile has no extension");
    is_str(mime_lookup("a.b/c", 5), "application/octet-stream", "a dot in a directory");
    ok(mime_set("foo", "text/x-foo") == 0, "--mime foo");
    is_str(mime_lookup("x.foo", 5), "text/x-foo; charset=utf-8", "text gets a charset");
    ok(mime_set(".png", "image/x-png") == 0, "--mime overrides");
    mime_load(NULL);
    is_str(mime_lookup("x.png", 5), "image/x-png", "the override survives loading");
    ok(mime_set("json", "application/json; charset=latin1") == 0, "a type with parameters");
    is_str(mime_lookup("x.json", 6), "application/json; charset=latin1", "kept as given");
    ok(mime_set_default("text/plain") == 0, "--default-type");
    is_str(mime_lookup("hello", 5), "text/plain; charset=utf-8", "the default type");
    ok(mime_known_ext("a.js", 4) && !mime_known_ext("a.zzz", 5) && !mime_known_ext("a", 1),
       "known extensions");
    ok(mime_set("", "a/b") < 0 && mime_set("a b", "a/b") < 0 && mime_set("x", "nosubtype") < 0 &&
       mime_set("x", "a/b\r\nX: y") < 0 && mime_set_default("/x") < 0,
       "malformed --mime and --default-type");
    mime_free();
}

/* http_date_fmt (src/clock.c) computes the civil date itself (a fork child
 * must not fault in gmtime's and printf's pages): against gmtime_r and
 * strftime, every day's noon and midnight edges from 1900 to 2200, and
 * pseudo-random seconds up to year 9999. */
static void test_http_date(void)
{
    int bad = 0, n = 0;
    char want[64], got[32];
    unsigned long long r = 88172645463325252ull;
    for (long long i = 0; i < 300000; i++) {
        time_t t;
        if (i < 110000) /* days -25567 (1900) .. +84000 (2200), three times a day */
            t = (time_t)((i / 3 - 25567) * 86400 + (i % 3 == 0 ? 0 : i % 3 == 1 ? 43200 : 86399));
        else {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            t = (time_t)(r % 253402300799ull); /* up to 9999-12-31 23:59:59 */
        }
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        http_date_fmt(t, got);
        n++;
        if (strcmp(got, want) != 0 && bad++ < 3)
            diag("t=%lld: got '%s', want '%s'", (long long)t, got, want);
    }
    ok(bad == 0, "http_date_fmt = gmtime_r + strftime for %d times (%d differ)", n, bad);
    http_date_fmt(0, got);
    ok(strcmp(got, "Thu, 01 Jan 1970 00:00:00 GMT") == 0, "the epoch: %s", got);
    http_date_fmt(784111777, got);
    ok(strcmp(got, "Sun, 06 Nov 1994 08:49:37 GMT") == 0, "RFC 9110's example: %s", got);
}

int main(void)
{
    test_http_date();
    test_accept_enc();
    test_compress();
    test_ranges();
    test_mime();
    return done_testing();
}
