/* kendall.c - Kendall's tau-b with the p-value of scipy.stats.kendalltau
 * (method='auto'): exact null distribution of the discordant count when there
 * are no ties and n <= 33 (or the count is within 1 of an end), otherwise the
 * normal approximation with the tie-corrected variance (Kendall 1970). Pairs
 * are counted directly in O(n^2): n is a number of volumes. */
#include "stats_internal.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_sf_gamma.h>
#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdlib.h>

typedef struct {
    double ties;   /* pairs tied: sum t(t-1)/2 over tie groups */
    double v0;     /* sum t(t-1)(t-2) */
    double v1;     /* sum t(t-1)(2t+5) */
} tie_sums;

static int tie_stats(const double *x, size_t n, tie_sums *ts, cbq_error *err)
{
    double *s = malloc(n * sizeof *s);
    if (!s)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "kendall: out of memory");
    for (size_t i = 0; i < n; i++)
        s[i] = x[i];
    gsl_sort(s, 1, n);
    *ts = (tie_sums){0, 0, 0};
    for (size_t k = 0; k < n;) {
        size_t end = k + 1;
        while (end < n && s[end] == s[k])
            end++;
        double t = (double)(end - k);
        if (end - k > 1) {
            ts->ties += t * (t - 1) / 2;
            ts->v0 += t * (t - 1) * (t - 2);
            ts->v1 += t * (t - 1) * (2 * t + 5);
        }
        k = end;
    }
    free(s);
    return CBQ_OK;
}

/* Two-sided exact p for c = number of discordant (or concordant) pairs,
 * following the recursion for the count of permutations with c inversions
 * (Kendall, Rank Correlation Methods, 1970), as SciPy evaluates it. */
static int kendall_p_exact(size_t n, uint64_t c_in, double *p, cbq_error *err)
{
    uint64_t tot = (uint64_t)n * (n - 1) / 2;
    uint64_t c = c_in < tot - c_in ? c_in : tot - c_in;
    if (n <= 2) {
        *p = 1.0;
        return CBQ_OK;
    }
    if (c == 0) {
        *p = n < 171 ? 2.0 / gsl_sf_fact((unsigned)n) : 0.0;
        return CBQ_OK;
    }
    if (c == 1) {
        *p = n < 172 ? 2.0 / gsl_sf_fact((unsigned)(n - 1)) : 0.0;
        return CBQ_OK;
    }
    if (4 * c == (uint64_t)n * (n - 1)) {
        *p = 1.0;
        return CBQ_OK;
    }
    double *cnt = calloc(c + 1, sizeof *cnt), *old = malloc((c + 1) * sizeof *old);
    if (!cnt || !old) {
        free(cnt);
        free(old);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "kendall exact p: out of memory");
    }
    int scaled = n >= 171; /* beyond n! in double: divide by j at each step */
    cnt[0] = 1.0;
    cnt[1] = 1.0;
    for (size_t j = 3; j <= n; j++) {
        for (uint64_t i = 1; i <= c; i++)
            cnt[i] += cnt[i - 1];
        if (scaled)
            for (uint64_t i = 0; i <= c; i++)
                cnt[i] /= (double)j;
        if (j <= c) {
            for (uint64_t i = 0; i <= c; i++)
                old[i] = cnt[i];
            for (uint64_t i = j; i <= c; i++)
                cnt[i] -= old[i - j];
        }
    }
    double sum = 0;
    for (uint64_t i = 0; i <= c; i++)
        sum += cnt[i];
    *p = scaled ? sum : 2.0 * sum / gsl_sf_fact((unsigned)n);
    if (*p > 1.0)
        *p = 1.0;
    free(cnt);
    free(old);
    return CBQ_OK;
}

int cbq_kendall(const double *x, const double *y, size_t n, cbq_corr *out, cbq_error *err)
{
    stats_gsl_quiet();
    const char *why = stats_why_undefined(x, y, n);
    out->p_method = "asymptotic";
    if (why) {
        stats_corr_undefined(out, n, why);
        return CBQ_OK;
    }
    uint64_t dis = 0, con = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            double dx = x[i] - x[j], dy = y[i] - y[j];
            if (dx == 0 || dy == 0)
                continue;
            if ((dx > 0) == (dy > 0))
                con++;
            else
                dis++;
        }
    tie_sums tx, ty;
    CBQ_TRY(tie_stats(x, n, &tx, err));
    CBQ_TRY(tie_stats(y, n, &ty, err));
    double tot = (double)n * (double)(n - 1) / 2.0;
    double cmd = (double)con - (double)dis;
    double tau = cmd / sqrt(tot - tx.ties) / sqrt(tot - ty.ties);
    tau = tau > 1.0 ? 1.0 : tau < -1.0 ? -1.0 : tau;
    uint64_t itot = (uint64_t)n * (n - 1) / 2;
    uint64_t mind = dis < itot - dis ? dis : itot - dis;
    out->n = n;
    out->r = tau;
    out->reason = NULL;
    if (tx.ties == 0 && ty.ties == 0 && (n <= 33 || mind <= 1)) {
        out->p_method = "exact";
        return kendall_p_exact(n, itot - dis, &out->p, err);
    }
    double m = (double)n * ((double)n - 1.0);
    double var = (m * (2.0 * (double)n + 5.0) - tx.v1 - ty.v1) / 18.0 +
                 (2.0 * tx.ties * ty.ties) / m + tx.v0 * ty.v0 / (9.0 * m * ((double)n - 2.0));
    double z = cmd / sqrt(var);
    out->p = 2.0 * gsl_cdf_ugaussian_Q(fabs(z));
    return CBQ_OK;
}
