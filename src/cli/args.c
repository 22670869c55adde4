/* args.c - shared option parsing, usage texts and error reporting for
 * subcommands. */
#include "cli.h"

#include "cbctiq/attrib.h"

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

enum { USAGE_WIDTH = 80 };

/* "gradcam (default), hirescam, ...": words wrapped at USAGE_WIDTH, each
 * continuation line indented to `column` (where the list starts). */
static void print_method_list(FILE *out, size_t column)
{
    cbq_attrib_options def;
    cbq_attrib_options_default(&def);
    size_t at = column;
    for (int m = 0; m < CBQ_CAM_METHOD_COUNT; m++) {
        char word[64];
        snprintf(word, sizeof word, "%s%s%s", cbq_cam_method_name((cbq_cam_method)m),
                 m == (int)def.method ? " (default)" : "", m + 1 < CBQ_CAM_METHOD_COUNT ? "," : "");
        size_t need = strlen(word) + (at > column ? 1 : 0);
        if (at > column && at + need > USAGE_WIDTH) {
            fprintf(out, "\n%*s", (int)column, "");
            at = column;
            need = strlen(word);
        }
        fprintf(out, "%s%s", at > column ? " " : "", word);
        at += need;
    }
}

/* "gradcam,hirescam,...": one --methods value, never wrapped. */
static void print_sanity_methods(FILE *out)
{
    const char *sep = "";
    for (int m = 0; m < CBQ_CAM_METHOD_COUNT; m++) {
        if (!cbq_cam_method_sanity_default((cbq_cam_method)m))
            continue;
        fprintf(out, "%s%s", sep, cbq_cam_method_name((cbq_cam_method)m));
        sep = ",";
    }
}

void cli_usage_print(FILE *out, const char *usage)
{
    static const char methods[] = "{methods}", sanity[] = "{sanity_methods}";
    size_t column = 0;
    for (const char *p = usage; *p;) {
        if (strncmp(p, methods, sizeof methods - 1) == 0) {
            print_method_list(out, column);
            p += sizeof methods - 1;
        } else if (strncmp(p, sanity, sizeof sanity - 1) == 0) {
            print_sanity_methods(out);
            p += sizeof sanity - 1;
        } else {
            column = *p == '\n' ? 0 : column + 1;
            fputc(*p++, out);
        }
    }
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
