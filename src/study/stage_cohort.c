/* stage_cohort.c - stage 1: the cohort the study runs on. Either the user's
 * cohort.csv (with ratings.csv and optional raters.csv), or the built-in
 * cohort simulated into the stage folder. Writes the study's own
 * cohort.csv (paths relative to it, a split for every volume), and copies
 * of ratings.csv (either layout, checked first), raters.csv and
 * labels.json, so later stages read only the output folder. */
#define _POSIX_C_SOURCE 200809L
#include "study/pipeline.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/csv.h"
#include "cbctiq/ratings_csv.h"
#include "cbctiq/rng.h"
#include "cbctiq/sim.h"
#include "cbctiq/cohort.h"

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int hash_into(cbq_sha256 *h, const char *path, cbq_error *err)
{
    char hex[65];
    CBQ_TRY(cbq_hash_path(path, hex, err));
    cbq_sha256_update(h, hex, 64);
    return CBQ_OK;
}

int study_cohort_inputs_hash(const study_ctx *ctx, cbq_sha256 *h, cbq_error *err)
{
    if (!ctx->cfg->cohort.csv[0])
        return CBQ_OK; /* simulated: its options say everything */
    char csv[CBQ_STUDY_PATH_MAX], ratings[CBQ_STUDY_PATH_MAX], raters[CBQ_STUDY_PATH_MAX];
    CBQ_TRY(study_user_tables(ctx, csv, ratings, raters, sizeof csv, err));
    CBQ_TRY(hash_into(h, csv, err));
    CBQ_TRY(hash_into(h, ratings, err));
    if (raters[0])
        CBQ_TRY(hash_into(h, raters, err));
    cbq_cohort c;
    CBQ_TRY(cbq_cohort_read(&c, csv, err));
    int rc = c.labels_json[0] ? hash_into(h, c.labels_json, err) : CBQ_OK;
    cbq_cohort_free(&c);
    return rc;
}

static int hash_volume_files(const cbq_cohort *c, const cbq_cohort_volume *sv,
                             cbq_sha256 h[STUDY_FILES_KINDS], cbq_error *err)
{
    CBQ_TRY(hash_into(&h[STUDY_FILES_VOLUMES], sv->path, err));
    if (sv->mask[0]) {
        CBQ_TRY(hash_into(&h[STUDY_FILES_LABELS], sv->mask, err));
        char names[CBQ_STUDY_PATH_MAX + 32];
        if (cbq_cohort_labels_json(c, sv, names, sizeof names))
            CBQ_TRY(hash_into(&h[STUDY_FILES_LABEL_NAMES], names, err));
        else
            cbq_sha256_update(&h[STUDY_FILES_LABEL_NAMES], "none", 4);
    }
    if (sv->rtstruct[0])
        CBQ_TRY(hash_into(&h[STUDY_FILES_LABELS], sv->rtstruct, err));
    return CBQ_OK;
}

int study_cohort_files_hash(study_ctx *ctx, cbq_error *err)
{
    if (ctx->files_hashed)
        return CBQ_OK;
    char csv[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_input_path(ctx, CBQ_STAGE_COHORT, "cohort.csv", csv, sizeof csv, err));
    cbq_cohort c;
    CBQ_TRY(study_read_cohort_files(ctx, STUDY_READS_COHORT_FILES, &c, err));
    cbq_sha256 h[STUDY_FILES_KINDS];
    for (int k = 0; k < STUDY_FILES_KINDS; k++)
        cbq_sha256_init(&h[k]);
    int rc = CBQ_OK;
    for (size_t i = 0; i < c.n && rc == CBQ_OK; i++)
        if ((rc = hash_volume_files(&c, &c.v[i], h, err)) != CBQ_OK)
            rc = cbq_error_prefix(err, "%s: volume '%s': ", csv, c.v[i].id);
    cbq_cohort_free(&c);
    if (rc != CBQ_OK)
        return rc;
    for (int k = 0; k < STUDY_FILES_KINDS; k++) {
        unsigned char d[32];
        cbq_sha256_final(&h[k], d);
        cbq_sha256_hex(d, ctx->files_hex[k]);
    }
    ctx->files_hashed = 1;
    return CBQ_OK;
}

static int copy_file(const char *src, const char *dst, cbq_error *err)
{
    FILE *in = fopen(src, "rb");
    if (!in)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open: %s", src, strerror(errno));
    cbq_atomic_file af;
    int rc = cbq_atomic_open(&af, dst, err);
    if (rc != CBQ_OK) {
        fclose(in);
        return rc;
    }
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, in)) > 0)
        fwrite(buf, 1, got, af.fp);
    int bad = ferror(in);
    fclose(in);
    if (bad) {
        cbq_atomic_abort(&af);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: read error", src);
    }
    return cbq_atomic_commit(&af, err);
}

/* Seeded random split for cohorts without one: shuffle, then the first
 * round(n f_train) train, the next round(n f_val) val, the rest test. */
static int assign_split(cbq_cohort *c, const cbq_study_config *cfg, cbq_error *err)
{
    size_t *idx = malloc(c->n * sizeof *idx);
    if (!idx)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n; i++)
        idx[i] = i;
    cbq_rng rng;
    cbq_rng_stream(&rng, cfg->seed, 0x5b11u);
    cbq_rng_shuffle_size(&rng, idx, c->n);
    size_t n_train = (size_t)((double)c->n * cfg->cohort.split_train + 0.5);
    size_t n_val = (size_t)((double)c->n * cfg->cohort.split_val + 0.5);
    for (size_t r = 0; r < c->n; r++)
        c->v[idx[r]].split = r < n_train ? CBQ_SPLIT_TRAIN : r < n_train + n_val ? CBQ_SPLIT_VAL : CBQ_SPLIT_TEST;
    free(idx);
    return CBQ_OK;
}

/* Every file a row names must exist: later stages read them. */
static int check_row_files(const cbq_cohort_volume *v, const char *csv, cbq_error *err)
{
    const char *paths[3] = {v->path, v->mask, v->rtstruct};
    for (int i = 0; i < 3; i++) {
        struct stat st;
        if (paths[i][0] && stat(paths[i], &st) != 0)
            return CBQ_FAIL(err, CBQ_ERR_IO, "%s: volume '%s': %s: %s", csv, v->id, paths[i],
                            strerror(errno));
    }
    return CBQ_OK;
}

static int write_cohort(const cbq_cohort *c, const char *csv, const char *dir, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_path(path, sizeof path, dir, "cohort.csv", err));
    static const char *const header[] = {"volume_id", "path", "mask", "rtstruct", "split"};
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, header, 5, err));
    for (size_t i = 0; i < c->n; i++) {
        char rel[CBQ_STUDY_PATH_MAX], relm[CBQ_STUDY_PATH_MAX] = "", relr[CBQ_STUDY_PATH_MAX] = "";
        int rc = check_row_files(&c->v[i], csv, err);
        if (rc == CBQ_OK)
            rc = cbq_path_relative(rel, sizeof rel, dir, c->v[i].path, err);
        if (rc == CBQ_OK && c->v[i].mask[0])
            rc = cbq_path_relative(relm, sizeof relm, dir, c->v[i].mask, err);
        if (rc == CBQ_OK && c->v[i].rtstruct[0])
            rc = cbq_path_relative(relr, sizeof relr, dir, c->v[i].rtstruct, err);
        if (rc != CBQ_OK) {
            cbq_csv_writer_abort(&w);
            return rc;
        }
        cbq_csv_put_str(&w, c->v[i].id);
        cbq_csv_put_str(&w, rel);
        cbq_csv_put_str(&w, relm);
        cbq_csv_put_str(&w, relr);
        cbq_csv_put_str(&w, cbq_split_name(c->v[i].split));
        if ((rc = cbq_csv_end_row(&w, err)) != CBQ_OK) {
            cbq_csv_writer_abort(&w);
            return rc;
        }
    }
    return cbq_csv_writer_commit(&w, err);
}

static int simulate(study_ctx *ctx, char *csv, char *ratings, char *raters, size_t cap,
                    cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    char sim_dir[CBQ_STUDY_PATH_MAX + 8];
    CBQ_TRY(study_output_path(ctx, "sim", sim_dir, sizeof sim_dir, err));
    cbq_cohort_options o;
    cbq_cohort_defaults(&o);
    o.out_dir = sim_dir;
    o.volumes = (size_t)cfg->cohort.simulate.volumes;
    o.size = (size_t)cfg->cohort.simulate.size;
    o.slices = (size_t)cfg->cohort.simulate.slices;
    o.spacing = cfg->cohort.simulate.spacing;
    o.seed = cfg->seed;
    o.n_test = (size_t)cfg->cohort.simulate.test;
    o.n_raters = (size_t)cfg->cohort.simulate.raters;
    o.quiet = cfg->quiet;
    o.dist = &ctx->dist; /* under MPI the ranks share the volumes; rank 0 writes the tables */
    if (o.n_test + 2 > o.volumes)
        return CBQ_FAIL(err, CBQ_ERR_RANGE,
                        "cohort.simulate.test (%zu) must leave at least 2 volumes for training",
                        o.n_test);
    CBQ_TRY(cbq_cohort_simulate(&o, err));
    CBQ_TRY(study_path(csv, cap, sim_dir, "cohort.csv", err));
    CBQ_TRY(study_path(ratings, cap, sim_dir, "ratings.csv", err));
    CBQ_TRY(study_path(raters, cap, sim_dir, "raters.csv", err));
    if (!file_exists(raters))
        raters[0] = '\0';
    return CBQ_OK;
}

/* Each volume's stratum for the folds: its consensus in the category named
 * "overall" when the ratings have one, else the mean of its categories'
 * consensus; NaN for a volume nobody rated. Computed here from the ratings
 * (the consensus stage runs later) with the library's one consensus. */
static int overall_consensus(const cbq_cohort *c, const char *ratings, const char *raters,
                             double *stratum, cbq_error *err)
{
    cbq_ratings r;
    CBQ_TRY(cbq_ratings_read(&r, ratings, raters[0] ? raters : NULL, err));
    cbq_consensus *table = NULL;
    int rc = cbq_consensus_table(&r, &table, err);
    size_t overall = r.n_categories;
    for (size_t k = 0; k < r.n_categories; k++)
        if (strcmp(r.categories[k], "overall") == 0)
            overall = k;
    for (size_t i = 0; i < c->n && rc == CBQ_OK; i++) {
        size_t v = 0;
        while (v < r.n_volumes && strcmp(r.volumes[v], c->v[i].id) != 0)
            v++;
        double sum = 0;
        size_t n = 0;
        for (size_t k = 0; v < r.n_volumes && k < r.n_categories; k++) {
            double m = table[v * r.n_categories + k].mean;
            if ((overall == r.n_categories || k == overall) && isfinite(m)) {
                sum += m;
                n++;
            }
        }
        stratum[i] = n ? sum / (double)n : NAN;
    }
    free(table);
    cbq_ratings_free(&r);
    return rc;
}

/* cohort.folds = K: folds.csv (volume_id, fold, stratum) and each fold's
 * cohort, fold<f>/cohort.csv, whose split trains on the other folds. */
static int write_folds(const study_ctx *ctx, cbq_cohort *c, const char *csv, const int *fold,
                       const double *stratum, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    char path[CBQ_STUDY_PATH_MAX + 32], dir[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, "folds.csv", path, sizeof path, err));
    static const char *const header[] = {"volume_id", "fold", "stratum"};
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, header, 3, err));
    int rc = CBQ_OK;
    for (size_t i = 0; i < c->n && rc == CBQ_OK; i++) {
        cbq_csv_put_str(&w, c->v[i].id);
        cbq_csv_put_int(&w, fold[i]);
        cbq_csv_put_double(&w, stratum[i]);
        rc = cbq_csv_end_row(&w, err);
    }
    if (rc != CBQ_OK) {
        cbq_csv_writer_abort(&w);
        return rc;
    }
    CBQ_TRY(cbq_csv_writer_commit(&w, err));
    cbq_split *split = malloc((c->n + 1) * sizeof *split);
    if (!split)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (int f = 1; f <= cfg->cohort.folds && rc == CBQ_OK; f++) {
        char name[32];
        snprintf(name, sizeof name, "fold%d", f);
        rc = study_fold_split(fold, c->n, f, cfg->cohort.split_train, cfg->cohort.split_val,
                              cfg->seed, split, err);
        for (size_t i = 0; i < c->n; i++)
            c->v[i].split = split[i];
        if (rc == CBQ_OK)
            rc = study_output_path(ctx, name, dir, sizeof dir, err);
        if (rc == CBQ_OK)
            rc = cbq_mkdir_p(dir, err);
        if (rc == CBQ_OK)
            rc = write_cohort(c, csv, dir, err);
    }
    free(split);
    return rc;
}

/* The folds, then every volume marked test in the study's cohort.csv:
 * each is tested once, by the model of the folds it was not in. */
static int make_folds(const study_ctx *ctx, cbq_cohort *c, const char *csv, const char *ratings,
                      const char *raters, cbq_error *err)
{
    double *stratum = malloc((c->n + 1) * sizeof *stratum);
    int *fold = malloc((c->n + 1) * sizeof *fold);
    int rc = stratum && fold ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK)
        rc = overall_consensus(c, ratings, raters, stratum, err);
    if (rc == CBQ_OK)
        rc = study_assign_folds(stratum, c->n, ctx->cfg->cohort.folds, ctx->cfg->seed, fold, err);
    if (rc == CBQ_OK)
        rc = write_folds(ctx, c, csv, fold, stratum, err);
    for (size_t i = 0; i < c->n; i++)
        c->v[i].split = CBQ_SPLIT_TEST;
    free(stratum);
    free(fold);
    return rc;
}

/* Copies `src` into the stage's folder as `name`. */
static int copy_in(const study_ctx *ctx, const char *src, const char *name, cbq_error *err)
{
    char dst[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_output_path(ctx, name, dst, sizeof dst, err));
    return copy_file(src, dst, err);
}

/* The split checked, cohort.csv written, the tables it names copied in. */
static int write_outputs(const study_ctx *ctx, const cbq_cohort *c, const size_t count[4],
                         const char *csv, const char *ratings, const char *raters,
                         cbq_error *err)
{
    if (count[CBQ_SPLIT_TRAIN] < 2 || count[CBQ_SPLIT_TEST] < 3)
        return CBQ_FAIL(err, CBQ_ERR_RANGE,
                        "%s: need at least 2 training and 3 test volumes, have %zu and %zu", csv,
                        count[CBQ_SPLIT_TRAIN], count[CBQ_SPLIT_TEST]);
    char dir[CBQ_STUDY_PATH_MAX];
    CBQ_TRY(study_output_path(ctx, NULL, dir, sizeof dir, err));
    CBQ_TRY(write_cohort(c, csv, dir, err));
    CBQ_TRY(copy_in(ctx, ratings, "ratings.csv", err));
    if (raters[0])
        CBQ_TRY(copy_in(ctx, raters, "raters.csv", err));
    if (c->labels_json[0])
        CBQ_TRY(copy_in(ctx, c->labels_json, "labels.json", err));
    return CBQ_OK;
}

/* The ratings are read here, from the files the user gave, before anything
 * is written: a bad sheet is reported under the user's own file name, not
 * the copy later stages read, and leaves nothing cached. */
static int check_ratings(const char *ratings, const char *raters, cbq_error *err)
{
    cbq_ratings r;
    CBQ_TRY(cbq_ratings_read(&r, ratings, raters[0] ? raters : NULL, err));
    cbq_ratings_free(&r);
    return CBQ_OK;
}

/* The cohort under cohort.folds: the folds, the study's cohort.csv with
 * every volume test, the tables. Frees c. */
static int cohort_folds(study_ctx *ctx, cbq_cohort *c, const char *csv, const char *ratings,
                        const char *raters, cbq_error *err)
{
    int rc = make_folds(ctx, c, csv, ratings, raters, err);
    size_t count[4] = {0};
    count[CBQ_SPLIT_TRAIN] = c->n - c->n / (size_t)ctx->cfg->cohort.folds;
    count[CBQ_SPLIT_TEST] = c->n;
    if (rc == CBQ_OK)
        rc = write_outputs(ctx, c, count, csv, ratings, raters, err);
    snprintf(ctx->summary, sizeof ctx->summary,
             "%zu volumes in %d folds (stratified by the overall consensus), each tested once%s",
             c->n, ctx->cfg->cohort.folds, ctx->cfg->cohort.csv[0] ? "" : ", simulated");
    cbq_cohort_free(c);
    return rc;
}

int study_stage_cohort(study_ctx *ctx, cbq_error *err)
{
    const cbq_study_config *cfg = ctx->cfg;
    char csv[CBQ_STUDY_PATH_MAX], ratings[CBQ_STUDY_PATH_MAX], raters[CBQ_STUDY_PATH_MAX];
    if (cfg->cohort.csv[0])
        CBQ_TRY(study_user_tables(ctx, csv, ratings, raters, sizeof csv, err));
    else
        CBQ_TRY(simulate(ctx, csv, ratings, raters, sizeof csv, err));
    /* Under MPI the other ranks' share ends with the simulated volumes. */
    if (ctx->dist.rank != 0)
        return CBQ_OK;
    CBQ_TRY(check_ratings(ratings, raters, err));
    cbq_cohort c;
    CBQ_TRY(cbq_cohort_read(&c, csv, err));
    const char *how = "from cohort.csv";
    int rc = CBQ_OK;
    if (!c.has_split) {
        rc = assign_split(&c, cfg, err);
        how = "assigned by seed";
    }
    if (rc == CBQ_OK && cfg->cohort.folds > 0)
        return cohort_folds(ctx, &c, csv, ratings, raters, err);
    size_t count[4] = {0};
    for (size_t i = 0; i < c.n; i++)
        count[c.v[i].split]++;
    if (rc == CBQ_OK)
        rc = write_outputs(ctx, &c, count, csv, ratings, raters, err);
    snprintf(ctx->summary, sizeof ctx->summary,
             "%zu volumes (%zu train, %zu val, %zu test; split %s)%s", c.n, count[CBQ_SPLIT_TRAIN],
             count[CBQ_SPLIT_VAL], count[CBQ_SPLIT_TEST], how, cfg->cohort.csv[0] ? "" : ", simulated");
    cbq_cohort_free(&c);
    return rc;
}
