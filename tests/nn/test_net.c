/* test_net.c - the network as a whole: state_dict names and order, PyTorch's
 * default initialisation bounds, whole-net gradients against finite
 * differences, partial backward, reproducibility, errors, and a short
 * convergence run on a synthetic task. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/net.h"
#include "cbctiq/optim.h"
#include "cbctiq/train.h"

/* conv(1->4, 3x3, p1, bias) bn relu maxpool(2) conv(4->6, 3x3, no bias) bn
 * leaky gap dropout linear(6->2), on 8x8 inputs. */
static cbq_layer_spec layers[] = {
    {.name = "conv1", .kind = CBQ_LAYER_CONV2D, .cfg.conv = {1, 4, 3, 3, 1, 1, 1, 1, 1}},
    {.name = "bn1", .kind = CBQ_LAYER_BATCHNORM2D, .cfg.bn = {4, 1e-5, 0.1}},
    {.name = "relu1", .kind = CBQ_LAYER_RELU},
    {.name = "pool1", .kind = CBQ_LAYER_MAXPOOL2D, .cfg.pool = {2, 2, 2, 2, 0, 0}},
    {.name = "conv2", .kind = CBQ_LAYER_CONV2D, .cfg.conv = {4, 6, 3, 3, 1, 1, 1, 1, 0}},
    {.name = "bn2", .kind = CBQ_LAYER_BATCHNORM2D, .cfg.bn = {6, 1e-5, 0.1}},
    {.name = "act2", .kind = CBQ_LAYER_LEAKY_RELU, .cfg.leaky = {0.1}},
    {.name = "gap", .kind = CBQ_LAYER_GLOBAL_AVGPOOL},
    {.name = "drop", .kind = CBQ_LAYER_DROPOUT, .cfg.dropout = {0.0}},
    {.name = "fc", .kind = CBQ_LAYER_LINEAR, .cfg.linear = {6, 2, 1}},
};
enum { N_LAYERS = sizeof layers / sizeof layers[0] };

static cbq_model_spec make_spec(void)
{
    cbq_model_spec s = {.arch = "custom", .input = {8, 8, -1000, 1000}, .n_layers = N_LAYERS,
                        .layers = layers, .n_outputs = 2, .outputs = {"a", "b"},
                        .target_layer = "act2"};
    return s;
}

static cbq_net *make_net(uint64_t seed, size_t max_batch)
{
    cbq_model_spec spec = make_spec();
    cbq_net *net = NULL;
    cbq_error err = {0};
    assert_int_equal(cbq_net_create(&net, &spec, max_batch, seed, &err), CBQ_OK);
    return net;
}

static void fill(float *x, size_t count, uint64_t seed)
{
    cbq_rng rng;
    cbq_rng_seed(&rng, seed);
    for (size_t i = 0; i < count; i++)
        x[i] = (float)cbq_rng_normal(&rng);
}

static void test_state_dict_names(void **state)
{
    (void)state;
    cbq_net *net = make_net(1, 2);
    /* The order torch.nn.Module.state_dict() gives for the same modules. */
    const char *expected[] = {
        "conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
        "bn1.running_var", "bn1.num_batches_tracked", "conv2.weight", "bn2.weight", "bn2.bias",
        "bn2.running_mean", "bn2.running_var", "bn2.num_batches_tracked", "fc.weight", "fc.bias"};
    const size_t n = sizeof expected / sizeof expected[0];
    assert_int_equal(cbq_net_tensor_count(net), n);
    for (size_t i = 0; i < n; i++) {
        cbq_tensor_view v;
        cbq_net_tensor(net, i, &v);
        assert_string_equal(v.name, expected[i]);
    }
    cbq_tensor_view v;
    assert_true(cbq_net_tensor_find(net, "conv2.weight", &v));
    assert_int_equal(v.ndim, 4);
    assert_int_equal(v.shape[0], 6);
    assert_int_equal(v.shape[1], 4);
    assert_int_equal(v.numel, 6 * 4 * 9);
    assert_true(v.trainable && v.grad);
    assert_true(cbq_net_tensor_find(net, "bn1.num_batches_tracked", &v));
    assert_int_equal(v.dtype, CBQ_DTYPE_I64);
    assert_int_equal(v.ndim, 0);
    assert_false(v.trainable);
    assert_false(cbq_net_tensor_find(net, "conv2.bias", &v));
    cbq_net_free(net);
}

static void test_default_init(void **state)
{
    (void)state;
    cbq_net *net = make_net(7, 2);
    cbq_tensor_view v;
    /* conv2: fan_in 36, bound 1/6; uniform variance bound^2/3. */
    assert_true(cbq_net_tensor_find(net, "conv2.weight", &v));
    const float *w = v.data;
    double bound = 1.0 / 6.0, sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < v.numel; i++) {
        assert_true(fabs(w[i]) <= bound);
        sum += w[i];
        sq += (double)w[i] * w[i];
    }
    double var = sq / (double)v.numel;
    assert_true(fabs(var - bound * bound / 3.0) < 0.25 * bound * bound / 3.0);
    assert_true(cbq_net_tensor_find(net, "bn2.running_var", &v));
    for (size_t i = 0; i < v.numel; i++)
        assert_true(((float *)v.data)[i] == 1.0f);
    assert_true(cbq_net_tensor_find(net, "bn2.weight", &v));
    assert_true(((float *)v.data)[3] == 1.0f);
    /* Same seed, same weights; another seed, other weights. */
    cbq_net *same = make_net(7, 2), *other = make_net(8, 2);
    size_t n1, n2, n3;
    float *p1 = cbq_net_params(net, &n1), *p2 = cbq_net_params(same, &n2), *p3 = cbq_net_params(other, &n3);
    assert_int_equal(n1, n2);
    assert_memory_equal(p1, p2, n1 * sizeof *p1);
    assert_memory_not_equal(p1, p3, n1 * sizeof *p1);
    cbq_net_free(net);
    cbq_net_free(same);
    cbq_net_free(other);
}

/* Loss sum(out * r) of a training-mode forward. */
static double net_objective(cbq_net *net, const float *in, size_t n, const float *r)
{
    const float *out;
    assert_int_equal(cbq_net_forward(net, in, n, &out, NULL), CBQ_OK);
    double f = 0.0;
    for (size_t i = 0; i < n * 2; i++)
        f += (double)out[i] * r[i];
    return f;
}

/* Whole-network gradients (input and every parameter) against central
 * differences, tolerance |fd - g| <= 3e-3 + 2e-2 |g| (float32 forward,
 * step 1e-3: a larger step crosses ReLU kinks of the batch-normalised
 * activations; one isolated outlier from a kink is tolerated). */
static void test_net_gradients_fd(void **state)
{
    (void)state;
    const size_t n = 3;
    cbq_net *net = make_net(3, n);
    /* ~1000 tiny forwards: one thread keeps this quick on a busy machine */
    cbq_net_set_threads(net, 1);
    float in[3 * 64], r[6], din[3 * 64];
    fill(in, sizeof in / sizeof in[0], 21);
    fill(r, 6, 22);
    net_objective(net, in, n, r);
    cbq_net_zero_grad(net);
    assert_int_equal(cbq_net_backward(net, r, 0, 1, NULL), CBQ_OK);
    memcpy(din, cbq_net_input_grad(net), sizeof din);
    size_t count;
    float *p = cbq_net_params(net, &count), *g = cbq_net_grads(net, &count);
    float *grad = malloc(count * sizeof *grad);
    memcpy(grad, g, count * sizeof *grad);
    const float eps = 1e-3f;
    size_t bad = 0;
    for (size_t i = 0; i < count + 3 * 64; i++) {
        float *x = i < count ? &p[i] : &in[i - count];
        double an = i < count ? grad[i] : din[i - count];
        float keep = *x;
        *x = keep + eps;
        double fp = net_objective(net, in, n, r);
        *x = keep - eps;
        double fm = net_objective(net, in, n, r);
        *x = keep;
        double fd = (fp - fm) / (2.0 * eps);
        if (fabs(fd - an) > 3e-3 + 2e-2 * fabs(an)) {
            print_message("gradient %zu: fd %.6g, backward %.6g\n", i, fd, an);
            bad++;
        }
    }
    assert_true(bad <= 1);
    free(grad);
    cbq_net_free(net);
}

static void test_partial_backward(void **state)
{
    (void)state;
    const size_t n = 2, target = 6; /* act2 */
    cbq_net *net = make_net(4, n);
    float in[2 * 64], r[4];
    fill(in, 2 * 64, 31);
    fill(r, 4, 32);
    cbq_net_set_training(net, 0);
    assert_int_equal(cbq_net_forward(net, in, n, NULL, NULL), CBQ_OK);
    cbq_net_zero_grad(net);
    /* Down to the target with parameter gradients (as training computes it). */
    assert_int_equal(cbq_net_backward(net, r, target, 1, NULL), CBQ_OK);
    size_t shape[3];
    cbq_net_layer_shape(net, target, shape);
    size_t count = n * shape[0] * shape[1] * shape[2];
    float *full = malloc(count * sizeof *full);
    memcpy(full, cbq_net_activation_grad(net, target), count * sizeof *full);
    /* Grad-CAM style: stop at the target, no parameter gradients. */
    cbq_net_zero_grad(net);
    assert_int_equal(cbq_net_backward(net, r, target, 0, NULL), CBQ_OK);
    assert_memory_equal(full, cbq_net_activation_grad(net, target), count * sizeof *full);
    size_t pc;
    const float *g = cbq_net_grads(net, &pc);
    for (size_t i = 0; i < pc; i++)
        assert_true(g[i] == 0.0f);
    /* With parameter gradients: only layers >= target (here just fc) get them. */
    assert_int_equal(cbq_net_backward(net, r, target, 1, NULL), CBQ_OK);
    cbq_tensor_view v;
    assert_true(cbq_net_tensor_find(net, "conv2.weight", &v));
    for (size_t i = 0; i < v.numel; i++)
        assert_true(v.grad[i] == 0.0f);
    assert_true(cbq_net_tensor_find(net, "fc.weight", &v));
    double s = 0.0;
    for (size_t i = 0; i < v.numel; i++)
        s += fabs(v.grad[i]);
    assert_true(s > 0.0);
    free(full);
    cbq_net_free(net);
}

/* A net kept for attribution at a layer shares memory below it and gives
 * the same bytes as a net that keeps everything: output, the activations
 * from the target on, and the target's gradient, over batches that reuse
 * the shared blocks. */
static size_t layer_count(const cbq_net *net, size_t layer, size_t n)
{
    size_t shape[3];
    cbq_net_layer_shape(net, layer, shape);
    return n * shape[0] * shape[1] * shape[2];
}

static void check_kept_from(size_t target)
{
    const size_t n = 2;
    cbq_net *full = make_net(4, n), *kept = make_net(4, n);
    cbq_error err = {0};
    assert_int_equal(cbq_net_keep_activations_from(kept, target, &err), CBQ_OK);
    /* Below the target, bn1's ReLU runs in its block, fused into it (and
     * may be the target itself); the other layers alternate between two
     * blocks: conv1 and pool1 share one. */
    assert_ptr_equal(cbq_net_activation(kept, 1), cbq_net_activation(kept, 2));
    assert_ptr_not_equal(cbq_net_activation(full, 1), cbq_net_activation(full, 2));
    if (target > 3)
        assert_ptr_equal(cbq_net_activation(kept, 0), cbq_net_activation(kept, 3));
    assert_ptr_not_equal(cbq_net_activation(full, 0), cbq_net_activation(full, 3));
    cbq_net_set_training(full, 0);
    cbq_net_set_training(kept, 0);
    float in[2 * 64], r[4];
    for (uint64_t batch = 0; batch < 3; batch++) {
        fill(in, 2 * 64, 40 + batch);
        fill(r, 4, 50 + batch);
        size_t m = batch == 1 ? 1 : n;
        const float *out_full, *out_kept;
        assert_int_equal(cbq_net_forward(full, in, m, &out_full, NULL), CBQ_OK);
        assert_int_equal(cbq_net_forward(kept, in, m, &out_kept, NULL), CBQ_OK);
        assert_memory_equal(out_full, out_kept, m * 2 * sizeof(float));
        for (size_t c = 0; c < 2; c++) { /* one backward per category, as Grad-CAM */
            float dout[4] = {0};
            for (size_t s = 0; s < m; s++)
                dout[s * 2 + c] = r[s * 2 + c];
            assert_int_equal(cbq_net_backward(full, dout, target, 0, NULL), CBQ_OK);
            assert_int_equal(cbq_net_backward(kept, dout, target, 0, NULL), CBQ_OK);
            for (size_t l = target; l < N_LAYERS; l++)
                assert_memory_equal(cbq_net_activation(full, l), cbq_net_activation(kept, l),
                                    layer_count(full, l, m) * sizeof(float));
            assert_memory_equal(cbq_net_activation_grad(full, target),
                                cbq_net_activation_grad(kept, target),
                                layer_count(full, target, m) * sizeof(float));
        }
    }
    /* Nothing below the target is kept: a deeper backward is refused... */
    assert_int_equal(cbq_net_backward(kept, r, target - 1, 0, &err), CBQ_ERR_ARG);
    assert_non_null(strstr(err.msg, "keeps activations from layer"));
    assert_int_equal(cbq_net_keep_activations_from(kept, N_LAYERS, &err), CBQ_ERR_ARG);
    /* ...until the net keeps everything again: then the input's gradient
     * matches the full net's. */
    assert_int_equal(cbq_net_keep_activations_from(kept, 0, &err), CBQ_OK);
    assert_int_equal(cbq_net_backward(kept, r, 0, 0, &err), CBQ_ERR_ARG); /* no forward since */
    assert_int_equal(cbq_net_forward(full, in, n, NULL, NULL), CBQ_OK);
    assert_int_equal(cbq_net_forward(kept, in, n, NULL, NULL), CBQ_OK);
    assert_int_equal(cbq_net_backward(full, r, 0, 0, NULL), CBQ_OK);
    assert_int_equal(cbq_net_backward(kept, r, 0, 0, NULL), CBQ_OK);
    assert_memory_equal(cbq_net_input_grad(full), cbq_net_input_grad(kept), n * 64 * sizeof(float));
    cbq_net_free(full);
    cbq_net_free(kept);
}

static void test_keep_activations_from(void **state)
{
    (void)state;
    check_kept_from(4); /* conv2: an even number of layers below */
    check_kept_from(6); /* act2, the model's target layer */
    check_kept_from(3); /* pool1: an odd number */
    check_kept_from(2); /* relu1, in the block of bn1 below it */
}

static void test_bn_modes_and_counter(void **state)
{
    (void)state;
    cbq_net *net = make_net(5, 4);
    float in[4 * 64];
    fill(in, 4 * 64, 41);
    cbq_tensor_view nbt, rm;
    assert_true(cbq_net_tensor_find(net, "bn1.num_batches_tracked", &nbt));
    assert_true(cbq_net_tensor_find(net, "bn1.running_mean", &rm));
    assert_int_equal(cbq_net_forward(net, in, 4, NULL, NULL), CBQ_OK);
    assert_int_equal(cbq_net_forward(net, in, 4, NULL, NULL), CBQ_OK);
    assert_int_equal(*(int64_t *)nbt.data, 2);
    float rm_after[4];
    memcpy(rm_after, rm.data, sizeof rm_after);
    cbq_net_set_training(net, 0);
    const float *o1, *o2;
    assert_int_equal(cbq_net_forward(net, in, 4, &o1, NULL), CBQ_OK);
    float first[2];
    memcpy(first, o1, sizeof first);
    /* Eval: no statistics change and a sample's output does not depend on its batch. */
    assert_int_equal(cbq_net_forward(net, in, 1, &o2, NULL), CBQ_OK);
    assert_memory_equal(first, o2, sizeof first);
    assert_int_equal(*(int64_t *)nbt.data, 2);
    assert_memory_equal(rm_after, rm.data, sizeof rm_after);
    cbq_net_free(net);
}

static void test_errors(void **state)
{
    (void)state;
    cbq_net *net = make_net(6, 2);
    float in[3 * 64] = {0};
    cbq_error err = {0};
    assert_int_equal(cbq_net_backward(net, in, 0, 1, &err), CBQ_ERR_ARG);
    assert_int_equal(cbq_net_forward(net, in, 3, NULL, &err), CBQ_ERR_ARG);
    assert_non_null(strstr(err.msg, "1..2"));
    cbq_net_free(net);
    /* Shapes that do not chain fail at create, naming the layer. */
    cbq_layer_spec bad[] = {
        {.name = "c", .kind = CBQ_LAYER_CONV2D, .cfg.conv = {1, 4, 3, 3, 1, 1, 1, 1, 1}},
        {.name = "fc", .kind = CBQ_LAYER_LINEAR, .cfg.linear = {5, 2, 1}}};
    cbq_model_spec spec = {.input = {8, 8, 0, 1}, .n_layers = 2, .layers = bad, .n_outputs = 2};
    assert_int_not_equal(cbq_net_create(&net, &spec, 2, 1, &err), CBQ_OK);
    assert_null(net);
    assert_non_null(strstr(err.msg, "'fc'"));
}

/* Training twice from the same seed gives the same bits; 1 and 2 threads
 * give gradients that agree closely (different summation order only). */
static void train_few(cbq_net *net, int threads, size_t steps)
{
    cbq_net_set_threads(net, threads);
    cbq_optim_cfg oc = cbq_optim_defaults(CBQ_OPTIM_ADAM);
    cbq_optim *opt = NULL;
    assert_int_equal(cbq_optim_create(&opt, net, &oc, NULL), CBQ_OK);
    float in[4 * 64], tgt[8];
    cbq_loss_cfg lc = {CBQ_LOSS_MSE, 0};
    for (size_t s = 0; s < steps; s++) {
        fill(in, 4 * 64, 100 + s);
        fill(tgt, 8, 200 + s);
        assert_int_equal(cbq_train_step(net, opt, in, tgt, 4, &lc, 1.0, NULL, NULL, NULL), CBQ_OK);
    }
    cbq_optim_free(opt);
}

/* The training net (relu in place after conv/BN/linear) trains to the same
 * bits as the plain one and shares bn1's block with relu1. */
static void test_training_net_relu_in_place(void **state)
{
    (void)state;
    cbq_model_spec spec = make_spec();
    cbq_net *plain = make_net(11, 4), *lean = NULL;
    assert_int_equal(cbq_net_create_training(&lean, &spec, 4, 11, NULL), CBQ_OK);
    assert_ptr_equal(cbq_net_activation(lean, 1), cbq_net_activation(lean, 2));
    assert_ptr_not_equal(cbq_net_activation(plain, 1), cbq_net_activation(plain, 2));
    /* act2 is a leaky relu: its input (bn2) is kept */
    assert_ptr_not_equal(cbq_net_activation(lean, 5), cbq_net_activation(lean, 6));
    train_few(plain, 2, 4);
    train_few(lean, 2, 4);
    size_t n;
    float *pa = cbq_net_params(plain, &n), *pb = cbq_net_params(lean, &n);
    assert_memory_equal(pa, pb, n * sizeof *pa);
    float in[4 * 64];
    fill(in, 4 * 64, 77);
    const float *oa, *ob;
    float out_plain[8];
    assert_int_equal(cbq_net_forward(plain, in, 4, &oa, NULL), CBQ_OK);
    memcpy(out_plain, oa, sizeof out_plain);
    assert_int_equal(cbq_net_forward(lean, in, 4, &ob, NULL), CBQ_OK);
    assert_memory_equal(out_plain, ob, sizeof out_plain);
    cbq_net_free(plain);
    cbq_net_free(lean);
}

/* An optimiser step reads each element's gradient and state only, so the
 * net's threads share the block: 1, 2 and 3 threads give the same bits, and
 * one element follows PyTorch's Adam(W) formula (optim.h). */
static void optim_steps_with_threads(cbq_net *net, int threads, cbq_optim_kind kind, float *out)
{
    size_t n;
    float *p = cbq_net_params(net, &n), *g = cbq_net_grads(net, &n);
    for (size_t i = 0; i < n; i++)
        p[i] = 0.01f * (float)(i % 97) - 0.4f;
    cbq_net_set_threads(net, threads);
    cbq_optim_cfg oc = cbq_optim_defaults(kind);
    cbq_optim *opt = NULL;
    assert_int_equal(cbq_optim_create(&opt, net, &oc, NULL), CBQ_OK);
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i < n; i++)
            g[i] = 0.001f * (float)((i * 7 + (size_t)s * 13) % 101) - 0.05f;
        cbq_optim_step(opt);
    }
    memcpy(out, p, n * sizeof *out);
    cbq_optim_free(opt);
}

static void test_optim_threads(void **state)
{
    (void)state;
    cbq_net *net = make_net(5, 4);
    size_t n;
    cbq_net_params(net, &n);
    float *one = malloc(n * sizeof *one), *more = malloc(n * sizeof *more);
    const cbq_optim_kind kinds[] = {CBQ_OPTIM_ADAM, CBQ_OPTIM_ADAMW};
    for (size_t k = 0; k < 2; k++) {
        optim_steps_with_threads(net, 1, kinds[k], one);
        for (int t = 2; t <= 3; t++) {
            optim_steps_with_threads(net, t, kinds[k], more);
            assert_memory_equal(one, more, n * sizeof *one);
        }
        /* element 5, three steps by the formula in double */
        const cbq_optim_cfg c = cbq_optim_defaults(kinds[k]);
        double w = 0.01f * 5.0f - 0.4f, m = 0.0, v = 0.0;
        for (int s = 0; s < 3; s++) {
            double g = (float)(0.001f * (float)((5 * 7 + s * 13) % 101) - 0.05f);
            w *= 1.0 - c.lr * c.weight_decay;
            m = c.beta1 * m + (1.0 - c.beta1) * g;
            v = c.beta2 * v + (1.0 - c.beta2) * g * g;
            const double bc1 = 1.0 - pow(c.beta1, s + 1), bc2 = 1.0 - pow(c.beta2, s + 1);
            w -= c.lr / bc1 * m / (sqrt(v) / sqrt(bc2) + c.eps);
        }
        assert_true(fabs(one[5] - w) < 1e-6);
    }
    free(one);
    free(more);
    cbq_net_free(net);
}

static void test_reproducible(void **state)
{
    (void)state;
    cbq_net *a = make_net(9, 4), *b = make_net(9, 4), *c = make_net(9, 4);
    train_few(a, 2, 5);
    train_few(b, 2, 5);
    size_t n;
    float *pa = cbq_net_params(a, &n), *pb = cbq_net_params(b, &n);
    assert_memory_equal(pa, pb, n * sizeof *pa);
    /* The forward does not depend on the thread count at all: every output
     * element is summed in the same order (documented in docs/engine.md). */
    float fin[4 * 64], out1[8];
    fill(fin, 4 * 64, 299);
    const float *o;
    cbq_net_set_training(c, 0);
    cbq_net_set_threads(c, 1);
    assert_int_equal(cbq_net_forward(c, fin, 4, &o, NULL), CBQ_OK);
    memcpy(out1, o, sizeof out1);
    cbq_net_set_threads(c, 2);
    assert_int_equal(cbq_net_forward(c, fin, 4, &o, NULL), CBQ_OK);
    assert_memory_equal(out1, o, sizeof out1);
    cbq_net_set_training(c, 1);
    /* One forward/backward on the same weights with 1 and 2 threads. */
    float in[4 * 64], r[8];
    fill(in, 4 * 64, 300);
    fill(r, 8, 301);
    float *g1 = malloc(n * sizeof *g1);
    for (int t = 1; t <= 2; t++) {
        cbq_net_set_threads(c, t);
        cbq_net_zero_grad(c);
        assert_int_equal(cbq_net_forward(c, in, 4, NULL, NULL), CBQ_OK);
        assert_int_equal(cbq_net_backward(c, r, 0, 1, NULL), CBQ_OK);
        float *g = cbq_net_grads(c, &n);
        if (t == 1) {
            memcpy(g1, g, n * sizeof *g1);
            continue;
        }
        double md = 0.0, mg = 0.0;
        for (size_t i = 0; i < n; i++) {
            md = fmax(md, fabs((double)g[i] - g1[i]));
            mg = fmax(mg, fabs((double)g1[i]));
        }
        assert_true(md <= 1e-5 * mg);
    }
    free(g1);
    cbq_net_free(a);
    cbq_net_free(b);
    cbq_net_free(c);
}

/* Synthetic task: each 8x8 input is noise times an amplitude a in [0.5, 2]
 * plus an offset b in [-1, 1]; the targets are (a, b). The best constant
 * predictor has MSE = mean target variance = (1.5^2/12 + 2^2/12)/2 = 0.260.
 * After 400 Adam steps the held-out MSE must be below 0.03, a value no
 * untrained (or constant) model reaches. */
static void make_batch(float *in, float *tgt, size_t n, cbq_rng *rng)
{
    for (size_t s = 0; s < n; s++) {
        double a = 0.5 + 1.5 * cbq_rng_uniform(rng), b = 2.0 * cbq_rng_uniform(rng) - 1.0;
        for (size_t i = 0; i < 64; i++)
            in[s * 64 + i] = (float)(a * cbq_rng_normal(rng) + b);
        tgt[2 * s] = (float)a;
        tgt[2 * s + 1] = (float)b;
    }
}

static void test_convergence(void **state)
{
    (void)state;
    const size_t n = 32;
    cbq_net *net = make_net(10, n);
    cbq_net_set_threads(net, 1);
    cbq_optim_cfg oc = cbq_optim_defaults(CBQ_OPTIM_ADAM);
    oc.lr = 1e-2;
    cbq_optim *opt = NULL;
    assert_int_equal(cbq_optim_create(&opt, net, &oc, NULL), CBQ_OK);
    cbq_rng rng;
    cbq_rng_seed(&rng, 123);
    float in[32 * 64], tgt[64];
    cbq_loss_cfg lc = {CBQ_LOSS_MSE, 0};
    const size_t steps = 400;
    for (size_t s = 0; s < steps; s++) {
        cbq_optim_set_lr(opt, cbq_lr_cosine(s, steps, 20, 1e-2, 1e-4));
        make_batch(in, tgt, n, &rng);
        assert_int_equal(cbq_train_step(net, opt, in, tgt, n, &lc, 5.0, NULL, NULL, NULL), CBQ_OK);
    }
    cbq_net_set_training(net, 0);
    double total = 0.0;
    for (int rep = 0; rep < 4; rep++) {
        const float *out;
        make_batch(in, tgt, n, &rng);
        assert_int_equal(cbq_net_forward(net, in, n, &out, NULL), CBQ_OK);
        total += cbq_loss(&lc, out, tgt, n, 2, NULL);
    }
    print_message("held-out MSE after training: %.4f (constant predictor 0.260)\n", total / 4);
    assert_true(total / 4 < 0.03);
    cbq_optim_free(opt);
    cbq_net_free(net);
}

static void test_lr_cosine(void **state)
{
    (void)state;
    assert_true(fabs(cbq_lr_cosine(0, 100, 10, 1.0, 0.0) - 0.1) < 1e-12);
    assert_true(fabs(cbq_lr_cosine(9, 100, 10, 1.0, 0.0) - 1.0) < 1e-12);
    assert_true(fabs(cbq_lr_cosine(10, 100, 10, 1.0, 0.0) - 1.0) < 1e-12);
    /* Halfway through the cosine part: (base + min) / 2. */
    assert_true(fabs(cbq_lr_cosine(55, 100, 10, 1.0, 0.2) - 0.6) < 1e-12);
    assert_true(fabs(cbq_lr_cosine(100, 100, 10, 1.0, 0.2) - 0.2) < 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_dict_names), cmocka_unit_test(test_default_init),
        cmocka_unit_test(test_net_gradients_fd), cmocka_unit_test(test_partial_backward),
        cmocka_unit_test(test_bn_modes_and_counter), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_reproducible),     cmocka_unit_test(test_convergence),
        cmocka_unit_test(test_optim_threads),
        cmocka_unit_test(test_training_net_relu_in_place),
        cmocka_unit_test(test_lr_cosine),
        cmocka_unit_test(test_keep_activations_from),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
