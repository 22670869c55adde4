/* projector.c - Joseph's ray-driven forward projector for the circular
 * cone-beam orbit, and its exact transpose.
 *
 * Joseph (IEEE TMI 1982): a ray steps one voxel at a time along the axis
 * (x or y) it runs closest to; at each step the volume is interpolated
 * bilinearly in the other two axes and weighted by the ray length per step.
 * The volume is copied once into a zero-padded array so that the inner loop
 * needs no bounds tests. The transpose scatters with the same weights, so
 * <A x, y> = <x, A^T y> up to float rounding; it is serial and only used to
 * prove that. It is not the FDK backprojector (see fdk.c). */
#include "cbctiq/sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { PAD = 2 };

typedef struct {
    size_t pnx, pny, pnz;
    float *data;
} padded;

static int padded_make(padded *pv, const cbq_volume *vol, int copy, cbq_error *err)
{
    pv->pnx = vol->nx + 2 * PAD;
    pv->pny = vol->ny + 2 * PAD;
    pv->pnz = vol->nz + 2 * PAD;
    size_t n;
    if (!cbq_size_mul(&n, pv->pnx, pv->pny) || !cbq_size_mul(&n, n, pv->pnz))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "projector: padded volume size overflows");
    pv->data = calloc(n, sizeof(float));
    if (!pv->data)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "projector: cannot allocate %zu voxels", n);
    if (copy)
        for (size_t k = 0; k < vol->nz; k++)
            for (size_t j = 0; j < vol->ny; j++)
                memcpy(pv->data + PAD + pv->pnx * (j + PAD + pv->pny * (k + PAD)),
                       vol->data + vol->nx * (j + vol->ny * k), vol->nx * sizeof(float));
    return CBQ_OK;
}

/* One ray in padded-voxel terms: it visits primary index i in [i0, i1]; at
 * i the secondary coordinates are a0 + ad i and b0 + bd i (already padded). */
typedef struct {
    long i0, i1;
    double a0, ad, b0, bd, step_mm;
    size_t sp, sa, sb;
} ray_walk;

/* Restricts i so that lo <= c0 + cd i <= hi. Returns 0 when empty. */
static int clip_linear(double c0, double cd, double lo, double hi, double *ilo, double *ihi)
{
    if (fabs(cd) < 1e-12)
        return c0 >= lo && c0 <= hi;
    double t0 = (lo - c0) / cd, t1 = (hi - c0) / cd;
    if (t0 > t1) { double t = t0; t0 = t1; t1 = t; }
    if (t0 > *ilo) *ilo = t0;
    if (t1 < *ihi) *ihi = t1;
    return *ilo <= *ihi;
}

/* Sets up the walk of the ray from s to d (voxel coordinates, unpadded). */
static int ray_setup(const double s[3], const double d[3], double len_mm, const cbq_volume *vol,
                     const padded *pv, ray_walk *w)
{
    double dir[3] = {d[0] - s[0], d[1] - s[1], d[2] - s[2]};
    int p = fabs(dir[0]) >= fabs(dir[1]) ? 0 : 1, a = 1 - p;
    size_t n_p = p == 0 ? vol->nx : vol->ny, n_a = a == 0 ? vol->nx : vol->ny;
    size_t stride[3] = {1, pv->pnx, pv->pnx * pv->pny};
    /* Secondary coordinate as a linear function of the primary index i. */
    double ad = dir[a] / dir[p], bd = dir[2] / dir[p];
    double a0 = s[a] - s[p] * ad, b0 = s[2] - s[p] * bd;
    double ilo = 0.0, ihi = (double)n_p - 1.0;
    if (!clip_linear(a0, ad, -1.0, (double)n_a, &ilo, &ihi) ||
        !clip_linear(b0, bd, -1.0, (double)vol->nz, &ilo, &ihi))
        return 0;
    w->i0 = (long)ceil(ilo);
    w->i1 = (long)floor(ihi);
    if (w->i0 > w->i1)
        return 0;
    w->a0 = a0 + PAD;
    w->ad = ad;
    w->b0 = b0 + PAD;
    w->bd = bd;
    w->step_mm = len_mm / fabs(dir[p]);
    w->sp = stride[p];
    w->sa = stride[a];
    w->sb = stride[2];
    return 1;
}

/* Scratch for one ray: cell offsets and bilinear weights per step. */
typedef struct {
    int *off;
    float *wa, *wb;
} ray_scratch;

/* Two passes: offsets and weights (vectorised by GCC), then the gathers. */
static float ray_sum(const float *m, const ray_walk *w, const ray_scratch *sc)
{
    const float a0 = (float)w->a0, ad = (float)w->ad, b0 = (float)w->b0, bd = (float)w->bd;
    const int sp = (int)w->sp, sa = (int)w->sa, sb = (int)w->sb, n = (int)(w->i1 - w->i0 + 1);
    const int i0 = (int)w->i0;
    int *restrict off = sc->off;
    float *restrict wa = sc->wa, *restrict wb = sc->wb;
    for (int s = 0; s < n; s++) {
        float fi = (float)(i0 + s);
        float fa = a0 + ad * fi, fb = b0 + bd * fi;
        int ia = (int)fa, ib = (int)fb;
        wa[s] = fa - (float)ia;
        wb[s] = fb - (float)ib;
        off[s] = (i0 + s + PAD) * sp + ia * sa + ib * sb;
    }
    float sum = 0.0f;
    for (int s = 0; s < n; s++) {
        const float *c = m + off[s];
        float lo = c[0] + wa[s] * (c[sa] - c[0]);
        float hi = c[sb] + wa[s] * (c[sa + sb] - c[sb]);
        sum += lo + wb[s] * (hi - lo);
    }
    return sum * (float)w->step_mm;
}

static void ray_scatter(float *m, const ray_walk *w, float value)
{
    float a0 = (float)w->a0, ad = (float)w->ad, b0 = (float)w->b0, bd = (float)w->bd;
    float v = value * (float)w->step_mm;
    for (long i = w->i0; i <= w->i1; i++) {
        float fa = a0 + ad * (float)i, fb = b0 + bd * (float)i;
        long ia = (long)fa, ib = (long)fb;
        float wa = fa - (float)ia, wb = fb - (float)ib;
        float *c = m + (size_t)(i + PAD) * w->sp + (size_t)ia * w->sa + (size_t)ib * w->sb;
        c[0] += v * (1 - wa) * (1 - wb);
        c[w->sa] += v * wa * (1 - wb);
        c[w->sb] += v * (1 - wa) * wb;
        c[w->sa + w->sb] += v * wa * wb;
    }
}

/* Source and detector-pixel positions of projection p in voxel coordinates. */
typedef struct {
    double src[3], det0[3], eu[3], ev[3]; /* voxel coords; eu, ev per pixel */
    double src_mm[3], det0_mm[3], eu_mm[3], ev_mm[3];
} proj_frame;

static void frame_make(const cbq_cb_geometry *g, const cbq_volume *vol, size_t p, const double *shift,
                       proj_frame *f)
{
    double b = cbq_cb_angle(g, p), c = cos(b), s = sin(b);
    double d[3] = {0, 0, 0};
    if (shift)
        for (int a = 0; a < 3; a++)
            d[a] = shift[3 * p + a];
    /* Moving the object by d equals moving source and panel by -d. */
    double src[3] = {g->sad * c - d[0], g->sad * s - d[1], -d[2]};
    double u0 = -0.5 * (double)(g->nu - 1) * g->du + g->u_offset;
    double v0 = -0.5 * (double)(g->nv - 1) * g->dv;
    double dc = g->sdd - g->sad;
    double det0[3] = {-dc * c - u0 * s - d[0], -dc * s + u0 * c - d[1], v0 - d[2]};
    double eu[3] = {-s * g->du, c * g->du, 0.0}, ev[3] = {0.0, 0.0, g->dv};
    double sp[3] = {vol->spacing[0], vol->spacing[1], vol->spacing[2]};
    double ctr[3] = {0.5 * (double)(vol->nx - 1), 0.5 * (double)(vol->ny - 1),
                     0.5 * (double)(vol->nz - 1)};
    for (int a = 0; a < 3; a++) {
        f->src_mm[a] = src[a];
        f->det0_mm[a] = det0[a];
        f->eu_mm[a] = eu[a];
        f->ev_mm[a] = ev[a];
        f->src[a] = src[a] / sp[a] + ctr[a];
        f->det0[a] = det0[a] / sp[a] + ctr[a];
        f->eu[a] = eu[a] / sp[a];
        f->ev[a] = ev[a] / sp[a];
    }
}

static int pixel_walk(const proj_frame *f, size_t iu, size_t iv, const cbq_volume *vol,
                      const padded *pv, ray_walk *w)
{
    double d[3], dmm[3];
    for (int a = 0; a < 3; a++) {
        d[a] = f->det0[a] + (double)iu * f->eu[a] + (double)iv * f->ev[a];
        dmm[a] = f->det0_mm[a] + (double)iu * f->eu_mm[a] + (double)iv * f->ev_mm[a] - f->src_mm[a];
    }
    double len = sqrt(dmm[0] * dmm[0] + dmm[1] * dmm[1] + dmm[2] * dmm[2]);
    return ray_setup(f->src, d, len, vol, pv, w);
}

int cbq_sim_project(const cbq_volume *mu, const cbq_cb_geometry *g, size_t p0, size_t p1,
                    const double *shift, float *proj, cbq_error *err)
{
    CBQ_TRY(cbq_cb_geometry_check(g, err));
    CBQ_CHECK_ARG(err, p0 <= p1 && p1 <= g->n_proj, "projector: range [%zu, %zu) outside %zu projections",
                  p0, p1, g->n_proj);
    padded pv;
    CBQ_TRY(padded_make(&pv, mu, 1, err));
    CBQ_CHECK_ARG(err, pv.pnx * pv.pny * pv.pnz < ((size_t)1 << 31),
                  "projector: volume of %zu x %zu x %zu voxels is too large for 32-bit offsets",
                  mu->nx, mu->ny, mu->nz);
    size_t per = g->nu * g->nv, nmax = mu->nx > mu->ny ? mu->nx : mu->ny;
    int fail = 0;
#pragma omp parallel reduction(|| : fail)
    {
        ray_scratch sc = {malloc(nmax * sizeof(int)), malloc(nmax * sizeof(float)),
                          malloc(nmax * sizeof(float))};
        fail = !sc.off || !sc.wa || !sc.wb;
#pragma omp for schedule(dynamic, 1)
        for (size_t p = p0; p < p1; p++) {
            if (fail)
                continue;
            proj_frame f;
            frame_make(g, mu, p, shift, &f);
            float *out = proj + p * per;
            for (size_t iv = 0; iv < g->nv; iv++)
                for (size_t iu = 0; iu < g->nu; iu++) {
                    ray_walk w;
                    out[iu + g->nu * iv] =
                        pixel_walk(&f, iu, iv, mu, &pv, &w) ? ray_sum(pv.data, &w, &sc) : 0.0f;
                }
        }
        free(sc.off);
        free(sc.wa);
        free(sc.wb);
    }
    free(pv.data);
    if (fail)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "projector: out of memory");
    return CBQ_OK;
}

int cbq_sim_backproject_matched(const float *proj, const cbq_cb_geometry *g, cbq_volume *vol,
                                cbq_error *err)
{
    CBQ_TRY(cbq_cb_geometry_check(g, err));
    padded pv;
    CBQ_TRY(padded_make(&pv, vol, 0, err));
    for (size_t p = 0; p < g->n_proj; p++) {
        proj_frame f;
        frame_make(g, vol, p, NULL, &f);
        const float *in = proj + p * g->nu * g->nv;
        for (size_t iv = 0; iv < g->nv; iv++)
            for (size_t iu = 0; iu < g->nu; iu++) {
                ray_walk w;
                if (pixel_walk(&f, iu, iv, vol, &pv, &w))
                    ray_scatter(pv.data, &w, in[iu + g->nu * iv]);
            }
    }
    for (size_t k = 0; k < vol->nz; k++)
        for (size_t j = 0; j < vol->ny; j++)
            memcpy(vol->data + vol->nx * (j + vol->ny * k),
                   pv.data + PAD + pv.pnx * (j + PAD + pv.pny * (k + PAD)), vol->nx * sizeof(float));
    free(pv.data);
    return CBQ_OK;
}
