/* stage_inputs.c - the paths a stage reads and writes, handed out only for
 * what its entry in pipeline.c's STAGES table declares. A stage's cache
 * identity hashes exactly its declared inputs, so a read that bypassed the
 * declaration would let the cache keep a stage whose input changed; here
 * such a read is refused as a bug instead. Each input handed out is
 * recorded in ctx->used, so that a test can compare what a stage reads
 * with what it declares. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *running_name(const study_ctx *ctx)
{
    return ctx->stage == STUDY_PIPELINE ? "pipeline" : cbq_study_stage_name(ctx->stage);
}

static const char *const OUTSIDE_NAMES[] = {"the user's tables", "the given model",
                                            "the cohort's volumes", "the cohort's label volumes",
                                            "the label names (labels.json)"};

/* The first kind of outside file in `reads`, in words. */
static const char *outside_name(unsigned reads)
{
    for (size_t b = 0; b < sizeof OUTSIDE_NAMES / sizeof OUTSIDE_NAMES[0]; b++)
        if (reads & (1u << b))
            return OUTSIDE_NAMES[b];
    return "an unknown input";
}

int study_input_path(const study_ctx *ctx, cbq_study_stage from, const char *name, char *buf,
                     size_t cap, cbq_error *err)
{
    if ((unsigned)from >= CBQ_STAGE_COUNT)
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "stage %s: input from stage %d, which is none",
                        running_name(ctx), (int)from);
    if (ctx->stage != STUDY_PIPELINE) {
        if (!(study_stage_declared(ctx->stage).stages & (1u << from)))
            return CBQ_FAIL(err, CBQ_ERR_INTERNAL,
                            "stage %s reads %s/%s but does not declare stage %s among its "
                            "inputs (pipeline.c, STAGES)",
                            running_name(ctx), cbq_study_stage_name(from), name ? name : "",
                            cbq_study_stage_name(from));
        if (ctx->used)
            ctx->used->stages |= 1u << from;
    }
    return study_path(buf, cap, ctx->dir[from], name, err);
}

int study_input_outside(const study_ctx *ctx, unsigned reads, cbq_error *err)
{
    if (ctx->stage == STUDY_PIPELINE)
        return CBQ_OK;
    unsigned undeclared = reads & ~study_stage_declared(ctx->stage).outside;
    if (undeclared)
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL,
                        "stage %s reads %s but does not declare them among its inputs "
                        "(pipeline.c, STAGES)",
                        running_name(ctx), outside_name(undeclared));
    if (ctx->used)
        ctx->used->outside |= reads;
    return CBQ_OK;
}

unsigned study_slice_reads(const cbq_study_config *cfg)
{
    unsigned reads = STUDY_READS_VOLUMES;
    if (strcmp(cfg->train.slices, "structures") == 0)
        reads |= STUDY_READS_LABELS;
    return reads;
}

int study_given_model(const study_ctx *ctx, const char **dir, cbq_error *err)
{
    *dir = ctx->cfg->train.model;
    if (!ctx->cfg->train.model[0])
        return CBQ_OK;
    return study_input_outside(ctx, STUDY_READS_GIVEN_MODEL, err);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* cohort.ratings, or ratings.csv beside cohort.csv. */
static void user_ratings_path(const cbq_study_config *cfg, char *ratings, size_t cap)
{
    const char *slash = strrchr(cfg->cohort.csv, '/');
    int dl = slash ? (int)(slash - cfg->cohort.csv + 1) : 0;
    if (cfg->cohort.ratings[0])
        snprintf(ratings, cap, "%s", cfg->cohort.ratings);
    else
        snprintf(ratings, cap, "%.*sratings.csv", dl, cfg->cohort.csv);
}

void study_ratings_shown(const study_ctx *ctx, const char *copy, char *buf, size_t cap)
{
    if (ctx->cfg->cohort.csv[0])
        user_ratings_path(ctx->cfg, buf, cap);
    else
        snprintf(buf, cap, "%s", copy);
}

int study_user_tables(const study_ctx *ctx, char *csv, char *ratings, char *raters, size_t cap,
                      cbq_error *err)
{
    CBQ_TRY(study_input_outside(ctx, STUDY_READS_USER_TABLES, err));
    const cbq_study_config *cfg = ctx->cfg;
    const char *slash = strrchr(cfg->cohort.csv, '/');
    int dl = slash ? (int)(slash - cfg->cohort.csv + 1) : 0;
    snprintf(csv, cap, "%s", cfg->cohort.csv);
    user_ratings_path(cfg, ratings, cap);
    if (cfg->cohort.raters[0])
        snprintf(raters, cap, "%s", cfg->cohort.raters);
    else {
        snprintf(raters, cap, "%.*sraters.csv", dl, cfg->cohort.csv);
        if (!file_exists(raters))
            raters[0] = '\0';
    }
    return CBQ_OK;
}

int study_output_path(const study_ctx *ctx, const char *name, char *buf, size_t cap,
                      cbq_error *err)
{
    if (ctx->stage == STUDY_PIPELINE)
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "no stage is running to write %s",
                        name ? name : "its folder");
    return study_path(buf, cap, ctx->dir[ctx->stage], name, err);
}

int study_read_cohort_files(const study_ctx *ctx, unsigned reads, cbq_cohort *c,
                            cbq_error *err)
{
    return study_read_fold_cohort(ctx, 0, reads, c, err);
}

int study_read_fold_cohort(const study_ctx *ctx, int fold, unsigned reads, cbq_cohort *c,
                           cbq_error *err)
{
    unsigned not_in_rows = reads & ~(unsigned)STUDY_READS_COHORT_FILES;
    if (not_in_rows)
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "stage %s: cohort.csv names no %s",
                        running_name(ctx), outside_name(not_in_rows));
    char path[CBQ_STUDY_PATH_MAX + 32], name[64];
    study_fold_cohort_name(fold, name, sizeof name);
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_COHORT, name, path, sizeof path, err));
    CBQ_TRY(study_input_outside(ctx, reads, err));
    CBQ_TRY(cbq_cohort_read(c, path, err));
    for (size_t i = 0; i < c->n; i++) {
        if (!(reads & STUDY_READS_VOLUMES))
            c->v[i].path[0] = '\0';
        if (!(reads & STUDY_READS_LABELS)) {
            c->v[i].mask[0] = '\0';
            c->v[i].rtstruct[0] = '\0';
        }
    }
    return CBQ_OK;
}

int study_read_cohort(const study_ctx *ctx, cbq_cohort *c, cbq_error *err)
{
    return study_read_cohort_files(ctx, 0, c, err);
}
