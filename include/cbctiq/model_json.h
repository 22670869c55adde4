/* model_json.h - model.json, the architecture half of a model directory
 * (docs/formats.md "Model directory", docs/model-files.md for every field).
 *
 * Reading validates everything and reports the file and the JSON path of the
 * first problem, e.g.
 *   model.json: layers[3].kernel_size: expected a positive integer or [h, w]
 * It checks the format version, layer types, required fields and their types
 * and ranges, unknown or duplicate keys, unique layer names usable as
 * PyTorch state_dict prefixes, that shapes chain from the input to the
 * outputs (cbq_model_spec_shapes), and that the target layer exists and comes
 * before the global pool / first linear layer.
 *
 * Writing emits every hyper-parameter explicitly (no defaults relied on), one
 * layer per line, atomically.
 */
#ifndef CBCTIQ_MODEL_JSON_H
#define CBCTIQ_MODEL_JSON_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/model_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The format_version this build writes and the newest it reads. */
enum { CBQ_MODEL_JSON_VERSION = 1 };

/* Reads and validates `path` into *spec (owned by the caller: free with
 * cbq_model_spec_free; on failure *spec is empty). */
int cbq_model_json_read(cbq_model_spec *spec, const char *path, cbq_error *err);
/* Same from text in memory (len bytes, need not be NUL-terminated); `label`
 * stands for the file name in messages. */
int cbq_model_json_parse(cbq_model_spec *spec, const char *text, size_t len, const char *label,
                         cbq_error *err);

/* Checks what the reader checks on a spec built in code (presets, tests). */
int cbq_model_spec_validate(const cbq_model_spec *spec, const char *label, cbq_error *err);

/* The JSON text of a valid spec; returns a malloc'd string the caller frees,
 * or NULL with *err filled. */
char *cbq_model_json_format(const cbq_model_spec *spec, cbq_error *err);
/* Validates, then writes atomically to `path`. */
int cbq_model_json_write(const cbq_model_spec *spec, const char *path, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
