/* progress.h - progress bars with ETA for long stages.
 *
 * On a terminal: one bar redrawn in place on stderr. Otherwise: a plain line
 * at most every few seconds and at the end. Quiet: nothing. Call from one
 * thread (the one driving the loop).
 *
 *   cbq_progress p;
 *   cbq_progress_begin(&p, "simulate", n_volumes, quiet);
 *   for (...) { ...; cbq_progress_step(&p, 1); }
 *   cbq_progress_end(&p);
 */
#ifndef CBCTIQ_PROGRESS_H
#define CBCTIQ_PROGRESS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char label[64];
    size_t total, done;
    double t_start, t_last_print;
    int quiet, tty;
} cbq_progress;

void cbq_progress_begin(cbq_progress *p, const char *label, size_t total, int quiet);
void cbq_progress_step(cbq_progress *p, size_t n);
/* Prints the final line with the elapsed time. */
void cbq_progress_end(cbq_progress *p);

/* Monotonic clock in seconds. */
double cbq_now(void);

#ifdef __cplusplus
}
#endif
#endif
