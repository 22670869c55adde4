/* study_folder.c - whose folder `--out` is, and who is using it. A study
 * folder is marked by its lock file, cbctiq-study.lock, written on the
 * first run into a new or empty folder (or into a folder of stamped stage
 * folders that an older cbctiq wrote); cbctiq study refuses any other
 * non-empty folder. A run holds an exclusive flock on that file for its
 * whole length and writes its PID into it, so that a second run on the
 * same folder is refused naming the first. Not for the stage folders
 * inside (stage_cache.c). */
#define _DEFAULT_SOURCE
#include "study/pipeline.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cbctiq/atomic_file.h"

static const char LOCK_NAME[] = "cbctiq-study.lock";
static const char LOCK_MAGIC[] = "cbctiq-study ";

/* *empty = 1 when dir holds nothing but (perhaps) the lock file. */
static int only_lock_file(const char *dir, int *empty, cbq_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    *empty = 1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strcmp(e->d_name, LOCK_NAME) != 0)
            *empty = 0;
    closedir(d);
    return CBQ_OK;
}

static int is_stage_name(const char *name)
{
    for (int s = 0; s < CBQ_STAGE_COUNT; s++)
        if (strcmp(name, cbq_study_stage_name((cbq_study_stage)s)) == 0)
            return 1;
    return 0;
}

/* A study folder from before the lock file existed: nothing but stage
 * folders, each carrying a cbctiq stamp. */
static int written_by_older_cbctiq(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int ours = 1, stages = 0;
    struct dirent *e;
    while (ours && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char stamp[CBQ_STUDY_PATH_MAX + 300], head[16] = "";
        snprintf(stamp, sizeof stamp, "%s/%s/stage.done", dir, e->d_name);
        FILE *fp = is_stage_name(e->d_name) ? fopen(stamp, "r") : NULL;
        ours = fp && fgets(head, sizeof head, fp) && strncmp(head, "cbctiq-stage ", 13) == 0;
        if (fp)
            fclose(fp);
        stages += ours;
    }
    closedir(d);
    return ours && stages > 0;
}

/* The lock file's first bytes (NUL-terminated, "" when empty). */
static void read_head(int fd, char *buf, size_t cap)
{
    ssize_t got = pread(fd, buf, cap - 1, 0);
    buf[got > 0 ? (size_t)got : 0] = '\0';
}

static int open_lock_file(const char *out, const char *path, int *fd, cbq_error *err)
{
    *fd = open(path, O_RDWR | O_CLOEXEC);
    if (*fd >= 0 || errno != ENOENT) {
        if (*fd < 0)
            return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        char head[64];
        read_head(*fd, head, sizeof head);
        /* Empty: a first run killed before it wrote; anything else is not ours. */
        if (head[0] && strncmp(head, LOCK_MAGIC, strlen(LOCK_MAGIC)) != 0) {
            close(*fd);
            *fd = -1;
            return CBQ_FAIL(err, CBQ_ERR_IO,
                            "%s: was not written by cbctiq study (expected '%s...'); %s is left "
                            "alone: choose another --out",
                            path, LOCK_MAGIC, out);
        }
        return CBQ_OK;
    }
    int empty = 0;
    CBQ_TRY(only_lock_file(out, &empty, err));
    if (!empty && !written_by_older_cbctiq(out))
        return CBQ_FAIL(err, CBQ_ERR_IO,
                        "%s: is not empty and is not a cbctiq study folder (it has no %s); "
                        "cbctiq study writes only into a new or empty folder or one it made: "
                        "choose another --out",
                        out, LOCK_NAME);
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    return CBQ_OK;
}

int study_folder_claim(const char *out, study_folder_lock *lock, cbq_error *err)
{
    lock->fd = -1;
    CBQ_TRY(cbq_mkdir_p(out, err));
    char path[CBQ_STUDY_PATH_MAX + 32];
    CBQ_TRY(study_path(path, sizeof path, out, LOCK_NAME, err));
    int fd;
    CBQ_TRY(open_lock_file(out, path, &fd, err));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        char head[128], *pid_at;
        read_head(fd, head, sizeof head);
        close(fd);
        long pid = (pid_at = strstr(head, "\npid ")) ? strtol(pid_at + 5, NULL, 10) : 0;
        if (busy && pid > 0)
            return CBQ_FAIL(err, CBQ_ERR_IO,
                            "%s: in use by process %ld (another cbctiq study holds %s)", out,
                            pid, path);
        if (busy)
            return CBQ_FAIL(err, CBQ_ERR_IO, "%s: in use by another process (it holds %s)",
                            out, path);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot lock: %s", path, strerror(errno));
    }
    /* Written in place, not renamed: the lock lives on this file's inode.
     * Write, then cut: the file is never empty while we hold it. */
    char text[64];
    int n = snprintf(text, sizeof text, "%s1\npid %ld\n", LOCK_MAGIC, (long)getpid());
    if (pwrite(fd, text, (size_t)n, 0) != n || ftruncate(fd, n) != 0) {
        int e = errno;
        close(fd);
        return CBQ_FAIL(err, CBQ_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    lock->fd = fd;
    return CBQ_OK;
}

void study_folder_release(study_folder_lock *lock)
{
    if (lock->fd >= 0)
        close(lock->fd); /* releases the flock; the file stays as the folder's mark */
    lock->fd = -1;
}
