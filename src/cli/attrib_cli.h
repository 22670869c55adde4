/* attrib_cli.h - what the attribution subcommands (gradcam, ae, sanity)
 * share: their common options, and maps back onto the volume's own grid as
 * NIfTI and PNG. Volumes become model input through model_input.h. */
#ifndef CBCTIQ_CLI_ATTRIB_CLI_H
#define CBCTIQ_CLI_ATTRIB_CLI_H

#include <getopt.h>
#include <stddef.h>

#include "cbctiq/attrib.h"
#include "cbctiq/dicom_write.h"
#include "cbctiq/model_input.h"

/* getopt_long entries for the shared attribution options (values >= 1000). */
#define ATTRIB_CLI_OPTIONS                                    \
    {"method", required_argument, NULL, 1000},                \
    {"layer", required_argument, NULL, 1001},                 \
    {"relu", required_argument, NULL, 1002},                  \
    {"grid", required_argument, NULL, 1003},                  \
    {"sign", required_argument, NULL, 1004},                  \
    {"aggregate", required_argument, NULL, 1005},             \
    {"ig-steps", required_argument, NULL, 1006},              \
    {"ig-rule", required_argument, NULL, 1007},               \
    {"batch", required_argument, NULL, 1008}

/* Usage lines of those options, a string literal to splice into usage texts
 * (printed by cli_usage_print, which fills in {methods}). */
#define ATTRIB_CLI_OPTIONS_USAGE \
    "  --method NAME      {methods}\n" \
    "  --layer NAME       target layer (default: model.json target_layer)\n" \
    "  --relu after|before  ReLU on the map (after, default: Grad-CAM's clipped map)\n" \
    "                     or the signed map (before)\n" \
    "  --grid input|feature  grid of the selected AE (default input: model-input grid)\n" \
    "  --sign pos|neg     explain +y_c (default) or -y_c\n" \
    "  --aggregate sum|mean  selected AE: sum over slices (default) or mean per slice\n" \
    "  --ig-steps N       Integrated Gradients steps (default 32)\n" \
    "  --ig-rule trapezoid|right  quadrature of Integrated Gradients (default trapezoid)\n" \
    "  --batch N          slices per network batch (default 16)\n"

/* Handles option `c` (>= 1000) into opt / *batch; returns 1 when handled, 0
 * after printing a usage error for a bad value. */
int attrib_cli_option(const char *cmd, int c, const char *arg, cbq_attrib_options *opt,
                      size_t *batch);

/* Writes maps [nz, H, W] (model-input grid; `in` holds every slice) as a float32 NIfTI on the
 * volume's source grid with its exact geometry (atomically). */
int attrib_map_write(const cbq_model_input *in, const float *maps, const char *out, cbq_error *err);

/* Writes maps [nz, gh, gw] on a slice grid (the model input's, or the
 * target layer's) as a float32 NIfTI whose affine places each grid pixel
 * where it sits in the CT: grid pixel (u, v) of slice k has its centre at
 * canonical voxel ((u + 0.5) nx/gw - 0.5, (v + 0.5) ny/gh - 0.5, k), the
 * half-pixel rule of the resampling (atomically). */
int attrib_grid_map_write(const cbq_model_input *in, const float *maps, size_t gh, size_t gw,
                          const char *out, cbq_error *err);

/* --format of gradcam's map: NIfTI file, DICOM Parametric Map folder, or
 * DICOM Secondary Capture folder (the map over the CT in colour). */
typedef enum { ATTRIB_OUT_NIFTI = 0, ATTRIB_OUT_DICOM, ATTRIB_OUT_DICOM_SC } attrib_out_format;

/* "nifti" / "dicom" / "dicom-sc"; 0 when unknown. */
int attrib_out_format_parse(const char *s, attrib_out_format *out);

/* The DICOM series a DICOM map of `in` will reference, matched to the
 * volume's source grid: `template_path` when given, else the volume's own
 * series (a NIfTI volume without a template is refused, naming the option).
 * Called before any map is computed, so a bad template costs nothing. */
int attrib_dicom_open(cbq_dicom_grid **g, const cbq_model_input *in, const char *volume_path,
                      const char *template_path, cbq_error *err);

/* Writes maps [nz, H, W] (model-input grid, every slice) into folder `dir`
 * as a Parametric Map or, for ATTRIB_OUT_DICOM_SC, as the CT with the map
 * blended over it (the window of the model input, viridis on [0, map_max];
 * map_max 0: the volume's largest value), atomically. */
int attrib_dicom_write(const cbq_model_input *in, const float *maps, const cbq_dicom_grid *g,
                       attrib_out_format format, double map_max, const cbq_dicom_map_label *label,
                       const char *dir, cbq_error *err);

/* Writes DIR/slice_KKKK.png (K: source slice index) for the slices in
 * `list` ("3,10,42"; NULL: 5 evenly spaced): the CT slice with the map
 * blended over it on a colour scale [0, map_max] in map units (map_max 0:
 * the volume's largest map value, the same for every slice). */
int attrib_png_write(const cbq_model_input *in, const float *maps, const char *dir, const char *list,
                     double map_max, const char *title, cbq_error *err);
/* Checks `list` as attrib_png_write will read it, so that a bad --slices
 * fails before any output is written. */
int attrib_png_check_slices(const cbq_model_input *in, const char *list, cbq_error *err);

#endif
