/* predict.c - a volume's model input (model_input.h) through a network in
 * batches, for per-slice and volume-level (mean) predictions; and reading a
 * volume on the canonical grid for the report's figures. */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/study.h"

#include <stdlib.h>
#include <string.h>

#include "cbctiq/orient.h"
#include "cbctiq/volume_io.h"

int cbq_study_load_volume(const char *path, cbq_volume *vol, int *src_flip_k, cbq_error *err)
{
    memset(vol, 0, sizeof *vol);
    cbq_volume src;
    cbq_reorient xf;
    CBQ_TRY(cbq_volume_load(&src, NULL, path, NULL, err));
    int rc = cbq_volume_canonical(vol, &src, &xf, err);
    cbq_volume_free(&src);
    if (rc == CBQ_OK && src_flip_k)
        *src_flip_k = xf.flip[2];
    return rc;
}

void cbq_volume_pred_free(cbq_volume_pred *p)
{
    free(p->slice);
    free(p->pred);
    memset(p, 0, sizeof *p);
}

int cbq_predict_input(cbq_net *net, const cbq_model_input *in, size_t batch, cbq_volume_pred *out,
                      cbq_error *err)
{
    memset(out, 0, sizeof *out);
    const cbq_model_spec *spec = cbq_net_spec(net);
    size_t K = spec->n_outputs, n = in->n, plane = in->channels * in->H * in->W;
    CBQ_CHECK_ARG(err, K >= 1 && K <= 16, "model has %zu outputs (1..16 supported)", K);
    CBQ_CHECK_ARG(err, batch >= 1, "batch must be at least 1");
    CBQ_CHECK_ARG(err, n >= 1, "no slices to predict");
    CBQ_CHECK_ARG(err, in->H == (size_t)spec->input.height && in->W == (size_t)spec->input.width,
                  "slices are %zux%zu, the model takes %dx%d", in->H, in->W, spec->input.height,
                  spec->input.width);
    out->slice = malloc(n * sizeof *out->slice);
    out->pred = malloc(n * K * sizeof *out->pred);
    if (!out->slice || !out->pred) {
        cbq_volume_pred_free(out);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for %zu slices", n);
    }
    cbq_net_set_training(net, 0);
    int rc = CBQ_OK;
    for (size_t b0 = 0; b0 < n && rc == CBQ_OK; b0 += batch) {
        size_t nb = n - b0 < batch ? n - b0 : batch;
        const float *y = NULL;
        rc = cbq_net_forward(net, in->x + b0 * plane, nb, &y, err);
        if (rc == CBQ_OK)
            rc = cbq_net_check_outputs(net, y, nb, err);
        if (rc == CBQ_OK)
            memcpy(out->pred + b0 * K, y, nb * K * sizeof *y);
    }
    if (rc != CBQ_OK) {
        cbq_volume_pred_free(out);
        return rc;
    }
    memcpy(out->slice, in->ks, n * sizeof *in->ks);
    out->n_slices = n;
    out->n_outputs = K;
    for (size_t c = 0; c < K; c++) {
        double s = 0;
        for (size_t i = 0; i < n; i++)
            s += out->pred[i * K + c];
        out->mean[c] = s / (double)n;
    }
    return CBQ_OK;
}
