// libFuzzer target for the seal check (dato_seal_check_image, metrics/file_seal.c), the first thing
// both HDF5 readers run in dato's own process, before any byte reaches HDF5 in its child. The first
// input byte picks the magic (a checkpoint's or a statistics file's), the rest is the file. Any
// bytes must give one of the three states or a refusal that names the file, without a sanitizer
// report; and an input of at least DATO_SEAL_BYTES, sealed anew, must check as intact (the seal
// covers every byte after its block, whatever they are). Build and run: docs/FUZZING.md.
#include "checkpoint.h"
#include "file_seal.h"
#include "stats_io.h"
#include "fuzz_util.h"

#define LABEL "fuzz-seal.h5"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    static const char* const magics[] = {DATO_CHECKPOINT_SEAL_MAGIC, DATO_STATS_SEAL_MAGIC};
    const char* magic = magics[data[0] & 1];
    data++, size--;
    dato_seal_state state = DATO_SEAL_NONE;
    dato_error err;
    dato_status st = dato_seal_check_image(data, size, LABEL, magic, &state, &err);
    if (st == DATO_OK)
        INVARIANT(state == DATO_SEAL_INTACT || state == DATO_SEAL_NONE_HDF5 || state == DATO_SEAL_NONE);
    else
        fuzz_check_error(&err, LABEL);
    if (size >= DATO_SEAL_BYTES) { // sealed anew: intact
        uint8_t* copy = malloc(size);
        if (!copy) return 0;
        memcpy(copy, data, size);
        dato_seal_image(copy, size, magic);
        st = dato_seal_check_image(copy, size, LABEL, magic, &state, &err);
        INVARIANT(st == DATO_OK && state == DATO_SEAL_INTACT);
        free(copy);
    }
    return 0;
}
