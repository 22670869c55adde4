/* model_cost.h - what a layer of a cbq_model_spec costs: parameter counts
 * and forward floating-point operations, for `cbctiq model info` and for
 * benchmarks that report a fraction of peak.
 *
 * FLOP convention (stated once): a multiply-add counts 2. Convolution and
 * linear layers count 2*fan_in per output value (convolution: fan_in =
 * in_channels/groups * kernel_h * kernel_w) plus 1 per output for a
 * bias; batch norm 2 per value (scale and shift, eval mode); ReLU, leaky ReLU
 * 1 per value; sigmoid 3 per value (exp, add, divide), SiLU 4; max/avg
 * pooling kernel_h*kernel_w per output value; global and adaptive average
 * pooling 1 per input value; dropout, identity and flatten 0 (copies).
 */
#ifndef CBCTIQ_MODEL_COST_H
#define CBCTIQ_MODEL_COST_H

#include <stddef.h>
#include "cbctiq/model_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Trainable parameters of one layer (weights and biases; BN buffers such as
 * running statistics are not counted). */
size_t cbq_layer_param_count(const cbq_layer_spec *layer);

/* Forward FLOPs of one layer for one sample, given its input and output
 * shapes {C, H, W} (as cbq_model_spec_shapes gives them). */
double cbq_layer_forward_flops(const cbq_layer_spec *layer, const size_t in[3], const size_t out[3]);

#ifdef __cplusplus
}
#endif
#endif
