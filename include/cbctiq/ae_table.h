/* ae_table.h - ae.csv, the Attribution Energy of each volume and category
 * (docs/formats.md): its one schema, its one writer (`cbctiq ae` and the
 * study's attrib stage) and its one reader (the study's stats, atypical and
 * report stages, and anyone's script through the same column names).
 *
 *     cbq_ae_writer w;
 *     CBQ_TRY(cbq_ae_writer_open(&w, "ae.csv", err));
 *     ... cbq_ae_writer_put(&w, "pt03", "parotid", cam, output, &ae[output], &pointing[k],
 *                           err) ...
 *     (or, for every output of a loaded volume with its localisation columns:
 *      cbq_ae_writer_put_volume(&w, curves_or_NULL, "pt03", cam, net, &in, maps, ae, &o, err))
 *     cbq_ae_writer_commit(&w, err);            (or cbq_ae_writer_abort(&w))
 *
 *     cbq_ae_table t;
 *     CBQ_TRY(cbq_ae_table_read(&t, "ae.csv", err));
 *     long r = cbq_ae_table_find(&t, "pt03", "parotid");   (-1 when absent)
 *     ... t.rows[r].ae ...
 *     cbq_ae_table_free(&t);
 */
#ifndef CBCTIQ_AE_TABLE_H
#define CBCTIQ_AE_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "cbctiq/attrib.h"
#include "cbctiq/csv.h"
#include "cbctiq/error.h"
#include "cbctiq/pointing.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The columns, in file order (docs/formats.md); NULL past the last. */
size_t cbq_ae_n_columns(void);
const char *cbq_ae_column_name(size_t i);

typedef struct {
    char volume_id[256], category[64], method[32], target_layer[64];
    double ae, ae_feature, ae_per_slice, n_slices, pred;
    double ae_in_structure, structure_fraction; /* NaN when the volume has no such structure */
    double ae_feature_pre, ae_clipped, pred_minus_bias_sum;
    double identity_holds;                      /* 1 or 0 */
    double ae_selected, ae_feature_post, bias;
    char relu[8], grid[8], sign[4], aggregate[8];
    /* where the map points and whether it matters (pointing.h); NaN when
     * empty, with the codes of why in empty_reason */
    double energy_in_structure, pointing_hit;
    double deletion_auc, insertion_auc, deletion_auc_random, insertion_auc_random;
    double curve_slices;
    char perturbation[8], perturb_seed[24], empty_reason[96];
    size_t line;                                /* in the file, for messages */
} cbq_ae_row;

typedef struct {
    char path[4096];
    size_t n;
    cbq_ae_row *rows;   /* owned */
} cbq_ae_table;

/* Reads an ae.csv; every column of the schema must be there, every number
 * finite (the structure columns and ae_clipped may be empty: NaN). Errors
 * name file:line and column. */
int cbq_ae_table_read(cbq_ae_table *t, const char *path, cbq_error *err);
void cbq_ae_table_free(cbq_ae_table *t);
/* Index of the row of (volume_id, category), or -1. */
long cbq_ae_table_find(const cbq_ae_table *t, const char *volume_id, const char *category);

typedef struct {
    cbq_csv_writer csv;
    int open;
} cbq_ae_writer;

/* Opens path (atomically: nothing appears under it before commit). */
int cbq_ae_writer_open(cbq_ae_writer *w, const char *path, cbq_error *err);
/* One row: AE of output `output` of cam's model for volume_id, written
 * under the name `category`, with cam's options in the option columns, and
 * the category's localisation and faithfulness (NULL: not computed, those
 * cells empty with the reason not_computed). */
int cbq_ae_writer_put(cbq_ae_writer *w, const char *volume_id, const char *category,
                      const cbq_cam *cam, size_t output, const cbq_ae *ae,
                      const cbq_pointing *pointing, cbq_error *err);

/* How a volume's rows get their localisation and faithfulness columns:
 * the curves' baseline, the seed of their random order and how many
 * slices they run on (`cbctiq ae --perturbation/--seed/--curve-slices`),
 * and the images per forward pass of the curves. */
typedef struct {
    cbq_perturb_baseline perturbation; /* CBQ_PERTURB_NONE: no curves */
    uint64_t seed;
    size_t curve_slices; /* evenly spaced among the used slices; 0: all */
    size_t batch;
} cbq_ae_volume_options;

/* blur, seed 1, one curve slice, batch 16: `cbctiq ae`'s defaults. */
void cbq_ae_volume_options_default(cbq_ae_volume_options *o);

/* The rows of one loaded volume, as `cbctiq ae` writes them: every output
 * of cam's model in its order, named as the model names it, with where
 * each map points and its deletion/insertion curves (pointing.h; the curves
 * run on net, the network cam was made on). maps[output] = [in->n, H, W]
 * and ae[output] from cbq_model_input_attrib. curves (NULL: none) gets the
 * curves' rows (cbq_curves_put). */
int cbq_ae_writer_put_volume(cbq_ae_writer *w, cbq_csv_writer *curves, const char *volume_id,
                             const cbq_cam *cam, cbq_net *net, cbq_model_input *in,
                             const float *const *maps, const cbq_ae *ae,
                             const cbq_ae_volume_options *o, cbq_error *err);
int cbq_ae_writer_commit(cbq_ae_writer *w, cbq_error *err);
/* Removes what was written (safe when not open or already committed). */
void cbq_ae_writer_abort(cbq_ae_writer *w);

#ifdef __cplusplus
}
#endif

#endif
