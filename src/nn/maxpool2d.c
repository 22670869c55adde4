/* maxpool2d.c - torch.nn.MaxPool2d (dilation 1). Padding counts as -inf;
 * with ceil_mode the last window may hang over the bottom/right edge, and
 * only its part inside the input counts. Ties go to the FIRST maximum in row-major window order,
 * as PyTorch's CPU kernel does (it replaces only on a strictly greater value);
 * NaN wins like in PyTorch. Backward finds the same index again from the
 * input instead of storing indices, so it needs no extra memory. */
#include <math.h>
#include <string.h>

#include "nn/layer.h"

/* PyTorch's pooling_output_shape; the shape rule (layer_table.c) has
 * checked that the padded input holds one kernel. */
size_t pool2d_out_size(size_t in, int kernel, int stride, int pad, int ceil_mode)
{
    size_t span = in + 2 * (size_t)pad - (size_t)kernel, s = (size_t)stride;
    size_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (out - 1) * s >= in + (size_t)pad)
        out--; /* the last window must start inside the input or the left padding */
    return out;
}

/* Index in the plane of the window's first maximum; -1 if all padding. */
static long window_argmax(const float *x, const cbq_pool2d_cfg *c, size_t h, size_t w, size_t y,
                          size_t xo)
{
    long best = -1;
    float bv = -INFINITY;
    long y0 = (long)(y * (size_t)c->stride_h) - c->pad_h;
    long x0 = (long)(xo * (size_t)c->stride_w) - c->pad_w;
    for (long iy = y0; iy < y0 + c->kernel_h; iy++) {
        if (iy < 0 || iy >= (long)h)
            continue;
        for (long ix = x0; ix < x0 + c->kernel_w; ix++) {
            if (ix < 0 || ix >= (long)w)
                continue;
            float v = x[iy * (long)w + ix];
            if (best < 0 || v > bv || isnan(v)) {
                best = iy * (long)w + ix;
                bv = v;
                if (isnan(v))
                    return best;
            }
        }
    }
    return best;
}

/* 2x2 stride-2 unpadded windows (every pooling of iqnet-s): the same rule
 * unrolled; index 0..3 of the first maximum in row-major order. */
static int is_2x2(const cbq_pool2d_cfg *c)
{
    return c->kernel_h == 2 && c->kernel_w == 2 && c->stride_h == 2 && c->stride_w == 2 &&
           c->pad_h == 0 && c->pad_w == 0 && !c->ceil_mode;
}

static inline int argmax4(float a, float b, float c, float d)
{
    int i = 0;
    float m = a;
    if (b > m || isnan(b)) { if (!isnan(m)) { m = b; i = 1; } }
    if (c > m || isnan(c)) { if (!isnan(m)) { m = c; i = 2; } }
    if (d > m || isnan(d)) { if (!isnan(m)) { i = 3; } }
    return i;
}

static void pool2x2_plane(float *o, const float *x, size_t h, size_t w, size_t oh, size_t ow)
{
    (void)h;
    for (size_t y = 0; y < oh; y++) {
        const float *r0 = x + 2 * y * w, *r1 = r0 + w;
        for (size_t xo = 0; xo < ow; xo++) {
            float v[4] = {r0[2 * xo], r0[2 * xo + 1], r1[2 * xo], r1[2 * xo + 1]};
            o[y * ow + xo] = v[argmax4(v[0], v[1], v[2], v[3])];
        }
    }
}

/* Windows do not overlap: every covered input gets its value or 0 written,
 * so only an odd last row/column needs zeroing. */
static void pool2x2_plane_back(float *d, const float *g, const float *x, size_t h, size_t w,
                               size_t oh, size_t ow)
{
    for (size_t y = 0; y < oh; y++) {
        const float *r0 = x + 2 * y * w, *r1 = r0 + w;
        float *d0 = d + 2 * y * w, *d1 = d0 + w;
        for (size_t xo = 0; xo < ow; xo++) {
            int i = argmax4(r0[2 * xo], r0[2 * xo + 1], r1[2 * xo], r1[2 * xo + 1]);
            float v = g[y * ow + xo];
            d0[2 * xo] = i == 0 ? v : 0.0f;
            d0[2 * xo + 1] = i == 1 ? v : 0.0f;
            d1[2 * xo] = i == 2 ? v : 0.0f;
            d1[2 * xo + 1] = i == 3 ? v : 0.0f;
        }
        if (w > 2 * ow) {
            d0[w - 1] = 0.0f;
            d1[w - 1] = 0.0f;
        }
    }
    if (h > 2 * oh)
        memset(d + 2 * oh * w, 0, (h - 2 * oh) * w * sizeof *d);
}

void maxpool2d_forward(float *out, const float *in, const cbq_pool2d_cfg *cfg, size_t planes,
                       size_t h, size_t w, int threads)
{
    const size_t oh = pool2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h, cfg->ceil_mode);
    const size_t ow = pool2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w, cfg->ceil_mode);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long pl = 0; pl < (long)planes; pl++) {
        const float *x = in + (size_t)pl * h * w;
        float *o = out + (size_t)pl * oh * ow;
        if (is_2x2(cfg)) {
            pool2x2_plane(o, x, h, w, oh, ow);
            continue;
        }
        for (size_t y = 0; y < oh; y++)
            for (size_t xo = 0; xo < ow; xo++) {
                long idx = window_argmax(x, cfg, h, w, y, xo);
                o[y * ow + xo] = idx < 0 ? -INFINITY : x[idx];
            }
    }
}

void maxpool2d_backward(float *din, const float *dout, const float *in, const cbq_pool2d_cfg *cfg,
                        size_t planes, size_t h, size_t w, int threads)
{
    const size_t oh = pool2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h, cfg->ceil_mode);
    const size_t ow = pool2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w, cfg->ceil_mode);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long pl = 0; pl < (long)planes; pl++) {
        const float *x = in + (size_t)pl * h * w;
        const float *g = dout + (size_t)pl * oh * ow;
        float *d = din + (size_t)pl * h * w;
        if (is_2x2(cfg)) {
            pool2x2_plane_back(d, g, x, h, w, oh, ow);
            continue;
        }
        memset(d, 0, h * w * sizeof *d);
        for (size_t y = 0; y < oh; y++)
            for (size_t xo = 0; xo < ow; xo++) {
                long idx = window_argmax(x, cfg, h, w, y, xo);
                if (idx >= 0)
                    d[idx] += g[y * ow + xo];
            }
    }
}
