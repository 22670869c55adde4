/* model_spec.c - layer kind names, shape inference and lookup for a
 * cbq_model_spec (include/cbctiq/model_spec.h). Every per-kind rule (name,
 * shape, checks) comes from the layer table (src/core/layer_table.c); this
 * file chains them. It does not read model.json (src/io/model_json.c) and
 * knows nothing of weights.
 */
#include "cbctiq/model_spec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/layer_table.h"

/* Largest activation one sample may have (elements); keeps every product of
 * sizes in the engine far from overflow and refuses absurd files early. */
#define CBQ_MAX_ACTIVATION ((size_t)1 << 34)

const char *cbq_layer_kind_name(cbq_layer_kind kind)
{
    const cbq_layer_kind_info *info = cbq_layer_kind_info_of(kind);
    return info ? info->name : NULL;
}

int cbq_layer_kind_parse(const char *name, cbq_layer_kind *kind)
{
    if (!name)
        return 0;
    for (int k = 0; k < CBQ_LAYER_KIND_COUNT; k++) {
        if (strcmp(name, cbq_layer_kind_name((cbq_layer_kind)k)) == 0) {
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

size_t cbq_model_spec_n_inputs(const cbq_model_spec *spec, size_t i)
{
    return spec->layers[i].n_inputs ? spec->layers[i].n_inputs : 1;
}

long cbq_model_spec_input(const cbq_model_spec *spec, size_t i, size_t j)
{
    const cbq_layer_spec *l = &spec->layers[i];
    return l->n_inputs ? (long)l->inputs[j] : (long)i - 1;
}

size_t cbq_input_channels(const cbq_input_spec *input)
{
    return input->channels > 0 ? (size_t)input->channels : 1;
}

int cbq_input_slices_parse(const char *s, cbq_input_slices *out)
{
    if (strcmp(s, "replicate") == 0)
        *out = CBQ_INPUT_REPLICATE;
    else if (strcmp(s, "adjacent") == 0)
        *out = CBQ_INPUT_ADJACENT;
    else
        return 0;
    return 1;
}

const char *cbq_input_slices_name(cbq_input_slices s)
{
    return s == CBQ_INPUT_ADJACENT ? "adjacent" : "replicate";
}

/* Checks layer i's input indices (earlier layers or -1) and gathers their
 * shapes: the network input's is `input`. */
static int gather_inputs(const cbq_model_spec *spec, size_t i, size_t (*shapes)[3],
                         const size_t input[3], size_t (*in)[3], size_t *n_in, cbq_error *err)
{
    const cbq_layer_spec *l = &spec->layers[i];
    if (l->n_inputs > CBQ_MAX_INPUTS)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s': %zu inputs, at most %d", l->name,
                        l->n_inputs, CBQ_MAX_INPUTS);
    *n_in = cbq_model_spec_n_inputs(spec, i);
    for (size_t j = 0; j < *n_in; j++) {
        long from = cbq_model_spec_input(spec, i, j);
        if (from < -1 || from >= (long)i)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "layer '%s': input %zu is layer index %ld; expected an earlier layer "
                            "(0 to %zu) or -1 for the network's input",
                            l->name, j, from, i ? i - 1 : 0);
        memcpy(in[j], from < 0 ? input : shapes[from], sizeof in[j]);
    }
    return CBQ_OK;
}

static int layer_shape(const cbq_layer_spec *l, const size_t (*in)[3], size_t n_in, size_t out[3],
                       cbq_error *err)
{
    const cbq_layer_kind_info *info = cbq_layer_kind_info_of(l->kind);
    if (!info)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s': unknown layer kind %d", l->name, (int)l->kind);
    memcpy(out, in[0], 3 * sizeof *out); /* what a kind does not change stays */
    if (info->shape_n)
        return info->shape_n(l, in, n_in, out, err);
    if (n_in > 1)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "layer '%s' (%s): takes one input, %zu are named",
                        l->name, info->name, n_in);
    return info->shape(l, in[0], out, err);
}

int cbq_model_spec_shapes(const cbq_model_spec *spec, size_t (*shapes)[3], cbq_error *err)
{
    if (spec->input.height <= 0 || spec->input.width <= 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "input: height and width must be positive (got %dx%d)",
                        spec->input.height, spec->input.width);
    const size_t input[3] = {cbq_input_channels(&spec->input), (size_t)spec->input.height,
                             (size_t)spec->input.width};
    if (input[1] * input[2] > CBQ_MAX_ACTIVATION)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "input: %zux%zu is too large", input[1], input[2]);
    for (size_t i = 0; i < spec->n_layers; i++) {
        size_t in[CBQ_MAX_INPUTS][3], n_in = 0, next[3];
        CBQ_TRY(gather_inputs(spec, i, shapes, input, in, &n_in, err));
        CBQ_TRY(layer_shape(&spec->layers[i], (const size_t(*)[3])in, n_in, next, err));
        size_t elems = 0;
        if (!cbq_size_mul(&elems, next[0], next[1]) || !cbq_size_mul(&elems, elems, next[2]) ||
            elems > CBQ_MAX_ACTIVATION || elems == 0)
            return CBQ_FAIL(err, CBQ_ERR_RANGE,
                            "layer '%s': output %zux%zux%zu is empty or too large (limit %zu values "
                            "per sample)",
                            spec->layers[i].name, next[0], next[1], next[2], CBQ_MAX_ACTIVATION);
        memcpy(shapes[i], next, sizeof next);
    }
    return CBQ_OK;
}

int cbq_model_spec_is_chain(const cbq_model_spec *spec)
{
    for (size_t i = 0; i < spec->n_layers; i++)
        if (cbq_model_spec_n_inputs(spec, i) != 1 || cbq_model_spec_input(spec, i, 0) != (long)i - 1)
            return 0;
    return 1;
}

/* A layer keeps a grid when it does not flatten and one of its inputs has a
 * grid (the network's input has one): a path from the input avoids every
 * flattening layer. A squeeze-excitation scale (pooled, then multiplied
 * back) leaves the grid of its other input. */
int cbq_model_spec_has_grid(const cbq_model_spec *spec, size_t layer)
{
    if (layer >= spec->n_layers)
        return 0;
    unsigned char *grid = calloc(layer + 1, 1);
    if (!grid)
        return 0;
    for (size_t i = 0; i <= layer; i++) {
        const cbq_layer_kind_info *info = cbq_layer_kind_info_of(spec->layers[i].kind);
        if (!info || info->flattens)
            continue;
        for (size_t j = 0; j < cbq_model_spec_n_inputs(spec, i) && !grid[i]; j++) {
            long from = cbq_model_spec_input(spec, i, j);
            grid[i] = from < 0 || (from < (long)i && grid[from]);
        }
    }
    int has = grid[layer];
    free(grid);
    return has;
}
