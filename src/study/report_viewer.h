/* report_viewer.h - the report's interactive map viewer (private to
 * src/study; report_viewer.c, its script report_viewer.js). */
#ifndef CBQ_STUDY_REPORT_VIEWER_H
#define CBQ_STUDY_REPORT_VIEWER_H

#include "cbctiq/report.h"
#include "study/ae_table.h"

/* The viewer's subsection (nothing with report.viewer = off): a paragraph
 * saying what it shows, then the viewer itself (markup, its data as JSON
 * and its inline script): per category the test volumes of t that
 * report.viewer names (picks or all), every axial slice of the CBCT with the
 * category's map (when attrib.save_maps is on) and structure, downsampled
 * to at most REPORT_VIEWER_MAX_SIDE pixels a side and stored as PNG data
 * URIs, and the volume's AE profile along z (attrib/profiles.csv). */
enum { REPORT_VIEWER_MAX_SIDE = 128 };
int report_viewer_section(cbq_report *r, const study_ctx *ctx, const ae_table *t, cbq_error *err);

#endif
