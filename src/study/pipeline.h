/* pipeline.h - what the study's stages share (private to src/study): the
 * run context and one entry point per stage. A stage reads the folders of
 * the stages before it and the files its entry in pipeline.c's STAGES
 * table declares, writes only into its own folder (emptied before it runs)
 * and only through atomic writes, and leaves a one-line summary. */
#ifndef CBQ_STUDY_PIPELINE_H
#define CBQ_STUDY_PIPELINE_H

#include <stdio.h>
#include "cbctiq/report.h"
#include "cbctiq/study.h"
#include "cbctiq/cohort.h"
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

typedef struct {
    const cbq_study_config *cfg;
    char dir[CBQ_STAGE_COUNT][CBQ_STUDY_PATH_MAX]; /* each stage's folder */
    char categories[STUDY_MAX_CATEGORIES][64];
    size_t n_categories;
    char summary[1024];   /* the running stage's one-line result */
    /* Digests of the cohort's files by kind, computed once per run when a
     * stage first needs them (after the cohort stage). */
    char files_hex[STUDY_FILES_KINDS][65];
    int files_hashed;
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

/* Joins folder and name into buf; fails when it does not fit. */
int study_path(char *buf, size_t cap, const char *dir, const char *name, cbq_error *err);

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
/* Reads the cohort stage's cohort.csv. */
int study_read_cohort(const study_ctx *ctx, cbq_cohort *c, cbq_error *err);
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

#endif
