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

/* Edge response predicted from the transfer function: a band-limited ramp
 * (Nyquist 1/(2 tau) of the virtual detector) times the window, times
 * sinc^2 of linear interpolation on the panel; ESF(x) = 1/2 + 1/pi
 * integral_0^fN MTF(f) sin(2 pi f x) / f df. Returns the 10-90 % distance. */
static double predicted_edge_width(double tau, int hann)
{
    double fn = 0.5 / tau, x10 = 0, x90 = 0;
    double prev = 0;
    for (int step = 0; step <= 2000; step++) {
        double x = -4.0 * tau + 8.0 * tau * step / 2000.0, sum = 0;
        const int m = 2000;
        for (int t = 0; t < m; t++) {
            double f = fn * (t + 0.5) / m, a = CBQ_PI * f * tau;
            double mtf = (hann ? 0.5 * (1 + cos(CBQ_PI * f / fn)) : 1.0) * pow(sin(a) / a, 2);
            sum += mtf * sin(2 * CBQ_PI * f * x) / f * (fn / m);
        }
        double esf = 0.5 + sum / CBQ_PI;
        if (step > 0 && prev < 0.1 && esf >= 0.1) x10 = x;
        if (step > 0 && prev < 0.9 && esf >= 0.9) x90 = x;
        prev = esf;
    }
    return x90 - x10;
}

/* 10-90 % rise of the reconstructed edge of a water cylinder through the
 * isocentre, on a 0.25 mm grid, against the prediction above (20 %). */
static void edge_resolution(void **state)
{
    (void)state;
    for (int hann = 0; hann <= 1; hann++) {
        cbq_cb_geometry g;
        cbq_cb_geometry_default(&g, 512, 8, 360);
        g.du = 0.75; /* 0.5 mm at the isocentre */
        g.dv = 2.0;
        double tau = g.du * g.sad / g.sdd;
        float *proj = malloc(g.nu * g.nv * g.n_proj * sizeof(float));
        assert_non_null(proj);
        for (size_t p = 0; p < g.n_proj; p++)
            for (size_t iv = 0; iv < g.nv; iv++)
                for (size_t iu = 0; iu < g.nu; iu++) {
                    double s[3], d[3];
                    test_ray(&g, p, iu, iv, s, d);
                    proj[iu + g.nu * (iv + g.nv * p)] =
                        (float)(CBQ_MU_WATER * test_chord_cylinder(s, d, -40.0, 0.0, 40.0));
                }
        double sp[3] = {0.25, 0.25, 1.0};
        cbq_volume v;
        cbq_error err = {0};
        assert_int_equal(cbq_volume_alloc(&v, 128, 9, 3, sp, 0, &err), CBQ_OK);
        assert_int_equal(cbq_fdk(proj, &g, hann ? CBQ_APOD_HANN : CBQ_APOD_RAMLAK, &v, &err), CBQ_OK);
        cbq_mu_to_hu(&v);
        /* Fraction of water along x (row through the isocentre, middle slice);
         * water is at -x, so the profile falls: use 1 - fraction. */
        double x10 = 0, x90 = 0, prev = 0;
        for (size_t i = 0; i < v.nx; i++) {
            double x = ((double)i - 0.5 * (double)(v.nx - 1)) * sp[0];
            double f = 1.0 - (*cbq_volume_at(&v, i, 4, 1) + 1000.0) / 1000.0;
            if (i > 0 && prev < 0.1 && f >= 0.1) x10 = x - sp[0] * (f - 0.1) / (f - prev);
            if (i > 0 && prev < 0.9 && f >= 0.9) x90 = x - sp[0] * (f - 0.9) / (f - prev);
            prev = f;
        }
        double want = predicted_edge_width(tau, hann);
        printf("%s: edge 10-90 %% width %.3f mm, predicted %.3f mm (detector pitch at isocentre %.2f mm)\n",
               hann ? "Hann" : "Ram-Lak", x90 - x10, want, tau);
        assert_true(fabs((x90 - x10) / want - 1.0) < 0.2);
        free(proj);
        cbq_volume_free(&v);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(water_cylinder_full_scan),
        cmocka_unit_test(short_scan_matches_full),
        cmocka_unit_test(offset_panel_matches_full),
        cmocka_unit_test(edge_resolution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
