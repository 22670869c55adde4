/* stage_report.c - stage 8: report.html (the report builder of report.h)
 * with every figure beside it as PNG and SVG and every table as CSV. It
 * only reads the other stages' outputs, so it can be rebuilt alone. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/csv.h"
#include "cbctiq/plot.h"
#include "cbctiq/report.h"
#include "cbctiq/robust_fit.h"
#include "cbctiq/stats.h"
#include "cbctiq/versions.h"
#include "study/ae_table.h"
#include "study/report_figures.h"
#include "study/report_viewer.h"
#include "study/verdict.h"

/* Column order for display: the columns named in `lead` (those present)
 * first, in that order, then the others in file order. */
static void lead_order(const cbq_csv *t, const char *const *lead, size_t n_lead, size_t *perm)
{
    size_t n = 0;
    for (size_t l = 0; l < n_lead; l++)
        for (size_t c = 0; c < t->n_cols; c++)
            if (strcmp(t->header[c], lead[l]) == 0)
                perm[n++] = c;
    for (size_t c = 0; c < t->n_cols; c++) {
        int led = 0;
        for (size_t l = 0; l < n_lead; l++)
            led |= strcmp(t->header[c], lead[l]) == 0;
        if (!led)
            perm[n++] = c;
    }
}

/* One cell for display: numbers with a decimal point rounded to 4
 * significant digits, anything else as it is. */
static char *display_cell(const char *s)
{
    char *end = NULL;
    double v = s[0] ? strtod(s, &end) : NAN;
    char buf[64];
    if (s[0] && end && !*end && strchr(s, '.')) {
        snprintf(buf, sizeof buf, "%.4g", v);
        return strdup(buf);
    }
    return strdup(s);
}

/* A CSV shown as a table (columns in `lead` first, see lead_order). */
static int csv_table_lead(cbq_report *r, const study_ctx *ctx, cbq_study_stage from,
                          const char *name, const char *stem, const char *caption,
                          const char *const *lead, size_t n_lead, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 64];
    CBQ_TRY(study_input_path(ctx, from, name, path, sizeof path, err));
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, path, err));
    size_t n = t.n_rows * t.n_cols, *perm = malloc((t.n_cols + 1) * sizeof *perm);
    char **cells = calloc(n + 1, sizeof *cells);
    const char **header = malloc((t.n_cols + 1) * sizeof *header);
    int rc = cells && perm && header ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK)
        lead_order(&t, lead, n_lead, perm);
    for (size_t c = 0; c < t.n_cols && rc == CBQ_OK; c++)
        header[c] = t.header[perm[c]];
    for (size_t i = 0; i < n && rc == CBQ_OK; i++)
        if (!(cells[i] = display_cell(cbq_csv_cell(&t, i / t.n_cols, perm[i % t.n_cols]))))
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK)
        rc = cbq_report_table(r, stem, caption, t.n_cols, header, t.n_rows,
                              (const char *const *)cells, err);
    for (size_t i = 0; cells && i < n; i++)
        free(cells[i]);
    free(cells);
    free(header);
    free(perm);
    cbq_csv_free(&t);
    return rc;
}

int report_csv_table(cbq_report *r, const study_ctx *ctx, cbq_study_stage from, const char *name,
                     const char *stem, const char *caption, cbq_error *err)
{
    return csv_table_lead(r, ctx, from, name, stem, caption, NULL, 0, err);
}

int report_add_chart(cbq_report *r, const cbq_chart *c, const char *stem, const char *caption,
                     cbq_error *err)
{
    cbq_figure *fig = NULL;
    CBQ_TRY(cbq_chart_draw(&fig, c, err));
    int rc = cbq_report_figure(r, fig, stem, caption, err);
    cbq_figure_free(fig);
    return rc;
}

/* AE against consensus with the monotone fit (sorted by consensus). */
static int ae_scatter(cbq_report *r, const study_ctx *ctx, const ae_category *ac, size_t k,
                      cbq_error *err)
{
    size_t n = ac->n;
    if (n == 0)
        return CBQ_OK;
    double *fit = malloc(3 * n * sizeof *fit), *fx = fit + n, *fy = fx + n;
    if (!fit)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    cbq_corr c;
    int rc = cbq_spearman(ac->ae, ac->consensus, n, &c, err);
    if (rc == CBQ_OK)
        rc = cbq_isotonic_fit(ac->consensus, ac->ae, n, !(c.r < 0), fit, err);
    size_t *order = malloc(n * sizeof *order);
    if (rc == CBQ_OK && !order)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == CBQ_OK && i < n; i++) {
        size_t j = i;
        order[i] = i;
        while (j > 0 && ac->consensus[order[j - 1]] > ac->consensus[order[j]]) {
            size_t tmp = order[j];
            order[j] = order[j - 1];
            order[j - 1] = tmp;
            j--;
        }
    }
    for (size_t i = 0; rc == CBQ_OK && i < n; i++) {
        fx[i] = ac->consensus[order[i]];
        fy[i] = fit[order[i]];
    }
    char title[160], note[160], stem[96], caption[256];
    snprintf(title, sizeof title, "%s: AE vs consensus (test split)", ctx->categories[k]);
    snprintf(note, sizeof note, "rho = %.3f, p = %.3g, n = %zu", c.r, c.p, n);
    snprintf(stem, sizeof stem, "ae_vs_consensus_%s", ctx->categories[k]);
    snprintf(caption, sizeof caption,
             "%s: Attribution Energy of each test volume against its consensus score, with the "
             "monotone (isotonic) fit used to flag atypical volumes.", ctx->categories[k]);
    cbq_series s[2] = {
        {.kind = CBQ_SERIES_SCATTER, .label = "volumes", .x = ac->consensus, .y = ac->ae, .n = n,
         .point_labels = (const char *const *)ac->volumes, .color = -1},
        {.kind = CBQ_SERIES_LINE, .label = "isotonic fit", .x = fx, .y = fy, .n = n, .color = -1}};
    cbq_chart chart = {.title = title, .x_label = "consensus score", .y_label = "AE",
                       .series = s, .n_series = 2, .annotation = note};
    if (rc == CBQ_OK)
        rc = report_add_chart(r, &chart, stem, caption, err);
    free(order);
    free(fit);
    return rc;
}

static int pred_scatter(cbq_report *r, const study_ctx *ctx, const ae_table *t, cbq_error *err)
{
    cbq_series s[STUDY_MAX_CATEGORIES];
    for (size_t k = 0; k < ctx->n_categories; k++)
        s[k] = (cbq_series){.kind = CBQ_SERIES_SCATTER, .label = ctx->categories[k],
                            .x = t->cat[k].pred, .y = t->cat[k].ae, .n = t->cat[k].n, .color = -1};
    cbq_chart c = {.title = "AE vs the model's own prediction", .x_label = "prediction (mean over slices)",
                   .y_label = "AE", .series = s, .n_series = ctx->n_categories};
    CBQ_TRY(report_add_chart(r, &c, "ae_vs_prediction", "AE of each test volume and category against "
                      "the model's volume-level prediction: with a GAP + linear head AE is close "
                      "to n_slices x (prediction - bias).", err));
    for (size_t k = 0; k < ctx->n_categories; k++)
        s[k].x = t->cat[k].consensus, s[k].y = t->cat[k].pred;
    cbq_chart c2 = {.title = "Prediction vs consensus (test split)", .x_label = "consensus score",
                    .y_label = "prediction", .series = s, .n_series = ctx->n_categories};
    return report_add_chart(r, &c2, "prediction_vs_consensus",
                     "Model performance: volume-level prediction against consensus, per category.",
                     err);
}

static int training_chart(cbq_report *r, const study_ctx *ctx, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_TRAIN, "train_log.csv", path, sizeof path, err));
    FILE *probe = fopen(path, "r");
    if (!probe)
        return CBQ_OK; /* a given model has no log */
    fclose(probe);
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, path, err));
    size_t ce, ct, cv;
    int rc = cbq_csv_require_col(&t, "epoch", &ce, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "train_loss", &ct, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "val_loss", &cv, err);
    double *v = malloc((3 * t.n_rows + 1) * sizeof *v);
    if (rc == CBQ_OK && !v)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == CBQ_OK && i < t.n_rows; i++) {
        rc = cbq_csv_get_double(&t, i, ce, &v[i], err);
        if (rc == CBQ_OK)
            rc = cbq_csv_get_double(&t, i, ct, &v[t.n_rows + i], err);
        const char *cell = cbq_csv_cell(&t, i, cv);
        v[2 * t.n_rows + i] = cell[0] ? strtod(cell, NULL) : NAN;
    }
    cbq_series s[2] = {
        {.kind = CBQ_SERIES_LINE, .label = "training loss", .x = v, .y = v + t.n_rows, .n = t.n_rows, .color = -1},
        {.kind = CBQ_SERIES_LINE, .label = "validation loss", .x = v, .y = v + 2 * t.n_rows, .n = t.n_rows, .color = -1}};
    cbq_chart c = {.title = "Training", .x_label = "epoch", .y_label = "MSE loss", .series = s,
                   .n_series = 2};
    if (rc == CBQ_OK && t.n_rows > 0)
        rc = report_add_chart(r, &c, "training_loss", "Training and validation loss per epoch; the "
                       "best validation epoch's weights are kept.", err);
    free(v);
    cbq_csv_free(&t);
    return rc;
}

/* atypical.csv with the words (flag and reason) before the numbers, so the
 * reason is read without scrolling a wide table sideways. */
static int atypical_table(cbq_report *r, const study_ctx *ctx, cbq_error *err)
{
    static const char *const lead[] = {"category", "volume_id", "flag", "reason"};
    return csv_table_lead(r, ctx, CBQ_STAGE_ATYPICAL, "atypical.csv", "atypical",
                          "Flagged and influential volumes (columns as in atypical/atypical.csv, "
                          "flag and reason first).", lead, sizeof lead / sizeof lead[0], err);
}

static const char CAVEAT[] =
    "With a global-average-pool + linear head (as in iqnet-s) the pre-ReLU Grad-CAM map of a "
    "slice sums exactly to that slice's prediction minus the output bias. AE is then close to "
    "n_slices x (mean prediction - bias) plus what the ReLU clipped, so AE correlates with the "
    "consensus largely because the prediction does. The table below puts next to rho(AE, "
    "consensus): rho(AE, prediction), rho(AE per slice, consensus) and the partial Spearman "
    "rho of AE and consensus given the prediction (and the slice count where it varies); "
    "attrib/ae.csv holds the clipped remainder per volume (ae_clipped).";

/* What a reader needs to rerun the study and get the same numbers: the
 * command, the seed and the versions of everything that computed them. */
static int reproduce_section(cbq_report *r, const study_ctx *ctx, cbq_error *err)
{
    char text[512];
    snprintf(text, sizeof text,
             "Save the configuration below as study.json in the folder the study was run from "
             "and run `cbctiq study --config study.json --out NEW_FOLDER`. With the same seed "
             "(%llu), cohort, versions and thread count every output is the same to the bit; "
             "another thread count moves only the last bits of float32 sums.", (unsigned long long)ctx->cfg->seed);
    cbq_component_version v[CBQ_MAX_COMPONENTS];
    size_t n = cbq_component_versions(v, CBQ_MAX_COMPONENTS);
    const char *keys[CBQ_MAX_COMPONENTS], *values[CBQ_MAX_COMPONENTS];
    for (size_t i = 0; i < n; i++) {
        keys[i] = v[i].component;
        values[i] = v[i].version;
    }
    CBQ_TRY(cbq_report_section(r, "Reproducing these results", err));
    CBQ_TRY(cbq_report_paragraph(r, text, err));
    return cbq_report_keyvalues(r, n, keys, values, err);
}

/* Names the test volumes the statistics leave out, and why. */
static int left_out_note(cbq_report *r, const study_ctx *ctx, const ae_table *t, cbq_error *err)
{
    if (!t->n_left_out)
        return CBQ_OK;
    char text[4096], note[4200];
    ae_table_left_out_text(t, ctx, text, sizeof text);
    snprintf(note, sizeof note, "%zu test volume%s left out of the statistics (n above counts "
             "only those kept): %s.", t->n_left_out, t->n_left_out == 1 ? " is" : "s are", text);
    return cbq_report_note(r, note, err);
}

/* The sections drawn from attrib/ae.csv: AE against consensus, the caveat,
 * the maps. */
static int ae_sections(cbq_report *r, const study_ctx *ctx, const ae_table *t, cbq_error *err)
{
    CBQ_TRY(left_out_note(r, ctx, t, err));
    CBQ_TRY(cbq_report_section(r, "AE against consensus", err));
    for (size_t k = 0; k < ctx->n_categories; k++)
        CBQ_TRY(ae_scatter(r, ctx, &t->cat[k], k, err));
    CBQ_TRY(report_loo_figure(r, ctx, err));
    CBQ_TRY(cbq_report_section(r, "What AE measures here (the GAP caveat)", err));
    CBQ_TRY(cbq_report_note(r, CAVEAT, err));
    CBQ_TRY(pred_scatter(r, ctx, t, err));
    CBQ_TRY(cbq_report_section(r, "Attribution maps", err));
    CBQ_TRY(report_map_figures(r, ctx, t, err));
    CBQ_TRY(report_viewer_section(r, ctx, t, err));
    return report_pointing_section(r, ctx, t, err);
}

/* The study's configuration as JSON. Run options (folder, threads, quiet) do
 * not change any result: they are shown at their defaults so that the report
 * depends on the results only. */
static int configuration_section(cbq_report *r, const study_ctx *ctx, cbq_error *err)
{
    cbq_study_config shown = *ctx->cfg;
    cbq_study_config defaults;
    cbq_study_config_defaults(&defaults);
    memcpy(shown.out, defaults.out, sizeof shown.out);
    shown.threads = defaults.threads;
    shown.quiet = defaults.quiet;
    CBQ_TRY(cbq_report_section(r, "Configuration", err));
    char *json = cbq_study_config_json(&shown);
    if (!json)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    int rc = cbq_report_preformatted(
        r, "study configuration (run options out, threads, quiet shown at their defaults)", json,
        err);
    free(json);
    return rc;
}

static int build(cbq_report *r, const study_ctx *ctx, cbq_error *err)
{
    char intro[1024];
    snprintf(intro, sizeof intro,
             "Attribution Energy (AE: the volumetric sum of raw %s maps over all axial slices) "
             "against the experts' consensus image-quality score, per category, on the test "
             "split. Every number below is in the CSV/JSON files of the study folder; the "
             "configuration that produced them is at the end.",
             ctx->cfg->attrib.method);
    CBQ_TRY(cbq_report_paragraph(r, intro, err));
    size_t n_warnings = 0;
    CBQ_TRY(report_verdict_section(r, ctx, &n_warnings, err));
    CBQ_TRY(cbq_report_section(r, n_warnings ? "The poster's table, to be read with the verdict's "
                                               "warnings (section 1)" : "The poster's table", err));
    CBQ_TRY(report_csv_table(r, ctx, CBQ_STAGE_STATS, "table.csv", "poster_table",
                             "Spearman rho of AE with consensus: leave-one-out medians, full "
                             "sample, confidence interval, Holm and BH adjusted p; then the "
                             "caveat's columns.", err));
    ae_table t;
    CBQ_TRY(ae_table_read(ctx, &t, err));
    int rc = ae_sections(r, ctx, &t, err);
    ae_table_free(&t);
    CBQ_TRY(rc);
    CBQ_TRY(cbq_report_section(r, "Atypical cases", err));
    CBQ_TRY(cbq_report_paragraph(r, "Volumes whose AE lies beyond the robust residual threshold "
                                    "of the monotone fit, and the volumes whose removal moves the "
                                    "leave-one-out rho most; each row says why.", err));
    CBQ_TRY(atypical_table(r, ctx, err));
    CBQ_TRY(report_sanity_section(r, ctx, err));
    CBQ_TRY(cbq_report_section(r, "Model performance", err));
    CBQ_TRY(report_csv_table(r, ctx, CBQ_STAGE_EVALUATE, "metrics.csv", "metrics",
                             "Test split, volume level: MAE, RMSE, Spearman, quadratic-weighted "
                             "kappa on rounded scores; baseline = the training split's mean "
                             "consensus.", err));
    CBQ_TRY(training_chart(r, ctx, err));
    CBQ_TRY(cbq_report_section(r, "Raters", err));
    CBQ_TRY(report_csv_table(r, ctx, CBQ_STAGE_CONSENSUS, "agreement.csv", "agreement",
                             "Inter-rater agreement per category.", err));
    CBQ_TRY(reproduce_section(r, ctx, err));
    return configuration_section(r, ctx, err);
}

int study_stage_report(study_ctx *ctx, cbq_error *err)
{
    cbq_report *r = NULL;
    char dir[CBQ_STUDY_PATH_MAX];
    CBQ_TRY(study_output_path(ctx, NULL, dir, sizeof dir, err));
    CBQ_TRY(cbq_report_begin(&r, ctx->cfg->report.title, dir, err));
    int rc = cbq_report_set_dpi(r, ctx->cfg->report.dpi, err);
    if (rc == CBQ_OK)
        rc = build(r, ctx, err);
    if (rc == CBQ_OK)
        rc = cbq_report_finish(r, err);
    cbq_report_free(r);
    if (rc == CBQ_OK)
        snprintf(ctx->summary, sizeof ctx->summary, "%.900s/report.html", dir);
    return rc;
}
