/* dicom_write.h - attribution maps as DICOM series that a viewer places over
 * the CBCT they explain, written through DCMTK inside one C++ file
 * (src/io/dicom_map_writer.cpp); C callers only see this header.
 *
 * Both writers take the map on a volume grid (any NIfTI-style affine) and a
 * DICOM image series on the same grid (the map's source, or a template for a
 * map computed from a NIfTI): every slice of that series becomes one frame
 * (or one image) with the slice's own position, orientation and pixel
 * spacing, referencing that slice. The series must cover the map's grid
 * exactly (same voxel centres, any axis order or flip); otherwise nothing is
 * written and the message says which slice or axis does not fit.
 * The new objects copy the patient, study and frame-of-reference modules of
 * the series (identifiers copied, never printed) and get a new series, new
 * instance UIDs (DCMTK's generator), today's date and time.
 *
 * Output: a folder, written atomically (a temporary sibling folder renamed
 * onto `dir` at the end, atomic_file.h; on an error or an interrupt nothing
 * is left behind). An existing `dir` is replaced, only then, when it holds
 * nothing but an earlier map (map.dcm, sc_NNNN.dcm); otherwise refused.
 *   Parametric Map: DIR/map.dcm, one enhanced multi-frame object
 *     (SOP Class 1.2.840.10008.5.1.4.1.1.30), float32 frames (Float Pixel
 *     Data), a Real World Value Mapping naming the method, category and
 *     units, per-frame plane position and derivation references.
 *   Secondary Capture: DIR/sc_NNNN.dcm, one RGB image per slice (SOP Class
 *     1.2.840.10008.5.1.4.1.1.7), NNNN = 1-based position in the stack.
 */
#ifndef CBCTIQ_DICOM_WRITE_H
#define CBCTIQ_DICOM_WRITE_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the map is: written into the objects' descriptions. */
typedef struct {
    const char *method;         /* e.g. "gradcam" */
    const char *category;       /* e.g. "parotid" */
    const char *target_layer;   /* e.g. "block3.conv2" (NULL: not stated) */
    const char *units;          /* unit text (NULL: "raw attribution (map units)") */
    const char *rendering;      /* Secondary Capture: window and colour map, for
                                   ImageComments (NULL: not stated) */
} cbq_dicom_map_label;

/* The source series' slices as the writers see them: every frame (slice)
 * with its voxel mapping on the map grid. Opaque; from
 * cbq_dicom_grid_open, freed with cbq_dicom_grid_free. */
typedef struct cbq_dicom_grid cbq_dicom_grid;

/* Reads the headers of the image series at `series_path` (a folder, or one
 * file of it; `series_uid` NULL or "" = the only series there) and matches
 * its slices to the grid of `grid` (nx, ny, nz and affine; data unused).
 * Fails, naming the series and the slice, when a slice does not lie on that
 * grid or the series does not cover it. */
int cbq_dicom_grid_open(cbq_dicom_grid **out, const char *series_path, const char *series_uid,
                        const cbq_volume *grid, cbq_error *err);
void cbq_dicom_grid_free(cbq_dicom_grid *g);

/* Frames (slices) of the series, ordered along the slice normal, and each
 * frame's size (Rows x Columns). */
size_t cbq_dicom_grid_frames(const cbq_dicom_grid *g, size_t *rows, size_t *cols);

/* Copies frame f of `vol` (on the grid given to open) into out[rows * cols]
 * in the DICOM pixel order (row by row). */
void cbq_dicom_grid_frame(const cbq_dicom_grid *g, const cbq_volume *vol, size_t f, float *out);

/* The Parametric Map of `map` (on the grid given to open) into `dir`. */
int cbq_dicom_write_parametric_map(const char *dir, const cbq_dicom_grid *g, const cbq_volume *map,
                                   const cbq_dicom_map_label *label, cbq_error *err);

/* The Secondary Capture series into `dir`: rgb[f] is frame f as Rows x
 * Columns x 3 bytes (R, G, B), in the order of cbq_dicom_grid_frame. */
int cbq_dicom_write_secondary_capture(const char *dir, const cbq_dicom_grid *g,
                                      const unsigned char *const *rgb,
                                      const cbq_dicom_map_label *label, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
