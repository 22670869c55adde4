/* fuzz_model_json.c - libFuzzer target for the model.json reader: JSON
 * syntax, layer kinds, shapes and the validation that follows; a spec that
 * parses is written back to text, which must not fail. */
#include <stdlib.h>

#include "cbctiq/model_json.h"
#include "cbctiq/model_spec.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cbq_model_spec spec;
    cbq_error err = {0};
    if (cbq_model_json_parse(&spec, (const char *)data, size, "model.json", &err) == CBQ_OK) {
        char *text = cbq_model_json_format(&spec, &err);
        if (!text)
            abort(); /* a spec the reader accepted must be writable */
        free(text);
        cbq_model_spec_free(&spec);
    }
    return 0;
}
