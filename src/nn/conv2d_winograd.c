/* conv2d_winograd.c - 3x3 stride-1 convolutions by Winograd F(4x4, 3x3)
 * (Lavin & Gray 2016, interpolation points 0, +-1, +-2) and, on small
 * planes, F(2x2, 3x3) (points 0, +-1).
 *
 * A 4x4 output tile needs a 6x6 input tile d; with the weight transform
 * U = G g G^T and the input transform V = B^T d B, the tile is
 * A^T (U .* V) A. Summed over input channels, the 36 element-wise products
 * become 36 GEMMs M[xi] [K, P] = U[xi] [K, C] * V[xi] [C, P] over P tiles,
 * 2.25x fewer multiplications than the direct 3x3 convolution (4x counting
 * the tiles' overlap). F(2x2, 3x3) is the same scheme with 2x2 output tiles,
 * 4x4 input tiles and 16 points (2.25x): on a 4x4 plane its transformed
 * weights are 16, not 36, matrices and each GEMM gets 4x the tiles, which
 * is what a wide layer on a small plane (resnet18's layer4 at 128 input)
 * needs; its transforms only add and halve, so it is also the more exact.
 *
 * Layout: U [points][K][C] is computed by the whole team at the start of the
 * workspace; then the tiles of all samples (tile index = sample, tile row,
 * tile column) are cut into blocks of block_tiles() tiles, each thread taking
 * a contiguous run of blocks into its own V [points][C][Pb] and M
 * [points][K][Pb].
 * A block's size depends on the shape and batch only, and each output value
 * is computed inside one block by the same operations, so the forward gives
 * the same bits for any thread count.
 *
 * The input gradient of a stride-1 convolution is a convolution of dout
 * with the flipped, transposed kernel and padding 2 - pad: the same code
 * with the weight transform reading the kernel that way.
 *
 * Transforms run on LANES tiles (or input channels) at a time, the lane
 * index innermost, so that GCC vectorises them.
 */
#include <omp.h>
#include <string.h>

#include "cbctiq/gemm.h"
#include "nn/layer.h"

/* The transforms are written once for both tile sides; INLINE_FOR_TILE
 * bodies are inlined into a copy per side, where the side is a constant, so
 * their loops unroll as F(4x4)'s did alone (a runtime side cost it 10%). */
#define INLINE_FOR_TILE static inline __attribute__((always_inline))

/* MAX_*: F(4x4, 3x3)'s sizes, which bound F(2x2, 3x3)'s. */
enum { MAX_PATCH = 6, MAX_POINTS = MAX_PATCH * MAX_PATCH, LANES = 16 };

/* Output planes of at most SMALL_PLANE x SMALL_PLANE pixels take F(2x2,
 * 3x3), where F(4x4, 3x3) has one tile per sample. Measured forward GF/cs
 * (one thread, batch 16) F(2x2) / F(4x4) / GEMM: 4x4 planes, 512 channels
 * 94 / 63 / 82, 256 channels 122 / 88 / 80; but 7x7 planes, 512 channels
 * 79 / 101 / 81 and 8x8, 256 channels 138 / 157 / 92: F(2x2) does 1.78x
 * F(4x4)'s multiplications there, which its wider GEMMs do not repay. */
enum { SMALL_PLANE = 4 };

/* Blocks of tiles: V + M near this many floats (1 MiB, the L2 here), but
 * never fewer than MIN_TILES tiles, so that each GEMM has enough columns to
 * run near the SGEMM ceiling. */
enum { BLOCK_FLOATS = 1 << 18, MIN_TILES = 32, MAX_TILES = 256 };

/* The work of one call: a convolution with C input and K output channels,
 * 3x3 kernel, stride 1, padding pad, of n planes ih x iw into oh x ow. */
typedef struct {
    size_t tile, patch, points; /* 4, 6, 36 or 2, 4, 16 */
    size_t c, k, n, ih, iw, oh, ow, pad_y, pad_x;
    size_t tiles_h, tiles_w, tiles, block, blocks;
    int flipped; /* weights [C, K, 3, 3] read flipped: the input gradient */
} wino_plan;

static int is_one(int v) { return v == 0 || v == 1; } /* 0: a spec from before the field */

/* The shapes this file computes: 3x3, stride 1, dilation 1, one group,
 * zero padding up to 2 (so that the input gradient's padding 2 - pad is one
 * too), and at least one output pixel. */
static int winograd_supported(const cbq_conv2d_cfg *c, size_t h, size_t w)
{
    return c->kernel_h == 3 && c->kernel_w == 3 && c->stride_h == 1 && c->stride_w == 1 &&
           is_one(c->dilation_h) && is_one(c->dilation_w) && is_one(c->groups) && c->pad_h >= 0 &&
           c->pad_h <= 2 && c->pad_w >= 0 && c->pad_w <= 2 && h + 2 * (size_t)c->pad_h >= 3 &&
           w + 2 * (size_t)c->pad_w >= 3;
}

/* The output tile's side for a forward convolution's output plane oh x ow;
 * its input gradient uses the same (the two planes differ by at most 4). */
static size_t tile_side(size_t oh, size_t ow)
{
    return oh <= SMALL_PLANE && ow <= SMALL_PLANE ? 2 : 4;
}

/* Where Winograd is faster than im2col + GEMM (bench_layers, one thread,
 * docs/performance.md): from 16 channels in and out, on output planes of
 * 5x5 and up by F(4x4, 3x3) (1.3-2.9x the GEMM's speed on iqnet-s's and
 * resnet18's 3x3 layers from 7x7 to 128x128) and on 4x4 planes by F(2x2,
 * 3x3) (1.15-1.5x at 256-512 channels). Not with one input channel (a GEMM
 * with K = 9 is cheap and the transforms are not: 0.5x), nor on smaller
 * planes, where the weight transform, redone every call, outweighs the few
 * tiles (3x3 planes: 0.8x at 512 channels; 2x2: 0.7x). */
enum { MIN_CHANNELS = 16, MIN_PLANE = 25, MIN_SMALL_PLANE = 16 };

static int winograd_pays(const cbq_conv2d_cfg *c, size_t h, size_t w)
{
    const size_t oh = h + 2 * (size_t)c->pad_h - 2, ow = w + 2 * (size_t)c->pad_w - 2;
    const size_t min_plane = tile_side(oh, ow) == 2 ? MIN_SMALL_PLANE : MIN_PLANE;
    return c->in_channels >= MIN_CHANNELS && c->out_channels >= MIN_CHANNELS &&
           oh * ow >= min_plane;
}

int conv2d_winograd_eligible(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    if (cfg->algorithm == CBQ_CONV_GEMM || !winograd_supported(cfg, h, w))
        return 0;
    return cfg->algorithm == CBQ_CONV_WINOGRAD || winograd_pays(cfg, h, w);
}

static size_t round_up(size_t v, size_t to) { return (v + to - 1) / to * to; }

static size_t block_tiles(size_t points, size_t c, size_t k, size_t tiles)
{
    size_t pb = BLOCK_FLOATS / (points * (c + k));
    pb = pb / LANES * LANES;
    if (pb < MIN_TILES)
        pb = MIN_TILES;
    if (pb > MAX_TILES)
        pb = MAX_TILES;
    /* at least two blocks where there are tiles for two, so two threads
     * share the work; this depends on the batch, not the thread count */
    const size_t half = round_up((tiles + 1) / 2, LANES);
    return pb < half ? pb : half;
}

static wino_plan plan_make(size_t tile, size_t c, size_t k, size_t n, size_t ih, size_t iw,
                           size_t pad_y, size_t pad_x, int flipped)
{
    wino_plan p = {.tile = tile, .patch = tile + 2, .points = (tile + 2) * (tile + 2),
                   .c = c, .k = k, .n = n, .ih = ih, .iw = iw, .pad_y = pad_y, .pad_x = pad_x,
                   .flipped = flipped};
    p.oh = ih + 2 * pad_y - 2;
    p.ow = iw + 2 * pad_x - 2;
    p.tiles_h = (p.oh + tile - 1) / tile;
    p.tiles_w = (p.ow + tile - 1) / tile;
    p.tiles = n * p.tiles_h * p.tiles_w;
    p.block = block_tiles(p.points, c, k, p.tiles);
    p.blocks = (p.tiles + p.block - 1) / p.block;
    return p;
}

static size_t plan_shared_floats(const wino_plan *p) { return p->points * p->k * p->c; }

static size_t plan_thread_floats(const wino_plan *p)
{
    return p->points * (p->c + p->k) * p->block + 2 * MAX_POINTS * LANES;
}

/* The forward's and the input gradient's plans of one layer. */
static wino_plan forward_plan(const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w)
{
    const size_t py = (size_t)cfg->pad_h, px = (size_t)cfg->pad_w;
    const size_t oh = h + 2 * py - 2, ow = w + 2 * px - 2;
    return plan_make(tile_side(oh, ow), (size_t)cfg->in_channels, (size_t)cfg->out_channels, n,
                     h, w, py, px, 0);
}

static wino_plan input_gradient_plan(const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w)
{
    const size_t py = (size_t)cfg->pad_h, px = (size_t)cfg->pad_w;
    const size_t oh = h + 2 * py - 2, ow = w + 2 * px - 2;
    return plan_make(tile_side(oh, ow), (size_t)cfg->out_channels, (size_t)cfg->in_channels, n,
                     oh, ow, 2 - py, 2 - px, 1);
}

size_t conv2d_winograd_tile(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    return forward_plan(cfg, 1, h, w).tile;
}

/* The larger of the forward's and the input gradient's needs, with room for
 * U in every thread's share (a team of one still needs all of it). */
size_t conv2d_winograd_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w)
{
    if (!winograd_supported(cfg, h, w))
        return 0;
    /* a block's size grows with the batch up to its cap: plan for a batch
     * large enough that blocks take their full size */
    const size_t big = (size_t)1 << 12;
    const wino_plan fwd = forward_plan(cfg, big, h, w);
    const wino_plan bwd = input_gradient_plan(cfg, big, h, w);
    const size_t a = plan_shared_floats(&fwd) + plan_thread_floats(&fwd);
    const size_t b = plan_shared_floats(&bwd) + plan_thread_floats(&bwd);
    return a > b ? a : b;
}

/* ---- weight transform: U = G g G^T ---------------------------------------- */

/* One 3-point column to 6 points, LANES lanes: out[i] = sum_j G[i][j] in[j]. */
static void weight_points_6(float (*restrict out)[LANES], const float (*restrict in)[LANES],
                          size_t in_step, size_t out_step)
{
    const float *g0 = in[0], *g1 = in[in_step], *g2 = in[2 * in_step];
    float *u0 = out[0], *u1 = out[out_step], *u2 = out[2 * out_step];
    float *u3 = out[3 * out_step], *u4 = out[4 * out_step], *u5 = out[5 * out_step];
    for (size_t l = 0; l < LANES; l++) {
        const float a = g0[l], b = g1[l], c = g2[l];
        u0[l] = a * (1.0f / 4.0f);
        u1[l] = (a + b + c) * (-1.0f / 6.0f);
        u2[l] = (a - b + c) * (-1.0f / 6.0f);
        u3[l] = a * (1.0f / 24.0f) + b * (1.0f / 12.0f) + c * (1.0f / 6.0f);
        u4[l] = a * (1.0f / 24.0f) - b * (1.0f / 12.0f) + c * (1.0f / 6.0f);
        u5[l] = c;
    }
}

/* F(2x2, 3x3)'s G: 3 points to 4. */
static void weight_points_4(float (*restrict out)[LANES], const float (*restrict in)[LANES],
                            size_t in_step, size_t out_step)
{
    const float *g0 = in[0], *g1 = in[in_step], *g2 = in[2 * in_step];
    float *u0 = out[0], *u1 = out[out_step], *u2 = out[2 * out_step], *u3 = out[3 * out_step];
    for (size_t l = 0; l < LANES; l++) {
        const float a = g0[l], b = g1[l], c = g2[l];
        u0[l] = a;
        u1[l] = (a + b + c) * 0.5f;
        u2[l] = (a - b + c) * 0.5f;
        u3[l] = c;
    }
}

INLINE_FOR_TILE void weight_points(size_t tile, float (*restrict out)[LANES],
                                   const float (*restrict in)[LANES], size_t in_step,
                                   size_t out_step)
{
    if (tile == 2)
        weight_points_4(out, in, in_step, out_step);
    else
        weight_points_6(out, in, in_step, out_step);
}

/* The 3x3 kernel g[e = 3i + j][lane] of output channel o and input channels
 * c0 + lane: w[o][c][i][j], or for the input gradient w[c][o][2-i][2-j],
 * which is that kernel's taps in reverse order. Lanes past C read 0. */
static void gather_kernels(float (*restrict g)[LANES], const float *weight, const wino_plan *p,
                           size_t o, size_t c0, size_t lanes)
{
    for (size_t l = 0; l < lanes; l++) {
        const size_t c = c0 + l;
        if (p->flipped) {
            const float *src = weight + (c * p->k + o) * 9;
            for (size_t e = 0; e < 9; e++)
                g[e][l] = src[8 - e];
        } else {
            const float *src = weight + (o * p->c + c) * 9;
            for (size_t e = 0; e < 9; e++)
                g[e][l] = src[e];
        }
    }
    for (size_t l = lanes; l < LANES; l++)
        for (size_t e = 0; e < 9; e++)
            g[e][l] = 0.0f;
}

/* U[xi][o][c0 .. c0+LANES) for one output channel o. */
INLINE_FOR_TILE void weight_transform_tile(float *u, const float *weight, const wino_plan *p,
                                           size_t o, size_t c0, size_t tile)
{
    const size_t patch = tile + 2, points = patch * patch;
    float g[9][LANES], t[MAX_PATCH * 3][LANES], v[MAX_POINTS][LANES];
    const size_t lanes = p->c - c0 < LANES ? p->c - c0 : LANES;
    gather_kernels(g, weight, p, o, c0, lanes);
    for (size_t j = 0; j < 3; j++) /* columns: t [patch][3] = G g */
        weight_points(tile, &t[j], (const float (*)[LANES]) & g[j], 3, 3);
    for (size_t i = 0; i < patch; i++) /* rows: v [patch][patch] = t G^T */
        weight_points(tile, &v[i * patch], (const float (*)[LANES]) & t[i * 3], 1, 1);
    const size_t kc = p->k * p->c;
    float *dst = u + o * p->c + c0;
    for (size_t xi = 0; xi < points; xi++)
        for (size_t l = 0; l < lanes; l++)
            dst[xi * kc + l] = v[xi][l];
}

static void weight_transform_lanes(float *u, const float *weight, const wino_plan *p, size_t o,
                                   size_t c0)
{
    if (p->tile == 2)
        weight_transform_tile(u, weight, p, o, c0, 2);
    else
        weight_transform_tile(u, weight, p, o, c0, 4);
}

/* This thread's share of U: (output channel, lane group) items split
 * statically; every element is computed the same way whoever computes it. */
static void weight_transform_share(float *u, const float *weight, const wino_plan *p, size_t t,
                                   size_t nt)
{
    const size_t groups = (p->c + LANES - 1) / LANES, items = p->k * groups;
    for (size_t it = items * t / nt; it < items * (t + 1) / nt; it++)
        weight_transform_lanes(u, weight, p, it / groups, it % groups * LANES);
}

/* ---- input transform: V = B^T d B ----------------------------------------- */

/* One 6-point line, LANES lanes: out[i] = sum_j B^T[i][j] in[j]. */
static void input_points_6(float (*restrict out)[LANES], const float (*restrict in)[LANES],
                         size_t step)
{
    const float *d0 = in[0], *d1 = in[step], *d2 = in[2 * step], *d3 = in[3 * step];
    const float *d4 = in[4 * step], *d5 = in[5 * step];
    float *o0 = out[0], *o1 = out[step], *o2 = out[2 * step], *o3 = out[3 * step];
    float *o4 = out[4 * step], *o5 = out[5 * step];
    for (size_t l = 0; l < LANES; l++) {
        o0[l] = 4.0f * d0[l] - 5.0f * d2[l] + d4[l];
        o1[l] = -4.0f * (d1[l] + d2[l]) + d3[l] + d4[l];
        o2[l] = 4.0f * (d1[l] - d2[l]) - d3[l] + d4[l];
        o3[l] = -2.0f * (d1[l] - d3[l]) - d2[l] + d4[l];
        o4[l] = 2.0f * (d1[l] - d3[l]) - d2[l] + d4[l];
        o5[l] = 4.0f * d1[l] - 5.0f * d3[l] + d5[l];
    }
}

/* F(2x2, 3x3)'s B^T: 4 points to 4. */
static void input_points_4(float (*restrict out)[LANES], const float (*restrict in)[LANES],
                           size_t step)
{
    const float *d0 = in[0], *d1 = in[step], *d2 = in[2 * step], *d3 = in[3 * step];
    float *o0 = out[0], *o1 = out[step], *o2 = out[2 * step], *o3 = out[3 * step];
    for (size_t l = 0; l < LANES; l++) {
        o0[l] = d0[l] - d2[l];
        o1[l] = d1[l] + d2[l];
        o2[l] = d2[l] - d1[l];
        o3[l] = d1[l] - d3[l];
    }
}

INLINE_FOR_TILE void input_points(size_t tile, float (*restrict out)[LANES],
                                  const float (*restrict in)[LANES], size_t step)
{
    if (tile == 2)
        input_points_4(out, in, step);
    else
        input_points_6(out, in, step);
}

/* Where a lane's tile starts: its sample and the top-left corner of its
 * input patch (may lie in the padding) and of its output tile. */
typedef struct { size_t sample; long iy, ix; size_t oy, ox; int valid; } tile_pos;

static void tile_positions(tile_pos *pos, const wino_plan *p, size_t first)
{
    const size_t per_sample = p->tiles_h * p->tiles_w;
    for (size_t l = 0; l < LANES; l++) {
        const size_t tile = first + l;
        pos[l].valid = tile < p->tiles;
        if (!pos[l].valid)
            continue;
        const size_t in_sample = tile % per_sample;
        pos[l].sample = tile / per_sample;
        pos[l].oy = in_sample / p->tiles_w * p->tile;
        pos[l].ox = in_sample % p->tiles_w * p->tile;
        pos[l].iy = (long)pos[l].oy - (long)p->pad_y;
        pos[l].ix = (long)pos[l].ox - (long)p->pad_x;
    }
}

/* d[y*patch+x][l] = the lane's patch of one input plane, 0 outside it. */
INLINE_FOR_TILE void gather_patches(float (*restrict d)[LANES], const float *in, size_t channel,
                                    const tile_pos *pos, const wino_plan *p, size_t tile)
{
    const long ih = (long)p->ih, iw = (long)p->iw, patch = (long)tile + 2;
    for (size_t l = 0; l < LANES; l++) {
        const tile_pos *tp = &pos[l];
        if (!tp->valid) {
            for (long e = 0; e < patch * patch; e++)
                d[e][l] = 0.0f;
            continue;
        }
        const float *plane = in + (tp->sample * p->c + channel) * p->ih * p->iw;
        const int inside = tp->iy >= 0 && tp->ix >= 0 && tp->iy + patch <= ih && tp->ix + patch <= iw;
        for (long y = 0; y < patch; y++) {
            const long sy = tp->iy + y;
            const float *row = plane + sy * iw;
            for (long x = 0; x < patch; x++) {
                const long sx = tp->ix + x;
                float v = 0.0f;
                if (inside || (sy >= 0 && sy < ih && sx >= 0 && sx < iw))
                    v = row[sx];
                d[y * patch + x][l] = v;
            }
        }
    }
}

/* V[xi][c][lane0 .. lane0+LANES) for every input channel c. */
INLINE_FOR_TILE void input_transform_tile(float *v, const float *in, const tile_pos *pos,
                                          const wino_plan *p, size_t lane0,
                                          float (*scratch)[LANES], size_t tile)
{
    float (*d)[LANES] = scratch, (*t)[LANES] = scratch + MAX_POINTS;
    const size_t cp = p->c * p->block, patch = tile + 2;
    for (size_t c = 0; c < p->c; c++) {
        gather_patches(d, in, c, pos, p, tile);
        for (size_t x = 0; x < patch; x++) /* columns */
            input_points(tile, &t[x], (const float (*)[LANES]) & d[x], patch);
        for (size_t y = 0; y < patch; y++) /* rows */
            input_points(tile, &d[y * patch], (const float (*)[LANES]) & t[y * patch], 1);
        float *dst = v + c * p->block + lane0;
        for (size_t xi = 0; xi < patch * patch; xi++)
            memcpy(dst + xi * cp, d[xi], LANES * sizeof(float));
    }
}

static void input_transform_lanes(float *v, const float *in, const tile_pos *pos,
                                  const wino_plan *p, size_t lane0, float (*scratch)[LANES])
{
    if (p->tile == 2)
        input_transform_tile(v, in, pos, p, lane0, scratch, 2);
    else
        input_transform_tile(v, in, pos, p, lane0, scratch, 4);
}

/* ---- output transform: Y = A^T M A ----------------------------------------- */

/* One 6-point line to 4 points, LANES lanes: out[i] = sum_j A^T[i][j] in[j]. */
static void output_points_6(float (*restrict out)[LANES], const float (*restrict in)[LANES],
                          size_t in_step, size_t out_step)
{
    const float *m0 = in[0], *m1 = in[in_step], *m2 = in[2 * in_step], *m3 = in[3 * in_step];
    const float *m4 = in[4 * in_step], *m5 = in[5 * in_step];
    float *o0 = out[0], *o1 = out[out_step], *o2 = out[2 * out_step], *o3 = out[3 * out_step];
    for (size_t l = 0; l < LANES; l++) {
        const float s12 = m1[l] + m2[l], d12 = m1[l] - m2[l];
        const float s34 = m3[l] + m4[l], d34 = m3[l] - m4[l];
        o0[l] = m0[l] + s12 + s34;
        o1[l] = d12 + 2.0f * d34;
        o2[l] = s12 + 4.0f * s34;
        o3[l] = d12 + 8.0f * d34 + m5[l];
    }
}

/* F(2x2, 3x3)'s A^T: 4 points to 2. */
static void output_points_4(float (*restrict out)[LANES], const float (*restrict in)[LANES],
                            size_t in_step, size_t out_step)
{
    const float *m0 = in[0], *m1 = in[in_step], *m2 = in[2 * in_step], *m3 = in[3 * in_step];
    float *o0 = out[0], *o1 = out[out_step];
    for (size_t l = 0; l < LANES; l++) {
        o0[l] = m0[l] + m1[l] + m2[l];
        o1[l] = m1[l] - m2[l] - m3[l];
    }
}

INLINE_FOR_TILE void output_points(size_t tile, float (*restrict out)[LANES],
                                   const float (*restrict in)[LANES], size_t in_step,
                                   size_t out_step)
{
    if (tile == 2)
        output_points_4(out, in, in_step, out_step);
    else
        output_points_6(out, in, in_step, out_step);
}

/* Each lane's output tile of channel o (+ bias), clipped at the edges. */
INLINE_FOR_TILE void scatter_tiles(float *out, const float (*y)[LANES], const tile_pos *pos,
                                   const wino_plan *p, size_t o, float bias, size_t tile)
{
    for (size_t l = 0; l < LANES; l++) {
        const tile_pos *tp = &pos[l];
        if (!tp->valid)
            continue;
        float *plane = out + (tp->sample * p->k + o) * p->oh * p->ow;
        const size_t rows = p->oh - tp->oy < tile ? p->oh - tp->oy : tile;
        const size_t cols = p->ow - tp->ox < tile ? p->ow - tp->ox : tile;
        for (size_t r = 0; r < rows; r++)
            for (size_t x = 0; x < cols; x++)
                plane[(tp->oy + r) * p->ow + tp->ox + x] = y[r * tile + x][l] + bias;
    }
}

INLINE_FOR_TILE void output_transform_tile(float *out, const float *m, const float *bias,
                                           const tile_pos *pos, const wino_plan *p, size_t lane0,
                                           float (*scratch)[LANES], size_t tile)
{
    float (*g)[LANES] = scratch, (*t)[LANES] = scratch + MAX_POINTS;
    const size_t kp = p->k * p->block, patch = tile + 2;
    for (size_t o = 0; o < p->k; o++) {
        const float *src = m + o * p->block + lane0;
        for (size_t xi = 0; xi < patch * patch; xi++)
            memcpy(g[xi], src + xi * kp, LANES * sizeof(float));
        for (size_t x = 0; x < patch; x++) /* columns: t [tile][patch] */
            output_points(tile, &t[x], (const float (*)[LANES]) & g[x], patch, patch);
        for (size_t r = 0; r < tile; r++) /* rows: g [tile][tile] */
            output_points(tile, &g[r * tile], (const float (*)[LANES]) & t[r * patch], 1, 1);
        scatter_tiles(out, (const float (*)[LANES])g, pos, p, o, bias ? bias[o] : 0.0f, tile);
    }
}

static void output_transform_lanes(float *out, const float *m, const float *bias,
                                   const tile_pos *pos, const wino_plan *p, size_t lane0,
                                   float (*scratch)[LANES])
{
    if (p->tile == 2)
        output_transform_tile(out, m, bias, pos, p, lane0, scratch, 2);
    else
        output_transform_tile(out, m, bias, pos, p, lane0, scratch, 4);
}

/* ---- one block, and the whole convolution ---------------------------------- */

static void run_block(float *out, const float *in, const float *bias, const float *u,
                      const wino_plan *p, size_t block, float *own)
{
    float *v = own, *m = own + p->points * p->c * p->block;
    float (*scratch)[LANES] = (float (*)[LANES])(m + p->points * p->k * p->block);
    const size_t first = block * p->block;
    const size_t count = p->tiles - first < p->block ? p->tiles - first : p->block;
    const size_t cols = round_up(count, LANES); /* lanes past the end hold zeros */
    tile_pos pos[LANES];
    for (size_t lane0 = 0; lane0 < cols; lane0 += LANES) {
        tile_positions(pos, p, first + lane0);
        input_transform_lanes(v, in, pos, p, lane0, scratch);
    }
    for (size_t xi = 0; xi < p->points; xi++)
        cbq_sgemm(0, 0, p->k, cols, p->c, 1.0f, u + xi * p->k * p->c, p->c,
                  v + xi * p->c * p->block, p->block, 0.0f, m + xi * p->k * p->block, p->block);
    for (size_t lane0 = 0; lane0 < cols; lane0 += LANES) {
        tile_positions(pos, p, first + lane0);
        output_transform_lanes(out, m, bias, pos, p, lane0, scratch);
    }
}

static void winograd_run(float *out, const float *in, const float *weight, const float *bias,
                         const wino_plan *p, float *workspace, int threads)
{
    float *u = workspace;
    float *own_base = workspace + plan_shared_floats(p);
    const size_t own_n = plan_thread_floats(p);
#pragma omp parallel num_threads(threads)
    {
        const size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
        weight_transform_share(u, weight, p, t, nt);
#pragma omp barrier
        for (size_t b = p->blocks * t / nt; b < p->blocks * (t + 1) / nt; b++)
            run_block(out, in, bias, u, p, b, own_base + t * own_n);
    }
}

void conv2d_winograd_forward(float *out, const float *in, const float *weight, const float *bias,
                             const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                             float *workspace, int threads)
{
    const wino_plan p = forward_plan(cfg, n, h, w);
    winograd_run(out, in, weight, bias, &p, workspace, threads);
}

void conv2d_winograd_backward_data(float *din, const float *dout, const float *weight,
                                   const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                                   float *workspace, int threads)
{
    const wino_plan p = input_gradient_plan(cfg, n, h, w);
    winograd_run(din, dout, weight, NULL, &p, workspace, threads);
}
