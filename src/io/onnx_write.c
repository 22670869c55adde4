/* onnx_write.c - a model spec and its weights as an ONNX file
 * (include/cbctiq/onnx.h): the inverse of onnx_read.c, written so that
 * reading the file back gives the same spec. Each layer is one node named
 * as the layer (so the reader keeps the name), whose output tensor is also
 * named as the layer; a linear layer is Flatten + Gemm (nn.Linear as
 * torch.onnx.export writes it), SiLU is x * Sigmoid(x) (opset 13 has no
 * SiLU), both global pools are GlobalAveragePool. Opset 13, IR version 7:
 * what onnx 1.12's checker and PyTorch 1.13's exporter agree on. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "cbctiq/onnx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "onnx/onnx.pb-c.h"

enum { OPSET = 13, IR_VERSION = 7 };

/* Everything a message tree points to, freed at once. */
typedef struct {
    void **ptrs;
    size_t n, cap;
    int failed;
} pool;

static void *pool_add(pool *p, void *ptr)
{
    if (!ptr || p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 256;
        void **grown = ptr ? realloc(p->ptrs, cap * sizeof *grown) : NULL;
        if (!grown) {
            free(ptr);
            p->failed = 1;
            return NULL;
        }
        p->ptrs = grown;
        p->cap = cap;
    }
    p->ptrs[p->n++] = ptr;
    return ptr;
}

static void *pool_calloc(pool *p, size_t n, size_t size)
{
    return pool_add(p, calloc(n ? n : 1, size));
}

static char *pool_printf(pool *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *pool_printf(pool *p, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return pool_add(p, strdup(buf));
}

static void pool_free(pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->ptrs[i]);
    free(p->ptrs);
}

typedef struct {
    pool mem;
    const cbq_model_spec *spec;
    const cbq_st_entry *tensors;
    size_t n_tensors;
    const char *path;
    cbq_error *err;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
} writer;

static Onnx__AttributeProto *attr_int(writer *w, const char *name, long v)
{
    Onnx__AttributeProto *a = pool_calloc(&w->mem, 1, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
    return a;
}

static Onnx__AttributeProto *attr_float(writer *w, const char *name, double v)
{
    Onnx__AttributeProto *a = pool_calloc(&w->mem, 1, sizeof *a);
    if (!a)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1;
    a->f = (float)v;
    return a;
}

static Onnx__AttributeProto *attr_ints(writer *w, const char *name, size_t n, const long *v)
{
    Onnx__AttributeProto *a = pool_calloc(&w->mem, 1, sizeof *a);
    int64_t *ints = pool_calloc(&w->mem, n, sizeof *ints);
    if (!a || !ints)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    for (size_t i = 0; i < n; i++)
        ints[i] = v[i];
    a->n_ints = n;
    a->ints = ints;
    return a;
}

/* A node op(inputs) -> output with up to 6 attributes (NULL-terminated). */
static Onnx__NodeProto *add_node(writer *w, const char *op, const char *name, const char *const *inputs,
                                 size_t n_inputs, const char *output, Onnx__AttributeProto *const *attrs)
{
    if (w->n_nodes == w->cap_nodes) {
        size_t cap = w->cap_nodes ? 2 * w->cap_nodes : 64;
        Onnx__NodeProto **grown = realloc(w->nodes, cap * sizeof *grown);
        if (!grown) {
            w->mem.failed = 1;
            return NULL;
        }
        w->nodes = grown;
        w->cap_nodes = cap;
    }
    Onnx__NodeProto *n = pool_calloc(&w->mem, 1, sizeof *n);
    char **in = pool_calloc(&w->mem, n_inputs, sizeof *in);
    char **out = pool_calloc(&w->mem, 1, sizeof *out);
    size_t n_attrs = 0;
    while (attrs && attrs[n_attrs])
        n_attrs++;
    Onnx__AttributeProto **at = pool_calloc(&w->mem, n_attrs, sizeof *at);
    if (!n || !in || !out || !at)
        return NULL;
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = (char *)name;
    for (size_t i = 0; i < n_inputs; i++)
        in[i] = (char *)inputs[i];
    n->n_input = n_inputs;
    n->input = in;
    out[0] = (char *)output;
    n->n_output = 1;
    n->output = out;
    for (size_t i = 0; i < n_attrs; i++)
        at[i] = attrs[i];
    n->n_attribute = n_attrs;
    n->attribute = at;
    w->nodes[w->n_nodes++] = n;
    return n;
}

static const cbq_st_entry *find_tensor(const writer *w, const char *name)
{
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return &w->tensors[i];
    return NULL;
}

static int add_initializer(writer *w, const char *name, int ndim, const size_t *shape, const void *data)
{
    if (w->n_inits == w->cap_inits) {
        size_t cap = w->cap_inits ? 2 * w->cap_inits : 64;
        Onnx__TensorProto **grown = realloc(w->inits, cap * sizeof *grown);
        if (!grown)
            return CBQ_FAIL(w->err, CBQ_ERR_NOMEM, "%s: out of memory", w->path);
        w->inits = grown;
        w->cap_inits = cap;
    }
    Onnx__TensorProto *t = pool_calloc(&w->mem, 1, sizeof *t);
    int64_t *dims = pool_calloc(&w->mem, (size_t)ndim, sizeof *dims);
    if (!t || !dims)
        return CBQ_FAIL(w->err, CBQ_ERR_NOMEM, "%s: out of memory", w->path);
    onnx__tensor_proto__init(t);
    size_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        dims[d] = (int64_t)shape[d];
        numel *= shape[d];
    }
    t->n_dims = (size_t)ndim;
    t->dims = dims;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->name = (char *)name;
    t->has_raw_data = 1;
    t->raw_data.len = 4 * numel; /* host order = little-endian (checked in safetensors.h) */
    t->raw_data.data = (uint8_t *)data;
    w->inits[w->n_inits++] = t;
    return CBQ_OK;
}

/* The state_dict tensor `layer`.`suffix` with exactly this shape, as an initializer. */
static int param(writer *w, const cbq_layer_spec *l, const char *suffix, int ndim, const size_t *shape,
                 const char **name_out)
{
    char *name = pool_printf(&w->mem, "%s.%s", l->name, suffix);
    if (!name)
        return CBQ_FAIL(w->err, CBQ_ERR_NOMEM, "%s: out of memory", w->path);
    const cbq_st_entry *e = find_tensor(w, name);
    if (!e)
        return CBQ_FAIL(w->err, CBQ_ERR_ARG, "%s: tensor '%s' is missing", w->path, name);
    int same = e->ndim == ndim && e->dtype == CBQ_ST_F32;
    for (int d = 0; same && d < ndim; d++)
        same = e->shape[d] == shape[d];
    if (!same)
        return CBQ_FAIL(w->err, CBQ_ERR_ARG, "%s: tensor '%s' is not float32 with the shape the layer needs",
                        w->path, name);
    *name_out = name;
    return add_initializer(w, name, ndim, shape, e->data);
}

static const char *tensor_of(writer *w, long layer)
{
    if (layer < 0)
        return "input";
    if ((size_t)layer == w->spec->n_layers - 1)
        return "output";
    return w->spec->layers[layer].name;
}

static int write_conv(writer *w, const cbq_layer_spec *l, const char *in, const char *out)
{
    const cbq_conv2d_cfg *c = &l->cfg.conv;
    int groups = c->groups ? c->groups : 1;
    size_t wshape[4] = {(size_t)c->out_channels, (size_t)(c->in_channels / groups), (size_t)c->kernel_h,
                        (size_t)c->kernel_w};
    size_t bshape[1] = {(size_t)c->out_channels};
    const char *inputs[3] = {in, NULL, NULL};
    CBQ_TRY(param(w, l, "weight", 4, wshape, &inputs[1]));
    if (c->bias)
        CBQ_TRY(param(w, l, "bias", 1, bshape, &inputs[2]));
    long k[2] = {c->kernel_h, c->kernel_w}, s[2] = {c->stride_h, c->stride_w},
         d[2] = {c->dilation_h ? c->dilation_h : 1, c->dilation_w ? c->dilation_w : 1},
         p[4] = {c->pad_h, c->pad_w, c->pad_h, c->pad_w};
    Onnx__AttributeProto *attrs[] = {attr_ints(w, "kernel_shape", 2, k), attr_ints(w, "strides", 2, s),
                                     attr_ints(w, "pads", 4, p), attr_ints(w, "dilations", 2, d),
                                     attr_int(w, "group", groups), NULL};
    add_node(w, "Conv", l->name, inputs, c->bias ? 3 : 2, out, attrs);
    return CBQ_OK;
}

static int write_bn(writer *w, const cbq_layer_spec *l, const char *in, const char *out)
{
    size_t shape[1] = {(size_t)l->cfg.bn.channels};
    static const char *const names[] = {"weight", "bias", "running_mean", "running_var"};
    const char *inputs[5] = {in};
    for (int j = 0; j < 4; j++)
        CBQ_TRY(param(w, l, names[j], 1, shape, &inputs[j + 1]));
    Onnx__AttributeProto *attrs[] = {attr_float(w, "epsilon", l->cfg.bn.eps),
                                     attr_float(w, "momentum", 1.0 - l->cfg.bn.momentum), NULL};
    add_node(w, "BatchNormalization", l->name, inputs, 5, out, attrs);
    return CBQ_OK;
}

static int write_pool(writer *w, const cbq_layer_spec *l, const char *in, const char *out)
{
    const cbq_pool2d_cfg *c = &l->cfg.pool;
    long k[2] = {c->kernel_h, c->kernel_w}, s[2] = {c->stride_h, c->stride_w},
         p[4] = {c->pad_h, c->pad_w, c->pad_h, c->pad_w};
    int avg = l->kind == CBQ_LAYER_AVGPOOL2D;
    Onnx__AttributeProto *attrs[] = {attr_ints(w, "kernel_shape", 2, k), attr_ints(w, "strides", 2, s),
                                     attr_ints(w, "pads", 4, p), attr_int(w, "ceil_mode", c->ceil_mode),
                                     avg ? attr_int(w, "count_include_pad", 1) : NULL, NULL};
    add_node(w, avg ? "AveragePool" : "MaxPool", l->name, &in, 1, out, attrs);
    return CBQ_OK;
}

static int write_linear(writer *w, const cbq_layer_spec *l, const char *in, const char *out)
{
    const cbq_linear_cfg *c = &l->cfg.linear;
    size_t wshape[2] = {(size_t)c->out_features, (size_t)c->in_features}, bshape[1] = {(size_t)c->out_features};
    const char *flat = pool_printf(&w->mem, "%s/flatten", l->name);
    const char *inputs[3] = {flat, NULL, NULL};
    CBQ_TRY(param(w, l, "weight", 2, wshape, &inputs[1]));
    if (c->bias)
        CBQ_TRY(param(w, l, "bias", 1, bshape, &inputs[2]));
    Onnx__AttributeProto *fattrs[] = {attr_int(w, "axis", 1), NULL};
    add_node(w, "Flatten", flat, &in, 1, flat, fattrs);
    Onnx__AttributeProto *attrs[] = {attr_float(w, "alpha", 1.0), attr_float(w, "beta", 1.0),
                                     attr_int(w, "transB", 1), NULL};
    add_node(w, "Gemm", l->name, inputs, c->bias ? 3 : 2, out, attrs);
    return CBQ_OK;
}

static int write_dropout(writer *w, const cbq_layer_spec *l, const char *in, const char *out)
{
    float *ratio = pool_calloc(&w->mem, 1, sizeof *ratio);
    const char *name = pool_printf(&w->mem, "%s/ratio", l->name);
    if (!ratio || !name)
        return CBQ_FAIL(w->err, CBQ_ERR_NOMEM, "%s: out of memory", w->path);
    *ratio = (float)l->cfg.dropout.p;
    CBQ_TRY(add_initializer(w, name, 0, NULL, ratio));
    const char *inputs[2] = {in, name};
    add_node(w, "Dropout", l->name, inputs, 2, out, NULL);
    return CBQ_OK;
}

static int write_layer(writer *w, size_t i)
{
    const cbq_model_spec *s = w->spec;
    const cbq_layer_spec *l = &s->layers[i];
    const char *in[CBQ_MAX_INPUTS];
    size_t n_in = cbq_model_spec_n_inputs(s, i);
    for (size_t j = 0; j < n_in; j++)
        in[j] = tensor_of(w, cbq_model_spec_input(s, i, j));
    const char *out = tensor_of(w, (long)i);
    switch (l->kind) {
    case CBQ_LAYER_CONV2D: return write_conv(w, l, in[0], out);
    case CBQ_LAYER_BATCHNORM2D: return write_bn(w, l, in[0], out);
    case CBQ_LAYER_MAXPOOL2D: case CBQ_LAYER_AVGPOOL2D: return write_pool(w, l, in[0], out);
    case CBQ_LAYER_LINEAR: return write_linear(w, l, in[0], out);
    case CBQ_LAYER_DROPOUT: return write_dropout(w, l, in[0], out);
    case CBQ_LAYER_RELU: add_node(w, "Relu", l->name, in, 1, out, NULL); return CBQ_OK;
    case CBQ_LAYER_SIGMOID: add_node(w, "Sigmoid", l->name, in, 1, out, NULL); return CBQ_OK;
    case CBQ_LAYER_IDENTITY: add_node(w, "Identity", l->name, in, 1, out, NULL); return CBQ_OK;
    case CBQ_LAYER_LEAKY_RELU: {
        Onnx__AttributeProto *attrs[] = {attr_float(w, "alpha", l->cfg.leaky.negative_slope), NULL};
        add_node(w, "LeakyRelu", l->name, in, 1, out, attrs);
        return CBQ_OK;
    }
    case CBQ_LAYER_GLOBAL_AVGPOOL: case CBQ_LAYER_ADAPTIVE_AVGPOOL2D:
        add_node(w, "GlobalAveragePool", l->name, in, 1, out, NULL);
        return CBQ_OK;
    case CBQ_LAYER_FLATTEN: {
        Onnx__AttributeProto *attrs[] = {attr_int(w, "axis", 1), NULL};
        add_node(w, "Flatten", l->name, in, 1, out, attrs);
        return CBQ_OK;
    }
    case CBQ_LAYER_ADD: add_node(w, n_in == 2 ? "Add" : "Sum", l->name, in, n_in, out, NULL); return CBQ_OK;
    case CBQ_LAYER_MUL: add_node(w, "Mul", l->name, in, n_in, out, NULL); return CBQ_OK;
    case CBQ_LAYER_CONCAT: {
        Onnx__AttributeProto *attrs[] = {attr_int(w, "axis", 1), NULL};
        add_node(w, "Concat", l->name, in, n_in, out, attrs);
        return CBQ_OK;
    }
    case CBQ_LAYER_SILU: {
        const char *sig = pool_printf(&w->mem, "%s/sigmoid", l->name);
        const char *mul_in[2] = {in[0], sig};
        add_node(w, "Sigmoid", l->name, in, 1, sig, NULL);
        add_node(w, "Mul", pool_printf(&w->mem, "%s/mul", l->name), mul_in, 2, out, NULL);
        return CBQ_OK;
    }
    default:
        return CBQ_FAIL(w->err, CBQ_ERR_INTERNAL, "%s: layer '%s': kind %d has no ONNX form", w->path, l->name,
                        (int)l->kind);
    }
}

/* A float tensor value_info [N, dims...] with N dynamic. */
static Onnx__ValueInfoProto *value_info(writer *w, const char *name, size_t n_dims, const long *dims)
{
    Onnx__ValueInfoProto *vi = pool_calloc(&w->mem, 1, sizeof *vi);
    Onnx__TypeProto *tp = pool_calloc(&w->mem, 1, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = pool_calloc(&w->mem, 1, sizeof *tt);
    Onnx__TensorShapeProto *sh = pool_calloc(&w->mem, 1, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dim = pool_calloc(&w->mem, n_dims + 1, sizeof *dim);
    if (!vi || !tp || !tt || !sh || !dim)
        return NULL;
    for (size_t d = 0; d <= n_dims; d++) {
        dim[d] = pool_calloc(&w->mem, 1, sizeof *dim[d]);
        if (!dim[d])
            return NULL;
        onnx__tensor_shape_proto__dimension__init(dim[d]);
        if (d == 0) {
            dim[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim[d]->dim_param = (char *)"N";
        } else {
            dim[d]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dim[d]->dim_value = dims[d - 1];
        }
    }
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = n_dims + 1;
    sh->dim = dim;
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    onnx__type_proto__init(tp);
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    onnx__value_info_proto__init(vi);
    vi->name = (char *)name;
    vi->type = tp;
    return vi;
}

static Onnx__StringStringEntryProto *meta(writer *w, const char *key, char *value)
{
    Onnx__StringStringEntryProto *e = pool_calloc(&w->mem, 1, sizeof *e);
    if (!e || !value)
        return NULL;
    onnx__string_string_entry_proto__init(e);
    e->key = (char *)key;
    e->value = value;
    return e;
}

/* What model.json has and ONNX does not, for cbq_onnx_read to take back. */
static int add_metadata(writer *w, Onnx__ModelProto *m)
{
    const cbq_model_spec *s = w->spec;
    char outputs[CBQ_MAX_OUTPUTS * CBQ_NAME_MAX + CBQ_MAX_OUTPUTS] = "";
    for (size_t i = 0; i < s->n_outputs; i++)
        snprintf(outputs + strlen(outputs), sizeof outputs - strlen(outputs), "%s%s", i ? "," : "", s->outputs[i]);
    Onnx__StringStringEntryProto **e = pool_calloc(&w->mem, 5, sizeof *e);
    char *outputs_copy = pool_add(&w->mem, strdup(outputs));
    if (!e)
        return CBQ_FAIL(w->err, CBQ_ERR_NOMEM, "%s: out of memory", w->path);
    e[0] = meta(w, "cbctiq.arch", pool_printf(&w->mem, "%s", s->arch));
    e[1] = meta(w, "cbctiq.outputs", outputs_copy);
    e[2] = meta(w, "cbctiq.target_layer", pool_printf(&w->mem, "%s", s->target_layer));
    e[3] = meta(w, "cbctiq.hu_min", pool_printf(&w->mem, "%.17g", s->input.hu_min));
    e[4] = meta(w, "cbctiq.hu_max", pool_printf(&w->mem, "%.17g", s->input.hu_max));
    for (int i = 0; i < 5; i++)
        if (!e[i])
            return CBQ_FAIL(w->err, CBQ_ERR_NOMEM, "%s: out of memory", w->path);
    m->n_metadata_props = 5;
    m->metadata_props = e;
    return CBQ_OK;
}

static int write_file(writer *w, const Onnx__ModelProto *m)
{
    size_t size = onnx__model_proto__get_packed_size(m);
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return CBQ_FAIL(w->err, CBQ_ERR_NOMEM, "%s: out of memory for %zu bytes", w->path, size);
    onnx__model_proto__pack(m, buf);
    cbq_atomic_file af;
    int rc = cbq_atomic_open(&af, w->path, w->err);
    if (rc == CBQ_OK) {
        if (fwrite(buf, 1, size, af.fp) != size) {
            cbq_atomic_abort(&af);
            rc = CBQ_FAIL(w->err, CBQ_ERR_IO, "%s: write error", w->path);
        } else {
            rc = cbq_atomic_commit(&af, w->err);
        }
    }
    free(buf);
    return rc;
}

static int build_and_write(writer *w)
{
    const cbq_model_spec *s = w->spec;
    for (size_t i = 0; i < s->n_layers; i++)
        CBQ_TRY(write_layer(w, i));
    long in_dims[3] = {1, s->input.height, s->input.width}, out_dims[1] = {(long)s->n_outputs};
    Onnx__ValueInfoProto *in = value_info(w, "input", 3, in_dims), *out = value_info(w, "output", 1, out_dims);
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
    Onnx__OperatorSetIdProto *opsets[1] = {&opset};
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
    if (w->mem.failed || !in || !out)
        return CBQ_FAIL(w->err, CBQ_ERR_NOMEM, "%s: out of memory", w->path);
    opset.domain = (char *)"";
    opset.has_version = 1;
    opset.version = OPSET;
    g.name = (char *)"cbctiq";
    g.n_node = w->n_nodes;
    g.node = w->nodes;
    g.n_initializer = w->n_inits;
    g.initializer = w->inits;
    g.n_input = 1;
    g.input = &in;
    g.n_output = 1;
    g.output = &out;
    m.has_ir_version = 1;
    m.ir_version = IR_VERSION;
    m.producer_name = (char *)"cbctiq";
    m.n_opset_import = 1;
    m.opset_import = opsets;
    m.graph = &g;
    CBQ_TRY(add_metadata(w, &m));
    return write_file(w, &m);
}

int cbq_onnx_write(const char *path, const cbq_model_spec *spec, const cbq_st_entry *tensors, size_t n_tensors,
                   cbq_error *err)
{
    writer w = {.spec = spec, .tensors = tensors, .n_tensors = n_tensors, .path = path, .err = err};
    if (spec->n_layers == 0)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: the model has no layers", path);
    int rc = build_and_write(&w);
    free(w.nodes);
    free(w.inits);
    pool_free(&w.mem);
    return rc;
}
