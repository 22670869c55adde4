/* pearson.c - Pearson's r with the exact p-value of scipy.stats.pearsonr:
 * under independence of normal data r follows Beta(n/2-1, n/2-1) on [-1, 1]. */
#include "stats_internal.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <math.h>

void stats_gsl_quiet(void) { gsl_set_error_handler_off(); }

int stats_is_constant(const double *x, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (x[i] != x[0])
            return 0;
    return 1;
}

void stats_corr_undefined(cbq_corr *out, size_t n, const char *reason)
{
    out->n = n;
    out->r = NAN;
    out->p = NAN;
    out->reason = reason;
}

double stats_pearson_r(const double *x, const double *y, size_t n)
{
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    return stats_r_from_sums(sxy, sxx, syy);
}

double stats_r_from_sums(double sxy, double sxx, double syy)
{
    if (sxx == 0.0 || syy == 0.0)
        return NAN;
    /* sqrt(s * s) == s exactly, so identical rankings give exactly +-1 (as
     * SciPy does) and the t p-value is exactly 0, not 1e-8 from 1 - eps. */
    double den = sxx * syy;
    den = isfinite(den) && den > 0 ? sqrt(den) : sqrt(sxx) * sqrt(syy);
    double r = sxy / den;
    return r > 1.0 ? 1.0 : r < -1.0 ? -1.0 : r;
}

/* Checks shared by every correlation: enough points, finite, not constant. */
const char *stats_why_undefined(const double *x, const double *y, size_t n)
{
    if (n < 3)
        return "fewer than 3 paired values";
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]) || !isfinite(y[i]))
            return "a value is missing or not finite";
    if (stats_is_constant(x, n))
        return "x is constant (all values tied)";
    if (stats_is_constant(y, n))
        return "y is constant (all values tied)";
    return NULL;
}

int cbq_pearson(const double *x, const double *y, size_t n, cbq_corr *out, cbq_error *err)
{
    (void)err;
    stats_gsl_quiet();
    out->p_method = "beta";
    const char *why = stats_why_undefined(x, y, n);
    if (why) {
        stats_corr_undefined(out, n, why);
        return CBQ_OK;
    }
    double r = stats_pearson_r(x, y, n);
    double ab = (double)n / 2.0 - 1.0;
    /* 2 * sf(|r|) of the Beta on [-1, 1]; SciPy standardises |r| to
     * (|r| + 1) / 2 first, so the lower tail is taken at 1 minus that. */
    double xs = 1.0 - (fabs(r) + 1.0) / 2.0;
    double p = 2.0 * gsl_cdf_beta_P(xs, ab, ab);
    out->n = n;
    out->r = r;
    out->p = p > 1.0 ? 1.0 : p;
    out->reason = NULL;
    return CBQ_OK;
}
