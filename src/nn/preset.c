/* preset.c - named architectures as cbq_model_spec (include/cbctiq/preset.h). */
#include "cbctiq/preset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const cbq_preset_names[] = {"iqnet-s", NULL};

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
        if (strcmp(arch, "iqnet-s") == 0)
            rc = build_iqnet_s(spec, o, err);
        else
            rc = CBQ_FAIL(err, CBQ_ERR_ARG, "unknown architecture '%s' (known: iqnet-s)", arch);
    }
    if (rc != CBQ_OK)
        cbq_model_spec_free(spec);
    return rc;
}
