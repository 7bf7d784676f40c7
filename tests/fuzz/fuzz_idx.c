// libFuzzer target for the IDX reader (dato_idx_read, datasets/idx.c: Fashion-MNIST images and
// labels, plain or gzip). It takes a path: the input is written to a scratch file on tmpfs and
// the real reader (zlib's gzread included) runs on it. Any bytes must be accepted or refused
// without a sanitizer report; an accepted file has 1..4 positive dims and every byte of its data
// is read. Build and run: docs/FUZZING.md.
#include "fuzz_util.h"
#include "idx.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* path = fuzz_file(0, "input.idx", data, size);
    dato_idx x;
    dato_error err;
    if (dato_idx_read(&x, path, &err) != DATO_OK) {
        fuzz_check_error(&err, path);
        INVARIANT(x.data == NULL && x.ndim == 0);
        return 0;
    }
    INVARIANT(x.ndim >= 1 && x.ndim <= DATO_IDX_MAX_DIMS);
    size_t total = 1;
    for (int d = 0; d < x.ndim; d++) {
        INVARIANT(x.shape[d] >= 1);
        total *= (size_t)x.shape[d];
    }
    fuzz_touch(x.data, total);
    dato_idx_free(&x);
    return 0;
}
