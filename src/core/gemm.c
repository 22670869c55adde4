/* gemm.c - cbq_sgemm over OpenBLAS and the thread policy (see gemm.h).
 * Not a GEMM implementation of our own: the naive reference is gemm_ref.c. */
#include "cbctiq/gemm.h"

#include <cblas.h>
#include <omp.h>

/* Declared by OpenBLAS (cblas.h of the openblas build); repeated here so the
 * file also compiles against the netlib cblas.h. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
/* OpenBLAS's pthread build: joins its worker threads (what its fork
 * handler calls). Weak: absent from other BLAS builds. */
int blas_thread_shutdown_(void) __attribute__((weak));

void cbq_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
               const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
               size_t ldc)
{
    if (m == 0 || n == 0)
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda, b,
                (int)ldb, beta, c, (int)ldc);
}

int cbq_threads_max(void)
{
    int procs = omp_get_num_procs();
    return procs < 1 ? 1 : procs;
}

int cbq_threads_init(int requested)
{
    /* Process-wide BLAS setting, always the same value. Set once: setting
     * it restarts OpenBLAS's worker threads when they were joined below. */
    if (openblas_get_num_threads() != 1)
        openblas_set_num_threads(1);
    /* BLAS runs on one thread inside our OpenMP regions, so OpenBLAS's
     * worker threads (started when the library loads, one per further
     * core) never get work; yet each spins in sched_yield for about 0.1 s
     * after the start, which on an idle core added 0.1 s of CPU time to
     * every short process (`cbctiq ae`: 0.66 s -> 0.76 s). Joined here;
     * once they are gone this returns at once. */
    if (blas_thread_shutdown_)
        blas_thread_shutdown_();
    int max = cbq_threads_max();
    if (requested <= 0 || requested > max)
        return max;
    return requested;
}
