/* fuzz_safetensors.c - libFuzzer target for the safetensors reader: header
 * length, JSON header, dtype, shape and offsets; every tensor that parses is
 * then converted, so that the byte counts the parser accepted are read. */
#include <stdlib.h>

#include "cbctiq/safetensors.h"
#include "fuzz_util.h"

static void convert_all(const cbq_safetensors *st)
{
    for (size_t i = 0; i < st->n_tensors; i++) {
        const cbq_st_tensor *t = &st->tensors[i];
        if (t->numel > (1u << 20))
            continue;
        cbq_error err = {0};
        float *f = malloc((t->numel ? t->numel : 1) * sizeof *f);
        int64_t *v = malloc((t->numel ? t->numel : 1) * sizeof *v);
        if (f)
            cbq_st_tensor_to_f32(t, f, t->numel, &err);
        if (v)
            cbq_st_tensor_to_i64(t, v, t->numel, &err);
        free(f);
        free(v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cbq_safetensors st;
    cbq_error err = {0};
    if (cbq_safetensors_parse(&st, data, size, "fuzz.safetensors", &err) == CBQ_OK) {
        convert_all(&st);
        cbq_safetensors_meta(&st, "format");
    }
    cbq_safetensors_free(&st);
    return 0;
}
