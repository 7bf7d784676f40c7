// libFuzzer target for the .npz statistics reader (dato_stats_read_npz, metrics/stats_io.c:
// libzip, then mu.npy and sigma.npy through engine/io/npy.c). It takes a path: the input is
// written to a scratch file on tmpfs and the real reader runs on it. Any bytes must be accepted
// or refused without a sanitizer report; accepted statistics have dim >= 1 and finite mu and sigma,
// every value of which is read. Build and run: docs/FUZZING.md.
#include <math.h>

#include "fuzz_util.h"
#include "stats_io.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fuzz_file(0, "input.npz", data, size);
    dato_fid_stats s;
    dato_error err;
    if (dato_stats_read_npz(path, &s, &err) != DATO_OK) {
        fuzz_check_error(&err, path);
        INVARIANT(s.mu == NULL && s.sigma == NULL);
        return 0;
    }
    INVARIANT(s.dim >= 1 && s.count == 0);
    for (int i = 0; i < s.dim; i++) INVARIANT(isfinite(s.mu[i]));
    for (size_t i = 0; i < (size_t)s.dim * s.dim; i++) INVARIANT(isfinite(s.sigma[i]));
    dato_fid_stats_free(&s);
    return 0;
}
