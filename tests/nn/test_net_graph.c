/* test_net_graph.c - networks whose layers name their inputs (net.c,
 * net_run.c over graphs; model.json "inputs"): whole-net gradients (input
 * and every parameter) of a residual block + squeeze-excitation + concat
 * net against finite differences, gradients summed where a tensor is read
 * several times (the input, a block output, a dead branch), partial
 * backward to a residual add, the training net's shared-memory plan against
 * the plain one, threads, the model.json round trip of "inputs" and the
 * errors for bad inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/attrib.h"
#include "cbctiq/model_json.h"
#include "cbctiq/net.h"
#include "cbctiq/optim.h"
#include "cbctiq/train.h"

#define CONV(cin, cout, k, with_bias) {.in_channels = cin, .out_channels = cout, .kernel_h = k, \
    .kernel_w = k, .stride_h = 1, .stride_w = 1, .pad_h = (k) / 2, .pad_w = (k) / 2, .bias = with_bias}

enum { STEM_RELU = 2, BLOCK_BN2 = 6, BLOCK_ADD = 7, BLOCK_RELU = 8, SE_FC2 = 12, N_OUT = 2 };

/* stem: conv bn relu; residual block; squeeze-excitation scale; a probe
 * nobody reads; concat of the scaled block, the stem and the input; head. */
static cbq_layer_spec layers[] = {
    {.name = "stem.conv", .kind = CBQ_LAYER_CONV2D, .cfg.conv = CONV(1, 3, 3, 1)},
    {.name = "stem.bn", .kind = CBQ_LAYER_BATCHNORM2D, .cfg.bn = {3, 1e-5, 0.1}},
    {.name = "stem.relu", .kind = CBQ_LAYER_RELU},
    {.name = "block.conv1", .kind = CBQ_LAYER_CONV2D, .cfg.conv = CONV(3, 3, 3, 0)},
    {.name = "block.bn1", .kind = CBQ_LAYER_BATCHNORM2D, .cfg.bn = {3, 1e-5, 0.1}},
    {.name = "block.conv2", .kind = CBQ_LAYER_CONV2D, .cfg.conv = CONV(3, 3, 3, 0)},
    {.name = "block.bn2", .kind = CBQ_LAYER_BATCHNORM2D, .cfg.bn = {3, 1e-5, 0.1}},
    {.name = "block.add", .kind = CBQ_LAYER_ADD, .n_inputs = 2, .inputs = {BLOCK_BN2, STEM_RELU}},
    {.name = "block.relu", .kind = CBQ_LAYER_LEAKY_RELU, .cfg.leaky = {0.1}},
    {.name = "se.pool", .kind = CBQ_LAYER_GLOBAL_AVGPOOL},
    {.name = "se.fc1", .kind = CBQ_LAYER_LINEAR, .cfg.linear = {3, 2, 1}},
    {.name = "se.act", .kind = CBQ_LAYER_LEAKY_RELU, .cfg.leaky = {0.2}},
    {.name = "se.fc2", .kind = CBQ_LAYER_LINEAR, .cfg.linear = {2, 3, 1}},
    {.name = "se.scale", .kind = CBQ_LAYER_MUL, .n_inputs = 2, .inputs = {BLOCK_RELU, SE_FC2}},
    {.name = "probe", .kind = CBQ_LAYER_CONV2D, .cfg.conv = CONV(3, 2, 1, 1), .n_inputs = 1,
     .inputs = {BLOCK_ADD}},
    {.name = "cat", .kind = CBQ_LAYER_CONCAT, .n_inputs = 3, .inputs = {13, STEM_RELU, -1}},
    {.name = "fuse", .kind = CBQ_LAYER_CONV2D, .cfg.conv = CONV(7, 4, 1, 1)},
    {.name = "gap", .kind = CBQ_LAYER_GLOBAL_AVGPOOL},
    {.name = "head", .kind = CBQ_LAYER_LINEAR, .cfg.linear = {4, N_OUT, 1}},
};
enum { N_LAYERS = sizeof layers / sizeof layers[0], H = 6, W = 5, HW = H * W };

static cbq_model_spec make_spec(void)
{
    cbq_model_spec s = {.arch = "custom", .input = {H, W, -1000, 1000}, .n_layers = N_LAYERS,
                        .layers = layers, .n_outputs = N_OUT, .outputs = {"a", "b"},
                        .target_layer = "block.add"};
    return s;
}

static cbq_net *make_net(uint64_t seed, size_t max_batch, int training_net)
{
    cbq_model_spec spec = make_spec();
    cbq_net *net = NULL;
    cbq_error err = {0};
    int rc = training_net ? cbq_net_create_training(&net, &spec, max_batch, seed, &err)
                          : cbq_net_create(&net, &spec, max_batch, seed, &err);
    if (rc != CBQ_OK)
        fail_msg("%s", err.msg);
    cbq_net_set_threads(net, 1);
    return net;
}

static void fill(float *x, size_t count, uint64_t seed)
{
    cbq_rng rng;
    cbq_rng_seed(&rng, seed);
    for (size_t i = 0; i < count; i++)
        x[i] = (float)cbq_rng_normal(&rng);
}

static double net_objective(cbq_net *net, const float *in, size_t n, const float *r)
{
    const float *out;
    assert_int_equal(cbq_net_forward(net, in, n, &out, NULL), CBQ_OK);
    double f = 0.0;
    for (size_t i = 0; i < n * N_OUT; i++)
        f += (double)out[i] * r[i];
    return f;
}

/* Input and every parameter against central differences in training mode
 * (batch statistics), |fd - g| <= 3e-3 + 2e-2 |g| (as test_net.c). */
static void test_graph_gradients_fd(void **state)
{
    (void)state;
    enum { N = 3 };
    cbq_net *net = make_net(3, N, 0);
    float in[N * HW], r[N * N_OUT], din[N * HW];
    fill(in, N * HW, 21);
    fill(r, N * N_OUT, 22);
    net_objective(net, in, N, r);
    cbq_net_zero_grad(net);
    assert_int_equal(cbq_net_backward(net, r, 0, 1, NULL), CBQ_OK);
    memcpy(din, cbq_net_input_grad(net), sizeof din);
    size_t count;
    float *p = cbq_net_params(net, &count), *g = cbq_net_grads(net, &count);
    float *grad = malloc(count * sizeof *grad);
    memcpy(grad, g, count * sizeof *grad);
    const float eps = 1e-3f;
    size_t bad = 0;
    double largest = 0.0;
    for (size_t i = 0; i < count + N * HW; i++) {
        float *x = i < count ? &p[i] : &in[i - count];
        double an = i < count ? grad[i] : din[i - count];
        float keep = *x;
        *x = keep + eps;
        double fp = net_objective(net, in, N, r);
        *x = keep - eps;
        double fm = net_objective(net, in, N, r);
        *x = keep;
        double fd = (fp - fm) / (2.0 * eps);
        largest = fmax(largest, fabs(an));
        if (fabs(fd - an) > 3e-3 + 2e-2 * fabs(an)) {
            print_message("gradient %zu: fd %.6g, backward %.6g\n", i, fd, an);
            bad++;
        }
    }
    assert_true(bad <= 1);
    assert_true(largest > 1e-2);
    /* the probe feeds nothing: its gradients are exactly 0 */
    cbq_tensor_view v;
    assert_true(cbq_net_tensor_find(net, "probe.weight", &v));
    for (size_t i = 0; i < v.numel; i++)
        assert_true(v.grad[i] == 0.0f);
    free(grad);
    cbq_net_free(net);
}

/* Backward stopped at the residual add (as Grad-CAM runs it) gives the same
 * dLoss/d(add) without parameter gradients as with them (the oracle checks
 * it against PyTorch's full backward), leaves parameter gradients alone
 * without param_grads, and with them touches only layers after the add. */
static void test_partial_backward_at_add(void **state)
{
    (void)state;
    enum { N = 2 };
    cbq_net *net = make_net(4, N, 0);
    float in[N * HW], r[N * N_OUT];
    fill(in, N * HW, 31);
    fill(r, N * N_OUT, 32);
    cbq_net_set_training(net, 0);
    assert_int_equal(cbq_net_forward(net, in, N, NULL, NULL), CBQ_OK);
    cbq_net_zero_grad(net);
    assert_int_equal(cbq_net_backward(net, r, BLOCK_ADD, 1, NULL), CBQ_OK);
    size_t count = N * 3 * HW;
    float full[N * 3 * HW];
    memcpy(full, cbq_net_activation_grad(net, BLOCK_ADD), sizeof full);
    cbq_net_zero_grad(net);
    assert_int_equal(cbq_net_backward(net, r, BLOCK_ADD, 0, NULL), CBQ_OK);
    assert_memory_equal(full, cbq_net_activation_grad(net, BLOCK_ADD), count * sizeof *full);
    size_t pc;
    const float *g = cbq_net_grads(net, &pc);
    for (size_t i = 0; i < pc; i++)
        assert_true(g[i] == 0.0f);
    assert_int_equal(cbq_net_backward(net, r, BLOCK_ADD, 1, NULL), CBQ_OK);
    cbq_tensor_view v;
    assert_true(cbq_net_tensor_find(net, "block.conv2.weight", &v));
    for (size_t i = 0; i < v.numel; i++)
        assert_true(v.grad[i] == 0.0f);
    float any = 0.0f;
    assert_true(cbq_net_tensor_find(net, "se.fc1.weight", &v));
    for (size_t i = 0; i < v.numel; i++)
        any = fmaxf(any, fabsf(v.grad[i]));
    assert_true(any > 0.0f);
    cbq_net_free(net);
}

/* The training net packs gradients into activations backward has passed;
 * it must give the very same bits as the plain net, step after step, and
 * 2 threads the same values within 1e-5. */
static void test_training_plan_and_threads(void **state)
{
    (void)state;
    enum { N = 4 };
    cbq_net *plain = make_net(9, N, 0), *lean = make_net(9, N, 1), *two = make_net(9, N, 0);
    cbq_net_set_threads(two, 2);
    /* stem.relu overwrites stem.bn (read by it alone); block.conv1 keeps
     * its own block (its input stem.relu is read three times) */
    assert_ptr_equal(cbq_net_activation(lean, 1), cbq_net_activation(lean, 2));
    assert_ptr_not_equal(cbq_net_activation(plain, 1), cbq_net_activation(plain, 2));
    float in[N * HW], r[N * N_OUT];
    for (int step = 0; step < 3; step++) {
        fill(in, N * HW, 40 + (uint64_t)step);
        fill(r, N * N_OUT, 50 + (uint64_t)step);
        cbq_net *nets[3] = {plain, lean, two};
        for (int k = 0; k < 3; k++) {
            assert_int_equal(cbq_net_forward(nets[k], in, N, NULL, NULL), CBQ_OK);
            cbq_net_zero_grad(nets[k]);
            assert_int_equal(cbq_net_backward_ex(nets[k], r, 0, 1, 0, NULL), CBQ_OK);
        }
        size_t n;
        const float *ga = cbq_net_grads(plain, &n), *gb = cbq_net_grads(lean, &n),
                    *gc = cbq_net_grads(two, &n);
        assert_memory_equal(ga, gb, n * sizeof *ga);
        double scale = 0.0, diff = 0.0;
        for (size_t i = 0; i < n; i++) {
            scale = fmax(scale, fabs(ga[i]));
            diff = fmax(diff, fabs(ga[i] - gc[i]));
        }
        assert_true(diff <= 1e-5 * scale);
    }
    cbq_net_free(plain);
    cbq_net_free(lean);
    cbq_net_free(two);
}

/* The validator refuses the layers with this message; the engine too
 * unless only model.json's rules are broken (a name, a repeated addend). */
static int expect_error(cbq_layer_spec *copy, const char *fragment, int engine_refuses)
{
    cbq_model_spec spec = make_spec();
    spec.layers = copy;
    cbq_error err = {0};
    int rc = cbq_model_spec_validate(&spec, "model.json", &err);
    if (rc == CBQ_OK || !strstr(err.msg, fragment)) {
        print_message("expected '%s', got: %s\n", fragment, rc == CBQ_OK ? "(accepted)" : err.msg);
        return 0;
    }
    cbq_net *net = NULL;
    rc = cbq_net_create(&net, &spec, 1, 1, &err);
    cbq_net_free(net);
    return (rc != CBQ_OK) == engine_refuses;
}

static void test_bad_inputs(void **state)
{
    (void)state;
    cbq_layer_spec copy[N_LAYERS];
    memcpy(copy, layers, sizeof copy);
    copy[BLOCK_ADD].inputs[1] = BLOCK_BN2;
    assert_true(expect_error(copy, "layer \"block.add\" (add): \"block.bn2\" is named twice", 0));
    memcpy(copy, layers, sizeof copy);
    copy[BLOCK_ADD].inputs[1] = BLOCK_ADD;
    assert_true(expect_error(copy, "input 1 is layer index 7; expected an earlier layer", 1));
    memcpy(copy, layers, sizeof copy);
    copy[BLOCK_ADD].inputs[1] = -1; /* the input has 1 channel */
    assert_true(expect_error(copy, "layer 'block.add' (add): input 1 is 1x6x5 but input 0 is 3x6x5", 1));
    memcpy(copy, layers, sizeof copy);
    copy[BLOCK_RELU].n_inputs = 2;
    copy[BLOCK_RELU].inputs[0] = BLOCK_ADD;
    copy[BLOCK_RELU].inputs[1] = STEM_RELU;
    assert_true(expect_error(copy, "layer 'block.relu' (leaky_relu): takes one input, 2 are named", 1));
    memcpy(copy, layers, sizeof copy);
    copy[BLOCK_ADD].n_inputs = 1;
    assert_true(expect_error(copy, "layer 'block.add' (add): expected 2 to 64 inputs, got 1", 1));
    memcpy(copy, layers, sizeof copy);
    copy[SE_FC2 + 1].inputs[1] = 10; /* se.fc1: 2 channels against 3 */
    assert_true(expect_error(copy, "layer 'se.scale' (mul): inputs 3x6x5 and 2x1x1 do not match", 1));
    memcpy(copy, layers, sizeof copy);
    snprintf(copy[0].name, sizeof copy[0].name, "input");
    assert_true(expect_error(copy, "\"input\" names the network's input", 0));
    /* a target after the global pool only (se.fc2) has no grid; the mul has */
    cbq_model_spec spec = make_spec();
    snprintf(spec.target_layer, sizeof spec.target_layer, "se.fc2");
    cbq_error err = {0};
    assert_int_equal(cbq_model_spec_validate(&spec, "m", &err), CBQ_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "target_layer"));
    snprintf(spec.target_layer, sizeof spec.target_layer, "se.scale");
    assert_int_equal(cbq_model_spec_validate(&spec, "m", &err), CBQ_OK);
}

/* "inputs" is written where a layer does not read the previous one, as
 * names ("input" for the network's), and reads back to the same spec. */
static void test_model_json_inputs(void **state)
{
    (void)state;
    cbq_model_spec spec = make_spec(), back;
    cbq_error err = {0};
    char *text = cbq_model_json_format(&spec, &err);
    assert_non_null(text);
    assert_non_null(strstr(text, "{\"name\":\"block.add\",\"type\":\"add\",\"inputs\":[\"block.bn2\","
                                 "\"stem.relu\"]}"));
    assert_non_null(strstr(text, "\"name\":\"cat\",\"type\":\"concat\",\"inputs\":[\"se.scale\","
                                 "\"stem.relu\",\"input\"]}"));
    assert_non_null(strstr(text, "{\"name\":\"block.relu\",\"type\":\"leaky_relu\",\"negative"));
    assert_non_null(strstr(text, "{\"name\":\"stem.conv\",\"type\":\"conv2d\",\"in_channels\""));
    assert_int_equal(cbq_model_json_parse(&back, text, strlen(text), "model.json", &err), CBQ_OK);
    for (size_t i = 0; i < N_LAYERS; i++) {
        assert_int_equal(cbq_model_spec_n_inputs(&back, i), cbq_model_spec_n_inputs(&spec, i));
        for (size_t j = 0; j < cbq_model_spec_n_inputs(&spec, i); j++)
            assert_int_equal(cbq_model_spec_input(&back, i, j), cbq_model_spec_input(&spec, i, j));
    }
    char *again = cbq_model_json_format(&back, &err);
    assert_string_equal(again, text);
    free(again);
    cbq_model_spec_free(&back);

    /* the parser's own messages, naming the file, the path and the name */
    const struct {
        const char *from, *to, *msg;
    } bad[] = {
        {"\"inputs\":[\"block.bn2\",\"stem.relu\"]", "\"inputs\":[\"block.bn2\",\"stem.reluu\"]",
         "model.json: layers[7].inputs[1]: layer \"block.add\": no layer is named \"stem.reluu\""},
        {"\"inputs\":[\"block.bn2\",\"stem.relu\"]", "\"inputs\":[\"block.bn2\",\"fuse\"]",
         "layers[7].inputs[1]: layer \"block.add\": \"fuse\" is layers[16], after it"},
        {"\"inputs\":[\"block.bn2\",\"stem.relu\"]", "\"inputs\":[\"block.add\",\"stem.relu\"]",
         "layers[7].inputs[0]: layer \"block.add\" cannot read its own output"},
        {"\"inputs\":[\"block.bn2\",\"stem.relu\"]", "\"inputs\":[\"block.bn2\",\"block.bn2\"]",
         "layers[7].inputs: layer \"block.add\" (add): \"block.bn2\" is named twice"},
        {"\"inputs\":[\"block.bn2\",\"stem.relu\"]", "\"inputs\":\"block.bn2\"",
         "layers[7].inputs: layer \"block.add\": expected an array of 1 to 64 names"},
        {"\"inputs\":[\"block.bn2\",\"stem.relu\"]", "\"inputs\":[]",
         "layers[7].inputs: layer \"block.add\": expected an array of 1 to 64 names"},
        {"\"inputs\":[\"block.bn2\",\"stem.relu\"]", "\"inputs\":[\"block.bn2\",7]",
         "layers[7].inputs[1]: layer \"block.add\": expected the name of an earlier layer"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        const char *at = strstr(text, bad[k].from);
        assert_non_null(at);
        size_t head = (size_t)(at - text), len = strlen(text) + strlen(bad[k].to) + 1;
        char *edited = malloc(len);
        snprintf(edited, len, "%.*s%s%s", (int)head, text, bad[k].to, at + strlen(bad[k].from));
        int rc = cbq_model_json_parse(&back, edited, strlen(edited), "model.json", &err);
        if (rc == CBQ_OK || !strstr(err.msg, bad[k].msg))
            fail_msg("case %zu: expected '%s', got '%s'", k, bad[k].msg, rc == CBQ_OK ? "ok" : err.msg);
        free(edited);
    }
    free(text);
}

/* Training steps through the graph (the training net's plan): a fixed
 * batch of random targets is learnt, the loss falling to a fifth. */
static void test_training_learns(void **state)
{
    (void)state;
    enum { N = 8 };
    cbq_net *net = make_net(12, N, 1);
    cbq_optim_cfg oc = cbq_optim_defaults(CBQ_OPTIM_ADAM);
    oc.lr = 1e-2;
    cbq_optim *opt = NULL;
    assert_int_equal(cbq_optim_create(&opt, net, &oc, NULL), CBQ_OK);
    float in[N * HW], tgt[N * N_OUT];
    fill(in, N * HW, 60);
    fill(tgt, N * N_OUT, 61);
    cbq_loss_cfg lc = {CBQ_LOSS_MSE, 0};
    double first = 0.0, loss = 0.0;
    for (int s = 0; s < 150; s++) {
        assert_int_equal(cbq_train_step(net, opt, in, tgt, N, &lc, 0.0, &loss, NULL, NULL), CBQ_OK);
        if (s == 0)
            first = loss;
    }
    print_message("graph training: loss %.4f -> %.4f\n", first, loss);
    assert_true(loss < 0.2 * first);
    cbq_optim_free(opt);
    cbq_net_free(net);
}

/* The cascading randomisation goes by layer order over a graph: head,
 * then fuse, then the probe (a branch nobody reads still has weights). */
static void test_randomise_by_layer_order(void **state)
{
    (void)state;
    cbq_net *net = make_net(13, 1, 0);
    assert_int_equal(cbq_randomise_n_steps(net), 11);
    assert_string_equal(cbq_randomise_step_layer(net, 1), "head");
    assert_string_equal(cbq_randomise_step_layer(net, 2), "fuse");
    assert_string_equal(cbq_randomise_step_layer(net, 3), "probe");
    assert_string_equal(cbq_randomise_step_layer(net, 11), "stem.conv");
    cbq_tensor_view head, fuse, probe;
    assert_true(cbq_net_tensor_find(net, "head.weight", &head));
    assert_true(cbq_net_tensor_find(net, "fuse.weight", &fuse));
    assert_true(cbq_net_tensor_find(net, "probe.weight", &probe));
    float h0 = ((float *)head.data)[0], f0 = ((float *)fuse.data)[0], p0 = ((float *)probe.data)[0];
    assert_int_equal(cbq_randomise_top(net, 2, 99, NULL), CBQ_OK);
    assert_true(((float *)head.data)[0] != h0);
    assert_true(((float *)fuse.data)[0] != f0);
    assert_true(((float *)probe.data)[0] == p0);
    cbq_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_gradients_fd),
        cmocka_unit_test(test_partial_backward_at_add),
        cmocka_unit_test(test_training_plan_and_threads),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_model_json_inputs),
        cmocka_unit_test(test_training_learns),
        cmocka_unit_test(test_randomise_by_layer_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
