/* stage_consensus.c - stage 2: the weighted consensus per volume and
 * category (consensus.csv, formats.md) and how well the raters agree
 * (agreement.csv per category, rater_agreement.csv per rater). */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cbctiq/csv.h"
#include "cbctiq/ratings_csv.h"

static long find_category(const cbq_ratings *r, const char *name)
{
    for (size_t c = 0; c < r->n_categories; c++)
        if (strcmp(r->categories[c], name) == 0)
            return (long)c;
    return -1;
}

static int write_agreement(const study_ctx *ctx, const cbq_ratings *r, const size_t *cats,
                           double *mean_icc, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32], path2[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "agreement.csv", path, sizeof path, err));
    CBQ_TRY(study_output_path(ctx, "rater_agreement.csv", path2, sizeof path2, err));
    static const char *const h1[] = {"category", "n_raters", "n_complete", "icc2_1", "icc2_k",
                                     "icc3_1", "alpha_interval", "alpha_ordinal", "kendall_w",
                                     "kendall_w_p"};
    static const char *const h2[] = {"category", "rater", "weight", "n", "rho", "p"};
    cbq_csv_writer w1, w2;
    CBQ_TRY(cbq_csv_writer_open(&w1, path, h1, 10, err));
    int rc = cbq_csv_writer_open(&w2, path2, h2, 6, err);
    if (rc != CBQ_OK) {
        cbq_csv_writer_abort(&w1);
        return rc;
    }
    double icc_sum = 0;
    size_t icc_n = 0;
    for (size_t k = 0; k < ctx->n_categories && rc == CBQ_OK; k++) {
        cbq_agreement a;
        if ((rc = cbq_agreement_compute(r, cats[k], &a, err)) != CBQ_OK)
            break;
        cbq_csv_put_str(&w1, ctx->categories[k]);
        cbq_csv_put_int(&w1, (long long)a.n_raters);
        cbq_csv_put_int(&w1, (long long)a.n_complete);
        cbq_csv_put_double(&w1, a.icc.icc2_1);
        cbq_csv_put_double(&w1, a.icc.icc2_k);
        cbq_csv_put_double(&w1, a.icc.icc3_1);
        cbq_csv_put_double(&w1, a.alpha_interval);
        cbq_csv_put_double(&w1, a.alpha_ordinal);
        cbq_csv_put_double(&w1, a.kw.w);
        cbq_csv_put_double(&w1, a.kw.p);
        rc = cbq_csv_end_row(&w1, err);
        if (isfinite(a.icc.icc2_1)) {
            icc_sum += a.icc.icc2_1;
            icc_n++;
        }
        for (size_t j = 0; j < a.n_raters && rc == CBQ_OK; j++) {
            cbq_csv_put_str(&w2, ctx->categories[k]);
            cbq_csv_put_str(&w2, r->raters[a.rater[j]]);
            cbq_csv_put_double(&w2, r->weight[a.rater[j]]);
            cbq_csv_put_int(&w2, (long long)a.rater_rho[j].n);
            cbq_csv_put_double(&w2, a.rater_rho[j].r);
            cbq_csv_put_double(&w2, a.rater_rho[j].p);
            rc = cbq_csv_end_row(&w2, err);
        }
        cbq_agreement_free(&a);
    }
    if (rc == CBQ_OK)
        rc = cbq_csv_writer_commit(&w1, err);
    else
        cbq_csv_writer_abort(&w1);
    if (rc == CBQ_OK)
        rc = cbq_csv_writer_commit(&w2, err);
    else
        cbq_csv_writer_abort(&w2);
    *mean_icc = icc_n ? icc_sum / (double)icc_n : NAN;
    return rc;
}

/* The sheet's categories, "a, b, c" (cut short when they do not fit). */
static void list_categories(const cbq_ratings *r, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (size_t c = 0, used = 0; c < r->n_categories && used < cap; c++) {
        int n = snprintf(buf + used, cap - used, "%s%s", c ? ", " : "", r->categories[c]);
        used += n > 0 ? (size_t)n : 0;
    }
}

/* cats[k]: the index in r of the study's category k; each must have ratings. */
static int find_categories(const study_ctx *ctx, const cbq_ratings *r, const char *ratings,
                           size_t *cats, cbq_error *err)
{
    for (size_t k = 0; k < ctx->n_categories; k++) {
        long c = find_category(r, ctx->categories[k]);
        if (c < 0) {
            char have[512];
            list_categories(r, have, sizeof have);
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: no ratings in category '%s' (categories option); the sheet "
                            "rates %s",
                            ratings, ctx->categories[k], have);
        }
        cats[k] = (size_t)c;
    }
    return CBQ_OK;
}

static int write_consensus(const study_ctx *ctx, const cbq_ratings *r, cbq_error *err)
{
    char out[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "consensus.csv", out, sizeof out, err));
    cbq_consensus *table;
    CBQ_TRY(cbq_consensus_table(r, &table, err));
    int rc = cbq_consensus_write(r, table, out, err);
    free(table);
    return rc;
}

static int consensus_outputs(study_ctx *ctx, const cbq_ratings *r, const char *ratings,
                             double *mean_icc, cbq_error *err)
{
    size_t cats[STUDY_MAX_CATEGORIES];
    CBQ_TRY(find_categories(ctx, r, ratings, cats, err));
    CBQ_TRY(write_consensus(ctx, r, err));
    return write_agreement(ctx, r, cats, mean_icc, err);
}

int study_stage_consensus(study_ctx *ctx, cbq_error *err)
{
    char ratings[CBQ_STUDY_PATH_MAX + 32], raters[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_COHORT, "ratings.csv", ratings, sizeof ratings, err));
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_COHORT, "raters.csv", raters, sizeof raters, err));
    struct stat st;
    int have_raters = stat(raters, &st) == 0;
    cbq_ratings r;
    CBQ_TRY(cbq_ratings_read(&r, ratings, have_raters ? raters : NULL, err));
    char shown[CBQ_STUDY_PATH_MAX + 32];
    study_ratings_shown(ctx, ratings, shown, sizeof shown);
    double mean_icc = NAN;
    int rc = consensus_outputs(ctx, &r, shown, &mean_icc, err);
    snprintf(ctx->summary, sizeof ctx->summary,
             "%zu volumes x %zu categories from %zu raters; mean ICC(2,1) %.2f", r.n_volumes,
             ctx->n_categories, r.n_raters, mean_icc);
    cbq_ratings_free(&r);
    return rc;
}
