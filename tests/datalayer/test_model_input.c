/* test_model_input.c - the one model-input path (model_input.h) on a small
 * volume written here: slice selection (all, structures by any label,
 * step, evenly spaced at most N), the windowed batch and the structure
 * weights on the model-input grid; the same from a volume in memory, and
 * maps back onto the volume. The input grid equals the volume's
 * plane, so the resampling is the identity and every expected sum is
 * worked out by hand below. */
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

#include "cbctiq/atomic_file.h"
#include "cbctiq/model_input.h"
#include "cbctiq/nifti.h"
#include "cbctiq/orient.h"

enum { NX = 8, NY = 6, NZ = 5 };
static char dir[1024];
static cbq_cohort_volume row;
static const cbq_input_spec INPUT = {.height = NY, .width = NX, .hu_min = 0.0, .hu_max = 100.0};

/* CT: HU = 10 k + i. Labels: 1 (parotid_l) a 2 x 3 block on slices 1 and
 * 3, 2 (brainstem, no category) one voxel on slice 4. */
static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/model_input/labs", base ? base : "tmp");
    cbq_error err = {0};
    if (cbq_mkdir_p(dir, &err) != CBQ_OK)
        return -1;
    const double sp[3] = {1.0, 1.0, 2.0};
    cbq_volume ct, lab;
    if (cbq_volume_alloc(&ct, NX, NY, NZ, sp, 0, &err) || cbq_volume_alloc(&lab, NX, NY, NZ, sp, 0, &err))
        return -1;
    for (size_t k = 0; k < NZ; k++)
        for (size_t j = 0; j < NY; j++)
            for (size_t i = 0; i < NX; i++) {
                *cbq_volume_at(&ct, i, j, k) = (float)(10 * k + i);
                int block = i >= 2 && i < 4 && j >= 1 && j < 4 && (k == 1 || k == 3);
                *cbq_volume_at(&lab, i, j, k) = block ? 1.0f : (k == 4 && i == 0 && j == 0) ? 2.0f : 0.0f;
            }
    snprintf(row.id, sizeof row.id, "v");
    snprintf(row.path, sizeof row.path, "%s/../ct.nii.gz", dir);
    snprintf(row.mask, sizeof row.mask, "%s/m.nii.gz", dir);
    char labels[1200];
    snprintf(labels, sizeof labels, "%s/labels.json", dir);
    FILE *fp = fopen(labels, "w");
    if (!fp)
        return -1;
    fputs("{\"1\": \"parotid_l\", \"2\": \"brainstem\"}\n", fp);
    fclose(fp);
    int rc = cbq_nifti_write(row.path, &ct, CBQ_NIFTI_INT16, &err) ||
             cbq_nifti_write(row.mask, &lab, CBQ_NIFTI_UINT8, &err);
    cbq_volume_free(&ct);
    cbq_volume_free(&lab);
    return rc ? -1 : 0;
}

static void load(cbq_model_input *in, const cbq_model_input_options *o)
{
    cbq_error err = {0};
    if (cbq_model_input_load(in, &row, NULL, &INPUT, o, &err) != CBQ_OK)
        fail_msg("%s", err.msg);
}

static void expect_slices(const cbq_model_input_options *o, const size_t *want, size_t n)
{
    cbq_model_input in;
    load(&in, o);
    assert_int_equal(in.n, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(in.ks[i], want[i]);
    cbq_model_input_free(&in);
}

static void test_selection(void **state)
{
    (void)state;
    const size_t all[] = {0, 1, 2, 3, 4}, labelled[] = {1, 3, 4}, every2[] = {1, 4}, spaced[] = {1, 3};
    expect_slices(&(cbq_model_input_options){.selection = CBQ_SLICES_ALL}, all, 5);
    /* any label counts, also one that names no category (slice 4) */
    expect_slices(&(cbq_model_input_options){.selection = CBQ_SLICES_STRUCTURES}, labelled, 3);
    expect_slices(&(cbq_model_input_options){.selection = CBQ_SLICES_STRUCTURES, .step = 2}, every2, 2);
    /* 2 of 5 evenly spaced: (2i + 1) 5 / 4 = 1, 3 */
    expect_slices(&(cbq_model_input_options){.max_slices = 2}, spaced, 2);
}

/* x = clamp(HU / 100, 0, 1); slice k sums to NY (80 k + 28) / 100. */
static void test_batch(void **state)
{
    (void)state;
    cbq_model_input in;
    load(&in, &(cbq_model_input_options){.selection = CBQ_SLICES_STRUCTURES});
    assert_int_equal(in.H, NY);
    assert_int_equal(in.W, NX);
    for (size_t s = 0; s < in.n; s++) {
        double sum = 0.0;
        for (size_t p = 0; p < (size_t)(NX * NY); p++)
            sum += in.x[s * NX * NY + p];
        assert_float_equal(sum, NY * (80.0 * (double)in.ks[s] + 28.0) / 100.0, 1e-4);
    }
    assert_int_equal(cbq_model_input_source_slice(&in, 1), 1); /* k already inferior -> superior */
    cbq_model_input_free(&in);
}

/* parotid: the 6-voxel block on slices 1 and 3, none on 4; overall: none. */
static void test_structure_weights(void **state)
{
    (void)state;
    cbq_model_input in;
    load(&in, &(cbq_model_input_options){.selection = CBQ_SLICES_STRUCTURES, .with_structures = 1});
    assert_int_equal(in.has_structures, 1);
    const char *cats[] = {"parotid", "overall", "larynx"};
    float *w[3];
    cbq_error err = {0};
    assert_int_equal(cbq_model_input_structure_weights(&in, cats, 3, w, &err), CBQ_OK);
    assert_non_null(w[0]);
    assert_null(w[1]);
    assert_null(w[2]);
    const double want[] = {6.0, 6.0, 0.0};
    for (size_t s = 0; s < in.n; s++) {
        double sum = 0.0;
        for (size_t p = 0; p < (size_t)(NX * NY); p++)
            sum += w[0][s * NX * NY + p];
        assert_float_equal(sum, want[s], 1e-6);
    }
    free(w[0]);
    cbq_model_input_free(&in);
}

static void test_too_small(void **state)
{
    (void)state;
    cbq_model_input in;
    cbq_error err = {0};
    cbq_model_input_options o = {.min_h = 7, .min_w = 1};
    assert_int_not_equal(cbq_model_input_load(&in, &row, NULL, &INPUT, &o, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "ct.nii.gz"));
    assert_non_null(strstr(err.msg, "at least 1 x 7 pixels"));
    assert_null(in.x); /* freed on failure */
}

/* A volume in memory gives the batch its file gives. */
static void test_from_volume(void **state)
{
    (void)state;
    cbq_model_input from_file, from_memory;
    load(&from_file, &(cbq_model_input_options){0});
    cbq_error err = {0};
    cbq_volume vol;
    assert_int_equal(cbq_volume_load(&vol, NULL, row.path, NULL, &err), CBQ_OK);
    cbq_model_input_options o = {0};
    assert_int_equal(cbq_model_input_from_volume(&from_memory, &vol, "mine", &INPUT, &o, &err), CBQ_OK);
    assert_int_equal(from_memory.n, NZ);
    assert_int_equal(from_memory.src.kind, 0);
    assert_memory_equal(from_memory.x, from_file.x, (size_t)NZ * NX * NY * sizeof(float));
    cbq_model_input_free(&from_memory);
    o.min_h = 7;
    assert_int_not_equal(cbq_model_input_from_volume(&from_memory, &vol, "mine", &INPUT, &o, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "mine: "));
    assert_null(from_memory.x);
    cbq_volume_free(&vol);
    cbq_model_input_free(&from_file);
}

/* Maps of the selected slices (1, 3, 4) back onto the volume: the maps
 * are the batch itself, which the identity resampling puts back unchanged
 * on the canonical grid; on the source grid they are the windowed CT as
 * the file holds it, HU / 100 = (10 k + i) / 100, with the file's affine
 * (cbq_volume_alloc's diag(spacing)). Slices not selected stay 0. */
static void test_unmap(void **state)
{
    (void)state;
    cbq_model_input in;
    load(&in, &(cbq_model_input_options){.selection = CBQ_SLICES_STRUCTURES});
    cbq_error err = {0};
    cbq_volume canon, source;
    assert_int_equal(cbq_model_input_unmap_canonical(&in, in.x, &canon, &err), CBQ_OK);
    assert_int_equal(cbq_model_input_unmap_source(&in, in.x, &source, &err), CBQ_OK);
    size_t plane = NX * NY;
    for (size_t k = 0, s = 0; k < NZ; k++) {
        int selected = s < in.n && in.ks[s] == k;
        for (size_t j = 0; j < NY; j++)
            for (size_t i = 0; i < NX; i++) {
                size_t p = j * NX + i;
                assert_float_equal(canon.data[k * plane + p], selected ? in.x[s * plane + p] : 0.0f, 1e-6);
                assert_float_equal(*cbq_volume_at(&source, i, j, k),
                                   selected ? (10.0 * (double)k + (double)i) / 100.0 : 0.0, 1e-6);
            }
        s += selected;
    }
    const double want_affine[4][4] = {{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 2, 0}, {0, 0, 0, 1}};
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            assert_float_equal(source.affine[r][c], want_affine[r][c], 1e-9);
    cbq_volume_free(&canon);
    cbq_volume_free(&source);
    cbq_model_input_free(&in);
}

/* Channel ch of a sample on slice k against the single-channel batch of
 * every slice, x1 [NZ, H, W]: slice z (given) normalised by channel ch. */
static void check_channel(const cbq_model_input *in, const float *x1, const cbq_input_spec *spec,
                          size_t s, size_t ch, size_t z)
{
    size_t plane = NX * NY;
    const float *got = in->x + (s * in->channels + ch) * plane;
    for (size_t p = 0; p < plane; p++) {
        double want = ((double)x1[z * plane + p] - spec->mean[ch]) / spec->std[ch];
        if (fabs(got[p] - want) > 1e-6)
            fail_msg("slice %zu channel %zu pixel %zu: %g, expected slice %zu's %g", in->ks[s], ch, p,
                     (double)got[p], z, want);
    }
}

/* 2.5D: the channels of a selected slice are its canonical neighbours
 * (whether selected or not), the edge slice repeated past either end; each
 * channel normalised by its own mean and std. Replicate puts the slice in
 * every channel. */
static void test_channels(void **state)
{
    (void)state;
    cbq_model_input one, in;
    load(&one, &(cbq_model_input_options){0});
    cbq_error err = {0};
    cbq_input_spec adj = INPUT;
    adj.channels = 5;
    adj.slices = CBQ_INPUT_ADJACENT;
    adj.n_norm = 5;
    for (size_t ch = 0; ch < 5; ch++) {
        adj.mean[ch] = 0.1 * (double)ch;
        adj.std[ch] = 0.5 + (double)ch;
    }
    cbq_model_input_options o = {.selection = CBQ_SLICES_STRUCTURES};
    assert_int_equal(cbq_model_input_load(&in, &row, NULL, &adj, &o, &err), CBQ_OK);
    assert_int_equal(in.n, 3); /* slices 1, 3, 4 */
    assert_int_equal(in.channels, 5);
    static const size_t want_z[3][5] = {{0, 0, 1, 2, 3}, {1, 2, 3, 4, 4}, {2, 3, 4, 4, 4}};
    for (size_t s = 0; s < 3; s++)
        for (size_t ch = 0; ch < 5; ch++)
            check_channel(&in, one.x, &adj, s, ch, want_z[s][ch]);
    cbq_model_input_free(&in);

    cbq_input_spec rep = adj;
    rep.channels = 3;
    rep.slices = CBQ_INPUT_REPLICATE;
    rep.n_norm = 3;
    assert_int_equal(cbq_model_input_load(&in, &row, NULL, &rep, &o, &err), CBQ_OK);
    for (size_t s = 0; s < 3; s++)
        for (size_t ch = 0; ch < 3; ch++)
            check_channel(&in, one.x, &rep, s, ch, in.ks[s]);
    cbq_model_input_free(&in);
    cbq_model_input_free(&one);
}

/* cbq_volume_canonical_move equals cbq_volume_canonical (voxels, affine,
 * spacing, transform) whether the voxels move (already canonical: LPS) or
 * are copied (RAS: two flips; a permutation), and leaves its input empty. */
static void test_canonical_move(void **state)
{
    (void)state;
    const double affines[3][4][4] = {
        {{-0.5, 0, 0, 3}, {0, -0.7, 0, -2}, {0, 0, 2, 1}, {0, 0, 0, 1}},
        {{0.5, 0, 0, 3}, {0, 0.7, 0, -2}, {0, 0, 2, 1}, {0, 0, 0, 1}},
        {{0, -0.5, 0, 3}, {0, 0, -0.7, -2}, {2, 0, 0, 1}, {0, 0, 0, 1}}};
    for (int a = 0; a < 3; a++) {
        cbq_error err = {0};
        cbq_volume src, moved, want;
        const double sp[3] = {0.5, 0.7, 2.0};
        assert_int_equal(cbq_volume_alloc(&src, NX, NY, NZ, sp, 0, &err), CBQ_OK);
        memcpy(src.affine, affines[a], sizeof src.affine);
        for (size_t i = 0; i < cbq_volume_count(&src); i++)
            src.data[i] = (float)i - 7.5f;
        cbq_reorient xf_want, xf_got;
        assert_int_equal(cbq_volume_canonical(&want, &src, &xf_want, &err), CBQ_OK);
        assert_int_equal(cbq_volume_canonical_move(&moved, &src, &xf_got, &err), CBQ_OK);
        assert_null(src.data);
        assert_int_equal(moved.nx, want.nx);
        assert_int_equal(moved.ny, want.ny);
        assert_int_equal(moved.nz, want.nz);
        assert_memory_equal(moved.affine, want.affine, sizeof want.affine);
        assert_memory_equal(moved.spacing, want.spacing, sizeof want.spacing);
        assert_memory_equal(moved.data, want.data, cbq_volume_count(&want) * sizeof *want.data);
        assert_memory_equal(&xf_got, &xf_want, sizeof xf_want);
        cbq_volume_free(&moved);
        cbq_volume_free(&want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_selection),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_structure_weights),
        cmocka_unit_test(test_too_small),
        cmocka_unit_test(test_from_volume),
        cmocka_unit_test(test_unmap),
        cmocka_unit_test(test_channels),
        cmocka_unit_test(test_canonical_move),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
