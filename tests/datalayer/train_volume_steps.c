/* train_volume_steps.c - trains a model directory with cbq_train on one
 * volume's samples as the model-input path builds them (input.channels,
 * slices, mean/std), so that train_channels_oracle.py can compare the
 * losses with PyTorch's on samples it builds itself.
 *
 *   train_volume_steps MODEL_DIR VOLUME TARGET.f32 EPOCHS LR LOSSES.f64
 *
 * Every axial slice of VOLUME is a sample; TARGET.f32 holds [slices,
 * n_outputs] raw little-endian float32. One batch of every sample per epoch
 * (so the shuffle cannot matter), MSE, Adam with PyTorch's defaults but lr,
 * constant learning rate, no augmentation, no validation, one thread;
 * LOSSES.f64 receives each epoch's (= step's) training loss, taken before
 * its update, little-endian float64. Test helper only: exits 1 with a
 * message on any problem.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cbctiq/model_file.h"
#include "cbctiq/model_input.h"
#include "cbctiq/net.h"
#include "cbctiq/trainer.h"

enum { MAX_SLICES = 64, MAX_EPOCHS = 64 };

typedef struct {
    double loss[MAX_EPOCHS];
    size_t n;
} loss_log;

static int die(const char *what, const cbq_error *err)
{
    fprintf(stderr, "train_volume_steps: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    exit(1);
}

static void record(void *ctx, const cbq_epoch_log *e)
{
    loss_log *log = ctx;
    if (log->n < MAX_EPOCHS)
        log->loss[log->n++] = e->train_loss;
}

int main(int argc, char **argv)
{
    if (argc != 7)
        die("usage: train_volume_steps MODEL_DIR VOLUME TARGET.f32 EPOCHS LR LOSSES.f64", NULL);
    size_t epochs = strtoul(argv[4], NULL, 10);
    if (epochs == 0 || epochs > MAX_EPOCHS)
        die("EPOCHS must be 1..64", NULL);
    cbq_error err = {0};
    cbq_net *net = NULL;
    if (cbq_model_load(argv[1], &net, MAX_SLICES, &err) != CBQ_OK)
        die("loading the model", &err);
    cbq_net_set_threads(net, 1);
    const cbq_model_spec *spec = cbq_net_spec(net);
    cbq_model_input in;
    cbq_model_input_options o = {0};
    if (cbq_model_input_load_path(&in, argv[2], &spec->input, &o, &err) != CBQ_OK)
        die("reading the volume", &err);
    if (in.n == 0 || in.n > MAX_SLICES)
        die("the volume needs 1..64 slices", NULL);
    size_t k = spec->n_outputs;
    float *tgt = malloc(in.n * k * sizeof *tgt);
    FILE *fp = fopen(argv[3], "rb");
    if (!tgt || !fp || fread(tgt, sizeof *tgt, in.n * k, fp) != in.n * k)
        die(argv[3], NULL);
    fclose(fp);
    size_t idx[MAX_SLICES];
    for (size_t i = 0; i < in.n; i++)
        idx[i] = i;
    cbq_dataset ds = {.n = in.n, .height = in.H, .width = in.W, .channels = in.channels, .n_outputs = k,
                      .slices = in.x, .targets = tgt};
    cbq_trainer_cfg cfg;
    cbq_trainer_defaults(&cfg);
    cfg.epochs = epochs;
    cfg.batch_size = in.n;
    cfg.patience = 0;
    cfg.cosine = 0;
    cfg.optim.lr = strtod(argv[5], NULL);
    loss_log log = {0};
    cfg.log = record;
    cfg.log_ctx = &log;
    cbq_train_result res;
    if (cbq_train(net, &ds, idx, in.n, NULL, 0, &cfg, &res, &err) != CBQ_OK)
        die("training", &err);
    fp = fopen(argv[6], "wb");
    if (!fp || fwrite(log.loss, sizeof *log.loss, log.n, fp) != log.n || fclose(fp) != 0)
        die(argv[6], NULL);
    free(tgt);
    cbq_model_input_free(&in);
    cbq_net_free(net);
    return 0;
}
