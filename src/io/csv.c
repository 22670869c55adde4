/* csv.c - RFC 4180 reader (whole file into one block) and atomic writer.
 * Not a streaming parser: cbctiq's tables are small (one row per rating or
 * per volume), and holding them whole lets callers look cells up freely. */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/csv.h"
#include "cbctiq/safe_name.h"
#include "cbctiq/text_file.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Growable array of size_t (field offsets into storage, record lines). */
typedef struct {
    size_t *v;
    size_t n, cap;
} size_vec;

static int size_vec_push(size_vec *a, size_t x)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? 2 * a->cap : 64;
        size_t *v = realloc(a->v, cap * sizeof *v);
        if (!v)
            return 0;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = x;
    return 1;
}

typedef struct {
    const char *text;
    size_t len, pos;
    size_t line;           /* current 1-based line */
    const char *name;
    char *store;           /* output block */
    size_t store_len;
    size_vec fields;       /* offset of every field in store */
    size_vec rec_start;    /* index into fields where each record starts */
    size_vec rec_line;
} parser;

static int at_line_end(const parser *ps)
{
    const char *t = ps->text;
    return ps->pos < ps->len &&
           (t[ps->pos] == '\n' || (t[ps->pos] == '\r' && ps->pos + 1 < ps->len && t[ps->pos + 1] == '\n'));
}

static void skip_line_end(parser *ps)
{
    if (ps->text[ps->pos] == '\r')
        ps->pos++;
    ps->pos++;
    ps->line++;
}

static int parse_quoted(parser *ps, size_t field_no, cbq_error *err)
{
    size_t open_line = ps->line;
    ps->pos++; /* opening quote */
    for (;;) {
        if (ps->pos >= ps->len)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s:%zu: column %zu: unterminated quoted field (the quote opened here is never closed)",
                            ps->name, open_line, field_no);
        char c = ps->text[ps->pos];
        if (c == '"') {
            if (ps->pos + 1 < ps->len && ps->text[ps->pos + 1] == '"') {
                ps->store[ps->store_len++] = '"';
                ps->pos += 2;
                continue;
            }
            ps->pos++;
            break;
        }
        if (c == '\n')
            ps->line++;
        ps->store[ps->store_len++] = c;
        ps->pos++;
    }
    if (ps->pos < ps->len && ps->text[ps->pos] != ',' && !at_line_end(ps))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s:%zu: column %zu: unexpected character '%c' after a closing quote "
                        "(expected a comma or the end of the line)",
                        ps->name, ps->line, field_no, ps->text[ps->pos]);
    return CBQ_OK;
}

static int parse_plain(parser *ps, size_t field_no, cbq_error *err)
{
    while (ps->pos < ps->len && ps->text[ps->pos] != ',' && !at_line_end(ps)) {
        char c = ps->text[ps->pos];
        if (c == '"')
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s:%zu: column %zu: a quote inside an unquoted field "
                            "(quote the whole field and double the inner quotes)",
                            ps->name, ps->line, field_no);
        if (c == '\r')
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s:%zu: column %zu: a carriage return (CR) without a line feed: "
                            "old Mac line ends? Save the file with LF or CRLF line ends",
                            ps->name, ps->line, field_no);
        ps->store[ps->store_len++] = c;
        ps->pos++;
    }
    return CBQ_OK;
}

/* Parses one record starting at ps->pos (not at an empty line). */
static int parse_record(parser *ps, cbq_error *err)
{
    if (!size_vec_push(&ps->rec_start, ps->fields.n) || !size_vec_push(&ps->rec_line, ps->line))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", ps->name);
    for (size_t field_no = 1;; field_no++) {
        if (!size_vec_push(&ps->fields, ps->store_len))
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", ps->name);
        if (ps->pos < ps->len && ps->text[ps->pos] == '"')
            CBQ_TRY(parse_quoted(ps, field_no, err));
        else
            CBQ_TRY(parse_plain(ps, field_no, err));
        ps->store[ps->store_len++] = '\0';
        if (ps->pos < ps->len && ps->text[ps->pos] == ',') {
            ps->pos++;
            continue;
        }
        if (ps->pos < ps->len)
            skip_line_end(ps);
        return CBQ_OK;
    }
}

static void parser_free(parser *ps)
{
    free(ps->store);
    free(ps->fields.v);
    free(ps->rec_start.v);
    free(ps->rec_line.v);
}

/* Moves the parsed records into *t, checking that every record has the
 * header's number of fields. */
static int build_table(cbq_csv *t, parser *ps, cbq_error *err)
{
    size_t n_rec = ps->rec_start.n;
    if (n_rec == 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s:1: empty file (expected a header row)", ps->name);
    size_t n_cols = (n_rec > 1 ? ps->rec_start.v[1] : ps->fields.n) - ps->rec_start.v[0];
    for (size_t r = 1; r < n_rec; r++) {
        size_t end = r + 1 < n_rec ? ps->rec_start.v[r + 1] : ps->fields.n;
        size_t got = end - ps->rec_start.v[r];
        if (got != n_cols)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s:%zu: column %zu: this row has %zu field%s but the header has %zu",
                            ps->name, ps->rec_line.v[r], got < n_cols ? got + 1 : n_cols + 1, got,
                            got == 1 ? "" : "s", n_cols);
    }
    t->name = strdup(ps->name);
    t->header = malloc(ps->fields.n * sizeof *t->header);
    t->line = malloc((n_rec > 1 ? n_rec - 1 : 1) * sizeof *t->line);
    if (!t->name || !t->header || !t->line)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", ps->name);
    for (size_t i = 0; i < ps->fields.n; i++)
        t->header[i] = ps->store + ps->fields.v[i];
    t->cells = t->header + n_cols;
    for (size_t r = 1; r < n_rec; r++)
        t->line[r - 1] = ps->rec_line.v[r];
    t->n_cols = n_cols;
    t->n_rows = n_rec - 1;
    t->storage = ps->store;
    ps->store = NULL;
    for (size_t c = 0; c < n_cols; c++)
        for (size_t d = 0; d < c; d++)
            if (strcmp(t->header[c], t->header[d]) == 0)
                return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s:1: column %zu: duplicate column name '%s'",
                                ps->name, c + 1, t->header[c]);
    return CBQ_OK;
}

/* UTF-16 text, with or without a byte-order mark, and NUL bytes anywhere:
 * refused before parsing, as no field of a CSV table holds one. */
static int check_encoding(const char *text, size_t len, const char *name, cbq_error *err)
{
    const unsigned char *u = (const unsigned char *)text;
    if (len >= 2 && ((u[0] == 0xFF && u[1] == 0xFE) || (u[0] == 0xFE && u[1] == 0xFF)))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: UTF-16 text (byte-order mark %02X %02X); save the file as UTF-8 CSV",
                        name, u[0], u[1]);
    const char *nul = memchr(text, '\0', len);
    if (!nul)
        return CBQ_OK;
    /* ASCII written as UTF-16 without a mark: a NUL before or after every
     * character of the first line. */
    if (len >= 4 && (u[0] == 0) != (u[1] == 0) && (u[2] == 0) != (u[3] == 0))
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s: UTF-16 text (a NUL byte every other byte); save the file as UTF-8 CSV",
                        name);
    size_t line = 1;
    for (const char *p = text; p < nul; p++)
        line += *p == '\n';
    return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s:%zu: a NUL byte (binary data, not CSV text)", name,
                    line);
}

int cbq_csv_parse(cbq_csv *t, const char *text, size_t len, const char *name, cbq_error *err)
{
    memset(t, 0, sizeof *t);
    CBQ_TRY(check_encoding(text, len, name, err));
    parser ps = {.text = text, .len = len, .line = 1, .name = name};
    if (len >= 3 && (unsigned char)text[0] == 0xEF && (unsigned char)text[1] == 0xBB &&
        (unsigned char)text[2] == 0xBF)
        ps.pos = 3;
    /* Every field adds at most one NUL, and there are at most len + 1 fields. */
    ps.store = malloc(2 * len + 2);
    if (!ps.store)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory for %zu bytes", name, len);
    int rc = CBQ_OK;
    while (rc == CBQ_OK && ps.pos < ps.len) {
        if (at_line_end(&ps)) {
            skip_line_end(&ps);
            continue;
        }
        rc = parse_record(&ps, err);
    }
    if (rc == CBQ_OK)
        rc = build_table(t, &ps, err);
    parser_free(&ps);
    if (rc != CBQ_OK)
        cbq_csv_free(t);
    return rc;
}

int cbq_csv_read(cbq_csv *t, const char *path, cbq_error *err)
{
    memset(t, 0, sizeof *t);
    char *buf = NULL;
    size_t len = 0;
    CBQ_TRY(cbq_read_text_file(path, 0, &buf, &len, err));
    int rc = cbq_csv_parse(t, buf, len, path, err);
    free(buf);
    return rc;
}

void cbq_csv_free(cbq_csv *t)
{
    free(t->name);
    free(t->header);
    free(t->line);
    free(t->storage);
    memset(t, 0, sizeof *t);
}

long cbq_csv_col(const cbq_csv *t, const char *name)
{
    for (size_t c = 0; c < t->n_cols; c++)
        if (strcmp(t->header[c], name) == 0)
            return (long)c;
    return -1;
}

int cbq_csv_require_col(const cbq_csv *t, const char *name, size_t *col, cbq_error *err)
{
    long c = cbq_csv_col(t, name);
    if (c < 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s:1: missing column '%s' in the header", t->name, name);
    *col = (size_t)c;
    return CBQ_OK;
}

const char *cbq_csv_cell(const cbq_csv *t, size_t row, size_t col)
{
    return t->cells[row * t->n_cols + col];
}

int cbq_csv_fail(const cbq_csv *t, size_t row, size_t col, cbq_error *err, int code,
                 const char *fmt, ...)
{
    char what[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return CBQ_FAIL(err, code, "%s:%zu: column %zu (%s): %s", t->name, t->line[row], col + 1,
                    t->header[col], what);
}

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

int cbq_csv_get_double(const cbq_csv *t, size_t row, size_t col, double *out, cbq_error *err)
{
    const char *s = cbq_csv_cell(t, row, col);
    const char *p = skip_space(s);
    if (*p == '\0')
        return cbq_csv_fail(t, row, col, err, CBQ_ERR_FORMAT, "empty field, expected a number");
    char *end = NULL;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || *skip_space(end) != '\0' || !isfinite(v) || errno == ERANGE)
        return cbq_csv_fail(t, row, col, err, CBQ_ERR_FORMAT, "'%s' is not a finite number", s);
    *out = v;
    return CBQ_OK;
}

int cbq_csv_get_int(const cbq_csv *t, size_t row, size_t col, long long *out, cbq_error *err)
{
    const char *s = cbq_csv_cell(t, row, col);
    const char *p = skip_space(s);
    char *end = NULL;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (*p == '\0' || end == p || *skip_space(end) != '\0' || errno == ERANGE)
        return cbq_csv_fail(t, row, col, err, CBQ_ERR_FORMAT, "'%s' is not an integer", s);
    *out = v;
    return CBQ_OK;
}

/* ---- writer ---- */

void cbq_format_double(char *buf, size_t cap, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v)
            return;
    }
}

static void put_field(cbq_csv_writer *w, const char *s)
{
    if (w->col > 0)
        fputc(',', w->af.fp);
    if (strpbrk(s, ",\"\r\n")) {
        fputc('"', w->af.fp);
        for (const char *p = s; *p; p++) {
            if (*p == '"')
                fputc('"', w->af.fp);
            fputc(*p, w->af.fp);
        }
        fputc('"', w->af.fp);
    } else {
        fputs(s, w->af.fp);
    }
    w->col++;
}

int cbq_csv_writer_open(cbq_csv_writer *w, const char *path, const char *const *header,
                        size_t n_cols, cbq_error *err)
{
    memset(w, 0, sizeof *w);
    CBQ_TRY(cbq_atomic_open(&w->af, path, err));
    w->n_cols = n_cols;
    for (size_t c = 0; c < n_cols; c++)
        put_field(w, header[c]);
    int rc = cbq_csv_end_row(w, err);
    if (rc != CBQ_OK)
        cbq_atomic_abort(&w->af);
    return rc;
}

void cbq_csv_put_str(cbq_csv_writer *w, const char *s) { put_field(w, s ? s : ""); }

void cbq_csv_put_double(cbq_csv_writer *w, double v)
{
    char buf[40] = "";
    if (isfinite(v))
        cbq_format_double(buf, sizeof buf, v);
    put_field(w, buf);
}

void cbq_csv_put_int(cbq_csv_writer *w, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    put_field(w, buf);
}

int cbq_csv_end_row(cbq_csv_writer *w, cbq_error *err)
{
    if (w->col != w->n_cols)
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: a row with %zu fields, the header has %zu",
                        w->af.final_path, w->col, w->n_cols);
    fputc('\n', w->af.fp);
    w->col = 0;
    return CBQ_OK;
}

int cbq_csv_writer_commit(cbq_csv_writer *w, cbq_error *err)
{
    return cbq_atomic_commit(&w->af, err);
}

void cbq_csv_writer_abort(cbq_csv_writer *w) { cbq_atomic_abort(&w->af); }

int cbq_csv_require_names(const cbq_csv *t, size_t col, const char *what, cbq_error *err)
{
    for (size_t r = 0; r < t->n_rows; r++) {
        char why[160];
        if (!cbq_name_ok(cbq_csv_cell(t, r, col), why, sizeof why))
            return cbq_csv_fail(t, r, col, err, CBQ_ERR_FORMAT,
                                "%s %s (names become parts of file names: no '/', '\\', control "
                                "characters, '.' or '..')",
                                what, why);
    }
    return CBQ_OK;
}

int cbq_csv_require_unique(const cbq_csv *t, size_t col, const char *what, cbq_error *err)
{
    /* Quadratic, but tables keyed this way (cohorts) have at most thousands of rows. */
    for (size_t r = 1; r < t->n_rows; r++)
        for (size_t q = 0; q < r; q++)
            if (strcmp(cbq_csv_cell(t, r, col), cbq_csv_cell(t, q, col)) == 0)
                return cbq_csv_fail(t, r, col, err, CBQ_ERR_FORMAT, "duplicate %s '%s'", what,
                                    cbq_csv_cell(t, r, col));
    return CBQ_OK;
}
