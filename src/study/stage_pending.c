/* stage_pending.c - placeholders for stages whose subsystems are not in
 * this build yet; each fails with a clear message. */
#include "study/pipeline.h"

#define PENDING(name, what)                                                              \
    int study_stage_##name(study_ctx *ctx, cbq_error *err)                               \
    {                                                                                    \
        (void)ctx;                                                                       \
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "this build has no " what);               \
    }

PENDING(cohort, "cohort simulator")
PENDING(attrib, "attribution")
PENDING(report, "report builder")

int study_cohort_inputs_hash(const study_ctx *ctx, cbq_sha256 *h, cbq_error *err)
{
    (void)ctx; (void)h; (void)err;
    return CBQ_OK;
}
