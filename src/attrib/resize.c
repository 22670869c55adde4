/* resize.c - bilinear resizing of maps from the target layer's grid to the
 * model input's, with PyTorch's arithmetic so that maps agree with
 * F.interpolate(mode='bilinear') to float rounding.
 *
 * align_corners=False (the contract in docs/formats.md): source coordinate
 * s = (in/out) * (d + 0.5) - 0.5, clamped below at 0; the upper neighbour is
 * clamped to the last pixel. align_corners=True (Score-CAM's masks, as
 * torch.nn.UpsamplingBilinear2d): s = d * (in - 1) / (out - 1).
 * Reference: PyTorch aten/src/ATen/native/UpSample.h
 * (area_pixel_compute_source_index) and cpu/UpSampleKernel.cpp.
 */
#include "cbctiq/attrib.h"

#include <stdint.h>

typedef struct {
    size_t i0, i1;
    float l0, l1;
} lerp_index;

static lerp_index source_index(size_t d, size_t in, size_t out, int align_corners)
{
    float s;
    if (align_corners) {
        float scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
        s = scale * (float)d;
    } else {
        float scale = (float)in / (float)out;
        s = scale * ((float)d + 0.5f) - 0.5f;
        if (s < 0.0f)
            s = 0.0f;
    }
    lerp_index r;
    r.i0 = (size_t)s;
    if (r.i0 > in - 1)
        r.i0 = in - 1;
    r.i1 = r.i0 < in - 1 ? r.i0 + 1 : r.i0;
    r.l1 = s - (float)r.i0;
    r.l0 = 1.0f - r.l1;
    return r;
}

enum { CHUNK = 256 }; /* output columns whose x taps are computed once */

/* Two source rows interpolated along x for the columns of one chunk, kept
 * while the output rows below reuse them (an upsampling by f reads each
 * source row for about 2f output rows). */
typedef struct {
    size_t src[2]; /* the source row in each slot; SIZE_MAX: none */
    float val[2][CHUNK];
} row_pair;

/* Source row r along x, computed into the slot that `keep` (the row's
 * partner for the same output row) does not hold. */
static const float *lerp_row(row_pair *p, size_t r, size_t keep, const float *in, size_t w,
                             const lerp_index *rx, size_t n)
{
    for (int s = 0; s < 2; s++)
        if (p->src[s] == r)
            return p->val[s];
    int s = p->src[0] == keep ? 1 : 0;
    const float *row = in + r * w;
    float *v = p->val[s];
    for (size_t j = 0; j < n; j++)
        v[j] = rx[j].l0 * row[rx[j].i0] + rx[j].l1 * row[rx[j].i1];
    p->src[s] = r;
    return v;
}

/* out = ly0 * (lx0 * a + lx1 * b) + ly1 * (lx0 * c + lx1 * d), the same
 * float operations in the same order as PyTorch's, with the x part of
 * each source row shared by every output row that reads it. */
static void resize_plane(const float *in, size_t h, size_t w, float *out, size_t H, size_t W,
                         int align_corners)
{
    lerp_index rx[CHUNK];
    row_pair rows;
    for (size_t x0 = 0; x0 < W; x0 += CHUNK) {
        size_t n = W - x0 < CHUNK ? W - x0 : CHUNK;
        for (size_t j = 0; j < n; j++)
            rx[j] = source_index(x0 + j, w, W, align_corners);
        rows.src[0] = rows.src[1] = SIZE_MAX;
        for (size_t y = 0; y < H; y++) {
            lerp_index ry = source_index(y, h, H, align_corners);
            const float *r0 = lerp_row(&rows, ry.i0, ry.i1, in, w, rx, n);
            const float *r1 = lerp_row(&rows, ry.i1, ry.i0, in, w, rx, n);
            float *o = out + y * W + x0;
            for (size_t j = 0; j < n; j++)
                o[j] = ry.l0 * r0[j] + ry.l1 * r1[j];
        }
    }
}

void cbq_resize_bilinear(const float *src, size_t planes, size_t h, size_t w, float *dst,
                         size_t H, size_t W, int align_corners)
{
    for (size_t p = 0; p < planes; p++)
        resize_plane(src + p * h * w, h, w, dst + p * H * W, H, W, align_corners);
}
