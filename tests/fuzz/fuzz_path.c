/* fuzz_path.c - libFuzzer driver for http_normalize_path.
 * data[0] picks the output size; the rest is the path. A result always
 * starts with '/', never climbs ("/../", "/.." at the end), has no "/./"
 * or "//", and fits the buffer. The buffer's size changes nothing else: the
 * same path normalised into a buffer big enough for anything (the output is
 * never longer than the input plus one '/') gives the same answer whenever
 * that answer fits the small buffer, and HTTP_BAD exactly when it does not
 * (or when the path is bad anyway). */
#include "http_parse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t outsz = (size_t)data[0] + 1, n = size - 1;
    size_t bigsz = n + 2;
    char *in = malloc(n ? n : 1), *out = malloc(outsz), *big = malloc(bigsz);
    if (!in || !out || !big) abort();
    memcpy(in, data + 1, n);
    int rc = http_normalize_path(in, n, out, outsz);
    int brc = http_normalize_path(in, n, big, bigsz);
    if (brc == HTTP_BAD) {
        if (rc != HTTP_BAD) abort(); /* a small buffer cannot make a bad path good */
    } else if ((size_t)brc < outsz) {
        if (rc != brc || memcmp(out, big, (size_t)brc + 1) != 0) abort();
    } else if (rc != HTTP_BAD) {
        abort(); /* it does not fit: the small buffer must say so */
    }
    if (rc != HTTP_BAD) {
        size_t len = strlen(out);
        if (rc < 1 || (size_t)rc != len || len >= outsz || out[0] != '/') abort();
        if (strstr(out, "/../") || strstr(out, "/./") || strstr(out, "//")) abort();
        if ((len >= 3 && !strcmp(out + len - 3, "/..")) || (len >= 2 && !strcmp(out + len - 2, "/.")))
            abort();
    }
    free(in);
    free(out);
    free(big);
    return 0;
}
