/* conv2d_winograd_wgrad.c - the weight gradient of 3x3 stride-1
 * convolutions by Winograd F(4x4, 3x3) (Lavin & Gray 2016, interpolation
 * points 0, +-1, +-2): the exact chain rule through the forward's transforms.
 * Not the forward or the input gradient (conv2d_winograd.c).
 *
 * The forward computes each 4x4 output tile as Y = A^T [U .* V] A with
 * U = G g G^T (the kernel) and V = B^T d B (the tile's 6x6 input patch,
 * origin at -pad, zero outside the image). So with dM = A dY A^T (the
 * tile's output gradient, zero outside the output),
 *   dU[xi][o][c] = sum over tiles of dM[xi][o][tile] * V[xi][c][tile]
 * for each of the 36 points xi: 36 GEMMs [Cout, P] x [P, Cin] over the P
 * tiles of all samples, 4x fewer multiplications than im2col's
 * [Cout, P*16] x [P*16, Cin*9], and dweight += G^T dU G.
 *
 * Parallel scheme, with a result that does not depend on the thread count:
 * the tiles (index = sample, tile row, tile column) are cut into blocks
 * whose size depends on the channels only. For each block, in order, each
 * thread transforms its share of the input and output-gradient channels
 * (all 36 points, so every plane is read and transformed once), then, after
 * one barrier, adds the GEMMs of its share of the 36 points into dU. With
 * two or more threads the blocks alternate between two V/dM buffers, so the
 * next block's transforms may start while another thread still multiplies
 * the previous one: one barrier per block. (Each thread transforming its own
 * points of every channel, the scheme before, read and transformed each
 * plane once per thread: 1.3-2.4x the CPU time with two threads.) Every dU
 * element is thus the same sequence of operations whoever computes it;
 * G^T dU G is then computed per (Cout, Cin) pair. When one block holds every
 * tile, dU is computed and transformed in chunks of output channels instead
 * (below).
 *
 * Workspace (floats, offsets from its start): the block's V [36][Cin][Pb]
 * and dM [36][Cout][Pb] (twice with two or more threads), each thread's
 * scratch rows for the transforms, then dU [36][Cout][Cin] or each thread's
 * dU chunk.
 *
 * The transforms run row-wise and vectorise over tile columns: first the
 * 1-D transform down each column of a tile row (contiguous rows of the
 * plane), then along each resulting row, tile t reading columns 4t.. .
 */
#include <omp.h>
#include <string.h>

#include "cbctiq/gemm.h"
#include "nn/layer.h"

enum { TILE = 4, PATCH = 6, POINTS = PATCH * PATCH };

/* Tiles per block: V + dM of a block near BLOCK_FLOATS floats (4 MiB), but
 * at least MIN_TILES (the GEMMs' inner dimension; below it every block
 * re-reads and re-writes all of dU for little work) and at most MAX_TILES. */
enum { BLOCK_FLOATS = 1 << 20, MIN_TILES = 64, MAX_TILES = 512, TILE_ROUND = 16 };

/* One call's shapes: n samples of Cin planes h x w, Cout output planes
 * oh x ow, tiles_y x tiles_x tiles per sample. */
typedef struct {
    size_t cin, cout, n, h, w, oh, ow, pad_y, pad_x;
    size_t tiles_y, tiles_x, tiles, block, blocks;
    size_t du_ld, v_ld, m_ld; /* floats from one point's matrix to the next */
} wgrad_plan;

/* The 36 matrices of dU, V and dM lie this many floats (a cache line) more
 * than their size apart: at power-of-two strides (512 x 512 floats), the 36
 * reads of one (Cout, Cin) pair all fall in the same cache set and evict
 * each other. */
enum { POINT_PAD = 16 };

static int is_one(int v) { return v == 0 || v == 1; } /* 0: a spec from before the field */

static int wgrad_supported(const cbq_conv2d_cfg *c, size_t h, size_t w)
{
    return c->kernel_h == 3 && c->kernel_w == 3 && c->stride_h == 1 && c->stride_w == 1 &&
           is_one(c->dilation_h) && is_one(c->dilation_w) && is_one(c->groups) && c->pad_h >= 0 &&
           c->pad_h <= 2 && c->pad_w >= 0 && c->pad_w <= 2 && h + 2 * (size_t)c->pad_h >= 3 &&
           w + 2 * (size_t)c->pad_w >= 3 && c->in_channels > 0 && c->out_channels > 0;
}

static size_t block_tiles(size_t cin, size_t cout)
{
    size_t pb = BLOCK_FLOATS / (POINTS * (cin + cout));
    pb = pb / TILE_ROUND * TILE_ROUND;
    if (pb < MIN_TILES)
        pb = MIN_TILES;
    return pb > MAX_TILES ? MAX_TILES : pb;
}

static wgrad_plan plan_make(const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w)
{
    wgrad_plan p = {.cin = (size_t)cfg->in_channels, .cout = (size_t)cfg->out_channels, .n = n,
                    .h = h, .w = w, .pad_y = (size_t)cfg->pad_h, .pad_x = (size_t)cfg->pad_w};
    p.oh = h + 2 * p.pad_y - 2;
    p.ow = w + 2 * p.pad_x - 2;
    p.tiles_y = (p.oh + TILE - 1) / TILE;
    p.tiles_x = (p.ow + TILE - 1) / TILE;
    p.tiles = n * p.tiles_y * p.tiles_x;
    p.block = block_tiles(p.cin, p.cout);
    p.blocks = (p.tiles + p.block - 1) / p.block;
    p.du_ld = p.cout * p.cin + POINT_PAD;
    p.v_ld = p.cin * p.block + POINT_PAD;
    p.m_ld = p.cout * p.block + POINT_PAD;
    return p;
}

/* Where Winograd's weight gradient beats im2col's (CPU time, one thread,
 * batch 16-32, measured with bench_layers and alone per shape): every
 * resnet18 and iqnet-s 3x3 stride-1 layer at 128 and 224 input (1.4x at
 * 512 channels on 4x4 planes to 2.5x), except iqnet-s's first, one input
 * channel (0.8x: its transforms outweigh a GEMM with K = 9). It loses where
 * the 4x4 tiles are mostly padding: 1x1 to 3x3 planes (0.4-0.6x), 5x5 even;
 * 6x6 wins (1.2x). So: at least two input channels and nine in all, planes
 * at least 4 wide whose tiles are at least half used. */
int conv2d_winograd_wgrad_eligible(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    if (!wgrad_supported(cfg, h, w) || cfg->in_channels < 2 ||
        cfg->in_channels + cfg->out_channels < 9)
        return 0;
    const wgrad_plan p = plan_make(cfg, 1, h, w);
    return p.oh >= TILE && p.ow >= TILE && 2 * p.oh * p.ow >= p.tiles * TILE * TILE;
}

/* A tile row's scratch: a zero row, as long as a plane row or a padded tile
 * row, and a column-transformed row of 4 * tiles_x + 4 floats. */
static size_t row_floats(const wgrad_plan *p) { return TILE * p->tiles_x + TILE; }

static size_t zero_floats(const wgrad_plan *p)
{
    return p->w > row_floats(p) ? p->w : row_floats(p);
}

static size_t scratch_floats(const wgrad_plan *p)
{
    return zero_floats(p) + row_floats(p);
}

static size_t du_floats(const wgrad_plan *p) { return POINTS * p->du_ld; }
static size_t block_floats(const wgrad_plan *p) { return POINTS * (p->v_ld + p->m_ld); }

/* When all tiles fit in one block, dU is computed CHUNK_ROWS output
 * channels at a time into each thread's own [36][rows][Cin] and turned into
 * dweight at once, while it is still in cache (at 512 x 512 channels the
 * whole dU, 38 MB, would go to memory and back). Measured at 512 channels,
 * 7x7 and 4x4 planes: 64 rows beat 16, 32 and all 512 (the GEMMs re-pack V
 * once per chunk). */
enum { CHUNK_ROWS = 64 };

static size_t chunk_rows(const wgrad_plan *p) { return p->cout < CHUNK_ROWS ? p->cout : CHUNK_ROWS; }
static size_t chunk_ld(const wgrad_plan *p) { return chunk_rows(p) * p->cin + POINT_PAD; }

/* Layout: V, dM (twice with two or more threads), each thread's scratch,
 * then dU (several blocks) or each thread's dU chunk (one block). The
 * caller provides threads times this: a team of one needs all of it, a team
 * of nt >= 2 at most 2 blocks + nt scratches + nt chunks (or one dU). */
size_t conv2d_winograd_wgrad_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    if (!wgrad_supported(cfg, h, w))
        return 0;
    const wgrad_plan p = plan_make(cfg, 1, h, w);
    const size_t du = du_floats(&p), chunk = POINTS * chunk_ld(&p);
    return block_floats(&p) + scratch_floats(&p) + (du > chunk ? du : chunk);
}

/* ---- input transform: V = B^T d B ----------------------------------------- */

/* Point k of B^T d down the columns: o[x] = sum_j B^T[k][j] d_j[x], with
 * Lavin & Gray's B^T =
 *   4  0 -5  0  1  0
 *   0 -4 -4  1  1  0
 *   0  4 -4 -1  1  0
 *   0 -2 -1  2  1  0
 *   0  2 -1 -2  1  0
 *   0  4  0 -5  0  1
 * (restrict parameters, not locals: GCC 12 vectorises only those). */
static void input_column(size_t k, float *restrict o, const float *restrict d0,
                         const float *restrict d1, const float *restrict d2,
                         const float *restrict d3, const float *restrict d4,
                         const float *restrict d5, size_t count)
{
    switch (k) {
    case 0:
        for (size_t x = 0; x < count; x++)
            o[x] = 4.0f * d0[x] - 5.0f * d2[x] + d4[x];
        break;
    case 1:
        for (size_t x = 0; x < count; x++)
            o[x] = -4.0f * (d1[x] + d2[x]) + d3[x] + d4[x];
        break;
    case 2:
        for (size_t x = 0; x < count; x++)
            o[x] = 4.0f * (d1[x] - d2[x]) - d3[x] + d4[x];
        break;
    case 3:
        for (size_t x = 0; x < count; x++)
            o[x] = -2.0f * (d1[x] - d3[x]) - d2[x] + d4[x];
        break;
    case 4:
        for (size_t x = 0; x < count; x++)
            o[x] = 2.0f * (d1[x] - d3[x]) - d2[x] + d4[x];
        break;
    default:
        for (size_t x = 0; x < count; x++)
            o[x] = 4.0f * d1[x] - 5.0f * d3[x] + d5[x];
        break;
    }
}

/* Along a row: tile t reads the row's columns 4t .. 4t+5 (a stride-4
 * group GCC vectorises with shuffles); point i goes to v + i * xi_stride. */
static void input_row_points(float *restrict o0, float *restrict o1, float *restrict o2,
                             float *restrict o3, float *restrict o4, float *restrict o5,
                             const float *restrict row, size_t count)
{
    for (size_t t = 0; t < count; t++) {
        const float *d = row + TILE * t;
        const float a = d[1], b = d[2], c = d[3], e = d[4];
        o0[t] = 4.0f * d[0] - 5.0f * b + e;
        o1[t] = -4.0f * (a + b) + c + e;
        o2[t] = 4.0f * (a - b) - c + e;
        o3[t] = -2.0f * (a - c) - b + e;
        o4[t] = 2.0f * (a - c) - b + e;
        o5[t] = 4.0f * a - 5.0f * c + d[5];
    }
}

/* The padded columns x0 .. x0+count-1 of a row (plane column = padded
 * column - pad): the first `lead` lie left of the plane, the next `inside`
 * start at plane column `start`, the rest lie right of it. */
typedef struct { size_t lead, inside, start; } row_span;

static row_span span_of(size_t x0, size_t count, size_t pad, size_t width)
{
    row_span s = {0, 0, 0};
    s.lead = x0 < pad ? pad - x0 : 0;
    if (s.lead > count)
        s.lead = count;
    s.start = x0 + s.lead - pad;
    s.inside = s.start < width ? width - s.start : 0;
    if (s.inside > count - s.lead)
        s.inside = count - s.lead;
    return s;
}

/* Row k (points 6k .. 6k+5) of a 6-point transform along a row, point
 * 6k + j written at dst + (6k + j) * xi_stride. */
typedef void (*row_points_fn)(float *restrict, float *restrict, float *restrict, float *restrict,
                              float *restrict, float *restrict, const float *restrict, size_t);

static void row_points(row_points_fn fn, float *dst, size_t xi_stride, const float *row,
                       size_t count, size_t k)
{
    float *o = dst + PATCH * k * xi_stride;
    fn(o, o + xi_stride, o + 2 * xi_stride, o + 3 * xi_stride, o + 4 * xi_stride,
       o + 5 * xi_stride, row, count);
}

/* V[xi][t] for tiles t = 0 .. count-1 of tile row ty,
 * tile columns tx0 .. tx0+count-1, of one plane h x w (origin -pad_y,
 * -pad_x): V is written at v + xi * xi_stride + t. */
static void input_tiles_row(float *v, size_t xi_stride, const float *plane, const wgrad_plan *p,
                            size_t ty, size_t tx0, size_t count, float *scratch)
{
    const float *zero = scratch;
    float *col = scratch + zero_floats(p);
    const size_t padded = TILE * (count + 1);
    const row_span span = span_of(TILE * tx0, TILE * count + 2, p->pad_x, p->w);
    const float *src[PATCH];
    for (size_t r = 0; r < PATCH; r++) {
        const size_t y = TILE * ty + r; /* padded row */
        const int inside = y >= p->pad_y && y - p->pad_y < p->h;
        src[r] = (inside ? plane + (y - p->pad_y) * p->w : zero) + span.start;
    }
    memset(col, 0, span.lead * sizeof(float));
    memset(col + span.lead + span.inside, 0, (padded - span.lead - span.inside) * sizeof(float));
    for (size_t k = 0; k < PATCH; k++) {
        /* down the columns inside the plane (zero columns transform to zero),
         * then along the row: column-transformed row k gives points 6k .. */
        input_column(k, col + span.lead, src[0], src[1], src[2], src[3], src[4], src[5],
                     span.inside);
        row_points(input_row_points, v, xi_stride, col, count, k);
    }
}

/* V[xi][c][t - first] for tiles first .. first+count-1 (across samples) of
 * input channel c. */
static void input_tiles(float *v, size_t xi_stride, const float *in, const wgrad_plan *p, size_t c,
                        size_t first, size_t count, float *scratch)
{
    const size_t per_sample = p->tiles_y * p->tiles_x;
    for (size_t t = first; t < first + count;) {
        const size_t s = t / per_sample, ty = t % per_sample / p->tiles_x, tx = t % p->tiles_x;
        size_t run = p->tiles_x - tx;
        if (run > first + count - t)
            run = first + count - t;
        input_tiles_row(v + (t - first), xi_stride, in + (s * p->cin + c) * p->h * p->w, p, ty,
                        tx, run, scratch);
        t += run;
    }
}

/* ---- output-gradient transform: dM = A dY A^T ----------------------------- */

/* Point k = 1..4 of A dY down the columns: o[x] = sum_a A^T[a][k] y_a[x];
 * points 0 and 5 are y_0 and y_3 themselves. A^T =
 *   1  1  1  1  1  0
 *   0  1 -1  2 -2  0
 *   0  1  1  4  4  0
 *   0  1 -1  8 -8  1 */
static void grad_column(size_t k, float *restrict o, const float *restrict y0,
                        const float *restrict y1, const float *restrict y2,
                        const float *restrict y3, size_t count)
{
    switch (k) {
    case 1:
        for (size_t x = 0; x < count; x++)
            o[x] = (y0[x] + y2[x]) + (y1[x] + y3[x]);
        break;
    case 2:
        for (size_t x = 0; x < count; x++)
            o[x] = (y0[x] + y2[x]) - (y1[x] + y3[x]);
        break;
    case 3:
        for (size_t x = 0; x < count; x++)
            o[x] = (y0[x] + 4.0f * y2[x]) + (2.0f * y1[x] + 8.0f * y3[x]);
        break;
    default:
        for (size_t x = 0; x < count; x++)
            o[x] = (y0[x] + 4.0f * y2[x]) - (2.0f * y1[x] + 8.0f * y3[x]);
        break;
    }
}

/* All six points along a row: tile t reads the row's columns 4t .. 4t+3. */
static void grad_row_points(float *restrict o0, float *restrict o1, float *restrict o2,
                            float *restrict o3, float *restrict o4, float *restrict o5,
                            const float *restrict row, size_t count)
{
    for (size_t t = 0; t < count; t++) {
        const float *y = row + TILE * t;
        const float s02 = y[0] + y[2], s13 = y[1] + y[3];
        const float s02b = y[0] + 4.0f * y[2], s13b = 2.0f * y[1] + 8.0f * y[3];
        o0[t] = y[0];
        o1[t] = s02 + s13;
        o2[t] = s02 - s13;
        o3[t] = s02b + s13b;
        o4[t] = s02b - s13b;
        o5[t] = y[3];
    }
}

/* dM[xi][t] for tiles t = 0 .. count-1 of tile row ty,
 * tile columns tx0 .., of one output-gradient plane oh x ow (zero outside
 * it). */
static void grad_tiles_row(float *m, size_t xi_stride, const float *plane, const wgrad_plan *p,
                           size_t ty, size_t tx0, size_t count, float *scratch)
{
    const float *zero = scratch;
    float *col = scratch + zero_floats(p);
    const size_t x0 = TILE * tx0, width = TILE * count;
    const size_t inside = x0 + width <= p->ow ? width : p->ow - x0;
    const float *src[TILE];
    for (size_t a = 0; a < TILE; a++) {
        const size_t y = TILE * ty + a;
        src[a] = y < p->oh ? plane + y * p->ow + x0 : zero;
    }
    memset(col + inside, 0, (width - inside) * sizeof(float));
    for (size_t k = 0; k < PATCH; k++) {
        /* down the columns; points 0 and 5 are rows 0 and 3, copied only
         * where the last tile runs past the plane's edge and needs zeros */
        const float *row = col;
        if ((k == 0 || k == 5) && inside == width)
            row = src[k == 0 ? 0 : 3];
        else if (k == 0 || k == 5)
            memcpy(col, src[k == 0 ? 0 : 3], inside * sizeof(float));
        else
            grad_column(k, col, src[0], src[1], src[2], src[3], inside);
        row_points(grad_row_points, m, xi_stride, row, count, k);
    }
}

/* dM[xi][o][t - first] for tiles first .. first+count-1 of output channel o. */
static void grad_tiles(float *m, size_t xi_stride, const float *dout, const wgrad_plan *p,
                       size_t o, size_t first, size_t count, float *scratch)
{
    const size_t per_sample = p->tiles_y * p->tiles_x;
    for (size_t t = first; t < first + count;) {
        const size_t s = t / per_sample, ty = t % per_sample / p->tiles_x, tx = t % p->tiles_x;
        size_t run = p->tiles_x - tx;
        if (run > first + count - t)
            run = first + count - t;
        grad_tiles_row(m + (t - first), xi_stride, dout + (s * p->cout + o) * p->oh * p->ow, p,
                       ty, tx, run, scratch);
        t += run;
    }
}

/* ---- dweight += G^T dU G ---------------------------------------------------- */

enum { PAIR_LANES = 16 };

/* out[j][l] = sum_b G[b][j] in[b * step][l], with Lavin & Gray's G =
 *   1/4     0     0
 *  -1/6  -1/6  -1/6
 *  -1/6   1/6  -1/6
 *   1/24  1/12  1/6
 *   1/24 -1/12  1/6
 *   0     0     1 */
static void weight_points(float (*restrict out)[PAIR_LANES], size_t out_step,
                          const float (*restrict in)[PAIR_LANES], size_t step)
{
    const float *u0 = in[0], *u1 = in[step], *u2 = in[2 * step], *u3 = in[3 * step];
    const float *u4 = in[4 * step], *u5 = in[5 * step];
    float *g0 = out[0], *g1 = out[out_step], *g2 = out[2 * out_step];
    for (size_t l = 0; l < PAIR_LANES; l++) {
        const float s12 = u1[l] + u2[l], s34 = u3[l] + u4[l];
        g0[l] = u0[l] * (1.0f / 4.0f) - s12 * (1.0f / 6.0f) + s34 * (1.0f / 24.0f);
        g1[l] = (u2[l] - u1[l]) * (1.0f / 6.0f) + (u3[l] - u4[l]) * (1.0f / 12.0f);
        g2[l] = (s34 - s12) * (1.0f / 6.0f) + u5[l];
    }
}

/* dweight[pair][3][3] += G^T dU[.][pair] G for pairs q .. q+lanes-1 (pair =
 * o * Cin + c); lanes past `lanes` read zeros. */
static void weight_grad_lanes(float *dweight, const float *du, size_t du_ld, size_t q,
                              size_t lanes)
{
    float u[POINTS][PAIR_LANES], r[PATCH * 3][PAIR_LANES], g[9][PAIR_LANES];
    for (size_t xi = 0; xi < POINTS; xi++) {
        const float *src = du + xi * du_ld + q;
        if (lanes == PAIR_LANES) {
            for (size_t l = 0; l < PAIR_LANES; l++)
                u[xi][l] = src[l];
            continue;
        }
        for (size_t l = 0; l < PAIR_LANES; l++)
            u[xi][l] = l < lanes ? src[l] : 0.0f;
    }
    for (size_t a = 0; a < PATCH; a++) /* r [6][3] = dU G */
        weight_points(&r[a * 3], 1, (const float (*)[PAIR_LANES])&u[a * PATCH], 1);
    for (size_t j = 0; j < 3; j++) /* g [3][3] = G^T r */
        weight_points(&g[j], 3, (const float (*)[PAIR_LANES])&r[j], 3);
    for (size_t l = 0; l < lanes; l++)
        for (size_t e = 0; e < 9; e++)
            dweight[(q + l) * 9 + e] += g[e][l];
}

static void weight_grad_pairs(float *dweight, const float *du, size_t du_ld, size_t q0, size_t q1)
{
    for (size_t q = q0; q < q1; q += PAIR_LANES)
        weight_grad_lanes(dweight, du, du_ld, q, q1 - q < PAIR_LANES ? q1 - q : PAIR_LANES);
}

/* dbias[o] += the sum of dout over samples and pixels, in a fixed order. */
static void bias_grad(float *dbias, const float *dout, const wgrad_plan *p, size_t o)
{
    enum { LANES = 16 };
    const size_t plane = p->oh * p->ow;
    float acc[LANES] = {0};
    for (size_t s = 0; s < p->n; s++) {
        const float *g = dout + (s * p->cout + o) * plane;
        size_t i = 0;
        for (; i + LANES <= plane; i += LANES)
            for (size_t l = 0; l < LANES; l++)
                acc[l] += g[i + l];
        for (; i < plane; i++)
            acc[i % LANES] += g[i];
    }
    float sum = 0.0f;
    for (size_t l = 0; l < LANES; l++)
        sum += acc[l];
    dbias[o] += sum;
}

/* ---- the whole weight gradient --------------------------------------------- */

/* Thread t's share [*lo, *hi) of `items` items split over nt threads. */
static void share(size_t items, size_t t, size_t nt, size_t *lo, size_t *hi)
{
    *lo = items * t / nt;
    *hi = items * (t + 1) / nt;
}

/* Thread t's share of block b's input channels (V) and output-gradient
 * channels (dM), all 36 points of each. */
static void transform_block(float *v, float *m, const float *dout, const float *in,
                            const wgrad_plan *p, size_t b, size_t t, size_t nt, float *scratch)
{
    const size_t first = b * p->block;
    const size_t count = p->tiles - first < p->block ? p->tiles - first : p->block;
    size_t lo, hi;
    share(p->cin, t, nt, &lo, &hi);
    for (size_t c = lo; c < hi; c++)
        input_tiles(v + c * p->block, p->v_ld, in, p, c, first, count, scratch);
    share(p->cout, t, nt, &lo, &hi);
    for (size_t o = lo; o < hi; o++)
        grad_tiles(m + o * p->block, p->m_ld, dout, p, o, first, count, scratch);
}

/* dU[xi] (+)= dM[xi] [Cout, count] * V[xi]^T [count, Cin] for this thread's
 * points; the first block sets dU. */
static void gemm_block(float *du, const float *v, const float *m, const wgrad_plan *p, size_t b,
                       size_t t, size_t nt)
{
    const size_t first = b * p->block;
    const size_t count = p->tiles - first < p->block ? p->tiles - first : p->block;
    size_t lo, hi;
    share(POINTS, t, nt, &lo, &hi);
    for (size_t xi = lo; xi < hi; xi++)
        cbq_sgemm(0, 1, p->cout, p->cin, count, 1.0f, m + xi * p->m_ld, p->block,
                  v + xi * p->v_ld, p->block, b == 0 ? 0.0f : 1.0f, du + xi * p->du_ld, p->cin);
}

/* One block: dweight += G^T dU G for this thread's chunks of output
 * channels, each chunk's dU [36][rows][Cin] computed into `du` just before. */
static void gemm_chunks(float *dweight, float *du, const float *v, const float *m,
                        const wgrad_plan *p, size_t t, size_t nt)
{
    const size_t rows = chunk_rows(p), chunks = (p->cout + rows - 1) / rows, ld = chunk_ld(p);
    size_t lo, hi;
    share(chunks, t, nt, &lo, &hi);
    for (size_t c = lo; c < hi; c++) {
        const size_t o0 = c * rows, r = p->cout - o0 < rows ? p->cout - o0 : rows;
        for (size_t xi = 0; xi < POINTS; xi++)
            cbq_sgemm(0, 1, r, p->cin, p->tiles, 1.0f, m + xi * p->m_ld + o0 * p->block, p->block,
                      v + xi * p->v_ld, p->block, 0.0f, du + xi * ld, p->cin);
        weight_grad_pairs(dweight + o0 * p->cin * 9, du, ld, 0, r * p->cin);
    }
}

void conv2d_winograd_backward_weight(float *dweight, float *dbias, const float *dout,
                                     const float *in, const cbq_conv2d_cfg *cfg, size_t n,
                                     size_t h, size_t w, float *workspace, int threads)
{
    const wgrad_plan p = plan_make(cfg, n, h, w);
    /* two V/dM buffers where the workspace holds them (threads >= 2) */
    const size_t buffers = threads > 1 ? 2 : 1, buffer_n = block_floats(&p);
    float *scratch_base = workspace + buffers * buffer_n;
    const size_t pairs = p.cout * p.cin, scratch_n = scratch_floats(&p);
    float *du = scratch_base + (size_t)threads * scratch_n; /* or the threads' chunks */
#pragma omp parallel num_threads(threads)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        float *scratch = scratch_base + t * scratch_n;
        memset(scratch, 0, zero_floats(&p) * sizeof(float));
        size_t lo, hi;
        if (dweight && p.blocks == 1) {
            float *v = workspace, *m = v + POINTS * p.v_ld;
            transform_block(v, m, dout, in, &p, 0, t, nt, scratch);
#pragma omp barrier
            gemm_chunks(dweight, du + t * POINTS * chunk_ld(&p), v, m, &p, t, nt);
        } else if (dweight) {
            for (size_t b = 0; b < p.blocks; b++) {
                /* the buffer last read by block b - 2's GEMMs, which every
                 * thread finished before block b - 1's barrier */
                float *v = workspace + b % buffers * buffer_n, *m = v + POINTS * p.v_ld;
                transform_block(v, m, dout, in, &p, b, t, nt, scratch);
#pragma omp barrier
                gemm_block(du, v, m, &p, b, t, nt);
            }
#pragma omp barrier
            share(pairs, t, nt, &lo, &hi);
            weight_grad_pairs(dweight, du, p.du_ld, lo, hi);
        }
        if (dbias) {
            share(p.cout, t, nt, &lo, &hi);
            for (size_t o = lo; o < hi; o++)
                bias_grad(dbias, dout, &p, o);
        }
    }
}
