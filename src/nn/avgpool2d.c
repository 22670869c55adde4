/* avgpool2d.c - torch.nn.AvgPool2d with count_include_pad True (PyTorch's
 * default): padding counts as zeros, so a window divides by its area inside
 * the padded input, kernel_h * kernel_w except for the last window of a
 * ceil_mode pooling, which may hang over the right/bottom padding (PyTorch's
 * avg_pool2d kernel: hend = min(hstart + kH, in + pad), pool_size =
 * (hend - hstart) * (wend - wstart)). */
#include <string.h>

#include "nn/layer.h"

/* The divisor of the window starting at (y0, x0) (padded coordinates - pad). */
static double window_area(const cbq_pool2d_cfg *c, size_t h, size_t w, long y0, long x0)
{
    long y1 = y0 + c->kernel_h, x1 = x0 + c->kernel_w;
    if (y1 > (long)h + c->pad_h)
        y1 = (long)h + c->pad_h;
    if (x1 > (long)w + c->pad_w)
        x1 = (long)w + c->pad_w;
    return (double)(y1 - y0) * (double)(x1 - x0);
}

void avgpool2d_forward(float *out, const float *in, const cbq_pool2d_cfg *c, size_t planes,
                       size_t h, size_t w, int threads)
{
    const size_t oh = pool2d_out_size(h, c->kernel_h, c->stride_h, c->pad_h, c->ceil_mode);
    const size_t ow = pool2d_out_size(w, c->kernel_w, c->stride_w, c->pad_w, c->ceil_mode);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long pl = 0; pl < (long)planes; pl++) {
        const float *x = in + (size_t)pl * h * w;
        float *o = out + (size_t)pl * oh * ow;
        for (size_t y = 0; y < oh; y++)
            for (size_t xo = 0; xo < ow; xo++) {
                long y0 = (long)(y * (size_t)c->stride_h) - c->pad_h;
                long x0 = (long)(xo * (size_t)c->stride_w) - c->pad_w;
                double acc = 0.0;
                for (long iy = y0; iy < y0 + c->kernel_h; iy++)
                    for (long ix = x0; ix < x0 + c->kernel_w; ix++)
                        if (iy >= 0 && iy < (long)h && ix >= 0 && ix < (long)w)
                            acc += x[iy * (long)w + ix];
                o[y * ow + xo] = (float)(acc / window_area(c, h, w, y0, x0));
            }
    }
}

void avgpool2d_backward(float *din, const float *dout, const cbq_pool2d_cfg *c, size_t planes,
                        size_t h, size_t w, int threads)
{
    const size_t oh = pool2d_out_size(h, c->kernel_h, c->stride_h, c->pad_h, c->ceil_mode);
    const size_t ow = pool2d_out_size(w, c->kernel_w, c->stride_w, c->pad_w, c->ceil_mode);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long pl = 0; pl < (long)planes; pl++) {
        const float *g = dout + (size_t)pl * oh * ow;
        float *d = din + (size_t)pl * h * w;
        memset(d, 0, h * w * sizeof *d);
        for (size_t y = 0; y < oh; y++)
            for (size_t xo = 0; xo < ow; xo++) {
                long y0 = (long)(y * (size_t)c->stride_h) - c->pad_h;
                long x0 = (long)(xo * (size_t)c->stride_w) - c->pad_w;
                float v = g[y * ow + xo] * (float)(1.0 / window_area(c, h, w, y0, x0));
                for (long iy = y0; iy < y0 + c->kernel_h; iy++)
                    for (long ix = x0; ix < x0 + c->kernel_w; ix++)
                        if (iy >= 0 && iy < (long)h && ix >= 0 && ix < (long)w)
                            d[iy * (long)w + ix] += v;
            }
    }
}
