/* sanity_energy.c - the sanity checks' energy hook (sanity_energy.h): each
 * volume's maps put back on its canonical grid and shared out over the
 * category's structure by pointing.c, the same code as ae.csv's column. */
#include "cbctiq/sanity_energy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cbctiq/pointing.h"

int cbq_sanity_energy_init(cbq_sanity_energy *e, const cbq_net *net, size_t cap, cbq_error *err)
{
    memset(e, 0, sizeof *e);
    const cbq_model_spec *spec = cbq_net_spec(net);
    e->n_outputs = spec->n_outputs;
    for (size_t c = 0; c < e->n_outputs; c++) {
        e->categories[c] = spec->outputs[c];
        e->out_index[c] = c;
    }
    e->cap = cap;
    if (!(e->inputs = calloc(cap + 1, sizeof *e->inputs)))
        return CBQ_FAIL(err, CBQ_ERR_NOMEM, "out of memory");
    return CBQ_OK;
}

int cbq_sanity_energy_add(cbq_sanity_energy *e, cbq_model_input *in, cbq_error *err)
{
    if (e->n >= e->cap) {
        cbq_model_input_free(in);
        return CBQ_FAIL(err, CBQ_ERR_ARG, "more volumes than the %zu announced", e->cap);
    }
    /* the canonical map is allocated from canon's shape and affine alone */
    free(in->canon.data);
    in->canon.data = NULL;
    e->inputs[e->n++] = *in;
    memset(in, 0, sizeof *in);
    return CBQ_OK;
}

void cbq_sanity_energy_hook(cbq_sanity_energy *e, cbq_sanity_options *o)
{
    o->energy = cbq_sanity_energy_of;
    o->energy_user = e;
}

void cbq_sanity_energy_free(cbq_sanity_energy *e)
{
    for (size_t i = 0; e->inputs && i < e->n; i++)
        cbq_model_input_free(&e->inputs[i]);
    free(e->inputs);
    memset(e, 0, sizeof *e);
}

int cbq_sanity_energy_of(void *user, size_t volume, const float *const *maps, double *value,
                         unsigned *empty, cbq_error *err)
{
    cbq_sanity_energy *e = user;
    CBQ_CHECK_ARG(err, volume < e->n, "volume %zu of %zu", volume, e->n);
    cbq_model_input *in = &e->inputs[volume];
    cbq_pointing_options o;
    cbq_pointing_options_default(&o, in);
    o.faith.baseline = CBQ_PERTURB_NONE; /* the energy only, no deletion curves */
    cbq_pointing p[CBQ_MAX_OUTPUTS];
    CBQ_TRY(cbq_pointing_volume(in, NULL, 0, e->categories, e->n_outputs, e->out_index, maps, &o,
                                p, err));
    for (size_t c = 0; c < e->n_outputs; c++) {
        value[c] = p[c].energy_in_structure;
        empty[c] = isnan(value[c]) ? p[c].empty & ~(unsigned)CBQ_EMPTY_NO_CURVES : 0;
    }
    return CBQ_OK;
}
