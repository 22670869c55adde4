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

void cbq_resize_bilinear(const float *src, size_t planes, size_t h, size_t w, float *dst,
                         size_t H, size_t W, int align_corners)
{
    for (size_t p = 0; p < planes; p++) {
        const float *in = src + p * h * w;
        float *out = dst + p * H * W;
        for (size_t y = 0; y < H; y++) {
            lerp_index ry = source_index(y, h, H, align_corners);
            const float *r0 = in + ry.i0 * w, *r1 = in + ry.i1 * w;
            for (size_t x = 0; x < W; x++) {
                lerp_index rx = source_index(x, w, W, align_corners);
                out[y * W + x] = ry.l0 * (rx.l0 * r0[rx.i0] + rx.l1 * r0[rx.i1]) +
                                 ry.l1 * (rx.l0 * r1[rx.i0] + rx.l1 * r1[rx.i1]);
            }
        }
    }
}
