/* model_spec.c - layer kind names, shape inference and lookup for a
 * cbq_model_spec (include/cbctiq/model_spec.h).
 *
 * Shape rules are PyTorch's (torch.nn docs, ceil_mode=False, dilation 1):
 *   conv/pool: out = floor((in + 2*pad - kernel) / stride) + 1
 *   linear: flattens its input (C*H*W must equal in_features)
 * Pooling also follows PyTorch in refusing pad > kernel/2. This file does not
 * read model.json (src/io/model_json.c) and knows nothing of weights.
 */
#include "cbctiq/model_spec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Largest activation one sample may have (elements); keeps every product of
 * sizes in the engine far from overflow and refuses absurd files early. */
#define CBQ_MAX_ACTIVATION ((size_t)1 << 34)

static const char *const kind_names[] = {
    [CBQ_LAYER_CONV2D] = "conv2d",
    [CBQ_LAYER_BATCHNORM2D] = "batchnorm2d",
    [CBQ_LAYER_RELU] = "relu",
    [CBQ_LAYER_LEAKY_RELU] = "leaky_relu",
    [CBQ_LAYER_MAXPOOL2D] = "maxpool2d",
    [CBQ_LAYER_AVGPOOL2D] = "avgpool2d",
    [CBQ_LAYER_GLOBAL_AVGPOOL] = "global_avgpool",
    [CBQ_LAYER_DROPOUT] = "dropout",
    [CBQ_LAYER_LINEAR] = "linear",
};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == CBQ_LAYER_KIND_COUNT,
               "every layer kind needs a model.json name");

const char *cbq_layer_kind_name(cbq_layer_kind kind)
{
    if ((int)kind < 0 || kind >= CBQ_LAYER_KIND_COUNT)
        return NULL;
    return kind_names[kind];
}

int cbq_layer_kind_parse(const char *name, cbq_layer_kind *kind)
{
    if (!name)
        return 0;
    for (int k = 0; k < CBQ_LAYER_KIND_COUNT; k++) {
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = (cbq_layer_kind)k;
            return 1;
        }
    }
    return 0;
}

void cbq_model_spec_free(cbq_model_spec *spec)
{
    if (!spec)
        return;
    free(spec->layers);
    spec->layers = NULL;
    spec->n_layers = 0;
}

long cbq_model_spec_find(const cbq_model_spec *spec, const char *name)
{
    for (size_t i = 0; i < spec->n_layers; i++)
        if (strcmp(spec->layers[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* One spatial axis of a window op; 0 on success, else fills why. */
static int window_out(size_t in, int kernel, int stride, int pad, size_t *out, const char **why)
{
    if (kernel <= 0 || stride <= 0 || pad < 0) {
        *why = "kernel and stride must be positive and padding non-negative";
        return -1;
    }
    size_t padded = in + 2 * (size_t)pad; /* in < 2^34, pad < 2^31: no overflow */
    if (padded < (size_t)kernel) {
        *why = "the kernel is larger than the padded input";
        return -1;
    }
    *out = (padded - (size_t)kernel) / (size_t)stride + 1;
    return 0;
}

static int window_shape(const char *layer, const char *kind, int kh, int kw, int sh, int sw,
                        int ph, int pw, const size_t in[3], size_t out[3], cbq_error *err)
{
    const char *why = NULL;
    if (window_out(in[1], kh, sh, ph, &out[1], &why) || window_out(in[2], kw, sw, pw, &out[2], &why))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "layer '%s' (%s): input %zux%zux%zu: %s (kernel %dx%d, stride %dx%d, "
                        "padding %dx%d)",
                        layer, kind, in[0], in[1], in[2], why, kh, kw, sh, sw, ph, pw);
    return CBQ_OK;
}

static int layer_shape(const cbq_layer_spec *l, const size_t in[3], size_t out[3], cbq_error *err)
{
    const char *kind = cbq_layer_kind_name(l->kind);
    memcpy(out, in, 3 * sizeof *out);
    switch (l->kind) {
    case CBQ_LAYER_CONV2D: {
        const cbq_conv2d_cfg *c = &l->cfg.conv;
        if (c->in_channels <= 0 || c->out_channels <= 0)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s' (conv2d): channel counts must be positive",
                            l->name);
        if ((size_t)c->in_channels != in[0])
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "layer '%s' (conv2d): in_channels is %d but its input has %zu channels",
                            l->name, c->in_channels, in[0]);
        CBQ_TRY(window_shape(l->name, kind, c->kernel_h, c->kernel_w, c->stride_h, c->stride_w,
                             c->pad_h, c->pad_w, in, out, err));
        out[0] = (size_t)c->out_channels;
        return CBQ_OK;
    }
    case CBQ_LAYER_BATCHNORM2D:
        if (l->cfg.bn.channels <= 0 || (size_t)l->cfg.bn.channels != in[0])
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "layer '%s' (batchnorm2d): num_features is %d but its input has %zu channels",
                            l->name, l->cfg.bn.channels, in[0]);
        return CBQ_OK;
    case CBQ_LAYER_MAXPOOL2D:
    case CBQ_LAYER_AVGPOOL2D: {
        const cbq_pool2d_cfg *p = &l->cfg.pool;
        if (p->pad_h > p->kernel_h / 2 || p->pad_w > p->kernel_w / 2)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "layer '%s' (%s): padding %dx%d must be at most half the kernel %dx%d",
                            l->name, kind, p->pad_h, p->pad_w, p->kernel_h, p->kernel_w);
        return window_shape(l->name, kind, p->kernel_h, p->kernel_w, p->stride_h, p->stride_w,
                            p->pad_h, p->pad_w, in, out, err);
    }
    case CBQ_LAYER_GLOBAL_AVGPOOL:
        out[1] = out[2] = 1;
        return CBQ_OK;
    case CBQ_LAYER_LINEAR: {
        const cbq_linear_cfg *c = &l->cfg.linear;
        size_t flat = in[0] * in[1] * in[2]; /* each below CBQ_MAX_ACTIVATION in total */
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
    case CBQ_LAYER_LEAKY_RELU:
        if (!(l->cfg.leaky.negative_slope == l->cfg.leaky.negative_slope))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s' (leaky_relu): negative_slope is NaN", l->name);
        return CBQ_OK;
    case CBQ_LAYER_DROPOUT:
        if (!(l->cfg.dropout.p >= 0.0 && l->cfg.dropout.p < 1.0))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s' (dropout): p must be in [0, 1)", l->name);
        return CBQ_OK;
    case CBQ_LAYER_RELU:
        return CBQ_OK;
    default:
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s': unknown layer kind %d", l->name, (int)l->kind);
    }
}

int cbq_model_spec_shapes(const cbq_model_spec *spec, size_t (*shapes)[3], cbq_error *err)
{
    if (spec->input.height <= 0 || spec->input.width <= 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "input: height and width must be positive (got %dx%d)",
                        spec->input.height, spec->input.width);
    size_t cur[3] = {1, (size_t)spec->input.height, (size_t)spec->input.width};
    if (cur[1] * cur[2] > CBQ_MAX_ACTIVATION)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "input: %zux%zu is too large", cur[1], cur[2]);
    for (size_t i = 0; i < spec->n_layers; i++) {
        size_t next[3];
        CBQ_TRY(layer_shape(&spec->layers[i], cur, next, err));
        size_t elems = 0;
        if (!cbq_size_mul(&elems, next[0], next[1]) || !cbq_size_mul(&elems, elems, next[2]) ||
            elems > CBQ_MAX_ACTIVATION || elems == 0)
            return CBQ_FAIL(err, CBQ_ERR_RANGE,
                            "layer '%s': output %zux%zux%zu is empty or too large (limit %zu values "
                            "per sample)",
                            spec->layers[i].name, next[0], next[1], next[2], CBQ_MAX_ACTIVATION);
        memcpy(shapes[i], next, sizeof next);
        memcpy(cur, next, sizeof cur);
    }
    return CBQ_OK;
}
