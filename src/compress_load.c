/* compress_load.c - compress.h for the core: the codecs live in
 * build/compress.so (src/compress.c, linked with zlib and libbrotlienc),
 * loaded only when --compress is given (compress_module.h; the same scheme as
 * tls_load.c). compress_setup() loads it in the master before any fork (every
 * model's children inherit the mapping); without --compress nothing is
 * loaded, and nothing asks: h_static.c and conn.c code only with
 * cfg.compress (a sidecar of --precompressed is sent as it is). Should a call
 * come anyway, it gets "not compressed" (NULL), never a crash.
 * compress_type_ok() is pure and stays here. */
#include "compress.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "compress_module.h"
#include "config.h"
#include "module.h"

static const struct fh_compress_module *mod; /* NULL: no codecs in this server */

static const struct fh_compress_core core = {
    .blob_new = blob_new,
    .blob_unref = blob_unref,
};

void compress_linked(const struct fh_compress_module *m)
{
    m->setup(&core);
    mod = m;
}

/* dlopen compress.so from the binary's directory: its table, or NULL after one
 * line. Never closed: the children inherit it, and zlib is cheap to keep. */
static const struct fh_compress_module *load(void)
{
    char path[PATH_MAX];
    void *dl;
    fh_compress_module_fn *get;
    *(void **)&get = module_open("--compress", "compress.so", "make; Debian zlib1g-dev, libbrotli-dev",
                                 FH_COMPRESS_SYMBOL, &dl, path, sizeof path);
    if (!get) {
        if (dl)
            dlclose(dl);
        return NULL;
    }
    const struct fh_compress_module *m = get();
    if (!m || m->abi != FH_COMPRESS_ABI || m->blob_size != sizeof(struct blob)) {
        fprintf(stderr, "forkhttpd: --compress: %s is not this server's module (%s); rebuild with make\n",
                path, !m ? "no table" : "another version");
        dlclose(dl);
        return NULL;
    }
    return m;
}

int compress_setup(void)
{
    if (!cfg.compress || mod)
        return 0;
    const struct fh_compress_module *m = load();
    if (!m)
        return -1;
    compress_linked(m);
    return 0;
}

struct blob *compress_buf(enum content_coding enc, const void *src, size_t len)
{
    return mod ? mod->buf(enc, src, len) : NULL;
}

struct zstream *zs_new(enum content_coding enc)
{
    return mod ? mod->zs_new(enc) : NULL;
}

/* The calls below take a stream, which only the module makes: mod is set. */
char *zs_buf(struct zstream *z)
{
    return mod->zs_buf(z);
}

void zs_input(struct zstream *z, const void *in, size_t len, enum zs_mode mode)
{
    mod->zs_input(z, in, len, mode);
}

long zs_output(struct zstream *z, void *out, size_t cap)
{
    return mod->zs_output(z, out, cap);
}

int zs_finished(const struct zstream *z)
{
    return mod->zs_finished(z);
}

void zs_free(struct zstream *z)
{
    if (z)
        mod->zs_free(z);
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
