/* trainer.h - the training loop: epochs over a dataset of preprocessed
 * slices with seeded shuffling, batching and augmentation, validation after
 * each epoch, early stopping on the validation loss, and the best weights
 * kept and restored. One step is the engine's cbq_train_step (train.h).
 *
 * Everything is allocated before the first epoch; the loop itself allocates
 * nothing. A seed and a thread count reproduce a run bit for bit.
 *
 *   cbq_dataset ds = {.n = n, .height = 128, .width = 128, .n_outputs = 5,
 *                     .slices = x, .targets = y, .volume = vol};
 *   cbq_trainer_cfg cfg;
 *   cbq_trainer_defaults(&cfg);
 *   cfg.epochs = 30; cfg.patience = 5;
 *   cbq_train_result res;
 *   CBQ_TRY(cbq_train(net, &ds, train_idx, n_train, val_idx, n_val, &cfg, &res, &err));
 */
#ifndef CBCTIQ_TRAINER_H
#define CBCTIQ_TRAINER_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/dist.h"
#include "cbctiq/error.h"
#include "cbctiq/loss.h"
#include "cbctiq/net.h"
#include "cbctiq/optim.h"
#include "cbctiq/rng.h"

#ifdef __cplusplus
extern "C" {
#endif

/* n samples [channels, height, width] with targets [n_outputs] each and the
 * id of the volume each sample comes from. Either arrays (slices [n, C, H,
 * W], targets [n, n_outputs]) or, when slices is NULL, a fetch callback that
 * fills one sample (returns CBQ_OK or an error). channels (0 reads as 1)
 * must be the model's input channels: the samples are the model's input as
 * cbq_model_input_load builds it (model_input.h), channels filled and
 * normalised as model.json's input says. Not owned by the trainer. */
typedef struct {
    size_t n, height, width, n_outputs;
    size_t channels;
    const float *slices;
    const float *targets;
    const size_t *volume;          /* [n]; may be NULL (every slice its own volume) */
    int (*fetch)(void *ctx, size_t index, float *slice, float *target, cbq_error *err);
    void *fetch_ctx;
} cbq_dataset;

/* Splits slice indices so that each volume lies wholly in one part (no
 * slice of a validation volume is trained on): round(val_fraction * volumes)
 * volumes, at least 1 when val_fraction > 0 and there are 2 or more, chosen
 * by seed, go to validation. train_idx and val_idx must hold ds->n entries;
 * indices come out in increasing order. */
int cbq_dataset_split_by_volume(const cbq_dataset *ds, double val_fraction, uint64_t seed,
                                size_t *train_idx, size_t *n_train, size_t *val_idx, size_t *n_val,
                                cbq_error *err);

/* Augmentation of one training slice, in this order, each drawn from the
 * trainer's RNG: horizontal flip with probability 1/2; integer shift by
 * (dy, dx) uniform in [-max_shift, max_shift] with zeros filling the border;
 * intensity x' = (1 + a) x + b with a uniform in [-jitter_scale,
 * jitter_scale], b in [-jitter_offset, jitter_offset] (no clamping); then the
 * user hook, if any. Targets are left unchanged. */
typedef struct {
    int hflip;
    int max_shift;
    double jitter_scale, jitter_offset;
    void (*hook)(void *ctx, float *slice, size_t height, size_t width, cbq_rng *rng);
    void *hook_ctx;
} cbq_augment_cfg;

/* Applies cfg to one slice in place; scratch holds height*width floats. */
void cbq_augment_slice(const cbq_augment_cfg *cfg, float *slice, float *scratch, size_t height,
                       size_t width, cbq_rng *rng);

/* Applies cfg to one sample of `channels` planes in place: one draw (the
 * same draws, in the same order, as cbq_augment_slice) moves every channel
 * alike, so a 2.5D sample's neighbouring slices stay aligned; the hook runs
 * on each channel in turn. One channel is exactly cbq_augment_slice. */
void cbq_augment_sample(const cbq_augment_cfg *cfg, float *sample, size_t channels, float *scratch,
                        size_t height, size_t width, cbq_rng *rng);

typedef struct {
    size_t epoch;          /* 1-based */
    double train_loss;     /* mean over the epoch's training slices (training mode) */
    double val_loss;       /* mean over validation slices (eval mode); NaN without validation */
    double lr;             /* learning rate of the epoch's last step */
    double seconds;        /* wall time of the epoch, validation included */
    int improved;          /* this epoch gave the best validation loss so far */
} cbq_epoch_log;

typedef struct {
    size_t epochs;         /* at most this many epochs */
    size_t batch_size;
    size_t patience;       /* stop after this many epochs without improvement; 0 = never */
    double min_delta;      /* an improvement must lower the val loss by more than this */
    uint64_t seed;         /* shuffling and augmentation */
    cbq_optim_cfg optim;
    cbq_loss_cfg loss;
    double clip;           /* global gradient-norm clipping; <= 0: none */
    int cosine;            /* cosine LR schedule over all steps (optim.h) */
    size_t warmup_steps;
    double min_lr;
    cbq_augment_cfg augment;
    void (*log)(void *ctx, const cbq_epoch_log *entry);
    void *log_ctx;
    /* Data-parallel over the ranks of a job (NULL or one rank: alone). Every
     * rank calls cbq_train with the same arguments; each draws, loads and
     * augments the whole batch (the RNG stays in step) and trains on its
     * block of the rows (cbq_dist_block), with batch-norm statistics and
     * gradients summed over the ranks (cbq_train_step_shard). Validation
     * runs whole on every rank, so every rank takes the same decisions and
     * ends with the same weights. Every batch, the last included, needs at
     * least one slice per rank. */
    const cbq_dist *dist;
} cbq_trainer_cfg;

/* Defaults: 30 epochs, batch 32, patience 5, min_delta 0, seed 1, Adam
 * (PyTorch defaults), MSE, no clipping, cosine schedule without warm-up to
 * 0, flip off, shift 0, jitter 0, no log. */
void cbq_trainer_defaults(cbq_trainer_cfg *cfg);

typedef struct {
    size_t epochs_run;
    size_t best_epoch;     /* 1-based; the last epoch without validation */
    double best_val_loss;  /* NaN without validation */
    double last_train_loss;
    int stopped_early;
    size_t steps;              /* training steps run */
    double allreduce_seconds;  /* wall time in the gradient sums over ranks (0 alone) */
} cbq_train_result;

/* Trains net on ds[train_idx] and validates on ds[val_idx] (n_val may be 0:
 * no validation, no early stopping, the final weights are kept). On return
 * the net holds the weights of the best validation epoch (every state_dict
 * tensor, BN statistics included) and is in eval mode. Fails on a bad
 * configuration, a fetch error or a non-finite loss (naming the epoch). */
int cbq_train(cbq_net *net, const cbq_dataset *ds, const size_t *train_idx, size_t n_train,
              const size_t *val_idx, size_t n_val, const cbq_trainer_cfg *cfg, cbq_train_result *result,
              cbq_error *err);

/* Mean loss of the net (eval mode) over ds[idx], in batches of batch_size;
 * `in` and `tgt` are caller buffers of batch_size samples. */
int cbq_evaluate(cbq_net *net, const cbq_dataset *ds, const size_t *idx, size_t n, size_t batch_size,
                 const cbq_loss_cfg *loss, float *in, float *tgt, double *mean_loss, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
