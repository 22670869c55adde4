/* sanity.h - sanity checks of attribution maps (Adebayo et al., "Sanity
 * Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292), shared by
 * `cbctiq sanity` and the study's sanity stage.
 *
 * Cascading model randomisation: the parametrised layers are re-initialised
 * from the output down, one more per step (cbq_randomise_top); after each
 * step every method's maps are compared with the trained model's by Spearman
 * rank correlation, and their AE with the trained AE. Data randomisation:
 * the maps of a model trained on permuted labels against the trained
 * model's. A method whose maps still correlate (median rho above the
 * threshold) explains the image rather than the model, and is flagged.
 *
 *   cbq_sanity_options o;
 *   cbq_sanity_options_default(&o);
 *   cbq_sanity_result res;
 *   if (cbq_sanity_run(net, NULL, vols, n_vols, &o, &res, &err) == CBQ_OK) {
 *       ... res.rows[i], res.methods[m] ...
 *       cbq_sanity_result_free(&res);
 *   }
 *
 * Writing the rows as sanity.csv is cbq_study_sanity_write (study.h), since
 * CSV files belong to io, which attrib does not use.
 */
#ifndef CBCTIQ_SANITY_H
#define CBCTIQ_SANITY_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/attrib.h"
#include "cbctiq/dist.h"
#include "cbctiq/error.h"
#include "cbctiq/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A per-volume number of each output's maps on the model-input grid,
 * computed for the trained model's maps and for every comparison's: the
 * sanity checks report its median over volumes per step (the data layer's
 * cbq_sanity_energy_of gives ae.csv's energy_in_structure, sanity_energy.h).
 * maps[output] = [nz, H, W] of volume `volume` (its index in the volumes
 * given to cbq_sanity_run); writes value[output] (NaN when undefined) and
 * empty[output] (the hook's own bits saying why; 0 when defined). */
typedef int (*cbq_sanity_energy_fn)(void *user, size_t volume, const float *const *maps,
                                    double *value, unsigned *empty, cbq_error *err);

typedef struct {
    cbq_cam_method methods[CBQ_CAM_METHOD_COUNT];
    size_t n_methods;           /* default 1: gradcam */
    double threshold;           /* median rho that flags a method; default 0.5 */
    uint64_t seed;              /* of the re-initialisation; default 1 */
    size_t batch;               /* slices per pass, <= the nets' max_batch; default 16 */
    cbq_attrib_options attrib;  /* layer, relu, ...; its method is ignored */
    int quiet;                  /* no progress bar */
    cbq_sanity_energy_fn energy; /* NULL (default): no energy columns */
    void *energy_user;
    /* The ranks of a job sharing the volumes (contiguous blocks); NULL:
     * alone. Every rank calls cbq_sanity_run alike; rank 0 gathers the
     * comparisons and alone gets the result (the same bytes as one
     * process), the other ranks an empty one. */
    const cbq_dist *dist;
} cbq_sanity_options;

void cbq_sanity_options_default(cbq_sanity_options *o);

/* One volume as the model's input: its tested slices, already windowed and
 * resampled ([nz, C, H, W]). Borrowed: the caller keeps it alive. */
typedef struct {
    const char *id;             /* for error messages */
    const float *slices;
    size_t nz;
} cbq_sanity_volume;

/* How many of a volume's nz slices are tested under max_slices (0 = all),
 * and the index of the i-th of those n: evenly spaced, centred. */
size_t cbq_sanity_n_slices(size_t nz, size_t max_slices);
size_t cbq_sanity_slice_index(size_t nz, size_t n, size_t i);

/* One (method, comparison, category) row of sanity.csv. */
typedef struct {
    cbq_cam_method method;
    int permuted;               /* 1: the permuted-labels model (step 0); 0: cascade step */
    size_t step;
    char layer[CBQ_NAME_MAX];   /* layer re-initialised at this step */
    char category[CBQ_NAME_MAX];
    size_t n_volumes;
    double median_rho, min_rho, max_rho;  /* over volumes; NaN when none is finite */
    double median_ae_ratio;               /* AE random / AE trained */
    double mean_ae_trained, mean_ae_random;
    double threshold;
    double pooled_rho;          /* median over all categories and volumes: the verdict's */
    int survives;               /* pooled_rho > threshold (same on the comparison's rows) */
    /* options.energy of the maps, median over volumes (NaN when no volume
     * has it): the trained model's, this comparison's, and their
     * difference (random - trained); energy_empty: when the comparison's
     * median is NaN, the union of the volumes' empty bits (0 without a hook) */
    double median_energy_trained, median_energy_random, energy_change;
    unsigned energy_empty;
} cbq_sanity_row;

/* One method's verdicts: medians pooled over categories and volumes. */
typedef struct {
    cbq_cam_method method;
    double last_rho;            /* at the last cascade step (whole network random) */
    int survives;
    double permuted_rho;        /* NaN without a permuted model */
    int survives_permuted;
} cbq_sanity_method;

typedef struct {
    cbq_sanity_row *rows;       /* owned; per method: permuted row(s), then steps 1..n_steps */
    size_t n_rows;
    cbq_sanity_method methods[CBQ_CAM_METHOD_COUNT];
    size_t n_methods;
    size_t n_steps;             /* parametrised layers of the model */
} cbq_sanity_result;

/* Runs the cascade for every method of o over the volumes, and, when
 * `permuted` is not NULL (same outputs and input as net), the permuted-label
 * comparison. `net` is re-initialised step by step and holds its trained
 * weights again on return. Threads: as set on the nets. Progress on stderr
 * unless o->quiet. *res is owned by the caller (cbq_sanity_result_free),
 * untouched on failure. */
int cbq_sanity_run(cbq_net *net, cbq_net *permuted, const cbq_sanity_volume *vols, size_t n_vols,
                   const cbq_sanity_options *o, cbq_sanity_result *res, cbq_error *err);
void cbq_sanity_result_free(cbq_sanity_result *res);

/* 1 when both models take the same input (size, window, channels and their
 * normalisation) and have the same outputs in the same order: the condition
 * for comparing their maps. */
int cbq_sanity_same_outputs(const cbq_net *a, const cbq_net *b);

#ifdef __cplusplus
}
#endif
#endif
