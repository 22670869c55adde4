/* test_model_file.c - a model directory: save then load gives back every
 * tensor bit for bit and the same outputs; missing, extra, misshapen or
 * mistyped tensors and missing files fail with the tensor and file named. */
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
#include "cbctiq/model_file.h"
#include "cbctiq/model_json.h"
#include "cbctiq/preset.h"

static char dir[1024];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/model_file", base ? base : "tmp");
    cbq_error err = {0};
    return cbq_mkdir_p(dir, &err);
}

static cbq_net *small_net(uint64_t seed)
{
    cbq_preset_opts o = {.width = 4, .depth = 2, .input = 16};
    cbq_model_spec s;
    cbq_error err = {0};
    assert_int_equal(cbq_preset_build(&s, "iqnet-s", &o, &err), CBQ_OK);
    cbq_net *net = NULL;
    assert_int_equal(cbq_net_create(&net, &s, 2, seed, &err), CBQ_OK);
    cbq_model_spec_free(&s);
    return net;
}

static void test_save_load_round_trip(void **state)
{
    (void)state;
    char path[1200];
    snprintf(path, sizeof path, "%s/rt", dir);
    cbq_net *a = small_net(11);
    /* Non-default buffers so that running stats and the counter are checked too. */
    for (size_t i = 0; i < cbq_net_tensor_count(a); i++) {
        cbq_tensor_view v;
        cbq_net_tensor(a, i, &v);
        if (v.dtype == CBQ_DTYPE_I64)
            *(int64_t *)v.data = 1000 + (int64_t)i;
        else if (!v.trainable)
            for (size_t k = 0; k < v.numel; k++)
                ((float *)v.data)[k] = 0.5f + 0.01f * (float)k;
    }
    cbq_error err = {0};
    assert_int_equal(cbq_model_save(path, a, &err), CBQ_OK);
    cbq_net *b = NULL;
    assert_int_equal(cbq_model_load(path, &b, 2, &err), CBQ_OK);
    assert_int_equal(cbq_net_tensor_count(a), cbq_net_tensor_count(b));
    for (size_t i = 0; i < cbq_net_tensor_count(a); i++) {
        cbq_tensor_view va, vb;
        cbq_net_tensor(a, i, &va);
        cbq_net_tensor(b, i, &vb);
        assert_string_equal(va.name, vb.name);
        assert_int_equal(va.numel, vb.numel);
        assert_memory_equal(va.data, vb.data, va.numel * (va.dtype == CBQ_DTYPE_I64 ? 8 : 4));
    }
    float in[2 * 16 * 16];
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        in[i] = (float)((i * 37) % 101) / 101.0f;
    const float *oa, *ob;
    assert_int_equal(cbq_net_forward(a, in, 2, &oa, &err), CBQ_OK);
    assert_int_equal(cbq_net_forward(b, in, 2, &ob, &err), CBQ_OK);
    assert_memory_equal(oa, ob, 2 * 5 * sizeof(float));
    cbq_net_free(a);
    cbq_net_free(b);
}

/* Writes dir/model.json of the small net and a weights file built from its
 * tensors with one edit applied; returns the load error message. */
typedef enum { DROP, EXTRA, RESHAPE, RETYPE, AS_F64 } edit_kind;

static int load_edited(const char *sub, edit_kind kind, const char *target, cbq_error *err)
{
    char path[1300], wpath[1400];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    cbq_net *a = small_net(3);
    cbq_error e2 = {0};
    assert_int_equal(cbq_model_save(path, a, &e2), CBQ_OK);
    size_t n = cbq_net_tensor_count(a);
    cbq_st_entry *e = calloc(n + 1, sizeof *e);
    cbq_tensor_view *v = calloc(n, sizeof *v);
    double *f64 = NULL;
    size_t m = 0, bad_shape[4] = {1, 1, 1, 1};
    for (size_t i = 0; i < n; i++) {
        cbq_net_tensor(a, i, &v[i]);
        cbq_st_entry x = {v[i].name, v[i].dtype == CBQ_DTYPE_I64 ? CBQ_ST_I64 : CBQ_ST_F32, v[i].ndim, v[i].shape,
                          v[i].data};
        int hit = strcmp(v[i].name, target) == 0;
        if (hit && kind == DROP)
            continue;
        if (hit && kind == RESHAPE) {
            bad_shape[0] = v[i].numel; /* same bytes, flattened */
            x.shape = bad_shape;
            x.ndim = 1;
        }
        if (hit && kind == RETYPE) /* 4-byte ints where floats belong */
            x.dtype = CBQ_ST_I32;
        if (hit && kind == AS_F64) {
            f64 = malloc(v[i].numel * sizeof *f64);
            for (size_t k = 0; k < v[i].numel; k++)
                f64[k] = ((const float *)v[i].data)[k];
            x.dtype = CBQ_ST_F64;
            x.data = f64;
        }
        e[m++] = x;
    }
    if (kind == EXTRA)
        e[m++] = (cbq_st_entry){target, CBQ_ST_F32, 1, bad_shape, v[0].data};
    snprintf(wpath, sizeof wpath, "%s/weights.safetensors", path);
    assert_int_equal(cbq_safetensors_write(wpath, e, m, NULL, 0, &e2), CBQ_OK);
    cbq_net *b = NULL;
    int rc = cbq_model_load(path, &b, 1, err);
    if (rc == CBQ_OK) {
        cbq_tensor_view va, vb;
        assert_true(cbq_net_tensor_find(a, target, &va) && cbq_net_tensor_find(b, target, &vb));
        assert_memory_equal(va.data, vb.data, va.numel * sizeof(float));
        cbq_net_free(b);
    } else
        assert_null(b);
    cbq_net_free(a);
    free(e);
    free(v);
    free(f64);
    return rc;
}

static void test_bad_weights_named(void **state)
{
    (void)state;
    cbq_error err = {0};
    assert_int_equal(load_edited("drop", DROP, "block2.bn1.running_var", &err), CBQ_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "weights.safetensors: tensor 'block2.bn1.running_var' is missing"));
    assert_int_equal(load_edited("extra", EXTRA, "block9.conv1.weight", &err), CBQ_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tensor 'block9.conv1.weight' is not part of the model"));
    assert_int_equal(load_edited("shape", RESHAPE, "block1.conv2.weight", &err), CBQ_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "tensor 'block1.conv2.weight': shape [144], model.json needs [4, 4, 3, 3]"));
    assert_int_equal(load_edited("type", RETYPE, "head.bias", &err), CBQ_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "weights.safetensors: tensor 'head.bias': dtype I32, expected F32"));
    /* F64 weights (e.g. saved from a double model) are converted exactly. */
    assert_int_equal(load_edited("f64", AS_F64, "head.weight", &err), CBQ_OK);
}

static void test_missing_files(void **state)
{
    (void)state;
    char path[1200], file[1300];
    snprintf(path, sizeof path, "%s/nofiles", dir);
    cbq_error err = {0};
    cbq_net *net = NULL;
    assert_int_equal(cbq_mkdir_p(path, &err), CBQ_OK);
    snprintf(file, sizeof file, "%s/model.json", path);
    remove(file); /* left by an earlier run */
    assert_int_equal(cbq_model_load(path, &net, 1, &err), CBQ_ERR_IO);
    assert_non_null(strstr(err.msg, "nofiles/model.json"));
    cbq_net *a = small_net(1);
    assert_int_equal(cbq_model_save(path, a, &err), CBQ_OK);
    cbq_net_free(a);
    snprintf(file, sizeof file, "%s/weights.safetensors", path);
    assert_int_equal(remove(file), 0);
    assert_int_equal(cbq_model_load(path, &net, 1, &err), CBQ_ERR_IO);
    assert_non_null(strstr(err.msg, "nofiles/weights.safetensors"));
    assert_null(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_bad_weights_named),
        cmocka_unit_test(test_missing_files),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
