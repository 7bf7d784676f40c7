// libFuzzer target for the text encoder's text_encoder/config.json reader
// (engine/models/text_encoder_params.c): dato_te_config_from_json_text, which
// dato_te_config_from_json calls on the file's text. Any text must be accepted or refused without
// a sanitizer report, and an accepted config must pass its own validation. Build and run:
// docs/FUZZING.md.
#include "fuzz_util.h"
#include "text_encoder.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    char* json = fuzz_text(data, size);
    if (!json) return 0;
    dato_te_config cfg;
    dato_error err;
    if (dato_te_config_from_json_text(&cfg, json, "fuzz-input", &err) != DATO_OK)
        fuzz_check_error(&err, "fuzz-input");
    else INVARIANT(dato_te_config_validate(&cfg, &err) == DATO_OK);
    free(json);
    return 0;
}
