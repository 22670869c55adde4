/* dicom.h - DICOM CT/CBCT image series and RTSTRUCT files, read through
 * DCMTK inside one C++ adapter (src/io/dicom_adapter.cpp); C callers only
 * see this header.
 *
 * Series: every file under a folder (recursively) is looked at; files that
 * are not DICOM, or DICOM without pixel data (RTSTRUCT, reports), are
 * skipped. Exactly one image series is read; several give an error listing
 * them (UID, description, number of files) unless a Series Instance UID
 * picks one. Slices are ordered by ImagePositionPatient projected on the
 * slice normal (row cosine x column cosine), never by file name or
 * InstanceNumber. Refused with a message naming the files: mixed
 * orientations or sizes, two slices at one position, a missing slice
 * (a gap about twice the others), uneven gaps, gantry tilt (positions
 * drifting in-plane), zig-zag positions, multi-frame images without
 * functional groups, colour images,
 * pixel data longer or shorter than Rows x Columns, RescaleSlope 0 or not
 * a number, mixed rescale (some slices without it), and compressed data
 * that the decoder decodes only with a warning.
 * Voxels are HU = stored value * RescaleSlope + RescaleIntercept (each slice
 * its own; the stored value is the cell masked to BitsStored, sign-extended
 * when signed), on the DICOM grid: i = column, j = row, k = slice order.
 * The affine maps (i, j, k) to RAS+ mm (DICOM LPS with x, y negated).
 * Enhanced multi-frame objects (Enhanced CT/MR, Parametric Map: anything
 * with functional groups) give one slice per frame, placed and rescaled by
 * the frame's Per-frame (else the Shared) Functional Groups, then sorted
 * and checked like the slices of a series; Float and Double Float Pixel
 * Data are read as values (through a rescale where one is given).
 * Transfer syntaxes: anything DCMTK decodes with its RLE, JPEG (baseline,
 * extended, lossless) and JPEG-LS decoders registered, and JPEG 2000
 * (lossless and lossy) through OpenJPEG, whose samples are read with the
 * codestream's precision and sign, as pydicom reads them.
 */
#ifndef CBCTIQ_DICOM_H
#define CBCTIQ_DICOM_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char series_uid[68];
    char study_uid[68];
    char frame_of_reference_uid[68];
    char series_description[132];
    char patient_name[132];
    char patient_id[68];
    char modality[20];
    char manufacturer[132];
    char model[132];
    char transfer_syntax[132];   /* name, e.g. "Little Endian Implicit" */
    char transfer_syntax_uid[68];
    size_t n_files;
    char first_file[1024];       /* one file of the series, for messages */
} cbq_dicom_series_info;

typedef struct {
    cbq_dicom_series_info info;
    size_t n_slices;
    double slice_spacing;        /* mm between slice centres along the normal */
    double rescale_slope, rescale_intercept;   /* of the first slice */
    double hu_min, hu_max;
    size_t n_padding;            /* voxels marked by PixelPaddingValue, set to air */
} cbq_dicom_meta;

/* HU given to voxels whose stored value is PixelPaddingValue (or within
 * PixelPaddingRangeLimit): air, not whatever the rescale makes of them. */
#define CBQ_DICOM_PADDING_HU (-1024.0)

/* Image series found under `folder` (or the folder of a file). The caller
 * frees *series with free(). Zero series is not an error here. */
int cbq_dicom_find_series(cbq_dicom_series_info **series, size_t *n_series, const char *folder,
                          cbq_error *err);

/* Reads one series. `path`: a folder (searched recursively) or one file of
 * the series (its folder is searched for the rest). `series_uid`: NULL or
 * "" = the only series there. Voxels hold stored x RescaleSlope +
 * RescaleIntercept, except padding (CBQ_DICOM_PADDING_HU). *vol is owned by
 * the caller (cbq_volume_free); meta may be NULL. */
int cbq_dicom_read_series(cbq_volume *vol, cbq_dicom_meta *meta, const char *path,
                          const char *series_uid, cbq_error *err);

/* The version of DCMTK this build reads with, e.g. "3.6.7". */
const char *cbq_dicom_toolkit_version(void);

/* 1 when `path` is a folder or a file that starts like DICOM ("DICM" at
 * byte 128); cheap, reads 132 bytes. */
int cbq_dicom_looks_like(const char *path);

/* ---- RTSTRUCT ---- */

typedef struct {
    double *xyz;        /* n_points * 3, world RAS+ mm */
    size_t n_points;
} cbq_contour;

typedef struct {
    int number;                 /* ROINumber */
    char name[132];             /* ROIName */
    cbq_contour *contours;
    size_t n_contours;
} cbq_roi;

typedef struct {
    char frame_of_reference_uid[68];
    char referenced_series_uid[68];   /* "" when the file does not say */
    cbq_roi *rois;
    size_t n_rois;
} cbq_rtstruct;

/* Reads the ROIs and their CLOSED_PLANAR contours. Points and open contours
 * are skipped. Free with cbq_rtstruct_free. */
int cbq_rtstruct_read(cbq_rtstruct *rs, const char *path, cbq_error *err);
void cbq_rtstruct_free(cbq_rtstruct *rs);

#ifdef __cplusplus
}
#endif
#endif
