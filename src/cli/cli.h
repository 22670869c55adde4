/* cli.h - what every subcommand of the cbctiq binary shares.
 *
 * A subcommand is `int cli_NAME(int argc, char **argv)` in cmd_NAME.c,
 * registered by one line in commands.def, with its usage text in
 * `const char cli_NAME_usage[]`. It returns the process exit status:
 * 0 success, 1 failure (message printed), 2 usage error.
 */
#ifndef CBCTIQ_CLI_H
#define CBCTIQ_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "cbctiq/error.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAIL = 1, CLI_EXIT_USAGE = 2 };

#define CBQ_COMMAND(name, summary) \
    int cli_##name(int argc, char **argv); \
    extern const char cli_##name##_usage[];
#include "commands.def"
#undef CBQ_COMMAND

/* 1 when the arguments after the command name ask for its help: `--help` or
 * `-h` anywhere before a `--` (after which every argument is an operand), so
 * `cbctiq model init --help` works the same as `cbctiq help model`. main.c
 * asks this once for every command, before the command parses anything. */
int cli_wants_help(int argc, char **argv);

/* Prints a usage text, filling in lists that come from the library's tables
 * so that a new entry shows up without editing any usage text:
 *   {methods}         every attribution method, the default marked, wrapped
 *                     at 80 columns under the column where it starts
 *   {sanity_methods}  the methods `cbctiq sanity` tests by default, a
 *                     comma-separated --methods value
 * Every usage text is printed through this function. */
void cli_usage_print(FILE *out, const char *usage);

/* Prints "cbctiq: MESSAGE" for a failed library call; returns CLI_EXIT_FAIL. */
int cli_report(const cbq_error *err);
/* Prints "cbctiq CMD: MESSAGE" and a hint to `cbctiq help CMD`; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsing for option values: the whole string must parse and
 * lie in range; on failure prints a usage error naming the option. */
int cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t lo, uint64_t hi,
                  uint64_t *out);
int cli_parse_double(const char *cmd, const char *opt, const char *text, double lo, double hi,
                     double *out);

/* --threads N: 0 (all cores) to 1024, the same bound for every command;
 * 0 after a usage error, as cli_parse_u64. */
int cli_parse_threads(const char *cmd, const char *text, int *threads);

/* Options every long-running command takes: --threads N, --seed N, --quiet. */
typedef struct {
    int threads;      /* 0 = all cores */
    uint64_t seed;
    int quiet;
} cli_common;

/* Default: all cores, seed 1, not quiet. */
void cli_common_defaults(cli_common *c);

#endif
