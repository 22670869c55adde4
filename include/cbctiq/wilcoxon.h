/* wilcoxon.h - the Wilcoxon signed-rank test of paired samples, as
 * scipy.stats.wilcoxon (SciPy 1.10) computes it with zero_method='wilcox'
 * and correction=False. The study uses it to ask whether a model's absolute
 * errors are smaller than those of the constant training-mean predictor on
 * the same volumes (docs/statistics.md says why this test).
 *
 * Like stats.h: an undefined test (no pair, a non-finite value, every
 * difference zero) is not an error: p is NaN and `reason` says why. */
#ifndef CBCTIQ_WILCOXON_H
#define CBCTIQ_WILCOXON_H

#include <stddef.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The alternative hypothesis about d = x - y (SciPy's `alternative`). */
typedef enum {
    CBQ_ALT_TWO_SIDED,
    CBQ_ALT_LESS,    /* d tends to be negative: x smaller than y */
    CBQ_ALT_GREATER, /* d tends to be positive */
} cbq_alternative;

typedef struct {
    size_t n;             /* pairs given */
    size_t n_used;        /* pairs with a nonzero difference (the test's n) */
    double w_plus;        /* sum of the ranks of |d| where d > 0 */
    double w_minus;       /* where d < 0; w_plus + w_minus = n_used (n_used + 1) / 2 */
    double statistic;     /* SciPy's: w_plus one-sided, min(w_plus, w_minus) two-sided */
    double z;             /* normal approximation's z; NaN when exact */
    double p;             /* NaN when undefined */
    const char *p_method; /* "exact" or "normal" */
    const char *reason;   /* NULL when defined, else why not (static) */
} cbq_wilcoxon;

/* Signed-rank test of d[i] = x[i] - y[i], i < n. Zero differences are
 * dropped (zero_method='wilcox'). p is exact (the null distribution of
 * w_plus over all 2^n_used sign patterns) when n_used <= 50 and no |d| is
 * tied and none was zero; otherwise the normal approximation with the
 * tie-corrected variance and no continuity correction. */
int cbq_wilcoxon_signed_rank(const double *x, const double *y, size_t n, cbq_alternative alt,
                             cbq_wilcoxon *out, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
