// libFuzzer target for the scheduler_config.json reader (dato_scheduler_config_parse,
// engine/runtime/scheduler_config.c; dato_scheduler_config_load reads the file and calls it).
// Any text must be accepted or refused without a sanitizer report; an accepted config must pass
// its own validation and give an alphas_cumprod table that never rises, starts at most at 1
// and is never negative or NaN. The sampler override (none, or one of the five kinds) is chosen by the input's
// length, so every seed is tried with every kind as it grows. Build and run: docs/FUZZING.md.
#include <math.h>

#include "fuzz_util.h"
#include "scheduler_config.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    char* json = fuzz_text(data, size);
    if (!json) return 0;
    int pick = (int)(size % 6); // 0: the file's _class_name, else the override pick - 1
    dato_sampler_kind kind = (dato_sampler_kind)(pick ? pick - 1 : 0);
    dato_scheduler_config cfg;
    dato_error err;
    if (dato_scheduler_config_parse(json, "fuzz-input", pick ? &kind : NULL, &cfg, &err) != DATO_OK) {
        fuzz_check_error(&err, "fuzz-input");
    } else {
        INVARIANT(dato_scheduler_config_validate(&cfg, &err) == DATO_OK);
        int n = cfg.num_train_timesteps;
        float* abar = n <= 100000 ? malloc((size_t)n * sizeof *abar) : NULL; // (n,)
        if (abar) {
            INVARIANT(dato_alphas_cumprod(&cfg, abar, &err) == DATO_OK);
            for (int t = 0; t < n; t++) INVARIANT(abar[t] >= 0 && abar[t] <= (t ? abar[t - 1] : 1.0f));
        }
        free(abar);
    }
    free(json);
    return 0;
}
