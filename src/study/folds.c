/* folds.c - k-fold cross-validation and repeated seeds for the study: which
 * folds and repeats a stage runs over, where each model run lives, the
 * seeded stratified fold assignment and each fold's train/val/test split.
 * The statistics over folds and seeds are in stats_folds.c. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/csv.h"
#include "cbctiq/rng.h"

int study_first_fold(const cbq_study_config *cfg) { return cfg->cohort.folds > 0 ? 1 : 0; }

int study_last_fold(const cbq_study_config *cfg) { return cfg->cohort.folds; }

uint64_t study_repeat_seed(uint64_t seed, int repeat)
{
    if (repeat <= 1)
        return seed;
    cbq_rng rng;
    cbq_rng_stream(&rng, seed, 0x5EED0000u + (uint64_t)repeat);
    return cbq_rng_u64(&rng);
}

void study_run_prefix(const cbq_study_config *cfg, int fold, int repeat, char *buf, size_t cap)
{
    char f[32] = "", r[32] = "";
    if (fold > 0)
        snprintf(f, sizeof f, "fold%d/", fold);
    if (cfg->train.repeats > 1)
        snprintf(r, sizeof r, "seed%d/", repeat);
    snprintf(buf, cap, "%s%s", f, r);
}

void study_fold_cohort_name(int fold, char *buf, size_t cap)
{
    if (fold > 0)
        snprintf(buf, cap, "fold%d/cohort.csv", fold);
    else
        snprintf(buf, cap, "cohort.csv");
}

int study_run_model_dir(const study_ctx *ctx, int fold, int repeat, char *buf, size_t cap,
                        cbq_error *err)
{
    char name[96];
    study_run_prefix(ctx->cfg, fold, repeat, name, sizeof name - 8);
    strcat(name, "model");
    return study_input_path(ctx, CBQ_STAGE_TRAIN, name, buf, cap, err);
}

typedef struct {
    double stratum;
    size_t order; /* the volume's place in a seeded shuffle: breaks ties */
    size_t index;
} ranked_volume;

static int by_stratum(const void *pa, const void *pb)
{
    const ranked_volume *a = pa, *b = pb;
    int na = isnan(a->stratum), nb = isnan(b->stratum);
    if (na != nb)
        return na - nb; /* unrated volumes last */
    if (!na && a->stratum != b->stratum)
        return a->stratum < b->stratum ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

int study_assign_folds(const double *stratum, size_t n, int K, uint64_t seed, int *fold,
                       cbq_error *err)
{
    if (K < 2 || (size_t)K > n)
        return CBQ_FAIL(err, CBQ_ERR_RANGE,
                        "cohort.folds: %d folds for %zu volumes; expected 2 <= K <= %zu", K, n, n);
    ranked_volume *rv = malloc(n * sizeof *rv);
    size_t *shuffle = malloc((n + (size_t)K) * sizeof *shuffle), *deal = shuffle + n;
    if (!rv || !shuffle) {
        free(rv);
        free(shuffle);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    }
    cbq_rng rng;
    cbq_rng_stream(&rng, seed, 0xF01Du);
    for (size_t i = 0; i < n; i++)
        shuffle[i] = i;
    cbq_rng_shuffle_size(&rng, shuffle, n);
    for (size_t r = 0; r < n; r++)
        rv[shuffle[r]] = (ranked_volume){.stratum = stratum[shuffle[r]], .order = r,
                                         .index = shuffle[r]};
    qsort(rv, n, sizeof *rv, by_stratum);
    for (size_t at = 0; at < n; at += (size_t)K) {
        for (int f = 0; f < K; f++)
            deal[f] = (size_t)f + 1;
        cbq_rng_shuffle_size(&rng, deal, (size_t)K);
        for (size_t j = 0; j < (size_t)K && at + j < n; j++)
            fold[rv[at + j].index] = (int)deal[j];
    }
    free(rv);
    free(shuffle);
    return CBQ_OK;
}

int study_fold_split(const int *fold, size_t n, int f, double split_train, double split_val,
                     uint64_t seed, cbq_split *split, cbq_error *err)
{
    size_t *rest = malloc((n + 1) * sizeof *rest), m = 0;
    if (!rest)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        split[i] = fold[i] == f ? CBQ_SPLIT_TEST : CBQ_SPLIT_TRAIN;
        if (fold[i] != f)
            rest[m++] = i;
    }
    cbq_rng rng;
    cbq_rng_stream(&rng, seed, 0xF01D0000u + (uint64_t)f);
    cbq_rng_shuffle_size(&rng, rest, m);
    double share = split_val / (split_train + split_val);
    size_t n_val = (size_t)((double)m * share + 0.5);
    if (n_val + 2 > m)
        n_val = m >= 2 ? m - 2 : 0;
    for (size_t j = 0; j < n_val; j++)
        split[rest[j]] = CBQ_SPLIT_VAL;
    free(rest);
    return CBQ_OK;
}

int study_read_folds(const study_ctx *ctx, const cbq_cohort *c, int *fold, cbq_error *err)
{
    for (size_t i = 0; i < c->n; i++)
        fold[i] = 0;
    if (ctx->cfg->cohort.folds <= 0)
        return CBQ_OK;
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_COHORT, "folds.csv", path, sizeof path, err));
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, path, err));
    size_t cv, cf;
    int rc = cbq_csv_require_col(&t, "volume_id", &cv, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "fold", &cf, err);
    for (size_t r = 0; r < t.n_rows && rc == CBQ_OK; r++) {
        const char *id = cbq_csv_cell(&t, r, cv);
        size_t i = 0;
        while (i < c->n && strcmp(c->v[i].id, id) != 0)
            i++;
        long long f = 0;
        rc = cbq_csv_get_int(&t, r, cf, &f, err);
        if (rc == CBQ_OK && (i == c->n || f < 1 || f > ctx->cfg->cohort.folds))
            rc = cbq_csv_fail(&t, r, cf, err, CBQ_ERR_FORMAT,
                              "expected a volume of cohort.csv and a fold in 1..%d",
                              ctx->cfg->cohort.folds);
        if (rc == CBQ_OK)
            fold[i] = (int)f;
    }
    for (size_t i = 0; i < c->n && rc == CBQ_OK; i++)
        if (fold[i] == 0)
            rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no fold for volume '%s'", path, c->v[i].id);
    cbq_csv_free(&t);
    return rc;
}
