/* loss.h - training losses with PyTorch's definitions and mean reduction.
 *
 *   MSE:    mean over all n*k elements of (pred - target)^2  (nn.MSELoss)
 *   Huber:  mean of 0.5 d^2 if |d| < delta else delta (|d| - 0.5 delta)
 *           (nn.HuberLoss(delta); with delta 1 equal to nn.SmoothL1Loss)
 *   Cross-entropy: -sum_j target[i,j] log softmax(pred[i])_j, mean over
 *           the n samples (nn.CrossEntropyLoss with probability targets; a
 *           one-hot row is the class-index form).
 */
#ifndef CBCTIQ_LOSS_H
#define CBCTIQ_LOSS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CBQ_LOSS_MSE, CBQ_LOSS_HUBER, CBQ_LOSS_CROSS_ENTROPY } cbq_loss_kind;

typedef struct {
    cbq_loss_kind kind;
    double delta;   /* Huber only; <= 0 means PyTorch's default 1.0 */
} cbq_loss_cfg;

/* Loss of pred [n, k] against target [n, k]; when dpred is not NULL it
 * receives dLoss/dpred [n, k] (overwritten). Sums in double. */
double cbq_loss(const cbq_loss_cfg *cfg, const float *pred, const float *target, size_t n, size_t k,
                float *dpred);

/* "mse", "huber", "cross_entropy"; returns 0 when unknown. */
int cbq_loss_parse(const char *name, cbq_loss_kind *kind);

#ifdef __cplusplus
}
#endif
#endif
