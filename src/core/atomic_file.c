/* atomic_file.c - temporary-then-rename writes (see atomic_file.h). */
#define _GNU_SOURCE /* getdents64: a folder emptied from a signal handler */
#include "cbctiq/atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The temporary files being written now, for cbq_atomic_remove_pending.
 * Process-wide by necessity: a signal handler gets no arguments. Slots are
 * claimed with lock-free atomics, so writer threads and a handler that
 * interrupts any of them never wait on each other. A full table only
 * means an interrupt may leave that file behind. */
enum { PENDING_SLOTS = 64, SLOT_FREE = 0, SLOT_FILLING, SLOT_PENDING };
static struct {
    atomic_int state;
    char path[4096];
} pending[PENDING_SLOTS];

static void pending_add(const char *tmp)
{
    for (size_t i = 0; i < PENDING_SLOTS; i++) {
        int expected = SLOT_FREE;
        if (atomic_compare_exchange_strong(&pending[i].state, &expected, SLOT_FILLING)) {
            snprintf(pending[i].path, sizeof pending[i].path, "%s", tmp);
            atomic_store(&pending[i].state, SLOT_PENDING);
            return;
        }
    }
}

static void pending_forget(const char *tmp)
{
    for (size_t i = 0; i < PENDING_SLOTS; i++) {
        int expected = SLOT_PENDING;
        /* the state first: a slot another thread is filling has a path in flux */
        if (atomic_load(&pending[i].state) == SLOT_PENDING && strcmp(pending[i].path, tmp) == 0 &&
            atomic_compare_exchange_strong(&pending[i].state, &expected, SLOT_FILLING)) {
            pending[i].path[0] = '\0';
            atomic_store(&pending[i].state, SLOT_FREE);
            return;
        }
    }
}

/* Removes the files in folder `path` (one level: what a folder writer put
 * there) and the folder, with async-signal-safe calls only (open,
 * getdents64, unlinkat, rmdir), so that the signal handler can use it. A
 * few passes: entries removed while reading may hide others from one pass. */
static void remove_flat_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    for (int pass = 0; pass < 4 && rmdir(path) != 0; pass++) {
        char buf[4096] __attribute__((aligned(8)));
        lseek(fd, 0, SEEK_SET);
        ssize_t n;
        while ((n = getdents64(fd, buf, sizeof buf)) > 0)
            for (ssize_t off = 0; off < n;) {
                const struct dirent64 *e = (const struct dirent64 *)(void *)(buf + off);
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                    unlinkat(fd, e->d_name, 0);
                off += e->d_reclen;
            }
    }
    close(fd);
}

void cbq_atomic_remove_pending(void)
{
    for (size_t i = 0; i < PENDING_SLOTS; i++)
        if (atomic_load(&pending[i].state) == SLOT_PENDING && unlink(pending[i].path) != 0 &&
            errno == EISDIR)
            remove_flat_dir(pending[i].path);
}

int cbq_atomic_tmp_dir(char *tmp, size_t cap, const char *final_dir, cbq_error *err)
{
    CBQ_TRY(cbq_atomic_tmp_name(tmp, cap, final_dir, err));
    remove_flat_dir(tmp); /* a leftover of a killed process that had our pid */
    if (mkdir(tmp, 0777) != 0) {
        int e = errno;
        pending_forget(tmp);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot create a folder beside it: %s", final_dir,
                        strerror(e));
    }
    return CBQ_OK;
}

void cbq_atomic_discard_dir(const char *tmp)
{
    remove_flat_dir(tmp);
    pending_forget(tmp);
}

int cbq_atomic_rename_dir(const char *tmp, const char *final_dir, cbq_error *err)
{
    char old[4200];
    int n = snprintf(old, sizeof old, "%s.old", tmp);
    struct stat st;
    int replace = stat(final_dir, &st) == 0;
    if (replace && (n < 0 || (size_t)n >= sizeof old || !S_ISDIR(st.st_mode) ||
                    rename(final_dir, old) != 0)) {
        int e = errno;
        cbq_atomic_discard_dir(tmp);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot replace: %s", final_dir,
                        S_ISDIR(st.st_mode) ? strerror(e) : "not a folder");
    }
    if (rename(tmp, final_dir) != 0) {
        int e = errno;
        if (replace)
            rename(old, final_dir);
        cbq_atomic_discard_dir(tmp);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot write: %s", final_dir, strerror(e));
    }
    pending_forget(tmp);
    if (replace)
        remove_flat_dir(old);
    return CBQ_OK;
}

void cbq_atomic_discard(const char *tmp)
{
    remove(tmp);
    pending_forget(tmp);
}

int cbq_atomic_tmp_name(char *tmp, size_t cap, const char *final_path, cbq_error *err)
{
    /* Same folder as the target so that rename() stays atomic; the pid keeps
     * concurrent writers apart; the leading dot keeps viewers from listing it. */
    const char *slash = strrchr(final_path, '/');
    int dir_len = slash ? (int)(slash - final_path + 1) : 0;
    const char *base = slash ? slash + 1 : final_path;
    int n = snprintf(tmp, cap, "%.*s.%s.tmp%ld", dir_len, final_path, base, (long)getpid());
    if (n < 0 || (size_t)n >= cap)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: path too long", final_path);
    pending_add(tmp);
    return CBQ_OK;
}

int cbq_atomic_open(cbq_atomic_file *af, const char *path, cbq_error *err)
{
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->final_path)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "%s: path too long", path);
    strcpy(af->final_path, path);
    CBQ_TRY(cbq_atomic_tmp_name(af->tmp_path, sizeof af->tmp_path, path, err));
    af->fp = fopen(af->tmp_path, "wb");
    if (!af->fp) {
        int e = errno;
        pending_forget(af->tmp_path);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot create: %s", path, strerror(e));
    }
    return CBQ_OK;
}

int cbq_atomic_rename(const char *tmp, const char *final_path, cbq_error *err)
{
    if (rename(tmp, final_path) != 0) {
        int e = errno;
        cbq_atomic_discard(tmp);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot write: %s", final_path, strerror(e));
    }
    pending_forget(tmp);
    return CBQ_OK;
}

int cbq_atomic_commit(cbq_atomic_file *af, cbq_error *err)
{
    if (!af->fp)
        return CBQ_FAIL(err, CBQ_ERR_INTERNAL, "%s: commit without open", af->final_path);
    int failed = ferror(af->fp) || fflush(af->fp) != 0 || fsync(fileno(af->fp)) != 0;
    int e = errno;
    failed |= fclose(af->fp) != 0;
    af->fp = NULL;
    if (failed) {
        cbq_atomic_discard(af->tmp_path);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: write failed: %s", af->final_path, strerror(e));
    }
    return cbq_atomic_rename(af->tmp_path, af->final_path, err);
}

void cbq_atomic_abort(cbq_atomic_file *af)
{
    if (af->fp) {
        fclose(af->fp);
        af->fp = NULL;
    }
    if (af->tmp_path[0])
        cbq_atomic_discard(af->tmp_path);
    af->tmp_path[0] = '\0';
}

int cbq_mkdir_p(const char *path, cbq_error *err)
{
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return CBQ_FAIL(err, CBQ_ERR_ARG, "invalid folder path '%s'", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: exists and is not a folder", path);
    return CBQ_OK;
}
