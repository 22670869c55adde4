/* fuzz_study_config.c - libFuzzer target for the study.json parser: any
 * document overlaid on the defaults either fails with a message or leaves a
 * configuration that can be printed again. */
#include <stdlib.h>
#include <string.h>

#include "cbctiq/study.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    static cbq_study_config cfg; /* large; reset on every input */
    cbq_study_config_defaults(&cfg);
    cbq_error err = {0};
    if (cbq_study_config_parse(&cfg, text, "study.json", "/nonexistent", &err) == CBQ_OK) {
        char *json = cbq_study_config_json(&cfg);
        free(json);
    }
    free(text);
    return 0;
}
