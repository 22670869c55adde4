/* model_input.h - the one path from a cohort row to the model's input:
 *
 *   volume (NIfTI or DICOM)  -> canonical grid (orient.h)
 *   -> structures on that grid (label mask or RTSTRUCT, structures.h)
 *   -> selected axial slices (all / those with a structure, every step-th,
 *      at most max_slices evenly spaced)
 *   -> windowed and resampled batch [n, C, H, W] (slices.h), each slice's C
 *      channels filled and normalised as input.channels, slices, mean and std
 *      say (model_spec.h; cbq_model_input_load is the one place that does it)
 *   -> structure weights per category on the same model-input grid.
 *
 * Training, prediction, attribution and the sanity checks of both the study
 * and the CLI read volumes through here, so that a volume gives the same
 * slices whichever command reads it.
 *
 *     cbq_model_input in;
 *     cbq_model_input_options o = {.selection = CBQ_SLICES_STRUCTURES};
 *     CBQ_TRY(cbq_model_input_load(&in, &c.v[i], &c, &spec->input, &o, err));
 *     ... net(in.x, in.n) ...
 *     cbq_model_input_free(&in);
 */
#ifndef CBCTIQ_MODEL_INPUT_H
#define CBCTIQ_MODEL_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "cbctiq/attrib.h"
#include "cbctiq/cohort.h"
#include "cbctiq/error.h"
#include "cbctiq/model_spec.h"
#include "cbctiq/orient.h"
#include "cbctiq/slices.h"
#include "cbctiq/structures.h"
#include "cbctiq/volume.h"
#include "cbctiq/volume_io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CBQ_SLICES_ALL = 0,      /* every axial slice */
    CBQ_SLICES_STRUCTURES    /* slices where the label mask has any label, or (RTSTRUCT) any
                                structure; every slice when the volume has neither */
} cbq_slice_selection;

/* "all" / "structures"; 0 when unknown. */
int cbq_slice_selection_parse(const char *s, cbq_slice_selection *out);
const char *cbq_slice_selection_name(cbq_slice_selection s);

typedef struct {
    cbq_slice_selection selection;
    size_t step;          /* every step-th selected slice (0 or 1: each one) */
    size_t max_slices;    /* then at most this many, evenly spaced (0: no limit) */
    size_t min_h, min_w;  /* refuse a volume smaller in plane (0: any size) */
    int with_structures;  /* read the structures also when the selection does not need them
                             (for cbq_model_input_structure_weights) */
} cbq_model_input_options;

typedef struct {
    cbq_volume canon;          /* the volume on the canonical grid */
    cbq_volume_source src;     /* what it was read from (DICOM series identity) */
    cbq_reorient xf;           /* canonical <-> source */
    cbq_structures structures; /* masks on the canonical grid (all NULL when none) */
    int has_structures;        /* a mask or RTSTRUCT was read */
    cbq_slicer slicer;         /* canonical plane -> model input */
    size_t H, W;               /* model input */
    size_t channels;           /* its channels per slice (cbq_input_channels) */
    double hu_min, hu_max;     /* its window */
    size_t n;                  /* selected slices (may be 0 only with STRUCTURES) */
    size_t *ks;                /* [n] canonical axial indices, ascending */
    float *x;                  /* [n, channels, H, W] the model's input */
} cbq_model_input;

/* Loads row v of cohort c (c gives the labels.json; may be NULL) for a
 * model whose input is `input` (NULL: only the canonical volume and its
 * structures, for figures; n = 0). The volume must be finite; its structures
 * must lie on its grid (an RTSTRUCT must reference its DICOM series). On
 * failure *in is freed. */
int cbq_model_input_load(cbq_model_input *in, const cbq_cohort_volume *v, const cbq_cohort *c,
                         const cbq_input_spec *input, const cbq_model_input_options *o,
                         cbq_error *err);
/* The same for a volume alone (no structures). */
int cbq_model_input_load_path(cbq_model_input *in, const char *path,
                              const cbq_input_spec *input, const cbq_model_input_options *o,
                              cbq_error *err);
/* The same for a volume already in memory (read by the caller, or made by
 * a program; borrowed, copied onto the canonical grid), named `name` in
 * messages. No structures, no source metadata (src.kind is 0). */
int cbq_model_input_from_volume(cbq_model_input *in, const cbq_volume *vol, const char *name,
                                const cbq_input_spec *input, const cbq_model_input_options *o,
                                cbq_error *err);
void cbq_model_input_free(cbq_model_input *in);

/* Source-order index (as in the file) of canonical axial slice k. */
size_t cbq_model_input_source_slice(const cbq_model_input *in, size_t k);

/* Maps on the model-input grid back onto the volume's grids: maps [n, H, W]
 * (one per selected slice, in ks order) resampled into *out, the canonical
 * grid with its affine (slices not selected stay 0), or (unmap_source) the
 * volume's own source grid and affine, as read. *out is owned by the
 * caller (cbq_volume_free). Not thread-safe on one model input: the
 * resampling uses its slicer's scratch. */
int cbq_model_input_unmap_canonical(const cbq_model_input *in, const float *maps, cbq_volume *out,
                                    cbq_error *err);
int cbq_model_input_unmap_source(const cbq_model_input *in, const float *maps, cbq_volume *out,
                                 cbq_error *err);

/* The 0/1 mask on the canonical grid of a category's structure (a category
 * name: parotid, submandibular, larynx, mandible), or NULL when the volume
 * has none ("overall", or a structure missing from its file). */
const uint8_t *cbq_model_input_structure(const cbq_model_input *in, const char *category);

/* Per category name: the area fraction of its structure (structures.h:
 * parotid, submandibular, larynx, mandible) on the model-input grid of the
 * selected slices, weights[c] = [n, H, W], or NULL when the category has no
 * structure in this volume. The caller frees each weights[c]. */
int cbq_model_input_structure_weights(const cbq_model_input *in, const char *const *categories,
                                      size_t n_categories, float **weights, cbq_error *err);

/* Attribution of every selected slice of `in` for every output of cam
 * (cbq_attrib_volume), each category's structure weights applied when the
 * volume has that structure: what `cbctiq ae` and the Python binding compute
 * per volume. ae[cbq_cam_n_outputs(cam)] as cbq_attrib_volume fills it (the
 * caller frees each with cbq_ae_free); maps_input as there (NULL: none).
 * Fails when no slice is selected. */
int cbq_model_input_attrib(cbq_cam *cam, const cbq_model_input *in, cbq_ae *ae,
                           float *const *maps_input, cbq_error *err);

#ifdef __cplusplus
}
#endif

#endif
