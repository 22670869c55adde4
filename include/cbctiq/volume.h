/* volume.h - a 3D scalar image with its geometry, the currency between the
 * readers (NIfTI, DICOM), the simulator, the slicer and the map writers.
 *
 * Voxels are float32, x (i) fastest: data[i + nx * (j + ny * k)].
 * Geometry follows NIfTI: `affine` maps voxel indices (i, j, k, 1) to world
 * millimetres in RAS+ as nifti1.h defines it: +x = Right, +y = Anterior,
 * +z = Superior (DICOM's LPS is converted on read: x and y change sign).
 * Axial slices are along k after canonical orientation.
 * Ownership: a volume owns `data`; release with cbq_volume_free.
 */
#ifndef CBCTIQ_VOLUME_H
#define CBCTIQ_VOLUME_H

#include <stddef.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t nx, ny, nz;      /* voxel counts along i, j, k */
    double spacing[3];      /* voxel size in mm along i, j, k (> 0) */
    double affine[4][4];    /* voxel (i, j, k, 1) -> world RAS+ mm */
    float *data;            /* nx * ny * nz voxels, owned */
} cbq_volume;

/* Allocates a zero-filled volume with an axis-aligned affine
 * (diag(spacing), origin at 0); refuses sizes whose byte count overflows or
 * exceeds `max_bytes` (0 = no limit) with a clear message. */
int cbq_volume_alloc(cbq_volume *vol, size_t nx, size_t ny, size_t nz,
                     const double spacing[3], size_t max_bytes, cbq_error *err);
void cbq_volume_free(cbq_volume *vol);

static inline size_t cbq_volume_count(const cbq_volume *vol)
{
    return vol->nx * vol->ny * vol->nz;
}

static inline float *cbq_volume_at(const cbq_volume *vol, size_t i, size_t j, size_t k)
{
    return vol->data + i + vol->nx * (j + vol->ny * k);
}

/* World coordinates (mm) of voxel (i, j, k), fractional indices allowed. */
void cbq_volume_world(const cbq_volume *vol, double i, double j, double k, double xyz[3]);

#ifdef __cplusplus
}
#endif
#endif
