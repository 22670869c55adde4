/* phantom.c - the analytic head-and-neck phantom.
 *
 * The anatomy is a list of primitives (ellipsoids, elliptic cylinders,
 * superquadrics and cut elliptic shells for horseshoe bones) in world mm,
 * painted in order: each later primitive replaces what lies under it in
 * proportion to its occupancy of the voxel. Occupancy comes from a signed
 * distance estimate d = (q - 1) / |grad q| of the primitive's implicit
 * function q and a one-voxel linear ramp, which gives partial-volume edges
 * without supersampling. Subjects vary in size, shape, position, neck
 * flexion, patient rotation, tissue values and dental metal. It is not an
 * atlas: positions and HU values are textbook-typical, not measured. */
#include "cbctiq/sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const label_names[CBQ_LAB_COUNT] = {
    "background", "parotid_l", "parotid_r", "submandibular_l", "submandibular_r", "larynx",
    "mandible", "teeth", "maxilla", "vertebra", "spinal_canal", "airway", "thyroid_cartilage",
    "metal"};

const char *cbq_sim_label_name(int label)
{
    return label >= 0 && label < CBQ_LAB_COUNT ? label_names[label] : NULL;
}

typedef enum { SH_ELLIPSOID, SH_CYLINDER, SH_SUPERQ, SH_SHELL } shape_kind;

enum { G_HEAD = 1, G_LARYNX = 2 };  /* groups: follow flexion; move when swallowing */
enum { KEEP_LABEL = -1 };

typedef struct {
    shape_kind kind;
    double c[3], r[3];     /* centre and semi-axes (cylinder, shell: a, b, half-height) */
    double rot[3][3];      /* world -> local: local = rot (x - c) */
    double expo;           /* superquadric exponent */
    double thick, cut;     /* shell: wall thickness; keeps local y < cut */
    float hu;
    int label, group;
} prim;

typedef struct {
    prim *p;
    size_t n, cap;
    int overflow;          /* a primitive did not fit: a bug, reported */
    cbq_rng jit;           /* per-structure jitter */
    const cbq_phantom_params *pp;
} prim_list;

/* ------------------------------------------------------------ occupancy */

static double ramp(double d, double h) /* d: signed distance, inside < 0 */
{
    double o = 0.5 - d / h;
    return o < 0 ? 0 : o > 1 ? 1 : o;
}

static double ellipse2_occ(double x, double y, double a, double b, double h)
{
    double ux = x / a, uy = y / b, q = sqrt(ux * ux + uy * uy);
    if (q < 1e-9)
        return 1.0;
    double gx = ux / a, gy = uy / b, gn = sqrt(gx * gx + gy * gy) / q;
    return ramp((q - 1.0) / gn, h);
}

static double prim_occ(const prim *p, const double x[3], double h)
{
    double d[3] = {x[0] - p->c[0], x[1] - p->c[1], x[2] - p->c[2]}, l[3];
    for (int a = 0; a < 3; a++)
        l[a] = p->rot[a][0] * d[0] + p->rot[a][1] * d[1] + p->rot[a][2] * d[2];
    switch (p->kind) {
    case SH_ELLIPSOID: {
        double u[3], q = 0, g = 0;
        for (int a = 0; a < 3; a++) {
            u[a] = l[a] / p->r[a];
            q += u[a] * u[a];
            g += (u[a] / p->r[a]) * (u[a] / p->r[a]);
        }
        q = sqrt(q);
        if (q < 1e-9)
            return 1.0;
        return ramp((q - 1.0) / (sqrt(g) / q), h);
    }
    case SH_SUPERQ: {
        double n = p->expo, s = 0, g = 0, t[3];
        for (int a = 0; a < 3; a++) {
            t[a] = fabs(l[a]) / p->r[a];
            s += pow(t[a], n);
        }
        if (s < 1e-12)
            return 1.0;
        double q = pow(s, 1.0 / n), qn = pow(q, 1.0 - n);
        for (int a = 0; a < 3; a++) {
            double ga = qn * pow(t[a], n - 1.0) / p->r[a];
            g += ga * ga;
        }
        return ramp((q - 1.0) / sqrt(g), h);
    }
    case SH_CYLINDER:
        return ellipse2_occ(l[0], l[1], p->r[0], p->r[1], h) * ramp(fabs(l[2]) - p->r[2], h);
    case SH_SHELL: {
        double o = ellipse2_occ(l[0], l[1], p->r[0], p->r[1], h);
        if (o <= 0)
            return 0;
        o *= 1.0 - ellipse2_occ(l[0], l[1], p->r[0] - p->thick, p->r[1] - p->thick, h);
        return o * ramp(fabs(l[2]) - p->r[2], h) * ramp(l[1] - p->cut, h);
    }
    }
    return 0.0;
}

/* Radius of a ball around the centre that holds the primitive. */
static double prim_extent(const prim *p)
{
    if (p->kind == SH_ELLIPSOID)
        return fmax(p->r[0], fmax(p->r[1], p->r[2]));
    return sqrt(p->r[0] * p->r[0] + p->r[1] * p->r[1] + p->r[2] * p->r[2]);
}

/* ------------------------------------------------------------- building */

static void rot_set(double m[3][3], double about_x, double about_z)
{
    /* local = Rz(-about_z) Rx(-about_x) world: the shape is rotated by
     * about_x then about_z in the world. */
    double cx = cos(about_x), sx = sin(about_x), cz = cos(about_z), sz = sin(about_z);
    double rx[3][3] = {{1, 0, 0}, {0, cx, sx}, {0, -sx, cx}};
    double rz[3][3] = {{cz, sz, 0}, {-sz, cz, 0}, {0, 0, 1}};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) {
            m[i][j] = 0;
            for (int k = 0; k < 3; k++)
                m[i][j] += rx[i][k] * rz[k][j];
        }
}

/* Adds a primitive in the subject's frame: scaled, placed and jittered by
 * `jit` (relative size sd), with optional tilt about X. Returns it. */
static prim *add(prim_list *L, shape_kind kind, double cx, double cy, double cz, double a, double b,
                 double c, float hu, int label, int group)
{
    if (L->n == L->cap) {
        L->overflow = 1;
        return NULL;
    }
    prim *p = &L->p[L->n++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->c[0] = cx;
    p->c[1] = cy;
    p->c[2] = cz;
    p->r[0] = a;
    p->r[1] = b;
    p->r[2] = c;
    p->hu = hu;
    p->label = label;
    p->group = group;
    p->expo = 2.0;
    rot_set(p->rot, 0.0, 0.0);
    return p;
}

/* Random size factor around 1 from the subject's jitter stream. */
static double jit(prim_list *L, double sd)
{
    return 1.0 + sd * cbq_rng_normal(&L->jit);
}

static prim *shell(prim_list *L, double cx, double cy, double cz, double a, double b, double hz,
                   double thick, double cut, float hu, int label, int group)
{
    prim *p = add(L, SH_SHELL, cx, cy, cz, a, b, hz, hu, label, group);
    if (p) {
        p->thick = thick;
        p->cut = cut;
    }
    return p;
}

static void build_body(prim_list *L)
{
    /* Outline, then subcutaneous fat and muscle as inset copies. */
    static const struct { double inset; float hu; } layers[] = {{0, 20}, {2.5, -105}, {9, 45}};
    for (size_t i = 0; i < 3; i++) {
        double t = layers[i].inset;
        add(L, SH_CYLINDER, 0, 6, -45, 58 - t, 52 - t, 70 - t, layers[i].hu, 0, 0);
        add(L, SH_ELLIPSOID, 0, -6, 60, 71 - t, 86 - t, 75 - t, layers[i].hu, 0, G_HEAD);
    }
    /* Fat planes of the neck around the vessels and under the mandible. */
    for (int s = -1; s <= 1; s += 2) {
        add(L, SH_ELLIPSOID, s * 27, 6, -30, 12, 11, 55, -95, 0, 0);
        add(L, SH_CYLINDER, s * 22, 2, -30, 3.5 * jit(L, 0.1), 3.5, 65, 40, 0, 0);
        add(L, SH_CYLINDER, s * 29, 8, -30, 5.5 * jit(L, 0.15), 4.5, 65, 38, 0, 0);
        prim *scm = add(L, SH_ELLIPSOID, s * 42, 2, -25, 9, 13, 60, 52, 0, 0);
        if (scm)
            rot_set(scm->rot, 0.0, s * 0.5);
    }
}

static void build_spine(prim_list *L)
{
    for (double z = -100; z < 45; z += 19) {
        add(L, SH_CYLINDER, 0, 18, z, 12, 9.5, 7.5, 800, CBQ_LAB_VERTEBRA, 0);
        add(L, SH_CYLINDER, 0, 18, z, 10.5, 8, 6.2, 240, CBQ_LAB_VERTEBRA, 0);
        add(L, SH_CYLINDER, 0, 18, z + 9.5, 11, 8.5, 2.0, 90, 0, 0); /* disc */
        prim *arch = shell(L, 0, 36, z, 15, 13, 6, 4.5, 2, 750, CBQ_LAB_VERTEBRA, 0);
        if (arch)
            rot_set(arch->rot, 0.0, CBQ_PI);
        add(L, SH_ELLIPSOID, 0, 56, z - 2, 4, 11, 5, 700, CBQ_LAB_VERTEBRA, 0);
    }
    add(L, SH_CYLINDER, 0, 36, -30, 8, 7.5, 80, 30, CBQ_LAB_SPINAL_CANAL, 0);
}

static void build_larynx(prim_list *L, const cbq_phantom_params *pp)
{
    const int g = G_LARYNX;
    add(L, SH_ELLIPSOID, 0, -20, -22, 19 * jit(L, 0.08), 16, 21, 42, CBQ_LAB_LARYNX, g);
    shell(L, 0, -12, -20, 21, 20, 13, 2.5, -5, (float)pp->cartilage_hu, CBQ_LAB_THYROID_CARTILAGE, g);
    shell(L, 0, -10, -44, 13, 13, 4, 2.5, 40, (float)pp->cartilage_hu, CBQ_LAB_THYROID_CARTILAGE, g);
    add(L, SH_ELLIPSOID, 0, -17, -23, 6.5 * jit(L, 0.1), 8.5, 21, -1000, KEEP_LABEL, g);
    shell(L, 0, -8, -1, 22, 28, 2.5, 3, -8, 650, 0, g); /* hyoid */
    /* Trachea and thyroid gland below the larynx. */
    add(L, SH_CYLINDER, 0, -19, -80, 9 * jit(L, 0.08), 8, 35, -1000, CBQ_LAB_AIRWAY, 0);
    for (int s = -1; s <= 1; s += 2)
        add(L, SH_ELLIPSOID, s * 16, -14, -64, 8, 10, 14, 90, 0, 0);
    /* Pharynx from the larynx up to the nasopharynx. */
    double pa = 13 * jit(L, 0.12), pb = 6.5 * jit(L, 0.15);
    add(L, SH_CYLINDER, 0, -2, 18, pa, pb, 22, -1000, CBQ_LAB_AIRWAY, 0);
    add(L, SH_ELLIPSOID, 0, -8, -2, 9, 6, 8, -1000, CBQ_LAB_AIRWAY, g);
    add(L, SH_ELLIPSOID, 0, 1, 58, 11, 7, 14, -1000, CBQ_LAB_AIRWAY, G_HEAD);
}

static void build_glands(prim_list *L, const cbq_phantom_params *pp)
{
    for (int s = -1; s <= 1; s += 2) {
        int left = s > 0;
        add(L, SH_ELLIPSOID, s * 33, -26, 3, 16, 19, 14, -95, 0, G_HEAD); /* submandibular fat */
        /* Jitter drawn one by one: argument evaluation order is unspecified. */
        double sx = 34 * jit(L, 0.04), sa = 10 * jit(L, 0.12), sb = 13 * jit(L, 0.12);
        double sc = 10 * jit(L, 0.1);
        add(L, SH_ELLIPSOID, s * sx, -27, 4, sa, sb, sc, (float)pp->submand_hu,
            left ? CBQ_LAB_SUBMAND_L : CBQ_LAB_SUBMAND_R, G_HEAD);
        add(L, SH_ELLIPSOID, s * 52, 10, 44, 16, 24, 26, -80, 0, G_HEAD); /* parotid fat */
        double px = 52 * jit(L, 0.03), pa = 11 * jit(L, 0.12), pb = 18 * jit(L, 0.12);
        double pc = 21 * jit(L, 0.1);
        prim *par = add(L, SH_ELLIPSOID, s * px, 10, 45, pa, pb, pc, (float)pp->parotid_hu,
                        left ? CBQ_LAB_PAROTID_L : CBQ_LAB_PAROTID_R, G_HEAD);
        if (par)
            rot_set(par->rot, 0.15, -s * 0.2);
        add(L, SH_ELLIPSOID, s * 53, -10, 44, 7, 13, 20, 55, 0, G_HEAD); /* masseter */
    }
}

static void build_jaws(prim_list *L)
{
    const int g = G_HEAD;
    /* Mandible: cortical horseshoe with marrow, and the two rami. */
    shell(L, 0, 5, 20, 47, 62, 13, 10, 2, 1500, CBQ_LAB_MANDIBLE, g);
    shell(L, 0, 5, 20, 44.5, 59.5, 10.5, 5, 0, 350, CBQ_LAB_MANDIBLE, g);
    for (int s = -1; s <= 1; s += 2) {
        prim *r = add(L, SH_SUPERQ, s * 43, 12, 47, 4.5, 13, 22, 1400, CBQ_LAB_MANDIBLE, g);
        prim *m = add(L, SH_SUPERQ, s * 43, 12, 47, 2.2, 10.5, 19.5, 350, CBQ_LAB_MANDIBLE, g);
        if (r && m) {
            r->expo = m->expo = 4.0;
            rot_set(r->rot, -0.25, 0.0);
            rot_set(m->rot, -0.25, 0.0);
        }
    }
    /* Maxilla: alveolar arch and hard palate; sinuses and nasal cavity above. */
    shell(L, 0, 5, 56, 45, 60, 5, 10, 0, 1100, CBQ_LAB_MAXILLA, g);
    add(L, SH_CYLINDER, 0, -18, 60, 30, 32, 2.5, 1100, CBQ_LAB_MAXILLA, g);
    for (int s = -1; s <= 1; s += 2) {
        add(L, SH_ELLIPSOID, s * 24, -26, 80, 16, 18, 18, 900, 0, g);
        double ma = 14 * jit(L, 0.1), mb = 16 * jit(L, 0.1);
        add(L, SH_ELLIPSOID, s * 24, -26, 80, ma, mb, 16, -950, 0, g);
    }
    add(L, SH_CYLINDER, 0, -38, 82, 11, 22, 18, -850, 0, g);
    prim *septum = add(L, SH_SUPERQ, 0, -38, 82, 1.2, 22, 18, 500, 0, g);
    if (septum)
        septum->expo = 6.0;
}

/* Tooth t of 28: 0..13 lower arch, 14..27 upper; returns centre, size. */
static void tooth_place(int t, double c[3], double *half)
{
    int upper = t >= 14, i = t % 14;
    double phi = (-1.0 + 2.0 * (double)i / 13.0) * 1.35; /* radians along the arch */
    double a = upper ? 43 : 41, b = upper ? 58 : 56;
    c[0] = a * sin(phi);
    c[1] = 5 - b * cos(phi);
    c[2] = upper ? 50 : 39;
    *half = fabs(phi) > 0.8 ? 5.0 : 3.6; /* molars are broader */
}

static void build_teeth(prim_list *L, const cbq_phantom_params *pp)
{
    for (int t = 0; t < 28; t++) {
        double c[3], h;
        tooth_place(t, c, &h);
        add(L, SH_ELLIPSOID, c[0], c[1], c[2], h, h, 6.5, 2100, CBQ_LAB_TEETH, G_HEAD);
    }
    for (int t = 0; t < 28; t++) {
        if (!(pp->metal_teeth & (1u << t)))
            continue;
        double c[3], h;
        tooth_place(t, c, &h);
        double occl = t >= 14 ? -3.5 : 3.5; /* towards the bite */
        if (pp->crown_teeth & (1u << t))
            add(L, SH_ELLIPSOID, c[0], c[1], c[2] + occl * 0.6, h + 0.8, h + 0.8, 4.5, 45000,
                CBQ_LAB_METAL, G_HEAD);
        else
            add(L, SH_ELLIPSOID, c[0], c[1], c[2] + occl, h * 0.7, h * 0.7, 2.5, 60000, CBQ_LAB_METAL,
                G_HEAD);
    }
}

/* Applies the subject's scale, flexion, yaw, position and (for the larynx
 * group) swallowing displacement to every primitive. */
static void place_subject(prim_list *L, double swallow)
{
    const cbq_phantom_params *pp = L->pp;
    double sc[3] = {pp->scale * pp->width, pp->scale * pp->depth, pp->scale};
    double pivot[3] = {0, 20, 15};
    double fl[3][3], yw[3][3];
    rot_set(fl, pp->flexion, 0.0); /* world -> rotated-frame matrices */
    rot_set(yw, 0.0, pp->yaw);
    for (size_t n = 0; n < L->n; n++) {
        prim *p = &L->p[n];
        for (int a = 0; a < 3; a++) {
            p->c[a] *= sc[a];
            p->r[a] *= sc[a];
        }
        p->thick *= pp->scale;
        if (p->group & G_LARYNX) {
            p->c[2] += swallow * pp->swallow_mm;
            p->c[1] -= 0.3 * swallow * pp->swallow_mm;
        }
        double m[3][3], d[3];
        if (p->group & G_HEAD) {
            /* Rotate the head about the pivot: c' = pivot + R^T (c - pivot). */
            for (int a = 0; a < 3; a++)
                d[a] = p->c[a] - pivot[a] * pp->scale;
            for (int a = 0; a < 3; a++)
                p->c[a] = pivot[a] * pp->scale + fl[0][a] * d[0] + fl[1][a] * d[1] + fl[2][a] * d[2];
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 3; j++)
                    m[i][j] = p->rot[i][0] * fl[0][j] + p->rot[i][1] * fl[1][j] + p->rot[i][2] * fl[2][j];
            memcpy(p->rot, m, sizeof m);
        }
        double cc[3] = {p->c[0], p->c[1], p->c[2]};
        for (int a = 0; a < 3; a++)
            p->c[a] = yw[0][a] * cc[0] + yw[1][a] * cc[1] + yw[2][a] * cc[2] + pp->shift[a];
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                m[i][j] = p->rot[i][0] * yw[0][j] + p->rot[i][1] * yw[1][j] + p->rot[i][2] * yw[2][j];
        memcpy(p->rot, m, sizeof m);
    }
}

void cbq_phantom_draw(cbq_phantom_params *pp, cbq_rng *rng)
{
    memset(pp, 0, sizeof *pp);
    pp->scale = 0.93 + 0.14 * cbq_rng_uniform(rng);
    pp->width = 0.92 + 0.16 * cbq_rng_uniform(rng);
    pp->depth = 0.92 + 0.14 * cbq_rng_uniform(rng);
    pp->shift[0] = 6.0 * cbq_rng_normal(rng);
    pp->shift[1] = 6.0 * cbq_rng_normal(rng);
    pp->shift[2] = 6.0 * cbq_rng_normal(rng);
    pp->flexion = (-8.0 + 16.0 * cbq_rng_uniform(rng)) * CBQ_PI / 180.0;
    pp->yaw = 3.0 * cbq_rng_normal(rng) * CBQ_PI / 180.0;
    pp->parotid_hu = -15.0 + 35.0 * cbq_rng_uniform(rng);
    pp->submand_hu = 30.0 + 25.0 * cbq_rng_uniform(rng);
    pp->cartilage_hu = 120.0 + 500.0 * cbq_rng_uniform(rng) * cbq_rng_uniform(rng);
    pp->swallow_mm = 8.0 + 12.0 * cbq_rng_uniform(rng);
    /* Dental metal: a third of subjects none, others a few fillings and crowns
     * on premolars and molars (the outer 4 teeth of each half arch). */
    double u = cbq_rng_uniform(rng);
    int n_metal = u < 0.3 ? 0 : u < 0.6 ? 1 + (int)cbq_rng_below(rng, 2)
                                        : 2 + (int)cbq_rng_below(rng, 6);
    for (int m = 0; m < n_metal; m++) {
        int arch = (int)cbq_rng_below(rng, 2), side = (int)cbq_rng_below(rng, 2);
        int pos = (int)cbq_rng_below(rng, 4);
        int t = arch * 14 + (side ? 13 - pos : pos);
        if (pp->metal_teeth & (1u << t))
            continue;
        pp->metal_teeth |= 1u << t;
        if (cbq_rng_uniform(rng) < 0.3) {
            pp->crown_teeth |= 1u << t;
            pp->n_crowns++;
        } else {
            pp->n_fillings++;
        }
    }
    pp->jitter_seed = cbq_rng_u64(rng);
}

int cbq_phantom_rasterise(const cbq_phantom_params *pp, double swallow, cbq_volume *hu,
                          cbq_volume *labels, cbq_error *err)
{
    CBQ_CHECK_ARG(err, hu && hu->data, "phantom: HU volume not allocated");
    CBQ_CHECK_ARG(err, !labels || (labels->nx == hu->nx && labels->ny == hu->ny && labels->nz == hu->nz),
                  "phantom: label volume grid differs from the image grid");
    prim_list L = {.cap = 512, .pp = pp};
    L.p = calloc(L.cap, sizeof(prim));
    if (!L.p)
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "phantom: out of memory");
    cbq_rng_seed(&L.jit, pp->jitter_seed);
    build_body(&L);
    build_spine(&L);
    build_glands(&L, pp);
    build_larynx(&L, pp);
    build_jaws(&L);
    build_teeth(&L, pp);
    place_subject(&L, swallow);
    if (L.overflow) {
        free(L.p);
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "phantom: more than %zu primitives", L.cap);
    }

    const size_t nx = hu->nx, ny = hu->ny, nz = hu->nz;
    const double *sp = hu->spacing;
    const double h = fmin(sp[0], fmin(sp[1], sp[2]));
    for (size_t n = 0; n < cbq_volume_count(hu); n++)
        hu->data[n] = -1000.0f;
    if (labels)
        memset(labels->data, 0, cbq_volume_count(labels) * sizeof(float));
    for (size_t n = 0; n < L.n; n++) {
        const prim *p = &L.p[n];
        double ext = prim_extent(p) + 2.0 * h;
        long lo[3], hi[3];
        size_t dims[3] = {nx, ny, nz};
        for (int a = 0; a < 3; a++) {
            double ctr = 0.5 * (double)(dims[a] - 1);
            lo[a] = (long)floor((p->c[a] - ext) / sp[a] + ctr);
            hi[a] = (long)ceil((p->c[a] + ext) / sp[a] + ctr);
            if (lo[a] < 0) lo[a] = 0;
            if (hi[a] > (long)dims[a] - 1) hi[a] = (long)dims[a] - 1;
        }
#pragma omp parallel for schedule(static)
        for (long k = lo[2]; k <= hi[2]; k++)
            for (long j = lo[1]; j <= hi[1]; j++)
                for (long i = lo[0]; i <= hi[0]; i++) {
                    double x[3] = {((double)i - 0.5 * (double)(nx - 1)) * sp[0],
                                   ((double)j - 0.5 * (double)(ny - 1)) * sp[1],
                                   ((double)k - 0.5 * (double)(nz - 1)) * sp[2]};
                    double o = prim_occ(p, x, h);
                    if (o <= 0.0)
                        continue;
                    size_t idx = (size_t)i + nx * ((size_t)j + ny * (size_t)k);
                    hu->data[idx] = (float)((1.0 - o) * hu->data[idx] + o * p->hu);
                    if (labels && p->label != KEEP_LABEL && o >= 0.5)
                        labels->data[idx] = (float)p->label;
                }
    }
    free(L.p);
    return CBQ_OK;
}

void cbq_hu_to_mu(cbq_volume *vol)
{
    size_t n = cbq_volume_count(vol);
    for (size_t i = 0; i < n; i++) {
        float mu = (float)CBQ_MU_WATER * (1.0f + vol->data[i] / 1000.0f);
        vol->data[i] = mu > 0 ? mu : 0.0f;
    }
}

void cbq_mu_to_hu(cbq_volume *vol)
{
    size_t n = cbq_volume_count(vol);
    for (size_t i = 0; i < n; i++)
        vol->data[i] = 1000.0f * (vol->data[i] / (float)CBQ_MU_WATER - 1.0f);
}
