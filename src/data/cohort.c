/* cohort.c - the one reader of cohort.csv (cohort.h), split selection,
 * and the relative paths that keep a cohort folder movable. */
#define _XOPEN_SOURCE 700
#include "cbctiq/cohort.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbctiq/csv.h"
#include "cbctiq/structures.h"

const char *cbq_split_name(cbq_split s)
{
    switch (s) {
    case CBQ_SPLIT_TRAIN: return "train";
    case CBQ_SPLIT_VAL: return "val";
    case CBQ_SPLIT_TEST: return "test";
    default: return "";
    }
}

int cbq_split_parse(const char *s, cbq_split *out)
{
    if (!s[0]) *out = CBQ_SPLIT_NONE;
    else if (strcmp(s, "train") == 0) *out = CBQ_SPLIT_TRAIN;
    else if (strcmp(s, "val") == 0) *out = CBQ_SPLIT_VAL;
    else if (strcmp(s, "test") == 0) *out = CBQ_SPLIT_TEST;
    else return 0;
    return 1;
}

static int join_dir(char *out, size_t cap, const char *dir, const char *rel)
{
    int n = rel[0] == '/' || !dir[0] ? snprintf(out, cap, "%s", rel)
                                     : snprintf(out, cap, "%s/%s", dir, rel);
    return n >= 0 && (size_t)n < cap;
}

void cbq_cohort_free(cbq_cohort *c)
{
    free(c->v);
    memset(c, 0, sizeof *c);
}

typedef struct { size_t id, path; long mask, rtstruct, split; } cohort_cols;

/* A path cell resolved against the CSV's folder into out ("" stays ""). */
static int read_path(const cbq_csv *t, size_t r, long col, const char *dir, char *out, size_t cap,
                     cbq_error *err)
{
    const char *cell = col >= 0 ? cbq_csv_cell(t, r, (size_t)col) : "";
    if (cell[0] && !join_dir(out, cap, dir, cell))
        return cbq_csv_fail(t, r, (size_t)col, err, CBQ_ERR_RANGE, "path too long");
    return CBQ_OK;
}

static int read_row(cbq_cohort *c, const cbq_csv *t, size_t r, const char *dir,
                    const cohort_cols *col, cbq_error *err)
{
    cbq_cohort_volume *v = &c->v[r];
    const char *id = cbq_csv_cell(t, r, col->id), *path = cbq_csv_cell(t, r, col->path);
    if (!id[0] || strlen(id) >= sizeof v->id)
        return cbq_csv_fail(t, r, col->id, err, CBQ_ERR_FORMAT, "expected a volume id (1-255 chars)");
    if (!path[0])
        return cbq_csv_fail(t, r, col->path, err, CBQ_ERR_FORMAT, "expected a path");
    snprintf(v->id, sizeof v->id, "%s", id);
    v->line = t->line[r];
    CBQ_TRY(read_path(t, r, (long)col->path, dir, v->path, sizeof v->path, err));
    CBQ_TRY(read_path(t, r, col->mask, dir, v->mask, sizeof v->mask, err));
    CBQ_TRY(read_path(t, r, col->rtstruct, dir, v->rtstruct, sizeof v->rtstruct, err));
    const char *split = col->split >= 0 ? cbq_csv_cell(t, r, (size_t)col->split) : "";
    if (!cbq_split_parse(split, &v->split))
        return cbq_csv_fail(t, r, (size_t)col->split, err, CBQ_ERR_FORMAT,
                            "expected train, val or test, got '%s'", split);
    return CBQ_OK;
}

static int read_table(cbq_cohort *c, const cbq_csv *t, const char *csv_path, cbq_error *err)
{
    cohort_cols col;
    CBQ_TRY(cbq_csv_require_col(t, "volume_id", &col.id, err));
    CBQ_TRY(cbq_csv_require_col(t, "path", &col.path, err));
    CBQ_TRY(cbq_csv_require_names(t, col.id, "volume id", err));
    CBQ_TRY(cbq_csv_require_unique(t, col.id, "volume id", err));
    if (t->n_rows == 0)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no volumes", csv_path);
    if (!(c->v = calloc(t->n_rows, sizeof *c->v)))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", csv_path);
    col.mask = cbq_csv_col(t, "mask");
    col.rtstruct = cbq_csv_col(t, "rtstruct");
    col.split = cbq_csv_col(t, "split");
    char dir[4096];
    const char *slash = strrchr(csv_path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - csv_path) : 0, csv_path);
    c->has_split_column = col.split >= 0;
    c->has_split = c->has_split_column;
    c->n = t->n_rows;
    for (size_t r = 0; r < t->n_rows; r++) {
        CBQ_TRY(read_row(c, t, r, dir, &col, err));
        if (c->v[r].split == CBQ_SPLIT_NONE)
            c->has_split = 0;
    }
    struct stat st;
    if (!join_dir(c->labels_json, sizeof c->labels_json, dir, "labels.json") ||
        stat(c->labels_json, &st) != 0)
        c->labels_json[0] = '\0';
    return CBQ_OK;
}

int cbq_cohort_read(cbq_cohort *c, const char *csv_path, cbq_error *err)
{
    memset(c, 0, sizeof *c);
    if (strlen(csv_path) >= sizeof c->csv)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: path too long", csv_path);
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, csv_path, err));
    int rc = read_table(c, &t, csv_path, err);
    cbq_csv_free(&t);
    if (rc != CBQ_OK) {
        cbq_cohort_free(c);
        return rc;
    }
    snprintf(c->csv, sizeof c->csv, "%s", csv_path);
    return CBQ_OK;
}

int cbq_cohort_in_split(const cbq_cohort *c, size_t i, const char *split)
{
    if (!split || strcmp(split, "all") == 0)
        return 1;
    return strcmp(cbq_split_name(c->v[i].split), split) == 0;
}

int cbq_cohort_count_split(const cbq_cohort *c, const char *split, size_t *n, cbq_error *err)
{
    cbq_split s;
    *n = 0;
    int every = !split || strcmp(split, "all") == 0;
    if (!every && (!cbq_split_parse(split, &s) || s == CBQ_SPLIT_NONE))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "--split expects train, val, test or all, got '%s'",
                        split);
    if (!every && !c->has_split_column)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: --split %s given but the file has no 'split' column",
                        c->csv, split);
    for (size_t i = 0; i < c->n; i++)
        *n += (size_t)cbq_cohort_in_split(c, i, split);
    if (*n == 0)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: no volumes%s%s", c->csv, every ? "" : " with split ",
                        every ? "" : split);
    return CBQ_OK;
}

int cbq_cohort_labels_json(const cbq_cohort *c, const cbq_cohort_volume *v, char *out, size_t cap)
{
    if (c->labels_json[0]) {
        snprintf(out, cap, "%s", c->labels_json);
        return 1;
    }
    return v->mask[0] && cbq_structures_sidecar(out, cap, v->mask);
}

/* Absolute and free of symbolic links, "." and "..", as the system resolves
 * it: realpath of the folder, then the last name as written (so that a
 * volume that is itself a link keeps its name). The folder must exist. */
static int resolve(char *out, size_t cap, const char *p, cbq_error *err)
{
    char parent[4096], real[PATH_MAX];
    int n = snprintf(parent, sizeof parent, "%s", p);
    if (n < 0 || (size_t)n >= sizeof parent)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: path too long", p);
    while (n > 1 && parent[n - 1] == '/')
        parent[--n] = '\0';
    char *slash = strrchr(parent, '/');
    const char *name = slash ? slash + 1 : parent;
    int whole = strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || slash == parent;
    if (whole) {
        if (!realpath(parent, real))
            return CBQ_FAIL(err, CBQ_ERR_IO, "%s: %s", p, strerror(errno));
        n = snprintf(out, cap, "%s", real);
    } else {
        const char *folder = slash ? parent : ".";
        if (slash)
            *slash = '\0';
        if (!realpath(folder, real))
            return CBQ_FAIL(err, CBQ_ERR_IO, "%s: %s", p, strerror(errno));
        n = snprintf(out, cap, "%s%s%s", real, strcmp(real, "/") == 0 ? "" : "/", name);
    }
    if (n < 0 || (size_t)n >= cap)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: path too long", p);
    return CBQ_OK;
}

int cbq_path_relative(char *out, size_t cap, const char *from_dir, const char *target,
                        cbq_error *err)
{
    char a[4096], b[4096], real[PATH_MAX];
    if (!realpath(from_dir, real))
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: %s", from_dir, strerror(errno));
    if (snprintf(a, sizeof a, "%s", real) >= (int)sizeof a)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: path too long", from_dir);
    CBQ_TRY(resolve(b, sizeof b, target, err));
    /* Longest common prefix ending at a folder boundary. */
    size_t common = 0;
    for (size_t i = 0;; i++) {
        int end_a = a[i] == '\0' || a[i] == '/', end_b = b[i] == '\0' || b[i] == '/';
        if (end_a && end_b)
            common = i;
        if (a[i] != b[i] || a[i] == '\0')
            break;
    }
    size_t len = 0;
    out[0] = '\0';
    for (const char *p = a + common; *p; p++)
        if (*p == '/') {
            if (len + 4 > cap)
                return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: path too long", target);
            memcpy(out + len, "../", 4);
            len += 3;
        }
    const char *rest = b + common + (b[common] == '/');
    if (len + strlen(rest) + 1 > cap)
        return CBQ_FAIL(err, CBQ_ERR_RANGE, "%s: path too long", target);
    strcpy(out + len, rest);
    if (!out[0])
        snprintf(out, cap, ".");
    else if (out[strlen(out) - 1] == '/')
        out[strlen(out) - 1] = '\0';
    return CBQ_OK;
}
