/* partial.c - partial Spearman correlation of x and y given covariates:
 * rank every variable (average ranks), regress rank(x) and rank(y) on an
 * intercept and the covariates' ranks by least squares, and correlate the
 * residuals (Pearson); p by Student's t with n - 2 - k df, at least
 * CBQ_PARTIAL_MIN_DF. */
#include "stats_internal.h"

#include <gsl/gsl_multifit.h>
#include <math.h>
#include <stdlib.h>

/* Residuals of v on the design matrix X (n x (k+1)), written to res. */
static int residuals(const gsl_matrix *X, const double *v, size_t n, double *res, cbq_error *err)
{
    size_t p = X->size2;
    gsl_vector_const_view yv = gsl_vector_const_view_array(v, n);
    gsl_vector *c = gsl_vector_alloc(p);
    gsl_matrix *cov = gsl_matrix_alloc(p, p);
    gsl_multifit_linear_workspace *ws = gsl_multifit_linear_alloc(n, p);
    gsl_vector_view rv = gsl_vector_view_array(res, n);
    int rc = CBQ_OK;
    double chisq;
    if (!c || !cov || !ws)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "partial correlation: out of memory");
    else if (gsl_multifit_linear(X, &yv.vector, c, cov, &chisq, ws) != 0 ||
             gsl_multifit_linear_residuals(X, &yv.vector, c, &rv.vector) != 0)
        rc = CBQ_FAIL(err, CBQ_ERR_INTERNAL, "partial correlation: least squares failed");
    gsl_vector_free(c);
    gsl_matrix_free(cov);
    gsl_multifit_linear_free(ws);
    return rc;
}

int cbq_partial_spearman(const double *x, const double *y, const double *const *z, size_t k,
                         size_t n, cbq_corr *out, cbq_error *err)
{
    stats_gsl_quiet();
    out->p_method = "t";
    const char *why = stats_why_undefined(x, y, n);
    /* The residuals of n points on k + 1 parameters live in n - k - 1
     * dimensions: at df = n - 2 - k = 1 their correlation is +-1 whatever
     * the data, and at df = 2 it is little better. */
    if (!why && n < k + 2 + CBQ_PARTIAL_MIN_DF)
        why = "fewer than 3 degrees of freedom (n - 2 - k, k covariates): too few volumes for a "
              "partial correlation";
    for (size_t j = 0; !why && j < k; j++)
        for (size_t i = 0; i < n; i++)
            if (!isfinite(z[j][i]))
                why = "a covariate value is missing or not finite";
    if (why) {
        stats_corr_undefined(out, n, why);
        return CBQ_OK;
    }
    double *buf = malloc(5 * n * sizeof *buf);
    gsl_matrix *X = gsl_matrix_alloc(n, k + 1);
    int rc = buf && X ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "partial correlation: out of memory");
    double *rx = buf, *ry = buf + n, *rz = buf + 2 * n, *ex = buf + 3 * n, *ey = buf + 4 * n;
    for (size_t i = 0; rc == CBQ_OK && i < n; i++)
        gsl_matrix_set(X, i, 0, 1.0);
    for (size_t j = 0; rc == CBQ_OK && j < k; j++) {
        rc = cbq_rank_average(z[j], n, rz, err);
        for (size_t i = 0; rc == CBQ_OK && i < n; i++)
            gsl_matrix_set(X, i, j + 1, rz[i]);
    }
    if (rc == CBQ_OK)
        rc = cbq_rank_average(x, n, rx, err);
    if (rc == CBQ_OK)
        rc = cbq_rank_average(y, n, ry, err);
    if (rc == CBQ_OK)
        rc = residuals(X, rx, n, ex, err);
    if (rc == CBQ_OK)
        rc = residuals(X, ry, n, ey, err);
    if (rc == CBQ_OK) {
        out->n = n;
        out->r = stats_pearson_r(ex, ey, n);
        out->p = cbq_corr_t_pvalue(out->r, (double)n - 2.0 - (double)k);
        out->reason = isnan(out->r) ? "a residual is constant (x or y explained by the covariates)" : NULL;
    }
    free(buf);
    gsl_matrix_free(X);
    return rc;
}
