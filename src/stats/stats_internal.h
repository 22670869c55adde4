/* stats_internal.h - helpers shared inside src/stats only. */
#ifndef CBQ_STATS_INTERNAL_H
#define CBQ_STATS_INTERNAL_H

#include <stddef.h>
#include "cbctiq/stats.h"
#include "cbctiq/rng.h"

/* Uniform integers below n < 2^32 from 32-bit halves of the generator's
 * output (Lemire's unbiased multiply-shift): half the generator calls of
 * cbq_rng_below in the resampling loops. */
typedef struct {
    cbq_rng *rng;
    uint64_t spare;
    int have_spare;
} stats_draw32;

static inline uint32_t stats_next32(stats_draw32 *d)
{
    if (d->have_spare) {
        d->have_spare = 0;
        return (uint32_t)(d->spare >> 32);
    }
    d->spare = cbq_rng_u64(d->rng);
    d->have_spare = 1;
    return (uint32_t)d->spare;
}

static inline uint32_t stats_below32(stats_draw32 *d, uint32_t n)
{
    uint64_t m = (uint64_t)stats_next32(d) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)stats_next32(d) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* Below this much work (items x size) a resampling loop runs on one thread:
 * waking a team costs more than it saves. The result is the same either way. */
#define STATS_PARALLEL_MIN_WORK 4000000.0

/* GSL's default error handler aborts the process (e.g. on underflow in a
 * tail probability); the statistics check their own inputs and read GSL's
 * return values, so the handler is switched off. Call from serial code. */
void stats_gsl_quiet(void);

/* Pearson r of x, y (two-pass, deviations from the mean); NaN when either is
 * constant. */
double stats_pearson_r(const double *x, const double *y, size_t n);

/* sxy / sqrt(sxx syy) clipped to [-1, 1]; NaN when sxx or syy is 0. */
double stats_r_from_sums(double sxy, double sxx, double syy);

/* 1 if every x[i] equals x[0]. */
int stats_is_constant(const double *x, size_t n);

/* Why a correlation of x, y is undefined (n < 3, non-finite, constant), or NULL. */
const char *stats_why_undefined(const double *x, const double *y, size_t n);

/* Sets out to undefined with a reason. */
void stats_corr_undefined(cbq_corr *out, size_t n, const char *reason);

/* Median of v[0..n) ignoring NaN (NumPy's: mean of the two middle values). */
double stats_median(const double *v, size_t n, double *scratch);

/* rho[i]: Spearman of the sample without point i (NaN when constant). */
int stats_loo_rhos(const double *x, const double *y, size_t n, double *rho, cbq_error *err);

#endif
