// libFuzzer target for the latency table reader (dato_latency_load, metrics/latency.c; dato-search
// --latency-table). It takes a path: the input is written to a scratch file on tmpfs and the real
// reader runs on it. Any bytes must be accepted or refused without a sanitizer report; an accepted
// table must predict a finite time >= 0 for a run of full steps with every sampler, and must be
// saved and re-read with the same key and the same times to 1e-15 relative: cJSON prints 15
// significant digits when they read back within its epsilon, so the last bit may change (the
// search predicts from the table as re-read, search/search_run.c). Build and run: docs/FUZZING.md.
#include <math.h>

#include "fuzz_util.h"
#include "latency.h"

static int close_to(double got, double want) { return fabs(got - want) <= 1e-15 * fabs(want); }

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fuzz_file(0, "latency_table.json", data, size);
    dato_latency_table t[2]; // [0] read, [1] re-read after a save
    dato_error err;
    if (dato_latency_load(&t[0], path, NULL, &err) != DATO_OK) {
        fuzz_check_error(&err, path);
        return 0;
    }
    INVARIANT(t[0].n_branches >= 1 && t[0].n_branches <= DATO_UNET_MAX_LAYERS);
    for (int k = DATO_SAMPLER_DDIM; k <= DATO_SAMPLER_EULER_A; k++) {
        dato_latency_prediction p;
        INVARIANT(dato_latency_predict(&t[0], NULL, 20, (dato_sampler_kind)k, &p, &err) == DATO_OK);
        INVARIANT(isfinite(p.total_s) && p.total_s >= 0);
    }
    const char* saved = fuzz_file(1, "saved.json", "", 0);
    INVARIANT(dato_latency_save(&t[0], saved, &err) == DATO_OK);
    INVARIANT(dato_latency_load(&t[1], saved, &t[0].key, &err) == DATO_OK);
    INVARIANT(memcmp(&t[0].key, &t[1].key, sizeof t[0].key) == 0 && t[0].n_branches == t[1].n_branches);
    for (int d = 0; d <= DATO_LAT_MAX_DEPTH; d++)
        for (int r = 0; r < DATO_LAT_N_RATIOS; r++) INVARIANT(close_to(t[1].call_s[d][r], t[0].call_s[d][r]));
    INVARIANT(close_to(t[1].call_overhead_s, t[0].call_overhead_s) && close_to(t[1].setup_s, t[0].setup_s) &&
              close_to(t[1].setup_cache_s, t[0].setup_cache_s) && close_to(t[1].setup_prune_s, t[0].setup_prune_s));
    return 0;
}
