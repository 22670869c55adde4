/* test_ratings_csv.c - cbq_ratings_read on both layouts of ratings.csv: the
 * wide sheet's blank cells and blank rows are "not rated", names enter in
 * the order of their first rating, a blank score in the long layout is
 * skipped, and a header that fits neither layout is refused with every
 * missing column named and both expected headers shown. ratings_wide_oracle.py
 * compares whole consensus files of the two layouts. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/ratings_csv.h"

/* Writes text to a temporary file in CBQ_TEST_TMP; its name into path. */
static void write_sheet(char *path, size_t cap, const char *text)
{
    const char *dir = getenv("CBQ_TEST_TMP");
    cbq_error err = {0};
    assert_int_equal(cbq_mkdir_p(dir ? dir : ".", &err), CBQ_OK);
    snprintf(path, cap, "%s/ratings_XXXXXX", dir ? dir : ".");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* Reads text as ratings.csv; the status, with *r filled on success. */
static int read_text(const char *text, cbq_ratings *r, cbq_error *err)
{
    char path[4096];
    write_sheet(path, sizeof path, text);
    int rc = cbq_ratings_read(r, path, NULL, err);
    unlink(path);
    return rc;
}

static double score_of(const cbq_ratings *r, size_t cat, size_t vol, size_t rater)
{
    return cbq_ratings_score(r, cat, vol, rater);
}

static void test_wide_with_blanks(void **state)
{
    (void)state;
    /* b's first row rates nothing, so the raters enter as a, c, b; the
     * larynx column is blank but for v2; the ",,,," row is skipped. */
    const char *sheet = "rater,parotid,volume_id,larynx\n"
                        "b,,v1,\n"
                        "a,3,v1,\n"
                        ",,,\n"
                        "c, 4 ,v1,  \n"
                        "b,2,v2,5\n";
    cbq_ratings r;
    cbq_error err = {0};
    assert_int_equal(read_text(sheet, &r, &err), CBQ_OK);
    assert_int_equal(r.n_volumes, 2);
    assert_int_equal(r.n_raters, 3);
    assert_int_equal(r.n_categories, 2);
    assert_string_equal(r.raters[0], "a");
    assert_string_equal(r.raters[1], "c");
    assert_string_equal(r.raters[2], "b");
    assert_string_equal(r.categories[0], "parotid");
    assert_string_equal(r.categories[1], "larynx");
    assert_float_equal(score_of(&r, 0, 0, 0), 3, 0);
    assert_float_equal(score_of(&r, 0, 0, 1), 4, 0);
    assert_true(isnan(score_of(&r, 0, 0, 2)));
    assert_float_equal(score_of(&r, 0, 1, 2), 2, 0);
    assert_float_equal(score_of(&r, 1, 1, 2), 5, 0);
    for (size_t k = 0; k < 3; k++)
        assert_true(isnan(score_of(&r, 1, 0, k)));
    cbq_ratings_free(&r);
}

static void test_long_blank_score_is_not_rated(void **state)
{
    (void)state;
    const char *sheet = "volume_id,rater,category,score\n"
                        "v1,a,parotid,\n"
                        "v1,b,parotid,2\n"
                        ",,,\n";
    cbq_ratings r;
    cbq_error err = {0};
    assert_int_equal(read_text(sheet, &r, &err), CBQ_OK);
    assert_int_equal(r.n_raters, 1);
    assert_string_equal(r.raters[0], "b");
    assert_float_equal(score_of(&r, 0, 0, 0), 2, 0);
    cbq_ratings_free(&r);
}

/* The error of text must contain every fragment. */
static void expect_error(const char *text, const char *const *fragments, size_t n)
{
    cbq_ratings r;
    cbq_error err = {0};
    assert_int_equal(read_text(text, &r, &err), CBQ_ERR_FORMAT);
    for (size_t i = 0; i < n; i++)
        if (!strstr(err.msg, fragments[i]))
            fail_msg("message '%s' lacks '%s'", err.msg, fragments[i]);
    assert_int_equal(r.n_volumes, 0);
    assert_null(r.score);
}

static void test_header_errors(void **state)
{
    (void)state;
    const char *const both[] = {":1: missing columns 'volume_id', 'rater' in the header",
                                "'volume_id,rater,category,score'",
                                "'volume_id,rater,<category>,<category>,...'"};
    expect_error("id,reader,parotid\nv1,a,3\n", both, 3);
    const char *const long_missing[] = {"missing columns 'rater', 'score'"};
    expect_error("volume_id,category\nv1,parotid\n", long_missing, 1);
    const char *const no_category[] = {":1: no category column"};
    expect_error("volume_id,rater\nv1,a\n", no_category, 1);
    const char *const bad_category[] = {":1: column 3: category '../x' contains '/'"};
    expect_error("volume_id,rater,../x\nv1,a,3\n", bad_category, 1);
    const char *const all_blank[] = {":2: no ratings after the header (every score is blank)"};
    expect_error("volume_id,rater,parotid\nv1,a,\n", all_blank, 1);
}

static void test_wide_cell_errors(void **state)
{
    (void)state;
    const char *const duplicate[] = {":3: column 3 (parotid): duplicate rating of volume 'v1' by "
                                     "rater 'a' in category 'parotid' (first on line 2)"};
    expect_error("volume_id,rater,parotid\nv1,a,3\nv1,a,4\n", duplicate, 1);
    const char *const text[] = {":2: column 4 (larynx): 'good' is not a finite number"};
    expect_error("volume_id,rater,parotid,larynx\nv1,a,3,good\n", text, 1);
    const char *const empty_rater[] = {":2: column 2 (rater): empty field"};
    expect_error("volume_id,rater,parotid\nv1,,3\n", empty_rater, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wide_with_blanks),
        cmocka_unit_test(test_long_blank_score_is_not_rated),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_wide_cell_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
