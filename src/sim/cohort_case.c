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

static int alloc_like(cbq_volume *v, size_t size, size_t slices, double spacing, cbq_error *err)
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

/* Replaces the projections of the moved part of the arc by those of the
 * moved anatomy (swallowed larynx, shifted head). */
static int apply_motion(const cbq_case_params *cp, size_t size, size_t slices, double spacing,
                        float *proj, cbq_error *err)
{
    const cbq_physics *ph = &cp->physics;
    const cbq_cb_geometry *g = &cp->geometry;
    size_t p0 = (size_t)(ph->motion_start * (double)g->n_proj);
    size_t p1 = p0 + (size_t)(ph->motion_frac * (double)g->n_proj);
    if (p1 > g->n_proj)
        p1 = g->n_proj;
    if (p1 <= p0)
        return CBQ_OK;
    cbq_volume moved;
    CBQ_TRY(alloc_like(&moved, size, slices, spacing, err));
    double *shift = calloc(3 * g->n_proj, sizeof(double));
    int rc = shift ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "simulate: out of memory");
    if (rc == CBQ_OK)
        rc = cbq_phantom_rasterise(&cp->anatomy, ph->swallow, &moved, NULL, err);
    if (rc == CBQ_OK) {
        cbq_hu_to_mu(&moved);
        for (size_t p = p0; p < p1; p++)
            for (int a = 0; a < 3; a++)
                shift[3 * p + a] = ph->shift_mm[a];
        rc = cbq_sim_project(&moved, g, p0, p1, shift, proj, err);
    }
    free(shift);
    cbq_volume_free(&moved);
    return rc;
}

int cbq_case_simulate(const cbq_case_params *cp, size_t size, size_t slices, double spacing,
                      uint64_t seed, cbq_volume *img, cbq_volume *ref, cbq_volume *labels,
                      cbq_error *err)
{
    const cbq_cb_geometry *g = &cp->geometry;
    memset(img, 0, sizeof *img);
    memset(ref, 0, sizeof *ref);
    memset(labels, 0, sizeof *labels);
    size_t n_proj_px;
    if (!cbq_size_mul(&n_proj_px, g->nu * g->nv, g->n_proj))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "simulate: projection size overflows");
    float *clean = malloc(n_proj_px * sizeof(float)), *meas = malloc(n_proj_px * sizeof(float));
    int rc = clean && meas ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "simulate: cannot allocate projections");
    if (rc == CBQ_OK) rc = alloc_like(img, size, slices, spacing, err);
    if (rc == CBQ_OK) rc = alloc_like(ref, size, slices, spacing, err);
    if (rc == CBQ_OK) rc = alloc_like(labels, size, slices, spacing, err);
    /* The phantom is rasterised into img, which then serves as mu. */
    if (rc == CBQ_OK) rc = cbq_phantom_rasterise(&cp->anatomy, 0.0, img, labels, err);
    if (rc == CBQ_OK) {
        cbq_hu_to_mu(img);
        rc = cbq_sim_project(img, g, 0, g->n_proj, NULL, clean, err);
    }
    if (rc == CBQ_OK) rc = cbq_fdk(clean, g, CBQ_APOD_HANN, ref, err);
    if (rc == CBQ_OK) {
        memcpy(meas, clean, n_proj_px * sizeof(float));
        if (cp->physics.motion_frac > 0)
            rc = apply_motion(cp, size, slices, spacing, meas, err);
    }
    if (rc == CBQ_OK) rc = cbq_physics_apply(&cp->physics, g, seed, meas, err);
    if (rc == CBQ_OK) rc = cbq_fdk(meas, g, CBQ_APOD_HANN, img, err);
    free(clean);
    free(meas);
    if (rc != CBQ_OK) {
        cbq_volume_free(img);
        cbq_volume_free(ref);
        cbq_volume_free(labels);
        return rc;
    }
    cbq_mu_to_hu(img);
    cbq_mu_to_hu(ref);
    clamp_hu(img);
    clamp_hu(ref);
    return CBQ_OK;
}
