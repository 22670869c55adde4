/* test_report_html.c - the report escapes every caller text, writes tables
 * as RFC 4180 CSV beside it, inlines figures as base64 PNG, refuses unsafe
 * file names, and never leaves a partial report.html. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/report.h"

static char dir[1024];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/report_html", base ? base : "tmp");
    cbq_error err = {0};
    return cbq_mkdir_p(dir, &err);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, fp);
    buf[got] = '\0';
    fclose(fp);
    return buf;
}

static void test_escape(void **state)
{
    (void)state;
    char *s = cbq_html_escape("a<b>&\"c\"'d' \xc3\xa9");
    assert_string_equal(s, "a&lt;b&gt;&amp;&quot;c&quot;&#39;d&#39; \xc3\xa9");
    free(s);
    s = cbq_html_escape("");
    assert_string_equal(s, "");
    free(s);
}

static void test_base64_rfc4648_vectors(void **state)
{
    (void)state;
    /* RFC 4648 section 10 test vectors. */
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char *b = cbq_base64_encode((const unsigned char *)in[i], strlen(in[i]));
        assert_string_equal(b, out[i]);
        free(b);
    }
    const unsigned char bytes[3] = {0xfb, 0xff, 0x00};
    char *b = cbq_base64_encode(bytes, 3);
    assert_string_equal(b, "+/8A");
    free(b);
}

static void test_report_contents(void **state)
{
    (void)state;
    char out[1100], path[1300];
    snprintf(out, sizeof out, "%s/r1", dir);
    cbq_error err = {0};
    cbq_report *r = NULL;
    assert_int_equal(cbq_report_begin(&r, "T <1> & 'x'", out, &err), CBQ_OK);
    assert_int_equal(cbq_report_section(r, "Cohort & <ratings>", &err), CBQ_OK);
    assert_int_equal(cbq_report_paragraph(r, "<script>alert(1)</script>\nline two\n\nsecond", &err), CBQ_OK);
    const char *hdr[] = {"volume_id", "note"};
    const char *cells[] = {"v01", "a,b", "v\"02", NULL, "v03", "<i>",
                           "v04", "a sentence long enough to wrap", "v05", "12.5"};
    assert_int_equal(cbq_report_table(r, "t1", "cap <c>", 2, hdr, 5, cells, &err), CBQ_OK);
    double x[2] = {0, 1}, y[2] = {1, 2};
    cbq_series s = {.kind = CBQ_SERIES_LINE, .x = x, .y = y, .n = 2, .color = -1};
    cbq_chart c = {.series = &s, .n_series = 1, .width = 200, .height = 150};
    cbq_figure *fig = NULL;
    assert_int_equal(cbq_chart_draw(&fig, &c, &err), CBQ_OK);
    assert_int_equal(cbq_report_figure(r, fig, "f1", "fig \"one\"", &err), CBQ_OK);
    cbq_figure_free(fig);
    const char *k[] = {"seed", "<k>"}, *v[] = {"42", "&v"};
    assert_int_equal(cbq_report_keyvalues(r, 2, k, v, &err), CBQ_OK);
    assert_int_equal(cbq_report_preformatted(r, "config", "{\"a\": \"<b>\"}", &err), CBQ_OK);
    snprintf(path, sizeof path, "%s/report.html", out);
    remove(path);
    struct stat st;
    assert_true(stat(path, &st) != 0); /* nothing before finish */
    assert_int_equal(cbq_report_finish(r, &err), CBQ_OK);
    cbq_report_free(r);

    char *html = slurp(path);
    assert_non_null(html);
    assert_non_null(strstr(html, "<title>T &lt;1&gt; &amp; &#39;x&#39;</title>"));
    assert_non_null(strstr(html, "1. Cohort &amp; &lt;ratings&gt;</h2>"));
    assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;<br>\nline two</p>\n<p>second</p>"));
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "<i>"));
    assert_non_null(strstr(html, "<td>v&quot;02</td><td></td>"));
    /* Sentences get a minimum width, numbers do not wrap. */
    assert_non_null(strstr(html, "<td>v04</td><td class=\"text\">a sentence long enough to wrap</td>"));
    assert_non_null(strstr(html, "<td>v05</td><td class=\"num\">12.5</td>"));
    assert_non_null(strstr(html, "href=\"tables/t1.csv\""));
    assert_non_null(strstr(html, "<img src=\"data:image/png;base64,iVBORw0KGgo"));
    assert_non_null(strstr(html, "width=\"200\" height=\"150\" alt=\"fig &quot;one&quot;\""));
    assert_non_null(strstr(html, "<dt>&lt;k&gt;</dt><dd>&amp;v</dd>"));
    assert_non_null(strstr(html, "<pre>{&quot;a&quot;: &quot;&lt;b&gt;&quot;}</pre>"));
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
    free(html);

    snprintf(path, sizeof path, "%s/tables/t1.csv", out);
    char *csv = slurp(path);
    assert_non_null(csv);
    assert_string_equal(csv, "volume_id,note\nv01,\"a,b\"\n\"v\"\"02\",\nv03,<i>\n"
                             "v04,a sentence long enough to wrap\nv05,12.5\n");
    free(csv);
    snprintf(path, sizeof path, "%s/figures/f1.png", out);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/figures/f1.svg", out);
    assert_int_equal(stat(path, &st), 0);
}

static void test_bad_names_refused(void **state)
{
    (void)state;
    char out[1100];
    snprintf(out, sizeof out, "%s/r2", dir);
    cbq_error err = {0};
    cbq_report *r = NULL;
    assert_int_equal(cbq_report_begin(&r, "t", out, &err), CBQ_OK);
    const char *hdr[] = {"a"};
    assert_int_equal(cbq_report_table(r, "../evil", NULL, 1, hdr, 0, NULL, &err), CBQ_ERR_ARG);
    assert_non_null(strstr(err.msg, "../evil"));
    assert_int_equal(cbq_report_table(r, "", NULL, 1, hdr, 0, NULL, &err), CBQ_ERR_ARG);
    assert_int_equal(cbq_report_table(r, "ok", NULL, 0, hdr, 0, NULL, &err), CBQ_ERR_ARG);
    cbq_report_free(r);
    assert_int_equal(cbq_report_begin(&r, "t", "", &err), CBQ_ERR_ARG);
    assert_null(r);
}

static void test_poster_table_and_formats(void **state)
{
    (void)state;
    char buf[32];
    /* printf's %.2g / %.1e / %.3f rounding, as the report promises. */
    cbq_format_p(buf, sizeof buf, 0.0012);
    assert_string_equal(buf, "0.0012");
    cbq_format_p(buf, sizeof buf, 0.374);
    assert_string_equal(buf, "0.37");
    cbq_format_p(buf, sizeof buf, 3.44e-5);
    assert_string_equal(buf, "3.4e-05");
    cbq_format_p(buf, sizeof buf, 1.0);
    assert_string_equal(buf, "1");
    cbq_format_p(buf, sizeof buf, NAN);
    assert_string_equal(buf, "n/a");
    cbq_format_rho(buf, sizeof buf, 0.71049);
    assert_string_equal(buf, "0.710");
    cbq_format_rho(buf, sizeof buf, -0.0004);
    assert_string_equal(buf, "-0.000");

    char out[1100], path[1300];
    snprintf(out, sizeof out, "%s/r3", dir);
    cbq_error err = {0};
    cbq_report *r = NULL;
    assert_int_equal(cbq_report_begin(&r, "t", out, &err), CBQ_OK);
    cbq_poster_row rows[2] = {
        {.category = "parotid", .n = 16, .median_loo_rho = 0.7104, .median_loo_p = 0.0021, .rho = 0.71,
         .p = 0.0020, .ci_lo = 0.33, .ci_hi = 0.89},
        {.category = "larynx", .n = 2, .median_loo_rho = NAN, .median_loo_p = NAN, .rho = NAN, .p = NAN,
         .ci_lo = NAN, .ci_hi = NAN, .reason = "n < 3"},
    };
    assert_int_equal(cbq_report_poster_table(r, "poster", "Poster", rows, 2, &err), CBQ_OK);
    assert_int_equal(cbq_report_finish(r, &err), CBQ_OK);
    cbq_report_free(r);
    snprintf(path, sizeof path, "%s/tables/poster.csv", out);
    char *csv = slurp(path);
    assert_string_equal(csv, "category,n,median LOO rho,median LOO p,rho,p,95% CI\n"
                             "parotid,16,0.710,0.0021,0.710,0.002,\"[0.33, 0.89]\"\n"
                             "larynx,2,n/a,n/a,n/a,n/a,n/a\n");
    free(csv);
    snprintf(path, sizeof path, "%s/report.html", out);
    char *html = slurp(path);
    assert_non_null(strstr(html, "larynx: rho undefined (n &lt; 3).</p>"));
    free(html);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape),
        cmocka_unit_test(test_base64_rfc4648_vectors),
        cmocka_unit_test(test_report_contents),
        cmocka_unit_test(test_bad_names_refused),
        cmocka_unit_test(test_poster_table_and_formats),
    };
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    /* Drop cairo's and fontconfig's process-wide font caches so that
     * LeakSanitizer reports only what cbctiq kept (cairo asserts here if a
     * cairo object is still alive). */
    cairo_debug_reset_static_data();
    FcFini();
    return rc;
}
