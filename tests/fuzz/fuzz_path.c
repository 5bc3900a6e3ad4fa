/* fuzz_path.c - libFuzzer driver for http_normalize_path.
 * data[0] picks the output size; the rest is the path. A result always
 * starts with '/', never climbs ("/../", "/.." at the end), has no "/./"
 * or "//", and fits the buffer. */
#include "http_parse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t outsz = (size_t)data[0] + 1, n = size - 1;
    char *in = malloc(n ? n : 1), *out = malloc(outsz);
    if (!in || !out) abort();
    memcpy(in, data + 1, n);
    int rc = http_normalize_path(in, n, out, outsz);
    if (rc != HTTP_BAD) {
        size_t len = strlen(out);
        if (rc < 1 || (size_t)rc != len || len >= outsz || out[0] != '/') abort();
        if (strstr(out, "/../") || strstr(out, "/./") || strstr(out, "//")) abort();
        if ((len >= 3 && !strcmp(out + len - 3, "/..")) || (len >= 2 && !strcmp(out + len - 2, "/.")))
            abort();
    }
    free(in);
    free(out);
    return 0;
}
