/* sanity_energy.h - ae.csv's energy_in_structure (pointing.h) of the maps
 * the sanity checks make (sanity.h), so that sanity.csv can say how the
 * share of a map on its category's structure changes as the model is
 * randomised: the hook cbq_sanity_energy_of over the volumes' model inputs.
 *
 *     cbq_sanity_energy e;
 *     CBQ_TRY(cbq_sanity_energy_init(&e, net, n_volumes, err));
 *     for each volume: load `in` (with_structures = 1), then
 *         CBQ_TRY(cbq_sanity_energy_add(&e, &in, err));   // takes it over
 *         vols[i] = (cbq_sanity_volume){id, e.inputs[i].x, e.inputs[i].n};
 *     cbq_sanity_energy_hook(&e, &options);
 *     ... cbq_sanity_run(net, ..., vols, n, &options, ...) ...
 *     cbq_sanity_energy_free(&e);
 */
#ifndef CBCTIQ_SANITY_ENERGY_H
#define CBCTIQ_SANITY_ENERGY_H

#include <stddef.h>

#include "cbctiq/error.h"
#include "cbctiq/model_input.h"
#include "cbctiq/net.h"
#include "cbctiq/sanity.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    cbq_model_input *inputs;  /* [n], owned; voxels dropped, geometry, masks and x kept */
    size_t n, cap;
    const char *categories[CBQ_MAX_OUTPUTS]; /* the model's output names (borrowed) */
    size_t out_index[CBQ_MAX_OUTPUTS];
    size_t n_outputs;
} cbq_sanity_energy;

/* Room for `cap` volumes of net's model (net must outlive e). */
int cbq_sanity_energy_init(cbq_sanity_energy *e, const cbq_net *net, size_t cap, cbq_error *err);
/* Takes over *in (zeroed on return, also on failure, when it is freed):
 * keeps its slices (x), slice geometry and structure masks, frees the
 * volume's voxels, which the energy does not need. */
int cbq_sanity_energy_add(cbq_sanity_energy *e, cbq_model_input *in, cbq_error *err);
/* Sets o->energy to cbq_sanity_energy_of on e. */
void cbq_sanity_energy_hook(cbq_sanity_energy *e, cbq_sanity_options *o);
void cbq_sanity_energy_free(cbq_sanity_energy *e);

/* cbq_sanity_energy_fn: energy_in_structure of each output's maps of
 * volume `volume` ([nz, H, W] on the input grid of its tested slices; the
 * other slices count as 0), exactly as ae.csv's (cbq_pointing_volume);
 * empty[] holds its CBQ_EMPTY_* bits (no_structure, zero_map,
 * negative_map_sum). */
int cbq_sanity_energy_of(void *user, size_t volume, const float *const *maps, double *value,
                         unsigned *empty, cbq_error *err);

#ifdef __cplusplus
}
#endif
#endif
