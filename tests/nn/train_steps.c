/* train_steps.c - trains a model directory for a few steps so that
 * resnet_preset_oracle.py can compare the losses with PyTorch's on the same
 * weights, data and optimiser.
 *
 *   train_steps MODEL_DIR IN.f32 TARGET.f32 STEPS BATCH LR THREADS LOSSES.f64 [OUT_DIR]
 *
 * IN.f32: STEPS x BATCH preprocessed slices [STEPS, BATCH, C, H, W], TARGET.f32
 * [STEPS, BATCH, n_outputs], raw little-endian float32. Each step is one
 * cbq_train_step (training mode, MSE loss, Adam with PyTorch's defaults but
 * lr, no clipping); LOSSES.f64 receives each step's batch loss before its
 * update, little-endian float64; OUT_DIR (optional) the trained model.
 * Test helper only: exits 1 with a message on any problem.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cbctiq/model_file.h"
#include "cbctiq/net.h"
#include "cbctiq/train.h"

#include "helper_io.h"

static int die(const char *what, const cbq_error *err)
{
    helper_die("train_steps", what, err);
}

static float *read_f32(const char *path, size_t count)
{
    return helper_read_f32("train_steps", path, count);
}

int main(int argc, char **argv)
{
    if (argc != 9 && argc != 10)
        die("usage: train_steps MODEL_DIR IN.f32 TARGET.f32 STEPS BATCH LR THREADS LOSSES.f64 [OUT_DIR]", NULL);
    size_t steps = strtoul(argv[4], NULL, 10), batch = strtoul(argv[5], NULL, 10);
    cbq_error err = {0};
    cbq_net *net = NULL;
    if (steps == 0 || batch == 0 || cbq_model_load(argv[1], &net, batch, &err) != CBQ_OK)
        die("loading the model", &err);
    cbq_net_set_threads(net, atoi(argv[7]));
    const cbq_model_spec *spec = cbq_net_spec(net);
    size_t sample = cbq_input_channels(&spec->input) * (size_t)spec->input.height * (size_t)spec->input.width;
    size_t k = spec->n_outputs;
    float *in = read_f32(argv[2], steps * batch * sample), *tgt = read_f32(argv[3], steps * batch * k);
    cbq_optim_cfg oc = cbq_optim_defaults(CBQ_OPTIM_ADAM);
    oc.lr = strtod(argv[6], NULL);
    cbq_optim *opt = NULL;
    if (cbq_optim_create(&opt, net, &oc, &err) != CBQ_OK)
        die("creating the optimiser", &err);
    cbq_loss_cfg lc = {CBQ_LOSS_MSE, 0};
    double *losses = calloc(steps, sizeof *losses);
    if (!losses)
        die("out of memory", NULL);
    for (size_t s = 0; s < steps; s++)
        if (cbq_train_step(net, opt, in + s * batch * sample, tgt + s * batch * k, batch, &lc, 0.0,
                           &losses[s], NULL, &err) != CBQ_OK)
            die("training step", &err);
    FILE *fp = fopen(argv[8], "wb");
    if (!fp || fwrite(losses, sizeof *losses, steps, fp) != steps || fclose(fp) != 0)
        die(argv[8], NULL);
    if (argc == 10 && cbq_model_save(argv[9], net, &err) != CBQ_OK)
        die("saving the model", &err);
    cbq_optim_free(opt);
    cbq_net_free(net);
    free(losses);
    free(in);
    free(tgt);
    return 0;
}
