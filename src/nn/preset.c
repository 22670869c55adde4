/* preset.c - named architectures as cbq_model_spec (include/cbctiq/preset.h). */
#include "cbctiq/preset.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cbq_preset_names[] = {"iqnet-s", "resnet18", "resnet34", NULL};

static const char *const default_outputs[] = {"parotid", "submandibular", "larynx", "mandible", "overall"};
enum { N_DEFAULT_OUTPUTS = 5 };

/* Appends a layer named printf(fmt, block, unit). */
static cbq_layer_spec *add(cbq_model_spec *s, cbq_layer_kind kind, const char *fmt, int block, int unit)
{
    cbq_layer_spec *l = &s->layers[s->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->name, sizeof l->name, fmt, block, unit);
    return l;
}

static void add_conv_bn_relu(cbq_model_spec *s, int block, int unit, int cin, int cout)
{
    cbq_layer_spec *c = add(s, CBQ_LAYER_CONV2D, "block%d.conv%d", block, unit);
    c->cfg.conv = (cbq_conv2d_cfg){.in_channels = cin, .out_channels = cout, .kernel_h = 3, .kernel_w = 3,
                                   .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1, .bias = 0,
                                   .dilation_h = 1, .dilation_w = 1, .groups = 1};
    cbq_layer_spec *b = add(s, CBQ_LAYER_BATCHNORM2D, "block%d.bn%d", block, unit);
    b->cfg.bn = (cbq_batchnorm2d_cfg){.channels = cout, .eps = 1e-5, .momentum = 0.1};
    add(s, CBQ_LAYER_RELU, "block%d.relu%d", block, unit);
}

static int build_iqnet_s(cbq_model_spec *s, const cbq_preset_opts *o, cbq_error *err)
{
    int width = o->width ? o->width : 16, depth = o->depth ? o->depth : 4, side = o->input ? o->input : 128;
    if (width < 1 || width > 4096 || depth < 1 || depth > 12 || side < 1 || side > 65536)
        return CBQ_FAIL(err, CBQ_ERR_ARG,
                        "iqnet-s: width must be in [1, 4096], depth in [1, 12], input in [1, 65536] "
                        "(got %d, %d, %d)", width, depth, side);
    if ((long)width << (depth - 1) > 65536)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "iqnet-s: width %d doubled over %d blocks exceeds 65536 channels",
                        width, depth);
    if (side < (1 << (depth - 1)))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "iqnet-s: input %d is too small for %d blocks (at least %d)", side,
                        depth, 1 << (depth - 1));
    s->layers = calloc((size_t)depth * 7 + 2, sizeof *s->layers);
    if (!s->layers)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "iqnet-s: out of memory");
    snprintf(s->arch, sizeof s->arch, "iqnet-s");
    s->input = (cbq_input_spec){.height = side, .width = side, .hu_min = -1000.0, .hu_max = 1000.0};
    if (o->hu_min != 0.0 || o->hu_max != 0.0)
        s->input.hu_min = o->hu_min, s->input.hu_max = o->hu_max;
    int cin = 1;
    for (int b = 1; b <= depth; b++) {
        int cout = width << (b - 1);
        add_conv_bn_relu(s, b, 1, cin, cout);
        add_conv_bn_relu(s, b, 2, cout, cout);
        cin = cout;
        if (b < depth) {
            cbq_layer_spec *p = add(s, CBQ_LAYER_MAXPOOL2D, "pool%d", b, 0);
            p->cfg.pool = (cbq_pool2d_cfg){.kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2};
        }
    }
    add(s, CBQ_LAYER_GLOBAL_AVGPOOL, "gap", 0, 0);
    cbq_layer_spec *h = add(s, CBQ_LAYER_LINEAR, "head", 0, 0);
    h->cfg.linear = (cbq_linear_cfg){.in_features = cin, .out_features = (int)s->n_outputs, .bias = 1};
    snprintf(s->target_layer, sizeof s->target_layer, "block%d.relu2", depth);
    return CBQ_OK;
}

/* ---- resnet18, resnet34 (torchvision.models.resnet, BasicBlock) ---------- */

/* Appends a layer with a printf-formatted name (every preset name fits CBQ_NAME_MAX). */
static cbq_layer_spec *add_named(cbq_model_spec *s, cbq_layer_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static cbq_layer_spec *add_named(cbq_model_spec *s, cbq_layer_kind kind, const char *fmt, ...)
{
    cbq_layer_spec *l = &s->layers[s->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->name, sizeof l->name, fmt, ap);
    va_end(ap);
    return l;
}

/* torchvision's conv3x3 / conv1x1 / conv1: no bias (batch norm follows). */
static void resnet_conv(cbq_layer_spec *c, int cin, int cout, int kernel, int stride)
{
    c->cfg.conv = (cbq_conv2d_cfg){.in_channels = cin, .out_channels = cout, .kernel_h = kernel,
                                   .kernel_w = kernel, .stride_h = stride, .stride_w = stride,
                                   .pad_h = kernel / 2, .pad_w = kernel / 2, .bias = 0,
                                   .dilation_h = 1, .dilation_w = 1, .groups = 1};
}

static void resnet_bn(cbq_layer_spec *b, int channels)
{
    b->cfg.bn = (cbq_batchnorm2d_cfg){.channels = channels, .eps = 1e-5, .momentum = 0.1};
}

/* One BasicBlock, layer{stage}.{block}: conv1 (3x3, stride) -> bn1 -> relu1 ->
 * conv2 -> bn2, plus the block's input (through downsample.0/.1, a 1x1
 * conv with the stride and its batch norm, when the stride or the width
 * changes) -> add -> relu2. torchvision's BasicBlock calls its one ReLU
 * module twice; here each call is a layer of its own. */
static void add_basic_block(cbq_model_spec *s, int stage, int block, int cin, int cout, int stride)
{
    int in = (int)s->n_layers - 1;
    resnet_conv(add_named(s, CBQ_LAYER_CONV2D, "layer%d.%d.conv1", stage, block), cin, cout, 3, stride);
    resnet_bn(add_named(s, CBQ_LAYER_BATCHNORM2D, "layer%d.%d.bn1", stage, block), cout);
    add_named(s, CBQ_LAYER_RELU, "layer%d.%d.relu1", stage, block);
    resnet_conv(add_named(s, CBQ_LAYER_CONV2D, "layer%d.%d.conv2", stage, block), cout, cout, 3, 1);
    resnet_bn(add_named(s, CBQ_LAYER_BATCHNORM2D, "layer%d.%d.bn2", stage, block), cout);
    int main_path = (int)s->n_layers - 1, shortcut = in;
    if (stride != 1 || cin != cout) {
        cbq_layer_spec *d = add_named(s, CBQ_LAYER_CONV2D, "layer%d.%d.downsample.0", stage, block);
        resnet_conv(d, cin, cout, 1, stride);
        d->n_inputs = 1;
        d->inputs[0] = in;
        resnet_bn(add_named(s, CBQ_LAYER_BATCHNORM2D, "layer%d.%d.downsample.1", stage, block), cout);
        shortcut = (int)s->n_layers - 1;
    }
    cbq_layer_spec *a = add_named(s, CBQ_LAYER_ADD, "layer%d.%d.add", stage, block);
    a->n_inputs = 2;
    a->inputs[0] = main_path;
    a->inputs[1] = shortcut;
    add_named(s, CBQ_LAYER_RELU, "layer%d.%d.relu2", stage, block);
}

enum { RESNET_STAGES = 4, RESNET_BLOCK_LAYERS = 9 /* with a downsample */, RESNET_STEM_LAYERS = 4 };

/* conv1 (7x7/2, pad 3) -> bn1 -> relu -> maxpool (3/2, pad 1) -> layer1..4
 * (widths w, 2w, 4w, 8w; stride 2 from layer2 on) -> avgpool (global) -> fc. */
static int build_resnet(cbq_model_spec *s, const char *arch, const int blocks[RESNET_STAGES],
                        const cbq_preset_opts *o, cbq_error *err)
{
    int width = o->width ? o->width : 64, side = o->input ? o->input : 128;
    if (width < 1 || width > 8192 || side < 1 || side > 65536)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: width must be in [1, 8192] and input in [1, 65536] (got %d, %d)",
                        arch, width, side);
    if (o->depth)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: the depth is fixed by the architecture (got depth %d; "
                        "only iqnet-s takes one)", arch, o->depth);
    size_t n_blocks = 0;
    for (int i = 0; i < RESNET_STAGES; i++)
        n_blocks += (size_t)blocks[i];
    s->layers = calloc(RESNET_STEM_LAYERS + n_blocks * RESNET_BLOCK_LAYERS + 2, sizeof *s->layers);
    if (!s->layers)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", arch);
    snprintf(s->arch, sizeof s->arch, "%s", arch);
    s->input = (cbq_input_spec){.height = side, .width = side, .hu_min = -1000.0, .hu_max = 1000.0};
    if (o->hu_min != 0.0 || o->hu_max != 0.0)
        s->input.hu_min = o->hu_min, s->input.hu_max = o->hu_max;
    resnet_conv(add_named(s, CBQ_LAYER_CONV2D, "conv1"), 1, width, 7, 2);
    resnet_bn(add_named(s, CBQ_LAYER_BATCHNORM2D, "bn1"), width);
    add_named(s, CBQ_LAYER_RELU, "relu");
    cbq_layer_spec *p = add_named(s, CBQ_LAYER_MAXPOOL2D, "maxpool");
    p->cfg.pool = (cbq_pool2d_cfg){.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2,
                                   .pad_h = 1, .pad_w = 1};
    int cin = width;
    for (int stage = 1; stage <= RESNET_STAGES; stage++) {
        int cout = width << (stage - 1);
        for (int b = 0; b < blocks[stage - 1]; b++) {
            add_basic_block(s, stage, b, cin, cout, stage > 1 && b == 0 ? 2 : 1);
            cin = cout;
        }
    }
    snprintf(s->target_layer, sizeof s->target_layer, "layer4.%d.relu2", blocks[RESNET_STAGES - 1] - 1);
    add_named(s, CBQ_LAYER_GLOBAL_AVGPOOL, "avgpool");
    cbq_layer_spec *fc = add_named(s, CBQ_LAYER_LINEAR, "fc");
    fc->cfg.linear = (cbq_linear_cfg){.in_features = cin, .out_features = (int)s->n_outputs, .bias = 1};
    return CBQ_OK;
}

static int set_outputs(cbq_model_spec *s, const cbq_preset_opts *o, cbq_error *err)
{
    size_t n = o->n_outputs ? o->n_outputs : N_DEFAULT_OUTPUTS;
    if (n > CBQ_MAX_OUTPUTS)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "at most %d outputs (got %zu)", CBQ_MAX_OUTPUTS, n);
    for (size_t i = 0; i < n; i++) {
        const char *name = o->outputs ? o->outputs[i] : i < N_DEFAULT_OUTPUTS ? default_outputs[i] : NULL;
        if (name && strlen(name) >= CBQ_NAME_MAX)
            return CBQ_FAIL(err, CBQ_ERR_ARG, "output name '%s' is too long", name);
        if (name)
            snprintf(s->outputs[i], CBQ_NAME_MAX, "%s", name);
        else
            snprintf(s->outputs[i], CBQ_NAME_MAX, "out%zu", i);
    }
    s->n_outputs = n;
    return CBQ_OK;
}

int cbq_preset_build(cbq_model_spec *spec, const char *arch, const cbq_preset_opts *opts, cbq_error *err)
{
    static const cbq_preset_opts none = {0};
    const cbq_preset_opts *o = opts ? opts : &none;
    memset(spec, 0, sizeof *spec);
    int rc = set_outputs(spec, o, err);
    if (rc == CBQ_OK) {
        static const int resnet18[RESNET_STAGES] = {2, 2, 2, 2}, resnet34[RESNET_STAGES] = {3, 4, 6, 3};
        if (strcmp(arch, "iqnet-s") == 0)
            rc = build_iqnet_s(spec, o, err);
        else if (strcmp(arch, "resnet18") == 0)
            rc = build_resnet(spec, arch, resnet18, o, err);
        else if (strcmp(arch, "resnet34") == 0)
            rc = build_resnet(spec, arch, resnet34, o, err);
        else
            rc = CBQ_FAIL(err, CBQ_ERR_ARG, "unknown architecture '%s' (known: iqnet-s, resnet18, resnet34)",
                          arch);
    }
    if (rc != CBQ_OK)
        cbq_model_spec_free(spec);
    return rc;
}
