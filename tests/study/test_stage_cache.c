/* test_stage_cache.c - stamps and their manifests, folder digests, whose
 * folder may be emptied, and tree removal: the parts the resumable pipeline
 * trusts. */
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
    write_text(root, "out.csv", "x\n");
    assert_int_equal(cbq_stage_stamp_write(root, &s, &err), CBQ_OK);
    assert_int_equal(cbq_stage_stamp_read(root, &r, &found, &err), CBQ_OK);
    assert_int_equal(found, 1);
    assert_string_equal(r.input_hash, s.input_hash);
    assert_string_equal(r.output_hash, s.output_hash);
    /* The output digest is the SHA-256 of the manifest: one line per file,
     * size and SHA-256 of "x\n" (sha256sum). */
    char path[1100];
    snprintf(path, sizeof path, "%s/stage.done", root);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char text[1024] = "";
    size_t got = fread(text, 1, sizeof text - 1, fp);
    fclose(fp);
    text[got] = '\0';
    assert_non_null(strstr(text, "\nfile 2 "
                                 "73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac"
                                 " out.csv\n"));
    /* A truncated stamp (as after a crash of some other writer) is "not done". */
    write_text(root, "stage.done", "cbctiq-stage 2\ninput aaaa\n");
    assert_int_equal(cbq_stage_stamp_read(root, &r, &found, &err), CBQ_OK);
    assert_int_equal(found, 0);
    write_text(root, "stage.done", "");
    assert_int_equal(cbq_stage_stamp_read(root, &r, &found, &err), CBQ_OK);
    assert_int_equal(found, 0);
    /* A hand-edited manifest no longer matches its output digest. */
    assert_int_equal(cbq_stage_stamp_write(root, &s, &err), CBQ_OK);
    char *at = strstr(text, "file 2 ");
    assert_non_null(at);
    at[5] = '3';
    write_text(root, "stage.done", text);
    assert_int_equal(cbq_stage_stamp_read(root, &r, &found, &err), CBQ_OK);
    assert_int_equal(found, 0);
    /* The "running" marker is not a finished stage. */
    write_text(root, "stage.done", "cbctiq-stage 2\nrunning\n");
    assert_int_equal(cbq_stage_stamp_read(root, &r, &found, &err), CBQ_OK);
    assert_int_equal(found, 0);
    remove(path);
    snprintf(path, sizeof path, "%s/out.csv", root);
    remove(path);
}

/* A stamped folder is intact until a file it lists is deleted, resized,
 * edited in place (same size), or a file is added. */
static void test_verify_outputs(void **state)
{
    (void)state;
    cbq_error err = {0};
    char dir[1100], sub[1200], why[512];
    snprintf(dir, sizeof dir, "%s/verify", root);
    snprintf(sub, sizeof sub, "%s/maps", dir);
    assert_int_equal(cbq_mkdir_p(sub, &err), CBQ_OK);
    write_text(dir, "ae.csv", "volume_id,ae\nv1,1.5\n");
    write_text(sub, "m.txt", "map");
    cbq_stage_stamp s = {0};
    memset(s.input_hash, 'b', 64);
    assert_int_equal(cbq_stage_stamp_write(dir, &s, &err), CBQ_OK);
    int intact = 0;
    assert_int_equal(cbq_stage_verify(dir, &intact, why, sizeof why, &err), CBQ_OK);
    assert_int_equal(intact, 1);
    /* A temporary ('.'-prefixed) file does not count. */
    write_text(dir, ".ae.csv.tmp1", "partial");
    assert_int_equal(cbq_stage_verify(dir, &intact, why, sizeof why, &err), CBQ_OK);
    assert_int_equal(intact, 1);

    write_text(dir, "ae.csv", "volume_id,ae\nv1,1.6\n"); /* same size, one digit */
    assert_int_equal(cbq_stage_verify(dir, &intact, why, sizeof why, &err), CBQ_OK);
    assert_int_equal(intact, 0);
    assert_string_equal(why, "ae.csv was changed after the stage wrote it");

    write_text(dir, "ae.csv", "volume_id,ae\n");
    assert_int_equal(cbq_stage_verify(dir, &intact, why, sizeof why, &err), CBQ_OK);
    assert_int_equal(intact, 0);
    assert_string_equal(why, "ae.csv has 13 bytes, the stage wrote 20");

    char path[1300];
    snprintf(path, sizeof path, "%s/ae.csv", dir);
    assert_int_equal(remove(path), 0);
    assert_int_equal(cbq_stage_verify(dir, &intact, why, sizeof why, &err), CBQ_OK);
    assert_int_equal(intact, 0);
    assert_string_equal(why, "ae.csv is missing");

    write_text(dir, "ae.csv", "volume_id,ae\nv1,1.5\n");
    assert_int_equal(cbq_stage_verify(dir, &intact, why, sizeof why, &err), CBQ_OK);
    assert_int_equal(intact, 1);
    write_text(sub, "extra.txt", "mine");
    assert_int_equal(cbq_stage_verify(dir, &intact, why, sizeof why, &err), CBQ_OK);
    assert_int_equal(intact, 0);
    assert_string_equal(why, "maps/extra.txt was not written by the stage");
}

/* Only an absent, empty or stamped folder is cbctiq's to empty. */
static void test_stage_dir_ownership(void **state)
{
    (void)state;
    cbq_error err = {0};
    char dir[1100], path[1200];
    snprintf(dir, sizeof dir, "%s/train", root);
    assert_int_equal(cbq_stage_dir_check(dir, &err), CBQ_OK); /* absent */
    assert_int_equal(cbq_mkdir_p(dir, &err), CBQ_OK);
    assert_int_equal(cbq_stage_dir_check(dir, &err), CBQ_OK); /* empty */
    write_text(dir, "patient1.nii.gz", "user data");
    assert_int_not_equal(cbq_stage_dir_begin(dir, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, "not made by cbctiq study"));
    snprintf(path, sizeof path, "%s/patient1.nii.gz", dir);
    assert_true(exists(path));
    snprintf(path, sizeof path, "%s/stage.done", dir);
    assert_false(exists(path));
    /* A hidden file alone also makes the folder the user's. */
    snprintf(path, sizeof path, "%s/patient1.nii.gz", dir);
    assert_int_equal(remove(path), 0);
    write_text(dir, ".notes", "x");
    assert_int_not_equal(cbq_stage_dir_check(dir, &err), CBQ_OK);
    /* A plain file where the stage folder goes is not replaced. */
    char file[1100];
    snprintf(file, sizeof file, "%s/cohort", root);
    write_text(root, "cohort", "x");
    assert_int_not_equal(cbq_stage_dir_check(file, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, file));
    assert_int_equal(remove(file), 0);

    /* With cbctiq's marker (any stamp version, done or running) it is
     * emptied, keeping only the "running" marker. */
    write_text(dir, "stage.done", "cbctiq-stage 1\ninput x\n");
    write_text(dir, "old.csv", "stale");
    assert_int_equal(cbq_stage_dir_begin(dir, &err), CBQ_OK);
    snprintf(path, sizeof path, "%s/old.csv", dir);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/.notes", dir);
    assert_false(exists(path));
    cbq_stage_stamp r;
    int found = 1;
    assert_int_equal(cbq_stage_stamp_read(dir, &r, &found, &err), CBQ_OK);
    assert_int_equal(found, 0);
    assert_int_equal(cbq_stage_dir_check(dir, &err), CBQ_OK);
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
        cmocka_unit_test(test_verify_outputs),
        cmocka_unit_test(test_stage_dir_ownership),
        cmocka_unit_test(test_folder_digest),
        cmocka_unit_test(test_remove_tree),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
