/* physics.c - what turns ideal line integrals into a CBCT panel's
 * measurement: beam hardening, detector blur, per-pixel gain errors (rings),
 * scatter, quantum noise and detector lag, then the log transform.
 *
 * Models are deliberately simple and documented in docs/simulation.md:
 * beam hardening is a saturating polynomial on the line integral (a
 * monoenergetic reconstruction of polyenergetic data), scatter a broad
 * convolution of the object's scatter potential p exp(-p), noise Poisson on
 * primary plus scatter. Motion is not here: it changes what is projected
 * (cohort.c). */
#include "cbctiq/sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void cbq_physics_ideal(cbq_physics *ph)
{
    memset(ph, 0, sizeof *ph);
    ph->i0 = 1e5;
    ph->scatter_sigma = 60.0;
}

void cbq_physics_draw(cbq_physics *ph, cbq_rng *rng)
{
    cbq_physics_ideal(ph);
    ph->noise = 1;
    /* Dose: log-uniform over a factor 20 (low-dose head to high-quality). */
    ph->i0 = 2500.0 * exp(log(20.0) * cbq_rng_uniform(rng));
    double u = cbq_rng_uniform(rng);
    ph->scatter = 0.02 + 0.33 * u * u;
    ph->scatter_sigma = 40.0 + 40.0 * cbq_rng_uniform(rng);
    ph->bh = 0.03 * cbq_rng_uniform(rng);
    ph->blur_px = 0.3 + 0.7 * cbq_rng_uniform(rng);
    ph->lag = 0.08 * cbq_rng_uniform(rng);
    ph->ring_sd = cbq_rng_uniform(rng) < 0.5 ? 0.0 : 0.002 + 0.008 * cbq_rng_uniform(rng);
    if (cbq_rng_uniform(rng) < 0.5) {
        ph->motion_frac = 0.1 + 0.3 * cbq_rng_uniform(rng);
        ph->motion_start = cbq_rng_uniform(rng) * (1.0 - ph->motion_frac);
        ph->swallow = 0.4 + 0.6 * cbq_rng_uniform(rng);
        if (cbq_rng_uniform(rng) < 0.4)
            for (int a = 0; a < 3; a++)
                ph->shift_mm[a] = 1.5 * cbq_rng_normal(rng);
    }
}

/* Poisson count: exact (Knuth) for small means, normal beyond. */
static double poisson(cbq_rng *rng, double lambda)
{
    if (lambda <= 0)
        return 0;
    if (lambda < 30.0) {
        double lim = exp(-lambda), prod = cbq_rng_uniform(rng);
        int k = 0;
        while (prod > lim) {
            prod *= cbq_rng_uniform(rng);
            k++;
        }
        return k;
    }
    double v = lambda + sqrt(lambda) * cbq_rng_normal(rng);
    return v > 0 ? v : 0;
}

/* Separable Gaussian blur of an nu x nv image in place (zero-flux edges:
 * the kernel is renormalised where it leaves the image). */
static void gauss_blur(float *img, size_t nu, size_t nv, double sigma, float *tmp)
{
    if (sigma <= 0.05)
        return;
    int rad = (int)ceil(3.0 * sigma);
    double kern[64];
    if (rad > 31)
        rad = 31;
    for (int t = -rad; t <= rad; t++)
        kern[t + rad] = exp(-0.5 * t * t / (sigma * sigma));
    for (size_t v = 0; v < nv; v++)
        for (size_t u = 0; u < nu; u++) {
            double s = 0, w = 0;
            for (int t = -rad; t <= rad; t++) {
                long uu = (long)u + t;
                if (uu < 0 || uu >= (long)nu) continue;
                s += kern[t + rad] * img[(size_t)uu + nu * v];
                w += kern[t + rad];
            }
            tmp[u + nu * v] = (float)(s / w);
        }
    for (size_t v = 0; v < nv; v++)
        for (size_t u = 0; u < nu; u++) {
            double s = 0, w = 0;
            for (int t = -rad; t <= rad; t++) {
                long vv = (long)v + t;
                if (vv < 0 || vv >= (long)nv) continue;
                s += kern[t + rad] * tmp[u + nu * (size_t)vv];
                w += kern[t + rad];
            }
            img[u + nu * v] = (float)(s / w);
        }
}

enum { SCATTER_BIN = 4 };

/* Scatter fluence on the panel (photons) from the scatter potential of the
 * beam-hardened line integrals, on a coarse grid then upsampled. */
static void scatter_field(const cbq_physics *ph, const cbq_cb_geometry *g, const float *p, float *out,
                          float *coarse, float *tmp)
{
    size_t cu = (g->nu + SCATTER_BIN - 1) / SCATTER_BIN, cv = (g->nv + SCATTER_BIN - 1) / SCATTER_BIN;
    for (size_t b = 0; b < cu * cv; b++)
        coarse[b] = 0;
    for (size_t v = 0; v < g->nv; v++)
        for (size_t u = 0; u < g->nu; u++) {
            double x = p[u + g->nu * v];
            coarse[u / SCATTER_BIN + cu * (v / SCATTER_BIN)] +=
                (float)(x * exp(-x) / (SCATTER_BIN * SCATTER_BIN));
        }
    gauss_blur(coarse, cu, cv, ph->scatter_sigma / (g->du * SCATTER_BIN), tmp);
    for (size_t v = 0; v < g->nv; v++)
        for (size_t u = 0; u < g->nu; u++) {
            double fu = ((double)u + 0.5) / SCATTER_BIN - 0.5, fv = ((double)v + 0.5) / SCATTER_BIN - 0.5;
            fu = fmin(fmax(fu, 0), (double)cu - 1);
            fv = fmin(fmax(fv, 0), (double)cv - 1);
            size_t iu = (size_t)fu, iv = (size_t)fv;
            size_t iu1 = iu + 1 < cu ? iu + 1 : iu, iv1 = iv + 1 < cv ? iv + 1 : iv;
            double wu = fu - (double)iu, wv = fv - (double)iv;
            double lo = coarse[iu + cu * iv] * (1 - wu) + coarse[iu1 + cu * iv] * wu;
            double hi = coarse[iu + cu * iv1] * (1 - wu) + coarse[iu1 + cu * iv1] * wu;
            out[u + g->nu * v] = (float)(ph->scatter * ph->i0 * (lo * (1 - wv) + hi * wv));
        }
}

/* Gain error of pixel n: a fixed pattern drawn from stream 2^40 of the seed. */
static void gain_pattern(const cbq_physics *ph, size_t n, uint64_t seed, float *gain)
{
    cbq_rng rng;
    cbq_rng_stream(&rng, seed, (uint64_t)1 << 40);
    for (size_t i = 0; i < n; i++)
        gain[i] = (float)(1.0 + ph->ring_sd * cbq_rng_normal(&rng));
}

int cbq_physics_apply(const cbq_physics *ph, const cbq_cb_geometry *g, uint64_t seed, float *proj,
                      cbq_error *err)
{
    CBQ_TRY(cbq_cb_geometry_check(g, err));
    CBQ_CHECK_ARG(err, ph->i0 >= 1.0, "physics: I0 = %g photons per pixel, expected >= 1", ph->i0);
    size_t per = g->nu * g->nv;
    float *gain = malloc(per * sizeof(float));
    if (!gain)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "physics: out of memory");
    gain_pattern(ph, per, seed, gain);
    int fail = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(|| : fail)
    for (size_t p = 0; p < g->n_proj; p++) {
        float *img = proj + p * per;
        float *tmp = malloc(per * sizeof(float)), *sc = malloc(per * sizeof(float));
        float *coarse = malloc(per * sizeof(float));
        if (!tmp || !sc || !coarse) {
            fail = 1;
        } else {
            for (size_t n = 0; n < per; n++)
                img[n] = (float)(img[n] / (1.0 + ph->bh * img[n]));
            if (ph->scatter > 0)
                scatter_field(ph, g, img, sc, coarse, tmp);
            else
                memset(sc, 0, per * sizeof(float));
            for (size_t n = 0; n < per; n++)
                img[n] = (float)(ph->i0 * exp(-(double)img[n]));
            gauss_blur(img, g->nu, g->nv, ph->blur_px, tmp);
            cbq_rng rng;
            cbq_rng_stream(&rng, seed, p);
            for (size_t n = 0; n < per; n++) {
                double mean = (double)img[n] + sc[n];
                img[n] = (float)(gain[n] * (ph->noise ? poisson(&rng, mean) : mean));
            }
        }
        free(tmp);
        free(sc);
        free(coarse);
    }
    free(gain);
    if (fail)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "physics: out of memory");
    /* Lag: each frame keeps a fraction of the previous one's signal. */
    if (ph->lag > 0)
        for (size_t p = 1; p < g->n_proj; p++)
            for (size_t n = 0; n < per; n++)
                proj[p * per + n] = (float)((1.0 - ph->lag) * proj[p * per + n] +
                                            ph->lag * proj[(p - 1) * per + n]);
    /* Flat-field and log; a starved pixel reads as half a photon. */
    size_t total = per * g->n_proj;
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < total; n++)
        proj[n] = (float)log(ph->i0 / fmax((double)proj[n], 0.5));
    return CBQ_OK;
}
