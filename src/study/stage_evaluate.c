/* stage_evaluate.c - stage 4: the trained model on the test split. Volume-
 * level prediction (mean over the used slices) against the consensus, per
 * category: MAE, RMSE, Spearman, quadratic-weighted kappa on rounded scores
 * and the confusion matrix, next to the constant predictor that always says
 * the training split's mean consensus (the bar a model must clear). Under
 * MPI the ranks share the test volumes in contiguous blocks; rank 0 gathers
 * the predictions and writes the tables, the bytes of one process. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/csv.h"
#include "cbctiq/likert_metrics.h"
#include "cbctiq/model_file.h"
#include "cbctiq/model_input.h"
#include "cbctiq/dist_parts.h"
#include "cbctiq/progress.h"

typedef struct {
    cbq_cohort cohort;
    double *cons;        /* [volume][category] */
    size_t *test;        /* indices of test volumes */
    size_t n_test;
    double *pred;        /* [test][category], volume level */
    size_t *n_slices;    /* [test] */
    double *base;        /* [test][category]: the constant predictor (training mean) */
    int *fold;           /* [volume]: its fold, 0 without folds */
    /* Under MPI this rank's block [first, end) of the test volumes in the
     * order they are predicted (fold by fold), and the next one's number. */
    size_t first, end, next;
} eval_data;

static void eval_free(eval_data *d)
{
    cbq_cohort_free(&d->cohort);
    free(d->cons);
    free(d->test);
    free(d->pred);
    free(d->n_slices);
    free(d->base);
    free(d->fold);
}

/* The models of one fold (its repeats), loaded together so that each test
 * volume is read once and their predictions averaged. */
typedef struct {
    cbq_net *net[STUDY_MAX_REPEATS];
    size_t out_index[STUDY_MAX_REPEATS][STUDY_MAX_CATEGORIES];
    int n;
} fold_models;

static void fold_models_free(fold_models *m)
{
    for (int r = 0; r < m->n; r++)
        cbq_net_free(m->net[r]);
    m->n = 0;
}

static int fold_models_load(study_ctx *ctx, int fold, fold_models *m, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    memset(m, 0, sizeof *m);
    for (int r = 1; r <= cfg->train.repeats; r++) {
        char model_dir[CBQ_STUDY_PATH_MAX + 16];
        CBQ_TRY(study_run_model_dir(ctx, fold, r, model_dir, sizeof model_dir, err));
        CBQ_TRY(cbq_model_load(model_dir, &m->net[m->n], (size_t)cfg->evaluate.batch, err));
        m->n++;
        cbq_net *net = m->net[m->n - 1];
        cbq_net_set_threads(net, cfg->threads);
        /* only the outputs are read (cbq_net_keep_activations_from) */
        CBQ_TRY(cbq_net_keep_activations_from(net, cbq_net_spec(net)->n_layers - 1, err));
        CBQ_TRY(study_map_outputs(ctx, m->net[m->n - 1], m->out_index[m->n - 1], model_dir, err));
    }
    return CBQ_OK;
}

/* Volume-level and per-slice predictions of one test volume: the mean over
 * the fold's models. */
static int predict_volume(study_ctx *ctx, eval_data *d, size_t t, const fold_models *m,
                          cbq_csv_writer *ws, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    size_t K = ctx->n_categories;
    const cbq_cohort_volume *sv = &d->cohort.v[d->test[t]];
    cbq_model_input_options o = {0};
    if (!cbq_slice_selection_parse(cfg->train.slices, &o.selection))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "train.slices: unknown '%s'", cfg->train.slices);
    cbq_model_input in;
    if (cbq_model_input_load(&in, sv, &d->cohort, &cbq_net_spec(m->net[0])->input, &o, err) !=
        CBQ_OK)
        return cbq_error_prefix(err, "%s: ", sv->id);
    int rc = in.n ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no slice with a structure",
                                      sv->mask[0] ? sv->mask : sv->rtstruct);
    double *slice_sum = calloc(in.n * K + 1, sizeof *slice_sum);
    for (size_t k = 0; k < K; k++)
        d->pred[t * K + k] = 0;
    if (rc == CBQ_OK && !slice_sum)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    size_t *slice = NULL;
    for (int r = 0; r < m->n && rc == CBQ_OK; r++) {
        cbq_volume_pred vp = {0};
        rc = cbq_predict_input(m->net[r], &in, (size_t)cfg->evaluate.batch, &vp, err);
        for (size_t i = 0; rc == CBQ_OK && i < vp.n_slices; i++)
            for (size_t k = 0; k < K; k++)
                slice_sum[i * K + k] += vp.pred[i * vp.n_outputs + m->out_index[r][k]];
        for (size_t k = 0; rc == CBQ_OK && k < K; k++)
            d->pred[t * K + k] += vp.mean[m->out_index[r][k]];
        if (rc == CBQ_OK && r == 0) {
            slice = vp.slice; /* the same slices for every model */
            vp.slice = NULL;
        }
        cbq_volume_pred_free(&vp);
    }
    for (size_t k = 0; k < K; k++)
        d->pred[t * K + k] /= m->n;
    for (size_t i = 0; rc == CBQ_OK && i < in.n; i++)
        for (size_t k = 0; k < K && rc == CBQ_OK; k++) {
            cbq_csv_put_str(ws, sv->id);
            cbq_csv_put_int(ws, (long long)cbq_model_input_source_slice(&in, slice[i]));
            cbq_csv_put_str(ws, ctx->categories[k]);
            cbq_csv_put_double(ws, slice_sum[i * K + k] / m->n);
            rc = cbq_csv_end_row(ws, err);
        }
    d->n_slices[t] = in.n;
    free(slice);
    free(slice_sum);
    cbq_model_input_free(&in);
    return rc == CBQ_OK ? rc : cbq_error_prefix(err, "%s: ", sv->id);
}

/* The constant predictor of each test volume: the mean consensus of the
 * training split its model was trained on (its fold's, under folds). */
static int fold_baseline(study_ctx *ctx, eval_data *d, int fold, cbq_error *err)
{
    size_t K = ctx->n_categories;
    cbq_cohort fc;
    CBQ_TRY(study_read_fold_cohort(ctx, fold, 0, &fc, err));
    for (size_t k = 0; k < K; k++) {
        double s = 0;
        size_t n = 0;
        for (size_t i = 0; i < fc.n && i < d->cohort.n; i++)
            if (fc.v[i].split == CBQ_SPLIT_TRAIN && isfinite(d->cons[i * K + k])) {
                s += d->cons[i * K + k];
                n++;
            }
        for (size_t t = 0; t < d->n_test; t++)
            if (d->fold[d->test[t]] == fold)
                d->base[t * K + k] = n ? s / (double)n : NAN;
    }
    cbq_cohort_free(&fc);
    return CBQ_OK;
}

static int predict_fold(study_ctx *ctx, eval_data *d, int fold, cbq_csv_writer *ws,
                        cbq_progress *prog, cbq_error *err)
{
    fold_models m;
    int rc = fold_models_load(ctx, fold, &m, err);
    if (rc == CBQ_OK)
        rc = fold_baseline(ctx, d, fold, err);
    for (size_t t = 0; t < d->n_test && rc == CBQ_OK; t++)
        if (d->fold[d->test[t]] == fold) {
            size_t at = d->next++;
            if (at < d->first || at >= d->end)
                continue;
            rc = predict_volume(ctx, d, t, &m, ws, err);
            cbq_progress_step(prog, 1);
        }
    fold_models_free(&m);
    return rc;
}

/* Under MPI (a collective): rank 0 receives every other rank's volume
 * predictions and slice counts, as (test index, K predictions, slices)
 * records; the bits travel unchanged. */
static int gather_predictions(const study_ctx *ctx, eval_data *d, cbq_error *err)
{
    if (ctx->dist.size == 1)
        return CBQ_OK;
    size_t K = ctx->n_categories, rec = K + 2, n = 0;
    double *mine = malloc((d->n_test * rec + 1) * sizeof *mine);
    if (!mine)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    d->next = 0;
    for (int f = study_first_fold(ctx->cfg); f <= study_last_fold(ctx->cfg); f++)
        for (size_t t = 0; t < d->n_test; t++)
            if (d->fold[d->test[t]] == f) {
                size_t at = d->next++;
                if (at < d->first || at >= d->end)
                    continue;
                double *r = mine + n++ * rec;
                r[0] = (double)t;
                memcpy(r + 1, d->pred + t * K, K * sizeof *r);
                r[K + 1] = (double)d->n_slices[t];
            }
    void *all = NULL;
    size_t all_len = 0;
    int rc = cbq_dist_gather_bytes(&ctx->dist, mine, n * rec * sizeof *mine, &all, &all_len, err);
    free(mine);
    const double *r = all;
    for (size_t i = 0; rc == CBQ_OK && i < all_len / (rec * sizeof *r); i++, r += rec) {
        size_t t = (size_t)r[0];
        memcpy(d->pred + t * K, r + 1, K * sizeof *r);
        d->n_slices[t] = (size_t)r[K + 1];
    }
    free(all);
    return rc;
}

static int predict_test(study_ctx *ctx, eval_data *d, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    char path[CBQ_STUDY_PATH_MAX + 32], part[CBQ_STUDY_PATH_MAX + 64];
    static const char *const hs[] = {"volume_id", "slice", "category", "pred"};
    cbq_csv_writer ws;
    CBQ_TRY(study_output_path(ctx, "pred_slices.csv", path, sizeof path, err));
    /* Under MPI each rank predicts its block into its part of the table,
     * which rank 0 joins (dist_parts.h): one process's bytes. */
    if (!cbq_dist_part_path(&ctx->dist, path, part, sizeof part))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: path too long", path);
    cbq_dist_block(&ctx->dist, d->n_test, &d->first, &d->end);
    CBQ_TRY(cbq_csv_writer_open(&ws, part, hs, 4, err));
    cbq_progress prog;
    cbq_progress_begin(&prog, "evaluate", d->end - d->first, cfg->quiet);
    int rc = CBQ_OK;
    for (int f = study_first_fold(cfg); f <= study_last_fold(cfg) && rc == CBQ_OK; f++)
        rc = predict_fold(ctx, d, f, &ws, &prog, err);
    cbq_progress_end(&prog);
    if (rc != CBQ_OK) {
        cbq_csv_writer_abort(&ws);
        return rc;
    }
    CBQ_TRY(cbq_csv_writer_commit(&ws, err));
    CBQ_TRY(cbq_dist_join_parts(&ctx->dist, path, err));
    return gather_predictions(ctx, d, err);
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

/* The baseline column of metrics.csv: the constant predictor's value, or
 * under folds the mean of the test volumes' fold baselines. */
static double mean_baseline(const eval_data *d, size_t K, size_t k)
{
    double s = 0;
    int same = 1;
    for (size_t t = 0; t < d->n_test; t++) {
        s += d->base[t * K + k];
        same &= d->base[t * K + k] == d->base[k];
    }
    if (!d->n_test)
        return NAN;
    return same ? d->base[k] : s / (double)d->n_test; /* one split: its value, unrounded */
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
        double base = mean_baseline(d, K, k);
        for (size_t t = 0; t < d->n_test; t++) {
            double cv = d->cons[d->test[t] * K + k];
            if (!isfinite(cv))
                continue;
            p[n] = d->pred[t * K + k];
            c[n] = cv;
            b[n] = d->base[t * K + k];
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
    d.base = malloc(d.cohort.n * K * sizeof *d.base);
    d.fold = malloc(d.cohort.n * sizeof *d.fold);
    int rc = CBQ_OK;
    if (!d.cons || !d.test || !d.pred || !d.n_slices || !d.base || !d.fold)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK)
        rc = study_read_consensus(ctx, &d.cohort, d.cons, err);
    if (rc == CBQ_OK)
        rc = study_read_folds(ctx, &d.cohort, d.fold, err);
    for (size_t i = 0; rc == CBQ_OK && i < d.cohort.n; i++)
        if (d.cohort.v[i].split == CBQ_SPLIT_TEST)
            d.test[d.n_test++] = i;
    if (rc == CBQ_OK)
        rc = predict_test(ctx, &d, err);
    /* Under MPI the tables of every volume are rank 0's to write. */
    if (rc == CBQ_OK && ctx->dist.rank == 0)
        rc = write_pred(ctx, &d, err);
    if (rc == CBQ_OK && ctx->dist.rank == 0)
        rc = write_metrics(ctx, &d, err);
    eval_free(&d);
    return rc;
}
