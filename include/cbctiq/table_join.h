/* table_join.h - reads numeric columns of CSV tables keyed by volume_id
 * (and category) and pairs them by volume: the input of the correlation
 * statistics (correlate.h), which take the joined arrays.
 *
 *   cbq_column_ref x, y;
 *   CBQ_TRY(cbq_column_ref_parse(&x, "ae.csv:ae", err));
 *   CBQ_TRY(cbq_column_ref_parse(&y, "consensus.csv:consensus", err));
 *   cbq_joined j;
 *   CBQ_TRY(cbq_join_columns(&x, &y, NULL, 0, 1, NULL, &j, err));
 *   ... cbq_correlate(&j, &opts, &doc, err) ...
 *   cbq_joined_free(&j);
 */
#ifndef CBCTIQ_TABLE_JOIN_H
#define CBCTIQ_TABLE_JOIN_H

#include <stddef.h>
#include "cbctiq/correlate.h"
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

#ifdef __cplusplus
}
#endif
#endif
