/* cohort.c - the built-in cohort: N simulated CBCT volumes with labels,
 * simulated ratings and the ground truth behind them, written as the folder
 * formats.md describes (cohort.csv, ratings.csv, raters.csv, labels.json)
 * plus truth.csv and optionally preview.png.
 *
 * Volume v depends only on (seed, v): its parameters and noise come from
 * their own random streams, so the bytes do not depend on the thread count
 * or on how many volumes are made. */
#include "cbctiq/sim.h"
#include "cbctiq/atomic_file.h"
#include "cbctiq/mem_limit.h"
#include "cbctiq/nifti.h"
#include "cbctiq/progress.h"

#include <dirent.h>
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stream ids beyond any volume index. */
static const uint64_t STREAM_RATERS = (uint64_t)1 << 40;
static const uint64_t STREAM_SCORES = (uint64_t)2 << 40;
static const uint64_t STREAM_SPLIT = (uint64_t)3 << 40;

void cbq_cohort_defaults(cbq_cohort_options *o)
{
    memset(o, 0, sizeof *o);
    o->volumes = 64;
    o->size = 128;
    o->slices = 96;
    o->spacing = 2.0;
    o->seed = 1;
    o->n_test = 16;
    o->n_raters = 5;
}

/* ------------------------------------------------------------ text output */

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} text;

static void text_add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { t->oom = 1; return; }
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap ? 2 * t->cap : 4096) + (size_t)n;
        char *nb = realloc(t->buf, cap);
        if (!nb) { t->oom = 1; return; }
        t->buf = nb;
        t->cap = cap;
    }
}

/* The one place CSV and JSON text reaches the disk (values never need
 * quoting here); a shared CSV writer can replace it. */
static int write_text(const char *dir, const char *name, text *t, cbq_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (t->oom) {
        free(t->buf);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory while formatting", path);
    }
    cbq_atomic_file af;
    int rc = cbq_atomic_open(&af, path, err);
    if (rc == CBQ_OK) {
        if (t->len && fwrite(t->buf, 1, t->len, af.fp) != t->len) {
            cbq_atomic_abort(&af);
            rc = CBQ_FAIL(err, CBQ_ERR_IO, "%s: write failed", path);
        } else {
            rc = cbq_atomic_commit(&af, err);
        }
    }
    free(t->buf);
    memset(t, 0, sizeof *t);
    return rc;
}

/* ------------------------------------------------------------ per volume */

typedef struct {
    cbq_case_params cp;
    uint64_t noise_seed;
    cbq_fom fom[CBQ_CAT_COUNT];
    double q[CBQ_CAT_COUNT];
    size_t k_level[3];      /* slices: mandible, parotid, larynx */
    cbq_volume thumbs;      /* those three image slices (nx x ny x 3) */
    char anatomy[4096];     /* "analytic" or the CT it came from */
} volume_record;

static size_t best_slice(const cbq_volume *lab, int l1, int l2)
{
    size_t best = lab->nz / 2, best_n = 0, plane = lab->nx * lab->ny;
    for (size_t k = 0; k < lab->nz; k++) {
        size_t n = 0;
        for (size_t v = 0; v < plane; v++) {
            int l = (int)lab->data[k * plane + v];
            n += l == l1 || l == l2;
        }
        if (n > best_n) {
            best_n = n;
            best = k;
        }
    }
    return best;
}

/* Real-CT subjects: names of subject folders (sorted) holding ct.nii.gz. */
typedef struct {
    char (*names)[256];
    size_t n;
} subject_list;

static int cmp_names(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static int list_subjects(const char *dir, subject_list *sl, cbq_error *err)
{
    memset(sl, 0, sizeof *sl);
    DIR *d = opendir(dir);
    if (!d)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open the anatomy folder", dir);
    struct dirent *e;
    size_t cap = 0;
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        if (e->d_name[0] == '.' || strlen(e->d_name) >= 256)
            continue;
        snprintf(path, sizeof path, "%s/%s/ct.nii.gz", dir, e->d_name);
        FILE *fp = fopen(path, "rb");
        if (!fp)
            continue;
        fclose(fp);
        if (sl->n == cap) {
            cap = cap ? 2 * cap : 64;
            void *nn = realloc(sl->names, cap * sizeof *sl->names);
            if (!nn) {
                closedir(d);
                free(sl->names);
                return CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory listing subjects", dir);
            }
            sl->names = nn;
        }
        snprintf(sl->names[sl->n++], 256, "%s", e->d_name);
    }
    closedir(d);
    if (sl->n == 0)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: no subject folder with ct.nii.gz and oar_labels.nii.gz", dir);
    qsort(sl->names, sl->n, sizeof *sl->names, cmp_names);
    return CBQ_OK;
}

/* Simulates volume v from the analytic phantom or from real CT anatomy. */
static int simulate_case(const cbq_cohort_options *o, const subject_list *sl, size_t v, volume_record *rec,
                         cbq_volume *img, cbq_volume *ref, cbq_volume *lab, cbq_error *err)
{
    if (!o->anatomy_ct && !o->anatomy_dir)
        return cbq_case_simulate(&rec->cp, o->size, o->slices, o->spacing, rec->noise_seed, img, ref, lab,
                                 err);
    char ct[4096], labels[4096];
    if (o->anatomy_dir) {
        const char *name = sl->names[v % sl->n];
        snprintf(ct, sizeof ct, "%s/%s/ct.nii.gz", o->anatomy_dir, name);
        snprintf(labels, sizeof labels, "%s/%s/oar_labels.nii.gz", o->anatomy_dir, name);
    } else {
        snprintf(ct, sizeof ct, "%s", o->anatomy_ct);
        snprintf(labels, sizeof labels, "%s", o->anatomy_labels ? o->anatomy_labels : "");
    }
    snprintf(rec->anatomy, sizeof rec->anatomy, "%s", ct);
    cbq_volume hu, hl;
    CBQ_TRY(cbq_anatomy_from_ct(ct, labels, o->size, o->slices, o->spacing, &hu, &hl, err));
    int rc = cbq_case_simulate_anatomy(&rec->cp, &hu, &hl, rec->noise_seed, img, ref, lab, err);
    cbq_volume_free(&hu);
    cbq_volume_free(&hl);
    return rc;
}

static int simulate_one(const cbq_cohort_options *o, const subject_list *sl, size_t v, volume_record *rec,
                        cbq_error *err)
{
    cbq_rng rng;
    cbq_rng_stream(&rng, o->seed, v);
    cbq_case_draw(&rec->cp, o->size, o->slices, o->spacing, &rng);
    rec->noise_seed = cbq_rng_u64(&rng);
    snprintf(rec->anatomy, sizeof rec->anatomy, "analytic");
    cbq_volume img, ref, lab;
    CBQ_TRY(simulate_case(o, sl, v, rec, &img, &ref, &lab, err));
    int rc = CBQ_OK;
    for (int c = 0; c < CBQ_CAT_COUNT && rc == CBQ_OK; c++)
        rc = cbq_fom_measure(&img, &ref, &lab, c, &rec->fom[c], err);
    if (rc == CBQ_OK)
        cbq_latent_quality(rec->fom, rec->q);
    char path[4096], id[32];
    snprintf(id, sizeof id, "sim%03zu", v);
    if (rc == CBQ_OK) {
        snprintf(path, sizeof path, "%s/%s.nii.gz", o->out_dir, id);
        rc = cbq_nifti_write(path, &img, CBQ_NIFTI_INT16, err);
    }
    if (rc == CBQ_OK) {
        snprintf(path, sizeof path, "%s/%s_labels.nii.gz", o->out_dir, id);
        rc = cbq_nifti_write(path, &lab, CBQ_NIFTI_UINT8, err);
    }
    if (rc == CBQ_OK && o->preview) {
        rec->k_level[0] = best_slice(&lab, CBQ_LAB_TEETH, CBQ_LAB_METAL);
        rec->k_level[1] = best_slice(&lab, CBQ_LAB_SUBMAND_L, CBQ_LAB_SUBMAND_R);
        rec->k_level[2] = best_slice(&lab, CBQ_LAB_LARYNX, CBQ_LAB_THYROID_CARTILAGE);
        rc = cbq_volume_alloc(&rec->thumbs, img.nx, img.ny, 3, img.spacing, 0, err);
        for (size_t t = 0; t < 3 && rc == CBQ_OK; t++)
            memcpy(cbq_volume_at(&rec->thumbs, 0, 0, t), cbq_volume_at(&img, 0, 0, rec->k_level[t]),
                   img.nx * img.ny * sizeof(float));
    }
    cbq_volume_free(&img);
    cbq_volume_free(&ref);
    cbq_volume_free(&lab);
    return rc;
}

/* ------------------------------------------------------------- tables */

static int write_labels_json(const cbq_cohort_options *o, cbq_error *err)
{
    text t = {0};
    text_add(&t, "{");
    for (int l = 1; l < CBQ_LAB_COUNT; l++)
        text_add(&t, "%s\"%d\": \"%s\"", l > 1 ? ", " : "", l, cbq_sim_label_name(l));
    text_add(&t, "}\n");
    return write_text(o->out_dir, "labels.json", &t, err);
}

static int write_cohort_csv(const cbq_cohort_options *o, cbq_error *err)
{
    /* Split: a seeded shuffle; the first n_test are test, the next eighth val. */
    size_t n = o->volumes, *order = malloc(n * sizeof(size_t));
    char *split = malloc(n);
    if (!order || !split) {
        free(order);
        free(split);
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "cohort.csv: out of memory");
    }
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    cbq_rng rng;
    cbq_rng_stream(&rng, o->seed, STREAM_SPLIT);
    cbq_rng_shuffle_size(&rng, order, n);
    size_t n_test = o->n_test < n ? o->n_test : n / 4;
    size_t n_val = (n - n_test) / 6;
    for (size_t i = 0; i < n; i++)
        split[order[i]] = i < n_test ? 't' : i < n_test + n_val ? 'v' : 'r';
    text t = {0};
    text_add(&t, "volume_id,path,mask,split\n");
    for (size_t v = 0; v < n; v++)
        text_add(&t, "sim%03zu,sim%03zu.nii.gz,sim%03zu_labels.nii.gz,%s\n", v, v, v,
                 split[v] == 't' ? "test" : split[v] == 'v' ? "val" : "train");
    free(order);
    free(split);
    return write_text(o->out_dir, "cohort.csv", &t, err);
}

static int write_ratings(const cbq_cohort_options *o, const volume_record *recs, cbq_error *err)
{
    cbq_rater *raters = calloc(o->n_raters, sizeof(cbq_rater));
    if (!raters)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "ratings: out of memory");
    cbq_rng rng;
    cbq_rng_stream(&rng, o->seed, STREAM_RATERS);
    cbq_raters_draw(raters, o->n_raters, &rng);
    text t = {0};
    text_add(&t, "rater,weight,bias,slope,spread\n");
    for (size_t r = 0; r < o->n_raters; r++)
        text_add(&t, "%s,%.2f,%.4f,%.4f,%.4f\n", raters[r].name, raters[r].weight, raters[r].bias,
                 raters[r].slope, raters[r].spread);
    int rc = write_text(o->out_dir, "raters.csv", &t, err);
    if (rc == CBQ_OK) {
        text_add(&t, "volume_id,rater,category,score\n");
        for (size_t v = 0; v < o->volumes; v++) {
            cbq_rng_stream(&rng, o->seed, STREAM_SCORES + v);
            for (size_t r = 0; r < o->n_raters; r++)
                for (int c = 0; c < CBQ_CAT_COUNT; c++)
                    text_add(&t, "sim%03zu,%s,%s,%d\n", v, raters[r].name, cbq_sim_category_name(c),
                             cbq_rater_score(&raters[r], recs[v].q[c], &rng));
        }
        rc = write_text(o->out_dir, "ratings.csv", &t, err);
    }
    free(raters);
    return rc;
}

static int write_truth(const cbq_cohort_options *o, const volume_record *recs, cbq_error *err)
{
    text t = {0};
    text_add(&t, "volume_id,anatomy,noise_seed,scale,width,depth,shift_x,shift_y,shift_z,flexion_deg,yaw_deg,"
                 "parotid_hu,submandibular_hu,cartilage_hu,n_fillings,n_crowns,swallow_mm,"
                 "scan,fan,n_proj,arc_deg,start_deg,nu,nv,du,dv,u_offset,"
                 "i0,scatter,scatter_sigma,bh,blur_px,lag,ring_sd,motion_frac,motion_start,swallow,"
                 "head_shift_x,head_shift_y,head_shift_z,cupping");
    for (int c = 0; c < CBQ_CAT_COUNT; c++) {
        const char *n = cbq_sim_category_name(c);
        text_add(&t, ",%s_noise,%s_contrast,%s_contrast_ref,%s_cnr,%s_streak,%s_sharpness,%s_latent", n,
                 n, n, n, n, n, n);
    }
    text_add(&t, "\n");
    for (size_t v = 0; v < o->volumes; v++) {
        const volume_record *r = &recs[v];
        const cbq_phantom_params *a = &r->cp.anatomy;
        const cbq_physics *p = &r->cp.physics;
        const cbq_cb_geometry *g = &r->cp.geometry;
        text_add(&t, "sim%03zu,%s,%llu,%.4f,%.4f,%.4f,%.2f,%.2f,%.2f,%.2f,%.2f,%.1f,%.1f,%.1f,%d,%d,%.2f,",
                 v, r->anatomy, (unsigned long long)r->noise_seed, a->scale, a->width, a->depth, a->shift[0],
                 a->shift[1], a->shift[2], a->flexion * 180.0 / CBQ_PI, a->yaw * 180.0 / CBQ_PI,
                 a->parotid_hu, a->submand_hu, a->cartilage_hu, a->n_fillings, a->n_crowns, a->swallow_mm);
        text_add(&t, "%s,%s,%zu,%.2f,%.2f,%zu,%zu,%.4f,%.4f,%.2f,", g->short_scan ? "short" : "full",
                 r->cp.half_fan ? "half" : "full", g->n_proj, g->arc * 180.0 / CBQ_PI,
                 g->start * 180.0 / CBQ_PI, g->nu, g->nv, g->du, g->dv, g->u_offset);
        text_add(&t, "%.1f,%.4f,%.2f,%.4f,%.3f,%.4f,%.5f,%.3f,%.3f,%.3f,%.2f,%.2f,%.2f,%.2f", p->i0,
                 p->scatter, p->scatter_sigma, p->bh, p->blur_px, p->lag, p->ring_sd, p->motion_frac,
                 p->motion_start, p->swallow, p->shift_mm[0], p->shift_mm[1], p->shift_mm[2],
                 r->fom[CBQ_CAT_OVERALL].cupping);
        for (int c = 0; c < CBQ_CAT_COUNT; c++) {
            const cbq_fom *f = &r->fom[c];
            text_add(&t, ",%.2f,%.2f,%.2f,%.3f,%.2f,%.4f,%.4f", f->noise, f->contrast, f->contrast_ref,
                     f->cnr, f->streak, f->sharpness, r->q[c]);
        }
        text_add(&t, "\n");
    }
    return write_text(o->out_dir, "truth.csv", &t, err);
}

/* Rows: the lowest, median and highest overall quality; columns: teeth,
 * submandibular and larynx levels. */
static int write_preview(const cbq_cohort_options *o, const volume_record *recs, cbq_error *err)
{
    size_t n = o->volumes, lo = 0, hi = 0;
    for (size_t v = 1; v < n; v++) {
        if (recs[v].q[CBQ_CAT_OVERALL] < recs[lo].q[CBQ_CAT_OVERALL]) lo = v;
        if (recs[v].q[CBQ_CAT_OVERALL] > recs[hi].q[CBQ_CAT_OVERALL]) hi = v;
    }
    size_t mid = lo;
    double target = 0.5 * (recs[lo].q[CBQ_CAT_OVERALL] + recs[hi].q[CBQ_CAT_OVERALL]);
    for (size_t v = 0; v < n; v++)
        if (fabs(recs[v].q[CBQ_CAT_OVERALL] - target) < fabs(recs[mid].q[CBQ_CAT_OVERALL] - target))
            mid = v;
    size_t rows[3] = {lo, mid, hi};
    cbq_preview_tile tiles[9];
    for (size_t r = 0; r < 3; r++)
        for (size_t c = 0; c < 3; c++)
            tiles[3 * r + c] = (cbq_preview_tile){&recs[rows[r]].thumbs, c};
    char path[4096];
    snprintf(path, sizeof path, "%s/preview.png", o->out_dir);
    return cbq_sim_preview_png(path, tiles, 9, 3, -400.0, 600.0, err);
}

/* Volumes [begin, end): this rank's share (all of them for one process). */
static int simulate_block(const cbq_cohort_options *o, const subject_list *sl, size_t begin, size_t end,
                          volume_record *recs, int quiet, cbq_error *err)
{
    cbq_progress prog;
    cbq_progress_begin(&prog, "simulate", end - begin, o->quiet || quiet);
    int rc = CBQ_OK;
    for (size_t v = begin; v < end && rc == CBQ_OK; v++) {
        rc = simulate_one(o, sl, v, &recs[v], err);
        if (rc != CBQ_OK)
            cbq_error_prefix(err, "volume sim%03zu: ", v);
        cbq_progress_step(&prog, 1);
    }
    cbq_progress_end(&prog);
    return rc;
}

/* A record travels as its bytes (the same binary on every rank lays the
 * struct out the same way) followed by its preview slices when asked for;
 * the thumbs pointer in the copied bytes is replaced on arrival. */
static size_t thumbs_floats(const cbq_cohort_options *o)
{
    return o->preview ? o->size * o->size * 3 : 0;
}

static int gather_records(const cbq_cohort_options *o, const cbq_dist *dist, size_t begin, size_t end,
                          volume_record *recs, cbq_error *err)
{
    size_t per = sizeof(volume_record) + thumbs_floats(o) * sizeof(float);
    char *mine = malloc((end - begin) * per + 1), *p = mine;
    if (!mine)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "simulate: out of memory packing %zu records", end - begin);
    for (size_t v = begin; v < end; v++, p += per) {
        memcpy(p, &recs[v], sizeof(volume_record));
        if (thumbs_floats(o))
            memcpy(p + sizeof(volume_record), recs[v].thumbs.data, thumbs_floats(o) * sizeof(float));
    }
    void *all = NULL;
    size_t all_len = 0;
    int rc = cbq_dist_gather_bytes(dist, mine, (size_t)(p - mine), &all, &all_len, err);
    free(mine);
    if (rc != CBQ_OK || dist->rank != 0)
        return rc;
    if (all_len != o->volumes * per) {
        free(all);
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "simulate: gathered %zu bytes of records, expected %zu", all_len,
                        o->volumes * per);
    }
    p = all;
    for (size_t v = 0; v < o->volumes && rc == CBQ_OK; v++, p += per) {
        if (v >= begin && v < end)
            continue; /* rank 0's own, already in place */
        memcpy(&recs[v], p, sizeof(volume_record));
        memset(&recs[v].thumbs, 0, sizeof recs[v].thumbs);
        if (!thumbs_floats(o))
            continue;
        const cbq_volume *t = (const cbq_volume *)(p + offsetof(volume_record, thumbs));
        rc = cbq_volume_alloc(&recs[v].thumbs, t->nx, t->ny, t->nz, t->spacing, 0, err);
        if (rc == CBQ_OK)
            memcpy(recs[v].thumbs.data, p + sizeof(volume_record), thumbs_floats(o) * sizeof(float));
    }
    free(all);
    return rc;
}

static int write_tables(const cbq_cohort_options *o, const volume_record *recs, cbq_error *err)
{
    CBQ_TRY(write_labels_json(o, err));
    CBQ_TRY(write_cohort_csv(o, err));
    CBQ_TRY(write_ratings(o, recs, err));
    CBQ_TRY(write_truth(o, recs, err));
    if (o->preview)
        CBQ_TRY(write_preview(o, recs, err));
    return CBQ_OK;
}

int cbq_cohort_simulate(const cbq_cohort_options *o, cbq_error *err)
{
    CBQ_CHECK_ARG(err, o->out_dir && o->out_dir[0], "simulate: no output folder given");
    CBQ_CHECK_ARG(err, o->volumes >= 1 && o->volumes <= 100000, "simulate: %zu volumes, expected 1..100000",
                  o->volumes);
    CBQ_CHECK_ARG(err, o->size >= 32 && o->size <= 1024 && o->slices >= 8 && o->slices <= 1024,
                  "simulate: grid %zu x %zu x %zu, expected 32..1024 in-plane and 8..1024 slices", o->size,
                  o->size, o->slices);
    CBQ_CHECK_ARG(err, o->spacing >= 0.25 && o->spacing <= 8.0, "simulate: spacing %g mm, expected 0.25..8",
                  o->spacing);
    CBQ_CHECK_ARG(err, o->n_raters >= 1 && o->n_raters <= 100, "simulate: %zu raters, expected 1..100",
                  o->n_raters);
    CBQ_CHECK_ARG(err, !(o->anatomy_ct && o->anatomy_dir), "simulate: give --anatomy or --anatomy-cohort, not both");
    CBQ_CHECK_ARG(err, !o->anatomy_ct || o->anatomy_labels,
                  "simulate: --anatomy %s needs --labels (mandible and larynx place the neck)", o->anatomy_ct);
    /* Measured peak: ~56 bytes per voxel of one volume (phantom, labels,
     * projections, reconstruction, per-thread buffers) above ~16 MiB; refuse
     * what cannot fit before creating the folder. */
    size_t voxels = o->size * o->size * o->slices;
    char what[96];
    snprintf(what, sizeof what, "simulating %zux%zux%zu volumes", o->size, o->size, o->slices);
    CBQ_TRY(cbq_mem_check((uint64_t)voxels * 64u + (32u << 20), what, err));
    subject_list sl = {0};
    if (o->anatomy_dir)
        CBQ_TRY(list_subjects(o->anatomy_dir, &sl, err));
    cbq_dist alone = {.rank = 0, .size = 1, .mpi = 0};
    const cbq_dist *dist = o->dist ? o->dist : &alone;
    int mk = cbq_mkdir_p(o->out_dir, err);
    volume_record *recs = mk == CBQ_OK ? calloc(o->volumes, sizeof(volume_record)) : NULL;
    if (!recs) {
        free(sl.names);
        return mk != CBQ_OK ? mk : CBQ_FAIL(err, CBQ_ERR_NOMEM, "simulate: out of memory for %zu records", o->volumes);
    }
    size_t begin, end;
    cbq_dist_block(dist, o->volumes, &begin, &end);
    int rc = simulate_block(o, &sl, begin, end, recs, dist->rank != 0, err);
    if (rc == CBQ_OK && dist->size > 1)
        rc = gather_records(o, dist, begin, end, recs, err);
    if (rc == CBQ_OK && dist->rank == 0)
        rc = write_tables(o, recs, err);
    for (size_t v = 0; v < o->volumes; v++)
        cbq_volume_free(&recs[v].thumbs);
    free(recs);
    free(sl.names);
    return rc;
}
