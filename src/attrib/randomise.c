/* randomise.c - the cascading model-randomisation sanity check (Adebayo et
 * al., "Sanity Checks for Saliency Maps", NeurIPS 2018, arXiv:1810.03292):
 * re-initialise the parametrised layers from the top (output) down, one more
 * per step, and see whether a method's maps change. A method whose maps
 * survive randomisation explains the input, not the model.
 *
 * Fresh values come from a second network built from the same spec with
 * another seed, so they follow the engine's PyTorch-default initialisation.
 */
#include <string.h>

#include "cbctiq/attrib.h"
#include "cbctiq/layer_table.h"

static int has_params(cbq_layer_kind k) { return cbq_layer_kind_info_of(k)->param_count != NULL; }

/* Index of the layer re-initialised at step s (1-based), or -1. */
static long step_layer_index(const cbq_model_spec *spec, size_t step)
{
    size_t seen = 0;
    for (size_t i = spec->n_layers; i-- > 0;) {
        if (!has_params(spec->layers[i].kind))
            continue;
        if (++seen == step)
            return (long)i;
    }
    return -1;
}

size_t cbq_randomise_n_steps(const cbq_net *net)
{
    const cbq_model_spec *spec = cbq_net_spec(net);
    size_t n = 0;
    for (size_t i = 0; i < spec->n_layers; i++)
        n += has_params(spec->layers[i].kind) != 0;
    return n;
}

const char *cbq_randomise_step_layer(const cbq_net *net, size_t step)
{
    const cbq_model_spec *spec = cbq_net_spec(net);
    long i = step_layer_index(spec, step);
    return i < 0 ? NULL : spec->layers[i].name;
}

/* Copies every tensor named "<layer>.*" from src to dst. */
static int copy_layer_tensors(cbq_net *dst, const cbq_net *src, const char *layer, cbq_error *err)
{
    size_t len = strlen(layer);
    for (size_t t = 0; t < cbq_net_tensor_count(src); t++) {
        cbq_tensor_view sv, dv;
        cbq_net_tensor(src, t, &sv);
        if (strncmp(sv.name, layer, len) != 0 || sv.name[len] != '.')
            continue;
        if (!cbq_net_tensor_find(dst, sv.name, &dv) || dv.numel != sv.numel || dv.dtype != sv.dtype)
            return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "randomisation: tensor '%s' does not match",
                            sv.name);
        size_t elem = sv.dtype == CBQ_DTYPE_I64 ? sizeof(int64_t) : sizeof(float);
        memcpy(dv.data, sv.data, sv.numel * elem);
    }
    return CBQ_OK;
}

uint64_t cbq_randomise_seed(uint64_t seed)
{
    cbq_rng rng;
    cbq_rng_stream(&rng, seed, 0x52414e44u); /* "RAND" */
    return cbq_rng_u64(&rng);
}

int cbq_randomise_top(cbq_net *net, size_t steps, uint64_t seed, cbq_error *err)
{
    size_t n_steps = cbq_randomise_n_steps(net);
    CBQ_CHECK_ARG(err, steps <= n_steps, "randomisation step %zu; the model has %zu parametrised layers",
                  steps, n_steps);
    if (steps == 0)
        return CBQ_OK;
    cbq_net *fresh = NULL;
    CBQ_TRY(cbq_net_create(&fresh, cbq_net_spec(net), 1, cbq_randomise_seed(seed), err));
    int rc = CBQ_OK;
    for (size_t s = 1; s <= steps && rc == CBQ_OK; s++)
        rc = copy_layer_tensors(net, fresh, cbq_randomise_step_layer(net, s), err);
    cbq_net_free(fresh);
    return rc;
}
