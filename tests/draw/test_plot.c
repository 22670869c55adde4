/* test_plot.c - charts land where the axes say, overlays blend exactly,
 * colour maps match their published end colours and rise in lightness,
 * files read back as PNG/SVG of the right size, bad input is refused. */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/colormap.h"
#include "cbctiq/plot.h"

static char dir[1024];

static int setup(void **state)
{
    (void)state;
    const char *base = getenv("CBQ_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/plot", base ? base : "tmp");
    cbq_error err = {0};
    return cbq_mkdir_p(dir, &err);
}

/* Pixel (x, y) of an RGB24/ARGB32 image as r, g, b. */
static void pixel(cairo_surface_t *img, int x, int y, int rgb[3])
{
    const unsigned char *data = cairo_image_surface_get_data(img);
    uint32_t v = *(const uint32_t *)(const void *)(data + (size_t)cairo_image_surface_get_stride(img) * y + 4 * x);
    rgb[0] = (v >> 16) & 255;
    rgb[1] = (v >> 8) & 255;
    rgb[2] = v & 255;
}

static void assert_rgb_near(const int got[3], int r, int g, int b, int tol)
{
    if (abs(got[0] - r) > tol || abs(got[1] - g) > tol || abs(got[2] - b) > tol)
        fail_msg("pixel (%d, %d, %d), expected (%d, %d, %d) +- %d", got[0], got[1], got[2], r, g, b, tol);
}

/* Writes fig as PNG, reads it back with cairo's own PNG reader. */
static cairo_surface_t *png_roundtrip(const cbq_figure *fig, const char *name)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.png", dir, name);
    cbq_error err = {0};
    assert_int_equal(cbq_figure_write_png(fig, path, &err), CBQ_OK);
    cairo_surface_t *img = cairo_image_surface_create_from_png(path);
    assert_int_equal(cairo_surface_status(img), CAIRO_STATUS_SUCCESS);
    assert_int_equal(cairo_image_surface_get_width(img), cbq_figure_width(fig));
    assert_int_equal(cairo_image_surface_get_height(img), cbq_figure_height(fig));
    cairo_surface_flush(img);
    return img;
}

static void test_nice_ticks(void **state)
{
    (void)state;
    double t[64], step;
    size_t n = cbq_nice_ticks(0.0, 10.0, 6, t, 64, &step);
    assert_int_equal(n, 6);
    assert_true(step == 2.0);
    for (size_t i = 0; i < n; i++)
        assert_true(t[i] == 2.0 * (double)i);
    /* Properties over awkward ranges: inside, evenly spaced, nice mantissa. */
    const double ranges[][2] = {{-0.37, 0.91}, {1234.5, 98765.4}, {-5e-5, 3e-5}, {0.98, 1.02}, {-200, -3}};
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
        double lo = ranges[r][0], hi = ranges[r][1];
        n = cbq_nice_ticks(lo, hi, 7, t, 64, &step);
        assert_true(n >= 2 && n <= 7);
        double m = step / pow(10.0, floor(log10(step)));
        assert_true(fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 2.5) < 1e-9 || fabs(m - 5) < 1e-9);
        for (size_t i = 0; i < n; i++) {
            assert_true(t[i] >= lo - 1e-9 * step && t[i] <= hi + 1e-9 * step);
            if (i)
                assert_true(fabs(t[i] - t[i - 1] - step) < 1e-9 * step);
        }
    }
    assert_int_equal(cbq_nice_ticks(NAN, 1.0, 5, t, 64, &step), 0);
}

static void test_scatter_points_at_axes_transform(void **state)
{
    (void)state;
    double x[3] = {1.0, 2.0, 3.5}, y[3] = {10.0, 30.0, 20.0};
    cbq_series s = {.kind = CBQ_SERIES_SCATTER, .x = x, .y = y, .n = 3, .color = 0};
    cbq_chart c = {.title = "t", .x_label = "x", .y_label = "y", .series = &s, .n_series = 1,
                   .width = 400, .height = 300};
    cbq_error err = {0};
    cbq_figure *fig = NULL;
    assert_int_equal(cbq_chart_draw(&fig, &c, &err), CBQ_OK);
    cbq_axes_frame f;
    assert_int_equal(cbq_chart_frame(&c, &f, &err), CBQ_OK);
    /* Data range covers the points (with padding), plot area inside figure. */
    assert_true(f.x_min < 1.0 && f.x_max > 3.5 && f.y_min < 10.0 && f.y_max > 30.0);
    assert_true(f.left > 0 && f.top > 0 && f.left + f.width < 400 && f.top + f.height < 300);
    cairo_surface_t *img = png_roundtrip(fig, "scatter");
    for (int i = 0; i < 3; i++) {
        double px, py;
        cbq_axes_frame_map(&f, x[i], y[i], &px, &py);
        int rgb[3];
        pixel(img, (int)px, (int)py, rgb);
        /* Okabe-Ito blue (0, 114, 178) at 85 % opacity over the background:
         * white, or the light grid (229) where a tick line passes under. */
        int on_white = abs(rgb[0] - 38) <= 2 && abs(rgb[1] - 135) <= 2 && abs(rgb[2] - 190) <= 2;
        int on_grid = abs(rgb[0] - 34) <= 2 && abs(rgb[1] - 131) <= 2 && abs(rgb[2] - 186) <= 2;
        if (!on_white && !on_grid)
            fail_msg("point %d: pixel (%d, %d, %d) is not the marker colour", i, rgb[0], rgb[1], rgb[2]);
    }
    /* Away from the points: background (white or light grid). */
    double px, py;
    cbq_axes_frame_map(&f, 3.0, 12.0, &px, &py);
    int rgb[3];
    pixel(img, (int)px, (int)py, rgb);
    assert_true(rgb[0] > 200 && rgb[1] > 200 && rgb[2] > 200);
    cairo_surface_destroy(img);
    cbq_figure_free(fig);
}

static void test_line_and_bars(void **state)
{
    (void)state;
    double x[2] = {0.0, 10.0}, y[2] = {5.0, 5.0}, h[3] = {1.0, 3.0, 2.0};
    cbq_series s[2] = {{.kind = CBQ_SERIES_LINE, .x = x, .y = y, .n = 2, .color = 1, .label = "line"},
                       {.kind = CBQ_SERIES_BARS, .y = h, .n = 3, .color = 2, .label = "bars"}};
    cbq_chart c = {.series = s, .n_series = 2, .width = 500, .height = 320, .x_fixed = 1, .x_min = -1,
                   .x_max = 11, .y_fixed = 1, .y_min = 0, .y_max = 6, .legend_pos = CBQ_LEGEND_BOTTOM_RIGHT};
    cbq_error err = {0};
    cbq_figure *fig = NULL;
    assert_int_equal(cbq_chart_draw(&fig, &c, &err), CBQ_OK);
    cbq_axes_frame f;
    assert_int_equal(cbq_chart_frame(&c, &f, &err), CBQ_OK);
    assert_true(f.x_min == -1 && f.x_max == 11 && f.y_min == 0 && f.y_max == 6);
    cairo_surface_t *img = png_roundtrip(fig, "line_bars");
    double px, py;
    int rgb[3];
    cbq_axes_frame_map(&f, 7.0, 5.0, &px, &py);
    pixel(img, (int)px, (int)floor(py), rgb);
    assert_rgb_near(rgb, 213, 94, 0, 30); /* vermillion, antialiased edge */
    /* Middle of bar 1 (height 3): bluish green (0, 158, 115) at 80 %. */
    cbq_axes_frame_map(&f, 1.0, 1.5, &px, &py);
    pixel(img, (int)px, (int)py, rgb);
    assert_rgb_near(rgb, 51, 177, 143, 4);
    /* Above bar 1: background. */
    cbq_axes_frame_map(&f, 1.0, 3.6, &px, &py);
    pixel(img, (int)px, (int)py, rgb);
    assert_true(rgb[0] > 200);
    cairo_surface_destroy(img);
    cbq_figure_free(fig);
}

static void test_montage_blends_exactly(void **state)
{
    (void)state;
    float image[16], map_hi[16], map_zero[16];
    for (int i = 0; i < 16; i++) {
        image[i] = 0.0f;     /* window [-100, 100]: mid grey */
        map_hi[i] = 1.0f;    /* top of the scale */
        map_zero[i] = 0.0f;  /* at map_lo: transparent */
    }
    unsigned char mask[16] = {0};
    mask[0] = 1; /* top-left pixel of panel b: its outline is drawn */
    cbq_overlay_panel p[2] = {{.image = image, .map = map_hi, .width = 4, .height = 4, .title = "a"},
                              {.image = image, .map = map_zero, .mask = mask, .width = 4, .height = 4, .title = "b"}};
    cbq_montage m = {.panels = p, .n_panels = 2, .panel_size = 40, .window_lo = -100, .window_hi = 100,
                     .cmap = CBQ_CMAP_VIRIDIS, .map_lo = 0, .map_hi = 1, .alpha = 0.5, .map_label = "a.u."};
    cbq_error err = {0};
    cbq_figure *fig = NULL;
    assert_int_equal(cbq_montage_draw(&fig, &m, &err), CBQ_OK);
    cairo_surface_t *img = png_roundtrip(fig, "montage");
    double r0[4], r1[4];
    assert_int_equal(cbq_montage_panel_rect(&m, 0, r0, &err), CBQ_OK);
    assert_int_equal(cbq_montage_panel_rect(&m, 1, r1, &err), CBQ_OK);
    assert_true(r0[2] == 40 && r0[3] == 40 && r1[0] > r0[0] + 40);
    int rgb[3];
    /* Published viridis top #fde725 = (253, 231, 37) half over grey 127.5. */
    pixel(img, (int)(r0[0] + 20), (int)(r0[1] + 20), rgb);
    assert_rgb_near(rgb, 190, 179, 82, 2);
    pixel(img, (int)(r1[0] + 20), (int)(r1[1] + 20), rgb);
    assert_rgb_near(rgb, 128, 128, 128, 1);
    /* The mask pixel spans 10 x 10 display pixels: its right edge (x = 10)
     * is outlined in vermillion, its inside stays grey. */
    pixel(img, (int)(r1[0] + 10), (int)(r1[1] + 5), rgb);
    assert_rgb_near(rgb, 213, 94, 0, 40);
    pixel(img, (int)(r1[0] + 5), (int)(r1[1] + 5), rgb);
    assert_rgb_near(rgb, 128, 128, 128, 1);
    cairo_surface_destroy(img);
    cbq_figure_free(fig);
    /* Non-square pixels: 0.5 mm x 1.0 mm shows twice as tall as wide. */
    p[0].pixel_aspect = 2.0;
    assert_int_equal(cbq_montage_panel_rect(&m, 0, r0, &err), CBQ_OK);
    assert_true(r0[2] == 20 && r0[3] == 40);
}

/* 1 when every pixel of columns [x0, x1) x rows [y0, y1) is white. */
static int all_white(cairo_surface_t *img, int x0, int x1, int y0, int y1)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++) {
            int rgb[3];
            pixel(img, x, y, rgb);
            if (rgb[0] < 250 || rgb[1] < 250 || rgb[2] < 250)
                return 0;
        }
    return 1;
}

/* Panel titles fit their panels: a long "id  AE x  cons. y  k n" title
 * breaks at its double spaces, a word too long for any size is cut; no ink
 * in the margin or the gaps between the panels above them, some above each. */
static void test_montage_titles_fit(void **state)
{
    (void)state;
    float image[16] = {0};
    cbq_overlay_panel p[3] = {
        {.image = image, .width = 4, .height = 4,
         .title = "HN-CHUM-001_cbct_fraction_01  AE 0.2853  cons. 5.00  k 7"},
        {.image = image, .width = 4, .height = 4, .title = "v1  AE 0.27  cons. 3.44  k 7"},
        {.image = image, .width = 4, .height = 4,
         .title = "a_volume_id_far_too_long_for_any_font_size_of_this_panel_title"}};
    cbq_montage m = {.panels = p, .n_panels = 3, .panel_size = 120, .window_lo = -100,
                     .window_hi = 100, .map_lo = 0, .map_hi = 1};
    cbq_error err = {0};
    cbq_figure *fig = NULL;
    assert_int_equal(cbq_montage_draw(&fig, &m, &err), CBQ_OK);
    cairo_surface_t *img = png_roundtrip(fig, "montage_titles");
    double r[3][4];
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(cbq_montage_panel_rect(&m, i, r[i], &err), CBQ_OK);
    int top = (int)r[0][1];
    assert_true(top > 2 * 13); /* the long title took two or more lines */
    assert_true(all_white(img, 0, (int)r[0][0] - 1, 0, top));
    for (size_t i = 0; i + 1 < 3; i++)
        assert_true(all_white(img, (int)(r[i][0] + r[i][2]) + 1, (int)r[i + 1][0] - 1, 0, top));
    for (size_t i = 0; i < 3; i++)
        assert_false(all_white(img, (int)r[i][0], (int)(r[i][0] + r[i][2]), 0, top));
    cairo_surface_destroy(img);
    cbq_figure_free(fig);
}

static double srgb_to_linear(double c)
{
    return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4);
}

/* CIE 1976 L* of an sRGB colour (D65): Y from the sRGB matrix's middle row. */
static double lightness(const float rgb[3])
{
    double Y = 0.2126 * srgb_to_linear(rgb[0]) + 0.7152 * srgb_to_linear(rgb[1]) +
               0.0722 * srgb_to_linear(rgb[2]);
    return Y > 216.0 / 24389.0 ? 116.0 * cbrt(Y) - 16.0 : Y * 24389.0 / 27.0;
}

static void test_colormap_published_colours_and_lightness(void **state)
{
    (void)state;
    cbq_colormap v, in, g;
    cbq_error err = {0};
    assert_int_equal(cbq_colormap_build(&v, CBQ_CMAP_VIRIDIS, &err), CBQ_OK);
    assert_int_equal(cbq_colormap_build(&in, CBQ_CMAP_INFERNO, &err), CBQ_OK);
    assert_int_equal(cbq_colormap_build(&g, CBQ_CMAP_GREY, &err), CBQ_OK);
    /* Hex values published with the maps: viridis #440154, #21918c, #fde725;
     * inferno #000004, #fcffa4. */
    const unsigned char *c = cbq_colormap_lookup(&v, 0.0);
    assert_true(c[0] == 0x44 && c[1] == 0x01 && c[2] == 0x54);
    c = cbq_colormap_lookup(&v, 128 / 255.0);
    assert_true(c[0] == 0x21 && c[1] == 0x91 && c[2] == 0x8c);
    c = cbq_colormap_lookup(&v, 1.0);
    assert_true(c[0] == 0xfd && c[1] == 0xe7 && c[2] == 0x25);
    c = cbq_colormap_lookup(&in, 0.0);
    assert_true(c[0] == 0x00 && c[1] == 0x00 && c[2] == 0x04);
    c = cbq_colormap_lookup(&in, 1.0);
    assert_true(c[0] == 0xfc && c[1] == 0xff && c[2] == 0xa4);
    assert_true(cbq_colormap_lookup(&v, NAN) == v.rgb[0] && cbq_colormap_lookup(&v, 7.0) == v.rgb[255]);
    /* Perceptual uniformity's first promise: lightness rises throughout. */
    const cbq_colormap *maps[3] = {&v, &in, &g};
    for (int k = 0; k < 3; k++)
        for (int i = 1; i < 256; i++)
            if (!(lightness(maps[k]->rgb_f[i]) > lightness(maps[k]->rgb_f[i - 1])))
                fail_msg("%s: L* falls at entry %d", cbq_colormap_name(maps[k]->id), i);
    cbq_colormap_id id;
    assert_int_equal(cbq_colormap_parse("Inferno", &id, &err), CBQ_OK);
    assert_int_equal(id, CBQ_CMAP_INFERNO);
    assert_int_equal(cbq_colormap_parse("jet", &id, &err), CBQ_ERR_ARG);
    assert_non_null(strstr(err.msg, "jet"));
}

static void test_png_bytes_and_svg(void **state)
{
    (void)state;
    double y[5] = {0.1, 0.5, 0.4, 0.7, 0.2};
    cbq_series s = {.kind = CBQ_SERIES_HISTOGRAM, .y = y, .n = 5, .bins = 3, .color = -1};
    cbq_chart c = {.title = "Histogram & <escapes>", .series = &s, .n_series = 1};
    cbq_error err = {0};
    cbq_figure *fig = NULL;
    assert_int_equal(cbq_chart_draw(&fig, &c, &err), CBQ_OK);
    assert_int_equal(cbq_figure_width(fig), 640);
    assert_int_equal(cbq_figure_height(fig), 440);
    unsigned char *png;
    size_t len;
    assert_int_equal(cbq_figure_png_bytes(fig, &png, &len, &err), CBQ_OK);
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    assert_true(len > 1000 && memcmp(png, sig, 8) == 0);
    /* IHDR width and height, big-endian at bytes 16..23. */
    assert_int_equal((png[16] << 24) | (png[17] << 16) | (png[18] << 8) | png[19], 640);
    assert_int_equal((png[20] << 24) | (png[21] << 16) | (png[22] << 8) | png[23], 440);
    free(png);
    assert_int_equal(cbq_figure_save(fig, dir, "hist", &err), CBQ_OK);
    char path[1200];
    snprintf(path, sizeof path, "%s/hist.svg", dir);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char head[512] = {0};
    assert_true(fread(head, 1, sizeof head - 1, fp) > 100);
    fclose(fp);
    assert_non_null(strstr(head, "<?xml"));
    assert_non_null(strstr(head, "<svg"));
    assert_non_null(strstr(head, "width=\"640px\" height=\"440px\""));
    cbq_figure_free(fig);
}

/* report.dpi: a scatter point at data (x, y) lands at pixel (px, py) on the
 * page and at (2 px, 2 py) in the 300-dpi file; a resolution outside
 * CBQ_FIGURE_DPI_MIN..MAX is refused, naming the file, and writes nothing. */
static void test_png_dpi(void **state)
{
    (void)state;
    double x[1] = {2}, y[1] = {3};
    cbq_series s = {.kind = CBQ_SERIES_SCATTER, .x = x, .y = y, .n = 1, .color = 0};
    cbq_chart c = {.series = &s, .n_series = 1, .width = 200, .height = 150, .x_fixed = 1,
                   .x_max = 4, .y_fixed = 1, .y_max = 6};
    cbq_error err = {0};
    cbq_figure *fig = NULL;
    assert_int_equal(cbq_chart_draw(&fig, &c, &err), CBQ_OK);
    cbq_axes_frame frame;
    assert_int_equal(cbq_chart_frame(&c, &frame, &err), CBQ_OK);
    double px, py;
    cbq_axes_frame_map(&frame, 2, 3, &px, &py);
    char path[1200];
    snprintf(path, sizeof path, "%s/dpi300.png", dir);
    assert_int_equal(cbq_figure_write_png_dpi(fig, path, 300, &err), CBQ_OK);
    cairo_surface_t *img = cairo_image_surface_create_from_png(path);
    assert_int_equal(cairo_surface_status(img), CAIRO_STATUS_SUCCESS);
    assert_int_equal(cairo_image_surface_get_width(img), 400);
    assert_int_equal(cairo_image_surface_get_height(img), 300);
    cairo_surface_flush(img);
    int rgb[3];
    pixel(img, (int)(2 * px), (int)(2 * py), rgb);
    assert_true(rgb[0] < 200 || rgb[1] < 200 || rgb[2] < 200); /* the point, not the white page */
    cairo_surface_destroy(img);
    snprintf(path, sizeof path, "%s/dpi_bad.png", dir);
    assert_int_equal(cbq_figure_write_png_dpi(fig, path, 10, &err), CBQ_ERR_ARG);
    assert_non_null(strstr(err.msg, "dpi_bad.png: resolution 10 dpi: expected 50..1200"));
    FILE *fp = fopen(path, "rb");
    assert_null(fp);
    cbq_figure_free(fig);
}

static void test_bad_input_is_refused(void **state)
{
    (void)state;
    cbq_error err = {0};
    cbq_figure *fig = (cbq_figure *)&err; /* must be reset to NULL on failure */
    cbq_series empty = {.kind = CBQ_SERIES_SCATTER, .n = 0};
    cbq_chart c = {.series = &empty, .n_series = 1};
    assert_int_equal(cbq_chart_draw(&fig, &c, &err), CBQ_ERR_ARG);
    assert_null(fig);
    assert_non_null(strstr(err.msg, "series 0"));
    double x[1] = {1}, y[1] = {NAN};
    cbq_series nan_only = {.kind = CBQ_SERIES_SCATTER, .x = x, .y = y, .n = 1};
    c.series = &nan_only;
    assert_int_equal(cbq_chart_draw(&fig, &c, &err), CBQ_ERR_ARG);
    assert_non_null(strstr(err.msg, "no finite value"));
    y[0] = 2;
    c.y_fixed = 1;
    c.y_min = 3;
    c.y_max = 1;
    assert_int_equal(cbq_chart_draw(&fig, &c, &err), CBQ_ERR_ARG);
    assert_non_null(strstr(err.msg, "y limits"));
    float img[4] = {0};
    cbq_overlay_panel p = {.image = img, .width = 2, .height = 2};
    cbq_montage m = {.panels = &p, .n_panels = 1, .window_lo = 100, .window_hi = -100, .map_hi = 1};
    assert_int_equal(cbq_montage_draw(&fig, &m, &err), CBQ_ERR_ARG);
    assert_non_null(strstr(err.msg, "grey window"));
    m.window_lo = -100;
    m.window_hi = 100;
    p.width = 0;
    assert_int_equal(cbq_montage_draw(&fig, &m, &err), CBQ_ERR_ARG);
    assert_non_null(strstr(err.msg, "panel 0"));
    p.width = 2;
    char path[1200];
    snprintf(path, sizeof path, "%s/no-such-folder/x.png", dir);
    assert_int_equal(cbq_montage_draw(&fig, &m, &err), CBQ_OK);
    assert_int_equal(cbq_figure_write_png(fig, path, &err), CBQ_ERR_IO);
    assert_non_null(strstr(err.msg, "x.png"));
    cbq_figure_free(fig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nice_ticks),
        cmocka_unit_test(test_scatter_points_at_axes_transform),
        cmocka_unit_test(test_line_and_bars),
        cmocka_unit_test(test_montage_blends_exactly),
        cmocka_unit_test(test_montage_titles_fit),
        cmocka_unit_test(test_colormap_published_colours_and_lightness),
        cmocka_unit_test(test_png_bytes_and_svg),
        cmocka_unit_test(test_png_dpi),
        cmocka_unit_test(test_bad_input_is_refused),
    };
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    /* Drop cairo's and fontconfig's process-wide font caches so that
     * LeakSanitizer reports only what cbctiq kept (cairo asserts here if a
     * cairo object is still alive). */
    cairo_debug_reset_static_data();
    FcFini();
    return rc;
}
