/* compress.h - the codecs: a whole buffer in, a pinned block out; and a
 * stream, for bodies that arrive in pieces.
 * gzip with zlib (level 6), brotli with libbrotlienc (quality 5, text mode).
 * The static handler keeps the result in its open-file cache, so a file is
 * compressed once per change, not once per request (docs/static.md).
 * The server binary does not link zlib or brotli: these calls are
 * compress_load.c, which loads build/compress.so (src/compress.c) in
 * compress_setup() when --compress is given and forwards to it
 * (compress_module.h). Without --compress nothing is loaded (--precompressed
 * needs no codec): compress_buf() and zs_new() then return NULL. */
#ifndef FH_COMPRESS_H
#define FH_COMPRESS_H

#include <stddef.h>

#include "accept_enc.h"
#include "resp.h"

#define COMPRESS_GZIP_LEVEL 6
#define COMPRESS_BR_QUALITY 5

/* With --compress: load the codecs (build/compress.so), once, in the master
 * before any fork. 0 (also when there is nothing to load), or -1 after one
 * line on stderr (the module is missing or not this server's). */
int compress_setup(void);

/* src[0..len) encoded with enc (ENC_GZIP, ENC_BR) into a new blob (one
 * reference, the caller's), or NULL when it fails or does not come out
 * smaller than the input. */
struct blob *compress_buf(enum content_coding enc, const void *src, size_t len);

/* ---- streaming: app, CGI and WSGI bodies compressed as they are sent ----
 * One stream per response (conn.c), gzip only: zlib's deflate (level 6, a
 * 32 KiB window: about 270 KiB per stream, freed at the response's end).
 * Give input with zs_input(), then take output with zs_output() until it
 * returns 0; only then give the next input (zlib reads it in place: it must
 * stay put until then). ZS_FLUSH ends with a sync flush, so everything given
 * so far can be decoded by the client (streamed pieces arrive as they come). */
enum zs_mode { ZS_MORE, ZS_FLUSH, ZS_FINISH };
struct zstream;

#define ZS_BUF 16384 /* the stream's own input buffer (zs_buf) */

/* A new stream for enc (ENC_GZIP), or NULL (another coding, no memory). */
struct zstream *zs_new(enum content_coding enc);
/* Its input buffer: ZS_BUF bytes the caller may read source bytes into. */
char *zs_buf(struct zstream *z);
void zs_input(struct zstream *z, const void *in, size_t len, enum zs_mode mode);
/* Up to cap compressed bytes into out: how many; 0 when the input given is
 * consumed as its mode asked (flushed, or the stream finished); -1 on failure. */
long zs_output(struct zstream *z, void *out, size_t cap);
int zs_finished(const struct zstream *z);
void zs_free(struct zstream *z); /* NULL is a no-op */

/* Is a response of this media type worth compressing? Text (HTML, CSS, JS,
 * JSON, SVG, XML, plain text...); never images, fonts, archives, media. */
int compress_type_ok(const char *type);

#endif
