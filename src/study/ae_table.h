/* ae_table.h - the attribution stage's ae.csv joined with the consensus, as
 * arrays per category (private to src/study; used by stats, atypical and
 * report). */
#ifndef CBQ_STUDY_AE_TABLE_H
#define CBQ_STUDY_AE_TABLE_H

#include "study/pipeline.h"

/* ae.csv's localisation and faithfulness columns, in this order in
 * ae_category.pointing (names: ae_pointing_name). */
enum { AE_ENERGY, AE_HIT, AE_DELETION, AE_INSERTION, AE_DELETION_RANDOM, AE_INSERTION_RANDOM,
       AE_N_POINTING };
const char *ae_pointing_name(int measure);

typedef struct {
    size_t n;            /* volumes with both AE and consensus */
    char **volumes;      /* n ids (point into the table's storage) */
    double *consensus, *ae, *ae_per_slice, *pred, *n_slices, *clipped;
    /* where the map points and whether it matters (ae.csv; NaN when empty) */
    double *pointing[AE_N_POINTING];
} ae_category;

typedef struct {
    size_t n_categories;
    ae_category cat[STUDY_MAX_CATEGORIES];
    cbq_cohort cohort;
    unsigned *left_out;  /* per cohort volume: bit k set = a test volume left
                            out of category k for want of a consensus score */
    size_t n_left_out;   /* test volumes left out of at least one category */
} ae_table;

/* Reads attrib/ae.csv and the consensus through the running stage's
 * declared inputs (stage_inputs.c); every test volume must have an AE
 * row for every category (an error names what is missing). A test volume
 * without a consensus score in a category is left out of that category
 * (left_out says which). */
int ae_table_read(const study_ctx *ctx, ae_table *t, cbq_error *err);
void ae_table_free(ae_table *t);

/* Why cohort volume v is left out of category k, in words, or NULL when it
 * is not. */
const char *ae_table_left_out_reason(const ae_table *t, size_t v, size_t k);

/* Every left-out test volume with its reason, "'v03': ...; 'v07': ...",
 * into buf (truncated to cap). */
void ae_table_left_out_text(const ae_table *t, const study_ctx *ctx, char *buf, size_t cap);

#endif
