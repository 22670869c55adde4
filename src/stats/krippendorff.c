/* krippendorff.c - Krippendorff's alpha for interval and ordinal data with
 * missing values, through the coincidence matrix (Krippendorff 2011,
 * "Computing Krippendorff's Alpha-Reliability"): alpha = 1 - D_o / D_e with
 * D_o = sum_ck o_ck delta2_ck / n and D_e = sum_ck n_c n_k delta2_ck / (n (n-1)). */
#include "cbctiq/ratings.h"

#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdlib.h>

/* Index of v in the sorted distinct values (binary search). */
static size_t value_index(const double *vals, size_t nv, double v)
{
    size_t lo = 0, hi = nv;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (vals[mid] <= v)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static double delta2(cbq_alpha_metric metric, const double *vals, const double *nc, size_t c,
                     size_t k)
{
    if (metric == CBQ_ALPHA_INTERVAL)
        return (vals[c] - vals[k]) * (vals[c] - vals[k]);
    size_t lo = c < k ? c : k, hi = c < k ? k : c;
    double s = 0;
    for (size_t g = lo; g <= hi; g++)
        s += nc[g];
    s -= (nc[c] + nc[k]) / 2.0;
    return s * s;
}

int cbq_krippendorff_alpha(const double *m, size_t n_units, size_t n_coders,
                           cbq_alpha_metric metric, double *alpha, const char **reason,
                           cbq_error *err)
{
    *alpha = NAN;
    *reason = NULL;
    size_t total = n_units * n_coders, nv = 0;
    double *vals = malloc((total + 1) * sizeof *vals);
    double *u = malloc((n_coders + 1) * sizeof *u);
    if (!vals || !u) {
        free(vals);
        free(u);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "Krippendorff's alpha: out of memory");
    }
    /* distinct values among pairable units */
    for (size_t i = 0; i < n_units; i++) {
        size_t mu = 0;
        for (size_t j = 0; j < n_coders; j++)
            mu += !isnan(m[i * n_coders + j]);
        for (size_t j = 0; mu >= 2 && j < n_coders; j++)
            if (!isnan(m[i * n_coders + j]))
                vals[nv++] = m[i * n_coders + j];
    }
    gsl_sort(vals, 1, nv);
    size_t nd = 0;
    for (size_t i = 0; i < nv; i++)
        if (nd == 0 || vals[i] != vals[nd - 1])
            vals[nd++] = vals[i];
    double *o = calloc(nd * nd + nd + 1, sizeof *o), *nc = o + nd * nd;
    if (!o) {
        free(vals);
        free(u);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "Krippendorff's alpha: out of memory");
    }
    for (size_t i = 0; i < n_units; i++) {
        size_t mu = 0;
        for (size_t j = 0; j < n_coders; j++)
            if (!isnan(m[i * n_coders + j]))
                u[mu++] = m[i * n_coders + j];
        if (mu < 2)
            continue;
        for (size_t a = 0; a < mu; a++)
            for (size_t b = 0; b < mu; b++)
                if (a != b)
                    o[value_index(vals, nd, u[a]) * nd + value_index(vals, nd, u[b])] +=
                        1.0 / (double)(mu - 1);
    }
    double n = 0;
    for (size_t c = 0; c < nd; c++) {
        for (size_t k = 0; k < nd; k++)
            nc[c] += o[c * nd + k];
        n += nc[c];
    }
    double d_o = 0, d_e = 0;
    for (size_t c = 0; c < nd; c++)
        for (size_t k = 0; k < nd; k++) {
            double d = delta2(metric, vals, nc, c, k);
            d_o += o[c * nd + k] * d;
            d_e += nc[c] * nc[k] * d;
        }
    if (nd < 2 || n < 2 || d_e == 0)
        *reason = nd < 2 ? "alpha undefined: fewer than 2 distinct values among pairable ratings"
                         : "alpha undefined: no expected disagreement";
    else
        *alpha = 1.0 - (n - 1.0) * d_o / d_e;
    free(vals);
    free(u);
    free(o);
    return CBQ_OK;
}
