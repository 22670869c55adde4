/* pointing.h - where a volume's map points and whether it matters to the
 * prediction, per category: the new columns of ae.csv (docs/formats.md),
 * computed once here for `cbctiq ae` and the study's attrib stage.
 *
 *   energy_in_structure  sum of the map inside the category's structure /
 *                        sum of the map, on the CBCT's own grid (the grid
 *                        of the written NIfTI map; the energy-based
 *                        pointing game of Score-CAM, in 3D)
 *   pointing_hit         1 when the map's maximum is reached inside it
 *   deletion/insertion   faithfulness.h, on the model input's slices
 *
 *     cbq_pointing_options o;
 *     cbq_pointing_options_default(&o, &in);
 *     cbq_pointing p[K];
 *     CBQ_TRY(cbq_pointing_volume(&in, net, batch, categories, K, out_index, maps, &o, p, err));
 */
#ifndef CBCTIQ_POINTING_H
#define CBCTIQ_POINTING_H

#include <stddef.h>
#include <stdint.h>

#include "cbctiq/csv.h"
#include "cbctiq/error.h"
#include "cbctiq/faithfulness.h"
#include "cbctiq/model_input.h"
#include "cbctiq/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Why cells of a row are empty (bits of cbq_pointing.empty); the names are
 * ae.csv's empty_reason codes. */
enum {
    CBQ_EMPTY_NO_STRUCTURE = 1u << 0, /* no structure for the category, or not a voxel of it in
                                         this volume: energy, hit */
    CBQ_EMPTY_ZERO_MAP = 1u << 1,     /* the map is zero everywhere: all six */
    CBQ_EMPTY_MAP_SUM = 1u << 2,      /* the map sums to a negative number: energy */
    CBQ_EMPTY_FLAT_SCORE = 1u << 3,   /* the baseline does not change the score: the AUCs */
    CBQ_EMPTY_NO_CURVES = 1u << 4,    /* curves not asked for (perturbation none): the AUCs */
    CBQ_EMPTY_NOT_COMPUTED = 1u << 5, /* the writer was given none of them: all six */
    CBQ_EMPTY_COUNT = 6
};
/* The code of bit i ("no_structure", ...). */
const char *cbq_empty_reason_name(unsigned bit_index);
/* The codes of `empty`, separated by ';', into buf (empty string for 0). */
void cbq_empty_reason_text(unsigned empty, char *buf, size_t cap);

typedef struct {
    cbq_faith_options faith; /* baseline CBQ_PERTURB_NONE: no curves */
    size_t max_slices;       /* the curves' slices: at most this many, evenly spaced among
                                the used ones, as sanity.max_slices (0: all) */
} cbq_pointing_options;

/* Blur baseline with the input's sigma, seed 1, the middle slice (the curves cost about
 * 230 forward passes per slice; one keeps them near the cost of the AE). */
void cbq_pointing_options_default(cbq_pointing_options *o, const cbq_model_input *in);

typedef struct {
    double energy_in_structure, pointing_hit; /* NaN when empty */
    cbq_faith_curves curves;                  /* curves.computed = 0 when empty */
    size_t curve_slices;                      /* slices the curves ran on */
    cbq_perturb_baseline baseline;
    uint64_t seed;
    unsigned empty;                           /* CBQ_EMPTY_* bits */
} cbq_pointing;

/* The maps [in->n, H, W] of one category on the CBCT's own grid and header
 * geometry (cbq_model_input_unmap_source), written as a float32 NIfTI
 * (atomically), so that viewers overlay it on the scan and anyone can
 * recompute energy_in_structure from it and the mask. */
int cbq_model_input_write_map(cbq_model_input *in, const float *maps, const char *path,
                              cbq_error *err);

/* energy_in_structure and pointing_hit of a canonical map and a 0/1 mask
 * on the same grid (NULL or no voxel set: no structure). Sets the CBQ_EMPTY_* bits it
 * finds into p->empty. */
void cbq_pointing_energy(const cbq_volume *canon_map, const uint8_t *mask, cbq_pointing *p);

/* Everything above for the categories (names; out_index[k]: the model
 * output of category k; maps[output] = [in->n, H, W] on the input grid, a
 * NULL entry for outputs no category uses) of one loaded volume; the
 * curves run on net (batch images per forward pass). p[n_categories]. */
int cbq_pointing_volume(cbq_model_input *in, cbq_net *net, size_t batch,
                        const char *const *categories, size_t n_categories,
                        const size_t *out_index, const float *const *maps,
                        const cbq_pointing_options *o, cbq_pointing *p, cbq_error *err);

/* curves.csv (docs/formats.md): volume_id, category, order (map | random),
 * curve (deletion | insertion), step, fraction, score, normalised; one row
 * per step of each of the four curves of a category with computed curves. */
int cbq_curves_writer_open(cbq_csv_writer *w, const char *path, cbq_error *err);
int cbq_curves_put(cbq_csv_writer *w, const char *volume_id, const char *category,
                   const cbq_pointing *p, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
