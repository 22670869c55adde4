/* onnx_read.c - an ONNX graph as torch.onnx.export writes it, mapped onto a
 * cbq_model_spec and its weights (include/cbctiq/onnx.h). Not a general ONNX
 * runtime: one node becomes at most one layer of a kind the engine has, and
 * anything else is refused with the node named.
 *
 * The walk is one pass over the nodes in file order (ONNX requires
 * topological order; a node reading a tensor defined later or never is a
 * cycle or a broken file). Every tensor name maps to a value: the network
 * input, a layer's output, a constant (initializer, Constant node, or an
 * Identity of one: the exporter shares equal weights that way), or unknown
 * (the output of an unsupported node). Layer names come from PyTorch module
 * paths (the weight's initializer name, else the node's scope), then are
 * made valid and unique (model_json.c's rules). */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "cbctiq/onnx.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/layer_table.h"
#include "cbctiq/model_json.h"
#include "onnx/onnx.pb-c.h"

enum { OPSET_MIN = 9, OPSET_MAX = 17, MAX_SIDE = 65536, MAX_HYPER = 4096, MAX_CHANNELS = 65536,
       MAX_UNSUPPORTED_TEXT = 4096 };
#define MAX_FILE_BYTES ((size_t)2 << 30) /* protobuf's own limit for one message */

typedef enum { VAL_INPUT, VAL_LAYER, VAL_CONST, VAL_UNKNOWN } val_kind;

typedef struct {
    const char *name;               /* owned by the unpacked model */
    val_kind kind;
    long layer;                     /* VAL_LAYER */
    const Onnx__TensorProto *t;     /* VAL_CONST */
    int pad_h, pad_w;               /* a zero Pad folded into the Conv / AveragePool reading it */
} value;

/* Where a layer's tensors come from, in state_dict order. */
enum { MAX_LAYER_TENSORS = 4 };
typedef struct {
    const Onnx__NodeProto *node;
    const Onnx__TensorProto *t[MAX_LAYER_TENSORS];
    const char *t_name[MAX_LAYER_TENSORS];   /* as the node reads it (an Identity's output name) */
    int transpose_weight;                    /* MatMul / Gemm transB=0: stored [in, out] */
    int from_matmul;                         /* a MatMul whose bias may follow as an Add */
    char raw_name[CBQ_NAME_MAX];
} layer_src;

/* cbctiq's own export's metadata_props (onnx_write.c), NULL when absent. */
typedef struct {
    const char *arch, *outputs, *target_layer, *hu_min, *hu_max;
} cbq_metadata;

typedef struct {
    const char *label;
    const cbq_onnx_import_opts *opts;
    cbq_metadata meta;
    cbq_error *err;
    const Onnx__GraphProto *g;
    value *vals;
    size_t n_vals, cap_vals;
    cbq_layer_spec *layers;
    layer_src *src;
    size_t n_layers, cap_layers;
    long last_gap_node;             /* the GlobalAveragePool that becomes global_avgpool */
    int input_h, input_w;
    char unsupported[MAX_UNSUPPORTED_TEXT];
    size_t n_unsupported;
} importer;

static const char *node_name(const Onnx__NodeProto *n)
{
    return n->name && n->name[0] ? n->name : "(unnamed)";
}

static int node_fail(importer *im, const Onnx__NodeProto *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int node_fail(importer *im, const Onnx__NodeProto *n, const char *fmt, ...)
{
    char what[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: node '%.200s' (%.64s): %s", im->label, node_name(n),
                    n->op_type ? n->op_type : "?", what);
}

/* ---- values ------------------------------------------------------------------ */

static value *find_value(const importer *im, const char *name)
{
    for (size_t i = im->n_vals; i-- > 0;)
        if (strcmp(im->vals[i].name, name) == 0)
            return &im->vals[i];
    return NULL;
}

static int define_value(importer *im, const char *name, val_kind kind, long layer, const Onnx__TensorProto *t)
{
    if (!name || !name[0])
        return CBQ_OK; /* an optional output left out */
    if (find_value(im, name))
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: tensor '%.200s' is defined twice", im->label, name);
    if (im->n_vals == im->cap_vals) {
        size_t cap = im->cap_vals ? 2 * im->cap_vals : 256;
        value *v = realloc(im->vals, cap * sizeof *v);
        if (!v)
            return CBQ_FAIL(im->err, CBQ_ERR_NOMEM, "%s: out of memory", im->label);
        im->vals = v;
        im->cap_vals = cap;
    }
    im->vals[im->n_vals++] = (value){.name = name, .kind = kind, .layer = layer, .t = t};
    return CBQ_OK;
}

/* Every output of node n as `kind` (extra outputs of a mapped node, such as
 * MaxPool's indices, become unknown: nothing may read them). */
static int define_outputs(importer *im, const Onnx__NodeProto *n, val_kind kind, long layer,
                          const Onnx__TensorProto *t)
{
    for (size_t j = 0; j < n->n_output; j++)
        CBQ_TRY(define_value(im, n->output[j], j == 0 ? kind : VAL_UNKNOWN, layer, t));
    return CBQ_OK;
}

/* The j-th input of n as a layer index (-1: the network input); pads
 * (NULL: refused) gets the zero padding of a Pad in front of it. */
static int act_input_padded(importer *im, const Onnx__NodeProto *n, size_t j, long *layer, int *pads)
{
    if (j >= n->n_input || !n->input[j][0])
        return node_fail(im, n, "expected an input #%zu", j + 1);
    const value *v = find_value(im, n->input[j]);
    if (!v || v->kind == VAL_UNKNOWN)
        return node_fail(im, n, "input '%.200s' is not computed by any supported node", n->input[j]);
    if (v->kind == VAL_CONST)
        return node_fail(im, n, "input #%zu '%.200s' is a constant, expected an activation", j + 1,
                         n->input[j]);
    if ((v->pad_h || v->pad_w) && !pads)
        return node_fail(im, n, "input '%.200s' comes from a Pad, which cbctiq folds only into Conv and "
                                "AveragePool", n->input[j]);
    if (pads) {
        pads[0] = v->pad_h;
        pads[1] = v->pad_w;
    }
    *layer = v->kind == VAL_INPUT ? -1 : v->layer;
    return CBQ_OK;
}

static int act_input(importer *im, const Onnx__NodeProto *n, size_t j, long *layer)
{
    return act_input_padded(im, n, j, layer, NULL);
}

static int tensor_numel(const Onnx__TensorProto *t, size_t *numel)
{
    size_t n = 1;
    for (size_t d = 0; d < t->n_dims; d++) {
        if (t->dims[d] < 0 || !cbq_size_mul(&n, n, (size_t)t->dims[d]))
            return 0;
    }
    *numel = n;
    return 1;
}

/* The j-th input of n as a constant with `ndim` dimensions (-1: any). */
static int const_input(importer *im, const Onnx__NodeProto *n, size_t j, int ndim, const Onnx__TensorProto **t,
                       const char **name)
{
    if (j >= n->n_input || !n->input[j][0])
        return node_fail(im, n, "expected a constant input #%zu", j + 1);
    const value *v = find_value(im, n->input[j]);
    if (!v || v->kind != VAL_CONST)
        return node_fail(im, n, "input #%zu '%.200s' must be a constant (an initializer)", j + 1, n->input[j]);
    size_t numel = 0;
    if (ndim >= 0 && v->t->n_dims != (size_t)ndim)
        return node_fail(im, n, "constant '%.200s' has %zu dimensions, expected %d", n->input[j],
                         v->t->n_dims, ndim);
    if (!tensor_numel(v->t, &numel))
        return node_fail(im, n, "constant '%.200s' has a negative or overflowing shape", n->input[j]);
    *t = v->t;
    if (name)
        *name = n->input[j];
    return CBQ_OK;
}

/* ---- attributes -------------------------------------------------------------- */

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0)
            return n->attribute[i];
    return NULL;
}

static int attr_int(importer *im, const Onnx__NodeProto *n, const char *name, long def, long lo, long hi,
                    int *out)
{
    const Onnx__AttributeProto *a = find_attr(n, name);
    long v = def;
    if (a) {
        if (!a->has_i)
            return node_fail(im, n, "attribute '%s' must be an integer", name);
        if (a->i < lo || a->i > hi)
            return node_fail(im, n, "attribute '%s' is %lld, expected %ld to %ld", name, (long long)a->i, lo, hi);
        v = (long)a->i;
    }
    *out = (int)v;
    return CBQ_OK;
}

static int attr_float(importer *im, const Onnx__NodeProto *n, const char *name, double def, double *out)
{
    const Onnx__AttributeProto *a = find_attr(n, name);
    *out = def;
    if (!a)
        return CBQ_OK;
    if (!a->has_f || !isfinite(a->f))
        return node_fail(im, n, "attribute '%s' must be a finite float", name);
    /* ONNX stores float32: 1e-5 arrives as 9.99999974738e-06. Seven
     * significant digits give back the value the user wrote. */
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", (double)a->f);
    *out = strtod(buf, NULL);
    return CBQ_OK;
}

/* An INTS attribute of exactly `count` values in [lo, hi], or def for each. */
static int attr_ints(importer *im, const Onnx__NodeProto *n, const char *name, size_t count, long def, long lo,
                     long hi, int *out)
{
    const Onnx__AttributeProto *a = find_attr(n, name);
    for (size_t i = 0; i < count; i++)
        out[i] = (int)def;
    if (!a)
        return CBQ_OK;
    if (a->n_ints != count)
        return node_fail(im, n, "attribute '%s' has %zu values, expected %zu (2-D only)", name, a->n_ints, count);
    for (size_t i = 0; i < count; i++) {
        if (a->ints[i] < lo || a->ints[i] > hi)
            return node_fail(im, n, "attribute '%s'[%zu] is %lld, expected %ld to %ld", name, i,
                             (long long)a->ints[i], lo, hi);
        out[i] = (int)a->ints[i];
    }
    return CBQ_OK;
}

/* pads = [top, left, bottom, right]: cbctiq's layers pad symmetrically. */
static int attr_pads(importer *im, const Onnx__NodeProto *n, int *pad_h, int *pad_w)
{
    const Onnx__AttributeProto *ap = find_attr(n, "auto_pad");
    if (ap && ap->has_s && ap->s.len > 0 &&
        !(ap->s.len == 6 && memcmp(ap->s.data, "NOTSET", 6) == 0) &&
        !(ap->s.len == 5 && memcmp(ap->s.data, "VALID", 5) == 0))
        return node_fail(im, n, "auto_pad '%.*s' is not supported (give explicit symmetric pads)",
                         (int)(ap->s.len > 32 ? 32 : ap->s.len), (const char *)ap->s.data);
    int p[4];
    CBQ_TRY(attr_ints(im, n, "pads", 4, 0, 0, MAX_HYPER, p));
    if (p[0] != p[2] || p[1] != p[3])
        return node_fail(im, n, "asymmetric pads [%d, %d, %d, %d]; cbctiq pads top = bottom and left = right",
                         p[0], p[1], p[2], p[3]);
    *pad_h = p[0];
    *pad_w = p[1];
    return CBQ_OK;
}

/* ---- layers ------------------------------------------------------------------ */

static cbq_layer_spec *add_layer(importer *im, const Onnx__NodeProto *n, cbq_layer_kind kind, const long *inputs,
                                 size_t n_inputs)
{
    size_t i = im->n_layers++; /* capacity: one layer per node, reserved up front */
    cbq_layer_spec *l = &im->layers[i];
    memset(l, 0, sizeof *l);
    memset(&im->src[i], 0, sizeof im->src[i]);
    l->kind = kind;
    im->src[i].node = n;
    l->n_inputs = n_inputs;
    for (size_t j = 0; j < n_inputs; j++)
        l->inputs[j] = (int)inputs[j];
    return l;
}

static int finish_layer(importer *im, const Onnx__NodeProto *n)
{
    return define_outputs(im, n, VAL_LAYER, (long)im->n_layers - 1, NULL);
}

/* Layers with one activation input (input #1) and no hyper-parameters. */
static int map_simple(importer *im, const Onnx__NodeProto *n, cbq_layer_kind kind)
{
    long in;
    CBQ_TRY(act_input(im, n, 0, &in));
    add_layer(im, n, kind, &in, 1);
    return finish_layer(im, n);
}

static int map_conv(importer *im, const Onnx__NodeProto *n)
{
    long in;
    const Onnx__TensorProto *w, *b = NULL;
    const char *w_name, *b_name = NULL;
    int extra[2];
    CBQ_TRY(act_input_padded(im, n, 0, &in, extra));
    CBQ_TRY(const_input(im, n, 1, 4, &w, &w_name));
    if (n->n_input > 2 && n->input[2][0])
        CBQ_TRY(const_input(im, n, 2, 1, &b, &b_name));
    cbq_conv2d_cfg c = {0};
    int k[2], s[2], d[2];
    for (int i = 0; i < 4; i++)
        if (w->dims[i] < 1 || w->dims[i] > (i < 2 ? MAX_CHANNELS : MAX_HYPER))
            return node_fail(im, n, "weight shape [%lld, %lld, %lld, %lld] out of range", (long long)w->dims[0],
                             (long long)w->dims[1], (long long)w->dims[2], (long long)w->dims[3]);
    CBQ_TRY(attr_ints(im, n, "kernel_shape", 2, 0, 1, MAX_HYPER, k));
    if (find_attr(n, "kernel_shape") && (k[0] != w->dims[2] || k[1] != w->dims[3]))
        return node_fail(im, n, "kernel_shape [%d, %d] disagrees with the weight's [%lld, %lld]", k[0], k[1],
                         (long long)w->dims[2], (long long)w->dims[3]);
    CBQ_TRY(attr_ints(im, n, "strides", 2, 1, 1, MAX_HYPER, s));
    CBQ_TRY(attr_ints(im, n, "dilations", 2, 1, 1, MAX_HYPER, d));
    CBQ_TRY(attr_int(im, n, "group", 1, 1, MAX_CHANNELS, &c.groups));
    CBQ_TRY(attr_pads(im, n, &c.pad_h, &c.pad_w));
    c.pad_h += extra[0];
    c.pad_w += extra[1];
    if (w->dims[0] % c.groups != 0 || w->dims[1] * c.groups > MAX_CHANNELS)
        return node_fail(im, n, "group %d does not divide the weight's %lld output channels", c.groups,
                         (long long)w->dims[0]);
    if (b && b->dims[0] != w->dims[0])
        return node_fail(im, n, "bias has %lld values, expected %lld (one per output channel)",
                         (long long)b->dims[0], (long long)w->dims[0]);
    c.out_channels = (int)w->dims[0];
    c.in_channels = (int)w->dims[1] * c.groups;
    c.kernel_h = (int)w->dims[2];
    c.kernel_w = (int)w->dims[3];
    c.stride_h = s[0];
    c.stride_w = s[1];
    c.dilation_h = d[0];
    c.dilation_w = d[1];
    c.bias = b != NULL;
    cbq_layer_spec *l = add_layer(im, n, CBQ_LAYER_CONV2D, &in, 1);
    l->cfg.conv = c;
    layer_src *src = &im->src[im->n_layers - 1];
    src->t[0] = w;
    src->t_name[0] = w_name;
    src->t[1] = b;
    src->t_name[1] = b_name;
    return finish_layer(im, n);
}

static int map_batchnorm(importer *im, const Onnx__NodeProto *n)
{
    long in;
    CBQ_TRY(act_input(im, n, 0, &in));
    layer_src src = {0};
    for (size_t j = 0; j < 4; j++)
        CBQ_TRY(const_input(im, n, j + 1, 1, &src.t[j], &src.t_name[j]));
    int64_t ch = src.t[0]->dims[0];
    for (size_t j = 1; j < 4; j++)
        if (src.t[j]->dims[0] != ch)
            return node_fail(im, n, "input #%zu has %lld values, the scale %lld", j + 2,
                             (long long)src.t[j]->dims[0], (long long)ch);
    if (ch < 1 || ch > MAX_CHANNELS)
        return node_fail(im, n, "%lld channels, expected 1 to %d", (long long)ch, MAX_CHANNELS);
    int training = 0, spatial = 1;
    CBQ_TRY(attr_int(im, n, "training_mode", 0, 0, 1, &training));
    CBQ_TRY(attr_int(im, n, "spatial", 1, 0, 1, &spatial));
    if (training || spatial != 1)
        return node_fail(im, n, "only inference-mode, spatial batch norm is supported (export in eval mode)");
    double eps, momentum;
    CBQ_TRY(attr_float(im, n, "epsilon", 1e-5, &eps));
    CBQ_TRY(attr_float(im, n, "momentum", 0.9, &momentum));
    if (!(eps > 0) || momentum < 0 || momentum > 1)
        return node_fail(im, n, "epsilon %g must be positive and momentum %g in [0, 1]", eps, momentum);
    cbq_layer_spec *l = add_layer(im, n, CBQ_LAYER_BATCHNORM2D, &in, 1);
    /* ONNX keeps momentum for the running average's old value, PyTorch for the new. */
    char buf[32];
    snprintf(buf, sizeof buf, "%.7g", 1.0 - momentum);
    l->cfg.bn = (cbq_batchnorm2d_cfg){.channels = (int)ch, .eps = eps, .momentum = strtod(buf, NULL)};
    src.node = n;
    im->src[im->n_layers - 1] = src;
    return finish_layer(im, n);
}

static int map_pool(importer *im, const Onnx__NodeProto *n, cbq_layer_kind kind)
{
    long in;
    int extra[2] = {0, 0};
    CBQ_TRY(act_input_padded(im, n, 0, &in, kind == CBQ_LAYER_AVGPOOL2D ? extra : NULL));
    cbq_pool2d_cfg c = {0};
    int k[2], s[2], d[2], storage = 0, count_pad = 0;
    if (!find_attr(n, "kernel_shape"))
        return node_fail(im, n, "attribute 'kernel_shape' is missing");
    CBQ_TRY(attr_ints(im, n, "kernel_shape", 2, 1, 1, MAX_HYPER, k));
    CBQ_TRY(attr_ints(im, n, "strides", 2, 1, 1, MAX_HYPER, s));
    CBQ_TRY(attr_ints(im, n, "dilations", 2, 1, 1, 1, d));
    CBQ_TRY(attr_int(im, n, "ceil_mode", 0, 0, 1, &c.ceil_mode));
    CBQ_TRY(attr_int(im, n, "storage_order", 0, 0, 0, &storage));
    CBQ_TRY(attr_pads(im, n, &c.pad_h, &c.pad_w));
    if (kind == CBQ_LAYER_AVGPOOL2D) {
        CBQ_TRY(attr_int(im, n, "count_include_pad", 0, 0, 1, &count_pad));
        /* A zero Pad before it (how the exporter writes count_include_pad=True)
         * is padding the average counts. */
        count_pad |= extra[0] || extra[1];
        c.pad_h += extra[0];
        c.pad_w += extra[1];
        if (!count_pad && (c.pad_h || c.pad_w))
            return node_fail(im, n, "count_include_pad=0 with padding: cbctiq's avgpool2d counts the padding "
                                    "(PyTorch's count_include_pad=True)");
    }
    c.kernel_h = k[0];
    c.kernel_w = k[1];
    c.stride_h = s[0];
    c.stride_w = s[1];
    add_layer(im, n, kind, &in, 1)->cfg.pool = c;
    return finish_layer(im, n);
}

/* Nodes from k on that read tensor `name`, and whether all of them have one
 * of the op types in `ops` (NULL-terminated); graph outputs count as readers
 * of another kind. */
static size_t consumers(const importer *im, size_t k, const char *name, const char *const *ops, int *all_match)
{
    size_t count = 0;
    *all_match = 1;
    for (size_t i = k; i < im->g->n_node; i++) {
        const Onnx__NodeProto *n = im->g->node[i];
        for (size_t j = 0; j < n->n_input; j++) {
            if (strcmp(n->input[j], name) != 0)
                continue;
            count++;
            int match = 0;
            for (size_t o = 0; ops && ops[o]; o++)
                match |= n->op_type && strcmp(n->op_type, ops[o]) == 0;
            *all_match &= match;
        }
    }
    for (size_t i = 0; i < im->g->n_output; i++)
        if (im->g->output[i]->name && strcmp(im->g->output[i]->name, name) == 0) {
            count++;
            *all_match = 0;
        }
    return count;
}

static int flatten_per_sample(importer *im, const Onnx__NodeProto *n, size_t k);

static int map_flatten(importer *im, const Onnx__NodeProto *n, size_t k)
{
    int axis = 1;
    CBQ_TRY(attr_int(im, n, "axis", 1, -4, 4, &axis));
    if (axis != 1 && axis != -3)
        return node_fail(im, n, "axis %d: only Flatten(axis=1) (per sample) is supported", axis);
    return flatten_per_sample(im, n, k);
}

/* Reshape to [1, -1] or [0, -1]: x.view(1, -1) as a static-batch export
 * writes x.view(x.size(0), -1), a per-sample flatten. */
static int map_reshape(importer *im, const Onnx__NodeProto *n, size_t k)
{
    const Onnx__TensorProto *t;
    int64_t shape[2] = {0, 0};
    CBQ_TRY(const_input(im, n, 1, 1, &t, NULL));
    int ok = t->dims[0] == 2 && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    if (ok && t->has_raw_data && t->raw_data.len == sizeof shape)
        memcpy(shape, t->raw_data.data, sizeof shape);
    else if (ok && t->n_int64_data == 2)
        memcpy(shape, t->int64_data, sizeof shape);
    else
        ok = 0;
    if (!ok || shape[1] != -1 || (shape[0] != 0 && shape[0] != 1))
        return node_fail(im, n, "only a reshape to [1, -1] (a flatten per sample) is supported; use "
                                "torch.flatten(x, 1)");
    return flatten_per_sample(im, n, k);
}

static int flatten_per_sample(importer *im, const Onnx__NodeProto *n, size_t k)
{
    long in;
    CBQ_TRY(act_input(im, n, 0, &in));
    /* cbctiq's linear flattens its input itself: a Flatten that only feeds
     * Gemm/MatMul is the flatten nn.Linear needs in ONNX, not a layer. */
    static const char *const linear_ops[] = {"Gemm", "MatMul", NULL};
    int all_linear;
    size_t readers = consumers(im, k + 1, n->output[0], linear_ops, &all_linear);
    if (readers > 0 && all_linear)
        return define_outputs(im, n, in < 0 ? VAL_INPUT : VAL_LAYER, in, NULL);
    add_layer(im, n, CBQ_LAYER_FLATTEN, &in, 1);
    return finish_layer(im, n);
}

/* Gemm (transA=0, alpha=beta=1) and MatMul by a constant matrix: linear. */
static int map_linear(importer *im, const Onnx__NodeProto *n, int is_gemm)
{
    long in;
    const Onnx__TensorProto *w, *b = NULL;
    const char *w_name, *b_name = NULL;
    CBQ_TRY(act_input(im, n, 0, &in));
    CBQ_TRY(const_input(im, n, 1, 2, &w, &w_name));
    int trans_b = 0, trans_a = 0;
    if (is_gemm) {
        double alpha, beta;
        CBQ_TRY(attr_int(im, n, "transA", 0, 0, 1, &trans_a));
        CBQ_TRY(attr_int(im, n, "transB", 0, 0, 1, &trans_b));
        CBQ_TRY(attr_float(im, n, "alpha", 1.0, &alpha));
        CBQ_TRY(attr_float(im, n, "beta", 1.0, &beta));
        if (trans_a || alpha != 1.0 || beta != 1.0)
            return node_fail(im, n, "only Gemm with transA=0, alpha=1, beta=1 (nn.Linear) is supported");
        if (n->n_input > 2 && n->input[2][0])
            CBQ_TRY(const_input(im, n, 2, -1, &b, &b_name));
    }
    int64_t out = trans_b ? w->dims[0] : w->dims[1], in_f = trans_b ? w->dims[1] : w->dims[0];
    if (out < 1 || out > (1 << 24) || in_f < 1 || in_f > (1LL << 31) - 1)
        return node_fail(im, n, "weight shape [%lld, %lld] out of range", (long long)w->dims[0],
                         (long long)w->dims[1]);
    size_t b_numel = 0;
    if (b && (!tensor_numel(b, &b_numel) || b_numel != (size_t)out || b->n_dims > 2))
        return node_fail(im, n, "bias has %zu values, expected %lld (one per output)", b_numel, (long long)out);
    cbq_layer_spec *l = add_layer(im, n, CBQ_LAYER_LINEAR, &in, 1);
    l->cfg.linear = (cbq_linear_cfg){.in_features = (int)in_f, .out_features = (int)out, .bias = b != NULL};
    layer_src *src = &im->src[im->n_layers - 1];
    src->t[0] = w;
    src->t_name[0] = w_name;
    src->t[1] = b;
    src->t_name[1] = b_name;
    src->transpose_weight = !trans_b;
    src->from_matmul = !is_gemm;
    return finish_layer(im, n);
}

/* Add: two activations (a residual sum), or a MatMul's output plus a
 * constant vector (nn.Linear exported on a 2-D input without Gemm). */
static int map_add(importer *im, const Onnx__NodeProto *n)
{
    if (n->n_input != 2)
        return node_fail(im, n, "expected 2 inputs, got %zu", n->n_input);
    const value *a = find_value(im, n->input[0]), *b = find_value(im, n->input[1]);
    if (a && b && (a->kind == VAL_CONST) != (b->kind == VAL_CONST)) {
        const value *act = a->kind == VAL_CONST ? b : a;
        size_t numel = 0;
        size_t j_const = a->kind == VAL_CONST ? 0 : 1;
        int dummy;
        if (act->kind == VAL_LAYER && im->src[act->layer].from_matmul &&
            !im->layers[act->layer].cfg.linear.bias && consumers(im, 0, act->name, NULL, &dummy) == 1) {
            const Onnx__TensorProto *t;
            const char *t_name;
            CBQ_TRY(const_input(im, n, j_const, -1, &t, &t_name));
            cbq_linear_cfg *c = &im->layers[act->layer].cfg.linear;
            if (!tensor_numel(t, &numel) || numel != (size_t)c->out_features || t->n_dims > 2)
                return node_fail(im, n, "bias has %zu values, expected %d", numel, c->out_features);
            c->bias = 1;
            im->src[act->layer].t[1] = t;
            im->src[act->layer].t_name[1] = t_name;
            return define_outputs(im, n, VAL_LAYER, act->layer, NULL);
        }
        return node_fail(im, n, "adding a constant is supported only as the bias of a MatMul (nn.Linear)");
    }
    long in[2];
    CBQ_TRY(act_input(im, n, 0, &in[0]));
    CBQ_TRY(act_input(im, n, 1, &in[1]));
    add_layer(im, n, CBQ_LAYER_ADD, in, 2);
    return finish_layer(im, n);
}

static int map_sum(importer *im, const Onnx__NodeProto *n)
{
    long in[CBQ_MAX_INPUTS];
    if (n->n_input < 2 || n->n_input > CBQ_MAX_INPUTS)
        return node_fail(im, n, "%zu inputs, expected 2 to %d", n->n_input, CBQ_MAX_INPUTS);
    for (size_t j = 0; j < n->n_input; j++)
        CBQ_TRY(act_input(im, n, j, &in[j]));
    add_layer(im, n, CBQ_LAYER_ADD, in, n->n_input);
    return finish_layer(im, n);
}

static int map_concat(importer *im, const Onnx__NodeProto *n)
{
    int axis = 1;
    if (!find_attr(n, "axis"))
        return node_fail(im, n, "attribute 'axis' is missing");
    CBQ_TRY(attr_int(im, n, "axis", 1, -4, 3, &axis));
    if (axis != 1 && axis != -3)
        return node_fail(im, n, "axis %d: only concatenation along channels (axis 1) is supported", axis);
    if (n->n_input < 1 || n->n_input > CBQ_MAX_INPUTS)
        return node_fail(im, n, "%zu inputs, expected 1 to %d", n->n_input, CBQ_MAX_INPUTS);
    long in[CBQ_MAX_INPUTS];
    for (size_t j = 0; j < n->n_input; j++)
        CBQ_TRY(act_input(im, n, j, &in[j]));
    add_layer(im, n, CBQ_LAYER_CONCAT, in, n->n_input);
    return finish_layer(im, n);
}

/* Mul of two activations; x * sigmoid(x) with the sigmoid read only here is
 * SiLU (how torch.onnx.export writes nn.SiLU): the sigmoid layer becomes it. */
static int map_mul(importer *im, const Onnx__NodeProto *n)
{
    if (n->n_input != 2)
        return node_fail(im, n, "expected 2 inputs, got %zu", n->n_input);
    long in[2];
    CBQ_TRY(act_input(im, n, 0, &in[0]));
    CBQ_TRY(act_input(im, n, 1, &in[1]));
    for (int s = 0; s < 2; s++) {
        long sig = in[s], x = in[1 - s];
        int dummy;
        if (sig >= 0 && im->layers[sig].kind == CBQ_LAYER_SIGMOID && im->layers[sig].inputs[0] == x &&
            consumers(im, 0, n->input[s], NULL, &dummy) == 1) {
            im->layers[sig].kind = CBQ_LAYER_SILU;
            return define_outputs(im, n, VAL_LAYER, sig, NULL);
        }
    }
    add_layer(im, n, CBQ_LAYER_MUL, in, 2);
    return finish_layer(im, n);
}

static int map_dropout(importer *im, const Onnx__NodeProto *n)
{
    double p = 0.5;
    CBQ_TRY(attr_float(im, n, "ratio", 0.5, &p));
    if (n->n_input > 1 && n->input[1][0]) {
        const Onnx__TensorProto *t;
        size_t numel = 0;
        CBQ_TRY(const_input(im, n, 1, -1, &t, NULL));
        if (!tensor_numel(t, &numel) || numel != 1)
            return node_fail(im, n, "ratio must be one value");
        if (t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT && t->has_raw_data && t->raw_data.len == 4) {
            float f;
            memcpy(&f, t->raw_data.data, 4);
            p = f;
        } else if (t->n_float_data == 1) {
            p = t->float_data[0];
        } else if (t->n_double_data == 1) {
            p = t->double_data[0];
        } else {
            return node_fail(im, n, "ratio must be a float32 or float64 constant");
        }
        char buf[32];
        snprintf(buf, sizeof buf, "%.7g", p);
        p = strtod(buf, NULL);
    }
    if (n->n_input > 2 && n->input[2][0])
        return node_fail(im, n, "a training_mode input is not supported (export in eval mode)");
    if (!(p >= 0 && p < 1))
        return node_fail(im, n, "ratio %g, expected [0, 1)", p);
    long in;
    CBQ_TRY(act_input(im, n, 0, &in));
    add_layer(im, n, CBQ_LAYER_DROPOUT, &in, 1)->cfg.dropout.p = p;
    return finish_layer(im, n);
}

/* Pad with zeros, symmetric in H and W only: folded into the Conv or
 * AveragePool that reads it (the exporter writes AvgPool2d this way). */
static int map_pad(importer *im, const Onnx__NodeProto *n)
{
    const Onnx__AttributeProto *mode = find_attr(n, "mode");
    if (mode && mode->has_s && !(mode->s.len == 8 && memcmp(mode->s.data, "constant", 8) == 0))
        return node_fail(im, n, "only constant (zero) padding is supported");
    int64_t pads[8];
    size_t n_pads = 0;
    double fill = 0;
    const Onnx__AttributeProto *a = find_attr(n, "pads");
    if (a) {
        n_pads = a->n_ints;
        if (n_pads == 8)
            memcpy(pads, a->ints, sizeof pads);
        CBQ_TRY(attr_float(im, n, "value", 0.0, &fill));
    } else {
        const Onnx__TensorProto *t;
        CBQ_TRY(const_input(im, n, 1, 1, &t, NULL));
        n_pads = t->dims[0] == 8 && t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? 8 : 0;
        if (n_pads && t->has_raw_data && t->raw_data.len == sizeof pads)
            memcpy(pads, t->raw_data.data, sizeof pads);
        else if (n_pads && t->n_int64_data == 8)
            memcpy(pads, t->int64_data, sizeof pads);
        else
            n_pads = 0;
        if (n->n_input > 2 && n->input[2][0]) {
            const Onnx__TensorProto *cv;
            CBQ_TRY(const_input(im, n, 2, -1, &cv, NULL));
            float f = 1;
            if (cv->has_raw_data && cv->raw_data.len == 4 && cv->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
                memcpy(&f, cv->raw_data.data, 4);
            else if (cv->n_float_data == 1)
                f = cv->float_data[0];
            fill = f;
        }
    }
    if (n_pads != 8)
        return node_fail(im, n, "expected 8 int64 pads (a 4-D input)");
    /* [N0, C0, H0, W0, N1, C1, H1, W1] */
    if (pads[0] || pads[1] || pads[4] || pads[5] || pads[2] != pads[6] || pads[3] != pads[7] || pads[2] < 0 ||
        pads[3] < 0 || pads[2] > MAX_HYPER || pads[3] > MAX_HYPER || fill != 0)
        return node_fail(im, n, "only zero padding of H and W, the same on both sides, is supported");
    long in;
    CBQ_TRY(act_input(im, n, 0, &in));
    CBQ_TRY(define_outputs(im, n, in < 0 ? VAL_INPUT : VAL_LAYER, in, NULL));
    value *v = find_value(im, n->output[0]);
    v->pad_h = (int)pads[2];
    v->pad_w = (int)pads[3];
    return CBQ_OK;
}

/* ReduceMean over H and W keeping them: x.mean((2, 3), keepdim=True). */
static int map_reduce_mean(importer *im, const Onnx__NodeProto *n, size_t k)
{
    const Onnx__AttributeProto *a = find_attr(n, "axes");
    int keep = 1;
    CBQ_TRY(attr_int(im, n, "keepdims", 1, 0, 1, &keep));
    int spatial = a && a->n_ints == 2 && keep;
    for (size_t i = 0; spatial && i < 2; i++)
        spatial = a->ints[i] == (int64_t)(2 + i) || a->ints[i] == (int64_t)(i) - 2;
    if (!spatial)
        return node_fail(im, n, "only the mean over axes [2, 3] with keepdims=1 is supported");
    long in;
    CBQ_TRY(act_input(im, n, 0, &in));
    add_layer(im, n, (long)k == im->last_gap_node ? CBQ_LAYER_GLOBAL_AVGPOOL : CBQ_LAYER_ADAPTIVE_AVGPOOL2D, &in, 1);
    return finish_layer(im, n);
}

static void note_unsupported(importer *im, const Onnx__NodeProto *n)
{
    size_t used = strlen(im->unsupported);
    if (used + 16 < sizeof im->unsupported)
        snprintf(im->unsupported + used, sizeof im->unsupported - used, "%s'%.120s' (%s%s%.64s)",
                 im->n_unsupported ? ", " : "", node_name(n), n->domain && n->domain[0] ? n->domain : "",
                 n->domain && n->domain[0] ? ":" : "", n->op_type ? n->op_type : "?");
    im->n_unsupported++;
}

static int is_op(const Onnx__NodeProto *n, const char *op)
{
    return n->op_type && strcmp(n->op_type, op) == 0;
}

static const char *const KNOWN_OPS[] = {
    "Constant", "Identity", "Conv", "BatchNormalization", "Relu", "Sigmoid", "LeakyRelu", "MaxPool",
    "AveragePool", "GlobalAveragePool", "ReduceMean", "Add", "Sum", "Concat", "Mul", "Flatten", "Gemm",
    "MatMul", "Dropout", "Pad", "Reshape", NULL};

static int known_op(const Onnx__NodeProto *n)
{
    for (size_t i = 0; KNOWN_OPS[i]; i++)
        if (is_op(n, KNOWN_OPS[i]))
            return 1;
    return 0;
}

static int map_node(importer *im, size_t k)
{
    const Onnx__NodeProto *n = im->g->node[k];
    int default_domain = !n->domain || !n->domain[0] || strcmp(n->domain, "ai.onnx") == 0;
    /* Every input must exist by now: ONNX orders nodes topologically. */
    for (size_t j = 0; j < n->n_input; j++)
        if (n->input[j][0] && !find_value(im, n->input[j]))
            return node_fail(im, n, "reads '%.200s', which no earlier node, input or initializer defines "
                                    "(a cycle, or a tensor defined later or never)", n->input[j]);
    if (n->n_output < 1 || !n->output[0][0])
        return node_fail(im, n, "has no output");
    if (!default_domain) {
        note_unsupported(im, n);
        return define_outputs(im, n, VAL_UNKNOWN, 0, NULL);
    }
    if (is_op(n, "Constant")) {
        const Onnx__AttributeProto *a = find_attr(n, "value");
        if (!a || !a->t)
            return node_fail(im, n, "only a tensor 'value' is supported");
        return define_outputs(im, n, VAL_CONST, 0, a->t);
    }
    if (!known_op(n)) {
        note_unsupported(im, n);
        return define_outputs(im, n, VAL_UNKNOWN, 0, NULL);
    }
    /* A supported node reading an unsupported one's output: not mapped, so
     * that the one error lists every unsupported node. */
    for (size_t j = 0; j < n->n_input; j++) {
        const value *v = n->input[j][0] ? find_value(im, n->input[j]) : NULL;
        if (v && v->kind == VAL_UNKNOWN && im->n_unsupported)
            return define_outputs(im, n, VAL_UNKNOWN, 0, NULL);
    }
    if (is_op(n, "Identity")) {
        const value *v = n->n_input == 1 ? find_value(im, n->input[0]) : NULL;
        if (v && v->kind == VAL_CONST)
            return define_outputs(im, n, VAL_CONST, 0, v->t);
        return map_simple(im, n, CBQ_LAYER_IDENTITY);
    }
    if (is_op(n, "Conv")) return map_conv(im, n);
    if (is_op(n, "BatchNormalization")) return map_batchnorm(im, n);
    if (is_op(n, "Relu")) return map_simple(im, n, CBQ_LAYER_RELU);
    if (is_op(n, "Sigmoid")) return map_simple(im, n, CBQ_LAYER_SIGMOID);
    if (is_op(n, "LeakyRelu")) {
        double alpha;
        CBQ_TRY(attr_float(im, n, "alpha", 0.01, &alpha));
        CBQ_TRY(map_simple(im, n, CBQ_LAYER_LEAKY_RELU));
        im->layers[im->n_layers - 1].cfg.leaky.negative_slope = alpha;
        return CBQ_OK;
    }
    if (is_op(n, "MaxPool")) return map_pool(im, n, CBQ_LAYER_MAXPOOL2D);
    if (is_op(n, "AveragePool")) return map_pool(im, n, CBQ_LAYER_AVGPOOL2D);
    if (is_op(n, "GlobalAveragePool"))
        return map_simple(im, n, (long)k == im->last_gap_node ? CBQ_LAYER_GLOBAL_AVGPOOL
                                                              : CBQ_LAYER_ADAPTIVE_AVGPOOL2D);
    if (is_op(n, "ReduceMean")) return map_reduce_mean(im, n, k);
    if (is_op(n, "Add")) return map_add(im, n);
    if (is_op(n, "Sum")) return map_sum(im, n);
    if (is_op(n, "Concat")) return map_concat(im, n);
    if (is_op(n, "Mul")) return map_mul(im, n);
    if (is_op(n, "Flatten")) return map_flatten(im, n, k);
    if (is_op(n, "Gemm")) return map_linear(im, n, 1);
    if (is_op(n, "MatMul")) return map_linear(im, n, 0);
    if (is_op(n, "Dropout")) return map_dropout(im, n);
    if (is_op(n, "Pad")) return map_pad(im, n);
    if (is_op(n, "Reshape")) return map_reshape(im, n, k);
    return CBQ_FAIL(im->err, CBQ_ERR_INTERNAL, "%s: op %s is in KNOWN_OPS but not mapped", im->label, n->op_type);
}

/* ---- names ------------------------------------------------------------------- */

/* "/layer2/layer2.0/downsample/downsample.0/Conv" -> "layer2.0.downsample.0":
 * the exporter writes each module's scope as its name in its parent, which
 * for a container's child repeats the parent's own name ("layer2.0" inside
 * "layer2"). The last part is the op. A name without '/' is kept as is. */
static void scope_path(const char *node, char *out, size_t cap)
{
    out[0] = '\0';
    if (!strchr(node, '/')) {
        snprintf(out, cap, "%s", node);
        return;
    }
    const char *last_sep = strrchr(node, '/');
    char prev[CBQ_NAME_MAX * 4] = "";
    size_t len = 0;
    for (const char *p = node; p < last_sep;) {
        while (p < last_sep && *p == '/')
            p++;
        const char *e = p;
        while (e < last_sep && *e != '/')
            e++;
        size_t n = (size_t)(e - p), pl = strlen(prev);
        if (n == 0)
            break;
        const char *add = p;
        size_t add_n = n;
        int nested = pl && n > pl && strncmp(p, prev, pl) == 0 && p[pl] == '.';
        if (nested) {
            add = p + pl + 1;
            add_n = n - pl - 1;
        }
        if (len + add_n + 2 < cap) {
            if (len)
                out[len++] = '.';
            memcpy(out + len, add, add_n);
            len += add_n;
            out[len] = '\0';
        }
        snprintf(prev, sizeof prev, "%.*s", (int)(n < sizeof prev ? n : sizeof prev - 1), p);
        p = e;
    }
}

/* Letters, digits and '_' in dot-separated non-empty parts, at most 63
 * characters (model_json.c's rule); "" when nothing usable is left. */
static void sanitise(char *s)
{
    size_t w = 0;
    for (size_t r = 0; s[r] && w < CBQ_NAME_MAX - 1; r++) {
        char c = s[r];
        if (c == '.') {
            if (w > 0 && s[w - 1] != '.')
                s[w++] = '.';
        } else {
            s[w++] = (isalnum((unsigned char)c) || c == '_') ? c : '_';
        }
    }
    while (w > 0 && s[w - 1] == '.')
        w--;
    s[w] = '\0';
}

static void op_lower(const Onnx__NodeProto *n, char *out, size_t cap)
{
    snprintf(out, cap, "%s", n->op_type ? n->op_type : "op");
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    sanitise(out);
}

/* Copies a sanitised name into a layer name, cut to CBQ_NAME_MAX - 1. */
static void copy_name(char *out, const char *src)
{
    size_t n = strlen(src);
    if (n > CBQ_NAME_MAX - 1)
        n = CBQ_NAME_MAX - 1;
    while (n > 0 && src[n - 1] == '.')
        n--;
    memcpy(out, src, n);
    out[n] = '\0';
}

static void raw_layer_name(const importer *im, size_t i, char *out)
{
    const layer_src *s = &im->src[i];
    const char *w = s->t_name[0];
    char buf[512];
    size_t wl = w ? strlen(w) : 0;
    /* A parameterised layer is named by its weight, "layer1.0.conv1.weight". */
    if (wl > 7 && strcmp(w + wl - 7, ".weight") == 0 && wl - 7 < sizeof buf) {
        snprintf(buf, sizeof buf, "%.*s", (int)(wl - 7), w);
        sanitise(buf);
        if (buf[0]) {
            copy_name(out, buf);
            return;
        }
    }
    scope_path(s->node->name ? s->node->name : "", buf, sizeof buf);
    sanitise(buf);
    if (!buf[0])
        op_lower(s->node, buf, sizeof buf);
    copy_name(out, buf);
}

static int path_prefix(const char *a, const char *b)
{
    size_t n = strlen(a);
    return strncmp(a, b, n) == 0 && b[n] == '.';
}

static int clashes(const importer *im, size_t upto, const char *name)
{
    if (strcmp(name, "input") == 0)
        return 1;
    for (size_t k = 0; k < upto; k++) {
        const char *o = im->layers[k].name;
        if (strcmp(o, name) == 0 || path_prefix(o, name) || path_prefix(name, o))
            return 1;
    }
    return 0;
}

/* Unique names that no other is a module-path prefix of: a scope that is
 * also a container ("layer1.0" for its residual Add) gets the op appended
 * ("layer1.0.add"); remaining clashes get "_1", "_2", ... */
static int assign_names(importer *im)
{
    for (size_t i = 0; i < im->n_layers; i++)
        raw_layer_name(im, i, im->src[i].raw_name);
    for (size_t i = 0; i < im->n_layers; i++) {
        char *raw = im->src[i].raw_name;
        int container = 0;
        for (size_t j = 0; j < im->n_layers && !container; j++)
            container = j != i && path_prefix(raw, im->src[j].raw_name);
        if (container) {
            char op[CBQ_NAME_MAX], buf[2 * CBQ_NAME_MAX + 2];
            op_lower(im->src[i].node, op, sizeof op);
            snprintf(buf, sizeof buf, "%s.%s", raw, op);
            sanitise(buf);
            copy_name(raw, buf);
        }
    }
    for (size_t i = 0; i < im->n_layers; i++) {
        char base[CBQ_NAME_MAX], cand[CBQ_NAME_MAX + 16];
        snprintf(base, sizeof base, "%s", im->src[i].raw_name);
        snprintf(cand, sizeof cand, "%s", base);
        for (unsigned k = 1; clashes(im, i, cand); k++) {
            if (k > 100000)
                return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: cannot give node '%.200s' a unique layer name",
                                im->label, node_name(im->src[i].node));
            /* A clash with an earlier module path ("a" and now "a.b"): flatten
             * this name into one part. */
            if (k == 1)
                for (size_t j = 0; j < i; j++)
                    if (path_prefix(im->layers[j].name, base))
                        for (char *p = base; *p; p++)
                            *p = *p == '.' ? '_' : *p;
            char suffix[16];
            snprintf(suffix, sizeof suffix, "_%u", k);
            size_t keep = strlen(base), room = CBQ_NAME_MAX - 1 - strlen(suffix);
            if (keep > room)
                keep = room;
            while (keep > 0 && base[keep - 1] == '.')
                keep--;
            snprintf(cand, sizeof cand, "%.*s%s", (int)keep, base, suffix);
        }
        snprintf(im->layers[i].name, CBQ_NAME_MAX, "%s", cand);
    }
    return CBQ_OK;
}

/* ---- the graph's input and output -------------------------------------------- */

static int is_initializer(const Onnx__GraphProto *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0)
            return 1;
    return 0;
}

static int read_dim(importer *im, const Onnx__ValueInfoProto *vi, const Onnx__TensorShapeProto *s, size_t d,
                    long *out)
{
    const Onnx__TensorShapeProto__Dimension *dim = s->dim[d];
    static const char *const what[] = {"batch", "channels", "height", "width"};
    if (dim->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || dim->dim_value < 1) {
        *out = -1;
        if (d == 0 || (d >= 2 && im->opts->input_size > 0))
            return CBQ_OK;
        int named = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && dim->dim_param;
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: graph input '%.200s': the %s dimension is %s%.64s%s; "
                        "cbctiq needs a fixed size%s", im->label, vi->name, what[d],
                        named ? "dynamic ('" : "dynamic or unknown", named ? dim->dim_param : "", named ? "')" : "",
                        d >= 2 ? " (give one with --input-size)" : "");
    }
    *out = dim->dim_value > MAX_SIDE ? MAX_SIDE + 1 : (long)dim->dim_value;
    return CBQ_OK;
}

static int read_graph_input(importer *im)
{
    const Onnx__GraphProto *g = im->g;
    const Onnx__ValueInfoProto *in = NULL;
    size_t count = 0;
    for (size_t i = 0; i < g->n_input; i++)
        if (g->input[i]->name && !is_initializer(g, g->input[i]->name)) {
            in = in ? in : g->input[i];
            count++;
        }
    if (count != 1)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: the graph has %zu inputs (besides initializers); cbctiq "
                        "models take exactly one image input", im->label, count);
    const Onnx__TypeProto *tp = in->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type ||
        tp->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: graph input '%.200s' must be a float32 tensor", im->label,
                        in->name);
    const Onnx__TensorShapeProto *s = tp->tensor_type->shape;
    if (!s || s->n_dim != 4)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: graph input '%.200s' has %s, expected 4 dimensions "
                        "[N, 1, H, W]", im->label, in->name, s ? "a different number of dimensions" : "no shape");
    long dims[4];
    for (size_t d = 0; d < 4; d++)
        CBQ_TRY(read_dim(im, in, s, d, &dims[d]));
    if (dims[1] != 1)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: graph input '%.200s' has %ld channels; cbctiq feeds one "
                        "CT slice (1 channel)", im->label, in->name, dims[1]);
    im->input_h = im->opts->input_size > 0 ? im->opts->input_size : (int)dims[2];
    im->input_w = im->opts->input_size > 0 ? im->opts->input_size : (int)dims[3];
    if (im->input_h > MAX_SIDE || im->input_w > MAX_SIDE)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: graph input '%.200s' is larger than %d pixels", im->label,
                        in->name, MAX_SIDE);
    return define_value(im, in->name, VAL_INPUT, -1, NULL);
}

static int check_opset(importer *im, const Onnx__ModelProto *m)
{
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const char *d = m->opset_import[i]->domain;
        if (d && d[0] && strcmp(d, "ai.onnx") != 0)
            continue;
        long long v = m->opset_import[i]->version;
        if (v < OPSET_MIN || v > OPSET_MAX)
            return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: opset %lld; cbctiq reads opsets %d to %d "
                            "(torch.onnx.export(..., opset_version=13))", im->label, v, OPSET_MIN, OPSET_MAX);
        return CBQ_OK;
    }
    return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: no opset_import for the default ONNX domain (a truncated "
                    "or non-ONNX file?)", im->label);
}

/* The last GlobalAveragePool (or spatial ReduceMean) pools for the head;
 * earlier ones (squeeze-excitation) keep [C, 1, 1] inside the network. */
static long find_head_pool(const Onnx__GraphProto *g)
{
    long last = -1;
    for (size_t k = 0; k < g->n_node; k++)
        if (is_op(g->node[k], "GlobalAveragePool") || is_op(g->node[k], "ReduceMean"))
            last = (long)k;
    return last;
}

/* ---- spec and weights ---------------------------------------------------------- */

static const char *const default_outputs[] = {"parotid", "submandibular", "larynx", "mandible", "overall"};

/* "a,b,c" with exactly spec->n_outputs names that fit: 1, else 0. */
static int outputs_from_meta(const char *list, cbq_model_spec *spec)
{
    size_t count = 0;
    for (const char *p = list; count <= spec->n_outputs;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || n >= CBQ_NAME_MAX || count == spec->n_outputs)
            return 0;
        memcpy(spec->outputs[count], p, n);
        spec->outputs[count++][n] = '\0';
        if (!e)
            break;
        p = e + 1;
    }
    return count == spec->n_outputs;
}

static int set_outputs(importer *im, cbq_model_spec *spec)
{
    size_t (*shapes)[3] = malloc(spec->n_layers * sizeof *shapes);
    if (!shapes)
        return CBQ_FAIL(im->err, CBQ_ERR_NOMEM, "%s: out of memory", im->label);
    int rc = cbq_model_spec_shapes(spec, shapes, im->err);
    size_t k = rc == CBQ_OK ? shapes[spec->n_layers - 1][0] : 0;
    int flat = rc == CBQ_OK && shapes[spec->n_layers - 1][1] == 1 && shapes[spec->n_layers - 1][2] == 1;
    free(shapes);
    if (rc != CBQ_OK)
        return cbq_error_prefix(im->err, "%s: ", im->label);
    if (!flat || k < 1 || k > CBQ_MAX_OUTPUTS)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: the graph output must be 1 to %d scores per slice "
                        "(the last layer '%s' gives %zu%s)", im->label, CBQ_MAX_OUTPUTS,
                        spec->layers[spec->n_layers - 1].name, k, flat ? "" : " channels with a spatial grid");
    const cbq_onnx_import_opts *o = im->opts;
    if (o->n_outputs && o->n_outputs != k)
        return CBQ_FAIL(im->err, CBQ_ERR_ARG, "%s: the model gives %zu scores but %zu output names were given",
                        im->label, k, o->n_outputs);
    spec->n_outputs = k;
    if (!o->n_outputs && im->meta.outputs && outputs_from_meta(im->meta.outputs, spec))
        return CBQ_OK;
    for (size_t i = 0; i < k; i++) {
        if (o->n_outputs)
            snprintf(spec->outputs[i], CBQ_NAME_MAX, "%s", o->outputs[i]);
        else if (i < 5)
            snprintf(spec->outputs[i], CBQ_NAME_MAX, "%s", default_outputs[i]);
        else
            snprintf(spec->outputs[i], CBQ_NAME_MAX, "out%zu", i);
    }
    return CBQ_OK;
}

/* The last activation before the first layer that flattens (the global pool
 * or the head): the deepest map that still has a spatial grid. */
static int set_target(importer *im, cbq_model_spec *spec)
{
    size_t head = spec->n_layers;
    for (size_t i = 0; i < spec->n_layers && head == spec->n_layers; i++) {
        cbq_layer_kind kd = spec->layers[i].kind;
        if (kd == CBQ_LAYER_GLOBAL_AVGPOOL || kd == CBQ_LAYER_LINEAR || kd == CBQ_LAYER_FLATTEN)
            head = i;
    }
    if (head == 0 || head == spec->n_layers)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: no layer with a spatial map before the global pool or "
                        "linear head (nothing for Grad-CAM to explain)", im->label);
    if (im->meta.target_layer && cbq_model_spec_find(spec, im->meta.target_layer) >= 0 &&
        strlen(im->meta.target_layer) < CBQ_NAME_MAX) {
        snprintf(spec->target_layer, CBQ_NAME_MAX, "%s", im->meta.target_layer);
        return CBQ_OK;
    }
    size_t t = head - 1;
    for (size_t i = head; i-- > 0;) {
        cbq_layer_kind kd = spec->layers[i].kind;
        if (kd == CBQ_LAYER_RELU || kd == CBQ_LAYER_LEAKY_RELU || kd == CBQ_LAYER_SILU) {
            t = i;
            break;
        }
    }
    snprintf(spec->target_layer, CBQ_NAME_MAX, "%s", spec->layers[t].name);
    return CBQ_OK;
}

/* Copies a float tensor into out (numel floats), transposing a 2-D one when asked. */
static int tensor_to_f32(importer *im, const Onnx__TensorProto *t, const char *name, int transpose, float *out)
{
    size_t numel = 0;
    tensor_numel(t, &numel);
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: tensor '%.200s' is stored in an external file; export "
                        "with the weights inside the model (models under 2 GB)", im->label, name);
    int is_f32 = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    int is_f64 = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
    if (!is_f32 && !is_f64)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: tensor '%.200s' has ONNX data type %d, expected float32 "
                        "(1) or float64 (11)", im->label, name, (int)t->data_type);
    size_t have = t->has_raw_data ? t->raw_data.len / (is_f32 ? 4 : 8) : is_f32 ? t->n_float_data : t->n_double_data;
    if ((t->has_raw_data && t->raw_data.len % (is_f32 ? 4 : 8) != 0) || have != numel)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: tensor '%.200s' holds %zu values, its shape needs %zu",
                        im->label, name, have, numel);
    size_t rows = transpose ? (size_t)t->dims[0] : 1, cols = transpose ? (size_t)t->dims[1] : numel;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            size_t i = r * cols + c;
            double v;
            if (t->has_raw_data && is_f32) {
                float f;
                memcpy(&f, t->raw_data.data + 4 * i, 4);
                v = f;
            } else if (t->has_raw_data) {
                memcpy(&v, t->raw_data.data + 8 * i, 8);
            } else {
                v = is_f32 ? t->float_data[i] : t->double_data[i];
            }
            out[transpose ? c * rows + r : i] = (float)v;
        }
    return CBQ_OK;
}

typedef struct {
    char name[CBQ_NAME_MAX + 32];
    const Onnx__TensorProto *t;
    const char *onnx_name;
    int transpose, is_counter;
    int ndim;
    size_t shape[4], numel;
} weight_plan;

static size_t plan_layer(const importer *im, size_t i, weight_plan *p)
{
    const cbq_layer_spec *l = &im->layers[i];
    const layer_src *s = &im->src[i];
    static const char *const conv_names[] = {"weight", "bias"};
    static const char *const bn_names[] = {"weight", "bias", "running_mean", "running_var"};
    size_t n = 0;
    const char *const *names = l->kind == CBQ_LAYER_BATCHNORM2D ? bn_names : conv_names;
    int has_weights = l->kind == CBQ_LAYER_CONV2D || l->kind == CBQ_LAYER_LINEAR;
    size_t count = l->kind == CBQ_LAYER_BATCHNORM2D ? 4 : has_weights ? 2 : 0;
    for (size_t j = 0; j < count; j++) {
        if (!s->t[j])
            continue;
        weight_plan *w = &p[n++];
        memset(w, 0, sizeof *w);
        snprintf(w->name, sizeof w->name, "%s.%s", l->name, names[j]);
        w->t = s->t[j];
        w->onnx_name = s->t_name[j];
        tensor_numel(w->t, &w->numel);
        if (j == 0 && l->kind == CBQ_LAYER_CONV2D) {
            w->ndim = 4;
            for (int d = 0; d < 4; d++)
                w->shape[d] = (size_t)w->t->dims[d];
        } else if (j == 0 && l->kind == CBQ_LAYER_LINEAR) {
            w->ndim = 2;
            w->shape[0] = (size_t)l->cfg.linear.out_features;
            w->shape[1] = (size_t)l->cfg.linear.in_features;
            w->transpose = s->transpose_weight;
        } else {
            w->ndim = 1;
            w->shape[0] = w->numel;
        }
    }
    if (l->kind == CBQ_LAYER_BATCHNORM2D) {
        weight_plan *w = &p[n++];
        memset(w, 0, sizeof *w);
        snprintf(w->name, sizeof w->name, "%s.num_batches_tracked", l->name);
        w->is_counter = 1;
        w->numel = 1;
    }
    return n;
}

static int build_weights(importer *im, cbq_safetensors *st)
{
    size_t cap = 5 * im->n_layers + 1, n = 0, bytes = 0;
    weight_plan *plan = malloc(cap * sizeof *plan);
    if (!plan)
        return CBQ_FAIL(im->err, CBQ_ERR_NOMEM, "%s: out of memory", im->label);
    for (size_t i = 0; i < im->n_layers; i++)
        n += plan_layer(im, i, plan + n);
    for (size_t i = 0; i < n; i++)
        bytes += plan[i].is_counter ? 8 : 4 * plan[i].numel; /* each numel checked against the model's limits */
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    st->buf = malloc(bytes ? bytes : 1);
    if (!st->tensors || !st->buf) {
        free(plan);
        return CBQ_FAIL(im->err, CBQ_ERR_NOMEM, "%s: out of memory for %zu bytes of weights", im->label, bytes);
    }
    st->size = bytes;
    size_t at = 0;
    int rc = CBQ_OK;
    for (size_t i = 0; i < n && rc == CBQ_OK; i++) {
        cbq_st_tensor *t = &st->tensors[i];
        const weight_plan *w = &plan[i];
        t->name = strdup(w->name);
        if (!t->name) {
            rc = CBQ_FAIL(im->err, CBQ_ERR_NOMEM, "%s: out of memory", im->label);
            break;
        }
        st->n_tensors = i + 1;
        t->dtype = w->is_counter ? CBQ_ST_I64 : CBQ_ST_F32;
        t->ndim = w->ndim;
        memcpy(t->shape, w->shape, sizeof w->shape);
        t->numel = w->numel;
        t->nbytes = w->is_counter ? 8 : 4 * w->numel;
        t->data = st->buf + at;
        if (w->is_counter)
            memset(st->buf + at, 0, 8);
        else
            rc = tensor_to_f32(im, w->t, w->onnx_name, w->transpose, (float *)(void *)(st->buf + at));
        at += t->nbytes;
    }
    free(plan);
    return rc;
}

static int build_spec(importer *im, cbq_model_spec *spec)
{
    const Onnx__GraphProto *g = im->g;
    if (g->n_output != 1)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: the graph has %zu outputs, expected one (the scores)",
                        im->label, g->n_output);
    const value *out = g->output[0]->name ? find_value(im, g->output[0]->name) : NULL;
    if (!out || out->kind != VAL_LAYER || out->layer != (long)im->n_layers - 1)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: the graph output '%.200s' is not computed by the last "
                        "mapped node", im->label, g->output[0]->name ? g->output[0]->name : "");
    CBQ_TRY(assign_names(im));
    /* "inputs" only where a layer reads something other than the previous one. */
    for (size_t i = 0; i < im->n_layers; i++) {
        cbq_layer_spec *l = &im->layers[i];
        if (l->n_inputs == 1 && l->inputs[0] == (int)i - 1)
            l->n_inputs = 0;
    }
    const cbq_metadata *md = &im->meta;
    snprintf(spec->arch, sizeof spec->arch, "%s",
             md->arch && md->arch[0] && strlen(md->arch) < CBQ_NAME_MAX ? md->arch : "custom");
    spec->input = (cbq_input_spec){.height = im->input_h, .width = im->input_w, .hu_min = -1000, .hu_max = 1000};
    if (im->opts->hu_min != 0 || im->opts->hu_max != 0) {
        spec->input.hu_min = im->opts->hu_min;
        spec->input.hu_max = im->opts->hu_max;
    } else if (md->hu_min && md->hu_max) {
        char *end_min, *end_max;
        double lo = strtod(md->hu_min, &end_min), hi = strtod(md->hu_max, &end_max);
        if (*end_min || *end_max || !(lo < hi))
            return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: metadata cbctiq.hu_min/hu_max ('%.40s', '%.40s') "
                            "are not two increasing numbers", im->label, md->hu_min, md->hu_max);
        spec->input.hu_min = lo;
        spec->input.hu_max = hi;
    }
    spec->n_layers = im->n_layers;
    spec->layers = im->layers; /* now the spec's; im->layers still reads it */
    CBQ_TRY(set_outputs(im, spec));
    CBQ_TRY(set_target(im, spec));
    return cbq_model_spec_validate(spec, im->label, im->err);
}

static void read_metadata(importer *im, const Onnx__ModelProto *m)
{
    struct { const char *key; const char **slot; } keys[] = {
        {"cbctiq.arch", &im->meta.arch}, {"cbctiq.outputs", &im->meta.outputs},
        {"cbctiq.target_layer", &im->meta.target_layer}, {"cbctiq.hu_min", &im->meta.hu_min},
        {"cbctiq.hu_max", &im->meta.hu_max}};
    for (size_t i = 0; i < m->n_metadata_props; i++)
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            if (m->metadata_props[i]->key && m->metadata_props[i]->value &&
                strcmp(m->metadata_props[i]->key, keys[k].key) == 0)
                *keys[k].slot = m->metadata_props[i]->value;
}

static int import_model(importer *im, const Onnx__ModelProto *m, cbq_model_spec *spec, cbq_safetensors *st)
{
    CBQ_TRY(check_opset(im, m));
    read_metadata(im, m);
    if (!m->graph)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: the model has no graph", im->label);
    const Onnx__GraphProto *g = im->g = m->graph;
    if (g->n_node == 0)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: the graph has no nodes", im->label);
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        size_t numel = 0;
        if (!t->name || !t->name[0] || !tensor_numel(t, &numel))
            return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: initializer #%zu has no name or a bad shape",
                            im->label, i);
        CBQ_TRY(define_value(im, t->name, VAL_CONST, 0, t));
    }
    CBQ_TRY(read_graph_input(im));
    im->cap_layers = g->n_node;
    im->layers = calloc(g->n_node, sizeof *im->layers);
    im->src = calloc(g->n_node, sizeof *im->src);
    if (!im->layers || !im->src)
        return CBQ_FAIL(im->err, CBQ_ERR_NOMEM, "%s: out of memory", im->label);
    im->last_gap_node = find_head_pool(g);
    for (size_t k = 0; k < g->n_node; k++)
        CBQ_TRY(map_node(im, k));
    if (im->n_unsupported)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: %zu node%s with operators cbctiq does not support: %s%s",
                        im->label, im->n_unsupported, im->n_unsupported == 1 ? "" : "s", im->unsupported,
                        strstr(im->unsupported, "(Shape)") ? " (x.view(x.size(0), -1) with a dynamic batch "
                                                              "writes Shape and Gather: use torch.flatten(x, 1))"
                                                            : "");
    if (im->n_layers == 0)
        return CBQ_FAIL(im->err, CBQ_ERR_FORMAT, "%s: the graph computes nothing cbctiq can run", im->label);
    CBQ_TRY(build_spec(im, spec));
    return build_weights(im, st);
}

int cbq_onnx_parse(const void *bytes, size_t size, const char *label, const cbq_onnx_import_opts *opts,
                   cbq_model_spec *spec, cbq_safetensors *weights, cbq_error *err)
{
    memset(spec, 0, sizeof *spec);
    memset(weights, 0, sizeof *weights);
    snprintf(weights->path, sizeof weights->path, "%s", label);
    if (!(opts->hu_min < opts->hu_max) && (opts->hu_min != 0 || opts->hu_max != 0))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: hu_min must be below hu_max", label);
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, bytes);
    if (!m)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: not a valid ONNX protobuf (truncated or garbled)", label);
    importer im = {.label = label, .opts = opts, .err = err, .last_gap_node = -1};
    int rc = import_model(&im, m, spec, weights);
    free(im.vals);
    if (im.layers != spec->layers)
        free(im.layers);
    free(im.src);
    onnx__model_proto__free_unpacked(m, NULL);
    if (rc != CBQ_OK) {
        cbq_model_spec_free(spec);
        cbq_safetensors_free(weights);
        memset(spec, 0, sizeof *spec);
        memset(weights, 0, sizeof *weights);
    }
    return rc;
}

int cbq_onnx_read(const char *path, const cbq_onnx_import_opts *opts, cbq_model_spec *spec,
                  cbq_safetensors *weights, cbq_error *err)
{
    memset(spec, 0, sizeof *spec);
    memset(weights, 0, sizeof *weights);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open", path);
    long len = -1;
    if (fseek(fp, 0, SEEK_END) == 0)
        len = ftell(fp);
    if (len < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        fclose(fp);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot determine the file size", path);
    }
    if ((size_t)len > MAX_FILE_BYTES) {
        fclose(fp);
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: %ld bytes, above the 2 GB a protobuf can hold", path, len);
    }
    unsigned char *buf = malloc(len ? (size_t)len : 1);
    if (!buf) {
        fclose(fp);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory for %ld bytes", path, len);
    }
    size_t got = fread(buf, 1, (size_t)len, fp);
    int read_err = ferror(fp);
    fclose(fp);
    if (got != (size_t)len || read_err) {
        free(buf);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: read error", path);
    }
    int rc = cbq_onnx_parse(buf, (size_t)len, path, opts, spec, weights, err);
    free(buf);
    return rc;
}
