/* dist.h - the processes of one job: rank, size and the few collectives
 * cbctiq needs, over MPI when it was compiled in and the process was started
 * by an MPI launcher (mpirun, srun), otherwise one process on its own.
 *
 * Without MPI, or without a launcher, every call is the one-process case:
 * rank 0 of 1, collectives copy their input, so the same binary runs exactly
 * as it does without mpirun. No other networking: MPI moves every byte.
 *
 * Collectives are called by every rank in the same order. A rank that fails
 * does not call the next collective: the command line turns its failure into
 * cbq_dist_abort, which stops every rank (the others may be waiting in a
 * collective), so a failure never hangs a job.
 *
 *   cbq_dist d;
 *   cbq_dist_init(&d, &argc, &argv);     (main.c, once per process)
 *   size_t begin, end;
 *   cbq_dist_block(&d, n_volumes, &begin, &end);   this rank's volumes
 *   ... gather the results on rank 0, which alone writes files ...
 *   cbq_dist_finalize(&d);
 */
#ifndef CBCTIQ_DIST_H
#define CBCTIQ_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "cbctiq/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int rank;  /* 0 .. size-1; rank 0 prints progress and writes the files */
    int size;  /* processes in the job; 1 without MPI or without a launcher */
    int mpi;   /* 1 when MPI was initialised (by this or an earlier init) */
    void *comm; /* NULL: every process of the job; else a group's own
                 * communicator (cbq_dist_split), owned by the group */
} cbq_dist;

/* 1 when this build has MPI compiled in. */
int cbq_dist_compiled(void);

/* Joins the job: initialises MPI when compiled in and the environment shows
 * an MPI launcher started this process; otherwise (or when MPI is already
 * initialised, when it only reads rank and size) fills the one-process case.
 * Never fails: an MPI that cannot start aborts inside MPI itself. */
void cbq_dist_init(cbq_dist *d, int *argc, char ***argv);
/* Reads rank and size of a job already joined by cbq_dist_init. */
void cbq_dist_current(cbq_dist *d);
/* Leaves the job after a success on this rank (MPI_Finalize). */
void cbq_dist_finalize(const cbq_dist *d);

/* Items [*begin, *end) of n for this rank: contiguous blocks in rank order,
 * sizes differing by at most one, so concatenating the ranks' results in
 * rank order gives the one-process order. */
void cbq_dist_block(const cbq_dist *d, size_t n, size_t *begin, size_t *end);

/* Splits the ranks of d into groups (a collective of d): the ranks that
 * pass the same color form *group, numbered in d's order, and the
 * collectives below on *group involve only them (the study trains
 * independent models on groups of ranks). Free it with cbq_dist_group_free.
 * With one rank, *group is d's copy. */
int cbq_dist_split(const cbq_dist *d, int color, cbq_dist *group, cbq_error *err);
void cbq_dist_group_free(cbq_dist *group);

int cbq_dist_barrier(const cbq_dist *d, cbq_error *err);

/* Every rank sends len bytes; rank 0 receives their concatenation in rank
 * order in *all (malloc'd, caller frees; *all_len its length); other ranks
 * get *all = NULL, *all_len = 0. Any length (sent in pieces under 1 GiB). */
int cbq_dist_gather_bytes(const cbq_dist *d, const void *buf, size_t len, void **all,
                          size_t *all_len, cbq_error *err);

/* Rank 0's len bytes to every rank (buf is read on rank 0, written on the
 * others). */
int cbq_dist_broadcast_bytes(const cbq_dist *d, void *buf, size_t len, cbq_error *err);

/* x[i] = sum over ranks of x[i], on every rank. Each element is summed in
 * rank order (rank 0's value first), never in the order messages arrive, so
 * the result does not depend on timing: the same ranks give the same bits,
 * and every rank the same bits. Each rank sends and receives about twice
 * the size of x (a reduce-scatter and an allgather, as a ring allreduce). */
int cbq_dist_allreduce_sum_double(const cbq_dist *d, double *x, size_t n, cbq_error *err);
int cbq_dist_allreduce_sum_float(const cbq_dist *d, float *x, size_t n, cbq_error *err);

/* Prints "cbctiq (rank R of N): MESSAGE" to stderr and stops every rank of
 * the job with exit status code (MPI_Abort); without MPI it exits. For the
 * command line only: the library returns errors and never calls this. */
_Noreturn void cbq_dist_abort(const cbq_dist *d, int code, const char *message);

#ifdef __cplusplus
}
#endif
#endif
