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

static void put_file(const char *folder, const char *name)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", folder, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs("x\n", fp);
    fclose(fp);
}

/* A folder writer: the temporary folder and its files go on an interrupt,
 * a committed folder replaces the earlier one, a discarded one leaves nothing. */
static void test_folder_pending_rename_discard(void **state)
{
    (void)state;
    char final_dir[1100], tmp[4200], path[4300];
    snprintf(final_dir, sizeof final_dir, "%s/series", dir);
    cbq_error err = {0};
    assert_int_equal(cbq_atomic_tmp_dir(tmp, sizeof tmp, final_dir, &err), CBQ_OK);
    put_file(tmp, "a.dcm");
    put_file(tmp, "b.dcm");
    cbq_atomic_remove_pending();
    assert_false(exists(tmp));
    cbq_atomic_discard_dir(tmp); /* forgets the slot */

    assert_int_equal(cbq_atomic_tmp_dir(tmp, sizeof tmp, final_dir, &err), CBQ_OK);
    put_file(tmp, "old.dcm");
    assert_int_equal(cbq_atomic_rename_dir(tmp, final_dir, &err), CBQ_OK);
    assert_int_equal(cbq_atomic_tmp_dir(tmp, sizeof tmp, final_dir, &err), CBQ_OK);
    put_file(tmp, "new.dcm");
    assert_int_equal(cbq_atomic_rename_dir(tmp, final_dir, &err), CBQ_OK);
    snprintf(path, sizeof path, "%s/new.dcm", final_dir);
    assert_true(exists(path));
    snprintf(path, sizeof path, "%s/old.dcm", final_dir);
    assert_false(exists(path));
    cbq_atomic_remove_pending(); /* committed: no longer anyone's to remove */
    assert_true(exists(final_dir));
    snprintf(path, sizeof path, "%s.old", tmp);
    assert_false(exists(tmp) || exists(path));

    assert_int_equal(cbq_atomic_tmp_dir(tmp, sizeof tmp, final_dir, &err), CBQ_OK);
    put_file(tmp, "c.dcm");
    cbq_atomic_discard_dir(tmp);
    assert_false(exists(tmp));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_makes_file_visible),
        cmocka_unit_test(test_abort_leaves_nothing),
        cmocka_unit_test(test_remove_pending_removes_only_unfinished),
        cmocka_unit_test(test_unwritable_folder_names_the_file),
        cmocka_unit_test(test_folder_pending_rename_discard),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
