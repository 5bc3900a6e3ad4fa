/* fuzz_range.c - libFuzzer driver for http_parse_range.
 * data[0] picks the representation size (small, or near 2^64); the rest is
 * the Range field value. A served range must lie inside the representation. */
#include "http_parse.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint64_t rsize = data[0] < 200 ? data[0] : UINT64_MAX - (uint64_t)(255 - data[0]);
    size_t n = size - 1;
    char *v = malloc(n ? n : 1);
    if (!v) abort();
    memcpy(v, data + 1, n);
    uint64_t first = 7, last = 7;
    int rc = http_parse_range(v, n, rsize, &first, &last);
    if (rc < -1 || rc > 1) abort();
    if (rc == 1 && (first > last || last >= rsize)) abort();
    if (rc != 0 && n > 0 && memchr(v, ',', n)) abort(); /* several ranges: whole */
    free(v);
    return 0;
}
