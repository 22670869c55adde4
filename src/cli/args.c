/* args.c - shared option parsing and error reporting for subcommands. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    return 0;
}

int cli_report(const cbq_error *err)
{
    fprintf(stderr, "cbctiq: %s\n", err->msg[0] ? err->msg : cbq_code_name(err->code));
    return CLI_EXIT_FAIL;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "cbctiq %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'cbctiq help %s'.\n", cmd);
    return CLI_EXIT_USAGE;
}

int cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t lo, uint64_t hi,
                  uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end != '\0' || text[0] == '-' || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects an integer in [%llu, %llu], got '%s'", opt,
                        (unsigned long long)lo, (unsigned long long)hi, text);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_double(const char *cmd, const char *opt, const char *text, double lo, double hi,
                     double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end != '\0' || !isfinite(v) || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects a number in [%g, %g], got '%s'", opt, lo, hi, text);
        return 0;
    }
    *out = v;
    return 1;
}

int cli_parse_threads(const char *cmd, const char *text, int *threads)
{
    uint64_t v;
    if (!cli_parse_u64(cmd, "--threads", text, 0, 1024, &v))
        return 0;
    *threads = (int)v;
    return 1;
}

void cli_common_defaults(cli_common *c)
{
    c->threads = 0;
    c->seed = 1;
    c->quiet = 0;
}
