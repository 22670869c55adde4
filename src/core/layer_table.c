/* layer_table.c - the layer table (include/cbctiq/layer_table.h): per layer
 * kind, its model.json hyper-parameters, shape rule and cost, one section
 * per kind, then the table built from cbctiq/layer_kinds.def.
 *
 * Hyper-parameter names and defaults are PyTorch's (torch.nn.Conv2d,
 * BatchNorm2d, LeakyReLU, MaxPool2d, AvgPool2d, Dropout, Linear), so that
 * model.json maps one to one onto PyTorch modules. Shape rules are PyTorch's
 * too:
 *   conv/pool: out = floor((in + 2*pad - reach) / stride) + 1, reach =
 *     dilation*(kernel-1)+1 (pools: dilation 1); with ceil_mode the division
 *     rounds up, but the last window must start inside the input or its
 *     left padding (out-1)*stride < in + pad, else out is one less
 *   linear: flattens its input (C*H*W must equal in_features)
 * Pooling also follows PyTorch in refusing pad > kernel/2. The FLOP
 * convention is stated once in include/cbctiq/model_cost.h.
 */
#include "cbctiq/layer_table.h"

#include <stddef.h>

/* Limits that keep every later size product far from overflow. */
#define MAX_CHANNELS 65536
#define MAX_WINDOW 4096 /* kernel, stride, padding */
#define MAX_FEATURES (1 << 30)

#define AT(member) offsetof(cbq_layer_spec, cfg.member)
#define N_OF(array) (sizeof array / sizeof array[0])

static double numel(const size_t s[3]) { return (double)s[0] * (double)s[1] * (double)s[2]; }

/* ---- window ops (conv2d, pooling) ------------------------------------------ */

/* One axis of a window op: kernel, stride, padding, dilation (1 for pools). */
typedef struct { int kernel, stride, pad, dilation; } window_axis;

/* One spatial axis of a window op; 0 on success, else fills why. */
static int window_out(size_t in, window_axis a, int ceil_mode, size_t *out, const char **why)
{
    if (a.kernel <= 0 || a.stride <= 0 || a.pad < 0 || a.dilation <= 0) {
        *why = "kernel, stride and dilation must be positive and padding non-negative";
        return -1;
    }
    size_t padded = in + 2 * (size_t)a.pad; /* in < 2^34, pad < 2^31: no overflow */
    size_t reach = (size_t)a.dilation * (size_t)(a.kernel - 1) + 1;
    if (padded < reach) {
        *why = "the kernel is larger than the padded input";
        return -1;
    }
    size_t span = padded - reach, stride = (size_t)a.stride;
    *out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    if (ceil_mode && (*out - 1) * stride >= in + (size_t)a.pad)
        (*out)--; /* PyTorch: no window may start in the right padding */
    return 0;
}

static int window_shape(const char *layer, const char *kind, window_axis ah, window_axis aw,
                        int ceil_mode, const size_t in[3], size_t out[3], cbq_error *err)
{
    const char *why = NULL;
    if (window_out(in[1], ah, ceil_mode, &out[1], &why) ||
        window_out(in[2], aw, ceil_mode, &out[2], &why))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "layer '%s' (%s): input %zux%zux%zu: %s (kernel %dx%d, stride %dx%d, "
                        "padding %dx%d, dilation %dx%d)",
                        layer, kind, in[0], in[1], in[2], why, ah.kernel, aw.kernel, ah.stride,
                        aw.stride, ah.pad, aw.pad, ah.dilation, aw.dilation);
    return CBQ_OK;
}

/* ---- conv2d ---------------------------------------------------------------- */

static const cbq_hyper_param conv2d_hyper[] = {
    {.key = "in_channels", .type = CBQ_HYPER_INT, .offset = AT(conv.in_channels), .required = 1,
     .lo = 1, .hi = MAX_CHANNELS},
    {.key = "out_channels", .type = CBQ_HYPER_INT, .offset = AT(conv.out_channels), .required = 1,
     .lo = 1, .hi = MAX_CHANNELS},
    {.key = "kernel_size", .type = CBQ_HYPER_PAIR, .offset = AT(conv.kernel_h),
     .offset_w = AT(conv.kernel_w), .required = 1, .def = 1, .lo = 1, .hi = MAX_WINDOW},
    {.key = "stride", .type = CBQ_HYPER_PAIR, .offset = AT(conv.stride_h),
     .offset_w = AT(conv.stride_w), .def = 1, .lo = 1, .hi = MAX_WINDOW},
    {.key = "padding", .type = CBQ_HYPER_PAIR, .offset = AT(conv.pad_h), .offset_w = AT(conv.pad_w),
     .def = 0, .lo = 0, .hi = MAX_WINDOW},
    {.key = "bias", .type = CBQ_HYPER_BOOL, .offset = AT(conv.bias), .def = 1},
    {.key = "dilation", .type = CBQ_HYPER_PAIR, .offset = AT(conv.dilation_h),
     .offset_w = AT(conv.dilation_w), .def = 1, .lo = 1, .hi = MAX_WINDOW, .omit_default = 1},
    {.key = "groups", .type = CBQ_HYPER_INT, .offset = AT(conv.groups), .def = 1, .lo = 1,
     .hi = MAX_CHANNELS, .omit_default = 1},
};

/* dilation and groups: 0 (a spec built in C before they existed) reads as 1 */
static int or_one(int v) { return v ? v : 1; }

static int conv2d_shape(const cbq_layer_spec *l, const size_t in[3], size_t out[3], cbq_error *err)
{
    const cbq_conv2d_cfg *c = &l->cfg.conv;
    if (c->in_channels <= 0 || c->out_channels <= 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s' (conv2d): channel counts must be positive",
                        l->name);
    if ((size_t)c->in_channels != in[0])
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "layer '%s' (conv2d): in_channels is %d but its input has %zu channels",
                        l->name, c->in_channels, in[0]);
    int groups = or_one(c->groups);
    if (groups < 0 || c->in_channels % groups || c->out_channels % groups)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "layer '%s' (conv2d): groups %d must divide both in_channels %d and "
                        "out_channels %d",
                        l->name, c->groups, c->in_channels, c->out_channels);
    window_axis ah = {c->kernel_h, c->stride_h, c->pad_h, or_one(c->dilation_h)};
    window_axis aw = {c->kernel_w, c->stride_w, c->pad_w, or_one(c->dilation_w)};
    CBQ_TRY(window_shape(l->name, "conv2d", ah, aw, 0, in, out, err));
    out[0] = (size_t)c->out_channels;
    return CBQ_OK;
}

/* weight [Cout, Cin/groups, KH, KW] */
static size_t conv2d_param_count(const cbq_layer_spec *l)
{
    const cbq_conv2d_cfg *c = &l->cfg.conv;
    return (size_t)c->out_channels * (size_t)(c->in_channels / or_one(c->groups)) *
               (size_t)c->kernel_h * (size_t)c->kernel_w + (c->bias ? (size_t)c->out_channels : 0);
}

static double conv2d_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    (void)in;
    const cbq_conv2d_cfg *c = &l->cfg.conv;
    double fan_in = (double)(c->in_channels / or_one(c->groups)) * c->kernel_h * c->kernel_w;
    return numel(out) * (2.0 * fan_in + (c->bias ? 1.0 : 0.0));
}

static const cbq_layer_kind_info conv2d_kind = {
    .name = "conv2d", .hyper = conv2d_hyper, .n_hyper = N_OF(conv2d_hyper),
    .shape = conv2d_shape, .param_count = conv2d_param_count, .forward_flops = conv2d_flops,
};

/* ---- batchnorm2d ----------------------------------------------------------- */

static const cbq_hyper_param batchnorm2d_hyper[] = {
    {.key = "num_features", .type = CBQ_HYPER_INT, .offset = AT(bn.channels), .required = 1,
     .lo = 1, .hi = MAX_CHANNELS},
    {.key = "eps", .type = CBQ_HYPER_NUMBER, .offset = AT(bn.eps), .def = 1e-5, .lo = 1e-30, .hi = 1.0},
    {.key = "momentum", .type = CBQ_HYPER_NUMBER, .offset = AT(bn.momentum), .def = 0.1, .lo = 0.0,
     .hi = 1.0},
};

static int batchnorm2d_shape(const cbq_layer_spec *l, const size_t in[3], size_t out[3], cbq_error *err)
{
    (void)out;
    if (l->cfg.bn.channels <= 0 || (size_t)l->cfg.bn.channels != in[0])
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "layer '%s' (batchnorm2d): num_features is %d but its input has %zu channels",
                        l->name, l->cfg.bn.channels, in[0]);
    return CBQ_OK;
}

/* weight and bias; the running statistics are buffers, not parameters */
static size_t batchnorm2d_param_count(const cbq_layer_spec *l) { return 2 * (size_t)l->cfg.bn.channels; }

static double batchnorm2d_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    (void)l, (void)in;
    return 2.0 * numel(out);
}

static const cbq_layer_kind_info batchnorm2d_kind = {
    .name = "batchnorm2d", .hyper = batchnorm2d_hyper, .n_hyper = N_OF(batchnorm2d_hyper),
    .shape = batchnorm2d_shape, .param_count = batchnorm2d_param_count,
    .forward_flops = batchnorm2d_flops,
};

/* ---- element-wise: relu, leaky_relu, dropout -------------------------------- */

/* Output = input shape; nothing to check. */
static int same_shape(const cbq_layer_spec *l, const size_t in[3], size_t out[3], cbq_error *err)
{
    (void)l, (void)in, (void)out, (void)err;
    return CBQ_OK;
}

static double one_per_value(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    (void)l, (void)in;
    return numel(out);
}

static const cbq_layer_kind_info relu_kind = {
    .name = "relu", .shape = same_shape, .forward_flops = one_per_value,
};

static const cbq_hyper_param leaky_relu_hyper[] = {
    {.key = "negative_slope", .type = CBQ_HYPER_NUMBER, .offset = AT(leaky.negative_slope),
     .def = 0.01, .lo = -1e6, .hi = 1e6},
};

static int leaky_relu_shape(const cbq_layer_spec *l, const size_t in[3], size_t out[3], cbq_error *err)
{
    (void)in, (void)out;
    if (!(l->cfg.leaky.negative_slope == l->cfg.leaky.negative_slope))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s' (leaky_relu): negative_slope is NaN", l->name);
    return CBQ_OK;
}

static const cbq_layer_kind_info leaky_relu_kind = {
    .name = "leaky_relu", .hyper = leaky_relu_hyper, .n_hyper = N_OF(leaky_relu_hyper),
    .shape = leaky_relu_shape, .forward_flops = one_per_value,
};

static const cbq_hyper_param dropout_hyper[] = {
    {.key = "p", .type = CBQ_HYPER_NUMBER, .offset = AT(dropout.p), .def = 0.5, .lo = 0.0,
     .hi = 0.999999},
};

static int dropout_shape(const cbq_layer_spec *l, const size_t in[3], size_t out[3], cbq_error *err)
{
    (void)in, (void)out;
    if (!(l->cfg.dropout.p >= 0.0 && l->cfg.dropout.p < 1.0))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s' (dropout): p must be in [0, 1)", l->name);
    return CBQ_OK;
}

/* identity in eval mode */
static double dropout_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    (void)l, (void)in, (void)out;
    return 0.0;
}

static const cbq_layer_kind_info dropout_kind = {
    .name = "dropout", .hyper = dropout_hyper, .n_hyper = N_OF(dropout_hyper),
    .shape = dropout_shape, .forward_flops = dropout_flops,
};

/* ---- maxpool2d, avgpool2d ---------------------------------------------------- */

static const cbq_hyper_param pool2d_hyper[] = {
    {.key = "kernel_size", .type = CBQ_HYPER_PAIR, .offset = AT(pool.kernel_h),
     .offset_w = AT(pool.kernel_w), .required = 1, .def = 1, .lo = 1, .hi = MAX_WINDOW},
    {.key = "stride", .type = CBQ_HYPER_PAIR, .offset = AT(pool.stride_h),
     .offset_w = AT(pool.stride_w), .def = 1, .lo = 1, .hi = MAX_WINDOW,
     .default_from = "kernel_size"}, /* PyTorch: stride defaults to kernel_size */
    {.key = "padding", .type = CBQ_HYPER_PAIR, .offset = AT(pool.pad_h), .offset_w = AT(pool.pad_w),
     .def = 0, .lo = 0, .hi = MAX_WINDOW},
    {.key = "ceil_mode", .type = CBQ_HYPER_BOOL, .offset = AT(pool.ceil_mode), .def = 0,
     .omit_default = 1},
};

static int pool2d_shape(const cbq_layer_spec *l, const size_t in[3], size_t out[3], cbq_error *err)
{
    const char *kind = cbq_layer_kind_name(l->kind);
    const cbq_pool2d_cfg *p = &l->cfg.pool;
    if (p->pad_h > p->kernel_h / 2 || p->pad_w > p->kernel_w / 2)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "layer '%s' (%s): padding %dx%d must be at most half the kernel %dx%d",
                        l->name, kind, p->pad_h, p->pad_w, p->kernel_h, p->kernel_w);
    window_axis ah = {p->kernel_h, p->stride_h, p->pad_h, 1};
    window_axis aw = {p->kernel_w, p->stride_w, p->pad_w, 1};
    return window_shape(l->name, kind, ah, aw, p->ceil_mode, in, out, err);
}

static double pool2d_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    (void)in;
    return numel(out) * l->cfg.pool.kernel_h * l->cfg.pool.kernel_w;
}

static const cbq_layer_kind_info maxpool2d_kind = {
    .name = "maxpool2d", .hyper = pool2d_hyper, .n_hyper = N_OF(pool2d_hyper),
    .shape = pool2d_shape, .forward_flops = pool2d_flops,
};

static const cbq_layer_kind_info avgpool2d_kind = {
    .name = "avgpool2d", .hyper = pool2d_hyper, .n_hyper = N_OF(pool2d_hyper),
    .shape = pool2d_shape, .forward_flops = pool2d_flops,
};

/* ---- global_avgpool ---------------------------------------------------------- */

static int global_avgpool_shape(const cbq_layer_spec *l, const size_t in[3], size_t out[3],
                                cbq_error *err)
{
    (void)l, (void)in, (void)err;
    out[1] = out[2] = 1;
    return CBQ_OK;
}

static double global_avgpool_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    (void)l, (void)out;
    return numel(in);
}

static const cbq_layer_kind_info global_avgpool_kind = {
    .name = "global_avgpool", .flattens = 1,
    .shape = global_avgpool_shape, .forward_flops = global_avgpool_flops,
};

/* ---- linear ------------------------------------------------------------------ */

static const cbq_hyper_param linear_hyper[] = {
    {.key = "in_features", .type = CBQ_HYPER_INT, .offset = AT(linear.in_features), .required = 1,
     .lo = 1, .hi = MAX_FEATURES},
    {.key = "out_features", .type = CBQ_HYPER_INT, .offset = AT(linear.out_features), .required = 1,
     .lo = 1, .hi = MAX_FEATURES},
    {.key = "bias", .type = CBQ_HYPER_BOOL, .offset = AT(linear.bias), .def = 1},
};

static int linear_shape(const cbq_layer_spec *l, const size_t in[3], size_t out[3], cbq_error *err)
{
    const cbq_linear_cfg *c = &l->cfg.linear;
    size_t flat = in[0] * in[1] * in[2]; /* below the spec's activation limit */
    if (c->in_features <= 0 || c->out_features <= 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s' (linear): feature counts must be positive",
                        l->name);
    if ((size_t)c->in_features != flat)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "layer '%s' (linear): in_features is %d but its input has %zu values "
                        "(%zux%zux%zu)",
                        l->name, c->in_features, flat, in[0], in[1], in[2]);
    out[0] = (size_t)c->out_features;
    out[1] = out[2] = 1;
    return CBQ_OK;
}

static size_t linear_param_count(const cbq_layer_spec *l)
{
    const cbq_linear_cfg *c = &l->cfg.linear;
    return (size_t)c->out_features * (size_t)c->in_features + (c->bias ? (size_t)c->out_features : 0);
}

static double linear_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    (void)in;
    return numel(out) * (2.0 * l->cfg.linear.in_features + (l->cfg.linear.bias ? 1.0 : 0.0));
}

static const cbq_layer_kind_info linear_kind = {
    .name = "linear", .hyper = linear_hyper, .n_hyper = N_OF(linear_hyper), .flattens = 1,
    .shape = linear_shape, .param_count = linear_param_count, .forward_flops = linear_flops,
};

/* ---- graph kinds: add, concat, mul ------------------------------------------ */

/* What a layer's inputs are called in messages: "input 2 (3x8x8)". */
#define SHAPE_FMT "%zux%zux%zu"
#define SHAPE_ARGS(s) (s)[0], (s)[1], (s)[2]

static int count_inputs(const cbq_layer_spec *l, size_t n_in, size_t lo, size_t hi, cbq_error *err)
{
    if (n_in >= lo && n_in <= hi)
        return CBQ_OK;
    const char *kind = cbq_layer_kind_name(l->kind);
    if (lo == hi)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s' (%s): expected %zu inputs, got %zu", l->name,
                        kind, lo, n_in);
    return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s' (%s): expected %zu to %zu inputs, got %zu",
                    l->name, kind, lo, hi, n_in);
}

/* torch.add / operator +: every input the same shape (no broadcasting). */
static int add_shape_n(const cbq_layer_spec *l, const size_t (*in)[3], size_t n_in, size_t out[3],
                       cbq_error *err)
{
    CBQ_TRY(count_inputs(l, n_in, 2, CBQ_MAX_INPUTS, err));
    for (size_t j = 1; j < n_in; j++)
        if (in[j][0] != in[0][0] || in[j][1] != in[0][1] || in[j][2] != in[0][2])
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "layer '%s' (add): input %zu is " SHAPE_FMT " but input 0 is " SHAPE_FMT
                            " (add needs equal shapes)",
                            l->name, j, SHAPE_ARGS(in[j]), SHAPE_ARGS(in[0]));
    for (int d = 0; d < 3; d++)
        out[d] = in[0][d];
    return CBQ_OK;
}

/* n_in - 1 additions per value */
static double add_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    (void)in;
    size_t n_in = l->n_inputs ? l->n_inputs : 1;
    return (double)(n_in - 1) * numel(out);
}

static const cbq_layer_kind_info add_kind = {
    .name = "add", .max_inputs = CBQ_MAX_INPUTS, .shape_n = add_shape_n, .forward_flops = add_flops,
};

/* torch.cat(dim=1): equal height and width, channels summed in input order. */
static int concat_shape_n(const cbq_layer_spec *l, const size_t (*in)[3], size_t n_in, size_t out[3],
                          cbq_error *err)
{
    CBQ_TRY(count_inputs(l, n_in, 1, CBQ_MAX_INPUTS, err));
    size_t channels = 0;
    for (size_t j = 0; j < n_in; j++) {
        if (in[j][1] != in[0][1] || in[j][2] != in[0][2])
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "layer '%s' (concat): input %zu is " SHAPE_FMT " but input 0 is " SHAPE_FMT
                            " (concat needs equal height and width)",
                            l->name, j, SHAPE_ARGS(in[j]), SHAPE_ARGS(in[0]));
        if (in[j][0] > MAX_FEATURES - channels)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s' (concat): too many channels", l->name);
        channels += in[j][0];
    }
    out[0] = channels;
    out[1] = in[0][1];
    out[2] = in[0][2];
    return CBQ_OK;
}

/* a copy */
static double no_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    (void)l, (void)in, (void)out;
    return 0.0;
}

static const cbq_layer_kind_info concat_kind = {
    .name = "concat", .max_inputs = CBQ_MAX_INPUTS, .shape_n = concat_shape_n,
    .forward_flops = no_flops,
};

/* torch.mul / operator *: two inputs of the same shape, or one of them
 * [C, 1, 1] against [C, H, W] (channel-wise, squeeze-excitation's scale);
 * the output has the larger shape. */
static int mul_shape_n(const cbq_layer_spec *l, const size_t (*in)[3], size_t n_in, size_t out[3],
                       cbq_error *err)
{
    CBQ_TRY(count_inputs(l, n_in, 2, 2, err));
    const size_t *a = in[0], *b = in[1];
    int same = a[0] == b[0] && a[1] == b[1] && a[2] == b[2];
    int b_scales = b[0] == a[0] && b[1] == 1 && b[2] == 1;
    int a_scales = a[0] == b[0] && a[1] == 1 && a[2] == 1;
    if (!same && !b_scales && !a_scales)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "layer '%s' (mul): inputs " SHAPE_FMT " and " SHAPE_FMT " do not match "
                        "(mul needs equal shapes, or one of them Cx1x1 with the other's C)",
                        l->name, SHAPE_ARGS(a), SHAPE_ARGS(b));
    const size_t *big = a_scales && !same ? b : a;
    for (int d = 0; d < 3; d++)
        out[d] = big[d];
    return CBQ_OK;
}

static const cbq_layer_kind_info mul_kind = {
    .name = "mul", .max_inputs = 2, .shape_n = mul_shape_n, .forward_flops = one_per_value,
};

/* ---- single-input kinds: identity, flatten, sigmoid, silu, adaptive_avgpool2d */

static const cbq_layer_kind_info identity_kind = {
    .name = "identity", .shape = same_shape, .forward_flops = no_flops,
};

/* torch.flatten(x, 1): [C, H, W] -> [C*H*W, 1, 1], the same values in the same order */
static int flatten_shape(const cbq_layer_spec *l, const size_t in[3], size_t out[3], cbq_error *err)
{
    (void)l, (void)err;
    out[0] = in[0] * in[1] * in[2]; /* below the spec's activation limit */
    out[1] = out[2] = 1;
    return CBQ_OK;
}

static const cbq_layer_kind_info flatten_kind = {
    .name = "flatten", .flattens = 1, .shape = flatten_shape, .forward_flops = no_flops,
};

/* The convention counts an exponential, a division and an addition as one
 * operation each: sigmoid 1/(1+exp(-x)) is 3 per value, silu x*sigmoid(x) 4. */
static double sigmoid_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    (void)l, (void)in;
    return 3.0 * numel(out);
}

static double silu_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    (void)l, (void)in;
    return 4.0 * numel(out);
}

static const cbq_layer_kind_info sigmoid_kind = {
    .name = "sigmoid", .shape = same_shape, .forward_flops = sigmoid_flops,
};

static const cbq_layer_kind_info silu_kind = {
    .name = "silu", .shape = same_shape, .forward_flops = silu_flops,
};

static const cbq_hyper_param adaptive_avgpool2d_hyper[] = {
    {.key = "output_size", .type = CBQ_HYPER_PAIR, .offset = AT(adaptive.output_h),
     .offset_w = AT(adaptive.output_w), .def = 1, .lo = 1, .hi = MAX_WINDOW},
};

/* nn.AdaptiveAvgPool2d(1): [C, H, W] -> [C, 1, 1], still a grid (not flattened) */
static int adaptive_avgpool2d_shape(const cbq_layer_spec *l, const size_t in[3], size_t out[3],
                                    cbq_error *err)
{
    (void)in;
    const cbq_adaptive_pool2d_cfg *a = &l->cfg.adaptive;
    if (a->output_h != 1 || a->output_w != 1)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "layer '%s' (adaptive_avgpool2d): output_size %dx%d is not supported "
                        "(only 1: the mean of each channel)",
                        l->name, a->output_h, a->output_w);
    out[1] = out[2] = 1;
    return CBQ_OK;
}

static const cbq_layer_kind_info adaptive_avgpool2d_kind = {
    .name = "adaptive_avgpool2d", .hyper = adaptive_avgpool2d_hyper,
    .n_hyper = N_OF(adaptive_avgpool2d_hyper), .shape = adaptive_avgpool2d_shape,
    .forward_flops = global_avgpool_flops,
};

/* ---- the table ----------------------------------------------------------------- */

static const cbq_layer_kind_info *const layer_table[] = {
#define CBQ_LAYER_KIND(id, stem) [CBQ_LAYER_##id] = &stem##_kind,
#include "cbctiq/layer_kinds.def"
#undef CBQ_LAYER_KIND
};
_Static_assert(N_OF(layer_table) == CBQ_LAYER_KIND_COUNT, "one row per layer kind");

const cbq_layer_kind_info *cbq_layer_kind_info_of(cbq_layer_kind kind)
{
    if ((int)kind < 0 || kind >= CBQ_LAYER_KIND_COUNT)
        return NULL;
    return layer_table[kind];
}
