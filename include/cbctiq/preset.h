/* preset.h - named architectures built as a cbq_model_spec.
 *
 * iqnet-s (the default image-quality network):
 *   for b in 1..depth: block{b}.conv1 (3x3, pad 1, no bias) -> block{b}.bn1 ->
 *   block{b}.relu1 -> block{b}.conv2 -> block{b}.bn2 -> block{b}.relu2, with
 *   width * 2^(b-1) channels, then pool{b} (2x2 max-pool, stride 2) after
 *   every block but the last; gap (global average pool); head (linear to the
 *   outputs, with bias). Target layer: the last ReLU, block{depth}.relu2.
 *   Defaults: width 16, depth 4 (16, 32, 64, 128 channels), input 128x128,
 *   hu_min -1000, hu_max 1000, outputs parotid, submandibular, larynx,
 *   mandible, overall. Convolutions have no bias because batch norm follows.
 * resnet18, resnet34 (torchvision.models.resnet18/34 with one input
 *   channel): conv1 (7x7, stride 2, pad 3, no bias) -> bn1 -> relu ->
 *   maxpool (3x3, stride 2, pad 1) -> layer1..layer4 of 2, 2, 2, 2 (resnet18)
 *   or 3, 4, 6, 3 (resnet34) BasicBlocks with width, 2, 4, 8 x width
 *   channels (stride 2 in the first block of layer2..4) -> avgpool (global
 *   average pool) -> fc (linear to the outputs, with bias). Block
 *   layer{s}.{b}: conv1 (3x3, the stride) -> bn1 -> relu1 -> conv2 -> bn2;
 *   the block's input, through downsample.0 (1x1 conv, the stride) and
 *   downsample.1 (batch norm) where the stride or the width changes, is
 *   added by layer{s}.{b}.add -> relu2. Layer names are torchvision's module
 *   paths (relu1, relu2 and add are the calls torchvision makes of its
 *   block's relu and "+"), so torchvision's state_dict loads as it is.
 *   Width default 64 (torchvision's), input 128x128; depth is fixed.
 *   Target layer: layer4's last relu2 (the last activation before the pool).
 * Layer names contain dots; they are PyTorch module paths (block1.conv1 is
 * submodule conv1 of block1), so state_dict names are block1.conv1.weight.
 */
#ifndef CBCTIQ_PRESET_H
#define CBCTIQ_PRESET_H

#include "cbctiq/error.h"
#include "cbctiq/model_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int width;            /* base channels; 0 = preset default */
    int depth;            /* blocks; 0 = default */
    int input;            /* input height = width; 0 = default */
    double hu_min, hu_max;/* both 0 = default */
    size_t n_outputs;     /* 0 = the default categories */
    const char *const *outputs; /* n_outputs names, or NULL for defaults
                                   (the default categories, then out5, out6...) */
} cbq_preset_opts;

/* Names of the presets, NULL-terminated. */
extern const char *const cbq_preset_names[];

/* Builds the spec of preset `arch` (caller frees with cbq_model_spec_free);
 * opts may be NULL. Fails on an unknown name or options whose shapes do not
 * chain (e.g. an input too small for the depth). */
int cbq_preset_build(cbq_model_spec *spec, const char *arch, const cbq_preset_opts *opts, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
