/* hist.c - see hist.h for the bucket layout. */
#include "hist.h"

#include <math.h>
#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

uint32_t hist_index(uint64_t v)
{
    if (v > HIST_MAX)
        v = HIST_MAX;
    if (v < 2 * HIST_HALF)
        return (uint32_t)v;
    /* b = how many low bits are dropped so v >> b is in [1024, 2048). */
    unsigned b = (unsigned)(63 - __builtin_clzll(v)) - (HIST_SUB_BITS - 1);
    return (uint32_t)(b * HIST_HALF + (v >> b));
}

uint64_t hist_bucket_high(uint32_t idx)
{
    if (idx < 2 * HIST_HALF)
        return idx;
    unsigned b = idx / HIST_HALF - 1;
    uint64_t sub = idx - (uint64_t)b * HIST_HALF;
    return ((sub + 1) << b) - 1;
}

/* The bucket's midpoint, for mean and stdev. */
static double bucket_mid(uint32_t idx)
{
    if (idx < 2 * HIST_HALF)
        return idx;
    unsigned b = idx / HIST_HALF - 1;
    uint64_t sub = idx - (uint64_t)b * HIST_HALF;
    return (double)(sub << b) + ((double)(UINT64_C(1) << b) - 1) / 2.0;
}

void hist_record(struct hist *h, uint64_t v)
{
    if (v > HIST_MAX)
        v = HIST_MAX;
    h->counts[hist_index(v)]++;
    h->total++;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

int hist_add_bucket(struct hist *h, uint32_t idx, uint64_t count)
{
    if (idx >= HIST_LEN)
        return -1;
    h->counts[idx] += count;
    h->total += count;
    return 0;
}

void hist_merge_minmax(struct hist *h, uint64_t min, uint64_t max)
{
    if (min < h->min)
        h->min = min;
    if (max > h->max && max != UINT64_MAX)
        h->max = max;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->total == 0)
        return 0;
    if (p > 100.0)
        p = 100.0;
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < HIST_LEN; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t v = hist_bucket_high(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    if (h->total == 0)
        return 0;
    double sum = 0;
    for (uint32_t i = 0; i < HIST_LEN; i++)
        if (h->counts[i])
            sum += bucket_mid(i) * (double)h->counts[i];
    return sum / (double)h->total;
}

double hist_stdev(const struct hist *h)
{
    if (h->total < 2)
        return 0;
    double mean = hist_mean(h), acc = 0;
    for (uint32_t i = 0; i < HIST_LEN; i++)
        if (h->counts[i]) {
            double d = bucket_mid(i) - mean;
            acc += d * d * (double)h->counts[i];
        }
    return sqrt(acc / (double)(h->total - 1));
}
