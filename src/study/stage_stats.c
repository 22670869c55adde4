/* stage_stats.c - stage 6: the poster's statistics and the mission's
 * caveat. Per category on the test split: Spearman of AE with consensus,
 * its leave-one-out summary, confidence intervals and adjusted p-values
 * (stats.json, formats.md, with the partial Spearman of AE and consensus
 * given the prediction and the slice count); AE against the prediction
 * (stats_ae_pred.json) and AE per slice against consensus
 * (stats_ae_per_slice.json); the joined data (joined.csv), the poster's
 * table (table.csv) and where the maps point (pointing.csv, stats_pointing.c). */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/json_file.h"
#include "cbctiq/correlate.h"
#include "cbctiq/csv.h"
#include "study/ae_table.h"
#include "study/stats_folds.h"
#include "study/stats_pointing.h"
#include "study/verdict.h"

typedef enum { X_AE, X_AE_PER_SLICE } x_kind;
typedef enum { Y_CONSENSUS, Y_PRED } y_kind;

static int varies(const double *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (v[i] != v[0])
            return 1;
    return 0;
}

/* Builds the joined groups in memory (no file round trip); z: pred and,
 * where it varies, the slice count. Arrays point into the table. */
static int make_joined(const study_ctx *ctx, const ae_table *t, x_kind xk, y_kind yk, int partial,
                       cbq_joined *j, cbq_corr_group *groups, double *(*z)[2])
{
    j->groups = groups;
    j->n_groups = ctx->n_categories;
    for (size_t k = 0; k < ctx->n_categories; k++) {
        const ae_category *ac = &t->cat[k];
        cbq_corr_group *g = &groups[k];
        memset(g, 0, sizeof *g);
        g->category = (char *)ctx->categories[k];
        g->n = ac->n;
        g->volumes = ac->volumes;
        g->x = xk == X_AE ? ac->ae : ac->ae_per_slice;
        g->y = yk == Y_CONSENSUS ? ac->consensus : ac->pred;
        if (partial) {
            z[k][0] = ac->pred;
            z[k][1] = ac->n_slices;
            g->k = varies(ac->n_slices, ac->n) ? 2 : 1;
            g->z = z[k];
        }
    }
    return CBQ_OK;
}

static int write_json(const study_ctx *ctx, const char *name, const cJSON *root, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 64];
    CBQ_TRY(study_output_path(ctx, name, path, sizeof path, err));
    return cbq_json_write(root, path, err);
}

/* Each category's "dropped": the test volumes its statistics do not use,
 * each with the reason (formats.md). */
static int add_left_out(const study_ctx *ctx, const ae_table *t, cJSON *root, cbq_error *err)
{
    cJSON *cats = cJSON_GetObjectItemCaseSensitive(root, "categories");
    for (size_t k = 0; k < ctx->n_categories; k++) {
        cJSON *list = cJSON_CreateArray();
        if (!list || !cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(cats, ctx->categories[k]),
                                            "dropped", list)) {
            cJSON_Delete(list);
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
        }
        for (size_t v = 0; v < t->cohort.n; v++) {
            const char *why = ae_table_left_out_reason(t, v, k);
            cJSON *item = why ? cJSON_CreateObject() : NULL;
            if (!why)
                continue;
            if (!item || !cJSON_AddItemToArray(list, item) ||
                !cJSON_AddStringToObject(item, "volume_id", t->cohort.v[v].id) ||
                !cJSON_AddStringToObject(item, "reason", why))
                return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
        }
    }
    return CBQ_OK;
}

/* Names every test volume left out on stderr, and fails when a category
 * keeps fewer than 3 (a rank correlation of 2 pairs is +-1 whatever the data). */
static int check_left_out(const study_ctx *ctx, const ae_table *t, cbq_error *err)
{
    char text[4096];
    ae_table_left_out_text(t, ctx, text, sizeof text);
    if (t->n_left_out)
        fprintf(stderr, "cbctiq: warning: stats: %zu test volume%s left out of the statistics: "
                "%s\n", t->n_left_out, t->n_left_out == 1 ? "" : "s", text);
    for (size_t k = 0; k < ctx->n_categories; k++)
        if (t->cat[k].n < 3)
            return CBQ_FAIL(err, CBQ_ERR_UNDEFINED, "category '%s': %zu test volume%s with a "
                            "consensus score, at least 3 are needed%s%s", ctx->categories[k],
                            t->cat[k].n, t->cat[k].n == 1 ? "" : "s",
                            t->n_left_out ? "; left out: " : "", text);
    return CBQ_OK;
}

static int correlate_to(const study_ctx *ctx, const ae_table *t, x_kind xk, y_kind yk, int partial,
                        const char *name, cJSON **out, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    cbq_corr_group groups[STUDY_MAX_CATEGORIES];
    double *z[STUDY_MAX_CATEGORIES][2];
    cbq_joined j;
    make_joined(ctx, t, xk, yk, partial, &j, groups, z);
    cbq_correlate_opts o;
    cbq_correlate_opts_default(&o);
    o.n_boot = (size_t)cfg->stats.bootstrap;
    o.n_perm = (size_t)cfg->stats.permutations;
    o.conf = cfg->stats.ci_level;
    o.seed = cfg->seed;
    CBQ_TRY(cbq_correlate(&j, &o, out, err));
    CBQ_TRY(add_left_out(ctx, t, *out, err));
    if (xk == X_AE && yk == Y_CONSENSUS)
        CBQ_TRY(study_verdict_add(ctx, t, *out, err));
    return write_json(ctx, name, *out, err);
}

static double num(const cJSON *obj, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = obj;
    for (char *save = NULL, *key = strtok_r(buf, ".", &save); key && cur;
         key = strtok_r(NULL, ".", &save))
        cur = cJSON_GetObjectItemCaseSensitive(cur, key);
    return cJSON_IsNumber(cur) ? cur->valuedouble : NAN;
}

static double pair_item(const cJSON *obj, const char *key, const char *sub, int i)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (sub)
        a = cJSON_GetObjectItemCaseSensitive(a, sub);
    const cJSON *v = cJSON_GetArrayItem(a, i);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *const TABLE_HEADER[] = {
    "category", "n", "median_loo_rho", "median_loo_p", "rho", "p", "ci_low", "ci_high",
    "ci_method", "p_holm", "p_bh", "rho_ae_pred", "p_ae_pred", "rho_ae_per_slice",
    "partial_rho", "partial_p", "partial_given", "p_perm", "p_perm_exact"};
enum { TABLE_COLS = sizeof TABLE_HEADER / sizeof TABLE_HEADER[0] };

static int write_table(const study_ctx *ctx, const ae_table *t, const cJSON *main_j,
                       const cJSON *pred_j, const cJSON *slice_j, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "table.csv", path, sizeof path, err));
    const char *header[TABLE_COLS + 8];
    size_t n_cols = 0, n_repeat_cols = 0;
    for (; n_cols < TABLE_COLS; n_cols++)
        header[n_cols] = TABLE_HEADER[n_cols];
    while (ctx->cfg->train.repeats > 1 && study_repeat_column(n_repeat_cols))
        header[n_cols++] = study_repeat_column(n_repeat_cols++);
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, header, n_cols, err));
    int boot = strcmp(ctx->cfg->stats.ci, "bootstrap") == 0;
    int rc = CBQ_OK;
    for (size_t k = 0; k < ctx->n_categories && rc == CBQ_OK; k++) {
        const char *cat = ctx->categories[k];
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(main_j, "categories"), cat);
        const cJSON *pj = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(pred_j, "categories"), cat);
        const cJSON *sj = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(slice_j, "categories"), cat);
        cbq_csv_put_str(&w, cat);
        cbq_csv_put_int(&w, (long long)num(m, "n"));
        cbq_csv_put_double(&w, num(m, "loo.median_rho"));
        cbq_csv_put_double(&w, num(m, "loo.median_p"));
        cbq_csv_put_double(&w, num(m, "rho"));
        cbq_csv_put_double(&w, num(m, "p"));
        cbq_csv_put_double(&w, boot ? pair_item(m, "ci95_bootstrap", "bca", 0) : pair_item(m, "ci95", NULL, 0));
        cbq_csv_put_double(&w, boot ? pair_item(m, "ci95_bootstrap", "bca", 1) : pair_item(m, "ci95", NULL, 1));
        cbq_csv_put_str(&w, boot ? "bootstrap_bca" : "fisher_z");
        cbq_csv_put_double(&w, num(m, "p_holm"));
        cbq_csv_put_double(&w, num(m, "p_bh"));
        cbq_csv_put_double(&w, num(pj, "rho"));
        cbq_csv_put_double(&w, num(pj, "p"));
        cbq_csv_put_double(&w, num(sj, "rho"));
        cbq_csv_put_double(&w, num(m, "partial_spearman.rho"));
        cbq_csv_put_double(&w, num(m, "partial_spearman.p"));
        cbq_csv_put_str(&w, varies(t->cat[k].n_slices, t->cat[k].n) ? "pred+n_slices" : "pred");
        cbq_csv_put_double(&w, num(m, "p_perm"));
        cbq_csv_put_int(&w, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "p_perm_exact")));
        for (size_t i = 0; i < n_repeat_cols; i++)
            cbq_csv_put_double(&w, study_repeat_value(main_j, cat, i));
        rc = cbq_csv_end_row(&w, err);
    }
    if (rc != CBQ_OK) {
        cbq_csv_writer_abort(&w);
        return rc;
    }
    return cbq_csv_writer_commit(&w, err);
}

static int write_joined(const study_ctx *ctx, const ae_table *t, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "joined.csv", path, sizeof path, err));
    static const char *const h[] = {"volume_id", "category", "consensus", "ae", "ae_per_slice",
                                    "pred", "n_slices", "ae_clipped"};
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, h, 8, err));
    int rc = CBQ_OK;
    for (size_t k = 0; k < ctx->n_categories && rc == CBQ_OK; k++)
        for (size_t i = 0; i < t->cat[k].n && rc == CBQ_OK; i++) {
            const ae_category *c = &t->cat[k];
            cbq_csv_put_str(&w, c->volumes[i]);
            cbq_csv_put_str(&w, ctx->categories[k]);
            cbq_csv_put_double(&w, c->consensus[i]);
            cbq_csv_put_double(&w, c->ae[i]);
            cbq_csv_put_double(&w, c->ae_per_slice[i]);
            cbq_csv_put_double(&w, c->pred[i]);
            cbq_csv_put_int(&w, (long long)c->n_slices[i]);
            cbq_csv_put_double(&w, c->clipped[i]);
            rc = cbq_csv_end_row(&w, err);
        }
    if (rc != CBQ_OK) {
        cbq_csv_writer_abort(&w);
        return rc;
    }
    return cbq_csv_writer_commit(&w, err);
}

int study_stage_stats(study_ctx *ctx, cbq_error *err)
{
    ae_table t;
    CBQ_TRY(ae_table_read(ctx, &t, err));
    cJSON *main_j = NULL, *pred_j = NULL, *slice_j = NULL;
    int rc = check_left_out(ctx, &t, err);
    if (rc == CBQ_OK)
        rc = write_joined(ctx, &t, err);
    if (rc == CBQ_OK)
        rc = correlate_to(ctx, &t, X_AE, Y_CONSENSUS, 1, "stats.json", &main_j, err);
    if (rc == CBQ_OK && (ctx->cfg->cohort.folds > 0 || ctx->cfg->train.repeats > 1) &&
        (rc = study_stats_folds(ctx, &t, main_j, err)) == CBQ_OK)
        rc = write_json(ctx, "stats.json", main_j, err);
    if (rc == CBQ_OK)
        rc = correlate_to(ctx, &t, X_AE, Y_PRED, 0, "stats_ae_pred.json", &pred_j, err);
    if (rc == CBQ_OK)
        rc = correlate_to(ctx, &t, X_AE_PER_SLICE, Y_CONSENSUS, 0, "stats_ae_per_slice.json",
                          &slice_j, err);
    if (rc == CBQ_OK)
        rc = write_table(ctx, &t, main_j, pred_j, slice_j, err);
    if (rc == CBQ_OK)
        rc = stats_pointing_write(ctx, &t, err);
    if (rc == CBQ_OK) {
        size_t len = 0;
        len += (size_t)snprintf(ctx->summary, sizeof ctx->summary, "rho(AE, consensus):");
        const cJSON *cats = cJSON_GetObjectItemCaseSensitive(main_j, "categories");
        for (size_t k = 0; k < ctx->n_categories && len < sizeof ctx->summary; k++) {
            double rho = num(cJSON_GetObjectItemCaseSensitive(cats, ctx->categories[k]), "rho");
            len += (size_t)(isfinite(rho) ? snprintf(ctx->summary + len, sizeof ctx->summary - len,
                                                     " %s %.2f", ctx->categories[k], rho)
                                          : snprintf(ctx->summary + len, sizeof ctx->summary - len,
                                                     " %s undefined", ctx->categories[k]));
        }
        char verdict[256];
        study_verdict_summary(main_j, verdict, sizeof verdict);
        if (len < sizeof ctx->summary)
            len += (size_t)snprintf(ctx->summary + len, sizeof ctx->summary - len, "; %s", verdict);
        if (t.n_left_out && len < sizeof ctx->summary)
            snprintf(ctx->summary + len, sizeof ctx->summary - len, "; %zu test volume%s left "
                     "out (no consensus; stats.json \"dropped\")", t.n_left_out,
                     t.n_left_out == 1 ? "" : "s");
    }
    cJSON_Delete(main_j);
    cJSON_Delete(pred_j);
    cJSON_Delete(slice_j);
    ae_table_free(&t);
    return rc;
}
