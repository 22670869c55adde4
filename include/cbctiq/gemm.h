/* gemm.h - the one matrix-multiply boundary of cbctiq and the one place that
 * decides how BLAS threads and OpenMP threads share the cores.
 *
 * All matrices are row-major float32. C = alpha * op(A) * op(B) + beta * C
 * with op(A) [m, k], op(B) [k, n], C [m, n]; lda/ldb/ldc are row strides of
 * the stored (untransposed) arrays, as in cblas with CblasRowMajor.
 *
 * Thread policy: OpenBLAS always runs single-threaded (set once by
 * cbq_threads_init); the engine parallelises with OpenMP around GEMM calls
 * (over samples, channels), so the two pools never compete for the cores and
 * every reduction has a fixed order for a given thread count.
 */
#ifndef CBCTIQ_GEMM_H
#define CBCTIQ_GEMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Optimised GEMM (OpenBLAS cblas_sgemm). Safe to call from several OpenMP
 * threads at once. */
void cbq_sgemm(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
               const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
               size_t ldc);

/* Naive triple loop with double accumulation: the reference for tests. */
void cbq_sgemm_ref(int trans_a, int trans_b, size_t m, size_t n, size_t k, float alpha,
                   const float *a, size_t lda, const float *b, size_t ldb, float beta, float *c,
                   size_t ldc);

/* Puts OpenBLAS in single-thread mode (idempotent) and returns the OpenMP
 * thread count to use for `requested` (0 = all cores, else clamped to
 * [1, cbq_threads_max()]). */
int cbq_threads_init(int requested);
/* Upper bound on threads the engine will ever use (sizes per-thread buffers). */
int cbq_threads_max(void);

#ifdef __cplusplus
}
#endif
#endif
