/* test_agreement.c - ICC and Krippendorff's alpha against published worked
 * examples.
 *
 * Shrout, P. E. & Fleiss, J. L. (1979). Intraclass correlations: uses in
 * assessing rater reliability. Psychological Bulletin 86(2), 420-428,
 * Table 2 (6 targets x 4 judges) with the values printed in Table 4:
 * ICC(2,1) = .29, ICC(3,1) = .71, ICC(2,4) = .62, ICC(3,4) = .91 and the
 * mean squares of Table 3 (BMS 11.24, JMS 32.49, EMS 1.02).
 *
 * Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability.
 * Annenberg School for Communication, University of Pennsylvania, example C
 * (4 observers x 12 units with missing values): interval alpha = 0.849,
 * ordinal alpha = 0.815. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>

#include "cbctiq/ratings.h"

static void test_icc_shrout_fleiss(void **state)
{
    (void)state;
    static const double m[6 * 4] = {9, 2, 5, 8, 6, 1, 3, 2, 8, 4, 6, 8,
                                    7, 1, 2, 6, 10, 5, 6, 9, 6, 2, 4, 7};
    cbq_icc icc;
    cbq_error err = {0};
    assert_int_equal(cbq_icc_compute(m, 6, 4, &icc, &err), CBQ_OK);
    assert_null(icc.reason);
    assert_float_equal(icc.bms, 11.24, 0.005);
    assert_float_equal(icc.jms, 32.49, 0.005);
    assert_float_equal(icc.ems, 1.02, 0.005);
    assert_float_equal(icc.icc2_1, 0.29, 0.005);
    assert_float_equal(icc.icc3_1, 0.71, 0.005);
    assert_float_equal(icc.icc2_k, 0.62, 0.005);
    assert_float_equal(icc.icc3_k, 0.91, 0.005);
}

static void test_alpha_krippendorff_2011(void **state)
{
    (void)state;
    const double N = NAN;
    /* units x observers A, B, C, D */
    const double m[12 * 4] = {1, 1, N, 1, 2, 2, 3, 2, 3, 3, 3, 3, 3, 3, 3, 3,
                              2, 2, 2, 2, 1, 2, 3, 4, 4, 4, 4, 4, 1, 1, 2, 1,
                              2, 2, 2, 2, N, 5, 5, 5, N, N, 1, 1, N, 3, N, N};
    double a;
    const char *reason;
    cbq_error err = {0};
    assert_int_equal(cbq_krippendorff_alpha(m, 12, 4, CBQ_ALPHA_INTERVAL, &a, &reason, &err), CBQ_OK);
    assert_null(reason);
    assert_float_equal(a, 0.849, 0.0005);
    assert_int_equal(cbq_krippendorff_alpha(m, 12, 4, CBQ_ALPHA_ORDINAL, &a, &reason, &err), CBQ_OK);
    assert_float_equal(a, 0.815, 0.0005);
}

static void test_undefined(void **state)
{
    (void)state;
    const double same[3 * 2] = {3, 3, 3, 3, 3, 3};
    cbq_icc icc;
    cbq_error err = {0};
    assert_int_equal(cbq_icc_compute(same, 3, 2, &icc, &err), CBQ_OK);
    assert_non_null(icc.reason);
    assert_true(isnan(icc.icc2_1));
    double a;
    const char *reason;
    assert_int_equal(cbq_krippendorff_alpha(same, 3, 2, CBQ_ALPHA_INTERVAL, &a, &reason, &err), CBQ_OK);
    assert_non_null(reason);
    assert_true(isnan(a));
    cbq_kendall_w kw;
    assert_int_equal(cbq_kendall_w_compute(same, 3, 2, &kw, &err), CBQ_OK);
    assert_non_null(kw.reason);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_icc_shrout_fleiss),
        cmocka_unit_test(test_alpha_krippendorff_2011),
        cmocka_unit_test(test_undefined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
