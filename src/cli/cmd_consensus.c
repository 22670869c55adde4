/* cmd_consensus.c - `cbctiq consensus`: weighted consensus per (volume, category). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cbctiq/ratings_csv.h"
#include "cli.h"

const char cli_consensus_usage[] =
    "usage: cbctiq consensus --ratings ratings.csv [--raters raters.csv] --out consensus.csv\n"
    "\n"
    "Writes the weighted mean score of every (volume, category) over the raters\n"
    "who scored it, with n_raters and the weighted sd (docs/statistics.md).\n"
    "  --ratings FILE  volume_id, rater, category, score (1-5), or the wide sheet\n"
    "                  volume_id, rater, <category>...; a blank score = not rated\n"
    "  --raters FILE   rater, weight (> 0); default: equal weights\n"
    "  --out FILE      consensus.csv (written atomically)\n";

int cli_consensus(int argc, char **argv)
{
    static const struct option opts[] = {{"ratings", required_argument, 0, 'r'},
                                         {"raters", required_argument, 0, 'w'},
                                         {"out", required_argument, 0, 'o'},
                                         {"quiet", no_argument, 0, 'q'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *ratings = NULL, *raters = NULL, *out = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'r': ratings = optarg; break;
        case 'w': raters = optarg; break;
        case 'o': out = optarg; break;
        case 'h': fputs(cli_consensus_usage, stdout); return CLI_EXIT_OK;
        case 'q': break;
        default: return cli_usage_error("consensus", "unknown option");
        }
    }
    if (optind < argc)
        return cli_usage_error("consensus", "unexpected argument '%s'", argv[optind]);
    if (!ratings || !out)
        return cli_usage_error("consensus", "--ratings and --out are required");
    cbq_error err = {0};
    cbq_ratings r;
    if (cbq_ratings_read(&r, ratings, raters, &err) != CBQ_OK)
        return cli_report(&err);
    cbq_consensus *table = NULL;
    int rc = cbq_consensus_table(&r, &table, &err);
    if (rc == CBQ_OK)
        rc = cbq_consensus_write(&r, table, out, &err);
    free(table);
    cbq_ratings_free(&r);
    return rc == CBQ_OK ? CLI_EXIT_OK : cli_report(&err);
}
