/* faithfulness.h - does removing what a map ranks highest change the
 * predicted score? Deletion and insertion curves (Petsiuk et al. 2018,
 * RISE) for a regression output, per volume: each slice's pixels are
 * replaced by a baseline (deletion) or restored onto it (insertion) in the
 * map's order in CBQ_CURVE_STEPS steps, and the category's score (the mean
 * over the slices of the model's output) is recorded at every step; the
 * same for a random pixel order, so that the gain over chance is visible.
 * docs/attribution.md ("Faithfulness") gives the definitions; this file
 * knows nothing of volumes, structures or files.
 *
 *     cbq_faith_options o;
 *     cbq_faith_options_default(&o, H, W);
 *     cbq_faith_curves cur[CBQ_MAX_OUTPUTS];
 *     CBQ_TRY(cbq_faith_curves_compute(cbq_faith_net_score, net, n_out, x, n, H, W,
 *                                      maps, &o, cur, err));
 *     ... cur[c].deletion_auc ...
 */
#ifndef CBCTIQ_FAITHFULNESS_H
#define CBCTIQ_FAITHFULNESS_H

#include <stddef.h>
#include <stdint.h>

#include "cbctiq/error.h"
#include "cbctiq/net.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CBQ_CURVE_STEPS = 20 };

typedef enum {
    CBQ_PERTURB_NONE = 0, /* no curves */
    CBQ_PERTURB_BLUR,     /* the slice's Gaussian-blurred image (of the windowed input) */
    CBQ_PERTURB_ROAD      /* ROAD's noisy linear imputation (Rong et al. 2022) */
} cbq_perturb_baseline;

/* "none", "blur", "road"; 0 when unknown. */
int cbq_perturb_parse(const char *s, cbq_perturb_baseline *out);
const char *cbq_perturb_name(cbq_perturb_baseline b);

typedef struct {
    cbq_perturb_baseline baseline;
    double blur_sigma;  /* pixels of the model input */
    double road_noise;  /* standard deviation of ROAD's added noise (input units) */
    uint64_t seed;      /* the random pixel order (and ROAD's noise) */
    size_t channels;    /* channels per slice of the images (0 reads as 1): a pixel is
                           deleted or inserted in every channel at once */
} cbq_faith_options;

/* Blur baseline, sigma = max(H, W) / 16 pixels, ROAD noise 0.01, seed 1. */
void cbq_faith_options_default(cbq_faith_options *o, size_t H, size_t W);

typedef struct {
    int computed;                                /* 0: no map for this output */
    double score_original, score_baseline;       /* mean score of the slices as given, and
                                                    with every pixel replaced */
    /* raw mean scores at steps 0..CBQ_CURVE_STEPS (fraction step / CBQ_CURVE_STEPS) */
    double deletion[CBQ_CURVE_STEPS + 1], insertion[CBQ_CURVE_STEPS + 1];
    double deletion_random[CBQ_CURVE_STEPS + 1], insertion_random[CBQ_CURVE_STEPS + 1];
    /* area under the normalised curves (score - baseline) / (original - baseline),
     * trapezoids over the fraction; NaN when original == baseline (no scale) */
    double deletion_auc, insertion_auc, deletion_auc_random, insertion_auc_random;
} cbq_faith_curves;

/* Scores of n images [n, C, H, W] (n at most the batch the scorer was made
 * for): scores[n, n_outputs]. */
typedef int (*cbq_faith_score_fn)(void *ctx, const float *x, size_t n, float *scores,
                                  cbq_error *err);
/* A cbq_faith_score_fn over a cbq_net (ctx): its forward pass, checked finite. */
int cbq_faith_net_score(void *net, const float *x, size_t n, float *scores, cbq_error *err);

/* The curves of every output c with maps[c] != NULL (maps[c] = [n, H, W] on
 * the input's grid) for the slices x [n, C, H, W] (C = o->channels); cur[n_out].
 * Images go to `score` in batches of `batch`. An all-zero map gives computed = 0.
 * Each channel has its own baseline (blurred, or ROAD-imputed with its own
 * noise); the pixel orders are per slice, shared by its channels. */
int cbq_faith_curves_compute(cbq_faith_score_fn score, void *ctx, size_t batch, size_t n_out,
                             const float *x, size_t n, size_t H, size_t W,
                             const float *const *maps, const cbq_faith_options *o,
                             cbq_faith_curves *cur, cbq_error *err);

/* The baseline image of one slice x [H, W] into out [H, W] (for tests and
 * the benchmark); slice is the slice's index (ROAD's noise stream). */
int cbq_faith_baseline(const float *x, size_t H, size_t W, const cbq_faith_options *o,
                       size_t slice, float *out, cbq_error *err);

/* The random pixel order's key of pixel p of slice i: pixels are taken in
 * ascending key (splitmix64, so that any language can redo it). */
uint64_t cbq_faith_random_key(uint64_t seed, size_t slice, size_t pixel);

#ifdef __cplusplus
}
#endif
#endif
