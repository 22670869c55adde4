/* report_sample.c - builds a sample study report from synthetic data, with
 * every kind of figure and block the study uses, for the report tests
 * (file checks and the browser test). Usage: report_sample OUT_DIR [DPI]
 * (DPI: the resolution of the PNG files beside the report). */
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/plot.h"
#include "cbctiq/report.h"
#include "cbctiq/rng.h"

enum { N_TEST = 16, N_CAT = 5, EPOCHS = 30, SLICE = 96, N_SLICES = 40 };
static const char *const categories[N_CAT] = {"parotid", "submandibular", "larynx", "mandible", "overall"};

/* A head-like phantom slice in HU: soft tissue ellipse, bone ring, air
 * outside, a dark airway; `shift` moves the anatomy a little per volume. */
static void phantom_slice(float *img, double shift, cbq_rng *rng)
{
    for (int y = 0; y < SLICE; y++)
        for (int x = 0; x < SLICE; x++) {
            double u = (x - SLICE / 2.0 - shift) / (SLICE * 0.40), v = (y - SLICE / 2.0) / (SLICE * 0.46);
            double r = sqrt(u * u + v * v);
            double hu = r < 1.0 ? 40.0 : -1000.0;
            if (r > 0.82 && r < 0.95)
                hu = 900.0;
            double ax = (x - SLICE / 2.0 - shift) / 6.0, ay = (y - SLICE * 0.62) / 5.0;
            if (ax * ax + ay * ay < 1.0)
                hu = -950.0;
            img[y * SLICE + x] = (float)(hu + 25.0 * cbq_rng_normal(rng));
        }
}

/* A smooth blob map (attribution-like) of given strength. */
static void blob_map(float *map, double cx, double cy, double strength)
{
    for (int y = 0; y < SLICE; y++)
        for (int x = 0; x < SLICE; x++) {
            double dx = (x - cx) / 14.0, dy = (y - cy) / 11.0;
            map[y * SLICE + x] = (float)(strength * exp(-(dx * dx + dy * dy)));
        }
}

static int fail(const cbq_error *err)
{
    fprintf(stderr, "report_sample: %s\n", err->msg);
    return 1;
}

#define TRY(expr)                \
    do {                         \
        if ((expr) != CBQ_OK)    \
            return fail(&err);   \
    } while (0)

static int add_chart(cbq_report *r, const cbq_chart *c, const char *stem, const char *caption)
{
    cbq_error err = {0};
    cbq_figure *fig = NULL;
    TRY(cbq_chart_draw(&fig, c, &err));
    int rc = cbq_report_figure(r, fig, stem, caption, &err);
    cbq_figure_free(fig);
    if (rc != CBQ_OK)
        return fail(&err);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: report_sample OUT_DIR [DPI]\n");
        return 2;
    }
    cbq_error err = {0};
    cbq_rng rng;
    cbq_rng_seed(&rng, 20260127);
    cbq_report *r = NULL;
    TRY(cbq_report_begin(&r, "cbctiq study report (sample <synthetic> data)", argv[1], &err));
    if (argc == 3)
        TRY(cbq_report_set_dpi(r, atoi(argv[2]), &err));

    /* Cohort and ratings */
    TRY(cbq_report_section(r, "Cohort and ratings", &err));
    TRY(cbq_report_paragraph(r, "48 simulated volumes, 3 raters, 5 categories.\n"
                                "Scores are Likert 1-5; consensus = weighted mean.\n\n"
                                "Escaping check: <script>alert('x')</script> & \"quotes\" stay text.", &err));
    const char *hdr[] = {"split", "volumes", "slices", "raters"};
    const char *cells[] = {"train", "24", "960", "3", "val", "8", "320", "3", "test", "16", "640", "3"};
    TRY(cbq_report_table(r, "cohort", "Cohort by split", 4, hdr, 3, cells, &err));
    double score_counts[5] = {3, 9, 17, 13, 6};
    const char *score_names[5] = {"1", "2", "3", "4", "5"};
    cbq_series bars = {.kind = CBQ_SERIES_BARS, .y = score_counts, .n = 5, .color = -1};
    cbq_chart ratings = {.title = "Consensus scores (overall)", .x_label = "Likert score", .y_label = "volumes",
                         .series = &bars, .n_series = 1, .y_integer = 1, .x_categories = score_names, .n_categories = 5,
                         .width = 520, .height = 360};
    if (add_chart(r, &ratings, "ratings_overall", "Distribution of overall consensus scores."))
        return 1;

    /* Rater agreement */
    TRY(cbq_report_section(r, "Rater agreement", &err));
    double icc[N_CAT] = {0.81, 0.77, 0.52, 0.84, 0.79};
    cbq_series icc_bars = {.kind = CBQ_SERIES_BARS, .y = icc, .n = N_CAT, .color = 2, .label = "ICC(2,1)"};
    cbq_chart agree = {.title = "Inter-rater agreement", .y_label = "ICC(2,1)", .series = &icc_bars, .n_series = 1,
                       .x_categories = categories, .n_categories = N_CAT, .y_fixed = 1, .y_min = 0, .y_max = 1,
                       .width = 600, .height = 360};
    if (add_chart(r, &agree, "agreement", "Intraclass correlation per category."))
        return 1;

    /* Training */
    TRY(cbq_report_section(r, "Training", &err));
    double ep[EPOCHS], tr[EPOCHS], va[EPOCHS];
    for (int i = 0; i < EPOCHS; i++) {
        ep[i] = i + 1;
        tr[i] = 1.6 * exp(-i / 7.0) + 0.12 + 0.02 * cbq_rng_normal(&rng);
        va[i] = 1.7 * exp(-i / 8.0) + 0.22 + 0.04 * cbq_rng_normal(&rng);
    }
    va[12] = NAN; /* a missing validation epoch breaks the line */
    cbq_series curves[2] = {
        {.kind = CBQ_SERIES_LINE, .label = "training", .x = ep, .y = tr, .n = EPOCHS, .color = -1},
        {.kind = CBQ_SERIES_LINE, .label = "validation", .x = ep, .y = va, .n = EPOCHS, .color = -1, .dashed = 1},
    };
    cbq_chart train = {.title = "Loss per epoch", .x_label = "epoch", .y_label = "MSE loss (score\xc2\xb2)",
                       .series = curves, .n_series = 2};
    if (add_chart(r, &train, "training_curves", "Training and validation loss."))
        return 1;

    /* Model performance: prediction against consensus, identity line */
    TRY(cbq_report_section(r, "Model performance", &err));
    double cons_all[N_TEST], pred_all[N_TEST], ident[2] = {1.0, 5.0};
    for (int i = 0; i < N_TEST; i++) {
        cons_all[i] = 1.0 + 4.0 * (i + 0.5) / N_TEST;
        pred_all[i] = 0.6 * cons_all[i] + 1.2 + 0.3 * cbq_rng_normal(&rng);
    }
    cbq_series perf[2] = {
        {.kind = CBQ_SERIES_SCATTER, .label = "test volumes", .x = cons_all, .y = pred_all, .n = N_TEST, .color = 0},
        {.kind = CBQ_SERIES_LINE, .label = "prediction = consensus", .x = ident, .y = ident, .n = 2, .color = 6,
         .dashed = 1},
    };
    cbq_chart pc = {.title = "overall: predicted vs consensus", .x_label = "consensus score",
                    .y_label = "predicted score", .series = perf, .n_series = 2, .annotation = "MAE = 0.41\nrho = 0.88",
                    .x_fixed = 1, .x_min = 0.8, .x_max = 5.2, .y_fixed = 1, .y_min = 0.8, .y_max = 5.2,
                    .width = 480, .height = 440};
    if (add_chart(r, &pc, "performance_overall", "Volume-level prediction (mean over slices) on the test set."))
        return 1;

    /* Per category: AE vs consensus */
    TRY(cbq_report_section(r, "Attribution Energy against consensus", &err));
    TRY(cbq_report_note(r, "With a global-average-pool + linear head, the pre-ReLU Grad-CAM of a slice sums to its "
                           "prediction minus the bias: AE largely repeats the prediction. See rho(AE, prediction) "
                           "and the partial correlation below.", &err));
    cbq_poster_row poster[N_CAT];
    double loo_all[N_CAT][N_TEST], strip_x[N_CAT];
    for (int c = 0; c < N_CAT; c++) {
        double cons[N_TEST], ae[N_TEST], iso[N_TEST];
        const char *labels[N_TEST] = {0};
        char ids[N_TEST][16];
        for (int i = 0; i < N_TEST; i++) {
            cons[i] = 1.0 + 4.0 * (i + 0.5) / N_TEST + 0.2 * cbq_rng_normal(&rng);
            ae[i] = 2000.0 * cons[i] + (c == 2 ? 3000.0 : 900.0) * cbq_rng_normal(&rng);
            snprintf(ids[i], sizeof ids[i], "v%02d", i + 1);
            iso[i] = 2000.0 * cons[i];
            loo_all[c][i] = (c == 2 ? 0.25 : 0.75) + 0.05 * cbq_rng_normal(&rng);
        }
        labels[3] = ids[3];
        labels[11] = ids[11];
        cbq_series sc[2] = {
            {.kind = CBQ_SERIES_SCATTER, .label = "test volumes", .x = cons, .y = ae, .n = N_TEST, .color = 0,
             .point_labels = labels},
            {.kind = CBQ_SERIES_LINE, .label = "monotone fit", .x = cons, .y = iso, .n = N_TEST, .color = 1},
        };
        char title[64], note[96], stem[64], caption[160];
        snprintf(title, sizeof title, "%s: AE vs consensus", categories[c]);
        snprintf(note, sizeof note, "rho = %.2f\np = %.3f\nn = %d", c == 2 ? 0.25 : 0.74, c == 2 ? 0.37 : 0.001,
                 N_TEST);
        cbq_chart chart = {.title = title, .x_label = "consensus score", .y_label = "AE (sum of raw Grad-CAM)",
                           .series = sc, .n_series = 2, .annotation = note,
                           .width = 560, .height = 420};
        snprintf(stem, sizeof stem, "scatter_%s", categories[c]);
        snprintf(caption, sizeof caption, "%s: AE against consensus; flagged volumes labelled.", categories[c]);
        TRY(cbq_report_subsection(r, categories[c], &err));
        if (add_chart(r, &chart, stem, caption))
            return 1;
        double full_rho = c == 2 ? 0.25 : 0.74;
        cbq_series loo[2] = {
            {.kind = CBQ_SERIES_HISTOGRAM, .label = "LOO rho", .y = loo_all[c], .n = N_TEST, .bins = 8, .color = 0},
            {.kind = CBQ_SERIES_VLINE, .label = "full-sample rho", .y = &full_rho, .n = 1, .color = 1, .dashed = 1},
        };
        snprintf(title, sizeof title, "%s: leave-one-out rho", categories[c]);
        cbq_chart hist = {.title = title, .x_label = "Spearman rho (n - 1 volumes)", .y_label = "subsets",
                          .series = loo, .n_series = 2, .width = 480, .height = 420};
        snprintf(stem, sizeof stem, "loo_%s", categories[c]);
        if (add_chart(r, &hist, stem, "Distribution of the leave-one-out correlations."))
            return 1;
        strip_x[c] = c;
        poster[c] = (cbq_poster_row){.category = categories[c], .n = N_TEST, .median_loo_rho = full_rho,
                                     .median_loo_p = c == 2 ? 0.37 : 0.0012, .rho = full_rho,
                                     .p = c == 2 ? 0.35 : 3.4e-5, .ci_lo = full_rho - 0.35,
                                     .ci_hi = full_rho + 0.15};
    }
    TRY(cbq_report_poster_table(r, "poster_table", "Spearman rho of AE against consensus (test set)", poster, N_CAT,
                                &err));
    cbq_series strips[N_CAT];
    for (int c = 0; c < N_CAT; c++)
        strips[c] = (cbq_series){.kind = CBQ_SERIES_STRIP, .y = loo_all[c], .n = N_TEST, .strip_x = strip_x[c],
                                 .color = c};
    double zero = 0.0, bar_x[3 * N_CAT], bar_y[3 * N_CAT];
    for (int c = 0; c < N_CAT; c++) { /* the study's full-sample rho: a bar across each strip */
        bar_x[3 * c] = c - 0.38, bar_x[3 * c + 1] = c + 0.38, bar_x[3 * c + 2] = NAN;
        bar_y[3 * c] = bar_y[3 * c + 1] = poster[c].rho, bar_y[3 * c + 2] = NAN;
    }
    cbq_series all[N_CAT + 2];
    memcpy(all, strips, sizeof strips);
    all[N_CAT] = (cbq_series){.kind = CBQ_SERIES_HLINE, .y = &zero, .n = 1, .color = 6, .dashed = 1};
    all[N_CAT + 1] = (cbq_series){.kind = CBQ_SERIES_LINE, .label = "rho of all test volumes", .x = bar_x,
                                  .y = bar_y, .n = 3 * N_CAT, .color = 1};
    cbq_chart strip = {.title = "Leave-one-out rho per category", .y_label = "Spearman rho", .series = all,
                       .n_series = N_CAT + 2, .x_categories = categories, .n_categories = N_CAT, .width = 680,
                       .height = 400};
    if (add_chart(r, &strip, "loo_strip", "Each point: rho with one test volume left out."))
        return 1;

    /* Grad-CAM overlays */
    TRY(cbq_report_section(r, "Grad-CAM overlays", &err));
    TRY(cbq_report_note(r, "Fixed colour scale across panels: map units are raw Grad-CAM values.", &err));
    static float images[3][SLICE * SLICE], maps[3][SLICE * SLICE];
    static unsigned char masks[3][SLICE * SLICE];
    const char *ptitles[3] = {"highest AE: v07", "median AE: v03", "lowest AE: v12"};
    cbq_overlay_panel panels[3];
    for (int i = 0; i < 3; i++) {
        phantom_slice(images[i], (i - 1) * 3.0, &rng);
        blob_map(maps[i], SLICE * (0.35 + 0.15 * i), SLICE * 0.45, 0.012 / (i + 1));
        for (int y = 0; y < SLICE; y++)
            for (int x = 0; x < SLICE; x++) {
                double dx = (x - SLICE * 0.3) / 9.0, dy = (y - SLICE * 0.45) / 13.0;
                masks[i][y * SLICE + x] = dx * dx + dy * dy < 1.0; /* a "parotid" */
            }
        panels[i] = (cbq_overlay_panel){.image = images[i], .map = maps[i], .mask = masks[i], .width = SLICE,
                                        .height = SLICE,
                                        .pixel_aspect = 1.0, .title = ptitles[i]};
    }
    cbq_montage mon = {.title = "parotid: Grad-CAM at the structure's level", .panels = panels, .n_panels = 3,
                       .window_lo = -400, .window_hi = 600, .cmap = CBQ_CMAP_VIRIDIS, .map_lo = 0, .map_hi = 0.012,
                       .alpha = 0.55, .map_label = "Grad-CAM (raw, a.u.)"};
    cbq_figure *fig = NULL;
    TRY(cbq_montage_draw(&fig, &mon, &err));
    int rc = cbq_report_figure(r, fig, "gradcam_parotid", "Highest-, median- and lowest-AE test volumes.", &err);
    cbq_figure_free(fig);
    if (rc != CBQ_OK)
        return fail(&err);

    double z[N_SLICES], prof[3][N_SLICES];
    for (int s = 0; s < N_SLICES; s++) {
        z[s] = s * 2.5;
        for (int i = 0; i < 3; i++)
            prof[i][s] = (3.0 - i) * 40.0 * exp(-pow((s - 20.0 - 3 * i) / 6.0, 2));
    }
    cbq_series zs[3] = {
        {.kind = CBQ_SERIES_LINE, .label = "v07", .x = z, .y = prof[0], .n = N_SLICES, .color = -1},
        {.kind = CBQ_SERIES_LINE, .label = "v03", .x = z, .y = prof[1], .n = N_SLICES, .color = -1},
        {.kind = CBQ_SERIES_LINE, .label = "v12", .x = z, .y = prof[2], .n = N_SLICES, .color = -1},
    };
    cbq_chart zc = {.title = "parotid: attribution per slice", .x_label = "z (mm)", .y_label = "slice AE",
                    .series = zs, .n_series = 3};
    if (add_chart(r, &zc, "zprofile_parotid", "Per-slice sum of raw Grad-CAM along z."))
        return 1;

    /* Flags, sanity checks, provenance */
    TRY(cbq_report_section(r, "Flagged cases", &err));
    /* The columns of atypical.csv: many short numbers beside one sentence,
     * which must not be squeezed to a word per line. */
    const char *fh[] = {"volume_id", "category", "consensus", "ae", "fit", "residual", "robust_z",
                        "flag", "rho_without", "delta_rho", "reason"};
    const char *fc[] = {"v04", "parotid", "2.6", "7421", "5310", "2111", "3.81", "residual", "0.702", "-0.038",
                        "AE 2111 above the monotone fit (robust z 3.81 > 3.5): more attribution than its "
                        "consensus score suggests",
                        "v12", "larynx", "4.2", "1903", "2250", "-347", "-0.62", "influential", "0.462", "0.212",
                        "leaving it out moves rho from 0.25 to 0.46 (the largest change of the 16 volumes)"};
    TRY(cbq_report_table(r, "flagged", "Volumes with atypical attribution", 11, fh, 2, fc, &err));
    static char vid[N_TEST][24];
    const char *vids[N_TEST];
    double resid[N_TEST], limits[2] = {-2.0, 2.0};
    for (int i = 0; i < N_TEST; i++) {
        snprintf(vid[i], sizeof vid[i], "HN-CBCT-%03d", i + 1);
        vids[i] = vid[i];
        resid[i] = cbq_rng_normal(&rng);
    }
    resid[3] = 3.1;
    cbq_series rs[2] = {{.kind = CBQ_SERIES_BARS, .y = resid, .n = N_TEST, .color = 0},
                        {.kind = CBQ_SERIES_HLINE, .label = "flag limits", .y = limits, .n = 2, .color = 1,
                         .dashed = 1}};
    cbq_chart rc_chart = {.title = "parotid: AE residual per volume", .y_label = "residual (z)", .series = rs,
                          .n_series = 2, .x_categories = vids, .n_categories = N_TEST, .width = 640, .height = 420};
    if (add_chart(r, &rc_chart, "residuals_parotid", "Standardised AE residual from the monotone fit."))
        return 1;
    TRY(cbq_report_section(r, "Sanity checks", &err));
    const char *sh[] = {"check", "result", "detail"};
    const char *sc2[] = {"model randomisation", "pass", "rank correlation 0.04",
                         "label randomisation", "pass", "rank correlation -0.02"};
    TRY(cbq_report_table(r, "sanity", "Adebayo et al. sanity checks", 3, sh, 2, sc2, &err));
    TRY(cbq_report_section(r, "Reproducibility", &err));
    const char *keys[] = {"cbctiq", "seed", "cairo", "command"};
    const char *vals[] = {"0.1.0", "20260127", "1.16.0", "cbctiq study --config study.json --out out"};
    TRY(cbq_report_keyvalues(r, 4, keys, vals, &err));
    TRY(cbq_report_preformatted(r, "study.json", "{\n  \"seed\": 20260127,\n  \"categories\": [\"parotid\"],\n"
                                                 "  \"note\": \"a <b> & c\"\n}", &err));
    TRY(cbq_report_finish(r, &err));
    cbq_report_free(r);
    /* Process-wide font caches, freed for LeakSanitizer's sake. */
    cairo_debug_reset_static_data();
    FcFini();
    return 0;
}
