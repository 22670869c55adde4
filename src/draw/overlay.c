/* overlay.c - Grad-CAM style montages: grey CT slices with a heat map
 * blended over them, panel titles fitted to their panels, and one shared
 * colour bar in map units.
 *
 * Blending is done here per pixel (not by cairo) so that the colours are
 * exactly "alpha * colormap(t) + (1 - alpha) * grey" whatever the output. */
#include "plot_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { DEFAULT_PANEL = 240, GAP = 14, BAR_WIDTH = 18 };
#define ALPHA_RAMP 0.1 /* fraction of the colour scale over which opacity rises */

enum { TITLE_MAX_LINES = 3, TITLE_LINE_CHARS = 320, TITLE_FONT_MIN = 8 };

/* A panel title fitted to its panel's width: its lines and font size. */
typedef struct {
    char line[TITLE_MAX_LINES][TITLE_LINE_CHARS];
    size_t n_lines;
    double font;
} panel_title;

typedef struct {
    double panel_w, panel_h;   /* cell size (largest panel) */
    double title_h, caption_h; /* montage title, panel titles */
    double title_font;         /* of every panel title */
    size_t cols, rows;
    int width, height;
    double bar_left, bar_top, bar_h;
} montage_layout;

static double panel_aspect(const cbq_overlay_panel *p)
{
    return p->pixel_aspect > 0 ? p->pixel_aspect : 1.0;
}

/* Display size of a panel: its longest edge becomes `size` pixels. */
static void panel_display(const cbq_overlay_panel *p, double size, double *w, double *h)
{
    double pw = (double)p->width, ph = (double)p->height * panel_aspect(p);
    double scale = size / (pw > ph ? pw : ph);
    *w = round(pw * scale);
    *h = round(ph * scale);
}

static int check_montage(const cbq_montage *m, double *lo, double *hi, cbq_error *err)
{
    if (!m->panels || m->n_panels == 0)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "montage: no panels");
    if (!(m->window_hi > m->window_lo))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "montage: grey window [%g, %g]: expected low < high",
                        m->window_lo, m->window_hi);
    if (m->alpha < 0 || m->alpha > 1)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "montage: alpha %g: expected 0..1", m->alpha);
    *lo = m->map_lo;
    *hi = m->map_hi;
    if (m->map_auto) {
        *lo = INFINITY;
        *hi = -INFINITY;
    }
    for (size_t i = 0; i < m->n_panels; i++) {
        const cbq_overlay_panel *p = &m->panels[i];
        size_t n;
        if (!p->image || p->width == 0 || p->height == 0 || p->width > 16384 || p->height > 16384 ||
            !cbq_size_mul(&n, p->width, p->height))
            return CBQ_FAIL(err, CBQ_ERR_ARG, "montage panel %zu: image %zu x %zu: expected 1..16384 pixels a side",
                            i, p->width, p->height);
        if (m->map_auto && p->map)
            for (size_t k = 0; k < n; k++)
                if (isfinite(p->map[k])) {
                    *lo = p->map[k] < *lo ? p->map[k] : *lo;
                    *hi = p->map[k] > *hi ? p->map[k] : *hi;
                }
    }
    if (m->map_auto && *lo > *hi) {
        *lo = 0;
        *hi = 1;
    }
    if (m->map_auto && *lo == *hi)
        *hi = *lo + 1;
    if (!isfinite(*lo) || !isfinite(*hi) || !(*hi > *lo))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "montage: map scale [%g, %g]: expected finite low < high", *lo, *hi);
    return CBQ_OK;
}

/* Splits `title` at its double spaces (the separators of "id  AE x  k n")
 * into at most TITLE_MAX_LINES lines of at most max_w pixels at `font`,
 * joining pieces greedily; 1 when every line fits. */
static int title_lines_at(cairo_t *cr, const char *title, double max_w, double font, panel_title *t)
{
    text_font(cr, font, 0);
    t->font = font;
    t->n_lines = 0;
    for (const char *p = title; *p;) {
        const char *sep = strstr(p, "  ");
        size_t n = sep ? (size_t)(sep - p) : strlen(p);
        int piece = (int)(n < TITLE_LINE_CHARS ? n : TITLE_LINE_CHARS - 1);
        char *last = t->line[t->n_lines ? t->n_lines - 1 : 0];
        char joined[2 * TITLE_LINE_CHARS + 2];
        int len = snprintf(joined, sizeof joined, "%s  %.*s", t->n_lines ? last : "", piece, p);
        int fits_joined = t->n_lines && len < TITLE_LINE_CHARS && text_width(cr, joined) <= max_w;
        if (fits_joined || (t->n_lines == TITLE_MAX_LINES && len < TITLE_LINE_CHARS))
            memcpy(last, joined, (size_t)len + 1); /* the last line takes the rest */
        else if (t->n_lines < TITLE_MAX_LINES)
            snprintf(t->line[t->n_lines++], TITLE_LINE_CHARS, "%.*s", piece, p);
        p += n;
        while (*p == ' ')
            p++;
    }
    int fits = 1;
    for (size_t i = 0; i < t->n_lines; i++)
        fits &= text_width(cr, t->line[i]) <= max_w;
    return fits;
}

/* Cuts `line` with an ellipsis until it is at most max_w pixels wide. */
static void ellipsize(cairo_t *cr, char *line, double max_w)
{
    size_t n = strlen(line);
    if (text_width(cr, line) <= max_w)
        return;
    static const char ellipsis[] = "\u2026";
    char cut[TITLE_LINE_CHARS + sizeof ellipsis];
    while (n > 0) {
        do
            n--;
        while (n > 0 && ((unsigned char)line[n] & 0xC0) == 0x80); /* whole UTF-8 characters */
        memcpy(cut, line, n);
        memcpy(cut + n, ellipsis, sizeof ellipsis);
        if (text_width(cr, cut) <= max_w)
            break;
    }
    if (n + sizeof ellipsis <= TITLE_LINE_CHARS)
        memcpy(line, cut, n + sizeof ellipsis);
}

/* The title as large as it fits within max_w: one line, or broken at its
 * double spaces, at max_font down to TITLE_FONT_MIN; a piece that fits at
 * no size is cut with an ellipsis. A title never runs into the next panel
 * or off the figure. */
static void fit_panel_title(const char *title, double max_w, double max_font, panel_title *t)
{
    cairo_surface_t *scratch = cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1);
    cairo_t *cr = cairo_create(scratch);
    double font = max_font;
    while (!title_lines_at(cr, title, max_w, font, t) && font > TITLE_FONT_MIN)
        font -= 1;
    for (size_t i = 0; i < t->n_lines; i++)
        ellipsize(cr, t->line[i], max_w);
    cairo_destroy(cr);
    cairo_surface_destroy(scratch);
}

static void montage_layout_of(const cbq_montage *m, montage_layout *L)
{
    double size = m->panel_size > 0 ? m->panel_size : DEFAULT_PANEL;
    L->panel_w = L->panel_h = 0;
    int any_title = 0;
    for (size_t i = 0; i < m->n_panels; i++) {
        double w, h;
        panel_display(&m->panels[i], size, &w, &h);
        L->panel_w = w > L->panel_w ? w : L->panel_w;
        L->panel_h = h > L->panel_h ? h : L->panel_h;
    }
    /* One font size for every panel title: the largest at which all fit. */
    L->title_font = FONT_LABEL - 1;
    for (size_t i = 0; i < m->n_panels; i++)
        if (m->panels[i].title) {
            panel_title t;
            fit_panel_title(m->panels[i].title, L->panel_w, FONT_LABEL - 1, &t);
            L->title_font = t.font < L->title_font ? t.font : L->title_font;
            any_title = 1;
        }
    size_t title_lines = 0;
    for (size_t i = 0; i < m->n_panels; i++)
        if (m->panels[i].title) {
            panel_title t;
            fit_panel_title(m->panels[i].title, L->panel_w, L->title_font, &t);
            title_lines = t.n_lines > title_lines ? t.n_lines : title_lines;
        }
    L->cols = m->n_cols ? m->n_cols : m->n_panels;
    if (L->cols > m->n_panels)
        L->cols = m->n_panels;
    L->rows = (m->n_panels + L->cols - 1) / L->cols;
    L->title_h = m->title ? FONT_TITLE + 20 : 8;
    L->caption_h = any_title ? (double)title_lines * (L->title_font + 3) + 8 : 0;
    double grid_w = L->cols * (L->panel_w + GAP) + GAP;
    double grid_h = L->rows * (L->panel_h + L->caption_h + GAP);
    L->bar_left = grid_w + 6;
    L->bar_top = L->title_h + L->caption_h;
    L->bar_h = grid_h - L->caption_h - GAP;
    /* colour bar + tick labels + rotated caption */
    L->width = (int)(L->bar_left + BAR_WIDTH + 70 + (m->map_label ? FONT_LABEL + 12 : 0));
    L->height = (int)(L->title_h + grid_h + 4);
}

int cbq_montage_panel_rect(const cbq_montage *m, size_t i, double rect[4], cbq_error *err)
{
    double lo, hi;
    CBQ_TRY(check_montage(m, &lo, &hi, err));
    if (i >= m->n_panels)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "montage: panel %zu of %zu", i, m->n_panels);
    montage_layout L;
    montage_layout_of(m, &L);
    double w, h;
    panel_display(&m->panels[i], m->panel_size > 0 ? m->panel_size : DEFAULT_PANEL, &w, &h);
    size_t r = i / L.cols, c = i % L.cols;
    double cell_x = GAP + c * (L.panel_w + GAP), cell_y = L.title_h + r * (L.panel_h + L.caption_h + GAP);
    rect[0] = cell_x + round((L.panel_w - w) / 2);
    rect[1] = cell_y + L.caption_h + round((L.panel_h - h) / 2);
    rect[2] = w;
    rect[3] = h;
    return CBQ_OK;
}

/* Pixel k of a panel: the grey slice with the map blended over it, 8-bit sRGB. */
static void blend_pixel(const cbq_montage *m, const cbq_overlay_panel *p, const cbq_colormap *cm,
                        double lo, double hi, size_t k, unsigned char out[3])
{
    double alpha = m->alpha > 0 ? m->alpha : 0.55;
    double v = p->image[k];
    double g = isfinite(v) ? (v - m->window_lo) / (m->window_hi - m->window_lo) : 0.0;
    g = g < 0 ? 0 : g > 1 ? 1 : g;
    double rgb[3] = {g, g, g};
    if (p->map && isfinite(p->map[k]) && p->map[k] > lo) {
        double t = (p->map[k] - lo) / (hi - lo);
        const unsigned char *c = cbq_colormap_lookup(cm, t);
        /* Opacity ramps up over the lowest tenth of the scale so that
         * the faint tails of a map do not veil the anatomy. */
        double a = alpha * (t < ALPHA_RAMP ? t / ALPHA_RAMP : 1.0);
        for (int ch = 0; ch < 3; ch++)
            rgb[ch] = a * (c[ch] / 255.0) + (1 - a) * g;
    }
    for (int ch = 0; ch < 3; ch++)
        out[ch] = (unsigned char)lround(rgb[ch] * 255);
}

/* The panel blended at its native resolution, as an opaque cairo image. */
static cairo_surface_t *blend_panel(const cbq_montage *m, const cbq_overlay_panel *p, const cbq_colormap *cm,
                                    double lo, double hi)
{
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)p->width, (int)p->height);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS)
        return img;
    cairo_surface_flush(img);
    unsigned char *data = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    for (size_t y = 0; y < p->height; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)stride * y);
        for (size_t x = 0; x < p->width; x++) {
            unsigned char c[3];
            blend_pixel(m, p, cm, lo, hi, y * p->width + x, c);
            row[x] = 0xff000000u | (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
        }
    }
    cairo_surface_mark_dirty(img);
    return img;
}

int cbq_overlay_rgb(const cbq_montage *m, size_t i, unsigned char *rgb, cbq_error *err)
{
    double lo, hi;
    CBQ_TRY(check_montage(m, &lo, &hi, err));
    CBQ_CHECK_ARG(err, i < m->n_panels, "montage: panel %zu of %zu", i, m->n_panels);
    cbq_colormap cm;
    CBQ_TRY(cbq_colormap_build(&cm, m->cmap, err));
    const cbq_overlay_panel *p = &m->panels[i];
    for (size_t k = 0; k < p->width * p->height; k++)
        blend_pixel(m, p, &cm, lo, hi, k, rgb + 3 * k);
    return CBQ_OK;
}

/* The structure's outline as crisp vector edges: one segment wherever a
 * mask pixel meets a non-mask pixel (or the image border). */
static void draw_mask_outline(cairo_t *cr, const cbq_overlay_panel *p, const double rect[4])
{
    double sx = rect[2] / (double)p->width, sy = rect[3] / (double)p->height;
    const unsigned char *m = p->mask;
    size_t w = p->width, h = p->height;
    cairo_new_path(cr);
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
            if (!m[y * w + x])
                continue;
            double x0 = rect[0] + x * sx, y0 = rect[1] + y * sy;
            if (x == 0 || !m[y * w + x - 1]) {
                cairo_move_to(cr, x0, y0);
                cairo_line_to(cr, x0, y0 + sy);
            }
            if (x + 1 == w || !m[y * w + x + 1]) {
                cairo_move_to(cr, x0 + sx, y0);
                cairo_line_to(cr, x0 + sx, y0 + sy);
            }
            if (y == 0 || !m[(y - 1) * w + x]) {
                cairo_move_to(cr, x0, y0);
                cairo_line_to(cr, x0 + sx, y0);
            }
            if (y + 1 == h || !m[(y + 1) * w + x]) {
                cairo_move_to(cr, x0, y0 + sy);
                cairo_line_to(cr, x0 + sx, y0 + sy);
            }
        }
    double rgb[3];
    palette_rgb(1, rgb);
    cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
    cairo_set_line_width(cr, 1.5);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_SQUARE);
    cairo_stroke(cr);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
}

static void draw_colorbar(cairo_t *cr, const cbq_montage *m, const montage_layout *L, const cbq_colormap *cm,
                          double lo, double hi)
{
    /* One row of pixels per colour-map entry, scaled to the bar's height,
     * highest value on top. */
    cairo_surface_t *strip = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 1, 256);
    cairo_surface_flush(strip);
    unsigned char *data = cairo_image_surface_get_data(strip);
    int stride = cairo_image_surface_get_stride(strip);
    for (int i = 0; i < 256; i++) {
        const unsigned char *c = cm->rgb[255 - i];
        *(uint32_t *)(void *)(data + (size_t)stride * i) = 0xff000000u | (uint32_t)c[0] << 16 | (uint32_t)c[1] << 8 | c[2];
    }
    cairo_surface_mark_dirty(strip);
    cairo_save(cr);
    cairo_translate(cr, L->bar_left, L->bar_top);
    cairo_scale(cr, BAR_WIDTH, L->bar_h / 256.0);
    cairo_set_source_surface(cr, strip, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_paint(cr);
    cairo_restore(cr);
    cairo_surface_destroy(strip);

    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, L->bar_left, L->bar_top, BAR_WIDTH, L->bar_h);
    cairo_stroke(cr);
    double ticks[32], step;
    size_t n = cbq_nice_ticks(lo, hi, (size_t)(L->bar_h / 40) + 2, ticks, 32, &step);
    text_font(cr, FONT_TICK, 0);
    for (size_t i = 0; i < n; i++) {
        double y = L->bar_top + (hi - ticks[i]) / (hi - lo) * L->bar_h;
        cairo_move_to(cr, L->bar_left + BAR_WIDTH, y);
        cairo_line_to(cr, L->bar_left + BAR_WIDTH + 4, y);
        cairo_stroke(cr);
        char buf[48];
        if (fabs(ticks[i]) >= 1e5 || (fabs(ticks[i]) < 1e-3 && ticks[i] != 0))
            snprintf(buf, sizeof buf, "%.2g", ticks[i]);
        else
            snprintf(buf, sizeof buf, "%g", ticks[i]);
        text_draw(cr, L->bar_left + BAR_WIDTH + 7, y, buf, ALIGN_START, ALIGN_CENTRE, 0);
    }
    if (m->map_label) {
        text_font(cr, FONT_LABEL, 0);
        text_draw(cr, L->width - 8, L->bar_top + L->bar_h / 2, m->map_label, ALIGN_CENTRE, ALIGN_END, 1);
    }
}

int cbq_montage_draw(cbq_figure **out, const cbq_montage *m, cbq_error *err)
{
    *out = NULL;
    double lo, hi;
    CBQ_TRY(check_montage(m, &lo, &hi, err));
    cbq_colormap cm;
    CBQ_TRY(cbq_colormap_build(&cm, m->cmap, err));
    montage_layout L;
    montage_layout_of(m, &L);
    cbq_figure *fig;
    cairo_t *cr;
    CBQ_TRY(figure_begin(&fig, &cr, L.width, L.height, err));
    if (m->title) {
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_font(cr, FONT_TITLE, 1);
        text_draw(cr, L.width / 2.0, 10, m->title, ALIGN_CENTRE, ALIGN_START, 0);
    }
    for (size_t i = 0; i < m->n_panels; i++) {
        const cbq_overlay_panel *p = &m->panels[i];
        double rect[4];
        cbq_montage_panel_rect(m, i, rect, NULL);
        if (p->title) {
            panel_title t;
            fit_panel_title(p->title, L.panel_w, L.title_font, &t);
            cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
            text_font(cr, t.font, 0);
            for (size_t k = 0; k < t.n_lines; k++)
                text_draw(cr, rect[0] + rect[2] / 2,
                          rect[1] - 6 - (double)(t.n_lines - 1 - k) * (t.font + 3), t.line[k],
                          ALIGN_CENTRE, ALIGN_END, 0);
        }
        cairo_surface_t *img = blend_panel(m, p, &cm, lo, hi);
        cairo_save(cr);
        cairo_rectangle(cr, rect[0], rect[1], rect[2], rect[3]);
        cairo_clip(cr);
        cairo_translate(cr, rect[0], rect[1]);
        cairo_scale(cr, rect[2] / (double)p->width, rect[3] / (double)p->height);
        cairo_set_source_surface(cr, img, 0, 0);
        cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_BILINEAR);
        cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
        cairo_paint(cr);
        cairo_restore(cr);
        cairo_surface_destroy(img);
        if (p->mask) {
            cairo_save(cr);
            cairo_rectangle(cr, rect[0], rect[1], rect[2], rect[3]);
            cairo_clip(cr);
            draw_mask_outline(cr, p, rect);
            cairo_restore(cr);
        }
    }
    draw_colorbar(cr, m, &L, &cm, lo, hi);
    CBQ_TRY(figure_finish(&fig, cr, err));
    *out = fig;
    return CBQ_OK;
}
