/* report_sanity.c - the report's "Sanity checks" section from the sanity
 * stage's sanity.csv: what the test asks, the cascade's rank correlations
 * per method as a line chart against the threshold, which methods (if any)
 * survive randomisation, the permuted-labels result, and the pooled table
 * (the per-category sanity.csv, a row per category and step, stays a file). */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"
#include "study/report_figures.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cbctiq/csv.h"
#include "cbctiq/plot.h"
#include "cbctiq/text_file.h"

enum { MAX_CURVES = 16, MAX_STEPS = 256 }; /* steps beyond are left off the chart */

static const char WHAT[] =
    "Do the maps explain the model? The cascading randomisation test (Adebayo et al., "
    "NeurIPS 2018) re-initialises the model's parametrised layers from the output down, one "
    "more per step, and compares each method's maps on the test volumes with the trained "
    "model's by Spearman rank correlation. Maps that still correlate once the whole network is "
    "random depend on the image, not on what the model learned. The data-randomisation test "
    "compares them with the maps of a model trained with the same recipe on consensus scores "
    "permuted between volumes.";

/* One method: step 0 (the trained model, rho = 1) to the last step, each
 * the median rho over all categories and test volumes (pooled.csv). */
typedef struct {
    char name[32];
    double x[MAX_STEPS + 1], y[MAX_STEPS + 1];
    size_t n;
    int survives;
    double perm_rho;   /* NaN without a permuted-labels model */
    int perm_survives;
} curve;

static curve *curve_of(curve *c, size_t *n, const char *method)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(c[i].name, method) == 0)
            return &c[i];
    if (*n == MAX_CURVES)
        return NULL;
    curve *k = &c[(*n)++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", method);
    k->y[0] = 1;
    k->n = 1;
    k->perm_rho = NAN;
    return k;
}

/* Curves from pooled.csv (rows by method, the permuted row before the
 * cascade's steps in order). */
static int read_curves(const study_ctx *ctx, curve *c, size_t *n, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_SANITY, "pooled.csv", path, sizeof path, err));
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, path, err));
    size_t cm, ct, cs, cr, cv;
    int rc = cbq_csv_require_col(&t, "method", &cm, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "test", &ct, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "step", &cs, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "median_spearman", &cr, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "survives", &cv, err);
    *n = 0;
    for (size_t r = 0; r < t.n_rows && rc == CBQ_OK; r++) {
        curve *k = curve_of(c, n, cbq_csv_cell(&t, r, cm));
        const char *cell = cbq_csv_cell(&t, r, cr);
        double rho = cell[0] ? strtod(cell, NULL) : NAN;
        int survives = atoi(cbq_csv_cell(&t, r, cv));
        if (k && strcmp(cbq_csv_cell(&t, r, ct), "permuted_labels") == 0) {
            k->perm_rho = rho;
            k->perm_survives = survives;
        } else if (k && k->n <= MAX_STEPS) {
            k->x[k->n] = strtod(cbq_csv_cell(&t, r, cs), NULL);
            k->y[k->n++] = rho;
            k->survives = survives;
        }
    }
    cbq_csv_free(&t);
    return rc;
}

static int chart(cbq_report *r, const study_ctx *ctx, const curve *c, size_t n, cbq_error *err)
{
    cbq_series s[MAX_CURVES + 1];
    for (size_t i = 0; i < n; i++)
        s[i] = (cbq_series){.kind = CBQ_SERIES_LINE, .label = c[i].name, .x = c[i].x,
                            .y = c[i].y, .n = c[i].n, .color = -1};
    double th = ctx->cfg->sanity.threshold;
    s[n] = (cbq_series){.kind = CBQ_SERIES_HLINE, .label = "threshold", .y = &th, .n = 1,
                        .color = 6, .dashed = 1};
    cbq_chart ch = {.title = "Cascading model randomisation", .x_label = "layers re-initialised "
                    "(from the output down)", .y_label = "median Spearman rho", .series = s,
                    .n_series = n + 1, .y_fixed = 1, .y_min = -1, .y_max = 1};
    return report_add_chart(r, &ch, "sanity_cascade", "Rank correlation of each method's maps "
                            "with the trained model's (median over categories and test "
                            "volumes); step 0 is the trained model itself.", err);
}

/* Which methods survive, and the permuted-labels result, in words. */
static int verdict(cbq_report *r, const study_ctx *ctx, const curve *c, size_t n, cbq_error *err)
{
    char text[2048];
    size_t len = (size_t)snprintf(text, sizeof text, "Surviving full randomisation "
                                  "(median rho above %.2f):", ctx->cfg->sanity.threshold);
    int any = 0;
    for (size_t i = 0; i < n && len < sizeof text; i++)
        if (c[i].survives) {
            len += (size_t)snprintf(text + len, sizeof text - len, "%s %s", any ? "," : "", c[i].name);
            any = 1;
        }
    if (len < sizeof text)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s", any ? "." :
                                " none; every method's maps change with the model.");
    for (size_t i = 0; i < n && len < sizeof text; i++) {
        if (isnan(c[i].perm_rho))
            len += (size_t)snprintf(text + len, sizeof text - len, " %s: no permuted-labels "
                                    "model.", c[i].name);
        else
            len += (size_t)snprintf(text + len, sizeof text - len, " %s: the permuted-labels "
                                    "model's maps correlate at rho %.2f%s.", c[i].name,
                                    c[i].perm_rho, c[i].perm_survives ? " (survives)" : "");
    }
    return cbq_report_note(r, text, err);
}

/* The sanity stage's notes.txt (why a part did not run), each line a note;
 * a folder from before notes.txt existed has none. */
static int stage_notes(cbq_report *r, const study_ctx *ctx, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_SANITY, "notes.txt", path, sizeof path, err));
    if (access(path, F_OK) != 0)
        return CBQ_OK;
    char *text;
    CBQ_TRY(cbq_read_text_file(path, 1u << 20, &text, NULL, err));
    int rc = CBQ_OK;
    for (char *line = text, *next; line && *line && rc == CBQ_OK; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (*line)
            rc = cbq_report_note(r, line, err);
    }
    free(text);
    return rc;
}

int report_sanity_section(cbq_report *r, const study_ctx *ctx, cbq_error *err)
{
    CBQ_TRY(cbq_report_section(r, "Sanity checks", err));
    CBQ_TRY(cbq_report_paragraph(r, WHAT, err));
    if (!ctx->cfg->sanity.enabled)
        return cbq_report_note(r, "The sanity checks were off (sanity.enabled = false).", err);
    curve *c = malloc(MAX_CURVES * sizeof *c);
    size_t n = 0;
    int rc = c ? read_curves(ctx, c, &n, err) : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK && n)
        rc = chart(r, ctx, c, n, err);
    if (rc == CBQ_OK)
        rc = verdict(r, ctx, c, n, err);
    if (rc == CBQ_OK)
        rc = stage_notes(r, ctx, err);
    if (rc == CBQ_OK)
        rc = report_csv_table(r, ctx, CBQ_STAGE_SANITY, "pooled.csv", "sanity_pooled",
                              "Per method and comparison: the median rank correlation over all "
                              "categories and test volumes, which decides whether the method "
                              "survives; empty where every map was constant (the correlation is "
                              "undefined). Per category, with minimum, maximum and the AE ratio "
                              "random/trained: sanity/sanity.csv in the study folder.", err);
    free(c);
    return rc;
}
