/* atomic_file.c - temporary-then-rename writes (see atomic_file.h). */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/atomic_file.h"

#include <errno.h>
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

void cbq_atomic_remove_pending(void)
{
    for (size_t i = 0; i < PENDING_SLOTS; i++)
        if (atomic_load(&pending[i].state) == SLOT_PENDING)
            unlink(pending[i].path);
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
