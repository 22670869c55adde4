/* kendall_w.c - Kendall's coefficient of concordance W with the correction
 * for ties (Kendall & Babington Smith 1939; Siegel & Castellan 1988, 10.2):
 * W = 12 S / (k^2 (n^3 - n) - k T), T = sum over raters and tie groups of
 * t^3 - t, and the chi-square test chi2 = k (n - 1) W on n - 1 df (the
 * Friedman statistic of scipy.stats.friedmanchisquare). */
#include "cbctiq/ratings.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>

int cbq_kendall_w_compute(const double *m, size_t n, size_t k, cbq_kendall_w *out, cbq_error *err)
{
    *out = (cbq_kendall_w){.w = NAN, .chi2 = NAN, .p = NAN, .n = n, .k = k};
    if (n < 2 || k < 2) {
        out->reason = "Kendall's W needs at least 2 volumes rated by all of at least 2 raters";
        return CBQ_OK;
    }
    double *col = malloc(2 * n * sizeof *col), *rank = col + n, *rsum = calloc(n, sizeof *rsum);
    if (!col || !rsum) {
        free(col);
        free(rsum);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "Kendall's W: out of memory");
    }
    double t_corr = 0;
    int rc = CBQ_OK;
    for (size_t j = 0; rc == CBQ_OK && j < k; j++) {
        for (size_t i = 0; i < n; i++)
            col[i] = m[i * k + j];
        rc = cbq_rank_average(col, n, rank, err);
        for (size_t i = 0; i < n; i++)
            rsum[i] += rank[i];
        /* tie groups: count how many share each rank */
        for (size_t i = 0; i < n; i++) {
            size_t t = 0, first = 1;
            for (size_t q = 0; q < n; q++) {
                if (rank[q] == rank[i]) {
                    t++;
                    if (q < i)
                        first = 0;
                }
            }
            if (first && t > 1)
                t_corr += (double)t * t * t - (double)t;
        }
    }
    if (rc == CBQ_OK) {
        double nn = (double)n, kk = (double)k, mean = kk * (nn + 1) / 2, s = 0;
        for (size_t i = 0; i < n; i++)
            s += (rsum[i] - mean) * (rsum[i] - mean);
        double den = kk * kk * (nn * nn * nn - nn) - kk * t_corr;
        if (den <= 0) {
            out->reason = "Kendall's W undefined: every rater gave all volumes the same score";
        } else {
            out->w = 12 * s / den;
            out->chi2 = kk * (nn - 1) * out->w;
            out->p = gsl_cdf_chisq_Q(out->chi2, nn - 1);
        }
    }
    free(col);
    free(rsum);
    return rc;
}
