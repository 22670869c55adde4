/* cohort.c - reading cohort.csv into the study's volume list, and the
 * relative paths that keep a study folder movable. */
#define _XOPEN_SOURCE 700
#include "study/cohort.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbctiq/csv.h"
#include "cbctiq/study.h"

const char *study_split_name(study_split s)
{
    switch (s) {
    case SPLIT_TRAIN: return "train";
    case SPLIT_VAL: return "val";
    case SPLIT_TEST: return "test";
    default: return "";
    }
}

static int parse_split(const char *s, study_split *out)
{
    if (!s[0]) *out = SPLIT_NONE;
    else if (strcmp(s, "train") == 0) *out = SPLIT_TRAIN;
    else if (strcmp(s, "val") == 0) *out = SPLIT_VAL;
    else if (strcmp(s, "test") == 0) *out = SPLIT_TEST;
    else return 0;
    return 1;
}

static int join_dir(char *out, size_t cap, const char *dir, const char *rel)
{
    int n = rel[0] == '/' || !dir[0] ? snprintf(out, cap, "%s", rel)
                                     : snprintf(out, cap, "%s/%s", dir, rel);
    return n >= 0 && (size_t)n < cap;
}

void study_cohort_free(study_cohort *c)
{
    free(c->v);
    memset(c, 0, sizeof *c);
}

static int read_row(study_cohort *c, const cbq_csv *t, size_t r, const char *dir, size_t cid,
                    size_t cpath, long cmask, long crt, long csplit, cbq_error *err)
{
    study_volume *v = &c->v[r];
    const char *id = cbq_csv_cell(t, r, cid), *path = cbq_csv_cell(t, r, cpath);
    if (!id[0] || strlen(id) >= sizeof v->id)
        return cbq_csv_fail(t, r, cid, err, CBQ_ERR_FORMAT, "expected a volume id (1-255 chars)");
    if (!path[0])
        return cbq_csv_fail(t, r, cpath, err, CBQ_ERR_FORMAT, "expected a path");
    snprintf(v->id, sizeof v->id, "%s", id);
    if (!join_dir(v->path, sizeof v->path, dir, path))
        return cbq_csv_fail(t, r, cpath, err, CBQ_ERR_RANGE, "path too long");
    const char *mask = cmask >= 0 ? cbq_csv_cell(t, r, (size_t)cmask) : "";
    if (mask[0] && !join_dir(v->mask, sizeof v->mask, dir, mask))
        return cbq_csv_fail(t, r, (size_t)cmask, err, CBQ_ERR_RANGE, "path too long");
    const char *rt = crt >= 0 ? cbq_csv_cell(t, r, (size_t)crt) : "";
    if (rt[0] && !join_dir(v->rtstruct, sizeof v->rtstruct, dir, rt))
        return cbq_csv_fail(t, r, (size_t)crt, err, CBQ_ERR_RANGE, "path too long");
    const char *split = csplit >= 0 ? cbq_csv_cell(t, r, (size_t)csplit) : "";
    if (!parse_split(split, &v->split))
        return cbq_csv_fail(t, r, (size_t)csplit, err, CBQ_ERR_FORMAT,
                            "expected train, val or test, got '%s'", split);
    return CBQ_OK;
}

int study_cohort_read(study_cohort *c, const char *csv_path, cbq_error *err)
{
    memset(c, 0, sizeof *c);
    cbq_csv t;
    CBQ_TRY(cbq_csv_read(&t, csv_path, err));
    size_t cid, cpath;
    int rc = cbq_csv_require_col(&t, "volume_id", &cid, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&t, "path", &cpath, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_names(&t, cid, "volume id", err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_unique(&t, cid, "volume id", err);
    if (rc == CBQ_OK && t.n_rows == 0)
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no volumes", csv_path);
    if (rc == CBQ_OK && !(c->v = calloc(t.n_rows, sizeof *c->v)))
        rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory", csv_path);
    char dir[4096];
    const char *slash = strrchr(csv_path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - csv_path) : 0, csv_path);
    long cmask = cbq_csv_col(&t, "mask"), csplit = cbq_csv_col(&t, "split");
    long crt = cbq_csv_col(&t, "rtstruct");
    c->has_split = csplit >= 0;
    for (size_t r = 0; rc == CBQ_OK && r < t.n_rows; r++) {
        rc = read_row(c, &t, r, dir, cid, cpath, cmask, crt, csplit, err);
        if (rc == CBQ_OK && c->v[r].split == SPLIT_NONE)
            c->has_split = 0;
    }
    c->n = t.n_rows;
    cbq_csv_free(&t);
    if (rc != CBQ_OK) {
        study_cohort_free(c);
        return rc;
    }
    struct stat st;
    if (join_dir(c->labels_json, sizeof c->labels_json, dir, "labels.json") &&
        stat(c->labels_json, &st) != 0)
        c->labels_json[0] = '\0';
    return CBQ_OK;
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

int study_relative_path(char *out, size_t cap, const char *from_dir, const char *target,
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

int study_volume_used_slices(const study_volume *sv, int structures_only, cbq_volume *vol,
                             cbq_reorient *xf, size_t **ks, size_t *n, cbq_error *err)
{
    cbq_reorient local;
    cbq_volume mask = {0};
    *ks = NULL;
    *n = 0;
    int rc = cbq_study_load_volume_xf(sv->path, vol, xf ? xf : &local, err);
    if (rc == CBQ_OK && structures_only && sv->mask[0])
        rc = cbq_study_load_volume(sv->mask, &mask, NULL, err);
    if (rc == CBQ_OK)
        rc = cbq_study_select_slices(vol, mask.data ? &mask : NULL, structures_only, ks, n, err);
    cbq_volume_free(&mask);
    return rc;
}
