/* compress_module.h - what crosses between the core and build/compress.so
 * (issue 19), built the way tls_module.h is.
 *
 * The codecs (src/compress.c: zlib and libbrotlienc) are a module,
 * compress.so, so that the server binary links only libc (and libdl): a
 * server without --compress maps no libz/libbrotlienc, and the fork model
 * forks a smaller process. --precompressed needs no codec (the sidecars are
 * sent as they are). The core's unit compress_load.c implements compress.h:
 * with --compress it dlopen()s compress.so from next to the server's binary
 * (/proc/self/exe, links resolved) once, in compress_setup() before any fork,
 * and forwards the calls through the table the module's one exported symbol
 * returns. The module reaches the core only through struct fh_compress_core
 * (two entries: the blocks it fills); compress.so is linked with -z defs.
 *
 * FH_COMPRESS_ABI changes whenever either struct below changes; the ABI and
 * sizeof(struct blob) are checked at load as a guard against a stale module. */
#ifndef FH_COMPRESS_MODULE_H
#define FH_COMPRESS_MODULE_H

#include <stddef.h>

#include "compress.h"

#define FH_COMPRESS_ABI 1
#define FH_COMPRESS_SYMBOL "fh_compress_module"

/* What the core lends the module: the blocks compress_buf() returns. */
struct fh_compress_core {
    struct blob *(*blob_new)(size_t len);
    void (*blob_unref)(struct blob *b);
};

/* What the module exports: compress.h's codecs (same meaning, same order). */
struct fh_compress_module {
    int abi;          /* FH_COMPRESS_ABI */
    size_t blob_size; /* sizeof(struct blob), as the module was built */
    void (*setup)(const struct fh_compress_core *core);
    struct blob *(*buf)(enum content_coding enc, const void *src, size_t len);
    struct zstream *(*zs_new)(enum content_coding enc);
    char *(*zs_buf)(struct zstream *z);
    void (*zs_input)(struct zstream *z, const void *in, size_t len, enum zs_mode mode);
    long (*zs_output)(struct zstream *z, void *out, size_t cap);
    int (*zs_finished)(const struct zstream *z);
    void (*zs_free)(struct zstream *z);
};

/* The one symbol compress.so exports. */
typedef const struct fh_compress_module *fh_compress_module_fn(void);
const struct fh_compress_module *fh_compress_module(void);

/* The unit tests link src/compress.c into the test binary (Makefile,
 * -DFH_COMPRESS_LINKED): it hands its table to the core at start with this,
 * instead of being loaded (compress_load.c). */
void compress_linked(const struct fh_compress_module *m);

#endif
