/* pipeline.c - runs the study's stages in order, skipping those whose stamp
 * matches their identity (options + digests of what they read) and whose
 * folder still holds what the stamp lists, rerunning the others from an
 * empty folder, and stamping each only after all of its outputs are
 * committed. A kill at any moment leaves every stamped stage complete and
 * every unstamped one to be redone. One run at a time holds the output
 * folder (study_folder.c). */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <stdio.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/progress.h"
#include "study/verdict.h"

/* What each stage reads, declared here and nowhere else: the folders of
 * earlier stages (deps) and files outside the output folder (reads). Its
 * identity hashes exactly these, and a stage gets every input path through
 * stage_inputs.c, which refuses what is not declared here. Bump a stage's
 * version when its code changes what it writes, so that old caches are not
 * trusted. */
enum {
    READS_USER_TABLES = STUDY_READS_USER_TABLES,
    READS_GIVEN_MODEL = STUDY_READS_GIVEN_MODEL,
    READS_VOLUMES = STUDY_READS_VOLUMES,
    READS_LABELS = STUDY_READS_LABELS,
    READS_STRUCTURES = STUDY_READS_STRUCTURES,
};

typedef struct {
    int (*run)(study_ctx *ctx, cbq_error *err);
    unsigned deps; /* bit s: reads stage s's folder */
    unsigned reads;
    int version;
    int every_rank; /* under MPI: runs on every rank, sharing its work (else rank 0 alone) */
} stage_def;

#define DEP(s) (1u << CBQ_STAGE_##s)
static const stage_def STAGES[CBQ_STAGE_COUNT] = {
    /* The last bump of cohort, train, evaluate, attrib, stats, sanity: cohort.folds
     * (folds.csv, fold<f>/cohort.csv, a model per fold) and train.repeats
     * (a model per seed, their mean as the headline; folds.c). */
    /* Under MPI (every_rank) cohort shares the simulation, train the
     * trainings, evaluate, attrib and sanity the test volumes over the
     * ranks; consensus, stats, atypical and report run on rank 0. */
    [CBQ_STAGE_COHORT] = {study_stage_cohort, 0, READS_USER_TABLES, 2, 1},
    [CBQ_STAGE_CONSENSUS] = {study_stage_consensus, DEP(COHORT), 0, 1},
    /* train.slices = structures picks slices by the label volumes */
    [CBQ_STAGE_TRAIN] = {study_stage_train, DEP(COHORT) | DEP(CONSENSUS),
                         READS_GIVEN_MODEL | READS_VOLUMES | READS_LABELS, 3, 1},
    [CBQ_STAGE_EVALUATE] = {study_stage_evaluate, DEP(COHORT) | DEP(CONSENSUS) | DEP(TRAIN),
                            READS_VOLUMES | READS_LABELS, 3, 1},
    /* attrib v6: attrib.save_maps = "dicom" also writes DICOM Parametric Maps;
     * v7: folds and repeats; v8: where the maps point and the deletion/insertion
     * curves (ae.csv's new columns, curves.csv; stats v3: pointing.csv) */
    [CBQ_STAGE_ATTRIB] = {study_stage_attrib, DEP(COHORT) | DEP(TRAIN),
                          READS_VOLUMES | READS_STRUCTURES, 8, 1},
    /* stats and atypical read the test split from cohort.csv (ae_table.c).
     * v2 of train, evaluate, sanity (v7 of report): an RTSTRUCT row with
     * slices = structures uses only the slices its structures reach, and the
     * RTSTRUCT is matched to its DICOM series (the data layer).
     * stats v4 (report v11): the verdict in stats.json (and the report's
     * first section), no partial correlation below 3 df; atypical v2: no
     * flags below STUDY_SMALL_N test volumes. */
    [CBQ_STAGE_STATS] = {study_stage_stats, DEP(COHORT) | DEP(CONSENSUS) | DEP(ATTRIB), 0, 4},
    [CBQ_STAGE_ATYPICAL] = {study_stage_atypical, DEP(COHORT) | DEP(CONSENSUS) | DEP(ATTRIB), 0,
                            2},
    /* sanity v4 (report v12): energy_in_structure of the randomised models'
     * maps (sanity.csv's energy_* columns; the structures are read) */
    [CBQ_STAGE_SANITY] = {study_stage_sanity, DEP(COHORT) | DEP(CONSENSUS) | DEP(TRAIN),
                          READS_VOLUMES | READS_STRUCTURES, 4, 1},
    [CBQ_STAGE_REPORT] = {study_stage_report,
                          DEP(COHORT) | DEP(CONSENSUS) | DEP(TRAIN) | DEP(EVALUATE) | DEP(ATTRIB) |
                              DEP(STATS) | DEP(ATYPICAL) | DEP(SANITY),
                          READS_VOLUMES | READS_STRUCTURES, 12}, /* v8 DPI, PDF, wrapped tables; v9 the viewer; v10 "Where does the map point?"; v11 the verdict; v12 energy under randomisation */
};

study_inputs study_stage_declared(cbq_study_stage s)
{
    return (study_inputs){.stages = STAGES[s].deps, .outside = STAGES[s].reads};
}

int study_path(char *buf, size_t cap, const char *dir, const char *name, cbq_error *err)
{
    const char *sep = name ? "/" : "";
    int n = snprintf(buf, cap, "%s%s%s", dir, sep, name ? name : "");
    if (n < 0 || (size_t)n >= cap)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s%s%s: path too long", dir, sep, name ? name : "");
    return CBQ_OK;
}

/* Hashes into h the files outside the output folder that stage s declares. */
static int hash_declared_reads(study_ctx *ctx, cbq_study_stage s, cbq_sha256 *h, cbq_error *err)
{
    unsigned reads = STAGES[s].reads;
    if (reads & READS_USER_TABLES)
        CBQ_TRY(study_cohort_inputs_hash(ctx, h, err));
    if ((reads & READS_GIVEN_MODEL) && ctx->cfg->train.model[0]) {
        char model_hash[65];
        CBQ_TRY(cbq_hash_path(ctx->cfg->train.model, model_hash, err));
        cbq_sha256_update(h, model_hash, 64);
    }
    /* train.arch naming a model.json: an edit of that file is a new recipe. */
    if ((reads & READS_GIVEN_MODEL) && cbq_study_arch_is_file(ctx->cfg->train.arch)) {
        char arch_hash[65];
        CBQ_TRY(cbq_hash_path(ctx->cfg->train.arch, arch_hash, err));
        cbq_sha256_update(h, arch_hash, 64);
    }
    for (int k = 0; k < STUDY_FILES_KINDS; k++)
        if (reads & STUDY_READS_FILES(k)) {
            CBQ_TRY(study_cohort_files_hash(ctx, err));
            cbq_sha256_update(h, ctx->files_hex[k], 64);
        }
    return CBQ_OK;
}

static int stage_identity(study_ctx *ctx, cbq_study_stage s,
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
    CBQ_TRY(hash_declared_reads(ctx, s, &h, err));
    unsigned char digest[32];
    cbq_sha256_final(&h, digest);
    cbq_sha256_hex(digest, hex);
    return CBQ_OK;
}

static int run_stage(study_ctx *ctx, cbq_study_stage s, cbq_stage_stamp *stamp,
                     study_inputs *used, cbq_error *err)
{
    const char *dir = ctx->dir[s];
    int leader = ctx->dist.rank == 0;
    /* Marks the folder "running" before emptying it: a kill from here on
     * leaves a folder the next run recognises as its own and unfinished. */
    if (leader)
        CBQ_TRY(cbq_stage_dir_begin(dir, err));
    /* Under MPI the other ranks write into the folder only once it is
     * emptied, and rank 0 stamps it only once every rank is done. A rank
     * that fails does not reach the barrier: the command line stops the
     * job (cbq_dist_abort), so the others never wait for ever. */
    CBQ_TRY(cbq_dist_barrier(&ctx->dist, err));
    ctx->summary[0] = '\0';
    ctx->stage = s;
    ctx->used = used;
    int rc = leader || STAGES[s].every_rank ? STAGES[s].run(ctx, err) : CBQ_OK;
    ctx->stage = STUDY_PIPELINE;
    ctx->used = NULL;
    if (rc != CBQ_OK)
        return cbq_error_prefix(err, "stage %s: ", cbq_study_stage_name(s));
    CBQ_TRY(cbq_dist_barrier(&ctx->dist, err));
    return leader ? cbq_stage_stamp_write(dir, stamp, err) : CBQ_OK;
}

/* *cached = 1 when stage s's stamp carries `identity` and its folder still
 * holds exactly what the stage wrote; why says otherwise. */
static int stage_is_cached(const study_ctx *ctx, cbq_study_stage s, const char identity[65],
                           cbq_stage_stamp *stamp, int *cached, char *why, size_t cap,
                           cbq_error *err)
{
    int found = 0;
    *cached = 0;
    why[0] = '\0';
    CBQ_TRY(cbq_stage_stamp_read(ctx->dir[s], stamp, &found, err));
    if (!found || strcmp(stamp->input_hash, identity) != 0)
        return CBQ_OK;
    return cbq_stage_verify(ctx->dir[s], cached, why, cap, err);
}

/* Rank 0's decision whether stage s is cached (identity, stamp, folder);
 * *cached = 1 when it is. Prints what it found unless quiet. */
static int stage_check(study_ctx *ctx, cbq_study_stage s, cbq_stage_stamp stamps[CBQ_STAGE_COUNT],
                       int *cached, cbq_error *err)
{
    const char *name = cbq_study_stage_name(s);
    int quiet = ctx->cfg->quiet;
    char why[CBQ_STUDY_PATH_MAX + 128];
    CBQ_TRY(stage_identity(ctx, s, stamps, stamps[s].input_hash, err));
    cbq_stage_stamp old;
    CBQ_TRY(stage_is_cached(ctx, s, stamps[s].input_hash, &old, cached, why, sizeof why, err));
    if (*cached) {
        stamps[s] = old;
        if (!quiet)
            fprintf(stderr, "[%d/%d] %-9s up to date (cached)\n", (int)s + 1, CBQ_STAGE_COUNT,
                    name);
        return CBQ_OK;
    }
    if (!quiet && why[0])
        fprintf(stderr, "[%d/%d] %-9s outputs changed since it ran: %s\n", (int)s + 1,
                CBQ_STAGE_COUNT, name, why);
    if (!quiet)
        fprintf(stderr, "[%d/%d] %-9s running...\n", (int)s + 1, CBQ_STAGE_COUNT, name);
    return CBQ_OK;
}

static int run_stages(study_ctx *ctx, cbq_study_summary *summary,
                      study_inputs used[CBQ_STAGE_COUNT], cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    int leader = ctx->dist.rank == 0;
    /* Every stage folder is checked before any work: a folder that is not
     * cbctiq's stops the run before anything is written. */
    for (int s = 0; s < CBQ_STAGE_COUNT && leader; s++)
        CBQ_TRY(cbq_stage_dir_check(ctx->dir[s], err));
    cbq_stage_stamp stamps[CBQ_STAGE_COUNT];
    memset(stamps, 0, sizeof stamps);
    for (int si = 0; si < CBQ_STAGE_COUNT; si++) {
        cbq_study_stage s = (cbq_study_stage)si;
        int cached = 0;
        if (leader)
            CBQ_TRY(stage_check(ctx, s, stamps, &cached, err));
        /* Every rank follows rank 0's decision. */
        CBQ_TRY(cbq_dist_broadcast_bytes(&ctx->dist, &cached, sizeof cached, err));
        if (cached)
            continue;
        double t0 = cbq_now();
        CBQ_TRY(run_stage(ctx, s, &stamps[s], used ? &used[s] : NULL, err));
        double dt = cbq_now() - t0;
        if (summary) {
            summary->ran[s] = 1;
            summary->seconds[s] = dt;
        }
        if (!cfg->quiet && leader)
            fprintf(stderr, "[%d/%d] %-9s done in %.1f s: %s\n", si + 1, CBQ_STAGE_COUNT,
                    cbq_study_stage_name(s), dt, ctx->summary[0] ? ctx->summary : "ok");
    }
    return CBQ_OK;
}

int study_run(const cbq_study_config *cfg, FILE *table_out, cbq_study_summary *summary,
              study_inputs used[CBQ_STAGE_COUNT], cbq_error *err)
{
    study_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.cfg = cfg;
    ctx.stage = STUDY_PIPELINE;
    cbq_dist_current(&ctx.dist);
    if (used)
        memset(used, 0, CBQ_STAGE_COUNT * sizeof *used);
    ctx.n_categories = cbq_study_categories(cfg, ctx.categories, STUDY_MAX_CATEGORIES);
    if (summary)
        memset(summary, 0, sizeof *summary);
    for (int s = 0; s < CBQ_STAGE_COUNT; s++) {
        if (!STAGES[s].run)
            return CBQ_FAIL(err, CBQ_ERR_INTERNAL,
                            "stage %s has no row in STAGES (src/study/pipeline.c)",
                            cbq_study_stage_name((cbq_study_stage)s));
        CBQ_TRY(study_path(ctx.dir[s], sizeof ctx.dir[s], cfg->out,
                           cbq_study_stage_name((cbq_study_stage)s), err));
    }
    /* Under MPI rank 0 holds the folder for the job; the others reach it
     * only after rank 0's first broadcast (run_stages). */
    int leader = ctx.dist.rank == 0;
    study_folder_lock lock = {.fd = -1};
    if (leader)
        CBQ_TRY(study_folder_claim(cfg->out, &lock, err));
    if (!leader)
        table_out = NULL;
    double t_all = cbq_now();
    int rc = run_stages(&ctx, summary, used, err);
    if (rc == CBQ_OK && !cfg->quiet && leader)
        fprintf(stderr, "study complete in %.1f s: %s\n", cbq_now() - t_all, cfg->out);
    if (rc == CBQ_OK && table_out)
        rc = study_print_verdict(&ctx, table_out, stderr, err);
    if (rc == CBQ_OK && table_out)
        rc = study_print_table(&ctx, table_out, err);
    if (leader)
        study_folder_release(&lock);
    return rc;
}

int cbq_study_run(const cbq_study_config *cfg, FILE *table_out, cbq_study_summary *summary,
                  cbq_error *err)
{
    return study_run(cfg, table_out, summary, NULL, err);
}
