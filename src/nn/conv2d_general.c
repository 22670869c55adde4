/* conv2d_general.c - torch.nn.Conv2d with dilation and groups (PyTorch 1.13:
 * output = floor((in + 2*pad - dilation*(kernel-1) - 1) / stride) + 1; group
 * g maps input channels [g*Cin/G, (g+1)*Cin/G) to output channels
 * [g*Cout/G, (g+1)*Cout/G) with weight [Cout, Cin/G, KH, KW]).
 *
 * The same scheme as conv2d.c, per group: a block of output rows of one
 * sample is unfolded (im2col with dilated taps) from the group's input
 * channels only, then one SGEMM per group. conv2d.c hands a convolution
 * over here when dilation or groups is not 1, so that its tuned paths for
 * the plain case stay as they are. Depthwise convolutions (groups = Cin)
 * are correct here but not fast: their GEMMs have one row per output
 * channel.
 *
 * Threads: the forward splits (sample, row block) items statically, each
 * output computed by one GEMM whose shape does not depend on the thread
 * count; the backward splits samples statically with per-thread weight
 * gradient accumulators summed in thread order. Both are bit-identical run
 * after run for a given thread count.
 */
#include <omp.h>
#include <string.h>

#include "cbctiq/gemm.h"
#include "nn/layer.h"

/* dilation and groups: 0 (a spec built before they existed) reads as 1 */
static size_t dil_h(const cbq_conv2d_cfg *c) { return c->dilation_h > 0 ? (size_t)c->dilation_h : 1; }
static size_t dil_w(const cbq_conv2d_cfg *c) { return c->dilation_w > 0 ? (size_t)c->dilation_w : 1; }
static size_t groups_of(const cbq_conv2d_cfg *c) { return c->groups > 0 ? (size_t)c->groups : 1; }

int conv2d_is_general(const cbq_conv2d_cfg *cfg)
{
    return dil_h(cfg) != 1 || dil_w(cfg) != 1 || groups_of(cfg) != 1;
}

size_t conv2d_out_h(const cbq_conv2d_cfg *cfg, size_t h)
{
    return conv2d_out_size(h, (int)(dil_h(cfg) * (size_t)(cfg->kernel_h - 1) + 1), cfg->stride_h,
                           cfg->pad_h);
}

size_t conv2d_out_w(const cbq_conv2d_cfg *cfg, size_t w)
{
    return conv2d_out_size(w, (int)(dil_w(cfg) * (size_t)(cfg->kernel_w - 1) + 1), cfg->stride_w,
                           cfg->pad_w);
}

/* Rows of one group's unfolded patch: Cin/G * KH * KW. */
static size_t group_patch(const cbq_conv2d_cfg *c)
{
    return (size_t)c->in_channels / groups_of(c) * (size_t)c->kernel_h * (size_t)c->kernel_w;
}

/* Output rows per block, so that a group's unfolded block stays near
 * 512 KiB (conv2d.c gives the measurement behind that size). */
static size_t block_rows(const cbq_conv2d_cfg *c, size_t oh, size_t ow)
{
    size_t rows = ((size_t)1 << 17) / group_patch(c) / ow;
    if (rows < 1)
        rows = 1;
    return rows > oh ? oh : rows;
}

size_t conv2d_general_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    size_t oh = conv2d_out_h(cfg, h), ow = conv2d_out_w(cfg, w);
    return group_patch(cfg) * block_rows(cfg, oh, ow) * ow;
}

size_t conv2d_general_dw_private_floats(const cbq_conv2d_cfg *cfg)
{
    return (size_t)cfg->out_channels * (group_patch(cfg) + 1);
}

/* Valid output columns [*lo, *hi) of kernel column kj (input inside the row). */
static void valid_cols(const cbq_conv2d_cfg *c, size_t w, size_t ow, int kj, size_t *lo, size_t *hi)
{
    long s = c->stride_w, off = (long)((size_t)kj * dil_w(c)) - c->pad_w; /* ix = x*s + off */
    long l = off >= 0 ? 0 : (-off + s - 1) / s;
    long h = ((long)w - 1 - off) < 0 ? 0 : ((long)w - 1 - off) / s + 1;
    if (h > (long)ow)
        h = (long)ow;
    if (l > h)
        l = h;
    *lo = (size_t)l;
    *hi = (size_t)h;
}

/* Input row of output row y and kernel row ki, or -1 in the padding. */
static long tap_row(const cbq_conv2d_cfg *c, size_t h, size_t y, int ki)
{
    long iy = (long)(y * (size_t)c->stride_h) - c->pad_h + (long)((size_t)ki * dil_h(c));
    return iy >= 0 && iy < (long)h ? iy : -1;
}

/* col [K, (y1-y0)*OW] from `channels` planes at in: row (c, ki, kj), column
 * (y-y0)*OW + x holds in[c][y*sh - ph + ki*dh][x*sw - pw + kj*dw], zero in
 * the padding. */
static void im2col(float *col, const float *in, size_t channels, const cbq_conv2d_cfg *c, size_t h,
                   size_t w, size_t ow, size_t y0, size_t y1)
{
    const size_t cols = (y1 - y0) * ow, kh = (size_t)c->kernel_h, kw = (size_t)c->kernel_w;
    for (size_t ch = 0; ch < channels; ch++)
        for (int ki = 0; ki < c->kernel_h; ki++)
            for (int kj = 0; kj < c->kernel_w; kj++) {
                float *row = col + ((ch * kh + (size_t)ki) * kw + (size_t)kj) * cols;
                size_t lo, hi;
                valid_cols(c, w, ow, kj, &lo, &hi);
                long off = (long)((size_t)kj * dil_w(c)) - c->pad_w;
                for (size_t y = y0; y < y1; y++) {
                    long iy = tap_row(c, h, y, ki);
                    float *dst = row + (y - y0) * ow;
                    memset(dst, 0, ow * sizeof *dst);
                    if (iy < 0)
                        continue;
                    const float *src = in + ch * h * w + (size_t)iy * w;
                    for (size_t x = lo; x < hi; x++)
                        dst[x] = src[(long)(x * (size_t)c->stride_w) + off];
                }
            }
}

/* The adjoint of im2col: in += each entry of col at its place. */
static void col2im_add(float *in, const float *col, size_t channels, const cbq_conv2d_cfg *c,
                       size_t h, size_t w, size_t ow, size_t y0, size_t y1)
{
    const size_t cols = (y1 - y0) * ow, kh = (size_t)c->kernel_h, kw = (size_t)c->kernel_w;
    for (size_t ch = 0; ch < channels; ch++)
        for (int ki = 0; ki < c->kernel_h; ki++)
            for (int kj = 0; kj < c->kernel_w; kj++) {
                const float *row = col + ((ch * kh + (size_t)ki) * kw + (size_t)kj) * cols;
                size_t lo, hi;
                valid_cols(c, w, ow, kj, &lo, &hi);
                long off = (long)((size_t)kj * dil_w(c)) - c->pad_w;
                for (size_t y = y0; y < y1; y++) {
                    long iy = tap_row(c, h, y, ki);
                    if (iy < 0)
                        continue;
                    float *dst = in + ch * h * w + (size_t)iy * w;
                    const float *src = row + (y - y0) * ow;
                    for (size_t x = lo; x < hi; x++)
                        dst[(long)(x * (size_t)c->stride_w) + off] += src[x];
                }
            }
}

void conv2d_general_forward(float *out, const float *in, const float *weight, const float *bias,
                            const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                            float *workspace, int threads)
{
    const size_t oh = conv2d_out_h(cfg, h), ow = conv2d_out_w(cfg, w), plane = oh * ow;
    const size_t groups = groups_of(cfg), cin_g = (size_t)cfg->in_channels / groups;
    const size_t cout = (size_t)cfg->out_channels, cout_g = cout / groups, k = group_patch(cfg);
    const size_t in_size = (size_t)cfg->in_channels * h * w;
    const size_t ws = conv2d_general_workspace_floats(cfg, h, w), rows = block_rows(cfg, oh, ow);
    const size_t blocks = (oh + rows - 1) / rows, items = n * blocks;
#pragma omp parallel num_threads(threads)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        float *col = workspace + t * ws;
        for (size_t it = items * t / nt; it < items * (t + 1) / nt; it++) {
            const size_t s = it / blocks, y0 = (it % blocks) * rows;
            const size_t y1 = y0 + rows < oh ? y0 + rows : oh, cols = (y1 - y0) * ow;
            for (size_t g = 0; g < groups; g++) {
                im2col(col, in + s * in_size + g * cin_g * h * w, cin_g, cfg, h, w, ow, y0, y1);
                float *y = out + (s * cout + g * cout_g) * plane + y0 * ow;
                if (bias)
                    for (size_t o = 0; o < cout_g; o++)
                        for (size_t i = 0; i < cols; i++)
                            y[o * plane + i] = bias[g * cout_g + o];
                cbq_sgemm(0, 0, cout_g, cols, k, 1.0f, weight + g * cout_g * k, k, col, cols,
                          bias ? 1.0f : 0.0f, y, plane);
            }
        }
    }
}

/* One sample's backward: pdw [Cout, K] and its bias sums [Cout] (private,
 * may be NULL) accumulate; din [Cin, h, w] (may be NULL) is overwritten. */
static void backward_sample(float *din, float *pdw, const float *dout, const float *in,
                            const float *weight, const cbq_conv2d_cfg *cfg, size_t h, size_t w,
                            float *col)
{
    const size_t oh = conv2d_out_h(cfg, h), ow = conv2d_out_w(cfg, w), plane = oh * ow;
    const size_t groups = groups_of(cfg), cin_g = (size_t)cfg->in_channels / groups;
    const size_t cout = (size_t)cfg->out_channels, cout_g = cout / groups, k = group_patch(cfg);
    const size_t rows = block_rows(cfg, oh, ow);
    if (din)
        memset(din, 0, (size_t)cfg->in_channels * h * w * sizeof *din);
    for (size_t y0 = 0; y0 < oh; y0 += rows) {
        const size_t y1 = y0 + rows < oh ? y0 + rows : oh, cols = (y1 - y0) * ow;
        for (size_t g = 0; g < groups; g++) {
            const float *gd = dout + g * cout_g * plane + y0 * ow;
            if (pdw) {
                im2col(col, in + g * cin_g * h * w, cin_g, cfg, h, w, ow, y0, y1);
                /* dW_g [Cout/G, K] += dout_g [Cout/G, cols] * col^T [cols, K] */
                cbq_sgemm(0, 1, cout_g, k, cols, 1.0f, gd, plane, col, cols, 1.0f,
                          pdw + g * cout_g * k, k);
                for (size_t o = 0; o < cout_g; o++) {
                    float acc = 0.0f;
                    for (size_t i = 0; i < cols; i++)
                        acc += gd[o * plane + i];
                    pdw[cout * k + g * cout_g + o] += acc;
                }
            }
            if (din) {
                /* col [K, cols] = W_g^T [K, Cout/G] * dout_g [Cout/G, cols] */
                cbq_sgemm(1, 0, k, cols, cout_g, 1.0f, weight + g * cout_g * k, k, gd, plane, 0.0f,
                          col, cols);
                col2im_add(din + g * cin_g * h * w, col, cin_g, cfg, h, w, ow, y0, y1);
            }
        }
    }
}

void conv2d_general_backward(float *din, float *dweight, float *dbias, const float *dout,
                             const float *in, const float *weight, const cbq_conv2d_cfg *cfg,
                             size_t n, size_t h, size_t w, float *workspace, float *dw_private,
                             int threads)
{
    const size_t oh = conv2d_out_h(cfg, h), ow = conv2d_out_w(cfg, w);
    const size_t cout = (size_t)cfg->out_channels, k = group_patch(cfg);
    const size_t in_size = (size_t)cfg->in_channels * h * w, out_size = cout * oh * ow;
    const size_t ws = conv2d_general_workspace_floats(cfg, h, w);
    const size_t priv = conv2d_general_dw_private_floats(cfg);
    const int want_dw = dweight != NULL || dbias != NULL;
    int used = 1;
#pragma omp parallel num_threads(threads)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        if (t == 0)
            used = (int)nt;
        float *pdw = want_dw ? dw_private + t * priv : NULL;
        if (pdw)
            memset(pdw, 0, priv * sizeof *pdw);
        for (size_t s = n * t / nt; s < n * (t + 1) / nt; s++)
            backward_sample(din ? din + s * in_size : NULL, pdw, dout + s * out_size,
                            in + s * in_size, weight, cfg, h, w, workspace + t * ws);
    }
    if (!want_dw)
        return;
    conv2d_sum_private_dw(dweight, dbias, dw_private, used, priv, cout * k, cout);
}
