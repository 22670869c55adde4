/* randomise_dump.c - test helper for sanity_oracle.py: writes the weights
 * the sanity cascade re-initialises layers with, so that PyTorch can rebuild
 * every step of the cascade itself.
 *
 * usage: randomise_dump MODEL_DIR SEED OUT_DIR
 * Loads MODEL_DIR, re-initialises every parametrised layer as `cbctiq sanity
 * --seed SEED` does at its last step (cbq_randomise_top) and saves the result
 * as a model directory OUT_DIR. Step s of the cascade takes the top s
 * parametrised layers from OUT_DIR and the rest from MODEL_DIR.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cbctiq/attrib.h"
#include "cbctiq/model_file.h"

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: randomise_dump MODEL_DIR SEED OUT_DIR\n");
        return 2;
    }
    cbq_error err = {0};
    cbq_net *net = NULL;
    int rc = cbq_model_load(argv[1], &net, 1, &err);
    if (rc == CBQ_OK)
        rc = cbq_randomise_top(net, cbq_randomise_n_steps(net), strtoull(argv[2], NULL, 10), &err);
    if (rc == CBQ_OK)
        rc = cbq_model_save(argv[3], net, &err);
    if (rc != CBQ_OK)
        fprintf(stderr, "randomise_dump: %s\n", err.msg);
    cbq_net_free(net);
    return rc == CBQ_OK ? 0 : 1;
}
