/* pipeline.h - what the study's stages share (private to src/study): the
 * run context and one entry point per stage. A stage reads only what its
 * entry in pipeline.c's STAGES table declares (earlier stages' folders and
 * files outside the output folder), and gets every input path from the
 * accessors below, which refuse an undeclared one; it writes only into its
 * own folder (emptied before it runs) and only through atomic writes, and
 * leaves a one-line summary. */
#ifndef CBQ_STUDY_PIPELINE_H
#define CBQ_STUDY_PIPELINE_H

#include <stdio.h>
#include "cbctiq/report.h"
#include "cbctiq/study.h"
#include "cbctiq/cohort.h"
#include "cbctiq/dist.h"
#include "study/sha256.h"

enum { STUDY_MAX_CATEGORIES = 16 };

/* Files outside the output folder that cohort/cohort.csv points to, by kind
 * (a stage declares which kinds it reads). */
typedef enum {
    STUDY_FILES_VOLUMES,     /* the CBCT volumes */
    STUDY_FILES_LABELS,      /* label volumes (mask column) and RTSTRUCTs */
    STUDY_FILES_LABEL_NAMES, /* the labels.json naming each label volume's values */
    STUDY_FILES_KINDS
} study_files_kind;

/* Files outside the output folder a stage may read, as bits: the user's
 * tables, a given model and the cohort's files of each study_files_kind. */
#define STUDY_READS_FILES(kind) (1u << (2 + (kind)))
enum {
    STUDY_READS_USER_TABLES = 1u << 0, /* cohort.csv, ratings.csv, raters.csv, labels.json */
    STUDY_READS_GIVEN_MODEL = 1u << 1, /* train.model's folder, when set */
    STUDY_READS_VOLUMES = STUDY_READS_FILES(STUDY_FILES_VOLUMES),
    STUDY_READS_LABELS = STUDY_READS_FILES(STUDY_FILES_LABELS),
    STUDY_READS_LABEL_NAMES = STUDY_READS_FILES(STUDY_FILES_LABEL_NAMES),
    STUDY_READS_STRUCTURES = STUDY_READS_LABELS | STUDY_READS_LABEL_NAMES,
    STUDY_READS_COHORT_FILES = STUDY_READS_VOLUMES | STUDY_READS_STRUCTURES,
};

/* A set of inputs: what a stage declares, or what it asked for. */
typedef struct {
    unsigned stages;  /* bit s: files in stage s's folder */
    unsigned outside; /* STUDY_READS_* bits */
} study_inputs;

/* What stage s declares it reads (pipeline.c's STAGES table). */
study_inputs study_stage_declared(cbq_study_stage s);

/* ctx->stage while the pipeline itself hashes a stage's declared inputs
 * (every input allowed, nothing recorded). */
#define STUDY_PIPELINE CBQ_STAGE_COUNT

typedef struct {
    const cbq_study_config *cfg;
    char dir[CBQ_STAGE_COUNT][CBQ_STUDY_PATH_MAX]; /* each stage's folder: use the accessors */
    cbq_study_stage stage; /* the stage running, or STUDY_PIPELINE */
    study_inputs *used;    /* where the accessors record what it asked for; may be NULL */
    char categories[STUDY_MAX_CATEGORIES][64];
    size_t n_categories;
    char summary[1024];   /* the running stage's one-line result */
    /* Digests of the cohort's files by kind, computed once per run when a
     * stage first needs them (after the cohort stage). */
    char files_hex[STUDY_FILES_KINDS][65];
    int files_hashed;
    /* The ranks of an MPI job (one process without mpirun). Rank 0 decides
     * what is cached, prints, and stamps; a stage marked every_rank in
     * STAGES runs on every rank and shares its work (writing only from
     * rank 0, or a training group's first rank), any other on rank 0 alone
     * while the others wait (docs/cluster.md). */
    cbq_dist dist;
} study_ctx;

/* The output folder, held for one run (study_folder.c). */
typedef struct {
    int fd;
} study_folder_lock;

/* Creates `out` when absent; fails when it is not empty and not a study
 * folder (no cbctiq-study.lock), or when another run holds it ("in use by
 * process N"). On success the caller holds the folder until
 * study_folder_release. */
int study_folder_claim(const char *out, study_folder_lock *lock, cbq_error *err);
void study_folder_release(study_folder_lock *lock);

/* Joins folder and name into buf (the folder alone when name is NULL);
 * fails when it does not fit. */
int study_path(char *buf, size_t cap, const char *dir, const char *name, cbq_error *err);

/* Runs the study as cbq_study_run does and, when used is not NULL, records
 * in used[s] what each stage that ran asked the accessors for. */
int study_run(const cbq_study_config *cfg, FILE *table_out, cbq_study_summary *summary,
              study_inputs used[CBQ_STAGE_COUNT], cbq_error *err);

/* ---- a stage's inputs and outputs (stage_inputs.c) ----
 * The only way a stage gets a path to read. Each fails with CBQ_ERR_INTERNAL
 * (a bug in cbctiq: its cache would miss a change) when the running stage
 * has not declared the input in STAGES, and records it otherwise. */
/* buf = stage `from`'s folder / name (name NULL: the folder itself). */
int study_input_path(const study_ctx *ctx, cbq_study_stage from, const char *name, char *buf,
                     size_t cap, cbq_error *err);
/* Before a stage opens files outside the output folder of the kinds in
 * `reads` (STUDY_READS_* bits) by paths it got some other way (the rows of
 * cohort.csv read by train.c). */
int study_input_outside(const study_ctx *ctx, unsigned reads, cbq_error *err);
/* What reading the slices the model sees takes: the volumes, and with
 * train.slices = structures the label volumes that pick the slices. */
unsigned study_slice_reads(const cbq_study_config *cfg);
/* The folder of the given model (train.model); "" when none is set. */
int study_given_model(const study_ctx *ctx, const char **dir, cbq_error *err);
/* The user's tables: cohort.csv, ratings.csv (default beside it) and
 * raters.csv ("" when not given and not beside it). */
int study_user_tables(const study_ctx *ctx, char *csv, char *ratings, char *raters, size_t cap,
                      cbq_error *err);
/* For messages about the cohort stage's copy of ratings.csv (`copy`): the
 * file the user gave (cohort.ratings, or ratings.csv beside cohort.csv), or
 * the copy itself for the simulated cohort. Opens nothing. */
void study_ratings_shown(const study_ctx *ctx, const char *copy, char *buf, size_t cap);
/* buf = the running stage's own folder / name (name NULL: the folder). */
int study_output_path(const study_ctx *ctx, const char *name, char *buf, size_t cap,
                      cbq_error *err);

/* Hashes, into h, the user's tables the cohort stage reads: cohort.csv,
 * ratings.csv, raters.csv and the labels.json beside cohort.csv (nothing
 * for the simulated cohort, whose options say everything). */
int study_cohort_inputs_hash(const study_ctx *ctx, cbq_sha256 *h, cbq_error *err);
/* Fills ctx->files_hex from the files cohort/cohort.csv points to. */
int study_cohort_files_hash(study_ctx *ctx, cbq_error *err);

int study_stage_cohort(study_ctx *ctx, cbq_error *err);
int study_stage_consensus(study_ctx *ctx, cbq_error *err);
int study_stage_train(study_ctx *ctx, cbq_error *err);
int study_stage_evaluate(study_ctx *ctx, cbq_error *err);
int study_stage_attrib(study_ctx *ctx, cbq_error *err);
int study_stage_stats(study_ctx *ctx, cbq_error *err);
int study_stage_atypical(study_ctx *ctx, cbq_error *err);
int study_stage_sanity(study_ctx *ctx, cbq_error *err);
int study_stage_report(study_ctx *ctx, cbq_error *err);

/* Prints the poster's table from the stats stage's table.csv. */
int study_print_table(const study_ctx *ctx, FILE *out, cbq_error *err);

/* ---- shared readers (study_data.c) ---- */
/* Reads the cohort stage's cohort.csv, keeping in its rows only the paths
 * of the files of the kinds in `reads` (STUDY_READS_COHORT_FILES bits,
 * checked and recorded as by study_input_outside); the others are "", so
 * that a stage cannot open what it did not ask for. */
int study_read_cohort_files(const study_ctx *ctx, unsigned reads, cbq_cohort *c,
                            cbq_error *err);
/* The same for the ids and splits only (no file paths). */
int study_read_cohort(const study_ctx *ctx, cbq_cohort *c, cbq_error *err);
/* The same for fold `fold`'s cohort.csv under cohort.folds (its split:
 * test = the fold, train and val carved from the others); fold 0 is the
 * study's cohort.csv. */
int study_read_fold_cohort(const study_ctx *ctx, int fold, unsigned reads, cbq_cohort *c,
                           cbq_error *err);
/* consensus.csv into cons[v * n_categories + k] for the cohort's volumes in
 * the study's category order; NaN where a (volume, category) has none. */
int study_read_consensus(const study_ctx *ctx, const cbq_cohort *c, double *cons,
                         cbq_error *err);
/* For each study category, the index of the model output with its name. */
int study_map_outputs(const study_ctx *ctx, const cbq_net *net, size_t *out_index,
                      const char *model_dir, cbq_error *err);
/* The trained model's folder. */
int study_model_dir(const study_ctx *ctx, char *buf, size_t cap, cbq_error *err);
/* World superior coordinate (RAS+ mm) of canonical axial slice k of `vol`,
 * taken at the slice's centre voxel (in an oblique volume z varies across a
 * slice). profiles.csv's z_mm. */
double study_slice_z_mm(const cbq_volume *vol, size_t k);

/* ---- cross-validation and repeated seeds (folds.c, stats_folds.c) ----
 * Under cohort.folds = K the cohort stage writes folds.csv (each volume's
 * fold, 1..K) and fold<f>/cohort.csv (that fold's split), and its own
 * cohort.csv marks every volume test: each is tested once, out of fold.
 * train.repeats = R trains R models per fold. A model run is (fold, repeat):
 * fold 0 = the single split, repeat 1..R. */
enum { STUDY_MAX_FOLDS = 1000, STUDY_MAX_REPEATS = 100 };

/* The folds models are trained on: [1, K], or [0, 0] for the single split. */
int study_first_fold(const cbq_study_config *cfg);
int study_last_fold(const cbq_study_config *cfg);
/* Training seed of repeat r (1-based): repeat 1 uses `seed` itself (so one
 * repeat trains exactly the model of a study without repeats); repeat r >= 2
 * the first 64-bit draw of the seed's stream 0x5EED0000 + r. */
uint64_t study_repeat_seed(uint64_t seed, int repeat);
/* The folder of a model run inside a stage folder, "" for the single
 * split with one repeat, else "fold<f>/" and/or "seed<r>/" (a trailing
 * slash), so that train/<prefix>model is its model. */
void study_run_prefix(const cbq_study_config *cfg, int fold, int repeat, char *buf, size_t cap);
/* "cohort.csv" for fold 0, else "fold<f>/cohort.csv". */
void study_fold_cohort_name(int fold, char *buf, size_t cap);
/* The model folder of a run (train/<prefix>model), declared as a train read. */
int study_run_model_dir(const study_ctx *ctx, int fold, int repeat, char *buf, size_t cap,
                        cbq_error *err);
/* Stratified folds: volumes sorted by stratum (NaN last; ties in a seeded
 * random order) are dealt in blocks of K, each block a seeded random
 * permutation of the folds 1..K, so fold sizes differ by at most one and
 * each fold spans the range of the stratum. fold[i] in 1..K. */
int study_assign_folds(const double *stratum, size_t n, int K, uint64_t seed, int *fold,
                       cbq_error *err);
/* Fold f's split: its volumes test; of the others round(m * split_val /
 * (split_train + split_val)) val (seeded, at most m - 2), the rest train. */
int study_fold_split(const int *fold, size_t n, int f, double split_train, double split_val,
                     uint64_t seed, cbq_split *split, cbq_error *err);
/* Each cohort volume's fold from cohort/folds.csv (cohort order); all 0
 * when cohort.folds = 0. */
int study_read_folds(const study_ctx *ctx, const cbq_cohort *c, int *fold, cbq_error *err);

#endif
