/* volume_io.h - one entry point for "the user's volume": a NIfTI file
 * (.nii, .nii.gz, or a .hdr/.img pair) or a DICOM series (folder, or one file of the series).
 * The volume comes back on its source grid with exact geometry; bring it
 * to the canonical grid with cbq_volume_canonical (orient.h).
 */
#ifndef CBCTIQ_VOLUME_IO_H
#define CBCTIQ_VOLUME_IO_H

#include "cbctiq/dicom.h"
#include "cbctiq/error.h"
#include "cbctiq/nifti.h"
#include "cbctiq/orient.h"
#include "cbctiq/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CBQ_SOURCE_NIFTI = 1, CBQ_SOURCE_DICOM = 2 } cbq_source_kind;

typedef struct {
    cbq_source_kind kind;
    cbq_nifti_header nifti;   /* kind == CBQ_SOURCE_NIFTI */
    cbq_dicom_meta dicom;     /* kind == CBQ_SOURCE_DICOM */
} cbq_volume_source;

/* 1 when `path` names a NIfTI file by its extension (.nii, .nii.gz: what
 * cbctiq writes). */
int cbq_path_is_nifti(const char *path);

/* 1 when `path` names a NIfTI input: a .nii(.gz), or either file of a
 * .hdr/.img pair (.hdr, .img, each possibly .gz). */
int cbq_path_is_nifti_input(const char *path);

/* Fails, naming the path, when it exists but is neither a regular file nor
 * (folder_ok) a folder: a FIFO, a device or a socket, whose open or read
 * could wait forever for a writer. A missing path passes (the reader says
 * so). Every volume reader calls it before opening. */
int cbq_volume_path_check(const char *path, int folder_ok, cbq_error *err);

/* Reads `path`. `series_uid` (DICOM only, NULL = the only series) picks a
 * series; giving one for a NIfTI file is an error. `src` may be NULL.
 * *vol is owned by the caller. */
int cbq_volume_load(cbq_volume *vol, cbq_volume_source *src, const char *path,
                    const char *series_uid, cbq_error *err);

/* The last step of the inverse path: `canon_map` (a float map on the
 * canonical grid of xf, e.g. per-slice maps put back with
 * cbq_slicer_unmap) is written as a float32 NIfTI on the source grid, with
 * the source's affine, so viewers overlay it on the original volume. */
int cbq_map_write_source(const char *path, const cbq_volume *canon_map, const cbq_reorient *xf,
                         cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
