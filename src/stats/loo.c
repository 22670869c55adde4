/* loo.c - leave-one-out Spearman as in the poster: for n volumes the n
 * correlations on n-1 volumes, their t p-values, medians, extremes, each
 * volume's influence rho_all - rho_without_it, and the jackknife standard
 * error sqrt((n-1)/n sum (rho_(i) - mean rho_(.))^2) (Efron & Tibshirani
 * 1993, eq. 11.5). */
#include "stats_internal.h"

#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double stats_median(const double *v, size_t n, double *scratch)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(v[i]))
            scratch[m++] = v[i];
    if (m == 0)
        return NAN;
    gsl_sort(scratch, 1, m);
    return m % 2 ? scratch[m / 2] : 0.5 * (scratch[m / 2 - 1] + scratch[m / 2]);
}

void cbq_loo_free(cbq_loo *loo)
{
    free(loo->rho);
    loo->rho = loo->p = loo->influence = NULL;
}

/* rho of the sample without each point, through the O(n) multiset ranker. */
int stats_loo_rhos(const double *x, const double *y, size_t n, double *rho, cbq_error *err)
{
    cbq_rank_plan px = {0}, py = {0};
    uint32_t *counts = malloc(n * sizeof *counts);
    double *scratch = malloc(2 * n * sizeof *scratch);
    int rc = counts && scratch ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "leave-one-out: out of memory");
    if (rc == CBQ_OK)
        rc = cbq_rank_plan_init(&px, x, n, err);
    if (rc == CBQ_OK)
        rc = cbq_rank_plan_init(&py, y, n, err);
    if (rc == CBQ_OK) {
        for (size_t i = 0; i < n; i++)
            counts[i] = 1;
        for (size_t i = 0; i < n; i++) {
            counts[i] = 0;
            rho[i] = cbq_spearman_counts(&px, &py, counts, scratch, scratch + n);
            counts[i] = 1;
        }
    }
    cbq_rank_plan_free(&px);
    cbq_rank_plan_free(&py);
    free(counts);
    free(scratch);
    return rc;
}

int cbq_spearman_loo(const double *x, const double *y, size_t n, double rho_all, cbq_loo *out,
                     cbq_error *err)
{
    stats_gsl_quiet();
    memset(out, 0, sizeof *out);
    out->n = n;
    out->median_rho = out->median_p = out->min_rho = out->max_rho = out->jackknife_se = NAN;
    const char *why = stats_why_undefined(x, y, n);
    if (!why && n < 4)
        why = "leave-one-out needs at least 4 volumes (3 left in each subset)";
    if (why) {
        out->reason = why;
        return CBQ_OK;
    }
    double *block = malloc(4 * n * sizeof *block);
    if (!block)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "leave-one-out: out of memory");
    out->rho = block;
    out->p = block + n;
    out->influence = block + 2 * n;
    double *scratch = block + 3 * n;
    int rc = stats_loo_rhos(x, y, n, out->rho, err);
    if (rc != CBQ_OK) {
        cbq_loo_free(out);
        return rc;
    }
    double mean = 0;
    size_t n_def = 0;
    out->min_rho = INFINITY;
    out->max_rho = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        out->p[i] = cbq_corr_t_pvalue(out->rho[i], (double)n - 3.0);
        out->influence[i] = rho_all - out->rho[i];
        if (isnan(out->rho[i]))
            continue;
        n_def++;
        mean += out->rho[i];
        out->min_rho = fmin(out->min_rho, out->rho[i]);
        out->max_rho = fmax(out->max_rho, out->rho[i]);
    }
    if (n_def == 0) {
        out->min_rho = out->max_rho = NAN;
        out->reason = "every leave-one-out subset has a constant column";
        return CBQ_OK;
    }
    out->median_rho = stats_median(out->rho, n, scratch);
    out->median_p = stats_median(out->p, n, scratch);
    if (n_def == n) {
        mean /= (double)n;
        double ss = 0;
        for (size_t i = 0; i < n; i++)
            ss += (out->rho[i] - mean) * (out->rho[i] - mean);
        out->jackknife_se = sqrt((double)(n - 1) / (double)n * ss);
    }
    return CBQ_OK;
}
