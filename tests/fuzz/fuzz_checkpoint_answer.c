// libFuzzer target for the parent's side of the search checkpoint reader
// (dato_checkpoint_decode_answer, search/checkpoint.c): the bytes that the child running HDF5 sends
// back through the pipe (engine/core/isolated.h), decoded and checked in dato's own process. No
// fork and no HDF5, so it runs at thousands of executions a second; the child's side is
// fuzz_checkpoint. The seeds (tests/fuzz/corpus-checkpoint_answer/) are the answers for the
// corpus-checkpoint files. Any bytes must be accepted or refused without a sanitizer report or a
// leak, with the promises of checkpoint.h (fuzz_checkpoint_checks.h); an accepted answer is
// exactly as long as its counts say, and encoding the checkpoint again gives back its arrays.
// Build and run: docs/FUZZING.md.
#include "fuzz_checkpoint_checks.h"

#define LABEL "fuzz-answer"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    dato_checkpoint c;
    dato_error err;
    dato_status st = dato_checkpoint_decode_answer(data, size, LABEL, &c, &err);
    if (st == DATO_OK) { // the head's pointers are zeroed on the way back: compare the arrays after it
        dato_bytes again = {0};
        dato_checkpoint_encode_answer(&c, &again);
        INVARIANT(!again.failed && again.len == size &&
                  memcmp(again.data + sizeof c, data + sizeof c, size - sizeof c) == 0);
        dato_bytes_free(&again);
    }
    fuzz_check_checkpoint(st, &c, &err, LABEL);
    return 0;
}
