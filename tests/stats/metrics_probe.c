/* metrics_probe.c - exposes the prediction metrics (likert_metrics.h) and
 * the robust fit (robust_fit.h) to the Python oracle (metrics_oracle.py):
 * reads one request on stdin, prints the result.
 *
 *   kappa K  then K*K counts            -> kappa
 *   metrics N then N pred, N truth      -> n mae rmse rho p kappa, then 25 counts
 *   isotonic N INC then N x, N y        -> N fitted values
 *   robustz N then N values             -> scale, then N z
 *   round X                             -> Likert level
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/likert_metrics.h"
#include "cbctiq/robust_fit.h"

static double *read_doubles(size_t n)
{
    double *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        if (scanf("%lf", &v[i]) != 1) {
            free(v);
            return NULL;
        }
    return v;
}

static void put(double v) { printf("%.17g\n", v); }

static int run(const char *what)
{
    cbq_error err = {0};
    size_t n = 0;
    if (strcmp(what, "round") == 0) {
        double x;
        if (scanf("%lf", &x) != 1)
            return 1;
        printf("%d\n", cbq_likert_round(x));
        return 0;
    }
    if (scanf("%zu", &n) != 1)
        return 1;
    if (strcmp(what, "kappa") == 0) {
        size_t *c = malloc(n * n * sizeof *c);
        for (size_t i = 0; i < n * n; i++)
            if (scanf("%zu", &c[i]) != 1)
                return 1;
        put(cbq_quadratic_kappa(c, n));
        free(c);
        return 0;
    }
    if (strcmp(what, "isotonic") == 0) {
        int inc;
        if (scanf("%d", &inc) != 1)
            return 1;
        double *x = read_doubles(n), *y = read_doubles(n), *fit = malloc(n * sizeof *fit);
        if (!x || !y || cbq_isotonic_fit(x, y, n, inc, fit, &err) != CBQ_OK)
            return 1;
        for (size_t i = 0; i < n; i++)
            put(fit[i]);
        free(x); free(y); free(fit);
        return 0;
    }
    if (strcmp(what, "robustz") == 0) {
        double *r = read_doubles(n), *z = malloc(n * sizeof *z), scale;
        if (!r || cbq_robust_z(r, n, z, &scale, &err) != CBQ_OK)
            return 1;
        put(scale);
        for (size_t i = 0; i < n; i++)
            put(z[i]);
        free(r); free(z);
        return 0;
    }
    double *x = read_doubles(n), *y = read_doubles(n);
    if (!x || !y)
        return 1;
    if (strcmp(what, "metrics") == 0) {
        cbq_eval_metrics m;
        if (cbq_eval_metrics_compute(x, y, n, &m, &err) != CBQ_OK)
            return 1;
        printf("%zu\n", m.n);
        put(m.mae); put(m.rmse); put(m.rho); put(m.p); put(m.kappa);
        for (int t = 0; t < CBQ_LIKERT_LEVELS; t++)
            for (int q = 0; q < CBQ_LIKERT_LEVELS; q++)
                printf("%zu\n", m.confusion[t][q]);
    } else {
        return 2;
    }
    free(x); free(y);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: metrics_probe WHAT < request\n");
        return 2;
    }
    int rc = run(argv[1]);
    if (rc)
        fprintf(stderr, "metrics_probe %s: bad request\n", argv[1]);
    return rc;
}
