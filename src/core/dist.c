/* dist.c - the processes of one job (dist.h): MPI when compiled in
 * (CBQ_HAVE_MPI) and started by a launcher, else the one-process case.
 *
 * Not a communication layer of our own: every byte goes through MPI's own
 * collectives and point-to-point calls. MPI's default error handler
 * (MPI_ERRORS_ARE_FATAL) stops the job on a communication failure, so the
 * calls here return CBQ_OK or fail on our own checks only. */
#include "cbctiq/dist.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CBQ_HAVE_MPI
#include <mpi.h>
#endif

int cbq_dist_compiled(void)
{
#ifdef CBQ_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

#ifdef CBQ_HAVE_MPI
/* The variables an MPI launcher sets for the processes it starts: Open MPI's
 * mpirun, PMIx (Open MPI 5, srun --mpi=pmix), PMI/PMI-2 (MPICH, Slurm). A
 * process started from a shell has none, and then MPI is not initialised at
 * all (an Open MPI singleton would try to start its runtime). */
static int started_by_launcher(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}
#endif

#ifdef CBQ_HAVE_MPI
/* The communicator of d's ranks: the whole job, or a group's own. */
static MPI_Comm comm_of(const cbq_dist *d)
{
    return d->comm ? *(const MPI_Comm *)d->comm : MPI_COMM_WORLD;
}
#endif

void cbq_dist_current(cbq_dist *d)
{
    d->rank = 0;
    d->size = 1;
    d->mpi = 0;
    d->comm = NULL;
#ifdef CBQ_HAVE_MPI
    int initialised = 0, finalised = 0;
    MPI_Initialized(&initialised);
    MPI_Finalized(&finalised);
    if (!initialised || finalised)
        return;
    d->mpi = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
#endif
}

void cbq_dist_init(cbq_dist *d, int *argc, char ***argv)
{
#ifdef CBQ_HAVE_MPI
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised && started_by_launcher())
        MPI_Init(argc, argv);
#else
    (void)argc;
    (void)argv;
#endif
    cbq_dist_current(d);
}

void cbq_dist_finalize(const cbq_dist *d)
{
#ifdef CBQ_HAVE_MPI
    if (d->mpi)
        MPI_Finalize();
#else
    (void)d;
#endif
}

void cbq_dist_block(const cbq_dist *d, size_t n, size_t *begin, size_t *end)
{
    size_t r = (size_t)d->rank, p = (size_t)d->size;
    *begin = n / p * r + (r < n % p ? r : n % p);
    *end = *begin + n / p + (r < n % p ? 1 : 0);
}

int cbq_dist_split(const cbq_dist *d, int color, cbq_dist *group, cbq_error *err)
{
    *group = *d;
    group->comm = NULL;
    if (d->size == 1)
        return CBQ_OK;
#ifdef CBQ_HAVE_MPI
    MPI_Comm *comm = malloc(sizeof *comm);
    if (!comm)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    MPI_Comm_split(comm_of(d), color, d->rank, comm);
    MPI_Comm_rank(*comm, &group->rank);
    MPI_Comm_size(*comm, &group->size);
    group->comm = comm;
    return CBQ_OK;
#else
    (void)color;
    return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "split: %d ranks without MPI", d->size);
#endif
}

void cbq_dist_group_free(cbq_dist *group)
{
#ifdef CBQ_HAVE_MPI
    if (group->comm)
        MPI_Comm_free((MPI_Comm *)group->comm);
#endif
    free(group->comm);
    group->comm = NULL;
}

int cbq_dist_barrier(const cbq_dist *d, cbq_error *err)
{
    (void)err;
#ifdef CBQ_HAVE_MPI
    if (d->size > 1)
        MPI_Barrier(comm_of(d));
#else
    (void)d;
#endif
    return CBQ_OK;
}

#ifdef CBQ_HAVE_MPI
/* MPI counts are int: messages go in pieces of at most this many bytes. */
enum { PIECE = 1 << 30 };

static void send_bytes(const char *buf, size_t len, int to, MPI_Comm comm)
{
    for (size_t off = 0; off < len; off += PIECE) {
        size_t n = len - off < PIECE ? len - off : PIECE;
        MPI_Send(buf + off, (int)n, MPI_BYTE, to, 0, comm);
    }
}

static void receive_bytes(char *buf, size_t len, int from, MPI_Comm comm)
{
    for (size_t off = 0; off < len; off += PIECE) {
        size_t n = len - off < PIECE ? len - off : PIECE;
        MPI_Recv(buf + off, (int)n, MPI_BYTE, from, 0, comm, MPI_STATUS_IGNORE);
    }
}
#endif

int cbq_dist_gather_bytes(const cbq_dist *d, const void *buf, size_t len, void **all,
                          size_t *all_len, cbq_error *err)
{
    *all = NULL;
    *all_len = 0;
    if (d->size == 1) {
        *all = malloc(len ? len : 1);
        if (!*all)
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "gather: out of memory for %zu bytes", len);
        if (len)
            memcpy(*all, buf, len);
        *all_len = len;
        return CBQ_OK;
    }
#ifdef CBQ_HAVE_MPI
    uint64_t mine = len, *lens = NULL;
    if (d->rank == 0 && !(lens = malloc((size_t)d->size * sizeof *lens)))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "gather: out of memory");
    MPI_Gather(&mine, 1, MPI_UINT64_T, lens, 1, MPI_UINT64_T, 0, comm_of(d));
    if (d->rank != 0) {
        send_bytes(buf, len, 0, comm_of(d));
        return CBQ_OK;
    }
    size_t total = 0;
    for (int r = 0; r < d->size; r++)
        total += (size_t)lens[r];
    char *out = malloc(total ? total : 1);
    if (!out) {
        /* The other ranks are sending: stop the job rather than leave them. */
        free(lens);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "gather: out of memory for %zu bytes", total);
    }
    if (len)
        memcpy(out, buf, len);
    size_t off = len;
    for (int r = 1; r < d->size; r++) {
        receive_bytes(out + off, (size_t)lens[r], r, comm_of(d));
        off += (size_t)lens[r];
    }
    free(lens);
    *all = out;
    *all_len = total;
    return CBQ_OK;
#else
    return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "gather: %d ranks without MPI", d->size);
#endif
}

int cbq_dist_broadcast_bytes(const cbq_dist *d, void *buf, size_t len, cbq_error *err)
{
    (void)err;
    (void)buf;
    (void)len;
    if (d->size == 1)
        return CBQ_OK;
#ifdef CBQ_HAVE_MPI
    for (size_t off = 0; off < len; off += PIECE) {
        size_t n = len - off < PIECE ? len - off : PIECE;
        MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, 0, comm_of(d));
    }
    return CBQ_OK;
#else
    return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "broadcast: %d ranks without MPI", d->size);
#endif
}

#ifdef CBQ_HAVE_MPI
/* A reduce-scatter then an allgather, both through MPI: rank r owns the
 * r-th block of x; it receives that block from every rank (MPI_Alltoallv)
 * and adds the copies in rank order (0, 1, ..., size-1), never in the order
 * messages arrive, so the sums do not depend on timing; then every rank
 * gets every block (MPI_Allgatherv). Each rank sends and receives about
 * 2 (size-1)/size of x, as a ring allreduce does. */
#define DIST_ALLREDUCE_BODY(T, MPI_T)                                                           \
    size_t p = (size_t)d->size;                                                                 \
    if (n > (size_t)INT_MAX)                                                                    \
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "allreduce: %zu values, at most %d", n, INT_MAX);   \
    int *counts = malloc(2 * p * sizeof *counts), *displs = counts ? counts + p : NULL;         \
    T *blocks = malloc((n / p + 1) * p * sizeof(T));                                            \
    int *own_counts = malloc(2 * p * sizeof *own_counts);                                       \
    int *own_displs = own_counts ? own_counts + p : NULL;                                       \
    if (!counts || !blocks || !own_counts) {                                                    \
        free(counts);                                                                           \
        free(blocks);                                                                           \
        free(own_counts);                                                                       \
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "allreduce: out of memory for %zu values", n);      \
    }                                                                                           \
    for (size_t r = 0; r < p; r++) {                                                            \
        size_t b0, b1;                                                                          \
        cbq_dist block_of = {.rank = (int)r, .size = d->size};                                  \
        cbq_dist_block(&block_of, n, &b0, &b1);                                                 \
        counts[r] = (int)(b1 - b0);                                                             \
        displs[r] = (int)b0;                                                                    \
    }                                                                                           \
    size_t own0, own1;                                                                          \
    cbq_dist_block(d, n, &own0, &own1);                                                         \
    size_t mine = own1 - own0;                                                                  \
    for (size_t r = 0; r < p; r++) {                                                            \
        own_counts[r] = (int)mine;                                                              \
        own_displs[r] = (int)(r * mine);                                                        \
    }                                                                                           \
    MPI_Alltoallv(x, counts, displs, MPI_T, blocks, own_counts, own_displs, MPI_T,              \
                  comm_of(d));                                                              \
    T *own = x + own0;                                                                          \
    for (size_t i = 0; i < mine; i++) {                                                         \
        T s = blocks[i];                                                                        \
        for (size_t r = 1; r < p; r++)                                                          \
            s += blocks[r * mine + i];                                                          \
        own[i] = s;                                                                             \
    }                                                                                           \
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_T, x, counts, displs, MPI_T, comm_of(d));           \
    free(counts);                                                                               \
    free(blocks);                                                                               \
    free(own_counts);                                                                           \
    return CBQ_OK;
#endif

int cbq_dist_allreduce_sum_double(const cbq_dist *d, double *x, size_t n, cbq_error *err)
{
    if (d->size == 1)
        return CBQ_OK;
#ifdef CBQ_HAVE_MPI
    DIST_ALLREDUCE_BODY(double, MPI_DOUBLE)
#else
    (void)x;
    (void)n;
    return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "allreduce: %d ranks without MPI", d->size);
#endif
}

int cbq_dist_allreduce_sum_float(const cbq_dist *d, float *x, size_t n, cbq_error *err)
{
    if (d->size == 1)
        return CBQ_OK;
#ifdef CBQ_HAVE_MPI
    DIST_ALLREDUCE_BODY(float, MPI_FLOAT)
#else
    (void)x;
    (void)n;
    return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "allreduce: %d ranks without MPI", d->size);
#endif
}

_Noreturn void cbq_dist_abort(const cbq_dist *d, int code, const char *message)
{
    if (d->size > 1)
        fprintf(stderr, "cbctiq (rank %d of %d): %s\n", d->rank, d->size, message);
    else
        fprintf(stderr, "cbctiq: %s\n", message);
    fflush(stderr);
#ifdef CBQ_HAVE_MPI
    if (d->mpi)
        MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}
