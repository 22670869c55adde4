/* stage_attrib.c - stage 5: Grad-CAM (or the configured CAM method) on every
 * used axial slice of every test volume, Attribution Energy per volume and
 * category (ae.csv through the data layer's one writer, ae_table.h, the
 * same file `cbctiq ae` writes), with where each map points and its
 * deletion/insertion curves (pointing.h; the curves in curves.csv), its
 * per-slice profile along z (profiles.csv, for the report's z-profiles),
 * and optionally the maps as NIfTI volumes on the CBCT's grid (maps/) and,
 * with attrib.save_maps = "dicom", as DICOM Parametric Maps that reference
 * the test volume's DICOM series (dicom/). Under MPI the ranks share the
 * test volumes in contiguous blocks, each writing its volumes' maps and its
 * rows into part files, which rank 0 joins (dist_parts.h): the bytes of
 * one process. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/ae_table.h"
#include "cbctiq/attrib.h"
#include "cbctiq/csv.h"
#include "cbctiq/dicom_write.h"
#include "cbctiq/dist_parts.h"
#include "cbctiq/model_file.h"
#include "cbctiq/model_input.h"
#include "cbctiq/pointing.h"
#include "cbctiq/progress.h"
#include "cbctiq/volume_io.h"

static const char *const PROFILE_HEADER[] = {"volume_id", "category", "slice", "z_mm", "ae", "pred"};
enum { PROFILE_COLS = sizeof PROFILE_HEADER / sizeof PROFILE_HEADER[0] };

/* The models of one fold (one per repeat) with their CAMs; AE, profiles
 * and maps are the mean over them (the ensemble), and under train.repeats
 * each model's AE also goes to its own seeds/ae_seed<r>.csv. */
typedef struct {
    const study_ctx *ctx;
    cbq_net *net[STUDY_MAX_REPEATS];
    cbq_cam *cam[STUDY_MAX_REPEATS];
    size_t out_index[STUDY_MAX_REPEATS][STUDY_MAX_CATEGORIES];
    int n_models;
    const cbq_cohort *cohort;
    cbq_ae_writer w;
    cbq_ae_writer seed_w[STUDY_MAX_REPEATS]; /* open under train.repeats > 1 */
    cbq_csv_writer prof, curves;
    cbq_pointing_options pointing;
    size_t n_test;
    char target_name[128];
    int identity_holds;
    /* Under MPI this rank's block [first, end) of the test volumes in the
     * order they are attributed (fold by fold), and the next one's number;
     * each rank writes its rows into part files that rank 0 joins. */
    size_t first, end, next;
} attrib_run;

/* One category's maps [n, H, W] on the CBCT's own grid: NIfTI through the
 * data layer (cbq_model_input_write_map) and, for attrib.save_maps =
 * "dicom", a Parametric Map over the volume's series. */
static int write_map(cbq_model_input *in, const float *maps, const char *path,
                     const cbq_dicom_grid *dicom, const char *dicom_dir,
                     const cbq_dicom_map_label *label, cbq_error *err)
{
    CBQ_TRY(cbq_model_input_write_map(in, maps, path, err));
    if (!dicom)
        return CBQ_OK;
    cbq_volume src = {0};
    CBQ_TRY(cbq_model_input_unmap_source(in, maps, &src, err));
    int rc = cbq_dicom_write_parametric_map(dicom_dir, dicom, &src, label, err);
    cbq_volume_free(&src);
    return rc;
}

/* attrib.save_maps = "dicom": the volume's own DICOM series, matched to its grid. */
static int open_dicom_series(const cbq_cohort_volume *sv, const cbq_model_input *in,
                             cbq_dicom_grid **g, cbq_error *err)
{
    if (in->src.kind != CBQ_SOURCE_DICOM)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "attrib.save_maps = dicom: %s is not a DICOM series",
                        sv->path);
    cbq_volume ct = {0};
    CBQ_TRY(cbq_volume_uncanonical(&ct, &in->canon, &in->xf, err));
    int rc = cbq_dicom_grid_open(g, sv->path, in->src.dicom.info.series_uid, &ct, err);
    cbq_volume_free(&ct);
    return rc;
}

/* Refuses attrib.save_maps = "dicom" before any work when a test volume is
 * NIfTI: a Parametric Map must reference a DICOM series. */
static int check_dicom_sources(const attrib_run *a, const cbq_cohort *c, cbq_error *err)
{
    if (a->ctx->cfg->attrib.save_maps != CBQ_SAVE_MAPS_DICOM)
        return CBQ_OK;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].split == CBQ_SPLIT_TEST && cbq_path_is_nifti(c->v[i].path))
            return CBQ_FAIL(err, CBQ_ERR_ARG,
                            "attrib.save_maps = dicom: %s line %zu: test volume %s is NIfTI (%s); "
                            "DICOM maps reference a DICOM series (set attrib.save_maps to true for "
                            "NIfTI maps)", c->csv, c->v[i].line, c->v[i].id, c->v[i].path);
    return CBQ_OK;
}

static int write_maps(attrib_run *a, const cbq_cohort_volume *sv, cbq_model_input *in,
                      float *const *maps, cbq_error *err)
{
    char dir[CBQ_STUDY_PATH_MAX + 16], path[CBQ_STUDY_PATH_MAX + 600];
    char dicom_root[CBQ_STUDY_PATH_MAX + 16], dicom_dir[CBQ_STUDY_PATH_MAX + 600];
    CBQ_TRY(study_output_path(a->ctx, "maps", dir, sizeof dir, err));
    CBQ_TRY(study_output_path(a->ctx, "dicom", dicom_root, sizeof dicom_root, err));
    CBQ_TRY(cbq_mkdir_p(dir, err));
    cbq_dicom_grid *dicom = NULL;
    if (a->ctx->cfg->attrib.save_maps == CBQ_SAVE_MAPS_DICOM)
        CBQ_TRY(open_dicom_series(sv, in, &dicom, err));
    int rc = CBQ_OK;
    for (size_t k = 0; k < a->ctx->n_categories && rc == CBQ_OK; k++) {
        cbq_dicom_map_label label = {.method = a->ctx->cfg->attrib.method,
                                     .category = a->ctx->categories[k],
                                     .target_layer = cbq_cam_target_name(a->cam[0])};
        int len = snprintf(path, sizeof path, "%s/%s_%s.nii.gz", dir, sv->id, a->ctx->categories[k]);
        int dlen = snprintf(dicom_dir, sizeof dicom_dir, "%s/%s_%s", dicom_root, sv->id,
                            a->ctx->categories[k]);
        if (len < 0 || (size_t)len >= sizeof path || dlen < 0 || (size_t)dlen >= sizeof dicom_dir)
            rc = CBQ_FAIL(err, CBQ_ERR_ARG, "%s: map path too long", sv->id);
        else
            rc = write_map(in, maps[k], path, dicom, dicom_dir, &label, err);
    }
    cbq_dicom_grid_free(dicom);
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

/* Adds model b's AE into the ensemble sum e (same slices). */
static void ae_add(cbq_ae *e, const cbq_ae *b)
{
    e->ae += b->ae;
    e->ae_feature += b->ae_feature;
    e->ae_feature_pre += b->ae_feature_pre;
    e->ae_feature_post += b->ae_feature_post;
    e->pred_sum += b->pred_sum;
    e->pred_part += b->pred_part;
    e->ae_in_structure += b->ae_in_structure;
    e->structure_sum += b->structure_sum;
    for (size_t i = 0; i < e->n_slices; i++) {
        e->profile[i] += b->profile[i];
        e->slice_pred[i] += b->slice_pred[i];
    }
}

static void ae_scale(cbq_ae *e, double s)
{
    e->ae *= s;
    e->ae_feature *= s;
    e->ae_feature_pre *= s;
    e->ae_feature_post *= s;
    e->pred_sum *= s;
    e->pred_part *= s;
    e->ae_in_structure *= s;
    e->structure_sum *= s;
    for (size_t i = 0; i < e->n_slices; i++) {
        e->profile[i] *= s;
        e->slice_pred[i] = (float)(e->slice_pred[i] * s);
    }
}

/* Takes over model r's AE of category k as the ensemble's start (r = 0) or
 * adds it in; the ensemble owns what it took. */
static void ensemble_take(cbq_ae *ens, cbq_ae *ae, int r)
{
    if (r == 0) {
        *ens = *ae;
        memset(ae, 0, sizeof *ae);
    } else {
        ae_add(ens, ae);
    }
}

/* Model r's AE and maps for the loaded input, per category k in the
 * study's order: ens[k] and ens_maps[k] accumulate the sum. */
static int attrib_model(attrib_run *a, int r, cbq_model_input *in, float *const *weights,
                        cbq_ae *ens, float **ens_maps, const cbq_cohort_volume *sv, cbq_error *err)
{
    size_t K = a->ctx->n_categories, n_out = cbq_cam_n_outputs(a->cam[r]);
    size_t plane = in->H * in->W, n = in->n;
    float *maps[CBQ_MAX_OUTPUTS] = {0};
    const float *struct_by_out[CBQ_MAX_OUTPUTS] = {0};
    cbq_ae ae[CBQ_MAX_OUTPUTS];
    memset(ae, 0, sizeof ae);
    for (size_t k = 0; k < K; k++)
        struct_by_out[a->out_index[r][k]] = weights[k];
    int rc = CBQ_OK;
    for (size_t k = 0; rc == CBQ_OK && k < K; k++)
        if (!(maps[a->out_index[r][k]] = malloc(n * plane * sizeof(float))))
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for maps");
    if (rc == CBQ_OK)
        rc = cbq_attrib_volume(a->cam[r], in->x, n, struct_by_out, ae, maps, NULL, NULL, err);
    /* a seed's own row: where its map points is the ensemble's (ae.csv) */
    for (size_t k = 0; rc == CBQ_OK && a->n_models > 1 && k < K; k++)
        rc = cbq_ae_writer_put(&a->seed_w[r], sv->id, a->ctx->categories[k], a->cam[r],
                               a->out_index[r][k], &ae[a->out_index[r][k]], NULL, err);
    for (size_t k = 0; rc == CBQ_OK && k < K; k++) {
        size_t o = a->out_index[r][k];
        ensemble_take(&ens[k], &ae[o], r);
        if (!maps[o])
            continue;
        if (r == 0) {
            ens_maps[k] = maps[o];
            maps[o] = NULL;
        } else {
            for (size_t i = 0; i < n * plane; i++)
                ens_maps[k][i] += maps[o][i];
        }
    }
    for (size_t o_i = 0; o_i < n_out; o_i++)
        cbq_ae_free(&ae[o_i]);
    for (size_t k = 0; k < CBQ_MAX_OUTPUTS; k++)
        free(maps[k]);
    return rc;
}

/* The ensemble's rows: ae.csv (with the first model's options and bias, and
 * where the ensemble's map points; its deletion curves score with the
 * fold's first model), curves.csv, profiles.csv and the maps. */
static int write_ensemble(attrib_run *a, const cbq_cohort_volume *sv, cbq_model_input *in,
                          cbq_ae *ens, float **ens_maps, cbq_error *err)
{
    size_t K = a->ctx->n_categories, count = in->n * in->H * in->W;
    if (a->n_models > 1)
        for (size_t k = 0; k < K; k++) {
            ae_scale(&ens[k], 1.0 / a->n_models);
            for (size_t i = 0; i < count; i++)
                ens_maps[k][i] = (float)(ens_maps[k][i] / a->n_models);
        }
    const char *categories[STUDY_MAX_CATEGORIES];
    const float *maps_by_out[CBQ_MAX_OUTPUTS] = {0};
    for (size_t k = 0; k < K; k++) {
        categories[k] = a->ctx->categories[k];
        maps_by_out[a->out_index[0][k]] = ens_maps[k];
    }
    cbq_pointing pointing[STUDY_MAX_CATEGORIES];
    CBQ_TRY(cbq_pointing_volume(in, a->net[0], (size_t)a->ctx->cfg->evaluate.batch, categories, K,
                                a->out_index[0], maps_by_out, &a->pointing, pointing, err));
    for (size_t k = 0; k < K; k++)
        CBQ_TRY(cbq_ae_writer_put(&a->w, sv->id, a->ctx->categories[k], a->cam[0],
                                  a->out_index[0][k], &ens[k], &pointing[k], err));
    for (size_t k = 0; k < K; k++)
        CBQ_TRY(cbq_curves_put(&a->curves, sv->id, a->ctx->categories[k], &pointing[k], err));
    for (size_t k = 0; k < K; k++)
        CBQ_TRY(put_profile(a, sv, &in->canon, k, in->ks, &ens[k], err));
    if (a->ctx->cfg->attrib.save_maps)
        CBQ_TRY(write_maps(a, sv, in, ens_maps, err));
    return CBQ_OK;
}

/* One test volume through the one model-input path, its AE per category
 * (the study's categories, in its order) and its profiles: the mean over
 * the fold's models. */
static int attrib_volume(attrib_run *a, const cbq_cohort_volume *sv, cbq_error *err)
{
    const cbq_study_config *cfg = a->ctx->cfg;
    size_t K = a->ctx->n_categories;
    cbq_model_input_options o = {.with_structures = 1};
    if (!cbq_slice_selection_parse(cfg->train.slices, &o.selection))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "train.slices: unknown '%s'", cfg->train.slices);
    cbq_model_input in;
    CBQ_TRY(cbq_model_input_load(&in, sv, a->cohort, &cbq_net_spec(a->net[0])->input, &o, err));
    float *weights[STUDY_MAX_CATEGORIES] = {0}, *ens_maps[STUDY_MAX_CATEGORIES] = {0};
    cbq_ae ens[STUDY_MAX_CATEGORIES];
    memset(ens, 0, sizeof ens);
    int rc = in.n ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_FORMAT, "no slice with a structure");
    const char *categories[STUDY_MAX_CATEGORIES];
    for (size_t k = 0; k < K; k++)
        categories[k] = a->ctx->categories[k];
    if (rc == CBQ_OK)
        rc = cbq_model_input_structure_weights(&in, categories, K, weights, err);
    for (int r = 0; r < a->n_models && rc == CBQ_OK; r++)
        rc = attrib_model(a, r, &in, weights, ens, ens_maps, sv, err);
    if (rc == CBQ_OK)
        rc = write_ensemble(a, sv, &in, ens, ens_maps, err);
    for (size_t k = 0; k < K; k++) {
        cbq_ae_free(&ens[k]);
        free(ens_maps[k]);
        free(weights[k]);
    }
    cbq_model_input_free(&in);
    return rc == CBQ_OK ? rc : cbq_error_prefix(err, "%s: ", sv->id);
}

/* The deletion curves: the configured baseline, the study's seed for the
 * random order, attrib.curve_slices slices per volume. */
static int pointing_options(attrib_run *a, cbq_error *err)
{
    const cbq_study_config *cfg = a->ctx->cfg;
    const cbq_input_spec *input = &cbq_net_spec(a->net[0])->input;
    cbq_faith_options_default(&a->pointing.faith, (size_t)input->height, (size_t)input->width);
    if (!cbq_perturb_parse(cfg->attrib.perturbation, &a->pointing.faith.baseline))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "attrib.perturbation: unknown '%s' (none, blur or road)",
                        cfg->attrib.perturbation);
    a->pointing.faith.seed = cfg->seed;
    a->pointing.max_slices = (size_t)cfg->attrib.curve_slices;
    return CBQ_OK;
}

static int open_cam(attrib_run *a, int fold, int r, cbq_error *err)
{
    const cbq_study_config *cfg = a->ctx->cfg;
    char model_dir[CBQ_STUDY_PATH_MAX + 16];
    CBQ_TRY(study_run_model_dir(a->ctx, fold, r + 1, model_dir, sizeof model_dir, err));
    CBQ_TRY(cbq_model_load(model_dir, &a->net[r], (size_t)cfg->evaluate.batch, err));
    a->n_models = r + 1;
    cbq_net_set_threads(a->net[r], cfg->threads);
    CBQ_TRY(study_map_outputs(a->ctx, a->net[r], a->out_index[r], model_dir, err));
    cbq_attrib_options opt;
    cbq_attrib_options_default(&opt);
    if (!cbq_cam_method_parse(cfg->attrib.method, &opt.method))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "attrib.method: unknown '%s' (one of %s)",
                        cfg->attrib.method, cbq_cam_method_list());
    if (strlen(cfg->attrib.target_layer) >= sizeof opt.layer)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "attrib.target_layer: name too long");
    memcpy(opt.layer, cfg->attrib.target_layer, strlen(cfg->attrib.target_layer) + 1);
    CBQ_TRY(cbq_cam_create(&a->cam[r], a->net[r], (size_t)cfg->evaluate.batch, &opt, err));
    snprintf(a->target_name, sizeof a->target_name, "%s", cbq_cam_target_name(a->cam[r]));
    a->identity_holds = cbq_cam_identity_holds(a->cam[r]);
    return r == 0 ? pointing_options(a, err) : CBQ_OK;
}

static void close_cams(attrib_run *a)
{
    for (int r = 0; r < a->n_models; r++) {
        if (a->cam[r])
            cbq_cam_free(a->cam[r]);
        if (a->net[r])
            cbq_net_free(a->net[r]);
        a->cam[r] = NULL;
        a->net[r] = NULL;
    }
    a->n_models = 0;
}

/* Abandons the writers opened (ae.csv, profiles.csv, curves.csv, then each
 * seed's ae.csv); aborting one already committed only removes its temporary
 * name, which is gone. An ae.csv committed without the others leaves the
 * stage unstamped, so the next run empties the folder and redoes it. */
static void close_writers(attrib_run *a, int n_open)
{
    for (int i = 3; i < n_open; i++)
        cbq_ae_writer_abort(&a->seed_w[i - 3]);
    if (n_open >= 3)
        cbq_csv_writer_abort(&a->curves);
    if (n_open >= 2)
        cbq_csv_writer_abort(&a->prof);
    if (n_open >= 1)
        cbq_ae_writer_abort(&a->w);
}

/* The tables the stage writes, in the order open_writers opens them; the
 * seeds' tables (train.repeats > 1) follow as seeds/ae_seed<r>.csv. */
static const char *const TABLES[] = {"ae.csv", "profiles.csv", "curves.csv"};
enum { N_TABLES = sizeof TABLES / sizeof TABLES[0] };

/* This rank's file of a table: the table itself as one process, else its
 * part (dist_parts.h). */
static int part_path(const attrib_run *a, const char *name, char *buf, size_t cap, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(a->ctx, name, path, sizeof path, err));
    if (!cbq_dist_part_path(&a->ctx->dist, path, buf, cap))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: path too long", path);
    return CBQ_OK;
}

static int open_writers(attrib_run *a, int *n_open, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 64];
    CBQ_TRY(part_path(a, TABLES[0], path, sizeof path, err));
    CBQ_TRY(cbq_ae_writer_open(&a->w, path, err));
    *n_open = 1;
    CBQ_TRY(part_path(a, TABLES[1], path, sizeof path, err));
    CBQ_TRY(cbq_csv_writer_open(&a->prof, path, PROFILE_HEADER, PROFILE_COLS, err));
    *n_open = 2;
    CBQ_TRY(part_path(a, TABLES[2], path, sizeof path, err));
    CBQ_TRY(cbq_curves_writer_open(&a->curves, path, err));
    *n_open = 3;
    int R = a->ctx->cfg->train.repeats;
    if (R > 1) {
        CBQ_TRY(study_output_path(a->ctx, "seeds", path, sizeof path, err));
        CBQ_TRY(cbq_mkdir_p(path, err));
    }
    for (int r = 0; R > 1 && r < R; r++) {
        char name[64];
        snprintf(name, sizeof name, "seeds/ae_seed%d.csv", r + 1);
        CBQ_TRY(part_path(a, name, path, sizeof path, err));
        CBQ_TRY(cbq_ae_writer_open(&a->seed_w[r], path, err));
        *n_open = 4 + r;
    }
    return CBQ_OK;
}

static int commit_writers(attrib_run *a, cbq_error *err)
{
    CBQ_TRY(cbq_ae_writer_commit(&a->w, err));
    CBQ_TRY(cbq_csv_writer_commit(&a->prof, err));
    CBQ_TRY(cbq_csv_writer_commit(&a->curves, err));
    for (int r = 0; a->ctx->cfg->train.repeats > 1 && r < a->ctx->cfg->train.repeats; r++)
        CBQ_TRY(cbq_ae_writer_commit(&a->seed_w[r], err));
    return CBQ_OK;
}

/* Under MPI (a collective): rank 0 joins every table's parts in rank order,
 * which is the one-process row order (the blocks are contiguous). */
static int join_tables(attrib_run *a, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    for (int t = 0; t < N_TABLES; t++) {
        CBQ_TRY(study_output_path(a->ctx, TABLES[t], path, sizeof path, err));
        CBQ_TRY(cbq_dist_join_parts(&a->ctx->dist, path, err));
    }
    for (int r = 0; a->ctx->cfg->train.repeats > 1 && r < a->ctx->cfg->train.repeats; r++) {
        char name[64];
        snprintf(name, sizeof name, "seeds/ae_seed%d.csv", r + 1);
        CBQ_TRY(study_output_path(a->ctx, name, path, sizeof path, err));
        CBQ_TRY(cbq_dist_join_parts(&a->ctx->dist, path, err));
    }
    return CBQ_OK;
}

/* Fold f's test volumes (every test volume without folds) through its models. */
static int attrib_fold(attrib_run *a, const cbq_cohort *c, const int *fold, int f,
                       cbq_progress *prog, cbq_error *err)
{
    int rc = CBQ_OK;
    for (int r = 0; r < a->ctx->cfg->train.repeats && rc == CBQ_OK; r++)
        rc = open_cam(a, f, r, err);
    for (size_t i = 0; i < c->n && rc == CBQ_OK; i++)
        if (c->v[i].split == CBQ_SPLIT_TEST && fold[i] == f) {
            size_t at = a->next++;
            if (at < a->first || at >= a->end)
                continue;
            rc = attrib_volume(a, &c->v[i], err);
            cbq_progress_step(prog, 1);
        }
    close_cams(a);
    return rc;
}

static int attrib_test_volumes(attrib_run *a, const cbq_cohort *c, cbq_error *err)
{
    const cbq_study_config *cfg = a->ctx->cfg;
    int n_open = 0;
    int *fold = malloc((c->n + 1) * sizeof *fold);
    int rc = fold ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK)
        rc = check_dicom_sources(a, c, err);
    if (rc == CBQ_OK)
        rc = study_read_folds(a->ctx, c, fold, err);
    if (rc == CBQ_OK)
        rc = open_writers(a, &n_open, err);
    size_t n_test = 0;
    for (size_t i = 0; i < c->n; i++)
        n_test += c->v[i].split == CBQ_SPLIT_TEST;
    cbq_dist_block(&a->ctx->dist, n_test, &a->first, &a->end);
    cbq_progress prog;
    cbq_progress_begin(&prog, "attrib", a->end - a->first, cfg->quiet || rc != CBQ_OK);
    for (int f = study_first_fold(cfg); f <= study_last_fold(cfg) && rc == CBQ_OK; f++)
        rc = attrib_fold(a, c, fold, f, &prog, err);
    cbq_progress_end(&prog);
    if (rc == CBQ_OK)
        rc = commit_writers(a, err);
    if (rc != CBQ_OK)
        close_writers(a, n_open);
    if (rc == CBQ_OK)
        rc = join_tables(a, err);
    a->n_test = n_test;
    free(fold);
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
             a.target_name[0] ? a.target_name : "?",
             a.identity_holds ? " (GAP+linear identity holds)" : "");
    close_cams(&a);
    cbq_cohort_free(&c);
    return rc;
}
