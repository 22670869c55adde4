/* test_anatomy_ct.c - real OpenKBP planning CT as anatomy: the crop holds
 * the labelled organs, the analytic submandibular glands sit below the
 * mandible, a simulated CBCT of it keeps bone as bone, and a missing file is
 * named in the error. Reads the repository's fixture (tests/data, PROVENANCE.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cbctiq/sim.h"

#define SUBJECT CBQ_TEST_DATA "/openkbp_hn_ct/openkbp_test_pt_245/"

static double centroid_z(const cbq_volume *lab, int code, size_t *count)
{
    double s = 0;
    size_t n = 0;
    for (size_t k = 0; k < lab->nz; k++)
        for (size_t j = 0; j < lab->ny; j++)
            for (size_t i = 0; i < lab->nx; i++)
                if ((int)*cbq_volume_at(lab, i, j, k) == code) {
                    s += (double)k;
                    n++;
                }
    *count = n;
    return n ? s / (double)n : -1;
}

static void crop_holds_the_organs(void **state)
{
    (void)state;
    cbq_volume hu, lab;
    cbq_error err = {0};
    assert_int_equal(cbq_anatomy_from_ct(SUBJECT "ct.nii.gz", SUBJECT "oar_labels.nii.gz", 64, 40, 4.0, &hu,
                                         &lab, &err),
                     CBQ_OK);
    int codes[] = {CBQ_LAB_PAROTID_L, CBQ_LAB_PAROTID_R, CBQ_LAB_LARYNX, CBQ_LAB_MANDIBLE, CBQ_LAB_SUBMAND_L,
                   CBQ_LAB_SUBMAND_R};
    size_t n;
    for (size_t c = 0; c < sizeof codes / sizeof codes[0]; c++) {
        centroid_z(&lab, codes[c], &n);
        printf("%s: %zu voxels\n", cbq_sim_label_name(codes[c]), n);
        assert_true(n > 20);
    }
    double zm = centroid_z(&lab, CBQ_LAB_MANDIBLE, &n), zs = centroid_z(&lab, CBQ_LAB_SUBMAND_L, &n);
    double zl = centroid_z(&lab, CBQ_LAB_LARYNX, &n);
    printf("centroid slices: mandible %.1f, submandibular %.1f, larynx %.1f\n", zm, zs, zl);
    assert_true(zs < zm && zl < zm);
    /* Parotid left (label 1) lies at larger i (patient left) than right. */
    double il = 0, ir = 0, nl = 0, nr = 0;
    for (size_t v = 0; v < cbq_volume_count(&lab); v++) {
        int l = (int)lab.data[v];
        if (l == CBQ_LAB_PAROTID_L) { il += (double)(v % 64); nl++; }
        if (l == CBQ_LAB_PAROTID_R) { ir += (double)(v % 64); nr++; }
    }
    assert_true(il / nl > ir / nr);

    cbq_rng rng;
    cbq_rng_seed(&rng, 3);
    cbq_case_params cp;
    cbq_case_draw(&cp, 64, 40, 4.0, &rng);
    cbq_physics_ideal(&cp.physics);
    cp.physics.noise = 1;
    cp.physics.i0 = 2e4;
    cbq_volume img, ref, out_lab;
    assert_int_equal(cbq_case_simulate_anatomy(&cp, &hu, &lab, 9, &img, &ref, &out_lab, &err), CBQ_OK);
    double bone = 0, soft = 0, nb = 0, ns = 0;
    for (size_t v = 0; v < cbq_volume_count(&img); v++) {
        if ((int)out_lab.data[v] == CBQ_LAB_MANDIBLE) { bone += img.data[v]; nb++; }
        if ((int)out_lab.data[v] == CBQ_LAB_PAROTID_L) { soft += img.data[v]; ns++; }
    }
    printf("simulated CBCT: mandible mean %.0f HU, left parotid mean %.0f HU\n", bone / nb, soft / ns);
    assert_true(bone / nb > 300.0);
    assert_true(soft / ns > -150.0 && soft / ns < 100.0);
    cbq_volume_free(&img);
    cbq_volume_free(&ref);
    cbq_volume_free(&out_lab);
    cbq_volume_free(&hu);
    cbq_volume_free(&lab);
}

static void missing_labels_named(void **state)
{
    (void)state;
    cbq_volume hu, lab;
    cbq_error err = {0};
    assert_int_not_equal(cbq_anatomy_from_ct(SUBJECT "ct.nii.gz", SUBJECT "no_such_labels.nii.gz", 64, 40, 4.0,
                                             &hu, &lab, &err),
                         CBQ_OK);
    printf("error: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "no_such_labels.nii.gz"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crop_holds_the_organs),
        cmocka_unit_test(missing_labels_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
