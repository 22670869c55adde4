/* test_cohort.c - whole simulated cases on a small grid: metal raises the
 * streak index around the teeth, swallowing motion blurs the larynx, and
 * the bytes do not depend on the thread count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "cbctiq/sim.h"

enum { SIZE = 64, SLICES = 32 };
static const double SPACING = 4.0;

/* A quiet case: high dose, no scatter, no motion, full scan, no metal. */
static void base_case(cbq_case_params *cp)
{
    cbq_rng rng;
    cbq_rng_seed(&rng, 11);
    cbq_case_draw(cp, SIZE, SLICES, SPACING, &rng);
    cbq_physics_ideal(&cp->physics);
    cp->physics.noise = 1;
    cp->physics.i0 = 2e4;
    cp->anatomy.metal_teeth = cp->anatomy.crown_teeth = 0;
    cp->anatomy.n_fillings = cp->anatomy.n_crowns = 0;
    cp->half_fan = 0;
    cbq_cb_geometry_default(&cp->geometry, 96, 48, 120);
    cp->geometry.du = 400.0 / 96;
    cp->geometry.dv = 200.0 / 48;
}

static void figures(const cbq_case_params *cp, cbq_fom fom[CBQ_CAT_COUNT])
{
    cbq_volume img, ref, lab;
    cbq_error err = {0};
    assert_int_equal(cbq_case_simulate(cp, SIZE, SLICES, SPACING, 5, &img, &ref, &lab, &err), CBQ_OK);
    for (int c = 0; c < CBQ_CAT_COUNT; c++)
        assert_int_equal(cbq_fom_measure(&img, &ref, &lab, c, &fom[c], &err), CBQ_OK);
    cbq_volume_free(&img);
    cbq_volume_free(&ref);
    cbq_volume_free(&lab);
}

static void metal_raises_streaks(void **state)
{
    (void)state;
    cbq_case_params cp;
    base_case(&cp);
    cbq_fom plain[CBQ_CAT_COUNT], metal[CBQ_CAT_COUNT];
    figures(&cp, plain);
    /* Fillings in four molars and a crown. */
    cp.anatomy.metal_teeth = (1u << 0) | (1u << 13) | (1u << 14) | (1u << 27) | (1u << 1);
    cp.anatomy.crown_teeth = 1u << 1;
    figures(&cp, metal);
    printf("mandible streak index: %.1f HU without metal, %.1f HU with\n", plain[CBQ_CAT_MANDIBLE].streak,
           metal[CBQ_CAT_MANDIBLE].streak);
    assert_true(metal[CBQ_CAT_MANDIBLE].streak > 2.0 * plain[CBQ_CAT_MANDIBLE].streak);
    assert_true(metal[CBQ_CAT_MANDIBLE].streak > plain[CBQ_CAT_MANDIBLE].streak + 20.0);
}

static void motion_blurs_larynx(void **state)
{
    (void)state;
    cbq_case_params cp;
    base_case(&cp);
    cbq_fom still[CBQ_CAT_COUNT], moved[CBQ_CAT_COUNT];
    figures(&cp, still);
    cp.physics.motion_frac = 0.4;
    cp.physics.motion_start = 0.3;
    cp.physics.swallow = 1.0;
    cp.anatomy.swallow_mm = 15.0;
    figures(&cp, moved);
    printf("larynx sharpness: %.3f still, %.3f with swallowing; parotid %.3f / %.3f\n",
           still[CBQ_CAT_LARYNX].sharpness, moved[CBQ_CAT_LARYNX].sharpness,
           still[CBQ_CAT_PAROTID].sharpness, moved[CBQ_CAT_PAROTID].sharpness);
    assert_true(still[CBQ_CAT_LARYNX].sharpness > 0.85);
    assert_true(moved[CBQ_CAT_LARYNX].sharpness < still[CBQ_CAT_LARYNX].sharpness - 0.1);
    /* The motion is local: the parotids barely change. */
    assert_true(fabs(moved[CBQ_CAT_PAROTID].sharpness - still[CBQ_CAT_PAROTID].sharpness) < 0.05);
}

static void same_bytes_any_thread_count(void **state)
{
    (void)state;
    cbq_rng rng;
    cbq_rng_seed(&rng, 5);
    cbq_case_params cp;
    cbq_case_draw(&cp, SIZE, SLICES, SPACING, &rng);
    cp.physics.motion_frac = 0.3; /* exercise every stage */
    cp.physics.swallow = 1.0;
    cbq_volume img[2], ref[2], lab[2];
    cbq_error err = {0};
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        assert_int_equal(cbq_case_simulate(&cp, SIZE, SLICES, SPACING, 77, &img[t], &ref[t], &lab[t], &err),
                         CBQ_OK);
    }
    size_t bytes = cbq_volume_count(&img[0]) * sizeof(float);
    assert_memory_equal(img[0].data, img[1].data, bytes);
    assert_memory_equal(ref[0].data, ref[1].data, bytes);
    assert_memory_equal(lab[0].data, lab[1].data, bytes);
    for (int t = 0; t < 2; t++) {
        cbq_volume_free(&img[t]);
        cbq_volume_free(&ref[t]);
        cbq_volume_free(&lab[t]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metal_raises_streaks),
        cmocka_unit_test(motion_blurs_larynx),
        cmocka_unit_test(same_bytes_any_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
