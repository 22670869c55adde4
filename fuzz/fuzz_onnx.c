/* fuzz_onnx.c - libFuzzer target for the ONNX reader: protobuf decoding
 * (protobuf-c), the graph walk (values, cycles, attributes, Pad folding,
 * names) and the weights it copies out; once with the graph's own input size
 * and once with an --input-size, which lets dynamic shapes through. */
#include "cbctiq/onnx.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int pass = 0; pass < 2; pass++) {
        cbq_onnx_import_opts opts = {.input_size = pass ? 16 : 0};
        cbq_model_spec spec;
        cbq_safetensors weights;
        cbq_error err = {0};
        cbq_onnx_parse(data, size, "fuzz.onnx", &opts, &spec, &weights, &err);
        cbq_model_spec_free(&spec);
        cbq_safetensors_free(&weights);
    }
    return 0;
}
