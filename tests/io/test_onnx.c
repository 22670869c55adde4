/* test_onnx.c - the ONNX writer and reader together: a preset written and
 * read back gives the same model.json text and the same tensors, byte for
 * byte; truncated files are refused; random byte flips and cuts give an
 * error or success, never a crash (run under ASan in the sanitizer tree).
 * PyTorch's and ONNX's side are in onnx_oracle.py and onnx_bad_test.py. */
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
#include "cbctiq/net.h"
#include "cbctiq/onnx.h"
#include "cbctiq/preset.h"
#include "cbctiq/rng.h"

static char dir[1024];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/onnx", base ? base : "tmp");
    cbq_error err = {0};
    return cbq_mkdir_p(dir, &err);
}

/* A small iqnet-s with weights drawn from a seed; channels > 1: a 2.5D
 * input with per-channel mean and std that %.15g would not round-trip. */
static cbq_net *small_net_channels(int channels)
{
    cbq_preset_opts po = {.width = 2, .depth = 2, .input = 12};
    cbq_model_spec spec;
    cbq_error err = {0};
    assert_int_equal(cbq_preset_build(&spec, "iqnet-s", &po, &err), CBQ_OK);
    if (channels > 1) {
        spec.input.channels = channels;
        spec.input.slices = CBQ_INPUT_ADJACENT;
        spec.input.n_norm = (size_t)channels;
        for (int ch = 0; ch < channels; ch++) {
            spec.input.mean[ch] = 0.1 * ch + 0.2;
            spec.input.std[ch] = 1.0 / (3.0 + ch);
        }
        spec.layers[0].cfg.conv.in_channels = channels;
    }
    cbq_net *net = NULL;
    assert_int_equal(cbq_net_create(&net, &spec, 1, 7, &err), CBQ_OK);
    cbq_model_spec_free(&spec);
    return net;
}

static cbq_net *small_net(void)
{
    return small_net_channels(1);
}

static void write_net(const cbq_net *net, const char *path)
{
    size_t n = cbq_net_tensor_count(net);
    cbq_st_entry *e = calloc(n, sizeof *e);
    cbq_tensor_view *v = calloc(n, sizeof *v);
    assert_non_null(e);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        cbq_net_tensor(net, i, &v[i]);
        e[i] = (cbq_st_entry){.name = v[i].name, .dtype = v[i].dtype == CBQ_DTYPE_I64 ? CBQ_ST_I64 : CBQ_ST_F32,
                              .ndim = v[i].ndim, .shape = v[i].shape, .data = v[i].data};
    }
    cbq_error err = {0};
    assert_int_equal(cbq_onnx_write(path, cbq_net_spec(net), e, n, &err), CBQ_OK);
    free(e);
    free(v);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *len, fp), *len);
    fclose(fp);
    return buf;
}

/* Written and read back: the same model.json text and tensors. */
static void check_round_trip(const cbq_net *net, const char *path)
{
    write_net(net, path);
    cbq_onnx_import_opts opts = {0};
    cbq_model_spec spec;
    cbq_safetensors w;
    cbq_error err = {0};
    assert_int_equal(cbq_onnx_read(path, &opts, &spec, &w, &err), CBQ_OK);
    char *want = cbq_model_json_format(cbq_net_spec(net), &err), *got = cbq_model_json_format(&spec, &err);
    assert_non_null(want);
    assert_non_null(got);
    assert_string_equal(got, want);
    size_t n = cbq_net_tensor_count(net);
    assert_int_equal(w.n_tensors, n);
    for (size_t i = 0; i < n; i++) {
        cbq_tensor_view v;
        cbq_net_tensor(net, i, &v);
        const cbq_st_tensor *t = cbq_safetensors_find(&w, v.name);
        assert_non_null(t);
        assert_int_equal(t->numel, v.numel);
        assert_memory_equal(t->data, v.data, t->nbytes);
    }
    free(want);
    free(got);
    cbq_model_spec_free(&spec);
    cbq_safetensors_free(&w);
}

/* Three adjacent, normalised channels: the graph input carries C, the
 * metadata slices, mean and std, exactly. */
static void test_round_trip_channels(void **state)
{
    (void)state;
    cbq_net *net = small_net_channels(3);
    char path[1200];
    snprintf(path, sizeof path, "%s/iqnet_25d.onnx", dir);
    check_round_trip(net, path);
    cbq_model_spec spec;
    cbq_safetensors w;
    cbq_error err = {0};
    cbq_onnx_import_opts opts = {0};
    assert_int_equal(cbq_onnx_read(path, &opts, &spec, &w, &err), CBQ_OK);
    assert_int_equal(spec.input.channels, 3);
    assert_int_equal(spec.input.slices, CBQ_INPUT_ADJACENT);
    assert_int_equal(spec.input.n_norm, 3);
    assert_true(spec.input.mean[1] == 0.1 * 1 + 0.2 && spec.input.std[2] == 1.0 / 5.0);
    cbq_model_spec_free(&spec);
    cbq_safetensors_free(&w);
    cbq_net_free(net);
}

static void test_round_trip(void **state)
{
    (void)state;
    cbq_net *net = small_net();
    char path[1200];
    snprintf(path, sizeof path, "%s/iqnet.onnx", dir);
    write_net(net, path);
    cbq_onnx_import_opts opts = {0};
    cbq_model_spec spec;
    cbq_safetensors w;
    cbq_error err = {0};
    assert_int_equal(cbq_onnx_read(path, &opts, &spec, &w, &err), CBQ_OK);
    char *want = cbq_model_json_format(cbq_net_spec(net), &err), *got = cbq_model_json_format(&spec, &err);
    assert_non_null(want);
    assert_non_null(got);
    assert_string_equal(got, want);
    /* Every tensor of the net, same bytes (num_batches_tracked: 0 both). */
    size_t n = cbq_net_tensor_count(net);
    assert_int_equal(w.n_tensors, n);
    for (size_t i = 0; i < n; i++) {
        cbq_tensor_view v;
        cbq_net_tensor(net, i, &v);
        const cbq_st_tensor *t = cbq_safetensors_find(&w, v.name);
        assert_non_null(t);
        assert_int_equal(t->ndim, v.ndim);
        assert_int_equal(t->numel, v.numel);
        assert_memory_equal(t->data, v.data, t->nbytes);
    }
    free(want);
    free(got);
    cbq_model_spec_free(&spec);
    cbq_safetensors_free(&w);

    /* Options override the file's HU window and names. */
    const char *names[] = {"a", "b", "c", "d", "e"};
    cbq_onnx_import_opts o2 = {.hu_min = -500, .hu_max = 1500, .n_outputs = 5, .outputs = names};
    assert_int_equal(cbq_onnx_read(path, &o2, &spec, &w, &err), CBQ_OK);
    assert_true(spec.input.hu_min == -500 && spec.input.hu_max == 1500);
    assert_string_equal(spec.outputs[4], "e");
    assert_string_equal(spec.target_layer, "block2.relu2");
    cbq_model_spec_free(&spec);
    cbq_safetensors_free(&w);
    cbq_net_free(net);
}

static int parse(const unsigned char *bytes, size_t len)
{
    cbq_onnx_import_opts opts = {0};
    cbq_model_spec spec;
    cbq_safetensors w;
    cbq_error err = {0};
    int rc = cbq_onnx_parse(bytes, len, "fuzz.onnx", &opts, &spec, &w, &err);
    if (rc != CBQ_OK) {
        assert_true(strncmp(err.msg, "fuzz.onnx: ", 11) == 0); /* every message names the file */
        assert_null(spec.layers);
        assert_int_equal(w.n_tensors, 0);
    }
    cbq_model_spec_free(&spec);
    cbq_safetensors_free(&w);
    return rc;
}

static void test_truncations_and_flips(void **state)
{
    (void)state;
    cbq_net *net = small_net();
    char path[1200];
    snprintf(path, sizeof path, "%s/fuzz.onnx", dir);
    write_net(net, path);
    cbq_net_free(net);
    size_t len;
    unsigned char *orig = slurp(path, &len), *buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(parse(orig, len), CBQ_OK);
    /* The graph and the opset come before the metadata (field order): any
     * cut before the metadata loses a part the reader needs. */
    for (size_t cut = 0; cut + 400 < len; cut++)
        assert_int_not_equal(parse(orig, cut), CBQ_OK);
    for (size_t cut = len - 400; cut < len; cut++)
        parse(orig, cut);
    cbq_rng rng;
    cbq_rng_seed(&rng, 14);
    size_t ok = 0;
    for (int iter = 0; iter < 5000; iter++) {
        memcpy(buf, orig, len);
        int flips = 1 + (int)cbq_rng_below(&rng, 4);
        for (int k = 0; k < flips; k++)
            buf[cbq_rng_below(&rng, len)] = (unsigned char)cbq_rng_below(&rng, 256);
        ok += parse(buf, iter % 5 == 0 ? cbq_rng_below(&rng, len + 1) : len) == CBQ_OK;
    }
    /* Flips inside the weights leave a valid model: some must succeed. */
    assert_true(ok > 0);
    free(orig);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_round_trip_channels),
        cmocka_unit_test(test_truncations_and_flips),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
