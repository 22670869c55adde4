/* maxpool2d.c - torch.nn.MaxPool2d (dilation 1). Padding counts as -inf;
 * with ceil_mode the last window may hang over the bottom/right edge, and
 * only its part inside the input counts. Ties go to the FIRST maximum in row-major window order,
 * as PyTorch's CPU kernel does (it replaces only on a strictly greater value);
 * NaN wins like in PyTorch. Backward finds the same index again from the
 * input instead of storing indices, so it needs no extra memory. */
#include <math.h>
#include <stdint.h>
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

/* Index in the plane of the window's first maximum; -1 if all padding.
 * The reference rule, one window at a time (maxpool2d_forward_ref). */
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

/* Does v replace the current maximum m? When greater, or when NaN while m is
 * not (PyTorch's rule above). Written so that GCC if-converts and vectorises
 * the 2x2 loops below (bitwise | and & on the comparisons keep it from
 * doing so; so does an early return). */
static inline int replaces(float v, float m) { return v > m || (v != v && m == m); }

/* Index 0..3 of the first maximum of a 2x2 window in row-major order. */
static inline int argmax4(float a, float b, float c, float d)
{
    float m = a;
    int i = 0;
    if (replaces(b, m)) {
        m = b;
        i = 1;
    }
    if (replaces(c, m)) {
        m = c;
        i = 2;
    }
    if (replaces(d, m))
        i = 3;
    return i;
}

/* v where keep, else +0.0, by masking the bits: a float select in a loop
 * with interleaved stores is not vectorised, an integer AND is. */
static inline float keep_if(float v, int keep)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= -(uint32_t)(keep != 0);
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* ---- any window, one output row at a time --------------------------------
 * The same rule as window_argmax, reordered so that GCC vectorises it: for
 * each input row and kernel column of the window (row-major order, as in
 * window_argmax), one pass over the output columns updates every window's
 * running maximum. Each window still sees its elements in row-major order,
 * so the value (and, in backward, the index) is window_argmax's, bit for
 * bit. The maximum starts at -inf on the window's first element inside the
 * input: -inf never replaces it, and a window of -inf keeps that element,
 * as PyTorch does. */

/* Input rows [*lo, *hi) of window `o` along one axis that lie inside the input. */
static void window_span(size_t o, int stride, int pad, int kernel, size_t extent, long *lo, long *hi)
{
    long start = (long)(o * (size_t)stride) - pad;
    long end = start + kernel;
    *lo = start < 0 ? 0 : start;
    *hi = end > (long)extent ? (long)extent : end;
}

/* Output columns [*lo, *hi) of [b, e) whose windows lie wholly inside the row. */
static void interior_columns(const cbq_pool2d_cfg *c, size_t w, size_t b, size_t e, size_t *lo,
                             size_t *hi)
{
    const size_t s = (size_t)c->stride_w, pad = (size_t)c->pad_w, k = (size_t)c->kernel_w;
    size_t first = (pad + s - 1) / s, end = w + pad >= k ? (w + pad - k) / s + 1 : 0;
    *lo = first < b ? b : first > e ? e : first;
    *hi = end > e ? e : end < *lo ? *lo : end;
}

/* m[j] = maximum of window (y, b + j), for j < e - b; idx[j] its index in
 * the plane (skipped when idx is NULL). */
static void row_argmax(float *restrict m, int32_t *restrict idx, const float *restrict x,
                       const cbq_pool2d_cfg *c, size_t h, size_t w, size_t y, size_t b, size_t e)
{
    const size_t s = (size_t)c->stride_w, count = e - b;
    long iy0, iy1, ix0, ix1;
    size_t lo, hi;
    window_span(y, c->stride_h, c->pad_h, c->kernel_h, h, &iy0, &iy1);
    interior_columns(c, w, b, e, &lo, &hi);
    for (size_t j = 0; j < count; j++) {
        m[j] = -INFINITY;
        if (idx) {
            window_span(b + j, c->stride_w, c->pad_w, c->kernel_w, w, &ix0, &ix1);
            idx[j] = iy0 < iy1 && ix0 < ix1 ? (int32_t)(iy0 * (long)w + ix0) : -1;
        }
    }
    for (long iy = iy0; iy < iy1; iy++) {
        const float *xr = x + (size_t)iy * w;
        for (int kx = 0; kx < c->kernel_w; kx++) {
            const long shift = kx - c->pad_w; /* input column of window xo: xo * s + shift */
            const size_t edges[2][2] = {{b, lo}, {hi, e}}; /* windows that reach the padding */
            for (int part = 0; part < 2; part++)
                for (size_t xo = edges[part][0]; xo < edges[part][1]; xo++) {
                    long ix = (long)(xo * s) + shift;
                    if (ix < 0 || ix >= (long)w || !replaces(xr[ix], m[xo - b]))
                        continue;
                    m[xo - b] = xr[ix];
                    if (idx)
                        idx[xo - b] = (int32_t)(iy * (long)w + ix);
                }
            if (lo == hi)
                continue;
            const float *xk = xr + (long)(lo * s) + shift;
            float *mk = m + (lo - b);
            const size_t n = hi - lo;
            if (!idx) {
                for (size_t j = 0; j < n; j++) {
                    float v = xk[j * s], cur = mk[j];
                    mk[j] = replaces(v, cur) ? v : cur;
                }
                continue;
            }
            int32_t *ik = idx + (lo - b);
            const int32_t at = (int32_t)(iy * (long)w + (long)(lo * s) + shift);
            for (size_t j = 0; j < n; j++) {
                float v = xk[j * s], cur = mk[j];
                int r = replaces(v, cur);
                mk[j] = r ? v : cur;
                ik[j] = r ? at + (int32_t)(j * s) : ik[j];
            }
        }
    }
}

/* Output columns per row_argmax call in backward (its stack buffers). */
enum { POOL_CHUNK = 256 };

static void pool_plane(float *restrict o, const float *restrict x, const cbq_pool2d_cfg *c, size_t h,
                       size_t w, size_t oh, size_t ow)
{
    for (size_t y = 0; y < oh; y++)
        row_argmax(o + y * ow, NULL, x, c, h, w, y, 0, ow);
}

/* Windows overlap: gradients are added in the reference's order (output
 * rows, then columns), so the sums are its bits too. */
static void pool_plane_back(float *restrict d, const float *restrict g, const float *restrict x,
                            const cbq_pool2d_cfg *c, size_t h, size_t w, size_t oh, size_t ow)
{
    float m[POOL_CHUNK];
    int32_t idx[POOL_CHUNK];
    memset(d, 0, h * w * sizeof *d);
    for (size_t y = 0; y < oh; y++)
        for (size_t b = 0; b < ow; b += POOL_CHUNK) {
            size_t e = ow - b < POOL_CHUNK ? ow : b + POOL_CHUNK;
            row_argmax(m, idx, x, c, h, w, y, b, e);
            for (size_t j = 0; j < e - b; j++)
                if (idx[j] >= 0)
                    d[idx[j]] += g[y * ow + b + j];
        }
}

static void pool2x2_plane(float *restrict o, const float *restrict x, size_t h, size_t w, size_t oh,
                          size_t ow)
{
    (void)h;
    for (size_t y = 0; y < oh; y++) {
        const float *r0 = x + 2 * y * w, *r1 = r0 + w;
        float *row = o + y * ow;
        for (size_t xo = 0; xo < ow; xo++) {
            float m = r0[2 * xo];
            if (replaces(r0[2 * xo + 1], m))
                m = r0[2 * xo + 1];
            if (replaces(r1[2 * xo], m))
                m = r1[2 * xo];
            if (replaces(r1[2 * xo + 1], m))
                m = r1[2 * xo + 1];
            row[xo] = m;
        }
    }
}

/* Windows do not overlap: every covered input gets its value or 0 written,
 * so only an odd last row/column needs zeroing. */
static void pool2x2_plane_back(float *restrict d, const float *restrict g, const float *restrict x,
                               size_t h, size_t w, size_t oh, size_t ow)
{
    for (size_t y = 0; y < oh; y++) {
        const float *r0 = x + 2 * y * w, *r1 = r0 + w, *gy = g + y * ow;
        float *d0 = d + 2 * y * w, *d1 = d0 + w;
        for (size_t xo = 0; xo < ow; xo++) {
            int i = argmax4(r0[2 * xo], r0[2 * xo + 1], r1[2 * xo], r1[2 * xo + 1]);
            float v = gy[xo];
            d0[2 * xo] = keep_if(v, i == 0);
            d0[2 * xo + 1] = keep_if(v, i == 1);
            d1[2 * xo] = keep_if(v, i == 2);
            d1[2 * xo + 1] = keep_if(v, i == 3);
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
        pool_plane(o, x, cfg, h, w, oh, ow);
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
        if (h * w <= INT32_MAX) /* row_argmax's indices are int32, 8 to a vector */
            pool_plane_back(d, g, x, cfg, h, w, oh, ow);
        else
            maxpool2d_backward_ref(d, g, x, cfg, 1, h, w);
    }
}

void maxpool2d_forward_ref(float *out, const float *in, const cbq_pool2d_cfg *cfg, size_t planes,
                           size_t h, size_t w)
{
    const size_t oh = pool2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h, cfg->ceil_mode);
    const size_t ow = pool2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w, cfg->ceil_mode);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = in + pl * h * w;
        float *o = out + pl * oh * ow;
        for (size_t y = 0; y < oh; y++)
            for (size_t xo = 0; xo < ow; xo++) {
                long idx = window_argmax(x, cfg, h, w, y, xo);
                o[y * ow + xo] = idx < 0 ? -INFINITY : x[idx];
            }
    }
}

void maxpool2d_backward_ref(float *din, const float *dout, const float *in, const cbq_pool2d_cfg *cfg,
                            size_t planes, size_t h, size_t w)
{
    const size_t oh = pool2d_out_size(h, cfg->kernel_h, cfg->stride_h, cfg->pad_h, cfg->ceil_mode);
    const size_t ow = pool2d_out_size(w, cfg->kernel_w, cfg->stride_w, cfg->pad_w, cfg->ceil_mode);
    memset(din, 0, planes * h * w * sizeof *din);
    for (size_t pl = 0; pl < planes; pl++)
        for (size_t y = 0; y < oh; y++)
            for (size_t xo = 0; xo < ow; xo++) {
                long idx = window_argmax(in + pl * h * w, cfg, h, w, y, xo);
                if (idx >= 0)
                    din[pl * h * w + (size_t)idx] += dout[(pl * oh + y) * ow + xo];
            }
}
