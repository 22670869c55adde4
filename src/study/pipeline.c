/* pipeline.c - runs the study's stages in order, skipping those whose stamp
 * matches their identity (options + digests of what they read), rerunning
 * the others from an empty folder, and stamping each only after all of its
 * outputs are committed. A kill at any moment leaves every stamped stage
 * complete and every unstamped one to be redone. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <stdio.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/progress.h"

/* Bump a stage's version when its code changes what it writes, so that old
 * caches are not trusted. */
typedef struct {
    int (*run)(study_ctx *ctx, cbq_error *err);
    unsigned deps; /* bit s: reads stage s's folder */
    int version;
} stage_def;

#define DEP(s) (1u << CBQ_STAGE_##s)
static const stage_def STAGES[CBQ_STAGE_COUNT] = {
    [CBQ_STAGE_COHORT] = {study_stage_cohort, 0, 1},
    [CBQ_STAGE_CONSENSUS] = {study_stage_consensus, DEP(COHORT), 1},
    [CBQ_STAGE_TRAIN] = {study_stage_train, DEP(COHORT) | DEP(CONSENSUS), 1},
    [CBQ_STAGE_EVALUATE] = {study_stage_evaluate, DEP(COHORT) | DEP(CONSENSUS) | DEP(TRAIN), 1},
    [CBQ_STAGE_ATTRIB] = {study_stage_attrib, DEP(COHORT) | DEP(TRAIN), 4},
    [CBQ_STAGE_STATS] = {study_stage_stats, DEP(CONSENSUS) | DEP(ATTRIB), 1},
    [CBQ_STAGE_ATYPICAL] = {study_stage_atypical, DEP(CONSENSUS) | DEP(ATTRIB), 1},
    [CBQ_STAGE_SANITY] = {study_stage_sanity, DEP(COHORT) | DEP(CONSENSUS) | DEP(TRAIN), 1},
    [CBQ_STAGE_REPORT] = {study_stage_report,
                          DEP(COHORT) | DEP(CONSENSUS) | DEP(TRAIN) | DEP(EVALUATE) | DEP(ATTRIB) |
                              DEP(STATS) | DEP(ATYPICAL) | DEP(SANITY),
                          6},
};

int study_path(char *buf, size_t cap, const char *dir, const char *name, cbq_error *err)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s/%s: path too long", dir, name);
    return CBQ_OK;
}

static int stage_identity(const study_ctx *ctx, cbq_study_stage s,
                          const cbq_stage_stamp stamps[CBQ_STAGE_COUNT], char hex[65],
                          cbq_error *err)
{
    cbq_sha256 h;
    cbq_sha256_init(&h);
    char line[256], opts[65];
    snprintf(line, sizeof line, "stage %s v%d\n", cbq_study_stage_name(s), STAGES[s].version);
    cbq_sha256_update(&h, line, strlen(line));
    cbq_study_config_stage_hash(ctx->cfg, s, opts);
    cbq_sha256_update(&h, opts, 64);
    for (int d = 0; d < CBQ_STAGE_COUNT; d++)
        if (STAGES[s].deps & (1u << d))
            cbq_sha256_update(&h, stamps[d].output_hash, 64);
    if (s == CBQ_STAGE_COHORT)
        CBQ_TRY(study_cohort_inputs_hash(ctx, &h, err));
    if (s == CBQ_STAGE_TRAIN && ctx->cfg->train.model[0]) {
        char model_hash[65];
        CBQ_TRY(cbq_hash_path(ctx->cfg->train.model, model_hash, err));
        cbq_sha256_update(&h, model_hash, 64);
    }
    unsigned char digest[32];
    cbq_sha256_final(&h, digest);
    cbq_sha256_hex(digest, hex);
    return CBQ_OK;
}

static int run_stage(study_ctx *ctx, cbq_study_stage s, cbq_stage_stamp *stamp, cbq_error *err)
{
    const char *dir = ctx->dir[s];
    char done[CBQ_STUDY_PATH_MAX + 16];
    CBQ_TRY(study_path(done, sizeof done, dir, "stage.done", err));
    /* The stamp goes first, then everything else: a kill from here on leaves
     * a folder the next run recognises as unfinished. */
    if (remove(done) != 0)
        (void)0; /* absent is the usual case */
    CBQ_TRY(cbq_remove_tree(dir, err));
    CBQ_TRY(cbq_mkdir_p(dir, err));
    ctx->summary[0] = '\0';
    int rc = STAGES[s].run(ctx, err);
    if (rc != CBQ_OK)
        return cbq_error_prefix(err, "stage %s: ", cbq_study_stage_name(s));
    CBQ_TRY(cbq_hash_path(dir, stamp->output_hash, err));
    return cbq_stage_stamp_write(dir, stamp, err);
}

int cbq_study_run(const cbq_study_config *cfg, FILE *table_out, cbq_study_summary *summary,
                  cbq_error *err)
{
    study_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.cfg = cfg;
    ctx.n_categories = cbq_study_categories(cfg, ctx.categories, STUDY_MAX_CATEGORIES);
    if (summary)
        memset(summary, 0, sizeof *summary);
    CBQ_TRY(cbq_mkdir_p(cfg->out, err));
    for (int s = 0; s < CBQ_STAGE_COUNT; s++)
        CBQ_TRY(study_path(ctx.dir[s], sizeof ctx.dir[s], cfg->out,
                           cbq_study_stage_name((cbq_study_stage)s), err));
    cbq_stage_stamp stamps[CBQ_STAGE_COUNT];
    memset(stamps, 0, sizeof stamps);
    double t_all = cbq_now();
    for (int si = 0; si < CBQ_STAGE_COUNT; si++) {
        cbq_study_stage s = (cbq_study_stage)si;
        const char *name = cbq_study_stage_name(s);
        char identity[65];
        CBQ_TRY(stage_identity(&ctx, s, stamps, identity, err));
        cbq_stage_stamp old;
        int found = 0;
        CBQ_TRY(cbq_stage_stamp_read(ctx.dir[s], &old, &found, err));
        if (found && strcmp(old.input_hash, identity) == 0) {
            stamps[s] = old;
            if (!cfg->quiet)
                fprintf(stderr, "[%d/%d] %-9s up to date (cached)\n", si + 1, CBQ_STAGE_COUNT,
                        name);
            continue;
        }
        if (!cfg->quiet)
            fprintf(stderr, "[%d/%d] %-9s running...\n", si + 1, CBQ_STAGE_COUNT, name);
        double t0 = cbq_now();
        memcpy(stamps[s].input_hash, identity, sizeof identity);
        CBQ_TRY(run_stage(&ctx, s, &stamps[s], err));
        double dt = cbq_now() - t0;
        if (summary) {
            summary->ran[s] = 1;
            summary->seconds[s] = dt;
        }
        if (!cfg->quiet)
            fprintf(stderr, "[%d/%d] %-9s done in %.1f s: %s\n", si + 1, CBQ_STAGE_COUNT, name, dt,
                    ctx.summary[0] ? ctx.summary : "ok");
    }
    if (!cfg->quiet)
        fprintf(stderr, "study complete in %.1f s: %s\n", cbq_now() - t_all, cfg->out);
    if (table_out)
        CBQ_TRY(study_print_table(&ctx, table_out, err));
    return CBQ_OK;
}
