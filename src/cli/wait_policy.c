/* wait_policy.c - see wait_policy.h.
 *
 * libgomp's default lets a worker spin for a while (GOMP_SPINCOUNT 300,000)
 * after each parallel region before it sleeps. `cbctiq ae` runs a few
 * hundred short regions per volume (per layer and batch) with serial work
 * between them (reading, slicing, the CAM arithmetic, writing), and the
 * spinning worker burnt as much CPU time as the network itself: one
 * 128x128x96 volume at 2 threads took about 1.7-2.0 s of CPU with the
 * default and 0.8 s with OMP_WAIT_POLICY=passive on a shared 2-core machine,
 * and its wall time fell too (3.6 s -> 1.4 s), since the spinning took the
 * core that the thread with the work needed. The results are the same bytes.
 *
 * libgomp reads its environment in its initialiser, before main, so the
 * policy can only be chosen by running the program again with it set (about
 * 10 ms). Setting it from an executable's .preinit_array does not work:
 * libc's own initialiser, which runs before libgomp's, restores the
 * environment the process was started with.
 *
 * The same holds for every command that runs the network: with Winograd's
 * and the weight gradient's barriers, resnet18 training at 128x128 on 2
 * idle threads took 43.0 CPU-ms per slice (45.6 slices/s) with the default
 * and 36.6 (50.2 slices/s) passive, and under load the spinning doubled the
 * CPU time (86 against 34 ms). Commands that only read and write files keep
 * the default: they have no parallel regions worth a second start. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "wait_policy.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* `--threads 1` or `--threads=1`: no worker, nothing to gain. */
static int asks_one_thread(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--threads=1") == 0)
            return 1;
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc && strcmp(argv[i + 1], "1") == 0)
            return 1;
    }
    return 0;
}

static int runs_the_network(const char *command)
{
    static const char *const names[] = {"predict", "ae", "gradcam", "train", "sanity", "study"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(command, names[i]) == 0)
            return 1;
    return 0;
}

void cli_choose_wait_policy(int argc, char **argv)
{
    if (argc < 2 || !runs_the_network(argv[1]) || asks_one_thread(argc, argv))
        return;
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT") || sysconf(_SC_NPROCESSORS_ONLN) < 2)
        return;
    if (setenv("OMP_WAIT_POLICY", "passive", 0) != 0)
        return;
    execv("/proc/self/exe", argv);
    unsetenv("OMP_WAIT_POLICY"); /* not re-executed: the policy did not apply */
}
