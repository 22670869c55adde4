/* test_zeroed_alloc.c - cbq_alloc_zeroed: every byte zero, 64-byte (from
 * 4 MiB on 2 MiB) alignment, also when the allocator hands back memory that
 * was written and released before (cbq_free_zeroed, which takes NULL too);
 * 0 bytes and impossible sizes give NULL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/zeroed_alloc.h"

static const size_t sizes[] = {1, 63, 4096 + 5, (4u << 20) - 1, 4u << 20, (9u << 20) + 3};

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static void check_block(unsigned char *p, size_t bytes)
{
    assert_non_null(p);
    uintptr_t align = bytes >= (4u << 20) ? (2u << 20) : 64;
    assert_int_equal((uintptr_t)p % align, 0);
    assert_true(all_zero(p, bytes));
}

static void test_zeroed_and_aligned(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = cbq_alloc_zeroed(sizes[i]);
        check_block(p, sizes[i]);
        cbq_free_zeroed(p);
    }
}

/* Fill and free many blocks, then allocate the same sizes again: whatever
 * the allocator reuses must come back zeroed. */
static void test_reused_memory_is_zeroed(void **state)
{
    (void)state;
    enum { n = sizeof sizes / sizeof *sizes };
    for (int round = 0; round < 3; round++) {
        unsigned char *p[n];
        for (size_t i = 0; i < n; i++) {
            p[i] = cbq_alloc_zeroed(sizes[i]);
            check_block(p[i], sizes[i]);
            memset(p[i], 0xA5, sizes[i]);
        }
        for (size_t i = 0; i < n; i++)
            cbq_free_zeroed(p[i]);
    }
}

static void test_impossible_sizes(void **state)
{
    (void)state;
    assert_null(cbq_alloc_zeroed(0));
    assert_null(cbq_alloc_zeroed(SIZE_MAX));
    assert_null(cbq_alloc_zeroed(SIZE_MAX - 100));
    cbq_free_zeroed(NULL); /* does nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeroed_and_aligned),
        cmocka_unit_test(test_reused_memory_is_zeroed),
        cmocka_unit_test(test_impossible_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
