/* png.c - PNG output through libpng (see include/cbctiq/png.h). */
#include "cbctiq/png.h"

#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"

/* libpng reports errors by longjmp; keep the jump local to this function. */
int cbq_png_write_stream(FILE *fp, const uint8_t *pixels, size_t width, size_t height,
                         int channels)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        return 0;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return 0;
    }
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                 channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (size_t y = 0; y < height; y++)
        png_write_row(png, (png_const_bytep)(pixels + y * width * (size_t)channels));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return 1;
}

int cbq_png_write(const char *path, const uint8_t *pixels, size_t width, size_t height,
                  int channels, cbq_error *err)
{
    CBQ_CHECK_ARG(err, width > 0 && height > 0 && width < (1u << 24) && height < (1u << 24),
                  "%s: image size %zux%zu out of range", path, width, height);
    CBQ_CHECK_ARG(err, channels == 1 || channels == 3, "%s: %d channels, expected 1 or 3", path,
                  channels);
    cbq_atomic_file af;
    CBQ_TRY(cbq_atomic_open(&af, path, err));
    if (!cbq_png_write_stream(af.fp, pixels, width, height, channels)) {
        cbq_atomic_abort(&af);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot write PNG", path);
    }
    return cbq_atomic_commit(&af, err);
}

static const uint8_t palette[CBQ_STRUCT_COUNT][3] = {
    {255, 80, 80}, {80, 220, 80}, {80, 160, 255}, {255, 220, 40}};

int cbq_png_axial(const char *path, const cbq_volume *canon, size_t k, double hu_min,
                  double hu_max, const cbq_structures *st, int zoom, cbq_error *err)
{
    CBQ_CHECK_ARG(err, k < canon->nz, "%s: slice %zu outside the volume (%zu slices)", path, k,
                  canon->nz);
    CBQ_CHECK_ARG(err, zoom >= 1 && zoom <= 16 && hu_max > hu_min, "%s: bad zoom or window", path);
    size_t nx = canon->nx, ny = canon->ny, w = nx * (size_t)zoom, h = ny * (size_t)zoom;
    uint8_t *rgb = malloc(w * h * 3);
    if (!rgb)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
    const float *plane = canon->data + k * nx * ny;
    size_t off = k * nx * ny;
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
            size_t i = x / (size_t)zoom, j = y / (size_t)zoom;
            double v = (plane[j * nx + i] - hu_min) / (hu_max - hu_min);
            uint8_t g = (uint8_t)(255.0 * (v < 0 ? 0 : v > 1 ? 1 : v) + 0.5);
            uint8_t *p = rgb + 3 * (y * w + x);
            p[0] = p[1] = p[2] = g;
            for (int s = 0; st && s < CBQ_STRUCT_COUNT; s++) {
                const uint8_t *m = st->mask[s];
                if (!m || !m[off + j * nx + i])
                    continue;
                /* outline: a mask voxel with a 4-neighbour outside the mask */
                int edge = i == 0 || j == 0 || i + 1 == nx || j + 1 == ny ||
                           !m[off + j * nx + i - 1] || !m[off + j * nx + i + 1] ||
                           !m[off + (j - 1) * nx + i] || !m[off + (j + 1) * nx + i];
                if (edge)
                    memcpy(p, palette[s], 3);
            }
        }
    int rc = cbq_png_write(path, rgb, w, h, 3, err);
    free(rgb);
    return rc;
}
