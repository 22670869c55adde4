/* png.h - write 8-bit grey or RGB images as PNG (libpng), atomically, and
 * an axial slice with structure outlines for checking data by eye. */
#ifndef CBCTIQ_PNG_H
#define CBCTIQ_PNG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "cbctiq/error.h"
#include "cbctiq/structures.h"
#include "cbctiq/volume.h"

#ifdef __cplusplus
extern "C" {
#endif

/* pixels: height rows of width * channels bytes (channels 1 = grey, 3 = RGB),
 * top row first. */
int cbq_png_write(const char *path, const uint8_t *pixels, size_t width, size_t height,
                  int channels, cbq_error *err);
/* The same PNG into an open stream (e.g. an open_memstream for a data URI);
 * 0 when libpng fails, 1 when written. */
int cbq_png_write_stream(FILE *fp, const uint8_t *pixels, size_t width, size_t height,
                         int channels);

/* Axial slice k of a canonical volume as seen from the feet (patient right
 * on the image left, anterior at the top: row = j, column = i), windowed to
 * [hu_min, hu_max], each scale x `zoom`, with the outline of every structure
 * present in `st` (may be NULL) in its own colour. */
int cbq_png_axial(const char *path, const cbq_volume *canon, size_t k, double hu_min,
                  double hu_max, const cbq_structures *st, int zoom, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
