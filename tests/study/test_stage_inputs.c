/* test_stage_inputs.c - a stage reads only what pipeline.c's STAGES table
 * declares, because that is all its cache identity hashes: the accessors of
 * stage_inputs.c refuse an undeclared input as an internal error and keep
 * out of a stage's cohort rows the paths it did not ask for; two small
 * studies that between them take every path through the stages read, per
 * stage, exactly the declared inputs; and no stage file builds a path from
 * a stage folder or from the user's files by hand. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/atomic_file.h"
#include "study/pipeline.h"

static char root[1024];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(root, sizeof root, "%s/stage_inputs", base ? base : "tmp");
    cbq_error err = {0};
    cbq_remove_tree(root, &err);
    return cbq_mkdir_p(root, &err);
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* A context as the pipeline makes it, with stage folders under root/out,
 * running stage s. */
static void make_ctx(study_ctx *ctx, const cbq_study_config *cfg, cbq_study_stage s,
                     study_inputs *used)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->cfg = cfg;
    for (int d = 0; d < CBQ_STAGE_COUNT; d++)
        snprintf(ctx->dir[d], sizeof ctx->dir[d], "%s/out/%s", root,
                 cbq_study_stage_name((cbq_study_stage)d));
    ctx->stage = s;
    memset(used, 0, sizeof *used);
    ctx->used = used;
}

static void test_undeclared_folder_is_refused(void **state)
{
    (void)state;
    cbq_study_config cfg;
    cbq_study_config_defaults(&cfg);
    study_ctx ctx;
    study_inputs used;
    make_ctx(&ctx, &cfg, CBQ_STAGE_STATS, &used);
    char path[CBQ_STUDY_PATH_MAX + 64], want[CBQ_STUDY_PATH_MAX + 64];
    cbq_error err = {0};
    /* stats declares the attribution stage's folder, not the model's */
    assert_int_equal(study_input_path(&ctx, CBQ_STAGE_ATTRIB, "ae.csv", path, sizeof path, &err),
                     CBQ_OK);
    snprintf(want, sizeof want, "%s/out/attrib/ae.csv", root);
    assert_string_equal(path, want);
    assert_int_equal(used.stages, 1u << CBQ_STAGE_ATTRIB);
    assert_int_equal(study_input_path(&ctx, CBQ_STAGE_TRAIN, "model", path, sizeof path, &err),
                     CBQ_ERR_INTERNAL);
    assert_string_equal(err.msg, "stage stats reads train/model but does not declare stage train "
                                 "among its inputs (pipeline.c, STAGES)");
    assert_int_equal(used.stages, 1u << CBQ_STAGE_ATTRIB);
    /* a later stage's folder is never an input */
    make_ctx(&ctx, &cfg, CBQ_STAGE_TRAIN, &used);
    assert_int_equal(study_input_path(&ctx, CBQ_STAGE_EVALUATE, NULL, path, sizeof path, &err),
                     CBQ_ERR_INTERNAL);
    assert_int_equal(used.stages, 0);
}

static void test_undeclared_outside_file_is_refused(void **state)
{
    (void)state;
    cbq_study_config cfg;
    cbq_study_config_defaults(&cfg);
    snprintf(cfg.train.model, sizeof cfg.train.model, "given/model");
    study_ctx ctx;
    study_inputs used;
    cbq_error err = {0};
    const char *dir = NULL;
    make_ctx(&ctx, &cfg, CBQ_STAGE_EVALUATE, &used);
    assert_int_equal(study_given_model(&ctx, &dir, &err), CBQ_ERR_INTERNAL);
    assert_string_equal(err.msg, "stage evaluate reads the given model but does not declare them "
                                 "among its inputs (pipeline.c, STAGES)");
    assert_int_equal(study_input_outside(&ctx, STUDY_READS_VOLUMES, &err), CBQ_OK);
    assert_int_equal(used.outside, STUDY_READS_VOLUMES);
    make_ctx(&ctx, &cfg, CBQ_STAGE_TRAIN, &used);
    assert_int_equal(study_given_model(&ctx, &dir, &err), CBQ_OK);
    assert_string_equal(dir, "given/model");
    assert_int_equal(used.outside, STUDY_READS_GIVEN_MODEL);
    make_ctx(&ctx, &cfg, CBQ_STAGE_STATS, &used);
    assert_int_equal(study_input_outside(&ctx, STUDY_READS_VOLUMES, &err), CBQ_ERR_INTERNAL);
    char csv[256], ratings[256], raters[256];
    assert_int_equal(study_user_tables(&ctx, csv, ratings, raters, sizeof csv, &err),
                     CBQ_ERR_INTERNAL);
    assert_int_equal(used.outside, 0);
}

/* A stage's cohort rows carry only the paths of the kinds it asked for. */
static void test_cohort_rows_hold_only_asked_paths(void **state)
{
    (void)state;
    char dir[1100], path[1200];
    snprintf(dir, sizeof dir, "%s/out/cohort", root);
    cbq_error err = {0};
    assert_int_equal(cbq_mkdir_p(dir, &err), CBQ_OK);
    snprintf(path, sizeof path, "%s/cohort.csv", dir);
    write_text(path, "volume_id,path,mask,rtstruct,split\n"
                     "a,v/a.nii.gz,m/a.nii.gz,,test\n"
                     "b,v/b.nii.gz,,r/b.dcm,train\n");
    cbq_study_config cfg;
    cbq_study_config_defaults(&cfg);
    study_ctx ctx;
    study_inputs used;
    make_ctx(&ctx, &cfg, CBQ_STAGE_ATYPICAL, &used);
    cbq_cohort c;
    assert_int_equal(study_read_cohort(&ctx, &c, &err), CBQ_OK);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.v[0].id, "a");
    assert_int_equal(c.v[1].split, CBQ_SPLIT_TRAIN);
    assert_string_equal(c.v[0].path, "");
    assert_string_equal(c.v[0].mask, "");
    assert_string_equal(c.v[1].rtstruct, "");
    cbq_cohort_free(&c);
    assert_int_equal(used.stages, 1u << CBQ_STAGE_COHORT);
    assert_int_equal(used.outside, 0);
    assert_int_equal(study_read_cohort_files(&ctx, STUDY_READS_VOLUMES, &c, &err),
                     CBQ_ERR_INTERNAL);

    make_ctx(&ctx, &cfg, CBQ_STAGE_EVALUATE, &used);
    assert_int_equal(study_read_cohort_files(&ctx, STUDY_READS_VOLUMES, &c, &err), CBQ_OK);
    snprintf(path, sizeof path, "%s/v/a.nii.gz", dir);
    assert_string_equal(c.v[0].path, path);
    assert_string_equal(c.v[0].mask, "");
    assert_string_equal(c.v[1].rtstruct, "");
    cbq_cohort_free(&c);
    assert_int_equal(used.outside, STUDY_READS_VOLUMES);
    assert_int_equal(
        study_read_cohort_files(&ctx, STUDY_READS_VOLUMES | STUDY_READS_LABELS, &c, &err), CBQ_OK);
    snprintf(path, sizeof path, "%s/m/a.nii.gz", dir);
    assert_string_equal(c.v[0].mask, path);
    snprintf(path, sizeof path, "%s/r/b.dcm", dir);
    assert_string_equal(c.v[1].rtstruct, path);
    cbq_cohort_free(&c);
    assert_int_equal(used.outside, STUDY_READS_VOLUMES | STUDY_READS_LABELS);
}

static void test_outputs_go_to_own_folder(void **state)
{
    (void)state;
    cbq_study_config cfg;
    cbq_study_config_defaults(&cfg);
    study_ctx ctx;
    study_inputs used;
    make_ctx(&ctx, &cfg, CBQ_STAGE_REPORT, &used);
    char path[CBQ_STUDY_PATH_MAX + 64], want[CBQ_STUDY_PATH_MAX + 64];
    cbq_error err = {0};
    assert_int_equal(study_output_path(&ctx, "report.html", path, sizeof path, &err), CBQ_OK);
    snprintf(want, sizeof want, "%s/out/report/report.html", root);
    assert_string_equal(path, want);
    assert_int_equal(used.stages, 0);
    ctx.stage = STUDY_PIPELINE;
    assert_int_equal(study_output_path(&ctx, "x", path, sizeof path, &err), CBQ_ERR_INTERNAL);
}

/* to/cohort.csv naming the volumes of the simulated cohort in `sim` by
 * paths relative to `to`, with the ratings beside it. */
static void user_cohort(const char *sim, const char *to)
{
    cbq_error err = {0};
    assert_int_equal(cbq_mkdir_p(to, &err), CBQ_OK);
    char in_path[1400], out_path[1400], line[1024];
    snprintf(in_path, sizeof in_path, "%s/cohort.csv", sim);
    snprintf(out_path, sizeof out_path, "%s/cohort.csv", to);
    FILE *in = fopen(in_path, "r"), *out = fopen(out_path, "w");
    assert_non_null(in);
    assert_non_null(out);
    assert_non_null(fgets(line, sizeof line, in));
    fputs(line, out); /* volume_id,path,mask,split */
    char id[256], vol[256], mask[256], split[64];
    while (fgets(line, sizeof line, in)) {
        assert_int_equal(sscanf(line, "%255[^,],%255[^,],%255[^,],%63s", id, vol, mask, split), 4);
        fprintf(out, "%s,../simulated/cohort/sim/%s,../simulated/cohort/sim/%s,%s\n", id, vol, mask,
                split);
    }
    fclose(in);
    fclose(out);
    snprintf(in_path, sizeof in_path, "%s/ratings.csv", sim);
    snprintf(out_path, sizeof out_path, "%s/ratings.csv", to);
    in = fopen(in_path, "r");
    out = fopen(out_path, "w");
    assert_non_null(in);
    assert_non_null(out);
    size_t got;
    while ((got = fread(line, 1, sizeof line, in)) > 0)
        assert_int_equal(fwrite(line, 1, got, out), got);
    fclose(in);
    fclose(out);
}

static void run_study(const char *json, const char *out, study_inputs used[CBQ_STAGE_COUNT])
{
    cbq_study_config cfg;
    cbq_study_config_defaults(&cfg);
    cbq_error err = {0};
    assert_int_equal(cbq_study_config_parse(&cfg, json, "test", NULL, &err), CBQ_OK);
    snprintf(cfg.out, sizeof cfg.out, "%s", out);
    cfg.threads = 1;
    cfg.quiet = 1;
    cbq_study_summary summary;
    int rc = study_run(&cfg, NULL, &summary, used, &err);
    if (rc != CBQ_OK)
        fprintf(stderr, "study: %s\n", err.msg);
    assert_int_equal(rc, CBQ_OK);
    for (int s = 0; s < CBQ_STAGE_COUNT; s++)
        assert_int_equal(summary.ran[s], 1);
}

#define RECIPE                                                                                   \
    "\"width\": 4, \"depth\": 2, \"input_size\": 16, \"epochs\": 1, \"batch\": 8"
#define SMALL                                                                                    \
    "\"stats\": {\"bootstrap\": 20, \"permutations\": 20}, \"sanity\": {\"max_slices\": 2, "     \
    "\"permuted_labels\": %s}"

/* Every stage reads, over two studies that between them take each
 * conditional read (a simulated cohort whose slices are picked by the
 * label volumes and a label-permuted control; then that cohort given as
 * the user's, with its labels.json beside the label volumes, and the first
 * study's model), exactly what it declares: no input left out of the
 * identity, none hashed for nothing. */
static void test_studies_read_what_stages_declare(void **state)
{
    (void)state;
    char out1[1100], out2[1100], json[8192], from[1300], to[1300];
    snprintf(out1, sizeof out1, "%s/simulated", root);
    snprintf(json, sizeof json,
             "{\"cohort\": {\"simulate\": {\"volumes\": 16, \"size\": 32, \"slices\": 12, "
             "\"spacing\": 8, \"test\": 3, \"raters\": 2}}, "
             "\"train\": {" RECIPE ", \"slices\": \"structures\"}, " SMALL "}",
             "true");
    study_inputs used[CBQ_STAGE_COUNT], all[CBQ_STAGE_COUNT];
    run_study(json, out1, used);
    memcpy(all, used, sizeof all);

    /* The simulated cohort as the user's, in a folder of its own, so that
     * the stages find the labels.json beside the label volumes themselves. */
    snprintf(from, sizeof from, "%s/cohort/sim", out1);
    snprintf(to, sizeof to, "%s/user", root);
    user_cohort(from, to);
    snprintf(out2, sizeof out2, "%s/given", root);
    snprintf(json, sizeof json,
             "{\"cohort\": {\"csv\": \"%s/cohort.csv\"}, \"train\": {" RECIPE
             ", \"model\": \"%s/train/model\"}, " SMALL "}",
             to, out1, "false");
    run_study(json, out2, used);
    for (int s = 0; s < CBQ_STAGE_COUNT; s++) {
        all[s].stages |= used[s].stages;
        all[s].outside |= used[s].outside;
    }
    for (int s = 0; s < CBQ_STAGE_COUNT; s++) {
        study_inputs declared = study_stage_declared((cbq_study_stage)s);
        if (all[s].stages != declared.stages || all[s].outside != declared.outside)
            fprintf(stderr, "stage %s: read folders 0x%x and outside 0x%x, declares 0x%x, 0x%x\n",
                    cbq_study_stage_name((cbq_study_stage)s), all[s].stages, all[s].outside,
                    declared.stages, declared.outside);
        assert_int_equal(all[s].stages, declared.stages);
        assert_int_equal(all[s].outside, declared.outside);
    }
}

/* How many lines of src/study/NAME match `re` (printed when `show`). */
static int scan_file(const char *name, const regex_t *re, int show)
{
    char path[2048], line[4096];
    snprintf(path, sizeof path, "%s/src/study/%s", CBQ_SOURCE_DIR, name);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    int hits = 0;
    for (int no = 1; fgets(line, sizeof line, fp); no++)
        if (regexec(re, line, 0, NULL, 0) == 0) {
            if (show)
                fprintf(stderr, "src/study/%s:%d: %s", name, no, line);
            hits++;
        }
    fclose(fp);
    return hits;
}

/* Only the pipeline and the accessors touch the stage folders' paths, the
 * output folder and the user's files' options: a stage that built such a
 * path itself would read around its declaration. */
static void test_no_stage_builds_input_paths_by_hand(void **state)
{
    (void)state;
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "->dir\\[|cfg->out[^_a-z]|"
                             "->(cohort\\.(csv|ratings|raters)|train\\.model)[[:space:]]*[,)]",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    /* The pipeline and the accessors own these paths; config.c parses the
     * options. */
    static const char *const owners[] = {"pipeline.c", "stage_inputs.c", "config.c"};
    char dir_path[2048];
    snprintf(dir_path, sizeof dir_path, "%s/src/study", CBQ_SOURCE_DIR);
    DIR *d = opendir(dir_path);
    assert_non_null(d);
    int hits = 0, files = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 2, ".c") != 0)
            continue;
        int owner = 0;
        for (size_t i = 0; i < sizeof owners / sizeof owners[0]; i++)
            owner |= strcmp(e->d_name, owners[i]) == 0;
        if (!owner) {
            hits += scan_file(e->d_name, &re, 1);
            files++;
        }
    }
    closedir(d);
    assert_true(files > 20);
    assert_int_equal(hits, 0);
    /* the scan finds what it looks for */
    assert_true(scan_file("pipeline.c", &re, 0) > 0);
    regfree(&re);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_undeclared_folder_is_refused),
        cmocka_unit_test(test_undeclared_outside_file_is_refused),
        cmocka_unit_test(test_cohort_rows_hold_only_asked_paths),
        cmocka_unit_test(test_outputs_go_to_own_folder),
        cmocka_unit_test(test_no_stage_builds_input_paths_by_hand),
        cmocka_unit_test(test_studies_read_what_stages_declare),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
