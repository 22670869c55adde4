/* train.h - one training step over a batch, so an epoch loop is a for loop:
 * zero grads, forward (training mode), loss and its gradient, backward (no
 * input gradient), optional global-norm clipping, optimiser step. */
#ifndef CBCTIQ_TRAIN_H
#define CBCTIQ_TRAIN_H

#include <stddef.h>
#include "cbctiq/dist.h"
#include "cbctiq/error.h"
#include "cbctiq/loss.h"
#include "cbctiq/net.h"
#include "cbctiq/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* batch_in [n, C, H, W] (C: the input channels), targets [n, n_outputs]; clip <= 0: no clipping.
 * *loss (may be NULL) receives the batch loss before the update; *grad_norm
 * (may be NULL) the gradient norm before clipping. The net is left in
 * training mode. */
int cbq_train_step(cbq_net *net, cbq_optim *opt, const float *batch_in, const float *targets,
                   size_t n, const cbq_loss_cfg *loss_cfg, double clip, double *loss,
                   double *grad_norm, cbq_error *err);

/* This rank's part of a data-parallel step: n of the global batch's
 * n_global rows, over the ranks of dist (the net's, cbq_net_set_dist). */
typedef struct {
    const cbq_dist *dist;
    size_t n, n_global;
    double *allreduce_seconds; /* may be NULL; the gradient sum's wall time is added */
} cbq_train_shard;

/* One data-parallel step, called by every rank with its own rows: the
 * output gradient of this rank's rows is scaled by n / n_global, so the
 * gradients summed over the ranks (one fixed-order allreduce of every
 * parameter's gradient, before clipping) are the global batch's; every rank
 * then clips and steps the same bits. *loss is the global batch's loss.
 * Equal to cbq_train_step on the whole batch to rounding (sums group
 * differently), not bit for bit. */
int cbq_train_step_shard(cbq_net *net, cbq_optim *opt, const float *batch_in, const float *targets,
                         const cbq_train_shard *shard, const cbq_loss_cfg *loss_cfg, double clip,
                         double *loss, double *grad_norm, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
