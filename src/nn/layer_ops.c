/* layer_ops.c - the engine's half of the layer table (layer_ops.h): per
 * layer kind, one section with its tensors, initialisation and the calls of
 * its kernels (layer.h), then the table built from cbctiq/layer_kinds.def.
 * Kernels stay free of the net's layout; this file is where the two meet.
 */
#include "nn/layer_ops.h"

#include <math.h>
#include <string.h>

#include "nn/layer.h"

static size_t count3(const size_t s[3]) { return s[0] * s[1] * s[2]; }
static float *param(const net_layer_call *c, size_t off) { return c->net->params + off; }
static float *grad_or_null(const net_layer_call *c, int param_grads, int present, size_t off)
{
    return param_grads && present ? c->net->grads + off : NULL;
}

/* weight [shape] then, with has_bias, bias [shape[0]]: conv2d and linear. */
static void plan_weight_bias(cbq_net *net, size_t layer, int ndim, const size_t *shape, int has_bias)
{
    net_layer *nl = &net->layer[layer];
    size_t count = 1;
    for (int d = 0; d < ndim; d++)
        count *= shape[d];
    nl->w_off = net->n_params;
    net_add_tensor(net, layer, "weight", NET_T_PARAM, net->n_params, ndim, shape);
    net->n_params += count;
    nl->fan_in = count / shape[0];
    if (has_bias) {
        nl->b_off = net->n_params;
        net_add_tensor(net, layer, "bias", NET_T_PARAM, net->n_params, 1, shape);
        net->n_params += shape[0];
    }
}

/* kaiming_uniform_(a=sqrt(5)) gives bound sqrt(6/((1+5) fan_in)) =
 * 1/sqrt(fan_in); PyTorch's default bias bound is the same. */
static void init_fan_in_uniform(cbq_net *net, size_t layer, size_t outputs, int has_bias,
                                cbq_rng *rng)
{
    const net_layer *nl = &net->layer[layer];
    double bound = 1.0 / sqrt((double)nl->fan_in);
    for (size_t k = 0; k < outputs * nl->fan_in; k++)
        net->params[nl->w_off + k] = (float)((2.0 * cbq_rng_uniform(rng) - 1.0) * bound);
    if (has_bias)
        for (size_t k = 0; k < outputs; k++)
            net->params[nl->b_off + k] = (float)((2.0 * cbq_rng_uniform(rng) - 1.0) * bound);
}

/* ---- conv2d ---------------------------------------------------------------- */

static void conv2d_plan(cbq_net *net, size_t layer, const size_t in[3])
{
    const cbq_conv2d_cfg *c = &net->spec.layers[layer].cfg.conv;
    size_t groups = c->groups > 0 ? (size_t)c->groups : 1; /* 0 reads as 1 */
    size_t ws[4] = {(size_t)c->out_channels, (size_t)c->in_channels / groups, (size_t)c->kernel_h,
                    (size_t)c->kernel_w};
    plan_weight_bias(net, layer, 4, ws, c->bias);
    size_t wsz = conv2d_workspace_floats(c, in[1], in[2]);
    if (wsz > net->ws_per_thread)
        net->ws_per_thread = wsz;
    size_t pv = conv2d_dw_private_floats(c);
    if (pv > net->dw_per_thread)
        net->dw_per_thread = pv;
}

static void conv2d_init(cbq_net *net, size_t layer, cbq_rng *rng)
{
    const cbq_conv2d_cfg *c = &net->spec.layers[layer].cfg.conv;
    init_fan_in_uniform(net, layer, (size_t)c->out_channels, c->bias, rng);
}

static void conv2d_run_forward(const net_layer_call *c, const float *x, float *y)
{
    const cbq_conv2d_cfg *cfg = &c->spec->cfg.conv;
    conv2d_forward(y, x, param(c, c->at->w_off), cfg->bias ? param(c, c->at->b_off) : NULL, cfg,
                   c->n, c->in[1], c->in[2], c->net->workspace, c->net->threads);
}

static void conv2d_run_backward(const net_layer_call *c, const float *x, const float *dy, float *dx,
                                int param_grads)
{
    const cbq_conv2d_cfg *cfg = &c->spec->cfg.conv;
    conv2d_backward(dx, grad_or_null(c, param_grads, 1, c->at->w_off),
                    grad_or_null(c, param_grads, cfg->bias, c->at->b_off), dy, x,
                    param(c, c->at->w_off), cfg, c->n, c->in[1], c->in[2], c->net->workspace,
                    c->net->dw_private, c->net->threads);
}

static const net_layer_ops conv2d_ops = {
    .max_tensors = 2, .plan = conv2d_plan, .init = conv2d_init,
    .forward = conv2d_run_forward, .backward = conv2d_run_backward,
};

/* ---- batchnorm2d ----------------------------------------------------------- */

/* weight, bias [C]; running_mean, running_var [C]; num_batches_tracked;
 * saved batch mean and 1/std [C] each. */
static void batchnorm2d_plan(cbq_net *net, size_t layer, const size_t in[3])
{
    (void)in;
    net_layer *nl = &net->layer[layer];
    size_t ch = (size_t)net->spec.layers[layer].cfg.bn.channels;
    nl->w_off = net->n_params;
    net_add_tensor(net, layer, "weight", NET_T_PARAM, net->n_params, 1, &ch);
    nl->b_off = net->n_params + ch;
    net_add_tensor(net, layer, "bias", NET_T_PARAM, net->n_params + ch, 1, &ch);
    net->n_params += 2 * ch;
    nl->rm_off = net->n_buffers;
    net_add_tensor(net, layer, "running_mean", NET_T_BUFFER, net->n_buffers, 1, &ch);
    net_add_tensor(net, layer, "running_var", NET_T_BUFFER, net->n_buffers + ch, 1, &ch);
    net->n_buffers += 2 * ch;
    nl->nbt_index = net->n_counters;
    net_add_tensor(net, layer, "num_batches_tracked", NET_T_COUNTER, net->n_counters++, 0, NULL);
    nl->aux_off = net->aux_total;
    net->aux_total += 2 * ch;
}

/* weight 1, bias 0, running mean 0, running variance 1; draws nothing */
static void batchnorm2d_init(cbq_net *net, size_t layer, cbq_rng *rng)
{
    (void)rng;
    const net_layer *nl = &net->layer[layer];
    size_t ch = (size_t)net->spec.layers[layer].cfg.bn.channels;
    for (size_t c = 0; c < ch; c++) {
        net->params[nl->w_off + c] = 1.0f;
        net->params[nl->b_off + c] = 0.0f;
        net->buffers[nl->rm_off + c] = 0.0f;
        net->buffers[nl->rm_off + ch + c] = 1.0f;
    }
}

static int batchnorm2d_check_train_batch(const cbq_net *net, size_t layer, size_t n, cbq_error *err)
{
    const size_t *s = net->shapes[layer]; /* its input's shape too */
    if (n * s[1] * s[2] < 2)
        return CBQ_FAIL(err, CBQ_ERR_ARG,
                        "layer '%s' (batchnorm2d): training needs more than 1 value per "
                        "channel (batch %zu of %zux%zu)",
                        net->spec.layers[layer].name, n, s[1], s[2]);
    return CBQ_OK;
}

/* Batch norm over the ranks of a job (cbq_net_set_dist) in training mode. */
static int batchnorm2d_synced(const net_layer_call *c)
{
    const cbq_net *net = c->net;
    return net->dist && net->dist->size > 1;
}

/* Sums sums[0 .. n) over the ranks, then the local value count (appended
 * as sums[n]) into *total. A failure is kept for cbq_net_forward/backward
 * to return; the pass then runs on with this rank's own values. */
static void sum_over_ranks(cbq_net *net, size_t n, double count, double *total)
{
    net->sync_sums[n] = count;
    *total = count;
    if (net->sync_rc != CBQ_OK)
        return;
    net->sync_rc = cbq_dist_allreduce_sum_double(net->dist, net->sync_sums, n + 1, &net->sync_err);
    if (net->sync_rc == CBQ_OK)
        *total = net->sync_sums[n];
}

static void batchnorm2d_run_forward(const net_layer_call *c, const float *x, float *y)
{
    cbq_net *net = c->net;
    const int relu = c->at->relu_fused;
    size_t ch = c->in[0], hw = c->in[1] * c->in[2];
    float *mean = net->aux + c->at->aux_off, *invstd = mean + ch;
    float *rm = net->buffers + c->at->rm_off, *rv = rm + ch;
    const float *gamma = param(c, c->at->w_off), *beta = param(c, c->at->b_off);
    if (net->training && batchnorm2d_synced(c)) {
        double count;
        batchnorm2d_local_sums(net->sync_sums, x, ch, c->n, hw, net->threads);
        sum_over_ranks(net, 2 * ch, (double)(c->n * hw), &count);
        batchnorm2d_forward_train_summed(y, mean, invstd, rm, rv, net->counters + c->at->nbt_index, x,
                                         gamma, beta, &c->spec->cfg.bn, net->sync_sums, count, c->n,
                                         hw, relu, net->threads);
    } else if (net->training)
        batchnorm2d_forward_train(y, mean, invstd, rm, rv, net->counters + c->at->nbt_index, x, gamma,
                                  beta, &c->spec->cfg.bn, c->n, hw, relu, net->threads);
    else
        batchnorm2d_forward_eval(y, mean, invstd, x, gamma, beta, rm, rv, &c->spec->cfg.bn, c->n, hw,
                                 relu, net->threads);
}

/* dgamma and dbeta keep this rank's share (the gradient sum over ranks adds
 * them up); dx needs the whole batch's sums of dy and dy * xhat. */
static void batchnorm2d_run_backward_synced(const net_layer_call *c, const float *x, const float *dy,
                                            float *dx, int param_grads)
{
    cbq_net *net = c->net;
    size_t ch = c->in[0], hw = c->in[1] * c->in[2];
    const float *mean = net->aux + c->at->aux_off, *gamma = param(c, c->at->w_off);
    double count;
    batchnorm2d_local_grad_sums(net->sync_sums, grad_or_null(c, param_grads, 1, c->at->w_off),
                                grad_or_null(c, param_grads, 1, c->at->b_off), dy, x, mean, mean + ch,
                                ch, c->n, hw, net->threads);
    if (!dx)
        return;
    sum_over_ranks(net, 2 * ch, (double)(c->n * hw), &count);
    batchnorm2d_input_grad_summed(dx, dy, x, gamma, mean, mean + ch, net->sync_sums, count, ch, c->n, hw,
                                  net->threads);
}

static void batchnorm2d_run_backward(const net_layer_call *c, const float *x, const float *dy,
                                     float *dx, int param_grads)
{
    if (c->net->fwd_training && batchnorm2d_synced(c)) {
        batchnorm2d_run_backward_synced(c, x, dy, dx, param_grads);
        return;
    }
    const float *mean = c->net->aux + c->at->aux_off;
    batchnorm2d_backward(dx, grad_or_null(c, param_grads, 1, c->at->w_off),
                         grad_or_null(c, param_grads, 1, c->at->b_off), dy, x,
                         param(c, c->at->w_off), mean, mean + c->in[0], c->net->fwd_training,
                         c->in[0], c->n, c->in[1] * c->in[2], c->net->threads);
}

static const net_layer_ops batchnorm2d_ops = {
    .max_tensors = 5, .plan = batchnorm2d_plan, .init = batchnorm2d_init,
    .check_train_batch = batchnorm2d_check_train_batch,
    .forward = batchnorm2d_run_forward, .backward = batchnorm2d_run_backward,
};

/* ---- relu, leaky_relu -------------------------------------------------------- */

static void relu_run_forward(const net_layer_call *c, const float *x, float *y)
{
    if (c->at->relu_done) /* its input layer wrote max(y, 0) in place (net.c, plan_fusion) */
        return;
    relu_forward(y, x, c->n * count3(c->in), c->net->threads);
}

static void relu_run_backward(const net_layer_call *c, const float *x, const float *dy, float *dx,
                              int param_grads)
{
    (void)param_grads;
    if (dx)
        relu_backward(dx, dy, x, c->n * count3(c->in), c->net->threads);
}

static const net_layer_ops relu_ops = {.forward = relu_run_forward, .backward = relu_run_backward};

static void leaky_relu_run_forward(const net_layer_call *c, const float *x, float *y)
{
    leaky_relu_forward(y, x, (float)c->spec->cfg.leaky.negative_slope, c->n * count3(c->in),
                       c->net->threads);
}

static void leaky_relu_run_backward(const net_layer_call *c, const float *x, const float *dy,
                                    float *dx, int param_grads)
{
    (void)param_grads;
    if (dx)
        leaky_relu_backward(dx, dy, x, (float)c->spec->cfg.leaky.negative_slope,
                            c->n * count3(c->in), c->net->threads);
}

static const net_layer_ops leaky_relu_ops = {
    .forward = leaky_relu_run_forward, .backward = leaky_relu_run_backward,
};

/* ---- maxpool2d, avgpool2d, global_avgpool ------------------------------------ */

static void maxpool2d_run_forward(const net_layer_call *c, const float *x, float *y)
{
    maxpool2d_forward(y, x, &c->spec->cfg.pool, c->n * c->in[0], c->in[1], c->in[2], c->net->threads);
}

static void maxpool2d_run_backward(const net_layer_call *c, const float *x, const float *dy,
                                   float *dx, int param_grads)
{
    (void)param_grads;
    if (dx)
        maxpool2d_backward(dx, dy, x, &c->spec->cfg.pool, c->n * c->in[0], c->in[1], c->in[2],
                           c->net->threads);
}

static const net_layer_ops maxpool2d_ops = {
    .forward = maxpool2d_run_forward, .backward = maxpool2d_run_backward,
};

static void avgpool2d_run_forward(const net_layer_call *c, const float *x, float *y)
{
    avgpool2d_forward(y, x, &c->spec->cfg.pool, c->n * c->in[0], c->in[1], c->in[2], c->net->threads);
}

static void avgpool2d_run_backward(const net_layer_call *c, const float *x, const float *dy,
                                   float *dx, int param_grads)
{
    (void)x, (void)param_grads;
    if (dx)
        avgpool2d_backward(dx, dy, &c->spec->cfg.pool, c->n * c->in[0], c->in[1], c->in[2],
                           c->net->threads);
}

static const net_layer_ops avgpool2d_ops = {
    .forward = avgpool2d_run_forward, .backward = avgpool2d_run_backward,
};

static void global_avgpool_run_forward(const net_layer_call *c, const float *x, float *y)
{
    global_avgpool_forward(y, x, c->n * c->in[0], c->in[1] * c->in[2], c->net->threads);
}

static void global_avgpool_run_backward(const net_layer_call *c, const float *x, const float *dy,
                                        float *dx, int param_grads)
{
    (void)x, (void)param_grads;
    if (dx)
        global_avgpool_backward(dx, dy, c->n * c->in[0], c->in[1] * c->in[2], c->net->threads);
}

static const net_layer_ops global_avgpool_ops = {
    .forward = global_avgpool_run_forward, .backward = global_avgpool_run_backward,
};

/* ---- dropout ----------------------------------------------------------------- */

/* the mask of the last training forward, max_batch samples */
static void dropout_plan(cbq_net *net, size_t layer, const size_t in[3])
{
    (void)in;
    net->layer[layer].aux_off = net->aux_total;
    net->aux_total += count3(net->shapes[layer]) * net->max_batch;
}

static void dropout_run_forward(const net_layer_call *c, const float *x, float *y)
{
    size_t count = c->n * count3(c->in);
    if (c->net->training)
        dropout_forward(y, c->net->aux + c->at->aux_off, x, c->spec->cfg.dropout.p, count,
                        &c->net->dropout_rng);
    else
        memcpy(y, x, count * sizeof *y);
}

static void dropout_run_backward(const net_layer_call *c, const float *x, const float *dy, float *dx,
                                 int param_grads)
{
    (void)x, (void)param_grads;
    size_t count = c->n * count3(c->in);
    if (!dx)
        return;
    if (c->net->fwd_training)
        dropout_backward(dx, dy, c->net->aux + c->at->aux_off, count);
    else
        memcpy(dx, dy, count * sizeof *dx);
}

static const net_layer_ops dropout_ops = {
    .plan = dropout_plan, .forward = dropout_run_forward, .backward = dropout_run_backward,
};

/* ---- linear ------------------------------------------------------------------ */

static void linear_plan(cbq_net *net, size_t layer, const size_t in[3])
{
    (void)in;
    const cbq_linear_cfg *c = &net->spec.layers[layer].cfg.linear;
    size_t ws[2] = {(size_t)c->out_features, (size_t)c->in_features};
    plan_weight_bias(net, layer, 2, ws, c->bias);
}

static void linear_init(cbq_net *net, size_t layer, cbq_rng *rng)
{
    const cbq_linear_cfg *c = &net->spec.layers[layer].cfg.linear;
    init_fan_in_uniform(net, layer, (size_t)c->out_features, c->bias, rng);
}

static void linear_run_forward(const net_layer_call *c, const float *x, float *y)
{
    const cbq_linear_cfg *cfg = &c->spec->cfg.linear;
    linear_forward(y, x, param(c, c->at->w_off), cfg->bias ? param(c, c->at->b_off) : NULL, cfg, c->n);
}

static void linear_run_backward(const net_layer_call *c, const float *x, const float *dy, float *dx,
                                int param_grads)
{
    const cbq_linear_cfg *cfg = &c->spec->cfg.linear;
    linear_backward(dx, grad_or_null(c, param_grads, 1, c->at->w_off),
                    grad_or_null(c, param_grads, cfg->bias, c->at->b_off), dy, x,
                    param(c, c->at->w_off), cfg, c->n);
}

static const net_layer_ops linear_ops = {
    .max_tensors = 2, .plan = linear_plan, .init = linear_init,
    .forward = linear_run_forward, .backward = linear_run_backward,
};

/* ---- graph kinds: add, concat, mul ------------------------------------------- */

static void add_run_forward(const net_layer_call *c, const float *const *xs, float *y)
{
    add_forward(y, xs, c->n_in, c->n * count3(c->in), c->at->relu_fused, c->net->threads);
}

static void add_run_backward(const net_layer_call *c, const float *const *xs, const float *dy,
                             float *const *dxs, int param_grads)
{
    (void)xs, (void)param_grads;
    add_backward(dxs, dy, c->n_in, c->n * count3(c->in));
}

static const net_layer_ops add_ops = {.forward_n = add_run_forward, .backward_n = add_run_backward};

static void concat_channels(const net_layer_call *c, size_t *channels)
{
    for (size_t j = 0; j < c->n_in; j++)
        channels[j] = c->ins[j][0];
}

static void concat_run_forward(const net_layer_call *c, const float *const *xs, float *y)
{
    size_t channels[CBQ_MAX_INPUTS];
    concat_channels(c, channels);
    concat_forward(y, xs, channels, c->n_in, c->n, c->in[1] * c->in[2], c->net->threads);
}

static void concat_run_backward(const net_layer_call *c, const float *const *xs, const float *dy,
                                float *const *dxs, int param_grads)
{
    (void)xs, (void)param_grads;
    size_t channels[CBQ_MAX_INPUTS];
    concat_channels(c, channels);
    concat_backward(dxs, dy, channels, c->n_in, c->n, c->in[1] * c->in[2], c->net->threads);
}

static const net_layer_ops concat_ops = {
    .forward_n = concat_run_forward, .backward_n = concat_run_backward,
};

/* the output's grid; each input's is it or 1x1 (layer_table.c checked) */
static size_t mul_hw(const net_layer_call *c) { return c->out[1] * c->out[2]; }

static void mul_run_forward(const net_layer_call *c, const float *const *xs, float *y)
{
    mul_forward(y, xs[0], xs[1], c->n * c->ins[0][0], mul_hw(c), c->ins[0][1] * c->ins[0][2],
                c->ins[1][1] * c->ins[1][2], c->net->threads);
}

static void mul_run_backward(const net_layer_call *c, const float *const *xs, const float *dy,
                             float *const *dxs, int param_grads)
{
    (void)param_grads;
    mul_backward(dxs[0], dxs[1], dy, xs[0], xs[1], c->n * c->ins[0][0], mul_hw(c),
                 c->ins[0][1] * c->ins[0][2], c->ins[1][1] * c->ins[1][2], c->net->threads);
}

static const net_layer_ops mul_ops = {.forward_n = mul_run_forward, .backward_n = mul_run_backward};

/* ---- identity, flatten: copies (flatten keeps the order of [C, H, W]) ---- */

static void copy_run_forward(const net_layer_call *c, const float *x, float *y)
{
    memcpy(y, x, c->n * count3(c->in) * sizeof *y);
}

static void copy_run_backward(const net_layer_call *c, const float *x, const float *dy, float *dx,
                              int param_grads)
{
    (void)x, (void)param_grads;
    if (dx)
        memcpy(dx, dy, c->n * count3(c->in) * sizeof *dx);
}

static const net_layer_ops identity_ops = {
    .forward = copy_run_forward, .backward = copy_run_backward,
};

static const net_layer_ops flatten_ops = {
    .forward = copy_run_forward, .backward = copy_run_backward,
};

/* ---- sigmoid, silu -------------------------------------------------------------- */

static void sigmoid_run_forward(const net_layer_call *c, const float *x, float *y)
{
    sigmoid_forward(y, x, c->n * count3(c->in), c->net->threads);
}

static void sigmoid_run_backward(const net_layer_call *c, const float *x, const float *dy, float *dx,
                                 int param_grads)
{
    (void)param_grads;
    if (dx)
        sigmoid_backward(dx, dy, x, c->n * count3(c->in), c->net->threads);
}

static const net_layer_ops sigmoid_ops = {
    .forward = sigmoid_run_forward, .backward = sigmoid_run_backward,
};

static void silu_run_forward(const net_layer_call *c, const float *x, float *y)
{
    silu_forward(y, x, c->n * count3(c->in), c->net->threads);
}

static void silu_run_backward(const net_layer_call *c, const float *x, const float *dy, float *dx,
                              int param_grads)
{
    (void)param_grads;
    if (dx)
        silu_backward(dx, dy, x, c->n * count3(c->in), c->net->threads);
}

static const net_layer_ops silu_ops = {.forward = silu_run_forward, .backward = silu_run_backward};

/* ---- adaptive_avgpool2d (output_size 1): global_avgpool's kernels, whose
 * [planes] output is the [C, 1, 1] grid of each sample ---------------------- */

static const net_layer_ops adaptive_avgpool2d_ops = {
    .forward = global_avgpool_run_forward, .backward = global_avgpool_run_backward,
};

/* ---- the table ---------------------------------------------------------------- */

static const net_layer_ops *const ops_table[] = {
#define CBQ_LAYER_KIND(id, stem) [CBQ_LAYER_##id] = &stem##_ops,
#include "cbctiq/layer_kinds.def"
#undef CBQ_LAYER_KIND
};
_Static_assert(sizeof ops_table / sizeof ops_table[0] == CBQ_LAYER_KIND_COUNT,
               "one engine row per layer kind");

const net_layer_ops *net_layer_ops_of(cbq_layer_kind kind) { return ops_table[kind]; }
