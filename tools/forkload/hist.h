/* hist.h - a fixed-size, log-bucketed latency histogram (HdrHistogram-like).
 *
 * Values are microseconds. Values below 2048 are stored exactly; above that
 * each power-of-two range [2^k, 2^(k+1)) is split into 1024 equal buckets, so
 * every value is kept to 3 significant decimal digits (relative error below
 * 1/1024). Values above HIST_MAX (about 71 minutes) are clamped. The whole
 * thing is one flat array: recording is a shift, a clz and an increment. */
#ifndef FORKLOAD_HIST_H
#define FORKLOAD_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 11                          /* 2048 sub-buckets */
#define HIST_HALF     (1u << (HIST_SUB_BITS - 1)) /* 1024 per octave */
#define HIST_MAX_BITS 32
#define HIST_MAX      ((UINT64_C(1) << HIST_MAX_BITS) - 1)
#define HIST_LEN      ((HIST_MAX_BITS - HIST_SUB_BITS + 2) * HIST_HALF)

struct hist {
    uint64_t counts[HIST_LEN];
    uint64_t total;
    uint64_t min, max;   /* exact extremes (min is UINT64_MAX when empty) */
};

void hist_init(struct hist *h);
void hist_record(struct hist *h, uint64_t v);
/* Add count samples to bucket idx (used to merge a histogram that arrives
 * bucket by bucket through a pipe); returns -1 if idx is out of range. */
int hist_add_bucket(struct hist *h, uint32_t idx, uint64_t count);
void hist_merge_minmax(struct hist *h, uint64_t min, uint64_t max);
uint32_t hist_index(uint64_t v);
/* Largest value that lands in the same bucket as idx. */
uint64_t hist_bucket_high(uint32_t idx);
/* Value at percentile p (0..100], HdrHistogram semantics: the highest value
 * equivalent to the sample at rank ceil(p/100 * total), clamped to [min,max]. */
uint64_t hist_percentile(const struct hist *h, double p);
double hist_mean(const struct hist *h);
double hist_stdev(const struct hist *h);

#endif
