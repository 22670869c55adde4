/* stage_attrib.c - stage 5: Grad-CAM (or the configured CAM method) on every
 * used axial slice of every test volume, Attribution Energy per volume and
 * category (ae.csv, formats.md, plus the columns the mission's caveat asks
 * for), its per-slice profile along z (profiles.csv, for the report's
 * z-profiles), and optionally the maps as NIfTI volumes on the CBCT's grid. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/attrib.h"
#include "cbctiq/csv.h"
#include "cbctiq/model_file.h"
#include "cbctiq/nifti.h"
#include "cbctiq/progress.h"
#include "cbctiq/slices.h"

static const char *const AE_HEADER[] = {
    "volume_id", "category", "method", "ae", "ae_feature", "ae_per_slice", "n_slices", "pred",
    "ae_in_structure", "structure_fraction", "target_layer", "ae_feature_pre", "ae_clipped",
    "pred_minus_bias_sum", "identity_holds"};
enum { AE_COLS = sizeof AE_HEADER / sizeof AE_HEADER[0] };
static const char *const PROFILE_HEADER[] = {"volume_id", "category", "slice", "z_mm", "ae", "pred"};
enum { PROFILE_COLS = sizeof PROFILE_HEADER / sizeof PROFILE_HEADER[0] };

typedef struct {
    const study_ctx *ctx;
    cbq_net *net;
    cbq_cam *cam;
    size_t out_index[STUDY_MAX_CATEGORIES];
    size_t H, W;
    cbq_csv_writer w, prof;
    char labels_json[CBQ_STUDY_PATH_MAX];
    double ae_sum;
    size_t ae_n;
} attrib_run;

/* Per category: structure weights on the input grid [n, H, W], NULL if none. */
static int structure_weights(attrib_run *a, const study_volume *sv, const cbq_volume *vol,
                             const size_t *ks, size_t n, float **weights, cbq_error *err)
{
    size_t K = a->ctx->n_categories;
    for (size_t k = 0; k < K; k++)
        weights[k] = NULL;
    if (!sv->mask[0] && !sv->rtstruct[0])
        return CBQ_OK;
    cbq_volume *st[STUDY_MAX_CATEGORIES];
    int rc = study_load_structures(a->ctx, vol, sv, a->labels_json, st, err);
    /* A 0/1 mask windowed to [0, 1] and area-averaged gives each input pixel
     * the fraction of it covered by the structure. */
    cbq_slice_spec ss = {.height = a->H, .width = a->W, .hu_min = 0.0, .hu_max = 1.0};
    cbq_slicer slicer;
    int have_slicer = 0;
    if (rc == CBQ_OK && (rc = cbq_slicer_init(&slicer, vol->nx, vol->ny, &ss, err)) == CBQ_OK)
        have_slicer = 1;
    for (size_t k = 0; k < K && rc == CBQ_OK; k++) {
        if (!st[k])
            continue;
        weights[k] = malloc(n * a->H * a->W * sizeof(float));
        if (!weights[k])
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
        else
            rc = cbq_slicer_fill(&slicer, st[k], ks, n, weights[k], err);
    }
    if (have_slicer)
        cbq_slicer_free(&slicer);
    for (size_t k = 0; k < K; k++)
        if (st[k]) {
            cbq_volume_free(st[k]);
            free(st[k]);
        }
    return rc;
}

static int write_maps(attrib_run *a, const study_volume *sv, const cbq_volume *vol,
                      const cbq_reorient *xf, const size_t *ks, size_t n, float *const *maps,
                      cbq_error *err)
{
    cbq_slice_spec ss = {.height = a->H, .width = a->W, .hu_min = 0.0, .hu_max = 1.0};
    cbq_slicer slicer;
    CBQ_TRY(cbq_slicer_init(&slicer, vol->nx, vol->ny, &ss, err));
    cbq_volume out = {0};
    int rc = cbq_volume_alloc(&out, vol->nx, vol->ny, vol->nz, vol->spacing, 0, err);
    if (rc == CBQ_OK)
        memcpy(out.affine, vol->affine, sizeof out.affine);
    char dir[CBQ_STUDY_PATH_MAX + 16], path[CBQ_STUDY_PATH_MAX + 600];
    if (rc == CBQ_OK && (rc = study_output_path(a->ctx, "maps", dir, sizeof dir, err)) == CBQ_OK)
        rc = cbq_mkdir_p(dir, err);
    for (size_t k = 0; k < a->ctx->n_categories && rc == CBQ_OK; k++) {
        memset(out.data, 0, cbq_volume_count(&out) * sizeof(float));
        for (size_t i = 0; i < n && rc == CBQ_OK; i++)
            rc = cbq_slicer_unmap(&slicer, maps[k] + i * a->H * a->W, &out, ks[i], err);
        int len = snprintf(path, sizeof path, "%s/%s_%s.nii.gz", dir, sv->id, a->ctx->categories[k]);
        if (rc == CBQ_OK && (len < 0 || (size_t)len >= sizeof path))
            rc = CBQ_FAIL(err, CBQ_ERR_ARG, "%s: map path too long", sv->id);
        /* Back on the CBCT's own grid and header geometry, so viewers
         * overlay the map on the scan without resampling. */
        cbq_volume src = {0};
        if (rc == CBQ_OK)
            rc = cbq_volume_uncanonical(&src, &out, xf, err);
        if (rc == CBQ_OK)
            rc = cbq_nifti_write(path, &src, CBQ_NIFTI_FLOAT32, err);
        cbq_volume_free(&src);
    }
    cbq_volume_free(&out);
    cbq_slicer_free(&slicer);
    return rc;
}

static int put_row(attrib_run *a, const study_volume *sv, size_t k, const cbq_ae *ae,
                   cbq_error *err)
{
    cbq_csv_writer *w = &a->w;
    const cbq_attrib_options *opt = cbq_cam_options(a->cam);
    cbq_csv_put_str(w, sv->id);
    cbq_csv_put_str(w, a->ctx->categories[k]);
    cbq_csv_put_str(w, cbq_cam_method_name(opt->method));
    cbq_csv_put_double(w, ae->ae);
    cbq_csv_put_double(w, ae->ae_feature);
    cbq_csv_put_double(w, cbq_ae_per_slice(ae));
    cbq_csv_put_int(w, (long long)ae->n_slices);
    cbq_csv_put_double(w, cbq_ae_pred(ae));
    cbq_csv_put_double(w, ae->has_structure ? ae->ae_in_structure : NAN);
    cbq_csv_put_double(w, ae->has_structure ? cbq_ae_structure_fraction(ae) : NAN);
    cbq_csv_put_str(w, cbq_cam_target_name(a->cam));
    cbq_csv_put_double(w, ae->ae_feature_pre);
    cbq_csv_put_double(w, cbq_ae_clipped(ae));
    cbq_csv_put_double(w, ae->pred_part);
    cbq_csv_put_int(w, cbq_cam_identity_holds(a->cam));
    a->ae_sum += ae->ae;
    a->ae_n++;
    return cbq_csv_end_row(w, err);
}

/* One profiles.csv row per used slice: the slice sums that add up to AE. */
static int put_profile(attrib_run *a, const study_volume *sv, const cbq_volume *vol, size_t k,
                       const size_t *ks, const cbq_ae *ae, cbq_error *err)
{
    cbq_csv_writer *w = &a->prof;
    for (size_t i = 0; i < ae->n_slices; i++) {
        cbq_csv_put_str(w, sv->id);
        cbq_csv_put_str(w, a->ctx->categories[k]);
        cbq_csv_put_int(w, (long long)ks[i]);
        cbq_csv_put_double(w, study_slice_z_mm(vol, ks[i]));
        cbq_csv_put_double(w, ae->profile[i]);
        cbq_csv_put_double(w, ae->slice_pred[i]);
        CBQ_TRY(cbq_csv_end_row(w, err));
    }
    return CBQ_OK;
}

static int attrib_volume(attrib_run *a, const study_volume *sv, cbq_progress *prog,
                         cbq_error *err)
{
    const cbq_study_config *cfg = a->ctx->cfg;
    size_t K = a->ctx->n_categories, n_out = cbq_cam_n_outputs(a->cam);
    int structures = strcmp(cfg->train.slices, "structures") == 0;
    cbq_volume vol = {0};
    size_t *ks = NULL, n = 0;
    float *x = NULL, *weights[STUDY_MAX_CATEGORIES] = {0}, *maps[CBQ_MAX_OUTPUTS] = {0};
    const float *struct_by_out[CBQ_MAX_OUTPUTS] = {0};
    cbq_ae ae[CBQ_MAX_OUTPUTS];
    memset(ae, 0, sizeof ae);
    cbq_reorient xf;
    int rc = study_volume_used_slices(sv, structures, &vol, &xf, &ks, &n, err);
    if (rc == CBQ_OK && n == 0)
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "no slice with a structure");
    size_t plane = a->H * a->W;
    if (rc == CBQ_OK && !(x = malloc(n * plane * sizeof *x)))
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for %zu slices", n);
    cbq_slice_spec ss = {.height = a->H, .width = a->W,
                         .hu_min = cbq_net_spec(a->net)->input.hu_min,
                         .hu_max = cbq_net_spec(a->net)->input.hu_max};
    cbq_slicer slicer;
    if (rc == CBQ_OK && (rc = cbq_slicer_init(&slicer, vol.nx, vol.ny, &ss, err)) == CBQ_OK) {
        rc = cbq_slicer_fill(&slicer, &vol, ks, n, x, err);
        cbq_slicer_free(&slicer);
    }
    if (rc == CBQ_OK)
        rc = structure_weights(a, sv, &vol, ks, n, weights, err);
    for (size_t k = 0; k < K; k++)
        struct_by_out[a->out_index[k]] = weights[k];
    for (size_t k = 0; rc == CBQ_OK && cfg->attrib.save_maps && k < K; k++)
        if (!(maps[a->out_index[k]] = malloc(n * plane * sizeof(float))))
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for maps");
    if (rc == CBQ_OK)
        rc = cbq_attrib_volume(a->cam, x, n, struct_by_out, ae, cfg->attrib.save_maps ? maps : NULL,
                               NULL, prog, err);
    for (size_t k = 0; rc == CBQ_OK && k < K; k++)
        rc = put_row(a, sv, k, &ae[a->out_index[k]], err);
    for (size_t k = 0; rc == CBQ_OK && k < K; k++)
        rc = put_profile(a, sv, &vol, k, ks, &ae[a->out_index[k]], err);
    if (rc == CBQ_OK && cfg->attrib.save_maps) {
        float *by_cat[STUDY_MAX_CATEGORIES];
        for (size_t k = 0; k < K; k++)
            by_cat[k] = maps[a->out_index[k]];
        rc = write_maps(a, sv, &vol, &xf, ks, n, by_cat, err);
    }
    for (size_t o = 0; o < n_out; o++)
        cbq_ae_free(&ae[o]);
    for (size_t k = 0; k < CBQ_MAX_OUTPUTS; k++)
        free(maps[k]);
    for (size_t k = 0; k < K; k++)
        free(weights[k]);
    free(x);
    free(ks);
    cbq_volume_free(&vol);
    return rc == CBQ_OK ? rc : cbq_error_prefix(err, "%s: ", sv->id);
}

static int open_cam(attrib_run *a, cbq_error *err)
{
    const cbq_study_config *cfg = a->ctx->cfg;
    char model_dir[CBQ_STUDY_PATH_MAX + 16];
    CBQ_TRY(study_model_dir(a->ctx, model_dir, sizeof model_dir, err));
    CBQ_TRY(cbq_model_load(model_dir, &a->net, (size_t)cfg->evaluate.batch, err));
    cbq_net_set_threads(a->net, cfg->threads);
    CBQ_TRY(study_map_outputs(a->ctx, a->net, a->out_index, model_dir, err));
    cbq_attrib_options opt;
    cbq_attrib_options_default(&opt);
    if (!cbq_cam_method_parse(cfg->attrib.method, &opt.method))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "attrib.method: unknown '%s' (one of %s)",
                        cfg->attrib.method, cbq_cam_method_list());
    if (strlen(cfg->attrib.target_layer) >= sizeof opt.layer)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "attrib.target_layer: name too long");
    memcpy(opt.layer, cfg->attrib.target_layer, strlen(cfg->attrib.target_layer) + 1);
    CBQ_TRY(cbq_cam_create(&a->cam, a->net, (size_t)cfg->evaluate.batch, &opt, err));
    cbq_cam_input_shape(a->cam, &a->H, &a->W);
    return CBQ_OK;
}

/* Abandons the writers opened (ae.csv, then profiles.csv); aborting one
 * already committed only removes its temporary name, which is gone. An
 * ae.csv committed without its profile leaves the stage unstamped, so the
 * next run empties the folder and redoes it. */
static void close_writers(attrib_run *a, int n_open)
{
    if (n_open == 2)
        cbq_csv_writer_abort(&a->prof);
    if (n_open >= 1)
        cbq_csv_writer_abort(&a->w);
}

int study_stage_attrib(study_ctx *ctx, cbq_error *err)
{
    attrib_run a;
    memset(&a, 0, sizeof a);
    a.ctx = ctx;
    study_cohort c;
    CBQ_TRY(study_read_cohort_files(ctx, STUDY_READS_VOLUMES | STUDY_READS_LABELS, &c, err));
    char path[CBQ_STUDY_PATH_MAX + 32];
    int rc = study_input_path(ctx, CBQ_STAGE_COHORT, "labels.json", a.labels_json,
                              sizeof a.labels_json, err);
    FILE *probe = rc == CBQ_OK ? fopen(a.labels_json, "r") : NULL;
    if (probe)
        fclose(probe);
    else
        a.labels_json[0] = '\0';
    if (rc == CBQ_OK)
        rc = open_cam(&a, err);
    int n_open = 0;
    if (rc == CBQ_OK && (rc = study_output_path(ctx, "ae.csv", path, sizeof path, err)) == CBQ_OK &&
        (rc = cbq_csv_writer_open(&a.w, path, AE_HEADER, AE_COLS, err)) == CBQ_OK)
        n_open = 1;
    if (rc == CBQ_OK &&
        (rc = study_output_path(ctx, "profiles.csv", path, sizeof path, err)) == CBQ_OK &&
        (rc = cbq_csv_writer_open(&a.prof, path, PROFILE_HEADER, PROFILE_COLS, err)) == CBQ_OK)
        n_open = 2;
    size_t n_test = 0;
    for (size_t i = 0; i < c.n; i++)
        n_test += c.v[i].split == SPLIT_TEST;
    cbq_progress prog;
    cbq_progress_begin(&prog, "attrib", n_test, ctx->cfg->quiet);
    for (size_t i = 0; i < c.n && rc == CBQ_OK; i++)
        if (c.v[i].split == SPLIT_TEST) {
            rc = attrib_volume(&a, &c.v[i], NULL, err);
            cbq_progress_step(&prog, 1);
        }
    cbq_progress_end(&prog);
    if (rc == CBQ_OK && (rc = cbq_csv_writer_commit(&a.w, err)) == CBQ_OK)
        rc = cbq_csv_writer_commit(&a.prof, err);
    if (rc != CBQ_OK)
        close_writers(&a, n_open);
    snprintf(ctx->summary, sizeof ctx->summary, "%s AE of %zu test volumes x %zu categories on %s%s",
             ctx->cfg->attrib.method, n_test, ctx->n_categories,
             a.cam ? cbq_cam_target_name(a.cam) : "?",
             a.cam && cbq_cam_identity_holds(a.cam) ? " (GAP+linear identity holds)" : "");
    if (a.cam)
        cbq_cam_free(a.cam);
    if (a.net)
        cbq_net_free(a.net);
    study_cohort_free(&c);
    return rc;
}
