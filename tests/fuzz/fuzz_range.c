/* fuzz_range.c - libFuzzer driver for http_parse_range and http_parse_ranges.
 * data[0] picks the representation size (small, or near 2^64); the rest is
 * the Range field value. A served range must lie inside the representation;
 * several ranges must stay within the bound and never overlap (so a Range
 * field never asks for more bytes than the file has), and agree with the
 * single-range parser when there is one spec. */
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

    enum { MAX = 8 };
    struct http_range r[MAX + 1];
    memset(r, 0, sizeof r);
    int nr = http_parse_ranges(v, n, rsize, r, MAX);
    if (nr < -1 || nr > MAX) abort();
    uint64_t total = 0;
    for (int i = 0; i < nr; i++) {
        if (r[i].first > r[i].last || r[i].last >= rsize) abort();
        for (int j = 0; j < i; j++)
            if (r[i].first <= r[j].last && r[j].first <= r[i].last) abort();
        total += r[i].last - r[i].first + 1;
        if (total > rsize) abort();
    }
    if (r[MAX].first || r[MAX].last) abort(); /* wrote past max */
    if (rc == 1 && (nr != 1 || r[0].first != first || r[0].last != last)) abort();
    if (rc == -1 && nr != -1) abort();
    free(v);
    return 0;
}
