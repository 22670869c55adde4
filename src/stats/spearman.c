/* spearman.c - Spearman's rho (Pearson on average ranks) with the t-test
 * p-value of scipy.stats.spearmanr. */
#include "stats_internal.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>

double cbq_corr_t_pvalue(double r, double df)
{
    if (!isfinite(r) || !(df > 0))
        return NAN;
    if (fabs(r) >= 1.0)
        return 0.0;
    /* t = r sqrt(df / ((1 + r)(1 - r))); the two-sided tail of Student's t
     * is the regularised incomplete beta I_{df/(df+t^2)}(df/2, 1/2). */
    double t = r * sqrt(df / ((r + 1.0) * (1.0 - r)));
    double xb = df / (df + t * t);
    double p = gsl_cdf_beta_P(xb, df / 2.0, 0.5);
    return p > 1.0 ? 1.0 : p;
}

int cbq_spearman(const double *x, const double *y, size_t n, cbq_corr *out, cbq_error *err)
{
    stats_gsl_quiet();
    out->p_method = "t";
    const char *why = stats_why_undefined(x, y, n);
    if (why) {
        stats_corr_undefined(out, n, why);
        return CBQ_OK;
    }
    double *rx = malloc(2 * n * sizeof *rx);
    if (!rx)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "spearman: out of memory for n = %zu", n);
    double *ry = rx + n;
    int rc = cbq_rank_average(x, n, rx, err);
    if (rc == CBQ_OK)
        rc = cbq_rank_average(y, n, ry, err);
    if (rc == CBQ_OK) {
        out->n = n;
        out->r = stats_pearson_r(rx, ry, n);
        out->p = cbq_corr_t_pvalue(out->r, (double)n - 2.0);
        out->reason = NULL;
    }
    free(rx);
    return rc;
}
