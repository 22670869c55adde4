/* test_physics.c - the physics models seen through FDK: quantum noise
 * falls as 1/sqrt(dose), scatter and beam hardening cup a water cylinder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_test_util.h"

enum { N = 64, NZ = 8 };
static const double SP = 4.0;

/* Water cylinder r = 80 mm through the given physics; returns HU volume. */
static void recon_with(const cbq_physics *ph, cbq_volume *v)
{
    cbq_cb_geometry g;
    cbq_cb_geometry_default(&g, 128, 24, 180);
    g.dv = 4.0;
    float *proj = malloc(g.nu * g.nv * g.n_proj * sizeof(float));
    assert_non_null(proj);
    test_project_cylinder(&g, 80.0, CBQ_MU_WATER, proj);
    cbq_error err = {0};
    assert_int_equal(cbq_physics_apply(ph, &g, 99, proj, &err), CBQ_OK);
    double sp[3] = {SP, SP, SP};
    assert_int_equal(cbq_volume_alloc(v, N, N, NZ, sp, 0, &err), CBQ_OK);
    assert_int_equal(cbq_fdk(proj, &g, CBQ_APOD_HANN, v, &err), CBQ_OK);
    cbq_mu_to_hu(v);
    free(proj);
}

/* Mean and sd of HU in an annulus rlo <= r < rhi, central slices. */
static void ring_stats(const cbq_volume *v, double rlo, double rhi, double *mean, double *sd)
{
    double s = 0, s2 = 0, n = 0;
    for (size_t k = 2; k < NZ - 2; k++)
        for (size_t j = 0; j < N; j++)
            for (size_t i = 0; i < N; i++) {
                double r = hypot(((double)i - 0.5 * (N - 1)) * SP, ((double)j - 0.5 * (N - 1)) * SP);
                if (r < rlo || r >= rhi) continue;
                double h = *cbq_volume_at(v, i, j, k);
                s += h;
                s2 += h * h;
                n += 1;
            }
    *mean = s / n;
    *sd = sqrt(fmax(0.0, s2 / n - *mean * *mean));
}

static void noise_scales_with_dose(void **state)
{
    (void)state;
    cbq_physics ph;
    cbq_physics_ideal(&ph);
    ph.noise = 1;
    double sd[3], mean;
    const double dose[3] = {5e3, 2e4, 8e4};
    for (int d = 0; d < 3; d++) {
        ph.i0 = dose[d];
        cbq_volume v;
        recon_with(&ph, &v);
        ring_stats(&v, 0.0, 50.0, &mean, &sd[d]);
        printf("I0 %.0f: mean %.1f HU, sd %.2f HU\n", dose[d], mean, sd[d]);
        cbq_volume_free(&v);
    }
    /* Four times the dose halves the noise: 1/sqrt(dose) within 10 %. */
    assert_true(fabs(sd[0] / sd[1] / 2.0 - 1.0) < 0.10);
    assert_true(fabs(sd[1] / sd[2] / 2.0 - 1.0) < 0.10);
}

static void scatter_cups(void **state)
{
    (void)state;
    cbq_physics ph;
    cbq_physics_ideal(&ph);
    cbq_volume clean, cupped;
    recon_with(&ph, &clean);
    ph.scatter = 0.3;
    recon_with(&ph, &cupped);
    double c0, r0, cs, rs, sd;
    ring_stats(&clean, 0.0, 25.0, &c0, &sd);
    ring_stats(&clean, 55.0, 70.0, &r0, &sd);
    ring_stats(&cupped, 0.0, 25.0, &cs, &sd);
    ring_stats(&cupped, 55.0, 70.0, &rs, &sd);
    printf("no scatter: centre %.1f rim %.1f HU; scatter 0.3: centre %.1f rim %.1f HU\n", c0, r0, cs, rs);
    assert_true(fabs(c0) < 10.0 && fabs(r0) < 10.0);
    assert_true(cs < -50.0);            /* lost attenuation in the centre */
    assert_true(rs - cs > 20.0);        /* cupping: rim brighter than centre */
    cbq_volume_free(&clean);
    cbq_volume_free(&cupped);
}

static void beam_hardening_cups(void **state)
{
    (void)state;
    cbq_physics ph;
    cbq_physics_ideal(&ph);
    ph.bh = 0.03;
    cbq_volume v;
    recon_with(&ph, &v);
    double c, r, sd;
    ring_stats(&v, 0.0, 25.0, &c, &sd);
    ring_stats(&v, 55.0, 70.0, &r, &sd);
    printf("beam hardening 0.03: centre %.1f rim %.1f HU\n", c, r);
    assert_true(r - c > 10.0);
    cbq_volume_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(noise_scales_with_dose),
        cmocka_unit_test(scatter_cups),
        cmocka_unit_test(beam_hardening_cups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
