/* stats.h - rank correlation and its inference, as the study needs it.
 *
 * Every estimator follows a SciPy 1.10 function and matches it to rounding
 * (docs/statistics.md gives each formula and its SciPy equivalent). An
 * undefined statistic (n < 3, a constant input) is not an error: the result
 * carries NaN values and a static `reason` string, and callers write null.
 * Errors (CBQ_ERR_NOMEM, CBQ_ERR_ARG) are reserved for real failures.
 *
 * Randomised procedures take a seed and derive one cbq_rng stream per
 * resample or permutation, so results are identical for any thread count.
 * Parallel loops use OpenMP with the caller's omp_set_num_threads().
 */
#ifndef CBCTIQ_STATS_H
#define CBCTIQ_STATS_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A correlation coefficient and its two-sided p-value. */
typedef struct {
    size_t n;
    double r;             /* NaN when undefined */
    double p;             /* NaN when undefined */
    const char *p_method; /* "t", "beta", "exact", "asymptotic" */
    const char *reason;   /* NULL when defined, else why not (static) */
} cbq_corr;

/* ---- ranks.c ---- */
/* 1-based ranks of x[0..n) with ties given their average rank (SciPy
 * rankdata(method='average')). ranks: n doubles written. */
int cbq_rank_average(const double *x, size_t n, double *ranks, cbq_error *err);

/* ---- pearson.c / spearman.c / kendall.c ---- */
/* Pearson r; p from the exact null Beta(n/2-1, n/2-1) on [-1, 1] (pearsonr). */
int cbq_pearson(const double *x, const double *y, size_t n, cbq_corr *out, cbq_error *err);
/* Spearman rho (Pearson on average ranks); p from Student's t with n-2 df
 * (spearmanr). */
int cbq_spearman(const double *x, const double *y, size_t n, cbq_corr *out, cbq_error *err);
/* Kendall tau-b; p exact when there are no ties and n <= 33 (or the
 * discordant count is 0 or 1 from an end), else normal with tie-corrected
 * variance (kendalltau, method='auto'). */
int cbq_kendall(const double *x, const double *y, size_t n, cbq_corr *out, cbq_error *err);
/* Two-sided p of a correlation r on df degrees of freedom by the t test. */
double cbq_corr_t_pvalue(double r, double df);

/* ---- partial.c ---- */
/* Partial Spearman of x and y given k covariates z[j][0..n): Pearson
 * correlation of the residuals of rank(x) and rank(y) after least squares on
 * [1, rank(z_1) .. rank(z_k)]; p by t with n-2-k df. Undefined (NaN and a
 * reason) below CBQ_PARTIAL_MIN_DF degrees of freedom. */
enum { CBQ_PARTIAL_MIN_DF = 3 };
int cbq_partial_spearman(const double *x, const double *y, const double *const *z, size_t k,
                         size_t n, cbq_corr *out, cbq_error *err);

/* ---- permutation.c ---- */
typedef struct {
    double p;           /* two-sided, SciPy permutation_test convention */
    size_t n_perm;      /* permutations counted (n! when exact) */
    int exact;          /* 1: all n! permutations */
    const char *reason; /* NULL when defined */
} cbq_perm;
/* Permutation p of Spearman's rho: all n! pairings when n <= exact_max_n
 * (at most 12), else n_perm seeded random permutations with p =
 * (count + 1) / (n_perm + 1) per tail; two-sided = min(1, 2 min(tails)). */
int cbq_spearman_perm(const double *x, const double *y, size_t n, size_t exact_max_n,
                      size_t n_perm, uint64_t seed, cbq_perm *out, cbq_error *err);

/* ---- bootstrap.c ---- */
typedef struct {
    size_t n_boot;      /* resamples drawn */
    size_t n_valid;     /* resamples where rho is defined (used) */
    double percentile[2];
    double bca[2];
    double z0, accel;   /* BCa bias correction and acceleration */
    const char *reason; /* NULL when defined */
} cbq_boot;
/* Paired bootstrap CI (level conf, e.g. 0.95) of Spearman's rho: resample b
 * draws n indices uniformly from stream (seed, b). Percentile and BCa as in
 * scipy.stats.bootstrap (jackknife acceleration from the leave-one-out
 * rhos). Resamples with a constant column are left out (n_valid counts the
 * rest). dump_idx: NULL, or n_boot * n uint32 receiving the drawn indices. */
int cbq_spearman_bootstrap(const double *x, const double *y, size_t n, size_t n_boot, double conf,
                           uint64_t seed, cbq_boot *out, uint32_t *dump_idx, cbq_error *err);
/* Fisher-z interval tanh(atanh(r) +- z_{(1+conf)/2} / sqrt(n - 3)); NaN when
 * n < 4 or r undefined. */
void cbq_fisher_ci(double r, size_t n, double conf, double ci[2]);

/* ---- loo.c ---- */
typedef struct {
    size_t n;
    double *rho;        /* n: rho without volume i (NaN if undefined) */
    double *p;          /* n: its t p-value */
    double *influence;  /* n: rho_all - rho[i] */
    double median_rho, median_p, min_rho, max_rho;
    double jackknife_se;
    const char *reason; /* NULL when defined */
} cbq_loo;
/* Leave-one-out Spearman: n correlations on n-1 points. Owns its arrays
 * (free with cbq_loo_free). rho_all: the full-sample rho. */
int cbq_spearman_loo(const double *x, const double *y, size_t n, double rho_all, cbq_loo *out,
                     cbq_error *err);
void cbq_loo_free(cbq_loo *loo);

/* ---- adjust.c ---- */
/* Holm and Benjamini-Hochberg adjusted p-values of p[0..m); NaN entries are
 * left out of the family and stay NaN. */
int cbq_p_adjust_holm(const double *p, size_t m, double *adj, cbq_error *err);
int cbq_p_adjust_bh(const double *p, size_t m, double *adj, cbq_error *err);

/* ---- weighted rank correlation kernel (ranks.c), shared by LOO/bootstrap ---- */
/* Precomputed ordering of a sample, used to rank any multiset of its points
 * (counts c[i] copies of point i) in O(n). */
typedef struct {
    size_t n;
    size_t *order;       /* indices sorted by value */
    size_t *group_end;   /* for sorted position k: one past the end of its tie group */
} cbq_rank_plan;
int cbq_rank_plan_init(cbq_rank_plan *plan, const double *x, size_t n, cbq_error *err);
void cbq_rank_plan_free(cbq_rank_plan *plan);
/* Average ranks (within the multiset) of every point with counts[i] > 0;
 * others get 0. */
void cbq_rank_plan_ranks(const cbq_rank_plan *plan, const uint32_t *counts, double *ranks);
/* Spearman rho of the multiset given by counts (NaN when a column is
 * constant). rx, ry: n doubles of scratch. */
double cbq_spearman_counts(const cbq_rank_plan *px, const cbq_rank_plan *py,
                           const uint32_t *counts, double *rx, double *ry);

#ifdef __cplusplus
}
#endif
#endif
