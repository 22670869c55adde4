/* ae_input.h - how a stage reads the attribution stage's ae.csv joined with
 * the consensus (private to src/study): through its declared inputs. */
#ifndef CBQ_STUDY_AE_INPUT_H
#define CBQ_STUDY_AE_INPUT_H

#include "study/ae_table.h"

/* ae_table_read for the running stage, which must declare the attrib,
 * cohort and consensus stages among its inputs (stage_inputs.c). */
int study_read_ae_table(const study_ctx *ctx, ae_table *t, cbq_error *err);

#endif
