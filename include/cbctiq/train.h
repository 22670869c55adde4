/* train.h - one training step over a batch, so an epoch loop is a for loop:
 * zero grads, forward (training mode), loss and its gradient, backward (no
 * input gradient), optional global-norm clipping, optimiser step. */
#ifndef CBCTIQ_TRAIN_H
#define CBCTIQ_TRAIN_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/loss.h"
#include "cbctiq/net.h"
#include "cbctiq/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* batch_in [n, 1, H, W], targets [n, n_outputs]; clip <= 0: no clipping.
 * *loss (may be NULL) receives the batch loss before the update; *grad_norm
 * (may be NULL) the gradient norm before clipping. The net is left in
 * training mode. */
int cbq_train_step(cbq_net *net, cbq_optim *opt, const float *batch_in, const float *targets,
                   size_t n, const cbq_loss_cfg *loss_cfg, double clip, double *loss,
                   double *grad_norm, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
