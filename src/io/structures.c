/* structures.c - category masks from label volumes and RTSTRUCT contours
 * (see include/cbctiq/structures.h). */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/structures.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cbctiq/nifti.h"
#include "cbctiq/orient.h"
#include "cbctiq/text_file.h"

static const char *const category_names[CBQ_STRUCT_COUNT] = {"parotid", "submandibular",
                                                             "larynx", "mandible"};

const char *cbq_structure_name(int s)
{
    return s >= 0 && s < CBQ_STRUCT_COUNT ? category_names[s] : "unknown";
}

/* ---- name matching ----------------------------------------------------- */

enum { MAX_TOKENS = 16, TOKEN_LEN = 32 };
/* A labels sidecar names a few dozen structures; anything near this is not one. */
enum { LABELS_JSON_MAX_BYTES = 1 << 24 };

/* Splits on anything not a letter or digit and at lower->upper case changes
 * ("LeftParotid" -> left, parotid); tokens are lower case. */
static int tokenize(const char *name, char tok[MAX_TOKENS][TOKEN_LEN])
{
    int n = 0, len = 0;
    for (const char *p = name;; p++) {
        int alnum = *p && isalnum((unsigned char)*p);
        int camel = alnum && len > 0 && isupper((unsigned char)*p) && islower((unsigned char)p[-1]);
        if ((!alnum || camel) && len > 0) {
            tok[n][len] = '\0';
            if (++n == MAX_TOKENS)
                return n;
            len = 0;
        }
        if (!*p)
            break;
        if (alnum && len < TOKEN_LEN - 1)
            tok[n][len++] = (char)tolower((unsigned char)*p);
    }
    return n;
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Planning volumes, margins and helper structures are not organs. */
static int is_derived(const char *t)
{
    static const char *const prefixes[] = {"ptv", "ctv", "gtv", "itv", "prv", "opt", "avoid",
                                           "ring", "expand", "dose", "minus", "plus"};
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (starts(t, prefixes[i]))
            return 1;
    size_t n = strlen(t);
    return n > 2 && strcmp(t + n - 2, "mm") == 0 && isdigit((unsigned char)t[0]);
}

static char side_of(const char *t)
{
    static const char *const left[] = {"l", "lt", "left", "lft", "sin"};
    static const char *const right[] = {"r", "rt", "right", "rgt", "dx"};
    for (size_t i = 0; i < sizeof left / sizeof *left; i++) {
        if (strcmp(t, left[i]) == 0)
            return 'L';
        if (strcmp(t, right[i]) == 0)
            return 'R';
    }
    return 0;
}

int cbq_structure_match(const char *name, char *side)
{
    char tok[MAX_TOKENS][TOKEN_LEN];
    int n = tokenize(name, tok), cat = -1;
    char sd = 0;
    for (int i = 0; i < n; i++)
        if (is_derived(tok[i]))
            return -1;
    /* Submandibular before mandible: "submandibular" contains "mandib". */
    for (int i = 0; i < n && cat < 0; i++) {
        if (strstr(tok[i], "submand") || strcmp(tok[i], "smg") == 0)
            cat = CBQ_STRUCT_SUBMANDIBULAR;
        else if (strstr(tok[i], "parotid"))
            cat = CBQ_STRUCT_PAROTID;
        else if (starts(tok[i], "laryn"))
            cat = CBQ_STRUCT_LARYNX;
        else if (strstr(tok[i], "mandib"))
            cat = CBQ_STRUCT_MANDIBLE;
    }
    for (int i = 0; i < n && !sd; i++)
        sd = side_of(tok[i]);
    if (side)
        *side = cat >= 0 ? sd : 0;
    return cat;
}

/* ---- shared -------------------------------------------------------------- */

void cbq_structures_free(cbq_structures *st)
{
    for (int s = 0; s < CBQ_STRUCT_COUNT; s++)
        free(st->mask[s]);
    memset(st, 0, sizeof *st);
}

static int mask_for(cbq_structures *st, int cat, const char *source, cbq_error *err)
{
    if (!st->mask[cat]) {
        st->mask[cat] = calloc(st->nx * st->ny * st->nz, 1);
        if (!st->mask[cat])
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for the %s mask",
                            category_names[cat]);
    }
    char *dst = st->sources[cat];
    size_t used = strlen(dst);
    snprintf(dst + used, sizeof st->sources[cat] - used, "%s%s", used ? " + " : "", source);
    return CBQ_OK;
}

/* ---- label volumes ----------------------------------------------------------- */

int cbq_structures_sidecar(char *out, size_t cap, const char *label_path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", label_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    for (int up = 0; up < 2; up++) {
        snprintf(out, cap, up ? "%s/../labels.json" : "%s/labels.json", dir);
        FILE *fp = fopen(out, "rb");
        if (fp) {
            fclose(fp);
            return 1;
        }
    }
    return 0;
}

/* names[v] for label value v in 1..255; NULL when unnamed. */
static int parse_labels(cJSON **root, const char *json_path, cbq_error *err)
{
    char *text = NULL;
    CBQ_TRY(cbq_read_text_file(json_path, LABELS_JSON_MAX_BYTES, &text, NULL, err));
    *root = cJSON_Parse(text);
    free(text);
    if (!*root || !cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: not a JSON object of label value -> name "
                        "(expected e.g. {\"1\": \"parotid_l\"})", json_path);
    }
    for (cJSON *it = (*root)->child; it; it = it->next) {
        char *end;
        long v = strtol(it->string, &end, 10);
        if (*end || v < 1 || v > 65535 || !cJSON_IsString(it)) {
            cJSON_Delete(*root);
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: entry \"%s\": expected a label value 1..65535 with a name string",
                            json_path, it->string);
        }
    }
    return CBQ_OK;
}

static int same_grid(const cbq_volume *a, const cbq_volume *b)
{
    if (a->nx != b->nx || a->ny != b->ny || a->nz != b->nz)
        return 0;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            if (fabs(a->affine[r][c] - b->affine[r][c]) > 1e-3)
                return 0;
    return 1;
}

/* Brings `labels` onto the grid of `image` when both are the same voxels in
 * a different axis order (via the canonical grid of each). */
static int align_labels(cbq_volume *labels, const cbq_volume *image, const char *path,
                        cbq_error *err)
{
    if (same_grid(labels, image))
        return CBQ_OK;
    cbq_volume lc, ic_hdr, back;
    cbq_reorient ixf;
    CBQ_TRY(cbq_volume_canonical(&lc, labels, NULL, err));
    cbq_reorient_plan(&ixf, image);
    /* The image's canonical geometry, without copying its voxels. */
    memset(&ic_hdr, 0, sizeof ic_hdr);
    int rc = cbq_volume_canonical(&ic_hdr, image, NULL, err);
    int ok = rc == CBQ_OK && same_grid(&lc, &ic_hdr);
    cbq_volume_free(&ic_hdr);
    if (rc != CBQ_OK || !ok) {
        cbq_volume_free(&lc);
        return rc != CBQ_OK ? rc : CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: the label volume (%zux%zux%zu) is not on the image grid "
                        "(%zux%zux%zu, or different voxel positions)", path, labels->nx,
                        labels->ny, labels->nz, image->nx, image->ny, image->nz);
    }
    rc = cbq_volume_uncanonical(&back, &lc, &ixf, err);
    cbq_volume_free(&lc);
    if (rc != CBQ_OK)
        return rc;
    cbq_volume_free(labels);
    *labels = back;
    return CBQ_OK;
}

int cbq_structures_from_labels(cbq_structures *st, const cbq_volume *image, const char *label_path,
                               const char *labels_json, cbq_error *err)
{
    memset(st, 0, sizeof *st);
    char sidecar[4200];
    if (!labels_json) {
        if (!cbq_structures_sidecar(sidecar, sizeof sidecar, label_path))
            return CBQ_FAIL(err, CBQ_ERR_IO,
                            "%s: no labels.json beside the label volume or in its parent folder: "
                            "label names are needed to find the structures", label_path);
        labels_json = sidecar;
    }
    cJSON *names;
    CBQ_TRY(parse_labels(&names, labels_json, err));
    cbq_volume lab;
    int rc = cbq_nifti_read(&lab, label_path, err);
    if (rc == CBQ_OK)
        rc = align_labels(&lab, image, label_path, err);
    st->nx = image->nx;
    st->ny = image->ny;
    st->nz = image->nz;
    size_t n = cbq_volume_count(image);
    for (cJSON *it = names->child; it && rc == CBQ_OK; it = it->next) {
        int cat = cbq_structure_match(it->valuestring, NULL);
        if (cat < 0)
            continue;
        float value = (float)strtol(it->string, NULL, 10);
        rc = mask_for(st, cat, it->valuestring, err);
        for (size_t i = 0; i < n && rc == CBQ_OK; i++)
            if (lab.data[i] == value)
                st->mask[cat][i] = 1;
    }
    cJSON_Delete(names);
    if (lab.data)
        cbq_volume_free(&lab);
    if (rc != CBQ_OK)
        cbq_structures_free(st);
    return rc;
}

/* ---- RTSTRUCT ------------------------------------------------------------------ */

static int invert3x4(const double a[4][4], double inv[3][4])
{
    double m[3][3];
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            m[r][c] = a[r][c];
    double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                 m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                 m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    if (fabs(det) < 1e-12)
        return 0;
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++) {
            int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
            inv[r][c] = (m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]) / det;
        }
    for (int r = 0; r < 3; r++)
        inv[r][3] = -(inv[r][0] * a[0][3] + inv[r][1] * a[1][3] + inv[r][2] * a[2][3]);
    return 1;
}

/* Toggles the pixels of slice `plane` (nx x ny) whose centres lie inside the
 * polygon (even-odd rule); pts are (i, j) pairs. */
static void toggle_polygon(uint8_t *plane, size_t nx, size_t ny, const double *pts, size_t n,
                           double *xs)
{
    for (size_t j = 0; j < ny; j++) {
        double y = (double)j;
        size_t nc = 0;
        for (size_t e = 0; e < n; e++) {
            const double *p = pts + 2 * e, *q = pts + 2 * ((e + 1) % n);
            if ((p[1] > y) != (q[1] > y))
                xs[nc++] = p[0] + (y - p[1]) * (q[0] - p[0]) / (q[1] - p[1]);
        }
        for (size_t a = 1; a < nc; a++) /* insertion sort: few crossings per row */
            for (size_t b = a; b > 0 && xs[b - 1] > xs[b]; b--) {
                double t = xs[b];
                xs[b] = xs[b - 1];
                xs[b - 1] = t;
            }
        for (size_t c = 0; c + 1 < nc; c += 2) {
            double lo = ceil(xs[c]), hi = xs[c + 1];
            for (double i = lo < 0 ? 0 : lo; i < hi && i < (double)nx; i++)
                plane[j * nx + (size_t)i] ^= 1;
        }
    }
}

size_t cbq_rasterize_roi(uint8_t *mask, const cbq_volume *image, const cbq_roi *roi)
{
    double inv[3][4];
    if (!invert3x4(image->affine, inv))
        return 0;
    size_t plane = image->nx * image->ny, drawn = 0, max_pts = 0;
    for (size_t c = 0; c < roi->n_contours; c++)
        max_pts = roi->contours[c].n_points > max_pts ? roi->contours[c].n_points : max_pts;
    uint8_t *parity = calloc(plane * image->nz, 1);
    double *ij = malloc((2 * max_pts + 1) * sizeof *ij), *xs = malloc((max_pts + 1) * sizeof *xs);
    if (!parity || !ij || !xs) {
        free(parity);
        free(ij);
        free(xs);
        return 0;
    }
    for (size_t c = 0; c < roi->n_contours; c++) {
        const cbq_contour *ct = &roi->contours[c];
        double ksum = 0;
        for (size_t p = 0; p < ct->n_points; p++) {
            const double *w = ct->xyz + 3 * p;
            double v[3];
            for (int r = 0; r < 3; r++)
                v[r] = inv[r][0] * w[0] + inv[r][1] * w[1] + inv[r][2] * w[2] + inv[r][3];
            ij[2 * p] = v[0];
            ij[2 * p + 1] = v[1];
            ksum += v[2];
        }
        double k = nearbyint(ksum / (double)ct->n_points);
        if (k < 0 || k >= (double)image->nz)
            continue; /* contour outside the imaged slices */
        toggle_polygon(parity + (size_t)k * plane, image->nx, image->ny, ij, ct->n_points, xs);
        drawn++;
    }
    for (size_t i = 0; i < plane * image->nz; i++)
        mask[i] |= parity[i];
    free(parity);
    free(ij);
    free(xs);
    return drawn;
}

static int check_references(const cbq_rtstruct *rs, const cbq_dicom_series_info *info,
                            const char *path, cbq_error *err)
{
    if (!info)
        return CBQ_OK;
    if (rs->referenced_series_uid[0] && strcmp(rs->referenced_series_uid, info->series_uid) != 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: the RTSTRUCT references series %s, but the image is series %s: "
                        "contours drawn on another image", path, rs->referenced_series_uid,
                        info->series_uid);
    if (rs->frame_of_reference_uid[0] && info->frame_of_reference_uid[0] &&
        strcmp(rs->frame_of_reference_uid, info->frame_of_reference_uid) != 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: the RTSTRUCT's frame of reference %s differs from the image's %s",
                        path, rs->frame_of_reference_uid, info->frame_of_reference_uid);
    return CBQ_OK;
}

int cbq_structures_from_rtstruct(cbq_structures *st, const cbq_volume *image,
                                 const cbq_dicom_series_info *image_info, const char *path,
                                 cbq_error *err)
{
    memset(st, 0, sizeof *st);
    cbq_rtstruct rs;
    CBQ_TRY(cbq_rtstruct_read(&rs, path, err));
    int rc = check_references(&rs, image_info, path, err);
    st->nx = image->nx;
    st->ny = image->ny;
    st->nz = image->nz;
    for (size_t r = 0; r < rs.n_rois && rc == CBQ_OK; r++) {
        int cat = cbq_structure_match(rs.rois[r].name, NULL);
        if (cat < 0 || rs.rois[r].n_contours == 0)
            continue;
        rc = mask_for(st, cat, rs.rois[r].name, err);
        if (rc == CBQ_OK)
            cbq_rasterize_roi(st->mask[cat], image, &rs.rois[r]);
    }
    cbq_rtstruct_free(&rs);
    if (rc != CBQ_OK)
        cbq_structures_free(st);
    return rc;
}
