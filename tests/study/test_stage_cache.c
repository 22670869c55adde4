/* test_stage_cache.c - stamps, folder digests and tree removal: the parts
 * the resumable pipeline trusts. */
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
#include "cbctiq/study.h"

static char root[1024];

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(root, sizeof root, "%s/stage_cache", base ? base : "tmp");
    cbq_error err = {0};
    cbq_remove_tree(root, &err);
    return cbq_mkdir_p(root, &err);
}

static void test_stamp_round_trip(void **state)
{
    (void)state;
    cbq_error err = {0};
    cbq_stage_stamp s = {0}, r;
    int found = 1;
    assert_int_equal(cbq_stage_stamp_read(root, &r, &found, &err), CBQ_OK);
    assert_int_equal(found, 0);
    memset(s.input_hash, 'a', 64);
    memset(s.output_hash, '0', 64);
    assert_int_equal(cbq_stage_stamp_write(root, &s, &err), CBQ_OK);
    assert_int_equal(cbq_stage_stamp_read(root, &r, &found, &err), CBQ_OK);
    assert_int_equal(found, 1);
    assert_string_equal(r.input_hash, s.input_hash);
    assert_string_equal(r.output_hash, s.output_hash);
    /* A truncated stamp (as after a crash of some other writer) is "not done". */
    write_text(root, "stage.done", "cbctiq-stage 1\ninput aaaa\n");
    assert_int_equal(cbq_stage_stamp_read(root, &r, &found, &err), CBQ_OK);
    assert_int_equal(found, 0);
    write_text(root, "stage.done", "");
    assert_int_equal(cbq_stage_stamp_read(root, &r, &found, &err), CBQ_OK);
    assert_int_equal(found, 0);
}

static void test_folder_digest(void **state)
{
    (void)state;
    cbq_error err = {0};
    char a[1100], b[1100], sub[1200], ha[65], hb[65];
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(b, sizeof b, "%s/b", root);
    snprintf(sub, sizeof sub, "%s/a/sub", root);
    assert_int_equal(cbq_mkdir_p(sub, &err), CBQ_OK);
    snprintf(sub, sizeof sub, "%s/b/sub", root);
    assert_int_equal(cbq_mkdir_p(sub, &err), CBQ_OK);
    /* Same content written in a different order: same digest. */
    write_text(a, "x.csv", "1,2\n");
    write_text(a, "sub/y.txt", "hello");
    write_text(b, "sub/y.txt", "hello");
    write_text(b, "x.csv", "1,2\n");
    assert_int_equal(cbq_hash_path(a, ha, &err), CBQ_OK);
    assert_int_equal(cbq_hash_path(b, hb, &err), CBQ_OK);
    assert_string_equal(ha, hb);
    /* The stamp and temporaries do not count. */
    write_text(b, "stage.done", "whatever");
    write_text(b, ".x.csv.tmp123", "partial");
    assert_int_equal(cbq_hash_path(b, hb, &err), CBQ_OK);
    assert_string_equal(ha, hb);
    /* One byte of content, or a name, changes it. */
    write_text(b, "x.csv", "1,3\n");
    assert_int_equal(cbq_hash_path(b, hb, &err), CBQ_OK);
    assert_string_not_equal(ha, hb);
    write_text(b, "x.csv", "1,2\n");
    char from[1300], to[1300];
    snprintf(from, sizeof from, "%s/sub/y.txt", b);
    snprintf(to, sizeof to, "%s/sub/z.txt", b);
    assert_int_equal(rename(from, to), 0);
    assert_int_equal(cbq_hash_path(b, hb, &err), CBQ_OK);
    assert_string_not_equal(ha, hb);
    /* Missing path: an error naming it. */
    snprintf(from, sizeof from, "%s/nope", root);
    assert_int_not_equal(cbq_hash_path(from, hb, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, "nope"));
}

static void test_remove_tree(void **state)
{
    (void)state;
    cbq_error err = {0};
    char dir[1100], deep[1200];
    snprintf(dir, sizeof dir, "%s/gone", root);
    snprintf(deep, sizeof deep, "%s/1/2/3", dir);
    assert_int_equal(cbq_mkdir_p(deep, &err), CBQ_OK);
    write_text(deep, "f", "x");
    write_text(dir, ".hidden", "x");
    assert_int_equal(cbq_remove_tree(dir, &err), CBQ_OK);
    assert_false(exists(dir));
    assert_int_equal(cbq_remove_tree(dir, &err), CBQ_OK); /* missing is fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stamp_round_trip),
        cmocka_unit_test(test_folder_digest),
        cmocka_unit_test(test_remove_tree),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
