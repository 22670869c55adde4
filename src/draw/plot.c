/* plot.c - charts (scatter, lines, bars, histograms, strips, reference
 * lines) drawn from a cbq_chart description into a cbq_figure.
 *
 * Layout: the data range is found from the series, padded by 5 % (bars and
 * histograms start at 0), ticks are "nice" numbers inside it, and the margins
 * are sized from the measured tick labels so that nothing is clipped. */
#include "plot_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_TICKS = 64, DEFAULT_WIDTH = 640, DEFAULT_HEIGHT = 440 };

size_t cbq_nice_ticks(double lo, double hi, size_t max_ticks, double *ticks, size_t cap, double *step)
{
    *step = 0.0;
    if (!isfinite(lo) || !isfinite(hi) || cap == 0 || max_ticks < 2 || hi < lo)
        return 0;
    if (hi == lo) {
        ticks[0] = lo;
        return 1;
    }
    /* Smallest candidate step giving at most max_ticks ticks in [lo, hi]. */
    static const double mantissas[] = {1.0, 2.0, 2.5, 5.0, 10.0};
    double raw = (hi - lo) / (double)(max_ticks - 1);
    double decade = pow(10.0, floor(log10(raw)));
    double s = 10.0 * decade;
    for (size_t i = 0; i < sizeof mantissas / sizeof mantissas[0]; i++) {
        double cand = mantissas[i] * decade;
        double count = floor(hi / cand + 1e-9) - ceil(lo / cand - 1e-9) + 1;
        if (count <= (double)max_ticks) {
            s = cand;
            break;
        }
    }
    double first = ceil(lo / s - 1e-9);
    size_t n = 0;
    for (double k = first; k * s <= hi + 1e-9 * s && n < cap; k++) {
        double t = k * s;
        ticks[n++] = fabs(t) < 1e-12 * s ? 0.0 : t; /* no "-0" */
    }
    *step = s;
    return n;
}

/* Decimals enough to tell ticks `step` apart, e.g. 0.25 -> 2, 5 -> 0. */
static int tick_decimals(double step)
{
    int d = 0;
    while (d < 10 && fabs(step * pow(10.0, d) - round(step * pow(10.0, d))) > 1e-6 * step * pow(10.0, d))
        d++;
    return d;
}

static void format_tick(char *buf, size_t cap, double v, int decimals)
{
    if (fabs(v) >= 1e6 || (fabs(v) < 1e-4 && v != 0.0))
        snprintf(buf, cap, "%.3g", v);
    else
        snprintf(buf, cap, "%.*f", decimals, v);
}

/* ---- data ranges ---- */

typedef struct {
    double lo, hi;
} range;

static void range_add(range *r, double v)
{
    if (!isfinite(v))
        return;
    if (v < r->lo)
        r->lo = v;
    if (v > r->hi)
        r->hi = v;
}

static size_t hist_bins(const cbq_series *s)
{
    if (s->bins)
        return s->bins;
    size_t b = (size_t)ceil(sqrt((double)s->n));
    return b < 1 ? 1 : b;
}

/* Bin edges of a histogram series: [lo, hi] of the finite data. */
static int hist_span(const cbq_series *s, double *lo, double *hi)
{
    range r = {INFINITY, -INFINITY};
    for (size_t i = 0; i < s->n; i++)
        range_add(&r, s->y[i]);
    if (r.lo > r.hi)
        return 0;
    if (r.lo == r.hi) {
        r.lo -= 0.5;
        r.hi += 0.5;
    }
    *lo = r.lo;
    *hi = r.hi;
    return 1;
}

static double hist_max_count(const cbq_series *s, size_t *counts_out)
{
    double lo, hi;
    size_t nb = hist_bins(s);
    if (!hist_span(s, &lo, &hi))
        return 0;
    double maxc = 0;
    for (size_t b = 0; b < nb; b++)
        counts_out[b] = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->y[i]))
            continue;
        size_t b = (size_t)floor((s->y[i] - lo) / (hi - lo) * (double)nb);
        if (b >= nb)
            b = nb - 1; /* the top edge belongs to the last bin */
        counts_out[b]++;
    }
    for (size_t b = 0; b < nb; b++)
        if (counts_out[b] > maxc)
            maxc = (double)counts_out[b];
    return maxc;
}

static int check_series(const cbq_series *s, size_t idx, cbq_error *err)
{
    if (s->n == 0 || !s->y)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "chart series %zu: no values", idx);
    if ((s->kind == CBQ_SERIES_SCATTER || s->kind == CBQ_SERIES_LINE) && !s->x)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "chart series %zu: x values missing", idx);
    if ((int)s->kind < 0 || s->kind > CBQ_SERIES_HLINE)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "chart series %zu: unknown kind %d", idx, (int)s->kind);
    if (s->kind == CBQ_SERIES_HISTOGRAM && hist_bins(s) > 10000)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "chart series %zu: %zu bins (at most 10000)", idx, hist_bins(s));
    return CBQ_OK;
}

static void pad(range *r, double lo_frac, double hi_frac, int keep_zero_lo)
{
    if (r->lo > r->hi) {
        r->lo = 0;
        r->hi = 1;
        return;
    }
    if (r->lo == r->hi) {
        double d = r->lo == 0 ? 0.5 : fabs(r->lo) * 0.1;
        r->lo -= d;
        r->hi += d;
        return;
    }
    double span = r->hi - r->lo;
    if (!(keep_zero_lo && r->lo == 0))
        r->lo -= span * lo_frac;
    r->hi += span * hi_frac;
}

static int data_ranges(const cbq_chart *c, range *xr, range *yr, cbq_error *err)
{
    *xr = (range){INFINITY, -INFINITY};
    *yr = (range){INFINITY, -INFINITY};
    int zero_based = 0;
    for (size_t k = 0; k < c->n_series; k++) {
        const cbq_series *s = &c->series[k];
        CBQ_TRY(check_series(s, k, err));
        switch (s->kind) {
        case CBQ_SERIES_SCATTER:
        case CBQ_SERIES_LINE:
            for (size_t i = 0; i < s->n; i++)
                if (isfinite(s->x[i]) && isfinite(s->y[i])) {
                    range_add(xr, s->x[i]);
                    range_add(yr, s->y[i]);
                }
            break;
        case CBQ_SERIES_BARS:
            for (size_t i = 0; i < s->n; i++) {
                double x = s->x ? s->x[i] : (double)i;
                range_add(xr, x - 0.5);
                range_add(xr, x + 0.5);
                range_add(yr, s->y[i]);
            }
            range_add(yr, 0.0);
            zero_based = 1;
            break;
        case CBQ_SERIES_HISTOGRAM: {
            double lo, hi;
            size_t *counts = malloc(hist_bins(s) * sizeof *counts);
            if (!counts)
                return CBQ_FAIL(err, CBQ_ERR_NOMEM, "chart: out of memory");
            double maxc = hist_max_count(s, counts);
            free(counts);
            if (hist_span(s, &lo, &hi)) {
                range_add(xr, lo);
                range_add(xr, hi);
                range_add(yr, maxc);
            }
            range_add(yr, 0.0);
            zero_based = 1;
            break;
        }
        case CBQ_SERIES_STRIP:
            range_add(xr, s->strip_x - 0.5);
            range_add(xr, s->strip_x + 0.5);
            for (size_t i = 0; i < s->n; i++)
                range_add(yr, s->y[i]);
            break;
        case CBQ_SERIES_VLINE:
            for (size_t i = 0; i < s->n; i++)
                range_add(xr, s->y[i]);
            break;
        case CBQ_SERIES_HLINE:
            for (size_t i = 0; i < s->n; i++)
                range_add(yr, s->y[i]);
            break;
        }
    }
    if (c->n_categories) {
        range_add(xr, -0.5);
        range_add(xr, (double)c->n_categories - 0.5);
    }
    if (xr->lo > xr->hi && yr->lo > yr->hi && !(c->x_fixed && c->y_fixed))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "chart '%s': no finite value to plot", c->title ? c->title : "");
    if (!c->n_categories)
        pad(xr, 0.05, 0.05, 0);
    /* Bars and histograms fill the bottom: leave room above them for the
     * legend and annotation boxes. */
    int has_box = c->annotation != NULL;
    for (size_t k = 0; k < c->n_series; k++)
        has_box |= c->series[k].label != NULL;
    pad(yr, 0.05, zero_based && has_box ? 0.3 : 0.05, zero_based);
    if (c->x_fixed) {
        if (!isfinite(c->x_min) || !isfinite(c->x_max) || c->x_min >= c->x_max)
            return CBQ_FAIL(err, CBQ_ERR_ARG, "chart: x limits [%g, %g]: expected finite min < max", c->x_min, c->x_max);
        *xr = (range){c->x_min, c->x_max};
    }
    if (c->y_fixed) {
        if (!isfinite(c->y_min) || !isfinite(c->y_max) || c->y_min >= c->y_max)
            return CBQ_FAIL(err, CBQ_ERR_ARG, "chart: y limits [%g, %g]: expected finite min < max", c->y_min, c->y_max);
        *yr = (range){c->y_min, c->y_max};
    }
    return CBQ_OK;
}

/* ---- frame ---- */

static int wants_integer_ticks(const cbq_chart *c)
{
    if (c->y_integer)
        return 1;
    int hist = 0, other = 0;
    for (size_t k = 0; k < c->n_series; k++) {
        cbq_series_kind kind = c->series[k].kind;
        hist |= kind == CBQ_SERIES_HISTOGRAM;
        other |= kind != CBQ_SERIES_HISTOGRAM && kind != CBQ_SERIES_VLINE;
    }
    return hist && !other;
}

/* Re-spaces nice ticks onto whole numbers: a step below 1 becomes 1 and a
 * 2.5 x 10^k step becomes 5 x 10^k (counts have no quarter values). */
static size_t integer_ticks(double lo, double hi, double *step, double *ticks)
{
    double s = *step;
    if (s < 1.0)
        s = 1.0;
    else if (fabs(s / pow(10.0, floor(log10(s))) - 2.5) < 1e-9)
        s *= 2.0;
    size_t n = 0;
    for (double k = ceil(lo / s - 1e-9); k * s <= hi + 1e-9 * s && n < MAX_TICKS; k++)
        ticks[n++] = k * s == 0 ? 0.0 : k * s;
    *step = s;
    return n;
}

typedef struct {
    cbq_axes_frame f;
    double xt[MAX_TICKS], yt[MAX_TICKS];
    size_t nxt, nyt;
    int x_dec, y_dec;
    int x_vertical; /* category names too wide to sit side by side */
} layout;

static int chart_layout(const cbq_chart *c, cairo_t *cr, layout *L, cbq_error *err)
{
    range xr, yr;
    CBQ_TRY(data_ranges(c, &xr, &yr, err));
    int w = c->width ? c->width : DEFAULT_WIDTH, h = c->height ? c->height : DEFAULT_HEIGHT;
    if (w < 160 || h < 120)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "chart size %d x %d px: expected at least 160 x 120", w, h);
    double step;
    size_t ymax_ticks = (size_t)(h / 60) + 2;
    L->nyt = cbq_nice_ticks(yr.lo, yr.hi, ymax_ticks, L->yt, MAX_TICKS, &step);
    if (wants_integer_ticks(c) && L->nyt > 0)
        L->nyt = integer_ticks(yr.lo, yr.hi, &step, L->yt);
    L->y_dec = tick_decimals(step);
    if (c->n_categories) {
        L->nxt = c->n_categories < MAX_TICKS ? c->n_categories : MAX_TICKS;
        for (size_t i = 0; i < L->nxt; i++)
            L->xt[i] = (double)i;
        L->x_dec = 0;
    } else {
        L->nxt = cbq_nice_ticks(xr.lo, xr.hi, (size_t)(w / 90) + 2, L->xt, MAX_TICKS, &step);
        L->x_dec = tick_decimals(step);
    }
    text_font(cr, FONT_TICK, 0);
    double tick_w = 0;
    char buf[64];
    for (size_t i = 0; i < L->nyt; i++) {
        format_tick(buf, sizeof buf, L->yt[i], L->y_dec);
        double tw = text_width(cr, buf);
        if (tw > tick_w)
            tick_w = tw;
    }
    double left = 10 + (c->y_label ? FONT_LABEL + 10 : 0) + tick_w + 10;
    double top = c->title ? FONT_TITLE + 22 : 14;
    double x_tick_h = FONT_TICK;
    L->x_vertical = 0;
    if (c->n_categories) {
        double name_w = 0, spacing = (w - left - 24) / (double)L->nxt;
        for (size_t i = 0; i < L->nxt; i++)
            name_w = fmax(name_w, text_width(cr, c->x_categories[i] ? c->x_categories[i] : ""));
        if (name_w > spacing - 6) {
            L->x_vertical = 1;
            x_tick_h = fmin(name_w, h * 0.35);
        }
    }
    double bottom = 10 + (c->x_label ? FONT_LABEL + 10 : 0) + x_tick_h + 12;
    double right = 24;
    L->f = (cbq_axes_frame){left, top, w - left - right, h - top - bottom, xr.lo, xr.hi, yr.lo, yr.hi};
    if (L->f.width < 40 || L->f.height < 40)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "chart size %d x %d px: too small for its labels", w, h);
    return CBQ_OK;
}

void cbq_axes_frame_map(const cbq_axes_frame *f, double x, double y, double *px, double *py)
{
    *px = f->left + (x - f->x_min) / (f->x_max - f->x_min) * f->width;
    *py = f->top + (f->y_max - y) / (f->y_max - f->y_min) * f->height;
}

int cbq_chart_frame(const cbq_chart *chart, cbq_axes_frame *frame, cbq_error *err)
{
    cairo_surface_t *scratch = cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1);
    cairo_t *cr = cairo_create(scratch);
    layout L;
    int rc = chart_layout(chart, cr, &L, err);
    cairo_destroy(cr);
    cairo_surface_destroy(scratch);
    if (rc == CBQ_OK)
        *frame = L.f;
    return rc;
}

/* ---- drawing ---- */

static int series_color(const cbq_series *s, size_t k)
{
    return s->color >= 0 ? s->color : (int)k;
}

static void set_color(cairo_t *cr, int idx, double alpha)
{
    double rgb[3];
    palette_rgb(idx, rgb);
    cairo_set_source_rgba(cr, rgb[0], rgb[1], rgb[2], alpha);
}

static void marker(cairo_t *cr, double px, double py, int color)
{
    cairo_new_path(cr);
    cairo_arc(cr, px, py, 4.5, 0, 2 * 3.14159265358979323846);
    set_color(cr, color, 0.85);
    cairo_fill_preserve(cr);
    cairo_set_source_rgba(cr, 0, 0, 0, 0.6);
    cairo_set_line_width(cr, 0.8);
    cairo_stroke(cr);
}

static void draw_scatter(cairo_t *cr, const cbq_axes_frame *f, const cbq_series *s, int color)
{
    double px, py;
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->x[i]) || !isfinite(s->y[i]))
            continue;
        cbq_axes_frame_map(f, s->x[i], s->y[i], &px, &py);
        marker(cr, px, py, color);
    }
    if (!s->point_labels)
        return;
    text_font(cr, FONT_SMALL, 0);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    for (size_t i = 0; i < s->n; i++) {
        if (!s->point_labels[i] || !isfinite(s->x[i]) || !isfinite(s->y[i]))
            continue;
        cbq_axes_frame_map(f, s->x[i], s->y[i], &px, &py);
        /* Labels flip to the left near the right edge so they stay inside. */
        int flip = px + 8 + text_width(cr, s->point_labels[i]) > f->left + f->width;
        text_draw(cr, flip ? px - 7 : px + 7, py - 3, s->point_labels[i], flip ? ALIGN_END : ALIGN_START,
                  ALIGN_END, 0);
    }
}

static void line_style(cairo_t *cr, int dashed, double width)
{
    static const double dash[] = {6.0, 4.0};
    cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
    cairo_set_line_width(cr, width);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
}

static void draw_line(cairo_t *cr, const cbq_axes_frame *f, const cbq_series *s, int color)
{
    int pen_down = 0;
    double px, py;
    cairo_new_path(cr);
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->x[i]) || !isfinite(s->y[i])) {
            pen_down = 0;
            continue;
        }
        cbq_axes_frame_map(f, s->x[i], s->y[i], &px, &py);
        if (pen_down)
            cairo_line_to(cr, px, py);
        else
            cairo_move_to(cr, px, py);
        pen_down = 1;
    }
    set_color(cr, color, 1.0);
    line_style(cr, s->dashed, 2.0);
    cairo_stroke(cr);
    line_style(cr, 0, 1.0);
}

static void draw_bar(cairo_t *cr, const cbq_axes_frame *f, double x0, double x1, double y, int color)
{
    double px0, px1, py0, py1;
    cbq_axes_frame_map(f, x0, 0.0, &px0, &py0);
    cbq_axes_frame_map(f, x1, y, &px1, &py1);
    cairo_rectangle(cr, px0, py1, px1 - px0, py0 - py1);
    set_color(cr, color, 0.8);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 0.8);
    cairo_stroke(cr);
}

static int draw_histogram(cairo_t *cr, const cbq_axes_frame *f, const cbq_series *s, int color, cbq_error *err)
{
    double lo, hi;
    size_t nb = hist_bins(s);
    if (!hist_span(s, &lo, &hi))
        return CBQ_OK;
    size_t *counts = malloc(nb * sizeof *counts);
    if (!counts)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "chart: out of memory");
    hist_max_count(s, counts);
    double bw = (hi - lo) / (double)nb;
    for (size_t b = 0; b < nb; b++)
        if (counts[b])
            draw_bar(cr, f, lo + b * bw, lo + (b + 1) * bw, (double)counts[b], color);
    free(counts);
    return CBQ_OK;
}

static double strip_offset(size_t i)
{
    return ((double)(i % 7) - 3.0) / 3.0 * 0.25;
}

static void draw_strip(cairo_t *cr, const cbq_axes_frame *f, const cbq_series *s, int color)
{
    /* Deterministic spread (no RNG): points alternate left and right of the
     * centre in a fixed pattern so repeated values stay visible. */
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->y[i]))
            continue;
        double offset = strip_offset(i);
        double px, py;
        cbq_axes_frame_map(f, s->strip_x + offset, s->y[i], &px, &py);
        marker(cr, px, py, color);
    }
}

static void draw_ref_lines(cairo_t *cr, const cbq_axes_frame *f, const cbq_series *s, int color)
{
    set_color(cr, color, 1.0);
    line_style(cr, s->dashed, 1.6);
    for (size_t i = 0; i < s->n; i++) {
        double v = s->y[i], px, py;
        if (!isfinite(v))
            continue;
        cbq_axes_frame_map(f, v, v, &px, &py);
        if (s->kind == CBQ_SERIES_VLINE) {
            cairo_move_to(cr, px, f->top);
            cairo_line_to(cr, px, f->top + f->height);
        } else {
            cairo_move_to(cr, f->left, py);
            cairo_line_to(cr, f->left + f->width, py);
        }
    }
    cairo_stroke(cr);
    line_style(cr, 0, 1.0);
}

static void draw_axes(cairo_t *cr, const cbq_chart *c, const layout *L)
{
    const cbq_axes_frame *f = &L->f;
    double px, py;
    /* Light grid at the ticks, behind everything. */
    cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
    cairo_set_line_width(cr, 1.0);
    for (size_t i = 0; i < L->nyt; i++) {
        cbq_axes_frame_map(f, f->x_min, L->yt[i], &px, &py);
        cairo_move_to(cr, f->left, round(py) + 0.5);
        cairo_line_to(cr, f->left + f->width, round(py) + 0.5);
    }
    for (size_t i = 0; i < L->nxt && !c->n_categories; i++) {
        cbq_axes_frame_map(f, L->xt[i], f->y_min, &px, &py);
        cairo_move_to(cr, round(px) + 0.5, f->top);
        cairo_line_to(cr, round(px) + 0.5, f->top + f->height);
    }
    cairo_stroke(cr);
}

static void draw_axis_labels(cairo_t *cr, const cbq_chart *c, const layout *L, int w, int h)
{
    const cbq_axes_frame *f = &L->f;
    char buf[64];
    double px, py;
    cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, round(f->left) + 0.5, round(f->top) + 0.5, round(f->width), round(f->height));
    cairo_stroke(cr);
    text_font(cr, FONT_TICK, 0);
    for (size_t i = 0; i < L->nyt; i++) {
        cbq_axes_frame_map(f, f->x_min, L->yt[i], &px, &py);
        cairo_move_to(cr, f->left - 5, py);
        cairo_line_to(cr, f->left, py);
        cairo_stroke(cr);
        format_tick(buf, sizeof buf, L->yt[i], L->y_dec);
        text_draw(cr, f->left - 8, py, buf, ALIGN_END, ALIGN_CENTRE, 0);
    }
    for (size_t i = 0; i < L->nxt; i++) {
        cbq_axes_frame_map(f, L->xt[i], f->y_min, &px, &py);
        cairo_move_to(cr, px, f->top + f->height);
        cairo_line_to(cr, px, f->top + f->height + 5);
        cairo_stroke(cr);
        if (c->n_categories && L->x_vertical)
            text_draw(cr, px, f->top + f->height + 8, c->x_categories[i], ALIGN_END, ALIGN_CENTRE, 1);
        else if (c->n_categories)
            text_draw(cr, px, f->top + f->height + 8, c->x_categories[i], ALIGN_CENTRE, ALIGN_START, 0);
        else {
            format_tick(buf, sizeof buf, L->xt[i], L->x_dec);
            text_draw(cr, px, f->top + f->height + 8, buf, ALIGN_CENTRE, ALIGN_START, 0);
        }
    }
    text_font(cr, FONT_LABEL, 0);
    if (c->x_label)
        text_draw(cr, f->left + f->width / 2, h - 10, c->x_label, ALIGN_CENTRE, ALIGN_END, 0);
    if (c->y_label)
        text_draw(cr, 10, f->top + f->height / 2, c->y_label, ALIGN_CENTRE, ALIGN_START, 1);
    if (c->title) {
        text_font(cr, FONT_TITLE, 1);
        text_draw(cr, w / 2.0, 10, c->title, ALIGN_CENTRE, ALIGN_START, 0);
    }
}

/* Top-left corner of a bw x bh box in corner `pos` of the plot area. */
static void corner_origin(const cbq_axes_frame *f, cbq_legend_pos pos, double bw, double bh, double *x0, double *y0)
{
    int right = pos == CBQ_LEGEND_TOP_RIGHT || pos == CBQ_LEGEND_BOTTOM_RIGHT;
    int bottom = pos == CBQ_LEGEND_BOTTOM_RIGHT || pos == CBQ_LEGEND_BOTTOM_LEFT;
    *x0 = right ? f->left + f->width - bw - 8 : f->left + 8;
    *y0 = bottom ? f->top + f->height - bh - 8 : f->top + 8;
}

static int inside(double px, double py, double x0, double y0, double w, double h, double margin)
{
    return px >= x0 - margin && px <= x0 + w + margin && py >= y0 - margin && py <= y0 + h + margin;
}

static double rect_overlap(double ax, double ay, double aw, double ah, double bx, double by, double bw, double bh)
{
    double w = fmin(ax + aw, bx + bw) - fmax(ax, bx), h = fmin(ay + ah, by + bh) - fmax(ay, by);
    return w > 0 && h > 0 ? w * h : 0.0;
}

/* How much data a box in corner `pos` would hide: points and line samples
 * inside it, plus the covered fraction of bars. Lower is better. */
static double corner_cost(const cbq_chart *c, const cbq_axes_frame *f, cbq_legend_pos pos, double bw, double bh)
{
    double x0, y0, cost = 0, px, py, qx, qy;
    corner_origin(f, pos, bw, bh, &x0, &y0);
    for (size_t k = 0; k < c->n_series; k++) {
        const cbq_series *s = &c->series[k];
        for (size_t i = 0; i < s->n; i++) {
            double y = s->y[i];
            switch (s->kind) {
            case CBQ_SERIES_SCATTER:
                cbq_axes_frame_map(f, s->x[i], y, &px, &py);
                cost += inside(px, py, x0, y0, bw, bh, 6) + (s->point_labels && s->point_labels[i] &&
                                                            inside(px + 20, py - 8, x0, y0, bw, bh, 0));
                break;
            case CBQ_SERIES_STRIP:
                cbq_axes_frame_map(f, s->strip_x + strip_offset(i), y, &px, &py);
                cost += inside(px, py, x0, y0, bw, bh, 6);
                break;
            case CBQ_SERIES_LINE:
                if (i + 1 >= s->n)
                    break;
                cbq_axes_frame_map(f, s->x[i], y, &px, &py);
                cbq_axes_frame_map(f, s->x[i + 1], s->y[i + 1], &qx, &qy);
                for (int t = 0; t < 8; t++)
                    cost += 0.25 * inside(px + (qx - px) * t / 8.0, py + (qy - py) * t / 8.0, x0, y0, bw, bh, 2);
                break;
            case CBQ_SERIES_BARS: {
                double x = s->x ? s->x[i] : (double)i;
                cbq_axes_frame_map(f, x - 0.35, y, &px, &py);
                cbq_axes_frame_map(f, x + 0.35, 0.0, &qx, &qy);
                cost += 20.0 * rect_overlap(px, fmin(py, qy), qx - px, fabs(qy - py), x0, y0, bw, bh) / (bw * bh);
                break;
            }
            case CBQ_SERIES_VLINE:
                cbq_axes_frame_map(f, y, f->y_min, &px, &py);
                cost += 2.0 * (px >= x0 - 2 && px <= x0 + bw + 2);
                break;
            case CBQ_SERIES_HLINE:
                cbq_axes_frame_map(f, f->x_min, y, &px, &py);
                cost += 2.0 * (py >= y0 - 2 && py <= y0 + bh + 2);
                break;
            case CBQ_SERIES_HISTOGRAM:
                break; /* counted below, per bin */
            }
        }
        if (s->kind == CBQ_SERIES_HISTOGRAM) {
            double lo, hi;
            size_t nb = hist_bins(s);
            size_t *counts = malloc(nb * sizeof *counts);
            if (counts && hist_span(s, &lo, &hi)) {
                hist_max_count(s, counts);
                for (size_t b = 0; b < nb; b++) {
                    cbq_axes_frame_map(f, lo + (hi - lo) * b / nb, (double)counts[b], &px, &py);
                    cbq_axes_frame_map(f, lo + (hi - lo) * (b + 1) / nb, 0.0, &qx, &qy);
                    cost += 20.0 * rect_overlap(px, py, qx - px, qy - py, x0, y0, bw, bh) / (bw * bh);
                }
            }
            free(counts);
        }
    }
    return cost;
}

/* The corner (other than `taken`) whose box hides the least data; ties go
 * to the first in `order`. */
static cbq_legend_pos best_corner(const cbq_chart *c, const cbq_axes_frame *f, double bw, double bh,
                                  cbq_legend_pos taken, const cbq_legend_pos order[4])
{
    cbq_legend_pos best = CBQ_LEGEND_AUTO;
    double best_cost = INFINITY;
    for (int i = 0; i < 4; i++) {
        if (order[i] == taken)
            continue;
        double cost = corner_cost(c, f, order[i], bw, bh);
        if (cost < best_cost - 1e-9) {
            best = order[i];
            best_cost = cost;
        }
    }
    return best;
}

static void corner_box(cairo_t *cr, double x0, double y0, double bw, double bh)
{
    cairo_rectangle(cr, x0, y0, bw, bh);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 0.8);
    cairo_stroke(cr);
}

enum { LEGEND_ROW = FONT_SMALL + 9, NOTE_ROW = FONT_SMALL + 8, MAX_NOTE_LINES = 16 };

/* Legend box size; 0 x 0 when no series has a label. */
static void legend_size(cairo_t *cr, const cbq_chart *c, double *bw, double *bh)
{
    size_t n = 0;
    double wmax = 0;
    text_font(cr, FONT_SMALL + 1, 0);
    for (size_t k = 0; k < c->n_series; k++)
        if (c->series[k].label) {
            n++;
            wmax = fmax(wmax, text_width(cr, c->series[k].label));
        }
    *bw = n ? wmax + 46 : 0;
    *bh = n ? n * LEGEND_ROW + 8 : 0;
}

static void draw_legend(cairo_t *cr, const cbq_chart *c, const cbq_axes_frame *f, cbq_legend_pos pos)
{
    double bw, bh, x0, y0;
    legend_size(cr, c, &bw, &bh);
    if (bw == 0)
        return;
    corner_origin(f, pos, bw, bh, &x0, &y0);
    corner_box(cr, x0, y0, bw, bh);
    double y = y0 + 4 + LEGEND_ROW / 2.0;
    for (size_t k = 0; k < c->n_series; k++) {
        const cbq_series *s = &c->series[k];
        if (!s->label)
            continue;
        int color = series_color(s, k);
        if (s->kind == CBQ_SERIES_SCATTER || s->kind == CBQ_SERIES_STRIP)
            marker(cr, x0 + 18, y, color);
        else if (s->kind == CBQ_SERIES_BARS || s->kind == CBQ_SERIES_HISTOGRAM)
            draw_bar(cr, &(cbq_axes_frame){x0 + 10, y - 6, 16, 12, 0, 1, 0, 1}, 0, 1, 1, color);
        else {
            set_color(cr, color, 1.0);
            line_style(cr, s->dashed, 2.0);
            cairo_move_to(cr, x0 + 6, y);
            cairo_line_to(cr, x0 + 30, y);
            cairo_stroke(cr);
            line_style(cr, 0, 1.0);
        }
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        text_font(cr, FONT_SMALL + 1, 0);
        text_draw(cr, x0 + 38, y, s->label, ALIGN_START, ALIGN_CENTRE, 0);
        y += LEGEND_ROW;
    }
}

/* Splits the annotation into lines; returns the count. */
static size_t annotation_lines(const char *text, char lines[MAX_NOTE_LINES][256])
{
    size_t n = 0;
    const char *p = text ? text : "";
    while (*p && n < MAX_NOTE_LINES) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        snprintf(lines[n++], 256, "%.*s", (int)(len < 255 ? len : 255), p);
        p = e ? e + 1 : p + len;
    }
    return n;
}

static void annotation_size(cairo_t *cr, const cbq_chart *c, double *bw, double *bh)
{
    char lines[MAX_NOTE_LINES][256];
    size_t n = annotation_lines(c->annotation, lines);
    double wmax = 0;
    text_font(cr, FONT_SMALL + 1, 0);
    for (size_t i = 0; i < n; i++)
        wmax = fmax(wmax, text_width(cr, lines[i]));
    *bw = n ? wmax + 16 : 0;
    *bh = n ? n * NOTE_ROW + 8 : 0;
}

static void draw_annotation(cairo_t *cr, const cbq_chart *c, const cbq_axes_frame *f, cbq_legend_pos pos)
{
    char lines[MAX_NOTE_LINES][256];
    size_t n = annotation_lines(c->annotation, lines);
    double bw, bh, x0, y0;
    annotation_size(cr, c, &bw, &bh);
    if (n == 0)
        return;
    corner_origin(f, pos, bw, bh, &x0, &y0);
    corner_box(cr, x0, y0, bw, bh);
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    text_font(cr, FONT_SMALL + 1, 0);
    for (size_t i = 0; i < n; i++)
        text_draw(cr, x0 + 8, y0 + 4 + NOTE_ROW * (i + 0.5), lines[i], ALIGN_START, ALIGN_CENTRE, 0);
}

static void draw_boxes(cairo_t *cr, const cbq_chart *c, const cbq_axes_frame *f)
{
    static const cbq_legend_pos legend_order[4] = {CBQ_LEGEND_TOP_RIGHT, CBQ_LEGEND_TOP_LEFT,
                                                   CBQ_LEGEND_BOTTOM_RIGHT, CBQ_LEGEND_BOTTOM_LEFT};
    static const cbq_legend_pos note_order[4] = {CBQ_LEGEND_TOP_LEFT, CBQ_LEGEND_TOP_RIGHT,
                                                 CBQ_LEGEND_BOTTOM_LEFT, CBQ_LEGEND_BOTTOM_RIGHT};
    double lw, lh, aw, ah;
    legend_size(cr, c, &lw, &lh);
    annotation_size(cr, c, &aw, &ah);
    cbq_legend_pos lpos = CBQ_LEGEND_AUTO;
    if (lw > 0) {
        lpos = c->legend_pos >= CBQ_LEGEND_TOP_RIGHT && c->legend_pos <= CBQ_LEGEND_BOTTOM_LEFT
                   ? c->legend_pos
                   : best_corner(c, f, lw, lh, CBQ_LEGEND_AUTO, legend_order);
        draw_legend(cr, c, f, lpos);
    }
    if (aw > 0)
        draw_annotation(cr, c, f, best_corner(c, f, aw, ah, lpos, note_order));
}

int cbq_chart_draw(cbq_figure **out, const cbq_chart *chart, cbq_error *err)
{
    *out = NULL;
    cbq_axes_frame probe;
    CBQ_TRY(cbq_chart_frame(chart, &probe, err));
    int w = chart->width ? chart->width : DEFAULT_WIDTH, h = chart->height ? chart->height : DEFAULT_HEIGHT;
    cbq_figure *fig;
    cairo_t *cr;
    CBQ_TRY(figure_begin(&fig, &cr, w, h, err));
    layout L;
    int rc = chart_layout(chart, cr, &L, err);
    if (rc == CBQ_OK) {
        draw_axes(cr, chart, &L);
        cairo_save(cr);
        cairo_rectangle(cr, L.f.left, L.f.top, L.f.width, L.f.height);
        cairo_clip(cr);
        for (size_t k = 0; k < chart->n_series && rc == CBQ_OK; k++) {
            const cbq_series *s = &chart->series[k];
            int color = series_color(s, k);
            switch (s->kind) {
            case CBQ_SERIES_SCATTER: draw_scatter(cr, &L.f, s, color); break;
            case CBQ_SERIES_LINE: draw_line(cr, &L.f, s, color); break;
            case CBQ_SERIES_BARS:
                for (size_t i = 0; i < s->n; i++) {
                    double x = s->x ? s->x[i] : (double)i;
                    if (isfinite(x) && isfinite(s->y[i]))
                        draw_bar(cr, &L.f, x - 0.35, x + 0.35, s->y[i], color);
                }
                break;
            case CBQ_SERIES_HISTOGRAM: rc = draw_histogram(cr, &L.f, s, color, err); break;
            case CBQ_SERIES_STRIP: draw_strip(cr, &L.f, s, color); break;
            case CBQ_SERIES_VLINE:
            case CBQ_SERIES_HLINE: draw_ref_lines(cr, &L.f, s, color); break;
            }
        }
        cairo_restore(cr);
        draw_axis_labels(cr, chart, &L, w, h);
        draw_boxes(cr, chart, &L.f);
    }
    if (rc != CBQ_OK) {
        cairo_destroy(cr);
        cbq_figure_free(fig);
        return rc;
    }
    CBQ_TRY(figure_finish(&fig, cr, err));
    *out = fig;
    return CBQ_OK;
}
