/* ratings_csv.h - the ratings tables on disk: reads ratings.csv (long or
 * wide layout) and raters.csv into the cbq_ratings table of ratings.h, and writes
 * consensus.csv from a consensus computed by the statistics (ratings.h).
 * File formats: docs/formats.md.
 *
 *   cbq_ratings r;
 *   CBQ_TRY(cbq_ratings_read(&r, "ratings.csv", "raters.csv", err)); // raters may be NULL
 *   cbq_consensus *table;
 *   CBQ_TRY(cbq_consensus_table(&r, &table, err));
 *   int rc = cbq_consensus_write(&r, table, "consensus.csv", err);
 *   free(table);
 *   cbq_ratings_free(&r);
 */
#ifndef CBCTIQ_RATINGS_CSV_H
#define CBCTIQ_RATINGS_CSV_H

#include "cbctiq/error.h"
#include "cbctiq/ratings.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads ratings.csv and, when raters_path is not NULL, raters.csv (rater,
 * weight > 0). ratings.csv has either layout, told apart by its header: long
 * (volume_id, rater, category, score in [1, 5]; a `category` or `score`
 * column makes it long) or wide (volume_id, rater, then one column per
 * category holding its score). A blank score is "not rated" in both, a row
 * of blanks only is skipped, and names (volumes, raters, categories) enter
 * in the order of their first rating. Every problem is an error naming
 * file:line and column: every missing column at once with both expected
 * headers, a non-numeric or out-of-range score, a duplicate (volume, rater,
 * category), a rater without a weight, a zero or negative weight. *r owns its memory on success. */
int cbq_ratings_read(cbq_ratings *r, const char *ratings_path, const char *raters_path,
                     cbq_error *err);
void cbq_ratings_free(cbq_ratings *r);

/* Writes consensus.csv (volume_id, category, consensus, n_raters, sd),
 * atomically, one row per (volume, category) that somebody rated, in volume
 * then category order. table[volume * n_categories + category] as from
 * cbq_consensus_table. */
int cbq_consensus_write(const cbq_ratings *r, const cbq_consensus *table, const char *path,
                        cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
