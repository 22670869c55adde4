/* test_threads.c - the BLAS thread policy of gemm.c: after
 * cbq_threads_init the process runs no idle BLAS worker threads (OpenBLAS's
 * pthread build starts one per further core when it loads, and each spun
 * for about 0.1 s of CPU time), stays so when the policy is applied again,
 * and cbq_sgemm still computes C = A B (checked against a loop in double
 * written here). Counts threads in /proc/self/task before any OpenMP
 * region has run, so it is not run under ThreadSanitizer (its runtime
 * keeps a thread of its own). */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cbctiq/gemm.h"

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_no_idle_blas_threads(void **state)
{
    (void)state;
    cbq_threads_init(0);
    assert_int_equal(thread_count(), 1);
    cbq_threads_init(1);
    assert_int_equal(thread_count(), 1);
}

static void test_sgemm_after_policy(void **state)
{
    (void)state;
    enum { M = 37, N = 53, K = 29 };
    static float a[M * K], b[K * N], c[M * N];
    for (size_t i = 0; i < M * K; i++)
        a[i] = (float)((i * 7 % 13) - 6) / 8.0f;
    for (size_t i = 0; i < K * N; i++)
        b[i] = (float)((i * 5 % 11) - 5) / 4.0f;
    cbq_threads_init(0);
    cbq_sgemm(0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    assert_int_equal(thread_count(), 1);
    for (size_t i = 0; i < M; i++)
        for (size_t j = 0; j < N; j++) {
            double want = 0.0;
            for (size_t k = 0; k < K; k++)
                want += (double)a[i * K + k] * b[k * N + j];
            assert_true(fabs(c[i * N + j] - want) <= 1e-5 * fmax(1.0, fabs(want)));
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_idle_blas_threads),
        cmocka_unit_test(test_sgemm_after_policy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
