/* robust_fit.c - the monotone (isotonic) least-squares fit of y on x by
 * pool-adjacent-violators, and robust z-scores of residuals (median / MAD).
 * The study's atypical stage fits AE on consensus with them; it reads and
 * writes the tables. */
#include "cbctiq/robust_fit.h"
#include "stats_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct { double x, y; size_t idx; } point;

static int cmp_point(const void *a, const void *b)
{
    const point *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

/* Pool adjacent violators on blocks (value, weight) made non-decreasing. */
static size_t pava(double *val, double *w, size_t *len, size_t nb)
{
    size_t top = 0; /* blocks [0, top) are the merged stack */
    for (size_t i = 0; i < nb; i++) {
        val[top] = val[i];
        w[top] = w[i];
        len[top] = len[i];
        top++;
        while (top > 1 && val[top - 2] > val[top - 1]) {
            double ww = w[top - 2] + w[top - 1];
            val[top - 2] = (val[top - 2] * w[top - 2] + val[top - 1] * w[top - 1]) / ww;
            w[top - 2] = ww;
            len[top - 2] += len[top - 1];
            top--;
        }
    }
    return top;
}

int cbq_isotonic_fit(const double *x, const double *y, size_t n, int increasing, double *fit,
                     cbq_error *err)
{
    CBQ_CHECK_ARG(err, n >= 1, "isotonic fit needs at least one point");
    point *pts = malloc(n * sizeof *pts);
    double *val = malloc(n * sizeof *val), *w = malloc(n * sizeof *w);
    size_t *len = malloc(n * sizeof *len);
    if (!pts || !val || !w || !len) {
        free(pts); free(val); free(w); free(len);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "isotonic fit: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        /* A decreasing fit of y is an increasing fit of -y. */
        pts[i] = (point){x[i], increasing ? y[i] : -y[i], i};
    }
    qsort(pts, n, sizeof *pts, cmp_point);
    /* Tied x form one starting block (their mean), so they share a value. */
    size_t nb = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        double s = 0;
        while (j < n && pts[j].x == pts[i].x)
            s += pts[j++].y;
        val[nb] = s / (double)(j - i);
        w[nb] = (double)(j - i);
        len[nb] = j - i;
        nb++;
        i = j;
    }
    nb = pava(val, w, len, nb);
    size_t k = 0;
    for (size_t b = 0; b < nb; b++)
        for (size_t t = 0; t < len[b]; t++, k++)
            fit[pts[k].idx] = increasing ? val[b] : -val[b];
    free(pts); free(val); free(w); free(len);
    return CBQ_OK;
}

int cbq_robust_z(const double *r, size_t n, double *z, double *scale, cbq_error *err)
{
    CBQ_CHECK_ARG(err, n >= 1, "robust z-scores need at least one value");
    double *dev = malloc(2 * n * sizeof *dev), *scratch = dev + n;
    if (!dev)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "robust z-scores: out of memory");
    double med = stats_median(r, n, scratch);
    double mean_abs = 0;
    for (size_t i = 0; i < n; i++) {
        dev[i] = fabs(r[i] - med);
        mean_abs += dev[i];
    }
    mean_abs /= (double)n;
    double mad = stats_median(dev, n, scratch);
    free(dev);
    /* 1.4826 = 1/Phi^-1(3/4) makes MAD consistent with the SD of a normal;
     * 1.2533 = sqrt(pi/2) does the same for the mean absolute deviation. */
    double s = mad > 0 ? 1.4826 * mad : 1.2533 * mean_abs;
    *scale = s;
    for (size_t i = 0; i < n; i++)
        z[i] = s > 0 ? (r[i] - med) / s : 0.0;
    return CBQ_OK;
}
