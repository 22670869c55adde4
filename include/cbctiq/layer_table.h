/* layer_table.h - the layer table: one row per layer kind
 * (cbctiq/layer_kinds.def) that says, as data and small functions, what the
 * kind is outside the engine: its model.json hyper-parameters, its shape
 * rule and its cost. model_spec.c (names, shapes), model_cost.c and
 * io/model_json.c (parser and writer) have no per-kind code of their own;
 * they read this table. The engine's half of a row (tensors, forward,
 * backward) is src/nn/layer_ops.c.
 *
 * Rows are static and constant: callers never free them.
 */
#ifndef CBCTIQ_LAYER_TABLE_H
#define CBCTIQ_LAYER_TABLE_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/model_spec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a hyper-parameter is written in model.json and held in cbq_layer_spec. */
typedef enum {
    CBQ_HYPER_INT,    /* int: an integer in [lo, hi] */
    CBQ_HYPER_NUMBER, /* double: a number in [lo, hi] */
    CBQ_HYPER_BOOL,   /* int 0 or 1: true or false */
    CBQ_HYPER_PAIR    /* two ints (h at offset, w at offset_w): PyTorch's _pair, an
                       * integer or [h, w], each in [lo, hi]; written as [h, w] */
} cbq_hyper_type;

typedef struct {
    const char *key;          /* model.json key: PyTorch's argument name */
    cbq_hyper_type type;
    size_t offset;            /* of the value in cbq_layer_spec */
    size_t offset_w;          /* PAIR: of the w value */
    int required;
    double def;               /* value when absent and not required (PAIR: h and w) */
    double lo, hi;            /* accepted range */
    const char *default_from; /* PAIR: when absent, the value of this earlier key
                               * instead of def (pooling: stride = kernel_size) */
    int omit_default;         /* written only when it differs from def: keys added
                               * after a kind's first release (conv dilation,
                               * groups; pool ceil_mode), so that files without
                               * them write back byte-identical; a 0 below lo
                               * (a C spec built before the key) counts as def */
} cbq_hyper_param;

enum { CBQ_HYPER_MAX = 8 }; /* most hyper-parameters of one kind */

typedef struct {
    const char *name;              /* "type" in model.json */
    const cbq_hyper_param *hyper;  /* n_hyper, in the order they are read and written */
    size_t n_hyper;
    int flattens;                  /* its output has no spatial grid left (1x1):
                                    * attribution targets must come before it */
    /* Output shape {C, H, W} of one sample from the input's; checks the
     * hyper-parameters against the input, failing with a message that names
     * the layer. */
    int (*shape)(const cbq_layer_spec *layer, const size_t in[3], size_t out[3], cbq_error *err);
    /* Multi-input kinds (add, concat, mul): the most inputs the kind reads
     * (0 reads as 1: a single-input kind, which refuses more) and the shape
     * rule over all of them, in input order, used instead of `shape`; it
     * also checks their number. NULL for single-input kinds. */
    size_t max_inputs;
    int (*shape_n)(const cbq_layer_spec *layer, const size_t (*in)[3], size_t n_in, size_t out[3],
                   cbq_error *err);
    /* Trainable parameters (model_cost.h); NULL for kinds without trainable
     * tensors. */
    size_t (*param_count)(const cbq_layer_spec *layer);
    /* Forward FLOPs of one sample (model_cost.h states the convention). */
    double (*forward_flops)(const cbq_layer_spec *layer, const size_t in[3], const size_t out[3]);
} cbq_layer_kind_info;

/* The row of `kind`, or NULL for a value outside the enum. */
const cbq_layer_kind_info *cbq_layer_kind_info_of(cbq_layer_kind kind);

#ifdef __cplusplus
}
#endif
#endif
