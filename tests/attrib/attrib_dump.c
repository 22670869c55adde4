/* attrib_dump.c - test helper for gradcam_oracle.py: loads a model
 * directory, runs one attribution method on raw float32 slices and writes
 * predictions, maps on both grids and the AE sums as raw float32 / text, for
 * PyTorch to check.
 *
 * usage: attrib_dump MODEL_DIR SLICES.f32 N METHOD RELU SIGN LAYER OUT_PREFIX
 *   SLICES.f32: N x H x W float32 (little-endian, H, W from model.json)
 *   LAYER: target layer name, or "-" for the model's
 * writes OUT_PREFIX.pred.f32 [N, n_out], .feature.f32 [n_out, N, h, w]
 * (pixel methods: none), .input.f32 [n_out, N, H, W], .ae.txt one line per
 * output: ae ae_feature ae_feature_pre ae_feature_post pred_part
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/attrib.h"
#include "cbctiq/model_file.h"

static int write_raw(const char *prefix, const char *ext, const float *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.%s", prefix, ext);
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(p, sizeof *p, n, fp) != n) {
        fprintf(stderr, "attrib_dump: cannot write %s\n", path);
        if (fp)
            fclose(fp);
        return 1;
    }
    return fclose(fp) != 0;
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: attrib_dump MODEL_DIR SLICES.f32 N METHOD RELU SIGN LAYER OUT_PREFIX\n");
        return 2;
    }
    size_t n = strtoul(argv[3], NULL, 10), batch = 4;
    cbq_error err = {0};
    cbq_net *net = NULL;
    if (cbq_model_load(argv[1], &net, batch, &err) != CBQ_OK) {
        fprintf(stderr, "attrib_dump: %s\n", err.msg);
        return 1;
    }
    cbq_attrib_options opt;
    cbq_attrib_options_default(&opt);
    if (!cbq_cam_method_parse(argv[4], &opt.method)) {
        fprintf(stderr, "attrib_dump: unknown method %s\n", argv[4]);
        return 2;
    }
    opt.relu = atoi(argv[5]);
    opt.sign = atoi(argv[6]);
    if (strcmp(argv[7], "-") != 0)
        snprintf(opt.layer, sizeof opt.layer, "%s", argv[7]);
    cbq_cam *cam = NULL;
    if (cbq_cam_create(&cam, net, batch, &opt, &err) != CBQ_OK) {
        fprintf(stderr, "attrib_dump: %s\n", err.msg);
        return 1;
    }
    size_t H, W, h, w, no = cbq_cam_n_outputs(cam);
    cbq_cam_input_shape(cam, &H, &W);
    cbq_cam_feature_shape(cam, &h, &w);
    float *x = malloc(n * H * W * sizeof *x);
    FILE *fp = fopen(argv[2], "rb");
    if (!x || !fp || fread(x, sizeof *x, n * H * W, fp) != n * H * W) {
        fprintf(stderr, "attrib_dump: cannot read %zu slices of %zux%zu from %s\n", n, H, W, argv[2]);
        return 1;
    }
    fclose(fp);
    float *pred = malloc(n * no * sizeof *pred);
    float *fmaps = malloc((no * n * h * w + 1) * sizeof *fmaps);
    float *imaps = malloc(no * n * H * W * sizeof *imaps);
    float *fptr[CBQ_MAX_OUTPUTS], *iptr[CBQ_MAX_OUTPUTS];
    for (size_t c = 0; c < no; c++) {
        fptr[c] = fmaps + c * n * h * w;
        iptr[c] = imaps + c * n * H * W;
    }
    cbq_ae ae[CBQ_MAX_OUTPUTS];
    if (cbq_attrib_volume(cam, x, n, NULL, ae, iptr, fptr, NULL, &err) != CBQ_OK) {
        fprintf(stderr, "attrib_dump: %s\n", err.msg);
        return 1;
    }
    /* predictions: batch by batch, as the volume pass saw them */
    for (size_t z0 = 0; z0 < n; z0 += batch) {
        size_t nb = n - z0 < batch ? n - z0 : batch;
        const float *out = NULL;
        if (cbq_net_forward(net, x + z0 * H * W, nb, &out, &err) != CBQ_OK)
            return 1;
        memcpy(pred + z0 * no, out, nb * no * sizeof *out);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s.ae.txt", argv[8]);
    FILE *txt = fopen(path, "w");
    if (!txt)
        return 1;
    for (size_t c = 0; c < no; c++) {
        fprintf(txt, "%.17g %.17g %.17g %.17g %.17g\n", ae[c].ae, ae[c].ae_feature,
                ae[c].ae_feature_pre, ae[c].ae_feature_post, ae[c].pred_part);
        cbq_ae_free(&ae[c]);
    }
    fclose(txt);
    int rc = write_raw(argv[8], "pred.f32", pred, n * no) ||
             write_raw(argv[8], "input.f32", imaps, no * n * H * W) ||
             (h * w != 0 && write_raw(argv[8], "feature.f32", fmaps, no * n * h * w));
    free(x);
    free(pred);
    free(fmaps);
    free(imaps);
    cbq_cam_free(cam);
    cbq_net_free(net);
    return rc;
}
