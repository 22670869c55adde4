/* correlate.h - the study's statistics of one value against another, per
 * category: join two tables on volume_id (and category), then Spearman with
 * its p-values, confidence intervals, leave-one-out, Pearson, Kendall,
 * partial Spearman and the multiple-testing adjustment across categories,
 * as a cJSON document (the stats.json of docs/formats.md). */
#ifndef CBCTIQ_CORRELATE_H
#define CBCTIQ_CORRELATE_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "FILE:COLUMN": a numeric column of a CSV keyed by volume_id [, category]. */
typedef struct {
    const char *spec;     /* as given, for messages and the JSON */
    char path[4096];
    char column[256];
} cbq_column_ref;
/* Splits "FILE:COLUMN" at the last colon. */
int cbq_column_ref_parse(cbq_column_ref *ref, const char *spec, cbq_error *err);

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

/* Reads x, y and k covariate columns and joins them on volume_id, and on
 * category when by_category (tables without a category column then match
 * every category). where: NULL or "COLUMN=VALUE" keeping only matching rows
 * of the tables that have that column. Groups follow y's category order. A
 * duplicate key, a missing column or a non-numeric cell is an error naming
 * file:line:column. Free with cbq_joined_free. */
int cbq_join_columns(const cbq_column_ref *x, const cbq_column_ref *y, const cbq_column_ref *z,
                     size_t k, int by_category, const char *where, cbq_joined *out,
                     cbq_error *err);
void cbq_joined_free(cbq_joined *j);

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
