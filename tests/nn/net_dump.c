/* net_dump.c - runs a whole model directory on given inputs so that
 * net_parity_oracle.py can compare it with the same network in PyTorch.
 *
 *   net_dump MODEL_DIR IN.f32 DOUT.f32 N MODE THREADS OUT.safetensors
 *
 * IN.f32: N preprocessed slices [N, 1, H, W], DOUT.f32: dLoss/d(output)
 * [N, n_outputs], both raw little-endian float32. MODE is eval or train.
 * Runs one forward, then a backward of DOUT to the input with parameter
 * gradients, and writes OUT.safetensors with
 *   output [N, K], input_grad [N, 1, H, W],
 *   target_act, target_grad [N, C, h, w]   (model.json's target_layer),
 *   grad.<tensor>   for every trainable tensor,
 *   state.<tensor>  every state_dict tensor after the forward (running
 *                   statistics and num_batches_tracked move in train mode).
 * Test helper only: exits 1 with a message on any problem.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/model_file.h"
#include "cbctiq/net.h"
#include "cbctiq/safetensors.h"

#include "helper_io.h"

static int die(const char *what, const cbq_error *err)
{
    helper_die("net_dump", what, err);
}

static float *read_f32(const char *path, size_t count)
{
    return helper_read_f32("net_dump", path, count);
}

int main(int argc, char **argv)
{
    if (argc != 8 && !(argc == 9 && strcmp(argv[8], "gemm") == 0))
        die("usage: net_dump MODEL_DIR IN.f32 DOUT.f32 N eval|train THREADS OUT.safetensors [gemm]",
            NULL);
    size_t n = strtoul(argv[4], NULL, 10);
    int train = strcmp(argv[5], "train") == 0;
    cbq_error err = {0};
    cbq_net *net = NULL;
    if (n == 0 || cbq_model_load(argv[1], &net, n, &err) != CBQ_OK)
        die("loading the model", &err);
    cbq_net_set_threads(net, atoi(argv[6]));
    if (argc == 9) /* im2col + GEMM for every convolution */
        cbq_net_set_conv_algorithm(net, CBQ_CONV_GEMM);
    const cbq_model_spec *spec = cbq_net_spec(net);
    size_t hw = (size_t)spec->input.height * (size_t)spec->input.width, k = spec->n_outputs;
    float *in = read_f32(argv[2], n * hw), *dout = read_f32(argv[3], n * k);

    cbq_net_set_training(net, train);
    const float *out = NULL;
    if (cbq_net_forward(net, in, n, &out, &err) != CBQ_OK)
        die("forward", &err);
    /* The target's gradient as Grad-CAM gets it (backward stops there), then
     * the whole backward for the input and parameter gradients. */
    size_t target = (size_t)cbq_model_spec_find(spec, spec->target_layer), ts[3];
    cbq_net_layer_shape(net, target, ts);
    size_t target_count = n * ts[0] * ts[1] * ts[2];
    float *target_grad = malloc(target_count * sizeof *target_grad);
    if (!target_grad || cbq_net_backward(net, dout, target, 0, &err) != CBQ_OK)
        die("backward to the target layer", &err);
    memcpy(target_grad, cbq_net_activation_grad(net, target), target_count * sizeof *target_grad);
    cbq_net_zero_grad(net);
    if (cbq_net_backward(net, dout, 0, 1, &err) != CBQ_OK)
        die("backward", &err);

    size_t nt = cbq_net_tensor_count(net);
    cbq_st_entry *e = calloc(4 + 2 * nt, sizeof *e);
    char (*names)[160] = calloc(2 * nt, sizeof *names);
    cbq_tensor_view *v = calloc(nt, sizeof *v);
    if (!e || !names || !v)
        die("out of memory", NULL);
    size_t s_out[2] = {n, k}, s_in[4] = {n, 1, (size_t)spec->input.height, (size_t)spec->input.width},
           s_t[4] = {n, ts[0], ts[1], ts[2]}, m = 0;
    e[m++] = (cbq_st_entry){"output", CBQ_ST_F32, 2, s_out, out};
    e[m++] = (cbq_st_entry){"input_grad", CBQ_ST_F32, 4, s_in, cbq_net_input_grad(net)};
    e[m++] = (cbq_st_entry){"target_act", CBQ_ST_F32, 4, s_t, cbq_net_activation(net, target)};
    e[m++] = (cbq_st_entry){"target_grad", CBQ_ST_F32, 4, s_t, target_grad};
    for (size_t i = 0; i < nt; i++) {
        cbq_net_tensor(net, i, &v[i]);
        cbq_st_dtype dt = v[i].dtype == CBQ_DTYPE_I64 ? CBQ_ST_I64 : CBQ_ST_F32;
        snprintf(names[2 * i], sizeof names[0], "state.%s", v[i].name);
        e[m++] = (cbq_st_entry){names[2 * i], dt, v[i].ndim, v[i].shape, v[i].data};
        if (v[i].trainable) {
            snprintf(names[2 * i + 1], sizeof names[0], "grad.%s", v[i].name);
            e[m++] = (cbq_st_entry){names[2 * i + 1], CBQ_ST_F32, v[i].ndim, v[i].shape, v[i].grad};
        }
    }
    if (cbq_safetensors_write(argv[7], e, m, NULL, 0, &err) != CBQ_OK)
        die("writing the results", &err);
    free(e);
    free(target_grad);
    free(names);
    free(v);
    free(in);
    free(dout);
    cbq_net_free(net);
    return 0;
}
