/* test_stats.c - small hand-checkable cases of the correlation library:
 * Holm / Benjamini-Hochberg on a worked family, Kendall's exact null for
 * n = 4, the exact permutation count, results independent of the thread
 * count, and undefined cases reported with a reason. (SciPy comparisons on
 * random data are in correlate_oracle.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <omp.h>
#include <cmocka.h>

#include "cbctiq/stats.h"

static void test_holm_bh_worked_family(void **state)
{
    (void)state;
    /* sorted: 0.005, 0.01, 0.03, 0.04 (m = 4)
     * Holm: 4*0.005=0.02, 3*0.01=0.03, 2*0.03=0.06, max(0.06, 1*0.04)=0.06
     * BH:   min over j>=i of 4/j p_(j): 0.02, 0.02, 0.04, 0.04 */
    const double p[5] = {0.01, 0.04, NAN, 0.03, 0.005};
    double holm[5], bh[5];
    cbq_error err = {0};
    assert_int_equal(cbq_p_adjust_holm(p, 5, holm, &err), CBQ_OK);
    assert_int_equal(cbq_p_adjust_bh(p, 5, bh, &err), CBQ_OK);
    const double want_holm[5] = {0.03, 0.06, NAN, 0.06, 0.02};
    const double want_bh[5] = {0.02, 0.04, NAN, 0.04, 0.02};
    for (int i = 0; i < 5; i++) {
        if (isnan(want_holm[i])) {
            assert_true(isnan(holm[i]) && isnan(bh[i]));
            continue;
        }
        assert_float_equal(holm[i], want_holm[i], 1e-15);
        assert_float_equal(bh[i], want_bh[i], 1e-15);
    }
}

static void test_kendall_exact_n4(void **state)
{
    (void)state;
    /* Perfect agreement of 4 ranks: tau = 1; exactly 1 of the 4! = 24
     * orderings has no discordant pair, so the two-sided p is 2/24. */
    const double x[4] = {1, 2, 3, 4}, y[4] = {10, 20, 30, 40};
    cbq_corr k;
    cbq_error err = {0};
    assert_int_equal(cbq_kendall(x, y, 4, &k, &err), CBQ_OK);
    assert_float_equal(k.r, 1.0, 0);
    assert_float_equal(k.p, 2.0 / 24.0, 1e-16);
    assert_string_equal(k.p_method, "exact");
    /* Spearman of identical rankings is exactly 1 with p exactly 0 */
    cbq_corr s;
    assert_int_equal(cbq_spearman(x, y, 4, &s, &err), CBQ_OK);
    assert_true(s.r == 1.0 && s.p == 0.0);
}

static void test_permutation_exact_and_threads(void **state)
{
    (void)state;
    const double x[12] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8};
    const double y[12] = {2, 7, 1, 8, 2, 8, 1, 8, 2, 8, 4, 5};
    cbq_perm exact, a, b;
    cbq_error err = {0};
    /* n = 5: all 120 orderings; the identity is the only one reaching the
     * observed maximum of perfectly ordered data, so p = 2 * 1/120. */
    const double u[5] = {1, 2, 3, 4, 5};
    assert_int_equal(cbq_spearman_perm(u, u, 5, 9, 0, 1, &exact, &err), CBQ_OK);
    assert_int_equal(exact.exact, 1);
    assert_int_equal(exact.n_perm, 120);
    assert_float_equal(exact.p, 2.0 / 120.0, 1e-16);
    omp_set_num_threads(1);
    assert_int_equal(cbq_spearman_perm(x, y, 12, 9, 50000, 77, &a, &err), CBQ_OK);
    omp_set_num_threads(2);
    assert_int_equal(cbq_spearman_perm(x, y, 12, 9, 50000, 77, &b, &err), CBQ_OK);
    assert_true(a.p == b.p && a.n_perm == 50000 && !a.exact);
    cbq_boot ba, bb;
    omp_set_num_threads(1);
    assert_int_equal(cbq_spearman_bootstrap(x, y, 12, 3000, 0.95, 5, &ba, NULL, &err), CBQ_OK);
    omp_set_num_threads(2);
    assert_int_equal(cbq_spearman_bootstrap(x, y, 12, 3000, 0.95, 5, &bb, NULL, &err), CBQ_OK);
    assert_true(ba.bca[0] == bb.bca[0] && ba.bca[1] == bb.bca[1] && ba.n_valid == bb.n_valid);
}

static void test_undefined_cases(void **state)
{
    (void)state;
    const double x[4] = {1, 2, 3, 4}, c[4] = {2, 2, 2, 2}, m[4] = {1, NAN, 3, 4};
    cbq_corr r;
    cbq_error err = {0};
    assert_int_equal(cbq_spearman(x, c, 4, &r, &err), CBQ_OK);
    assert_true(isnan(r.r) && isnan(r.p));
    assert_string_equal(r.reason, "y is constant (all values tied)");
    assert_int_equal(cbq_pearson(x, m, 4, &r, &err), CBQ_OK);
    assert_string_equal(r.reason, "a value is missing or not finite");
    assert_int_equal(cbq_kendall(x, x, 2, &r, &err), CBQ_OK);
    assert_string_equal(r.reason, "fewer than 3 paired values");
    cbq_loo loo;
    assert_int_equal(cbq_spearman_loo(x, x, 3, 1.0, &loo, &err), CBQ_OK);
    assert_non_null(loo.reason);
    cbq_loo_free(&loo);
    cbq_perm p;
    assert_int_equal(cbq_spearman_perm(x, x, 4, 2, 0, 1, &p, &err), CBQ_OK);
    assert_non_null(p.reason);
    assert_true(isnan(p.p));
    double ci[2];
    cbq_fisher_ci(0.5, 3, 0.95, ci);
    assert_true(isnan(ci[0]) && isnan(ci[1]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_holm_bh_worked_family),
        cmocka_unit_test(test_kendall_exact_n4),
        cmocka_unit_test(test_permutation_exact_and_threads),
        cmocka_unit_test(test_undefined_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
