/* report.h - the self-contained HTML report of a study (report.html).
 *
 * A builder: begin with an output folder, append sections, paragraphs,
 * tables, figures and key-value blocks in reading order, then finish, which
 * writes DIR/report.html atomically. The page needs nothing else to render:
 * CSS is inline, figures are inlined as base64 PNG, the only JavaScript is
 * inline (the study's map viewer, cbq_report_markup) and there is no
 * external resource. Beside it, every figure is also saved as
 * DIR/figures/STEM.png, .svg and .pdf and every table as DIR/tables/STEM.csv, and
 * the page links to those copies. All text is HTML-escaped here; callers
 * pass plain UTF-8.
 *
 *   cbq_report *r = NULL;
 *   CBQ_TRY(cbq_report_begin(&r, "cbctiq study", "out", err));
 *   cbq_report_section(r, "Results", err);
 *   cbq_report_paragraph(r, "AE against consensus, test set.", err);
 *   cbq_report_figure(r, fig, "scatter_parotid", "Parotid: AE vs consensus", err);
 *   rc = cbq_report_finish(r, err);   // writes out/report.html
 *   cbq_report_free(r);
 *
 * Every call returns CBQ_OK or an error; after an error the report may be
 * freed but should not be finished.
 */
#ifndef CBCTIQ_REPORT_H
#define CBCTIQ_REPORT_H

#include <stddef.h>
#include "cbctiq/error.h"
#include "cbctiq/plot.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cbq_report cbq_report; /* opaque; owned by the caller */

/* Starts a report titled `title` that will live in folder `dir` (created
 * if missing). *out is owned by the caller: cbq_report_free(). */
int cbq_report_begin(cbq_report **out, const char *title, const char *dir, cbq_error *err);
void cbq_report_free(cbq_report *r); /* NULL is fine */
/* The resolution of the PNG files under DIR/figures/ (default
 * CBQ_FIGURE_DPI; 300 for print), CBQ_FIGURE_DPI_MIN..MAX. */
int cbq_report_set_dpi(cbq_report *r, int dpi, cbq_error *err);

/* A numbered top-level section (listed in the contents) or a subsection. */
int cbq_report_section(cbq_report *r, const char *heading, cbq_error *err);
int cbq_report_subsection(cbq_report *r, const char *heading, cbq_error *err);

/* A paragraph of plain text; a blank line ("\n\n") starts a new paragraph. */
int cbq_report_paragraph(cbq_report *r, const char *text, cbq_error *err);
/* A highlighted note (caveats, warnings), plain text. */
int cbq_report_note(cbq_report *r, const char *text, cbq_error *err);

/* A table of n_rows x n_cols plain-text cells (row-major, NULL = empty),
 * under a header row; also written to DIR/tables/STEM.csv (RFC 4180, the
 * same cells). Cells that look numeric are right-aligned. `caption` may
 * be NULL. STEM: letters, digits, '-', '_' and '.' only. */
int cbq_report_table(cbq_report *r, const char *stem, const char *caption, size_t n_cols,
                     const char *const *header, size_t n_rows, const char *const *cells, cbq_error *err);

/* A figure: saved as DIR/figures/STEM.png (at the report's resolution),
 * .svg and .pdf, and inlined as PNG (at CBQ_FIGURE_DPI, the size the page
 * shows) with its caption (plain text, may be NULL). The figure stays the
 * caller's. */
int cbq_report_figure(cbq_report *r, const cbq_figure *fig, const char *stem, const char *caption,
                      cbq_error *err);

/* A two-column key-value list (versions, seed, paths). */
int cbq_report_keyvalues(cbq_report *r, size_t n, const char *const *keys, const char *const *values,
                         cbq_error *err);
/* Preformatted text, e.g. the study's JSON config, with a caption. */
int cbq_report_preformatted(cbq_report *r, const char *caption, const char *text, cbq_error *err);

/* Markup that cbctiq itself wrote (the study's interactive map viewer:
 * inline script and its data), appended as it is, NOT escaped: never pass
 * text that came from data unless the caller escaped it for its context. */
int cbq_report_markup(cbq_report *r, const char *html, cbq_error *err);

/* Writes DIR/report.html atomically. The report can still be freed after. */
int cbq_report_finish(cbq_report *r, cbq_error *err);

/* ---- study tables ---- */

/* One row of the poster-style table: Spearman rho of AE against consensus
 * for one category. NaN marks an undefined value (n < 3, constant input):
 * it is shown as "n/a" and `reason` (may be NULL) is added to the note. */
typedef struct {
    const char *category;
    size_t n;
    double median_loo_rho, median_loo_p; /* over the n leave-one-out subsets */
    double rho, p;                       /* full sample */
    double ci_lo, ci_hi;                 /* 95 % confidence interval of rho */
    const char *reason;
} cbq_poster_row;

/* The poster table (columns: category, n, median LOO rho, median LOO p, rho,
 * p, 95% CI) in the display formats below, also as DIR/tables/STEM.csv
 * (full precision lives in stats.json). */
int cbq_report_poster_table(cbq_report *r, const char *stem, const char *caption, const cbq_poster_row *rows,
                            size_t n_rows, cbq_error *err);

/* Display formats used in the report's tables: rho with 3 decimals; p with
 * 2 significant digits ("0.0012", "0.37"), in exponent form below 0.001
 * ("3.4e-05"); NaN as "n/a". buf should hold 32 bytes. */
void cbq_format_rho(char *buf, size_t cap, double rho);
void cbq_format_p(char *buf, size_t cap, double p);

/* HTML-escapes text (& < > " ') into a new string owned by the caller
 * (free()); NULL on allocation failure. Exposed for tests and callers who
 * compose their own markup. */
char *cbq_html_escape(const char *text);

/* Base64 (RFC 4648, with padding) of n bytes into a new NUL-terminated
 * string owned by the caller; NULL on allocation failure. */
char *cbq_base64_encode(const unsigned char *data, size_t n);

#ifdef __cplusplus
}
#endif
#endif
