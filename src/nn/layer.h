/* layer.h - the layer kernels of the engine, one .c file per layer kind.
 *
 * Conventions for every kernel here:
 * - float32, NCHW, contiguous; n = batch size; shapes are commented on each
 *   pointer. Kernels never allocate: scratch memory comes from the caller.
 * - forward(out, in, params..., cfg, sizes...) and the mirrored
 *   backward(din, dparams..., dout, in, params..., cfg, sizes...).
 * - Gradient convention: din is OVERWRITTEN with dLoss/d(in) (skipped when
 *   din is NULL); parameter gradients ACCUMULATE (+=) and are skipped when
 *   NULL; all buffers hold true gradients (not negated); zeroing and the
 *   update are the caller's business (net.c, optim.c).
 * - `threads` is the OpenMP team size; partitions are static, so a given
 *   thread count gives bit-identical results run after run.
 * Semantics are PyTorch 1.13's (torch.nn docs per layer, cited in each file).
 */
#ifndef CBQ_NN_LAYER_H
#define CBQ_NN_LAYER_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/model_spec.h"
#include "cbctiq/rng.h"

/* ---- conv2d.c -------------------------------------------------------------- */
size_t conv2d_out_size(size_t in, int kernel, int stride, int pad);
/* Per-thread scratch (floats) for forward and backward at this input size. */
size_t conv2d_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w);
/* Per-thread private weight+bias gradient accumulator (floats). */
size_t conv2d_dw_private_floats(const cbq_conv2d_cfg *cfg);
void conv2d_forward(float *out,          /* [n, Cout, OH, OW] */
                    const float *in,     /* [n, Cin, h, w] */
                    const float *weight, /* [Cout, Cin, KH, KW] */
                    const float *bias,   /* [Cout] or NULL */
                    const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                    float *workspace,    /* [threads * conv2d_workspace_floats] */
                    int threads);
void conv2d_backward(float *din,           /* [n, Cin, h, w] or NULL */
                     float *dweight,       /* [Cout, Cin, KH, KW] += , or NULL */
                     float *dbias,         /* [Cout] +=, or NULL */
                     const float *dout,    /* [n, Cout, OH, OW] */
                     const float *in,      /* [n, Cin, h, w] */
                     const float *weight,  /* [Cout, Cin, KH, KW] */
                     const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                     float *workspace,     /* [threads * conv2d_workspace_floats] */
                     float *dw_private,    /* [threads * conv2d_dw_private_floats] */
                     int threads);
/* conv2d_backward's im2col + GEMM path whatever the Winograd dispatch would
 * choose (dilation 1, groups 1; the same workspace and dw_private): the
 * baseline the Winograd paths are measured against. */
void conv2d_backward_im2col(float *din, float *dweight, float *dbias, const float *dout,
                            const float *in, const float *weight, const cbq_conv2d_cfg *cfg,
                            size_t n, size_t h, size_t w, float *workspace, float *dw_private,
                            int threads);
/* Adds the gradients backward's first `used` threads accumulated privately
 * (each at dw_private + t * priv: n_weight weight floats, then cout bias
 * floats) into dweight and dbias (either may be NULL), thread 0 first, so
 * that the sum does not depend on scheduling. */
void conv2d_sum_private_dw(float *dweight, float *dbias, const float *dw_private, int used, size_t priv,
                           size_t n_weight, size_t cout);
/* The same convolution as plain loops (double accumulation), for tests. */
void conv2d_forward_ref(float *out, const float *in, const float *weight, const float *bias,
                        const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w);
void conv2d_backward_ref(float *din, float *dweight, float *dbias, const float *dout,
                         const float *in, const float *weight, const cbq_conv2d_cfg *cfg, size_t n,
                         size_t h, size_t w);

/* ---- conv2d_general.c: dilation and groups --------------------------------- */
/* conv2d_forward/backward and the two size functions above hand a
 * convolution with dilation or groups != 1 (0 reads as 1) to these; the
 * weight is then [Cout, Cin/groups, KH, KW]. */
int conv2d_is_general(const cbq_conv2d_cfg *cfg);
/* Output height and width with dilation (PyTorch's formula). */
size_t conv2d_out_h(const cbq_conv2d_cfg *cfg, size_t h);
size_t conv2d_out_w(const cbq_conv2d_cfg *cfg, size_t w);
size_t conv2d_general_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w);
size_t conv2d_general_dw_private_floats(const cbq_conv2d_cfg *cfg);
void conv2d_general_forward(float *out, const float *in, const float *weight, const float *bias,
                            const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                            float *workspace, int threads);
void conv2d_general_backward(float *din, float *dweight, float *dbias, const float *dout,
                             const float *in, const float *weight, const cbq_conv2d_cfg *cfg,
                             size_t n, size_t h, size_t w, float *workspace, float *dw_private,
                             int threads);

/* ---- conv2d_direct.c: few input channels (a first layer), no im2col ------
 * conv2d_forward/backward and conv2d_workspace_floats hand an eligible
 * convolution that Winograd does not take here; the input gradient, when
 * asked for, stays on conv2d.c's GEMM path. Forward: the same bits for any
 * thread count. */
int conv2d_direct_eligible(const cbq_conv2d_cfg *cfg);
/* Per-thread scratch (floats). */
size_t conv2d_direct_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w);
void conv2d_direct_forward(float *out, const float *in, const float *weight, const float *bias,
                           const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                           float *workspace, int threads);
/* Adds the weight and bias gradients (either may be NULL) through per-thread
 * accumulators dw_private, as conv2d_backward. */
void conv2d_direct_backward_weight(float *dweight, float *dbias, const float *dout,
                                   const float *in, const cbq_conv2d_cfg *cfg, size_t n, size_t h,
                                   size_t w, float *workspace, float *dw_private, int threads);

/* ---- conv2d_winograd.c: 3x3 stride-1 convolutions by Winograd F(4x4, 3x3)
 * or, on small planes, F(2x2, 3x3) --
 * conv2d_forward/backward and conv2d_workspace_floats hand an eligible
 * convolution (3x3, stride 1, dilation 1, groups 1, where the transform is
 * faster than im2col + GEMM) to these. Forward and the input gradient give
 * the same bits for every thread count. */
int conv2d_winograd_eligible(const cbq_conv2d_cfg *cfg, size_t h, size_t w);
/* The output tile's side this layer runs with on h x w inputs: 4 or 2. */
size_t conv2d_winograd_tile(const cbq_conv2d_cfg *cfg, size_t h, size_t w);
/* Per-thread scratch (floats) for forward and backward_data: a team of T
 * threads gets T times this, contiguous (room for a transform shared by the
 * team, at the start, plus each thread's own blocks). */
size_t conv2d_winograd_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w);
void conv2d_winograd_forward(float *out, const float *in, const float *weight, const float *bias,
                             const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                             float *workspace, int threads);
/* din [n, Cin, h, w] is overwritten. */
void conv2d_winograd_backward_data(float *din, const float *dout, const float *weight,
                                   const cbq_conv2d_cfg *cfg, size_t n, size_t h, size_t w,
                                   float *workspace, int threads);

/* ---- conv2d_winograd_wgrad.c: the weight gradient of the same convolutions -- */
int conv2d_winograd_wgrad_eligible(const cbq_conv2d_cfg *cfg, size_t h, size_t w);
/* Per-thread scratch (floats), in the same sense as above. */
size_t conv2d_winograd_wgrad_workspace_floats(const cbq_conv2d_cfg *cfg, size_t h, size_t w);
/* dweight, dbias (either may be NULL) += the gradients over the n samples. */
void conv2d_winograd_backward_weight(float *dweight, float *dbias, const float *dout,
                                     const float *in, const cbq_conv2d_cfg *cfg, size_t n,
                                     size_t h, size_t w, float *workspace, int threads);

/* ---- batchnorm2d.c --------------------------------------------------------- */
/* Training: normalises with the batch mean and biased variance, saves them
 * for backward, updates running stats with the unbiased variance.
 * relu (all three forwards): 1 writes max(y, 0), a ReLU that reads this
 * output and nothing else fused in, with the bits of the two passes. */
void batchnorm2d_forward_train(float *out,          /* [n, C, hw] */
                               float *save_mean,    /* [C] */
                               float *save_invstd,  /* [C] */
                               float *running_mean, /* [C] updated */
                               float *running_var,  /* [C] updated */
                               int64_t *num_batches_tracked,
                               const float *in,     /* [n, C, hw] */
                               const float *gamma,  /* [C] */
                               const float *beta,   /* [C] */
                               const cbq_batchnorm2d_cfg *cfg, size_t n, size_t hw, int relu,
                               int threads);
/* Evaluation: running statistics; save_* receive them (mean, 1/sqrt(var+eps)). */
void batchnorm2d_forward_eval(float *out, float *save_mean, float *save_invstd, const float *in,
                              const float *gamma, const float *beta, const float *running_mean,
                              const float *running_var, const cbq_batchnorm2d_cfg *cfg, size_t n,
                              size_t hw, int relu, int threads);
/* Synchronised batch norm (the batch split over the ranks of a job):
 * sums [2C] receives this rank's per-channel sum and sum of squares; the
 * caller adds them up over the ranks and normalises with the totals over
 * count values (every rank's n * hw). */
void batchnorm2d_local_sums(double *sums, const float *in, size_t channels, size_t n, size_t hw,
                            int threads);
void batchnorm2d_forward_train_summed(float *out, float *save_mean, float *save_invstd,
                                      float *running_mean, float *running_var,
                                      int64_t *num_batches_tracked, const float *in,
                                      const float *gamma, const float *beta,
                                      const cbq_batchnorm2d_cfg *cfg, const double *sums,
                                      double count, size_t n, size_t hw, int relu, int threads);
/* Its backward in two halves around the caller's sum over ranks: sums [2C]
 * receives this rank's per-channel sum of dy and of dy * xhat, which are
 * also added to dgamma and dbeta (may be NULL) as this rank's share; then
 * din from the summed values over count. */
void batchnorm2d_local_grad_sums(double *sums, float *dgamma, float *dbeta, const float *dout,
                                 const float *in, const float *save_mean, const float *save_invstd,
                                 size_t channels, size_t n, size_t hw, int threads);
void batchnorm2d_input_grad_summed(float *din, const float *dout, const float *in,
                                   const float *gamma, const float *save_mean,
                                   const float *save_invstd, const double *sums, double count,
                                   size_t channels, size_t n, size_t hw, int threads);
/* `training` selects which forward produced save_*. */
void batchnorm2d_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                          const float *in, const float *gamma, const float *save_mean,
                          const float *save_invstd, int training, size_t channels, size_t n,
                          size_t hw, int threads);

/* ---- relu.c (relu and leaky_relu) ---------------------------------------- */
void relu_forward(float *out, const float *in, size_t count, int threads);
void relu_backward(float *din, const float *dout, const float *in, size_t count, int threads);
void leaky_relu_forward(float *out, const float *in, float slope, size_t count, int threads);
void leaky_relu_backward(float *din, const float *dout, const float *in, float slope, size_t count,
                         int threads);

/* ---- sigmoid.c (sigmoid and silu: x * sigmoid(x)) ------------------------ */
void sigmoid_forward(float *out, const float *in, size_t count, int threads);
void sigmoid_backward(float *din, const float *dout, const float *in, size_t count, int threads);
void silu_forward(float *out, const float *in, size_t count, int threads);
void silu_backward(float *din, const float *dout, const float *in, size_t count, int threads);

/* ---- maxpool2d.c, avgpool2d.c: planes = n * C ----------------------------- */
/* Output size of one axis (PyTorch's pooling_output_shape, dilation 1). */
size_t pool2d_out_size(size_t in, int kernel, int stride, int pad, int ceil_mode);
void maxpool2d_forward(float *out, const float *in, const cbq_pool2d_cfg *cfg, size_t planes,
                       size_t h, size_t w, int threads);
void maxpool2d_backward(float *din, const float *dout, const float *in, const cbq_pool2d_cfg *cfg,
                        size_t planes, size_t h, size_t w, int threads);
/* The same pooling one window at a time (the rule the kernels above
 * reorder for speed and must match bit for bit), for tests. */
void maxpool2d_forward_ref(float *out, const float *in, const cbq_pool2d_cfg *cfg, size_t planes,
                           size_t h, size_t w);
void maxpool2d_backward_ref(float *din, const float *dout, const float *in, const cbq_pool2d_cfg *cfg,
                            size_t planes, size_t h, size_t w);
void avgpool2d_forward(float *out, const float *in, const cbq_pool2d_cfg *cfg, size_t planes,
                       size_t h, size_t w, int threads);
void avgpool2d_backward(float *din, const float *dout, const cbq_pool2d_cfg *cfg, size_t planes,
                        size_t h, size_t w, int threads);

/* ---- global_avgpool.c ------------------------------------------------------ */
void global_avgpool_forward(float *out /* [planes] */, const float *in /* [planes, hw] */,
                            size_t planes, size_t hw, int threads);
void global_avgpool_backward(float *din, const float *dout, size_t planes, size_t hw, int threads);

/* ---- dropout.c --------------------------------------------------------------- */
/* Inverted dropout: mask[i] = 0 with probability p, else 1/(1-p); drawn in
 * element order from rng (single-threaded, so reproducible). */
void dropout_forward(float *out, float *mask, const float *in, double p, size_t count, cbq_rng *rng);
void dropout_backward(float *din, const float *dout, const float *mask, size_t count);

/* ---- linear.c: out = in W^T + b ---------------------------------------------- */
void linear_forward(float *out,          /* [n, out_f] */
                    const float *in,     /* [n, in_f] */
                    const float *weight, /* [out_f, in_f] */
                    const float *bias,   /* [out_f] or NULL */
                    const cbq_linear_cfg *cfg, size_t n);
void linear_backward(float *din, float *dweight, float *dbias, const float *dout, const float *in,
                     const float *weight, const cbq_linear_cfg *cfg, size_t n);

/* ---- add.c, concat.c, mul.c: the graph kinds --------------------------------- */
/* out = ins[0] + ... + ins[n_in - 1], all [count]; with relu, max(out, 0)
 * (a residual block's ReLU fused in: the bits of the two passes). */
void add_forward(float *out, const float *const *ins, size_t n_in, size_t count, int relu,
                 int threads);
/* dins[j] = dout (skipped where NULL). */
void add_backward(float *const *dins, const float *dout, size_t n_in, size_t count);
/* acc += x: the engine's sum of the gradients of a tensor read twice. */
void add_accumulate(float *acc, const float *x, size_t count, int threads);
/* out [n, sum C_j, hw] from ins[j] [n, C_j, hw]. */
void concat_forward(float *out, const float *const *ins, const size_t *channels, size_t n_in,
                    size_t n, size_t hw, int threads);
void concat_backward(float *const *dins, const float *dout, const size_t *channels, size_t n_in,
                     size_t n, size_t hw, int threads);
/* out [planes, hw] = a [planes, hw_a] * b [planes, hw_b], hw_a and hw_b each
 * hw or 1 (broadcast); planes = n * C. */
void mul_forward(float *out, const float *a, const float *b, size_t planes, size_t hw, size_t hw_a,
                 size_t hw_b, int threads);
void mul_backward(float *da, float *db, const float *dout, const float *a, const float *b,
                  size_t planes, size_t hw, size_t hw_a, size_t hw_b, int threads);

#endif
