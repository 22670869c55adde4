/* cohort_case.c - one simulated CBCT: draw its anatomy, acquisition and
 * physics, then phantom -> projections (with motion) -> physics -> FDK, and
 * the noise-free reference reconstruction the raters' figures are measured
 * against. */
#include "cbctiq/sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* HU range of the written CBCT (int16, as a clinical scanner stores it). */
static const float HU_MIN = -1024.0f, HU_MAX = 3071.0f;

void cbq_case_draw(cbq_case_params *cp, size_t size, size_t slices, double spacing, cbq_rng *rng)
{
    memset(cp, 0, sizeof *cp);
    cbq_phantom_draw(&cp->anatomy, rng);
    cbq_physics_draw(&cp->physics, rng);
    /* Panel binned so that its pitch at the isocentre is ~0.7 voxel, tall
     * enough for the slab of slices; about pi/2 x size projections (200 for
     * the default 128 grid), as angular sampling needs. */
    size_t nu = (size_t)ceil((double)size / 0.7 / 8.0) * 8;
    size_t nv = (size_t)ceil((double)slices / 0.7 / 8.0) * 8;
    size_t n_proj = size * 25 / 16;
    n_proj = n_proj < 64 ? 64 : n_proj > 400 ? 400 : n_proj;
    double field = (double)size * spacing, height = (double)slices * spacing;
    cbq_cb_geometry_default(&cp->geometry, nu, nv, n_proj);
    cp->geometry.du = field * 1.5 * 1.02 / (double)nu;
    cp->geometry.dv = height * 1.5 * 1.08 / (double)nv;
    cp->geometry.start = 2.0 * CBQ_PI * cbq_rng_uniform(rng);
    double u = cbq_rng_uniform(rng);
    if (u < 0.2) {
        /* Half fan: panel shifted by a quarter of its width, full turn. */
        cp->half_fan = 1;
        cp->geometry.du *= 0.7;
        cp->geometry.u_offset = 0.25 * (double)nu * cp->geometry.du;
    } else if (u < 0.7) {
        cbq_cb_geometry_make_short(&cp->geometry);
    }
}

int cbq_sim_grid_alloc(cbq_volume *v, size_t size, size_t slices, double spacing, cbq_error *err)
{
    double sp[3] = {spacing, spacing, spacing};
    CBQ_TRY(cbq_volume_alloc(v, size, size, slices, sp, 0, err));
    /* Voxel axes right->left, anterior->posterior, inferior->superior,
     * centred on the isocentre: RAS x = -X, y = -Y, z = Z. */
    double c[3] = {0.5 * (double)(size - 1), 0.5 * (double)(size - 1), 0.5 * (double)(slices - 1)};
    v->affine[0][0] = -spacing;
    v->affine[1][1] = -spacing;
    v->affine[2][2] = spacing;
    v->affine[0][3] = c[0] * spacing;
    v->affine[1][3] = c[1] * spacing;
    v->affine[2][3] = -c[2] * spacing;
    return CBQ_OK;
}

static void clamp_hu(cbq_volume *v)
{
    size_t n = cbq_volume_count(v);
    for (size_t i = 0; i < n; i++)
        v->data[i] = fminf(fmaxf(v->data[i], HU_MIN), HU_MAX);
}

/* Projection range [p0, p1) spent in the moved state. */
static void motion_range(const cbq_case_params *cp, size_t *p0, size_t *p1)
{
    const cbq_physics *ph = &cp->physics;
    size_t n = cp->geometry.n_proj;
    *p0 = (size_t)(ph->motion_start * (double)n);
    *p1 = *p0 + (size_t)(ph->motion_frac * (double)n);
    if (*p1 > n)
        *p1 = n;
    if (*p0 > *p1)
        *p0 = *p1;
}

/* Dental metal is kept out of the reference: mu above that of 3071 HU (the
 * top of the stored range) is split off into a small box, projected on its
 * own (shifted to its place) and added to the measured line integrals only.
 * ref_mu receives mu clamped at that level; metal_p the metal's line
 * integrals (zeros when there is no metal). */
static int split_metal(const cbq_volume *mu, const cbq_cb_geometry *g, cbq_volume *ref_mu, float *metal_p,
                       double *shift, cbq_error *err)
{
    const float cap = (float)(CBQ_MU_WATER * (1.0 + HU_MAX / 1000.0));
    size_t lo[3] = {mu->nx, mu->ny, mu->nz}, hi[3] = {0, 0, 0}, n = cbq_volume_count(mu);
    for (size_t v = 0; v < n; v++) {
        ref_mu->data[v] = mu->data[v] < cap ? mu->data[v] : cap;
        if (mu->data[v] > cap) {
            size_t idx[3] = {v % mu->nx, (v / mu->nx) % mu->ny, v / (mu->nx * mu->ny)};
            for (int a = 0; a < 3; a++) {
                if (idx[a] < lo[a]) lo[a] = idx[a];
                if (idx[a] > hi[a]) hi[a] = idx[a];
            }
        }
    }
    size_t per = g->nu * g->nv * g->n_proj;
    memset(metal_p, 0, per * sizeof(float));
    if (lo[0] > hi[0])
        return CBQ_OK;
    cbq_volume box;
    CBQ_TRY(cbq_volume_alloc(&box, hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1, mu->spacing, 0, err));
    for (size_t k = 0; k < box.nz; k++)
        for (size_t j = 0; j < box.ny; j++)
            for (size_t i = 0; i < box.nx; i++) {
                float m = *cbq_volume_at(mu, lo[0] + i, lo[1] + j, lo[2] + k);
                *cbq_volume_at(&box, i, j, k) = m > cap ? m - cap : 0.0f;
            }
    size_t dims[3] = {mu->nx, mu->ny, mu->nz};
    for (size_t p = 0; p < g->n_proj; p++)
        for (int a = 0; a < 3; a++)
            shift[3 * p + a] = (0.5 * (double)(lo[a] + hi[a]) - 0.5 * (double)(dims[a] - 1)) * mu->spacing[a];
    int rc = cbq_sim_project(&box, g, 0, g->n_proj, shift, metal_p, err);
    cbq_volume_free(&box);
    return rc;
}

/* From mu at rest (and, when the case moves, mu in the moved state) to the
 * degraded and the reference reconstructions, in HU. img and ref must be
 * allocated on the grid of mu_rest; ref is also used as scratch. */
static int simulate_core(const cbq_case_params *cp, const cbq_volume *mu_rest, const cbq_volume *mu_moved,
                         uint64_t seed, cbq_volume *img, cbq_volume *ref, cbq_error *err)
{
    const cbq_cb_geometry *g = &cp->geometry;
    size_t n_proj_px;
    if (!cbq_size_mul(&n_proj_px, g->nu * g->nv, g->n_proj))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "simulate: projection size overflows");
    float *clean = malloc(n_proj_px * sizeof(float)), *meas = malloc(n_proj_px * sizeof(float));
    double *shift = calloc(3 * g->n_proj, sizeof(double));
    int rc = clean && meas && shift ? CBQ_OK
                                    : CBQ_FAIL(err, CBQ_ERR_NOMEM, "simulate: cannot allocate projections");
    /* ref holds the metal-free mu until it receives the reference image. */
    if (rc == CBQ_OK) rc = split_metal(mu_rest, g, ref, meas, shift, err);
    if (rc == CBQ_OK) rc = cbq_sim_project(ref, g, 0, g->n_proj, NULL, clean, err);
    if (rc == CBQ_OK) rc = cbq_fdk(clean, g, CBQ_APOD_HANN, ref, err);
    if (rc == CBQ_OK) {
        for (size_t n = 0; n < n_proj_px; n++)
            meas[n] += clean[n];
        size_t p0, p1;
        motion_range(cp, &p0, &p1);
        memset(shift, 0, 3 * g->n_proj * sizeof(double));
        for (size_t p = p0; p < p1; p++)
            for (int a = 0; a < 3; a++)
                shift[3 * p + a] = cp->physics.shift_mm[a];
        if (mu_moved && p1 > p0)
            rc = cbq_sim_project(mu_moved, g, p0, p1, shift, meas, err);
    }
    if (rc == CBQ_OK) rc = cbq_physics_apply(&cp->physics, g, seed, meas, err);
    if (rc == CBQ_OK) rc = cbq_fdk(meas, g, CBQ_APOD_HANN, img, err);
    free(clean);
    free(meas);
    free(shift);
    if (rc != CBQ_OK)
        return rc;
    cbq_mu_to_hu(img);
    cbq_mu_to_hu(ref);
    clamp_hu(img);
    clamp_hu(ref);
    return CBQ_OK;
}

static void free_all(cbq_volume *a, cbq_volume *b, cbq_volume *c)
{
    cbq_volume_free(a);
    cbq_volume_free(b);
    cbq_volume_free(c);
}

int cbq_case_simulate(const cbq_case_params *cp, size_t size, size_t slices, double spacing,
                      uint64_t seed, cbq_volume *img, cbq_volume *ref, cbq_volume *labels,
                      cbq_error *err)
{
    memset(img, 0, sizeof *img);
    memset(ref, 0, sizeof *ref);
    memset(labels, 0, sizeof *labels);
    cbq_volume moved = {0};
    int moves = cp->physics.motion_frac > 0;
    int rc = cbq_sim_grid_alloc(img, size, slices, spacing, err);
    if (rc == CBQ_OK) rc = cbq_sim_grid_alloc(ref, size, slices, spacing, err);
    if (rc == CBQ_OK) rc = cbq_sim_grid_alloc(labels, size, slices, spacing, err);
    if (rc == CBQ_OK && moves) rc = cbq_sim_grid_alloc(&moved, size, slices, spacing, err);
    /* The phantom is rasterised into img, which then serves as mu at rest. */
    if (rc == CBQ_OK) rc = cbq_phantom_rasterise(&cp->anatomy, 0.0, img, labels, err);
    if (rc == CBQ_OK && moves)
        rc = cbq_phantom_rasterise(&cp->anatomy, cp->physics.swallow, &moved, NULL, err);
    if (rc == CBQ_OK) {
        cbq_hu_to_mu(img);
        if (moves)
            cbq_hu_to_mu(&moved);
        rc = simulate_core(cp, img, moves ? &moved : NULL, seed, img, ref, err);
    }
    cbq_volume_free(&moved);
    if (rc != CBQ_OK)
        free_all(img, ref, labels);
    return rc;
}

/* Swallowing in a real CT: a smooth superior-anterior displacement field,
 * full inside the larynx's bounding box grown by 10 mm, fading to zero over
 * another 15 mm (cosine), sampled trilinearly. */
static void swallow_field(const cbq_volume *hu, const cbq_volume *lab, double disp_mm, cbq_volume *out)
{
    size_t nx = hu->nx, ny = hu->ny, nz = hu->nz;
    double lo[3] = {1e9, 1e9, 1e9}, hi[3] = {-1e9, -1e9, -1e9};
    for (size_t k = 0; k < nz; k++)
        for (size_t j = 0; j < ny; j++)
            for (size_t i = 0; i < nx; i++)
                if ((int)*cbq_volume_at(lab, i, j, k) == CBQ_LAB_LARYNX) {
                    double x[3] = {(double)i, (double)j, (double)k};
                    for (int a = 0; a < 3; a++) {
                        lo[a] = fmin(lo[a], x[a] * hu->spacing[a]);
                        hi[a] = fmax(hi[a], x[a] * hu->spacing[a]);
                    }
                }
    memcpy(out->data, hu->data, cbq_volume_count(hu) * sizeof(float));
    if (lo[0] > hi[0])
        return;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < nz; k++)
        for (size_t j = 0; j < ny; j++)
            for (size_t i = 0; i < nx; i++) {
                double x[3] = {(double)i * hu->spacing[0], (double)j * hu->spacing[1], (double)k * hu->spacing[2]};
                double w = 1.0;
                for (int a = 0; a < 3; a++) {
                    double d = fmax(0.0, fmax(lo[a] - 10.0 - x[a], x[a] - hi[a] - 10.0));
                    w *= d >= 15.0 ? 0.0 : 0.5 * (1.0 + cos(CBQ_PI * d / 15.0));
                }
                if (w <= 0)
                    continue;
                /* Content moves up (+k) and forward (-j): sample from below and behind. */
                double si = (double)i, sj = (double)j + 0.3 * w * disp_mm / hu->spacing[1];
                double sk = (double)k - w * disp_mm / hu->spacing[2];
                if (sj < 0 || sk < 0 || sj > (double)(ny - 1) || sk > (double)(nz - 1))
                    continue;
                size_t j0 = (size_t)sj, k0 = (size_t)sk;
                size_t j1 = j0 + 1 < ny ? j0 + 1 : j0, k1 = k0 + 1 < nz ? k0 + 1 : k0;
                double fj = sj - (double)j0, fk = sk - (double)k0;
                size_t ii = (size_t)si;
                double v = (1 - fk) * ((1 - fj) * *cbq_volume_at(hu, ii, j0, k0) + fj * *cbq_volume_at(hu, ii, j1, k0)) +
                           fk * ((1 - fj) * *cbq_volume_at(hu, ii, j0, k1) + fj * *cbq_volume_at(hu, ii, j1, k1));
                *cbq_volume_at(out, i, j, k) = (float)v;
            }
}

int cbq_case_simulate_anatomy(const cbq_case_params *cp, const cbq_volume *hu_anat,
                              const cbq_volume *lab_anat, uint64_t seed, cbq_volume *img,
                              cbq_volume *ref, cbq_volume *labels, cbq_error *err)
{
    memset(img, 0, sizeof *img);
    memset(ref, 0, sizeof *ref);
    memset(labels, 0, sizeof *labels);
    CBQ_CHECK_ARG(err, hu_anat->nx == hu_anat->ny && lab_anat->nx == hu_anat->nx &&
                           lab_anat->ny == hu_anat->ny && lab_anat->nz == hu_anat->nz,
                  "simulate: anatomy and labels must share a square simulator grid");
    size_t size = hu_anat->nx, slices = hu_anat->nz;
    double spacing = hu_anat->spacing[0];
    cbq_volume moved = {0};
    int moves = cp->physics.motion_frac > 0;
    int rc = cbq_sim_grid_alloc(img, size, slices, spacing, err);
    if (rc == CBQ_OK) rc = cbq_sim_grid_alloc(ref, size, slices, spacing, err);
    if (rc == CBQ_OK) rc = cbq_sim_grid_alloc(labels, size, slices, spacing, err);
    if (rc == CBQ_OK && moves) rc = cbq_sim_grid_alloc(&moved, size, slices, spacing, err);
    if (rc == CBQ_OK) {
        memcpy(labels->data, lab_anat->data, cbq_volume_count(lab_anat) * sizeof(float));
        memcpy(img->data, hu_anat->data, cbq_volume_count(hu_anat) * sizeof(float));
        if (moves) {
            swallow_field(hu_anat, lab_anat, cp->physics.swallow * cp->anatomy.swallow_mm, &moved);
            cbq_hu_to_mu(&moved);
        }
        cbq_hu_to_mu(img);
        rc = simulate_core(cp, img, moves ? &moved : NULL, seed, img, ref, err);
    }
    cbq_volume_free(&moved);
    if (rc != CBQ_OK)
        free_all(img, ref, labels);
    return rc;
}
