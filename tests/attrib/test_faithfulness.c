/* test_faithfulness.c - deletion/insertion curves on a model whose map is
 * known: a linear model y = sum_p w_p x_p, for which replacing pixel p by
 * the baseline b_p changes y by exactly -w_p (x_p - b_p). With that map,
 * deletion in map order must fall at least as fast as any other order (and
 * so below the random order at every step), insertion rise at least as
 * fast, and every step's score equals the sum of the top-m contributions.
 * Also: batching changes nothing, a zero map and a flat score give empty
 * results, and the localisation of pointing.h on small hand-made maps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/faithfulness.h"
#include "cbctiq/pointing.h"
#include "cbctiq/rng.h"

enum { N = 3, H = 16, W = 12, HW = H * W };

typedef struct {
    float w[HW];
    int flat;
} linear_model;

/* Two outputs: y and -y (so output 1's map is another order). */
static int linear_score(void *ctx, const float *x, size_t n, float *scores, cbq_error *err)
{
    (void)err;
    const linear_model *m = ctx;
    for (size_t i = 0; i < n; i++) {
        double y = 0.0;
        for (size_t p = 0; p < HW; p++)
            y += (double)m->w[p] * x[i * HW + p];
        scores[2 * i] = m->flat ? 1.0f : (float)y;
        scores[2 * i + 1] = m->flat ? 1.0f : (float)-y;
    }
    return CBQ_OK;
}

typedef struct {
    linear_model model;
    float x[N * HW], base[N * HW], map[N * HW];
    cbq_faith_options opt;
} fixture;

static void make_fixture(fixture *f)
{
    memset(f, 0, sizeof *f);
    cbq_rng rng;
    cbq_rng_seed(&rng, 42);
    for (size_t i = 0; i < N * HW; i++)
        f->x[i] = (float)cbq_rng_uniform(&rng);
    cbq_faith_options_default(&f->opt, H, W);
    f->opt.seed = 7;
    cbq_error err = {0};
    for (size_t s = 0; s < N; s++)
        assert_int_equal(cbq_faith_baseline(f->x + s * HW, H, W, &f->opt, s, f->base + s * HW, &err),
                         CBQ_OK);
    /* weights that mostly follow slice 0's detail, so that the baseline
     * moves the score clearly (a well-scaled normalisation); the other
     * slices' contributions have either sign */
    for (size_t p = 0; p < HW; p++)
        f->model.w[p] = (f->x[p] - f->base[p]) + 0.1f * (float)cbq_rng_normal(&rng);
    /* the exact contribution of each pixel to y: the known map */
    for (size_t s = 0; s < N; s++)
        for (size_t p = 0; p < HW; p++)
            f->map[s * HW + p] = f->model.w[p] * (f->x[s * HW + p] - f->base[s * HW + p]);
}

static int desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void test_linear_model_deletion_falls_fastest_in_map_order(void **state)
{
    (void)state;
    static fixture f;
    make_fixture(&f);
    const float *maps[2] = {f.map, NULL};
    cbq_faith_curves cur[2];
    cbq_error err = {0};
    assert_int_equal(cbq_faith_curves_compute(linear_score, &f.model, 5, 2, f.x, N, H, W, maps,
                                              &f.opt, cur, &err), CBQ_OK);
    assert_true(cur[0].computed);
    assert_false(cur[1].computed); /* no map given */
    /* each step: the original score minus the m largest contributions per slice */
    float sorted[HW];
    for (size_t t = 0; t <= CBQ_CURVE_STEPS; t++) {
        size_t m = t * HW / CBQ_CURVE_STEPS;
        double want = 0.0;
        for (size_t s = 0; s < N; s++) {
            memcpy(sorted, f.map + s * HW, sizeof sorted);
            qsort(sorted, HW, sizeof *sorted, desc);
            double y = 0.0, removed = 0.0;
            for (size_t p = 0; p < HW; p++)
                y += (double)f.model.w[p] * f.x[s * HW + p];
            for (size_t p = 0; p < m; p++)
                removed += sorted[p];
            want += (y - removed) / N;
        }
        assert_true(fabs(cur[0].deletion[t] - want) <= 1e-4 * fmax(1.0, fabs(want)));
        /* no order removes more than the map's: random can only fall slower */
        assert_true(cur[0].deletion[t] <= cur[0].deletion_random[t] + 1e-4);
        assert_true(cur[0].insertion[t] >= cur[0].insertion_random[t] - 1e-4);
    }
    assert_true(cur[0].deletion_auc < cur[0].deletion_auc_random);
    assert_true(cur[0].insertion_auc > cur[0].insertion_auc_random);
}

static void test_batch_size_changes_nothing(void **state)
{
    (void)state;
    static fixture f;
    make_fixture(&f);
    const float *maps[2] = {f.map, f.map};
    cbq_faith_curves one[2], many[2];
    cbq_error err = {0};
    assert_int_equal(cbq_faith_curves_compute(linear_score, &f.model, 1, 2, f.x, N, H, W, maps,
                                              &f.opt, one, &err), CBQ_OK);
    assert_int_equal(cbq_faith_curves_compute(linear_score, &f.model, 64, 2, f.x, N, H, W, maps,
                                              &f.opt, many, &err), CBQ_OK);
    assert_memory_equal(one, many, sizeof one);
    /* output 1 is -y: the normalisation (score - baseline) / (original -
     * baseline) makes the curves of -y those of y */
    assert_true(fabs(many[1].deletion_auc - many[0].deletion_auc) < 1e-6);
    assert_true(fabs(many[1].insertion_auc_random - many[0].insertion_auc_random) < 1e-6);
    assert_true(many[1].deletion[0] == -many[0].deletion[0]);
}

/* The linear model on one channel of two-channel images. */
typedef struct {
    linear_model *model;
    size_t channel;
} channel_model;

static int channel_score(void *ctx, const float *x, size_t n, float *scores, cbq_error *err)
{
    const channel_model *cm = ctx;
    float plane[N * HW];
    for (size_t i = 0; i < n; i++) /* n <= N: the batch below */
        memcpy(plane + i * HW, x + (i * 2 + cm->channel) * HW, HW * sizeof *plane);
    return linear_score(cm->model, plane, n, scores, err);
}

/* Two channels per slice: a pixel goes in both at once, each channel from
 * its own baseline. A model reading channel 0 sees exactly the curves of the
 * single-channel slices (blur and ROAD: channel 0 keeps their noise); one
 * reading channel 1, which holds the same slices, too (blur). */
static void test_channels_perturb_together(void **state)
{
    (void)state;
    static fixture f;
    make_fixture(&f);
    static float two[N * 2 * HW];
    for (size_t s = 0; s < N; s++)
        for (size_t p = 0; p < HW; p++) {
            two[(s * 2 + 1) * HW + p] = f.x[s * HW + p];
            two[(s * 2) * HW + p] = f.x[s * HW + p];
        }
    const float *maps[2] = {f.map, f.map};
    cbq_error err = {0};
    for (int road = 0; road <= 1; road++) {
        cbq_faith_options o = f.opt;
        o.baseline = road ? CBQ_PERTURB_ROAD : CBQ_PERTURB_BLUR;
        for (size_t ch = 0; ch < (road ? 1u : 2u); ch++) {
            for (size_t s = 0; s < N; s++) /* the other channel: unlike the slice */
                for (size_t p = 0; p < HW; p++)
                    two[(s * 2 + 1 - ch) * HW + p] = 1.0f - f.x[s * HW + p];
            cbq_faith_curves one[2], both[2];
            o.channels = 1;
            assert_int_equal(cbq_faith_curves_compute(linear_score, &f.model, N, 2, f.x, N, H, W, maps,
                                                      &o, one, &err), CBQ_OK);
            channel_model cm = {&f.model, ch};
            o.channels = 2;
            assert_int_equal(cbq_faith_curves_compute(channel_score, &cm, N, 2, two, N, H, W, maps, &o,
                                                      both, &err), CBQ_OK);
            if (memcmp(one, both, sizeof one) != 0)
                fail_msg("%s, model on channel %zu: the curves differ from the single channel's",
                         road ? "road" : "blur", ch);
            for (size_t s = 0; s < N; s++) /* restore */
                for (size_t p = 0; p < HW; p++)
                    two[(s * 2 + 1 - ch) * HW + p] = f.x[s * HW + p];
        }
    }
}

static void test_zero_map_and_flat_score_are_empty(void **state)
{
    (void)state;
    static fixture f;
    make_fixture(&f);
    static float zero[N * HW];
    const float *maps[2] = {zero, f.map};
    cbq_faith_curves cur[2];
    cbq_error err = {0};
    f.model.flat = 1;
    assert_int_equal(cbq_faith_curves_compute(linear_score, &f.model, 8, 2, f.x, N, H, W, maps,
                                              &f.opt, cur, &err), CBQ_OK);
    assert_false(cur[0].computed);
    assert_true(cur[1].computed);
    assert_true(isnan(cur[1].deletion_auc) && isnan(cur[1].insertion_auc_random));
}

/* A 4 x 3 x 2 map with a mask over its first row of each slice. */
static void small_map(cbq_volume *v, uint8_t *mask, const float *values)
{
    double sp[3] = {1, 1, 1};
    cbq_error err = {0};
    assert_int_equal(cbq_volume_alloc(v, 4, 3, 2, sp, 0, &err), CBQ_OK);
    memcpy(v->data, values, 24 * sizeof *values);
    memset(mask, 0, 24);
    for (size_t k = 0; k < 2; k++)
        for (size_t i = 0; i < 4; i++)
            mask[k * 12 + i] = 1;
}

static void test_energy_and_hit_by_hand(void **state)
{
    (void)state;
    float values[24] = {0};
    values[1] = 3.0f;   /* inside */
    values[13] = 1.0f;  /* inside */
    values[20] = 4.0f;  /* outside: the maximum */
    cbq_volume v;
    uint8_t mask[24];
    small_map(&v, mask, values);
    cbq_pointing p = {0};
    cbq_pointing_energy(&v, mask, &p);
    assert_true(fabs(p.energy_in_structure - 0.5) < 1e-12);
    assert_true(p.pointing_hit == 0.0);
    assert_int_equal(p.empty, 0);
    memset(&p, 0, sizeof p);
    v.data[1] = 4.0f; /* a tie with the maximum, inside: a hit */
    cbq_pointing_energy(&v, mask, &p);
    assert_true(p.pointing_hit == 1.0);
    memset(&p, 0, sizeof p);
    cbq_pointing_energy(&v, NULL, &p);
    assert_true(isnan(p.energy_in_structure) && isnan(p.pointing_hit));
    assert_int_equal(p.empty, CBQ_EMPTY_NO_STRUCTURE);
    memset(&p, 0, sizeof p);
    v.data[20] = -20.0f; /* the map sums below zero */
    cbq_pointing_energy(&v, mask, &p);
    assert_true(isnan(p.energy_in_structure) && p.pointing_hit == 1.0);
    assert_int_equal(p.empty, CBQ_EMPTY_MAP_SUM);
    memset(&p, 0, sizeof p);
    memset(v.data, 0, 24 * sizeof *v.data);
    cbq_pointing_energy(&v, mask, &p);
    assert_int_equal(p.empty, CBQ_EMPTY_ZERO_MAP);
    char text[64];
    cbq_empty_reason_text(CBQ_EMPTY_NO_STRUCTURE | CBQ_EMPTY_ZERO_MAP, text, sizeof text);
    assert_string_equal(text, "no_structure;zero_map");
    cbq_volume_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_model_deletion_falls_fastest_in_map_order),
        cmocka_unit_test(test_batch_size_changes_nothing),
        cmocka_unit_test(test_channels_perturb_together),
        cmocka_unit_test(test_zero_map_and_flat_score_are_empty),
        cmocka_unit_test(test_energy_and_hit_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
