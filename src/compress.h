/* compress.h - the codecs: a whole buffer in, a pinned block out.
 * gzip with zlib (level 6), brotli with libbrotlienc (quality 5, text mode).
 * The static handler keeps the result in its open-file cache, so a file is
 * compressed once per change, not once per request (docs/static.md). */
#ifndef FH_COMPRESS_H
#define FH_COMPRESS_H

#include <stddef.h>

#include "accept_enc.h"
#include "resp.h"

#define COMPRESS_GZIP_LEVEL 6
#define COMPRESS_BR_QUALITY 5

/* src[0..len) encoded with enc (ENC_GZIP, ENC_BR) into a new blob (one
 * reference, the caller's), or NULL when it fails or does not come out
 * smaller than the input. */
struct blob *compress_buf(enum content_coding enc, const void *src, size_t len);

/* Is a response of this media type worth compressing? Text (HTML, CSS, JS,
 * JSON, SVG, XML, plain text...); never images, fonts, archives, media. */
int compress_type_ok(const char *type);

#endif
