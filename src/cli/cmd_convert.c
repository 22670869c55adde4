/* cmd_convert.c - `cbctiq convert IN OUT.nii[.gz]`: DICOM series or NIfTI in,
 * NIfTI out with the same world geometry. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cbctiq/orient.h"
#include "cbctiq/volume_io.h"
#include "cli.h"

const char cli_convert_usage[] =
    "usage: cbctiq convert [--series UID] [--dtype TYPE] [--canonical] [--quiet] IN OUT.nii[.gz]\n"
    "\n"
    "Converts a DICOM series (folder or one of its files) or a NIfTI file to NIfTI.\n"
    "World coordinates are kept exactly (affine written as sform and qform, code 1).\n"
    "\n"
    "  --series UID   pick one series when the folder holds several\n"
    "  --dtype TYPE   auto (default: int16 when every voxel is a whole number in\n"
    "                 int16 range, else float32), float32, int16, int32, uint8\n"
    "  --canonical    store on cbctiq's canonical grid (i right->left, j anterior->\n"
    "                 posterior, k inferior->superior) instead of the source order\n"
    "  --quiet        print nothing on success\n";

static int parse_dtype(const char *s, int *dtype)
{
    static const struct { const char *name; int code; } types[] = {
        {"auto", 0}, {"float32", CBQ_NIFTI_FLOAT32}, {"int16", CBQ_NIFTI_INT16},
        {"int32", CBQ_NIFTI_INT32}, {"uint8", CBQ_NIFTI_UINT8}};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (strcmp(s, types[i].name) == 0) {
            *dtype = types[i].code;
            return 1;
        }
    return 0;
}

static int auto_dtype(const cbq_volume *vol)
{
    size_t n = cbq_volume_count(vol);
    for (size_t i = 0; i < n; i++) {
        float v = vol->data[i];
        if (v != nearbyintf(v) || v < -32768.0f || v > 32767.0f)
            return CBQ_NIFTI_FLOAT32;
    }
    return CBQ_NIFTI_INT16;
}

int cli_convert(int argc, char **argv)
{
    static const struct option opts[] = {
        {"series", required_argument, NULL, 's'}, {"dtype", required_argument, NULL, 'd'},
        {"canonical", no_argument, NULL, 'c'},    {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *series = NULL;
    int dtype = 0, canonical = 0, quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's': series = optarg; break;
        case 'd':
            if (!parse_dtype(optarg, &dtype))
                return cli_usage_error("convert", "--dtype expects auto, float32, int16, int32 "
                                       "or uint8, got '%s'", optarg);
            break;
        case 'c': canonical = 1; break;
        case 'q': quiet = 1; break;
        case 'h': fputs(cli_convert_usage, stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("convert", "unknown option");
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("convert", "expects IN and OUT");
    const char *in = argv[optind], *out = argv[optind + 1];
    if (!cbq_path_is_nifti(out))
        return cli_usage_error("convert", "OUT must end in .nii or .nii.gz, got '%s'", out);
    cbq_volume vol;
    cbq_error err = {0};
    if (cbq_volume_load(&vol, NULL, in, series, &err) != CBQ_OK)
        return cli_report(&err);
    if (canonical) {
        cbq_volume canon;
        int rc = cbq_volume_canonical(&canon, &vol, NULL, &err);
        cbq_volume_free(&vol);
        if (rc != CBQ_OK)
            return cli_report(&err);
        vol = canon;
    }
    if (dtype == 0)
        dtype = auto_dtype(&vol);
    int rc = cbq_nifti_write(out, &vol, (cbq_nifti_dtype)dtype, &err);
    if (rc == CBQ_OK && !quiet)
        printf("%s: %zu x %zu x %zu voxels, %s\n", out, vol.nx, vol.ny, vol.nz,
               cbq_nifti_dtype_name(dtype));
    cbq_volume_free(&vol);
    return rc == CBQ_OK ? CLI_EXIT_OK : cli_report(&err);
}
