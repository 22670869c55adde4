/* ratings_csv.c - the ratings tables on disk: reads ratings.csv (the long
 * layout, one row per rating, or the wide one, one row per volume and rater
 * with a column per category) and raters.csv into a dense
 * [category][volume][rater] score array, validating every row, and writes
 * consensus.csv. The statistics on the
 * array live in src/stats. */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/ratings_csv.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/csv.h"
#include "cbctiq/safe_name.h"

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

/* One rating as read: indices into the name sets, and where it stood. */
typedef struct {
    size_t vol, rater, cat;
    size_t row, col;
    double score;
} rating_row;

/* The two layouts of ratings.csv (docs/formats.md), told apart by the header. */
typedef enum { LAYOUT_LONG, LAYOUT_WIDE } sheet_layout;

static const char LONG_HEADER[] = "volume_id,rater,category,score";
static const char WIDE_HEADER[] = "volume_id,rater,<category>,<category>,...";

typedef struct {
    const cbq_csv *t;
    sheet_layout layout;
    size_t c_vol, c_rater, c_cat, c_score; /* c_cat and c_score: long layout only */
    name_set vols, raters, cats;
    rating_row *ratings;                   /* cap_ratings entries */
    size_t n_ratings, cap_ratings;
    size_t *first_row;                     /* per rater: the row of its first rating */
} sheet;

/* Blank = "not rated" in both layouts; surrounding spaces do not count. */
static int is_blank(const char *s)
{
    return s[strspn(s, " \t")] == '\0';
}

/* A row of blanks only (a spreadsheet's trailing ",,,," line) says nothing. */
static int row_is_blank(const cbq_csv *t, size_t row)
{
    for (size_t c = 0; c < t->n_cols; c++)
        if (!is_blank(cbq_csv_cell(t, row, c)))
            return 0;
    return 1;
}

/* The layout from the header: long when it has a `category` or `score`
 * column, else wide. Every required column that is missing is named at
 * once, with the header each layout expects. */
static int find_layout(sheet *s, cbq_error *err)
{
    static const char *const long_cols[4] = {"volume_id", "rater", "category", "score"};
    const cbq_csv *t = s->t;
    s->layout = cbq_csv_col(t, "category") >= 0 || cbq_csv_col(t, "score") >= 0 ? LAYOUT_LONG
                                                                                : LAYOUT_WIDE;
    size_t n_required = s->layout == LAYOUT_LONG ? 4 : 2;
    size_t *cols[4] = {&s->c_vol, &s->c_rater, &s->c_cat, &s->c_score};
    char missing[128] = "";
    size_t n_missing = 0;
    for (size_t i = 0; i < n_required; i++) {
        long c = cbq_csv_col(t, long_cols[i]);
        if (c >= 0) {
            *cols[i] = (size_t)c;
            continue;
        }
        size_t used = strlen(missing);
        snprintf(missing + used, sizeof missing - used, "%s'%s'", n_missing ? ", " : "",
                 long_cols[i]);
        n_missing++;
    }
    if (n_missing)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s:1: missing column%s %s in the header; expected the header '%s' (one "
                        "row per rating) or '%s' (one row per volume and rater, one column per "
                        "category)",
                        t->name, n_missing > 1 ? "s" : "", missing, LONG_HEADER, WIDE_HEADER);
    if (s->layout == LAYOUT_WIDE && t->n_cols < 3)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                        "%s:1: no category column in the header; expected the header '%s' (one "
                        "row per rating) or '%s' (one row per volume and rater, one column per "
                        "category)",
                        t->name, LONG_HEADER, WIDE_HEADER);
    return CBQ_OK;
}

static int is_category_col(const sheet *s, size_t col)
{
    return col != s->c_vol && col != s->c_rater;
}

/* In the wide layout the category names are column names: the same rule as
 * names in cells (safe_name.h). */
static int check_category_header(const sheet *s, cbq_error *err)
{
    for (size_t col = 0; col < s->t->n_cols; col++) {
        char why[160];
        if (is_category_col(s, col) && !cbq_name_ok(s->t->header[col], why, sizeof why))
            return CBQ_FAIL(err, CBQ_ERR_FORMAT,
                            "%s:1: column %zu: category %s (names become parts of file names: "
                            "no '/', '\\', control characters, '.' or '..')",
                            s->t->name, col + 1, why);
    }
    return CBQ_OK;
}

static int check_name_cell(const cbq_csv *t, size_t row, size_t col, const char *what,
                           cbq_error *err)
{
    const char *name = cbq_csv_cell(t, row, col);
    if (!name[0])
        return cbq_csv_fail(t, row, col, err, CBQ_ERR_FORMAT, "empty field");
    char why[160];
    if (!cbq_name_ok(name, why, sizeof why))
        return cbq_csv_fail(t, row, col, err, CBQ_ERR_FORMAT,
                            "%s %s (names become parts of file names: no '/', '\\', control "
                            "characters, '.' or '..')",
                            what, why);
    return CBQ_OK;
}

/* Names of every row that is not blank: empty fields first, then unsafe names. */
static int check_name_cells(const sheet *s, cbq_error *err)
{
    size_t cols[3] = {s->c_vol, s->c_rater, s->c_cat};
    static const char *const what[3] = {"volume id", "rater", "category"};
    size_t n = s->layout == LAYOUT_LONG ? 3 : 2;
    for (size_t row = 0; row < s->t->n_rows; row++)
        for (size_t j = 0; j < n && !row_is_blank(s->t, row); j++)
            if (!cbq_csv_cell(s->t, row, cols[j])[0])
                return cbq_csv_fail(s->t, row, cols[j], err, CBQ_ERR_FORMAT, "empty field");
    for (size_t j = 0; j < n; j++)
        for (size_t row = 0; row < s->t->n_rows; row++)
            if (!row_is_blank(s->t, row))
                CBQ_TRY(check_name_cell(s->t, row, cols[j], what[j], err));
    return CBQ_OK;
}

/* Adds the rating in (row, col) of category `category`, unless it is blank.
 * Names enter their sets with their first rating, so a wide sheet and the
 * long sheet without its blank rows give the same table in the same order. */
static int add_rating(sheet *s, size_t row, size_t col, const char *category, cbq_error *err)
{
    const cbq_csv *t = s->t;
    if (is_blank(cbq_csv_cell(t, row, col)))
        return CBQ_OK;
    double score;
    CBQ_TRY(cbq_csv_get_double(t, row, col, &score, err));
    if (score < CBQ_SCORE_MIN || score > CBQ_SCORE_MAX)
        return cbq_csv_fail(t, row, col, err, CBQ_ERR_RANGE, "score %s outside [%g, %g]",
                            cbq_csv_cell(t, row, col), CBQ_SCORE_MIN, CBQ_SCORE_MAX);
    long v = name_add(&s->vols, cbq_csv_cell(t, row, s->c_vol));
    size_t before = s->raters.n;
    long k = name_add(&s->raters, cbq_csv_cell(t, row, s->c_rater));
    long c = name_add(&s->cats, category);
    if (v < 0 || k < 0 || c < 0 || s->n_ratings == s->cap_ratings)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", t->name);
    if (s->raters.n > before)
        s->first_row[k] = row;
    s->ratings[s->n_ratings++] = (rating_row){(size_t)v, (size_t)k, (size_t)c, row, col, score};
    return CBQ_OK;
}

static int parse_rows(sheet *s, cbq_error *err)
{
    const cbq_csv *t = s->t;
    for (size_t row = 0; row < t->n_rows; row++) {
        if (s->layout == LAYOUT_LONG) {
            if (!row_is_blank(t, row))
                CBQ_TRY(add_rating(s, row, s->c_score, cbq_csv_cell(t, row, s->c_cat), err));
            continue;
        }
        for (size_t col = 0; col < t->n_cols; col++)
            if (is_category_col(s, col))
                CBQ_TRY(add_rating(s, row, col, t->header[col], err));
    }
    return CBQ_OK;
}

/* Fills the dense array; a second rating of the same cell is an error. */
static int fill_scores(cbq_ratings *r, const sheet *s, cbq_error *err)
{
    const cbq_csv *t = s->t;
    size_t cells;
    if (!cbq_size_mul(&cells, r->n_categories, r->n_volumes) || !cbq_size_mul(&cells, cells, r->n_raters))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: too many ratings", t->name);
    r->score = malloc((cells ? cells : 1) * sizeof *r->score);
    size_t *rating_of = malloc((cells ? cells : 1) * sizeof *rating_of);
    if (!r->score || !rating_of) {
        free(rating_of);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", t->name);
    }
    for (size_t i = 0; i < cells; i++)
        r->score[i] = NAN;
    int rc = CBQ_OK;
    for (size_t j = 0; j < s->n_ratings; j++) {
        const rating_row *g = &s->ratings[j];
        size_t i = (g->cat * r->n_volumes + g->vol) * r->n_raters + g->rater;
        if (!isnan(r->score[i])) {
            rc = cbq_csv_fail(t, g->row, g->col, err, CBQ_ERR_FORMAT,
                              "duplicate rating of volume '%s' by rater '%s' in category '%s' "
                              "(first on line %zu)",
                              r->volumes[g->vol], r->raters[g->rater], r->categories[g->cat],
                              t->line[s->ratings[rating_of[i]].row]);
            break;
        }
        r->score[i] = g->score;
        rating_of[i] = j;
    }
    free(rating_of);
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

static int read_sheet(sheet *s, cbq_error *err)
{
    CBQ_TRY(find_layout(s, err));
    if (s->layout == LAYOUT_WIDE)
        CBQ_TRY(check_category_header(s, err));
    CBQ_TRY(check_name_cells(s, err));
    CBQ_TRY(parse_rows(s, err));
    if (s->n_ratings == 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s:2: no ratings after the header%s", s->t->name,
                        s->t->n_rows ? " (every score is blank)" : "");
    return CBQ_OK;
}

/* Parses the sheet s into r (names, scores) and the weights; r takes the
 * names whatever happens, so that one cbq_ratings_free releases them. */
static int ratings_from_sheet(cbq_ratings *r, sheet *s, const char *raters_path, cbq_error *err)
{
    int rc = read_sheet(s, err);
    r->volumes = s->vols.names;
    r->n_volumes = s->vols.n;
    r->raters = s->raters.names;
    r->n_raters = s->raters.n;
    r->categories = s->cats.names;
    r->n_categories = s->cats.n;
    if (rc == CBQ_OK)
        rc = fill_scores(r, s, err);
    if (rc == CBQ_OK)
        rc = raters_path ? read_weights(r, raters_path, &s->raters, s->first_row, s->t, err)
                         : unit_weights(r, s->t->name, err);
    name_free_index(&s->vols);
    name_free_index(&s->raters);
    name_free_index(&s->cats);
    return rc;
}

/* Room for every cell a rating can come from: one per row (long layout) or
 * one per row and category column (wide). */
static int sheet_alloc(sheet *s, cbq_error *err)
{
    size_t per_row = s->t->n_cols > 2 ? s->t->n_cols - 2 : 1;
    if (!cbq_size_mul(&s->cap_ratings, s->t->n_rows, per_row))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: too many ratings", s->t->name);
    s->ratings = malloc((s->cap_ratings + 1) * sizeof *s->ratings);
    s->first_row = malloc((s->t->n_rows + 1) * sizeof *s->first_row);
    if (!s->ratings || !s->first_row)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", s->t->name);
    return CBQ_OK;
}

int cbq_ratings_read(cbq_ratings *r, const char *ratings_path, const char *raters_path,
                     cbq_error *err)
{
    memset(r, 0, sizeof *r);
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, ratings_path, err));
    sheet s = {.t = &t};
    int rc = sheet_alloc(&s, err);
    if (rc == CBQ_OK)
        rc = ratings_from_sheet(r, &s, raters_path, err);
    free(s.ratings);
    free(s.first_row);
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
