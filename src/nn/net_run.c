/* net_run.c - forward and (partial) backward through a cbq_net. Every
 * pointer comes from the blocks made in net.c; nothing is allocated here. */
#include <math.h>
#include <string.h>

#include "nn/layer.h"
#include "nn/net_impl.h"

static float *act(cbq_net *net, size_t i) { return net->acts + net->layer[i].act_off; }
static float *act_grad(cbq_net *net, size_t i) { return net->act_grads + net->layer[i].act_off; }
static size_t count3(const size_t s[3]) { return s[0] * s[1] * s[2]; }

static void layer_forward(cbq_net *net, size_t i, const float *x, size_t n)
{
    const cbq_layer_spec *l = &net->spec.layers[i];
    net_layer *nl = &net->layer[i];
    const size_t *in = i ? net->shapes[i - 1] : net->in_shape;
    float *y = act(net, i);
    const int t = net->threads;
    const size_t count = n * count3(in);
    switch (l->kind) {
    case CBQ_LAYER_CONV2D:
        conv2d_forward(y, x, net->params + nl->w_off, l->cfg.conv.bias ? net->params + nl->b_off : NULL,
                       &l->cfg.conv, n, in[1], in[2], net->workspace, t);
        break;
    case CBQ_LAYER_BATCHNORM2D: {
        size_t ch = in[0];
        float *mean = net->aux + nl->aux_off, *invstd = mean + ch;
        float *rm = net->buffers + nl->rm_off, *rv = rm + ch;
        if (net->training)
            batchnorm2d_forward_train(y, mean, invstd, rm, rv, net->counters + nl->nbt_index, x,
                                      net->params + nl->w_off, net->params + nl->b_off, &l->cfg.bn,
                                      n, in[1] * in[2], t);
        else
            batchnorm2d_forward_eval(y, mean, invstd, x, net->params + nl->w_off,
                                     net->params + nl->b_off, rm, rv, &l->cfg.bn, n,
                                     in[1] * in[2], t);
        break;
    }
    case CBQ_LAYER_RELU:
        relu_forward(y, x, count, t);
        break;
    case CBQ_LAYER_LEAKY_RELU:
        leaky_relu_forward(y, x, (float)l->cfg.leaky.negative_slope, count, t);
        break;
    case CBQ_LAYER_MAXPOOL2D:
        maxpool2d_forward(y, x, &l->cfg.pool, n * in[0], in[1], in[2], t);
        break;
    case CBQ_LAYER_AVGPOOL2D:
        avgpool2d_forward(y, x, &l->cfg.pool, n * in[0], in[1], in[2], t);
        break;
    case CBQ_LAYER_GLOBAL_AVGPOOL:
        global_avgpool_forward(y, x, n * in[0], in[1] * in[2], t);
        break;
    case CBQ_LAYER_DROPOUT:
        if (net->training)
            dropout_forward(y, net->aux + nl->aux_off, x, l->cfg.dropout.p, count, &net->dropout_rng);
        else
            memcpy(y, x, count * sizeof *y);
        break;
    case CBQ_LAYER_LINEAR:
        linear_forward(y, x, net->params + nl->w_off,
                       l->cfg.linear.bias ? net->params + nl->b_off : NULL, &l->cfg.linear, n);
        break;
    default:
        break;
    }
}

int cbq_net_check_outputs(const cbq_net *net, const float *out, size_t n, cbq_error *err)
{
    const cbq_model_spec *spec = &net->spec;
    size_t K = spec->n_outputs;
    for (size_t i = 0; i < n * K; i++)
        if (!isfinite(out[i]))
            return CBQ_FAIL(err, CBQ_ERR_RANGE, "the model's output '%s' is %s (the network "
                            "overflows float32 on this input: check the weights)",
                            spec->outputs[i % K], isnan(out[i]) ? "NaN" : "infinite");
    return CBQ_OK;
}

int cbq_net_forward(cbq_net *net, const float *in, size_t n, const float **out, cbq_error *err)
{
    CBQ_CHECK_ARG(err, n >= 1 && n <= net->max_batch,
                  "forward: batch of %zu samples, the network was created for 1..%zu", n,
                  net->max_batch);
    if (net->training) {
        for (size_t i = 0; i < net->n_layers; i++) {
            const size_t *s = i ? net->shapes[i - 1] : net->in_shape;
            if (net->spec.layers[i].kind == CBQ_LAYER_BATCHNORM2D && n * s[1] * s[2] < 2)
                return CBQ_FAIL(err, CBQ_ERR_ARG,
                                "layer '%s' (batchnorm2d): training needs more than 1 value per "
                                "channel (batch %zu of %zux%zu)",
                                net->spec.layers[i].name, n, s[1], s[2]);
        }
    }
    memcpy(net->input, in, n * count3(net->in_shape) * sizeof *in);
    const float *x = net->input;
    for (size_t i = 0; i < net->n_layers; i++) {
        layer_forward(net, i, x, n);
        x = act(net, i);
    }
    net->batch = n;
    net->fwd_training = net->training;
    if (out)
        *out = x;
    return CBQ_OK;
}

/* din may be NULL (not needed); params: accumulate parameter gradients. */
static void layer_backward(cbq_net *net, size_t i, float *din, int params)
{
    const cbq_layer_spec *l = &net->spec.layers[i];
    net_layer *nl = &net->layer[i];
    const size_t *in = i ? net->shapes[i - 1] : net->in_shape;
    const float *x = i ? act(net, i - 1) : net->input;
    const float *g = act_grad(net, i);
    const size_t n = net->batch, count = n * count3(in);
    const int t = net->threads;
    float *dw = params ? net->grads + nl->w_off : NULL;
    switch (l->kind) {
    case CBQ_LAYER_CONV2D:
        conv2d_backward(din, dw, params && l->cfg.conv.bias ? net->grads + nl->b_off : NULL, g, x,
                        net->params + nl->w_off, &l->cfg.conv, n, in[1], in[2], net->workspace,
                        net->dw_private, t);
        break;
    case CBQ_LAYER_BATCHNORM2D: {
        const float *mean = net->aux + nl->aux_off;
        batchnorm2d_backward(din, dw, params ? net->grads + nl->b_off : NULL, g, x,
                             net->params + nl->w_off, mean, mean + in[0], net->fwd_training, in[0],
                             n, in[1] * in[2], t);
        break;
    }
    case CBQ_LAYER_RELU:
        if (din)
            relu_backward(din, g, x, count, t);
        break;
    case CBQ_LAYER_LEAKY_RELU:
        if (din)
            leaky_relu_backward(din, g, x, (float)l->cfg.leaky.negative_slope, count, t);
        break;
    case CBQ_LAYER_MAXPOOL2D:
        if (din)
            maxpool2d_backward(din, g, x, &l->cfg.pool, n * in[0], in[1], in[2], t);
        break;
    case CBQ_LAYER_AVGPOOL2D:
        if (din)
            avgpool2d_backward(din, g, &l->cfg.pool, n * in[0], in[1], in[2], t);
        break;
    case CBQ_LAYER_GLOBAL_AVGPOOL:
        if (din)
            global_avgpool_backward(din, g, n * in[0], in[1] * in[2], t);
        break;
    case CBQ_LAYER_DROPOUT:
        if (din) {
            if (net->fwd_training)
                dropout_backward(din, g, net->aux + nl->aux_off, count);
            else
                memcpy(din, g, count * sizeof *din);
        }
        break;
    case CBQ_LAYER_LINEAR:
        linear_backward(din, dw, params && l->cfg.linear.bias ? net->grads + nl->b_off : NULL, g, x,
                        net->params + nl->w_off, &l->cfg.linear, n);
        break;
    default:
        break;
    }
}

int cbq_net_backward_ex(cbq_net *net, const float *dout, size_t stop_layer, int param_grads,
                        int input_grad, cbq_error *err)
{
    CBQ_CHECK_ARG(err, net->batch > 0, "backward: no forward pass to go back through");
    CBQ_CHECK_ARG(err, stop_layer < net->n_layers, "backward: stop layer %zu, the network has %zu",
                  stop_layer, net->n_layers);
    const size_t last = net->n_layers - 1;
    float *g = act_grad(net, last);
    if (dout != g)
        memcpy(g, dout, net->batch * count3(net->shapes[last]) * sizeof *g);
    for (size_t i = last + 1; i-- > stop_layer;) {
        float *din = NULL;
        if (i > stop_layer)
            din = act_grad(net, i - 1);
        else if (i == 0 && input_grad)
            din = net->input_grad;
        if (!din && !param_grads)
            continue;
        layer_backward(net, i, din, param_grads);
    }
    return CBQ_OK;
}

int cbq_net_backward(cbq_net *net, const float *dout, size_t stop_layer, int param_grads,
                     cbq_error *err)
{
    return cbq_net_backward_ex(net, dout, stop_layer, param_grads, 1, err);
}
