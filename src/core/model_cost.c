/* model_cost.c - parameter counts and forward FLOPs per layer
 * (conventions in include/cbctiq/model_cost.h), from the layer table
 * (src/core/layer_table.c). */
#include "cbctiq/model_cost.h"

#include "cbctiq/layer_table.h"

size_t cbq_layer_param_count(const cbq_layer_spec *l)
{
    const cbq_layer_kind_info *info = cbq_layer_kind_info_of(l->kind);
    return info && info->param_count ? info->param_count(l) : 0;
}

double cbq_layer_forward_flops(const cbq_layer_spec *l, const size_t in[3], const size_t out[3])
{
    const cbq_layer_kind_info *info = cbq_layer_kind_info_of(l->kind);
    return info ? info->forward_flops(l, in, out) : 0.0;
}
