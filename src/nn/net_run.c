/* net_run.c - forward and (partial) backward through a cbq_net. Every
 * pointer comes from the blocks made in net.c; nothing is allocated here.
 * Each layer runs through its kind's row of the engine's layer table
 * (layer_ops.c). */
#include <math.h>
#include <string.h>

#include "nn/layer.h"
#include "nn/layer_ops.h"
#include "nn/net_impl.h"

static float *act(cbq_net *net, size_t i) { return net->acts + net->layer[i].act_off; }
static float *act_grad(cbq_net *net, size_t i) { return net->acts + net->layer[i].grad_off; }
static size_t count3(const size_t s[3]) { return s[0] * s[1] * s[2]; }

static net_layer_call layer_call(cbq_net *net, size_t i, size_t n)
{
    const net_layer *nl = &net->layer[i];
    const size_t(*ins)[3] = (const size_t(*)[3])net->in_shapes + nl->in_first;
    return (net_layer_call){.net = net, .spec = &net->spec.layers[i], .at = nl, .in = ins[0],
                            .ins = ins, .n_in = nl->n_in, .out = net->shapes[i], .n = n};
}

/* The output of layer `from`, or the network's input for -1. */
static float *source(cbq_net *net, long from) { return from < 0 ? net->input : act(net, (size_t)from); }

/* Where dLoss/d(output of `from`) goes: its gradient block, or the input's. */
static float *source_grad(cbq_net *net, long from)
{
    return from < 0 ? net->input_grad : act_grad(net, (size_t)from);
}

static size_t source_values(const cbq_net *net, long from)
{
    return net->batch * count3(from < 0 ? net->in_shape : net->shapes[from]);
}

static void run_forward(cbq_net *net, size_t i, size_t n)
{
    net_layer_call call = layer_call(net, i, n);
    const net_layer_ops *ops = net_layer_ops_of(call.spec->kind);
    const float *xs[CBQ_MAX_INPUTS];
    for (size_t j = 0; j < call.n_in; j++)
        xs[j] = source(net, cbq_model_spec_input(&net->spec, i, j));
    if (ops->forward_n)
        ops->forward_n(&call, xs, act(net, i));
    else
        ops->forward(&call, xs[0], act(net, i));
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
    net->sync_rc = CBQ_OK;
    for (size_t i = 0; i < net->n_layers; i++)
        run_forward(net, i, n);
    if (net->sync_rc != CBQ_OK)
        return sync_failed(net, err);
    net->batch = n;
    net->fwd_training = net->training;
    if (out)
        *out = act(net, net->n_layers - 1);
    return CBQ_OK;
}

/* Where layer i's backward writes the gradient of each input slot: NULL
 * where not wanted (below the stop layer; the input unless asked), the
 * tensor's own gradient for its first contribution, else room in fanout
 * that add_fanout then adds. Returns whether any slot is wanted. */
static int input_grad_targets(cbq_net *net, size_t i, size_t stop, int input_grad, float **dxs,
                              int *summed)
{
    const net_layer *nl = &net->layer[i];
    float *room = net->fanout;
    int any = 0;
    for (size_t j = 0; j < nl->n_in; j++) {
        long from = cbq_model_spec_input(&net->spec, i, j);
        int wanted = from < 0 ? stop == 0 && input_grad : (size_t)from >= stop;
        dxs[j] = NULL;
        summed[j] = 0;
        if (!wanted)
            continue;
        any = 1;
        if (!net->written[from + 1]) {
            dxs[j] = source_grad(net, from);
            net->written[from + 1] = 1;
            continue;
        }
        dxs[j] = room;
        summed[j] = 1;
        room += source_values(net, from);
    }
    return any;
}

static void add_fanout(cbq_net *net, size_t i, float *const *dxs, const int *summed)
{
    for (size_t j = 0; j < net->layer[i].n_in; j++) {
        long from = cbq_model_spec_input(&net->spec, i, j);
        if (summed[j])
            add_accumulate(source_grad(net, from), dxs[j], source_values(net, from), net->threads);
    }
}

static void run_backward(cbq_net *net, size_t i, float *const *dxs, int param_grads)
{
    net_layer_call call = layer_call(net, i, net->batch);
    const net_layer_ops *ops = net_layer_ops_of(call.spec->kind);
    const float *xs[CBQ_MAX_INPUTS];
    for (size_t j = 0; j < call.n_in; j++)
        xs[j] = source(net, cbq_model_spec_input(&net->spec, i, j));
    if (ops->backward_n)
        ops->backward_n(&call, xs, act_grad(net, i), dxs, param_grads);
    else
        ops->backward(&call, xs[0], act_grad(net, i), dxs[0], param_grads);
}

int cbq_net_backward_ex(cbq_net *net, const float *dout, size_t stop_layer, int param_grads,
                        int input_grad, cbq_error *err)
{
    CBQ_CHECK_ARG(err, net->batch > 0, "backward: no forward pass to go back through");
    CBQ_CHECK_ARG(err, stop_layer < net->n_layers, "backward: stop layer %zu, the network has %zu",
                  stop_layer, net->n_layers);
    CBQ_CHECK_ARG(err, stop_layer >= net->keep_from,
                  "backward: stop layer %zu, the network keeps activations from layer %zu on only "
                  "(cbq_net_keep_activations_from)", stop_layer, net->keep_from);
    const size_t last = net->n_layers - 1;
    float *g = act_grad(net, last);
    net->sync_rc = CBQ_OK;
    if (dout != g)
        memcpy(g, dout, net->batch * count3(net->shapes[last]) * sizeof *g);
    memset(net->written, 0, net->n_layers + 1);
    net->written[last + 1] = 1;
    for (size_t i = last + 1; i-- > stop_layer;) {
        if (!net->written[i + 1]) { /* a branch the output does not read */
            memset(act_grad(net, i), 0, source_values(net, (long)i) * sizeof(float));
            net->written[i + 1] = 1;
            continue;
        }
        float *dxs[CBQ_MAX_INPUTS];
        int summed[CBQ_MAX_INPUTS];
        if (!input_grad_targets(net, i, stop_layer, input_grad, dxs, summed) && !param_grads)
            continue;
        run_backward(net, i, dxs, param_grads);
        add_fanout(net, i, dxs, summed);
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
