/* ae_table.h - the attribution stage's ae.csv joined with the consensus, as
 * arrays per category (private to src/study; used by stats, atypical and
 * report). */
#ifndef CBQ_STUDY_AE_TABLE_H
#define CBQ_STUDY_AE_TABLE_H

#include "study/pipeline.h"

typedef struct {
    size_t n;            /* volumes with both AE and consensus */
    char **volumes;      /* n ids (point into the table's storage) */
    double *consensus, *ae, *ae_per_slice, *pred, *n_slices, *clipped;
} ae_category;

typedef struct {
    size_t n_categories;
    ae_category cat[STUDY_MAX_CATEGORIES];
    study_cohort cohort;
} ae_table;

/* Reads attrib/ae.csv and the consensus; every test volume must have an AE
 * row for every category (an error names what is missing). */
int ae_table_read(const study_ctx *ctx, ae_table *t, cbq_error *err);
void ae_table_free(ae_table *t);

#endif
