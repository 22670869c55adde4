/* net.h - a runnable network built from a cbq_model_spec: parameters,
 * activations and their gradients in arenas sized once, forward, backward
 * that can stop at any layer, and access to every tensor by its PyTorch
 * state_dict name.
 *
 * Layout: float32 NCHW throughout; activations of layer i for the current
 * batch are cbq_net_activation(net, i) with shape [n, C_i, H_i, W_i] where
 * {C_i, H_i, W_i} come from cbq_model_spec_shapes.
 *
 * Gradient convention: parameter gradients accumulate (+=) across backward
 * calls until cbq_net_zero_grad; buffers hold true gradients (dLoss/dx, not
 * negated); optimisers subtract.
 *
 * Threads: the network decides how OpenMP and BLAS threads share the cores
 * (cbq_net_set_threads); results for a given thread count are bit-identical
 * from run to run.
 *
 * Ownership: cbq_net_create returns a net owning all its memory and a copy
 * of the spec; release with cbq_net_free. Pointers returned by accessors
 * stay valid until cbq_net_free.
 */
#ifndef CBCTIQ_NET_H
#define CBCTIQ_NET_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/dist.h"
#include "cbctiq/error.h"
#include "cbctiq/model_spec.h"
#include "cbctiq/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbq_net cbq_net;

/* Allocates everything for batches of up to max_batch samples. Weights are
 * initialised as PyTorch does by default (kaiming_uniform_(a=sqrt(5)) for
 * conv/linear weights, uniform(+-1/sqrt(fan_in)) biases, BN weight 1, bias 0,
 * running mean 0, running var 1), drawn from `seed`. */
int cbq_net_create(cbq_net **net, const cbq_model_spec *spec, size_t max_batch,
                   uint64_t seed, cbq_error *err);
/* As cbq_net_create, for training: a relu right after a conv2d, batchnorm2d
 * or linear layer runs in place, as torch.nn.ReLU(inplace=True) does (their
 * backward does not read their own output), so that layer's activation
 * holds the relu's output. Outputs and gradients are those of
 * cbq_net_create, with one activation block fewer per conv-BN-relu unit;
 * Grad-CAM at such a layer needs a net from cbq_net_create. Its backward
 * also writes gradients over the activations of the layers it has passed,
 * as PyTorch frees them: one backward per forward, and the last forward's
 * outputs are gone after it (cbq_train_step reads them before). */
int cbq_net_create_training(cbq_net **net, const cbq_model_spec *spec, size_t max_batch,
                            uint64_t seed, cbq_error *err);
/* For attribution at `layer` (Grad-CAM and the other methods that read
 * that layer's activation and gradient only), or, with the last layer,
 * for a net whose outputs alone are read (prediction): after it, a chain
 * keeps the activations of layers >= `layer` only; the layers below share
 * two blocks that each forward overwrites as it goes (only the next
 * layer's forward reads them), so a batch faults in far less memory. In
 * a chain or a graph, a batch norm or add below `layer` whose only reader
 * is a ReLU writes that ReLU's output itself, in one pass, and the ReLU
 * runs in its block. Outputs, the activations of layers >= `layer` and
 * the gradients of backward passes that stop at `layer` or above are
 * bit-identical to a net that keeps everything; cbq_net_activation of a
 * layer below `layer` is then undefined, and cbq_net_backward refuses a
 * stop layer below it (0, the input's gradient, included). 0 keeps
 * everything again (gradient x input, Integrated Gradients). Reallocates
 * the activations: call it before a forward (the last one's outputs are
 * gone). A training net (cbq_net_create_training) keeps its own plan. */
int cbq_net_keep_activations_from(cbq_net *net, size_t layer, cbq_error *err);
void cbq_net_free(cbq_net *net);
const cbq_model_spec *cbq_net_spec(const cbq_net *net);

/* 0 = use all cores. */
void cbq_net_set_threads(cbq_net *net, int threads);

/* How the net's convolutions are computed from now on: CBQ_CONV_AUTO (the
 * default: Winograd F(4x4, 3x3), or F(2x2, 3x3) on 4x4 planes, for the 3x3
 * stride-1 layers where it is faster, a direct kernel for first layers with
 * few input channels) or
 * CBQ_CONV_GEMM (im2col + GEMM for every convolution: the forward
 * arithmetic of releases before those kernels). Runtime only: the model, its files and hashes are
 * unchanged. Any time between passes; the workspace already fits both. */
void cbq_net_set_conv_algorithm(cbq_net *net, cbq_conv_algorithm algorithm);

/* Data-parallel training over the ranks of a job (dist.h): each rank runs
 * its own rows of the batch, and every batch-norm layer in training mode
 * sums its per-channel statistics over the ranks (SyncBatchNorm): the sum
 * and sum of squares in the forward, the sums of dy and dy * xhat in the
 * backward, so every rank normalises with the whole batch's statistics.
 * Every rank then runs the same forwards and backwards in the same order.
 * dist must outlive the net or the next call; NULL or one rank: alone. */
int cbq_net_set_dist(cbq_net *net, const cbq_dist *dist, cbq_error *err);
/* Training mode: BN uses batch statistics and updates running ones; dropout
 * active (masks drawn from the net's RNG, reseedable). Eval mode otherwise. */
void cbq_net_set_training(cbq_net *net, int training);
void cbq_net_seed_dropout(cbq_net *net, uint64_t seed);

/* ---- named tensors (state_dict) ---------------------------------------- */
typedef enum { CBQ_DTYPE_F32, CBQ_DTYPE_I64 } cbq_dtype;

typedef struct {
    const char *name;    /* "conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked" */
    cbq_dtype dtype;     /* I64 only for num_batches_tracked */
    void *data;          /* float* or int64_t*, numel elements, owned by the net */
    int ndim;            /* 0 for the scalar num_batches_tracked */
    size_t shape[4];
    size_t numel;
    int trainable;       /* 1 for weights and biases, 0 for BN buffers */
    float *grad;         /* gradient of a trainable tensor, NULL otherwise */
} cbq_tensor_view;

/* Tensors in state_dict order (layer order, then weight, bias, running_mean,
 * running_var, num_batches_tracked as PyTorch lists them). */
size_t cbq_net_tensor_count(const cbq_net *net);
void cbq_net_tensor(const cbq_net *net, size_t index, cbq_tensor_view *view);
/* By name; returns 0 when absent. */
int cbq_net_tensor_find(const cbq_net *net, const char *name, cbq_tensor_view *view);

/* ---- running -------------------------------------------------------------- */
/* in: [n, C, H, W] preprocessed slices (n <= max_batch; C: the input
 * channels). Computes every layer's activation; returns the output
 * [n, n_outputs]. */
int cbq_net_forward(cbq_net *net, const float *in, size_t n, const float **out, cbq_error *err);

/* Fails, naming the output, when an output of cbq_net_forward
 * ([n, n_outputs]) is NaN or infinite: a result must be an error, never an
 * empty cell. Callers add the volume. */
int cbq_net_check_outputs(const cbq_net *net, const float *out, size_t n, cbq_error *err);

/* Backward from dout = dLoss/d(output) [n, n_outputs] of the last forward,
 * down to and including layer `stop_layer` (0 = all the way to the input).
 * After it, cbq_net_activation_grad(net, stop_layer) holds dLoss/d(output of
 * stop_layer) (Grad-CAM stops at its target layer and reads it); the
 * gradients of the layers above are not kept (they share memory, which
 * halves training memory); when stop_layer == 0
 * cbq_net_input_grad holds the gradient with respect to the input.
 * Parameter gradients of layers >= stop_layer accumulate when
 * `param_grads` is non-zero (Grad-CAM passes 0 and skips them). */
int cbq_net_backward(cbq_net *net, const float *dout, size_t stop_layer, int param_grads,
                     cbq_error *err);

const float *cbq_net_activation(const cbq_net *net, size_t layer);      /* output of layer */
const float *cbq_net_activation_grad(const cbq_net *net, size_t layer); /* d/d output of layer */
const float *cbq_net_input_grad(const cbq_net *net);                    /* [n, C, H, W] */
void cbq_net_zero_grad(cbq_net *net);

/* ---- for optimisers and the training step -------------------------------- */
/* All trainable parameters as one contiguous block in state_dict order, and
 * their gradients in the same layout (owned by the net). */
float *cbq_net_params(cbq_net *net, size_t *count);
float *cbq_net_grads(cbq_net *net, size_t *count);
/* Batch size of the last forward (0 before any). */
size_t cbq_net_batch(const cbq_net *net);
/* Per-sample output size {C, H, W} of layer i. */
void cbq_net_layer_shape(const cbq_net *net, size_t layer, size_t shape[3]);
/* Backward as cbq_net_backward, but with `input_grad` 0 the gradient with
 * respect to the network input is not computed (training never needs it). */
int cbq_net_backward_ex(cbq_net *net, const float *dout, size_t stop_layer, int param_grads,
                        int input_grad, cbq_error *err);
/* The OpenMP team size in use. */
int cbq_net_threads(const cbq_net *net);

/* Floating-point operations of one forward pass for one sample
 * (a multiply-add counts 2). */
double cbq_net_forward_flops(const cbq_net *net);

#ifdef __cplusplus
}
#endif
#endif
