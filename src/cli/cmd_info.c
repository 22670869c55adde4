/* cmd_info.c - `cbctiq info PATH`: what cbctiq reads from a volume (NIfTI or
 * DICOM series): size, spacing, orientation, affine, HU range, metadata. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cbctiq/orient.h"
#include "cbctiq/volume_io.h"
#include "cli.h"

const char cli_info_usage[] =
    "usage: cbctiq info [--series UID] [--json] [--show-phi] PATH\n"
    "\n"
    "Reads a volume and prints its geometry and metadata.\n"
    "PATH: a NIfTI file (.nii, .nii.gz, or a .hdr/.img pair named by either file),\n"
    "a folder holding a DICOM series (searched recursively) or one file of a DICOM\n"
    "series.\n"
    "\n"
    "  --series UID   pick one series when the folder holds several\n"
    "  --json         print one JSON object instead of text\n"
    "  --show-phi     print the DICOM patient name and ID (hidden by default: they\n"
    "                 identify a person, and terminals and logs get copied)\n";

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void value_range(const cbq_volume *vol, double *lo, double *hi)
{
    size_t n = cbq_volume_count(vol);
    float a = vol->data[0], b = vol->data[0];
    for (size_t i = 1; i < n; i++) {
        a = vol->data[i] < a ? vol->data[i] : a;
        b = vol->data[i] > b ? vol->data[i] : b;
    }
    *lo = a;
    *hi = b;
}

static void print_json(const char *path, const cbq_volume *vol, const cbq_volume_source *src,
                       const char *code, double lo, double hi, int show_phi)
{
    printf("{\"path\": ");
    json_str(stdout, path);
    printf(", \"format\": \"%s\", \"dims\": [%zu, %zu, %zu], \"spacing\": [%.17g, %.17g, %.17g]",
           src->kind == CBQ_SOURCE_DICOM ? "DICOM" : src->nifti.version == 2 ? "NIfTI-2" : "NIfTI-1",
           vol->nx, vol->ny, vol->nz, vol->spacing[0], vol->spacing[1], vol->spacing[2]);
    printf(", \"orientation\": \"%s\", \"affine\": [", code);
    for (int r = 0; r < 4; r++)
        printf("%s[%.17g, %.17g, %.17g, %.17g]", r ? ", " : "", vol->affine[r][0],
               vol->affine[r][1], vol->affine[r][2], vol->affine[r][3]);
    printf("], \"hu_min\": %.9g, \"hu_max\": %.9g", lo, hi);
    if (src->kind == CBQ_SOURCE_NIFTI) {
        const cbq_nifti_header *h = &src->nifti;
        printf(", \"nifti\": {\"version\": %d, \"datatype\": \"%s\", \"scl_slope\": %.9g, "
               "\"scl_inter\": %.9g, \"qform_code\": %d, \"sform_code\": %d, \"descrip\": ",
               h->version, cbq_nifti_dtype_name(h->datatype), h->scl_slope, h->scl_inter,
               h->qform_code, h->sform_code);
        json_str(stdout, h->descrip);
        printf("}");
    } else {
        const cbq_dicom_meta *m = &src->dicom;
        const cbq_dicom_series_info *s = &m->info;
        const char *keys[] = {"series_uid", "study_uid", "frame_of_reference_uid",
                              "series_description", "modality", "manufacturer", "model",
                              "patient_name", "patient_id", "transfer_syntax",
                              "transfer_syntax_uid"};
        const char *vals[] = {s->series_uid, s->study_uid, s->frame_of_reference_uid,
                              s->series_description, s->modality, s->manufacturer, s->model,
                              s->patient_name, s->patient_id, s->transfer_syntax,
                              s->transfer_syntax_uid};
        /* Which of them identify the patient (null unless --show-phi). */
        const int identifies[] = {0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0};
        _Static_assert(sizeof identifies / sizeof *identifies == sizeof keys / sizeof *keys,
                       "one flag per key");
        printf(", \"dicom\": {");
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            printf("%s\"%s\": ", i ? ", " : "", keys[i]);
            if (identifies[i] && !show_phi)
                printf("null");
            else
                json_str(stdout, vals[i]);
        }
        printf(", \"n_slices\": %zu, \"slice_spacing\": %.17g, \"rescale_slope\": %.17g, "
               "\"rescale_intercept\": %.17g, \"padding_voxels\": %zu}", m->n_slices,
               m->slice_spacing, m->rescale_slope, m->rescale_intercept, m->n_padding);
    }
    printf("}\n");
}

static void print_text(const char *path, const cbq_volume *vol, const cbq_volume_source *src,
                       const char *code, double lo, double hi, int show_phi)
{
    printf("path:         %s\n", path);
    if (src->kind == CBQ_SOURCE_NIFTI)
        printf("format:       NIfTI-%d, %s, scl_slope %g, scl_inter %g, qform_code %d, "
               "sform_code %d\n", src->nifti.version, cbq_nifti_dtype_name(src->nifti.datatype),
               src->nifti.scl_slope, src->nifti.scl_inter, src->nifti.qform_code,
               src->nifti.sform_code);
    else
        printf("format:       DICOM series, %s\n", src->dicom.info.transfer_syntax);
    printf("size:         %zu x %zu x %zu voxels\n", vol->nx, vol->ny, vol->nz);
    printf("spacing:      %.4f x %.4f x %.4f mm\n", vol->spacing[0], vol->spacing[1],
           vol->spacing[2]);
    printf("orientation:  %s (voxel axes point to; cbctiq's canonical grid is LPS)\n", code);
    printf("affine:       voxel (i, j, k) -> world RAS+ mm\n");
    for (int r = 0; r < 3; r++)
        printf("  %12.6f %12.6f %12.6f %12.6f\n", vol->affine[r][0], vol->affine[r][1],
               vol->affine[r][2], vol->affine[r][3]);
    printf("HU range:     %g .. %g\n", lo, hi);
    if (src->kind == CBQ_SOURCE_DICOM) {
        const cbq_dicom_series_info *s = &src->dicom.info;
        printf("series UID:   %s\n", s->series_uid);
        printf("description:  %s\n", s->series_description);
        printf("modality:     %s\n", s->modality);
        printf("manufacturer: %s %s\n", s->manufacturer, s->model);
        if (show_phi)
            printf("patient:      %s (%s)\n", s->patient_name, s->patient_id);
        else
            printf("patient:      (hidden; --show-phi to print)\n");
        printf("slices:       %zu, %.4f mm apart; rescale slope %g, intercept %g\n",
               src->dicom.n_slices, src->dicom.slice_spacing, src->dicom.rescale_slope,
               src->dicom.rescale_intercept);
        if (src->dicom.n_padding)
            printf("padding:      %zu voxels marked by PixelPaddingValue, read as %g HU\n",
                   src->dicom.n_padding, CBQ_DICOM_PADDING_HU);
    }
}

int cli_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"series", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"show-phi", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *series = NULL;
    int json = 0, show_phi = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': series = optarg; break;
        case 'j': json = 1; break;
        case 'p': show_phi = 1; break;
        case 'h': fputs(cli_info_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("info", "unknown option");
        }
    }
    if (argc - optind != 1)
        return cli_usage_error("info", "expects one PATH");
    const char *path = argv[optind];
    cbq_volume vol;
    cbq_volume_source src;
    cbq_error err = {0};
    if (cbq_volume_load(&vol, &src, path, series, &err) != CBQ_OK)
        return cli_report(&err);
    char code[4];
    cbq_orientation_code(vol.affine, code);
    double lo, hi;
    value_range(&vol, &lo, &hi);
    if (json)
        print_json(path, &vol, &src, code, lo, hi, show_phi);
    else
        print_text(path, &vol, &src, code, lo, hi, show_phi);
    cbq_volume_free(&vol);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
