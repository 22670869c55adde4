/* net_impl.h - the inside of cbq_net, shared by net.c (construction,
 * tensors), net_run.c (forward, backward), layer_ops.c (each layer kind's
 * part) and train.c. Not public. */
#ifndef CBQ_NN_NET_IMPL_H
#define CBQ_NN_NET_IMPL_H

#include "cbctiq/dist.h"
#include "cbctiq/net.h"

enum { NET_T_PARAM, NET_T_BUFFER, NET_T_COUNTER };

typedef struct {
    char name[CBQ_NAME_MAX + 24];
    int kind;          /* NET_T_* */
    size_t offset;     /* into params, buffers or counters */
    int ndim;
    size_t shape[4];
    size_t numel;
} net_tensor;

typedef struct {
    size_t act_off;    /* into acts, max_batch samples */
    size_t grad_off;   /* into acts: dLoss/d(output), live in 2 backward steps */
    size_t w_off, b_off; /* into params / grads */
    size_t rm_off;     /* running_mean at rm_off, running_var at rm_off + C */
    size_t nbt_index;  /* into counters */
    size_t aux_off;    /* BN: mean [C], invstd [C]; dropout: mask */
    size_t fan_in;     /* conv/linear: inputs per output unit */
    size_t in_first;   /* its inputs' shapes: in_shapes[in_first ..] */
    size_t n_in;       /* how many inputs it reads */
    /* A batch norm (or, in a net whose activations below keep_from are not
     * kept, an add) whose only reader is a ReLU running in place on its
     * output: it writes max(y, 0) itself (relu_fused) and the ReLU's
     * forward has nothing left to do (relu_done). net.c, plan_fusion. */
    int relu_fused, relu_done;
} net_layer;

struct cbq_net {
    cbq_model_spec spec;   /* own copy */
    size_t n_layers, max_batch;
    size_t in_shape[3];
    size_t (*shapes)[3];   /* per layer output {C, H, W} */
    size_t (*in_shapes)[3]; /* per layer its inputs' shapes, in order (net_layer.in_first) */
    int chain;             /* every layer reads the previous one (cbq_model_spec_is_chain) */
    net_layer *layer;
    net_tensor *tensors;
    cbq_tensor_view *views;
    size_t n_tensors, max_tensors; /* max: the layers' rows summed */

    float *params, *grads; size_t n_params;
    float *buffers;        size_t n_buffers;
    int64_t *counters;     size_t n_counters;
    float *acts;           /* the arena: activations, then room for gradients */
    size_t act_total;      /* activations */
    size_t arena_total;    /* activations and gradients (net.c, plan_gradients) */
    float *input, *input_grad;
    float *aux;            size_t aux_total;
    float *workspace;      size_t ws_per_thread;
    float *dw_private;     size_t dw_per_thread;
    float *dout_scratch;   /* [max_batch, outputs] for the training step */
    /* Graphs: a tensor read by several layers (or slots) gets its gradient
     * summed: every contribution after the first lands in fanout, then is
     * added (net_run.c). written[k + 1]: grad(k) (or, at 0, the input's)
     * has its first contribution in this backward. */
    float *fanout;         size_t fanout_total;
    unsigned char *written;

    int relu_in_place;     /* cbq_net_create_training */
    size_t keep_from;      /* chains: activations below it share two blocks
                            * (cbq_net_keep_activations_from); 0 = keep all */
    int threads, threads_cap, training;
    int fwd_training;      /* mode of the last forward */
    size_t batch;          /* n of the last forward */
    cbq_rng dropout_rng;

    /* Data-parallel training (cbq_net_set_dist): the ranks whose batch-norm
     * statistics are summed; NULL or one rank: this process alone. */
    const cbq_dist *dist;
    double *sync_sums;     /* [2 * widest batch norm + 1] */
    int sync_rc;           /* the first failed sum of this pass, with its error */
    cbq_error sync_err;
};

#endif
