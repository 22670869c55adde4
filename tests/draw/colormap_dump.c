/* colormap_dump.c - prints cbctiq's colour-map tables for the matplotlib
 * oracle: one line per entry, "name index r g b r8 g8 b8". */
#include <stdio.h>

#include "cbctiq/colormap.h"

int main(void)
{
    const cbq_colormap_id ids[] = {CBQ_CMAP_VIRIDIS, CBQ_CMAP_INFERNO, CBQ_CMAP_GREY};
    for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++) {
        cbq_colormap cm;
        cbq_error err = {0};
        if (cbq_colormap_build(&cm, ids[k], &err) != CBQ_OK) {
            fprintf(stderr, "colormap_dump: %s\n", err.msg);
            return 1;
        }
        for (int i = 0; i < 256; i++)
            printf("%s %d %.9f %.9f %.9f %d %d %d\n", cbq_colormap_name(ids[k]), i, cm.rgb_f[i][0], cm.rgb_f[i][1],
                   cm.rgb_f[i][2], cm.rgb[i][0], cm.rgb[i][1], cm.rgb[i][2]);
    }
    return 0;
}
