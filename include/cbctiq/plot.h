/* plot.h - figures for cbctiq's report: charts and heat-map overlay montages.
 *
 * A figure is described as data (a cbq_chart or a cbq_montage: plain structs
 * pointing at the caller's arrays), drawn once into a cbq_figure (a cairo
 * vector recording) and then written as PNG, SVG and/or PDF. Nothing is global:
 * two threads may draw two figures at once. Text is DejaVu Sans. Files are
 * written atomically (temporary name, then rename).
 *
 *   double x[3] = {1, 2, 3}, y[3] = {2, 4, 5};
 *   cbq_series s = {.kind = CBQ_SERIES_SCATTER, .x = x, .y = y, .n = 3, .color = -1};
 *   cbq_chart c = {.title = "AE vs consensus", .x_label = "consensus score",
 *                  .y_label = "AE", .series = &s, .n_series = 1};
 *   cbq_figure *fig = NULL;
 *   CBQ_TRY(cbq_chart_draw(&fig, &c, err));
 *   int rc = cbq_figure_save(fig, "out/figures", "scatter", err); // .png .svg .pdf
 *   cbq_figure_free(fig);
 */
#ifndef CBCTIQ_PLOT_H
#define CBCTIQ_PLOT_H

#include <stddef.h>
#include "cbctiq/colormap.h"
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- figures -------------------------------------------------------- */

typedef struct cbq_figure cbq_figure; /* opaque: a drawn figure and its size */

void cbq_figure_free(cbq_figure *fig);            /* NULL is fine */
int cbq_figure_width(const cbq_figure *fig);      /* pixels */
int cbq_figure_height(const cbq_figure *fig);

/* A figure's pixel is 1/CBQ_FIGURE_DPI inch: a PNG at that resolution has
 * one pixel per figure pixel, one at twice it has twice the pixels each
 * way, and the PDF page has the PNG's size in inches (640 px: 4.27 in). */
#define CBQ_FIGURE_DPI 150
#define CBQ_FIGURE_DPI_MIN 50
#define CBQ_FIGURE_DPI_MAX 1200

/* PNG (white background) / SVG (units px) / PDF (vector, fonts embedded)
 * under `path`, atomically. cbq_figure_write_png is at CBQ_FIGURE_DPI;
 * _dpi renders the vector drawing at `dpi` (CBQ_FIGURE_DPI_MIN..MAX). */
int cbq_figure_write_png(const cbq_figure *fig, const char *path, cbq_error *err);
int cbq_figure_write_png_dpi(const cbq_figure *fig, const char *path, int dpi, cbq_error *err);
int cbq_figure_write_svg(const cbq_figure *fig, const char *path, cbq_error *err);
int cbq_figure_write_pdf(const cbq_figure *fig, const char *path, cbq_error *err);
/* All three: DIR/STEM.png (at `dpi`; cbq_figure_save: CBQ_FIGURE_DPI),
 * DIR/STEM.svg and DIR/STEM.pdf (DIR is created if missing). */
int cbq_figure_save_dpi(const cbq_figure *fig, const char *dir, const char *stem, int dpi,
                        cbq_error *err);
int cbq_figure_save(const cbq_figure *fig, const char *dir, const char *stem, cbq_error *err);
/* The PNG file's bytes in memory; on success *png is malloc'ed and owned by
 * the caller (free()). */
int cbq_figure_png_bytes(const cbq_figure *fig, unsigned char **png, size_t *len, cbq_error *err);

/* ---- charts --------------------------------------------------------- */

typedef enum {
    CBQ_SERIES_SCATTER,   /* points (x[i], y[i]); optional text labels */
    CBQ_SERIES_LINE,      /* polyline through (x[i], y[i]); NaN breaks it */
    CBQ_SERIES_BARS,      /* bars of height y[i] at x[i] (x NULL: 0..n-1) */
    CBQ_SERIES_HISTOGRAM, /* counts of y[0..n) in `bins` equal bins */
    CBQ_SERIES_STRIP,     /* y[i] as points spread around x = strip_x */
    CBQ_SERIES_VLINE,     /* vertical reference line at each x = y[i] */
    CBQ_SERIES_HLINE      /* horizontal reference line at each y = y[i] */
} cbq_series_kind;

typedef struct {
    cbq_series_kind kind;
    const char *label;               /* legend text; NULL: not in the legend */
    const double *x;                 /* n values, see kind; may be NULL for BARS */
    const double *y;                 /* n values */
    size_t n;
    const char *const *point_labels; /* SCATTER: n texts drawn beside the points
                                        (NULL array or NULL entries: none) */
    int color;                       /* palette index (Okabe-Ito, 7 colours);
                                        -1: the series' position in the chart */
    int dashed;                      /* LINE, VLINE, HLINE */
    size_t bins;                     /* HISTOGRAM: bin count (0: ceil(sqrt(n))) */
    double strip_x;                  /* STRIP: centre of the strip on x */
} cbq_series;

typedef enum {
    CBQ_LEGEND_AUTO = 0, /* the corner covering the least data */
    CBQ_LEGEND_TOP_RIGHT, CBQ_LEGEND_TOP_LEFT, CBQ_LEGEND_BOTTOM_RIGHT, CBQ_LEGEND_BOTTOM_LEFT
} cbq_legend_pos;

typedef struct {
    const char *title, *x_label, *y_label;  /* NULL: none */
    int width, height;                      /* pixels; 0: 640 x 440 */
    const cbq_series *series;
    size_t n_series;
    int x_fixed, y_fixed;                   /* 1: use the limits below as given */
    double x_min, x_max, y_min, y_max;
    const char *const *x_categories;        /* categorical x axis: tick i named */
    size_t n_categories;                    /*   x_categories[i] (bar charts) */
    int y_integer;                          /* 1: y ticks on whole numbers only (counts);
                                               charts of histograms do this anyway */
    const char *annotation;                 /* text box ('\n' separates lines) */
    cbq_legend_pos legend_pos;              /* the annotation goes to the free corner
                                               covering the least data */
} cbq_chart;

/* Where data coordinates land on the figure, in pixels from the top left. */
typedef struct {
    double left, top, width, height;        /* the plot area */
    double x_min, x_max, y_min, y_max;      /* data range of the plot area */
} cbq_axes_frame;

/* Draws `chart`; on success *out is a new figure owned by the caller. Fails
 * with CBQ_ERR_ARG on a series without data, a non-finite fixed limit, or
 * no finite value to plot. */
int cbq_chart_draw(cbq_figure **out, const cbq_chart *chart, cbq_error *err);
/* The frame cbq_chart_draw uses for `chart` (same checks). */
int cbq_chart_frame(const cbq_chart *chart, cbq_axes_frame *frame, cbq_error *err);
/* Data (x, y) to pixel (*px, *py). */
void cbq_axes_frame_map(const cbq_axes_frame *frame, double x, double y, double *px, double *py);

/* "Nice" axis ticks: multiples of {1, 2, 2.5, 5} x 10^k covering [lo, hi]
 * with at most max_ticks inside it. Writes up to cap ticks, returns how many
 * (0 when lo, hi are not finite or cap is 0); *step receives the spacing. */
size_t cbq_nice_ticks(double lo, double hi, size_t max_ticks, double *ticks, size_t cap, double *step);

/* ---- heat-map overlays ------------------------------------------------ */

typedef struct {
    const float *image;   /* height x width, row-major, row 0 drawn at the top */
    const float *map;     /* same grid; NULL: the slice alone */
    const unsigned char *mask; /* same grid, non-zero inside a structure: its
                                  outline is drawn (vermillion); NULL: none */
    size_t width, height;
    double pixel_aspect;  /* pixel height / pixel width; 0: 1 */
    const char *title;    /* above the panel; NULL: none */
} cbq_overlay_panel;

typedef struct {
    const char *title;               /* above the montage; NULL: none */
    const cbq_overlay_panel *panels;
    size_t n_panels;
    size_t n_cols;                   /* 0: all panels in one row */
    int panel_size;                  /* longest image edge in pixels; 0: 240 */
    double window_lo, window_hi;     /* grey window, image units (e.g. HU) */
    cbq_colormap_id cmap;            /* of the map (default viridis) */
    double map_lo, map_hi;           /* colour scale shared by all panels */
    int map_auto;                    /* 1: map_lo/hi = min/max over all panels */
    double alpha;                    /* map opacity in (0, 1]; 0: 0.55 */
    const char *map_label;           /* colour bar caption with units */
} cbq_montage;

/* Draws the panels as grey slices (window_lo black, window_hi white) with the
 * map blended over them: map values above map_lo in the colour map at
 * opacity alpha (rising linearly from 0 over the lowest tenth of the scale),
 * values at or below map_lo and NaN left transparent. One
 * colour bar, in map units, serves all panels (a fixed scale, so panels can
 * be compared by eye). *out is a new figure owned by the caller. */
int cbq_montage_draw(cbq_figure **out, const cbq_montage *montage, cbq_error *err);
/* Panel i's pixels exactly as cbq_montage_draw blends them (window, colour
 * map, opacity, the montage's map scale), at the image's own size, without
 * titles, outline or colour bar: rgb[(y * width + x) * 3 + {0, 1, 2}] (R, G,
 * B), width * height * 3 bytes. For images written as they are (DICOM). */
int cbq_overlay_rgb(const cbq_montage *montage, size_t i, unsigned char *rgb, cbq_error *err);
/* Pixel rectangle of panel i's image: rect = {left, top, width, height}. */
int cbq_montage_panel_rect(const cbq_montage *montage, size_t i, double rect[4], cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
