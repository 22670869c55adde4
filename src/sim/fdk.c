/* fdk.c - Feldkamp-Davis-Kress reconstruction for the circular orbit.
 *
 * Following Kak & Slaney ("Principles of Computerized Tomographic Imaging",
 * ch. 3.6) with the panel scaled to a virtual detector through the
 * isocentre: each projection is weighted by the cosine of the ray angle and
 * by its redundancy weight (1/2 for a full scan, Parker's for a short scan,
 * a smooth sin^2 ramp across the overlap of an offset panel), filtered row
 * by row with the discrete ramp kernel (apodised, via FFT with zero padding)
 * and backprojected voxel by voxel with the (SAD/L)^2 distance weight and
 * bilinear interpolation on the panel. Each voxel sums its projections in a
 * fixed order, so threads over slices do not change a bit. */
#include "cbctiq/sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- small FFT */

typedef struct {
    size_t n;
    double *cos_t, *sin_t; /* n/2 twiddles */
    size_t *rev;
} fft_plan;

static int fft_plan_make(fft_plan *pl, size_t n)
{
    pl->n = n;
    pl->cos_t = malloc(n / 2 * sizeof(double));
    pl->sin_t = malloc(n / 2 * sizeof(double));
    pl->rev = malloc(n * sizeof(size_t));
    if (!pl->cos_t || !pl->sin_t || !pl->rev)
        return 0;
    for (size_t k = 0; k < n / 2; k++) {
        pl->cos_t[k] = cos(2.0 * CBQ_PI * (double)k / (double)n);
        pl->sin_t[k] = sin(2.0 * CBQ_PI * (double)k / (double)n);
    }
    size_t bits = 0;
    while (((size_t)1 << bits) < n)
        bits++;
    for (size_t i = 0; i < n; i++) {
        size_t r = 0;
        for (size_t b = 0; b < bits; b++)
            if (i & ((size_t)1 << b))
                r |= (size_t)1 << (bits - 1 - b);
        pl->rev[i] = r;
    }
    return 1;
}

static void fft_plan_free(fft_plan *pl)
{
    free(pl->cos_t);
    free(pl->sin_t);
    free(pl->rev);
}

/* In-place radix-2 transform; sign -1 forward, +1 inverse (unnormalised). */
static void fft_run(const fft_plan *pl, double *re, double *im, int sign)
{
    size_t n = pl->n;
    for (size_t i = 0; i < n; i++) {
        size_t r = pl->rev[i];
        if (r > i) {
            double t = re[i]; re[i] = re[r]; re[r] = t;
            t = im[i]; im[i] = im[r]; im[r] = t;
        }
    }
    for (size_t len = 2; len <= n; len <<= 1) {
        size_t half = len / 2, step = n / len;
        for (size_t s = 0; s < n; s += len)
            for (size_t k = 0; k < half; k++) {
                double wr = pl->cos_t[k * step], wi = sign * pl->sin_t[k * step];
                size_t a = s + k, b = a + half;
                double tr = re[b] * wr - im[b] * wi, ti = re[b] * wi + im[b] * wr;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
            }
    }
}

/* Frequency response of the apodised discrete ramp kernel (Kak & Slaney
 * eq. 3.61 sampled in space, then transformed: no DC offset). Times tau and
 * 1/n so that the inverse FFT yields tau * sum h p directly. */
static int ramp_response(const fft_plan *pl, double tau, cbq_apodisation apod, double *resp)
{
    size_t n = pl->n;
    double *re = calloc(n, sizeof(double)), *im = calloc(n, sizeof(double));
    if (!re || !im) {
        free(re);
        free(im);
        return 0;
    }
    re[0] = 1.0 / (4.0 * tau * tau);
    for (size_t k = 1; k < n / 2; k++)
        if (k % 2 == 1) {
            double h = -1.0 / ((double)(k * k) * CBQ_PI * CBQ_PI * tau * tau);
            re[k] = h;
            re[n - k] = h;
        }
    fft_run(pl, re, im, -1);
    for (size_t k = 0; k < n; k++) {
        double f = (double)(k <= n / 2 ? k : n - k) / (double)n * 2.0; /* 1 = Nyquist */
        double w = 1.0;
        if (apod == CBQ_APOD_HANN)
            w = 0.5 * (1.0 + cos(CBQ_PI * f));
        else if (apod == CBQ_APOD_SHEPP_LOGAN && f > 0)
            w = sin(0.5 * CBQ_PI * f) / (0.5 * CBQ_PI * f);
        resp[k] = re[k] * w * tau / (double)n;
    }
    free(re);
    free(im);
    return 1;
}

/* --------------------------------------------------------------- weights */

static double sin2(double x) { double s = sin(x); return s * s; }

/* Parker (Med Phys 1982) for our orientation: the conjugate of (beta, gamma)
 * is (beta + pi - 2 gamma, -gamma). delta is the half fan of the arc. */
static double parker_weight(double beta, double gamma, double delta)
{
    if (beta < 0)
        return 0.0;
    if (beta < 2.0 * (delta + gamma))
        return sin2(0.25 * CBQ_PI * beta / (delta + gamma));
    if (beta <= CBQ_PI + 2.0 * gamma)
        return 1.0;
    if (beta <= CBQ_PI + 2.0 * delta)
        return sin2(0.25 * CBQ_PI * (CBQ_PI + 2.0 * delta - beta) / (delta - gamma));
    return 0.0;
}

/* Offset panel (Wang, Med Phys 2002): rays with |u| <= overlap are measured
 * twice over a full turn; w(u) + w(-u) = 1 across the overlap. */
static double offset_weight(double u, double overlap)
{
    if (u <= -overlap)
        return 0.0;
    if (u >= overlap)
        return 1.0;
    return sin2(0.25 * CBQ_PI * (u + overlap) / overlap);
}

/* Redundancy weight x angular step, per projection and panel column. */
static void column_weights(const cbq_cb_geometry *g, size_t p, double *wcol)
{
    double dbeta = g->arc / (double)g->n_proj;
    double beta = ((double)p + 0.5) * dbeta;
    double umin = g->u_offset - 0.5 * (double)g->nu * g->du;
    double delta = 0.5 * (g->arc - CBQ_PI);
    for (size_t iu = 0; iu < g->nu; iu++) {
        double u = ((double)iu - 0.5 * (double)(g->nu - 1)) * g->du + g->u_offset;
        double w;
        if (g->short_scan)
            w = parker_weight(beta, atan(u / g->sdd), delta);
        else if (umin < 0 && g->u_offset > 0)
            w = offset_weight(u, -umin);
        else
            w = 0.5 * (2.0 * CBQ_PI / g->arc);
        wcol[iu] = w * dbeta;
    }
}

/* ---------------------------------------------------------------- filter */

/* Columns added on the -u side for an offset panel: the ramp filter's
 * response to the weighted data extends beyond the panel edge, and the
 * backprojector needs it there (the conjugate rays supply the rest). */
static size_t extension(const cbq_cb_geometry *g)
{
    return g->u_offset > 0 ? (size_t)ceil(2.0 * g->u_offset / g->du) : 0;
}

/* Weighted, filtered projections into filt, padded for the backprojector:
 * rows of ext + nu + 3 (one zero column before, two after) and nv + 3 rows;
 * panel column iu lands in column ext + iu + 1. */
static int filter_all(const float *proj, const cbq_cb_geometry *g, cbq_apodisation apod,
                      size_t pnu, size_t pnv, float *filt, cbq_error *err)
{
    size_t ext = extension(g), n = 2;
    while (n < 2 * (g->nu + ext))
        n <<= 1;
    fft_plan pl;
    double *resp = malloc(n * sizeof(double));
    if (!resp || !fft_plan_make(&pl, n)) {
        free(resp);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "FDK: cannot allocate the ramp filter (%zu taps)", n);
    }
    int ok = ramp_response(&pl, g->du * g->sad / g->sdd, apod, resp);
    int fail = !ok;
#pragma omp parallel for schedule(dynamic, 1) reduction(|| : fail)
    for (size_t p = 0; p < g->n_proj; p++) {
        double *re = malloc(n * sizeof(double)), *im = malloc(n * sizeof(double));
        double *wcol = malloc(g->nu * sizeof(double));
        if (!re || !im || !wcol || !ok) {
            fail = 1;
        } else {
            column_weights(g, p, wcol);
            const float *in = proj + p * g->nu * g->nv;
            float *out = filt + p * pnu * pnv;
            /* Two real rows per complex transform: the kernel is real and even. */
            for (size_t iv = 0; iv < g->nv; iv += 2) {
                int two = iv + 1 < g->nv;
                memset(re, 0, n * sizeof(double));
                memset(im, 0, n * sizeof(double));
                for (int r = 0; r < 1 + two; r++) {
                    double v = ((double)(iv + r) - 0.5 * (double)(g->nv - 1)) * g->dv;
                    double *dst = r ? im : re;
                    for (size_t iu = 0; iu < g->nu; iu++) {
                        double u = ((double)iu - 0.5 * (double)(g->nu - 1)) * g->du + g->u_offset;
                        double wcos = g->sdd / sqrt(g->sdd * g->sdd + u * u + v * v);
                        dst[ext + iu] = in[iu + g->nu * (iv + r)] * wcos * wcol[iu];
                    }
                }
                fft_run(&pl, re, im, -1);
                for (size_t k = 0; k < n; k++) {
                    re[k] *= resp[k];
                    im[k] *= resp[k];
                }
                fft_run(&pl, re, im, +1);
                for (int r = 0; r < 1 + two; r++) {
                    const double *src = r ? im : re;
                    float *row = out + pnu * (iv + r + 1);
                    for (size_t iu = 0; iu < g->nu + ext; iu++)
                        row[iu + 1] = (float)src[iu];
                }
            }
        }
        free(re);
        free(im);
        free(wcol);
    }
    free(resp);
    fft_plan_free(&pl);
    if (fail)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "FDK: out of memory while filtering");
    return CBQ_OK;
}

/* ---------------------------------------------------------- backprojection */

typedef struct {
    float c, s;     /* cos, sin of the angle */
} angle_cs;

/* Adds every projection to one axial slice. Per row, a first loop (which
 * GCC vectorises) finds each voxel's panel position and weights, a second
 * gathers the four panel samples. */
static void backproject_slice(const float *filt, const cbq_cb_geometry *g, const angle_cs *ang,
                              size_t pnu, size_t pnv, const cbq_volume *vol, size_t k, float *acc,
                              int *restrict off, float *restrict wu, float *restrict wv,
                              float *restrict wd)
{
    const int nx = (int)vol->nx, ny = (int)vol->ny, stride = (int)pnu;
    const float sx = (float)vol->spacing[0], sy = (float)vol->spacing[1];
    const float cx = 0.5f * (float)(nx - 1), cy = 0.5f * (float)(ny - 1);
    const float z = ((float)k - 0.5f * (float)(vol->nz - 1)) * (float)vol->spacing[2];
    const float sad = (float)g->sad, sdd = (float)g->sdd;
    const float inv_du = (float)(1.0 / g->du), inv_dv = (float)(1.0 / g->dv);
    /* Padded column = extension + physical column + 1. */
    const size_t ext = extension(g);
    const float u_c = 0.5f * (float)(g->nu - 1) + 1.0f + (float)ext - (float)(g->u_offset / g->du);
    const float v_c = 0.5f * (float)(g->nv - 1) + 1.0f;
    const float umax = (float)(g->nu + ext + 1), vmax = (float)(g->nv + 1);
    memset(acc, 0, (size_t)nx * (size_t)ny * sizeof(float));
    for (size_t p = 0; p < g->n_proj; p++) {
        const float *restrict q = filt + p * pnu * pnv;
        const float c = ang[p].c, s = ang[p].s;
        for (int j = 0; j < ny; j++) {
            float *restrict row = acc + (size_t)nx * (size_t)j;
            const float y = ((float)j - cy) * sy;
            for (int i = 0; i < nx; i++) {
                float x = ((float)i - cx) * sx;
                float along = x * c + y * s, t = y * c - x * s;
                float inv_l = 1.0f / (sad - along);
                float mag = sdd * inv_l;
                /* Ternary clamps (not fminf) so that GCC can use vector min/max. */
                float fu = t * mag * inv_du + u_c, fv = z * mag * inv_dv + v_c;
                fu = fu > 0.0f ? fu : 0.0f;
                fu = fu < umax ? fu : umax;
                fv = fv > 0.0f ? fv : 0.0f;
                fv = fv < vmax ? fv : vmax;
                int iu = (int)fu, iv = (int)fv;
                wu[i] = fu - (float)iu;
                wv[i] = fv - (float)iv;
                off[i] = iu + stride * iv;
                float w = sad * inv_l;
                wd[i] = w * w;
            }
            for (int i = 0; i < nx; i++) {
                const float *c0 = q + off[i];
                float lo = c0[0] + wu[i] * (c0[1] - c0[0]);
                float hi = c0[stride] + wu[i] * (c0[stride + 1] - c0[stride]);
                row[i] += wd[i] * (lo + wv[i] * (hi - lo));
            }
        }
    }
}

int cbq_fdk(const float *proj, const cbq_cb_geometry *g, cbq_apodisation apod, cbq_volume *vol,
            cbq_error *err)
{
    CBQ_TRY(cbq_cb_geometry_check(g, err));
    CBQ_CHECK_ARG(err, vol->data && vol->nx > 0, "FDK: output volume is not allocated");
    CBQ_CHECK_ARG(err, g->u_offset >= 0, "FDK: panel offset %g mm: only offsets towards +u are supported",
                  g->u_offset);
    size_t pnu = g->nu + extension(g) + 3, pnv = g->nv + 3, n;
    if (!cbq_size_mul(&n, pnu, pnv) || !cbq_size_mul(&n, n, g->n_proj))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "FDK: filtered projection size overflows");
    float *filt = calloc(n, sizeof(float));
    angle_cs *ang = malloc(g->n_proj * sizeof(angle_cs));
    if (!filt || !ang) {
        free(filt);
        free(ang);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "FDK: cannot allocate %zu filtered samples", n);
    }
    int rc = filter_all(proj, g, apod, pnu, pnv, filt, err);
    if (rc != CBQ_OK) {
        free(filt);
        free(ang);
        return rc;
    }
    for (size_t p = 0; p < g->n_proj; p++) {
        double b = cbq_cb_angle(g, p);
        ang[p].c = (float)cos(b);
        ang[p].s = (float)sin(b);
    }
    size_t slice = vol->nx * vol->ny;
    int fail = 0;
#pragma omp parallel reduction(|| : fail)
    {
        int *off = malloc(vol->nx * sizeof(int));
        float *w = malloc(3 * vol->nx * sizeof(float));
        if (!off || !w) {
            fail = 1;
        } else {
#pragma omp for schedule(static)
            for (size_t k = 0; k < vol->nz; k++)
                backproject_slice(filt, g, ang, pnu, pnv, vol, k, vol->data + k * slice, off, w,
                                  w + vol->nx, w + 2 * vol->nx);
        }
        free(off);
        free(w);
    }
    if (fail) {
        free(filt);
        free(ang);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "FDK: out of memory in the backprojector");
    }
    free(filt);
    free(ang);
    return CBQ_OK;
}
