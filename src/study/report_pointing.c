/* report_pointing.c - the report's section "Where does the map point?":
 * per category how much of each test volume's map lies on the category's
 * structure (energy_in_structure) and how often its maximum does
 * (pointing_hit), the deletion and insertion curves of the highest-, median-
 * and lowest-AE volumes against the random order (attrib/curves.csv), the
 * rho of these measures with consensus and AE (stats/pointing.csv), and a
 * plain-words reading of what they say about AE. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/faithfulness.h"
#include "study/report_figures.h"

enum { N_POINTS = CBQ_CURVE_STEPS + 1, N_PICKS = 3 };

typedef struct {
    cbq_csv t;
    size_t c_volume, c_category, c_order, c_curve, c_step, c_norm;
} curves_table;

static int curves_read(const study_ctx *ctx, curves_table *c, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    memset(c, 0, sizeof *c);
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_ATTRIB, "curves.csv", path, sizeof path, err));
    CBQ_TRY(cbq_csv_read(&c->t, path, err));
    const char *names[6] = {"volume_id", "category", "order", "curve", "step", "normalised"};
    size_t *cols[6] = {&c->c_volume, &c->c_category, &c->c_order, &c->c_curve, &c->c_step,
                       &c->c_norm};
    for (int i = 0; i < 6; i++) {
        int rc = cbq_csv_require_col(&c->t, names[i], cols[i], err);
        if (rc != CBQ_OK) {
            cbq_csv_free(&c->t);
            return rc;
        }
    }
    return CBQ_OK;
}

/* The normalised curve of (volume, category, order, curve) into y[N_POINTS]
 * (NaN where absent); returns 1 when any step is there. */
static int curve_of(const curves_table *c, const char *id, const char *cat, const char *order,
                    const char *curve, double *y)
{
    int found = 0;
    for (size_t i = 0; i < N_POINTS; i++)
        y[i] = NAN;
    for (size_t r = 0; r < c->t.n_rows; r++) {
        if (strcmp(cbq_csv_cell(&c->t, r, c->c_volume), id) != 0 ||
            strcmp(cbq_csv_cell(&c->t, r, c->c_category), cat) != 0 ||
            strcmp(cbq_csv_cell(&c->t, r, c->c_order), order) != 0 ||
            strcmp(cbq_csv_cell(&c->t, r, c->c_curve), curve) != 0)
            continue;
        char *end;
        long step = strtol(cbq_csv_cell(&c->t, r, c->c_step), &end, 10);
        const char *norm = cbq_csv_cell(&c->t, r, c->c_norm);
        if (step < 0 || step >= N_POINTS || !norm[0])
            continue;
        y[step] = strtod(norm, NULL);
        found = 1;
    }
    return found;
}

/* One chart per curve kind: the picks' map-order curves (solid) and their
 * random-order twins (dashed, same colour). */
static int curve_chart(cbq_report *r, const study_ctx *ctx, const curves_table *c, size_t k,
                       const ae_category *ac, const size_t *rows, size_t n_picks,
                       const char *curve, cbq_error *err)
{
    static const char *const ROLE[N_PICKS] = {"highest AE", "median AE", "lowest AE"};
    const char *cat = ctx->categories[k];
    double x[N_POINTS], y[2 * N_PICKS][N_POINTS];
    char labels[2 * N_PICKS][160];
    cbq_series s[2 * N_PICKS];
    size_t n_series = 0;
    for (size_t i = 0; i < N_POINTS; i++)
        x[i] = (double)i / CBQ_CURVE_STEPS;
    for (size_t p = 0; p < n_picks; p++) {
        const char *id = ac->volumes[rows[p]];
        const char *role = ROLE[n_picks == N_PICKS ? p : (p == 0 ? 0 : 2)];
        for (int random = 0; random <= 1; random++) {
            if (!curve_of(c, id, cat, random ? "random" : "map", curve, y[n_series]))
                continue;
            snprintf(labels[n_series], sizeof labels[n_series], "%.80s (%s)%s", id, role,
                     random ? ", random order" : "");
            s[n_series] = (cbq_series){.kind = CBQ_SERIES_LINE, .label = labels[n_series], .x = x,
                                       .y = y[n_series], .n = N_POINTS, .color = (int)p,
                                       .dashed = random};
            n_series++;
        }
    }
    if (!n_series)
        return CBQ_OK; /* no curves: flat scores or zero maps, said in the text */
    char title[160], stem[96], caption[512];
    snprintf(title, sizeof title, "%.63s: %s curves (normalised score)", cat, curve);
    snprintf(stem, sizeof stem, "%s_%s", curve, cat);
    snprintf(caption, sizeof caption,
             "%s: the model's score for this category as the pixels of each slice are %s in the "
             "map's order (solid) and in a random order (dashed), for the test volumes with the "
             "highest, median and lowest AE; 1 = the score of the slices as given, 0 = the score "
             "of their blurred (or imputed) baseline. %s",
             cat, strcmp(curve, "deletion") == 0 ? "replaced by the baseline" : "restored onto the baseline",
             strcmp(curve, "deletion") == 0
                 ? "A faithful map's curve falls faster than the random one."
                 : "A faithful map's curve rises faster than the random one.");
    cbq_chart chart = {.title = title, .x_label = "fraction of pixels", .y_label = "normalised score",
                       .series = s, .n_series = n_series};
    return report_add_chart(r, &chart, stem, caption, err);
}

typedef struct {
    size_t n, n_energy, n_hit, hits, n_curves, faster;
    double energy_mean, del_mean, del_random_mean;
} pointing_summary;

static pointing_summary summarise(const ae_category *ac)
{
    pointing_summary s = {.n = ac->n};
    for (size_t i = 0; i < ac->n; i++) {
        double e = ac->pointing[AE_ENERGY][i], h = ac->pointing[AE_HIT][i];
        double d = ac->pointing[AE_DELETION][i], dr = ac->pointing[AE_DELETION_RANDOM][i];
        if (isfinite(e)) {
            s.energy_mean += e;
            s.n_energy++;
        }
        if (isfinite(h)) {
            s.hits += h > 0.5;
            s.n_hit++;
        }
        if (isfinite(d) && isfinite(dr)) {
            s.del_mean += d;
            s.del_random_mean += dr;
            s.faster += d < dr;
            s.n_curves++;
        }
    }
    s.energy_mean = s.n_energy ? s.energy_mean / (double)s.n_energy : NAN;
    s.del_mean = s.n_curves ? s.del_mean / (double)s.n_curves : NAN;
    s.del_random_mean = s.n_curves ? s.del_random_mean / (double)s.n_curves : NAN;
    return s;
}

/* What the numbers say, in words, for one category. */
static void plain_words(const char *cat, const pointing_summary *s, char *buf, size_t cap)
{
    size_t len = 0;
    int n;
    if (s->n_energy)
        n = snprintf(buf, cap, "%s: on average %.0f%% of the map's energy lies on the structure, "
                     "and its maximum lies there in %zu of %zu test volumes: the map points %s. ",
                     cat, 100.0 * s->energy_mean, s->hits, s->n_hit,
                     s->hits * 2 > s->n_hit ? "mostly at the structure"
                                            : "mostly elsewhere (air, bone or other anatomy)");
    else
        n = snprintf(buf, cap, "%s: no structure to point at (ae.csv's empty_reason says why), "
                     "so only the curves speak. ", cat);
    len = n > 0 ? (size_t)n : 0;
    if (len >= cap)
        return;
    if (!s->n_curves) {
        snprintf(buf + len, cap - len, "No deletion curve could be scaled (flat scores or zero "
                 "maps): nothing says whether the map matters to the prediction.");
        return;
    }
    int faithful = s->faster * 2 > s->n_curves && s->del_mean < s->del_random_mean;
    snprintf(buf + len, cap - len,
             "Removing pixels in the map's order moves the score faster than a random order in "
             "%zu of %zu volumes (mean deletion AUC %.3f against %.3f at random): %s",
             s->faster, s->n_curves, s->del_mean, s->del_random_mean,
             faithful ? "what the map ranks highest does drive the prediction, so AE sums "
                        "evidence the model uses, wherever it lies."
                      : "the map's ranking is no better than chance at changing the prediction, "
                        "so AE here is not a measure of what the model relies on.");
}

static int category_part(cbq_report *r, const study_ctx *ctx, const curves_table *c,
                         const ae_table *t, size_t k, cbq_error *err)
{
    const ae_category *ac = &t->cat[k];
    CBQ_TRY(cbq_report_subsection(r, ctx->categories[k], err));
    pointing_summary s = summarise(ac);
    char words[1024];
    plain_words(ctx->categories[k], &s, words, sizeof words);
    CBQ_TRY(cbq_report_paragraph(r, words, err));
    size_t rows[N_PICKS], n_picks = report_pick_rows(ac, rows);
    CBQ_TRY(curve_chart(r, ctx, c, k, ac, rows, n_picks, "deletion", err));
    return curve_chart(r, ctx, c, k, ac, rows, n_picks, "insertion", err);
}

/* energy_in_structure of every test volume, one strip per category. */
static int energy_strip(cbq_report *r, const study_ctx *ctx, const ae_table *t, cbq_error *err)
{
    cbq_series s[STUDY_MAX_CATEGORIES];
    double *kept[STUDY_MAX_CATEGORIES] = {0};
    const char *names[STUDY_MAX_CATEGORIES];
    size_t n_series = 0;
    int rc = CBQ_OK;
    for (size_t k = 0; k < ctx->n_categories && rc == CBQ_OK; k++) {
        const ae_category *ac = &t->cat[k];
        names[k] = ctx->categories[k];
        if (!(kept[k] = malloc((ac->n + 1) * sizeof **kept))) {
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
            break;
        }
        size_t n = 0;
        for (size_t i = 0; i < ac->n; i++)
            if (isfinite(ac->pointing[AE_ENERGY][i]))
                kept[k][n++] = ac->pointing[AE_ENERGY][i];
        if (n)
            s[n_series++] = (cbq_series){.kind = CBQ_SERIES_STRIP, .label = ctx->categories[k],
                                         .y = kept[k], .n = n, .color = -1,
                                         .strip_x = (double)k};
    }
    if (rc == CBQ_OK && n_series) {
        cbq_chart chart = {.title = "Share of the map's energy on the category's structure",
                           .x_label = "category", .y_label = "energy_in_structure",
                           .series = s, .n_series = n_series,
                           .x_categories = names,
                           .n_categories = ctx->n_categories, .y_fixed = 1, .y_min = 0,
                           .y_max = 1};
        rc = report_add_chart(r, &chart, "energy_in_structure",
                              "Per test volume and category: the sum of the map inside the "
                              "category's structure over the sum of the whole map, on the CBCT's "
                              "own grid (categories without a structure have no points).", err);
    }
    for (size_t k = 0; k < ctx->n_categories; k++)
        free(kept[k]);
    return rc;
}

int report_pointing_section(cbq_report *r, const study_ctx *ctx, const ae_table *t,
                            cbq_error *err)
{
    CBQ_TRY(cbq_report_section(r, "Where does the map point?", err));
    CBQ_TRY(cbq_report_paragraph(
        r, "Whether each map's energy lies on the anatomy its category is about "
           "(energy_in_structure, pointing_hit), and whether removing what the map ranks highest "
           "changes the predicted score (deletion and insertion curves, against a random pixel "
           "order). docs/attribution.md gives the definitions; attrib/ae.csv and "
           "attrib/curves.csv hold every value.", err));
    CBQ_TRY(energy_strip(r, ctx, t, err));
    CBQ_TRY(report_csv_table(r, ctx, CBQ_STAGE_STATS, "pointing.csv", "pointing",
                             "Per category and measure: the test volumes with a value, their "
                             "mean, and Spearman's rho with the consensus and with AE.", err));
    curves_table c;
    CBQ_TRY(curves_read(ctx, &c, err));
    int rc = CBQ_OK;
    for (size_t k = 0; k < ctx->n_categories && rc == CBQ_OK; k++)
        rc = category_part(r, ctx, &c, t, k, err);
    cbq_csv_free(&c.t);
    return rc;
}
