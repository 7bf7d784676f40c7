// libFuzzer target for the UNet's unet/config.json reader (engine/models/unet_config.c):
// dato_unet_config_from_json_text, which dato_unet_config_from_json calls on the file's text. Any text must
// be accepted or refused without a sanitizer report, and an accepted config must pass its own
// validation. Build and run: docs/FUZZING.md.
#include "fuzz_util.h"
#include "unet.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    char* json = fuzz_text(data, size);
    if (!json) return 0;
    dato_unet_config cfg;
    dato_error err;
    if (dato_unet_config_from_json_text(&cfg, json, "fuzz-input", &err) != DATO_OK)
        fuzz_check_error(&err, "fuzz-input");
    else INVARIANT(dato_unet_config_validate(&cfg, &err) == DATO_OK);
    free(json);
    return 0;
}
