/* test_cam.c - attribution through a real (tiny) network built in C:
 * the Grad-CAM identity (pre-ReLU map sums to y_c - b_c on the feature
 * grid), scaling of the head, the map of a zero slice, batch independence,
 * gradient x input against finite differences, Integrated Gradients'
 * completeness, the randomisation cascade and the sanity checks built on
 * it, structure energy, bad layers. */
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
#include "cbctiq/net.h"
#include "cbctiq/sanity.h"

enum { IN = 8 };

static cbq_layer_spec conv(const char *name, int cin, int cout, int stride, int pad)
{
    cbq_layer_spec l = {.kind = CBQ_LAYER_CONV2D};
    snprintf(l.name, sizeof l.name, "%s", name);
    l.cfg.conv = (cbq_conv2d_cfg){.in_channels = cin, .out_channels = cout, .kernel_h = 3,
                                  .kernel_w = 3, .stride_h = stride, .stride_w = stride,
                                  .pad_h = pad, .pad_w = pad, .bias = 1};
    return l;
}

static cbq_layer_spec simple(const char *name, cbq_layer_kind kind)
{
    cbq_layer_spec l = {.kind = kind};
    snprintf(l.name, sizeof l.name, "%s", name);
    if (kind == CBQ_LAYER_BATCHNORM2D)
        l.cfg.bn = (cbq_batchnorm2d_cfg){.channels = 3, .eps = 1e-5, .momentum = 0.1};
    if (kind == CBQ_LAYER_DROPOUT)
        l.cfg.dropout.p = 0.5;
    if (kind == CBQ_LAYER_LINEAR)
        l.cfg.linear = (cbq_linear_cfg){.in_features = 4, .out_features = 3, .bias = 1};
    return l;
}

/* conv1 -> bn1 -> relu1 -> conv2 (stride 2) -> relu2 [target] -> drop -> gap -> head */
static void make_spec(cbq_model_spec *spec, int pad, size_t in)
{
    memset(spec, 0, sizeof *spec);
    snprintf(spec->arch, sizeof spec->arch, "test");
    spec->input = (cbq_input_spec){.height = (int)in, .width = (int)in, .hu_min = -1000, .hu_max = 1000};
    cbq_layer_spec layers[] = {
        conv("conv1", 1, 3, 1, pad), simple("bn1", CBQ_LAYER_BATCHNORM2D),
        simple("relu1", CBQ_LAYER_RELU), conv("conv2", 3, 4, 2, pad),
        simple("relu2", CBQ_LAYER_RELU), simple("drop", CBQ_LAYER_DROPOUT),
        simple("gap", CBQ_LAYER_GLOBAL_AVGPOOL), simple("head", CBQ_LAYER_LINEAR),
    };
    spec->n_layers = sizeof layers / sizeof layers[0];
    spec->layers = malloc(sizeof layers);
    assert_non_null(spec->layers);
    memcpy(spec->layers, layers, sizeof layers);
    spec->n_outputs = 3;
    snprintf(spec->outputs[0], CBQ_NAME_MAX, "a");
    snprintf(spec->outputs[1], CBQ_NAME_MAX, "b");
    snprintf(spec->outputs[2], CBQ_NAME_MAX, "c");
    snprintf(spec->target_layer, CBQ_NAME_MAX, "relu2");
}

/* Every float tensor random, BN running variances positive, so that no
 * layer is an identity by accident. */
static void randomise_all(cbq_net *net, uint64_t seed)
{
    cbq_rng rng;
    cbq_rng_seed(&rng, seed);
    for (size_t t = 0; t < cbq_net_tensor_count(net); t++) {
        cbq_tensor_view v;
        cbq_net_tensor(net, t, &v);
        if (v.dtype != CBQ_DTYPE_F32)
            continue;
        float *d = v.data;
        int var = strstr(v.name, "running_var") != NULL;
        for (size_t i = 0; i < v.numel; i++)
            d[i] = var ? (float)(0.5 + cbq_rng_uniform(&rng)) : (float)(cbq_rng_uniform(&rng) - 0.3);
    }
}

typedef struct {
    cbq_model_spec spec;
    cbq_net *net;
} fixture;

static fixture *make_fixture(int pad, size_t in, size_t max_batch)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    make_spec(&f->spec, pad, in);
    cbq_error err = {0};
    if (cbq_net_create(&f->net, &f->spec, max_batch, 7, &err) != CBQ_OK)
        fail_msg("%s", err.msg);
    randomise_all(f->net, 11);
    return f;
}

static void free_fixture(fixture *f)
{
    cbq_net_free(f->net);
    cbq_model_spec_free(&f->spec);
    free(f);
}

static float *random_slices(size_t n, size_t in, uint64_t seed)
{
    float *x = malloc(n * in * in * sizeof *x);
    assert_non_null(x);
    cbq_rng rng;
    cbq_rng_seed(&rng, seed);
    for (size_t i = 0; i < n * in * in; i++)
        x[i] = (float)cbq_rng_uniform(&rng);
    return x;
}

static cbq_cam *make_cam(fixture *f, size_t max_batch, cbq_cam_method m, int relu, int sign)
{
    cbq_attrib_options opt;
    cbq_attrib_options_default(&opt);
    opt.method = m;
    opt.relu = relu;
    opt.sign = sign;
    cbq_cam *cam = NULL;
    cbq_error err = {0};
    if (cbq_cam_create(&cam, f->net, max_batch, &opt, &err) != CBQ_OK)
        fail_msg("%s", err.msg);
    return cam;
}

static void assert_near(double got, double want, double rel, const char *what)
{
    double tol = rel * fmax(1.0, fabs(want));
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.9g, want %.9g (tol %.3g)", what, got, want, tol);
}

/* sum_ij sum_k (w_ck / hw) A_k(ij) = y_c - b_c for GAP + linear after the target. */
static void test_identity(void **state)
{
    (void)state;
    fixture *f = make_fixture(1, IN, 6);
    float *x = random_slices(6, IN, 3);
    for (int sign = -1; sign <= 1; sign += 2) {
        cbq_cam *cam = make_cam(f, 6, CBQ_CAM_GRADCAM, 1, sign);
        assert_true(cbq_cam_identity_holds(cam));
        cbq_error err = {0};
        assert_int_equal(cbq_cam_run(cam, x, 6, &err), CBQ_OK);
        const float *y = cbq_cam_pred(cam);
        for (size_t c = 0; c < 3; c++) {
            const cbq_cam_slice_sum *s = cbq_cam_sums(cam, c);
            double b = cbq_cam_output_bias(cam, c);
            for (size_t i = 0; i < 6; i++) {
                assert_near(s[i].feature_pre, sign * (y[i * 3 + c] - b), 1e-5, "pre-ReLU sum");
                assert_true(s[i].feature_post >= s[i].feature_pre - 1e-6);
                assert_near(s[i].feature, s[i].feature_post, 1e-6, "chosen = post-ReLU");
                /* integer factor 2 upsampling: input-grid sum = 4 x feature-grid sum */
                assert_near(s[i].input, 4.0 * s[i].feature, 1e-5, "input grid mass");
            }
            const float *m = cbq_cam_map_input(cam, c);
            for (size_t i = 0; i < 6 * IN * IN; i++)
                assert_true(m[i] >= 0.0f);
        }
        cbq_cam_free(cam);
    }
    /* the head's bias must be the one the net uses */
    cbq_tensor_view bias;
    assert_true(cbq_net_tensor_find(f->net, "head.bias", &bias));
    cbq_cam *cam = make_cam(f, 6, CBQ_CAM_GRADCAM, 1, 1);
    assert_true(cbq_cam_output_bias(cam, 2) == ((float *)bias.data)[2]);
    cbq_cam_free(cam);
    free(x);
    free_fixture(f);
}

static double volume_ae(fixture *f, cbq_cam_method m, const float *x, size_t nz, size_t batch,
                        size_t output)
{
    cbq_cam *cam = make_cam(f, batch, m, 1, 1);
    cbq_ae ae[3];
    cbq_error err = {0};
    if (cbq_attrib_volume(cam, x, nz, NULL, ae, NULL, NULL, NULL, &err) != CBQ_OK)
        fail_msg("%s", err.msg);
    double v = ae[output].ae;
    for (size_t c = 0; c < 3; c++)
        cbq_ae_free(&ae[c]);
    cbq_cam_free(cam);
    return v;
}

/* Scaling the head (weights and bias) by s > 0 scales y - b, hence every
 * gradient at the target, by s; the activations do not change. */
static void test_head_scaling(void **state)
{
    (void)state;
    fixture *f = make_fixture(1, IN, 4);
    float *x = random_slices(9, IN, 5);
    const cbq_cam_method methods[] = {CBQ_CAM_GRADCAM, CBQ_CAM_HIRESCAM, CBQ_CAM_LAYERCAM,
                                      CBQ_CAM_XGRADCAM};
    double before[4][3];
    for (size_t m = 0; m < 4; m++)
        for (size_t c = 0; c < 3; c++)
            before[m][c] = volume_ae(f, methods[m], x, 9, 4, c);
    const double s = 2.5;
    const char *names[] = {"head.weight", "head.bias"};
    for (int t = 0; t < 2; t++) {
        cbq_tensor_view v;
        assert_true(cbq_net_tensor_find(f->net, names[t], &v));
        for (size_t i = 0; i < v.numel; i++)
            ((float *)v.data)[i] *= (float)s;
    }
    for (size_t m = 0; m < 4; m++)
        for (size_t c = 0; c < 3; c++)
            assert_near(volume_ae(f, methods[m], x, 9, 4, c), s * before[m][c], 1e-5, "scaled AE");
    free(x);
    free_fixture(f);
}

/* Without padding a zero slice gives spatially constant activations at every
 * layer, so the Grad-CAM map is constant: by the identity each of the hw
 * feature pixels holds (y_c - b_c)/hw, clipped at 0; upsampling a constant
 * keeps it. */
static void test_zero_slice(void **state)
{
    (void)state;
    fixture *f = make_fixture(0, 11, 2); /* 11 -> 9 -> 4x4 */
    float x[11 * 11] = {0};
    for (int sign = -1; sign <= 1; sign += 2) {
        cbq_cam *cam = make_cam(f, 2, CBQ_CAM_GRADCAM, 1, sign);
        size_t h, w;
        cbq_cam_feature_shape(cam, &h, &w);
        assert_int_equal(h * w, 16);
        cbq_error err = {0};
        assert_int_equal(cbq_cam_run(cam, x, 1, &err), CBQ_OK);
        for (size_t c = 0; c < 3; c++) {
            double want = sign * (cbq_cam_pred(cam)[c] - cbq_cam_output_bias(cam, c)) / 16.0;
            want = want > 0 ? want : 0.0;
            const float *fm = cbq_cam_map_feature(cam, c), *im = cbq_cam_map_input(cam, c);
            for (size_t i = 0; i < 16; i++)
                assert_near(fm[i], want, 1e-5, "feature map of a zero slice");
            for (size_t i = 0; i < 121; i++)
                assert_near(im[i], want, 1e-5, "input map of a zero slice");
        }
        cbq_cam_free(cam);
    }
    free_fixture(f);
}

/* A volume in batches of 4 equals the same slices one at a time, for every
 * output: the backward per output leaves the forward state intact. */
static void test_batch_independence(void **state)
{
    (void)state;
    fixture *f = make_fixture(1, IN, 4);
    float *x = random_slices(11, IN, 9);
    const cbq_cam_method methods[] = {CBQ_CAM_GRADCAM, CBQ_CAM_GRADCAMPP, CBQ_CAM_EIGENCAM,
                                      CBQ_CAM_SCORECAM, CBQ_CAM_GRADXINPUT, CBQ_CAM_IG};
    for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
        cbq_cam *batched = make_cam(f, 4, methods[m], 1, 1);
        cbq_cam *single = make_cam(f, 1, methods[m], 1, 1);
        cbq_ae ae[3];
        cbq_error err = {0};
        float *maps[3];
        for (size_t c = 0; c < 3; c++)
            maps[c] = malloc(11 * IN * IN * sizeof(float));
        assert_int_equal(cbq_attrib_volume(batched, x, 11, NULL, ae, maps, NULL, NULL, &err), CBQ_OK);
        for (size_t z = 0; z < 11; z++) {
            assert_int_equal(cbq_cam_run(single, x + z * IN * IN, 1, &err), CBQ_OK);
            for (size_t c = 0; c < 3; c++) {
                const float *im = cbq_cam_map_input(single, c);
                for (size_t i = 0; i < IN * IN; i++)
                    assert_near(maps[c][z * IN * IN + i], im[i], 1e-5, cbq_cam_method_name(methods[m]));
                assert_near(ae[c].profile[z], cbq_cam_sums(single, c)[0].input, 1e-5, "profile");
            }
        }
        for (size_t c = 0; c < 3; c++) {
            free(maps[c]);
            cbq_ae_free(&ae[c]);
        }
        cbq_cam_free(batched);
        cbq_cam_free(single);
    }
    free(x);
    free_fixture(f);
}

/* Eigen-CAM is class-agnostic; Score-CAM's map is a convex combination of
 * the channels (softmax weights). */
static void test_gradient_free_methods(void **state)
{
    (void)state;
    fixture *f = make_fixture(1, IN, 8);
    float *x = random_slices(3, IN, 13);
    cbq_error err = {0};
    cbq_cam *eig = make_cam(f, 8, CBQ_CAM_EIGENCAM, 0, 1);
    assert_int_equal(cbq_cam_run(eig, x, 3, &err), CBQ_OK);
    assert_memory_equal(cbq_cam_map_feature(eig, 0), cbq_cam_map_feature(eig, 2), 3 * 16 * sizeof(float));
    cbq_cam_free(eig);

    const float *out = NULL;
    assert_int_equal(cbq_net_forward(f->net, x, 3, &out, &err), CBQ_OK);
    size_t target = 4;
    float *A = malloc(3 * 4 * 16 * sizeof *A);
    memcpy(A, cbq_net_activation(f->net, target), 3 * 4 * 16 * sizeof *A);
    cbq_cam *sc = make_cam(f, 8, CBQ_CAM_SCORECAM, 0, 1);
    assert_int_equal(cbq_cam_run(sc, x, 3, &err), CBQ_OK);
    for (size_t c = 0; c < 3; c++) {
        const float *m = cbq_cam_map_feature(sc, c);
        for (size_t s = 0; s < 3; s++)
            for (size_t i = 0; i < 16; i++) {
                float lo = INFINITY, hi = -INFINITY;
                for (size_t k = 0; k < 4; k++) {
                    float a = A[(s * 4 + k) * 16 + i];
                    lo = a < lo ? a : lo;
                    hi = a > hi ? a : hi;
                }
                assert_true(m[s * 16 + i] >= lo - 1e-6f && m[s * 16 + i] <= hi + 1e-6f);
            }
    }
    cbq_cam_free(sc);
    free(A);
    free(x);
    free_fixture(f);
}

static double output_at(cbq_net *net, const float *x, size_t c)
{
    const float *out = NULL;
    cbq_error err = {0};
    assert_int_equal(cbq_net_forward(net, x, 1, &out, &err), CBQ_OK);
    return out[c];
}

/* Gradient x input: x_i * dy/dx_i with the derivative by central
 * differences in the slice (the net is piecewise linear; small steps stay on
 * one piece). */
static void test_gradxinput_finite_differences(void **state)
{
    (void)state;
    fixture *f = make_fixture(1, IN, 2);
    float *x = random_slices(1, IN, 17);
    cbq_cam *cam = make_cam(f, 2, CBQ_CAM_GRADXINPUT, 0, 1);
    cbq_error err = {0};
    assert_int_equal(cbq_cam_run(cam, x, 1, &err), CBQ_OK);
    const float *m = cbq_cam_map_input(cam, 1);
    float *xp = malloc(IN * IN * sizeof *xp);
    const float h = 1e-2f;
    for (size_t i = 0; i < IN * IN; i += 5) {
        memcpy(xp, x, IN * IN * sizeof *xp);
        xp[i] = x[i] + h;
        double up = output_at(f->net, xp, 1);
        xp[i] = x[i] - h;
        double down = output_at(f->net, xp, 1);
        double want = x[i] * (up - down) / (2.0 * h);
        assert_near(m[i], want, 2e-3, "gradient x input");
    }
    free(xp);
    cbq_cam_free(cam);
    free(x);
    free_fixture(f);
}

/* Completeness (Sundararajan et al. 2017): sum IG = y(x) - y(0) as the
 * quadrature converges. */
static void test_ig_completeness(void **state)
{
    (void)state;
    fixture *f = make_fixture(1, IN, 16);
    float *x = random_slices(1, IN, 19);
    float zero[IN * IN] = {0};
    for (int rule = 0; rule < 2; rule++) {
        cbq_attrib_options opt;
        cbq_attrib_options_default(&opt);
        opt.method = CBQ_CAM_IG;
        opt.relu = 0;
        opt.ig_steps = 256;
        opt.ig_rule = rule ? CBQ_IG_RIGHT : CBQ_IG_TRAPEZOID;
        cbq_cam *cam = NULL;
        cbq_error err = {0};
        assert_int_equal(cbq_cam_create(&cam, f->net, 16, &opt, &err), CBQ_OK);
        assert_int_equal(cbq_cam_run(cam, x, 1, &err), CBQ_OK);
        double got[3];
        for (size_t c = 0; c < 3; c++)
            got[c] = cbq_cam_sums(cam, c)[0].input;
        for (size_t c = 0; c < 3; c++) {
            double want = output_at(f->net, x, c) - output_at(f->net, zero, c);
            assert_near(got[c], want, 1e-2, "IG completeness");
        }
        cbq_cam_free(cam);
    }
    free(x);
    free_fixture(f);
}

static void test_structure_energy(void **state)
{
    (void)state;
    fixture *f = make_fixture(1, IN, 4);
    float *x = random_slices(5, IN, 23);
    float *ones = malloc(5 * IN * IN * sizeof *ones), *half = malloc(5 * IN * IN * sizeof *half);
    for (size_t i = 0; i < 5 * IN * IN; i++) {
        ones[i] = 1.0f;
        half[i] = (i % IN) < IN / 2 ? 1.0f : 0.0f;
    }
    const float *structures[3] = {ones, half, NULL};
    cbq_cam *cam = make_cam(f, 4, CBQ_CAM_GRADCAM, 1, 1);
    cbq_ae ae[3];
    float *maps[3];
    for (size_t c = 0; c < 3; c++)
        maps[c] = malloc(5 * IN * IN * sizeof(float));
    cbq_error err = {0};
    assert_int_equal(cbq_attrib_volume(cam, x, 5, structures, ae, maps, NULL, NULL, &err), CBQ_OK);
    assert_near(ae[0].ae_in_structure, ae[0].ae, 1e-6, "all-ones structure");
    assert_near(cbq_ae_structure_fraction(&ae[0]), 1.0, 1e-6, "fraction 1");
    double left = 0.0, total = 0.0;
    for (size_t i = 0; i < 5 * IN * IN; i++) {
        total += maps[1][i];
        left += (i % IN) < IN / 2 ? maps[1][i] : 0.0;
    }
    assert_near(ae[1].ae, total, 1e-6, "AE = sum of the map");
    assert_near(ae[1].ae_in_structure, left, 1e-6, "left half");
    assert_near(ae[1].structure_sum, 5 * IN * IN / 2, 1e-9, "structure voxels");
    assert_false(ae[2].has_structure);
    assert_true(isnan(cbq_ae_structure_fraction(&ae[2])));
    double pred = 0.0;
    for (size_t c = 0; c < 3; c++) {
        assert_int_equal(ae[c].n_slices, 5);
        assert_near(cbq_ae_per_slice(&ae[c]), ae[c].ae / 5, 1e-12, "per slice");
        assert_near(ae[c].ae_feature_pre, ae[c].pred_part, 1e-5, "volume identity");
        assert_true(cbq_ae_clipped(&ae[c]) >= -1e-6);
        (void)pred;
    }
    cbq_attrib_options o;
    cbq_attrib_options_default(&o);
    o.grid = CBQ_GRID_FEATURE;
    o.aggregate = CBQ_AGG_MEAN;
    assert_near(cbq_ae_selected(&ae[0], &o), ae[0].ae_feature / 5, 1e-12, "selected");
    for (size_t c = 0; c < 3; c++) {
        free(maps[c]);
        cbq_ae_free(&ae[c]);
    }
    cbq_cam_free(cam);
    free(ones);
    free(half);
    free(x);
    free_fixture(f);
}

static void test_randomise_cascade(void **state)
{
    (void)state;
    fixture *f = make_fixture(1, IN, 2);
    assert_int_equal(cbq_randomise_n_steps(f->net), 4); /* head, conv2, bn1, conv1 */
    assert_string_equal(cbq_randomise_step_layer(f->net, 1), "head");
    assert_string_equal(cbq_randomise_step_layer(f->net, 2), "conv2");
    cbq_net *fresh = NULL;
    cbq_error err = {0};
    assert_int_equal(cbq_net_create(&fresh, &f->spec, 1, cbq_randomise_seed(99), &err), CBQ_OK);
    assert_true(cbq_randomise_seed(99) != 99);
    cbq_tensor_view before;
    assert_true(cbq_net_tensor_find(f->net, "conv1.weight", &before));
    float keep = ((float *)before.data)[0];
    assert_int_equal(cbq_randomise_top(f->net, 2, 99, &err), CBQ_OK);
    const char *changed[] = {"head.weight", "head.bias", "conv2.weight", "conv2.bias"};
    for (int i = 0; i < 4; i++) {
        cbq_tensor_view a, b;
        assert_true(cbq_net_tensor_find(f->net, changed[i], &a));
        assert_true(cbq_net_tensor_find(fresh, changed[i], &b));
        assert_memory_equal(a.data, b.data, a.numel * sizeof(float));
    }
    assert_true(((float *)before.data)[0] == keep);
    assert_int_not_equal(cbq_randomise_top(f->net, 5, 99, &err), CBQ_OK);
    cbq_net_free(fresh);
    free_fixture(f);
}

/* cbq_sanity_run on two volumes: the rows' layout, a permuted model that
 * is an exact copy correlating perfectly (and flagged), the trained
 * weights back in place afterwards, the same rows on a rerun, bad input. */
static void test_sanity_run(void **state)
{
    (void)state;
    fixture *f = make_fixture(1, IN, 2), *copy = make_fixture(1, IN, 2);
    float *x = random_slices(6, IN, 5);
    cbq_sanity_volume vols[2] = {{.id = "v0", .slices = x, .nz = 3},
                                 {.id = "v1", .slices = x + 3 * IN * IN, .nz = 3}};
    cbq_sanity_options o;
    cbq_sanity_options_default(&o);
    o.methods[1] = CBQ_CAM_GRADXINPUT;
    o.n_methods = 2;
    o.batch = 2;
    o.quiet = 1;
    cbq_tensor_view w;
    assert_true(cbq_net_tensor_find(f->net, "head.weight", &w));
    float keep = ((float *)w.data)[0];
    cbq_sanity_result res, again;
    cbq_error err = {0};
    assert_int_equal(cbq_sanity_run(f->net, copy->net, vols, 2, &o, &res, &err), CBQ_OK);
    assert_true(((float *)w.data)[0] == keep);
    assert_int_equal(res.n_steps, 4);
    assert_int_equal(res.n_methods, 2);
    assert_int_equal(res.n_rows, 2 * (1 + 4) * 3);
    const char *layers[] = {"head", "conv2", "bn1", "conv1"};
    for (size_t i = 0; i < res.n_rows; i++) {
        const cbq_sanity_row *r = &res.rows[i];
        size_t slot = (i / 3) % 5;
        assert_int_equal(r->method, o.methods[i / 15]);
        assert_int_equal(r->permuted, slot == 0);
        assert_int_equal(r->step, slot);
        if (slot)
            assert_string_equal(r->layer, layers[slot - 1]);
        assert_int_equal(r->n_volumes, 2);
        if (slot == 0)
            assert_true(fabs(r->median_rho - 1.0) < 1e-12 && fabs(r->median_ae_ratio - 1.0) < 1e-9);
    }
    for (size_t m = 0; m < 2; m++) {
        assert_true(res.methods[m].survives_permuted);
        assert_true(res.methods[m].last_rho == res.rows[m * 15 + 12].pooled_rho);
    }
    assert_int_equal(cbq_sanity_run(f->net, copy->net, vols, 2, &o, &again, &err), CBQ_OK);
    assert_memory_equal(res.rows, again.rows, res.n_rows * sizeof *res.rows);
    cbq_sanity_result_free(&again);
    cbq_sanity_result_free(&res);
    snprintf(copy->spec.outputs[2], CBQ_NAME_MAX, "z");
    cbq_net *other = NULL;
    assert_int_equal(cbq_net_create(&other, &copy->spec, 2, 7, &err), CBQ_OK);
    assert_int_equal(cbq_sanity_run(f->net, other, vols, 2, &o, &res, &err), CBQ_ERR_ARG);
    assert_non_null(strstr(err.msg, "same outputs"));
    assert_int_equal(cbq_sanity_run(f->net, NULL, vols, 0, &o, &res, &err), CBQ_ERR_ARG);
    cbq_net_free(other);
    free(x);
    free_fixture(copy);
    free_fixture(f);
}

/* The identity also holds for a torchvision-style end: the target, an
 * identity, adaptive_avgpool2d(1), flatten, the linear head. */
static void test_identity_adaptive_pool_flatten(void **state)
{
    (void)state;
    fixture f = {0};
    make_spec(&f.spec, 1, IN);
    cbq_layer_spec *l = realloc(f.spec.layers, (f.spec.n_layers + 2) * sizeof *l);
    assert_non_null(l);
    f.spec.layers = l;
    l[9] = l[7];                                          /* head */
    l[6] = simple("id", CBQ_LAYER_IDENTITY);
    l[7] = simple("pool", CBQ_LAYER_ADAPTIVE_AVGPOOL2D);
    l[7].cfg.adaptive = (cbq_adaptive_pool2d_cfg){1, 1};
    l[8] = simple("flat", CBQ_LAYER_FLATTEN);
    f.spec.n_layers += 2;
    cbq_error err = {0};
    if (cbq_net_create(&f.net, &f.spec, 4, 7, &err) != CBQ_OK)
        fail_msg("%s", err.msg);
    randomise_all(f.net, 11);
    float *x = random_slices(4, IN, 5);
    cbq_cam *cam = make_cam(&f, 4, CBQ_CAM_GRADCAM, 1, 1);
    assert_true(cbq_cam_identity_holds(cam));
    assert_int_equal(cbq_cam_run(cam, x, 4, &err), CBQ_OK);
    const float *y = cbq_cam_pred(cam);
    for (size_t c = 0; c < 3; c++) {
        const cbq_cam_slice_sum *s = cbq_cam_sums(cam, c);
        for (size_t i = 0; i < 4; i++)
            assert_near(s[i].feature_pre, y[i * 3 + c] - cbq_cam_output_bias(cam, c), 1e-5,
                        "pre-ReLU sum");
    }
    cbq_cam_free(cam);
    /* a flatten before the pool leaves no grid to pool: no identity */
    cbq_net_free(f.net);
    l[6] = simple("flat0", CBQ_LAYER_FLATTEN);
    l[8] = simple("id", CBQ_LAYER_IDENTITY);
    l[9].cfg.linear.in_features = 4 * 4 * 4;
    l[7] = l[9];
    f.spec.n_layers = 8;
    if (cbq_net_create(&f.net, &f.spec, 4, 7, &err) != CBQ_OK)
        fail_msg("%s", err.msg);
    cam = make_cam(&f, 4, CBQ_CAM_GRADCAM, 1, 1);
    assert_false(cbq_cam_identity_holds(cam));
    cbq_cam_free(cam);
    cbq_net_free(f.net);
    cbq_model_spec_free(&f.spec);
    free(x);
}

static void test_bad_layers(void **state)
{
    (void)state;
    fixture *f = make_fixture(1, IN, 2);
    const char *bad[] = {"nope", "gap", "head"};
    const char *expect[] = {"unknown target layer 'nope'", "no spatial grid", "no spatial grid"};
    for (int i = 0; i < 3; i++) {
        cbq_attrib_options opt;
        cbq_attrib_options_default(&opt);
        snprintf(opt.layer, sizeof opt.layer, "%s", bad[i]);
        cbq_cam *cam = NULL;
        cbq_error err = {0};
        assert_int_equal(cbq_cam_create(&cam, f->net, 2, &opt, &err), CBQ_ERR_ARG);
        assert_null(cam);
        if (!strstr(err.msg, expect[i]))
            fail_msg("message '%s' lacks '%s'", err.msg, expect[i]);
        assert_non_null(strstr(err.msg, "conv1, bn1, relu1, conv2, relu2, drop"));
    }
    /* any earlier layer is a valid target; the identity then fails */
    cbq_attrib_options opt;
    cbq_attrib_options_default(&opt);
    snprintf(opt.layer, sizeof opt.layer, "conv2");
    cbq_cam *cam = NULL;
    cbq_error err = {0};
    assert_int_equal(cbq_cam_create(&cam, f->net, 2, &opt, &err), CBQ_OK);
    assert_false(cbq_cam_identity_holds(cam));
    assert_int_equal(cbq_attrib_volume(cam, NULL, 0, NULL, NULL, NULL, NULL, NULL, &err), CBQ_ERR_ARG);
    cbq_cam_free(cam);
    free_fixture(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_identity_adaptive_pool_flatten),
        cmocka_unit_test(test_head_scaling),
        cmocka_unit_test(test_zero_slice),
        cmocka_unit_test(test_batch_independence),
        cmocka_unit_test(test_gradient_free_methods),
        cmocka_unit_test(test_gradxinput_finite_differences),
        cmocka_unit_test(test_ig_completeness),
        cmocka_unit_test(test_structure_energy),
        cmocka_unit_test(test_randomise_cascade),
        cmocka_unit_test(test_sanity_run),
        cmocka_unit_test(test_bad_layers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
