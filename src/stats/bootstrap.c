/* bootstrap.c - paired bootstrap confidence intervals of Spearman's rho
 * (percentile and BCa, as scipy.stats.bootstrap computes them from a
 * bootstrap distribution; Efron & Tibshirani 1993, ch. 13-14), and the
 * Fisher-z interval. Each resample is ranked in O(n) from counts. */
#include "stats_internal.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_sort.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/rng.h"

/* Stream ids of bootstrap resamples; permutations use another range. */
#define BOOT_STREAM_BASE 0x424f4f5400000000ULL

void cbq_fisher_ci(double r, size_t n, double conf, double ci[2])
{
    ci[0] = ci[1] = NAN;
    if (n < 4 || isnan(r))
        return;
    double z = atanh(r), half = gsl_cdf_ugaussian_Pinv(0.5 + conf / 2.0) / sqrt((double)n - 3.0);
    ci[0] = tanh(z - half);
    ci[1] = tanh(z + half);
}

/* NumPy's default ("linear") percentile of sorted a[0..m) at fraction q. */
static double percentile_sorted(const double *a, size_t m, double q)
{
    double h = (double)(m - 1) * q;
    size_t lo = (size_t)floor(h);
    if (lo >= m - 1)
        return a[m - 1];
    double t = h - (double)lo;
    return a[lo] + (a[lo + 1] - a[lo]) * t;
}

/* theta[b] for every resample; NaN where a column of the resample is constant. */
static int draw_resamples(const double *x, const double *y, size_t n, size_t n_boot, uint64_t seed,
                          double *theta, uint32_t *dump_idx, cbq_error *err)
{
    cbq_rank_plan px = {0}, py = {0};
    int rc = cbq_rank_plan_init(&px, x, n, err);
    if (rc == CBQ_OK)
        rc = cbq_rank_plan_init(&py, y, n, err);
    int nomem = 0;
    if (rc == CBQ_OK) {
        int parallel = (double)n_boot * (double)n >= STATS_PARALLEL_MIN_WORK;
#pragma omp parallel if (parallel)
        {
            uint32_t *counts = malloc(n * sizeof *counts);
            double *rx = malloc(2 * n * sizeof *rx);
            if (!counts || !rx) {
#pragma omp atomic write
                nomem = 1;
            }
#pragma omp for schedule(static)
            for (size_t b = 0; b < n_boot; b++) {
                if (!counts || !rx)
                    continue;
                cbq_rng rng;
                cbq_rng_stream(&rng, seed, BOOT_STREAM_BASE + b);
                stats_draw32 draw = {.rng = &rng};
                memset(counts, 0, n * sizeof *counts);
                for (size_t j = 0; j < n; j++) {
                    uint32_t k = stats_below32(&draw, (uint32_t)n);
                    counts[k]++;
                    if (dump_idx)
                        dump_idx[b * n + j] = k;
                }
                theta[b] = cbq_spearman_counts(&px, &py, counts, rx, rx + n);
            }
            free(counts);
            free(rx);
        }
    }
    cbq_rank_plan_free(&px);
    cbq_rank_plan_free(&py);
    if (rc == CBQ_OK && nomem)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "bootstrap: out of memory");
    return rc;
}

/* Jackknife acceleration a = sum U^3 / (6 (sum U^2)^1.5), U_i = (n-1)(mean - theta_(i)). */
static double acceleration(const double *jack, size_t n)
{
    double mean = 0;
    for (size_t i = 0; i < n; i++)
        mean += jack[i];
    mean /= (double)n;
    double num = 0, den = 0, nn = (double)n;
    for (size_t i = 0; i < n; i++) {
        double u = (nn - 1.0) * (mean - jack[i]);
        num += u * u * u;
        den += u * u;
    }
    return 1.0 / 6.0 * (num / (nn * nn * nn)) / pow(den / (nn * nn), 1.5);
}

static void bca_interval(const double *sorted, size_t m, double theta_hat, const double *jack,
                         size_t n, double conf, cbq_boot *out)
{
    /* Resamples often reproduce theta_hat exactly in theory (ranks are
     * discrete); values within 1e-12 of it count as equal so that rounding
     * in the last bit cannot move z0. SciPy compares exactly. */
    double tol = 1e-12 * fmax(1.0, fabs(theta_hat));
    size_t below = 0, at_or_below = 0;
    for (size_t i = 0; i < m; i++) {
        below += sorted[i] < theta_hat - tol;
        at_or_below += sorted[i] <= theta_hat + tol;
    }
    double frac = (double)(below + at_or_below) / (2.0 * (double)m);
    out->z0 = gsl_cdf_ugaussian_Pinv(frac);
    out->accel = acceleration(jack, n);
    if (!isfinite(out->z0) || !isfinite(out->accel)) {
        out->bca[0] = out->bca[1] = NAN;
        out->reason = !isfinite(out->z0)
                          ? "BCa undefined: the observed rho lies outside the bootstrap distribution"
                          : "BCa undefined: the jackknife values are constant or undefined";
        return;
    }
    double z_a = gsl_cdf_ugaussian_Pinv((1.0 - conf) / 2.0);
    double ends[2] = {z_a, -z_a};
    for (int k = 0; k < 2; k++) {
        double num = out->z0 + ends[k];
        double alpha = gsl_cdf_ugaussian_P(out->z0 + num / (1.0 - out->accel * num));
        out->bca[k] = percentile_sorted(sorted, m, alpha);
    }
}

int cbq_spearman_bootstrap(const double *x, const double *y, size_t n, size_t n_boot, double conf,
                           uint64_t seed, cbq_boot *out, uint32_t *dump_idx, cbq_error *err)
{
    stats_gsl_quiet();
    memset(out, 0, sizeof *out);
    out->n_boot = n_boot;
    out->percentile[0] = out->percentile[1] = out->bca[0] = out->bca[1] = NAN;
    out->z0 = out->accel = NAN;
    CBQ_CHECK_ARG(err, conf > 0 && conf < 1, "bootstrap: confidence level %g not in (0, 1)", conf);
    CBQ_CHECK_ARG(err, n < UINT32_MAX, "bootstrap: n = %zu too large", n);
    out->reason = stats_why_undefined(x, y, n);
    if (!out->reason && n_boot < 2)
        out->reason = "fewer than 2 bootstrap resamples requested";
    if (out->reason)
        return CBQ_OK;
    double *theta = malloc((n_boot + n) * sizeof *theta);
    if (!theta)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "bootstrap: out of memory for %zu resamples", n_boot);
    double *jack = theta + n_boot;
    int rc = draw_resamples(x, y, n, n_boot, seed, theta, dump_idx, err);
    if (rc == CBQ_OK)
        rc = stats_loo_rhos(x, y, n, jack, err);
    cbq_corr full;
    if (rc == CBQ_OK)
        rc = cbq_spearman(x, y, n, &full, err);
    if (rc == CBQ_OK) {
        size_t m = 0;
        for (size_t b = 0; b < n_boot; b++)
            if (!isnan(theta[b]))
                theta[m++] = theta[b];
        out->n_valid = m;
        if (m < 2) {
            out->reason = "fewer than 2 bootstrap resamples with a defined rho";
        } else {
            gsl_sort(theta, 1, m);
            double alpha = (1.0 - conf) / 2.0;
            out->percentile[0] = percentile_sorted(theta, m, alpha);
            out->percentile[1] = percentile_sorted(theta, m, 1.0 - alpha);
            bca_interval(theta, m, full.r, jack, n, conf, out);
        }
    }
    free(theta);
    return rc;
}
