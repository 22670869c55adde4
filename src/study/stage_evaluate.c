/* stage_evaluate.c - stage 4: the trained model on the test split. Volume-
 * level prediction (mean over the used slices) against the consensus, per
 * category: MAE, RMSE, Spearman, quadratic-weighted kappa on rounded scores
 * and the confusion matrix, next to the constant predictor that always says
 * the training split's mean consensus (the bar a model must clear). */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/csv.h"
#include "cbctiq/likert_metrics.h"
#include "cbctiq/model_file.h"
#include "cbctiq/model_input.h"
#include "cbctiq/progress.h"

typedef struct {
    cbq_cohort cohort;
    double *cons;        /* [volume][category] */
    size_t *test;        /* indices of test volumes */
    size_t n_test;
    double *pred;        /* [test][category], volume level */
    size_t *n_slices;    /* [test] */
} eval_data;

static void eval_free(eval_data *d)
{
    cbq_cohort_free(&d->cohort);
    free(d->cons);
    free(d->test);
    free(d->pred);
    free(d->n_slices);
}

static int predict_test(study_ctx *ctx, eval_data *d, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    size_t K = ctx->n_categories;
    char model_dir[CBQ_STUDY_PATH_MAX + 16], path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_model_dir(ctx, model_dir, sizeof model_dir, err));
    cbq_net *net = NULL;
    CBQ_TRY(cbq_model_load(model_dir, &net, (size_t)cfg->evaluate.batch, err));
    cbq_net_set_threads(net, cfg->threads);
    size_t out_index[STUDY_MAX_CATEGORIES];
    int rc = study_map_outputs(ctx, net, out_index, model_dir, err);
    static const char *const hs[] = {"volume_id", "slice", "category", "pred"};
    cbq_csv_writer ws;
    if (rc == CBQ_OK &&
        (rc = study_output_path(ctx, "pred_slices.csv", path, sizeof path, err)) == CBQ_OK)
        rc = cbq_csv_writer_open(&ws, path, hs, 4, err);
    if (rc != CBQ_OK) {
        cbq_net_free(net);
        return rc;
    }
    cbq_progress prog;
    cbq_progress_begin(&prog, "evaluate", d->n_test, cfg->quiet);
    cbq_model_input_options o = {0};
    if (!cbq_slice_selection_parse(cfg->train.slices, &o.selection))
        rc = CBQ_FAIL(err, CBQ_ERR_ARG, "train.slices: unknown '%s'", cfg->train.slices);
    for (size_t t = 0; t < d->n_test && rc == CBQ_OK; t++) {
        const cbq_cohort_volume *sv = &d->cohort.v[d->test[t]];
        cbq_model_input in;
        cbq_volume_pred vp = {0};
        rc = cbq_model_input_load(&in, sv, &d->cohort, &cbq_net_spec(net)->input, &o, err);
        if (rc == CBQ_OK && in.n == 0)
            rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no slice with a structure",
                          sv->mask[0] ? sv->mask : sv->rtstruct);
        if (rc == CBQ_OK)
            rc = cbq_predict_input(net, &in, (size_t)cfg->evaluate.batch, &vp, err);
        for (size_t i = 0; rc == CBQ_OK && i < vp.n_slices; i++)
            for (size_t k = 0; k < K && rc == CBQ_OK; k++) {
                cbq_csv_put_str(&ws, sv->id);
                cbq_csv_put_int(&ws, (long long)cbq_model_input_source_slice(&in, vp.slice[i]));
                cbq_csv_put_str(&ws, ctx->categories[k]);
                cbq_csv_put_double(&ws, vp.pred[i * vp.n_outputs + out_index[k]]);
                rc = cbq_csv_end_row(&ws, err);
            }
        for (size_t k = 0; rc == CBQ_OK && k < K; k++)
            d->pred[t * K + k] = vp.mean[out_index[k]];
        d->n_slices[t] = in.n;
        if (rc != CBQ_OK)
            cbq_error_prefix(err, "%s: ", sv->id);
        cbq_volume_pred_free(&vp);
        cbq_model_input_free(&in);
        cbq_progress_step(&prog, 1);
    }
    cbq_progress_end(&prog);
    cbq_net_free(net);
    if (rc == CBQ_OK)
        return cbq_csv_writer_commit(&ws, err);
    cbq_csv_writer_abort(&ws);
    return rc;
}

static int write_pred(const study_ctx *ctx, const eval_data *d, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "pred.csv", path, sizeof path, err));
    static const char *const h[] = {"volume_id", "category", "pred", "n_slices", "consensus"};
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, h, 5, err));
    size_t K = ctx->n_categories;
    int rc = CBQ_OK;
    for (size_t t = 0; t < d->n_test && rc == CBQ_OK; t++)
        for (size_t k = 0; k < K && rc == CBQ_OK; k++) {
            cbq_csv_put_str(&w, d->cohort.v[d->test[t]].id);
            cbq_csv_put_str(&w, ctx->categories[k]);
            cbq_csv_put_double(&w, d->pred[t * K + k]);
            cbq_csv_put_int(&w, (long long)d->n_slices[t]);
            cbq_csv_put_double(&w, d->cons[d->test[t] * K + k]);
            rc = cbq_csv_end_row(&w, err);
        }
    if (rc != CBQ_OK) {
        cbq_csv_writer_abort(&w);
        return rc;
    }
    return cbq_csv_writer_commit(&w, err);
}

/* Mean training consensus per category: the constant baseline. */
static double train_mean(const eval_data *d, size_t K, size_t k)
{
    double s = 0;
    size_t n = 0;
    for (size_t i = 0; i < d->cohort.n; i++)
        if (d->cohort.v[i].split == CBQ_SPLIT_TRAIN && isfinite(d->cons[i * K + k])) {
            s += d->cons[i * K + k];
            n++;
        }
    return n ? s / (double)n : NAN;
}

static int write_metrics(study_ctx *ctx, const eval_data *d, cbq_error *err)
{
    size_t K = ctx->n_categories;
    char path[CBQ_STUDY_PATH_MAX + 32], cpath[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "metrics.csv", path, sizeof path, err));
    CBQ_TRY(study_output_path(ctx, "confusion.csv", cpath, sizeof cpath, err));
    static const char *const h[] = {"category", "n", "mae", "rmse", "rho", "p", "kappa",
                                    "baseline_pred", "baseline_mae", "baseline_rmse"};
    static const char *const hc[] = {"category", "consensus_level", "pred_level", "count"};
    cbq_csv_writer w, wc;
    CBQ_TRY(cbq_csv_writer_open(&w, path, h, 10, err));
    int rc = cbq_csv_writer_open(&wc, cpath, hc, 4, err);
    if (rc != CBQ_OK) {
        cbq_csv_writer_abort(&w);
        return rc;
    }
    double *p = malloc(2 * d->n_test * sizeof *p + 1), *c = p + d->n_test;
    double *b = malloc(d->n_test * sizeof *b + 1);
    double mae_sum = 0, base_sum = 0;
    for (size_t k = 0; k < K && rc == CBQ_OK; k++) {
        size_t n = 0;
        double base = train_mean(d, K, k);
        for (size_t t = 0; t < d->n_test; t++) {
            double cv = d->cons[d->test[t] * K + k];
            if (!isfinite(cv))
                continue;
            p[n] = d->pred[t * K + k];
            c[n] = cv;
            b[n] = base;
            n++;
        }
        if (n == 0) {
            rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "no test volume has a consensus in '%s'",
                          ctx->categories[k]);
            break;
        }
        cbq_eval_metrics m, mb;
        rc = cbq_eval_metrics_compute(p, c, n, &m, err);
        if (rc == CBQ_OK)
            rc = cbq_eval_metrics_compute(b, c, n, &mb, err);
        if (rc != CBQ_OK)
            break;
        mae_sum += m.mae;
        base_sum += mb.mae;
        cbq_csv_put_str(&w, ctx->categories[k]);
        cbq_csv_put_int(&w, (long long)m.n);
        cbq_csv_put_double(&w, m.mae);
        cbq_csv_put_double(&w, m.rmse);
        cbq_csv_put_double(&w, m.rho);
        cbq_csv_put_double(&w, m.p);
        cbq_csv_put_double(&w, m.kappa);
        cbq_csv_put_double(&w, base);
        cbq_csv_put_double(&w, mb.mae);
        cbq_csv_put_double(&w, mb.rmse);
        rc = cbq_csv_end_row(&w, err);
        for (int i = 0; i < CBQ_LIKERT_LEVELS && rc == CBQ_OK; i++)
            for (int j = 0; j < CBQ_LIKERT_LEVELS && rc == CBQ_OK; j++) {
                cbq_csv_put_str(&wc, ctx->categories[k]);
                cbq_csv_put_int(&wc, i + 1);
                cbq_csv_put_int(&wc, j + 1);
                cbq_csv_put_int(&wc, (long long)m.confusion[i][j]);
                rc = cbq_csv_end_row(&wc, err);
            }
    }
    free(p);
    free(b);
    if (rc == CBQ_OK)
        rc = cbq_csv_writer_commit(&w, err);
    else
        cbq_csv_writer_abort(&w);
    if (rc == CBQ_OK)
        rc = cbq_csv_writer_commit(&wc, err);
    else
        cbq_csv_writer_abort(&wc);
    snprintf(ctx->summary, sizeof ctx->summary,
             "%zu test volumes: mean MAE %.3f (constant training mean: %.3f)", d->n_test,
             mae_sum / (double)K, base_sum / (double)K);
    return rc;
}

int study_stage_evaluate(study_ctx *ctx, cbq_error *err)
{
    eval_data d;
    memset(&d, 0, sizeof d);
    size_t K = ctx->n_categories;
    CBQ_TRY(study_read_cohort_files(ctx, study_slice_reads(ctx->cfg), &d.cohort, err));
    d.cons = malloc(d.cohort.n * K * sizeof *d.cons);
    d.test = malloc(d.cohort.n * sizeof *d.test);
    d.pred = malloc(d.cohort.n * K * sizeof *d.pred);
    d.n_slices = malloc(d.cohort.n * sizeof *d.n_slices);
    int rc = CBQ_OK;
    if (!d.cons || !d.test || !d.pred || !d.n_slices)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK)
        rc = study_read_consensus(ctx, &d.cohort, d.cons, err);
    for (size_t i = 0; rc == CBQ_OK && i < d.cohort.n; i++)
        if (d.cohort.v[i].split == CBQ_SPLIT_TEST)
            d.test[d.n_test++] = i;
    if (rc == CBQ_OK)
        rc = predict_test(ctx, &d, err);
    if (rc == CBQ_OK)
        rc = write_pred(ctx, &d, err);
    if (rc == CBQ_OK)
        rc = write_metrics(ctx, &d, err);
    eval_free(&d);
    return rc;
}
