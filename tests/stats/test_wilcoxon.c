/* test_wilcoxon.c - the signed-rank test on cases worked by hand: the
 * smallest one-sided p (every difference negative), a full exact null for
 * n = 5, the normal approximation with a zero and a tie group, and the
 * undefined cases. (SciPy comparisons on random data: wilcoxon_oracle.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>

#include "cbctiq/wilcoxon.h"

static cbq_wilcoxon run(const double *x, const double *y, size_t n, cbq_alternative alt)
{
    cbq_wilcoxon w;
    cbq_error err = {0};
    assert_int_equal(cbq_wilcoxon_signed_rank(x, y, n, alt, &w, &err), CBQ_OK);
    return w;
}

static void test_all_negative(void **state)
{
    (void)state;
    /* Only 1 of the 2^5 sign patterns has no positive difference. */
    const double x[5] = {1, 2, 3, 4, 5}, y[5] = {2, 4, 6, 8, 10};
    cbq_wilcoxon w = run(x, y, 5, CBQ_ALT_LESS);
    assert_float_equal(w.w_plus, 0, 0);
    assert_float_equal(w.w_minus, 15, 0);
    assert_float_equal(w.p, 1.0 / 32, 0);
    assert_string_equal(w.p_method, "exact");
    assert_null(w.reason);
    assert_float_equal(run(x, y, 5, CBQ_ALT_GREATER).p, 1.0, 0);
    assert_float_equal(run(x, y, 5, CBQ_ALT_TWO_SIDED).p, 2.0 / 32, 0);
}

static void test_exact_n5(void **state)
{
    (void)state;
    /* d = -3, 1, -2, 5, -4: w_plus = 1 + 5 = 6, w_minus = 9. Subsets of
     * {1..5} by sum 0..15: 1 1 1 2 2 3 3 3 3 3 3 2 2 1 1 1, so
     * P(W+ <= 6) = 13/32 and P(W+ >= 6) = 22/32. */
    const double x[5] = {0, 1, 0, 5, 0}, y[5] = {3, 0, 2, 0, 4};
    cbq_wilcoxon w = run(x, y, 5, CBQ_ALT_LESS);
    assert_float_equal(w.w_plus, 6, 0);
    assert_float_equal(w.w_minus, 9, 0);
    assert_float_equal(w.statistic, 6, 0);
    assert_float_equal(w.p, 13.0 / 32, 1e-15);
    assert_float_equal(run(x, y, 5, CBQ_ALT_GREATER).p, 22.0 / 32, 1e-15);
    w = run(x, y, 5, CBQ_ALT_TWO_SIDED);
    assert_float_equal(w.statistic, 6, 0);
    assert_float_equal(w.p, 26.0 / 32, 1e-15);
}

static void test_normal_with_zero_and_ties(void **state)
{
    (void)state;
    /* d = 1, 1, -1, 0, 2: the zero is dropped; |d| ranks 2, 2, 2, 4;
     * w_plus = 8, w_minus = 2; n = 4: mean 5, variance
     * (4*5*9 - 3*8/2) / 24 = 7, so z = 3 / sqrt(7). */
    const double x[5] = {1, 1, 0, 5, 2}, y[5] = {0, 0, 1, 5, 0};
    cbq_wilcoxon w = run(x, y, 5, CBQ_ALT_GREATER);
    assert_int_equal(w.n_used, 4);
    assert_float_equal(w.w_plus, 8, 0);
    assert_float_equal(w.w_minus, 2, 0);
    assert_string_equal(w.p_method, "normal");
    assert_float_equal(w.z, 3 / sqrt(7.0), 1e-15);
    assert_float_equal(w.p, 0.5 * erfc(3 / sqrt(7.0) / sqrt(2.0)), 1e-15);
    w = run(x, y, 5, CBQ_ALT_TWO_SIDED);
    assert_float_equal(w.statistic, 2, 0);
    assert_float_equal(w.p, erfc(3 / sqrt(7.0) / sqrt(2.0)), 1e-15);
}

static void test_undefined(void **state)
{
    (void)state;
    const double x[3] = {1, 2, 3}, nan_x[3] = {1, NAN, 3};
    cbq_wilcoxon w = run(x, x, 3, CBQ_ALT_LESS);
    assert_true(isnan(w.p));
    assert_string_equal(w.reason, "every difference is zero");
    w = run(nan_x, x, 3, CBQ_ALT_LESS);
    assert_true(isnan(w.p));
    assert_non_null(w.reason);
    w = run(x, x, 0, CBQ_ALT_LESS);
    assert_true(isnan(w.p) && w.n_used == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_negative),
        cmocka_unit_test(test_exact_n5),
        cmocka_unit_test(test_normal_with_zero_and_ties),
        cmocka_unit_test(test_undefined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
