/* report_loo.c - the report's leave-one-out figure: how far rho(AE,
 * consensus) moves when each test volume is left out, per category, read
 * from the stats stage's stats.json (formats.md). It recomputes nothing, so
 * the figure shows exactly the numbers behind the poster's LOO medians. */
#define _POSIX_C_SOURCE 200809L
#include "study/report_figures.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/text_file.h"

static const cJSON *category_obj(const cJSON *root, const char *cat)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "categories"),
                                            cat);
}

static const cJSON *loo_rho_array(const cJSON *root, const char *cat)
{
    const cJSON *loo = cJSON_GetObjectItemCaseSensitive(category_obj(root, cat), "loo");
    return cJSON_GetObjectItemCaseSensitive(loo, "rho");
}

/* loo.rho of one category into y (cap values; JSON null = undefined rho is
 * skipped); *n receives how many, *rho the full-sample rho (NaN if null). */
static int category_loo(const cJSON *root, const char *path, const char *cat, double *y,
                        size_t cap, size_t *n, double *rho, cbq_error *err)
{
    const cJSON *loo = loo_rho_array(root, cat);
    if (!cJSON_IsObject(category_obj(root, cat)) || (loo && !cJSON_IsArray(loo)))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: categories.%s.loo.rho: expected an array",
                        path, cat);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(category_obj(root, cat), "rho");
    *rho = cJSON_IsNumber(r) ? r->valuedouble : NAN;
    *n = 0; /* no loo.rho: too few volumes, loo.reason says why */
    const cJSON *v;
    cJSON_ArrayForEach(v, loo) {
        if (cJSON_IsNumber(v) && *n < cap)
            y[(*n)++] = v->valuedouble;
    }
    return CBQ_OK;
}

/* y holds category k's n[k] values from y + k * stride; full[k] is drawn as
 * a short bar across category k's strip (seg: 6 K doubles of scratch). */
static int loo_chart(cbq_report *r, const study_ctx *ctx, const double *y, size_t stride,
                     const size_t *n, const double *full, double *seg, cbq_error *err)
{
    size_t K = ctx->n_categories;
    cbq_series s[STUDY_MAX_CATEGORIES + 1];
    const char *names[STUDY_MAX_CATEGORIES];
    size_t n_series = 0;
    double *sx = seg, *sy = seg + 3 * K;
    for (size_t k = 0; k < K; k++) {
        names[k] = ctx->categories[k];
        /* NaN between categories breaks the line into one bar each. */
        sx[3 * k] = (double)k - 0.38, sx[3 * k + 1] = (double)k + 0.38, sx[3 * k + 2] = NAN;
        sy[3 * k] = sy[3 * k + 1] = full[k], sy[3 * k + 2] = NAN;
        if (n[k] == 0)
            continue; /* a category without LOO rho stays empty */
        const char *label = n_series == 0 ? "rho with one test volume left out" : NULL;
        s[n_series++] = (cbq_series){.kind = CBQ_SERIES_STRIP, .label = label,
                                     .y = y + k * stride, .n = n[k], .color = 0,
                                     .strip_x = (double)k};
    }
    s[n_series++] = (cbq_series){.kind = CBQ_SERIES_LINE, .label = "rho of all test volumes",
                                 .x = sx, .y = sy, .n = 3 * K, .color = 1};
    cbq_chart c = {.title = "Leave-one-out rho(AE, consensus)", .y_label = "Spearman rho",
                   .series = s, .n_series = n_series, .x_categories = names, .n_categories = K};
    return report_add_chart(r, &c, "loo_rho",
                            "Spearman rho of AE with consensus recomputed with each test volume "
                            "left out in turn (one point per left-out volume; stats/stats.json "
                            "loo.rho), and the rho of all test volumes (bar). A tight strip means "
                            "no single volume carries the correlation.", err);
}

/* Says why there is no figure (stats.json's loo.reason of the first
 * category, e.g. too few test volumes). */
static int no_loo_note(cbq_report *r, const cJSON *root, const study_ctx *ctx, cbq_error *err)
{
    const cJSON *loo = cJSON_GetObjectItemCaseSensitive(category_obj(root, ctx->categories[0]), "loo");
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(loo, "reason");
    char text[600];
    snprintf(text, sizeof text, "No leave-one-out rho to show: %.500s.",
             cJSON_IsString(why) ? why->valuestring : "stats.json has none");
    return cbq_report_paragraph(r, text, err);
}

int report_loo_figure(cbq_report *r, const study_ctx *ctx, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_STATS, "stats.json", path, sizeof path, err));
    char *text = NULL;
    CBQ_TRY(cbq_read_text_file(path, 0, &text, NULL, err));
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: not valid JSON", path);
    size_t K = ctx->n_categories, cap = 0;
    for (size_t k = 0; k < K; k++) {
        int m = cJSON_GetArraySize(loo_rho_array(root, ctx->categories[k]));
        cap = (size_t)m > cap ? (size_t)m : cap;
    }
    double full[STUDY_MAX_CATEGORIES], seg[6 * STUDY_MAX_CATEGORIES];
    size_t n[STUDY_MAX_CATEGORIES] = {0};
    double *y = malloc((K * cap + 1) * sizeof *y);
    int rc = y ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < K && rc == CBQ_OK; k++) {
        rc = category_loo(root, path, ctx->categories[k], y + k * cap, cap, &n[k], &full[k], err);
    }
    size_t total = 0;
    for (size_t k = 0; k < K; k++)
        total += n[k];
    if (rc == CBQ_OK && total > 0)
        rc = loo_chart(r, ctx, y, cap, n, full, seg, err);
    else if (rc == CBQ_OK)
        rc = no_loo_note(r, root, ctx, err);
    free(y);
    cJSON_Delete(root);
    return rc;
}
