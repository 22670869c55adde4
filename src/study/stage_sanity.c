/* stage_sanity.c - stage 8: the sanity checks of the attribution maps
 * (sanity.h) on the test volumes: the cascading model randomisation of the
 * trained model and, under sanity.permuted_labels, the maps of a model
 * trained with the study's own recipe on permuted consensus scores
 * (sanity/permuted_model/). Writes sanity/sanity.csv, the same table as
 * `cbctiq sanity`, and pooled.csv (each verdict's statistic); with
 * sanity.enabled = false only their headers. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/csv.h"
#include "cbctiq/model_file.h"
#include "cbctiq/model_input.h"
#include "cbctiq/sanity.h"
#include "cbctiq/sanity_energy.h"

/* pooled.csv: one row per method and comparison with the statistic behind
 * its verdict (the median over all categories and volumes), which
 * sanity.csv's per-category rows cannot give back; the report plots it. */
static int write_pooled(const char *path, const cbq_sanity_result *res, cbq_error *err)
{
    static const char *const header[] = {"method", "test", "step", "layer", "median_spearman",
                                         "threshold", "survives"};
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, header, sizeof header / sizeof header[0], err));
    int rc = CBQ_OK;
    for (size_t i = 0; res && i < res->n_rows && rc == CBQ_OK; i++) {
        const cbq_sanity_row *row = &res->rows[i], *prev = i ? row - 1 : NULL;
        if (prev && prev->method == row->method && prev->permuted == row->permuted &&
            prev->step == row->step)
            continue; /* another category of the same comparison */
        cbq_csv_put_str(&w, cbq_cam_method_name(row->method));
        cbq_csv_put_str(&w, row->permuted ? "permuted_labels" : "cascade");
        cbq_csv_put_int(&w, (long long)row->step);
        cbq_csv_put_str(&w, row->layer);
        cbq_csv_put_double(&w, row->pooled_rho);
        cbq_csv_put_double(&w, row->threshold);
        cbq_csv_put_int(&w, row->survives);
        rc = cbq_csv_end_row(&w, err);
    }
    if (rc == CBQ_OK)
        return cbq_csv_writer_commit(&w, err);
    cbq_csv_writer_abort(&w);
    return rc;
}

/* sanity.methods, or attrib.method and gradxinput when it is empty. */
static int parse_methods(const cbq_study_config *cfg, cbq_sanity_options *o, cbq_error *err)
{
    char buf[2 * CBQ_STUDY_STR_MAX + 16];
    if (cfg->sanity.methods[0])
        snprintf(buf, sizeof buf, "%s", cfg->sanity.methods);
    else if (strcmp(cfg->attrib.method, "gradxinput") == 0)
        snprintf(buf, sizeof buf, "gradxinput");
    else
        snprintf(buf, sizeof buf, "%s,gradxinput", cfg->attrib.method);
    char bad[64];
    if (!cbq_cam_method_list_parse(buf, o->methods, CBQ_CAM_METHOD_COUNT, &o->n_methods, bad,
                                   sizeof bad, NULL))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: unknown method '%s' (one of %s)",
                        cfg->sanity.methods[0] ? "sanity.methods" : "attrib.method", bad,
                        cbq_cam_method_list());
    return o->n_methods ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_ARG, "sanity.methods: no method");
}

static int make_options(const cbq_study_config *cfg, cbq_sanity_options *o, cbq_error *err)
{
    cbq_sanity_options_default(o);
    CBQ_TRY(parse_methods(cfg, o, err));
    o->threshold = cfg->sanity.threshold;
    o->seed = cfg->seed;
    o->batch = (size_t)cfg->evaluate.batch;
    o->quiet = cfg->quiet;
    if (strlen(cfg->attrib.target_layer) >= sizeof o->attrib.layer)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "attrib.target_layer: name too long");
    memcpy(o->attrib.layer, cfg->attrib.target_layer, strlen(cfg->attrib.target_layer) + 1);
    return CBQ_OK;
}

/* One test volume's tested slices as the model's input: those the study
 * uses (train.slices), at most sanity.max_slices, evenly spaced; kept with
 * its structures by the energy hook. */
static int load_test_volume(const study_ctx *ctx, const cbq_net *net, const cbq_cohort *c,
                            const cbq_cohort_volume *sv, cbq_sanity_energy *energy,
                            cbq_sanity_volume *out, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    cbq_model_input_options o = {.max_slices = (size_t)cfg->sanity.max_slices,
                                 .with_structures = 1};
    if (!cbq_slice_selection_parse(cfg->train.slices, &o.selection))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "train.slices: unknown '%s'", cfg->train.slices);
    cbq_model_input in;
    int rc = cbq_model_input_load(&in, sv, c, &cbq_net_spec(net)->input, &o, err);
    if (rc == CBQ_OK && in.n == 0)
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "no slice to test");
    if (rc != CBQ_OK) {
        cbq_model_input_free(&in);
        return cbq_error_prefix(err, "%s: ", sv->id);
    }
    CBQ_TRY(cbq_sanity_energy_add(energy, &in, err));
    const cbq_model_input *kept = &energy->inputs[energy->n - 1];
    *out = (cbq_sanity_volume){.id = sv->id, .slices = kept->x, .nz = kept->n};
    return CBQ_OK;
}

static int load_test_volumes(const study_ctx *ctx, const cbq_net *net, const cbq_cohort *c,
                             cbq_sanity_energy *energy, cbq_sanity_volume **vols, cbq_error *err)
{
    CBQ_TRY(cbq_sanity_energy_init(energy, net, c->n, err));
    *vols = calloc(c->n + 1, sizeof **vols);
    if (!*vols)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].split == CBQ_SPLIT_TEST)
            CBQ_TRY(load_test_volume(ctx, net, c, &c->v[i], energy, &(*vols)[energy->n], err));
    return energy->n ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_FORMAT, "no test volumes");
}

/* The label-permuted model, trained with the study's recipe into
 * sanity/permuted_model/ (its own train_log.csv there). When a split has
 * too few volumes to derange, trains nothing: model_dir[0] = '\0' and
 * skipped says why. */
static int train_permuted(const study_ctx *ctx, char *model_dir, size_t cap, char *skipped,
                          size_t skipped_cap, cbq_error *err)
{
    char log[CBQ_STUDY_PATH_MAX + 64], cohort[CBQ_STUDY_PATH_MAX + 32], cons[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "permuted_model", model_dir, cap, err));
    CBQ_TRY(study_path(log, sizeof log, model_dir, "train_log.csv", err));
    char cohort_name[64];
    study_fold_cohort_name(study_first_fold(ctx->cfg), cohort_name, sizeof cohort_name);
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_COHORT, cohort_name, cohort, sizeof cohort, err));
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_CONSENSUS, "consensus.csv", cons, sizeof cons, err));
    cbq_study_config pcfg = *ctx->cfg;
    pcfg.train.permute_labels = 1;
    char why[CBQ_STUDY_PATH_MAX];
    CBQ_TRY(cbq_study_permute_check(&pcfg, cohort, cons, why, sizeof why, err));
    if (why[0]) {
        snprintf(skipped, skipped_cap, "no permuted-labels test: %s", why);
        model_dir[0] = '\0';
        return CBQ_OK;
    }
    CBQ_TRY(cbq_mkdir_p(model_dir, err));
    /* Under MPI every rank trains it, data-parallel; rank 0 writes it, and
     * the others read it once it is written. */
    CBQ_TRY(cbq_study_train_on(&ctx->dist, &pcfg, cohort, cons, model_dir, log, NULL, err));
    return cbq_dist_barrier(&ctx->dist, err);
}

/* sanity/notes.txt: why a part of the checks did not run, one line each,
 * for the report; empty when everything ran. */
static int write_notes(const study_ctx *ctx, const char *note, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "notes.txt", path, sizeof path, err));
    cbq_atomic_file f;
    CBQ_TRY(cbq_atomic_open(&f, path, err));
    if (note[0])
        fprintf(f.fp, "%s\n", note);
    return cbq_atomic_commit(&f, err);
}

static int load_net(const study_ctx *ctx, const char *dir, cbq_net **net, cbq_error *err)
{
    CBQ_TRY(cbq_model_load(dir, net, (size_t)ctx->cfg->evaluate.batch, err));
    cbq_net_set_threads(*net, ctx->cfg->threads);
    return CBQ_OK;
}

static void summarise(study_ctx *ctx, const cbq_sanity_result *res, int permuted, const char *note)
{
    size_t len = 0, cap = sizeof ctx->summary;
    ctx->summary[0] = '\0';
    for (size_t m = 0; m < res->n_methods && len < cap; m++) {
        const cbq_sanity_method *sm = &res->methods[m];
        int n = snprintf(ctx->summary + len, cap - len,
                         "%s%s: maps %s randomisation (median rho %.2f at the last step)",
                         m ? "; " : "", cbq_cam_method_name(sm->method),
                         sm->survives ? "SURVIVE" : "change under", sm->last_rho);
        len += n > 0 ? (size_t)n : 0;
        if (permuted && len < cap) {
            n = snprintf(ctx->summary + len, cap - len, ", permuted-label model rho %.2f%s",
                         sm->permuted_rho, sm->survives_permuted ? " (SURVIVE)" : "");
            len += n > 0 ? (size_t)n : 0;
        }
    }
    if (note[0] && len < cap)
        snprintf(ctx->summary + len, cap - len, "; %s", note);
}

/* Trains the permuted model when asked, loads the nets and the test
 * volumes, runs the checks and writes sanity.csv. */
static int run_checks(study_ctx *ctx, const cbq_cohort *c, const char *csv_path,
                      const char *pooled_path, cbq_sanity_options *o, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    char model[CBQ_STUDY_PATH_MAX + 16], permuted_dir[CBQ_STUDY_PATH_MAX + 32];
    /* A given model (train.model) was not trained with the recipe, so a
     * permuted model trained with it would not be its control. */
    int want_permuted = cfg->sanity.permuted_labels && !cfg->train.model[0];
    char note[CBQ_STUDY_PATH_MAX + 64] = "";
    if (cfg->sanity.permuted_labels && !want_permuted)
        snprintf(note, sizeof note, "no permuted-labels test: train.model was given");
    cbq_net *net = NULL, *permuted = NULL;
    cbq_sanity_volume *vols = NULL;
    cbq_sanity_energy energy = {0};
    /* Under cohort.folds and train.repeats: the first fold's first model
     * (the study's own seed), on that fold's test volumes. */
    int rc = study_run_model_dir(ctx, study_first_fold(cfg), 1, model, sizeof model, err);
    if (rc == CBQ_OK && want_permuted) {
        rc = train_permuted(ctx, permuted_dir, sizeof permuted_dir, note, sizeof note, err);
        want_permuted = permuted_dir[0] != '\0';
    }
    int leader = ctx->dist.rank == 0; /* under MPI rank 0 alone writes */
    if (rc == CBQ_OK && leader)
        rc = write_notes(ctx, note, err);
    if (rc == CBQ_OK)
        rc = load_net(ctx, model, &net, err);
    if (rc == CBQ_OK && want_permuted)
        rc = load_net(ctx, permuted_dir, &permuted, err);
    if (rc == CBQ_OK)
        rc = load_test_volumes(ctx, net, c, &energy, &vols, err);
    cbq_sanity_energy_hook(&energy, o);
    o->dist = &ctx->dist; /* the volumes shared over the ranks, gathered on rank 0 */
    cbq_sanity_result res;
    if (rc == CBQ_OK &&
        (rc = cbq_sanity_run(net, permuted, vols, energy.n, o, &res, err)) == CBQ_OK && !leader)
        cbq_sanity_result_free(&res);
    else if (rc == CBQ_OK) {
        rc = cbq_study_sanity_write(csv_path, &res, err);
        if (rc == CBQ_OK)
            rc = write_pooled(pooled_path, &res, err);
        summarise(ctx, &res, permuted != NULL, note);
        size_t len = strlen(ctx->summary);
        if (cfg->cohort.folds > 0)
            snprintf(ctx->summary + len, sizeof ctx->summary - len, " (checked: fold 1's model%s)",
                     cfg->train.repeats > 1 ? ", seed 1" : "");
        else if (cfg->train.repeats > 1)
            snprintf(ctx->summary + len, sizeof ctx->summary - len, " (checked: seed 1's model)");
        cbq_sanity_result_free(&res);
    }
    free(vols); /* its slices are energy's */
    cbq_sanity_energy_free(&energy);
    cbq_net_free(permuted);
    cbq_net_free(net);
    return rc;
}

int study_stage_sanity(study_ctx *ctx, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32], pooled[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "sanity.csv", path, sizeof path, err));
    CBQ_TRY(study_output_path(ctx, "pooled.csv", pooled, sizeof pooled, err));
    if (!ctx->cfg->sanity.enabled) {
        snprintf(ctx->summary, sizeof ctx->summary, "off (sanity.enabled = false)");
        CBQ_TRY(cbq_study_sanity_write(path, NULL, err));
        return write_pooled(pooled, NULL, err);
    }
    cbq_sanity_options o;
    CBQ_TRY(make_options(ctx->cfg, &o, err));
    cbq_cohort c;
    /* the structures whatever train.slices is: the energy columns need them */
    CBQ_TRY(study_read_fold_cohort(ctx, study_first_fold(ctx->cfg),
                                   STUDY_READS_VOLUMES | STUDY_READS_STRUCTURES, &c, err));
    int rc = run_checks(ctx, &c, path, pooled, &o, err);
    cbq_cohort_free(&c);
    return rc;
}
