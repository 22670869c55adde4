/* study.h - the whole poster study as one reproducible, resumable pipeline
 * (`cbctiq study`), and the pieces it is made of that are worth testing on
 * their own: the configuration, the stage cache, the evaluation metrics and
 * the atypical-case detection.
 *
 * Stages, each in its own folder under the output folder:
 *   cohort -> consensus -> train -> evaluate, attrib -> stats, atypical, sanity -> report
 * A stage's identity is a SHA-256 over its options and the content digests of
 * what it reads; it is skipped when its folder's stamp (`stage.done`, written
 * last, atomically) carries the same identity. See docs/study.md.
 */
#ifndef CBCTIQ_STUDY_H
#define CBCTIQ_STUDY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "cbctiq/dist.h"
#include "cbctiq/error.h"
#include "cbctiq/model_input.h"
#include "cbctiq/net.h"
#include "cbctiq/orient.h"
#include "cbctiq/sanity.h"
#include "cbctiq/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- stages -------------------------------------------------------------- */
typedef enum {
#define CBQ_STUDY_STAGE(id, name) CBQ_STAGE_##id,
#include "cbctiq/study_stages.def"
#undef CBQ_STUDY_STAGE
    CBQ_STAGE_COUNT
} cbq_study_stage;

/* "cohort", "consensus", ... (also the stage's folder name). */
const char *cbq_study_stage_name(cbq_study_stage stage);

/* ---- configuration -------------------------------------------------------- */
enum { CBQ_STUDY_PATH_MAX = 4096, CBQ_STUDY_STR_MAX = 256 };
/* attrib.save_maps = "dicom": NIfTI maps and DICOM Parametric Maps */
enum { CBQ_SAVE_MAPS_DICOM = 2 };

typedef struct {
    /* run options: never part of a stage's identity */
    char out[CBQ_STUDY_PATH_MAX];
    int threads;              /* 0 = all cores */
    int quiet;
    /* study-wide */
    uint64_t seed;
    char categories[CBQ_STUDY_STR_MAX]; /* comma-separated, in output order */
    struct {
        char csv[CBQ_STUDY_PATH_MAX];     /* "" = the built-in simulated cohort */
        char ratings[CBQ_STUDY_PATH_MAX]; /* "" = ratings.csv beside csv */
        char raters[CBQ_STUDY_PATH_MAX];  /* "" = raters.csv beside csv when present */
        double split_train, split_val;    /* fractions when cohort.csv has no split */
        struct { int volumes, size, slices, test, raters; double spacing; } simulate;
        int folds;                        /* k-fold cross-validation; 0 = the split */
    } cohort;
    struct {
        char model[CBQ_STUDY_PATH_MAX];   /* "" = train; else use this model folder */
        char arch[CBQ_STUDY_STR_MAX];
        int width, depth;         /* preset size; 0 = its default */
        int input_size;
        double hu_min, hu_max;
        char slices[CBQ_STUDY_STR_MAX];   /* "all" or "structures" */
        int slice_step;
        int epochs, batch, patience;
        double lr, weight_decay;
        char optimizer[CBQ_STUDY_STR_MAX];
        int augment;
        int permute_labels;       /* data-randomisation control (see cbq_study_permute_labels) */
        int repeats;              /* models (seeds) per fold; their mean is the headline */
    } train;
    struct { int batch; } evaluate;
    struct {
        char method[CBQ_STUDY_STR_MAX];
        char target_layer[CBQ_STUDY_STR_MAX]; /* "" = the model's own */
        int save_maps;            /* 0 no maps, 1 NIfTI, CBQ_SAVE_MAPS_DICOM NIfTI and DICOM */
        char perturbation[CBQ_STUDY_STR_MAX]; /* deletion curves' baseline: none, blur, road */
        int curve_slices;                     /* slices per volume for the curves (0 = all) */
    } attrib;
    struct {
        char ci[CBQ_STUDY_STR_MAX];       /* "fisher" or "bootstrap" */
        int bootstrap, permutations;
        double ci_level;
    } stats;
    struct {
        double mad_threshold;
        int influential;
    } atypical;
    struct {
        int enabled;
        int permuted_labels;      /* also train a label-permuted model and compare */
        char methods[CBQ_STUDY_STR_MAX]; /* comma-separated; "" = attrib.method,gradxinput */
        int max_slices;           /* per volume; 0 = all */
        double threshold;
    } sanity;
    struct {
        char title[CBQ_STUDY_STR_MAX];
        int dpi;
        char viewer[16];          /* picks, all or off: the volumes of the map viewer */
    } report;
} cbq_study_config;

/* Fills every option with its documented default. */
void cbq_study_config_defaults(cbq_study_config *cfg);

/* Overlays the options found in a JSON document on *cfg. Keys nest as in
 * --print-config; an unknown key, a wrong type or a value out of range fails
 * naming `source` and the dotted key. Relative paths in the document are
 * resolved against `base_dir` (NULL = as written). */
int cbq_study_config_parse(cbq_study_config *cfg, const char *json_text, const char *source,
                           const char *base_dir, cbq_error *err);
/* Reads `path` and parses it with base_dir = the file's folder. */
int cbq_study_config_load(cbq_study_config *cfg, const char *path, cbq_error *err);

/* The full configuration as indented JSON; the caller frees it with free().
 * NULL only when out of memory. */
char *cbq_study_config_json(const cbq_study_config *cfg);

/* Hex SHA-256 of the options that `stage` depends on (canonical text form:
 * "key=value\n" in table order), so that a changed option changes exactly
 * the identity of the stages that read it. */
void cbq_study_config_stage_hash(const cbq_study_config *cfg, cbq_study_stage stage,
                                 char hex[65]);

/* Every option as a Markdown table row: key, default, help (docs). */
void cbq_study_config_describe(FILE *out);

/* Categories parsed from cfg->categories; returns how many (<= cap). */
size_t cbq_study_categories(const cbq_study_config *cfg, char (*names)[64], size_t cap);

/* ---- stage cache ---------------------------------------------------------- */
typedef struct {
    char input_hash[65];   /* identity: options + digests of what it read */
    char output_hash[65];  /* digest of the stage's manifest (the files it wrote) */
} cbq_stage_stamp;

/* DIR/stage.done is the stage folder's marker and, once the stage has
 * finished, its manifest:
 *   cbctiq-stage 2 / input HEX / output HEX / file SIZE SHA256 PATH ...
 * (one "file" line per file the stage wrote, sorted; output = SHA-256 of
 * those lines). While the stage runs it holds "cbctiq-stage 2 / running". */

/* Reads DIR/stage.done. *found = 0 (and CBQ_OK) when it does not exist, is
 * a "running" marker or is malformed (the stage reruns). */
int cbq_stage_stamp_read(const char *stage_dir, cbq_stage_stamp *stamp, int *found,
                         cbq_error *err);
/* Lists and hashes every file in DIR (not the stamp, not '.'-prefixed
 * temporaries), sets stamp->output_hash and writes DIR/stage.done
 * atomically: call after every output is committed. */
int cbq_stage_stamp_write(const char *stage_dir, cbq_stage_stamp *stamp, cbq_error *err);
/* Whether DIR still holds exactly the files of its stamp's manifest (same
 * names, sizes and SHA-256). *intact = 0 with `why` naming the first file
 * that is missing, changed or extra (or "no valid stage.done"). */
int cbq_stage_verify(const char *stage_dir, int *intact, char *why, size_t why_cap,
                     cbq_error *err);
/* Fails, naming DIR, unless DIR is absent, an empty folder or a folder
 * carrying a cbctiq stage.done: cbctiq never empties a folder it did not
 * make. */
int cbq_stage_dir_check(const char *stage_dir, cbq_error *err);
/* Makes DIR ready for a (re)run of its stage: checks it (as above),
 * creates it, marks it "running" and removes everything else in it. */
int cbq_stage_dir_begin(const char *stage_dir, cbq_error *err);

/* Hex SHA-256 over a file's bytes, or over a folder's regular files in
 * byte-wise sorted relative-path order (names and contents), skipping
 * stage.done and temporary files (leading '.'). */
int cbq_hash_path(const char *path, char hex[65], cbq_error *err);

/* rm -rf: removes a file or folder tree; a missing path is fine. */
int cbq_remove_tree(const char *path, cbq_error *err);

/* ---- volumes through a model ---------------------------------------------- */


/* Reads a CBCT volume (NIfTI file, or DICOM series folder/file) and brings
 * it to the canonical orientation (orient.h). *vol is owned by the caller
 * (cbq_volume_free). src_flip_k (may be NULL) receives 1 when canonical
 * slice k is source slice nz-1-k, so per-slice results can be reported in
 * the source volume's slice order. */
int cbq_study_load_volume(const char *path, cbq_volume *vol, int *src_flip_k, cbq_error *err);
typedef struct {
    size_t n_slices;      /* slices used */
    size_t n_outputs;
    size_t *slice;        /* n_slices canonical indices, ascending (owned) */
    float *pred;          /* [n_slices][n_outputs] (owned) */
    double mean[16];      /* volume level: mean over the used slices, per output */
} cbq_volume_pred;

/* Runs `net` (eval mode) on the selected slices of a model input
 * (model_input.h), in batches of at most `batch` (<= the net's max_batch).
 * Free with cbq_volume_pred_free. */
int cbq_predict_input(cbq_net *net, const cbq_model_input *in, size_t batch, cbq_volume_pred *out,
                      cbq_error *err);
void cbq_volume_pred_free(cbq_volume_pred *p);

/* ---- training on a cohort ------------------------------------------------- */
typedef struct {
    size_t n_train_volumes, n_val_volumes, n_train_slices, n_val_slices;
    size_t skipped_volumes;  /* without a consensus in some category */
    size_t n_relabelled;     /* train.permute_labels: volumes given another's targets */
    size_t epochs_run, best_epoch;
    double best_val_loss;
    int stopped_early;
    size_t ranks;              /* MPI ranks that trained it data-parallel (1 alone) */
    size_t steps;              /* training steps */
    double allreduce_seconds;  /* rank 0's wall time in the gradient sums */
} cbq_study_train_result;

/* Trains cfg->train.arch on the train split of `cohort_csv` (its split
 * column is required) against `consensus_csv`, validating on the val split
 * at every epoch (volume level: mean over slices, MAE and Spearman per
 * category) with early stopping on the validation loss, and writes the
 * best model to `model_dir` (model.json + weights.safetensors) and the
 * per-epoch log to `log_csv` (epoch, train_loss, val_loss, val_mae_CAT...,
 * val_rho_CAT..., lr, seconds, improved), each atomically. Outputs are the
 * categories of cfg->categories; slices: train.slices, train.slice_step;
 * seeded by cfg->seed. res may be NULL.
 * Under an MPI launcher with several ranks every rank calls it alike and
 * they train data-parallel (cbq_trainer_cfg.dist); rank 0 alone writes. */
int cbq_study_train(const cbq_study_config *cfg, const char *cohort_csv, const char *consensus_csv,
                    const char *model_dir, const char *log_csv, cbq_study_train_result *res,
                    cbq_error *err);
/* The same on the ranks of `dist` (a group of the job, cbq_dist_split):
 * they train data-parallel and the group's rank 0 alone writes. When the
 * epoch's batches cannot give every rank a slice (batch or last batch
 * smaller than the group), each rank trains the whole batch alone instead,
 * one process's model. */
int cbq_study_train_on(const cbq_dist *dist, const cbq_study_config *cfg, const char *cohort_csv,
                       const char *consensus_csv, const char *model_dir, const char *log_csv,
                       cbq_study_train_result *res, cbq_error *err);

/* The label permutation of `cbctiq train --permute-labels`, the data
 * randomisation test of Adebayo et al. 2018: volume v trains on the targets
 * of volume from[v]. Volumes are permuted only among those with the same
 * group[v] >= 0 (the split: train labels stay in train, val labels in val,
 * so that early stopping also sees permuted labels); group[v] < 0 keeps
 * from[v] = v. Within a group the permutation is a derangement (from[v] != v
 * for every member), uniform over all derangements (Fisher-Yates shuffles
 * drawn until one has no fixed point), on the seed's own stream; a group
 * with a single member has none and fails (CBQ_ERR_UNDEFINED). When target
 * is not NULL its rows ([n][K]) are permuted in place, all K categories
 * together (row v becomes the old row from[v]), so their correlation is
 * kept. Two volumes with identical rows still train on the same scores. */
int cbq_study_permute_labels(uint64_t seed, const int *group, size_t n, size_t K, double *target,
                             size_t *from, cbq_error *err);

/* Whether train.arch names a model.json file (it ends in ".json") rather
 * than a preset: its layers and input (size, HU window, channels, slices,
 * mean/std) are trained from freshly initialised weights, and its outputs
 * must be the study's categories in order. */
int cbq_study_arch_is_file(const char *arch);

/* Whether cbq_study_train can run under train.permute_labels with these
 * inputs: why[0] = '\0' when it can, else why not (a split whose volumes
 * with complete consensus number one), in words. Fails only when the files
 * cannot be read. */
int cbq_study_permute_check(const cbq_study_config *cfg, const char *cohort_csv,
                            const char *consensus_csv, char *why, size_t cap, cbq_error *err);

/* ---- sanity checks ------------------------------------------------------ */
/* Writes cbq_sanity_run's rows as sanity.csv, atomically: method, test
 * (cascade or permuted_labels), step, layer, category, n_volumes,
 * median_spearman, min_spearman, max_spearman, median_ae_ratio,
 * mean_ae_trained, mean_ae_random, threshold, survives. */
int cbq_study_sanity_write(const char *path, const cbq_sanity_result *res, cbq_error *err);

/* ---- running ---------------------------------------------------------------- */
typedef struct {
    int ran[CBQ_STAGE_COUNT];      /* 1 = ran this time, 0 = skipped (cached) */
    double seconds[CBQ_STAGE_COUNT];
} cbq_study_summary;

/* Runs the pipeline described by cfg into cfg->out: every stage whose stamp
 * does not match is rerun (folder emptied first), the others are skipped.
 * `table_out` receives the poster's table at the end (NULL = none). */
int cbq_study_run(const cbq_study_config *cfg, FILE *table_out, cbq_study_summary *summary,
                  cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
