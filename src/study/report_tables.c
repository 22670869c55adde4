/* report_tables.c - the study's standard tables in the report, formatted
 * the same way everywhere (see report.h). Values are rounded for reading;
 * stats.json keeps them at full precision. */
#include "cbctiq/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void cbq_format_rho(char *buf, size_t cap, double rho)
{
    if (isnan(rho))
        snprintf(buf, cap, "n/a");
    else
        snprintf(buf, cap, "%.3f", rho);
}

void cbq_format_p(char *buf, size_t cap, double p)
{
    if (isnan(p))
        snprintf(buf, cap, "n/a");
    else if (p != 0.0 && p < 1e-3)
        snprintf(buf, cap, "%.1e", p);
    else
        snprintf(buf, cap, "%.2g", p);
}

enum { POSTER_COLS = 7, CELL = 48 };

static const char *const poster_header[POSTER_COLS] = {"category", "n", "median LOO rho", "median LOO p",
                                                       "rho", "p", "95% CI"};

static void format_ci(char *buf, double lo, double hi)
{
    if (isnan(lo) || isnan(hi))
        snprintf(buf, CELL, "n/a");
    else
        snprintf(buf, CELL, "[%.2f, %.2f]", lo, hi);
}

static void poster_cells(char cells[POSTER_COLS][CELL], const cbq_poster_row *row)
{
    snprintf(cells[0], CELL, "%s", row->category ? row->category : "");
    snprintf(cells[1], CELL, "%zu", row->n);
    cbq_format_rho(cells[2], CELL, row->median_loo_rho);
    cbq_format_p(cells[3], CELL, row->median_loo_p);
    cbq_format_rho(cells[4], CELL, row->rho);
    cbq_format_p(cells[5], CELL, row->p);
    format_ci(cells[6], row->ci_lo, row->ci_hi);
}

int cbq_report_poster_table(cbq_report *r, const char *stem, const char *caption, const cbq_poster_row *rows,
                            size_t n_rows, cbq_error *err)
{
    size_t n_cells;
    if (!cbq_size_mul(&n_cells, n_rows, POSTER_COLS) || (n_rows && !rows))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "poster table: %zu rows without data", n_rows);
    char(*shown)[CELL] = calloc(n_cells ? n_cells : 1, CELL);
    const char **ptr = calloc(n_cells ? n_cells : 1, sizeof *ptr);
    if (!shown || !ptr) {
        free(shown);
        free(ptr);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "poster table: out of memory");
    }
    for (size_t i = 0; i < n_rows; i++) {
        poster_cells(&shown[i * POSTER_COLS], &rows[i]);
        for (size_t c = 0; c < POSTER_COLS; c++)
            ptr[i * POSTER_COLS + c] = shown[i * POSTER_COLS + c];
    }
    int rc = cbq_report_table(r, stem, caption, POSTER_COLS, poster_header, n_rows, ptr, err);
    for (size_t i = 0; i < n_rows && rc == CBQ_OK; i++)
        if ((isnan(rows[i].rho) || isnan(rows[i].median_loo_rho)) && rows[i].reason) {
            char note[512];
            snprintf(note, sizeof note, "%s: rho undefined (%s).", rows[i].category ? rows[i].category : "?",
                     rows[i].reason);
            rc = cbq_report_paragraph(r, note, err);
        }
    free(shown);
    free(ptr);
    return rc;
}
