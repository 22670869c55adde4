/* test_cohort_read.c - the one cohort reader (cohort.h: paths resolved
 * against the CSV's folder, mask and RTSTRUCT columns, labels.json beside
 * the CSV, split column and --split selection, unsafe ids, errors naming
 * file and line) and the relative paths that keep a study folder movable,
 * also through symbolic links. Expected values are worked out by hand
 * below. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/cohort.h"

static char dir[1024];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/cbq_cohort", base ? base : "tmp");
    cbq_error err = {0};
    return cbq_mkdir_p(dir, &err);
}

static void write_csv(const char *name, const char *text, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void relative(const char *from, const char *to, const char *want)
{
    char out[4096], from_path[2048], to_path[2048];
    cbq_error err = {0};
    snprintf(from_path, sizeof from_path, "%s/rel/%s", dir, from);
    snprintf(to_path, sizeof to_path, "%s/rel/%s", dir, to);
    if (cbq_path_relative(out, sizeof out, from_path, to_path, &err) != CBQ_OK)
        fail_msg("%s -> %s: %s", from, to, err.msg);
    assert_string_equal(out, want);
}

static void make_tree(const char *const *folders, size_t n)
{
    cbq_error err = {0};
    char path[2048];
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/rel/%s", dir, folders[i]);
        assert_int_equal(cbq_mkdir_p(path, &err), CBQ_OK);
    }
}

/* Paths are resolved as the system resolves them, so "from/result" opens
 * "to" also when a folder on the way is a symbolic link. */
static void test_relative_paths(void **state)
{
    (void)state;
    static const char *const folders[] = {"a/out/cohort", "a/out/sim", "a/out/c/d", "a/data",
                                          "a/b", "a/outer", "a/deep/er", "a/deep/data"};
    make_tree(folders, sizeof folders / sizeof *folders);
    char link[2048], target[2048];
    snprintf(link, sizeof link, "%s/rel/a/lnk", dir);
    snprintf(target, sizeof target, "%s/rel/a/deep/er", dir);
    unlink(link);
    assert_int_equal(symlink(target, link), 0);
    snprintf(link, sizeof link, "%s/rel/a/data/link.nii.gz", dir);
    unlink(link);
    assert_int_equal(symlink("v1.nii.gz", link), 0);

    relative("a/out/cohort", "a/data/v1.nii.gz", "../../data/v1.nii.gz");
    relative("a/out", "a/out/sim/v1.nii", "sim/v1.nii");
    relative("a/out/", "a/out/x", "x");
    relative("a/b/../out/./c", "a/out/c/d", "d");
    relative("a/outer", "a/out/x", "../out/x"); /* no false common prefix "out" */
    relative("a/b", "a/b", ".");
    /* from a folder reached through a link (a/lnk -> a/deep/er) */
    relative("a/lnk", "a/data/v1.nii.gz", "../../data/v1.nii.gz");
    /* ".." after a link leaves the link's target, not the link's folder */
    relative("a/out", "a/lnk/../data/v1.nii.gz", "../deep/data/v1.nii.gz");
    /* a volume that is itself a link keeps its own name */
    relative("a/out/cohort", "a/data/link.nii.gz", "../../data/link.nii.gz");

    char out[4096], from_path[2048], to_path[2048];
    cbq_error err = {0};
    snprintf(from_path, sizeof from_path, "%s/rel/a/out", dir);
    snprintf(to_path, sizeof to_path, "%s/rel/a/nowhere/v.nii", dir);
    assert_int_not_equal(cbq_path_relative(out, sizeof out, from_path, to_path, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "nowhere/v.nii"));
}

static void test_read_with_split(void **state)
{
    (void)state;
    char path[1200];
    write_csv("c1.csv",
              "\xEF\xBB\xBFpath,volume_id,split,mask\r\n"
              "vols/a.nii.gz,a,train,labs/a.nii.gz\r\n"
              "/abs/b.nii,b,test,\r\n"
              "c_dicom,c,val,\r\n",
              path, sizeof path);
    cbq_cohort c;
    cbq_error err = {0};
    assert_int_equal(cbq_cohort_read(&c, path, &err), CBQ_OK);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.has_split, 1);
    char want[1300];
    snprintf(want, sizeof want, "%s/vols/a.nii.gz", dir);
    assert_string_equal(c.v[0].path, want);
    snprintf(want, sizeof want, "%s/labs/a.nii.gz", dir);
    assert_string_equal(c.v[0].mask, want);
    assert_string_equal(c.v[1].path, "/abs/b.nii");
    assert_string_equal(c.v[1].mask, "");
    assert_int_equal(c.v[0].split, CBQ_SPLIT_TRAIN);
    assert_int_equal(c.v[1].split, CBQ_SPLIT_TEST);
    assert_int_equal(c.v[2].split, CBQ_SPLIT_VAL);
    cbq_cohort_free(&c);
}

static void expect_error(const char *text, const char *needle)
{
    char path[1200];
    write_csv("bad.csv", text, path, sizeof path);
    cbq_cohort c;
    cbq_error err = {0};
    assert_int_not_equal(cbq_cohort_read(&c, path, &err), CBQ_OK);
    if (!strstr(err.msg, needle) || !strstr(err.msg, "bad.csv"))
        fail_msg("message '%s' lacks '%s' or the file name", err.msg, needle);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("volume_id,path,split\na,a.nii,train\nb,b.nii,tset\n", ":3");
    expect_error("volume_id,path,split\na,a.nii,train\nb,b.nii,tset\n", "tset");
    expect_error("volume_id,path\na,a.nii\na,b.nii\n", "duplicate");
    expect_error("volume_id,file\na,a.nii\n", "path");
    expect_error("volume_id,path\na,\n", "path");
    expect_error("volume_id,path\n", "no volumes");
}

static void test_missing_split_means_none(void **state)
{
    (void)state;
    char path[1200];
    write_csv("c2.csv", "volume_id,path,split\na,a.nii,train\nb,b.nii,\n", path, sizeof path);
    cbq_cohort c;
    cbq_error err = {0};
    assert_int_equal(cbq_cohort_read(&c, path, &err), CBQ_OK);
    assert_int_equal(c.has_split, 0); /* one row without: the study assigns all */
    cbq_cohort_free(&c);
}

/* RTSTRUCT column, the labels.json beside the CSV, each row's line. */
static void test_rtstruct_labels_lines(void **state)
{
    (void)state;
    char path[1200], labels[1200];
    write_csv("labels.json", "{\"1\": \"parotid_l\"}\n", labels, sizeof labels);
    write_csv("c3.csv",
              "volume_id,path,rtstruct,mask\n"
              "a,dicom/a,rt/a.dcm,\n"
              "\n"
              "\"b\",b.nii,,labs/b.nii\n",
              path, sizeof path);
    cbq_cohort c;
    cbq_error err = {0};
    assert_int_equal(cbq_cohort_read(&c, path, &err), CBQ_OK);
    assert_int_equal(c.n, 2);
    char want[1300];
    snprintf(want, sizeof want, "%s/rt/a.dcm", dir);
    assert_string_equal(c.v[0].rtstruct, want);
    assert_string_equal(c.v[1].rtstruct, "");
    assert_string_equal(c.labels_json, labels);
    assert_int_equal(c.v[0].line, 2);
    assert_int_equal(c.v[1].line, 4); /* after the blank line */
    assert_int_equal(c.has_split_column, 0);
    assert_int_equal(c.has_split, 0);
    assert_string_equal(c.csv, path);
    char got[4096];
    assert_int_equal(cbq_cohort_labels_json(&c, &c.v[1], got, sizeof got), 1);
    assert_string_equal(got, labels); /* the cohort's, before the mask's sidecar */
    cbq_cohort_free(&c);
    remove(labels);
}

/* Ids become file names: the reader refuses what cannot be one. */
static void test_unsafe_ids(void **state)
{
    (void)state;
    expect_error("volume_id,path\nok,a.nii\n../x,b.nii\n", "bad.csv:3");
    expect_error("volume_id,path\nok,a.nii\n../x,b.nii\n", "contains '/'");
    expect_error("volume_id,path\n..,a.nii\n", "is a folder name");
    expect_error("volume_id,path,rtstruct\n,a.nii,\n", "bad.csv:2");
}

/* --split: a name of a split or all; the file must have the column. */
static void test_split_selection(void **state)
{
    (void)state;
    char path[1200];
    write_csv("c4.csv", "volume_id,path,split\na,a.nii,train\nb,b.nii,test\nc,c.nii,test\n", path,
              sizeof path);
    cbq_cohort c;
    cbq_error err = {0};
    assert_int_equal(cbq_cohort_read(&c, path, &err), CBQ_OK);
    size_t n = 99;
    assert_int_equal(cbq_cohort_count_split(&c, "test", &n, &err), CBQ_OK);
    assert_int_equal(n, 2);
    assert_int_equal(cbq_cohort_count_split(&c, "all", &n, &err), CBQ_OK);
    assert_int_equal(n, 3);
    assert_int_equal(cbq_cohort_count_split(&c, NULL, &n, &err), CBQ_OK);
    assert_int_equal(n, 3);
    assert_int_not_equal(cbq_cohort_count_split(&c, "val", &n, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "no volumes with split val"));
    assert_int_not_equal(cbq_cohort_count_split(&c, "tset", &n, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "'tset'"));
    assert_int_equal(cbq_cohort_in_split(&c, 0, "test"), 0);
    assert_int_equal(cbq_cohort_in_split(&c, 1, "test"), 1);
    assert_int_equal(cbq_cohort_in_split(&c, 0, "all"), 1);
    assert_string_equal(cbq_split_name(c.v[0].split), "train");
    cbq_cohort_free(&c);

    write_csv("c5.csv", "volume_id,path\na,a.nii\n", path, sizeof path);
    assert_int_equal(cbq_cohort_read(&c, path, &err), CBQ_OK);
    assert_int_not_equal(cbq_cohort_count_split(&c, "test", &n, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "has no 'split' column"));
    assert_non_null(strstr(err.msg, "c5.csv"));
    cbq_cohort_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_read_with_split),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_missing_split_means_none),
        cmocka_unit_test(test_rtstruct_labels_lines),
        cmocka_unit_test(test_unsafe_ids),
        cmocka_unit_test(test_split_selection),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
