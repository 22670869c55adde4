/* rank.c - Spearman rank correlation of two maps, for the randomisation
 * sanity check (how similar a randomised model's maps stay). The statistics
 * subsystem has its own for the study; this one works on float maps of
 * millions of pixels without copying them into a table. */
#include <math.h>
#include <stdlib.h>

#include "cbctiq/attrib.h"

typedef struct {
    float v;
    size_t i;
} keyed;

size_t cbq_map_spearman_work_bytes(size_t n)
{
    return n * sizeof(keyed) + 2 * n * sizeof(double);
}

static int keyed_cmp(const void *pa, const void *pb)
{
    const keyed *a = pa, *b = pb;
    if (a->v < b->v) return -1;
    if (a->v > b->v) return 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* Average (1-based) ranks of x into r. */
static void average_ranks(const float *x, size_t n, keyed *tmp, double *r)
{
    for (size_t i = 0; i < n; i++) {
        tmp[i].v = x[i];
        tmp[i].i = i;
    }
    qsort(tmp, n, sizeof *tmp, keyed_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && tmp[j].v == tmp[i].v)
            j++;
        double rank = 0.5 * (double)(i + 1 + j); /* mean of i+1 .. j */
        for (size_t k = i; k < j; k++)
            r[tmp[k].i] = rank;
        i = j;
    }
}

double cbq_map_spearman(const float *a, const float *b, size_t n, void *work)
{
    if (n < 2)
        return NAN;
    keyed *tmp = work;
    double *ra = (double *)(tmp + n), *rb = ra + n;
    average_ranks(a, n, tmp, ra);
    average_ranks(b, n, tmp, rb);
    double mean = 0.5 * (double)(n + 1), sab = 0.0, saa = 0.0, sbb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double da = ra[i] - mean, db = rb[i] - mean;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if (saa == 0.0 || sbb == 0.0)
        return NAN;
    return sab / sqrt(saa * sbb);
}
