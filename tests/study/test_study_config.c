/* test_study_config.c - the study configuration: defaults, the printed full
 * config reads back to the same options, unknown keys and bad values fail
 * naming the key, and each option changes the identity of exactly the stages
 * documented to read it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/study.h"

static void test_defaults_round_trip(void **state)
{
    (void)state;
    cbq_study_config a, b;
    cbq_study_config_defaults(&a);
    assert_int_equal(a.train.epochs > 0, 1);
    assert_string_equal(a.categories, "parotid,submandibular,larynx,mandible,overall");
    char *json = cbq_study_config_json(&a);
    assert_non_null(json);
    /* Reading the printed config over a differently initialised one restores it. */
    memset(&b, 0x5a, sizeof b);
    cbq_study_config_defaults(&b);
    b.train.epochs = 99;
    snprintf(b.categories, sizeof b.categories, "x");
    cbq_error err = {0};
    assert_int_equal(cbq_study_config_parse(&b, json, "printed", NULL, &err), CBQ_OK);
    assert_memory_equal(&a, &b, sizeof a);
    free(json);
}

static void expect_error(const char *json, const char *needle)
{
    cbq_study_config cfg;
    cbq_study_config_defaults(&cfg);
    cbq_error err = {0};
    int rc = cbq_study_config_parse(&cfg, json, "study.json", NULL, &err);
    assert_int_not_equal(rc, CBQ_OK);
    if (!strstr(err.msg, needle))
        fail_msg("message '%s' lacks '%s'", err.msg, needle);
    assert_non_null(strstr(err.msg, "study.json"));
}

static void test_errors_name_the_key(void **state)
{
    (void)state;
    expect_error("{\"train\": {\"epoch\": 3}}", "train.epoch");
    expect_error("{\"trian\": {}}", "trian");
    expect_error("{\"train\": {\"epochs\": 0}}", "train.epochs");
    expect_error("{\"train\": {\"epochs\": 2.5}}", "train.epochs");
    expect_error("{\"train\": {\"epochs\": \"3\"}}", "train.epochs");
    expect_error("{\"train\": 3}", "train");
    expect_error("{\"train\": {\"slices\": \"some\"}}", "train.slices");
    expect_error("{\"train\": {\"augment\": 1}}", "train.augment");
    expect_error("{\"categories\": []}", "categories");
    expect_error("{\"categories\": [\"a,b\"]}", "categories");
    expect_error("{\"train\": {\"hu_min\": 500, \"hu_max\": 100}}", "train.hu_max");
    expect_error("{\"cohort\": {\"split_train\": 0.9, \"split_val\": 0.2}}", "split");
    expect_error("{\"seed\": -1}", "seed");
    expect_error("{\"sanity\": {\"methods\": \"gradcam,gradcm\"}}", "gradcm");
    expect_error("{\"sanity\": {\"methods\": \",\"}}", "sanity.methods");
    expect_error("{\"sanity\": {\"threshold\": 1.5}}", "sanity.threshold");
    expect_error("[1, 2]", "object");
    expect_error("{\n\"seed\": 1,\n oops}", "line 3");
}

static void test_values_and_paths(void **state)
{
    (void)state;
    cbq_study_config cfg;
    cbq_study_config_defaults(&cfg);
    cbq_error err = {0};
    const char *json = "{\"seed\": 42, \"categories\": [\"a\", \"b\"],"
                       " \"cohort\": {\"csv\": \"data/cohort.csv\", \"simulate\": {\"volumes\": 12}},"
                       " \"train\": {\"model\": \"/abs/model\", \"augment\": false, \"lr\": 0.01}}";
    assert_int_equal(cbq_study_config_parse(&cfg, json, "s.json", "conf", &err), CBQ_OK);
    assert_int_equal(cfg.seed, 42);
    assert_string_equal(cfg.categories, "a,b");
    assert_string_equal(cfg.cohort.csv, "conf/data/cohort.csv");
    assert_string_equal(cfg.train.model, "/abs/model");
    assert_int_equal(cfg.cohort.simulate.volumes, 12);
    assert_int_equal(cfg.train.augment, 0);
    assert_true(cfg.train.lr == 0.01);
    char names[16][64];
    assert_int_equal(cbq_study_categories(&cfg, names, 16), 2);
    assert_string_equal(names[1], "b");
}

/* Values that used to pass the configuration and fail (or do something
 * else) only when a stage reached them, hours later. */
static void test_checked_when_read(void **state)
{
    (void)state;
    expect_error("{\"attrib\": {\"method\": \"gradcm\"}}",
                 "attrib.method: unknown method 'gradcm' (one of gradcam,");
    expect_error("{\"attrib\": {\"target_layer\": \"block9.relu2\"}}",
                 "attrib.target_layer: 'block9.relu2' is not a layer with a spatial grid of the "
                 "iqnet-s model");
    expect_error("{\"attrib\": {\"target_layer\": \"head\"}}", "'head' is not a layer");
    expect_error("{\"train\": {\"depth\": 2}, \"attrib\": {\"target_layer\": \"block3.relu2\"}}",
                 "one of block1.conv1,");
    expect_error("{\"train\": {\"arch\": \"resnet50\"}}",
                 "train.arch: unknown architecture 'resnet50' (one of iqnet-s, resnet18, resnet34, or a model.json file)");
    expect_error("{\"categories\": [\"a\", \"b\", \"a\"]}", "categories: 'a' appears twice");
    expect_error("{\"categories\": [\"../x\"]}", "'../x' contains a path separator");
    expect_error("{\"categories\": [\"a\\\\b\"]}", "contains a path separator");
    expect_error("{\"categories\": [\"..\"]}", "'..' is '.' or '..'");
    expect_error("{\"categories\": [\".\"]}", "'.' is '.' or '..'");
    expect_error("{\"categories\": [\"a\\tb\"]}", "contains a control character");
    expect_error("{\"seed\": 1, \"seed\": 2}", "'seed' appears twice");
    expect_error("{\"train\": {\"epochs\": 3, \"epochs\": 30}}", "'train.epochs' appears twice");
    expect_error("{\"train\": {\"epochs\": 3}, \"train\": {\"batch\": 4}}", "'train' appears twice");

    /* What is fine stays fine: a real layer of the preset (also one whose
     * depth the config changes), and a given model's layer, checked when
     * that model is read. */
    cbq_study_config cfg;
    cbq_error err = {0};
    cbq_study_config_defaults(&cfg);
    assert_int_equal(cbq_study_config_parse(&cfg, "{\"attrib\": {\"target_layer\": "
                                                  "\"block2.conv1\", \"method\": \"hirescam\"}}",
                                            "s.json", NULL, &err), CBQ_OK);
    cbq_study_config_defaults(&cfg);
    assert_int_equal(cbq_study_config_parse(&cfg, "{\"train\": {\"depth\": 2}, \"attrib\": "
                                                  "{\"target_layer\": \"block2.relu2\"}}",
                                            "s.json", NULL, &err), CBQ_OK);
    cbq_study_config_defaults(&cfg);
    assert_int_equal(cbq_study_config_parse(&cfg, "{\"train\": {\"model\": \"m\"}, \"attrib\": "
                                                  "{\"target_layer\": \"custom.layer\"}}",
                                            "s.json", NULL, &err), CBQ_OK);
}

/* Hash of every stage under cfg. */
static void all_hashes(const cbq_study_config *cfg, char h[CBQ_STAGE_COUNT][65])
{
    for (int s = 0; s < CBQ_STAGE_COUNT; s++)
        cbq_study_config_stage_hash(cfg, (cbq_study_stage)s, h[s]);
}

/* Which stages' option hashes change when `json` is applied. */
static unsigned changed_by(const char *json)
{
    cbq_study_config a, b;
    cbq_study_config_defaults(&a);
    cbq_study_config_defaults(&b);
    cbq_error err = {0};
    assert_int_equal(cbq_study_config_parse(&b, json, "t", NULL, &err), CBQ_OK);
    char ha[CBQ_STAGE_COUNT][65], hb[CBQ_STAGE_COUNT][65];
    all_hashes(&a, ha);
    all_hashes(&b, hb);
    unsigned mask = 0;
    for (int s = 0; s < CBQ_STAGE_COUNT; s++)
        if (strcmp(ha[s], hb[s]) != 0)
            mask |= 1u << s;
    return mask;
}

#define BIT(s) (1u << CBQ_STAGE_##s)

static void test_stage_hashes_follow_dependencies(void **state)
{
    (void)state;
    assert_int_equal(changed_by("{\"atypical\": {\"mad_threshold\": 3}}"), BIT(ATYPICAL));
    /* The train recipe also trains the sanity stage's permuted-labels model. */
    assert_int_equal(changed_by("{\"train\": {\"epochs\": 3}}"), BIT(TRAIN) | BIT(SANITY));
    assert_int_equal(changed_by("{\"train\": {\"permute_labels\": true}}"), BIT(TRAIN));
    assert_int_equal(changed_by("{\"sanity\": {\"max_slices\": 4}}"), BIT(SANITY));
    assert_int_equal(changed_by("{\"attrib\": {\"method\": \"hirescam\"}}"),
                     BIT(ATTRIB) | BIT(SANITY));
    assert_int_equal(changed_by("{\"stats\": {\"bootstrap\": 99}}"), BIT(STATS));
    assert_int_equal(changed_by("{\"report\": {\"title\": \"x\"}}"), BIT(REPORT));
    assert_int_equal(changed_by("{\"attrib\": {\"save_maps\": false}}"), BIT(ATTRIB));
    assert_int_equal(changed_by("{\"cohort\": {\"simulate\": {\"slices\": 20}}}"), BIT(COHORT));
    /* Run options never change a stage's identity. */
    assert_int_equal(changed_by("{\"threads\": 1, \"quiet\": true, \"out\": \"elsewhere\"}"), 0);
    assert_int_equal(changed_by("{\"seed\": 5}"),
                     BIT(COHORT) | BIT(TRAIN) | BIT(ATTRIB) | BIT(STATS) | BIT(SANITY));
    /* Every option given at its default value: nothing changes. */
    cbq_study_config d;
    cbq_study_config_defaults(&d);
    char *json = cbq_study_config_json(&d);
    assert_non_null(json);
    assert_int_equal(changed_by(json), 0);
    free(json);
}

/* attrib.save_maps also takes "dicom" (with a cohort.csv of DICOM series):
 * read, printed and read back as such; it changes only the attrib stage's
 * identity; other words and the built-in NIfTI cohort are refused. */
static void test_save_maps_dicom(void **state)
{
    (void)state;
    const char *with_csv = "{\"cohort\": {\"csv\": \"c.csv\"}, \"attrib\": {\"save_maps\": %s}}";
    char json[256];
    cbq_study_config nifti, dicom, back;
    cbq_error err = {0};
    cbq_study_config_defaults(&nifti);
    cbq_study_config_defaults(&dicom);
    snprintf(json, sizeof json, with_csv, "true");
    assert_int_equal(cbq_study_config_parse(&nifti, json, "t", NULL, &err), CBQ_OK);
    snprintf(json, sizeof json, with_csv, "\"dicom\"");
    assert_int_equal(cbq_study_config_parse(&dicom, json, "t", NULL, &err), CBQ_OK);
    assert_int_equal(nifti.attrib.save_maps, 1);
    assert_int_equal(dicom.attrib.save_maps, CBQ_SAVE_MAPS_DICOM);
    char *printed = cbq_study_config_json(&dicom);
    assert_non_null(printed);
    cbq_study_config_defaults(&back);
    assert_int_equal(cbq_study_config_parse(&back, printed, "printed", NULL, &err), CBQ_OK);
    assert_int_equal(back.attrib.save_maps, CBQ_SAVE_MAPS_DICOM);
    free(printed);
    char ha[CBQ_STAGE_COUNT][65], hb[CBQ_STAGE_COUNT][65];
    all_hashes(&nifti, ha);
    all_hashes(&dicom, hb);
    for (int st = 0; st < CBQ_STAGE_COUNT; st++)
        assert_int_equal(strcmp(ha[st], hb[st]) != 0, st == CBQ_STAGE_ATTRIB);
    expect_error("{\"attrib\": {\"save_maps\": \"nifti\"}}", "attrib.save_maps");
    expect_error("{\"attrib\": {\"save_maps\": \"dicom\"}}", "simulated cohort");
}

static void test_load_file_resolves_relative_to_it(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/study_config", base ? base : "tmp");
    snprintf(path, sizeof path, "%s/study.json", dir);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("{\"cohort\": {\"csv\": \"c.csv\"}}", fp);
    fclose(fp);
    cbq_study_config cfg;
    cbq_study_config_defaults(&cfg);
    cbq_error err = {0};
    assert_int_equal(cbq_study_config_load(&cfg, path, &err), CBQ_OK);
    char want[1200];
    snprintf(want, sizeof want, "%s/c.csv", dir);
    assert_string_equal(cfg.cohort.csv, want);
    snprintf(path, sizeof path, "%s/missing.json", dir);
    assert_int_equal(cbq_study_config_load(&cfg, path, &err), CBQ_ERR_IO);
    assert_non_null(strstr(err.msg, "missing.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_round_trip),
        cmocka_unit_test(test_errors_name_the_key),
        cmocka_unit_test(test_values_and_paths),
        cmocka_unit_test(test_checked_when_read),
        cmocka_unit_test(test_stage_hashes_follow_dependencies),
        cmocka_unit_test(test_load_file_resolves_relative_to_it),
        cmocka_unit_test(test_save_maps_dicom),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
