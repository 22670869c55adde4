/* test_trainer.c - the training loop on a synthetic task: learn the mean
 * intensity of random images. Any model that ignores its input (an untrained
 * one included) at best predicts a constant, whose validation MSE is at
 * least the variance of the validation targets (computed here from the data);
 * the trained model must get below 1% of it. Also: early stopping and best
 * weights, determinism, volume-wise splits, augmentation rules, the log. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/model_input.h"
#include "cbctiq/model_json.h"
#include "cbctiq/net.h"
#include "cbctiq/trainer.h"

enum { S = 12, N_TRAIN = 192, N_VAL = 64, N_ALL = N_TRAIN + N_VAL };

typedef struct {
    float x[N_ALL * S * S], y[N_ALL];
    size_t vol[N_ALL], train[N_ALL], val[N_ALL];
    cbq_dataset ds;
} task;

/* Image i: brightness b ~ U(0, 1) plus uniform noise in [-0.25, 0.25];
 * target: its exact mean. Four slices per volume. */
static void make_task(task *t, uint64_t seed)
{
    cbq_rng rng;
    cbq_rng_seed(&rng, seed);
    for (size_t i = 0; i < N_ALL; i++) {
        double b = cbq_rng_uniform(&rng), sum = 0.0;
        for (size_t p = 0; p < S * S; p++) {
            float v = (float)(b + 0.5 * (cbq_rng_uniform(&rng) - 0.5));
            t->x[i * S * S + p] = v;
            sum += v;
        }
        t->y[i] = (float)(sum / (S * S));
        t->vol[i] = i / 4;
    }
    for (size_t i = 0; i < N_ALL; i++)
        t->train[i] = i, t->val[i] = i;
    t->ds = (cbq_dataset){.n = N_ALL, .height = S, .width = S, .n_outputs = 1, .slices = t->x,
                          .targets = t->y, .volume = t->vol};
}

static cbq_net *tiny_net(uint64_t seed)
{
    static const char json[] =
        "{\"format_version\":1,\"input\":{\"height\":12,\"width\":12,\"hu_min\":0,\"hu_max\":1},"
        "\"outputs\":[\"mean\"],\"target_layer\":\"act\",\"layers\":["
        "{\"name\":\"conv\",\"type\":\"conv2d\",\"in_channels\":1,\"out_channels\":4,\"kernel_size\":3,\"padding\":1},"
        "{\"name\":\"act\",\"type\":\"leaky_relu\",\"negative_slope\":0.1},"
        "{\"name\":\"gap\",\"type\":\"global_avgpool\"},"
        "{\"name\":\"head\",\"type\":\"linear\",\"in_features\":4,\"out_features\":1}]}";
    cbq_model_spec spec;
    cbq_error err = {0};
    assert_int_equal(cbq_model_json_parse(&spec, json, sizeof json - 1, "tiny", &err), CBQ_OK);
    cbq_net *net = NULL;
    assert_int_equal(cbq_net_create(&net, &spec, 16, seed, &err), CBQ_OK);
    cbq_model_spec_free(&spec);
    cbq_net_set_threads(net, 1);
    return net;
}

typedef struct {
    size_t calls;
    cbq_epoch_log last;
} log_sink;

static void record(void *ctx, const cbq_epoch_log *e)
{
    log_sink *s = ctx;
    s->calls++;
    assert_int_equal(e->epoch, s->calls);
    assert_true(e->seconds >= 0.0 && isfinite(e->train_loss));
    s->last = *e;
}

static cbq_trainer_cfg base_cfg(void)
{
    cbq_trainer_cfg c;
    cbq_trainer_defaults(&c);
    c.epochs = 40;
    c.batch_size = 16;
    c.patience = 0;
    c.optim.lr = 0.02;
    c.seed = 9;
    return c;
}

static void test_learns_mean_intensity(void **state)
{
    (void)state;
    static task t;
    make_task(&t, 1);
    double mean = 0.0, var = 0.0;
    for (size_t i = N_TRAIN; i < N_ALL; i++)
        mean += t.y[i] / (double)N_VAL;
    for (size_t i = N_TRAIN; i < N_ALL; i++)
        var += (t.y[i] - mean) * (t.y[i] - mean) / (double)N_VAL;
    cbq_net *net = tiny_net(3);
    cbq_trainer_cfg cfg = base_cfg();
    log_sink sink = {0};
    cfg.log = record;
    cfg.log_ctx = &sink;
    cfg.augment = (cbq_augment_cfg){.hflip = 1}; /* the mean is flip-invariant */
    cbq_train_result res;
    cbq_error err = {0};
    float in[16 * S * S], tgt[16];
    double before = 0.0;
    assert_int_equal(cbq_evaluate(net, &t.ds, t.val + N_TRAIN, N_VAL, 16, &cfg.loss, in, tgt, &before, &err),
                     CBQ_OK);
    assert_int_equal(cbq_train(net, &t.ds, t.train, N_TRAIN, t.val + N_TRAIN, N_VAL, &cfg, &res, &err), CBQ_OK);
    print_message("val MSE: untrained %.5f, trained %.6f, constant-predictor floor %.5f\n", before,
                  res.best_val_loss, var);
    assert_int_equal(sink.calls, 40);
    assert_int_equal(res.epochs_run, 40);
    assert_true(res.best_val_loss < 0.01 * var);
    assert_true(before > 0.5 * var);
    assert_true(sink.last.lr < cfg.optim.lr * 0.01); /* cosine schedule ends near 0 */
    /* The net holds the best epoch's weights. */
    double after = 0.0;
    assert_int_equal(cbq_evaluate(net, &t.ds, t.val + N_TRAIN, N_VAL, 16, &cfg.loss, in, tgt, &after, &err),
                     CBQ_OK);
    assert_true(after == res.best_val_loss);
    cbq_net_free(net);
}

static void test_early_stopping_keeps_best(void **state)
{
    (void)state;
    static task t;
    make_task(&t, 2);
    cbq_net *net = tiny_net(4);
    cbq_trainer_cfg cfg = base_cfg();
    cfg.optim.lr = 0.0; /* nothing changes: no epoch after the first improves */
    cfg.cosine = 0;
    cfg.patience = 3;
    cbq_train_result res;
    cbq_error err = {0};
    assert_int_equal(cbq_train(net, &t.ds, t.train, N_TRAIN, t.val + N_TRAIN, N_VAL, &cfg, &res, &err), CBQ_OK);
    assert_int_equal(res.epochs_run, 4);
    assert_int_equal(res.best_epoch, 1);
    assert_true(res.stopped_early);
    cbq_net_free(net);
}

/* A 3-channel replicate model with ImageNet-style mean/std trains on what
 * the model-input path builds for it, and that is the 1-channel input of
 * the same volume repeated in every channel and normalised per channel:
 * every plane the trainer puts into a batch is checked (the augmentation
 * hook sees each channel of each sample as it goes into the batch). */
enum { NZ = 5, CH = 3 };
static const double MEAN3[CH] = {0.485, 0.456, 0.406}, STD3[CH] = {0.229, 0.224, 0.225};

typedef struct {
    const float *one;      /* [NZ, S, S]: the 1-channel input */
    const float *three;    /* [NZ, CH, S, S]: the 3-channel input */
    size_t sample, channel, planes_checked;
    double max_err;
} batch_probe;

static int probe_fetch(void *ctx, size_t i, float *x, float *y, cbq_error *err)
{
    (void)err;
    batch_probe *p = ctx;
    p->sample = i;
    p->channel = 0;
    memcpy(x, p->three + i * CH * S * S, CH * S * S * sizeof *x);
    y[0] = (float)i;
    return CBQ_OK;
}

static void probe_plane(void *ctx, float *plane, size_t h, size_t w, cbq_rng *rng)
{
    (void)rng;
    batch_probe *p = ctx;
    size_t ch = p->channel++;
    assert_true(ch < CH && h == S && w == S);
    for (size_t q = 0; q < S * S; q++) {
        float want = (p->one[p->sample * S * S + q] - (float)MEAN3[ch]) / (float)STD3[ch];
        double e = fabs((double)plane[q] - want);
        p->max_err = e > p->max_err ? e : p->max_err;
    }
    p->planes_checked++;
}

static cbq_net *replicate_net(void)
{
    static const char json[] =
        "{\"format_version\":1,\"input\":{\"height\":12,\"width\":12,\"hu_min\":-100,\"hu_max\":100,"
        "\"channels\":3,\"slices\":\"replicate\",\"mean\":[0.485,0.456,0.406],\"std\":[0.229,0.224,0.225]},"
        "\"outputs\":[\"mean\"],\"target_layer\":\"conv\",\"layers\":["
        "{\"name\":\"conv\",\"type\":\"conv2d\",\"in_channels\":3,\"out_channels\":4,\"kernel_size\":3},"
        "{\"name\":\"gap\",\"type\":\"global_avgpool\"},"
        "{\"name\":\"head\",\"type\":\"linear\",\"in_features\":4,\"out_features\":1}]}";
    cbq_model_spec spec;
    cbq_error err = {0};
    assert_int_equal(cbq_model_json_parse(&spec, json, sizeof json - 1, "three", &err), CBQ_OK);
    cbq_net *net = NULL;
    assert_int_equal(cbq_net_create(&net, &spec, 16, 1, &err), CBQ_OK);
    cbq_model_spec_free(&spec);
    cbq_net_set_threads(net, 1);
    return net;
}

static void test_replicate_batch_is_normalised_repeat(void **state)
{
    (void)state;
    cbq_error err = {0};
    cbq_volume vol;
    const double spacing[3] = {1.0, 1.0, 2.0};
    assert_int_equal(cbq_volume_alloc(&vol, S, S, NZ, spacing, 0, &err), CBQ_OK);
    cbq_rng rng;
    cbq_rng_seed(&rng, 14);
    for (size_t i = 0; i < (size_t)S * S * NZ; i++)
        vol.data[i] = (float)(300.0 * cbq_rng_uniform(&rng) - 150.0); /* some clip at the window */
    cbq_net *net = replicate_net();
    cbq_input_spec one_channel = cbq_net_spec(net)->input;
    one_channel.channels = 1;
    one_channel.n_norm = 0;
    cbq_model_input_options o = {0};
    cbq_model_input in1, in3;
    assert_int_equal(cbq_model_input_from_volume(&in1, &vol, "v", &one_channel, &o, &err), CBQ_OK);
    assert_int_equal(cbq_model_input_from_volume(&in3, &vol, "v", &cbq_net_spec(net)->input, &o, &err), CBQ_OK);
    assert_int_equal(in1.n, NZ);
    assert_int_equal(in3.n, NZ);
    assert_int_equal(in3.channels, CH);
    batch_probe probe = {.one = in1.x, .three = in3.x};
    cbq_dataset ds = {.n = NZ, .height = S, .width = S, .channels = CH, .n_outputs = 1,
                      .fetch = probe_fetch, .fetch_ctx = &probe};
    size_t idx[NZ] = {0, 1, 2, 3, 4};
    cbq_trainer_cfg cfg = base_cfg();
    cfg.epochs = 2;
    cfg.batch_size = 2;
    cfg.augment = (cbq_augment_cfg){.hook = probe_plane, .hook_ctx = &probe};
    cbq_train_result res;
    assert_int_equal(cbq_train(net, &ds, idx, NZ, NULL, 0, &cfg, &res, &err), CBQ_OK);
    print_message("replicate: %zu planes, max |batch - (x - mean) / std| = %.2e\n", probe.planes_checked,
                  probe.max_err);
    assert_int_equal(probe.planes_checked, 2 * NZ * CH);
    assert_true(probe.max_err <= 1e-6);
    assert_int_equal(res.steps, 2 * 3);
    /* The trainer refuses samples of another channel count than the model's. */
    ds.channels = 1;
    assert_int_not_equal(cbq_train(net, &ds, idx, NZ, NULL, 0, &cfg, &res, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "1 channels per slice, but the model takes 3 input channels"));
    cbq_model_input_free(&in1);
    cbq_model_input_free(&in3);
    cbq_volume_free(&vol);
    cbq_net_free(net);
}

/* One augmentation draw moves every channel of a sample alike (a 2.5D
 * sample's neighbouring slices stay aligned), and one channel is
 * cbq_augment_slice exactly. */
static void test_augment_sample_moves_channels_alike(void **state)
{
    (void)state;
    enum { H = 6, W = 7 };
    float x[3 * H * W], ref[H * W], scratch[H * W];
    for (size_t i = 0; i < 3 * H * W; i++)
        x[i] = (float)(i % (H * W)) * 0.25f - 2.0f;
    memcpy(ref, x, sizeof ref);
    cbq_augment_cfg a = {.hflip = 1, .max_shift = 2, .jitter_scale = 0.1, .jitter_offset = 0.1};
    for (uint64_t seed = 1; seed <= 8; seed++) {
        float y[3 * H * W], one[H * W];
        memcpy(y, x, sizeof y);
        memcpy(one, ref, sizeof one);
        cbq_rng r1, r2;
        cbq_rng_seed(&r1, seed);
        cbq_rng_seed(&r2, seed);
        cbq_augment_sample(&a, y, 3, scratch, H, W, &r1);
        cbq_augment_slice(&a, one, scratch, H, W, &r2);
        for (size_t ch = 0; ch < 3; ch++)
            assert_memory_equal(y + ch * H * W, one, sizeof one);
        assert_int_equal(cbq_rng_u64(&r1), cbq_rng_u64(&r2)); /* the same draws */
    }
}

static void test_deterministic_for_a_seed(void **state)
{
    (void)state;
    static task t;
    make_task(&t, 3);
    cbq_trainer_cfg cfg = base_cfg();
    cfg.epochs = 3;
    cfg.augment = (cbq_augment_cfg){.hflip = 1, .max_shift = 2, .jitter_scale = 0.1, .jitter_offset = 0.05};
    float *w[3];
    for (int run = 0; run < 3; run++) {
        cbq_net *net = tiny_net(5);
        cfg.seed = run == 2 ? 10 : 9;
        cbq_train_result res;
        cbq_error err = {0};
        assert_int_equal(cbq_train(net, &t.ds, t.train, N_TRAIN, NULL, 0, &cfg, &res, &err), CBQ_OK);
        assert_true(isnan(res.best_val_loss) && res.best_epoch == 3);
        cbq_tensor_view v;
        assert_true(cbq_net_tensor_find(net, "conv.weight", &v));
        w[run] = malloc(v.numel * sizeof(float));
        memcpy(w[run], v.data, v.numel * sizeof(float));
        cbq_net_free(net);
    }
    assert_memory_equal(w[0], w[1], 36 * sizeof(float));
    assert_memory_not_equal(w[0], w[2], 36 * sizeof(float));
    for (int i = 0; i < 3; i++)
        free(w[i]);
}

static void test_split_keeps_volumes_whole(void **state)
{
    (void)state;
    static task t;
    make_task(&t, 4);
    size_t n_tr = 0, n_va = 0;
    cbq_error err = {0};
    assert_int_equal(cbq_dataset_split_by_volume(&t.ds, 0.25, 7, t.train, &n_tr, t.val, &n_va, &err), CBQ_OK);
    assert_int_equal(n_tr + n_va, N_ALL);
    assert_int_equal(n_va, 16 * 4); /* round(0.25 * 64 volumes) = 16 volumes of 4 slices */
    for (size_t i = 0; i < n_va; i++)
        for (size_t j = 0; j < n_tr; j++)
            assert_int_not_equal(t.vol[t.val[i]], t.vol[t.train[j]]);
    assert_int_equal(cbq_dataset_split_by_volume(&t.ds, 1.5, 7, t.train, &n_tr, t.val, &n_va, &err),
                     CBQ_ERR_ARG);
}

static void test_augmentations(void **state)
{
    (void)state;
    enum { H = 5, W = 7 };
    float x[H * W], y[H * W], scratch[H * W];
    for (int i = 0; i < H * W; i++)
        x[i] = (float)(i + 1);
    cbq_rng rng;
    cbq_rng_seed(&rng, 1);
    int flipped = 0, kept = 0, shifted = 0;
    for (int iter = 0; iter < 200; iter++) {
        memcpy(y, x, sizeof x);
        cbq_augment_cfg flip = {.hflip = 1};
        cbq_augment_slice(&flip, y, scratch, H, W, &rng);
        int same = memcmp(x, y, sizeof x) == 0, mirror = 1;
        for (int r = 0; r < H; r++)
            for (int c = 0; c < W; c++)
                mirror &= y[r * W + c] == x[r * W + (W - 1 - c)];
        assert_true(same || mirror);
        flipped += mirror, kept += same;

        memcpy(y, x, sizeof x);
        cbq_augment_cfg sh = {.max_shift = 2};
        cbq_augment_slice(&sh, y, scratch, H, W, &rng);
        int found = 0;
        for (int dy = -2; dy <= 2 && !found; dy++)
            for (int dx = -2; dx <= 2 && !found; dx++) {
                int match = 1;
                for (int r = 0; r < H; r++)
                    for (int c = 0; c < W; c++) {
                        int sr = r - dy, sc = c - dx;
                        float want = sr >= 0 && sr < H && sc >= 0 && sc < W ? x[sr * W + sc] : 0.0f;
                        match &= y[r * W + c] == want;
                    }
                found = match;
                shifted += match && (dy || dx);
            }
        assert_true(found);

        memcpy(y, x, sizeof x);
        cbq_augment_cfg jit = {.jitter_scale = 0.2, .jitter_offset = 0.5};
        cbq_augment_slice(&jit, y, scratch, H, W, &rng);
        double a = (y[1] - y[0]) / (x[1] - x[0]), b = y[0] - a * x[0];
        assert_true(fabs(a - 1.0) <= 0.2 + 1e-6 && fabs(b) <= 0.5 + 1e-5);
        for (int i = 0; i < H * W; i++)
            assert_true(fabs(y[i] - (a * x[i] + b)) < 1e-4);
    }
    assert_true(flipped > 60 && kept > 60 && shifted > 100);
}

/* A fetch callback over the same arrays; fails at index `bad` when set. */
typedef struct {
    const task *t;
    size_t bad;
} fetch_ctx;

static int fetch(void *ctx, size_t i, float *slice, float *target, cbq_error *err)
{
    const fetch_ctx *f = ctx;
    if (i == f->bad)
        return CBQ_FAIL(err, CBQ_ERR_IO, "slice %zu: cannot read", i);
    memcpy(slice, f->t->x + i * S * S, S * S * sizeof *slice);
    *target = f->t->y[i];
    return CBQ_OK;
}

static void test_fetch_callback_matches_arrays(void **state)
{
    (void)state;
    static task t;
    make_task(&t, 5);
    cbq_trainer_cfg cfg = base_cfg();
    cfg.epochs = 2;
    fetch_ctx fc = {&t, (size_t)-1};
    cbq_dataset by_fetch = t.ds;
    by_fetch.slices = NULL;
    by_fetch.targets = NULL;
    by_fetch.fetch = fetch;
    by_fetch.fetch_ctx = &fc;
    cbq_train_result ra, rb;
    cbq_error err = {0};
    cbq_net *a = tiny_net(6), *b = tiny_net(6);
    assert_int_equal(cbq_train(a, &t.ds, t.train, N_TRAIN, t.val + N_TRAIN, N_VAL, &cfg, &ra, &err), CBQ_OK);
    assert_int_equal(cbq_train(b, &by_fetch, t.train, N_TRAIN, t.val + N_TRAIN, N_VAL, &cfg, &rb, &err), CBQ_OK);
    assert_true(ra.best_val_loss == rb.best_val_loss);
    cbq_tensor_view va, vb;
    assert_true(cbq_net_tensor_find(a, "head.weight", &va) && cbq_net_tensor_find(b, "head.weight", &vb));
    assert_memory_equal(va.data, vb.data, va.numel * sizeof(float));
    fc.bad = N_TRAIN + 3; /* a validation slice */
    assert_int_equal(cbq_train(b, &by_fetch, t.train, N_TRAIN, t.val + N_TRAIN, N_VAL, &cfg, &rb, &err), CBQ_ERR_IO);
    assert_non_null(strstr(err.msg, "slice 195: cannot read"));
    cbq_net_free(a);
    cbq_net_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_mean_intensity),
        cmocka_unit_test(test_replicate_batch_is_normalised_repeat),
        cmocka_unit_test(test_augment_sample_moves_channels_alike),
        cmocka_unit_test(test_early_stopping_keeps_best),
        cmocka_unit_test(test_deterministic_for_a_seed),
        cmocka_unit_test(test_split_keeps_volumes_whole),
        cmocka_unit_test(test_augmentations),
        cmocka_unit_test(test_fetch_callback_matches_arrays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
