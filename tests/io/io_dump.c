/* io_dump.c - test helper that exposes the io readers and writers to the
 * Python oracle scripts: it dumps what cbctiq reads (voxels as raw float32 +
 * geometry as text) and writes volumes from raw float32 input.
 *
 *   io_dump read IN OUT_PREFIX          -> OUT_PREFIX.raw, OUT_PREFIX.txt (NIfTI or DICOM)
 *   io_dump write RAW NX NY NZ A00..A23 DTYPE OUT.nii[.gz]
 *   io_dump canon IN OUT_PREFIX         -> the volume on the canonical grid
 *   io_dump slices IN H W HU_MIN HU_MAX OUT.raw   -> all canonical axial slices
 *   io_dump unmap IN H W MAPS.raw OUT.nii         -> maps [nz][H][W] back onto IN's grid
 *   io_dump structures IMAGE MASKS OUT_PREFIX      -> OUT_PREFIX.<category>.raw (uint8)
 *       MASKS: a label NIfTI (labels.json sidecar) or an RTSTRUCT file
 *   io_dump png IMAGE MASKS|- K OUT.png            -> canonical axial slice K with outlines
 *   io_dump select IN Z_MIN Z_MAX                  -> prints canonical slices with a non-zero
 *       voxel, then those with centre z in [Z_MIN, Z_MAX]
 *
 * OUT_PREFIX.txt: line 1 "nx ny nz", line 2 spacing, lines 3-6 affine rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/nifti.h"
#include "cbctiq/orient.h"
#include "cbctiq/png.h"
#include "cbctiq/slices.h"
#include "cbctiq/structures.h"
#include "cbctiq/volume.h"
#include "cbctiq/volume_io.h"

static int fail(const cbq_error *err)
{
    fprintf(stderr, "io_dump: %s\n", err->msg);
    return 1;
}

static int dump(const cbq_volume *vol, const char *prefix)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.raw", prefix);
    FILE *fp = fopen(path, "wb");
    size_t n = cbq_volume_count(vol);
    if (!fp || fwrite(vol->data, sizeof(float), n, fp) != n || fclose(fp) != 0)
        return 1;
    snprintf(path, sizeof path, "%s.txt", prefix);
    fp = fopen(path, "w");
    if (!fp)
        return 1;
    fprintf(fp, "%zu %zu %zu\n%.17g %.17g %.17g\n", vol->nx, vol->ny, vol->nz, vol->spacing[0],
            vol->spacing[1], vol->spacing[2]);
    for (int r = 0; r < 4; r++)
        fprintf(fp, "%.17g %.17g %.17g %.17g\n", vol->affine[r][0], vol->affine[r][1],
                vol->affine[r][2], vol->affine[r][3]);
    return fclose(fp) != 0;
}

static int cmd_read(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    cbq_volume vol;
    cbq_error err = {0};
    if (cbq_volume_load(&vol, NULL, argv[2], NULL, &err) != CBQ_OK)
        return fail(&err);
    int rc = dump(&vol, argv[3]);
    cbq_volume_free(&vol);
    return rc;
}

static int cmd_write(int argc, char **argv)
{
    if (argc != 20)
        return 2;
    size_t dims[3];
    for (int a = 0; a < 3; a++)
        dims[a] = strtoul(argv[3 + a], NULL, 10);
    cbq_volume vol;
    cbq_error err = {0};
    if (cbq_volume_alloc(&vol, dims[0], dims[1], dims[2], NULL, 0, &err) != CBQ_OK)
        return fail(&err);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++)
            vol.affine[r][c] = strtod(argv[6 + 4 * r + c], NULL);
    FILE *fp = fopen(argv[2], "rb");
    size_t n = cbq_volume_count(&vol);
    int rc = !fp || fread(vol.data, sizeof(float), n, fp) != n;
    if (fp)
        fclose(fp);
    if (!rc && cbq_nifti_write(argv[19], &vol, (cbq_nifti_dtype)atoi(argv[18]), &err) != CBQ_OK)
        rc = fail(&err);
    cbq_volume_free(&vol);
    return rc;
}

static int read_canonical(cbq_volume *canon, cbq_reorient *xf, const char *path)
{
    cbq_volume vol;
    cbq_error err = {0};
    if (cbq_nifti_read(&vol, path, &err) != CBQ_OK)
        return fail(&err);
    int rc = cbq_volume_canonical(canon, &vol, xf, &err) != CBQ_OK ? fail(&err) : 0;
    cbq_volume_free(&vol);
    return rc;
}

static int cmd_canon(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    cbq_volume canon;
    cbq_reorient xf;
    if (read_canonical(&canon, &xf, argv[2]))
        return 1;
    int rc = dump(&canon, argv[3]);
    cbq_volume_free(&canon);
    return rc;
}

static int cmd_slices(int argc, char **argv)
{
    if (argc != 8)
        return 2;
    cbq_volume canon;
    cbq_reorient xf;
    if (read_canonical(&canon, &xf, argv[2]))
        return 1;
    cbq_slice_spec spec = {.height = strtoul(argv[3], NULL, 10), .width = strtoul(argv[4], NULL, 10),
                           .hu_min = strtod(argv[5], NULL), .hu_max = strtod(argv[6], NULL)};
    cbq_slicer s;
    cbq_error err = {0};
    int rc = 1;
    size_t n = canon.nz, plane = spec.height * spec.width;
    float *out = malloc(n * plane * sizeof(float));
    size_t *ks = malloc(n * sizeof *ks);
    for (size_t k = 0; k < n; k++)
        ks[k] = k;
    if (cbq_slicer_init(&s, canon.nx, canon.ny, &spec, &err) != CBQ_OK) {
        fail(&err);
    } else {
        /* Two batches, to exercise the streaming offsets. */
        size_t half = n / 2;
        if (cbq_slicer_fill(&s, &canon, ks, half, out, &err) != CBQ_OK ||
            cbq_slicer_fill(&s, &canon, ks + half, n - half, out + half * plane, &err) != CBQ_OK) {
            fail(&err);
        } else {
            FILE *fp = fopen(argv[7], "wb");
            rc = !fp || fwrite(out, sizeof(float), n * plane, fp) != n * plane || fclose(fp) != 0;
        }
        cbq_slicer_free(&s);
    }
    free(out);
    free(ks);
    cbq_volume_free(&canon);
    return rc;
}

static int cmd_unmap(int argc, char **argv)
{
    if (argc != 7)
        return 2;
    cbq_volume canon;
    cbq_reorient xf;
    if (read_canonical(&canon, &xf, argv[2]))
        return 1;
    cbq_slice_spec spec = {.height = strtoul(argv[3], NULL, 10), .width = strtoul(argv[4], NULL, 10),
                           .hu_min = 0, .hu_max = 1};
    size_t plane = spec.height * spec.width, n = canon.nz;
    float *maps = malloc(n * plane * sizeof(float));
    FILE *fp = fopen(argv[5], "rb");
    int rc = !fp || fread(maps, sizeof(float), n * plane, fp) != n * plane;
    if (fp)
        fclose(fp);
    cbq_slicer s;
    cbq_error err = {0};
    if (!rc && cbq_slicer_init(&s, canon.nx, canon.ny, &spec, &err) != CBQ_OK)
        rc = fail(&err);
    else if (!rc) {
        for (size_t k = 0; k < n && !rc; k++)
            if (cbq_slicer_unmap(&s, maps + k * plane, &canon, k, &err) != CBQ_OK)
                rc = fail(&err);
        cbq_slicer_free(&s);
        if (!rc && cbq_map_write_source(argv[6], &canon, &xf, &err) != CBQ_OK)
            rc = fail(&err);
    }
    free(maps);
    cbq_volume_free(&canon);
    return rc;
}

static int cmd_structures(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    cbq_volume vol;
    cbq_volume_source src;
    cbq_error err = {0};
    if (cbq_volume_load(&vol, &src, argv[2], NULL, &err) != CBQ_OK)
        return fail(&err);
    cbq_structures st;
    int rc = cbq_path_is_nifti(argv[3])
                 ? cbq_structures_from_labels(&st, &vol, argv[3], NULL, &err)
                 : cbq_structures_from_rtstruct(&st, &vol, src.kind == CBQ_SOURCE_DICOM
                                                              ? &src.dicom.info : NULL,
                                                argv[3], &err);
    if (rc != CBQ_OK) {
        cbq_volume_free(&vol);
        return fail(&err);
    }
    for (int s = 0; s < CBQ_STRUCT_COUNT && !rc; s++) {
        if (!st.mask[s])
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s.%s.raw", argv[4], cbq_structure_name(s));
        FILE *fp = fopen(path, "wb");
        size_t n = cbq_volume_count(&vol);
        rc = !fp || fwrite(st.mask[s], 1, n, fp) != n || fclose(fp) != 0;
        printf("%s: %s\n", cbq_structure_name(s), st.sources[s]);
    }
    cbq_structures_free(&st);
    cbq_volume_free(&vol);
    return rc;
}

static int cmd_png(int argc, char **argv)
{
    if (argc != 6)
        return 2;
    cbq_volume vol, canon;
    cbq_reorient xf;
    cbq_volume_source src;
    cbq_error err = {0};
    if (cbq_volume_load(&vol, &src, argv[2], NULL, &err) != CBQ_OK)
        return fail(&err);
    cbq_structures st = {0};
    int rc = CBQ_OK;
    if (strcmp(argv[3], "-") != 0)
        rc = cbq_path_is_nifti(argv[3]) ? cbq_structures_from_labels(&st, &vol, argv[3], NULL, &err)
                                        : cbq_structures_from_rtstruct(&st, &vol, NULL, argv[3], &err);
    if (rc == CBQ_OK)
        rc = cbq_volume_canonical(&canon, &vol, &xf, &err);
    if (rc == CBQ_OK) {
        /* masks follow the image to the canonical grid */
        for (int s = 0; s < CBQ_STRUCT_COUNT && rc == CBQ_OK; s++) {
            if (!st.mask[s])
                continue;
            cbq_volume m, mc;
            rc = cbq_volume_alloc(&m, vol.nx, vol.ny, vol.nz, vol.spacing, 0, &err);
            if (rc != CBQ_OK)
                break;
            memcpy(m.affine, vol.affine, sizeof m.affine);
            for (size_t i = 0; i < cbq_volume_count(&vol); i++)
                m.data[i] = st.mask[s][i];
            rc = cbq_volume_canonical(&mc, &m, NULL, &err);
            for (size_t i = 0; rc == CBQ_OK && i < cbq_volume_count(&vol); i++)
                st.mask[s][i] = mc.data[i] != 0;
            cbq_volume_free(&m);
            if (rc == CBQ_OK)
                cbq_volume_free(&mc);
        }
        if (rc == CBQ_OK)
            rc = cbq_png_axial(argv[5], &canon, strtoul(argv[4], NULL, 10), -300, 700, &st, 2,
                               &err);
        cbq_volume_free(&canon);
    }
    cbq_structures_free(&st);
    cbq_volume_free(&vol);
    return rc == CBQ_OK ? 0 : fail(&err);
}

static int cmd_select(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    cbq_volume canon;
    cbq_reorient xf;
    if (read_canonical(&canon, &xf, argv[2]))
        return 1;
    size_t *ks = malloc(canon.nz * sizeof *ks);
    size_t n = cbq_slices_nonempty(&canon, ks);
    for (size_t i = 0; i < n; i++)
        printf("%s%zu", i ? " " : "", ks[i]);
    printf("\n");
    n = cbq_slices_zrange(&canon, strtod(argv[3], NULL), strtod(argv[4], NULL), ks);
    for (size_t i = 0; i < n; i++)
        printf("%s%zu", i ? " " : "", ks[i]);
    printf("\n");
    free(ks);
    cbq_volume_free(&canon);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "select") == 0)
        return cmd_select(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "png") == 0)
        return cmd_png(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "structures") == 0)
        return cmd_structures(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "canon") == 0)
        return cmd_canon(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "slices") == 0)
        return cmd_slices(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "unmap") == 0)
        return cmd_unmap(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "read") == 0)
        return cmd_read(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "write") == 0)
        return cmd_write(argc, argv);
    fprintf(stderr, "usage: io_dump read IN PREFIX | write RAW NX NY NZ A00..A23 DTYPE OUT\n");
    return 2;
}
