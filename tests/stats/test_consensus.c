/* test_consensus.c - the consensus table (ratings.h) of ratings built in
 * memory, worked by hand; ratings_oracle.py checks consensus.csv against
 * NumPy on simulated ratings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <cmocka.h>

#include "cbctiq/ratings.h"

/* Weights 1 2 1. Volume "a": scores 2 4 (third rater absent), mean
 * (2 + 8) / 3 = 10/3; V1 = 3, V2 = 5, sum w (s - mean)^2 = 16/9 + 8/9, so
 * sd = sqrt((24/9) / (3 - 5/3)) = sqrt(2). Volume "b": nobody rated it. */
static void test_consensus_table(void **state)
{
    (void)state;
    char *volumes[2] = {"a", "b"}, *raters[3] = {"r1", "r2", "r3"}, *cats[1] = {"overall"};
    double weight[3] = {1, 2, 1};
    double score[2 * 3] = {2, 4, NAN, NAN, NAN, NAN}; /* [category][volume][rater] */
    const cbq_ratings r = {.n_volumes = 2, .n_raters = 3, .n_categories = 1, .volumes = volumes,
                           .raters = raters, .categories = cats, .weight = weight, .score = score};
    cbq_consensus *table = NULL;
    cbq_error err = {0};
    assert_int_equal(cbq_consensus_table(&r, &table, &err), CBQ_OK);
    assert_int_equal(table[0].n_raters, 2);
    assert_float_equal(table[0].mean, 10.0 / 3.0, 1e-12);
    assert_float_equal(table[0].sd, sqrt(2.0), 1e-12);
    assert_int_equal(table[1].n_raters, 0);
    assert_true(isnan(table[1].mean));
    assert_true(isnan(table[1].sd));
    free(table);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consensus_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
