/* sanity_csv.c - sanity.csv, the table of `cbctiq sanity` and of the
 * study's sanity stage: cbq_sanity_run's rows (sanity.h) written through
 * io's CSV writer, which the attribution library does not use. */
#define _POSIX_C_SOURCE 200809L
#include "cbctiq/study.h"

#include <math.h>

#include "cbctiq/csv.h"
#include "cbctiq/pointing.h"

static const char *const SANITY_HEADER[] = {
    "method", "test", "step", "layer", "category", "n_volumes", "median_spearman", "min_spearman",
    "max_spearman", "median_ae_ratio", "mean_ae_trained", "mean_ae_random", "threshold", "survives", "energy_trained", "energy_random",
    "energy_change", "energy_empty_reason"};
enum { SANITY_COLS = sizeof SANITY_HEADER / sizeof SANITY_HEADER[0] };

static void put_row(cbq_csv_writer *w, const cbq_sanity_row *row)
{
    cbq_csv_put_str(w, cbq_cam_method_name(row->method));
    cbq_csv_put_str(w, row->permuted ? "permuted_labels" : "cascade");
    cbq_csv_put_int(w, (long long)row->step);
    cbq_csv_put_str(w, row->layer);
    cbq_csv_put_str(w, row->category);
    cbq_csv_put_int(w, (long long)row->n_volumes);
    cbq_csv_put_double(w, row->median_rho);
    cbq_csv_put_double(w, row->min_rho);
    cbq_csv_put_double(w, row->max_rho);
    cbq_csv_put_double(w, row->median_ae_ratio);
    cbq_csv_put_double(w, row->mean_ae_trained);
    cbq_csv_put_double(w, row->mean_ae_random);
    cbq_csv_put_double(w, row->threshold);
    cbq_csv_put_int(w, row->survives);
    cbq_csv_put_double(w, row->median_energy_trained);
    cbq_csv_put_double(w, row->median_energy_random);
    cbq_csv_put_double(w, row->energy_change);
    /* ae.csv's empty_reason codes; not_computed when no hook gave energies */
    unsigned empty = row->energy_empty;
    if (!empty && (isnan(row->median_energy_random) || isnan(row->median_energy_trained)))
        empty = CBQ_EMPTY_NOT_COMPUTED;
    char reason[128];
    cbq_empty_reason_text(empty, reason, sizeof reason);
    cbq_csv_put_str(w, reason);
}

int cbq_study_sanity_write(const char *path, const cbq_sanity_result *res, cbq_error *err)
{
    cbq_csv_writer w;
    CBQ_TRY(cbq_csv_writer_open(&w, path, SANITY_HEADER, SANITY_COLS, err));
    int rc = CBQ_OK;
    for (size_t i = 0; res && i < res->n_rows && rc == CBQ_OK; i++) {
        put_row(&w, &res->rows[i]);
        rc = cbq_csv_end_row(&w, err);
    }
    if (rc == CBQ_OK)
        return cbq_csv_writer_commit(&w, err);
    cbq_csv_writer_abort(&w);
    return rc;
}
