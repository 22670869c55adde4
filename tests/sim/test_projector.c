/* test_projector.c - the Joseph projector against exact chord lengths, and
 * its transpose against the definition of the adjoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sim_test_util.h"

/* <A x, y> = <x, A^T y> for random x and y (double sums of float data). */
static void transpose_is_adjoint(void **state)
{
    (void)state;
    cbq_cb_geometry g;
    cbq_cb_geometry_default(&g, 40, 20, 15);
    g.du = 6.0;
    g.dv = 6.0;
    double sp[3] = {4.0, 4.0, 5.0};
    cbq_volume x, aty;
    cbq_error err = {0};
    assert_int_equal(cbq_volume_alloc(&x, 30, 26, 12, sp, 0, &err), CBQ_OK);
    assert_int_equal(cbq_volume_alloc(&aty, 30, 26, 12, sp, 0, &err), CBQ_OK);
    cbq_rng rng;
    cbq_rng_seed(&rng, 7);
    for (size_t n = 0; n < cbq_volume_count(&x); n++)
        x.data[n] = (float)cbq_rng_uniform(&rng);
    size_t np = g.nu * g.nv * g.n_proj;
    float *ax = malloc(np * sizeof(float)), *y = malloc(np * sizeof(float));
    assert_non_null(ax);
    assert_non_null(y);
    for (size_t n = 0; n < np; n++)
        y[n] = (float)cbq_rng_uniform(&rng);
    assert_int_equal(cbq_sim_project(&x, &g, 0, g.n_proj, NULL, ax, &err), CBQ_OK);
    assert_int_equal(cbq_sim_backproject_matched(y, &g, &aty, &err), CBQ_OK);
    double lhs = 0, rhs = 0;
    for (size_t n = 0; n < np; n++)
        lhs += (double)ax[n] * y[n];
    for (size_t n = 0; n < cbq_volume_count(&x); n++)
        rhs += (double)x.data[n] * aty.data[n];
    printf("<Ax,y> = %.9g, <x,A^T y> = %.9g, rel diff %.2e\n", lhs, rhs, fabs(lhs - rhs) / fabs(lhs));
    assert_true(lhs > 0);
    assert_true(fabs(lhs - rhs) <= 1e-5 * fabs(lhs));
    free(ax);
    free(y);
    cbq_volume_free(&x);
    cbq_volume_free(&aty);
}

/* A sphere rasterised by the phantom's edge smoothing, projected, against
 * exact chords: the central rays agree to 2 % (partial volume at the rim). */
static void matches_exact_chords(void **state)
{
    (void)state;
    cbq_cb_geometry g;
    cbq_cb_geometry_default(&g, 64, 48, 8);
    double sp[3] = {2.0, 2.0, 2.0}, c[3] = {10.0, -6.0, 4.0}, r = 40.0;
    cbq_volume v;
    cbq_error err = {0};
    assert_int_equal(cbq_volume_alloc(&v, 80, 80, 64, sp, 0, &err), CBQ_OK);
    /* Rasterise with 4^3 supersampling, independent of phantom.c. */
    for (size_t k = 0; k < v.nz; k++)
        for (size_t j = 0; j < v.ny; j++)
            for (size_t i = 0; i < v.nx; i++) {
                int in = 0;
                for (int s = 0; s < 64; s++) {
                    double x = ((double)i - 39.5 + ((s & 3) + 0.5) / 4.0 - 0.5) * 2.0 - c[0];
                    double y = ((double)j - 39.5 + (((s >> 2) & 3) + 0.5) / 4.0 - 0.5) * 2.0 - c[1];
                    double z = ((double)k - 31.5 + ((s >> 4) + 0.5) / 4.0 - 0.5) * 2.0 - c[2];
                    in += x * x + y * y + z * z < r * r;
                }
                *cbq_volume_at(&v, i, j, k) = (float)(CBQ_MU_WATER * in / 64.0);
            }
    float *proj = malloc(g.nu * g.nv * g.n_proj * sizeof(float));
    assert_non_null(proj);
    assert_int_equal(cbq_sim_project(&v, &g, 0, g.n_proj, NULL, proj, &err), CBQ_OK);
    double worst = 0;
    size_t used = 0;
    for (size_t p = 0; p < g.n_proj; p++)
        for (size_t iv = 0; iv < g.nv; iv++)
            for (size_t iu = 0; iu < g.nu; iu++) {
                double s[3], d[3];
                test_ray(&g, p, iu, iv, s, d);
                double exact = CBQ_MU_WATER * test_chord_sphere(s, d, c, r);
                if (exact < CBQ_MU_WATER * 0.6 * 2 * r)
                    continue; /* rays near the rim: partial volume dominates */
                double rel = fabs(proj[iu + g.nu * (iv + g.nv * p)] - exact) / exact;
                worst = fmax(worst, rel);
                used++;
            }
    printf("%zu central rays, worst relative error %.4f\n", used, worst);
    assert_true(used > 100);
    assert_true(worst < 0.02);
    free(proj);
    cbq_volume_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(transpose_is_adjoint),
        cmocka_unit_test(matches_exact_chords),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
