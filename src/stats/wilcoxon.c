/* wilcoxon.c - the Wilcoxon signed-rank test (Wilcoxon 1945), following
 * scipy.stats.wilcoxon of SciPy 1.10 (zero_method='wilcox', correction=False):
 * zero differences dropped, |d| ranked with ties averaged, w_plus the rank sum
 * of the positive differences. Exact p from the null distribution of w_plus
 * (each sign pattern equally likely: the number of subsets of {1..n} with a
 * given sum, counted by dynamic programming) when n <= 50 with no tie and no
 * zero; otherwise the normal approximation with mean n(n+1)/4 and variance
 * [n(n+1)(2n+1) - sum t(t^2-1)/2] / 24 over tie groups of size t. */
#include "cbctiq/wilcoxon.h"

#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdlib.h>

#include "cbctiq/stats.h"

/* SciPy 1.10's limit for method='auto' choosing the exact distribution. */
enum { EXACT_MAX_N = 50 };

static void set_undefined(cbq_wilcoxon *out, const char *reason)
{
    out->w_plus = out->w_minus = out->statistic = out->z = out->p = NAN;
    out->reason = reason;
}

/* Sum over tie groups of |d| of t (t^2 - 1), for the variance; sorts a. */
static double tie_term(double *a, size_t n)
{
    gsl_sort(a, 1, n);
    double sum = 0;
    for (size_t k = 0; k < n;) {
        size_t end = k + 1;
        while (end < n && a[end] == a[k])
            end++;
        double t = (double)(end - k);
        sum += t * (t * t - 1);
        k = end;
    }
    return sum;
}

/* P(W+ <= w) and P(W+ >= w) for n untied nonzero differences. Counts of
 * subsets of {1..n} by sum are exact in a double up to 2^53 > 2^50. */
static int exact_tails(size_t n, double w, double *p_le, double *p_ge, cbq_error *err)
{
    size_t max_sum = n * (n + 1) / 2;
    double *count = calloc(max_sum + 1, sizeof *count);
    if (!count)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "wilcoxon: out of memory");
    count[0] = 1;
    for (size_t r = 1; r <= n; r++)
        for (size_t s = r * (r + 1) / 2; s >= r; s--)
            count[s] += count[s - r];
    size_t wi = (size_t)w;
    double le = 0, ge = 0;
    for (size_t s = 0; s <= max_sum; s++) {
        if (s <= wi)
            le += count[s];
        if (s >= wi)
            ge += count[s];
    }
    double total = ldexp(1.0, (int)n);
    *p_le = le / total;
    *p_ge = ge / total;
    free(count);
    return CBQ_OK;
}

static double normal_cdf(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }

static int p_value(cbq_wilcoxon *out, cbq_alternative alt, int exact, double tie_sum,
                   cbq_error *err)
{
    double n = (double)out->n_used;
    if (exact) {
        double p_le = NAN, p_ge = NAN;
        CBQ_TRY(exact_tails(out->n_used, out->w_plus, &p_le, &p_ge, err));
        out->p_method = "exact";
        out->z = NAN;
        if (alt == CBQ_ALT_LESS)
            out->p = p_le;
        else if (alt == CBQ_ALT_GREATER)
            out->p = p_ge;
        else /* SciPy: the centre of the distribution gives 1 */
            out->p = (size_t)out->w_plus == out->n_used * (out->n_used + 1) / 4
                         ? 1.0
                         : fmin(1.0, 2.0 * fmin(p_le, p_ge));
        return CBQ_OK;
    }
    double mean = n * (n + 1) / 4;
    double sd = sqrt((n * (n + 1) * (2 * n + 1) - 0.5 * tie_sum) / 24);
    out->p_method = "normal";
    out->z = (out->statistic - mean) / sd;
    if (alt == CBQ_ALT_LESS)
        out->p = normal_cdf(out->z);
    else if (alt == CBQ_ALT_GREATER)
        out->p = normal_cdf(-out->z);
    else
        out->p = 2.0 * normal_cdf(-fabs(out->z));
    return CBQ_OK;
}

int cbq_wilcoxon_signed_rank(const double *x, const double *y, size_t n, cbq_alternative alt,
                             cbq_wilcoxon *out, cbq_error *err)
{
    *out = (cbq_wilcoxon){.n = n, .p_method = "exact"};
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            set_undefined(out, "a value is missing or not finite");
            return CBQ_OK;
        }
    double *d = malloc((3 * n + 1) * sizeof *d), *abs_d = d + n, *rank = abs_d + n;
    if (!d)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "wilcoxon: out of memory for n = %zu", n);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] - y[i] != 0) {
            d[m] = x[i] - y[i];
            abs_d[m] = fabs(d[m]);
            m++;
        }
    out->n_used = m;
    if (m == 0) {
        set_undefined(out, n ? "every difference is zero" : "no pairs");
        free(d);
        return CBQ_OK;
    }
    int rc = cbq_rank_average(abs_d, m, rank, err);
    if (rc == CBQ_OK) {
        for (size_t i = 0; i < m; i++)
            *(d[i] > 0 ? &out->w_plus : &out->w_minus) += rank[i];
        out->statistic = alt == CBQ_ALT_TWO_SIDED ? fmin(out->w_plus, out->w_minus) : out->w_plus;
        double ties = tie_term(abs_d, m);
        int exact = m <= EXACT_MAX_N && m == n && ties == 0;
        rc = p_value(out, alt, exact, ties, err);
    }
    free(d);
    return rc;
}
