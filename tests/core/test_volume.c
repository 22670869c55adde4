/* test_volume.c - allocation limits and index-to-world geometry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cbctiq/volume.h"

static void test_alloc_sets_axis_aligned_geometry(void **state)
{
    (void)state;
    cbq_volume vol;
    cbq_error err = {0};
    const double sp[3] = {0.5, 0.75, 2.0};
    assert_int_equal(cbq_volume_alloc(&vol, 4, 3, 2, sp, 0, &err), CBQ_OK);
    assert_int_equal(cbq_volume_count(&vol), 24);
    *cbq_volume_at(&vol, 3, 2, 1) = 7.0f;
    assert_true(vol.data[3 + 4 * (2 + 3 * 1)] == 7.0f);
    double xyz[3];
    cbq_volume_world(&vol, 2, 2, 1, xyz);
    assert_true(xyz[0] == 1.0 && xyz[1] == 1.5 && xyz[2] == 2.0);
    cbq_volume_free(&vol);
    assert_null(vol.data);
}

static void test_overflowing_size_is_refused(void **state)
{
    (void)state;
    cbq_volume vol;
    cbq_error err = {0};
    size_t huge = (size_t)1 << 40;
    assert_int_equal(cbq_volume_alloc(&vol, huge, huge, 2, NULL, 0, &err), CBQ_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "overflows"));
    assert_int_equal(cbq_volume_alloc(&vol, 1024, 1024, 1024, NULL, (size_t)1 << 30, &err),
                     CBQ_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "GiB"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_sets_axis_aligned_geometry),
        cmocka_unit_test(test_overflowing_size_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
