/* test_layer_table.c - the layer table is complete: every layer kind of
 * cbctiq/layer_kinds.def has a name that parses back, hyper-parameters that
 * model.json writes and reads back unchanged, a shape and a cost, and an
 * engine row that builds a network whose trainable tensors hold exactly the
 * parameters the cost counts, runs forward and backward in both modes, and
 * gives input gradients that agree with finite differences. A new kind fails
 * here until it has an example below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/layer_table.h"
#include "cbctiq/model_cost.h"
#include "cbctiq/model_json.h"
#include "cbctiq/net.h"
#include "cbctiq/rng.h"

/* One example layer per kind, for an input of 3 x 8 x 6 (no name: none yet). */
static const cbq_layer_spec examples[CBQ_LAYER_KIND_COUNT] = {
    [CBQ_LAYER_CONV2D] = {.name = "ex", .cfg.conv = {.in_channels = 3, .out_channels = 6,
                                                     .kernel_h = 3, .kernel_w = 2, .stride_h = 1,
                                                     .stride_w = 2, .pad_h = 1, .pad_w = 1, .bias = 1,
                                                     .dilation_h = 2, .dilation_w = 1, .groups = 3}},
    [CBQ_LAYER_BATCHNORM2D] = {.name = "ex", .cfg.bn = {.channels = 3, .eps = 1e-3, .momentum = 0.2}},
    [CBQ_LAYER_RELU] = {.name = "ex"},
    [CBQ_LAYER_LEAKY_RELU] = {.name = "ex", .cfg.leaky = {.negative_slope = 0.2}},
    [CBQ_LAYER_MAXPOOL2D] = {.name = "ex", .cfg.pool = {.kernel_h = 3, .kernel_w = 3, .stride_h = 2,
                                                        .stride_w = 1, .pad_h = 1, .pad_w = 0,
                                                        .ceil_mode = 1}},
    [CBQ_LAYER_AVGPOOL2D] = {.name = "ex", .cfg.pool = {.kernel_h = 3, .kernel_w = 3, .stride_h = 1,
                                                        .stride_w = 1, .pad_h = 1, .pad_w = 1}},
    [CBQ_LAYER_GLOBAL_AVGPOOL] = {.name = "ex"},
    [CBQ_LAYER_DROPOUT] = {.name = "ex", .cfg.dropout = {.p = 0.3}},
    [CBQ_LAYER_LINEAR] = {.name = "ex", .cfg.linear = {.in_features = 3 * 8 * 6, .out_features = 5,
                                                       .bias = 0}},
    [CBQ_LAYER_IDENTITY] = {.name = "ex"},
    [CBQ_LAYER_FLATTEN] = {.name = "ex"},
    [CBQ_LAYER_SIGMOID] = {.name = "ex"},
    [CBQ_LAYER_SILU] = {.name = "ex"},
    [CBQ_LAYER_ADAPTIVE_AVGPOOL2D] = {.name = "ex", .cfg.adaptive = {.output_h = 1, .output_w = 1}},
    /* multi-input kinds read "pre" (1 channel for them) and the input */
    [CBQ_LAYER_ADD] = {.name = "ex", .n_inputs = 2, .inputs = {0, -1}},
    [CBQ_LAYER_CONCAT] = {.name = "ex", .n_inputs = 3, .inputs = {-1, 0, -1}},
    [CBQ_LAYER_MUL] = {.name = "ex", .n_inputs = 2, .inputs = {0, -1}},
};

enum { MAX_LAYERS = 4, BATCH = 2 };

/* pre: conv 1 -> 3 (3 x 8 x 6); the example "ex"; a global pool unless the
 * example flattens; head: linear to 2 outputs. */
static void make_spec(cbq_model_spec *s, cbq_layer_spec *layers, cbq_layer_kind kind)
{
    memset(s, 0, sizeof *s);
    snprintf(s->arch, sizeof s->arch, "custom");
    s->input = (cbq_input_spec){.height = 8, .width = 6, .hu_min = -1000, .hu_max = 1000};
    s->n_outputs = 2;
    snprintf(s->outputs[0], CBQ_NAME_MAX, "a");
    snprintf(s->outputs[1], CBQ_NAME_MAX, "b");
    snprintf(s->target_layer, sizeof s->target_layer, "pre");
    s->layers = layers;
    memset(layers, 0, MAX_LAYERS * sizeof *layers);
    layers[0] = (cbq_layer_spec){.name = "pre", .kind = CBQ_LAYER_CONV2D,
                                 .cfg.conv = {1, 3, 3, 3, 1, 1, 1, 1, 1}};
    if (cbq_layer_kind_info_of(kind)->max_inputs > 1)
        layers[0].cfg.conv.out_channels = 1;
    layers[1] = examples[kind];
    layers[1].kind = kind;
    s->n_layers = 2;
    if (!cbq_layer_kind_info_of(kind)->flattens)
        layers[s->n_layers++] = (cbq_layer_spec){.name = "gap", .kind = CBQ_LAYER_GLOBAL_AVGPOOL};
    size_t shapes[MAX_LAYERS][3];
    cbq_error err = {0};
    assert_int_equal(cbq_model_spec_shapes(s, shapes, &err), CBQ_OK);
    const size_t *last = shapes[s->n_layers - 1];
    layers[s->n_layers++] = (cbq_layer_spec){
        .name = "head", .kind = CBQ_LAYER_LINEAR,
        .cfg.linear = {.in_features = (int)(last[0] * last[1] * last[2]), .out_features = 2, .bias = 1}};
}

static int hyper_equal(const cbq_layer_spec *a, const cbq_layer_spec *b, const cbq_hyper_param *h)
{
    const char *pa = (const char *)a, *pb = (const char *)b;
    if (h->type == CBQ_HYPER_NUMBER)
        return *(const double *)(pa + h->offset) == *(const double *)(pb + h->offset);
    int same = *(const int *)(pa + h->offset) == *(const int *)(pb + h->offset);
    if (h->type == CBQ_HYPER_PAIR)
        same = same && *(const int *)(pa + h->offset_w) == *(const int *)(pb + h->offset_w);
    return same;
}

static void test_rows_are_complete(void **state)
{
    (void)state;
    for (int k = 0; k < CBQ_LAYER_KIND_COUNT; k++) {
        const cbq_layer_kind_info *info = cbq_layer_kind_info_of((cbq_layer_kind)k);
        assert_non_null(info);
        assert_non_null(info->name);
        assert_true(info->shape != NULL || info->shape_n != NULL);
        assert_non_null(info->forward_flops);
        assert_true(info->n_hyper <= CBQ_HYPER_MAX);
        assert_true(info->n_hyper == 0 || info->hyper != NULL);
        cbq_layer_kind parsed;
        assert_true(cbq_layer_kind_parse(info->name, &parsed));
        assert_int_equal(parsed, k);
        assert_string_equal(cbq_layer_kind_name((cbq_layer_kind)k), info->name);
        for (size_t i = 0; i < info->n_hyper; i++) {
            const cbq_hyper_param *h = &info->hyper[i];
            assert_true(strcmp(h->key, "name") != 0 && strcmp(h->key, "type") != 0);
            assert_true(h->lo <= h->hi);
            for (size_t j = 0; j < i; j++)
                assert_true(strcmp(info->hyper[j].key, h->key) != 0);
            if (h->default_from) { /* an earlier pair of the same row */
                size_t j = 0;
                while (j < i && strcmp(info->hyper[j].key, h->default_from) != 0)
                    j++;
                assert_true(j < i && info->hyper[j].type == CBQ_HYPER_PAIR);
            }
        }
        print_message("%-15s %zu hyper-parameters%s%s\n", info->name, info->n_hyper,
                      info->param_count ? ", trainable" : "", info->flattens ? ", flattens" : "");
    }
    assert_null(cbq_layer_kind_info_of(CBQ_LAYER_KIND_COUNT));
    assert_null(cbq_layer_kind_name(CBQ_LAYER_KIND_COUNT));
}

static void test_every_kind_has_an_example(void **state)
{
    (void)state;
    for (int k = 0; k < CBQ_LAYER_KIND_COUNT; k++) {
        if (strcmp(examples[k].name, "ex") != 0)
            print_message("layer kind %s has no example in test_layer_table.c\n",
                          cbq_layer_kind_name((cbq_layer_kind)k));
        assert_string_equal(examples[k].name, "ex");
    }
}

/* An omit_default key (layer_table.h) at its default: 0 below lo counts. */
static int at_default(const cbq_layer_spec *l, const cbq_hyper_param *h)
{
    const char *p = (const char *)l;
    if (h->type == CBQ_HYPER_NUMBER)
        return *(const double *)(p + h->offset) == h->def;
    int v = *(const int *)(p + h->offset);
    int same = v == (int)h->def || (v == 0 && h->lo > 0);
    if (h->type == CBQ_HYPER_PAIR) {
        int vw = *(const int *)(p + h->offset_w);
        same = same && (vw == (int)h->def || (vw == 0 && h->lo > 0));
    }
    return same;
}

/* model.json: the writer emits every key of the row (an omit_default key
 * exactly when it is not at its default), the reader gives back the same
 * values, and writing again gives the same bytes. */
static void test_model_json_round_trip(void **state)
{
    (void)state;
    for (int k = 0; k < CBQ_LAYER_KIND_COUNT; k++) {
        cbq_layer_spec layers[MAX_LAYERS];
        cbq_model_spec spec, back;
        cbq_error err = {0};
        make_spec(&spec, layers, (cbq_layer_kind)k);
        char *text = cbq_model_json_format(&spec, &err);
        assert_non_null(text);
        const cbq_layer_kind_info *info = cbq_layer_kind_info_of((cbq_layer_kind)k);
        char type[96];
        snprintf(type, sizeof type, "{\"name\":\"ex\",\"type\":\"%s\"", info->name);
        const char *line = strstr(text, type);
        assert_non_null(line);
        for (size_t i = 0; i < info->n_hyper; i++) {
            char key[64];
            snprintf(key, sizeof key, "\"%s\":", info->hyper[i].key);
            const char *at = strstr(line, key);
            int written = at && at < strchr(line, '}');
            int omitted = info->hyper[i].omit_default && at_default(&layers[1], &info->hyper[i]);
            assert_int_equal(written, !omitted);
        }
        assert_int_equal(cbq_model_json_parse(&back, text, strlen(text), "model.json", &err), CBQ_OK);
        assert_int_equal(back.n_layers, spec.n_layers);
        assert_int_equal(back.layers[1].kind, k);
        for (size_t i = 0; i < info->n_hyper; i++)
            assert_true(hyper_equal(&back.layers[1], &spec.layers[1], &info->hyper[i]) ||
                        (info->hyper[i].omit_default && at_default(&back.layers[1], &info->hyper[i])));
        char *again = cbq_model_json_format(&back, &err);
        assert_non_null(again);
        assert_string_equal(again, text);
        free(again);
        free(text);
        cbq_model_spec_free(&back);
    }
}

static double out_dot(cbq_net *net, const float *x, const float *dout)
{
    const float *y = NULL;
    cbq_error err = {0};
    assert_int_equal(cbq_net_forward(net, x, BATCH, &y, &err), CBQ_OK);
    double s = 0.0;
    for (size_t i = 0; i < BATCH * 2; i++)
        s += (double)y[i] * dout[i];
    return s;
}

/* The engine's row: tensors hold the counted parameters, forward and
 * backward run in both modes, and the input gradient (eval mode) matches
 * central differences. */
static void test_every_kind_builds_and_runs(void **state)
{
    (void)state;
    for (int k = 0; k < CBQ_LAYER_KIND_COUNT; k++) {
        cbq_layer_spec layers[MAX_LAYERS];
        cbq_model_spec spec;
        cbq_error err = {0};
        make_spec(&spec, layers, (cbq_layer_kind)k);
        const cbq_layer_kind_info *info = cbq_layer_kind_info_of((cbq_layer_kind)k);
        size_t shapes[MAX_LAYERS][3];
        assert_int_equal(cbq_model_spec_shapes(&spec, shapes, &err), CBQ_OK);
        double flops = cbq_layer_forward_flops(&layers[1], shapes[0], shapes[1]);
        assert_true(isfinite(flops) && flops >= 0.0);
        assert_true((cbq_layer_param_count(&layers[1]) > 0) == (info->param_count != NULL));

        cbq_net *net = NULL;
        assert_int_equal(cbq_net_create(&net, &spec, BATCH, 5, &err), CBQ_OK);
        cbq_net_set_threads(net, 1);
        size_t trainable = 0;
        for (size_t t = 0; t < cbq_net_tensor_count(net); t++) {
            cbq_tensor_view v;
            cbq_net_tensor(net, t, &v);
            if (strncmp(v.name, "ex.", 3) == 0 && v.trainable)
                trainable += v.numel;
        }
        assert_int_equal(trainable, cbq_layer_param_count(&layers[1]));

        float x[BATCH * 8 * 6], dout[BATCH * 2];
        cbq_rng rng;
        cbq_rng_seed(&rng, 11);
        for (size_t i = 0; i < BATCH * 8 * 6; i++)
            x[i] = (float)cbq_rng_normal(&rng);
        for (size_t i = 0; i < BATCH * 2; i++)
            dout[i] = (float)cbq_rng_normal(&rng);
        for (int training = 1; training >= 0; training--) {
            const float *y = NULL;
            cbq_net_set_training(net, training);
            assert_int_equal(cbq_net_forward(net, x, BATCH, &y, &err), CBQ_OK);
            assert_int_equal(cbq_net_check_outputs(net, y, BATCH, &err), CBQ_OK);
            cbq_net_zero_grad(net);
            assert_int_equal(cbq_net_backward(net, dout, 0, 1, &err), CBQ_OK);
        }
        /* eval mode: the input gradient of sum(y * dout), against central
         * differences at every 7th input, to 2% of the largest of them */
        enum { N_IN = BATCH * 8 * 6, STEP = 7 };
        float g[N_IN];
        double fd[N_IN], scale = 0.0;
        memcpy(g, cbq_net_input_grad(net), sizeof g);
        const double h = 2e-3;
        for (size_t i = 0; i < N_IN; i += STEP) {
            float keep = x[i];
            x[i] = (float)(keep + h);
            double up = out_dot(net, x, dout);
            x[i] = (float)(keep - h);
            double down = out_dot(net, x, dout);
            x[i] = keep;
            fd[i] = (up - down) / (2 * h);
            scale = fmax(scale, fabs(fd[i]));
        }
        assert_true(scale > 1e-4);
        for (size_t i = 0; i < N_IN; i += STEP) {
            int ok = fabs(fd[i] - g[i]) <= 2e-2 * scale + 1e-5;
            if (!ok)
                print_message("%s: input %zu: backward %g, differences %g\n", info->name, i, g[i],
                              fd[i]);
            assert_true(ok);
        }
        cbq_net_free(net);
    }
}

/* A value outside the enum is refused with a message naming the layer. */
static void test_unknown_kind_refused(void **state)
{
    (void)state;
    cbq_layer_spec layers[MAX_LAYERS];
    cbq_model_spec spec;
    cbq_error err = {0};
    make_spec(&spec, layers, CBQ_LAYER_RELU);
    layers[1].kind = CBQ_LAYER_KIND_COUNT;
    assert_int_equal(cbq_model_spec_validate(&spec, "model.json", &err), CBQ_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "layer 'ex': unknown layer kind"));
    cbq_net *net = NULL;
    assert_int_equal(cbq_net_create(&net, &spec, 1, 1, &err), CBQ_ERR_FORMAT);
    assert_null(net);
    assert_int_equal(cbq_layer_param_count(&layers[1]), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_are_complete),
        cmocka_unit_test(test_every_kind_has_an_example),
        cmocka_unit_test(test_model_json_round_trip),
        cmocka_unit_test(test_every_kind_builds_and_runs),
        cmocka_unit_test(test_unknown_kind_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
