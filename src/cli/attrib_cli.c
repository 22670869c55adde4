/* attrib_cli.c - shared plumbing of the attribution subcommands: options,
 * maps -> NIfTI and PNG. */
#include "attrib_cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/nifti.h"
#include "cbctiq/plot.h"
#include "cbctiq/volume_io.h"
#include "cli.h"

int attrib_cli_option(const char *cmd, int c, const char *arg, cbq_attrib_options *opt,
                      size_t *batch)
{
    uint64_t v;
    switch (c) {
    case 1000:
        if (!cbq_cam_method_parse(arg, &opt->method)) {
            cli_usage_error(cmd, "--method expects one of %s; got '%s'", cbq_cam_method_list(), arg);
            return 0;
        }
        return 1;
    case 1001:
        if (strlen(arg) >= sizeof opt->layer) {
            cli_usage_error(cmd, "--layer: name too long");
            return 0;
        }
        snprintf(opt->layer, sizeof opt->layer, "%s", arg);
        return 1;
    case 1002:
        if (strcmp(arg, "after") && strcmp(arg, "before")) {
            cli_usage_error(cmd, "--relu expects after or before, got '%s'", arg);
            return 0;
        }
        opt->relu = strcmp(arg, "after") == 0;
        return 1;
    case 1003:
        if (!cbq_grid_parse(arg, &opt->grid)) {
            cli_usage_error(cmd, "--grid expects input or feature, got '%s'", arg);
            return 0;
        }
        return 1;
    case 1004:
        if (strcmp(arg, "pos") && strcmp(arg, "neg")) {
            cli_usage_error(cmd, "--sign expects pos or neg, got '%s'", arg);
            return 0;
        }
        opt->sign = strcmp(arg, "pos") == 0 ? 1 : -1;
        return 1;
    case 1005:
        if (!cbq_aggregate_parse(arg, &opt->aggregate)) {
            cli_usage_error(cmd, "--aggregate expects sum or mean, got '%s'", arg);
            return 0;
        }
        return 1;
    case 1006:
        if (!cli_parse_u64(cmd, "--ig-steps", arg, 1, 4096, &v))
            return 0;
        opt->ig_steps = (int)v;
        return 1;
    case 1007:
        if (!cbq_ig_rule_parse(arg, &opt->ig_rule)) {
            cli_usage_error(cmd, "--ig-rule expects trapezoid or right, got '%s'", arg);
            return 0;
        }
        return 1;
    case 1008:
        if (!cli_parse_u64(cmd, "--batch", arg, 1, 1024, &v))
            return 0;
        *batch = (size_t)v;
        return 1;
    default:
        cli_usage_error(cmd, "unknown option");
        return 0;
    }
}

int attrib_map_write(const cbq_model_input *in, const float *maps, const char *out, cbq_error *err)
{
    cbq_volume ms;
    CBQ_TRY(cbq_model_input_unmap_source(in, maps, &ms, err));
    int rc = cbq_nifti_write(out, &ms, CBQ_NIFTI_FLOAT32, err);
    cbq_volume_free(&ms);
    return rc;
}

int attrib_out_format_parse(const char *s, attrib_out_format *out)
{
    static const char *const names[] = {"nifti", "dicom", "dicom-sc"};
    for (int f = 0; f < 3; f++)
        if (strcmp(s, names[f]) == 0) {
            *out = (attrib_out_format)f;
            return 1;
        }
    return 0;
}

int attrib_dicom_open(cbq_dicom_grid **g, const cbq_model_input *in, const char *volume_path,
                      const char *template_path, cbq_error *err)
{
    if (!template_path && in->src.kind != CBQ_SOURCE_DICOM)
        return CBQ_FAIL(err, CBQ_ERR_ARG,
                        "%s: a NIfTI volume has no DICOM series to reference; a DICOM map of it "
                        "needs --dicom-template SERIES (a DICOM series on the same grid)",
                        volume_path);
    cbq_volume ct = {0};
    CBQ_TRY(cbq_volume_uncanonical(&ct, &in->canon, &in->xf, err));
    int rc = template_path ? cbq_dicom_grid_open(g, template_path, NULL, &ct, err)
                           : cbq_dicom_grid_open(g, volume_path, in->src.dicom.info.series_uid, &ct, err);
    cbq_volume_free(&ct);
    return rc;
}

static double largest(const float *v, size_t n)
{
    double top = 0.0;
    for (size_t i = 0; i < n; i++)
        top = v[i] > top ? v[i] : top;
    return top > 0.0 ? top : 1.0;
}

/* Every frame of the CT with the map over it, as cbq_montage_draw colours it. */
static int overlay_frames(const cbq_model_input *in, const cbq_volume *ms, const cbq_dicom_grid *g,
                          double map_max, unsigned char **rgb, cbq_error *err)
{
    cbq_volume ct = {0};
    CBQ_TRY(cbq_volume_uncanonical(&ct, &in->canon, &in->xf, err));
    size_t rows, cols, n = cbq_dicom_grid_frames(g, &rows, &cols);
    float *image = malloc(rows * cols * sizeof *image), *map = malloc(rows * cols * sizeof *map);
    int rc = image && map ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for the overlays");
    for (size_t f = 0; f < n && rc == CBQ_OK; f++) {
        cbq_dicom_grid_frame(g, &ct, f, image);
        cbq_dicom_grid_frame(g, ms, f, map);
        cbq_overlay_panel panel = {.image = image, .map = map, .width = cols, .height = rows};
        cbq_montage m = {.panels = &panel, .n_panels = 1, .window_lo = in->hu_min,
                         .window_hi = in->hu_max, .cmap = CBQ_CMAP_VIRIDIS, .map_lo = 0.0,
                         .map_hi = map_max};
        rgb[f] = malloc(rows * cols * 3);
        rc = rgb[f] ? cbq_overlay_rgb(&m, 0, rgb[f], err)
                    : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for the overlays");
    }
    free(image);
    free(map);
    cbq_volume_free(&ct);
    return rc;
}

static int write_secondary_capture(const cbq_model_input *in, const cbq_volume *ms,
                                   const cbq_dicom_grid *g, double map_max,
                                   const cbq_dicom_map_label *label, const char *dir, cbq_error *err)
{
    size_t rows, cols, n = cbq_dicom_grid_frames(g, &rows, &cols);
    if (map_max <= 0.0)
        map_max = largest(ms->data, cbq_volume_count(ms));
    unsigned char **rgb = calloc(n, sizeof *rgb);
    if (!rgb)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for the overlays");
    int rc = overlay_frames(in, ms, g, map_max, rgb, err);
    char rendering[512];
    snprintf(rendering, sizeof rendering,
             "CT in grey, window [%g, %g] HU; the map in viridis from 0 (transparent) to %.6g "
             "(map units), opacity 0.55, rising from 0 over the lowest tenth of the scale",
             in->hu_min, in->hu_max, map_max);
    cbq_dicom_map_label with_rendering = *label;
    with_rendering.rendering = rendering;
    if (rc == CBQ_OK)
        rc = cbq_dicom_write_secondary_capture(dir, g, (const unsigned char *const *)rgb,
                                               &with_rendering, err);
    for (size_t f = 0; f < n; f++)
        free(rgb[f]);
    free(rgb);
    return rc;
}

int attrib_dicom_write(const cbq_model_input *in, const float *maps, const cbq_dicom_grid *g,
                       attrib_out_format format, double map_max, const cbq_dicom_map_label *label,
                       const char *dir, cbq_error *err)
{
    cbq_volume ms = {0};
    CBQ_TRY(cbq_model_input_unmap_source(in, maps, &ms, err));
    int rc = format == ATTRIB_OUT_DICOM_SC
                 ? write_secondary_capture(in, &ms, g, map_max, label, dir, err)
                 : cbq_dicom_write_parametric_map(dir, g, &ms, label, err);
    cbq_volume_free(&ms);
    return rc;
}

int attrib_grid_map_write(const cbq_model_input *in, const float *maps, size_t gh, size_t gw,
                          const char *out, cbq_error *err)
{
    double sx = (double)in->canon.nx / (double)gw, sy = (double)in->canon.ny / (double)gh;
    double sp[3] = {in->canon.spacing[0] * sx, in->canon.spacing[1] * sy, in->canon.spacing[2]};
    cbq_volume g;
    CBQ_TRY(cbq_volume_alloc(&g, gw, gh, in->canon.nz, sp, 0, err));
    /* affine = canonical affine x (grid -> canonical voxel) */
    const double grid_to_vox[4][4] = {{sx, 0, 0, 0.5 * sx - 0.5}, {0, sy, 0, 0.5 * sy - 0.5},
                                      {0, 0, 1, 0}, {0, 0, 0, 1}};
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++) {
            double v = 0.0;
            for (int t = 0; t < 4; t++)
                v += in->canon.affine[r][t] * grid_to_vox[t][c];
            g.affine[r][c] = v;
        }
    memcpy(g.data, maps, in->canon.nz * gh * gw * sizeof *maps);
    int rc = cbq_nifti_write(out, &g, CBQ_NIFTI_FLOAT32, err);
    cbq_volume_free(&g);
    return rc;
}

/* Parses "3,10,42" (source slice indices) into canonical indices. */
static size_t parse_slice_list(const cbq_model_input *in, const char *list, size_t *ks, size_t cap,
                               cbq_error *err)
{
    size_t n = 0;
    if (!list) {
        size_t want = in->canon.nz < 5 ? in->canon.nz : 5;
        for (size_t i = 0; i < want; i++)
            ks[n++] = (in->canon.nz - 1) * (2 * i + 1) / (2 * want);
        return n;
    }
    const char *p = list;
    while (*p && n < cap) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || (size_t)v >= in->canon.nz || (*end && *end != ',')) {
            CBQ_FAIL(err, CBQ_ERR_ARG, "--slices: expected slice indices in [0, %zu) separated "
                     "by commas, got '%s'", in->canon.nz, list);
            return 0;
        }
        ks[n++] = cbq_model_input_source_slice(in, (size_t)v); /* the mapping is its own inverse */
        p = *end ? end + 1 : end;
    }
    return n;
}

int attrib_png_check_slices(const cbq_model_input *in, const char *list, cbq_error *err)
{
    size_t ks[64];
    if (list && parse_slice_list(in, list, ks, 64, err) == 0)
        return err->code;
    return CBQ_OK;
}

int attrib_png_write(const cbq_model_input *in, const float *maps, const char *dir, const char *list,
                     double map_max, const char *title, cbq_error *err)
{
    size_t ks[64];
    size_t n = parse_slice_list(in, list, ks, 64, err);
    if (n == 0)
        return list ? err->code : CBQ_OK;
    CBQ_TRY(cbq_mkdir_p(dir, err));
    if (map_max <= 0.0) {
        size_t count = in->canon.nz * in->H * in->W;
        for (size_t i = 0; i < count; i++)
            map_max = maps[i] > map_max ? maps[i] : map_max;
        if (map_max <= 0.0)
            map_max = 1.0;
    }
    cbq_volume mc;
    CBQ_TRY(cbq_model_input_unmap_canonical(in, maps, &mc, err));
    size_t nx = in->canon.nx, ny = in->canon.ny;
    int rc = CBQ_OK;
    for (size_t i = 0; i < n && rc == CBQ_OK; i++) {
        char panel_title[64], stem[64];
        size_t src_k = cbq_model_input_source_slice(in, ks[i]);
        snprintf(panel_title, sizeof panel_title, "slice %zu", src_k);
        snprintf(stem, sizeof stem, "slice_%04zu", src_k);
        cbq_overlay_panel panel = {.image = in->canon.data + ks[i] * nx * ny,
                                   .map = mc.data + ks[i] * nx * ny, .width = nx, .height = ny,
                                   .pixel_aspect = in->canon.spacing[1] / in->canon.spacing[0],
                                   .title = panel_title};
        cbq_montage m = {.title = title, .panels = &panel, .n_panels = 1, .window_lo = in->hu_min,
                         .window_hi = in->hu_max, .cmap = CBQ_CMAP_VIRIDIS, .map_lo = 0.0,
                         .map_hi = map_max, .map_label = "raw attribution (map units)"};
        cbq_figure *fig = NULL;
        rc = cbq_montage_draw(&fig, &m, err);
        if (rc == CBQ_OK) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s.png", dir, stem);
            rc = cbq_figure_write_png(fig, path, err);
        }
        cbq_figure_free(fig);
    }
    cbq_volume_free(&mc);
    return rc;
}
