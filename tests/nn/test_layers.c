/* test_layers.c - each layer kernel's backward against central finite
 * differences of its own forward, the optimised conv against the naive
 * loops, the BLAS GEMM against the naive GEMM, dropout's mask rule, and
 * bit-identical repeats with 1 and 2 threads.
 *
 * Finite differences: objective f = sum(out * r) for a fixed random r, so
 * df/din is backward(dout = r). Step 1e-2 in float32, objective summed in
 * double; a gradient passes when |fd - analytic| <= 2e-3 + 1e-2 |analytic|
 * (float rounding over 1e-2 steps stays far below that; a wrong formula does
 * not). Inputs of ReLU/max-pool are kept away from kinks and ties.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/gemm.h"
#include "cbctiq/loss.h"
#include "cbctiq/rng.h"
#include "nn/layer.h"

#define FD_EPS 1e-2f
#define FD_ATOL 2e-3
#define FD_RTOL 1e-2

typedef struct fd_op fd_op;
/* Runs the forward of the op under test: out from in and params. */
typedef void (*fd_forward)(const fd_op *op, float *out, const float *in, const float *params);
struct fd_op {
    fd_forward fwd;
    size_t n_in, n_params, n_out;
    const void *cfg;
    size_t n, h, w;
    float *scratch;
};

static float *randn(cbq_rng *rng, size_t count, double scale)
{
    float *p = malloc((count ? count : 1) * sizeof *p);
    for (size_t i = 0; i < count; i++)
        p[i] = (float)(cbq_rng_normal(rng) * scale);
    return p;
}

static double objective(const fd_op *op, const float *in, const float *params, const float *r)
{
    float *out = malloc(op->n_out * sizeof *out);
    op->fwd(op, out, in, params);
    double f = 0.0;
    for (size_t i = 0; i < op->n_out; i++)
        f += (double)out[i] * r[i];
    free(out);
    return f;
}

/* Checks analytic[i] = d objective / d x[i] for x = in or params. */
static void fd_check(const char *what, const fd_op *op, float *in, float *params, const float *r,
                     float *x, size_t count, const float *analytic)
{
    for (size_t i = 0; i < count; i++) {
        float keep = x[i];
        x[i] = keep + FD_EPS;
        double fp = objective(op, in, params, r);
        x[i] = keep - FD_EPS;
        double fm = objective(op, in, params, r);
        x[i] = keep;
        double fd = (fp - fm) / (2.0 * FD_EPS);
        double tol = FD_ATOL + FD_RTOL * fabs(analytic[i]);
        if (fabs(fd - analytic[i]) > tol)
            fail_msg("%s[%zu]: finite difference %.6g, backward %.6g", what, i, fd, analytic[i]);
    }
}

/* ---- conv2d --------------------------------------------------------------- */
/* weight [Cout, Cin/groups, KH, KW] (groups 0 reads as 1) */
static size_t conv_weights(const cbq_conv2d_cfg *c)
{
    size_t groups = c->groups > 0 ? (size_t)c->groups : 1;
    return (size_t)c->out_channels * ((size_t)c->in_channels / groups) * (size_t)c->kernel_h *
           (size_t)c->kernel_w;
}

static void conv_fwd(const fd_op *op, float *out, const float *in, const float *p)
{
    const cbq_conv2d_cfg *c = op->cfg;
    size_t nw = conv_weights(c);
    conv2d_forward(out, in, p, c->bias ? p + nw : NULL, c, op->n, op->h, op->w, op->scratch, 1);
}

static void check_conv(const cbq_conv2d_cfg *c, size_t n, size_t h, size_t w)
{
    cbq_rng rng;
    cbq_rng_seed(&rng, 11);
    size_t oh = conv2d_out_h(c, h), ow = conv2d_out_w(c, w);
    size_t nw = conv_weights(c);
    size_t np = nw + (c->bias ? (size_t)c->out_channels : 0);
    fd_op op = {conv_fwd, n * (size_t)c->in_channels * h * w, np,
                n * (size_t)c->out_channels * oh * ow, c, n, h, w, NULL};
    op.scratch = calloc(conv2d_workspace_floats(c, h, w) + 1, sizeof(float));
    float *priv = calloc(conv2d_dw_private_floats(c), sizeof(float));
    float *in = randn(&rng, op.n_in, 1.0), *p = randn(&rng, np, 0.5), *r = randn(&rng, op.n_out, 1.0);
    float *din = calloc(op.n_in, sizeof *din), *dp = calloc(np, sizeof *dp);
    conv2d_backward(din, dp, c->bias ? dp + nw : NULL, r, in, p, c, n, h, w, op.scratch, priv, 1);
    fd_check("conv2d din", &op, in, p, r, in, op.n_in, din);
    fd_check("conv2d dweight/dbias", &op, in, p, r, p, np, dp);
    free(op.scratch); free(priv); free(in); free(p); free(r); free(din); free(dp);
}

static void test_conv2d_fd(void **state)
{
    (void)state;
    cbq_conv2d_cfg a = {2, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    check_conv(&a, 2, 5, 4);
    cbq_conv2d_cfg b = {3, 2, 3, 2, 2, 1, 1, 0, 0, 1, 1, 1, 0}; /* non-square, strided, no bias */
    check_conv(&b, 2, 6, 5);
    cbq_conv2d_cfg c = {4, 3, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0}; /* pointwise path */
    check_conv(&c, 2, 3, 3);
}

/* conv2d_general.c: dilation, groups, depthwise */
static void test_conv2d_general_fd(void **state)
{
    (void)state;
    cbq_conv2d_cfg dil = {2, 3, 3, 3, 1, 1, 2, 2, 1, 2, 2, 1, 0}; /* dilation 2, "same" padding */
    check_conv(&dil, 2, 7, 6);
    cbq_conv2d_cfg dil_s = {2, 2, 3, 2, 2, 1, 1, 0, 0, 2, 3, 1, 0}; /* strided, dilation 2x3 */
    check_conv(&dil_s, 1, 8, 7);
    cbq_conv2d_cfg grp = {4, 6, 3, 3, 1, 2, 1, 1, 1, 1, 1, 2, 0}; /* groups 2 */
    check_conv(&grp, 2, 5, 6);
    cbq_conv2d_cfg dw = {3, 6, 3, 3, 2, 2, 1, 1, 1, 1, 1, 3, 0}; /* depthwise, multiplier 2 */
    check_conv(&dw, 2, 6, 5);
    cbq_conv2d_cfg both = {4, 4, 3, 3, 1, 1, 2, 2, 0, 2, 2, 2, 0}; /* groups 2, dilation 2 */
    check_conv(&both, 1, 6, 6);
}

/* ---- batchnorm2d -------------------------------------------------------------- */
typedef struct { cbq_batchnorm2d_cfg bn; int train; float rm[8], rv[8]; } bn_ctx;

static void bn_fwd(const fd_op *op, float *out, const float *in, const float *p)
{
    const bn_ctx *b = op->cfg;
    size_t ch = (size_t)b->bn.channels;
    float mean[8], invstd[8], rm[8], rv[8];
    int64_t nbt = 0;
    memcpy(rm, b->rm, sizeof rm);
    memcpy(rv, b->rv, sizeof rv);
    if (b->train)
        batchnorm2d_forward_train(out, mean, invstd, rm, rv, &nbt, in, p, p + ch, &b->bn, op->n,
                                  op->h * op->w, 0, 1);
    else
        batchnorm2d_forward_eval(out, mean, invstd, in, p, p + ch, rm, rv, &b->bn, op->n,
                                 op->h * op->w, 0, 1);
}

static void check_bn(int train)
{
    cbq_rng rng;
    cbq_rng_seed(&rng, 12);
    bn_ctx b = {{3, 1e-5, 0.1}, train, {0.1f, -0.2f, 0.3f}, {0.8f, 1.5f, 1.1f}};
    size_t n = 2, ch = 3, h = 3, w = 2, count = n * ch * h * w;
    fd_op op = {bn_fwd, count, 2 * ch, count, &b, n, h, w, NULL};
    float *in = randn(&rng, count, 1.5), *p = randn(&rng, 2 * ch, 1.0), *r = randn(&rng, count, 1.0);
    float *out = calloc(count, sizeof *out), *din = calloc(count, sizeof *din);
    float *dp = calloc(2 * ch, sizeof *dp);
    float mean[3], invstd[3], rm[3], rv[3];
    int64_t nbt = 0;
    memcpy(rm, b.rm, sizeof rm);
    memcpy(rv, b.rv, sizeof rv);
    if (train)
        batchnorm2d_forward_train(out, mean, invstd, rm, rv, &nbt, in, p, p + ch, &b.bn, n, h * w, 0, 1);
    else
        batchnorm2d_forward_eval(out, mean, invstd, in, p, p + ch, rm, rv, &b.bn, n, h * w, 0, 1);
    batchnorm2d_backward(din, dp, dp + ch, r, in, p, mean, invstd, train, ch, n, h * w, 1);
    fd_check(train ? "bn(train) din" : "bn(eval) din", &op, in, p, r, in, count, din);
    fd_check("bn dgamma/dbeta", &op, in, p, r, p, 2 * ch, dp);
    assert_int_equal(nbt, train ? 1 : 0);
    free(in); free(p); free(r); free(out); free(din); free(dp);
}

static void test_batchnorm_fd(void **state)
{
    (void)state;
    check_bn(1);
    check_bn(0);
}

/* ---- elementwise, pooling, linear ----------------------------------------- */
typedef struct { int kind; cbq_pool2d_cfg pool; cbq_linear_cfg lin; float slope; } misc_ctx;
enum { K_RELU, K_LEAKY, K_SIGMOID, K_SILU, K_MAX, K_AVG, K_GAP, K_LINEAR };

static void misc_fwd(const fd_op *op, float *out, const float *in, const float *p)
{
    const misc_ctx *m = op->cfg;
    size_t planes = op->n; /* n holds planes for the pooling kinds */
    switch (m->kind) {
    case K_RELU: relu_forward(out, in, op->n_in, 1); break;
    case K_LEAKY: leaky_relu_forward(out, in, m->slope, op->n_in, 1); break;
    case K_SIGMOID: sigmoid_forward(out, in, op->n_in, 1); break;
    case K_SILU: silu_forward(out, in, op->n_in, 1); break;
    case K_MAX: maxpool2d_forward(out, in, &m->pool, planes, op->h, op->w, 1); break;
    case K_AVG: avgpool2d_forward(out, in, &m->pool, planes, op->h, op->w, 1); break;
    case K_GAP: global_avgpool_forward(out, in, planes, op->h * op->w, 1); break;
    default: linear_forward(out, in, p, p + (size_t)(m->lin.in_features * m->lin.out_features), &m->lin, op->n);
    }
}

static void misc_bwd(const fd_op *op, float *din, float *dp, const float *r, const float *in,
                     const float *p)
{
    const misc_ctx *m = op->cfg;
    size_t planes = op->n;
    switch (m->kind) {
    case K_RELU: relu_backward(din, r, in, op->n_in, 1); break;
    case K_LEAKY: leaky_relu_backward(din, r, in, m->slope, op->n_in, 1); break;
    case K_SIGMOID: sigmoid_backward(din, r, in, op->n_in, 1); break;
    case K_SILU: silu_backward(din, r, in, op->n_in, 1); break;
    case K_MAX: maxpool2d_backward(din, r, in, &m->pool, planes, op->h, op->w, 1); break;
    case K_AVG: avgpool2d_backward(din, r, &m->pool, planes, op->h, op->w, 1); break;
    case K_GAP: global_avgpool_backward(din, r, planes, op->h * op->w, 1); break;
    default:
        linear_backward(din, dp, dp + (size_t)(m->lin.in_features * m->lin.out_features), r, in, p,
                        &m->lin, op->n);
    }
}

/* Distinct values at least 0.1 apart and at least 0.05 from zero, shuffled:
 * no kink or tie within the finite-difference step. */
static float *spaced(cbq_rng *rng, size_t count)
{
    size_t *idx = malloc(count * sizeof *idx);
    float *p = malloc(count * sizeof *p);
    for (size_t i = 0; i < count; i++)
        idx[i] = i;
    cbq_rng_shuffle_size(rng, idx, count);
    for (size_t i = 0; i < count; i++)
        p[i] = 0.1f * ((float)idx[i] - (float)count / 2.0f) + 0.05f;
    free(idx);
    return p;
}

static void check_misc(const char *name, misc_ctx *m, size_t n, size_t h, size_t w, size_t n_in,
                       size_t n_params, size_t n_out)
{
    cbq_rng rng;
    cbq_rng_seed(&rng, 13);
    fd_op op = {misc_fwd, n_in, n_params, n_out, m, n, h, w, NULL};
    float *in = spaced(&rng, n_in), *p = randn(&rng, n_params, 0.5), *r = randn(&rng, n_out, 1.0);
    float *din = calloc(n_in, sizeof *din), *dp = calloc(n_params + 1, sizeof *dp);
    misc_bwd(&op, din, dp, r, in, p);
    fd_check(name, &op, in, p, r, in, n_in, din);
    if (n_params)
        fd_check(name, &op, in, p, r, p, n_params, dp);
    free(in); free(p); free(r); free(din); free(dp);
}

static void test_misc_fd(void **state)
{
    (void)state;
    misc_ctx relu = {.kind = K_RELU};
    check_misc("relu", &relu, 1, 1, 1, 40, 0, 40);
    misc_ctx leaky = {.kind = K_LEAKY, .slope = 0.2f};
    check_misc("leaky_relu", &leaky, 1, 1, 1, 40, 0, 40);
    misc_ctx sig = {.kind = K_SIGMOID};
    check_misc("sigmoid", &sig, 1, 1, 1, 40, 0, 40);
    misc_ctx silu = {.kind = K_SILU};
    check_misc("silu", &silu, 1, 1, 1, 40, 0, 40);
    misc_ctx mp = {.kind = K_MAX, .pool = {3, 2, 2, 1, 1, 0, 0}};
    check_misc("maxpool2d", &mp, 2, 7, 6, 2 * 42, 0, 2 * 4 * 5);
    misc_ctx mp2 = {.kind = K_MAX, .pool = {2, 2, 2, 2, 0, 0, 0}}; /* unrolled 2x2 path */
    check_misc("maxpool2d 2x2", &mp2, 2, 7, 5, 2 * 35, 0, 2 * 3 * 2); /* odd h and w */
    misc_ctx ap = {.kind = K_AVG, .pool = {3, 3, 2, 2, 1, 1, 0}};
    check_misc("avgpool2d", &ap, 2, 7, 6, 2 * 42, 0, 2 * 4 * 3);
    /* ceil_mode, odd sizes: the last window hangs over the bottom/right edge
     * (7x6, k3 s2 p0: 3x3 windows, floor would give 3x2; 2x2 s2 on 7x5: 4x3) */
    misc_ctx mpc = {.kind = K_MAX, .pool = {3, 3, 2, 2, 0, 0, 1}};
    assert_int_equal(pool2d_out_size(6, 3, 2, 0, 1), 3);
    check_misc("maxpool2d ceil", &mpc, 2, 7, 6, 2 * 42, 0, 2 * 3 * 3);
    misc_ctx mpc2 = {.kind = K_MAX, .pool = {2, 2, 2, 2, 0, 0, 1}};
    check_misc("maxpool2d 2x2 ceil", &mpc2, 2, 7, 5, 2 * 35, 0, 2 * 4 * 3);
    misc_ctx apc = {.kind = K_AVG, .pool = {3, 3, 2, 2, 1, 1, 1}};
    /* h 7: ceil and floor agree (4); w 6: 4 windows where floor gives 3, the
     * last starting at 5 and cut at w + pad = 7 (divisor 3x2, not 3x3) */
    check_misc("avgpool2d ceil", &apc, 2, 7, 6, 2 * 42, 0, 2 * 4 * 4);
    misc_ctx apc2 = {.kind = K_AVG, .pool = {2, 3, 2, 2, 0, 1, 1}}; /* divisor shrinks */
    check_misc("avgpool2d ceil p0", &apc2, 2, 7, 6, 2 * 42, 0, 2 * 4 * 4);
    misc_ctx gap = {.kind = K_GAP};
    check_misc("global_avgpool", &gap, 3, 4, 5, 60, 0, 3);
    misc_ctx lin = {.kind = K_LINEAR, .lin = {6, 4, 1}};
    check_misc("linear", &lin, 3, 1, 1, 18, 6 * 4 + 4, 12);
}

/* ---- losses -------------------------------------------------------------------- */
static void test_loss_fd(void **state)
{
    (void)state;
    cbq_rng rng;
    cbq_rng_seed(&rng, 14);
    const size_t n = 4, k = 3;
    float *pred = randn(&rng, n * k, 1.5), *target = randn(&rng, n * k, 1.0);
    float soft[12];
    for (size_t i = 0; i < n; i++) /* cross-entropy targets: rows summing to 1 */
        for (size_t j = 0; j < k; j++)
            soft[i * k + j] = (float)(j + i % 2 + 1) / (float)(k * (k + 1) / 2 + k * (i % 2));
    cbq_loss_cfg cfgs[] = {{CBQ_LOSS_MSE, 0}, {CBQ_LOSS_HUBER, 0.7}, {CBQ_LOSS_CROSS_ENTROPY, 0}};
    for (size_t c = 0; c < 3; c++) {
        const float *t = c == 2 ? soft : target;
        float d[12];
        cbq_loss(&cfgs[c], pred, t, n, k, d);
        for (size_t i = 0; i < n * k; i++) {
            float keep = pred[i];
            /* Huber's kink at |d| = delta: skip elements within the step */
            if (c == 1 && fabs(fabs((double)keep - t[i]) - 0.7) < 2 * FD_EPS)
                continue;
            pred[i] = keep + FD_EPS;
            double fp = cbq_loss(&cfgs[c], pred, t, n, k, NULL);
            pred[i] = keep - FD_EPS;
            double fm = cbq_loss(&cfgs[c], pred, t, n, k, NULL);
            pred[i] = keep;
            double fd = (fp - fm) / (2.0 * FD_EPS);
            if (fabs(fd - d[i]) > 1e-4 + 1e-3 * fabs(d[i]))
                fail_msg("loss %zu d[%zu]: fd %.6g, analytic %.6g", c, i, fd, d[i]);
        }
    }
    free(pred); free(target);
}

/* ---- optimised against naive --------------------------------------------------- */
static double max_rel(const float *a, const float *b, size_t count)
{
    double md = 0.0, mb = 1e-12;
    for (size_t i = 0; i < count; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mb = fmax(mb, fabs((double)b[i]));
    }
    return md / mb;
}

static void test_gemm_vs_ref(void **state)
{
    (void)state;
    cbq_rng rng;
    cbq_rng_seed(&rng, 15);
    const size_t m = 37, n = 29, k = 53;
    float *a = randn(&rng, m * k, 1.0), *b = randn(&rng, k * n, 1.0);
    float *c1 = randn(&rng, m * n, 1.0), *c2 = malloc(m * n * sizeof *c2);
    memcpy(c2, c1, m * n * sizeof *c2);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            cbq_sgemm(ta, tb, m, n, k, 0.5f, a, ta ? m : k, b, tb ? k : n, 0.25f, c1, n);
            cbq_sgemm_ref(ta, tb, m, n, k, 0.5f, a, ta ? m : k, b, tb ? k : n, 0.25f, c2, n);
            assert_true(max_rel(c1, c2, m * n) < 1e-5);
        }
    free(a); free(b); free(c1); free(c2);
}

static void conv_vs_ref(const cbq_conv2d_cfg *c, size_t n, size_t h, size_t w, int threads)
{
    cbq_rng rng;
    cbq_rng_seed(&rng, 16);
    size_t oh = conv2d_out_h(c, h), ow = conv2d_out_w(c, w);
    size_t nin = n * (size_t)c->in_channels * h * w, nout = n * (size_t)c->out_channels * oh * ow;
    size_t nw = conv_weights(c);
    size_t co = (size_t)c->out_channels;
    float *in = randn(&rng, nin, 1.0), *wt = randn(&rng, nw, 0.3), *b = randn(&rng, co, 1.0);
    float *g = randn(&rng, nout, 1.0);
    float *o1 = calloc(nout, 4), *o2 = calloc(nout, 4), *d1 = calloc(nin, 4), *d2 = calloc(nin, 4);
    float *w1 = calloc(nw, 4), *w2 = calloc(nw, 4), *b1 = calloc(co, 4), *b2 = calloc(co, 4);
    float *ws = calloc((size_t)threads * conv2d_workspace_floats(c, h, w) + 1, 4);
    float *pv = calloc((size_t)threads * conv2d_dw_private_floats(c), 4);
    const float *bias = c->bias ? b : NULL;
    conv2d_forward(o1, in, wt, bias, c, n, h, w, ws, threads);
    conv2d_forward_ref(o2, in, wt, bias, c, n, h, w);
    assert_true(max_rel(o1, o2, nout) < 1e-5);
    conv2d_backward(d1, w1, c->bias ? b1 : NULL, g, in, wt, c, n, h, w, ws, pv, threads);
    conv2d_backward_ref(d2, w2, c->bias ? b2 : NULL, g, in, wt, c, n, h, w);
    assert_true(max_rel(d1, d2, nin) < 1e-5);
    assert_true(max_rel(w1, w2, nw) < 1e-5);
    if (c->bias)
        assert_true(max_rel(b1, b2, co) < 1e-5);
    /* Same thread count again: bit-identical. */
    float *w3 = calloc(nw, 4), *d3 = calloc(nin, 4);
    conv2d_backward(d3, w3, NULL, g, in, wt, c, n, h, w, ws, pv, threads);
    assert_memory_equal(w1, w3, nw * 4);
    assert_memory_equal(d1, d3, nin * 4);
    free(in); free(wt); free(b); free(g); free(o1); free(o2); free(d1); free(d2);
    free(w1); free(w2); free(b1); free(b2); free(ws); free(pv); free(w3); free(d3);
}

static void test_conv_vs_ref(void **state)
{
    (void)state;
    const cbq_conv2d_cfg cfgs[] = {
        {3, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0}, {4, 5, 5, 3, 2, 2, 2, 1, 0, 1, 1, 1, 0},
        {6, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0}, {2, 3, 2, 2, 2, 2, 0, 0, 1, 1, 1, 1, 0},
        {1, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0},
        /* conv2d_general.c: dilation, groups, depthwise, both, a pointwise group conv */
        {3, 8, 3, 3, 1, 1, 2, 2, 1, 2, 2, 1, 0}, {4, 6, 3, 2, 2, 1, 1, 1, 0, 1, 1, 2, 0},
        {8, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 8, 0}, {4, 8, 3, 3, 2, 2, 3, 3, 1, 3, 2, 4, 0},
        {6, 9, 1, 1, 1, 1, 0, 0, 1, 1, 1, 3, 0}};
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
        for (int t = 1; t <= 2; t++)
            conv_vs_ref(&cfgs[i], 5, 10, 9, t);
    /* One sample on two threads: one thread has no sample in the backward. */
    conv_vs_ref(&cfgs[0], 1, 10, 9, 2);
}

/* conv2d_direct.c (few input channels): odd sizes that exercise full
 * 24-column blocks, the overlapping last block and the narrow-row scratch
 * block, strides 1 and 2, with and without bias, 1 and 3 input channels;
 * against the double reference (forward, weight, bias and, by the GEMM
 * path, input gradients), and the forward bit-identical for 1, 2 and 3
 * threads. */
static void test_conv_direct(void **state)
{
    (void)state;
    const cbq_conv2d_cfg cfgs[] = {
        {1, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1, 1, 0}, /* resnet18's stem, narrower */
        {1, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0}, /* iqnet-s's first convolution */
        {3, 4, 5, 3, 2, 1, 2, 0, 0, 1, 1, 1, 0}, /* 3 channels, non-square, no bias */
        {2, 12, 3, 3, 1, 2, 0, 1, 1, 1, 1, 1, 0}, /* stride 1 x 2, padding in x only */
    };
    const size_t sizes[][2] = {{10, 9}, {13, 53}, {9, 61}};
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        const cbq_conv2d_cfg *c = &cfgs[i];
        assert_true(conv2d_direct_eligible(c));
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            const size_t n = 3, h = sizes[z][0], w = sizes[z][1];
            for (int t = 1; t <= 2; t++)
                conv_vs_ref(c, n, h, w, t);
            cbq_rng rng;
            cbq_rng_seed(&rng, 18);
            const size_t nin = n * (size_t)c->in_channels * h * w;
            const size_t nout = n * (size_t)c->out_channels * conv2d_out_h(c, h) * conv2d_out_w(c, w);
            float *in = randn(&rng, nin, 1.0), *wt = randn(&rng, conv_weights(c), 0.3);
            float *b = randn(&rng, (size_t)c->out_channels, 1.0);
            float *ws = calloc(3 * conv2d_workspace_floats(c, h, w), 4);
            float *o1 = calloc(nout, 4), *o2 = calloc(nout, 4);
            conv2d_forward(o1, in, wt, c->bias ? b : NULL, c, n, h, w, ws, 1);
            for (int t = 2; t <= 3; t++) {
                conv2d_forward(o2, in, wt, c->bias ? b : NULL, c, n, h, w, ws, t);
                assert_memory_equal(o1, o2, nout * 4);
            }
            free(in); free(wt); free(b); free(ws); free(o1); free(o2);
        }
    }
}

/* ---- dropout ---------------------------------------------------------------------- */
static void test_dropout_mask(void **state)
{
    (void)state;
    const size_t count = 20000;
    const double p = 0.3;
    float *in = malloc(count * 4), *out = malloc(count * 4), *mask = malloc(count * 4);
    float *g = malloc(count * 4), *din = malloc(count * 4);
    for (size_t i = 0; i < count; i++) {
        in[i] = 1.0f + (float)(i % 7);
        g[i] = (float)(i % 5) - 2.0f;
    }
    cbq_rng rng;
    cbq_rng_seed(&rng, 17);
    dropout_forward(out, mask, in, p, count, &rng);
    dropout_backward(din, g, mask, count);
    size_t dropped = 0;
    const float scale = (float)(1.0 / (1.0 - p));
    for (size_t i = 0; i < count; i++) {
        if (mask[i] == 0.0f) {
            dropped++;
            assert_true(out[i] == 0.0f && din[i] == 0.0f);
        } else {
            assert_true(mask[i] == scale);
            assert_true(out[i] == in[i] * scale && din[i] == g[i] * scale);
        }
    }
    /* Binomial(20000, 0.3): sd 64.8; 5 sd either side. */
    assert_true(fabs((double)dropped - p * count) < 5 * 64.8);
    free(in); free(out); free(mask); free(g); free(din);
}

int main(void)
{
    cbq_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_fd),    cmocka_unit_test(test_conv2d_general_fd),
        cmocka_unit_test(test_batchnorm_fd),
        cmocka_unit_test(test_misc_fd),      cmocka_unit_test(test_loss_fd),
        cmocka_unit_test(test_gemm_vs_ref),  cmocka_unit_test(test_conv_vs_ref),
        cmocka_unit_test(test_conv_direct),
        cmocka_unit_test(test_dropout_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
