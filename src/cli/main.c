/* main.c - the cbctiq binary: dispatches to one subcommand per file. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cbctiq/atomic_file.h"
#include "cbctiq/dist.h"
#include "cbctiq/versions.h"
#include "cli.h"
#include "wait_policy.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *usage;
} command;

static const command commands[] = {
#define CBQ_COMMAND(name, summary) {#name, cli_##name, summary, cli_##name##_usage},
#include "commands.def"
#undef CBQ_COMMAND
    {NULL, NULL, NULL, NULL} /* end; also keeps the table valid C while empty */
};

static void print_overview(FILE *out)
{
    fprintf(out,
            "cbctiq %s - CBCT image-quality CNN, Grad-CAM and Attribution Energy\n\n"
            "usage: cbctiq COMMAND [OPTIONS]\n\ncommands:\n",
            CBQ_VERSION);
    for (size_t i = 0; commands[i].name; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-12s %s\n", "help", "show this list, or `cbctiq help COMMAND`");
    fprintf(out, "\nRun `cbctiq help COMMAND` or `cbctiq COMMAND [SUBCOMMAND] --help` for a"
                 " command's\noptions.\n");
}

/* The first line is cbctiq's own version; then every library it computes
 * with, so a result can be traced to the exact build. */
static void print_versions(void)
{
    cbq_component_version v[CBQ_MAX_COMPONENTS];
    size_t n = cbq_component_versions(v, CBQ_MAX_COMPONENTS);
    printf("cbctiq %s\n", CBQ_VERSION);
    for (size_t i = 1; i < n; i++)
        printf("  %-11s %s\n", v[i].component, v[i].version);
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; commands[i].name; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int run_help(int argc, char **argv)
{
    if (argc < 3 || strcmp(argv[2], "help") == 0) {
        print_overview(stdout);
        return CLI_EXIT_OK;
    }
    const command *cmd = find_command(argv[2]);
    if (!cmd) {
        fprintf(stderr, "cbctiq: unknown command '%s'; `cbctiq help` lists them\n", argv[2]);
        return CLI_EXIT_USAGE;
    }
    cli_usage_print(stdout, cmd->usage);
    return CLI_EXIT_OK;
}

/* Ctrl-C, kill or a closed terminal during a write: remove the hidden
 * temporary file, then die of the same signal (SA_RESETHAND restored the
 * default action; the raised signal is delivered when the handler returns),
 * so the caller still sees how the process ended. */
static void remove_temporaries_and_die(int sig)
{
    cbq_atomic_remove_pending();
    raise(sig);
}

static void catch_interrupts(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = remove_temporaries_and_die;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    const int signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    for (size_t i = 0; i < sizeof signals / sizeof *signals; i++) {
        struct sigaction old;
        /* A signal the caller ignores (nohup, `&` in a script) stays ignored. */
        if (sigaction(signals[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
            sigaction(signals[i], &sa, NULL);
    }
}

/* The commands that share their work over the ranks of an MPI job
 * (docs/cluster.md). Any other command run by more than one rank would write
 * the same files from every rank at once, so it is refused. */
static int runs_distributed(const char *name)
{
    static const char *const names[] = {"simulate", "predict", "ae", "gradcam", "train", "sanity", "study"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

/* Runs the command as one rank of the job. A rank that fails stops every
 * rank (the others may wait for it in a collective): the job ends non-zero
 * at once instead of hanging. */
static int run_as_rank(const command *cmd, int argc, char **argv)
{
    cbq_dist dist;
    cbq_dist_init(&dist, &argc, &argv);
    if (dist.size > 1 && !runs_distributed(cmd->name)) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "`cbctiq %s` does not run on %d MPI ranks; run it without mpirun (or -np 1)",
                 cmd->name, dist.size);
        cbq_dist_abort(&dist, CLI_EXIT_USAGE, msg);
    }
    int rc = cmd->run(argc - 1, argv + 1);
    if (rc != CLI_EXIT_OK && dist.size > 1)
        cbq_dist_abort(&dist, rc, "this rank failed (message above): stopping the job");
    cbq_dist_finalize(&dist);
    return rc;
}

int main(int argc, char **argv)
{
    cli_choose_wait_policy(argc, argv);
    catch_interrupts();
    if (argc < 2) {
        print_overview(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        print_versions();
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return run_help(argc, argv);
    const command *cmd = find_command(name);
    if (!cmd) {
        fprintf(stderr, "cbctiq: unknown command '%s'; `cbctiq help` lists them\n", name);
        return CLI_EXIT_USAGE;
    }
    /* Subcommands see argv[0] = their own name, as getopt expects. Help is
     * answered here, for every command and subcommand alike, before the
     * command checks its arguments. */
    if (cli_wants_help(argc - 1, argv + 1)) {
        cli_usage_print(stdout, cmd->usage);
        return CLI_EXIT_OK;
    }
    return run_as_rank(cmd, argc, argv);
}
