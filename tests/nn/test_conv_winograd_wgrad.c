/* test_conv_winograd_wgrad.c - the Winograd F(4x4, 3x3) weight gradient
 * (conv2d_winograd_backward_weight) against plain loops in double, on odd
 * plane sizes, paddings 0-2, 1 to 64 channels and batches 1 to 5; its +=
 * semantics, dbias NULL or not, and bit-identical results for 1, 2 and 3
 * threads. Also: which shapes the file accepts.
 *
 * Error measure: max |dW - ref| / max |ref| over the whole weight gradient
 * (the winograd transforms spread each point's rounding over the kernel, so
 * an element-wise relative error says little for elements near zero). The
 * im2col weight gradient's error is printed beside it for scale.
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

/* Measured worst case over the shapes below: 1.3e-6 (the im2col path: 3e-7). */
#define WGRAD_REL_BOUND 5e-5

static float *randn(cbq_rng *rng, size_t count, double scale)
{
    float *p = malloc((count ? count : 1) * sizeof *p);
    for (size_t i = 0; i < count; i++)
        p[i] = (float)(cbq_rng_normal(rng) * scale);
    return p;
}

/* dW [Cout, Cin, 3, 3] and db [Cout] of a 3x3 stride-1 convolution, in
 * double: dW[o][c][i][j] = sum over samples and outputs (y, x) of
 * dout[o][y][x] * in[c][y - pad + i][x - pad + j] (zero outside). */
static void wgrad_double(double *dw, double *db, const float *dout, const float *in,
                         const cbq_conv2d_cfg *c, size_t n, size_t h, size_t w)
{
    const size_t cin = (size_t)c->in_channels, cout = (size_t)c->out_channels;
    const long ph = c->pad_h, pw = c->pad_w;
    const size_t oh = h + 2 * (size_t)ph - 2, ow = w + 2 * (size_t)pw - 2;
    memset(dw, 0, cout * cin * 9 * sizeof *dw);
    memset(db, 0, cout * sizeof *db);
    for (size_t s = 0; s < n; s++)
        for (size_t o = 0; o < cout; o++) {
            const float *g = dout + (s * cout + o) * oh * ow;
            for (size_t i = 0; i < oh * ow; i++)
                db[o] += g[i];
            for (size_t ci = 0; ci < cin; ci++) {
                const float *x = in + (s * cin + ci) * h * w;
                for (int ki = 0; ki < 3; ki++)
                    for (int kj = 0; kj < 3; kj++) {
                        double acc = 0.0;
                        for (size_t y = 0; y < oh; y++) {
                            const long iy = (long)y - ph + ki;
                            if (iy < 0 || iy >= (long)h)
                                continue;
                            for (size_t xx = 0; xx < ow; xx++) {
                                const long ix = (long)xx - pw + kj;
                                if (ix >= 0 && ix < (long)w)
                                    acc += (double)g[y * ow + xx] * x[iy * (long)w + ix];
                            }
                        }
                        dw[((o * cin + ci) * 3 + (size_t)ki) * 3 + (size_t)kj] += acc;
                    }
            }
        }
}

/* max |got - (start + ref)| / max |ref| */
static double rel_err(const float *got, const float *start, const double *ref, size_t count)
{
    double md = 0.0, mr = 1e-30;
    for (size_t i = 0; i < count; i++) {
        md = fmax(md, fabs((double)got[i] - ((double)start[i] + ref[i])));
        mr = fmax(mr, fabs(ref[i]));
    }
    return md / mr;
}

typedef struct { size_t cin, cout, h, w, n; int pad; } wgrad_case;

/* A square convolution with a bias (designated: the struct may grow). */
static cbq_conv2d_cfg conv_cfg(int cin, int cout, int k, int stride, int pad, int dilation,
                               int groups)
{
    return (cbq_conv2d_cfg){.in_channels = cin, .out_channels = cout, .kernel_h = k,
                            .kernel_w = k, .stride_h = stride, .stride_w = stride, .pad_h = pad,
                            .pad_w = pad, .bias = 1, .dilation_h = dilation,
                            .dilation_w = dilation, .groups = groups};
}

static double worst_seen, worst_im2col;

/* One shape: dW and db (starting non-zero) against the double loops for
 * threads 1, 2, 3 (bit-identical), and with dbias NULL. */
static void check_case(const wgrad_case *k)
{
    const cbq_conv2d_cfg c = conv_cfg((int)k->cin, (int)k->cout, 3, 1, k->pad, 1, 1);
    assert_true(conv2d_winograd_wgrad_workspace_floats(&c, k->h, k->w) > 0);
    const size_t oh = k->h + 2 * (size_t)k->pad - 2, ow = k->w + 2 * (size_t)k->pad - 2;
    const size_t nin = k->n * k->cin * k->h * k->w, nout = k->n * k->cout * oh * ow;
    const size_t nw = k->cout * k->cin * 9;
    cbq_rng rng;
    cbq_rng_seed(&rng, 1000 + k->cin * 7 + k->cout * 13 + k->h + k->n);
    float *in = randn(&rng, nin, 1.0), *dout = randn(&rng, nout, 1.0);
    float *w0 = randn(&rng, nw, 1.0), *b0 = randn(&rng, k->cout, 1.0);
    double *ref = malloc(nw * sizeof *ref), *refb = malloc(k->cout * sizeof *refb);
    wgrad_double(ref, refb, dout, in, &c, k->n, k->h, k->w);
    float *dw[4], *db[4];
    for (int t = 1; t <= 3; t++) {
        float *ws = malloc((size_t)t * conv2d_winograd_wgrad_workspace_floats(&c, k->h, k->w) *
                           sizeof *ws);
        dw[t] = malloc(nw * sizeof(float));
        db[t] = malloc(k->cout * sizeof(float));
        memcpy(dw[t], w0, nw * sizeof(float));
        memcpy(db[t], b0, k->cout * sizeof(float));
        conv2d_winograd_backward_weight(dw[t], db[t], dout, in, &c, k->n, k->h, k->w, ws, t);
        free(ws);
    }
    const double err = rel_err(dw[1], w0, ref, nw), errb = rel_err(db[1], b0, refb, k->cout);
    if (err > WGRAD_REL_BOUND || errb > 1e-5)
        fail_msg("%zux%zu pad %d, %zu->%zu, batch %zu: dW error %.3g (bound %.1g), db %.3g",
                 k->h, k->w, k->pad, k->cin, k->cout, k->n, err, WGRAD_REL_BOUND, errb);
    worst_seen = fmax(worst_seen, err);
    for (int t = 2; t <= 3; t++) {
        assert_memory_equal(dw[1], dw[t], nw * sizeof(float));
        assert_memory_equal(db[1], db[t], k->cout * sizeof(float));
    }
    /* dbias NULL: the same dW, db untouched */
    float *ws = malloc(2 * conv2d_winograd_wgrad_workspace_floats(&c, k->h, k->w) * sizeof *ws);
    memcpy(dw[2], w0, nw * sizeof(float));
    conv2d_winograd_backward_weight(dw[2], NULL, dout, in, &c, k->n, k->h, k->w, ws, 2);
    assert_memory_equal(dw[1], dw[2], nw * sizeof(float));
    /* dweight NULL: db alone */
    memcpy(db[2], b0, k->cout * sizeof(float));
    conv2d_winograd_backward_weight(NULL, db[2], dout, in, &c, k->n, k->h, k->w, ws, 2);
    assert_memory_equal(db[1], db[2], k->cout * sizeof(float));
    free(ws);
    /* the im2col weight gradient's error, for scale */
    float *cws = calloc(conv2d_workspace_floats(&c, k->h, k->w) + 1, sizeof *cws);
    float *priv = calloc(conv2d_dw_private_floats(&c), sizeof *priv);
    memcpy(dw[3], w0, nw * sizeof(float));
    conv2d_backward(NULL, dw[3], NULL, dout, in, w0, &c, k->n, k->h, k->w, cws, priv, 1);
    const double err_im2col = rel_err(dw[3], w0, ref, nw);
    worst_im2col = fmax(worst_im2col, err_im2col);
    print_message("%2zux%-2zu pad %d %2zu->%-2zu batch %zu: dW rel. error %.2e (im2col %.2e)\n",
                  k->h, k->w, k->pad, k->cin, k->cout, k->n, err, err_im2col);
    free(cws); free(priv);
    for (int t = 1; t <= 3; t++) {
        free(dw[t]);
        free(db[t]);
    }
    free(in); free(dout); free(w0); free(b0); free(ref); free(refb);
}

static void test_against_double(void **state)
{
    (void)state;
    static const wgrad_case cases[] = {
        {1, 1, 1, 1, 1, 1},     {3, 2, 1, 1, 4, 2},   {2, 5, 2, 3, 3, 1},   {4, 3, 2, 3, 2, 2},
        {1, 16, 5, 7, 5, 0},    {16, 1, 5, 7, 2, 1},  {7, 9, 5, 7, 3, 2},   {32, 32, 13, 17, 2, 1},
        {64, 64, 13, 17, 1, 0}, {17, 33, 13, 17, 3, 2}, {64, 48, 5, 7, 5, 1}, {16, 24, 56, 56, 2, 1},
        {3, 5, 56, 56, 1, 0},   {8, 8, 56, 56, 1, 2},   {64, 64, 56, 56, 2, 1},
        {24, 130, 6, 5, 3, 1}, /* one block, three chunks of output channels */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
    print_message("worst dW relative error: winograd %.2e, im2col %.2e\n", worst_seen,
                  worst_im2col);
}

/* Several blocks of tiles (352 tiles each for 40 + 40 channels): 5 samples
 * of 12 x 12 tiles make three blocks whose boundaries cut a sample and a
 * tile row, on 1, 2 and 3 threads. */
static void test_many_blocks(void **state)
{
    (void)state;
    const wgrad_case k = {40, 40, 45, 45, 5, 1};
    check_case(&k);
}

static void test_shapes_accepted(void **state)
{
    (void)state;
    const cbq_conv2d_cfg ok = conv_cfg(8, 8, 3, 1, 1, 1, 1);
    const cbq_conv2d_cfg old = conv_cfg(8, 8, 3, 1, 1, 0, 0); /* 0 reads as 1 */
    const cbq_conv2d_cfg refused[] = {
        conv_cfg(8, 8, 3, 2, 1, 1, 1), /* stride 2 */
        conv_cfg(8, 8, 5, 1, 2, 1, 1), /* 5x5 */
        conv_cfg(8, 8, 3, 1, 2, 2, 1), /* dilation 2 */
        conv_cfg(8, 8, 3, 1, 1, 1, 2), /* groups */
        conv_cfg(8, 8, 3, 1, 3, 1, 1), /* pad 3 */
        conv_cfg(8, 8, 1, 1, 0, 1, 1), /* 1x1 */
    };
    assert_true(conv2d_winograd_wgrad_workspace_floats(&ok, 9, 9) > 0);
    assert_true(conv2d_winograd_wgrad_workspace_floats(&old, 9, 9) > 0);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        assert_false(conv2d_winograd_wgrad_eligible(&refused[i], 32, 32));
        assert_int_equal(conv2d_winograd_wgrad_workspace_floats(&refused[i], 32, 32), 0);
    }
    /* computed, but left to im2col where that is faster: one input channel,
     * few channels, planes of mostly padded tiles */
    const cbq_conv2d_cfg first = conv_cfg(1, 16, 3, 1, 1, 1, 1);
    const cbq_conv2d_cfg narrow = conv_cfg(4, 4, 3, 1, 1, 1, 1);
    const cbq_conv2d_cfg wide = conv_cfg(512, 512, 3, 1, 1, 1, 1);
    assert_true(conv2d_winograd_wgrad_eligible(&ok, 9, 9));
    assert_true(conv2d_winograd_wgrad_eligible(&old, 56, 56));
    assert_true(conv2d_winograd_wgrad_eligible(&wide, 4, 4));
    assert_true(conv2d_winograd_wgrad_eligible(&wide, 7, 7));
    assert_true(conv2d_winograd_wgrad_eligible(&wide, 6, 6));
    assert_false(conv2d_winograd_wgrad_eligible(&first, 128, 128));
    assert_false(conv2d_winograd_wgrad_eligible(&narrow, 128, 128));
    assert_false(conv2d_winograd_wgrad_eligible(&wide, 3, 3));
    assert_false(conv2d_winograd_wgrad_eligible(&wide, 5, 5));
    assert_false(conv2d_winograd_wgrad_eligible(&wide, 2, 64));
    assert_true(conv2d_winograd_wgrad_workspace_floats(&first, 128, 128) > 0);
    /* no output pixel: a 1x1 plane without padding */
    const cbq_conv2d_cfg unpadded = conv_cfg(8, 8, 3, 1, 0, 1, 1);
    assert_false(conv2d_winograd_wgrad_eligible(&unpadded, 1, 1));
    assert_int_equal(conv2d_winograd_wgrad_workspace_floats(&unpadded, 1, 1), 0);
}

int main(void)
{
    cbq_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_accepted),
        cmocka_unit_test(test_against_double),
        cmocka_unit_test(test_many_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
