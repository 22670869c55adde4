/* gemm.c - cbq_sgemm over OpenBLAS and the thread policy (see gemm.h).
 * Not a GEMM implementation of our own: the naive reference is gemm_ref.c. */
#include "cbctiq/gemm.h"

#include <cblas.h>
#include <omp.h>

/* Declared by OpenBLAS (cblas.h of the openblas build); repeated here so the
 * file also compiles against the netlib cblas.h. */
void openblas_set_num_threads(int num_threads);

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
    /* Process-wide BLAS setting, always the same value: harmless to repeat. */
    openblas_set_num_threads(1);
    int max = cbq_threads_max();
    if (requested <= 0 || requested > max)
        return max;
    return requested;
}
