/* test_atomic_file.c - no partial file under the final name, ever. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "cbctiq/atomic_file.h"

static char dir[1024];

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/atomic", base ? base : "tmp");
    cbq_error err = {0};
    return cbq_mkdir_p(dir, &err);
}

static void test_commit_makes_file_visible(void **state)
{
    (void)state;
    char path[1100];
    snprintf(path, sizeof path, "%s/out.csv", dir);
    remove(path);
    cbq_atomic_file af;
    cbq_error err = {0};
    assert_int_equal(cbq_atomic_open(&af, path, &err), CBQ_OK);
    fputs("a,b\n1,2\n", af.fp);
    assert_false(exists(path));
    assert_true(exists(af.tmp_path));
    assert_int_equal(cbq_atomic_commit(&af, &err), CBQ_OK);
    assert_true(exists(path));
    assert_false(exists(af.tmp_path));
    FILE *fp = fopen(path, "rb");
    char buf[32] = {0};
    assert_int_equal(fread(buf, 1, sizeof buf, fp), 8);
    fclose(fp);
    assert_string_equal(buf, "a,b\n1,2\n");
}

static void test_abort_leaves_nothing(void **state)
{
    (void)state;
    char path[1100];
    snprintf(path, sizeof path, "%s/aborted.csv", dir);
    remove(path);
    cbq_atomic_file af;
    cbq_error err = {0};
    assert_int_equal(cbq_atomic_open(&af, path, &err), CBQ_OK);
    fputs("half", af.fp);
    cbq_atomic_abort(&af);
    assert_false(exists(path));
    assert_false(exists(af.tmp_path));
}

static void test_unwritable_folder_names_the_file(void **state)
{
    (void)state;
    cbq_atomic_file af;
    cbq_error err = {0};
    assert_int_equal(cbq_atomic_open(&af, "/nonexistent-folder/x.csv", &err), CBQ_ERR_IO);
    assert_non_null(strstr(err.msg, "/nonexistent-folder/x.csv"));
}

/* What a SIGINT/SIGTERM handler calls: the file being written goes, one
 * already renamed (or discarded) is no longer anyone's to remove. */
static void test_remove_pending_removes_only_unfinished(void **state)
{
    (void)state;
    char path[1100];
    snprintf(path, sizeof path, "%s/interrupted.csv", dir);
    cbq_atomic_file af;
    cbq_error err = {0};
    assert_int_equal(cbq_atomic_open(&af, path, &err), CBQ_OK);
    fputs("a\n", af.fp);
    fflush(af.fp);
    assert_true(exists(af.tmp_path));
    cbq_atomic_remove_pending();
    assert_false(exists(af.tmp_path));
    cbq_atomic_abort(&af);

    char done[1100];
    snprintf(done, sizeof done, "%s/finished.csv", dir);
    assert_int_equal(cbq_atomic_open(&af, done, &err), CBQ_OK);
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", af.tmp_path);
    assert_int_equal(cbq_atomic_commit(&af, &err), CBQ_OK);
    FILE *fp = fopen(tmp, "wb"); /* a later file of that name is not ours */
    assert_non_null(fp);
    fclose(fp);
    cbq_atomic_remove_pending();
    assert_true(exists(tmp));
    assert_true(exists(done));
    remove(tmp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_makes_file_visible),
        cmocka_unit_test(test_abort_leaves_nothing),
        cmocka_unit_test(test_remove_pending_removes_only_unfinished),
        cmocka_unit_test(test_unwritable_folder_names_the_file),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
