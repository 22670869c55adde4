/* model_cost.c - parameter counts and forward FLOPs per layer
 * (conventions in include/cbctiq/model_cost.h). */
#include "cbctiq/model_cost.h"

size_t cbq_layer_param_count(const cbq_layer_spec *l)
{
    switch (l->kind) {
    case CBQ_LAYER_CONV2D: {
        const cbq_conv2d_cfg *c = &l->cfg.conv;
        return (size_t)c->out_channels * (size_t)c->in_channels * (size_t)c->kernel_h *
                   (size_t)c->kernel_w + (c->bias ? (size_t)c->out_channels : 0);
    }
    case CBQ_LAYER_BATCHNORM2D:
        return 2 * (size_t)l->cfg.bn.channels;
    case CBQ_LAYER_LINEAR: {
        const cbq_linear_cfg *c = &l->cfg.linear;
        return (size_t)c->out_features * (size_t)c->in_features +
               (c->bias ? (size_t)c->out_features : 0);
    }
    default:
        return 0;
    }
}

double cbq_layer_forward_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    double n_in = (double)in[0] * (double)in[1] * (double)in[2];
    double n_out = (double)out[0] * (double)out[1] * (double)out[2];
    switch (l->kind) {
    case CBQ_LAYER_CONV2D: {
        const cbq_conv2d_cfg *c = &l->cfg.conv;
        double fan_in = (double)c->in_channels * c->kernel_h * c->kernel_w;
        return n_out * (2.0 * fan_in + (c->bias ? 1.0 : 0.0));
    }
    case CBQ_LAYER_LINEAR:
        return n_out * (2.0 * l->cfg.linear.in_features + (l->cfg.linear.bias ? 1.0 : 0.0));
    case CBQ_LAYER_BATCHNORM2D:
        return 2.0 * n_out;
    case CBQ_LAYER_RELU:
    case CBQ_LAYER_LEAKY_RELU:
        return n_out;
    case CBQ_LAYER_MAXPOOL2D:
    case CBQ_LAYER_AVGPOOL2D:
        return n_out * l->cfg.pool.kernel_h * l->cfg.pool.kernel_w;
    case CBQ_LAYER_GLOBAL_AVGPOOL:
        return n_in;
    default:
        return 0.0;
    }
}
