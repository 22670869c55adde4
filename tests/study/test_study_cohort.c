/* test_study_cohort.c - the study's cohort reader (paths resolved against
 * the CSV's folder, split column, errors naming file and line) and the
 * relative paths that keep a study folder movable. Expected values are
 * worked out by hand below. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/atomic_file.h"
#include "study/cohort.h"

static char dir[1024];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/study_cohort", base ? base : "tmp");
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
    char out[4096];
    cbq_error err = {0};
    assert_int_equal(study_relative_path(out, sizeof out, from, to, &err), CBQ_OK);
    assert_string_equal(out, want);
}

static void test_relative_paths(void **state)
{
    (void)state;
    relative("/a/out/cohort", "/a/data/v1.nii.gz", "../../data/v1.nii.gz");
    relative("/a/out", "/a/out/sim/v1.nii", "sim/v1.nii");
    relative("/a/out/", "/a/out/x", "x");
    relative("/a/b/../out/./c", "/a/out/c/d", "d");
    relative("/a/outer", "/a/out/x", "../out/x");   /* no false common prefix "out" */
    relative("/a/b", "/a/b", ".");
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
    study_cohort c;
    cbq_error err = {0};
    assert_int_equal(study_cohort_read(&c, path, &err), CBQ_OK);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.has_split, 1);
    char want[1300];
    snprintf(want, sizeof want, "%s/vols/a.nii.gz", dir);
    assert_string_equal(c.v[0].path, want);
    snprintf(want, sizeof want, "%s/labs/a.nii.gz", dir);
    assert_string_equal(c.v[0].mask, want);
    assert_string_equal(c.v[1].path, "/abs/b.nii");
    assert_string_equal(c.v[1].mask, "");
    assert_int_equal(c.v[0].split, SPLIT_TRAIN);
    assert_int_equal(c.v[1].split, SPLIT_TEST);
    assert_int_equal(c.v[2].split, SPLIT_VAL);
    study_cohort_free(&c);
}

static void expect_error(const char *text, const char *needle)
{
    char path[1200];
    write_csv("bad.csv", text, path, sizeof path);
    study_cohort c;
    cbq_error err = {0};
    assert_int_not_equal(study_cohort_read(&c, path, &err), CBQ_OK);
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
    study_cohort c;
    cbq_error err = {0};
    assert_int_equal(study_cohort_read(&c, path, &err), CBQ_OK);
    assert_int_equal(c.has_split, 0); /* one row without: the study assigns all */
    study_cohort_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_read_with_split),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_missing_split_means_none),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
