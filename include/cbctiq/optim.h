/* optim.h - optimisers over a net's parameter block, with PyTorch 1.13
 * semantics (torch.optim.SGD, Adam, AdamW; amsgrad off), plus the cosine
 * learning-rate schedule with linear warm-up and global gradient-norm
 * clipping (torch.nn.utils.clip_grad_norm_).
 *
 *   SGD:   g += wd p; buf = g (first step) or momentum buf + (1 - dampening) g;
 *          step = nesterov ? g + momentum buf : buf; p -= lr step
 *   Adam:  g += wd p (coupled); m, v moving averages; p -= lr/(1 - b1^t) m /
 *          (sqrt(v)/sqrt(1 - b2^t) + eps)
 *   AdamW: p *= 1 - lr wd (decoupled), then Adam without the g += wd p
 *
 * Ownership: cbq_optim_create allocates the state (momentum / moment
 * buffers, one block); it keeps a pointer to the net, which must outlive it.
 */
#ifndef CBCTIQ_OPTIM_H
#define CBCTIQ_OPTIM_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/net.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { CBQ_OPTIM_SGD, CBQ_OPTIM_ADAM, CBQ_OPTIM_ADAMW } cbq_optim_kind;

typedef struct {
    cbq_optim_kind kind;
    double lr;
    double weight_decay;
    double momentum, dampening; /* SGD */
    int nesterov;               /* SGD; needs momentum > 0 and dampening 0 */
    double beta1, beta2, eps;   /* Adam, AdamW */
} cbq_optim_cfg;

/* PyTorch's defaults for a kind: lr 1e-3 (SGD: 0.01), betas (0.9, 0.999),
 * eps 1e-8, weight decay 0 (AdamW: 0.01), momentum 0. */
cbq_optim_cfg cbq_optim_defaults(cbq_optim_kind kind);
/* "sgd", "adam", "adamw"; returns 0 when unknown. */
int cbq_optim_parse(const char *name, cbq_optim_kind *kind);

typedef struct cbq_optim cbq_optim;

int cbq_optim_create(cbq_optim **opt, cbq_net *net, const cbq_optim_cfg *cfg, cbq_error *err);
void cbq_optim_free(cbq_optim *opt);
/* Changes the learning rate for the next steps (schedules call this). */
void cbq_optim_set_lr(cbq_optim *opt, double lr);
double cbq_optim_lr(const cbq_optim *opt);
/* One update of every trainable parameter from the net's gradients. */
void cbq_optim_step(cbq_optim *opt);
/* Steps taken so far. */
size_t cbq_optim_steps(const cbq_optim *opt);

/* Learning rate at `step` (0-based): linear warm-up from base_lr/warmup to
 * base_lr over the first `warmup` steps (lr = base_lr (step+1)/warmup), then
 * cosine from base_lr to min_lr at step == total_steps. */
double cbq_lr_cosine(size_t step, size_t total_steps, size_t warmup, double base_lr, double min_lr);

/* Scales all gradients so that their global L2 norm is at most max_norm
 * (coefficient max_norm/(norm + 1e-6), applied only when below 1, like
 * PyTorch); returns the norm before clipping. max_norm <= 0: no clipping. */
double cbq_clip_grad_norm(cbq_net *net, double max_norm);

#ifdef __cplusplus
}
#endif
#endif
