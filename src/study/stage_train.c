/* stage_train.c - stage 3: the model. Trained on the train split with
 * early stopping on the val split (train.c), or, when train.model names a
 * model folder, that model checked and copied in (weights trained
 * elsewhere, e.g. in PyTorch, for the same architecture). */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
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

int study_stage_train(study_ctx *ctx, cbq_error *err)
{
    char model[CBQ_STUDY_PATH_MAX + 16], log[CBQ_STUDY_PATH_MAX + 32];
    char cohort[CBQ_STUDY_PATH_MAX + 32], cons[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "model", model, sizeof model, err));
    const char *given;
    CBQ_TRY(study_given_model(ctx, &given, err));
    if (given[0]) {
        CBQ_TRY(copy_model(ctx, given, model, err));
        snprintf(ctx->summary, sizeof ctx->summary, "using the given model %.900s", given);
        return CBQ_OK;
    }
    CBQ_TRY(study_output_path(ctx, "train_log.csv", log, sizeof log, err));
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_COHORT, "cohort.csv", cohort, sizeof cohort, err));
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_CONSENSUS, "consensus.csv", cons, sizeof cons, err));
    /* train.c opens the files cohort.csv's rows name. */
    CBQ_TRY(study_input_outside(ctx, study_slice_reads(ctx->cfg), err));
    cbq_study_train_result r;
    CBQ_TRY(cbq_study_train(ctx->cfg, cohort, cons, model, log, &r, err));
    snprintf(ctx->summary, sizeof ctx->summary,
             "%s %dx%d on %zu slices of %zu volumes; best epoch %zu of %zu (val loss %.4f)%s",
             ctx->cfg->train.arch, ctx->cfg->train.input_size, ctx->cfg->train.input_size,
             r.n_train_slices, r.n_train_volumes, r.best_epoch, r.epochs_run, r.best_val_loss,
             r.stopped_early ? ", stopped early" : "");
    return CBQ_OK;
}
