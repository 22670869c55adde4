/* report_viewer.c - the data of the report's interactive map viewer: per
 * category and test volume (report.viewer = all; with picks, the default,
 * only the category's highest-, median- and lowest-AE volumes), every axial
 * slice of the CBCT with the category's map and structure, and the
 * volume's AE profile along z. The
 * slices are downsampled (box means) to at most REPORT_VIEWER_MAX_SIDE
 * pixels a side, quantised to 8 bits and stored as PNG data URIs in a JSON
 * block of the page, so the report stays one file and the browser decodes
 * only the slices it shows. The page's script (report_viewer.js, embedded
 * at build time) draws them; this file computes nothing it shows: it reads
 * what the map figures read (the cohort's volumes and structures, the
 * attribution stage's maps and profiles.csv).
 *
 * The JSON (docs/report.md, "The interactive viewer"):
 *   {"ct": {"lo", "hi"}           HU of CT byte 0 and 255
 *    "window": [lo, hi]           the initial CT window (train.hu_min/max)
 *    "alpha", "ramp", "viridis"   overlay opacity, its ramp, 256 RGB hex
 *    "method", "has_maps",
 *    "volumes": [{"id", "w", "h", "nz", "factor", "aspect", "z": [mm],
 *                 "ct": [uri per slice]}],
 *    "categories": [{"name", "lo", "hi", "entries": [{"volume", "ae",
 *                 "consensus", "role", "lo", "hi", "structure",
 *                 "slices": [uri or null per slice], "profile": [[k, ae]]}]}]}
 * A map slice is an RGB PNG: red = the map quantised over its volume's
 * [lo, hi], green = 255 inside the structure; null when both are empty. */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include "study/report_viewer.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/colormap.h"
#include "cbctiq/model_input.h"
#include "cbctiq/png.h"
#include "study/report_figures.h"
#include "report_viewer_js.h" /* VIEWER_JS: report_viewer.js, generated at build time */

/* The stored CT range: wide enough to move the window over air, soft
 * tissue and bone (about 12 HU per step). */
#define CT_LO_HU -1000.0
#define CT_HI_HU 2000.0

/* A text written in memory (open_memstream). */
typedef struct {
    FILE *fp;
    char *text;
    size_t len;
} mem_text;

static int mem_open(mem_text *m, cbq_error *err)
{
    m->text = NULL;
    m->len = 0;
    m->fp = open_memstream(&m->text, &m->len);
    if (!m->fp)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "report viewer: out of memory");
    return CBQ_OK;
}

/* Ends writing; m->text then holds the text (NUL-terminated). */
static int mem_close(mem_text *m, cbq_error *err)
{
    int failed = !m->fp || ferror(m->fp);
    if (m->fp && fclose(m->fp) != 0)
        failed = 1;
    m->fp = NULL;
    if (failed || !m->text)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "report viewer: out of memory");
    return CBQ_OK;
}

static void mem_free(mem_text *m)
{
    if (m->fp)
        fclose(m->fp);
    free(m->text);
    memset(m, 0, sizeof *m);
}

/* A JSON string that is also safe inside an HTML <script> element: '<',
 * '>' and '&' as \u escapes, so no data can close the element. */
static void json_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(fp, "\\%c", *p);
        else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&')
            fprintf(fp, "\\u%04x", *p);
        else
            fputc(*p, fp);
    }
    fputc('"', fp);
}

/* JSON has no NaN or infinity: null. */
static void json_number(FILE *fp, double v)
{
    if (isfinite(v))
        fprintf(fp, "%.9g", v);
    else
        fputs("null", fp);
}

/* The image as a quoted PNG data URI. */
static int png_data_uri(FILE *out, const uint8_t *pixels, size_t width, size_t height,
                        int channels, cbq_error *err)
{
    mem_text png;
    CBQ_TRY(mem_open(&png, err));
    if (!cbq_png_write_stream(png.fp, pixels, width, height, channels)) {
        mem_free(&png);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "report viewer: cannot encode a %zux%zu PNG", width,
                        height);
    }
    int rc = mem_close(&png, err);
    char *b64 = rc == CBQ_OK ? cbq_base64_encode((const unsigned char *)png.text, png.len) : NULL;
    if (rc == CBQ_OK && !b64)
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "report viewer: out of memory");
    if (rc == CBQ_OK)
        fprintf(out, "\"data:image/png;base64,%s\"", b64);
    free(b64);
    mem_free(&png);
    return rc;
}

/* The downsampled in-plane grid: blocks of factor x factor voxels (the
 * last row and column of blocks may be cut by the volume's edge). */
typedef struct {
    size_t factor, w, h;
} viewer_grid;

static viewer_grid grid_of(const cbq_volume *v)
{
    size_t side = v->nx > v->ny ? v->nx : v->ny;
    size_t f = (side + REPORT_VIEWER_MAX_SIDE - 1) / REPORT_VIEWER_MAX_SIDE;
    f = f ? f : 1;
    return (viewer_grid){.factor = f, .w = (v->nx + f - 1) / f, .h = (v->ny + f - 1) / f};
}

/* Mean of each block of axial slice k of `vol` (nx x ny x nz floats) into
 * out[g.h * g.w]. */
static void block_means(const float *vol, size_t nx, size_t ny, size_t k, viewer_grid g,
                        float *out)
{
    const float *plane = vol + k * nx * ny;
    for (size_t by = 0; by < g.h; by++)
        for (size_t bx = 0; bx < g.w; bx++) {
            double sum = 0.0;
            size_t n = 0;
            for (size_t y = by * g.factor; y < (by + 1) * g.factor && y < ny; y++)
                for (size_t x = bx * g.factor; x < (bx + 1) * g.factor && x < nx; x++, n++)
                    sum += plane[y * nx + x];
            out[by * g.w + bx] = (float)(sum / (double)n);
        }
}

/* The byte of v on the scale [lo, hi] (0 below, 255 above; 0 when lo = hi). */
static uint8_t quantise(double v, double lo, double hi)
{
    if (!(hi > lo) || !(v > lo))
        return 0;
    double t = (v - lo) / (hi - lo);
    return (uint8_t)lround(255.0 * (t < 1.0 ? t : 1.0));
}

/* Scratch for one slice: block means and the pixels of one PNG. */
typedef struct {
    float *mean, *mask_mean;
    uint8_t *pix;
} slice_scratch;

static int scratch_alloc(slice_scratch *s, viewer_grid g, cbq_error *err)
{
    size_t n = g.w * g.h;
    s->mean = malloc(n * sizeof *s->mean);
    s->mask_mean = malloc(n * sizeof *s->mask_mean);
    s->pix = malloc(3 * n);
    if (!s->mean || !s->mask_mean || !s->pix)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "report viewer: out of memory");
    return CBQ_OK;
}

static void scratch_free(slice_scratch *s)
{
    free(s->mean);
    free(s->mask_mean);
    free(s->pix);
    memset(s, 0, sizeof *s);
}

/* One volume's record: its grid, slice positions and CT slices. */
static int write_volume(FILE *fp, const char *id, const cbq_volume *canon, viewer_grid g,
                        slice_scratch *s, cbq_error *err)
{
    fputs("{\"id\":", fp);
    json_string(fp, id);
    fprintf(fp, ",\"w\":%zu,\"h\":%zu,\"nz\":%zu,\"factor\":%zu,\"aspect\":", g.w, g.h, canon->nz,
            g.factor);
    json_number(fp, canon->spacing[1] / canon->spacing[0]);
    fputs(",\"z\":[", fp);
    for (size_t k = 0; k < canon->nz; k++) {
        fputs(k ? "," : "", fp);
        json_number(fp, study_slice_z_mm(canon, k));
    }
    fputs("],\"ct\":[", fp);
    for (size_t k = 0; k < canon->nz; k++) {
        block_means(canon->data, canon->nx, canon->ny, k, g, s->mean);
        for (size_t i = 0; i < g.w * g.h; i++)
            s->pix[i] = quantise(s->mean[i], CT_LO_HU, CT_HI_HU);
        fputs(k ? "," : "", fp);
        CBQ_TRY(png_data_uri(fp, s->pix, g.w, g.h, 1, err));
    }
    fputs("]}", fp);
    return CBQ_OK;
}

/* Finite min and max of a volume (0, 0 when none). */
static void value_range(const cbq_volume *v, double *lo, double *hi)
{
    size_t n = v->nx * v->ny * v->nz;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v->data[i])) {
            *lo = v->data[i] < *lo ? v->data[i] : *lo;
            *hi = v->data[i] > *hi ? v->data[i] : *hi;
        }
    if (*lo > *hi)
        *lo = *hi = 0.0;
}

/* What one category's records are built from. */
typedef struct {
    const study_ctx *ctx;
    const report_profiles *prof;
    size_t c_slice;              /* profiles.csv's slice column */
    mem_text entries[STUDY_MAX_CATEGORIES];
    size_t n_entries[STUDY_MAX_CATEGORIES];
    double lo[STUDY_MAX_CATEGORIES], hi[STUDY_MAX_CATEGORIES]; /* over the category's maps */
} viewer_data;

/* The volume's AE per slice in category `cat`, [[k, ae], ...]. */
static int write_profile(FILE *fp, const viewer_data *vd, const char *id, const char *cat,
                         cbq_error *err)
{
    const report_profiles *p = vd->prof;
    int first = 1;
    fputc('[', fp);
    for (size_t i = 0; i < p->t.n_rows; i++) {
        if (strcmp(cbq_csv_cell(&p->t, i, p->c_category), cat) != 0 ||
            strcmp(cbq_csv_cell(&p->t, i, p->c_volume), id) != 0)
            continue;
        double k, ae;
        CBQ_TRY(cbq_csv_get_double(&p->t, i, vd->c_slice, &k, err));
        CBQ_TRY(cbq_csv_get_double(&p->t, i, p->c_ae, &ae, err));
        fprintf(fp, "%s[%.0f,", first ? "" : ",", k);
        json_number(fp, ae);
        fputc(']', fp);
        first = 0;
    }
    fputc(']', fp);
    return CBQ_OK;
}

/* The map (NULL: none) and structure (NULL: none) slices, quantised over
 * the map's [lo, hi]. */
static int write_map_slices(FILE *fp, const cbq_volume *canon, const cbq_volume *map,
                            const uint8_t *structure, double lo, double hi, viewer_grid g,
                            slice_scratch *s, cbq_error *err)
{
    size_t n = g.w * g.h, plane = canon->nx * canon->ny;
    float *mask_f = structure ? malloc(plane * canon->nz * sizeof *mask_f) : NULL;
    if (structure && !mask_f)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "report viewer: out of memory");
    for (size_t i = 0; mask_f && i < plane * canon->nz; i++)
        mask_f[i] = structure[i] ? 1.0f : 0.0f;
    int rc = CBQ_OK;
    fputc('[', fp);
    for (size_t k = 0; k < canon->nz && rc == CBQ_OK; k++) {
        int any = 0;
        if (map)
            block_means(map->data, canon->nx, canon->ny, k, g, s->mean);
        if (mask_f)
            block_means(mask_f, canon->nx, canon->ny, k, g, s->mask_mean);
        for (size_t i = 0; i < n; i++) {
            uint8_t *px = s->pix + 3 * i;
            px[0] = map ? quantise(s->mean[i], lo, hi) : 0;
            px[1] = mask_f && s->mask_mean[i] >= 0.5f ? 255 : 0; /* the block's majority */
            px[2] = 0;
            any |= px[0] | px[1];
        }
        fputs(k ? "," : "", fp);
        if (any)
            rc = png_data_uri(fp, s->pix, g.w, g.h, 3, err);
        else
            fputs("null", fp);
    }
    fputc(']', fp);
    free(mask_f);
    return rc;
}

/* The record of volume v (index in the volumes list) in category k, row
 * `row` of its ae_category. */
static int write_entry(viewer_data *vd, const ae_table *t, size_t k, size_t row, size_t v,
                       const char *role, const cbq_model_input *in, viewer_grid g,
                       slice_scratch *s, cbq_error *err)
{
    const study_ctx *ctx = vd->ctx;
    const ae_category *ac = &t->cat[k];
    const char *id = ac->volumes[row];
    cbq_volume map = {0};
    double lo = 0.0, hi = 0.0;
    if (ctx->cfg->attrib.save_maps) {
        CBQ_TRY(report_load_map(ctx, id, k, &in->canon, &map, err));
        value_range(&map, &lo, &hi);
        vd->lo[k] = vd->n_entries[k] && vd->lo[k] < lo ? vd->lo[k] : lo;
        vd->hi[k] = vd->n_entries[k] && vd->hi[k] > hi ? vd->hi[k] : hi;
    }
    const uint8_t *structure = cbq_model_input_structure(in, ctx->categories[k]);
    FILE *fp = vd->entries[k].fp;
    fprintf(fp, "%s{\"volume\":%zu,\"ae\":", vd->n_entries[k] ? "," : "", v);
    json_number(fp, ac->ae[row]);
    fputs(",\"consensus\":", fp);
    json_number(fp, ac->consensus[row]);
    fputs(",\"role\":", fp);
    if (role)
        json_string(fp, role);
    else
        fputs("null", fp);
    fputs(",\"lo\":", fp);
    json_number(fp, lo);
    fputs(",\"hi\":", fp);
    json_number(fp, hi);
    fprintf(fp, ",\"structure\":%s,\"slices\":", structure ? "true" : "false");
    int rc = write_map_slices(fp, &in->canon, map.data ? &map : NULL, structure, lo, hi, g, s, err);
    cbq_volume_free(&map);
    fputs(",\"profile\":", fp);
    if (rc == CBQ_OK)
        rc = write_profile(fp, vd, id, ctx->categories[k], err);
    fputc('}', fp);
    vd->n_entries[k]++;
    return rc;
}

/* Row of volume `id` in category k, or -1 when it has none. */
static long category_row(const ae_category *ac, const char *id)
{
    for (size_t i = 0; i < ac->n; i++)
        if (strcmp(ac->volumes[i], id) == 0)
            return (long)i;
    return -1;
}

/* "highest", "median", "lowest" or NULL for row `row` of category k. */
static const char *pick_role(const ae_category *ac, size_t row)
{
    static const char *const ROLE[REPORT_N_PICKS] = {"highest", "median", "lowest"};
    size_t rows[REPORT_N_PICKS], n = report_pick_rows(ac, rows);
    for (size_t p = 0; p < n; p++)
        if (rows[p] == row)
            return ROLE[n == REPORT_N_PICKS ? p : (p == 0 ? 0 : 2)];
    return NULL;
}

/* Volume sv (the n_volumes-th written) and its records in every category
 * it has an AE in (with report.viewer = picks: only those where it is one
 * of the category's picks); *written is 0 when it has none. */
static int add_volume(viewer_data *vd, const ae_table *t, const cbq_cohort *files,
                      const cbq_cohort_volume *sv, size_t n_volumes, FILE *volumes, int *written,
                      cbq_error *err)
{
    int picks_only = strcmp(vd->ctx->cfg->report.viewer, "picks") == 0;
    long rows[STUDY_MAX_CATEGORIES];
    int any = 0;
    for (size_t k = 0; k < t->n_categories; k++) {
        rows[k] = category_row(&t->cat[k], sv->id);
        if (picks_only && rows[k] >= 0 && !pick_role(&t->cat[k], (size_t)rows[k]))
            rows[k] = -1;
        any |= rows[k] >= 0;
    }
    *written = any;
    if (!any)
        return CBQ_OK;
    cbq_model_input in;
    cbq_model_input_options o = {.with_structures = 1};
    CBQ_TRY(cbq_model_input_load(&in, sv, files, NULL, &o, err));
    viewer_grid g = grid_of(&in.canon);
    slice_scratch s = {0};
    int rc = scratch_alloc(&s, g, err);
    if (rc == CBQ_OK) {
        fputs(n_volumes ? "," : "", volumes);
        rc = write_volume(volumes, sv->id, &in.canon, g, &s, err);
    }
    for (size_t k = 0; k < t->n_categories && rc == CBQ_OK; k++)
        if (rows[k] >= 0)
            rc = write_entry(vd, t, k, (size_t)rows[k], n_volumes, pick_role(&t->cat[k], (size_t)rows[k]),
                             &in, g, &s, err);
    scratch_free(&s);
    cbq_model_input_free(&in);
    return rc;
}

/* Everything but the volumes and the category records. */
static int write_header(FILE *fp, const study_ctx *ctx, cbq_error *err)
{
    cbq_colormap cm;
    CBQ_TRY(cbq_colormap_build(&cm, CBQ_CMAP_VIRIDIS, err));
    fprintf(fp, "{\"ct\":{\"lo\":%g,\"hi\":%g},\"window\":[", CT_LO_HU, CT_HI_HU);
    json_number(fp, ctx->cfg->train.hu_min);
    fputc(',', fp);
    json_number(fp, ctx->cfg->train.hu_max);
    /* the map figures' opacity and ramp (docs/report.md, heat-map overlays) */
    fputs("],\"alpha\":0.55,\"ramp\":0.1,\"viridis\":\"", fp);
    for (int i = 0; i < 256; i++)
        fprintf(fp, "%02x%02x%02x", cm.rgb[i][0], cm.rgb[i][1], cm.rgb[i][2]);
    fputs("\",\"method\":", fp);
    json_string(fp, ctx->cfg->attrib.method);
    fprintf(fp, ",\"has_maps\":%s", ctx->cfg->attrib.save_maps ? "true" : "false");
    return CBQ_OK;
}

/* The whole JSON into out (open), from the records gathered in vd. */
static int write_json(FILE *out, viewer_data *vd, const char *volumes, cbq_error *err)
{
    const study_ctx *ctx = vd->ctx;
    CBQ_TRY(write_header(out, ctx, err));
    fprintf(out, ",\"volumes\":[%s],\"categories\":[", volumes);
    for (size_t k = 0; k < ctx->n_categories; k++) {
        CBQ_TRY(mem_close(&vd->entries[k], err));
        fputs("{\"name\":", out);
        json_string(out, ctx->categories[k]);
        fputs(",\"lo\":", out);
        json_number(out, vd->lo[k]);
        fputs(",\"hi\":", out);
        json_number(out, vd->hi[k]);
        fprintf(out, ",\"entries\":[%s]}%s", vd->entries[k].text,
                k + 1 < ctx->n_categories ? "," : "");
    }
    fputs("]}", out);
    return CBQ_OK;
}

/* The viewer's data as JSON (caller frees *json). */
static int viewer_json(const study_ctx *ctx, const ae_table *t, char **json, cbq_error *err)
{
    *json = NULL;
    viewer_data vd = {.ctx = ctx};
    cbq_cohort files;
    CBQ_TRY(study_read_cohort_files(ctx, STUDY_READS_VOLUMES | STUDY_READS_STRUCTURES, &files, err));
    report_profiles prof;
    int rc = report_profiles_read(ctx, &prof, err);
    if (rc != CBQ_OK) {
        cbq_cohort_free(&files);
        return rc;
    }
    vd.prof = &prof;
    mem_text volumes = {0}, out = {0};
    rc = cbq_csv_require_col(&prof.t, "slice", &vd.c_slice, err);
    if (rc == CBQ_OK)
        rc = mem_open(&volumes, err);
    for (size_t k = 0; k < ctx->n_categories && rc == CBQ_OK; k++)
        rc = mem_open(&vd.entries[k], err);
    size_t n_volumes = 0;
    for (size_t i = 0; i < files.n && rc == CBQ_OK; i++) {
        int written = 0;
        rc = add_volume(&vd, t, &files, &files.v[i], n_volumes, volumes.fp, &written, err);
        n_volumes += (size_t)written;
    }
    if (rc == CBQ_OK)
        rc = mem_close(&volumes, err);
    if (rc == CBQ_OK)
        rc = mem_open(&out, err);
    if (rc == CBQ_OK)
        rc = write_json(out.fp, &vd, volumes.text, err);
    if (rc == CBQ_OK)
        rc = mem_close(&out, err);
    if (rc == CBQ_OK) {
        *json = out.text;
        out.text = NULL;
    }
    mem_free(&out);
    mem_free(&volumes);
    for (size_t k = 0; k < ctx->n_categories; k++)
        mem_free(&vd.entries[k]);
    report_profiles_free(&prof);
    cbq_cohort_free(&files);
    return rc;
}

static const char VIEWER_TEXT[] =
    "%s, slice by slice: choose a category and a volume (the highest, median and lowest AE "
    "of the category, those of the figures above, are one click away), scroll the axial "
    "slices with the slider or the mouse wheel over the image, set the map's "
    "opacity and the CT window, and show or hide the structure's outline. The AE profile "
    "beside the image follows the slider; click it to jump to a slice. Slices are downsampled "
    "to at most %d pixels a side (8 bits: the CT from %g to %g HU, the map over each "
    "volume's range), one colour scale per category in raw map units; axial view, anterior "
    "up, patient right on the left.";

int report_viewer_section(cbq_report *r, const study_ctx *ctx, const ae_table *t, cbq_error *err)
{
    /* The script goes into the page as it is: it must not end its element. */
    if (strstr(VIEWER_JS, "</script") || strstr(VIEWER_JS, "<!--"))
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "report_viewer.js holds '</script' or '<!--'");
    const char *which = ctx->cfg->report.viewer;
    if (strcmp(which, "off") == 0)
        return CBQ_OK;
    char text[1200];
    snprintf(text, sizeof text, VIEWER_TEXT,
             strcmp(which, "all") == 0
                 ? "Every test volume"
                 : "The volumes of the figures above (report.viewer = all shows every test volume)",
             REPORT_VIEWER_MAX_SIDE, CT_LO_HU, CT_HI_HU);
    CBQ_TRY(cbq_report_subsection(r, "Interactive viewer", err));
    CBQ_TRY(cbq_report_paragraph(r, text, err));
    char *json = NULL;
    CBQ_TRY(viewer_json(ctx, t, &json, err));
    mem_text page;
    int rc = mem_open(&page, err);
    if (rc == CBQ_OK) {
        fputs("<div class=\"cbq-viewer\" id=\"cbq-viewer\"><noscript><p>The viewer needs "
              "JavaScript; the figures above show the same maps.</p></noscript></div>\n"
              "<script type=\"application/json\" id=\"cbq-viewer-data\">", page.fp);
        fputs(json, page.fp);
        fprintf(page.fp, "</script>\n<script>\n%s</script>\n", VIEWER_JS);
        rc = mem_close(&page, err);
    }
    free(json);
    if (rc == CBQ_OK)
        rc = cbq_report_markup(r, page.text, err);
    mem_free(&page);
    return rc;
}
