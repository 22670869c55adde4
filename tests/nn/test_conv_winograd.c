/* test_conv_winograd.c - the Winograd F(4x4, 3x3) and F(2x2, 3x3)
 * convolutions (forward and input gradient) against the naive double-accumulating loops
 * (conv2d_forward_ref / conv2d_backward_ref) on odd plane sizes, paddings
 * 0..2, with and without bias, 1 to 512 channels; the same bits for 1, 2 and
 * 3 threads; conv2d_forward / conv2d_backward hand eligible layers to it.
 *
 * Error bound: the worst |winograd - ref| over a case, relative to the
 * case's largest |ref|, must stay below WINO_RTOL. Measured (inputs and
 * weights uniform in [-1, 1], printed by the test): 1e-7 for one channel,
 * growing with the channels summed: 7e-6 at 64, 1.1e-5 (forward) and
 * 1.4e-5 (input gradient) at 256. F(4x4, 3x3) in float is that much less
 * exact than the direct sum (~1e-7): its transforms scale terms by up to 8
 * before they cancel. F(2x2, 3x3) (output planes up to 4x4) only adds and
 * halves: 6e-7 (forward) and 2e-6 (input gradient) at 256 and 512 channels.
 * A wrong coefficient or a misplaced tile gives errors of order 1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/gemm.h"
#include "cbctiq/rng.h"
#include "nn/layer.h"

#define WINO_RTOL 3e-5

typedef struct { size_t cin, cout, h, w; int pad, bias; size_t n; } wino_case;

static const wino_case cases[] = {
    {1, 1, 1, 1, 1, 0, 2},    {3, 5, 1, 1, 2, 1, 3},    {2, 3, 2, 3, 1, 1, 2},
    {4, 1, 2, 3, 2, 0, 1},    {1, 7, 5, 7, 0, 1, 2},    {5, 4, 5, 7, 1, 0, 3},
    {6, 2, 5, 7, 2, 1, 1},    {7, 9, 13, 17, 0, 0, 2},  {16, 8, 13, 17, 1, 1, 3},
    {9, 17, 13, 17, 2, 1, 2}, {64, 64, 13, 17, 1, 1, 2}, {33, 64, 7, 7, 1, 0, 5},
    {64, 32, 4, 4, 1, 1, 9},  {24, 40, 56, 56, 1, 1, 2}, {64, 64, 56, 56, 1, 0, 1},
    {64, 64, 16, 16, 1, 0, 2}, {128, 128, 8, 8, 1, 0, 2}, {256, 256, 4, 4, 1, 0, 2},
    {512, 512, 2, 2, 1, 0, 2},
    /* F(2x2, 3x3): output planes up to 4x4, paddings 0-2, several blocks */
    {24, 16, 6, 6, 0, 1, 3},  {5, 6, 6, 5, 0, 0, 2},    {8, 8, 2, 2, 2, 1, 2},
    {17, 19, 3, 4, 1, 0, 3},  {32, 32, 4, 4, 1, 1, 40}, {16, 16, 4, 4, 1, 0, 200},
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

static cbq_conv2d_cfg case_cfg(const wino_case *c)
{
    return (cbq_conv2d_cfg){.in_channels = (int)c->cin, .out_channels = (int)c->cout,
                            .kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1,
                            .pad_h = c->pad, .pad_w = c->pad, .bias = c->bias};
}

static float *random_floats(size_t count, cbq_rng *rng)
{
    float *v = malloc((count ? count : 1) * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < count; i++)
        v[i] = (float)(2.0 * cbq_rng_uniform(rng) - 1.0);
    return v;
}

/* max |got - ref| / max |ref| */
static double relative_error(const float *got, const float *ref, size_t count)
{
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < count; i++) {
        worst = fmax(worst, fabs((double)got[i] - ref[i]));
        scale = fmax(scale, fabs((double)ref[i]));
    }
    return scale > 0.0 ? worst / scale : worst;
}

typedef struct {
    cbq_conv2d_cfg cfg;
    size_t n, oh, ow, in_count, out_count;
    float *in, *weight, *bias, *dout;
} case_data;

static void case_data_init(case_data *d, const wino_case *c, cbq_rng *rng)
{
    d->cfg = case_cfg(c);
    d->n = c->n;
    d->oh = conv2d_out_size(c->h, 3, 1, c->pad);
    d->ow = conv2d_out_size(c->w, 3, 1, c->pad);
    d->in_count = c->n * c->cin * c->h * c->w;
    d->out_count = c->n * c->cout * d->oh * d->ow;
    d->in = random_floats(d->in_count, rng);
    d->weight = random_floats(c->cout * c->cin * 9, rng);
    d->bias = c->bias ? random_floats(c->cout, rng) : NULL;
    d->dout = random_floats(d->out_count, rng);
}

static void case_data_free(case_data *d)
{
    free(d->in);
    free(d->weight);
    free(d->bias);
    free(d->dout);
}

static float *workspace_for(const cbq_conv2d_cfg *cfg, size_t h, size_t w, int threads)
{
    size_t floats = (size_t)threads * conv2d_winograd_workspace_floats(cfg, h, w);
    assert_true(floats > 0);
    float *ws = calloc(floats, sizeof *ws);
    assert_non_null(ws);
    return ws;
}

static void forward_threads(float *out, const case_data *d, const wino_case *c, int threads)
{
    float *ws = workspace_for(&d->cfg, c->h, c->w, threads);
    conv2d_winograd_forward(out, d->in, d->weight, d->bias, &d->cfg, d->n, c->h, c->w, ws, threads);
    free(ws);
}

static void backward_threads(float *din, const case_data *d, const wino_case *c, int threads)
{
    float *ws = workspace_for(&d->cfg, c->h, c->w, threads);
    conv2d_winograd_backward_data(din, d->dout, d->weight, &d->cfg, d->n, c->h, c->w, ws, threads);
    free(ws);
}

static void test_forward_matches_reference(void **state)
{
    (void)state;
    cbq_threads_init(3);
    cbq_rng rng;
    cbq_rng_stream(&rng, 14, 0);
    double worst = 0.0;
    for (size_t i = 0; i < N_CASES; i++) {
        const wino_case *c = &cases[i];
        case_data d;
        case_data_init(&d, c, &rng);
        float *ref = malloc(d.out_count * sizeof *ref);
        float *got[3];
        conv2d_forward_ref(ref, d.in, d.weight, d.bias, &d.cfg, d.n, c->h, c->w);
        for (int t = 0; t < 3; t++) {
            got[t] = malloc(d.out_count * sizeof *got[t]);
            forward_threads(got[t], &d, c, t + 1);
        }
        const double err = relative_error(got[0], ref, d.out_count);
        printf("forward  F(%zu) C %2zu K %2zu %2zux%-2zu pad %d bias %d n %3zu: rel err %.2e\n",
               conv2d_winograd_tile(&d.cfg, c->h, c->w), c->cin, c->cout, c->h, c->w, c->pad,
               c->bias, c->n, err);
        worst = fmax(worst, err);
        assert_true(err <= WINO_RTOL);
        assert_memory_equal(got[0], got[1], d.out_count * sizeof(float));
        assert_memory_equal(got[0], got[2], d.out_count * sizeof(float));
        for (int t = 0; t < 3; t++)
            free(got[t]);
        free(ref);
        case_data_free(&d);
    }
    printf("forward worst relative error %.2e (bound %.0e)\n", worst, WINO_RTOL);
}

static void test_input_gradient_matches_reference(void **state)
{
    (void)state;
    cbq_threads_init(3);
    cbq_rng rng;
    cbq_rng_stream(&rng, 14, 1);
    double worst = 0.0;
    for (size_t i = 0; i < N_CASES; i++) {
        const wino_case *c = &cases[i];
        case_data d;
        case_data_init(&d, c, &rng);
        float *ref = malloc(d.in_count * sizeof *ref);
        float *got[3];
        conv2d_backward_ref(ref, NULL, NULL, d.dout, d.in, d.weight, &d.cfg, d.n, c->h, c->w);
        for (int t = 0; t < 3; t++) {
            got[t] = malloc(d.in_count * sizeof *got[t]);
            backward_threads(got[t], &d, c, t + 1);
        }
        const double err = relative_error(got[0], ref, d.in_count);
        printf("backward F(%zu) C %2zu K %2zu %2zux%-2zu pad %d n %3zu: rel err %.2e\n",
               conv2d_winograd_tile(&d.cfg, c->h, c->w), c->cin, c->cout, c->h, c->w, c->pad,
               c->n, err);
        worst = fmax(worst, err);
        assert_true(err <= WINO_RTOL);
        assert_memory_equal(got[0], got[1], d.in_count * sizeof(float));
        assert_memory_equal(got[0], got[2], d.in_count * sizeof(float));
        for (int t = 0; t < 3; t++)
            free(got[t]);
        free(ref);
        case_data_free(&d);
    }
    printf("input gradient worst relative error %.2e (bound %.0e)\n", worst, WINO_RTOL);
}

/* The cases run both tile sizes, each with paddings 0, 1 and 2. */
static void test_cases_cover_both_tiles(void **state)
{
    (void)state;
    unsigned pads_seen[5] = {0};
    for (size_t i = 0; i < N_CASES; i++) {
        const cbq_conv2d_cfg cfg = case_cfg(&cases[i]);
        const size_t tile = conv2d_winograd_tile(&cfg, cases[i].h, cases[i].w);
        assert_true(tile == 2 || tile == 4);
        pads_seen[tile] |= 1u << cases[i].pad;
    }
    assert_int_equal(pads_seen[2], 7);
    assert_int_equal(pads_seen[4], 7);
    /* output planes up to 4x4 take F(2x2), larger ones F(4x4) */
    const cbq_conv2d_cfg c = case_cfg(&(wino_case){64, 64, 4, 4, 1, 0, 1});
    assert_int_equal(conv2d_winograd_tile(&c, 4, 4), 2);
    assert_int_equal(conv2d_winograd_tile(&c, 4, 5), 4);
    assert_int_equal(conv2d_winograd_tile(&c, 7, 7), 4);
}

/* Shapes the transforms cannot take are never eligible. */
static void test_ineligible_shapes(void **state)
{
    (void)state;
    cbq_conv2d_cfg c = {.in_channels = 64, .out_channels = 64, .kernel_h = 3, .kernel_w = 3,
                        .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1};
    assert_true(conv2d_winograd_eligible(&c, 56, 56));
    cbq_conv2d_cfg bad = c;
    bad.stride_h = bad.stride_w = 2;
    assert_false(conv2d_winograd_eligible(&bad, 56, 56));
    bad = c;
    bad.kernel_h = bad.kernel_w = 5;
    assert_false(conv2d_winograd_eligible(&bad, 56, 56));
    bad = c;
    bad.dilation_h = bad.dilation_w = 2;
    assert_false(conv2d_winograd_eligible(&bad, 56, 56));
    bad = c;
    bad.groups = 2;
    assert_false(conv2d_winograd_eligible(&bad, 56, 56));
    bad = c;
    bad.pad_h = bad.pad_w = 3;
    assert_false(conv2d_winograd_eligible(&bad, 56, 56));
    bad = c;
    bad.pad_h = bad.pad_w = 0;
    assert_false(conv2d_winograd_eligible(&bad, 1, 1)); /* no output pixel */
    assert_int_equal(conv2d_winograd_workspace_floats(&bad, 1, 1), 0);
    /* where it does not pay: one input channel, planes under 4x4 (and under
     * 5x5 unless F(2x2) takes them); CBQ_CONV_WINOGRAD still takes them,
     * CBQ_CONV_GEMM nothing */
    assert_true(conv2d_winograd_eligible(&c, 7, 7));
    assert_true(conv2d_winograd_eligible(&c, 4, 4));
    assert_false(conv2d_winograd_eligible(&c, 3, 3));
    assert_false(conv2d_winograd_eligible(&c, 2, 2));
    assert_false(conv2d_winograd_eligible(&c, 4, 5)); /* F(4x4), 20 pixels */
    bad = c;
    bad.in_channels = 1;
    assert_false(conv2d_winograd_eligible(&bad, 56, 56));
    bad.algorithm = CBQ_CONV_WINOGRAD;
    assert_true(conv2d_winograd_eligible(&bad, 56, 56));
    bad = c;
    bad.algorithm = CBQ_CONV_GEMM;
    assert_false(conv2d_winograd_eligible(&bad, 56, 56));
}

/* in [C, h, w] unfolded to col [C*9, h*w] (padding 1, stride 1), zeros
 * outside the image: the plain im2col the GEMM algorithm computes. */
static void unfold_3x3(float *col, const float *in, size_t c, size_t h, size_t w)
{
    for (size_t ch = 0; ch < c; ch++)
        for (size_t k = 0; k < 9; k++)
            for (size_t y = 0; y < h; y++)
                for (size_t x = 0; x < w; x++) {
                    long iy = (long)y + (long)(k / 3) - 1, ix = (long)x + (long)(k % 3) - 1;
                    int inside = iy >= 0 && ix >= 0 && iy < (long)h && ix < (long)w;
                    col[((ch * 9 + k) * h + y) * w + x] =
                        inside ? in[(ch * h + (size_t)iy) * w + (size_t)ix] : 0.0f;
                }
}

/* CBQ_CONV_GEMM: an eligible layer computed by im2col + GEMM, the same
 * bits as one GEMM per sample over its unfolded input (bias first, then
 * accumulated), as before Winograd; CBQ_CONV_AUTO gives other bits. */
static void test_gemm_algorithm_keeps_im2col_bits(void **state)
{
    (void)state;
    cbq_threads_init(2);
    cbq_rng rng;
    cbq_rng_stream(&rng, 14, 2);
    const wino_case c = {32, 24, 20, 20, 1, 1, 3};
    case_data d;
    case_data_init(&d, &c, &rng);
    assert_true(conv2d_winograd_eligible(&d.cfg, c.h, c.w));
    const size_t plane = c.h * c.w, k = c.cin * 9;
    float *expect = malloc(d.out_count * sizeof *expect), *col = malloc(k * plane * sizeof *col);
    for (size_t s = 0; s < c.n; s++) {
        float *y = expect + s * c.cout * plane;
        unfold_3x3(col, d.in + s * c.cin * plane, c.cin, c.h, c.w);
        for (size_t o = 0; o < c.cout; o++)
            for (size_t i = 0; i < plane; i++)
                y[o * plane + i] = d.bias[o];
        cbq_sgemm(0, 0, c.cout, plane, k, 1.0f, d.weight, k, col, plane, 1.0f, y, plane);
    }
    float *got = malloc(d.out_count * sizeof *got);
    float *ws = calloc(2 * conv2d_workspace_floats(&d.cfg, c.h, c.w), sizeof *ws);
    d.cfg.algorithm = CBQ_CONV_GEMM;
    assert_false(conv2d_winograd_eligible(&d.cfg, c.h, c.w));
    conv2d_forward(got, d.in, d.weight, d.bias, &d.cfg, c.n, c.h, c.w, ws, 2);
    assert_memory_equal(got, expect, d.out_count * sizeof *got);
    d.cfg.algorithm = CBQ_CONV_AUTO;
    conv2d_forward(got, d.in, d.weight, d.bias, &d.cfg, c.n, c.h, c.w, ws, 2);
    assert_true(memcmp(got, expect, d.out_count * sizeof *got) != 0);
    assert_true(relative_error(got, expect, d.out_count) <= WINO_RTOL);
    free(ws);
    free(got);
    free(col);
    free(expect);
    case_data_free(&d);
}

/* conv2d_workspace_floats leaves room for Winograd wherever it can run,
 * whatever the algorithm now (a net may be switched later): here a
 * one-channel layer AUTO leaves to im2col, forced to Winograd, whose
 * blocks take their largest size. */
static void test_workspace_fits_every_algorithm(void **state)
{
    (void)state;
    cbq_threads_init(2);
    cbq_rng rng;
    cbq_rng_stream(&rng, 14, 3);
    const wino_case c = {1, 16, 64, 64, 1, 1, 8};
    case_data d;
    case_data_init(&d, &c, &rng);
    d.cfg.algorithm = CBQ_CONV_WINOGRAD;
    float *ws = calloc(2 * conv2d_workspace_floats(&d.cfg, c.h, c.w), sizeof *ws);
    float *got = malloc(d.out_count * sizeof *got), *ref = malloc(d.out_count * sizeof *ref);
    conv2d_forward(got, d.in, d.weight, d.bias, &d.cfg, c.n, c.h, c.w, ws, 2);
    conv2d_forward_ref(ref, d.in, d.weight, d.bias, &d.cfg, c.n, c.h, c.w);
    assert_true(relative_error(got, ref, d.out_count) <= WINO_RTOL);
    free(ref);
    free(got);
    free(ws);
    case_data_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_matches_reference),
        cmocka_unit_test(test_input_gradient_matches_reference),
        cmocka_unit_test(test_cases_cover_both_tiles),
        cmocka_unit_test(test_ineligible_shapes),
        cmocka_unit_test(test_gemm_algorithm_keeps_im2col_bits),
        cmocka_unit_test(test_workspace_fits_every_algorithm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
