/* verdict.h - whether the study's numbers mean anything (private to
 * src/study): the "verdict" object of stats.json, printed first on stdout
 * (with "warning:" lines on stderr) and as the report's first section.
 * docs/statistics.md, "The verdict", gives every rule and threshold. */
#ifndef CBQ_STUDY_VERDICT_H
#define CBQ_STUDY_VERDICT_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "cbctiq/report.h"
#include "study/ae_table.h"

/* Below this many test volumes in a category the leave-one-out, bootstrap
 * and Fisher intervals are flagged as resting on too few volumes, and the
 * atypical stage flags no volume (a robust z from the MAD of 5 residuals
 * marks noise). */
enum { STUDY_SMALL_N = 10 };

/* Adds "verdict" to the stats stage's stats.json document `stats` from
 * the test volumes of t and the training split's consensus. */
int study_verdict_add(const study_ctx *ctx, const ae_table *t, cJSON *stats, cbq_error *err);
/* Its answer to "does the model beat the baseline" and its count of
 * warnings, in a few words for the stage's summary line. */
void study_verdict_summary(const cJSON *stats, char *buf, size_t cap);

/* Reads stats/stats.json; *verdict points into *root (caller frees root
 * with cJSON_Delete). */
int study_verdict_load(const study_ctx *ctx, cJSON **root, const cJSON **verdict,
                       cbq_error *err);

/* The verdict in a few lines on out (before the table), and each warning as
 * a line that begins "warning:" on warn. */
int study_print_verdict(const study_ctx *ctx, FILE *out, FILE *warn, cbq_error *err);

/* The report's first section (report_verdict.c): the verdict in words, its
 * warnings and the numbers behind it; *n_warnings receives their count. */
int report_verdict_section(cbq_report *r, const study_ctx *ctx, size_t *n_warnings,
                           cbq_error *err);

#endif
