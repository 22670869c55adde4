/* permutation.c - permutation p-value of Spearman's rho, as
 * scipy.stats.permutation_test(permutation_type='pairings') defines it:
 * each tail counts null statistics at least as extreme as the observed one,
 * two-sided p = min(1, 2 min(tails)); exact over all n! pairings for small n,
 * otherwise (count + 1) / (n_perm + 1) over seeded random permutations.
 *
 * rho is a monotone function of S = sum rank(x_i) rank(y_pi(i)) because a
 * permutation keeps the ranks' mean and spread, so the null is counted on S
 * in integers (ranks doubled, ties give halves): equal statistics compare
 * equal exactly, which SciPy approximates with a 1e-14 relative tolerance. */
#include "stats_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { PERM_BLOCK = 1024 };
/* Stream ids of permutation blocks; bootstrap uses another range. */
#define PERM_STREAM_BASE 0x5045524d00000000ULL

typedef struct {
    uint64_t le, ge; /* null statistics <= / >= the observed one */
} tail_counts;

static int64_t dot_i32(const int32_t *a, const int32_t *b, size_t n)
{
    int64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += (int64_t)a[i] * b[i];
    return s;
}

/* Heap's algorithm over the first m entries of y (the rest fixed). */
static tail_counts enumerate_perms(const int32_t *rx, int32_t *y, size_t n, size_t m, int64_t obs)
{
    tail_counts tc = {0, 0};
    size_t c[16] = {0};
    int64_t s = dot_i32(rx, y, n);
    tc.le += s <= obs;
    tc.ge += s >= obs;
    for (size_t i = 1; i < m;) {
        if (c[i] < i) {
            size_t j = (i % 2 == 0) ? 0 : c[i];
            /* swapping y[j] and y[i] changes S by (rx[j]-rx[i])(y[i]-y[j]) */
            s += (int64_t)(rx[j] - rx[i]) * (y[i] - y[j]);
            int32_t t = y[j];
            y[j] = y[i];
            y[i] = t;
            tc.le += s <= obs;
            tc.ge += s >= obs;
            c[i]++;
            i = 1;
        } else {
            c[i] = 0;
            i++;
        }
    }
    return tc;
}

static tail_counts exact_counts(const int32_t *rx, const int32_t *ry, size_t n, int64_t obs)
{
    uint64_t le = 0, ge = 0;
    /* One branch per element placed last, enumerated in parallel. */
#pragma omp parallel for schedule(dynamic) reduction(+ : le, ge)
    for (size_t last = 0; last < n; last++) {
        int32_t y[16];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (i != last)
                y[k++] = ry[i];
        y[n - 1] = ry[last];
        tail_counts tc = enumerate_perms(rx, y, n, n - 1, obs);
        le += tc.le;
        ge += tc.ge;
    }
    return (tail_counts){le, ge};
}

static tail_counts random_counts(const int32_t *rx, const int32_t *ry, size_t n, size_t n_perm,
                                 uint64_t seed, int *nomem)
{
    uint64_t le = 0, ge = 0;
    size_t n_blocks = (n_perm + PERM_BLOCK - 1) / PERM_BLOCK;
    int64_t obs = dot_i32(rx, ry, n);
    int parallel = (double)n_perm * (double)n >= STATS_PARALLEL_MIN_WORK;
#pragma omp parallel if (parallel) reduction(+ : le, ge)
    {
        int32_t *y = malloc(n * sizeof *y);
        if (!y) {
#pragma omp atomic write
            *nomem = 1;
        }
#pragma omp for schedule(static)
        for (size_t b = 0; b < n_blocks; b++) {
            if (!y)
                continue;
            cbq_rng rng;
            cbq_rng_stream(&rng, seed, PERM_STREAM_BASE + b);
            stats_draw32 draw = {.rng = &rng};
            memcpy(y, ry, n * sizeof *y);
            size_t count = b + 1 < n_blocks ? PERM_BLOCK : n_perm - b * PERM_BLOCK;
            for (size_t k = 0; k < count; k++) {
                for (size_t i = n; i > 1; i--) {
                    size_t j = stats_below32(&draw, (uint32_t)i);
                    int32_t t = y[i - 1];
                    y[i - 1] = y[j];
                    y[j] = t;
                }
                int64_t s = dot_i32(rx, y, n);
                le += s <= obs;
                ge += s >= obs;
            }
        }
        free(y);
    }
    return (tail_counts){le, ge};
}

int cbq_spearman_perm(const double *x, const double *y, size_t n, size_t exact_max_n,
                      size_t n_perm, uint64_t seed, cbq_perm *out, cbq_error *err)
{
    memset(out, 0, sizeof *out);
    out->p = NAN;
    out->reason = stats_why_undefined(x, y, n);
    if (out->reason)
        return CBQ_OK;
    CBQ_CHECK_ARG(err, exact_max_n <= 12, "permutation: exact enumeration is limited to n <= 12");
    CBQ_CHECK_ARG(err, n < 1000000, "permutation: n = %zu is too large", n);
    double *r = malloc(2 * n * sizeof *r);
    int32_t *ri = malloc(2 * n * sizeof *ri);
    if (!r || !ri) {
        free(r);
        free(ri);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "permutation: out of memory");
    }
    int rc = cbq_rank_average(x, n, r, err);
    if (rc == CBQ_OK)
        rc = cbq_rank_average(y, n, r + n, err);
    for (size_t i = 0; rc == CBQ_OK && i < 2 * n; i++)
        ri[i] = (int32_t)lrint(2.0 * r[i]);
    if (rc == CBQ_OK) {
        tail_counts tc;
        double denom;
        int nomem = 0;
        if (n <= exact_max_n) {
            tc = exact_counts(ri, ri + n, n, dot_i32(ri, ri + n, n));
            denom = 1.0;
            for (size_t k = 2; k <= n; k++)
                denom *= (double)k;
            out->exact = 1;
            out->n_perm = (size_t)denom;
            out->p = fmin(2.0 * fmin((double)tc.le / denom, (double)tc.ge / denom), 1.0);
        } else if (n_perm == 0) {
            out->reason = "no permutations requested";
        } else {
            tc = random_counts(ri, ri + n, n, n_perm, seed, &nomem);
            denom = (double)n_perm + 1.0;
            out->n_perm = n_perm;
            out->p = fmin(2.0 * fmin(((double)tc.le + 1.0) / denom, ((double)tc.ge + 1.0) / denom),
                          1.0);
        }
        if (nomem)
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "permutation: out of memory");
    }
    free(r);
    free(ri);
    return rc;
}
