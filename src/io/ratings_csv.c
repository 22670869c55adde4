/* ratings_csv.c - the ratings tables on disk: reads ratings.csv (long
 * format) and raters.csv into a dense [category][volume][rater] score array,
 * validating every row, and writes consensus.csv. The statistics on the
 * array live in src/stats. */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/ratings_csv.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/csv.h"

/* Names in order of first appearance, with an open-addressing hash index. */
typedef struct {
    char **names;
    size_t n, cap;
    size_t *slots; /* index + 1, 0 = empty */
    size_t n_slots;
} name_set;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static long name_find(const name_set *ns, const char *s)
{
    if (!ns->n_slots)
        return -1;
    for (size_t i = hash_str(s) & (ns->n_slots - 1);; i = (i + 1) & (ns->n_slots - 1)) {
        if (!ns->slots[i])
            return -1;
        if (strcmp(ns->names[ns->slots[i] - 1], s) == 0)
            return (long)(ns->slots[i] - 1);
    }
}

static int name_grow(name_set *ns)
{
    size_t n_slots = ns->n_slots ? 2 * ns->n_slots : 64;
    size_t *slots = calloc(n_slots, sizeof *slots);
    char **names = realloc(ns->names, n_slots * sizeof *names);
    if (!slots || !names) {
        free(slots);
        if (names)
            ns->names = names;
        return 0;
    }
    ns->names = names;
    ns->cap = n_slots;
    for (size_t k = 0; k < ns->n; k++) {
        size_t i = hash_str(ns->names[k]) & (n_slots - 1);
        while (slots[i])
            i = (i + 1) & (n_slots - 1);
        slots[i] = k + 1;
    }
    free(ns->slots);
    ns->slots = slots;
    ns->n_slots = n_slots;
    return 1;
}

/* Index of s, adding it when new; -1 when out of memory. */
static long name_add(name_set *ns, const char *s)
{
    long k = name_find(ns, s);
    if (k >= 0)
        return k;
    if (2 * (ns->n + 1) > ns->n_slots && !name_grow(ns))
        return -1;
    char *copy = strdup(s);
    if (!copy)
        return -1;
    ns->names[ns->n] = copy;
    size_t i = hash_str(s) & (ns->n_slots - 1);
    while (ns->slots[i])
        i = (i + 1) & (ns->n_slots - 1);
    ns->slots[i] = ++ns->n;
    return (long)(ns->n - 1);
}

static void name_free_index(name_set *ns)
{
    free(ns->slots);
    ns->slots = NULL;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

void cbq_ratings_free(cbq_ratings *r)
{
    free_names(r->volumes, r->n_volumes);
    free_names(r->raters, r->n_raters);
    free_names(r->categories, r->n_categories);
    free(r->weight);
    free(r->score);
    memset(r, 0, sizeof *r);
}

typedef struct {
    size_t vol, rater, cat;
    double score;
} rating_row;

/* r->weight[k] from raters.csv; seen_line[k]: the line that gave it. */
static int weights_from_table(cbq_ratings *r, const cbq_csv *w, const name_set *raters,
                              size_t *seen_line, cbq_error *err)
{
    size_t c_rater, c_weight;
    CBQ_TRY(cbq_csv_require_col(w, "rater", &c_rater, err));
    CBQ_TRY(cbq_csv_require_col(w, "weight", &c_weight, err));
    CBQ_TRY(cbq_csv_require_names(w, c_rater, "rater", err));
    for (size_t row = 0; row < w->n_rows; row++) {
        double v;
        CBQ_TRY(cbq_csv_get_double(w, row, c_weight, &v, err));
        if (!(v > 0))
            return cbq_csv_fail(w, row, c_weight, err, CBQ_ERR_RANGE, "weight %s must be > 0",
                                cbq_csv_cell(w, row, c_weight));
        long k = name_find(raters, cbq_csv_cell(w, row, c_rater));
        if (k < 0)
            continue; /* a rater with no ratings: harmless */
        if (seen_line[k])
            return cbq_csv_fail(w, row, c_rater, err, CBQ_ERR_FORMAT,
                                "rater '%s' appears twice (first on line %zu)", raters->names[k],
                                seen_line[k]);
        seen_line[k] = w->line[row];
        r->weight[k] = v;
    }
    return CBQ_OK;
}

/* A rater of ratings.csv without a weight is reported at its first line there. */
static int check_all_weighted(const cbq_csv *rt, const name_set *raters, const size_t *first_row,
                              const size_t *seen_line, const char *path, cbq_error *err)
{
    long c_rater = cbq_csv_col(rt, "rater");
    for (size_t k = 0; k < raters->n; k++)
        if (!seen_line[k])
            return cbq_csv_fail(rt, first_row[k], c_rater >= 0 ? (size_t)c_rater : 0, err,
                                CBQ_ERR_FORMAT, "rater '%s' has no weight in %s", raters->names[k],
                                path);
    return CBQ_OK;
}

static int read_weights(cbq_ratings *r, const char *path, const name_set *raters,
                        const size_t *first_row, const cbq_csv *rt, cbq_error *err)
{
    cbq_csv w;
    CBQ_TRY(cbq_csv_read(&w, path, err));
    size_t *seen_line = calloc(raters->n + 1, sizeof *seen_line);
    r->weight = malloc((raters->n + 1) * sizeof *r->weight);
    int rc = seen_line && r->weight ? weights_from_table(r, &w, raters, seen_line, err)
                                    : CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", path);
    if (rc == CBQ_OK)
        rc = check_all_weighted(rt, raters, first_row, seen_line, path, err);
    free(seen_line);
    cbq_csv_free(&w);
    return rc;
}

static int parse_rows(const cbq_csv *t, name_set *vols, name_set *raters, name_set *cats,
                      rating_row *rows, size_t *first_row, cbq_error *err)
{
    size_t c_vol, c_rater, c_cat, c_score;
    CBQ_TRY(cbq_csv_require_col(t, "volume_id", &c_vol, err));
    CBQ_TRY(cbq_csv_require_col(t, "rater", &c_rater, err));
    CBQ_TRY(cbq_csv_require_col(t, "category", &c_cat, err));
    CBQ_TRY(cbq_csv_require_col(t, "score", &c_score, err));
    const size_t name_cols[3] = {c_vol, c_rater, c_cat};
    static const char *const name_what[3] = {"volume id", "rater", "category"};
    for (size_t row = 0; row < t->n_rows; row++)
        for (int j = 0; j < 3; j++)
            if (!cbq_csv_cell(t, row, name_cols[j])[0])
                return cbq_csv_fail(t, row, name_cols[j], err, CBQ_ERR_FORMAT, "empty field");
    for (int j = 0; j < 3; j++)
        CBQ_TRY(cbq_csv_require_names(t, name_cols[j], name_what[j], err));
    for (size_t row = 0; row < t->n_rows; row++) {
        double s;
        CBQ_TRY(cbq_csv_get_double(t, row, c_score, &s, err));
        if (s < CBQ_SCORE_MIN || s > CBQ_SCORE_MAX)
            return cbq_csv_fail(t, row, c_score, err, CBQ_ERR_RANGE, "score %s outside [%g, %g]",
                                cbq_csv_cell(t, row, c_score), CBQ_SCORE_MIN, CBQ_SCORE_MAX);
        long v = name_add(vols, cbq_csv_cell(t, row, c_vol));
        size_t before = raters->n;
        long k = name_add(raters, cbq_csv_cell(t, row, c_rater));
        long c = name_add(cats, cbq_csv_cell(t, row, c_cat));
        if (v < 0 || k < 0 || c < 0)
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", t->name);
        if (raters->n > before)
            first_row[k] = row;
        rows[row] = (rating_row){(size_t)v, (size_t)k, (size_t)c, s};
    }
    return CBQ_OK;
}

/* Fills the dense array; a second rating of the same cell is an error. */
static int fill_scores(cbq_ratings *r, const cbq_csv *t, const rating_row *rows, cbq_error *err)
{
    size_t cells;
    if (!cbq_size_mul(&cells, r->n_categories, r->n_volumes) || !cbq_size_mul(&cells, cells, r->n_raters))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: too many ratings", t->name);
    r->score = malloc((cells ? cells : 1) * sizeof *r->score);
    size_t *row_of = malloc((cells ? cells : 1) * sizeof *row_of);
    if (!r->score || !row_of) {
        free(row_of);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", t->name);
    }
    for (size_t i = 0; i < cells; i++)
        r->score[i] = NAN;
    int rc = CBQ_OK;
    for (size_t row = 0; row < t->n_rows; row++) {
        size_t i = (rows[row].cat * r->n_volumes + rows[row].vol) * r->n_raters + rows[row].rater;
        if (!isnan(r->score[i])) {
            long c = cbq_csv_col(t, "volume_id");
            rc = cbq_csv_fail(t, row, (size_t)c, err, CBQ_ERR_FORMAT,
                              "duplicate rating of volume '%s' by rater '%s' in category '%s' "
                              "(first on line %zu)",
                              r->volumes[rows[row].vol], r->raters[rows[row].rater],
                              r->categories[rows[row].cat], t->line[row_of[i]]);
            break;
        }
        r->score[i] = rows[row].score;
        row_of[i] = row;
    }
    free(row_of);
    return rc;
}

/* Equal weights when there is no raters.csv. */
static int unit_weights(cbq_ratings *r, const char *ratings_path, cbq_error *err)
{
    r->weight = malloc((r->n_raters + 1) * sizeof *r->weight);
    if (!r->weight)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", ratings_path);
    for (size_t k = 0; k < r->n_raters; k++)
        r->weight[k] = 1.0;
    return CBQ_OK;
}

/* Parses the rows of t into r (names, scores) and the weights; r takes the
 * names whatever happens, so that one cbq_ratings_free releases them. */
static int ratings_from_table(cbq_ratings *r, const cbq_csv *t, const char *raters_path,
                              rating_row *rows, size_t *first_row, cbq_error *err)
{
    name_set vols = {0}, raters = {0}, cats = {0};
    int rc = parse_rows(t, &vols, &raters, &cats, rows, first_row, err);
    if (rc == CBQ_OK && t->n_rows == 0)
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s:2: no ratings after the header", t->name);
    r->volumes = vols.names;
    r->n_volumes = vols.n;
    r->raters = raters.names;
    r->n_raters = raters.n;
    r->categories = cats.names;
    r->n_categories = cats.n;
    if (rc == CBQ_OK)
        rc = fill_scores(r, t, rows, err);
    if (rc == CBQ_OK)
        rc = raters_path ? read_weights(r, raters_path, &raters, first_row, t, err)
                         : unit_weights(r, t->name, err);
    name_free_index(&vols);
    name_free_index(&raters);
    name_free_index(&cats);
    return rc;
}

int cbq_ratings_read(cbq_ratings *r, const char *ratings_path, const char *raters_path,
                     cbq_error *err)
{
    memset(r, 0, sizeof *r);
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, ratings_path, err));
    rating_row *rows = malloc((t.n_rows + 1) * sizeof *rows);
    size_t *first_row = malloc((t.n_rows + 1) * sizeof *first_row);
    int rc = rows && first_row ? ratings_from_table(r, &t, raters_path, rows, first_row, err)
                               : CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", ratings_path);
    free(rows);
    free(first_row);
    cbq_csv_free(&t);
    if (rc != CBQ_OK)
        cbq_ratings_free(r);
    return rc;
}

int cbq_consensus_write(const cbq_ratings *r, const cbq_consensus *table, const char *path,
                        cbq_error *err)
{
    static const char *const header[] = {"volume_id", "category", "consensus", "n_raters", "sd"};
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, header, 5, err));
    for (size_t v = 0; v < r->n_volumes; v++)
        for (size_t c = 0; c < r->n_categories; c++) {
            const cbq_consensus *cs = &table[v * r->n_categories + c];
            if (!cs->n_raters)
                continue;
            cbq_csv_put_str(&w, r->volumes[v]);
            cbq_csv_put_str(&w, r->categories[c]);
            cbq_csv_put_double(&w, cs->mean);
            cbq_csv_put_int(&w, (long long)cs->n_raters);
            cbq_csv_put_double(&w, cs->sd);
            int rc = cbq_csv_end_row(&w, err);
            if (rc != CBQ_OK) {
                cbq_csv_writer_abort(&w);
                return rc;
            }
        }
    return cbq_csv_writer_commit(&w, err);
}
