/* train.c - the training step (train.h). Uses the net's own output-gradient
 * scratch, so a step allocates nothing. */
#include "cbctiq/train.h"
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
