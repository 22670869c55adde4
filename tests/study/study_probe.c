/* study_probe.c - exposes the study's content hash (stage_cache.c) to the
 * Python oracle (study_hash_oracle.py): reads one request on stdin, prints
 * the result.
 *
 *   hash PATH                           -> hex digest
 */
#include <stdio.h>
#include <string.h>

#include "cbctiq/study.h"

static int run(const char *what)
{
    cbq_error err = {0};
    if (strcmp(what, "hash") == 0) {
        char path[4096], hex[65];
        if (scanf("%4095s", path) != 1 || cbq_hash_path(path, hex, &err) != CBQ_OK)
            return 1;
        printf("%s\n", hex);
        return 0;
    }
    return 2;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: study_probe WHAT < request\n");
        return 2;
    }
    int rc = run(argv[1]);
    if (rc)
        fprintf(stderr, "study_probe %s: bad request\n", argv[1]);
    return rc;
}
