/* test_study_train.c - the label permutation behind `cbctiq train
 * --permute-labels` (cbq_study_permute_labels): a derangement within each
 * split (no volume keeps its own labels) that leaves other volumes alone,
 * reproducible for a seed and different for another, moving every category
 * of a volume together; a split of one volume is refused. The
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
    const int unused[1] = {-1};
    size_t from[1] = {99};
    assert_int_equal(cbq_study_permute_labels(1, unused, 0, K, NULL, from, &err), CBQ_OK);
    assert_int_equal(cbq_study_permute_labels(1, unused, 1, K, NULL, from, &err), CBQ_OK);
    assert_int_equal(from[0], 0);
    /* any group values, visited once each; a pair can only swap */
    const int far[6] = {1000000, 5, 1000000, 5, 1000000, -7};
    size_t f6[6];
    assert_int_equal(cbq_study_permute_labels(1, far, 6, 0, NULL, f6, &err), CBQ_OK);
    for (size_t v = 0; v < 6; v++)
        assert_int_equal(far[f6[v]], far[v]);
    assert_int_equal(f6[5], 5);
    assert_int_equal(f6[1], 3);
    assert_int_equal(f6[3], 1);
}

/* The case: 3 training volumes, seed 3, used to draw the identity,
 * so the "permuted" model trained on the true labels. */
static void test_three_volumes_seed_3_all_move(void **state)
{
    (void)state;
    cbq_error err = {0};
    const int train[3] = {1, 1, 1};
    size_t from[3];
    assert_int_equal(cbq_study_permute_labels(3, train, 3, 0, NULL, from, &err), CBQ_OK);
    for (size_t v = 0; v < 3; v++)
        assert_int_not_equal(from[v], v);
}

/* Every seed 1..200 and split size 2..6 gives a derangement, beside a
 * second split and unused volumes; all derangements of 3 (there are 2)
 * and of 4 (there are 9) turn up, so the draw is not restricted to a few. */
static void test_every_draw_is_a_derangement(void **state)
{
    (void)state;
    cbq_error err = {0};
    enum { MAXN = 6, EXTRA = 3 };
    for (size_t n = 2; n <= MAXN; n++) {
        int group[MAXN + EXTRA];
        for (size_t v = 0; v < n; v++)
            group[v] = 1;
        group[n] = 2; /* a val split of two, and an unused volume */
        group[n + 1] = -1;
        group[n + 2] = 2;
        size_t seen[4][4 * 4 * 4 * 4] = {{0}};
        for (uint64_t seed = 1; seed <= 200; seed++) {
            size_t from[MAXN + EXTRA];
            assert_int_equal(cbq_study_permute_labels(seed, group, n + EXTRA, 0, NULL, from, &err),
                             CBQ_OK);
            int hit[MAXN + EXTRA] = {0};
            for (size_t v = 0; v < n + EXTRA; v++) {
                assert_int_equal(group[from[v]], group[v]);
                if (group[v] >= 0)
                    assert_int_not_equal(from[v], v);
                hit[from[v]]++;
            }
            for (size_t v = 0; v < n + EXTRA; v++)
                assert_int_equal(hit[v], 1);
            if (n == 3 || n == 4) {
                size_t code = 0;
                for (size_t v = 0; v < n; v++)
                    code = code * 4 + from[v];
                seen[n - 1][code] = 1;
            }
        }
        size_t distinct = 0;
        for (size_t c = 0; n <= 4 && c < sizeof seen[0] / sizeof seen[0][0]; c++)
            distinct += seen[n - 1][c];
        if (n == 3)
            assert_int_equal(distinct, 2);
        if (n == 4)
            assert_int_equal(distinct, 9);
    }
}

/* A split with a single volume has no derangement: refused, not passed
 * through as a volume that keeps its labels. */
static void test_single_volume_split_refused(void **state)
{
    (void)state;
    cbq_error err = {0};
    const int one[1] = {1}, lone_val[4] = {1, 1, 2, -1};
    size_t from[4];
    assert_int_equal(cbq_study_permute_labels(1, one, 1, K, NULL, from, &err), CBQ_ERR_UNDEFINED);
    assert_non_null(strstr(err.msg, "single volume"));
    assert_int_equal(cbq_study_permute_labels(1, lone_val, 4, K, NULL, from, &err),
                     CBQ_ERR_UNDEFINED);
    assert_non_null(strstr(err.msg, "group 2"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bijection_within_each_split),
        cmocka_unit_test(test_seeded),
        cmocka_unit_test(test_rows_move_together),
        cmocka_unit_test(test_empty_single_and_odd_groups),
        cmocka_unit_test(test_three_volumes_seed_3_all_move),
        cmocka_unit_test(test_every_draw_is_a_derangement),
        cmocka_unit_test(test_single_volume_split_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
