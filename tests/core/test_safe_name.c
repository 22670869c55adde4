/* test_safe_name.c - the one rule for names that become file names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cbctiq/safe_name.h"

static void test_refused_names_say_why(void **state)
{
    (void)state;
    static const struct {
        const char *name, *why;
    } bad[] = {
        {"", "'' is empty"},
        {".", "'.' is a folder name ('.' or '..')"},
        {"..", "'..' is a folder name ('.' or '..')"},
        {"../../escape", "'../../escape' contains '/'"},
        {"a/b", "'a/b' contains '/'"},
        {"/abs", "'/abs' contains '/'"},
        {"a\\b", "'a\\b' contains '\\'"},
        {"a\x01" "b", "'a?b' contains the control character 0x01"},
        {"tab\there", "'tab?here' contains the control character 0x09"},
        {"del\x7f", "'del?' contains the control character 0x7F"},
        {"line\nbreak", "'line?break' contains the control character 0x0A"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char why[160] = "";
        assert_int_equal(cbq_name_ok(bad[i].name, why, sizeof why), 0);
        assert_string_equal(why, bad[i].why);
    }
}

static void test_ordinary_names_pass(void **state)
{
    (void)state;
    const char *good[] = {"v01", "sim000", "patient 7", "...", ".hidden", "a..b", "v1.nii",
                          "Zürich", "r-1_b"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        char why[160] = "unchanged";
        assert_int_equal(cbq_name_ok(good[i], why, sizeof why), 1);
        assert_string_equal(why, "unchanged");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_names_say_why),
        cmocka_unit_test(test_ordinary_names_pass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
