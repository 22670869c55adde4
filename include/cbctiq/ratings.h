/* ratings.h - statistics of expert ratings held in memory: the weighted
 * consensus per (volume, category) and inter-rater agreement (ICC,
 * Krippendorff's alpha, Kendall's W, each rater against the others). No file
 * I/O here: ratings_csv.h reads ratings.csv / raters.csv into a cbq_ratings
 * and writes consensus.csv.
 *
 *   cbq_ratings r;
 *   CBQ_TRY(cbq_ratings_read(&r, "ratings.csv", "raters.csv", err)); // ratings_csv.h
 *   cbq_consensus c;
 *   cbq_consensus_of(&r, cat, vol, CBQ_NO_RATER, &c);
 *   cbq_ratings_free(&r);
 */
#ifndef CBCTIQ_RATINGS_H
#define CBCTIQ_RATINGS_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/stats.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CBQ_SCORE_MIN 1.0
#define CBQ_SCORE_MAX 5.0
#define CBQ_NO_RATER ((size_t)-1)

/* The ratings as a dense table; filled and freed by ratings_csv.h. */
typedef struct {
    size_t n_volumes, n_raters, n_categories;
    char **volumes;     /* names in order of first appearance (owned) */
    char **raters;
    char **categories;
    double *weight;     /* n_raters; 1 when no raters.csv */
    double *score;      /* [category][volume][rater], NaN = not rated */
} cbq_ratings;

static inline double cbq_ratings_score(const cbq_ratings *r, size_t cat, size_t vol, size_t rater)
{
    return r->score[(cat * r->n_volumes + vol) * r->n_raters + rater];
}

typedef struct {
    double mean;      /* sum w s / sum w; NaN when nobody rated */
    double sd;        /* weighted sd (reliability weights); NaN when n < 2 */
    size_t n_raters;
} cbq_consensus;

/* Consensus of one (category, volume), leaving out rater `skip`
 * (CBQ_NO_RATER: nobody). sd = sqrt(sum w (s - mean)^2 / (V1 - V2 / V1)),
 * V1 = sum w, V2 = sum w^2: the usual sample sd for equal weights. */
void cbq_consensus_of(const cbq_ratings *r, size_t cat, size_t vol, size_t skip,
                      cbq_consensus *out);
/* The consensus of every (volume, category) with nobody left out, as
 * *table[volume * n_categories + category] (caller frees with free()). */
int cbq_consensus_table(const cbq_ratings *r, cbq_consensus **table, cbq_error *err);

/* ---- agreement (icc.c, krippendorff.c, kendall_w.c, agreement.c) ---- */
typedef struct {
    size_t n, k;                       /* targets, judges (complete data) */
    double bms, jms, ems;              /* mean squares of the two-way ANOVA */
    double icc2_1, icc2_k, icc3_1, icc3_k;
    const char *reason;                /* NULL when defined */
} cbq_icc;
/* ICCs of Shrout & Fleiss (1979) / McGraw & Wong (1996) for a complete
 * n x k matrix m (row-major, targets x judges). */
int cbq_icc_compute(const double *m, size_t n, size_t k, cbq_icc *out, cbq_error *err);

typedef enum { CBQ_ALPHA_INTERVAL, CBQ_ALPHA_ORDINAL } cbq_alpha_metric;
/* Krippendorff's alpha of units x coders (row-major, NaN = missing);
 * units with fewer than 2 values are not pairable and ignored. NaN with
 * *reason set when undefined. */
int cbq_krippendorff_alpha(const double *m, size_t n_units, size_t n_coders,
                           cbq_alpha_metric metric, double *alpha, const char **reason,
                           cbq_error *err);

typedef struct {
    double w, chi2, p;                 /* chi2 = k (n - 1) W, n - 1 df */
    size_t n, k;
    const char *reason;
} cbq_kendall_w;
/* Kendall's coefficient of concordance with tie correction, for a complete
 * n x k matrix (objects x raters; each rater's column is ranked). */
int cbq_kendall_w_compute(const double *m, size_t n, size_t k, cbq_kendall_w *out, cbq_error *err);

typedef struct {
    size_t category;
    size_t n_raters;          /* raters with a score in this category */
    size_t *rater;            /* their indices into cbq_ratings.raters */
    size_t n_complete;        /* volumes rated by all of them */
    cbq_icc icc;
    double alpha_interval, alpha_ordinal;
    const char *alpha_reason;
    cbq_kendall_w kw;
    cbq_corr *rater_rho;      /* per rater: Spearman with leave-that-rater-out consensus */
} cbq_agreement;
/* Agreement statistics of one category. Owns rater and rater_rho. */
int cbq_agreement_compute(const cbq_ratings *r, size_t cat, cbq_agreement *out, cbq_error *err);
void cbq_agreement_free(cbq_agreement *a);

/* Agreement of every category as a JSON object keyed by category (see
 * docs/statistics.md); caller frees with cJSON_Delete. */
struct cJSON;
int cbq_agreement_json(const cbq_ratings *r, struct cJSON **out, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
