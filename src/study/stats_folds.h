/* stats_folds.h - the statistics over folds and seeds that the stats stage
 * adds under cohort.folds and train.repeats (private to src/study). */
#ifndef CBQ_STUDY_STATS_FOLDS_H
#define CBQ_STUDY_STATS_FOLDS_H

#include <cjson/cJSON.h>

#include "study/ae_table.h"

/* Adds to each category of stats.json (`stats`, cbq_correlate's document)
 * "folds" under cohort.folds: per fold, rho(AE, consensus) and n on the
 * volumes tested in it; and "repeats" under train.repeats > 1: rho(AE,
 * consensus) and the model's test rho (prediction against consensus) of
 * each seed's out-of-fold AE (attrib/seeds/ae_seed<r>.csv) with their
 * median, min and max. The root gets "cross_validation" (folds, repeats,
 * seeds). Nothing is added with neither. */
int study_stats_folds(const study_ctx *ctx, const ae_table *t, cJSON *stats, cbq_error *err);

/* table.csv's extra columns under train.repeats > 1 (NULL past the last)
 * and category `category`'s value of column i, from stats.json. */
const char *study_repeat_column(size_t i);
double study_repeat_value(const cJSON *stats, const char *category, size_t i);

#endif
