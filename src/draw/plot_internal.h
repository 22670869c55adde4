/* plot_internal.h - what plot.c, overlay.c and figure.c share: the figure
 * object, text drawing in DejaVu Sans, the palette. Not a public header. */
#ifndef CBQ_IO_PLOT_INTERNAL_H
#define CBQ_IO_PLOT_INTERNAL_H

#include <cairo.h>
#include "cbctiq/plot.h"

struct cbq_figure {
    cairo_surface_t *recording; /* the vector drawing, replayed per output */
    int width, height;
};

#define PLOT_FONT "DejaVu Sans"
enum { FONT_TICK = 12, FONT_LABEL = 14, FONT_TITLE = 16, FONT_SMALL = 11 };

/* A new figure with a cairo context on its recording surface, white filled.
 * On success the caller draws with *cr, then calls figure_finish(). */
int figure_begin(cbq_figure **out, cairo_t **cr, int width, int height, cbq_error *err);
/* Destroys cr; on a cairo error frees the figure and returns failure. */
int figure_finish(cbq_figure **fig, cairo_t *cr, cbq_error *err);

typedef enum { ALIGN_START, ALIGN_CENTRE, ALIGN_END } text_align;
void text_font(cairo_t *cr, double size, int bold);
double text_width(cairo_t *cr, const char *s);
/* Draws s with its box aligned at (x, y); rotated 90 degrees anticlockwise
 * when `vertical` (then h-align runs along the rotated baseline). */
void text_draw(cairo_t *cr, double x, double y, const char *s, text_align h, text_align v, int vertical);

/* Okabe-Ito colour i (mod 7), 0..1 components. */
void palette_rgb(int i, double rgb[3]);

#endif
