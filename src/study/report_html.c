/* report_html.c - the HTML report builder (see report.h).
 *
 * The page is built in memory (a few MB with inlined figures) and written in
 * one atomic step at the end, so a failed study never leaves a half report.
 * Everything that came from the caller goes through html_text(): no markup
 * can be injected by a volume id or a rater name. */
#define _POSIX_C_SOURCE 200809L /* strdup, strndup */
#include "cbctiq/report.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"

typedef struct {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed: reported once, at the next check */
} strbuf;

struct cbq_report {
    char *title;
    char dir[4096];
    strbuf body, toc;
    int n_sections, n_figures, n_tables;
    int in_section; /* a <section> is open in body */
    int dpi;        /* of the PNG files under figures/ */
};

static void sb_append(strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) {
            b->failed = 1;
            return;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sb_puts(strbuf *b, const char *s) { sb_append(b, s, strlen(s)); }

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_append(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_append(b, big, (size_t)n);
    free(big);
}

/* Escaped text; NULL counts as empty. */
static void html_text(strbuf *b, const char *s)
{
    if (!s)
        return;
    for (const char *p = s; *p; p++) {
        switch (*p) {
        case '&': sb_puts(b, "&amp;"); break;
        case '<': sb_puts(b, "&lt;"); break;
        case '>': sb_puts(b, "&gt;"); break;
        case '"': sb_puts(b, "&quot;"); break;
        case '\'': sb_puts(b, "&#39;"); break;
        default: sb_append(b, p, 1);
        }
    }
}

char *cbq_html_escape(const char *text)
{
    strbuf b = {0};
    sb_append(&b, "", 0);
    html_text(&b, text);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    return b.data;
}

char *cbq_base64_encode(const unsigned char *data, size_t n)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (n > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t out_len = (n + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned long v = (unsigned long)data[i] << 16;
        if (i + 1 < n)
            v |= (unsigned long)data[i + 1] << 8;
        if (i + 2 < n)
            v |= data[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static int check_memory(cbq_report *r, cbq_error *err)
{
    if (r->body.failed || r->toc.failed)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s/report.html: out of memory while building the report", r->dir);
    return CBQ_OK;
}

int cbq_report_begin(cbq_report **out, const char *title, const char *dir, cbq_error *err)
{
    *out = NULL;
    if (!dir || !*dir || strlen(dir) >= 3900)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "report folder '%s': expected a path shorter than 3900 bytes",
                        dir ? dir : "");
    CBQ_TRY(cbq_mkdir_p(dir, err));
    cbq_report *r = calloc(1, sizeof *r);
    if (r)
        r->title = strdup(title ? title : "cbctiq report");
    if (!r || !r->title) {
        free(r);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "report: out of memory");
    }
    strcpy(r->dir, dir);
    r->dpi = CBQ_FIGURE_DPI;
    *out = r;
    return CBQ_OK;
}

int cbq_report_set_dpi(cbq_report *r, int dpi, cbq_error *err)
{
    if (dpi < CBQ_FIGURE_DPI_MIN || dpi > CBQ_FIGURE_DPI_MAX)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "report resolution %d dpi: expected %d..%d", dpi,
                        CBQ_FIGURE_DPI_MIN, CBQ_FIGURE_DPI_MAX);
    r->dpi = dpi;
    return CBQ_OK;
}

void cbq_report_free(cbq_report *r)
{
    if (!r)
        return;
    free(r->title);
    free(r->body.data);
    free(r->toc.data);
    free(r);
}

int cbq_report_section(cbq_report *r, const char *heading, cbq_error *err)
{
    int k = ++r->n_sections;
    if (r->in_section)
        sb_puts(&r->body, "</section>\n");
    r->in_section = 1;
    sb_printf(&r->body, "<section id=\"s%d\">\n<h2>%d. ", k, k);
    html_text(&r->body, heading);
    sb_puts(&r->body, "</h2>\n");
    sb_printf(&r->toc, "<li><a href=\"#s%d\">", k);
    html_text(&r->toc, heading);
    sb_puts(&r->toc, "</a></li>\n");
    return check_memory(r, err);
}

int cbq_report_subsection(cbq_report *r, const char *heading, cbq_error *err)
{
    sb_puts(&r->body, "<h3>");
    html_text(&r->body, heading);
    sb_puts(&r->body, "</h3>\n");
    return check_memory(r, err);
}

/* Paragraphs split at blank lines; single newlines become line breaks. */
static void paragraphs(strbuf *b, const char *text, const char *cls)
{
    const char *p = text ? text : "";
    do {
        const char *end = strstr(p, "\n\n");
        size_t len = end ? (size_t)(end - p) : strlen(p);
        sb_printf(b, "<p%s%s%s>", cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "");
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
            if (i == len || p[i] == '\n') {
                char *line = strndup(p + start, i - start);
                if (!line) {
                    b->failed = 1;
                    return;
                }
                html_text(b, line);
                free(line);
                if (i < len)
                    sb_puts(b, "<br>\n");
                start = i + 1;
            }
        }
        sb_puts(b, "</p>\n");
        p = end ? end + 2 : p + len;
    } while (*p);
}

int cbq_report_paragraph(cbq_report *r, const char *text, cbq_error *err)
{
    paragraphs(&r->body, text, NULL);
    return check_memory(r, err);
}

int cbq_report_note(cbq_report *r, const char *text, cbq_error *err)
{
    sb_puts(&r->body, "<div class=\"note\">\n");
    paragraphs(&r->body, text, NULL);
    sb_puts(&r->body, "</div>\n");
    return check_memory(r, err);
}

static int check_stem(const char *stem, const char *what, cbq_error *err)
{
    size_t n = stem ? strlen(stem) : 0;
    if (n == 0 || n > 200 || stem[0] == '.')
        return CBQ_FAIL(err, CBQ_ERR_ARG, "report %s name '%s': expected 1-200 characters, not starting with '.'",
                        what, stem ? stem : "");
    for (size_t i = 0; i < n; i++) {
        char c = stem[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                 c == '_' || c == '.';
        if (!ok)
            return CBQ_FAIL(err, CBQ_ERR_ARG, "report %s name '%s': character %zu: expected letters, digits, '-', '_' or '.'",
                            what, stem, i + 1);
    }
    return CBQ_OK;
}

/* RFC 4180: quote when the cell holds a comma, quote, CR/LF or edge space. */
static void csv_cell(FILE *fp, const char *s)
{
    if (!s)
        return;
    size_t n = strlen(s);
    int quote = n && (s[0] == ' ' || s[n - 1] == ' ');
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!quote) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            fputc('"', fp);
        fputc(s[i], fp);
    }
    fputc('"', fp);
}

static int write_csv(const char *path, size_t n_cols, const char *const *header, size_t n_rows,
                     const char *const *cells, cbq_error *err)
{
    cbq_atomic_file af;
    CBQ_TRY(cbq_atomic_open(&af, path, err));
    for (size_t c = 0; c < n_cols; c++) {
        if (c)
            fputc(',', af.fp);
        csv_cell(af.fp, header[c]);
    }
    fputc('\n', af.fp);
    for (size_t i = 0; i < n_rows; i++) {
        for (size_t c = 0; c < n_cols; c++) {
            if (c)
                fputc(',', af.fp);
            csv_cell(af.fp, cells[i * n_cols + c]);
        }
        fputc('\n', af.fp);
    }
    return cbq_atomic_commit(&af, err);
}

/* A text cell longer than this is a sentence (e.g. atypical.csv's reason):
 * it gets a minimum width so that a wide table beside it does not squeeze
 * it to one word per line. */
enum { LONG_TEXT_CHARS = 24 };

/* A number, possibly signed, with an optional exponent or trailing '%'. */
static int looks_numeric(const char *s)
{
    if (!s || !*s)
        return 0;
    char *end;
    strtod(s, &end);
    if (end == s)
        return 0;
    if (*end == '%')
        end++;
    return *end == '\0';
}

/* ---- tables that wrap ----
 * A table wider than the page is not cut off behind a scroll bar: its
 * columns wrap into blocks that fit, each after the first repeating the
 * first column (the row's name), like a wide table continued in a paper.
 * Widths are estimated from the text: DejaVu Sans at the table's 0.92em
 * is about 9 px per character (digits), plus 22 px of padding and border. */
enum { CHAR_PX = 9, CELL_PAD_PX = 22, PAGE_PX = 1040, SENTENCE_PX = 330 };

typedef struct {
    size_t n_cols;
    const char *const *header;
    size_t n_rows;
    const char *const *cells;
} table_shape;

/* Characters (UTF-8 code points) of the longest run of s between breaks. */
static size_t longest_word(const char *s, const char *breaks)
{
    size_t best = 0, run = 0;
    for (; s && *s; s++) {
        if (strchr(breaks, *s))
            run = 0;
        else if (((unsigned char)*s & 0xC0) != 0x80 && ++run > best)
            best = run;
    }
    return best;
}

/* The narrowest the column can be: its widest number, its longest word
 * (header words also break after '_', see html_header), a sentence's
 * minimum width (td.text). */
static size_t column_min_px(size_t c, size_t n_cols, const char *const *header, size_t n_rows,
                            const char *const *cells)
{
    size_t px = longest_word(header[c], " _-/") * CHAR_PX;
    for (size_t i = 0; i < n_rows; i++) {
        const char *cell = cells[i * n_cols + c];
        size_t w = looks_numeric(cell)                       ? longest_word(cell, "") * CHAR_PX
                   : cell && strlen(cell) > LONG_TEXT_CHARS ? SENTENCE_PX
                                                            : longest_word(cell, " ") * CHAR_PX;
        if (w > px)
            px = w;
    }
    return px + CELL_PAD_PX;
}

/* The end of the block of columns that starts at `first`: at least one
 * column, then as many as fit the page beside column 0 (repeated in every
 * block after the first). */
static size_t block_end(const size_t *col_px, size_t n_cols, size_t first)
{
    size_t used = first ? col_px[0] : 0, end = first;
    while (end < n_cols && (end == first || used + col_px[end] <= PAGE_PX))
        used += col_px[end++];
    return end;
}

/* A header cell: may break after '_' (column names such as median_loo_rho). */
static void html_header(strbuf *b, const char *s)
{
    for (const char *p = s; p && *p; p++) {
        char one[2] = {*p, '\0'};
        html_text(b, one);
        if (*p == '_' && p[1])
            sb_puts(b, "<wbr>");
    }
}

static void table_cell(strbuf *b, const char *cell)
{
    sb_puts(b, looks_numeric(cell)                       ? "<td class=\"num\">"
               : cell && strlen(cell) > LONG_TEXT_CHARS ? "<td class=\"text\">"
                                                        : "<td>");
    html_text(b, cell);
    sb_puts(b, "</td>");
}

/* The j-th column of a block: [first, end), after column 0 when part > 0. */
static size_t block_col(size_t part, size_t first, size_t j)
{
    return part ? (j == 0 ? 0 : first + j - 1) : first + j;
}

/* Block `part` of table k. */
static void table_block(strbuf *b, const char *stem, int k, const char *caption, size_t part,
                        size_t first, size_t end, const table_shape *t)
{
    if (part == 0) {
        sb_printf(b, "<div class=\"table-wrap\"><table id=\"table-%s\">\n<caption>Table %d. ", stem, k);
        html_text(b, caption);
        sb_printf(b, " <a class=\"file\" href=\"tables/%s.csv\">CSV</a></caption>\n<thead><tr>", stem);
    } else {
        sb_printf(b, "<div class=\"table-wrap\"><table id=\"table-%s-part%zu\" class=\"continued\">\n"
                     "<caption>Table %d, continued (columns %zu-%zu of %zu)</caption>\n<thead><tr>",
                  stem, part + 1, k, first + 1, end, t->n_cols);
    }
    size_t n_shown = end - first + (part ? 1 : 0);
    for (size_t j = 0; j < n_shown; j++) {
        sb_puts(b, "<th>");
        html_header(b, t->header[block_col(part, first, j)]);
        sb_puts(b, "</th>");
    }
    sb_puts(b, "</tr></thead>\n<tbody>\n");
    for (size_t i = 0; i < t->n_rows; i++) {
        sb_puts(b, "<tr>");
        for (size_t j = 0; j < n_shown; j++)
            table_cell(b, t->cells[i * t->n_cols + block_col(part, first, j)]);
        sb_puts(b, "</tr>\n");
    }
    sb_puts(b, "</tbody></table></div>\n");
}

int cbq_report_table(cbq_report *r, const char *stem, const char *caption, size_t n_cols,
                     const char *const *header, size_t n_rows, const char *const *cells, cbq_error *err)
{
    CBQ_TRY(check_stem(stem, "table", err));
    size_t n_cells;
    if (n_cols == 0 || !header || (n_rows && !cells) || !cbq_size_mul(&n_cells, n_rows, n_cols))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "report table '%s': expected a header and n_rows x n_cols cells", stem);
    char path[4400];
    snprintf(path, sizeof path, "%s/tables", r->dir);
    CBQ_TRY(cbq_mkdir_p(path, err));
    snprintf(path, sizeof path, "%s/tables/%s.csv", r->dir, stem);
    CBQ_TRY(write_csv(path, n_cols, header, n_rows, cells, err));

    int k = ++r->n_tables;
    size_t *col_px = malloc(n_cols * sizeof *col_px);
    if (!col_px)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "report table '%s': out of memory", stem);
    for (size_t c = 0; c < n_cols; c++)
        col_px[c] = column_min_px(c, n_cols, header, n_rows, cells);
    const table_shape shape = {n_cols, header, n_rows, cells};
    size_t part = 0;
    for (size_t first = 0; first < n_cols; part++) {
        size_t end = block_end(col_px, n_cols, first);
        table_block(&r->body, stem, k, caption, part, first, end, &shape);
        first = end;
    }
    free(col_px);
    return check_memory(r, err);
}

int cbq_report_figure(cbq_report *r, const cbq_figure *fig, const char *stem, const char *caption,
                      cbq_error *err)
{
    CBQ_TRY(check_stem(stem, "figure", err));
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/figures", r->dir);
    CBQ_TRY(cbq_figure_save_dpi(fig, dir, stem, r->dpi, err));
    unsigned char *png;
    size_t len;
    CBQ_TRY(cbq_figure_png_bytes(fig, &png, &len, err));
    char *b64 = cbq_base64_encode(png, len);
    free(png);
    if (!b64)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "report figure '%s': out of memory", stem);
    int k = ++r->n_figures;
    strbuf *b = &r->body;
    sb_printf(b, "<figure id=\"fig-%s\">\n<img src=\"data:image/png;base64,", stem);
    sb_puts(b, b64);
    free(b64);
    sb_printf(b, "\" width=\"%d\" height=\"%d\" alt=\"", cbq_figure_width(fig), cbq_figure_height(fig));
    html_text(b, caption ? caption : stem);
    sb_printf(b, "\">\n<figcaption>Figure %d. ", k);
    html_text(b, caption);
    sb_printf(b, " <a class=\"file\" href=\"figures/%s.png\">PNG</a> <a class=\"file\" href=\"figures/%s.svg\">SVG</a>"
                 " <a class=\"file\" href=\"figures/%s.pdf\">PDF</a></figcaption>\n</figure>\n",
              stem, stem, stem);
    return check_memory(r, err);
}

int cbq_report_keyvalues(cbq_report *r, size_t n, const char *const *keys, const char *const *values,
                         cbq_error *err)
{
    if (n && (!keys || !values))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "report key-value block: keys or values missing");
    strbuf *b = &r->body;
    sb_puts(b, "<dl class=\"kv\">\n");
    for (size_t i = 0; i < n; i++) {
        sb_puts(b, "<dt>");
        html_text(b, keys[i]);
        sb_puts(b, "</dt><dd>");
        html_text(b, values[i]);
        sb_puts(b, "</dd>\n");
    }
    sb_puts(b, "</dl>\n");
    return check_memory(r, err);
}

int cbq_report_preformatted(cbq_report *r, const char *caption, const char *text, cbq_error *err)
{
    strbuf *b = &r->body;
    if (caption) {
        sb_puts(b, "<p class=\"pre-caption\">");
        html_text(b, caption);
        sb_puts(b, "</p>\n");
    }
    sb_puts(b, "<pre>");
    html_text(b, text);
    sb_puts(b, "</pre>\n");
    return check_memory(r, err);
}

int cbq_report_markup(cbq_report *r, const char *html, cbq_error *err)
{
    sb_puts(&r->body, html);
    return check_memory(r, err);
}

/* Readable offline: system fonts, no external resources, prints cleanly. */
static const char report_css[] =
    "body{font-family:'DejaVu Sans',Verdana,sans-serif;color:#222;background:#fff;margin:0;line-height:1.45}\n"
    "main{max-width:1120px;margin:0 auto;padding:24px 32px 64px}\n"
    "h1{font-size:1.9em;margin:0.2em 0 0.4em;border-bottom:3px solid #0072b2;padding-bottom:6px}\n"
    "h2{font-size:1.4em;margin-top:2em;border-bottom:1px solid #ccc;padding-bottom:4px}\n"
    "h3{font-size:1.1em;margin-top:1.5em}\n"
    "nav.toc{background:#f4f7fa;border:1px solid #dde3ea;padding:8px 20px;display:inline-block}\n"
    "nav.toc ol{margin:4px 0;padding-left:20px}\n"
    "a{color:#0062a0}\n"
    "a.file{font-size:0.85em;margin-left:6px}\n"
    ".note{background:#fff8e6;border-left:4px solid #e69f00;padding:4px 14px;margin:1em 0}\n"
    ".table-wrap{overflow-x:auto;margin:1em 0}\n"
    "table{border-collapse:collapse;font-size:0.92em}\n"
    "caption{caption-side:top;text-align:left;font-weight:bold;padding:4px 0}\n"
    "th,td{border:1px solid #d0d7de;padding:4px 10px;text-align:left;vertical-align:top}\n"
    "th{background:#eef2f6}\n"
    "tbody tr:nth-child(even){background:#f8f9fb}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "td.text{min-width:22em;max-width:40em}\n"
    "figure{margin:1.2em 0;display:inline-block;vertical-align:top;max-width:100%}\n"
    "figure img{max-width:100%;height:auto;border:1px solid #e3e3e3}\n"
    "figcaption{font-size:0.9em;color:#444;margin-top:4px;max-width:720px}\n"
    "dl.kv{display:grid;grid-template-columns:max-content auto;gap:2px 16px}\n"
    "dl.kv dt{font-weight:bold}\n"
    "dl.kv dd{margin:0;font-family:'DejaVu Sans Mono',monospace;word-break:break-all}\n"
    "pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:10px;overflow-x:auto;font-size:0.85em}\n"
    ".pre-caption{font-weight:bold;margin-bottom:0}\n"
    "footer{margin-top:3em;font-size:0.8em;color:#777}\n"
    "@media print{nav.toc{display:none}figure{break-inside:avoid}}\n";

int cbq_report_finish(cbq_report *r, cbq_error *err)
{
    CBQ_TRY(check_memory(r, err));
    char path[4200];
    snprintf(path, sizeof path, "%s/report.html", r->dir);
    strbuf head = {0};
    sb_puts(&head, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>");
    html_text(&head, r->title);
    sb_printf(&head, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<main>\n<h1>", report_css);
    html_text(&head, r->title);
    sb_puts(&head, "</h1>\n");
    if (r->toc.len) {
        sb_puts(&head, "<nav class=\"toc\"><strong>Contents</strong>\n<ol>\n");
        sb_append(&head, r->toc.data, r->toc.len);
        sb_puts(&head, "</ol></nav>\n");
    }
    if (head.failed) {
        free(head.data);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
    }
    static const char tail_open[] = "</section>\n";
    static const char tail[] = "<footer>Written by cbctiq. Figures and tables are also saved beside this file "
                               "(figures/, tables/).</footer>\n</main>\n</body>\n</html>\n";
    cbq_atomic_file af;
    CBQ_TRY(cbq_atomic_open(&af, path, err));
    fwrite(head.data, 1, head.len, af.fp);
    free(head.data);
    if (r->body.len)
        fwrite(r->body.data, 1, r->body.len, af.fp);
    if (r->in_section)
        fputs(tail_open, af.fp);
    fputs(tail, af.fp);
    return cbq_atomic_commit(&af, err);
}
