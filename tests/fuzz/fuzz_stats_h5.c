// libFuzzer target for the HDF5 statistics reader (dato_stats_read_h5, metrics/stats_io.c: the
// seal check, then libhdf5 in a forked child, engine/core/isolated.c, whose answer the parent
// decodes and checks). Each execution forks, so it runs at hundreds of executions a second, and
// libFuzzer sees no coverage from the child: what it fuzzes is the parent's side (the pipe, the
// decoding, the checks) against whatever the child makes of the bytes. It takes a path: the input is written to a scratch file on tmpfs and
// the real reader runs on it. A mutated sealed file stops at its seal, so the seeds include
// unsealed files (as h5py writes them), whose HDF5 structures the mutations reach. Any bytes must
// be accepted or refused without a sanitizer report; accepted statistics have dim >= 1, a count of
// 0 or >= 2, finite values (every one read) and terminated metadata strings.
// Build and run: docs/FUZZING.md.
#include "fuzz_stats_checks.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fuzz_file(0, "input.h5", data, size);
    dato_fid_stats s;
    dato_stats_meta meta;
    dato_error err;
    dato_status st = dato_stats_read_h5(path, &s, &meta, &err);
    fuzz_check_stats(st, &s, &meta, &err, path);
    return 0;
}
