/* test_model_json.c - model.json: defaults and shapes against PyTorch's
 * documented defaults and output-size formula, round trips, every malformed
 * case with its message (file + JSON path), and random corruption that must
 * give an error or success, never a crash. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/model_json.h"
#include "cbctiq/preset.h"
#include "cbctiq/rng.h"

static char dir[1024];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/model_json", base ? base : "tmp");
    cbq_error err = {0};
    return cbq_mkdir_p(dir, &err);
}

static int parse(cbq_model_spec *spec, const char *text, cbq_error *err)
{
    return cbq_model_json_parse(spec, text, strlen(text), "model.json", err);
}

/* A small valid model; the malformed cases below are edits of it. */
#define HEAD "{\"format_version\":1,\"input\":{\"height\":33,\"width\":20,\"hu_min\":-500,\"hu_max\":1500},"
static const char minimal[] =
    HEAD "\"outputs\":[\"a\",\"b\"],\"target_layer\":\"r\",\"layers\":["
    "{\"name\":\"c\",\"type\":\"conv2d\",\"in_channels\":1,\"out_channels\":4,\"kernel_size\":3,"
    "\"stride\":2,\"padding\":1},"
    "{\"name\":\"n\",\"type\":\"batchnorm2d\",\"num_features\":4},"
    "{\"name\":\"r\",\"type\":\"leaky_relu\"},"
    "{\"name\":\"p\",\"type\":\"maxpool2d\",\"kernel_size\":[3,2]},"
    "{\"name\":\"d\",\"type\":\"dropout\"},"
    "{\"name\":\"g\",\"type\":\"global_avgpool\"},"
    "{\"name\":\"h\",\"type\":\"linear\",\"in_features\":4,\"out_features\":2}]}";

static void test_defaults_and_shapes_follow_pytorch(void **state)
{
    (void)state;
    cbq_model_spec s;
    cbq_error err = {0};
    assert_int_equal(parse(&s, minimal, &err), CBQ_OK);
    assert_string_equal(s.arch, "custom");
    const cbq_conv2d_cfg *c = &s.layers[0].cfg.conv;
    assert_true(c->kernel_h == 3 && c->kernel_w == 3 && c->stride_h == 2 && c->pad_w == 1);
    assert_int_equal(c->bias, 1);                               /* nn.Conv2d(bias=True) */
    assert_true(c->dilation_h == 1 && c->dilation_w == 1 && c->groups == 1); /* dilation=1, groups=1 */
    assert_true(s.layers[1].cfg.bn.eps == 1e-5 && s.layers[1].cfg.bn.momentum == 0.1);
    assert_true(s.layers[2].cfg.leaky.negative_slope == 0.01); /* nn.LeakyReLU default */
    const cbq_pool2d_cfg *p = &s.layers[3].cfg.pool;
    assert_true(p->stride_h == 3 && p->stride_w == 2 && p->pad_h == 0); /* stride = kernel_size */
    assert_int_equal(p->ceil_mode, 0);                                   /* ceil_mode=False */
    assert_true(s.layers[4].cfg.dropout.p == 0.5);
    assert_int_equal(s.layers[6].cfg.linear.bias, 1);
    size_t shapes[7][3];
    assert_int_equal(cbq_model_spec_shapes(&s, shapes, &err), CBQ_OK);
    /* floor((33 + 2 - 3) / 2) + 1 = 17, floor((20 + 2 - 3) / 2) + 1 = 10 */
    assert_true(shapes[0][0] == 4 && shapes[0][1] == 17 && shapes[0][2] == 10);
    /* max-pool 3x2 stride 3x2: floor((17 - 3) / 3) + 1 = 5, floor((10 - 2) / 2) + 1 = 5 */
    assert_true(shapes[3][1] == 5 && shapes[3][2] == 5);
    assert_true(shapes[5][0] == 4 && shapes[5][1] == 1 && shapes[6][0] == 2);
    assert_int_equal(cbq_model_spec_find(&s, "p"), 3);
    assert_int_equal(cbq_model_spec_find(&s, "zz"), -1);
    cbq_model_spec_free(&s);
}

static void test_round_trip_preset(void **state)
{
    (void)state;
    cbq_model_spec s, back;
    cbq_error err = {0};
    assert_int_equal(cbq_preset_build(&s, "iqnet-s", NULL, &err), CBQ_OK);
    assert_int_equal(s.n_layers, 29);
    assert_string_equal(s.target_layer, "block4.relu2");
    char path[1200];
    snprintf(path, sizeof path, "%s/model.json", dir);
    assert_int_equal(cbq_model_json_write(&s, path, &err), CBQ_OK);
    assert_int_equal(cbq_model_json_read(&back, path, &err), CBQ_OK);
    assert_int_equal(back.n_layers, s.n_layers);
    assert_int_equal(back.n_outputs, 5);
    assert_string_equal(back.outputs[4], "overall");
    assert_string_equal(back.arch, "iqnet-s");
    assert_true(back.input.hu_min == -1000.0 && back.input.hu_max == 1000.0 && back.input.height == 128);
    for (size_t i = 0; i < s.n_layers; i++) {
        assert_string_equal(back.layers[i].name, s.layers[i].name);
        assert_int_equal(back.layers[i].kind, s.layers[i].kind);
        assert_memory_equal(&back.layers[i].cfg, &s.layers[i].cfg, sizeof s.layers[i].cfg);
    }
    size_t shapes[29][3];
    assert_int_equal(cbq_model_spec_shapes(&back, shapes, &err), CBQ_OK);
    assert_true(shapes[26][0] == 128 && shapes[26][1] == 16 && shapes[26][2] == 16);
    /* Writing the read spec gives the same bytes. */
    char *a = cbq_model_json_format(&s, &err), *b = cbq_model_json_format(&back, &err);
    assert_string_equal(a, b);
    free(a);
    free(b);
    cbq_model_spec_free(&s);
    cbq_model_spec_free(&back);

    cbq_preset_opts o = {.width = 8, .depth = 2, .input = 64, .n_outputs = 2};
    assert_int_equal(cbq_preset_build(&s, "iqnet-s", &o, &err), CBQ_OK);
    assert_int_equal(s.n_layers, 2 * 7 + 1);
    assert_int_equal(s.layers[s.n_layers - 1].cfg.linear.in_features, 16);
    assert_string_equal(s.outputs[1], "submandibular");
    cbq_model_spec_free(&s);
    o = (cbq_preset_opts){.depth = 8, .input = 64};
    assert_int_equal(cbq_preset_build(&s, "iqnet-s", &o, &err), CBQ_ERR_ARG);
    assert_int_equal(cbq_preset_build(&s, "resnet", NULL, &err), CBQ_ERR_ARG);
}

/* The keys that came with graph networks (conv dilation and groups, pool
 * ceil_mode, adaptive_avgpool2d's output_size) and the single-input kinds:
 * values, PyTorch's output sizes, and the writer, which leaves the later keys
 * out at their defaults so that a file of the earlier format writes back
 * byte for byte as that format's writer wrote it. */
static void test_graph_kind_keys(void **state)
{
    (void)state;
    static const char text[] =
        HEAD "\"outputs\":[\"a\",\"b\"],\"target_layer\":\"s\",\"layers\":["
        "{\"name\":\"c\",\"type\":\"conv2d\",\"in_channels\":1,\"out_channels\":4,\"kernel_size\":3,"
        "\"padding\":1,\"dilation\":[2,3]},"
        "{\"name\":\"d\",\"type\":\"conv2d\",\"in_channels\":4,\"out_channels\":8,\"kernel_size\":3,"
        "\"groups\":4,\"bias\":false},"
        "{\"name\":\"s\",\"type\":\"silu\"},"
        "{\"name\":\"m\",\"type\":\"maxpool2d\",\"kernel_size\":2,\"ceil_mode\":true},"
        "{\"name\":\"q\",\"type\":\"avgpool2d\",\"kernel_size\":3,\"stride\":2,\"padding\":1,"
        "\"ceil_mode\":false},"
        "{\"name\":\"i\",\"type\":\"identity\"},"
        "{\"name\":\"g\",\"type\":\"sigmoid\"},"
        "{\"name\":\"a\",\"type\":\"adaptive_avgpool2d\",\"output_size\":1},"
        "{\"name\":\"f\",\"type\":\"flatten\"},"
        "{\"name\":\"h\",\"type\":\"linear\",\"in_features\":8,\"out_features\":2}]}";
    cbq_model_spec s, back;
    cbq_error err = {0};
    assert_int_equal(parse(&s, text, &err), CBQ_OK);
    const cbq_conv2d_cfg *c = &s.layers[0].cfg.conv, *d = &s.layers[1].cfg.conv;
    assert_true(c->dilation_h == 2 && c->dilation_w == 3 && c->groups == 1);
    assert_true(d->dilation_h == 1 && d->dilation_w == 1 && d->groups == 4 && d->bias == 0);
    assert_true(s.layers[3].cfg.pool.ceil_mode == 1 && s.layers[4].cfg.pool.ceil_mode == 0);
    assert_true(s.layers[7].cfg.adaptive.output_h == 1 && s.layers[7].cfg.adaptive.output_w == 1);
    size_t shapes[10][3];
    assert_int_equal(cbq_model_spec_shapes(&s, shapes, &err), CBQ_OK);
    /* conv: floor((in + 2p - d(k-1) - 1) / s) + 1: (33 + 2 - 4 - 1) + 1 = 31,
     * (20 + 2 - 6 - 1) + 1 = 16; then 3x3 unpadded: 29 x 14 */
    assert_true(shapes[0][0] == 4 && shapes[0][1] == 31 && shapes[0][2] == 16);
    assert_true(shapes[1][0] == 8 && shapes[1][1] == 29 && shapes[1][2] == 14);
    /* ceil_mode max-pool 2/2 on 29 x 14: ceil(27/2) + 1 = 15 (floor: 14), 7 */
    assert_true(shapes[3][1] == 15 && shapes[3][2] == 7);
    /* avg-pool 3/2/1 without ceil_mode: floor(14/2) + 1 = 8, floor(6/2) + 1 = 4 */
    assert_true(shapes[4][1] == 8 && shapes[4][2] == 4);
    assert_true(shapes[7][0] == 8 && shapes[7][1] == 1 && shapes[7][2] == 1);
    assert_true(shapes[8][0] == 8 && shapes[8][1] == 1 && shapes[8][2] == 1);
    char *out = cbq_model_json_format(&s, &err);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"padding\":[1,1],\"bias\":true,\"dilation\":[2,3]}"));
    assert_non_null(strstr(out, "\"bias\":false,\"groups\":4}"));
    assert_non_null(strstr(out, "\"padding\":[0,0],\"ceil_mode\":true}"));
    assert_non_null(strstr(out, "{\"name\":\"q\",\"type\":\"avgpool2d\",\"kernel_size\":[3,3],"
                            "\"stride\":[2,2],\"padding\":[1,1]}"));
    assert_non_null(strstr(out, "{\"name\":\"a\",\"type\":\"adaptive_avgpool2d\",\"output_size\":[1,1]}"));
    assert_non_null(strstr(out, "{\"name\":\"f\",\"type\":\"flatten\"}"));
    assert_int_equal(cbq_model_json_parse(&back, out, strlen(out), "model.json", &err), CBQ_OK);
    for (size_t i = 0; i < s.n_layers; i++)
        assert_memory_equal(&back.layers[i].cfg, &s.layers[i].cfg, sizeof s.layers[i].cfg);
    char *again = cbq_model_json_format(&back, &err);
    assert_string_equal(again, out);
    free(again);
    free(out);
    cbq_model_spec_free(&back);
    cbq_model_spec_free(&s);

    /* The earlier format: these layer lines are what its writer wrote. */
    assert_int_equal(parse(&s, minimal, &err), CBQ_OK);
    out = cbq_model_json_format(&s, &err);
    assert_non_null(strstr(out, "{\"name\":\"c\",\"type\":\"conv2d\",\"in_channels\":1,"
                            "\"out_channels\":4,\"kernel_size\":[3,3],\"stride\":[2,2],"
                            "\"padding\":[1,1],\"bias\":true},"));
    assert_non_null(strstr(out, "{\"name\":\"p\",\"type\":\"maxpool2d\",\"kernel_size\":[3,2],"
                            "\"stride\":[3,2],\"padding\":[0,0]},"));
    free(out);
    /* A spec built in C before the keys existed (0) writes the same way. */
    s.layers[0].cfg.conv.dilation_h = s.layers[0].cfg.conv.dilation_w = s.layers[0].cfg.conv.groups = 0;
    out = cbq_model_json_format(&s, &err);
    assert_null(strstr(out, "dilation"));
    assert_null(strstr(out, "groups"));
    free(out);
    cbq_model_spec_free(&s);
}

/* Replaces the first occurrence of `from` in minimal by `to`. */
static char *edit(const char *from, const char *to)
{
    const char *at = strstr(minimal, from);
    assert_non_null(at);
    size_t n = strlen(minimal) - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - minimal), minimal, to, at + strlen(from));
    return out;
}

typedef struct {
    const char *from, *to, *expect;
} bad_edit;

/* A model without the channel keys is written without them, in the form
 * every model.json had before them (byte-identical), and the channel keys
 * round-trip when present. */
static void test_input_channels_round_trip(void **state)
{
    (void)state;
    cbq_model_spec s, back;
    cbq_error err = {0};
    assert_int_equal(parse(&s, minimal, &err), CBQ_OK);
    assert_int_equal(cbq_input_channels(&s.input), 1);
    assert_true(s.input.slices == CBQ_INPUT_REPLICATE && s.input.n_norm == 0);
    char *text = cbq_model_json_format(&s, &err);
    assert_non_null(strstr(text, "\"input\": {\"height\":33,\"width\":20,\"hu_min\":-500,\"hu_max\":1500},\n"));
    free(text);
    cbq_model_spec_free(&s);

    char *three = edit("\"in_channels\":1", "\"in_channels\":3");
    char *with = NULL;
    {
        const char *at = strstr(three, "\"hu_max\":1500");
        const char *keys = ",\"channels\":3,\"slices\":\"adjacent\",\"mean\":[0.485,0.456,0.406],"
                           "\"std\":[0.229,0.224,0.225]";
        size_t head = (size_t)(at - three) + strlen("\"hu_max\":1500"), n = strlen(three) + strlen(keys) + 1;
        with = malloc(n);
        snprintf(with, n, "%.*s%s%s", (int)head, three, keys, three + head);
    }
    assert_int_equal(parse(&s, with, &err), CBQ_OK);
    assert_int_equal(cbq_input_channels(&s.input), 3);
    assert_true(s.input.slices == CBQ_INPUT_ADJACENT && s.input.n_norm == 3);
    assert_true(s.input.mean[1] == 0.456 && s.input.std[2] == 0.225);
    size_t shapes[7][3];
    assert_int_equal(cbq_model_spec_shapes(&s, shapes, &err), CBQ_OK);
    text = cbq_model_json_format(&s, &err);
    assert_non_null(strstr(text, "\"channels\":3,\"slices\":\"adjacent\",\"mean\":[0.485,0.456,0.406]"));
    assert_int_equal(parse(&back, text, &err), CBQ_OK);
    assert_memory_equal(&back.input, &s.input, sizeof s.input);
    char *again = cbq_model_json_format(&back, &err);
    assert_string_equal(text, again);
    s.input.std[0] = 0.0; /* a spec built in memory is checked as a file is */
    assert_null(cbq_model_json_format(&s, &err));
    assert_non_null(strstr(err.msg, "input.std"));
    free(again);
    free(text);
    free(with);
    free(three);
    cbq_model_spec_free(&s);
    cbq_model_spec_free(&back);

    /* mean alone: std defaults to 1 in every channel */
    char *mean_only = edit("\"hu_max\":1500", "\"hu_max\":1500,\"mean\":[0.25]");
    assert_int_equal(parse(&s, mean_only, &err), CBQ_OK);
    assert_true(s.input.n_norm == 1 && s.input.mean[0] == 0.25 && s.input.std[0] == 1.0);
    cbq_model_spec_free(&s);
    free(mean_only);
    /* a 3-channel input meets the first conv's in_channels */
    char *mismatch = edit("\"hu_max\":1500", "\"hu_max\":1500,\"channels\":3");
    assert_int_not_equal(parse(&s, mismatch, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "layer 'c' (conv2d): in_channels is 1 but its input has 3 channels"));
    free(mismatch);
}

static void test_malformed_cases_name_file_and_path(void **state)
{
    (void)state;
    static const bad_edit cases[] = {
        {"\"type\":\"leaky_relu\"", "\"type\":\"swish\"", "model.json: layers[2].type: unknown layer type \"swish\""},
        {"\"out_channels\":4,", "", "model.json: layers[0].out_channels: missing"},
        {"\"kernel_size\":3", "\"kernel_size\":\"3\"", "model.json: layers[0].kernel_size: expected a positive integer or [h, w]"},
        {"\"kernel_size\":3", "\"kernel_size\":[3]", "layers[0].kernel_size: expected a positive integer or [h, w]"},
        {"\"kernel_size\":3", "\"kernel_size\":0", "layers[0].kernel_size: expected a positive integer"},
        {"\"padding\":1", "\"padding\":-1", "layers[0].padding: expected a non-negative integer"},
        {"\"kernel_size\":3", "\"kernel_size\":1e300", "layers[0].kernel_size"},
        {"\"out_channels\":4", "\"out_channels\":1e12", "layers[0].out_channels: expected an integer in"},
        {"\"out_channels\":4", "\"out_channels\":2.5", "layers[0].out_channels: expected an integer in"},
        {"\"height\":33", "\"height\":1e9", "input.height: expected an integer in"},
        {"\"height\":33", "\"height\":\"33\"", "input.height"},
        {"\"hu_max\":1500", "\"hu_max\":-600", "input: hu_min must be below hu_max"},
        {"\"name\":\"n\"", "\"name\":\"c\"", "layers[1].name: \"c\" is already the name of layers[0]"},
        {"\"name\":\"n\"", "\"name\":\"c.x\"", "clash as PyTorch module paths"},
        {"\"name\":\"n\"", "\"name\":\"a b\"", "layers[1].name: \"a b\" is not a valid layer name"},
        {"\"name\":\"n\"", "\"name\":\"a..b\"", "is not a valid layer name"},
        {"{\"name\":\"n\",", "{", "layers[1].name: missing"},
        {"\"target_layer\":\"r\"", "\"target_layer\":\"q\"", "target_layer: no layer is named \"q\""},
        {"\"target_layer\":\"r\"", "\"target_layer\":\"h\"", "target_layer: \"h\" must come before the global pool"},
        {"\"target_layer\":\"r\"", "\"target_layer\":\"g\"", "must come before the global pool"},
        {"\"target_layer\":\"r\",", "", "target_layer: missing"},
        {"\"in_channels\":1", "\"in_channels\":3", "layer 'c' (conv2d): in_channels is 3 but its input has 1 channels"},
        {"\"num_features\":4", "\"num_features\":5", "layer 'n' (batchnorm2d): num_features is 5"},
        {"\"in_features\":4", "\"in_features\":5", "layer 'h' (linear): in_features is 5"},
        {"\"out_features\":2", "\"out_features\":3", "outputs: 2 categories, but the last layer \"h\" gives 3x1x1"},
        {"\"kernel_size\":[3,2]", "\"kernel_size\":[30,2]", "layer 'p' (maxpool2d)"},
        {"\"kernel_size\":[3,2]}", "\"kernel_size\":[3,2],\"padding\":2}", "must be at most half the kernel"},
        {"\"format_version\":1", "\"format_version\":2", "format_version: 2 is newer"},
        {"\"format_version\":1,", "", "format_version: missing"},
        {"\"kernel_size\":3,", "\"kernal_size\":3,\"kernel_size\":3,", "layers[0].kernal_size: unknown key"},
        {"\"kernel_size\":3,", "\"kernel_size\":3,\"kernel_size\":3,", "key \"kernel_size\" appears twice"},
        {"\"outputs\":[\"a\",\"b\"]", "\"outputs\":[\"a\",\"a\"]", "outputs[1]: category \"a\" appears twice"},
        {"\"outputs\":[\"a\",\"b\"]", "\"outputs\":[]", "outputs: expected 1 to"},
        {"\"outputs\":[\"a\",\"b\"]", "\"outputs\":[\"a\",2]", "outputs[1]"},
        {"{\"name\":\"n\",\"type\":\"batchnorm2d\",\"num_features\":4}",
         "{\"name\":\"n\",\"type\":\"batchnorm2d\",\"num_features\":4,\"momentum\":2}", "layers[1].momentum"},
        {"{\"name\":\"n\",\"type\":\"batchnorm2d\",\"num_features\":4}",
         "{\"name\":\"n\",\"type\":\"batchnorm2d\",\"num_features\":4,\"eps\":0}", "layers[1].eps"},
        {"\"type\":\"dropout\"", "\"type\":\"dropout\",\"p\":1", "layers[4].p"},
        {"\"type\":\"conv2d\",", "\"type\":\"conv2d\",\"bias\":1,", "layers[0].bias: expected true or false"},
        {"\"layers\":[", "\"layers\":[7,", "layers[0]: expected an object"},
        {"\"layers\":[", "\"layerz\":[", "layers: missing"},
        {"\"input\":{", "\"input\":{\"depth\":3,", "input.depth: unknown key"},
        {"\"input\":{", "\"input\":{\"channels\":0,", "input.channels: expected an integer in [1, 16]"},
        {"\"input\":{", "\"input\":{\"channels\":17,", "input.channels: expected an integer in [1, 16]"},
        {"\"input\":{", "\"input\":{\"slices\":\"stack\",", "input.slices: expected \"replicate\" or \"adjacent\""},
        {"\"input\":{", "\"input\":{\"channels\":2,\"slices\":\"adjacent\",",
         "input.slices: \"adjacent\" centres the channels on the slice, so input.channels must be odd (got 2)"},
        {"\"input\":{", "\"input\":{\"mean\":[0.5,0.5],", "input.mean: expected an array of 1 numbers"},
        {"\"input\":{", "\"input\":{\"channels\":3,\"std\":[1,2],", "input.std: expected an array of 3 numbers"},
        {"\"input\":{", "\"input\":{\"std\":0.5,", "input.std: expected an array of 1 numbers"},
        {"\"input\":{", "\"input\":{\"channels\":2,\"std\":[1,0],", "input.std[1]: a standard deviation must not be 0"},
        {"\"input\":{", "\"input\":{\"mean\":[\"a\"],", "input.mean[0]: expected a finite number"},
        {"2}]}", "2}]} extra", "model.json: unexpected text after the JSON object"},
        {"2}]}", "2}]", "model.json: not valid JSON"},
        /* the keys of graph networks */
        {"\"padding\":1}", "\"padding\":1,\"dilation\":0}", "layers[0].dilation: expected a positive integer"},
        {"\"padding\":1}", "\"padding\":1,\"dilation\":[2,-1]}", "layers[0].dilation: expected a positive integer"},
        {"\"padding\":1}", "\"padding\":1,\"groups\":0}", "layers[0].groups: expected an integer in [1, 65536]"},
        {"\"padding\":1}", "\"padding\":1,\"groups\":3}",
         "layer 'c' (conv2d): groups 3 must divide both in_channels 1 and out_channels 4"},
        {"\"padding\":1}", "\"padding\":1,\"dilation\":20}", "layer 'c' (conv2d): input 1x33x20: the kernel is larger"},
        {"\"kernel_size\":[3,2]}", "\"kernel_size\":[3,2],\"ceil_mode\":1}", "layers[3].ceil_mode: expected true or false"},
        {"{\"name\":\"d\",\"type\":\"dropout\"}", "{\"name\":\"d\",\"type\":\"adaptive_avgpool2d\",\"output_size\":2}",
         "layer 'd' (adaptive_avgpool2d): output_size 2x2 is not supported (only 1"},
        {"{\"name\":\"d\",\"type\":\"dropout\"}", "{\"name\":\"d\",\"type\":\"sigmoid\",\"p\":1}",
         "layers[4].p: unknown key for a sigmoid layer"},
        /* 65536 x 65536 x 3 x 3 weights: far beyond any model; refused before allocation. */
        {"\"in_channels\":1,\"out_channels\":4", "\"in_channels\":65536,\"out_channels\":65536",
         "more than 4294967296 parameters"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = edit(cases[i].from, cases[i].to);
        cbq_model_spec s;
        cbq_error err = {0};
        int rc = parse(&s, text, &err);
        if (rc == CBQ_OK || !strstr(err.msg, cases[i].expect) || strncmp(err.msg, "model.json: ", 12) != 0)
            fail_msg("case %zu: rc %d, message '%s', expected '%s'", i, rc, err.msg, cases[i].expect);
        assert_null(s.layers); /* nothing leaks to the caller */
        free(text);
    }
}

static void test_missing_file_and_write_refuses_invalid(void **state)
{
    (void)state;
    cbq_model_spec s;
    cbq_error err = {0};
    char path[1200];
    snprintf(path, sizeof path, "%s/none/model.json", dir);
    assert_int_equal(cbq_model_json_read(&s, path, &err), CBQ_ERR_IO);
    assert_non_null(strstr(err.msg, "none/model.json"));
    assert_int_equal(parse(&s, minimal, &err), CBQ_OK);
    snprintf(s.target_layer, sizeof s.target_layer, "h");
    snprintf(path, sizeof path, "%s/invalid.json", dir);
    assert_int_not_equal(cbq_model_json_write(&s, path, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "target_layer"));
    FILE *fp = fopen(path, "rb");
    assert_null(fp); /* nothing written */
    cbq_model_spec_free(&s);
}

static void test_fuzz_flips_and_truncations(void **state)
{
    (void)state;
    cbq_model_spec s;
    cbq_error err = {0};
    assert_int_equal(cbq_preset_build(&s, "iqnet-s", NULL, &err), CBQ_OK);
    char *orig = cbq_model_json_format(&s, &err);
    cbq_model_spec_free(&s);
    size_t len = strlen(orig);
    char *buf = malloc(len + 1);
    cbq_rng rng;
    cbq_rng_seed(&rng, 77);
    static const char alphabet[] = "{}[],:\"0123456789-.e aZ\\";
    size_t ok = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, orig, len + 1);
        int flips = 1 + (int)cbq_rng_below(&rng, 3);
        for (int k = 0; k < flips; k++) {
            size_t at = cbq_rng_below(&rng, len);
            buf[at] = iter % 2 ? (char)cbq_rng_below(&rng, 256)
                               : alphabet[cbq_rng_below(&rng, sizeof alphabet - 1)];
        }
        size_t n = iter % 5 == 0 ? cbq_rng_below(&rng, len + 1) : len;
        int rc = cbq_model_json_parse(&s, buf, n, "model.json", &err);
        if (rc == CBQ_OK) {
            ok++;
            cbq_model_spec_free(&s);
        } else {
            assert_true(strncmp(err.msg, "model.json", 10) == 0);
            assert_null(s.layers);
        }
    }
    (void)ok;
    free(buf);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_shapes_follow_pytorch),
        cmocka_unit_test(test_round_trip_preset),
        cmocka_unit_test(test_input_channels_round_trip),
        cmocka_unit_test(test_graph_kind_keys),
        cmocka_unit_test(test_malformed_cases_name_file_and_path),
        cmocka_unit_test(test_missing_file_and_write_refuses_invalid),
        cmocka_unit_test(test_fuzz_flips_and_truncations),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
