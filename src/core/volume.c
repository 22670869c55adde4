/* volume.c - allocation and geometry of cbq_volume (see volume.h). */
#include "cbctiq/volume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/mem_limit.h"

int cbq_volume_alloc(cbq_volume *vol, size_t nx, size_t ny, size_t nz,
                     const double spacing[3], size_t max_bytes, cbq_error *err)
{
    memset(vol, 0, sizeof *vol);
    size_t n, bytes;
    if (nx == 0 || ny == 0 || nz == 0)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "volume of %zux%zux%zu voxels is empty", nx, ny, nz);
    if (!cbq_size_mul(&n, nx, ny) || !cbq_size_mul(&n, n, nz) || !cbq_size_mul(&bytes, n, sizeof(float)))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "volume of %zux%zux%zu voxels overflows memory arithmetic",
                        nx, ny, nz);
    if (max_bytes && bytes > max_bytes)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM,
                        "volume of %zux%zux%zu voxels needs %.1f GiB, more than the %.1f GiB allowed",
                        nx, ny, nz, (double)bytes / (1 << 30), (double)max_bytes / (1 << 30));
    char what[96];
    snprintf(what, sizeof what, "a volume of %zux%zux%zu voxels", nx, ny, nz);
    CBQ_TRY(cbq_mem_check(bytes, what, err));
    vol->data = calloc(n, sizeof(float));
    if (!vol->data)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "cannot allocate %zux%zux%zu voxels (%.1f GiB)", nx, ny,
                        nz, (double)bytes / (1 << 30));
    vol->nx = nx;
    vol->ny = ny;
    vol->nz = nz;
    for (int a = 0; a < 3; a++) {
        vol->spacing[a] = spacing ? spacing[a] : 1.0;
        vol->affine[a][a] = vol->spacing[a];
    }
    vol->affine[3][3] = 1.0;
    return CBQ_OK;
}

void cbq_volume_free(cbq_volume *vol)
{
    free(vol->data);
    memset(vol, 0, sizeof *vol);
}

void cbq_volume_world(const cbq_volume *vol, double i, double j, double k, double xyz[3])
{
    for (int r = 0; r < 3; r++)
        xyz[r] = vol->affine[r][0] * i + vol->affine[r][1] * j + vol->affine[r][2] * k + vol->affine[r][3];
}
