/* predict.c - volumes through a model: reading a volume in the canonical
 * orientation, choosing its axial slices, and streaming them in batches
 * through the network for per-slice and volume-level (mean) predictions. */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/study.h"

#include <stdlib.h>
#include <string.h>

#include "cbctiq/orient.h"
#include "cbctiq/slices.h"
#include "cbctiq/volume_io.h"

int cbq_study_load_volume_xf(const char *path, cbq_volume *vol, cbq_reorient *xf, cbq_error *err)
{
    memset(vol, 0, sizeof *vol);
    cbq_volume src;
    CBQ_TRY(cbq_volume_load(&src, NULL, path, NULL, err));
    int rc = cbq_volume_canonical(vol, &src, xf, err);
    cbq_volume_free(&src);
    return rc;
}

int cbq_study_load_volume(const char *path, cbq_volume *vol, int *src_flip_k, cbq_error *err)
{
    cbq_reorient xf;
    CBQ_TRY(cbq_study_load_volume_xf(path, vol, &xf, err));
    if (src_flip_k)
        *src_flip_k = xf.flip[2];
    return CBQ_OK;
}

int cbq_study_select_slices(const cbq_volume *vol, const cbq_volume *mask, int structures_only,
                            size_t **ks, size_t *n, cbq_error *err)
{
    *ks = malloc((vol->nz ? vol->nz : 1) * sizeof **ks);
    *n = 0;
    if (!*ks)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory choosing slices");
    if (structures_only && mask) {
        if (mask->nx != vol->nx || mask->ny != vol->ny || mask->nz != vol->nz) {
            free(*ks);
            *ks = NULL;
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "mask grid %zux%zux%zu differs from the volume's %zux%zux%zu",
                            mask->nx, mask->ny, mask->nz, vol->nx, vol->ny, vol->nz);
        }
        *n = cbq_slices_nonempty(mask, *ks);
        return CBQ_OK;
    }
    for (size_t k = 0; k < vol->nz; k++)
        (*ks)[k] = k;
    *n = vol->nz;
    return CBQ_OK;
}

void cbq_volume_pred_free(cbq_volume_pred *p)
{
    free(p->slice);
    free(p->pred);
    memset(p, 0, sizeof *p);
}

int cbq_predict_volume(cbq_net *net, const cbq_volume *vol, const size_t *ks, size_t n,
                       size_t batch, cbq_volume_pred *out, cbq_error *err)
{
    memset(out, 0, sizeof *out);
    const cbq_model_spec *spec = cbq_net_spec(net);
    size_t K = spec->n_outputs, H = (size_t)spec->input.height, W = (size_t)spec->input.width;
    CBQ_CHECK_ARG(err, K >= 1 && K <= 16, "model has %zu outputs (1..16 supported)", K);
    CBQ_CHECK_ARG(err, batch >= 1, "batch must be at least 1");
    CBQ_CHECK_ARG(err, n >= 1, "no slices to predict");
    cbq_slice_spec ss = {.height = H, .width = W, .hu_min = spec->input.hu_min,
                         .hu_max = spec->input.hu_max};
    cbq_slicer slicer;
    CBQ_TRY(cbq_slicer_init(&slicer, vol->nx, vol->ny, &ss, err));
    size_t plane = H * W;
    float *x = malloc(batch * plane * sizeof *x);
    out->slice = malloc(n * sizeof *out->slice);
    out->pred = malloc(n * K * sizeof *out->pred);
    int rc = CBQ_OK;
    if (!x || !out->slice || !out->pred)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for %zu slices", n);
    cbq_net_set_training(net, 0);
    for (size_t b0 = 0; b0 < n && rc == CBQ_OK; b0 += batch) {
        size_t nb = n - b0 < batch ? n - b0 : batch;
        const float *y = NULL;
        rc = cbq_slicer_fill(&slicer, vol, ks + b0, nb, x, err);
        if (rc == CBQ_OK)
            rc = cbq_net_forward(net, x, nb, &y, err);
        if (rc == CBQ_OK)
            rc = cbq_net_check_outputs(net, y, nb, err);
        if (rc == CBQ_OK)
            memcpy(out->pred + b0 * K, y, nb * K * sizeof *y);
    }
    free(x);
    cbq_slicer_free(&slicer);
    if (rc != CBQ_OK) {
        cbq_volume_pred_free(out);
        return rc;
    }
    memcpy(out->slice, ks, n * sizeof *ks);
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
