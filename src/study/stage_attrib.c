/* stage_attrib.c - stage 5: Grad-CAM (or the configured CAM method) on every
 * used axial slice of every test volume, Attribution Energy per volume and
 * category (ae.csv through the data layer's one writer, ae_table.h, the
 * same file `cbctiq ae` writes), with where each map points and its
 * deletion/insertion curves (pointing.h; the curves in curves.csv), its
 * per-slice profile along z (profiles.csv, for the report's z-profiles), and
 * optionally the maps as NIfTI volumes on the CBCT's grid. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/ae_table.h"
#include "cbctiq/attrib.h"
#include "cbctiq/csv.h"
#include "cbctiq/model_file.h"
#include "cbctiq/model_input.h"
#include "cbctiq/pointing.h"
#include "cbctiq/progress.h"

static const char *const PROFILE_HEADER[] = {"volume_id", "category", "slice", "z_mm", "ae", "pred"};
enum { PROFILE_COLS = sizeof PROFILE_HEADER / sizeof PROFILE_HEADER[0] };

typedef struct {
    const study_ctx *ctx;
    cbq_net *net;
    cbq_cam *cam;
    size_t out_index[STUDY_MAX_CATEGORIES];
    const cbq_cohort *cohort;
    cbq_ae_writer w;
    cbq_csv_writer prof, curves;
    cbq_pointing_options pointing;
    size_t n_test;
} attrib_run;

static int write_maps(attrib_run *a, const cbq_cohort_volume *sv, cbq_model_input *in,
                      float *const *maps, cbq_error *err)
{
    char dir[CBQ_STUDY_PATH_MAX + 16], path[CBQ_STUDY_PATH_MAX + 600];
    CBQ_TRY(study_output_path(a->ctx, "maps", dir, sizeof dir, err));
    CBQ_TRY(cbq_mkdir_p(dir, err));
    int rc = CBQ_OK;
    for (size_t k = 0; k < a->ctx->n_categories && rc == CBQ_OK; k++) {
        int len = snprintf(path, sizeof path, "%s/%s_%s.nii.gz", dir, sv->id, a->ctx->categories[k]);
        if (len < 0 || (size_t)len >= sizeof path)
            rc = CBQ_FAIL(err, CBQ_ERR_ARG, "%s: map path too long", sv->id);
        else
            rc = cbq_model_input_write_map(in, maps[k], path, err);
    }
    return rc;
}

/* One profiles.csv row per used slice: the slice sums that add up to AE. */
static int put_profile(attrib_run *a, const cbq_cohort_volume *sv, const cbq_volume *vol, size_t k,
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

/* One test volume through the one model-input path, its AE per category
 * (the study's categories, in its order) and its profiles. */
static int attrib_volume(attrib_run *a, const cbq_cohort_volume *sv, cbq_error *err)
{
    const cbq_study_config *cfg = a->ctx->cfg;
    size_t K = a->ctx->n_categories, n_out = cbq_cam_n_outputs(a->cam);
    cbq_model_input_options o = {.with_structures = 1};
    if (!cbq_slice_selection_parse(cfg->train.slices, &o.selection))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "train.slices: unknown '%s'", cfg->train.slices);
    cbq_model_input in;
    CBQ_TRY(cbq_model_input_load(&in, sv, a->cohort, &cbq_net_spec(a->net)->input, &o, err));
    float *weights[STUDY_MAX_CATEGORIES] = {0}, *maps[CBQ_MAX_OUTPUTS] = {0};
    const float *struct_by_out[CBQ_MAX_OUTPUTS] = {0};
    cbq_ae ae[CBQ_MAX_OUTPUTS];
    memset(ae, 0, sizeof ae);
    size_t plane = in.H * in.W, n = in.n;
    int rc = n ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_FORMAT, "no slice with a structure");
    const char *categories[STUDY_MAX_CATEGORIES];
    for (size_t k = 0; k < K; k++)
        categories[k] = a->ctx->categories[k];
    if (rc == CBQ_OK)
        rc = cbq_model_input_structure_weights(&in, categories, K, weights, err);
    for (size_t k = 0; k < K; k++)
        struct_by_out[a->out_index[k]] = weights[k];
    for (size_t k = 0; rc == CBQ_OK && k < K; k++)
        if (!(maps[a->out_index[k]] = malloc(n * plane * sizeof(float))))
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for maps");
    if (rc == CBQ_OK)
        rc = cbq_attrib_volume(a->cam, in.x, n, struct_by_out, ae, maps, NULL, NULL, err);
    cbq_pointing pointing[STUDY_MAX_CATEGORIES];
    if (rc == CBQ_OK)
        rc = cbq_pointing_volume(&in, a->net, (size_t)cfg->evaluate.batch, categories, K,
                                 a->out_index, (const float *const *)maps, &a->pointing, pointing,
                                 err);
    for (size_t k = 0; rc == CBQ_OK && k < K; k++)
        rc = cbq_ae_writer_put(&a->w, sv->id, a->ctx->categories[k], a->cam, a->out_index[k],
                               &ae[a->out_index[k]], &pointing[k], err);
    for (size_t k = 0; rc == CBQ_OK && k < K; k++)
        rc = cbq_curves_put(&a->curves, sv->id, a->ctx->categories[k], &pointing[k], err);
    for (size_t k = 0; rc == CBQ_OK && k < K; k++)
        rc = put_profile(a, sv, &in.canon, k, in.ks, &ae[a->out_index[k]], err);
    if (rc == CBQ_OK && cfg->attrib.save_maps) {
        float *by_cat[STUDY_MAX_CATEGORIES];
        for (size_t k = 0; k < K; k++)
            by_cat[k] = maps[a->out_index[k]];
        rc = write_maps(a, sv, &in, by_cat, err);
    }
    for (size_t o_i = 0; o_i < n_out; o_i++)
        cbq_ae_free(&ae[o_i]);
    for (size_t k = 0; k < CBQ_MAX_OUTPUTS; k++)
        free(maps[k]);
    for (size_t k = 0; k < K; k++)
        free(weights[k]);
    cbq_model_input_free(&in);
    return rc == CBQ_OK ? rc : cbq_error_prefix(err, "%s: ", sv->id);
}

/* The deletion curves: the configured baseline, the study's seed for the
 * random order, attrib.curve_slices slices per volume. */
static int pointing_options(attrib_run *a, cbq_error *err)
{
    const cbq_study_config *cfg = a->ctx->cfg;
    const cbq_input_spec *input = &cbq_net_spec(a->net)->input;
    cbq_faith_options_default(&a->pointing.faith, (size_t)input->height, (size_t)input->width);
    if (!cbq_perturb_parse(cfg->attrib.perturbation, &a->pointing.faith.baseline))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "attrib.perturbation: unknown '%s' (none, blur or road)",
                        cfg->attrib.perturbation);
    a->pointing.faith.seed = cfg->seed;
    a->pointing.max_slices = (size_t)cfg->attrib.curve_slices;
    return CBQ_OK;
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
    return pointing_options(a, err);
}

/* Abandons the writers opened (ae.csv, profiles.csv, then curves.csv);
 * aborting one already committed only removes its temporary name, which is
 * gone. An ae.csv committed without the others leaves the stage unstamped,
 * so the next run empties the folder and redoes it. */
static void close_writers(attrib_run *a, int n_open)
{
    if (n_open == 3)
        cbq_csv_writer_abort(&a->curves);
    if (n_open >= 2)
        cbq_csv_writer_abort(&a->prof);
    if (n_open >= 1)
        cbq_ae_writer_abort(&a->w);
}

static int open_writers(attrib_run *a, int *n_open, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(a->ctx, "ae.csv", path, sizeof path, err));
    CBQ_TRY(cbq_ae_writer_open(&a->w, path, err));
    *n_open = 1;
    CBQ_TRY(study_output_path(a->ctx, "profiles.csv", path, sizeof path, err));
    CBQ_TRY(cbq_csv_writer_open(&a->prof, path, PROFILE_HEADER, PROFILE_COLS, err));
    *n_open = 2;
    CBQ_TRY(study_output_path(a->ctx, "curves.csv", path, sizeof path, err));
    CBQ_TRY(cbq_curves_writer_open(&a->curves, path, err));
    *n_open = 3;
    return CBQ_OK;
}

static int attrib_test_volumes(attrib_run *a, const cbq_cohort *c, cbq_error *err)
{
    int n_open = 0;
    int rc = open_cam(a, err);
    if (rc == CBQ_OK)
        rc = open_writers(a, &n_open, err);
    size_t n_test = 0;
    for (size_t i = 0; i < c->n; i++)
        n_test += c->v[i].split == CBQ_SPLIT_TEST;
    cbq_progress prog;
    cbq_progress_begin(&prog, "attrib", n_test, a->ctx->cfg->quiet || rc != CBQ_OK);
    for (size_t i = 0; i < c->n && rc == CBQ_OK; i++)
        if (c->v[i].split == CBQ_SPLIT_TEST) {
            rc = attrib_volume(a, &c->v[i], err);
            cbq_progress_step(&prog, 1);
        }
    cbq_progress_end(&prog);
    if (rc == CBQ_OK && (rc = cbq_ae_writer_commit(&a->w, err)) == CBQ_OK &&
        (rc = cbq_csv_writer_commit(&a->prof, err)) == CBQ_OK)
        rc = cbq_csv_writer_commit(&a->curves, err);
    if (rc != CBQ_OK)
        close_writers(a, n_open);
    a->n_test = n_test;
    return rc;
}

int study_stage_attrib(study_ctx *ctx, cbq_error *err)
{
    attrib_run a;
    memset(&a, 0, sizeof a);
    a.ctx = ctx;
    cbq_cohort c;
    CBQ_TRY(study_read_cohort_files(ctx, STUDY_READS_VOLUMES | STUDY_READS_STRUCTURES, &c, err));
    a.cohort = &c;
    int rc = attrib_test_volumes(&a, &c, err);
    snprintf(ctx->summary, sizeof ctx->summary, "%s AE of %zu test volumes x %zu categories on %s%s",
             ctx->cfg->attrib.method, a.n_test, ctx->n_categories,
             a.cam ? cbq_cam_target_name(a.cam) : "?",
             a.cam && cbq_cam_identity_holds(a.cam) ? " (GAP+linear identity holds)" : "");
    if (a.cam)
        cbq_cam_free(a.cam);
    if (a.net)
        cbq_net_free(a.net);
    cbq_cohort_free(&c);
    return rc;
}
