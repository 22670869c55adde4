/* correlate.h - the study's statistics of one value against another, per
 * category, on values already paired by volume (table_join.h reads and joins
 * the tables): Spearman with its p-values, confidence intervals,
 * leave-one-out, Pearson, Kendall, partial Spearman and the multiple-testing
 * adjustment across categories, as a cJSON document (the stats.json of
 * docs/formats.md). No file I/O here. */
#ifndef CBCTIQ_CORRELATE_H
#define CBCTIQ_CORRELATE_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One category's paired values; filled and freed by table_join.h. */
typedef struct {
    char *category;       /* "all" when not grouped */
    size_t n;             /* volumes in both tables (and every covariate) */
    char **volumes;       /* n names */
    double *x, *y;        /* n values; NaN where a cell is empty or "nan" */
    size_t k;             /* covariates */
    double **z;           /* k arrays of n */
    size_t n_only_x, n_only_y;
    char **only_x, **only_y; /* volumes present in one table only */
} cbq_corr_group;

typedef struct {
    cbq_corr_group *groups;
    size_t n_groups;
} cbq_joined;

typedef struct {
    size_t n_boot;        /* bootstrap resamples (default 10000) */
    size_t n_perm;        /* random permutations when n > exact_max_n (default 100000) */
    size_t exact_max_n;   /* all n! permutations up to this n (default 9) */
    double conf;          /* 0.95 */
    uint64_t seed;
} cbq_correlate_opts;
void cbq_correlate_opts_default(cbq_correlate_opts *o);

/* Computes every statistic of every group and returns the stats.json tree
 * (caller frees with cJSON_Delete). */
int cbq_correlate(const cbq_joined *j, const cbq_correlate_opts *o, cJSON **out, cbq_error *err);

/* Adds a number, or null when v is NaN or infinite. */
void cbq_json_add_number(cJSON *obj, const char *key, double v);

#ifdef __cplusplus
}
#endif
#endif
