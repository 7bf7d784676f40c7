// libFuzzer target for the .npy reader (dato_npy_parse, engine/io/npy.c: the entries of .npz
// statistics and --latents files). Any bytes must be accepted or refused without a sanitizer
// report; an accepted array has numel = prod(shape) elements of itemsize bytes inside the input,
// each of which dato_npy_at reads. The input is copied to an exact-size buffer (ASan sees any
// overrun). Build and run: docs/FUZZING.md.
#include "fuzz_util.h"
#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    unsigned char* bytes = malloc(size ? size : 1); // (size,)
    if (!bytes) return 0;
    memcpy(bytes, data, size);
    dato_npy_array a;
    dato_error err;
    if (dato_npy_parse(bytes, size, "fuzz-input", &a, &err) != DATO_OK) {
        fuzz_check_error(&err, "fuzz-input");
    } else {
        INVARIANT(a.ndim >= 0 && a.ndim <= DATO_NPY_MAX_DIMS);
        INVARIANT(a.itemsize == 2 || a.itemsize == 4 || a.itemsize == 8);
        int64_t numel = 1;
        for (int d = 0; d < a.ndim; d++) {
            INVARIANT(a.shape[d] >= 0);
            numel *= a.shape[d];
        }
        INVARIANT(numel == a.numel);
        INVARIANT(a.data >= bytes && (size_t)a.numel * a.itemsize <= size - (size_t)(a.data - bytes));
        volatile double sink = 0;
        for (int64_t i = 0; i < a.numel; i++) sink += dato_npy_at(&a, i);
        (void)sink;
    }
    free(bytes);
    return 0;
}
