/* stats_pointing.h - stats/pointing.csv: rho of each localisation and
 * faithfulness column of ae.csv with the consensus and with AE, per
 * category (private to src/study; called by the stats stage). */
#ifndef CBQ_STUDY_STATS_POINTING_H
#define CBQ_STUDY_STATS_POINTING_H

#include "study/ae_table.h"

int stats_pointing_write(const study_ctx *ctx, const ae_table *t, cbq_error *err);

#endif
