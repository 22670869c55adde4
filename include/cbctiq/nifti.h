/* nifti.h - read and write NIfTI-1 / NIfTI-2 volumes (.nii, .nii.gz).
 *
 * Reading also takes .hdr/.img pairs (magic "ni1"/"ni2"), named by either
 * file, each plain or gzipped; the voxels start at vox_offset in the .img.
 * Analyze 7.5 headers (no NIfTI magic) are refused: they do not record the
 * patient orientation.
 *
 * Reading turns any stored real datatype into float32 with scl_slope /
 * scl_inter applied, and picks the geometry the way nibabel's `affine` does:
 * the sform when sform_code != 0, else the qform when qform_code != 0, else
 * diag(-dx, dy, dz) centred on the grid (nibabel's base affine).
 * Only 3D data is read: a 4th or higher dimension larger than 1 is refused.
 * NaN or infinite voxels are refused with their count (a CT must be finite).
 * Writing produces NIfTI-1 (NIfTI-2 when a dimension exceeds 32767) with the
 * volume's affine stored as both sform and qform (code 1, scanner), units mm,
 * gzip-compressed when the name ends in ".gz", atomically (temporary file,
 * then rename).
 *
 * The header layout comes from nifti_clib's nifti1.h / nifti2.h and the
 * quaternion <-> matrix conversions from its nifti2_io; the bytes are read and
 * written by cbctiq itself so that every short read or failed write becomes a
 * message naming the file.
 */
#ifndef CBCTIQ_NIFTI_H
#define CBCTIQ_NIFTI_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/error.h"
#include "cbctiq/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Datatypes cbq_nifti_write can store (values are the NIfTI datatype codes). */
typedef enum {
    CBQ_NIFTI_UINT8 = 2,
    CBQ_NIFTI_INT16 = 4,
    CBQ_NIFTI_INT32 = 8,
    CBQ_NIFTI_FLOAT32 = 16,
    CBQ_NIFTI_FLOAT64 = 64,
    CBQ_NIFTI_INT8 = 256,
    CBQ_NIFTI_UINT16 = 512
} cbq_nifti_dtype;

/* The header fields cbctiq uses, decoded (byte order and version resolved). */
typedef struct {
    int version;            /* 1 or 2 */
    int swapped;            /* file is in the other byte order */
    int datatype;           /* NIfTI datatype code */
    size_t bytes_per_voxel;
    int64_t dim[8];
    double pixdim[8];
    int64_t vox_offset;
    double scl_slope, scl_inter;
    int qform_code, sform_code;
    double quatern[3];      /* b, c, d */
    double qoffset[3];
    double srow[3][4];
    char descrip[81];
    size_t nvox;            /* dim[1] * dim[2] * dim[3] */
    size_t data_bytes;      /* nvox * bytes_per_voxel */
    int two_file;           /* magic "ni1"/"ni2": voxels in the .img beside the .hdr */
} cbq_nifti_header;

/* Decodes and validates a header from the first `len` bytes of a file
 * (len >= 348 for NIfTI-1, >= 540 for NIfTI-2). `path` only names the file in
 * messages. Refuses: wrong sizeof_hdr or magic (Analyze 7.5 included),
 * dim[0] outside 1..7, non-positive sizes, a 4th+ dimension > 1, unsupported
 * datatypes (complex, RGB, 128-bit), voxel counts whose byte size overflows,
 * bad vox_offset, non-finite geometry or scaling. Pure function: no I/O. */
int cbq_nifti_parse_header(cbq_nifti_header *hdr, const unsigned char *buf, size_t len,
                           const char *path, cbq_error *err);

/* Reads a 3D volume. On success *vol owns its voxels (cbq_volume_free).
 * vol->spacing = column norms of the chosen affine. On failure *vol is empty
 * and err names the file and field. */
int cbq_nifti_read(cbq_volume *vol, const char *path, cbq_error *err);

/* As cbq_nifti_read, also returning the decoded header (may be NULL). */
int cbq_nifti_read_ex(cbq_volume *vol, cbq_nifti_header *hdr, const char *path, cbq_error *err);

/* Reads only the header (cheap: no voxels). */
int cbq_nifti_read_header(cbq_nifti_header *hdr, const char *path, cbq_error *err);

/* The affine cbq_nifti_read uses for this header (sform, qform or base). */
void cbq_nifti_header_affine(const cbq_nifti_header *hdr, double affine[4][4]);

/* Writes `vol` to `path` as `dtype`, geometry from vol->affine (sform and
 * qform, code 1). Integer types: each voxel is rounded to nearest (ties to
 * even); a value outside the type's range, or a NaN, fails with its position
 * and nothing is written. scl_slope = 1, scl_inter = 0. */
int cbq_nifti_write(const char *path, const cbq_volume *vol, cbq_nifti_dtype dtype, cbq_error *err);

/* Name of a datatype code, e.g. "int16"; "unknown" otherwise. */
const char *cbq_nifti_dtype_name(int datatype);

#ifdef __cplusplus
}
#endif
#endif
