/* test_cam_math.c - the network-free arithmetic of src/attrib against values
 * from independent implementations (reference_values.h, written by
 * make_reference.py from PyTorch, numpy and scipy): bilinear resizing, the
 * gradient CAM formulas, Eigen-CAM's projection, Spearman's rho. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <cmocka.h>

#include "cbctiq/attrib.h"
#include "reference_values.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static float *to_float(const double *src, size_t n)
{
    float *f = malloc(n * sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        f[i] = (float)src[i];
    return f;
}

/* |got - want| <= rel * max(1, |want|) */
static void assert_close(const float *got, const double *want, size_t n, double rel)
{
    for (size_t i = 0; i < n; i++) {
        double tol = rel * fmax(1.0, fabs(want[i]));
        if (fabs(got[i] - want[i]) > tol)
            fail_msg("element %zu: got %.9g, want %.9g (tol %.3g)", i, got[i], want[i], tol);
    }
}

static void test_resize_matches_torch(void **state)
{
    (void)state;
    float *src = to_float(ref_resize_src, N_OF(ref_resize_src));
    float out[2 * 7 * 10];
    cbq_resize_bilinear(src, 2, 3, 4, out, 7, 10, 0);
    assert_close(out, ref_resize_7x10_ac0, N_OF(out), 1e-6);
    cbq_resize_bilinear(src, 2, 3, 4, out, 7, 10, 1);
    assert_close(out, ref_resize_7x10_ac1, N_OF(out), 1e-6);
    float small[2 * 2 * 3];
    cbq_resize_bilinear(src, 2, 3, 4, small, 2, 3, 0);
    assert_close(small, ref_resize_2x3_ac0, N_OF(small), 1e-6);
    free(src);
}

/* Upsampling by an integer factor with half-pixel centres and edge clamping
 * spreads each source pixel's value over exactly factor^2 target pixels'
 * worth of weight: AE on the input grid = factor^2 x AE on the feature grid. */
static void test_resize_integer_factor_keeps_mass(void **state)
{
    (void)state;
    enum { h = 5, w = 3, f = 4 };
    float src[h * w], dst[h * f * w * f];
    double s_src = 0.0, s_dst = 0.0;
    for (size_t i = 0; i < N_OF(src); i++) {
        src[i] = (float)((i * 37 % 11) - 3.5);
        s_src += src[i];
    }
    cbq_resize_bilinear(src, 1, h, w, dst, h * f, w * f, 0);
    for (size_t i = 0; i < N_OF(dst); i++)
        s_dst += dst[i];
    assert_true(fabs(s_dst - f * f * s_src) < 1e-4 * fmax(1.0, fabs(s_dst)));
}

static void check_method(cbq_cam_method m, const double *want)
{
    enum { K = 5, h = 3, w = 4 };
    float *A = to_float(ref_cam_A, N_OF(ref_cam_A)), *G = to_float(ref_cam_G, N_OF(ref_cam_G));
    float map[h * w];
    cbq_cam_combine(m, A, G, K, h, w, map);
    assert_close(map, want, h * w, 1e-5);
    free(A);
    free(G);
}

static void test_gradcam(void **s) { (void)s; check_method(CBQ_CAM_GRADCAM, ref_cam_gradcam); }
static void test_hirescam(void **s) { (void)s; check_method(CBQ_CAM_HIRESCAM, ref_cam_hirescam); }
static void test_layercam(void **s) { (void)s; check_method(CBQ_CAM_LAYERCAM, ref_cam_layercam); }
static void test_xgradcam(void **s) { (void)s; check_method(CBQ_CAM_XGRADCAM, ref_cam_xgradcam); }
static void test_gradcampp(void **s) { (void)s; check_method(CBQ_CAM_GRADCAMPP, ref_cam_gradcampp); }

static void check_eigen(const double *Aref, size_t K, size_t h, size_t w, const double *want)
{
    float *A = to_float(Aref, K * h * w);
    float *map = malloc(h * w * sizeof *map);
    double *work = malloc(cbq_eigencam_work_size(K, h * w) * sizeof *work);
    assert_non_null(map);
    assert_non_null(work);
    cbq_eigencam_project(A, K, h, w, map, work);
    assert_close(map, want, h * w, 1e-5);
    free(A);
    free(map);
    free(work);
}

/* K < hw uses the channel Gram matrix, K > hw the pixel Gram matrix. */
static void test_eigencam_channel_gram(void **s) { (void)s; check_eigen(ref_eigen_wide_A, 6, 3, 4, ref_eigen_wide_map); }
static void test_eigencam_pixel_gram(void **s) { (void)s; check_eigen(ref_eigen_tall_A, 9, 2, 2, ref_eigen_tall_map); }

static void test_spearman_matches_scipy(void **state)
{
    (void)state;
    size_t n = N_OF(ref_spear_a);
    float *a = to_float(ref_spear_a, n), *b = to_float(ref_spear_b, n);
    void *work = malloc(cbq_map_spearman_work_bytes(n));
    assert_non_null(work);
    assert_true(fabs(cbq_map_spearman(a, b, n, work) - ref_spear_rho) < 1e-12);
    for (size_t i = 0; i < n; i++)
        b[i] = 2.0f;
    assert_true(isnan(cbq_map_spearman(a, b, n, work)));
    free(a);
    free(b);
    free(work);
}

static void test_names_round_trip(void **state)
{
    (void)state;
    for (int m = 0; m < CBQ_CAM_METHOD_COUNT; m++) {
        cbq_cam_method back;
        assert_true(cbq_cam_method_parse(cbq_cam_method_name((cbq_cam_method)m), &back));
        assert_int_equal(back, m);
    }
    cbq_cam_method x;
    assert_false(cbq_cam_method_parse("gradcam+", &x));
    assert_null(cbq_cam_method_name(CBQ_CAM_METHOD_COUNT));
}

static void test_method_lists(void **state)
{
    (void)state;
    cbq_cam_method m[3];
    size_t n = 99;
    char bad[64] = "";
    int too_many = -1;
    assert_true(cbq_cam_method_list_parse(",gradcam,,ig,", m, 3, &n, bad, sizeof bad, &too_many));
    assert_int_equal(n, 2);
    assert_int_equal(m[0], CBQ_CAM_GRADCAM);
    assert_int_equal(m[1], CBQ_CAM_IG);
    assert_int_equal(too_many, 0);
    assert_true(cbq_cam_method_list_parse("", m, 3, &n, bad, sizeof bad, NULL));
    assert_int_equal(n, 0);
    assert_false(cbq_cam_method_list_parse("hirescam,gradcam+", m, 3, &n, bad, sizeof bad, &too_many));
    assert_string_equal(bad, "gradcam+");
    assert_int_equal(too_many, 0);
    assert_false(cbq_cam_method_list_parse("ig,ig,layercam", m, 2, &n, bad, sizeof bad, &too_many));
    assert_string_equal(bad, "layercam");
    assert_int_equal(too_many, 1);
    assert_int_equal(n, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_method_lists),
        cmocka_unit_test(test_resize_matches_torch),
        cmocka_unit_test(test_resize_integer_factor_keeps_mass),
        cmocka_unit_test(test_gradcam),
        cmocka_unit_test(test_hirescam),
        cmocka_unit_test(test_layercam),
        cmocka_unit_test(test_xgradcam),
        cmocka_unit_test(test_gradcampp),
        cmocka_unit_test(test_eigencam_channel_gram),
        cmocka_unit_test(test_eigencam_pixel_gram),
        cmocka_unit_test(test_spearman_matches_scipy),
        cmocka_unit_test(test_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
