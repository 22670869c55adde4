/* onnx.h - ONNX models in and out: a graph as torch.onnx.export writes it
 * (PyTorch 1.13, opset 9 to 17) becomes a cbq_model_spec plus its weights
 * under PyTorch state_dict names, and a spec with weights becomes an ONNX
 * file again. docs/model-files.md, "Importing a PyTorch model", lists the
 * operators and how each maps onto a layer kind; docs/formats.md the file.
 *
 *   cbq_onnx_import_opts o = {.hu_min = -1000, .hu_max = 1000};   // or {0}: defaults
 *   cbq_model_spec spec;
 *   cbq_safetensors w;
 *   CBQ_TRY(cbq_onnx_read("resnet.onnx", &o, &spec, &w, &err));
 *   ... cbq_net_create(&net, &spec, ...), cbq_model_load_weights(net, &w, ...)
 *   cbq_model_spec_free(&spec); cbq_safetensors_free(&w);
 *
 * The reader refuses, naming the file and the node: a protobuf that does not
 * parse (truncated, garbled), an opset outside 9..17, more than one graph
 * input or output, an input whose channels (1 to 16), height or width are
 * not fixed (unless input_size gives them), a node that reads a tensor defined later
 * or never (a cycle or a dangling edge), attributes outside what the layer
 * kinds express (asymmetric padding, SAME auto-padding, ...), weights that
 * are not float, and shapes that do not chain. Every unsupported operator is
 * listed in ONE error, with its node name and op type.
 * This module knows nothing about the engine (src/nn): it produces data.
 */
#ifndef CBCTIQ_ONNX_H
#define CBCTIQ_ONNX_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/model_spec.h"
#include "cbctiq/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int input_size;              /* > 0: input height = width (the graph's may be dynamic);
                                  * 0: the graph input's own fixed height and width */
    double hu_min, hu_max;       /* the HU window (model.json "input"), hu_min < hu_max;
                                  * both 0: the file's (cbctiq's export), else -1000, 1000 */
    size_t n_outputs;            /* 0: the file's names (cbctiq's export), else parotid,
                                  * submandibular, larynx, mandible, overall, out5, ... */
    const char *const *outputs;  /* n_outputs category names, one per output unit */
} cbq_onnx_import_opts;

/* Reads an ONNX file into *spec (free with cbq_model_spec_free) and
 * *weights (every tensor the spec's layers need, named as PyTorch's
 * state_dict, F32, plus num_batches_tracked = 0 as I64 for batch norms; free
 * with cbq_safetensors_free; weights->path is the ONNX file). The input's
 * channel count is the graph input's C; its slices, mean and std are the
 * file's metadata (cbctiq's export), else one replicated slice without
 * normalisation: callers with other values set spec->input afterwards. On
 * failure both are empty and safe to free. */
int cbq_onnx_read(const char *path, const cbq_onnx_import_opts *opts, cbq_model_spec *spec,
                  cbq_safetensors *weights, cbq_error *err);
/* Same from bytes in memory; `label` names the source in messages. */
int cbq_onnx_parse(const void *bytes, size_t size, const char *label, const cbq_onnx_import_opts *opts,
                   cbq_model_spec *spec, cbq_safetensors *weights, cbq_error *err);

/* Writes spec with the tensors (found by state_dict name; num_batches_tracked
 * is not part of ONNX and is ignored) as an ONNX model (IR 7, opset 13) to
 * `path`, atomically: one graph input "input" [N, C, H, W] (N dynamic), one
 * output "output" [N, K], node names = layer names, initializers named as
 * the state_dict, and what ONNX has no place for in metadata_props
 * (cbctiq.arch, cbctiq.outputs, cbctiq.target_layer, cbctiq.hu_min,
 * cbctiq.hu_max, cbctiq.slices, and cbctiq.mean / cbctiq.std when the input
 * is normalised), which cbq_onnx_read takes back. Fails on a missing or
 * misshapen tensor, naming it. */
int cbq_onnx_write(const char *path, const cbq_model_spec *spec, const cbq_st_entry *tensors, size_t n_tensors,
                   cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
