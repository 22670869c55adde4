/* volume_io.c - dispatch between the NIfTI and DICOM readers (see volume_io.h). */
#include "cbctiq/volume_io.h"

#include <string.h>

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int cbq_path_is_nifti(const char *path)
{
    return ends_with(path, ".nii") || ends_with(path, ".nii.gz");
}

int cbq_volume_load(cbq_volume *vol, cbq_volume_source *src, const char *path,
                    const char *series_uid, cbq_error *err)
{
    cbq_volume_source local;
    if (!src)
        src = &local;
    memset(src, 0, sizeof *src);
    if (cbq_path_is_nifti(path)) {
        if (series_uid && series_uid[0])
            return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: a series UID only applies to DICOM input",
                            path);
        src->kind = CBQ_SOURCE_NIFTI;
        return cbq_nifti_read_ex(vol, &src->nifti, path, err);
    }
    src->kind = CBQ_SOURCE_DICOM;
    return cbq_dicom_read_series(vol, &src->dicom, path, series_uid, err);
}

int cbq_map_write_source(const char *path, const cbq_volume *canon_map, const cbq_reorient *xf,
                         cbq_error *err)
{
    cbq_volume back;
    CBQ_TRY(cbq_volume_uncanonical(&back, canon_map, xf, err));
    int rc = cbq_nifti_write(path, &back, CBQ_NIFTI_FLOAT32, err);
    cbq_volume_free(&back);
    return rc;
}
