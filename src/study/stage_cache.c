/* stage_cache.c - what makes the study resumable: stamp files written last
 * with a manifest (size and SHA-256 of every output) that a cached stage is
 * checked against, content hashes of inputs, and emptying a stage's folder
 * before it reruns so no stale file survives, but only a folder that
 * carries cbctiq's stamp (or is empty): never a user's. */
#define _XOPEN_SOURCE 700
#include "cbctiq/study.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cbctiq/atomic_file.h"
#include "study/sha256.h"

static const char STAMP_NAME[] = "stage.done";
/* Any "cbctiq-stage N" first line marks a folder cbctiq made; only the
 * current version with a valid manifest counts as done. */
static const char STAMP_FAMILY[] = "cbctiq-stage ";
static const char STAMP_MAGIC[] = "cbctiq-stage 2";
static const char STAMP_RUNNING[] = "running";
enum { STAMP_MAX_BYTES = 64 << 20 };

typedef struct {
    char *p;
    size_t len, cap;
} text_buf;

static int buf_append(text_buf *b, const char *s, size_t n, cbq_error *err)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->p, cap);
        if (!grown)
            return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory listing a stage folder");
        b->p = grown;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return CBQ_OK;
}

static int stamp_path(char *buf, size_t cap, const char *dir, cbq_error *err)
{
    int n = snprintf(buf, cap, "%s/%s", dir, STAMP_NAME);
    if (n < 0 || (size_t)n >= cap)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: path too long", dir);
    return CBQ_OK;
}

static int is_hex64(const char *s)
{
    size_t n = strspn(s, "0123456789abcdef");
    return n == 64 && s[64] == '\0';
}

/* The stamp's text (*text = NULL when there is none; caller frees). */
static int stamp_load(const char *stage_dir, char **text, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 16];
    *text = NULL;
    CBQ_TRY(stamp_path(path, sizeof path, stage_dir, err));
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT || errno == ENOTDIR)
            return CBQ_OK;
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    text_buf b = {0};
    char chunk[1 << 14];
    size_t got;
    int rc = CBQ_OK;
    while (rc == CBQ_OK && (got = fread(chunk, 1, sizeof chunk, fp)) > 0)
        rc = b.len + got > STAMP_MAX_BYTES
                 ? CBQ_FAIL(err, CBQ_ERR_FORMAT, "%s: larger than %d bytes", path, STAMP_MAX_BYTES)
                 : buf_append(&b, chunk, got, err);
    if (rc == CBQ_OK && ferror(fp))
        rc = CBQ_FAIL(err, CBQ_ERR_IO, "%s: read error", path);
    fclose(fp);
    if (rc == CBQ_OK && !b.p)
        rc = buf_append(&b, "", 0, err);
    if (rc != CBQ_OK) {
        free(b.p);
        return rc;
    }
    *text = b.p;
    return CBQ_OK;
}

static void digest_hex(const char *text, size_t n, char hex[65])
{
    cbq_sha256 h;
    unsigned char d[32];
    cbq_sha256_init(&h);
    cbq_sha256_update(&h, text, n);
    cbq_sha256_final(&h, d);
    cbq_sha256_hex(d, hex);
}

/* Parses a finished stamp: magic, input, output, then the manifest, whose
 * digest must be the output hash. *manifest points into text. */
static int stamp_parse(const char *text, cbq_stage_stamp *stamp, const char **manifest)
{
    char in[65], out[65];
    size_t magic_len = strlen(STAMP_MAGIC);
    if (strncmp(text, STAMP_MAGIC, magic_len) != 0 || text[magic_len] != '\n')
        return 0;
    const char *p = text + magic_len + 1;
    if (strncmp(p, "input ", 6) != 0 || strlen(p) < 6 + 64 + 1 || p[70] != '\n')
        return 0;
    memcpy(in, p + 6, 64);
    in[64] = '\0';
    p += 71;
    if (strncmp(p, "output ", 7) != 0 || strlen(p) < 7 + 64 + 1 || p[71] != '\n')
        return 0;
    memcpy(out, p + 7, 64);
    out[64] = '\0';
    p += 72;
    if (!is_hex64(in) || !is_hex64(out))
        return 0;
    char want[65];
    digest_hex(p, strlen(p), want);
    if (strcmp(want, out) != 0)
        return 0; /* edited or truncated: not a stamp cbctiq wrote */
    memcpy(stamp->input_hash, in, 65);
    memcpy(stamp->output_hash, out, 65);
    *manifest = p;
    return 1;
}

int cbq_stage_stamp_read(const char *stage_dir, cbq_stage_stamp *stamp, int *found, cbq_error *err)
{
    *found = 0;
    memset(stamp, 0, sizeof *stamp);
    char *text;
    CBQ_TRY(stamp_load(stage_dir, &text, err));
    const char *manifest;
    if (text && stamp_parse(text, stamp, &manifest))
        *found = 1;
    else
        memset(stamp, 0, sizeof *stamp); /* unreadable stamps mean "not done": the stage reruns */
    free(text);
    return CBQ_OK;
}

static int list_manifest(const char *stage_dir, text_buf *b, cbq_error *err);

int cbq_stage_stamp_write(const char *stage_dir, cbq_stage_stamp *stamp, cbq_error *err)
{
    text_buf manifest = {0};
    int rc = list_manifest(stage_dir, &manifest, err);
    if (rc == CBQ_OK && !manifest.p)
        rc = buf_append(&manifest, "", 0, err);
    if (rc != CBQ_OK) {
        free(manifest.p);
        return rc;
    }
    digest_hex(manifest.p, manifest.len, stamp->output_hash);
    char path[CBQ_STUDY_PATH_MAX + 16];
    cbq_atomic_file af;
    rc = stamp_path(path, sizeof path, stage_dir, err);
    if (rc == CBQ_OK)
        rc = cbq_atomic_open(&af, path, err);
    if (rc == CBQ_OK) {
        fprintf(af.fp, "%s\ninput %s\noutput %s\n", STAMP_MAGIC, stamp->input_hash,
                stamp->output_hash);
        fwrite(manifest.p, 1, manifest.len, af.fp);
        rc = cbq_atomic_commit(&af, err);
    }
    free(manifest.p);
    return rc;
}

static int hash_file_into(cbq_sha256 *h, const char *path, cbq_error *err)
{
    /* A FIFO or a device would block the open or never end. */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: not a regular file (a FIFO, device or socket)", path);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, fp)) > 0)
        cbq_sha256_update(h, buf, got);
    int failed = ferror(fp);
    fclose(fp);
    if (failed)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: read error", path);
    return CBQ_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Sorted entry names of a folder without the stamp, and without
 * '.'-prefixed ones (temporaries) unless with_hidden. */
static int list_dir(const char *dir, int with_hidden, char ***names_out, size_t *n_out,
                    cbq_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = CBQ_OK;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strcmp(e->d_name, STAMP_NAME) == 0 || (e->d_name[0] == '.' && !with_hidden))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            char **grown = realloc(names, cap * sizeof *names);
            if (!grown) {
                rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory listing", dir);
                break;
            }
            names = grown;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = CBQ_FAIL(err, CBQ_ERR_NOMEM, "%s: out of memory listing", dir);
            break;
        }
        n++;
    }
    closedir(d);
    if (rc != CBQ_OK) {
        free_names(names, n);
        return rc;
    }
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    *names_out = names;
    *n_out = n;
    return CBQ_OK;
}

/* rel: path relative to the hashed root, part of the digest so that renames count. */
/* A folder entry's path, and its path relative to the walk's root. */
static int child_paths(const char *path, const char *rel, const char *name,
                       char child[CBQ_STUDY_PATH_MAX], char child_rel[CBQ_STUDY_PATH_MAX],
                       cbq_error *err)
{
    int a = snprintf(child, CBQ_STUDY_PATH_MAX, "%s/%s", path, name);
    int b = snprintf(child_rel, CBQ_STUDY_PATH_MAX, "%s%s%s", rel, rel[0] ? "/" : "", name);
    if (a < 0 || a >= CBQ_STUDY_PATH_MAX || b < 0 || b >= CBQ_STUDY_PATH_MAX)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s/%s: path too long", path, name);
    return CBQ_OK;
}

static int hash_tree_into(cbq_sha256 *h, const char *path, const char *rel, cbq_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        unsigned char len[8];
        uint64_t size = (uint64_t)st.st_size;
        for (int i = 0; i < 8; i++)
            len[i] = (unsigned char)(size >> (8 * i));
        cbq_sha256_update(h, rel, strlen(rel) + 1);
        cbq_sha256_update(h, len, sizeof len);
        return hash_file_into(h, path, err);
    }
    char **names = NULL;
    size_t n = 0;
    CBQ_TRY(list_dir(path, 0, &names, &n, err));
    int rc = CBQ_OK;
    for (size_t i = 0; i < n && rc == CBQ_OK; i++) {
        char child[CBQ_STUDY_PATH_MAX], child_rel[CBQ_STUDY_PATH_MAX];
        rc = child_paths(path, rel, names[i], child, child_rel, err);
        if (rc == CBQ_OK)
            rc = hash_tree_into(h, child, child_rel, err);
    }
    free_names(names, n);
    return rc;
}

int cbq_hash_path(const char *path, char hex[65], cbq_error *err)
{
    cbq_sha256 h;
    cbq_sha256_init(&h);
    struct stat st;
    if (stat(path, &st) != 0)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        CBQ_TRY(hash_tree_into(&h, path, "", err));
    else
        CBQ_TRY(hash_file_into(&h, path, err));
    unsigned char d[32];
    cbq_sha256_final(&h, d);
    cbq_sha256_hex(d, hex);
    return CBQ_OK;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT ? -1 : 0;
}

int cbq_remove_tree(const char *path, cbq_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? CBQ_OK
                               : CBQ_FAIL(err, CBQ_ERR_IO, "%s: %s", path, strerror(errno));
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot remove: %s", path, strerror(errno));
    return CBQ_OK;
}

/* ---- manifests: what a finished stage wrote ------------------------------ */

static int manifest_walk(const char *path, const char *rel, text_buf *b, cbq_error *err)
{
    char **names = NULL;
    size_t n = 0;
    CBQ_TRY(list_dir(path, 0, &names, &n, err));
    int rc = CBQ_OK;
    for (size_t i = 0; i < n && rc == CBQ_OK; i++) {
        char child[CBQ_STUDY_PATH_MAX], child_rel[CBQ_STUDY_PATH_MAX];
        struct stat st;
        rc = child_paths(path, rel, names[i], child, child_rel, err);
        if (rc != CBQ_OK)
            break;
        if (stat(child, &st) != 0)
            rc = CBQ_FAIL(err, CBQ_ERR_IO, "%s: %s", child, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            rc = manifest_walk(child, child_rel, b, err);
        else {
            char hex[65], line[CBQ_STUDY_PATH_MAX + 128];
            rc = cbq_hash_path(child, hex, err);
            int len = snprintf(line, sizeof line, "file %llu %s %s\n",
                               (unsigned long long)st.st_size, hex, child_rel);
            if (rc == CBQ_OK)
                rc = buf_append(b, line, (size_t)len, err);
        }
    }
    free_names(names, n);
    return rc;
}

/* One "file SIZE SHA256 PATH" line per file under the folder, in sorted
 * order, without the stamp and temporaries. */
static int list_manifest(const char *stage_dir, text_buf *b, cbq_error *err)
{
    return manifest_walk(stage_dir, "", b, err);
}

/* The manifest line of `rel` in text ("file SIZE HASH REL\n"...), or NULL;
 * *len receives its length without the newline. */
static const char *manifest_find(const char *text, const char *rel, size_t *len)
{
    size_t rel_len = strlen(rel);
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *name = line;
        for (int field = 0; field < 3 && name < line + n; field++) {
            const char *space = memchr(name, ' ', (size_t)(line + n - name));
            name = space ? space + 1 : line + n;
        }
        if ((size_t)(line + n - name) == rel_len && memcmp(name, rel, rel_len) == 0) {
            *len = n;
            return line;
        }
        line = end ? end + 1 : line + n;
    }
    return NULL;
}

static unsigned long long manifest_size(const char *line)
{
    return strtoull(line + 5, NULL, 10); /* after "file " */
}

/* Names the first file where the folder (now) differs from the stamp (was). */
static void describe_change(const char *was, const char *now, char *why, size_t cap)
{
    snprintf(why, cap, "its files differ from its stage.done");
    const char *texts[2] = {was, now};
    for (int side = 0; side < 2; side++)
        for (const char *line = texts[side]; *line;) {
            const char *end = strchr(line, '\n');
            size_t n = end ? (size_t)(end - line) : strlen(line);
            size_t other_len = 0;
            char rel[CBQ_STUDY_PATH_MAX] = "";
            const char *name = line;
            for (int field = 0; field < 3 && name < line + n; field++) {
                const char *space = memchr(name, ' ', (size_t)(line + n - name));
                name = space ? space + 1 : line + n;
            }
            snprintf(rel, sizeof rel, "%.*s", (int)(line + n - name), name);
            const char *other = manifest_find(texts[1 - side], rel, &other_len);
            if (!other) {
                snprintf(why, cap, side == 0 ? "%s is missing" : "%s was not written by the stage",
                         rel);
                return;
            }
            if (side == 0 && (other_len != n || memcmp(other, line, n) != 0)) {
                unsigned long long a = manifest_size(line), b = manifest_size(other);
                if (a != b)
                    snprintf(why, cap, "%s has %llu bytes, the stage wrote %llu", rel, b, a);
                else
                    snprintf(why, cap, "%s was changed after the stage wrote it", rel);
                return;
            }
            line = end ? end + 1 : line + n;
        }
}

int cbq_stage_verify(const char *stage_dir, int *intact, char *why, size_t cap, cbq_error *err)
{
    *intact = 0;
    snprintf(why, cap, "no valid stage.done");
    char *text;
    CBQ_TRY(stamp_load(stage_dir, &text, err));
    cbq_stage_stamp stamp;
    const char *was;
    if (!text || !stamp_parse(text, &stamp, &was)) {
        free(text);
        return CBQ_OK;
    }
    text_buf now = {0};
    int rc = list_manifest(stage_dir, &now, err);
    if (rc == CBQ_OK) {
        const char *now_text = now.p ? now.p : "";
        *intact = strcmp(was, now_text) == 0;
        if (*intact)
            why[0] = '\0';
        else
            describe_change(was, now_text, why, cap);
    }
    free(now.p);
    free(text);
    return rc;
}

/* ---- whose folder is it -------------------------------------------------- */

int cbq_stage_dir_check(const char *stage_dir, cbq_error *err)
{
    struct stat st;
    if (lstat(stage_dir, &st) != 0) {
        if (errno == ENOENT)
            return CBQ_OK;
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: %s", stage_dir, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return CBQ_FAIL(err, CBQ_ERR_IO,
                        "%s: is not a folder cbctiq study made (a %s); it is left alone: move it "
                        "away or choose another --out",
                        stage_dir, S_ISLNK(st.st_mode) ? "symbolic link" : "file");
    char *text;
    CBQ_TRY(stamp_load(stage_dir, &text, err));
    int ours = text && strncmp(text, STAMP_FAMILY, strlen(STAMP_FAMILY)) == 0;
    free(text);
    if (ours)
        return CBQ_OK;
    char **names = NULL;
    size_t n = 0;
    CBQ_TRY(list_dir(stage_dir, 1, &names, &n, err));
    free_names(names, n);
    if (n == 0)
        return CBQ_OK;
    return CBQ_FAIL(err, CBQ_ERR_IO,
                    "%s: this folder was not made by cbctiq study (it has no stage.done) and "
                    "is not empty; it is left alone: move it away or choose another --out",
                    stage_dir);
}

int cbq_stage_dir_begin(const char *stage_dir, cbq_error *err)
{
    CBQ_TRY(cbq_stage_dir_check(stage_dir, err));
    CBQ_TRY(cbq_mkdir_p(stage_dir, err));
    /* Mark the folder first ("running": ours, not done), then empty it: a
     * kill from here on leaves a folder the next run recognises as its own
     * and unfinished. */
    char path[CBQ_STUDY_PATH_MAX + 16];
    CBQ_TRY(stamp_path(path, sizeof path, stage_dir, err));
    cbq_atomic_file af;
    CBQ_TRY(cbq_atomic_open(&af, path, err));
    fprintf(af.fp, "%s\n%s\n", STAMP_MAGIC, STAMP_RUNNING);
    CBQ_TRY(cbq_atomic_commit(&af, err));
    char **names = NULL;
    size_t n = 0;
    CBQ_TRY(list_dir(stage_dir, 1, &names, &n, err));
    int rc = CBQ_OK;
    for (size_t i = 0; i < n && rc == CBQ_OK; i++) {
        char child[CBQ_STUDY_PATH_MAX];
        int len = snprintf(child, sizeof child, "%s/%s", stage_dir, names[i]);
        rc = len < 0 || (size_t)len >= sizeof child
                 ? CBQ_FAIL(err, CBQ_ERR_ARG, "%s/%s: path too long", stage_dir, names[i])
                 : cbq_remove_tree(child, err);
    }
    free_names(names, n);
    return rc;
}
