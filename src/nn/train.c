/* train.c - the training step (train.h). Uses the net's own output-gradient
 * scratch, so a step allocates nothing. */
#include "cbctiq/train.h"

#include "cbctiq/progress.h"
#include "nn/net_impl.h"

int cbq_train_step(cbq_net *net, cbq_optim *opt, const float *batch_in, const float *targets,
                   size_t n, const cbq_loss_cfg *loss_cfg, double clip, double *loss,
                   double *grad_norm, cbq_error *err)
{
    const float *out = NULL;
    const size_t *oshape = net->shapes[net->n_layers - 1];
    const size_t k = oshape[0] * oshape[1] * oshape[2];
    cbq_net_set_training(net, 1);
    cbq_net_zero_grad(net);
    CBQ_TRY(cbq_net_forward(net, batch_in, n, &out, err));
    double l = cbq_loss(loss_cfg, out, targets, n, k, net->dout_scratch);
    CBQ_TRY(cbq_net_backward_ex(net, net->dout_scratch, 0, 1, 0, err));
    double norm = cbq_clip_grad_norm(net, clip);
    cbq_optim_step(opt);
    if (loss)
        *loss = l;
    if (grad_norm)
        *grad_norm = norm;
    return CBQ_OK;
}

int cbq_train_step_shard(cbq_net *net, cbq_optim *opt, const float *batch_in, const float *targets,
                         const cbq_train_shard *shard, const cbq_loss_cfg *loss_cfg, double clip,
                         double *loss, double *grad_norm, cbq_error *err)
{
    const float *out = NULL;
    const size_t *oshape = net->shapes[net->n_layers - 1];
    const size_t k = oshape[0] * oshape[1] * oshape[2], n = shard->n;
    cbq_net_set_training(net, 1);
    cbq_net_zero_grad(net);
    CBQ_TRY(cbq_net_forward(net, batch_in, n, &out, err));
    /* The loss is a mean over the global batch: this rank's gradient of its
     * own rows' mean is scaled by its share of the batch. */
    double sums[1] = {cbq_loss(loss_cfg, out, targets, n, k, net->dout_scratch) * (double)n};
    const float share = (float)((double)n / (double)shard->n_global);
    for (size_t i = 0; i < n * k; i++)
        net->dout_scratch[i] *= share;
    CBQ_TRY(cbq_net_backward_ex(net, net->dout_scratch, 0, 1, 0, err));
    double t0 = cbq_now();
    CBQ_TRY(cbq_dist_allreduce_sum_float(shard->dist, net->grads, net->n_params, err));
    if (shard->allreduce_seconds)
        *shard->allreduce_seconds += cbq_now() - t0;
    CBQ_TRY(cbq_dist_allreduce_sum_double(shard->dist, sums, 1, err));
    double norm = cbq_clip_grad_norm(net, clip);
    cbq_optim_step(opt);
    if (loss)
        *loss = sums[0] / (double)shard->n_global;
    if (grad_norm)
        *grad_norm = norm;
    return CBQ_OK;
}
