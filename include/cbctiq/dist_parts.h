/* dist_parts.h - one output table written by the ranks of an MPI job (the
 * predict and ae commands, the study's attrib stage).
 *
 * Each rank writes the rows of its block of volumes, with the table's usual
 * writer, to its own part file beside the final one; then rank 0 joins the
 * parts in rank order (blocks are contiguous, so that is the one-process row
 * order) and alone writes the final file, atomically. With one rank the part
 * is the final file itself, so nothing changes without mpirun. */
#ifndef CBCTIQ_DIST_PARTS_H
#define CBCTIQ_DIST_PARTS_H

#include <stddef.h>

#include "cbctiq/dist.h"
#include "cbctiq/error.h"

/* The path this rank writes: final itself for one rank, else
 * "FINAL.rankR-of-N.part". Returns 0 when it does not fit in cap. */
int cbq_dist_part_path(const cbq_dist *d, const char *final, char *buf, size_t cap);

/* Called by every rank after committing its part (a collective): rank 0
 * writes final as its part followed by the other parts without their first
 * (header) line; every part is removed. Nothing to do for one rank. */
int cbq_dist_join_parts(const cbq_dist *d, const char *final, cbq_error *err);

#endif
