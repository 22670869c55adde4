/* verdict.c - whether the study's numbers mean anything: stats.json's
 * "verdict". Per category, on the test volumes the statistics use: does the
 * model beat the constant predictor that always says the training split's
 * mean consensus (one-sided Wilcoxon signed-rank test of the paired
 * absolute errors), is its prediction nearly constant, does AE follow the
 * slice count more than the consensus, is AE defined at all, and are there
 * enough volumes for the leave-one-out, bootstrap, partial and atypical
 * numbers. Every failed check becomes one warning (one line per kind,
 * naming the categories). The printed verdict is read back from stats.json,
 * so a cached rerun says exactly what the first run said. The rules and
 * thresholds are in docs/statistics.md, "The verdict". */
#define _POSIX_C_SOURCE 200809L
#include "study/verdict.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/correlate.h"
#include "cbctiq/stats.h"
#include "cbctiq/text_file.h"
#include "cbctiq/wilcoxon.h"

/* The model beats the baseline in a category when the one-sided p is below
 * this and its prediction is not nearly constant; "beats" overall needs
 * every category (an intersection-union test, so no multiplicity
 * correction). */
#define VERDICT_ALPHA 0.05
/* Nearly constant: SD of the test predictions below this share of the SD of
 * the test consensus. */
#define CONSTANT_SD_RATIO 0.1
/* AE tracks the slice count when abs(rho(AE, n_slices)) reaches this and is
 * at least abs(rho(AE, consensus)). */
#define SLICE_RHO_MIN 0.5

typedef struct {
    size_t n;
    double baseline, mae, baseline_mae;
    cbq_wilcoxon test;
    int beats;
    double sd_pred, sd_consensus, sd_ratio;
    int varies;
    double rho_consensus, rho_n_slices;
    int tracks_slices;
    const char *ae_problem; /* NULL when AE is usable */
    long partial_df;
    size_t n_covariates;
} cat_verdict;

/* ---- the checks ---- */

static double mean_of(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return n ? s / (double)n : NAN;
}

/* Sample SD (n - 1 in the denominator); 0 for a single value. */
static double sd_of(const double *v, size_t n)
{
    if (n < 2)
        return 0;
    double m = mean_of(v, n), ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (v[i] - m) * (v[i] - m);
    return sqrt(ss / (double)(n - 1));
}

static int all_equal(const double *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (v[i] != v[0])
            return 0;
    return 1;
}

static const char *ae_problem(const double *ae, size_t n)
{
    size_t zero = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(ae[i]))
            return "missing or not finite for some test volume";
        zero += ae[i] == 0;
    }
    if (n && zero == n)
        return "zero for every test volume: the maps are empty";
    if (n > 1 && all_equal(ae, n))
        return "the same for every test volume";
    return NULL;
}

/* Mean consensus of the training split in category k: the constant the
 * baseline predicts (as the evaluate stage's metrics.csv baseline_pred).
 * check_category takes one baseline per test volume, so that a volume
 * tested in a fold can be given the mean of that fold's training volumes. */
/* Mean consensus in category k of the training split of cohort c (whose
 * volumes are in the study cohort's order). */
static double training_mean(const cbq_cohort *c, const double *cons, size_t K, size_t k)
{
    double s = 0;
    size_t n = 0;
    for (size_t v = 0; v < c->n; v++)
        if (c->v[v].split == CBQ_SPLIT_TRAIN && isfinite(cons[v * K + k])) {
            s += cons[v * K + k];
            n++;
        }
    return n ? s / (double)n : NAN;
}

/* The constant predictor of each test volume of category k, as the
 * evaluate stage's baseline: the mean consensus of the training split its
 * model learnt from, under cohort.folds its own fold's (fold[v], read from
 * cohort/fold<f>/cohort.csv). */
static int fill_baseline(const study_ctx *ctx, const ae_table *t, const double *cons,
                         const int *fold, size_t k, double *baseline, cbq_error *err)
{
    size_t K = t->n_categories;
    const ae_category *ac = &t->cat[k];
    for (int f = study_first_fold(ctx->cfg); f <= study_last_fold(ctx->cfg); f++) {
        cbq_cohort fc;
        if (f > 0)
            CBQ_TRY(study_read_fold_cohort(ctx, f, 0, &fc, err));
        double mean = training_mean(f > 0 ? &fc : &t->cohort, cons, K, k);
        if (f > 0)
            cbq_cohort_free(&fc);
        for (size_t i = 0; i < ac->n; i++)
            for (size_t v = 0; v < t->cohort.n; v++)
                if (fold[v] == f && strcmp(t->cohort.v[v].id, ac->volumes[i]) == 0)
                    baseline[i] = mean;
    }
    return CBQ_OK;
}

/* baseline[i]: the constant predicted for test volume i. */
static int baseline_test(const ae_category *ac, const double *baseline, cat_verdict *cv,
                         cbq_error *err)
{
    size_t n = ac->n;
    double *e_model = malloc((2 * n + 1) * sizeof *e_model), *e_base = e_model + n;
    if (!e_model)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        e_model[i] = fabs(ac->pred[i] - ac->consensus[i]);
        e_base[i] = fabs(baseline[i] - ac->consensus[i]);
    }
    cv->baseline = mean_of(baseline, n);
    cv->mae = mean_of(e_model, n);
    cv->baseline_mae = mean_of(e_base, n);
    int rc = cbq_wilcoxon_signed_rank(e_model, e_base, n, CBQ_ALT_LESS, &cv->test, err);
    if (rc == CBQ_OK && !isfinite(cv->baseline))
        cv->test.reason = "no training volume has a consensus score";
    free(e_model);
    return rc;
}

static int check_category(const ae_category *ac, const double *baseline, cat_verdict *cv,
                          cbq_error *err)
{
    memset(cv, 0, sizeof *cv);
    cv->n = ac->n;
    CBQ_TRY(baseline_test(ac, baseline, cv, err));
    cv->sd_pred = sd_of(ac->pred, ac->n);
    cv->sd_consensus = sd_of(ac->consensus, ac->n);
    cv->sd_ratio = cv->sd_consensus > 0 ? cv->sd_pred / cv->sd_consensus : NAN;
    cv->varies = cv->sd_consensus > 0 ? cv->sd_ratio >= CONSTANT_SD_RATIO : cv->sd_pred > 0;
    /* A nearly constant prediction is itself a constant predictor: landing
     * closer to the test consensus than the training mean does is luck,
     * not learning. */
    cv->beats = cv->test.p < VERDICT_ALPHA && cv->varies;
    cv->ae_problem = ae_problem(ac->ae, ac->n);
    cbq_corr c;
    CBQ_TRY(cbq_spearman(ac->ae, ac->consensus, ac->n, &c, err));
    cv->rho_consensus = c.r;
    CBQ_TRY(cbq_spearman(ac->ae, ac->n_slices, ac->n, &c, err));
    cv->rho_n_slices = c.r;
    cv->tracks_slices = isfinite(cv->rho_n_slices) && fabs(cv->rho_n_slices) >= SLICE_RHO_MIN &&
                        !(fabs(cv->rho_consensus) > fabs(cv->rho_n_slices));
    /* the stats stage's partial: given the prediction, and the slice count
     * where it varies */
    cv->n_covariates = all_equal(ac->n_slices, ac->n) ? 1 : 2;
    cv->partial_df = (long)ac->n - 2 - (long)cv->n_covariates;
    return CBQ_OK;
}

/* ---- warnings: one line per kind, listing its categories ---- */

enum { W_BASELINE, W_CONSTANT, W_SLICES, W_AE, W_SMALL_N, W_PARTIAL, W_KINDS };

static const char *const W_LEAD[W_KINDS] = {
    [W_BASELINE] = "the model does not beat the constant training-mean predictor in ",
    [W_CONSTANT] = "the model's prediction is nearly constant in ",
    [W_SLICES] = "AE tracks the slice count in ",
    [W_AE] = "AE is undefined in ",
    [W_SMALL_N] = "few test volumes in ",
    [W_PARTIAL] = "no partial correlation of AE and consensus in ",
};

static const char *const W_TAIL[W_KINDS] = {
    [W_BASELINE] = " (one-sided Wilcoxon signed-rank test of the paired absolute errors, "
                   "alpha 0.05): there the model is not shown to have learned the score, so its "
                   "AE cannot be read as what it learned",
    [W_CONSTANT] = " (SD of the test predictions below 10% of the consensus SD): AE then "
                   "follows the slice count and the map's shape, not the model's rating",
    [W_SLICES] = ": rho(AE, consensus) may only restate how many slices the volumes have",
    [W_AE] = ": its correlations are null in stats.json",
    [W_SMALL_N] = ", fewer than 10: the leave-one-out, bootstrap and Fisher intervals rest on "
                  "too few volumes to be trusted, and the atypical stage flags none",
    [W_PARTIAL] = ": below 3 degrees of freedom (n - 2 - covariates) it is null in stats.json",
};

typedef struct {
    char text[W_KINDS][2048];
    size_t len[W_KINDS];
} warn_lists;

static void warn_item(warn_lists *w, int kind, const char *fmt, ...)
{
    char *buf = w->text[kind];
    size_t cap = sizeof w->text[kind], len = w->len[kind];
    if (len + 1 >= cap)
        return;
    int n = snprintf(buf + len, cap - len, "%s", len ? ", " : "");
    len += n > 0 ? (size_t)n : 0;
    va_list ap;
    va_start(ap, fmt);
    n = len < cap ? vsnprintf(buf + len, cap - len, fmt, ap) : 0;
    va_end(ap);
    len += n > 0 ? (size_t)n : 0;
    w->len[kind] = len < cap ? len : cap - 1;
}

static void format_p(char *buf, size_t cap, const cbq_wilcoxon *t)
{
    if (t->reason)
        snprintf(buf, cap, "no test: %s", t->reason);
    else {
        char p[32];
        cbq_format_p(p, sizeof p, t->p);
        snprintf(buf, cap, "p %s", p);
    }
}

static void category_warnings(const char *cat, const cat_verdict *cv, warn_lists *w)
{
    if (!cv->beats) {
        char p[160];
        format_p(p, sizeof p, &cv->test);
        warn_item(w, W_BASELINE, "%s (MAE %.3g vs %.3g, %s%s)", cat, cv->mae, cv->baseline_mae, p,
                  !cv->varies && cv->test.p < VERDICT_ALPHA
                      ? ", but from a nearly constant prediction"
                  : cv->test.n_used < 5 && !cv->test.reason
                      ? "; fewer than 5 differing errors can never reach 0.05"
                      : "");
    }
    if (!cv->varies)
        warn_item(w, W_CONSTANT, "%s (SD %.2g, %.2g%% of the consensus SD %.2g)", cat, cv->sd_pred,
                  100 * cv->sd_ratio, cv->sd_consensus);
    if (cv->tracks_slices && !cv->ae_problem)
        warn_item(w, W_SLICES, "%s (rho(AE, n_slices) %.2f, rho(AE, consensus) %.2f)", cat,
                  cv->rho_n_slices, cv->rho_consensus);
    if (cv->ae_problem)
        warn_item(w, W_AE, "%s (%s)", cat, cv->ae_problem);
    if (cv->n < STUDY_SMALL_N)
        warn_item(w, W_SMALL_N, "%s (n = %zu)", cat, cv->n);
    if (cv->partial_df < CBQ_PARTIAL_MIN_DF)
        warn_item(w, W_PARTIAL, "%s (df %ld)", cat, cv->partial_df);
}

/* ---- stats.json ---- */

static cJSON *category_json(const cat_verdict *cv)
{
    cJSON *o = cJSON_CreateObject(), *t = cJSON_CreateObject();
    if (!o || !t || !cJSON_AddItemToObject(o, "wilcoxon", t)) {
        cJSON_Delete(o);
        cJSON_Delete(t);
        return NULL;
    }
    cJSON_AddNumberToObject(o, "n", (double)cv->n);
    cbq_json_add_number(o, "baseline_pred", cv->baseline);
    cbq_json_add_number(o, "mae", cv->mae);
    cbq_json_add_number(o, "baseline_mae", cv->baseline_mae);
    cJSON_AddStringToObject(t, "alternative", "less");
    cJSON_AddNumberToObject(t, "n_used", (double)cv->test.n_used);
    cbq_json_add_number(t, "w_plus", cv->test.w_plus);
    cbq_json_add_number(t, "w_minus", cv->test.w_minus);
    cbq_json_add_number(t, "z", cv->test.z);
    cbq_json_add_number(t, "p", cv->test.reason ? NAN : cv->test.p);
    cJSON_AddStringToObject(t, "p_method", cv->test.p_method);
    if (cv->test.reason)
        cJSON_AddStringToObject(t, "reason", cv->test.reason);
    cJSON_AddBoolToObject(o, "beats_baseline", cv->beats);
    cbq_json_add_number(o, "sd_pred", cv->sd_pred);
    cbq_json_add_number(o, "sd_consensus", cv->sd_consensus);
    cbq_json_add_number(o, "sd_ratio", cv->sd_ratio);
    cJSON_AddBoolToObject(o, "prediction_varies", cv->varies);
    cbq_json_add_number(o, "rho_ae_consensus", cv->rho_consensus);
    cbq_json_add_number(o, "rho_ae_n_slices", cv->rho_n_slices);
    cJSON_AddBoolToObject(o, "ae_tracks_slice_count", cv->tracks_slices && !cv->ae_problem);
    cJSON_AddBoolToObject(o, "ae_defined", !cv->ae_problem);
    if (cv->ae_problem)
        cJSON_AddStringToObject(o, "ae_reason", cv->ae_problem);
    cJSON_AddNumberToObject(o, "partial_df", (double)cv->partial_df);
    return o;
}

static cJSON *rules_json(void)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "alpha", VERDICT_ALPHA);
    cJSON_AddNumberToObject(o, "constant_sd_ratio", CONSTANT_SD_RATIO);
    cJSON_AddNumberToObject(o, "slice_rho_min", SLICE_RHO_MIN);
    cJSON_AddNumberToObject(o, "small_n", STUDY_SMALL_N);
    cJSON_AddNumberToObject(o, "partial_min_df", CBQ_PARTIAL_MIN_DF);
    return o;
}

static int add_warnings(cJSON *verdict, const warn_lists *w, size_t *n_warnings, cbq_error *err)
{
    cJSON *list = cJSON_AddArrayToObject(verdict, "warnings");
    if (!list)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    *n_warnings = 0;
    for (int k = 0; k < W_KINDS; k++) {
        if (!w->len[k])
            continue;
        char line[3072];
        snprintf(line, sizeof line, "%s%s%s", W_LEAD[k], w->text[k], W_TAIL[k]);
        if (!cJSON_AddItemToArray(list, cJSON_CreateString(line)))
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
        ++*n_warnings;
    }
    return CBQ_OK;
}

/* Checks every category into cats and w; all[0..2]: beats everywhere,
 * varies everywhere, tracks the slice count somewhere. */
static int check_categories(const study_ctx *ctx, const ae_table *t, const double *cons,
                            cJSON *cats, warn_lists *w, int all[3], cbq_error *err)
{
    all[0] = all[1] = 1;
    all[2] = 0;
    double *baseline = malloc((t->cohort.n + 1) * sizeof *baseline);
    int *fold = calloc(t->cohort.n + 1, sizeof *fold);
    int rc = baseline && fold ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK)
        rc = study_read_folds(ctx, &t->cohort, fold, err);
    for (size_t k = 0; k < ctx->n_categories && rc == CBQ_OK; k++) {
        cat_verdict cv;
        if ((rc = fill_baseline(ctx, t, cons, fold, k, baseline, err)) != CBQ_OK ||
            (rc = check_category(&t->cat[k], baseline, &cv, err)) != CBQ_OK)
            break;
        all[0] &= cv.beats;
        all[1] &= cv.varies;
        all[2] |= cv.tracks_slices && !cv.ae_problem;
        category_warnings(ctx->categories[k], &cv, w);
        cJSON *cj = category_json(&cv);
        if (!cj || !cJSON_AddItemToObject(cats, ctx->categories[k], cj)) {
            cJSON_Delete(cj);
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
        }
    }
    free(baseline);
    free(fold);
    return rc;
}

/* The verdict object: the three answers first (as formats.md lists them),
 * then the warnings, the per-category numbers and the rules. */
static int build_verdict(const study_ctx *ctx, const ae_table *t, const double *cons,
                         cJSON *verdict, size_t *n_warnings, int all[3], cbq_error *err)
{
    cJSON *cats = cJSON_CreateObject();
    warn_lists *w = calloc(1, sizeof *w);
    int rc = cats && w ? check_categories(ctx, t, cons, cats, w, all, err)
                       : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK) {
        cJSON_AddBoolToObject(verdict, "model_beats_baseline", all[0]);
        cJSON_AddBoolToObject(verdict, "prediction_varies", all[1]);
        cJSON_AddBoolToObject(verdict, "ae_tracks_slice_count", all[2]);
        rc = add_warnings(verdict, w, n_warnings, err);
    }
    if (rc == CBQ_OK && cJSON_AddItemToObject(verdict, "categories", cats))
        cats = NULL;
    else if (rc == CBQ_OK)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK && !cJSON_AddItemToObject(verdict, "rules", rules_json()))
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    cJSON_Delete(cats);
    free(w);
    return rc;
}

int study_verdict_add(const study_ctx *ctx, const ae_table *t, cJSON *stats, cbq_error *err)
{
    size_t K = ctx->n_categories;
    double *cons = malloc((t->cohort.n * K + 1) * sizeof *cons);
    cJSON *verdict = cJSON_CreateObject();
    int all[3] = {0, 0, 0};
    size_t n_warnings = 0;
    int rc = cons && verdict ? study_read_consensus(ctx, &t->cohort, cons, err)
                             : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK)
        rc = build_verdict(ctx, t, cons, verdict, &n_warnings, all, err);
    free(cons);
    if (rc == CBQ_OK && !cJSON_AddItemToObject(stats, "verdict", verdict))
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc != CBQ_OK) {
        cJSON_Delete(verdict);
        return rc;
    }
    return CBQ_OK;
}

void study_verdict_summary(const cJSON *stats, char *buf, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(stats, "verdict");
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(v, "warnings"));
    snprintf(buf, cap, "model beats the constant predictor: %s; %d warning%s",
             cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "model_beats_baseline")) ? "yes" : "no",
             n, n == 1 ? "" : "s");
}

/* ---- reading it back ---- */

int study_verdict_load(const study_ctx *ctx, cJSON **root, const cJSON **verdict,
                       cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_STATS, "stats.json", path, sizeof path, err));
    char *text = NULL;
    CBQ_TRY(cbq_read_text_file(path, 0, &text, NULL, err));
    *root = cJSON_Parse(text);
    free(text);
    if (!*root)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: not valid JSON", path);
    *verdict = cJSON_GetObjectItemCaseSensitive(*root, "verdict");
    if (!cJSON_IsObject(*verdict) ||
        !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(*verdict, "warnings")) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(*verdict, "categories"))) {
        cJSON_Delete(*root);
        *root = NULL;
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no \"verdict\" object with \"warnings\" and "
                        "\"categories\"", path);
    }
    return CBQ_OK;
}

/* How many categories have `key` true. */
static size_t count_true(const cJSON *verdict, const char *key)
{
    size_t n = 0;
    const cJSON *cat;
    cJSON_ArrayForEach(cat, cJSON_GetObjectItemCaseSensitive(verdict, "categories"))
        n += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cat, key));
    return n;
}

int study_print_verdict(const study_ctx *ctx, FILE *out, FILE *warn, cbq_error *err)
{
    cJSON *root = NULL;
    const cJSON *v = NULL;
    CBQ_TRY(study_verdict_load(ctx, &root, &v, err));
    size_t K = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(v, "categories"));
    const cJSON *warnings = cJSON_GetObjectItemCaseSensitive(v, "warnings"), *item;
    size_t n_warnings = (size_t)cJSON_GetArraySize(warnings);
    int beats = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "model_beats_baseline"));
    int varies = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "prediction_varies"));
    int tracks = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "ae_tracks_slice_count"));
    fprintf(out, "verdict: model beats the constant training-mean predictor: %s (beats it in %zu of %zu "
            "categories; one-sided Wilcoxon signed-rank test of the absolute errors, p < 0.05)\n",
            beats ? "yes" : "no", count_true(v, "beats_baseline"), K);
    fprintf(out, "verdict: prediction varies: %s (varies in %zu of %zu categories; nearly constant = SD "
            "below 10%% of the consensus SD)\n", varies ? "yes" : "no",
            count_true(v, "prediction_varies"), K);
    fprintf(out, "verdict: AE tracks the slice count: %s (tracks it in %zu of %zu categories)\n",
            tracks ? "yes" : "no", count_true(v, "ae_tracks_slice_count"), K);
    if (n_warnings)
        fprintf(out, "verdict: %zu warning%s (stderr, and stats.json \"verdict\"): read the table "
                "below with %s\n\n", n_warnings, n_warnings == 1 ? "" : "s",
                n_warnings == 1 ? "it" : "them");
    else
        fprintf(out, "verdict: no warnings\n\n");
    cJSON_ArrayForEach(item, warnings)
        if (cJSON_IsString(item))
            fprintf(warn, "warning: %s\n", item->valuestring);
    cJSON_Delete(root);
    return CBQ_OK;
}
