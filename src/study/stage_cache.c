/* stage_cache.c - what makes the study resumable: stamp files written last,
 * content hashes of inputs and outputs, and emptying a stage's folder before
 * it reruns so no stale file survives. */
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
static const char STAMP_MAGIC[] = "cbctiq-stage 1";

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

int cbq_stage_stamp_read(const char *stage_dir, cbq_stage_stamp *stamp, int *found, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 16];
    *found = 0;
    memset(stamp, 0, sizeof *stamp);
    CBQ_TRY(stamp_path(path, sizeof path, stage_dir, err));
    FILE *fp = fopen(path, "r");
    if (!fp) {
        if (errno == ENOENT || errno == ENOTDIR)
            return CBQ_OK;
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    char magic[64] = "", in[128] = "", out[128] = "";
    int ok = fgets(magic, sizeof magic, fp) && fscanf(fp, "input %127s\n", in) == 1 &&
             fscanf(fp, "output %127s\n", out) == 1;
    fclose(fp);
    magic[strcspn(magic, "\n")] = '\0';
    if (!ok || strcmp(magic, STAMP_MAGIC) != 0 || !is_hex64(in) || !is_hex64(out))
        return CBQ_OK; /* unreadable stamps mean "not done": the stage reruns */
    memcpy(stamp->input_hash, in, 65);
    memcpy(stamp->output_hash, out, 65);
    *found = 1;
    return CBQ_OK;
}

int cbq_stage_stamp_write(const char *stage_dir, const cbq_stage_stamp *stamp, cbq_error *err)
{
    char path[CBQ_STUDY_PATH_MAX + 16];
    CBQ_TRY(stamp_path(path, sizeof path, stage_dir, err));
    cbq_atomic_file af;
    CBQ_TRY(cbq_atomic_open(&af, path, err));
    fprintf(af.fp, "%s\ninput %s\noutput %s\n", STAMP_MAGIC, stamp->input_hash,
            stamp->output_hash);
    return cbq_atomic_commit(&af, err);
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

/* Sorted entry names of a folder, without '.'-prefixed ones and the stamp. */
static int list_dir(const char *dir, char ***names_out, size_t *n_out, cbq_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = CBQ_OK;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, STAMP_NAME) == 0)
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
    CBQ_TRY(list_dir(path, &names, &n, err));
    int rc = CBQ_OK;
    for (size_t i = 0; i < n && rc == CBQ_OK; i++) {
        char child[CBQ_STUDY_PATH_MAX], child_rel[CBQ_STUDY_PATH_MAX];
        int a = snprintf(child, sizeof child, "%s/%s", path, names[i]);
        int b = snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
        if (a < 0 || (size_t)a >= sizeof child || b < 0 || (size_t)b >= sizeof child_rel)
            rc = CBQ_FAIL(err, CBQ_ERR_ARG, "%s/%s: path too long", path, names[i]);
        else
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
