/* report_verdict.c - the report's first section: the verdict of
 * stats.json in words (does the model beat the constant training-mean
 * predictor, does its prediction vary, does AE track the slice count), its
 * warnings as a note, and the numbers behind each answer as a table. */
#define _POSIX_C_SOURCE 200809L
#include "study/verdict.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static double item_num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static size_t count_true(const cJSON *cats, const char *key)
{
    size_t n = 0;
    const cJSON *cat;
    cJSON_ArrayForEach(cat, cats)
        n += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cat, key));
    return n;
}

static void verdict_words(const cJSON *v, size_t n_warnings, char *buf, size_t cap)
{
    const cJSON *cats = cJSON_GetObjectItemCaseSensitive(v, "categories");
    size_t K = (size_t)cJSON_GetArraySize(cats);
    size_t beats = count_true(cats, "beats_baseline"), varies = count_true(cats, "prediction_varies");
    size_t tracks = count_true(cats, "ae_tracks_slice_count");
    size_t len = 0;
    int n;
    if (beats == K)
        n = snprintf(buf, cap, "The model beats the constant predictor that always says the "
                     "training split's mean consensus in every category (one-sided Wilcoxon "
                     "signed-rank test of the paired absolute errors, p < 0.05).");
    else
        n = snprintf(buf, cap, "The model does not beat the constant predictor that always says "
                     "the training split's mean consensus in %zu of %zu categories (one-sided "
                     "Wilcoxon signed-rank test of the paired absolute errors, p < 0.05): there, "
                     "it has learned nothing an attribution of it could explain.", K - beats, K);
    len += n > 0 ? (size_t)n : 0;
    n = len < cap ? (varies == K ? snprintf(buf + len, cap - len, " Its prediction varies "
                                            "across the test volumes.")
                                 : snprintf(buf + len, cap - len, " Its prediction is nearly "
                                            "constant in %zu of %zu categories (SD below 10%% "
                                            "of the consensus SD).", K - varies, K))
                  : 0;
    len += n > 0 ? (size_t)n : 0;
    n = len < cap ? (tracks ? snprintf(buf + len, cap - len, " AE follows the slice count at "
                                       "least as closely as the consensus in %zu of %zu "
                                       "categories.", tracks, K)
                            : snprintf(buf + len, cap - len, " AE does not follow the slice "
                                       "count more closely than the consensus."))
                  : 0;
    len += n > 0 ? (size_t)n : 0;
    if (len < cap)
        snprintf(buf + len, cap - len, "%s",
                 n_warnings ? " The table of section 2 is therefore not the poster's result as "
                              "it stands: read it with the warnings below."
                            : " No check failed: the table of section 2 can be read as the "
                              "poster's result.");
}

static int warnings_note(cbq_report *r, const cJSON *warnings, cbq_error *err)
{
    char text[16384];
    size_t len = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, warnings)
        if (cJSON_IsString(w) && len < sizeof text) {
            /* a warning as a sentence: capital first letter, final stop */
            int n = snprintf(text + len, sizeof text - len, "%sWarning: %s.", len ? "\n\n" : "",
                             w->valuestring);
            len += n > 0 ? (size_t)n : 0;
        }
    return cbq_report_note(r, text, err);
}

enum { VERDICT_COLS = 9, CELL = 32 };

static void cell_num(char *buf, double v, const char *fmt)
{
    if (isfinite(v))
        snprintf(buf, CELL, fmt, v);
    else
        snprintf(buf, CELL, "n/a");
}

static int numbers_table(cbq_report *r, const cJSON *cats, cbq_error *err)
{
    static const char *const header[VERDICT_COLS] = {
        "category", "n", "MAE", "baseline MAE", "Wilcoxon p (one-sided)", "beats baseline",
        "SD pred / SD consensus", "rho(AE, consensus)", "rho(AE, n_slices)"};
    size_t i = 0;
    char cells[STUDY_MAX_CATEGORIES][VERDICT_COLS][CELL];
    const char *ptr[STUDY_MAX_CATEGORIES * VERDICT_COLS];
    const cJSON *c;
    cJSON_ArrayForEach(c, cats) {
        if (i >= STUDY_MAX_CATEGORIES)
            break;
        char(*row)[CELL] = cells[i];
        snprintf(row[0], CELL, "%.31s", c->string);
        cell_num(row[1], item_num(c, "n"), "%.0f");
        cell_num(row[2], item_num(c, "mae"), "%.3f");
        cell_num(row[3], item_num(c, "baseline_mae"), "%.3f");
        cbq_format_p(row[4], CELL, item_num(cJSON_GetObjectItemCaseSensitive(c, "wilcoxon"), "p"));
        snprintf(row[5], CELL, "%s",
                 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "beats_baseline")) ? "yes" : "no");
        cell_num(row[6], item_num(c, "sd_ratio"), "%.3g");
        cbq_format_rho(row[7], CELL, item_num(c, "rho_ae_consensus"));
        cbq_format_rho(row[8], CELL, item_num(c, "rho_ae_n_slices"));
        for (int j = 0; j < VERDICT_COLS; j++)
            ptr[i * VERDICT_COLS + (size_t)j] = row[j];
        i++;
    }
    return cbq_report_table(r, "verdict", "The numbers behind the verdict, per category (test "
                            "split; stats/stats.json \"verdict\"). Baseline: the training split's "
                            "mean consensus.", VERDICT_COLS, header, i, ptr, err);
}

int report_verdict_section(cbq_report *r, const study_ctx *ctx, size_t *n_warnings,
                           cbq_error *err)
{
    cJSON *root = NULL;
    const cJSON *v = NULL;
    CBQ_TRY(study_verdict_load(ctx, &root, &v, err));
    const cJSON *warnings = cJSON_GetObjectItemCaseSensitive(v, "warnings");
    *n_warnings = (size_t)cJSON_GetArraySize(warnings);
    char words[2048];
    verdict_words(v, *n_warnings, words, sizeof words);
    int rc = cbq_report_section(r, "Verdict: does the model learn, and does AE mean anything?", err);
    if (rc == CBQ_OK)
        rc = cbq_report_paragraph(r, words, err);
    if (rc == CBQ_OK && *n_warnings)
        rc = warnings_note(r, warnings, err);
    if (rc == CBQ_OK)
        rc = numbers_table(r, cJSON_GetObjectItemCaseSensitive(v, "categories"), err);
    cJSON_Delete(root);
    return rc;
}
