/* robust_fit.h - a monotone fit and robust residual scores, as the study's
 * atypical stage uses them to single out volumes whose attribution does not
 * follow their quality: the isotonic (pool-adjacent-violators) fit of one
 * array on another and robust z-scores of the residuals. Arrays in, arrays
 * out; no file I/O.
 *
 *   CBQ_TRY(cbq_isotonic_fit(consensus, ae, n, 1, fit, err));
 *   for (size_t i = 0; i < n; i++) resid[i] = ae[i] - fit[i];
 *   CBQ_TRY(cbq_robust_z(resid, n, z, &scale, err));
 */
#ifndef CBCTIQ_ROBUST_FIT_H
#define CBCTIQ_ROBUST_FIT_H

#include <stddef.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Least-squares monotone fit of y on x (pool-adjacent-violators): fit[i] for
 * each input point in its original order; tied x share one fitted value.
 * increasing = 0 fits a non-increasing function. */
int cbq_isotonic_fit(const double *x, const double *y, size_t n, int increasing, double *fit,
                     cbq_error *err);

/* Robust z-scores of residuals: z = (r - median r) / s with s = 1.4826 MAD,
 * or 1.2533 x mean absolute deviation when MAD = 0 (Iglewicz & Hoaglin); all
 * z = 0 when both are 0. *scale receives s. */
int cbq_robust_z(const double *r, size_t n, double *z, double *scale, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
