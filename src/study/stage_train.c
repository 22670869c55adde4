/* stage_train.c - stage 3: the model. Trained on the train split with
 * early stopping on the val split (train.c), or, when train.model names a
 * model folder, that model checked and copied in (weights trained
 * elsewhere, e.g. in PyTorch, for the same architecture). */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/dist.h"
#include "cbctiq/model_file.h"

static int copy_model(const study_ctx *ctx, const char *given, const char *dst, cbq_error *err)
{
    cbq_net *net = NULL;
    CBQ_TRY(cbq_model_load(given, &net, 1, err));
    size_t idx[STUDY_MAX_CATEGORIES];
    int rc = study_map_outputs(ctx, net, idx, given, err);
    if (rc == CBQ_OK)
        rc = cbq_model_save(dst, net, err);
    cbq_net_free(net);
    return rc;
}

/* One model run: fold f's split (the study's split for fold 0), repeat r's
 * seed, into train/<prefix>model and train/<prefix>train_log.csv. */
static int train_run(study_ctx *ctx, const cbq_dist *group, int fold, int repeat,
                     cbq_study_train_result *r, cbq_error *err)
{
    char prefix[96], name[128], cohort_name[64];
    char model[CBQ_STUDY_PATH_MAX + 16], log[CBQ_STUDY_PATH_MAX + 32];
    char cohort[CBQ_STUDY_PATH_MAX + 32], cons[CBQ_STUDY_PATH_MAX + 32];
    study_run_prefix(ctx->cfg, fold, repeat, prefix, sizeof prefix);
    snprintf(name, sizeof name, "%smodel", prefix);
    CBQ_TRY(study_output_path(ctx, name, model, sizeof model, err));
    snprintf(name, sizeof name, "%strain_log.csv", prefix);
    CBQ_TRY(study_output_path(ctx, name, log, sizeof log, err));
    if (prefix[0]) {
        char dir[CBQ_STUDY_PATH_MAX + 16];
        CBQ_TRY(study_output_path(ctx, prefix, dir, sizeof dir, err));
        CBQ_TRY(cbq_mkdir_p(dir, err));
    }
    study_fold_cohort_name(fold, cohort_name, sizeof cohort_name);
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_COHORT, cohort_name, cohort, sizeof cohort, err));
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_CONSENSUS, "consensus.csv", cons, sizeof cons, err));
    /* train.c opens the files cohort.csv's rows name. */
    CBQ_TRY(study_input_outside(ctx, study_slice_reads(ctx->cfg), err));
    cbq_study_config *cfg = malloc(sizeof *cfg);
    if (!cfg)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    *cfg = *ctx->cfg;
    cfg->seed = study_repeat_seed(ctx->cfg->seed, repeat);
    int rc = cbq_study_train_on(group, cfg, cohort, cons, model, log, r, err);
    free(cfg);
    if (rc != CBQ_OK && prefix[0])
        return cbq_error_prefix(err, "%s: ", prefix);
    return rc;
}

int study_stage_train(study_ctx *ctx, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    char model[CBQ_STUDY_PATH_MAX + 16];
    CBQ_TRY(study_output_path(ctx, "model", model, sizeof model, err));
    const char *given;
    CBQ_TRY(study_given_model(ctx, &given, err));
    if (given[0]) {
        CBQ_TRY(copy_model(ctx, given, model, err));
        snprintf(ctx->summary, sizeof ctx->summary, "using the given model %.900s", given);
        return CBQ_OK;
    }
    /* The model runs (fold, repeat) are independent: under MPI they are
     * dealt to groups of ranks, contiguous blocks of runs to contiguous
     * groups of ranks (as many groups as runs, at most one per rank), and
     * each group trains its runs data-parallel (alone for a group of one:
     * one process's model). */
    int n_folds = study_last_fold(cfg) - study_first_fold(cfg) + 1, repeats = cfg->train.repeats;
    size_t runs = (size_t)n_folds * (size_t)repeats;
    size_t groups = (size_t)ctx->dist.size < runs ? (size_t)ctx->dist.size : runs;
    size_t my_group = 0, r0, r1;
    for (size_t g = 0; g < groups; g++) {
        cbq_dist grouping = {.rank = (int)g, .size = (int)groups};
        cbq_dist_block(&grouping, (size_t)ctx->dist.size, &r0, &r1);
        if ((size_t)ctx->dist.rank >= r0 && (size_t)ctx->dist.rank < r1)
            my_group = g;
    }
    cbq_dist group;
    CBQ_TRY(cbq_dist_split(&ctx->dist, (int)my_group, &group, err));
    cbq_dist run_block = {.rank = (int)my_group, .size = (int)groups};
    cbq_dist_block(&run_block, runs, &r0, &r1);
    /* epochs[i]: run i's epochs from its group's rank 0, summed over the job */
    double *epochs = calloc(runs, sizeof *epochs);
    cbq_study_train_result r;
    memset(&r, 0, sizeof r);
    int rc = epochs ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t i = r0; i < r1 && rc == CBQ_OK; i++) {
        rc = train_run(ctx, &group, study_first_fold(cfg) + (int)(i / (size_t)repeats),
                       1 + (int)(i % (size_t)repeats), &r, err);
        epochs[i] = group.rank == 0 ? (double)r.epochs_run : 0.0;
    }
    cbq_dist_group_free(&group);
    if (rc == CBQ_OK)
        rc = cbq_dist_allreduce_sum_double(&ctx->dist, epochs, runs, err);
    double epochs_all = 0;
    for (size_t i = 0; i < runs && rc == CBQ_OK; i++)
        epochs_all += epochs[i];
    free(epochs);
    if (rc != CBQ_OK)
        return rc;
    size_t epochs_sum = (size_t)epochs_all;
    if (runs > 1) {
        char folds[64] = "the single split";
        if (cfg->cohort.folds > 0)
            snprintf(folds, sizeof folds, "%d folds", cfg->cohort.folds);
        snprintf(ctx->summary, sizeof ctx->summary,
                 "%s %dx%d: %zu models (%s x %d seed%s), %zu epochs in all", cfg->train.arch,
                 cfg->train.input_size, cfg->train.input_size, runs, folds, cfg->train.repeats,
                 cfg->train.repeats > 1 ? "s" : "", epochs_sum);
        return CBQ_OK;
    }
    snprintf(ctx->summary, sizeof ctx->summary,
             "%s %dx%d on %zu slices of %zu volumes; best epoch %zu of %zu (val loss %.4f)%s",
             cfg->train.arch, cfg->train.input_size, cfg->train.input_size,
             r.n_train_slices, r.n_train_volumes, r.best_epoch, r.epochs_run, r.best_val_loss,
             r.stopped_early ? ", stopped early" : "");
    return CBQ_OK;
}
