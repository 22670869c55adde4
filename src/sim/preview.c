/* preview.c - a grey-scale PNG montage of axial slices, for looking at what
 * the simulator made (cbctiq simulate --preview). Written with libpng to a
 * temporary name, then renamed. */
#include "cbctiq/sim.h"
#include "cbctiq/atomic_file.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cbq_sim_preview_png(const char *path, const cbq_preview_tile *tiles, size_t n_tiles, size_t cols,
                        double hu_lo, double hu_hi, cbq_error *err)
{
    CBQ_CHECK_ARG(err, n_tiles > 0 && cols > 0, "preview: nothing to draw");
    size_t tw = 0, th = 0;
    for (size_t t = 0; t < n_tiles; t++) {
        CBQ_CHECK_ARG(err, tiles[t].vol && tiles[t].k < tiles[t].vol->nz, "preview: tile %zu has no slice %zu",
                      t, tiles[t].k);
        if (tiles[t].vol->nx > tw) tw = tiles[t].vol->nx;
        if (tiles[t].vol->ny > th) th = tiles[t].vol->ny;
    }
    /* Small grids are drawn at twice their size (nearest neighbour). */
    size_t zoom = tw <= 256 && th <= 256 ? 2 : 1;
    tw *= zoom;
    th *= zoom;
    size_t rows = (n_tiles + cols - 1) / cols, gap = 4;
    size_t w = cols * (tw + gap), h = rows * (th + gap);
    unsigned char *pix = calloc(w * h, 1);
    if (!pix)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "preview: out of memory");
    for (size_t t = 0; t < n_tiles; t++) {
        const cbq_volume *v = tiles[t].vol;
        size_t ox = (t % cols) * (tw + gap), oy = (t / cols) * (th + gap);
        for (size_t j = 0; j < v->ny * zoom; j++)
            for (size_t i = 0; i < v->nx * zoom; i++) {
                /* Radiological view: patient right on the image left, anterior up. */
                double x = (*cbq_volume_at(v, i / zoom, j / zoom, tiles[t].k) - hu_lo) / (hu_hi - hu_lo);
                x = fmin(fmax(x, 0.0), 1.0);
                pix[(ox + i) + w * (oy + j)] = (unsigned char)lrint(255.0 * x);
            }
    }
    char tmp[4096] = "";
    int rc = cbq_atomic_tmp_name(tmp, sizeof tmp, path, err);
    FILE *fp = rc == CBQ_OK ? fopen(tmp, "wb") : NULL;
    if (rc == CBQ_OK && !fp)
        rc = CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot create the preview", path);
    png_structp png = fp ? png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL) : NULL;
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (fp && (!png || !info))
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: libpng could not start", path);
    if (rc == CBQ_OK) {
        if (setjmp(png_jmpbuf(png))) {
            rc = CBQ_FAIL(err, CBQ_ERR_IO, "%s: writing the PNG failed", path);
        } else {
            png_init_io(png, fp);
            png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_GRAY,
                         PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
            png_write_info(png, info);
            for (size_t y = 0; y < h; y++)
                png_write_row(png, pix + y * w);
            png_write_end(png, NULL);
        }
    }
    if (png)
        png_destroy_write_struct(&png, info ? &info : NULL);
    if (fp && fclose(fp) != 0 && rc == CBQ_OK)
        rc = CBQ_FAIL(err, CBQ_ERR_IO, "%s: closing the preview failed", path);
    free(pix);
    if (rc == CBQ_OK)
        rc = cbq_atomic_rename(tmp, path, err);
    else if (tmp[0])
        cbq_atomic_discard(tmp);
    return rc;
}
