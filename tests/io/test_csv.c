/* test_csv.c - the RFC 4180 reader and writer: quoting, BOM, CRLF, embedded
 * newlines, errors naming file:line:column, and number round-trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/csv.h"
#include "cbctiq/rng.h"

static cbq_csv parse_ok(const char *text)
{
    cbq_csv t;
    cbq_error err = {0};
    int rc = cbq_csv_parse(&t, text, strlen(text), "t.csv", &err);
    if (rc != CBQ_OK)
        fail_msg("unexpected error: %s", err.msg);
    return t;
}

static void expect_error(const char *text, const char *fragment)
{
    cbq_csv t;
    cbq_error err = {0};
    assert_int_not_equal(cbq_csv_parse(&t, text, strlen(text), "bad.csv", &err), CBQ_OK);
    if (!strstr(err.msg, fragment))
        fail_msg("message '%s' lacks '%s'", err.msg, fragment);
    cbq_csv_free(&t);
}

static void test_quotes_bom_crlf(void **state)
{
    (void)state;
    cbq_csv t = parse_ok("\xEF\xBB\xBFvolume_id,note,score\r\n"
                         "v1,\"a, b\",3\r\n"
                         "\r\n"
                         "v2,\"say \"\"hi\"\"\nnext\",4.5\r\n"
                         "v3,,1");
    assert_int_equal(t.n_rows, 3);
    assert_int_equal(t.n_cols, 3);
    assert_int_equal(cbq_csv_col(&t, "volume_id"), 0);
    assert_int_equal(cbq_csv_col(&t, "missing"), -1);
    assert_string_equal(cbq_csv_cell(&t, 0, 1), "a, b");
    assert_string_equal(cbq_csv_cell(&t, 1, 1), "say \"hi\"\nnext");
    assert_string_equal(cbq_csv_cell(&t, 2, 1), "");
    assert_int_equal(t.line[0], 2);
    assert_int_equal(t.line[1], 4); /* the blank line 3 is skipped */
    assert_int_equal(t.line[2], 6); /* the quoted newline advanced the count */
    double v;
    cbq_error err = {0};
    assert_int_equal(cbq_csv_get_double(&t, 1, 2, &v, &err), CBQ_OK);
    assert_true(v == 4.5);
    assert_int_not_equal(cbq_csv_get_double(&t, 2, 1, &v, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "t.csv:6: column 2 (note)"));
    assert_int_not_equal(cbq_csv_get_double(&t, 0, 1, &v, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "t.csv:2: column 2 (note): 'a, b' is not a finite number"));
    long long iv;
    assert_int_equal(cbq_csv_get_int(&t, 0, 2, &iv, &err), CBQ_OK);
    assert_int_equal(iv, 3);
    cbq_csv_free(&t);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("a,b\n1,\"open\n2,3\n", "bad.csv:2: column 2: unterminated quoted field");
    expect_error("a,b\n1,2\n3\n", "bad.csv:3: column 2: this row has 1 field but the header has 2");
    expect_error("a,b\n1,2,3\n", "bad.csv:2: column 3: this row has 3 fields");
    expect_error("a,b\n1,\"x\"y\n", "bad.csv:2: column 2: unexpected character 'y'");
    expect_error("a,b\n1,x\"y\n", "bad.csv:2: column 2: a quote inside an unquoted field");
    expect_error("a,a\n1,2\n", "bad.csv:1: column 2: duplicate column name 'a'");
    expect_error("", "bad.csv:1: empty file");
}

static void test_writer_round_trip(void **state)
{
    (void)state;
    const char *dir = getenv("CBQ_TEST_TMP");
    char path[4096];
    snprintf(path, sizeof path, "%s/csv_round_trip.csv", dir ? dir : ".");
    cbq_error err = {0};
    cbq_mkdir_p(dir ? dir : ".", &err);
    static const char *const header[] = {"name", "value"};
    cbq_csv_writer w;
    assert_int_equal(cbq_csv_writer_open(&w, path, header, 2, &err), CBQ_OK);
    cbq_rng rng;
    cbq_rng_seed(&rng, 9);
    double values[200];
    for (int i = 0; i < 200; i++) {
        values[i] = ldexp(cbq_rng_normal(&rng), (int)cbq_rng_below(&rng, 200) - 100);
        cbq_csv_put_str(&w, i % 3 == 0 ? "with,comma" : i % 3 == 1 ? "with \"quote\"" : "line\nbreak");
        cbq_csv_put_double(&w, values[i]);
        assert_int_equal(cbq_csv_end_row(&w, &err), CBQ_OK);
    }
    cbq_csv_put_str(&w, "only one field");
    assert_int_not_equal(cbq_csv_end_row(&w, &err), CBQ_OK);
    cbq_csv_put_double(&w, NAN);
    assert_int_equal(cbq_csv_end_row(&w, &err), CBQ_OK);
    assert_int_equal(cbq_csv_writer_commit(&w, &err), CBQ_OK);
    cbq_csv t;
    assert_int_equal(cbq_csv_read(&t, path, &err), CBQ_OK);
    assert_int_equal(t.n_rows, 201);
    for (size_t i = 0; i < 200; i++) {
        double v;
        assert_int_equal(cbq_csv_get_double(&t, i, 1, &v, &err), CBQ_OK);
        assert_memory_equal(&v, &values[i], sizeof v); /* bit-exact */
        assert_string_equal(cbq_csv_cell(&t, i, 0),
                            i % 3 == 0 ? "with,comma" : i % 3 == 1 ? "with \"quote\"" : "line\nbreak");
    }
    assert_string_equal(cbq_csv_cell(&t, 200, 1), ""); /* NaN is written as missing */
    cbq_csv_free(&t);
    char buf[40];
    cbq_format_double(buf, sizeof buf, 0.1);
    assert_string_equal(buf, "0.1"); /* shortest form, not 0.10000000000000001 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quotes_bom_crlf),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_writer_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
