/* stats_internal.h - helpers shared inside src/stats only. */
#ifndef CBQ_STATS_INTERNAL_H
#define CBQ_STATS_INTERNAL_H

#include <stddef.h>
#include "cbctiq/stats.h"

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
