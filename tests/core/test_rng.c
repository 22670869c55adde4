/* test_rng.c - xoshiro256** against its published reference output, and the
 * derived distributions' basic properties. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>

#include "cbctiq/rng.h"

/* Reference: xoshiro256starstar.c by Blackman & Vigna with state {1, 2, 3, 4}
 * produces 11520, 0, 1509978240, 1215971899390074240 as its first outputs. */
static void test_reference_sequence(void **state)
{
    (void)state;
    cbq_rng rng = {{1, 2, 3, 4}};
    assert_int_equal(cbq_rng_u64(&rng), 11520ULL);
    assert_int_equal(cbq_rng_u64(&rng), 0ULL);
    assert_int_equal(cbq_rng_u64(&rng), 1509978240ULL);
    assert_int_equal(cbq_rng_u64(&rng), 1215971899390074240ULL);
}

static void test_same_seed_same_stream(void **state)
{
    (void)state;
    cbq_rng a, b, c;
    cbq_rng_stream(&a, 42, 7);
    cbq_rng_stream(&b, 42, 7);
    cbq_rng_stream(&c, 42, 8);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = cbq_rng_u64(&a);
        assert_int_equal(x, cbq_rng_u64(&b));
        differ |= x != cbq_rng_u64(&c);
    }
    assert_true(differ);
}

static void test_normal_moments(void **state)
{
    (void)state;
    cbq_rng rng;
    cbq_rng_seed(&rng, 3);
    const int n = 200000;
    double sum = 0, sum2 = 0;
    for (int i = 0; i < n; i++) {
        double x = cbq_rng_normal(&rng);
        sum += x;
        sum2 += x * x;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    assert_true(fabs(mean) < 0.01);     /* 4.5 standard errors */
    assert_true(fabs(var - 1.0) < 0.015);
}

static void test_below_is_unbiased_and_bounded(void **state)
{
    (void)state;
    cbq_rng rng;
    cbq_rng_seed(&rng, 5);
    int counts[6] = {0};
    for (int i = 0; i < 60000; i++) {
        uint64_t v = cbq_rng_below(&rng, 6);
        assert_true(v < 6);
        counts[v]++;
    }
    for (int v = 0; v < 6; v++)
        assert_true(counts[v] > 9600 && counts[v] < 10400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_sequence),
        cmocka_unit_test(test_same_seed_same_stream),
        cmocka_unit_test(test_normal_moments),
        cmocka_unit_test(test_below_is_unbiased_and_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
