/* model_spec.h - a network architecture as data: the parsed form of
 * model.json (docs/formats.md), independent of weights and of the engine.
 *
 * The engine (src/nn) builds a runnable network from a cbq_model_spec; the
 * model files (src/io/model_json.c) read and write it. Layers are in
 * execution order and form a graph: a layer reads the outputs of earlier
 * layers named in its inputs, or by default the previous layer's output (the
 * first layer's input is the preprocessed slice). The last layer's output is
 * the network's.
 * Ownership: a spec owns its `layers` array and its strings; release with
 * cbq_model_spec_free.
 */
#ifndef CBCTIQ_MODEL_SPEC_H
#define CBCTIQ_MODEL_SPEC_H

#include <stddef.h>
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { CBQ_NAME_MAX = 64, CBQ_MAX_OUTPUTS = 16,
       CBQ_MAX_INPUTS = 64 /* a densenet's widest concat has 1 + 48 inputs */ };

/* One value per line of cbctiq/layer_kinds.def: CBQ_LAYER_CONV2D,
 * CBQ_LAYER_BATCHNORM2D, ..., then CBQ_LAYER_KIND_COUNT. */
typedef enum {
#define CBQ_LAYER_KIND(id, stem) CBQ_LAYER_##id,
#include "cbctiq/layer_kinds.def"
#undef CBQ_LAYER_KIND
    CBQ_LAYER_KIND_COUNT
} cbq_layer_kind;

/* "conv2d", "batchnorm2d", ... as written in model.json; NULL for bad kinds. */
const char *cbq_layer_kind_name(cbq_layer_kind kind);
/* Parses a model.json type string; returns 0 when unknown. */
int cbq_layer_kind_parse(const char *name, cbq_layer_kind *kind);

/* How a convolution is computed. Not a property of the model: never read
 * from or written to model.json, hashed or exported; set on a net's own spec
 * copy by cbq_net_set_conv_algorithm (net.h). */
typedef enum {
    CBQ_CONV_AUTO = 0, /* Winograd F(4x4, 3x3) (F(2x2, 3x3) on 4x4 planes) where it is
                          faster, else im2col + GEMM */
    CBQ_CONV_GEMM,     /* always im2col + GEMM (no Winograd, no direct kernel) */
    CBQ_CONV_WINOGRAD  /* Winograd for every 3x3 stride-1 layer it can compute (benchmarks) */
} cbq_conv_algorithm;

/* dilation and groups came later: 0 reads as 1 (PyTorch's default), so that
 * specs built in C before them keep their meaning. algorithm: runtime only
 * (cbq_conv_algorithm above), 0 = automatic. */
typedef struct { int in_channels, out_channels, kernel_h, kernel_w, stride_h, stride_w,
                 pad_h, pad_w, bias, dilation_h, dilation_w, groups, algorithm; } cbq_conv2d_cfg;
typedef struct { int channels; double eps, momentum; } cbq_batchnorm2d_cfg;
typedef struct { double negative_slope; } cbq_leaky_relu_cfg;
typedef struct { int kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w, ceil_mode; } cbq_pool2d_cfg;
typedef struct { double p; } cbq_dropout_cfg;
typedef struct { int in_features, out_features, bias; } cbq_linear_cfg;
/* output_size: only 1x1 is supported (the shape rule refuses others). */
typedef struct { int output_h, output_w; } cbq_adaptive_pool2d_cfg;

typedef struct {
    char name[CBQ_NAME_MAX];   /* unique; prefix of the state_dict tensor names */
    cbq_layer_kind kind;
    union {
        cbq_conv2d_cfg conv;
        cbq_batchnorm2d_cfg bn;
        cbq_leaky_relu_cfg leaky;
        cbq_pool2d_cfg pool;       /* maxpool2d and avgpool2d */
        cbq_dropout_cfg dropout;
        cbq_linear_cfg linear;
        cbq_adaptive_pool2d_cfg adaptive; /* adaptive_avgpool2d */
    } cfg;
    /* The layers whose outputs this one reads, in order: n_inputs indices of
     * earlier layers, -1 for the network's input. n_inputs 0: the previous
     * layer (the input for the first); cbq_model_spec_input resolves both. */
    size_t n_inputs;
    int inputs[CBQ_MAX_INPUTS];
} cbq_layer_spec;

enum { CBQ_MAX_INPUT_CHANNELS = 16 };

/* Which axial slices fill the input channels of one sample centred on slice k. */
typedef enum {
    CBQ_INPUT_REPLICATE = 0, /* slice k in every channel */
    CBQ_INPUT_ADJACENT       /* k - c/2 .. k + c/2 (c odd), the edge slice repeated past the ends */
} cbq_input_slices;

/* Slice preprocessing, per channel ch:
 *   w = clamp((HU - hu_min) / (hu_max - hu_min), 0, 1), x = (w - mean[ch]) / std[ch].
 * The fields after hu_max came later and their zero reads as before: channels 0
 * reads as 1, n_norm 0 as mean 0 and std 1 in every channel (else n_norm ==
 * channels values each). */
typedef struct {
    int height, width;
    double hu_min, hu_max;
    int channels;
    cbq_input_slices slices;
    size_t n_norm;
    double mean[CBQ_MAX_INPUT_CHANNELS], std[CBQ_MAX_INPUT_CHANNELS];
} cbq_input_spec;

/* The input's channel count (channels, or 1 when 0). */
size_t cbq_input_channels(const cbq_input_spec *input);
/* "replicate" / "adjacent"; 0 when unknown. */
int cbq_input_slices_parse(const char *s, cbq_input_slices *out);
const char *cbq_input_slices_name(cbq_input_slices s);

typedef struct {
    char arch[CBQ_NAME_MAX];                 /* e.g. "iqnet-s", or "custom" */
    cbq_input_spec input;
    size_t n_layers;
    cbq_layer_spec *layers;                  /* n_layers, owned */
    size_t n_outputs;
    char outputs[CBQ_MAX_OUTPUTS][CBQ_NAME_MAX]; /* category per output unit */
    char target_layer[CBQ_NAME_MAX];         /* default Grad-CAM layer */
} cbq_model_spec;

void cbq_model_spec_free(cbq_model_spec *spec);

/* Shape of each layer's output for one sample, in order: shapes[i] =
 * {channels, height, width} (1x1 spatial after global pool and linear).
 * Fails with a message naming the layer when shapes do not chain. */
int cbq_model_spec_shapes(const cbq_model_spec *spec, size_t (*shapes)[3], cbq_error *err);

/* How many inputs layer i reads (at least 1) and the index of its j-th:
 * an earlier layer, or -1 for the network's input. */
size_t cbq_model_spec_n_inputs(const cbq_model_spec *spec, size_t i);
long cbq_model_spec_input(const cbq_model_spec *spec, size_t i, size_t j);

/* 1 when every layer reads just the previous one (a plain chain). */
int cbq_model_spec_is_chain(const cbq_model_spec *spec);

/* 1 when layer's output still has a spatial grid: some path from the
 * network's input to it passes no flattening layer (global pool, linear);
 * attribution targets must have one. */
int cbq_model_spec_has_grid(const cbq_model_spec *spec, size_t layer);

/* Index of the layer with this name, or -1. */
long cbq_model_spec_find(const cbq_model_spec *spec, const char *name);

#ifdef __cplusplus
}
#endif
#endif
