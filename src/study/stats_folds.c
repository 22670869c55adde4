/* stats_folds.c - what the stats stage adds under cohort.folds and
 * train.repeats: rho(AE, consensus) per fold (each fold's own model made
 * those AE values, so a fold whose rho stands apart shows a model that
 * learned differently), and the spread over training seeds of rho(AE,
 * consensus) and of the model's test rho (one seed is not a result). The
 * headline statistics stay those of stats.json's main entries, on all n
 * volumes with the ensemble AE. */
#define _POSIX_C_SOURCE 200809L
#include "study/stats_folds.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/ae_table.h"
#include "cbctiq/stats.h"

/* {"fold": f, "n": n, "rho": r} of one fold; rho null when undefined (fewer
 * than 3 volumes, or a constant). No p: a fold holds n/K volumes, too few
 * for one to mean much; the headline p is on all n. */
static cJSON *fold_item(const double *x, const double *y, size_t n, int fold)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cbq_corr c = {.r = NAN};
    cbq_error e;
    if (n < 3 || cbq_spearman(x, y, n, &c, &e) != CBQ_OK)
        c.r = NAN;
    int ok = cJSON_AddNumberToObject(o, "fold", fold) &&
             cJSON_AddNumberToObject(o, "n", (double)n) &&
             (isfinite(c.r) ? cJSON_AddNumberToObject(o, "rho", c.r) != NULL
                            : cJSON_AddNullToObject(o, "rho") != NULL);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static long cohort_index(const cbq_cohort *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].id, id) == 0)
            return (long)i;
    return -1;
}

static cJSON *category_of(cJSON *stats, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(stats, "categories"),
                                            name);
}

/* "folds": [{"fold": f, "n": n, "rho": r}, ...] per category. */
static int add_folds(const study_ctx *ctx, const ae_table *t, const int *fold, cJSON *stats,
                     cbq_error *err)
{
    int K = ctx->cfg->cohort.folds;
    double *x = malloc((2 * t->cohort.n + 1) * sizeof *x), *y = x ? x + t->cohort.n : NULL;
    if (!x)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    int rc = CBQ_OK;
    for (size_t k = 0; k < ctx->n_categories && rc == CBQ_OK; k++) {
        const ae_category *ac = &t->cat[k];
        cJSON *list = cJSON_AddArrayToObject(category_of(stats, ctx->categories[k]), "folds");
        for (int f = 1; f <= K && list; f++) {
            size_t n = 0;
            for (size_t i = 0; i < ac->n; i++) {
                long v = cohort_index(&t->cohort, ac->volumes[i]);
                if (v >= 0 && fold[v] == f) {
                    x[n] = ac->ae[i];
                    y[n++] = ac->consensus[i];
                }
            }
            cJSON *item = fold_item(x, y, n, f);
            if (!item || !cJSON_AddItemToArray(list, item)) {
                cJSON_Delete(item);
                list = NULL;
            }
        }
        if (!list)
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    }
    free(x);
    return rc;
}

/* {"values": [...], "median": m, "min": a, "max": b} of the finite values. */
static cJSON *spread(const double *v, size_t n)
{
    cJSON *o = cJSON_CreateObject(), *values = o ? cJSON_AddArrayToObject(o, "values") : NULL;
    double *sorted = malloc((n + 1) * sizeof *sorted);
    size_t m = 0;
    int ok = values && sorted;
    for (size_t i = 0; i < n && ok; i++) {
        cJSON *item = isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull();
        ok = item && cJSON_AddItemToArray(values, item);
        if (isfinite(v[i]))
            sorted[m++] = v[i];
    }
    for (size_t i = 1; i < m; i++) /* insertion sort: a few seeds */
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            double tmp = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = tmp;
        }
    double med = m ? (m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2])) : NAN;
    static const char *const keys[] = {"median", "min", "max"};
    double vals[3] = {med, m ? sorted[0] : NAN, m ? sorted[m - 1] : NAN};
    for (int i = 0; i < 3 && ok; i++)
        ok = isfinite(vals[i]) ? cJSON_AddNumberToObject(o, keys[i], vals[i]) != NULL
                               : cJSON_AddNullToObject(o, keys[i]) != NULL;
    free(sorted);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Seed r's rho(AE, consensus) and rho(pred, consensus) per category, from
 * attrib/seeds/ae_seed<r>.csv on the volumes of the headline statistics. */
static int seed_rhos(const study_ctx *ctx, const ae_table *t, int r, double *rho_ae,
                     double *rho_pred, cbq_error *err)
{
    char name[64], path[CBQ_STUDY_PATH_MAX + 64];
    snprintf(name, sizeof name, "seeds/ae_seed%d.csv", r);
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_ATTRIB, name, path, sizeof path, err));
    cbq_ae_table ae;
    CBQ_TRY(cbq_ae_table_read(&ae, path, err));
    double *buf = malloc((3 * t->cohort.n + 1) * sizeof *buf);
    int rc = buf ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < ctx->n_categories && rc == CBQ_OK; k++) {
        const ae_category *ac = &t->cat[k];
        double *x = buf, *p = buf + ac->n;
        for (size_t i = 0; i < ac->n && rc == CBQ_OK; i++) {
            long row = cbq_ae_table_find(&ae, ac->volumes[i], ctx->categories[k]);
            if (row < 0)
                rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no AE for volume '%s', category '%s'",
                              path, ac->volumes[i], ctx->categories[k]);
            else {
                x[i] = ae.rows[row].ae;
                p[i] = ae.rows[row].pred;
            }
        }
        cbq_corr c;
        cbq_error e; /* an undefined rho (a constant) is NaN here, null in stats.json */
        int ok = rc == CBQ_OK && cbq_spearman(x, ac->consensus, ac->n, &c, &e) == CBQ_OK;
        rho_ae[k] = ok ? c.r : NAN;
        ok = rc == CBQ_OK && cbq_spearman(p, ac->consensus, ac->n, &c, &e) == CBQ_OK;
        rho_pred[k] = ok ? c.r : NAN;
    }
    free(buf);
    cbq_ae_table_free(&ae);
    return rc;
}

/* "repeats": {"rho": spread, "test_rho": spread} per category. */
static int add_repeats(const study_ctx *ctx, const ae_table *t, cJSON *stats, cbq_error *err)
{
    size_t R = (size_t)ctx->cfg->train.repeats, K = ctx->n_categories;
    double *rho_ae = malloc(2 * R * K * sizeof *rho_ae), *rho_pred = rho_ae + R * K;
    if (!rho_ae)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    int rc = CBQ_OK;
    for (size_t r = 0; r < R && rc == CBQ_OK; r++)
        rc = seed_rhos(ctx, t, (int)r + 1, rho_ae + r * K, rho_pred + r * K, err);
    double *col = malloc(R * sizeof *col);
    if (rc == CBQ_OK && !col)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < K && rc == CBQ_OK; k++) {
        cJSON *rep = cJSON_AddObjectToObject(category_of(stats, ctx->categories[k]), "repeats");
        static const char *const keys[] = {"rho", "test_rho"};
        const double *from[] = {rho_ae, rho_pred};
        for (int which = 0; which < 2 && rc == CBQ_OK; which++) {
            for (size_t r = 0; r < R; r++)
                col[r] = from[which][r * K + k];
            cJSON *item = rep ? spread(col, R) : NULL;
            if (!item || !cJSON_AddItemToObject(rep, keys[which], item)) {
                cJSON_Delete(item); /* not added: still ours */
                rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
            }
        }
    }
    free(col);
    free(rho_ae);
    return rc;
}

/* "cross_validation": {"folds": K, "repeats": R, "seeds": ["...", ...]}
 * (seeds as text: a 64-bit seed does not fit a JSON number exactly). */
static int add_design(const study_ctx *ctx, cJSON *stats, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    cJSON *cv = cJSON_AddObjectToObject(stats, "cross_validation");
    cJSON *seeds = cv && cJSON_AddNumberToObject(cv, "folds", cfg->cohort.folds) &&
                           cJSON_AddNumberToObject(cv, "repeats", cfg->train.repeats)
                       ? cJSON_AddArrayToObject(cv, "seeds") : NULL;
    for (int r = 1; r <= cfg->train.repeats && seeds; r++) {
        char text[32];
        snprintf(text, sizeof text, "%llu", (unsigned long long)study_repeat_seed(cfg->seed, r));
        cJSON *item = cJSON_CreateString(text);
        if (!item || !cJSON_AddItemToArray(seeds, item)) {
            cJSON_Delete(item);
            seeds = NULL;
        }
    }
    return seeds ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
}

int study_stats_folds(const study_ctx *ctx, const ae_table *t, cJSON *stats, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    if (cfg->cohort.folds <= 0 && cfg->train.repeats <= 1)
        return CBQ_OK;
    CBQ_TRY(add_design(ctx, stats, err));
    if (cfg->cohort.folds > 0) {
        int *fold = malloc((t->cohort.n + 1) * sizeof *fold);
        if (!fold)
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
        int rc = study_read_folds(ctx, &t->cohort, fold, err);
        if (rc == CBQ_OK)
            rc = add_folds(ctx, t, fold, stats, err);
        free(fold);
        CBQ_TRY(rc);
    }
    return cfg->train.repeats > 1 ? add_repeats(ctx, t, stats, err) : CBQ_OK;
}

static const char *const REPEAT_COLUMNS[] = {"rho_seeds_median", "rho_seeds_min",
                                             "rho_seeds_max", "test_rho_seeds_median",
                                             "test_rho_seeds_min", "test_rho_seeds_max"};

const char *study_repeat_column(size_t i)
{
    return i < sizeof REPEAT_COLUMNS / sizeof REPEAT_COLUMNS[0] ? REPEAT_COLUMNS[i] : NULL;
}

double study_repeat_value(const cJSON *stats, const char *category, size_t i)
{
    static const char *const which[] = {"rho", "test_rho"};
    static const char *const stat[] = {"median", "min", "max"};
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(stats, "categories"), category);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "repeats"),
                                         which[i / 3]),
        stat[i % 3]);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}
