/* adjust.c - multiple-testing adjustment across categories: Holm's step-down
 * (Holm 1979) and Benjamini-Hochberg's step-up (1995) adjusted p-values, the
 * same values as R's p.adjust(method = "holm" / "BH"). NaN (undefined) p
 * values are not part of the family. */
#include "stats_internal.h"

#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdlib.h>

/* Indices of the defined p-values sorted ascending; returns their count. */
static size_t sorted_defined(const double *p, size_t m, size_t *idx, double *vals)
{
    size_t k = 0;
    for (size_t i = 0; i < m; i++)
        if (!isnan(p[i]))
            vals[k++] = p[i];
    size_t *order = idx + m;
    gsl_sort_index(order, vals, 1, k);
    size_t j = 0;
    for (size_t i = 0; i < m; i++)
        if (!isnan(p[i]))
            idx[j++] = i; /* idx[j]: original index of the j-th defined value */
    for (size_t r = 0; r < k; r++)
        order[r] = idx[order[r]];
    for (size_t r = 0; r < k; r++)
        idx[r] = order[r];
    return k;
}

static int adjust(const double *p, size_t m, double *adj, int holm, cbq_error *err)
{
    size_t *idx = malloc((2 * m + 1) * sizeof *idx);
    double *vals = calloc(m + 1, sizeof *vals);
    if (!idx || !vals) {
        free(idx);
        free(vals);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "p adjustment: out of memory");
    }
    for (size_t i = 0; i < m; i++)
        adj[i] = NAN;
    size_t k = sorted_defined(p, m, idx, vals);
    if (holm) {
        double run = 0;
        for (size_t r = 0; r < k; r++) {
            double v = fmin(1.0, (double)(k - r) * p[idx[r]]);
            run = fmax(run, v);
            adj[idx[r]] = run;
        }
    } else {
        double run = 1.0;
        for (size_t r = k; r-- > 0;) {
            double v = fmin(1.0, (double)k / (double)(r + 1) * p[idx[r]]);
            run = fmin(run, v);
            adj[idx[r]] = run;
        }
    }
    free(idx);
    free(vals);
    return CBQ_OK;
}

int cbq_p_adjust_holm(const double *p, size_t m, double *adj, cbq_error *err)
{
    return adjust(p, m, adj, 1, err);
}

int cbq_p_adjust_bh(const double *p, size_t m, double *adj, cbq_error *err)
{
    return adjust(p, m, adj, 0, err);
}
