/* figure.c - the cbq_figure object: a cairo recording replayed into PNG
 * (at any resolution), SVG or PDF files (atomically) or PNG bytes in memory;
 * shared text helpers. */
#include "plot_internal.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"

int figure_begin(cbq_figure **out, cairo_t **cr, int width, int height, cbq_error *err)
{
    *out = NULL;
    *cr = NULL;
    if (width <= 0 || height <= 0 || width > 20000 || height > 20000)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "figure size %d x %d px: expected 1..20000 each", width, height);
    cbq_figure *fig = calloc(1, sizeof *fig);
    if (!fig)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "figure: out of memory");
    cairo_rectangle_t extents = {0, 0, width, height};
    fig->recording = cairo_recording_surface_create(CAIRO_CONTENT_COLOR_ALPHA, &extents);
    fig->width = width;
    fig->height = height;
    *cr = cairo_create(fig->recording);
    cairo_set_source_rgb(*cr, 1, 1, 1);
    cairo_paint(*cr);
    *out = fig;
    return CBQ_OK;
}

int figure_finish(cbq_figure **fig, cairo_t *cr, cbq_error *err)
{
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status((*fig)->recording);
    if (st != CAIRO_STATUS_SUCCESS) {
        cbq_figure_free(*fig);
        *fig = NULL;
        return CBQ_FAIL(err, st == CAIRO_STATUS_NO_MEMORY ? CBQ_ERR_NOMEM : CBQ_ERR_INTERNAL,
                        "drawing a figure: cairo: %s", cairo_status_to_string(st));
    }
    return CBQ_OK;
}

void cbq_figure_free(cbq_figure *fig)
{
    if (!fig)
        return;
    /* Finishing first breaks the reference cycle cairo 1.16 leaves between a
     * recording and the snapshots an SVG replay attached to it; without it
     * the recording and its fonts are never freed. */
    cairo_surface_finish(fig->recording);
    cairo_surface_destroy(fig->recording);
    free(fig);
}

int cbq_figure_width(const cbq_figure *fig) { return fig->width; }
int cbq_figure_height(const cbq_figure *fig) { return fig->height; }

/* Replays the recording onto an opaque image surface of the figure's size
 * times `scale` (vector replay: text and lines stay sharp). */
static cairo_surface_t *render_image(const cbq_figure *fig, double scale)
{
    int width = (int)(fig->width * scale + 0.5), height = (int)(fig->height * scale + 0.5);
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    cairo_t *cr = cairo_create(img);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_scale(cr, scale, scale);
    cairo_set_source_surface(cr, fig->recording, 0, 0);
    cairo_paint(cr);
    cairo_destroy(cr);
    return img;
}

int cbq_figure_write_png_dpi(const cbq_figure *fig, const char *path, int dpi, cbq_error *err)
{
    if (dpi < CBQ_FIGURE_DPI_MIN || dpi > CBQ_FIGURE_DPI_MAX)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: resolution %d dpi: expected %d..%d", path, dpi,
                        CBQ_FIGURE_DPI_MIN, CBQ_FIGURE_DPI_MAX);
    char tmp[4200];
    CBQ_TRY(cbq_atomic_tmp_name(tmp, sizeof tmp, path, err));
    cairo_surface_t *img = render_image(fig, (double)dpi / CBQ_FIGURE_DPI);
    cairo_status_t st = cairo_surface_status(img);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png(img, tmp);
    cairo_surface_destroy(img);
    if (st != CAIRO_STATUS_SUCCESS) {
        cbq_atomic_discard(tmp);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot write PNG: %s", path, cairo_status_to_string(st));
    }
    return cbq_atomic_rename(tmp, path, err);
}

int cbq_figure_write_png(const cbq_figure *fig, const char *path, cbq_error *err)
{
    return cbq_figure_write_png_dpi(fig, path, CBQ_FIGURE_DPI, err);
}

/* Replays the recording onto a vector surface (SVG or PDF), scaled by
 * `scale`; finishes and destroys it and reports cairo's status. */
static cairo_status_t replay_vector(const cbq_figure *fig, cairo_surface_t *surface, double scale)
{
    cairo_t *cr = cairo_create(surface);
    cairo_scale(cr, scale, scale);
    cairo_set_source_surface(cr, fig->recording, 0, 0);
    cairo_paint(cr);
    cairo_status_t st = cairo_status(cr);
    cairo_destroy(cr);
    cairo_surface_finish(surface);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_status(surface);
    cairo_surface_destroy(surface);
    return st;
}

int cbq_figure_write_pdf(const cbq_figure *fig, const char *path, cbq_error *err)
{
    char tmp[4200];
    CBQ_TRY(cbq_atomic_tmp_name(tmp, sizeof tmp, path, err));
    /* One figure pixel is 1/CBQ_FIGURE_DPI inch: the page has the size the
     * PNG has at that resolution, in points (1/72 inch). */
    double scale = 72.0 / CBQ_FIGURE_DPI;
    cairo_surface_t *pdf = cairo_pdf_surface_create(tmp, fig->width * scale, fig->height * scale);
    /* No creation time: the same figure gives the same bytes. */
    cairo_pdf_surface_set_metadata(pdf, CAIRO_PDF_METADATA_CREATE_DATE, "");
    cairo_status_t st = replay_vector(fig, pdf, scale);
    if (st != CAIRO_STATUS_SUCCESS) {
        cbq_atomic_discard(tmp);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot write PDF: %s", path, cairo_status_to_string(st));
    }
    return cbq_atomic_rename(tmp, path, err);
}

int cbq_figure_write_svg(const cbq_figure *fig, const char *path, cbq_error *err)
{
    char tmp[4200];
    CBQ_TRY(cbq_atomic_tmp_name(tmp, sizeof tmp, path, err));
    cairo_surface_t *svg = cairo_svg_surface_create(tmp, fig->width, fig->height);
    cairo_svg_surface_set_document_unit(svg, CAIRO_SVG_UNIT_PX);
    cairo_status_t st = replay_vector(fig, svg, 1.0);
    if (st != CAIRO_STATUS_SUCCESS) {
        cbq_atomic_discard(tmp);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot write SVG: %s", path, cairo_status_to_string(st));
    }
    return cbq_atomic_rename(tmp, path, err);
}

int cbq_figure_save_dpi(const cbq_figure *fig, const char *dir, const char *stem, int dpi,
                        cbq_error *err)
{
    char path[4096];
    CBQ_TRY(cbq_mkdir_p(dir, err));
    int n = snprintf(path, sizeof path, "%s/%s.png", dir, stem);
    if (n < 0 || (size_t)n + 1 >= sizeof path)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s/%s: path too long", dir, stem);
    CBQ_TRY(cbq_figure_write_png_dpi(fig, path, dpi, err));
    snprintf(path, sizeof path, "%s/%s.svg", dir, stem);
    CBQ_TRY(cbq_figure_write_svg(fig, path, err));
    snprintf(path, sizeof path, "%s/%s.pdf", dir, stem);
    return cbq_figure_write_pdf(fig, path, err);
}

int cbq_figure_save(const cbq_figure *fig, const char *dir, const char *stem, cbq_error *err)
{
    return cbq_figure_save_dpi(fig, dir, stem, CBQ_FIGURE_DPI, err);
}

typedef struct {
    unsigned char *data;
    size_t len, cap;
} byte_buffer;

static cairo_status_t append_bytes(void *closure, const unsigned char *data, unsigned int length)
{
    byte_buffer *b = closure;
    if (b->len + length > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + length)
            cap *= 2;
        unsigned char *grown = realloc(b->data, cap);
        if (!grown)
            return CAIRO_STATUS_NO_MEMORY;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, length);
    b->len += length;
    return CAIRO_STATUS_SUCCESS;
}

int cbq_figure_png_bytes(const cbq_figure *fig, unsigned char **png, size_t *len, cbq_error *err)
{
    *png = NULL;
    *len = 0;
    byte_buffer b = {0};
    cairo_surface_t *img = render_image(fig, 1.0);
    cairo_status_t st = cairo_surface_status(img);
    if (st == CAIRO_STATUS_SUCCESS)
        st = cairo_surface_write_to_png_stream(img, append_bytes, &b);
    cairo_surface_destroy(img);
    if (st != CAIRO_STATUS_SUCCESS) {
        free(b.data);
        return CBQ_FAIL(err, st == CAIRO_STATUS_NO_MEMORY ? CBQ_ERR_NOMEM : CBQ_ERR_INTERNAL,
                        "encoding a figure as PNG: %s", cairo_status_to_string(st));
    }
    *png = b.data;
    *len = b.len;
    return CBQ_OK;
}

/* ---- text and colours ---- */

void text_font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, PLOT_FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

double text_width(cairo_t *cr, const char *s)
{
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    return te.x_advance;
}

void text_draw(cairo_t *cr, double x, double y, const char *s, text_align h, text_align v, int vertical)
{
    if (!s || !*s)
        return;
    cairo_font_extents_t fe;
    cairo_font_extents(cr, &fe);
    double w = text_width(cr, s);
    /* Box from the font's ascent/descent, not the glyphs', so that rows of
     * labels share one baseline. */
    double dx = h == ALIGN_START ? 0 : h == ALIGN_CENTRE ? -w / 2 : -w;
    double dy = v == ALIGN_START ? fe.ascent : v == ALIGN_CENTRE ? (fe.ascent - fe.descent) / 2 : -fe.descent;
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (vertical)
        cairo_rotate(cr, -1.5707963267948966);
    cairo_move_to(cr, dx, dy);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

void palette_rgb(int i, double rgb[3])
{
    /* Okabe & Ito (2008), "Color Universal Design": distinguishable with the
     * common colour-vision deficiencies. Yellow is left out (poor on white). */
    static const unsigned char okabe_ito[7][3] = {
        {0, 114, 178},   /* blue */
        {213, 94, 0},    /* vermillion */
        {0, 158, 115},   /* bluish green */
        {230, 159, 0},   /* orange */
        {204, 121, 167}, /* reddish purple */
        {86, 180, 233},  /* sky blue */
        {0, 0, 0},       /* black */
    };
    int k = ((i % 7) + 7) % 7;
    for (int c = 0; c < 3; c++)
        rgb[c] = okabe_ito[k][c] / 255.0;
}
