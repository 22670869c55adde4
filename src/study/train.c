/* train.c - the volume-level training driver behind `cbctiq train` and the
 * study's train stage: reads the cohort and the consensus, turns the train
 * and val volumes' axial slices into model inputs (each slice inherits its
 * volume's consensus scores as targets), runs the trainer with early
 * stopping, logs volume-level validation metrics per epoch, and saves the
 * best model. Slices are held in memory: volumes x slices x H x W floats.
 *
 * Under train.permute_labels the volumes' target rows are first deranged
 * (no volume keeps its own) among the train volumes and separately among
 * the val volumes: the data
 * randomisation test of Adebayo et al. 2018 wants a model that learned
 * nothing real, so early stopping must not see the true labels either
 * (it would pick the epoch that happens to fit them best). */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/study.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/csv.h"
#include "cbctiq/dist.h"
#include "cbctiq/model_file.h"
#include "cbctiq/model_input.h"
#include "cbctiq/model_json.h"
#include "cbctiq/preset.h"
#include "cbctiq/progress.h"
#include "cbctiq/rng.h"
#include "cbctiq/stats.h"
#include "cbctiq/trainer.h"
#include "cbctiq/cohort.h"

enum { MAX_CAT = 16 };

typedef struct {
    size_t n, cap, H, W, C, K;
    float *x;            /* [n, C, H, W]: the model's input (cbq_model_input_load) */
    float *y;            /* [n, K] */
    size_t *volume;      /* [n] dataset volume index */
    size_t n_volumes;
    double *vol_target;  /* [n_volumes, K] */
    int *vol_is_val;     /* [n_volumes] */
} slice_set;

typedef struct {
    const cbq_study_config *cfg;
    char cats[MAX_CAT][64];
    size_t K;
    slice_set s;
    cbq_net *net;
    size_t *val_idx, n_val;
    cbq_csv_writer log;
    cbq_csv_writer perm;  /* permutation.csv, committed with the model */
    int perm_open;
    int log_rc;
    cbq_error log_err;
    float *buf;          /* batch buffer */
    double *vol_sum;     /* [n_volumes, K] */
    size_t *vol_count;
    cbq_progress prog;
    cbq_dist dist;       /* the ranks training together (one without mpirun) */
    int writes;          /* rank 0: the model, the log and permutation.csv */
    int alone_if_unshared; /* batches without a slice per rank: each rank trains alone */
} train_run;

static void slice_set_free(slice_set *s)
{
    free(s->x);
    free(s->y);
    free(s->volume);
    free(s->vol_target);
    free(s->vol_is_val);
}

static int grow(slice_set *s, size_t need, cbq_error *err)
{
    if (need <= s->cap)
        return CBQ_OK;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < need)
        cap *= 2;
    size_t plane = s->C * s->H * s->W, bytes;
    if (!cbq_size_mul(&bytes, cap, plane * sizeof(float)))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "too many training slices");
    float *x = realloc(s->x, bytes), *y = x ? realloc(s->y, cap * s->K * sizeof *y) : NULL;
    if (x)
        s->x = x;
    if (y)
        s->y = y;
    size_t *v = y ? realloc(s->volume, cap * sizeof *v) : NULL;
    if (v)
        s->volume = v;
    if (!x || !y || !v)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory for %zu training slices (%zu MiB)",
                        cap, bytes >> 20);
    s->cap = cap;
    return CBQ_OK;
}

/* Consensus per volume (cohort order) and category; NaN where missing. */
static int read_targets(const char *path, const cbq_cohort *c, char (*cats)[64], size_t K,
                        double *t, cbq_error *err)
{
    for (size_t i = 0; i < c->n * K; i++)
        t[i] = NAN;
    cbq_csv csv;
    CBQ_TRY(cbq_csv_read(&csv, path, err));
    size_t cv, cc, cs;
    int rc = cbq_csv_require_col(&csv, "volume_id", &cv, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&csv, "category", &cc, err);
    if (rc == CBQ_OK)
        rc = cbq_csv_require_col(&csv, "consensus", &cs, err);
    for (size_t r = 0; r < csv.n_rows && rc == CBQ_OK; r++) {
        const char *id = cbq_csv_cell(&csv, r, cv), *cat = cbq_csv_cell(&csv, r, cc);
        size_t v = 0, k = 0;
        while (v < c->n && strcmp(c->v[v].id, id) != 0)
            v++;
        while (k < K && strcmp(cats[k], cat) != 0)
            k++;
        if (v < c->n && k < K)
            rc = cbq_csv_get_double(&csv, r, cs, &t[v * K + k], err);
    }
    cbq_csv_free(&csv);
    return rc;
}

/* The smallest group value above `after` into *g; 0 when there is none. */
static int next_group(const int *group, size_t n, int after, int *g)
{
    int found = 0;
    for (size_t v = 0; v < n; v++)
        if (group[v] > after && (!found || group[v] < *g)) {
            *g = group[v];
            found = 1;
        }
    return found;
}

/* A uniformly random derangement of members[0..m) into shuffled: Fisher-Yates
 * shuffles drawn until none leaves a member in place. About e (2.72) draws
 * on average for any m >= 2; rejection keeps every derangement equally
 * likely, which Sattolo's algorithm (cyclic permutations only) would not. */
static void draw_derangement(cbq_rng *rng, const size_t *members, size_t *shuffled, size_t m)
{
    for (;;) {
        memcpy(shuffled, members, m * sizeof *members);
        cbq_rng_shuffle_size(rng, shuffled, m);
        size_t i = 0;
        while (i < m && shuffled[i] != members[i])
            i++;
        if (i == m)
            return;
    }
}

int cbq_study_permute_labels(uint64_t seed, const int *group, size_t n, size_t K, double *target,
                             size_t *from, cbq_error *err)
{
    for (int g = -1; next_group(group, n, g, &g);) {
        size_t m = 0;
        for (size_t v = 0; v < n; v++)
            m += group[v] == g;
        if (m < 2)
            return CBQ_FAIL(err, CBQ_ERR_UNDEFINED, "group %d has a single volume: no "
                            "permutation moves its labels (at least 2 are needed)", g);
    }
    size_t *members = malloc((2 * n + 1) * sizeof *members), *shuffled = members + n;
    double *orig = target ? malloc((n * K + 1) * sizeof *orig) : NULL;
    if (!members || (target && !orig)) {
        free(members);
        free(orig);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    }
    cbq_rng rng;
    cbq_rng_stream(&rng, seed, 0x5045524du); /* "PERM": apart from the trainer's streams */
    for (size_t v = 0; v < n; v++)
        from[v] = v;
    for (int g = -1; next_group(group, n, g, &g);) { /* ascending, each group once */
        size_t m = 0;
        for (size_t v = 0; v < n; v++)
            if (group[v] == g)
                members[m++] = v;
        draw_derangement(&rng, members, shuffled, m);
        for (size_t i = 0; i < m; i++)
            from[members[i]] = shuffled[i];
    }
    if (target) {
        memcpy(orig, target, n * K * sizeof *orig);
        for (size_t v = 0; v < n; v++)
            memcpy(target + v * K, orig + from[v] * K, K * sizeof *orig);
    }
    free(members);
    free(orig);
    return CBQ_OK;
}

/* The permutation groups: a train or val volume with every category's
 * consensus is in its split's group; the rest (-1) keep their labels. */
static void permutation_groups(const cbq_cohort *c, const double *target, size_t K, int *group)
{
    for (size_t v = 0; v < c->n; v++) {
        int used = c->v[v].split == CBQ_SPLIT_TRAIN || c->v[v].split == CBQ_SPLIT_VAL;
        for (size_t k = 0; k < K; k++)
            used &= isfinite(target[v * K + k]) != 0;
        group[v] = used ? (int)c->v[v].split : -1;
    }
}

/* Why no derangement exists (a split with a single volume) into why, or ""
 * when every split can be permuted. */
static void permutation_obstacle(const cbq_cohort *c, const int *group, char *why, size_t cap)
{
    why[0] = '\0';
    static const cbq_split splits[] = {CBQ_SPLIT_TRAIN, CBQ_SPLIT_VAL};
    for (size_t s = 0; s < sizeof splits / sizeof splits[0] && !why[0]; s++) {
        size_t m = 0, only = 0;
        for (size_t v = 0; v < c->n; v++)
            if (group[v] == (int)splits[s]) {
                m++;
                only = v;
            }
        if (m == 1)
            snprintf(why, cap, "the %s split has a single volume with consensus scores (%s): "
                     "permuted labels need at least 2 volumes in each split, so that none keeps "
                     "its own scores", cbq_split_name(splits[s]), c->v[only].id);
    }
}

int cbq_study_permute_check(const cbq_study_config *cfg, const char *cohort_csv,
                            const char *consensus_csv, char *why, size_t cap, cbq_error *err)
{
    char cats[MAX_CAT][64];
    size_t K = cbq_study_categories(cfg, cats, MAX_CAT);
    cbq_cohort c;
    CBQ_TRY(cbq_cohort_read(&c, cohort_csv, err));
    double *target = malloc((c.n * K + 1) * sizeof *target);
    int *group = malloc((c.n + 1) * sizeof *group);
    int rc = target && group ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK)
        rc = read_targets(consensus_csv, &c, cats, K, target, err);
    if (rc == CBQ_OK) {
        permutation_groups(&c, target, K, group);
        permutation_obstacle(&c, group, why, cap);
    }
    free(target);
    free(group);
    cbq_cohort_free(&c);
    return rc;
}

/* Under train.permute_labels: deranges the complete train and val volumes'
 * target rows (within each split) and opens MODEL/permutation.csv with who
 * got whose labels, committed only with the model so the two never part. */
static int permute_targets(train_run *t, const cbq_cohort *c, double *target,
                           const char *model_dir, size_t *n_relabelled, cbq_error *err)
{
    size_t K = t->K, *from = malloc((c->n + 1) * sizeof *from);
    int *group = malloc((c->n + 1) * sizeof *group);
    int rc = from && group ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    char why[CBQ_STUDY_PATH_MAX];
    if (rc == CBQ_OK) {
        permutation_groups(c, target, K, group);
        permutation_obstacle(c, group, why, sizeof why);
        if (why[0])
            rc = CBQ_FAIL(err, CBQ_ERR_UNDEFINED, "--permute-labels: %s", why);
    }
    if (rc == CBQ_OK)
        rc = cbq_study_permute_labels(t->cfg->seed, group, c->n, K, target, from, err);
    static const char *const header[] = {"volume_id", "split", "labels_from"};
    char path[CBQ_STUDY_PATH_MAX + 32];
    if (rc == CBQ_OK && (size_t)snprintf(path, sizeof path, "%s/permutation.csv", model_dir) >= sizeof path)
        rc = CBQ_FAIL(err, CBQ_ERR_ARG, "%s: path too long", model_dir);
    if (rc == CBQ_OK && t->writes && (rc = cbq_mkdir_p(model_dir, err)) == CBQ_OK)
        t->perm_open = (rc = cbq_csv_writer_open(&t->perm, path, header, 3, err)) == CBQ_OK;
    for (size_t v = 0; v < c->n && rc == CBQ_OK; v++) {
        if (group[v] < 0)
            continue;
        *n_relabelled += from[v] != v;
        if (!t->writes)
            continue;
        cbq_csv_put_str(&t->perm, c->v[v].id);
        cbq_csv_put_str(&t->perm, cbq_split_name(c->v[v].split));
        cbq_csv_put_str(&t->perm, c->v[from[v]].id);
        rc = cbq_csv_end_row(&t->perm, err);
    }
    free(from);
    free(group);
    return rc;
}

/* Appends a volume's model input (every slice_step-th selected slice) to
 * the training set, each slice with the volume's targets. */
static int append_slices(slice_set *s, const cbq_model_input *in, const double *target,
                         int is_val, cbq_error *err)
{
    size_t m = in->n, vi = s->n_volumes, plane = s->C * s->H * s->W;
    CBQ_TRY(grow(s, s->n + m, err));
    memcpy(s->x + s->n * plane, in->x, m * plane * sizeof *in->x);
    for (size_t i = 0; i < m; i++) {
        for (size_t k = 0; k < s->K; k++)
            s->y[(s->n + i) * s->K + k] = (float)target[k];
        s->volume[s->n + i] = vi;
    }
    s->n += m;
    memcpy(s->vol_target + vi * s->K, target, s->K * sizeof *target);
    s->vol_is_val[vi] = is_val;
    s->n_volumes++;
    return CBQ_OK;
}

static int add_volume(train_run *t, const cbq_cohort *c, const cbq_cohort_volume *sv,
                      const double *target, int is_val, cbq_error *err)
{
    const cbq_study_config *cfg = t->cfg;
    cbq_model_input_options o = {.step = (size_t)cfg->train.slice_step};
    if (!cbq_slice_selection_parse(cfg->train.slices, &o.selection))
        return CBQ_FAIL(err, CBQ_ERR_ARG, "train.slices: unknown '%s'", cfg->train.slices);
    /* The model's own input (size, window, channels, mean/std): what it
     * trains on is what predict and ae give it later. */
    const cbq_input_spec *input = &cbq_net_spec(t->net)->input;
    cbq_model_input in;
    int rc = cbq_model_input_load(&in, sv, c, input, &o, err);
    if (rc == CBQ_OK)
        rc = append_slices(&t->s, &in, target, is_val, err);
    cbq_model_input_free(&in);
    return rc == CBQ_OK ? rc : cbq_error_prefix(err, "%s: ", sv->id);
}

static int load_slices(train_run *t, const char *cohort_csv, const char *consensus_csv,
                       const char *model_dir, cbq_study_train_result *res, cbq_error *err)
{
    cbq_cohort c;
    CBQ_TRY(cbq_cohort_read(&c, cohort_csv, err));
    size_t K = t->K;
    double *target = malloc((c.n * K + 1) * sizeof *target);
    t->s.vol_target = malloc((c.n * K + 1) * sizeof *t->s.vol_target);
    t->s.vol_is_val = calloc(c.n + 1, sizeof *t->s.vol_is_val);
    int rc = target && t->s.vol_target && t->s.vol_is_val
                 ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    if (rc == CBQ_OK && !c.has_split)
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT,
                      "%s: training needs a split column (train, val, test) on every row",
                      cohort_csv);
    if (rc == CBQ_OK)
        rc = read_targets(consensus_csv, &c, t->cats, K, target, err);
    if (rc == CBQ_OK && t->cfg->train.permute_labels)
        rc = permute_targets(t, &c, target, model_dir, &res->n_relabelled, err);
    size_t n_use = 0;
    for (size_t v = 0; v < c.n; v++)
        n_use += c.v[v].split == CBQ_SPLIT_TRAIN || c.v[v].split == CBQ_SPLIT_VAL;
    cbq_progress prog;
    cbq_progress_begin(&prog, "load slices", n_use, t->cfg->quiet || !t->writes);
    for (size_t v = 0; v < c.n && rc == CBQ_OK; v++) {
        if (c.v[v].split != CBQ_SPLIT_TRAIN && c.v[v].split != CBQ_SPLIT_VAL)
            continue;
        int complete = 1;
        for (size_t k = 0; k < K; k++)
            complete &= isfinite(target[v * K + k]) != 0;
        if (!complete) {
            res->skipped_volumes++;
        } else {
            int is_val = c.v[v].split == CBQ_SPLIT_VAL;
            size_t before = t->s.n;
            rc = add_volume(t, &c, &c.v[v], target + v * K, is_val, err);
            *(is_val ? &res->n_val_volumes : &res->n_train_volumes) += 1;
            *(is_val ? &res->n_val_slices : &res->n_train_slices) += t->s.n - before;
        }
        cbq_progress_step(&prog, 1);
    }
    cbq_progress_end(&prog);
    if (rc == CBQ_OK && res->n_train_slices == 0)
        rc = CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: no training slices (train split with consensus)",
                      cohort_csv);
    free(target);
    cbq_cohort_free(&c);
    return rc;
}

/* Volume-level validation metrics of the current weights. */
static int validate_volumes(train_run *t, double *mae, double *rho, cbq_error *err)
{
    slice_set *s = &t->s;
    size_t K = t->K, plane = s->C * s->H * s->W, batch = (size_t)t->cfg->train.batch;
    memset(t->vol_sum, 0, s->n_volumes * K * sizeof *t->vol_sum);
    memset(t->vol_count, 0, s->n_volumes * sizeof *t->vol_count);
    cbq_net_set_training(t->net, 0);
    for (size_t at = 0; at < t->n_val; at += batch) {
        size_t m = t->n_val - at < batch ? t->n_val - at : batch;
        for (size_t j = 0; j < m; j++)
            memcpy(t->buf + j * plane, s->x + t->val_idx[at + j] * plane, plane * sizeof(float));
        const float *y;
        CBQ_TRY(cbq_net_forward(t->net, t->buf, m, &y, err));
        for (size_t j = 0; j < m; j++) {
            size_t v = s->volume[t->val_idx[at + j]];
            t->vol_count[v]++;
            for (size_t k = 0; k < K; k++)
                t->vol_sum[v * K + k] += y[j * K + k];
        }
    }
    double *p = malloc((2 * s->n_volumes + 1) * sizeof *p), *c = p + s->n_volumes;
    if (!p)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < K; k++) {
        size_t n = 0;
        double abs_sum = 0;
        for (size_t v = 0; v < s->n_volumes; v++)
            if (s->vol_is_val[v] && t->vol_count[v]) {
                p[n] = t->vol_sum[v * K + k] / (double)t->vol_count[v];
                c[n] = s->vol_target[v * K + k];
                abs_sum += fabs(p[n] - c[n]);
                n++;
            }
        mae[k] = n ? abs_sum / (double)n : NAN;
        cbq_corr corr;
        int rc = cbq_spearman(p, c, n, &corr, err);
        rho[k] = rc == CBQ_OK ? corr.r : NAN;
    }
    free(p);
    return CBQ_OK;
}

static void log_epoch(void *ctx, const cbq_epoch_log *e)
{
    train_run *t = ctx;
    if (!t->writes)
        return;
    double mae[MAX_CAT], rho[MAX_CAT];
    for (size_t k = 0; k < t->K; k++)
        mae[k] = rho[k] = NAN;
    if (t->n_val && t->log_rc == CBQ_OK)
        t->log_rc = validate_volumes(t, mae, rho, &t->log_err);
    cbq_csv_writer *w = &t->log;
    cbq_csv_put_int(w, (long long)e->epoch);
    cbq_csv_put_double(w, e->train_loss);
    cbq_csv_put_double(w, e->val_loss);
    for (size_t k = 0; k < t->K; k++)
        cbq_csv_put_double(w, mae[k]);
    for (size_t k = 0; k < t->K; k++)
        cbq_csv_put_double(w, rho[k]);
    cbq_csv_put_double(w, e->lr);
    cbq_csv_put_double(w, e->seconds);
    cbq_csv_put_int(w, e->improved);
    if (t->log_rc == CBQ_OK)
        t->log_rc = cbq_csv_end_row(w, &t->log_err);
    cbq_progress_step(&t->prog, 1);
}

static int open_log(train_run *t, const char *log_csv, cbq_error *err)
{
    char names[3 + 2 * MAX_CAT + 3][80];
    const char *header[3 + 2 * MAX_CAT + 3];
    size_t n = 0;
    static const char *const first[] = {"epoch", "train_loss", "val_loss"};
    for (int i = 0; i < 3; i++)
        header[n++] = first[i];
    for (size_t k = 0; k < t->K; k++, n++) {
        snprintf(names[n], sizeof names[n], "val_mae_%s", t->cats[k]);
        header[n] = names[n];
    }
    for (size_t k = 0; k < t->K; k++, n++) {
        snprintf(names[n], sizeof names[n], "val_rho_%s", t->cats[k]);
        header[n] = names[n];
    }
    header[n++] = "lr";
    header[n++] = "seconds";
    header[n++] = "improved";
    return cbq_csv_writer_open(&t->log, log_csv, header, n, err);
}

static void trainer_config(const cbq_study_config *cfg, cbq_trainer_cfg *tc)
{
    cbq_trainer_defaults(tc);
    tc->epochs = (size_t)cfg->train.epochs;
    tc->batch_size = (size_t)cfg->train.batch;
    tc->patience = (size_t)cfg->train.patience;
    tc->seed = cfg->seed;
    cbq_optim_kind kind = CBQ_OPTIM_ADAM;
    cbq_optim_parse(cfg->train.optimizer, &kind);
    tc->optim = cbq_optim_defaults(kind);
    tc->optim.lr = cfg->train.lr;
    tc->optim.weight_decay = cfg->train.weight_decay;
    if (cfg->train.augment) {
        /* Flips keep left/right structures paired; small shifts and
         * intensity jitter mimic positioning and calibration variation. */
        tc->augment.hflip = 1;
        tc->augment.max_shift = cfg->train.input_size / 16;
        tc->augment.jitter_scale = 0.05;
        tc->augment.jitter_offset = 0.02;
    }
}

/* Starts the output layer's bias at the training volumes' mean scores, so
 * the first epochs learn differences between volumes instead of spending
 * themselves on moving every output from 0 to about 3. */
static void init_head_bias(train_run *t)
{
    const cbq_model_spec *spec = cbq_net_spec(t->net);
    long head = -1;
    for (size_t i = 0; i < spec->n_layers; i++)
        if (spec->layers[i].kind == CBQ_LAYER_LINEAR)
            head = (long)i;
    char name[CBQ_NAME_MAX + 8];
    cbq_tensor_view bias;
    if (head < 0)
        return;
    snprintf(name, sizeof name, "%s.bias", spec->layers[head].name);
    if (!cbq_net_tensor_find(t->net, name, &bias) || bias.numel != t->K)
        return;
    for (size_t k = 0; k < t->K; k++) {
        double sum = 0;
        size_t n = 0;
        for (size_t v = 0; v < t->s.n_volumes; v++)
            if (!t->s.vol_is_val[v]) {
                sum += t->s.vol_target[v * t->K + k];
                n++;
            }
        if (n)
            ((float *)bias.data)[k] = (float)(sum / (double)n);
    }
}

/* A model.json given as train.arch must rate the study's categories, in
 * its order: the outputs are what the study's tables and AE are keyed by. */
static int check_custom_outputs(const train_run *t, const cbq_model_spec *spec, cbq_error *err)
{
    const char *path = t->cfg->train.arch;
    if (spec->n_outputs != t->K)
        return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: outputs: %zu outputs, the study rates %zu categories",
                        path, spec->n_outputs, t->K);
    for (size_t k = 0; k < t->K; k++)
        if (strcmp(spec->outputs[k], t->cats[k]) != 0)
            return CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: outputs[%zu]: '%s', expected category '%s' "
                            "(the study's categories, in order)", path, k, spec->outputs[k], t->cats[k]);
    return CBQ_OK;
}

/* The architecture: a preset with the train.* options, or the model.json
 * file train.arch names (its own input size, window and channels). */
static int build_spec(const train_run *t, cbq_model_spec *spec, cbq_error *err)
{
    const cbq_study_config *cfg = t->cfg;
    if (cbq_study_arch_is_file(cfg->train.arch)) {
        CBQ_TRY(cbq_model_json_read(spec, cfg->train.arch, err));
        int rc = check_custom_outputs(t, spec, err);
        if (rc != CBQ_OK)
            cbq_model_spec_free(spec);
        return rc;
    }
    const char *outs[MAX_CAT];
    for (size_t k = 0; k < t->K; k++)
        outs[k] = t->cats[k];
    cbq_preset_opts po = {.width = cfg->train.width, .depth = cfg->train.depth,
                          .input = cfg->train.input_size, .hu_min = cfg->train.hu_min,
                          .hu_max = cfg->train.hu_max, .n_outputs = t->K, .outputs = outs};
    return cbq_preset_build(spec, cfg->train.arch, &po, err);
}

static int build_net(train_run *t, cbq_error *err)
{
    const cbq_study_config *cfg = t->cfg;
    cbq_model_spec spec;
    CBQ_TRY(build_spec(t, &spec, err));
    int rc = cbq_net_create_training(&t->net, &spec, (size_t)cfg->train.batch, cfg->seed, err);
    cbq_model_spec_free(&spec);
    if (rc != CBQ_OK)
        return rc;
    cbq_net_set_threads(t->net, cfg->threads);
    const cbq_input_spec *input = &cbq_net_spec(t->net)->input;
    t->s.H = (size_t)input->height;
    t->s.W = (size_t)input->width;
    t->s.C = cbq_input_channels(input);
    return CBQ_OK;
}

static int run_training(train_run *t, const char *model_dir, const char *log_csv,
                        cbq_study_train_result *res, cbq_error *err)
{
    slice_set *s = &t->s;
    size_t *train_idx = malloc((s->n + 1) * sizeof *train_idx);
    t->val_idx = malloc((s->n + 1) * sizeof *t->val_idx);
    t->buf = malloc((size_t)t->cfg->train.batch * s->C * s->H * s->W * sizeof *t->buf);
    t->vol_sum = malloc((s->n_volumes * t->K + 1) * sizeof *t->vol_sum);
    t->vol_count = malloc((s->n_volumes + 1) * sizeof *t->vol_count);
    int rc = train_idx && t->val_idx && t->buf && t->vol_sum && t->vol_count
                 ? CBQ_OK : CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    size_t n_train = 0;
    for (size_t i = 0; rc == CBQ_OK && i < s->n; i++) {
        if (s->vol_is_val[s->volume[i]])
            t->val_idx[t->n_val++] = i;
        else
            train_idx[n_train++] = i;
    }
    cbq_dataset ds = {.n = s->n, .height = s->H, .width = s->W, .channels = s->C, .n_outputs = t->K,
                      .slices = s->x, .targets = s->y, .volume = s->volume};
    cbq_trainer_cfg tc;
    trainer_config(t->cfg, &tc);
    tc.log = log_epoch;
    tc.log_ctx = t;
    /* Data-parallel only when every batch of the epoch has a slice for
     * every rank; else each rank trains alone (the same model, rank 0
     * writes), rather than refuse a study that runs as one process. */
    const cbq_dist alone = {.rank = 0, .size = 1};
    size_t ranks = (size_t)t->dist.size, batch = (size_t)t->cfg->train.batch;
    size_t last = n_train % batch;
    int shared = ranks > 1 && batch >= ranks && (last == 0 || last >= ranks);
    tc.dist = shared || !t->alone_if_unshared ? &t->dist : &alone;
    int log_open = 0;
    if (rc == CBQ_OK)
        init_head_bias(t);
    if (rc == CBQ_OK && t->writes)
        log_open = (rc = open_log(t, log_csv, err)) == CBQ_OK;
    cbq_train_result tr;
    if (rc == CBQ_OK) {
        cbq_progress_begin(&t->prog, "train", tc.epochs, t->cfg->quiet || !t->writes);
        rc = cbq_train(t->net, &ds, train_idx, n_train, t->val_idx, t->n_val, &tc, &tr, err);
        cbq_progress_end(&t->prog);
    }
    if (rc == CBQ_OK && t->log_rc != CBQ_OK) {
        rc = t->log_rc;
        if (err)
            *err = t->log_err;
    }
    if (rc == CBQ_OK && t->writes)
        rc = cbq_model_save(model_dir, t->net, err);
    if (rc == CBQ_OK && log_open)
        rc = cbq_csv_writer_commit(&t->log, err);
    else if (log_open)
        cbq_csv_writer_abort(&t->log);
    if (rc == CBQ_OK && t->perm_open) {
        t->perm_open = 0; /* a failed commit cleans up after itself */
        rc = cbq_csv_writer_commit(&t->perm, err);
    }
    if (rc == CBQ_OK) {
        res->epochs_run = tr.epochs_run;
        res->best_epoch = tr.best_epoch;
        res->best_val_loss = tr.best_val_loss;
        res->stopped_early = tr.stopped_early;
        res->ranks = (size_t)tc.dist->size;
        res->steps = tr.steps;
        res->allreduce_seconds = tr.allreduce_seconds;
    }
    free(train_idx);
    return rc;
}

/* cbq_study_train on the ranks of dist; alone_if_unshared: see
 * cbq_study_train_on (the train command refuses such a batch instead). */
static int train_on(const cbq_dist *dist, int alone_if_unshared, const cbq_study_config *cfg,
                    const char *cohort_csv, const char *consensus_csv, const char *model_dir,
                    const char *log_csv, cbq_study_train_result *res_out, cbq_error *err)
{
    cbq_study_train_result res_local;
    cbq_study_train_result *res = res_out ? res_out : &res_local;
    memset(res, 0, sizeof *res);
    train_run t;
    memset(&t, 0, sizeof t);
    t.cfg = cfg;
    t.dist = *dist;
    t.writes = t.dist.rank == 0;
    t.alone_if_unshared = alone_if_unshared;
    t.K = cbq_study_categories(cfg, t.cats, MAX_CAT);
    t.s.K = t.K;
    int rc = build_net(&t, err); /* first: its input spec says how to read the slices */
    if (rc == CBQ_OK)
        rc = load_slices(&t, cohort_csv, consensus_csv, model_dir, res, err);
    if (rc == CBQ_OK)
        rc = run_training(&t, model_dir, log_csv, res, err);
    if (t.perm_open)
        cbq_csv_writer_abort(&t.perm);
    if (t.net)
        cbq_net_free(t.net);
    free(t.val_idx);
    free(t.buf);
    free(t.vol_sum);
    free(t.vol_count);
    slice_set_free(&t.s);
    return rc;
}

int cbq_study_train(const cbq_study_config *cfg, const char *cohort_csv, const char *consensus_csv,
                    const char *model_dir, const char *log_csv, cbq_study_train_result *res_out,
                    cbq_error *err)
{
    cbq_dist job;
    cbq_dist_current(&job);
    return train_on(&job, 0, cfg, cohort_csv, consensus_csv, model_dir, log_csv, res_out, err);
}

int cbq_study_train_on(const cbq_dist *dist, const cbq_study_config *cfg, const char *cohort_csv,
                       const char *consensus_csv, const char *model_dir, const char *log_csv,
                       cbq_study_train_result *res_out, cbq_error *err)
{
    return train_on(dist, 1, cfg, cohort_csv, consensus_csv, model_dir, log_csv, res_out, err);
}
