/* wilcoxon_probe.c - exposes cbq_wilcoxon_signed_rank to wilcoxon_oracle.py:
 * reads "ALT N" (ALT: two-sided, less, greater) then N x and N y on stdin,
 * prints n_used, w_plus, w_minus, statistic, z, p and the p method. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/wilcoxon.h"

int main(void)
{
    char alt_name[16];
    size_t n;
    if (scanf("%15s %zu", alt_name, &n) != 2)
        return 2;
    cbq_alternative alt = strcmp(alt_name, "less") == 0      ? CBQ_ALT_LESS
                          : strcmp(alt_name, "greater") == 0 ? CBQ_ALT_GREATER
                                                             : CBQ_ALT_TWO_SIDED;
    double *v = malloc((2 * n + 1) * sizeof *v);
    for (size_t i = 0; v && i < 2 * n; i++)
        if (scanf("%lf", &v[i]) != 1)
            return 2;
    cbq_wilcoxon w;
    cbq_error err = {0};
    if (!v || cbq_wilcoxon_signed_rank(v, v + n, n, alt, &w, &err) != CBQ_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    printf("%zu %.17g %.17g %.17g %.17g %.17g %s\n", w.n_used, w.w_plus, w.w_minus, w.statistic,
           w.z, w.p, w.reason ? "undefined" : w.p_method);
    free(v);
    return 0;
}
