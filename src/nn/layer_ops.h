/* layer_ops.h - the engine's half of the layer table: per layer kind
 * (cbctiq/layer_kinds.def), the tensors it owns in a cbq_net and their
 * state_dict names, its initialisation, and its forward and backward entry
 * points, which call the kernels of layer.h with pointers into the net's
 * blocks. net.c and net_run.c have no per-kind code; they read this table.
 * Not public. The other half (model.json keys, shapes, cost) is
 * include/cbctiq/layer_table.h.
 */
#ifndef CBQ_NN_LAYER_OPS_H
#define CBQ_NN_LAYER_OPS_H

#include "nn/net_impl.h"

/* One layer at run time: what forward and backward need besides data. */
typedef struct {
    cbq_net *net;
    const cbq_layer_spec *spec;
    const net_layer *at;   /* its offsets into the net's blocks */
    const size_t *in;      /* its (first) input's shape {C, H, W} */
    const size_t (*ins)[3]; /* every input's shape, in input order */
    size_t n_in;           /* how many inputs it reads */
    const size_t *out;     /* its output's shape */
    size_t n;              /* batch */
} net_layer_call;

typedef struct {
    /* Most tensors plan adds for one layer (state_dict entries). */
    size_t max_tensors;
    /* Reserves the layer's tensors (net_add_tensor), saved state (aux) and
     * scratch in the net's blocks, for input shape in; NULL: none. */
    void (*plan)(cbq_net *net, size_t layer, const size_t in[3]);
    /* PyTorch's default initialisation of its tensors; draws from rng,
     * shared by all layers in order; NULL: nothing to initialise. */
    void (*init)(cbq_net *net, size_t layer, cbq_rng *rng);
    /* Refuses a training batch of n samples it cannot use; NULL: any. */
    int (*check_train_batch)(const cbq_net *net, size_t layer, size_t n, cbq_error *err);
    /* y [n, out shape] from x [n, in shape]; net->training selects the mode. */
    void (*forward)(const net_layer_call *call, const float *x, float *y);
    /* dx = dLoss/dx (overwritten; skipped when NULL) from dy, and with
     * param_grads the parameter gradients (accumulated), in the mode of the
     * last forward (net->fwd_training). */
    void (*backward)(const net_layer_call *call, const float *x, const float *dy, float *dx,
                     int param_grads);
    /* Multi-input kinds (add, concat, mul) have these instead of forward and
     * backward: xs[j] is input j ([n, call->ins[j]]); dxs[j] receives
     * dLoss/dxs[j] (overwritten, skipped where NULL; the engine sums a
     * tensor's gradients when several layers, or several slots of one, read
     * it). */
    void (*forward_n)(const net_layer_call *call, const float *const *xs, float *y);
    void (*backward_n)(const net_layer_call *call, const float *const *xs, const float *dy,
                       float *const *dxs, int param_grads);
} net_layer_ops;

/* The row of a valid kind (the spec was validated before the net exists). */
const net_layer_ops *net_layer_ops_of(cbq_layer_kind kind);

/* Adds state_dict tensor "<layer name>.<suffix>" at `offset` in the block of
 * `kind` (NET_T_*); used by the plan functions. */
void net_add_tensor(cbq_net *net, size_t layer, const char *suffix, int kind, size_t offset,
                    int ndim, const size_t *shape);

#endif
