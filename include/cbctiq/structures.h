/* structures.h - structure masks per rating category on an image grid, from
 * a label volume (NIfTI + labels.json) or a DICOM RTSTRUCT.
 *
 * Categories with a structure: parotid (left + right), submandibular (left +
 * right), larynx, mandible. A label or ROI name is matched to a category by
 * cbq_structure_match (TG-263 names first, then usual spellings); names of
 * planning volumes and derived structures (PTV, CTV, GTV, PRV, "opt",
 * "avoid", rings) never match.
 *
 * Label volumes: integer NIfTI on the image grid (the same voxel centres in
 * world space; voxel order may differ, e.g. one of them canonical); names
 * from the labels.json sidecar in the label file's folder or its parent
 * ({"1": "parotid_l", ...}).
 * RTSTRUCT: closed planar contours are drawn on the axial slice they lie on
 * (nearest k), a voxel belongs to an ROI when its centre is inside under the
 * even-odd rule over all that ROI's contours on that slice (so a contour
 * inside another is a hole). The RTSTRUCT must reference the image's series
 * and frame of reference when the image came from DICOM.
 */
#ifndef CBCTIQ_STRUCTURES_H
#define CBCTIQ_STRUCTURES_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/dicom.h"
#include "cbctiq/error.h"
#include "cbctiq/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CBQ_STRUCT_PAROTID = 0,
    CBQ_STRUCT_SUBMANDIBULAR,
    CBQ_STRUCT_LARYNX,
    CBQ_STRUCT_MANDIBLE,
    CBQ_STRUCT_COUNT
} cbq_structure;

/* "parotid", "submandibular", "larynx", "mandible" (the category names). */
const char *cbq_structure_name(int s);
/* Category of a label/ROI name, or -1. *side (may be NULL) gets 'L', 'R' or 0. */
int cbq_structure_match(const char *name, char *side);

typedef struct {
    size_t nx, ny, nz;                   /* the image grid */
    uint8_t *mask[CBQ_STRUCT_COUNT];     /* 0/1 voxels, x fastest; NULL = structure absent */
    char sources[CBQ_STRUCT_COUNT][256]; /* label/ROI names merged, e.g. "Parotid_L + Parotid_R" */
} cbq_structures;

/* The labels.json sidecar of a label NIfTI (beside it, else in its parent
 * folder) into out; 0 when there is none. What cbq_structures_from_labels
 * reads when given none, so that callers can hash it. */
int cbq_structures_sidecar(char *out, size_t cap, const char *label_path);

/* Masks from a label NIfTI. `labels_json`: NULL = find the sidecar.
 * `image` gives the grid the masks are made on. */
int cbq_structures_from_labels(cbq_structures *st, const cbq_volume *image, const char *label_path,
                               const char *labels_json, cbq_error *err);

/* Masks from an RTSTRUCT. `image_info`: the image's series (UID checks), or
 * NULL when the image is not DICOM (then nothing can be checked). */
int cbq_structures_from_rtstruct(cbq_structures *st, const cbq_volume *image,
                                 const cbq_dicom_series_info *image_info, const char *rtstruct_path,
                                 cbq_error *err);

/* Draws one ROI's contours into mask (image grid, 0/1, OR-ed in); exposed
 * for tests. Returns the number of contours drawn. */
size_t cbq_rasterize_roi(uint8_t *mask, const cbq_volume *image, const cbq_roi *roi);

void cbq_structures_free(cbq_structures *st);

#ifdef __cplusplus
}
#endif
#endif
