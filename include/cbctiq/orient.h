/* orient.h - bring any volume to cbctiq's canonical voxel orientation and
 * back, so that "axial slice k" means the same thing for every source.
 *
 * Canonical orientation (the same as the project's data sets, code "LPS"):
 *   i runs patient right -> left, j anterior -> posterior,
 *   k inferior -> superior; axial slices are k.
 * Only axis permutations and flips are applied (no resampling): each voxel
 * axis is assigned to the world axis it is closest to; an oblique volume
 * stays oblique, and its affine still gives exact world positions.
 * The transform is kept in a cbq_reorient so that maps computed on the
 * canonical grid can be written back on the source grid with the source's
 * exact header geometry.
 */
#ifndef CBCTIQ_ORIENT_H
#define CBCTIQ_ORIENT_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Canonical axis a reads source axis perm[a], reversed when flip[a]. */
typedef struct {
    int perm[3];
    int flip[3];
    size_t src_dims[3];
    double src_affine[4][4];
    double src_spacing[3];
} cbq_reorient;

/* Orientation code of an affine in nibabel's aff2axcodes convention: for
 * each voxel axis the world direction it points to ("RAS", "LPS", "LPI"...).
 * `code` receives 3 letters and a NUL. */
void cbq_orientation_code(const double affine[4][4], char code[4]);

/* Computes the permutation/flips that make `affine` canonical (no data). */
void cbq_reorient_plan(cbq_reorient *xf, const cbq_volume *vol);

/* *out = `in` on the canonical grid (new allocation, owned by the caller;
 * affine updated so that world coordinates of every voxel are unchanged).
 * xf receives the transform (may be NULL). */
int cbq_volume_canonical(cbq_volume *out, const cbq_volume *in, cbq_reorient *xf, cbq_error *err);

/* As cbq_volume_canonical, but consumes `in` (left empty, its voxels freed
 * or moved): a volume already in canonical voxel order gives its voxels to
 * *out without a copy, so that reading a volume costs one buffer, not two.
 * The result is the same as cbq_volume_canonical's. */
int cbq_volume_canonical_move(cbq_volume *out, cbq_volume *in, cbq_reorient *xf, cbq_error *err);

/* Inverse: *out = `canon` (on the canonical grid of xf) put back on the
 * source grid, with the source's affine and spacing restored exactly.
 * `canon` must have the canonical dimensions of xf. */
int cbq_volume_uncanonical(cbq_volume *out, const cbq_volume *canon, const cbq_reorient *xf,
                           cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
