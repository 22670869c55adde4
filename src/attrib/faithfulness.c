/* faithfulness.c - deletion and insertion curves of a map for a regression
 * output (faithfulness.h; definitions in docs/attribution.md). Every
 * perturbed image of every step, pixel order and slice goes through the
 * scorer in full batches: the curves cost forward passes only. The two
 * images every order shares (the slice as given and its baseline) are
 * scored once. */
#include "cbctiq/faithfulness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/rng.h"

enum { DELETION = 0, INSERTION = 1 };

int cbq_perturb_parse(const char *s, cbq_perturb_baseline *out)
{
    static const char *const names[] = {"none", "blur", "road"};
    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (cbq_perturb_baseline)i;
            return 1;
        }
    return 0;
}

const char *cbq_perturb_name(cbq_perturb_baseline b)
{
    return b == CBQ_PERTURB_BLUR ? "blur" : b == CBQ_PERTURB_ROAD ? "road" : "none";
}

void cbq_faith_options_default(cbq_faith_options *o, size_t H, size_t W)
{
    memset(o, 0, sizeof *o);
    o->baseline = CBQ_PERTURB_BLUR;
    o->blur_sigma = (double)(H > W ? H : W) / 16.0;
    o->road_noise = 0.01;
    o->seed = 1;
}

static uint64_t splitmix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t cbq_faith_random_key(uint64_t seed, size_t slice, size_t pixel)
{
    return splitmix64(splitmix64(seed) + ((uint64_t)slice << 32) + (uint64_t)pixel);
}

int cbq_faith_net_score(void *net, const float *x, size_t n, float *scores, cbq_error *err)
{
    const float *out;
    CBQ_TRY(cbq_net_forward(net, x, n, &out, err));
    CBQ_TRY(cbq_net_check_outputs(net, out, n, err));
    memcpy(scores, out, n * cbq_net_spec(net)->n_outputs * sizeof *scores);
    return CBQ_OK;
}

/* ---- baselines ------------------------------------------------------------ */

/* Mirror at the border without repeating the edge (scipy's "mirror",
 * PyTorch's "reflect"); |i| < n is guaranteed by the radius cap. */
static size_t mirror(long i, size_t n)
{
    if (i < 0)
        i = -i;
    if (i >= (long)n)
        i = 2 * ((long)n - 1) - i;
    return (size_t)i;
}

/* Separable Gaussian blur, radius ceil(3 sigma) capped at min(H, W) - 1. */
static int blur(const float *x, size_t H, size_t W, double sigma, float *out, cbq_error *err)
{
    size_t cap = (H < W ? H : W) - 1, r = (size_t)ceil(3.0 * sigma);
    r = r > cap ? cap : r;
    double *k = malloc((2 * r + 1) * sizeof *k);
    float *tmp = malloc(H * W * sizeof *tmp);
    if (!k || !tmp) {
        free(k);
        free(tmp);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for a blurred slice");
    }
    double ksum = 0.0;
    for (size_t i = 0; i <= 2 * r; i++) {
        double d = (double)i - (double)r;
        k[i] = sigma > 0 ? exp(-0.5 * d * d / (sigma * sigma)) : (d == 0.0);
        ksum += k[i];
    }
    for (size_t i = 0; i <= 2 * r; i++)
        k[i] /= ksum;
    for (size_t y = 0; y < H; y++) /* along rows (x) */
        for (size_t xx = 0; xx < W; xx++) {
            double s = 0.0;
            for (size_t i = 0; i <= 2 * r; i++)
                s += k[i] * x[y * W + mirror((long)xx + (long)i - (long)r, W)];
            tmp[y * W + xx] = (float)s;
        }
    for (size_t y = 0; y < H; y++) /* then along columns (y) */
        for (size_t xx = 0; xx < W; xx++) {
            double s = 0.0;
            for (size_t i = 0; i <= 2 * r; i++)
                s += k[i] * tmp[mirror((long)y + (long)i - (long)r, H) * W + xx];
            out[y * W + xx] = (float)s;
        }
    free(k);
    free(tmp);
    return CBQ_OK;
}

/* ROAD's noisy linear imputation: every removed pixel becomes the weighted
 * mean of its 8 neighbours (1/6 for the 4 direct ones, 1/12 for the
 * diagonals, over those inside the image), the kept pixels fixed; solved by
 * Gauss-Seidel with over-relaxation, then N(0, noise^2) added to the
 * removed pixels. img holds the kept values and is imputed in place. */
static void road_impute(float *img, const unsigned char *removed, size_t H, size_t W,
                        double noise, cbq_rng *rng)
{
    static const int dy[8] = {-1, 1, 0, 0, -1, -1, 1, 1}, dx[8] = {0, 0, -1, 1, -1, 1, -1, 1};
    static const double w8[8] = {1 / 6., 1 / 6., 1 / 6., 1 / 6., 1 / 12., 1 / 12., 1 / 12., 1 / 12.};
    double mean = 0.0;
    size_t kept = 0;
    for (size_t p = 0; p < H * W; p++)
        if (!removed[p]) {
            mean += img[p];
            kept++;
        }
    mean = kept ? mean / (double)kept : 0.0;
    for (size_t p = 0; p < H * W; p++)
        if (removed[p])
            img[p] = (float)mean; /* the start; the fixed point does not depend on it */
    for (int it = 0; it < 2000; it++) {
        double change = 0.0;
        for (size_t y = 0; y < H; y++)
            for (size_t x = 0; x < W; x++) {
                size_t p = y * W + x;
                if (!removed[p])
                    continue;
                double s = 0.0, ws = 0.0;
                for (int q = 0; q < 8; q++) {
                    long yy = (long)y + dy[q], xx = (long)x + dx[q];
                    if (yy < 0 || xx < 0 || yy >= (long)H || xx >= (long)W)
                        continue;
                    s += w8[q] * img[(size_t)yy * W + (size_t)xx];
                    ws += w8[q];
                }
                double v = img[p] + 1.8 * (s / ws - img[p]);
                change = fmax(change, fabs(v - img[p]));
                img[p] = (float)v;
            }
        if (change < 1e-6)
            break;
    }
    for (size_t p = 0; p < H * W; p++)
        if (removed[p])
            img[p] += (float)(noise * cbq_rng_normal(rng));
}

/* ROAD's noise stream of channel ch: channel 0 keeps the single-channel
 * stream, the others set high bits no slice or step index reaches. */
static uint64_t channel_stream(uint64_t stream, size_t ch)
{
    return stream ^ ((uint64_t)ch << 56);
}

/* The baseline of one channel plane; ROAD draws its noise from `stream`. */
static int baseline_plane(const float *x, size_t H, size_t W, const cbq_faith_options *o,
                          uint64_t stream, float *out, cbq_error *err)
{
    if (o->baseline != CBQ_PERTURB_ROAD)
        return blur(x, H, W, o->blur_sigma, out, err);
    unsigned char *all = malloc(H * W);
    if (!all)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for a baseline slice");
    memset(all, 1, H * W);
    cbq_rng rng;
    cbq_rng_stream(&rng, o->seed, stream);
    road_impute(out, all, H, W, o->road_noise, &rng);
    free(all);
    return CBQ_OK;
}

int cbq_faith_baseline(const float *x, size_t H, size_t W, const cbq_faith_options *o,
                       size_t slice, float *out, cbq_error *err)
{
    return baseline_plane(x, H, W, o, slice, out, err);
}

/* ---- pixel orders ------------------------------------------------------- */

typedef struct {
    double key;
    uint64_t rkey;
    uint32_t i;
} keyed;

static int by_map_desc(const void *pa, const void *pb)
{
    const keyed *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key < b->key ? 1 : -1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static int by_random_key(const void *pa, const void *pb)
{
    const keyed *a = pa, *b = pb;
    if (a->rkey != b->rkey)
        return a->rkey < b->rkey ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Map order (highest first, ties by pixel index) or random order of each
 * slice into order [n, HW]. */
static void make_order(const float *map, size_t n, size_t HW, uint64_t seed, keyed *tmp,
                       uint32_t *order)
{
    for (size_t s = 0; s < n; s++) {
        for (size_t p = 0; p < HW; p++) {
            tmp[p].i = (uint32_t)p;
            tmp[p].key = map ? map[s * HW + p] : 0.0;
            tmp[p].rkey = map ? 0 : cbq_faith_random_key(seed, s, p);
        }
        qsort(tmp, HW, sizeof *tmp, map ? by_map_desc : by_random_key);
        for (size_t p = 0; p < HW; p++)
            order[s * HW + p] = tmp[p].i;
    }
}

/* ---- the curves ---------------------------------------------------------- */

/* One perturbed image: which order (a category's map, or random = n_out),
 * which curve, which step, which slice. Steps 0 and CBQ_CURVE_STEPS are the
 * shared images: order -1 (as given) and -2 (baseline). */
typedef struct {
    long order;
    int kind;
    size_t step, slice;
} job;

typedef struct {
    cbq_faith_score_fn score;
    void *ctx;
    size_t batch, n_out, n, C, H, W; /* C: channels per slice */
    const float *x;      /* [n, C, HW] */
    float *base;         /* [n, C, HW] baseline images */
    uint32_t *orders;    /* [(n_out + 1), n, HW]; random last */
    const cbq_faith_options *opt;
    float *images;       /* [batch, C, HW] */
    float *scores;       /* [batch, n_out] */
    job *jobs;           /* [batch] */
    size_t filled;
    double *acc;         /* [(n_out + 1), 2, steps + 1, n_out] summed scores */
    double *orig, *basel; /* [n_out] summed scores of the shared images */
    unsigned char *removed; /* [HW] ROAD's mask */
} curve_run;

static size_t pixels_at(size_t step, size_t HW) { return step * HW / CBQ_CURVE_STEPS; }

static double *acc_at(curve_run *r, size_t order, int kind, size_t step)
{
    return r->acc + ((order * 2 + (size_t)kind) * (CBQ_CURVE_STEPS + 1) + step) * r->n_out;
}

static void build_image(curve_run *r, const job *j, float *img)
{
    size_t HW = r->H * r->W, CHW = r->C * HW;
    const float *x = r->x + j->slice * CHW, *b = r->base + j->slice * CHW;
    if (j->order < 0) {
        memcpy(img, j->order == -1 ? x : b, CHW * sizeof *img);
        return;
    }
    const uint32_t *ord = r->orders + ((size_t)j->order * r->n + j->slice) * HW;
    size_t m = pixels_at(j->step, HW);
    /* deletion: the first m pixels from the baseline; insertion: only they from the slice */
    const float *first = j->kind == DELETION ? b : x, *rest = j->kind == DELETION ? x : b;
    memcpy(img, rest, CHW * sizeof *img);
    for (size_t ch = 0; ch < r->C; ch++)
        for (size_t p = 0; p < m; p++)
            img[ch * HW + ord[p]] = first[ch * HW + ord[p]];
    if (r->opt->baseline != CBQ_PERTURB_ROAD)
        return;
    /* ROAD imputes the pixels not (yet) the slice's own from those that are */
    memset(r->removed, 0, HW);
    for (size_t p = 0; p < HW; p++) {
        int from_slice = j->kind == DELETION ? p >= m : p < m;
        if (!from_slice)
            r->removed[ord[p]] = 1;
    }
    uint64_t stream = ((((uint64_t)j->order * 2 + (uint64_t)j->kind) * (CBQ_CURVE_STEPS + 1) + j->step)
                       << 32) + j->slice + 1;
    for (size_t ch = 0; ch < r->C; ch++) {
        float *plane = img + ch * HW;
        for (size_t p = 0; p < HW; p++)
            plane[p] = r->removed[p] ? 0.0f : x[ch * HW + p];
        cbq_rng rng;
        cbq_rng_stream(&rng, r->opt->seed, channel_stream(stream, ch));
        road_impute(plane, r->removed, r->H, r->W, r->opt->road_noise, &rng);
    }
}

static int flush(curve_run *r, cbq_error *err)
{
    if (!r->filled)
        return CBQ_OK;
    CBQ_TRY(r->score(r->ctx, r->images, r->filled, r->scores, err));
    for (size_t i = 0; i < r->filled; i++) {
        const job *j = &r->jobs[i];
        const float *s = r->scores + i * r->n_out;
        double *dst = j->order == -1 ? r->orig
                      : j->order == -2 ? r->basel
                                       : acc_at(r, (size_t)j->order, j->kind, j->step);
        int all = j->order < 0 || (size_t)j->order == r->n_out;
        for (size_t c = 0; c < r->n_out; c++)
            if (all || (size_t)j->order == c)
                dst[c] += s[c];
    }
    r->filled = 0;
    return CBQ_OK;
}

static int push(curve_run *r, job j, cbq_error *err)
{
    r->jobs[r->filled] = j;
    build_image(r, &j, r->images + r->filled * r->C * r->H * r->W);
    if (++r->filled == r->batch)
        return flush(r, err);
    return CBQ_OK;
}

static int run_jobs(curve_run *r, const int *wanted, cbq_error *err)
{
    for (size_t s = 0; s < r->n; s++) {
        CBQ_TRY(push(r, (job){.order = -1, .slice = s}, err));
        CBQ_TRY(push(r, (job){.order = -2, .slice = s}, err));
    }
    for (size_t o = 0; o <= r->n_out; o++) {
        if (o < r->n_out && !wanted[o])
            continue;
        for (int kind = DELETION; kind <= INSERTION; kind++)
            for (size_t t = 1; t < CBQ_CURVE_STEPS; t++)
                for (size_t s = 0; s < r->n; s++)
                    CBQ_TRY(push(r, (job){.order = (long)o, .kind = kind, .step = t, .slice = s},
                                 err));
    }
    return flush(r, err);
}

static double auc(const double *curve, double orig, double base)
{
    double scale = orig - base;
    if (!(fabs(scale) > 1e-6 * fmax(1.0, fmax(fabs(orig), fabs(base)))))
        return NAN;
    double a = 0.0;
    for (size_t t = 0; t < CBQ_CURVE_STEPS; t++)
        a += 0.5 * ((curve[t] - base) + (curve[t + 1] - base)) / scale;
    return a / CBQ_CURVE_STEPS;
}

/* The curves of output c from the summed scores: endpoints are the shared
 * images, steps between are the order's own. */
static void finish_output(curve_run *r, size_t c, cbq_faith_curves *cur)
{
    double n = (double)r->n, orig = r->orig[c] / n, base = r->basel[c] / n;
    cur->computed = 1;
    cur->score_original = orig;
    cur->score_baseline = base;
    for (size_t t = 0; t <= CBQ_CURVE_STEPS; t++) {
        int first = t == 0, last = t == CBQ_CURVE_STEPS;
        double del_map = acc_at(r, c, DELETION, t)[c] / n, ins_map = acc_at(r, c, INSERTION, t)[c] / n;
        double del_rnd = acc_at(r, r->n_out, DELETION, t)[c] / n;
        double ins_rnd = acc_at(r, r->n_out, INSERTION, t)[c] / n;
        cur->deletion[t] = first ? orig : last ? base : del_map;
        cur->insertion[t] = first ? base : last ? orig : ins_map;
        cur->deletion_random[t] = first ? orig : last ? base : del_rnd;
        cur->insertion_random[t] = first ? base : last ? orig : ins_rnd;
    }
    cur->deletion_auc = auc(cur->deletion, orig, base);
    cur->insertion_auc = auc(cur->insertion, orig, base);
    cur->deletion_auc_random = auc(cur->deletion_random, orig, base);
    cur->insertion_auc_random = auc(cur->insertion_random, orig, base);
}

static int map_is_zero(const float *m, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (m[i] != 0.0f)
            return 0;
    return 1;
}

static void free_run(curve_run *r)
{
    free(r->base);
    free(r->orders);
    free(r->images);
    free(r->scores);
    free(r->jobs);
    free(r->acc);
    free(r->orig);
    free(r->removed);
}

static int alloc_run(curve_run *r, cbq_error *err)
{
    size_t HW = r->H * r->W, CHW = r->C * HW, orders = 0, accs = 0;
    int ok = cbq_size_mul(&orders, r->n_out + 1, r->n * HW) &&
             cbq_size_mul(&accs, (r->n_out + 1) * 2 * (CBQ_CURVE_STEPS + 1), r->n_out);
    if (ok) {
        r->base = malloc(r->n * CHW * sizeof *r->base);
        r->orders = malloc(orders * sizeof *r->orders);
        r->images = malloc(r->batch * CHW * sizeof *r->images);
        r->scores = malloc(r->batch * r->n_out * sizeof *r->scores);
        r->jobs = malloc(r->batch * sizeof *r->jobs);
        r->acc = calloc(accs, sizeof *r->acc);
        r->orig = calloc(2 * r->n_out, sizeof *r->orig);
        r->removed = malloc(HW);
    }
    if (!ok || !r->base || !r->orders || !r->images || !r->scores || !r->jobs || !r->acc ||
        !r->orig || !r->removed) {
        free_run(r);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for deletion curves of %zu slices",
                        r->n);
    }
    r->basel = r->orig + r->n_out;
    return CBQ_OK;
}

static int prepare(curve_run *r, const float *const *maps, int *wanted, cbq_error *err)
{
    size_t HW = r->H * r->W;
    keyed *tmp = malloc(HW * sizeof *tmp);
    if (!tmp)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for pixel orders");
    for (size_t c = 0; c < r->n_out; c++) {
        wanted[c] = maps && maps[c] && !map_is_zero(maps[c], r->n * HW);
        if (wanted[c])
            make_order(maps[c], r->n, HW, 0, tmp, r->orders + c * r->n * HW);
    }
    make_order(NULL, r->n, HW, r->opt->seed, tmp, r->orders + r->n_out * r->n * HW);
    free(tmp);
    for (size_t s = 0; s < r->n; s++)
        for (size_t ch = 0; ch < r->C; ch++) {
            size_t at = (s * r->C + ch) * HW;
            CBQ_TRY(baseline_plane(r->x + at, r->H, r->W, r->opt, channel_stream(s, ch), r->base + at,
                                   err));
        }
    return CBQ_OK;
}

int cbq_faith_curves_compute(cbq_faith_score_fn score, void *ctx, size_t batch, size_t n_out,
                             const float *x, size_t n, size_t H, size_t W,
                             const float *const *maps, const cbq_faith_options *o,
                             cbq_faith_curves *cur, cbq_error *err)
{
    CBQ_CHECK_ARG(err, n >= 1 && batch >= 1 && n_out >= 1 && H >= 1 && W >= 1,
                  "deletion curves need at least one slice, output and pixel");
    CBQ_CHECK_ARG(err, H * W <= UINT32_MAX, "a slice of %zu x %zu pixels is too large", H, W);
    memset(cur, 0, n_out * sizeof *cur);
    curve_run r = {.score = score, .ctx = ctx, .batch = batch, .n_out = n_out, .n = n,
                   .C = o->channels ? o->channels : 1, .H = H, .W = W, .x = x, .opt = o};
    CBQ_TRY(alloc_run(&r, err));
    int *wanted = calloc(n_out, sizeof *wanted);
    int rc = wanted ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK)
        rc = prepare(&r, maps, wanted, err);
    if (rc == CBQ_OK)
        rc = run_jobs(&r, wanted, err);
    for (size_t c = 0; rc == CBQ_OK && c < n_out; c++)
        if (wanted[c])
            finish_output(&r, c, &cur[c]);
    free(wanted);
    free_run(&r);
    return rc;
}
