/* test_structures.c - structure name matching against names in use:
 * TG-263 (AAPM Report 263, 2018) standard names first, then spellings seen
 * in clinical exports (OpenKBP's camel case, free text), and names that must
 * never match (planning volumes, PRVs, optimisation helpers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cbctiq/structures.h"

static void expect(const char *name, int category, char side)
{
    char got_side = '?';
    int got = cbq_structure_match(name, &got_side);
    if (got != category || (category >= 0 && got_side != side))
        fail_msg("'%s': got category %d side '%c', expected %d '%c'", name, got,
                 got_side ? got_side : '0', category, side ? side : '0');
}

static void test_tg263_names(void **state)
{
    (void)state;
    expect("Parotid_L", CBQ_STRUCT_PAROTID, 'L');
    expect("Parotid_R", CBQ_STRUCT_PAROTID, 'R');
    expect("Glnd_Submand_L", CBQ_STRUCT_SUBMANDIBULAR, 'L');
    expect("Glnd_Submand_R", CBQ_STRUCT_SUBMANDIBULAR, 'R');
    expect("Larynx", CBQ_STRUCT_LARYNX, 0);
    expect("Larynx_Glottic", CBQ_STRUCT_LARYNX, 0);
    expect("Larynx_SG", CBQ_STRUCT_LARYNX, 0);
    expect("Bone_Mandible", CBQ_STRUCT_MANDIBLE, 0);
    expect("Parotids", CBQ_STRUCT_PAROTID, 0);
}

static void test_usual_spellings(void **state)
{
    (void)state;
    expect("parotid lt", CBQ_STRUCT_PAROTID, 'L');
    expect("Rt Parotid", CBQ_STRUCT_PAROTID, 'R');
    expect("LeftParotid", CBQ_STRUCT_PAROTID, 'L');
    expect("RightParotid", CBQ_STRUCT_PAROTID, 'R');
    expect("PAROTID_LEFT", CBQ_STRUCT_PAROTID, 'L');
    expect("parotid_r", CBQ_STRUCT_PAROTID, 'R');
    expect("Submandibular Gland R", CBQ_STRUCT_SUBMANDIBULAR, 'R');
    expect("submandibular_l", CBQ_STRUCT_SUBMANDIBULAR, 'L');
    expect("SMG_L", CBQ_STRUCT_SUBMANDIBULAR, 'L');
    expect("Mandible", CBQ_STRUCT_MANDIBLE, 0);
    expect("mandible", CBQ_STRUCT_MANDIBLE, 0);
    expect("LARYNX", CBQ_STRUCT_LARYNX, 0);
}

static void test_never_match(void **state)
{
    (void)state;
    expect("PTV_70", -1, 0);
    expect("Parotid_L_PRV03", -1, 0);
    expect("Parotid-PTV", -1, 0);
    expect("opt_parotid_r", -1, 0);
    expect("Mandible+3mm", -1, 0);
    expect("avoid_larynx", -1, 0);
    expect("Brainstem", -1, 0);
    expect("SpinalCord", -1, 0);
    expect("Esophagus", -1, 0);
    expect("", -1, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tg263_names),
        cmocka_unit_test(test_usual_spellings),
        cmocka_unit_test(test_never_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
