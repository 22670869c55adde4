/* conv2d.c - 2-D convolution as im2col + one SGEMM per sample (PyTorch
 * torch.nn.Conv2d, dilation 1, groups 1, zero padding).
 *
 * Work is split over samples: each OpenMP thread unfolds its own samples
 * into its own slice of the workspace and calls single-threaded BLAS, so
 * the GEMMs are large (N = OH*OW) and nothing is shared. Weight gradients
 * go to per-thread accumulators summed afterwards in thread order, which
 * keeps results bit-identical for a given thread count. A 1x1, stride-1,
 * unpadded convolution is already a GEMM and skips the unfolding.
 */
#include <omp.h>
#include <string.h>

#include "cbctiq/gemm.h"
#include "nn/layer.h"

size_t conv2d_out_size(size_t in, int kernel, int stride, int pad)
{
    return (in + 2 * (size_t)pad - (size_t)kernel) / (size_t)stride + 1;
}

static int is_pointwise(const cbq_conv2d_cfg *c)
{
    return c->kernel_h == 1 && c->kernel_w == 1 && c->stride_h == 1 && c->stride_w == 1 &&
           c->pad_h == 0 && c->pad_w == 0;
}

static size_t patch_len(const cbq_conv2d_cfg *c)
{
    return (size_t)c->in_channels * (size_t)c->kernel_h * (size_t)c->kernel_w;
}

size_t conv2d_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    if (is_pointwise(cfg))
        return 0;
    size_t oh = conv2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h);
    size_t ow = conv2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w);
    return patch_len(cfg) * oh * ow;
}

size_t conv2d_dw_private_floats(const cbq_conv2d_cfg *cfg)
{
    return (size_t)cfg->out_channels * (patch_len(cfg) + 1);
}

/* col [Cin*KH*KW, OH*OW]: row (c, ki, kj) holds in[c][oh*s - p + ki][ow*s - p + kj]. */
static void im2col(float *col, const float *in, const cbq_conv2d_cfg *c, size_t h, size_t w,
                   size_t oh, size_t ow)
{
    for (size_t ch = 0; ch < (size_t)c->in_channels; ch++) {
        const float *plane = in + ch * h * w;
        for (int ki = 0; ki < c->kernel_h; ki++) {
            for (int kj = 0; kj < c->kernel_w; kj++) {
                float *row = col + ((ch * (size_t)c->kernel_h + (size_t)ki) * (size_t)c->kernel_w +
                                    (size_t)kj) * oh * ow;
                for (size_t y = 0; y < oh; y++) {
                    long iy = (long)(y * (size_t)c->stride_h) - c->pad_h + ki;
                    float *dst = row + y * ow;
                    if (iy < 0 || iy >= (long)h) {
                        memset(dst, 0, ow * sizeof *dst);
                        continue;
                    }
                    const float *src = plane + (size_t)iy * w;
                    for (size_t x = 0; x < ow; x++) {
                        long ix = (long)(x * (size_t)c->stride_w) - c->pad_w + kj;
                        dst[x] = (ix >= 0 && ix < (long)w) ? src[ix] : 0.0f;
                    }
                }
            }
        }
    }
}

/* The adjoint of im2col: din (zeroed here) += every patch entry at its place. */
static void col2im(float *in, const float *col, const cbq_conv2d_cfg *c, size_t h, size_t w,
                   size_t oh, size_t ow)
{
    memset(in, 0, (size_t)c->in_channels * h * w * sizeof *in);
    for (size_t ch = 0; ch < (size_t)c->in_channels; ch++) {
        float *plane = in + ch * h * w;
        for (int ki = 0; ki < c->kernel_h; ki++) {
            for (int kj = 0; kj < c->kernel_w; kj++) {
                const float *row = col + ((ch * (size_t)c->kernel_h + (size_t)ki) *
                                          (size_t)c->kernel_w + (size_t)kj) * oh * ow;
                for (size_t y = 0; y < oh; y++) {
                    long iy = (long)(y * (size_t)c->stride_h) - c->pad_h + ki;
                    if (iy < 0 || iy >= (long)h)
                        continue;
                    float *dst = plane + (size_t)iy * w;
                    const float *src = row + y * ow;
                    for (size_t x = 0; x < ow; x++) {
                        long ix = (long)(x * (size_t)c->stride_w) - c->pad_w + kj;
                        if (ix >= 0 && ix < (long)w)
                            dst[ix] += src[x];
                    }
                }
            }
        }
    }
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w, float *workspace,
                    int threads)
{
    const size_t oh = conv2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h);
    const size_t ow = conv2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w);
    const size_t cout = (size_t)cfg->out_channels, k = patch_len(cfg), plane = oh * ow;
    const size_t in_size = (size_t)cfg->in_channels * h * w, ws = conv2d_workspace_floats(cfg, h, w);
    const int direct = is_pointwise(cfg);
#pragma omp parallel num_threads(threads)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        float *col = workspace + t * ws;
        for (size_t s = n * t / nt; s < n * (t + 1) / nt; s++) {
            const float *b = in + s * in_size;
            if (!direct) {
                im2col(col, b, cfg, h, w, oh, ow);
                b = col;
            }
            float *y = out + s * cout * plane;
            if (bias) {
                for (size_t o = 0; o < cout; o++)
                    for (size_t i = 0; i < plane; i++)
                        y[o * plane + i] = bias[o];
            }
            cbq_sgemm(0, 0, cout, plane, k, 1.0f, weight, k, b, plane, bias ? 1.0f : 0.0f, y, plane);
        }
    }
}

void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                     float *workspace, float *dw_private, int threads)
{
    const size_t oh = conv2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h);
    const size_t ow = conv2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w);
    const size_t cout = (size_t)cfg->out_channels, k = patch_len(cfg), plane = oh * ow;
    const size_t in_size = (size_t)cfg->in_channels * h * w, ws = conv2d_workspace_floats(cfg, h, w);
    const size_t priv = conv2d_dw_private_floats(cfg);
    const int direct = is_pointwise(cfg);
    const int want_dw = dweight != NULL || dbias != NULL;
    int used = 1;
#pragma omp parallel num_threads(threads)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        if (t == 0)
            used = (int)nt;
        float *col = workspace + t * ws;
        float *pdw = want_dw ? dw_private + t * priv : NULL;
        if (pdw)
            memset(pdw, 0, priv * sizeof *pdw);
        for (size_t s = n * t / nt; s < n * (t + 1) / nt; s++) {
            const float *g = dout + s * cout * plane;
            if (pdw) {
                const float *b = in + s * in_size;
                if (!direct) {
                    im2col(col, b, cfg, h, w, oh, ow);
                    b = col;
                }
                /* dW [Cout, K] += dout_s [Cout, P] * col^T [P, K] */
                cbq_sgemm(0, 1, cout, k, plane, 1.0f, g, plane, b, plane, 1.0f, pdw, k);
                for (size_t o = 0; o < cout; o++) {
                    float acc = 0.0f;
                    for (size_t i = 0; i < plane; i++)
                        acc += g[o * plane + i];
                    pdw[cout * k + o] += acc;
                }
            }
            if (din) {
                float *d = din + s * in_size;
                /* col [K, P] = W^T [K, Cout] * dout_s [Cout, P] */
                cbq_sgemm(1, 0, k, plane, cout, 1.0f, weight, k, g, plane, 0.0f, direct ? d : col,
                          plane);
                if (!direct)
                    col2im(d, col, cfg, h, w, oh, ow);
            }
        }
    }
    if (!want_dw)
        return;
    for (int t = 0; t < used; t++) {
        const float *pdw = dw_private + (size_t)t * priv;
        if (dweight)
            for (size_t i = 0; i < cout * k; i++)
                dweight[i] += pdw[i];
        if (dbias)
            for (size_t o = 0; o < cout; o++)
                dbias[o] += pdw[cout * k + o];
    }
}

/* ---- reference ------------------------------------------------------------ */

/* Input index of output (y, x) and kernel tap (ki, kj), or -1 in the padding. */
static long tap(const cbq_conv2d_cfg *c, size_t h, size_t w, size_t y, size_t x, int ki, int kj)
{
    long iy = (long)(y * (size_t)c->stride_h) - c->pad_h + ki;
    long ix = (long)(x * (size_t)c->stride_w) - c->pad_w + kj;
    if (iy < 0 || iy >= (long)h || ix < 0 || ix >= (long)w)
        return -1;
    return iy * (long)w + ix;
}

void conv2d_forward_ref(float *out, const float *in, const float *weight, const float *bias,
                        const cbq_conv2d_cfg *c, size_t n, size_t h, size_t w)
{
    const size_t oh = conv2d_out_size(h, c->kernel_h, c->stride_h, c->pad_h);
    const size_t ow = conv2d_out_size(w, c->kernel_w, c->stride_w, c->pad_w);
    const size_t cin = (size_t)c->in_channels, cout = (size_t)c->out_channels;
    const size_t kk = (size_t)c->kernel_h * (size_t)c->kernel_w;
    for (size_t s = 0; s < n; s++)
        for (size_t o = 0; o < cout; o++)
            for (size_t y = 0; y < oh; y++)
                for (size_t x = 0; x < ow; x++) {
                    double acc = bias ? bias[o] : 0.0;
                    for (size_t ci = 0; ci < cin; ci++)
                        for (int ki = 0; ki < c->kernel_h; ki++)
                            for (int kj = 0; kj < c->kernel_w; kj++) {
                                long p = tap(c, h, w, y, x, ki, kj);
                                if (p >= 0)
                                    acc += (double)in[(s * cin + ci) * h * w + (size_t)p] *
                                           weight[(o * cin + ci) * kk + (size_t)ki * (size_t)c->kernel_w + (size_t)kj];
                            }
                    out[((s * cout + o) * oh + y) * ow + x] = (float)acc;
                }
}

void conv2d_backward_ref(float *din, float *dweight, float *dbias, const float *dout,
                         const float *in, const float *weight, const cbq_conv2d_cfg *c, size_t n,
                         size_t h, size_t w)
{
    const size_t oh = conv2d_out_size(h, c->kernel_h, c->stride_h, c->pad_h);
    const size_t ow = conv2d_out_size(w, c->kernel_w, c->stride_w, c->pad_w);
    const size_t cin = (size_t)c->in_channels, cout = (size_t)c->out_channels;
    const size_t kk = (size_t)c->kernel_h * (size_t)c->kernel_w;
    if (din)
        memset(din, 0, n * cin * h * w * sizeof *din);
    for (size_t s = 0; s < n; s++)
        for (size_t o = 0; o < cout; o++)
            for (size_t y = 0; y < oh; y++)
                for (size_t x = 0; x < ow; x++) {
                    float g = dout[((s * cout + o) * oh + y) * ow + x];
                    if (dbias)
                        dbias[o] += g;
                    for (size_t ci = 0; ci < cin; ci++)
                        for (int ki = 0; ki < c->kernel_h; ki++)
                            for (int kj = 0; kj < c->kernel_w; kj++) {
                                long p = tap(c, h, w, y, x, ki, kj);
                                if (p < 0)
                                    continue;
                                size_t wi = (o * cin + ci) * kk + (size_t)ki * (size_t)c->kernel_w + (size_t)kj;
                                size_t ii = (s * cin + ci) * h * w + (size_t)p;
                                if (dweight)
                                    dweight[wi] += g * in[ii];
                                if (din)
                                    din[ii] += g * weight[wi];
                            }
                }
}
