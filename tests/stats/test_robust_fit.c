/* test_robust_fit.c - the isotonic fit and robust z-scores (robust_fit.h)
 * on examples worked by hand; metrics_oracle.py checks random inputs
 * against independent Python references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>

#include "cbctiq/robust_fit.h"

static void assert_doubles(const double *got, const double *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        assert_float_equal(got[i], want[i], 1e-12);
}

/* y = 1 3 2 4 on x = 1..4: the one violation (3 > 2) pools to 2.5. */
static void test_isotonic_pools_a_violation(void **state)
{
    (void)state;
    const double x[4] = {1, 2, 3, 4}, y[4] = {1, 3, 2, 4}, want[4] = {1, 2.5, 2.5, 4};
    double fit[4];
    cbq_error err = {0};
    assert_int_equal(cbq_isotonic_fit(x, y, 4, 1, fit, &err), CBQ_OK);
    assert_doubles(fit, want, 4);
}

/* Points out of x order come back in input order; the decreasing fit of
 * y = 5 1 3 (x = 1 2 3) pools 1 and 3 to 2. */
static void test_isotonic_decreasing_keeps_input_order(void **state)
{
    (void)state;
    const double x[3] = {3, 1, 2}, y[3] = {3, 5, 1}, want[3] = {2, 5, 2};
    double fit[3];
    cbq_error err = {0};
    assert_int_equal(cbq_isotonic_fit(x, y, 3, 0, fit, &err), CBQ_OK);
    assert_doubles(fit, want, 3);
}

/* Tied x share one value: the mean of their y before pooling. */
static void test_isotonic_ties_share_a_value(void **state)
{
    (void)state;
    const double x[4] = {1, 2, 2, 3}, y[4] = {0, 4, 2, 5}, want[4] = {0, 3, 3, 5};
    double fit[4];
    cbq_error err = {0};
    assert_int_equal(cbq_isotonic_fit(x, y, 4, 1, fit, &err), CBQ_OK);
    assert_doubles(fit, want, 4);
}

/* median 3, |r - 3| = 2 0 1 1 7 -> MAD 1, s = 1.4826. */
static void test_robust_z_mad(void **state)
{
    (void)state;
    const double r[5] = {1, 3, 2, 4, 10};
    double z[5], scale;
    cbq_error err = {0};
    assert_int_equal(cbq_robust_z(r, 5, z, &scale, &err), CBQ_OK);
    assert_float_equal(scale, 1.4826, 1e-12);
    const double want[5] = {-2 / 1.4826, 0, -1 / 1.4826, 1 / 1.4826, 7 / 1.4826};
    assert_doubles(z, want, 5);
}

/* MAD 0 (most values equal): the mean absolute deviation (4/5) takes over. */
static void test_robust_z_mean_deviation_when_mad_is_zero(void **state)
{
    (void)state;
    const double r[5] = {0, 0, 0, 0, 4};
    double z[5], scale;
    cbq_error err = {0};
    assert_int_equal(cbq_robust_z(r, 5, z, &scale, &err), CBQ_OK);
    assert_float_equal(scale, 1.2533 * 0.8, 1e-12);
    assert_float_equal(z[4], 4 / (1.2533 * 0.8), 1e-12);
    assert_float_equal(z[0], 0, 0);
}

static void test_empty_input_is_an_error(void **state)
{
    (void)state;
    double v = 0, out = 0, scale = 0;
    cbq_error err = {0};
    assert_int_equal(cbq_isotonic_fit(&v, &v, 0, 1, &out, &err), CBQ_ERR_ARG);
    assert_int_equal(cbq_robust_z(&v, 0, &out, &scale, &err), CBQ_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isotonic_pools_a_violation),
        cmocka_unit_test(test_isotonic_decreasing_keeps_input_order),
        cmocka_unit_test(test_isotonic_ties_share_a_value),
        cmocka_unit_test(test_robust_z_mad),
        cmocka_unit_test(test_robust_z_mean_deviation_when_mad_is_zero),
        cmocka_unit_test(test_empty_input_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
