/* slices.h - axial slices for the network, and maps back to the volume.
 *
 * Forward (volume -> network input), for each axial slice k of a volume on
 * the canonical grid (orient.h):
 *   1. windowing per source pixel: x = clamp((HU - hu_min) / (hu_max - hu_min), 0, 1)
 *   2. resampling the windowed slice (nx x ny) to (width x height), each
 *      axis on its own (separable):
 *      - shrinking (out < in): exact box-filter area averaging; output pixel
 *        o covers input interval [o*in/out, (o+1)*in/out) and each input pixel
 *        weighs by its overlap (equals PyTorch mode='area' for integer factors);
 *      - enlarging (out > in): linear interpolation with half-pixel centres,
 *        PyTorch align_corners=False: src = (o + 0.5) * in/out - 0.5,
 *        clamped at 0 and at the last pixel;
 *      - equal: copy.
 * Output layout [n, 1, height, width] (NCHW), row h = canonical j, column
 * w = canonical i.
 *
 * Inverse (map on the model-input grid -> source slice): the same rules from
 * (width x height) to (nx x ny): an axis that was shrunk is enlarged back by
 * the linear rule, an axis that was enlarged is shrunk back by area
 * averaging. No windowing is undone (maps are not HU).
 *
 * A cbq_slicer holds the weight tables and a scratch row buffer, sized once;
 * filling and unmapping allocate nothing.
 */
#ifndef CBCTIQ_SLICES_H
#define CBCTIQ_SLICES_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t height, width;   /* model input size */
    double hu_min, hu_max;  /* windowing, hu_max > hu_min */
} cbq_slice_spec;

/* One axis of a separable resampling: output o = sum w[t] * in[idx[t]] for
 * t in [start[o], start[o + 1]). */
typedef struct {
    size_t n_in, n_out;
    size_t *start;          /* n_out + 1 */
    size_t *idx;
    float *w;
} cbq_resample_axis;

typedef struct {
    cbq_slice_spec spec;
    size_t nx, ny;                   /* source slice size */
    cbq_resample_axis fx, fy;        /* forward: nx -> width, ny -> height */
    cbq_resample_axis bx, by;        /* inverse: width -> nx, height -> ny */
    float *scratch;                  /* max(nx, width) * max(ny, height) floats, also windowed slice */
    float *scratch2;
} cbq_slicer;

/* Builds the tables for slices of nx x ny pixels. Free with cbq_slicer_free. */
int cbq_slicer_init(cbq_slicer *s, size_t nx, size_t ny, const cbq_slice_spec *spec,
                    cbq_error *err);
void cbq_slicer_free(cbq_slicer *s);

/* Writes n slices (axial indices ks[0..n-1] of `vol`, which must have the
 * slicer's nx, ny) into out[n][1][height][width]. The caller owns `out`. */
int cbq_slicer_fill(cbq_slicer *s, const cbq_volume *vol, const size_t *ks, size_t n, float *out,
                    cbq_error *err);

/* Resamples one map[height][width] back onto slice k of `dst` (nx x ny,
 * same grid as the volume that was sliced), overwriting that slice. */
int cbq_slicer_unmap(cbq_slicer *s, const float *map, cbq_volume *dst, size_t k, cbq_error *err);

/* Generic 2D resampling with the rules above: in[ny_in][nx_in] ->
 * out[ny_out][nx_out]; tmp holds ny_in * nx_out floats. */
void cbq_resample2d(const cbq_resample_axis *ax, const cbq_resample_axis *ay, const float *in,
                    float *tmp, float *out);
int cbq_resample_axis_init(cbq_resample_axis *a, size_t n_in, size_t n_out, cbq_error *err);
void cbq_resample_axis_free(cbq_resample_axis *a);

/* Slice selection. Each writes the chosen axial indices, ascending, into
 * ks (capacity vol->nz) and returns how many. */
/* Slices where `mask` (same grid) has any non-zero voxel. */
size_t cbq_slices_nonempty(const cbq_volume *mask, size_t *ks);
/* Slices whose centre lies at world z (superior, mm) in [z_min, z_max]. */
size_t cbq_slices_zrange(const cbq_volume *vol, double z_min, double z_max, size_t *ks);

#ifdef __cplusplus
}
#endif
#endif
