/* test_mem_limit.c - cbq_mem_check against /proc/meminfo read here
 * independently: small requests pass, requests beyond MemTotal fail with a
 * message that names the request and both sizes. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cbctiq/mem_limit.h"

static uint64_t meminfo_bytes(const char *key)
{
    FILE *fp = fopen("/proc/meminfo", "r");
    assert_non_null(fp);
    char line[256];
    unsigned long long kib = 0;
    while (fgets(line, sizeof line, fp))
        if (strncmp(line, key, strlen(key)) == 0)
            sscanf(line + strlen(key), " %llu", &kib);
    fclose(fp);
    return (uint64_t)kib * 1024;
}

static void test_available_within_total(void **state)
{
    (void)state;
    uint64_t total = meminfo_bytes("MemTotal:");
    assert_true(total > 0);
    uint64_t avail = cbq_mem_available();
    assert_true(avail > 0);
    assert_true(avail <= total);
}

static void test_small_request_passes(void **state)
{
    (void)state;
    cbq_error err = {0};
    assert_int_equal(cbq_mem_check(1 << 20, "one MiB", &err), CBQ_OK);
}

static void test_request_beyond_total_fails(void **state)
{
    (void)state;
    cbq_error err = {0};
    uint64_t total = meminfo_bytes("MemTotal:");
    assert_int_equal(cbq_mem_check(total + (1ull << 30), "the test's request", &err), CBQ_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "the test's request needs"));
    assert_non_null(strstr(err.msg, "GiB of memory are available"));
    assert_int_equal(cbq_mem_check(UINT64_MAX, "everything", &err), CBQ_ERR_NOMEM);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_available_within_total),
        cmocka_unit_test(test_small_request_passes),
        cmocka_unit_test(test_request_beyond_total_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
