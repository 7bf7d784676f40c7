// libFuzzer target for a model folder's dato.json reader (dato_model_defaults_load,
// engine/models/model_defaults.c), which takes the folder: the input is written as dato.json in a
// scratch folder on tmpfs and the real reader runs on it. Any bytes must be accepted or refused
// without a sanitizer report; accepted defaults must be in the documented ranges, with paths
// that are terminated. Build and run: docs/FUZZING.md.
#include "fuzz_util.h"
#include "model_defaults.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fuzz_file(0, "dato.json", data, size);
    dato_model_defaults* d = malloc(sizeof *d); // 12 KB of paths: not on the stack
    if (!d) return 0;
    dato_error err;
    if (dato_model_defaults_load(d, fuzz_dir(), &err) != DATO_OK) {
        fuzz_check_error(&err, path);
        INVARIANT(!d->present);
    } else {
        INVARIANT(d->present && d->steps >= 0 && d->steps <= 1000 && d->guidance >= 0 && d->height >= 0 &&
                  d->width >= 0);
        INVARIANT(memchr(d->eval_prompts, '\0', sizeof d->eval_prompts) &&
                  memchr(d->feature_net, '\0', sizeof d->feature_net) &&
                  memchr(d->reference_stats, '\0', sizeof d->reference_stats));
    }
    free(d);
    return 0;
}
