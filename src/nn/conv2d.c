/* conv2d.c - 2-D convolution as im2col + one SGEMM per sample (PyTorch
 * torch.nn.Conv2d, dilation 1, groups 1, zero padding; other dilations and
 * groups go to conv2d_general.c).
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

/* Output rows per block: the unfolded block [K, rows*OW] is kept near
 * 512 KiB so it stays in L2 between im2col and the GEMM that reads it
 * (measured: OpenBLAS keeps 60-90 GFLOP/s on such blocks, while unfolding a
 * whole 128x128 sample spills to memory and im2col dominates). */
static size_t block_rows(const cbq_conv2d_cfg *c, size_t oh, size_t ow)
{
    size_t target = ((size_t)1 << 17) / patch_len(c); /* floats per block row-set */
    size_t rows = target / ow;
    if (rows < 1)
        rows = 1;
    return rows > oh ? oh : rows;
}

/* Stride-1 convolutions get din as a convolution of dout with the flipped,
 * transposed kernel (padding k-1-p): an im2col copy plus a GEMM with a long
 * inner dimension (Cout*KH*KW) instead of a GEMM with inner dimension Cout
 * and a scatter-add col2im. */
static int din_as_conv(const cbq_conv2d_cfg *c)
{
    return !is_pointwise(c) && c->stride_h == 1 && c->stride_w == 1 && c->pad_h < c->kernel_h &&
           c->pad_w < c->kernel_w;
}

static cbq_conv2d_cfg transposed_cfg(const cbq_conv2d_cfg *c)
{
    cbq_conv2d_cfg t = {c->out_channels, c->in_channels, c->kernel_h, c->kernel_w, 1, 1,
                        c->kernel_h - 1 - c->pad_h, c->kernel_w - 1 - c->pad_w, 0, 1, 1, 1,
                        c->algorithm};
    return t;
}

/* Output planes smaller than this many pixels are unfolded several samples
 * side by side, so that one GEMM has at least this many columns: one GEMM
 * per sample on a 7x7 or 4x4 plane re-reads (and OpenBLAS re-packs) the whole
 * weight matrix for a few dozen columns, and its weight gradient is a sum of
 * rank-49 or rank-16 updates of the whole [Cout, K] accumulator. */
enum { GROUP_MIN_COLS = 256 };

/* Most samples one GEMM takes for this shape (1: one sample, or a block of
 * one sample's rows, as before). A pointwise convolution reads its input in
 * place and is never grouped. */
static size_t group_max(const cbq_conv2d_cfg *c, size_t oplane)
{
    if (is_pointwise(c) || oplane >= GROUP_MIN_COLS)
        return 1;
    return (GROUP_MIN_COLS + oplane - 1) / oplane;
}

/* Samples per GEMM for a batch of n: at most half the batch, so that two
 * threads both have work. It depends on the shape and n only, never on the
 * thread count, so the forward stays bit-identical for any thread count. */
static size_t group_size(const cbq_conv2d_cfg *c, size_t oplane, size_t n)
{
    size_t g = group_max(c, oplane), half = n / 2;
    if (g > half)
        g = half;
    return g < 1 ? 1 : g;
}

/* Grouped scratch: the unfolded columns of g samples (input, or dout under
 * the transposed kernel), then an output / gradient block of g samples. */
static size_t grouped_col_floats(const cbq_conv2d_cfg *c, size_t h, size_t w, size_t oplane,
                                 size_t g)
{
    size_t col = patch_len(c) * g * oplane;
    if (din_as_conv(c)) {
        cbq_conv2d_cfg t = transposed_cfg(c);
        size_t back = patch_len(&t) * g * h * w;
        col = col > back ? col : back;
    }
    return col;
}

static size_t grouped_aux_floats(const cbq_conv2d_cfg *c, size_t h, size_t w, size_t oplane,
                                 size_t g)
{
    size_t out = (size_t)c->out_channels * g * oplane, in = (size_t)c->in_channels * g * h * w;
    return out > in ? out : in;
}

static size_t gemm_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w);

/* Winograd's transforms, and im2col's unfolding for the weight gradient
 * where Winograd does not compute it and for a net switched to
 * CBQ_CONV_GEMM after its workspace was sized (conv2d_backward_im2col can
 * then run any shape). */
static size_t winograd_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    size_t ws = conv2d_winograd_workspace_floats(cfg, h, w);
    size_t wg = conv2d_winograd_wgrad_eligible(cfg, h, w)
                    ? conv2d_winograd_wgrad_workspace_floats(cfg, h, w)
                    : 0;
    size_t gemm = gemm_workspace_floats(cfg, h, w);
    ws = ws > wg ? ws : wg;
    return ws > gemm ? ws : gemm;
}

/* A convolution with few input channels that Winograd does not take is
 * computed directly (conv2d_direct.c), except its input gradient; not in
 * CBQ_CONV_GEMM mode, which promises im2col + GEMM's arithmetic. */
static int use_direct(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    return cfg->algorithm != CBQ_CONV_GEMM && conv2d_direct_eligible(cfg) &&
           !conv2d_winograd_eligible(cfg, h, w);
}

size_t conv2d_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    if (conv2d_is_general(cfg))
        return conv2d_general_workspace_floats(cfg, h, w);
    /* sized for any algorithm (cbq_net_set_conv_algorithm may switch) */
    cbq_conv2d_cfg any = *cfg;
    any.algorithm = CBQ_CONV_WINOGRAD;
    if (conv2d_winograd_eligible(&any, h, w))
        return winograd_workspace_floats(&any, h, w);
    size_t gemm = gemm_workspace_floats(cfg, h, w);
    if (!use_direct(cfg, h, w))
        return gemm;
    size_t direct = conv2d_direct_workspace_floats(cfg, h, w); /* the input gradient: by GEMM */
    return direct > gemm ? direct : gemm;
}

static size_t gemm_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    if (is_pointwise(cfg))
        return 0;
    size_t oh = conv2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h);
    size_t ow = conv2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w);
    size_t fwd = patch_len(cfg) * block_rows(cfg, oh, ow) * ow;
    const size_t g = group_max(cfg, oh * ow);
    if (g > 1) {
        size_t grouped = grouped_col_floats(cfg, h, w, oh * ow, g) +
                         grouped_aux_floats(cfg, h, w, oh * ow, g);
        fwd = fwd > grouped ? fwd : grouped;
    }
    if (!din_as_conv(cfg))
        return fwd;
    cbq_conv2d_cfg t = transposed_cfg(cfg);
    size_t back = patch_len(&t) * block_rows(&t, h, w) * w;
    /* + the thread's copy of the flipped, transposed kernel */
    return (fwd > back ? fwd : back) + (size_t)cfg->out_channels * patch_len(cfg);
}

size_t conv2d_dw_private_floats(const cbq_conv2d_cfg *cfg)
{
    if (conv2d_is_general(cfg))
        return conv2d_general_dw_private_floats(cfg);
    return (size_t)cfg->out_channels * (patch_len(cfg) + 1);
}

/* Valid output columns [*lo, *hi) of kernel column kj (input inside the row). */
static void valid_cols(const cbq_conv2d_cfg *c, size_t w, size_t ow, int kj, size_t *lo, size_t *hi)
{
    long s = c->stride_w, off = kj - c->pad_w; /* ix = x*s + off */
    long l = off >= 0 ? 0 : (-off + s - 1) / s;
    long h = ((long)w - 1 - off) < 0 ? 0 : ((long)w - 1 - off) / s + 1;
    if (h > (long)ow)
        h = (long)ow;
    if (l > h)
        l = h;
    *lo = (size_t)l;
    *hi = (size_t)h;
}

/* Output rows [*ya, *yb) within [y0, y1) whose input row for kernel row ki
 * lies inside the image. */
static void valid_rows(const cbq_conv2d_cfg *c, size_t h, int ki, size_t y0, size_t y1, size_t *ya,
                       size_t *yb)
{
    size_t a = y0, b = y1;
    while (a < b && (long)(a * (size_t)c->stride_h) - c->pad_h + ki < 0)
        a++;
    while (b > a && (long)((b - 1) * (size_t)c->stride_h) - c->pad_h + ki >= (long)h)
        b--;
    *ya = a;
    *yb = b;
}

/* One unfolded row (c, ki, kj) of a "same"-width stride-1 convolution
 * (OW == W): the valid output rows read one contiguous run of the input
 * shifted by kj - pw, so they are copied with one memcpy, and the columns
 * that wrapped around a row edge are zeroed after it. Equal to the row-by-row
 * copy, in a few large moves instead of one small one per output row. */
static void unfold_row_same_width(float *row, const float *plane, const cbq_conv2d_cfg *c,
                                  size_t h, size_t w, int ki, int kj, size_t y0, size_t y1)
{
    size_t lo, hi, ya, yb;
    valid_cols(c, w, w, kj, &lo, &hi);
    valid_rows(c, h, ki, y0, y1, &ya, &yb);
    const long off = kj - c->pad_w;
    memset(row, 0, (ya - y0) * w * sizeof *row);
    memset(row + (yb - y0) * w, 0, (y1 - yb) * w * sizeof *row);
    if (ya == yb)
        return;
    const size_t iy = (size_t)((long)ya - c->pad_h + ki), n_rows = yb - ya;
    float *dst = row + (ya - y0) * w;
    if (hi > lo)
        memcpy(dst + lo, plane + iy * w + (size_t)((long)lo + off),
               ((n_rows - 1) * w + hi - lo) * sizeof *dst);
    for (size_t r = 0; r < n_rows; r++) {
        float *d = dst + r * w;
        for (size_t x = 0; x < lo; x++)
            d[x] = 0.0f;
        for (size_t x = hi > lo ? hi : lo; x < w; x++)
            d[x] = 0.0f;
    }
}

/* dst[x] = src[2x], x < n: with the stride a constant GCC vectorises the
 * gather (a shuffle of two loads), which it cannot for a variable stride;
 * every stride-2 convolution's unfold and its adjoint go through these. */
static void gather_stride2(float *restrict dst, const float *restrict src, size_t n)
{
    for (size_t x = 0; x < n; x++)
        dst[x] = src[2 * x];
}

/* dst[2x] += src[x], x < n. */
static void scatter_add_stride2(float *restrict dst, const float *restrict src, size_t n)
{
    for (size_t x = 0; x < n; x++)
        dst[2 * x] += src[x];
}

/* col [K, (y1-y0)*OW] with rows ld floats apart: row (c, ki, kj), column
 * (y-y0)*OW + x holds in[c][y*sh - ph + ki][x*sw - pw + kj], zero in the
 * padding. ld > (y1-y0)*OW leaves room for other samples' columns. */
static void im2col_ld(float *col, size_t ld, const float *in, const cbq_conv2d_cfg *c, size_t h,
                      size_t w, size_t ow, size_t y0, size_t y1)
{
    const size_t cols = ld;
    const int same_width = c->stride_w == 1 && c->stride_h == 1 && ow == w;
    for (size_t ch = 0; ch < (size_t)c->in_channels; ch++) {
        const float *plane = in + ch * h * w;
        for (int ki = 0; ki < c->kernel_h; ki++) {
            for (int kj = 0; kj < c->kernel_w; kj++) {
                float *row = col + ((ch * (size_t)c->kernel_h + (size_t)ki) * (size_t)c->kernel_w +
                                    (size_t)kj) * cols;
                if (same_width) {
                    unfold_row_same_width(row, plane, c, h, w, ki, kj, y0, y1);
                    continue;
                }
                size_t lo, hi;
                valid_cols(c, w, ow, kj, &lo, &hi);
                long off = kj - c->pad_w;
                for (size_t y = y0; y < y1; y++) {
                    long iy = (long)(y * (size_t)c->stride_h) - c->pad_h + ki;
                    float *dst = row + (y - y0) * ow;
                    if (iy < 0 || iy >= (long)h) {
                        memset(dst, 0, ow * sizeof *dst);
                        continue;
                    }
                    const float *src = plane + (size_t)iy * w;
                    /* the edges are empty in most rows: no call for nothing */
                    if (lo > 0)
                        memset(dst, 0, lo * sizeof *dst);
                    if (c->stride_w == 1)
                        memcpy(dst + lo, src + (long)lo + off, (hi - lo) * sizeof *dst);
                    else if (c->stride_w == 2)
                        gather_stride2(dst + lo, src + (long)(2 * lo) + off, hi - lo);
                    else
                        for (size_t x = lo; x < hi; x++)
                            dst[x] = src[(long)(x * (size_t)c->stride_w) + off];
                    if (hi < ow)
                        memset(dst + hi, 0, (ow - hi) * sizeof *dst);
                }
            }
        }
    }
}

static void im2col(float *col, const float *in, const cbq_conv2d_cfg *c, size_t h, size_t w,
                   size_t ow, size_t y0, size_t y1)
{
    im2col_ld(col, (y1 - y0) * ow, in, c, h, w, ow, y0, y1);
}

/* The adjoint of im2col_ld for output rows [y0, y1): din += each entry at its place. */
static void col2im_add_ld(float *in, const float *col, size_t ld, const cbq_conv2d_cfg *c, size_t h,
                          size_t w, size_t ow, size_t y0, size_t y1)
{
    const size_t cols = ld;
    for (size_t ch = 0; ch < (size_t)c->in_channels; ch++) {
        float *plane = in + ch * h * w;
        for (int ki = 0; ki < c->kernel_h; ki++) {
            for (int kj = 0; kj < c->kernel_w; kj++) {
                const float *row = col + ((ch * (size_t)c->kernel_h + (size_t)ki) *
                                          (size_t)c->kernel_w + (size_t)kj) * cols;
                size_t lo, hi;
                valid_cols(c, w, ow, kj, &lo, &hi);
                long off = kj - c->pad_w;
                for (size_t y = y0; y < y1; y++) {
                    long iy = (long)(y * (size_t)c->stride_h) - c->pad_h + ki;
                    if (iy < 0 || iy >= (long)h)
                        continue;
                    float *dst = plane + (size_t)iy * w;
                    const float *src = row + (y - y0) * ow;
                    if (c->stride_w == 1) {
                        float *d = dst + (long)lo + off;
                        for (size_t x = lo; x < hi; x++)
                            d[x - lo] += src[x];
                    } else if (c->stride_w == 2) {
                        scatter_add_stride2(dst + (long)(2 * lo) + off, src + lo, hi - lo);
                    } else {
                        for (size_t x = lo; x < hi; x++)
                            dst[(long)(x * (size_t)c->stride_w) + off] += src[x];
                    }
                }
            }
        }
    }
}

static void col2im_add(float *in, const float *col, const cbq_conv2d_cfg *c, size_t h, size_t w,
                       size_t ow, size_t y0, size_t y1)
{
    col2im_add_ld(in, col, (y1 - y0) * ow, c, h, w, ow, y0, y1);
}

/* Forward of samples grouped g at a time (small output planes): the g
 * samples' columns side by side, one GEMM into a block [Cout, g*plane],
 * then each sample's channels copied to their place. */
static void forward_grouped(float *out, const float *in, const float *weight, const float *bias,
                            const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                            float *workspace, int threads, size_t g)
{
    const size_t oh = conv2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h);
    const size_t ow = conv2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w);
    const size_t cout = (size_t)cfg->out_channels, k = patch_len(cfg), plane = oh * ow;
    const size_t in_size = (size_t)cfg->in_channels * h * w, ws = conv2d_workspace_floats(cfg, h, w);
    const size_t col_n = grouped_col_floats(cfg, h, w, plane, group_max(cfg, plane));
    const size_t groups = (n + g - 1) / g;
#pragma omp parallel num_threads(threads)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        float *col = workspace + t * ws, *block = col + col_n;
        for (size_t it = groups * t / nt; it < groups * (t + 1) / nt; it++) {
            const size_t s0 = it * g, gs = n - s0 < g ? n - s0 : g, ld = gs * plane;
            for (size_t j = 0; j < gs; j++)
                im2col_ld(col + j * plane, ld, in + (s0 + j) * in_size, cfg, h, w, ow, 0, oh);
            if (bias)
                for (size_t o = 0; o < cout; o++)
                    for (size_t i = 0; i < ld; i++)
                        block[o * ld + i] = bias[o];
            cbq_sgemm(0, 0, cout, ld, k, 1.0f, weight, k, col, ld, bias ? 1.0f : 0.0f, block, ld);
            for (size_t j = 0; j < gs; j++)
                for (size_t o = 0; o < cout; o++)
                    memcpy(out + ((s0 + j) * cout + o) * plane, block + o * ld + j * plane,
                           plane * sizeof *out);
        }
    }
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w, float *workspace,
                    int threads)
{
    if (conv2d_is_general(cfg)) {
        conv2d_general_forward(out, in, weight, bias, cfg, n, h, w, workspace, threads);
        return;
    }
    if (conv2d_winograd_eligible(cfg, h, w)) {
        conv2d_winograd_forward(out, in, weight, bias, cfg, n, h, w, workspace, threads);
        return;
    }
    if (use_direct(cfg, h, w)) {
        conv2d_direct_forward(out, in, weight, bias, cfg, n, h, w, workspace, threads);
        return;
    }
    const size_t oh = conv2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h);
    const size_t ow = conv2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w);
    const size_t cout = (size_t)cfg->out_channels, k = patch_len(cfg), plane = oh * ow;
    const size_t in_size = (size_t)cfg->in_channels * h * w, ws = conv2d_workspace_floats(cfg, h, w);
    const size_t g = group_size(cfg, plane, n);
    if (g > 1) {
        forward_grouped(out, in, weight, bias, cfg, n, h, w, workspace, threads, g);
        return;
    }
    const int direct = is_pointwise(cfg);
    const size_t rows = direct ? oh : block_rows(cfg, oh, ow);
    const size_t blocks = (oh + rows - 1) / rows, items = n * blocks;
    /* Items are (sample, row block); each output element is computed by one
     * GEMM whose shape does not depend on the thread count, so the forward
     * is bit-identical for any number of threads. */
#pragma omp parallel num_threads(threads)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        float *col = workspace + t * ws;
        for (size_t it = items * t / nt; it < items * (t + 1) / nt; it++) {
            const size_t s = it / blocks, y0 = (it % blocks) * rows;
            const size_t y1 = y0 + rows < oh ? y0 + rows : oh, cols = (y1 - y0) * ow;
            const float *b = in + s * in_size + y0 * ow;
            size_t ldb = plane;
            if (!direct) {
                im2col(col, in + s * in_size, cfg, h, w, ow, y0, y1);
                b = col;
                ldb = cols;
            }
            float *y = out + s * cout * plane + y0 * ow;
            if (bias)
                for (size_t o = 0; o < cout; o++)
                    for (size_t i = 0; i < cols; i++)
                        y[o * plane + i] = bias[o];
            cbq_sgemm(0, 0, cout, cols, k, 1.0f, weight, k, b, ldb, bias ? 1.0f : 0.0f, y, plane);
        }
    }
}

/* wt [Cin, Cout, KH, KW] = w [Cout, Cin, KH-1-ki, KW-1-kj]. */
static void flip_transpose(float *wt, const float *w, const cbq_conv2d_cfg *c)
{
    const size_t ci_n = (size_t)c->in_channels, co_n = (size_t)c->out_channels;
    const size_t kh = (size_t)c->kernel_h, kw = (size_t)c->kernel_w;
    for (size_t co = 0; co < co_n; co++)
        for (size_t ci = 0; ci < ci_n; ci++)
            for (size_t i = 0; i < kh; i++)
                for (size_t j = 0; j < kw; j++)
                    wt[((ci * co_n + co) * kh + i) * kw + j] =
                        w[((co * ci_n + ci) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
}

/* din [Cin, h, w] = conv(dout [Cout, oh, ow], wt) for stride 1. */
static void din_by_conv(float *din, const float *dout, const float *wt, const cbq_conv2d_cfg *cfg,
                        size_t h, size_t w, float *col)
{
    const cbq_conv2d_cfg t = transposed_cfg(cfg);
    const size_t oh = conv2d_out_size(h, cfg->kernel_h, 1, cfg->pad_h);
    const size_t ow = conv2d_out_size(w, cfg->kernel_w, 1, cfg->pad_w);
    const size_t k = patch_len(&t), rows = block_rows(&t, h, w);
    for (size_t y0 = 0; y0 < h; y0 += rows) {
        const size_t y1 = y0 + rows < h ? y0 + rows : h, cols = (y1 - y0) * w;
        im2col(col, dout, &t, oh, ow, w, y0, y1);
        cbq_sgemm(0, 0, (size_t)cfg->in_channels, cols, k, 1.0f, wt, k, col, cols, 0.0f,
                  din + y0 * w, h * w);
    }
}

enum { SUM_LANES = 8 };

/* Adds each output channel's sum of dout over the block's columns to the
 * private bias gradient (pdb [Cout]): column i into lane i mod 8 of its
 * full vector (the last, partial vector's into lanes 0..), the lanes added
 * in order at the end. Eight independent sums: one serial sum waits on each
 * add's latency, which took as long as a 1x1 layer's GEMMs. */
static void bias_grad_add(float *pdb, const float *g, size_t cout, size_t plane, size_t cols)
{
    const size_t full = cols / SUM_LANES * SUM_LANES;
    for (size_t o = 0; o < cout; o++) {
        const float *restrict row = g + o * plane;
        float lanes[SUM_LANES] = {0};
        for (size_t i0 = 0; i0 < full; i0 += SUM_LANES)
            for (size_t l = 0; l < SUM_LANES; l++)
                lanes[l] += row[i0 + l];
        for (size_t i = full; i < cols; i++)
            lanes[i - full] += row[i];
        float acc = 0.0f;
        for (size_t l = 0; l < SUM_LANES; l++)
            acc += lanes[l];
        pdb[o] += acc;
    }
}

/* One sample's backward, block by block: dW (private) and, with want_db,
 * dbias after it. `wt` is the flipped kernel when din_as_conv, else NULL. */
static void backward_sample(float *din, float *pdw, int want_db, const float *dout, const float *in,
                            const float *weight, const float *wt, const cbq_conv2d_cfg *cfg,
                            size_t h, size_t w, float *col)
{
    const size_t oh = conv2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h);
    const size_t ow = conv2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w);
    const size_t cout = (size_t)cfg->out_channels, k = patch_len(cfg), plane = oh * ow;
    const int direct = is_pointwise(cfg);
    const size_t rows = direct ? oh : block_rows(cfg, oh, ow);
    if (din && wt) {
        din_by_conv(din, dout, wt, cfg, h, w, col);
        din = NULL;
    }
    if (din && !direct)
        memset(din, 0, (size_t)cfg->in_channels * h * w * sizeof *din);
    for (size_t y0 = 0; y0 < oh; y0 += rows) {
        const size_t y1 = y0 + rows < oh ? y0 + rows : oh, cols = (y1 - y0) * ow;
        const float *g = dout + y0 * ow;
        if (pdw) {
            const float *b = in + y0 * ow;
            size_t ldb = plane;
            if (!direct) {
                im2col(col, in, cfg, h, w, ow, y0, y1);
                b = col;
                ldb = cols;
            }
            /* dW [Cout, K] += dout_blk [Cout, cols] * col^T [cols, K] */
            cbq_sgemm(0, 1, cout, k, cols, 1.0f, g, plane, b, ldb, 1.0f, pdw, k);
            /* a serial sum, latency-bound: only when the layer has a bias */
            if (want_db)
                bias_grad_add(pdw + cout * k, g, cout, plane, cols);
        }
        if (din) {
            /* col [K, cols] = W^T [K, Cout] * dout_blk [Cout, cols] */
            if (direct)
                cbq_sgemm(1, 0, k, cols, cout, 1.0f, weight, k, g, plane, 0.0f, din + y0 * ow, plane);
            else {
                cbq_sgemm(1, 0, k, cols, cout, 1.0f, weight, k, g, plane, 0.0f, col, cols);
                col2im_add(din, col, cfg, h, w, ow, y0, y1);
            }
        }
    }
}

/* Backward of the g samples s0.. (small output planes), as forward_grouped:
 * dout of the g samples gathered into `block` [Cout, g*plane], their input
 * unfolded side by side in `col`, one GEMM for dW; din by one GEMM for the
 * group too (with the flipped kernel `wt` when din_as_conv), scattered back
 * to each sample. */
static void backward_grouped(float *din, float *pdw, int want_db, const float *dout,
                             const float *in, const float *weight, const float *wt,
                             const cbq_conv2d_cfg *cfg, size_t h, size_t w, float *col,
                             float *block, size_t s0, size_t gs)
{
    const size_t oh = conv2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h);
    const size_t ow = conv2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w);
    const size_t cout = (size_t)cfg->out_channels, cin = (size_t)cfg->in_channels;
    const size_t k = patch_len(cfg), plane = oh * ow, hw = h * w, ld = gs * plane;
    const int need_block = pdw || (din && !wt);
    for (size_t j = 0; need_block && j < gs; j++)
        for (size_t o = 0; o < cout; o++)
            memcpy(block + o * ld + j * plane, dout + ((s0 + j) * cout + o) * plane,
                   plane * sizeof *block);
    if (pdw) {
        for (size_t j = 0; j < gs; j++)
            im2col_ld(col + j * plane, ld, in + (s0 + j) * cin * hw, cfg, h, w, ow, 0, oh);
        /* dW [Cout, K] += dout [Cout, g*plane] * col^T [g*plane, K] */
        cbq_sgemm(0, 1, cout, k, ld, 1.0f, block, ld, col, ld, 1.0f, pdw, k);
        if (want_db)
            bias_grad_add(pdw + cout * k, block, cout, ld, ld);
    }
    if (!din)
        return;
    if (wt) {
        const cbq_conv2d_cfg t = transposed_cfg(cfg);
        const size_t kt = patch_len(&t), ldt = gs * hw;
        for (size_t j = 0; j < gs; j++)
            im2col_ld(col + j * hw, ldt, dout + (s0 + j) * cout * plane, &t, oh, ow, w, 0, h);
        cbq_sgemm(0, 0, cin, ldt, kt, 1.0f, wt, kt, col, ldt, 0.0f, block, ldt);
        for (size_t j = 0; j < gs; j++)
            for (size_t c = 0; c < cin; c++)
                memcpy(din + ((s0 + j) * cin + c) * hw, block + c * ldt + j * hw, hw * sizeof *din);
        return;
    }
    /* col [K, g*plane] = W^T [K, Cout] * dout [Cout, g*plane], then col2im per sample */
    cbq_sgemm(1, 0, k, ld, cout, 1.0f, weight, k, block, ld, 0.0f, col, ld);
    for (size_t j = 0; j < gs; j++) {
        float *d = din + (s0 + j) * cin * hw;
        memset(d, 0, cin * hw * sizeof *d);
        col2im_add_ld(d, col + j * plane, ld, cfg, h, w, ow, 0, oh);
    }
}

void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                     float *workspace, float *dw_private, int threads)
{
    if (conv2d_is_general(cfg)) {
        conv2d_general_backward(din, dweight, dbias, dout, in, weight, cfg, n, h, w, workspace,
                                dw_private, threads);
        return;
    }
    if (conv2d_winograd_eligible(cfg, h, w)) {
        if (din)
            conv2d_winograd_backward_data(din, dout, weight, cfg, n, h, w, workspace, threads);
        if (!dweight && !dbias)
            return;
        if (conv2d_winograd_wgrad_eligible(cfg, h, w)) {
            conv2d_winograd_backward_weight(dweight, dbias, dout, in, cfg, n, h, w, workspace,
                                            threads);
            return;
        }
        din = NULL; /* the weight gradient by im2col below */
    }
    if (use_direct(cfg, h, w) && (dweight || dbias)) {
        conv2d_direct_backward_weight(dweight, dbias, dout, in, cfg, n, h, w, workspace, dw_private,
                                      threads);
        if (!din)
            return;
        dweight = dbias = NULL; /* the input gradient by GEMM below */
    }
    conv2d_backward_im2col(din, dweight, dbias, dout, in, weight, cfg, n, h, w, workspace,
                           dw_private, threads);
}

void conv2d_backward_im2col(float *din, float *dweight, float *dbias, const float *dout,
                            const float *in, const float *weight, const cbq_conv2d_cfg *cfg,
                            size_t n, size_t h, size_t w, float *workspace, float *dw_private,
                            int threads)
{
    const size_t oh = conv2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h);
    const size_t ow = conv2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w);
    const size_t cout = (size_t)cfg->out_channels, k = patch_len(cfg), plane = oh * ow;
    const size_t in_size = (size_t)cfg->in_channels * h * w, ws = conv2d_workspace_floats(cfg, h, w);
    const size_t priv = conv2d_dw_private_floats(cfg);
    const int want_dw = dweight != NULL || dbias != NULL;
    const size_t g = group_size(cfg, plane, n);
    int used = 1;
    /* Samples are split statically over threads; weight gradients go to
     * per-thread accumulators summed below in thread order. */
#pragma omp parallel num_threads(threads)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        if (t == 0)
            used = (int)nt;
        float *pdw = want_dw ? dw_private + t * priv : NULL;
        if (pdw)
            memset(pdw, 0, priv * sizeof *pdw);
        float *col = workspace + t * ws, *wt = NULL;
        if (din && din_as_conv(cfg)) {
            wt = col + ws - cout * k;
            flip_transpose(wt, weight, cfg);
        }
        if (g > 1) {
            const size_t groups = (n + g - 1) / g;
            float *block = col + grouped_col_floats(cfg, h, w, plane, group_max(cfg, plane));
            for (size_t it = groups * t / nt; it < groups * (t + 1) / nt; it++) {
                const size_t s0 = it * g;
                backward_grouped(din, pdw, dbias != NULL, dout, in, weight, wt, cfg, h, w, col,
                                 block, s0, n - s0 < g ? n - s0 : g);
            }
        } else {
            for (size_t s = n * t / nt; s < n * (t + 1) / nt; s++)
                backward_sample(din ? din + s * in_size : NULL, pdw, dbias != NULL,
                                dout + s * cout * plane, in + s * in_size, weight, wt, cfg, h, w, col);
        }
    }
    if (!want_dw)
        return;
    conv2d_sum_private_dw(dweight, dbias, dw_private, used, priv, cout * k, cout);
}

void conv2d_sum_private_dw(float *dweight, float *dbias, const float *dw_private, int used, size_t priv,
                           size_t n_weight, size_t cout)
{
    for (int t = 0; t < used; t++) {
        const float *pdw = dw_private + (size_t)t * priv;
        if (dweight)
            for (size_t i = 0; i < n_weight; i++)
                dweight[i] += pdw[i];
        if (dbias)
            for (size_t o = 0; o < cout; o++)
                dbias[o] += pdw[n_weight + o];
    }
}

/* ---- reference ------------------------------------------------------------ */

/* dilation and groups: 0 (a spec built before they existed) reads as 1 */
static int or_one(int v) { return v > 0 ? v : 1; }

/* Input index of output (y, x) and kernel tap (ki, kj), or -1 in the padding. */
static long tap(const cbq_conv2d_cfg *c, size_t h, size_t w, size_t y, size_t x, int ki, int kj)
{
    long iy = (long)(y * (size_t)c->stride_h) - c->pad_h + (long)ki * or_one(c->dilation_h);
    long ix = (long)(x * (size_t)c->stride_w) - c->pad_w + (long)kj * or_one(c->dilation_w);
    if (iy < 0 || iy >= (long)h || ix < 0 || ix >= (long)w)
        return -1;
    return iy * (long)w + ix;
}

/* Output o reads input channels [first, first + cin/groups) through weight
 * [o, 0 .. cin/groups). */
void conv2d_forward_ref(float *out, const float *in, const float *weight, const float *bias,
                        const cbq_conv2d_cfg *c, size_t n, size_t h, size_t w)
{
    const size_t oh = conv2d_out_h(c, h), ow = conv2d_out_w(c, w);
    const size_t cin = (size_t)c->in_channels, cout = (size_t)c->out_channels;
    const size_t groups = (size_t)or_one(c->groups), cin_g = cin / groups, cout_g = cout / groups;
    const size_t kk = (size_t)c->kernel_h * (size_t)c->kernel_w;
    for (size_t s = 0; s < n; s++)
        for (size_t o = 0; o < cout; o++)
            for (size_t y = 0; y < oh; y++)
                for (size_t x = 0; x < ow; x++) {
                    double acc = bias ? bias[o] : 0.0;
                    const size_t first = o / cout_g * cin_g;
                    for (size_t ci = 0; ci < cin_g; ci++)
                        for (int ki = 0; ki < c->kernel_h; ki++)
                            for (int kj = 0; kj < c->kernel_w; kj++) {
                                long p = tap(c, h, w, y, x, ki, kj);
                                if (p >= 0)
                                    acc += (double)in[(s * cin + first + ci) * h * w + (size_t)p] *
                                           weight[(o * cin_g + ci) * kk + (size_t)ki * (size_t)c->kernel_w + (size_t)kj];
                            }
                    out[((s * cout + o) * oh + y) * ow + x] = (float)acc;
                }
}

void conv2d_backward_ref(float *din, float *dweight, float *dbias, const float *dout,
                         const float *in, const float *weight, const cbq_conv2d_cfg *c, size_t n,
                         size_t h, size_t w)
{
    const size_t oh = conv2d_out_h(c, h), ow = conv2d_out_w(c, w);
    const size_t cin = (size_t)c->in_channels, cout = (size_t)c->out_channels;
    const size_t groups = (size_t)or_one(c->groups), cin_g = cin / groups, cout_g = cout / groups;
    const size_t kk = (size_t)c->kernel_h * (size_t)c->kernel_w;
    if (din)
        memset(din, 0, n * cin * h * w * sizeof *din);
    for (size_t s = 0; s < n; s++)
        for (size_t o = 0; o < cout; o++)
            for (size_t y = 0; y < oh; y++)
                for (size_t x = 0; x < ow; x++) {
                    float g = dout[((s * cout + o) * oh + y) * ow + x];
                    const size_t first = o / cout_g * cin_g;
                    if (dbias)
                        dbias[o] += g;
                    for (size_t ci = 0; ci < cin_g; ci++)
                        for (int ki = 0; ki < c->kernel_h; ki++)
                            for (int kj = 0; kj < c->kernel_w; kj++) {
                                long p = tap(c, h, w, y, x, ki, kj);
                                if (p < 0)
                                    continue;
                                size_t wi = (o * cin_g + ci) * kk + (size_t)ki * (size_t)c->kernel_w + (size_t)kj;
                                size_t ii = (s * cin + first + ci) * h * w + (size_t)p;
                                if (dweight)
                                    dweight[wi] += g * in[ii];
                                if (din)
                                    din[ii] += g * weight[wi];
                            }
                }
}
