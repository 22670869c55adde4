/* csv.h - RFC 4180 tables: read a whole CSV into memory, write one atomically.
 *
 * Input: UTF-8 (a leading BOM is skipped), LF or CRLF line ends, fields
 * separated by commas, quoted fields with "" escapes and embedded newlines.
 * Refused with a message that says so: UTF-16 text (a byte-order mark, or
 * NUL bytes between the characters), old Mac line ends (a CR without LF)
 * and a NUL byte anywhere.
 * The first record is the header; columns are found by name, so their order is
 * free and extra columns are ignored. Every data record must have as many
 * fields as the header. Completely empty lines are skipped. Errors name the
 * file, the line and the column (both 1-based).
 *
 *   cbq_csv t;
 *   CBQ_TRY(cbq_csv_read(&t, "ratings.csv", err));
 *   size_t col;
 *   if (cbq_csv_require_col(&t, "score", &col, err) == CBQ_OK)
 *       for (size_t r = 0; r < t.n_rows; r++) { double s; cbq_csv_get_double(&t, r, col, &s, err); }
 *   cbq_csv_free(&t);
 *
 * Output: a header, then fields written one at a time; fields are quoted only
 * when they contain a comma, a quote, CR or LF; numbers in the shortest form
 * that reads back to the same double; the file appears under its final name
 * only on commit (cbq_atomic_*).
 */
#ifndef CBCTIQ_CSV_H
#define CBCTIQ_CSV_H

#include <stddef.h>
#include <stdint.h>
#include "cbctiq/atomic_file.h"
#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char *name;        /* file name used in messages (owned) */
    size_t n_rows;     /* data records, header excluded */
    size_t n_cols;     /* fields per record (from the header) */
    char **header;     /* n_cols column names (point into storage) */
    char **cells;      /* n_rows * n_cols NUL-terminated fields, row-major */
    size_t *line;      /* n_rows: the 1-based line each record starts on */
    char *storage;     /* one block holding every field (owned) */
} cbq_csv;

/* Reads and parses the file at path. On success *t owns its memory (free
 * with cbq_csv_free); on failure *t is left empty and safe to free. */
int cbq_csv_read(cbq_csv *t, const char *path, cbq_error *err);
/* Parses text[0..len) as if it were the file `name` (for messages). */
int cbq_csv_parse(cbq_csv *t, const char *text, size_t len, const char *name, cbq_error *err);
void cbq_csv_free(cbq_csv *t);

/* Index of the column named `name`, or -1 when absent. */
long cbq_csv_col(const cbq_csv *t, const char *name);
/* Like cbq_csv_col, but a missing column is an error naming the file. */
int cbq_csv_require_col(const cbq_csv *t, const char *name, size_t *col, cbq_error *err);
/* The field at (row, col); never NULL; owned by the table. */
const char *cbq_csv_cell(const cbq_csv *t, size_t row, size_t col);
/* Parses a field as a finite double / an integer (surrounding spaces
 * allowed). An empty field or trailing junk is an error naming file:line,
 * the column number and name. */
int cbq_csv_get_double(const cbq_csv *t, size_t row, size_t col, double *out, cbq_error *err);
int cbq_csv_get_int(const cbq_csv *t, size_t row, size_t col, long long *out, cbq_error *err);
/* Fails, naming file:line, when a value of column `col` repeats an earlier
 * row's ("duplicate WHAT 'value'"), e.g. volume ids in a cohort. */
int cbq_csv_require_unique(const cbq_csv *t, size_t col, const char *what, cbq_error *err);
/* Fails, naming file:line, when a value of column `col` cannot become part
 * of a file name (safe_name.h): volume ids, categories, raters. */
int cbq_csv_require_names(const cbq_csv *t, size_t col, const char *what, cbq_error *err);
/* Raises an error about a field: "FILE:LINE: column N (NAME): MESSAGE". */
int cbq_csv_fail(const cbq_csv *t, size_t row, size_t col, cbq_error *err, int code,
                 const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

typedef struct {
    cbq_atomic_file af;
    size_t n_cols;
    size_t col;        /* fields written in the current record */
    int failed;
} cbq_csv_writer;

/* Opens path for writing (atomically) and writes the header. */
int cbq_csv_writer_open(cbq_csv_writer *w, const char *path, const char *const *header,
                        size_t n_cols, cbq_error *err);
void cbq_csv_put_str(cbq_csv_writer *w, const char *s);
/* NaN or infinity is written as an empty field (missing). */
void cbq_csv_put_double(cbq_csv_writer *w, double v);
void cbq_csv_put_int(cbq_csv_writer *w, long long v);
/* Ends the record; an error if it does not have n_cols fields. */
int cbq_csv_end_row(cbq_csv_writer *w, cbq_error *err);
/* Renames the file onto its final name. */
int cbq_csv_writer_commit(cbq_csv_writer *w, cbq_error *err);
/* Removes the temporary file; nothing appears under the final name. */
void cbq_csv_writer_abort(cbq_csv_writer *w);

/* Shortest "%.{15,16,17}g" text that parses back to exactly v; buf >= 32. */
void cbq_format_double(char *buf, size_t cap, double v);

#ifdef __cplusplus
}
#endif
#endif
