/* stage_pending.c - placeholders for stages whose subsystems are not in
 * this build yet; each fails with a clear message. */
#include "study/pipeline.h"

#define PENDING(name, what)                                                              \
    int study_stage_##name(study_ctx *ctx, cbq_error *err)                               \
    {                                                                                    \
        (void)ctx;                                                                       \
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "this build has no " what);               \
    }

PENDING(report, "report builder")

