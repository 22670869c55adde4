/* orient.c - canonical voxel orientation by axis permutation and flips
 * (see include/cbctiq/orient.h). No interpolation ever happens here. */
#define _DEFAULT_SOURCE /* madvise */
#include "cbctiq/orient.h"

#include <math.h>
#include <string.h>

#include "hugepages.h"

/* Wanted sign of the world component for canonical axes i, j, k:
 * i toward Left (-x in RAS+), j toward Posterior (-y), k toward Superior (+z). */
static const int canon_sign[3] = {-1, -1, +1};

static double unit_component(const double a[4][4], int world, int axis)
{
    double n = sqrt(a[0][axis] * a[0][axis] + a[1][axis] * a[1][axis] + a[2][axis] * a[2][axis]);
    return n > 0 ? a[world][axis] / n : 0;
}

void cbq_orientation_code(const double affine[4][4], char code[4])
{
    static const char pos[3] = {'R', 'A', 'S'}, neg[3] = {'L', 'P', 'I'};
    cbq_volume tmp;
    memset(&tmp, 0, sizeof tmp);
    memcpy(tmp.affine, affine, sizeof tmp.affine);
    cbq_reorient xf;
    cbq_reorient_plan(&xf, &tmp);
    /* perm maps world axis -> source axis; invert to label each source axis. */
    for (int w = 0; w < 3; w++) {
        int s = xf.perm[w];
        double c = unit_component(affine, w, s);
        code[s] = c >= 0 ? pos[w] : neg[w];
    }
    code[3] = '\0';
}

void cbq_reorient_plan(cbq_reorient *xf, const cbq_volume *vol)
{
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    int best = 0;
    double best_score = -1;
    /* The assignment of voxel axes to world axes with the largest total
     * alignment; ties go to the first (identity) permutation. */
    for (int p = 0; p < 6; p++) {
        double score = 0;
        for (int w = 0; w < 3; w++)
            score += fabs(unit_component(vol->affine, w, perms[p][w]));
        if (score > best_score + 1e-12) {
            best_score = score;
            best = p;
        }
    }
    size_t dims[3] = {vol->nx, vol->ny, vol->nz};
    for (int a = 0; a < 3; a++) {
        int s = perms[best][a];
        xf->perm[a] = s;
        double c = unit_component(vol->affine, a, s);
        xf->flip[a] = (c >= 0 ? 1 : -1) != canon_sign[a];
        xf->src_dims[a] = dims[a];
    }
    memcpy(xf->src_affine, vol->affine, sizeof xf->src_affine);
    memcpy(xf->src_spacing, vol->spacing, sizeof xf->src_spacing);
}

/* For each canonical axis: its size, the source stride per step and the
 * source offset of canonical index 0. */
static void walk_plan(const cbq_reorient *xf, size_t cdims[3], ptrdiff_t step[3],
                      size_t *origin)
{
    const size_t *d = xf->src_dims;
    size_t stride[3] = {1, d[0], d[0] * d[1]};
    *origin = 0;
    for (int a = 0; a < 3; a++) {
        int s = xf->perm[a];
        cdims[a] = d[s];
        step[a] = xf->flip[a] ? -(ptrdiff_t)stride[s] : (ptrdiff_t)stride[s];
        if (xf->flip[a])
            *origin += (d[s] - 1) * stride[s];
    }
}

/* Copies between canonical (contiguous) and source (strided) layouts. */
static void transfer(float *canon, float *src, const cbq_reorient *xf, int to_canon)
{
    size_t cd[3], origin;
    ptrdiff_t step[3];
    walk_plan(xf, cd, step, &origin);
    size_t c = 0;
    for (size_t k = 0; k < cd[2]; k++)
        for (size_t j = 0; j < cd[1]; j++) {
            ptrdiff_t s = (ptrdiff_t)origin + (ptrdiff_t)k * step[2] + (ptrdiff_t)j * step[1];
            for (size_t i = 0; i < cd[0]; i++, c++, s += step[0]) {
                if (to_canon)
                    canon[c] = src[s];
                else
                    src[s] = canon[c];
            }
        }
}

/* The canonical grid's affine and spacing, from the source's as xf keeps
 * them. Canonical index c_a = source index s or (n_s - 1 - s): world(c) =
 * A_src * M * c, with M the signed permutation plus the flip offsets. */
static void canonical_geometry(cbq_volume *out, const cbq_reorient *xf)
{
    memset(out->affine, 0, sizeof out->affine);
    for (int r = 0; r < 3; r++) {
        double t = xf->src_affine[r][3];
        for (int a = 0; a < 3; a++) {
            int s = xf->perm[a];
            double col = xf->src_affine[r][s];
            out->affine[r][a] = xf->flip[a] ? -col : col;
            if (xf->flip[a])
                t += col * (double)(xf->src_dims[s] - 1);
        }
        out->affine[r][3] = t;
    }
    out->affine[3][3] = 1;
    for (int a = 0; a < 3; a++)
        out->spacing[a] = xf->src_spacing[xf->perm[a]];
}

int cbq_volume_canonical(cbq_volume *out, const cbq_volume *in, cbq_reorient *xf_out,
                         cbq_error *err)
{
    cbq_reorient xf;
    cbq_reorient_plan(&xf, in);
    size_t cd[3], origin;
    ptrdiff_t step[3];
    walk_plan(&xf, cd, step, &origin);
    CBQ_TRY(cbq_volume_alloc(out, cd[0], cd[1], cd[2], NULL, 0, err));
    cbq_io_advise_huge(out);
    transfer(out->data, in->data, &xf, 1);
    canonical_geometry(out, &xf);
    if (xf_out)
        *xf_out = xf;
    return CBQ_OK;
}

static int keeps_voxel_order(const cbq_reorient *xf)
{
    for (int a = 0; a < 3; a++)
        if (xf->perm[a] != a || xf->flip[a])
            return 0;
    return 1;
}

int cbq_volume_canonical_move(cbq_volume *out, cbq_volume *in, cbq_reorient *xf_out,
                              cbq_error *err)
{
    cbq_reorient xf;
    cbq_reorient_plan(&xf, in);
    if (!keeps_voxel_order(&xf)) {
        int rc = cbq_volume_canonical(out, in, xf_out, err);
        cbq_volume_free(in);
        return rc;
    }
    /* Already in canonical voxel order (a volume written by cbctiq, or on
     * the model's grid): the voxels move, only the affine is rebuilt, as
     * cbq_volume_canonical rebuilds it. */
    *out = *in;
    memset(in, 0, sizeof *in);
    canonical_geometry(out, &xf);
    if (xf_out)
        *xf_out = xf;
    return CBQ_OK;
}

int cbq_volume_uncanonical(cbq_volume *out, const cbq_volume *canon, const cbq_reorient *xf,
                           cbq_error *err)
{
    size_t cd[3], origin;
    ptrdiff_t step[3];
    walk_plan(xf, cd, step, &origin);
    if (canon->nx != cd[0] || canon->ny != cd[1] || canon->nz != cd[2])
        return CBQ_FAIL(err, CBQ_ERR_ARG,
                        "map of %zux%zux%zu voxels does not match the canonical grid %zux%zux%zu",
                        canon->nx, canon->ny, canon->nz, cd[0], cd[1], cd[2]);
    CBQ_TRY(cbq_volume_alloc(out, xf->src_dims[0], xf->src_dims[1], xf->src_dims[2],
                             xf->src_spacing, 0, err));
    transfer(canon->data, out->data, xf, 0);
    memcpy(out->affine, xf->src_affine, sizeof out->affine);
    return CBQ_OK;
}
