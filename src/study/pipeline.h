/* pipeline.h - what the study's stages share (private to src/study): the
 * run context and one entry point per stage. A stage reads the folders of
 * the stages before it, writes only into its own folder (emptied before it
 * runs) and only through atomic writes, and leaves a one-line summary. */
#ifndef CBQ_STUDY_PIPELINE_H
#define CBQ_STUDY_PIPELINE_H

#include <stdio.h>
#include "cbctiq/report.h"
#include "cbctiq/study.h"
#include "study/cohort.h"
#include "study/sha256.h"

enum { STUDY_MAX_CATEGORIES = 16 };

typedef struct {
    const cbq_study_config *cfg;
    char dir[CBQ_STAGE_COUNT][CBQ_STUDY_PATH_MAX]; /* each stage's folder */
    char categories[STUDY_MAX_CATEGORIES][64];
    size_t n_categories;
    char summary[1024];   /* the running stage's one-line result */
} study_ctx;

/* Joins folder and name into buf; fails when it does not fit. */
int study_path(char *buf, size_t cap, const char *dir, const char *name, cbq_error *err);

/* Hashes, into h, what a stage reads besides upstream stages and options
 * (only the cohort stage reads files from outside the output folder). */
int study_cohort_inputs_hash(const study_ctx *ctx, cbq_sha256 *h, cbq_error *err);

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
int study_read_cohort(const study_ctx *ctx, study_cohort *c, cbq_error *err);
/* consensus.csv into cons[v * n_categories + k] for the cohort's volumes in
 * the study's category order; NaN where a (volume, category) has none. */
int study_read_consensus(const study_ctx *ctx, const study_cohort *c, double *cons,
                         cbq_error *err);
/* For each study category, the index of the model output with its name. */
int study_map_outputs(const study_ctx *ctx, const cbq_net *net, size_t *out_index,
                      const char *model_dir, cbq_error *err);
/* The trained model's folder. */
int study_model_dir(const study_ctx *ctx, char *buf, size_t cap, cbq_error *err);
/* Per study category, a 0/1 structure volume on `image`'s grid (NULL where
 * the category has no structure, e.g. "overall") from the volume's label
 * volume or RTSTRUCT through structures.h (TG-263 name matching); all NULL
 * when it has neither. labels_json: the sidecar ("" = look beside the
 * label file). Caller frees each with cbq_volume_free + free. */
int study_load_structures(const study_ctx *ctx, const cbq_volume *image, const study_volume *sv,
                          const char *labels_json, cbq_volume **structures, cbq_error *err);
/* World superior coordinate (RAS+ mm) of canonical axial slice k of `vol`,
 * taken at the slice's centre voxel (in an oblique volume z varies across a
 * slice). profiles.csv's z_mm. */
double study_slice_z_mm(const cbq_volume *vol, size_t k);

#endif
