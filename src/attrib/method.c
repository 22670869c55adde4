/* method.c - the attribution methods' table (built from
 * cbctiq/cam_methods.def: names, grids, sanity defaults), the names of the
 * options, and the options' defaults (the poster's reading of each open
 * choice). */
#include <stdio.h>
#include <string.h>

#include "cbctiq/attrib.h"

typedef struct {
    const char *name;
    int input_grid_only, sanity_default;
} method_info;

static const method_info methods[] = {
#define CBQ_CAM_METHOD(id, name, input_grid_only, sanity_default) \
    [CBQ_CAM_##id] = {name, input_grid_only, sanity_default},
#include "cbctiq/cam_methods.def"
#undef CBQ_CAM_METHOD
};
_Static_assert(sizeof methods / sizeof methods[0] == CBQ_CAM_METHOD_COUNT, "one row per method");

/* ", gradcam, hirescam, ...": cbq_cam_method_list skips the first ", ". */
static const char method_list[] =
#define CBQ_CAM_METHOD(id, name, input_grid_only, sanity_default) ", " name
#include "cbctiq/cam_methods.def"
#undef CBQ_CAM_METHOD
    ;

const char *cbq_cam_method_name(cbq_cam_method m)
{
    return (unsigned)m < CBQ_CAM_METHOD_COUNT ? methods[m].name : NULL;
}

int cbq_cam_method_parse(const char *name, cbq_cam_method *m)
{
    for (int i = 0; i < CBQ_CAM_METHOD_COUNT; i++) {
        if (strcmp(name, methods[i].name) == 0) {
            *m = (cbq_cam_method)i;
            return 1;
        }
    }
    return 0;
}

int cbq_cam_method_list_parse(const char *list, cbq_cam_method *out, size_t cap, size_t *n,
                              char *bad, size_t bad_cap, int *too_many)
{
    *n = 0;
    if (too_many)
        *too_many = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)len, p);
        p += len + (p[len] == ',');
        if (!name[0])
            continue;
        int full = *n == cap;
        if (full || !cbq_cam_method_parse(name, &out[*n])) {
            snprintf(bad, bad_cap, "%s", name);
            if (too_many)
                *too_many = full;
            return 0;
        }
        (*n)++;
    }
    return 1;
}

int cbq_cam_method_is_pixel(cbq_cam_method m)
{
    return (unsigned)m < CBQ_CAM_METHOD_COUNT && methods[m].input_grid_only;
}

int cbq_cam_method_sanity_default(cbq_cam_method m)
{
    return (unsigned)m < CBQ_CAM_METHOD_COUNT && methods[m].sanity_default;
}

const char *cbq_cam_method_list(void) { return method_list + 2; }

void cbq_attrib_options_default(cbq_attrib_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->method = CBQ_CAM_GRADCAM;
    opt->layer[0] = '\0';
    opt->relu = 1;
    opt->sign = 1;
    opt->grid = CBQ_GRID_INPUT;
    opt->aggregate = CBQ_AGG_SUM;
    opt->ig_steps = 32;
    opt->ig_rule = CBQ_IG_TRAPEZOID;
}

const char *cbq_grid_name(cbq_grid g) { return g == CBQ_GRID_FEATURE ? "feature" : "input"; }
const char *cbq_aggregate_name(cbq_aggregate a) { return a == CBQ_AGG_MEAN ? "mean" : "sum"; }
const char *cbq_ig_rule_name(cbq_ig_rule r) { return r == CBQ_IG_RIGHT ? "right" : "trapezoid"; }

int cbq_grid_parse(const char *s, cbq_grid *g)
{
    if (strcmp(s, "input") == 0) *g = CBQ_GRID_INPUT;
    else if (strcmp(s, "feature") == 0) *g = CBQ_GRID_FEATURE;
    else return 0;
    return 1;
}

int cbq_aggregate_parse(const char *s, cbq_aggregate *a)
{
    if (strcmp(s, "sum") == 0) *a = CBQ_AGG_SUM;
    else if (strcmp(s, "mean") == 0) *a = CBQ_AGG_MEAN;
    else return 0;
    return 1;
}

int cbq_ig_rule_parse(const char *s, cbq_ig_rule *r)
{
    if (strcmp(s, "trapezoid") == 0) *r = CBQ_IG_TRAPEZOID;
    else if (strcmp(s, "right") == 0) *r = CBQ_IG_RIGHT;
    else return 0;
    return 1;
}
