/* avgpool2d.c - torch.nn.AvgPool2d with PyTorch's defaults: ceil_mode False,
 * count_include_pad True, so every window divides by kernel_h * kernel_w
 * (padding counts as zeros). */
#include <string.h>

#include "nn/layer.h"

static size_t pool_out(size_t in, int k, int s, int p)
{
    return (in + 2 * (size_t)p - (size_t)k) / (size_t)s + 1;
}

void avgpool2d_forward(float *out, const float *in, const cbq_pool2d_cfg *c, size_t planes,
                       size_t h, size_t w, int threads)
{
    const size_t oh = pool_out(h, c->kernel_h, c->stride_h, c->pad_h);
    const size_t ow = pool_out(w, c->kernel_w, c->stride_w, c->pad_w);
    const double area = (double)c->kernel_h * c->kernel_w;
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
                o[y * ow + xo] = (float)(acc / area);
            }
    }
}

void avgpool2d_backward(float *din, const float *dout, const cbq_pool2d_cfg *c, size_t planes,
                        size_t h, size_t w, int threads)
{
    const size_t oh = pool_out(h, c->kernel_h, c->stride_h, c->pad_h);
    const size_t ow = pool_out(w, c->kernel_w, c->stride_w, c->pad_w);
    const float inv_area = (float)(1.0 / ((double)c->kernel_h * c->kernel_w));
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long pl = 0; pl < (long)planes; pl++) {
        const float *g = dout + (size_t)pl * oh * ow;
        float *d = din + (size_t)pl * h * w;
        memset(d, 0, h * w * sizeof *d);
        for (size_t y = 0; y < oh; y++)
            for (size_t xo = 0; xo < ow; xo++) {
                long y0 = (long)(y * (size_t)c->stride_h) - c->pad_h;
                long x0 = (long)(xo * (size_t)c->stride_w) - c->pad_w;
                float v = g[y * ow + xo] * inv_area;
                for (long iy = y0; iy < y0 + c->kernel_h; iy++)
                    for (long ix = x0; ix < x0 + c->kernel_w; ix++)
                        if (iy >= 0 && iy < (long)h && ix >= 0 && ix < (long)w)
                            d[iy * (long)w + ix] += v;
            }
    }
}
