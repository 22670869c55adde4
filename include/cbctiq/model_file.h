/* model_file.h - a model directory on disk: model.json (architecture,
 * model_json.h) + weights.safetensors (every state_dict tensor of the net,
 * safetensors.h). See docs/model-files.md.
 *
 *   cbq_net *net;
 *   CBQ_TRY(cbq_model_load("models/iq", &net, 32, &err));
 *   ...
 *   CBQ_TRY(cbq_model_save("models/iq2", net, &err));
 *   cbq_net_free(net);
 */
#ifndef CBCTIQ_MODEL_FILE_H
#define CBCTIQ_MODEL_FILE_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/net.h"
#include "cbctiq/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates `dir` if needed and writes weights.safetensors, then model.json,
 * each atomically (a crash leaves each file old or new, never partial).
 * Tensors are written in state_dict order; __metadata__ has "format": "pt"
 * and "producer": "cbctiq". */
int cbq_model_save(const char *dir, const cbq_net *net, cbq_error *err);

/* Reads dir/model.json, builds a net for batches up to max_batch and fills
 * every tensor from dir/weights.safetensors. Each tensor of the net must be
 * present with its exact shape and a float dtype (F32; F64, F16 and BF16 are
 * converted) or, for num_batches_tracked, an integer dtype; missing, extra
 * or misshapen tensors fail with the tensor and file named. On success *net
 * is owned by the caller (cbq_net_free); on failure it is NULL. */
int cbq_model_load(const char *dir, cbq_net **net, size_t max_batch, cbq_error *err);

/* Copies every tensor of an opened safetensors file into net with the
 * checks above (messages name the file by st->path). */
int cbq_model_load_weights(cbq_net *net, const cbq_safetensors *st, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
