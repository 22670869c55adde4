/* trainer.c - epochs, batches, augmentation, validation, early stopping
 * (include/cbctiq/trainer.h). All buffers are sized in trainer_setup; the
 * epoch loop only moves data. */
#include "cbctiq/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/progress.h"
#include "cbctiq/train.h"

void cbq_trainer_defaults(cbq_trainer_cfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->epochs = 30;
    cfg->batch_size = 32;
    cfg->patience = 5;
    cfg->seed = 1;
    cfg->optim = cbq_optim_defaults(CBQ_OPTIM_ADAM);
    cfg->loss.kind = CBQ_LOSS_MSE;
    cfg->cosine = 1;
}

/* ---- splitting ------------------------------------------------------------ */

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static size_t volume_of(const cbq_dataset *ds, size_t i) { return ds->volume ? ds->volume[i] : i; }

int cbq_dataset_split_by_volume(const cbq_dataset *ds, double val_fraction, uint64_t seed,
                                size_t *train_idx, size_t *n_train, size_t *val_idx, size_t *n_val,
                                cbq_error *err)
{
    CBQ_CHECK_ARG(err, val_fraction >= 0.0 && val_fraction < 1.0,
                  "validation fraction must be in [0, 1), got %g", val_fraction);
    size_t *ids = malloc((ds->n ? ds->n : 1) * sizeof *ids);
    if (!ids)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory splitting %zu slices", ds->n);
    for (size_t i = 0; i < ds->n; i++)
        ids[i] = volume_of(ds, i);
    qsort(ids, ds->n, sizeof *ids, cmp_size);
    size_t n_vol = 0;
    for (size_t i = 0; i < ds->n; i++)
        if (i == 0 || ids[i] != ids[n_vol - 1])
            ids[n_vol++] = ids[i];
    size_t n_pick = (size_t)floor(val_fraction * (double)n_vol + 0.5);
    if (val_fraction > 0.0 && n_pick == 0 && n_vol >= 2)
        n_pick = 1;
    if (n_pick >= n_vol && n_vol > 0)
        n_pick = n_vol - 1; /* keep at least one volume to train on */
    cbq_rng rng;
    cbq_rng_stream(&rng, seed, 0x5b17);
    cbq_rng_shuffle_size(&rng, ids, n_vol);
    qsort(ids, n_pick, sizeof *ids, cmp_size); /* the validation volumes, sorted */
    *n_train = *n_val = 0;
    for (size_t i = 0; i < ds->n; i++) {
        size_t v = volume_of(ds, i);
        if (bsearch(&v, ids, n_pick, sizeof *ids, cmp_size))
            val_idx[(*n_val)++] = i;
        else
            train_idx[(*n_train)++] = i;
    }
    free(ids);
    return CBQ_OK;
}

/* ---- augmentation --------------------------------------------------------- */

static void flip_rows(float *x, size_t h, size_t w)
{
    for (size_t y = 0; y < h; y++)
        for (size_t a = 0, b = w - 1; a < b; a++, b--) {
            float t = x[y * w + a];
            x[y * w + a] = x[y * w + b];
            x[y * w + b] = t;
        }
}

static void shift(float *x, float *scratch, size_t h, size_t w, long dy, long dx)
{
    memcpy(scratch, x, h * w * sizeof *x);
    for (size_t y = 0; y < h; y++) {
        long sy = (long)y - dy;
        for (size_t c = 0; c < w; c++) {
            long sx = (long)c - dx;
            int inside = sy >= 0 && sy < (long)h && sx >= 0 && sx < (long)w;
            x[y * w + c] = inside ? scratch[(size_t)sy * w + (size_t)sx] : 0.0f;
        }
    }
}

static double uniform_sym(cbq_rng *rng, double half_width)
{
    return (2.0 * cbq_rng_uniform(rng) - 1.0) * half_width;
}

void cbq_augment_sample(const cbq_augment_cfg *cfg, float *sample, size_t channels, float *scratch,
                        size_t h, size_t w, cbq_rng *rng)
{
    size_t HW = h * w;
    if (cfg->hflip && (cbq_rng_u64(rng) >> 63))
        for (size_t ch = 0; ch < channels; ch++)
            flip_rows(sample + ch * HW, h, w);
    if (cfg->max_shift > 0) {
        uint64_t span = 2 * (uint64_t)cfg->max_shift + 1;
        long dy = (long)cbq_rng_below(rng, span) - cfg->max_shift;
        long dx = (long)cbq_rng_below(rng, span) - cfg->max_shift;
        for (size_t ch = 0; (dy || dx) && ch < channels; ch++)
            shift(sample + ch * HW, scratch, h, w, dy, dx);
    }
    if (cfg->jitter_scale > 0.0 || cfg->jitter_offset > 0.0) {
        float a = (float)(1.0 + uniform_sym(rng, cfg->jitter_scale));
        float b = (float)uniform_sym(rng, cfg->jitter_offset);
        for (size_t i = 0; i < channels * HW; i++)
            sample[i] = a * sample[i] + b;
    }
    for (size_t ch = 0; cfg->hook && ch < channels; ch++)
        cfg->hook(cfg->hook_ctx, sample + ch * HW, h, w, rng);
}

void cbq_augment_slice(const cbq_augment_cfg *cfg, float *slice, float *scratch, size_t h, size_t w,
                       cbq_rng *rng)
{
    cbq_augment_sample(cfg, slice, 1, scratch, h, w, rng);
}

/* ---- the loop ------------------------------------------------------------- */

typedef struct {
    size_t plane, k;             /* floats per sample (channels x H x W); targets per sample */
    float *in, *tgt, *scratch;   /* batch_size samples; one channel's plane */
    size_t *order;               /* n_train */
    unsigned char *best;         /* snapshot of every state_dict tensor */
    size_t best_bytes;
    cbq_optim *opt;
} trainer_buffers;

static void buffers_free(trainer_buffers *b)
{
    free(b->in);
    free(b->tgt);
    free(b->scratch);
    free(b->order);
    free(b->best);
    cbq_optim_free(b->opt);
}

static size_t tensor_bytes(const cbq_tensor_view *v)
{
    return v->numel * (v->dtype == CBQ_DTYPE_I64 ? sizeof(int64_t) : sizeof(float));
}

/* Copies every tensor of the net to (save) or from (restore) the snapshot. */
static void snapshot(cbq_net *net, unsigned char *buf, int save)
{
    size_t at = 0;
    for (size_t i = 0; i < cbq_net_tensor_count(net); i++) {
        cbq_tensor_view v;
        cbq_net_tensor(net, i, &v);
        size_t n = tensor_bytes(&v);
        if (save)
            memcpy(buf + at, v.data, n);
        else
            memcpy(v.data, buf + at, n);
        at += n;
    }
}

static size_t dataset_channels(const cbq_dataset *ds) { return ds->channels ? ds->channels : 1; }

static size_t sample_floats(const cbq_dataset *ds) { return dataset_channels(ds) * ds->height * ds->width; }

static int load_sample(const cbq_dataset *ds, size_t i, float *slice, float *target, cbq_error *err)
{
    size_t plane = sample_floats(ds);
    if (ds->slices) {
        memcpy(slice, ds->slices + i * plane, plane * sizeof *slice);
        memcpy(target, ds->targets + i * ds->n_outputs, ds->n_outputs * sizeof *target);
        return CBQ_OK;
    }
    return ds->fetch(ds->fetch_ctx, i, slice, target, err);
}

static int check_setup(cbq_net *net, const cbq_dataset *ds, const size_t *train_idx, size_t n_train,
                       const size_t *val_idx, size_t n_val, const cbq_trainer_cfg *cfg, cbq_error *err)
{
    const cbq_model_spec *s = cbq_net_spec(net);
    CBQ_CHECK_ARG(err, ds->slices ? ds->targets != NULL : ds->fetch != NULL,
                  "dataset: give slices and targets, or a fetch callback");
    CBQ_CHECK_ARG(err, ds->height == (size_t)s->input.height && ds->width == (size_t)s->input.width &&
                           ds->n_outputs == s->n_outputs,
                  "dataset: slices %zux%zu with %zu targets, the model expects %dx%d with %zu", ds->height,
                  ds->width, ds->n_outputs, s->input.height, s->input.width, s->n_outputs);
    CBQ_CHECK_ARG(err, dataset_channels(ds) == cbq_input_channels(&s->input),
                  "dataset: %zu channels per slice, but the model takes %zu input channels "
                  "(model.json input.channels); build the samples with the model's input",
                  dataset_channels(ds), cbq_input_channels(&s->input));
    CBQ_CHECK_ARG(err, n_train > 0, "no training slices");
    CBQ_CHECK_ARG(err, cfg->batch_size > 0 && cfg->epochs > 0, "epochs and batch size must be positive");
    for (size_t i = 0; i < n_train; i++)
        CBQ_CHECK_ARG(err, train_idx[i] < ds->n, "training index %zu is beyond the %zu slices", train_idx[i],
                      ds->n);
    for (size_t i = 0; i < n_val; i++)
        CBQ_CHECK_ARG(err, val_idx[i] < ds->n, "validation index %zu is beyond the %zu slices", val_idx[i],
                      ds->n);
    CBQ_CHECK_ARG(err, cfg->augment.max_shift >= 0, "augmentation shift must be non-negative");
    if (cfg->dist && cfg->dist->size > 1) {
        size_t ranks = (size_t)cfg->dist->size, last = n_train % cfg->batch_size;
        CBQ_CHECK_ARG(err, cfg->batch_size >= ranks && (last == 0 || last >= ranks),
                      "%zu ranks need at least one slice each in every batch: batch %zu, last "
                      "batch of the epoch %zu (%zu training slices); change the batch size",
                      ranks, cfg->batch_size, last ? last : cfg->batch_size, n_train);
    }
    return CBQ_OK;
}

static int trainer_setup(trainer_buffers *b, cbq_net *net, const cbq_dataset *ds, size_t n_train,
                         const cbq_trainer_cfg *cfg, cbq_error *err)
{
    memset(b, 0, sizeof *b);
    b->plane = sample_floats(ds);
    b->k = ds->n_outputs;
    size_t n_in = 0;
    if (!cbq_size_mul(&n_in, cfg->batch_size, b->plane))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "batch of %zu slices is too large", cfg->batch_size);
    for (size_t i = 0; i < cbq_net_tensor_count(net); i++) {
        cbq_tensor_view v;
        cbq_net_tensor(net, i, &v);
        b->best_bytes += tensor_bytes(&v);
    }
    b->in = malloc(n_in * sizeof *b->in);
    b->tgt = malloc(cfg->batch_size * b->k * sizeof *b->tgt);
    b->scratch = malloc(ds->height * ds->width * sizeof *b->scratch);
    b->order = malloc(n_train * sizeof *b->order);
    b->best = malloc(b->best_bytes ? b->best_bytes : 1);
    if (!b->in || !b->tgt || !b->scratch || !b->order || !b->best)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for training buffers");
    return cbq_optim_create(&b->opt, net, &cfg->optim, err);
}

int cbq_evaluate(cbq_net *net, const cbq_dataset *ds, const size_t *idx, size_t n, size_t batch_size,
                 const cbq_loss_cfg *loss, float *in, float *tgt, double *mean_loss, cbq_error *err)
{
    size_t plane = sample_floats(ds), k = ds->n_outputs;
    double sum = 0.0;
    cbq_net_set_training(net, 0);
    for (size_t at = 0; at < n; at += batch_size) {
        size_t m = n - at < batch_size ? n - at : batch_size;
        for (size_t j = 0; j < m; j++)
            CBQ_TRY(load_sample(ds, idx[at + j], in + j * plane, tgt + j * k, err));
        const float *out = NULL;
        CBQ_TRY(cbq_net_forward(net, in, m, &out, err));
        sum += cbq_loss(loss, out, tgt, m, k, NULL) * (double)m;
    }
    *mean_loss = n ? sum / (double)n : NAN;
    return CBQ_OK;
}

/* One step on the batch of m slices in b: the whole batch alone, or this
 * rank's block of its rows when the ranks share it. */
static int train_step(cbq_net *net, const cbq_trainer_cfg *cfg, trainer_buffers *b, size_t m,
                      double *loss, cbq_train_result *res, cbq_error *err)
{
    res->steps++;
    if (!cfg->dist || cfg->dist->size <= 1)
        return cbq_train_step(net, b->opt, b->in, b->tgt, m, &cfg->loss, cfg->clip, loss, NULL, err);
    size_t begin, end;
    cbq_dist_block(cfg->dist, m, &begin, &end);
    cbq_train_shard shard = {.dist = cfg->dist, .n = end - begin, .n_global = m,
                             .allreduce_seconds = &res->allreduce_seconds};
    return cbq_train_step_shard(net, b->opt, b->in + begin * b->plane, b->tgt + begin * b->k, &shard,
                                &cfg->loss, cfg->clip, loss, NULL, err);
}

/* One epoch of training; *mean_loss over its slices. */
static int train_epoch(cbq_net *net, const cbq_dataset *ds, const size_t *train_idx, size_t n_train,
                       const cbq_trainer_cfg *cfg, trainer_buffers *b, size_t epoch, size_t *step,
                       size_t total_steps, double *mean_loss, double *lr, cbq_train_result *res,
                       cbq_error *err)
{
    cbq_rng rng;
    cbq_rng_stream(&rng, cfg->seed, epoch);
    memcpy(b->order, train_idx, n_train * sizeof *b->order);
    cbq_rng_shuffle_size(&rng, b->order, n_train);
    double sum = 0.0;
    *lr = cbq_optim_lr(b->opt);
    for (size_t at = 0; at < n_train; at += cfg->batch_size) {
        size_t m = n_train - at < cfg->batch_size ? n_train - at : cfg->batch_size;
        for (size_t j = 0; j < m; j++) {
            float *slice = b->in + j * b->plane;
            CBQ_TRY(load_sample(ds, b->order[at + j], slice, b->tgt + j * b->k, err));
            cbq_augment_sample(&cfg->augment, slice, dataset_channels(ds), b->scratch, ds->height,
                               ds->width, &rng);
        }
        if (cfg->cosine) {
            *lr = cbq_lr_cosine(*step, total_steps, cfg->warmup_steps, cfg->optim.lr, cfg->min_lr);
            cbq_optim_set_lr(b->opt, *lr);
        }
        double loss = 0.0;
        CBQ_TRY(train_step(net, cfg, b, m, &loss, res, err));
        if (!isfinite(loss))
            return CBQ_FAIL(err, CBQ_ERR_RANGE,
                            "training diverged: loss %g at epoch %zu, step %zu (lower the learning rate?)",
                            loss, epoch, *step + 1);
        sum += loss * (double)m;
        (*step)++;
    }
    *mean_loss = sum / (double)n_train;
    return CBQ_OK;
}

static int run_epochs(cbq_net *net, const cbq_dataset *ds, const size_t *train_idx, size_t n_train,
                      const size_t *val_idx, size_t n_val, const cbq_trainer_cfg *cfg, trainer_buffers *b,
                      cbq_train_result *res, cbq_error *err)
{
    size_t batches = (n_train + cfg->batch_size - 1) / cfg->batch_size, step = 0, stale = 0;
    size_t total_steps = batches * cfg->epochs;
    for (size_t e = 1; e <= cfg->epochs; e++) {
        double t0 = cbq_now(), lr = 0.0;
        cbq_epoch_log log = {.epoch = e, .val_loss = NAN};
        CBQ_TRY(train_epoch(net, ds, train_idx, n_train, cfg, b, e, &step, total_steps, &log.train_loss, &lr,
                            res, err));
        log.lr = lr;
        res->epochs_run = e;
        res->last_train_loss = log.train_loss;
        if (n_val) {
            CBQ_TRY(cbq_evaluate(net, ds, val_idx, n_val, cfg->batch_size, &cfg->loss, b->in, b->tgt,
                                 &log.val_loss, err));
            if (!isfinite(log.val_loss))
                return CBQ_FAIL(err, CBQ_ERR_RANGE, "validation loss %g at epoch %zu", log.val_loss, e);
            log.improved = res->best_epoch == 0 || log.val_loss < res->best_val_loss - cfg->min_delta;
            if (log.improved) {
                res->best_epoch = e;
                res->best_val_loss = log.val_loss;
                snapshot(net, b->best, 1);
                stale = 0;
            } else
                stale++;
        } else
            res->best_epoch = e;
        log.seconds = cbq_now() - t0;
        if (cfg->log)
            cfg->log(cfg->log_ctx, &log);
        if (n_val && cfg->patience && stale >= cfg->patience) {
            res->stopped_early = e < cfg->epochs;
            break;
        }
    }
    if (n_val)
        snapshot(net, b->best, 0);
    return CBQ_OK;
}

int cbq_train(cbq_net *net, const cbq_dataset *ds, const size_t *train_idx, size_t n_train,
              const size_t *val_idx, size_t n_val, const cbq_trainer_cfg *cfg, cbq_train_result *res,
              cbq_error *err)
{
    memset(res, 0, sizeof *res);
    res->best_val_loss = NAN;
    CBQ_TRY(check_setup(net, ds, train_idx, n_train, val_idx, n_val, cfg, err));
    trainer_buffers b;
    int rc = trainer_setup(&b, net, ds, n_train, cfg, err);
    if (rc == CBQ_OK)
        rc = cbq_net_set_dist(net, cfg->dist, err);
    if (rc == CBQ_OK)
        rc = run_epochs(net, ds, train_idx, n_train, val_idx, n_val, cfg, &b, res, err);
    cbq_net_set_dist(net, NULL, NULL);
    buffers_free(&b);
    cbq_net_set_training(net, 0);
    return rc;
}
