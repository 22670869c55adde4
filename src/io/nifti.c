/* nifti.c - NIfTI-1/2 reader and writer (see include/cbctiq/nifti.h).
 *
 * Field offsets come from nifti_clib's header structs (offsetof), so the
 * layout is the library's; the quaternion maths is the library's too. The
 * bytes go through zlib's gz* calls, which read plain and gzip files alike.
 * Not here: orientation changes (orient.c), DICOM (dicom.c).
 */
#define _DEFAULT_SOURCE /* madvise */
#include "cbctiq/nifti.h"

#include <errno.h>
#include <sys/stat.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <nifti1.h>
#include <nifti2.h>
#include <nifti2_io.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/volume_io.h"
#include "hugepages.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "cbctiq assumes a little-endian host");

enum { NII1_SIZE = 348, NII2_SIZE = 540, IO_CHUNK = 1 << 20 };

/* ---- byte decoding ---------------------------------------------------- */

static void get_bytes(void *dst, const unsigned char *src, size_t n, int swap)
{
    unsigned char *d = dst;
    for (size_t i = 0; i < n; i++)
        d[i] = swap ? src[n - 1 - i] : src[i];
}

static int64_t rd_i16(const unsigned char *b, size_t off, int swap)
{
    int16_t v;
    get_bytes(&v, b + off, 2, swap);
    return v;
}

static int64_t rd_i32(const unsigned char *b, size_t off, int swap)
{
    int32_t v;
    get_bytes(&v, b + off, 4, swap);
    return v;
}

static int64_t rd_i64(const unsigned char *b, size_t off, int swap)
{
    int64_t v;
    get_bytes(&v, b + off, 8, swap);
    return v;
}

static double rd_f32(const unsigned char *b, size_t off, int swap)
{
    float v;
    get_bytes(&v, b + off, 4, swap);
    return v;
}

static double rd_f64(const unsigned char *b, size_t off, int swap)
{
    double v;
    get_bytes(&v, b + off, 8, swap);
    return v;
}

static size_t dtype_size(int datatype)
{
    switch (datatype) {
    case NIFTI_TYPE_UINT8: case NIFTI_TYPE_INT8: return 1;
    case NIFTI_TYPE_INT16: case NIFTI_TYPE_UINT16: return 2;
    case NIFTI_TYPE_INT32: case NIFTI_TYPE_UINT32: case NIFTI_TYPE_FLOAT32: return 4;
    case NIFTI_TYPE_INT64: case NIFTI_TYPE_UINT64: case NIFTI_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

const char *cbq_nifti_dtype_name(int datatype)
{
    switch (datatype) {
    case NIFTI_TYPE_UINT8: return "uint8";
    case NIFTI_TYPE_INT8: return "int8";
    case NIFTI_TYPE_INT16: return "int16";
    case NIFTI_TYPE_UINT16: return "uint16";
    case NIFTI_TYPE_INT32: return "int32";
    case NIFTI_TYPE_UINT32: return "uint32";
    case NIFTI_TYPE_INT64: return "int64";
    case NIFTI_TYPE_UINT64: return "uint64";
    case NIFTI_TYPE_FLOAT32: return "float32";
    case NIFTI_TYPE_FLOAT64: return "float64";
    case NIFTI_TYPE_COMPLEX64: return "complex64";
    case NIFTI_TYPE_COMPLEX128: return "complex128";
    case NIFTI_TYPE_FLOAT128: return "float128";
    case NIFTI_TYPE_RGB24: return "rgb24";
    case NIFTI_TYPE_RGBA32: return "rgba32";
    default: return "unknown";
    }
}

/* ---- header ------------------------------------------------------------ */

#define OFF1(field) offsetof(nifti_1_header, field)
#define OFF2(field) offsetof(nifti_2_header, field)

static void decode_v1(cbq_nifti_header *h, const unsigned char *b, int s)
{
    h->datatype = (int)rd_i16(b, OFF1(datatype), s);
    for (int i = 0; i < 8; i++) {
        h->dim[i] = rd_i16(b, OFF1(dim) + 2 * (size_t)i, s);
        h->pixdim[i] = rd_f32(b, OFF1(pixdim) + 4 * (size_t)i, s);
    }
    double off = rd_f32(b, OFF1(vox_offset), s);
    h->vox_offset = (off >= 0 && off < 1e15 && off == floor(off)) ? (int64_t)off : -1;
    h->scl_slope = rd_f32(b, OFF1(scl_slope), s);
    h->scl_inter = rd_f32(b, OFF1(scl_inter), s);
    h->qform_code = (int)rd_i16(b, OFF1(qform_code), s);
    h->sform_code = (int)rd_i16(b, OFF1(sform_code), s);
    h->quatern[0] = rd_f32(b, OFF1(quatern_b), s);
    h->quatern[1] = rd_f32(b, OFF1(quatern_c), s);
    h->quatern[2] = rd_f32(b, OFF1(quatern_d), s);
    h->qoffset[0] = rd_f32(b, OFF1(qoffset_x), s);
    h->qoffset[1] = rd_f32(b, OFF1(qoffset_y), s);
    h->qoffset[2] = rd_f32(b, OFF1(qoffset_z), s);
    for (int c = 0; c < 4; c++) {
        h->srow[0][c] = rd_f32(b, OFF1(srow_x) + 4 * (size_t)c, s);
        h->srow[1][c] = rd_f32(b, OFF1(srow_y) + 4 * (size_t)c, s);
        h->srow[2][c] = rd_f32(b, OFF1(srow_z) + 4 * (size_t)c, s);
    }
    memcpy(h->descrip, b + OFF1(descrip), 80);
}

static void decode_v2(cbq_nifti_header *h, const unsigned char *b, int s)
{
    h->datatype = (int)rd_i16(b, OFF2(datatype), s);
    for (int i = 0; i < 8; i++) {
        h->dim[i] = rd_i64(b, OFF2(dim) + 8 * (size_t)i, s);
        h->pixdim[i] = rd_f64(b, OFF2(pixdim) + 8 * (size_t)i, s);
    }
    h->vox_offset = rd_i64(b, OFF2(vox_offset), s);
    h->scl_slope = rd_f64(b, OFF2(scl_slope), s);
    h->scl_inter = rd_f64(b, OFF2(scl_inter), s);
    h->qform_code = (int)rd_i32(b, OFF2(qform_code), s);
    h->sform_code = (int)rd_i32(b, OFF2(sform_code), s);
    h->quatern[0] = rd_f64(b, OFF2(quatern_b), s);
    h->quatern[1] = rd_f64(b, OFF2(quatern_c), s);
    h->quatern[2] = rd_f64(b, OFF2(quatern_d), s);
    h->qoffset[0] = rd_f64(b, OFF2(qoffset_x), s);
    h->qoffset[1] = rd_f64(b, OFF2(qoffset_y), s);
    h->qoffset[2] = rd_f64(b, OFF2(qoffset_z), s);
    for (int c = 0; c < 4; c++) {
        h->srow[0][c] = rd_f64(b, OFF2(srow_x) + 8 * (size_t)c, s);
        h->srow[1][c] = rd_f64(b, OFF2(srow_y) + 8 * (size_t)c, s);
        h->srow[2][c] = rd_f64(b, OFF2(srow_z) + 8 * (size_t)c, s);
    }
    memcpy(h->descrip, b + OFF2(descrip), 80);
}

/* "n+1"/"n+2": header and voxels in one file; "ni1"/"ni2": a .hdr whose
 * voxels are in the .img beside it. A version-1 header with neither magic
 * is Analyze 7.5 (or damage): Analyze does not record how its axes lie in
 * the patient (readers disagree on left-right), so it is refused rather
 * than read with a guessed orientation. */
static int check_magic(cbq_nifti_header *h, const unsigned char *b, const char *path,
                       cbq_error *err)
{
    if (h->version == 1) {
        const unsigned char *m = b + OFF1(magic);
        h->two_file = memcmp(m, "ni1\0", 4) == 0;
        if (!h->two_file && memcmp(m, "n+1\0", 4) != 0)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: bad NIfTI-1 magic (expected \"n+1\" or \"ni1\"): an Analyze 7.5 "
                            "header or a damaged one; Analyze 7.5 is not read because it does "
                            "not record the patient orientation (left and right are a guess): "
                            "convert it to NIfTI with the orientation checked", path);
    } else {
        const unsigned char *m = b + OFF2(magic);
        h->two_file = memcmp(m, "ni2\0\r\n\032\n", 8) == 0;
        if (!h->two_file && memcmp(m, "n+2\0\r\n\032\n", 8) != 0)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: bad NIfTI-2 magic (expected \"n+2\" or \"ni2\" and its 4 check "
                            "bytes)", path);
    }
    return CBQ_OK;
}

static int check_dims(cbq_nifti_header *h, const char *path, cbq_error *err)
{
    int64_t nd = h->dim[0];
    if (nd < 1 || nd > 7)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: dim[0] = %lld, expected 1 to 7", path,
                        (long long)nd);
    for (int i = 1; i <= nd; i++)
        if (h->dim[i] < 1)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: dim[%d] = %lld, expected a positive size",
                            path, i, (long long)h->dim[i]);
    for (int i = (int)nd + 1; i < 8; i++)
        h->dim[i] = 1; /* unused dimensions may hold anything */
    for (int i = 4; i <= nd; i++)
        if (h->dim[i] > 1)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: %lld-dimensional data (dim[%d] = %lld); cbctiq reads single 3D "
                            "volumes only: extract one volume first",
                            path, (long long)nd, i, (long long)h->dim[i]);
    size_t n = 1;
    for (int i = 1; i <= 3; i++) {
        if ((uint64_t)h->dim[i] > SIZE_MAX || !cbq_size_mul(&n, n, (size_t)h->dim[i]))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: dimensions %lldx%lldx%lld overflow memory "
                            "arithmetic", path, (long long)h->dim[1], (long long)h->dim[2],
                            (long long)h->dim[3]);
    }
    h->nvox = n;
    if (!cbq_size_mul(&h->data_bytes, n, h->bytes_per_voxel) ||
        !cbq_size_mul(&n, n, sizeof(float)))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: dimensions %lldx%lldx%lld overflow memory "
                        "arithmetic", path, (long long)h->dim[1], (long long)h->dim[2],
                        (long long)h->dim[3]);
    return CBQ_OK;
}

static int check_numbers(const cbq_nifti_header *h, const char *path, cbq_error *err)
{
    for (int i = 0; i < 4; i++)
        if (!isfinite(h->pixdim[i]))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: pixdim[%d] is not finite", path, i);
    if (h->sform_code != 0) {
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                if (!isfinite(h->srow[r][c]))
                    return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: srow_%c[%d] is not finite", path,
                                    "xyz"[r], c);
    } else {
        for (int i = 1; i <= 3; i++)
            if (!(h->pixdim[i] > 0))
                return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                                "%s: pixdim[%d] = %g, expected a positive voxel size", path, i,
                                h->pixdim[i]);
        for (int i = 0; i < 3; i++)
            if (h->qform_code != 0 && (!isfinite(h->quatern[i]) || !isfinite(h->qoffset[i])))
                return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: qform parameters are not finite", path);
    }
    int scaled = isfinite(h->scl_slope) && h->scl_slope != 0;
    if (scaled && !isfinite(h->scl_inter))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: scl_inter is not finite (scl_slope = %g)", path,
                        h->scl_slope);
    return CBQ_OK;
}

int cbq_nifti_parse_header(cbq_nifti_header *h, const unsigned char *buf, size_t len,
                           const char *path, cbq_error *err)
{
    memset(h, 0, sizeof *h);
    if (len < 4)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: file too short for a NIfTI header (%zu bytes)",
                        path, len);
    int64_t size = rd_i32(buf, 0, 0), swapped_size = rd_i32(buf, 0, 1);
    if (size == NII1_SIZE || size == NII2_SIZE) {
        h->swapped = 0;
    } else if (swapped_size == NII1_SIZE || swapped_size == NII2_SIZE) {
        h->swapped = 1;
        size = swapped_size;
    } else {
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: not a NIfTI file (sizeof_hdr = %lld, expected 348 or 540)", path,
                        (long long)size);
    }
    h->version = size == NII1_SIZE ? 1 : 2;
    if (len < (size_t)size)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: truncated NIfTI-%d header (%zu of %lld bytes)",
                        path, h->version, len, (long long)size);
    if (h->version == 1)
        decode_v1(h, buf, h->swapped);
    else
        decode_v2(h, buf, h->swapped);
    CBQ_TRY(check_magic(h, buf, path, err));
    h->bytes_per_voxel = dtype_size(h->datatype);
    if (h->bytes_per_voxel == 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: datatype %d (%s) is not supported; expected a real scalar type "
                        "(integer or float32/float64)", path, h->datatype,
                        cbq_nifti_dtype_name(h->datatype));
    CBQ_TRY(check_dims(h, path, err));
    if (h->version == 1 && h->vox_offset == 0 && !h->two_file)
        h->vox_offset = 352; /* 0 is tolerated by readers for single files */
    if (h->two_file && h->vox_offset < 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: vox_offset must be a whole number >= 0 (the offset in the .img)",
                        path);
    if (!h->two_file && h->vox_offset < size)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: vox_offset must be a whole number >= %lld (the header size)", path,
                        (long long)size);
    CBQ_TRY(check_numbers(h, path, err));
    return CBQ_OK;
}

/* ---- geometry ----------------------------------------------------------- */

void cbq_nifti_header_affine(const cbq_nifti_header *h, double a[4][4])
{
    memset(a, 0, 16 * sizeof(double));
    a[3][3] = 1.0;
    if (h->sform_code != 0) {
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                a[r][c] = h->srow[r][c];
    } else if (h->qform_code != 0) {
        double qfac = h->pixdim[0] < 0 ? -1.0 : 1.0;
        nifti_dmat44 m = nifti_quatern_to_dmat44(h->quatern[0], h->quatern[1], h->quatern[2],
                                                 h->qoffset[0], h->qoffset[1], h->qoffset[2],
                                                 h->pixdim[1], h->pixdim[2], h->pixdim[3], qfac);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                a[r][c] = m.m[r][c];
    } else {
        /* nibabel's base affine: x flipped (radiological), grid centre at 0. */
        double z[3] = {-h->pixdim[1], h->pixdim[2], h->pixdim[3]};
        for (int r = 0; r < 3; r++) {
            a[r][r] = z[r];
            a[r][3] = -((double)(h->dim[r + 1] - 1) / 2.0) * z[r];
        }
    }
}

static double det3(const double a[4][4])
{
    return a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) -
           a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
           a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
}

static int set_geometry(cbq_volume *vol, const cbq_nifti_header *h, const char *path,
                        cbq_error *err)
{
    cbq_nifti_header_affine(h, vol->affine);
    const char *form = h->sform_code ? "sform" : "qform";
    for (int c = 0; c < 3; c++) {
        double s = 0;
        for (int r = 0; r < 3; r++)
            s += vol->affine[r][c] * vol->affine[r][c];
        vol->spacing[c] = sqrt(s);
        if (!(vol->spacing[c] > 0) || !isfinite(vol->spacing[c]))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s: the %s gives voxel axis %d zero length: a singular affine", path,
                            form, c);
    }
    /* Axes of non-zero length can still be (nearly) parallel: the volume of
     * a voxel, relative to the product of its edge lengths, is |sin| of the
     * angles between them. Such an affine has no inverse: world positions
     * cannot be mapped back to voxels. */
    double rel = fabs(det3(vol->affine)) / (vol->spacing[0] * vol->spacing[1] * vol->spacing[2]);
    if (!(rel > 1e-6))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: the %s is rank-deficient (its voxel axes are linearly dependent, "
                        "normalised determinant %.3g): a singular affine; expected three "
                        "independent axes", path, form, rel);
    return CBQ_OK;
}

/* ---- voxel conversion --------------------------------------------------- */

typedef struct {
    int datatype, swap, scaled;
    double slope, inter;
    size_t nonfinite, first_bad;
} convert_ctx;

#define CONVERT_CASE(CODE, TYPE)                                               \
    case CODE:                                                                 \
        for (size_t i = 0; i < n; i++) {                                       \
            TYPE v;                                                            \
            get_bytes(&v, src + i * sizeof(TYPE), sizeof(TYPE), c->swap);      \
            out[i] = c->scaled ? (float)((double)v * c->slope + c->inter)     \
                               : (float)v;                                     \
        }                                                                      \
        break;

/* Converts n voxels starting at voxel index `base` and counts non-finite ones. */
static void convert_chunk(convert_ctx *c, const unsigned char *src, float *out, size_t n,
                          size_t base)
{
    switch (c->datatype) {
    CONVERT_CASE(NIFTI_TYPE_UINT8, uint8_t)
    CONVERT_CASE(NIFTI_TYPE_INT8, int8_t)
    CONVERT_CASE(NIFTI_TYPE_INT16, int16_t)
    CONVERT_CASE(NIFTI_TYPE_UINT16, uint16_t)
    CONVERT_CASE(NIFTI_TYPE_INT32, int32_t)
    CONVERT_CASE(NIFTI_TYPE_UINT32, uint32_t)
    CONVERT_CASE(NIFTI_TYPE_INT64, int64_t)
    CONVERT_CASE(NIFTI_TYPE_UINT64, uint64_t)
    CONVERT_CASE(NIFTI_TYPE_FLOAT32, float)
    CONVERT_CASE(NIFTI_TYPE_FLOAT64, double)
    default: break;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(out[i]) && c->nonfinite++ == 0)
            c->first_bad = base + i;
}

/* ---- reading -------------------------------------------------------------- */

static int ends_with_ext(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

static int open_read(gzFile *gz, const char *path, cbq_error *err)
{
    *gz = NULL;
    CBQ_TRY(cbq_volume_path_check(path, 0, err));
    *gz = gzopen(path, "rb");
    if (!*gz)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open: %s", path,
                        errno ? strerror(errno) : "out of memory");
    gzbuffer(*gz, 1 << 18);
    return CBQ_OK;
}

/* Reads up to `want` bytes; returns bytes read or -1 on a zlib error. */
static long long gz_read_full(gzFile gz, void *dst, size_t want)
{
    size_t got = 0;
    while (got < want) {
        size_t ask = want - got > (1u << 30) ? (1u << 30) : want - got;
        int r = gzread(gz, (unsigned char *)dst + got, (unsigned)ask);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (long long)got;
}

static int read_header_gz(gzFile gz, cbq_nifti_header *h, const char *path, cbq_error *err)
{
    unsigned char buf[NII2_SIZE];
    long long got = gz_read_full(gz, buf, sizeof buf);
    if (got < 0) {
        int zerr;
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: cannot decompress: %s", path, gzerror(gz, &zerr));
    }
    return cbq_nifti_parse_header(h, buf, (size_t)got, path, err);
}

int cbq_nifti_read_header(cbq_nifti_header *hdr, const char *path, cbq_error *err)
{
    gzFile gz;
    CBQ_TRY(open_read(&gz, path, err));
    int rc = read_header_gz(gz, hdr, path, err);
    gzclose(gz);
    return rc;
}

static int read_voxels(gzFile gz, cbq_volume *vol, const cbq_nifti_header *h, const char *path,
                       cbq_error *err)
{
    if (gzseek(gz, (z_off_t)h->vox_offset, SEEK_SET) != (z_off_t)h->vox_offset)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: truncated: file ends before vox_offset %lld",
                        path, (long long)h->vox_offset);
    convert_ctx c = {.datatype = h->datatype, .swap = h->swapped,
                     .scaled = isfinite(h->scl_slope) && h->scl_slope != 0,
                     .slope = h->scl_slope, .inter = h->scl_inter};
    size_t bpv = h->bytes_per_voxel, per_chunk = IO_CHUNK / bpv;
    unsigned char *buf = malloc(IO_CHUNK);
    if (!buf)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
    int rc = CBQ_OK;
    for (size_t done = 0; done < h->nvox && rc == CBQ_OK;) {
        size_t n = h->nvox - done < per_chunk ? h->nvox - done : per_chunk;
        long long got = gz_read_full(gz, buf, n * bpv);
        if (got < 0) {
            int zerr;
            rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: cannot decompress voxel data: %s", path,
                          gzerror(gz, &zerr));
        } else if ((size_t)got < n * bpv) {
            rc = CBQ_FAIL(err, CBQ_ERR_FORMAT,
                          "%s: truncated: %zu bytes of voxel data expected after offset %lld, "
                          "the file holds %zu",
                          path, h->data_bytes, (long long)h->vox_offset, done * bpv + (size_t)got);
        } else {
            convert_chunk(&c, buf, vol->data + done, n, done);
            done += n;
        }
    }
    free(buf);
    if (rc == CBQ_OK && c.nonfinite) {
        size_t i = c.first_bad % vol->nx, j = c.first_bad / vol->nx % vol->ny,
               k = c.first_bad / vol->nx / vol->ny;
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT,
                      "%s: %zu voxels are NaN or infinite after scaling (first at i=%zu j=%zu "
                      "k=%zu); a CT volume must be finite",
                      path, c.nonfinite, i, j, k);
    }
    return rc;
}

/* Before allocating: can the file hold what the header promises? Plain
 * files must hold every byte; deflate cannot expand more than ~1032:1. */
static int check_file_size(gzFile gz, const cbq_nifti_header *h, const char *path,
                           cbq_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return CBQ_OK; /* it was opened; the reads will tell */
    double size = (double)st.st_size, need = (double)h->vox_offset + (double)h->data_bytes;
    if (gzdirect(gz) && need > size)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: truncated: the header promises %zu bytes of voxel data after offset "
                        "%lld (%lldx%lldx%lld %s), the file has %.0f bytes",
                        path, h->data_bytes, (long long)h->vox_offset, (long long)h->dim[1],
                        (long long)h->dim[2], (long long)h->dim[3],
                        cbq_nifti_dtype_name(h->datatype), size);
    if (!gzdirect(gz) && need > 1100.0 * size + 65536.0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: truncated or corrupt: %lldx%lldx%lld %s voxels cannot come from "
                        "%.0f compressed bytes", path, (long long)h->dim[1], (long long)h->dim[2],
                        (long long)h->dim[3], cbq_nifti_dtype_name(h->datatype), size);
    return CBQ_OK;
}

/* zlib checks a gzip member's trailer (CRC-32 and length) only when a read
 * reaches it, and the voxels end before it. Reading on to the end makes it
 * check: a missing or cut trailer leaves Z_BUF_ERROR ("unexpected end of
 * file", which gzread itself reports as a plain end of file), a wrong CRC
 * Z_DATA_ERROR. Bytes after the voxel data are allowed. */
static int check_gzip_end(gzFile gz, const char *path, cbq_error *err)
{
    unsigned char sink[4096];
    int got;
    while ((got = gzread(gz, sink, sizeof sink)) > 0)
        ;
    int zerr = Z_OK;
    const char *why = gzerror(gz, &zerr);
    if (got < 0 || zerr != Z_OK)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: truncated or corrupt gzip stream after the voxel data (%s): a "
                        ".nii.gz must end with its gzip trailer (CRC-32 and length)",
                        path, zerr == Z_BUF_ERROR ? "no gzip trailer" : why);
    return CBQ_OK;
}

/* A .hdr/.img pair named by either file, each plain or gzipped (as
 * nifti_clib accepts them): the other file's name, same compression first.
 * 0 when `path` does not end like a pair. */
static int pair_partner(const char *path, const char *want_ext, char *out, size_t cap,
                        int swap_gz)
{
    static const char *const exts[] = {".hdr.gz", ".img.gz", ".hdr", ".img"};
    for (size_t e = 0; e < 4; e++) {
        if (!ends_with_ext(path, exts[e]))
            continue;
        int gz = e < 2;
        if (swap_gz)
            gz = !gz;
        size_t stem = strlen(path) - strlen(exts[e]);
        int n = snprintf(out, cap, "%.*s%s%s", (int)stem, path, want_ext, gz ? ".gz" : "");
        return n > 0 && (size_t)n < cap;
    }
    return 0;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The header file to read for `path`: itself, or for a .img its .hdr
 * (a missing one is named by the open that fails). */
static void header_path(const char *path, char *out, size_t cap)
{
    int is_img = ends_with_ext(path, ".img") || ends_with_ext(path, ".img.gz");
    if (!is_img || !pair_partner(path, ".hdr", out, cap, 0)) {
        snprintf(out, cap, "%s", path);
        return;
    }
    char other[4096];
    if (!file_exists(out) && pair_partner(path, ".hdr", other, sizeof other, 1) &&
        file_exists(other))
        snprintf(out, cap, "%s", other);
}

/* Opens the .img of the pair whose header is `hdr`. */
static int open_image(gzFile *gz, char *img, size_t cap, const char *hdr, cbq_error *err)
{
    if (!pair_partner(hdr, ".img", img, cap, 0))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: the header says its voxels are in a separate .img file (magic "
                        "\"ni1\"), but the file is not named .hdr or .hdr.gz", hdr);
    if (!file_exists(img)) {
        char other[4096];
        if (!pair_partner(hdr, ".img", other, sizeof other, 1) || !file_exists(other))
            return CBQ_FAIL(err, CBQ_ERR_IO,
                            "%s: no image file %s beside the header: a .hdr/.img pair needs "
                            "both files", hdr, img);
        snprintf(img, cap, "%s", other);
    }
    return open_read(gz, img, err);
}

int cbq_nifti_read_ex(cbq_volume *vol, cbq_nifti_header *hdr_out, const char *path,
                      cbq_error *err)
{
    memset(vol, 0, sizeof *vol);
    cbq_nifti_header h;
    char hdr[4096], img[4096];
    header_path(path, hdr, sizeof hdr);
    gzFile gz;
    CBQ_TRY(open_read(&gz, hdr, err));
    int rc = read_header_gz(gz, &h, hdr, err);
    const char *data_path = hdr;
    if (rc == CBQ_OK && h.two_file) {
        gzclose(gz);
        gz = NULL;
        rc = open_image(&gz, img, sizeof img, hdr, err);
        if (rc == CBQ_OK)
            data_path = img;
    }
    if (rc == CBQ_OK)
        rc = check_file_size(gz, &h, data_path, err);
    if (rc == CBQ_OK) {
        rc = cbq_volume_alloc(vol, (size_t)h.dim[1], (size_t)h.dim[2], (size_t)h.dim[3], NULL, 0,
                              err);
        if (rc != CBQ_OK)
            cbq_error_prefix(err, "%s: ", path);
        else
            cbq_io_advise_huge(vol);
    }
    if (rc == CBQ_OK)
        rc = set_geometry(vol, &h, hdr, err);
    if (rc == CBQ_OK)
        rc = read_voxels(gz, vol, &h, data_path, err);
    if (rc == CBQ_OK && !gzdirect(gz))
        rc = check_gzip_end(gz, data_path, err);
    if (gz)
        gzclose(gz);
    if (rc != CBQ_OK) {
        if (data_path == img && strcmp(path, img) != 0)
            cbq_error_prefix(err, "%s: ", path); /* the user named the header */
        cbq_volume_free(vol);
        return rc;
    }
    if (hdr_out)
        *hdr_out = h;
    return CBQ_OK;
}

int cbq_nifti_read(cbq_volume *vol, const char *path, cbq_error *err)
{
    return cbq_nifti_read_ex(vol, NULL, path, err);
}

/* ---- writing --------------------------------------------------------------- */

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A qform is a rotation, positive voxel sizes and an optional flip of k;
 * it cannot hold a sheared (or otherwise non-orthogonal) affine. True when
 * the quaternion found for `m` gives `m` back. */
static int qform_holds(const nifti_dmat44 *m, double qb, double qc, double qd, double dx,
                       double dy, double dz, double qfac)
{
    nifti_dmat44 back = nifti_quatern_to_dmat44(qb, qc, qd, 0, 0, 0, dx, dy, dz, qfac);
    double scale = fmax(dx, fmax(dy, dz));
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 3; c++)
            if (fabs(back.m[r][c] - m->m[r][c]) > 1e-6 * scale)
                return 0;
    return 1;
}

/* The sform holds the affine exactly. The qform holds it too (code 1,
 * scanner) when it can; for a sheared affine nifti_dmat44_to_quatern would
 * give the nearest rotation, a second transform that disagrees with the
 * sform, so the qform is left unset (code 0, quaternion zero) instead and
 * every reader takes the sform. pixdim holds the column lengths either way. */
static void fill_geometry_v1(nifti_1_header *h, const cbq_volume *vol)
{
    nifti_dmat44 m;
    memset(&m, 0, sizeof m);
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 4; c++)
            m.m[r][c] = vol->affine[r][c];
    double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
    nifti_dmat44_to_quatern(m, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
    int has_qform = qform_holds(&m, qb, qc, qd, dx, dy, dz, qfac);
    if (!has_qform) { /* dx, dy, dz stay: the column lengths */
        qb = qc = qd = qx = qy = qz = 0;
        qfac = 1;
    }
    h->pixdim[0] = (float)qfac;
    h->pixdim[1] = (float)dx;
    h->pixdim[2] = (float)dy;
    h->pixdim[3] = (float)dz;
    h->quatern_b = (float)qb;
    h->quatern_c = (float)qc;
    h->quatern_d = (float)qd;
    h->qoffset_x = (float)qx;
    h->qoffset_y = (float)qy;
    h->qoffset_z = (float)qz;
    for (int c = 0; c < 4; c++) {
        h->srow_x[c] = (float)vol->affine[0][c];
        h->srow_y[c] = (float)vol->affine[1][c];
        h->srow_z[c] = (float)vol->affine[2][c];
    }
    h->qform_code = has_qform ? NIFTI_XFORM_SCANNER_ANAT : NIFTI_XFORM_UNKNOWN;
    h->sform_code = NIFTI_XFORM_SCANNER_ANAT;
}

/* NIfTI-1 header + 4 zero extension bytes, little-endian. */
static size_t build_header_v1(unsigned char *out, const cbq_volume *vol, int dtype)
{
    nifti_1_header h;
    memset(&h, 0, sizeof h);
    h.sizeof_hdr = NII1_SIZE;
    h.dim[0] = 3;
    h.dim[1] = (short)vol->nx;
    h.dim[2] = (short)vol->ny;
    h.dim[3] = (short)vol->nz;
    for (int i = 4; i < 8; i++)
        h.dim[i] = 1;
    h.datatype = (short)dtype;
    h.bitpix = (short)(8 * dtype_size(dtype));
    h.vox_offset = 352;
    h.scl_slope = 1;
    h.xyzt_units = NIFTI_UNITS_MM;
    fill_geometry_v1(&h, vol);
    snprintf(h.descrip, sizeof h.descrip, "cbctiq");
    memcpy(h.magic, "n+1", 4);
    memcpy(out, &h, NII1_SIZE);
    memset(out + NII1_SIZE, 0, 4);
    return 352;
}

static size_t build_header_v2(unsigned char *out, const cbq_volume *vol, int dtype)
{
    nifti_1_header h1;
    memset(&h1, 0, sizeof h1);
    fill_geometry_v1(&h1, vol);
    nifti_2_header h;
    memset(&h, 0, sizeof h);
    h.sizeof_hdr = NII2_SIZE;
    memcpy(h.magic, "n+2\0\r\n\032\n", 8);
    h.datatype = (int16_t)dtype;
    h.bitpix = (int16_t)(8 * dtype_size(dtype));
    h.dim[0] = 3;
    h.dim[1] = (int64_t)vol->nx;
    h.dim[2] = (int64_t)vol->ny;
    h.dim[3] = (int64_t)vol->nz;
    for (int i = 4; i < 8; i++)
        h.dim[i] = 1;
    for (int i = 0; i < 4; i++)
        h.pixdim[i] = h1.pixdim[i];
    h.vox_offset = 544;
    h.scl_slope = 1;
    h.xyzt_units = NIFTI_UNITS_MM;
    h.qform_code = h1.qform_code;
    h.sform_code = h1.sform_code;
    h.quatern_b = h1.quatern_b;
    h.quatern_c = h1.quatern_c;
    h.quatern_d = h1.quatern_d;
    h.qoffset_x = h1.qoffset_x;
    h.qoffset_y = h1.qoffset_y;
    h.qoffset_z = h1.qoffset_z;
    for (int c = 0; c < 4; c++) {
        h.srow_x[c] = vol->affine[0][c];
        h.srow_y[c] = vol->affine[1][c];
        h.srow_z[c] = vol->affine[2][c];
    }
    snprintf(h.descrip, sizeof h.descrip, "cbctiq");
    memcpy(out, &h, NII2_SIZE);
    memset(out + NII2_SIZE, 0, 4);
    return 544;
}

/* Range and NaN check before anything is written, so a failure leaves nothing. */
static int check_range(const cbq_volume *vol, int dtype, const char *path, cbq_error *err)
{
    double lo, hi;
    switch (dtype) {
    case CBQ_NIFTI_UINT8: lo = 0; hi = 255; break;
    case CBQ_NIFTI_INT8: lo = -128; hi = 127; break;
    case CBQ_NIFTI_INT16: lo = -32768; hi = 32767; break;
    case CBQ_NIFTI_UINT16: lo = 0; hi = 65535; break;
    case CBQ_NIFTI_INT32: lo = -2147483648.0; hi = 2147483647.0; break;
    default: return CBQ_OK; /* float types hold every float32 */
    }
    size_t n = cbq_volume_count(vol);
    for (size_t i = 0; i < n; i++) {
        /* in range before rounding = in range after (integer bounds) */
        double v = vol->data[i];
        if (v >= lo && v <= hi)
            continue;
        v = nearbyint(v);
        if (!(v >= lo && v <= hi))
            return CBQ_FAIL(err, CBQ_ERR_RANGE,
                            "%s: voxel %zu (i=%zu j=%zu k=%zu) = %g does not fit %s", path, i,
                            i % vol->nx, i / vol->nx % vol->ny, i / vol->nx / vol->ny,
                            (double)vol->data[i], cbq_nifti_dtype_name(dtype));
    }
    return CBQ_OK;
}

#define ENCODE_INT(TYPE)                                                       \
    for (size_t i = 0; i < n; i++) {                                           \
        TYPE t = (TYPE)nearbyintf(src[i]);                                     \
        memcpy(dst + i * sizeof(TYPE), &t, sizeof(TYPE));                      \
    }                                                                          \
    break;

/* Values were range-checked before; nearbyintf rounds ties to even. */
static void encode_chunk(unsigned char *dst, const float *src, size_t n, int dtype)
{
    switch (dtype) {
    case CBQ_NIFTI_UINT8: ENCODE_INT(uint8_t)
    case CBQ_NIFTI_INT8: ENCODE_INT(int8_t)
    case CBQ_NIFTI_INT16: ENCODE_INT(int16_t)
    case CBQ_NIFTI_UINT16: ENCODE_INT(uint16_t)
    case CBQ_NIFTI_INT32:
        for (size_t i = 0; i < n; i++) {
            int32_t t = (int32_t)nearbyint((double)src[i]);
            memcpy(dst + 4 * i, &t, 4);
        }
        break;
    case CBQ_NIFTI_FLOAT32: memcpy(dst, src, 4 * n); break;
    case CBQ_NIFTI_FLOAT64:
        for (size_t i = 0; i < n; i++) {
            double t = src[i];
            memcpy(dst + 8 * i, &t, 8);
        }
        break;
    default: break;
    }
}

static int gz_write_all(gzFile gz, const void *buf, size_t len)
{
    return len == 0 || gzwrite(gz, buf, (unsigned)len) == (int)len;
}

static int write_body(gzFile gz, const cbq_volume *vol, int dtype)
{
    unsigned char hdr[NII2_SIZE + 4];
    int big = vol->nx > 32767 || vol->ny > 32767 || vol->nz > 32767;
    size_t hlen = big ? build_header_v2(hdr, vol, dtype) : build_header_v1(hdr, vol, dtype);
    if (!gz_write_all(gz, hdr, hlen))
        return 0;
    size_t bpv = dtype_size(dtype), per_chunk = IO_CHUNK / bpv, n = cbq_volume_count(vol);
    unsigned char *buf = malloc(IO_CHUNK);
    if (!buf)
        return 0;
    int ok = 1;
    for (size_t done = 0; done < n && ok; done += per_chunk) {
        size_t m = n - done < per_chunk ? n - done : per_chunk;
        encode_chunk(buf, vol->data + done, m, dtype);
        ok = gz_write_all(gz, buf, m * bpv);
    }
    free(buf);
    return ok;
}

int cbq_nifti_write(const char *path, const cbq_volume *vol, cbq_nifti_dtype dtype, cbq_error *err)
{
    CBQ_CHECK_ARG(err, vol && vol->data && cbq_volume_count(vol) > 0,
                  "%s: nothing to write (empty volume)", path);
    CBQ_CHECK_ARG(err, dtype_size((int)dtype) > 0, "%s: unsupported output datatype %d", path,
                  (int)dtype);
    CBQ_CHECK_ARG(err, ends_with(path, ".nii") || ends_with(path, ".nii.gz"),
                  "%s: a NIfTI output name must end in .nii or .nii.gz", path);
    CBQ_TRY(check_range(vol, (int)dtype, path, err));
    char tmp[4096];
    CBQ_TRY(cbq_atomic_tmp_name(tmp, sizeof tmp, path, err));
    /* Level 1: CT noise compresses little better at higher levels, and
     * writing stays I/O-bound rather than deflate-bound. "T" = plain file. */
    gzFile gz = gzopen(tmp, ends_with(path, ".gz") ? "wb1" : "wbT");
    if (!gz) {
        const char *why = errno ? strerror(errno) : "out of memory";
        cbq_atomic_discard(tmp);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot create: %s", path, why);
    }
    gzbuffer(gz, 1 << 18);
    errno = 0;
    int ok = write_body(gz, vol, (int)dtype);
    char reason[256] = "";
    if (!ok) {
        int zerr = Z_OK;
        const char *why = gzerror(gz, &zerr);
        snprintf(reason, sizeof reason, "%s", zerr == Z_ERRNO && errno ? strerror(errno)
                                               : why && *why ? why : "write failed");
    }
    int close_rc = gzclose(gz);
    if (ok && close_rc != Z_OK) {
        ok = 0;
        snprintf(reason, sizeof reason, "%s", errno ? strerror(errno) : "close failed");
    }
    if (!ok) {
        cbq_atomic_discard(tmp);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot write: %s", path, reason);
    }
    return cbq_atomic_rename(tmp, path, err);
}
