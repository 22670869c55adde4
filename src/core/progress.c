/* progress.c - progress bars with ETA (see progress.h). */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BAR_WIDTH = 30 };
static const double TTY_REDRAW_S = 0.1, PLAIN_LINE_S = 5.0;

double cbq_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void format_duration(char *buf, size_t cap, double s)
{
    if (s < 0)
        s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, cap, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else
        snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
}

static void print_state(const cbq_progress *p, int final)
{
    double elapsed = cbq_now() - p->t_start;
    double frac = p->total ? (double)p->done / (double)p->total : 1.0;
    char el[32], eta[32];
    format_duration(el, sizeof el, elapsed);
    format_duration(eta, sizeof eta, p->done ? elapsed / frac - elapsed : 0.0);
    if (p->tty) {
        char bar[BAR_WIDTH + 1];
        int filled = (int)(frac * BAR_WIDTH);
        for (int i = 0; i < BAR_WIDTH; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[BAR_WIDTH] = '\0';
        fprintf(stderr, "\r%-12s [%s] %zu/%zu %3.0f%% %s ETA %s\033[K", p->label, bar,
                p->done, p->total, 100.0 * frac, el, final ? "0m00s" : eta);
        if (final)
            fputc('\n', stderr);
    } else if (final) {
        fprintf(stderr, "%s: %zu/%zu done in %s\n", p->label, p->done, p->total, el);
    } else {
        fprintf(stderr, "%s: %zu/%zu (%.0f%%), elapsed %s, ETA %s\n", p->label, p->done,
                p->total, 100.0 * frac, el, eta);
    }
    fflush(stderr);
}

void cbq_progress_begin(cbq_progress *p, const char *label, size_t total, int quiet)
{
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->quiet = quiet;
    p->tty = isatty(STDERR_FILENO);
    p->t_start = p->t_last_print = cbq_now();
}

void cbq_progress_step(cbq_progress *p, size_t n)
{
    p->done += n;
    if (p->quiet)
        return;
    double now = cbq_now();
    if (now - p->t_last_print >= (p->tty ? TTY_REDRAW_S : PLAIN_LINE_S)) {
        p->t_last_print = now;
        print_state(p, 0);
    }
}

void cbq_progress_end(cbq_progress *p)
{
    if (!p->quiet)
        print_state(p, 1);
}
