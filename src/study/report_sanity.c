/* report_sanity.c - the report's "Sanity checks" section from the sanity
 * stage's sanity.csv: what the test asks, the cascade's rank correlations
 * per method as a line chart against the threshold, which methods (if any)
 * survive randomisation, the permuted-labels result, the pooled table
 * (the per-category sanity.csv, a row per category and step, stays a file),
 * and how the share of each category's maps on its structure
 * (energy_in_structure) moves from the trained to the fully randomised
 * model.
 * The summary and the table judge every comparison by one rule (judge()),
 * so the words never contradict the numbers below them. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"
#include "study/report_figures.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
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
    double perm_rho;   /* NaN without a permuted-labels model */
} curve;

/* The one judgement the summary and the table both show, so that they
 * cannot disagree: a comparison's median rho is above the threshold, not,
 * or undefined (every map constant). A method survives randomisation when
 * its last cascade step is above (as the sanity stage decides). */
typedef enum { JUDGED_BELOW, JUDGED_ABOVE, JUDGED_UNDEFINED } judgement;

static judgement judge(double rho, double threshold)
{
    return isnan(rho) ? JUDGED_UNDEFINED : rho > threshold ? JUDGED_ABOVE : JUDGED_BELOW;
}

static const char *judgement_name(judgement j)
{
    return j == JUDGED_ABOVE ? "yes" : j == JUDGED_BELOW ? "no" : "undefined";
}

static judgement last_step(const curve *c, double threshold)
{
    return c->n > 1 ? judge(c->y[c->n - 1], threshold) : JUDGED_UNDEFINED;
}

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
    size_t cm, ct, cs, cr;
    int rc = cbq_csv_require_col(&t, "method", &cm, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "test", &ct, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "step", &cs, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "median_spearman", &cr, err);
    *n = 0;
    for (size_t r = 0; r < t.n_rows && rc == CBQ_OK; r++) {
        curve *k = curve_of(c, n, cbq_csv_cell(&t, r, cm));
        const char *cell = cbq_csv_cell(&t, r, cr);
        double rho = cell[0] ? strtod(cell, NULL) : NAN;
        if (k && strcmp(cbq_csv_cell(&t, r, ct), "permuted_labels") == 0) {
            k->perm_rho = rho;
        } else if (k && k->n <= MAX_STEPS) {
            k->x[k->n] = strtod(cbq_csv_cell(&t, r, cs), NULL);
            k->y[k->n++] = rho;
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

/* Appends printf-style text to text[*len..cap), never past its end. */
static void append(char *text, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *text, size_t cap, size_t *len, const char *fmt, ...)
{
    if (*len >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text + *len, cap - *len, fmt, ap);
    va_end(ap);
    *len += n > 0 ? (size_t)n : 0;
}

/* Which methods survive, and the permuted-labels result, in words: each
 * sentence reads off the rows of the table below (judge()). */
static int verdict(cbq_report *r, const study_ctx *ctx, const curve *c, size_t n, cbq_error *err)
{
    double th = ctx->cfg->sanity.threshold;
    char text[4096];
    size_t len = 0, n_above = 0, n_undefined = 0;
    append(text, sizeof text, &len, "Surviving full randomisation (median rho at the last step "
           "above %.2f):", th);
    for (size_t i = 0; i < n; i++)
        if (last_step(&c[i], th) == JUDGED_ABOVE)
            append(text, sizeof text, &len, "%s %s", n_above++ ? "," : "", c[i].name);
        else
            n_undefined += last_step(&c[i], th) == JUDGED_UNDEFINED;
    if (n_above)
        append(text, sizeof text, &len, ".");
    else if (n_undefined)
        append(text, sizeof text, &len, " none.");
    else
        append(text, sizeof text, &len, " none; every method's maps change with the model.");
    for (size_t i = 0; i < n; i++) {
        size_t steps_above = 0;
        for (size_t s = 1; s < c[i].n; s++)
            steps_above += judge(c[i].y[s], th) == JUDGED_ABOVE;
        if (last_step(&c[i], th) == JUDGED_UNDEFINED)
            append(text, sizeof text, &len, " %s: undefined at the last step (every map "
                   "constant), so it neither survives nor is shown to change.", c[i].name);
        else if (last_step(&c[i], th) == JUDGED_BELOW && steps_above)
            append(text, sizeof text, &len, " %s: above %.2f at %zu of %zu steps before the "
                   "last, below it at the last.", c[i].name, th, steps_above, c[i].n - 1);
        if (isnan(c[i].perm_rho))
            append(text, sizeof text, &len, " %s: no permuted-labels comparison.", c[i].name);
        else
            append(text, sizeof text, &len, " %s: the permuted-labels model's maps correlate "
                   "at rho %.2f (%s %.2f).", c[i].name, c[i].perm_rho,
                   judge(c[i].perm_rho, th) == JUDGED_ABOVE ? "above" : "not above", th);
    }
    return cbq_report_note(r, text, err);
}

/* pooled.csv as the report shows it: each comparison with its median rho
 * and whether it is above the threshold (judge(), the summary's rule). */
static int pooled_table(cbq_report *r, const study_ctx *ctx, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_SANITY, "pooled.csv", path, sizeof path, err));
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, path, err));
    enum { COLS = 6, CELL = 96 };
    static const char *const header[COLS] = {"method", "test", "step", "layer",
                                             "median rho", "above threshold"};
    static const char *const from[4] = {"method", "test", "step", "layer"};
    size_t col[5];
    int rc = CBQ_OK;
    for (int k = 0; k < 4 && rc == CBQ_OK; k++)
        rc = cbq_csv_require_col(&t, from[k], &col[k], err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "median_spearman", &col[4], err);
    char (*text)[CELL] = calloc(t.n_rows * COLS + 1, CELL);
    const char **cells = calloc(t.n_rows * COLS + 1, sizeof *cells);
    if (rc == CBQ_OK && (!text || !cells))
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < t.n_rows && rc == CBQ_OK; i++) {
        char (*row)[CELL] = text + i * COLS;
        for (int k = 0; k < 4; k++)
            snprintf(row[k], CELL, "%s", cbq_csv_cell(&t, i, col[k]));
        const char *cell = cbq_csv_cell(&t, i, col[4]);
        double rho = cell[0] ? strtod(cell, NULL) : NAN;
        cbq_format_rho(row[4], CELL, rho);
        snprintf(row[5], CELL, "%s", judgement_name(judge(rho, ctx->cfg->sanity.threshold)));
        for (int k = 0; k < COLS; k++)
            cells[i * COLS + k] = row[k];
    }
    if (rc == CBQ_OK) {
        char caption[512];
        snprintf(caption, sizeof caption,
                 "Per method and comparison: the median rank correlation over all categories "
                 "and test volumes, and whether it is above the threshold %.2f (n/a where "
                 "every map was constant: undefined); a method survives when its last step "
                 "is above. Per category, with minimum, maximum and the AE ratio "
                 "random/trained: sanity/sanity.csv in the study folder.",
                 ctx->cfg->sanity.threshold);
        rc = cbq_report_table(r, "sanity_pooled", caption, COLS, header, t.n_rows, cells, err);
    }
    free(text);
    free(cells);
    cbq_csv_free(&t);
    return rc;
}

static const char ENERGY_WHAT[] =
    "Energy on the structure under randomisation: the median over test volumes of the share of "
    "each map's sum that lies inside the category's structure (ae.csv's energy_in_structure, "
    "on the sanity check's slices), for the trained model and for the fully randomised one "
    "(every parametrised layer re-initialised). If the share stays where it was, the map's "
    "place on the anatomy comes from the image (bright or large structures), not from what the "
    "model learned, and energy_in_structure says little about the model; a share that falls "
    "once the model is random is what the trained model put on the structure. A reading of "
    "'about the same' is a change within 0.05.";

enum { ENERGY_COLS = 7, ENERGY_CELL = 64 };
#define ENERGY_SAME 0.05 /* a change of the share within it reads "about the same" */

/* The sanity.csv columns the energy table reads. */
typedef struct {
    size_t method, test, step, category, trained, random, change, reason;
} energy_cols;

static int energy_columns(const cbq_csv *t, energy_cols *c, cbq_error *err)
{
    CBQ_TRY(cbq_csv_require_col(t, "method", &c->method, err));
    CBQ_TRY(cbq_csv_require_col(t, "test", &c->test, err));
    CBQ_TRY(cbq_csv_require_col(t, "step", &c->step, err));
    CBQ_TRY(cbq_csv_require_col(t, "category", &c->category, err));
    CBQ_TRY(cbq_csv_require_col(t, "energy_trained", &c->trained, err));
    CBQ_TRY(cbq_csv_require_col(t, "energy_random", &c->random, err));
    CBQ_TRY(cbq_csv_require_col(t, "energy_change", &c->change, err));
    return cbq_csv_require_col(t, "energy_empty_reason", &c->reason, err);
}

/* A share as the table shows it: 0.42, or n/a (its reason). */
static void format_share(char *buf, const char *cell, const char *reason)
{
    if (cell[0])
        snprintf(buf, ENERGY_CELL, "%.2f", strtod(cell, NULL));
    else
        snprintf(buf, ENERGY_CELL, "n/a (%s)", reason[0] ? reason : "undefined");
}

static const char *energy_reading(const char *change)
{
    if (!change[0])
        return "undefined";
    double d = strtod(change, NULL);
    return d < -ENERGY_SAME ? "falls" : d > ENERGY_SAME ? "rises" : "about the same";
}

/* The permuted-labels row of (method, category), or SIZE_MAX. */
static size_t permuted_row(const cbq_csv *t, const energy_cols *c, size_t row)
{
    for (size_t i = 0; i < t->n_rows; i++)
        if (strcmp(cbq_csv_cell(t, i, c->test), "permuted_labels") == 0 &&
            strcmp(cbq_csv_cell(t, i, c->method), cbq_csv_cell(t, row, c->method)) == 0 &&
            strcmp(cbq_csv_cell(t, i, c->category), cbq_csv_cell(t, row, c->category)) == 0)
            return i;
    return SIZE_MAX;
}

/* One table row from the last cascade step's row of sanity.csv. */
static void energy_row(const cbq_csv *t, const energy_cols *c, size_t i, char (*row)[ENERGY_CELL])
{
    const char *reason = cbq_csv_cell(t, i, c->reason);
    snprintf(row[0], ENERGY_CELL, "%s", cbq_csv_cell(t, i, c->method));
    snprintf(row[1], ENERGY_CELL, "%s", cbq_csv_cell(t, i, c->category));
    format_share(row[2], cbq_csv_cell(t, i, c->trained), reason);
    format_share(row[3], cbq_csv_cell(t, i, c->random), reason);
    const char *change = cbq_csv_cell(t, i, c->change);
    if (change[0])
        snprintf(row[4], ENERGY_CELL, "%+.2f", strtod(change, NULL));
    else
        snprintf(row[4], ENERGY_CELL, "n/a");
    size_t p = permuted_row(t, c, i);
    if (p == SIZE_MAX)
        snprintf(row[5], ENERGY_CELL, "not run");
    else
        format_share(row[5], cbq_csv_cell(t, p, c->random), cbq_csv_cell(t, p, c->reason));
    snprintf(row[6], ENERGY_CELL, "%s", energy_reading(change));
}

/* The last cascade step (the largest step of the method's cascade rows). */
static int is_last_step(const cbq_csv *t, const energy_cols *c, size_t i)
{
    if (strcmp(cbq_csv_cell(t, i, c->test), "cascade") != 0)
        return 0;
    long step = strtol(cbq_csv_cell(t, i, c->step), NULL, 10);
    for (size_t j = 0; j < t->n_rows; j++)
        if (strcmp(cbq_csv_cell(t, j, c->test), "cascade") == 0 &&
            strcmp(cbq_csv_cell(t, j, c->method), cbq_csv_cell(t, i, c->method)) == 0 &&
            strtol(cbq_csv_cell(t, j, c->step), NULL, 10) > step)
            return 0;
    return 1;
}

static int energy_table_of(cbq_report *r, const cbq_csv *t, cbq_error *err)
{
    static const char *const header[ENERGY_COLS] = {
        "method", "category", "trained", "fully randomised", "change", "permuted labels",
        "reading"};
    energy_cols c;
    CBQ_TRY(energy_columns(t, &c, err));
    char (*text)[ENERGY_CELL] = calloc(t->n_rows * ENERGY_COLS + 1, ENERGY_CELL);
    const char **cells = calloc(t->n_rows * ENERGY_COLS + 1, sizeof *cells);
    int rc = text && cells ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < t->n_rows && rc == CBQ_OK; i++) {
        if (!is_last_step(t, &c, i))
            continue;
        energy_row(t, &c, i, text + n * ENERGY_COLS);
        for (int k = 0; k < ENERGY_COLS; k++)
            cells[n * ENERGY_COLS + k] = text[n * ENERGY_COLS + k];
        n++;
    }
    if (rc == CBQ_OK)
        rc = cbq_report_table(r, "sanity_energy", "Energy on the structure (median share of the "
                              "map's sum inside the category's structure over test volumes): "
                              "trained -> fully randomised, their change, and the permuted-labels "
                              "model's; n/a gives the reason (no_structure: the category has no "
                              "structure, e.g. overall). Every step: sanity/sanity.csv.",
                              ENERGY_COLS, header, n, cells, err);
    free(text);
    free(cells);
    return rc;
}

static int energy_table(cbq_report *r, const study_ctx *ctx, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_SANITY, "sanity.csv", path, sizeof path, err));
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, path, err));
    int rc = cbq_report_paragraph(r, ENERGY_WHAT, err);
    if (rc == CBQ_OK)
        rc = energy_table_of(r, &t, err);
    cbq_csv_free(&t);
    return rc;
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
        rc = pooled_table(r, ctx, err);
    if (rc == CBQ_OK)
        rc = energy_table(r, ctx, err);
    free(c);
    return rc;
}
