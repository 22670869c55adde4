/* conv2d_direct.c - convolutions with few input channels (a network's first
 * layer: resnet18's 7x7/2 stem, iqnet-s's 3x3 1->16) computed directly,
 * without im2col and SGEMM.
 *
 * Why: with one input channel the im2col GEMM has an inner dimension of
 * Cin*KH*KW = 9 or 49, so OpenBLAS spends as long loading, storing and
 * packing as multiplying, and the strided unfold itself is a scalar gather.
 * Here the input rows an item needs are copied once into a zero-padded,
 * column-phase-split buffer ("phases": for stride s, phase p holds the input
 * columns p, p+s, p+2s, ...), so every kernel tap reads a contiguous run of
 * x for any stride. The forward then keeps a block of 4 output channels x
 * 24 output columns in registers over all taps (24 = 3 AVX2 vectors; the
 * loops over x are plain C that GCC vectorises, and fmaf gives the fused
 * multiply-add that -std=c11 does not contract on its own). The weight
 * gradient keeps 4 output channels x 3 taps of 8-lane partial sums over x,
 * whose lanes are added in a fixed order at the end.
 *
 * Determinism: each output element is one chain of fmaf in tap order,
 * whatever thread computes it, so the forward has the same bits for any
 * thread count. The weight gradient goes, as in conv2d.c, to per-thread
 * accumulators over a static partition of (sample, row block) items, summed
 * in thread order: the same bits for a given thread count.
 *
 * Not here: the input gradient (conv2d.c's GEMM path computes it when asked;
 * a first layer's input needs none), dilation and groups (conv2d_general.c).
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "nn/layer.h"

enum {
    DIRECT_MAX_CIN = 4,  /* beyond this the GEMM's inner dimension is long enough */
    OUT_BLOCK = 4,       /* output channels per register block */
    WIDE = 24,           /* output columns per forward block (3 vectors) */
    LANES = 8,           /* one AVX2 vector of floats */
    TAP_BLOCK = 3,       /* taps per weight-gradient register block */
    ITEM_ROWS = 4,       /* output rows per work item */
    MAX_TAPS = 256,      /* Cin*KH*KW: the tap offsets live on the stack */
};

static size_t taps_of(const cbq_conv2d_cfg *c)
{
    return (size_t)c->in_channels * (size_t)c->kernel_h * (size_t)c->kernel_w;
}

/* A 1x1 convolution is a GEMM on the input in place (conv2d.c). */
int conv2d_direct_eligible(const cbq_conv2d_cfg *cfg)
{
    return cfg->in_channels <= DIRECT_MAX_CIN && cfg->out_channels % OUT_BLOCK == 0 &&
           cfg->kernel_h * cfg->kernel_w > 1 && taps_of(cfg) <= MAX_TAPS;
}

/* Shape of one item's phase buffer: [Cin][stride_w phases][rows][width]. */
typedef struct {
    size_t oh, ow, rows, width, taps;
} direct_geom;

static direct_geom geom_of(const cbq_conv2d_cfg *c, size_t h, size_t w)
{
    direct_geom g;
    g.oh = conv2d_out_size(h, c->kernel_h, c->stride_h, c->pad_h);
    g.ow = conv2d_out_size(w, c->kernel_w, c->stride_w, c->pad_w);
    g.rows = (ITEM_ROWS - 1) * (size_t)c->stride_h + (size_t)c->kernel_h;
    /* a row narrower than WIDE is computed as one whole block: room for it */
    size_t ow_padded = (g.ow + WIDE - 1) / WIDE * WIDE;
    g.width = ow_padded + (size_t)(c->kernel_w - 1) / (size_t)c->stride_w;
    g.taps = taps_of(c);
    return g;
}

static size_t phase_floats(const cbq_conv2d_cfg *c, const direct_geom *g)
{
    return (size_t)c->in_channels * (size_t)c->stride_w * g->rows * g->width;
}

/* Per thread: the phase buffer, the weights packed [Cout/4][taps][4], and
 * the weight gradient's lane sums [Cout][taps + 1][8] (the bias last). */
size_t conv2d_direct_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    direct_geom g = geom_of(cfg, h, w);
    size_t cout = (size_t)cfg->out_channels;
    return phase_floats(cfg, &g) + cout * g.taps + cout * (g.taps + 1) * LANES;
}

/* Phase buffer rows for output rows [y0, y0 + ITEM_ROWS): padded row r is
 * input row y0*stride_h - pad_h + r, column j of phase p is input column
 * j*stride_w + p - pad_w; zero outside the image. */
static void fill_phases(float *q, const float *in, const cbq_conv2d_cfg *c, size_t h, size_t w,
                        const direct_geom *g, size_t y0)
{
    const size_t sw = (size_t)c->stride_w;
    for (size_t ci = 0; ci < (size_t)c->in_channels; ci++)
        for (size_t p = 0; p < sw; p++)
            for (size_t r = 0; r < g->rows; r++) {
                float *dst = q + ((ci * sw + p) * g->rows + r) * g->width;
                long iy = (long)(y0 * (size_t)c->stride_h) - c->pad_h + (long)r;
                if (iy < 0 || iy >= (long)h) {
                    memset(dst, 0, g->width * sizeof *dst);
                    continue;
                }
                const float *src = in + (ci * h + (size_t)iy) * w;
                /* valid j: 0 <= j*sw + p - pad_w < w */
                long off = (long)p - c->pad_w;
                long lo = off >= 0 ? 0 : (-off + (long)sw - 1) / (long)sw;
                long hi = (long)w - 1 - off < 0 ? 0 : ((long)w - 1 - off) / (long)sw + 1;
                if (hi > (long)g->width)
                    hi = (long)g->width;
                if (lo > hi)
                    lo = hi;
                memset(dst, 0, (size_t)lo * sizeof *dst);
                if (sw == 1)
                    memcpy(dst + lo, src + lo + off, (size_t)(hi - lo) * sizeof *dst);
                else
                    for (long j = lo; j < hi; j++)
                        dst[j] = src[j * (long)sw + off];
                memset(dst + hi, 0, (g->width - (size_t)hi) * sizeof *dst);
            }
}

/* offs[t]: the offset in the phase buffer of tap t = (ci, ki, kj) for the
 * item's first output row, for every tap. */
static void tap_offsets(size_t *offs, const cbq_conv2d_cfg *c, const direct_geom *g)
{
    const size_t kw = (size_t)c->kernel_w, kk = (size_t)c->kernel_h * kw, sw = (size_t)c->stride_w;
    for (size_t t = 0; t < g->taps; t++) {
        const size_t ci = t / kk, ki = t % kk / kw, kj = t % kw;
        offs[t] = ((ci * sw + kj % sw) * g->rows + ki) * g->width + kj / sw;
    }
}

/* wp [Cout/4][taps][4] = w [Cout][taps]: a block's 4 weights of a tap adjacent. */
static void pack_weights(float *wp, const float *w, size_t cout, size_t taps)
{
    for (size_t o = 0; o < cout; o++)
        for (size_t t = 0; t < taps; t++)
            wp[(o / OUT_BLOCK * taps + t) * OUT_BLOCK + o % OUT_BLOCK] = w[o * taps + t];
}

/* dst[j*ld + x] for 4 channels and WIDE columns from x0 of one output row:
 * bias, then one fmaf per tap in tap order. `row` is the phase buffer at
 * this output row. The accumulators stay in 12 registers over the taps; the
 * block is stored whole, with a constant count (a variable count makes GCC
 * copy it with a slow `rep movs`): a row's last, partial block goes to a
 * scratch block that the caller copies. */
static void forward_block(float *restrict dst, size_t ld, const float *restrict row,
                          const size_t *restrict offs, const float *restrict wp,
                          const float *restrict bias, size_t taps, size_t x0)
{
    float acc[OUT_BLOCK][WIDE];
    for (size_t j = 0; j < OUT_BLOCK; j++)
        for (size_t x = 0; x < WIDE; x++)
            acc[j][x] = bias ? bias[j] : 0.0f;
    for (size_t t = 0; t < taps; t++) {
        const float *restrict src = row + offs[t] + x0;
        const float *restrict wt = wp + t * OUT_BLOCK;
        for (size_t j = 0; j < OUT_BLOCK; j++)
            for (size_t x = 0; x < WIDE; x++)
                acc[j][x] = fmaf(wt[j], src[x], acc[j][x]);
    }
    for (size_t j = 0; j < OUT_BLOCK; j++)
        for (size_t x = 0; x < WIDE; x++)
            dst[j * ld + x] = acc[j][x];
}

/* One item: output rows [y0, y1) of every channel of one sample. */
static void forward_item(float *out, const float *q, const size_t *offs, const float *wp,
                         const float *bias, const cbq_conv2d_cfg *c, const direct_geom *g,
                         size_t y0, size_t y1, float *tail)
{
    const size_t plane = g->oh * g->ow, cout = (size_t)c->out_channels;
    for (size_t y = y0; y < y1; y++) {
        const float *row = q + (y - y0) * (size_t)c->stride_h * g->width;
        for (size_t o0 = 0; o0 < cout; o0 += OUT_BLOCK) {
            float *dst = out + o0 * plane + y * g->ow;
            const float *wb = wp + o0 * g->taps, *b = bias ? bias + o0 : NULL;
            size_t x0 = 0;
            for (; x0 + WIDE <= g->ow; x0 += WIDE)
                forward_block(dst + x0, plane, row, offs, wb, b, g->taps, x0);
            if (x0 == g->ow)
                continue;
            if (g->ow >= WIDE) {
                /* the last WIDE columns again: an output column's value
                 * does not depend on the block it is computed in */
                forward_block(dst + g->ow - WIDE, plane, row, offs, wb, b, g->taps, g->ow - WIDE);
                continue;
            }
            forward_block(tail, WIDE, row, offs, wb, b, g->taps, x0);
            for (size_t j = 0; j < OUT_BLOCK; j++)
                memcpy(dst + j * plane + x0, tail + j * WIDE, (g->ow - x0) * sizeof *dst);
        }
    }
}

/* Workspace carving, per thread (the forward's tail block uses the lanes). */
typedef struct {
    float *phases, *packed, *lanes;
} direct_ws;

static direct_ws carve(float *ws, const cbq_conv2d_cfg *c, const direct_geom *g)
{
    direct_ws d;
    d.phases = ws;
    d.packed = d.phases + phase_floats(c, g);
    d.lanes = d.packed + (size_t)c->out_channels * g->taps;
    return d;
}

void conv2d_direct_forward(float *out, const float *in, const float *weight, const float *bias,
                           const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                           float *workspace, int threads)
{
    const direct_geom g = geom_of(cfg, h, w);
    const size_t ws = conv2d_direct_workspace_floats(cfg, h, w);
    const size_t cout = (size_t)cfg->out_channels, in_size = (size_t)cfg->in_channels * h * w;
    const size_t blocks = (g.oh + ITEM_ROWS - 1) / ITEM_ROWS, items = n * blocks;
#pragma omp parallel num_threads(threads)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        direct_ws d = carve(workspace + t * ws, cfg, &g);
        pack_weights(d.packed, weight, cout, g.taps);
        size_t offs[MAX_TAPS];
        tap_offsets(offs, cfg, &g);
        for (size_t it = items * t / nt; it < items * (t + 1) / nt; it++) {
            const size_t s = it / blocks, y0 = it % blocks * ITEM_ROWS;
            const size_t y1 = y0 + ITEM_ROWS < g.oh ? y0 + ITEM_ROWS : g.oh;
            fill_phases(d.phases, in + s * in_size, cfg, h, w, &g, y0);
            forward_item(out + s * cout * g.oh * g.ow, d.phases, offs, d.packed, bias, cfg, &g, y0,
                         y1, d.lanes);
        }
    }
}

/* Adds to lanes [4][taps][8] (at channel block o0, tap t0; tb taps), lane l,
 * the products dout[o][y][x] * input tap (y, x) over the item's ny rows and
 * the columns x = l mod 8 of the full vectors; `row0` is the phase buffer at
 * the item's first output row, `dout` the block's first channel there. */
static inline void wgrad_block(float *restrict lanes, size_t taps, const float *restrict dout,
                               size_t plane, const float *restrict row0,
                               const size_t *restrict offs, size_t tb, size_t ny, size_t ow,
                               size_t row_step)
{
    float acc[OUT_BLOCK][TAP_BLOCK][LANES];
    for (size_t j = 0; j < OUT_BLOCK; j++)
        for (size_t t = 0; t < tb; t++)
            for (size_t l = 0; l < LANES; l++)
                acc[j][t][l] = lanes[(j * taps + t) * LANES + l];
    const size_t full = ow / LANES * LANES;
    for (size_t y = 0; y < ny; y++) {
        const float *restrict d = dout + y * ow;
        const float *restrict r = row0 + y * row_step;
        for (size_t x0 = 0; x0 < full; x0 += LANES)
#pragma GCC unroll 4
            for (size_t j = 0; j < OUT_BLOCK; j++)
#pragma GCC unroll 3
                for (size_t t = 0; t < tb; t++)
                    for (size_t l = 0; l < LANES; l++)
                        acc[j][t][l] = fmaf(d[j * plane + x0 + l], r[offs[t] + x0 + l], acc[j][t][l]);
    }
    for (size_t j = 0; j < OUT_BLOCK; j++)
        for (size_t t = 0; t < tb; t++)
            for (size_t l = 0; l < LANES; l++)
                lanes[(j * taps + t) * LANES + l] = acc[j][t][l];
    /* the last, partial vector of each row: lane x - full */
    for (size_t y = 0; full < ow && y < ny; y++)
        for (size_t j = 0; j < OUT_BLOCK; j++)
            for (size_t t = 0; t < tb; t++)
                for (size_t x = full; x < ow; x++)
                    lanes[(j * taps + t) * LANES + x - full] =
                        fmaf(dout[j * plane + y * ow + x], row0[y * row_step + offs[t] + x],
                             lanes[(j * taps + t) * LANES + x - full]);
}

static void wgrad_taps3(float *lanes, size_t taps, const float *dout, size_t plane,
                        const float *row0, const size_t *offs, size_t ny, size_t ow,
                        size_t row_step)
{
    wgrad_block(lanes, taps, dout, plane, row0, offs, TAP_BLOCK, ny, ow, row_step);
}

static void wgrad_taps1(float *lanes, size_t taps, const float *dout, size_t plane,
                        const float *row0, const size_t *offs, size_t ny, size_t ow,
                        size_t row_step)
{
    wgrad_block(lanes, taps, dout, plane, row0, offs, 1, ny, ow, row_step);
}

/* bias_lanes [Cout][8] += dout [Cout] over rows [0, ny) (rows ow apart,
 * channels plane apart), column x into lane x mod 8 of its full vector, the
 * partial last vector's columns into lanes 0.. : eight independent sums
 * where one serial sum per channel would wait on each add's latency and
 * take longer than the weight gradient itself. */
static void bias_lanes_add(float *restrict bias_lanes, const float *restrict dout, size_t cout,
                           size_t plane, size_t ny, size_t ow)
{
    const size_t full = ow / LANES * LANES;
    for (size_t o = 0; o < cout; o++) {
        float *restrict bl = bias_lanes + o * LANES;
        for (size_t y = 0; y < ny; y++) {
            const float *restrict d = dout + o * plane + y * ow;
            for (size_t x0 = 0; x0 < full; x0 += LANES)
                for (size_t l = 0; l < LANES; l++)
                    bl[l] += d[x0 + l];
            for (size_t x = full; x < ow; x++)
                bl[x - full] += d[x];
        }
    }
}

/* One item's contribution to the lane sums of the weights and, with
 * bias_lanes, of the bias. */
static void wgrad_item(float *lanes, float *bias_lanes, const float *dout, const float *q,
                       const size_t *offs, const cbq_conv2d_cfg *c, const direct_geom *g,
                       size_t y0, size_t y1)
{
    const size_t plane = g->oh * g->ow, cout = (size_t)c->out_channels, taps = g->taps;
    const size_t row_step = (size_t)c->stride_h * g->width, ny = y1 - y0;
    for (size_t o0 = 0; o0 < cout; o0 += OUT_BLOCK) {
        const float *d = dout + o0 * plane + y0 * g->ow;
        float *lb = lanes + o0 * taps * LANES;
        size_t t0 = 0;
        for (; t0 + TAP_BLOCK <= taps; t0 += TAP_BLOCK)
            wgrad_taps3(lb + t0 * LANES, taps, d, plane, q, offs + t0, ny, g->ow, row_step);
        for (; t0 < taps; t0++)
            wgrad_taps1(lb + t0 * LANES, taps, d, plane, q, offs + t0, ny, g->ow, row_step);
    }
    if (bias_lanes)
        bias_lanes_add(bias_lanes, dout + y0 * g->ow, cout, plane, ny, g->ow);
}

void conv2d_direct_backward_weight(float *dweight, float *dbias, const float *dout,
                                   const float *in, const cbq_conv2d_cfg *cfg, size_t n, size_t h,
                                   size_t w, float *workspace, float *dw_private, int threads)
{
    const direct_geom g = geom_of(cfg, h, w);
    const size_t ws = conv2d_direct_workspace_floats(cfg, h, w);
    const size_t cout = (size_t)cfg->out_channels, in_size = (size_t)cfg->in_channels * h * w;
    const size_t priv = conv2d_dw_private_floats(cfg), n_weight = cout * g.taps;
    const size_t blocks = (g.oh + ITEM_ROWS - 1) / ITEM_ROWS, items = n * blocks;
    int used = 1;
#pragma omp parallel num_threads(threads)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        if (t == 0)
            used = (int)nt;
        direct_ws d = carve(workspace + t * ws, cfg, &g);
        float *pdw = dw_private + t * priv;
        memset(pdw, 0, priv * sizeof *pdw);
        float *bias_lanes = dbias ? d.lanes + n_weight * LANES : NULL;
        memset(d.lanes, 0, (n_weight + cout) * LANES * sizeof *d.lanes);
        size_t offs[MAX_TAPS];
        tap_offsets(offs, cfg, &g);
        for (size_t it = items * t / nt; it < items * (t + 1) / nt; it++) {
            const size_t s = it / blocks, y0 = it % blocks * ITEM_ROWS;
            const size_t y1 = y0 + ITEM_ROWS < g.oh ? y0 + ITEM_ROWS : g.oh;
            fill_phases(d.phases, in + s * in_size, cfg, h, w, &g, y0);
            wgrad_item(d.lanes, bias_lanes, dout + s * cout * g.oh * g.ow,
                       d.phases, offs, cfg, &g, y0, y1);
        }
        /* the lanes of each weight, then of each bias, added in lane order */
        for (size_t k = 0; k < n_weight + (dbias ? cout : 0); k++) {
            float acc = 0.0f;
            for (size_t l = 0; l < LANES; l++)
                acc += d.lanes[k * LANES + l];
            pdw[k] += acc;
        }
    }
    conv2d_sum_private_dw(dweight, dbias, dw_private, used, priv, n_weight, cout);
}
