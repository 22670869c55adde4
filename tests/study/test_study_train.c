/* test_study_train.c - the label permutation behind `cbctiq train
 * --permute-labels` (cbq_study_permute_labels): a bijection within each
 * split that leaves other volumes alone, reproducible for a seed and
 * different for another, moving every category of a volume together. The
 * training loop gives each slice its volume's (permuted) target row as is,
 * so these rows are what the slices train on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/study.h"

enum { N = 23, K = 5 };

/* Splits as the trainer passes them: 1 train, 2 val, -1 unused (test or
 * incomplete consensus). */
static const int GROUP[N] = {1, 1, 2, 1, -1, 2, 1, 1, -1, 2, 1, 1, 1, 2, -1, 1, 1, 2, 1, 1, -1, 1, 1};

static void permute(uint64_t seed, double *target, size_t *from)
{
    cbq_error err = {0};
    assert_int_equal(cbq_study_permute_labels(seed, GROUP, N, K, target, from, &err), CBQ_OK);
}

static void test_bijection_within_each_split(void **state)
{
    (void)state;
    size_t from[N];
    permute(7, NULL, from);
    int hit[N] = {0};
    for (size_t v = 0; v < N; v++) {
        assert_true(from[v] < N);
        assert_int_equal(GROUP[from[v]], GROUP[v]); /* labels stay in their split */
        if (GROUP[v] < 0)
            assert_int_equal(from[v], v);
        hit[from[v]]++;
    }
    for (size_t v = 0; v < N; v++)
        assert_int_equal(hit[v], 1); /* each volume's labels used exactly once */
}

static void test_seeded(void **state)
{
    (void)state;
    size_t a[N], b[N], c[N];
    permute(1, NULL, a);
    permute(1, NULL, b);
    permute(2, NULL, c);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    size_t moved = 0;
    for (size_t v = 0; v < N; v++)
        moved += a[v] != v;
    assert_true(moved > 0);
}

static void test_rows_move_together(void **state)
{
    (void)state;
    double target[N * K], orig[N * K];
    for (size_t i = 0; i < N * K; i++)
        orig[i] = target[i] = (double)i + 0.25;
    size_t from[N], again[N];
    permute(3, target, from);
    permute(3, NULL, again);
    assert_memory_equal(from, again, sizeof from); /* targets do not change the draw */
    for (size_t v = 0; v < N; v++)
        for (size_t k = 0; k < K; k++)
            assert_true(target[v * K + k] == orig[from[v] * K + k]);
}

static void test_empty_single_and_odd_groups(void **state)
{
    (void)state;
    cbq_error err = {0};
    const int one[1] = {1};
    size_t from[1] = {99};
    assert_int_equal(cbq_study_permute_labels(1, one, 0, K, NULL, from, &err), CBQ_OK);
    assert_int_equal(cbq_study_permute_labels(1, one, 1, K, NULL, from, &err), CBQ_OK);
    assert_int_equal(from[0], 0);
    /* any group values, visited once each */
    const int far[6] = {1000000, 5, 1000000, 5, 1000000, -7};
    size_t f6[6];
    assert_int_equal(cbq_study_permute_labels(1, far, 6, 0, NULL, f6, &err), CBQ_OK);
    for (size_t v = 0; v < 6; v++)
        assert_int_equal(far[f6[v]], far[v]);
    assert_int_equal(f6[5], 5);
    assert_int_equal((f6[1] == 1) + (f6[1] == 3), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bijection_within_each_split),
        cmocka_unit_test(test_seeded),
        cmocka_unit_test(test_rows_move_together),
        cmocka_unit_test(test_empty_single_and_odd_groups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
