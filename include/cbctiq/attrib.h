/* attrib.h - attribution maps (Grad-CAM and its family, gradient x input,
 * Integrated Gradients) on every axial slice of a volume, and Attribution
 * Energy (AE): the sum of the raw maps over a volume.
 *
 * Works on preprocessed slices [n, C, H, W] (the model's input grid; C its
 * input channels, model_spec.h) and a cbq_net; reading volumes, resampling and writing maps belong to src/io and
 * the CLI. Every map is RAW: no per-slice min-max normalisation; the only
 * clipping is the optional ReLU (the poster's reading, default on).
 *
 * Grids: the target layer's ("feature", h x w), the model input's (H x W,
 * reached by bilinear upsampling with half-pixel centres, PyTorch
 * F.interpolate(mode='bilinear', align_corners=False)). Pixel-level methods
 * (gradient x input, Integrated Gradients) have no feature grid.
 *
 * docs/attribution.md defines every method and option precisely.
 *
 *   cbq_attrib_options opt;
 *   cbq_attrib_options_default(&opt);          // Grad-CAM, ReLU, +y_c, model's layer
 *   cbq_cam *cam;
 *   CBQ_TRY(cbq_cam_create(&cam, net, 16, &opt, err));
 *   cbq_ae ae[CBQ_MAX_OUTPUTS];                // one per output category
 *   CBQ_TRY(cbq_attrib_volume(cam, slices, nz, NULL, ae, NULL, NULL, NULL, err));
 *   ... ae[c].ae, ae[c].pred_part, cbq_ae_clipped(&ae[c]) ...
 *   for (size_t c = 0; c < cbq_cam_n_outputs(cam); c++) cbq_ae_free(&ae[c]);
 *   cbq_cam_free(cam);
 */
#ifndef CBCTIQ_ATTRIB_H
#define CBCTIQ_ATTRIB_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/error.h"
#include "cbctiq/net.h"
#include "cbctiq/progress.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- methods ------------------------------------------------------------- */
/* One value per line of cbctiq/cam_methods.def: CBQ_CAM_GRADCAM ("gradcam"),
 * CBQ_CAM_HIRESCAM, CBQ_CAM_LAYERCAM, CBQ_CAM_XGRADCAM, CBQ_CAM_GRADCAMPP
 * ("gradcam++"), CBQ_CAM_SCORECAM, CBQ_CAM_EIGENCAM, CBQ_CAM_GRADXINPUT,
 * CBQ_CAM_IG ("ig"), then CBQ_CAM_METHOD_COUNT. */
typedef enum {
#define CBQ_CAM_METHOD(id, name, input_grid_only, sanity_default) CBQ_CAM_##id,
#include "cbctiq/cam_methods.def"
#undef CBQ_CAM_METHOD
    CBQ_CAM_METHOD_COUNT
} cbq_cam_method;

/* Name as used by --method and in CSV files; NULL for a bad value. */
const char *cbq_cam_method_name(cbq_cam_method m);
/* Parses a name; returns 0 when unknown. */
int cbq_cam_method_parse(const char *name, cbq_cam_method *m);
/* Parses a comma-separated list of names into out[0..cap) (*n: how many;
 * empty items are skipped). On an unknown name, or a name beyond cap, it
 * returns 0 with that name in bad (bad_cap bytes) for the caller's message;
 * *too_many (may be NULL) tells the two apart. */
int cbq_cam_method_list_parse(const char *list, cbq_cam_method *out, size_t cap, size_t *n,
                              char *bad, size_t bad_cap, int *too_many);
/* 1 for methods whose map lives on the input grid only (no target layer). */
int cbq_cam_method_is_pixel(cbq_cam_method m);
/* 1 for the methods `cbctiq sanity` tests by default (cam_methods.def). */
int cbq_cam_method_sanity_default(cbq_cam_method m);
/* "gradcam, hirescam, ...": every name in table order, for usage texts and
 * error messages (a static string). */
const char *cbq_cam_method_list(void);

/* ---- the five choices the poster leaves open, and method settings -------- */
typedef enum { CBQ_GRID_INPUT, CBQ_GRID_FEATURE } cbq_grid;
typedef enum { CBQ_AGG_SUM, CBQ_AGG_MEAN } cbq_aggregate;
typedef enum { CBQ_IG_TRAPEZOID, CBQ_IG_RIGHT } cbq_ig_rule;

typedef struct {
    cbq_cam_method method;     /* default gradcam */
    char layer[64];            /* target layer name; "" = model.json target_layer */
    int relu;                  /* 1 (default): ReLU on the map, as Grad-CAM; 0: signed map */
    int sign;                  /* +1 (default): explain +y_c; -1: explain -y_c */
    cbq_grid grid;             /* which AE is "the" AE (ae_selected): input (default) */
    cbq_aggregate aggregate;   /* sum over slices (default) or mean per slice */
    int ig_steps;              /* Integrated Gradients steps m (default 32) */
    cbq_ig_rule ig_rule;       /* trapezoid (default) or right Riemann sum */
} cbq_attrib_options;

void cbq_attrib_options_default(cbq_attrib_options *opt);
const char *cbq_grid_name(cbq_grid g);             /* "input", "feature" */
const char *cbq_aggregate_name(cbq_aggregate a);   /* "sum", "mean" */
const char *cbq_ig_rule_name(cbq_ig_rule r);       /* "trapezoid", "right" */
int cbq_grid_parse(const char *s, cbq_grid *g);
int cbq_aggregate_parse(const char *s, cbq_aggregate *a);
int cbq_ig_rule_parse(const char *s, cbq_ig_rule *r);

/* ---- pure map arithmetic (no network), exposed for tests ----------------- */

/* Pre-ReLU map of one sample for a gradient method (gradcam, hirescam,
 * layercam, xgradcam, gradcam++) from the target activation A and the
 * gradient G = d(sign*y_c)/dA, both [K, h, w]; map: [h, w]. */
void cbq_cam_combine(cbq_cam_method m, const float *A, const float *G, size_t K, size_t h,
                     size_t w, float *map);

/* Eigen-CAM's first-principal-component projection of one sample's
 * activation A [K, h, w] into map [h, w] (pre-ReLU). `work` holds at least
 * cbq_eigencam_work_size(K, h * w) doubles. The SVD's sign is fixed so that
 * the principal direction has a non-negative dot product with the channel
 * means of A (see docs/attribution.md). */
size_t cbq_eigencam_work_size(size_t K, size_t hw);
void cbq_eigencam_project(const float *A, size_t K, size_t h, size_t w, float *map, double *work);

/* Bilinear resize of `planes` planes [planes, h, w] -> [planes, H, W].
 * align_corners = 0: PyTorch F.interpolate(..., align_corners=False) with an
 * output size (half-pixel centres, edge clamped); 1: align_corners=True. */
void cbq_resize_bilinear(const float *src, size_t planes, size_t h, size_t w, float *dst,
                         size_t H, size_t W, int align_corners);

/* Spearman rank correlation of two equally long arrays (average ranks for
 * ties, then Pearson of the ranks, as scipy.stats.spearmanr); NaN when either
 * is constant or n < 2. `work`: cbq_map_spearman_work_bytes(n) bytes. */
size_t cbq_map_spearman_work_bytes(size_t n);
double cbq_map_spearman(const float *a, const float *b, size_t n, void *work);

/* ---- running a method on batches of slices ------------------------------- */
typedef struct cbq_cam cbq_cam;

/* Prepares attribution for `net` (borrowed: it must outlive the cam; the cam
 * switches it to eval mode) for batches of up to max_batch slices (at most
 * the net's max_batch). Fails with a clear message for an unknown layer
 * name, a target layer at or after the global pool (no spatial grid), or an
 * option out of range. Release with cbq_cam_free. */
int cbq_cam_create(cbq_cam **cam, cbq_net *net, size_t max_batch, const cbq_attrib_options *opt,
                   cbq_error *err);
void cbq_cam_free(cbq_cam *cam);

const cbq_attrib_options *cbq_cam_options(const cbq_cam *cam);
/* Index and name of the target layer ("input" for pixel methods). */
size_t cbq_cam_target_index(const cbq_cam *cam);
const char *cbq_cam_target_name(const cbq_cam *cam);
/* Feature grid (h, w); 0 x 0 for pixel methods. Input grid (H, W). */
void cbq_cam_feature_shape(const cbq_cam *cam, size_t *h, size_t *w);
void cbq_cam_input_shape(const cbq_cam *cam, size_t *H, size_t *W);
size_t cbq_cam_n_outputs(const cbq_cam *cam);
/* The net's spec and the category name of an output (model.json outputs). */
const cbq_model_spec *cbq_cam_spec(const cbq_cam *cam);
const char *cbq_cam_category_name(const cbq_cam *cam, size_t output);

/* 1 when the Grad-CAM identity holds for this target layer: the layers after
 * it are only dropout, one global average pool and one linear layer, so the
 * pre-ReLU Grad-CAM map of a slice sums over the feature grid to
 * sign * (y_c - b_c). */
int cbq_cam_identity_holds(const cbq_cam *cam);
/* Bias b_c of the final linear layer (0 without bias). */
double cbq_cam_output_bias(const cbq_cam *cam, size_t output);

/* Per-slice sums of one output's map. */
typedef struct {
    double input;          /* chosen map (ReLU option applied) summed on the input grid */
    double feature;        /* the same on the feature grid (NaN for pixel methods) */
    double feature_pre;    /* signed (pre-ReLU) map summed on the feature grid */
    double feature_post;   /* clipped (post-ReLU) map summed on the feature grid */
} cbq_cam_slice_sum;

/* Runs the method for every output on x [n, C, H, W] (n <= max_batch): one
 * forward, then one backward to the target layer per output. Afterwards the
 * accessors below describe this batch (valid until the next run). */
int cbq_cam_run(cbq_cam *cam, const float *x, size_t n, cbq_error *err);
const float *cbq_cam_pred(const cbq_cam *cam);                        /* [n, n_outputs] */
const float *cbq_cam_map_feature(const cbq_cam *cam, size_t output);  /* [n, h, w]; NULL for pixel methods */
const float *cbq_cam_map_input(const cbq_cam *cam, size_t output);    /* [n, H, W] */
const cbq_cam_slice_sum *cbq_cam_sums(const cbq_cam *cam, size_t output); /* [n] */

/* ---- Attribution Energy of a volume --------------------------------------- */
typedef struct {
    size_t n_slices;
    double ae;              /* sum of the chosen maps over all slices, input grid */
    double ae_feature;      /* the same on the feature grid (NaN for pixel methods) */
    double ae_feature_pre;  /* signed (pre-ReLU) feature-grid sum */
    double ae_feature_post; /* clipped (post-ReLU) feature-grid sum */
    double pred_sum;        /* sum of slice predictions y_c */
    double pred_part;       /* sum over slices of sign * (y_c - b_c) */
    int has_structure;
    double ae_in_structure; /* sum of map x structure weight, input grid */
    double structure_sum;   /* sum of the structure weights (voxels on the input grid) */
    double *profile;        /* [n_slices] input-grid sum per slice, owned */
    float *slice_pred;      /* [n_slices] prediction y_c per slice, owned */
} cbq_ae;

/* Derived numbers, all from one cbq_ae. */
double cbq_ae_per_slice(const cbq_ae *ae);              /* ae / n_slices */
double cbq_ae_pred(const cbq_ae *ae);                   /* mean slice prediction */
double cbq_ae_clipped(const cbq_ae *ae);                /* ae_feature_post - ae_feature_pre */
double cbq_ae_structure_fraction(const cbq_ae *ae);     /* ae_in_structure / ae, NaN if ae == 0 */
/* The value the options select: grid x aggregate. */
double cbq_ae_selected(const cbq_ae *ae, const cbq_attrib_options *opt);
void cbq_ae_free(cbq_ae *ae);

/* Runs the cam over all nz slices [nz, C, H, W] in batches and fills
 * ae[n_outputs] (each freed by the caller with cbq_ae_free). Optional:
 * structures[c] = weights in [0, 1] on the input grid [nz, H, W] for output
 * c (NULL array or NULL entry: none); maps_input[c] / maps_feature[c] =
 * caller buffers [nz, H, W] / [nz, h, w] receiving the chosen maps (NULL:
 * not kept); progress stepped per slice (NULL: none). */
int cbq_attrib_volume(cbq_cam *cam, const float *slices, size_t nz,
                      const float *const *structures, cbq_ae *ae, float *const *maps_input,
                      float *const *maps_feature, cbq_progress *progress, cbq_error *err);

/* ---- sanity: cascading model randomisation (Adebayo et al. 2018) --------- */

/* Number of layers with parameters, top (output) first; the cascade step s
 * (1-based) re-initialises the top s of them. */
size_t cbq_randomise_n_steps(const cbq_net *net);
/* Name of the layer re-initialised at step s (1-based). */
const char *cbq_randomise_step_layer(const cbq_net *net, size_t step);
/* The init seed used for randomisation seed `seed`: mixed so that a model
 * initialised with `seed` itself (e.g. an untrained model from
 * `cbctiq model init --seed 1`) is not "randomised" into itself. */
uint64_t cbq_randomise_seed(uint64_t seed);
/* Copies into `net` the freshly initialised tensors (PyTorch default init,
 * as cbq_net_create draws it from cbq_randomise_seed(seed)) of the top
 * `steps` parametrised layers; BN layers get fresh weight, bias and running
 * statistics. Not cumulative by itself: call with the total step count. */
int cbq_randomise_top(cbq_net *net, size_t steps, uint64_t seed, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
