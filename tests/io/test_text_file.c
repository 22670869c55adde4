/* test_text_file.c - cbq_read_text_file: contents byte for byte on both sides
 * of the reader's buffer growth, empty files, the size limit and a missing file,
 * each error naming the file. */
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
#include "cbctiq/text_file.h"

/* Creates a temporary file in CBQ_TEST_TMP (its name into path) holding n
 * bytes of a repeating pattern. */
static void write_pattern(char *path, size_t cap, size_t n)
{
    const char *dir = getenv("CBQ_TEST_TMP");
    cbq_error err = {0};
    assert_int_equal(cbq_mkdir_p(dir ? dir : ".", &err), CBQ_OK);
    snprintf(path, cap, "%s/text_XXXXXX", dir ? dir : ".");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "wb");
    assert_non_null(fp);
    for (size_t i = 0; i < n; i++)
        fputc('a' + (int)(i % 23), fp);
    assert_int_equal(fclose(fp), 0);
}

static void test_sizes_around_chunks(void **state)
{
    (void)state;
    /* The first read takes up to 65535 bytes, the buffer then doubles. */
    const size_t sizes[] = {0, 1, 4096, 65534, 65535, 65536, 65537, 131071, 131072, 300000};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        char path[4096];
        write_pattern(path, sizeof path, sizes[s]);
        char *text = NULL;
        size_t len = 7;
        cbq_error err = {0};
        assert_int_equal(cbq_read_text_file(path, 0, &text, &len, &err), CBQ_OK);
        assert_int_equal(len, sizes[s]);
        assert_int_equal(strlen(text), sizes[s]); /* NUL-terminated, no NUL inside */
        for (size_t i = 0; i < len; i++)
            if (text[i] != 'a' + (int)(i % 23))
                fail_msg("size %zu: byte %zu differs", sizes[s], i);
        free(text);
        unlink(path);
    }
}

static void test_limit_and_missing(void **state)
{
    (void)state;
    char path[4096];
    write_pattern(path, sizeof path, 10000);
    char *text = (char *)1;
    cbq_error err = {0};
    assert_int_not_equal(cbq_read_text_file(path, 9999, &text, NULL, &err), CBQ_OK);
    assert_null(text);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "larger than 9999 bytes"));
    assert_int_equal(cbq_read_text_file(path, 10000, &text, NULL, &err), CBQ_OK);
    free(text);
    unlink(path);
    assert_int_not_equal(cbq_read_text_file(path, 0, &text, NULL, &err), CBQ_OK);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes_around_chunks),
        cmocka_unit_test(test_limit_and_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
