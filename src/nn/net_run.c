/* net_run.c - forward and (partial) backward through a cbq_net. Every
 * pointer comes from the blocks made in net.c; nothing is allocated here.
 * Each layer runs through its kind's row of the engine's layer table
 * (layer_ops.c). */
#include <math.h>
#include <string.h>

#include "nn/layer_ops.h"
#include "nn/net_impl.h"

static float *act(cbq_net *net, size_t i) { return net->acts + net->layer[i].act_off; }
static float *act_grad(cbq_net *net, size_t i) { return net->acts + net->layer[i].grad_off; }
static size_t count3(const size_t s[3]) { return s[0] * s[1] * s[2]; }

static net_layer_call layer_call(cbq_net *net, size_t i, size_t n)
{
    return (net_layer_call){.net = net, .spec = &net->spec.layers[i], .at = &net->layer[i],
                            .in = i ? net->shapes[i - 1] : net->in_shape, .n = n};
}

/* A batch-norm sum over the ranks failed during the pass (layer_ops.c). */
static int sync_failed(const cbq_net *net, cbq_error *err)
{
    if (err)
        *err = net->sync_err;
    return net->sync_rc;
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
    for (size_t i = 0; i < net->n_layers && net->training; i++) {
        const net_layer_ops *ops = net_layer_ops_of(net->spec.layers[i].kind);
        if (ops->check_train_batch)
            CBQ_TRY(ops->check_train_batch(net, i, n, err));
    }
    memcpy(net->input, in, n * count3(net->in_shape) * sizeof *in);
    const float *x = net->input;
    net->sync_rc = CBQ_OK;
    for (size_t i = 0; i < net->n_layers; i++) {
        net_layer_call call = layer_call(net, i, n);
        net_layer_ops_of(call.spec->kind)->forward(&call, x, act(net, i));
        x = act(net, i);
    }
    if (net->sync_rc != CBQ_OK)
        return sync_failed(net, err);
    net->batch = n;
    net->fwd_training = net->training;
    if (out)
        *out = x;
    return CBQ_OK;
}

int cbq_net_backward_ex(cbq_net *net, const float *dout, size_t stop_layer, int param_grads,
                        int input_grad, cbq_error *err)
{
    CBQ_CHECK_ARG(err, net->batch > 0, "backward: no forward pass to go back through");
    CBQ_CHECK_ARG(err, stop_layer < net->n_layers, "backward: stop layer %zu, the network has %zu",
                  stop_layer, net->n_layers);
    const size_t last = net->n_layers - 1;
    float *g = act_grad(net, last);
    net->sync_rc = CBQ_OK;
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
        net_layer_call call = layer_call(net, i, net->batch);
        const float *x = i ? act(net, i - 1) : net->input;
        net_layer_ops_of(call.spec->kind)->backward(&call, x, act_grad(net, i), din, param_grads);
    }
    if (net->sync_rc != CBQ_OK)
        return sync_failed(net, err);
    return CBQ_OK;
}

int cbq_net_backward(cbq_net *net, const float *dout, size_t stop_layer, int param_grads,
                     cbq_error *err)
{
    return cbq_net_backward_ex(net, dout, stop_layer, param_grads, 1, err);
}
