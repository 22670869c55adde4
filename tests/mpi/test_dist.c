/* test_dist.c - dist.h's collectives, run as one process and under
 * `mpirun -np 3`. Each rank can compute every rank's inputs, so the expected
 * results are computed here independently, in plain loops: the blocks must
 * tile [0, n) in rank order, gather must concatenate in rank order, and the
 * allreduce must equal the sum taken in rank order bit for bit (the inputs
 * are chosen so that another order gives other bits, which is checked too). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/dist.h"

static int failures;

#define EXPECT(cond, ...)                                 \
    do {                                                  \
        if (!(cond)) {                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                 \
            fprintf(stderr, "\n");                        \
            failures++;                                   \
        }                                                 \
    } while (0)

/* Rank r's value i: a large value on rank 0 (float spacing 8 there) and
 * values under half that spacing after it: added to it one by one they
 * vanish, added to each other first they do not, so the order of the
 * additions shows in the bits. */
static float value_f(int rank, size_t i)
{
    return rank == 0 ? 1.0e8f + 8.0f * (float)(i % 7) : 2.5f + 0.25f * (float)rank + 0.001f * (float)(i % 13);
}

static double value_d(int rank, size_t i)
{
    return rank == 0 ? 1.0e17 + (double)(i % 5) : 3.25 + (double)rank * 0.5 + 0.01 * (double)(i % 11);
}

static void check_blocks(const cbq_dist *d)
{
    static const size_t sizes[] = {0, 1, 2, 5, 1003};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t expect_begin = 0;
        for (int r = 0; r < d->size; r++) {
            cbq_dist other = {.rank = r, .size = d->size};
            size_t b, e;
            cbq_dist_block(&other, sizes[s], &b, &e);
            EXPECT(b == expect_begin && e >= b && e - b <= sizes[s] / (size_t)d->size + 1,
                   "block of rank %d of %zu: [%zu, %zu)", r, sizes[s], b, e);
            expect_begin = e;
        }
        EXPECT(expect_begin == sizes[s], "blocks of %zu end at %zu", sizes[s], expect_begin);
    }
}

static void check_allreduce(const cbq_dist *d)
{
    enum { N = 1003 };
    float *xf = malloc(N * sizeof *xf);
    double *xd = malloc(N * sizeof *xd);
    if (!xf || !xd) {
        EXPECT(0, "out of memory");
        free(xf);
        free(xd);
        return;
    }
    for (size_t i = 0; i < N; i++) {
        xf[i] = value_f(d->rank, i);
        xd[i] = value_d(d->rank, i);
    }
    cbq_error err = {0};
    EXPECT(cbq_dist_allreduce_sum_float(d, xf, N, &err) == CBQ_OK, "allreduce float: %s", err.msg);
    EXPECT(cbq_dist_allreduce_sum_double(d, xd, N, &err) == CBQ_OK, "allreduce double: %s", err.msg);
    size_t order_matters = 0;
    for (size_t i = 0; i < N; i++) {
        float sf = value_f(0, i), rf = value_f(d->size - 1, i);
        double sd = value_d(0, i);
        for (int r = 1; r < d->size; r++) {
            sf += value_f(r, i);
            sd += value_d(r, i);
        }
        for (int r = d->size - 2; r >= 0; r--)
            rf += value_f(r, i);
        order_matters += rf != sf;
        EXPECT(memcmp(&xf[i], &sf, sizeof sf) == 0, "float sum %zu: %.9g, expected %.9g", i, xf[i], sf);
        EXPECT(memcmp(&xd[i], &sd, sizeof sd) == 0, "double sum %zu: %.17g, expected %.17g", i, xd[i], sd);
    }
    if (d->size > 2)
        EXPECT(order_matters > 0, "the inputs do not tell the summation orders apart");
    free(xf);
    free(xd);
}

static void check_gather(const cbq_dist *d)
{
    unsigned char mine[64];
    size_t len = (size_t)d->rank + 1;
    memset(mine, 'a' + d->rank, len);
    void *all = NULL;
    size_t all_len = 0;
    cbq_error err = {0};
    EXPECT(cbq_dist_gather_bytes(d, mine, len, &all, &all_len, &err) == CBQ_OK, "gather: %s", err.msg);
    if (d->rank != 0) {
        EXPECT(all == NULL && all_len == 0, "gather: rank %d received bytes", d->rank);
        return;
    }
    size_t expect_len = (size_t)d->size * ((size_t)d->size + 1) / 2, at = 0;
    EXPECT(all_len == expect_len, "gather: %zu bytes, expected %zu", all_len, expect_len);
    for (int r = 0; r < d->size && all_len == expect_len; r++)
        for (int k = 0; k <= r; k++, at++)
            EXPECT(((unsigned char *)all)[at] == 'a' + r, "gather: byte %zu is not rank %d's", at, r);
    free(all);
}

/* Groups by parity of the rank: each group numbers its ranks in the job's
 * order, and its sums and gathers involve its own ranks only. */
static void check_split(const cbq_dist *d)
{
    cbq_dist g;
    cbq_error err = {0};
    if (cbq_dist_split(d, d->rank % 2, &g, &err) != CBQ_OK) {
        EXPECT(0, "split: %s", err.msg);
        return;
    }
    int expect_size = d->size / 2 + (d->rank % 2 == 0 ? d->size % 2 : 0);
    EXPECT(g.size == expect_size && g.rank == d->rank / 2, "split: rank %d of %d, expected %d of %d",
           g.rank, g.size, d->rank / 2, expect_size);
    double x = (double)(d->rank + 1), expect = 0;
    for (int r = d->rank % 2; r < d->size; r += 2)
        expect += (double)(r + 1);
    EXPECT(cbq_dist_allreduce_sum_double(&g, &x, 1, &err) == CBQ_OK && x == expect,
           "group sum %g, expected %g", x, expect);
    unsigned char mine = (unsigned char)d->rank;
    void *all = NULL;
    size_t all_len = 0;
    EXPECT(cbq_dist_gather_bytes(&g, &mine, 1, &all, &all_len, &err) == CBQ_OK, "group gather: %s", err.msg);
    for (size_t i = 0; g.rank == 0 && i < all_len; i++)
        EXPECT(((unsigned char *)all)[i] == d->rank % 2 + 2 * i, "group gather: byte %zu", i);
    EXPECT(g.rank != 0 || all_len == (size_t)g.size, "group gather: %zu bytes", all_len);
    free(all);
    cbq_dist_group_free(&g);
}

int main(int argc, char **argv)
{
    int expect_size = argc > 1 ? atoi(argv[1]) : 1;
    cbq_dist d;
    cbq_dist_init(&d, &argc, &argv);
    EXPECT(d.size == expect_size, "%d ranks, expected %d", d.size, expect_size);
    EXPECT(d.size == 1 || cbq_dist_compiled(), "several ranks without MPI compiled in");
    check_blocks(&d);
    check_allreduce(&d);
    check_gather(&d);
    check_split(&d);
    cbq_error err = {0};
    EXPECT(cbq_dist_barrier(&d, &err) == CBQ_OK, "barrier: %s", err.msg);
    if (failures)
        cbq_dist_abort(&d, 1, "test_dist failed");
    if (d.rank == 0)
        printf("test_dist: %d rank(s), blocks, allreduce, gather and groups as expected\n", d.size);
    cbq_dist_finalize(&d);
    return 0;
}
