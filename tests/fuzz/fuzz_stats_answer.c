// libFuzzer target for the parent's side of the HDF5 statistics reader (dato_stats_decode_answer,
// metrics/stats_io.c): the bytes that the child running HDF5 sends back through the pipe
// (engine/core/isolated.h), decoded and checked in dato's own process (dato_fid_stats_check
// included). No fork and no HDF5, so it runs at thousands of executions a second; the child's side
// is fuzz_stats_h5. The seeds (tests/fuzz/corpus-stats_answer/) are the answers for the statistics
// fixtures. Any bytes must be accepted or refused without a sanitizer report or a leak, with the
// promises of stats_io.h (fuzz_stats_checks.h); an accepted answer encodes back to the same bytes.
// Build and run: docs/FUZZING.md.
#include "fuzz_stats_checks.h"

#define LABEL "fuzz-answer"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    dato_fid_stats s;
    dato_stats_meta meta;
    dato_error err;
    dato_status st = dato_stats_decode_answer(data, size, LABEL, &s, &meta, &err);
    if (st == DATO_OK) {
        dato_bytes again = {0};
        dato_stats_encode_answer(&s, &meta, &again);
        INVARIANT(!again.failed && again.len == size && memcmp(again.data, data, size) == 0);
        dato_bytes_free(&again);
    }
    fuzz_check_stats(st, &s, &meta, &err, LABEL);
    return 0;
}
