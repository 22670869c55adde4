/* table_join.c - reads a numeric column from each of two (or more) CSV
 * tables and pairs the values by volume_id and category, keeping track of
 * volumes found in one table only. The statistics on the pairs live in
 * src/stats (correlate.c). */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/table_join.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cbctiq/csv.h"

typedef struct {
    char *key;          /* volume_id, or volume_id \x1f category */
    const char *vol, *cat;
    double v;
    size_t row;         /* data row in the CSV, for messages */
} entry;

typedef struct {
    cbq_csv csv;
    int has_cat;
    entry *e;           /* sorted by key */
    entry *in_order;    /* file order (same entries, not owning keys) */
    size_t n;
} keyed_table;

int cbq_column_ref_parse(cbq_column_ref *ref, const char *spec, cbq_error *err)
{
    ref->spec = spec;
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || !colon[1])
        return CBQ_FAIL(err, CBQ_ERR_ARG, "'%s': expected FILE:COLUMN", spec);
    size_t len = (size_t)(colon - spec);
    if (len >= sizeof ref->path || strlen(colon + 1) >= sizeof ref->column)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "'%s': name too long", spec);
    memcpy(ref->path, spec, len);
    ref->path[len] = '\0';
    strcpy(ref->column, colon + 1);
    return CBQ_OK;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->key, ((const entry *)b)->key);
}

static int parse_value(const cbq_csv *t, size_t row, size_t col, double *v, cbq_error *err)
{
    const char *s = cbq_csv_cell(t, row, col);
    while (isspace((unsigned char)*s))
        s++;
    if (!*s || strcasecmp(s, "nan") == 0 || strcasecmp(s, "na") == 0) {
        *v = NAN;
        return CBQ_OK;
    }
    return cbq_csv_get_double(t, row, col, v, err);
}

static char *make_key(const char *vol, const char *cat)
{
    size_t lv = strlen(vol), lc = cat ? strlen(cat) : 0;
    char *k = malloc(lv + lc + 2);
    if (!k)
        return NULL;
    memcpy(k, vol, lv);
    k[lv] = '\0';
    if (cat) {
        k[lv] = '\x1f';
        memcpy(k + lv + 1, cat, lc + 1);
    }
    return k;
}

static void table_free(keyed_table *t)
{
    for (size_t i = 0; t->e && i < t->n; i++)
        free(t->e[i].key);
    free(t->e);
    free(t->in_order);
    cbq_csv_free(&t->csv);
    memset(t, 0, sizeof *t);
}

static int matches_where(const cbq_csv *t, size_t row, const char *where)
{
    if (!where)
        return 1;
    const char *eq = strchr(where, '=');
    size_t len = (size_t)(eq - where);
    for (size_t c = 0; c < t->n_cols; c++)
        if (strlen(t->header[c]) == len && strncmp(t->header[c], where, len) == 0)
            return strcmp(cbq_csv_cell(t, row, c), eq + 1) == 0;
    return 1; /* the table has no such column */
}

/* One entry per row that passes `where`, in file order and sorted by key. */
static int table_entries(keyed_table *t, const cbq_column_ref *ref, size_t c_vol, size_t c_val,
                         long c_cat, const char *where, cbq_error *err)
{
    t->e = calloc(t->csv.n_rows + 1, sizeof *t->e);
    t->in_order = malloc((t->csv.n_rows + 1) * sizeof *t->in_order);
    if (!t->e || !t->in_order)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", ref->path);
    for (size_t row = 0; row < t->csv.n_rows; row++) {
        if (!matches_where(&t->csv, row, where))
            continue;
        entry *e = &t->e[t->n];
        e->vol = cbq_csv_cell(&t->csv, row, c_vol);
        e->cat = t->has_cat ? cbq_csv_cell(&t->csv, row, (size_t)c_cat) : NULL;
        if (!e->vol[0])
            return cbq_csv_fail(&t->csv, row, c_vol, err, CBQ_ERR_FORMAT, "empty volume_id");
        CBQ_TRY(parse_value(&t->csv, row, c_val, &e->v, err));
        if (!(e->key = make_key(e->vol, e->cat)))
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", ref->path);
        e->row = row;
        t->in_order[t->n++] = *e;
    }
    qsort(t->e, t->n, sizeof *t->e, cmp_entry);
    return CBQ_OK;
}

/* A key twice is an error naming the second row and the line of the first. */
static int check_unique(const keyed_table *t, size_t c_vol, const char *where, cbq_error *err)
{
    for (size_t i = 1; i < t->n; i++)
        if (strcmp(t->e[i].key, t->e[i - 1].key) == 0) {
            size_t a = t->e[i - 1].row, b = t->e[i].row;
            size_t first = a < b ? a : b, second = a < b ? b : a;
            return cbq_csv_fail(&t->csv, second, c_vol, err, CBQ_ERR_FORMAT,
                                "duplicate row for volume '%s'%s%s (first on line %zu)%s",
                                t->e[i].vol, t->e[i].cat ? " in category " : "",
                                t->e[i].cat ? t->e[i].cat : "", t->csv.line[first],
                                where ? "" : "; select rows with --where COLUMN=VALUE");
        }
    return CBQ_OK;
}

static int table_index(keyed_table *t, const cbq_column_ref *ref, int by_category,
                       const char *where, cbq_error *err)
{
    size_t c_vol, c_val;
    long c_cat = by_category ? cbq_csv_col(&t->csv, "category") : -1;
    t->has_cat = c_cat >= 0;
    CBQ_TRY(cbq_csv_require_col(&t->csv, "volume_id", &c_vol, err));
    CBQ_TRY(cbq_csv_require_col(&t->csv, ref->column, &c_val, err));
    CBQ_TRY(table_entries(t, ref, c_vol, c_val, c_cat, where, err));
    return check_unique(t, c_vol, where, err);
}

static int table_load(keyed_table *t, const cbq_column_ref *ref, int by_category, const char *where,
                      cbq_error *err)
{
    memset(t, 0, sizeof *t);
    CBQ_TRY(cbq_csv_read(&t->csv, ref->path, err));
    int rc = table_index(t, ref, by_category, where, err);
    if (rc != CBQ_OK)
        table_free(t);
    return rc;
}

static const entry *table_find(const keyed_table *t, const char *vol, const char *cat)
{
    char *k = make_key(vol, t->has_cat ? cat : NULL);
    if (!k)
        return NULL;
    entry probe = {.key = k};
    const entry *e = bsearch(&probe, t->e, t->n, sizeof *t->e, cmp_entry);
    free(k);
    return e;
}

void cbq_joined_free(cbq_joined *j)
{
    for (size_t g = 0; j->groups && g < j->n_groups; g++) {
        cbq_corr_group *gr = &j->groups[g];
        free(gr->category);
        for (size_t i = 0; i < gr->n; i++)
            free(gr->volumes[i]);
        for (size_t i = 0; i < gr->n_only_x; i++)
            free(gr->only_x[i]);
        for (size_t i = 0; i < gr->n_only_y; i++)
            free(gr->only_y[i]);
        free(gr->volumes);
        free(gr->only_x);
        free(gr->only_y);
        free(gr->x);
        free(gr->y);
        for (size_t q = 0; gr->z && q < gr->k; q++)
            free(gr->z[q]);
        free(gr->z);
    }
    free(j->groups);
    j->groups = NULL;
    j->n_groups = 0;
}

/* Distinct categories in file order of the first table that has them. */
static int list_categories(const keyed_table *t, char ***cats, size_t *n_cats)
{
    *cats = malloc((t->n + 1) * sizeof **cats);
    if (!*cats)
        return 0;
    *n_cats = 0;
    for (size_t i = 0; i < t->n; i++) {
        const char *c = t->in_order[i].cat;
        size_t q = 0;
        while (q < *n_cats && strcmp((*cats)[q], c) != 0)
            q++;
        if (q == *n_cats)
            (*cats)[(*n_cats)++] = (char *)c;
    }
    return 1;
}

static int build_group(cbq_corr_group *g, const char *cat, const keyed_table *tx,
                       const keyed_table *ty, const keyed_table *tz, size_t k)
{
    size_t cap = tx->n + ty->n + 1;
    g->category = strdup(cat ? cat : "all");
    g->volumes = malloc(cap * sizeof *g->volumes);
    g->only_x = malloc(cap * sizeof *g->only_x);
    g->only_y = malloc(cap * sizeof *g->only_y);
    g->x = malloc(cap * sizeof *g->x);
    g->y = malloc(cap * sizeof *g->y);
    g->k = k;
    g->z = calloc(k + 1, sizeof *g->z);
    if (!g->category || !g->volumes || !g->only_x || !g->only_y || !g->x || !g->y || !g->z)
        return 0;
    for (size_t q = 0; q < k; q++)
        if (!(g->z[q] = malloc(cap * sizeof **g->z)))
            return 0;
    for (size_t i = 0; i < ty->n; i++) {
        const entry *ey = &ty->in_order[i];
        if (ty->has_cat && cat && strcmp(ey->cat, cat) != 0)
            continue;
        const entry *ex = table_find(tx, ey->vol, cat);
        if (!ex) {
            if (!(g->only_y[g->n_only_y++] = strdup(ey->vol)))
                return 0;
            continue;
        }
        for (size_t q = 0; q < k; q++) {
            const entry *ez = table_find(&tz[q], ey->vol, cat);
            g->z[q][g->n] = ez ? ez->v : NAN;
        }
        g->x[g->n] = ex->v;
        g->y[g->n] = ey->v;
        if (!(g->volumes[g->n++] = strdup(ey->vol)))
            return 0;
    }
    for (size_t i = 0; i < tx->n; i++) {
        const entry *ex = &tx->in_order[i];
        if (tx->has_cat && cat && strcmp(ex->cat, cat) != 0)
            continue;
        if (!table_find(ty, ex->vol, cat))
            if (!(g->only_x[g->n_only_x++] = strdup(ex->vol)))
                return 0;
    }
    return 1;
}

/* x, y and the k covariate tables; a failed load leaves its table empty. */
static int load_tables(keyed_table *tx, keyed_table *ty, keyed_table *tz, const cbq_column_ref *x,
                       const cbq_column_ref *y, const cbq_column_ref *z, size_t k, int by_category,
                       const char *where, cbq_error *err)
{
    CBQ_TRY(table_load(tx, x, by_category, where, err));
    CBQ_TRY(table_load(ty, y, by_category, where, err));
    for (size_t q = 0; q < k; q++)
        CBQ_TRY(table_load(&tz[q], &z[q], by_category, where, err));
    return CBQ_OK;
}

/* One group per category (y's order, else x's), or one group "all". */
static int build_groups(cbq_joined *out, const keyed_table *tx, const keyed_table *ty,
                        const keyed_table *tz, size_t k, int by_category, cbq_error *err)
{
    char **cats = NULL;
    size_t n_cats = 1;
    if (by_category && (ty->has_cat || tx->has_cat) &&
        !list_categories(ty->has_cat ? ty : tx, &cats, &n_cats))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "join: out of memory");
    out->groups = calloc(n_cats + 1, sizeof *out->groups);
    out->n_groups = n_cats;
    int ok = out->groups != NULL;
    for (size_t g = 0; ok && g < n_cats; g++)
        ok = build_group(&out->groups[g], cats ? cats[g] : NULL, tx, ty, tz, k);
    free(cats);
    return ok ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "join: out of memory");
}

int cbq_join_columns(const cbq_column_ref *x, const cbq_column_ref *y, const cbq_column_ref *z,
                     size_t k, int by_category, const char *where, cbq_joined *out,
                     cbq_error *err)
{
    memset(out, 0, sizeof *out);
    CBQ_CHECK_ARG(err, !where || strchr(where, '='), "--where '%s': expected COLUMN=VALUE", where);
    keyed_table tx = {0}, ty = {0}, *tz = calloc(k + 1, sizeof *tz);
    if (!tz)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "join: out of memory");
    int rc = load_tables(&tx, &ty, tz, x, y, z, k, by_category, where, err);
    if (rc == CBQ_OK)
        rc = build_groups(out, &tx, &ty, tz, k, by_category, err);
    for (size_t q = 0; q < k; q++)
        table_free(&tz[q]);
    free(tz);
    table_free(&ty);
    table_free(&tx);
    if (rc != CBQ_OK)
        cbq_joined_free(out);
    return rc;
}
