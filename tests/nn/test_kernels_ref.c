/* test_kernels_ref.c - the reordered fast paths of the non-convolution
 * kernels against their one-element-at-a-time references, bit for bit:
 * max pooling (every window shape resnet and iqnet use, plus padding,
 * ceil_mode, ties, NaN and -inf), with 1 and 3 threads; a training net,
 * where batch norm and the ReLU after it run as one pass, against a net
 * made by cbq_net_create, which runs them apart; and a net kept from a
 * layer (cbq_net_keep_activations_from), whose batch norms and residual
 * adds below that layer write their ReLU's output themselves.
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

#include "cbctiq/net.h"
#include "cbctiq/preset.h"
#include "cbctiq/rng.h"
#include "nn/layer.h"
#include "nn/net_impl.h"

/* Values on a coarse grid (many ties), with some NaN, -inf and -0.0. */
static float *awkward_values(cbq_rng *rng, size_t count)
{
    float *p = malloc(count * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < count; i++) {
        uint64_t r = cbq_rng_below(rng, 100);
        p[i] = r < 2 ? NAN : r < 5 ? -INFINITY : r < 10 ? -0.0f : (float)cbq_rng_below(rng, 7) - 3.0f;
    }
    return p;
}

static void assert_same_bits(const char *what, const float *a, const float *b, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (memcmp(&a[i], &b[i], sizeof *a) != 0)
            fail_msg("%s: element %zu is %.9g, the reference gives %.9g", what, i, (double)a[i],
                     (double)b[i]);
}

static void check_maxpool(const cbq_pool2d_cfg *cfg, size_t planes, size_t h, size_t w, int threads)
{
    cbq_rng rng;
    cbq_rng_seed(&rng, 29 + h * 7 + w);
    const size_t oh = pool2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h, cfg->ceil_mode);
    const size_t ow = pool2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w, cfg->ceil_mode);
    const size_t n_in = planes * h * w, n_out = planes * oh * ow;
    float *in = awkward_values(&rng, n_in), *g = awkward_values(&rng, n_out);
    for (size_t i = 0; i < n_out; i++)
        g[i] = isfinite(g[i]) ? g[i] + 0.25f : 1.5f; /* finite, so that sums are comparable */
    float *out = malloc(n_out * sizeof *out), *ref = malloc(n_out * sizeof *ref);
    float *din = malloc(n_in * sizeof *din), *dref = malloc(n_in * sizeof *dref);
    assert_true(out && ref && din && dref);
    char what[128];
    snprintf(what, sizeof what, "maxpool k%dx%d s%dx%d p%dx%d ceil %d on %zux%zu, %d threads",
             cfg->kernel_h, cfg->kernel_w, cfg->stride_h, cfg->stride_w, cfg->pad_h, cfg->pad_w,
             cfg->ceil_mode, h, w, threads);
    maxpool2d_forward(out, in, cfg, planes, h, w, threads);
    maxpool2d_forward_ref(ref, in, cfg, planes, h, w);
    assert_same_bits(what, out, ref, n_out);
    memset(din, 0x7f, n_in * sizeof *din); /* backward must overwrite every element */
    maxpool2d_backward(din, g, in, cfg, planes, h, w, threads);
    maxpool2d_backward_ref(dref, g, in, cfg, planes, h, w);
    assert_same_bits(what, din, dref, n_in);
    free(in); free(g); free(out); free(ref); free(din); free(dref);
}

static void test_maxpool_vs_ref(void **state)
{
    (void)state;
    /* kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, ceil_mode */
    static const cbq_pool2d_cfg cfgs[] = {
        {3, 3, 2, 2, 1, 1, 0}, /* resnet's stem pooling */
        {3, 3, 2, 2, 1, 1, 1}, {3, 3, 2, 2, 0, 0, 1}, {3, 3, 1, 1, 1, 1, 0},
        {2, 2, 2, 2, 0, 0, 0}, /* iqnet's (the unrolled 2x2 path) */
        {2, 2, 2, 2, 0, 0, 1}, {2, 3, 1, 2, 1, 1, 0}, {5, 4, 3, 2, 2, 2, 1}, {1, 1, 1, 1, 0, 0, 0},
    };
    static const size_t sizes[][2] = {{1, 1}, {7, 6}, {9, 8}, {16, 17}, {5, 600}};
    for (size_t c = 0; c < sizeof cfgs / sizeof *cfgs; c++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            size_t h = sizes[s][0], w = sizes[s][1];
            if (h + 2 * (size_t)cfgs[c].pad_h < (size_t)cfgs[c].kernel_h ||
                w + 2 * (size_t)cfgs[c].pad_w < (size_t)cfgs[c].kernel_w)
                continue; /* the shape rule refuses these */
            check_maxpool(&cfgs[c], 3, h, w, 1);
            check_maxpool(&cfgs[c], 3, h, w, 3);
        }
}

static cbq_net *preset_net(const char *arch, int side, size_t batch, int training)
{
    cbq_model_spec spec;
    cbq_preset_opts o = {.input = side, .width = 8};
    cbq_error err = {0};
    assert_int_equal(cbq_preset_build(&spec, arch, &o, &err), CBQ_OK);
    cbq_net *net = NULL;
    int rc = (training ? cbq_net_create_training : cbq_net_create)(&net, &spec, batch, 3, &err);
    cbq_model_spec_free(&spec);
    assert_int_equal(rc, CBQ_OK);
    return net;
}

/* Output, loss gradients of every parameter and the running statistics
 * after one training-mode step, and the output in evaluation mode. */
static void net_step(cbq_net *net, const float *x, const float *dout, size_t batch, float *out,
                     size_t k, float *grads, float *eval_out)
{
    cbq_error err = {0};
    const float *y = NULL;
    cbq_net_set_threads(net, 2);
    cbq_net_set_training(net, 1);
    cbq_net_zero_grad(net);
    assert_int_equal(cbq_net_forward(net, x, batch, &y, &err), CBQ_OK);
    memcpy(out, y, batch * k * sizeof *out);
    assert_int_equal(cbq_net_backward_ex(net, dout, 0, 1, 0, &err), CBQ_OK);
    size_t count;
    const float *g = cbq_net_grads(net, &count);
    memcpy(grads, g, count * sizeof *grads);
    cbq_net_set_training(net, 0);
    assert_int_equal(cbq_net_forward(net, x, batch, &y, &err), CBQ_OK);
    memcpy(eval_out, y, batch * k * sizeof *eval_out);
}

static void check_fused_net(const char *arch, int side)
{
    const size_t batch = 3, plane = (size_t)side * (size_t)side;
    cbq_net *fused = preset_net(arch, side, batch, 1), *plain = preset_net(arch, side, batch, 0);
    const size_t k = cbq_net_spec(fused)->n_outputs;
    size_t n_params;
    cbq_net_grads(fused, &n_params);
    cbq_rng rng;
    cbq_rng_seed(&rng, 41);
    float *x = malloc(batch * plane * sizeof *x), *dout = malloc(batch * k * sizeof *dout);
    float *out[2], *grads[2], *eval_out[2];
    for (int j = 0; j < 2; j++) {
        out[j] = malloc(batch * k * sizeof *out[j]);
        eval_out[j] = malloc(batch * k * sizeof *eval_out[j]);
        grads[j] = malloc(n_params * sizeof *grads[j]);
    }
    for (size_t i = 0; i < batch * plane; i++)
        x[i] = (float)cbq_rng_uniform(&rng) - 0.5f;
    for (size_t i = 0; i < batch * k; i++)
        dout[i] = (float)cbq_rng_uniform(&rng) - 0.5f;
    net_step(fused, x, dout, batch, out[0], k, grads[0], eval_out[0]);
    net_step(plain, x, dout, batch, out[1], k, grads[1], eval_out[1]);
    char what[64];
    snprintf(what, sizeof what, "%s: training output", arch);
    assert_same_bits(what, out[0], out[1], batch * k);
    snprintf(what, sizeof what, "%s: parameter gradients", arch);
    assert_same_bits(what, grads[0], grads[1], n_params);
    snprintf(what, sizeof what, "%s: evaluation output", arch);
    assert_same_bits(what, eval_out[0], eval_out[1], batch * k);
    for (int j = 0; j < 2; j++) {
        free(out[j]);
        free(eval_out[j]);
        free(grads[j]);
    }
    free(x);
    free(dout);
    cbq_net_free(fused);
    cbq_net_free(plain);
}

static void test_batchnorm_relu_fused(void **state)
{
    (void)state;
    check_fused_net("resnet18", 32); /* a graph: conv, bn, relu in every block */
    check_fused_net("iqnet-s", 32);  /* a chain */
}

static size_t layer_named(const cbq_net *net, const char *name)
{
    const cbq_model_spec *spec = cbq_net_spec(net);
    if (!name)
        return spec->n_layers - 1;
    for (size_t i = 0; i < spec->n_layers; i++)
        if (strcmp(spec->layers[i].name, name) == 0)
            return i;
    fail_msg("no layer '%s'", name);
    return 0;
}

/* ReLUs whose input layer writes their output (plan_fusion), by the kind
 * of that input. */
static void count_fused(const cbq_net *net, size_t *after_bn, size_t *after_add)
{
    *after_bn = *after_add = 0;
    for (size_t i = 0; i < net->n_layers; i++) {
        long from = cbq_model_spec_input(&net->spec, i, 0);
        if (!net->layer[i].relu_done)
            continue;
        assert_true(from >= 0 && net->layer[from].relu_fused);
        assert_ptr_equal(cbq_net_activation(net, i), cbq_net_activation(net, (size_t)from));
        *after_bn += net->spec.layers[from].kind == CBQ_LAYER_BATCHNORM2D;
        *after_add += net->spec.layers[from].kind == CBQ_LAYER_ADD;
    }
}

static void forward_copy(cbq_net *net, const float *x, size_t batch, int training, int threads,
                         float *out, size_t k)
{
    cbq_error err = {0};
    const float *y = NULL;
    cbq_net_set_threads(net, threads);
    cbq_net_set_training(net, training);
    assert_int_equal(cbq_net_forward(net, x, batch, &y, &err), CBQ_OK);
    memcpy(out, y, batch * k * sizeof *out);
}

/* A net kept from `keep_name` (NULL: the output only, as predict) against
 * one that keeps everything and fuses nothing: the same bits for the
 * training-mode output, the evaluation output at 1 and 2 threads, the
 * activations from the kept layer on and, one backward per output down to
 * that layer as Grad-CAM runs, its gradient. */
static void check_kept_net(const char *arch, const char *keep_name, size_t want_bn, size_t want_add)
{
    const size_t batch = 2, side = 32, plane = side * side;
    cbq_net *kept = preset_net(arch, (int)side, batch, 0), *plain = preset_net(arch, (int)side, batch, 0);
    const size_t keep = layer_named(kept, keep_name), k = cbq_net_spec(kept)->n_outputs;
    cbq_error err = {0};
    assert_int_equal(cbq_net_keep_activations_from(kept, keep, &err), CBQ_OK);
    size_t after_bn, after_add;
    count_fused(plain, &after_bn, &after_add);
    assert_int_equal(after_bn + after_add, 0);
    count_fused(kept, &after_bn, &after_add);
    assert_int_equal(after_bn, want_bn);
    assert_int_equal(after_add, want_add);
    cbq_rng rng;
    cbq_rng_seed(&rng, 43);
    float *x = malloc(batch * plane * sizeof *x), out[2][64], dout[64];
    assert_true(batch * k <= 64);
    for (size_t i = 0; i < batch * plane; i++)
        x[i] = (float)cbq_rng_uniform(&rng) - 0.5f;
    char what[96];
    snprintf(what, sizeof what, "%s kept from %zu: training output", arch, keep);
    forward_copy(kept, x, batch, 1, 2, out[0], k); /* also moves the running statistics */
    forward_copy(plain, x, batch, 1, 2, out[1], k);
    assert_same_bits(what, out[0], out[1], batch * k);
    snprintf(what, sizeof what, "%s kept from %zu: evaluation output", arch, keep);
    forward_copy(kept, x, batch, 0, 1, out[0], k);
    forward_copy(plain, x, batch, 0, 2, out[1], k);
    assert_same_bits(what, out[0], out[1], batch * k);
    for (size_t l = keep; l < cbq_net_spec(kept)->n_layers; l++) {
        size_t shape[3];
        cbq_net_layer_shape(kept, l, shape);
        snprintf(what, sizeof what, "%s kept from %zu: activation %zu", arch, keep, l);
        assert_same_bits(what, cbq_net_activation(kept, l), cbq_net_activation(plain, l),
                         batch * shape[0] * shape[1] * shape[2]);
    }
    size_t shape[3];
    cbq_net_layer_shape(kept, keep, shape);
    for (size_t c = 0; c < k; c++) {
        for (size_t i = 0; i < batch * k; i++)
            dout[i] = i % k == c ? 1.0f : 0.0f;
        assert_int_equal(cbq_net_backward(kept, dout, keep, 0, &err), CBQ_OK);
        assert_int_equal(cbq_net_backward(plain, dout, keep, 0, &err), CBQ_OK);
        snprintf(what, sizeof what, "%s kept from %zu: gradient, output %zu", arch, keep, c);
        assert_same_bits(what, cbq_net_activation_grad(kept, keep), cbq_net_activation_grad(plain, keep),
                         batch * shape[0] * shape[1] * shape[2]);
    }
    free(x);
    cbq_net_free(kept);
    cbq_net_free(plain);
}

static void test_kept_net_fused(void **state)
{
    (void)state;
    /* resnet18: the stem's and every block's bn1 + relu1 (9), and every
     * block's add + relu2 (8), below the output */
    check_kept_net("resnet18", NULL, 9, 8);
    /* Grad-CAM's default target, the last block's relu2: in the add's block */
    check_kept_net("resnet18", "layer4.1.relu2", 9, 8);
    /* an inner block: its downsample branch reads layer2's output from
     * below the kept layer; the stem, layer1, layer2 and layer3.0.bn1 */
    check_kept_net("resnet18", "layer3.0.relu1", 6, 4);
    /* a batch norm kept: its ReLU stays a pass of its own */
    check_kept_net("resnet18", "layer3.0.bn1", 5, 4);
    /* iqnet-s (4 blocks of two conv, bn, relu), a chain: the output only,
     * its target (block4.relu2, in the block of block4.bn2 below it), and
     * block2.relu1, which leaves two blocks of its own below it */
    check_kept_net("iqnet-s", NULL, 8, 0);
    check_kept_net("iqnet-s", "block4.relu2", 8, 0);
    check_kept_net("iqnet-s", "block2.relu1", 3, 0);
    check_kept_net("iqnet-s", "block2.bn1", 2, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool_vs_ref),
        cmocka_unit_test(test_batchnorm_relu_fused),
        cmocka_unit_test(test_kept_net_fused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
